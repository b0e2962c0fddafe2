//! Fault knobs: which requests they hit (a path glob, a method, the renew
//! endpoints), what they do (latency with jitter, an error rate with a
//! status, sealed, 429 with `Retry-After`, hang, connection reset) and how
//! many times (`times`, unlimited by default). Pure decisions; the server
//! carries them out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::seed::Ttl;

/// The endpoints "fail the next renew" hits.
pub const RENEW_PATHS: &[&str] = &[
    "auth/token/renew-self",
    "auth/token/renew",
    "sys/leases/renew",
    "sys/renew",
];

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// A path glob without `/v1/` (`secret/*`, `auth/+/login`); all paths
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// GET, POST, PUT...; every method when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Hits only the renew endpoints (token renew-self, lease renew).
    #[serde(default, skip_serializing_if = "is_false")]
    pub renew: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ttl")]
    pub latency: Option<Duration>,
    /// Up to this much more latency, uniformly.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ttl")]
    pub jitter: Option<Duration>,
    /// The share of requests (0 to 1) answered with `error_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default = "internal_error")]
    pub error_status: u16,
    /// 503 `Vault is sealed`, `sys/health` reports sealed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sealed: bool,
    /// 429 with this `Retry-After` (whole seconds, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ttl")]
    pub rate_limited: Option<Duration>,
    /// Never answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hang: bool,
    /// Reset the connection (TCP RST) instead of answering.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset: bool,
    /// Applies to this many matching requests, then goes away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn internal_error() -> u16 {
    500
}

mod opt_ttl {
    use super::*;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Ttl>::deserialize(d)?.map(|t| t.0))
    }

    pub fn serialize<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
            None => s.serialize_none(),
        }
    }
}

/// What the server does with a request, after the latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Serve,
    Sealed,
    RateLimited { retry_after_secs: u64 },
    Error { status: u16 },
    Hang,
    Reset,
}

/// The decision for one request: wait this long, then do this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub delay: Duration,
    pub outcome: Outcome,
}

impl Fault {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .map_or(true, |m| m.eq_ignore_ascii_case(method));
        let path_ok = self.path.as_deref().map_or(true, |glob| glob_matches(glob, path));
        let renew_ok = !self.renew
            || RENEW_PATHS
                .iter()
                .any(|r| path == *r || path.starts_with(&format!("{r}/")));
        method_ok && path_ok && renew_ok
    }

    pub fn is_sealed(faults: &[Fault]) -> bool {
        faults
            .iter()
            .any(|f| f.sealed && f.path.is_none() && f.method.is_none() && !f.renew)
    }
}

