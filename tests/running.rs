//! Running life against a real OpenBao with short TTLs: token renewal and
//! re-login, rotating database credentials that really log in, KV changes
//! with `on_change` actions and restarts, PKI certificates that never expire
//! in their file, and revocation at exit. Counts come from OpenBao's audit
//! log and the probe's own record of the signals it received.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::openbao::OpenBao;
use util::{Report, Scratch, Vinit};

/// Requests to `path` in an OpenBao audit log.
fn audit_requests(log: &Path, path: &str) -> usize {
    let needle = format!("\"path\":\"{path}\"");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"type\":\"request\"") && l.contains(&needle))
        .count()
}

/// Responses with an error to requests in an audit log.
fn audit_errors(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"type\":\"response\"") && l.contains("\"error\":\""))
        .map(String::from)
        .collect()
}

/// A config file in `scratch` with one template (`contents`, Jinja) that
/// renders to `name` in a fresh tmpfs directory; `head` goes before the
/// `[[template]]` table, `tail` inside it after `destination`.
struct OneTemplate {
    /// The tmpfs directory, removed when dropped.
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
    config: std::path::PathBuf,
}

fn one_template(scratch: &Scratch, name: &str, head: &str, contents: &str, tail: &str) -> OneTemplate {
    let dir = tempfile::tempdir_in("/dev/shm").expect("a tmpfs directory");
    let file = dir.path().join(name);
    let config = scratch.path("vinit.toml");
    let text = format!(
        "{head}[[template]]\ncontents = \"{contents}\"\ndestination = \"{}\"\n{tail}",
        file.display()
    );
    std::fs::write(&config, text).expect("write the config file");
    OneTemplate { dir, file, config }
}

/// `secret/app` holding `greeting`, and an AppRole whose tokens may read it
/// and live `ttl` up to `max_ttl`; returns (role_id, secret_id).
fn greeting_behind_approle(bao: &OpenBao, greeting: &str, ttl: &str, max_ttl: &str) -> (String, String) {
    bao.bao(&["kv", "put", "secret/app", &format!("greeting={greeting}")]);
    bao.policy("app", &["secret/data/app"]);
    let ids = bao.approle("app");
    bao.bao(&[
        "write",
        "auth/approle/role/app",
        "token_policies=app",
        &format!("token_ttl={ttl}"),
        &format!("token_max_ttl={max_ttl}"),
    ]);
    ids
}

fn approle_vinit(bao: &OpenBao, role_id: &str, secret_id: &str) -> Vinit {
    Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VINIT_AUTH_METHOD", "approle")
        .env("VINIT_ROLE_ID", role_id)
        .env("VINIT_SECRET_ID", secret_id)
}

/// Samples `file` every `every` for `span`; returns each distinct content
/// in the order seen.
fn sample_file(file: &Path, span: Duration, every: Duration, mut check: impl FnMut(&str)) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let end = Instant::now() + span;
    while Instant::now() < end {
        if let Ok(text) = std::fs::read_to_string(file) {
            check(&text);
            if seen.last() != Some(&text) {
                seen.push(text);
            }
        }
        std::thread::sleep(every);
    }
    seen
}

