//! The HTTP side of the gateway port: `/healthz`, `/readyz`, `/metrics`, the browser console
//! (`/` without an upgrade, and `/console/*`), Telegram's webhook in webhook mode, and the
//! WebSocket upgrade on `/`.
//!
//! A browser's upgrade (one with an `Origin`) is refused with 403 unless the origin is the
//! gateway's own page or listed in `gateway.controlUi.allowedOrigins`
//! ([`pincer_core::origin::check_upgrade_origin`]).
//!
//! The upgrade is answered here rather than by axum's `WebSocketUpgrade`, because the socket must
//! be read through a [`FrameGate`]: before `hello-ok` a frame above 64 KiB is refused at its
//! header, after it the limit is `maxPayload`.

use pincer_core::metrics;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use pincer_protocol::schema::system::{Readiness, StoreHealth};
use pincer_protocol::{MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::admission::Slot;
use crate::frame_gate::{FrameGate, FrameLimit};
use crate::handshake::Upgrade;
use crate::state::AppState;

#[derive(Clone)]
struct Ctx {
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
}

pub fn router(state: Arc<AppState>, shutdown: watch::Receiver<bool>) -> Router {
    let mut router = Router::new()
        .route("/", get(root))
        .route("/console/{*path}", get(crate::console::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    // Telegram's webhook mode: the path of `channels.telegram.webhookUrl` (or `webhookPath`).
    if let Some(path) = state.config().channels.telegram.as_ref().and_then(|t| t.webhook_route()) {
        router = router.route(&path, post(telegram_webhook));
    }
    router.with_state(Ctx { state, shutdown })
}

/// One update from Telegram; 200 only once it is stored (anything else and Telegram retries).
async fn telegram_webhook(State(ctx): State<Ctx>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let secret = headers.get("x-telegram-bot-api-secret-token").and_then(|v| v.to_str().ok());
    let answer = ctx.state.chat.telegram_webhook(secret, &body).await;
    StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}

async fn root(
    State(ctx): State<Ctx>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Extension(slot): Extension<Arc<Slot>>,
    mut req: Request,
) -> Response {
    let headers = req.headers();
    let key = match websocket_key(req.method(), headers) {
        Some(key) => key,
        // A plain page load: the console. A broken upgrade still hears how to connect.
        None if !asks_for_upgrade(headers) => return crate::console::index(headers),
        None => return upgrade_required(),
    };
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("(not text)"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Err(reason) =
        pincer_core::origin::check_upgrade_origin(origin, host, &ctx.state.config().gateway.control_ui.allowed_origins)
    {
        return origin_refused(&ctx.state, remote, &reason);
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return upgrade_required();
    };
    let headers = req.headers();
    let forwarded =
        ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
    let upgrade = Upgrade {
        conn_id: uuid::Uuid::new_v4().to_string(),
        remote,
        has_origin: headers.contains_key(header::ORIGIN),
        forwarded,
    };
    let Ctx { state, shutdown } = ctx;
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(remote = %remote, error = %e, "websocket upgrade failed");
                return;
            }
        };
        let limit = FrameLimit::new(MAX_PREAUTH_PAYLOAD);
        let io = FrameGate::new(TokioIo::new(upgraded), limit.clone());
        let config = WebSocketConfig::default().max_message_size(Some(MAX_PAYLOAD)).max_frame_size(Some(MAX_PAYLOAD));
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        crate::ws::serve_socket(state, socket, crate::ws::Limits { frame: limit, slot }, upgrade, shutdown).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
        .body(Body::empty())
        .expect("a valid 101 response")
}

/// `Sec-WebSocket-Key` of a valid HTTP/1.1 upgrade request (RFC 6455 §4.2.1), else `None`.
fn websocket_key(method: &Method, headers: &HeaderMap) -> Option<String> {
    let has = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let ok = method == Method::GET
        && has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
        && has(header::SEC_WEBSOCKET_VERSION, "13");
    ok.then(|| headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok().map(String::from)).flatten()
}

/// The request names an upgrade at all (`Upgrade`, or `Connection: upgrade`).
fn asks_for_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        || headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case("upgrade")))
}

