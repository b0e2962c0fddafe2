//! The PID-1 event loop: forwards signals to the app, reaps every child,
//! carries out running life's actions on the app (signals, restarts), and
//! when the app ends, ends what it left behind, has running life revoke
//! what it holds, and returns the app's status.
//!
//! # Design
//! One current-thread tokio loop owns everything that happens after the
//! spawn but forwarding. Its event sources are futures raced with `select!`:
//! - the signal thread ([`SignalThread`]) forwards every signal (after
//!   `--rewrite`) to the app or its process group on its own; it tells the
//!   loop of SIGCHLD, which means "reap" (with its forwarding paused), and
//!   flags stop signals, which cancel a restart under way;
//! - running life ([`RunningLife::next_action`]): its Vault requests run as
//!   tasks on the same loop, never awaited inline by a signal branch, so a
//!   slow or hanging Vault never delays forwarding or reaping;
//! - timers: the `--grace` deadline of a restart or of the final clean-up.
//!
//! A restart is the shutdown path (SIGTERM after `--rewrite`, `--grace`,
//! SIGKILL, leftovers ended) followed by a new child with the fresh
//! environment; vinit stays PID 1. A stop signal that arrives during a
//! restart cancels the new start: vinit exits with the old child's status.
//! When the new child cannot start (126/127), vinit revokes and exits with
//! that code, so the orchestrator sees a failed container, not a silent one.
//!
//! Nothing else may end vinit ("after the spawn, never bail"): errors are
//! logged and the loop goes on. With no event due, the loop sleeps in
//! `epoll_wait` and does not wake.
//!
//! An app without secrets and without `--redact` has none of this: for it
//! [`supervise_plain`] blocks in `sigtimedwait` (no event loop at all, as
//! tini), forwarding and reaping the same way, and ends leftovers with the
//! same [`end_leftovers`].

use std::ffi::OsString;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;
use crate::forwarder::SignalThread;
use crate::reaper::{Children, Leftovers, Reaper};
use crate::running::{Action, RunningLife};
use crate::signals::{self, Rewrites, SignalNumber};
use crate::sys;

/// Where and how received signals go.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// To the app's whole process group (`--pgroup`) instead of the app.
    pub to_group: bool,
    pub rewrites: Rewrites,
}

impl Forwarding {
    /// Sends `signal` as it is (a change action) to the app or its group.
    fn send(&self, app: libc::pid_t, signal: SignalNumber) {
        let target = if self.to_group { -app } else { app };
        match sys::send_signal(target, signal) {
            Ok(()) => tracing::debug!("sent {} to the app ({app})", signals::name(signal)),
            Err(err) => tracing::debug!(
                "could not send {} to the app ({app}): {err}",
                signals::name(signal)
            ),
        }
    }

    /// Forwards a received signal, after `--rewrite`, to the app or its group.
    pub(crate) fn forward(&self, app: libc::pid_t, received: SignalNumber) {
        // The kill comes first; names are formatted only when debug logging
        // is on (the macros evaluate their arguments lazily).
        let name = || signals::name(received);
        let Some(signal) = self.rewrites.apply(received) else {
            tracing::debug!("dropped {} (--rewrite)", name());
            return;
        };
        let (target, whom) = if self.to_group {
            (-app, "the app's process group")
        } else {
            (app, "the app")
        };
        match sys::send_signal(target, signal) {
            Ok(()) if signal == received => tracing::debug!("forwarded {} to {whom} ({app})", name()),
            Ok(()) => tracing::debug!(
                "forwarded {} as {} to {whom} ({app})",
                name(),
                signals::name(signal)
            ),
            Err(err) => tracing::debug!("could not forward {} to {whom} ({app}): {err}", name()),
        }
    }
}

/// Starts the app again with a fresh environment; returns its pid.
pub type Respawn<'a> = dyn FnMut(&[(OsString, OsString)]) -> Result<libc::pid_t, Error> + 'a;

/// Everything the loop needs besides the signals and the app's pid.
pub struct Supervision<'a> {
    pub forwarding: Forwarding,
    pub grace: Duration,
    /// Running life, when the app has secrets to keep fresh.
    pub life: Option<RunningLife>,
    pub respawn: &'a mut Respawn<'a>,
}

/// A restart under way: the old child has been asked to stop. A stop
/// signal meanwhile ([`SignalThread::take_stop_signal`]) cancels the new
/// start, up to the moment it is spawned; one that comes later still (it
/// found no app to go to) is sent to the new app.
struct Restart {
    /// The new app's environment, secrets included: scrubbed on drop,
    /// whether the new app started or the restart was cancelled.
    env: Vec<(OsString, OsString)>,
    /// When the old child gets SIGKILL (cleared once sent).
    kill_at: Option<Instant>,
}

impl Drop for Restart {
    fn drop(&mut self) {
        crate::secret::scrub_env(std::mem::take(&mut self.env));
    }
}

