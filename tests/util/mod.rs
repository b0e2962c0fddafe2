//! Shared helpers for the integration tests: run the real `vinit` binary as
//! PID 1 in a fresh PID namespace or as a subreaper, drive the probe, read
//! what it reported, and clean up every process even when an assertion fails.
#![allow(dead_code, clippy::unwrap_used)]

pub mod docker;
pub mod fault;
pub mod keys;
pub mod mock;
pub mod openbao;
pub mod postgres;
pub mod proxy;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const VINIT: &str = env!("CARGO_BIN_EXE_vinit");
pub const PROBE: &str = env!("CARGO_BIN_EXE_vinit-probe");

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A `vinit` invocation being built.
pub struct Vinit {
    command: Command,
    pid_namespace: bool,
}

impl Vinit {
    /// vinit as an ordinary process (child subreaper, not PID 1).
    pub fn subreaper() -> Self {
        Self::build(false)
    }

    /// vinit as PID 1 of a fresh PID namespace (`unshare --pid --fork
    /// --mount-proc`; needs root).
    pub fn pid1() -> Self {
        Self::build(true)
    }

    /// vinit as a subreaper with exactly `vars` (`NAME=VALUE`) as its
    /// environment, in that order (`env -i` execs vinit in place; std's
    /// `Command` would sort them).
    pub fn subreaper_with_exact_env(vars: &[&str]) -> Self {
        let mut command = Command::new("env");
        command.arg("-i").args(vars).arg(VINIT);
        isolate_stdio(&mut command);
        Vinit {
            command,
            pid_namespace: false,
        }
    }

    /// vinit as a subreaper that inherits, as descriptor 3, `path` opened
    /// for writing (a FIFO, say) by the shell that execs it.
    pub fn subreaper_with_fd3(path: &Path) -> Self {
        let script = format!("exec \"$0\" \"$@\" 3>'{}'", path.display());
        Self::launched_by(&["sh", "-c", &script])
    }

    /// vinit as a subreaper started through `launcher` (a program and its
    /// arguments that end by exec'ing their last argument, vinit, in place:
    /// `setpriv ...`, `prlimit ... --`, `unshare --mount sh -c '...; exec "$@"' sh`).
    pub fn launched_by(launcher: &[&str]) -> Self {
        let mut vinit = Self::build(false);
        let mut command = Command::new(launcher[0]);
        command.args(&launcher[1..]).arg(VINIT);
        command
            .env_clear()
            .envs(std::env::vars_os().filter(|(name, _)| !name.to_string_lossy().starts_with("VINIT_")));
        isolate_stdio(&mut command);
        vinit.command = command;
        vinit
    }

