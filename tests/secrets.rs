//! Secrets at start against a real OpenBao dev server: references in the
//! environment (KV v1, KV v2 with versions, inline, login), AppRole (values,
//! files, response-wrapped secret_id), templates into tmpfs files, PKI
//! issuance, `--check`, and the leak hunt: no value read at start in any log
//! line, /proc entry, persistent file, descriptor or unreferenced variable.

mod util;

use std::os::unix::fs::MetadataExt;

use util::openbao::OpenBao;
use util::{Report, Scratch, Vinit};

fn report_step(path: &std::path::Path) -> String {
    format!("report={}", path.display())
}

#[test]
fn kv2_references_versions_inline_and_login_reach_the_app() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=first", "api_key=k1"]);
    bao.bao(&["kv", "put", "secret/app", "db_password=second", "api_key=k2"]);
    let scratch = Scratch::new();
    let report = scratch.path("report");
    bao.vinit()
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .env("OLD_PASSWORD", "vault:secret/data/app#db_password#1")
        .env(
            "DSN",
            "key=${vault:secret/data/app#api_key};pw=${bao:secret/data/app#db_password}!",
        )
        .env("APP_TOKEN", "vault:login")
        .env("PLAIN", "unchanged vault text")
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let report = Report::read(&report);
    assert_eq!(report.env_var("DB_PASSWORD").as_deref(), Some("second"));
    assert_eq!(report.env_var("OLD_PASSWORD").as_deref(), Some("first"));
    assert_eq!(report.env_var("DSN").as_deref(), Some("key=k2;pw=second!"));
    assert_eq!(report.env_var("APP_TOKEN").as_deref(), Some("root"));
    assert_eq!(report.env_var("PLAIN").as_deref(), Some("unchanged vault text"));
    assert_eq!(report.env_var("VAULT_TOKEN"), None, "the token must be scrubbed");
    assert_eq!(report.env_var("VAULT_ADDR").as_deref(), Some(bao.addr.as_str()));
}

#[test]
fn kv1_and_vinit_ignore() {
    let bao = OpenBao::start();
    bao.bao(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    bao.bao(&["kv", "put", "kv1/app", "user=alice"]);
    let scratch = Scratch::new();
    let report = scratch.path("report");
    bao.vinit()
        .env("USER_NAME", "vault:kv1/app#user")
        .env("LITERAL", "vault:not/a#reference")
        .env("VINIT_IGNORE", "LITERAL")
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let report = Report::read(&report);
    assert_eq!(report.env_var("USER_NAME").as_deref(), Some("alice"));
    assert_eq!(
        report.env_var("LITERAL").as_deref(),
        Some("vault:not/a#reference")
    );
}

#[test]
fn one_read_per_distinct_path_and_version() {
    let scratch = Scratch::new();
    let audit = scratch.path("audit.log");
    let bao = OpenBao::start_with_audit_log(&audit);
    bao.bao(&["kv", "put", "secret/app", "a=1", "b=2", "c=3"]);
    bao.bao(&["kv", "put", "secret/app", "a=4", "b=5", "c=6"]);
    let report = scratch.path("report");
    bao.vinit()
        .env("A", "vault:secret/data/app#a")
        .env("B", "vault:secret/data/app#b")
        .env("C", "x${vault:secret/data/app#c}${vault:secret/data/app#a}")
        .env("A1", "vault:secret/data/app#a#1")
        .env("B1", "vault:secret/data/app#b#1")
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let report = Report::read(&report);
    assert_eq!(report.env_var("C").as_deref(), Some("x64"));
    assert_eq!(report.env_var("B1").as_deref(), Some("2"));
    let log = std::fs::read_to_string(&audit).unwrap();
    let reads = log
        .lines()
        .filter(|l| {
            l.contains("\"type\":\"request\"")
                && l.contains("\"operation\":\"read\"")
                && l.contains("\"path\":\"secret/data/app\"")
        })
        .count();
    assert_eq!(
        reads, 2,
        "expected one read for the latest version and one for version 1"
    );
}

#[test]
fn approle_from_variables_files_and_a_wrapped_secret_id() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=pw"]);
    bao.policy("app", &["secret/data/app"]);
    let (role_id, secret_id) = bao.approle("app");
    let scratch = Scratch::new();

    // Inline values.
    let report = scratch.path("r1");
    Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VINIT_AUTH_METHOD", "approle")
        .env("VINIT_ROLE_ID", &role_id)
        .env("VINIT_SECRET_ID", &secret_id)
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let seen = Report::read(&report);
    assert_eq!(seen.env_var("DB_PASSWORD").as_deref(), Some("pw"));
    assert_eq!(seen.env_var("VINIT_SECRET_ID"), None);

    // Files with surrounding whitespace, as mounted secrets often are.
    std::fs::write(scratch.path("role_id"), format!("\n{role_id}  \n")).unwrap();
    std::fs::write(scratch.path("secret_id"), format!("{secret_id}\n")).unwrap();
    let report = scratch.path("r2");
    Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VINIT_AUTH_METHOD", "approle")
        .env("VINIT_ROLE_ID_FILE", scratch.path("role_id"))
        .env("VINIT_SECRET_ID_FILE", scratch.path("secret_id"))
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    assert_eq!(
        Report::read(&report).env_var("DB_PASSWORD").as_deref(),
        Some("pw")
    );

    // A response-wrapped secret_id: unwrapped once, refused the second time.
    let wrapped = bao.bao_json(&["write", "-wrap-ttl=5m", "-f", "auth/approle/role/app/secret-id"])
        ["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let wrapped_run = || {
        Vinit::subreaper()
            .env("VAULT_ADDR", &bao.addr)
            .env("VINIT_AUTH_METHOD", "approle")
            .env("VINIT_ROLE_ID", &role_id)
            .env("VINIT_SECRET_ID", &wrapped)
            .env("VINIT_SECRET_ID_WRAPPED", "true")
            .env("DB_PASSWORD", "vault:secret/data/app#db_password")
            .probe(["exit=0"])
            .run()
    };
    wrapped_run().expect_code(0);
    let again = wrapped_run();
    again.expect_code(77);
    assert!(again.stderr.contains("VINIT_SECRET_ID"), "{}", again.stderr);
}

