//! `cron`: OpenClaw's scheduling tool — `status`, `list`, `add`, `update`, `remove`, `run`, `runs`
//! and `wake` from inside a turn, over the `cron.*` and `wake` methods' own functions.
//!
//! `add` fills in what OpenClaw's tool does from the calling conversation: an `agentTurn` job with
//! no delivery target announces to the chat the request came from (the session's last route,
//! written as an explicit `channel`/`to`, so a later conversation elsewhere does not move it), and
//! `contextMessages` appends the conversation's last messages to a `systemEvent` text. Pincer also
//! reads a `schedule.at` written as a duration from now (`20m`, `+1h30m`), as the CLI's `--at`
//! does, so "remind me in 20 minutes" needs no clock arithmetic from the model. Everything else is
//! `cron.add`'s validation, unchanged.

use pincer_agent::api as agent_api;
use pincer_core::duration::parse_duration_ms;
use pincer_cron::schedule::format_iso_utc;
use pincer_cron::{CronError, api};
use pincer_protocol::schema::agent as agent_wire;
use pincer_protocol::schema::cron as wire;
use pincer_protocol::schema::sessions::{ChatHistoryAnswer, ChatHistoryParams};
use pincer_tools::tool::{BoxFuture, opt_str_arg, opt_u64_arg};
use pincer_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec};
use serde_json::{Map, Value, json};

use super::{Binding, json_output, known_args, last_route, opt_bool, parse};
use crate::AppState;

const NAME: &str = "cron";
const ACTIONS: &[&str] = &["status", "list", "add", "update", "remove", "run", "runs", "wake", "next_check"];
const ARGS: &[&str] = &[
    "action",
    "includeDisabled",
    "job",
    "jobId",
    "id",
    "patch",
    "text",
    "mode",
    "runMode",
    "contextMessages",
    "in",
    // OpenClaw's way to reach a remote gateway; the tool always acts on this one.
    "gatewayUrl",
    "gatewayToken",
    "timeoutMs",
];
/// Job fields a model sometimes writes beside `action` instead of inside `job` (OpenClaw's
/// flat-params recovery).
const FLAT_JOB_KEYS: &[&str] = &[
    "name",
    "schedule",
    "sessionTarget",
    "wakeMode",
    "payload",
    "delivery",
    "enabled",
    "description",
    "deleteAfterRun",
    "agentId",
    "sessionKey",
    "message",
    "model",
    "timeoutSeconds",
];
/// The most jobs one `list` answers with.
const LIST_LIMIT: u32 = 100;
/// OpenClaw's reminder context bounds.
const CONTEXT_MESSAGES_MAX: u64 = 10;
const CONTEXT_PER_MESSAGE_MAX: usize = 220;
const CONTEXT_TOTAL_MAX: usize = 700;
const CONTEXT_MARKER: &str = "\n\nRecent context:\n";

pub struct CronTool {
    spec: ToolSpec,
    binding: Binding,
}

