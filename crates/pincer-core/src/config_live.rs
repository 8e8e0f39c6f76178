//! What a configuration edit changes for a running gateway: which key paths differ, which of
//! them apply live (channels, delivery limits, models, tools, MCP servers) and which wait for a
//! restart (the port, the bind address, auth, cron, logging); and the redaction that keeps every secret out of
//! anything the gateway or `pincer config get` shows.

use std::path::Path;

use pincer_protocol::schema::config::{ConfigIssue, ConfigSnapshot};
use serde_json::{Map, Value};

use crate::Config;
use crate::config::Env;

/// Sections a running gateway applies without a restart: the channel adapters and delivery
/// limits (the outbox's lineup), the model providers with the default model (the router), the
/// tool policy and settings (the toolbox) and the MCP servers.
pub const LIVE_KEYS: &[&str] = &["channels", "delivery", "models", "agents.defaults.model", "tools", "mcp"];

/// What stands in for a secret: OpenClaw's own marker, so its clients recognise it.
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// Leaf key paths whose values differ between `old` and `new` (defaults filled in), in key
/// order. A key present on one side only is reported at that key.
pub fn changed_paths(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (serde_json::to_value(old).unwrap_or_default(), serde_json::to_value(new).unwrap_or_default());
    let mut out = Vec::new();
    diff(&a, &b, &mut String::new(), &mut out);
    out
}

fn diff(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match (x.get(key), y.get(key)) {
                    (Some(u), Some(v)) => diff(u, v, path, out),
                    _ => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        _ if a != b => out.push(path.clone()),
        _ => {}
    }
}

/// Whether `path` lies in one of the [`LIVE_KEYS`] sections.
pub fn is_live(path: &str) -> bool {
    LIVE_KEYS.iter().any(|k| path == *k || path.strip_prefix(k).is_some_and(|rest| rest.starts_with('.')))
}

/// The changed paths a running gateway cannot apply.
pub fn needs_restart(changed: &[String]) -> Vec<String> {
    changed.iter().filter(|p| !is_live(p)).cloned().collect()
}

/// `running` with the live sections taken from `next`: what a gateway runs with after a reload.
pub fn apply_live(running: &Config, next: &Config) -> Config {
    let mut out = running.clone();
    out.channels = next.channels.clone();
    out.delivery = next.delivery.clone();
    out.models = next.models.clone();
    out.agents.defaults.model = next.agents.defaults.model.clone();
    out.tools = next.tools.clone();
    out.mcp = next.mcp.clone();
    out
}

/// Whether a key names a secret: tokens, API keys, passwords, secrets, and every value under
/// `headers` (they carry `Authorization`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "apikey", "api_key", "password", "secret"].iter().any(|s| k.contains(s))
}

/// `value` with every secret string replaced by [`REDACTED`] (see [`is_secret_key`]).
pub fn redact(value: &Value) -> Value {
    redact_in(value, false)
}

fn redact_in(value: &Value, secret: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_in(v, secret || is_secret_key(k) || k == "headers" || k == "env")))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_in(v, secret)).collect()),
        Value::String(s) if secret && !s.is_empty() => Value::String(REDACTED.into()),
        other => other.clone(),
    }
}

/// Every secret string in `value` (see [`is_secret_key`]), longest first: what must not appear
/// in text shown to a client.
pub fn secrets(value: &Value) -> Vec<String> {
    fn walk(value: &Value, secret: bool, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, secret || is_secret_key(k) || k == "headers" || k == "env", out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, secret, out)),
            Value::String(s) if secret && !s.is_empty() => out.push(s.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, false, &mut out);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `text` (a config file) with every literal secret replaced by [`REDACTED`]; `${NAME}`
/// references are not secrets and stay.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.starts_with("${")) {
        out = out.replace(s.as_str(), REDACTED);
    }
    out
}

