//! The seed file: its format (YAML; JSON is valid YAML too) and its
//! checks. One file holds the data (KV mounts with versions, dynamic
//! secrets, PKI roles, wrapped responses), the identities (tokens, policies,
//! logins per auth mount) and the fault knobs. Errors name the file, line
//! and column (syntax, unknown keys, bad values) or the key at fault
//! (references to unknown policies). See `examples/seed.yaml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::faults::Fault;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Policy name -> the paths it grants.
    #[serde(default)]
    pub policies: BTreeMap<String, Vec<Rule>>,
    /// Tokens that exist from the start (`VAULT_TOKEN`).
    #[serde(default)]
    pub tokens: Vec<SeedToken>,
    /// KV mounts by mount path.
    #[serde(default)]
    pub kv: BTreeMap<String, KvMount>,
    /// Auth mounts by mount path (without `auth/`).
    #[serde(default)]
    pub auth: BTreeMap<String, AuthMount>,
    /// Dynamic secrets by API path (`database/creds/app`): new values and
    /// a new lease at each read.
    #[serde(default)]
    pub dynamic: BTreeMap<String, DynamicSecret>,
    /// PKI-like issue endpoints by API path (`pki/issue/web`).
    #[serde(default)]
    pub pki: BTreeMap<String, PkiRole>,
    /// Response-wrapping tokens that exist from the start.
    #[serde(default)]
    pub wrapped: Vec<Wrapped>,
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// One path a policy grants: `"secret/data/app"` (read, create, update) or
/// `{path: "secret/data/*", capabilities: [read]}`. Globs as in Vault: a
/// trailing `*` is a prefix, `+` one path segment.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Rule {
    Path(String),
    Full {
        path: String,
        capabilities: Vec<Capability>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Read,
    Create,
    Update,
    Delete,
    List,
    Deny,
}

impl Rule {
    pub fn path(&self) -> &str {
        match self {
            Rule::Path(path) | Rule::Full { path, .. } => path,
        }
    }

