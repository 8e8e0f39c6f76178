//! Discord's inbound side: the Gateway WebSocket (v10, JSON). Identify with the intents for DMs,
//! guild messages and message content; heartbeats at the interval Hello gives (a missed ack is a
//! zombie connection, dropped and resumed); resume after a drop at `resume_gateway_url` with the
//! last sequence number; a new session after an invalid session; reconnect with backoff on the
//! injected clock. Each `MESSAGE_CREATE` is committed (message, or pairing code / denial with its
//! audit row) before its sequence number is acknowledged, and messages are unique by their Discord
//! id, so a replayed dispatch is never answered twice. A refused token (close 4004) or refused
//! intents (4013/4014) stop the channel and say so; it never spins.
//!
//! The client is ours over `tokio-tungstenite` (see ARCHITECTURE.md, "Discord gateway").

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use pincer_core::TaskResult;
use pincer_core::config::DiscordConfig;
use pincer_protocol::state::ConnectionState;
use pincer_store::NewInbound;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::Chat;
use crate::access::{self, Decision, Policy, Sender};

/// The channel's name in routes, stored rows and config keys.
pub const CHANNEL: &str = "discord";
/// `GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT` (`GUILDS` brings the channel and
/// thread create/update/delete dispatches that keep the channel cache fresh).
pub const INTENTS: u64 = 1 | (1 << 9) | (1 << 12) | (1 << 15);
/// How long the gateway has to say Hello, and a connect to finish.
const CONNECT_TIMEOUT_MS: i64 = 20_000;

/// A message from a person, as the inbound side reads a `MESSAGE_CREATE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub channel_id: String,
    /// `None` in a DM.
    pub guild_id: Option<String>,
    pub author_id: String,
    pub username: Option<String>,
    pub text: String,
    /// @mentions the bot, or replies to one of its messages.
    pub addressed: bool,
    /// The sender's role ids in the guild (`member.roles`; none in a DM).
    pub roles: Vec<String>,
}

/// Reads a `MESSAGE_CREATE`'s `d`; `Err` says why it is dropped. `bot_id` is from READY.
pub fn parse_message(d: &Value, bot_id: &str) -> Result<Message, &'static str> {
    let author = &d["author"];
    if author["bot"] == true || d.get("webhook_id").is_some_and(|w| !w.is_null()) {
        // Never answered, so two bots cannot talk to each other forever.
        return Err("a message from a bot");
    }
    // 0 DEFAULT, 19 REPLY; the rest are system messages (joins, pins, boosts).
    if !matches!(d["type"].as_u64(), Some(0 | 19)) {
        return Err("a system message");
    }
    let (Some(id), Some(channel_id), Some(author_id)) =
        (d["id"].as_str(), d["channel_id"].as_str(), author["id"].as_str())
    else {
        return Err("a message without ids");
    };
    if author_id == bot_id {
        return Err("the bot's own message");
    }
    let content = d["content"].as_str().unwrap_or_default();
    let tokens = [format!("<@{bot_id}>"), format!("<@!{bot_id}>")];
    let mentioned = d["mentions"].as_array().is_some_and(|m| m.iter().any(|u| u["id"] == bot_id))
        || tokens.iter().any(|t| content.contains(t.as_str()));
    let replied = d["referenced_message"]["author"]["id"] == bot_id;
    let mut text = content.to_string();
    for t in &tokens {
        text = text.replace(t.as_str(), "");
    }
    let text = text.trim().to_string();
    if text.is_empty() {
        // Stickers, attachments and embeds without words; a bare @mention.
        return Err("a message without text");
    }
    Ok(Message {
        id: id.to_string(),
        channel_id: channel_id.to_string(),
        guild_id: d["guild_id"].as_str().map(str::to_string),
        author_id: author_id.to_string(),
        username: author["username"].as_str().map(str::to_string),
        text,
        addressed: mentioned || replied,
        roles: d["member"]["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|id| id.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
    })
}

/// Where the session is kept (the store's `meta`), so a restart resumes it: Discord replays what
/// it dispatched after the last committed sequence, even across a `kill -9`.
const SESSION_KEY: &str = "inbound.discord.session";
/// The bot's user id, from the READY of the stored session.
const BOT_KEY: &str = "inbound.discord.botId";

