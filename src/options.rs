//! Flags and their `VINIT_*` twins into one validated [`Plan`] (precedence:
//! flag > environment > default). Only the plan leaves this module.
//!
//! Also owns which `VINIT_*` names exist (a typo is an error, never ignored)
//! and what the child's environment is (vinit's own settings removed, nothing
//! else added, removed or reordered).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::cli::Args;
use crate::config_file::ConfigFile;
use crate::error::Error;
use crate::logging::LogSettings;
use crate::privileges::{self, CapSet, ChildPrivileges, Request};
use crate::running::{EnvOnChange, LifeSettings};
use crate::secrets::SecretsPlan;
use crate::settings::{list, parse_bool, parse_duration, Environment};
use crate::signals::Rewrites;

/// Every `VINIT_*` variable vinit understands. Any other `VINIT_*` name is a
/// usage error, unless `VINIT_PASSTHROUGH` names it for the app.
pub const KNOWN_VARIABLES: &[&str] = &[
    "VINIT_EXEC",
    "VINIT_PGROUP",
    "VINIT_REWRITE",
    "VINIT_GRACE",
    "VINIT_LOG",
    "VINIT_LOG_FORMAT",
    "VINIT_PASSTHROUGH",
    "VINIT_CONFIG",
    "VINIT_TIMEOUT",
    "VINIT_CHECK",
    "VINIT_ONLINE",
    "VINIT_IGNORE",
    "VINIT_AUTH_METHOD",
    "VINIT_AUTH_MOUNT",
    "VINIT_TOKEN_FILE",
    "VINIT_ROLE_ID",
    "VINIT_ROLE_ID_FILE",
    "VINIT_SECRET_ID",
    "VINIT_SECRET_ID_FILE",
    "VINIT_SECRET_ID_WRAPPED",
    "VINIT_ROLE",
    "VINIT_JWT_FILE",
    "VINIT_REVOKE",
    "VINIT_REFRESH",
    "VINIT_DEBOUNCE",
    "VINIT_SPLAY",
    "VINIT_ENV_ON_CHANGE",
    "VINIT_USER",
    "VINIT_DROP_CAPS",
    "VINIT_KEEP_CAPS",
    "VINIT_NO_NEW_PRIVS",
    "VINIT_REDACT",
];

/// Variables removed from the child's environment besides `VINIT_*`.
const SCRUBBED: &[&str] = &["VAULT_TOKEN", "BAO_TOKEN"];

/// How COMMAND runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// vinit stays the parent: forwards, reaps, cleans up.
    Supervise,
    /// vinit replaces itself with COMMAND.
    Exec,
}

/// `--check`: validate and list, start nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Offline,
    /// `--online`: also log in and read every secret.
    Online,
}

/// The validated configuration of one run.
#[derive(Debug)]
pub struct Plan {
    pub mode: Mode,
    pub command: Vec<OsString>,
    /// Forward to the child's whole process group instead of the child.
    pub signal_group: bool,
    pub rewrites: Rewrites,
    pub grace: Duration,
    pub log: LogSettings,
    /// The child's environment, in vinit's own order, before secrets.
    pub child_env: Vec<(OsString, OsString)>,
    pub check: Option<Check>,
    /// Start-up deadline for Vault work.
    pub timeout: Duration,
    /// Running life: refresh, debounce, splay, env changes, revocation.
    pub life: LifeSettings,
    /// `--redact`: the app's stdout and stderr go through vinit, secret
    /// values replaced (supervise mode only).
    pub redact: bool,
    pub secrets: SecretsPlan,
    /// Who the child runs as and what it keeps (`--user`, `--drop-caps`,
    /// `--keep-caps`, `--no-new-privs`), checked against what vinit holds.
    pub privileges: ChildPrivileges,
}

