//! Authentication: which method, where its inputs come from (variables,
//! files re-read at every login, the config's `[auth]`), and the login
//! request itself. Inputs are read only when a login happens.

use std::path::PathBuf;

use tokio::time::Instant;

use super::{Failure, Vault};
use crate::config_file::AuthSection;
use crate::error::Error;
use crate::secret::SecretString;
use crate::settings::Environment;

const KUBERNETES_JWT: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Token,
    AppRole,
    Kubernetes,
    Jwt,
    Cert,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Token => "token",
            Method::AppRole => "approle",
            Method::Kubernetes => "kubernetes",
            Method::Jwt => "jwt",
            Method::Cert => "cert",
        }
    }
}

/// A credential given inline or as a file (read, trimmed, at each login).
#[derive(Debug, Clone)]
pub enum Credential {
    Value {
        variable: &'static str,
        value: SecretString,
    },
    File {
        variable: &'static str,
        path: PathBuf,
    },
}

impl Credential {
    /// An inline value wins over a file; each comes with the name of the
    /// variable (or config key) it was given by, for messages.
    fn first(value: Option<(&'static str, String)>, file: Option<(&'static str, PathBuf)>) -> Option<Self> {
        match (value, file) {
            (Some((variable, value)), _) => Some(Credential::Value {
                variable,
                value: SecretString::new(value),
            }),
            (None, Some((variable, path))) => Some(Credential::File { variable, path }),
            (None, None) => None,
        }
    }

    pub fn read(&self) -> Result<SecretString, Error> {
        let (variable, value) = match self {
            Credential::Value { variable, value } => (*variable, value.expose().trim().to_string()),
            Credential::File { variable, path } => {
                let text = std::fs::read_to_string(path)
                    .map_err(|err| Error::config(format!("{variable}: {}: {err}", path.display())))?;
                let trimmed = text.trim().to_string();
                drop(SecretString::new(text));
                (*variable, trimmed)
            }
        };
        if value.is_empty() {
            return Err(Error::config(format!("{variable}: the credential is empty")));
        }
        Ok(SecretString::new(value))
    }

    fn describe(&self) -> String {
        match self {
            Credential::Value { variable, .. } => variable.to_string(),
            Credential::File { variable, path } => format!("{variable}={}", path.display()),
        }
    }
}

/// How vinit gets its token.
#[derive(Debug, Clone)]
pub struct AuthPlan {
    pub method: Method,
    pub mount: String,
    pub token: Option<Credential>,
    pub role_id: Option<Credential>,
    pub secret_id: Option<Credential>,
    pub secret_id_wrapped: bool,
    pub role: Option<String>,
    pub jwt_file: Option<PathBuf>,
}

/// The token vinit works with, and whether vinit obtained it (a
/// user-supplied token is never revoked or replaced).
#[derive(Debug, Clone)]
pub struct Login {
    pub token: SecretString,
    pub logged_in: bool,
    pub lease_duration: u64,
    pub renewable: bool,
}

