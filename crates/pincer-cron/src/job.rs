//! The job: OpenClaw's cron job JSON with closed schemas, its create defaults, validation, partial
//! updates, and the read view clients see.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use pincer_protocol::state::{CompletionStatus, DeliveryStatus, ExecStatus, RunErrorReason, SuppressionReason};

use crate::channels::ChannelCatalog;
use crate::schedule::{NormalizeContext, ScheduleSpec};

/// The agent every job belongs to unless it names another.
pub const DEFAULT_AGENT: &str = "main";

/// A cron job as stored and as sent on the wire (OpenClaw's `CronJobSchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_run: Option<bool>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub schedule: ScheduleSpec,
    pub session_target: SessionTarget,
    pub wake_mode: WakeMode,
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_alert: Option<FailureAlert>,
    #[serde(default)]
    pub state: JobState,
}

/// Where a job's turn runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTarget {
    /// The agent's main session (system events only).
    Main,
    /// A fresh session per run.
    Isolated,
    /// The creating conversation; resolved to `isolated` when there is none.
    Current,
    /// A named session that keeps its history.
    Named(String),
}

impl SessionTarget {
    pub fn parse(s: &str) -> Result<SessionTarget, String> {
        match s {
            "main" => Ok(SessionTarget::Main),
            "isolated" => Ok(SessionTarget::Isolated),
            "current" => Ok(SessionTarget::Current),
            other => match other.strip_prefix("session:") {
                Some(id) if is_safe_session_id(id) => Ok(SessionTarget::Named(id.to_string())),
                Some(id) => Err(format!(
                    "session id \"{id}\" is not allowed: use letters, digits, '.', '_', ':' and '-' (at most 128)"
                )),
                None => Err(format!("\"{other}\" is not main, isolated, current or session:<id>")),
            },
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            SessionTarget::Main => "main".into(),
            SessionTarget::Isolated => "isolated".into(),
            SessionTarget::Current => "current".into(),
            SessionTarget::Named(id) => format!("session:{id}"),
        }
    }

    /// True for targets that run detached from the main session.
    pub fn is_detached(&self) -> bool {
        !matches!(self, SessionTarget::Main)
    }
}

fn is_safe_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

impl Serialize for SessionTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for SessionTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SessionTarget::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeMode {
    Now,
    NextHeartbeat,
}

/// The longest `payload.timeoutSeconds` a job may set: 30 days (`0` still means no limit).
pub const MAX_TIMEOUT_SECONDS: u64 = 30 * 86_400;

/// What a run does. Exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Payload {
    /// Text queued into the main session.
    #[serde(rename = "systemEvent")]
    SystemEvent { text: String },
    /// One model turn.
    #[serde(rename = "agentTurn", rename_all = "camelCase")]
    AgentTurn {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallbacks: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thinking: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        light_context: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allow_unsafe_external_content: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tools_allow: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tools_allow_is_default: Option<bool>,
    },
    /// A program run on the gateway host; stdout is the result.
    #[serde(rename = "command", rename_all = "camelCase")]
    Command {
        argv: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no_output_timeout_seconds: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_max_bytes: Option<u64>,
    },
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::SystemEvent { .. } => "systemEvent",
            Payload::AgentTurn { .. } => "agentTurn",
            Payload::Command { .. } => "command",
        }
    }

    /// The run's wall-clock limit: `timeoutSeconds` (0 = none; at most [`MAX_TIMEOUT_SECONDS`], which
    /// also bounds a job stored before that limit), else 60 min for agent turns and 10 min for
    /// everything else.
    pub fn timeout_ms(&self) -> Option<u64> {
        let (explicit, default_s) = match self {
            Payload::AgentTurn { timeout_seconds, .. } => (*timeout_seconds, 3_600),
            Payload::Command { timeout_seconds, .. } => (*timeout_seconds, 600),
            Payload::SystemEvent { .. } => (None, 600),
        };
        match explicit {
            Some(0) => None,
            Some(s) => Some(s.min(MAX_TIMEOUT_SECONDS) * 1_000),
            None => Some(default_s * 1_000),
        }
    }

    /// `timeoutSeconds` as given, for validation.
    fn timeout_seconds(&self) -> Option<u64> {
        match self {
            Payload::AgentTurn { timeout_seconds, .. } | Payload::Command { timeout_seconds, .. } => *timeout_seconds,
            Payload::SystemEvent { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    Announce,
    Webhook,
    None,
}

/// Where a run's result goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delivery {
    pub mode: DeliveryMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_effort: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_destination: Option<Destination>,
}

impl Delivery {
    pub fn best_effort(&self) -> bool {
        self.best_effort == Some(true)
    }
}

/// An alternate route, e.g. for failure alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeliveryMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// `false` (alerts off for this job) or an alert policy.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureAlert {
    Off,
    Policy(FailureAlertPolicy),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailureAlertPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_skipped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeliveryMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

impl Serialize for FailureAlert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FailureAlert::Off => s.serialize_bool(false),
            FailureAlert::Policy(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FailureAlert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(false) => Ok(FailureAlert::Off),
            Value::Bool(true) => Ok(FailureAlert::Policy(FailureAlertPolicy::default())),
            v @ Value::Object(_) => {
                serde_json::from_value(v).map(FailureAlert::Policy).map_err(serde::de::Error::custom)
            }
            other => Err(serde::de::Error::custom(format!("expected false or an object, got {other}"))),
        }
    }
}

