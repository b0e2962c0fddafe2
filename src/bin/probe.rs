//! `vinit-probe`: the test instrument that runs under vinit and reports from
//! inside what it really got, then plays the part a test needs.
//!
//! Usage: `vinit-probe STEP... [-- ARG...]`. Steps run in order:
//! - `report=FILE`: pid, ppid, pgid, terminal foreground group, blocked and
//!   ignored signals, ids, groups, capability sets, no_new_privs, the core
//!   limit, open descriptors, cwd, argv (hex) and environ (hex);
//! - `record=FILE`: block every signal and record (append) each one received
//!   by the `await` steps below to FILE, one number per line;
//! - `ready=FILE`: create FILE (tells the test the steps before are done);
//! - `await=SIG`: record signals until SIG arrives (needs `record`);
//! - `orphans=N`: create N processes that vinit must reap (each child forks
//!   a grandchild and exits at once; the grandchild exits a moment later);
//! - `linger=FILE[:stubborn]`: leave an orphan behind that writes its pid to
//!   FILE, appends `TERM` to FILE.term when it gets SIGTERM and then exits
//!   (`stubborn`: ignores SIGTERM, only SIGKILL ends it);
//! - `member=FILE`: fork a child in the same process group that records the
//!   signals it gets to FILE until SIGTERM;
//! - `out=TEXT`, `err=TEXT`: write TEXT to stdout/stderr (`\n` as newline);
//! - `outhex=HEX`: write raw bytes to stdout;
//! - `chunks=STREAM:SIZES:MS:HEX`: write HEX's bytes to STREAM (`out` or
//!   `err`) in separate writes of SIZES bytes (comma-separated, the last
//!   one repeats), pausing MS milliseconds between writes;
//! - `outfile=FILE`: copy FILE to stdout;
//! - `cat`: copy stdin to stdout until end of file;
//! - `bind=PORT`: bind a TCP socket to 0.0.0.0:PORT, write `bound` or the
//!   error to stdout;
//! - `stamp=FILE`: write CLOCK_MONOTONIC in nanoseconds (start-up benchmarks);
//! - `sleep=MS`; `exit=N`; `raise=SIG` (die by SIG with its default action);
//! - `sigstamp=N` (signal-latency benchmark): block every signal, print
//!   `ready` on stdout, then for each of N signals print CLOCK_MONOTONIC (ns)
//!   taken the moment `sigwaitinfo` returns it;
//! - `burst=N` (reaping benchmark): leave N orphans that all wait on one
//!   pipe, close it so they exit at once, and print on stdout the
//!   nanoseconds until every one of them has been reaped by the init.
//!
//! Uses raw libc calls on purpose: it observes the process state and must
//! not change it before reporting.
//!
//! Like vinit, it has no Rust runtime entry (`#![no_main]`): std's would set
//! SIGPIPE to ignored before `main` and falsify the report.
#![allow(unsafe_code)]
#![no_main]

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::exit;
use std::ptr;
use std::time::Duration;

/// The C entry point.
///
/// # Safety
/// Called only by the C runtime, with `argv` holding `argc` valid C strings.
// SAFETY: the one C `main` of this binary, with the signature the C runtime
// calls it with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    let argv: Vec<OsString> = (0..usize::try_from(argc).unwrap_or(0))
        // SAFETY: argv[0..argc] are valid C strings, as the C runtime passes them.
        .map(|i| unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) })
        .map(|arg| OsString::from(std::ffi::OsStr::from_bytes(arg.to_bytes())))
        .collect();
    run(&argv);
    0
}

