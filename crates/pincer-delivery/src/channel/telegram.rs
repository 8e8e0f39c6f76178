//! Telegram's Bot API: `POST {apiRoot}/bot<token>/sendMessage` with the part rendered to Telegram
//! HTML. Telegram has no idempotency key, so an ambiguous send is never retried; the two refusals
//! that mean "not sent, fix and resend" are handled here, once each: "can't parse entities" (resend
//! the Markdown as plain text) and `migrate_to_chat_id` (resend to the supergroup).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pincer_core::config::TelegramConfig;
use serde_json::{Value, json};

use super::registry::{BuildContext, Built, Capabilities, ChannelSpec, Inbound};
use super::{
    BoxFuture, BuildError, Channel, MessageAction, Part, PermanentClass, Receipt, Reply, SendError, Target, TargetError,
};
use crate::chunk::chunk_text;
use crate::markdown::to_telegram_html;

/// Telegram in the channel registry.
pub static SPEC: ChannelSpec = ChannelSpec {
    name: "telegram",
    label: "Telegram",
    chat: true,
    // Telegram allows about 30 messages per second per bot.
    default_rate: 25.0,
    target_prefixes: &["telegram", "tg"],
    capabilities: Capabilities {
        to: "chat id (negative for groups), `@username`, `<chat>:topic:<id>`, `<chat>:<id>`",
        thread: "a topic id (`message_thread_id`)",
        part_limit: "4000 chars of Markdown source",
        rendering: "Telegram HTML; plain-text resend on \"can't parse entities\"",
        idempotency: "none",
        ambiguous_retried: "never",
        other_recovery: "follows `migrate_to_chat_id` (once per send, then remembered)",
        check: "`getMe`",
    },
    minimal_config: r#"{ channels: { telegram: { botToken: "pincer-test", apiRoot: "http://127.0.0.1:9" } } }"#,
    build,
    doctor: super::registry::check_credentials,
    inbound: Inbound::LongPoll,
};

fn build(cx: &BuildContext<'_>) -> Built {
    let config = cx.config.channels.telegram.as_ref()?;
    Some(Telegram::new(config, cx.timeout(SPEC.name)).map(|c| Arc::new(c) as Arc<dyn Channel>))
}

/// Sends parts to Telegram chats, groups, channels and forum topics as a bot.
pub struct Telegram {
    http: reqwest::Client,
    /// `{apiRoot}/bot<token>`: a secret, never logged.
    bot_url: String,
    /// Chats Telegram told us were upgraded to a supergroup (old id → new id).
    migrated: Mutex<HashMap<String, i64>>,
}

/// How one `sendMessage` call ended.
enum Outcome {
    Sent(String),
    /// "can't parse entities": the HTML was refused, nothing was sent.
    BadEntities(String),
    /// The group became a supergroup with this id; nothing was sent.
    Migrated(i64),
    Failed(SendError),
}

impl Telegram {
    /// Characters of Markdown source per part, so the rendered text stays under the API's 4096.
    pub const MAX_CHARS: usize = 4000;
    /// Telegram's own limit, in UTF-16 code units of the text after entity parsing.
    const API_LIMIT_UTF16: usize = 4096;