#[test]
fn bad_credentials_and_policies_are_77_and_missing_things_65() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=pw", "api_key=k"]);
    bao.policy("app", &["secret/data/app"]);
    let (role_id, _) = bao.approle("app");

    let finished = Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VINIT_AUTH_METHOD", "approle")
        .env("VINIT_ROLE_ID", &role_id)
        .env("VINIT_SECRET_ID", "not-the-secret-id")
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .probe(["exit=0"])
        .run();
    finished.expect_code(77);
    assert!(
        finished.stderr.contains("auth/approle/login"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("not-the-secret-id"),
        "{}",
        finished.stderr
    );

    let token = bao.bao_json(&["token", "create", "-policy=app"])["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    bao.bao(&["kv", "put", "secret/other", "x=1"]);
    let finished = Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &token)
        .env("OTHER", "vault:secret/data/other#x")
        .probe(["exit=0"])
        .run();
    finished.expect_code(77);
    assert!(
        finished
            .stderr
            .contains("OTHER (secret/data/other): permission denied"),
        "{}",
        finished.stderr
    );

    let finished = bao
        .vinit()
        .env("DB_PASSWORD", "vault:secret/data/app#db_pasword")
        .probe(["exit=0"])
        .run();
    finished.expect_code(65);
    assert_eq!(
        finished.stderr.trim(),
        "vinit: DB_PASSWORD: secret/data/app has no key \"db_pasword\" (it has: api_key, db_password)"
    );

    let finished = bao
        .vinit()
        .env("DB_PASSWORD", "vault:secret/app#db_password")
        .probe(["exit=0"])
        .run();
    finished.expect_code(65);
    assert!(
        finished.stderr.contains("secret/data/app"),
        "KV v2 hint missing: {}",
        finished.stderr
    );
}

