//! The PID-1 event loop: forwards signals to the app, reaps every child, and
//! when the app ends, ends what it left behind and returns its status.
//!
//! # Design
//! One current-thread tokio loop owns everything that happens after the
//! spawn. Its event sources are futures raced with `select!`:
//! - the signalfd ([`SignalSource`]): SIGCHLD means "reap", anything else is
//!   forwarded (after `--rewrite`) to the app or its process group;
//! - timers (the `--grace` deadline now; token renewal and refresh timers
//!   join here later);
//! - later, Vault work: requests are futures on the same loop, never awaited
//!   inline by a signal branch, so a slow Vault never delays forwarding or
//!   reaping.
//!
//! Nothing here may end vinit except the app's exit ("after the spawn, never
//! bail"): errors are logged and the loop goes on. With no event due, the
//! loop sleeps in `epoll_wait` and does not wake.

use std::time::Duration;

use tokio::time::Instant;

use crate::reaper::{Children, Leftovers, Reaper};
use crate::signals::{self, Rewrites, SignalNumber, SignalSource};
use crate::sys;

/// Where and how received signals go.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// To the app's whole process group (`--pgroup`) instead of the app.
    pub to_group: bool,
    pub rewrites: Rewrites,
}

impl Forwarding {
    fn forward(&self, app: libc::pid_t, received: SignalNumber) {
        let name = signals::name(received);
        let Some(signal) = self.rewrites.apply(received) else {
            tracing::debug!("dropped {name} (--rewrite)");
            return;
        };
        let (target, whom) = if self.to_group {
            (-app, "the app's process group")
        } else {
            (app, "the app")
        };
        match sys::send_signal(target, signal) {
            Ok(()) if signal == received => tracing::debug!("forwarded {name} to {whom} ({app})"),
            Ok(()) => tracing::debug!("forwarded {name} as {} to {whom} ({app})", signals::name(signal)),
            Err(err) => tracing::debug!("could not forward {name} to {whom} ({app}): {err}"),
        }
    }
}

/// Supervises the running app until it exits; returns its exit code (128+N
/// when killed by signal N) once leftovers are gone or `grace` has passed.
pub async fn supervise(
    signals: &mut SignalSource,
    app: libc::pid_t,
    forwarding: &Forwarding,
    grace: Duration,
) -> i32 {
    let mut reaper = Reaper::new(app);
    let code = loop {
        // If the app already ended, its SIGCHLD is pending and arrives here.
        match signals.recv().await {
            Ok(batch) => {
                for signal in batch {
                    if signal == libc::SIGCHLD {
                        reaper.reap();
                    } else {
                        forwarding.forward(app, signal);
                    }
                }
            }
            Err(err) => {
                tracing::warn!("reading signals failed: {err}; retrying");
                reaper.reap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if let Some(code) = reaper.main_exit() {
            break code;
        }
    };
    end_leftovers(signals, &mut reaper, app, grace).await;
    code
}

/// SIGTERM to what the app left behind, at most `grace` to end, then SIGKILL.
async fn end_leftovers(signals: &mut SignalSource, reaper: &mut Reaper, app: libc::pid_t, grace: Duration) {
    let leftovers = Leftovers { group: app };
    if reaper.reap() == Children::None {
        // No child means no descendant at all; only the app's group can hold
        // a process that escaped to another subreaper.
        leftovers.signal_group(libc::SIGTERM);
        return;
    }
    leftovers.signal(libc::SIGTERM);
    if wait_for_no_children(signals, reaper, grace).await {
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
    if !wait_for_no_children(signals, reaper, Duration::from_secs(1)).await {
        tracing::warn!("some processes survived SIGKILL (uninterruptible sleep?); exiting anyway");
    }
}

/// Reaps until vinit has no child left (true) or `limit` passes (false).
/// Signals other than SIGCHLD are no longer forwarded: the app is gone.
async fn wait_for_no_children(signals: &mut SignalSource, reaper: &mut Reaper, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if reaper.reap() == Children::None {
            return true;
        }
        tokio::select! {
            received = signals.recv() => {
                if let Ok(batch) = received {
                    for signal in batch.into_iter().filter(|s| *s != libc::SIGCHLD) {
                        tracing::debug!("ignored {} while ending leftovers", signals::name(signal));
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => return reaper.reap() == Children::None,
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
