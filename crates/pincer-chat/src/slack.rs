//! Slack's inbound side: Socket Mode. `apps.connections.open` with the app-level token
//! (`channels.slack.appToken`) gives a WebSocket URL; Slack says `hello`, then pushes envelopes
//! (`events_api` with `message.im` and `app_mention` events), each acked with its `envelope_id`
//! only after the message it carries is committed. Slack redelivers an envelope that was never
//! acked; the message is stored under its `event_id`, so a redelivery is stored (and answered)
//! once. A `disconnect` (Slack refreshing the link) opens a new connection at once; a dropped
//! socket backs off on the injected clock; a refused token stops the channel and says so.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pincer_core::TaskResult;
use pincer_core::config::SlackConfig;
use pincer_protocol::state::ConnectionState;
use pincer_store::NewInbound;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::Chat;
use crate::access::{self, Decision, Policy, Sender};

/// The channel's name in routes, stored rows and config keys.
pub const CHANNEL: &str = "slack";

/// Slack error codes that mean the token itself is refused (retrying cannot help).
const REFUSED: [&str; 7] = [
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
    "missing_scope",
];

/// A Web API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The token was refused (`invalid_auth`, …): the message names the key to fix.
    #[error("{0}")]
    Rejected(String),
    #[error("slack: {0}")]
    Other(String),
}

/// The two Web API calls the inbound side makes.
struct WebApi {
    http: reqwest::Client,
    base: String,
}

impl WebApi {
    fn new(config: &SlackConfig) -> Result<WebApi, ApiError> {
        pincer_core::tls::install_default_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ApiError::Other(e.to_string()))?;
        Ok(WebApi { http, base: config.api_base_url.trim_end_matches('/').to_string() })
    }

    /// POSTs `method` with `token`; `key` names the config key to fix when the token is refused.
    async fn call(&self, method: &str, token: &str, key: &str) -> Result<Value, ApiError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .map_err(|e| ApiError::Other(format!("{method}: {e}")))?;
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        let error = json["error"].as_str().unwrap_or("no error code");
        match status {
            200..=299 if json["ok"] == true => Ok(json),
            200..=299 if REFUSED.contains(&error) => {
                Err(ApiError::Rejected(format!("slack refused the token ({method}: {error}): check {key}")))
            }
            200..=299 => Err(ApiError::Other(format!("{method}: {error}"))),
            _ => Err(ApiError::Other(format!("{method}: HTTP {status} {error}"))),
        }
    }
}

/// One event envelope, as the inbound side reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Slack's `event_id` (the same on every redelivery); the envelope id when absent.
    pub event_id: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A DM or a mention from a person.
    Message(Message),
    /// Acked and dropped: edits, deletions, bots (the bot's own replies too), channel chatter.
    Skip(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The conversation id (`D…` for a DM, `C…`/`G…` for a channel).
    pub channel: String,
    /// `false` for a DM (`message.im`), `true` for a mention in a channel (`app_mention`).
    pub group: bool,
    pub ts: String,
    /// The thread the message is in, if any.
    pub thread_ts: Option<String>,
    pub user: String,
    pub text: String,
}

/// Reads an `events_api` envelope's payload; `bot_user` is the bot's user id (`auth.test`).
pub fn parse_event(payload: &Value, envelope_id: &str, bot_user: &str) -> Event {
    let event_id = payload["event_id"].as_str().unwrap_or(envelope_id).to_string();
    let kind = parse_kind(&payload["event"], bot_user);
    Event { event_id, kind }
}

