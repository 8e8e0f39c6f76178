//! Inbound chat: the owner talks to the agent from a chat platform.
//!
//! - `telegram`: `getUpdates` long polling; each batch is committed with the next `offset` and
//!   the access decisions it made (pairing codes, audit rows) in one transaction.
//! - `slack`: Socket Mode; each envelope is acked only after its message (keyed by Slack's
//!   event id, so a redelivery is stored once) is committed.
//! - `discord`: the Gateway WebSocket (identify, heartbeats, resume, backoff); each
//!   `MESSAGE_CREATE` is committed (unique by message id) before its sequence number is
//!   acknowledged.
//! - [`access`]: OpenClaw's `dmPolicy`/`allowFrom`/`groupPolicy`/`groupAllowFrom`/`groups`/
//!   `requireMention` as one pure function.
//! - [`pairing`]: codes for unknown senders, approved or rejected by the owner.
//! - `turns`: one turn at a time per session; messages that arrive meanwhile wait and go to the
//!   next turn together. A turn is the agent's own turn API ([`pincer_agent::api::agent`]), so
//!   inbound turns run exactly as `agent` calls do. The reply's outbox row (quoting the message),
//!   the messages' `answered` mark and the session's last route commit together.
//!
//! **Architecture Invariant:** a message is confirmed to the platform (the poll offset moves past
//! it) only in the commit that stores it, and marked answered only in the commit that stores its
//! reply: a `kill -9` anywhere neither loses a message nor answers one twice. Every wait (poll
//! backoff, pairing expiry, the typing indicator) runs on the injected clock.

pub mod access;
pub mod discord;
pub mod pairing;
pub mod slack;
pub mod telegram;
mod turns;
pub mod ws;

pub use turns::{COMMANDS, ChatCommand};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use pincer_agent::{Agents, SessionRef};
use pincer_core::config::DmScope;
use pincer_core::supervisor::Task;
use pincer_core::{Config, SharedClock, Supervisor};
use pincer_cron::{Origin, Route};
use pincer_delivery::{Outbox, TooLong};
use pincer_protocol::state::{ConnectionState, OriginKind};
use pincer_store::{Store, Tx};
use serde::Serialize;
use tokio::sync::{Notify, watch};

/// What the inbound side needs from the gateway.
pub struct ChatDeps {
    pub store: Store,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    pub agents: Agents,
    pub outbox: Outbox,
    pub supervisor: Supervisor,
    /// The registered channels with an inbound side (`ChannelSpec::inbound`).
    pub channels: Vec<&'static str>,
}

/// One channel's inbound connection, for `health`, `channels.status` and `doctor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub channel: String,
    pub state: ConnectionState,
    /// The bot's name once the platform told it (`@name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at_ms: Option<i64>,
    /// While in `backoff`: when the next attempt starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<i64>,
    /// How it listens: `polling`, `webhook` or `socket`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// When a poll last answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll_at_ms: Option<i64>,
    /// Failed attempts in a row.
    pub failures: u32,
}

/// A message the bot sends into a chat through the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The outbox idempotency key: the same reply is enqueued once.
    pub key: String,
    pub chat_id: String,
    pub thread_id: Option<String>,
    /// The platform message it quotes.
    pub reply_to: Option<String>,
    pub text: String,
}

/// The inbound chat service; the gateway holds it.
pub struct Chat {
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    /// The running configuration; a reload replaces it ([`Chat::reconfigure`]).
    config: RwLock<Arc<Config>>,
    pub(crate) agents: Agents,
    pub(crate) outbox: Outbox,
    /// The gateway is stopping: every listener and the turn dispatcher end.
    pub(crate) stop: watch::Sender<bool>,
    states: Mutex<BTreeMap<String, ChannelStatus>>,
    /// Wakes the turn dispatcher: a message was stored, or a session's worker ended.
    wake: Notify,
    /// Sessions with a worker running.
    busy: Mutex<HashSet<String>>,
    /// Typing indicators, per channel.
    typing: RwLock<HashMap<&'static str, Arc<TypingApi>>>,
    /// Telegram's bot `(id, username)` once `getMe` answered (the webhook needs it).
    pub(crate) telegram_bot: Mutex<Option<(i64, String)>>,
    supervisor: Supervisor,
    /// The registered channels with an inbound side.
    channels: Vec<&'static str>,
    /// The running listener of each channel, with the settings it was started with.
    listeners: Mutex<HashMap<&'static str, Listener>>,
    /// The turn dispatcher, once a listener has been started.
    dispatcher: Mutex<Option<Task>>,
}

