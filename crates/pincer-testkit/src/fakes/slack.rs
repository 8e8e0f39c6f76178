//! Fake Slack Web API under `base_url()` = `http://127.0.0.1:<port>/api`: `chat.postMessage`,
//! `auth.test`, `reactions.add|remove`, `chat.update` and `chat.delete` (on the messages it holds),
//! and for reconciliation `conversations.history`, `conversations.replies` and `conversations.open`.
//!
//! Reads are GET requests with query parameters, as Pincer sends them. They answer newest first, `limit` per page with a `next_cursor`, and include each message's
//! `metadata`. Unlike Slack they ignore `oldest` (the fake's `ts` values are not wall-clock
//! times); [`FakeSlack::reads`] records every read so tests can check what was asked. A DM is
//! posted to a user id `U…` and read as the conversation `D…` with the same suffix.
//!
//! With [`FakeSlack::start_socket_mode`] it is also a Socket Mode endpoint: `apps.connections.open`
//! (app token [`FakeSlack::APP_TOKEN`]) answers a `ws://127.0.0.1` URL whose connections get
//! `hello`, then every event the test pushes as an `events_api` envelope. An envelope not acked is
//! delivered again (new envelope id, same `event_id`, `retry_attempt` + 1) on the next connection
//! or when the test calls [`FakeSlack::redeliver_unacked`]; [`FakeSlack::lose_next_ack`] makes the
//! fake ignore an ack, as if it was lost on the way.
//!
//! Like Slack it answers HTTP 200 with `ok: false` and an error code for refusals (`invalid_auth`,
//! `no_text`, `msg_too_long`, …) and HTTP 429 with `Retry-After` when rate limited. Only the bot
//! token [`FakeSlack::TOKEN`] is accepted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::socket::{self, Command, Next, WsServer};
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

/// One read request (`conversations.*`), with its query or form fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackRead {
    /// The method, e.g. `conversations.history`.
    pub method: String,
    /// Its parameters, sorted by name.
    pub params: Vec<(String, String)>,
}

impl SlackRead {
    /// The parameter `name`, if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The bot's reaction added (or removed) on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackReaction {
    /// The conversation id (`C…`, `D…`).
    pub channel: String,
    pub ts: String,
    /// The reaction's name, without colons.
    pub name: String,
    pub removed: bool,
}

#[derive(Default)]
struct SlackState {
    messages: Vec<SlackMessage>,
    /// `(name, conversation, ts)` of every reaction the bot has on a message now.
    on: Vec<(String, String, String)>,
    reactions: Vec<SlackReaction>,
    /// `ts` of deleted messages.
    deleted: Vec<String>,
    faults: VecDeque<Fault>,
    requests: usize,
    reads: Vec<SlackRead>,
    refuse_reads: Option<String>,
    scopes: String,
    socket: SocketState,
}

/// Socket Mode's side of the fake.
#[derive(Default)]
struct SocketState {
    /// `ws://…` once socket mode runs.
    url: Option<String>,
    /// `apps.connections.open` requests, refused ones included.
    opens: usize,
    /// WebSocket connections accepted.
    connections: usize,
    events: Vec<PushedEvent>,
    /// Envelopes waiting to be sent to the open connection.
    queue: VecDeque<Value>,
    /// Acks to ignore (lost on the way).
    lose_acks: usize,
    /// Every envelope id acked (and not lost), in order.
    acks: Vec<String>,
    envelopes_sent: usize,
}

struct PushedEvent {
    payload: Value,
    /// The envelope ids it was sent under.
    envelopes: Vec<String>,
    acked: bool,
}

impl SocketState {
    /// The envelope that (re)delivers event `i`.
    fn envelope(&mut self, i: usize) -> Value {
        self.envelopes_sent += 1;
        let id = format!("env-{}", self.envelopes_sent);
        let e = &mut self.events[i];
        let attempt = e.envelopes.len();
        e.envelopes.push(id.clone());
        json!({
            "envelope_id": id, "type": "events_api", "accepts_response_payload": false,
            "retry_attempt": attempt, "retry_reason": if attempt == 0 { "" } else { "timeout" },
            "payload": e.payload,
        })
    }