/// Applies the matching faults to one request, in the order they were
/// given; uses up one of each matched fault's `times`. `random` yields
/// uniform numbers in [0, 1).
pub fn decide(
    faults: &mut Vec<Fault>,
    method: &str,
    path: &str,
    random: &mut impl FnMut() -> f64,
) -> Decision {
    let mut decision = Decision {
        delay: Duration::ZERO,
        outcome: Outcome::Serve,
    };
    for fault in faults.iter_mut().filter(|f| f.matches(method, path)) {
        let mut applied = false;
        if let Some(latency) = fault.latency {
            decision.delay += latency;
            applied = true;
        }
        if let Some(jitter) = fault.jitter {
            decision.delay += jitter.mul_f64(random());
            applied = true;
        }
        if decision.outcome == Outcome::Serve {
            let outcome = if fault.sealed {
                Outcome::Sealed
            } else if fault.hang {
                Outcome::Hang
            } else if fault.reset {
                Outcome::Reset
            } else if let Some(wait) = fault.rate_limited {
                Outcome::RateLimited {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            } else if fault.error_rate.is_some_and(|rate| random() < rate) {
                Outcome::Error {
                    status: fault.error_status,
                }
            } else {
                Outcome::Serve
            };
            applied |= outcome != Outcome::Serve;
            decision.outcome = outcome;
        }
        if applied {
            if let Some(times) = fault.times.as_mut() {
                *times = times.saturating_sub(1);
            }
        }
    }
    faults.retain(|f| f.times != Some(0));
    decision
}

/// Vault's policy globs: a trailing `*` matches any rest, `+` one segment.
pub fn glob_matches(glob: &str, path: &str) -> bool {
    let (glob, prefix) = match glob.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (glob, false),
    };
    let glob_parts: Vec<&str> = glob.split('/').collect();
    let path_parts: Vec<&str> = path.split('/').collect();
    if !prefix && glob_parts.len() != path_parts.len() {
        return false;
    }
    if prefix && path_parts.len() < glob_parts.len() {
        return false;
    }
    let last = glob_parts.len() - 1;
    glob_parts.iter().zip(&path_parts).enumerate().all(|(i, (g, p))| {
        if *g == "+" {
            true
        } else if prefix && i == last {
            p.starts_with(g)
        } else {
            g == p
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(yaml: &str) -> Fault {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn globs_follow_vault() {
        assert!(glob_matches("secret/data/app", "secret/data/app"));
        assert!(!glob_matches("secret/data/app", "secret/data/app2"));
        assert!(glob_matches("secret/data/*", "secret/data/app/x"));
        assert!(glob_matches("secret/data/a*", "secret/data/app"));
        assert!(glob_matches("auth/+/login", "auth/approle/login"));
        assert!(!glob_matches("auth/+/login", "auth/a/b/login"));
        assert!(glob_matches("*", "anything/at/all"));
    }

    #[test]
    fn each_knob_gives_its_outcome() {
        let mut never = || 0.99;
        let cases = [
            ("sealed: true", Outcome::Sealed),
            ("hang: true", Outcome::Hang),
            ("reset: true", Outcome::Reset),
            ("rate_limited: 2s", Outcome::RateLimited { retry_after_secs: 2 }),
            (
                "rate_limited: 100ms",
                Outcome::RateLimited { retry_after_secs: 1 },
            ),
            (
                "{error_rate: 1, error_status: 502}",
                Outcome::Error { status: 502 },
            ),
            ("error_rate: 0.5", Outcome::Serve),
        ];
        for (yaml, expected) in cases {
            let mut faults = vec![fault(yaml)];
            assert_eq!(
                decide(&mut faults, "GET", "secret/data/app", &mut never).outcome,
                expected,
                "{yaml}"
            );
        }
    }

    #[test]
    fn latency_and_jitter_add_up() {
        let mut faults = vec![fault("{latency: 100ms, jitter: 50ms}")];
        let mut half = || 0.5;
        let decision = decide(&mut faults, "GET", "x", &mut half);
        assert_eq!(decision.delay, Duration::from_millis(125));
        assert_eq!(decision.outcome, Outcome::Serve);
    }

    #[test]
    fn times_run_out_and_scope_is_respected() {
        let mut faults = vec![fault("{path: 'secret/*', method: get, error_rate: 1, times: 1}")];
        let mut r = || 0.0;
        assert_eq!(
            decide(&mut faults, "POST", "secret/data/a", &mut r).outcome,
            Outcome::Serve
        );
        assert_eq!(decide(&mut faults, "GET", "kv/a", &mut r).outcome, Outcome::Serve);
        assert_eq!(
            decide(&mut faults, "GET", "secret/data/a", &mut r).outcome,
            Outcome::Error { status: 500 }
        );
        assert!(faults.is_empty());
        assert_eq!(
            decide(&mut faults, "GET", "secret/data/a", &mut r).outcome,
            Outcome::Serve
        );
    }

    #[test]
    fn renew_faults_hit_only_renewals() {
        let mut faults = vec![fault("{renew: true, error_rate: 1, error_status: 400, times: 1}")];
        let mut r = || 0.0;
        assert_eq!(
            decide(&mut faults, "GET", "secret/data/a", &mut r).outcome,
            Outcome::Serve
        );
        assert_eq!(
            decide(&mut faults, "PUT", "sys/leases/renew", &mut r).outcome,
            Outcome::Error { status: 400 }
        );
        assert_eq!(
            decide(&mut faults, "PUT", "sys/leases/renew", &mut r).outcome,
            Outcome::Serve
        );
    }
}
