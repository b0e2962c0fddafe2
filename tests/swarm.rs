//! vinit under a real orchestrator: Docker Swarm on this engine (a
//! one-node swarm made for the test and left at the end, unless the engine
//! was in a swarm already, which is then left alone). One test, in steps,
//! because the steps share the swarm, OpenBao and the image:
//! 1. OpenBao as a service; 20 replicas of an app (the busybox base image +
//!    the probe) get their secrets from it by service name, the token from a
//!    swarm secret mounted beside vinit's render directory, the config file
//!    from a swarm config;
//! 2. `docker service update --force` rolls every replica; the replaced
//!    tasks end with the app's own status (SIGTERM reached it);
//! 3. `stop_grace_period` shorter than vinit's `--grace` ends in 137, longer
//!    ends with the app's status;
//! 4. a HEALTHCHECK whose start_period is shorter than a Vault outage turns
//!    into a restart loop; start_period >= VINIT_TIMEOUT rides it out;
//! 5. `docker service inspect` never holds a resolved value.
//!
//! It prints a summary (times, exit codes). Needs a Docker engine;
//! SKIP_DOCKER_TESTS=1 skips.
#![allow(clippy::unwrap_used)]

mod util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use util::docker::{self, docker, docker_output};

const PREFIX: &str = "vb-swarm-";
/// The images are the ones tests/orchestration.rs builds (same tags).
const IMAGES: &str = "vb-e2e-";
const CANARY: &str = "canary-swarm-84c2e6f1a0";
const REPLICAS: usize = 20;
const CONFIG: &str = r#"
[[template]]
contents = "password={{ secret(\"secret/data/app\").password }}\n"
destination = "/run/vinit/app.conf"
"#;
/// Swarm converges slower than a single `docker run`.
const SWARM_PATIENCE: Duration = Duration::from_secs(120);

/// Everything the test made in the swarm, removed (and the swarm left, if
/// the test made it) however the test ends.
struct Swarm {
    made: bool,
    services: Vec<String>,
    secrets: Vec<String>,
    configs: Vec<String>,
    networks: Vec<String>,
}

impl Swarm {
    fn join() -> Swarm {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let made = state == "inactive";
        if made {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        Swarm {
            made,
            services: Vec::new(),
            secrets: Vec::new(),
            configs: Vec::new(),
            networks: Vec::new(),
        }
    }

    fn name(what: &str) -> String {
        format!("{PREFIX}{what}-{}", std::process::id())
    }

    fn network(&mut self, what: &str) -> String {
        let name = Swarm::name(what);
        docker(&["network", "create", "--driver", "overlay", "--attachable", &name]);
        self.networks.push(name.clone());
        name
    }

    /// `docker secret create` / `docker config create` from `contents`.
    fn object(&mut self, kind: &str, what: &str, contents: &str) -> String {
        let name = Swarm::name(what);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), contents).unwrap();
        docker(&[kind, "create", &name, file.path().to_str().unwrap()]);
        if kind == "secret" {
            self.secrets.push(name.clone());
        } else {
            self.configs.push(name.clone());
        }
        name
    }

    /// `docker service create --detach --name NAME ARGS...`
    fn service(&mut self, what: &str, args: &[&str]) -> String {
        let name = Swarm::name(what);
        let mut full = vec!["service", "create", "--detach", "--quiet", "--name", &name];
        full.extend_from_slice(args);
        docker(&full);
        self.services.push(name.clone());
        name
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for service in &self.services {
            let _ = docker_output(&["service", "rm", service]);
        }
        // Tasks end asynchronously; secrets and networks in use cannot go.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let left = docker_output(&["ps", "--quiet", "--filter", &format!("name={PREFIX}")]);
            if left.stdout.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for secret in &self.secrets {
            let _ = docker_output(&["secret", "rm", secret]);
        }
        for config in &self.configs {
            let _ = docker_output(&["config", "rm", config]);
        }
        for network in &self.networks {
            let _ = docker_output(&["network", "rm", network]);
        }
        if self.made {
            let _ = docker_output(&["swarm", "leave", "--force"]);
        }
    }
}

