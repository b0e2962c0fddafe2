//! The TOML config file (`--config` / `VINIT_CONFIG`): what does not fit in
//! environment variables. Owns its schema and validation only; unknown keys
//! are errors naming the key, relative paths are resolved against the file's
//! own directory.
//!
//! ```toml
//! timeout = "30s"                 # any option's twin: grace, timeout, pgroup, rewrite
//! [vault]                         # VAULT_* / BAO_* variables win over these
//! address = "https://vault.internal:8200"
//! ca_cert = "/etc/ssl/vault-ca.pem"
//! [auth]
//! method = "approle"
//! role_id_file = "/run/vinit/role_id"
//! secret_id_file = "/run/vinit/secret_id"
//! [env]                           # extra variables for the app, references allowed
//! DATABASE_URL = "postgres://${vault:database/creds/app#username}:${vault:database/creds/app#password}@db/app"
//! [[template]]
//! source = "config.yaml.tmpl"     # or: contents = "..."
//! destination = "/run/secrets/config.yaml"
//! mode = "0400"
//! [[issue]]
//! name = "tls"
//! path = "pki/issue/web"
//! data = { common_name = "web.internal", ttl = "24h" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::signals::{self, SignalNumber};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub grace: Option<String>,
    pub timeout: Option<String>,
    pub pgroup: Option<bool>,
    pub rewrite: Option<Vec<String>>,
    pub refresh: Option<String>,
    pub debounce: Option<String>,
    pub splay: Option<String>,
    #[serde(default)]
    pub vault: VaultSection,
    #[serde(default)]
    pub auth: AuthSection,
    /// Extra environment variables for the app (added after the inherited
    /// ones, sorted by name); references allowed.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateSection>,
    #[serde(default, rename = "issue")]
    pub issues: Vec<IssueSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    pub address: Option<String>,
    pub namespace: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub skip_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub method: Option<String>,
    pub mount: Option<String>,
    pub role: Option<String>,
    pub token_file: Option<PathBuf>,
    pub role_id: Option<String>,
    pub role_id_file: Option<PathBuf>,
    pub secret_id_file: Option<PathBuf>,
    pub secret_id_wrapped: Option<bool>,
    pub jwt_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSection {
    pub source: Option<PathBuf>,
    pub contents: Option<String>,
    pub destination: PathBuf,
    pub mode: Option<FileMode>,
    pub owner: Option<String>,
    pub on_change: Option<String>,
    #[serde(default)]
    pub allow_persistent: bool,
}

/// What a template's `on_change` asks for when its file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeAction {
    None,
    Signal(SignalNumber),
    Restart,
}

impl ChangeAction {
    /// `none` (the default), `restart`, or a signal name (`SIGHUP`, `HUP`).
    pub fn parse(text: Option<&str>) -> Result<ChangeAction, String> {
        match text.map(str::trim) {
            None | Some("none") => Ok(ChangeAction::None),
            Some("restart") => Ok(ChangeAction::Restart),
            Some(name) => signals::parse(name, false)
                .map(ChangeAction::Signal)
                .map_err(|e| format!("on_change \"{name}\" is not restart, none or a signal name ({e})")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueSection {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub data: toml::Table,
}

/// `mode = "0400"` or `mode = 0o400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        let mode = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8).map_err(|_| {
                serde::de::Error::custom(format!("mode \"{text}\" is not octal (e.g. \"0400\")"))
            })?,
            Raw::Number(n) => u32::try_from(n).map_err(|_| serde::de::Error::custom("mode out of range"))?,
        };
        if mode > 0o7777 {
            return Err(serde::de::Error::custom(format!("mode {mode:o} is out of range")));
        }
        Ok(FileMode(mode))
    }
}

