//! The gateway's shared state: configuration, the store, the clock, the event bus and the
//! services, handed to every HTTP handler and method as one explicit struct.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pincer_core::{Config, EventBus, Metrics, SharedClock, StatePaths};
use pincer_protocol::{ClientId, Role, ScopeSet};
use pincer_store::Store;
use tokio::sync::mpsc;

use crate::admission::Admission;
use crate::rate_limit::AuthLimiter;
use crate::router::Methods;

pub struct AppState {
    /// The configuration in force; [`crate::reload`] swaps its live sections.
    pub config: crate::reload::LiveConfig,
    /// The scheduler's view of the channels (shared with it; a reload replaces its contents).
    pub channels: pincer_cron::ChannelCatalog,
    pub paths: StatePaths,
    pub store: Store,
    pub cron: pincer_cron::CronService,
    pub outbox: pincer_delivery::Outbox,
    pub devices: pincer_auth::Devices,
    pub announce: Arc<pincer_delivery::Announce>,
    pub agents: pincer_agent::Agents,
    /// Inbound chat: the users' messages, access control, pairing.
    pub chat: Arc<pincer_chat::Chat>,
    /// Exec approvals and MCP servers, as operators see them.
    pub tools: GatewayTools,
    pub clock: SharedClock,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub methods: Methods,
    /// Owns the long-lived tasks (scheduler, outbox, …) and knows their state.
    pub supervisor: pincer_core::Supervisor,
    pub limiter: AuthLimiter,
    /// The sockets of the gateway port: caps, counts, refusals.
    pub admission: Arc<Admission>,
    /// Random per process; clients see it as `server.bootId`.
    pub boot_id: String,
    /// Increments on every start; owns the leases taken during this run.
    pub generation: i64,
    pub started_at_ms: i64,
    pub started: Instant,
    pub ready: AtomicBool,
    pub connections: Mutex<HashMap<String, LiveConnection>>,
    /// The sessions each connection gets `session.message` events of, by connection id.
    pub session_subscriptions: Mutex<HashMap<String, HashSet<String>>>,
    /// Held (flock) for the life of the process; see [`crate::RUNTIME_FILE`].
    pub instance_lock: std::fs::File,
}

/// The agent's tools as the gateway serves them to operators.
pub struct GatewayTools {
    /// `ask`-mode exec approvals waiting for an operator (`exec.approval.*`, `pincer approvals`).
    pub approvals: pincer_tools::ApprovalQueue,
    /// The configured MCP servers (none without `mcp.servers`; a reload changes the lineup).
    pub mcp: pincer_tools::McpServers,
    /// Why the `allow-always` grants file could not be read, for `doctor`.
    pub grants_error: Option<String>,
}

/// What the gateway knows about one authenticated connection.
#[derive(Debug, Clone)]
pub struct LiveConnection {
    pub caller: Arc<Caller>,
    /// Closes the connection with a code and reason (token revoked, device removed, …).
    pub kick: mpsc::UnboundedSender<(u16, String)>,
}

/// The authenticated peer of a connection: the only principal that goes through scope checks.
#[derive(Debug, Clone)]
pub struct Caller {
    pub conn_id: String,
    pub role: Role,
    pub scopes: ScopeSet,
    pub auth: pincer_auth::AuthMethod,
    pub device_id: Option<String>,
    pub client_id: ClientId,
    pub client_version: String,
    /// What the client said about itself, for `system-presence`.
    pub presence: ClientPresence,
    pub remote: SocketAddr,
    /// Loopback socket without proxy headers.
    pub direct_local: bool,
}

/// A connected client as `system-presence` shows it.
#[derive(Debug, Clone, Default)]
pub struct ClientPresence {
    pub mode: String,
    pub platform: String,
    pub display_name: Option<String>,
    pub device_family: Option<String>,
    pub instance_id: Option<String>,
    pub connected_at_ms: i64,
}

impl ClientPresence {
    pub fn of(params: &pincer_protocol::ConnectParams, now_ms: i64) -> ClientPresence {
        let c = &params.client;
        ClientPresence {
            mode: c.mode.as_str().to_string(),
            platform: c.platform.clone(),
            display_name: c.display_name.clone(),
            device_family: c.device_family.clone(),
            instance_id: c.instance_id.clone(),
            connected_at_ms: now_ms,
        }
    }
}

impl AppState {
    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Started, not stopping, the store can write, and no critical task (scheduler, outbox,
    /// HTTP) is down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self.store.write_health().is_none()
            && self.supervisor.down().iter().all(|t| !t.critical)
    }

    /// Why the store cannot write, if it cannot — after one probe write when it was failing, so
    /// `health` and `/readyz` turn green by themselves once the disk has room again.
    pub async fn store_write_failure(&self) -> Option<pincer_store::WriteFailure> {
        self.store.check_writes().await
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Connection `conn_id` subscribed to `session_key`'s messages.
    pub fn subscribed(&self, conn_id: &str, session_key: &str) -> bool {
        let subs = self.session_subscriptions.lock().expect("subscriptions lock");
        subs.get(conn_id).is_some_and(|keys| keys.contains(session_key))
    }

    pub fn connection_count(&self) -> usize {
        self.connections.lock().expect("connections lock").len()
    }

    /// Closes every live connection matching `pred` with `code`/`reason`; returns how many.
    pub fn kick(&self, code: u16, reason: &str, pred: impl Fn(&Caller) -> bool) -> usize {
        let conns = self.connections.lock().expect("connections lock");
        let mut n = 0;
        for live in conns.values().filter(|c| pred(&c.caller)) {
            if live.kick.send((code, reason.to_string())).is_ok() {
                n += 1;
            }
        }
        n
    }
}
