//! `health` and `status`.

use std::sync::Arc;

use indexmap::IndexMap;
use pincer_delivery::channel::registry;
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::system::{
    self as wire, AgentHealth, DeliveryQueues, GatewayStatus, HealthSummary, HeartbeatHealth, PincerHealth,
    SessionsSummary, StatusResult, StoreHealth, StoreStatus,
};

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
    let heartbeat = &state.config.agents.defaults.heartbeat.every;
    let heartbeat_ms = pincer_core::duration::parse_duration_ms(heartbeat, None).unwrap_or(0);
    let sessions = SessionsSummary { path: state.paths.db_path.display().to_string(), count: 0, recent: Vec::new() };
    let outbox = state.outbox.health().await;
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
            sessions: sessions.clone(),
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
            extra: Default::default(),
        },
        extra: Default::default(),
    }
}

async fn status(state: &Arc<AppState>) -> Result<StatusResult, ErrorShape> {
    let schema =
        state.store.read(|rd| rd.schema_version()).await.map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    let config = &state.config.gateway;
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
        extra: Default::default(),
    })
}
