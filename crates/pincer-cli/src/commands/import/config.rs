//! OpenClaw's `openclaw.json` into `pincer.json`: the sections both systems share (`models`,
//! `channels`, `agents.defaults`, `session`, `tools`, `mcp`) are copied as the user wrote them —
//! a `${VAR}` stays a reference, a plain token stays plain, an env SecretRef becomes `${VAR}` —
//! and every key Pincer's schema does not take is left behind with the reason. Which keys Pincer
//! takes is decided by Pincer's own parser (`Config::parse`), not by a second list here, so the
//! import and the gateway can never disagree on what is valid.
//!
//! Merging into an existing `pincer.json` only adds: a key the user already set to another value
//! is kept (and reported) unless `--force`, so a second import changes nothing.

use pincer_core::config::Config;
use serde_json::{Map, Value};

/// Top-level OpenClaw keys Pincer shares.
const SHARED: &[&str] = &["models", "channels", "agents", "session", "tools", "mcp"];

/// Top-level OpenClaw keys Pincer does not share, and why.
const NOT_SHARED: &[(&str, &str)] = &[
    ("gateway", "Pincer's gateway keeps its own port, bind and token (pincer.json `gateway`); point clients at it"),
    ("plugins", "Pincer has no plugins"),
    ("skills", "Pincer reads skills from its workspace, not from config"),
    ("hooks", "Pincer has no hooks"),
    ("cron", "Pincer's cron settings are its own (cron.maxConcurrentRuns, cron.runRetention); the jobs are imported"),
    ("logging", "Pincer's logging keys differ (logging.file, logging.maxFileBytes)"),
    ("meta", "OpenClaw's own bookkeeping"),
    ("wizard", "OpenClaw's own bookkeeping"),
    ("update", "Pincer is upgraded with cargo, not by itself"),
];

/// The mapped config, what was carried and what was left behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigPlan {
    /// The shared sections in Pincer's shape (an object; empty when nothing maps).
    pub config: Value,
    /// Keys left behind: (dotted path, reason).
    pub left: Vec<(String, String)>,
    /// `${VAR}` names the copied values refer to: the gateway needs them set.
    pub env_refs: Vec<String>,
}

/// Maps OpenClaw's config (its JSON5 read as a value, nothing expanded). Pure.
pub fn plan(openclaw: &Value) -> ConfigPlan {
    let mut plan = ConfigPlan { config: Value::Object(Map::new()), ..ConfigPlan::default() };
    let Some(top) = openclaw.as_object() else {
        plan.left.push(("(the file)".into(), "not a JSON object".into()));
        return plan;
    };
    let mut out = Map::new();
    for (key, value) in top {
        if SHARED.contains(&key.as_str()) {
            out.insert(key.clone(), value.clone());
        } else if key.starts_with('$') {
            // `$schema` and friends: annotations, not settings.
        } else {
            let why = NOT_SHARED.iter().find(|(k, _)| k == key).map(|(_, why)| why.to_string());
            plan.left.push((key.clone(), why.unwrap_or_else(|| "Pincer has no such section".into())));
        }
    }
    let mut config = Value::Object(out);
    normalise(&mut config, &mut plan.left);
    secrets(&mut config, "", &mut plan.left);
    // Let Pincer's parser say what it refuses, one key at a time.
    for _ in 0..500 {
        let text = config.to_string();
        let err = match Config::parse(&text, &|_| Some("x".into())) {
            Ok(_) => break,
            Err(e) => e,
        };
        match refused_path(&err).filter(|path| remove(&mut config, path)) {
            Some(path) => {
                let why = if err.contains("unknown field") {
                    "Pincer has no such key".to_string()
                } else {
                    format!("Pincer refuses the value: {}", err.split_once(": ").map_or(err.as_str(), |(_, m)| m))
                };
                plan.left.push((path, why));
            }
            None => {
                plan.left.push(("(the shared sections)".into(), format!("Pincer refuses them: {err}")));
                config = Value::Object(Map::new());
                break;
            }
        }
    }
    prune_empty(&mut config);
    let mut refs = Vec::new();
    env_refs(&config, &mut refs);
    refs.sort();
    refs.dedup();
    plan.env_refs = refs;
    plan.config = config;
    plan.left.sort();
    plan
}

