//! The agent service: [`Agents`], the handle the gateway holds; its start (model router,
//! heartbeat and retention loops on the injected clock); and the scheduler's [`AgentRunner`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, Shared};
use pincer_core::config::Retention;
use pincer_core::duration::parse_duration_ms;
use pincer_core::{Config, EventBus, Metrics, SharedClock, Supervisor};
use pincer_cron::job::{Job, Payload, WakeMode};
use pincer_cron::runner::BoxFuture as RunFuture;
use pincer_cron::{AgentRunner, ExecOutcome, ExecStatus, PreflightError, RunContext};
use pincer_protocol::state::{ErrorClass, RunFailure};
use pincer_store::{Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::api::ApiError;
use crate::models::{ModelError, ModelRef, ModelRouter, RouterOptions};
use crate::prompt;
use crate::session::{HISTORY_MESSAGES, SessionRef};
use crate::turn::{Event, Input, Turn, TurnError, TurnOutput};

/// What the agent service needs from the rest of the gateway.
pub struct AgentDeps {
    pub store: Store,
    pub clock: SharedClock,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Owns the heartbeat and the retention sweep.
    pub supervisor: Supervisor,
}

/// Settings beyond the configuration file (tests and embedders).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentOptions {
    pub router: RouterOptions,
    /// Ask models to stream their replies (default); off, each reply arrives whole.
    pub stream: bool,
    /// Transcript entries sent as context with each turn.
    pub history_messages: u32,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions { router: RouterOptions::default(), stream: true, history_messages: HISTORY_MESSAGES }
    }
}

/// A configuration the agent service cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
}

/// What a run is told when nothing can answer it.
pub const NO_MODEL: &str = "no model is configured: set agents.defaults.model.primary (e.g. \"openai/gpt-4o\") and \
                            add its provider under models.providers (api, baseUrl, apiKey)";

/// Main-session turns woken by events get this long.
pub(crate) const EVENT_TURN_TIMEOUT_MS: i64 = 10 * 60_000;

/// The agent service; cheap to clone.
#[derive(Clone)]
pub struct Agents {
    pub(crate) inner: Arc<Inner>,
}

/// A running `agent` call, shared by repeated calls with the same `idempotencyKey`.
pub(crate) type SharedRun = Shared<BoxFuture<'static, Result<pincer_protocol::schema::agent::AgentResult, ApiError>>>;

pub(crate) struct Inner {
    pub store: Store,
    pub clock: SharedClock,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub router: ModelRouter,
    pub options: AgentOptions,
    /// `agents.defaults.timezone`, else the host's zone.
    pub default_tz: String,
    pub heartbeat_every_ms: Option<i64>,
    pub retention_ms: Option<i64>,
    /// One turn at a time per session, so transcripts never interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub runs: Mutex<HashMap<String, SharedRun>>,
    /// `chat.send` runs in progress, for `chat.abort`.
    pub chats: crate::chat::ActiveChats,
    pub counters: Counters,
    pub stop: watch::Sender<bool>,
}

/// What the background loops have done, for `status` and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub heartbeat_ticks: AtomicU64,
    pub heartbeat_turns: AtomicU64,
    pub last_heartbeat_ms: AtomicI64,
    pub next_heartbeat_ms: AtomicI64,
    pub sweeps: AtomicU64,
    pub last_sweep_ms: AtomicI64,
    pub pruned: AtomicU64,
}

impl Agents {
    /// Builds the model router from `models.providers` and starts the heartbeat
    /// (`agents.defaults.heartbeat.every`, off with `cron.enabled: false`) and the isolated-session
    /// sweep (`cron.sessionRetention`). Call it inside a Tokio runtime.
    pub fn start(deps: AgentDeps) -> Result<Agents, AgentError> {
        Agents::start_with(deps, AgentOptions::default())
    }

