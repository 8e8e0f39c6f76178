//! `health` and `status`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::router::{Call, Methods};
use crate::state::AppState;

pub fn register(methods: &mut Methods) {
    methods.add("health", |call: Call| async move { Ok(health_summary(&call.state).await) });
    methods.add("status", |call: Call| async move { status(&call.state).await });
}

/// OpenClaw-shaped health summary (the stock `openclaw health` renders it), plus `pincer` details.
pub async fn health_summary(state: &Arc<AppState>) -> Value {
    let started = std::time::Instant::now();
    let now = state.clock.now_ms();
    let heartbeat_ms =
        pincer_core::duration::parse_duration_ms(&state.config.agents.defaults.heartbeat.every, None).unwrap_or(0);
    let sessions = json!({ "path": state.paths.db_path.display().to_string(), "count": 0, "recent": [] });
    let outbox = state.outbox.health().await;
    let channels = outbox["channels"].clone();
    let order: Vec<String> = channels.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let labels: serde_json::Map<String, Value> =
        order.iter().map(|c| (c.clone(), json!(pincer_delivery::channel::registry::label(c)))).collect();
    let healthy = channels.as_object().is_none_or(|m| m.values().all(|c| c["healthState"] == "healthy"));
    let store = match state.store_write_failure().await {
        None => json!({ "writable": true }),
        Some(f) => json!({
            "writable": false,
            "kind": f.kind,
            "error": f.error,
            "sinceMs": f.since_ms,
            "lastMs": f.last_ms,
            "failedWrites": f.failed_writes,
            "fix": f.fix,
        }),
    };
    let store_ok = store["writable"] == true;
    let tasks = state.supervisor.tasks();
    let tasks_ok = tasks.iter().all(|t| !t.is_down());
    json!({
        "ok": store_ok && tasks_ok,
        "ts": now,
        "durationMs": started.elapsed().as_millis() as u64,
        "channels": channels,
        "channelOrder": order,
        "channelLabels": labels,
        "heartbeatSeconds": heartbeat_ms / 1000,
        "defaultAgentId": "main",
        "agents": [{
            "agentId": "main",
            "isDefault": true,
            "heartbeat": {
                "enabled": heartbeat_ms > 0,
                "every": state.config.agents.defaults.heartbeat.every,
                "everyMs": heartbeat_ms,
            },
            "sessions": sessions,
        }],
        "sessions": sessions,
        "deliveryQueues": { "failed": outbox["failed"] },
        "pincer": {
            "version": crate::VERSION,
            "uptimeMs": state.uptime_ms(),
            "ready": state.is_ready(),
            "channelsHealthy": healthy,
            "store": store,
            // The long-lived tasks: running, restarting (with the last error), failed.
            "tasks": tasks,
            // Pressure on the gateway port: open sockets against the cap, refusals, slowloris.
            "connections": state.admission.pressure(),
        },
    })
}

async fn status(state: &Arc<AppState>) -> crate::router::MethodResult {
    let schema = state
        .store
        .read(|rd| rd.schema_version())
        .await
        .map_err(|e| pincer_protocol::ErrorShape::unavailable(e.to_string()))?;
    Ok(json!({
        "ok": true,
        "version": crate::VERSION,
        "pid": std::process::id(),
        "bootId": state.boot_id,
        "generation": state.generation,
        "startedAtMs": state.started_at_ms,
        "uptimeMs": state.uptime_ms(),
        "ready": state.is_ready(),
        "stateDir": state.paths.state_dir.display().to_string(),
        "configPath": state.paths.config_path.display().to_string(),
        "store": { "path": state.paths.db_path.display().to_string(), "schemaVersion": schema },
        "tasks": state.supervisor.tasks(),
        "gateway": {
            "port": state.config.gateway.port,
            "bind": state.config.gateway.bind,
            "authMode": state.config.gateway.auth.mode,
            "connections": state.connection_count(),
        },
    }))
}
