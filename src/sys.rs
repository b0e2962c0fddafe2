//! The one module with `unsafe`: the raw system calls that no safe wrapper
//! expresses the way a PID 1 needs them.
//!
//! It owns: reading `argv` from the C entry point, capturing the signal mask
//! vinit was started with, the fork → exec of the child (the code between
//! fork and exec lives here and nowhere else), `waitpid(-1)` with the raw
//! status, and `kill` for any signal number (realtime ones included).
//!
//! Rules for the code that runs in the child between `fork` and `execve`:
//! it calls only async-signal-safe functions and allocates nothing; every
//! byte it needs (path, argv, envp) is prepared by the parent beforehand in
//! an [`ExecImage`].
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CString, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStringExt;
use std::ptr;

/// The signal state vinit was started with. The child gets exactly this
/// back: vinit installs no handler (signals are read from a signalfd), so the
/// dispositions, ignored signals included, pass through `execve` untouched;
/// only the mask, which vinit widens to block everything, must be restored.
#[derive(Clone, Copy)]
pub struct InheritedSignals {
    mask: libc::sigset_t,
}

/// Blocks every signal for the whole process and returns the mask that was in
/// force before. Must run before any thread exists, so that every thread
/// created later (tokio's blocking pool, DNS) inherits the full mask and no
/// signal ever runs a default action in vinit.
pub fn block_all_signals() -> io::Result<InheritedSignals> {
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; pthread_sigmask reads `all` and
    // writes the previous mask into `old`, which is initialised only when it
    // returns 0 (checked before `assume_init`).
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        let rc = libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(InheritedSignals {
            mask: old.assume_init(),
        })
    }
}

/// Collects `argv` as handed to the C `main` (vinit has no Rust runtime
/// entry, see `main.rs`, so `std::env::args` is not populated on musl).
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings, as the C runtime
/// guarantees for the arguments of `main`.
// SAFETY: the contract is the caller's (see `# Safety`); main.rs passes
// exactly what the C runtime gave it.
pub unsafe fn args_from_c_main(argc: c_int, argv: *const *const c_char) -> Vec<OsString> {
    let count = usize::try_from(argc).unwrap_or(0);
    let mut args = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: the caller guarantees argv[0..argc] are valid C strings.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        args.push(OsString::from_vec(arg.to_bytes().to_vec()));
    }
    args
}

/// Everything `execve` needs, built before the fork so that the child
/// allocates nothing.
pub struct ExecImage {
    path: CString,
    // The pointer arrays point into these; they must live as long as the image.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
}

impl ExecImage {
    /// `path` is the resolved program; `argv[0]` is what the program sees as
    /// its name. Entries of `envp` are `NAME=VALUE`.
    pub fn new(path: CString, argv: Vec<CString>, envp: Vec<CString>) -> Self {
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        ExecImage {
            path,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
        }
    }
}

impl Drop for ExecImage {
    /// The environment holds secret values: overwrite it (the child has its
    /// own copy; in exec mode this never runs, the image is replaced).
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for entry in &mut self._envp {
            std::mem::take(entry).into_bytes_with_nul().zeroize();
        }
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// How the child is set up between fork and exec.
#[derive(Clone, Copy)]
pub struct ChildSetup {
    /// Make the child's new process group the terminal's foreground group (stdin is vinit's
    /// controlling terminal and vinit is in its foreground).
    pub take_terminal: bool,
    pub signals: InheritedSignals,
}

/// Why a spawn failed.
#[derive(Debug)]
pub enum SpawnFailure {
    /// No child was created (fork or pipe failed).
    Fork(io::Error),
    /// The child was created but `execve` failed with this error; the child
    /// has already exited and been waited for.
    Exec(io::Error),
}

/// Forks and executes `image` in the child. Returns the child's pid once
/// `execve` has succeeded (a close-on-exec pipe tells the parent), or the
/// `execve` error.
pub fn spawn(image: &ExecImage, setup: &ChildSetup) -> Result<libc::pid_t, SpawnFailure> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnFailure::Fork(io::Error::last_os_error()));
    }
    let [read_end, write_end] = fds;

    // SAFETY: fork is safe to call; in the child we only run
    // `exec_in_child`, which is async-signal-safe and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = io::Error::last_os_error();
        close(read_end);
        close(write_end);
        return Err(SpawnFailure::Fork(err));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child; the image and setup were
        // fully built before the fork.
        unsafe { exec_in_child(image, setup, write_end) }
    }

    close(write_end);
    let mut errno_bytes = [0u8; 4];
    let got = read_full(read_end, &mut errno_bytes);
    close(read_end);
    if got == errno_bytes.len() {
        // The exec failed; the child has _exit'ed. Collect it right away so
        // that the supervisor never sees a pid it does not know.
        let mut status = 0;
        // SAFETY: waiting for our own child, status is a valid out pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let errno = i32::from_ne_bytes(errno_bytes);
        return Err(SpawnFailure::Exec(io::Error::from_raw_os_error(errno)));
    }
    Ok(pid)
}