#[test]
fn templates_render_into_tmpfs_files_with_mode_and_owner() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=pw", "api_key=k"]);
    let scratch = Scratch::new();
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    std::fs::write(
        scratch.path("app.yaml.tmpl"),
        "password: {{ secret(\"secret/data/app\").db_password }}\nkeys:{% for k in secret(\"secret/data/app\") %} {{ k }}{% endfor %}\n",
    )
    .unwrap();
    let config = scratch.path("vinit.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[template]]
source = "app.yaml.tmpl"
destination = "{out}/app.yaml"

[[template]]
contents = "{{{{ secret('secret/data/app').api_key }}}}"
destination = "{out}/api_key"
mode = "0440"
"#,
            out = out.path().display()
        ),
    )
    .unwrap();
    let report = scratch.path("report");
    bao.vinit()
        .arg("--config")
        .arg(&config)
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let yaml = out.path().join("app.yaml");
    assert_eq!(
        std::fs::read_to_string(&yaml).unwrap(),
        "password: pw\nkeys: api_key db_password\n"
    );
    let meta = std::fs::metadata(&yaml).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o400, "default mode");
    assert_eq!(meta.uid(), nix::unistd::getuid().as_raw());
    let key = out.path().join("api_key");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "k");
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o7777, 0o440);
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "temp files left behind: {names:?}");
}

#[test]
fn pki_issuance_renders_certificate_and_key() {
    let bao = OpenBao::start();
    bao.pki_role_web("2h");
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    let scratch = Scratch::new();
    let config = scratch.path("vinit.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[issue]]
name = "tls"
path = "pki/issue/web"
data = {{ common_name = "web.internal", ttl = "1h" }}

[[template]]
contents = "{{{{ issued('tls').certificate }}}}\n"
destination = "{out}/tls.crt"

[[template]]
contents = "{{{{ issued('tls').private_key }}}}\n"
destination = "{out}/tls.key"
"#,
            out = out.path().display()
        ),
    )
    .unwrap();
    bao.vinit()
        .arg("--config")
        .arg(&config)
        .probe(["exit=0"])
        .run()
        .expect_code(0);
    let cert = std::fs::read_to_string(out.path().join("tls.crt")).unwrap();
    let key = std::fs::read_to_string(out.path().join("tls.key")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    assert!(key.contains("PRIVATE KEY-----"), "not a key");
    let serials = bao.bao_json(&["list", "pki/certs"]);
    assert_eq!(
        serials.as_array().map(Vec::len),
        Some(2),
        "one root and exactly one issued certificate"
    );
}

#[test]
fn check_lists_reads_without_contacting_vault_and_online_proves_access() {
    let scratch = Scratch::new();
    let config = scratch.path("vinit.toml");
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    std::fs::write(
        &config,
        format!(
            "[[template]]\ncontents = \"{{{{ secret('secret/data/app', version=1).api_key }}}}\"\ndestination = \"{}/k\"\n\
             [[issue]]\nname = \"tls\"\npath = \"pki/issue/web\"\n",
            out.path().display()
        ),
    )
    .unwrap();
    let unreachable = format!("http://127.0.0.1:{}", util::openbao::free_port());
    let finished = Vinit::subreaper()
        .env("VAULT_ADDR", &unreachable)
        .env("VAULT_TOKEN", "never-printed-token")
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .args(["--check", "--config"])
        .arg(&config)
        .probe(["exit=3"])
        .run();
    finished.expect_code(0);
    let out_text = finished.stdout_text();
    for line in [
        "env DB_PASSWORD: read secret/data/app key db_password",
        "(mode 0400): read secret/data/app (version 1)",
        "issue tls: write pki/issue/web",
    ] {
        assert!(out_text.contains(line), "missing {line:?} in:\n{out_text}");
    }
    assert!(!out_text.contains("never-printed-token"));
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "--check wrote a file"
    );

    let finished = Vinit::subreaper()
        .env("VAULT_TOKEN", "t")
        .arg("--check")
        .arg("no-such-command")
        .run();
    finished.expect_code(127);

    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=pw"]);
    let online = |var: &str| {
        bao.vinit()
            .env("DB_PASSWORD", var)
            .args(["--check", "--online"])
            .probe(["exit=3"])
            .run()
    };
    let finished = online("vault:secret/data/app#db_password");
    finished.expect_code(0);
    assert!(finished
        .stdout_text()
        .contains("online: logged in and read every secret"));
    let finished = online("vault:secret/data/app#nope");
    finished.expect_code(65);
}

