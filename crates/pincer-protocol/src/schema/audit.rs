//! OpenClaw's activity ledger (`audit.list`, `audit.activity.list`, `audit.run.inspect`): agent
//! runs, tool actions and chat messages as metadata-only records (no message text, no tool
//! arguments or results; senders, chats and targets as keyed hashes). Not Pincer's security audit
//! log, which is `audit.query`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Params, methods};

methods! {
    /// Run and tool records only, in OpenClaw's first (2026.7) shape.
    AuditList = "audit.list" (AuditListParams) -> AuditPage;
    /// Run, tool and chat message records, newest first, paged by sequence.
    AuditActivityList = "audit.activity.list" (AuditActivityListParams) -> AuditPage;
    /// One run's execution identity: Pincer records none, so a known run says `unsupported`.
    AuditRunInspect = "audit.run.inspect" (AuditRunInspectParams) -> AuditRunInspectResult;
}

/// `audit.list`: OpenClaw's filters without the message ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `agent_run` or `tool_action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Unix milliseconds, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// 1 to 500; 100 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// A previous page's `nextCursor` (a sequence number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Params for AuditListParams {}

/// `audit.activity.list`: [`AuditListParams`] plus the message filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditActivityListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `agent_run`, `tool_action` or `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `inbound` or `outbound` (messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// A message's channel (`telegram`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Params for AuditActivityListParams {}

/// One page of records; `events` are OpenClaw's V1 activity records (open objects).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub events: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `audit.run.inspect`: exactly one of `runId` and `executionId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditRunInspectParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_cursor: Option<String>,
    /// 1 to 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_cursor: Option<String>,
    /// 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_limit: Option<u32>,
}

impl Params for AuditRunInspectParams {}

/// OpenClaw's `AuditRunInspectResult` (schema version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRunInspectResult {
    pub schema_version: u32,
    pub run: Value,
    pub identity: Value,
    pub decision_displays: Vec<Value>,
    pub coverage: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