/// One channel's listener: its own stop signal (a reload stops it without stopping the rest),
/// its supervised task, and its settings.
struct Listener {
    stop: watch::Sender<bool>,
    task: Task,
    settings: ChannelSettings,
}

/// A channel's inbound settings, as a listener was started with them.
#[derive(Clone, PartialEq)]
enum ChannelSettings {
    Telegram(pincer_core::config::TelegramConfig),
    Slack(pincer_core::config::SlackConfig),
    Discord(pincer_core::config::DiscordConfig),
}

impl Listener {
    /// Stopped or failed for good: a reload starts it again even with the same settings.
    fn ended(&self) -> bool {
        matches!(
            self.task.report().state,
            pincer_protocol::schema::system::TaskState::Stopped | pincer_protocol::schema::system::TaskState::Failed
        )
    }
}

/// What [`Chat::reconfigure`] did to each channel's listener.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relisten {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
}

/// A platform's "the bot is typing" call (best effort: a failure only loses the indicator).
pub(crate) enum TypingApi {
    Telegram(telegram::BotApi),
    Discord(discord::TypingIndicator),
}

impl TypingApi {
    pub(crate) async fn typing(&self, chat_id: &str, thread_id: Option<&str>) {
        match self {
            TypingApi::Telegram(api) => api.typing(chat_id, thread_id).await,
            TypingApi::Discord(api) => api.typing(chat_id).await,
        }
    }
}

/// What a write closure needs to enqueue a reply (the closure outlives the borrow of [`Chat`]).
pub(crate) struct ReplyWriter {
    outbox: Outbox,
    now_ms: i64,
}

impl ReplyWriter {
    /// Renders `reply` and enqueues it in `tx`; `None` when there is nothing to send.
    pub(crate) fn enqueue_in(&self, tx: &Tx<'_>, channel: &str, reply: &Reply) -> pincer_store::Result<Option<String>> {
        let route = Route {
            channel: channel.to_string(),
            to: reply.chat_id.clone(),
            thread_id: reply.thread_id.clone(),
            account_id: None,
            source: "inbound".into(),
        };
        let origin = Origin { kind: OriginKind::Reply, id: None, best_effort: false };
        let mut d = match self.outbox.prepare(&route, &reply.text, &reply.key, &origin, None, TooLong::Truncate) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(channel, error = %e, "inbound: the reply cannot be sent");
                return Ok(None);
            }
        };
        d.created_at_ms = self.now_ms;
        let enqueued = tx.enqueue_delivery(&d)?;
        if let Some(message) = &reply.reply_to
            && enqueued.created
        {
            tx.set_delivery_reply_to(&enqueued.id, message)?;
        }
        Ok(Some(enqueued.id))
    }
}

impl Chat {
    /// Starts the inbound side of every configured chat channel that has one (Telegram, Slack, Discord), under
    /// the supervisor, and the turn dispatcher.
    pub fn start(deps: ChatDeps) -> Arc<Chat> {
        let ChatDeps { store, clock, config, agents, outbox, supervisor, channels } = deps;
        let chat = Arc::new(Chat {
            store,
            clock,
            config: RwLock::new(config.clone()),
            agents,
            outbox,
            stop: watch::Sender::new(false),
            states: Mutex::default(),
            wake: Notify::new(),
            busy: Mutex::default(),
            typing: RwLock::default(),
            telegram_bot: Mutex::default(),
            supervisor,
            channels,
            listeners: Mutex::default(),
            dispatcher: Mutex::default(),
        });
        for channel in [telegram::CHANNEL, slack::CHANNEL, discord::CHANNEL] {
            if let Some(settings) = chat.settings(&config, channel) {
                chat.listen(channel, settings);
            }
        }
        chat
    }

    /// The typing indicator of `channel`, if it has one.
    pub(crate) fn typing(&self, channel: &str) -> Option<Arc<TypingApi>> {
        self.typing.read().expect("typing apis").get(channel).cloned()
    }