impl AuthPlan {
    /// Reads `VINIT_AUTH_*` and friends, then the config's `[auth]`.
    pub fn resolve(env: &Environment, file: &AuthSection) -> Result<Self, Error> {
        let text = |name: &str| -> Result<Option<String>, Error> {
            Ok(env
                .text(name)
                .map_err(super::to_config)?
                .filter(|v| !v.is_empty())
                .map(String::from))
        };
        let path = |name: &str, fallback: &Option<PathBuf>| -> Result<Option<PathBuf>, Error> {
            Ok(text(name)?.map(PathBuf::from).or_else(|| fallback.clone()))
        };
        let token = Credential::first(
            super::twin(env, "TOKEN")?.map(|v| ("VAULT_TOKEN", v)),
            path("VINIT_TOKEN_FILE", &file.token_file)?.map(|p| ("VINIT_TOKEN_FILE", p)),
        );
        let method_name = text("VINIT_AUTH_METHOD")?.or_else(|| file.method.clone());
        let method =
            match method_name.as_deref() {
                None if token.is_some() => Method::Token,
                None => return Err(Error::config(
                    "no way to log in to Vault: set VAULT_TOKEN (or VINIT_TOKEN_FILE), or VINIT_AUTH_METHOD \
                     (approle, kubernetes, jwt, cert)",
                )),
                Some("token") => Method::Token,
                Some("approle") => Method::AppRole,
                Some("kubernetes") => Method::Kubernetes,
                Some("jwt") | Some("oidc") => Method::Jwt,
                Some("cert") => Method::Cert,
                Some(other) => {
                    return Err(Error::config(format!(
                        "VINIT_AUTH_METHOD: \"{other}\" is not token, approle, kubernetes, jwt or cert"
                    )))
                }
            };
        let mount = text("VINIT_AUTH_MOUNT")?
            .or_else(|| file.mount.clone())
            .map(|m| m.trim_matches('/').trim_start_matches("auth/").to_string())
            .unwrap_or_else(|| method.name().to_string());
        // The environment (value, then file) wins over the config file.
        let role_id = Credential::first(
            text("VINIT_ROLE_ID")?.map(|v| ("VINIT_ROLE_ID", v)),
            path("VINIT_ROLE_ID_FILE", &file.role_id_file)?.map(|p| ("VINIT_ROLE_ID_FILE", p)),
        )
        .or_else(|| Credential::first(file.role_id.clone().map(|v| ("role_id", v)), None));
        let secret_id = Credential::first(
            text("VINIT_SECRET_ID")?.map(|v| ("VINIT_SECRET_ID", v)),
            path("VINIT_SECRET_ID_FILE", &file.secret_id_file)?.map(|p| ("VINIT_SECRET_ID_FILE", p)),
        );
        let secret_id_wrapped = match text("VINIT_SECRET_ID_WRAPPED")? {
            Some(v) => crate::settings::parse_bool(&v)
                .map_err(|e| Error::config(format!("VINIT_SECRET_ID_WRAPPED: {e}")))?,
            None => file.secret_id_wrapped.unwrap_or(false),
        };
        let plan = AuthPlan {
            method,
            mount,
            token,
            role_id,
            secret_id,
            secret_id_wrapped,
            role: text("VINIT_ROLE")?.or_else(|| file.role.clone()),
            jwt_file: path("VINIT_JWT_FILE", &file.jwt_file)?,
        };
        plan.check_inputs()?;
        Ok(plan)
    }

    fn check_inputs(&self) -> Result<(), Error> {
        let missing = |what: &str| {
            Err(Error::config(format!(
                "auth method {}: {what}",
                self.method.name()
            )))
        };
        match self.method {
            Method::Token if self.token.is_none() => missing("needs VAULT_TOKEN or VINIT_TOKEN_FILE"),
            Method::AppRole if self.role_id.is_none() => missing("needs VINIT_ROLE_ID or VINIT_ROLE_ID_FILE"),
            Method::AppRole if self.secret_id.is_none() => {
                missing("needs VINIT_SECRET_ID or VINIT_SECRET_ID_FILE")
            }
            Method::Kubernetes if self.role.is_none() => missing("needs VINIT_ROLE"),
            Method::Jwt if self.jwt_file.is_none() => missing("needs VINIT_JWT_FILE"),
            _ => Ok(()),
        }
    }