    /// Queues every event sent before but never acked again.
    fn redeliver(&mut self) {
        for i in 0..self.events.len() {
            if !self.events[i].acked && !self.events[i].envelopes.is_empty() {
                let envelope = self.envelope(i);
                self.queue.push_back(envelope);
            }
        }
    }
}

type Shared = Arc<Recorder<SlackState>>;

/// A fake Slack Web API on 127.0.0.1.
pub struct FakeSlack {
    server: Server,
    shared: Shared,
    socket: Option<WsServer>,
}

impl FakeSlack {
    /// The only bot token the fake accepts.
    pub const TOKEN: &'static str = "xoxb-fake-slack-token";
    /// The bot user name (what `auth.test` returns as `user`).
    pub const BOT_NAME: &'static str = "pincer-fake";
    /// The workspace name (what `auth.test` returns as `team`).
    pub const TEAM: &'static str = "Fake Team";

    /// The scopes `auth.test` reports in `x-oauth-scopes` unless [`FakeSlack::set_scopes`] changes them.
    pub const SCOPES: &'static str = "chat:write,channels:history,groups:history,im:history,im:write";

    /// The only app-level token `apps.connections.open` accepts.
    pub const APP_TOKEN: &'static str = "xapp-fake-slack-app-token";
    /// The bot's user id (`auth.test`'s `user_id`).
    pub const BOT_USER: &'static str = "U0FAKEBOT";

    /// Starts the fake with a Socket Mode endpoint too.
    pub async fn start_socket_mode() -> Self {
        let mut fake = Self::start().await;
        let shared = fake.shared.clone();
        let server = WsServer::start(move |socket, commands| socket_session(shared.clone(), socket, commands)).await;
        fake.shared.lock().socket.url = Some(server.url());
        fake.socket = Some(server);
        fake
    }

