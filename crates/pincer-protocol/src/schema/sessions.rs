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
    /// Deletes a session and its transcript; `sessions.changed` follows.
    SessionsDelete = "sessions.delete" (SessionsDeleteParams) -> SessionsDeleteResult;
    /// Empties a session's transcript (a fresh conversation under the same key).
    SessionsReset = "sessions.reset" (SessionsResetParams) -> SessionsResetResult;
    /// One session, or `session: null` when there is none.
    SessionsDescribe = "sessions.describe" (SessionsDescribeParams) -> SessionsDescribeResult;
    /// Finds a session by key or session id.
    SessionsResolve = "sessions.resolve" (SessionsResolveParams) -> SessionsResolveResult;
    /// Trims a transcript to its newest `maxLines` entries; Pincer does not summarise.
    SessionsCompact = "sessions.compact" (SessionsCompactParams) -> SessionsCompactResult;
    /// This connection gets `sessions.changed` events (every `operator.read` connection does).
    SessionsSubscribe = "sessions.subscribe" (SessionsSubscribeParams) -> SessionsSubscribeResult;
}

/// A session named by its key (`main`, `session:<id>` or a full key) and optional agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsResetParams {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `new` or `reset`: the same for Pincer (the transcript is emptied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Refuse unless the session is still this one (`sessionId` from `sessions.list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_session_id: Option<String>,
}

impl Params for SessionsResetParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsResetResult {
    pub ok: bool,
    pub key: String,
    pub entry: Session,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsDescribeParams {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Honoured as in `sessions.list`: `derivedTitle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_derived_titles: Option<bool>,
    /// Honoured as in `sessions.list`: `lastMessagePreview`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_last_message: Option<bool>,
}

impl Params for SessionsDescribeParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsDescribeResult {
    pub session: Option<Session>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsResolveParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A session's `sessionId` (Pincer's is its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Accepted: Pincer has no global or unknown sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_global: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_unknown: Option<bool>,
    /// `{ok: false}` instead of an error when nothing matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_missing: Option<bool>,
}

impl Params for SessionsResolveParams {
    const UNSUPPORTED: &'static [&'static str] = &["label", "reference", "shortId", "slugHint", "spawnedBy"];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsResolveResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsCompactParams {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Keep the newest this many entries; without it there is nothing Pincer can compact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lines: Option<u32>,
}

impl Params for SessionsCompactParams {}

/// `compacted` with `kept` (entries left), or not, with `reason`; `ok: false` when Pincer cannot
/// compact the way asked (summarising), as OpenClaw answers a no-op compaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsCompactResult {
    pub ok: bool,
    pub key: String,
    pub compacted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `sessions.subscribe` takes `sessions.list`'s filters to answer a first list with it; Pincer
/// answers the subscription alone, so only `{}` is accepted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsSubscribeParams {}

impl Params for SessionsSubscribeParams {
    const UNSUPPORTED: &'static [&'static str] = &[
        "limit",
        "offset",
        "kind",
        "agentId",
        "activeMinutes",
        "includeGlobal",
        "includeUnknown",
        "configuredAgentsOnly",
        "archived",
        "includeLastMessage",
        "includeDerivedTitles",
        "search",
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsSubscribeResult {
    pub subscribed: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
    /// Display hint, honoured: only the configured agent's (`main`) sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_agents_only: Option<bool>,
    /// Display hint, honoured: `true` lists archived sessions (Pincer archives none, so none),
    /// `false` and `"all"` list every session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<ArchivedFilter>,
    /// Display hint, honoured: each session gets `lastMessagePreview`, the start of its newest
    /// user or assistant entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_last_message: Option<bool>,
    /// Display hint, honoured: each session gets `derivedTitle`, the start of its first user entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_derived_titles: Option<bool>,
    /// Display hint, accepted: Pincer records no activity recap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_activity_summary: Option<bool>,
    /// Display hint, accepted: Pincer has no subagent sessions, so none is excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_subagents: Option<bool>,
    /// Display hint, accepted: Pincer creates no probe or system sessions, so none is excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_system: Option<bool>,
    /// Honoured: only the sessions that the session with this key spawned — none, since no
    /// Pincer session spawns another (the Control UI asks it for a chat's subagent sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawned_by: Option<String>,
    /// Honoured: only the sessions updated in the last this many minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_minutes: Option<u32>,
    /// `updatedAt` or `activity`: both the last update first, Pincer's one order (a session's
    /// last update is its last activity); `lastInteractionAt` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    /// Display hint, honoured: the `people` facet — empty, as Pincer records no people in its
    /// sessions (`peopleSessionCount` is how many sessions were looked at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_people: Option<bool>,
}

/// `archived`: a flag or `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArchivedFilter {
    Flag(bool),
    All(AllWord),
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllWord {
    #[serde(rename = "all")]
    All,
}

impl Params for SessionsListParams {
    const UNSUPPORTED: &'static [&'static str] = &[
        "activeOnly",
        "requireLastInteraction",
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
        "search",
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsDeleteParams {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Only `true` (the default): a Pincer transcript lives inside its session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_transcript: Option<bool>,
    /// Refuse unless the session is still this one (`sessionId` from `sessions.list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_session_id: Option<String>,
    /// Refused when `true`: Pincer archives no session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_only: Option<bool>,
}

impl Params for SessionsDeleteParams {
    const UNSUPPORTED: &'static [&'static str] =
        &["expectedLifecycleRevision", "expectedSessionUpdatedAt", "emitLifecycleHooks"];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsDeleteResult {
    pub ok: bool,
    pub key: String,
    pub deleted: bool,
    /// Archived transcript paths: none, Pincer deletes the transcript with its session.
    pub archived: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
    /// The session's durable identity (OpenClaw's clients demand one before they delete): its key.
    pub session_id: String,
    /// The agent's main session (OpenClaw refuses to delete it, and so does Pincer).
    pub is_main: bool,
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
    /// What a new session would run with (OpenClaw's `defaults`; its Control UI draws the chat's
    /// model picker from it and cannot draw the chat without it).
    pub defaults: SessionsListDefaults,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `sessions.list`'s `defaults`: the default agent's primary model, split as OpenClaw splits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsListDefaults {
    /// `openai` of `openai/gpt-4o`; `null` when no model is configured.
    pub model_provider: Option<String>,
    /// `gpt-4o` of `openai/gpt-4o`; `null` when no model is configured.
    pub model: Option<String>,
    /// The model's context window: `null`, Pincer does not know it.
    pub context_tokens: Option<u64>,
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
    /// OpenClaw's byte budget for the answer's messages (the Control UI's chat sends 256 KiB): a
    /// page keeps its newest entries whose JSON fits (always the newest one), so `hasMore` and
    /// `nextBeforeSeq` lead to the rest; a catch-up (`cursor`) that would not fit answers `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// OpenClaw's question "what became of the inputs I sent as these runs?" (1–50 distinct run
    /// ids), for inputs a gateway queued beside a running turn. Pincer queues none — a
    /// `chat.send` message is in the transcript before its turn starts — so the answer carries
    /// `inputReceipts: []` and `inputConsumptions: []`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_run_ids: Option<Vec<String>>,
}

impl Params for ChatHistoryParams {
    const UNSUPPORTED: &'static [&'static str] = &["offset", "pendingBefore", "messageId", "sessionId", "maxChars"];
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