/// The leak hunt (issue 7): a value read at start (the password, the
/// secret_id, the role_id, the token) never appears in vinit's trace logs
/// (text and JSON), in /proc/VINIT/environ or cmdline, in the app's
/// environment unless referenced there, or in a file vinit opens for
/// writing outside tmpfs (every open traced with strace); and vinit holds
/// no descriptor to the secret_id file once the app runs.
#[test]
fn no_value_read_at_start_leaks_into_logs_proc_disk_descriptors_or_the_env() {
    let bao = OpenBao::start();
    let password = "pw-3f9a1c77";
    bao.bao(&["kv", "put", "secret/app", &format!("db_password={password}")]);
    bao.policy("app", &["secret/data/app"]);
    let (role_id, secret_id) = bao.approle("app");
    // Everything the test itself writes that may hold a value stays on tmpfs.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let at = |name: &str| shm.path().join(name);
    std::fs::write(at("secret_id"), &secret_id).unwrap();
    std::fs::write(
        at("vinit.toml"),
        format!(
            "[[template]]\ncontents = \"{{{{ secret('secret/data/app').db_password }}}}\"\ndestination = \"{}\"\n",
            at("pw").display()
        ),
    )
    .unwrap();
    for format in ["text", "json"] {
        let trace = at(&format!("{format}.strace"));
        let vinit = Vinit::launched_by(&[
            "strace",
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=open,openat,creat",
            "-e",
            "status=successful",
            "-o",
            trace.to_str().unwrap(),
        ])
        .env("VINIT_LOG", "trace")
        .env("VINIT_LOG_FORMAT", format)
        .env("VAULT_ADDR", &bao.addr)
        .env("VINIT_AUTH_METHOD", "approle")
        .env("VINIT_ROLE_ID", &role_id)
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .env("TOKEN", "vault:login")
        .arg("--config")
        .arg(at("vinit.toml"));
        // One run reads the secret_id from a variable, the other from a file.
        let vinit = match format {
            "text" => vinit.env("VINIT_SECRET_ID", &secret_id),
            _ => vinit.env("VINIT_SECRET_ID_FILE", at("secret_id")),
        };
        let report_path = at(&format!("{format}.report"));
        let ready = at(&format!("{format}.ready"));
        let running = vinit
            .probe([
                report_step(&report_path),
                format!("record={}", at(&format!("{format}.signals")).display()),
                format!("ready={}", ready.display()),
                "await=TERM".to_string(),
            ])
            .start();
        util::wait_for_file(&ready);
        let vinit_pid = util::children_of(running.pid())[0].0;
        let report = Report::read(&report_path);
        let token = report.env_var("TOKEN").expect("the login token");
        assert!(token.len() > 10);
        let values = [password, secret_id.as_str(), role_id.as_str(), token.as_str()];

        for entry in ["environ", "cmdline"] {
            let seen = std::fs::read(format!("/proc/{vinit_pid}/{entry}")).unwrap();
            let seen = String::from_utf8_lossy(&seen);
            for value in values {
                assert!(
                    !seen.contains(value),
                    "{format}: {value:?} in /proc/VINIT/{entry}"
                );
            }
        }
        if format == "text" {
            let environ = std::fs::read(format!("/proc/{vinit_pid}/environ")).unwrap();
            assert!(
                String::from_utf8_lossy(&environ).contains("VINIT_SECRET_ID="),
                "vinit is not the process inspected"
            );
        }
        let held: Vec<_> = std::fs::read_dir(format!("/proc/{vinit_pid}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .collect();
        assert!(
            !held.contains(&at("secret_id")),
            "{format}: vinit holds the secret_id file: {held:?}"
        );

        let env: Vec<String> = report
            .env
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect();
        for entry in &env {
            for value in values {
                let referenced =
                    *entry == format!("DB_PASSWORD={password}") || *entry == format!("TOKEN={token}");
                assert!(
                    referenced || !entry.contains(value),
                    "{format}: {value:?} in the app's {entry}"
                );
            }
        }

        util::send(vinit_pid, libc::SIGTERM);
        let finished = running.wait();
        finished.expect_code(0);
        assert!(
            finished.stderr.contains("reading secret/data/app"),
            "no trace of the read:\n{}",
            finished.stderr
        );
        for value in values {
            assert!(
                !finished.stderr.contains(value),
                "{value:?} leaked into the {format} log"
            );
        }
        let app = report.int("pid");
        let written = opened_for_writing(&std::fs::read_to_string(&trace).unwrap(), app);
        assert!(
            written.contains(&at("pw")) || written.iter().any(|p| p.starts_with(shm.path())),
            "{format}: strace saw vinit write no file, not even the template: {written:?}"
        );
        for path in written {
            let dir = if path.is_dir() {
                path.as_path()
            } else {
                path.parent().unwrap()
            };
            let kind = nix::sys::statfs::statfs(dir).unwrap().filesystem_type();
            let device = std::fs::metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_char_device()
            });
            assert!(
                kind == nix::sys::statfs::TMPFS_MAGIC || device,
                "{format}: vinit opened {} for writing, not on tmpfs",
                path.display()
            );
        }
    }
}