/// Why the scheduler turned a job off by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoDisabled {
    pub reason: String,
    pub at_ms: i64,
    pub consecutive_errors: u32,
}

/// Scheduler-owned state. Clients never write it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<ExecStatus>,
    /// Deprecated alias of `lastRunStatus`, still written for older clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<ExecStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_reason: Option<RunErrorReason>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_errors: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_skipped: u32,
    /// Runs in a row whose completion was not `succeeded` (drives failure alerts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completion_status: Option<CompletionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_status: Option<DeliveryStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_suppression_reason: Option<SuppressionReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_alert_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_disabled: Option<AutoDisabled>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub schedule_error_count: u32,
}

impl JobState {
    /// Notes a finished run: its id, time, duration, status and error, and the error and skip
    /// streaks.
    pub fn note_run(
        &mut self,
        run_id: &str,
        started_at_ms: i64,
        now_ms: i64,
        status: ExecStatus,
        outcome: &crate::runner::ExecOutcome,
    ) {
        self.running_at_ms = None;
        self.running_run_id = None;
        self.last_run_id = Some(run_id.to_string());
        self.last_run_at_ms = Some(started_at_ms);
        self.last_duration_ms = Some(u64::try_from(now_ms - started_at_ms).unwrap_or(0));
        self.last_run_status = Some(status);
        self.last_status = Some(status);
        self.last_error = outcome.error.clone();
        self.last_error_reason = outcome.error_reason;
        let (errors, skipped) = match status {
            ExecStatus::Ok => (0, 0),
            ExecStatus::Error => (self.consecutive_errors + 1, 0),
            ExecStatus::Skipped => (0, self.consecutive_skipped + 1),
        };
        (self.consecutive_errors, self.consecutive_skipped) = (errors, skipped);
    }

