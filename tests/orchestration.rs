//! End to end with the real engine and the bakery's own images: an app image
//! built on the busybox base (images/build.sh) gets its secrets from OpenBao
//! running in a container, by DNS name on a user-defined network; signals
//! from `docker kill` and from a terminal reach the app; a read-only root
//! with a tmpfs render directory works and a disk destination is refused
//! (73); nothing Docker keeps about the image or the container (history,
//! inspect, export, commit) holds a resolved value; under `--init` vinit
//! still reaps; `vinit-bakery check` passes the bakery's images.
//!
//! Needs a Docker engine; SKIP_DOCKER_TESTS=1 skips (CI never sets it).

#![allow(clippy::unwrap_used)]

mod util;

use std::io::Write;
use std::process::{Command, Stdio};

use util::docker::{self, docker, docker_output, BaoContainer, Container, Network};

const PREFIX: &str = "vb-e2e-";
/// The canary: a value that must reach the app and appear nowhere else.
const CANARY: &str = "canary-e2e-5b1f0d7a9c";
const CONFIG: &str = r#"
[[template]]
contents = "password={{ secret(\"secret/data/app\").password }}\n"
destination = "/run/vinit/app.conf"
"#;

fn name(what: &str) -> String {
    format!("{PREFIX}{what}-{}", std::process::id())
}

/// OpenBao on its own network, seeded with the canary; the config file
/// directory to bind-mount at /etc/vinit.
fn vault(what: &str) -> (Network, BaoContainer, tempfile::TempDir) {
    let network = Network::create(&name(&format!("{what}-net")));
    let bao = BaoContainer::start(PREFIX, &name(&format!("{what}-bao")), &network);
    bao.bao(&["kv", "put", "secret/app", &format!("password={CANARY}")]);
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("vinit.toml"), CONFIG).unwrap();
    (network, bao, config)
}

/// `docker run` options that point the app at OpenBao by name.
fn vault_args(network: &Network, bao: &BaoContainer, config: &tempfile::TempDir) -> Vec<String> {
    [
        "--network",
        &network.0,
        "-e",
        &format!("VAULT_ADDR={}", bao.addr()),
        "-e",
        "VAULT_TOKEN=root",
        "-e",
        "DB_PASSWORD=vault:secret/data/app#password",
        "-e",
        "VINIT_CONFIG=/etc/vinit/vinit.toml",
        "-v",
        &format!("{}:/etc/vinit:ro", config.path().display()),
    ]
    .map(String::from)
    .to_vec()
}

fn run_app(extra: &[String], app: &[&str]) -> Container {
    let image = docker::app_image(PREFIX);
    let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
    args.push(&image);
    args.push("/usr/bin/vinit-probe");
    args.extend_from_slice(app);
    Container::run(&args)
}