/// `path` as OpenClaw's `config.get` shows it, every secret redacted. `running` is the
/// configuration in force (shown as `config` when the file does not check, and its secrets are
/// kept out of `raw` too); `hash` is the file's SHA-256, computed by the caller.
pub fn snapshot(path: &Path, env: Env, running: Option<&Config>, hash: impl Fn(&str) -> String) -> ConfigSnapshot {
    let text = std::fs::read_to_string(path).ok();
    let mut issues = Vec::new();
    let parsed = text.as_deref().map(Config::read_value);
    let resolved = text.as_deref().map(|t| Config::resolve_value(t, env));
    let checked = match &text {
        Some(t) => Config::parse(t, env).map(Some),
        None => Ok(None),
    };
    let config = match checked {
        Ok(Some(config)) => Some(config),
        Ok(None) => Some(Config::default()),
        Err(message) => {
            issues.push(issue(&message));
            None
        }
    };
    let mut hidden = Vec::new();
    if let Some(Ok(v)) = &parsed {
        hidden.extend(secrets(v));
    }
    if let Some(Ok(v)) = &resolved {
        hidden.extend(secrets(v));
    }
    if let Some(r) = running {
        hidden.extend(secrets(&serde_json::to_value(r).unwrap_or_default()));
    }
    hidden.sort_by_key(|s| std::cmp::Reverse(s.len()));
    hidden.dedup();
    // A file that does not read as JSON5 has no known secrets: its text is not shown at all.
    let raw = match (&text, &parsed) {
        (Some(t), Some(Ok(_))) => Some(redact_text(t, &hidden)),
        _ => None,
    };
    let shown = config.as_ref().or(running).map(|c| redact(&serde_json::to_value(c).unwrap_or_default()));
    ConfigSnapshot {
        path: path.display().to_string(),
        exists: text.is_some(),
        raw,
        parsed: parsed.and_then(Result::ok).map(|v| redact(&v)).unwrap_or(Value::Object(Map::new())),
        resolved: resolved.and_then(Result::ok).map(|v| redact(&v)).unwrap_or(Value::Object(Map::new())),
        valid: config.is_some(),
        config: shown.unwrap_or(Value::Object(Map::new())),
        hash: text.as_deref().map(hash),
        issues,
        warnings: Vec::new(),
        legacy_issues: Vec::new(),
        extra: Map::new(),
    }
}

/// A parse error (`key.path: what`) as an issue.
fn issue(message: &str) -> ConfigIssue {
    match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => ConfigIssue { path: path.into(), message: rest.into() },
        _ => ConfigIssue { path: String::new(), message: message.into() },
    }
}

/// The configuration's JSON Schema (from the same types the parser uses) and OpenClaw's
/// `uiHints`: each secret's path (`*` for a map key) marked `sensitive`.
pub fn schema() -> (Value, Map<String, Value>) {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
    let mut hints = Map::new();
    let defs = schema.get("$defs").cloned().unwrap_or_default();
    sensitive_paths(&schema, &defs, &mut String::new(), &mut hints, 0);
    (schema, hints)
}

