//! `health` and `status`.

use std::sync::Arc;

use indexmap::IndexMap;
use pincer_delivery::channel::registry;
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::system::{
    self as wire, AgentHealth, AgentSessions, DeliveryQueues, GatewayStatus, HealthSummary, HeartbeatHealth,
    PincerHealth, RecentSession, SessionDefaults, SessionsSummary, StatusHeartbeat, StatusHeartbeatAgent, StatusResult,
    StatusSessions, StoreHealth, StoreStatus,
};
use pincer_store::sessions::{SessionFilter, SessionRow};

use crate::router::{Ctx, Methods};
use crate::state::AppState;

pub fn register(methods: &mut Methods) {
    methods.add::<wire::Health, _, _>(|c: Ctx, _| async move { Ok(health_summary(&c.state).await) });
    methods.add::<wire::Status, _, _>(|c: Ctx, _| async move { status(&c.state).await });
}

/// OpenClaw-shaped health summary (the stock `openclaw health` renders it), plus `pincer` details.
pub async fn health_summary(state: &Arc<AppState>) -> HealthSummary {
    let started = std::time::Instant::now();
    let now = state.clock.now_ms();
    let config = state.config();
    let heartbeat = &config.agents.defaults.heartbeat.every;
    let heartbeat_ms = pincer_core::duration::parse_duration_ms(heartbeat, None).unwrap_or(0);
    let census = session_census(state).await;
    let path = state.paths.db_path.display().to_string();
    let sessions = SessionsSummary { path: path.clone(), count: census.total, recent: census.recent.clone() };
    let main_sessions = SessionsSummary { path, count: census.main_count, recent: census.main_recent };
    let mut outbox = state.outbox.health().await;
    // Each chat channel's inbound connection (polling, backoff, credentials-rejected, last error).
    for inbound in state.chat.status() {
        if let Some(channel) = outbox.channels.get_mut(&inbound.channel) {
            channel.extra.insert("inbound".into(), serde_json::to_value(&inbound).unwrap_or_default());
        }
    }
    let order: Vec<String> = outbox.channels.keys().cloned().collect();
    let labels: IndexMap<String, String> = order.iter().map(|c| (c.clone(), registry::label(c).to_string())).collect();
    let healthy = outbox.channels.values().all(|c| c.health_state == "healthy");
    let store = match state.store_write_failure().await {
        None => StoreHealth { writable: true, ..StoreHealth::default() },
        Some(f) => StoreHealth {
            writable: false,
            kind: Some(f.kind.as_str().to_string()),
            error: Some(f.error),
            since_ms: Some(f.since_ms),
            last_ms: Some(f.last_ms),
            failed_writes: Some(f.failed_writes),
            fix: Some(f.fix),
        },
    };
    let tasks = state.supervisor.tasks();
    let tasks_ok = tasks.iter().all(|t| !t.is_down());
    HealthSummary {
        ok: store.writable && tasks_ok,
        ts: now,
        duration_ms: started.elapsed().as_millis() as u64,
        channels: outbox.channels,
        channel_order: order,
        channel_labels: labels,
        heartbeat_seconds: heartbeat_ms / 1000,
        default_agent_id: "main".into(),
        agents: vec![AgentHealth {
            agent_id: "main".into(),
            is_default: true,
            heartbeat: HeartbeatHealth { enabled: heartbeat_ms > 0, every: heartbeat.clone(), every_ms: heartbeat_ms },
            sessions: main_sessions,
        }],
        sessions,
        delivery_queues: DeliveryQueues { failed: outbox.failed },
        pincer: PincerHealth {
            version: crate::VERSION.into(),
            uptime_ms: state.uptime_ms(),
            ready: state.is_ready(),
            channels_healthy: healthy,
            store,
            // The long-lived tasks: running, restarting (with the last error), failed.
            tasks,
            // Pressure on the gateway port: open sockets against the cap, refusals, slowloris.
            connections: state.admission.pressure(),
            config: state.config.status(),
            mcp: crate::methods::tools::mcp_servers(state),
            extra: Default::default(),
        },
        extra: Default::default(),
    }
}

/// The sessions `health` and `status` count: all of them, and the default agent's.
struct SessionCensus {
    total: u64,
    recent: Vec<RecentSession>,
    main_count: u64,
    main_recent: Vec<RecentSession>,
    queued_main_events: Vec<String>,
}

