//! `cron.*`: the job as it is stored and sent (OpenClaw's `CronJobSchema`: schedule, payload,
//! delivery, failure alert, state), the read view clients get, and each method's params and
//! result. The create defaults, validation and merge patches that turn params into a job are the
//! scheduler's (`pincer-cron`); what is here is the shape.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::agent::Usage;
use super::{Ignored, Params, ParamsError, deserialize_closed, is_zero, methods};
use crate::state::{CompletionStatus, DeliveryStatus, ExecStatus, RunErrorReason, SuppressionReason};

methods! {
    /// The scheduler's own status.
    Status = "cron.status" (Ignored) -> CronStatus;
    /// Jobs, filtered, sorted and paged.
    List = "cron.list" (ListParams) -> ListResult;
    /// One job's read view.
    Get = "cron.get" (JobRef) -> CronJob;
    /// Pincer's: a job's zone, next fire times and delivery route.
    Preview = "cron.preview" (PreviewParams) -> PreviewResult;
    /// Creates a job; answers its read view with `deliveryPreview`.
    Add = "cron.add" (AddParams) -> AddResult;
    /// Changes a job by a merge patch.
    Update = "cron.update" (UpdateParams) -> CronJob;
    /// Deletes a job and its runs.
    Remove = "cron.remove" (JobRef) -> RemoveResult;
    /// Runs a job now.
    Run = "cron.run" (RunParams) -> RunResult;
    /// Run history.
    Runs = "cron.runs" (RunsParams) -> RunsResult;
    /// A job's private scratch (kept out of the job and its history).
    ScratchGet = "cron.scratch.get" (JobRef) -> ScratchGetResult;
    /// Replaces or clears a job's scratch, optionally compare-and-swap on its revision.
    ScratchSet = "cron.scratch.set" (ScratchSetParams) -> ScratchSetResult;
}

/// The agent every job belongs to unless it names another.
pub const DEFAULT_AGENT: &str = "main";

/// The last millisecond of 9999-12-31, so a stored `at` always has a four-digit year.
pub const MAX_AT_MS: i64 = 253_402_300_799_999;

/// Formats epoch milliseconds as OpenClaw stores `at`: ISO-8601 UTC with milliseconds and `Z`
/// (`2026-03-01T09:00:00.000Z`), or `None` outside years 0000–9999.
pub fn format_iso_utc(ms: i64) -> Option<String> {
    if !(0..=MAX_AT_MS).contains(&ms) {
        return None;
    }
    Some(chrono::DateTime::from_timestamp_millis(ms)?.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

// ---------------------------------------------------------------------------------------------
// The job.

/// A job's `schedule` as it travels in JSON and is stored: closed, camelCase, tagged by `kind`.
///
/// Deserialising accepts the legacy `{"kind":"at","atMs":<ms>}` and turns it into `at`; serialising
/// writes exactly the fields present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase", try_from = "WireSchedule")]
pub enum ScheduleSpec {
    /// Fire once.
    At {
        /// ISO-8601 (stored as UTC with `Z`) or digits-only epoch milliseconds.
        at: String,
    },
    /// Fire every `every_ms` on the grid `anchor_ms + k·every_ms`.
    Every {
        /// The interval in milliseconds, at least 1.
        every_ms: i64,
        /// The grid origin in epoch milliseconds; defaults to the creation time.
        #[serde(skip_serializing_if = "Option::is_none")]
        anchor_ms: Option<i64>,
    },
    /// Fire on a cron expression in a time zone, shifted by the job's stagger offset.
    Cron {
        /// 5 fields, or 6 with leading seconds.
        expr: String,
        /// IANA zone; normalisation fills in the default zone.
        #[serde(skip_serializing_if = "Option::is_none")]
        tz: Option<String>,
        /// The stagger window in milliseconds (0 = exact); normalisation fills in the default.
        #[serde(skip_serializing_if = "Option::is_none")]
        stagger_ms: Option<i64>,
    },
}

impl ScheduleSpec {
    /// The wire `kind`: `at`, `every` or `cron`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScheduleSpec::At { .. } => "at",
            ScheduleSpec::Every { .. } => "every",
            ScheduleSpec::Cron { .. } => "cron",
        }
    }
}

/// What the wire may carry: the stored fields plus the legacy `atMs`.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
enum WireSchedule {
    At { at: Option<String>, at_ms: Option<i64> },
    Every { every_ms: i64, anchor_ms: Option<i64> },
    Cron { expr: String, tz: Option<String>, stagger_ms: Option<i64> },
}