    /// Starts the fake.
    pub async fn start() -> Self {
        let shared = Arc::new(Recorder::new(SlackState { scopes: Self::SCOPES.into(), ..SlackState::default() }));
        let router = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/auth.test", post(auth_test).get(auth_test))
            .route("/api/conversations.history", get(history))
            .route("/api/conversations.replies", get(replies))
            .route("/api/conversations.open", post(open))
            .route("/api/reactions.add", post(react))
            .route("/api/reactions.remove", post(react))
            .route("/api/chat.update", post(update))
            .route("/api/chat.delete", post(delete))
            .route("/api/apps.connections.open", post(connections_open))
            .with_state(shared.clone());
        FakeSlack { server: Server::start(router).await, shared, socket: None }
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

    /// Every reaction added or removed, in order.
    pub fn reactions(&self) -> Vec<SlackReaction> {
        self.shared.lock().reactions.clone()
    }

    /// The `ts` of every message deleted.
    pub fn deleted(&self) -> Vec<String> {
        self.shared.lock().deleted.clone()
    }

    /// `chat.postMessage` requests received, including refused and faulted ones.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// The comma-separated scopes `auth.test` reports in its `x-oauth-scopes` header.
    pub fn set_scopes(&self, scopes: &str) {
        self.shared.lock().scopes = scopes.to_string();
    }

    /// Every `conversations.*` request, in order.
    pub fn reads(&self) -> Vec<SlackRead> {
        self.shared.lock().reads.clone()
    }

    /// Makes every `conversations.*` request answer `{ok: false, error: code}` (e.g.
    /// `missing_scope`), or answer normally again with `None`.
    pub fn refuse_reads(&self, code: Option<&str>) {
        self.shared.lock().refuse_reads = code.map(str::to_string);
    }

    /// Pushes a DM from `user` (`message.im` in conversation `D…` with the user's suffix);
    /// returns its `ts`.
    pub fn push_dm(&self, user: &str, text: &str) -> String {
        let channel = conversation_of(user);
        self.push_event(json!({
            "type": "message", "channel_type": "im", "channel": channel, "user": user, "text": text,
        }))
    }

    /// Pushes an `app_mention` of the bot by `user` in `channel` (the text gets `<@bot> ` in
    /// front), in thread `thread_ts` if given; returns its `ts`.
    pub fn push_mention(&self, channel: &str, user: &str, text: &str, thread_ts: Option<&str>) -> String {
        let mut event = json!({
            "type": "app_mention", "channel": channel, "user": user, "text": format!("<@{}> {text}", Self::BOT_USER),
        });
        if let Some(thread) = thread_ts {
            event["thread_ts"] = json!(thread);
        }
        self.push_event(event)
    }

    /// Pushes `event` (its `ts` and `event_ts` filled in when missing) in an `events_api`
    /// envelope to the open connection (or the next one); returns its `ts`.
    pub fn push_event(&self, mut event: Value) -> String {
        let ts = {
            let mut state = self.shared.lock();
            let n = state.socket.events.len() + 1;
            let ts = event["ts"].as_str().map(str::to_string).unwrap_or_else(|| format!("1710000000.{n:06}"));
            event["ts"] = json!(ts);
            event["event_ts"] = json!(ts);
            let event_id = format!("Ev{n:08}");
            let payload = json!({
                "token": "verification", "team_id": "T0FAKE", "api_app_id": "A0FAKE", "type": "event_callback",
                "event_id": event_id, "event_time": 1_710_000_000 + n, "event": event,
            });
            state.socket.events.push(PushedEvent { payload, envelopes: Vec::new(), acked: false });
            let envelope = state.socket.envelope(n - 1);
            state.socket.queue.push_back(envelope);
            ts
        };
        self.poke();
        ts
    }

    fn poke(&self) {
        if let Some(socket) = &self.socket {
            socket.command(Command::Poke);
        }
    }

    /// Ignores the next ack, as if it was lost: its event stays unacked.
    pub fn lose_next_ack(&self) {
        self.shared.lock().socket.lose_acks += 1;
    }

    /// Sends every event that was delivered but never acked again (Slack's retry).
    pub fn redeliver_unacked(&self) {
        self.shared.lock().socket.redeliver();
        self.poke();
    }

    /// Sends `{"type": "disconnect", "reason": reason}` to the open connections (Slack
    /// refreshing the link); they stay open until the client closes them.
    pub fn disconnect(&self, reason: &str) {
        let frame = json!({ "type": "disconnect", "reason": reason, "debug_info": { "host": "fake" } });
        if let Some(socket) = &self.socket {
            socket.command(Command::Send(frame));
        }
    }

    /// Drops the open connections without a close frame (the network went away).
    pub fn drop_connections(&self) {
        if let Some(socket) = &self.socket {
            socket.command(Command::Drop);
        }
    }

    /// `apps.connections.open` requests so far, refused ones included.
    pub fn opens(&self) -> usize {
        self.shared.lock().socket.opens
    }

    /// Events pushed and never acked.
    pub fn unacked(&self) -> usize {
        self.shared.lock().socket.events.iter().filter(|e| !e.acked).count()
    }

    /// How many envelopes carried event number `n` (1-based, in push order).
    pub fn deliveries(&self, n: usize) -> usize {
        self.shared.lock().socket.events.get(n - 1).map_or(0, |e| e.envelopes.len())
    }

    /// Waits until `n` WebSocket connections were accepted.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) {
        let what = format!("{n} socket mode connections");
        self.shared.wait_for(timeout, &what, |s| (s.socket.connections >= n).then_some(())).await
    }