    pub fn start_with(deps: AgentDeps, options: AgentOptions) -> Result<Agents, AgentError> {
        let AgentDeps { store, clock, events, metrics, config, supervisor } = deps;
        let defaults = &config.agents.defaults;
        let router = ModelRouter::with_options(&config.models, defaults, clock.clone(), options.router)?;
        let default_tz = match &defaults.timezone {
            Some(tz) => pincer_cron::schedule::validate_tz(tz)
                .map(|z| z.name().to_string())
                .map_err(|e| AgentError::Config { key: "agents.defaults.timezone", message: e.to_string() })?,
            None => pincer_cron::schedule::host_timezone(),
        };
        let heartbeat_every_ms = parse_duration_ms(&defaults.heartbeat.every, None)
            .map_err(|message| AgentError::Config { key: "agents.defaults.heartbeat.every", message })?;
        let retention_ms = match &config.cron.session_retention {
            Retention::Off(false) => 0,
            Retention::Off(true) => 24 * 3_600_000,
            Retention::Duration(text) => parse_duration_ms(text, Some(3_600_000))
                .map_err(|message| AgentError::Config { key: "cron.sessionRetention", message })?,
        };
        let positive = |ms: u64| (ms > 0).then_some(ms.min(i64::MAX as u64) as i64);
        let inner = Arc::new(Inner {
            store,
            clock,
            events,
            metrics,
            router,
            options,
            default_tz,
            // `cron.enabled: false` stops every automatic run, heartbeats included (as in OpenClaw).
            heartbeat_every_ms: positive(heartbeat_every_ms).filter(|_| config.cron.enabled),
            retention_ms: positive(retention_ms),
            config,
            locks: Mutex::default(),
            runs: Mutex::default(),
            chats: Default::default(),
            counters: Counters::default(),
            stop: watch::Sender::new(false),
        });
        if let Err(e) = inner.chain(None, None)
            && !inner.config.models.providers.is_empty()
        {
            tracing::warn!("agent turns without a model of their own will fail: {e}");
        }
        // The first deadlines are fixed now, not when the tasks first run; after a restart (the
        // previous loop panicked) the next one is a full interval away, so a tick that panics is
        // not repeated at once.
        let now = inner.clock.now_ms();
        if let Some(every) = inner.heartbeat_every_ms {
            let first = now.saturating_add(every);
            inner.counters.next_heartbeat_ms.store(first, Ordering::SeqCst);
            let (weak, clock, mut first) = (Arc::downgrade(&inner), inner.clock.clone(), Some(first));
            supervisor.spawn("heartbeat", false, move || {
                let at = first.take().unwrap_or_else(|| clock.now_ms().saturating_add(every));
                crate::heartbeat::heartbeat_loop(weak.clone(), clock.clone(), every, at)
            });
        }
        if let Some(keep) = inner.retention_ms {
            let every = crate::retention::SWEEP_EVERY_MS;
            let (weak, clock, mut first) =
                (Arc::downgrade(&inner), inner.clock.clone(), Some(now.saturating_add(every)));
            supervisor.spawn("session-retention", false, move || {
                let at = first.take().unwrap_or_else(|| clock.now_ms().saturating_add(every));
                crate::retention::sweep_loop(weak.clone(), clock.clone(), keep, at)
            });
        }
        Ok(Agents { inner })
    }

