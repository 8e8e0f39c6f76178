//! Telegram's inbound side: `getUpdates` long polling (30 s), each batch of updates committed with
//! the next `offset` in one transaction (so a confirmed update is always a stored message), the
//! access decision per message (pairing codes and denials in that same commit, with their audit
//! rows), and `sendChatAction` while a turn runs. Backoff after a failure runs on the injected
//! clock; a refused token stops the channel and says so.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use pincer_core::TaskResult;
use pincer_core::config::TelegramConfig;
use pincer_protocol::state::ConnectionState;
use pincer_store::NewInbound;
use serde_json::{Value, json};

use crate::Chat;
use crate::access::{self, Decision, Sender};

/// The channel's name in routes, stored rows and config keys.
pub const CHANNEL: &str = "telegram";
/// `getUpdates`' `timeout`: how long Telegram holds a poll with nothing to answer.
pub const POLL_TIMEOUT_S: u64 = 30;
/// Waits after consecutive failed polls: 1 s, 2 s, 5 s, 10 s, then every 30 s.
pub const BACKOFF_MS: [i64; 5] = [1_000, 2_000, 5_000, 10_000, 30_000];

/// A Bot API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401/404 on the token: it was revoked or is wrong.
    #[error("telegram refused the bot token ({0}): check channels.telegram.botToken")]
    Rejected(String),
    /// 409: another `getUpdates` poller or a webhook holds the bot.
    #[error("telegram: {0} (another poller or a webhook holds this bot; stop it, or run `deleteWebhook`)")]
    Conflict(String),
    /// 409 because a webhook is set: polling deletes it (switching back from webhook mode).
    #[error("telegram: {0}")]
    WebhookActive(String),
    #[error("telegram: {0}")]
    Other(String),
}

/// A small Bot API client for the calls the inbound side makes.
pub struct BotApi {
    http: reqwest::Client,
    base: String,
}

impl BotApi {
    pub fn new(config: &TelegramConfig) -> Result<BotApi, ApiError> {
        pincer_core::tls::install_default_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ApiError::Other(e.to_string()))?;
        Ok(BotApi { http, base: format!("{}/bot{}", config.api_root.trim_end_matches('/'), config.bot_token) })
    }

    async fn call(&self, method: &str, body: &Value, limit: Duration) -> Result<Value, ApiError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .json(body)
            .timeout(limit)
            .send()
            .await
            // The URL holds the token: never show it.
            .map_err(|e| ApiError::Other(format!("{method}: {}", e.without_url())))?;
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        let description = json["description"].as_str().unwrap_or("no description").to_string();
        match status {
            200..=299 if json["ok"] == true => Ok(json["result"].clone()),
            401 | 404 => Err(ApiError::Rejected(format!("{status} {description}"))),
            409 if description.contains("webhook is active") => Err(ApiError::WebhookActive(description)),
            409 => Err(ApiError::Conflict(description)),
            _ => Err(ApiError::Other(format!("{method}: {status} {description}"))),
        }
    }

    /// `getMe`: `(id, username)`.
    pub async fn me(&self) -> Result<(i64, String), ApiError> {
        let me = self.call("getMe", &json!({}), Duration::from_secs(15)).await?;
        Ok((me["id"].as_i64().unwrap_or(0), me["username"].as_str().unwrap_or_default().to_string()))
    }

    /// `getUpdates` from `offset`, held up to [`POLL_TIMEOUT_S`].
    pub async fn updates(&self, offset: Option<i64>) -> Result<Vec<Value>, ApiError> {
        let mut body = json!({ "timeout": POLL_TIMEOUT_S, "allowed_updates": ["message", "edited_message"] });
        if let Some(offset) = offset {
            body["offset"] = json!(offset);
        }
        let result = self.call("getUpdates", &body, Duration::from_secs(POLL_TIMEOUT_S + 15)).await?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// `setWebhook`: Telegram posts updates to `url` with `secret` in
    /// `X-Telegram-Bot-Api-Secret-Token` from now on (and refuses `getUpdates`).
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), ApiError> {
        let body = json!({ "url": url, "secret_token": secret, "allowed_updates": ["message", "edited_message"] });
        self.call("setWebhook", &body, Duration::from_secs(15)).await.map(|_| ())
    }

    /// `deleteWebhook`, keeping pending updates (the next `getUpdates` gets them).
    pub async fn delete_webhook(&self) -> Result<(), ApiError> {
        self.call("deleteWebhook", &json!({ "drop_pending_updates": false }), Duration::from_secs(15)).await.map(|_| ())
    }

    /// `sendChatAction` typing (best effort: a failure only loses the indicator).
    pub async fn typing(&self, chat_id: &str, thread_id: Option<&str>) {
        let mut body = json!({ "chat_id": chat_id, "action": "typing" });
        if let Some(t) = thread_id.and_then(|t| t.parse::<i64>().ok()) {
            body["message_thread_id"] = json!(t);
        }
        if let Err(e) = self.call("sendChatAction", &body, Duration::from_secs(10)).await {
            tracing::debug!(error = %e, "telegram sendChatAction failed");
        }
    }
}