/// A live gateway session, resumable after a drop or a restart.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Session {
    id: String,
    resume_url: String,
    /// The last sequence number committed (what a heartbeat and a resume send).
    seq: Option<i64>,
}

/// How one connection ended.
enum End {
    /// Stopped by the gateway.
    Stopped,
    /// The token was refused (4004): stop the channel.
    Rejected(String),
    /// A setting Pincer cannot fix by retrying (4010–4014: intents, shards, API version).
    Fatal(String),
    /// Connect again: resume if the session is still valid, after `wait` (none: at once).
    Again { error: String, resumable: bool, wait: Wait },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Wait {
    /// Reconnect right away (a drop on a healthy session, op 7 Reconnect).
    None,
    /// Discord asks 1–5 s before identifying after an invalid session.
    InvalidSession,
    /// The backoff of consecutive failures.
    Backoff,
}

/// The gateway loop, run under the supervisor: `Ok(())` when stopped or when the token is refused.
pub(crate) async fn gateway_loop(
    chat: Arc<Chat>,
    config: DiscordConfig,
    mut stop: watch::Receiver<bool>,
) -> TaskResult {
    let mut failures = 0usize;
    let mut session: Option<Session> =
        chat.store.read(|rd| rd.meta_get(SESSION_KEY)).await?.and_then(|v| serde_json::from_str(&v).ok());
    let mut bot_id = chat.store.read(|rd| rd.meta_get(BOT_KEY)).await?.unwrap_or_default();
    pincer_core::tls::install_default_provider();
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| format!("discord: building the HTTP client: {e}"))?;
    let mut found: Option<String> = None;
    let mut channels = ChannelCache::new(CHANNEL_CACHE_SIZE);
    loop {
        let state = if session.is_some() { ConnectionState::Reconnecting } else { ConnectionState::Connecting };
        chat.set_state(CHANNEL, state, None, None);
        let end = tokio::select! {
            end = connection(&chat, &config, &mut session, &mut bot_id, &mut failures, &http, &mut found, &mut channels) => end,
            _ = stop.wait_for(|s| *s) => End::Stopped,
        };
        let (error, wait) = match end {
            End::Stopped => return Ok(()),
            End::Rejected(e) | End::Fatal(e) => {
                chat.set_state(CHANNEL, ConnectionState::CredentialsRejected, Some(e.clone()), None);
                tracing::error!(
                    "{e}: Discord inbound stopped; fix it, then run `pincer config reload` (saving the config file applies it too)"
                );
                // Idle, not ended: the channel's state says why; the gateway's tasks stay up.
                let _ = stop.wait_for(|s| *s).await;
                return Ok(());
            }
            End::Again { error, resumable, wait } => {
                if !resumable {
                    session = None;
                    chat.store.write(|tx| tx.meta_set(SESSION_KEY, "null")).await?;
                }
                (error, wait)
            }
        };
        tracing::warn!(error, resume = session.is_some(), "discord gateway connection ended");
        let go_on = match wait {
            Wait::None => {
                chat.set_state(CHANNEL, ConnectionState::Reconnecting, Some(error), None);
                true
            }
            Wait::InvalidSession => {
                let next = chat.clock.now_ms() + rand::random_range(1_000..=5_000);
                chat.set_state(CHANNEL, ConnectionState::Backoff, Some(error), Some(next));
                sleep_until(&chat, next, &mut stop).await
            }
            Wait::Backoff => chat.backoff(CHANNEL, &mut failures, error, &mut stop).await,
        };
        if !go_on {
            return Ok(());
        }
    }
}

async fn sleep_until(chat: &Chat, at_ms: i64, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = chat.clock.sleep_until(at_ms) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

use crate::ws::Socket;

/// Opens the WebSocket at `base` (`ws://` or `wss://`) with `?v=10&encoding=json`.
async fn open(base: &str) -> Result<Socket, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| format!("the Discord gateway URL `{base}`: {e}"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("the Discord gateway URL must be ws:// or wss://, not {}://", url.scheme()));
    }
    url.query_pairs_mut().clear().append_pair("v", "10").append_pair("encoding", "json");
    let host = url.host_str().unwrap_or_default().to_string();
    let (ws, _) = crate::ws::connect(url.as_str(), None)
        .await
        .map_err(|e| format!("cannot open the Discord gateway at {host}: {e}"))?;
    Ok(ws)
}