/// Supervises the running app until it exits; returns its exit code (128+N
/// when killed by signal N) once leftovers are gone or `grace` has passed,
/// and running life has revoked what it holds.
pub async fn supervise(
    signals: &mut SignalThread,
    mut app: libc::pid_t,
    supervision: Supervision<'_>,
) -> i32 {
    let Supervision {
        forwarding,
        grace,
        mut life,
        respawn,
    } = supervision;
    let mut reaper = Reaper::new(app);
    let mut restart: Option<Restart> = None;
    let code = loop {
        let kill_at = restart.as_ref().and_then(|r| r.kill_at);
        let life_active = life.is_some() && restart.is_none();
        tokio::select! {
            // If the app already ended, its SIGCHLD is pending and arrives here.
            reported = signals.child_ended() => {
                if let Err(err) = reported {
                    tracing::warn!("reading the signal thread's reports failed: {err}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                signals.reap(&mut reaper);
            },
            action = next_action(&mut life), if life_active => match action {
                Action::Signals(list) => {
                    for signal in list {
                        forwarding.send(app, signal);
                    }
                }
                Action::Restart(env) => {
                    tracing::info!("restarting the app (pid {app}) with fresh values");
                    // Only a stop signal from now on cancels the new start.
                    signals.take_stop_signal();
                    forwarding.forward(app, libc::SIGTERM);
                    restart = Some(Restart {
                        env,
                        kill_at: Some(Instant::now() + grace),
                    });
                }
            },
            () = sleep_until(kill_at) => {
                tracing::warn!("the app did not stop within {} for a restart; sending SIGKILL", humanize(grace));
                let target = if forwarding.to_group { -app } else { app };
                let _ = sys::send_signal(target, libc::SIGKILL);
                if let Some(pending) = restart.as_mut() {
                    pending.kill_at = None;
                }
            }
        }
        let Some(code) = reaper.main_exit() else { continue };
        end_leftovers(signals, &mut reaper, app, grace).await;
        let Some(pending) = restart.take() else { break code };
        if signals.take_stop_signal() {
            tracing::debug!("a stop signal came during the restart: the app is not started again");
            break code;
        }
        let started = respawn(&pending.env);
        drop(pending);
        match started {
            Ok(pid) => {
                tracing::debug!("the app restarted as pid {pid}");
                app = pid;
                reaper = Reaper::new(pid);
                if let Some(missed) = signals.forward_to(pid) {
                    forwarding.forward(pid, missed);
                }
            }
            Err(err) => {
                tracing::error!("the app could not start again: {err}");
                if let Some(life) = life.take() {
                    life.revoke().await;
                }
                return err.exit_code();
            }
        }
    };
    if let Some(life) = life {
        life.revoke().await;
    }
    code
}

async fn next_action(life: &mut Option<RunningLife>) -> Action {
    match life.as_mut() {
        Some(life) => life.next_action().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}

/// SIGTERM to what the app left behind, at most `grace` to end, then SIGKILL.
async fn end_leftovers(waiter: &mut impl ChildWait, reaper: &mut Reaper, app: libc::pid_t, grace: Duration) {
    let leftovers = Leftovers { group: app };
    if reaper.reap() == Children::None {
        // No child means no descendant at all; only the app's group can hold
        // a process that escaped to another subreaper.
        leftovers.signal_group(libc::SIGTERM);
        return;
    }
    leftovers.signal(libc::SIGTERM);
    if waiter.no_children_within(reaper, grace).await {
        tracing::debug!(
            "all children ended; {} orphans reaped in all",
            reaper.orphans_reaped()
        );
        return;
    }
    tracing::warn!(
        "processes were still running {} after the app ended; sending SIGKILL",
        humanize(grace)
    );
    leftovers.signal(libc::SIGKILL);
    if !waiter.no_children_within(reaper, Duration::from_secs(1)).await {
        tracing::warn!("some processes survived SIGKILL (uninterruptible sleep?); exiting anyway");
    }
}

/// How [`end_leftovers`] waits for the children to end: on the event loop
/// (the signal thread's reports, among running life's work) or by blocking
/// the thread (the plain supervisor). Signals other than SIGCHLD are no
/// longer forwarded: the app is gone.
trait ChildWait {
    /// Reaps until vinit has no child left (true) or `limit` passes (false).
    async fn no_children_within(&mut self, reaper: &mut Reaper, limit: Duration) -> bool;
}

impl ChildWait for SignalThread {
    async fn no_children_within(&mut self, reaper: &mut Reaper, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if reaper.reap() == Children::None {
                return true;
            }
            tokio::select! {
                reported = self.child_ended() => if reported.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                },
                () = tokio::time::sleep_until(deadline) => return reaper.reap() == Children::None,
            }
        }
    }
}

/// The plain supervisor's: `sigtimedwait` until the deadline.
struct Blocking;

impl ChildWait for Blocking {
    async fn no_children_within(&mut self, reaper: &mut Reaper, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if reaper.reap() == Children::None {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            match signals::wait(Some(deadline)) {
                Ok(Some(signal)) => ignore_after_exit(signal),
                Ok(None) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

fn ignore_after_exit(signal: SignalNumber) {
    if signal != libc::SIGCHLD {
        tracing::debug!("ignored {} while ending leftovers", signals::name(signal));
    }
}

/// [`supervise`] for an app without running life or `--redact`: nothing can
/// happen but signals and ended children, so there is no event loop. vinit
/// blocks in `sigtimedwait` as tini does, one system call between a signal
/// and its forwarding (bench/results/FINDINGS.md, section 2).
pub fn supervise_plain(app: libc::pid_t, forwarding: &Forwarding, grace: Duration) -> i32 {
    let mut reaper = Reaper::new(app);
    let code = loop {
        match signals::wait(None) {
            // If the app already ended, its SIGCHLD is pending and arrives here.
            Ok(Some(libc::SIGCHLD)) => {
                reaper.reap();
            }
            Ok(Some(signal)) => forwarding.forward(app, signal),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!("reading signals failed: {err}; retrying");
                reaper.reap();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Some(code) = reaper.main_exit() {
            break code;
        }
    };
    run_ready(end_leftovers(&mut Blocking, &mut reaper, app, grace));
    code
}

/// Runs a future whose every `.await` is ready at once (the plain
/// supervisor's clean-up: [`Blocking`] blocks the thread instead of
/// returning `Pending`), without an executor.
fn run_ready<F: std::future::Future>(future: F) -> F::Output {
    struct NeverWoken;
    impl std::task::Wake for NeverWoken {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(NeverWoken));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
