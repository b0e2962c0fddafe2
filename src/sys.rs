//! The one module with `unsafe`: the raw system calls that no safe wrapper
//! expresses the way a PID 1 needs them.
//!
//! It owns: reading `argv` from the C entry point, capturing the signal mask
//! vinit was started with, vinit's own hardening (not dumpable, core limit 0,
//! credential values blanked in its environment block, capabilities dropped
//! after start-up), the clone → exec of the child (the code between clone and
//! exec lives here and nowhere else, the child's privilege changes
//! included), `waitpid(-1)` with the raw status, and `kill` for any signal
//! number (realtime ones included).
//!
//! Capabilities are set with raw capget/capset/prctl, not the `caps` crate:
//! its setters build `HashSet`s and some read /proc, which the child may not
//! do between clone and exec, and the few calls here cost less than the crate.
//!
//! Rules for the code that runs in the child between `clone` and `execve`
//! (it shares vinit's memory, see [`spawn`]): it calls only
//! async-signal-safe functions, allocates nothing and writes nothing of
//! vinit's but its report; every
//! byte it needs (path, argv, envp) is prepared by the parent beforehand in
//! an [`ExecImage`].
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CString, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::ptr;

use crate::privileges::{self, CapSet, ChildPrivileges, PrivilegeCalls, Step};

/// The signal state (and core limit) vinit was started with. The child gets
/// exactly this back: vinit installs no handler (signals are read from a
/// signalfd), so the dispositions, ignored signals included, pass through
/// `execve` untouched; only the mask, which vinit widens to block
/// everything, and the core limit, which [`harden`] lowers, are restored.
#[derive(Clone, Copy)]
pub struct InheritedSignals {
    mask: libc::sigset_t,
    core_limit: Option<libc::rlimit>,
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
            core_limit: None,
        })
    }
}

/// Waits at most `timeout` (`None`: without limit) for one of the blocked
/// signals and takes it from the pending set: `Ok(None)` when the time
/// passed first. One system call between a signal and its return, as in
/// tini; the plain supervisor's way to read signals (no signalfd, no
/// event loop).
pub fn wait_for_signal(timeout: Option<std::time::Duration>) -> io::Result<Option<c_int>> {
    let timeout = timeout.map(|t| libc::timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    let timeout_ptr = timeout.as_ref().map_or(ptr::null(), ptr::from_ref);
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; sigtimedwait reads it and the
    // optional timespec we own, and writes no siginfo (null).
    let signal = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::sigtimedwait(all.as_ptr(), ptr::null_mut(), timeout_ptr)
    };
    if signal > 0 {
        return Ok(Some(signal));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(None),
        _ => Err(err),
    }
}

/// vinit's first steps after blocking signals: it becomes not dumpable (no
/// core file; its /proc entries belong to root and other users cannot
/// ptrace it or read its memory or environ) and lowers its soft core limit
/// to 0. The original limit is kept in `inherited` for the child.
pub fn harden(mut inherited: InheritedSignals) -> io::Result<InheritedSignals> {
    // SAFETY: PR_SET_DUMPABLE takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    core_limit(None, Some(&mut limit)).map_err(io::Error::from_raw_os_error)?;
    let lowered = libc::rlimit {
        rlim_cur: 0,
        rlim_max: limit.rlim_max,
    };
    // Lowering a soft limit is always allowed.
    core_limit(Some(&lowered), None).map_err(io::Error::from_raw_os_error)?;
    inherited.core_limit = Some(limit);
    Ok(inherited)
}

/// `prlimit64(0, RLIMIT_CORE, new, old)` as a raw system call: limits
/// belong to the process, and musl's setrlimit wrapper would drag in its
/// all-threads machinery for nothing. Async-signal-safe.
fn core_limit(new: Option<&libc::rlimit>, old: Option<&mut libc::rlimit>) -> Result<(), c_int> {
    let new = new.map_or(ptr::null(), |limit| limit as *const libc::rlimit);
    let old = old.map_or(ptr::null_mut(), |limit| limit as *mut libc::rlimit);
    // SAFETY: prlimit64 reads `new` and writes `old` when not null; both
    // point to rlimit structs (the same layout as rlimit64 on 64-bit) that
    // the caller owns for the duration of the call.
    check(unsafe { libc::syscall(libc::SYS_prlimit64, 0, libc::RLIMIT_CORE, new, old) })
}