    /// Notes what became of the last run's result.
    pub fn note_delivery(
        &mut self,
        status: DeliveryStatus,
        delivered: bool,
        error: Option<String>,
        suppression: Option<SuppressionReason>,
    ) {
        self.last_delivery_status = Some(status);
        self.last_delivered = Some(delivered);
        self.last_delivery_error = error;
        self.delivery_suppression_reason = suppression;
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A request that names the field at fault: `INVALID_REQUEST invalid cron.<m> params: <field>: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Context for turning client input into a stored job.
pub struct CreateContext<'a> {
    pub now_ms: i64,
    /// `agents.defaults.timezone`, else the host's zone.
    pub default_tz: &'a str,
    /// The registered channels and which are usable, for route checks.
    pub channels: &'a ChannelCatalog,
}

/// Rewrites OpenClaw's accepted aliases into the canonical shape before the strict parse:
/// payload kinds matched case-insensitively, `deliver` → `announce`, a delivery without a mode is
/// an announce, numeric thread ids become strings, legacy `jobId` becomes `id`.
fn canonicalize(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    if let Some(id) = obj.remove("jobId") {
        obj.entry("id").or_insert(id);
    }
    if let Some(Value::Object(payload)) = obj.get_mut("payload")
        && let Some(Value::String(kind)) = payload.get_mut("kind")
    {
        let canonical = match kind.to_ascii_lowercase().as_str() {
            "systemevent" => Some("systemEvent"),
            "agentturn" => Some("agentTurn"),
            "command" => Some("command"),
            _ => None,
        };
        if let Some(c) = canonical {
            *kind = c.to_string();
        }
    }
    if let Some(Value::Object(delivery)) = obj.get_mut("delivery") {
        match delivery.get("mode") {
            None => {
                delivery.insert("mode".into(), json!("announce"));
            }
            Some(Value::String(m)) if m == "deliver" => {
                delivery.insert("mode".into(), json!("announce"));
            }
            _ => {}
        }
        if let Some(Value::Number(n)) = delivery.get("threadId") {
            let s = n.to_string();
            delivery.insert("threadId".into(), Value::String(s));
        }
    }
}

/// Fields `cron.add` accepts; everything else is rejected by name.
const ADD_FIELDS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "agentId",
    "sessionKey",
    "deleteAfterRun",
    "schedule",
    "sessionTarget",
    "wakeMode",
    "payload",
    "delivery",
    "failureAlert",
];

/// OpenClaw fields Pincer does not implement: rejected with a clear message instead of ignored.
const UNSUPPORTED_FIELDS: &[&str] =
    &["declarationKey", "displayName", "owner", "pacing", "trigger", "scheduledToolPolicy", "state"];

/// Builds a new job from `cron.add` params: OpenClaw's create defaults, then full validation.
pub fn create(params: &Value, id: String, ctx: &CreateContext) -> Result<Job, Invalid> {
    let Some(input) = params.as_object() else { return Err(invalid("params must be an object")) };
    for key in input.keys() {
        if UNSUPPORTED_FIELDS.contains(&key.as_str()) {
            return Err(invalid(format!("{key}: not supported by Pincer")));
        }
        if !ADD_FIELDS.contains(&key.as_str()) {
            return Err(invalid(format!("unknown field `{key}`")));
        }
    }
    let mut v = Value::Object(input.clone());
    canonicalize(&mut v);
    let Value::Object(obj) = &mut v else { return Err(invalid("params must be an object")) };
    let payload_kind = obj.get("payload").and_then(|p| p.get("kind")).and_then(Value::as_str).unwrap_or("").to_string();
    check_payload_kind(&payload_kind)?;
    let schedule_kind =
        obj.get("schedule").and_then(|s| s.get("kind")).and_then(Value::as_str).unwrap_or("").to_string();
    obj.insert("id".into(), json!(id));
    obj.insert("createdAtMs".into(), json!(ctx.now_ms));
    obj.insert("updatedAtMs".into(), json!(ctx.now_ms));
    obj.entry("enabled").or_insert(json!(true));
    obj.entry("wakeMode").or_insert(json!("now"));
    obj.insert("state".into(), json!({}));
    let target = match obj.get("sessionTarget").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => match payload_kind.as_str() {
            "systemEvent" => "main".into(),
            _ => "isolated".into(),
        },
    };
    // `current` binds to the creating conversation; a plain RPC call has none, so it runs isolated.
    let target = if target == "current" && obj.get("sessionKey").is_none() { "isolated".into() } else { target };
    obj.insert("sessionTarget".into(), json!(target));
    if schedule_kind == "at" {
        obj.entry("deleteAfterRun").or_insert(json!(true));
    }
    if !obj.contains_key("delivery") && target != "main" && payload_kind != "systemEvent" {
        obj.insert("delivery".into(), json!({"mode": "announce", "channel": "last"}));
    }
    if !obj.contains_key("name") || obj.get("name").and_then(Value::as_str).is_some_and(|n| n.trim().is_empty()) {
        let name = infer_name(obj);
        obj.insert("name".into(), json!(name));
    }
    let mut job = parse_job(v)?;
    job.schedule = job
        .schedule
        .normalize(&NormalizeContext { now_ms: ctx.now_ms, default_tz: ctx.default_tz, exact: false })
        .map_err(|e| invalid(e.to_string()))?;
    validate(&job, ctx)?;
    Ok(job)
}

fn check_payload_kind(kind: &str) -> Result<(), Invalid> {
    match kind {
        "systemEvent" | "agentTurn" | "command" => Ok(()),
        "" => Err(invalid("payload.kind: required (systemEvent, agentTurn or command)")),
        "script" | "heartbeat" => Err(invalid(format!(
            "payload.kind: \"{kind}\" is not supported by Pincer (use systemEvent, agentTurn or command)"
        ))),
        other => {
            Err(invalid(format!("payload.kind: unknown kind \"{other}\" (use systemEvent, agentTurn or command)")))
        }
    }
}

/// OpenClaw infers a name from the schedule and payload when none is given.
fn infer_name(obj: &Map<String, Value>) -> String {
    let text = obj
        .get("payload")
        .and_then(|p| p.get("message").or_else(|| p.get("text")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            obj.get("payload")
                .and_then(|p| p.get("argv"))
                .and_then(Value::as_array)
                .map(|argv| argv.iter().filter_map(Value::as_str).next_back().unwrap_or("command").to_string())
        })
        .unwrap_or_else(|| "job".into());
    let mut name: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.chars().count() > 60 {
        name = name.chars().take(57).collect::<String>() + "...";
    }
    if name.is_empty() { "job".into() } else { name }
}

/// Strict parse of a whole job, with serde's message prefixed by the field path. An object
/// written as a list of its fields (which serde alone accepts) is refused too.
pub fn parse_job(v: Value) -> Result<Job, Invalid> {
    let job: Job = serde_path_to_error::deserialize(&v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." { invalid(inner) } else { invalid(format!("{path}: {inner}")) }
    })?;
    let typed = Value::Object(job.to_json()?);
    match pincer_core::shape::list_for_object(&v, &typed) {
        Some(path) => Err(invalid(pincer_core::shape::list_for_object_error(&path))),
        None => Ok(job),
    }
}

/// The rules OpenClaw's `assertSupportedJobSpec` and delivery checks enforce.
pub fn validate(job: &Job, ctx: &CreateContext) -> Result<(), Invalid> {
    if job.name.trim().is_empty() {
        return Err(invalid("name: must not be empty"));
    }
    if job.name.chars().count() > 200 {
        return Err(invalid("name: at most 200 characters"));
    }
    if let Some(agent) = &job.agent_id
        && (agent.is_empty()
            || !agent.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return Err(invalid(format!("agentId: \"{agent}\" must be lowercase letters, digits, '-' or '_'")));
    }
    match (&job.session_target, &job.payload) {
        (SessionTarget::Main, Payload::SystemEvent { .. }) => {}
        (SessionTarget::Main, p) => {
            return Err(invalid(format!(
                "sessionTarget: \"main\" runs system events only; a {} payload needs \"isolated\" or \"session:<id>\"",
                p.kind()
            )));
        }
        (t, Payload::SystemEvent { .. }) => {
            return Err(invalid(format!(
                "payload.kind: systemEvent runs in the main session only, not \"{}\" (use agentTurn or command)",
                t.as_string()
            )));
        }
        _ => {}
    }
    if job.session_target == SessionTarget::Main && job.agent_id.as_deref().is_some_and(|a| a != DEFAULT_AGENT) {
        return Err(invalid(
            "sessionTarget: \"main\" only works for the default agent; use \"isolated\" for other agents",
        ));
    }
    match &job.payload {
        Payload::SystemEvent { text } if text.trim().is_empty() => {
            return Err(invalid("payload.text: must not be empty"));
        }
        Payload::AgentTurn { message, .. } if message.trim().is_empty() => {
            return Err(invalid("payload.message: must not be empty"));
        }
        Payload::Command { argv, .. } if argv.is_empty() || argv[0].is_empty() => {
            return Err(invalid("payload.argv: must name a program"));
        }
        Payload::AgentTurn { model: Some(m), .. } if !m.contains('/') => {
            return Err(invalid(format!("payload.model: \"{m}\" must be provider/model, e.g. local/llama3.2")));
        }
        _ => {}
    }
    if let Some(s) = job.payload.timeout_seconds()
        && s > MAX_TIMEOUT_SECONDS
    {
        return Err(invalid(format!(
            "payload.timeoutSeconds: {s} is more than {MAX_TIMEOUT_SECONDS} (30 days); use 0 for no limit"
        )));
    }
    if let Payload::Command { no_output_timeout_seconds: Some(s), .. } = &job.payload
        && *s > MAX_TIMEOUT_SECONDS
    {
        return Err(invalid(format!(
            "payload.noOutputTimeoutSeconds: {s} is more than {MAX_TIMEOUT_SECONDS} (30 days); use 0 for no limit"
        )));
    }
    if let Payload::Command { output_max_bytes: Some(n), .. } = &job.payload
        && !(1..=crate::command::MAX_OUTPUT_MAX_BYTES).contains(n)
    {
        return Err(invalid(format!(
            "payload.outputMaxBytes: {n} is not between 1 and {} (16 MiB); leave it out to keep the last {} bytes \
             (1 MiB) of each stream",
            crate::command::MAX_OUTPUT_MAX_BYTES,
            crate::command::DEFAULT_OUTPUT_MAX_BYTES
        )));
    }
    if let Some(d) = &job.delivery {
        validate_delivery(d, &job.session_target, ctx)?;
    }
    if let Some(FailureAlert::Policy(p)) = &job.failure_alert
        && p.after == Some(0)
    {
        return Err(invalid("failureAlert.after: must be at least 1"));
    }
    Ok(())
}

fn validate_delivery(d: &Delivery, target: &SessionTarget, ctx: &CreateContext) -> Result<(), Invalid> {
    match d.mode {
        DeliveryMode::None => return Ok(()),
        DeliveryMode::Webhook => {
            let to = d.to.as_deref().ok_or_else(|| invalid("delivery.to: a webhook needs an http(s) URL"))?;
            check_webhook_url(to).map_err(|e| invalid(format!("delivery.to: {e}")))?;
            return Ok(());
        }
        DeliveryMode::Announce => {}
    }
    if !target.is_detached() {
        return Err(invalid(
            "delivery.mode: announce is only for isolated or session:<id> jobs; a main-session job may use webhook or none",
        ));
    }
    let channel = d.channel.as_deref().filter(|c| *c != "last");
    if let Some(c) = channel {
        let Some(known) = ctx.channels.get(c) else {
            let names = ctx.channels.names();
            return Err(invalid(format!("delivery.channel: unknown channel \"{c}\" (use {names})")));
        };
        if !known.usable {
            return Err(invalid(format!(
                "delivery.channel: \"{c}\" is not configured; add channels.{c} to the config, or deliver to the inbox"
            )));
        }
    }
    if let (Some(c), Some(prefix)) = (channel, d.to.as_deref().and_then(|to| ctx.channels.prefix_of(to)))
        && prefix != c
    {
        return Err(invalid(format!("delivery.to: the \"{prefix}:\" prefix contradicts delivery.channel \"{c}\"")));
    }
    Ok(())
}

/// An http(s) URL without credentials.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("\"{url}\" is not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not allowed; use cron.webhookToken".into());
    }
    Ok(())
}

/// Applies a `cron.update` patch: a JSON merge patch (objects merge, `null` clears a field) with
/// OpenClaw's exceptions — `schedule` is replaced wholesale and a payload of another kind replaces
/// the payload. The result is validated like a new job.
pub fn apply_patch(job: &Job, patch: &Value, ctx: &CreateContext) -> Result<Job, Invalid> {
    let Some(patch) = patch.as_object() else { return Err(invalid("patch: must be an object")) };
    const PATCHABLE: &[&str] = &[
        "name",
        "description",
        "enabled",
        "agentId",
        "sessionKey",
        "deleteAfterRun",
        "schedule",
        "sessionTarget",
        "wakeMode",
        "payload",
        "delivery",
        "failureAlert",
    ];
    for key in patch.keys() {
        if UNSUPPORTED_FIELDS.contains(&key.as_str()) {
            return Err(invalid(format!("patch.{key}: not supported by Pincer")));
        }
        if !PATCHABLE.contains(&key.as_str()) {
            return Err(invalid(format!("patch: unknown field `{key}`")));
        }
    }
    let mut obj = job.to_json()?;
    let mut patch = Value::Object(patch.clone());
    canonicalize(&mut patch);
    let Value::Object(patch) = patch else { return Err(invalid("patch: must be an object")) };
    let schedule_changed = patch.contains_key("schedule");
    for (key, value) in patch {
        match (key.as_str(), value) {
            (_, Value::Null) => {
                obj.remove(&key);
            }
            ("schedule", v) => {
                obj.insert(key, v);
            }
            ("payload", Value::Object(p)) => {
                let old_kind = obj.get("payload").and_then(|x| x.get("kind")).cloned();
                let new_kind = p.get("kind").cloned();
                if new_kind.is_some() && new_kind != old_kind {
                    check_payload_kind(new_kind.as_ref().and_then(Value::as_str).unwrap_or(""))?;
                    obj.insert(key, Value::Object(p));
                } else {
                    merge(obj.entry("payload").or_insert(json!({})), Value::Object(p));
                }
            }
            ("delivery" | "failureAlert", Value::Object(p)) if obj.get(&key).is_some_and(Value::is_object) => {
                if let Some(target) = obj.get_mut(&key) {
                    merge(target, Value::Object(p));
                }
            }
            (_, v) => {
                obj.insert(key, v);
            }
        }
    }
    obj.insert("updatedAtMs".into(), json!(ctx.now_ms));
    let mut next = parse_job(Value::Object(obj))?;
    if schedule_changed {
        next.schedule = next
            .schedule
            .normalize(&NormalizeContext { now_ms: ctx.now_ms, default_tz: ctx.default_tz, exact: false })
            .map_err(|e| invalid(e.to_string()))?;
    }
    validate(&next, ctx)?;
    Ok(next)
}

/// RFC 7396 merge: objects merge recursively, `null` deletes.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

impl Job {
    /// The job as JSON (serialising a job cannot fail; if it ever did, the error names the job).
    fn to_json(&self) -> Result<Map<String, Value>, Invalid> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(invalid(format!("job {} serialises to {other}, not an object", self.id))),
            Err(e) => Err(invalid(format!("job {} does not serialise: {e}", self.id))),
        }
    }

    /// The definition alone (state emptied), as stored in `job_json`.
    pub fn definition_json(&self) -> Result<String, Invalid> {
        let mut def = self.to_json()?;
        def.insert("state".into(), json!({}));
        Ok(Value::Object(def).to_string())
    }

    /// The scheduler-owned state, as stored in `state_json`.
    pub fn state_json(&self) -> Result<String, Invalid> {
        serde_json::to_string(&self.state)
            .map_err(|e| invalid(format!("job {} state does not serialise: {e}", self.id)))
    }

    /// Rebuilds a job from its stored definition and state.
    pub fn from_stored(job_json: &str, state_json: &str) -> Result<Job, Invalid> {
        let mut v: Value =
            serde_json::from_str(job_json).map_err(|e| invalid(format!("stored job is not JSON: {e}")))?;
        let state: Value =
            serde_json::from_str(state_json).map_err(|e| invalid(format!("stored state is not JSON: {e}")))?;
        v["state"] = state;
        parse_job(v)
    }

    /// An opaque hash of the definition without `updatedAtMs` and `state`, for optimistic
    /// concurrency (`expectedConfigRevision`).
    pub fn config_revision(&self) -> Result<String, Invalid> {
        use base64::Engine;
        let mut def = self.to_json()?;
        def.remove("updatedAtMs");
        def.remove("state");
        let digest = Sha256::digest(Value::Object(def).to_string().as_bytes());
        Ok(format!("sha256:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)))
    }

    /// The agent that runs this job.
    pub fn effective_agent(&self) -> &str {
        self.agent_id.as_deref().unwrap_or(DEFAULT_AGENT)
    }

    /// The zone shown beside this job's times: its cron zone, else the gateway's default.
    pub fn display_tz<'a>(&'a self, default_tz: &'a str) -> &'a str {
        match &self.schedule {
            ScheduleSpec::Cron { tz: Some(tz), .. } => tz,
            _ => default_tz,
        }
    }

    /// The read view: the job plus OpenClaw's computed mirrors (`configRevision`, `nextRunAtMs`, …).
    pub fn view(&self) -> Result<Value, Invalid> {
        let mut o = self.to_json()?;
        o.insert("configRevision".into(), json!(self.config_revision()?));
        let s = &self.state;
        let mirrors: [(&str, Value); 8] = [
            ("nextRunAtMs", json!(s.next_run_at_ms)),
            ("lastRunAtMs", json!(s.last_run_at_ms)),
            ("lastRunStatus", json!(s.last_run_status)),
            ("lastRunError", json!(s.last_error)),
            ("lastDelivered", json!(s.last_delivered)),
            ("lastDeliveryStatus", json!(s.last_delivery_status)),
            ("lastDeliveryError", json!(s.last_delivery_error)),
            ("deliverySuppressionReason", json!(s.delivery_suppression_reason)),
        ];
        for (k, val) in mirrors {
            if !val.is_null() {
                o.insert(k.into(), val);
            }
        }
        Ok(Value::Object(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::channels::KnownChannel;

    /// The registry's channels as the gateway passes them; chat channels usable when `configured`.
    fn catalog(configured: &[&str]) -> &'static ChannelCatalog {
        let known = |name: &'static str, prefixes: &'static [&'static str], chat: bool| KnownChannel {
            name,
            prefixes,
            usable: !chat || configured.contains(&name),
        };
        Box::leak(Box::new(ChannelCatalog::new(vec![
            known("discord", &["discord"], true),
            known("telegram", &["telegram", "tg"], true),
            known("slack", &["slack"], true),
            known("inbox", &["inbox"], false),
            known("webhook", &[], false),
        ])))
    }

    fn ctx() -> CreateContext<'static> {
        CreateContext { now_ms: 1_772_323_200_000, default_tz: "Europe/Berlin", channels: catalog(&[]) }
    }

    fn add(params: Value) -> Result<Job, String> {
        create(&params, "job-1".into(), &ctx()).map_err(|e| e.0)
    }

    #[test]
    fn openclaw_create_defaults() {
        let job = add(json!({
            "name": "tap-iso", "schedule": {"kind": "every", "everyMs": 3600000},
            "payload": {"kind": "agentTurn", "message": "tap test"}
        }))
        .unwrap();
        assert_eq!(job.session_target, SessionTarget::Isolated);
        assert_eq!(job.wake_mode, WakeMode::Now);
        assert!(job.enabled);
        assert_eq!(job.delivery.as_ref().unwrap().mode, DeliveryMode::Announce);
        assert_eq!(job.delivery.as_ref().unwrap().channel.as_deref(), Some("last"));
        let main = add(json!({"schedule": {"kind": "cron", "expr": "*/15 * * * *"},
                              "payload": {"kind": "SYSTEMEVENT", "text": "ping"}}))
        .unwrap();
        assert_eq!(main.session_target, SessionTarget::Main);
        assert_eq!(main.delivery, None);
        assert_eq!(main.name, "ping");
        assert_eq!(main.display_tz("UTC"), "Europe/Berlin", "a cron job stores the default zone");
        let once = add(json!({"schedule": {"kind": "at", "at": "2026-03-02T09:00:00Z"},
                              "payload": {"kind": "command", "argv": ["echo", "hi"]}}))
        .unwrap();
        assert_eq!(once.delete_after_run, Some(true));
    }

    #[test]
    fn bad_input_names_the_field() {
        let base =
            json!({"schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "agentTurn", "message": "m"}});
        let with = |k: &str, v: Value| {
            let mut p = base.clone();
            p[k] = v;
            add(p).unwrap_err()
        };
        assert_eq!(with("surprise", json!(1)), "unknown field `surprise`");
        assert_eq!(with("trigger", json!({})), "trigger: not supported by Pincer");
        assert!(
            with("payload", json!({"kind": "agentTurn", "message": "m", "colour": 1}))
                .starts_with("payload: unknown field `colour`")
        );
        assert!(
            with("payload", json!({"kind": "script", "script": "x"}))
                .starts_with("payload.kind: \"script\" is not supported")
        );
        assert!(with("sessionTarget", json!("main")).starts_with("sessionTarget: \"main\" runs system events only"));
        assert!(with("sessionTarget", json!("session:../etc")).contains("is not allowed"));
        assert!(
            with("delivery", json!({"mode": "announce", "channel": "discord", "to": "telegram:123"}))
                .contains("is not configured")
        );
        assert!(with("delivery", json!({"mode": "webhook", "to": "ftp://x"})).starts_with("delivery.to:"));
        assert!(with("delivery", json!({"mode": "webhook", "to": "https://u:p@x/"})).contains("credentials"));
        assert_eq!(with("delivery", json!(["none"])), "delivery: invalid type: sequence, expected an object");
        assert_eq!(
            with("schedule", json!(["every", 60000, null])),
            "schedule: invalid type: sequence, expected an object"
        );
        let command = |k: &str, v: Value| with("payload", json!({"kind": "command", "argv": ["true"], k: v}));
        assert_eq!(
            command("outputMaxBytes", json!(0)),
            "payload.outputMaxBytes: 0 is not between 1 and 16777216 (16 MiB); leave it out to keep the last 1048576 \
             bytes (1 MiB) of each stream"
        );
        assert!(command("outputMaxBytes", json!(16_777_217)).starts_with("payload.outputMaxBytes: 16777217 is not"));
        assert_eq!(
            command("noOutputTimeoutSeconds", json!(2_592_001)),
            "payload.noOutputTimeoutSeconds: 2592001 is more than 2592000 (30 days); use 0 for no limit"
        );
        assert_eq!(
            with("payload", json!({"kind": "agentTurn", "message": "m", "timeoutSeconds": u64::MAX})),
            "payload.timeoutSeconds: 18446744073709551615 is more than 2592000 (30 days); use 0 for no limit"
        );
    }

    #[test]
    fn a_huge_stored_timeout_is_bounded() {
        // Found by the `job` fuzz target: `timeoutSeconds * 1000` overflowed for huge values.
        let payload = Payload::Command {
            argv: vec!["true".into()],
            cwd: None,
            env: None,
            input: None,
            timeout_seconds: Some(u64::MAX),
            no_output_timeout_seconds: None,
            output_max_bytes: None,
        };
        assert_eq!(payload.timeout_ms(), Some(MAX_TIMEOUT_SECONDS * 1_000));
    }

    #[test]
    fn prefix_contradicting_channel_is_rejected() {
        let params = json!({"schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "agentTurn", "message": "m"},
            "delivery": {"mode": "announce", "channel": "discord", "to": "telegram:123"}});
        let ctx = CreateContext { channels: catalog(&["discord", "telegram"]), ..ctx() };
        let err = create(&params, "j".into(), &ctx).unwrap_err().0;
        assert_eq!(err, "delivery.to: the \"telegram:\" prefix contradicts delivery.channel \"discord\"");
    }

    #[test]
    fn patch_merges_and_null_clears() {
        let job = add(json!({"schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "agentTurn", "message": "m", "model": "local/a"},
            "delivery": {"mode": "announce", "channel": "inbox", "bestEffort": true}}))
        .unwrap();
        let patched = apply_patch(
            &job,
            &json!({"payload": {"model": null, "message": "new"}, "delivery": {"bestEffort": null}, "enabled": false}),
            &ctx(),
        )
        .unwrap();
        match &patched.payload {
            Payload::AgentTurn { message, model, .. } => assert_eq!((message.as_str(), model), ("new", &None)),
            other => panic!("{other:?}"),
        }
        assert_eq!(patched.delivery.as_ref().unwrap().best_effort, None);
        assert_eq!(patched.delivery.as_ref().unwrap().channel.as_deref(), Some("inbox"));
        assert!(!patched.enabled);
        assert_ne!(patched.config_revision(), job.config_revision());
        assert!(apply_patch(&job, &json!({"state": {}}), &ctx()).unwrap_err().0.contains("not supported"));
    }

    #[test]
    fn stored_round_trip_and_revision_ignores_state() {
        let mut job = add(json!({"schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"}}))
        .unwrap();
        let before = job.config_revision();
        job.state.next_run_at_ms = Some(5);
        job.state.consecutive_errors = 2;
        assert_eq!(job.config_revision(), before);
        let state = serde_json::to_string(&job.state).unwrap();
        let back = Job::from_stored(&job.definition_json().unwrap(), &state).unwrap();
        assert_eq!(back, job);
        assert_eq!(job.view().unwrap()["nextRunAtMs"], 5);
    }
}
