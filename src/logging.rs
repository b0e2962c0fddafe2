//! vinit's own log lines: stderr only, quiet by default (warnings and
//! errors), `VINIT_LOG` for the level and `VINIT_LOG_FORMAT` for text or one
//! JSON object per line. It formats what it is given and never receives a
//! secret value: callers log names, paths and pids only.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
    let builder = tracing_subscriber::fmt()
        .with_max_level(settings.level)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber exists already; keep that one.
    let _ = match settings.format {
        LogFormat::Text => builder.event_format(PlainText).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .try_init(),
    };
}

/// `vinit: message` for errors, `vinit: warning: message` and so on below:
/// the shape of a Unix tool's complaints, no timestamp (the runtime adds one).
struct PlainText;

impl<S, N> FormatEvent<S, N> for PlainText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "",
            Level::WARN => "warning: ",
            Level::INFO => "info: ",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        write!(writer, "vinit: {level}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
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