extern "C" {
    /// The C library's environment array (`environ(7)`).
    static mut environ: *mut *mut c_char;
}

/// Overwrites with zero bytes, in place, the value of each variable named in
/// `names` in vinit's own environment block, which is what
/// /proc/PID/environ shows (the names stay, followed by NULs). Call it once
/// the environment has been copied. Returns how many values were blanked.
pub fn blank_environ_values(names: &[&str]) -> usize {
    use zeroize::Zeroize;
    let mut blanked = 0;
    // SAFETY: `environ` is the NULL-terminated array of NUL-terminated
    // strings the C runtime set up (or libc maintains); vinit is still
    // single-threaded here, and nothing in it calls setenv, so no one else
    // reads or changes the array or the strings while we walk it. The
    // strings live in writable memory (the initial stack, or the heap for
    // entries libc replaced); we overwrite bytes within each string's
    // length, never its terminating NUL.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = *entry;
            let bytes = std::slice::from_raw_parts_mut(text.cast::<u8>(), libc::strlen(text));
            if let Some(equals) = bytes.iter().position(|b| *b == b'=') {
                if names.iter().any(|name| name.as_bytes() == &bytes[..equals]) {
                    bytes[equals + 1..].zeroize();
                    blanked += 1;
                }
            }
            entry = entry.add(1);
        }
    }
    blanked
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn split(set: CapSet) -> [u32; 2] {
    [set.0 as u32, (set.0 >> 32) as u32]
}

/// What vinit holds: its real ids and its effective and permitted capabilities.
pub fn holder() -> io::Result<privileges::Holder> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills two CapData structs for version 3, which we own.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| CapSet(u64::from(low) | u64::from(high) << 32);
    Ok(privileges::Holder {
        // SAFETY: getuid and getgid cannot fail.
        uid: unsafe { libc::getuid() },
        // SAFETY: as above.
        gid: unsafe { libc::getgid() },
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
    })
}

fn set_capabilities(effective: CapSet, permitted: CapSet, inheritable: CapSet) -> Result<(), c_int> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let [e0, e1] = split(effective);
    let [p0, p1] = split(permitted);
    let [i0, i1] = split(inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: capset reads the header and two CapData structs we own.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })
}

/// The capabilities every thread of vinit is limited to, once set
/// (`u64::MAX`: no limit yet).
static CAPABILITY_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// vinit keeps only `keep` in its effective and permitted sets (nothing
/// inheritable, nothing ambient) for the rest of its life. Capabilities
/// are per thread: this applies to the calling thread, the event loop's;
/// threads it creates later inherit it, and threads of tokio's blocking
/// pool apply it when they start ([`limit_new_thread`]). A pool thread
/// that already exists keeps its set until it has been idle for the
/// runtime's keep-alive and exits.
pub fn limit_own_capabilities(keep: CapSet) -> io::Result<()> {
    CAPABILITY_LIMIT.store(keep.0, std::sync::atomic::Ordering::SeqCst);
    limit_this_thread(keep).map_err(io::Error::from_raw_os_error)
}

fn limit_this_thread(keep: CapSet) -> Result<(), c_int> {
    let mut raw = RawPrivilegeCalls;
    raw.set_caps(keep, keep, CapSet::EMPTY)
        .and_then(|()| raw.clear_ambient())
}

/// For the runtime's `on_thread_start`: a thread started after
/// [`limit_own_capabilities`] (by a thread that still had more) takes the
/// limit too.
pub fn limit_new_thread() {
    let limit = CAPABILITY_LIMIT.load(std::sync::atomic::Ordering::SeqCst);
    if limit != u64::MAX {
        // Failing to lower is not possible (lowering needs no privilege).
        let _ = limit_this_thread(CapSet(limit));
    }
}