    /// The running configuration.
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.read().expect("chat config").clone()
    }

    /// The inbound settings of `channel` in `config`, when it should listen: configured, with
    /// an outbound adapter to reply through, and (Slack) an app-level token for Socket Mode.
    fn settings(&self, config: &Config, channel: &'static str) -> Option<ChannelSettings> {
        if !self.channels.contains(&channel) || self.outbox.channel(channel).is_none() {
            return None;
        }
        let c = &config.channels;
        match channel {
            telegram::CHANNEL => c.telegram.clone().map(ChannelSettings::Telegram),
            // Slack listens only with an app-level token (Socket Mode); without one it stays outbound.
            slack::CHANNEL => c.slack.clone().filter(|s| s.app_token.is_some()).map(ChannelSettings::Slack),
            discord::CHANNEL => c.discord.clone().map(ChannelSettings::Discord),
            _ => None,
        }
    }

    /// Starts `channel`'s listener under the supervisor (and the turn dispatcher, once).
    fn listen(self: &Arc<Self>, channel: &'static str, settings: ChannelSettings) {
        let typing = match &settings {
            ChannelSettings::Telegram(tg) => telegram::BotApi::new(tg).ok().map(TypingApi::Telegram),
            ChannelSettings::Discord(dc) => discord::TypingIndicator::new(dc).ok().map(TypingApi::Discord),
            ChannelSettings::Slack(_) => None,
        };
        {
            let mut apis = self.typing.write().expect("typing apis");
            match typing {
                Some(api) => apis.insert(channel, Arc::new(api)),
                None => apis.remove(channel),
            };
        }
        self.set_state(channel, ConnectionState::Connecting, None, None);
        let stop = watch::Sender::new(*self.stop.borrow());
        let (c, rx) = (self.clone(), stop.subscribe());
        let task = match settings.clone() {
            ChannelSettings::Telegram(tg) => self
                .supervisor
                .spawn("telegram-inbound", false, move || telegram::poll_loop(c.clone(), tg.clone(), rx.clone())),
            ChannelSettings::Slack(sl) => self
                .supervisor
                .spawn("slack-inbound", false, move || slack::socket_loop(c.clone(), sl.clone(), rx.clone())),
            ChannelSettings::Discord(dc) => self
                .supervisor
                .spawn("discord-inbound", false, move || discord::gateway_loop(c.clone(), dc.clone(), rx.clone())),
        };
        self.listeners.lock().expect("listeners").insert(channel, Listener { stop, task, settings });
        let mut dispatcher = self.dispatcher.lock().expect("dispatcher");
        if dispatcher.is_none() {
            let c = self.clone();
            *dispatcher = Some(self.supervisor.spawn("chat-turns", false, move || turns::dispatch_loop(c.clone())));
        }
    }

    /// Applies a reloaded configuration: a channel whose inbound settings changed, or whose
    /// credentials were refused, gets a new listener (the old one is stopped first, so two
    /// never poll at once), a channel added to
    /// the file starts listening, one removed stops. Access rules, `session.*` and the rest are
    /// read from the new configuration by the next message. Call it after the outbox has its
    /// new lineup (a listener replies through it).
    pub async fn reconfigure(self: &Arc<Self>, next: Arc<Config>) -> Relisten {
        *self.config.write().expect("chat config") = next.clone();
        let mut done = Relisten::default();
        if *self.stop.borrow() {
            return done;
        }
        for channel in [telegram::CHANNEL, slack::CHANNEL, discord::CHANNEL] {
            let wanted = self.settings(&next, channel);
            // A refused token or intent may have been fixed outside the file (the platform's
            // settings): a reload tries a rejected channel again even with the same settings.
            let rejected = self
                .states
                .lock()
                .expect("chat states")
                .get(channel)
                .is_some_and(|s| s.state == ConnectionState::CredentialsRejected);
            let old = {
                let mut listeners = self.listeners.lock().expect("listeners");
                match (listeners.get(channel), &wanted) {
                    (Some(l), Some(w)) if l.settings == *w && !l.ended() && !rejected => continue,
                    (None, None) => continue,
                    _ => listeners.remove(channel),
                }
            };
            let had = old.is_some();
            if let Some(old) = old {
                old.stop.send_replace(true);
                // Two pollers on one token would fight (Telegram answers the second 409).
                if tokio::time::timeout(std::time::Duration::from_secs(10), old.task.finished()).await.is_err() {
                    tracing::warn!(channel, "the old listener did not stop within 10 s; starting the new one anyway");
                }
            }
            match wanted {
                Some(settings) => {
                    self.listen(channel, settings);
                    if had { &mut done.restarted } else { &mut done.started }.push(channel.to_string());
                }
                None => {
                    self.typing.write().expect("typing apis").remove(channel);
                    self.states.lock().expect("chat states").remove(channel);
                    done.stopped.push(channel.to_string());
                }
            }
        }
        done
    }

    /// Stops polling; turns in flight finish on their own.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
        for l in self.listeners.lock().expect("listeners").values() {
            l.stop.send_replace(true);
        }
        let mut states = self.states.lock().expect("chat states");
        for s in states.values_mut() {
            if s.state != ConnectionState::CredentialsRejected {
                s.state = ConnectionState::Stopped;
            }
        }
    }

    /// Each channel's inbound connection.
    pub fn status(&self) -> Vec<ChannelStatus> {
        self.states.lock().expect("chat states").values().cloned().collect()
    }

    pub(crate) fn set_state(&self, channel: &str, state: ConnectionState, error: Option<String>, next: Option<i64>) {
        let now = self.clock.now_ms();
        let mut states = self.states.lock().expect("chat states");
        let s = states.entry(channel.to_string()).or_insert_with(|| ChannelStatus {
            channel: channel.to_string(),
            state,
            bot: None,
            last_error: None,
            last_error_at_ms: None,
            next_attempt_at_ms: None,
            mode: None,
            last_poll_at_ms: None,
            failures: 0,
        });
        s.state = state;
        s.next_attempt_at_ms = next;
        if let Some(e) = error {
            s.last_error = Some(e);
            s.last_error_at_ms = Some(now);
        }
    }

    pub(crate) fn set_bot(&self, channel: &str, bot: String) {
        if let Some(s) = self.states.lock().expect("chat states").get_mut(channel) {
            s.bot = Some(bot);
        }
    }

    pub(crate) fn set_mode(&self, channel: &str, mode: &str) {
        if let Some(s) = self.states.lock().expect("chat states").get_mut(channel) {
            s.mode = Some(mode.to_string());
        }
    }

    /// A Telegram webhook request (the gateway serves `channels.telegram.webhookUrl`'s path).
    pub async fn telegram_webhook(self: &Arc<Self>, secret: Option<&str>, body: &[u8]) -> telegram::WebhookAnswer {
        telegram::webhook_update(self, secret, body).await
    }

    pub(crate) fn note_poll(&self, channel: &str) {
        let now = self.clock.now_ms();
        if let Some(s) = self.states.lock().expect("chat states").get_mut(channel) {
            s.last_poll_at_ms = Some(now);
            s.failures = 0;
        }
    }

    /// Waits out the backoff after a failure (on the clock); `false` when stopped meanwhile.
    pub(crate) async fn backoff(
        &self,
        channel: &str,
        failures: &mut usize,
        error: String,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let wait = telegram::BACKOFF_MS[(*failures).min(telegram::BACKOFF_MS.len() - 1)];
        *failures += 1;
        let next = self.clock.now_ms().saturating_add(wait);
        self.set_state(channel, ConnectionState::Backoff, Some(error), Some(next));
        if let Some(s) = self.states.lock().expect("chat states").get_mut(channel) {
            s.failures = *failures as u32;
        }
        tokio::select! {
            _ = self.clock.sleep_until(next) => true,
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    /// The short session key (`main`, `session:…`) of a message, by `session.dmScope`.
    pub(crate) fn session_for(
        &self,
        channel: &str,
        group: bool,
        chat_id: &str,
        thread: Option<i64>,
        sender: &str,
    ) -> String {
        if group {
            return match thread {
                Some(t) => format!("session:{channel}:group:{chat_id}:topic:{t}"),
                None => format!("session:{channel}:group:{chat_id}"),
            };
        }
        match self.config().session.dm_scope {
            DmScope::Main => "main".into(),
            DmScope::PerPeer => format!("session:direct:{sender}"),
            DmScope::PerChannelPeer => format!("session:{channel}:direct:{sender}"),
        }
    }

    /// The full key (`agent:main:…`) of a short one.
    pub(crate) fn full_key(short: &str) -> String {
        SessionRef::from_request(Some(short), None, "inbound").map(|s| s.key).unwrap_or_else(|_| short.to_string())
    }

    pub(crate) fn wake_turns(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn kick_outbox(&self) {
        self.outbox.kick();
    }

    pub(crate) fn clone_for_write(&self) -> ReplyWriter {
        ReplyWriter { outbox: self.outbox.clone(), now_ms: self.clock.now_ms() }
    }
}