fn run(argv: &[OsString]) {
    let args = &argv[1..];
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut recorder: Option<String> = None;
    for step in &args[..split] {
        let step = step.to_string_lossy();
        let (name, value) = step.split_once('=').unwrap_or((&step, ""));
        match name {
            "report" => report(value, argv),
            "stamp" => write_atomically(value, format!("{}\n", monotonic_nanos()).as_bytes()),
            "record" => {
                block_all();
                recorder = Some(value.to_string());
            }
            "ready" => write_atomically(value, b"ready\n"),
            "await" => {
                let target = signal_number(value);
                let file = recorder
                    .as_deref()
                    .unwrap_or_else(|| fail("await needs record first"));
                record_until(file, target);
            }
            "orphans" => orphans(value.parse().unwrap_or_else(|_| fail("orphans=N"))),
            "linger" => linger(value),
            "member" => member(value),
            "out" => write_to(&mut io::stdout(), value),
            "err" => write_to(&mut io::stderr(), value),
            "outhex" => {
                let bytes = from_hex(value);
                let mut out = io::stdout();
                out.write_all(&bytes).and_then(|()| out.flush()).ok();
            }
            "chunks" => chunks(value),
            "outfile" => {
                let bytes = fs::read(value).unwrap_or_else(|e| fail(&format!("{value}: {e}")));
                let mut out = io::stdout();
                out.write_all(&bytes).and_then(|()| out.flush()).ok();
            }
            "cat" => {
                let mut input = Vec::new();
                io::stdin().read_to_end(&mut input).ok();
                let mut out = io::stdout();
                out.write_all(&input).and_then(|()| out.flush()).ok();
            }
            "bind" => match std::net::TcpListener::bind(("0.0.0.0", value.parse().unwrap_or(0))) {
                Ok(_) => write_to(&mut io::stdout(), "bound\\n"),
                Err(err) => write_to(&mut io::stdout(), &format!("bind: {err}\\n")),
            },
            "sleep" => std::thread::sleep(Duration::from_millis(value.parse().unwrap_or(0))),
            "sigstamp" => sigstamp(value.parse().unwrap_or_else(|_| fail("sigstamp=N"))),
            "burst" => burst(value.parse().unwrap_or_else(|_| fail("burst=N"))),
            "exit" => exit(value.parse().unwrap_or_else(|_| fail("exit=N"))),
            "raise" => raise(signal_number(value)),
            _ => fail(&format!("unknown step {step}")),
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("vinit-probe: {message}");
    exit(99)
}

fn write_to(out: &mut dyn Write, text: &str) {
    out.write_all(text.replace("\\n", "\n").as_bytes())
        .and_then(|()| out.flush())
        .ok();
}

/// `STREAM:SIZES:MS:HEX`, one `write(2)` per chunk (no buffering between).
fn chunks(spec: &str) {
    let mut parts = spec.splitn(4, ':');
    let mut field = || parts.next().unwrap_or_else(|| fail("chunks=STREAM:SIZES:MS:HEX"));
    let fd = match field() {
        "out" => libc::STDOUT_FILENO,
        "err" => libc::STDERR_FILENO,
        other => fail(&format!("chunks: stream {other}")),
    };
    let sizes: Vec<usize> = field()
        .split(',')
        .map(|n| {
            n.parse()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| fail("chunks: sizes"))
        })
        .collect();
    let pause = Duration::from_millis(field().parse().unwrap_or_else(|_| fail("chunks: MS")));
    let bytes = from_hex(field());
    let mut rest = &bytes[..];
    for index in 0.. {
        if rest.is_empty() {
            break;
        }
        if index > 0 {
            std::thread::sleep(pause);
        }
        let size = sizes[index.min(sizes.len() - 1)].min(rest.len());
        let (chunk, after) = rest.split_at(size);
        // SAFETY: writing from a buffer we own to a standard descriptor.
        let written = unsafe { libc::write(fd, chunk.as_ptr().cast(), chunk.len()) };
        if written != chunk.len() as isize {
            fail("chunks: short write");
        }
        rest = after;
    }
}

fn write_atomically(path: &str, contents: &[u8]) {
    let temp = format!("{path}.tmp");
    fs::write(&temp, contents)
        .and_then(|()| fs::rename(&temp, path))
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
}

fn append(path: &str, line: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    file.write_all(line.as_bytes()).ok();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or_else(|_| fail("bad hex")))
        .collect()
}

fn signal_number(text: &str) -> i32 {
    let known = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("USR1", 10),
        ("USR2", 12),
        ("TERM", 15),
        ("KILL", 9),
    ];
    text.parse()
        .ok()
        .or_else(|| known.iter().find(|(n, _)| *n == text).map(|(_, s)| *s))
        .unwrap_or_else(|| fail(&format!("signal {text}")))
}

fn report(path: &str, argv: &[OsString]) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let stat_field = |i: usize| after_name.get(i).copied().unwrap_or("?").to_string();
    let fds: Vec<String> = (0..1024)
        // SAFETY: F_GETFD on any number only queries; invalid ones give EBADF.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1)
        .map(|fd| fd.to_string())
        .collect();
    let mut lines = vec![
        format!("pid={}", std::process::id()),
        format!("ppid={}", stat_field(1)),
        format!("pgid={}", stat_field(2)),
        format!("tpgid={}", stat_field(5)),
        format!("sigblk={}", field("SigBlk:")),
        format!("sigign={}", field("SigIgn:")),
        format!("uid={}", field("Uid:")),
        format!("gid={}", field("Gid:")),
        format!("groups={}", field("Groups:")),
        format!("capinh={}", field("CapInh:")),
        format!("capprm={}", field("CapPrm:")),
        format!("capeff={}", field("CapEff:")),
        format!("capbnd={}", field("CapBnd:")),
        format!("capamb={}", field("CapAmb:")),
        format!("nonewprivs={}", field("NoNewPrivs:")),
        format!("core={}", core_limit()),
        format!("fds={}", fds.join(",")),
        format!(
            "cwd={}",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ),
    ];
    for arg in argv {
        lines.push(format!("arg={}", hex(arg.as_bytes())));
    }
    for (name, value) in std::env::vars_os() {
        let mut entry = name.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        lines.push(format!("env={}", hex(&entry)));
    }
    lines.push(String::new());
    write_atomically(path, lines.join("\n").as_bytes());
}

/// The soft and hard core limits, `SOFT:HARD`.
fn core_limit() -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) };
    format!("{}:{}", limit.rlim_cur, limit.rlim_max)
}

