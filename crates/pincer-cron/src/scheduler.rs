//! The scheduler: one task owns every job's timer and state.
//!
//! It sleeps until the earliest due slot (or a 60 s watchdog), reserves each due slot in SQLite
//! (`runId = cron:<jobId>:<slotMs>`, the primary key) *before* the run starts, runs it, then
//! records the outcome and the job's next slot in one transaction — together with the outbox row
//! when there is something to announce. Client commands (add, update, remove, run) go through the
//! same task, so nothing races on a job's state. Reads (`list`, `get`, `runs`) go straight to the
//! store and never advance anything.
//!
//! The task is supervised ([`pincer_core::Supervisor`]): after a panic or an error it starts
//! again from the store — the queue of messages survives it, writes already queued are waited
//! for, runs this process started and whose outcome no actor has handled are taken over (their
//! outcome arrives as usual), and any other run left `running` is recorded as interrupted, as after
//! a crash. A run whose task dies without an outcome is recorded interrupted at once (`Lost`).
//!
//! **Architecture Invariant:** a slot is reserved (committed) before its run starts, and a
//! reserved slot is never run again — not after a crash, not after a restart.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use pincer_core::config::CronConfig;
use pincer_core::crashpoint::Failpoints;
use pincer_core::supervisor::{Task, TaskResult, TaskState};
use pincer_core::{EventBus, Metrics, SharedClock, Supervisor};
use pincer_store::{JobRow, NewDelivery, RunRow, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::job::{
    self, AutoDisabled, CreateContext, DeliveryMode, FailureAlert, Job, JobExt, JobInput, JobPatch, Payload,
};
use crate::runner::{
    Announcer, ExecOutcome, ExecStatus, Origin, Route, RunContext, Settlement, SharedAgentRunner, SharedAnnouncer,
};
use crate::schedule::{Schedule, ScheduleSpec};
use pincer_protocol::schema::cron::{CronStatus, InvalidJob, RunResult};

/// Error backoff after consecutive execution errors: 30 s, 1 min, 5 min, 15 min, 60 min.
pub const ERROR_BACKOFF_MS: [i64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];
/// Recurring jobs turn themselves off after this many errors in a row.
pub const AUTO_DISABLE_AFTER: u32 = 10;
/// Transient errors retry early (before the next slot) this many times.
pub const FAST_RETRIES: u32 = 3;
/// The scheduler re-checks at least this often, whatever is due.
pub const WATCHDOG_MS: i64 = 60_000;
/// Missed jobs that start at once after a restart; the rest are spread out.
pub const CATCH_UP_IMMEDIATE: usize = 5;
pub const CATCH_UP_SPREAD_MS: i64 = 5_000;
/// A run's lease outlives its time limit by this much before the watchdog abandons it.
pub const LEASE_GRACE_MS: i64 = 60_000;
/// Runs without a time limit still hold a finite lease.
const UNLIMITED_LEASE_MS: i64 = 24 * 3_600_000;

/// Everything the scheduler needs from the rest of the gateway.
pub struct CronDeps {
    pub store: Store,
    pub clock: SharedClock,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub config: CronConfig,
    /// `agents.defaults.timezone`, else the host's zone.
    pub default_tz: String,
    /// The registered channels (from the delivery crate's registry) and which are usable.
    pub channels: crate::ChannelCatalog,
    /// This process's generation; it owns the leases it takes.
    pub generation: i64,
    pub agent: Option<SharedAgentRunner>,
    pub announcer: Option<SharedAnnouncer>,
    /// The `pincer` binary, which supervises `command` payloads (`pincer __supervise`); `None`
    /// fails command runs with an error saying so.
    pub command_supervisor: Option<PathBuf>,
    /// Owns the scheduler's task and restarts it after a panic or an error.
    pub supervisor: Supervisor,
    /// Armed fail points (`cron.dispatched`); the default arms none.
    pub failpoints: Failpoints,
}

/// Errors of scheduler operations, mapped to protocol errors by the gateway.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("Automation not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the job changed since you read it (configRevision {current}); fetch it again")]
    Changed { current: String },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the scheduler has stopped")]
    Stopped,
    /// The scheduler's task is not running (restarting after an error, failed, or stopping).
    #[error("{0}")]
    Unavailable(String),
}

/// How `cron.run` runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Now, even if not due or disabled; the schedule's cadence is kept.
    Force,
    /// Only if due.
    Due,
}

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Scheduled,
    CatchUp,
    Retry,
    Manual,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::CatchUp => "catch-up",
            Trigger::Retry => "retry",
            Trigger::Manual => "manual",
        }
    }

    fn parse(s: &str) -> Trigger {
        match s {
            "catch-up" => Trigger::CatchUp,
            "retry" => Trigger::Retry,
            "manual" => Trigger::Manual,
            _ => Trigger::Scheduled,
        }
    }
}

enum Msg {
    Add {
        params: Box<JobInput>,
        reply: oneshot::Sender<Result<Job, CronError>>,
    },
    /// `cron.add` with a `declarationKey` (see `Actor::declare`).
    Declare {
        params: Box<JobInput>,
        reply: oneshot::Sender<Result<(Job, bool), CronError>>,
    },
    /// A new job's insert has committed (or failed): it joins the schedule now.
    Added(Box<Added>),
    Update {
        id: String,
        patch: JobPatch,
        expected: Option<String>,
        reply: oneshot::Sender<Result<Job, CronError>>,
    },
    Remove {
        id: String,
        reply: oneshot::Sender<Result<bool, CronError>>,
    },
    Run {
        id: String,
        mode: RunMode,
        reply: oneshot::Sender<Result<RunResult, CronError>>,
    },
    Finished(Box<Finished>),
    NotReserved {
        job_id: String,
        run_id: String,
        slot_ms: Option<i64>,
        retry: bool,
    },
    /// A run's task ended without reporting an outcome.
    Lost {
        job_id: String,
        run_id: String,
    },
    Settled(Settlement),
    Status {
        reply: oneshot::Sender<CronStatus>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

struct Added {
    job: Job,
    schedule: Schedule,
    stored: Result<(), StoreError>,
    reply: oneshot::Sender<Result<Job, CronError>>,
}

impl Added {
    /// Tells the caller what was saved, without scheduling the job (the scheduler has stopped).
    fn answer_unscheduled(self: Box<Self>) {
        let Added { job, stored, reply, .. } = *self;
        let _ = reply.send(stored.map(|()| job).map_err(CronError::from));
    }
}

struct Finished {
    ctx: RunContext,
    trigger: Trigger,
    outcome: ExecOutcome,
    route: Option<Route>,
    finished_at_ms: i64,
}

/// One job in memory.
struct Entry {
    job: Job,
    schedule: Option<Schedule>,
    /// The slot the next run is for, and why; the fire time is `job.state.next_run_at_ms`.
    slot: Option<(i64, Trigger)>,
    running: Option<Running>,
}

struct Running {
    run_id: String,
    lease_until_ms: i64,
    trigger: Trigger,
    slot_ms: Option<i64>,
    started_at_ms: i64,
    token: Arc<RunToken>,
}

impl Running {
    fn abort(&self) {
        self.token.abort();
    }
}

/// One run of this process, from its reservation until an actor has handled its outcome; kept
/// outside the actor ([`Shared::runs`]) so a restarted actor can take over a run still going.
#[derive(Default)]
struct RunToken {
    /// Set once the reservation committed and the task started.
    task: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// The actor stopped the run on purpose (and records it itself).
    aborted: std::sync::atomic::AtomicBool,
}

impl RunToken {
    fn abort(&self) {
        self.aborted.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.task.lock().expect("task slot").as_ref() {
            t.abort();
        }
    }
}

/// Carries a run forward: its reservation until it commits, then its task until the outcome is
/// queued. Dropped before that (a panic, a lost future) and not aborted by the actor, it tells
/// the actor ([`Msg::Lost`]), so the run is recorded at once instead of when its lease runs out.
struct Carrier {
    token: Arc<RunToken>,
    job_id: String,
    run_id: String,
    tx: mpsc::Sender<Msg>,
    done: bool,
}

impl Carrier {
    /// The actor has been told how the run went.
    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        if self.done || self.token.aborted.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let msg = Msg::Lost { job_id: std::mem::take(&mut self.job_id), run_id: std::mem::take(&mut self.run_id) };
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.tx.try_send(msg)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let tx = self.tx.clone();
            runtime.spawn(async move {
                let _ = tx.send(msg).await;
            });
        }
    }
}

/// Handle to the scheduler task; cheap to clone.
#[derive(Clone)]
pub struct CronService {
    tx: mpsc::Sender<Msg>,
    store: Store,
    shared: Arc<Shared>,
    task: Task,
}

struct Shared {
    clock: SharedClock,
    events: EventBus,
    metrics: Arc<Metrics>,
    config: CronConfig,
    default_tz: String,
    channels: crate::ChannelCatalog,
    generation: i64,
    store: Store,
    agent: Option<SharedAgentRunner>,
    announcer: Option<SharedAnnouncer>,
    command_supervisor: Option<PathBuf>,
    failpoints: Failpoints,
    /// Runs of this process whose outcome no actor has handled yet (see [`RunToken`]).
    runs: std::sync::Mutex<HashMap<String, Arc<RunToken>>>,
}

impl Shared {
    /// Notes a run about to be reserved.
    fn track_run(&self, run_id: &str, token: &Arc<RunToken>) {
        self.runs.lock().expect("runs lock").insert(run_id.to_string(), token.clone());
    }

    /// The token of a run of this process whose outcome no actor has handled yet.
    fn tracked_run(&self, run_id: &str) -> Option<Arc<RunToken>> {
        self.runs.lock().expect("runs lock").get(run_id).cloned()
    }

    /// An actor has handled the run's outcome (or its removal): nothing is left to take over.
    fn forget_run(&self, run_id: &str) {
        self.runs.lock().expect("runs lock").remove(run_id);
    }
}

