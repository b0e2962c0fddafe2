//! Command line: `vinit-mock-vault --seed FILE [--listen ADDR] [--tls-cert
//! FILE --tls-key FILE]`, or `vinit-mock-vault healthcheck [--addr URL]`.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: vinit-mock-vault --seed FILE [--listen ADDR] [--tls-cert FILE --tls-key FILE]
       vinit-mock-vault healthcheck [--addr URL]

  --seed FILE       data, identities and fault knobs (YAML or JSON)
  --listen ADDR     where to listen (default 127.0.0.1:8200; port 0 picks a free one)
  --tls-cert FILE   serve https with this certificate chain (PEM) ...
  --tls-key FILE    ... and this key (PEM); plain http without them
  healthcheck       GET ADDR/v1/sys/health, exit 0 on 200 (default http://127.0.0.1:8200)

Each flag has an environment twin: MOCK_VAULT_SEED, MOCK_VAULT_LISTEN,
MOCK_VAULT_TLS_CERT, MOCK_VAULT_TLS_KEY, MOCK_VAULT_ADDR.";

#[derive(Debug, PartialEq)]
pub enum Command {
    Serve(Plan),
    Healthcheck { addr: String },
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
pub struct Plan {
    pub seed: PathBuf,
    pub listen: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// Flags first, then their environment twins, then defaults.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Command, String> {
    let mut args = args.iter();
    let mut seed = None;
    let mut listen = None;
    let mut tls_cert = None;
    let mut tls_key = None;
    let mut addr = None;
    let mut healthcheck = false;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "healthcheck" if !healthcheck => healthcheck = true,
            "--seed" => seed = Some(value()?),
            "--listen" => listen = Some(value()?),
            "--tls-cert" => tls_cert = Some(value()?),
            "--tls-key" => tls_key = Some(value()?),
            "--addr" => addr = Some(value()?),
            other => return Err(format!("unknown argument \"{other}\"")),
        }
    }
    if healthcheck {
        let addr = addr
            .or_else(|| env("MOCK_VAULT_ADDR"))
            .unwrap_or_else(|| "http://127.0.0.1:8200".into());
        return Ok(Command::Healthcheck { addr });
    }
    if addr.is_some() {
        return Err("--addr belongs to healthcheck".into());
    }
    let seed = seed
        .or_else(|| env("MOCK_VAULT_SEED"))
        .ok_or("--seed FILE (or MOCK_VAULT_SEED) is required")?;
    let tls_cert = tls_cert.or_else(|| env("MOCK_VAULT_TLS_CERT"));
    let tls_key = tls_key.or_else(|| env("MOCK_VAULT_TLS_KEY"));
    if tls_cert.is_some() != tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    Ok(Command::Serve(Plan {
        seed: seed.into(),
        listen: listen
            .or_else(|| env("MOCK_VAULT_LISTEN"))
            .unwrap_or_else(|| "127.0.0.1:8200".into()),
        tls_cert: tls_cert.map(PathBuf::from),
        tls_key: tls_key.map(PathBuf::from),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_then_environment_then_defaults() {
        let none = |_: &str| None;
        let Command::Serve(plan) = parse(&args(&["--seed", "s.yaml"]), none).unwrap() else {
            panic!()
        };
        assert_eq!(plan.listen, "127.0.0.1:8200");
        let env = |name: &str| (name == "MOCK_VAULT_LISTEN").then(|| "0.0.0.0:8200".to_string());
        let Command::Serve(plan) = parse(&args(&["--seed=s.yaml"]), env).unwrap() else {
            panic!()
        };
        assert_eq!(plan.listen, "0.0.0.0:8200");
        assert!(parse(&args(&[]), none).unwrap_err().contains("--seed"));
        assert!(parse(&args(&["--seed", "s", "--tls-cert", "c"]), none)
            .unwrap_err()
            .contains("--tls-key"));
        assert!(parse(&args(&["--sed", "s"]), none).unwrap_err().contains("--sed"));
        assert_eq!(
            parse(&args(&["healthcheck"]), none).unwrap(),
            Command::Healthcheck {
                addr: "http://127.0.0.1:8200".into()
            }
        );
    }
}
