//! One WebSocket connection: challenge, handshake, then concurrent requests, fanned-out events,
//! `tick` every 30 s, pings, and a clean close on shutdown or credential revocation.

use pincer_core::metrics;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use pincer_protocol::{
    ConnectChallenge, ErrorShape, EventFrame, Frame, HANDSHAKE_TIMEOUT_MS, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD,
    ResponseFrame, Scope, TICK_INTERVAL_MS, close, detail_code, ok_response_text, parse_frame,
};
use serde_json::json;
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::admission::Slot;
use crate::frame_gate::{FrameGate, FrameLimit, FrameTooLarge};
use crate::handshake::{Upgrade, authenticate, hello_ok};
use crate::state::{AppState, Caller, LiveConnection};

/// An upgraded socket, read through the frame-size gate.
pub type Socket = WebSocketStream<FrameGate<TokioIo<hyper::upgrade::Upgraded>>>;

/// What a connection holds from admission: its frame limit (raised after `hello-ok`) and its slot
/// (which stops counting against its address then).
pub struct Limits {
    pub frame: FrameLimit,
    pub slot: Arc<Slot>,
}

const PING_INTERVAL: Duration = Duration::from_secs(25);
/// Requests one connection may have in flight; more wait (backpressure on the socket).
const MAX_IN_FLIGHT: usize = 64;

enum Outbound {
    Text(String),
    Ping,
    Close(Option<(u16, String)>),
}

/// A close reason must fit in 123 bytes.
fn close_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_string();
    }
    let mut end = 120;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &reason[..end])
}

fn to_text<T: serde::Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).expect("frames serialise")
}

/// An event frame around a payload already serialised (once per event, not per connection):
/// the same text as serialising `Frame::Event` with `seq`.
fn event_text(event: &str, payload_json: &str, seq: u64) -> String {
    let name = serde_json::to_string(event).expect("a string serialises");
    format!(r#"{{"type":"event","event":{name},"payload":{payload_json},"seq":{seq}}}"#)
}

/// The read failed because a frame or message was over the limit (the gate's or tungstenite's).
fn too_large(e: &WsError) -> bool {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => true,
        WsError::Io(io) => FrameTooLarge::find(io).is_some(),
        _ => false,
    }
}

/// The text of a `res` frame, or — when it would exceed the frame limit the client was promised
/// (`policy.maxPayload`) — an error saying so and how to ask for less.
fn answer_text(id: String, method: &str, result: crate::router::MethodResult) -> String {
    let text = match result {
        Ok(payload) => ok_response_text(&id, &payload),
        Err(error) => to_text(&Frame::Res(ResponseFrame::err(id.clone(), error))),
    };
    if text.len() <= MAX_PAYLOAD {
        return text;
    }
    tracing::warn!(method, bytes = text.len(), "answer above maxPayload replaced by RESULT_TOO_LARGE");
    let error = ErrorShape::invalid_request(format!(
        "result too large: the answer to {method} is {:.1} MiB, above the {} MiB frame limit; ask for less — a smaller `limit` (and `offset` for the next page) where {method} takes them, or a narrower filter",
        text.len() as f64 / (1024.0 * 1024.0),
        MAX_PAYLOAD / (1024 * 1024)
    ))
    .with_details(json!({ "code": detail_code::RESULT_TOO_LARGE, "bytes": text.len(), "maxPayload": MAX_PAYLOAD }));
    to_text(&Frame::Res(ResponseFrame::err(id, error)))
}