fn parse_kind(e: &Value, bot_user: &str) -> EventKind {
    let group = match e["type"].as_str() {
        Some("message") if e["channel_type"] == "im" => false,
        // Channel messages arrive as `app_mention` when they are for the bot.
        Some("message") => return EventKind::Skip("a channel message without a mention"),
        Some("app_mention") => true,
        _ => return EventKind::Skip("not a message"),
    };
    match e["subtype"].as_str() {
        None | Some("file_share" | "thread_broadcast") => {}
        Some("message_changed") => return EventKind::Skip("an edited message"),
        Some("message_deleted") => return EventKind::Skip("a deleted message"),
        Some("bot_message") => return EventKind::Skip("a message from a bot"),
        Some(_) => return EventKind::Skip("a message of another kind"),
    }
    if e.get("edited").is_some() {
        return EventKind::Skip("an edited message");
    }
    let user = e["user"].as_str().unwrap_or_default();
    // Never answered (the bot's own replies come back as `message.im`), so two bots cannot loop.
    if e.get("bot_id").is_some_and(|b| !b.is_null()) || user == bot_user {
        return EventKind::Skip("a message from a bot");
    }
    let (Some(channel), Some(ts)) = (e["channel"].as_str(), e["ts"].as_str()) else {
        return EventKind::Skip("a message without ids");
    };
    if user.is_empty() {
        return EventKind::Skip("a message without a sender");
    }
    let text = strip_mention(e["text"].as_str().unwrap_or_default(), bot_user);
    if text.is_empty() {
        return EventKind::Skip("a message without text");
    }
    EventKind::Message(Message {
        channel: channel.to_string(),
        group,
        ts: ts.to_string(),
        thread_ts: e["thread_ts"].as_str().map(str::to_string),
        user: user.to_string(),
        text,
    })
}

