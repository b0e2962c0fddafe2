//! The static checks of an image that bakes vinit in: entrypoint, the vinit
//! binary, user, secret-looking env values, credentials anywhere (deleted
//! layers included), render directory, healthcheck timing. Pure: reads the
//! loaded image, returns findings, never prints a value it inspects.

use std::time::Duration;

use memchr::memmem;

use crate::filesystem::FinalFs;
use crate::image::{EntryKind, Image};
use crate::report::{Finding, Location, Outcome};

/// What the checks need besides the image.
pub struct CheckSettings {
    /// The directory vinit renders into (a tmpfs at run time).
    pub render_dir: String,
    /// Env names accepted as not secret, whatever their name looks like.
    pub accept_keys: Vec<String>,
}

/// vinit's start-up deadline when the image does not set VINIT_TIMEOUT
/// (SPEC: 60s).
pub const DEFAULT_STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Label an image may carry to name its render directory.
pub const RENDER_DIR_LABEL: &str = "io.vinit.render-dir";

/// A history command fit to print: the values of secret-looking
/// assignments (`ENV DB_PASSWORD=...`, `|1 VAULT_TOKEN=...`) and anything
/// token-shaped replaced by `***`.
pub fn redact_command(command: &str) -> String {
    command
        .split(' ')
        .map(|word| {
            if contains_token(word.as_bytes()) {
                return "***".to_string();
            }
            match word.split_once('=') {
                Some((name, value))
                    if !value.is_empty()
                        && !is_reference(value)
                        && (looks_secret(name) || CREDENTIAL_VARIABLES.contains(&name)) =>
                {
                    format!("{name}=***")
                }
                _ => word.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn created_by(image: &Image, step: Option<usize>) -> Option<String> {
    step.and_then(|s| image.history.get(s))
        .map(|h| redact_command(&h.created_by))
}

pub fn layer_location(image: &Image, layer: usize, place: &str) -> Location {
    let step = image.layers.get(layer).and_then(|l| l.history_step);
    Location {
        layer: Some(layer),
        layer_digest: image.layers.get(layer).map(|l| l.digest.clone()),
        history_step: step,
        created_by: created_by(image, step),
        place: Some(place.to_string()),
    }
}

/// A place in the config, tied to the last history step mentioning `needle`.
pub fn config_location(image: &Image, place: &str, needle: &str) -> Location {
    let step = image.step_mentioning(needle);
    Location {
        history_step: step,
        created_by: created_by(image, step),
        place: Some(place.to_string()),
        ..Location::default()
    }
}

pub fn run_all(image: &Image, fs: &FinalFs, settings: &CheckSettings) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(entrypoint(image));
    findings.extend(vinit_binary(image, fs));
    findings.extend(user(image, fs));
    findings.extend(secret_env(image, settings));
    findings.extend(credentials(image, fs));
    findings.extend(render_dir(image, fs, settings));
    findings.extend(healthcheck(image));
    findings
}

/// ENTRYPOINT[0], when it names vinit.
pub fn vinit_path(image: &Image) -> Option<&str> {
    let first = image.config.entrypoint.as_ref()?.first()?;
    let name = first.rsplit('/').next().unwrap_or(first);
    name.starts_with("vinit").then_some(first.as_str())
}

fn entrypoint(image: &Image) -> Vec<Finding> {
    let location = config_location(image, "config.Entrypoint", "ENTRYPOINT");
    let entrypoint = image.config.entrypoint.clone().unwrap_or_default();
    let shown = format!("{entrypoint:?}");
    let finding = if entrypoint.is_empty() {
        Finding::new(
            "entrypoint",
            Outcome::Fail,
            "no ENTRYPOINT: vinit must be ENTRYPOINT[0]",
        )
    } else if entrypoint.len() >= 2 && entrypoint[0].ends_with("sh") && entrypoint[1] == "-c" {
        Finding::new(
            "entrypoint",
            Outcome::Fail,
            format!("ENTRYPOINT {shown} is shell form: the shell, not vinit, is PID 1; use [\"/sbin/vinit\", \"--\"]"),
        )
    } else if vinit_path(image).is_none() {
        Finding::new(
            "entrypoint",
            Outcome::Fail,
            format!("ENTRYPOINT[0] of {shown} is not vinit"),
        )
    } else if !entrypoint[0].starts_with('/') {
        Finding::new(
            "entrypoint",
            Outcome::Fail,
            format!("ENTRYPOINT[0] {:?} is not an absolute path", entrypoint[0]),
        )
    } else {
        Finding::new("entrypoint", Outcome::Pass, format!("exec form {shown}"))
    };
    vec![finding.at(location)]
}

/// Whether an ELF file asks for a program interpreter (is dynamically linked).
fn elf_interpreter(content: &[u8]) -> Result<bool, &'static str> {
    if content.len() < 64 || &content[..4] != b"\x7fELF" {
        return Err("not an ELF executable");
    }
    if content[4] != 2 || content[5] != 1 {
        return Err("not a 64-bit little-endian ELF");
    }
    let u16_at = |at: usize| u16::from_le_bytes([content[at], content[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(content[0x20..0x28].try_into().map_err(|_| "bad header")?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        let header = content.get(at..at + 4).ok_or("truncated program headers")?;
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

fn vinit_binary(image: &Image, fs: &FinalFs) -> Vec<Finding> {
    let Some(path) = vinit_path(image) else {
        return vec![Finding::new(
            "vinit-binary",
            Outcome::Skip,
            "no vinit in ENTRYPOINT[0] to inspect",
        )];
    };
    let Some((origin, entry)) = fs.resolve(path) else {
        return vec![Finding::new(
            "vinit-binary",
            Outcome::Fail,
            format!("{path} does not exist in the image"),
        )];
    };
    let location = layer_location(image, origin.0, path);
    let mut problems = Vec::new();
    if entry.kind != EntryKind::File {
        problems.push("is not a regular file".to_string());
    } else {
        match elf_interpreter(&entry.content) {
            Ok(true) => problems.push("is dynamically linked (has an ELF interpreter)".into()),
            Ok(false) => {}
            Err(why) => problems.push(why.into()),
        }
    }
    if entry.uid != 0 {
        problems.push(format!("is owned by uid {}, not root", entry.uid));
    }
    if entry.mode & 0o022 != 0 {
        problems.push(format!(
            "mode {:04o} is writable by group or others",
            entry.mode & 0o7777
        ));
    }
    if entry.mode & 0o6000 != 0 {
        problems.push(format!("mode {:04o} is set-uid or set-gid", entry.mode & 0o7777));
    }
    if entry.mode & 0o111 == 0 {
        problems.push("is not executable".into());
    }
    if problems.is_empty() {
        let message = format!("{path}: static, root-owned, mode {:04o}", entry.mode & 0o7777);
        return vec![Finding::new("vinit-binary", Outcome::Pass, message).at(location)];
    }
    problems
        .into_iter()
        .map(|p| Finding::new("vinit-binary", Outcome::Fail, format!("{path} {p}")).at(location.clone()))
        .collect()
}

/// uid of `name` in an /etc/passwd text.
fn passwd_uid(passwd: &str, name: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

fn user(image: &Image, fs: &FinalFs) -> Vec<Finding> {
    let location = config_location(image, "config.User", "USER");
    let user = image.config.user.clone().unwrap_or_default();
    let name = user.split(':').next().unwrap_or("").to_string();
    if name.is_empty() {
        return vec![Finding::new(
            "user",
            Outcome::Fail,
            "no USER: the container runs as root (uid 0)",
        )
        .at(location)];
    }
    let passwd = fs
        .resolve("/etc/passwd")
        .map(|(_, e)| String::from_utf8_lossy(&e.content).into_owned());
    let uid = match name.parse::<u32>() {
        Ok(uid) => Some(uid),
        Err(_) => passwd.as_deref().and_then(|p| passwd_uid(p, &name)),
    };
    let finding = match uid {
        None if passwd.is_none() => Finding::new(
            "user",
            Outcome::Fail,
            format!("USER {user:?} is a name but the image has no /etc/passwd to resolve it"),
        ),
        None => Finding::new(
            "user",
            Outcome::Fail,
            format!("USER {user:?} is not in the image's /etc/passwd"),
        ),
        Some(0) => Finding::new("user", Outcome::Fail, format!("USER {user:?} is root (uid 0)")),
        Some(uid) => Finding::new("user", Outcome::Pass, format!("USER {user:?} is uid {uid}")),
    };
    vec![finding.at(location)]
}

/// A value is a reference when it is one (`vault:PATH#KEY`) or holds inline
/// ones (`...${vault:PATH#KEY}...`).
pub fn is_reference(value: &str) -> bool {
    let whole = |v: &str| (v.starts_with("vault:") || v.starts_with("bao:")) && v.contains('#');
    whole(value) || value.contains("${vault:") || value.contains("${bao:")
}

const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "PRIVATE",
];
/// Names that hold a path, a switch or an identifier, never the secret.
const NOT_SECRET_SUFFIXES: &[&str] = &["_FILE", "_PATH", "_DIR", "_WRAPPED", "_METHOD", "_MOUNT"];
/// vinit's own credentials: set in an image they are a leak, whatever they hold.
pub const CREDENTIAL_VARIABLES: &[&str] = &["VAULT_TOKEN", "BAO_TOKEN", "VINIT_SECRET_ID"];

pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if NOT_SECRET_SUFFIXES.iter().any(|s| upper.ends_with(s)) {
        return false;
    }
    if matches!(upper.as_str(), "VAULT_CLIENT_KEY" | "BAO_CLIENT_KEY") {
        return false;
    }
    upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| SECRET_WORDS.contains(&word))
}

fn secret_env(image: &Image, settings: &CheckSettings) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut references = 0;
    for (name, value) in image.env() {
        if CREDENTIAL_VARIABLES.contains(&name.as_str()) || settings.accept_keys.contains(&name) {
            continue;
        }
        if is_reference(&value) {
            references += 1;
            continue;
        }
        if looks_secret(&name) && !value.is_empty() {
            findings.push(
                Finding::new(
                    "secret-env",
                    Outcome::Fail,
                    format!(
                        "ENV {name} looks secret but holds a resolved value ({} bytes), not a vault:/bao: reference",
                        value.len()
                    ),
                )
                .at(config_location(image, &format!("config.Env[{name}]"), &format!("{name}="))),
            );
        }
    }
    if findings.is_empty() {
        findings.push(Finding::new(
            "secret-env",
            Outcome::Pass,
            format!("{references} env value(s) are references; no resolved secret-looking value"),
        ));
    }
    findings
}

/// Vault/OpenBao service, batch and recovery token prefixes.
const TOKEN_PREFIXES: &[&[u8]] = &[b"hvs.", b"hvb.", b"hvr."];
const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PRIVATE_KEY_END: &[u8] = b"PRIVATE KEY-----";

/// A PEM private key block with a body, not just the marker string that
/// TLS libraries carry in their code.
fn contains_private_key(haystack: &[u8]) -> bool {
    memmem::find_iter(haystack, PEM_BEGIN).any(|at| {
        let label = &haystack[at + PEM_BEGIN.len()..];
        let label_len = label
            .iter()
            .take(40)
            .take_while(|b| b.is_ascii_uppercase() || **b == b' ')
            .count();
        if !label[label_len..].starts_with(b"-----") || !label[..label_len + 5].ends_with(PRIVATE_KEY_END) {
            return false;
        }
        let body = &label[label_len + 5..];
        let base64 = body
            .iter()
            .take(200)
            .filter(|b| !matches!(b, b'\n' | b'\r'))
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            .count();
        base64 >= 64
    })
}
const CREDENTIAL_FILE_NAMES: &[&str] = &[".vault-token", "secret_id", "secret-id", ".bao-token"];

/// A token-looking run after a known prefix: at least 20 token characters.
fn contains_token(haystack: &[u8]) -> bool {
    TOKEN_PREFIXES.iter().any(|prefix| {
        memmem::find_iter(haystack, prefix).any(|at| {
            let rest = &haystack[at + prefix.len()..];
            let run = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                .count();
            let before_ok = at == 0 || !haystack[at - 1].is_ascii_alphanumeric();
            run >= 20 && before_ok
        })
    })
}

/// `VAULT_TOKEN=<something that is not a reference or a variable>`.
fn assigns_credential(haystack: &[u8]) -> Option<&'static str> {
    CREDENTIAL_VARIABLES.iter().copied().find(|name| {
        let needle = format!("{name}=");
        memmem::find_iter(haystack, needle.as_bytes()).any(|at| {
            let before_ok =
                at == 0 || !(haystack[at - 1].is_ascii_alphanumeric() || haystack[at - 1] == b'_');
            let value = &haystack[at + needle.len()..];
            let value: Vec<u8> = value
                .iter()
                .copied()
                .skip_while(|b| *b == b'"' || *b == b'\'')
                .take_while(|b| !b.is_ascii_whitespace() && *b != b'"' && *b != b'\'')
                .collect();
            before_ok
                && !value.is_empty()
                && !value.starts_with(b"$")
                && !is_reference(&String::from_utf8_lossy(&value))
        })
    })
}

/// What credential, if any, these bytes hold (a description, never the value).
fn credential_in(bytes: &[u8]) -> Option<String> {
    if contains_token(bytes) {
        return Some("a Vault/OpenBao token (hvs./hvb./hvr.)".into());
    }
    // Crypto libraries embed their self-test keys; a leaked key is a file
    // of its own, not code.
    if !bytes.starts_with(b"\x7fELF") && contains_private_key(bytes) {
        return Some("a PEM private key".into());
    }
    assigns_credential(bytes).map(|name| format!("an assignment of {name}"))
}

fn credentials(image: &Image, fs: &FinalFs) -> Vec<Finding> {
    let mut findings = Vec::new();
    let secret_id_file = image.env_value("VINIT_SECRET_ID_FILE");
    let token_file = image.env_value("VINIT_TOKEN_FILE");
    for (layer_index, layer) in image.layers.iter().enumerate() {
        for (entry_index, entry) in layer.entries.iter().enumerate() {
            if entry.kind != EntryKind::File {
                continue;
            }
            let name = entry.path.rsplit('/').next().unwrap_or("");
            let deleted = if fs.is_visible((layer_index, entry_index)) {
                ""
            } else {
                " (deleted or replaced in a later layer, still in this one)"
            };
            let named_file = CREDENTIAL_FILE_NAMES.contains(&name)
                || Some(&entry.path) == secret_id_file.as_ref()
                || Some(&entry.path) == token_file.as_ref();
            let what = if named_file && !entry.content.trim_ascii().is_empty() {
                Some(format!("a credential file ({} bytes)", entry.content.len()))
            } else {
                credential_in(&entry.content)
            };
            if let Some(what) = what {
                findings.push(
                    Finding::new(
                        "credentials",
                        Outcome::Fail,
                        format!("{} holds {what}{deleted}", entry.path),
                    )
                    .at(layer_location(image, layer_index, &entry.path)),
                );
            }
        }
    }
    for (step, history) in image.history.iter().enumerate() {
        if let Some(what) = credential_in(history.created_by.as_bytes()) {
            findings.push(
                Finding::new(
                    "credentials",
                    Outcome::Fail,
                    format!("history step {step} holds {what}"),
                )
                .at(Location {
                    history_step: Some(step),
                    created_by: created_by(image, Some(step)),
                    place: Some("history".into()),
                    ..Location::default()
                }),
            );
        }
    }
    for name in CREDENTIAL_VARIABLES {
        if image.env_value(name).is_some_and(|v| !v.is_empty()) {
            findings.push(
                Finding::new(
                    "credentials",
                    Outcome::Fail,
                    format!("ENV {name} is set in the image config: pass it at run time or use a file"),
                )
                .at(config_location(
                    image,
                    &format!("config.Env[{name}]"),
                    &format!("{name}="),
                )),
            );
        }
    }
    for (name, value) in image.config.labels.iter().flatten() {
        let resolved_secret = looks_secret(name) && !value.is_empty() && !is_reference(value);
        let what = credential_in(value.as_bytes())
            .or_else(|| resolved_secret.then(|| "a resolved secret-looking value".to_string()));
        if let Some(what) = what {
            findings.push(
                Finding::new("credentials", Outcome::Fail, format!("LABEL {name} holds {what}"))
                    .at(config_location(image, &format!("config.Labels[{name}]"), name)),
            );
        }
    }
    if findings.is_empty() {
        findings.push(Finding::new(
            "credentials",
            Outcome::Pass,
            format!(
                "no credential in {} layer(s), {} history step(s), labels or config",
                image.layers.len(),
                image.history.len()
            ),
        ));
    }
    findings
}

pub fn render_dir_of(image: &Image, settings: &CheckSettings) -> String {
    image
        .config
        .labels
        .as_ref()
        .and_then(|labels| labels.get(RENDER_DIR_LABEL).cloned())
        .unwrap_or_else(|| settings.render_dir.clone())
}

fn render_dir(image: &Image, fs: &FinalFs, settings: &CheckSettings) -> Vec<Finding> {
    let dir = render_dir_of(image, settings);
    let finding = match fs.resolve(&dir) {
        None => Finding::new(
            "render-dir",
            Outcome::Fail,
            format!("{dir} does not exist: create it empty so a tmpfs can be mounted there"),
        ),
        Some((origin, entry)) if entry.kind != EntryKind::Directory => {
            Finding::new("render-dir", Outcome::Fail, format!("{dir} is not a directory"))
                .at(layer_location(image, origin.0, &dir))
        }
        Some((origin, _)) => {
            let inside = fs.children(&dir);
            if inside.is_empty() {
                Finding::new("render-dir", Outcome::Pass, format!("{dir} exists and is empty"))
                    .at(layer_location(image, origin.0, &dir))
            } else {
                Finding::new(
                    "render-dir",
                    Outcome::Fail,
                    format!(
                        "{dir} is not empty ({} entries, first {})",
                        inside.len(),
                        inside[0]
                    ),
                )
                .at(layer_location(image, origin.0, &dir))
            }
        }
    };
    vec![finding]
}

/// `500ms`, `2s`, `1m30s`, `90` (seconds), as vinit reads durations.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().ok()?;
        number.clear();
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                Duration::from_millis(value)
            }
            ('h', _) => Duration::from_secs(value * 3600),
            ('m', _) => Duration::from_secs(value * 60),
            ('s', _) => Duration::from_secs(value),
            _ => return None,
        };
        total += unit;
    }
    number.is_empty().then_some(total)
}