    /// Builds the adapter; `timeout` bounds each HTTP request.
    pub fn new(config: &TelegramConfig, timeout: Duration) -> Result<Self, BuildError> {
        super::non_empty("channels.telegram.botToken", &config.bot_token)?;
        let root = super::base_url("channels.telegram.apiRoot", &config.api_root)?;
        if root.contains("/bot") {
            return Err(BuildError(
                "channels.telegram.apiRoot must be the API root only (e.g. https://api.telegram.org), without /bot<token>"
                    .into(),
            ));
        }
        let user_agent = format!("pincer/{}", env!("CARGO_PKG_VERSION"));
        let http = super::build("telegram", super::client_builder(&user_agent, timeout))?;
        Ok(Telegram { http, bot_url: format!("{root}/bot{}", config.bot_token.trim()), migrated: Mutex::default() })
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Reply, SendError> {
        super::execute("telegram", self.http.post(format!("{}/{method}", self.bot_url)).json(body)).await
    }

    async fn send_part(&self, part: &Part) -> Result<Receipt, SendError> {
        super::expect_channel("telegram", part)?;
        if part.text.trim().is_empty() {
            return Err(SendError::permanent(PermanentClass::Payload, "a Telegram message cannot be empty"));
        }
        let original = chat_id(&part.target.to).ok_or_else(|| {
            SendError::permanent(PermanentClass::Target, format!("`{}` is not a Telegram chat", part.target.to))
        })?;
        let mut chat = match self.migrated.lock().unwrap().get(&part.target.to) {
            Some(new) => json!(new),
            None => original,
        };
        let topic: Option<i64> = part.target.thread.as_deref().and_then(|t| t.parse().ok());
        let mut html = Some(to_telegram_html(&part.text));
        let mut migrations = 0;
        loop {
            let mut body = json!({ "chat_id": chat, "text": html.as_deref().unwrap_or(&part.text) });
            if html.is_some() {
                body["parse_mode"] = json!("HTML");
            }
            if let Some(topic) = topic {
                body["message_thread_id"] = json!(topic);
            }
            if let Some(id) = part.reply_to.as_deref().and_then(|id| id.parse::<i64>().ok()) {
                // Quotes the user's message; still sent if it was deleted meanwhile.
                body["reply_parameters"] = json!({ "message_id": id, "allow_sending_without_reply": true });
            }
            let reply = self.call("sendMessage", &body).await?;
            match outcome(&reply) {
                Outcome::Sent(id) => return Ok(Receipt { message_id: id }),
                Outcome::BadEntities(why) if html.is_some() => {
                    tracing::warn!(row = %part.row_id, part = part.index, "telegram refused the HTML ({why}); resending as plain text");
                    html = None;
                }
                Outcome::BadEntities(why) => return Err(SendError::permanent(PermanentClass::Payload, why)),
                Outcome::Migrated(new) if migrations == 0 => {
                    tracing::warn!(
                        row = %part.row_id,
                        "telegram chat {} became supergroup {new}; update the target to {new}",
                        part.target.to
                    );
                    self.migrated.lock().unwrap().insert(part.target.to.clone(), new);
                    chat = json!(new);
                    migrations += 1;
                }
                Outcome::Migrated(new) => {
                    return Err(SendError::permanent(
                        PermanentClass::Target,
                        format!("telegram chat {} migrated twice (now {new}); update the target", part.target.to),
                    ));
                }
                Outcome::Failed(error) => return Err(error),
            }
        }
    }

    /// `setMessageReaction`, `editMessageText` or `deleteMessage` on `message_id` in the chat.
    async fn act_on(&self, target: &Target, message_id: &str, action: &MessageAction) -> Result<(), SendError> {
        let chat = chat_id(&target.to).ok_or_else(|| {
            SendError::permanent(PermanentClass::Target, format!("`{}` is not a Telegram chat", target.to))
        })?;
        let id: i64 = message_id.trim().parse().map_err(|_| {
            SendError::permanent(
                PermanentClass::Payload,
                format!("`{message_id}` is not a Telegram message id (a number)"),
            )
        })?;
        let (method, body) = match action {
            MessageAction::React { emoji, remove } => {
                let reaction = if *remove { json!([]) } else { json!([{ "type": "emoji", "emoji": emoji }]) };
                ("setMessageReaction", json!({ "chat_id": chat, "message_id": id, "reaction": reaction }))
            }
            MessageAction::Edit { text } => (
                "editMessageText",
                json!({ "chat_id": chat, "message_id": id, "text": to_telegram_html(text), "parse_mode": "HTML" }),
            ),
            MessageAction::Delete => ("deleteMessage", json!({ "chat_id": chat, "message_id": id })),
        };
        let reply = self.call(method, &body).await?;
        if reply.status.is_success() && reply.json()["ok"] == json!(true) {
            return Ok(());
        }
        match outcome(&reply) {
            Outcome::Failed(error) => Err(error),
            _ => Err(SendError::permanent(
                PermanentClass::Payload,
                format!("telegram refused {method}: {}", reply.snippet()),
            )),
        }
    }

    async fn whoami(&self) -> Result<String, SendError> {
        let reply = self.call("getMe", &json!({})).await?;
        let json = reply.json();
        match json["result"]["username"].as_str() {
            Some(name) if reply.status.is_success() => Ok(format!("@{name}")),
            _ => match outcome(&reply) {
                Outcome::Failed(error) => Err(error),
                _ => Err(SendError::ambiguous(format!(
                    "telegram getMe answered without a username: {}",
                    reply.snippet()
                ))),
            },
        }
    }
}

/// The `chat_id` JSON value for a normalised chat (`-100…` or `@name`).
fn chat_id(to: &str) -> Option<Value> {
    if to.starts_with('@') {
        return Some(json!(to));
    }
    to.parse::<i64>().ok().map(|id| json!(id))
}

/// Classifies a `sendMessage` (or `getMe`) answer.
fn outcome(reply: &Reply) -> Outcome {
    let json = reply.json();
    let status = reply.status.as_u16();
    if reply.status.is_success() && json["ok"] == json!(true) {
        return match &json["result"]["message_id"] {
            Value::Number(id) => Outcome::Sent(id.to_string()),
            _ => Outcome::Failed(SendError::ambiguous(format!(
                "telegram answered ok without a message id: {}",
                reply.snippet()
            ))),
        };
    }
    // Only Telegram's own `description` says why a request was refused. A body that is not
    // Telegram's error JSON (a proxy's page, or a garbled answer that echoes the message) is shown
    // in the error but never matched below: an echoed "chat not found" must not turn a message
    // that may have been sent into a dead letter.
    let description = json["description"].as_str();
    let detail = format!("telegram answered HTTP {status}: {}", super::clip(description.unwrap_or(&reply.snippet())));
    let params = &json["parameters"];
    if status == 429 || params["retry_after"].is_number() {
        let retry_after = params["retry_after"]
            .as_f64()
            .and_then(super::seconds_to_ms)
            .or_else(|| super::retry_after_header(&reply.headers));
        return Outcome::Failed(SendError::rate_limited(detail, retry_after));
    }
    if let Some(new) = params["migrate_to_chat_id"].as_i64() {
        return Outcome::Migrated(new);
    }
    let lower = description.unwrap_or_default().to_ascii_lowercase();
    if lower.contains("can't parse entities") {
        return Outcome::BadEntities(detail);
    }
    const TARGET: [&str; 9] = [
        "chat not found",
        "bot was blocked by the user",
        "bot was kicked",
        "message thread not found",
        "user is deactivated",
        "bot is not a member",
        "not enough rights",
        "have no rights to send",
        "chat_write_forbidden",
    ];
    const PAYLOAD: [&str; 3] = ["message is too long", "message text is empty", "text must be non-empty"];
    let error = if status == 401 || status == 404 {
        SendError::permanent(PermanentClass::Auth, format!("{detail}; check channels.telegram.botToken"))
    } else if TARGET.iter().any(|t| lower.contains(t)) || status == 403 {
        SendError::permanent(
            PermanentClass::Target,
            format!("{detail}; check the chat id and that the bot is a member allowed to post"),
        )
    } else if PAYLOAD.iter().any(|t| lower.contains(t)) {
        SendError::permanent(PermanentClass::Payload, detail)
    } else if status >= 500 || status == 408 || reply.status.is_success() {
        SendError::ambiguous(detail)
    } else if (300..400).contains(&status) {
        SendError::permanent(
            PermanentClass::Config,
            format!("{detail}; redirects are not followed, check channels.telegram.apiRoot"),
        )
    } else {
        SendError::permanent(PermanentClass::Payload, detail)
    };
    Outcome::Failed(error)
}

fn is_username(name: &str) -> bool {
    let bytes = name.as_bytes();
    (5..=32).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn is_chat_number(chat: &str) -> bool {
    let digits = chat.strip_prefix('-').unwrap_or(chat);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && chat.parse::<i64>().is_ok_and(|n| n != 0)
}

fn is_topic(topic: &str) -> bool {
    topic.bytes().all(|b| b.is_ascii_digit()) && topic.parse::<i32>().is_ok_and(|n| n > 0)
}

impl Channel for Telegram {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn parse_target(&self, to: &str, thread_id: Option<&str>) -> Result<Target, TargetError> {
        let err = |reason: String| TargetError::new("telegram", reason);
        let to = to.trim();
        super::refuse_prefix("telegram", to, SPEC.target_prefixes)?;
        let (chat, topic) = match to.split_once(":topic:") {
            Some((chat, topic)) => (chat, Some(topic)),
            None => match to.split_once(':') {
                Some((chat, topic)) if is_chat_number(chat) => (chat, Some(topic)),
                _ => (to, None),
            },
        };
        if let Some(name) = chat.strip_prefix('@') {
            if !is_username(name) {
                return Err(err(format!("`{chat}` is not a Telegram username (5-32 letters, digits or _)")));
            }
        } else if !is_chat_number(chat) {
            return Err(err(format!(
                "`{to}` is not a chat id (like -1001234567890), `@username` or `<chat>:topic:<id>`"
            )));
        }
        if let Some(topic) = topic.filter(|t| !is_topic(t)) {
            return Err(err(format!("topic `{topic}` is not a positive number")));
        }
        let thread = match (topic, thread_id.map(str::trim).filter(|t| !t.is_empty())) {
            (Some(a), Some(b)) if a != b => {
                return Err(err(format!("`{to}` names topic {a} but the thread id is {b}; give one of them")));
            }
            (_, Some(thread)) if !is_topic(thread) => {
                return Err(err(format!("thread id `{thread}` is not a positive topic number")));
            }
            (topic, thread) => topic.or(thread).map(str::to_string),
        };
        Ok(Target { channel: "telegram".into(), to: chat.to_string(), thread })
    }

    fn max_part_chars(&self) -> usize {
        Self::MAX_CHARS
    }

    fn chunk(&self, text: &str) -> Vec<String> {
        // Telegram counts UTF-16 units: re-cut the rare part of astral characters that overflows.
        let mut parts = Vec::new();
        for part in chunk_text(text, Self::MAX_CHARS, usize::MAX) {
            if part.encode_utf16().count() > Self::API_LIMIT_UTF16 {
                parts.extend(chunk_text(&part, Self::API_LIMIT_UTF16 / 2, usize::MAX));
            } else {
                parts.push(part);
            }
        }
        parts
    }

    fn send<'a>(&'a self, part: &'a Part) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.send_part(part))
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(self.whoami())
    }

    fn safe_to_retry_ambiguous(&self, _dispatched_at_ms: i64, _now_ms: i64) -> bool {
        false
    }

    fn act<'a>(
        &'a self,
        target: &'a Target,
        message_id: &'a str,
        action: &'a MessageAction,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.act_on(target, message_id, action))
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use pincer_testkit::fakes::telegram::{FakeTelegram, Fault, visible_text};

    use super::*;
    use crate::channel::test_support::{TIMEOUT, parse_table, part, target};

    fn adapter(fake: &FakeTelegram) -> Telegram {
        adapter_with_token(fake, FakeTelegram::TOKEN)
    }

    fn adapter_with_token(fake: &FakeTelegram, token: &str) -> Telegram {
        Telegram::new(
            &TelegramConfig { bot_token: token.into(), api_root: fake.base_url(), ..TelegramConfig::default() },
            TIMEOUT,
        )
        .unwrap()
    }

    fn offline() -> Telegram {
        let config = TelegramConfig {
            bot_token: "t".into(),
            api_root: "http://127.0.0.1:9".into(),
            ..TelegramConfig::default()
        };
        Telegram::new(&config, TIMEOUT).unwrap()
    }

    fn permanent_class(result: Result<Receipt, SendError>) -> Option<PermanentClass> {
        match result {
            Err(SendError::Permanent { class, .. }) => Some(class),
            _ => None,
        }
    }

    #[test]
    fn parses_targets() {
        let table = parse_table(
            &offline(),
            &[
                ("-1001234567890", None),
                ("12345", None),
                ("@pincer_news", None),
                ("-1001234567890:topic:42", None),
                ("-1001234567890:42", None),
                ("-1001234567890", Some("42")),
                ("-1001234567890:topic:42", Some("42")),
                ("-1001234567890:topic:42", Some("43")),
                ("@pincer_news:topic:7", None),
                ("-100:topic:abc", None),
                ("-100", Some("0")),
                ("@ab", None),
                ("@9lives", None),
                ("telegram:123", None),
                ("tg:123", None),
                ("0", None),
                ("chat", None),
                ("", None),
            ],
        );
        expect![[r#"
            "-1001234567890" => to=-1001234567890 thread=-
            "12345" => to=12345 thread=-
            "@pincer_news" => to=@pincer_news thread=-
            "-1001234567890:topic:42" => to=-1001234567890 thread=42
            "-1001234567890:42" => to=-1001234567890 thread=42
            "-1001234567890" (thread 42) => to=-1001234567890 thread=42
            "-1001234567890:topic:42" (thread 42) => to=-1001234567890 thread=42
            "-1001234567890:topic:42" (thread 43) => error: invalid telegram target: `-1001234567890:topic:42` names topic 42 but the thread id is 43; give one of them
            "@pincer_news:topic:7" => to=@pincer_news thread=7
            "-100:topic:abc" => error: invalid telegram target: topic `abc` is not a positive number
            "-100" (thread 0) => error: invalid telegram target: thread id `0` is not a positive topic number
            "@ab" => error: invalid telegram target: `@ab` is not a Telegram username (5-32 letters, digits or _)
            "@9lives" => error: invalid telegram target: `@9lives` is not a Telegram username (5-32 letters, digits or _)
            "telegram:123" => error: invalid telegram target: drop the `telegram:` prefix from `telegram:123`: the channel is chosen separately
            "tg:123" => error: invalid telegram target: drop the `tg:` prefix from `tg:123`: the channel is chosen separately
            "0" => error: invalid telegram target: `0` is not a chat id (like -1001234567890), `@username` or `<chat>:topic:<id>`
            "chat" => error: invalid telegram target: `chat` is not a chat id (like -1001234567890), `@username` or `<chat>:topic:<id>`
            "" => error: invalid telegram target: `` is not a chat id (like -1001234567890), `@username` or `<chat>:topic:<id>`
        "#]]
        .assert_eq(&table);
    }

    /// `react` on a user's message, `edit` (as Telegram HTML) and `delete` of the bot's own; a
    /// message that is gone, and an id that is not a number, are permanent errors.
    #[tokio::test]
    async fn reacts_edits_and_deletes_messages() {
        use pincer_testkit::fakes::telegram::Incoming;
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        let to = target(&telegram, "1001", None);
        let (_, user_message) = fake.push_message(Incoming::dm(1001, "hi"));
        let user_message = user_message.to_string();
        telegram.act(&to, &user_message, &MessageAction::React { emoji: "👍".into(), remove: false }).await.unwrap();
        telegram.act(&to, &user_message, &MessageAction::React { emoji: "👍".into(), remove: true }).await.unwrap();
        let reactions: Vec<Vec<String>> = fake.reactions().into_iter().map(|r| r.emoji).collect();
        assert_eq!(reactions, [vec!["👍".to_string()], vec![]]);
        let edit_theirs = telegram.act(&to, &user_message, &MessageAction::Edit { text: "x".into() }).await;
        assert!(edit_theirs.unwrap_err().message().contains("message to edit not found"));

        let id = telegram.send(&part(&to, "row-1", 0, 1, "hello")).await.unwrap().message_id;
        telegram.act(&to, &id, &MessageAction::Edit { text: "hello **again**".into() }).await.unwrap();
        let edited = &fake.messages()[0];
        assert_eq!((edited.text.as_str(), edited.parse_mode.as_deref()), ("hello <b>again</b>", Some("HTML")));
        telegram.act(&to, &id, &MessageAction::Delete).await.unwrap();
        assert_eq!(fake.deleted(), [("1001".to_string(), id.parse::<i64>().unwrap())]);
        let gone = telegram.act(&to, &id, &MessageAction::Delete).await.unwrap_err();
        assert!(matches!(gone, SendError::Permanent { .. }) && gone.message().contains("not found"), "{gone}");
        let bad = telegram.act(&to, "abc", &MessageAction::Delete).await.unwrap_err();
        assert!(bad.message().contains("not a Telegram message id"), "{bad}");
    }

    #[tokio::test]
    async fn sends_markdown_as_telegram_html() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        let to = target(&telegram, "-1001234567890", None);
        let receipt = telegram
            .send(&part(&to, "row-1", 0, 1, "**Done** in `<2s>` & [log](https://x.test/?a=1&b=2)"))
            .await
            .unwrap();
        let messages = fake.messages();
        assert_eq!(receipt.message_id, messages[0].message_id.to_string());
        assert_eq!(messages[0].chat_id, "-1001234567890");
        assert_eq!(messages[0].parse_mode.as_deref(), Some("HTML"));
        expect![[r#"<b>Done</b> in <code>&lt;2s&gt;</code> &amp; <a href="https://x.test/?a=1&amp;b=2">log</a>"#]]
            .assert_eq(&messages[0].text);
        assert_eq!(telegram.check().await.unwrap(), format!("@{}", FakeTelegram::BOT_NAME));
    }

    #[tokio::test]
    async fn long_messages_go_out_as_ordered_parts() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        let text =
            (0..30).map(|i| format!("Paragraph {i}:{}", " lorem ipsum".repeat(30))).collect::<Vec<_>>().join("\n\n");
        let parts = telegram.chunk(&text);
        assert!(parts.len() >= 3 && parts.iter().all(|p| p.chars().count() <= 4000), "{}", parts.len());
        let to = target(&telegram, "@pincer_news", None);
        for (i, text) in parts.iter().enumerate() {
            telegram.send(&part(&to, "row-long", i as u32, parts.len() as u32, text)).await.unwrap();
        }
        let sent: Vec<String> = fake.messages().into_iter().map(|m| m.text).collect();
        assert_eq!(sent, parts, "plain paragraphs render to themselves, in order");
    }

    #[test]
    fn astral_text_is_cut_to_the_utf16_limit() {
        let parts = offline().chunk(&"😀".repeat(5000));
        assert!(
            parts.iter().all(|p| p.encode_utf16().count() <= 4096),
            "{:?}",
            parts.iter().map(|p| p.len()).collect::<Vec<_>>()
        );
        assert_eq!(parts.concat(), "😀".repeat(5000));
    }

    #[tokio::test]
    async fn topics_route_by_target_and_thread_id() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        telegram.send(&part(&target(&telegram, "-100200:topic:42", None), "row-t", 0, 1, "a")).await.unwrap();
        telegram.send(&part(&target(&telegram, "-100200", Some("7")), "row-u", 0, 1, "b")).await.unwrap();
        telegram.send(&part(&target(&telegram, "-100200", None), "row-v", 0, 1, "c")).await.unwrap();
        let threads: Vec<_> = fake.messages().into_iter().map(|m| (m.chat_id, m.message_thread_id)).collect();
        assert_eq!(
            threads,
            [("-100200".to_string(), Some(42)), ("-100200".to_string(), Some(7)), ("-100200".to_string(), None)]
        );
    }

    #[tokio::test]
    async fn refused_html_is_resent_as_plain_text() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        fake.push_fault(Fault::RejectHtml);
        let receipt =
            telegram.send(&part(&target(&telegram, "1", None), "row-h", 0, 1, "**bold** text")).await.unwrap();
        let messages = fake.messages();
        assert_eq!(messages.len(), 1);
        assert_eq!((messages[0].text.as_str(), messages[0].parse_mode.as_deref()), ("**bold** text", None));
        assert_eq!(receipt.message_id, messages[0].message_id.to_string());
        assert_eq!(fake.requests(), 2);
    }

    #[tokio::test]
    async fn migrated_chats_are_followed_once_and_remembered() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        fake.migrate_chat(-4001, -1004001);
        let to = target(&telegram, "-4001", None);
        telegram.send(&part(&to, "row-m", 0, 2, "first")).await.unwrap();
        telegram.send(&part(&to, "row-m", 1, 2, "second")).await.unwrap();
        let chats: Vec<_> = fake.messages().into_iter().map(|m| m.chat_id).collect();
        assert_eq!(chats, ["-1004001", "-1004001"]);
        assert_eq!(fake.requests(), 3, "the second part goes straight to the new chat");
        fake.migrate_chat(-1004001, -1004002);
        let looping = telegram.send(&part(&to, "row-m2", 0, 1, "third")).await;
        assert_eq!(permanent_class(looping), None, "one more migration is followed");
        fake.migrate_chat(-1004002, -1004003);
        fake.migrate_chat(-1004003, -1004004);
        let twice = telegram.send(&part(&to, "row-m3", 0, 1, "fourth")).await;
        assert_eq!(permanent_class(twice), Some(PermanentClass::Target));
    }

