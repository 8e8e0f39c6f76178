//! Fake Discord REST v10: `POST /channels/{id}/messages`, `PATCH|DELETE
//! /channels/{id}/messages/{id}`, `PUT|DELETE /channels/{id}/messages/{id}/reactions/{emoji}/@me`
//! (on the messages it holds: 404 `Unknown Message` otherwise), `POST /channels/{id}/typing`,
//! `POST /users/@me/channels` (DM open), `GET /channels/{id}` (the channels added with
//! [`FakeDiscord::add_channel`]; any other id is a DM channel, type 1, so DM tests need no setup;
//! faults from [`FakeDiscord::push_channel_fault`]),
//! `GET /users/@me` and `GET /gateway/bot` (the fake gateway's URL once one is attached with
//! [`FakeDiscord::attach_gateway`], else 404: never the real gateway), under `base_url()` = `http://127.0.0.1:<port>/api/v10`.
//!
//! It honours `enforce_nonce` like Discord: a nonce seen within the window (5 minutes by default)
//! answers with the original message and records nothing. Only the bot token [`FakeDiscord::TOKEN`]
//! is accepted; anything else gets 401.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde_json::{Value, json};

use super::webhook::harness::{self, Conn, Recorder, Server};

/// A scripted misbehaviour for the next message-create request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer 429 with `retry_after` (float seconds) in the body and a `Retry-After` header.
    RateLimited {
        /// The delay to advertise.
        retry_after: Duration,
        /// Whether it is the global limit.
        global: bool,
    },
    /// Answer this 5xx, recording nothing.
    ServerError(u16),
    /// Record the message, then answer this 5xx ("accepted but answered with an error").
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
    /// Answer a Discord JSON error `{"message", "code"}` with this status.
    Error {
        /// HTTP status.
        status: u16,
        /// Discord's JSON error code.
        code: u64,
        /// Discord's message.
        message: String,
    },
}

impl Fault {
    fn error(status: u16, code: u64, message: &str) -> Self {
        Fault::Error { status, code, message: message.into() }
    }

    /// 401, as for a revoked token.
    pub fn unauthorized() -> Self {
        Self::error(401, 0, "401: Unauthorized")
    }

    /// 404 / 10003 Unknown Channel.
    pub fn unknown_channel() -> Self {
        Self::error(404, 10003, "Unknown Channel")
    }

    /// 403 / 50001 Missing Access.
    pub fn missing_access() -> Self {
        Self::error(403, 50001, "Missing Access")
    }

    /// 403 / 50013 Missing Permissions.
    pub fn missing_permissions() -> Self {
        Self::error(403, 50013, "Missing Permissions")
    }

    /// 403 / 50007 Cannot send messages to this user.
    pub fn cannot_dm() -> Self {
        Self::error(403, 50007, "Cannot send messages to this user")
    }

    /// 400 / 50035 Invalid Form Body.
    pub fn invalid_form_body() -> Self {
        Self::error(400, 50035, "Invalid Form Body")
    }
}

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscordMessage {
    /// The snowflake the fake assigned.
    pub id: String,
    /// The channel (or thread, or DM channel) it was posted to.
    pub channel_id: String,
    /// The `content` field.
    pub content: String,
    /// The `nonce` field, if any.
    pub nonce: Option<String>,
    /// The `enforce_nonce` field.
    pub enforce_nonce: bool,
    /// The `allowed_mentions` field, if any.
    pub allowed_mentions: Option<Value>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// `message_reference.message_id`: the message it replies to.
    pub message_reference: Option<String>,
}

/// The bot's reaction added (or removed) on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordReaction {
    pub channel_id: String,
    pub message_id: String,
    /// The emoji as the path named it, decoded (`👍`, or `name:id` for a custom one).
    pub emoji: String,
    pub removed: bool,
}

