//! Builds the child: resolves COMMAND on the child's `PATH` (127 when it is
//! nowhere, 126 when it is found but cannot run), prepares argv and envp
//! before the clone, and starts it, in supervise mode as a child in its own
//! process group, or in exec mode in vinit's place.
//!
//! Everything here is computed before the clone (the privilege changes come
//! decided from `privileges`); the clone and the child's few system calls
//! live in `sys`.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::privileges::ChildPrivileges;
use crate::sys::{self, ChildSetup, ExecImage, InheritedSignals, SpawnFailure};

/// `execvp`'s search path when the environment has no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/bin:/bin:/usr/bin";

/// A command ready to be started: resolved and converted for `execve`.
pub struct PreparedCommand {
    /// COMMAND as the user wrote it, for messages.
    shown: String,
    image: ExecImage,
}

impl PreparedCommand {
    /// Builds argv and envp for `path` (from [`resolve_command`]).
    /// `command` must not be empty (options guarantee it).
    pub fn new(path: PathBuf, command: &[OsString], env: &[(OsString, OsString)]) -> Result<Self, Error> {
        let shown = command
            .first()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let argv = command
            .iter()
            .map(|arg| c_string(arg.as_bytes(), &shown))
            .collect::<Result<_, _>>()?;
        let envp = env
            .iter()
            .map(|(name, value)| {
                let mut entry = name.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                c_string(&entry, &shown)
            })
            .collect::<Result<_, _>>()?;
        let path = c_string(path.as_os_str().as_bytes(), &shown)?;
        Ok(PreparedCommand {
            shown,
            image: ExecImage::new(path, argv, envp),
        })
    }

    /// Starts the child in its own process group, in the terminal's
    /// foreground when vinit holds it, with `privileges`. `output`
    /// (`--redact`): descriptors that become the child's stdout and stderr.
    /// Returns its pid.
    pub fn spawn(
        &self,
        signals: InheritedSignals,
        privileges: &ChildPrivileges,
        output: Option<[RawFd; 2]>,
    ) -> Result<libc::pid_t, Error> {
        let setup = ChildSetup {
            take_terminal: holds_terminal_foreground(),
            signals,
            privileges,
            output,
        };
        sys::spawn(&self.image, &setup).map_err(|failure| self.spawn_error(failure))
    }

    /// Replaces vinit with the command, with `privileges`; returns only on failure.
    pub fn exec(&self, signals: &InheritedSignals, privileges: &ChildPrivileges) -> Error {
        let setup = ChildSetup {
            take_terminal: false,
            signals: *signals,
            privileges,
            output: None,
        };
        self.spawn_error(sys::exec_in_place(&self.image, &setup))
    }

    fn spawn_error(&self, failure: SpawnFailure) -> Error {
        match failure {
            SpawnFailure::Fork(err) => Error::system("cannot start a process", err),
            SpawnFailure::Privileges(step, err) => Error::system(step.describe(), err),
            SpawnFailure::Exec(err) => exec_error(&self.shown, err),
        }
    }
}

fn c_string(bytes: &[u8], shown: &str) -> Result<CString, Error> {
    // argv and environ come from C strings, so they cannot hold NUL; a value
    // built by vinit (a secret, later) could.
    CString::new(bytes)
        .map_err(|_| Error::usage(format!("{shown}: an argument or variable contains a NUL byte")))
}

/// Resolves COMMAND on the child's `PATH`: 127 or 126 before any Vault work.
pub fn resolve_command(command: &[OsString], env: &[(OsString, OsString)]) -> Result<PathBuf, Error> {
    let program = command.first().ok_or_else(|| Error::usage("no COMMAND given"))?;
    resolve(program, env_path(env))
}

fn env_path(env: &[(OsString, OsString)]) -> OsString {
    env.iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| DEFAULT_PATH.into())
}