/// How a gateway URL lookup failed.
enum Lookup {
    /// 401: the token is refused.
    Rejected(String),
    /// Anything else: retried with backoff.
    Failed(String),
}

/// Discord's typing indicator: `POST {apiBaseUrl}/channels/{id}/typing` (it shows for about 10 s,
/// so the turn repeats it while it runs).
pub(crate) struct TypingIndicator {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl TypingIndicator {
    pub(crate) fn new(config: &DiscordConfig) -> Result<TypingIndicator, String> {
        pincer_core::tls::install_default_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("discord: building the HTTP client: {e}"))?;
        Ok(TypingIndicator {
            http,
            base: config.api_base_url.trim_end_matches('/').to_string(),
            token: config.token.trim().trim_start_matches("Bot ").to_string(),
        })
    }

    /// Best effort: a failure only loses the indicator. `chat_id` is the reply target
    /// (`channel:<id>`).
    pub(crate) async fn typing(&self, chat_id: &str) {
        let id = chat_id.strip_prefix("channel:").unwrap_or(chat_id);
        let sent = self
            .http
            .post(format!("{}/channels/{id}/typing", self.base))
            .header("authorization", format!("Bot {}", self.token))
            .send()
            .await;
        if let Err(e) = sent.and_then(|r| r.error_for_status()) {
            tracing::debug!(error = %e, "discord typing failed");
        }
    }
}

/// The Gateway URL as Discord documents it: `GET {apiBaseUrl}/gateway/bot` with the bot token →
/// `url`. Used when `channels.discord.gatewayUrl` is not set.
async fn look_up_gateway(http: &reqwest::Client, config: &DiscordConfig) -> Result<String, Lookup> {
    let endpoint = format!("{}/gateway/bot", config.api_base_url.trim_end_matches('/'));
    let token = config.token.trim().trim_start_matches("Bot ");
    let failed = |why: String| Lookup::Failed(format!("looking up the Discord gateway URL (GET {endpoint}): {why}"));
    let response = http
        .get(&endpoint)
        .header("authorization", format!("Bot {token}"))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(Lookup::Rejected(
            "discord refused the bot token (401 on /gateway/bot): check channels.discord.token".into(),
        ));
    }
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        return Err(failed(format!("HTTP {}: {message}", status.as_u16())));
    }
    match body["url"].as_str() {
        Some(url) if !url.is_empty() => Ok(url.to_string()),
        _ => Err(failed("the answer has no `url`".into())),
    }
}

/// What a close code means for the next connection.
fn on_close(code: u16, reason: &str) -> End {
    let error = format!("the Discord gateway closed the connection ({code} {reason})");
    match code {
        4004 => End::Rejected("discord refused the bot token (4004): check channels.discord.token".into()),
        4010..=4012 => End::Fatal(format!("{error}: Pincer runs one shard on gateway v10")),
        4013 | 4014 => End::Fatal(format!(
            "{error}: enable the Message Content intent for the bot in the Discord developer portal (Bot → Privileged Gateway Intents)"
        )),
        // Invalid sequence, session timed out: a new session.
        4007 | 4009 => End::Again { error, resumable: false, wait: Wait::Backoff },
        _ => End::Again { error, resumable: true, wait: Wait::Backoff },
    }
}

async fn send(ws: &mut Socket, value: Value) -> Result<(), String> {
    ws.send(Frame::text(value.to_string())).await.map_err(|e| format!("the Discord gateway connection failed: {e}"))
}

