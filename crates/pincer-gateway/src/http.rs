//! The HTTP side of the gateway port: `/healthz`, `/readyz`, `/metrics`, and the WebSocket
//! upgrade on `/`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pincer_protocol::MAX_PAYLOAD;
use serde_json::json;
use tokio::sync::watch;

use crate::handshake::Upgrade;
use crate::state::AppState;

#[derive(Clone)]
struct Ctx {
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
}

pub fn router(state: Arc<AppState>, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ctx { state, shutdown })
}

async fn root(
    State(ctx): State<Ctx>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "Pincer gateway {}: connect with the OpenClaw Gateway protocol v4 over WebSocket on this URL (ws://), or use `pincer status`.\n",
                crate::VERSION
            ),
        )
            .into_response();
    };
    let forwarded =
        ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
    let upgrade = Upgrade {
        conn_id: uuid::Uuid::new_v4().to_string(),
        remote,
        has_origin: headers.contains_key(header::ORIGIN),
        forwarded,
    };
    let Ctx { state, shutdown } = ctx;
    ws.max_message_size(MAX_PAYLOAD)
        .max_frame_size(MAX_PAYLOAD)
        .on_upgrade(move |socket| crate::ws::serve_socket(state, socket, upgrade, shutdown))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "ok": true, "status": "live" }))
}

async fn readyz(State(ctx): State<Ctx>) -> Response {
    let state = &ctx.state;
    let store = state.store_write_failure().await;
    let mut failing = Vec::new();
    if !state.ready.load(std::sync::atomic::Ordering::Acquire) {
        failing.push("startup");
    }
    if store.is_some() {
        failing.push("store");
    }
    let mut body = json!({ "ready": failing.is_empty(), "failing": failing, "uptimeMs": state.uptime_ms() });
    if let Some(f) = store {
        body["store"] =
            json!({ "writable": false, "kind": f.kind, "error": f.error, "sinceMs": f.since_ms, "fix": f.fix });
    }
    let status = if failing.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(ctx): State<Ctx>) -> Response {
    let state = &ctx.state;
    let m = &state.metrics;
    m.set("pincer_up", "1 while the gateway runs.", &[("version", crate::VERSION)], 1.0);
    m.set("pincer_uptime_seconds", "Seconds since the gateway started.", &[], state.uptime_ms() as f64 / 1000.0);
    m.set(
        "pincer_ws_connections",
        "Authenticated WebSocket connections now open.",
        &[],
        state.connection_count() as f64,
    );
    m.set(
        "pincer_store_writable",
        "1 while the store's writes succeed, 0 while they fail (a full disk; see `pincer health`).",
        &[],
        if state.store.write_health().is_none() { 1.0 } else { 0.0 },
    );
    m.set(
        "pincer_store_sqlite_memory_bytes",
        "Memory SQLite holds now (page caches of every connection, bounded by their cache_size).",
        &[],
        pincer_store::sqlite_memory_used() as f64,
    );
    let outbox = state.outbox.health().await;
    if let Some(channels) = outbox["channels"].as_object() {
        for (name, c) in channels {
            let l = [("channel", name.as_str())];
            m.set(
                "pincer_outbox_pending",
                "Deliveries waiting or being sent.",
                &l,
                c["pending"].as_f64().unwrap_or(0.0),
            );
            m.set(
                "pincer_outbox_dead",
                "Deliveries given up on (dead letters).",
                &l,
                c["dead"].as_f64().unwrap_or(0.0),
            );
            m.set(
                "pincer_outbox_unknown",
                "Deliveries whose outcome is unknown.",
                &l,
                c["unknown"].as_f64().unwrap_or(0.0),
            );
            let age = c["oldestPendingAgeMs"].as_f64().unwrap_or(0.0) / 1000.0;
            m.set("pincer_outbox_oldest_pending_seconds", "Age of the oldest undelivered delivery.", &l, age);
            let up = if c["healthState"] == "healthy" { 1.0 } else { 0.0 };
            m.set("pincer_channel_healthy", "1 when the channel is being sent to.", &l, up);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render()).into_response()
}
