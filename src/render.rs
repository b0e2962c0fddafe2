//! Pure rendering: secret values into environment values and into template
//! files. No I/O; every failure names the variable or template at fault and
//! never a value.
//!
//! Templates are Jinja (minijinja): `{{ secret("secret/data/app").db_password }}`,
//! `{{ secret("secret/data/app", version=2).db_password }}`,
//! `{{ issued("tls").certificate }}`. A template is rendered twice: first
//! with placeholders, only to learn which reads it needs (so that every read
//! is fetched in one batch, before anything is rendered), then with
//! the values. A missing key is an error, never an empty string.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Kwargs, Object, Value};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use crate::error::Error;
use crate::reference::{Piece, Read, Template};
use crate::secret::{SecretData, SecretString};

/// Everything fetched from Vault: read results by read, issue results by name.
/// `BTreeMap`s: an empty `HashMap` would cost a start without Vault a
/// `getrandom` call for its random keys.
#[derive(Default)]
pub struct Fetched {
    pub reads: BTreeMap<Read, SecretData>,
    pub issues: BTreeMap<String, SecretData>,
    pub token: Option<SecretString>,
}

/// Renders one environment value of variable `name`.
pub fn env_value(name: &str, template: &Template, fetched: &Fetched) -> Result<SecretString, Error> {
    let mut out = String::new();
    for piece in &template.pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Login => {
                let token = fetched
                    .token
                    .as_ref()
                    .ok_or_else(|| Error::config(format!("{name}: vault:login needs a Vault login")))?;
                out.push_str(token.expose());
            }
            Piece::Field(field) => {
                let data = fetched
                    .reads
                    .get(&field.read)
                    .ok_or_else(|| Error::NoSecret(format!("{name}: {} was not read", field.read)))?;
                let value = data
                    .field(&field.key)
                    .ok_or_else(|| missing_key(name, &field.read, &field.key, data))?;
                out.push_str(value.expose());
            }
        }
    }
    Ok(SecretString::new(out))
}

/// `vinit: DB_PASSWORD: secret/data/app has no key "db_pasword" (it has: api_key, db_password)`
pub fn missing_key(context: &str, read: &Read, key: &str, data: &SecretData) -> Error {
    let keys = data.keys();
    let has = if keys.is_empty() {
        "it has no keys".to_string()
    } else {
        format!("it has: {}", keys.join(", "))
    };
    Error::NoSecret(format!("{context}: {read} has no key \"{key}\" ({has})"))
}

/// What a template needs from Vault.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    pub reads: BTreeSet<Read>,
    pub issues: BTreeSet<String>,
}

/// A template's source, checked for syntax.
pub struct TemplateText {
    /// Where it renders to, for messages.
    pub label: String,
    source: String,
}

impl TemplateText {
    /// Parses once to report syntax errors (78) with their line.
    pub fn new(label: String, source: String) -> Result<Self, Error> {
        let env = environment(UndefinedBehavior::Lenient);
        env.template_from_str(&source)
            .map_err(|err| Error::config(format!("template {label}: {}", describe(&err))))?;
        Ok(TemplateText { label, source })
    }

    /// The reads and issues the template asks for (first pass, placeholders).
    pub fn needs(&self) -> Result<Needs, Error> {
        let recorder = Arc::new(Mutex::new(Needs::default()));
        let mut env = environment(UndefinedBehavior::Lenient);
        let reads = recorder.clone();
        env.add_function(
            "secret",
            move |path: String, kwargs: Kwargs| -> Result<Value, minijinja::Error> {
                let read = read_from(path, &kwargs)?;
                if let Ok(mut needs) = reads.lock() {
                    needs.reads.insert(read);
                }
                Ok(Value::from_object(Placeholder))
            },
        );
        let issues = recorder.clone();
        env.add_function("issued", move |name: String| -> Value {
            if let Ok(mut needs) = issues.lock() {
                needs.issues.insert(name);
            }
            Value::from_object(Placeholder)
        });
        let template = env
            .template_from_str(&self.source)
            .map_err(|err| Error::config(format!("template {}: {}", self.label, describe(&err))))?;
        // Errors in this pass come from placeholders (e.g. arithmetic on
        // them); the real pass reports real ones.
        let _ = template.render(());
        let needs = recorder.lock().map(|n| n.clone()).unwrap_or_default();
        Ok(needs)
    }

