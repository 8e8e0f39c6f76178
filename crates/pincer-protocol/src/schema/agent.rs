//! `agent`, `agents.list` and `wake`: one agent turn, the roster, and queued system events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cron::WakeMode;
use super::{Params, methods};

methods! {
    /// Runs one turn in a session and answers with the reply.
    Agent = "agent" (AgentParams) -> AgentResult;
    /// The agent roster, in OpenClaw's shape.
    AgentsList = "agents.list" (AgentsListParams) -> AgentsListResult;
    /// Queues a system event for a session.
    Wake = "wake" (WakeParams) -> WakeResult;
    /// An agent's display identity.
    AgentIdentityGet = "agent.identity.get" (AgentIdentityParams) -> AgentIdentity;
    /// Waits for a run (`agent` or `chat.send`) to end, at most `timeoutMs` (30 s by default).
    AgentWait = "agent.wait" (AgentWaitParams) -> AgentWaitResult;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentWaitParams {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Params for AgentWaitParams {}

/// How a run ended: `status` is `ok`, `error` or `timeout` (still running, or never started, when
/// the wait ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentWaitResult {
    pub run_id: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentIdentityParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent that owns this session (`agent:<id>:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
}

impl Params for AgentIdentityParams {}

/// OpenClaw's agent identity: Pincer's agents have their id as their name (`nameSource:
/// "default"`) and no avatar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentIdentity {
    pub agent_id: String,
    pub name: String,
    pub name_source: String,
    pub avatar_status: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token accounting of one completion, normalised across APIs the way OpenClaw stores it:
/// `input_tokens` excludes cache reads and writes (OpenAI's `prompt_tokens − cached_tokens`,
/// Anthropic's `input_tokens`), so `input + output + cache_read + cache_write` is everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentParams {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `main` (default), `isolated`, `session:<id>`, or a full key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// OpenClaw's `--session-id`: the session whose `sessionId` this is (Pincer's is the key, so a
    /// full key such as `agent:main:session:notes`), else the named session `session:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// OpenClaw's `--to`: an agent session key (`agent:main:…`) routes the turn to that session;
    /// a channel recipient routes it to the session a DM from them lands in (`session.dmScope`)
    /// and, with `deliver`, is where the reply goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The reply is also sent through the outbox: to `replyChannel`/`replyTo`, else
    /// `channel`/`to`, else where the session last talked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<bool>,
    /// The channel of `to` (OpenClaw's `--channel`; `last` is the session's last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Where `deliver` sends the reply, apart from session routing (`--reply-channel`, `--reply-to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Only `default`: Pincer has one account per channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_account_id: Option<String>,
    /// A Telegram forum topic or Discord/Slack thread for the delivered reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// With `deliver`: a reply that cannot be sent does not fail the run (the delivery is
    /// recorded as best-effort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_effort_deliver: Option<bool>,
    /// Seconds; 0 = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_system_prompt: Option<String>,
    /// Doubles as the run id; a repeated call answers with the first call's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl Params for AgentParams {
    const UNSUPPORTED: &'static [&'static str] = &[
        "expectedExistingSessionId",
        "thinking",
        "attachments",
        "groupId",
        "groupChannel",
        "groupSpace",
        "lane",
        "cwd",
        "cleanupBundleMcpOnRunEnd",
        "modelRun",
        "promptMode",
        "bootstrapContextMode",
        "bootstrapContextRunKind",
        "acpTurnSource",
        "internalRuntimeHandoffId",
        "internalExecutionIdentityRetry",
        "internalExecutionIdentityRecoveryAttempt",
        "execApprovalFollowupExpectedSessionId",
        "internalEvents",
        "inputProvenance",
        "suppressPromptPersistence",
        "sessionEffects",
        "sourceReplyDeliveryMode",
        "disableMessageTool",
        "swarmCollector",
        "swarmOutputSchema",
        "forceRestartSafeTools",
        "forceCodeModeTools",
        "voiceWakeTrigger",
        "label",
    ];
}

/// `agent`'s first, interim answer (OpenClaw's): the run is accepted and starting. Clients that
/// wait for the result (`expectFinal`) skip it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentAccepted {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    // state enum: h14-chat
    pub status: String,
    pub accepted_at: i64,
}

/// `agent`'s answer: Pincer's flat fields, and OpenClaw's `summary` and `result` (what `openclaw
/// agent` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentResult {
    pub run_id: String,
    // state enum: h12-core
    pub status: String,
    pub summary: String,
    pub session_key: String,
    pub text: String,
    /// `provider/model`.
    pub model: String,
    pub provider: String,
    pub usage: Usage,
    pub result: AgentRunResult,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRunResult {
    /// The reply's text; empty for a silent reply.
    pub payloads: Vec<ReplyPayload>,
    pub meta: AgentRunMeta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyPayload {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRunMeta {
    pub duration_ms: i64,
    pub agent_meta: AgentMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMeta {
    pub session_key: String,
    pub provider: String,
    /// The model without its provider.
    pub model: String,
    pub usage: Usage,
}

/// `agents.list` takes nothing; OpenClaw's `includeSystem` is refused by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsListParams {}

impl Params for AgentsListParams {
    const UNSUPPORTED: &'static [&'static str] = &["includeSystem"];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentsListResult {
    pub default_id: String,
    pub ownership: String,
    pub selection_required: bool,
    pub main_key: String,
    pub scope: crate::hello::SessionScope,
    pub agents: Vec<AgentSummary>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub id: String,
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<AgentModel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentModel {
    pub primary: String,
    pub fallbacks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WakeParams {
    pub mode: WakeMode,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl Params for WakeParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WakeResult {
    pub ok: bool,
    pub queued: bool,
    pub mode: WakeMode,
    pub session_key: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