/// `text` without the bot's `<@U…>` mentions, trimmed.
fn strip_mention(text: &str, bot_user: &str) -> String {
    if bot_user.is_empty() {
        return text.trim().to_string();
    }
    let plain = text.replace(&format!("<@{bot_user}>"), "");
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How one connection ended.
enum Ended {
    Stopped,
    /// Slack asked for a new connection (`disconnect`): open one now.
    Refresh(String),
    /// The socket failed: back off, then open a new one.
    Dropped(String),
}

/// The Socket Mode loop, run under the supervisor: `Ok(())` when stopped or when a token is
/// refused.
pub(crate) async fn socket_loop(chat: Arc<Chat>, config: SlackConfig, mut stop: watch::Receiver<bool>) -> TaskResult {
    let Some(app_token) = config.app_token.clone() else { return Ok(()) };
    let api = WebApi::new(&config)?;
    let mut failures = 0usize;
    let bot = loop {
        chat.set_state(CHANNEL, ConnectionState::Connecting, None, None);
        let me = tokio::select! {
            me = api.call("auth.test", &config.bot_token, "channels.slack.botToken") => me,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match me {
            Ok(me) => {
                break (
                    me["user_id"].as_str().unwrap_or_default().to_string(),
                    me["user"].as_str().unwrap_or_default().to_string(),
                );
            }
            Err(ApiError::Rejected(e)) => return rejected(&chat, &mut stop, e).await,
            Err(e) => {
                if !chat.backoff(CHANNEL, &mut failures, e.to_string(), &mut stop).await {
                    return Ok(());
                }
            }
        }
    };
    chat.set_bot(CHANNEL, format!("@{}", bot.1));
    chat.set_mode(CHANNEL, "socket");
    let key = "channels.slack.appToken (an app-level token xapp-… with connections:write)";
    loop {
        let opened = tokio::select! {
            opened = api.call("apps.connections.open", &app_token, key) => opened,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let url = match opened {
            Ok(v) => v["url"].as_str().unwrap_or_default().to_string(),
            Err(ApiError::Rejected(e)) => return rejected(&chat, &mut stop, e).await,
            Err(e) => {
                tracing::warn!(error = %e, "slack apps.connections.open failed");
                if !chat.backoff(CHANNEL, &mut failures, e.to_string(), &mut stop).await {
                    return Ok(());
                }
                continue;
            }
        };
        let connected = tokio::select! {
            c = crate::ws::connect(url.as_str(), None) => c,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let ended = match connected {
            // The URL holds a ticket: never show it.
            Err(e) => Ended::Dropped(format!("slack socket: cannot connect: {e}")),
            Ok((ws, _)) => session(&chat, &config, &bot.0, ws, &mut stop, &mut failures).await?,
        };
        match ended {
            Ended::Stopped => return Ok(()),
            Ended::Refresh(reason) => {
                tracing::info!(reason, "slack asked for a new socket; reconnecting");
                chat.set_state(CHANNEL, ConnectionState::Reconnecting, None, None);
            }
            Ended::Dropped(error) => {
                tracing::warn!(error, "slack socket dropped");
                if !chat.backoff(CHANNEL, &mut failures, error, &mut stop).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Marks the channel `credentials-rejected` and idles until the gateway stops: it never spins.
async fn rejected(chat: &Chat, stop: &mut watch::Receiver<bool>, error: String) -> TaskResult {
    tracing::error!(
        "{error}: slack inbound chat stopped; fix the token, then run `pincer config reload` (saving the config file applies it too)"
    );
    chat.set_state(CHANNEL, ConnectionState::CredentialsRejected, Some(error), None);
    let _ = stop.wait_for(|s| *s).await;
    Ok(())
}

use crate::ws::Socket;

/// Reads one connection until it ends; each envelope is committed, then acked.
async fn session(
    chat: &Arc<Chat>,
    config: &SlackConfig,
    bot_user: &str,
    mut ws: Socket,
    stop: &mut watch::Receiver<bool>,
    failures: &mut usize,
) -> Result<Ended, pincer_store::StoreError> {
    loop {
        let frame = tokio::select! {
            frame = ws.next() => Some(frame),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(frame) = frame else {
            let _ = ws.close(None).await;
            return Ok(Ended::Stopped);
        };
        let text = match frame {
            None => return Ok(Ended::Dropped("slack socket closed".into())),
            Some(Err(e)) => return Ok(Ended::Dropped(format!("slack socket: {e}"))),
            Some(Ok(Frame::Close(frame))) => {
                let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                return Ok(Ended::Dropped(format!("slack closed the socket {why}").trim().to_string()));
            }
            Some(Ok(Frame::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        match v["type"].as_str() {
            Some("hello") => {
                *failures = 0;
                chat.set_state(CHANNEL, ConnectionState::Connected, None, None);
                chat.note_poll(CHANNEL);
                continue;
            }
            Some("disconnect") => {
                let reason = v["reason"].as_str().unwrap_or("unknown").to_string();
                let _ = ws.close(None).await;
                if reason == "link_disabled" {
                    return Ok(Ended::Dropped(
                        "slack disabled Socket Mode for this app (link_disabled): turn it on in the app's settings"
                            .into(),
                    ));
                }
                return Ok(Ended::Refresh(reason));
            }
            _ => {}
        }
        let Some(envelope) = v["envelope_id"].as_str() else { continue };
        if v["type"] == "events_api" {
            let event = parse_event(&v["payload"], envelope, bot_user);
            accept(chat, config, event).await?;
        }
        // Acked only once its message is committed: a lost ack means a redelivery, which the
        // event id deduplicates.
        let ack = json!({ "envelope_id": envelope }).to_string();
        if let Err(e) = ws.send(Frame::text(ack)).await {
            return Ok(Ended::Dropped(format!("slack socket: ack failed: {e}")));
        }
        chat.note_poll(CHANNEL);
    }
}

/// Commits one event: the message (if new) or the access decision, with its audit row.
async fn accept(chat: &Arc<Chat>, config: &SlackConfig, event: Event) -> Result<(), pincer_store::StoreError> {
    let EventKind::Message(m) = event.kind else {
        if let EventKind::Skip(why) = event.kind {
            tracing::debug!(event = event.event_id, "slack: skipped {why}");
        }
        return Ok(());
    };
    let now = chat.clock.now_ms();
    let (chat2, writer, config) = (chat.clone(), chat.clone_for_write(), config.clone());
    pincer_core::crashpoint::hit("inbound.polled");
    chat.store
        .write(move |tx| {
            let target = format!("channel:{}", m.channel);
            let sender = Sender { id: &m.user, username: None, group: m.group.then_some(m.channel.as_str()), addressed: true };
            let approved = tx.sender_allowed(CHANNEL, &m.user)?;
            let policy = Policy::slack(&config, m.group.then_some(m.channel.as_str()));
            let decision = access::decide_by(&policy, &sender, approved);
            let mut detail = json!({
                "channel": CHANNEL, "senderId": m.user, "chatId": m.channel, "messageId": m.ts, "eventId": event.event_id,
            });
            match decision {
                Decision::Answer => {
                    let mut session = chat2.session_for(CHANNEL, m.group, &m.channel, None, &m.user);
                    // A reply in a channel thread is the thread's own conversation, under
                    // OpenClaw's thread key shape (`<channel's key>:thread:<thread ts>`).
                    if let (true, Some(ts)) = (m.group, &m.thread_ts) {
                        session = format!("{session}:thread:{ts}");
                    }
                    let text = if m.group { format!("[{}] {}", m.user, m.text) } else { m.text.clone() };
                    let new = tx.insert_inbound(&NewInbound {
                        channel: CHANNEL.into(),
                        external_id: event.event_id.clone(),
                        session_key: session,
                        chat_id: target,
                        // The reply goes into the message's thread (a new one under it if none).
                        thread_id: Some(m.thread_ts.clone().unwrap_or_else(|| m.ts.clone())),
                        message_id: m.ts.clone(),
                        sender_id: m.user.clone(),
                        sender_name: None,
                        text,
                        received_at_ms: now,
                    })?;
                    if !new {
                        tracing::debug!(event = event.event_id, "slack: a redelivered event, stored before");
                        return Ok(());
                    }
                }
                Decision::Pair => crate::pairing::offer_code(
                    tx,
                    &writer,
                    crate::pairing::Offer {
                        channel: CHANNEL,
                        sender_id: &m.user,
                        sender_name: None,
                        chat_id: &target,
                        reply_key: format!("pair:{CHANNEL}:{}", event.event_id),
                        reply_to: None,
                    },
                    &mut detail,
                    now,
                )?,
                Decision::Deny(why) => detail["reason"] = json!(why),
                Decision::NotAddressed => {}
            }
            crate::pairing::audit_decision(tx, decision, (CHANNEL, &event.event_id), &detail, now)?;
            Ok(())
        })
        .await?;
    pincer_core::crashpoint::hit("inbound.accepted");
    chat.kick_outbox();
    chat.wake_turns();
    Ok(())
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn events_are_read_as_slack_sends_them() {
        let bot = "U0BOT";
        let cases = [
            json!({"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "hi", "ts": "1.1"}),
            json!({"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@U0BOT> what now?", "ts": "2.1", "thread_ts": "1.0"}),
            json!({"type": "message", "channel_type": "im", "channel": "D1", "user": "U0BOT", "bot_id": "B1", "text": "my reply", "ts": "3.1"}),
            json!({"type": "message", "channel_type": "im", "channel": "D1", "subtype": "message_changed", "message": {"text": "x"}, "ts": "4.1"}),
            json!({"type": "message", "channel_type": "im", "channel": "D1", "subtype": "message_deleted", "ts": "5.1"}),
            json!({"type": "message", "channel_type": "channel", "channel": "C1", "user": "U1", "text": "chatter", "ts": "6.1"}),
            json!({"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "  ", "ts": "7.1"}),
            json!({"type": "app_mention", "channel": "C1", "user": "U2", "bot_id": "B9", "text": "<@U0BOT> loop?", "ts": "8.1"}),
            json!({"type": "reaction_added", "user": "U1"}),
        ];
        let mut out = String::new();
        for (i, e) in cases.into_iter().enumerate() {
            let payload = json!({"type": "event_callback", "event_id": format!("Ev{i}"), "event": e});
            let event = parse_event(&payload, "env", bot);
            out.push_str(&format!("{} {:?}\n", event.event_id, event.kind));
        }
        expect![[r#"
            Ev0 Message(Message { channel: "D1", group: false, ts: "1.1", thread_ts: None, user: "U1", text: "hi" })
            Ev1 Message(Message { channel: "C1", group: true, ts: "2.1", thread_ts: Some("1.0"), user: "U1", text: "what now?" })
            Ev2 Skip("a message from a bot")
            Ev3 Skip("an edited message")
            Ev4 Skip("a deleted message")
            Ev5 Skip("a channel message without a mention")
            Ev6 Skip("a message without text")
            Ev7 Skip("a message from a bot")
            Ev8 Skip("not a message")
        "#]].assert_eq(&out);
        assert_eq!(parse_event(&json!({"event": {}}), "env-1", bot).event_id, "env-1");
    }
}