impl TryFrom<WireSchedule> for ScheduleSpec {
    type Error = String;

    fn try_from(wire: WireSchedule) -> Result<Self, Self::Error> {
        Ok(match wire {
            // `at` wins when a legacy row carries both.
            WireSchedule::At { at: Some(at), .. } => ScheduleSpec::At { at },
            WireSchedule::At { at: None, at_ms: Some(ms) } => ScheduleSpec::At {
                at: format_iso_utc(ms)
                    .filter(|_| ms > 0)
                    .ok_or_else(|| format!("`atMs` must be a positive epoch-millisecond time, got {ms}"))?,
            },
            WireSchedule::At { at: None, at_ms: None } => return Err("missing field `at`".to_string()),
            WireSchedule::Every { every_ms, anchor_ms } => ScheduleSpec::Every { every_ms, anchor_ms },
            WireSchedule::Cron { expr, tz, stagger_ms } => ScheduleSpec::Cron { expr, tz, stagger_ms },
        })
    }
}

/// A cron job as stored and as sent on the wire (OpenClaw's `CronJobSchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    pub id: String,
    pub name: String,
    /// OpenClaw's UI label, shown by `openclaw cron show`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The key a declared job was added with (see [`JobInput::declaration_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration_key: Option<String>,
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
    /// OpenClaw's dynamic cadence (`--pacing-min/--pacing-max`): a run may propose its next check
    /// (the `cron` tool's `next_check`), clamped to these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
    #[serde(default)]
    pub state: JobState,
}

/// A job's dynamic-cadence bounds (OpenClaw's `CronPacingSchema`): durations such as `15m` or
/// `4h`, at least one of them, `min` not above `max`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pacing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

impl Job {
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
        SessionTarget::parse(&String::deserialize(d)?).map_err(D::Error::custom)
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
    pub fn timeout_seconds(&self) -> Option<u64> {
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
            v @ Value::Object(_) => serde_json::from_value(v).map(FailureAlert::Policy).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!("expected false or an object, got {other}"))),
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

/// Scheduler-owned state. Clients never write it. The fields marked *Pincer* are kept in the store
/// but are not in OpenClaw's closed `CronJobStateSchema`; [`JobState::openclaw`] leaves them out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at_ms: Option<i64>,
    /// Pincer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<u64>,
    /// Pincer.
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
    /// Pincer: runs in a row whose completion was not `succeeded` (drives failure alerts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    /// Pincer.
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
    /// Pincer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub schedule_error_count: u32,
}

impl JobState {
    /// The state limited to OpenClaw's closed schema: Pincer's own fields left out.
    pub fn openclaw(&self) -> JobState {
        JobState {
            running_run_id: None,
            last_run_id: None,
            consecutive_failures: 0,
            last_completion_status: None,
            schedule_error_count: 0,
            ..self.clone()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing a job: `cron.add` and `cron.update`.

/// A job as a client writes it (`cron.add`): everything but `schedule` and `payload` may be left
/// to the create defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// OpenClaw's UI label (`--display-name`), at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// OpenClaw's idempotent identity (`--declaration-key`): a second `cron.add` with the same
    /// key updates that job instead of creating another. At most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_run: Option<bool>,
    pub schedule: ScheduleSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_target: Option<SessionTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_mode: Option<WakeMode>,
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_alert: Option<FailureAlert>,
    /// See [`Job::pacing`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
}

/// The fields a client may write, in `cron.add` and in a `cron.update` patch: [`JobInput`]'s.
pub fn job_fields() -> &'static [&'static str] {
    super::field_names::<JobInput>()
}

/// OpenClaw job fields Pincer does not implement: refused by name instead of ignored.
pub const UNSUPPORTED_JOB_FIELDS: &[&str] = &["owner", "trigger", "scheduledToolPolicy", "state"];

/// `cron.add` params: a [`JobInput`] after OpenClaw's accepted aliases are rewritten
/// ([`canonicalize`]) and the payload kind is checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AddParams(pub JobInput);

impl Params for AddParams {
    const UNSUPPORTED: &'static [&'static str] = UNSUPPORTED_JOB_FIELDS;
}

impl<'de> Deserialize<'de> for AddParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = Value::deserialize(d)?;
        let Some(input) = v.as_object() else { return Err(D::Error::custom("params must be an object")) };
        let fields = job_fields();
        if let Some(key) = input.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(D::Error::unknown_field(key, fields));
        }
        canonicalize(&mut v);
        check_payload_kind(v.get("payload").and_then(|p| p.get("kind")).and_then(Value::as_str).unwrap_or(""))
            .map_err(D::Error::custom)?;
        deserialize_closed(&v).map(AddParams).map_err(D::Error::custom)
    }
}