#[test]
fn approle_token_is_renewed_then_replaced_by_a_login_before_its_max_ttl() {
    let scratch = Scratch::new();
    let audit = scratch.path("audit.log");
    let bao = OpenBao::start_with_audit_log(&audit);
    let (role_id, secret_id) = greeting_behind_approle(&bao, "one", "5s", "15s");
    let OneTemplate {
        dir: _dir,
        file,
        config,
    } = one_template(
        &scratch,
        "greeting",
        "refresh = \"2s\"\n",
        "{{ secret('secret/data/app').greeting }}",
        "",
    );
    let (running, record) = util::start_recorder(
        approle_vinit(&bao, &role_id, &secret_id)
            .arg("--config")
            .arg(&config),
        &scratch,
        "TERM",
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(36));
    // After two token lifetimes, the token vinit holds must still read.
    bao.bao(&["kv", "put", "secret/app", "greeting=two"]);
    util::wait_until("the changed value in the file", || {
        (std::fs::read_to_string(&file).ok()? == "two").then_some(())
    });
    let elapsed = started.elapsed();
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(0);
    let logins = audit_requests(&audit, "auth/approle/login");
    let renewals = audit_requests(&audit, "auth/token/renew-self");
    let reads = audit_requests(&audit, "secret/data/app");
    // Per 15 s token life: a login, renewals at ~3.3, ~6.6, ~10 and ~13.3 s
    // (the last one granted under 2 s, so a login follows at once).
    let lives = elapsed.as_secs_f64() / 14.0;
    println!(
        "running life over {elapsed:?}: {logins} logins, {renewals} renewals, {reads} reads \
         (predicted: ~{:.1} logins, ~{:.1} renewals)",
        lives.ceil(),
        lives * 4.0
    );
    assert!((3..=4).contains(&logins), "logins: {logins}\n{}", finished.stderr);
    assert!(
        (8..=14).contains(&renewals),
        "renewals: {renewals}\n{}",
        finished.stderr
    );
    let denied: Vec<String> = audit_errors(&audit)
        .into_iter()
        .filter(|l| l.contains("permission denied"))
        .collect();
    assert!(
        denied.is_empty(),
        "a request was made with an expired token: {denied:?}"
    );
    assert_eq!(
        util::recorded(&record),
        [libc::SIGTERM],
        "the app got signals besides TERM"
    );
    // At exit vinit revoked the token it logged in with.
    assert!(audit_requests(&audit, "auth/token/revoke-self") >= 1);
}

#[test]
fn rotated_database_credentials_log_in_and_each_change_gives_one_sighup() {
    let pg = util::postgres::Postgres::start();
    let bao = OpenBao::start();
    util::postgres::database_engine(&bao, &pg, "default_ttl=5s", "max_ttl=15s");
    let scratch = Scratch::new();
    let OneTemplate {
        dir: _dir,
        file,
        config,
    } = one_template(
        &scratch,
        "db",
        "",
        "{{ secret('database/creds/app').username }} {{ secret('database/creds/app').password }}",
        "on_change = \"SIGHUP\"\n",
    );
    let (running, record) = util::start_recorder(bao.vinit().arg("--config").arg(&config), &scratch, "TERM");
    let mut checked = std::collections::HashSet::new();
    let versions = sample_file(
        &file,
        Duration::from_secs(34),
        Duration::from_millis(200),
        |text| {
            if checked.insert(text.to_string()) {
                let (user, password) = text.split_once(' ').expect("user and password");
                assert_eq!(
                    pg.login(user, password).as_deref(),
                    Ok(user),
                    "rendered credentials do not log in"
                );
            }
        },
    );
    // Let the last change's debounced SIGHUP arrive before stopping.
    std::thread::sleep(Duration::from_millis(1500));
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
    let hups = util::recorded(&record)
        .iter()
        .filter(|s| **s == libc::SIGHUP)
        .count();
    println!("{} credential sets in 34 s, {hups} SIGHUPs", versions.len());
    assert!(
        versions.len() >= 3,
        "credentials did not rotate: {} sets",
        versions.len()
    );
    assert_eq!(hups, versions.len() - 1, "one SIGHUP per change");
}

