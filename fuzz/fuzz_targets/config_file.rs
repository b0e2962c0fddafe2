//! The config file: TOML text through parsing and validation (what
//! `ConfigFile::load` does after reading the file): an answer or a config
//! error (78) naming the file, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vinit::config_file::ConfigFile;

fuzz_target!(|text: &str| {
    let path = Path::new("/etc/vinit/vinit.toml");
    match ConfigFile::parse(text, path) {
        Ok(config) => {
            for template in &config.templates {
                assert!(
                    template.destination.is_absolute(),
                    "a relative destination survived"
                );
            }
        }
        Err(err) => {
            assert_eq!(err.exit_code(), 78);
            assert!(err.to_string().contains("/etc/vinit/vinit.toml"), "{err}");
        }
    }
});