/// Finds the program as `execvp` would: a name with a slash is used as it
/// is; otherwise the first executable regular file named so in `PATH` (an
/// empty entry is the current directory).
pub fn resolve(program: &OsStr, search_path: OsString) -> Result<PathBuf, Error> {
    let shown = program.to_string_lossy().into_owned();
    if program.is_empty() {
        return Err(Error::NotFound {
            command: "\"\"".into(),
            detail: " (COMMAND is empty)".into(),
        });
    }
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        return match runnable(&path) {
            Runnable::Yes => Ok(path),
            Runnable::Missing => Err(Error::NotFound {
                command: shown,
                detail: format!(": {}", system_words(libc::ENOENT)),
            }),
            Runnable::Denied(reason) => Err(Error::NotExecutable {
                command: shown,
                reason,
            }),
        };
    }
    let mut denied = None;
    for dir in search_path.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        match runnable(&candidate) {
            Runnable::Yes => return Ok(candidate),
            Runnable::Missing => {}
            Runnable::Denied(reason) => {
                denied.get_or_insert((candidate, reason));
            }
        }
    }
    match denied {
        Some((path, reason)) => Err(Error::NotExecutable {
            command: path.to_string_lossy().into_owned(),
            reason,
        }),
        None => Err(Error::NotFound {
            command: shown,
            detail: format!(
                ": {} in PATH={}",
                system_words(libc::ENOENT),
                search_path.to_string_lossy()
            ),
        }),
    }
}

enum Runnable {
    Yes,
    Missing,
    Denied(String),
}

fn runnable(path: &Path) -> Runnable {
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Runnable::Missing,
        Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => Runnable::Missing,
        Err(err) => Runnable::Denied(describe(&err)),
        Ok(meta) if meta.is_dir() => Runnable::Denied(system_words(libc::EISDIR)),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Runnable::Denied(format!(
            "{} (the file is not executable: chmod +x)",
            system_words(libc::EACCES)
        )),
        Ok(_) => Runnable::Yes,
    }
}

/// 127 when the kernel could not find the file (or its interpreter), 126
/// for every other reason it refused to run it.
fn exec_error(shown: &str, err: std::io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound {
            command: shown.to_string(),
            detail: format!(
                ": {} (the file or its interpreter, e.g. the #! line, is missing)",
                system_words(libc::ENOENT)
            ),
        },
        _ => Error::NotExecutable {
            command: shown.to_string(),
            reason: describe(&err),
        },
    }
}

/// The system's own words for an error (`Permission denied`), which people
/// and log searches recognise, plus vinit's hint where one helps.
fn describe(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::ENOEXEC) => format!(
            "{} (not a binary for this machine, nor a script with #!)",
            system_words(libc::ENOEXEC)
        ),
        Some(code) => system_words(code),
        None => err.to_string(),
    }
}

/// `strerror` without Rust's ` (os error N)` suffix.
fn system_words(code: i32) -> String {
    let text = std::io::Error::from_raw_os_error(code).to_string();
    match text.rfind(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// True when stdin is vinit's controlling terminal and vinit's group is in
/// its foreground: then the child takes the foreground (Ctrl-C, Ctrl-Z and
/// job control reach the app, as with `docker run -it`).
fn holds_terminal_foreground() -> bool {
    match nix::unistd::tcgetpgrp(std::io::stdin()) {
        Ok(group) => group == nix::unistd::getpgrp(),
        Err(_) => false,
    }
}

/// Converts an `OsString` command for display in messages and logs.
pub fn display_command(command: &[OsString]) -> String {
    command
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_systems_words() {
        assert_eq!(system_words(libc::ENOENT), "No such file or directory");
        let missing = resolve(OsStr::new("/no/such/app"), DEFAULT_PATH.into()).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "/no/such/app: command not found: No such file or directory"
        );
        let dir = resolve(OsStr::new("/"), DEFAULT_PATH.into()).unwrap_err();
        assert_eq!(dir.exit_code(), 126);
        assert!(dir.to_string().contains("Is a directory"), "{dir}");
        let denied = describe(&std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(denied, "Permission denied");
    }
    use std::fs;

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn finds_programs_on_path_like_execvp() {
        let dir = temp_dir();
        let tool = dir.path().join("tool");
        fs::write(&tool, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(resolve(OsStr::new("tool"), path.into()).unwrap(), tool);
    }

    #[test]
    fn missing_is_127_and_names_the_path() {
        let err = resolve(OsStr::new("no-such-tool"), "/nonexistent".into()).unwrap_err();
        assert_eq!(err.exit_code(), 127);
        assert!(err.to_string().contains("no-such-tool"), "{err}");
        assert!(err.to_string().contains("PATH=/nonexistent"), "{err}");
    }

    #[test]
    fn found_but_not_executable_is_126() {
        let dir = temp_dir();
        let file = dir.path().join("data");
        fs::write(&file, "x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = resolve(file.as_os_str(), DEFAULT_PATH.into()).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        let err = resolve(OsStr::new("data"), dir.path().as_os_str().to_owned()).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        let err = resolve(dir.path().as_os_str(), DEFAULT_PATH.into()).unwrap_err();
        assert!(err.to_string().contains("Is a directory"), "{err}");
    }
}
