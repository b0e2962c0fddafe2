//! End to end with real Docker containers: a `FROM scratch` image holding
//! only vinit and the probe (the test binaries are static musl builds), run
//! with `docker run`, stopped with `docker stop`.
//!
//! Needs a Docker engine; set SKIP_DOCKER_TESTS=1 to skip on a machine
//! without one (CI has one and never sets it). The bakery's own images and
//! orchestration are in tests/orchestration.rs and tests/swarm.rs.

mod util;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use util::docker::{docker, wanted as docker_wanted, Container};

const IMAGE: &str = "vinit-e2e:test";

/// Builds the image once per test run from the very binaries under test.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let context = tempfile::tempdir().expect("temporary build context");
        let dockerfile = concat!(env!("CARGO_MANIFEST_DIR"), "/images/Dockerfile");
        std::fs::copy(dockerfile, context.path().join("Dockerfile")).expect("images/Dockerfile");
        std::fs::copy(util::VINIT, context.path().join("vinit")).expect("the vinit binary");
        std::fs::copy(util::PROBE, context.path().join("vinit-probe")).expect("the probe binary");
        docker(&[
            "build",
            "--quiet",
            "--tag",
            IMAGE,
            &context.path().display().to_string(),
        ]);
    });
    IMAGE
}

#[test]
fn docker_stop_ends_the_app_promptly_with_its_status() {
    if !docker_wanted() {
        return;
    }
    let container = Container::run(&[image()]);
    // Ready once the app (vinit's child) waits for signals to record them
    // (in rt_sigtimedwait, whose x86_64 system call number is 128).
    util::wait_until("the app to be ready for signals", || {
        let vinit = container.host_pid();
        let (app, _) = *util::children_of(vinit).first()?;
        let syscall = std::fs::read_to_string(format!("/proc/{app}/syscall")).ok()?;
        (syscall.split_whitespace().next()? == "128").then_some(())
    });
    let started = Instant::now();
    docker(&["stop", "--time", "10", &container.0]);
    let took = started.elapsed();
    assert_eq!(container.exit_code(), 42, "the probe's own status");
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}: SIGTERM was not forwarded"
    );
}

#[test]
fn docker_run_passes_exit_codes_and_output() {
    if !docker_wanted() {
        return;
    }
    let output = Command::new("docker")
        .args([
            "run",
            "--rm",
            image(),
            "/usr/bin/vinit-probe",
            "out=from the app",
            "exit=3",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.stdout, b"from the app");
    assert_eq!(output.stderr, b"", "vinit was not silent");
    let output = Command::new("docker")
        .args(["run", "--rm", image(), "/no/such/app"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/app"));
}

#[test]
fn orphans_inside_a_container_are_reaped() {
    if !docker_wanted() {
        return;
    }
    let container = Container::run(&[
        image(),
        "/usr/bin/vinit-probe",
        "orphans=500",
        "ready=/dev/shm/ready",
        "record=/dev/shm/signals",
        "await=TERM",
    ]);
    util::wait_until("the probe to be ready", || {
        container.file_exists("/dev/shm/ready").then_some(())
    });
    let vinit = container.host_pid();
    util::wait_until("every orphan to be reaped", || {
        let children = util::children_of(vinit);
        (children.len() == 1 && children[0].1 != 'Z').then_some(())
    });
    docker(&["stop", &container.0]);
    assert_eq!(container.exit_code(), 0);
}

#[test]
fn secrets_reach_the_app_but_never_docker_inspect() {
    if !docker_wanted() {
        return;
    }
    let bao = util::openbao::OpenBao::start();
    let password = "s3cret-for-docker-7d1e";
    bao.bao(&["kv", "put", "secret/app", &format!("db_password={password}")]);
    let out = tempfile::tempdir().unwrap();
    let name = format!("vinit-e2e-secrets-{}", std::process::id());
    let container = Container(name.clone());
    let status = Command::new("docker")
        .args(["run", "--name", &name, "--network", "host"])
        .args([
            "-e",
            &format!("VAULT_ADDR={}", bao.addr),
            "-e",
            "VAULT_TOKEN=root",
        ])
        .args(["-e", "DB_PASSWORD=vault:secret/data/app#db_password"])
        .arg("-v")
        .arg(format!("{}:/out", out.path().display()))
        .args([image(), "/usr/bin/vinit-probe", "report=/out/report"])
        .status()
        .unwrap();
    assert!(status.success());
    let report = util::Report::read(&out.path().join("report"));
    assert_eq!(report.env_var("DB_PASSWORD").as_deref(), Some(password));
    assert_eq!(report.env_var("VAULT_TOKEN"), None);
    let inspect = docker(&["inspect", &container.0]);
    assert!(
        inspect.contains("vault:secret/data/app#db_password"),
        "the reference should be visible"
    );
    assert!(
        !inspect.contains(password),
        "the secret value leaked into docker inspect"
    );
}
