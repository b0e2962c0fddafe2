//! Templates: any source is refused (78) or rendered; the first pass finds
//! the reads it needs, the second renders with those reads (every field
//! present) and fails only with a config (78) or missing-secret (65) error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinit::render::{Fetched, TemplateText};
use vinit::secret::SecretData;

fuzz_target!(|source: &str| {
    let Ok(text) = TemplateText::new("/run/secrets/fuzz".into(), source.into()) else {
        return;
    };
    let Ok(needs) = text.needs() else {
        return;
    };
    let data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"password":"hunter22","n":5,"list":["a","b"],"nested":{"k":"v"}}"#)
            .expect("fixed JSON");
    let mut fetched = Fetched::default();
    for read in needs.reads {
        fetched.reads.insert(read, SecretData::new(data.clone()));
    }
    for name in needs.issues {
        fetched.issues.insert(name, SecretData::new(data.clone()));
    }
    if let Err(err) = text.render(&fetched) {
        assert!(
            matches!(err.exit_code(), 65 | 78),
            "exit {}: {err}",
            err.exit_code()
        );
    }
});
