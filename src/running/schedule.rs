//! When running life acts: pure timing rules, each with jitter so that a
//! fleet started together does not reach Vault in lockstep. No I/O, no
//! clock: callers pass `now`, so the rules are unit-tested exactly.
//!
//! | what | when |
//! | --- | --- |
//! | a renewable token or lease | renewed at 60-72% of its TTL ("about two thirds") |
//! | a renewal that came back short (max TTL near) | a fresh login, or a new read, at 30-50% of what is left |
//! | a non-renewable lease | read again at 80-90% of its TTL |
//! | an `[[issue]]` (PKI) | issued again at 60-72% of its lifetime |
//! | a KV value | re-checked every `--refresh`, ±10% |
//! | a failure | retried after `Retry-After` (a floor) plus a jittered backoff doubling from 1 s, capped at 30 s |

use std::time::Duration;

use tokio::time::Instant;

use crate::vault::{backoff_wait, jitter, Failure};

/// The longest wait between two tries while Vault fails (SPEC: 30 s).
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A random fraction of `span` between `low` and `high` (per mille).
fn fraction(span: Duration, low: u32, high: u32) -> Duration {
    let base = span * low / 1000;
    base + jitter(span * (high - low) / 1000)
}

/// When to renew something that lives `ttl`: at about two thirds of it.
pub fn renew_in(ttl: Duration) -> Duration {
    fraction(ttl, 600, 720)
}

/// When to act on something whose renewal came back short (its max TTL is
/// near): early, at 30-50% of what is left, to leave the app time to switch.
pub fn soon_in(left: Duration) -> Duration {
    fraction(left, 300, 500)
}

/// When to read again a lease that cannot be renewed.
pub fn reread_in(ttl: Duration) -> Duration {
    fraction(ttl, 800, 900)
}

/// When to re-check a KV value.
pub fn refresh_in(refresh: Duration) -> Duration {
    fraction(refresh, 900, 1100)
}

/// The wait before try number `failures + 1` after `failure`: equal jitter
/// (half the ceiling fixed, half random) so that retries never bunch at
/// zero, with the server's `Retry-After` as a floor under it.
pub fn retry_in(failures: u32, failure: &Failure) -> Duration {
    let ceiling = Duration::from_secs(1u64 << failures.min(5)).min(BACKOFF_CAP);
    (ceiling / 2)
        .saturating_add(backoff_wait(failure, ceiling / 2))
        .min(BACKOFF_CAP.saturating_add(failure.retry_after().unwrap_or_default()))
}

/// True when a renewal granted less than was asked for: the max TTL is
/// near, and the next step must be a fresh login or read, not a renewal.
pub fn renewal_was_cut(asked: Duration, granted: Duration) -> bool {
    granted + Duration::from_secs(1) < asked
}

/// `now + wait`, saturating far in the future instead of overflowing.
pub fn at(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .unwrap_or(now + Duration::from_secs(86_400 * 365))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_come_at_about_two_thirds_and_spread() {
        let ttl = Duration::from_secs(300);
        let samples: Vec<Duration> = (0..500).map(|_| renew_in(ttl)).collect();
        assert!(samples
            .iter()
            .all(|d| *d >= Duration::from_secs(180) && *d <= Duration::from_secs(216)));
        let distinct: std::collections::HashSet<_> = samples.iter().map(|d| d.as_millis()).collect();
        assert!(
            distinct.len() > 100,
            "renewal times barely spread: {}",
            distinct.len()
        );
        let rereads: Vec<Duration> = (0..200).map(|_| reread_in(ttl)).collect();
        assert!(rereads
            .iter()
            .all(|d| *d >= Duration::from_secs(240) && *d <= Duration::from_secs(270)));
        let refresh: Vec<Duration> = (0..200).map(|_| refresh_in(Duration::from_secs(60))).collect();
        assert!(refresh
            .iter()
            .all(|d| *d >= Duration::from_secs(54) && *d <= Duration::from_secs(66)));
    }

    #[test]
    fn retries_back_off_to_thirty_seconds() {
        let down = Failure::Unreachable("refused".into());
        let first: Vec<Duration> = (0..100).map(|_| retry_in(0, &down)).collect();
        assert!(first
            .iter()
            .all(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(1)));
        let late: Vec<Duration> = (0..100).map(|_| retry_in(12, &down)).collect();
        assert!(late
            .iter()
            .all(|d| *d >= Duration::from_secs(15) && *d <= BACKOFF_CAP));
        assert!(
            late.iter().any(|d| *d > Duration::from_secs(20)),
            "no spread near the cap"
        );
    }

    #[test]
    fn retry_after_is_a_floor_not_the_wait() {
        // `Retry-After: 0` must not mean "at once".
        let zero: Vec<Duration> = (0..100)
            .map(|_| retry_in(0, &Failure::status(429, Some(0))))
            .collect();
        assert!(zero.iter().all(|d| *d >= Duration::from_millis(500)));
        let five: Vec<Duration> = (0..100)
            .map(|_| retry_in(0, &Failure::status(429, Some(5))))
            .collect();
        assert!(five
            .iter()
            .all(|d| *d >= Duration::from_secs(5) && *d <= Duration::from_secs(6)));
        assert!(
            five.iter().any(|d| *d != five[0]),
            "Retry-After alone sets the wait: lockstep"
        );
    }

    #[test]
    fn a_huge_retry_after_does_not_overflow() {
        assert_eq!(retry_in(3, &Failure::status(503, Some(u64::MAX))), Duration::MAX);
    }

    #[test]
    fn a_short_renewal_means_the_max_ttl_is_near() {
        assert!(!renewal_was_cut(Duration::from_secs(5), Duration::from_secs(5)));
        assert!(!renewal_was_cut(Duration::from_secs(5), Duration::from_secs(4)));
        assert!(renewal_was_cut(Duration::from_secs(5), Duration::from_secs(2)));
    }
}