/// Builds the plan from the parsed command line and the environment.
pub fn plan(args: Args, env: &Environment, log: LogSettings) -> Result<Plan, Error> {
    let passthrough = list(env.text("VINIT_PASSTHROUGH")?.unwrap_or(""));
    reject_unknown_variables(env, &passthrough)?;

    let config = match args.config.as_deref().or(env.text("VINIT_CONFIG")?) {
        Some(path) => Some(ConfigFile::load(std::path::Path::new(path))?),
        None => None,
    };
    let file = config.as_ref();

    if args.command.is_empty() {
        return Err(Error::usage(
            "no COMMAND given: vinit [OPTIONS] [--] COMMAND [ARG...]",
        ));
    }
    let exec = flag_or_env(args.exec, env, "VINIT_EXEC")?;
    let signal_group =
        flag_or_env(args.pgroup, env, "VINIT_PGROUP")? || file.and_then(|f| f.pgroup).unwrap_or(false);
    let redact = flag_or_env(args.redact, env, "VINIT_REDACT")?;
    if redact && exec {
        return Err(Error::usage(
            "--redact needs vinit to stay the app's parent: it cannot go with --exec",
        ));
    }
    let check = flag_or_env(args.check, env, "VINIT_CHECK")?;
    let online = flag_or_env(args.online, env, "VINIT_ONLINE")?;
    let check = match (check, online) {
        (true, true) => Some(Check::Online),
        (true, false) => Some(Check::Offline),
        (false, true) => return Err(Error::usage("--online goes with --check")),
        (false, false) => None,
    };

    let mut rewrites = Rewrites::default();
    if !args.rewrites.is_empty() {
        for pair in &args.rewrites {
            rewrites
                .add(pair)
                .map_err(|e| Error::usage(format!("--rewrite: {e}")))?;
        }
    } else if let Some(text) = env.text("VINIT_REWRITE")? {
        for pair in list(text) {
            rewrites
                .add(&pair)
                .map_err(|e| Error::usage(format!("VINIT_REWRITE: {e}")))?;
        }
    } else if let Some(pairs) = file.and_then(|f| f.rewrite.as_ref()) {
        for pair in pairs {
            rewrites
                .add(pair)
                .map_err(|e| Error::config(format!("config file: rewrite: {e}")))?;
        }
    }

    let grace = duration_setting(
        &args.grace,
        "--grace",
        env,
        "VINIT_GRACE",
        file.and_then(|f| f.grace.as_deref()),
    )?
    .unwrap_or(Duration::from_secs(5));
    let timeout = duration_setting(
        &args.timeout,
        "--timeout",
        env,
        "VINIT_TIMEOUT",
        file.and_then(|f| f.timeout.as_deref()),
    )?
    .unwrap_or(Duration::from_secs(60));

    let life_duration = |flag: &Option<String>, name: &str, file_value: Option<&str>, default: Duration| {
        duration_setting(
            flag,
            &format!("--{name}"),
            env,
            &format!("VINIT_{}", name.to_uppercase()),
            file_value,
        )
        .map(|d| d.unwrap_or(default))
    };
    let refresh = life_duration(
        &args.refresh,
        "refresh",
        file.and_then(|f| f.refresh.as_deref()),
        Duration::from_secs(300),
    )?;
    if refresh.is_zero() {
        return Err(Error::usage(
            "--refresh: must be more than 0 (KV values are re-checked that often)",
        ));
    }
    let life = LifeSettings {
        refresh,
        debounce: life_duration(
            &args.debounce,
            "debounce",
            file.and_then(|f| f.debounce.as_deref()),
            Duration::from_secs(1),
        )?,
        splay: life_duration(
            &args.splay,
            "splay",
            file.and_then(|f| f.splay.as_deref()),
            Duration::ZERO,
        )?,
        env_on_change: match env.text("VINIT_ENV_ON_CHANGE")?.map(str::trim) {
            None | Some("ignore") => EnvOnChange::Ignore,
            Some("restart") => EnvOnChange::Restart,
            Some(other) => {
                return Err(Error::usage(format!(
                    "VINIT_ENV_ON_CHANGE: \"{other}\" is not ignore or restart"
                )))
            }
        },
        revoke: match env.text("VINIT_REVOKE")? {
            Some(text) => parse_bool(text).map_err(|e| Error::usage(format!("VINIT_REVOKE: {e}")))?,
            None => true,
        },
    };

    let request = privilege_request(&args, env)?;
    let privileges = decide_privileges(&request)?;
    let child_env = child_environment(env, &passthrough);
    let file_owner = request.identity.as_ref().map(|id| (id.uid, id.gid));
    let secrets = SecretsPlan::build(env, &child_env, file, file_owner)?;
    Ok(Plan {
        mode: if exec { Mode::Exec } else { Mode::Supervise },
        command: args.command,
        signal_group,
        rewrites,
        grace,
        log,
        child_env,
        check,
        timeout,
        life,
        redact,
        secrets,
        privileges,
    })
}

