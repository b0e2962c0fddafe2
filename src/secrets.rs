//! The start-up secrets pipeline: find what the app needs (references in the
//! environment and the config's `[env]`, templates, issues), then log in,
//! fetch every distinct read and issue in parallel (one request per path and
//! version), render the environment and the files, and write the files.
//!
//! Fail closed: any failure ends start-up with its exit code, and no file
//! is left behind. When nothing asks for a secret, Vault is never contacted.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config_file::ConfigFile;
use crate::error::Error;
use crate::output::{self, FileOut, Written};
use crate::reference::{self, Read, Template};
use crate::render::{self, Fetched, TemplateText};
use crate::secret::{SecretData, SecretString};
use crate::settings::Environment;
use crate::vault::auth::{super_error, AuthPlan};
use crate::vault::{with_retries, Failure, Vault, VaultSettings};

/// Where a rendered environment value goes.
#[derive(Debug)]
enum Slot {
    /// Replaces the value of the inherited variable at this index.
    Inherited(usize),
    /// A variable from the config's `[env]`, appended.
    Extra,
}

#[derive(Debug)]
struct EnvRef {
    name: String,
    slot: Slot,
    template: Template,
}

struct TemplateJob {
    text: TemplateText,
    /// Uses `issued(...)`: in a dry run (no issue performed) it is not rendered.
    needs_issue: bool,
    destination: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    allow_persistent: bool,
}

struct IssueJob {
    name: String,
    path: String,
    data: serde_json::Value,
}

/// What start-up must fetch and render; built and validated before any
/// request is sent (so `--check` sees every configuration error).
pub struct SecretsPlan {
    env_refs: Vec<EnvRef>,
    /// Plain `[env]` entries (no reference): appended as they are.
    extra_plain: Vec<(String, String)>,
    templates: Vec<TemplateJob>,
    issues: Vec<IssueJob>,
    /// Present when something needs Vault.
    vault: Option<(VaultSettings, AuthPlan)>,
    reads: BTreeMap<Read, Vec<String>>,
}

impl SecretsPlan {
    /// Finds every reference in `child_env` (minus `VINIT_IGNORE`) and the
    /// config file, loads and checks templates, and resolves Vault settings
    /// and authentication when anything needs them.
    pub fn build(
        env: &Environment,
        child_env: &[(OsString, OsString)],
        config: Option<&ConfigFile>,
    ) -> Result<SecretsPlan, Error> {
        let ignored = crate::settings::list(env.text("VINIT_IGNORE")?.unwrap_or(""));
        let mut env_refs = Vec::new();
        for (index, (name, value)) in child_env.iter().enumerate() {
            let name = name.to_string_lossy();
            if ignored.iter().any(|i| *i == name) {
                continue;
            }
            let Some(value) = value.to_str() else { continue };
            if let Some(template) =
                reference::parse(value).map_err(|e| Error::config(format!("{name}: {e}")))?
            {
                env_refs.push(EnvRef {
                    name: name.into_owned(),
                    slot: Slot::Inherited(index),
                    template,
                });
            }
        }
        let default_file = ConfigFile::default();
        let config = config.unwrap_or(&default_file);
        let mut extra_plain = Vec::new();
        for (name, value) in &config.env {
            if child_env.iter().any(|(n, _)| n == name.as_str()) {
                continue; // the environment wins over the file
            }
            match reference::parse(value).map_err(|e| Error::config(format!("[env] {name}: {e}")))? {
                Some(template) => env_refs.push(EnvRef {
                    name: name.clone(),
                    slot: Slot::Extra,
                    template,
                }),
                None => extra_plain.push((name.clone(), value.clone())),
            }
        }
        let templates = config
            .templates
            .iter()
            .map(template_job)
            .collect::<Result<Vec<_>, _>>()?;
        let issues: Vec<IssueJob> = config
            .issues
            .iter()
            .map(|issue| IssueJob {
                name: issue.name.clone(),
                path: issue.path.trim_matches('/').to_string(),
                data: serde_json::to_value(&issue.data).unwrap_or_default(),
            })
            .collect();

        let mut reads: BTreeMap<Read, Vec<String>> = BTreeMap::new();
        for env_ref in &env_refs {
            for field in env_ref.template.fields() {
                reads
                    .entry(field.read.clone())
                    .or_default()
                    .push(env_ref.name.clone());
            }
        }
        let issue_names: BTreeSet<&str> = issues.iter().map(|i| i.name.as_str()).collect();
        let mut templates = templates;
        for job in &mut templates {
            let needs = job.text.needs()?;
            job.needs_issue = !needs.issues.is_empty();
            for read in needs.reads {
                reads
                    .entry(read)
                    .or_default()
                    .push(format!("template {}", job.text.label));
            }
            if let Some(unknown) = needs.issues.iter().find(|n| !issue_names.contains(n.as_str())) {
                return Err(Error::config(format!(
                    "template {}: issued(\"{unknown}\") names no [[issue]] in the config file",
                    job.text.label
                )));
            }
        }
        for job in &templates {
            output::check_destination(&job.destination, job.allow_persistent)?;
        }

        let needs_vault =
            !reads.is_empty() || !issues.is_empty() || env_refs.iter().any(|r| r.template.wants_login());
        let vault = if needs_vault {
            Some((
                VaultSettings::resolve(env, &config.vault)?,
                AuthPlan::resolve(env, &config.auth)?,
            ))
        } else {
            None
        };
        Ok(SecretsPlan {
            env_refs,
            extra_plain,
            templates,
            issues,
            vault,
            reads,
        })
    }