fn wait(what: &str, mut probe: impl FnMut() -> Option<()>) {
    let deadline = Instant::now() + SWARM_PATIENCE;
    loop {
        if probe().is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The running containers of a service's tasks.
fn containers(service: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    out.lines().map(String::from).collect()
}

fn in_container(container: &str, path: &str) -> PathBuf {
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", container]);
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// Containers whose app is up (the probe's ready file exists).
fn ready(service: &str) -> Vec<String> {
    containers(service)
        .into_iter()
        .filter(|c| in_container(c, "/dev/shm/ready").exists())
        .collect()
}

/// (task id, desired state, current state, container exit code) of every task.
fn tasks(service: &str) -> Vec<(String, String, String, Option<i64>)> {
    let ids = docker(&["service", "ps", "--quiet", "--no-trunc", service]);
    ids.lines()
        .map(|id| {
            let line = docker(&[
                "inspect",
                "--format",
                "{{.DesiredState}}|{{.Status.State}}|{{if .Status.ContainerStatus}}{{.Status.ContainerStatus.ExitCode}}{{end}}",
                id,
            ]);
            let mut parts = line.split('|');
            let desired = parts.next().unwrap_or("").to_string();
            let state = parts.next().unwrap_or("").to_string();
            let code = parts.next().and_then(|c| c.parse().ok());
            (id.to_string(), desired, state, code)
        })
        .collect()
}

/// `bao ARGS...` as root in the service's task, retried until it succeeds.
fn bao_run(bao_service: &str, args: &[&str]) -> String {
    let mut answer = String::new();
    wait(&format!("bao {args:?} in {bao_service}"), || {
        let container = containers(bao_service).into_iter().next()?;
        let output = util::docker::bao_exec(&container, args);
        answer = String::from_utf8_lossy(&output.stdout).into_owned();
        output.status.success().then_some(())
    });
    answer
}

fn seed(bao_service: &str) {
    bao_run(
        bao_service,
        &["kv", "put", "secret/app", &format!("password={CANARY}")],
    );
}

/// The unseal key a dev server prints at start.
fn unseal_key(bao_service: &str) -> String {
    let container = containers(bao_service).into_iter().next().unwrap();
    let logs = docker_output(&["logs", &container]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    logs.lines()
        .find_map(|line| line.trim().strip_prefix("Unseal Key: "))
        .expect("the dev server prints its unseal key")
        .trim()
        .to_string()
}

fn app_args<'a>(network: &'a str, bao_addr: &'a str, token: &'a str, config: &'a str) -> Vec<String> {
    [
        "--network",
        network,
        "--env",
        &format!("VAULT_ADDR={bao_addr}"),
        "--env",
        "VINIT_TOKEN_FILE=/run/secrets/vault-token",
        "--env",
        "DB_PASSWORD=vault:secret/data/app#password",
        "--env",
        "VINIT_CONFIG=/etc/vinit/vinit.toml",
        "--secret",
        &format!("source={token},target=vault-token,uid=10001,gid=10001,mode=0400"),
        "--config",
        &format!("source={config},target=/etc/vinit/vinit.toml,mode=0444"),
        "--mount",
        "type=tmpfs,destination=/run/vinit",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn with<'a>(base: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = base.iter().map(String::as_str).collect();
    all.extend_from_slice(more);
    all
}

#[test]
fn a_swarm_fleet_gets_its_secrets_rolls_stops_and_rides_out_an_outage() {
    if !docker::wanted() {
        return;
    }
    let image = docker::app_image(IMAGES);
    let bao_image = docker::openbao_image(IMAGES);
    let mut swarm = Swarm::join();
    let network = swarm.network("net");
    let token = swarm.object("secret", "vault-token", "root\n");
    let config = swarm.object("config", "vinit-toml", CONFIG);
    // dnsrr: the service name resolves to the task's own address. The
    // virtual IP (IPVS) does not route on every engine (not on this one).
    let bao = swarm.service(
        "bao",
        &["--endpoint-mode", "dnsrr", "--network", &network, &bao_image],
    );
    seed(&bao);
    let bao_addr = format!("http://{bao}:8200");
    let base = app_args(&network, &bao_addr, &token, &config);
    let probe = [
        "/usr/bin/vinit-probe",
        "report=/dev/shm/report",
        "record=/dev/shm/signals",
        "ready=/dev/shm/ready",
        "await=TERM",
        "exit=42",
    ];

    // 1. Twenty replicas, each with its secrets.
    let started = Instant::now();
    let replicas = REPLICAS.to_string();
    let mut args = with(
        &base,
        &[
            "--replicas",
            &replicas,
            "--stop-grace-period",
            "20s",
            "--update-parallelism",
            "5",
            "--update-delay",
            "0s",
            "--update-monitor",
            "1s",
            &image,
        ],
    );
    args.extend_from_slice(&probe);
    let app = swarm.service("app", &args);
    wait("every replica to run its app", || {
        (ready(&app).len() == REPLICAS).then_some(())
    });
    let all_running = started.elapsed();
    for container in containers(&app) {
        let report = util::Report::read(&in_container(&container, "/dev/shm/report"));
        assert_eq!(report.env_var("DB_PASSWORD").as_deref(), Some(CANARY));
        assert_eq!(report.env_var("VINIT_TOKEN_FILE"), None);
        let rendered = std::fs::read_to_string(in_container(&container, "/run/vinit/app.conf")).unwrap();
        assert_eq!(rendered, format!("password={CANARY}\n"));
        let token = in_container(&container, "/run/secrets/vault-token");
        assert!(token.exists(), "the swarm secret is mounted beside /run/vinit");
    }

    // 2. A rolling update replaces every task; each old one ends with the
    //    app's own status, so SIGTERM reached the app.
    let before: Vec<String> = containers(&app);
    let rolling = Instant::now();
    docker(&["service", "update", "--quiet", "--force", "--detach=false", &app]);
    wait("the rolled replicas to run their app", || {
        let now = ready(&app);
        (now.len() == REPLICAS && now.iter().all(|c| !before.contains(c))).then_some(())
    });
    let rolled = rolling.elapsed();
    let old_codes: Vec<Option<i64>> = tasks(&app)
        .into_iter()
        .filter(|(_, desired, _, _)| desired == "shutdown")
        .map(|(_, _, _, code)| code)
        .collect();
    assert_eq!(old_codes.len(), REPLICAS, "every replica was replaced once");
    assert!(
        old_codes.iter().all(|c| *c == Some(42)),
        "replaced tasks must end with the app's status 42: {old_codes:?}"
    );

    // 3. stop_grace_period vs vinit's --grace, with an app that leaves a
    //    process behind that ignores SIGTERM.
    let lingering = [
        "/usr/bin/vinit-probe",
        "linger=/dev/shm/linger:stubborn",
        "ready=/dev/shm/ready",
        "record=/dev/shm/signals",
        "await=TERM",
        "exit=42",
    ];
    let mut short = with(
        &[],
        &["--stop-grace-period", "2s", "--env", "VINIT_GRACE=30s", &image],
    );
    short.extend_from_slice(&lingering);
    let short = swarm.service("grace-short", &short);
    let mut long = with(
        &[],
        &["--stop-grace-period", "20s", "--env", "VINIT_GRACE=1s", &image],
    );
    long.extend_from_slice(&lingering);
    let long = swarm.service("grace-long", &long);
    for service in [&short, &long] {
        wait("the lingering app to run", || {
            (ready(service).len() == 1).then_some(())
        });
    }
    // A forced update stops each task as a rolling update does and keeps
    // the stopped task's record (a scale to 0 removes it).
    for service in [&short, &long] {
        docker(&[
            "service",
            "update",
            "--quiet",
            "--force",
            "--detach=false",
            service,
        ]);
    }
    let exit_of = |service: &str| {
        tasks(service)
            .into_iter()
            .find(|(_, desired, _, _)| desired == "shutdown")
            .and_then(|(_, _, _, code)| code)
    };
    let (short_code, long_code) = (exit_of(&short), exit_of(&long));
    assert_eq!(
        short_code,
        Some(137),
        "stop_grace_period 2s < --grace 30s: SIGKILL"
    );
    assert_eq!(
        long_code,
        Some(42),
        "stop_grace_period 20s > --grace 1s: the app's status"
    );

    // 4. A Vault outage at start: OpenBao is sealed (503: vinit retries
    //    until VINIT_TIMEOUT), then unsealed.
    let outage_bao = swarm.service(
        "outage-bao",
        &["--endpoint-mode", "dnsrr", "--network", &network, &bao_image],
    );
    seed(&outage_bao);
    bao_run(&outage_bao, &["operator", "seal"]);
    let outage_addr = format!("http://{outage_bao}:8200");
    let outage_base = app_args(&network, &outage_addr, &token, &config);
    let health = |start_period: &'static str| {
        [
            "--health-cmd",
            "test -f /dev/shm/ready",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-timeout",
            "1s",
            "--health-start-period",
            start_period,
            "--restart-delay",
            "1s",
        ]
    };
    let mut looping = with(&outage_base, &health("2s"));
    looping.extend_from_slice(&["--env", "VINIT_TIMEOUT=60s", &image]);
    looping.extend_from_slice(&probe);
    let looping = swarm.service("health-short", &looping);
    let mut riding = with(&outage_base, &health("60s"));
    riding.extend_from_slice(&["--env", "VINIT_TIMEOUT=60s", &image]);
    riding.extend_from_slice(&probe);
    let riding = swarm.service("health-covering", &riding);
    let outage_started = Instant::now();
    wait("the short start_period to loop (three tasks)", || {
        (tasks(&looping).len() >= 3).then_some(())
    });
    let minimum_outage = Duration::from_secs(10);
    std::thread::sleep(minimum_outage.saturating_sub(outage_started.elapsed()));
    let outage = outage_started.elapsed();
    let loops = tasks(&looping).len();
    bao_run(&outage_bao, &["operator", "unseal", &unseal_key(&outage_bao)]);
    wait("the covered app to start once Vault is back", || {
        (ready(&riding).len() == 1).then_some(())
    });
    let riding_tasks = tasks(&riding);
    assert_eq!(
        riding_tasks.len(),
        1,
        "start_period >= VINIT_TIMEOUT must not restart: {riding_tasks:?}"
    );
    assert!(
        loops >= 3,
        "a short start_period restarts during the outage ({loops} tasks)"
    );

    // 5. Nothing resolved in what Swarm keeps.
    for service in &swarm.services {
        let inspect = docker(&["service", "inspect", service]);
        assert!(
            !inspect.contains(CANARY),
            "the value leaked into docker service inspect {service}"
        );
    }

    println!(
        "swarm summary: {REPLICAS} replicas all running their app after {:.1}s; \
         rolling update (--force, parallelism 5) done in {:.1}s, the {} replaced tasks exited {:?}; \
         stop_grace_period 2s < VINIT_GRACE 30s exited {:?}, 20s > 1s exited {:?}; \
         during a {:.0}s Vault outage a 2s start_period made {} tasks, a 60s start_period 1",
        all_running.as_secs_f64(),
        rolled.as_secs_f64(),
        old_codes.len(),
        old_codes.first().copied().flatten(),
        short_code,
        long_code,
        outage.as_secs_f64(),
        loops,
    );
}
