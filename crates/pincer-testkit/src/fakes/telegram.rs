//! Fake Telegram Bot API: `POST|GET /bot<token>/sendMessage` and `/bot<token>/getMe` under
//! `base_url()` (the `apiRoot`), and the inbound side: `getUpdates` as a long poll over the updates
//! a test pushes ([`FakeTelegram::push_message`]), `sendChatAction`, and `setWebhook` /
//! `deleteWebhook` with [`FakeTelegram::deliver_webhook`] posting updates to the webhook as
//! Telegram does.
//!
//! `getUpdates` behaves like Telegram's: updates below `offset` are confirmed and dropped, the
//! rest are answered (again, until confirmed), and with nothing to answer the request is held for
//! `timeout` seconds. A newer `getUpdates` ends a held one with 409 Conflict ("terminated by other
//! getUpdates request"), every poll answers 409 while [`FakeTelegram::set_conflict`] is on or a
//! webhook is set, and [`PollFault`]s script the rest (a reset mid-poll, a 5xx).
//!
//! Like Telegram it checks `parse_mode: "HTML"` text (only Telegram's tags, balanced, with `<` and `&`
//! escaped) and refuses bad HTML with "Bad Request: can't parse entities", refuses text longer than
//! 4096 UTF-16 units after entity parsing, and answers `migrate_to_chat_id` for chats registered
//! with [`FakeTelegram::migrate_chat`]. Only [`FakeTelegram::TOKEN`] is accepted.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

use super::webhook::harness::{self, Conn, Recorder, Server};

/// A scripted misbehaviour for the next `sendMessage` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer 429 with `parameters.retry_after` (seconds), recording nothing.
    RateLimited {
        /// Seconds to advertise.
        retry_after_secs: u64,
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
    /// Refuse the next message that has a `parse_mode` with "can't parse entities" (plain-text
    /// requests pass and leave this fault queued).
    RejectHtml,
    /// Answer `{"ok": false, "error_code": status, "description": …}`.
    Error {
        /// HTTP status and `error_code`.
        status: u16,
        /// Telegram's description.
        description: String,
    },
}

impl Fault {
    fn error(status: u16, description: &str) -> Self {
        Fault::Error { status, description: description.into() }
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::error(401, "Unauthorized")
    }

    /// 400 chat not found.
    pub fn chat_not_found() -> Self {
        Self::error(400, "Bad Request: chat not found")
    }

    /// 403 bot was blocked by the user.
    pub fn blocked() -> Self {
        Self::error(403, "Forbidden: bot was blocked by the user")
    }

    /// 403 bot was kicked.
    pub fn kicked() -> Self {
        Self::error(403, "Forbidden: bot was kicked from the supergroup chat")
    }

    /// 400 message thread not found.
    pub fn thread_not_found() -> Self {
        Self::error(400, "Bad Request: message thread not found")
    }

    /// 400 message is too long.
    pub fn too_long() -> Self {
        Self::error(400, "Bad Request: message is too long")
    }
}

/// A scripted misbehaviour for the next `getUpdates` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollFault {
    /// Hold the poll for this long, then reset the connection (the network dropped mid-poll).
    ResetAfter(Duration),
    /// Answer this 5xx.
    ServerError(u16),
    /// Answer 409 Conflict once.
    Conflict,
}

/// One `getUpdates` request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// The `offset` parameter, if given.
    pub offset: Option<i64>,
    /// The `timeout` parameter (seconds), if given.
    pub timeout: Option<u64>,
    /// The `allowed_updates` parameter, if given.
    pub allowed_updates: Option<Vec<String>>,
}

/// One `sendChatAction` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAction {
    pub chat_id: String,
    pub action: String,
    pub message_thread_id: Option<i64>,
}

/// A message a user sends to the bot, as the fake wraps it in an update.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The chat: the user's id in a DM, negative for groups.
    pub chat_id: i64,
    /// `private`, `group` or `supergroup`.
    pub chat_type: &'static str,
    /// The sender's user id.
    pub from_id: i64,
    /// The sender's username (without `@`).
    pub from_username: String,
    /// The sender is a bot.
    pub from_bot: bool,
    /// The text; `None` for a sticker or photo without a caption.
    pub text: Option<String>,
    /// A forum topic (`message_thread_id`, with `is_topic_message`).
    pub topic: Option<i64>,
    /// The message answers one of the bot's messages.
    pub reply_to_bot: bool,
    /// Sent as `edited_message` instead of `message`.
    pub edited: bool,
    /// Carries a sticker instead of text.
    pub sticker: bool,
    /// Carries a photo; `text` becomes its caption.
    pub photo: bool,
}