/// One connection: Hello, Identify or Resume, then heartbeats and dispatches until it ends.
#[allow(clippy::too_many_arguments)]
async fn connection(
    chat: &Arc<Chat>,
    config: &DiscordConfig,
    session: &mut Option<Session>,
    bot_id: &mut String,
    failures: &mut usize,
    http: &reqwest::Client,
    found: &mut Option<String>,
    channels: &mut ChannelCache,
) -> End {
    let again = |error: String| End::Again { error, resumable: true, wait: Wait::Backoff };
    let deadline = chat.clock.now_ms() + CONNECT_TIMEOUT_MS;
    // The gateway to identify at: the one configured, else the one Discord names (looked up once,
    // and again after it could not be reached, as Discord asks).
    let gateway = match (&config.gateway_url, &*found) {
        (Some(url), _) | (None, Some(url)) => url.clone(),
        (None, None) => {
            let looked_up = tokio::select! {
                url = look_up_gateway(http, config) => url,
                _ = chat.clock.sleep_until(deadline) => Err(Lookup::Failed("looking up the Discord gateway URL timed out".into())),
            };
            match looked_up {
                Ok(url) => found.insert(url).clone(),
                Err(Lookup::Rejected(e)) => return End::Rejected(e),
                Err(Lookup::Failed(e)) => return again(e),
            }
        }
    };
    let url = session.as_ref().map_or(gateway.clone(), |s| s.resume_url.clone());
    let opened = tokio::select! {
        ws = open(&url) => ws,
        _ = chat.clock.sleep_until(deadline) => Err("connecting to the Discord gateway timed out".into()),
    };
    let mut ws = match opened {
        Ok(ws) => ws,
        Err(e) => {
            if session.is_none() {
                *found = None;
            }
            return again(e);
        }
    };
    // Hello: the heartbeat interval.
    let hello = tokio::select! {
        frame = ws.next() => frame,
        _ = chat.clock.sleep_until(deadline) => return again("the Discord gateway sent no Hello".into()),
    };
    let interval = match hello {
        Some(Ok(Frame::Text(t))) => serde_json::from_str::<Value>(t.as_str())
            .ok()
            .filter(|v| v["op"] == 10)
            .and_then(|v| v["d"]["heartbeat_interval"].as_i64())
            .filter(|ms| *ms > 0),
        Some(Ok(Frame::Close(Some(CloseFrame { code, reason })))) => return on_close(code.into(), &reason),
        _ => None,
    };
    let Some(interval) = interval else {
        return again("the Discord gateway did not start with Hello".into());
    };
    let token = config.token.trim().trim_start_matches("Bot ").to_string();
    let first = match session {
        Some(s) => json!({ "op": 6, "d": { "token": token, "session_id": s.id, "seq": s.seq } }),
        None => json!({ "op": 2, "d": {
            "token": token,
            "intents": INTENTS,
            "properties": { "os": std::env::consts::OS, "browser": "pincer", "device": "pincer" },
        } }),
    };
    if let Err(e) = send(&mut ws, first).await {
        return again(e);
    }
    // The first beat after `interval * jitter`, as Discord asks.
    let mut next_beat = chat.clock.now_ms() + (interval as f64 * rand::random::<f64>()) as i64;
    let mut acked = true;
    loop {
        let frame = tokio::select! {
            // Frames that already arrived (an ack) count before the timer judges the connection.
            biased;
            frame = ws.next() => frame,
            _ = chat.clock.sleep_until(next_beat) => {
                if !acked {
                    // A zombie connection: drop it and resume.
                    let _ = ws.close(None).await;
                    return End::Again { error: "the Discord gateway stopped acknowledging heartbeats".into(), resumable: true, wait: Wait::None };
                }
                acked = false;
                next_beat = chat.clock.now_ms() + interval;
                let seq = session.as_ref().and_then(|s| s.seq);
                if let Err(e) = send(&mut ws, json!({ "op": 1, "d": seq })).await {
                    return again(e);
                }
                continue;
            }
        };
        let text = match frame {
            Some(Ok(Frame::Text(t))) => t,
            Some(Ok(Frame::Close(Some(CloseFrame { code, reason })))) => return on_close(code.into(), &reason),
            Some(Ok(Frame::Close(None))) | None => {
                return End::Again {
                    error: "the Discord gateway connection closed".into(),
                    resumable: true,
                    wait: drop_wait(*failures),
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return End::Again {
                    error: format!("the Discord gateway connection failed: {e}"),
                    resumable: true,
                    wait: drop_wait(*failures),
                };
            }
        };
        let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
            tracing::debug!("discord: a gateway frame that is not JSON");
            continue;
        };
        match event["op"].as_u64() {
            Some(0) => {
                let seq = event["s"].as_i64();
                match event["t"].as_str() {
                    Some("READY") => {
                        let d = &event["d"];
                        *bot_id = d["user"]["id"].as_str().unwrap_or_default().to_string();
                        let new = Session {
                            id: d["session_id"].as_str().unwrap_or_default().to_string(),
                            resume_url: d["resume_gateway_url"].as_str().unwrap_or(&gateway).to_string(),
                            seq,
                        };
                        let (stored, bot) = (serde_json::to_string(&new).unwrap_or_default(), bot_id.clone());
                        let saved = chat
                            .store
                            .write(move |tx| {
                                tx.meta_set(SESSION_KEY, &stored)?;
                                tx.meta_set(BOT_KEY, &bot)
                            })
                            .await;
                        if let Err(e) = saved {
                            let _ = ws.close(None).await;
                            return again(format!("storing the Discord session failed: {e}"));
                        }
                        *session = Some(new);
                        chat.set_bot(CHANNEL, format!("@{}", d["user"]["username"].as_str().unwrap_or_default()));
                        connected(chat, failures);
                    }
                    Some("RESUMED") => connected(chat, failures),
                    Some("MESSAGE_CREATE") => {
                        let stored = session.as_ref().map(|s| {
                            let mut s = s.clone();
                            s.seq = seq.max(s.seq);
                            serde_json::to_string(&s).unwrap_or_default()
                        });
                        let lookup = Lookups { http, config, cache: channels };
                        if let Err(e) = accept(chat, config, bot_id, &event["d"], stored, lookup).await {
                            // Not acknowledged: the resume replays it.
                            let _ = ws.close(None).await;
                            return again(format!("storing a Discord message failed: {e}"));
                        }
                    }
                    Some("CHANNEL_CREATE" | "CHANNEL_UPDATE" | "THREAD_CREATE" | "THREAD_UPDATE") => {
                        channels.refresh(&event["d"]);
                    }
                    Some("CHANNEL_DELETE" | "THREAD_DELETE") => {
                        if let Some(id) = event["d"]["id"].as_str() {
                            channels.forget(id);
                        }
                    }
                    _ => {}
                }
                // Acknowledged (heartbeats, resume) only once handled and committed.
                if let (Some(s), Some(seq)) = (session.as_mut(), seq) {
                    s.seq = Some(s.seq.map_or(seq, |old| old.max(seq)));
                }
            }
            Some(1) => {
                let seq = session.as_ref().and_then(|s| s.seq);
                if let Err(e) = send(&mut ws, json!({ "op": 1, "d": seq })).await {
                    return again(e);
                }
            }
            Some(7) => {
                let _ = ws.close(None).await;
                return End::Again {
                    error: "the Discord gateway asked to reconnect".into(),
                    resumable: true,
                    wait: Wait::None,
                };
            }
            Some(9) => {
                let resumable = event["d"] == true;
                let _ = ws.close(None).await;
                return End::Again {
                    error: "the Discord gateway invalidated the session".into(),
                    resumable,
                    wait: if resumable { Wait::None } else { Wait::InvalidSession },
                };
            }
            Some(11) => acked = true,
            _ => {}
        }
    }
}

