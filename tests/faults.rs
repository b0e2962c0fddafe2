//! Start-up against a misbehaving Vault (a scripted server on loopback) and
//! bad input: every failure gets its documented exit code and a message
//! naming what is at fault, the app is never started, no file is left.

mod util;

use std::time::{Duration, Instant};

use util::fault::{FaultServer, Reply};
use util::{Scratch, Vinit};

const GOOD: &str = r#"{"db_password":"pw"}"#;

/// vinit reading one secret from `addr`; the app reports (proof it ran).
fn vinit_against(addr: &str, scratch: &Scratch) -> Vinit {
    vinit_with_config(addr, scratch, None)
}

fn vinit_with_config(addr: &str, scratch: &Scratch, config: Option<&std::path::Path>) -> Vinit {
    let mut vinit = Vinit::subreaper();
    if let Some(path) = config {
        vinit = vinit.arg("--config").arg(path);
    }
    vinit
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", "t")
        .env("VINIT_TIMEOUT", "3s")
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .probe([format!("report={}", scratch.file("ran"))])
}

fn app_ran(scratch: &Scratch) -> bool {
    scratch.path("ran").exists()
}

#[test]
fn connection_refused_then_up_is_retried() {
    let scratch = Scratch::new();
    let port = util::openbao::free_port();
    let running = vinit_against(&format!("http://127.0.0.1:{port}"), &scratch).start();
    std::thread::sleep(Duration::from_millis(700));
    assert!(!app_ran(&scratch), "the app started without its secret");
    let server = FaultServer::start_on_port(port, vec![Reply::kv2(GOOD)]);
    running.wait().expect_code(0);
    assert!(app_ran(&scratch));
    assert_eq!(server.served(), 1);
}