/// Rewrites OpenClaw's accepted aliases into the canonical shape before the strict parse:
/// payload kinds matched case-insensitively, `deliver` → `announce`, a delivery without a mode is
/// an announce, numeric thread ids become strings, legacy `jobId` becomes `id`.
pub fn canonicalize(v: &mut Value) {
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

/// A payload kind Pincer runs, or the error that says which ones it does.
pub fn check_payload_kind(kind: &str) -> Result<(), String> {
    match kind {
        "systemEvent" | "agentTurn" | "command" => Ok(()),
        "" => Err("payload.kind: required (systemEvent, agentTurn or command)".into()),
        "script" | "heartbeat" => {
            Err(format!("payload.kind: \"{kind}\" is not supported by Pincer (use systemEvent, agentTurn or command)"))
        }
        other => Err(format!("payload.kind: unknown kind \"{other}\" (use systemEvent, agentTurn or command)")),
    }
}

/// A `cron.update` patch: a JSON merge patch over the job's writable fields (objects merge, `null`
/// clears a field). It stays JSON because that is what a merge patch is; the scheduler checks its
/// keys against [`job_fields`] and parses the merged job strictly.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct JobPatch(pub Map<String, Value>);

impl<'de> Deserialize<'de> for JobPatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(m) => Ok(JobPatch(m)),
            _ => Err(D::Error::custom("must be an object")),
        }
    }
}

/// `{id}` or its legacy alias `{jobId}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl Params for JobRef {}

impl JobRef {
    pub fn new(id: impl Into<String>) -> JobRef {
        JobRef { id: Some(id.into()), job_id: None }
    }
}

/// `id`, or its legacy alias `jobId`, required and not empty.
pub fn require_id(method: &str, id: Option<&str>, job_id: Option<&str>) -> Result<String, ParamsError> {
    id.or(job_id).filter(|s| !s.is_empty()).map(String::from).ok_or_else(|| ParamsError::new(method, "id is required"))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub patch: JobPatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_config_revision: Option<String>,
}

impl Params for UpdateParams {}

// ---------------------------------------------------------------------------------------------
// Reading jobs.

/// A job as clients read it: OpenClaw's read view — the job, its `configRevision` and the state
/// mirrors OpenClaw puts at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJob {
    #[serde(flatten)]
    pub job: Job,
    pub config_revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<ExecStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_status: Option<DeliveryStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_suppression_reason: Option<SuppressionReason>,
    /// In `cron.list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_agent_id: Option<String>,
    /// In `cron.add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_preview: Option<DeliveryPreview>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `cron.add`'s answer: the new job, or — when the params carry a `declarationKey` — OpenClaw's
/// convergence answer `{created, updated?, job, deliveryPreview?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddResult {
    Declared(Declared),
    Created(Box<CronJob>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Declared {
    /// False when a job with this key already existed (and was updated to the declaration).
    pub created: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<bool>,
    pub job: Box<CronJob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_preview: Option<DeliveryPreview>,
}

impl AddResult {
    /// The job's read view, with its delivery preview, whichever form the answer took.
    pub fn into_job(self) -> CronJob {
        match self {
            AddResult::Created(job) => *job,
            AddResult::Declared(d) => CronJob { delivery_preview: d.delivery_preview, ..*d.job },
        }
    }
}

impl CronJob {
    /// The read view of `job` (its state as given) with `configRevision`.
    pub fn new(job: Job, config_revision: String) -> CronJob {
        let s = &job.state;
        CronJob {
            config_revision,
            next_run_at_ms: s.next_run_at_ms,
            last_run_at_ms: s.last_run_at_ms,
            last_run_status: s.last_run_status,
            last_run_error: s.last_error.clone(),
            last_delivered: s.last_delivered,
            last_delivery_status: s.last_delivery_status,
            last_delivery_error: s.last_delivery_error.clone(),
            delivery_suppression_reason: s.delivery_suppression_reason,
            effective_agent_id: None,
            delivery_preview: None,
            extra: Map::new(),
            job,
        }
    }
}

/// Where a job's results go, as OpenClaw previews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPreview {
    pub label: String,
    pub detail: String,
}