impl Incoming {
    /// A direct message from user `from` (the chat id is the user id).
    pub fn dm(from: i64, text: &str) -> Incoming {
        Incoming {
            chat_id: from,
            chat_type: "private",
            from_id: from,
            from_username: format!("user{from}"),
            from_bot: false,
            text: Some(text.to_string()),
            topic: None,
            reply_to_bot: false,
            edited: false,
            sticker: false,
            photo: false,
        }
    }

    /// A message from user `from` in the group (supergroup) `chat`.
    pub fn group(chat: i64, from: i64, text: &str) -> Incoming {
        Incoming { chat_id: chat, chat_type: "supergroup", ..Incoming::dm(from, text) }
    }

    /// In forum topic `topic`.
    pub fn topic(mut self, topic: i64) -> Incoming {
        self.topic = Some(topic);
        self
    }

    /// Sent by another bot.
    pub fn from_bot(mut self) -> Incoming {
        self.from_bot = true;
        self
    }

    /// A reply to one of the bot's messages.
    pub fn reply_to_bot(mut self) -> Incoming {
        self.reply_to_bot = true;
        self
    }

    /// An edit of an earlier message.
    pub fn edited(mut self) -> Incoming {
        self.edited = true;
        self
    }

    /// A sticker, no text.
    pub fn sticker(mut self) -> Incoming {
        self.sticker = true;
        self.text = None;
        self
    }

    /// A photo with `caption` (or none).
    pub fn photo(mut self, caption: Option<&str>) -> Incoming {
        self.photo = true;
        self.text = caption.map(str::to_string);
        self
    }
}

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramMessage {
    /// The id the fake assigned.
    pub message_id: i64,
    /// `chat_id` as sent (a number as text, or `@name`).
    pub chat_id: String,
    /// The `text` field as sent.
    pub text: String,
    /// The `parse_mode` field, if any.
    pub parse_mode: Option<String>,
    /// The `message_thread_id` field, if any.
    pub message_thread_id: Option<i64>,
    /// `reply_to_message_id` (or `reply_parameters.message_id`), if any.
    pub reply_to_message_id: Option<i64>,
}

/// The bot's reaction on a message (`setMessageReaction`; an empty list removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramReaction {
    pub chat_id: String,
    pub message_id: i64,
    /// The emoji set, none after a removal.
    pub emoji: Vec<String>,
}

#[derive(Default)]
struct TelegramState {
    messages: Vec<TelegramMessage>,
    /// When each accepted message's `sendMessage` request arrived (wall clock, µs), by index.
    message_at_unix_us: Vec<u64>,
    /// When a `getUpdates` answer first carried each update: `update_id` → wall clock, µs.
    handed_over_unix_us: HashMap<i64, u64>,
    /// Users' messages pushed as updates: `(chat_id, message_id)`, so they can be reacted to.
    incoming: Vec<(String, i64)>,
    reactions: Vec<TelegramReaction>,
    /// Messages deleted: `(chat_id, message_id)`.
    deleted: Vec<(String, i64)>,
    faults: VecDeque<Fault>,
    requests: usize,
    migrated: HashMap<String, i64>,
    /// Every update pushed and not yet confirmed, oldest first.
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    polls: Vec<Poll>,
    poll_faults: VecDeque<PollFault>,
    /// Bumped by every poll: a held poll that sees it change was replaced (409).
    poll_generation: u64,
    conflict: bool,
    revoked: bool,
    /// `(url, secret_token)` while a webhook is set.
    webhook: Option<(String, Option<String>)>,
    webhook_calls: Vec<String>,
    chat_actions: Vec<ChatAction>,
}

type Shared = Arc<Recorder<TelegramState>>;

/// A fake Telegram Bot API on 127.0.0.1.
pub struct FakeTelegram {
    server: Server,
    shared: Shared,
}

impl FakeTelegram {
    /// The only bot token the fake accepts.
    pub const TOKEN: &'static str = "123456:fake-telegram-token";
    /// The bot's username (what `getMe` returns).
    pub const BOT_NAME: &'static str = "pincer_fake_bot";

