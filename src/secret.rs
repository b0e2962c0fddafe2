//! Types that hold secret values: they never print them (`Debug` and
//! `Display` show `***`) and overwrite their memory when dropped.
//!
//! Every value read from Vault, every token and every secret_id lives in one
//! of these from the moment it is parsed until it is handed to the app.

use std::fmt;

use zeroize::Zeroize;

/// A secret string: a token, a secret_id, a field read from Vault.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> Self {
        SecretString(value)
    }

    /// The value itself, for the few places that must use it (an HTTP
    /// header, the child's environment, a rendered file). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        SecretString(value.to_string())
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The data of one Vault response (`data`, or `data.data` for KV v2): field
/// names are shown, values never; every string in it is overwritten on drop.
#[derive(Clone, Default)]
pub struct SecretData(serde_json::Map<String, serde_json::Value>);

impl SecretData {
    pub fn new(map: serde_json::Map<String, serde_json::Value>) -> Self {
        SecretData(map)
    }

    /// The field `key` as text: strings as they are, numbers and booleans
    /// in their JSON form, objects and arrays as compact JSON.
    pub fn field(&self, key: &str) -> Option<SecretString> {
        let value = self.0.get(key)?;
        Some(SecretString::new(match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        }))
    }

    /// The field names, sorted, for "it has: ..." messages.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.0.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}

impl Drop for SecretData {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            scrub(value);
        }
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretData {{ keys: {:?}, values: *** }}", self.keys())
    }
}

/// Overwrites the values of an environment that held secrets, then drops it.
pub fn scrub_env(env: Vec<(std::ffi::OsString, std::ffi::OsString)>) {
    for (_, value) in env {
        value.into_encoded_bytes().zeroize();
    }
}

/// Overwrites every string inside a JSON value.
pub fn scrub(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => text.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
        serde_json::Value::Object(map) => map.values_mut().for_each(scrub),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let secret = SecretString::from("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        let data = SecretData::new(serde_json::from_str(r#"{"b":"hunter2","a":1}"#).unwrap());
        let shown = format!("{data:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"a\", \"b\""), "{shown}");
    }

    #[test]
    fn fields_as_text() {
        let data = SecretData::new(serde_json::from_str(r#"{"s":"x","n":5,"o":{"k":true}}"#).unwrap());
        assert_eq!(data.field("s").unwrap().expose(), "x");
        assert_eq!(data.field("n").unwrap().expose(), "5");
        assert_eq!(data.field("o").unwrap().expose(), r#"{"k":true}"#);
        assert!(data.field("missing").is_none());
    }

    #[test]
    fn scrub_overwrites_nested_strings() {
        let mut value: serde_json::Value = serde_json::from_str(r#"{"a":["xy",{"b":"zz"}]}"#).unwrap();
        scrub(&mut value);
        assert_eq!(value.to_string(), r#"{"a":["",{"b":""}]}"#);
    }
}