    pub fn capabilities(&self) -> Vec<Capability> {
        match self {
            Rule::Path(_) => vec![Capability::Read, Capability::Create, Capability::Update],
            Rule::Full { capabilities, .. } => capabilities.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedToken {
    pub id: String,
    #[serde(default)]
    pub policies: Vec<String>,
    /// 0 (the default): never expires, not renewable (like a root token).
    #[serde(default)]
    pub ttl: Ttl,
    #[serde(default)]
    pub max_ttl: Ttl,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvMount {
    #[serde(default = "kv2", deserialize_with = "kv_version")]
    pub version: u8,
    #[serde(default)]
    pub secrets: BTreeMap<String, KvSecret>,
}

fn kv2() -> u8 {
    2
}

fn kv_version<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    match u8::deserialize(d)? {
        v @ (1 | 2) => Ok(v),
        other => Err(serde::de::Error::custom(format!(
            "version {other}: a KV mount is version 1 or 2"
        ))),
    }
}

/// A secret: its fields (one version), or `versions:` (oldest first).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KvSecret {
    Versions { versions: Vec<KvVersion> },
    Fields(Map<String, Value>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvVersion {
    pub data: Map<String, Value>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub destroyed: bool,
}

impl KvSecret {
    pub fn versions(&self) -> Vec<KvVersion> {
        match self {
            KvSecret::Versions { versions } => versions.clone(),
            KvSecret::Fields(data) => vec![KvVersion {
                data: data.clone(),
                deleted: false,
                destroyed: false,
            }],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    Approle,
    Kubernetes,
    Jwt,
    Cert,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthMount {
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// jwt: the role used when a login names none.
    #[serde(default)]
    pub default_role: Option<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, AuthRole>,
}

/// Who may log in as a role, and the token they get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRole {
    /// approle
    #[serde(default)]
    pub role_id: Option<String>,
    /// approle: the secret_ids accepted.
    #[serde(default)]
    pub secret_ids: Vec<String>,
    /// kubernetes, jwt: accepted `sub` claims (`system:serviceaccount:NS:NAME`).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// cert: SHA-256 fingerprints of accepted client certificates (hex,
    /// colons optional).
    #[serde(default)]
    pub fingerprints: Vec<String>,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default = "one_hour")]
    pub ttl: Ttl,
    #[serde(default)]
    pub max_ttl: Ttl,
    #[serde(default = "yes")]
    pub renewable: bool,
}

fn one_hour() -> Ttl {
    Ttl(Duration::from_secs(3600))
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicSecret {
    /// Field names; each read gives each a fresh random value.
    #[serde(default = "credential_fields")]
    pub fields: Vec<String>,
    #[serde(default = "one_hour")]
    pub ttl: Ttl,
    #[serde(default)]
    pub max_ttl: Ttl,
    #[serde(default = "yes")]
    pub renewable: bool,
}

fn credential_fields() -> Vec<String> {
    vec!["username".into(), "password".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiRole {
    /// The certificate lifetime when the request names none.
    #[serde(default = "one_day")]
    pub ttl: Ttl,
    #[serde(default)]
    pub max_ttl: Ttl,
}

fn one_day() -> Ttl {
    Ttl(Duration::from_secs(86_400))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wrapped {
    pub token: String,
    pub data: Map<String, Value>,
    #[serde(default = "five_minutes")]
    pub ttl: Ttl,
}

fn five_minutes() -> Ttl {
    Ttl(Duration::from_secs(300))
}

/// A duration written as Vault writes them: `90`, `"90s"`, `"1h30m"`, `"500ms"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ttl(pub Duration);

impl Ttl {
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(secs) => Ok(Ttl(Duration::from_secs(secs))),
            Raw::Text(text) => parse_duration(&text).map(Ttl).map_err(serde::de::Error::custom),
        }
    }
}

/// `90`, `90s`, `1h30m`, `500ms`, `1.5s` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("\"{text}\" is not a duration (90, 90s, 1h30m, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(number * scale);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

impl Seed {
    /// Reads and checks a seed file.
    pub fn load(path: &Path) -> Result<Seed, String> {
        let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        Self::parse(&text).map_err(|err| format!("{}:{err}", path.display()))
    }

    /// Parses seed text; an error starts with `LINE:COLUMN: ` when the
    /// parser knows where it is.
    pub fn parse(text: &str) -> Result<Seed, String> {
        let seed: Seed = if text.trim().is_empty() {
            Seed::default()
        } else {
            serde_norway::from_str(text).map_err(|err| match err.location() {
                Some(at) => format!(
                    "{}:{}: {}",
                    at.line(),
                    at.column(),
                    strip_location(&err.to_string())
                ),
                None => format!(" {err}"),
            })?
        };
        seed.check().map_err(|err| format!(" {err}"))?;
        Ok(seed)
    }

    /// References between sections: every policy named exists.
    fn check(&self) -> Result<(), String> {
        let known = |name: &str| name == "root" || name == "default" || self.policies.contains_key(name);
        for (index, token) in self.tokens.iter().enumerate() {
            if let Some(unknown) = token.policies.iter().find(|p| !known(p)) {
                return Err(format!(
                    "tokens[{index}] ({}): unknown policy \"{unknown}\"",
                    token.id
                ));
            }
        }
        for (mount, auth) in &self.auth {
            for (name, role) in &auth.roles {
                if let Some(unknown) = role.policies.iter().find(|p| !known(p)) {
                    return Err(format!("auth.{mount}.roles.{name}: unknown policy \"{unknown}\""));
                }
                if auth.kind == AuthKind::Approle && role.role_id.is_none() {
                    return Err(format!(
                        "auth.{mount}.roles.{name}: an approle role needs role_id"
                    ));
                }
            }
            if let Some(default) = &auth.default_role {
                if !auth.roles.contains_key(default) {
                    return Err(format!("auth.{mount}.default_role: no role \"{default}\""));
                }
            }
        }
        Ok(())
    }
}

/// serde_norway appends " at line L column C"; the message already starts with it.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_full_seed_parses() {
        let text = include_str!("../examples/seed.yaml");
        let seed = Seed::parse(text).unwrap();
        assert_eq!(seed.kv["secret"].version, 2);
        assert!(seed.auth.contains_key("approle"));
    }

    #[test]
    fn errors_name_the_line() {
        let err = Seed::parse("tokens:\n  - id: root\n    polices: [root]\n").unwrap_err();
        assert!(err.starts_with("3:5: "), "{err}");
        assert!(err.contains("polices"), "{err}");
        let err = Seed::parse("kv:\n  secret:\n    version: 3\n").unwrap_err();
        assert!(err.starts_with("3:"), "{err}");
        assert!(err.contains("version 1 or 2"), "{err}");
        let err = Seed::parse(
            "auth:\n  approle:\n    type: approle\n    roles:\n      app: {role_id: r, ttl: soon}\n",
        )
        .unwrap_err();
        assert!(err.starts_with("5:"), "{err}");
        assert!(err.contains("\"soon\""), "{err}");
        let err = Seed::parse("kv: [\n").unwrap_err();
        assert!(err.contains(':'), "{err}");
    }

    #[test]
    fn unknown_policies_are_named() {
        let err = Seed::parse("tokens:\n  - id: t\n    policies: [nope]\n").unwrap_err();
        assert!(err.contains("tokens[0]") && err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.yaml");
        std::fs::write(&path, "kv:\n  secret:\n    versoin: 2\n").unwrap();
        let err = Seed::load(&path).unwrap_err();
        assert!(err.starts_with(&format!("{}:3:", path.display())), "{err}");
    }
}