    /// The bot's user id (what `getMe` returns).
    pub const BOT_ID: i64 = 123456;

    /// Starts the fake.
    pub async fn start() -> Self {
        let shared = Arc::new(Recorder::new(TelegramState {
            next_update_id: 500_000_001,
            next_message_id: 1,
            ..TelegramState::default()
        }));
        let router = Router::new().route("/{bot}/{method}", any(dispatch)).with_state(shared.clone());
        FakeTelegram { server: Server::start(router).await, shared }
    }

    /// The `apiRoot` to configure: `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Queues a fault for the next `sendMessage` request (one per request, in order).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// From now on, messages to chat `old` are refused with `migrate_to_chat_id: new`.
    pub fn migrate_chat(&self, old: i64, new: i64) {
        self.shared.lock().migrated.insert(old.to_string(), new);
    }

    /// Every message accepted, in order.
    pub fn messages(&self) -> Vec<TelegramMessage> {
        self.shared.lock().messages.clone()
    }

    /// Every `setMessageReaction` accepted, in order.
    pub fn reactions(&self) -> Vec<TelegramReaction> {
        self.shared.lock().reactions.clone()
    }

    /// Messages deleted with `deleteMessage`: `(chat_id, message_id)`.
    pub fn deleted(&self) -> Vec<(String, i64)> {
        self.shared.lock().deleted.clone()
    }

    /// When each message of [`FakeTelegram::messages`] arrived (its `sendMessage` request's
    /// arrival on the wall clock, µs since the Unix epoch), by index.
    pub fn message_times_unix_us(&self) -> Vec<u64> {
        self.shared.lock().message_at_unix_us.clone()
    }

    /// When a `getUpdates` answer first handed each update over (wall clock, µs since the Unix
    /// epoch), by `update_id`: the moment a long poll was answered, so the wait before it is not
    /// counted.
    pub fn handed_over_unix_us(&self) -> HashMap<i64, u64> {
        self.shared.lock().handed_over_unix_us.clone()
    }

    /// `sendMessage` requests received, including refused and faulted ones.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// Waits until at least `n` messages were accepted and returns them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<TelegramMessage> {
        let what = format!("{n} telegram messages");
        self.shared.wait_for(timeout, &what, |s| (s.messages.len() >= n).then(|| s.messages.clone())).await
    }

    /// Queues a user's message as an update; returns `(update_id, message_id)`.
    pub fn push_message(&self, incoming: Incoming) -> (i64, i64) {
        let (update_id, message_id) = {
            let mut state = self.shared.lock();
            let message_id = state.next_message_id;
            state.next_message_id += 1;
            let update_id = state.next_update_id;
            state.next_update_id += 1;
            let update = update_json(update_id, message_id, &incoming);
            state.updates.push_back(update);
            state.incoming.push((incoming.chat_id.to_string(), message_id));
            (update_id, message_id)
        };
        self.shared.notify();
        (update_id, message_id)
    }

    /// Queues a raw update (its `update_id` is assigned); returns the id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut state = self.shared.lock();
            let id = state.next_update_id;
            state.next_update_id += 1;
            update["update_id"] = json!(id);
            state.updates.push_back(update);
            id
        };
        self.shared.notify();
        id
    }

    /// Updates pushed and not yet confirmed by a poll's `offset` (nor by the webhook).
    pub fn unconfirmed(&self) -> usize {
        self.shared.lock().updates.len()
    }

    /// Every `getUpdates` request, in order.
    pub fn polls(&self) -> Vec<Poll> {
        self.shared.lock().polls.clone()
    }

    /// Waits until at least `n` polls arrived and returns them.
    pub async fn wait_for_polls(&self, n: usize, timeout: Duration) -> Vec<Poll> {
        let what = format!("{n} telegram getUpdates polls");
        self.shared.wait_for(timeout, &what, |s| (s.polls.len() >= n).then(|| s.polls.clone())).await
    }

    /// Queues a fault for the next `getUpdates` request.
    pub fn push_poll_fault(&self, fault: PollFault) {
        self.shared.lock().poll_faults.push_back(fault);
    }

    /// While on, every `getUpdates` answers 409 Conflict (another poller holds the bot).
    pub fn set_conflict(&self, on: bool) {
        self.shared.lock().conflict = on;
        self.shared.notify();
    }

    /// From now on every request answers 401 Unauthorized (the token was revoked).
    pub fn revoke_token(&self) {
        self.shared.lock().revoked = true;
        self.shared.notify();
    }

    /// `sendChatAction` requests, in order.
    pub fn chat_actions(&self) -> Vec<ChatAction> {
        self.shared.lock().chat_actions.clone()
    }

    /// The webhook set with `setWebhook`: `(url, secret_token)`.
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        self.shared.lock().webhook.clone()
    }

    /// `setWebhook` / `deleteWebhook` calls, in order (`set <url>`, `delete`).
    pub fn webhook_calls(&self) -> Vec<String> {
        self.shared.lock().webhook_calls.clone()
    }

    /// Posts every unconfirmed update to the webhook, in order, as Telegram does: with the secret
    /// in `X-Telegram-Bot-Api-Secret-Token`; an update answered 2xx is confirmed, the first that is
    /// not stops the round (Telegram retries it later). Returns each status.
    pub async fn deliver_webhook(&self) -> anyhow::Result<Vec<u16>> {
        let (url, secret) = self.webhook().ok_or_else(|| anyhow::anyhow!("no webhook is set"))?;
        let rest = url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("the fake posts to http:// only"))?;
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
        let addr: std::net::SocketAddr = host.parse()?;
        let mut statuses = Vec::new();
        loop {
            let Some(update) = self.shared.lock().updates.front().cloned() else { break };
            let headers: Vec<(&str, &str)> =
                secret.as_deref().map(|s| vec![("X-Telegram-Bot-Api-Secret-Token", s)]).unwrap_or_default();
            let (status, _) = crate::http::post_json(addr, &path, &headers, &update).await?;
            statuses.push(status);
            if !(200..300).contains(&status) {
                break;
            }
            let mut state = self.shared.lock();
            if state.updates.front().is_some_and(|u| u["update_id"] == update["update_id"]) {
                state.updates.pop_front();
            }
        }
        self.shared.notify();
        Ok(statuses)
    }
}