/// After a drop: at once when the session was healthy, else the backoff.
fn drop_wait(failures: usize) -> Wait {
    if failures == 0 { Wait::None } else { Wait::Backoff }
}

fn connected(chat: &Chat, failures: &mut usize) {
    *failures = 0;
    chat.set_state(CHANNEL, ConnectionState::Connected, None, None);
    chat.note_poll(CHANNEL);
}

/// How many channels the channel cache holds; the oldest entry goes first.
const CHANNEL_CACHE_SIZE: usize = 1024;
/// A `429` asking to wait at most this long is waited out (on the clock) and the lookup tried once
/// more; a longer one denies the message.
const LOOKUP_RETRY_MAX_MS: i64 = 2_000;
/// A channel lookup's own time limit, so a hung REST call cannot stall the gateway's heartbeats.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Discord's channel types that matter here.
pub const GROUP_DM: u64 = 3;
/// Announcement, public and private threads.
const THREADS: [u64; 3] = [10, 11, 12];

/// What `GET /channels/{id}` (or a channel dispatch) says about a channel: `MESSAGE_CREATE` carries
/// neither the channel's type nor a thread's parent.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    /// Discord's channel type: 1 DM, 3 group DM, 0 text, 10–12 threads, …
    pub kind: u64,
    pub parent_id: Option<String>,
    pub guild_id: Option<String>,
    pub name: Option<String>,
}

impl ChannelInfo {
    /// Reads a channel object; `None` without an id or a type.
    pub fn read(v: &Value) -> Option<(String, ChannelInfo)> {
        let id = v["id"].as_str()?.to_string();
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let info = ChannelInfo {
            kind: v["type"].as_u64()?,
            parent_id: text("parent_id"),
            guild_id: text("guild_id"),
            name: text("name"),
        };
        Some((id, info))
    }