fn assert_no_canary(what: &str, bytes: &[u8]) {
    assert!(
        memchr_find(bytes, CANARY.as_bytes()).is_none(),
        "the resolved value leaked into {what}"
    );
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn secrets_by_dns_name_on_a_read_only_root_and_nothing_resolved_in_what_docker_keeps() {
    if !docker::wanted() {
        return;
    }
    let (network, bao, config) = vault("dns");
    let mut args = vault_args(&network, &bao, &config);
    args.extend(
        [
            "--read-only",
            "--tmpfs",
            "/run/vinit:uid=10001,gid=10001,mode=0700",
        ]
        .map(String::from),
    );
    let app = run_app(
        &args,
        &[
            "report=/dev/shm/report",
            "record=/dev/shm/signals",
            "ready=/dev/shm/ready",
            "await=TERM",
            "exit=42",
        ],
    );
    util::wait_until("the app to start", || {
        app.file_exists("/dev/shm/ready").then_some(())
    });
    let report = util::Report::read(&app.host_path("/dev/shm/report"));
    assert_eq!(report.env_var("DB_PASSWORD").as_deref(), Some(CANARY));
    assert_eq!(report.env_var("VAULT_TOKEN"), None, "vinit passed its token on");
    let rendered = std::fs::read_to_string(app.host_path("/run/vinit/app.conf")).unwrap();
    assert_eq!(rendered, format!("password={CANARY}\n"));

    // What Docker keeps: the container's config, a commit of the running
    // container (its image, history and layers), the container's export.
    assert_no_canary("docker inspect", docker(&["inspect", &app.0]).as_bytes());
    let committed = docker::Image(name("committed"));
    docker(&["commit", &app.0, &committed.0]);
    assert_no_canary(
        "docker history",
        docker(&["history", "--no-trunc", &committed.0]).as_bytes(),
    );
    assert_no_canary(
        "docker inspect of the commit",
        docker(&["inspect", &committed.0]).as_bytes(),
    );
    let export = Command::new("docker").args(["export", &app.0]).output().unwrap();
    assert!(export.status.success());
    assert!(export.stdout.len() > 1_000_000, "docker export came back empty");
    assert_no_canary("docker export", &export.stdout);
    let saved = tempfile::tempdir().unwrap();
    let tarball = saved.path().join("committed.tar");
    docker(&["save", "--output", tarball.to_str().unwrap(), &committed.0]);
    assert_no_canary("docker save of the commit", &std::fs::read(&tarball).unwrap());
    // And the checker agrees, hunting the same value through every layer.
    let check = Command::new(docker::bakery_binary())
        .args(["check", "--skip-vinit-check", "--value-env", "E2E_CANARY"])
        .arg(&tarball)
        .env("E2E_CANARY", CANARY)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        out.contains("PASS known-values  none of 1 known value(s)"),
        "{out}"
    );
    assert_no_canary("vinit-bakery's report", &check.stdout);

    docker(&["stop", "--time", "10", &app.0]);
    assert_eq!(app.exit_code(), 42, "{}", app.logs());
}

#[test]
fn a_render_directory_on_the_image_disk_exits_73() {
    if !docker::wanted() {
        return;
    }
    let (network, bao, config) = vault("disk");
    let app = run_app(&vault_args(&network, &bao, &config), &["exit=0"]);
    assert_eq!(app.exit_code(), 73, "{}", app.logs());
    assert!(app.logs().contains("/run/vinit"), "{}", app.logs());
    let leftover = docker_output(&["diff", &app.0]);
    let leftover = String::from_utf8_lossy(&leftover.stdout);
    assert!(
        !leftover.contains("/run/vinit/"),
        "a file was left behind: {leftover}"
    );
}

#[test]
fn docker_kill_hup_reaches_the_app() {
    if !docker::wanted() {
        return;
    }
    let app = run_app(
        &[],
        &["record=/dev/shm/signals", "ready=/dev/shm/ready", "await=TERM"],
    );
    util::wait_until("the app to start", || {
        app.file_exists("/dev/shm/ready").then_some(())
    });
    let record = app.host_path("/dev/shm/signals");
    docker(&["kill", "--signal", "HUP", &app.0]);
    util::wait_for_signal(&record, libc::SIGHUP);
    docker(&["kill", "--signal", "USR1", &app.0]);
    util::wait_for_signal(&record, libc::SIGUSR1);
    assert_eq!(util::recorded(&record), [libc::SIGHUP, libc::SIGUSR1]);
    docker(&["stop", &app.0]);
    assert_eq!(app.exit_code(), 0);
}