/// 0 when a raw syscall succeeded, else its errno. Async-signal-safe.
fn check(rc: libc::c_long) -> Result<(), c_int> {
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: reading errno of the calling thread.
        Err(unsafe { *libc::__errno_location() })
    }
}

/// The privilege calls as raw system calls: async-signal-safe, allocating
/// nothing, acting on the calling thread only (musl's setuid wrappers would
/// signal every thread of vinit, whose memory the child shares).
struct RawPrivilegeCalls;

impl PrivilegeCalls for RawPrivilegeCalls {
    fn drop_bounding(&mut self, cap: u32) -> Result<bool, c_int> {
        // SAFETY: prctl with integer arguments.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        match present {
            // Past the kernel's last capability.
            -1 => Ok(false),
            0 => Ok(true),
            _ => {
                // SAFETY: prctl with integer arguments.
                check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) }.into())
                    .map(|()| true)
            }
        }
    }

    fn set_groups(&mut self, groups: &[u32]) -> Result<(), c_int> {
        // SAFETY: setgroups reads `groups.len()` gid_t (u32) values we own.
        check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
    }

    fn set_gid(&mut self, gid: u32) -> Result<(), c_int> {
        // SAFETY: integer arguments.
        check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })
    }

    fn keep_caps_on_setuid(&mut self) -> Result<(), c_int> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }.into())
    }

    fn set_uid(&mut self, uid: u32) -> Result<(), c_int> {
        // SAFETY: integer arguments.
        check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })
    }

    fn set_caps(&mut self, effective: CapSet, permitted: CapSet, inheritable: CapSet) -> Result<(), c_int> {
        set_capabilities(effective, permitted, inheritable)
    }

    fn clear_ambient(&mut self) -> Result<(), c_int> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) }.into())
    }

    fn raise_ambient(&mut self, cap: u32) -> Result<(), c_int> {
        // SAFETY: prctl with integer arguments.
        check(
            unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            }
            .into(),
        )
    }

    fn no_new_privs(&mut self) -> Result<(), c_int> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())
    }
}

/// Gives the child back what vinit changed for itself (the core limit) and
/// makes its privilege changes. Async-signal-safe; allocates nothing.
fn prepare_child(setup: &ChildSetup) -> Result<(), (Step, c_int)> {
    if let Some(limit) = &setup.signals.core_limit {
        // Raising the soft limit back up to the unchanged hard limit is
        // always allowed.
        let _ = core_limit(Some(limit), None);
    }
    privileges::apply(setup.privileges, &mut RawPrivilegeCalls)
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

/// Everything `execve` needs, built before the clone so that the child
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

/// How the child is set up between clone and exec.
#[derive(Clone, Copy)]
pub struct ChildSetup<'a> {
    /// Make the child's new process group the terminal's foreground group (stdin is vinit's
    /// controlling terminal and vinit is in its foreground).
    pub take_terminal: bool,
    pub signals: InheritedSignals,
    /// Who the child runs as and what it may keep, decided before the clone.
    pub privileges: &'a ChildPrivileges,
    /// `--redact`: descriptors that become the child's stdout and stderr
    /// (the write ends of vinit's pipes, see [`output_pipe`]).
    pub output: Option<[c_int; 2]>,
}

/// Why a spawn failed.
#[derive(Debug)]
pub enum SpawnFailure {
    /// No child was created (clone failed).
    Fork(io::Error),
    /// The child was created but a privilege change failed at `Step`; the
    /// child has already exited and been waited for.
    Privileges(Step, io::Error),
    /// The child was created but `execve` failed with this error; the child
    /// has already exited and been waited for.
    Exec(io::Error),
}

impl SpawnFailure {
    /// Decodes what the child reported: `step` 0 is the exec itself.
    fn from_child(step: i32, errno: i32) -> SpawnFailure {
        let err = io::Error::from_raw_os_error(errno);
        match Step::from_code(step) {
            Some(step) => SpawnFailure::Privileges(step, err),
            None => SpawnFailure::Exec(err),
        }
    }
}

