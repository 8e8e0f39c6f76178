//! `pincer logs [-f] [--level L] [--json] [--lines N]`: the gateway's log file, read through the
//! gateway's `logs.tail` (cursor and all, as `openclaw logs` does), or straight from the file when
//! no gateway answers on this machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use pincer_core::config::process_env;
use pincer_core::redact::Redactor;
use pincer_core::{Config, StatePaths, logfile};
use pincer_protocol::Scope;
use pincer_protocol::schema::system::{LogsTail, LogsTailParams, LogsTailResult};
use serde_json::Value;

use crate::client::{Client, ClientError, ConnectArgs, Target};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new lines as the gateway writes them (checks every second; Ctrl-C stops).
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only lines at this level or more severe, e.g. --level warn.
    #[arg(long, value_parser = ["error", "warn", "info", "debug", "trace"])]
    level: Option<String>,
    /// How many of the newest lines to show first, e.g. --lines 50 (1..5000).
    #[arg(long, short = 'n', default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=5000))]
    lines: u64,
    /// Read the log file directly, without asking the gateway.
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    c: ConnectArgs,
}

/// Where the lines come from: the gateway, or the file itself.
enum Source {
    Gateway(Box<Client>),
    File(PathBuf, Box<Redactor>),
}

pub async fn run(args: LogsArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let mut source = if args.local { file_source(paths)? } else { connect(&args, paths).await? };
    let min = args.level.as_deref().map(severity);
    let mut cursor = None;
    let mut first = true;
    loop {
        let read = match &mut source {
            Source::Gateway(client) => {
                let params = LogsTailParams { cursor, limit: Some(args.lines), max_bytes: None };
                match client.call::<LogsTail>(&params).await {
                    Ok(read) => read,
                    // The gateway went away while following (a restart): go on with its file.
                    Err(ClientError::Closed(_) | ClientError::Timeout { .. }) if args.follow && cursor.is_some() => {
                        source = file_source(paths)?;
                        if let Source::File(file, _) = &source {
                            eprintln!("The gateway closed the connection; reading {} directly.", file.display());
                        }
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Source::File(path, redactor) => read_file(path, redactor, cursor, args.lines)?,
        };
        if first && !args.c.json {
            eprintln!("Log file: {}", read.file);
        }
        if read.reset && !first {
            eprintln!("(the log file was rotated; reading the new one from its start)");
        }
        let colour = !args.c.json && colour_on_stdout();
        for line in &read.lines {
            let record = serde_json::from_str::<Value>(line).ok().filter(Value::is_object);
            if let Some(min) = min
                && line_severity(record.as_ref(), line).is_some_and(|s| s > min)
            {
                continue;
            }
            match (&record, args.c.json) {
                (Some(_), true) => println!("{line}"),
                (None, true) => println!("{}", serde_json::json!({ "message": line })),
                (Some(r), false) => println!("{}", render(r, colour)),
                (None, false) => println!("{line}"),
            }
        }
        if first && read.truncated && !args.follow && !args.c.json {
            eprintln!("(older lines left out; raise --lines to see more)");
        }
        cursor = Some(read.cursor);
        first = false;
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The gateway when one answers; the file itself when none runs on this machine (and no `--url`
/// said where else to look).
async fn connect(args: &LogsArgs, paths: &StatePaths) -> anyhow::Result<Source> {
    let target = Target::resolve(&args.c, paths, &process_env);
    let error = match target {
        Ok(target) => match Client::connect(&target, &[Scope::Read]).await {
            Ok(client) => return Ok(Source::Gateway(Box::new(client))),
            Err(e) => e,
        },
        Err(e) => ClientError::Unreachable { url: "(none configured)".into(), reason: format!("{e:#}") },
    };
    let explicit = args.c.url.is_some() || std::env::var_os("PINCER_GATEWAY_URL").is_some();
    match error {
        ClientError::Unreachable { url, .. } if !explicit => {
            let source = file_source(paths)?;
            if !args.c.json {
                eprintln!("No gateway answers at {url}; reading the log file directly.");
            }
            Ok(source)
        }
        e => Err(e.into()),
    }
}

/// `logging.file` as this state directory's config sets it, read with that config's secrets masked.
fn file_source(paths: &StatePaths) -> anyhow::Result<Source> {
    let config = Config::load(&paths.config_path, &process_env)?;
    let file = config.logging.file_path(paths).ok_or_else(|| {
        anyhow::anyhow!("logging.file is \"\" in {}: the gateway writes no log file", paths.config_path.display())
    })?;
    Ok(Source::File(file, Box::new(Redactor::from_config(&config))))
}

fn read_file(
    path: &std::path::Path,
    redactor: &Redactor,
    cursor: Option<u64>,
    lines: u64,
) -> anyhow::Result<LogsTailResult> {
    logfile::tail_result(path, cursor, lines as usize, logfile::DEFAULT_MAX_BYTES, redactor)
        .map_err(|e| anyhow::anyhow!("cannot read the log file: {e}"))
}

/// 0 error … 4 trace.
fn severity(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "error" | "fatal" => 0,
        "warn" | "warning" => 1,
        "info" => 2,
        "debug" => 3,
        _ => 4,
    }
}

/// A JSON line's `level`, or a text line's level word (`2026-… WARN target: …`); `None` when the
/// line names none (it is shown whatever the filter).
fn line_severity(record: Option<&Value>, line: &str) -> Option<u8> {
    if let Some(level) = record.and_then(|r| r.get("level")).and_then(Value::as_str) {
        return Some(severity(level));
    }
    let word = line.split_whitespace().nth(1)?;
    ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&word).then(|| severity(word))
}

/// `time level subsystem: message key=value …`, the level coloured on a terminal.
fn render(r: &Value, colour: bool) -> String {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
    let level = s("level").to_ascii_uppercase();
    let painted = match (colour, level.as_str()) {
        (true, "ERROR") => format!("\x1b[31m{level:>5}\x1b[0m"),
        (true, "WARN") => format!("\x1b[33m{level:>5}\x1b[0m"),
        (true, "DEBUG" | "TRACE") => format!("\x1b[2m{level:>5}\x1b[0m"),
        _ => format!("{level:>5}"),
    };
    let mut out = format!("{} {painted} {}: {}", s("time"), s("subsystem"), s("message"));
    for (k, v) in r.as_object().into_iter().flatten() {
        if !matches!(k.as_str(), "time" | "level" | "subsystem" | "message") {
            match v {
                Value::String(text) => out.push_str(&format!(" {k}={text}")),
                other => out.push_str(&format!(" {k}={other}")),
            }
        }
    }
    out
}

fn colour_on_stdout() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_json_and_text_lines() {
        let json: Value = serde_json::from_str(r#"{"level":"debug","message":"x"}"#).unwrap();
        assert_eq!(line_severity(Some(&json), ""), Some(3));
        assert_eq!(line_severity(None, "2026-12-05T07:00:00.000000Z  WARN pincer_cron: late"), Some(1));
        assert_eq!(line_severity(None, "a line of its own"), None);
        let r: Value =
            serde_json::from_str(r#"{"time":"T","level":"warn","subsystem":"s","message":"m","job":"j","n":2}"#)
                .unwrap();
        assert_eq!(render(&r, false), "T  WARN s: m job=j n=2");
    }
}
