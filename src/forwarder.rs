//! The event loop's signal thread. Once the app runs, a thread of its own
//! blocks in `sigtimedwait` and forwards each signal to the app the moment
//! it arrives, as tini's loop does. A forwarded signal no longer waits for
//! an epoll round and a task wake-up on a loop that may be busy with Vault
//! (bench/results/FINDINGS.md, round 3). The loop hears only of SIGCHLD
//! (through an eventfd: time to reap) and, as a record kept beside the pid,
//! of stop signals (a restart under way is cancelled); a forwarded signal
//! wakes nothing else, so the app's wake-up does not compete with vinit's
//! for a CPU.
//!
//! The app's pid is shared behind a mutex. The loop holds it while it reaps
//! and clears it when the app has been reaped, so the thread never signals a
//! pid the kernel may already have given to another process. While it is
//! clear (the app has ended; a restart between two apps) signals are only
//! recorded, not forwarded; a stop signal still on record when a restart's
//! new app is named came after the last check and found no app: it goes to
//! the new app, so a restart never starts an app that missed the
//! orchestrator's SIGTERM.
//!
//! The thread is created before the app is spawned, so that failing to
//! create it is a start-up error and not an app left without forwarding;
//! it waits, reading nothing, until it is released with the app's pid, once
//! nothing else reads signals (the start-up signalfd is dropped) and vinit
//! has lowered its capabilities, which the thread then lowers to as well.
//! It inherits the full signal mask like every thread of vinit, and lives
//! until vinit exits.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use crate::reaper::{Children, Reaper};
use crate::signals;
use crate::supervise::Forwarding;
use crate::sys;

/// The app signals go to, shared by the thread and the loop.
type SharedApp = Arc<Mutex<Target>>;

/// Where the thread forwards, and the stop signals it took.
#[derive(Default)]
struct Target {
    /// `None` once the app has been reaped, until a restart's new app.
    app: Option<libc::pid_t>,
    /// The last stop signal since the loop last took it.
    stop: Option<signals::SignalNumber>,
}

impl Target {
    /// Where `signal` goes: the app, or nowhere while there is none. A stop
    /// signal is also recorded, for [`Target::take_stop`] or
    /// [`Target::next_app`].
    fn route(&mut self, signal: signals::SignalNumber) -> Option<libc::pid_t> {
        if signals::STOP_SIGNALS.contains(&signal) {
            self.stop = Some(signal);
        }
        self.app
    }

    fn take_stop(&mut self) -> bool {
        self.stop.take().is_some()
    }

    /// Forwards to `app` from now on; returns a stop signal still on record,
    /// which (the loop having taken the earlier ones) found no app.
    fn next_app(&mut self, app: libc::pid_t) -> Option<signals::SignalNumber> {
        self.app = Some(app);
        self.stop.take()
    }
}

/// The loop's side: what the thread reports, and the app it forwards to.
pub struct SignalThread {
    /// Counts the SIGCHLDs the thread took since the loop last read it.
    children_ended: AsyncFd<File>,
    app: SharedApp,
}

/// A signal thread created and parked until [`ParkedSignalThread::release`]
/// gives it the app's pid.
pub struct ParkedSignalThread {
    parked: std::thread::Thread,
    thread: SignalThread,
}

impl SignalThread {
    /// Creates the thread, waiting. Must be called inside the tokio runtime.
    pub fn prepare(forwarding: Forwarding) -> io::Result<ParkedSignalThread> {
        let counter = File::from(sys::event_counter()?);
        let counted_by_thread = counter.try_clone()?;
        let app: SharedApp = Arc::default();
        let for_thread = Arc::clone(&app);
        let spawned = std::thread::Builder::new()
            .name("vinit-signals".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                // Never released when the app does not start: vinit exits.
                while lock(&for_thread).app.is_none() {
                    std::thread::park();
                }
                sys::limit_new_thread();
                forward_until_exit(&forwarding, &for_thread, counted_by_thread);
            })?;
        Ok(ParkedSignalThread {
            parked: spawned.thread().clone(),
            thread: SignalThread {
                children_ended: sys::watch_readable(counter)?,
                app,
            },
        })
    }

    /// Waits until a child has ended (the thread took a SIGCHLD).
    pub async fn child_ended(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.children_ended.readable_mut().await?;
            let mut count = [0u8; 8];
            match guard.try_io(|counter| counter.get_mut().read(&mut count)) {
                Ok(result) => return result.map(drop),
                Err(_would_block) => continue,
            }
        }
    }

    /// Whether a stop signal (TERM, INT, HUP, QUIT) came since the last call.
    pub fn take_stop_signal(&self) -> bool {
        lock(&self.app).take_stop()
    }

    /// Reaps with forwarding paused, and stops forwarding once the app has
    /// been reaped (its pid is free for reuse from then on).
    pub fn reap(&self, reaper: &mut Reaper) -> Children {
        let mut target = lock(&self.app);
        let children = reaper.reap();
        if reaper.main_exit().is_some() {
            target.app = None;
        }
        children
    }

    /// Forwards to a new app from now on (a restart). Returns the stop
    /// signal that came since [`SignalThread::take_stop_signal`] last
    /// looked, while there was no app, if any: the caller owes it to the
    /// new app.
    pub fn forward_to(&self, app: libc::pid_t) -> Option<signals::SignalNumber> {
        lock(&self.app).next_app(app)
    }
}

impl ParkedSignalThread {
    /// Starts taking signals and forwarding them to `app`.
    pub fn release(self, app: libc::pid_t) -> SignalThread {
        // Parked, the thread has read no signal: none is on record.
        let _ = self.thread.forward_to(app);
        self.parked.unpark();
        self.thread
    }
}

/// The thread: take a signal; forward it with the pid locked (so the loop
/// cannot reap the app in between), or for SIGCHLD tell the loop.
fn forward_until_exit(forwarding: &Forwarding, app: &Mutex<Target>, mut children_ended: File) {
    loop {
        let signal = match sys::wait_for_signal(None) {
            Ok(Some(signal)) => signal,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!("reading signals failed: {err}; retrying");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if signal == libc::SIGCHLD {
            // Only fails when the counter is at its maximum: the loop has
            // a wake-up pending then anyway.
            let _ = children_ended.write(&1u64.to_ne_bytes());
            continue;
        }
        match lock(app).route(signal) {
            Some(pid) => forwarding.forward(pid, signal),
            None => tracing::debug!("{} found no app running", signals::name(signal)),
        }
    }
}

fn lock(app: &Mutex<Target>) -> MutexGuard<'_, Target> {
    // The critical sections only read or write two plain fields: poisoning
    // cannot leave them half-written.
    app.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_signal_is_taken_once_by_the_loop_or_by_the_next_app() {
        let mut target = Target::default();
        assert_eq!(target.route(libc::SIGUSR1), None);
        assert!(!target.take_stop(), "SIGUSR1 is no stop signal");
        // With no app: the next app gets it.
        assert_eq!(target.route(libc::SIGTERM), None);
        assert_eq!(target.next_app(42), Some(libc::SIGTERM));
        assert_eq!(target.next_app(42), None, "handed over once");
        // With an app: forwarded, and on record for the loop.
        assert_eq!(target.route(libc::SIGINT), Some(42));
        assert!(target.take_stop());
        assert!(!target.take_stop());
        target.app = None;
        assert_eq!(target.next_app(43), None, "SIGINT was taken");
    }
}