/// Bytes of stack for the child between `clone` and `execve`. It runs a
/// handful of system calls (musl's `posix_spawn` gives its child 5 KiB);
/// only the pages it touches are ever backed.
const CHILD_STACK: usize = 64 * 1024;

/// The guard below the child's stack.
const GUARD: usize = 4096;

/// What the child leaves for the parent when it cannot `execve`: the
/// failed step (0 = the exec itself) and its errno. The child shares
/// vinit's memory (`CLONE_VM`) and writes it before `_exit`.
#[derive(Default)]
struct ChildReport {
    failed: bool,
    step: i32,
    errno: i32,
}

/// The one argument of [`child_main`].
struct ChildStart<'a> {
    image: &'a ExecImage,
    setup: &'a ChildSetup<'a>,
    report: *mut ChildReport,
}

/// The child's stack: a mapping of its own with an inaccessible guard page
/// below it, so that an overflow kills the child instead of writing over
/// vinit's memory. Not an array on vinit's stack: a frame that large is
/// probed page by page (7 page faults for 32 KiB, FINDINGS.md 2.2); here
/// only the pages the child uses are touched.
struct ChildStack {
    base: *mut libc::c_void,
}

impl ChildStack {
    fn map() -> io::Result<ChildStack> {
        // SAFETY: an anonymous private mapping at an address the kernel
        // picks; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                GUARD + CHILD_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base };
        // SAFETY: the first page of the mapping just made.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The highest address, where the stack starts (page aligned).
    fn top(&self) -> *mut libc::c_void {
        self.base.cast::<u8>().wrapping_add(GUARD + CHILD_STACK).cast()
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping `map` made, which nothing uses once
        // the child has exec'ed or exited.
        unsafe { libc::munmap(self.base, GUARD + CHILD_STACK) };
    }
}

/// Starts `image` in a new process and returns its pid once `execve` has
/// succeeded, or why the child could not get there.
///
/// The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as musl's and
/// glibc's `posix_spawn` do: it shares vinit's memory instead of copying its
/// page tables, and vinit is suspended until the child has called `execve`
/// (or exited). No page is copied on write, no pipe reports the outcome
/// (bench/results/FINDINGS.md: a plain start about 0.1 ms faster than fork).
pub fn spawn(image: &ExecImage, setup: &ChildSetup) -> Result<libc::pid_t, SpawnFailure> {
    let mut report = ChildReport::default();
    let start = ChildStart {
        image,
        setup,
        report: &mut report,
    };
    let stack = ChildStack::map().map_err(SpawnFailure::Fork)?;
    // SAFETY: `child_main` runs on `stack` (page-aligned top, 64 KiB over a
    // guard page, alive until `clone` returns, since CLONE_VFORK suspends
    // this thread until the child has exec'ed or exited) and only makes
    // async-signal-safe calls on memory prepared before the call; `start`
    // and `report` outlive the child's use of them for the same reason.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            ptr::from_ref(&start).cast_mut().cast(),
        )
    };
    if pid < 0 {
        return Err(SpawnFailure::Fork(io::Error::last_os_error()));
    }
    // SAFETY: the child is done with `report` (it has exec'ed or exited);
    // a volatile read because the compiler cannot see the child's writes.
    let report = unsafe { ptr::read_volatile(&report) };
    if report.failed {
        // The child has _exit'ed. Collect it right away so that the
        // supervisor never sees a pid it does not know.
        let mut status = 0;
        // SAFETY: waiting for our own child, status is a valid out pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(SpawnFailure::from_child(report.step, report.errno));
    }
    Ok(pid)
}

/// The child's entry point, on its own stack, in vinit's memory.
///
/// # Safety
/// Only [`spawn`]'s `clone` calls it, with a pointer to a live `ChildStart`.
// SAFETY: the contract is the caller's (see `# Safety`).
extern "C" fn child_main(start: *mut libc::c_void) -> c_int {
    // SAFETY: `spawn` passes a pointer to its `ChildStart`, alive until the
    // child has exec'ed or exited.
    let start = unsafe { &*start.cast::<ChildStart>() };
    // SAFETY: we are the freshly cloned child; the image and setup were
    // fully built before the clone.
    unsafe { exec_in_child(start.image, start.setup, start.report) }
}

