//! Fake Discord Gateway (v10, JSON) on 127.0.0.1: Hello, Identify → READY, Resume → replay +
//! RESUMED, heartbeat acks, dispatches of `MESSAGE_CREATE` pushed by the test, and the faults a
//! test scripts: drop the connection, close with a code, invalidate the session, stop acking
//! heartbeats. One bot, one session at a time; dispatches pushed while no connection is open wait
//! in the session and reach the client when it resumes (as Discord replays them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::discord::FakeDiscord;
use super::socket::{Command, Next, Socket, WsServer};

/// The fake bot's user id (what READY says; mention it as `<@id>`).
pub const BOT_ID: &str = "1100000000000000001";

/// What the fake saw, for the test to check.
#[derive(Debug, Clone, Default)]
pub struct GatewayLog {
    /// Identify payloads (`d`), in order.
    pub identifies: Vec<Value>,
    /// Resume payloads (`d`), in order.
    pub resumes: Vec<Value>,
    /// Heartbeats received.
    pub heartbeats: usize,
    /// Connections opened, and the path and query of each.
    pub connections: Vec<String>,
}

#[derive(Default)]
struct State {
    log: GatewayLog,
    /// The live session id; `None` before the first identify or after an invalidation.
    session: Option<String>,
    /// The session's dispatches, `(seq, payload)`.
    events: Vec<(i64, Value)>,
    sessions: u64,
    next_message: u64,
    heartbeat_ms: u64,
    ack_heartbeats: bool,
    /// Replay every dispatch of the session on resume, whatever `seq` says (a worst case).
    replay_all: bool,
    token: String,
}

/// The fake gateway; pair it with [`FakeDiscord`] for REST.
pub struct FakeDiscordGateway {
    server: WsServer,
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
}

impl FakeDiscordGateway {
    /// Starts the fake; it accepts [`FakeDiscord::TOKEN`] and asks for heartbeats every 45 s.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            heartbeat_ms: 45_000,
            ack_heartbeats: true,
            token: FakeDiscord::TOKEN.into(),
            next_message: 1_400_000_000_000_000_000,
            ..State::default()
        }));
        let changed = Arc::new(tokio::sync::Notify::new());
        let url = Arc::new(Mutex::new(String::new()));
        let (s, c, u) = (state.clone(), changed.clone(), url.clone());
        let server = WsServer::start(move |socket, commands| {
            let (s, c, u) = (s.clone(), c.clone(), u.lock().unwrap().clone());
            session(socket, commands, s, c, u)
        })
        .await;
        *url.lock().unwrap() = server.url();
        FakeDiscordGateway { server, state, changed }
    }

    /// The `gatewayUrl` to configure: `ws://127.0.0.1:<port>` (or attach it to the REST fake with `FakeDiscord::attach_gateway`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The heartbeat interval Hello announces.
    pub fn set_heartbeat_interval(&self, interval: Duration) {
        self.state.lock().unwrap().heartbeat_ms = interval.as_millis() as u64;
    }

    /// Whether heartbeats are acknowledged (off: the connection looks like a zombie).
    pub fn set_ack_heartbeats(&self, on: bool) {
        self.state.lock().unwrap().ack_heartbeats = on;
    }

    /// On resume, replay every dispatch of the session, not only those after `seq`.
    pub fn set_replay_all(&self, on: bool) {
        self.state.lock().unwrap().replay_all = on;
    }

    /// From now on the bot token is refused: identify and resume are closed with 4004.
    pub fn revoke_token(&self) {
        self.state.lock().unwrap().token = "revoked".into();
    }

    /// Dispatches a `MESSAGE_CREATE` with `d` = `message` (its `id` assigned if missing); returns
    /// the message id.
    pub fn push_message(&self, mut message: Value) -> String {
        let id = {
            let mut state = self.state.lock().unwrap();
            if message["id"].is_null() {
                state.next_message += 1;
                message["id"] = json!(state.next_message.to_string());
            }
            message["id"].as_str().unwrap_or_default().to_string()
        };
        self.push_dispatch("MESSAGE_CREATE", message);
        id
    }

    /// Dispatches event `t` with `d` (e.g. `THREAD_UPDATE`, `CHANNEL_DELETE`), in sequence with
    /// the messages.
    pub fn push_dispatch(&self, t: &str, d: Value) {
        {
            let mut state = self.state.lock().unwrap();
            let seq = state.events.last().map_or(1, |(s, _)| s + 1);
            state.events.push((seq, json!({ "op": 0, "t": t, "s": seq, "d": d })));
        }
        self.server.command(Command::Poke);
    }

    /// Drops every open connection without a close frame.
    pub fn drop_connections(&self) {
        self.server.command(Command::Drop);
    }

    /// Closes every open connection with `code`.
    pub fn close(&self, code: u16, reason: &str) {
        self.server.command(Command::Close(code, reason.into()));
    }

    /// Sends op 9 Invalid Session (`resumable`: `d`) on every open connection; a non-resumable
    /// one also ends the session here.
    pub fn invalidate_session(&self, resumable: bool) {
        if !resumable {
            let mut state = self.state.lock().unwrap();
            state.session = None;
            state.events.clear();
        }
        self.server.command(Command::Send(json!({ "op": 9, "d": resumable })));
    }

    /// What the fake saw so far.
    pub fn log(&self) -> GatewayLog {
        self.state.lock().unwrap().log.clone()
    }

    /// Waits until `ready` holds for the log.
    pub async fn wait_for(&self, what: &str, timeout: Duration, ready: impl Fn(&GatewayLog) -> bool) -> GatewayLog {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let log = self.log();
            if ready(&log) {
                return log;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {what}: {:?}", self.log());
            }
        }
    }
}