/// The paths that processes other than `app` opened for writing, from an
/// `strace -f -y` log (`PID openat(...O_WRONLY...) = FD</path>`).
fn opened_for_writing(log: &str, app: i32) -> Vec<std::path::PathBuf> {
    log.lines()
        .filter(|line| {
            line.split_whitespace()
                .next()
                .and_then(|pid| pid.parse::<i32>().ok())
                != Some(app)
        })
        .filter(|line| {
            ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                .iter()
                .any(|flag| line.contains(flag))
        })
        .filter_map(|line| {
            let (_, returned) = line.rsplit_once(") = ")?;
            let path = returned.split_once('<')?.1.strip_suffix('>')?;
            Some(std::path::PathBuf::from(path.split('<').next().unwrap_or(path)))
        })
        .collect()
}

#[test]
fn dynamic_database_credentials_come_from_one_lease_and_work() {
    let pg = util::postgres::Postgres::start();
    let bao = OpenBao::start();
    util::postgres::database_engine(&bao, &pg, "default_ttl=1h", "max_ttl=24h");
    let scratch = Scratch::new();
    let report = scratch.path("report");
    // The app has ended when the test checks: keep the lease (revocation at
    // exit is tests/running.rs's).
    bao.vinit()
        .env("VINIT_REVOKE", "false")
        .env("DB_USER", "vault:database/creds/app#username")
        .env("DB_PASSWORD", "vault:database/creds/app#password")
        .env(
            "DATABASE_URL",
            "postgres://${vault:database/creds/app#username}:${vault:database/creds/app#password}@db/app",
        )
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let seen = Report::read(&report);
    let user = seen.env_var("DB_USER").unwrap();
    let password = seen.env_var("DB_PASSWORD").unwrap();
    assert_eq!(
        seen.env_var("DATABASE_URL").unwrap(),
        format!("postgres://{user}:{password}@db/app")
    );
    assert_eq!(
        pg.login(&user, &password).as_deref(),
        Ok(user.as_str()),
        "the credentials do not work"
    );
    assert_eq!(
        bao.lease_count("database/creds/app"),
        1,
        "the references did not share one lease"
    );
}

#[test]
fn namespaces_are_sent_with_every_request() {
    let bao = OpenBao::start();
    bao.bao(&["namespace", "create", "team-a"]);
    bao.bao_in("team-a", &["secrets", "enable", "-path=secret", "kv-v2"]);
    bao.bao_in("team-a", &["kv", "put", "secret/app", "db_password=team-a-pw"]);
    bao.bao(&["kv", "put", "secret/app", "db_password=root-pw"]);
    let scratch = Scratch::new();
    for (namespace, expected) in [(Some("team-a"), "team-a-pw"), (None, "root-pw")] {
        let report = scratch.path("report");
        let _ = std::fs::remove_file(&report);
        let mut vinit = bao
            .vinit()
            .env("DB_PASSWORD", "vault:secret/data/app#db_password");
        if let Some(namespace) = namespace {
            vinit = vinit.env("BAO_NAMESPACE", namespace);
        }
        vinit.probe([report_step(&report)]).run().expect_code(0);
        let seen = Report::read(&report);
        assert_eq!(
            seen.env_var("DB_PASSWORD").as_deref(),
            Some(expected),
            "namespace {namespace:?}"
        );
        assert_eq!(
            seen.env_var("BAO_NAMESPACE").as_deref(),
            namespace,
            "the namespace stays for the app"
        );
    }
}