/// The update Telegram would send for `incoming`.
fn update_json(update_id: i64, message_id: i64, m: &Incoming) -> Value {
    let chat = if m.chat_type == "private" {
        json!({ "id": m.chat_id, "type": "private", "username": m.from_username, "first_name": "User" })
    } else {
        json!({ "id": m.chat_id, "type": m.chat_type, "title": "Fake group", "is_forum": m.topic.is_some() })
    };
    let mut message = json!({
        "message_id": message_id,
        "date": 1_700_000_000,
        "chat": chat,
        "from": { "id": m.from_id, "is_bot": m.from_bot, "first_name": "User", "username": m.from_username },
    });
    let text_key = if m.photo { "caption" } else { "text" };
    if let Some(text) = &m.text {
        message[text_key] = json!(text);
        let mention = format!("@{}", FakeTelegram::BOT_NAME);
        if let Some(at) = text.find(&mention) {
            let offset = text[..at].encode_utf16().count();
            let key = if m.photo { "caption_entities" } else { "entities" };
            message[key] = json!([{ "type": "mention", "offset": offset, "length": mention.encode_utf16().count() }]);
        }
    }
    if m.sticker {
        message["sticker"] = json!({ "file_id": "sticker-1", "emoji": "👍", "width": 512, "height": 512 });
    }
    if m.photo {
        message["photo"] = json!([{ "file_id": "photo-1", "width": 90, "height": 90 }]);
    }
    if let Some(topic) = m.topic {
        message["message_thread_id"] = json!(topic);
        message["is_topic_message"] = json!(true);
    }
    if m.reply_to_bot {
        message["reply_to_message"] = json!({
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": message["chat"].clone(),
            "from": { "id": FakeTelegram::BOT_ID, "is_bot": true, "first_name": "Pincer", "username": FakeTelegram::BOT_NAME },
            "text": "an earlier answer",
        });
    }
    if m.edited {
        message["edit_date"] = json!(1_700_000_100);
        json!({ "update_id": update_id, "edited_message": message })
    } else {
        json!({ "update_id": update_id, "message": message })
    }
}

fn failure(status: u16, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({ "ok": false, "error_code": status, "description": description });
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    (harness::status(status), axum::Json(body)).into_response()
}

