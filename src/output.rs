//! Rendered files on disk: tmpfs or ramfs only (checked with `statfs`)
//! unless a template says `allow_persistent`, written atomically (a temp
//! file in the same directory, mode and owner set on the open descriptor,
//! fsync, rename), all or nothing: when any file fails, no destination and
//! no temp file is left behind.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, FsType, TMPFS_MAGIC};

/// ramfs's magic number (linux/magic.h); nix does not name it on every libc.
const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);

use crate::error::Error;
use crate::secret::SecretString;

/// One file to write.
pub struct FileOut {
    pub destination: PathBuf,
    pub contents: SecretString,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub allow_persistent: bool,
}

/// Files written by [`write_all`]. Dropping it removes them (start-up
/// failed after they were written); [`Written::keep`] leaves them for the app.
#[derive(Debug, Default)]
pub struct Written {
    paths: Vec<PathBuf>,
}

impl Written {
    pub fn keep(mut self) {
        self.paths.clear();
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Checks that `dir` exists and is on tmpfs or ramfs; `Err` names the path.
pub fn check_destination(destination: &Path, allow_persistent: bool) -> Result<(), Error> {
    let dir = parent(destination);
    let fs = statfs(dir).map_err(|err| {
        Error::CannotWrite(format!(
            "{}: its directory {} is not usable: {err}",
            destination.display(),
            dir.display()
        ))
    })?;
    let kind = fs.filesystem_type();
    if kind != TMPFS_MAGIC && kind != RAMFS_MAGIC && !allow_persistent {
        return Err(Error::CannotWrite(format!(
            "{}: {} is not on tmpfs or ramfs; secrets are never written to a persistent disk \
             (mount a tmpfs there, or set allow_persistent = true for this template)",
            destination.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Writes every file, or none.
pub fn write_all(files: &[FileOut]) -> Result<Written, Error> {
    for file in files {
        check_destination(&file.destination, file.allow_persistent)?;
    }
    let mut temps = TempFiles::default();
    for file in files {
        let temp = temp_path(&file.destination);
        temps.0.push(temp.clone());
        write_temp(&temp, file).map_err(|err| {
            Error::CannotWrite(format!("{}: cannot write it: {err}", file.destination.display()))
        })?;
    }
    // On a failed rename, `temps` removes the temp files not yet renamed
    // and `written` the destinations already in place.
    let mut written = Written::default();
    for (file, temp) in files.iter().zip(&temps.0) {
        std::fs::rename(temp, &file.destination).map_err(|err| {
            Error::CannotWrite(format!(
                "{}: cannot rename into place: {err}",
                file.destination.display()
            ))
        })?;
        written.paths.push(file.destination.clone());
        tracing::debug!("wrote {} (mode {:o})", file.destination.display(), file.mode);
    }
    temps.0.clear();
    Ok(written)
}

/// Temp files removed when dropped (a failure before the renames).
#[derive(Default)]
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn temp_path(destination: &Path) -> PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent(destination).join(format!(".{name}.vinit-{}.tmp", std::process::id()))
}

fn write_temp(temp: &Path, file: &FileOut) -> std::io::Result<()> {
    let _ = std::fs::remove_file(temp);
    let mut out: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(temp)?;
    std::os::unix::fs::fchown(&out, Some(file.uid), Some(file.gid))?;
    out.set_permissions(std::fs::Permissions::from_mode(file.mode))?;
    out.write_all(file.contents.expose().as_bytes())?;
    out.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tmpfs_dir() -> tempfile::TempDir {
        tempfile::tempdir_in("/dev/shm").unwrap()
    }

    fn file(dir: &Path, name: &str, mode: u32) -> FileOut {
        FileOut {
            destination: dir.join(name),
            contents: SecretString::from("secret contents"),
            mode,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            allow_persistent: false,
        }
    }

    #[test]
    fn writes_with_mode_and_owner() {
        let dir = tmpfs_dir();
        let written = write_all(&[file(dir.path(), "a", 0o400), file(dir.path(), "b", 0o440)]).unwrap();
        let meta = std::fs::metadata(dir.path().join("a")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o400);
        assert_eq!(meta.uid(), nix::unistd::getuid().as_raw());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b")).unwrap(),
            "secret contents"
        );
        written.keep();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "temp files left: {names:?}");
    }

    #[test]
    fn refuses_persistent_disks_unless_allowed() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let err = write_all(&[file(dir.path(), "a", 0o400)]).unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert!(err.to_string().contains("not on tmpfs"), "{err}");
        assert!(!dir.path().join("a").exists());
        let mut allowed = file(dir.path(), "a", 0o400);
        allowed.allow_persistent = true;
        write_all(&[allowed]).unwrap().keep();
        assert!(dir.path().join("a").exists());
    }

    #[test]
    fn all_or_nothing() {
        let dir = tmpfs_dir();
        let good = file(dir.path(), "good", 0o400);
        let bad = file(&dir.path().join("missing-dir"), "bad", 0o400);
        let err = write_all(&[good, bad]).unwrap_err();
        assert_eq!(err.exit_code(), 73);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "something was left behind"
        );
    }

    #[test]
    fn dropping_written_removes_the_files() {
        let dir = tmpfs_dir();
        let written = write_all(&[file(dir.path(), "a", 0o400)]).unwrap();
        drop(written);
        assert!(!dir.path().join("a").exists());
    }
}
