//! `import.openclaw` (Pincer's): the paired devices and the run history `pincer import openclaw`
//! read from OpenClaw's state. The gateway adds what it does not have and leaves the rest, so a
//! second import changes nothing.

use serde::{Deserialize, Serialize};

use super::{Params, methods};
use crate::state::{ExecStatus, Trigger};

methods! {
    /// Adds OpenClaw's paired devices (with their tokens) and finished runs that are missing.
    ImportOpenclaw = "import.openclaw" (ImportOpenclawParams) -> ImportOpenclawResult;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportOpenclawParams {
    #[serde(default)]
    pub devices: Vec<ImportedDevice>,
    #[serde(default)]
    pub runs: Vec<ImportedRun>,
}

impl Params for ImportOpenclawParams {}

/// One paired device as OpenClaw keeps it (`device_pairing_paired`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportedDevice {
    /// Lowercase hex sha256 of the raw Ed25519 public key (the same derivation in both systems).
    pub device_id: String,
    /// The raw public key, base64url without padding.
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
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub tokens: Vec<ImportedToken>,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at_ms: Option<i64>,
}

/// A device token as the device holds it: the gateway keeps only its hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportedToken {
    pub role: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
}

/// One finished run of an imported job (`cron_run_receipts`), kept as read-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportedRun {
    /// Pincer's id of the job the run belongs to.
    pub job_id: String,
    /// OpenClaw's id of the run; stored as `openclaw:<id>`.
    pub openclaw_run_id: String,
    pub trigger: Trigger,
    pub status: ExecStatus,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportOpenclawResult {
    pub devices_added: u32,
    pub devices_present: u32,
    pub runs_added: u32,
    pub runs_present: u32,
}
