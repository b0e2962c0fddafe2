//! `vinit-demo-app`: the example app of the compose stack and the demo. It
//! shows what vinit gave it without showing a value: each named variable
//! masked (first 3 characters and the length), each named file's mode,
//! owner, line count and file system, then waits for SIGTERM and exits 0.
//!
//! Usage: `vinit-demo-app [--env NAME]... [--file PATH]... [--once]`

use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut names = Vec::new();
    let mut files = Vec::new();
    let mut once = false;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--env", Some(name)) => names.push(name),
            ("--file", Some(path)) => files.push(path),
            ("--once", None) => once = true,
            _ => {
                eprintln!("usage: vinit-demo-app [--env NAME]... [--file PATH]... [--once]");
                return ExitCode::from(64);
            }
        }
    }
    let stop = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("app: signals: {err}");
            return ExitCode::from(70);
        }
    };
    println!("app: pid {}, parent {}", std::process::id(), parent_pid());
    for name in &names {
        match std::env::var(name) {
            Ok(value) => println!("app: {name}={}", mask(&value)),
            Err(_) => println!("app: {name} is not set"),
        }
    }
    for name in ["VAULT_TOKEN", "VINIT_AUTH_METHOD", "VINIT_SECRET_ID"] {
        if std::env::var_os(name).is_some() {
            println!("app: {name} leaked into the app's environment");
        }
    }
    for path in &files {
        match std::fs::metadata(path) {
            Ok(meta) => println!(
                "app: {path} mode {:04o} uid {} on {} ({} lines)",
                meta.mode() & 0o7777,
                meta.uid(),
                file_system(path),
                std::fs::read_to_string(path)
                    .map(|t| t.lines().count())
                    .unwrap_or(0)
            ),
            Err(err) => println!("app: {path}: {err}"),
        }
    }
    if once {
        return ExitCode::SUCCESS;
    }
    println!("app: ready, waiting for SIGTERM");
    let mut stop = stop;
    let _ = stop.forever().next();
    println!("app: SIGTERM, exiting 0");
    ExitCode::SUCCESS
}

fn mask(value: &str) -> String {
    let head: String = value.chars().take(3).collect();
    format!("{head}***({} chars)", value.chars().count())
}

fn parent_pid() -> String {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.to_string();
            after.split_whitespace().nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// The type of the file system holding `path` (the longest mount point
/// that is a prefix of it, from /proc/self/mountinfo).
fn file_system(path: &str) -> String {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return "?".into();
    };
    let mut best = (0, "?".to_string());
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(kind)) = (fields.get(4), fields.get(dash + 1)) else {
            continue;
        };
        let inside = path == *point || path.starts_with(&format!("{}/", point.trim_end_matches('/')));
        if inside && point.len() >= best.0 {
            best = (point.len(), kind.to_string());
        }
    }
    best.1
}