async fn dispatch(
    State(shared): State<Shared>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path((bot, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if bot != format!("bot{}", FakeTelegram::TOKEN) || shared.lock().revoked {
        return failure(401, "Unauthorized", None);
    }
    let params = request_params(&query, &body);
    match method.as_str() {
        "getMe" => axum::Json(json!({
            "ok": true,
            "result": { "id": FakeTelegram::BOT_ID, "is_bot": true, "first_name": "Pincer", "username": FakeTelegram::BOT_NAME },
        }))
        .into_response(),
        "sendMessage" => send_message(shared, conn, body).await,
        "getUpdates" => get_updates(shared, conn, params).await,
        "sendChatAction" => {
            let action = ChatAction {
                chat_id: match &params["chat_id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                action: params["action"].as_str().unwrap_or_default().to_string(),
                message_thread_id: int_param(&params["message_thread_id"]),
            };
            shared.lock().chat_actions.push(action);
            shared.notify();
            ok_true()
        }
        "setWebhook" => {
            let Some(url) = params["url"].as_str().filter(|u| !u.is_empty()).map(str::to_string) else {
                return failure(400, "Bad Request: bad webhook: URL host is empty", None);
            };
            let secret = params["secret_token"].as_str().map(str::to_string);
            let mut state = shared.lock();
            state.webhook_calls.push(format!("set {url}"));
            state.webhook = Some((url, secret));
            state.poll_generation += 1;
            drop(state);
            shared.notify();
            ok_true()
        }
        "deleteWebhook" => {
            let mut state = shared.lock();
            state.webhook_calls.push("delete".into());
            state.webhook = None;
            if params["drop_pending_updates"] == json!(true) {
                state.updates.clear();
            }
            drop(state);
            shared.notify();
            ok_true()
        }
        "setMyCommands" | "deleteMyCommands" => ok_true(),
        "setMessageReaction" | "editMessageText" | "deleteMessage" => act_on_message(&shared, &method, &params),
        _ => failure(404, "Not Found", None),
    }
}

/// `setMessageReaction`, `editMessageText` and `deleteMessage`, as Telegram answers them: the
/// message must exist in that chat (one the bot sent, or a user's for a reaction) and not be
/// deleted; an edit must change the text and only the bot's own messages can be edited.
fn act_on_message(shared: &Shared, method: &str, params: &Value) -> Response {
    let chat_id = match &params["chat_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => return failure(400, "Bad Request: chat_id is empty", None),
    };
    let Some(message_id) = int_param(&params["message_id"]) else {
        return failure(400, "Bad Request: message_id is empty", None);
    };
    let what = match method {
        "setMessageReaction" => "react",
        "editMessageText" => "edit",
        _ => "delete",
    };
    let mut state = shared.lock();
    let key = (chat_id.clone(), message_id);
    let own = state.messages.iter().position(|m| m.chat_id == chat_id && m.message_id == message_id);
    let exists = (own.is_some() || state.incoming.contains(&key)) && !state.deleted.contains(&key);
    if !exists || (what == "edit" && own.is_none()) {
        return failure(400, &format!("Bad Request: message to {what} not found"), None);
    }
    let answer = match method {
        "setMessageReaction" => {
            let emoji = params["reaction"]
                .as_array()
                .map(|r| r.iter().filter_map(|e| e["emoji"].as_str().map(String::from)).collect())
                .unwrap_or_default();
            state.reactions.push(TelegramReaction { chat_id, message_id, emoji });
            json!(true)
        }
        "editMessageText" => {
            let text = params["text"].as_str().unwrap_or_default().to_string();
            let parse_mode = params["parse_mode"].as_str().filter(|m| !m.is_empty()).map(str::to_string);
            if let Some("HTML") = parse_mode.as_deref()
                && let Err(why) = visible_text(&text)
            {
                return failure(400, &format!("Bad Request: can't parse entities: {why}"), None);
            }
            let message = &mut state.messages[own.unwrap_or_default()];
            if message.text == text {
                return failure(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                    None,
                );
            }
            message.text = text.clone();
            message.parse_mode = parse_mode;
            json!({ "message_id": message_id, "chat": { "id": chat_id }, "text": text })
        }
        _ => {
            state.deleted.push(key);
            json!(true)
        }
    };
    drop(state);
    shared.notify();
    axum::Json(json!({ "ok": true, "result": answer })).into_response()
}

fn ok_true() -> Response {
    axum::Json(json!({ "ok": true, "result": true })).into_response()
}

/// A request's parameters: the JSON body, else a form body, else the query string (the Bot API
/// accepts all three).
fn request_params(query: &HashMap<String, String>, body: &Bytes) -> Value {
    if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
        return v;
    }
    let mut out = serde_json::Map::new();
    let form = String::from_utf8_lossy(body);
    for pair in form.split('&').filter(|p| p.contains('=')) {
        let (k, v) = pair.split_once('=').unwrap_or_default();
        out.insert(k.to_string(), json!(v));
    }
    for (k, v) in query {
        out.entry(k.clone()).or_insert_with(|| json!(v));
    }
    Value::Object(out)
}

/// An integer parameter sent as a number or as text.
fn int_param(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

async fn get_updates(shared: Shared, conn: Conn, params: Value) -> Response {
    let offset = int_param(&params["offset"]);
    let timeout = int_param(&params["timeout"]).map(|t| t.max(0) as u64);
    let limit = int_param(&params["limit"]).unwrap_or(100).clamp(1, 100) as usize;
    let allowed_updates = match &params["allowed_updates"] {
        Value::Array(items) => Some(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
        Value::String(s) => serde_json::from_str::<Vec<String>>(s).ok(),
        _ => None,
    };
    let (fault, generation) = {
        let mut state = shared.lock();
        state.polls.push(Poll { offset, timeout, allowed_updates });
        state.poll_generation += 1;
        (state.poll_faults.pop_front(), state.poll_generation)
    };
    shared.notify();
    const CONFLICT_OTHER: &str =
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
    match fault {
        Some(PollFault::Conflict) => return failure(409, CONFLICT_OTHER, None),
        Some(PollFault::ServerError(code)) => return failure(code, "Internal Server Error", None),
        Some(PollFault::ResetAfter(after)) => {
            tokio::time::sleep(after).await;
            return conn.reset();
        }
        None => {}
    }
    let mut changes = shared.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout.unwrap_or(0));
    loop {
        {
            let mut state = shared.lock();
            if state.revoked {
                return failure(401, "Unauthorized", None);
            }
            if state.webhook.is_some() {
                return failure(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                    None,
                );
            }
            if state.conflict || state.poll_generation != generation {
                return failure(409, CONFLICT_OTHER, None);
            }
            if let Some(offset) = offset {
                while state.updates.front().is_some_and(|u| u["update_id"].as_i64().unwrap_or(0) < offset) {
                    state.updates.pop_front();
                }
            }
            if !state.updates.is_empty() {
                let batch: Vec<Value> = state.updates.iter().take(limit).cloned().collect();
                let now = unix_us();
                for update in &batch {
                    state.handed_over_unix_us.entry(update["update_id"].as_i64().unwrap_or(0)).or_insert(now);
                }
                return axum::Json(json!({ "ok": true, "result": batch })).into_response();
            }
        }
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return axum::Json(json!({ "ok": true, "result": [] })).into_response();
        }
    }
}

async fn send_message(shared: Shared, conn: Conn, body: Bytes) -> Response {
    let arrived_unix_us = unix_us();
    let json = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let parse_mode = json["parse_mode"].as_str().filter(|m| !m.is_empty()).map(str::to_string);
    let fault = {
        let mut state = shared.lock();
        state.requests += 1;
        match state.faults.front() {
            Some(Fault::RejectHtml) if parse_mode.is_none() => None,
            _ => state.faults.pop_front(),
        }
    };
    shared.notify();
    match &fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            let description = format!("Too Many Requests: retry after {retry_after_secs}");
            return failure(429, &description, Some(json!({ "retry_after": retry_after_secs })));
        }
        Some(Fault::ServerError(code)) => return failure(*code, "Internal Server Error", None),
        Some(Fault::Hang) => return harness::hang().await,
        Some(Fault::Reset) => return conn.reset(),
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::RejectHtml) => {
            return failure(
                400,
                "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0",
                None,
            );
        }
        Some(Fault::Error { status, description }) => return failure(*status, description, None),
        _ => {}
    }
    let chat_id = match &json["chat_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => return failure(400, "Bad Request: chat_id is empty", None),
    };
    let text = json["text"].as_str().unwrap_or_default().to_string();
    let visible = match parse_mode.as_deref() {
        None => text.clone(),
        Some("HTML") => match visible_text(&text) {
            Ok(visible) => visible,
            Err(why) => return failure(400, &format!("Bad Request: can't parse entities: {why}"), None),
        },
        Some(other) => return failure(400, &format!("Bad Request: unsupported parse_mode {other}"), None),
    };
    if visible.trim().is_empty() {
        return failure(400, "Bad Request: message text is empty", None);
    }
    if visible.encode_utf16().count() > 4096 {
        return failure(400, "Bad Request: message is too long", None);
    }
    let message_thread_id = json["message_thread_id"].as_i64();
    let reply_to_message_id =
        json["reply_to_message_id"].as_i64().or_else(|| json["reply_parameters"]["message_id"].as_i64());
    let answer = {
        let mut state = shared.lock();
        if let Some(new) = state.migrated.get(&chat_id) {
            let parameters = json!({ "migrate_to_chat_id": new });
            return failure(400, "Bad Request: group chat was upgraded to a supergroup chat", Some(parameters));
        }
        let message_id = 100 + state.messages.len() as i64 + 1;
        let chat: Value = chat_id.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(-1_009_999));
        let mut result = json!({
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": { "id": chat, "type": "supergroup" },
            "text": visible,
        });
        if let Some(thread) = message_thread_id {
            result["message_thread_id"] = json!(thread);
        }
        state.message_at_unix_us.push(arrived_unix_us);
        state.messages.push(TelegramMessage {
            message_id,
            chat_id,
            text,
            parse_mode,
            message_thread_id,
            reply_to_message_id,
        });
        json!({ "ok": true, "result": result })
    };
    shared.notify();
    match fault {
        Some(Fault::AcceptThenServerError(code)) => failure(code, "Internal Server Error", None),
        Some(Fault::AcceptThenHang) => harness::hang().await,
        Some(Fault::AcceptThenReset) => conn.reset(),
        Some(Fault::AcceptThenMalformed) => harness::malformed(axum::Json(answer).into_response()).await,
        Some(Fault::AcceptThenBreakOff) => harness::break_off(&conn, axum::Json(answer).into_response()).await,
        _ => axum::Json(answer).into_response(),
    }
}

fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

const TAGS: [&str; 14] =
    ["b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "blockquote"];

/// The text a Telegram client would show for `html`, or why Telegram would refuse it.
pub fn visible_text(html: &str) -> Result<String, String> {
    let mut visible = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        let offset = html.len() - rest.len();
        match c {
            '<' => {
                let Some(end) = rest.find('>') else {
                    return Err(format!("Unclosed start tag at byte offset {offset}"));
                };
                let inner = &rest[1..end];
                if inner.contains('<') {
                    return Err(format!("Unexpected < at byte offset {offset}"));
                }
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(top) if top == name => {}
                        _ => return Err(format!("Unexpected end tag at byte offset {offset}")),
                    }
                } else {
                    let name = inner.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!("Unsupported start tag \"{name}\" at byte offset {offset}"));
                    }
                    if !inner.matches('"').count().is_multiple_of(2) {
                        return Err(format!("Unclosed attribute value at byte offset {offset}"));
                    }
                    open.push(name);
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').filter(|e| *e <= 10);
                let decoded = end.and_then(|end| match &rest[1..end] {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    num => num
                        .strip_prefix("#x")
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .or_else(|| num.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                        .and_then(char::from_u32),
                });
                match (end, decoded) {
                    (Some(end), Some(ch)) => {
                        visible.push(ch);
                        rest = &rest[end + 1..];
                    }
                    _ => return Err(format!("Unsupported HTML entity at byte offset {offset}")),
                }
            }
            _ => {
                visible.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    match open.pop() {
        Some(tag) => Err(format!("Can't find end tag corresponding to start tag \"{tag}\"")),
        None => Ok(visible),
    }
}

#[cfg(test)]
mod tests {
    use super::visible_text;

    #[test]
    fn html_checks_like_telegram() {
        assert_eq!(visible_text("<b>a</b> &lt;&amp;&gt; <a href=\"x?a=1&amp;b\">l</a>").unwrap(), "a <&> l");
        assert_eq!(visible_text("<pre><code class=\"language-rust\">x</code></pre>").unwrap(), "x");
        assert!(visible_text("<b>a").unwrap_err().contains("end tag"));
        assert!(visible_text("a</b>").unwrap_err().contains("Unexpected end tag"));
        assert!(visible_text("<div>a</div>").unwrap_err().contains("Unsupported start tag"));
        assert!(visible_text("1 < 2").is_err());
        assert!(visible_text("fish & chips").is_err());
        assert!(visible_text("<b><i>x</b></i>").is_err());
    }
}