    fn build(pid_namespace: bool) -> Self {
        let mut command = if pid_namespace {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", VINIT]);
            c
        } else {
            Command::new(VINIT)
        };
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("VINIT_") {
                command.env_remove(name);
            }
        }
        isolate_stdio(&mut command);
        Vinit {
            command,
            pid_namespace,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.command.arg(arg.into());
        self
    }

    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        for arg in args {
            self.command.arg(arg.into());
        }
        self
    }

    /// `-- vinit-probe STEP...`
    pub fn probe<S: AsRef<str>>(self, steps: impl IntoIterator<Item = S>) -> Self {
        let steps: Vec<String> = steps.into_iter().map(|s| s.as_ref().to_string()).collect();
        self.arg("--").arg(PROBE).args(steps)
    }

    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.command.env(name, value.into());
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Access to the underlying command (stdio, pre-exec set-up).
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    pub fn start(mut self) -> Running {
        let started = Instant::now();
        let mut child = self.command.spawn().expect("cannot start vinit");
        let stdout = child.stdout.take().map(read_in_background);
        let stderr = child.stderr.take().map(read_in_background);
        let launcher = child.id() as i32;
        let vinit_pid = if self.pid_namespace {
            // A vinit that ends at once may be gone before it is seen; then
            // its pid no longer matters.
            wait_until("unshare to start vinit", || {
                first_child_of(launcher)
                    .or_else(|| matches!(state(launcher), None | Some('Z')).then_some(launcher))
            })
        } else {
            launcher
        };
        Running {
            child: Some(child),
            vinit_pid,
            started,
            stdout,
            stderr,
        }
    }

    /// Starts vinit and waits for it to exit.
    pub fn run(self) -> Finished {
        self.start().wait()
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A vinit that is running. Dropping it kills vinit and everything below it.
pub struct Running {
    child: Option<Child>,
    vinit_pid: i32,
    started: Instant,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Running {
    /// vinit's pid as this test sees it.
    pub fn pid(&self) -> i32 {
        self.vinit_pid
    }

    pub fn signal(&self, signal: i32) {
        send(self.vinit_pid, signal);
    }

    pub fn stdin(&mut self) -> std::process::ChildStdin {
        self.child
            .as_mut()
            .and_then(|c| c.stdin.take())
            .expect("stdin was not piped")
    }

    /// Waits (at most [`PATIENCE`]) for vinit to exit.
    pub fn wait(mut self) -> Finished {
        let mut child = self.child.take().expect("waited twice");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                kill_tree(self.vinit_pid);
                let _ = child.kill();
                let _ = child.wait();
                let stderr = self
                    .stderr
                    .take()
                    .map(|h| h.join().unwrap_or_default())
                    .unwrap_or_default();
                panic!(
                    "vinit did not exit within {PATIENCE:?}; its stderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Finished {
            code,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(self.vinit_pid);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a finished vinit left.
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Asserts the exit code, showing stderr when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code; vinit's stderr:\n{}",
            self.stderr
        );
        self
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A scratch directory for probe reports and markers.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Self {
        Scratch(tempfile::tempdir().expect("tempdir"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// `path(name)` as text, for probe steps.
    pub fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub fn dir(&self) -> &Path {
        self.0.path()
    }
}

/// Polls `probe` until it returns `Some`, failing after [`PATIENCE`].
pub fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn wait_for_file(path: &Path) {
    wait_until(&format!("{}", path.display()), || path.exists().then_some(()));
}

/// Starts `vinit` running the probe as a signal recorder: it records every
/// signal it gets until `until` arrives. Returns once the probe is ready,
/// with the path of its record.
pub fn start_recorder(vinit: Vinit, scratch: &Scratch, until: &str) -> (Running, PathBuf) {
    let (record, ready) = (scratch.path("signals"), scratch.path("ready"));
    let running = vinit
        .probe([
            format!("record={}", record.display()),
            format!("ready={}", ready.display()),
            format!("await={until}"),
        ])
        .start();
    wait_for_file(&ready);
    (running, record)
}

/// Signal numbers recorded by the probe's `record` step.
pub fn recorded(path: &Path) -> Vec<i32> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits until the probe has recorded `signal`.
pub fn wait_for_signal(path: &Path, signal: i32) {
    wait_until(&format!("signal {signal} in {}", path.display()), || {
        recorded(path).contains(&signal).then_some(())
    });
}

/// What the probe's `report` step wrote.
pub struct Report {
    pub fields: HashMap<String, String>,
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
}

impl Report {
    pub fn read(path: &Path) -> Report {
        wait_for_file(path);
        let text = fs::read_to_string(path).expect("report");
        let mut report = Report {
            fields: HashMap::new(),
            args: Vec::new(),
            env: Vec::new(),
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "arg" => report.args.push(from_hex(value)),
                "env" => report.env.push(from_hex(value)),
                _ => {
                    report.fields.insert(key.to_string(), value.to_string());
                }
            }
        }
        report
    }

    pub fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {key} in report"))
    }

    /// A hexadecimal mask field (`sigblk`, `sigign`) as a number.
    pub fn mask(&self, key: &str) -> u64 {
        u64::from_str_radix(self.get(key), 16).expect("mask")
    }

    /// The app's environment variable `name`, if set.
    pub fn env_var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.env
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
    }

    pub fn int(&self, key: &str) -> i32 {
        self.get(key).parse().expect("number")
    }
}

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The bit of `signal` in a `/proc/PID/status` mask.
pub fn mask_bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

pub fn send(pid: i32, signal: i32) {
    // Any error (ESRCH) is the test's to notice through its assertions.
    let _ = nix_kill(pid, signal);
}

fn nix_kill(pid: i32, signal: i32) -> std::io::Result<()> {
    // Realtime signals have no nix::Signal variant, so go through the
    // library's own raw wrapper.
    vinit::sys::send_signal(pid, signal)
}

pub fn alive(pid: i32) -> bool {
    vinit::sys::send_signal(pid, 0).is_ok() && state(pid) != Some('Z')
}

/// A process's state letter (`R`, `S`, `Z`...) from /proc.
pub fn state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

/// Children of `pid`, with their states.
pub fn children_of(pid: i32) -> Vec<(i32, char)> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next().and_then(|p| p.parse::<i32>().ok()) == Some(pid) {
            found.push((child, state));
        }
    }
    found
}

/// Context switches of every thread of `pid` so far (voluntary and not).
pub fn context_switches(pid: i32) -> u64 {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// Fails unless `pid` stays asleep (no context switch of any thread) for `span`.
pub fn assert_idle(pid: i32, span: Duration) {
    let before = context_switches(pid);
    std::thread::sleep(span);
    assert_eq!(context_switches(pid), before, "vinit woke up while idle");
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The TCP sockets `pid` holds (links in /proc/PID/fd to `socket:`, minus
/// the signalfd and friends, which are anon inodes).
pub fn sockets(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            fs::read_link(e.path())
                .map(|l| l.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .count()
}

fn first_child_of(pid: i32) -> Option<i32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// SIGKILLs `root` and every descendant (clean-up after a failed test).
pub fn kill_tree(root: i32) {
    for pid in vinit::reaper::descendants_of(root) {
        send(pid, libc::SIGKILL);
    }
    send(root, libc::SIGKILL);
}

/// Makes `command` start with `blocked` signals blocked and `ignored`
/// signals ignored (on top of what this test process passes on), as a parent
/// shell or runtime might.
pub fn with_signal_state(command: &mut Command, blocked: &'static [i32], ignored: &'static [i32]) {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    for &signal in blocked {
        set.add(Signal::try_from(signal).expect("standard signal"));
    }
    let ignored: Vec<Signal> = ignored
        .iter()
        .map(|&s| Signal::try_from(s).expect("standard signal"))
        .collect();
    // SAFETY: runs between fork and exec in the test's child; sigprocmask and
    // sigaction(SIG_IGN) are async-signal-safe and allocate nothing (the
    // vectors were built before the fork).
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&set), None)?;
            for &signal in &ignored {
                nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn)?;
            }
            Ok(())
        });
    }
}