    pub fn is_thread(&self) -> bool {
        THREADS.contains(&self.kind)
    }
}

/// The channels looked up, bounded (first in, first out); kept across reconnections, refreshed
/// by the channel and thread dispatches and emptied of deleted ones. Also where a `429` on a
/// lookup is remembered, so no lookup is sent before Discord's `retry_after` passed.
pub(crate) struct ChannelCache {
    entries: std::collections::HashMap<String, ChannelInfo>,
    order: std::collections::VecDeque<String>,
    cap: usize,
    limited_until_ms: i64,
}

impl ChannelCache {
    pub(crate) fn new(cap: usize) -> ChannelCache {
        ChannelCache { entries: Default::default(), order: Default::default(), cap: cap.max(1), limited_until_ms: 0 }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&ChannelInfo> {
        self.entries.get(id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn insert(&mut self, id: String, info: ChannelInfo) {
        if self.entries.insert(id.clone(), info).is_none() {
            self.order.push_back(id);
            while self.entries.len() > self.cap {
                let Some(old) = self.order.pop_front() else { break };
                self.entries.remove(&old);
            }
        }
    }

    /// A `CHANNEL_*` / `THREAD_*` create or update: the channel object as it is now.
    pub(crate) fn refresh(&mut self, d: &Value) {
        if let Some((id, info)) = ChannelInfo::read(d) {
            self.insert(id, info);
        }
    }

    pub(crate) fn forget(&mut self, id: &str) {
        if self.entries.remove(id).is_some() {
            self.order.retain(|k| k != id);
        }
    }
}

/// What a message's access decision needs to look channels up.
pub(crate) struct Lookups<'a> {
    http: &'a reqwest::Client,
    config: &'a DiscordConfig,
    cache: &'a mut ChannelCache,
}

impl Lookups<'_> {
    /// The channel, from the cache or `GET {apiBaseUrl}/channels/{id}`. A `429` is remembered;
    /// a short one is waited out on the clock and the lookup tried once more.
    async fn channel(&mut self, chat: &Chat, id: &str) -> Result<ChannelInfo, String> {
        if let Some(info) = self.cache.get(id) {
            return Ok(info.clone());
        }
        let endpoint = format!("{}/channels/{id}", self.config.api_base_url.trim_end_matches('/'));
        let failed = |why: String| format!("looking up Discord channel {id} (GET {endpoint}) failed: {why}");
        let token = self.config.token.trim().trim_start_matches("Bot ");
        for _ in 0..2 {
            let wait = self.cache.limited_until_ms - chat.clock.now_ms();
            if wait > 0 {
                if wait > LOOKUP_RETRY_MAX_MS {
                    return Err(failed(format!("rate limited by Discord for another {wait} ms")));
                }
                chat.clock.sleep_until(self.cache.limited_until_ms).await;
            }
            let response = self
                .http
                .get(&endpoint)
                .header("authorization", format!("Bot {token}"))
                .timeout(LOOKUP_TIMEOUT)
                .send()
                .await
                .map_err(|e| failed(e.to_string()))?;
            let status = response.status();
            let retry_header = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let seconds = body["retry_after"].as_f64().or(retry_header).unwrap_or(1.0);
                let ms = (seconds * 1000.0).ceil().max(0.0) as i64;
                self.cache.limited_until_ms = chat.clock.now_ms() + ms;
                tracing::warn!(channel = id, retry_after_ms = ms, "discord: a channel lookup was rate limited");
                continue;
            }
            if !status.is_success() {
                let message = body["message"].as_str().unwrap_or("no message");
                return Err(failed(format!("HTTP {}: {message}", status.as_u16())));
            }
            let mut body = body;
            if body["id"].is_null() {
                body["id"] = json!(id);
            }
            let Some((_, info)) = ChannelInfo::read(&body) else {
                return Err(failed("the answer has no channel `type`".into()));
            };
            self.cache.insert(id.to_string(), info.clone());
            return Ok(info);
        }
        Err(failed("still rate limited after waiting".into()))
    }

