//! The agent service: [`Agents`], the handle the gateway holds; its start (model router,
//! heartbeat and retention loops on the injected clock); and the scheduler's [`AgentRunner`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures_util::future::{BoxFuture, Shared};
use pincer_core::config::Retention;
use pincer_core::duration::parse_duration_ms;
use pincer_core::{Config, EventBus, Metrics, SharedClock, Supervisor};
use pincer_cron::job::{Job, Payload, WakeMode};
use pincer_cron::runner::BoxFuture as RunFuture;
use pincer_cron::{AgentRunner, ExecOutcome, ExecStatus, PreflightError, RunContext};
use pincer_protocol::state::{ErrorClass, RunFailure};
use pincer_store::{Store, StoreError};
use pincer_tools::workspace::{DEFAULT_BOOTSTRAP_MAX_CHARS, DEFAULT_BOOTSTRAP_TOTAL_MAX_CHARS};
use pincer_tools::{ToolSet, Toolbox, Workspace};
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
    /// What turns may call, and the workspace; `None`: turns call no tools and the system prompt
    /// has no workspace context.
    pub tools: Option<AgentTools>,
}

/// The tools and workspace of the agent's turns.
#[derive(Clone)]
pub struct AgentTools {
    /// Every tool, under the configured policy; each turn narrows it by its job's `toolsAllow`.
    pub toolbox: Toolbox,
    /// The workspace directory (bootstrap files, skills; file tools and `exec` are confined to it).
    pub workspace: PathBuf,
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
    /// When this process's agent service started: a run whose entries are all older and that
    /// never ended was cut off by a stop (`agent.wait` says so).
    pub started_ms: i64,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    /// The configuration whose `models` and `agents.defaults.model` are in force; a reload
    /// replaces it with the router below ([`Agents::set_models`]).
    config: RwLock<Arc<Config>>,
    router: RwLock<Arc<ModelRouter>>,
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
    /// The cron runs in progress by session key, with the `next_check` a paced job's run
    /// proposed (the `cron` tool's action; taken into the run's outcome).
    next_checks: Mutex<HashMap<String, NextCheck>>,
    pub counters: Counters,
    pub stop: watch::Sender<bool>,
    /// Swapped whole by a config reload ([`Agents::set_toolbox`]); a turn takes its [`ToolSet`]
    /// once, so turns in flight finish with the tools they began with.
    tools: RwLock<Option<AgentTools>>,
    /// `agents.defaults.maxToolSteps`.
    pub max_tool_steps: u32,
    /// `agents.defaults.toolTimeoutSeconds`, in milliseconds.
    pub tool_timeout_ms: i64,
    /// The workspace tools run in (an empty path without tools: nothing runs there).
    pub workspace: PathBuf,
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
    /// `set-heartbeats`: false pauses the heartbeat's turns (ticks still record themselves).
    pub heartbeats_paused: std::sync::atomic::AtomicBool,
    /// The last tick, for `last-heartbeat`.
    pub last_heartbeat: Mutex<Option<pincer_protocol::schema::gateway::HeartbeatEvent>>,
}

impl Agents {
    /// Builds the model router from `models.providers` and starts the heartbeat
    /// (`agents.defaults.heartbeat.every`, off with `cron.enabled: false`) and the isolated-session
    /// sweep (`cron.sessionRetention`). Call it inside a Tokio runtime.
    pub fn start(deps: AgentDeps) -> Result<Agents, AgentError> {
        Agents::start_with(deps, AgentOptions::default())
    }

