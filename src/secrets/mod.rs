//! The secrets core, shared by start-up and running life: what the app needs
//! (references in the environment and the config's `[env]`, templates,
//! issues, deduplicated into one read per path and version), and how a set
//! of fetched values becomes the app's environment and files.
//!
//! [`startup`] fetches everything once before the app starts;
//! [`crate::running`] keeps it fresh afterwards. Both render through
//! [`SecretsPlan::render_env`] and [`SecretsPlan::render_files`]. When
//! nothing asks for a secret, Vault is never contacted.

pub mod startup;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;

pub use crate::config_file::ChangeAction;
use crate::config_file::ConfigFile;
use crate::error::Error;
use crate::output::{self, FileOut};
use crate::reference::{self, Piece, Read, Template};
use crate::render::{self, Fetched, Needs, TemplateText};
use crate::secret::SecretString;
use crate::settings::Environment;
use crate::vault::auth::AuthPlan;
use crate::vault::VaultSettings;

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
    /// The reads and issues it uses (the values `--redact` hides).
    needs: Needs,
    destination: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    allow_persistent: bool,
    on_change: ChangeAction,
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
    /// and authentication when anything needs them. Files without an
    /// `owner` belong to `file_owner` (uid, gid: the `--user`), else to vinit.
    pub fn build(
        env: &Environment,
        child_env: &[(OsString, OsString)],
        config: Option<&ConfigFile>,
        file_owner: Option<(u32, u32)>,
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
            .map(|section| template_job(section, file_owner))
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
            job.needs = needs.clone();
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

    /// Where Vault is and how vinit logs in, when anything needs Vault.
    pub fn vault(&self) -> Option<&(VaultSettings, AuthPlan)> {
        self.vault.as_ref()
    }

    /// True when start-up writes files (which running life may re-render).
    pub fn renders_files(&self) -> bool {
        !self.templates.is_empty()
    }

    /// Every distinct read (path and version).
    pub fn reads(&self) -> impl Iterator<Item = &Read> {
        self.reads.keys()
    }

    /// The names of the `[[issue]]` writes.
    pub fn issue_names(&self) -> impl Iterator<Item = &str> {
        self.issues.iter().map(|issue| issue.name.as_str())
    }

    /// The path and body of the issue called `name`.
    pub fn issue(&self, name: &str) -> Option<(&str, &serde_json::Value)> {
        self.issues
            .iter()
            .find(|issue| issue.name == name)
            .map(|issue| (issue.path.as_str(), &issue.data))
    }

    /// True when a variable hands the login token to the app (`vault:login`).
    pub fn hands_token_to_app(&self) -> bool {
        self.env_refs.iter().any(|r| r.template.wants_login())
    }

    /// Each template's destination and `on_change`, in the plan's order.
    pub fn template_actions(&self) -> impl Iterator<Item = (&std::path::Path, ChangeAction)> {
        self.templates
            .iter()
            .map(|job| (job.destination.as_path(), job.on_change))
    }

    /// A template may restart the app: inherited descriptors must then be
    /// kept for the next child.
    pub fn may_restart(&self) -> bool {
        self.templates
            .iter()
            .any(|job| job.on_change == ChangeAction::Restart)
    }

    /// The app's environment: `base` (the child's, in vinit's order) with
    /// references replaced, then the config's `[env]` (plain, then rendered).
    pub fn render_env(
        &self,
        base: &[(OsString, OsString)],
        fetched: &Fetched,
    ) -> Result<Vec<(OsString, OsString)>, Error> {
        let mut env = base.to_vec();
        let mut extra = Vec::new();
        for env_ref in &self.env_refs {
            let value = render::env_value(&env_ref.name, &env_ref.template, fetched)?;
            let value = OsString::from(value.expose());
            match env_ref.slot {
                Slot::Inherited(index) => {
                    if let Some(slot) = env.get_mut(index) {
                        slot.1 = value;
                    }
                }
                Slot::Extra => extra.push((OsString::from(&env_ref.name), value)),
            }
        }
        env.extend(self.extra_plain.iter().map(|(n, v)| (n.into(), v.into())));
        env.extend(extra);
        Ok(env)
    }

    /// The names of the variables that hold references.
    pub fn referencing_variables(&self) -> impl Iterator<Item = &str> {
        self.env_refs.iter().map(|r| r.name.as_str())
    }

    /// Every template rendered, in the plan's order; with `skip_issued`
    /// (a dry run, where no issue was performed) those that use `issued()`
    /// are left out.
    /// Every secret value placed in the app's environment or files, with
    /// where it went (`--redact` hides them): each field an environment
    /// variable references (and the `vault:login` token), and every string
    /// inside the reads and issues a template uses. Running life calls it
    /// again with fresh values.
    pub fn placed_values(&self, fetched: &Fetched) -> Vec<PlacedValue> {
        let mut placed = Vec::new();
        for env_ref in &self.env_refs {
            for piece in &env_ref.template.pieces {
                let value = match piece {
                    Piece::Text(_) => None,
                    Piece::Login => fetched.token.clone(),
                    Piece::Field(field) => fetched.reads.get(&field.read).and_then(|d| d.field(&field.key)),
                };
                placed.extend(value.map(|value| PlacedValue {
                    source: env_ref.name.clone(),
                    value,
                }));
            }
        }
        for job in &self.templates {
            let source = format!("template {}", job.text.label);
            let reads = job.needs.reads.iter().filter_map(|read| fetched.reads.get(read));
            let issues = job
                .needs
                .issues
                .iter()
                .filter_map(|name| fetched.issues.get(name));
            for data in reads.chain(issues) {
                for value in data.as_map().values() {
                    strings_in(value, &mut |text| {
                        placed.push(PlacedValue {
                            source: source.clone(),
                            value: SecretString::from(text),
                        })
                    });
                }
            }
        }
        placed
    }

    pub fn render_files(&self, fetched: &Fetched, skip_issued: bool) -> Result<Vec<FileOut>, Error> {
        let mut files = Vec::new();
        for job in &self.templates {
            if skip_issued && job.needs_issue {
                continue;
            }
            files.push(FileOut {
                destination: job.destination.clone(),
                contents: job.text.render(fetched)?,
                mode: job.mode,
                uid: job.uid,
                gid: job.gid,
                allow_persistent: job.allow_persistent,
            });
        }
        Ok(files)
    }
}

