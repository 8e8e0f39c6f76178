//! The Pincer gateway: one port for HTTP (`/healthz`, `/readyz`, `/metrics`) and the OpenClaw
//! Gateway protocol v4 WebSocket; the handshake, method dispatch with scope checks, and events.
//! It wires the domain services together and contains no domain logic of its own.
//!
//! **Architecture Invariant:** the WebSocket is the external boundary. Pairing, tokens and scopes
//! are checked here and nowhere else; internal services call each other in-process.

mod admission;
pub mod compat;
pub mod console;
mod frame_gate;
mod handshake;
mod http;
pub mod methods;
mod net;
mod rate_limit;
pub mod reload;
pub mod router;
mod state;
pub mod tools;
mod ws;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pincer_core::config::{AuthMode, Bind};
use pincer_core::crashpoint::Failpoints;
use pincer_core::{Config, EventBus, Metrics, SharedClock, StatePaths, Supervisor};
use pincer_delivery::channel::registry;
use pincer_store::{Store, StoreOptions};
use tokio::sync::watch;

pub use pincer_auth::AuthMethod;
pub use state::{AppState, Caller, GatewayTools};

/// Pincer's version, reported as `server.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything needed to start a gateway.
pub struct GatewayOptions {
    pub paths: StatePaths,
    pub config: Config,
    pub clock: SharedClock,
    /// The `pincer` binary, which supervises command jobs (`pincer __supervise`): the gateway's
    /// own executable; tests that run the gateway in-process point it at the built binary.
    /// `None`: command jobs fail, saying so.
    pub command_supervisor: Option<std::path::PathBuf>,
    /// Armed fail points (`PINCER_FAILPOINTS`, read by the CLI); the default arms none.
    pub failpoints: Failpoints,
}

/// A started gateway; dropping it does not stop it, call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    server: pincer_core::supervisor::Task,
}