    pub fn start_with(deps: AgentDeps, options: AgentOptions) -> Result<Agents, AgentError> {
        let AgentDeps { store, clock, events, metrics, config, supervisor, tools } = deps;
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
            started_ms: clock.now_ms(),
            clock,
            events,
            metrics,
            options,
            default_tz,
            // `cron.enabled: false` stops every automatic run, heartbeats included (as in OpenClaw).
            heartbeat_every_ms: positive(heartbeat_every_ms).filter(|_| config.cron.enabled),
            retention_ms: positive(retention_ms),
            max_tool_steps: defaults.max_tool_steps.max(1),
            tool_timeout_ms: defaults.tool_timeout_seconds.saturating_mul(1000).min(i64::MAX as u64) as i64,
            config: RwLock::new(config),
            router: RwLock::new(Arc::new(router)),
            locks: Mutex::default(),
            runs: Mutex::default(),
            chats: Default::default(),
            next_checks: Mutex::default(),
            counters: Counters::default(),
            stop: watch::Sender::new(false),
            workspace: tools.as_ref().map(|t| t.workspace.clone()).unwrap_or_default(),
            tools: RwLock::new(tools),
        });
        // Tool calls a crash left without a result are answered as interrupted before any turn
        // runs (`Store::write` queues at once, so this is ahead of every later write).
        let recovered = inner.store.write({
            let now = inner.clock.now_ms();
            move |tx| crate::turn::answer_interrupted(tx, None, now)
        });
        tokio::spawn(async move {
            match recovered.await {
                Ok(0) => {}
                Ok(n) => tracing::warn!("{n} tool call(s) interrupted by the last stop were answered as interrupted"),
                Err(e) => tracing::error!(error = %e, "cannot answer the tool calls interrupted by the last stop"),
            }
        });
        if let Err(e) = inner.chain(None, None)
            && !inner.config().models.providers.is_empty()
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

    pub fn router(&self) -> Arc<ModelRouter> {
        self.inner.router()
    }

    /// Applies `config`'s `models` and `agents.defaults.model` (a config reload): the router is
    /// built first, so a configuration it refuses changes nothing. Turns in flight finish with
    /// the router they started with.
    pub fn set_models(&self, config: Arc<Config>) -> Result<(), AgentError> {
        let router = ModelRouter::with_options(
            &config.models,
            &config.agents.defaults,
            self.inner.clock.clone(),
            self.inner.options.router,
        )?;
        *self.inner.router.write().expect("router lock") = Arc::new(router);
        *self.inner.config.write().expect("config lock") = config;
        Ok(())
    }

    /// Applies a new toolbox (`tools.*` and `mcp.servers` edited: a config reload): the next turn
    /// is offered its tools; turns in flight keep the tool set they took. Without tools at start
    /// (embedders, tests), there is no workspace to run them in and nothing changes.
    pub fn set_toolbox(&self, toolbox: Toolbox) {
        if let Some(tools) = self.inner.tools.write().expect("tools lock").as_mut() {
            tools.toolbox = toolbox;
        }
    }

    /// Checks that `config`'s models would be accepted by [`Agents::set_models`], changing nothing.
    pub fn check_models(config: &Config, clock: SharedClock) -> Result<(), AgentError> {
        Ok(ModelRouter::new(&config.models, &config.agents.defaults, clock).map(|_| ())?)
    }

    /// The zone prompts use when a run brings none.
    pub fn default_tz(&self) -> &str {
        &self.inner.default_tz
    }

    /// `set-heartbeats`: pauses (`false`) or resumes the heartbeat's turns; events keep queueing.
    pub fn set_heartbeats(&self, enabled: bool) {
        self.inner.counters.heartbeats_paused.store(!enabled, Ordering::SeqCst);
    }

    /// Whether the heartbeat runs turns: configured (`every` > 0, cron enabled) and not paused.
    pub fn heartbeats_enabled(&self) -> bool {
        self.inner.heartbeat_every_ms.is_some() && !self.inner.counters.heartbeats_paused.load(Ordering::SeqCst)
    }

    /// The last heartbeat tick (`last-heartbeat`), `None` before the first.
    pub fn last_heartbeat(&self) -> Option<pincer_protocol::schema::gateway::HeartbeatEvent> {
        self.inner.counters.last_heartbeat.lock().expect("heartbeat lock").clone()
    }

    /// The heartbeat and the retention sweep: intervals, counts and times.
    pub fn status(&self) -> Value {
        let c = &self.inner.counters;
        let at = |v: &AtomicI64| match v.load(Ordering::SeqCst) {
            0 => Value::Null,
            ms => json!(ms),
        };
        json!({
            "model": self.inner.config().agents.defaults.model.primary,
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
    /// The configuration in force (see [`Agents::set_models`]).
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// The model router in force.
    pub fn router(&self) -> Arc<ModelRouter> {
        self.router.read().expect("router lock").clone()
    }

    /// The tools a turn is offered: the configured policy narrowed by the job's `toolsAllow`.
    pub fn turn_tools(&self, job_allow: &[String]) -> ToolSet {
        match &*self.tools.read().expect("tools lock") {
            Some(t) => t.toolbox.for_turn(job_allow),
            None => ToolSet::default(),
        }
    }

    /// A system prompt with the workspace's bootstrap files and skills (as OpenClaw composes
    /// them) and, when tools are offered, the rule for external content.
    pub fn compose_system(&self, base: String, tools: &ToolSet) -> String {
        let mut parts = vec![base];
        if !tools.is_empty() {
            parts.push(prompt::TOOLS_NOTE.to_string());
        }
        if self.tools.read().expect("tools lock").is_some() {
            let ws = Workspace::new(&self.workspace);
            parts.push(ws.project_context_section(DEFAULT_BOOTSTRAP_MAX_CHARS, DEFAULT_BOOTSTRAP_TOTAL_MAX_CHARS));
            if tools.names().contains(&"read") {
                parts.push(ws.skills_section());
            }
        }
        parts.retain(|p| !p.trim().is_empty());
        parts.join("\n\n")
    }

    /// The models to try; [`NO_MODEL`] when no provider is configured at all.
    pub fn chain(&self, model: Option<&str>, fallbacks: Option<&[String]>) -> Result<Vec<ModelRef>, String> {
        if self.config().models.providers.is_empty() {
            return Err(NO_MODEL.to_string());
        }
        self.router().resolve(model, fallbacks).map_err(|e| e.to_string())
    }

    /// The models a turn in session `key` tries: `model` when the request names one, else the
    /// model set on the session with `sessions.patch`, else the agent's default.
    pub async fn session_chain(&self, key: &str, model: Option<&str>) -> Result<Vec<ModelRef>, String> {
        if model.is_some() {
            return self.chain(model, None);
        }
        let lookup = key.to_string();
        let row = self.store.read(move |rd| rd.get_session(&lookup)).await.map_err(|e| e.to_string())?;
        match row.and_then(|r| r.model_override) {
            Some(set) => self.chain(Some(&set), None).map_err(|e| {
                format!(
                    "session {key} is set to model \"{set}\" (sessions.patch), which cannot run: {e}; \
                     set another with `sessions.patch` (model) or clear it with model: null"
                )
            }),
            None => self.chain(None, None),
        }
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
        let chain = match self.session_chain(&session.key, None).await {
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
        let tools = self.turn_tools(&[]);
        let turn = Turn {
            system: self.compose_system(prompt::main_system(self.clock.now_ms(), tz), &tools),
            tools,
            requester: crate::api::Requester::Owner,
            input: Input::Events { extra },
            chain,
            deadline_ms,
            run_id: uuid::Uuid::new_v4().to_string(),
            kind: "event",
            session,
            reply_outbox: None,
        };
        let (run_id, key) = (turn.run_id.clone(), turn.session.key.clone());
        let stream = crate::chat::RunStream::new(&self.events, &self.clock, &run_id, &key);
        self.run_turn(turn, &|_: &str| {}, &|data| stream.agent("tool", data), &|row| stream.recorded(row)).await
    }

    /// Runs a cron job's payload.
    async fn run_job(&self, ctx: &RunContext) -> ExecOutcome {
        let job = &ctx.job;
        match &job.payload {
            Payload::AgentTurn { message, model, fallbacks, tools_allow, .. } => {
                let allow = tools_allow.as_deref().unwrap_or_default();
                self.cron_turn(ctx, message, model.as_deref(), fallbacks.as_deref(), allow).await
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
        tools_allow: &[String],
    ) -> ExecOutcome {
        let job = &ctx.job;
        let session = SessionRef::for_job(job, &ctx.run_id);
        let key = session.key.clone();
        let chain = match self.chain(model, fallbacks) {
            Ok(chain) => chain,
            Err(e) => return ExecOutcome::error(e, ErrorClass::ModelNotFound),
        };
        let tools = self.turn_tools(tools_allow);
        let turn = Turn {
            system: self.compose_system(prompt::cron_system(self.clock.now_ms(), &ctx.tz), &tools),
            tools,
            requester: crate::api::Requester::Owner,
            input: Input::Message {
                text: prompt::cron_user(&job.id, &job.name, message),
                meta: json!({"runId": ctx.run_id, "jobId": job.id}),
                replay: false,
            },
            chain,
            deadline_ms: ctx.deadline_ms,
            run_id: ctx.run_id.clone(),
            kind: "cron",
            session,
            reply_outbox: None,
        };
        let stream = crate::chat::RunStream::new(&self.events, &self.clock, &ctx.run_id, &key);
        let paced = job.pacing.is_some();
        lock(&self.next_checks).insert(key.clone(), NextCheck { job_id: job.id.clone(), paced, delay_ms: None });
        let result =
            self.run_turn(turn, &|_: &str| {}, &|data| stream.agent("tool", data), &|row| stream.recorded(row)).await;
        let next_check_ms = lock(&self.next_checks).remove(&key).and_then(|n| n.delay_ms);
        match result {
            Ok(Some(out)) => {
                let text = out.text.clone();
                ExecOutcome { next_check_ms, ..finished(&out, text) }
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

/// A cron run in progress, as the `cron` tool's `next_check` finds it.
struct NextCheck {
    job_id: String,
    /// The job has pacing bounds.
    paced: bool,
    delay_ms: Option<i64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Agents {
    /// The `cron` tool's `next_check`: the run of a paced job in `session_key` proposes its next
    /// check `delay_ms` after it ends (clamped to the job's pacing when the run succeeds). Answers
    /// the job's id; refused outside a cron run or for a job without pacing.
    pub fn propose_next_check(&self, session_key: &str, delay_ms: i64) -> Result<String, String> {
        let mut runs = lock(&self.inner.next_checks);
        let Some(run) = runs.get_mut(session_key) else {
            return Err("next_check is only available to the currently running job (call it from a cron run)".into());
        };
        if !run.paced {
            return Err(format!(
                "job {} has no pacing bounds; add them with `openclaw cron edit {} --pacing-min 15m --pacing-max 4h`",
                run.job_id, run.job_id
            ));
        }
        run.delay_ms = Some(delay_ms);
        Ok(run.job_id.clone())
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
        tool_calls: (!out.tool_calls.is_empty()).then(|| json!(out.tool_calls)),
        ..Default::default()
    }
}

/// The outcome of a failed turn: the error names the model, the reason is its error class.
fn failed(e: TurnError, session_key: String) -> ExecOutcome {
    let model = match &e {
        TurnError::Model { model, .. } => model.clone(),
        TurnError::ToolSteps { model, .. } => Some(model.clone()),
        _ => None,
    };
    let tool_calls = (!e.tool_calls().is_empty()).then(|| json!(e.tool_calls()));
    ExecOutcome {
        tool_calls,
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
                    if self.inner.config().models.providers.is_empty() {
                        PreflightError::NoModel(e)
                    } else {
                        let configured = self.inner.router().configured();
                        PreflightError::Unresolved(format!("{e}; the configured models are {}", configured.join(", ")))
                    }
                })
            }
            Payload::SystemEvent { .. } | Payload::Command { .. } => Ok(()),
        }
    }
}