impl CronTool {
    pub fn new(binding: Binding) -> CronTool {
        let spec = ToolSpec {
            name: NAME.into(),
            description: DESCRIPTION.into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ACTIONS},
                    "includeDisabled": {"type": "boolean"},
                    "job": {"type": "object", "additionalProperties": true},
                    "jobId": {"type": "string"},
                    "id": {"type": "string"},
                    "patch": {"type": "object", "additionalProperties": true},
                    "text": {"type": "string"},
                    "mode": {"type": "string", "enum": ["now", "next-heartbeat"]},
                    "runMode": {"type": "string", "enum": ["due", "force"]},
                    "contextMessages": {"type": "number", "minimum": 0, "maximum": CONTEXT_MESSAGES_MAX},
                    "in": {"type": "string", "description": "Relative duration for action=\"next_check\" (for example, \"15m\")"},
                    "gatewayUrl": {"type": "string"},
                    "gatewayToken": {"type": "string"},
                    "timeoutMs": {"type": "number"}
                },
                "required": ["action"]
            }),
        };
        CronTool { spec, binding }
    }

    async fn run(&self, mut args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let action = opt_str_arg(&args, NAME, "action")?
            .ok_or_else(|| {
                ToolError::InvalidArguments(format!(
                    "{NAME}: missing required parameter `action` ({})",
                    ACTIONS.join(", ")
                ))
            })?
            .to_string();
        if action == "add" {
            recover_flat_job(&mut args);
        }
        known_args(&args, NAME, ARGS)?;
        if args.get("gatewayUrl").is_some_and(|u| !u.is_null()) {
            return Err(ToolError::InvalidArguments(format!(
                "{NAME}: `gatewayUrl` is not supported: the tool acts on the gateway this agent runs in; leave it out"
            )));
        }
        let state = self.binding.state(NAME)?;
        let svc = &state.cron;
        match action.as_str() {
            "status" => json(api::status(svc).await),
            "list" => {
                let include = opt_bool(&args, NAME, "includeDisabled")?.unwrap_or(false);
                let p = parse::<wire::List>(NAME, json!({"includeDisabled": include, "limit": LIST_LIMIT}))?;
                json(api::list(svc, p).await)
            }
            "add" => {
                let job = self.prepare_job(&state, &args, ctx).await?;
                let p = parse::<wire::Add>(NAME, job)?;
                json(api::add(svc, p).await)
            }
            "update" => {
                let id = job_id(&args)?;
                let patch = match args.get("patch") {
                    Some(p @ Value::Object(_)) => p.clone(),
                    _ => return Err(invalid("`update` needs `patch`, an object of the fields to change")),
                };
                json(api::update(svc, parse::<wire::Update>(NAME, json!({"id": id, "patch": patch}))?).await)
            }
            "remove" => json(api::remove(svc, parse::<wire::Remove>(NAME, json!({"id": job_id(&args)?}))?).await),
            "run" => {
                let mode = match opt_str_arg(&args, NAME, "runMode")? {
                    None => "force",
                    Some(m @ ("due" | "force")) => m,
                    Some(other) => return Err(invalid(format!("`runMode` \"{other}\" is not due or force"))),
                };
                let p = parse::<wire::Run>(NAME, json!({"id": job_id(&args)?, "mode": mode}))?;
                json(api::run(svc, p, &state.boot_id).await)
            }
            "runs" => json(api::runs(svc, parse::<wire::Runs>(NAME, json!({"id": job_id(&args)?}))?).await),
            "wake" => {
                let text = opt_str_arg(&args, NAME, "text")?
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| invalid("`wake` needs `text`, the event to send"))?;
                let mode = opt_str_arg(&args, NAME, "mode")?.unwrap_or("next-heartbeat");
                let p = parse::<agent_wire::Wake>(NAME, json!({"mode": mode, "text": text}))?;
                agent_api::wake(&state.agents, p).await.map(|r| json_output(&r)).map_err(agent_error)
            }
            "next_check" => {
                let text = opt_str_arg(&args, NAME, "in")?
                    .ok_or_else(|| invalid("`next_check` needs `in`, a duration such as \"30m\""))?;
                let delay = parse_duration_ms(text, Some(1))
                    .ok()
                    .filter(|ms| *ms > 0)
                    .and_then(|ms| i64::try_from(ms).ok())
                    .ok_or_else(|| {
                        invalid(format!("next_check `in` must be a positive duration such as 30m, not \"{text}\""))
                    })?;
                let session = ctx.session_key.as_deref().unwrap_or_default();
                let job = state.agents.propose_next_check(session, delay).map_err(invalid)?;
                Ok(json_output(&json!({"ok": true, "jobId": job, "delayMs": delay})))
            }
            other => Err(invalid(format!("unknown action \"{other}\"; use one of {}", ACTIONS.join(", ")))),
        }
    }

    /// The job as `cron.add` gets it: the model's, plus what the calling conversation implies.
    async fn prepare_job(&self, state: &AppState, args: &Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let mut job = match args.get("job") {
            Some(Value::Object(job)) if !job.is_empty() => job.clone(),
            _ => return Err(invalid("`add` needs `job`, an object with at least `schedule` and `payload`")),
        };
        relative_at(&mut job, ctx.clock.now_ms())?;
        let session = ctx.session_key.as_deref();
        // The job belongs to the agent of the conversation that made it.
        if !job.contains_key("agentId")
            && let Some(agent) = session.and_then(pincer_agent::SessionRef::from_key).map(|s| s.agent_id)
            && agent != pincer_cron::job::DEFAULT_AGENT
        {
            job.insert("agentId".into(), json!(agent));
        }
        let agent_turn = job.get("payload").and_then(|p| p.get("kind")).and_then(Value::as_str) == Some("agentTurn");
        if agent_turn && let Some(session) = session {
            infer_delivery(&mut job, state, session).await?;
        }
        let context = opt_u64_arg(args, NAME, "contextMessages")?.unwrap_or(0);
        if context > CONTEXT_MESSAGES_MAX {
            return Err(invalid(format!("`contextMessages` must be 0..{CONTEXT_MESSAGES_MAX}")));
        }
        if context > 0
            && let Some(session) = session
            && let Some(Value::Object(payload)) = job.get_mut("payload")
            && payload.get("kind").and_then(Value::as_str) == Some("systemEvent")
            && let Some(Value::String(text)) = payload.get_mut("text")
            && !text.trim().is_empty()
        {
            let lines = context_lines(state, session, context as usize).await?;
            if !lines.is_empty() {
                let base = text.split(CONTEXT_MARKER).next().unwrap_or_default().trim().to_string();
                *text = format!("{base}{CONTEXT_MARKER}{}", lines.join("\n"));
            }
        }
        Ok(Value::Object(job))
    }
}

