//! vinit's own log lines: stderr only, quiet by default (warnings and
//! errors), `VINIT_LOG` for the level and `VINIT_LOG_FORMAT` for text or one
//! JSON object per line. It formats what it is given and never receives a
//! secret value: callers log names, paths and pids only.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::error::Error;
use crate::settings::Environment;

pub use tracing::level_filters::LevelFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub level: LevelFilter,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: LevelFilter::WARN,
            format: LogFormat::Text,
        }
    }
}

impl LogSettings {
    pub fn from_env(env: &Environment) -> Result<Self, Error> {
        let mut settings = LogSettings::default();
        if let Some(text) = env.text("VINIT_LOG")? {
            settings.level = match text.trim().to_ascii_lowercase().as_str() {
                "error" => LevelFilter::ERROR,
                "warn" | "warning" => LevelFilter::WARN,
                "info" => LevelFilter::INFO,
                "debug" => LevelFilter::DEBUG,
                "trace" => LevelFilter::TRACE,
                _ => {
                    return Err(Error::usage(format!(
                        "VINIT_LOG: \"{text}\" is not a level (error, warn, info, debug, trace)"
                    )))
                }
            };
        }
        if let Some(text) = env.text("VINIT_LOG_FORMAT")? {
            settings.format = match text.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(Error::usage(format!(
                        "VINIT_LOG_FORMAT: \"{text}\" is not text or json"
                    )))
                }
            };
        }
        Ok(settings)
    }
}

/// Installs the global subscriber. Called once, first thing.
pub fn init(settings: LogSettings) {
    // Fails only when a subscriber exists already; keep that one.
    let _ = tracing::subscriber::set_global_default(Stderr(settings));
}

/// The subscriber: one line per event on stderr, nothing kept in between.
/// Written here rather than taken from tracing-subscriber, whose span
/// registry and formatting layers vinit does not use (measured: 40 KB of
/// the 3 MB budget). vinit opens no spans; events are all it logs.
struct Stderr(LogSettings);

impl Subscriber for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.0.level
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0.level)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = *event.metadata().level();
        let line = match self.0.format {
            LogFormat::Text => plain_line(level, &message.0),
            LogFormat::Json => json_line(std::time::SystemTime::now(), level, &message.0),
        };
        // One write per line, so lines from vinit never interleave mid-line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Collects an event's fields: the message, then any `name=value`.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// `vinit: message` for errors, `vinit: warning: message` and so on below:
/// the shape of a Unix tool's complaints, no timestamp (the runtime adds one).
fn plain_line(level: Level, message: &str) -> String {
    let prefix = match level {
        Level::ERROR => "",
        Level::WARN => "warning: ",
        Level::INFO => "info: ",
        Level::DEBUG => "debug: ",
        Level::TRACE => "trace: ",
    };
    format!("vinit: {prefix}{message}\n")
}

/// `{"timestamp":"2026-12-01T21:17:46.421948Z","level":"WARN","message":"..."}`
fn json_line(now: std::time::SystemTime, level: Level, message: &str) -> String {
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (seconds, micros) = (since.as_secs(), since.subsec_micros());
    let (year, month, day) = civil_date(seconds / 86_400);
    let of_day = seconds % 86_400;
    let message = serde_json::Value::String(message.to_string());
    format!(
        "{{\"timestamp\":\"{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z\",\"level\":\"{level}\",\"message\":{message}}}\n",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// The Gregorian (year, month, day) of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_environment() {
        let env = Environment::from_pairs(&[("VINIT_LOG", "debug"), ("VINIT_LOG_FORMAT", "json")]);
        let settings = LogSettings::from_env(&env).unwrap();
        assert_eq!(settings.level, LevelFilter::DEBUG);
        assert_eq!(settings.format, LogFormat::Json);
        assert_eq!(
            LogSettings::from_env(&Environment::default()).unwrap(),
            LogSettings::default()
        );
    }

    #[test]
    fn lines_in_both_formats() {
        assert_eq!(plain_line(Level::ERROR, "x: broken"), "vinit: x: broken\n");
        assert_eq!(plain_line(Level::WARN, "careful"), "vinit: warning: careful\n");
        let at = std::time::UNIX_EPOCH + std::time::Duration::new(1_796_161_066, 421_948_000);
        let line = json_line(at, Level::WARN, "a \"quoted\" word");
        assert_eq!(
            line,
            "{\"timestamp\":\"2026-12-01T21:37:46.421948Z\",\"level\":\"WARN\",\"message\":\"a \\\"quoted\\\" word\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["message"], "a \"quoted\" word");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_788), (2026, 12, 1));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let env = Environment::from_pairs(&[("VINIT_LOG", "loud")]);
        assert!(LogSettings::from_env(&env)
            .unwrap_err()
            .to_string()
            .starts_with("VINIT_LOG: "));
        let env = Environment::from_pairs(&[("VINIT_LOG_FORMAT", "xml")]);
        assert!(LogSettings::from_env(&env)
            .unwrap_err()
            .to_string()
            .starts_with("VINIT_LOG_FORMAT: "));
    }
}
