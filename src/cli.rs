//! The command line as typed: flags and COMMAND, before any validation
//! against the environment. Owns `--help` and `--version`.
//!
//! Options end at the first argument that is not an option (so `vinit ls -l`
//! runs `ls -l`) or at `--`. Values are kept as text here; `options` turns
//! them, with their `VINIT_*` twins, into a validated plan.

use std::ffi::OsString;

use lexopt::prelude::*;

use crate::error::Error;

/// What the user asked for on the command line.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub help: bool,
    pub version: bool,
    pub exec: bool,
    pub pgroup: bool,
    pub rewrites: Vec<String>,
    pub grace: Option<String>,
    pub timeout: Option<String>,
    pub config: Option<String>,
    pub refresh: Option<String>,
    pub debounce: Option<String>,
    pub splay: Option<String>,
    pub check: bool,
    pub online: bool,
    /// `--user NAME|UID[:GROUP|GID]`.
    pub user: Option<String>,
    pub drop_caps: bool,
    /// `--keep-caps CAP,...`.
    pub keep_caps: Option<String>,
    pub no_new_privs: bool,
    pub redact: bool,
    /// COMMAND and its arguments, byte for byte.
    pub command: Vec<OsString>,
}

/// Parses `argv` (without `argv[0]`).
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Args, Error> {
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_args(argv);
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => args.help = true,
            Short('V') | Long("version") => args.version = true,
            Long("exec") => args.exec = true,
            Long("pgroup") => args.pgroup = true,
            Long("rewrite") => args.rewrites.push(text_value(&mut parser, "--rewrite")?),
            Long("grace") => args.grace = Some(text_value(&mut parser, "--grace")?),
            Long("timeout") => args.timeout = Some(text_value(&mut parser, "--timeout")?),
            Long("config") => args.config = Some(text_value(&mut parser, "--config")?),
            Long("refresh") => args.refresh = Some(text_value(&mut parser, "--refresh")?),
            Long("debounce") => args.debounce = Some(text_value(&mut parser, "--debounce")?),
            Long("splay") => args.splay = Some(text_value(&mut parser, "--splay")?),
            Long("check") => args.check = true,
            Long("online") => args.online = true,
            Long("user") => args.user = Some(text_value(&mut parser, "--user")?),
            Long("drop-caps") => args.drop_caps = true,
            Long("keep-caps") => args.keep_caps = Some(text_value(&mut parser, "--keep-caps")?),
            Long("no-new-privs") => args.no_new_privs = true,
            Long("redact") => args.redact = true,
            Value(command) => {
                args.command.push(command);
                args.command.extend(parser.raw_args().map_err(usage)?);
            }
            other => return Err(Error::usage(other.unexpected())),
        }
    }
    Ok(args)
}

fn text_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, Error> {
    let value = parser.value().map_err(usage)?;
    value
        .into_string()
        .map_err(|_| Error::usage(format!("{flag}: the value is not valid UTF-8")))
}

fn usage(err: lexopt::Error) -> Error {
    Error::usage(err)
}

pub const VERSION: &str = concat!("vinit ", env!("CARGO_PKG_VERSION"));

/// Fits one screen (under 25 lines of at most 80 columns).
pub const HELP: &str = "\
vinit: a tiny PID 1 for containers that brings Vault/OpenBao secrets.
Usage: vinit [OPTIONS] [--] COMMAND [ARG...]    (-h, --help; -V, --version)
  ENTRYPOINT [\"/sbin/vinit\", \"--\"]  ENV DB_PASSWORD=vault:secret/data/app#pw
Options (each also set by its environment twin; the flag wins):
  --exec              replace vinit with COMMAND, no reaping  VINIT_EXEC
  --pgroup            signal COMMAND's whole process group    VINIT_PGROUP
  --rewrite FROM:TO   forward FROM as TO (TO=0 drops it)      VINIT_REWRITE
  --grace DURATION    leftovers' time before SIGKILL [5s]     VINIT_GRACE
  --config FILE       TOML: templates, issues, auth           VINIT_CONFIG
  --timeout DURATION  start-up deadline for Vault [60s]       VINIT_TIMEOUT
  --refresh DURATION  re-check KV values [5m]                 VINIT_REFRESH
  --debounce DURATION one change action per burst [1s]        VINIT_DEBOUNCE
  --splay DURATION    random delay before a restart [0]       VINIT_SPLAY
  --check             validate, list reads (--online: read)   VINIT_CHECK
  --user U[:G]        run as user U (implies the next two)    VINIT_USER
  --drop-caps         no capability but --keep-caps CAP,...   VINIT_DROP_CAPS
  --no-new-privs      set-uid files grant nothing             VINIT_NO_NEW_PRIVS
  --redact            hide secret values in COMMAND's output  VINIT_REDACT
Vault: VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT... (or BAO_*), VINIT_AUTH_METHOD
References: vault:PATH#KEY[#VERSION], ${vault:PATH#KEY}, vault:login
Logs: VINIT_LOG=error|warn|info|debug|trace, VINIT_LOG_FORMAT=text|json
Changes: on_change per template; VINIT_ENV_ON_CHANGE=ignore|restart
Exit: COMMAND's status; 64 usage, 65 no such secret, 69 Vault unreachable,
71 system, 73 cannot write, 77 denied, 78 config, 126/127 COMMAND.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Args, Error> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn options_end_at_the_first_value() {
        let args = parse_strs(&["--pgroup", "ls", "-l", "--exec"]).unwrap();
        assert!(args.pgroup);
        assert!(!args.exec);
        assert_eq!(args.command, ["ls", "-l", "--exec"]);
    }

    #[test]
    fn double_dash_ends_options() {
        let args = parse_strs(&["--grace=2s", "--", "--help"]).unwrap();
        assert_eq!(args.grace.as_deref(), Some("2s"));
        assert!(!args.help);
        assert_eq!(args.command, ["--help"]);
    }

    #[test]
    fn rewrite_repeats() {
        let args = parse_strs(&["--rewrite", "TERM:QUIT", "--rewrite=INT:0", "x"]).unwrap();
        assert_eq!(args.rewrites, ["TERM:QUIT", "INT:0"]);
    }

    #[test]
    fn unknown_and_missing_values_are_usage_errors() {
        let err = parse_strs(&["--grase", "1s", "x"]).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().contains("--grase"), "{err}");
        let err = parse_strs(&["--grace"]).unwrap_err();
        assert!(err.to_string().contains("--grace"), "{err}");
        let err = parse_strs(&["--exec=yes", "x"]).unwrap_err();
        assert!(err.to_string().contains("--exec"), "{err}");
    }

    #[test]
    fn help_fits_a_screen() {
        assert!(HELP.lines().count() <= 24);
        assert!(HELP.lines().all(|l| l.chars().count() <= 80));
    }
}