struct DiscordState {
    messages: Vec<DiscordMessage>,
    reactions: Vec<DiscordReaction>,
    /// Ids of deleted messages.
    deleted: Vec<String>,
    /// Nonce → (when it was accepted, index of its message).
    nonces: HashMap<String, (Instant, usize)>,
    nonce_window: Duration,
    faults: VecDeque<Fault>,
    requests: usize,
    deduplicated: usize,
    dm_opens: usize,
    dm_channels: HashMap<String, String>,
    next_id: u64,
    /// What `GET /gateway/bot` names.
    gateway_url: Option<String>,
    gateway_lookups: usize,
    /// Channels a typing indicator was triggered in, in order.
    typing: Vec<String>,
    /// What `GET /channels/{id}` answers, by id.
    channels: HashMap<String, Value>,
    /// `GET /channels/{id}` requests received (authorized or not, faulted or not), by id.
    channel_lookups: HashMap<String, usize>,
    /// Faults for the next channel lookups.
    channel_faults: VecDeque<Fault>,
}

/// A fake Discord API on 127.0.0.1.
pub struct FakeDiscord {
    server: Server,
    shared: Arc<Recorder<DiscordState>>,
}

type Shared = Arc<Recorder<DiscordState>>;

impl FakeDiscord {
    /// The only bot token the fake accepts.
    pub const TOKEN: &'static str = "fake-discord-token";
    /// The fake bot's username (what `GET /users/@me` returns).
    pub const BOT_NAME: &'static str = "pincer-fake-bot";

    /// Starts the fake.
    pub async fn start() -> Self {
        let shared = Arc::new(Recorder::new(DiscordState {
            messages: Vec::new(),
            reactions: Vec::new(),
            deleted: Vec::new(),
            nonces: HashMap::new(),
            nonce_window: Duration::from_secs(300),
            faults: VecDeque::new(),
            requests: 0,
            deduplicated: 0,
            dm_opens: 0,
            dm_channels: HashMap::new(),
            next_id: 1_300_000_000_000_000_000,
            gateway_url: None,
            gateway_lookups: 0,
            typing: Vec::new(),
            channels: HashMap::new(),
            channel_lookups: HashMap::new(),
            channel_faults: VecDeque::new(),
        }));
        let router = Router::new()
            .route("/api/v10/channels/{channel_id}/messages", post(create_message))
            .route("/api/v10/channels/{channel_id}/messages/{message_id}", patch(edit_message).delete(delete_message))
            .route(
                "/api/v10/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                put(add_reaction).delete(remove_reaction),
            )
            .route("/api/v10/users/@me/channels", post(open_dm))
            .route("/api/v10/channels/{channel_id}/typing", post(trigger_typing))
            .route("/api/v10/channels/{channel_id}", get(get_channel))
            .route("/api/v10/users/@me", get(me))
            .route("/api/v10/gateway/bot", get(gateway_bot))
            .with_state(shared.clone());
        FakeDiscord { server: Server::start(router).await, shared }
    }