const DESCRIPTION: &str = r#"Manage Gateway cron jobs (status/list/add/update/remove/run/runs) and send wake events.

ACTIONS:
- status: Check cron scheduler status
- list: List jobs (use includeDisabled:true to include disabled)
- add: Create job (requires job object, see schema below)
- update: Modify job (requires jobId + patch object)
- remove: Delete job (requires jobId)
- run: Trigger job immediately (requires jobId)
- runs: Get job run history (requires jobId)
- wake: Send wake event (requires text, optional mode)
- next_check: Inside a paced job's own run, set the next run's delay (requires in, e.g. "30m"; clamped to the job's pacing{min?,max?}, measured from the run's end; a failed run keeps the normal backoff)

JOB SCHEMA (for add action):
{
  "name": "string (optional)",
  "schedule": { ... },      // Required: when to run
  "payload": { ... },       // Required: what to execute
  "delivery": { ... },      // Optional: announce summary or webhook POST
  "sessionTarget": "main" | "isolated",  // Required
  "enabled": true | false   // Optional, default true
}

SCHEDULE TYPES (schedule.kind):
- "at": One-shot at absolute time
  { "kind": "at", "at": "<ISO-8601 timestamp>" }   (or a duration from now: "20m", "+1h30m")
- "every": Recurring interval
  { "kind": "every", "everyMs": <interval-ms>, "anchorMs": <optional-start-ms> }
- "cron": Cron expression
  { "kind": "cron", "expr": "<cron-expression>", "tz": "<optional-timezone>" }

ISO timestamps without an explicit timezone are treated as UTC.

PAYLOAD TYPES (payload.kind):
- "systemEvent": Injects text as system event into session
  { "kind": "systemEvent", "text": "<message>" }
- "agentTurn": Runs agent with message (isolated sessions only)
  { "kind": "agentTurn", "message": "<prompt>", "model": "<optional>", "timeoutSeconds": <optional, 0 means no timeout> }

DELIVERY (top-level):
  { "mode": "none|announce|webhook", "channel": "<optional>", "to": "<optional>", "bestEffort": <optional-bool> }
  - Default for isolated agentTurn jobs (when delivery omitted): "announce" to the chat this request came from
  - announce: send to chat channel (optional channel/to target)
  - webhook: send finished-run event as HTTP POST to delivery.to (URL required)

CRITICAL CONSTRAINTS:
- sessionTarget="main" REQUIRES payload.kind="systemEvent"
- sessionTarget="isolated" REQUIRES payload.kind="agentTurn"
Default: prefer isolated agentTurn jobs (e.g. reminders: message "Remind the user to ...") unless the user explicitly wants a main-session system event.

WAKE MODES (for wake action):
- "next-heartbeat" (default): Wake on next heartbeat
- "now": Wake immediately

Use jobId as the canonical identifier; id is accepted for compatibility. Use contextMessages (0-10) to add previous messages as context to the job text."#;

fn invalid(message: impl std::fmt::Display) -> ToolError {
    ToolError::InvalidArguments(format!("{NAME}: {message}"))
}

fn job_id(args: &Value) -> Result<String, ToolError> {
    let id = opt_str_arg(args, NAME, "jobId")?.or(opt_str_arg(args, NAME, "id")?);
    id.map(str::trim)
        .filter(|id| !id.is_empty())
        .map(String::from)
        .ok_or_else(|| invalid("jobId required (id accepted for backward compatibility); `list` shows the jobs"))
}