/// `cron.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronStatus {
    pub enabled: bool,
    pub storage: String,
    pub sqlite_path: String,
    pub store_path: String,
    pub jobs: u64,
    pub enabled_jobs: u64,
    pub running: u64,
    pub max_concurrent_runs: u64,
    pub next_wake_at_ms: Option<i64>,
    pub last_tick_at_ms: Option<i64>,
    pub ticks: u64,
    pub timezone: String,
    pub skip_missed_jobs: bool,
    pub invalid_jobs: Vec<InvalidJob>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A stored job the scheduler cannot run until it is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidJob {
    pub id: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Accepted and ignored: OpenClaw's chat clients scope the list to their conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// Accepted and ignored, as `sessionKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_delivery_previews: Option<bool>,
    /// Pincer: continue after the page that answered with this `nextCursor` (`""`: from the
    /// start). A keyed page costs its own rows wherever it is and allows `limit` up to 1000;
    /// `offset` is then only the caller's count of the rows before it, for `nextOffset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Params for ListParams {}

/// `cron.list`: a page of jobs with OpenClaw's canonical page metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResult {
    pub jobs: Vec<CronJob>,
    pub snapshot_revision: String,
    pub total: u64,
    pub offset: u32,
    pub limit: u32,
    pub has_more: bool,
    pub next_offset: Option<u64>,
    /// Pincer, answering a `cursor`: where the next page starts (none after the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Pincer: the zone that `every` and `at` jobs are shown in.
    pub timezone: String,
    /// By job id; left out of compact pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_previews: Option<indexmap::IndexMap<String, DeliveryPreview>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreviewParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// How many fire times (default 5, at most 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

impl Params for PreviewParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewResult {
    pub job_id: String,
    pub tz: String,
    pub upcoming: Vec<i64>,
    pub delivery_preview: DeliveryPreview,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveResult {
    pub ok: bool,
    pub removed: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// Scratch.

/// The most a job's scratch may hold, in UTF-8 bytes (OpenClaw's `CRON_JOB_SCRATCH_MAX_BYTES`).
pub const SCRATCH_MAX_BYTES: usize = 262_144;

/// A job's scratch content at a revision (OpenClaw's `CronScratchSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scratch {
    pub content: String,
    pub revision: i64,
    pub updated_at_ms: i64,
}

/// `cron.scratch.get`'s answer: the content (`null` when never written or cleared), the revision
/// a compare-and-swap names, and the size limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScratchGetResult {
    pub scratch: Option<Scratch>,
    pub current_revision: i64,
    pub max_bytes: usize,
}

/// `cron.scratch.set`: `content` replaces the scratch, `null` clears it; with `expectedRevision`
/// the write happens only at that revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScratchSetParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Required; `null` clears.
    #[serde(deserialize_with = "present_or_null")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<u32>,
}

impl Params for ScratchSetParams {}