/// `--user`, `--drop-caps`, `--keep-caps`, `--no-new-privs` and their twins,
/// with SPEC's defaults: `--user` implies `--drop-caps`, `--keep-caps`
/// implies it, and either implies `--no-new-privs`. A user, group or
/// capability that does not exist is a configuration error (78).
fn privilege_request(args: &Args, env: &Environment) -> Result<Request, Error> {
    let identity = match text_setting(&args.user, "--user", env, "VINIT_USER")? {
        Some((source, spec)) => {
            let passwd = read_account_file("/etc/passwd")?;
            let group = read_account_file("/etc/group")?;
            Some(
                privileges::resolve_user(spec, &passwd, &group)
                    .map_err(|e| Error::config(format!("{source}: {e}")))?,
            )
        }
        None => None,
    };
    let keep = match text_setting(&args.keep_caps, "--keep-caps", env, "VINIT_KEEP_CAPS")? {
        Some((source, list)) => {
            Some(privileges::parse_capabilities(list).map_err(|e| Error::config(format!("{source}: {e}")))?)
        }
        None => None,
    };
    let drop_caps = keep.is_some()
        || optional_flag(args.drop_caps, env, "VINIT_DROP_CAPS")?.unwrap_or(identity.is_some());
    let no_new_privs = optional_flag(args.no_new_privs, env, "VINIT_NO_NEW_PRIVS")?.unwrap_or(drop_caps);
    Ok(Request {
        identity,
        drop_caps,
        keep: keep.unwrap_or(CapSet::EMPTY),
        no_new_privs,
    })
}

/// A text setting from its flag or its variable, with the name of the one
/// that gave it (for messages).
fn text_setting<'a>(
    flag: &'a Option<String>,
    flag_name: &'static str,
    env: &'a Environment,
    variable: &'static str,
) -> Result<Option<(&'static str, &'a str)>, Error> {
    Ok(match flag {
        Some(text) => Some((flag_name, text.as_str())),
        None => env.text(variable)?.map(|text| (variable, text)),
    })
}

/// The image's /etc/passwd or /etc/group; an absent file is empty.
fn read_account_file(path: &str) -> Result<String, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(Error::config(format!("--user: cannot read {path}: {err}"))),
    }
}

/// Whether vinit can grant the request, with what it holds now.
fn decide_privileges(request: &Request) -> Result<ChildPrivileges, Error> {
    if !request.restricts() {
        return Ok(ChildPrivileges::default());
    }
    let holder =
        crate::sys::holder().map_err(|err| Error::system("cannot read vinit's capabilities", err))?;
    let decided = ChildPrivileges::decide(request, &holder).map_err(Error::config)?;
    if decided.set_caps && !decided.drop_bounding {
        tracing::warn!(
            "--drop-caps: vinit lacks CAP_SETPCAP, so the app's bounding set stays full{}",
            if decided.no_new_privs {
                " (no_new_privs keeps set-uid files from using it)"
            } else {
                " and no_new_privs is off: a set-uid file could still grant it"
            }
        );
    }
    Ok(decided)
}

/// A duration from its flag, its variable, or the config file (in that order).
fn duration_setting(
    flag: &Option<String>,
    flag_name: &str,
    env: &Environment,
    variable: &str,
    file: Option<&str>,
) -> Result<Option<Duration>, Error> {
    if let Some(text) = flag {
        return parse_duration(text)
            .map(Some)
            .map_err(|e| Error::usage(format!("{flag_name}: {e}")));
    }
    if let Some(text) = env.text(variable)? {
        return parse_duration(text)
            .map(Some)
            .map_err(|e| Error::usage(format!("{variable}: {e}")));
    }
    match file {
        Some(text) => parse_duration(text).map(Some).map_err(|e| {
            Error::config(format!(
                "config file: {}: {e}",
                variable.trim_start_matches("VINIT_").to_lowercase()
            ))
        }),
        None => Ok(None),
    }
}

/// A boolean flag wins when given; otherwise its environment twin decides.
fn flag_or_env(flag: bool, env: &Environment, name: &str) -> Result<bool, Error> {
    Ok(optional_flag(flag, env, name)?.unwrap_or(false))
}

/// Like [`flag_or_env`], but `None` when neither is given (the default
/// depends on other settings).
fn optional_flag(flag: bool, env: &Environment, name: &str) -> Result<Option<bool>, Error> {
    if flag {
        return Ok(Some(true));
    }
    match env.text(name)? {
        None => Ok(None),
        Some(text) => parse_bool(text)
            .map(Some)
            .map_err(|e| Error::usage(format!("{name}: {e}"))),
    }
}

fn reject_unknown_variables(env: &Environment, passthrough: &[String]) -> Result<(), Error> {
    for name in env.vinit_names() {
        let name = name.to_string_lossy();
        if KNOWN_VARIABLES.contains(&name.as_ref()) || passthrough.iter().any(|p| *p == name) {
            continue;
        }
        let hint = closest_known(&name)
            .map(|known| format!(" (did you mean {known}?)"))
            .unwrap_or_default();
        return Err(Error::usage(format!(
            "{name}: unknown variable{hint}; vinit reads only the VINIT_* names in its help and README \
             (name app variables in VINIT_PASSTHROUGH to pass them on)"
        )));
    }
    Ok(())
}