fn json<T: serde::Serialize>(result: Result<T, CronError>) -> Result<ToolOutput, ToolError> {
    result.map(|r| json_output(&r)).map_err(|e| match e {
        CronError::Invalid(m) => ToolError::InvalidArguments(format!("{NAME}: {m}")),
        CronError::NotFound(id) => invalid(format!("no job {id}; call cron with action \"list\" to see the jobs")),
        e @ CronError::Changed { .. } => ToolError::Failed(format!("{NAME}: {e}")),
        e @ (CronError::Store(_) | CronError::Stopped | CronError::Unavailable(_)) => {
            ToolError::Failed(format!("{NAME}: the scheduler cannot take this now ({e}); try again later"))
        }
    })
}

fn agent_error(e: agent_api::ApiError) -> ToolError {
    match e {
        agent_api::ApiError::Invalid(m) | agent_api::ApiError::NotFound(m) => {
            ToolError::InvalidArguments(format!("{NAME}: {m}"))
        }
        e => ToolError::Failed(format!("{NAME}: {e}")),
    }
}

/// OpenClaw's flat-params recovery: job fields written beside `action` become the `job`.
fn recover_flat_job(args: &mut Value) {
    let Some(object) = args.as_object_mut() else { return };
    let empty = match object.get("job") {
        None | Some(Value::Null) => true,
        Some(Value::Object(job)) => job.is_empty(),
        Some(_) => false,
    };
    if !empty || !["schedule", "payload", "message"].iter().any(|k| object.contains_key(*k)) {
        return;
    }
    let mut job = Map::new();
    for key in FLAT_JOB_KEYS {
        if let Some(value) = object.remove(*key) {
            job.insert(key.to_string(), value);
        }
    }
    // A bare `message` (and `model`, `timeoutSeconds`) is an agent turn.
    if !job.contains_key("payload")
        && let Some(message) = job.remove("message")
    {
        let mut payload = json!({"kind": "agentTurn", "message": message});
        for key in ["model", "timeoutSeconds"] {
            if let Some(v) = job.remove(key) {
                payload[key] = v;
            }
        }
        job.insert("payload".into(), payload);
    }
    object.insert("job".into(), Value::Object(job));
}

/// `schedule.at` written as a duration from now (`20m`, `+1h30m`) becomes that instant in ISO-8601.
fn relative_at(job: &mut Map<String, Value>, now_ms: i64) -> Result<(), ToolError> {
    let Some(Value::Object(schedule)) = job.get_mut("schedule") else { return Ok(()) };
    if schedule.get("kind").and_then(Value::as_str) != Some("at") {
        return Ok(());
    }
    let Some(Value::String(at)) = schedule.get_mut("at") else { return Ok(()) };
    let text = at.trim();
    let rest = text.strip_prefix('+').or_else(|| text.strip_prefix("in ")).unwrap_or(text).trim();
    let explicit = text.starts_with('+') || text.starts_with("in ");
    match parse_duration_ms(rest, None) {
        Ok(ms) => {
            let when = i64::try_from(ms).ok().and_then(|ms| now_ms.checked_add(ms)).and_then(format_iso_utc);
            *at = when.ok_or_else(|| invalid(format!("schedule.at: \"{text}\" from now is too far away")))?;
            Ok(())
        }
        Err(e) if explicit => Err(invalid(format!("schedule.at: {e}"))),
        // Not a duration: `cron.add` reads it as a time (and says so if it is not one).
        Err(_) => Ok(()),
    }
}

/// OpenClaw's delivery inference: an agent turn that announces without a target announces to the
/// conversation the request came from.
async fn infer_delivery(job: &mut Map<String, Value>, state: &AppState, session: &str) -> Result<(), ToolError> {
    let delivery = job.get("delivery");
    let (mode, has_target) = match delivery {
        None | Some(Value::Null) => (String::new(), false),
        Some(Value::Object(d)) => {
            let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::trim).unwrap_or("").to_string();
            let channel = text("channel");
            (text("mode").to_ascii_lowercase(), (!channel.is_empty() && channel != "last") || !text("to").is_empty())
        }
        // Not an object: `cron.add` refuses it with the field's name.
        Some(_) => return Ok(()),
    };
    if has_target || !(mode.is_empty() || mode == "announce") {
        return Ok(());
    }
    let Some(route) = last_route(state, session).await? else { return Ok(()) };
    let mut inferred = match job.remove("delivery") {
        Some(Value::Object(d)) => d,
        _ => Map::new(),
    };
    inferred.insert("mode".into(), json!("announce"));
    inferred.insert("channel".into(), json!(route.channel));
    inferred.insert("to".into(), json!(route.to));
    if let Some(thread) = route.thread_id {
        inferred.entry("threadId").or_insert(json!(thread));
    }
    if let Some(account) = route.account_id {
        inferred.entry("accountId").or_insert(json!(account));
    }
    job.insert("delivery".into(), Value::Object(inferred));
    Ok(())
}

