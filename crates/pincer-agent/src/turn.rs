//! The turn runner: one model call in one session. The input (a user message, or the session's
//! queued system events) is committed to the transcript first; the model sees the session's
//! recent history; the reply, its model and its usage are recorded when it is complete, a failure
//! as a `system` entry. An isolated session is finished when its turn ends, however it ends.

use pincer_core::{SharedClock, crashpoint, metrics};
use pincer_protocol::state::{RunErrorReason, RunFailure};
use pincer_store::{Store, StoreError};
use pincer_tools::{ToolContext, ToolSet};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::api::Requester;
use crate::models::ModelRef;
use crate::provider::{ChatMessage, ChatRequest, ErrorClass, OnDelta, ProviderError, ToolCall, ToolDef, Usage};
use crate::service::Inner;
use crate::session::{INTERRUPTED_RESULT, SessionKind, SessionRef, TOOL_RESULT_ROLE, conversation};

/// Receives the `agent` event stream's `tool` entries (`phase: start | result`).
pub(crate) type OnTool<'a> = &'a (dyn Fn(Value) + Send + Sync);

/// Receives the turn's user message and final reply once each is committed to the transcript
/// (the `session.message` events: a client that reloads the history on one finds the entry).
pub(crate) type OnRecorded<'a> = &'a (dyn Fn(&pincer_store::TranscriptRow) + Send + Sync);

/// Sends a turn's final reply on through the outbox (`agent` with `deliver`): the row is rendered
/// from the reply and committed in the same transaction as the reply's transcript entry, so a
/// crash leaves either neither or both — and the outbox sends what it has exactly once.
pub trait ReplyOutbox: Send + Sync {
    /// Renders the reply into an outbox row; `Err` says why it cannot be delivered (the reply is
    /// recorded all the same).
    /// Not called for a silent reply. `run_id` keys the row.
    fn prepare(&self, run_id: &str, text: &str) -> Result<pincer_store::NewDelivery, String>;
    /// After the commit: counts the row and wakes the dispatcher.
    fn committed(&self, enqueued: &pincer_store::Enqueued, channel: &str);
}

/// What became of a turn's reply sent on through a [`ReplyOutbox`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReplySent {
    /// Its outbox row (committed with the reply).
    Queued { delivery_id: String },
    /// A silent reply: nothing to send.
    Silent,
    /// It cannot be delivered (the reply is recorded): why.
    Failed(String),
}

/// What a turn adds to the transcript before calling the model.
pub(crate) enum Input {
    /// A user message, with what the transcript should remember about it. With `replay`, the
    /// run id is the caller's idempotency key: a run the transcript already has (re-run after a
    /// crash) does not record the message again and answers from its recorded reply.
    Message { text: String, meta: Value, replay: bool },
    /// The session's queued system events plus `extra`; a turn without any does nothing.
    Events { extra: Option<Event> },
}

/// A system event for a session.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub text: String,
    /// Who sent it: `cron:<jobId>`, `wake`, …
    pub source: Option<String>,
}

/// One turn to run.
pub(crate) struct Turn {
    pub session: SessionRef,
    pub system: String,
    pub input: Input,
    pub chain: Vec<ModelRef>,
    /// The run's time limit on the injected clock; the model call is cancelled there.
    pub deadline_ms: Option<i64>,
    pub run_id: String,
    /// `cron`, `event` or `chat`, for metrics.
    pub kind: &'static str,
    /// The tools the model is offered (already filtered by the policy).
    pub tools: ToolSet,
    /// Whom the turn acts for; its tools see it (`ToolContext::sender_is_owner`).
    pub requester: Requester,
    /// Where the final reply is sent on, committed with it (`agent` with `deliver`).
    pub reply_outbox: Option<std::sync::Arc<dyn ReplyOutbox>>,
}

/// What [`Inner::record_input`] found in the transcript.
enum Recorded {
    /// The history the turn sends, its input committed: the last `added` rows are new.
    History { rows: Vec<pincer_store::TranscriptRow>, added: usize },
    /// The run's final reply, recorded before (the run is a re-run).
    Answered(pincer_store::TranscriptRow),
}