fn monotonic_nanos() -> u128 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128
}

fn block_all() {
    // SAFETY: building a full set and blocking it for this thread (the
    // probe is single-threaded).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, ptr::null_mut());
    }
}

fn record_until(path: &str, target: i32) {
    loop {
        let signal = wait_signal();
        append(path, &format!("{signal}\n"));
        if signal == target {
            return;
        }
    }
}

fn wait_signal() -> i32 {
    // SAFETY: sigwaitinfo on a full set, with the signals blocked by `record`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        loop {
            let signal = libc::sigwaitinfo(&set, ptr::null_mut());
            if signal > 0 {
                return signal;
            }
        }
    }
}

fn fork() -> libc::pid_t {
    // SAFETY: the probe is single-threaded; children only use simple calls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork failed");
    }
    pid
}

fn wait_for(pid: libc::pid_t) {
    // SAFETY: waiting for our own child with a valid status pointer.
    unsafe {
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

fn quick_exit(code: i32) -> ! {
    // SAFETY: _exit in a forked child, skipping the parent's atexit state.
    unsafe { libc::_exit(code) }
}

fn orphans(count: usize) {
    for _ in 0..count {
        let child = fork();
        if child == 0 {
            if fork() == 0 {
                std::thread::sleep(Duration::from_millis(20));
                quick_exit(0);
            }
            quick_exit(0);
        }
        wait_for(child);
    }
}

fn linger(spec: &str) {
    let (path, mode) = spec.split_once(':').unwrap_or((spec, ""));
    let path = path.to_string();
    let child = fork();
    if child == 0 {
        if fork() == 0 {
            block_all();
            write_atomically(&path, format!("{}\n", std::process::id()).as_bytes());
            loop {
                if wait_signal() == libc::SIGTERM {
                    if mode == "stubborn" {
                        append(&format!("{path}.term"), "TERM ignored\n");
                        continue;
                    }
                    append(&format!("{path}.term"), "TERM\n");
                    quick_exit(0);
                }
            }
        }
        quick_exit(0);
    }
    wait_for(child);
    // Return only once the lingering process is set up.
    while fs::metadata(&path).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn member(path: &str) {
    let path = path.to_string();
    let ready = format!("{path}.ready");
    if fork() == 0 {
        block_all();
        write_atomically(&ready, b"ready\n");
        record_until(&path, libc::SIGTERM);
        quick_exit(0);
    }
    while fs::metadata(&ready).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn raise(signal: i32) -> ! {
    // SAFETY: restoring the default action, unblocking and sending the
    // signal to ourselves; the process ends there.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
        libc::kill(libc::getpid(), signal);
    }
    fail("still alive after raise")
}

fn sigstamp(count: usize) {
    block_all();
    let mut out = io::stdout();
    out.write_all(b"ready\n").and_then(|()| out.flush()).ok();
    for _ in 0..count {
        wait_signal();
        let now = monotonic_nanos();
        out.write_all(format!("{now}\n").as_bytes())
            .and_then(|()| out.flush())
            .ok();
    }
}

fn pipe() -> [libc::c_int; 2] {
    let mut ends = [0; 2];
    // SAFETY: pipe writes two descriptors into the array we own.
    if unsafe { libc::pipe(ends.as_mut_ptr()) } != 0 {
        fail("pipe failed");
    }
    ends
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a descriptor this process owns.
    unsafe { libc::close(fd) };
}

fn burst(count: usize) {
    let [gate_read, gate_write] = pipe();
    let [pids_read, pids_write] = pipe();
    for _ in 0..count {
        let child = fork();
        if child == 0 {
            if fork() == 0 {
                close(gate_write);
                close(pids_read);
                // SAFETY: getpid, write of 4 bytes we own to our pipe, and a
                // blocking read on the gate: simple calls in a forked child.
                unsafe {
                    let pid = libc::getpid();
                    libc::write(pids_write, (&pid as *const libc::pid_t).cast(), 4);
                    let mut byte = 0u8;
                    libc::read(gate_read, (&mut byte as *mut u8).cast(), 1);
                }
                quick_exit(0);
            }
            quick_exit(0);
        }
        wait_for(child);
    }
    close(pids_write);
    close(gate_read);
    let mut pids = Vec::with_capacity(count);
    let mut buffer = [0u8; 4];
    // SAFETY: reading 4 bytes into the buffer we own, from our pipe.
    while unsafe { libc::read(pids_read, buffer.as_mut_ptr().cast(), 4) } == 4 {
        pids.push(libc::pid_t::from_ne_bytes(buffer));
        if pids.len() == count {
            break;
        }
    }
    let start = monotonic_nanos();
    close(gate_write);
    while !pids.is_empty() {
        // SAFETY: kill with signal 0 only checks that the process exists
        // (a zombie still does; a reaped one gives ESRCH).
        pids.retain(|&pid| unsafe { libc::kill(pid, 0) } == 0);
        std::thread::sleep(Duration::from_micros(100));
    }
    println!("{}", monotonic_nanos() - start);
}