    /// Renders with the fetched values.
    pub fn render(&self, fetched: &Fetched) -> Result<SecretString, Error> {
        let misses: Arc<Mutex<Vec<Error>>> = Arc::default();
        let mut env = environment(UndefinedBehavior::Strict);
        let label = self.label.clone();
        let values: Arc<HashMap<Read, Arc<Fields>>> = Arc::new(
            fetched
                .reads
                .iter()
                .map(|(read, data)| (read.clone(), Arc::new(Fields::new(data))))
                .collect(),
        );
        let issues: Arc<HashMap<String, Arc<Fields>>> = Arc::new(
            fetched
                .issues
                .iter()
                .map(|(name, data)| (name.clone(), Arc::new(Fields::new(data))))
                .collect(),
        );
        let secret_misses = misses.clone();
        let secret_label = label.clone();
        env.add_function(
            "secret",
            move |path: String, kwargs: Kwargs| -> Result<Value, minijinja::Error> {
                let read = read_from(path, &kwargs)?;
                let fields = values.get(&read).cloned().ok_or_else(|| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, format!("{read} was not read"))
                })?;
                Ok(Value::from_object(Lookup {
                    context: format!("template {secret_label}"),
                    read,
                    fields,
                    misses: secret_misses.clone(),
                }))
            },
        );
        let issue_misses = misses.clone();
        let issue_label = label.clone();
        env.add_function("issued", move |name: String| -> Result<Value, minijinja::Error> {
            let fields = issues.get(&name).cloned().ok_or_else(|| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("issued(\"{name}\"): no [[issue]] is named \"{name}\""),
                )
            })?;
            Ok(Value::from_object(Lookup {
                context: format!("template {issue_label}"),
                read: Read {
                    path: format!("issue \"{name}\""),
                    version: None,
                },
                fields,
                misses: issue_misses.clone(),
            }))
        });
        let template = env
            .template_from_str(&self.source)
            .map_err(|err| Error::config(format!("template {label}: {}", describe(&err))))?;
        match template.render(()) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(err) => {
                if let Some(miss) = misses.lock().ok().and_then(|mut m| m.drain(..).next()) {
                    return Err(miss);
                }
                Err(Error::config(format!("template {label}: {}", describe(&err))))
            }
        }
    }
}

fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_keep_trailing_newline(true);
    filters::register(&mut env);
    env
}

/// The filters secrets templates need, registered by hand because
/// minijinja's full `builtins` set costs 262 KB of a 3 MB binary.
mod filters {
    use minijinja::value::Value;
    use minijinja::{Environment, Error, ErrorKind};

    pub fn register(env: &mut Environment<'static>) {
        env.add_filter("indent", indent);
        env.add_filter("tojson", tojson);
        env.add_filter("trim", |text: String| text.trim().to_string());
        env.add_filter("upper", |text: String| text.to_uppercase());
        env.add_filter("lower", |text: String| text.to_lowercase());
        env.add_filter("replace", |text: String, from: String, to: String| {
            text.replace(&from, &to)
        });
        env.add_filter("join", join);
    }

    /// `{{ cert | indent(4) }}`: every line but the first indented by
    /// `width` spaces (PEM blocks inside YAML).
    fn indent(text: String, width: usize) -> String {
        let pad = " ".repeat(width);
        let mut out = String::new();
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
                if !line.is_empty() {
                    out.push_str(&pad);
                }
            }
            out.push_str(line);
        }
        out
    }

    /// `{{ password | tojson }}`: a JSON literal, quotes and escapes included.
    fn tojson(value: Value) -> Result<Value, Error> {
        let json = serde_json::to_string(&value)
            .map_err(|err| Error::new(ErrorKind::InvalidOperation, format!("tojson: {err}")))?;
        Ok(Value::from_safe_string(json))
    }

    /// `{{ issued("tls").ca_chain | join("\n") }}`.
    fn join(value: Value, separator: Option<String>) -> Result<String, Error> {
        let items = value.try_iter()?;
        Ok(items
            .map(|item| item.to_string())
            .collect::<Vec<_>>()
            .join(separator.as_deref().unwrap_or("")))
    }
}

fn read_from(path: String, kwargs: &Kwargs) -> Result<Read, minijinja::Error> {
    let version: Option<u64> = kwargs.get("version")?;
    kwargs.assert_all_used()?;
    Ok(Read {
        path: path.trim_start_matches('/').to_string(),
        version,
    })
}

/// A template error in one line, with its line number.
fn describe(err: &minijinja::Error) -> String {
    let mut text = err
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| err.kind().to_string());
    if let Some(line) = err.line() {
        text = format!("line {line}: {text}");
    }
    text
}

/// Stands in for a secret during the first pass: every field is "".
#[derive(Debug)]
struct Placeholder;

impl Object for Placeholder {
    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from(""))
    }
}

/// The fields of one read, as template values. minijinja keeps its own
/// copies of strings; they live only while the template renders.
struct Fields {
    values: Vec<(String, Value)>,
}

impl Fields {
    fn new(data: &SecretData) -> Self {
        Fields {
            values: data
                .as_map()
                .iter()
                .map(|(k, v)| (k.clone(), Value::from_serialize(v)))
                .collect(),
        }
    }
}

/// `secret(...)` / `issued(...)` in the real pass: fields by name; a
/// missing one is recorded so the error names path and key.
struct Lookup {
    context: String,
    read: Read,
    fields: Arc<Fields>,
    misses: Arc<Mutex<Vec<Error>>>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<secret {}>", self.read)
    }
}