impl std::fmt::Debug for SecretsPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.describe()).finish()
    }
}

fn template_job(
    section: &crate::config_file::TemplateSection,
    default_owner: Option<(u32, u32)>,
) -> Result<TemplateJob, Error> {
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
        None => default_owner.unwrap_or((nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())),
        Some(owner) => {
            owner_ids(owner).map_err(|e| Error::config(format!("template {label}: owner: {e}")))?
        }
    };
    Ok(TemplateJob {
        on_change: ChangeAction::parse(section.on_change.as_deref())
            .map_err(|e| Error::config(format!("template {label}: {e}")))?,
        text: TemplateText::new(label, source)?,
        needs_issue: false,
        needs: Needs::default(),
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

/// A secret value and where it was placed: a variable name or
/// `template DESTINATION`.
#[derive(Debug)]
pub struct PlacedValue {
    pub source: String,
    pub value: SecretString,
}

/// Calls `found` with every string inside a JSON value (numbers and
/// booleans in a secret's data are rarely secret and would hide ordinary
/// output such as `true` or a port number).
fn strings_in(value: &serde_json::Value, found: &mut impl FnMut(&str)) {
    match value {
        serde_json::Value::String(text) => found(text),
        serde_json::Value::Array(items) => items.iter().for_each(|item| strings_in(item, found)),
        serde_json::Value::Object(map) => map.values().for_each(|item| strings_in(item, found)),
        _ => {}
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
        let plan = SecretsPlan::build(&environment, &child, None, None).unwrap();
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
        let plan = SecretsPlan::build(&environment, &child, None, None).unwrap();
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
        let err = SecretsPlan::build(&environment, &child, None, None)
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().starts_with("DB_PASSWORD: "), "{err}");
    }
}
