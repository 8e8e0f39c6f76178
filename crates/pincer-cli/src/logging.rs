//! The gateway's logging: stderr (coloured only on a terminal) and the log file
//! (`logging.file`, rotated by size, never coloured) in JSON lines or text.
//!
//! JSON lines carry `time`, `level`, `subsystem` (the tracing target) and `message`, then the
//! event's fields: the keys OpenClaw's `parseLogLine` reads, so the stock `openclaw logs` shows
//! Pincer's lines as it shows its own. tracing-subscriber's JSON formatter nests the message under
//! `fields` and spells levels in capitals, which `openclaw logs` would print as raw JSON.

use std::fmt::Write as _;

use pincer_core::StatePaths;
use pincer_core::config::{LogFileFormat, LoggingConfig};
use pincer_core::logfile::LogFile;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. An unwritable log file is an error that names the path and the
/// key to change, rather than a gateway that silently logs nowhere.
pub fn init(logging: &LoggingConfig, paths: &StatePaths) -> anyhow::Result<Option<LogFile>> {
    let (source, filter) = match std::env::var("PINCER_LOG").ok().filter(|v| !v.is_empty()) {
        Some(v) => ("PINCER_LOG", v),
        None => ("logging.level", logging.level.clone()),
    };
    check_log_filter(&filter).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    let ansi = colour(std::io::IsTerminal::is_terminal(&std::io::stderr()), std::env::var_os("NO_COLOR").as_deref());
    let console =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi).boxed();
    let file = match logging.file_path(paths) {
        None => None,
        Some(path) => Some(LogFile::open(&path, logging.max_file_bytes, logging.max_files).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the log file {e}: set logging.file to a writable path (or \"\" for no file) in {}",
                paths.config_path.display()
            )
        })?),
    };
    let file_layer = file.clone().map(|f| file_layer(f, logging.file_format));
    tracing_subscriber::registry().with(filter).with(console).with(file_layer).init();
    Ok(file)
}

/// The layer that writes `file` in `format`, never with ANSI escapes.
pub fn file_layer<S>(file: LogFile, format: LogFileFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    match format {
        LogFileFormat::Json => JsonLines { file }.boxed(),
        LogFileFormat::Text => {
            tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || file.clone()).boxed()
        }
    }
}

/// One JSON object a line, in OpenClaw's file-log keys.
struct JsonLines {
    file: LogFile,
}

impl<S: tracing::Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut record = Map::new();
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        record.insert("time".into(), time.into());
        record.insert("level".into(), meta.level().as_str().to_ascii_lowercase().into());
        record.insert("subsystem".into(), meta.target().into());
        record.insert("message".into(), Value::String(String::new()));
        event.record(&mut Fields(&mut record));
        let mut line = Value::Object(record).to_string();
        line.push('\n');
        self.file.append(line.as_bytes());
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        // A field named like one of the record's own keys must not replace it.
        let name = match field.name() {
            "time" | "level" | "subsystem" => format!("field.{}", field.name()),
            n => n.to_string(),
        };
        self.0.insert(name, value);
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, s.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}

/// `EnvFilter` reads a bare word as a target name, so a misspelt level (`"inf"`) would silently
/// log nothing; every bare directive must be a level.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !directive.contains('[') && !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{directive}` is not a log level (use off, error, warn, info, debug or trace, or target=level such as pincer_cron=debug)"
            ));
        }
    }
    Ok(())
}

/// Colour (ANSI escapes) only on a terminal, and never when `NO_COLOR` is set to anything
/// non-empty (no-color.org): a log redirected to a file or a journal stays plain text.
fn colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    /// Both formats through a real subscriber: a message carrying an escape sequence reaches the
    /// file with no ESC byte, and JSON lines have the keys `openclaw logs` reads.
    #[test]
    fn the_file_gets_no_ansi_escapes_in_either_format() {
        for format in [LogFileFormat::Json, LogFileFormat::Text] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pincer.log");
            let file = LogFile::open(&path, 1 << 20, 1).unwrap();
            let subscriber = tracing_subscriber::registry().with(file_layer(file, format));
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(job = "disk", attempts = 3u64, "red \u{1b}[31malert\u{1b}[0m");
            });
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains('\u{1b}'), "{format:?}: {text:?}");
            assert_eq!(text.lines().count(), 1, "{format:?}: {text:?}");
            match format {
                LogFileFormat::Json => {
                    let v: Value = serde_json::from_str(text.trim()).unwrap();
                    assert_eq!(v["level"], "warn");
                    assert_eq!(v["subsystem"], module_path!());
                    assert_eq!(v["message"], "red \u{1b}[31malert\u{1b}[0m");
                    assert_eq!((v["job"].as_str(), v["attempts"].as_u64()), (Some("disk"), Some(3)));
                    assert!(v["time"].as_str().unwrap().ends_with('Z'));
                }
                LogFileFormat::Text => {
                    assert!(
                        text.contains(" WARN ") && text.contains("alert") && text.contains("job=\"disk\""),
                        "{text}"
                    );
                }
            }
        }
    }
}
