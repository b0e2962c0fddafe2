//! Change actions waiting to run: which signals and whether a restart, with
//! `--debounce` (changes that arrive close together give one action, and
//! several templates with the same action give it once) and `--splay` (a
//! restart waits a random time up to it). Pure: callers pass `now`.
//!
//! Debounce is a quiet period: the actions run `debounce` after the last
//! change, but never later than five debounce periods after the first one,
//! so a secret that keeps changing cannot hold them back for ever. A
//! pending restart absorbs pending signals: the new child starts with
//! fresh values everywhere.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::secrets::ChangeAction;
use crate::signals::SignalNumber;
use crate::vault::jitter;

/// What is due for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Send these signals, each once.
    Signals(Vec<SignalNumber>),
    /// Stop the app and start it again.
    Restart,
}

/// Actions collected since the last ones ran.
#[derive(Debug)]
pub struct Changes {
    debounce: Duration,
    splay: Duration,
    signals: BTreeSet<SignalNumber>,
    restart: bool,
    first: Option<Instant>,
    last: Option<Instant>,
    /// A restart, once debounced, waits until this splayed moment.
    restart_at: Option<Instant>,
}

impl Changes {
    pub fn new(debounce: Duration, splay: Duration) -> Self {
        Changes {
            debounce,
            splay,
            signals: BTreeSet::new(),
            restart: false,
            first: None,
            last: None,
            restart_at: None,
        }
    }

    /// Records that something whose `on_change` is `action` changed.
    pub fn add(&mut self, action: ChangeAction, now: Instant) {
        match action {
            ChangeAction::None => return,
            ChangeAction::Signal(signal) => {
                self.signals.insert(signal);
            }
            ChangeAction::Restart => self.restart = true,
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When [`Changes::take`] next has something to give, if ever.
    pub fn due_at(&self) -> Option<Instant> {
        if let Some(at) = self.restart_at {
            return Some(at);
        }
        let (first, last) = (self.first?, self.last?);
        Some((last + self.debounce).min(first + self.debounce * 5))
    }

    /// The actions due at `now`, if any; they are then forgotten.
    pub fn take(&mut self, now: Instant) -> Option<Due> {
        if self.due_at()? > now {
            return None;
        }
        if self.restart {
            if self.restart_at.is_none() && !self.splay.is_zero() {
                let wait = jitter(self.splay);
                tracing::info!("restarting the app in {}ms (--splay)", wait.as_millis());
                self.restart_at = Some(now + wait);
                return self.take(now);
            }
            self.clear();
            return Some(Due::Restart);
        }
        let signals = std::mem::take(&mut self.signals).into_iter().collect();
        self.clear();
        Some(Due::Signals(signals))
    }

    fn clear(&mut self) {
        self.signals.clear();
        self.restart = false;
        self.first = None;
        self.last = None;
        self.restart_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUP: ChangeAction = ChangeAction::Signal(libc::SIGHUP);
    const USR1: ChangeAction = ChangeAction::Signal(libc::SIGUSR1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn changes_within_the_debounce_give_one_action_each() {
        let t0 = Instant::now();
        let mut changes = Changes::new(ms(1000), Duration::ZERO);
        assert_eq!(changes.due_at(), None);
        changes.add(HUP, t0);
        changes.add(HUP, t0 + ms(300));
        changes.add(USR1, t0 + ms(600));
        changes.add(ChangeAction::None, t0 + ms(900));
        assert_eq!(changes.due_at(), Some(t0 + ms(1600)));
        assert_eq!(changes.take(t0 + ms(1500)), None);
        assert_eq!(
            changes.take(t0 + ms(1600)),
            Some(Due::Signals(vec![libc::SIGHUP, libc::SIGUSR1]))
        );
        assert_eq!(changes.due_at(), None);
        assert_eq!(changes.take(t0 + ms(9000)), None);
    }

    #[test]
    fn a_steady_stream_of_changes_cannot_hold_actions_back() {
        let t0 = Instant::now();
        let mut changes = Changes::new(ms(1000), Duration::ZERO);
        for step in 0..20 {
            changes.add(HUP, t0 + ms(step * 500));
        }
        assert_eq!(changes.due_at(), Some(t0 + ms(5000)));
    }

    #[test]
    fn a_restart_absorbs_signals_and_is_splayed() {
        let t0 = Instant::now();
        let mut changes = Changes::new(ms(100), ms(2000));
        changes.add(HUP, t0);
        changes.add(ChangeAction::Restart, t0);
        assert_eq!(changes.take(t0 + ms(50)), None);
        let at_debounce = changes.take(t0 + ms(100));
        let restart_at = changes.due_at().expect("a splayed restart is pending");
        assert!(restart_at >= t0 + ms(100) && restart_at <= t0 + ms(2100));
        if restart_at > t0 + ms(100) {
            assert_eq!(at_debounce, None);
            assert_eq!(changes.take(restart_at), Some(Due::Restart));
        } else {
            assert_eq!(at_debounce, Some(Due::Restart));
        }
        assert_eq!(changes.due_at(), None);
    }

    #[test]
    fn without_splay_a_restart_is_due_after_the_debounce() {
        let t0 = Instant::now();
        let mut changes = Changes::new(ms(100), Duration::ZERO);
        changes.add(ChangeAction::Restart, t0);
        assert_eq!(changes.take(t0 + ms(100)), Some(Due::Restart));
    }
}