/// A DM `MESSAGE_CREATE` from `user` in DM channel `channel`.
pub fn dm(channel: &str, user: &str, text: &str) -> Value {
    json!({
        "type": 0, "channel_id": channel, "content": text, "mentions": [],
        "author": { "id": user, "username": format!("user{user}") },
    })
}

/// A guild `MESSAGE_CREATE`; `mention` puts `<@bot>` in front of the text.
pub fn guild(guild: &str, channel: &str, user: &str, text: &str, mention: bool) -> Value {
    let (content, mentions) = if mention {
        (format!("<@{BOT_ID}> {text}"), json!([{ "id": BOT_ID, "username": FakeDiscord::BOT_NAME }]))
    } else {
        (text.to_string(), json!([]))
    };
    json!({
        "type": 0, "guild_id": guild, "channel_id": channel, "content": content, "mentions": mentions,
        "author": { "id": user, "username": format!("user{user}") },
    })
}

async fn session(
    mut socket: Socket,
    mut commands: broadcast::Receiver<Command>,
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
    url: String,
) {
    let heartbeat_ms = {
        let mut s = state.lock().unwrap();
        s.log.connections.push(socket.path.clone());
        s.heartbeat_ms
    };
    changed.notify_waiters();
    if !socket.send(&json!({ "op": 10, "d": { "heartbeat_interval": heartbeat_ms } })).await {
        return;
    }
    // The last seq this connection sent; `None` until identified or resumed.
    let mut sent: Option<i64> = None;
    loop {
        let next = socket.next(&mut commands).await;
        let mut out: Vec<Value> = Vec::new();
        let mut close: Option<(u16, &'static str)> = None;
        match next {
            Next::Gone => return,
            Next::Command(Command::Drop) => return,
            Next::Command(Command::Close(code, reason)) => {
                socket.close(code, &reason).await;
                return;
            }
            Next::Command(Command::Send(v)) => out.push(v),
            Next::Command(Command::Poke) => {}
            Next::Frame(frame) => {
                let mut s = state.lock().unwrap();
                let d = frame["d"].clone();
                match frame["op"].as_u64() {
                    Some(1) => {
                        s.log.heartbeats += 1;
                        if s.ack_heartbeats {
                            out.push(json!({ "op": 11 }));
                        }
                    }
                    Some(2) => {
                        s.log.identifies.push(d.clone());
                        if d["token"] != s.token.as_str() {
                            close = Some((4004, "Authentication failed."));
                        } else {
                            s.sessions += 1;
                            let id = format!("fake-session-{}", s.sessions);
                            s.session = Some(id.clone());
                            // A new session: earlier dispatches are not delivered; seq starts over.
                            s.events.clear();
                            let ready_seq = 1;
                            s.events.push((ready_seq, Value::Null));
                            out.push(json!({ "op": 0, "t": "READY", "s": ready_seq, "d": {
                                "v": 10, "session_id": id, "resume_gateway_url": url,
                                "user": { "id": BOT_ID, "username": FakeDiscord::BOT_NAME, "bot": true },
                                "guilds": [],
                            } }));
                            sent = Some(ready_seq);
                        }
                    }
                    Some(6) => {
                        s.log.resumes.push(d.clone());
                        if d["token"] != s.token.as_str() {
                            close = Some((4004, "Authentication failed."));
                        } else if s.session.is_none() || d["session_id"] != s.session.as_deref().unwrap_or_default() {
                            out.push(json!({ "op": 9, "d": false }));
                        } else {
                            let from = if s.replay_all { 0 } else { d["seq"].as_i64().unwrap_or(0) };
                            // The replay goes out below with the pending dispatches; RESUMED last.
                            let replay: Vec<Value> = s
                                .events
                                .iter()
                                .filter(|(seq, e)| *seq > from && !e.is_null())
                                .map(|(_, e)| e.clone())
                                .collect();
                            out.extend(replay);
                            let seq = s.events.last().map_or(from, |(seq, _)| *seq) + 1;
                            s.events.push((seq, Value::Null));
                            out.push(json!({ "op": 0, "t": "RESUMED", "s": seq, "d": {} }));
                            sent = Some(seq);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some((code, reason)) = close {
            changed.notify_waiters();
            socket.close(code, reason).await;
            return;
        }
        // Dispatches pushed since this connection last sent.
        if let Some(from) = sent {
            let s = state.lock().unwrap();
            for (seq, e) in &s.events {
                if *seq > from && !e.is_null() {
                    out.push(e.clone());
                }
            }
            sent = s.events.last().map(|(seq, _)| *seq).or(sent);
        }
        changed.notify_waiters();
        for v in out {
            if !socket.send(&v).await {
                return;
            }
        }
    }
}
