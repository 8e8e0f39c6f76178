//! `pincer config get|set|validate|reload`: the config file, read and edited here with the same
//! checks the gateway makes (`pincer_gateway::reload::validate`); `reload` asks the running
//! gateway to apply it now rather than at its next look at the file.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use pincer_core::config::process_env;
use pincer_core::config_live::{is_secret_key, redact};
use pincer_core::{Config, StatePaths, SystemClock};
use pincer_protocol::Scope;
use pincer_protocol::schema::config::{ConfigReload, ConfigReloadParams};
use serde_json::{Map, Value};

use crate::client::{ConnectArgs, Target, call_once};
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration (defaults filled in) or one key of it; secrets are redacted.
    Get {
        /// A dotted key path such as `channels.telegram` or `gateway.port`; all of it when left out.
        key: Option<String>,
        /// Print tokens and API keys as they are instead of `__OPENCLAW_REDACTED__`.
        #[arg(long)]
        show_secrets: bool,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set one key in the config file; the result is checked as the gateway would before it is written.
    Set {
        /// A dotted key path such as `delivery.maxAttempts` or `channels.telegram.botToken`.
        key: String,
        /// The value, read as JSON5 (`3`, `true`, `{botToken: "${TG_TOKEN}"}`); anything else is a string.
        value: String,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the config file as the gateway would at start-up and on reload.
    Validate {
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the running gateway reread its config file now (it also does when the file changes, and on SIGHUP).
    Reload(ConnectArgs),
}

pub fn run_local(cmd: ConfigCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Get { key, show_secrets, json } => get(paths, key.as_deref(), show_secrets, json),
        ConfigCommand::Set { key, value, json } => set(paths, &key, &value, json),
        ConfigCommand::Validate { json } => validate(paths, json),
        ConfigCommand::Reload(_) => unreachable!("reload talks to the gateway"),
    }
}

/// The config file read and checked with the gateway's own checks.
pub fn load_checked(path: &Path) -> anyhow::Result<Config> {
    let config = Config::load(path, &process_env)?;
    pincer_gateway::reload::validate(&config, SystemClock::shared())
        .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
    Ok(config)
}

fn get(paths: &StatePaths, key: Option<&str>, show_secrets: bool, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(&paths.config_path, &process_env)?;
    let all = serde_json::to_value(&config)?;
    let value = match key {
        None => all,
        Some(key) => lookup(&all, key).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "{key} is not set in {} (see `pincer config get` for every key)",
                paths.config_path.display()
            )
        })?,
    };
    let secret_leaf = key.and_then(|k| k.rsplit('.').next()).is_some_and(is_secret_key);
    let value = match (show_secrets, secret_leaf, &value) {
        (true, _, _) => value,
        (false, true, Value::String(_)) => Value::String(pincer_core::config_live::REDACTED.into()),
        (false, _, _) => redact(&value),
    };
    match (&value, json) {
        (Value::String(s), false) => println!("{s}"),
        (_, false) => println!("{}", serde_json::to_string_pretty(&value)?),
        (_, true) => print_json(&value),
    }
    Ok(ExitCode::SUCCESS)
}

fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(value, |v, k| v.get(k))
}

fn set(paths: &StatePaths, key: &str, raw: &str, json: bool) -> anyhow::Result<ExitCode> {
    let path = &paths.config_path;
    if key.split('.').any(str::is_empty) {
        bail!("`{key}` is not a key path: use dotted names such as delivery.maxAttempts");
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut doc = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        Config::read_value(&text).map_err(|e| {
            anyhow::anyhow!("{} is {e}; fix it by hand first (`pincer config validate` says where)", path.display())
        })?
    };
    let value: Value = json5::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    put(&mut doc, key, value.clone())?;
    let next = render(&text, &doc);
    let config = Config::parse(&next, &process_env)
        .map_err(|e| anyhow::anyhow!("refused, {} is unchanged: {e}", path.display()))?;
    pincer_gateway::reload::validate(&config, SystemClock::shared())
        .map_err(|e| anyhow::anyhow!("refused, {} is unchanged: {e}", path.display()))?;
    write_private(path, &next)?;
    let shown =
        if is_secret_key(key.rsplit('.').next().unwrap_or(key)) { Value::from("(secret)") } else { redact(&value) };
    if json {
        print_json(&serde_json::json!({ "ok": true, "path": path.display().to_string(), "key": key, "value": shown }));
    } else {
        let shown = match &shown {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        println!("Set {key} = {shown} in {}.", path.display());
        println!(
            "A running gateway applies it within a second (channels, delivery, models) or at its next restart (the rest); `pincer health` says which."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets `key` (dotted) in `doc`, making the objects on the way.
fn put(doc: &mut Value, key: &str, value: Value) -> anyhow::Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("split yields one part");
    let mut at = doc;
    for (i, part) in parts.iter().enumerate() {
        let map = at
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("{} is not an object, so it has no key `{part}`", parts[..i].join(".")))?;
        at = map.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
    let map = at
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("{} is not an object, so it has no key `{last}`", parts.join(".")))?;
    map.insert(last.to_string(), value);
    Ok(())
}

/// The edited document as JSON (valid JSON5), in the file's key order, under the file's leading
/// comment lines; comments inside the object are not kept.
pub(crate) fn render(old: &str, doc: &Value) -> String {
    let header: String =
        old.lines().take_while(|l| l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    format!("{header}{}\n", serde_json::to_string_pretty(doc).expect("JSON serialises"))
}

/// Writes `text` to `path` (mode 0600) through a temporary file and a rename, so a gateway
/// watching it never reads half a file.
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("pincer.json")));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes()).and_then(|_| file.sync_all())?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn validate(paths: &StatePaths, json: bool) -> anyhow::Result<ExitCode> {
    let path = &paths.config_path;
    if !path.exists() {
        bail!(
            "{} does not exist: run `pincer setup` to write one, or `pincer gateway` to start with a default",
            path.display()
        );
    }
    load_checked(path)?;
    if json {
        print_json(&serde_json::json!({ "ok": true, "path": path.display().to_string() }));
    } else {
        println!("{} is valid.", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reload(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(args, paths, &process_env)?;
    let result = call_once::<ConfigReload>(&target, &[Scope::Admin], &ConfigReloadParams {}).await?;
    if args.json {
        print_json(&result);
        return Ok(ExitCode::SUCCESS);
    }
    match (result.changed, result.applied.is_empty()) {
        (false, _) => println!("The gateway already runs this configuration."),
        (true, true) => println!("Nothing the gateway can apply while running changed."),
        (true, false) => println!("Applied: {}.", result.applied.join(", ")),
    }
    if !result.restart_needed.is_empty() {
        println!("Waiting for a restart: {} (restart the gateway to apply them).", result.restart_needed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