    /// Stops the heartbeat and the sweep. Turns in flight finish on their own.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
    }

    /// The model chain for a job's `model`/`fallbacks` (or the defaults), checked against the
    /// configuration; the error says what to configure.
    pub fn resolve_models(&self, model: Option<&str>, fallbacks: Option<&[String]>) -> Result<Vec<ModelRef>, String> {
        self.inner.chain(model, fallbacks)
    }

    pub fn router(&self) -> &ModelRouter {
        &self.inner.router
    }

    /// The zone prompts use when a run brings none.
    pub fn default_tz(&self) -> &str {
        &self.inner.default_tz
    }

    /// The heartbeat and the retention sweep: intervals, counts and times.
    pub fn status(&self) -> Value {
        let c = &self.inner.counters;
        let at = |v: &AtomicI64| match v.load(Ordering::SeqCst) {
            0 => Value::Null,
            ms => json!(ms),
        };
        json!({
            "model": self.inner.config.agents.defaults.model.primary,
            "heartbeat": {
                "everyMs": self.inner.heartbeat_every_ms,
                "ticks": c.heartbeat_ticks.load(Ordering::SeqCst),
                "turns": c.heartbeat_turns.load(Ordering::SeqCst),
                "lastAtMs": at(&c.last_heartbeat_ms),
                "nextAtMs": at(&c.next_heartbeat_ms),
            },
            "sessionRetention": {
                "keepMs": self.inner.retention_ms,
                "sweeps": c.sweeps.load(Ordering::SeqCst),
                "lastAtMs": at(&c.last_sweep_ms),
                "pruned": c.pruned.load(Ordering::SeqCst),
            },
        })
    }

    /// Queues a system event for `session`'s next heartbeat; with `now`, runs that turn at once
    /// in the background.
    pub async fn wake(
        &self,
        session: &SessionRef,
        text: &str,
        source: Option<&str>,
        now: bool,
    ) -> Result<(), StoreError> {
        let (key, text, source) = (session.key.clone(), text.to_string(), source.map(str::to_string));
        let at = self.inner.clock.now_ms();
        self.inner.store.write(move |tx| tx.queue_event(&key, &text, source.as_deref(), at)).await?;
        if now {
            let (inner, session) = (self.inner.clone(), session.clone());
            tokio::spawn(async move {
                let deadline = inner.clock.now_ms() + EVENT_TURN_TIMEOUT_MS;
                let tz = inner.default_tz.clone();
                if let Err(e) = inner.event_turn(session.clone(), None, Some(deadline), &tz).await {
                    tracing::warn!(session = %session.key, error = %e, "the wake turn failed");
                }
            });
        }
        Ok(())
    }
}

impl Inner {
    /// The models to try; [`NO_MODEL`] when no provider is configured at all.
    pub fn chain(&self, model: Option<&str>, fallbacks: Option<&[String]>) -> Result<Vec<ModelRef>, String> {
        if self.config.models.providers.is_empty() {
            return Err(NO_MODEL.to_string());
        }
        self.router.resolve(model, fallbacks).map_err(|e| e.to_string())
    }