    #[tokio::test]
    async fn rate_limits_are_not_sent_with_the_advertised_delay() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        fake.push_fault(Fault::RateLimited { retry_after_secs: 7 });
        match telegram.send(&part(&target(&telegram, "1", None), "row-r", 0, 1, "hi")).await {
            Err(SendError::NotSent { rate_limited: true, retry_after_ms: Some(7000), .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(fake.messages().is_empty());
    }

    #[tokio::test]
    async fn server_errors_and_timeouts_are_ambiguous_and_never_retried() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        let to = target(&telegram, "1", None);
        for fault in [Fault::ServerError(500), Fault::AcceptThenServerError(502), Fault::AcceptThenHang, Fault::Reset] {
            fake.push_fault(fault.clone());
            let result = telegram.send(&part(&to, "row-a", 0, 1, "hi")).await;
            assert!(matches!(result, Err(SendError::Ambiguous { .. })), "{fault:?}: {result:?}");
        }
        assert_eq!(fake.messages().len(), 2, "two of the faults accepted the message first");
        assert!(!telegram.safe_to_retry_ambiguous(0, 1));
    }

    #[tokio::test]
    async fn a_garbled_answer_is_ambiguous_whatever_the_message_says() {
        // The answer echoes the message; its words are not Telegram's reason for anything.
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        fake.push_fault(Fault::AcceptThenMalformed);
        let text = "Status: chat not found errors fell; not enough rights warnings are gone";
        let result = telegram.send(&part(&target(&telegram, "1", None), "row-g", 0, 1, text)).await;
        assert!(matches!(result, Err(SendError::Ambiguous { .. })), "{result:?}");
        assert_eq!(fake.messages().len(), 1, "the message was accepted");
    }

    #[tokio::test]
    async fn permanent_errors_are_classified() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter(&fake);
        let to = target(&telegram, "1", None);
        let cases = [
            (Fault::unauthorized(), PermanentClass::Auth),
            (Fault::chat_not_found(), PermanentClass::Target),
            (Fault::blocked(), PermanentClass::Target),
            (Fault::kicked(), PermanentClass::Target),
            (Fault::thread_not_found(), PermanentClass::Target),
            (Fault::too_long(), PermanentClass::Payload),
        ];
        for (fault, class) in cases {
            fake.push_fault(fault.clone());
            assert_eq!(permanent_class(telegram.send(&part(&to, "row-p", 0, 1, "hi")).await), Some(class), "{fault:?}");
        }
        fake.push_fault(Fault::blocked());
        let error = telegram.send(&part(&to, "row-p", 0, 1, "hi")).await.unwrap_err();
        expect!["target error: telegram answered HTTP 403: Forbidden: bot was blocked by the user; check the chat id and that the bot is a member allowed to post"]
            .assert_eq(&error.to_string());
    }

