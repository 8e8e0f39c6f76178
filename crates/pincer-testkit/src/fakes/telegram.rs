//! Fake Telegram Bot API: `POST|GET /bot<token>/sendMessage` and `/bot<token>/getMe` under
//! `base_url()` (the `apiRoot`).
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
use axum::extract::{ConnectInfo, Path, State};
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
}

#[derive(Default)]
struct TelegramState {
    messages: Vec<TelegramMessage>,
    faults: VecDeque<Fault>,
    requests: usize,
    migrated: HashMap<String, i64>,
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

    /// Starts the fake.
    pub async fn start() -> Self {
        let shared = Arc::new(Recorder::new(TelegramState::default()));
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

    /// `sendMessage` requests received, including refused and faulted ones.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// Waits until at least `n` messages were accepted and returns them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<TelegramMessage> {
        let what = format!("{n} telegram messages");
        self.shared.wait_for(timeout, &what, |s| (s.messages.len() >= n).then(|| s.messages.clone())).await
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
    body: Bytes,
) -> Response {
    if bot != format!("bot{}", FakeTelegram::TOKEN) {
        return failure(401, "Unauthorized", None);
    }
    match method.as_str() {
        "getMe" => axum::Json(json!({
            "ok": true,
            "result": { "id": 123456, "is_bot": true, "first_name": "Pincer", "username": FakeTelegram::BOT_NAME },
        }))
        .into_response(),
        "sendMessage" => send_message(shared, conn, body).await,
        // Enough of the rest of the Bot API for a polling bot (OpenClaw's, in the benchmarks) to
        // start and idle: no updates, after holding the long poll for a moment.
        "getUpdates" => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            axum::Json(json!({ "ok": true, "result": [] })).into_response()
        }
        "deleteWebhook" | "setMyCommands" | "deleteMyCommands" | "setWebhook" => {
            axum::Json(json!({ "ok": true, "result": true })).into_response()
        }
        _ => failure(404, "Not Found", None),
    }
}

async fn send_message(shared: Shared, conn: Conn, body: Bytes) -> Response {
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
        state.messages.push(TelegramMessage { message_id, chat_id, text, parse_mode, message_thread_id });
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
