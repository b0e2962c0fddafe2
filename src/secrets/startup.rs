//! Start-up: log in, fetch every distinct read and issue in parallel (one
//! request per path and version; over https the client lets two at a time
//! through, see [`crate::vault::TLS_STARTUP_CONNECTIONS`]), render the
//! environment and the files, write the files. Fail closed: any failure
//! ends start-up with its exit code, and no file is left behind.
//!
//! What it fetched, with each answer's lease, is handed to running life
//! ([`crate::running`]) as a [`Vaulted`] state; the start-up HTTP client is
//! dropped with it, so vinit holds no connection to Vault once the app runs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::SecretsPlan;
use crate::error::Error;
use crate::output::{self, Written};
use crate::reference::Read;
use crate::render::Fetched;
use crate::secret::{SecretData, SecretString};
use crate::vault::auth::{super_error, Login};
use crate::vault::{Answer, Failure, Vault};

/// How long an answer stays good: its lease (dynamic secrets), or for an
/// issue without a lease, the `expiration` it carries (PKI certificates).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub lease_id: Option<String>,
    /// Zero: no expiry known (KV).
    pub duration: Duration,
    pub renewable: bool,
}

impl Lifetime {
    /// The lifetime of one answer.
    pub fn of(answer: &Answer) -> Lifetime {
        let mut duration = Duration::from_secs(answer.lease_duration);
        if duration.is_zero() {
            // PKI issue answers carry the certificate's end as a Unix time.
            let expiration = answer.data.as_map().get("expiration").and_then(|v| v.as_u64());
            if let Some(end) = expiration {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                duration = Duration::from_secs(end.saturating_sub(now));
            }
        }
        Lifetime {
            lease_id: answer.lease_id.clone(),
            duration,
            renewable: answer.renewable,
        }
    }
}

/// What start-up obtained from Vault, for running life to keep fresh.
pub struct Vaulted {
    pub login: Login,
    pub fetched: Fetched,
    pub read_lifetimes: HashMap<Read, Lifetime>,
    pub issue_lifetimes: HashMap<String, Lifetime>,
    /// What each template rendered to, in the plan's order (empty in a dry run).
    pub rendered: Vec<SecretString>,
    /// The start-up client; exec mode uses it to revoke, supervise mode
    /// drops it (closing its connections) before the app starts.
    pub vault: Vault,
}

impl std::fmt::Debug for Vaulted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vaulted(***)")
    }
}

/// The result of start-up: the app's environment and the files written.
#[derive(Debug)]
pub struct Prepared {
    pub env: Vec<(OsString, OsString)>,
    pub files: Written,
    /// Present when Vault was used.
    pub vaulted: Option<Vaulted>,
}

impl SecretsPlan {
    /// Logs in, fetches and renders; writes the files unless `dry_run`
    /// (`--check --online`, which also performs no issue). Returns the
    /// child's environment, the files written and what Vault answered.
    pub async fn prepare(
        &self,
        child_env: &[(OsString, OsString)],
        timeout: Duration,
        dry_run: bool,
    ) -> Result<Prepared, Error> {
        let Some((settings, auth)) = &self.vault else {
            return Ok(Prepared {
                env: self.prepare_without_vault(child_env)?,
                files: Written::default(),
                vaulted: None,
            });
        };
        let deadline = Instant::now() + timeout;
        let vault = Vault::new(settings)?;
        tracing::debug!("contacting Vault at {}", settings.address);
        let login = auth.login(&vault, deadline, None).await?.0;
        tracing::debug!(
            "have a token; {} reads, {} issues",
            self.reads.len(),
            self.issues.len()
        );
        let (mut fetched, read_lifetimes, issue_lifetimes) =
            self.fetch(&vault, &login.token, deadline, dry_run).await?;
        fetched.token = Some(login.token.clone());
        let env = self.render_env(child_env, &fetched)?;
        let files = self.render_files(&fetched, dry_run)?;
        let written = if dry_run {
            Written::default()
        } else {
            output::write_all(&files)?
        };
        Ok(Prepared {
            env,
            files: written,
            vaulted: Some(Vaulted {
                login,
                fetched,
                read_lifetimes,
                issue_lifetimes,
                rendered: files.into_iter().map(|file| file.contents).collect(),
                vault,
            }),
        })
    }

    /// The child's environment when nothing needs Vault (no event loop).
    pub fn prepare_without_vault(
        &self,
        child_env: &[(OsString, OsString)],
    ) -> Result<Vec<(OsString, OsString)>, Error> {
        self.render_env(child_env, &Fetched::default())
    }

