//! The turn runner: one model call in one session. The input (a user message, or the session's
//! queued system events) is committed to the transcript first; the model sees the session's
//! recent history; the reply, its model and its usage are recorded when it is complete, a failure
//! as a `system` entry. An isolated session is finished when its turn ends, however it ends.

use pincer_core::SharedClock;
use pincer_core::metrics;
use pincer_protocol::state::{RunErrorReason, RunFailure};
use pincer_store::{Store, StoreError};
use serde_json::{Value, json};

use crate::models::ModelRef;
use crate::provider::{ChatRequest, ErrorClass, OnDelta, ProviderError, Usage};
use crate::service::Inner;
use crate::session::{SessionKind, SessionRef, conversation};

/// What a turn adds to the transcript before calling the model.
pub(crate) enum Input {
    /// A user message, with what the transcript should remember about it.
    Message { text: String, meta: Value },
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
}

/// Why a turn did not get an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TurnError {
    #[error("{0}")]
    NoModel(String),
    /// The message names the model that failed; `model` is it, when known.
    #[error("{}", .error.message)]
    Model { error: ProviderError, model: Option<ModelRef> },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl TurnError {
    /// OpenClaw's error reason: the provider's error class, `model_not_found` without a model.
    pub fn reason(&self) -> RunErrorReason {
        match self {
            TurnError::NoModel(_) => ErrorClass::ModelNotFound.into(),
            TurnError::Model { error, .. } => error.class.into(),
            TurnError::Store(_) => RunFailure::Store.into(),
        }
    }
}

impl Inner {
    /// Runs `turn`, passing streamed text to `on_delta`. `Ok(None)` when there was nothing to
    /// answer (no queued events).
    pub(crate) async fn run_turn(&self, turn: Turn, on_delta: OnDelta<'_>) -> Result<Option<TurnOutput>, TurnError> {
        let Turn { session, system, input, chain, deadline_ms, run_id, kind } = turn;
        let _serial = self.lock_session(&session.key).await;
        let Some(rows) = self.record_input(&session, input, &run_id).await? else {
            return Ok(None);
        };
        let mut unfinished = Unfinished::arm(&self.store, &self.clock, &session);
        let req = ChatRequest {
            model: String::new(),
            system: Some(system),
            messages: conversation(&rows),
            max_tokens: None,
            stream: self.options.stream,
            deadline_ms,
        };
        let started = self.clock.now_ms();
        let result = self.router.complete(&chain, &req, on_delta).await;
        let now = self.clock.now_ms();
        let latency_s = (now - started).max(0) as f64 / 1000.0;
        unfinished.disarm();
        let finish = session.kind == SessionKind::Isolated;
        let key = session.key.clone();
        match result {
            Ok(done) => {
                let (model, usage, text) = (done.model.clone(), done.outcome.usage, done.outcome.text.clone());
                let label = model.to_string();
                self.observe(kind, "ok", &label, Some(&usage), latency_s);
                let meta = json!({
                    "runId": run_id, "model": label, "usage": usage, "finishReason": done.outcome.finish_reason,
                    "attempts": done.attempts.len(),
                })
                .to_string();
                let reply = text.clone();
                self.store
                    .write(move |tx| {
                        tx.append_transcript(&key, "assistant", &reply, now, Some(&meta))?;
                        tx.add_session_usage(
                            &key,
                            Some(&label),
                            usage.input_tokens as i64,
                            usage.output_tokens as i64,
                        )?;
                        if finish {
                            tx.finish_session(&key, now)?;
                        }
                        Ok(())
                    })
                    .await?;
                Ok(Some(TurnOutput { session_key: session.key, text, model, usage, attempts: done.attempts.len() }))
            }
            Err(error) => {
                let model = chain.iter().find(|m| error.message.starts_with(&format!("{m}: "))).cloned();
                let label = model.as_ref().map_or_else(|| "none".to_string(), ModelRef::to_string);
                self.observe(kind, error.class.as_str(), &label, None, latency_s);
                tracing::warn!(session = %key, class = %error.class, error = %error.message, "the turn failed");
                let meta = json!({
                    "runId": run_id, "model": model.as_ref().map(ModelRef::to_string),
                    "error": error.message, "errorReason": error.class.as_str(),
                })
                .to_string();
                let note = format!("The turn failed: {}", error.message);
                self.store
                    .write(move |tx| {
                        tx.append_transcript(&key, "system", &note, now, Some(&meta))?;
                        if finish {
                            tx.finish_session(&key, now)?;
                        }
                        Ok(())
                    })
                    .await?;
                Err(TurnError::Model { error, model })
            }
        }
    }

    /// Commits the turn's input and returns the history the turn sends (read in the same
    /// transaction), or `None` when there was no input to add.
    async fn record_input(
        &self,
        session: &SessionRef,
        input: Input,
        run_id: &str,
    ) -> Result<Option<Vec<pincer_store::TranscriptRow>>, StoreError> {
        let (s, run_id, now) = (session.clone(), run_id.to_string(), self.clock.now_ms());
        let limit = self.options.history_messages;
        self.store
            .write(move |tx| {
                let added = Self::append_input(tx, &s, input, &run_id, now)?;
                if added == 0 {
                    return Ok(None);
                }
                Ok(Some(tx.reader().transcript(&s.key, limit, None)?))
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
                    Input::Message { text, meta } => {
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
        let m = &self.metrics;
        m.inc(&metrics::AGENT_TURNS_TOTAL, &[("kind", kind), ("outcome", outcome), ("model", model)]);
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

/// Finishes an isolated session whose turn was dropped mid-call (the scheduler's time limit,
/// a shutdown), so the retention sweep can still remove it.
struct Unfinished {
    armed: Option<(Store, SharedClock, String)>,
}

impl Unfinished {
    fn arm(store: &Store, clock: &SharedClock, session: &SessionRef) -> Unfinished {
        let armed =
            (session.kind == SessionKind::Isolated).then(|| (store.clone(), clock.clone(), session.key.clone()));
        Unfinished { armed }
    }

    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some((store, clock, key)) = self.armed.take() {
            let now = clock.now_ms();
            // `Store::write` queues at once; nobody is left to await the result.
            #[allow(clippy::let_underscore_future)]
            let _ = store.write(move |tx| {
                tx.append_transcript(&key, "system", "The turn ended before the model answered.", now, None)?;
                tx.finish_session(&key, now)
            });
        }
    }
}
