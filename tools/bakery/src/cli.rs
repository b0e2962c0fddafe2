//! Command-line arguments into a validated request (lexopt, no magic).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::BakeryError;

pub const USAGE: &str = "\
usage: vinit-bakery check [OPTIONS] IMAGE

IMAGE is a docker-save tarball, an OCI layout (directory or tarball), or an
image name the local engine knows (read with `docker save`).

options:
  --format text|json|junit|sarif  output format (default text)
  --output FILE                   write the report to FILE (default stdout)
  --seed FILE                     known values: a mock vault seed (JSON or TOML)
  --values-file FILE              known values: one per line
  --value-env NAME                known value: this program's env variable NAME
  --render-dir DIR                vinit's render directory (default /run/vinit;
                                  the image label io.vinit.render-dir wins)
  --accept-key NAME               env name that is not a secret despite its name
  --env NAME=VALUE                run-time env added for `vinit --check`
  --skip-vinit-check              do not run the image's `vinit --check`
  --structure-test FILE           write a container-structure-test fragment
  --dockle-accept-keys FILE       write dockle's accept-key list (comma-separated)

exit: 0 every check passed, 1 a check failed, 64 usage, 66 image unreadable";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Junit,
    Sarif,
}

#[derive(Debug)]
pub struct Request {
    pub image: String,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub seeds: Vec<PathBuf>,
    pub values_files: Vec<PathBuf>,
    pub value_envs: Vec<String>,
    pub render_dir: String,
    pub accept_keys: Vec<String>,
    pub extra_env: Vec<String>,
    pub skip_vinit_check: bool,
    pub structure_test: Option<PathBuf>,
    pub dockle_accept_keys: Option<PathBuf>,
}

fn text(value: OsString, flag: &str) -> Result<String, BakeryError> {
    value
        .into_string()
        .map_err(|_| BakeryError::Usage(format!("{flag}: not valid UTF-8")))
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, BakeryError> {
    use lexopt::prelude::*;
    let usage = |e: lexopt::Error| BakeryError::Usage(e.to_string());
    let mut parser = lexopt::Parser::from_args(args);
    match parser.next().map_err(usage)? {
        Some(Value(command)) if command == "check" => {}
        Some(Long("help")) | Some(Short('h')) => return Err(BakeryError::Usage(USAGE.into())),
        _ => {
            return Err(BakeryError::Usage(format!(
                "expected the `check` command\n{USAGE}"
            )))
        }
    }
    let mut request = Request {
        image: String::new(),
        format: Format::Text,
        output: None,
        seeds: Vec::new(),
        values_files: Vec::new(),
        value_envs: Vec::new(),
        render_dir: "/run/vinit".into(),
        accept_keys: Vec::new(),
        extra_env: Vec::new(),
        skip_vinit_check: false,
        structure_test: None,
        dockle_accept_keys: None,
    };
    let mut image = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("format") => {
                request.format = match text(parser.value().map_err(usage)?, "--format")?.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    "junit" => Format::Junit,
                    "sarif" => Format::Sarif,
                    other => {
                        return Err(BakeryError::Usage(format!(
                            "--format {other}: expected text, json, junit or sarif"
                        )))
                    }
                }
            }
            Long("output") => request.output = Some(parser.value().map_err(usage)?.into()),
            Long("seed") => request.seeds.push(parser.value().map_err(usage)?.into()),
            Long("values-file") => request.values_files.push(parser.value().map_err(usage)?.into()),
            Long("value-env") => request
                .value_envs
                .push(text(parser.value().map_err(usage)?, "--value-env")?),
            Long("render-dir") => request.render_dir = text(parser.value().map_err(usage)?, "--render-dir")?,
            Long("accept-key") => request
                .accept_keys
                .push(text(parser.value().map_err(usage)?, "--accept-key")?),
            Long("env") => {
                let pair = text(parser.value().map_err(usage)?, "--env")?;
                if !pair.contains('=') {
                    return Err(BakeryError::Usage(format!("--env {pair}: expected NAME=VALUE")));
                }
                request.extra_env.push(pair);
            }
            Long("skip-vinit-check") => request.skip_vinit_check = true,
            Long("structure-test") => request.structure_test = Some(parser.value().map_err(usage)?.into()),
            Long("dockle-accept-keys") => {
                request.dockle_accept_keys = Some(parser.value().map_err(usage)?.into())
            }
            Long("help") | Short('h') => return Err(BakeryError::Usage(USAGE.into())),
            Value(value) if image.is_none() => image = Some(text(value, "IMAGE")?),
            other => return Err(BakeryError::Usage(other.unexpected().to_string())),
        }
    }
    request.image = image.ok_or_else(|| BakeryError::Usage(format!("IMAGE is missing\n{USAGE}")))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_full_request() {
        let request = parse(args(&[
            "check",
            "--format",
            "sarif",
            "--value-env",
            "PW",
            "img:1",
        ]))
        .unwrap();
        assert_eq!(request.format, Format::Sarif);
        assert_eq!(request.value_envs, ["PW"]);
        assert_eq!(request.image, "img:1");
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for bad in [
            &["check"][..],
            &["inspect", "x"],
            &["check", "--format", "xml", "x"],
            &["check", "--bogus", "x"],
        ] {
            assert_eq!(parse(args(bad)).unwrap_err().exit_code(), 64, "{bad:?}");
        }
    }
}
