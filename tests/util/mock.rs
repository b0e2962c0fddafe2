//! vinit-mock-vault for one test: the binary `cargo test --workspace`
//! built (rebuilt here when stale), started on a free loopback port from a seed given as YAML text, driven
//! through its admin API, killed when the guard drops.
//!
//! ```ignore
//! let mock = Mock::start("tokens: [{id: root, policies: [root]}]");
//! mock.add_fault(json!({"path": "secret/*", "rate_limited": "1s", "times": 1}));
//! mock.advance("1h");                      // time warp
//! assert_eq!(mock.count("GET", "secret/data/app"), 2);
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The mock's binary, next to the vinit under test. `cargo test
/// --workspace` builds it (the mock's own integration tests need it); when
/// it is missing or older than the mock's sources (a single test file run
/// after an edit), it is built here first.
pub fn mock_binary() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(super::VINIT)
            .parent()
            .expect("the test binaries' directory");
        let binary = dir.join("vinit-mock-vault");
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/mock-vault");
        if modified(&binary) < newest(&sources) {
            let mut command = Command::new(option_env!("CARGO").unwrap_or("cargo"));
            command
                .args(["build", "--quiet", "-p", "vinit-mock-vault", "--bins"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.ends_with("release") {
                command.arg("--release");
            }
            let status = command.status().expect("cargo build -p vinit-mock-vault");
            assert!(status.success(), "building vinit-mock-vault failed");
        }
        binary
    })
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = modified(dir);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            self::newest(&path)
        } else {
            modified(&path)
        };
        newest = newest.max(time);
    }
    newest
}

/// A running mock. `addr` is `http://127.0.0.1:PORT` (https with TLS).
pub struct Mock {
    child: Child,
    pub addr: String,
    log: Arc<Mutex<String>>,
    _seed: tempfile::NamedTempFile,
}

impl Mock {
    /// Starts the mock from seed YAML.
    pub fn start(seed: &str) -> Mock {
        Self::launch(seed, &[])
    }

    /// Starts the mock on https with this certificate and key (PEM).
    pub fn start_tls(seed: &str, cert: &Path, key: &Path) -> Mock {
        Self::launch(
            seed,
            &[
                "--tls-cert".as_ref(),
                cert.as_os_str(),
                "--tls-key".as_ref(),
                key.as_os_str(),
            ],
        )
    }

    fn launch(seed: &str, extra: &[&std::ffi::OsStr]) -> Mock {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, seed.as_bytes()).unwrap();
        let mut child = Command::new(mock_binary())
            .arg("--seed")
            .arg(file.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vinit-mock-vault");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let Some(addr) = first.trim().strip_prefix("vinit-mock-vault listening on ") else {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the mock did not start: {first}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Mock {
            child,
            addr: addr.to_string(),
            log,
            _seed: file,
        }
    }

    /// Calls the admin API; panics unless it answers 200.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let mut command = Command::new("curl");
        command.args(["-sS", "-k", "-X", method, &format!("{}/admin/{path}", self.addr)]);
        if let Some(body) = body {
            command.args(["-d", &body.to_string()]);
        }
        let output = command.output().expect("curl");
        let text = String::from_utf8_lossy(&output.stdout);
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            panic!(
                "admin {method} {path}: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(value.get("errors").is_none(), "admin {method} {path}: {value}");
        value
    }

    /// Adds one fault (the seed's `faults` fields: `path`, `method`,
    /// `latency`, `jitter`, `error_rate`, `error_status`, `sealed`,
    /// `rate_limited`, `hang`, `reset`, `renew`, `times`).
    pub fn add_fault(&self, fault: Value) {
        self.admin("POST", "faults", Some(&fault));
    }

    pub fn clear_faults(&self) {
        self.admin("DELETE", "faults", None);
    }

    /// The next token or lease renewal answers `status`.
    pub fn fail_next_renew(&self, status: u16) {
        self.admin(
            "POST",
            "fail-next-renew",
            Some(&serde_json::json!({ "status": status })),
        );
    }

    /// Time warp: moves the mock's clock forward by `by` (`"90s"`, `"1h"`).
    pub fn advance(&self, by: &str) {
        self.admin("POST", "time", Some(&serde_json::json!({ "advance": by })));
    }

    /// Revokes now: `{"token": T}`, `{"lease_id": L}`, `{"prefix": P}` or
    /// `{"logins": true}` (every token a login made); returns how many went.
    pub fn revoke(&self, what: Value) -> u64 {
        self.admin("POST", "revoke", Some(&what))["revoked"]
            .as_u64()
            .unwrap()
    }

    /// Requests seen for `METHOD path` (path without `/v1/`).
    pub fn count(&self, method: &str, path: &str) -> u64 {
        self.admin("GET", "counts", None)[format!("{method} {path}")]
            .as_u64()
            .unwrap_or(0)
    }

    /// The request log so far (one `METHOD /v1/PATH STATUS TIME` per line).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has a line containing `text`.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + super::PATIENCE;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no \"{text}\" in the mock's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
