//! The chat methods — `chat.send`, `chat.abort`, `chat.metadata` — and the streams every
//! interactive run writes: OpenClaw's `agent` events (`lifecycle`, `assistant` deltas) and its
//! `chat` events (`delta` with the text so far, then one of `final`, `aborted`, `error`), plus
//! `session.message` for the connections that subscribed to the session.
//!
//! A `chat.send` run is registered here while it runs, so `chat.abort` can stop it: the model
//! call is dropped, the partial reply is recorded as an aborted turn (`meta.aborted`), and the
//! abort answers once that record is committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use pincer_core::{EventBus, SharedClock};
use pincer_protocol::schema::Method;
use pincer_protocol::schema::agent::Usage;
use pincer_protocol::schema::chat::{
    self as wire, ChatAbortParams, ChatAbortResult, ChatEvent, ChatEventMessage, ChatMetadataParams,
    ChatMetadataResult, ChatModel, ChatSendParams, ChatSendResult,
};
use pincer_protocol::schema::sessions::ContentPart;
use pincer_protocol::state::{ChatSendStatus, ChatState, ErrorClass};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::api::{AGENT_TIMEOUT_S, ApiError};
use crate::prompt;
use crate::service::{Agents, Inner};
use crate::session::{SessionKind, SessionRef};
use crate::turn::{Input, Turn, TurnError};

/// Where an abort request waits for the run to have recorded its end: `true` when the run was
/// aborted, `false` when its final reply had been committed before the abort could land.
type AbortAck = oneshot::Sender<bool>;

/// The `chat.send` runs in progress, by run id.
#[derive(Default)]
pub(crate) struct ActiveChats(Mutex<HashMap<String, ActiveChat>>);

struct ActiveChat {
    session_key: String,
    abort: oneshot::Sender<AbortAck>,
}

