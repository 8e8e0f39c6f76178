//! `config.get` and `config.schema` (OpenClaw's, secrets redacted) and Pincer's `config.reload`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Params, methods};

methods! {
    /// The config file as it is on disk, every secret redacted (OpenClaw's snapshot shape).
    ConfigGet = "config.get" (ConfigGetParams) -> ConfigSnapshot;
    /// The JSON Schema of the configuration.
    ConfigSchema = "config.schema" (ConfigSchemaParams) -> ConfigSchemaResult;
    /// Rereads the config file and applies what a running gateway can (Pincer's own).
    ConfigReload = "config.reload" (ConfigReloadParams) -> ConfigReloadResult;
}

/// `config.get` takes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigGetParams {}

impl Params for ConfigGetParams {}

/// `config.schema` takes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSchemaParams {}

impl Params for ConfigSchemaParams {}

/// `config.reload` takes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigReloadParams {}

impl Params for ConfigReloadParams {}

/// One problem with the file: the key path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

/// OpenClaw's `ConfigFileSnapshot`, redacted: `raw` has every literal secret replaced by
/// `__OPENCLAW_REDACTED__`, and so do `parsed`, `resolved` and `config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSnapshot {
    pub path: String,
    pub exists: bool,
    pub raw: Option<String>,
    /// The file as written (JSON5 read, `${ENV}` not expanded).
    pub parsed: Value,
    /// After `${ENV}` expansion, before defaults.
    pub resolved: Value,
    pub valid: bool,
    /// With every default filled in: what a gateway started now would run.
    pub config: Value,
    /// SHA-256 of the file's text, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub issues: Vec<ConfigIssue>,
    pub warnings: Vec<ConfigIssue>,
    pub legacy_issues: Vec<ConfigIssue>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenClaw's `ConfigSchemaResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSchemaResult {
    pub schema: Value,
    pub ui_hints: Map<String, Value>,
    pub version: String,
    pub generated_at: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What `config.reload` did. A refused file is an error answer, not this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReloadResult {
    pub ok: bool,
    /// False when the file says what the gateway already runs.
    pub changed: bool,
    /// Changed keys now in force.
    pub applied: Vec<String>,
    /// Changed keys that wait for a restart.
    pub restart_needed: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