/// The scheduler's queue: it outlives an actor that dies, so messages wait for the next one.
type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<Msg>>>;

impl CronService {
    /// Loads the jobs, records runs a crash interrupted, coalesces slots missed while the gateway
    /// was down into one catch-up run each, and starts the scheduler task under the supervisor.
    pub async fn start(deps: CronDeps) -> Result<CronService, CronError> {
        let shared = Arc::new(Shared {
            clock: deps.clock,
            events: deps.events,
            metrics: deps.metrics,
            config: deps.config,
            default_tz: deps.default_tz,
            channels: deps.channels,
            generation: deps.generation,
            store: deps.store.clone(),
            agent: deps.agent,
            announcer: deps.announcer,
            command_supervisor: deps.command_supervisor,
            failpoints: deps.failpoints,
            runs: Default::default(),
        });
        let (tx, rx) = mpsc::channel(1024);
        let queue: Queue = Arc::new(tokio::sync::Mutex::new(rx));
        // The first start's errors fail the gateway's start; a restart's are the supervisor's.
        let mut first = Some(Actor::start(shared.clone(), tx.clone(), queue.clone(), false).await?);
        let task = deps.supervisor.spawn("scheduler", true, {
            let (shared, tx) = (shared.clone(), tx.clone());
            move || {
                let first = first.take();
                let (shared, tx, queue) = (shared.clone(), tx.clone(), queue.clone());
                async move {
                    let actor = match first {
                        Some(actor) => actor,
                        None => Actor::start(shared, tx, queue, true).await?,
                    };
                    actor.run().await
                }
            }
        });
        Ok(CronService { tx, store: deps.store, shared, task })
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, CronError> {
        if !self.task.is_running() {
            let report = self.task.report();
            return Err(CronError::Unavailable(match report.state {
                TaskState::Failed => format!(
                    "the scheduler failed after repeated internal errors ({}) and is not running; restart the \
                     gateway, and report the error lines of its log",
                    report.describe()
                ),
                TaskState::Stopped => "the scheduler has stopped: the gateway is stopping".to_string(),
                _ => format!(
                    "the scheduler is restarting after an internal error ({}); try again in a few seconds",
                    report.describe()
                ),
            }));
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| CronError::Stopped)?;
        rx.await.map_err(|_| CronError::Stopped)
    }

    /// Creates a job from `cron.add` params.
    /// Adds a job (or, with a known `declarationKey`, updates that job to the declaration).
    pub async fn add(&self, params: JobInput) -> Result<Job, CronError> {
        if params.declaration_key.is_some() {
            return Ok(self.ask(|reply| Msg::Declare { params: Box::new(params), reply }).await??.0);
        }
        self.ask(|reply| Msg::Add { params: Box::new(params), reply }).await?
    }

    /// Adds a job; with a `declarationKey` already held by a job, updates that job to the
    /// declaration instead. The flag is true when a job was created.
    pub async fn add_or_declare(&self, params: JobInput) -> Result<(Job, bool), CronError> {
        if params.declaration_key.is_none() {
            return Ok((self.add(params).await?, true));
        }
        self.ask(|reply| Msg::Declare { params: Box::new(params), reply }).await?
    }

    /// Applies a partial update (`null` clears a field).
    pub async fn update(&self, id: &str, patch: JobPatch, expected_revision: Option<String>) -> Result<Job, CronError> {
        self.ask(|reply| Msg::Update { id: id.to_string(), patch, expected: expected_revision, reply }).await?
    }

    /// Deletes a job and its runs; false if it did not exist.
    pub async fn remove(&self, id: &str) -> Result<bool, CronError> {
        self.ask(|reply| Msg::Remove { id: id.to_string(), reply }).await?
    }

    /// Runs a job now: `{ok, enqueued, runId}` once the run is durably reserved, or
    /// `{ok, ran: false, reason}`.
    pub async fn run(&self, id: &str, mode: RunMode) -> Result<RunResult, CronError> {
        self.ask(|reply| Msg::Run { id: id.to_string(), mode, reply }).await?
    }

    /// The outbox reports a settled delivery of a cron run.
    pub fn delivery_settled(&self, settlement: Settlement) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(Msg::Settled(settlement)).await;
        });
    }

    /// The state of the scheduler's task (running, restarting, failed).
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The scheduler's own status (`cron.status`).
    pub async fn status(&self) -> Result<CronStatus, CronError> {
        self.ask(|reply| Msg::Status { reply }).await
    }

    /// Stops the scheduler: running runs are aborted and recorded as interrupted.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Msg::Shutdown { reply }).await;
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn default_tz(&self) -> &str {
        &self.shared.default_tz
    }

    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// A stored job, or `NotFound`.
    pub async fn get(&self, id: &str) -> Result<Job, CronError> {
        let id = id.to_string();
        let row = self.store.read({
            let id = id.clone();
            move |rd| rd.get_job(&id)
        });
        let row = row.await?.ok_or(CronError::NotFound(id))?;
        Job::from_stored(&row.job_json, &row.state_json).map_err(|e| CronError::Invalid(e.0))
    }

    /// Every stored job that parses (reads never touch the scheduler).
    pub async fn all_jobs(&self) -> Result<(Vec<Job>, i64), CronError> {
        let (rows, rev) = self.store.read(|rd| Ok((rd.list_jobs()?, rd.cron_revision()?))).await?;
        let jobs = rows.iter().filter_map(|r| Job::from_stored(&r.job_json, &r.state_json).ok()).collect();
        Ok((jobs, rev))
    }

    /// The route a job's result would take, for previews.
    pub fn preview_route(&self, job: &Job) -> (String, String) {
        delivery_preview(job, self.shared.announcer.as_deref())
    }

    /// The next `n` fire times of a job, for previews.
    pub fn upcoming(&self, job: &Job, n: usize) -> Vec<i64> {
        match Schedule::new(&job.schedule, &job.id) {
            Ok(s) => s.upcoming(self.shared.clock.now_ms(), n),
            Err(_) => vec![],
        }
    }
}

/// `(label, detail)` describing where results go, as OpenClaw's `deliveryPreview`.
pub fn delivery_preview(job: &Job, announcer: Option<&dyn Announcer>) -> (String, String) {
    match job.delivery.as_ref().map(|d| d.mode) {
        None | Some(DeliveryMode::None) => ("not requested".into(), "not requested".into()),
        Some(_) => match announcer.map(|a| a.resolve(job)) {
            Some(Ok(Some(route))) => {
                let thread = route.thread_id.as_deref().map(|t| format!(" thread {t}")).unwrap_or_default();
                let label = format!("{} -> {}{thread}", route.channel, route.to);
                (label.clone(), format!("{label} ({})", route.source))
            }
            Some(Ok(None)) => ("not requested".into(), "not requested".into()),
            Some(Err(e)) => ("no route".into(), format!("will fail before running: {e}")),
            None => ("no outbox".into(), "this gateway has no outbox wired".into()),
        },
    }
}

struct Actor {
    s: Arc<Shared>,
    jobs: HashMap<String, Entry>,
    /// `(fire_at, job id)` for every enabled, idle job with a next slot.
    queue: BTreeSet<(i64, String)>,
    invalid: Vec<(String, String)>,
    running_count: usize,
    manual_seq: u64,
    ticks: u64,
    last_tick_ms: Option<i64>,
    last_prune_ms: i64,
    tx: mpsc::Sender<Msg>,
    rx: tokio::sync::OwnedMutexGuard<mpsc::Receiver<Msg>>,
}

fn job_row(job: &Job) -> JobRow {
    JobRow {
        id: job.id.clone(),
        name: job.name.clone(),
        enabled: job.enabled,
        job_json: job.definition_json(),
        state_json: serde_json::to_string(&job.state).expect("state serialises"),
        next_run_at_ms: job.state.next_run_at_ms,
        created_at_ms: job.created_at_ms,
        updated_at_ms: job.updated_at_ms,
    }
}

/// True for `NO_REPLY` (trimmed, any case), as a whole reply or as its last line.
pub fn is_silent(text: &str) -> bool {
    let t = text.trim();
    t.eq_ignore_ascii_case("NO_REPLY") || t.lines().last().is_some_and(|l| l.trim().eq_ignore_ascii_case("NO_REPLY"))
}

/// Completion from the three outcomes, per OpenClaw's `resolveCronCompletionStatus`.
pub fn completion_status(status: ExecStatus, delivery: &str, suppressed: bool, best_effort: bool) -> &'static str {
    match status {
        ExecStatus::Error | ExecStatus::Skipped => "failed",
        ExecStatus::Ok => match delivery {
            "delivered" | "not-requested" => "succeeded",
            "not-delivered" if suppressed || best_effort => "succeeded",
            "unknown" if best_effort => "succeeded",
            "not-delivered" => "failed",
            _ => "unknown",
        },
    }
}

fn transient(reason: Option<&str>) -> bool {
    matches!(reason, Some("rate_limit" | "overloaded" | "timeout" | "server_error" | "network"))
}

impl Actor {
    /// An actor with the jobs and runs in the store. `restart`: the previous actor died, so wait
    /// for the writes it queued first, and take over the runs this process still carries.
    async fn start(s: Arc<Shared>, tx: mpsc::Sender<Msg>, queue: Queue, restart: bool) -> Result<Actor, CronError> {
        let rx = queue.lock_owned().await;
        if restart {
            // Writes commit in order: once this one has, everything the previous actor queued has.
            s.store.write(|_| Ok(())).await?;
        }
        let mut actor = Actor {
            s,
            jobs: HashMap::new(),
            queue: BTreeSet::new(),
            invalid: Vec::new(),
            running_count: 0,
            manual_seq: 0,
            ticks: 0,
            last_tick_ms: None,
            last_prune_ms: i64::MIN,
            tx,
            rx,
        };
        actor.load().await?;
        for settlement in settled_while_away(&actor.s.store).await? {
            actor.settled(settlement).await;
        }
        if restart {
            tracing::warn!(
                jobs = actor.jobs.len(),
                running = actor.running_count,
                "cron: the scheduler restarted and reloaded its state from the store"
            );
        }
        Ok(actor)
    }