/// OpenClaw spellings Pincer takes in another shape.
fn normalise(config: &mut Value, left: &mut Vec<(String, String)>) {
    if let Some(agents) = config.get_mut("agents").and_then(Value::as_object_mut) {
        for key in agents.keys().filter(|k| *k != "defaults").cloned().collect::<Vec<_>>() {
            agents.remove(&key);
            let why = if key == "list" { "Pincer runs one agent: agents.defaults" } else { "Pincer has no such key" };
            left.push((format!("agents.{key}"), why.into()));
        }
        // `model: "provider/id"` is OpenClaw's short form of `{primary}`.
        if let Some(model) = agents.get_mut("defaults").and_then(|d| d.get_mut("model"))
            && let Some(primary) = model.as_str().map(str::to_string)
        {
            *model = serde_json::json!({ "primary": primary });
        }
        // OpenClaw's `userTimezone` is the zone Pincer calls `timezone`.
        if let Some(defaults) = agents.get_mut("defaults").and_then(Value::as_object_mut)
            && let Some(tz) = defaults.remove("userTimezone")
        {
            defaults.entry("timezone").or_insert(tz);
        }
    }
    // OpenClaw's `exec.security` (deny | allowlist | full) with `exec.ask` is Pincer's `exec.mode`.
    if let Some(exec) = config.pointer_mut("/tools/exec").and_then(Value::as_object_mut)
        && let Some(security) = exec.remove("security")
    {
        let asks = exec.get("ask").and_then(Value::as_str).is_some_and(|a| a != "off");
        let mode = match security.as_str() {
            Some("allowlist") if asks => Value::from("ask"),
            _ => security,
        };
        exec.remove("ask");
        exec.entry("mode").or_insert(mode);
    }
    if let Some(channels) = config.get_mut("channels").and_then(Value::as_object_mut) {
        for name in channels.keys().cloned().collect::<Vec<_>>() {
            if channels[&name].get("enabled") == Some(&Value::Bool(false)) {
                channels.remove(&name);
                left.push((format!("channels.{name}"), "disabled in OpenClaw".into()));
            } else if let Some(c) = channels[&name].as_object_mut() {
                c.remove("enabled");
            }
        }
    }
    if let Some(servers) = config.pointer_mut("/mcp/servers").and_then(Value::as_object_mut) {
        for server in servers.values_mut().filter_map(Value::as_object_mut) {
            // OpenClaw's `type: "stdio"` is implied in Pincer by `command`.
            if server.get("type").and_then(Value::as_str) == Some("stdio") {
                server.remove("type");
            }
        }
    }
}

/// OpenClaw's SecretRef `{source: "env", id: "NAME"}` becomes `${NAME}`; other sources (file,
/// exec) cannot be read by Pincer and are left behind.
fn secrets(value: &mut Value, path: &str, left: &mut Vec<(String, String)>) {
    let Some(obj) = value.as_object_mut() else {
        if let Some(list) = value.as_array_mut() {
            for (i, v) in list.iter_mut().enumerate() {
                secrets(v, &format!("{path}[{i}]"), left);
            }
        }
        return;
    };
    for key in obj.keys().cloned().collect::<Vec<_>>() {
        let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        let v = &obj[&key];
        let is_ref = v.as_object().is_some_and(|o| {
            o.get("source").is_some_and(Value::is_string)
                && o.get("id").is_some_and(Value::is_string)
                && o.keys().all(|k| ["source", "id", "provider"].contains(&k.as_str()))
        });
        if is_ref {
            let source = v["source"].as_str().unwrap_or_default().to_string();
            let id = v["id"].as_str().unwrap_or_default().to_string();
            if source == "env" {
                obj.insert(key, Value::String(format!("${{{id}}}")));
            } else {
                obj.remove(&key);
                left.push((
                    child,
                    format!("a secret from OpenClaw's `{source}` store: Pincer reads secrets from ${{VAR}}; set it in pincer.json"),
                ));
            }
        } else if let Some(v) = obj.get_mut(&key) {
            secrets(v, &child, left);
        }
    }
}