const DEFAULT_AGENT: &str = "main";

async fn session_census(state: &Arc<AppState>) -> SessionCensus {
    let now = state.clock.now_ms();
    let main_key = pincer_agent::SessionRef::main(DEFAULT_AGENT).key;
    let read = state
        .store
        .read(move |rd| {
            let all = rd.list_sessions(None, 10, 0)?;
            let filter = SessionFilter { agent_id: Some(DEFAULT_AGENT.into()), ..SessionFilter::default() };
            let main = rd.find_sessions(&filter, 10, 0)?;
            let events = rd.pending_events(&main_key)?;
            Ok((all, main, events))
        })
        .await;
    let row = |r: &SessionRow| RecentSession {
        key: r.key.clone(),
        agent_id: r.agent_id.clone(),
        kind: r.kind.clone(),
        updated_at: r.updated_at_ms,
        age: now.saturating_sub(r.updated_at_ms),
        model: r.model.clone(),
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        total_tokens: r.input_tokens + r.output_tokens,
    };
    match read {
        Ok(((all, total), (main, main_count), events)) => SessionCensus {
            total,
            recent: all.iter().map(row).collect(),
            main_count,
            main_recent: main.iter().map(row).collect(),
            queued_main_events: events.into_iter().map(|e| e.text).collect(),
        },
        // A store that cannot be read is reported by `pincer.store` and the tasks; count nothing.
        Err(e) => {
            tracing::warn!(error = %e, "health: sessions could not be read");
            SessionCensus {
                total: 0,
                recent: Vec::new(),
                main_count: 0,
                main_recent: Vec::new(),
                queued_main_events: Vec::new(),
            }
        }
    }
}

async fn status(state: &Arc<AppState>) -> Result<StatusResult, ErrorShape> {
    let schema =
        state.store.read(|rd| rd.schema_version()).await.map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    let full_config = state.config();
    let config = &full_config.gateway;
    let heartbeat = &full_config.agents.defaults.heartbeat.every;
    let heartbeat_ms = pincer_core::duration::parse_duration_ms(heartbeat, None).unwrap_or(0);
    let census = session_census(state).await;
    let db_path = state.paths.db_path.display().to_string();
    let outbox = state.outbox.health().await;
    let channel_summary = outbox
        .channels
        .iter()
        .filter(|(_, c)| c.configured)
        .map(|(id, c)| format!("{}: configured ({})", registry::label(id), c.health_state))
        .collect();
    Ok(StatusResult {
        ok: true,
        version: crate::VERSION.into(),
        pid: std::process::id(),
        boot_id: state.boot_id.clone(),
        generation: state.generation,
        started_at_ms: state.started_at_ms,
        uptime_ms: state.uptime_ms(),
        ready: state.is_ready(),
        state_dir: state.paths.state_dir.display().to_string(),
        config_path: state.paths.config_path.display().to_string(),
        store: StoreStatus { path: state.paths.db_path.display().to_string(), schema_version: schema },
        tasks: state.supervisor.tasks(),
        gateway: GatewayStatus {
            port: config.port,
            bind: config.bind.as_str().into(),
            auth_mode: config.auth.mode.as_str().into(),
            connections: state.connection_count() as u64,
        },
        runtime_version: crate::VERSION.into(),
        heartbeat: StatusHeartbeat {
            default_agent_id: DEFAULT_AGENT.into(),
            agents: vec![StatusHeartbeatAgent {
                agent_id: DEFAULT_AGENT.into(),
                enabled: heartbeat_ms > 0,
                every: heartbeat.clone(),
                every_ms: heartbeat_ms,
                waiting_for_route: false,
            }],
        },
        channel_summary,
        queued_system_events: census.queued_main_events,
        sessions: StatusSessions {
            paths: vec![db_path.clone()],
            count: census.total,
            defaults: SessionDefaults {
                model: state.config().agents.defaults.model.primary.clone(),
                context_tokens: None,
            },
            recent: census.recent,
            by_agent: vec![AgentSessions {
                agent_id: DEFAULT_AGENT.into(),
                path: db_path,
                count: census.main_count,
                recent: census.main_recent,
            }],
        },
        extra: Default::default(),
    })
}