#[test]
fn ctrl_c_in_docker_run_it_reaches_the_app() {
    if !docker::wanted() {
        return;
    }
    let image = docker::app_image(PREFIX);
    let container = name("tty");
    let _cleanup = Container(container.clone());
    let command = format!(
        "docker run -it --name {container} {image} /usr/bin/vinit-probe \
         record=/dev/shm/signals ready=/dev/shm/ready await=INT exit=7"
    );
    let mut script = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut keyboard = script.stdin.take().unwrap();
    util::wait_until("the app to start under a terminal", || {
        let pid = docker_output(&["inspect", "--format", "{{.State.Pid}}", &container]);
        let pid = String::from_utf8_lossy(&pid.stdout).trim().parse::<i32>().ok()?;
        (pid > 0 && std::path::Path::new(&format!("/proc/{pid}/root/dev/shm/ready")).exists()).then_some(())
    });
    keyboard.write_all(b"\x03").unwrap();
    keyboard.flush().unwrap();
    let deadline = std::time::Instant::now() + util::PATIENCE;
    let status = loop {
        if let Some(status) = script.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = docker_output(&["rm", "--force", &container]);
            let _ = script.kill();
            panic!("Ctrl-C did not end `docker run -it` within {:?}", util::PATIENCE);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(7),
        "Ctrl-C did not end the app with its own status"
    );
    let logs = docker(&["inspect", "--format", "{{.State.ExitCode}}", &container]);
    assert_eq!(logs, "7");
}

#[test]
fn under_docker_init_vinit_still_reaps() {
    if !docker::wanted() {
        return;
    }
    let app = run_app(
        &["--init".to_string()],
        &[
            "orphans=200",
            "ready=/dev/shm/ready",
            "record=/dev/shm/signals",
            "await=TERM",
        ],
    );
    util::wait_until("the app to be ready", || {
        app.file_exists("/dev/shm/ready").then_some(())
    });
    let init = app.host_pid();
    let vinit = util::wait_until("vinit under docker-init", || {
        util::children_of(init).first().map(|(pid, _)| *pid)
    });
    assert!(
        std::fs::read_to_string(format!("/proc/{vinit}/comm"))
            .unwrap()
            .starts_with("vinit"),
        "docker-init's child is not vinit"
    );
    util::wait_until("every orphan to be reaped by vinit", || {
        let children = util::children_of(vinit);
        (children.len() == 1 && children[0].1 != 'Z').then_some(())
    });
    docker(&["stop", "--time", "10", &app.0]);
    assert_eq!(app.exit_code(), 0);
}

fn bakery_check(image: &str) -> (Option<i32>, String) {
    let output = Command::new(docker::bakery_binary())
        .args(["check", image])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), out)
}

#[test]
fn vinit_bakery_check_passes_the_bakery_images_and_fails_a_bad_one() {
    if !docker::wanted() {
        return;
    }
    docker::bakery_images(PREFIX, &["busybox", "debian"]);
    for image in [
        format!("{PREFIX}busybox:latest"),
        format!("{PREFIX}debian:bookworm"),
    ] {
        let (code, out) = bakery_check(&image);
        assert_eq!(code, Some(0), "{image}:\n{out}");
        assert!(
            out.contains("PASS user          USER \"app\" is uid 10001"),
            "{out}"
        );
        assert!(out.contains("PASS vinit-check"), "{out}");
        assert!(
            out.contains("PASS render-dir    /run/vinit exists and is empty"),
            "{out}"
        );
    }
    // What the bakery must stop: root, a resolved secret in an ENV, a token
    // file left in a layer that a later layer deletes.
    let token = "hvs.CAESIJ3e2eTokenLeftInALayer0123456";
    let bad = docker::Image(name("bad"));
    docker::build(
        &bad.0,
        &format!(
            "FROM {PREFIX}busybox:latest\nUSER root\nENV DB_PASSWORD={CANARY}\n\
             RUN mkdir -p /root && echo {token} > /root/.vault-token\nRUN rm /root/.vault-token\n"
        ),
        &[],
    );
    let (code, out) = bakery_check(&bad.0);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL user          USER \"root\" is root (uid 0)"),
        "{out}"
    );
    assert!(
        out.contains("FAIL secret-env    ENV DB_PASSWORD looks secret"),
        "{out}"
    );
    assert!(
        out.contains("/root/.vault-token holds a credential file (39 bytes) (deleted or replaced"),
        "{out}"
    );
    assert!(
        !out.contains(CANARY) && !out.contains(token),
        "a value was printed:\n{out}"
    );
}
