//! The laptop workflow end to end: `compose/compose.yaml` brought up with
//! docker-compose (1.29 here; Compose v2 where that is what exists) from a
//! copy of `compose/` holding the binaries under test. The mock becomes
//! healthy, the app starts under vinit with its secrets and a 0400 file on
//! a tmpfs, and the stack comes down. Skipped, saying so, only where no
//! Docker engine answers.

#![allow(clippy::unwrap_used)]

mod util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The compose CLI: docker-compose (v1), else `docker compose` (v2).
fn compose_cli() -> Vec<String> {
    let v1 = Command::new("docker-compose").arg("version").output();
    if v1.map(|o| o.status.success()).unwrap_or(false) {
        vec!["docker-compose".into()]
    } else {
        vec!["docker".into(), "compose".into()]
    }
}

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One compose project; `down` (containers, network, images) when dropped.
struct Stack {
    dir: tempfile::TempDir,
    project: String,
}

impl Stack {
    fn command(&self, args: &[&str]) -> Command {
        let cli = compose_cli();
        let mut command = Command::new(&cli[0]);
        command
            .args(&cli[1..])
            .args(["-p", &self.project, "-f", "compose.yaml"])
            .args(args)
            .current_dir(self.dir.path())
            .env("IMAGE_PREFIX", &self.project);
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.command(args).output().expect("compose CLI");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "compose {args:?} failed:\n{text}");
        text
    }

    fn logs(&self, service: &str) -> String {
        let output = self.command(&["logs", "--no-color", service]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self
            .command(&["down", "--volumes", "--rmi", "all", "--timeout", "5"])
            .output();
    }
}

/// A copy of compose/ with the static binaries the tests built.
fn build_context() -> tempfile::TempDir {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose");
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "compose.yaml",
        "mock.Dockerfile",
        "app.Dockerfile",
        "vinit.toml",
        "seed.yaml",
    ] {
        std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let mock = util::mock::mock_binary();
    let built = mock.parent().unwrap();
    std::fs::copy(util::VINIT, bin.join("vinit")).unwrap();
    std::fs::copy(mock, bin.join("vinit-mock-vault")).unwrap();
    std::fs::copy(built.join("vinit-demo-app"), bin.join("vinit-demo-app")).unwrap();
    // Debug builds carry ~130 MB of debug info the images do not need.
    for name in ["vinit", "vinit-mock-vault", "vinit-demo-app"] {
        let _ = Command::new("strip").arg(bin.join(name)).status();
    }
    dir
}

#[test]
fn the_app_starts_with_its_secrets_and_a_0400_file_on_tmpfs() {
    if !docker_answers() {
        eprintln!("SKIPPED: no Docker engine answers `docker info`; the compose test needs one");
        return;
    }
    let stack = Stack {
        dir: build_context(),
        project: format!("vm-compose-{}", std::process::id()),
    };
    let up = stack.run(&["up", "--build", "--detach"]);
    // `up --detach` returns once the app was created, which depends_on
    // allows only after the mock's HEALTHCHECK passed.
    let deadline = Instant::now() + util::PATIENCE;
    let mut app = stack.logs("app");
    while !app.contains("app: ready") {
        assert!(Instant::now() < deadline, "the app never got ready:\n{app}\n{up}");
        std::thread::sleep(Duration::from_millis(100));
        app = stack.logs("app");
    }
    eprintln!("{up}\n{app}");
    assert!(app.contains(", parent 1\n"), "the app is vinit's child: {app}");
    assert!(app.contains("DB_PASSWORD=cor***(21 chars)"), "{app}");
    assert!(app.contains("API_KEY=ak_***(14 chars)"), "{app}");
    assert!(
        app.contains("/run/secrets/app.yaml mode 0400 uid 0 on tmpfs (2 lines)"),
        "{app}"
    );
    assert!(!app.contains("leaked"), "{app}");
    let vault = stack.logs("vault");
    assert!(vault.contains("POST /v1/auth/approle/login 200"), "{vault}");
    assert!(vault.contains("GET /v1/secret/data/app 200"), "{vault}");
    assert!(
        !vault.contains("correct-horse"),
        "the mock logged a value: {vault}"
    );
    let health = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &format!("{}_vault_1", stack.project),
        ])
        .output()
        .unwrap();
    let health = String::from_utf8_lossy(&health.stdout);
    if compose_cli().len() == 1 {
        assert_eq!(health.trim(), "healthy");
    }
    // docker stop: SIGTERM to vinit, forwarded; the app exits 0 and so does vinit.
    stack.run(&["stop", "--timeout", "10", "app"]);
    let app = stack.logs("app");
    assert!(app.contains("app: SIGTERM, exiting 0"), "{app}");
    let code = stack.run(&["ps", "-q", "app"]);
    let id = code.lines().last().unwrap_or_default().trim().to_string();
    let exit = Command::new("docker")
        .args(["inspect", "--format", "{{.State.ExitCode}}", &id])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&exit.stdout).trim(), "0");
}