    fn now(&self) -> i64 {
        self.s.clock.now_ms()
    }

    fn ctx(&self) -> CreateContext<'_> {
        CreateContext { now_ms: self.now(), default_tz: &self.s.default_tz, channels: &self.s.channels }
    }

    fn emit(&self, action: &str, job: &Job, extra: Value) {
        let mut payload = json!({ "jobId": job.id, "action": action });
        if matches!(action, "added" | "updated") {
            payload["job"] = job.view();
        }
        if let Some(next) = job.state.next_run_at_ms {
            payload["nextRunAtMs"] = json!(next);
        }
        if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
            p.extend(e);
        }
        self.s.events.emit("cron", payload, Some("operator.read"));
    }

    fn dequeue(&mut self, id: &str) {
        if let Some(next) = self.jobs.get(id).and_then(|e| e.job.state.next_run_at_ms) {
            self.queue.remove(&(next, id.to_string()));
        }
    }

    fn enqueue(&mut self, id: &str) {
        if let Some(e) = self.jobs.get(id)
            && e.job.enabled
            && e.running.is_none()
            && let Some(next) = e.job.state.next_run_at_ms
        {
            self.queue.insert((next, id.to_string()));
        }
    }

    /// Sets a job's next fire time (and slot identity); keeps the queue in step.
    fn set_next(&mut self, id: &str, next: Option<(i64, i64, Trigger)>) {
        self.dequeue(id);
        if let Some(e) = self.jobs.get_mut(id) {
            e.job.state.next_run_at_ms = next.map(|(fire, _, _)| fire);
            e.slot = next.map(|(_, slot, trigger)| (slot, trigger));
        }
        self.enqueue(id);
    }

    /// The next regular slot strictly after `after`.
    fn natural_next(&self, id: &str, after: i64) -> Option<(i64, i64, Trigger)> {
        let e = self.jobs.get(id)?;
        let next = e.schedule.as_ref()?.next_after(after)?;
        Some((next, next, Trigger::Scheduled))
    }

    async fn load(&mut self) -> Result<(), CronError> {
        let now = self.now();
        let (rows, running) = self.s.store.read(|rd| Ok((rd.list_jobs()?, rd.running_runs()?))).await?;
        for row in rows {
            match Job::from_stored(&row.job_json, &row.state_json) {
                Ok(job) => {
                    let schedule = match Schedule::new(&job.schedule, &job.id) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            self.invalid.push((job.id.clone(), e.to_string()));
                            None
                        }
                    };
                    self.jobs.insert(job.id.clone(), Entry { job, schedule, slot: None, running: None });
                }
                // Never drop a row we cannot read: it stays in the store, visible in `cron.status`.
                Err(e) => {
                    tracing::error!(job = %row.id, error = %e, "cron: stored job does not parse; it will not run");
                    self.invalid.push((row.id.clone(), e.0));
                }
            }
        }
        let mut dirty: Vec<String> = Vec::new();
        let mut interrupted_runs = Vec::new();
        // Runs a previous process left `running` were interrupted (crash, kill -9, power loss);
        // so were this process's, unless their task still runs (the scheduler restarted).
        for mut run in running {
            if self.adopt(&run) {
                continue;
            }
            if let Some(token) = self.s.tracked_run(&run.run_id) {
                token.abort();
                self.s.forget_run(&run.run_id);
            }
            let mut record: Value = serde_json::from_str(&run.record_json).unwrap_or_else(|_| json!({}));
            let error = interrupted_error(record.get_mut("command"));
            let error = error.as_str();
            record["status"] = json!("error");
            record["error"] = json!(error);
            record["errorReason"] = json!("interrupted");
            record["deliveryStatus"] = json!("not-delivered");
            record["completionStatus"] = json!("failed");
            record["finishedAtMs"] = json!(now);
            record["durationMs"] = json!(now - run.started_at_ms);
            run.status = "error".into();
            run.finished_at_ms = Some(now);
            run.delivery_status = Some("not-delivered".into());
            run.completion_status = Some("failed".into());
            run.record_json = record.to_string();
            if let Some(entry) = self.jobs.get_mut(&run.job_id) {
                let st = &mut entry.job.state;
                st.running_at_ms = None;
                st.running_run_id = None;
                st.last_run_id = Some(run.run_id.clone());
                st.last_run_at_ms = Some(run.started_at_ms);
                st.last_run_status = Some("error".into());
                st.last_status = Some("error".into());
                st.last_error = Some(error.into());
                st.last_error_reason = Some("interrupted".into());
                st.last_completion_status = Some("failed".into());
                st.consecutive_errors += 1;
                st.consecutive_failures += 1;
                // The interrupted slot is consumed: continue from it.
                let after = run.slot_ms.unwrap_or(run.started_at_ms);
                if run.trigger != "manual" {
                    let next = entry.schedule.as_ref().and_then(|s| s.next_after(after));
                    entry.job.state.next_run_at_ms = next;
                    if matches!(entry.job.schedule, ScheduleSpec::At { .. }) {
                        entry.job.enabled = false;
                    }
                }
                dirty.push(run.job_id.clone());
            }
            tracing::warn!(run = %run.run_id, "cron: run was interrupted by a restart; recorded as error");
            interrupted_runs.push(run);
        }
        // Slots missed while the gateway was down: one coalesced catch-up run per job.
        let mut missed: Vec<(i64, String)> = Vec::new();
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            let e = self.jobs.get_mut(&id).expect("listed");
            if !e.job.enabled || e.schedule.is_none() || e.running.is_some() {
                continue;
            }
            match e.job.state.next_run_at_ms {
                None => {
                    let next = e.schedule.as_ref().and_then(|s| s.next_after(now));
                    if next.is_some() {
                        e.job.state.next_run_at_ms = next;
                        dirty.push(id.clone());
                    }
                }
                Some(next) if next <= now => missed.push((next, id.clone())),
                Some(_) => {}
            }
        }
        missed.sort();
        let mut immediate = 0usize;
        for (stored_next, id) in missed {
            let skip = self.s.config.skip_missed_jobs;
            let e = self.jobs.get_mut(&id).expect("listed");
            let schedule = e.schedule.as_ref().expect("checked");
            let is_at = matches!(e.job.schedule, ScheduleSpec::At { .. });
            if skip && !is_at {
                e.job.state.next_run_at_ms = schedule.next_after(now);
                dirty.push(id);
                continue;
            }
            let slot = if is_at {
                stored_next
            } else {
                schedule.latest_at_or_before(now).unwrap_or(stored_next).max(stored_next)
            };
            let fire = if immediate < CATCH_UP_IMMEDIATE {
                now
            } else {
                now + CATCH_UP_SPREAD_MS * (immediate - CATCH_UP_IMMEDIATE + 1) as i64
            };
            immediate += 1;
            e.job.state.next_run_at_ms = Some(fire);
            e.slot = Some((slot, Trigger::CatchUp));
            dirty.push(id);
        }
        dirty.sort();
        dirty.dedup();
        let rows: Vec<JobRow> = dirty.iter().filter_map(|id| self.jobs.get(id)).map(|e| job_row(&e.job)).collect();
        self.s
            .store
            .write(move |tx| {
                for run in &interrupted_runs {
                    tx.update_run(run)?;
                }
                for row in &rows {
                    tx.update_job(row)?;
                }
                Ok(())
            })
            .await?;
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            self.enqueue(&id);
        }
        tracing::info!(
            jobs = self.jobs.len(),
            due = self.queue.iter().filter(|(t, _)| *t <= now).count(),
            "cron: scheduler loaded"
        );
        Ok(())
    }

    /// Takes over a run of this process whose outcome no actor has handled: its outcome (or
    /// word that it was lost) arrives as usual, or is already queued.
    fn adopt(&mut self, run: &RunRow) -> bool {
        let Some(token) = self.s.tracked_run(&run.run_id).filter(|_| run.lease_owner == self.s.generation) else {
            return false;
        };
        let Some(entry) = self.jobs.get_mut(&run.job_id) else { return false };
        entry.job.state.running_at_ms = Some(run.started_at_ms);
        entry.job.state.running_run_id = Some(run.run_id.clone());
        let lease_until_ms = run.lease_until_ms.unwrap_or_else(|| run.started_at_ms + UNLIMITED_LEASE_MS);
        entry.running = Some(Running {
            run_id: run.run_id.clone(),
            lease_until_ms,
            trigger: Trigger::parse(&run.trigger),
            slot_ms: run.slot_ms,
            started_at_ms: run.started_at_ms,
            token,
        });
        self.running_count += 1;
        tracing::info!(run = %run.run_id, "cron: run still in flight across the scheduler's restart; taken over");
        true
    }

    /// A run's task (or its reservation) ended without reporting an outcome — a panic: the run
    /// is recorded interrupted now, rather than when its lease runs out.
    fn lost(&mut self, job_id: &str, run_id: &str) {
        let Some(entry) = self.jobs.get(job_id) else {
            self.s.forget_run(run_id);
            return;
        };
        let Some(r) = entry.running.as_ref().filter(|r| r.run_id == run_id) else { return };
        tracing::error!(run = %run_id, "cron: a run ended without reporting its outcome; recorded as interrupted");
        let outcome = ExecOutcome::error(
            "interrupted: the run's task ended without reporting an outcome (an internal error; see the gateway \
             log); the slot is not run again",
            "interrupted",
        );
        let ctx = RunContext {
            run_id: run_id.to_string(),
            job: entry.job.clone(),
            slot_ms: r.slot_ms,
            started_at_ms: r.started_at_ms,
            deadline_ms: None,
            tz: entry.job.display_tz(&self.s.default_tz).to_string(),
        };
        let trigger = r.trigger;
        self.finished(Finished { ctx, trigger, outcome, route: None, finished_at_ms: self.now() });
    }

    async fn run(mut self) -> TaskResult {
        // Wall time the actor spends per wake-up (handling messages, starting due runs), for
        // `pincer_cron_wake_seconds`; measured on the real clock because it is a cost, not a schedule.
        let mut busy_since = std::time::Instant::now();
        loop {
            // Handle everything already queued first, so finishes and adds batch into one pass.
            while let Ok(msg) = self.rx.try_recv() {
                if let Msg::Shutdown { reply } = msg {
                    self.shutdown().await;
                    self.close_queue();
                    let _ = reply.send(());
                    return Ok(());
                }
                self.handle(msg).await;
            }
            self.dispatch_due()?;
            let now = self.now();
            let can_start = self.running_count < self.s.config.max_concurrent_runs as usize && self.s.config.enabled;
            let next_due = if can_start { self.queue.first().map(|(t, _)| *t) } else { None };
            let wake = next_due.map_or(now + WATCHDOG_MS, |t| t.min(now + WATCHDOG_MS)).max(now);
            let clock = self.s.clock.clone();
            self.s.metrics.observe(
                "pincer_cron_wake_seconds",
                "Time the scheduler spends per wake-up (messages, due runs).",
                &[],
                busy_since.elapsed().as_secs_f64(),
            );
            let woke = tokio::select! {
                biased;
                msg = self.rx.recv() => Some(msg),
                _ = clock.sleep_until(wake) => None,
            };
            busy_since = std::time::Instant::now();
            match woke {
                Some(Some(Msg::Shutdown { reply })) => {
                    self.shutdown().await;
                    self.close_queue();
                    let _ = reply.send(());
                    return Ok(());
                }
                Some(Some(msg)) => self.handle(msg).await,
                Some(None) => return Ok(()),
                None => self.watchdog(),
            }
        }
    }

    /// Takes no message any more; an add whose insert committed still tells its caller so.
    fn close_queue(&mut self) {
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Added(a) = msg {
                a.answer_unscheduled();
            }
        }
    }

    /// Abandons runs that outlived their lease (time limit plus grace).
    fn watchdog(&mut self) {
        let now = self.now();
        self.ticks += 1;
        self.last_tick_ms = Some(now);
        self.s.metrics.inc("pincer_cron_wakes_total", "Scheduler wake-ups.", &[]);
        self.prune_runs(now);
        let expired: Vec<(String, String)> = self
            .jobs
            .iter()
            .filter_map(|(id, e)| {
                e.running.as_ref().filter(|r| r.lease_until_ms < now).map(|r| (id.clone(), r.run_id.clone()))
            })
            .collect();
        for (job_id, run_id) in expired {
            if let Some(r) = self.jobs.get_mut(&job_id).and_then(|e| e.running.as_ref()) {
                r.abort();
            }
            tracing::error!(run = %run_id, "cron: run outlived its lease; abandoning it");
            let outcome = ExecOutcome::error("the run outlived its time limit and lease, and was abandoned", "timeout");
            let _ = self.tx.try_send(Msg::Finished(Box::new(Finished {
                ctx: RunContext {
                    run_id,
                    job: self.jobs[&job_id].job.clone(),
                    slot_ms: None,
                    started_at_ms: self.jobs[&job_id].job.state.running_at_ms.unwrap_or(now),
                    deadline_ms: None,
                    tz: self.s.default_tz.clone(),
                },
                trigger: Trigger::Scheduled,
                outcome,
                route: None,
                finished_at_ms: now,
            })));
        }
    }

    /// Run history retention (`cron.runRetention`): by age and by count per job, hourly.
    fn prune_runs(&mut self, now: i64) {
        if now.saturating_sub(self.last_prune_ms) < 3_600_000 {
            return;
        }
        self.last_prune_ms = now;
        let retention = &self.s.config.run_retention;
        let max_age =
            pincer_core::duration::parse_duration_ms(&retention.max_age, None).unwrap_or(30 * 86_400_000) as i64;
        let (cutoff, per_job) = (now - max_age, retention.max_per_job);
        let write = self.s.store.write(move |tx| tx.prune_runs(cutoff, per_job));
        tokio::spawn(async move {
            match write.await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "cron: pruned old runs"),
                Err(e) => tracing::warn!(error = %e, "cron: cannot prune runs"),
            }
        });
    }

    /// Starts the due runs; an error only from an armed fail point (`cron.dispatched`).
    fn dispatch_due(&mut self) -> Result<(), pincer_core::crashpoint::Injected> {
        if !self.s.config.enabled {
            return Ok(());
        }
        let now = self.now();
        let free = (self.s.config.max_concurrent_runs as usize).saturating_sub(self.running_count);
        let mut picked = Vec::new();
        while picked.len() < free {
            match self.queue.first() {
                Some((t, _)) if *t <= now => {
                    let (fire, id) = self.queue.pop_first().expect("present");
                    let (slot, trigger) = self.jobs[&id].slot.unwrap_or((fire, Trigger::Scheduled));
                    picked.push((id.clone(), Some(slot), trigger, format!("cron:{id}:{slot}")));
                }
                _ => break,
            }
        }
        if !picked.is_empty() {
            self.ticks += 1;
            self.last_tick_ms = Some(now);
            let reserving = self.start_runs(picked, now);
            tokio::spawn(reserving);
            self.s.failpoints.check("cron.dispatched")?;
        }
        Ok(())
    }

    /// Marks the picked jobs running and queues their reservations as one transaction. Each run
    /// starts only after that transaction committed; the returned future resolves then, with
    /// `(run_id, reserved)` per run. The actor does not wait for it, so it never blocks on a
    /// disk flush and concurrent reservations and outcomes share group commits.
    fn start_runs(
        &mut self,
        picked: Vec<(String, Option<i64>, Trigger, String)>,
        now: i64,
    ) -> impl std::future::Future<Output = Vec<(String, bool)>> + Send + 'static {
        let mut rows = Vec::new();
        let mut starts = Vec::new();
        for (id, slot, trigger, run_id) in picked {
            self.dequeue(&id);
            let e = self.jobs.get_mut(&id).expect("picked jobs exist");
            let timeout = e.job.payload.timeout_ms().map(|t| t as i64);
            let lease_until_ms = now + timeout.unwrap_or(UNLIMITED_LEASE_MS) + LEASE_GRACE_MS;
            let mut record = json!({
                "runId": run_id, "jobId": id, "jobName": e.job.name, "trigger": trigger.as_str(),
                "slotMs": slot, "runAtMs": slot.unwrap_or(now), "startedAtMs": now,
            });
            if matches!(e.job.payload, Payload::Command { .. }) {
                // Recovery reads how far the command got: `pending`, then `started`, `exited`.
                record["command"] = json!({ "state": "pending" });
            }
            let run = RunRow {
                run_id: run_id.clone(),
                job_id: id.clone(),
                slot_ms: slot,
                trigger: trigger.as_str().into(),
                status: "running".into(),
                lease_owner: self.s.generation,
                lease_until_ms: Some(lease_until_ms),
                started_at_ms: now,
                finished_at_ms: None,
                delivery_status: None,
                completion_status: None,
                record_json: record.to_string(),
            };
            e.job.state.running_at_ms = Some(now);
            e.job.state.running_run_id = Some(run_id.clone());
            let token = Arc::new(RunToken::default());
            self.s.track_run(&run_id, &token);
            e.running = Some(Running {
                run_id: run_id.clone(),
                lease_until_ms,
                trigger,
                slot_ms: slot,
                started_at_ms: now,
                token: token.clone(),
            });
            self.running_count += 1;
            rows.push((run, job_row(&e.job)));
            let ctx = RunContext {
                run_id,
                job: e.job.clone(),
                slot_ms: slot,
                started_at_ms: now,
                deadline_ms: timeout.map(|t| now + t),
                tz: e.job.display_tz(&self.s.default_tz).to_string(),
            };
            let carrier =
                Carrier { token, job_id: id.clone(), run_id: ctx.run_id.clone(), tx: self.tx.clone(), done: false };
            starts.push((ctx, trigger, carrier));
        }
        let write = self.s.store.write(move |tx| {
            let mut out = Vec::new();
            for (run, job) in &rows {
                let ok = tx.reserve_run(run)?;
                if ok {
                    tx.update_job(job)?;
                }
                out.push(ok);
            }
            Ok(out)
        });
        let (shared, tx) = (self.s.clone(), self.tx.clone());
        async move {
            let reserved = match write.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cron: cannot reserve runs; retrying in 5 s");
                    Vec::new()
                }
            };
            // Once per reserved slot, so `cron.reserved:<n>` is the n-th slot, whatever the batching.
            for _ in reserved.iter().filter(|ok| **ok) {
                pincer_core::crashpoint::hit("cron.reserved");
            }
            let failed = reserved.len() != starts.len();
            let mut results = Vec::new();
            for (i, (ctx, trigger, carrier)) in starts.into_iter().enumerate() {
                let ok = reserved.get(i).copied().unwrap_or(false);
                let run_id = ctx.run_id.clone();
                if !ok {
                    let _ = tx
                        .send(Msg::NotReserved {
                            job_id: ctx.job.id.clone(),
                            run_id: run_id.clone(),
                            slot_ms: ctx.slot_ms,
                            retry: failed,
                        })
                        .await;
                    carrier.done();
                    results.push((run_id, false));
                    continue;
                }
                let started = shared.clock.now_ms();
                if let (Some(slot), Trigger::Scheduled) = (ctx.slot_ms, trigger) {
                    let lag = (started - slot).max(0) as f64 / 1000.0;
                    shared.metrics.observe(
                        "pincer_cron_slot_lag_seconds",
                        "Time from a slot to its run's start.",
                        &[],
                        lag,
                    );
                }
                let mut event = json!({ "jobId": ctx.job.id, "action": "started", "runId": run_id, "trigger": trigger.as_str(),
                                        "runAtMs": ctx.slot_ms.unwrap_or(ctx.started_at_ms) });
                if let Some(next) = ctx.job.state.next_run_at_ms {
                    event["nextRunAtMs"] = json!(next);
                }
                shared.events.emit("cron", event, Some("operator.read"));
                let token = carrier.token.clone();
                let handle = tokio::spawn(run_task(shared.clone(), ctx, trigger, tx.clone(), carrier));
                *token.task.lock().expect("task slot") = Some(handle.abort_handle());
                results.push((run_id, true));
            }
            results
        }
    }

    /// A reservation did not happen: the slot had already run (never run it again), or the store
    /// failed (try again in 5 s).
    fn not_reserved(&mut self, job_id: &str, run_id: &str, slot_ms: Option<i64>, retry: bool) {
        self.s.forget_run(run_id);
        let now = self.now();
        let Some(e) = self.jobs.get_mut(job_id) else { return };
        if e.running.as_ref().is_none_or(|r| r.run_id != run_id) {
            return;
        }
        e.running = None;
        e.job.state.running_at_ms = None;
        e.job.state.running_run_id = None;
        self.running_count -= 1;
        let next = if retry {
            let slot = self.jobs[job_id].slot;
            Some((now + 5_000, slot.map_or(now + 5_000, |s| s.0), slot.map_or(Trigger::Scheduled, |s| s.1)))
        } else {
            tracing::info!(run = %run_id, "cron: slot already reserved earlier; skipping it");
            if run_id.starts_with("manual:") {
                self.jobs[job_id].job.state.next_run_at_ms.map(|t| (t, t, Trigger::Scheduled))
            } else {
                self.natural_next(job_id, slot_ms.unwrap_or(now).max(now - 1))
            }
        };
        self.set_next(job_id, next);
        let job = self.jobs[job_id].job.clone();
        self.persist(&job);
    }

    /// Queues a job-state write (committed in order with later writes) and logs failures.
    fn persist(&self, job: &Job) {
        let row = job_row(job);
        let write = self.s.store.write(move |tx| tx.update_job(&row).map(|_| ()));
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::error!(error = %e, "cron: cannot save job state");
            }
        });
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Add { params, reply } => self.add(*params, reply),
            Msg::Declare { params, reply } => {
                let _ = reply.send(self.declare(*params).await);
            }
            Msg::Added(a) => {
                let Added { job, schedule, stored, reply } = *a;
                let _ = reply.send(self.added(job, schedule, stored));
            }
            Msg::Update { id, patch, expected, reply } => {
                let _ = reply.send(self.update(&id, patch, expected).await);
            }
            Msg::Remove { id, reply } => {
                let _ = reply.send(self.remove(&id).await);
            }
            Msg::Run { id, mode, reply } => {
                let _ = reply.send(self.run_now(&id, mode).await);
            }
            Msg::Finished(f) => self.finished(*f),
            Msg::NotReserved { job_id, run_id, slot_ms, retry } => self.not_reserved(&job_id, &run_id, slot_ms, retry),
            Msg::Lost { job_id, run_id } => self.lost(&job_id, &run_id),
            Msg::Settled(s) => self.settled(s).await,
            Msg::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Msg::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    fn status(&self) -> CronStatus {
        let path = self.s.store.path().display().to_string();
        CronStatus {
            enabled: self.s.config.enabled,
            storage: "sqlite".into(),
            sqlite_path: path.clone(),
            store_path: path,
            jobs: self.jobs.len() as u64,
            enabled_jobs: self.jobs.values().filter(|e| e.job.enabled).count() as u64,
            running: self.running_count as u64,
            max_concurrent_runs: self.s.config.max_concurrent_runs as u64,
            next_wake_at_ms: self.queue.first().map(|(t, _)| *t),
            last_tick_at_ms: self.last_tick_ms,
            ticks: self.ticks,
            timezone: self.s.default_tz.clone(),
            skip_missed_jobs: self.s.config.skip_missed_jobs,
            invalid_jobs: self.invalid.iter().map(|(id, e)| InvalidJob { id: id.clone(), error: e.clone() }).collect(),
            extra: Default::default(),
        }
    }

    /// Refuses a job whose delivery names a channel (not `last`) that cannot take it under this
    /// configuration — the channel is not configured, or the target is missing or malformed:
    /// every run would fail at delivery. A `last` route may exist later, so it is let through.
    fn refuse_certain_failure(&self, job: &Job) -> Result<(), CronError> {
        let Some(d) = &job.delivery else { return Ok(()) };
        let explicit = d.channel.as_deref().is_some_and(|c| c != "last");
        if !explicit || d.mode != DeliveryMode::Announce {
            return Ok(());
        }
        match self.s.announcer.as_deref().map(|a| a.resolve(job)) {
            Some(Err(e)) => Err(CronError::Invalid(format!("this job's delivery would fail on every run: {e}"))),
            _ => Ok(()),
        }
    }

    /// `cron.add` with a `declarationKey`: a job already holding the key becomes the declaration;
    /// otherwise the job is created with its insert awaited here (not shared with other adds), so
    /// a second declaration of the same key, handled after it, finds it and never makes two.
    async fn declare(&mut self, params: JobInput) -> Result<(Job, bool), CronError> {
        let declared = params.declaration_key.as_deref().and_then(|key| {
            self.jobs.values().find(|e| e.job.declaration_key.as_deref() == Some(key)).map(|e| e.job.clone())
        });
        if let Some(existing) = declared {
            return Ok((self.redeclare(existing, params).await?, false));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.now();
        let mut job = job::create(params, id, &self.ctx()).map_err(|e| CronError::Invalid(e.0))?;
        let schedule = Schedule::new(&job.schedule, &job.id).map_err(|e| CronError::Invalid(e.to_string()))?;
        job.state.next_run_at_ms = if job.enabled { first_fire(&job, &schedule, now) } else { None };
        self.refuse_certain_failure(&job)?;
        let row = job_row(&job);
        let stored = self.s.store.write(move |tx| tx.insert_job(&row)).await;
        Ok((self.added(job, schedule, stored)?, true))
    }

    /// The same `declarationKey` again: the job becomes the declaration (a full replacement of its
    /// definition; its id, creation time and run state stay), through the ordinary update path.
    async fn redeclare(&mut self, existing: Job, params: JobInput) -> Result<Job, CronError> {
        let mut declared =
            job::create(params, existing.id.clone(), &self.ctx()).map_err(|e| CronError::Invalid(e.0))?;
        // OpenClaw keeps an interval's anchor when `everyMs` is unchanged.
        if let (
            crate::schedule::ScheduleSpec::Every { every_ms: new_every, anchor_ms: new_anchor },
            crate::schedule::ScheduleSpec::Every { every_ms: old_every, anchor_ms: old_anchor },
        ) = (&mut declared.schedule, &existing.schedule)
            && new_every == old_every
        {
            *new_anchor = *old_anchor;
        }
        let mut current = serde_json::to_value(&existing).expect("jobs serialise");
        let target = serde_json::to_value(&declared).expect("jobs serialise");
        let (Some(current), Some(target)) = (current.as_object_mut(), target.as_object()) else {
            return Err(CronError::Invalid("a job is a JSON object".into()));
        };
        // A merge patch from the stored job to the declaration: every field set, the rest cleared.
        let mut patch = serde_json::Map::new();
        for key in current.keys() {
            if !target.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
        for (key, value) in target {
            if matches!(key.as_str(), "id" | "createdAtMs" | "updatedAtMs" | "state" | "declarationKey") {
                continue;
            }
            patch.insert(key.clone(), value.clone());
        }
        for key in ["id", "createdAtMs", "updatedAtMs", "state", "declarationKey"] {
            patch.remove(key);
        }
        self.update(&existing.id, JobPatch(patch), None).await
    }

    /// Checks a new job and queues its insert without waiting for it: the job joins the schedule
    /// once the insert committed ([`Msg::Added`]), so adds arriving together share one commit.
    fn add(&mut self, params: JobInput, reply: oneshot::Sender<Result<Job, CronError>>) {
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.now();
        let prepared = job::create(params, id, &self.ctx()).map_err(|e| CronError::Invalid(e.0)).and_then(|mut job| {
            let schedule = Schedule::new(&job.schedule, &job.id).map_err(|e| CronError::Invalid(e.to_string()))?;
            job.state.next_run_at_ms = if job.enabled { first_fire(&job, &schedule, now) } else { None };
            Ok((job, schedule))
        });
        let prepared = prepared.and_then(|(job, schedule)| self.refuse_certain_failure(&job).map(|()| (job, schedule)));
        let (job, schedule) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let row = job_row(&job);
        let write = self.s.store.write(move |tx| tx.insert_job(&row));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let stored = write.await;
            if let Err(mpsc::error::SendError(Msg::Added(a))) =
                tx.send(Msg::Added(Box::new(Added { job, schedule, stored, reply }))).await
            {
                // The scheduler stopped meanwhile: the caller still hears what was saved.
                a.answer_unscheduled();
            }
        });
    }

    fn added(&mut self, job: Job, schedule: Schedule, stored: Result<(), StoreError>) -> Result<Job, CronError> {
        stored?;
        self.jobs
            .insert(job.id.clone(), Entry { job: job.clone(), schedule: Some(schedule), slot: None, running: None });
        self.enqueue(&job.id);
        self.emit("added", &job, json!({}));
        Ok(job)
    }

    async fn update(&mut self, id: &str, patch: JobPatch, expected: Option<String>) -> Result<Job, CronError> {
        let e = self.jobs.get(id).ok_or_else(|| CronError::NotFound(id.into()))?;
        if let Some(expected) = expected
            && expected != e.job.config_revision()
        {
            return Err(CronError::Changed { current: e.job.config_revision() });
        }
        let mut next = job::apply_patch(&e.job, &patch, &self.ctx()).map_err(|e| CronError::Invalid(e.0))?;
        let schedule = Schedule::new(&next.schedule, &next.id).map_err(|e| CronError::Invalid(e.to_string()))?;
        // Only a changed delivery: a job stored before the check can still be enabled or renamed.
        if next.delivery != e.job.delivery {
            self.refuse_certain_failure(&next)?;
        }
        let now = self.now();
        let was_enabled = e.job.enabled;
        let schedule_changed = next.schedule != e.job.schedule;
        if next.enabled && !was_enabled {
            // Enabling clears what made the scheduler give up.
            next.state.auto_disabled = None;
            next.state.consecutive_errors = 0;
            next.state.schedule_error_count = 0;
        }
        let recompute = schedule_changed || next.enabled != was_enabled;
        self.dequeue(id);
        let row = {
            let e = self.jobs.get_mut(id).expect("checked");
            if recompute {
                next.state.next_run_at_ms = if next.enabled { first_fire(&next, &schedule, now) } else { None };
                e.slot = None;
            }
            e.job = next.clone();
            e.schedule = Some(schedule);
            job_row(&next)
        };
        self.enqueue(id);
        self.s.store.write(move |tx| tx.update_job(&row)).await?;
        self.invalid.retain(|(i, _)| i != id);
        self.emit("updated", &next, json!({}));
        Ok(next)
    }

    async fn remove(&mut self, id: &str) -> Result<bool, CronError> {
        let existed_in_memory = self.jobs.contains_key(id);
        self.dequeue(id);
        if let Some(e) = self.jobs.remove(id) {
            if let Some(r) = e.running {
                r.abort();
                self.s.forget_run(&r.run_id);
                self.running_count -= 1;
            }
            self.emit("removed", &e.job, json!({}));
        }
        let id_owned = id.to_string();
        let removed = self.s.store.write(move |tx| tx.delete_job(&id_owned)).await?;
        self.invalid.retain(|(i, _)| i != id);
        Ok(removed || existed_in_memory)
    }

    async fn run_now(&mut self, id: &str, mode: RunMode) -> Result<RunResult, CronError> {
        let now = self.now();
        let e = self.jobs.get(id).ok_or_else(|| CronError::NotFound(id.into()))?;
        if e.running.is_some() {
            return Ok(RunResult::not_ran("already-running"));
        }
        if e.schedule.is_none() {
            return Ok(RunResult::not_ran("invalid-spec"));
        }
        let (slot, trigger, run_id) = match mode {
            RunMode::Due => {
                let due = e.job.enabled && e.job.state.next_run_at_ms.is_some_and(|t| t <= now);
                if !due {
                    return Ok(RunResult::not_ran("not-due"));
                }
                let (slot, trigger) = e.slot.unwrap_or((e.job.state.next_run_at_ms.expect("due"), Trigger::Scheduled));
                (Some(slot), trigger, format!("cron:{id}:{slot}"))
            }
            RunMode::Force => {
                self.manual_seq += 1;
                (None, Trigger::Manual, format!("manual:{id}:{now}:{}", self.manual_seq))
            }
        };
        let started = self.start_runs(vec![(id.to_string(), slot, trigger, run_id.clone())], now).await;
        match started.first() {
            Some((_, true)) => Ok(RunResult::enqueued(run_id)),
            Some((_, false)) => Ok(RunResult::not_ran("already-ran")),
            None => Err(CronError::Invalid("the run could not be reserved; see the gateway log".into())),
        }
    }

    /// Records an execution outcome; hands any deliverable to the outbox in the same transaction.
    fn finished(&mut self, f: Finished) {
        let Finished { ctx, trigger, outcome, route, finished_at_ms: now } = f;
        self.s.forget_run(&ctx.run_id);
        let Some(entry) = self.jobs.get_mut(&ctx.job.id) else {
            tracing::info!(run = %ctx.run_id, "cron: run finished for a removed job");
            return;
        };
        if entry.running.as_ref().is_none_or(|r| r.run_id != ctx.run_id) {
            return; // Already recorded (e.g. abandoned by the watchdog).
        }
        entry.running = None;
        self.running_count -= 1;
        let job_id = ctx.job.id.clone();
        let status = outcome.exec_status();
        let best_effort = entry.job.delivery.as_ref().is_some_and(|d| d.best_effort());
        let mode = entry.job.delivery.as_ref().map(|d| d.mode).unwrap_or(DeliveryMode::None);
        let summary = outcome.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
        let duration = now - ctx.started_at_ms;
        self.s.metrics.inc(
            "pincer_cron_runs_total",
            "Finished runs by execution status.",
            &[("status", status.as_str())],
        );

        // Delivery: what to send, if anything.
        let mut delivery_status = "not-requested";
        let mut suppression: Option<&str> = None;
        let mut delivery_error: Option<String> = None;
        let mut pending: Option<NewDelivery> = None;
        let mut record = json!({
            "ts": now, "jobId": job_id, "jobName": entry.job.name, "action": "finished", "runId": ctx.run_id,
            "trigger": trigger.as_str(), "slotMs": ctx.slot_ms, "runAtMs": ctx.slot_ms.unwrap_or(ctx.started_at_ms),
            "startedAtMs": ctx.started_at_ms, "finishedAtMs": now, "durationMs": duration,
            "executionStatus": status.as_str(),
        });
        let set = |record: &mut Value, k: &str, v: Option<Value>| {
            if let Some(v) = v {
                record[k] = v;
            }
        };
        set(&mut record, "summary", summary.clone().map(Value::from));
        set(&mut record, "error", outcome.error.clone().map(Value::from));
        set(&mut record, "errorReason", outcome.error_reason.clone().map(Value::from));
        set(&mut record, "model", outcome.model.clone().map(Value::from));
        set(&mut record, "provider", outcome.provider.clone().map(Value::from));
        set(&mut record, "usage", outcome.usage.clone());
        set(&mut record, "sessionKey", outcome.session_key.clone().map(Value::from));
        set(&mut record, "command", outcome.command.as_ref().and_then(|c| serde_json::to_value(c).ok()));
        if let Some(r) = &route {
            record["delivery"] = json!({ "resolved": r });
        }
        let announcer = self.s.announcer.clone();
        let key = format!(
            "cron:{job_id}:{}:{}:{}:{}:{}",
            ctx.slot_ms.map_or(ctx.run_id.clone(), |s| s.to_string()),
            route.as_ref().map_or("", |r| r.channel.as_str()),
            route.as_ref().and_then(|r| r.account_id.as_deref()).unwrap_or(""),
            route.as_ref().map_or("", |r| r.to.as_str()),
            route.as_ref().and_then(|r| r.thread_id.as_deref()).unwrap_or("")
        );
        match (mode, status, &route, &announcer) {
            (DeliveryMode::None, ..) => {}
            (_, _, None, _) | (_, _, _, None) => {
                if outcome.error_reason.as_deref() != Some("delivery_route") && mode != DeliveryMode::None {
                    delivery_status = "not-delivered";
                    delivery_error = Some("no delivery route".into());
                } else {
                    delivery_status = "not-delivered";
                }
            }
            (DeliveryMode::Announce, ExecStatus::Ok, Some(route), Some(a)) => match summary.as_deref() {
                None => {
                    delivery_status = "not-delivered";
                    suppression = Some("empty");
                }
                Some(text) if is_silent(text) => {
                    delivery_status = "not-delivered";
                    suppression = Some("silent");
                }
                Some(text) => match a.prepare(
                    route,
                    text,
                    &key,
                    Origin { kind: "cron", id: Some(ctx.run_id.clone()), best_effort },
                ) {
                    Ok(d) => {
                        delivery_status = "pending";
                        record["outboxId"] = json!(d.id);
                        pending = Some(d);
                    }
                    Err(e) => {
                        delivery_status = "not-delivered";
                        delivery_error = Some(e);
                    }
                },
            },
            (DeliveryMode::Announce, ..) => delivery_status = "not-delivered",
            (DeliveryMode::Webhook, _, Some(route), Some(a)) => {
                if status == ExecStatus::Ok && summary.as_deref().is_none_or(is_silent) {
                    delivery_status = "not-delivered";
                    suppression = Some(if summary.is_some() { "silent" } else { "empty" });
                } else {
                    let mut body = json!({
                        "jobId": job_id, "action": "finished", "runId": ctx.run_id, "status": status.as_str(),
                        "runAtMs": ctx.slot_ms.unwrap_or(ctx.started_at_ms), "durationMs": duration,
                        "nextRunAtMs": Value::Null, "job": entry.job.view(),
                    });
                    if status == ExecStatus::Ok {
                        body["summary"] = json!(summary);
                    } else {
                        body["error"] = json!(outcome.error);
                    }
                    match a.prepare(
                        route,
                        &body.to_string(),
                        &key,
                        Origin { kind: "cron", id: Some(ctx.run_id.clone()), best_effort },
                    ) {
                        Ok(d) => {
                            delivery_status = "pending";
                            record["outboxId"] = json!(d.id);
                            pending = Some(d);
                        }
                        Err(e) => {
                            delivery_status = "not-delivered";
                            delivery_error = Some(e);
                        }
                    }
                }
            }
        }
        if let Some(o) = record.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        record["deliveryStatus"] = json!(delivery_status);
        record["delivered"] = json!(false);
        set(&mut record, "deliverySuppressionReason", suppression.map(Value::from));
        set(&mut record, "deliveryError", delivery_error.clone().map(Value::from));

        // Job state.
        {
            let st = &mut entry.job.state;
            st.running_at_ms = None;
            st.running_run_id = None;
            st.last_run_id = Some(ctx.run_id.clone());
            st.last_run_at_ms = Some(ctx.started_at_ms);
            st.last_duration_ms = Some(duration.max(0) as u64);
            st.last_run_status = Some(status.as_str().into());
            st.last_status = Some(status.as_str().into());
            st.last_error = outcome.error.clone();
            st.last_error_reason = outcome.error_reason.clone();
            match status {
                ExecStatus::Ok => {
                    st.consecutive_errors = 0;
                    st.consecutive_skipped = 0;
                }
                ExecStatus::Error => {
                    st.consecutive_errors += 1;
                    st.consecutive_skipped = 0;
                }
                ExecStatus::Skipped => {
                    st.consecutive_errors = 0;
                    st.consecutive_skipped += 1;
                }
            }
            if delivery_status != "pending" {
                st.last_delivery_status = Some(delivery_status.into());
                st.last_delivered = Some(false);
                st.last_delivery_error = delivery_error.clone();
                st.delivery_suppression_reason = suppression.map(String::from);
            }
        }
        self.plan_next(&job_id, trigger, status, outcome.error_reason.as_deref(), now);
        let next = self.jobs[&job_id].job.state.next_run_at_ms;
        record["nextRunAtMs"] = json!(next);

        let mut run_row = RunRow {
            run_id: ctx.run_id.clone(),
            job_id: job_id.clone(),
            slot_ms: ctx.slot_ms,
            trigger: trigger.as_str().into(),
            status: status.as_str().into(),
            lease_owner: self.s.generation,
            lease_until_ms: None,
            started_at_ms: ctx.started_at_ms,
            finished_at_ms: Some(now),
            delivery_status: Some(delivery_status.into()),
            completion_status: None,
            record_json: String::new(),
        };
        let mut deliveries: Vec<NewDelivery> = pending.into_iter().collect();
        let mut delete = false;
        if delivery_status != "pending" {
            let completion = completion_status(status, delivery_status, suppression.is_some(), best_effort);
            record["completionStatus"] = json!(completion);
            run_row.completion_status = Some(completion.into());
            let (more, del) = self.completed(&job_id, &record, completion, now);
            deliveries.extend(more);
            delete = del;
        }
        run_row.record_json = record.to_string();
        let job = self.jobs[&job_id].job.clone();
        if delete {
            self.jobs.remove(&job_id);
        }
        self.commit(run_row, job, delete, deliveries, Some(record));
    }

    /// After the outcome is recorded: the next slot, backoff, auto-disable, one-shot handling.
    fn plan_next(&mut self, id: &str, trigger: Trigger, status: ExecStatus, reason: Option<&str>, now: i64) {
        let e = self.jobs.get(id).expect("present");
        let is_at = matches!(e.job.schedule, ScheduleSpec::At { .. });
        let errors = e.job.state.consecutive_errors;
        let keep_cadence = trigger == Trigger::Manual;
        let natural = self.natural_next(id, now);
        let next = if is_at {
            match status {
                ExecStatus::Error if transient(reason) && errors <= FAST_RETRIES && trigger != Trigger::Manual => {
                    let at = now + ERROR_BACKOFF_MS[(errors as usize - 1).min(4)];
                    Some((at, at, Trigger::Retry))
                }
                ExecStatus::Error if trigger == Trigger::Manual => {
                    e.job.state.next_run_at_ms.map(|t| (t, t, Trigger::Scheduled))
                }
                _ => None,
            }
        } else if keep_cadence {
            // A forced run keeps the cadence: the pending slot stays as it was.
            let fire = e.job.state.next_run_at_ms;
            fire.map(|f| (f, e.slot.map_or(f, |s| s.0), e.slot.map_or(Trigger::Scheduled, |s| s.1)))
        } else {
            match status {
                ExecStatus::Ok | ExecStatus::Skipped => natural,
                ExecStatus::Error => {
                    let backoff = now + ERROR_BACKOFF_MS[(errors as usize).clamp(1, 5) - 1];
                    match natural {
                        Some((n, _, _)) if transient(reason) && errors <= FAST_RETRIES && backoff < n => {
                            Some((backoff, backoff, Trigger::Retry))
                        }
                        Some((n, _, _)) if backoff > n => Some((backoff, backoff, Trigger::Retry)),
                        other => other,
                    }
                }
            }
        };
        let e = self.jobs.get_mut(id).expect("present");
        if is_at && next.is_none() && trigger != Trigger::Manual {
            e.job.enabled = false;
        }
        if !is_at && status == ExecStatus::Error && e.job.state.consecutive_errors >= AUTO_DISABLE_AFTER {
            e.job.enabled = false;
            e.job.state.auto_disabled = Some(AutoDisabled {
                reason: "consecutive-failures".into(),
                at_ms: now,
                consecutive_errors: e.job.state.consecutive_errors,
            });
            tracing::warn!(job = %id, "cron: disabled after {AUTO_DISABLE_AFTER} consecutive errors");
        }
        e.job.updated_at_ms = now;
        let enabled = e.job.enabled;
        self.set_next(id, if enabled { next } else { None });
    }

    /// Completion is known: one-shot deletion and failure alerts. Returns alert deliveries and
    /// whether the job is to be deleted.
    fn completed(&mut self, id: &str, record: &Value, completion: &str, now: i64) -> (Vec<NewDelivery>, bool) {
        let Some(e) = self.jobs.get_mut(id) else { return (vec![], false) };
        let st = &mut e.job.state;
        st.last_completion_status = Some(completion.into());
        if completion == "succeeded" {
            st.consecutive_failures = 0;
        } else {
            st.consecutive_failures += 1;
        }
        let mut alerts = Vec::new();
        let job = e.job.clone();
        let just_disabled = job.state.auto_disabled.as_ref().is_some_and(|a| a.at_ms == now);
        if let Some(alert) = self.failure_alert(&job, record, completion, now, just_disabled) {
            if let Some(e) = self.jobs.get_mut(id) {
                e.job.state.last_failure_alert_at_ms = Some(now);
            }
            alerts.push(alert);
        }
        let is_at = matches!(job.schedule, ScheduleSpec::At { .. });
        let delete = is_at && completion == "succeeded" && job.delete_after_run == Some(true);
        (alerts, delete)
    }

    /// The failure alert to send now, if the policy asks for one (after N consecutive failures,
    /// outside the cooldown, through a route other than the one that just failed).
    fn failure_alert(
        &self,
        job: &Job,
        record: &Value,
        completion: &str,
        now: i64,
        auto_disabled: bool,
    ) -> Option<NewDelivery> {
        if completion == "succeeded" {
            return None;
        }
        let announcer = self.s.announcer.as_ref()?;
        let global: crate::job::FailureAlertPolicy = self
            .s
            .config
            .failure_alert
            .clone()
            .and_then(|v| serde_json::from_value(strip_enabled(v)).ok())
            .unwrap_or_default();
        let global_enabled =
            self.s.config.failure_alert.as_ref().and_then(|v| v.get("enabled")).and_then(Value::as_bool) != Some(false);
        let policy = match &job.failure_alert {
            Some(FailureAlert::Off) if !auto_disabled => return None,
            Some(FailureAlert::Policy(p)) => p.clone(),
            _ if !global_enabled && !auto_disabled => return None,
            _ => global.clone(),
        };
        if job.delivery.as_ref().is_some_and(|d| d.best_effort())
            && !matches!(job.failure_alert, Some(FailureAlert::Policy(_)))
            && !auto_disabled
        {
            return None;
        }
        if record["executionStatus"] == "skipped" && policy.include_skipped != Some(true) {
            return None;
        }
        let after = policy.after.or(global.after).unwrap_or(2);
        // Saturating: a cooldown beyond i64 milliseconds means "never again", not a negative one.
        let cooldown =
            i64::try_from(policy.cooldown_ms.or(global.cooldown_ms).unwrap_or(3_600_000)).unwrap_or(i64::MAX);
        let failures = job.state.consecutive_failures;
        if !auto_disabled && failures < after {
            return None;
        }
        if !auto_disabled && job.state.last_failure_alert_at_ms.is_some_and(|t| now - t < cooldown) {
            return None;
        }
        // Route precedence: the job's alert route, its failureDestination, the global route, then
        // the primary announce route — unless that route is what just failed.
        let failed_on_delivery = record["executionStatus"] == "ok";
        let dest = job.delivery.as_ref().and_then(|d| d.failure_destination.as_ref());
        let candidates: Vec<(Option<&str>, Option<&str>, Option<&str>)> = vec![
            (policy.channel.as_deref(), policy.to.as_deref(), policy.account_id.as_deref()),
            (
                dest.and_then(|d| d.channel.as_deref()),
                dest.and_then(|d| d.to.as_deref()),
                dest.and_then(|d| d.account_id.as_deref()),
            ),
            (global.channel.as_deref(), global.to.as_deref(), global.account_id.as_deref()),
        ];
        let mut route = candidates
            .into_iter()
            .filter(|(c, t, _)| c.is_some() || t.is_some())
            .find_map(|(c, t, a)| announcer.resolve_destination(c, t, a).ok());
        if route.is_none() && !failed_on_delivery {
            route = announcer.resolve(job).ok().flatten();
        }
        let route = route?;
        let cause = record["deliveryError"].as_str().or(record["error"].as_str()).unwrap_or("no details");
        let text = if auto_disabled {
            format!(
                "Automation \"{}\" was disabled after {} consecutive errors. Last error: {cause}\nFix it, then run `pincer cron enable {}`.",
                job.name, job.state.consecutive_errors, job.id
            )
        } else {
            format!(
                "Automation \"{}\" failed {failures} times in a row (last run {}: {}). Cause: {cause}\nSee `pincer cron runs --id {}`.",
                job.name,
                record["runId"].as_str().unwrap_or("?"),
                completion,
                job.id
            )
        };
        let key = format!("alert:{}:{}", job.id, record["runId"].as_str().unwrap_or(""));
        match announcer.prepare(&route, &text, &key, Origin { kind: "alert", id: None, best_effort: true }) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "cron: cannot prepare failure alert");
                None
            }
        }
    }

    /// One transaction: the run's record, the job (or its deletion), and any deliveries.
    fn commit(&mut self, run: RunRow, job: Job, delete: bool, deliveries: Vec<NewDelivery>, finished: Option<Value>) {
        let row = job_row(&job);
        let job_id = job.id.clone();
        let has_deliveries = !deliveries.is_empty();
        let write = self.s.store.write(move |tx| {
            tx.update_run(&run)?;
            if delete {
                tx.delete_job(&job_id)?;
            } else {
                tx.update_job(&row)?;
            }
            for d in &deliveries {
                tx.enqueue_delivery(d)?;
            }
            Ok(())
        });
        let announcer = self.s.announcer.clone();
        let events = self.s.events.clone();
        let view = job.view();
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::error!(error = %e, "cron: cannot record a run outcome");
                return;
            }
            if has_deliveries && let Some(a) = announcer {
                a.kick();
            }
            if let Some(record) = finished {
                let completed = record.get("completionStatus").is_some();
                let mut payload = record;
                payload["action"] = json!(if completed { "finished" } else { "executed" });
                payload["jobId"] = view["id"].clone();
                payload["nextRunAtMs"] = view["state"]["nextRunAtMs"].clone();
                events.emit("cron", payload, Some("operator.read"));
            }
            if delete {
                events.emit(
                    "cron",
                    json!({"jobId": view["id"], "action": "removed", "reason": "deleteAfterRun"}),
                    Some("operator.read"),
                );
            }
        });
    }

    /// The outbox settled a cron run's delivery: record it and complete the run.
    async fn settled(&mut self, s: Settlement) {
        let run_id = s.run_id.clone();
        let run = match self.s.store.read(move |rd| rd.get_run(&run_id)).await {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cron: cannot read run for settlement");
                return;
            }
        };
        if run.delivery_status.as_deref() != Some("pending") {
            return; // Already settled: settlements are idempotent.
        }
        let now = self.now();
        let mut record: Value = serde_json::from_str(&run.record_json).unwrap_or_else(|_| json!({}));
        let (delivery_status, delivered) = match s.state.as_str() {
            "delivered" => ("delivered", true),
            "unknown" => ("unknown", false),
            _ => ("not-delivered", false),
        };
        record["deliveryStatus"] = json!(delivery_status);
        record["delivered"] = json!(delivered);
        if let Some(err) = &s.error {
            record["deliveryError"] = json!(err);
        }
        let status = match run.status.as_str() {
            "ok" => ExecStatus::Ok,
            "skipped" => ExecStatus::Skipped,
            _ => ExecStatus::Error,
        };
        let best_effort =
            self.jobs.get(&run.job_id).and_then(|e| e.job.delivery.as_ref()).is_some_and(|d| d.best_effort());
        let completion = completion_status(status, delivery_status, false, best_effort);
        record["completionStatus"] = json!(completion);
        let mut run_row = run.clone();
        run_row.delivery_status = Some(delivery_status.into());
        run_row.completion_status = Some(completion.into());
        run_row.record_json = record.to_string();
        let Some(e) = self.jobs.get_mut(&run.job_id) else {
            // The job is gone; still record the run's completion.
            let write = self.s.store.write(move |tx| tx.update_run(&run_row).map(|_| ()));
            let _ = write.await;
            return;
        };
        if e.job.state.last_run_id.as_deref() == Some(run.run_id.as_str()) {
            let st = &mut e.job.state;
            st.last_delivery_status = Some(delivery_status.into());
            st.last_delivered = Some(delivered);
            st.last_delivery_error = s.error.clone();
            st.delivery_suppression_reason = None;
        }
        let (alerts, delete) = self.completed(&run.job_id, &record, completion, now);
        let job = self.jobs[&run.job_id].job.clone();
        if delete {
            self.dequeue(&run.job_id);
            self.jobs.remove(&run.job_id);
        }
        self.commit(run_row, job, delete, alerts, Some(record));
    }

    async fn shutdown(&mut self) {
        let mut runs = Vec::new();
        for e in self.jobs.values_mut() {
            if let Some(r) = e.running.take() {
                r.abort();
                runs.push(r.run_id);
            }
        }
        if runs.is_empty() {
            return;
        }
        tracing::warn!(
            count = runs.len(),
            "cron: stopping with runs in flight; they are recorded as interrupted at next start"
        );
    }
}