    #[tokio::test]
    async fn bad_tokens_are_auth_errors_and_stay_secret() {
        let fake = FakeTelegram::start().await;
        let telegram = adapter_with_token(&fake, "999:wrong-secret");
        let error = telegram.send(&part(&target(&telegram, "1", None), "row-a", 0, 1, "hi")).await.unwrap_err();
        assert!(matches!(error, SendError::Permanent { class: PermanentClass::Auth, .. }), "{error:?}");
        let check = telegram.check().await.unwrap_err();
        assert!(matches!(check, SendError::Permanent { class: PermanentClass::Auth, .. }), "{check:?}");
        // A transport error must not leak the token that sits in the URL path.
        let offline = Telegram::new(
            &TelegramConfig {
                bot_token: "999:wrong-secret".into(),
                api_root: "http://127.0.0.1:9".into(),
                ..TelegramConfig::default()
            },
            TIMEOUT,
        )
        .unwrap();
        let error = offline.send(&part(&target(&offline, "1", None), "row-a", 0, 1, "hi")).await.unwrap_err();
        assert!(matches!(error, SendError::NotSent { .. }), "{error:?}");
        assert!(!format!("{error:?}").contains("wrong-secret"), "{error:?}");
    }

    #[test]
    fn rendered_parts_are_valid_telegram_html() {
        let markdown = [
            "# Title\n\n**bold _nested_** ~~x~~ `a<b>&c` [l](http://x.test/a?b=\"c\"&d)",
            "- a\n  - b\n    1. c\n\n> quote **q**\n\n```py\nif a < b and c > d: print('&')\n```",
            "<div>raw & html</div>\n\n<span>inline</span> &amp; &copy; &#169;",
            "![img](https://x.test/i.png) <https://auto.test> plain **unclosed",
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n***\n\n1) one\n2) two\n\n    indented <code>",
        ];
        let telegram = offline();
        for source in markdown {
            for part in telegram.chunk(&source.repeat(40)) {
                let html = to_telegram_html(&part);
                let visible = visible_text(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
                assert!(visible.encode_utf16().count() <= 4096);
            }
        }
    }
}