    /// Every distinct read and every issue, all at once (over https the
    /// client sends two at a time).
    async fn fetch(
        &self,
        vault: &Vault,
        token: &SecretString,
        deadline: Instant,
        dry_run: bool,
    ) -> Result<(Fetched, HashMap<Read, Lifetime>, HashMap<String, Lifetime>), Error> {
        let mut tasks: JoinSet<Result<Fetch, Error>> = JoinSet::new();
        for (read, users) in &self.reads {
            let (vault, token, read, users) = (vault.clone(), token.clone(), read.clone(), users.clone());
            tasks.spawn(async move {
                tracing::debug!("reading {read}");
                let answer = vault
                    .with_retries(deadline, &read.path, || {
                        vault.read(&token, &read.path, read.version)
                    })
                    .await
                    .map_err(|failure| read_error(&read, &users, failure))?;
                Ok(Fetch::Read(read, Lifetime::of(&answer), answer.data))
            });
        }
        if !dry_run {
            for issue in &self.issues {
                let (vault, token) = (vault.clone(), token.clone());
                let (name, path, data) = (issue.name.clone(), issue.path.clone(), issue.data.clone());
                tasks.spawn(async move {
                    tracing::debug!("issuing {name} at {path}");
                    let answer = vault
                        .with_retries(deadline, &path, || vault.write(Some(&token), &path, &data))
                        .await
                        .map_err(|failure| issue_error(&name, &path, failure))?;
                    Ok(Fetch::Issue(name, Lifetime::of(&answer), answer.data))
                });
            }
        }
        let mut fetched = Fetched::default();
        let (mut read_lifetimes, mut issue_lifetimes) = (HashMap::new(), HashMap::new());
        while let Some(joined) = tasks.join_next().await {
            let result =
                joined.map_err(|err| Error::Unavailable(format!("a Vault request failed: {err}")))?;
            match result? {
                Fetch::Read(read, lifetime, data) => {
                    read_lifetimes.insert(read.clone(), lifetime);
                    fetched.reads.insert(read, data);
                }
                Fetch::Issue(name, lifetime, data) => {
                    issue_lifetimes.insert(name.clone(), lifetime);
                    fetched.issues.insert(name, data);
                }
            }
        }
        Ok((fetched, read_lifetimes, issue_lifetimes))
    }
}

enum Fetch {
    Read(Read, Lifetime, SecretData),
    Issue(String, Lifetime, SecretData),
}

/// `auth/token/revoke-self`, waiting at most `limit`; a failure is a
/// warning (the token then expires with its TTL), never fatal.
pub async fn revoke_token(vault: &Vault, token: &SecretString, limit: Duration) {
    let empty = serde_json::json!({});
    let attempt = vault.write(Some(token), "auth/token/revoke-self", &empty);
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(_)) => tracing::debug!("revoked the token vinit logged in with"),
        Ok(Err(failure)) => {
            tracing::warn!(
                "could not revoke vinit's token ({}); it expires with its TTL",
                failure.describe()
            )
        }
        Err(_) => tracing::warn!(
            "revoking vinit's token took over {}ms; it expires with its TTL",
            limit.as_millis()
        ),
    }
}

fn read_error(read: &Read, users: &[String], failure: Failure) -> Error {
    let who = format!("{} ({read})", users.join(", "));
    match failure {
        Failure::Status {
            code: 404, kv2_hint, ..
        } => {
            let hint = if kv2_hint || !read.path.contains("/data/") {
                kv2_form(&read.path)
                    .map(|form| format!("; on a KV v2 mount the API path is {form}"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            Error::NoSecret(format!("{who}: no secret at {}{hint}", read.path))
        }
        Failure::Status { code: 403, .. } => Error::Denied(format!(
            "{who}: permission denied reading {} (the token's policies do not allow it)",
            read.path
        )),
        Failure::Status {
            code: 400, errors, ..
        } => Error::config(format!(
            "{who}: Vault rejected the read of {}: {errors}",
            read.path
        )),
        other => super_error(&who, other),
    }
}

/// `secret/app` → `secret/data/app` (the mount is taken to be the first
/// segment; messages say "on a KV v2 mount").
fn kv2_form(path: &str) -> Option<String> {
    let (mount, rest) = path.split_once('/')?;
    if rest.starts_with("data/") {
        return None;
    }
    Some(format!("{mount}/data/{rest}"))
}

fn issue_error(name: &str, path: &str, failure: Failure) -> Error {
    let who = format!("issue {name} ({path})");
    match failure {
        Failure::Status { code: 403, .. } => Error::Denied(format!("{who}: permission denied")),
        Failure::Status {
            code: 400 | 404,
            errors,
            ..
        } => Error::config(format!("{who}: Vault rejected the write: {errors}")),
        other => super_error(&who, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_hint() {
        assert_eq!(kv2_form("secret/app").as_deref(), Some("secret/data/app"));
        assert_eq!(kv2_form("secret/data/app"), None);
    }

    #[test]
    fn lifetimes_come_from_the_lease_or_the_certificate() {
        let mut answer = Answer {
            lease_id: Some("database/creds/app/x".into()),
            lease_duration: 30,
            renewable: true,
            ..Answer::default()
        };
        assert_eq!(
            Lifetime::of(&answer),
            Lifetime {
                lease_id: Some("database/creds/app/x".into()),
                duration: Duration::from_secs(30),
                renewable: true
            }
        );
        let in_an_hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let mut data = serde_json::Map::new();
        data.insert("expiration".into(), in_an_hour.into());
        answer = Answer {
            data: SecretData::new(data),
            ..Answer::default()
        };
        let lifetime = Lifetime::of(&answer);
        assert!(
            lifetime.duration <= Duration::from_secs(3600) && lifetime.duration >= Duration::from_secs(3590)
        );
        assert_eq!(Lifetime::of(&Answer::default()).duration, Duration::ZERO);
    }
}
