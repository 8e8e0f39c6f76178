//! The `connect` request parameters (`ConnectParamsSchema`), validated strictly.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{MIN_PROBE_PROTOCOL, PROTOCOL_VERSION};

/// Parameters of the first request on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectParams {
    pub min_protocol: u32,
    pub max_protocol: u32,
    pub client: ClientInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_use: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_runs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceProof>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Who the client says it is. Ids and modes are closed enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: ClientId,
    pub version: String,
    pub platform: String,
    pub mode: ClientMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// `client.id`, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientId {
    WebchatUi,
    OpenclawControlUi,
    OpenclawBrowserCopilot,
    OpenclawTui,
    Webchat,
    Cli,
    GatewayClient,
    OpenclawMacos,
    OpenclawLinux,
    OpenclawIos,
    OpenclawWatchos,
    OpenclawAndroid,
    NodeHost,
    OpenclawWorker,
    Test,
    Fingerprint,
    OpenclawProbe,
}

impl ClientId {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientId::WebchatUi => "webchat-ui",
            ClientId::OpenclawControlUi => "openclaw-control-ui",
            ClientId::OpenclawBrowserCopilot => "openclaw-browser-copilot",
            ClientId::OpenclawTui => "openclaw-tui",
            ClientId::Webchat => "webchat",
            ClientId::Cli => "cli",
            ClientId::GatewayClient => "gateway-client",
            ClientId::OpenclawMacos => "openclaw-macos",
            ClientId::OpenclawLinux => "openclaw-linux",
            ClientId::OpenclawIos => "openclaw-ios",
            ClientId::OpenclawWatchos => "openclaw-watchos",
            ClientId::OpenclawAndroid => "openclaw-android",
            ClientId::NodeHost => "node-host",
            ClientId::OpenclawWorker => "openclaw-worker",
            ClientId::Test => "test",
            ClientId::Fingerprint => "fingerprint",
            ClientId::OpenclawProbe => "openclaw-probe",
        }
    }
}

/// `client.mode`, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientMode {
    Webchat,
    Cli,
    Ui,
    Backend,
    Node,
    Worker,
    Probe,
    Test,
}

impl ClientMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientMode::Webchat => "webchat",
            ClientMode::Cli => "cli",
            ClientMode::Ui => "ui",
            ClientMode::Backend => "backend",
            ClientMode::Node => "node",
            ClientMode::Worker => "worker",
            ClientMode::Probe => "probe",
            ClientMode::Test => "test",
        }
    }
}

/// The role a connection asks for; only `operator` and `node` exist on the general socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Node,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "node" => Some(Role::Node),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

/// Credentials; every field is optional and absent entirely in auth mode `none`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_runtime_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_runtime_identity_token: Option<String>,
}

/// A device's proof of key possession over this connection's challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceProof {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Reads `connect` params strictly; the error text follows OpenClaw's `invalid connect params: …`.
pub fn parse_connect_params(params: Option<&Value>) -> Result<ConnectParams, String> {
    let Some(params) = params else { return Err("invalid connect params: missing params".into()) };
    // serde would read a struct from a list of its fields: `[4, 4, {…}]`.
    for (path, value) in [
        ("", Some(params)),
        ("client: ", params.get("client")),
        ("auth: ", params.get("auth")),
        ("device: ", params.get("device")),
    ] {
        if value.is_some_and(Value::is_array) {
            return Err(format!("invalid connect params: {path}invalid type: sequence, expected an object"));
        }
    }
    let parsed: ConnectParams =
        serde_json::from_value(params.clone()).map_err(|e| format!("invalid connect params: {e}"))?;
    if parsed.min_protocol < 1 || parsed.max_protocol < 1 {
        return Err("invalid connect params: protocol versions must be >= 1".into());
    }
    if parsed.client.version.trim().is_empty() {
        return Err("invalid connect params: client.version must be non-empty".into());
    }
    if parsed.client.platform.trim().is_empty() {
        return Err("invalid connect params: client.platform must be non-empty".into());
    }
    Ok(parsed)
}

/// The protocol version a connection with these params gets: [`PROTOCOL_VERSION`] when the client's
/// `[minProtocol, maxProtocol]` window holds it, else [`MIN_PROBE_PROTOCOL`] for a `probe` client or
/// a `node`-mode client asking for role `node` (the N-1 window), else `None` (a protocol mismatch).
pub fn negotiate_protocol(params: &ConnectParams) -> Option<u32> {
    let (min, max) = (params.min_protocol, params.max_protocol);
    let acceptable = |v: u32| min <= v && v <= max;
    let probe_or_node = params.client.mode == ClientMode::Probe
        || (params.client.mode == ClientMode::Node && params.role.as_deref() == Some("node"));
    if acceptable(PROTOCOL_VERSION) {
        Some(PROTOCOL_VERSION)
    } else if probe_or_node && acceptable(MIN_PROBE_PROTOCOL) {
        Some(MIN_PROBE_PROTOCOL)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_unknown_client_id_and_fields() {
        let base = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli"}});
        assert!(parse_connect_params(Some(&base)).is_ok());
        let mut bad = base.clone();
        bad["client"]["id"] = json!("hacker");
        assert!(parse_connect_params(Some(&bad)).unwrap_err().contains("unknown variant `hacker`"));
        let mut extra = base.clone();
        extra["surprise"] = json!(true);
        assert!(parse_connect_params(Some(&extra)).unwrap_err().contains("unknown field `surprise`"));
        let mut wrong_type = base;
        wrong_type["minProtocol"] = json!("4");
        assert!(parse_connect_params(Some(&wrong_type)).unwrap_err().contains("invalid type"));
        assert_eq!(parse_connect_params(None).unwrap_err(), "invalid connect params: missing params");
        let list = json!([4, 4, {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"}]);
        assert_eq!(
            parse_connect_params(Some(&list)).unwrap_err(),
            "invalid connect params: invalid type: sequence, expected an object"
        );
        let client_list = json!({"minProtocol": 4, "maxProtocol": 4, "client": ["cli", "1", "linux", "cli"]});
        assert_eq!(
            parse_connect_params(Some(&client_list)).unwrap_err(),
            "invalid connect params: client: invalid type: sequence, expected an object"
        );
    }

    #[test]
    fn negotiates_v4_or_the_probe_window() {
        let with = |min: u32, max: u32, mode: &str, role: Option<&str>| {
            let mut v = json!({"minProtocol":min,"maxProtocol":max,"client":{"id":"cli","version":"1","platform":"linux","mode":mode}});
            if let Some(role) = role {
                v["role"] = json!(role);
            }
            negotiate_protocol(&parse_connect_params(Some(&v)).unwrap())
        };
        assert_eq!(with(1, u32::MAX, "cli", None), Some(4));
        assert_eq!(with(3, 3, "cli", None), None);
        assert_eq!(with(3, 3, "probe", None), Some(3));
        assert_eq!(with(3, 3, "node", Some("node")), Some(3));
        assert_eq!(with(3, 3, "node", Some("operator")), None);
        assert_eq!(with(5, 4, "cli", None), None, "an empty window matches nothing");
    }
}
