//! The leaf of the crate: vinit's environment snapshot and the syntax of
//! setting values (booleans, durations, comma lists). It imports nothing of
//! the project, so every room (options, vault, logging, secrets) can use it
//! without an import circle.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

impl Drop for Environment {
    /// The snapshot holds credentials (`VAULT_TOKEN`, `VINIT_SECRET_ID`):
    /// its values are overwritten before the memory is freed.
    fn drop(&mut self) {
        for (_, value) in self.vars.drain(..) {
            zeroize::Zeroize::zeroize(&mut value.into_encoded_bytes());
        }
    }
}

/// A setting whose value is not valid UTF-8; names the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotText(pub String);

impl fmt::Display for NotText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: the value is not valid UTF-8", self.0)
    }
}

/// vinit's environment as it was at start, in order.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub vars: Vec<(OsString, OsString)>,
}

impl Environment {
    pub fn capture() -> Self {
        Environment {
            vars: std::env::vars_os().collect(),
        }
    }

    /// A made-up environment (tests, tools).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Environment {
            vars: pairs.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// The value of `name` as text; a non-UTF-8 value of a vinit setting is a
    /// usage error naming the variable.
    pub fn text(&self, name: &str) -> Result<Option<&str>, NotText> {
        match self.raw(name) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).ok_or_else(|| NotText(name.to_string())),
        }
    }

    /// The raw value of `name`.
    pub fn raw(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The `VINIT_*` names present.
    pub fn vinit_names(&self) -> impl Iterator<Item = &OsStr> {
        self.vars
            .iter()
            .map(|(k, _)| k.as_os_str())
            .filter(|k| k.as_bytes().starts_with(b"VINIT_"))
    }
}

/// Splits a comma-separated list, trimming blanks.
pub fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `true`/`false`/`1`/`0`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!("\"{other}\" is not a boolean (true, false, 1 or 0)")),
    }
}

/// `500ms`, `2s`, `1m30s`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("\"{text}\" is not a duration (e.g. 500ms, 2s, 1m30s; a bare number is seconds)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let amount: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let part = unit
            .checked_mul(u32::try_from(amount).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "5x", "1.5s", "-1s", "m1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_and_lists() {
        assert_eq!(list(" A, ,B "), ["A", "B"]);
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn non_utf8_values_are_named() {
        use std::os::unix::ffi::OsStringExt;
        let env = Environment {
            vars: vec![("VINIT_LOG".into(), OsString::from_vec(vec![0xff]))],
        };
        assert_eq!(env.text("VINIT_LOG"), Err(NotText("VINIT_LOG".into())));
        assert_eq!(env.text("OTHER"), Ok(None));
    }
}