/// The key an error from `Config::parse` is about: `a.b.c: message`, or the field an
/// `unknown field` error names inside the object at its path.
fn refused_path(err: &str) -> Option<String> {
    let (path, message) = err.split_once(": ")?;
    if path.contains(' ') {
        return None;
    }
    let field = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
    match field {
        Some(f) if !path.ends_with(f) => Some(format!("{path}.{f}")),
        _ => Some(path.to_string()),
    }
}

/// Splits `a.b[2].c` into keys and indices.
fn segments(path: &str) -> Vec<Result<String, usize>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push(Ok(rest[..i].to_string()));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                out.push(rest[1..end].parse().map_err(|_| ()).map_or(Ok(String::new()), Err));
                rest = &rest[end + 1..];
            }
        } else {
            out.push(Ok(rest.to_string()));
        }
    }
    out
}

/// Removes the value at `path`; false when there is none.
fn remove(config: &mut Value, path: &str) -> bool {
    let segs = segments(path);
    let Some((last, parents)) = segs.split_last() else { return false };
    let mut at = config;
    for seg in parents {
        let next = match seg {
            Ok(k) => at.get_mut(k.as_str()),
            Err(i) => at.get_mut(*i),
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    match (last, at) {
        (Ok(k), Value::Object(o)) => o.remove(k).is_some(),
        (Err(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// Drops objects left empty by the removals (a channel with nothing Pincer takes).
fn prune_empty(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        for v in obj.values_mut() {
            prune_empty(v);
        }
        obj.retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
    }
}

fn env_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(at) = rest.find("${") {
                let Some(end) = rest[at..].find('}') else { break };
                out.push(rest[at + 2..at + end].to_string());
                rest = &rest[at + end + 1..];
            }
        }
        Value::Array(a) => a.iter().for_each(|v| env_refs(v, out)),
        Value::Object(o) => o.values().for_each(|v| env_refs(v, out)),
        _ => {}
    }
}

/// What merging `imported` into the existing `pincer.json` value does.
#[derive(Debug, Default, PartialEq)]
pub struct Merge {
    pub value: Value,
    /// Keys added.
    pub added: Vec<String>,
    /// Keys set to another value in pincer.json: (path, kept or replaced).
    pub conflicts: Vec<String>,
}

/// Adds `imported` to `existing`; a leaf set differently in `existing` is kept unless `force`.
pub fn merge(existing: &Value, imported: &Value, force: bool) -> Merge {
    let mut m = Merge { value: existing.clone(), ..Merge::default() };
    if !m.value.is_object() {
        m.value = Value::Object(Map::new());
    }
    merge_into(&mut m.value, imported, "", force, &mut m.added, &mut m.conflicts);
    m
}

fn merge_into(
    at: &mut Value,
    imported: &Value,
    path: &str,
    force: bool,
    added: &mut Vec<String>,
    conflicts: &mut Vec<String>,
) {
    let Some(obj) = imported.as_object() else { return };
    for (k, v) in obj {
        let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        let Some(target) = at.as_object_mut() else { return };
        match target.get_mut(k) {
            None => {
                target.insert(k.clone(), v.clone());
                added.push(child);
            }
            Some(cur) if cur == v => {}
            Some(cur) if cur.is_object() && v.is_object() => merge_into(cur, v, &child, force, added, conflicts),
            Some(cur) => {
                conflicts.push(child);
                if force {
                    *cur = v.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A config OpenClaw 2026.9.6 accepts (`openclaw config validate`), as a user writes it.
    fn real_config() -> Value {
        Config::read_value(include_str!("../../../../../tests/fixtures/openclaw-2026.9.6-openclaw.json5")).unwrap()
    }

    #[test]
    fn shared_sections_map_with_secrets_kept_as_the_user_had_them() {
        let plan = plan(&real_config());
        let c = &plan.config;
        // An env SecretRef becomes a reference; a `${VAR}` stays one; a plain key stays plain.
        assert_eq!(c["models"]["providers"]["openai"]["apiKey"], "${OPENAI_API_KEY}");
        assert_eq!(c["models"]["providers"]["anthropic"]["apiKey"], "sk-ant-plain-0123456789");
        assert_eq!(c["channels"]["telegram"]["botToken"], "${TELEGRAM_BOT_TOKEN}");
        assert_eq!(c["channels"]["telegram"]["allowFrom"], json!([123456789]));
        assert_eq!(c["channels"]["telegram"]["dmPolicy"], "allowlist");
        assert_eq!(c["channels"]["slack"]["botToken"], "xoxb-plain-token");
        assert_eq!(c["models"]["providers"]["openai"]["models"][0]["contextWindow"], 128000);
        assert_eq!(c["agents"]["defaults"]["model"], json!({"primary": "anthropic/claude-sonnet-4-5"}));
        assert_eq!(c["agents"]["defaults"]["heartbeat"]["every"], "1h");
        assert_eq!(c["session"]["dmScope"], "per-channel-peer");
        assert_eq!(c["tools"]["profile"], "coding");
        assert_eq!(c["tools"]["deny"], json!(["browser"]));
        assert_eq!(c["tools"]["exec"], json!({"mode": "allowlist", "safeBins": ["jq"]}));
        assert_eq!(c["agents"]["defaults"]["timezone"], "Europe/Berlin");
        assert_eq!(c["mcp"]["servers"]["files"]["command"], "npx");
        assert!(c.get("gateway").is_none() && c["channels"].get("discord").is_none(), "{c}");
        // What Pincer takes, Pincer's own parser accepts.
        Config::parse(&c.to_string(), &|_| Some("x".into())).unwrap();
        assert_eq!(plan.env_refs, ["OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN"]);
        let left: Vec<String> = plan.left.iter().map(|(k, why)| format!("{k}: {why}")).collect();
        expect_test::expect![[r#"
            agents.list: Pincer runs one agent: agents.defaults
            channels.discord: disabled in OpenClaw
            channels.slack.mode: Pincer has no such key
            channels.telegram.streaming: Pincer has no such key
            gateway: Pincer's gateway keeps its own port, bind and token (pincer.json `gateway`); point clients at it
            models.providers.openai.models[0].input: Pincer has no such key
            models.providers.openai.models[0].reasoning: Pincer has no such key
            plugins: Pincer has no plugins"#]]
        .assert_eq(&left.join("\n"));
    }

    #[test]
    fn secret_refs_pincer_cannot_read_are_left_behind_with_the_reason() {
        let oc = json!({"channels": {"telegram": {"botToken": {"source": "file", "provider": "vault", "id": "/tg"}}}});
        let plan = plan(&oc);
        assert!(
            plan.config["channels"].get("telegram").is_none()
                || plan.config["channels"]["telegram"].get("botToken").is_none()
        );
        assert!(
            plan.left.iter().any(|(k, why)| k == "channels.telegram.botToken" && why.contains("`file` store")),
            "{:?}",
            plan.left
        );
    }

    #[test]
    fn merging_adds_keeps_what_the_user_set_and_changes_nothing_twice() {
        let existing = json!({"gateway": {"port": 1}, "session": {"dmScope": "main"}});
        let imported = json!({"session": {"dmScope": "per-peer"}, "tools": {"profile": "coding"}});
        let first = merge(&existing, &imported, false);
        assert_eq!(first.added, ["tools"]);
        assert_eq!(first.conflicts, ["session.dmScope"]);
        assert_eq!(first.value["session"]["dmScope"], "main");
        assert_eq!(first.value["gateway"]["port"], 1);
        let second = merge(&first.value, &imported, false);
        assert!(second.added.is_empty());
        assert_eq!(second.value, first.value);
        let forced = merge(&existing, &imported, true);
        assert_eq!(forced.value["session"]["dmScope"], "per-peer");
    }
}