/// A required field whose `null` means "clear" (a missing field is a parse error).
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// `cron.scratch.set`'s answer: OpenClaw's union — written, or a revision conflict that wrote
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScratchSetResult {
    Written(ScratchWritten),
    Conflict(ScratchConflict),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScratchWritten {
    /// Always true.
    pub ok: bool,
    pub scratch: Option<Scratch>,
    pub current_revision: i64,
    pub max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScratchConflict {
    /// Always false.
    pub ok: bool,
    pub reason: crate::state::ScratchConflictReason,
    pub current_revision: i64,
}

// ---------------------------------------------------------------------------------------------
// Runs.

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// `force` (default), `due` or `if-enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_process_instance_id: Option<String>,
}

impl Params for RunParams {}

/// `cron.run`: `{ok, enqueued, runId}` once the run is durably reserved, or `{ok, ran: false,
/// reason}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueued: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The answering gateway's boot id (`expectedProcessInstanceId` of a later call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_instance_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RunResult {
    /// `{ok: true, enqueued: true, runId}`.
    pub fn enqueued(run_id: String) -> RunResult {
        RunResult { ok: true, enqueued: Some(true), run_id: Some(run_id), ..RunResult::default() }
    }

    /// `{ok: true, ran: false, reason}`.
    pub fn not_ran(reason: &str) -> RunResult {
        RunResult { ok: true, ran: Some(false), reason: Some(reason.into()), ..RunResult::default() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunsParams {
    /// `job` (with an id) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Accepted and ignored: Pincer runs one agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_statuses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<String>,
}

impl Params for RunsParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunsResult {
    pub entries: Vec<RunEntry>,
    pub total: u64,
    pub offset: u32,
    pub limit: u32,
    pub has_more: bool,
    pub next_offset: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One run in `cron.runs`: OpenClaw's run-log entry. `status` and `completionStatus` appear only
/// once the run is complete (executed and its delivery settled); before that `phase` says where
/// it is (`running`, `delivering`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEntry {
    pub ts: i64,
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Always `finished`.
    pub action: String,
    pub run_id: String,
    /// `scheduled`, `manual`, `catch-up`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    // A wire spelling kept as a string: run entries are read from OpenClaw gateways too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// A command payload's process record (exit code, output sizes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// The route the result took (`{resolved: {channel, to, …, source}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_id: Option<String>,
    // A wire spelling kept as a string: run entries are read from OpenClaw gateways too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_suppression_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<i64>,
    // A wire spelling kept as a string: run entries are read from OpenClaw gateways too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_status: Option<String>,
    // A wire spelling kept as a string: run entries are read from OpenClaw gateways too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `running` or `delivering`, while the run is not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_params;

    fn add(v: Value) -> Result<JobInput, String> {
        parse_params::<AddParams>("cron.add", Some(&v)).map(|p| p.0).map_err(|e| e.0)
    }

    #[test]
    fn add_params_are_closed_and_accept_openclaw_aliases() {
        let base = json!({"schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "AGENTTURN", "message": "m"},
                          "delivery": {"threadId": 42}});
        let input = add(base.clone()).unwrap();
        assert_eq!(input.payload.kind(), "agentTurn");
        let d = input.delivery.unwrap();
        assert_eq!((d.mode, d.thread_id.as_deref()), (DeliveryMode::Announce, Some("42")));
        let with = |k: &str, v: Value| {
            let mut p = base.clone();
            p[k] = v;
            add(p).unwrap_err()
        };
        assert!(
            with("colour", json!(1))
                .starts_with("invalid cron.add params: unknown field `colour`, expected one of `name`")
        );
        assert_eq!(with("trigger", json!({})), "invalid cron.add params: trigger: not supported by Pincer");
        assert_eq!(
            with("delivery", json!(["none"])),
            "invalid cron.add params: delivery: invalid type: sequence, expected an object"
        );
        assert!(
            with("payload", json!({"kind": "script"})).contains("payload.kind: \"script\" is not supported by Pincer")
        );
        assert_eq!(
            add(json!({"payload": {"kind": "command", "argv": ["true"]}})).unwrap_err(),
            "invalid cron.add params: missing field `schedule`"
        );
        assert_eq!(
            add(json!({"schedule": {"kind": "every", "everyMs": 1}})).unwrap_err(),
            "invalid cron.add params: payload.kind: required (systemEvent, agentTurn or command)"
        );
        assert_eq!(
            job_fields(),
            [
                "name",
                "displayName",
                "declarationKey",
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
                "pacing"
            ]
        );
    }

    #[test]
    fn legacy_at_ms_becomes_at() {
        let s: ScheduleSpec = serde_json::from_value(json!({"kind": "at", "atMs": 1_772_323_200_000i64})).unwrap();
        assert_eq!(s, ScheduleSpec::At { at: "2026-03-01T00:00:00.000Z".into() });
        assert!(serde_json::from_value::<ScheduleSpec>(json!({"kind": "at", "atMs": -1})).is_err());
    }

    #[test]
    fn the_read_view_mirrors_state_and_keeps_unknown_fields() {
        let job: Job = serde_json::from_value(json!({
            "id": "j", "name": "n", "enabled": true, "createdAtMs": 1, "updatedAtMs": 2,
            "schedule": {"kind": "every", "everyMs": 60000, "anchorMs": 0}, "sessionTarget": "isolated",
            "wakeMode": "now", "payload": {"kind": "command", "argv": ["true"]},
            "state": {"nextRunAtMs": 5, "lastRunStatus": "ok", "consecutiveFailures": 2}}))
        .unwrap();
        let mut view = CronJob::new(job.clone(), "sha256:x".into());
        view.job.state = job.state.openclaw();
        let v = serde_json::to_value(&view).unwrap();
        assert_eq!((v["nextRunAtMs"].clone(), v["lastRunStatus"].clone()), (json!(5), json!("ok")));
        assert_eq!(v["state"], json!({"nextRunAtMs": 5, "lastRunStatus": "ok"}), "Pincer's own state is left out");
        let mut newer = v.clone();
        newer["sessionCleanup"] = json!("pending");
        let back: CronJob = serde_json::from_value(newer.clone()).unwrap();
        assert_eq!(back.extra["sessionCleanup"], "pending");
        assert_eq!(serde_json::to_value(&back).unwrap(), newer);
    }
}