/// Runs whose delivery settled while the gateway (or the scheduler) was down, or whose
/// settlement was lost: they complete now.
async fn settled_while_away(store: &Store) -> Result<Vec<Settlement>, StoreError> {
    store
        .read(|rd| {
            let mut out = Vec::new();
            for run in rd.runs_pending_delivery()? {
                let record: Value = serde_json::from_str(&run.record_json).unwrap_or_default();
                let Some(outbox_id) = record["outboxId"].as_str() else { continue };
                match rd.get_delivery(outbox_id)? {
                    Some(d) if matches!(d.row.state.as_str(), "delivered" | "unknown" | "dead") => {
                        out.push(Settlement {
                            run_id: run.run_id,
                            outbox_id: d.row.id,
                            state: d.row.state,
                            error: d.row.last_error,
                        });
                    }
                    Some(_) => {}
                    None => out.push(Settlement {
                        run_id: run.run_id,
                        outbox_id: outbox_id.to_string(),
                        state: "dead".into(),
                        error: Some("the delivery was purged before it settled".into()),
                    }),
                }
            }
            Ok(out)
        })
        .await
}

/// The error of a run a stop interrupted, saying — for a command — whether it may have run, from
/// the progress its record noted (`command.state`); marks a command that was running `killed`.
fn interrupted_error(command: Option<&mut Value>) -> String {
    const SLOT: &str = "the slot is not run again";
    let Some(command) = command.filter(|c| c.is_object()) else {
        return format!("interrupted: the gateway stopped during this run; {SLOT}");
    };
    let state = command["state"].as_str().unwrap_or_default().to_string();
    match state.as_str() {
        "pending" | "not-started" => {
            format!("interrupted: the gateway stopped before the command started; it did not run, and {SLOT}")
        }
        "started" => {
            command["state"] = json!("killed");
            format!(
                "interrupted: the gateway stopped while the command was running; the command was killed with it \
                 and may have partly run; {SLOT}"
            )
        }
        "exited" => {
            let how = match (command["exitCode"].as_i64(), command["signal"].as_i64()) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(signal)) => format!("been killed by signal {signal}"),
                (None, None) => "ended".to_string(),
            };
            format!(
                "interrupted: the command had {how} before the gateway stopped, but its outcome was not recorded \
                 (nothing was delivered); {SLOT}"
            )
        }
        _ => format!("interrupted: the gateway stopped during this run; {SLOT}"),
    }
}