impl ActiveChats {
    /// Whether `run_id` is a `chat.send` run still going.
    pub(crate) fn running(&self, run_id: &str) -> bool {
        self.lock().contains_key(run_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ActiveChat>> {
        self.0.lock().expect("active chats")
    }
}

fn invalid(method: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid(pincer_protocol::schema::ParamsError::new(method, message).0)
}

/// `chat.send`: records the message and starts the turn; answers `{runId, status: "started"}`
/// at once. The turn waits for `answered` (the gateway has queued this answer) before it streams,
/// so the caller sees the answer before the run's first event.
pub async fn chat_send(
    agents: &Agents,
    p: ChatSendParams,
    answered: BoxFuture<'static, ()>,
) -> Result<ChatSendResult, ApiError> {
    const M: &str = wire::ChatSend::NAME;
    let message = p.message.trim().to_string();
    if message.is_empty() {
        return Err(invalid(M, "message: must not be empty"));
    }
    if p.deliver == Some(true) {
        return Err(invalid(
            M,
            "deliver: not supported by Pincer: the reply streams back as chat events; to send results to a channel, use a cron job with --announce",
        ));
    }
    let run_id = p.idempotency_key.trim().to_string();
    if run_id.is_empty() {
        return Err(invalid(M, "idempotencyKey: must not be empty"));
    }
    let session =
        SessionRef::from_request(Some(&p.session_key), p.agent_id.as_deref(), &run_id).map_err(|e| invalid(M, e))?;
    if session.kind == SessionKind::Isolated {
        return Err(invalid(M, "sessionKey: a chat needs a conversation to continue; use main or session:<id>"));
    }
    let inner = agents.inner.clone();
    if let Some(wanted) = p.session_id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
        let key = session.key.clone();
        let current = inner.store.read(move |rd| rd.get_session(&key)).await?.map(|row| row.session_id);
        if let Some(current) = current.filter(|c| c != wanted) {
            return Err(invalid(
                M,
                format!(
                    "sessionId: \"{wanted}\" is no longer the current transcript of {} (now \"{current}\": it was reset); reload and send again",
                    session.key
                ),
            ));
        }
    }
    let answer = |status: ChatSendStatus| ChatSendResult {
        run_id: run_id.clone(),
        status,
        session_key: session.key.clone(),
        extra: Map::new(),
    };
    if inner.chats.lock().contains_key(&run_id) {
        return Ok(answer(ChatSendStatus::InFlight));
    }
    let chain = inner.session_chain(&session.key, None).await.map_err(|e| ApiError::Failed {
        message: e,
        reason: ErrorClass::ModelNotFound.into(),
        run_id: run_id.clone(),
    })?;
    let now = inner.clock.now_ms();
    let deadline_ms = match p.timeout_ms.unwrap_or(AGENT_TIMEOUT_S * 1000) {
        0 => None,
        ms => Some(now.saturating_add(ms.min(i64::MAX as u64) as i64)),
    };
    let tools = inner.turn_tools(&[]);
    let turn = Turn {
        system: inner.compose_system(prompt::chat_system(now, &inner.default_tz, None), &tools),
        tools,
        requester: crate::api::Requester::Owner,
        input: Input::Message { text: message, meta: json!({"runId": run_id, "source": "chat.send"}), replay: false },
        chain,
        deadline_ms,
        run_id: run_id.clone(),
        kind: "chat",
        session: session.clone(),
        reply_outbox: None,
    };
    let (abort_tx, abort_rx) = oneshot::channel();
    {
        let mut chats = inner.chats.lock();
        if chats.contains_key(&run_id) {
            return Ok(answer(ChatSendStatus::InFlight));
        }
        chats.insert(run_id.clone(), ActiveChat { session_key: session.key.clone(), abort: abort_tx });
    }
    // A task of its own: the turn finishes and is recorded even if the caller leaves.
    let (task_inner, task_run) = (inner.clone(), run_id.clone());
    tokio::spawn(async move {
        answered.await;
        run_chat(&task_inner, turn, abort_rx).await;
        task_inner.chats.lock().remove(&task_run);
    });
    Ok(answer(ChatSendStatus::Started))
}

/// Runs a `chat.send` turn to its end — final, error, or aborted — streaming it.
async fn run_chat(inner: &Arc<Inner>, turn: Turn, abort: oneshot::Receiver<AbortAck>) {
    let (run_id, session_key) = (turn.run_id.clone(), turn.session.key.clone());
    let stream = RunStream::new(&inner.events, &inner.clock, &run_id, &session_key);
    stream.start();
    let on_delta = |delta: &str| stream.delta(delta);
    let on_tool = |data: Value| stream.agent("tool", data);
    let on_recorded = |row: &pincer_store::TranscriptRow| stream.recorded(row);
    let outcome = tokio::select! {
        result = inner.run_turn(turn, &on_delta, &on_tool, &on_recorded) => Ok(result),
        ack = abort => Err(ack.ok()),
    };
    match outcome {
        Ok(Ok(Some(out))) => stream.end(&out.text, &out.model.to_string(), out.usage),
        Ok(Ok(None)) => stream.fail("nothing was recorded", ErrorClass::Unknown),
        Ok(Err(e)) => {
            let class = match &e {
                TurnError::Model { error, .. } => error.class,
                TurnError::NoModel(_) => ErrorClass::ModelNotFound,
                TurnError::ToolSteps { .. } | TurnError::Store(_) => ErrorClass::Unknown,
            };
            stream.fail(&e.to_string(), class);
        }
        Err(ack) => {
            let partial = stream.text();
            let aborted = match record_abort(inner, &session_key, &run_id, &partial).await {
                // The abort landed while the final reply was being written: the run finished.
                Ok(Some(reply)) => {
                    let meta: Value =
                        reply.meta_json.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
                    let usage: Usage = serde_json::from_value(meta["usage"].clone()).unwrap_or_default();
                    stream.end(&reply.content, meta["model"].as_str().unwrap_or_default(), usage);
                    // The turn was dropped before it could announce its committed reply.
                    stream.recorded(&reply);
                    false
                }
                Ok(None) => {
                    stream.aborted(&partial);
                    true
                }
                Err(e) => {
                    tracing::warn!(session = %session_key, run = %run_id, error = %e, "the aborted turn was not recorded");
                    stream.aborted(&partial);
                    true
                }
            };
            if let Some(ack) = ack {
                let _ = ack.send(aborted);
            }
        }
    }
}

/// Records an aborted turn: the partial reply (or a note when there was none), marked `aborted` —
/// unless the run's final reply is already in the transcript (the turn's write was queued before
/// the abort dropped it, and the one writer commits in order), which is then returned instead.
async fn record_abort(
    inner: &Inner,
    key: &str,
    run_id: &str,
    partial: &str,
) -> Result<Option<pincer_store::TranscriptRow>, ApiError> {
    // Serialised with the session's turns, so the record never lands inside another turn.
    let _serial = inner.lock_session(key).await;
    let now = inner.clock.now_ms();
    let meta = json!({"runId": run_id, "aborted": true, "stopReason": "rpc"}).to_string();
    let (role, text) = match partial.is_empty() {
        true => ("system", "The turn was aborted before the model answered.".to_string()),
        false => ("assistant", partial.to_string()),
    };
    let (key, run_id) = (key.to_string(), run_id.to_string());
    let reply = inner
        .store
        .write(move |tx| {
            if let Some(reply) = tx.final_reply_of_run(&key, &run_id)? {
                return Ok(Some(reply));
            }
            tx.append_transcript(&key, role, &text, now, Some(&meta))?;
            Ok(None)
        })
        .await?;
    Ok(reply)
}

/// `chat.abort`: stops the session's running `chat.send` turns (or the one `runId` names) and
/// answers once each has recorded its aborted turn. `aborted: false` when nothing was running.
pub async fn chat_abort(agents: &Agents, p: ChatAbortParams) -> Result<ChatAbortResult, ApiError> {
    const M: &str = wire::ChatAbort::NAME;
    let session =
        SessionRef::from_request(Some(&p.session_key), p.agent_id.as_deref(), "").map_err(|e| invalid(M, e))?;
    let stopping: Vec<(String, oneshot::Sender<AbortAck>)> = {
        let mut chats = agents.inner.chats.lock();
        if let Some(run_id) = &p.run_id
            && let Some(run) = chats.get(run_id)
            && run.session_key != session.key
        {
            return Err(invalid(
                M,
                format!("runId: run {run_id} belongs to session {}, not {}", run.session_key, session.key),
            ));
        }
        let ids: Vec<String> = chats
            .iter()
            .filter(|(id, run)| run.session_key == session.key && p.run_id.as_ref().is_none_or(|want| want == *id))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter().filter_map(|id| chats.remove(&id).map(|run| (id, run.abort))).collect()
    };
    let mut run_ids = Vec::new();
    for (id, abort) in stopping {
        let (ack_tx, ack_rx) = oneshot::channel();
        // A failed send or a dropped ack: the run ended on its own meanwhile (final or error).
        if abort.send(ack_tx).is_ok() && ack_rx.await == Ok(true) {
            run_ids.push(id);
        }
    }
    Ok(ChatAbortResult { ok: true, aborted: !run_ids.is_empty(), run_ids, extra: Map::new() })
}

/// `chat.metadata`: the agent, the model a new turn would use, and the configured models.
pub async fn chat_metadata(agents: &Agents, p: ChatMetadataParams) -> Result<ChatMetadataResult, ApiError> {
    const M: &str = wire::ChatMetadata::NAME;
    let inner = &agents.inner;
    let config = inner.config();
    let mut model = config.agents.defaults.model.primary.clone();
    let mut agent_id = p.agent_id.clone().unwrap_or_else(|| pincer_cron::job::DEFAULT_AGENT.to_string());
    let mut session_key = None;
    if let Some(key) = &p.session_key {
        let session = SessionRef::from_request(Some(key), p.agent_id.as_deref(), "").map_err(|e| invalid(M, e))?;
        let lookup = session.key.clone();
        if let Some(row) = inner.store.read(move |rd| rd.get_session(&lookup)).await?
            && row.model.is_some()
        {
            model = row.model;
        }
        agent_id = session.agent_id;
        session_key = Some(session.key);
    }
    let mut models = Vec::new();
    for (provider, config) in &config.models.providers {
        for m in &config.models {
            models.push(ChatModel {
                id: format!("{provider}/{}", m.id),
                name: m.id.clone(),
                provider: provider.clone(),
            });
        }
    }
    Ok(ChatMetadataResult { agent_id, session_key, model, models, commands: vec![], extra: Map::new() })
}

/// The events of one interactive run, in OpenClaw's shapes: `agent` events
/// `{runId, seq, stream, ts, sessionKey, data}` to `operator.write` connections, `chat` events
/// ([`ChatEvent`]) and `session.message` to `operator.read` ones.
pub(crate) struct RunStream<'a> {
    events: &'a EventBus,
    clock: &'a SharedClock,
    run_id: &'a str,
    session_key: &'a str,
    seq: AtomicU64,
    chat_seq: AtomicU64,
    text: Mutex<String>,
}