    /// Waits for `key`'s turn lock.
    pub async fn lock_session(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().expect("session locks");
            // Only this map holds idle locks; a held one is also owned by its guard.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// A main-session turn over the session's queued events (plus `extra`, arriving now). Without
    /// events it does nothing; without a model, `extra` is queued and the events wait.
    pub async fn event_turn(
        &self,
        session: SessionRef,
        extra: Option<Event>,
        deadline_ms: Option<i64>,
        tz: &str,
    ) -> Result<Option<TurnOutput>, TurnError> {
        let chain = match self.chain(None, None) {
            Ok(chain) => chain,
            Err(message) => {
                if let Some(event) = extra {
                    let (key, at) = (session.key.clone(), self.clock.now_ms());
                    self.store
                        .write(move |tx| tx.queue_event(&key, &event.text, event.source.as_deref(), at))
                        .await
                        .map_err(TurnError::Store)?;
                }
                return Err(TurnError::NoModel(message));
            }
        };
        let turn = Turn {
            system: prompt::main_system(self.clock.now_ms(), tz),
            input: Input::Events { extra },
            chain,
            deadline_ms,
            run_id: uuid::Uuid::new_v4().to_string(),
            kind: "event",
            session,
        };
        self.run_turn(turn, &|_: &str| {}).await
    }

    /// Runs a cron job's payload.
    async fn run_job(&self, ctx: &RunContext) -> ExecOutcome {
        let job = &ctx.job;
        match &job.payload {
            Payload::AgentTurn { message, model, fallbacks, .. } => {
                self.cron_turn(ctx, message, model.as_deref(), fallbacks.as_deref()).await
            }
            Payload::SystemEvent { text } => self.system_event(ctx, text).await,
            Payload::Command { .. } => ExecOutcome::error(
                "command payloads are run by the scheduler, not by the agent runner",
                RunFailure::Unsupported,
            ),
        }
    }

    async fn cron_turn(
        &self,
        ctx: &RunContext,
        message: &str,
        model: Option<&str>,
        fallbacks: Option<&[String]>,
    ) -> ExecOutcome {
        let job = &ctx.job;
        let session = SessionRef::for_job(job, &ctx.run_id);
        let key = session.key.clone();
        let chain = match self.chain(model, fallbacks) {
            Ok(chain) => chain,
            Err(e) => return ExecOutcome::error(e, ErrorClass::ModelNotFound),
        };
        let turn = Turn {
            system: prompt::cron_system(self.clock.now_ms(), &ctx.tz),
            input: Input::Message {
                text: prompt::cron_user(&job.id, &job.name, message),
                meta: json!({"runId": ctx.run_id, "jobId": job.id}),
            },
            chain,
            deadline_ms: ctx.deadline_ms,
            run_id: ctx.run_id.clone(),
            kind: "cron",
            session,
        };
        match self.run_turn(turn, &|_: &str| {}).await {
            Ok(Some(out)) => {
                let text = out.text.clone();
                finished(&out, text)
            }
            Ok(None) => ExecOutcome::error("the turn had nothing to send", ErrorClass::Unknown),
            Err(e) => failed(e, key),
        }
    }

    /// A main-session system event: queued for the next heartbeat, or (`wakeMode: now`) run at
    /// once. The run's summary is the event text, as in OpenClaw; the reply stays in the main
    /// session.
    async fn system_event(&self, ctx: &RunContext, text: &str) -> ExecOutcome {
        let job = &ctx.job;
        let session = SessionRef::main(job.effective_agent());
        let key = session.key.clone();
        let event = Event { text: text.to_string(), source: Some(format!("cron:{}", job.id)) };
        match job.wake_mode {
            WakeMode::NextHeartbeat => {
                let at = self.clock.now_ms();
                let queued = self
                    .store
                    .write(move |tx| tx.queue_event(&session.key, &event.text, event.source.as_deref(), at))
                    .await;
                match queued {
                    Ok(_) => ExecOutcome { session_key: Some(key), ..ExecOutcome::ok(text) },
                    Err(e) => ExecOutcome::error(format!("store: {e}"), RunFailure::Store),
                }
            }
            WakeMode::Now => match self.event_turn(session, Some(event), ctx.deadline_ms, &ctx.tz).await {
                Ok(Some(out)) => finished(&out, text.to_string()),
                Ok(None) => ExecOutcome::error("the event was not recorded", ErrorClass::Unknown),
                Err(TurnError::NoModel(message)) => ExecOutcome {
                    session_key: Some(key),
                    ..ExecOutcome::skipped(format!("{message}; the event waits in the main session's queue"))
                },
                Err(e) => failed(e, key),
            },
        }
    }
}

/// The outcome of a turn that answered; `text` is the run's summary.
fn finished(out: &TurnOutput, text: String) -> ExecOutcome {
    ExecOutcome {
        status: Some(ExecStatus::Ok),
        text: Some(text),
        model: Some(out.model.model.clone()),
        provider: Some(out.model.provider.clone()),
        usage: Some(serde_json::to_value(out.usage).expect("usage serialises")),
        session_key: Some(out.session_key.clone()),
        ..Default::default()
    }
}

/// The outcome of a failed turn: the error names the model, the reason is its error class.
fn failed(e: TurnError, session_key: String) -> ExecOutcome {
    let model = match &e {
        TurnError::Model { model, .. } => model.clone(),
        _ => None,
    };
    ExecOutcome {
        model: model.as_ref().map(|m| m.model.clone()),
        provider: model.map(|m| m.provider),
        session_key: Some(session_key),
        ..ExecOutcome::error(e.to_string(), e.reason())
    }
}

impl AgentRunner for Agents {
    fn run<'a>(&'a self, run: &'a RunContext) -> RunFuture<'a, ExecOutcome> {
        Box::pin(self.inner.run_job(run))
    }

    /// An `agentTurn` must resolve to configured models before anything runs; system events
    /// always pass (they queue even without a model).
    fn preflight(&self, job: &Job) -> Result<(), PreflightError> {
        match &job.payload {
            Payload::AgentTurn { model, fallbacks, .. } => {
                self.inner.chain(model.as_deref(), fallbacks.as_deref()).map(|_| ()).map_err(|e| {
                    if self.inner.config.models.providers.is_empty() {
                        PreflightError::NoModel(e)
                    } else {
                        PreflightError::Unresolved(e)
                    }
                })
            }
            Payload::SystemEvent { .. } | Payload::Command { .. } => Ok(()),
        }
    }
}
