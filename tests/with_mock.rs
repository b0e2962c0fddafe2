//! vinit against vinit-mock-vault's knobs, where a real OpenBao cannot be
//! made to misbehave on cue: a 429 with `Retry-After` and a sealed spell
//! during start-up, and a token revoked under a running vinit. Asserted
//! through the mock's request counts and log.
#![allow(clippy::unwrap_used)]

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
use util::mock::Mock;
use util::{Report, Scratch, Vinit};

const SEED: &str = r#"
policies:
  app: [secret/data/app]
kv:
  secret:
    secrets:
      app: {db_password: pw}
auth:
  approle:
    type: approle
    roles:
      app: {role_id: r, secret_ids: [s], policies: [app], ttl: 3s, max_ttl: 1h}
"#;

fn vinit(mock: &Mock) -> Vinit {
    Vinit::subreaper()
        .env("VAULT_ADDR", &mock.addr)
        .env("VINIT_AUTH_METHOD", "approle")
        .env("VINIT_ROLE_ID", "r")
        .env("VINIT_SECRET_ID", "s")
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
}

#[test]
fn start_up_honours_retry_after_and_waits_out_a_sealed_spell() {
    let mock = Mock::start(SEED);
    mock.add_fault(json!({"path": "secret/data/app", "rate_limited": "1s", "times": 1}));
    mock.add_fault(json!({"path": "auth/+/login", "sealed": true, "times": 2}));
    let scratch = Scratch::new();
    let report = scratch.path("report");
    let started = Instant::now();
    vinit(&mock)
        .probe([format!("report={}", report.display())])
        .run()
        .expect_code(0);
    assert_eq!(
        Report::read(&report).env_var("DB_PASSWORD").as_deref(),
        Some("pw")
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(mock.count("POST", "auth/approle/login"), 3, "{}", mock.log());
    assert_eq!(mock.count("GET", "secret/data/app"), 2, "{}", mock.log());
    let log = mock.log();
    assert!(log.contains("POST /v1/auth/approle/login 503"), "{log}");
    assert!(log.contains("GET /v1/secret/data/app 429"), "{log}");
}

#[test]
fn a_token_revoked_under_a_running_vinit_is_replaced_by_a_login() {
    let mock = Mock::start(SEED);
    let scratch = Scratch::new();
    let report = scratch.path("report");
    let running = vinit(&mock)
        .probe([format!("report={}", report.display()), "sleep=6000".into()])
        .start();
    Report::read(&report);
    assert_eq!(mock.revoke(json!({"logins": true})), 1);
    // The renewal due at two thirds of the 3 s TTL fails (403); vinit logs in again.
    mock.wait_for_log("POST /v1/auth/token/renew-self 403");
    let deadline = Instant::now() + util::PATIENCE;
    while mock.count("POST", "auth/approle/login") < 2 {
        assert!(Instant::now() < deadline, "no second login:\n{}", mock.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    running.wait().expect_code(0);
    let log = mock.log();
    let relogin = log.find("renew-self 403").unwrap();
    assert!(
        log[relogin..].contains("POST /v1/auth/approle/login 200"),
        "{log}"
    );
}