impl<'a> RunStream<'a> {
    pub(crate) fn new(events: &'a EventBus, clock: &'a SharedClock, run_id: &'a str, session_key: &'a str) -> Self {
        RunStream {
            events,
            clock,
            run_id,
            session_key,
            seq: AtomicU64::new(0),
            chat_seq: AtomicU64::new(0),
            text: Mutex::default(),
        }
    }

    pub(crate) fn agent(&self, stream: &str, data: Value) {
        let payload = json!({
            "runId": self.run_id, "seq": self.seq.fetch_add(1, Ordering::SeqCst), "stream": stream,
            "ts": self.clock.now_ms(), "sessionKey": self.session_key, "data": data,
        });
        self.events.emit("agent", payload, Some("operator.write"));
    }

    fn message(&self, role: &str, text: &str) -> ChatEventMessage {
        ChatEventMessage {
            role: role.into(),
            content: vec![ContentPart { kind: "text".into(), text: text.into() }],
            timestamp: self.clock.now_ms(),
        }
    }

    fn chat(&self, state: ChatState, fill: impl FnOnce(&mut ChatEvent)) {
        let mut event = ChatEvent {
            run_id: self.run_id.into(),
            session_key: self.session_key.into(),
            seq: self.chat_seq.fetch_add(1, Ordering::SeqCst) + 1,
            state,
            message: None,
            delta_text: None,
            usage: None,
            stop_reason: None,
            error_message: None,
            error_kind: None,
        };
        fill(&mut event);
        let payload = serde_json::to_value(event).expect("chat events serialise");
        self.events.emit("chat", payload, Some("operator.read"));
    }