#[test]
fn as_pid1_with_approle_references_and_a_template() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=pw1", "api_key=k1"]);
    bao.policy("app", &["secret/data/app"]);
    let (role_id, secret_id) = bao.approle("app");
    let scratch = Scratch::new();
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    let config = scratch.path("vinit.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nmethod = \"approle\"\nrole_id = \"{role_id}\"\nsecret_id_file = \"secret_id\"\n\
             [[template]]\ncontents = \"api_key={{{{ secret('secret/data/app').api_key }}}}\\n\"\ndestination = \"{}/app.env\"\n",
            out.path().display()
        ),
    )
    .unwrap();
    std::fs::write(scratch.path("secret_id"), &secret_id).unwrap();
    let report = scratch.path("report");
    Vinit::pid1()
        .env("VAULT_ADDR", &bao.addr)
        .env("VINIT_CONFIG", &config)
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let seen = Report::read(&report);
    assert_eq!(seen.int("ppid"), 1, "vinit was not PID 1");
    assert_eq!(seen.env_var("DB_PASSWORD").as_deref(), Some("pw1"));
    assert_eq!(seen.env_var("VINIT_CONFIG"), None);
    assert_eq!(
        std::fs::read_to_string(out.path().join("app.env")).unwrap(),
        "api_key=k1\n"
    );
}

#[test]
fn token_file_config_env_section_and_template_owner() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=pw", "api_key=k"]);
    let scratch = Scratch::new();
    std::fs::write(scratch.path("token"), "  root\n").unwrap();
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    let config = scratch.path("vinit.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\ntoken_file = \"token\"\n\
             [env]\nFROM_FILE = \"key=${{vault:secret/data/app#api_key}}\"\nPLAIN_FROM_FILE = \"hello\"\n\
             DB_PASSWORD = \"vault:secret/data/app#api_key\"\n\
             [[template]]\ncontents = \"x\"\ndestination = \"{}/owned\"\nowner = \"nobody\"\nmode = \"0440\"\n",
            out.path().display()
        ),
    )
    .unwrap();
    let report = scratch.path("report");
    Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .arg("--config")
        .arg(&config)
        .probe([report_step(&report)])
        .run()
        .expect_code(0);
    let seen = Report::read(&report);
    assert_eq!(seen.env_var("FROM_FILE").as_deref(), Some("key=k"));
    assert_eq!(seen.env_var("PLAIN_FROM_FILE").as_deref(), Some("hello"));
    assert_eq!(
        seen.env_var("DB_PASSWORD").as_deref(),
        Some("pw"),
        "the environment wins over [env]"
    );
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let meta = std::fs::metadata(out.path().join("owned")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (nobody.uid.as_raw(), nobody.gid.as_raw())
    );
    assert_eq!(meta.mode() & 0o7777, 0o440);
}

#[test]
fn exec_mode_revokes_the_token_vinit_logged_in_with() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "db_password=pw"]);
    bao.policy("app", &["secret/data/app"]);
    let (role_id, secret_id) = bao.approle("app");
    let live_tokens = || {
        bao.bao_json(&["list", "auth/token/accessors"])
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    let before = live_tokens();
    let run = |extra: &[(&str, &str)]| {
        let mut vinit = Vinit::subreaper()
            .env("VAULT_ADDR", &bao.addr)
            .env("VINIT_AUTH_METHOD", "approle")
            .env("VINIT_ROLE_ID", &role_id)
            .env("VINIT_SECRET_ID", &secret_id)
            .env("DB_PASSWORD", "vault:secret/data/app#db_password");
        for (name, value) in extra {
            vinit = vinit.env(name, *value);
        }
        vinit.arg("--exec").probe(["exit=0"]).run().expect_code(0);
    };
    run(&[]);
    assert_eq!(live_tokens(), before, "exec mode left its token alive");
    run(&[("APP_TOKEN", "vault:login")]);
    assert_eq!(
        live_tokens(),
        before + 1,
        "the token handed to the app must stay valid"
    );
    run(&[("VINIT_REVOKE", "false")]);
    assert_eq!(live_tokens(), before + 2, "VINIT_REVOKE=false keeps the token");
}
