//! `health`, `status` and `doctor.run`: the gateway itself. `health` is OpenClaw-shaped (the stock
//! `openclaw health` renders it) with Pincer's details under `pincer`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Ignored, methods};

methods! {
    /// OpenClaw's health summary plus Pincer's details.
    Health = "health" (Ignored) -> HealthSummary;
    /// The running gateway: version, process, paths, port.
    Status = "status" (Ignored) -> StatusResult;
    /// Checks configuration, store, channels, providers, outbox and jobs.
    DoctorRun = "doctor.run" (Ignored) -> DoctorReport;
    /// A bounded read of the gateway's log file after a byte cursor (OpenClaw's shapes).
    LogsTail = "logs.tail" (LogsTailParams) -> LogsTailResult;
}

/// `logs.tail` params: all optional; without a cursor, the end of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogsTailParams {
    /// The byte offset a previous read answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
    /// Lines at most, 1..5000 (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Bytes read at most, 1..1000000 (default 250000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

impl super::Params for LogsTailParams {}

/// `logs.tail` answer: whole lines, oldest first, and the cursor of the next read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsTailResult {
    pub file: String,
    pub cursor: u64,
    pub size: u64,
    pub lines: Vec<String>,
    /// Older lines than those returned were left out (`limit` or `maxBytes`).
    pub truncated: bool,
    /// The cursor did not fit the file (rotated, or too far behind); the read started anew.
    pub reset: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_bytes: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSummary {
    /// False while the store cannot write or a background task is down.
    pub ok: bool,
    pub ts: i64,
    pub duration_ms: u64,
    pub channels: IndexMap<String, ChannelHealth>,
    pub channel_order: Vec<String>,
    pub channel_labels: IndexMap<String, String>,
    pub heartbeat_seconds: u64,
    pub default_agent_id: String,
    pub agents: Vec<AgentHealth>,
    pub sessions: SessionsSummary,
    pub delivery_queues: DeliveryQueues,
    pub pincer: PincerHealth,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One channel's outbox, as `health` and `doctor` see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelHealth {
    pub configured: bool,
    /// `healthy`, `rate-limited` or `credentials-rejected`.
    // state enum: h12-core
    pub health_state: String,
    /// Pending and being sent.
    pub pending: u64,
    pub oldest_pending_age_ms: Option<i64>,
    pub dead: u64,
    pub unknown: u64,
    pub delivered: u64,
    /// Why the channel is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Until when a rate-limited channel is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until_ms: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The outbox's health: every channel, and the channels holding dead deliveries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboxHealth {
    pub channels: IndexMap<String, ChannelHealth>,
    pub failed: Vec<FailedQueue>,
}

/// A channel with dead deliveries (OpenClaw's `deliveryQueues.failed` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedQueue {
    pub queue_name: String,
    pub count: u64,
    pub oldest_failed_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryQueues {
    pub failed: Vec<FailedQueue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentHealth {
    pub agent_id: String,
    pub is_default: bool,
    pub heartbeat: HeartbeatHealth,
    pub sessions: SessionsSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatHealth {
    pub enabled: bool,
    pub every: String,
    pub every_ms: u64,
}

/// OpenClaw's session store summary: Pincer points at its database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsSummary {
    pub path: String,
    pub count: u64,
    pub recent: Vec<RecentSession>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PincerHealth {
    pub version: String,
    pub uptime_ms: u64,
    pub ready: bool,
    pub channels_healthy: bool,
    pub store: StoreHealth,
    /// The long-lived tasks: running, restarting (with the last error), failed.
    pub tasks: Vec<TaskReport>,
    /// Pressure on the gateway port: open sockets against the cap, refusals, slowloris.
    pub connections: ConnectionPressure,
    /// The config file's last reload: a refused edit's reason, keys waiting for a restart.
    #[serde(default)]
    pub config: ConfigReloadStatus,
    /// The configured MCP servers (absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<super::tools::McpServerInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How the running gateway's configuration relates to its file (`health`'s `pincer.config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReloadStatus {
    /// Accepted reloads since start.
    pub reloads: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_at_ms: Option<i64>,
    /// Why the file's current text was refused (the running configuration stays); `None` once
    /// an edit is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at_ms: Option<i64>,
    /// Changed keys the running gateway cannot apply (`gateway.port`, …): they take effect at
    /// the next start.
    pub restart_needed: Vec<String>,
}

/// Where a supervised long-lived task (the scheduler, the outbox loop, …) is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Running,
    /// It failed and waits for its next start (`restartAtMs`).
    Restarting,
    /// It failed too many times in a row and is not started again.
    Failed,
    /// It returned on purpose (the gateway is stopping).
    Stopped,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Restarting => "restarting",
            TaskState::Failed => "failed",
            TaskState::Stopped => "stopped",
        }
    }
}

