//! Runs the image's own `vinit --check` on the image's own environment and
//! command, with no daemon: the final filesystem is written to a scratch
//! directory and vinit runs chrooted into it (needs root; otherwise the
//! check is reported as skipped). Nothing here contacts Vault.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::checks::vinit_path;
use crate::filesystem::FinalFs;
use crate::image::{EntryKind, Image};
use crate::report::{Finding, Outcome};

const CHECK: &str = "vinit-check";

/// `extra_env`: `NAME=VALUE` pairs added as `docker run -e` would.
pub fn run(image: &Image, fs: &FinalFs, extra_env: &[String]) -> Finding {
    let Some(vinit) = vinit_path(image) else {
        return Finding::new(CHECK, Outcome::Skip, "no vinit in ENTRYPOINT[0] to run");
    };
    let Some(chroot) = ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        return Finding::new(CHECK, Outcome::Skip, "no chroot(8) on this machine");
    };
    let root = match tempfile::tempdir() {
        Ok(root) => root,
        Err(e) => return Finding::new(CHECK, Outcome::Skip, format!("no scratch directory: {e}")),
    };
    if let Err(e) = extract(fs, root.path()) {
        return Finding::new(
            CHECK,
            Outcome::Skip,
            format!("cannot write the image's filesystem: {e}"),
        );
    }
    let entrypoint = image.config.entrypoint.clone().unwrap_or_default();
    let mut command = Command::new(chroot);
    command.arg(root.path()).arg(vinit).arg("--check");
    command
        .args(entrypoint.iter().skip(1))
        .args(image.config.cmd.iter().flatten());
    command.env_clear();
    for (name, value) in image.env() {
        command.env(name, value);
    }
    for pair in extra_env {
        let (name, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        command.env(name, value);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => return Finding::new(CHECK, Outcome::Skip, format!("cannot run {chroot}: {e}")),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Operation not permitted") && output.status.code() == Some(125) {
        return Finding::new(CHECK, Outcome::Skip, "chroot needs root");
    }
    let lines = String::from_utf8_lossy(&output.stdout).lines().count();
    match output.status.code() {
        Some(0) => Finding::new(
            CHECK,
            Outcome::Pass,
            format!("vinit --check exits 0 ({lines} reference/template/issue line(s))"),
        ),
        code => Finding::new(
            CHECK,
            Outcome::Fail,
            format!(
                "vinit --check exits {}: {}",
                code.map_or("by a signal".to_string(), |c| c.to_string()),
                stderr.trim().lines().last().unwrap_or("")
            ),
        ),
    }
}

/// Where `path` lands under `root`, unless a symlink already written there
/// sits on the way (it could point outside `root`).
fn confined(root: &Path, path: &str) -> Option<PathBuf> {
    let mut target = root.to_path_buf();
    let relative = Path::new(path.trim_start_matches('/'));
    let parts: Vec<Component> = relative.components().collect();
    for (index, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else {
            return None;
        };
        target.push(name);
        let is_last = index + 1 == parts.len();
        if !is_last
            && target
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        {
            return None;
        }
    }
    Some(target)
}

fn extract(fs: &FinalFs, root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (path, origin) in fs.paths() {
        let entry = fs.entry(*origin);
        let Some(target) = confined(root, path) else {
            continue;
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match entry.kind {
            EntryKind::Directory => {
                std::fs::create_dir_all(&target)?;
                std::fs::set_permissions(
                    &target,
                    std::fs::Permissions::from_mode(entry.mode & 0o7777 | 0o700),
                )?;
            }
            EntryKind::File | EntryKind::HardLink => {
                let content = match fs.resolve(path) {
                    Some((_, resolved)) => &resolved.content,
                    None => &entry.content,
                };
                std::fs::write(&target, content)?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(entry.mode & 0o777))?;
            }
            EntryKind::Symlink => {
                if let Some(link) = &entry.link {
                    std::os::unix::fs::symlink(link, &target)?;
                }
            }
            EntryKind::Other => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_through_symlinks_are_not_written() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("escape")).unwrap();
        assert!(confined(root.path(), "/escape/passwd").is_none());
        assert!(confined(root.path(), "/escape").is_some());
        assert!(confined(root.path(), "/etc/../../x").is_none());
        assert_eq!(confined(root.path(), "/a/b").unwrap(), root.path().join("a/b"));
    }
}