    /// Waits until every pushed event was acked.
    pub async fn wait_all_acked(&self, timeout: Duration) {
        self.shared
            .wait_for(timeout, "every envelope acked", |s| s.socket.events.iter().all(|e| e.acked).then_some(()))
            .await
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

async fn auth_test(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(code) = auth_error(&headers) {
        return refused(code);
    }
    let scopes = shared.lock().scopes.clone();
    let body = json!({ "ok": true, "user": FakeSlack::BOT_NAME, "team": FakeSlack::TEAM, "user_id": "U0FAKEBOT" });
    ([("x-oauth-scopes", scopes)], axum::Json(body)).into_response()
}

/// The conversation a message was posted to, as reads name it: a DM to `U…` lives in `D…`.
fn conversation_of(channel: &str) -> String {
    match channel.strip_prefix('U').or_else(|| channel.strip_prefix('W')) {
        Some(rest) => format!("D{rest}"),
        None => channel.to_string(),
    }
}

/// Records a read; its refusal, if reads are refused or the token is wrong.
fn start_read(
    shared: &Shared,
    headers: &HeaderMap,
    method: &str,
    params: &BTreeMap<String, String>,
) -> Option<Response> {
    let refusal = {
        let mut state = shared.lock();
        state.reads.push(SlackRead {
            method: method.into(),
            params: params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
        state.refuse_reads.clone()
    };
    shared.notify();
    if let Some(code) = auth_error(headers) {
        return Some(refused(code));
    }
    refusal.map(|code| refused(&code))
}

/// A page of `messages` (oldest first as stored), newest first, per `limit` and `cursor`.
fn page(messages: Vec<&SlackMessage>, params: &BTreeMap<String, String>) -> Response {
    let limit = params.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 999);
    let start = params.get("cursor").and_then(|c| c.strip_prefix("off:")?.parse::<usize>().ok()).unwrap_or(0);
    let newest_first: Vec<Value> = messages
        .iter()
        .rev()
        .skip(start)
        .take(limit)
        .map(|m| {
            let mut v = json!({"type": "message", "ts": m.ts, "text": m.text, "bot_id": "B0FAKEBOT"});
            if let Some(thread) = &m.thread_ts {
                v["thread_ts"] = json!(thread);
            }
            if let Some(meta) = &m.metadata {
                v["metadata"] = meta.clone();
            }
            v
        })
        .collect();
    let more = start + limit < messages.len();
    let cursor = if more { format!("off:{}", start + limit) } else { String::new() };
    axum::Json(json!({
        "ok": true, "messages": newest_first, "has_more": more,
        "response_metadata": {"next_cursor": cursor},
    }))
    .into_response()
}

async fn history(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(refusal) = start_read(&shared, &headers, "conversations.history", &q) {
        return refusal;
    }
    let Some(channel) = q.get("channel").filter(|c| !c.is_empty()) else {
        return refused("channel_not_found");
    };
    let state = shared.lock();
    let top: Vec<&SlackMessage> =
        state.messages.iter().filter(|m| &conversation_of(&m.channel) == channel && m.thread_ts.is_none()).collect();
    page(top, &q)
}

async fn replies(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(refusal) = start_read(&shared, &headers, "conversations.replies", &q) {
        return refusal;
    }
    let (Some(channel), Some(ts)) = (q.get("channel"), q.get("ts")) else {
        return refused("invalid_arguments");
    };
    let state = shared.lock();
    let thread: Vec<&SlackMessage> = state
        .messages
        .iter()
        .filter(|m| &conversation_of(&m.channel) == channel && m.thread_ts.as_ref() == Some(ts))
        .collect();
    page(thread, &q)
}

/// The index of the message `ts` in conversation `channel` (by id, as Slack's actions name it),
/// unless deleted.
fn find_message(state: &SlackState, channel: &str, ts: &str) -> Option<usize> {
    state
        .messages
        .iter()
        .position(|m| conversation_of(&m.channel) == channel && m.ts == ts)
        .filter(|_| !state.deleted.iter().any(|d| d == ts))
}

/// `reactions.add` / `reactions.remove` (`channel`, `timestamp`, `name`), on messages the fake holds.
async fn react(State(shared): State<Shared>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(code) = auth_error(&headers) {
        return refused(code);
    }
    let removed = uri.path().ends_with("reactions.remove");
    let json: Value = serde_json::from_slice(&body).unwrap_or_default();
    let (channel, ts, name) = (json["channel"].as_str(), json["timestamp"].as_str(), json["name"].as_str());
    let (Some(channel), Some(ts), Some(name)) = (channel, ts, name) else {
        return refused("invalid_arguments");
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(&b)) {
        return refused("invalid_name");
    }
    {
        let mut state = shared.lock();
        if find_message(&state, channel, ts).is_none() {
            return refused("message_not_found");
        }
        let key = (name.to_string(), channel.to_string(), ts.to_string());
        let has = state.on.contains(&key);
        match (removed, has) {
            (false, true) => return refused("already_reacted"),
            (true, false) => return refused("no_reaction"),
            (false, false) => state.on.push(key),
            (true, true) => state.on.retain(|k| k != &key),
        }
        state.reactions.push(SlackReaction { channel: channel.into(), ts: ts.into(), name: name.into(), removed });
    }
    shared.notify();
    axum::Json(json!({ "ok": true })).into_response()
}

/// `chat.update` (`channel`, `ts`, `text`) of a message the bot posted.
async fn update(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(code) = auth_error(&headers) {
        return refused(code);
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or_default();
    let (Some(channel), Some(ts)) = (json["channel"].as_str(), json["ts"].as_str()) else {
        return refused("invalid_arguments");
    };
    let text = json["text"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return refused("no_text");
    }
    {
        let mut state = shared.lock();
        let Some(index) = find_message(&state, channel, ts) else { return refused("message_not_found") };
        state.messages[index].text = text.to_string();
    }
    shared.notify();
    axum::Json(json!({ "ok": true, "channel": channel, "ts": ts, "text": text })).into_response()
}

/// `chat.delete` (`channel`, `ts`) of a message the bot posted.
async fn delete(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(code) = auth_error(&headers) {
        return refused(code);
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or_default();
    let (Some(channel), Some(ts)) = (json["channel"].as_str(), json["ts"].as_str()) else {
        return refused("invalid_arguments");
    };
    {
        let mut state = shared.lock();
        if find_message(&state, channel, ts).is_none() {
            return refused("message_not_found");
        }
        state.deleted.push(ts.to_string());
    }
    shared.notify();
    axum::Json(json!({ "ok": true, "channel": channel, "ts": ts })).into_response()
}

async fn open(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or_default();
    let users = json["users"].as_str().unwrap_or_default().to_string();
    let params = BTreeMap::from([("users".to_string(), users.clone())]);
    if let Some(refusal) = start_read(&shared, &headers, "conversations.open", &params) {
        return refusal;
    }
    if !(users.starts_with('U') || users.starts_with('W')) || users.contains(',') {
        return refused("user_not_found");
    }
    axum::Json(json!({"ok": true, "channel": {"id": conversation_of(&users)}})).into_response()
}

async fn connections_open(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let url = {
        let mut state = shared.lock();
        state.socket.opens += 1;
        state.socket.url.clone()
    };
    shared.notify();
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => return refused("not_authed"),
        Some(value) if value == format!("Bearer {}", FakeSlack::APP_TOKEN) => {}
        Some(value) if value.starts_with("Bearer xoxb-") => return refused("not_allowed_token_type"),
        Some(_) => return refused("invalid_auth"),
    }
    let Some(url) = url else { return refused("socket_mode_not_enabled") };
    axum::Json(json!({ "ok": true, "url": format!("{url}/link/?ticket=fake-ticket&app_id=A0FAKE") })).into_response()
}

/// One Socket Mode connection: `hello`, then unacked and queued envelopes; acks recorded.
async fn socket_session(
    shared: Shared,
    mut socket: socket::Socket,
    mut commands: tokio::sync::broadcast::Receiver<Command>,
) {
    {
        let mut state = shared.lock();
        state.socket.connections += 1;
        // A new connection gets every envelope the last one left unacked.
        state.socket.redeliver();
    }
    shared.notify();
    let hello = json!({
        "type": "hello", "num_connections": 1,
        "debug_info": { "host": "fake", "approximate_connection_time": 18060 },
        "connection_info": { "app_id": "A0FAKE" },
    });
    if !socket.send(&hello).await {
        return;
    }
    loop {
        let due: Vec<Value> = shared.lock().socket.queue.drain(..).collect();
        for envelope in due {
            if !socket.send(&envelope).await {
                return;
            }
        }
        match socket.next(&mut commands).await {
            Next::Frame(frame) => {
                let Some(id) = frame["envelope_id"].as_str() else { continue };
                {
                    let mut state = shared.lock();
                    if state.socket.lose_acks > 0 {
                        state.socket.lose_acks -= 1;
                        continue;
                    }
                    state.socket.acks.push(id.to_string());
                    if let Some(e) = state.socket.events.iter_mut().find(|e| e.envelopes.iter().any(|x| x == id)) {
                        e.acked = true;
                    }
                }
                shared.notify();
            }
            Next::Command(Command::Send(value)) => {
                if !socket.send(&value).await {
                    return;
                }
            }
            Next::Command(Command::Close(code, reason)) => return socket.close(code, &reason).await,
            Next::Command(Command::Drop) | Next::Gone => return,
            Next::Command(Command::Poke) => {}
        }
    }
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
