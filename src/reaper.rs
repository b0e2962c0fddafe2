//! The one owner of `waitpid`: collects every ended child (the app and any
//! orphan re-parented to vinit) and remembers the app's status. Also finds
//! the processes left behind when the app exits, to end them.
//!
//! No other code may wait for a child: `waitpid(-1)` here would steal the
//! status from any other waiter. That is why vinit never holds a
//! `std::process::Child` and tokio is built without `process` and `signal`.

use std::collections::{HashMap, VecDeque};
use std::fs;

use crate::sys::{self, Reaped};

/// Whether vinit still has children after a round of reaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children {
    Remain,
    None,
}

/// Collects ended children and keeps the main child's exit code.
pub struct Reaper {
    main: libc::pid_t,
    main_exit: Option<i32>,
    orphans_reaped: u64,
}

impl Reaper {
    pub fn new(main: libc::pid_t) -> Self {
        Reaper {
            main,
            main_exit: None,
            orphans_reaped: 0,
        }
    }

    /// Collects every child that has ended, without blocking.
    pub fn reap(&mut self) -> Children {
        loop {
            match sys::reap_one() {
                Ok(Reaped::Child { pid, status }) if pid == self.main => {
                    let code = exit_code(status);
                    tracing::debug!("the app (pid {pid}) ended: {}", describe_status(status));
                    self.main_exit = Some(code);
                }
                Ok(Reaped::Child { pid, status }) => {
                    self.orphans_reaped += 1;
                    tracing::trace!("reaped pid {pid}: {}", describe_status(status));
                }
                Ok(Reaped::NoneReady) => return Children::Remain,
                Ok(Reaped::NoChildren) => return Children::None,
                Err(err) => {
                    // Not expected (EINVAL, EFAULT); never fatal after the spawn.
                    tracing::warn!("waitpid failed: {err}");
                    return Children::Remain;
                }
            }
        }
    }

    /// The app's exit code once it has ended (128+N when killed by signal N).
    pub fn main_exit(&self) -> Option<i32> {
        self.main_exit
    }

    pub fn orphans_reaped(&self) -> u64 {
        self.orphans_reaped
    }
}

/// A wait status as a shell reports it: the exit code, or 128+N.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        // Stopped or continued statuses are never requested.
        128
    }
}

fn describe_status(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by {}", crate::signals::name(libc::WTERMSIG(status)))
    } else {
        format!("exit code {}", exit_code(status))
    }
}

/// The processes still there after the app ended: the rest of the app's
/// process group and every descendant of vinit.
pub struct Leftovers {
    /// The app's process group (its pid: the app leads its own group).
    pub group: libc::pid_t,
}

impl Leftovers {
    /// Sends `signal` to every leftover process. As PID 1, `kill(-1)` reaches
    /// every process in the namespace but vinit; elsewhere vinit signals the
    /// app's group and its own descendants found in `/proc`, never anything
    /// outside its subtree.
    pub fn signal(&self, signal: i32) {
        let name = crate::signals::name(signal);
        if std::process::id() == 1 {
            if sys::send_signal(-1, signal).is_ok() {
                tracing::debug!("sent {name} to every remaining process");
            }
            return;
        }
        self.signal_group(signal);
        for pid in descendants_of(std::process::id() as libc::pid_t) {
            if sys::send_signal(pid, signal).is_ok() {
                tracing::debug!("sent {name} to leftover pid {pid}");
            }
        }
    }

    /// Sends `signal` to the rest of the app's process group only.
    pub fn signal_group(&self, signal: i32) {
        if sys::send_signal(-self.group, signal).is_ok() {
            tracing::debug!(
                "sent {} to the app's process group {}",
                crate::signals::name(signal),
                self.group
            );
        }
    }
}

/// Every process below `root` in the process tree, from `/proc`. Processes
/// that vanish while it reads are skipped.
pub fn descendants_of(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut children: HashMap<libc::pid_t, Vec<libc::pid_t>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(parent) = parent_from_stat(&stat) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push(child);
            queue.push_back(child);
        }
    }
    found
}

/// The parent pid from a `/proc/PID/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted after the last `)`.
fn parent_from_stat(stat: &str) -> Option<libc::pid_t> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    fields.next()?; // state
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        // Raw wait statuses: exit code in bits 8-15, signal in bits 0-6.
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGKILL), 137);
        assert_eq!(exit_code(libc::SIGTERM | 0x80), 143); // with core dump bit
    }

    #[test]
    fn parses_parent_even_with_odd_names() {
        assert_eq!(parent_from_stat("42 (a b) c)) S 7 42 42 0"), Some(7));
        assert_eq!(parent_from_stat("garbage"), None);
    }

    #[test]
    fn finds_own_descendants() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let found = descendants_of(std::process::id() as libc::pid_t);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.contains(&(child.id() as libc::pid_t)), "{found:?}");
    }
}