    /// One line for `--check`: the method, the mount and where inputs come from.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("login {} at auth/{}", self.method.name(), self.mount)];
        if self.method == Method::Token {
            parts = vec!["login token".to_string()];
        }
        for credential in [&self.token, &self.role_id, &self.secret_id]
            .into_iter()
            .flatten()
        {
            parts.push(credential.describe());
        }
        if self.secret_id_wrapped {
            parts.push("secret_id response-wrapped".into());
        }
        if let Some(role) = &self.role {
            parts.push(format!("role {role}"));
        }
        if let Some(jwt) = self.jwt_path() {
            parts.push(format!("jwt {}", jwt.display()));
        }
        parts.join(", ")
    }

    fn jwt_path(&self) -> Option<PathBuf> {
        match self.method {
            Method::Kubernetes => Some(self.jwt_file.clone().unwrap_or_else(|| KUBERNETES_JWT.into())),
            Method::Jwt => self.jwt_file.clone(),
            _ => None,
        }
    }

    /// Obtains a token: the given one, or a login with retries until
    /// `deadline`. A response-wrapped secret_id can be unwrapped once only:
    /// the unwrapped one is returned, and passed back as `unwrapped` for the
    /// next login while the wrapping token in the file is the same.
    pub async fn login(
        &self,
        vault: &Vault,
        deadline: Instant,
        unwrapped: Option<UnwrappedSecretId>,
    ) -> Result<(Login, Option<UnwrappedSecretId>), Error> {
        if self.method == Method::Token {
            let credential = self
                .token
                .as_ref()
                .ok_or_else(|| Error::config("no token given"))?;
            let login = Login {
                token: credential.read()?,
                logged_in: false,
                lease_duration: 0,
                renewable: false,
            };
            return Ok((login, None));
        }
        let mut remembered = None;
        let mut body = serde_json::Map::new();
        match self.method {
            Method::AppRole => {
                let role_id = self
                    .role_id
                    .as_ref()
                    .ok_or_else(|| Error::config("no role_id"))?
                    .read()?;
                let secret_id = self
                    .secret_id
                    .as_ref()
                    .ok_or_else(|| Error::config("no secret_id"))?
                    .read()?;
                let secret_id = if self.secret_id_wrapped {
                    let known = unwrapped.filter(|u| u.wrapping.expose() == secret_id.expose());
                    let inner = match known {
                        Some(known) => known.secret_id,
                        None => unwrap_secret_id(vault, &secret_id, deadline).await?,
                    };
                    remembered = Some(UnwrappedSecretId {
                        wrapping: secret_id,
                        secret_id: inner.clone(),
                    });
                    inner
                } else {
                    secret_id
                };
                body.insert("role_id".into(), role_id.expose().into());
                body.insert("secret_id".into(), secret_id.expose().into());
            }
            Method::Kubernetes | Method::Jwt => {
                let path = self.jwt_path().ok_or_else(|| Error::config("no JWT file"))?;
                let jwt = Credential::File {
                    variable: "VINIT_JWT_FILE",
                    path,
                }
                .read()?;
                body.insert("jwt".into(), jwt.expose().into());
                if let Some(role) = &self.role {
                    body.insert("role".into(), role.clone().into());
                }
            }
            Method::Cert => {
                if let Some(role) = &self.role {
                    body.insert("name".into(), role.clone().into());
                }
            }
            Method::Token => {}
        }
        let mut body = serde_json::Value::Object(body);
        let path = format!("auth/{}/login", self.mount);
        tracing::debug!("logging in with {} at {path}", self.method.name());
        let result = vault
            .with_retries(deadline, &path, || vault.write(None, &path, &body))
            .await;
        crate::secret::scrub(&mut body);
        let answer = result.map_err(|failure| login_error(&path, failure))?;
        let token = answer
            .client_token
            .ok_or_else(|| Error::Denied(format!("{path}: the answer carries no token")))?;
        tracing::debug!(
            "logged in (lease {}s, renewable {})",
            answer.lease_duration,
            answer.renewable
        );
        let login = Login {
            token,
            logged_in: true,
            lease_duration: answer.lease_duration,
            renewable: answer.renewable,
        };
        Ok((login, remembered))
    }
}

/// A response-wrapped secret_id and what it unwrapped to.
#[derive(Debug, Clone)]
pub struct UnwrappedSecretId {
    wrapping: SecretString,
    secret_id: SecretString,
}