/// The child's side of [`spawn`]. Only async-signal-safe calls, and no
/// write to vinit's memory but `report` (and this thread's errno).
///
/// # Safety
/// Must only be called in a child made by [`spawn`].
// SAFETY: the contract is the caller's (see `# Safety`); only `child_main`
// calls it, in the child, right after clone.
unsafe fn exec_in_child(image: &ExecImage, setup: &ChildSetup, report: *mut ChildReport) -> ! {
    // SAFETY: all calls below are async-signal-safe and use memory prepared
    // before the clone; none allocates. `report` points to the parent's
    // `ChildReport`, which nothing else touches until the child is gone.
    unsafe {
        // The child leads a process group of its own, so that signals for
        // "the app and its helpers" (--pgroup, clean-up) reach exactly them.
        libc::setpgid(0, 0);
        if setup.take_terminal {
            // SIGTTOU is still blocked here (inherited from vinit), so a
            // background group may take the terminal without being stopped.
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
        }
        let (step, errno) = match prepare_child(setup) {
            Err((step, errno)) => (step as i32, errno),
            Ok(()) => {
                libc::sigprocmask(libc::SIG_SETMASK, &setup.signals.mask, ptr::null_mut());
                // Never let the app write unredacted: no exec if this fails.
                if redirect_output(setup.output) {
                    libc::execve(
                        image.path.as_ptr(),
                        image.argv_ptrs.as_ptr(),
                        image.envp_ptrs.as_ptr(),
                    );
                }
                (0, *libc::__errno_location())
            }
        };
        ptr::write_volatile(
            report,
            ChildReport {
                failed: true,
                step,
                errno,
            },
        );
        libc::_exit(127)
    }
}

/// In the child: makes `output` (stdout's and stderr's pipes) descriptors 1
/// and 2. False, with errno set, when that fails. Async-signal-safe.
///
/// # Safety
/// Must only be called in a child made by [`spawn`].
// SAFETY: the contract is the caller's (see `# Safety`).
unsafe fn redirect_output(output: Option<[c_int; 2]>) -> bool {
    let Some([stdout, stderr]) = output else {
        return true;
    };
    // SAFETY: dup2 on descriptors the parent opened before the clone; the
    // pipe ends are above 2 (see `output_pipe`), so dup2 always makes a new
    // descriptor, without close-on-exec.
    unsafe { libc::dup2(stdout, libc::STDOUT_FILENO) >= 0 && libc::dup2(stderr, libc::STDERR_FILENO) >= 0 }
}

/// A pipe for `--redact`: `(read end, write end)`, both close-on-exec and
/// both above descriptor 2 (so that moving the write end onto 1 or 2 in
/// the child never collides with a pipe end, even when vinit was started
/// with 1 or 2 closed).
pub fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are open descriptors that nothing else owns.
    let [read_end, write_end] = fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let read_end = above_stdio(read_end)?;
    // Only vinit's end is non-blocking: the app's writes block as usual.
    // SAFETY: F_SETFL on a descriptor we own.
    if unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // A larger pipe (1 MiB, the default unprivileged maximum) means fewer
    // round trips through vinit for a chatty app; the default size is fine too.
    // SAFETY: F_SETPIPE_SZ on a pipe we own; failure leaves the pipe as it is.
    unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    Ok((read_end, above_stdio(write_end)?))
}

