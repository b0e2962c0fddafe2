//! What the checker writes for the tools teams already run, from what it
//! proved: a container-structure-test fragment (entrypoint, user, the env
//! references, vinit's file, the render directory) and dockle's accept-key
//! list (the secret-looking names whose values are references, which dockle
//! would otherwise flag). References are paths, never values.

use crate::checks::{is_reference, looks_secret, render_dir_of, vinit_path, CheckSettings};
use crate::filesystem::FinalFs;
use crate::image::Image;

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn permissions(mode: u32, directory: bool) -> String {
    let mut out = String::from(if directory { "d" } else { "-" });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

pub fn structure_test(image: &Image, fs: &FinalFs, settings: &CheckSettings, check_passed: bool) -> String {
    let mut out = format!(
        "# container-structure-test fragment written by vinit-bakery for {}\n\
         # (entrypoint compared as vinit-bakery proved it; env values are references, not secrets)\n\
         schemaVersion: 2.0.0\nmetadataTest:\n",
        image.name
    );
    if let Some(entrypoint) = &image.config.entrypoint {
        let items: Vec<String> = entrypoint.iter().map(|s| quoted(s)).collect();
        out += &format!("  entrypoint: [{}]\n", items.join(", "));
    }
    if let Some(user) = image.config.user.as_ref().filter(|u| !u.is_empty()) {
        out += &format!("  user: {}\n", quoted(user));
    }
    let references: Vec<(String, String)> =
        image.env().into_iter().filter(|(_, v)| is_reference(v)).collect();
    if !references.is_empty() {
        out += "  envVars:\n";
        for (name, value) in &references {
            out += &format!("    - key: {}\n      value: {}\n", quoted(name), quoted(value));
        }
    }
    out += "fileExistenceTests:\n";
    if let Some(path) = vinit_path(image) {
        if let Some((_, entry)) = fs.resolve(path) {
            out += &format!(
                "  - name: vinit\n    path: {}\n    shouldExist: true\n    uid: 0\n    permissions: {}\n    isExecutableBy: any\n",
                quoted(path),
                quoted(&permissions(entry.mode, false))
            );
        }
    }
    out += &format!(
        "  - name: render directory\n    path: {}\n    shouldExist: true\n",
        quoted(&render_dir_of(image, settings))
    );
    if check_passed {
        if let Some(path) = vinit_path(image) {
            let entrypoint = image.config.entrypoint.clone().unwrap_or_default();
            let args: Vec<String> = std::iter::once("--check".to_string())
                .chain(entrypoint.into_iter().skip(1))
                .chain(image.config.cmd.clone().unwrap_or_default())
                .map(|a| quoted(&a))
                .collect();
            out += &format!(
                "commandTests:\n  - name: vinit --check\n    command: {}\n    args: [{}]\n    exitCode: 0\n",
                quoted(path),
                args.join(", ")
            );
        }
    }
    out
}

/// Comma-separated, for `DOCKLE_ACCEPT_KEYS=$(cat FILE) dockle IMAGE`.
pub fn dockle_accept_keys(image: &Image) -> String {
    let names: Vec<String> = image
        .env()
        .into_iter()
        .filter(|(name, value)| looks_secret(name) && is_reference(value))
        .map(|(name, _)| name)
        .collect();
    names.join(",") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_as_structure_test_writes_them() {
        assert_eq!(permissions(0o755, false), "-rwxr-xr-x");
        assert_eq!(permissions(0o700, true), "drwx------");
    }
}
