//! A real OpenBao dev server for one test: started on a free loopback port
//! from the project's pinned binary (`scripts/openbao.sh path`), configured
//! through the `bao` CLI, killed when the guard drops.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The pinned `bao` binary, installed by the project's script if missing.
pub fn bao_binary() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/openbao.sh");
        let output = Command::new(script)
            .arg("path")
            .output()
            .expect("scripts/openbao.sh");
        assert!(
            output.status.success(),
            "installing OpenBao failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running dev server with root token `root`.
pub struct OpenBao {
    child: Child,
    pub addr: String,
    /// `root` for dev servers; the initial root token for a raft server.
    root_token: String,
    /// A raft server's config and unseal key (to stop and resume it).
    raft: Option<Raft>,
    _config: Option<tempfile::NamedTempFile>,
    /// With TLS: the CA that signed the server's certificate.
    pub ca_cert: Option<PathBuf>,
    _tls_dir: Option<tempfile::TempDir>,
}

/// How a dev server is set up beyond the defaults.
enum Flavour {
    Plain,
    /// With this config file (audit devices).
    Config(tempfile::NamedTempFile),
    /// `-dev-tls`, its CA and certificate written to a fresh directory.
    Tls,
}

impl OpenBao {
    pub fn start() -> OpenBao {
        Self::launch(Flavour::Plain)
    }

    /// A dev server on https (`-dev-tls`: a fresh CA, a certificate for
    /// localhost and 127.0.0.1).
    pub fn start_tls() -> OpenBao {
        Self::launch(Flavour::Tls)
    }

    /// A dev server that writes an audit log (one JSON line per request and
    /// response) to `log`; OpenBao only takes audit devices from its config.
    pub fn start_with_audit_log(log: &std::path::Path) -> OpenBao {
        let mut config = tempfile::NamedTempFile::new().unwrap();
        use std::io::Write;
        writeln!(
            config,
            "audit \"file\" \"log\" {{\n  options = {{\n    file_path = \"{}\"\n  }}\n}}",
            log.display()
        )
        .unwrap();
        Self::launch(Flavour::Config(config))
    }

    /// Starts the server on a free port; tries another port if it was taken.
    fn launch(flavour: Flavour) -> OpenBao {
        let (config, tls) = match flavour {
            Flavour::Plain => (None, false),
            Flavour::Config(file) => (Some(file), false),
            Flavour::Tls => (None, true),
        };
        for _ in 0..5 {
            let port = free_port();
            let tls_dir = tls.then(|| tempfile::tempdir().unwrap());
            let mut command = Command::new(bao_binary());
            command.args(["server", "-dev", "-dev-root-token-id=root"]);
            command.arg(format!("-dev-listen-address=127.0.0.1:{port}"));
            if let Some(file) = &config {
                command.arg(format!("-config={}", file.path().display()));
            }
            if let Some(dir) = &tls_dir {
                command
                    .arg("-dev-tls")
                    .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("bao server -dev");
            let scheme = if tls { "https" } else { "http" };
            let mut server = OpenBao {
                child,
                addr: format!("{scheme}://127.0.0.1:{port}"),
                root_token: "root".into(),
                raft: None,
                _config: None,
                ca_cert: tls_dir.as_ref().map(|d| d.path().join("vault-ca.pem")),
                _tls_dir: tls_dir,
            };
            if server.wait_until_up() {
                server._config = config;
                return server;
            }
        }
        panic!("OpenBao did not start");
    }

    /// A production-mode server with one-node integrated storage (raft) in
    /// a temp dir, initialised with one unseal key and unsealed, with KV v2
    /// at `secret/` as on a dev server. Its state survives [`OpenBao::stop`]
    /// and [`OpenBao::resume`] (OpenBao 2.7 has no `file` storage).
    pub fn start_raft() -> OpenBao {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.hcl");
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(
            &config,
            format!(
                "storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"n1\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n\
                 disable_mlock = true\n",
                data = dir.path().join("data").display(),
                cluster = free_port(),
            ),
        )
        .unwrap();
        let mut server = OpenBao {
            child: raft_process(&config),
            addr: format!("http://127.0.0.1:{port}"),
            root_token: String::new(),
            raft: None,
            _config: None,
            ca_cert: None,
            _tls_dir: None,
        };
        server.wait_for_answer();
        let init = server.bao_json(&["operator", "init", "-key-shares=1", "-key-threshold=1"]);
        server.root_token = init["root_token"].as_str().unwrap().to_string();
        server.raft = Some(Raft {
            config,
            unseal_key: init["unseal_keys_b64"][0].as_str().unwrap().to_string(),
            _dir: dir,
        });
        server.unseal();
        server.bao(&["secrets", "enable", "-path=secret", "kv-v2"]);
        server
    }

    /// Stops a raft server (its state stays on disk).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a stopped raft server again and unseals it.
    pub fn resume(&mut self) {
        let config = self.raft.as_ref().expect("a raft server").config.clone();
        self.child = raft_process(&config);
        self.wait_for_answer();
        self.unseal();
    }

    /// Waits until the server answers at all (sealed or not).
    fn wait_for_answer(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = self.command(&["status"]).output().unwrap().status.code();
            // 0: unsealed, 2: sealed; 1: no answer yet.
            if matches!(status, Some(0) | Some(2)) {
                return;
            }
            assert!(Instant::now() < deadline, "OpenBao (raft) did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Unseals and waits until the node is the active leader.
    fn unseal(&mut self) {
        let key = self.raft.as_ref().expect("a raft server").unseal_key.clone();
        self.bao(&["operator", "unseal", &key]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_bao(&["token", "lookup"]).is_err() {
            assert!(Instant::now() < deadline, "OpenBao (raft) did not become active");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_until_up(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // the port was taken; try another
            }
            if self.try_bao(&["status"]).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bao_binary());
        command
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.root_token);
        command.env_remove("VAULT_NAMESPACE");
        if let Some(ca) = &self.ca_cert {
            command.env("VAULT_CACERT", ca);
        }
        command
    }

    fn try_bao(&self, args: &[&str]) -> Result<String, String> {
        run(self.command(args), args)
    }

    /// Runs `bao ARGS...` against this server as root; panics on failure.
    pub fn bao(&self, args: &[&str]) -> String {
        self.try_bao(args)
            .unwrap_or_else(|err| panic!("bao {args:?} failed: {err}"))
    }

    /// Runs `bao ARGS...` inside `namespace`.
    pub fn bao_in(&self, namespace: &str, args: &[&str]) -> String {
        let mut command = self.command(args);
        command.env("VAULT_NAMESPACE", namespace);
        run(command, args).unwrap_or_else(|err| panic!("bao {args:?} failed: {err}"))
    }

    /// Runs `bao ARGS...` with JSON output and parses the answer.
    pub fn bao_json(&self, args: &[&str]) -> serde_json::Value {
        let mut command = self.command(args);
        command.env("VAULT_FORMAT", "json");
        let text = run(command, args).unwrap_or_else(|err| panic!("bao {args:?} failed: {err}"));
        serde_json::from_str(&text).expect("bao json")
    }

    /// vinit (as a subreaper) pointed at this server with the root token.
    pub fn vinit(&self) -> super::Vinit {
        super::Vinit::subreaper()
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.root_token)
    }

    /// A PKI engine with a root CA and a role `web` for `*.internal`
    /// certificates of at most `max_ttl`.
    pub fn pki_role_web(&self, max_ttl: &str) {
        self.bao(&["secrets", "enable", "pki"]);
        self.bao(&[
            "write",
            "pki/root/generate/internal",
            "common_name=test-ca",
            "ttl=24h",
        ]);
        self.bao(&[
            "write",
            "pki/roles/web",
            "allowed_domains=internal",
            "allow_subdomains=true",
            &format!("max_ttl={max_ttl}"),
        ]);
    }

    /// Kubernetes auth at `auth/k8s` whose TokenReview calls go to
    /// `review_addr` (CA `cluster_ca`, unused over http but required), with
    /// a role `app` for service account `default/app` and policy `app`.
    pub fn kubernetes_auth(&self, review_addr: &str, cluster_ca: &std::path::Path) {
        self.bao(&["auth", "enable", "-path=k8s", "kubernetes"]);
        self.bao(&[
            "write",
            "auth/k8s/config",
            &format!("kubernetes_host={review_addr}"),
            &format!("kubernetes_ca_cert=@{}", cluster_ca.display()),
            "disable_local_ca_jwt=true",
        ]);
        self.bao(&[
            "write",
            "auth/k8s/role/app",
            "bound_service_account_names=app",
            "bound_service_account_namespaces=default",
            "token_policies=app",
        ]);
    }

    /// How many leases exist under `prefix` (e.g. `database/creds/app`).
    pub fn lease_count(&self, prefix: &str) -> usize {
        let mut command = self.command(&["list", "-format=json", &format!("sys/leases/lookup/{prefix}")]);
        command.env("VAULT_FORMAT", "json");
        match command.output() {
            Ok(output) if output.status.success() => {
                serde_json::from_slice::<serde_json::Value>(&output.stdout)
                    .ok()
                    .and_then(|v| v.as_array().map(Vec::len))
                    .unwrap_or(0)
            }
            // `bao list` exits 2 when there is nothing to list.
            Ok(output) if output.status.code() == Some(2) => 0,
            other => panic!("bao list leases: {other:?}"),
        }
    }

    /// Feeds `input` to `bao ARGS...` on stdin (policies, PEM data).
    pub fn bao_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bao");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Enables AppRole with a role `app` allowed `policy`; returns (role_id, secret_id).
    pub fn approle(&self, policy: &str) -> (String, String) {
        self.bao(&["auth", "enable", "approle"]);
        self.bao(&[
            "write",
            "auth/approle/role/app",
            &format!("token_policies={policy}"),
            "token_ttl=1h",
        ]);
        let role_id = self.bao_json(&["read", "auth/approle/role/app/role-id"])["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_string();
        let secret_id = self.bao_json(&["write", "-f", "auth/approle/role/app/secret-id"])["data"]
            ["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
        (role_id, secret_id)
    }

    /// A policy named `name` that may read (and write, for PKI) `paths`.
    pub fn policy(&self, name: &str, paths: &[&str]) {
        let rules: String = paths
            .iter()
            .map(|p| format!("path \"{p}\" {{ capabilities = [\"read\", \"create\", \"update\"] }}\n"))
            .collect();
        self.bao_stdin(&["policy", "write", name, "-"], &rules);
    }
}

/// What a raft server needs to come back after a stop.
struct Raft {
    config: PathBuf,
    unseal_key: String,
    _dir: tempfile::TempDir,
}

fn raft_process(config: &std::path::Path) -> Child {
    Command::new(bao_binary())
        .arg("server")
        .arg(format!("-config={}", config.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bao server")
}

/// Runs a `bao` command: its trimmed stdout, or its stderr as the error.
fn run(mut command: Command, args: &[&str]) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("bao {args:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