#[test]
fn a_kv_change_restarts_the_app_with_the_new_value_in_its_file_and_environment() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "token=first"]);
    let scratch = Scratch::new();
    let OneTemplate {
        dir: _dir,
        file,
        config,
    } = one_template(
        &scratch,
        "token",
        "",
        "{{ secret('secret/data/app').token }}",
        "on_change = \"restart\"\n",
    );
    let report = scratch.path("report");
    let running = bao
        .vinit()
        .env("VINIT_ENV_ON_CHANGE", "restart")
        .env("APP_TOKEN", "vault:secret/data/app#token")
        .args(["--config".into(), config.into_os_string()])
        .args(["--refresh", "1s", "--debounce", "200ms", "--grace", "2s"])
        .probe([
            format!("report={}", report.display()),
            format!("record={}", scratch.path("record").display()),
            "await=TERM".into(),
        ])
        .start();
    util::wait_for_file(&report);
    let first = Report::read(&report);
    assert_eq!(first.env_var("APP_TOKEN").as_deref(), Some("first"));
    std::fs::remove_file(&report).unwrap();
    bao.bao(&["kv", "put", "secret/app", "token=second"]);
    util::wait_for_file(&report);
    let second = Report::read(&report);
    assert_eq!(second.env_var("APP_TOKEN").as_deref(), Some("second"));
    assert_ne!(first.int("pid"), second.int("pid"), "the app was not restarted");
    assert_eq!(
        second.int("ppid"),
        running.pid(),
        "the new app is not vinit's child"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "second");
    assert!(util::alive(running.pid()), "vinit itself went away");
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn a_stop_signal_while_a_restart_ends_the_old_apps_leftovers_cancels_the_new_start() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "token=first"]);
    let scratch = Scratch::new();
    let (report, linger) = (scratch.path("report"), scratch.path("linger"));
    let running = bao
        .vinit()
        .env("VINIT_ENV_ON_CHANGE", "restart")
        .env("APP_TOKEN", "vault:secret/data/app#token")
        .args(["--refresh", "1s", "--debounce", "200ms", "--grace", "2s"])
        .probe([
            format!("report={}", report.display()),
            format!("linger={}:stubborn", linger.display()),
            format!("record={}", scratch.path("record").display()),
            "await=TERM".into(),
        ])
        .start();
    util::wait_for_file(&report);
    std::fs::remove_file(&report).unwrap();
    bao.bao(&["kv", "put", "secret/app", "token=second"]);
    // The old app has ended and vinit is asking its stubborn orphan to
    // stop, which takes the whole grace: the orchestrator stops the
    // container now.
    util::wait_for_file(&scratch.path("linger.term"));
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(0);
    assert!(
        !report.exists(),
        "the app started again after the stop signal: {}",
        finished.stderr
    );
}