/// The child's side of [`spawn`]. Only async-signal-safe calls.
///
/// # Safety
/// Must only be called in a freshly forked child.
// SAFETY: the contract is the caller's (see `# Safety`); only `spawn`
// calls it, in the child, right after fork.
unsafe fn exec_in_child(image: &ExecImage, setup: &ChildSetup, error_fd: c_int) -> ! {
    // SAFETY: all calls below are async-signal-safe and use memory prepared
    // before the fork; none allocates.
    unsafe {
        // The child leads a process group of its own, so that signals for
        // "the app and its helpers" (--pgroup, clean-up) reach exactly them.
        libc::setpgid(0, 0);
        if setup.take_terminal {
            // SIGTTOU is still blocked here (inherited from vinit), so a
            // background group may take the terminal without being stopped.
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
        }
        libc::sigprocmask(libc::SIG_SETMASK, &setup.signals.mask, ptr::null_mut());
        libc::execve(
            image.path.as_ptr(),
            image.argv_ptrs.as_ptr(),
            image.envp_ptrs.as_ptr(),
        );
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(error_fd, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// Replaces vinit with `image` (exec mode). Restores the inherited mask
/// first; returns only on failure.
pub fn exec_in_place(image: &ExecImage, signals: &InheritedSignals) -> io::Error {
    // SAFETY: restoring a mask we captured; execve gets NUL-terminated
    // arrays that live in `image` for the duration of the call.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &signals.mask, ptr::null_mut());
        libc::execve(
            image.path.as_ptr(),
            image.argv_ptrs.as_ptr(),
            image.envp_ptrs.as_ptr(),
        );
    }
    let err = io::Error::last_os_error();
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: re-block everything after a failed exec, as at start.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), ptr::null_mut());
    }
    err
}

fn close(fd: c_int) {
    // SAFETY: closing a descriptor this module created and still owns.
    unsafe { libc::close(fd) };
}

fn read_full(fd: c_int, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of a buffer we own.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    got
}

/// One result of a non-blocking `waitpid(-1)`.
#[derive(Debug, PartialEq, Eq)]
pub enum Reaped {
    /// A child ended; `status` is the raw wait status.
    Child { pid: libc::pid_t, status: c_int },
    /// Children exist, none has ended yet.
    NoneReady,
    /// vinit has no children at all.
    NoChildren,
}

/// Collects one ended child, any child, without blocking. The raw status is
/// kept: nix's `waitpid` fails on a child killed by a realtime signal, after
/// the kernel has already released it, which would lose the exit status.
pub fn reap_one() -> io::Result<Reaped> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: status is a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            return Ok(Reaped::Child { pid, status });
        }
        if pid == 0 {
            return Ok(Reaped::NoneReady);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ECHILD) => return Ok(Reaped::NoChildren),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// `kill(2)` for any signal number, realtime ones included. `pid` follows
/// kill's conventions (negative: a process group; -1: every process vinit may
/// signal). Signal 0 only checks existence.
pub fn send_signal(pid: libc::pid_t, signal: c_int) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The highest signal number the C library supports (SIGRTMAX).
pub fn max_signal() -> c_int {
    libc::SIGRTMAX()
}

/// The lowest realtime signal number applications may use (SIGRTMIN).
pub fn min_realtime_signal() -> c_int {
    libc::SIGRTMIN()
}

/// Registers the signalfd with tokio's reactor (readable interest only).
pub fn watch_signalfd(
    fd: nix::sys::signalfd::SignalFd,
) -> io::Result<tokio::io::unix::AsyncFd<nix::sys::signalfd::SignalFd>> {
    // SAFETY: `SignalFd` owns its descriptor (an `OwnedFd`) and returns that
    // same descriptor from `as_raw_fd` until it is dropped; the `AsyncFd`
    // takes ownership of it, so the descriptor stays open and unchanged for
    // the registration's whole life.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}
