//! The agent's tools as operators see them: exec approvals in OpenClaw's shapes
//! (`exec.approval.list|get|resolve`, `exec.approvals.get|set`, and the payloads of the `exec.approval.requested` and
//! `exec.approval.resolved` events), and Pincer's MCP server methods (`mcp.servers.list|probe`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{NoParams, Params, methods};

methods! {
    /// Exec approvals waiting for an operator, oldest first (OpenClaw answers a bare list).
    ExecApprovalList = "exec.approval.list" (NoParams) -> Vec<ExecApproval>;
    /// One pending approval, by id or unique prefix.
    ExecApprovalGet = "exec.approval.get" (ApprovalId) -> ExecApprovalDetail;
    /// Decides a pending approval: `allow-once`, `allow-always` or `deny`.
    ExecApprovalResolve = "exec.approval.resolve" (ExecApprovalResolveParams) -> ResolveResult;
    /// The exec approval policy and the `allow-always` grants, in OpenClaw's file shape.
    ExecApprovalsGet = "exec.approvals.get" (NoParams) -> ExecApprovalsSnapshot;
    /// Replaces the `allow-always` grants (`baseHash` from `exec.approvals.get` once the file exists).
    ExecApprovalsSet = "exec.approvals.set" (ExecApprovalsSetParams) -> ExecApprovalsSnapshot;
    /// The standing `allow-always` grants (OpenClaw 2026.8's method; Pincer's grants are
    /// executable patterns, so the cron and bookkeeping fields are `null`).
    ExecApprovalGrantsList = "exec.approval.grants.list" (GrantsListParams) -> GrantsListResult;
    /// Revokes one standing grant by `grantId`: `revoked`, or `not-found`.
    ExecApprovalGrantsRevoke = "exec.approval.grants.revoke" (GrantRevokeParams) -> GrantRevokeResult;
    /// Pincer's: every configured MCP server with its state and tools.
    McpServersList = "mcp.servers.list" (NoParams) -> McpServersListResult;
    /// Pincer's: connects to one server on a fresh connection and lists its tools.
    McpServersProbe = "mcp.servers.probe" (McpProbeParams) -> McpProbeResult;
}

/// A pending approval: the `exec.approval.requested` payload and an `exec.approval.list` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApproval {
    pub id: String,
    pub request: ExecApprovalRequest,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What is to run, in OpenClaw's request record (fields it has no value for are `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalRequest {
    pub command: String,
    /// The words of a plain command; absent for pipelines and shell syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_argv: Option<Vec<String>>,
    pub cwd: Option<String>,
    pub node_id: Option<String>,
    /// `gateway`: Pincer runs commands on its own host.
    pub host: Option<String>,
    /// The exec policy (`allowlist`) and when it asks (`on-miss`), in OpenClaw's words.
    pub security: Option<String>,
    pub ask: Option<String>,
    pub agent_id: Option<String>,
    pub resolved_path: Option<String>,
    pub session_key: Option<String>,
    /// Pincer's: why the allowlist did not cover the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `exec.approval.resolved` payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalResolved {
    pub id: String,
    pub decision: String,
    pub resolved_by: Option<String>,
    pub ts: i64,
    pub request: ExecApprovalRequest,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{id}`: an approval's id or a unique prefix of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalId {
    pub id: String,
}

impl Params for ApprovalId {}

/// `exec.approval.get`'s answer (OpenClaw's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalDetail {
    pub id: String,
    pub command_text: String,
    pub command_preview: Option<String>,
    pub allowed_decisions: Vec<String>,
    pub host: Option<String>,
    pub node_id: Option<String>,
    pub agent_id: Option<String>,
    pub expires_at_ms: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{id, decision}` (OpenClaw's; `decision` is `allow-once`, `allow-always` or `deny`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecApprovalResolveParams {
    pub id: String,
    pub decision: String,
}

impl Params for ExecApprovalResolveParams {}

/// `{ok: true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResolveResult {
    pub ok: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServersListResult {
    pub servers: Vec<McpServerInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One configured MCP server, as `mcp.servers.list`, `health` (`pincer.mcp`) and `doctor` see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerInfo {
    pub name: String,
    /// `stdio`, `streamable-http` or `sse`.
    pub transport: String,
    /// `connected`, `starting`, `backoff` (down; retried at `nextAttemptAtMs`), `failed` (not
    /// retried: fix its configuration) or `disabled`.
    pub state: String,
    pub tool_count: u32,
    /// The namespaced names its tools are offered under (`<server>__<tool>`).
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Times it came back after dying.
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpProbeParams {
    pub name: String,
}

impl Params for McpProbeParams {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpProbeResult {
    pub name: String,
    pub tools: Vec<McpProbeTool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool as the server listed it: the name the model sees, the server's own name for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpProbeTool {
    pub name: String,
    pub remote_name: String,
    pub description: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `exec.approvals.get|set`'s answer (OpenClaw's): the grants file and what it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalsSnapshot {
    pub path: String,
    pub exists: bool,
    /// SHA-256 of the file's bytes; `exec.approvals.set` takes it back as `baseHash`.
    pub hash: Option<String>,
    pub file: ExecApprovalsFile,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenClaw's `exec-approvals.json`: `defaults` (the policy: Pincer's `tools.exec.mode`) and per
/// agent allowlists (Pincer's grants, under `*`: every agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalsFile {
    #[serde(default)]
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ExecApprovalsPolicy>,
    #[serde(default)]
    pub agents: std::collections::BTreeMap<String, ExecApprovalsAgent>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `security` (`deny|allowlist|full`), `ask` (`off|on-miss|always`), `askFallback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalsPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_fallback: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One agent's entry: its policy fields and its allowlist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalsAgent {
    #[serde(default)]
    pub allowlist: Vec<ExecAllowlistEntry>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An allowlist entry: an executable path glob (`id`, `lastUsedAt`, … kept as given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecAllowlistEntry {
    pub pattern: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `exec.approvals.set`'s params.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecApprovalsSetParams {
    pub file: ExecApprovalsFile,
    #[serde(default)]
    pub base_hash: Option<String>,
}

impl Params for ExecApprovalsSetParams {}

/// `exec.approval.grants.list`'s params (OpenClaw's: at most `limit` grants, default 200, at most 500).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

impl Params for GrantsListParams {}

/// `exec.approval.grants.list`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantsListResult {
    pub grants: Vec<StandingGrant>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One standing grant in OpenClaw's row shape. Pincer's `command` is the granted executable
/// pattern; the fields Pincer does not keep (cron binding, times, use counts) are `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandingGrant {
    pub grant_id: String,
    pub minted_by_approval_id: Option<String>,
    pub agent_id: Option<String>,
    pub cron_job_id: Option<String>,
    pub cron_job_name: Option<String>,
    pub command: String,
    pub cwd: Option<String>,
    pub created_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub revoked_by: Option<String>,
    pub last_used_at_ms: Option<i64>,
    pub use_count: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `exec.approval.grants.revoke`'s params: the grant's `grantId` (Pincer also takes the pattern).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrantRevokeParams {
    pub grant_id: String,
}

impl Params for GrantRevokeParams {}

/// `exec.approval.grants.revoke`'s answer: `outcome` is `revoked` or `not-found` (OpenClaw's
/// `already-revoked` never happens: a revoked grant leaves Pincer's grants file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRevokeResult {
    pub outcome: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
