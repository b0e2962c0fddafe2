//! vinit-bakery: checks an image that bakes vinit in, the way a bakery gates
//! what it publishes. Never part of the `vinit` binary.
//!
//! Modules: `cli` (arguments), `image` (docker-save tarballs, OCI layouts,
//! the engine), `filesystem` (layers merged with whiteouts), `checks` (the
//! static checks), `vinit_check` (the image's own `vinit --check`, chrooted),
//! `leaks` (the known-value hunt), `report` (text, JSON, JUnit, SARIF),
//! `artifacts` (container-structure-test fragment, dockle accept keys),
//! `error` (errors and exit codes).

pub mod artifacts;
pub mod checks;
pub mod cli;
pub mod error;
pub mod filesystem;
pub mod image;
pub mod leaks;
pub mod report;
pub mod vinit_check;

use std::process::ExitCode;

use error::BakeryError;
use report::Outcome;

/// The whole `check` command; returns the process exit code.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<ExitCode, BakeryError> {
    let request = cli::parse(args)?;
    let mut values = Vec::new();
    for seed in &request.seeds {
        values.extend(leaks::from_seed(seed)?);
    }
    for file in &request.values_files {
        values.extend(leaks::from_lines(file)?);
    }
    for name in &request.value_envs {
        values.push(leaks::from_env(name)?);
    }
    let image = image::Image::load(&request.image)?;
    let fs = filesystem::FinalFs::build(&image);
    let settings = checks::CheckSettings {
        render_dir: request.render_dir.clone(),
        accept_keys: request.accept_keys.clone(),
    };
    let mut findings = checks::run_all(&image, &fs, &settings);
    if request.skip_vinit_check {
        findings.push(report::Finding::new(
            "vinit-check",
            Outcome::Skip,
            "--skip-vinit-check",
        ));
    } else {
        findings.push(vinit_check::run(&image, &fs, &request.extra_env));
    }
    let check_passed = findings
        .iter()
        .any(|f| f.check == "vinit-check" && f.outcome == Outcome::Pass);
    if !values.is_empty() {
        findings.extend(leaks::hunt(&image, &fs, &values));
        let known: Vec<&[u8]> = values.iter().map(|v| v.value.as_slice()).collect();
        report::scrub(&mut findings, &known);
    }
    let rendered = match request.format {
        cli::Format::Text => report::text(&request.image, &findings),
        cli::Format::Json => report::json(&request.image, &findings),
        cli::Format::Junit => report::junit(&request.image, &findings),
        cli::Format::Sarif => report::sarif(&request.image, &findings),
    };
    write_or_print(request.output.as_deref(), &rendered)?;
    if let Some(path) = &request.structure_test {
        write_or_print(
            Some(path),
            &artifacts::structure_test(&image, &fs, &settings, check_passed),
        )?;
    }
    if let Some(path) = &request.dockle_accept_keys {
        write_or_print(Some(path), &artifacts::dockle_accept_keys(&image))?;
    }
    Ok(if report::failed(&findings) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_or_print(path: Option<&std::path::Path>, text: &str) -> Result<(), BakeryError> {
    match path {
        Some(path) => std::fs::write(path, text).map_err(|e| BakeryError::io(&path.display().to_string(), e)),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| BakeryError::io("stdout", e))
        }
    }
}