/// Serves one upgraded socket until it closes.
pub async fn serve_socket(
    state: Arc<AppState>,
    socket: Socket,
    limits: Limits,
    upgrade: Upgrade,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(1024);
    let writer = tokio::spawn(async move {
        // Frames already queued go out together: each is fed to the socket's buffer and one flush
        // writes them all (under load, one write per frame was most of the answer path's cost).
        'write: while let Some(first) = out_rx.recv().await {
            let mut next = Some(first);
            while let Some(out) = next.take() {
                let result = match out {
                    Outbound::Text(text) => sink.feed(Message::Text(text.into())).await,
                    Outbound::Ping => sink.feed(Message::Ping(Default::default())).await,
                    Outbound::Close(frame) => {
                        let frame = frame.map(|(code, reason)| CloseFrame {
                            code: code.into(),
                            reason: close_reason(&reason).into(),
                        });
                        let _ = sink.send(Message::Close(frame)).await;
                        break 'write;
                    }
                };
                if result.is_err() {
                    break 'write;
                }
                next = out_rx.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let conn_id = upgrade.conn_id.clone();
    let authenticated = handshake(&state, &upgrade, &limits, &mut stream, &out_tx).await;
    let served = authenticated.is_some();
    if let Some(caller) = authenticated {
        state.metrics.inc(&metrics::WS_CONNECTIONS_TOTAL, &[]);
        session(&state, caller, &mut stream, &out_tx, &mut shutdown).await;
    }
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    // Only now: a stopping gateway waits for this set to empty, and everything queued (the
    // `shutdown` event, the close frame) must have been written by then.
    state.connections.lock().expect("connections lock").remove(&conn_id);
    if served {
        crate::methods::gateway::broadcast_presence(&state);
    }
    state.session_subscriptions.lock().expect("subscriptions lock").remove(&conn_id);
}

type Stream = futures_util::stream::SplitStream<Socket>;

/// Sends the challenge and waits for a valid `connect`. Returns the caller once `hello-ok` is queued.
async fn handshake(
    state: &Arc<AppState>,
    upgrade: &Upgrade,
    limits: &Limits,
    stream: &mut Stream,
    out: &mpsc::Sender<Outbound>,
) -> Option<Arc<Caller>> {
    let nonce = uuid::Uuid::new_v4().to_string();
    let challenge = EventFrame {
        event: "connect.challenge".into(),
        payload: Some(
            serde_json::to_value(ConnectChallenge {
                nonce: nonce.clone(),
                ts: state.clock.now_ms(),
                capabilities: None,
            })
            .ok()?,
        ),
        seq: None,
        state_version: None,
        recipient_profile_id: None,
    };
    out.send(Outbound::Text(to_text(&Frame::Event(challenge)))).await.ok()?;
    let mut timeout = state.clock.sleep_until(state.clock.now_ms() + HANDSHAKE_TIMEOUT_MS as i64);
    let reject = |code: u16, reason: &str| Outbound::Close(Some((code, reason.to_string())));
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = &mut timeout => {
                // Like OpenClaw: a handshake timeout closes without an explicit code.
                tracing::debug!(conn = %upgrade.conn_id, "handshake timeout");
                let _ = out.send(Outbound::Close(None)).await;
                return None;
            }
        };
        let msg = match next {
            None | Some(Ok(Message::Close(_))) => return None,
            // The gate refused a frame over 64 KiB at its header, before buffering it.
            Some(Err(e)) if too_large(&e) => {
                let _ = out.send(reject(close::TOO_LARGE, "preauth payload too large")).await;
                return None;
            }
            Some(Err(_)) => return None,
            Some(Ok(msg)) => msg,
        };
        let text = match msg {
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Binary(_) => {
                let _ = out.send(reject(close::POLICY, "invalid handshake: binary frames are not supported")).await;
                return None;
            }
            Message::Text(t) if t.len() > MAX_PREAUTH_PAYLOAD => {
                let _ = out.send(reject(close::TOO_LARGE, "preauth payload too large")).await;
                return None;
            }
            Message::Text(t) => t,
            Message::Close(_) => return None,
        };
        let frame = match parse_frame(text.as_str()) {
            Ok(Frame::Req(req)) => req,
            Ok(_) => {
                let _ = out.send(reject(close::POLICY, "invalid request frame")).await;
                return None;
            }
            Err(e) => {
                let message = format!("invalid request frame: {}", e.message);
                if let Some(id) = e.request_id {
                    let _ = out
                        .send(Outbound::Text(to_text(&Frame::Res(ResponseFrame::err(
                            id,
                            ErrorShape::invalid_request(&message),
                        )))))
                        .await;
                }
                let _ = out.send(reject(close::POLICY, &message)).await;
                return None;
            }
        };
        if frame.method != "connect" {
            let error = ErrorShape::invalid_request("invalid handshake: first request must be connect");
            let _ = out.send(Outbound::Text(to_text(&Frame::Res(ResponseFrame::err(&frame.id, error))))).await;
            let _ = out.send(reject(close::POLICY, "invalid handshake: first request must be connect")).await;
            return None;
        }
        return match authenticate(state, upgrade, &frame, &nonce).await {
            Ok((caller, _params, device_token)) => {
                // From here the connection is authenticated: full-size frames, and no longer
                // counted against its address's pre-auth budget.
                limits.frame.set(MAX_PAYLOAD);
                limits.slot.authenticated();
                let caller = Arc::new(caller);
                let health = serde_json::to_value(crate::methods::system::health_summary(state).await)
                    .expect("health serialises");
                let hello = hello_ok(state, &caller, health, device_token);
                let payload = serde_json::to_value(hello).expect("hello-ok serialises");
                out.send(Outbound::Text(to_text(&Frame::Res(ResponseFrame::ok(&frame.id, payload))))).await.ok()?;
                tracing::debug!(conn = %caller.conn_id, client = caller.client_id.as_str(), scopes = ?caller.scopes.names(), "connected");
                Some(caller)
            }
            Err(rejection) => {
                tracing::info!(conn = %upgrade.conn_id, remote = %upgrade.remote, reason = %rejection.error.message, "connect refused");
                let _ = out
                    .send(Outbound::Text(to_text(&Frame::Res(ResponseFrame::err(&frame.id, rejection.error)))))
                    .await;
                let _ = out.send(reject(rejection.close_code, &rejection.close_reason)).await;
                None
            }
        };
    }
}

/// Serves an authenticated connection.
async fn session(
    state: &Arc<AppState>,
    caller: Arc<Caller>,
    stream: &mut Stream,
    out: &mpsc::Sender<Outbound>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let (kick_tx, mut kick_rx) = mpsc::unbounded_channel();
    state
        .connections
        .lock()
        .expect("connections lock")
        .insert(caller.conn_id.clone(), LiveConnection { caller: caller.clone(), kick: kick_tx });
    // Announced to the others only: this client has the gateway's state in `hello-ok`, and its
    // own first event stays `tick` seq 1.
    crate::methods::gateway::broadcast_presence(state);
    let mut events = state.events.subscribe();
    let mut seq: u64 = 0;
    let clock = &state.clock;
    let mut next_tick = clock.now_ms() + TICK_INTERVAL_MS as i64;
    let mut tick = clock.sleep_until(next_tick);
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut awaiting_pong_since: Option<Instant> = None;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));

    let send_event = |seq: &mut u64, event: &str, payload: &str| {
        *seq += 1;
        let text = event_text(event, payload, *seq);
        if text.len() > MAX_PAYLOAD {
            // Above the frame limit the client would close the connection; `seq` shows the gap.
            tracing::warn!(event, bytes = text.len(), "event above maxPayload not sent");
            return;
        }
        // A client too slow to drain its events loses them; `seq` shows the gap.
        let _ = out.try_send(Outbound::Text(text));
    };

    loop {
        tokio::select! {
            msg = stream.next() => {
                awaiting_pong_since = None;
                let text = match msg {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Err(e)) => {
                        if too_large(&e) {
                            let _ = out.send(Outbound::Close(Some((close::TOO_LARGE, "payload too large".into())))).await;
                        }
                        break;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        let error = ErrorShape::invalid_request("invalid request frame: binary frames are not supported");
                        let _ = out.send(Outbound::Text(to_text(&Frame::Res(ResponseFrame::err("invalid", error))))).await;
                        continue;
                    }
                    Some(Ok(Message::Text(t))) => t,
                };
                let req = match parse_frame(text.as_str()) {
                    Ok(Frame::Req(req)) => req,
                    Ok(_) => continue,
                    Err(e) => {
                        let id = e.request_id.unwrap_or_else(|| "invalid".into());
                        let error = ErrorShape::invalid_request(format!("invalid request frame: {}", e.message));
                        let _ = out.send(Outbound::Text(to_text(&Frame::Res(ResponseFrame::err(id, error))))).await;
                        continue;
                    }
                };
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                let (state, caller, out) = (state.clone(), caller.clone(), out.clone());
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let method = req.method.clone();
                    let (answered_tx, answered_rx) = watch::channel(false);
                    let interim_out = out.clone();
                    let interim_id = req.id.clone();
                    let reply = crate::router::Reply {
                        interim: Some(Arc::new(move |payload| {
                            let frame = Frame::Res(ResponseFrame::ok(interim_id.clone(), payload));
                            let _ = interim_out.try_send(Outbound::Text(to_text(&frame)));
                        })),
                        answered: Some(answered_rx),
                    };
                    let result = if method == "connect" {
                        Err(ErrorShape::invalid_request("connect is only valid as the first request of a connection"))
                    } else {
                        // A method that panics still gets an answer, so its caller never waits forever.
                        let call = state.methods.dispatch_with(state.clone(), caller, &method, req.params, reply);
                        std::panic::AssertUnwindSafe(call).catch_unwind().await.unwrap_or_else(|_| {
                            tracing::error!(method = %method, "method panicked; answered UNAVAILABLE");
                            Err(ErrorShape::unavailable(format!("internal error in {method}; see the gateway log")))
                        })
                    };
                    let known = state.methods.contains(&method);
                    let label = if known { method.as_str() } else { "(unknown)" };
                    let outcome = match &result { Ok(_) => "ok", Err(e) => if e.code == "FORBIDDEN" { "forbidden" } else { "error" } };
                    state.metrics.inc(&metrics::WS_REQUESTS_TOTAL, &[("method", label), ("outcome", outcome)]);
                    state.metrics.observe(&metrics::WS_REQUEST_SECONDS, &[("method", label)], started.elapsed().as_secs_f64());
                    let _ = out.send(Outbound::Text(answer_text(req.id, &method, result))).await;
                    let _ = answered_tx.send(true);
                    drop(permit);
                });
            }
            event = events.recv() => match event {
                Ok(ev) => {
                    // `session.message` goes only to the connections subscribed to its session.
                    if ev.name == "session.message"
                        && !state.subscribed(&caller.conn_id, ev.payload["sessionKey"].as_str().unwrap_or_default())
                    {
                        continue;
                    }
                    let allowed = match ev.scope {
                        None => true,
                        Some(scope) => Scope::parse(scope).map(|s| caller.scopes.satisfies(s)).unwrap_or(false)
                            || caller.scopes.contains(Scope::Admin),
                    };
                    if allowed {
                        send_event(&mut seq, ev.name, ev.payload_json());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => seq += n,
                Err(broadcast::error::RecvError::Closed) => {}
            },
            _ = &mut tick => {
                send_event(&mut seq, "tick", &json!({ "ts": clock.now_ms() }).to_string());
                next_tick = next_tick.max(clock.now_ms()) + TICK_INTERVAL_MS as i64;
                tick = clock.sleep_until(next_tick);
            }
            _ = ping.tick() => {
                if awaiting_pong_since.is_some_and(|t| t.elapsed() >= PING_INTERVAL) {
                    tracing::debug!(conn = %caller.conn_id, "ping timeout");
                    break;
                }
                awaiting_pong_since.get_or_insert_with(Instant::now);
                let _ = out.try_send(Outbound::Ping);
            }
            Some((code, reason)) = kick_rx.recv() => {
                let _ = out.send(Outbound::Close(Some((code, reason)))).await;
                break;
            }
            _ = shutdown.changed() => {
                send_event(&mut seq, "shutdown", &json!({ "reason": "gateway stopping", "restartExpectedMs": null }).to_string());
                let _ = out.send(Outbound::Close(Some((close::GOING_AWAY, "gateway shutting down".into())))).await;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_above_max_payload_become_an_error_that_says_how_to_page() {
        let raw = |v: serde_json::Value| serde_json::value::to_raw_value(&v).unwrap();
        let small = answer_text("1".into(), "cron.list", Ok(raw(json!({"jobs": []}))));
        assert_eq!(small, r#"{"type":"res","id":"1","ok":true,"payload":{"jobs":[]}}"#);
        let big = answer_text("2".into(), "deliveries.show", Ok(raw(json!({"text": "x".repeat(MAX_PAYLOAD)}))));
        assert!(big.len() < 1024, "{big}");
        let frame: serde_json::Value = serde_json::from_str(&big).unwrap();
        assert_eq!((frame["id"].as_str(), frame["ok"].as_bool()), (Some("2"), Some(false)));
        assert_eq!(frame["error"]["details"]["code"], "RESULT_TOO_LARGE");
        let message = frame["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("result too large: the answer to deliveries.show is 25.0 MiB"), "{message}");
    }

    #[test]
    fn an_event_spliced_around_its_shared_payload_is_the_serialised_frame() {
        for (name, payload) in [
            ("delivery", json!({"id": "d1", "state": "delivered", "error": null, "text": "a \"quoted\" ✓\n"})),
            ("tick", json!({"ts": 1_700_000_000_000i64})),
            ("odd \"name\"", json!([1, {"b": [true]}])),
        ] {
            let frame = EventFrame {
                event: name.to_string(),
                payload: Some(payload.clone()),
                seq: Some(42),
                state_version: None,
                recipient_profile_id: None,
            };
            assert_eq!(event_text(name, &payload.to_string(), 42), to_text(&Frame::Event(frame)));
        }
    }
}