impl ConfigFile {
    /// Reads and validates the file; every relative path in it (templates,
    /// credential files, CA and client certificates) becomes relative to the
    /// file's own directory.
    pub fn load(path: &Path) -> Result<ConfigFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::config(format!("{}: cannot read the config file: {err}", path.display()))
        })?;
        Self::parse(&text, path)
    }

    /// [`ConfigFile::load`] without the read: `text` is the contents of the
    /// file at `path` (pure, so that it can be fuzzed).
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, Error> {
        let mut config: ConfigFile = toml::from_str(text)
            .map_err(|err| Error::config(format!("{}: {}", path.display(), one_line(&err.to_string()))))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_relative_paths(base);
        config.validate(path)?;
        Ok(config)
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for template in &mut self.templates {
            template.source.as_mut().map(fix);
            fix(&mut template.destination);
        }
        let auth = &mut self.auth;
        for path in [
            &mut auth.token_file,
            &mut auth.role_id_file,
            &mut auth.secret_id_file,
            &mut auth.jwt_file,
        ] {
            path.as_mut().map(fix);
        }
        let vault = &mut self.vault;
        for path in [
            &mut vault.ca_cert,
            &mut vault.ca_path,
            &mut vault.client_cert,
            &mut vault.client_key,
        ] {
            path.as_mut().map(fix);
        }
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        let at = |what: String| Error::config(format!("{}: {what}", path.display()));
        for (i, template) in self.templates.iter().enumerate() {
            let which = format!("template #{} ({})", i + 1, template.destination.display());
            match (&template.source, &template.contents) {
                (Some(_), Some(_)) => return Err(at(format!("{which}: give source or contents, not both"))),
                (None, None) => return Err(at(format!("{which}: needs source or contents"))),
                _ => {}
            }
            ChangeAction::parse(template.on_change.as_deref()).map_err(|e| at(format!("{which}: {e}")))?;
        }
        let mut names = std::collections::HashSet::new();
        for issue in &self.issues {
            if !names.insert(issue.name.as_str()) {
                return Err(at(format!("two [[issue]] entries are named \"{}\"", issue.name)));
            }
            if issue.path.trim_matches('/').is_empty() {
                return Err(at(format!("issue \"{}\" has an empty path", issue.name)));
            }
        }
        Ok(())
    }

    /// True when the file asks for any secret (a template, an issue or a
    /// reference in `[env]`); a file with only `[auth]` leaves vinit a plain init.
    pub fn wants_secrets(&self) -> bool {
        !self.templates.is_empty() || !self.issues.is_empty()
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vinit.toml");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn full_example_parses_and_paths_become_absolute() {
        let (dir, path) = write(
            r#"
            timeout = "30s"
            [auth]
            method = "approle"
            role_id_file = "/run/role_id"
            secret_id_file = "secret_id"
            [env]
            A = "vault:secret/data/a#k"
            [[template]]
            source = "app.tmpl"
            destination = "out/app.conf"
            mode = 0o440
            [[issue]]
            name = "tls"
            path = "pki/issue/web"
            data = { common_name = "web.internal", ttl = "24h" }
            "#,
        );
        let config = ConfigFile::load(&path).unwrap();
        assert_eq!(
            config.templates[0].source.as_deref(),
            Some(dir.path().join("app.tmpl").as_path())
        );
        assert_eq!(config.templates[0].destination, dir.path().join("out/app.conf"));
        assert_eq!(config.templates[0].mode, Some(FileMode(0o440)));
        assert_eq!(
            config.auth.role_id_file.as_deref(),
            Some(Path::new("/run/role_id"))
        );
        assert_eq!(
            config.auth.secret_id_file.as_deref(),
            Some(dir.path().join("secret_id").as_path())
        );
        assert_eq!(
            config.issues[0].data["common_name"].as_str(),
            Some("web.internal")
        );
        assert!(config.wants_secrets());
    }

    #[test]
    fn unknown_keys_are_named() {
        let (_dir, path) = write("[[template]]\ncontents = \"x\"\ndestinaton = \"/run/x\"\n");
        let err = ConfigFile::load(&path).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("destinaton"), "{err}");
        assert!(err.to_string().contains("vinit.toml"), "{err}");
    }

    #[test]
    fn modes_and_sources_are_validated() {
        let (_dir, path) =
            write("[[template]]\ncontents = \"x\"\ndestination = \"/run/x\"\nmode = \"0999\"\n");
        assert!(ConfigFile::load(&path).unwrap_err().to_string().contains("0999"));
        let (_dir, path) = write("[[template]]\ndestination = \"/run/x\"\n");
        assert!(ConfigFile::load(&path)
            .unwrap_err()
            .to_string()
            .contains("needs source or contents"));
        let (_dir, path) =
            write("[[template]]\ncontents = \"x\"\ndestination = \"/x\"\non_change = \"reboot\"\n");
        assert!(ConfigFile::load(&path)
            .unwrap_err()
            .to_string()
            .contains("reboot"));
    }

    #[test]
    fn bad_toml_is_a_config_error() {
        let (_dir, path) = write("[auth\nmethod = 1");
        assert_eq!(ConfigFile::load(&path).unwrap_err().exit_code(), 78);
    }
}
