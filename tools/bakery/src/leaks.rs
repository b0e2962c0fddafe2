//! The known-value leak hunt: given the real secret values (from a mock
//! vault seed file, a file of values, or environment variables), search every
//! layer (deleted files included), the history, the labels and the config.
//! A value is only ever named by where it came from (`seed:data.app.password`,
//! `env:DB_PASSWORD`), never printed.

use std::path::Path;

use memchr::memmem;

use crate::checks::layer_location;
use crate::error::BakeryError;
use crate::filesystem::FinalFs;
use crate::image::Image;
use crate::report::{Finding, Location, Outcome};

/// Shorter values match everywhere by chance; vinit's `--redact` skips them too.
pub const MINIMUM_LENGTH: usize = 4;

/// A value to hunt for and the name it is reported under.
pub struct KnownValue {
    pub label: String,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for KnownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnownValue({}, ***)", self.label)
    }
}

impl Drop for KnownValue {
    fn drop(&mut self) {
        self.value.iter_mut().for_each(|b| *b = 0);
    }
}

/// String leaves of a seed document. Leaves under a key named `data` are
/// the secret values (the KV data of every seeded path); a seed without any
/// `data` key is taken whole.
pub fn from_seed(path: &Path) -> Result<Vec<KnownValue>, BakeryError> {
    let text = std::fs::read_to_string(path).map_err(|e| BakeryError::io(&path.display().to_string(), e))?;
    let document: serde_json::Value = match serde_json::from_str(&text) {
        Ok(json) => json,
        Err(_) => {
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| BakeryError::Usage(format!("{}: neither JSON nor TOML: {e}", path.display())))?;
            serde_json::to_value(table).map_err(|e| BakeryError::Usage(format!("{}: {e}", path.display())))?
        }
    };
    let mut under_data = Vec::new();
    let mut everything = Vec::new();
    collect(&document, "", false, &mut under_data, &mut everything);
    let chosen = if under_data.is_empty() {
        everything
    } else {
        under_data
    };
    Ok(chosen
        .into_iter()
        .map(|(key, value)| KnownValue {
            label: format!("seed:{key}"),
            value: value.into_bytes(),
        })
        .collect())
}

type Leaves = Vec<(String, String)>;

fn collect(node: &serde_json::Value, key: &str, in_data: bool, data: &mut Leaves, all: &mut Leaves) {
    let child_key = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match node {
        serde_json::Value::String(text) => {
            if in_data {
                data.push((key.to_string(), text.clone()));
            }
            all.push((key.to_string(), text.clone()));
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect(v, &child_key(k), in_data || k == "data", data, all);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &child_key(&i.to_string()), in_data, data, all);
            }
        }
        _ => {}
    }
}

/// One value per line (trailing newline and carriage return trimmed).
pub fn from_lines(path: &Path) -> Result<Vec<KnownValue>, BakeryError> {
    let text = std::fs::read_to_string(path).map_err(|e| BakeryError::io(&path.display().to_string(), e))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(number, line)| KnownValue {
            label: format!("{}:{}", path.display(), number + 1),
            value: line.trim_end_matches('\r').as_bytes().to_vec(),
        })
        .collect())
}

/// The value of this program's own environment variable `name` (so the
/// value never shows on a command line).
pub fn from_env(name: &str) -> Result<KnownValue, BakeryError> {
    let value = std::env::var_os(name)
        .ok_or_else(|| BakeryError::Usage(format!("--value-env {name}: {name} is not set")))?;
    Ok(KnownValue {
        label: format!("env:{name}"),
        value: std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()).to_vec(),
    })
}

pub fn hunt(image: &Image, fs: &FinalFs, values: &[KnownValue]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (usable, short): (Vec<&KnownValue>, Vec<&KnownValue>) =
        values.iter().partition(|v| v.value.len() >= MINIMUM_LENGTH);
    for value in short {
        findings.push(Finding::new(
            "known-values",
            Outcome::Warn,
            format!(
                "{} is shorter than {MINIMUM_LENGTH} bytes: not searched",
                value.label
            ),
        ));
    }
    if usable.is_empty() {
        findings.push(Finding::new(
            "known-values",
            Outcome::Skip,
            "no known value given (--seed, --values-file, --value-env)",
        ));
        return findings;
    }
    for value in &usable {
        let finder = memmem::Finder::new(&value.value);
        for (layer_index, layer) in image.layers.iter().enumerate() {
            for (entry_index, entry) in layer.entries.iter().enumerate() {
                let in_content = finder.find(&entry.content).is_some();
                let in_name = finder.find(entry.path.as_bytes()).is_some()
                    || entry
                        .link
                        .as_ref()
                        .is_some_and(|l| finder.find(l.as_bytes()).is_some());
                if !(in_content || in_name) {
                    continue;
                }
                let deleted = if fs.is_visible((layer_index, entry_index)) {
                    ""
                } else {
                    " (deleted or replaced in a later layer, still in this one)"
                };
                let part = if in_content { "content" } else { "name" };
                findings.push(
                    Finding::new(
                        "known-values",
                        Outcome::Fail,
                        format!("{} found in the {part} of {}{deleted}", value.label, entry.path),
                    )
                    .at(layer_location(image, layer_index, &entry.path)),
                );
            }
        }
        for (step, history) in image.history.iter().enumerate() {
            if finder.find(history.created_by.as_bytes()).is_some() {
                findings.push(
                    Finding::new(
                        "known-values",
                        Outcome::Fail,
                        format!("{} found in history step {step}", value.label),
                    )
                    .at(Location {
                        history_step: Some(step),
                        place: Some("history".into()),
                        ..Location::default()
                    }),
                );
            }
        }
        // The config blob holds env, labels, entrypoint and history: name the
        // part when it is env or a label.
        if finder.find(&image.raw_config).is_some() {
            let mut places: Vec<String> = image
                .env()
                .iter()
                .filter(|(_, v)| finder.find(v.as_bytes()).is_some())
                .map(|(n, _)| format!("config.Env[{n}]"))
                .collect();
            places.extend(
                image
                    .config
                    .labels
                    .iter()
                    .flatten()
                    .filter(|(_, v)| finder.find(v.as_bytes()).is_some())
                    .map(|(n, _)| format!("config.Labels[{n}]")),
            );
            if places.is_empty() {
                places.push("the image config".into());
            }
            for place in places {
                findings.push(
                    Finding::new(
                        "known-values",
                        Outcome::Fail,
                        format!("{} found in {place}", value.label),
                    )
                    .at(Location {
                        place: Some(place),
                        ..Location::default()
                    }),
                );
            }
        }
    }
    if !findings.iter().any(|f| f.outcome == Outcome::Fail) {
        findings.push(Finding::new(
            "known-values",
            Outcome::Pass,
            format!(
                "none of {} known value(s) in {} layer(s), history, labels or config",
                usable.len(),
                image.layers.len()
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_values_come_from_data_tables() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed.toml");
        std::fs::write(
            &seed,
            "[secrets.\"secret/app\".data]\npassword = \"canary-1234\"\n[auth]\nrole = \"web\"\n",
        )
        .unwrap();
        let values = from_seed(&seed).unwrap();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].label, "seed:secrets.secret/app.data.password");
        assert_eq!(values[0].value, b"canary-1234");
        assert!(!format!("{:?}", values[0]).contains("canary"));
    }

    #[test]
    fn seed_without_data_is_taken_whole() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed.json");
        std::fs::write(&seed, r#"{"app": {"password": "canary-5678"}}"#).unwrap();
        let values = from_seed(&seed).unwrap();
        assert_eq!(values[0].label, "seed:app.password");
    }
}