/// One update, as the inbound side reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub update_id: i64,
    pub kind: UpdateKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpdateKind {
    /// A text message (or a captioned photo) from a person.
    Message(Message),
    /// Confirmed and dropped: edits, other bots, stickers and photos without text, channel posts.
    Skip(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub message_id: i64,
    pub chat_id: i64,
    /// `None` in a DM.
    pub group: bool,
    pub thread_id: Option<i64>,
    pub sender_id: i64,
    pub username: Option<String>,
    pub name: Option<String>,
    pub text: String,
    /// @mentions the bot, or replies to one of its messages.
    pub addressed: bool,
}

/// Reads an update; `bot` is `(id, username)` from `getMe`.
pub fn parse_update(update: &Value, bot: &(i64, String)) -> Option<Update> {
    let update_id = update["update_id"].as_i64()?;
    let kind = if update.get("edited_message").is_some() {
        UpdateKind::Skip("an edited message")
    } else if let Some(m) = update.get("message") {
        parse_message(m, bot)
    } else {
        UpdateKind::Skip("not a message")
    };
    Some(Update { update_id, kind })
}

fn parse_message(m: &Value, (bot_id, bot_name): &(i64, String)) -> UpdateKind {
    let from = &m["from"];
    if from["is_bot"] == true {
        // Never answered, so two bots cannot talk to each other forever.
        return UpdateKind::Skip("a message from a bot");
    }
    let Some(text) = m["text"].as_str().or_else(|| m["caption"].as_str()).filter(|t| !t.trim().is_empty()) else {
        return UpdateKind::Skip("a message without text");
    };
    let group = match m["chat"]["type"].as_str() {
        Some("private") => false,
        Some("group" | "supergroup") => true,
        _ => return UpdateKind::Skip("a channel post"),
    };
    let (Some(message_id), Some(chat_id), Some(sender_id)) =
        (m["message_id"].as_i64(), m["chat"]["id"].as_i64(), from["id"].as_i64())
    else {
        return UpdateKind::Skip("a message without ids");
    };
    let mention = format!("@{bot_name}");
    let mentioned = !bot_name.is_empty() && text.to_lowercase().contains(&mention.to_lowercase());
    let replied = m["reply_to_message"]["from"]["id"].as_i64() == Some(*bot_id);
    let text = if mentioned { strip_mention(text, &mention) } else { text.trim().to_string() };
    let name = [from["first_name"].as_str(), from["last_name"].as_str()].into_iter().flatten().collect::<Vec<_>>();
    UpdateKind::Message(Message {
        message_id,
        chat_id,
        group,
        thread_id: (m["is_topic_message"] == true).then(|| m["message_thread_id"].as_i64()).flatten(),
        sender_id,
        username: from["username"].as_str().map(str::to_string),
        name: (!name.is_empty()).then(|| name.join(" ")),
        text,
        addressed: mentioned || replied,
    })
}

/// `text` without the bot's @mention (any case), trimmed.
fn strip_mention(text: &str, mention: &str) -> String {
    let lower = text.to_lowercase();
    match lower.find(&mention.to_lowercase()) {
        Some(at) if text.is_char_boundary(at) && text.is_char_boundary(at + mention.len()) => {
            format!("{}{}", &text[..at], &text[at + mention.len()..]).trim().to_string()
        }
        _ => text.trim().to_string(),
    }
}

/// The poll loop, run under the supervisor: `Ok(())` when stopped or when the token is refused.
pub(crate) async fn poll_loop(chat: Arc<Chat>, config: TelegramConfig, mut stop: watch::Receiver<bool>) -> TaskResult {
    let api = BotApi::new(&config)?;
    let mut failures = 0usize;
    let bot = loop {
        chat.set_state(CHANNEL, ConnectionState::Connecting, None, None);
        let me = tokio::select! {
            me = api.me() => me,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match me {
            Ok(me) => break me,
            Err(e @ ApiError::Rejected(_)) => {
                chat.set_state(CHANNEL, ConnectionState::CredentialsRejected, Some(e.to_string()), None);
                tracing::error!(
                    "telegram refused the bot token: inbound chat stopped; fix channels.telegram.botToken, then run `pincer config reload` (saving the config file applies it too)"
                );
                // Idle, not ended: the channel's state says why; the gateway's tasks stay up.
                let _ = stop.wait_for(|s| *s).await;
                return Ok(());
            }
            Err(e) => {
                if !chat.backoff(CHANNEL, &mut failures, e.to_string(), &mut stop).await {
                    return Ok(());
                }
            }
        }
    };
    chat.set_bot(CHANNEL, format!("@{}", bot.1));
    *chat.telegram_bot.lock().expect("telegram bot") = Some(bot.clone());
    if let (Some(url), Some(secret)) = (&config.webhook_url, &config.webhook_secret) {
        return webhook_mode(&chat, &api, url, secret, &mut stop, &mut failures).await;
    }
    chat.set_mode(CHANNEL, "polling");
    let mut offset = chat.store.read(|rd| rd.inbound_offset(CHANNEL)).await?;
    loop {
        chat.set_state(CHANNEL, ConnectionState::Polling, None, None);
        let polled = tokio::select! {
            polled = api.updates(offset) => polled,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match polled {
            Ok(updates) => {
                failures = 0;
                chat.note_poll(CHANNEL);
                if updates.is_empty() {
                    continue;
                }
                let next = accept(&chat, &config, &bot, &updates).await?;
                offset = Some(next);
            }
            Err(e @ ApiError::Rejected(_)) => {
                chat.set_state(CHANNEL, ConnectionState::CredentialsRejected, Some(e.to_string()), None);
                tracing::error!(
                    "telegram refused the bot token: inbound chat stopped; fix channels.telegram.botToken, then run `pincer config reload` (saving the config file applies it too)"
                );
                // Idle, not ended: the channel's state says why; the gateway's tasks stay up.
                let _ = stop.wait_for(|s| *s).await;
                return Ok(());
            }
            Err(ApiError::WebhookActive(_)) => {
                // Switched back from webhook mode: remove the webhook (its pending updates stay
                // for `getUpdates`), then poll at once.
                tracing::info!("telegram: a webhook is set; deleting it to poll with getUpdates");
                if let Err(e) = api.delete_webhook().await
                    && !chat.backoff(CHANNEL, &mut failures, e.to_string(), &mut stop).await
                {
                    return Ok(());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "telegram getUpdates failed");
                if !chat.backoff(CHANNEL, &mut failures, e.to_string(), &mut stop).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Webhook mode: `setWebhook` (retried with backoff), then idle while the gateway's HTTP side
/// feeds [`webhook_update`]; `Ok(())` when stopped or the token is refused.
async fn webhook_mode(
    chat: &Arc<Chat>,
    api: &BotApi,
    url: &str,
    secret: &str,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    failures: &mut usize,
) -> TaskResult {
    chat.set_mode(CHANNEL, "webhook");
    loop {
        chat.set_state(CHANNEL, ConnectionState::Connecting, None, None);
        let set = tokio::select! {
            set = api.set_webhook(url, secret) => set,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match set {
            Ok(()) => {
                *failures = 0;
                chat.set_state(CHANNEL, ConnectionState::Connected, None, None);
                chat.note_poll(CHANNEL);
                let _ = stop.wait_for(|s| *s).await;
                return Ok(());
            }
            Err(e @ ApiError::Rejected(_)) => {
                chat.set_state(CHANNEL, ConnectionState::CredentialsRejected, Some(e.to_string()), None);
                tracing::error!(
                    "telegram refused the bot token: fix channels.telegram.botToken, then run `pincer config reload` (saving the config file applies it too)"
                );
                let _ = stop.wait_for(|s| *s).await;
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "telegram setWebhook failed");
                if !chat.backoff(CHANNEL, failures, e.to_string(), stop).await {
                    return Ok(());
                }
            }
        }
    }
}

/// How the gateway answers one webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAnswer {
    /// Stored (or skipped): 200.
    Accepted,
    /// Webhook mode is off: 404.
    NotServed,
    /// The secret header is missing or wrong: 401.
    BadSecret,
    /// Not an update: 400.
    BadBody,
    /// Not ready (`getMe` not answered yet) or the store refused: 503, Telegram retries.
    Unavailable,
}

impl WebhookAnswer {
    pub fn status(self) -> u16 {
        match self {
            WebhookAnswer::Accepted => 200,
            WebhookAnswer::NotServed => 404,
            WebhookAnswer::BadSecret => 401,
            WebhookAnswer::BadBody => 400,
            WebhookAnswer::Unavailable => 503,
        }
    }
}

/// One update posted to the webhook: the secret checked, then committed like a polled one
/// before the 200 (so an update Telegram sees answered is always stored; a retry is stored once).
pub async fn webhook_update(chat: &Arc<Chat>, secret: Option<&str>, body: &[u8]) -> WebhookAnswer {
    let Some(config) = chat.config().channels.telegram.clone().filter(|c| c.webhook_url.is_some()) else {
        return WebhookAnswer::NotServed;
    };
    let expected = config.webhook_secret.as_deref().unwrap_or_default().as_bytes();
    let given = secret.unwrap_or_default().as_bytes();
    if expected.is_empty() || !bool::from(subtle::ConstantTimeEq::ct_eq(expected, given)) {
        tracing::warn!("telegram webhook: a request without the right X-Telegram-Bot-Api-Secret-Token was refused");
        return WebhookAnswer::BadSecret;
    }
    let Ok(update) = serde_json::from_slice::<Value>(body) else { return WebhookAnswer::BadBody };
    if update["update_id"].as_i64().is_none() {
        return WebhookAnswer::BadBody;
    }
    let Some(bot) = chat.telegram_bot.lock().expect("telegram bot").clone() else {
        return WebhookAnswer::Unavailable;
    };
    match accept(chat, &config, &bot, &[update]).await {
        Ok(_) => {
            chat.note_poll(CHANNEL);
            WebhookAnswer::Accepted
        }
        Err(e) => {
            tracing::warn!(error = %e, "telegram webhook: the update was not stored; Telegram will retry");
            WebhookAnswer::Unavailable
        }
    }
}

/// Commits one batch of updates with the next offset; returns that offset.
async fn accept(
    chat: &Arc<Chat>,
    config: &TelegramConfig,
    bot: &(i64, String),
    updates: &[Value],
) -> Result<i64, pincer_store::StoreError> {
    let now = chat.clock.now_ms();
    let parsed: Vec<Update> = updates.iter().filter_map(|u| parse_update(u, bot)).collect();
    let next = updates.iter().filter_map(|u| u["update_id"].as_i64()).max().map_or(0, |id| id + 1);
    // Who is approved is read in the same transaction as the decision it feeds.
    let chat2 = chat.clone();
    let config = config.clone();
    let writer = chat.clone_for_write();
    pincer_core::crashpoint::hit("inbound.polled");
    chat.store
        .write(move |tx| {
            tx.accept_inbound(CHANNEL, next, None, now)?;
            for update in &parsed {
                let UpdateKind::Message(m) = &update.kind else {
                    if let UpdateKind::Skip(why) = &update.kind {
                        tracing::debug!(update = update.update_id, "telegram: skipped {why}");
                    }
                    continue;
                };
                let (sender_id, chat_id) = (m.sender_id.to_string(), m.chat_id.to_string());
                let sender = Sender {
                    id: &sender_id,
                    username: m.username.as_deref(),
                    group: m.group.then_some(chat_id.as_str()),
                    addressed: m.addressed,
                };
                let approved = tx.sender_allowed(CHANNEL, &sender_id)?;
                let decision = access::decide(&config, &sender, approved);
                let mut detail = json!({
                    "channel": CHANNEL, "senderId": sender_id, "chatId": chat_id, "messageId": m.message_id,
                });
                match decision {
                    Decision::Answer => {
                        let session = chat2.session_for(CHANNEL, m.group, &chat_id, m.thread_id, &sender_id);
                        let text = if m.group {
                            format!(
                                "[{}] {}",
                                m.name.as_deref().or(m.username.as_deref()).unwrap_or(&sender_id),
                                m.text
                            )
                        } else {
                            m.text.clone()
                        };
                        tx.accept_inbound(
                            CHANNEL,
                            next,
                            Some(&NewInbound {
                                channel: CHANNEL.into(),
                                external_id: update.update_id.to_string(),
                                session_key: session,
                                chat_id: chat_id.clone(),
                                thread_id: m.thread_id.map(|t| t.to_string()),
                                message_id: m.message_id.to_string(),
                                sender_id: sender_id.clone(),
                                sender_name: m.username.clone(),
                                text,
                                received_at_ms: now,
                            }),
                            now,
                        )?;
                    }
                    Decision::Pair => crate::pairing::offer_code(
                        tx,
                        &writer,
                        crate::pairing::Offer {
                            channel: CHANNEL,
                            sender_id: &sender_id,
                            sender_name: m.username.as_deref(),
                            chat_id: &chat_id,
                            reply_key: format!("pair:{CHANNEL}:{}", update.update_id),
                            reply_to: Some(m.message_id.to_string()),
                        },
                        &mut detail,
                        now,
                    )?,
                    Decision::Deny(why) => detail["reason"] = json!(why),
                    Decision::NotAddressed => {}
                }
                let update_id = update.update_id.to_string();
                crate::pairing::audit_decision(tx, decision, (CHANNEL, &update_id), &detail, now)?;
            }
            Ok(())
        })
        .await?;
    pincer_core::crashpoint::hit("inbound.accepted");
    chat.kick_outbox();
    chat.wake_turns();
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_read_as_telegram_sends_them() {
        let bot = (123456, "pincer_bot".to_string());
        let message = |extra: Value| {
            let mut m = json!({
                "message_id": 5, "date": 1, "chat": {"id": -100, "type": "supergroup"},
                "from": {"id": 7, "is_bot": false, "first_name": "Ann", "username": "ann"},
            });
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            json!({"update_id": 10, "message": m})
        };
        let kind = |u: Value| parse_update(&u, &bot).unwrap().kind;
        let UpdateKind::Message(m) = kind(message(json!({"text": "hey @Pincer_Bot what's up"}))) else { panic!() };
        assert_eq!((m.text.as_str(), m.addressed, m.group), ("hey  what's up", true, true));
        let UpdateKind::Message(m) =
            kind(message(json!({"text": "yes", "reply_to_message": {"from": {"id": 123456}}})))
        else {
            panic!()
        };
        assert!(m.addressed);
        let UpdateKind::Message(m) =
            kind(message(json!({"text": "t", "is_topic_message": true, "message_thread_id": 77})))
        else {
            panic!()
        };
        assert_eq!((m.thread_id, m.addressed), (Some(77), false));
        assert_eq!(kind(message(json!({"sticker": {}}))), UpdateKind::Skip("a message without text"));
        let UpdateKind::Message(m) = kind(message(json!({"photo": [], "caption": "look"}))) else { panic!() };
        assert_eq!(m.text, "look");
        let mut from_bot = message(json!({"text": "loop?"}));
        from_bot["message"]["from"]["is_bot"] = json!(true);
        assert_eq!(kind(from_bot), UpdateKind::Skip("a message from a bot"));
        let edited = json!({"update_id": 11, "edited_message": {"text": "x"}});
        assert_eq!(kind(edited), UpdateKind::Skip("an edited message"));
    }
}
