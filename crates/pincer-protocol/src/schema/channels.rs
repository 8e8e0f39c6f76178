//! `channels.pairing.list|approve|dismiss`: DM pairing codes of chat channels, in OpenClaw's
//! shapes (a request is named by an opaque `requestId`; the code the sender was told is never
//! listed). Pincer also accepts that `code` in place of `requestId`, which is what `pincer pairing
//! approve <channel> <code>` sends.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Params, methods};

methods! {
    /// Pending DM pairing requests of every chat channel.
    PairingList = "channels.pairing.list" (PairingListParams) -> PairingListResult;
    /// Approves a request: its sender may talk to the agent from now on.
    PairingApprove = "channels.pairing.approve" (PairingDecision) -> PairingApproveResult;
    /// Dismisses a request without approving its sender.
    PairingDismiss = "channels.pairing.dismiss" (PairingDecision) -> PairingDismissResult;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PairingListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

impl Params for PairingListParams {}

/// `{channel, requestId | code}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PairingDecision {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Pincer's: the code the sender was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Tell the sender (approve only; Pincer always does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<bool>,
}

impl Params for PairingDecision {
    const UNSUPPORTED: &'static [&'static str] = &["bootstrapCommandOwner"];
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingListResult {
    pub accounts: Vec<PairingAccount>,
    pub requests: Vec<PairingRequest>,
    pub command_owner_configured: bool,
    pub limits: PairingLimits,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A channel account whose DMs are under `dmPolicy: pairing`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingAccount {
    pub channel: String,
    pub channel_label: String,
    pub account_id: String,
    pub account_label: String,
    pub notify_supported: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingRequest {
    pub request_id: String,
    pub channel: String,
    pub channel_label: String,
    pub account_id: String,
    pub account_label: String,
    pub sender_id: String,
    pub sender_label: String,
    pub metadata: Map<String, Value>,
    /// ISO 8601.
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub notify_supported: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingLimits {
    pub pending_per_account: u32,
    pub ttl_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingApproveResult {
    pub request_id: String,
    pub sender_id: String,
    /// `sent` (queued in the outbox) or `not-requested`.
    pub notification: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingDismissResult {
    pub request_id: String,
    pub sender_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