/// `VINIT_SECRET_ID_WRAPPED=true`: the secret_id is a wrapping token; the
/// real secret_id is in its response.
async fn unwrap_secret_id(
    vault: &Vault,
    wrapping: &SecretString,
    deadline: Instant,
) -> Result<SecretString, Error> {
    let path = "sys/wrapping/unwrap";
    let empty = serde_json::json!({});
    let answer = vault.with_retries(deadline, path, || vault.write(Some(wrapping), path, &empty))
        .await
        .map_err(|failure| match failure {
            Failure::Status { code: 400 | 403, errors, .. } => Error::Denied(format!(
                "VINIT_SECRET_ID: cannot unwrap the response-wrapped secret_id (used already, expired or not a \
                 wrapping token): {errors}"
            )),
            other => super_error(path, other),
        })?;
    answer
        .data
        .field("secret_id")
        .ok_or_else(|| Error::Denied("VINIT_SECRET_ID: the unwrapped response holds no secret_id".into()))
}

fn login_error(path: &str, failure: Failure) -> Error {
    match failure {
        Failure::Status {
            code: 400 | 401 | 403,
            errors,
            ..
        } => Error::Denied(format!("{path}: login refused: {errors}")),
        Failure::Status { code: 404, .. } => Error::Denied(format!(
            "{path}: no such auth method is enabled (check VINIT_AUTH_MOUNT)"
        )),
        other => super_error(path, other),
    }
}

/// The exit class of a failure that is not specific to what was asked.
pub fn super_error(path: &str, failure: Failure) -> Error {
    match failure {
        Failure::Status {
            code: 403, errors, ..
        } => Error::Denied(format!("{path}: permission denied: {errors}")),
        Failure::Tls(_) => Error::Unavailable(format!("{path}: {}", failure.describe())),
        other if other.is_transient() => Error::Unavailable(format!(
            "{path}: {} (still failing at the start-up deadline, VINIT_TIMEOUT)",
            other.describe()
        )),
        other => Error::Unavailable(format!("{path}: {}", other.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(pairs: &[(&str, &str)]) -> Result<AuthPlan, Error> {
        AuthPlan::resolve(&Environment::from_pairs(pairs), &AuthSection::default())
    }

    #[test]
    fn token_is_the_default_when_given() {
        let plan = resolve(&[("VAULT_TOKEN", "s.x")]).unwrap();
        assert_eq!(plan.method, Method::Token);
        let plan = resolve(&[("VINIT_TOKEN_FILE", "/run/token")]).unwrap();
        assert_eq!(plan.method, Method::Token);
        assert_eq!(resolve(&[]).unwrap_err().exit_code(), 78);
    }

    #[test]
    fn approle_needs_both_ids_and_mount_defaults_to_method() {
        let plan = resolve(&[
            ("VINIT_AUTH_METHOD", "approle"),
            ("VINIT_ROLE_ID", "r"),
            ("VINIT_SECRET_ID", "s"),
        ])
        .unwrap();
        assert_eq!(plan.mount, "approle");
        let err = resolve(&[("VINIT_AUTH_METHOD", "approle"), ("VINIT_ROLE_ID", "r")]).unwrap_err();
        assert!(err.to_string().contains("VINIT_SECRET_ID"), "{err}");
        let plan = resolve(&[
            ("VINIT_AUTH_METHOD", "approle"),
            ("VINIT_AUTH_MOUNT", "auth/apps/"),
            ("VINIT_ROLE_ID", "r"),
            ("VINIT_SECRET_ID", "s"),
        ])
        .unwrap();
        assert_eq!(plan.mount, "apps");
    }

    #[test]
    fn unknown_method_is_named() {
        let err = resolve(&[("VINIT_AUTH_METHOD", "ldap")]).unwrap_err();
        assert!(err.to_string().contains("\"ldap\""), "{err}");
    }

    #[test]
    fn credential_files_are_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret_id");
        std::fs::write(&file, "  s3cr3t\n").unwrap();
        let credential = Credential::File {
            variable: "VINIT_SECRET_ID_FILE",
            path: file,
        };
        assert_eq!(credential.read().unwrap().expose(), "s3cr3t");
        let plan = resolve(&[
            ("VINIT_AUTH_METHOD", "approle"),
            ("VINIT_ROLE_ID", "r"),
            ("VINIT_SECRET_ID", "zzz"),
        ])
        .unwrap();
        assert!(!plan.describe().contains("zzz"));
        assert!(!format!("{plan:?}").contains("zzz"));
    }
}
