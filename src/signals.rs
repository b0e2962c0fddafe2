//! Signals as vinit sees them: names and numbers, the `--rewrite` table, and
//! the signalfd through which every signal reaches the event loop.
//!
//! Design: [`crate::sys::block_all_signals`] blocks every signal before any
//! thread exists; the kernel then queues them (even for PID 1, where an
//! unblocked signal with the default action would be dropped) and
//! [`SignalSource`] reads them from a signalfd that tokio watches. No handler
//! is ever installed, so the child inherits vinit's original dispositions.
//! Without an event loop (no Vault, no `--redact`), [`wait`] takes them from
//! the pending set directly, as tini does.
//! This module decides nothing about what a signal means; `supervise` does.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;

use crate::sys;

/// A signal number (realtime signals have no `nix::Signal` variant).
pub type SignalNumber = i32;

const NAMES: &[(&str, SignalNumber)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The signals that end start-up (SPEC: "A stop signal during start-up
/// aborts it").
pub const STOP_SIGNALS: [SignalNumber; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// `SIGTERM`, `SIGRTMIN+3` or `signal 99` for an unknown number.
pub fn name(signal: SignalNumber) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == signal) {
        return format!("SIG{name}");
    }
    let (min, max) = (sys::min_realtime_signal(), sys::max_signal());
    if (min..=max).contains(&signal) {
        return match signal - min {
            0 => "SIGRTMIN".to_string(),
            offset => format!("SIGRTMIN+{offset}"),
        };
    }
    format!("signal {signal}")
}

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN`, `RTMIN+2`, `RTMAX-1`.
/// `allow_zero` admits `0` (the "drop it" target of `--rewrite`).
pub fn parse(text: &str, allow_zero: bool) -> Result<SignalNumber, String> {
    let bad = || format!("\"{text}\" is not a signal name or number");
    let upper = text.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let max = sys::max_signal();
    if let Ok(number) = bare.parse::<SignalNumber>() {
        return match number {
            0 if allow_zero => Ok(0),
            1.. if number <= max => Ok(number),
            _ => Err(format!("{number} is not a signal number (1 to {max})")),
        };
    }
    if let Some((_, number)) = NAMES.iter().find(|(n, _)| *n == bare) {
        return Ok(*number);
    }
    let min = sys::min_realtime_signal();
    let realtime = if let Some(rest) = bare.strip_prefix("RTMIN") {
        offset(rest, '+').map(|o| min + o)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        offset(rest, '-').map(|o| max - o)
    } else {
        None
    };
    match realtime {
        Some(number) if (min..=max).contains(&number) => Ok(number),
        _ => Err(bad()),
    }
}

fn offset(rest: &str, sign: char) -> Option<SignalNumber> {
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix(sign)?.parse().ok()
}

/// What `--rewrite FROM:TO` pairs make of a received signal before it is
/// forwarded. A `BTreeMap`: a `HashMap`'s random keys would cost every
/// start a `getrandom` call for a map that is almost always empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites(BTreeMap<SignalNumber, SignalNumber>);

impl Rewrites {
    /// Parses one `FROM:TO` pair and adds it; a later pair for the same
    /// `FROM` replaces an earlier one.
    pub fn add(&mut self, pair: &str) -> Result<(), String> {
        let (from, to) = pair
            .split_once(':')
            .ok_or_else(|| format!("\"{pair}\" is not FROM:TO (e.g. TERM:QUIT, or USR1:0 to drop it)"))?;
        let from = parse(from, false)?;
        if from == libc::SIGCHLD || from == libc::SIGKILL || from == libc::SIGSTOP {
            return Err(format!(
                "{} is never forwarded, so it cannot be rewritten",
                name(from)
            ));
        }
        let to = parse(to, true)?;
        self.0.insert(from, to);
        Ok(())
    }

    /// The signal to forward for `received`; `None` when it is dropped.
    pub fn apply(&self, received: SignalNumber) -> Option<SignalNumber> {
        match self.0.get(&received) {
            Some(0) => None,
            Some(to) => Some(*to),
            None => Some(received),
        }
    }
}

/// The signalfd that delivers every blocked signal to the event loop.
pub struct SignalSource {
    fd: AsyncFd<SignalFd>,
}

impl SignalSource {
    /// Must be called inside the tokio runtime, after
    /// [`sys::block_all_signals`].
    pub fn new() -> io::Result<Self> {
        let fd = SignalFd::with_flags(&SigSet::all(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(SignalSource {
            fd: sys::watch_signalfd(fd)?,
        })
    }

    /// Waits until a signal is pending and returns it. One read per signal,
    /// so it is forwarded before the next is read (the others stay pending
    /// and the descriptor stays ready): no batch buffer, no extra read before
    /// the `kill` (bench/results/FINDINGS.md, 5-6 µs per signal).
    pub async fn recv(&mut self) -> io::Result<SignalNumber> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            match guard.get_inner_mut().read_signal()? {
                Some(info) => return Ok(info.ssi_signo as SignalNumber),
                None => guard.clear_ready(),
            }
        }
    }

    /// Returns the signals pending right now, without waiting.
    pub fn pending(&mut self) -> io::Result<Vec<SignalNumber>> {
        drain(self.fd.get_mut())
    }
}

/// Without an event loop: waits for the next signal until `deadline`
/// (`None`: without limit); `None` when the deadline passed first.
pub fn wait(deadline: Option<Instant>) -> io::Result<Option<SignalNumber>> {
    sys::wait_for_signal(deadline.map(|d| d.saturating_duration_since(Instant::now())))
}

/// Without an event loop: takes every signal pending right now.
pub fn take_pending() -> io::Result<Vec<SignalNumber>> {
    let mut taken = Vec::new();
    while let Some(signal) = sys::wait_for_signal(Some(Duration::ZERO))? {
        taken.push(signal);
    }
    Ok(taken)
}

fn drain(fd: &mut SignalFd) -> io::Result<Vec<SignalNumber>> {
    let mut signals = Vec::new();
    while let Some(info) = fd.read_signal()? {
        signals.push(info.ssi_signo as SignalNumber);
    }
    Ok(signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(parse("TERM", false), Ok(libc::SIGTERM));
        assert_eq!(parse("sigterm", false), Ok(libc::SIGTERM));
        assert_eq!(parse("9", false), Ok(9));
        assert_eq!(parse("RTMIN", false), Ok(sys::min_realtime_signal()));
        assert_eq!(parse("RTMIN+2", false), Ok(sys::min_realtime_signal() + 2));
        assert_eq!(parse("SIGRTMAX-1", false), Ok(sys::max_signal() - 1));
        assert!(parse("0", false).is_err());
        assert_eq!(parse("0", true), Ok(0));
        assert!(parse("65", false).is_err());
        assert!(parse("TERMINATE", false).is_err());
        assert!(parse("RTMIN+99", false).is_err());
    }

    #[test]
    fn names_round_trip() {
        for n in 1..=sys::max_signal() {
            let shown = name(n);
            if shown.starts_with("signal ") {
                continue; // internal libc signals between SIGSYS and SIGRTMIN
            }
            assert_eq!(parse(&shown, false), Ok(n), "{shown}");
        }
    }

    #[test]
    fn rewrites_map_and_drop() {
        let mut rewrites = Rewrites::default();
        rewrites.add("TERM:QUIT").unwrap();
        rewrites.add("USR1:0").unwrap();
        assert_eq!(rewrites.apply(libc::SIGTERM), Some(libc::SIGQUIT));
        assert_eq!(rewrites.apply(libc::SIGUSR1), None);
        assert_eq!(rewrites.apply(libc::SIGINT), Some(libc::SIGINT));
        assert!(rewrites.add("TERM").is_err());
        assert!(rewrites.add("CHLD:TERM").is_err());
        assert!(rewrites.add("TERM:BOGUS").is_err());
    }
}
