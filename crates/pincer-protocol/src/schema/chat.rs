//! `chat.send`, `chat.abort`, `chat.startup`, `chat.metadata` and `sessions.messages.subscribe`:
//! the chat surface OpenClaw's terminal UI and Control UI talk to, with OpenClaw's field names.
//! `chat.history` (and its `cursor`) is in [`super::sessions`].
//!
//! A chat run streams `chat` events (`state: "delta" | "final" | "aborted" | "error"`, see
//! [`ChatEvent`]) beside the `agent` events the `agent` method streams.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sessions::{ChatHistoryAnswer, ChatHistoryParams};
use super::{Params, methods};
use crate::state::{ChatErrorKind, ChatSendStatus, ChatState};

methods! {
    /// Starts a chat turn in a session; answers `{runId, status: "started"}` at once, the reply
    /// arrives as `chat` events.
    ChatSend = "chat.send" (ChatSendParams) -> ChatSendResult;
    /// Stops a session's running chat turn (or the one named by `runId`).
    ChatAbort = "chat.abort" (ChatAbortParams) -> ChatAbortResult;
    /// The first page a chat view shows: `chat.history` under another name.
    ChatStartup = "chat.startup" (ChatStartupParams) -> ChatHistoryAnswer;
    /// What a chat view needs besides the transcript: the agent and the models it may pick.
    ChatMetadata = "chat.metadata" (ChatMetadataParams) -> ChatMetadataResult;
    /// Subscribes this connection to `session.message` events of one session.
    SessionsMessagesSubscribe = "sessions.messages.subscribe" (SessionsMessagesSubscribeParams) -> SessionsMessagesSubscribeResult;
    /// Stops this connection's `session.message` events of a session.
    SessionsMessagesUnsubscribe = "sessions.messages.unsubscribe" (SessionsMessagesUnsubscribeParams) -> SessionsMessagesSubscribeResult;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsMessagesUnsubscribeParams {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl Params for SessionsMessagesUnsubscribeParams {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChatSendParams {
    /// `main`, `session:<id>`, or a key such as `agent:main:main`.
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub message: String,
    /// Only `false`: the reply comes back as `chat` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<bool>,
    /// The run's time limit in milliseconds; 0 = none. Default: the `agent` method's 600 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Accepted and ignored: Pincer's models have no thinking levels (the TUI always sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// The run id; a repeated call while the run is going answers `status: "in_flight"`.
    pub idempotency_key: String,
    /// The transcript the sender was looking at (OpenClaw's Control UI sends it): it must still
    /// be the session's current one, so a message typed before a `/new` elsewhere is not added to
    /// the new transcript unseen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl Params for ChatSendParams {
    const UNSUPPORTED: &'static [&'static str] = &[
        "mentions",
        "workContext",
        "intent",
        "fastMode",
        "fastAutoOnSeconds",
        "queueMode",
        "originatingChannel",
        "originatingTo",
        "originatingAccountId",
        "originatingThreadId",
        "replyToId",
        "attachments",
        "toolBindings",
        "systemInputProvenance",
        "systemProvenanceReceipt",
        "suppressCommandInterpretation",
        "expectedLeafEntryId",
        "expectedSessionRoutingContract",
        "expectedPermissionMode",
        "expectedToolOverrides",
    ];
}

/// `chat.send`'s answer: `status` is `started` for a new run, `in_flight` for a repeated
/// `idempotencyKey` whose run is still going.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSendResult {
    pub run_id: String,
    pub status: ChatSendStatus,
    pub session_key: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChatAbortParams {
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Accepted and ignored: Pincer runs no side runs (the TUI sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_side_runs: Option<bool>,
}

impl Params for ChatAbortParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatAbortResult {
    pub ok: bool,
    /// A run was stopped.
    pub aborted: bool,
    pub run_ids: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `chat.startup` takes `chat.history`'s params; OpenClaw's short-link form (`shortId`) is refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChatStartupParams(pub ChatHistoryParams);

impl Params for ChatStartupParams {
    const UNSUPPORTED: &'static [&'static str] =
        &["shortId", "slugHint", "offset", "pendingBefore", "inputRunIds", "messageId", "sessionId", "maxChars"];
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChatMetadataParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
}

impl Params for ChatMetadataParams {
    const UNSUPPORTED: &'static [&'static str] = &["authProfileId"];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMetadataResult {
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// The session's model, else the agent's primary model (`provider/model`), if any.
    pub model: Option<String>,
    /// The configured models, `provider/model`.
    pub models: Vec<ChatModel>,
    /// Pincer has no slash commands.
    pub commands: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatModel {
    /// `provider/model`.
    pub id: String,
    pub name: String,
    pub provider: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsMessagesSubscribeParams {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Accepted (the Control UI's chat always asks): the subscription carries the session's
    /// messages only, because Pincer sends no approval requests over the gateway — exec approvals
    /// are decided with `pincer approvals`, and `exec.approval.*` is refused (COMPATIBILITY.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_approvals: Option<bool>,
}

impl Params for SessionsMessagesSubscribeParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsMessagesSubscribeResult {
    pub subscribed: bool,
    /// The session's full key.
    pub key: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `chat` event, as OpenClaw streams them: `delta` carries the text so far in `message` and
/// the new piece in `deltaText`; `final`, `aborted` and `error` end the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatEvent {
    pub run_id: String,
    pub session_key: String,
    pub seq: u64,
    pub state: ChatState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<ChatEventMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::agent::Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ChatErrorKind>,
}

/// The assistant message a `chat` event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatEventMessage {
    pub role: String,
    pub content: Vec<super::sessions::ContentPart>,
    pub timestamp: i64,
}
