//! The mock over real HTTP: each fault knob, the time warp against
//! renewal, counts, the request log (never a value), the healthcheck
//! subcommand, and seed errors at start. Drives the built binary with curl.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_vinit-mock-vault");

const SEED: &str = r#"
policies:
  app: [secret/data/app, database/creds/app]
tokens:
  - {id: root, policies: [root]}
kv:
  secret:
    secrets:
      app: {db_password: s3cr3t-value}
auth:
  approle:
    type: approle
    roles:
      app: {role_id: role-1, secret_ids: [secret-id-value], policies: [app], ttl: 60s, max_ttl: 10m}
dynamic:
  database/creds/app: {ttl: 30s}
"#;

struct Mock {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
    _seed: tempfile::NamedTempFile,
}

impl Mock {
    fn start(seed: &str) -> Mock {
        let seed_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(seed_file.path(), seed).unwrap();
        let mut child = Command::new(BINARY)
            .args(["--listen", "127.0.0.1:0", "--seed"])
            .arg(seed_file.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let addr = first.trim().rsplit(' ').next().unwrap().to_string();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Mock {
            child,
            addr,
            log,
            _seed: seed_file,
        }
    }

    /// `curl` a path: (exit code of curl, HTTP status, headers+body text).
    fn curl(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        max_time: &str,
    ) -> (i32, u16, String) {
        let mut command = Command::new("curl");
        command.args(["-sS", "-i", "--max-time", max_time, "-X", method]);
        if let Some(token) = token {
            command.args(["-H", &format!("X-Vault-Token: {token}")]);
        }
        if let Some(body) = body {
            command.args(["-d", &body.to_string()]);
        }
        let output = command.arg(format!("{}{path}", self.addr)).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (output.status.code().unwrap_or(-1), status, text)
    }

    fn status(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> u16 {
        self.curl(method, path, token, body, "5").1
    }

    fn json(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let (_, _, text) = self.curl(method, path, token, body, "5");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        self.json(method, &format!("/admin/{path}"), None, Some(body))
    }

    fn login(&self) -> String {
        let answer = self.json(
            "POST",
            "/v1/auth/approle/login",
            None,
            Some(json!({"role_id": "role-1", "secret_id": "secret-id-value"})),
        );
        answer["auth"]["client_token"].as_str().unwrap().to_string()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const READ: &str = "/v1/secret/data/app";

#[test]
fn sealed_answers_503_everywhere_and_health_says_so() {
    let mock = Mock::start(SEED);
    mock.admin("POST", "faults", json!({"sealed": true}));
    assert_eq!(mock.status("GET", READ, Some("root"), None), 503);
    let health = mock.json("GET", "/v1/sys/health", None, None);
    assert_eq!(health["sealed"], true);
    assert_eq!(mock.status("GET", "/v1/sys/health", None, None), 503);
    assert!(!healthcheck(&mock.addr).status.success());
    mock.admin("DELETE", "faults", json!({}));
    assert_eq!(mock.status("GET", READ, Some("root"), None), 200);
    assert!(healthcheck(&mock.addr).status.success());
}

#[test]
fn rate_limit_sends_a_nonzero_retry_after_then_runs_out() {
    let mock = Mock::start(SEED);
    mock.admin(
        "POST",
        "faults",
        json!({"path": "secret/*", "rate_limited": "3s", "times": 1}),
    );
    let (_, status, text) = mock.curl("GET", READ, Some("root"), None, "5");
    assert_eq!(status, 429);
    assert!(text.to_lowercase().contains("retry-after: 3"), "{text}");
    assert_eq!(mock.status("GET", READ, Some("root"), None), 200);
}

#[test]
fn latency_jitter_error_rate_hang_and_reset() {
    let mock = Mock::start(SEED);
    mock.admin(
        "POST",
        "faults",
        json!({"path": READ.trim_start_matches("/v1/"), "latency": "300ms", "jitter": "100ms", "times": 1}),
    );
    let started = Instant::now();
    assert_eq!(mock.status("GET", READ, Some("root"), None), 200);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );

    mock.admin(
        "PUT",
        "faults",
        json!({"faults": [{"error_rate": 1.0, "error_status": 502, "method": "GET"}]}),
    );
    assert_eq!(mock.status("GET", READ, Some("root"), None), 502);
    assert_eq!(
        mock.status("POST", "/v1/auth/approle/login", None, Some(json!({}))),
        400
    );
    mock.admin("PUT", "faults", json!({"faults": [{"error_rate": 0.0}]}));
    assert_eq!(mock.status("GET", READ, Some("root"), None), 200);

    mock.admin("PUT", "faults", json!({"faults": [{"hang": true, "times": 1}]}));
    let (curl_code, _, _) = mock.curl("GET", READ, Some("root"), None, "1");
    assert_eq!(curl_code, 28, "curl should time out on a hang");

    mock.admin("PUT", "faults", json!({"faults": [{"reset": true, "times": 1}]}));
    let (curl_code, _, _) = mock.curl("GET", READ, Some("root"), None, "5");
    assert!(
        matches!(curl_code, 52 | 56),
        "curl should see a reset, got {curl_code}"
    );
    assert_eq!(mock.status("GET", READ, Some("root"), None), 200);
}

#[test]
fn time_warp_expires_tokens_and_leases_unless_renewed() {
    let mock = Mock::start(SEED);
    let token = mock.login();
    mock.admin("POST", "time", json!({"advance": "50s"}));
    assert_eq!(
        mock.status("POST", "/v1/auth/token/renew-self", Some(&token), Some(json!({}))),
        200
    );
    mock.admin("POST", "time", json!({"advance": "50s"}));
    assert_eq!(
        mock.status("GET", READ, Some(&token), None),
        200,
        "renewed: still valid at 100s"
    );
    mock.admin("POST", "time", json!({"advance": "61s"}));
    assert_eq!(
        mock.status("GET", READ, Some(&token), None),
        403,
        "expired after its TTL"
    );

    let token = mock.login();
    let lease = mock.json("GET", "/v1/database/creds/app", Some(&token), None)["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let renew = || {
        mock.status(
            "PUT",
            "/v1/sys/leases/renew",
            Some(&token),
            Some(json!({"lease_id": lease})),
        )
    };
    mock.admin("POST", "fail-next-renew", json!({"status": 503}));
    assert_eq!(renew(), 503, "the next renewal fails");
    assert_eq!(renew(), 200, "only the next one");
    mock.admin("POST", "time", json!({"advance": "31s"}));
    assert_eq!(renew(), 400, "the lease ran out");
}

#[test]
fn revoke_now_counts_and_a_log_without_values() {
    let mock = Mock::start(SEED);
    let token = mock.login();
    assert_eq!(mock.status("GET", READ, Some(&token), None), 200);
    assert_eq!(mock.status("GET", READ, Some(&token), None), 200);
    let revoked = mock.admin("POST", "revoke", json!({"token": token}));
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(mock.status("GET", READ, Some(&token), None), 403);
    let counts = mock.admin("GET", "counts", json!({}));
    assert_eq!(counts["GET secret/data/app"], 3);
    assert_eq!(counts["POST auth/approle/login"], 1);
    std::thread::sleep(Duration::from_millis(100));
    let log = mock.log.lock().unwrap().clone();
    assert!(log.contains("GET /v1/secret/data/app 200"), "{log}");
    assert!(log.contains("GET /v1/secret/data/app 403"), "{log}");
    for value in ["s3cr3t-value", "secret-id-value", "role-1", &token] {
        assert!(!log.contains(value), "the log shows {value}:\n{log}");
    }
}

fn healthcheck(addr: &str) -> Output {
    Command::new(BINARY)
        .args(["healthcheck", "--addr", addr])
        .output()
        .unwrap()
}

#[test]
fn healthcheck_and_seed_errors_at_start() {
    assert!(!healthcheck("http://127.0.0.1:1").status.success());
    let seed = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(seed.path(), "kv:\n  secret:\n    version: 3\n").unwrap();
    let output = Command::new(BINARY)
        .arg("--seed")
        .arg(seed.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:3:", seed.path().display())),
        "{stderr}"
    );
    let output = Command::new(BINARY).arg("--listen").output().unwrap();
    assert_eq!(output.status.code(), Some(64));
}