    /// Where a message was written, as access decides it. Channels are looked up only when it
    /// matters: every DM channel (a group DM looks like a DM), and a guild channel only when the
    /// guild's `channels` map could match it through a thread's parent.
    async fn place(&mut self, chat: &Chat, m: &Message) -> Place {
        let lookup = match &m.guild_id {
            Some(guild) if !access::discord_needs_parent(self.config, guild, &m.channel_id) => {
                return Place::Guild { parent: None };
            }
            _ => self.channel(chat, &m.channel_id).await,
        };
        match lookup {
            Err(error) => {
                tracing::error!(
                    channel = m.channel_id,
                    message = m.id,
                    "{error}; the message is denied (check the bot's access to the channel)"
                );
                Place::Unknown(error)
            }
            Ok(info) if m.guild_id.is_some() => {
                Place::Guild { parent: if info.is_thread() { info.parent_id } else { None } }
            }
            Ok(info) if info.kind == GROUP_DM => Place::GroupDm { name: info.name },
            Ok(_) => Place::Dm,
        }
    }
}

/// Where a message was written.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Dm,
    GroupDm {
        name: Option<String>,
    },
    /// A guild channel, or a thread with its parent channel.
    Guild {
        parent: Option<String>,
    },
    /// The channel lookup failed: denied.
    Unknown(String),
}