fn healthcheck(image: &Image) -> Vec<Finding> {
    let Some(check) = &image.config.healthcheck else {
        return vec![Finding::new("healthcheck", Outcome::Pass, "no HEALTHCHECK")];
    };
    if check
        .test
        .as_ref()
        .and_then(|t| t.first())
        .is_some_and(|t| t == "NONE")
    {
        return vec![Finding::new("healthcheck", Outcome::Pass, "HEALTHCHECK NONE")];
    }
    let location = config_location(image, "config.Healthcheck", "HEALTHCHECK");
    let deadline = match image.env_value("VINIT_TIMEOUT") {
        Some(text) => match parse_duration(&text) {
            Some(deadline) => deadline,
            None => {
                return vec![Finding::new(
                    "healthcheck",
                    Outcome::Fail,
                    format!("VINIT_TIMEOUT={text:?} is not a duration"),
                )
                .at(location)]
            }
        },
        None => DEFAULT_STARTUP_DEADLINE,
    };
    let start_period = Duration::from_nanos(check.start_period.unwrap_or(0));
    let finding = if start_period >= deadline {
        Finding::new(
            "healthcheck",
            Outcome::Pass,
            format!("start_period {start_period:?} covers vinit's start-up deadline {deadline:?}"),
        )
    } else {
        Finding::new(
            "healthcheck",
            Outcome::Fail,
            format!(
                "start_period {start_period:?} is shorter than vinit's start-up deadline {deadline:?} (VINIT_TIMEOUT): \
                 a Vault outage at start turns into a restart loop; raise start_period or lower VINIT_TIMEOUT"
            ),
        )
    };
    vec![finding.at(location)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names() {
        for name in [
            "DB_PASSWORD",
            "API_KEY",
            "GITHUB_TOKEN",
            "client_secret",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "VINIT_TOKEN_FILE",
            "VINIT_SECRET_ID_FILE",
            "VAULT_ADDR",
            "PATH",
            "KEYBOARD",
            "VAULT_CLIENT_KEY",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn references_whole_and_inline() {
        assert!(is_reference("vault:secret/data/app#password"));
        assert!(is_reference("bao:secret/data/app#password#2"));
        assert!(is_reference("postgres://u:${vault:secret/data/db#pw}@db/app"));
        assert!(!is_reference("hunter2"));
        assert!(!is_reference("vault:"));
    }

    #[test]
    fn tokens_keys_and_assignments_are_found() {
        assert!(credential_in(b"token=hvs.CAESIJabcdefghijklmnopqrstuvwxyz").is_some());
        assert!(credential_in(b"hvs.short").is_none());
        let key = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ".repeat(3)
        );
        assert!(credential_in(key.as_bytes()).is_some());
        assert!(credential_in(b"-----BEGIN RSA PRIVATE KEY-----\0-----END").is_none());
        assert!(credential_in(b"-----BEGIN CERTIFICATE-----\nMIIB").is_none());
        assert!(credential_in(b"export VAULT_TOKEN=root\n").is_some());
        assert!(credential_in(b"VAULT_TOKEN=$TOKEN").is_none());
        assert!(credential_in(b"MY_VAULT_TOKEN=x").is_none());
        assert!(credential_in(b"VAULT_TOKEN=vault:login#x").is_none());
    }

    #[test]
    fn history_commands_are_redacted() {
        assert_eq!(
            redact_command("ENV DB_PASSWORD=hunter2 MODE=prod"),
            "ENV DB_PASSWORD=*** MODE=prod"
        );
        assert_eq!(
            redact_command("|1 VAULT_TOKEN=s.abc /bin/sh -c make"),
            "|1 VAULT_TOKEN=*** /bin/sh -c make"
        );
        assert_eq!(
            redact_command("ENV DB_PASSWORD=vault:secret/data/app#pw"),
            "ENV DB_PASSWORD=vault:secret/data/app#pw"
        );
        assert_eq!(
            redact_command("RUN login hvs.CAESIabcdefghijklmnopqrstu"),
            "RUN login ***"
        );
    }

    #[test]
    fn static_and_dynamic_elf() {
        let mut elf = vec![0u8; 200];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20] = 64; // program headers at 64
        elf[0x36] = 56; // entry size
        elf[0x38] = 1; // one header
        elf[64] = 1; // PT_LOAD
        assert_eq!(elf_interpreter(&elf), Ok(false));
        elf[64] = 3; // PT_INTERP
        assert_eq!(elf_interpreter(&elf), Ok(true));
        assert!(elf_interpreter(b"#!/bin/sh").is_err());
    }

    #[test]
    fn durations_as_vinit_reads_them() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0::/root:/bin/sh\napp:x:10001:10001::/home/app:/sbin/nologin\n";
        assert_eq!(passwd_uid(passwd, "app"), Some(10001));
        assert_eq!(passwd_uid(passwd, "root"), Some(0));
        assert_eq!(passwd_uid(passwd, "nobody"), None);
    }
}