    /// The `apiBaseUrl` to configure: `http://127.0.0.1:<port>/api/v10`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v10", self.server.addr())
    }

    /// `GET /gateway/bot` answers `url` from now on (a fake gateway's `url()`).
    pub fn attach_gateway(&self, url: &str) {
        self.shared.lock().gateway_url = Some(url.to_string());
    }

    /// `GET /gateway/bot` requests received (authorized or not).
    pub fn gateway_lookups(&self) -> usize {
        self.shared.lock().gateway_lookups
    }

    /// `GET /channels/{id}` answers `channel` (a Discord channel object with its `id`) from now on;
    /// see [`group_dm`], [`thread`] and [`text_channel`].
    pub fn add_channel(&self, channel: Value) {
        let id = channel["id"].as_str().expect("a channel has an id").to_string();
        self.shared.lock().channels.insert(id, channel);
    }

    /// `GET /channels/{id}` requests received for `id`.
    pub fn channel_lookups(&self, id: &str) -> usize {
        self.shared.lock().channel_lookups.get(id).copied().unwrap_or(0)
    }

    /// `GET /channels/{id}` requests received in all.
    pub fn all_channel_lookups(&self) -> usize {
        self.shared.lock().channel_lookups.values().sum()
    }

    /// Queues a fault for the next channel lookup (`RateLimited`, `ServerError`, `Error`, `Hang`;
    /// one per request, in order).
    pub fn push_channel_fault(&self, fault: Fault) {
        self.shared.lock().channel_faults.push_back(fault);
    }

    /// Waits until `id` was looked up `n` times.
    pub async fn wait_for_channel_lookups(&self, id: &str, n: usize, timeout: Duration) {
        let what = format!("{n} lookups of channel {id}");
        self.shared
            .wait_for(timeout, &what, |s| (s.channel_lookups.get(id).copied().unwrap_or(0) >= n).then_some(()))
            .await
    }

    /// Queues a fault for the next message-create request (one per request, in order).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Drops the faults not yet used.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// How long a nonce deduplicates (default 5 minutes).
    pub fn set_nonce_window(&self, window: Duration) {
        self.shared.lock().nonce_window = window;
    }

    /// Every message accepted, in order.
    pub fn messages(&self) -> Vec<DiscordMessage> {
        self.shared.lock().messages.clone()
    }

    /// Every reaction added or removed, in order.
    pub fn reactions(&self) -> Vec<DiscordReaction> {
        self.shared.lock().reactions.clone()
    }

    /// Ids of the messages deleted.
    pub fn deleted(&self) -> Vec<String> {
        self.shared.lock().deleted.clone()
    }

    /// Message-create requests received, including refused, faulted and deduplicated ones.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// Message-create requests answered with an earlier message because of their nonce.
    pub fn deduplicated(&self) -> usize {
        self.shared.lock().deduplicated
    }

    /// Channels `POST /channels/{id}/typing` was called for (authorized ones), in order.
    pub fn typing(&self) -> Vec<String> {
        self.shared.lock().typing.clone()
    }

    /// DM-open requests received.
    pub fn dm_opens(&self) -> usize {
        self.shared.lock().dm_opens
    }

    /// The DM channel the fake opened for `user`, if any.
    pub fn dm_channel(&self, user: &str) -> Option<String> {
        self.shared.lock().dm_channels.get(user).cloned()
    }

    /// Nonces that were accepted more than once (outside the window, or without `enforce_nonce`).
    pub fn duplicate_nonces(&self) -> Vec<String> {
        let state = self.shared.lock();
        let mut seen = HashMap::new();
        for nonce in state.messages.iter().filter_map(|m| m.nonce.as_ref()) {
            *seen.entry(nonce.clone()).or_insert(0) += 1;
        }
        let mut dups: Vec<String> = seen.into_iter().filter(|(_, n)| *n > 1).map(|(nonce, _)| nonce).collect();
        dups.sort();
        dups
    }

    /// Panics if any nonce was accepted twice.
    pub fn assert_no_duplicate_nonces(&self) {
        let dups = self.duplicate_nonces();
        assert!(dups.is_empty(), "nonces accepted more than once: {dups:?}");
    }

    /// Waits until at least `n` messages were accepted and returns them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<DiscordMessage> {
        let what = format!("{n} discord messages");
        self.shared.wait_for(timeout, &what, |s| (s.messages.len() >= n).then(|| s.messages.clone())).await
    }
}

fn error(status: u16, code: u64, message: &str) -> Response {
    (harness::status(status), axum::Json(json!({ "message": message, "code": code }))).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bot {}", FakeDiscord::TOKEN))
}

fn message_json(message: &DiscordMessage) -> Value {
    json!({
        "id": message.id,
        "type": 0,
        "channel_id": message.channel_id,
        "content": message.content,
        "nonce": message.nonce,
        "author": { "id": "1100000000000000001", "username": FakeDiscord::BOT_NAME, "bot": true },
    })
}