/// A non-blocking eventfd: a counter one thread adds to and another reads
/// (and so resets), one descriptor and one system call. The signal thread
/// wakes the event loop with it.
pub fn event_counter() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes plain integers and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers a non-blocking descriptor to read from (an [`output_pipe`]'s
/// read end, an [`event_counter`]) with tokio's reactor (readable interest
/// only).
pub fn watch_readable(read_end: std::fs::File) -> io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    // SAFETY: a `File` owns its descriptor and returns that same descriptor
    // from `as_raw_fd` until it is dropped; the `AsyncFd` takes ownership of
    // it, so the descriptor stays open and unchanged for the registration's
    // whole life.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(read_end, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > libc::STDERR_FILENO {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one (or -1).
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, libc::STDERR_FILENO + 1) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `moved` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Replaces vinit with `image` (exec mode). Makes the privilege changes and
/// restores the core limit and the inherited mask first; returns only on
/// failure (then vinit exits: its privileges may be half changed).
pub fn exec_in_place(image: &ExecImage, setup: &ChildSetup) -> SpawnFailure {
    if let Err((step, errno)) = prepare_child(setup) {
        return SpawnFailure::Privileges(step, io::Error::from_raw_os_error(errno));
    }
    // SAFETY: restoring a mask we captured; execve gets NUL-terminated
    // arrays that live in `image` for the duration of the call.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &setup.signals.mask, ptr::null_mut());
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
    SpawnFailure::Exec(err)
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

/// The descriptors open in vinit, from /proc/self/fd, without the one used
/// to list them; `None` when /proc is not mounted. Raw `getdents64` into a
/// buffer on the stack: `opendir` would have musl's malloc take a 2 KiB
/// buffer (a `brk`, two `mmap`s and a `munmap`, each with its page faults)
/// on every start (bench/results/FINDINGS.md, round 3).
pub fn open_descriptors() -> Option<Vec<c_int>> {
    // SAFETY: a NUL-terminated path; O_DIRECTORY | O_CLOEXEC create nothing.
    // Raw `openat`: musl's `open` follows O_CLOEXEC with an `fcntl` that
    // kernels since 2.6.23 do not need.
    let opened = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    let raw = c_int::try_from(opened).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `raw` was just opened and nothing else owns it.
    let dir = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut listed = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        // SAFETY: getdents64 writes at most `buffer.len()` bytes into the
        // buffer, which we own, and reads the open directory descriptor.
        let filled = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buffer.as_mut_ptr(),
                buffer.len(),
            )
        };
        let filled = usize::try_from(filled).ok()?;
        if filled == 0 {
            break;
        }
        listed.extend(dirent_names(&buffer[..filled]).filter_map(|name| {
            let fd: c_int = std::str::from_utf8(name).ok()?.parse().ok()?;
            (fd != raw).then_some(fd)
        }));
    }
    Some(listed)
}

/// The names in a buffer of `linux_dirent64` records (`d_ino` u64, `d_off`
/// i64, `d_reclen` u16, `d_type` u8, then the NUL-terminated name).
fn dirent_names(records: &[u8]) -> impl Iterator<Item = &[u8]> {
    const NAME_AT: usize = 19;
    let mut rest = records;
    std::iter::from_fn(move || {
        let length = usize::from(u16::from_ne_bytes([*rest.get(16)?, *rest.get(17)?]));
        let record = rest.get(..length).filter(|_| length > NAME_AT)?;
        rest = &rest[length..];
        let name = &record[NAME_AT..];
        Some(name.split(|byte| *byte == 0).next().unwrap_or(name))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, padded_to: usize) -> Vec<u8> {
        let mut record = vec![0u8; padded_to];
        record[16..18].copy_from_slice(&u16::try_from(padded_to).unwrap().to_ne_bytes());
        record[19..19 + name.len()].copy_from_slice(name.as_bytes());
        record
    }

    #[test]
    fn dirent_names_reads_each_record_and_stops_at_a_broken_one() {
        let mut buffer = [
            record(".", 24),
            record("..", 24),
            record("3", 24),
            record("1234567890", 32),
        ]
        .concat();
        let names: Vec<&[u8]> = dirent_names(&buffer).collect();
        assert_eq!(names, [&b"."[..], b"..", b"3", b"1234567890"]);
        // A record length of zero or past the end ends the listing.
        buffer[24 * 2 + 16..24 * 2 + 18].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(dirent_names(&buffer).count(), 2);
        assert_eq!(dirent_names(&buffer[..30]).count(), 1);
    }

    #[test]
    fn open_descriptors_lists_an_open_file() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let listed = open_descriptors().unwrap();
        assert!(listed.contains(&file.as_raw_fd()));
        assert!(listed.contains(&0) || listed.contains(&1) || listed.contains(&2));
    }
}