/// Commits one `MESSAGE_CREATE`: the message (unique by its Discord id), or the pairing code or
/// denial with its audit row.
/// `session` is the session with this dispatch's sequence, stored in the same commit.
async fn accept(
    chat: &Arc<Chat>,
    config: &DiscordConfig,
    bot_id: &str,
    d: &Value,
    session: Option<String>,
    mut lookups: Lookups<'_>,
) -> pincer_store::Result<()> {
    let m = match parse_message(d, bot_id) {
        Ok(m) => m,
        Err(why) => {
            // Not stored, so not acknowledged durably: a replay after a restart skips it again.
            tracing::debug!(message = d["id"].as_str().unwrap_or_default(), "discord: skipped {why}");
            return Ok(());
        }
    };
    // Before the commit: a lookup is a REST call, never made inside a store transaction.
    let place = lookups.place(chat, &m).await;
    let now = chat.clock.now_ms();
    let chat2 = chat.clone();
    let config = config.clone();
    let writer = chat.clone_for_write();
    pincer_core::crashpoint::hit("inbound.polled");
    chat.store
        .write(move |tx| {
            // A group DM is a group chat of its own (its channel id), answered without a mention.
            let group = match &place {
                Place::Dm => None,
                Place::GroupDm { .. } => Some(m.channel_id.as_str()),
                Place::Guild { .. } | Place::Unknown(_) => m.guild_id.as_deref().or(Some(m.channel_id.as_str())),
            };
            let sender = Sender { id: &m.author_id, username: m.username.as_deref(), group, addressed: m.addressed };
            // The dispatch is acknowledged (its sequence stored) in the commit that stores it.
            if let Some(session) = &session {
                tx.meta_set(SESSION_KEY, session)?;
            }
            // A dispatch Discord sends again (a replay after a resume) is not decided twice.
            if tx.inbound_exists(CHANNEL, &m.id)? {
                return Ok(());
            }
            let approved = tx.sender_allowed(CHANNEL, &m.author_id)?;
            let decision = match &place {
                Place::Unknown(_) => Decision::Deny("the channel lookup failed"),
                Place::Dm if !config.dm.enabled => Decision::Deny("DMs are disabled (dm.enabled: false)"),
                Place::Dm => {
                    access::decide_by(&Policy::discord(&config, None, &m.channel_id, None, &[]), &sender, approved)
                }
                Place::GroupDm { name } => access::discord_group_dm(&config, &m.channel_id, name.as_deref()),
                Place::Guild { parent } => {
                    let policy =
                        Policy::discord(&config, m.guild_id.as_deref(), &m.channel_id, parent.as_deref(), &m.roles);
                    access::decide_by(&policy, &sender, approved)
                }
            };
            let to = format!("channel:{}", m.channel_id);
            let mut detail = json!({
                "channel": CHANNEL, "senderId": m.author_id, "chatId": m.channel_id, "guildId": m.guild_id,
                "messageId": m.id,
            });
            match &place {
                Place::GroupDm { .. } => detail["groupDm"] = json!(true),
                Place::Guild { parent: Some(parent) } => detail["parentId"] = json!(parent),
                Place::Unknown(error) => detail["error"] = json!(error),
                _ => {}
            }
            match decision {
                Decision::Answer => {
                    let group = sender.group.is_some();
                    let session = chat2.session_for(CHANNEL, group, &m.channel_id, None, &m.author_id);
                    let text = if group {
                        format!("[{}] {}", m.username.as_deref().unwrap_or(&m.author_id), m.text)
                    } else {
                        m.text.clone()
                    };
                    tx.accept_inbound(
                        CHANNEL,
                        0,
                        Some(&NewInbound {
                            channel: CHANNEL.into(),
                            external_id: m.id.clone(),
                            session_key: session,
                            chat_id: to.clone(),
                            thread_id: None,
                            message_id: m.id.clone(),
                            sender_id: m.author_id.clone(),
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
                        sender_id: &m.author_id,
                        sender_name: m.username.as_deref(),
                        chat_id: &to,
                        reply_key: format!("pair:{CHANNEL}:{}", m.id),
                        reply_to: Some(m.id.clone()),
                    },
                    &mut detail,
                    now,
                )?,
                Decision::Deny(why) => detail["reason"] = json!(why),
                Decision::NotAddressed => {}
            }
            crate::pairing::audit_decision(tx, decision, (CHANNEL, &m.id), &detail, now)?;
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
    use super::*;

    #[test]
    fn message_creates_are_read_as_discord_sends_them() {
        let bot = "900";
        let message = |extra: Value| {
            let mut m = json!({
                "id": "5", "type": 0, "channel_id": "77", "guild_id": "66", "content": "hi",
                "author": {"id": "7", "username": "ann"}, "mentions": [],
            });
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            m
        };
        let m = parse_message(&message(json!({"content": "hey <@900> what's up", "mentions": [{"id": "900"}]})), bot)
            .unwrap();
        assert_eq!((m.text.as_str(), m.addressed, m.guild_id.as_deref()), ("hey  what's up", true, Some("66")));
        let m = parse_message(&message(json!({"content": "<@!900> nick form"})), bot).unwrap();
        assert_eq!((m.text.as_str(), m.addressed), ("nick form", true));
        let m =
            parse_message(&message(json!({"type": 19, "referenced_message": {"author": {"id": "900"}}})), bot).unwrap();
        assert!(m.addressed);
        let m = parse_message(&message(json!({"content": "chatter"})), bot).unwrap();
        assert!(!m.addressed);
        assert_eq!(parse_message(&message(json!({"content": ""})), bot), Err("a message without text"));
        assert_eq!(parse_message(&message(json!({"content": "<@900>"})), bot), Err("a message without text"));
        assert_eq!(
            parse_message(&message(json!({"author": {"id": "8", "bot": true}})), bot),
            Err("a message from a bot")
        );
        assert_eq!(parse_message(&message(json!({"webhook_id": "3"})), bot), Err("a message from a bot"));
        assert_eq!(parse_message(&message(json!({"type": 7})), bot), Err("a system message"));
        assert_eq!(parse_message(&message(json!({"author": {"id": "900"}})), bot), Err("the bot's own message"));
    }

    #[test]
    fn the_channel_cache_is_bounded_and_follows_channel_dispatches() {
        let mut cache = ChannelCache::new(2);
        cache.refresh(&json!({"id": "1", "type": 11, "guild_id": "66", "parent_id": "700"}));
        cache.refresh(&json!({"id": "2", "type": 3, "name": "Plans"}));
        assert_eq!(cache.get("1").map(|c| (c.is_thread(), c.parent_id.as_deref())), Some((true, Some("700"))));
        // An update replaces the entry in place; it does not count twice.
        cache.refresh(&json!({"id": "1", "type": 11, "guild_id": "66", "parent_id": "701"}));
        assert_eq!((cache.len(), cache.get("1").unwrap().parent_id.as_deref()), (2, Some("701")));
        // A third channel pushes the oldest out.
        cache.refresh(&json!({"id": "3", "type": 0, "guild_id": "66"}));
        assert_eq!((cache.len(), cache.get("1"), cache.get("2").map(|c| c.kind)), (2, None, Some(GROUP_DM)));
        cache.forget("2");
        cache.refresh(&json!({"id": "4", "type": 1}));
        assert_eq!((cache.len(), cache.get("3").is_some(), cache.get("4").is_some()), (2, true, true));
        // Without a type it is not a channel object: ignored.
        cache.refresh(&json!({"id": "5"}));
        assert!(cache.get("5").is_none());
    }
}