fn sensitive_paths(node: &Value, defs: &Value, path: &mut String, hints: &mut Map<String, Value>, depth: usize) {
    if depth > 16 {
        return;
    }
    let node = match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => defs.get(name).unwrap_or(node),
        None => node,
    };
    for key in ["anyOf", "oneOf", "allOf"] {
        for alt in node.get(key).and_then(Value::as_array).into_iter().flatten() {
            sensitive_paths(alt, defs, path, hints, depth + 1);
        }
    }
    let mut child = |key: &str, sub: &Value, secret: bool, hints: &mut Map<String, Value>| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        if secret {
            hints.insert(path.clone(), serde_json::json!({ "sensitive": true }));
        } else {
            sensitive_paths(sub, defs, path, hints, depth + 1);
        }
        path.truncate(len);
    };
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (key, sub) in props {
            child(key, sub, is_secret_key(key) || key == "headers" || key == "env", hints);
        }
    }
    if let Some(sub) = node.get("additionalProperties").filter(|v| v.is_object()) {
        child("*", sub, false, hints);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn parse(text: &str) -> Config {
        Config::parse(text, &|_: &str| None).unwrap()
    }

    #[test]
    fn changes_are_split_into_live_and_restart() {
        let old = parse("{gateway: {port: 1000, auth: {token: 'a'}}}");
        let new = parse(
            "{gateway: {port: 2000, auth: {token: 'a'}}, channels: {telegram: {botToken: 'x'}},
              delivery: {maxAttempts: 3}, agents: {defaults: {model: {primary: 'p/m'}, timezone: 'UTC'}},
              tools: {exec: {mode: 'full'}}, mcp: {servers: {s: {command: 'srv'}}}}",
        );
        let changed = changed_paths(&old, &new);
        expect![[r#"["agents.defaults.model.primary", "agents.defaults.timezone", "channels.telegram", "delivery.maxAttempts", "gateway.port", "mcp.servers.s", "tools.exec.mode"]"#]]
            .assert_eq(&format!("{changed:?}"));
        expect![[r#"["agents.defaults.timezone", "gateway.port"]"#]]
            .assert_eq(&format!("{:?}", needs_restart(&changed)));
        let live = apply_live(&old, &new);
        assert_eq!((live.gateway.port, live.delivery.max_attempts), (1000, 3));
        assert!(live.channels.telegram.is_some() && live.agents.defaults.timezone.is_none());
        assert!(live.tools == new.tools && live.mcp == new.mcp);
        assert!(changed_paths(&old, &old).is_empty());
    }

    #[test]
    fn secrets_never_survive_redaction() {
        let config = parse(
            "{gateway: {auth: {token: 'gw-secret'}}, channels: {telegram: {botToken: 'tg-secret'}},
              models: {providers: {p: {api: 'openai-completions', baseUrl: 'http://x', apiKey: 'sk-secret',
              headers: {Authorization: 'Bearer hdr-secret'}}}}, cron: {webhookToken: 'wh-secret'}}",
        );
        let value = serde_json::to_value(&config).unwrap();
        let shown = redact(&value).to_string();
        for s in ["gw-secret", "tg-secret", "sk-secret", "hdr-secret", "wh-secret"] {
            assert!(!shown.contains(s), "{s} leaked: {shown}");
        }
        assert!(shown.contains("http://x") && shown.contains(REDACTED));
        let text = "{channels: {telegram: {botToken: 'tg-secret'}}, models: {x: '${KEY}'}}";
        expect![[r#"{channels: {telegram: {botToken: '__OPENCLAW_REDACTED__'}}, models: {x: '${KEY}'}}"#]]
            .assert_eq(&redact_text(text, &secrets(&value)));
    }

    #[test]
    fn snapshot_shows_the_file_without_a_single_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pincer.json");
        let env = |n: &str| (n == "TG").then(|| "tg-from-env".to_string());
        std::fs::write(&path, "{gateway: {auth: {token: 'gw-secret-1'}}, channels: {telegram: {botToken: '${TG}'}}}")
            .unwrap();
        let snap = snapshot(&path, &env, None, |_| "h".into());
        let shown = serde_json::to_string(&snap).unwrap();
        assert!(!shown.contains("gw-secret-1") && !shown.contains("tg-from-env"), "{shown}");
        assert!(snap.valid && snap.raw.as_deref().unwrap().contains("${TG}"), "{shown}");
        assert_eq!(snap.config["gateway"]["port"], 18789, "defaults filled in");
        // Invalid: the reason with its key path; the running configuration shown, redacted.
        std::fs::write(&path, "{gateway: {auth: {token: 'gw-secret-2'}}, cron: {maxConcurrentRuns: 0}}").unwrap();
        let running = Config::parse("{gateway: {auth: {token: 'gw-secret-1'}}}", &env).unwrap();
        let snap = snapshot(&path, &env, Some(&running), |_| "h".into());
        let shown = serde_json::to_string(&snap).unwrap();
        assert!(!shown.contains("gw-secret"), "{shown}");
        assert!(!snap.valid);
        expect![[r#"[ConfigIssue { path: "cron.maxConcurrentRuns", message: "must be at least 1" }]"#]]
            .assert_eq(&format!("{:?}", snap.issues));
        // Not JSON5 at all: no text is shown, since its secrets cannot be found.
        std::fs::write(&path, "{gateway: {auth: {token: 'gw-secret-3'").unwrap();
        let snap = snapshot(&path, &env, None, |_| "h".into());
        assert!(snap.raw.is_none() && !serde_json::to_string(&snap).unwrap().contains("gw-secret-3"));
    }

    #[test]
    fn schema_marks_every_secret_sensitive() {
        let (schema, hints) = schema();
        assert!(schema["properties"]["gateway"].is_object(), "{schema}");
        let mut paths: Vec<&String> = hints.keys().collect();
        paths.sort();
        expect![[r#"["channels.discord.token", "channels.slack.appToken", "channels.slack.botToken", "channels.telegram.botToken", "channels.telegram.webhookSecret", "cron.webhookToken", "gateway.auth.token", "mcp.servers.*.env", "mcp.servers.*.headers", "models.providers.*.apiKey", "models.providers.*.headers", "tools.web.search.apiKey"]"#]]
            .assert_eq(&format!("{paths:?}"));
    }
}
