//! The scheduler: one task (the actor) owns every job's timer and state.
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
//! for, runs this process reserved and whose outcome no actor has handled are taken over (a run
//! still going reports as usual; one reserved but not yet started is started now), and any other
//! run left `running` is recorded as interrupted, as after a crash. A run whose task dies without
//! an outcome is recorded interrupted at once (`Lost`).
//!
//! - `actor`: the loop, the messages, client commands, due slots and their reservations, the
//!   watchdog.
//! - `commit`: every write of a job, and memory following it only once it committed.
//! - `finish`: a run's outcome and its settled delivery, recorded.
//! - `table`: what stays in memory — per job only its next fire and slot; a job in full only while
//!   it runs or its row is being written.
//! - `recovery`: start-up — runs a crash interrupted, slots missed while the gateway was down.
//! - `outcome`: outcome → delivery plan → completion (pure, one table test).
//! - `next`: the next slot after a run: backoff, early retries, auto-disable, one-shots (pure).
//! - `alert`: failure alerts.
//! - `record`: the typed run record.
//!
//! **Architecture Invariant:** a slot is reserved (committed) before its run starts, and a
//! reserved slot is never run again — not after a crash, not after a restart. The scheduler's
//! memory of a job changes only after the write that records the change committed.

mod actor;
mod alert;
mod commit;
mod finish;
mod next;
mod outcome;
mod record;
mod recovery;
mod table;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pincer_core::config::CronConfig;
use pincer_core::crashpoint::Failpoints;
use pincer_core::supervisor::{Task, TaskState};
use pincer_core::{EventBus, Metrics, SharedClock, Supervisor};
use pincer_protocol::state::DeliveryState;
use pincer_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use self::actor::{Actor, Msg};
use self::record::RunRecord;
use crate::job::{DeliveryMode, Job, JobExt, JobInput, JobPatch};
use crate::runner::{Announcer, Settlement, SharedAgentRunner, SharedAnnouncer};
use crate::schedule::Schedule;
use pincer_protocol::schema::cron::{CronStatus, RunResult};

pub use next::{AUTO_DISABLE_AFTER, ERROR_BACKOFF_MS, FAST_RETRIES};
pub use outcome::{completion_status, is_silent};

/// The scheduler re-checks at least this often, whatever is due.
pub const WATCHDOG_MS: i64 = 60_000;
/// Missed jobs that start at once after a restart; the rest are spread out.
pub const CATCH_UP_IMMEDIATE: usize = 5;
pub const CATCH_UP_SPREAD_MS: i64 = 5_000;
/// A run's lease outlives its time limit by this much before the watchdog abandons it.
pub const LEASE_GRACE_MS: i64 = 60_000;
/// Waits between tries of a run's outcome the store refused: 1 s, 2 s, 5 s, 10 s, then every 30 s
/// until it commits.
pub const STORE_RETRY_MS: [i64; 5] = [1_000, 2_000, 5_000, 10_000, 30_000];
/// A reservation the store refused is tried again this much later.
pub const RESERVE_RETRY_MS: i64 = 5_000;

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
    /// Armed fail points (`cron.reserve`, `cron.record`, `cron.dispatched`, `cron.run`); the
    /// default arms none.
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

/// Handle to the scheduler task; cheap to clone.
#[derive(Clone)]
pub struct CronService {
    tx: mpsc::Sender<Msg>,
    store: Store,
    shared: Arc<Shared>,
    task: Task,
}

/// What the actor and its run tasks share.
pub(crate) struct Shared {
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
    /// Counts actor starts; messages an earlier actor's helpers send are told apart by it.
    epochs: AtomicU64,
}

impl Shared {
    /// Notes a run about to be reserved.
    fn track_run(&self, run_id: &str, token: &Arc<RunToken>) {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).insert(run_id.to_string(), token.clone());
    }

    /// The token of a run of this process whose outcome no actor has handled yet.
    fn tracked_run(&self, run_id: &str) -> Option<Arc<RunToken>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(run_id).cloned()
    }

    /// An actor has handled the run's outcome (or it will never run): nothing is left to take over.
    fn forget_run(&self, run_id: &str) {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).remove(run_id);
    }
}

