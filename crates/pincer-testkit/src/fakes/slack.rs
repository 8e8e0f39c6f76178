//! Fake Slack Web API: `POST /chat.postMessage` and `POST /auth.test` under `base_url()` =
//! `http://127.0.0.1:<port>/api`.
//!
//! Like Slack it answers HTTP 200 with `ok: false` and an error code for refusals (`invalid_auth`,
//! `no_text`, `msg_too_long`, …) and HTTP 429 with `Retry-After` when rate limited. Only the bot
//! token [`FakeSlack::TOKEN`] is accepted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::webhook::harness::{self, Conn, Recorder, Server};

/// A scripted misbehaviour for the next `chat.postMessage` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer HTTP 429 with `Retry-After`, recording nothing.
    RateLimited {
        /// The delay to advertise.
        retry_after: Duration,
    },
    /// Answer this 5xx, recording nothing.
    ServerError(u16),
    /// Record the message, then answer this 5xx.
    AcceptThenServerError(u16),
    /// Never answer, recording nothing.
    Hang,
    /// Record the message, then never answer.
    AcceptThenHang,
    /// Reset the connection, recording nothing.
    Reset,
    /// Record the message, then reset the connection.
    AcceptThenReset,
    /// Record the message, then answer 200 with the answer's body cut short (not JSON).
    AcceptThenMalformed,
    /// Record the message, then send the 200 answer's head and half its body, and reset the
    /// connection.
    AcceptThenBreakOff,
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Answer HTTP 200 `{"ok": false, "error": <code>}` (e.g. `channel_not_found`, `internal_error`).
    Error(String),
}

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    /// The `ts` the fake assigned.
    pub ts: String,
    /// The `channel` field as sent.
    pub channel: String,
    /// The `text` field.
    pub text: String,
    /// The `thread_ts` field, if any.
    pub thread_ts: Option<String>,
    /// The `unfurl_links` field, if any.
    pub unfurl_links: Option<bool>,
    /// The `metadata` field, if any.
    pub metadata: Option<Value>,
}

#[derive(Default)]
struct SlackState {
    messages: Vec<SlackMessage>,
    faults: VecDeque<Fault>,
    requests: usize,
}

type Shared = Arc<Recorder<SlackState>>;

/// A fake Slack Web API on 127.0.0.1.
pub struct FakeSlack {
    server: Server,
    shared: Shared,
}

impl FakeSlack {
    /// The only bot token the fake accepts.
    pub const TOKEN: &'static str = "xoxb-fake-slack-token";
    /// The bot user name (what `auth.test` returns as `user`).
    pub const BOT_NAME: &'static str = "pincer-fake";
    /// The workspace name (what `auth.test` returns as `team`).
    pub const TEAM: &'static str = "Fake Team";

    /// Starts the fake.
    pub async fn start() -> Self {
        let shared = Arc::new(Recorder::new(SlackState::default()));
        let router = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/auth.test", post(auth_test).get(auth_test))
            .with_state(shared.clone());
        FakeSlack { server: Server::start(router).await, shared }
    }

    /// The `apiBaseUrl` to configure: `http://127.0.0.1:<port>/api`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.server.addr())
    }

    /// Queues a fault for the next `chat.postMessage` request (one per request, in order).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Every message accepted, in order.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.shared.lock().messages.clone()
    }

    /// `chat.postMessage` requests received, including refused and faulted ones.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// Waits until at least `n` messages were accepted and returns them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<SlackMessage> {
        let what = format!("{n} slack messages");
        self.shared.wait_for(timeout, &what, |s| (s.messages.len() >= n).then(|| s.messages.clone())).await
    }
}

fn refused(code: &str) -> Response {
    axum::Json(json!({ "ok": false, "error": code })).into_response()
}

/// `None` when the bearer token is right, else the Slack error code.
fn auth_error(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => Some("not_authed"),
        Some(value) if value == format!("Bearer {}", FakeSlack::TOKEN) => None,
        Some(_) => Some("invalid_auth"),
    }
}

async fn auth_test(headers: HeaderMap) -> Response {
    if let Some(code) = auth_error(&headers) {
        return refused(code);
    }
    axum::Json(json!({ "ok": true, "user": FakeSlack::BOT_NAME, "team": FakeSlack::TEAM, "user_id": "U0FAKEBOT" }))
        .into_response()
}

async fn post_message(
    State(shared): State<Shared>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut state = shared.lock();
        state.requests += 1;
        state.faults.pop_front()
    };
    shared.notify();
    match &fault {
        Some(Fault::RateLimited { retry_after }) => {
            return harness::too_many_requests(*retry_after, json!({ "ok": false, "error": "ratelimited" }));
        }
        Some(Fault::ServerError(code)) => return (harness::status(*code), "upstream error").into_response(),
        Some(Fault::Hang) => return harness::hang().await,
        Some(Fault::Reset) => return conn.reset(),
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::Error(code)) => return refused(code),
        _ => {}
    }
    if let Some(code) = auth_error(&headers) {
        return refused(code);
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return refused("invalid_json");
    };
    let Some(channel) = json["channel"].as_str().filter(|c| !c.is_empty()).map(str::to_string) else {
        return refused("channel_not_found");
    };
    let text = json["text"].as_str().unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return refused("no_text");
    }
    if text.chars().count() > 40_000 {
        return refused("msg_too_long");
    }
    let answer = {
        let mut state = shared.lock();
        let ts = format!("1700000000.{:06}", state.messages.len() + 1);
        let message = SlackMessage {
            ts: ts.clone(),
            channel: channel.clone(),
            text: text.clone(),
            thread_ts: json["thread_ts"].as_str().map(str::to_string),
            unfurl_links: json["unfurl_links"].as_bool(),
            metadata: json.get("metadata").cloned(),
        };
        state.messages.push(message);
        json!({ "ok": true, "channel": channel, "ts": ts, "message": { "text": text, "ts": ts } })
    };
    shared.notify();
    match fault {
        Some(Fault::AcceptThenServerError(code)) => (harness::status(code), "upstream error").into_response(),
        Some(Fault::AcceptThenHang) => harness::hang().await,
        Some(Fault::AcceptThenReset) => conn.reset(),
        Some(Fault::AcceptThenMalformed) => harness::malformed(axum::Json(answer).into_response()).await,
        Some(Fault::AcceptThenBreakOff) => harness::break_off(&conn, axum::Json(answer).into_response()).await,
        _ => axum::Json(answer).into_response(),
    }
}