async fn create_message(
    State(shared): State<Shared>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(channel_id): Path<String>,
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
        Some(Fault::RateLimited { retry_after, global }) => {
            let body = json!({
                "message": "You are being rate limited.",
                "retry_after": retry_after.as_secs_f64(),
                "global": global,
            });
            return harness::too_many_requests(*retry_after, body);
        }
        Some(Fault::ServerError(code)) => return error(*code, 0, "500: Internal Server Error"),
        Some(Fault::Hang) => return harness::hang().await,
        Some(Fault::Reset) => return conn.reset(),
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::Error { status, code, message }) => return error(*status, *code, message),
        _ => {}
    }
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return error(400, 50109, "The request body contains invalid JSON.");
    };
    let content = json["content"].as_str().unwrap_or_default().to_string();
    let nonce = match &json["nonce"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if content.trim().is_empty() {
        return error(400, 50006, "Cannot send an empty message");
    }
    if content.chars().count() > 2000 || nonce.as_ref().is_some_and(|n| n.chars().count() > 25) {
        return error(400, 50035, "Invalid Form Body");
    }
    let enforce_nonce = json["enforce_nonce"].as_bool().unwrap_or(false);
    let answer = {
        let mut state = shared.lock();
        let window = state.nonce_window;
        let original = match (&nonce, enforce_nonce) {
            (Some(nonce), true) => state.nonces.get(nonce).filter(|(at, _)| at.elapsed() < window).map(|(_, i)| *i),
            _ => None,
        };
        match original {
            Some(index) => {
                state.deduplicated += 1;
                message_json(&state.messages[index])
            }
            None => {
                state.next_id += 1;
                let message = DiscordMessage {
                    id: state.next_id.to_string(),
                    channel_id,
                    content,
                    nonce: nonce.clone(),
                    enforce_nonce,
                    allowed_mentions: json.get("allowed_mentions").cloned(),
                    user_agent: headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_string),
                    message_reference: json["message_reference"]["message_id"].as_str().map(str::to_string),
                };
                let answer = message_json(&message);
                state.messages.push(message);
                if let Some(nonce) = nonce {
                    let index = state.messages.len() - 1;
                    state.nonces.insert(nonce, (Instant::now(), index));
                }
                answer
            }
        }
    };
    shared.notify();
    match fault {
        Some(Fault::AcceptThenServerError(code)) => error(code, 0, "500: Internal Server Error"),
        Some(Fault::AcceptThenHang) => harness::hang().await,
        Some(Fault::AcceptThenReset) => conn.reset(),
        Some(Fault::AcceptThenMalformed) => {
            harness::malformed((StatusCode::OK, axum::Json(answer)).into_response()).await
        }
        Some(Fault::AcceptThenBreakOff) => {
            harness::break_off(&conn, (StatusCode::OK, axum::Json(answer)).into_response()).await
        }
        _ => (StatusCode::OK, axum::Json(answer)).into_response(),
    }
}

/// A group DM channel object (type 3).
pub fn group_dm(id: &str, name: Option<&str>) -> Value {
    json!({ "id": id, "type": 3, "name": name, "recipients": [] })
}

/// A thread channel object (type 11, public thread) in `guild` under `parent`.
pub fn thread(id: &str, guild: &str, parent: &str) -> Value {
    json!({ "id": id, "type": 11, "guild_id": guild, "parent_id": parent, "name": format!("thread-{id}") })
}

/// A guild text channel object (type 0).
pub fn text_channel(id: &str, guild: &str) -> Value {
    json!({ "id": id, "type": 0, "guild_id": guild, "name": format!("channel-{id}") })
}

async fn get_channel(State(shared): State<Shared>, Path(channel_id): Path<String>, headers: HeaderMap) -> Response {
    let (fault, known) = {
        let mut state = shared.lock();
        *state.channel_lookups.entry(channel_id.clone()).or_insert(0) += 1;
        (state.channel_faults.pop_front(), state.channels.get(&channel_id).cloned())
    };
    shared.notify();
    match fault {
        Some(Fault::RateLimited { retry_after, global }) => {
            let body = json!({
                "message": "You are being rate limited.",
                "retry_after": retry_after.as_secs_f64(),
                "global": global,
            });
            return harness::too_many_requests(retry_after, body);
        }
        Some(Fault::ServerError(code)) => return error(code, 0, "500: Internal Server Error"),
        Some(Fault::Hang) => return harness::hang().await,
        Some(Fault::Error { status, code, message }) => return error(status, code, &message),
        _ => {}
    }
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let channel = known.unwrap_or_else(|| json!({ "id": channel_id, "type": 1, "recipients": [] }));
    (StatusCode::OK, axum::Json(channel)).into_response()
}

