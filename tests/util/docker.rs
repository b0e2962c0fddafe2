//! Docker helpers for the end-to-end tests: the `docker` CLI, containers,
//! networks and images removed when the test ends however it ends, the
//! bakery's images built from the binaries under test (images/build.sh), and
//! OpenBao in a `FROM scratch` container (its binary is static).
//!
//! Needs a Docker engine; SKIP_DOCKER_TESTS=1 skips on a machine without
//! one (CI has one and never sets it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub fn wanted() -> bool {
    std::env::var_os("SKIP_DOCKER_TESTS").is_none()
}

/// `docker ARGS...`, which must succeed; its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let output = docker_output(args);
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `docker ARGS...`, whatever it ends with.
pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker CLI")
}

/// Builds `tag` from a Dockerfile text and files copied into a fresh context.
pub fn build(tag: &str, dockerfile: &str, files: &[(&str, &Path)]) {
    let context = tempfile::tempdir().expect("temporary build context");
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, source) in files {
        std::fs::copy(source, context.path().join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    }
    docker(&[
        "build",
        "--quiet",
        "--tag",
        tag,
        &context.path().display().to_string(),
    ]);
}

/// A container that is removed when the test ends, however it ends.
pub struct Container(pub String);

impl Container {
    /// `docker run --detach ARGS...`
    pub fn run(args: &[&str]) -> Container {
        let mut full = vec!["run", "--detach"];
        full.extend_from_slice(args);
        Container(docker(&full))
    }

    pub fn exit_code(&self) -> i32 {
        docker(&["wait", &self.0]).parse().expect("exit code")
    }

    pub fn host_pid(&self) -> i32 {
        docker(&["inspect", "--format", "{{.State.Pid}}", &self.0])
            .parse()
            .expect("pid")
    }

    /// `path` inside the container, seen through its root in /proc (scratch
    /// images have no shell to `cat` with).
    pub fn host_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.host_pid()))
    }

    pub fn file_exists(&self, path: &str) -> bool {
        self.host_path(path).exists()
    }

    pub fn logs(&self) -> String {
        let output = docker_output(&["logs", &self.0]);
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "--force", "--volumes", &self.0]);
    }
}

/// A user-defined bridge network (containers on it find each other by name).
pub struct Network(pub String);

impl Network {
    pub fn create(name: &str) -> Network {
        let _ = docker_output(&["network", "rm", name]);
        docker(&["network", "create", name]);
        Network(name.to_string())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker_output(&["network", "rm", &self.0]);
    }
}

/// An image removed when the test ends.
pub struct Image(pub String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker_output(&["image", "rm", "--force", &self.0]);
    }
}

/// The bakery's images (`images/build.sh`) built once per test process from
/// the vinit under test, tagged `{prefix}vinit:latest`, `{prefix}busybox:latest`,
/// `{prefix}debian:bookworm`. `which`: the build script's image names.
pub fn bakery_images(prefix: &str, which: &[&str]) {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = which
        .iter()
        .copied()
        .filter(|name| !built.contains(&format!("{prefix}{name}")))
        .collect();
    if missing.is_empty() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/images/build.sh");
    let output = Command::new(script)
        .args(&missing)
        .env("IMAGE_PREFIX", prefix)
        .env("DEMO_TAG", format!("{prefix}demo"))
        .env("VINIT_BINARY", super::VINIT)
        .output()
        .expect("images/build.sh");
    assert!(
        output.status.success(),
        "images/build.sh {missing:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    built.extend(missing.iter().map(|name| format!("{prefix}{name}")));
}

/// The busybox base image plus the probe at /usr/bin/vinit-probe: an "app
/// image" a team builds on the bakery's base. Built once per process.
pub fn app_image(prefix: &str) -> String {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            bakery_images(prefix, &["busybox"]);
            let tag = format!("{prefix}app:test");
            build(
                &tag,
                &format!("FROM {prefix}busybox:latest\nCOPY vinit-probe /usr/bin/vinit-probe\n"),
                &[("vinit-probe", Path::new(super::PROBE))],
            );
            tag
        })
        .clone()
}

/// OpenBao's static binary in a `FROM scratch` image, built once per process.
pub fn openbao_image(prefix: &str) -> String {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let tag = format!("{prefix}openbao:test");
            build(
                &tag,
                "FROM scratch\nCOPY bao /bin/bao\nENTRYPOINT [\"/bin/bao\"]\n\
                 CMD [\"server\", \"-dev\", \"-dev-root-token-id=root\", \"-dev-listen-address=0.0.0.0:8200\"]\n",
                &[("bao", super::openbao::bao_binary())],
            );
            tag
        })
        .clone()
}

/// An OpenBao dev server (root token `root`) in a container named `name` on
/// `network`, reachable there as `http://NAME:8200`.
pub struct BaoContainer {
    pub container: Container,
    pub name: String,
}

impl BaoContainer {
    pub fn start(prefix: &str, name: &str, network: &Network) -> BaoContainer {
        let _ = docker_output(&["rm", "--force", name]);
        let container = Container::run(&[
            "--name",
            name,
            "--network",
            &network.0,
            "--cap-add",
            "IPC_LOCK",
            &openbao_image(prefix),
        ]);
        let bao = BaoContainer {
            container,
            name: name.to_string(),
        };
        super::wait_until("OpenBao in its container to answer", || {
            let answer = bao.try_bao(&["status"]).ok();
            if answer.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            answer
        });
        bao
    }

    /// The address other containers on the network use.
    pub fn addr(&self) -> String {
        format!("http://{}:8200", self.name)
    }

    fn try_bao(&self, args: &[&str]) -> Result<String, String> {
        let output = bao_exec(&self.container.0, args);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// `bao ARGS...` as root inside the container; panics on failure.
    pub fn bao(&self, args: &[&str]) -> String {
        self.try_bao(args)
            .unwrap_or_else(|err| panic!("bao {args:?} failed: {err}"))
    }
}

/// The `vinit-bakery` binary of this workspace (built when missing).
pub fn bakery_binary() -> PathBuf {
    let path = Path::new(super::VINIT).with_file_name("vinit-bakery");
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "vinit-bakery"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo");
        assert!(status.success(), "cargo build -p vinit-bakery failed");
    });
    path
}

/// `docker exec CONTAINER bao ARGS...` as root against the OpenBao dev
/// server inside that container.
pub fn bao_exec(container: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec![
        "exec",
        "--env",
        "VAULT_ADDR=http://127.0.0.1:8200",
        "--env",
        "VAULT_TOKEN=root",
        container,
        "/bin/bao",
    ];
    full.extend_from_slice(args);
    docker_output(&full)
}