#[test]
fn sealed_and_server_errors_are_retried_until_vault_answers() {
    let scratch = Scratch::new();
    let sealed = Reply::json(503, r#"{"errors":["Vault is sealed"]}"#);
    let server = FaultServer::start(vec![
        sealed.clone(),
        sealed,
        Reply::json(500, r#"{"errors":["internal error"]}"#),
        Reply::json(502, ""),
        Reply::kv2(GOOD),
    ]);
    vinit_against(&server.addr, &scratch).run().expect_code(0);
    assert_eq!(server.served(), 5);
    assert!(app_ran(&scratch));
}

#[test]
fn rate_limits_honour_retry_after() {
    let scratch = Scratch::new();
    let server = FaultServer::start(vec![
        Reply::json(429, r#"{"errors":["rate limit quota exceeded"]}"#).header("Retry-After", "1"),
        Reply::kv2(GOOD),
    ]);
    let finished = vinit_against(&server.addr, &scratch).run();
    finished.expect_code(0);
    assert!(
        finished.elapsed >= Duration::from_secs(1),
        "did not wait for Retry-After: {:?}",
        finished.elapsed
    );
    assert_eq!(server.served(), 2);
}

#[test]
fn failing_until_the_deadline_is_69() {
    let scratch = Scratch::new();
    let server = FaultServer::start(vec![Reply::json(503, r#"{"errors":["Vault is sealed"]}"#)]);
    let finished = vinit_against(&server.addr, &scratch)
        .env("VINIT_TIMEOUT", "1500ms")
        .run();
    finished.expect_code(69);
    assert!(
        finished.stderr.contains("HTTP 503: Vault is sealed"),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("VINIT_TIMEOUT"), "{}", finished.stderr);
    assert!(
        finished.elapsed < Duration::from_secs(4),
        "overran the deadline: {:?}",
        finished.elapsed
    );
    assert!(server.served() > 2, "no retries: {}", server.served());
    assert!(!app_ran(&scratch));

    let refused = format!("http://127.0.0.1:{}", util::openbao::free_port());
    let finished = vinit_against(&refused, &scratch).env("VINIT_TIMEOUT", "1s").run();
    finished.expect_code(69);
    assert!(finished.stderr.contains("refused"), "{}", finished.stderr);
}

#[test]
fn a_slow_answer_past_the_deadline_is_69() {
    let scratch = Scratch::new();
    let server = FaultServer::start(vec![Reply::kv2(GOOD).after(Duration::from_secs(10))]);
    let started = Instant::now();
    let finished = vinit_against(&server.addr, &scratch)
        .env("VINIT_TIMEOUT", "1s")
        .run();
    finished.expect_code(69);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(!app_ran(&scratch));
}

#[test]
fn permanent_answers_fail_at_once_with_their_code() {
    let cases: Vec<(Reply, i32, &str)> = vec![
        (
            Reply::json(403, r#"{"errors":["permission denied"]}"#),
            77,
            "permission denied",
        ),
        (
            Reply::json(404, r#"{"errors":[]}"#),
            65,
            "no secret at secret/data/app",
        ),
        (
            Reply::json(400, r#"{"errors":["bad version"]}"#),
            78,
            "bad version",
        ),
        (Reply::json(200, "{not json"), 69, "invalid JSON"),
        (
            Reply::kv2(r#"{"other":"x"}"#),
            65,
            "has no key \"db_password\" (it has: other)",
        ),
    ];
    for (reply, code, says) in cases {
        let scratch = Scratch::new();
        let server = FaultServer::start(vec![reply]);
        let finished = vinit_against(&server.addr, &scratch)
            .env("VINIT_TIMEOUT", "20s")
            .run();
        finished.expect_code(code);
        assert!(
            finished.stderr.contains(says),
            "expected {says:?}: {}",
            finished.stderr
        );
        assert!(
            finished.stderr.contains("DB_PASSWORD"),
            "the variable is not named: {}",
            finished.stderr
        );
        assert_eq!(server.served(), 1, "a permanent failure was retried");
        assert!(
            finished.elapsed < Duration::from_secs(3),
            "{:?}",
            finished.elapsed
        );
        assert!(!app_ran(&scratch));
    }
}

#[test]
fn a_stop_signal_during_start_up_aborts_it_at_once() {
    let scratch = Scratch::new();
    let server = FaultServer::start(vec![Reply::kv2(GOOD).after(Duration::from_secs(30))]);
    let running = vinit_against(&server.addr, &scratch)
        .env("VINIT_TIMEOUT", "60s")
        .start();
    util::wait_until("vinit to ask Vault", || (server.served() > 0).then_some(()));
    let sent = Instant::now();
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(128 + libc::SIGTERM);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "abort took {:?}",
        sent.elapsed()
    );
    assert!(
        finished.stderr.contains("the app was not started"),
        "{}",
        finished.stderr
    );
    assert!(!app_ran(&scratch));
}

#[test]
fn malformed_references_are_78_naming_the_variable() {
    for value in [
        "vault:",
        "vault:secret/data/app",
        "vault:#key",
        "vault:secret/data/app#key#two",
        "bao:secret/data/app#",
        "x${vault:secret/data/app#key",
    ] {
        let scratch = Scratch::new();
        let finished = Vinit::subreaper()
            .env("VAULT_ADDR", "http://127.0.0.1:1")
            .env("VAULT_TOKEN", "t")
            .env("DB_PASSWORD", value)
            .probe([format!("report={}", scratch.file("ran"))])
            .run();
        finished.expect_code(78);
        assert!(
            finished.stderr.starts_with("vinit: DB_PASSWORD: "),
            "{value}: {}",
            finished.stderr
        );
        assert!(!app_ran(&scratch));
    }
}

#[test]
fn conflicting_twins_and_missing_settings_are_78() {
    let scratch = Scratch::new();
    let finished = Vinit::subreaper()
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .env("BAO_ADDR", "http://127.0.0.1:2")
        .env("VAULT_TOKEN", "t")
        .env("DB_PASSWORD", "vault:secret/data/app#k")
        .probe(["exit=0"])
        .run();
    finished.expect_code(78);
    assert!(
        finished.stderr.contains("VAULT_ADDR and BAO_ADDR"),
        "{}",
        finished.stderr
    );

    let finished = Vinit::subreaper()
        .env("DB_PASSWORD", "vault:secret/data/app#k")
        .probe(["exit=0"])
        .run();
    finished.expect_code(78);
    assert!(finished.stderr.contains("VAULT_ADDR"), "{}", finished.stderr);

    // Nothing asks for a secret: Vault settings are not even looked at.
    let finished = Vinit::subreaper()
        .env("VAULT_ADDR", "not a url")
        .env("BAO_ADDR", "also different")
        .probe([format!("report={}", scratch.file("ran"))])
        .run();
    finished.expect_code(0);
    assert!(app_ran(&scratch));
}

/// Writes `contents` as a config file; returns its path.
fn config(scratch: &Scratch, contents: &str) -> std::path::PathBuf {
    let path = scratch.path("vinit.toml");
    std::fs::write(&path, contents).expect("config file");
    path
}

#[test]
fn config_file_errors_are_78_naming_file_and_key() {
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    let cases = [
        ("[auth\nmethod = 1\n", "vinit.toml"),
        (
            "[[template]]\ncontents = \"x\"\ndestinaton = \"/dev/shm/x\"\n",
            "destinaton",
        ),
        ("[vault]\nadress = \"http://x\"\n", "adress"),
        (
            "[[template]]\ncontents = \"{{ secret('a'\"\ndestination = \"/dev/shm/x\"\n",
            "line 1",
        ),
        (
            "[[template]]\nsource = \"missing.tmpl\"\ndestination = \"/dev/shm/x\"\n",
            "missing.tmpl",
        ),
        (
            "[[template]]\ncontents = \"{{ issued('nope').x }}\"\ndestination = \"/dev/shm/x\"\n",
            "nope",
        ),
    ];
    for (contents, names) in cases {
        let scratch = Scratch::new();
        let path = config(&scratch, contents);
        let finished = Vinit::subreaper()
            .env("VAULT_ADDR", "http://127.0.0.1:1")
            .env("VAULT_TOKEN", "t")
            .arg("--config")
            .arg(&path)
            .probe([format!("report={}", scratch.file("ran"))])
            .run();
        finished.expect_code(78);
        assert!(
            finished.stderr.contains(names),
            "{names:?} not named: {}",
            finished.stderr
        );
        assert!(!app_ran(&scratch));
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn a_destination_on_a_disk_is_73_and_nothing_is_left() {
    let server = FaultServer::start(vec![Reply::kv2(GOOD)]);
    let scratch = Scratch::new();
    let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let path = config(
        &scratch,
        &format!(
            "[[template]]\ncontents = \"{{{{ secret('secret/data/app').db_password }}}}\"\ndestination = \"{}/ok\"\n\
             [[template]]\ncontents = \"{{{{ secret('secret/data/app').db_password }}}}\"\ndestination = \"{}/bad\"\n",
            shm.path().display(),
            disk.path().display()
        ),
    );
    let finished = vinit_with_config(&server.addr, &scratch, Some(&path)).run();
    finished.expect_code(73);
    assert!(finished.stderr.contains("not on tmpfs"), "{}", finished.stderr);
    assert!(
        finished.stderr.contains(&disk.path().display().to_string()),
        "{}",
        finished.stderr
    );
    assert!(!app_ran(&scratch));
    assert_eq!(
        std::fs::read_dir(shm.path()).unwrap().count(),
        0,
        "a file was left on tmpfs"
    );
    assert_eq!(
        std::fs::read_dir(disk.path()).unwrap().count(),
        0,
        "a file was left on disk"
    );
}

#[test]
fn a_missing_key_in_a_template_leaves_no_file() {
    let server = FaultServer::start(vec![Reply::kv2(GOOD)]);
    let scratch = Scratch::new();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let path = config(
        &scratch,
        &format!(
            "[[template]]\ncontents = \"{{{{ secret('secret/data/app').db_pasword }}}}\"\ndestination = \"{}/x\"\n",
            shm.path().display()
        ),
    );
    let finished = vinit_with_config(&server.addr, &scratch, Some(&path)).run();
    finished.expect_code(65);
    assert!(
        finished
            .stderr
            .contains("has no key \"db_pasword\" (it has: db_password)"),
        "{}",
        finished.stderr
    );
    assert_eq!(std::fs::read_dir(shm.path()).unwrap().count(), 0);
    assert!(!app_ran(&scratch));
}

#[test]
fn files_are_removed_when_the_app_cannot_start() {
    let server = FaultServer::start(vec![Reply::kv2(GOOD)]);
    let scratch = Scratch::new();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let path = config(
        &scratch,
        &format!(
            "[[template]]\ncontents = \"{{{{ secret('secret/data/app').db_password }}}}\"\ndestination = \"{}/x\"\n",
            shm.path().display()
        ),
    );
    let garbage = scratch.path("garbage");
    std::fs::write(&garbage, [0u8, 1, 2, 3]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
    let finished = Vinit::subreaper()
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", "t")
        .arg("--config")
        .arg(&path)
        .arg(&garbage)
        .run();
    finished.expect_code(126);
    assert_eq!(
        std::fs::read_dir(shm.path()).unwrap().count(),
        0,
        "the rendered file outlived the failed start"
    );
}

#[test]
fn retry_after_zero_is_a_floor_not_a_licence_to_hammer() {
    // OpenBao's quota headers answer `Retry-After: 0`; taking it literally
    // sent thousands of requests a second.
    let scratch = Scratch::new();
    let limited = Reply::json(429, r#"{"errors":["rate limit quota exceeded"]}"#).header("Retry-After", "0");
    let server = FaultServer::start(vec![limited]);
    let finished = vinit_against(&server.addr, &scratch)
        .env("VINIT_TIMEOUT", "3s")
        .run();
    finished.expect_code(69);
    assert!(!app_ran(&scratch));
    // 50 ms doubling to 2 s, full jitter: about 10 tries in 3 s, never hundreds.
    assert!(server.served() <= 25, "{} requests in 3 s", server.served());
    assert!(server.served() >= 3, "gave up too early: {}", server.served());
}