fn strip_enabled(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("enabled");
    }
    v
}

/// The first fire time of a newly created or re-enabled job.
fn first_fire(job: &Job, schedule: &Schedule, now: i64) -> Option<i64> {
    match &job.schedule {
        // A past `at` is allowed: it fires on the next wake.
        ScheduleSpec::At { .. } => schedule.next_after(i64::MIN / 2),
        _ => schedule.next_after(now),
    }
}

/// Runs one reserved run: route preflight, then the payload under its time limit. Carries the
/// run until its outcome is queued for the actor.
async fn run_task(s: Arc<Shared>, ctx: RunContext, trigger: Trigger, tx: mpsc::Sender<Msg>, carrier: Carrier) {
    if let Err(injected) = s.failpoints.check("cron.run") {
        panic!("{injected}");
    }
    let (outcome, route) = execute(&s, &ctx).await;
    pincer_core::crashpoint::hit("cron.executed");
    let finished = Finished { ctx, trigger, outcome, route, finished_at_ms: s.clock.now_ms() };
    let _ = tx.send(Msg::Finished(Box::new(finished))).await;
    carrier.done();
}

async fn execute(s: &Shared, ctx: &RunContext) -> (ExecOutcome, Option<Route>) {
    let job = &ctx.job;
    let wants_delivery = job.delivery.as_ref().is_some_and(|d| d.mode != DeliveryMode::None);
    // A route that cannot resolve fails the run before any model call.
    let route = if wants_delivery {
        match s.announcer.as_ref().map(|a| a.resolve(job)) {
            Some(Ok(route)) => route,
            Some(Err(e)) => return (ExecOutcome::error(format!("delivery route: {e}"), "delivery_route"), None),
            None => return (ExecOutcome::error("delivery route: this gateway has no outbox", "delivery_route"), None),
        }
    } else {
        None
    };
    let outcome = match &job.payload {
        Payload::Command { .. } => {
            crate::command::run_command(ctx, &s.clock, &s.store, s.command_supervisor.as_deref()).await
        }
        Payload::AgentTurn { .. } | Payload::SystemEvent { .. } => match &s.agent {
            None => ExecOutcome::error(
                "this gateway has no agent runner: configure models.providers and agents.defaults.model",
                "no_agent",
            ),
            Some(agent) => {
                if let Err(e) = agent.preflight(job) {
                    return (ExecOutcome::error(e, "model_not_found"), route);
                }
                match ctx.deadline_ms {
                    Some(deadline) => tokio::select! {
                        o = agent.run(ctx) => o,
                        _ = s.clock.sleep_until(deadline) => ExecOutcome::error("cron: job execution timed out", "timeout"),
                    },
                    None => agent.run(ctx).await,
                }
            }
        },
    };
    (outcome, route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_replies() {
        assert!(is_silent("NO_REPLY"));
        assert!(is_silent("  no_reply \n"));
        assert!(is_silent("Checked everything.\nNO_REPLY"));
        assert!(!is_silent("NO_REPLY is what I would say, but here is news"));
        assert!(!is_silent(""));
    }

    #[test]
    fn completion_keeps_the_three_outcomes_apart() {
        use ExecStatus::*;
        assert_eq!(completion_status(Ok, "delivered", false, false), "succeeded");
        assert_eq!(completion_status(Ok, "not-requested", false, false), "succeeded");
        assert_eq!(completion_status(Ok, "not-delivered", true, false), "succeeded");
        assert_eq!(completion_status(Ok, "not-delivered", false, false), "failed");
        assert_eq!(completion_status(Ok, "not-delivered", false, true), "succeeded");
        assert_eq!(completion_status(Ok, "unknown", false, false), "unknown");
        assert_eq!(completion_status(Error, "not-requested", false, false), "failed");
        assert_eq!(completion_status(Skipped, "not-requested", false, false), "failed");
    }
}