/// 403 for a browser upgrade from a foreign origin. Logged for the first refusal and every
/// hundredth after, so a page retrying in a loop cannot flood the log.
fn origin_refused(state: &AppState, remote: SocketAddr, reason: &str) -> Response {
    state.metrics.inc(&pincer_core::metrics::WS_ORIGIN_REFUSED_TOTAL, &[]);
    let n = ORIGIN_REFUSALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n == 1 || n.is_multiple_of(100) {
        tracing::warn!(remote = %remote, refused = n, "websocket upgrade refused: {reason}");
    }
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Pincer refused this WebSocket: {reason}.\n"),
    )
        .into_response()
}

/// Origin refusals since start, for log throttling only.
static ORIGIN_REFUSALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn upgrade_required() -> Response {
    (
        StatusCode::UPGRADE_REQUIRED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "Pincer gateway {}: connect with the OpenClaw Gateway protocol v4 over WebSocket on this URL (ws://), or use `pincer status`.\n",
            crate::VERSION
        ),
    )
        .into_response()
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "ok": true, "status": "live" }))
}

async fn readyz(State(ctx): State<Ctx>) -> Response {
    let state = &ctx.state;
    let store = state.store_write_failure().await;
    let mut failing = Vec::new();
    if !state.ready.load(std::sync::atomic::Ordering::Acquire) {
        failing.push("startup".to_string());
    }
    if store.is_some() {
        failing.push("store".to_string());
    }
    // The scheduler, the outbox (and the HTTP server): not ready while one of them is down.
    let tasks: Vec<_> = state.supervisor.down().into_iter().filter(|t| t.critical).collect();
    failing.extend(tasks.iter().map(|t| t.name.clone()));
    let store = store.map(|f| StoreHealth {
        writable: false,
        kind: Some(f.kind.as_str().to_string()),
        error: Some(f.error),
        since_ms: Some(f.since_ms),
        fix: Some(f.fix),
        ..StoreHealth::default()
    });
    let ready = failing.is_empty();
    let body = Readiness { ready, failing, uptime_ms: state.uptime_ms(), store, tasks };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(ctx): State<Ctx>) -> Response {
    let state = &ctx.state;
    let m = &state.metrics;
    m.set(&metrics::UP, &[("version", crate::VERSION)], 1.0);
    m.set(&metrics::UPTIME_SECONDS, &[], state.uptime_ms() as f64 / 1000.0);
    state.admission.export();
    m.set(&metrics::WS_CONNECTIONS, &[], state.connection_count() as f64);
    m.set(&metrics::STORE_WRITABLE, &[], if state.store.write_health().is_none() { 1.0 } else { 0.0 });
    m.set(&metrics::STORE_SQLITE_MEMORY_BYTES, &[], pincer_store::sqlite_memory_used() as f64);
    let outbox = state.outbox.health().await;
    for (name, c) in &outbox.channels {
        let l = [("channel", name.as_str())];
        m.set(&metrics::OUTBOX_PENDING, &l, c.pending as f64);
        m.set(&metrics::OUTBOX_DEAD, &l, c.dead as f64);
        m.set(&metrics::OUTBOX_UNKNOWN, &l, c.unknown as f64);
        let age = c.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0;
        m.set(&metrics::OUTBOX_OLDEST_PENDING_SECONDS, &l, age);
        let up = if c.health_state == "healthy" { 1.0 } else { 0.0 };
        m.set(&metrics::CHANNEL_HEALTHY, &l, up);
    }
    // One series per inbound channel and state, 1 for the state it is in now.
    for inbound in state.chat.status() {
        for s in pincer_protocol::state::ConnectionState::ALL {
            let l = [("channel", inbound.channel.as_str()), ("state", s.as_str())];
            m.set(&metrics::CHANNEL_INBOUND_STATE, &l, if *s == inbound.state { 1.0 } else { 0.0 });
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render()).into_response()
}
