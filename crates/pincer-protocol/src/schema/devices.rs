//! `device.pair.*`, `device.token.*` and `audit.query`: pairing requests, paired devices (their
//! tokens as metadata only, never a bearer or hash, except the one `device.token.rotate` mints),
//! and the security audit log.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{NoParams, Params, methods};

methods! {
    /// Pending requests and paired devices.
    PairList = "device.pair.list" (NoParams) -> PairListResult;
    /// Approves a pending request.
    PairApprove = "device.pair.approve" (RequestRef) -> ApproveResult;
    /// Rejects a pending request.
    PairReject = "device.pair.reject" (RequestRef) -> RejectResult;
    /// Forgets a paired device.
    PairRemove = "device.pair.remove" (DeviceRef) -> RemoveDeviceResult;
    /// Sets a paired device's label.
    PairRename = "device.pair.rename" (RenameParams) -> RenameResult;
    /// Mints a new token for a device's role.
    TokenRotate = "device.token.rotate" (RotateParams) -> RotateResult;
    /// Revokes a device's token for a role.
    TokenRevoke = "device.token.revoke" (RevokeParams) -> RevokeResult;
    /// The audit log, newest first.
    AuditQuery = "audit.query" (AuditQueryParams) -> AuditQueryResult;
}

/// `{requestId}` of a pending pairing request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestRef {
    pub request_id: String,
}

impl Params for RequestRef {}

/// `{deviceId}` of a paired device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceRef {
    pub device_id: String,
}

impl Params for DeviceRef {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenameParams {
    pub device_id: String,
    pub label: String,
}

impl Params for RenameParams {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateParams {
    pub device_id: String,
    pub role: String,
    /// Default: the token's current scopes, else the device's grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

impl Params for RotateParams {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RevokeParams {
    pub device_id: String,
    pub role: String,
}

impl Params for RevokeParams {}

/// A pending pairing request, as `device.pair.list` and the `device.pair.requested` event show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    pub role: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// `not-paired`, `role-upgrade`, `scope-upgrade` or `metadata-upgrade`.
    pub reason: String,
    pub silent: bool,
    pub is_repair: bool,
    pub ts: i64,
    pub created_at_ms: i64,
    pub refreshed_at_ms: i64,
    pub expires_at_ms: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A paired device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    pub device_id: String,
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    /// The first role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub tokens: Vec<TokenMeta>,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ip: Option<String>,
    /// In `device.pair.list`: whether the device has a live connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A device token, as metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenMeta {
    pub role: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairListResult {
    pub pending: Vec<PendingRequest>,
    pub paired: Vec<PairedDevice>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveResult {
    pub request_id: String,
    pub device: PairedDevice,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectResult {
    pub request_id: String,
    pub device_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveDeviceResult {
    pub device_id: String,
    pub removed: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenameResult {
    pub device_id: String,
    pub label: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `device.token.rotate`. `token` (the new bearer) is present only for `tokenDelivery: "in-band"`:
/// to the device rotating its own token and to the local owner; anyone else gets
/// `"withheld-cross-device"`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateResult {
    pub device_id: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub rotated_at_ms: i64,
    pub token_delivery: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for RotateResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateResult")
            .field("device_id", &self.device_id)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("rotated_at_ms", &self.rotated_at_ms)
            .field("token_delivery", &self.token_delivery)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeResult {
    pub device_id: String,
    pub role: String,
    pub revoked_at_ms: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditQueryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

impl Params for AuditQueryParams {}

/// One audit entry. `detail` is the action's own record (who acted, the role and scopes, the
/// error of a refusal), which differs per action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub action: String,
    pub detail: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditQueryResult {
    pub entries: Vec<AuditEntry>,
    pub total: u64,
    pub has_more: bool,
    pub next_offset: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
