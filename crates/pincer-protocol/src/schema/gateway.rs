//! The gateway's own OpenClaw methods beyond `health` and `status`: the heartbeat switch and its
//! last event, presence, the model catalog, channel status, nodes — and the honest empties, the
//! lists OpenClaw's clients read on every page for things Pincer does not have (tasks, plugins,
//! worktrees, projects, updates), answered empty in OpenClaw's shape because empty is the truth.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{NoParams, Params, methods};
use crate::state::HeartbeatStatus;

methods! {
    /// The last heartbeat tick, or `null` before the first.
    LastHeartbeat = "last-heartbeat" (NoParams) -> Option<HeartbeatEvent>;
    /// Pauses or resumes the heartbeat.
    SetHeartbeats = "set-heartbeats" (SetHeartbeatsParams) -> SetHeartbeatsResult;
    /// The gateway itself and every connected client, newest first.
    SystemPresence = "system-presence" (NoParams) -> Vec<PresenceEntry>;
    /// Paired nodes: always none, Pincer has no nodes.
    NodeList = "node.list" (NoParams) -> NodeListResult;
    /// The configured models, in OpenClaw's catalog shape.
    ModelsList = "models.list" (ModelsListParams) -> ModelsListResult;
    /// Every channel Pincer can deliver to: configured or not, its outbox's state, its last error.
    ChannelsStatus = "channels.status" (ChannelsStatusParams) -> ChannelsStatusResult;
    /// Honest empty: Pincer has no background task ledger.
    TasksList = "tasks.list" (TasksListParams) -> TasksListResult;
    /// Honest empty: Pincer has no plugins.
    PluginsList = "plugins.list" (NoParams) -> PluginsListResult;
    /// Honest empty: Pincer is updated by its package, never by the gateway.
    UpdateStatus = "update.status" (UpdateStatusParams) -> UpdateStatusResult;
    /// Honest empty: Pincer has no git worktrees.
    WorktreesList = "worktrees.list" (NoParams) -> WorktreesListResult;
    /// Honest empty: Pincer has no project registry.
    ProjectsList = "projects.list" (ProjectsListParams) -> ProjectsListResult;
    /// Each configured model provider with the tokens its replies used (Pincer sees no quota
    /// windows, so `windows` is empty).
    UsageStatus = "usage.status" (NoParams) -> UsageStatusResult;
    /// Tokens by day over the recorded replies; Pincer has no prices, so every cost is 0 and
    /// every entry counts in `missingCostEntries`.
    UsageCost = "usage.cost" (UsageCostParams) -> UsageCostResult;
    /// The chat commands Pincer's chat channels understand.
    CommandsList = "commands.list" (CommandsListParams) -> CommandsListResult;
    /// Honest empty: Pincer asks no questions of the operator.
    QuestionList = "question.list" (NoParams) -> QuestionListResult;
    /// Honest empty: Pincer has no plugins, so no plugin approvals.
    PluginApprovalList = "plugin.approval.list" (NoParams) -> Vec<Value>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageStatusResult {
    pub updated_at: i64,
    pub providers: Vec<ProviderUsage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenClaw's provider usage snapshot; the token counts are Pincer's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUsage {
    pub provider: String,
    pub display_name: String,
    pub windows: Vec<Value>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `usage.cost`: the last `days` days (30 by default) or `startDate`..`endDate`, in UTC days.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageCostParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `all`: every agent's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_scope: Option<String>,
}

impl Params for UsageCostParams {
    const UNSUPPORTED: &'static [&'static str] = &["mode", "utcOffset", "timeZone", "range"];
}

/// One day's (or the whole range's) tokens and costs, in OpenClaw's `CostUsageTotals` shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total_tokens: u64,
    pub total_cost: f64,
    pub input_cost: f64,
    pub output_cost: f64,
    pub cache_read_cost: f64,
    pub cache_write_cost: f64,
    pub missing_cost_entries: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageCostResult {
    pub updated_at: i64,
    pub days: u32,
    pub daily: Vec<UsageTotals>,
    pub totals: UsageTotals,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandsListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// A channel (`telegram`, …): the same commands on every chat channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `text`, `native` or `both`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Accepted: Pincer's commands take no arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_args: Option<bool>,
}

impl Params for CommandsListParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_aliases: Vec<String>,
    pub description: String,
    pub category: String,
    pub source: String,
    pub scope: String,
    pub accepts_args: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandsListResult {
    pub commands: Vec<CommandEntry>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionListResult {
    pub questions: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One heartbeat tick as OpenClaw's `last-heartbeat` reports it. `status` is `ran` when a turn
/// ran over queued events, `skipped` (reason `no-events`, `disabled`) when there was nothing to
/// do, `failed` when a turn failed (reason `no-model` or `error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatEvent {
    pub ts: i64,
    pub status: HeartbeatStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Sessions that got a turn in this tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetHeartbeatsParams {
    pub enabled: bool,
}

impl Params for SetHeartbeatsParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetHeartbeatsResult {
    pub ok: bool,
    pub enabled: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One presence row: the gateway (`reason: "self"`) or a connected client (`reason: "connect"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEntry {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    pub mode: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub text: String,
    pub ts: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeListResult {
    pub ts: i64,
    pub nodes: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `models.list` params. `view`, `includeDetails`, `refresh` and `preparedOnly` are display hints
/// of OpenClaw's clients: accepted; Pincer's catalog is its configuration, so every view is the
/// same list and there is nothing to refresh.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelsListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Only this provider's models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Display hint: `default`, `configured`, `provider-config` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<ModelsView>,
    /// Display hint (accepted; details are always included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_details: Option<bool>,
    /// Display hint (accepted; the catalog is the configuration, never stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
    /// Display hint (accepted; nothing is ever discovered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared_only: Option<bool>,
    /// Display hint (accepted; the Control UI's chat sends it): every Pincer session may use
    /// every configured model, so the list does not depend on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
}

impl Params for ModelsListParams {
    const UNSUPPORTED: &'static [&'static str] =
        &["authProfileId", "includeProviderCapabilities", "includeDefaultModels"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelsView {
    Default,
    Configured,
    ProviderConfig,
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsListResult {
    pub models: Vec<ModelChoice>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One model as OpenClaw's catalog lists it (`openclaw models list` prints `provider/id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelChoice {
    pub id: String,
    pub name: String,
    pub provider: String,
    /// `default` on the primary model, `fallback` on the fallbacks, `configured` on all.
    pub tags: Vec<String>,
    /// The provider has the credentials it needs (an API key, or a loopback base URL).
    pub available: bool,
    /// The provider's base URL is on this machine.
    pub local: bool,
    pub input: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChannelsStatusParams {
    /// Accepted; Pincer's status is its outbox's, probes are `pincer doctor`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Only this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Params for ChannelsStatusParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelsStatusResult {
    pub ts: i64,
    pub channel_order: Vec<String>,
    pub channel_labels: IndexMap<String, String>,
    /// Per channel: `{configured, healthState, pending, …}` (the outbox's health).
    pub channels: IndexMap<String, Value>,
    pub channel_accounts: IndexMap<String, Vec<ChannelAccount>>,
    pub channel_default_account_id: IndexMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A channel's one account (Pincer has one per channel, `default`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAccount {
    pub account_id: String,
    pub enabled: bool,
    pub configured: bool,
    /// Pincer sends over HTTP per delivery: `running` while configured, never `connected`.
    pub running: bool,
    pub health_state: String,
    pub last_error: Option<String>,
    /// Where the credential comes from: `config` for a configured chat platform, else `none`
    /// (never the credential itself).
    pub token_source: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TasksListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
}

impl Params for TasksListParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasksListResult {
    pub tasks: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginsListResult {
    pub plugins: Vec<Value>,
    pub diagnostics: Vec<Value>,
    pub mutation_allowed: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateStatusParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_checkout: Option<bool>,
}

impl Params for UpdateStatusParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStatusResult {
    pub sentinel: Value,
    pub update_available: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorktreesListResult {
    pub worktrees: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectsListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_observed: Option<bool>,
}

impl Params for ProjectsListParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectsListResult {
    pub projects: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