    /// One line per auth, reference, template and issue: paths, keys and
    /// versions, never values (`--check`).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some((settings, auth)) = &self.vault {
            lines.push(format!("vault {}", settings.address));
            lines.push(auth.describe());
        }
        for env_ref in &self.env_refs {
            for field in env_ref.template.fields() {
                lines.push(format!(
                    "env {}: read {} key {}",
                    env_ref.name, field.read, field.key
                ));
            }
            if env_ref.template.wants_login() {
                lines.push(format!("env {}: the login token", env_ref.name));
            }
        }
        for job in &self.templates {
            let reads: Vec<String> = self
                .reads
                .iter()
                .filter(|(_, users)| users.iter().any(|u| *u == format!("template {}", job.text.label)))
                .map(|(read, _)| read.to_string())
                .collect();
            lines.push(format!(
                "template {} (mode {:04o}): read {}",
                job.destination.display(),
                job.mode,
                if reads.is_empty() {
                    "nothing".into()
                } else {
                    reads.join(", ")
                }
            ));
        }
        for issue in &self.issues {
            lines.push(format!("issue {}: write {}", issue.name, issue.path));
        }
        if lines.is_empty() {
            lines.push("no secrets: vinit runs as a plain init".into());
        }
        lines
    }

    pub fn needs_vault(&self) -> bool {
        self.vault.is_some()
    }

    /// Logs in, fetches and renders; writes the files unless `dry_run`
    /// (`--check --online`, which also performs no issue). Returns the
    /// child's environment and the files written.
    pub async fn prepare(
        &self,
        child_env: &[(OsString, OsString)],
        timeout: Duration,
        dry_run: bool,
    ) -> Result<Prepared, Error> {
        let mut env: Vec<(OsString, OsString)> = child_env.to_vec();
        let Some((settings, auth)) = &self.vault else {
            env.extend(self.extra_plain.iter().map(|(n, v)| (n.into(), v.into())));
            return Ok(Prepared {
                env,
                files: Written::default(),
                own_token: None,
            });
        };
        let deadline = Instant::now() + timeout;
        let vault = Vault::new(settings)?;
        tracing::debug!("contacting Vault at {}", settings.address);
        let login = auth.login(&vault, deadline).await?;
        tracing::debug!(
            "have a token; {} reads, {} issues",
            self.reads.len(),
            self.issues.len()
        );
        let mut fetched = self.fetch(&vault, &login.token, deadline, dry_run).await?;
        let handed_to_app = self.env_refs.iter().any(|r| r.template.wants_login());
        let own_token = (login.logged_in && !handed_to_app).then(|| OwnToken {
            vault: vault.clone(),
            token: login.token.clone(),
        });
        fetched.token = Some(login.token);

        let mut extra = Vec::new();
        for env_ref in &self.env_refs {
            let value = render::env_value(&env_ref.name, &env_ref.template, &fetched)?;
            let value = OsString::from(value.expose());
            match env_ref.slot {
                Slot::Inherited(index) => env[index].1 = value,
                Slot::Extra => extra.push((OsString::from(&env_ref.name), value)),
            }
        }
        env.extend(self.extra_plain.iter().map(|(n, v)| (n.into(), v.into())));
        env.extend(extra);

        let mut files = Vec::new();
        for job in &self.templates {
            if dry_run && job.needs_issue {
                continue; // its issue was not performed: nothing to render
            }
            files.push(FileOut {
                destination: job.destination.clone(),
                contents: job.text.render(&fetched)?,
                mode: job.mode,
                uid: job.uid,
                gid: job.gid,
                allow_persistent: job.allow_persistent,
            });
        }
        let files = if dry_run {
            Written::default()
        } else {
            output::write_all(&files)?
        };
        Ok(Prepared {
            env,
            files,
            own_token,
        })
    }

    /// Every distinct read and every issue, all at once.
    async fn fetch(
        &self,
        vault: &Vault,
        token: &SecretString,
        deadline: Instant,
        dry_run: bool,
    ) -> Result<Fetched, Error> {
        let mut tasks: JoinSet<Result<Fetch, Error>> = JoinSet::new();
        for (read, users) in &self.reads {
            let (vault, token, read, users) = (vault.clone(), token.clone(), read.clone(), users.clone());
            tasks.spawn(async move {
                tracing::debug!("reading {read}");
                let answer = with_retries(deadline, &read.path, || {
                    vault.read(&token, &read.path, read.version)
                })
                .await
                .map_err(|failure| read_error(&read, &users, failure))?;
                Ok(Fetch::Read(read, answer.data))
            });
        }
        if !dry_run {
            for issue in &self.issues {
                let (vault, token) = (vault.clone(), token.clone());
                let (name, path, data) = (issue.name.clone(), issue.path.clone(), issue.data.clone());
                tasks.spawn(async move {
                    tracing::debug!("issuing {name} at {path}");
                    let answer = with_retries(deadline, &path, || vault.write(Some(&token), &path, &data))
                        .await
                        .map_err(|failure| issue_error(&name, &path, failure))?;
                    Ok(Fetch::Issue(name, answer.data))
                });
            }
        }
        let mut fetched = Fetched::default();
        while let Some(joined) = tasks.join_next().await {
            let result =
                joined.map_err(|err| Error::Unavailable(format!("a Vault request failed: {err}")))?;
            match result? {
                Fetch::Read(read, data) => {
                    fetched.reads.insert(read, data);
                }
                Fetch::Issue(name, data) => {
                    fetched.issues.insert(name, data);
                }
            }
        }
        Ok(fetched)
    }
}

