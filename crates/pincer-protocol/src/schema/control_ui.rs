//! What OpenClaw's Control UI reads on its pages besides sessions, chat and cron: the model
//! providers' credential state (`models.authStatus`), and the reads of features Pincer does not
//! have — voice (`talk.catalog`), side chat (`sessions.companion.state`), transcript branches
//! (`sessions.branches.list`), progress cards (`progressCard.get`), the session observer
//! (`sessions.observer.visibility`), OpenClaw's own system agent (`openclaw.approval.list`) and
//! artifacts (`artifacts.list`).
//! Those answer the empty or default shape OpenClaw answers when there is nothing, because for
//! Pincer nothing is the truth.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{NoParams, Params, methods};

methods! {
    /// Each configured model provider and whether it holds a credential (never the credential).
    ModelsAuthStatus = "models.authStatus" (ModelsAuthStatusParams) -> ModelsAuthStatusResult;
    /// Honest default: Pincer has no voice or talk mode, so no modes and no providers.
    TalkCatalog = "talk.catalog" (TalkCatalogParams) -> TalkCatalogResult;
    /// Honest empty: Pincer has no side chat, so a session has no companion exchanges.
    SessionsCompanionState = "sessions.companion.state" (SessionTarget) -> SessionsCompanionStateResult;
    /// Honest empty: Pincer's transcripts are linear, with no branches to switch to.
    SessionsBranchesList = "sessions.branches.list" (SessionTarget) -> SessionsBranchesListResult;
    /// Honest default: Pincer's agent keeps no progress card, so every session's is `null`.
    ProgressCardGet = "progressCard.get" (SessionTarget) -> ProgressCardGetResult;
    /// Acknowledged: Pincer has no session observer (activity summaries written while a page
    /// watches), so a page's visibility changes nothing.
    SessionsObserverVisibility = "sessions.observer.visibility" (ObserverVisibilityParams) -> OkResult;
    /// Honest empty: the approvals of OpenClaw's system agent (its setup assistant's config
    /// proposals); Pincer has none. Its exec approvals are `exec.approval.list`'s.
    OpenclawApprovalList = "openclaw.approval.list" (NoParams) -> Vec<Value>;
    /// Honest empty: Pincer stores no artifacts (images and files a session produced).
    ArtifactsList = "artifacts.list" (ArtifactsListParams) -> ArtifactsListResult;
}

/// `artifacts.list`'s filters, accepted and checked as OpenClaw checks them; there is nothing
/// for them to select.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactsListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `assistant` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_role: Option<String>,
    /// `image` only.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// 1 to 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Params for ArtifactsListParams {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactsListResult {
    pub artifacts: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `models.authStatus`: `refresh` asks OpenClaw to re-read its auth profiles; Pincer reads the
/// running configuration on every call, so it changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelsAuthStatusParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl Params for ModelsAuthStatusParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsAuthStatusResult {
    pub ts: i64,
    pub providers: Vec<ProviderAuth>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One provider's credential state in OpenClaw's shape. Pincer has API keys only (no OAuth or
/// token profiles), so `profiles` is empty, there is no `expiry`, and `status` is `static` (a
/// key is configured) or `missing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderAuth {
    pub provider: String,
    pub display_name: String,
    pub status: String,
    pub profiles: Vec<Value>,
    /// Where the key comes from: `{source: "config"}`, or `{source: "env", envVar}` when the
    /// configuration names it as `${VAR}`. Absent when there is no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeySource>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySource {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TalkCatalogParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Params for TalkCatalogParams {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TalkCatalogResult {
    pub modes: Vec<String>,
    pub transports: Vec<String>,
    pub brains: Vec<String>,
    pub speech: TalkProviderGroup,
    pub transcription: TalkProviderGroup,
    pub realtime: TalkProviderGroup,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A talk capability family: whether it is ready, and its providers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TalkProviderGroup {
    pub ready: bool,
    pub providers: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One session, as OpenClaw's per-session reads name it: `sessionKey` and an optional agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionTarget {
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl Params for SessionTarget {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionsCompanionStateResult {
    pub exchanges: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionsBranchesListResult {
    pub branches: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressCardGetResult {
    pub card: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverVisibilityParams {
    pub visible: bool,
}

impl Params for ObserverVisibilityParams {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OkResult {
    pub ok: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
