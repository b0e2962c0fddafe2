//! vinit's own failures and the exit-code table (SPEC.md "vinit's own exit
//! codes"). Each variant maps to exactly one code; every message names the
//! flag, variable, file or command at fault, and never a secret value.

use std::fmt;

/// A failure that ends vinit before (or instead of) the app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags, arguments or option variables (`VINIT_GRACE=abc`). Exit 64.
    #[error("{0}\nTry 'vinit --help' for more information.")]
    Usage(String),
    /// A bad variable, reference, config file or template. Exit 78.
    #[error("{0}")]
    Config(String),
    /// Vault unreachable, sealed or failing until the start-up deadline. Exit 69.
    #[error("{0}")]
    Unavailable(String),
    /// Login refused or permission denied. Exit 77.
    #[error("{0}")]
    Denied(String),
    /// A referenced secret or key does not exist. Exit 65.
    #[error("{0}")]
    NoSecret(String),
    /// A destination file cannot be written (or is not on tmpfs). Exit 73.
    #[error("{0}")]
    CannotWrite(String),
    /// COMMAND exists but cannot be executed. Exit 126.
    #[error("{command}: {reason}")]
    NotExecutable { command: String, reason: String },
    /// COMMAND was not found. Exit 127.
    #[error("{command}: command not found{detail}")]
    NotFound { command: String, detail: String },
    /// The operating system refused something vinit needs before the app
    /// starts (signalfd, the signal thread, clone, the event loop). Exit 71
    /// (EX_OSERR).
    #[error("{what}: {source}")]
    System {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A stop signal arrived during start-up. Exit 128+N.
    #[error("stopped by {} during start-up; the app was not started", crate::signals::name(*.0))]
    Interrupted(i32),
}

impl From<crate::settings::NotText> for Error {
    fn from(err: crate::settings::NotText) -> Self {
        Error::usage(err)
    }
}

impl Error {
    /// The documented exit code of this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::NoSecret(_) => 65,
            Error::Unavailable(_) => 69,
            Error::CannotWrite(_) => 73,
            Error::Denied(_) => 77,
            Error::Config(_) => 78,
            Error::System { .. } => 71,
            Error::NotExecutable { .. } => 126,
            Error::NotFound { .. } => 127,
            Error::Interrupted(signal) => 128 + signal,
        }
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        Error::Usage(message.to_string())
    }

    pub fn config(message: impl fmt::Display) -> Self {
        Error::Config(message.to_string())
    }

    pub fn system(what: &'static str, source: std::io::Error) -> Self {
        Error::System { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        assert_eq!(Error::usage("x").exit_code(), 64);
        let not_found = Error::NotFound {
            command: "app".into(),
            detail: String::new(),
        };
        assert_eq!(not_found.exit_code(), 127);
        assert_eq!(not_found.to_string(), "app: command not found");
        let denied = Error::NotExecutable {
            command: "/app".into(),
            reason: "permission denied".into(),
        };
        assert_eq!(denied.exit_code(), 126);
        assert_eq!(Error::Interrupted(libc::SIGTERM).exit_code(), 143);
        assert_eq!(Error::config("x").exit_code(), 78);
        assert_eq!(Error::NoSecret("x".into()).exit_code(), 65);
        assert_eq!(Error::Unavailable("x".into()).exit_code(), 69);
        assert_eq!(Error::Denied("x".into()).exit_code(), 77);
        assert_eq!(Error::CannotWrite("x".into()).exit_code(), 73);
    }
}