/// The conversation's last `max` user and assistant messages, as OpenClaw's reminder context.
async fn context_lines(state: &AppState, session: &str, max: usize) -> Result<Vec<String>, ToolError> {
    let p = ChatHistoryParams {
        max_bytes: None,
        session_key: session.to_string(),
        agent_id: None,
        limit: Some(50),
        before_seq: None,
        cursor: None,
        input_run_ids: None,
        session_id: None,
    };
    let messages = match agent_api::chat_history(&state.agents, p).await.map_err(agent_error)? {
        ChatHistoryAnswer::Page(page) => page.messages,
        _ => Vec::new(),
    };
    let recent: Vec<_> =
        messages.iter().filter(|m| (m.role == "user" || m.role == "assistant") && !m.text.trim().is_empty()).collect();
    let mut lines = Vec::new();
    let mut total = 0;
    for m in &recent[recent.len().saturating_sub(max)..] {
        let label = if m.role == "user" { "User" } else { "Assistant" };
        let text = m.text.trim();
        let text = match text.char_indices().nth(CONTEXT_PER_MESSAGE_MAX - 3) {
            Some((cut, _)) => format!("{}...", text[..cut].trim_end()),
            None => text.to_string(),
        };
        let line = format!("- {label}: {text}");
        total += line.chars().count();
        if total > CONTEXT_TOTAL_MAX {
            break;
        }
        lines.push(line);
    }
    Ok(lines)
}

impl Tool for CronTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(self.run(args, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    /// 2026-03-01T00:00:00Z.
    const NOW: i64 = 1_772_323_200_000;

    #[test]
    fn a_schedule_at_written_as_a_duration_is_read_from_now() {
        let mut out = String::new();
        for at in ["20m", "+1h30m", "in 45s", " +5m ", "2026-03-02T09:00:00Z", "1772355600000", "tomorrow", "+soon"] {
            let mut job = json!({"schedule": {"kind": "at", "at": at}}).as_object().unwrap().clone();
            let shown = match relative_at(&mut job, NOW) {
                Ok(()) => job["schedule"]["at"].to_string(),
                Err(e) => format!("error: {e}"),
            };
            out.push_str(&format!("{at:24} → {shown}\n"));
        }
        expect![[r#"
            20m                      → "2026-03-01T00:20:00.000Z"
            +1h30m                   → "2026-03-01T01:30:00.000Z"
            in 45s                   → "2026-03-01T00:00:45.000Z"
             +5m                     → "2026-03-01T00:05:00.000Z"
            2026-03-02T09:00:00Z     → "2026-03-02T09:00:00Z"
            1772355600000            → "1772355600000"
            tomorrow                 → "tomorrow"
            +soon                    → error: cron: schedule.at: invalid duration `soon`: expected a number before `soon`
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn flat_job_fields_become_the_job() {
        let mut args =
            json!({"action": "add", "schedule": {"kind": "at", "at": "20m"}, "message": "stretch", "model": "m/x"});
        recover_flat_job(&mut args);
        assert_eq!(
            args,
            json!({"action": "add", "job": {
                "schedule": {"kind": "at", "at": "20m"},
                "payload": {"kind": "agentTurn", "message": "stretch", "model": "m/x"},
            }})
        );
        // A job given as `job` is left alone, and so is a call without job fields.
        let mut given = json!({"action": "add", "job": {"name": "x"}, "schedule": {}});
        recover_flat_job(&mut given);
        assert_eq!(given["job"], json!({"name": "x"}));
        let mut none = json!({"action": "add"});
        recover_flat_job(&mut none);
        assert_eq!(none, json!({"action": "add"}));
    }
}