impl std::fmt::Debug for SecretsPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.describe()).finish()
    }
}

enum Fetch {
    Read(Read, SecretData),
    Issue(String, SecretData),
}

/// The result of start-up: the app's environment and the files written.
#[derive(Debug)]
pub struct Prepared {
    pub env: Vec<(OsString, OsString)>,
    pub files: Written,
    /// The token vinit logged in with, when no `vault:login` handed it to
    /// the app: exec mode revokes it just before the exec.
    pub own_token: Option<OwnToken>,
}

/// A token vinit obtained by logging in (never a user-supplied one).
pub struct OwnToken {
    vault: Vault,
    token: SecretString,
}

impl std::fmt::Debug for OwnToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnToken(***)")
    }
}

impl OwnToken {
    /// `auth/token/revoke-self`, waiting at most 2 s; a failure is a
    /// warning (the token then expires with its TTL), never fatal.
    pub async fn revoke(self) {
        let empty = serde_json::json!({});
        let attempt = self
            .vault
            .write(Some(&self.token), "auth/token/revoke-self", &empty);
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(_)) => tracing::debug!("revoked the token vinit logged in with"),
            Ok(Err(failure)) => {
                tracing::warn!(
                    "could not revoke vinit's token ({}); it expires with its TTL",
                    failure.describe()
                )
            }
            Err(_) => tracing::warn!("revoking vinit's token took over 2s; it expires with its TTL"),
        }
    }
}