impl Object for Lookup {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let found = self
            .fields
            .values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        if found.is_none() {
            let keys: Vec<String> = self.fields.values.iter().map(|(k, _)| k.clone()).collect();
            let mut sorted = keys;
            sorted.sort();
            let has = if sorted.is_empty() {
                "it has no keys".into()
            } else {
                format!("it has: {}", sorted.join(", "))
            };
            if let Ok(mut misses) = self.misses.lock() {
                misses.push(Error::NoSecret(format!(
                    "{}: {} has no key \"{name}\" ({has})",
                    self.context, self.read
                )));
            }
        }
        found
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.fields
                .values
                .iter()
                .map(|(k, _)| Value::from(k.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> SecretData {
        SecretData::new(serde_json::from_str(json).unwrap())
    }

    fn read(path: &str, version: Option<u64>) -> Read {
        Read {
            path: path.into(),
            version,
        }
    }

    fn fetched() -> Fetched {
        let mut fetched = Fetched::default();
        fetched.reads.insert(
            read("secret/data/app", None),
            data(r#"{"db_password":"pw","api_key":"k"}"#),
        );
        fetched
            .reads
            .insert(read("secret/data/app", Some(1)), data(r#"{"db_password":"old"}"#));
        fetched.issues.insert(
            "tls".into(),
            data(r#"{"certificate":"CERT","private_key":"KEY"}"#),
        );
        fetched.token = Some(SecretString::from("s.token"));
        fetched
    }

    #[test]
    fn env_values_render_and_name_missing_keys() {
        let template = crate::reference::parse("x=${vault:secret/data/app#db_password};t=${vault:login}")
            .unwrap()
            .unwrap();
        assert_eq!(
            env_value("V", &template, &fetched()).unwrap().expose(),
            "x=pw;t=s.token"
        );
        let template = crate::reference::parse("vault:secret/data/app#db_pasword")
            .unwrap()
            .unwrap();
        let err = env_value("DB_PASSWORD", &template, &fetched()).unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert_eq!(
            err.to_string(),
            "DB_PASSWORD: secret/data/app has no key \"db_pasword\" (it has: api_key, db_password)"
        );
    }

    #[test]
    fn templates_declare_their_reads() {
        let text = TemplateText::new(
            "/run/x".into(),
            "{{ secret('secret/data/app').db_password }} {{ secret('secret/data/app', version=1).db_password }} \
             {{ issued('tls').certificate }}{% for k in secret('kv/other') %}{{k}}{% endfor %}"
                .into(),
        )
        .unwrap();
        let needs = text.needs().unwrap();
        assert_eq!(
            needs.reads.into_iter().collect::<Vec<_>>(),
            [
                read("kv/other", None),
                read("secret/data/app", None),
                read("secret/data/app", Some(1))
            ]
        );
        assert_eq!(needs.issues.into_iter().collect::<Vec<_>>(), ["tls"]);
    }

    #[test]
    fn templates_render_values() {
        let text = TemplateText::new(
            "/run/x".into(),
            "pw={{ secret('secret/data/app').db_password }}\nold={{ secret('secret/data/app', version=1).db_password }}\n\
             cert={{ issued('tls').certificate }}\n"
                .into(),
        )
        .unwrap();
        assert_eq!(
            text.render(&fetched()).unwrap().expose(),
            "pw=pw\nold=old\ncert=CERT\n"
        );
    }

    #[test]
    fn missing_key_in_a_template_is_65_with_names() {
        let text = TemplateText::new("/run/x".into(), "{{ secret('secret/data/app').nope }}".into()).unwrap();
        let err = text.render(&fetched()).unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert_eq!(
            err.to_string(),
            "template /run/x: secret/data/app has no key \"nope\" (it has: api_key, db_password)"
        );
    }

    #[test]
    fn filters_for_secrets_in_config_files() {
        let mut fetched = fetched();
        fetched.reads.insert(
            read("kv/x", None),
            data(r#"{"pem":"-----BEGIN-----\nAAA\n-----END-----","quote":"a\"b","list":["x","y"],"pad":"  p  "}"#),
        );
        let text = TemplateText::new(
            "/run/x".into(),
            "cert: |\n  {{ secret('kv/x').pem | indent(2) }}\njson: {{ secret('kv/x').quote | tojson }}\n\
             {{ secret('kv/x').list | join(',') }} {{ secret('kv/x').pad | trim | upper }} \
             {{ 'AbC' | lower | replace('b', 'B') }}"
                .into(),
        )
        .unwrap();
        assert_eq!(
            text.render(&fetched).unwrap().expose(),
            "cert: |\n  -----BEGIN-----\n  AAA\n  -----END-----\njson: \"a\\\"b\"\nx,y P aBc"
        );
    }

    #[test]
    fn syntax_errors_are_78_with_a_line() {
        let err = TemplateText::new("/run/x".into(), "ok\n{{ secret('a' }}".into())
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = TemplateText::new("/run/x".into(), "{{ unknown_thing.x }}".into())
            .unwrap()
            .render(&fetched())
            .unwrap_err();
        assert_eq!(err.exit_code(), 78);
    }
}