    /// `session.message` for a transcript entry just committed, as OpenClaw sends it: the entry
    /// as `chat.history` shows it (`__openclaw.seq`, the user message's `idempotencyKey`) and its
    /// `messageSeq`. Sent only once the entry is in the transcript: OpenClaw's Control UI reloads
    /// the history when the user's message arrives, and drops its own copy of the sent message
    /// if the history does not have it yet.
    pub(crate) fn recorded(&self, row: &pincer_store::TranscriptRow) {
        if row.role != "user" && row.role != "assistant" {
            return;
        }
        let agent_id = SessionRef::from_key(self.session_key).map(|s| s.agent_id);
        let mut payload = json!({
            "sessionKey": self.session_key, "message": crate::api::message_view(row), "messageSeq": row.seq,
            "runId": self.run_id,
        });
        if let Some(agent_id) = agent_id {
            payload["agentId"] = agent_id.into();
        }
        self.events.emit("session.message", payload, Some("operator.read"));
    }

    /// The run started (its `session.message` follows once the user's message is committed).
    pub(crate) fn start(&self) {
        self.agent("lifecycle", json!({"phase": "start", "startedAt": self.clock.now_ms()}));
    }

    /// A streamed piece of the reply.
    pub(crate) fn delta(&self, delta: &str) {
        let text = {
            let mut text = self.text.lock().expect("streamed text");
            text.push_str(delta);
            text.clone()
        };
        self.agent("assistant", json!({"text": text, "delta": delta}));
        self.chat(ChatState::Delta, |e| {
            e.message = Some(self.message("assistant", &text));
            e.delta_text = Some(delta.into());
        });
    }

    /// The text streamed so far.
    pub(crate) fn text(&self) -> String {
        self.text.lock().expect("streamed text").clone()
    }

    /// The reply is complete and recorded.
    pub(crate) fn end(&self, text: &str, model: &str, usage: Usage) {
        let now = self.clock.now_ms();
        self.agent("lifecycle", json!({"phase": "end", "endedAt": now, "text": text, "model": model, "usage": usage}));
        self.chat(ChatState::Final, |e| {
            e.message = Some(self.message("assistant", text));
            e.usage = Some(usage);
            e.stop_reason = Some("stop".into());
        });
    }

    /// The turn failed (already recorded by the turn runner).
    pub(crate) fn fail(&self, error: &str, class: ErrorClass) {
        self.agent(
            "lifecycle",
            json!({"phase": "error", "endedAt": self.clock.now_ms(), "error": error, "errorReason": class.as_str()}),
        );
        self.chat(ChatState::Error, |e| {
            e.error_message = Some(error.into());
            e.error_kind = Some(class.into());
        });
    }

    /// The run was stopped by `chat.abort`; `partial` is what had streamed.
    pub(crate) fn aborted(&self, partial: &str) {
        self.agent("lifecycle", json!({"phase": "end", "endedAt": self.clock.now_ms(), "aborted": true}));
        self.chat(ChatState::Aborted, |e| {
            e.message = (!partial.is_empty()).then(|| self.message("assistant", partial));
            e.stop_reason = Some("rpc".into());
        });
    }
}