/// A re-run's output from its recorded reply: the model and usage its entry recorded, no new
/// model call.
fn replayed(session_key: String, reply: pincer_store::TranscriptRow) -> TurnOutput {
    let meta: Value = reply.meta_json.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
    let model = meta["model"]
        .as_str()
        .and_then(ModelRef::parse)
        .unwrap_or_else(|| ModelRef { provider: "not-recorded".into(), model: "not-recorded".into() });
    let usage = serde_json::from_value(meta["usage"].clone()).unwrap_or_default();
    TurnOutput { session_key, text: reply.content, model, usage, attempts: 0, tool_calls: Vec::new(), sent: None }
}

/// A turn that got its answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TurnOutput {
    pub session_key: String,
    pub text: String,
    /// The model that answered.
    pub model: ModelRef,
    pub usage: Usage,
    /// Model calls made, retries and fallbacks included.
    pub attempts: usize,
    /// The tool calls made, in order (`{id, name, isError, errorClass?, durationMs}`).
    pub tool_calls: Vec<Value>,
    /// The reply sent on through the turn's [`ReplyOutbox`]; `None` without one, and for a re-run
    /// answered from its recorded reply.
    pub sent: Option<ReplySent>,
}

/// Why a turn did not get an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TurnError {
    #[error("{0}")]
    NoModel(String),
    /// The message names the model that failed; `model` is it, when known.
    #[error("{}", .error.message)]
    Model { error: ProviderError, model: Option<ModelRef>, tool_calls: Vec<Value> },
    /// The model kept calling tools past `agents.defaults.maxToolSteps`.
    #[error("{message}")]
    ToolSteps { message: String, model: ModelRef, tool_calls: Vec<Value> },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl TurnError {
    /// OpenClaw's error reason: the provider's error class, `model_not_found` without a model.
    pub fn reason(&self) -> RunErrorReason {
        match self {
            TurnError::NoModel(_) => ErrorClass::ModelNotFound.into(),
            TurnError::Model { error, .. } => error.class.into(),
            TurnError::ToolSteps { .. } => RunFailure::ToolSteps.into(),
            TurnError::Store(_) => RunFailure::Store.into(),
        }
    }

    /// The tool calls made before the turn failed.
    pub fn tool_calls(&self) -> &[Value] {
        match self {
            TurnError::Model { tool_calls, .. } | TurnError::ToolSteps { tool_calls, .. } => tool_calls,
            _ => &[],
        }
    }
}

