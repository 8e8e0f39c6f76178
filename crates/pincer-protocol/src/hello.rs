//! The server's side of the handshake: `connect.challenge` and `hello-ok`.
//!
//! These types are written by Pincer and read by clients, so they are open: fields Pincer does not
//! model are kept in `extra` and survive a parse/serialise round trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Payload of the `connect.challenge` event, the first frame on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectChallenge {
    pub nonce: String,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// Payload of a successful `connect` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloOk {
    /// Always `"hello-ok"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub protocol: u32,
    pub server: ServerInfo,
    pub features: Features,
    pub snapshot: Snapshot,
    pub auth: HelloAuth,
    pub policy: Policy,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub version: String,
    pub conn_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the server implements; `methods` lists exactly the callable methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub methods: Vec<String>,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub presence: Vec<Value>,
    pub health: Value,
    pub state_version: crate::StateVersion,
    pub uptime_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    /// Which agent and session a client opens when it names none (OpenClaw's Control UI chats in
    /// `mainSessionKey` and matches the `chat` events it draws against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_defaults: Option<SessionDefaults>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenClaw's `snapshot.sessionDefaults` (the same facts as `agents.list`'s head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDefaults {
    pub default_agent_id: String,
    /// The default agent has a primary model.
    pub model_configured: bool,
    /// `sole`: one agent answers everything, clients need not pick one.
    pub ownership: String,
    pub selection_required: bool,
    /// The main session's short key (`main`).
    pub main_key: String,
    /// The main session's full key (`agent:main:main`).
    pub main_session_key: String,
    pub scope: SessionScope,
}

/// OpenClaw's `session.scope`: `per-sender` keys the main session `agent:<id>:<mainKey>` (and
/// gives chat senders their own sessions); `global` would key one shared session `global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionScope {
    PerSender,
    Global,
}

/// The live, enforced role and scopes of the connection (not what the client asked for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloAuth {
    pub role: String,
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub max_payload: u64,
    pub max_buffered_bytes: u64,
    pub tick_interval_ms: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Policy {
    /// The limits Pincer enforces.
    pub fn pincer() -> Policy {
        Policy {
            max_payload: crate::MAX_PAYLOAD as u64,
            max_buffered_bytes: crate::MAX_BUFFERED_BYTES as u64,
            tick_interval_ms: crate::TICK_INTERVAL_MS,
            extra: Map::new(),
        }
    }
}