/// Checks the config for combinations that must not start.
fn check_startable(config: &Config) -> anyhow::Result<()> {
    match (config.gateway.auth.mode, config.token()) {
        (AuthMode::Token, None) => bail!(
            "gateway.auth.mode is \"token\" but no token is configured: set gateway.auth.token in the config or PINCER_GATEWAY_TOKEN"
        ),
        (AuthMode::None, _) if config.gateway.bind == Bind::Lan => {
            bail!(
                "refusing to bind to the LAN without auth: set gateway.auth.mode to \"token\" with a gateway.auth.token"
            )
        }
        (AuthMode::Token, Some(token)) if config.gateway.bind == Bind::Lan => match weak_token(token) {
            Some(why) => bail!(
                "refusing to bind to the LAN with a weak gateway.auth.token ({why}): set it (or PINCER_GATEWAY_TOKEN) to at least {MIN_LAN_TOKEN_CHARS} random characters, e.g. the output of `openssl rand -base64 32`, or keep gateway.bind \"loopback\""
            ),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The shortest token accepted off loopback: OpenClaw's `gateway.token_too_short` audit line.
const MIN_LAN_TOKEN_CHARS: usize = 24;

/// Why `token` is too weak to guard a gateway other machines can reach, if it is: shorter than
/// [`MIN_LAN_TOKEN_CHARS`] once surrounding whitespace is dropped (as OpenClaw's audit measures
/// it), or built from fewer than 8 distinct characters (`aaaa…`, `121212…`), which no random
/// token of that length is.
fn weak_token(token: &str) -> Option<String> {
    let token = token.trim();
    let chars = token.chars().count();
    if chars == 0 {
        return Some("it is only whitespace".into());
    }
    if chars < MIN_LAN_TOKEN_CHARS {
        return Some(format!("it is {chars} character{} long", if chars == 1 { "" } else { "s" }));
    }
    let mut distinct: Vec<char> = token.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return Some(format!("it repeats only {} different characters", distinct.len()));
    }
    None
}

/// Name of the file in the state dir that a running gateway holds locked and that tells local
/// clients where it listens.
pub const RUNTIME_FILE: &str = "gateway.lock";

/// Takes the state dir's exclusive lock: two gateways on one database would break exactly-once.
fn lock_state_dir(paths: &StatePaths) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&paths.state_dir)
        .with_context(|| format!("cannot create state dir {}", paths.state_dir.display()))?;
    let path = paths.state_dir.join(RUNTIME_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            let info = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another Pincer gateway is already running with state dir {} ({}); stop it first, or use another --state-dir",
                paths.state_dir.display(),
                info.trim()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

fn publish_runtime_info(file: &std::fs::File, addr: SocketAddr, now_ms: i64) -> anyhow::Result<()> {
    use std::io::{Seek, Write};
    let info = serde_json::json!({
        "pid": std::process::id(),
        "port": addr.port(),
        "url": format!("ws://127.0.0.1:{}", addr.port()),
        "startedAtMs": now_ms,
    });
    let mut file = file;
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(info.to_string().as_bytes())?;
    Ok(())
}

/// The agent's tools: the built-ins, the gateway's own (`message`, `cron`, `sessions_*`, acting on
/// the state the returned binding is given) and `mcp.servers`, under `tools.*`, in the workspace
/// (`agents.defaults.workspace`, else `<state>/workspace`, created if missing).
fn agent_tools(
    config: &Config,
    paths: &StatePaths,
    clock: &SharedClock,
) -> (pincer_agent::AgentTools, state::GatewayTools, tools::Binding) {
    let workspace = match config.agents.defaults.workspace.as_deref() {
        Some(dir) => match (dir.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
            _ => std::path::PathBuf::from(dir),
        },
        None => paths.state_dir.join("workspace"),
    };
    if let Err(e) = std::fs::create_dir_all(&workspace) {
        tracing::warn!(workspace = %workspace.display(), error = %e, "cannot create the agent workspace; file tools will fail");
    }
    let mcp = pincer_tools::McpServers::start(&config.mcp, clock.clone());
    // `ask` requests wait here for `exec.approval.resolve`; `allow-always` grants are kept beside
    // the database, as OpenClaw keeps its `exec-approvals.json`.
    let grants = paths.state_dir.join(EXEC_APPROVALS_FILE);
    let mut grants_error = None;
    let approvals = pincer_tools::ApprovalQueue::with_grants_file(grants).unwrap_or_else(|e| {
        tracing::warn!("tools: {e}; allow-always decisions apply once until it is fixed");
        grants_error = Some(e);
        pincer_tools::ApprovalQueue::new()
    });
    let binding = tools::Binding::default();
    let toolbox = toolbox(&config.tools, &mcp, &approvals, &binding);
    (pincer_agent::AgentTools { toolbox, workspace }, state::GatewayTools { approvals, mcp, grants_error }, binding)
}

/// The toolbox under `tools.*`: the built-ins as configured, the gateway's own tools acting on
/// `binding`'s state, and the MCP servers' tools. Start-up and a config reload build it alike.
pub(crate) fn toolbox(
    config: &pincer_core::tools_config::ToolsConfig,
    mcp: &pincer_tools::McpServers,
    approvals: &pincer_tools::ApprovalQueue,
    binding: &tools::Binding,
) -> pincer_tools::Toolbox {
    let (mut toolbox, notes) =
        pincer_tools::standard_toolbox(config, Some(mcp.clone()), Some(Arc::new(approvals.clone())));
    for tool in tools::all(binding) {
        toolbox = toolbox.with_tool(tool);
    }
    // An untouched `tools.web.search` only means web search is off: say so quietly; a section the
    // owner wrote that does not work is a warning.
    let search_untouched = config.web.search == pincer_core::tools_config::WebSearchConfig::default();
    for note in &notes {
        if search_untouched && note.starts_with("tools.web.search") {
            tracing::info!("tools: web_search is off until configured ({note})");
        } else {
            tracing::warn!("tools: {note}");
        }
    }
    toolbox
}

/// The state dir's file of `allow-always` exec grants.
pub const EXEC_APPROVALS_FILE: &str = "exec-approvals.json";

/// Opens the store, binds the port and starts serving. Returns once `/readyz` is green.
pub async fn start(options: GatewayOptions) -> anyhow::Result<RunningGateway> {
    let GatewayOptions { paths, config, clock, command_supervisor, failpoints } = options;
    check_startable(&config)?;
    // Checked before the lock, the store and the port, so a bad zone fails at once.
    let default_tz = match &config.agents.defaults.timezone {
        Some(tz) => pincer_cron::schedule::validate_tz(tz).map(|z| z.name().to_string()).map_err(|_| {
            anyhow::anyhow!(
                "config agents.defaults.timezone: unknown time zone {tz:?} (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"
            )
        })?,
        None => pincer_cron::schedule::host_timezone(),
    };
    let started = Instant::now();
    let instance_lock = lock_state_dir(&paths)?;
    let db_path = paths.db_path.clone();
    // Exclusive: the lock is on pincer.db itself, so a second gateway is refused even when
    // gateway.lock was deleted. Holding it proves every lease in the database belongs to a
    // process that is gone, which is what lets the outbox and the scheduler take them back below.
    let store_options = StoreOptions { clock: clock.clone(), exclusive: true };
    let store = tokio::task::spawn_blocking(move || Store::open_with(&db_path, store_options)).await??;
    let generation = store.write(|tx| tx.record_boot()).await?;

    let ip = match config.gateway.bind {
        Bind::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Bind::Lan => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let port = config.gateway.port;
    let listener = tokio::net::TcpListener::bind((ip, port)).await.with_context(|| {
        format!("cannot listen on {ip}:{port}: is another gateway running? Stop it, or pass --port / set gateway.port")
    })?;
    let addr = listener.local_addr()?;
    publish_runtime_info(&instance_lock, addr, clock.now_ms())?;

    let events = EventBus::default();
    let metrics = Arc::new(Metrics::default());
    // Owns every long-lived task below: restarts them after a panic, reports their state.
    let supervisor = Supervisor::new(clock.clone(), metrics.clone());
    if failpoints.is_armed() {
        tracing::warn!("fail points are armed ({}): steps will fail on purpose", pincer_core::crashpoint::FAIL_ENV);
    }
    // Every registered channel whose configuration is present; the scheduler validates jobs
    // against the registry's names, prefixes and which of them were built.
    let adapters = pincer_delivery::api::build_channels(&config, &store, &events, &clock)
        .map_err(|e| anyhow::anyhow!("config channels: {e}"))?;
    let channels = registry::catalog(&adapters);
    let (settled_tx, settled_rx) = tokio::sync::mpsc::unbounded_channel();
    let outbox = pincer_delivery::Outbox::start(pincer_delivery::OutboxDeps {
        store: store.clone(),
        clock: clock.clone(),
        events: events.clone(),
        metrics: metrics.clone(),
        generation,
        config: config.delivery.clone(),
        channels: adapters,
        settled: settled_tx,
        failpoints: failpoints.clone(),
        supervisor: supervisor.clone(),
    })
    .await
    .context("cannot start the outbox")?;
    let announce = Arc::new(pincer_delivery::Announce::new(outbox.clone(), store.clone()));
    let (agent_tools, gateway_tools, tool_binding) = agent_tools(&config, &paths, &clock);
    let agents = pincer_agent::Agents::start(pincer_agent::AgentDeps {
        store: store.clone(),
        clock: clock.clone(),
        events: events.clone(),
        metrics: metrics.clone(),
        config: Arc::new(config.clone()),
        supervisor: supervisor.clone(),
        tools: Some(agent_tools),
    })
    .map_err(|e| anyhow::anyhow!("config {e}"))?;
    // Inbound chat: each channel whose adapter declares an inbound side starts it here (the
    // supervisor owns its poll loop and the turn dispatcher).
    let inbound: Vec<&str> = registry::REGISTRY
        .iter()
        .filter(|spec| match spec.inbound {
            registry::Inbound::None => false,
            registry::Inbound::LongPoll | registry::Inbound::Socket => true,
        })
        .map(|spec| spec.name)
        .collect();
    let chat = pincer_chat::Chat::start(pincer_chat::ChatDeps {
        store: store.clone(),
        clock: clock.clone(),
        config: Arc::new(config.clone()),
        agents: agents.clone(),
        outbox: outbox.clone(),
        supervisor: supervisor.clone(),
        channels: inbound,
    });
    let cron = pincer_cron::CronService::start(pincer_cron::CronDeps {
        store: store.clone(),
        clock: clock.clone(),
        events: events.clone(),
        metrics: metrics.clone(),
        config: config.cron.clone(),
        default_tz,
        channels: channels.clone(),
        generation,
        agent: Some(Arc::new(agents.clone())),
        announcer: Some(announce.clone()),
        command_supervisor,
        supervisor: supervisor.clone(),
        failpoints,
    })
    .await
    .context("cannot start the scheduler")?;
    // Settled cron deliveries complete their runs (in-process; no socket, no token).
    let settled_rx = Arc::new(tokio::sync::Mutex::new(settled_rx));
    supervisor.spawn("settlements", false, {
        let cron = cron.clone();
        move || {
            let (cron, settled_rx) = (cron.clone(), settled_rx.clone());
            async move {
                let mut settled_rx = settled_rx.lock().await;
                while let Some(s) = settled_rx.recv().await {
                    cron.delivery_settled(s);
                }
                Ok(())
            }
        }
    });

    let devices =
        pincer_auth::Devices::new(store.clone(), clock.clone(), events.clone(), config.gateway.pairing.clone());
    let connections = &config.gateway.connections;
    let nofile = admission::open_file_limit();
    let (max_sockets, max_source) = admission::socket_cap(connections, nofile);
    if max_source.starts_with("the open-file limit") {
        tracing::warn!(max_sockets, nofile, "the connection cap is lowered by {max_source}");
    }
    let admission = admission::Admission::new(
        max_sockets,
        max_source,
        connections.max_unauthenticated_per_address as usize,
        metrics.clone(),
    );
    let state = Arc::new(AppState {
        limiter: rate_limit::AuthLimiter::new(config.gateway.auth.rate_limit.clone()),
        admission,
        config: reload::LiveConfig::new(config, &paths.config_path),
        channels,
        paths,
        store,
        cron,
        outbox,
        announce,
        agents,
        chat,
        tools: gateway_tools,
        devices,
        events,
        metrics,
        methods: methods::all(),
        supervisor: supervisor.clone(),
        boot_id: uuid::Uuid::new_v4().to_string(),
        generation,
        started_at_ms: clock.now_ms(),
        clock,
        started,
        ready: Default::default(),
        connections: Default::default(),
        session_subscriptions: Default::default(),
        instance_lock,
    });
    // The gateway's tools act on this state from now on (a call that came earlier was told to retry).
    tool_binding.bind(&state);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = http::router(state.clone(), shutdown_rx.clone());
    let listener = Arc::new(listener);
    let server = supervisor.spawn("http", true, {
        let (state, shutdown_rx) = (state.clone(), shutdown_rx.clone());
        move || {
            let serve = net::serve(listener.clone(), app.clone(), state.clone(), shutdown_rx.clone());
            async move {
                serve.await;
                Ok(())
            }
        }
    });
    supervisor.spawn("audit-tally", false, {
        let (state, shutdown_rx) = (state.clone(), shutdown_rx.clone());
        move || flush_failed_connects(state.clone(), shutdown_rx.clone())
    });
    supervisor.spawn("approvals", false, {
        let state = state.clone();
        move || methods::tools::forward_approvals(state.clone())
    });
    supervisor.spawn("config-watch", false, {
        let (state, shutdown_rx) = (state.clone(), shutdown_rx.clone());
        move || reload::watch_file(state.clone(), shutdown_rx.clone())
    });
    state.ready.store(true, Ordering::Release);
    tracing::info!(%addr, generation, ready_ms = started.elapsed().as_millis() as u64, "pincer gateway ready");
    Ok(RunningGateway { addr, state, shutdown: shutdown_tx, server })
}

/// Writes the summary rows of failed connects once per tally window (the audit log counts a flood
/// rather than writing a row per attempt).
async fn flush_failed_connects(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) -> pincer_core::TaskResult {
    loop {
        let next = state.clock.now_ms() + pincer_auth::audit::FAILURE_WINDOW_MS;
        let stopping = tokio::select! {
            _ = state.clock.sleep_until(next) => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        if stopping {
            return Ok(());
        }
        state.devices.flush_auth_failures(false).await;
    }
}

impl RunningGateway {
    /// Rereads the config file and applies what can be applied (`SIGHUP`).
    pub async fn reload_config(&self, trigger: &str) -> reload::Reloaded {
        reload::reload(&self.state, trigger).await
    }

    /// Closes every connection (event `shutdown`, close 1001), stops the server and flushes the store.
    pub async fn shutdown(self) {
        self.state.ready.store(false, Ordering::Release);
        // Nothing is restarted from here on; each task stops through its own signal.
        self.state.supervisor.stop();
        let _ = self.shutdown.send(true);
        let deadline = Duration::from_millis(800);
        let _ = tokio::time::timeout(deadline, self.server.finished()).await;
        let waited = Instant::now();
        // Each connection leaves the set once its `shutdown` event and close frame are written.
        while self.state.connection_count() > 0 && waited.elapsed() < Duration::from_millis(600) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.state.outbox.shutdown();
        self.state.cron.shutdown().await;
        self.state.agents.shutdown();
        self.state.chat.shutdown();
        self.state.tools.mcp.shutdown();
        self.state.devices.flush_auth_failures(true).await;
        let store = self.state.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        // Tasks may still hold the state for a moment; the next gateway must not wait for them.
        let _ = self.state.instance_lock.unlock();
        tracing::info!("pincer gateway stopped");
    }
}

/// Runs a gateway until `stop` completes, then shuts it down.
pub async fn run(options: GatewayOptions, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let gateway = start(options).await?;
    stop.await;
    gateway.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_error(bind: &str, token: &str) -> Option<String> {
        let config = Config::parse(
            &serde_json::json!({ "gateway": { "bind": bind, "auth": { "token": token } } }).to_string(),
            &|_: &str| None,
        )
        .unwrap();
        check_startable(&config).err().map(|e| e.to_string())
    }

    #[test]
    fn weak_tokens_are_refused_off_loopback_only() {
        let random = pincer_core::random_token();
        let rows = [
            ("lan", "x", Some("(it is 1 character long)")),
            ("lan", "   ", Some("(it is only whitespace)")),
            ("lan", " \t secret \n", Some("(it is 6 characters long)")),
            ("lan", "correct-horse-battery", Some("(it is 21 characters long)")),
            ("lan", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Some("(it repeats only 1 different characters)")),
            ("lan", "1212121212121212121212121212", Some("(it repeats only 2 different characters)")),
            ("lan", random.as_str(), None),
            ("lan", "3f9c1e7a0b2d4c6e8f1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c", None),
            ("loopback", "x", None),
        ];
        for (bind, token, want) in rows {
            let got = start_error(bind, token);
            match want {
                None => assert_eq!(got, None, "{bind} {token:?}"),
                Some(why) => {
                    let got = got.unwrap_or_else(|| panic!("{bind} {token:?} started"));
                    assert!(got.contains(why) && got.contains("openssl rand -base64 32"), "{token:?}: {got}");
                }
            }
        }
    }
}