impl Inner {
    /// Runs `turn`, passing streamed text to `on_delta` and tool calls and results to `on_tool`
    /// (the `agent` event stream's `tool` entries). `Ok(None)` when there was nothing to answer
    /// (no queued events).
    ///
    /// The tool loop: while the model answers with tool calls, the assistant message and its
    /// calls are committed (the calls recorded as open), the calls run in parallel, each result is
    /// committed as it arrives (closing its call), and the model is asked again — at most
    /// `agents.defaults.maxToolSteps` times.
    pub(crate) async fn run_turn(
        &self,
        turn: Turn,
        on_delta: OnDelta<'_>,
        on_tool: OnTool<'_>,
        on_recorded: OnRecorded<'_>,
    ) -> Result<Option<TurnOutput>, TurnError> {
        let Turn { session, system, input, chain, deadline_ms, run_id, kind, tools, requester, reply_outbox } = turn;
        let _serial = self.lock_session(&session.key).await;
        let rows = match self.record_input(&session, input, &run_id).await? {
            None => return Ok(None),
            Some(Recorded::History { rows, added }) => {
                rows.iter().skip(rows.len().saturating_sub(added)).for_each(on_recorded);
                rows
            }
            // The same run again (an inbound turn re-run after a crash): its reply is already in
            // the transcript, so it is answered from there, not asked of the model a second time.
            Some(Recorded::Answered(reply)) => return Ok(Some(replayed(session.key, reply))),
        };
        // Armed until the turn is recorded: a turn dropped mid-call (a time limit, a shutdown)
        // still answers its open tool calls and finishes its isolated session.
        let mut unfinished = Unfinished::arm(&self.store, &self.clock, &session);
        // Cancels the tools still running when the turn is dropped or aborted.
        let cancel = CancellationToken::new();
        let _cancel_on_drop = cancel.clone().drop_guard();
        let mut req = ChatRequest {
            model: String::new(),
            system: Some(system),
            messages: conversation(&rows),
            max_tokens: None,
            stream: self.options.stream,
            deadline_ms,
            tools: tools
                .specs()
                .into_iter()
                .map(|t| ToolDef { name: t.name, description: t.description, parameters: t.parameters })
                .collect(),
        };
        let finish = session.kind == SessionKind::Isolated;
        let key = session.key.clone();
        let mut total = Usage::default();
        let (mut attempts, mut steps) = (0usize, 0u32);
        let mut calls_made: Vec<Value> = Vec::new();
        loop {
            let started = self.clock.now_ms();
            let result = self.router().complete(&chain, &req, on_delta).await;
            let now = self.clock.now_ms();
            let latency_s = (now - started).max(0) as f64 / 1000.0;
            let done = match result {
                Ok(done) => done,
                Err(error) => {
                    let model = chain.iter().find(|m| error.message.starts_with(&format!("{m}: "))).cloned();
                    let label = model.as_ref().map_or_else(|| "none".to_string(), ModelRef::to_string);
                    self.observe(kind, error.class.as_str(), &label, None, latency_s);
                    self.record_failure(&key, &run_id, model.as_ref(), &error, finish, now).await?;
                    unfinished.disarm();
                    return Err(TurnError::Model { error, model, tool_calls: calls_made });
                }
            };
            attempts += done.attempts.len();
            add_usage(&mut total, &done.outcome.usage);
            let (model, usage) = (done.model.clone(), done.outcome.usage);
            let label = model.to_string();
            let calls = done.outcome.tool_calls.clone();
            let text = done.outcome.text.clone();
            if calls.is_empty() {
                self.observe(kind, "ok", &label, Some(&usage), latency_s);
                let meta = json!({
                    "runId": run_id, "model": label, "usage": usage, "finishReason": done.outcome.finish_reason,
                    "attempts": done.attempts.len(),
                })
                .to_string();
                let (reply, recorded_meta) = (text.clone(), meta.clone());
                // The reply's outbox row commits with the reply: a crash leaves neither or both.
                let prepared = reply_outbox.as_ref().map(|outbox| match pincer_cron::scheduler::is_silent(&text) {
                    true => Err(ReplySent::Silent),
                    false => outbox.prepare(&run_id, &text).map_err(ReplySent::Failed),
                });
                crashpoint::hit("agent.answered");
                let row = match &prepared {
                    Some(Ok(d)) => Some(d.clone()),
                    _ => None,
                };
                let (seq, enqueued) = self
                    .store
                    .write(move |tx| {
                        let seq = tx.append_transcript(&key, "assistant", &reply, now, Some(&meta))?;
                        tx.add_session_usage(
                            &key,
                            Some(&label),
                            usage.input_tokens as i64,
                            usage.output_tokens as i64,
                        )?;
                        if finish {
                            tx.finish_session(&key, now)?;
                        }
                        let enqueued = row.as_ref().map(|d| tx.enqueue_delivery(d)).transpose()?;
                        Ok((seq, enqueued))
                    })
                    .await?;
                unfinished.disarm();
                crashpoint::hit("agent.replied");
                let sent = match (prepared, enqueued, &reply_outbox) {
                    (Some(Ok(d)), Some(enqueued), Some(outbox)) => {
                        outbox.committed(&enqueued, &d.channel);
                        Some(ReplySent::Queued { delivery_id: enqueued.id })
                    }
                    (Some(Err(sent)), _, _) => Some(sent),
                    _ => None,
                };
                on_recorded(&pincer_store::TranscriptRow {
                    seq,
                    role: "assistant".into(),
                    content: text.clone(),
                    at_ms: now,
                    meta_json: Some(recorded_meta),
                });
                return Ok(Some(TurnOutput {
                    session_key: session.key,
                    text,
                    model,
                    usage: total,
                    attempts,
                    tool_calls: calls_made,
                    sent,
                }));
            }
            self.observe_step(&label, Some(&usage), latency_s);
            steps += 1;
            if steps > self.max_tool_steps {
                let error = ProviderError::new(
                    ErrorClass::Unknown,
                    format!(
                        "the turn stopped after {} tool steps (agents.defaults.maxToolSteps) and the model was still calling tools; raise agents.defaults.maxToolSteps or ask for a smaller task",
                        self.max_tool_steps
                    ),
                );
                self.record_failure(&key, &run_id, Some(&model), &error, finish, now).await?;
                unfinished.disarm();
                return Err(TurnError::ToolSteps { message: error.message, model, tool_calls: calls_made });
            }
            // The assistant message and its open calls commit together; a crash after this point
            // leaves open calls that the next start answers as interrupted. Durable (fsynced)
            // before any tool with effects runs, so that none runs twice; a step of read-only calls
            // commits relaxed, like a tool result (a `kill -9` keeps it; after a power loss the
            // reads would at worst run again), made durable by the turn's next full commit.
            let durable = !tools.all_read_only(calls.iter().map(|c| c.name.as_str()));
            let meta = json!({
                "runId": run_id, "model": label, "usage": usage, "finishReason": done.outcome.finish_reason,
                "attempts": done.attempts.len(), "toolCalls": calls,
            })
            .to_string();
            {
                let (key, run_id, text, calls) = (key.clone(), run_id.clone(), text.clone(), calls.clone());
                let record = move |tx: &pincer_store::Tx<'_>| {
                    tx.append_transcript(&key, "assistant", &text, now, Some(&meta))?;
                    let open: Vec<(&str, &str)> = calls.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect();
                    tx.open_tool_calls(&key, Some(&run_id), &open, now)?;
                    tx.add_session_usage(&key, Some(&label), usage.input_tokens as i64, usage.output_tokens as i64)
                };
                if durable {
                    self.store.write(record).await?;
                } else {
                    self.store.write_relaxed(record).await?;
                }
            }
            crashpoint::hit("agent.tool_called");
            let results =
                futures_util::future::join_all(calls.iter().map(|call| {
                    self.run_tool_call(&tools, call, &key, &run_id, deadline_ms, &cancel, on_tool, requester)
                }))
                .await;
            req.messages.push(ChatMessage::assistant_calls(text, calls.clone()));
            for (call, result) in calls.iter().zip(results) {
                let result = result?;
                calls_made.push(result.summary);
                req.messages.push(ChatMessage::tool_result(&call.id, result.content, result.is_error));
            }
        }
    }

    /// Runs one tool call and commits its result (closing the call); the result is what the model
    /// is sent. Every failure of the tool is a result with `is_error`; only the store can fail this.
    #[allow(clippy::too_many_arguments)]
    async fn run_tool_call(
        &self,
        tools: &ToolSet,
        call: &ToolCall,
        key: &str,
        run_id: &str,
        turn_deadline_ms: Option<i64>,
        cancel: &CancellationToken,
        on_tool: OnTool<'_>,
        requester: Requester,
    ) -> Result<ToolResult, StoreError> {
        let started = self.clock.now_ms();
        let args: Value =
            serde_json::from_str(&call.arguments).unwrap_or_else(|_| Value::String(call.arguments.clone()));
        on_tool(json!({"phase": "start", "name": call.name, "toolCallId": call.id, "args": args}));
        let mut ctx = ToolContext::new(self.workspace.clone(), self.clock.clone(), self.tool_timeout_ms);
        if let Some(turn_deadline) = turn_deadline_ms {
            ctx.deadline_ms = ctx.deadline_ms.min(turn_deadline);
        }
        ctx.cancel = cancel.child_token();
        ctx.turn_ended = cancel.clone();
        ctx.run_id = run_id.to_string();
        ctx.call_id = call.id.clone();
        ctx.session_key = Some(key.to_string());
        ctx.sender_is_owner = requester == Requester::Owner;
        let outcome = tools.call(&call.name, &call.arguments, &ctx).await;
        let now = self.clock.now_ms();
        let ms = (now - started).max(0);
        let (content, is_error, class) = match &outcome {
            Ok(out) => (out.for_model(), false, None),
            Err(e) => (e.to_string(), true, Some(e.class())),
        };
        self.metrics.inc(
            &metrics::AGENT_TOOL_CALLS_TOTAL,
            &[("tool", metric_tool_name(tools, &call.name)), ("outcome", class.unwrap_or("ok"))],
        );
        let meta = json!({
            "runId": run_id, "toolCallId": call.id, "toolName": call.name, "isError": is_error,
            "errorClass": class, "durationMs": ms,
        })
        .to_string();
        {
            // Relaxed: in the WAL at once, so a `kill -9` from here on keeps the result (the tool is
            // not recorded as interrupted), and fsynced by the turn's next commit — the next step's
            // assistant message, the final reply or the failure — all full writes. Only a power loss
            // before that commit can lose it, and then its call is answered as interrupted.
            let (key, id, content) = (key.to_string(), call.id.clone(), content.clone());
            self.store
                .write_relaxed(move |tx| {
                    tx.append_transcript(&key, TOOL_RESULT_ROLE, &content, now, Some(&meta))?;
                    tx.close_tool_call(&key, &id)
                })
                .await?;
        }
        crashpoint::hit("agent.tool_result");
        on_tool(json!({
            "phase": "result", "name": call.name, "toolCallId": call.id, "isError": is_error,
            "errorClass": class, "result": content, "durationMs": ms,
        }));
        let mut summary = json!({"id": call.id, "name": call.name, "isError": is_error, "durationMs": ms});
        if let Some(class) = class {
            summary["errorClass"] = json!(class);
        }
        Ok(ToolResult { content, is_error, summary })
    }

    /// Records a failed turn as a `system` entry (and finishes an isolated session).
    async fn record_failure(
        &self,
        key: &str,
        run_id: &str,
        model: Option<&ModelRef>,
        error: &ProviderError,
        finish: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        tracing::warn!(session = %key, class = %error.class, error = %error.message, "the turn failed");
        let meta = json!({
            "runId": run_id, "model": model.map(ModelRef::to_string),
            "error": error.message, "errorReason": error.class.as_str(),
        })
        .to_string();
        let note = format!("The turn failed: {}", error.message);
        let key = key.to_string();
        self.store
            .write(move |tx| {
                tx.append_transcript(&key, "system", &note, now, Some(&meta))?;
                if finish {
                    tx.finish_session(&key, now)?;
                }
                Ok(())
            })
            .await
    }

    /// Commits the turn's input and returns the history the turn sends (read in the same
    /// transaction), or `None` when there was no input to add. A message of a run the transcript
    /// already has (the same run id, re-run after a crash) is not recorded again; when that run's
    /// final reply is recorded too, it is returned instead of a history.
    async fn record_input(
        &self,
        session: &SessionRef,
        input: Input,
        run_id: &str,
    ) -> Result<Option<Recorded>, StoreError> {
        let (s, run_id, now) = (session.clone(), run_id.to_string(), self.clock.now_ms());
        let limit = self.options.history_messages;
        self.store
            .write(move |tx| {
                if matches!(input, Input::Message { replay: true, .. }) {
                    if let Some(reply) = tx.final_reply_of_run(&s.key, &run_id)? {
                        return Ok(Some(Recorded::Answered(reply)));
                    }
                    if tx.reader().run_has_user_message(&s.key, &run_id)? {
                        let rows = tx.reader().transcript(&s.key, limit, None)?;
                        return Ok(Some(Recorded::History { rows, added: 0 }));
                    }
                }
                let added = Self::append_input(tx, &s, input, &run_id, now)?;
                if added == 0 {
                    return Ok(None);
                }
                Ok(Some(Recorded::History { rows: tx.reader().transcript(&s.key, limit, None)?, added }))
            })
            .await
    }

    /// Appends the input entries; returns how many.
    fn append_input(
        tx: &pincer_store::Tx<'_>,
        s: &SessionRef,
        input: Input,
        run_id: &str,
        now: i64,
    ) -> Result<usize, StoreError> {
        {
            {
                let ensure = || {
                    let (job, run) = (s.job_id.as_deref(), s.run_id.as_deref());
                    tx.ensure_session(&s.key, &s.agent_id, s.kind.as_str(), job, run, now)
                };
                match input {
                    Input::Message { text, meta, .. } => {
                        ensure()?;
                        tx.append_transcript(&s.key, "user", &text, now, Some(&meta.to_string()))?;
                        Ok(1)
                    }
                    Input::Events { extra } => {
                        let mut events: Vec<Event> = tx
                            .take_events(&s.key)?
                            .into_iter()
                            .map(|e| Event { text: e.text, source: e.source })
                            .collect();
                        events.extend(extra);
                        if !events.is_empty() {
                            ensure()?;
                        }
                        for event in &events {
                            let meta = json!({"runId": run_id, "source": event.source}).to_string();
                            tx.append_transcript(&s.key, "event", &event.text, now, Some(&meta))?;
                        }
                        Ok(events.len())
                    }
                }
            }
        }
    }

    fn observe(&self, kind: &str, outcome: &str, model: &str, usage: Option<&Usage>, latency_s: f64) {
        self.metrics.inc(&metrics::AGENT_TURNS_TOTAL, &[("kind", kind), ("outcome", outcome), ("model", model)]);
        self.observe_step(model, usage, latency_s);
    }

    /// One model call's time and tokens (a turn that calls tools makes several).
    fn observe_step(&self, model: &str, usage: Option<&Usage>, latency_s: f64) {
        let m = &self.metrics;
        m.observe(&metrics::AGENT_MODEL_SECONDS, &[("model", model)], latency_s);
        if let Some(usage) = usage {
            m.add(&metrics::AGENT_TOKENS_TOTAL, &[("direction", "input"), ("model", model)], usage.input_tokens as f64);
            m.add(
                &metrics::AGENT_TOKENS_TOTAL,
                &[("direction", "output"), ("model", model)],
                usage.output_tokens as f64,
            );
        }
    }
}