/// No stdin, stdout and stderr captured, nothing else inherited.
fn isolate_stdio(command: &mut Command) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    close_inherited_descriptors(command);
}

/// Closes every descriptor above stderr in the child, so that vinit starts
/// with exactly 0, 1 and 2 whatever the test runner left open.
fn close_inherited_descriptors(command: &mut Command) {
    // SAFETY: close_range is a plain system call, async-signal-safe, and
    // touches only the child's descriptor table between fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
}

/// Runs the probe directly, without vinit, from the same signal state: what
/// the app would see with no init at all.
pub fn baseline_report(blocked: &'static [i32], ignored: &'static [i32]) -> Report {
    let scratch = Scratch::new();
    let path = scratch.path("baseline");
    let mut command = Command::new(PROBE);
    command.arg(format!("report={}", path.display()));
    close_inherited_descriptors(&mut command);
    with_signal_state(&mut command, blocked, ignored);
    let status = command.status().expect("probe");
    assert!(status.success());
    Report::read(&path)
}

/// Accepts connections on `listener` on a thread of its own and hands each
/// to `serve` with its number (0, 1, ...); returns the count accepted so far.
pub fn accept_counted(
    listener: std::net::TcpListener,
    mut serve: impl FnMut(std::net::TcpStream, usize) + Send + 'static,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            serve(stream, counter.fetch_add(1, Ordering::SeqCst));
        }
    });
    accepted
}
