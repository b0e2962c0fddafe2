//! Descriptors above 2 that vinit inherited from its parent (a listening
//! socket, a pipe to a log collector): found before vinit opens anything,
//! passed on to the child as any init does, then closed in vinit so that
//! vinit holds nothing the app could trip over (a pipe's reader sees
//! end-of-file when the app closes its end). When a restart is possible
//! they are kept, to hand the same descriptors to the next child.

use std::os::fd::RawFd;

use crate::sys;

/// Where the scan stops when /proc is not mounted.
const SCAN_LIMIT: RawFd = 1024;

/// The inherited descriptors, lowest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inherited(Vec<RawFd>);

impl Inherited {
    /// Lists the open descriptors above 2. Must run before vinit opens any
    /// descriptor of its own.
    pub fn capture() -> Self {
        let mut fds: Vec<RawFd> = match sys::open_descriptors() {
            Some(fds) => fds.into_iter().filter(|fd| *fd > 2).collect(),
            None => (3..SCAN_LIMIT).filter(|fd| is_open(*fd)).collect(),
        };
        fds.sort_unstable();
        Inherited(fds)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Closes them in vinit (the child has its own copies).
    pub fn close(self) {
        for fd in self.0 {
            if let Err(err) = nix::unistd::close(fd) {
                tracing::debug!("cannot close inherited descriptor {fd}: {err}");
            }
        }
    }
}

fn is_open(fd: RawFd) -> bool {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_open_descriptor_and_not_a_closed_one() {
        // Other tests run on other threads and open files too: once this
        // descriptor is closed, its number could be handed to one of them
        // before the second capture. A copy placed high up, far above the
        // lowest free numbers the kernel hands out, keeps the check honest.
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let high = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(900),
        )
        .unwrap();
        drop(file);
        assert!(Inherited::capture().0.contains(&high));
        nix::unistd::close(high).unwrap();
        assert!(!Inherited::capture().0.contains(&high));
    }
}
