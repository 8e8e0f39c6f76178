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
    /// Renames, archives or sets the model of one session.
    SessionsPatch = "sessions.patch" (SessionsPatchParams) -> SessionsPatchResult;
    /// Archives idle sessions, deletes finished idle runs and old replaced transcripts, and caps
    /// the unarchived count (`session.maintenance`); `dryRun` only says what it would do.
    SessionsCleanup = "sessions.cleanup" (SessionsCleanupParams) -> SessionsCleanupResult;
}

/// Reads a field that may be absent (`None`), `null` (`Some(None)`) or set.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `sessions.patch`: the fields Pincer can honour; OpenClaw's others are refused by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsPatchParams {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Refuse unless the session is still this one (`sessionId` from `sessions.list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_session_id: Option<String>,
    /// The session's name in lists (`displayName`); `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub label: Option<Option<String>>,
    /// `provider/model` or an alias the next turns use when they name none; `null` returns to the
    /// agent's default.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub model: Option<Option<String>>,
    /// `true` archives (kept with its transcript, out of the default list); `false` brings it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

impl Params for SessionsPatchParams {
    const UNSUPPORTED: &'static [&'static str] = &[
        "expectedLifecycleRevision",
        "expectedPermissionMode",
        "expectedSandboxMode",
        "expectedNativeRuntimeConsent",
        "expectedToolOverrides",
        "expectedMarkedUnreadAt",
        "autoLabel",
        "icon",
        "color",
        "category",
        "boardFace",
        "boardPresentation",
        "statusNote",
        "attention",
        "ttlMinutes",
        "pinned",
        "unread",
        "contextWindow",
        "thinkingLevel",
        "fastMode",
        "toolOverrides",
        "verboseLevel",
        "traceLevel",
        "reasoningLevel",
        "responseUsage",
        "elevatedLevel",
        "execHost",
        "execSecurity",
        "execAsk",
        "execNode",
        "permissionMode",
        "sandboxMode",
        "nativeRuntimeConsent",
        "agentRuntime",
        "completionOwnerSessionKey",
        "inheritedToolPolicyVersion",
        "inheritedToolAllow",
        "inheritedToolDeny",
        "sendPolicy",
        "groupActivation",
    ];
}

/// OpenClaw's answer: the session after the patch, and the model its next turn uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsPatchResult {
    pub ok: bool,
    pub key: String,
    pub entry: Session,
    pub resolved: SessionsPatchResolved,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The model the session's next turn uses, split as OpenClaw splits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsPatchResolved {
    pub model_provider: Option<String>,
    pub model: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `sessions.cleanup`: OpenClaw's params (over Pincer's one store) plus Pincer's `dryRun`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsCleanupParams {
    /// One agent's sessions (default: every agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Every agent's sessions (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_agents: Option<bool>,
    /// Accepted: Pincer's maintenance always applies (`mode: enforce`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
    /// A session the cleanup must not touch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_key: Option<String>,
    /// Accepted: a Pincer transcript lives in the store, so none is ever missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_missing: Option<bool>,
    /// Only `false` (the CLI always sends it): Pincer retires no DM sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_dm_scope: Option<bool>,
    /// Pincer: say what would be done, change nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

impl Params for SessionsCleanupParams {}

/// OpenClaw's cleanup summary for one store. Counts are of unarchived sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsCleanupResult {
    /// The agent cleaned, or `*` for every agent.
    pub agent_id: String,
    /// The store file.
    pub store_path: String,
    /// `enforce`: Pincer applies its maintenance.
    pub mode: String,
    pub dry_run: bool,
    pub before_count: u64,
    pub after_count: u64,
    /// Always 0: no Pincer transcript goes missing.
    pub missing: u64,
    /// Always 0: Pincer retires no DM sessions.
    pub dm_scope_retired: u64,
    /// Always 0: Pincer makes no model-run probe sessions.
    pub model_run_pruned: u64,
    /// Idle sessions archived (`pruneAfter`).
    pub archived: u64,
    /// Sessions archived beyond `maxEntries`.
    pub cap_archived: u64,
    /// Finished idle isolated runs deleted (`pruneAfter`).
    pub pruned: u64,
    /// Finished isolated runs deleted beyond `maxEntries`.
    pub capped: u64,
    /// Pincer: transcripts replaced by a reset, deleted past `resetArchiveRetention`.
    pub reset_transcripts_pruned: u64,
    pub unreferenced_artifacts: CleanupArtifacts,
    pub disk_budget: Option<Value>,
    pub would_mutate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_count: Option<u64>,
    /// What happens to each session touched: `archive-age`, `archive-cap`, `prune-stale`,
    /// `cap-overflow` (OpenClaw's action words).
    pub actions: Vec<CleanupAction>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenClaw's `unreferencedArtifacts`: Pincer keeps no transcript files, so all zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupArtifacts {
    pub scanned_files: u64,
    pub removed_files: u64,
    pub freed_bytes: u64,
}

/// One session a cleanup touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupAction {
    pub key: String,
    pub action: CleanupActionKind,
}

/// OpenClaw's cleanup action words, for what Pincer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CleanupActionKind {
    ArchiveAge,
    ArchiveCap,
    PruneStale,
    CapOverflow,
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
    /// Pincer: describe this transcript of the session (its current one or one from
    /// `previousTranscripts`) instead of the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl Params for SessionsDescribeParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsDescribeResult {
    pub session: Option<Session>,
    /// Pincer: the transcripts `/new`, `/reset` and `sessions.reset` replaced, newest first
    /// (absent when there is no session). `chat.history` with one's `sessionId` reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_transcripts: Option<Vec<TranscriptSummary>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A transcript a session key no longer points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptSummary {
    pub session_id: String,
    /// What replaced it: `new` (`/new`) or `reset` (`/reset`, `sessions.reset`).
    pub reason: String,
    /// Its first entry's time; `null` when it had none.
    pub started_at: Option<i64>,
    /// When it was replaced.
    pub archived_at: i64,
    pub message_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
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
    /// Display hint, honoured: without it or `false`, the sessions not archived; `true`, the
    /// archived ones; `"all"`, both.
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
    /// Only delete it if it is archived (then `operator.write` suffices).
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
    /// The name a user gave it (`sessions.patch`); `displayName` carries it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The model set with `sessions.patch` (`gpt-4o` of `openai/gpt-4o`), and its provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_override: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_override: Option<String>,
    /// When it was archived, and why (`manual`, `age-retention`, `cap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_reason: Option<String>,
    /// The transcript this key pointed at before this one (OpenClaw's prior transcript
    /// generation under the same key): `chat.history` with it as `sessionId` reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_id: Option<String>,
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
    /// One transcript of the session: its current one or one `/new`, `/reset` or
    /// `sessions.reset` replaced (`previousSessionId`, `sessions.describe`'s
    /// `previousTranscripts`); paged and caught up like the current one. OpenClaw reads an
    /// earlier transcript only around a `messageId`; Pincer reads it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl Params for ChatHistoryParams {
    const UNSUPPORTED: &'static [&'static str] = &["offset", "pendingBefore", "messageId", "maxChars"];
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