#[test]
fn without_restart_a_changed_variable_is_named_in_a_warning_and_the_file_changes() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "token=first-value"]);
    let scratch = Scratch::new();
    let OneTemplate {
        dir: _dir,
        file,
        config,
    } = one_template(&scratch, "token", "", "{{ secret('secret/data/app').token }}", "");
    let (running, record) = util::start_recorder(
        bao.vinit()
            .env("APP_TOKEN", "vault:secret/data/app#token")
            .args(["--config".into(), config.into_os_string()])
            .args(["--refresh", "1s"]),
        &scratch,
        "TERM",
    );
    bao.bao(&["kv", "put", "secret/app", "token=second-value"]);
    util::wait_until("the file to change", || {
        (std::fs::read_to_string(&file).ok()? == "second-value").then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(0);
    assert!(
        finished.stderr.contains("APP_TOKEN changed in Vault"),
        "no warning names the variable:\n{}",
        finished.stderr
    );
    for value in ["first-value", "second-value"] {
        assert!(
            !finished.stderr.contains(value),
            "a value reached the log:\n{}",
            finished.stderr
        );
    }
    assert_eq!(
        util::recorded(&record),
        [libc::SIGTERM],
        "on_change none sent a signal"
    );
}

#[test]
fn a_pki_certificate_in_its_file_never_expires_and_always_matches_its_key() {
    let bao = OpenBao::start();
    bao.pki_role_web("1h");
    let scratch = Scratch::new();
    let OneTemplate { dir: _dir, file, config } = one_template(
        &scratch,
        "tls.pem",
        "[[issue]]\nname = \"tls\"\npath = \"pki/issue/web\"\ndata = { common_name = \"web.internal\", ttl = \"10s\" }\n",
        "{{ issued('tls').certificate }}\\n{{ issued('tls').private_key }}\\n",
        "",
    );
    let (running, _) = util::start_recorder(bao.vinit().arg("--config").arg(&config), &scratch, "TERM");
    let mut ends: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let versions = sample_file(
        &file,
        Duration::from_secs(30),
        Duration::from_millis(100),
        |pem| {
            let end = *ends.entry(pem.to_string()).or_insert_with(|| {
                assert_eq!(
                    util::keys::public_key_of_cert(pem),
                    util::keys::public_key_of_key(pem),
                    "key and certificate differ"
                );
                util::keys::not_after(pem)
            });
            assert!(util::keys::now() < end, "the file holds an expired certificate");
        },
    );
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
    println!("{} certificates in 30 s", versions.len());
    assert!(
        versions.len() >= 4,
        "the certificate was not issued again: {}",
        versions.len()
    );
}

#[test]
fn at_exit_vinit_revokes_its_token_and_leases_unless_told_not_to() {
    let pg = util::postgres::Postgres::start();
    let bao = OpenBao::start();
    util::postgres::database_engine(&bao, &pg, "default_ttl=1h", "max_ttl=2h");
    bao.policy("app", &["database/creds/app"]);
    let (role_id, secret_id) = bao.approle("app");
    let leases = || bao.lease_count("database/creds/app");
    let scratch = Scratch::new();
    let report = scratch.path("report");
    let run = |revoke: &str| {
        let running = approle_vinit(&bao, &role_id, &secret_id)
            .env("VINIT_REVOKE", revoke)
            .env("DB_USER", "vault:database/creds/app#username")
            .env("APP_VAULT_TOKEN", "vault:login")
            .probe([
                format!("report={}", report.display()),
                format!("record={}", scratch.path("record").display()),
                "await=TERM".into(),
            ])
            .start();
        util::wait_for_file(&report);
        let token = Report::read(&report).env_var("APP_VAULT_TOKEN").unwrap();
        std::fs::remove_file(&report).unwrap();
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        finished.expect_code(0);
        token
    };
    let token = run("true");
    let lookup = std::process::Command::new(util::openbao::bao_binary())
        .args(["token", "lookup", &token])
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", "root")
        .output()
        .unwrap();
    assert!(
        !lookup.status.success(),
        "the token vinit logged in with is still valid"
    );
    assert_eq!(leases(), 0, "the database lease survived vinit");

    let kept = run("false");
    bao.bao(&["token", "lookup", &kept]);
    assert_eq!(leases(), 1, "VINIT_REVOKE=false did not keep the lease");

    // A token the user supplied is never revoked; its leases are.
    bao.bao_stdin(
        &["policy", "write", "app-revoke", "-"],
        "path \"database/creds/app\" { capabilities = [\"read\"] }\npath \"sys/leases/revoke\" { capabilities = [\"update\"] }\n",
    );
    let given = bao.bao_json(&["token", "create", "-format=json", "-policy=app-revoke", "-ttl=1h"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let running = Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &given)
        .env("DB_USER", "vault:database/creds/app#username")
        .probe([
            format!("record={}", scratch.path("record2").display()),
            format!("ready={}", report.display()),
            "await=TERM".into(),
        ])
        .start();
    util::wait_for_file(&report);
    assert_eq!(leases(), 2);
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
    bao.bao(&["token", "lookup", &given]);
    assert_eq!(leases(), 1, "the lease read with the given token was not revoked");
}

/// A Vault stand-in that answers every request with a renewable one-second
/// lease (reads and renewals alike).
fn one_second_leases() -> util::fault::FaultServer {
    util::fault::FaultServer::start(vec![util::fault::Reply::json(
        200,
        r#"{"lease_id":"dyn/creds/x","lease_duration":1,"renewable":true,"data":{"k":"v-lease"}}"#,
    )])
}

#[test]
fn memory_stays_flat_over_a_thousand_renewals() {
    let server = one_second_leases();
    let scratch = Scratch::new();
    let mut vinit = Vinit::subreaper()
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", "t");
    for n in 0..50 {
        vinit = vinit.env(&format!("V{n}"), format!("vault:dyn/creds/p{n}#k"));
    }
    let (running, _) = util::start_recorder(vinit, &scratch, "TERM");
    util::wait_until("the first round of renewals", || {
        (server.served() >= 110).then_some(())
    });
    let first = util::rss_kib(running.pid());
    let slow = std::time::Instant::now() + Duration::from_secs(60);
    while server.served() < 1_110 {
        assert!(
            std::time::Instant::now() < slow,
            "renewals stalled at {}",
            server.served()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = util::rss_kib(running.pid());
    println!("RSS after the first 50 renewals: {first} KiB; after 1,000 more: {after} KiB");
    assert!(after * 10 <= first * 11, "RSS grew from {first} to {after} KiB");
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn idle_means_no_wake_up_when_the_next_refresh_is_minutes_away() {
    let server = util::fault::FaultServer::start(vec![util::fault::Reply::kv2(r#"{"k":"v-idle"}"#)]);
    let scratch = Scratch::new();
    let (running, _) = util::start_recorder(
        Vinit::subreaper()
            .env("VAULT_ADDR", &server.addr)
            .env("VAULT_TOKEN", "t")
            .env("K", "vault:secret/data/app#k"),
        &scratch,
        "TERM",
    );
    // Start-up's connections are closed as soon as the app runs.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.served(), 1, "only the start-up read so far");
    assert_eq!(
        util::sockets(running.pid()),
        0,
        "vinit still holds start-up's connection to Vault"
    );
    // The given token's TTL is looked up within two seconds of the start.
    util::wait_until("the token lookup", || (server.served() >= 2).then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        util::sockets(running.pid()),
        0,
        "vinit holds a connection to Vault while idle"
    );
    util::assert_idle(running.pid(), Duration::from_secs(10));
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn no_connection_to_vault_stays_open_once_the_app_runs() {
    let bao = OpenBao::start();
    let mut vinit = bao.vinit();
    for n in 0..5 {
        bao.bao(&["kv", "put", &format!("secret/p{n}"), "k=v-conn"]);
        vinit = vinit.env(&format!("V{n}"), format!("vault:secret/data/p{n}#k"));
    }
    let scratch = Scratch::new();
    let (running, _) = util::start_recorder(vinit, &scratch, "TERM");
    // OpenBao keeps connections alive: only vinit can close them.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        util::sockets(running.pid()),
        0,
        "start-up's connections are still open"
    );
    // After the token lookup of running life, none either.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        util::sockets(running.pid()),
        0,
        "running life keeps a connection open"
    );
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn signals_are_forwarded_and_orphans_reaped_while_a_vault_request_hangs() {
    let answer = util::fault::Reply::kv2(r#"{"k":"v-hang"}"#);
    // Start-up gets its answer; every later request hangs for an hour.
    let server =
        util::fault::FaultServer::start(vec![answer.clone(), answer.after(Duration::from_secs(3600))]);
    let scratch = Scratch::new();
    let (record, ready) = (scratch.path("record"), scratch.path("ready"));
    let running = Vinit::subreaper()
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", "t")
        .env("K", "vault:secret/data/app#k")
        .args(["--refresh", "1s"])
        .probe([
            "sleep=2500".to_string(),
            "orphans=100".to_string(),
            format!("record={}", record.display()),
            format!("ready={}", ready.display()),
            "await=TERM".to_string(),
        ])
        .start();
    util::wait_for_file(&ready);
    assert!(server.served() >= 2, "no request is hanging yet");
    running.signal(libc::SIGUSR1);
    util::wait_for_signal(&record, libc::SIGUSR1);
    util::wait_until("every orphan reaped", || {
        let children = util::children_of(running.pid());
        (children.len() == 1 && children.iter().all(|(_, state)| *state != 'Z')).then_some(())
    });
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn inherited_descriptors_are_closed_after_the_spawn_unless_a_restart_may_need_them() {
    use std::io::Read as _;
    for (on_change, expect_eof) in [("ignore", true), ("restart", false)] {
        let server = util::fault::FaultServer::start(vec![util::fault::Reply::kv2(r#"{"k":"v-fd"}"#)]);
        let scratch = Scratch::new();
        let fifo = scratch.path("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let reader_path = fifo.clone();
        std::thread::spawn(move || {
            let mut reader = std::fs::File::open(reader_path).unwrap();
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            let _ = tx.send(());
        });
        let (record, ready) = (scratch.path("record"), scratch.path("ready"));
        // The app closes its copy at once, then waits for TERM.
        let app = format!(
            "exec 3>&-; exec {} record={} ready={} await=TERM",
            util::PROBE,
            record.display(),
            ready.display()
        );
        let running = Vinit::subreaper_with_fd3(&fifo)
            .env("VAULT_ADDR", &server.addr)
            .env("VAULT_TOKEN", "t")
            .env("VINIT_ENV_ON_CHANGE", on_change)
            .env("K", "vault:secret/data/app#k")
            .args(["--", "sh", "-c", &app])
            .start();
        util::wait_for_file(&ready);
        let eof = rx.recv_timeout(Duration::from_secs(2)).is_ok();
        assert_eq!(
            eof, expect_eof,
            "VINIT_ENV_ON_CHANGE={on_change}: end-of-file seen: {eof}"
        );
        running.signal(libc::SIGTERM);
        running.wait().expect_code(0);
    }
}

#[test]
fn an_openbao_outage_never_reaches_the_app_and_vinit_catches_up() {
    let mut bao = OpenBao::start_raft();
    let (role_id, secret_id) = greeting_behind_approle(&bao, "before", "6s", "1h");
    let scratch = Scratch::new();
    let OneTemplate {
        dir: _dir,
        file,
        config,
    } = one_template(
        &scratch,
        "greeting",
        "refresh = \"2s\"\n",
        "{{ secret('secret/data/app').greeting }}",
        "on_change = \"SIGHUP\"\n",
    );
    let (running, record) = util::start_recorder(
        approle_vinit(&bao, &role_id, &secret_id)
            .env("VINIT_LOG_FORMAT", "json")
            .arg("--config")
            .arg(&config),
        &scratch,
        "TERM",
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    bao.stop();
    let down = started.elapsed();
    std::thread::sleep(Duration::from_secs(20));
    assert!(util::alive(running.pid()), "vinit died during the outage");
    assert!(
        util::recorded(&record).is_empty(),
        "the app was signalled during the outage"
    );
    bao.resume();
    let up = started.elapsed();
    bao.bao(&["kv", "put", "secret/app", "greeting=after"]);
    let deadline = Instant::now() + Duration::from_secs(45);
    while std::fs::read_to_string(&file).unwrap_or_default() != "after" {
        assert!(
            Instant::now() < deadline,
            "vinit did not catch up after the outage"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let caught_up = started.elapsed();
    util::wait_for_signal(&record, libc::SIGHUP);
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(0);
    assert_eq!(
        util::recorded(&record),
        [libc::SIGHUP, libc::SIGTERM],
        "the app got other signals"
    );
    println!("OpenBao down at {down:?}, up at {up:?}, the change reached the file at {caught_up:?}");
    for line in finished.stderr.lines() {
        println!("{line}");
    }
    assert!(
        finished.stderr.contains("next try in"),
        "no retry was announced:\n{}",
        finished.stderr
    );
}