/// One supervised task as `health`, `status`, `doctor` and `/readyz` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    pub name: String,
    /// The gateway is not ready (`/readyz` 503) while a critical task is not running.
    pub critical: bool,
    pub state: TaskState,
    /// Since when it is in this state.
    pub since_ms: i64,
    /// Times it was started again after a failure, since the gateway started.
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at_ms: Option<i64>,
    /// When a restarting task starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at_ms: Option<i64>,
}

impl TaskReport {
    /// Down: a critical task that is not running (the gateway is not ready), or any failed task.
    pub fn is_down(&self) -> bool {
        match self.state {
            TaskState::Running => false,
            TaskState::Failed => true,
            TaskState::Restarting | TaskState::Stopped => self.critical,
        }
    }

    /// One line for people: `restarting after 2 restarts; last error: panicked: …`.
    pub fn describe(&self) -> String {
        let mut out = self.state.as_str().to_string();
        if self.restarts > 0 {
            out.push_str(&format!(" after {} restart{}", self.restarts, if self.restarts == 1 { "" } else { "s" }));
        }
        if let Some(e) = &self.last_error {
            out.push_str(&format!("; last error: {e}"));
        }
        out
    }
}

/// `GET /readyz`: whether the gateway takes work, and if not, what is failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub ready: bool,
    /// `startup`, `store`, or the name of a critical task that is down.
    pub failing: Vec<String>,
    pub uptime_ms: u64,
    /// While the store cannot write: what failed and how to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreHealth>,
    /// The critical tasks that are down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskReport>,
}

/// Whether writes reach the disk; while they do not, what failed and how to fix it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreHealth {
    pub writable: bool,
    /// `disk-full`, `read-only`, `io`, `corrupt`, `locked` or `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_writes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Sockets on the gateway port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPressure {
    pub open: u64,
    pub max: u64,
    /// Where `max` comes from (the config, the open-file limit, the default).
    pub max_source: String,
    pub unauthenticated: u64,
    pub busiest_address_unauthenticated: u64,
    pub max_unauthenticated_per_address: u64,
    pub refused: Refused,
    pub header_timeouts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    pub at_capacity: u64,
    pub per_address: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResult {
    pub ok: bool,
    pub version: String,
    pub pid: u32,
    pub boot_id: String,
    pub generation: i64,
    pub started_at_ms: i64,
    pub uptime_ms: u64,
    pub ready: bool,
    pub state_dir: String,
    pub config_path: String,
    pub store: StoreStatus,
    /// The supervised long-lived tasks and their states.
    pub tasks: Vec<TaskReport>,
    pub gateway: GatewayStatus,
    /// OpenClaw's status summary fields (`openclaw status --json` and `--all` read them).
    pub runtime_version: String,
    pub heartbeat: StatusHeartbeat,
    /// One line per configured channel.
    pub channel_summary: Vec<String>,
    /// Main-session system events waiting for the next heartbeat or turn.
    pub queued_system_events: Vec<String>,
    pub sessions: StatusSessions,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenClaw's `status.heartbeat`: each agent's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusHeartbeat {
    pub default_agent_id: String,
    pub agents: Vec<StatusHeartbeatAgent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusHeartbeatAgent {
    pub agent_id: String,
    pub enabled: bool,
    pub every: String,
    pub every_ms: u64,
    /// Pincer's heartbeat runs in the main session and needs no last route.
    pub waiting_for_route: bool,
}

/// OpenClaw's `status.sessions`: Pincer's sessions all live in its one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusSessions {
    pub paths: Vec<String>,
    pub count: u64,
    pub defaults: SessionDefaults,
    /// The ten most recently updated sessions.
    pub recent: Vec<RecentSession>,
    pub by_agent: Vec<AgentSessions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDefaults {
    pub model: Option<String>,
    pub context_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSessions {
    pub agent_id: String,
    pub path: String,
    pub count: u64,
    pub recent: Vec<RecentSession>,
}

/// One session row of `status` and `health` (OpenClaw's `key`, `updatedAt`, `age`, plus the
/// session's model, kind and token counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentSession {
    pub key: String,
    pub agent_id: String,
    pub kind: String,
    pub updated_at: i64,
    pub age: i64,
    pub model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    pub path: String,
    pub schema_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    pub port: u16,
    /// `loopback` or `lan`.
    pub bind: String,
    /// `token` or `none`.
    pub auth_mode: String,
    pub connections: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// No finding fails.
    pub ok: bool,
    pub failing: u64,
    pub warnings: u64,
    pub findings: Vec<Finding>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One check's result, and how to fix what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What was checked: `config.token`, `channel.discord`, `job.<id>`, …
    pub check: String,
    pub status: FindingStatus,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    Ok,
    Warn,
    Fail,
}