fn template_job(section: &crate::config_file::TemplateSection) -> Result<TemplateJob, Error> {
    let label = section.destination.display().to_string();
    let source = match (&section.source, &section.contents) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|err| Error::config(format!("template {label}: source {}: {err}", path.display())))?,
        (None, Some(contents)) => contents.clone(),
        (None, None) => {
            return Err(Error::config(format!(
                "template {label}: needs source or contents"
            )))
        }
    };
    let (uid, gid) = match &section.owner {
        None => (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw()),
        Some(owner) => {
            owner_ids(owner).map_err(|e| Error::config(format!("template {label}: owner: {e}")))?
        }
    };
    Ok(TemplateJob {
        text: TemplateText::new(label, source)?,
        needs_issue: false,
        destination: section.destination.clone(),
        mode: section.mode.map(|m| m.0).unwrap_or(0o400),
        uid,
        gid,
        allow_persistent: section.allow_persistent,
    })
}

/// `NAME` or `UID`, looked up in the image's own /etc/passwd; the group is
/// the user's primary group.
fn owner_ids(owner: &str) -> Result<(u32, u32), String> {
    let user = match owner.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(owner),
    };
    match user {
        Ok(Some(user)) => Ok((user.uid.as_raw(), user.gid.as_raw())),
        Ok(None) if owner.parse::<u32>().is_ok() => {
            let uid: u32 = owner.parse().unwrap_or(0);
            Ok((uid, uid))
        }
        Ok(None) => Err(format!("no user \"{owner}\" in /etc/passwd")),
        Err(err) => Err(format!("cannot look up \"{owner}\": {err}")),
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

    fn env(pairs: &[(&str, &str)]) -> (Environment, Vec<(OsString, OsString)>) {
        let environment = Environment::from_pairs(pairs);
        let child = pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        (environment, child)
    }

    #[test]
    fn nothing_to_fetch_means_no_vault() {
        let (environment, child) = env(&[("PATH", "/bin"), ("VAULT_ADDR", "::bad::")]);
        let plan = SecretsPlan::build(&environment, &child, None).unwrap();
        assert!(!plan.needs_vault(), "a plain init must not need Vault");
    }

    #[test]
    fn reads_are_deduplicated_by_path_and_version() {
        let (environment, child) = env(&[
            ("VAULT_ADDR", "http://127.0.0.1:1"),
            ("VAULT_TOKEN", "t"),
            ("U", "vault:database/creds/app#username"),
            ("P", "vault:database/creds/app#password"),
            ("OLD", "vault:secret/data/app#k#1"),
            ("NEW", "vault:secret/data/app#k"),
            ("SKIP", "vault:not/read#x"),
            ("VINIT_IGNORE", "SKIP"),
        ]);
        let plan = SecretsPlan::build(&environment, &child, None).unwrap();
        let reads: Vec<String> = plan.reads.keys().map(|r| r.to_string()).collect();
        assert_eq!(
            reads,
            [
                "database/creds/app",
                "secret/data/app",
                "secret/data/app (version 1)"
            ]
        );
        assert_eq!(plan.reads[&plan.reads.keys().next().unwrap().clone()], ["U", "P"]);
    }

    #[test]
    fn malformed_reference_names_the_variable() {
        let (environment, child) = env(&[("DB_PASSWORD", "vault:secret/data/app")]);
        let err = SecretsPlan::build(&environment, &child, None).err().unwrap();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().starts_with("DB_PASSWORD: "), "{err}");
    }

    #[test]
    fn kv2_hint() {
        assert_eq!(kv2_form("secret/app").as_deref(), Some("secret/data/app"));
        assert_eq!(kv2_form("secret/data/app"), None);
    }
}