/// Cleans up after a turn dropped mid-way (the scheduler's time limit, a shutdown): its open tool
/// calls get the interrupted result, and an isolated session is finished so the retention sweep
/// can still remove it.
struct Unfinished {
    armed: Option<(Store, SharedClock, String, bool)>,
}

impl Unfinished {
    fn arm(store: &Store, clock: &SharedClock, session: &SessionRef) -> Unfinished {
        let isolated = session.kind == SessionKind::Isolated;
        Unfinished { armed: Some((store.clone(), clock.clone(), session.key.clone(), isolated)) }
    }

    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some((store, clock, key, isolated)) = self.armed.take() {
            let now = clock.now_ms();
            // `Store::write` queues at once; nobody is left to await the result.
            #[allow(clippy::let_underscore_future)]
            let _ = store.write(move |tx| {
                answer_interrupted(tx, Some(&key), now)?;
                if isolated {
                    tx.append_transcript(&key, "system", "The turn ended before the model answered.", now, None)?;
                    tx.finish_session(&key, now)?;
                }
                Ok(())
            });
        }
    }
}

/// Answers every open tool call of `session_key` (of every session with `None`: at start, after a
/// crash) with the interrupted result, so each call in the transcript has exactly one result.
pub(crate) fn answer_interrupted(
    tx: &pincer_store::Tx<'_>,
    session_key: Option<&str>,
    now: i64,
) -> Result<usize, StoreError> {
    let open = tx.take_open_tool_calls(session_key)?;
    for call in &open {
        let meta = json!({
            "runId": call.run_id, "toolCallId": call.call_id, "toolName": call.name, "isError": true,
            "errorClass": RunFailure::Interrupted.as_str(),
        })
        .to_string();
        tx.append_transcript(&call.session_key, TOOL_RESULT_ROLE, INTERRUPTED_RESULT, now, Some(&meta))?;
    }
    Ok(open.len())
}

/// One committed tool result: what the model is sent, and the run record's summary of the call.
struct ToolResult {
    content: String,
    is_error: bool,
    summary: Value,
}

/// The metric label of a called tool: its name when the turn offered it, else `not_offered` (a
/// model inventing names must not create label values).
fn metric_tool_name<'a>(tools: &'a ToolSet, name: &str) -> &'a str {
    tools.names().into_iter().find(|n| *n == name).unwrap_or("not_offered")
}

fn add_usage(total: &mut Usage, step: &Usage) {
    total.input_tokens += step.input_tokens;
    total.output_tokens += step.output_tokens;
    total.total_tokens += step.total_tokens;
    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    total.cache_read_tokens = add(total.cache_read_tokens, step.cache_read_tokens);
    total.cache_write_tokens = add(total.cache_write_tokens, step.cache_write_tokens);
}