/// One run of this process, from its reservation until an actor has handled its outcome; kept
/// outside the actor ([`Shared::runs`]) so a restarted actor can take over a run still going, or
/// start one whose reservation committed while no actor was there to start it.
#[derive(Default)]
pub(crate) struct RunToken {
    /// Set once the run's task started.
    task: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// The actor stopped the run on purpose (and records it itself).
    aborted: AtomicBool,
}

impl RunToken {
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            t.abort();
        }
    }

    fn started(&self) -> bool {
        self.task.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    fn set_task(&self, handle: tokio::task::AbortHandle) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }
}

/// Carries a run's task until its outcome is queued. Dropped before that (a panic, a lost
/// future) and not aborted by the actor, it tells the actor ([`Msg::Lost`]), so the run is
/// recorded at once instead of when its lease runs out.
pub(crate) struct Carrier {
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
        if self.done || self.token.aborted.load(Ordering::Acquire) {
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

/// The scheduler's queue: it outlives an actor that dies, so messages wait for the next one.
pub(crate) type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<Msg>>>;

impl CronService {
    /// Loads the schedule, records runs a crash interrupted, coalesces slots missed while the
    /// gateway was down into one catch-up run each, and starts the scheduler task under the
    /// supervisor.
    pub async fn start(deps: CronDeps) -> Result<CronService, CronError> {
        if deps.failpoints.is_armed() {
            tracing::warn!(
                "cron: fail points are armed ({}): scheduler steps will fail on purpose",
                pincer_core::crashpoint::FAIL_ENV
            );
        }
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
            epochs: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(1024);
        let queue: Queue = Arc::new(tokio::sync::Mutex::new(rx));
        // The first start's errors fail the gateway's start; a restart's are the supervisor's.
        let mut first = Some(Actor::boot(shared.clone(), tx.clone(), queue.clone(), false).await?);
        let task = deps.supervisor.spawn("scheduler", true, {
            let (shared, tx) = (shared.clone(), tx.clone());
            move || {
                let first = first.take();
                let (shared, tx, queue) = (shared.clone(), tx.clone(), queue.clone());
                async move {
                    let actor = match first {
                        Some(actor) => actor,
                        None => Actor::boot(shared, tx, queue, true).await?,
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

    /// Adds a job (or, with a known `declarationKey`, updates that job to the declaration).
    pub async fn add(&self, params: JobInput) -> Result<Job, CronError> {
        Ok(self.add_or_declare(params).await?.0)
    }

    /// Adds a job; with a `declarationKey` already held by a job, updates that job to the
    /// declaration instead. The flag is true when a job was created.
    pub async fn add_or_declare(&self, params: JobInput) -> Result<(Job, bool), CronError> {
        if params.declaration_key.is_none() {
            return Ok((self.ask(|reply| Msg::Add { params: Box::new(params), reply }).await??, true));
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

    /// The scheduler's own status (`cron.status`), with the job counts read from the store.
    pub async fn status(&self) -> Result<CronStatus, CronError> {
        let counts = self.store.read(|rd| rd.job_counts());
        let mut status = self.ask(|reply| Msg::Status { reply }).await?;
        (status.jobs, status.enabled_jobs) = counts.await?;
        Ok(status)
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

/// Runs whose delivery settled while the gateway (or the scheduler) was down, or whose
/// settlement was lost: they complete now.
pub(crate) async fn settled_while_away(store: &Store) -> Result<Vec<Settlement>, StoreError> {
    store
        .read(|rd| {
            let mut out = Vec::new();
            for run in rd.runs_pending_delivery()? {
                let Some(outbox_id) = RunRecord::parse(&run.record_json).outbox_id else { continue };
                match rd.get_delivery(&outbox_id)? {
                    Some(d) if d.row.state.is_terminal() => out.push(Settlement {
                        run_id: run.run_id,
                        outbox_id: d.row.id,
                        state: d.row.state,
                        error: d.row.last_error,
                    }),
                    Some(_) => {}
                    None => out.push(Settlement {
                        run_id: run.run_id,
                        outbox_id,
                        state: DeliveryState::Dead,
                        error: Some("the delivery was purged before it settled".into()),
                    }),
                }
            }
            Ok(out)
        })
        .await
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