fn closest_known(name: &str) -> Option<&'static str> {
    KNOWN_VARIABLES
        .iter()
        .map(|known| (edit_distance(name, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The child's environment: vinit's own, minus `VINIT_*` (except the
/// passthrough names) and the tokens, in the original order.
fn child_environment(env: &Environment, passthrough: &[String]) -> Vec<(OsString, OsString)> {
    env.vars
        .iter()
        .filter(|(name, _)| {
            let bytes = name.as_bytes();
            let scrubbed = bytes.starts_with(b"VINIT_") || SCRUBBED.iter().any(|s| s.as_bytes() == bytes);
            !scrubbed || passthrough.iter().any(|p| p.as_bytes() == bytes)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(command: &[&str]) -> Args {
        Args {
            command: command.iter().map(OsString::from).collect(),
            ..Args::default()
        }
    }

    fn plan_with(args: Args, env: &[(&str, &str)]) -> Result<Plan, Error> {
        plan(args, &Environment::from_pairs(env), LogSettings::default())
    }

    #[test]
    fn flag_beats_environment() {
        let mut a = args(&["app"]);
        a.grace = Some("1s".into());
        let plan = plan_with(a, &[("VINIT_GRACE", "9s")]).unwrap();
        assert_eq!(plan.grace, Duration::from_secs(1));
        let plan = plan_with(args(&["app"]), &[("VINIT_GRACE", "9s")]).unwrap();
        assert_eq!(plan.grace, Duration::from_secs(9));
        let plan = plan_with(args(&["app"]), &[]).unwrap();
        assert_eq!(plan.grace, Duration::from_secs(5));
    }

    #[test]
    fn bad_twin_names_the_variable() {
        let err = plan_with(args(&["app"]), &[("VINIT_GRACE", "soon")]).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().starts_with("VINIT_GRACE: "), "{err}");
        let err = plan_with(args(&["app"]), &[("VINIT_EXEC", "yes")]).unwrap_err();
        assert!(err.to_string().starts_with("VINIT_EXEC: "), "{err}");
    }

    #[test]
    fn unknown_vinit_variable_is_an_error_with_a_hint() {
        let err = plan_with(args(&["app"]), &[("VINIT_GRACEE", "1s")]).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().contains("did you mean VINIT_GRACE?"), "{err}");
        let ok = plan_with(
            args(&["app"]),
            &[("VINIT_PASSTHROUGH", "VINIT_APP"), ("VINIT_APP", "x")],
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn child_environment_is_scrubbed_in_order() {
        let env = [
            ("B", "2"),
            ("VINIT_GRACE", "1s"),
            ("VAULT_TOKEN", "t"),
            ("A", "1"),
            ("VAULT_ADDR", "http://v"),
            ("VINIT_APP", "keep"),
            ("VINIT_PASSTHROUGH", "VINIT_APP"),
        ];
        let plan = plan_with(args(&["app"]), &env).unwrap();
        let names: Vec<_> = plan.child_env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(names, ["B", "A", "VAULT_ADDR", "VINIT_APP"]);
    }

    #[test]
    fn rewrites_from_environment_list() {
        let plan = plan_with(args(&["app"]), &[("VINIT_REWRITE", "TERM:QUIT, USR1:0")]).unwrap();
        assert_eq!(plan.rewrites.apply(libc::SIGTERM), Some(libc::SIGQUIT));
        assert_eq!(plan.rewrites.apply(libc::SIGUSR1), None);
        let err = plan_with(args(&["app"]), &[("VINIT_REWRITE", "TERM")]).unwrap_err();
        assert!(err.to_string().starts_with("VINIT_REWRITE: "), "{err}");
    }

    #[test]
    fn redact_is_for_supervise_mode_only() {
        let mut a = args(&["app"]);
        a.redact = true;
        assert!(plan_with(a, &[]).unwrap().redact);
        assert!(
            plan_with(args(&["app"]), &[("VINIT_REDACT", "true")])
                .unwrap()
                .redact
        );
        let err = plan_with(args(&["app"]), &[("VINIT_REDACT", "1"), ("VINIT_EXEC", "1")]).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().contains("--exec"), "{err}");
    }

    #[test]
    fn missing_command_is_usage() {
        assert_eq!(plan_with(args(&[]), &[]).unwrap_err().exit_code(), 64);
    }
}
