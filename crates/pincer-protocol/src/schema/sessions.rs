//! `sessions.list` and `chat.history`: sessions and their transcripts.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Params, methods};
use crate::state::HistoryDeltaKind;

methods! {
    /// Sessions, most recently updated first, paged.
    SessionsList = "sessions.list" (SessionsListParams) -> SessionsListResult;
    /// A session's transcript, oldest first; with `cursor`, what was added after it.
    ChatHistory = "chat.history" (ChatHistoryParams) -> ChatHistoryAnswer;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// Pincer: `main`, `isolated` or `named`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_cron: Option<bool>,
    /// Accepted and ignored: Pincer has no global sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_global: Option<bool>,
    /// Accepted and ignored: Pincer has no unknown sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_unknown: Option<bool>,
}

impl Params for SessionsListParams {
    const UNSUPPORTED: &'static [&'static str] = &[
        "activeMinutes",
        "activeOnly",
        "requireLastInteraction",
        "sortBy",
        "excludeSubagents",
        "excludeSystem",
        "configuredAgentsOnly",
        "includeDerivedTitles",
        "includeLastMessage",
        "includeActivitySummary",
        "label",
        "projectId",
        "workspaceDir",
        "group",
        "pinned",
        "boardFace",
        "hasBoard",
        "creatorId",
        "ownerId",
        "ownerFirst",
        "involvingMe",
        "profileRelation",
        "involvingProfileId",
        "includePeople",
        "spawnedBy",
        "search",
        "archived",
    ];
}

/// A session as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub key: String,
    pub agent_id: String,
    /// `main`, `isolated` or `named`.
    pub kind: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub message_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsListResult {
    pub sessions: Vec<Session>,
    pub total: u64,
    pub offset: u32,
    pub limit: u32,
    pub has_more: bool,
    pub next_offset: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChatHistoryParams {
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Pincer: page backwards from this entry (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_seq: Option<i64>,
    /// OpenClaw's forward catch-up: a `deltaCursor` from an earlier answer; the answer is then a
    /// [`ChatHistoryDelta`] (what was added since) or a [`ChatHistoryReset`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Params for ChatHistoryParams {
    const UNSUPPORTED: &'static [&'static str] =
        &["maxBytes", "offset", "pendingBefore", "inputRunIds", "messageId", "sessionId", "maxChars"];
}

/// `chat.history`'s answer: a page of the transcript, or — asked with a `cursor` — the entries
/// after it (`kind: "delta"`) or `kind: "reset"` when the client must fetch a fresh page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatHistoryAnswer {
    Page(ChatHistoryResult),
    Delta(ChatHistoryDelta),
    Reset(ChatHistoryReset),
}

/// The entries added after a cursor (OpenClaw: at most 200; more is a reset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatHistoryDelta {
    /// `delta`.
    pub kind: HistoryDeltaKind,
    pub messages: Vec<ChatMessage>,
    /// Where the next catch-up starts.
    pub delta_cursor: String,
    pub session_info: Session,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The cursor is not a point of this transcript any more (or too much came after it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatHistoryReset {
    /// `reset`.
    pub kind: HistoryDeltaKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatHistoryResult {
    pub session_key: String,
    pub session: Session,
    pub messages: Vec<ChatMessage>,
    pub has_more: bool,
    /// Where the next (older) page starts, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before_seq: Option<i64>,
    /// The `cursor` for catching up from the end of this transcript (OpenClaw's `deltaCursor`).
    pub delta_cursor: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One transcript entry. `meta` holds what the turn recorded beside the text (`runId`, `model`,
/// `usage`, `finishReason`, `source`, `errorReason`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub seq: i64,
    pub role: String,
    pub content: Vec<ContentPart>,
    pub text: String,
    pub timestamp: i64,
    #[serde(flatten)]
    pub meta: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}