/// The index of a message the fake holds in `channel_id` (not deleted), or Discord's 404.
fn find_message(state: &DiscordState, channel_id: &str, message_id: &str) -> Result<usize, Response> {
    state
        .messages
        .iter()
        .position(|m| m.channel_id == channel_id && m.id == message_id)
        .filter(|_| !state.deleted.iter().any(|d| d == message_id))
        .ok_or_else(|| error(404, 10008, "Unknown Message"))
}

async fn edit_message(
    State(shared): State<Shared>,
    Path((channel_id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return error(400, 50109, "The request body contains invalid JSON.");
    };
    let content = json["content"].as_str().unwrap_or_default().to_string();
    if content.trim().is_empty() || content.chars().count() > 2000 {
        return error(400, 50035, "Invalid Form Body");
    }
    let answer = {
        let mut state = shared.lock();
        let index = match find_message(&state, &channel_id, &message_id) {
            Ok(index) => index,
            Err(response) => return response,
        };
        state.messages[index].content = content;
        message_json(&state.messages[index])
    };
    shared.notify();
    (StatusCode::OK, axum::Json(answer)).into_response()
}

async fn delete_message(
    State(shared): State<Shared>,
    Path((channel_id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    {
        let mut state = shared.lock();
        if let Err(response) = find_message(&state, &channel_id, &message_id) {
            return response;
        }
        state.deleted.push(message_id);
    }
    shared.notify();
    StatusCode::NO_CONTENT.into_response()
}

async fn add_reaction(
    State(shared): State<Shared>,
    Path((channel_id, message_id, emoji)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    react(shared, channel_id, message_id, emoji, headers, false)
}

async fn remove_reaction(
    State(shared): State<Shared>,
    Path((channel_id, message_id, emoji)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    react(shared, channel_id, message_id, emoji, headers, true)
}

fn react(
    shared: Shared,
    channel_id: String,
    message_id: String,
    emoji: String,
    headers: HeaderMap,
    removed: bool,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    // A Unicode emoji (no ASCII letters) or a custom one as `name:id`.
    let custom =
        emoji.split_once(':').is_some_and(|(name, id)| !name.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    if emoji.is_empty() || (!custom && emoji.bytes().any(|b| b.is_ascii_alphanumeric())) {
        return error(400, 10014, "Unknown Emoji");
    }
    {
        let mut state = shared.lock();
        if let Err(response) = find_message(&state, &channel_id, &message_id) {
            return response;
        }
        state.reactions.push(DiscordReaction { channel_id, message_id, emoji, removed });
    }
    shared.notify();
    StatusCode::NO_CONTENT.into_response()
}

async fn open_dm(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let recipient = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["recipient_id"].as_str().map(str::to_string))
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    let Some(recipient) = recipient else {
        return error(400, 50035, "Invalid Form Body");
    };
    let id = {
        let mut state = shared.lock();
        state.dm_opens += 1;
        let next = 1_200_000_000_000_000_000u64 + state.dm_channels.len() as u64 + 1;
        state.dm_channels.entry(recipient.clone()).or_insert_with(|| next.to_string()).clone()
    };
    shared.notify();
    axum::Json(json!({ "id": id, "type": 1, "recipients": [{ "id": recipient }] })).into_response()
}

async fn trigger_typing(State(shared): State<Shared>, Path(channel_id): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    shared.lock().typing.push(channel_id);
    shared.notify();
    StatusCode::NO_CONTENT.into_response()
}

async fn me(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    axum::Json(json!({ "id": "1100000000000000001", "username": FakeDiscord::BOT_NAME, "bot": true })).into_response()
}

async fn gateway_bot(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let url = {
        let mut state = shared.lock();
        state.gateway_lookups += 1;
        state.gateway_url.clone()
    };
    shared.notify();
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    match url {
        Some(url) => axum::Json(json!({
            "url": url,
            "shards": 1,
            "session_start_limit": { "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1 },
        }))
        .into_response(),
        None => error(404, 0, "the fake Discord has no gateway attached (FakeDiscord::attach_gateway)"),
    }
}
