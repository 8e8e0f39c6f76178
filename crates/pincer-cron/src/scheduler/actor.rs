//! The actor: one task that owns the schedule. It takes client commands, due slots, finished runs
//! and settled deliveries as messages, one at a time, and turns each into a write of the job's row
//! (with the run's row and any outbox rows): a commit (`commit.rs`), whose success alone changes
//! what the actor remembers. Here: the loop, the client commands, due slots and their
//! reservations, the start of a run, the watchdog.

use pincer_core::metrics;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use pincer_protocol::state::{CommandState, RunFailure, RunStatus, Trigger};
use pincer_store::{JobRow, RunRow, StoreError};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::commit::{Pending, RowWrite, RunWrite, Start, Then};
use super::next::Slot;
use super::record::{CommandNote, RunRecord};
use super::table::{Active, JobTable, Running, SlotRef};
use super::{Carrier, CronError, LEASE_GRACE_MS, RunMode, RunToken, Shared, WATCHDOG_MS};
use crate::job::{self, CreateContext, DeliveryMode, Job, JobExt, JobInput, JobPatch, Payload};
use crate::runner::{ExecOutcome, Route, RunContext, Settlement};
use crate::schedule::{Schedule, ScheduleSpec};
use pincer_core::crashpoint::Injected;
use pincer_core::supervisor::TaskResult;
use pincer_protocol::schema::cron::{CronStatus, InvalidJob, RunResult};

/// Runs without a time limit still hold a finite lease.
pub(super) const UNLIMITED_LEASE_MS: i64 = 24 * 3_600_000;
/// A due job the store could not read is looked at again this much later.
const LOAD_RETRY_MS: i64 = 1_000;
/// Fail points (`PINCER_FAILPOINTS`) of the scheduler's writes.
pub(super) const RESERVE_POINT: &str = "cron.reserve";
pub(super) const RECORD_POINT: &str = "cron.record";

pub(super) type Reply<T> = oneshot::Sender<Result<T, CronError>>;

pub(crate) enum Msg {
    Add {
        params: Box<JobInput>,
        reply: Reply<Job>,
    },
    /// `cron.add` with a `declarationKey` (see `Actor::declare`): the job and whether it was created.
    Declare {
        params: Box<JobInput>,
        reply: Reply<(Job, bool)>,
    },
    Update {
        id: String,
        patch: JobPatch,
        expected: Option<String>,
        reply: Reply<Job>,
    },
    Remove {
        id: String,
        reply: Reply<bool>,
    },
    Run {
        id: String,
        mode: RunMode,
        reply: Reply<RunResult>,
    },
    Finished(Box<Finished>),
    Settled(Settlement),
    /// A batch write finished: per job, whether its run was reserved (or its row existed).
    Committed {
        epoch: u64,
        ids: Vec<Arc<str>>,
        result: Result<Vec<bool>, StoreError>,
    },
    /// Time to write a refused commit again.
    RetryCommit {
        epoch: u64,
        id: Arc<str>,
    },
    /// A run's task ended without reporting an outcome.
    Lost {
        job_id: String,
        run_id: String,
    },
    /// A page of the schedule read in the background at start-up.
    Loaded {
        epoch: u64,
        jobs: Vec<(Arc<str>, i64)>,
    },
    /// Jobs the start-up check found that cannot run (`done`: the check is over).
    Invalid {
        epoch: u64,
        found: Vec<(String, String)>,
        done: bool,
    },
    Status {
        reply: oneshot::Sender<CronStatus>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

impl Msg {
    /// The job this message changes, when it must wait for that job's write in flight.
    fn job_id(&self) -> Option<&str> {
        match self {
            Msg::Update { id, .. } | Msg::Remove { id, .. } | Msg::Run { id, .. } => Some(id),
            Msg::Finished(f) => Some(&f.ctx.job.id),
            _ => None,
        }
    }
}

pub(crate) struct Finished {
    pub ctx: RunContext,
    pub trigger: Trigger,
    pub outcome: ExecOutcome,
    pub route: Option<Route>,
    pub finished_at_ms: i64,
}

/// A due (or forced) run to reserve.
struct Pick {
    id: Arc<str>,
    job: Job,
    slot: Option<i64>,
    trigger: Trigger,
    run_id: String,
}

pub(crate) struct Actor {
    pub(super) s: Arc<Shared>,
    /// This actor's start (see [`Shared::epochs`]): its helpers' messages carry it, and those of
    /// an actor that died before it are ignored (their writes are in the store it loaded).
    pub(super) epoch: u64,
    pub(super) table: JobTable,
    /// Jobs that cannot run, and why (for `cron.status` and `doctor`).
    pub(super) invalid: BTreeMap<String, String>,
    /// Ids written while the background start-up work runs (what it read of them is stale).
    pub(super) touched: Option<HashSet<String>>,
    /// Declaration keys whose job this actor created, by job id: a second declaration of the key
    /// waits while that insert is in flight, so one key never makes two jobs.
    pub(super) declaring: HashMap<String, String>,
    /// When the schedule was loaded: catch-up slots are the latest at or before it.
    pub(super) loaded_at_ms: i64,
    /// Runs reserved or in flight.
    pub(super) running_count: usize,
    pub(super) manual_seq: u64,
    pub(super) ticks: u64,
    pub(super) last_tick_ms: Option<i64>,
    pub(super) last_prune_ms: i64,
    /// Due jobs wait until then after the store failed to read them.
    pub(super) load_retry_at: Option<i64>,
    /// Messages released by a job's commit, handled before new ones.
    pub(super) replay: VecDeque<Msg>,
    pub(super) tx: mpsc::Sender<Msg>,
    pub(super) rx: tokio::sync::OwnedMutexGuard<mpsc::Receiver<Msg>>,
}

/// The stored row of `job`.
pub(super) fn job_row(job: &Job) -> Result<JobRow, CronError> {
    Ok(JobRow {
        id: job.id.clone(),
        name: job.name.clone(),
        enabled: job.enabled,
        job_json: job.definition_json().map_err(|e| CronError::Invalid(e.0))?,
        state_json: serde_json::to_string(&job.state)
            .map_err(|e| CronError::Invalid(format!("job {} state does not serialise: {e}", job.id)))?,
        next_run_at_ms: job.state.next_run_at_ms,
        created_at_ms: job.created_at_ms,
        updated_at_ms: job.updated_at_ms,
    })
}

/// The first fire time of a newly created or re-enabled job.
fn first_fire(job: &Job, schedule: &Schedule, now: i64) -> Option<i64> {
    match &job.schedule {
        // A past `at` is allowed: it fires on the next wake.
        ScheduleSpec::At { .. } => schedule.next_after(i64::MIN / 2),
        _ => schedule.next_after(now),
    }
}

/// The model an agent-turn job names for itself, if any.
fn job_model(job: &Job) -> Option<&str> {
    match &job.payload {
        Payload::AgentTurn { model, .. } => model.as_deref(),
        _ => None,
    }
}

/// Where a job is scheduled: its stored next fire, when it is enabled.
pub(super) fn fire_of(job: &Job) -> Option<i64> {
    job.state.next_run_at_ms.filter(|_| job.enabled)
}

impl Actor {
    pub(super) fn now(&self) -> i64 {
        self.s.clock.now_ms()
    }

    fn ctx(&self) -> CreateContext<'_> {
        CreateContext { now_ms: self.now(), default_tz: &self.s.default_tz, channels: &self.s.channels }
    }

    pub(super) fn emit(&self, action: &str, job: &Job, extra: Value) {
        let mut payload = json!({ "jobId": job.id, "action": action });
        if matches!(action, "added" | "updated") {
            match job.view() {
                Ok(view) => payload["job"] = view,
                // The event still says what happened; clients re-read the job.
                Err(e) => tracing::warn!(job = %job.id, "cron event without the job: {}", e.0),
            }
        }
        if let Some(next) = job.state.next_run_at_ms {
            payload["nextRunAtMs"] = json!(next);
        }
        if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
            p.extend(e);
        }
        self.s.events.emit("cron", payload, Some("operator.read"));
    }

    pub(super) async fn run(mut self) -> TaskResult {
        // Wall time the actor spends per wake-up (handling messages, starting due runs), for
        // `pincer_cron_wake_seconds`; measured on the real clock because it is a cost, not a schedule.
        let mut busy_since = std::time::Instant::now();
        loop {
            // Handle everything already queued first, so finishes and adds batch into one pass.
            while let Some(msg) = self.replay.pop_front().or_else(|| self.rx.try_recv().ok()) {
                if let Msg::Shutdown { reply } = msg {
                    self.shutdown();
                    let _ = reply.send(());
                    return Ok(());
                }
                self.handle(msg).await;
            }
            self.dispatch_due().await?;
            let now = self.now();
            let can_start = self.running_count < self.s.config.max_concurrent_runs as usize && self.s.config.enabled;
            let next_due = if can_start { self.table.next_fire() } else { None };
            let wake = [next_due.map(|t| t.max(self.load_retry_at.unwrap_or(t))), Some(now + WATCHDOG_MS)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + WATCHDOG_MS)
                .max(now);
            let clock = self.s.clock.clone();
            self.s.metrics.observe(&metrics::CRON_WAKE_SECONDS, &[], busy_since.elapsed().as_secs_f64());
            let woke = tokio::select! {
                biased;
                msg = self.rx.recv() => Some(msg),
                _ = clock.sleep_until(wake) => None,
            };
            busy_since = std::time::Instant::now();
            match woke {
                Some(Some(Msg::Shutdown { reply })) => {
                    self.shutdown();
                    let _ = reply.send(());
                    return Ok(());
                }
                Some(Some(msg)) => self.handle(msg).await,
                Some(None) => return Ok(()),
                None => self.watchdog(),
            }
        }
    }

    async fn handle(&mut self, msg: Msg) {
        // A message about a job whose write is in flight waits for that write.
        if let Some(id) = msg.job_id().map(str::to_string)
            && let Some(active) = self.table.active_mut(&id)
            && active.commit.is_some()
        {
            active.waiting.push_back(msg);
            return;
        }
        match msg {
            Msg::Add { params, reply } => {
                self.add(params, reply);
            }
            Msg::Declare { params, reply } => self.declare(params, reply).await,
            Msg::Update { id, patch, expected, reply } => self.update(&id, patch, expected, reply).await,
            Msg::Remove { id, reply } => self.remove(&id, reply).await,
            Msg::Run { id, mode, reply } => self.run_now(&id, mode, reply).await,
            Msg::Finished(f) => self.finished(*f),
            Msg::Settled(s) => self.settled(s).await,
            // From a helper of an actor that died: what it wrote is in the store this one loaded.
            Msg::Committed { epoch, .. }
            | Msg::RetryCommit { epoch, .. }
            | Msg::Loaded { epoch, .. }
            | Msg::Invalid { epoch, .. }
                if epoch != self.epoch => {}
            Msg::Committed { ids, result, .. } => self.committed(ids, result),
            Msg::RetryCommit { id, .. } => self.retry_commit(&id),
            Msg::Lost { job_id, run_id } => self.lost(&job_id, &run_id),
            Msg::Loaded { jobs, .. } => {
                for (id, fire) in jobs {
                    // A job written since start-up is in memory as written (or gone, when it was
                    // removed or turned off): the page read before that write is stale for it.
                    if !self.touched.as_ref().is_some_and(|t| t.contains(&*id)) {
                        self.table.load(id, fire, SlotRef::Fire);
                    }
                }
            }
            Msg::Invalid { found, done, .. } => {
                for (id, error) in found {
                    if !self.touched.as_ref().is_some_and(|t| t.contains(&id)) {
                        self.invalid.insert(id, error);
                    }
                }
                if done {
                    self.touched = None;
                }
            }
            Msg::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Msg::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// The scheduler's status; `jobs` and `enabledJobs` are counted from the store by
    /// `CronService::status` (memory holds only the scheduled jobs).
    fn status(&self) -> CronStatus {
        let path = self.s.store.path().display().to_string();
        CronStatus {
            enabled: self.s.config.enabled,
            storage: "sqlite".into(),
            sqlite_path: path.clone(),
            store_path: path,
            jobs: 0,
            enabled_jobs: 0,
            running: self.running_count as u64,
            max_concurrent_runs: self.s.config.max_concurrent_runs as u64,
            next_wake_at_ms: self.table.next_fire(),
            last_tick_at_ms: self.last_tick_ms,
            ticks: self.ticks,
            timezone: self.s.default_tz.clone(),
            skip_missed_jobs: self.s.config.skip_missed_jobs,
            invalid_jobs: self.invalid.iter().map(|(id, e)| InvalidJob { id: id.clone(), error: e.clone() }).collect(),
            extra: Default::default(),
        }
    }

    /// The job as committed: from memory while it is active, else from the store. `Ok(None)`:
    /// there is no such job.
    pub(super) async fn job(&self, id: &str) -> Result<Option<Job>, CronError> {
        if let Some(job) = self.table.get(id).and_then(|e| e.active.as_ref()).and_then(|a| a.job.clone()) {
            return Ok(Some(job));
        }
        let key = id.to_string();
        let Some(row) = self.s.store.read(move |rd| rd.get_job(&key)).await? else { return Ok(None) };
        Job::from_stored(&row.job_json, &row.state_json)
            .map(Some)
            .map_err(|e| CronError::Invalid(format!("job {id} is stored in a form this version cannot read: {e}")))
    }

    /// Marks `id` active (holding `job`) unless it already is.
    pub(super) fn activate(&mut self, id: &str, job: Option<Job>) {
        self.table.update(id, |e| {
            if e.active.is_none() {
                e.active = Some(Active::new(job));
            }
        });
    }

    /// A write of `id` committed: what the background start-up work read of it is stale.
    pub(super) fn touch(&mut self, id: &str) {
        if let Some(t) = self.touched.as_mut() {
            t.insert(id.to_string());
        }
    }

    /// Refuses a job whose delivery names a channel (not `last`) that cannot take it under this
    /// configuration — the channel is not configured, or the target is missing or malformed:
    /// every run would fail at delivery. A `last` route may exist later, so it is let through.
    fn refuse_certain_failure(&self, job: &Job) -> Result<(), CronError> {
        self.refuse_unconfigured_model(job)?;
        self.refuse_failing_delivery(job)
    }

    /// A model of the job's own that is not configured fails every run (there is no silent
    /// fallback to the default), so `add` refuses it, naming the configured models.
    fn refuse_unconfigured_model(&self, job: &Job) -> Result<(), CronError> {
        if let Payload::AgentTurn { model: Some(_), .. } = &job.payload
            && let Some(Err(e)) = self.s.agent.as_deref().map(|a| a.preflight(job))
        {
            return Err(CronError::Invalid(format!("this job's model would fail on every run: {e}")));
        }
        Ok(())
    }

    fn refuse_failing_delivery(&self, job: &Job) -> Result<(), CronError> {
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

    /// `cron.add` with a `declarationKey`: a job already holding the key becomes the declaration
    /// (through the update path); otherwise the job is created as by `add`, and a second
    /// declaration of the key waits until that insert has committed, so it finds the job.
    async fn declare(&mut self, params: Box<JobInput>, reply: Reply<(Job, bool)>) {
        let key = params.declaration_key.clone().unwrap_or_default();
        if let Some(id) = self.declaring.get(&key).cloned() {
            if let Some(active) = self.table.active_mut(&id)
                && active.commit.is_some()
            {
                active.waiting.push_back(Msg::Declare { params, reply });
                return;
            }
            self.declaring.remove(&key);
        }
        let lookup = {
            let key = key.clone();
            self.s.store.read(move |rd| rd.job_id_by_declaration_key(&key)).await
        };
        let existing = match lookup {
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
            Ok(None) => None,
            // A write of that job is in flight (an earlier declaration's update): wait for it, as
            // every message about a job does.
            Ok(Some(id)) if self.table.active_mut(&id).is_some_and(|a| a.commit.is_some()) => {
                if let Some(active) = self.table.active_mut(&id) {
                    active.waiting.push_back(Msg::Declare { params, reply });
                }
                return;
            }
            Ok(Some(id)) => match self.job(&id).await {
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
                Ok(job) => job,
            },
        };
        let (tx, rx) = oneshot::channel();
        let created = existing.is_none();
        match existing {
            Some(existing) => match job::declaration_patch(&existing, *params, &self.ctx()) {
                Ok(patch) => self.update(&existing.id, patch, None, tx).await,
                Err(e) => {
                    let _ = reply.send(Err(CronError::Invalid(e.0)));
                    return;
                }
            },
            None => {
                if let Some(id) = self.add(params, tx) {
                    self.declaring.insert(key, id);
                }
            }
        }
        tokio::spawn(async move {
            let answer = rx.await.unwrap_or(Err(CronError::Stopped));
            let _ = reply.send(answer.map(|job| (job, created)));
        });
    }

    /// Checks a new job and queues its insert; the caller is answered once it committed. The id
    /// when the insert was queued.
    fn add(&mut self, params: Box<JobInput>, reply: Reply<Job>) -> Option<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let prepared = (|| {
            let mut job = job::create(*params, id.clone(), &self.ctx()).map_err(|e| CronError::Invalid(e.0))?;
            let schedule = Schedule::new(&job.schedule, &job.id).map_err(|e| CronError::Invalid(e.to_string()))?;
            self.refuse_certain_failure(&job)?;
            job.state.next_run_at_ms = if job.enabled { first_fire(&job, &schedule, self.now()) } else { None };
            let row = job_row(&job)?;
            Ok::<_, CronError>((job, row))
        })();
        let (job, row) = match prepared {
            Ok(j) => j,
            Err(e) => {
                let _ = reply.send(Err(e));
                return None;
            }
        };
        let mut write = RowWrite::job(&id, Some(row));
        write.insert = true;
        let pending = Pending {
            write,
            fire: fire_of(&job),
            job: Some(job.clone()),
            slot: SlotRef::Fire,
            then: Then::Added { reply },
            failures: 0,
        };
        self.activate(&id, Some(job));
        self.commit(vec![(Arc::from(id.as_str()), pending)], None);
        Some(id)
    }

    async fn update(&mut self, id: &str, patch: JobPatch, expected: Option<String>, reply: Reply<Job>) {
        let prepared = async {
            let current = self.job(id).await?.ok_or_else(|| CronError::NotFound(id.into()))?;
            let revision = current.config_revision().map_err(|e| CronError::Invalid(e.0))?;
            if let Some(expected) = expected
                && expected != revision
            {
                return Err(CronError::Changed { current: revision });
            }
            let mut next = job::apply_patch(&current, &patch, &self.ctx()).map_err(|e| CronError::Invalid(e.0))?;
            let schedule = Schedule::new(&next.schedule, &next.id).map_err(|e| CronError::Invalid(e.to_string()))?;
            // Only a changed delivery or model: a job stored before the check can still be
            // enabled or renamed.
            if next.delivery != current.delivery {
                self.refuse_failing_delivery(&next)?;
            }
            if job_model(&next) != job_model(&current) {
                self.refuse_unconfigured_model(&next)?;
            }
            if next.enabled && !current.enabled {
                // Enabling clears what made the scheduler give up.
                next.state.auto_disabled = None;
                next.state.consecutive_errors = 0;
                next.state.schedule_error_count = 0;
            }
            let recompute = next.schedule != current.schedule || next.enabled != current.enabled;
            if recompute {
                next.state.next_run_at_ms = if next.enabled { first_fire(&next, &schedule, self.now()) } else { None };
            }
            let row = job_row(&next)?;
            Ok((current, next, row, recompute))
        };
        let (current, next, row, recompute) = match prepared.await {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let (fire, slot) = match self.table.get(id) {
            Some(e) if !recompute => (e.fire, e.slot),
            _ => (fire_of(&next), SlotRef::Fire),
        };
        let pending = Pending {
            write: RowWrite::job(id, Some(row)),
            fire,
            job: Some(next),
            slot,
            then: Then::Updated { reply },
            failures: 0,
        };
        self.activate(id, Some(current));
        self.commit(vec![(Arc::from(id), pending)], None);
    }

    async fn remove(&mut self, id: &str, reply: Reply<bool>) {
        let in_memory = self.table.get(id).is_some();
        let known = self.table.get(id).and_then(|e| e.active.as_ref()).and_then(|a| a.job.as_ref());
        let next_run_at_ms = match known {
            Some(job) => job.state.next_run_at_ms,
            None => {
                let key = id.to_string();
                match self.s.store.read(move |rd| rd.get_job(&key)).await {
                    Ok(row) => row.and_then(|r| r.next_run_at_ms),
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        return;
                    }
                }
            }
        };
        // A run in flight stops now; its outcome is not recorded (the job and its runs go).
        let stopped = self.table.update(id, |e| e.active.as_mut().and_then(|a| a.running.take()));
        if let Some(r) = stopped {
            r.token.abort();
            self.s.forget_run(&r.run_id);
            self.running_count -= 1;
        }
        let mut write = RowWrite::job(id, None);
        write.delete = true;
        let then = Then::Removed { reply, in_memory, next_run_at_ms };
        let pending = Pending { write, job: None, fire: None, slot: SlotRef::Fire, then, failures: 0 };
        self.activate(id, None);
        self.commit(vec![(Arc::from(id), pending)], None);
    }

    async fn run_now(&mut self, id: &str, mode: RunMode, reply: Reply<RunResult>) {
        let now = self.now();
        if self.table.get(id).and_then(|e| e.active.as_ref()).is_some_and(|a| a.running.is_some()) {
            let _ = reply.send(Ok(RunResult::not_ran("already-running")));
            return;
        }
        let job = match self.job(id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                let _ = reply.send(Err(CronError::NotFound(id.into())));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let Ok(schedule) = Schedule::new(&job.schedule, &job.id) else {
            let _ = reply.send(Ok(RunResult::not_ran("invalid-spec")));
            return;
        };
        let (slot, trigger, run_id) = match mode {
            RunMode::Due => {
                // A job not in memory yet (its schedule page is still being read) is as stored.
                let (fire, slot) = self.table.get(id).map_or((fire_of(&job), SlotRef::Fire), |e| (e.fire, e.slot));
                let due = job.enabled && fire.is_some_and(|t| t <= now);
                let slot = if due { self.resolve_slot(fire, slot, &job, &schedule) } else { None };
                let Some(slot) = slot else {
                    let _ = reply.send(Ok(RunResult::not_ran("not-due")));
                    return;
                };
                (Some(slot.slot_ms), slot.trigger, format!("cron:{id}:{}", slot.slot_ms))
            }
            RunMode::Force => {
                self.manual_seq += 1;
                (None, Trigger::Manual, format!("manual:{id}:{now}:{}", self.manual_seq))
            }
        };
        let pick = Pick { id: Arc::from(id), job, slot, trigger, run_id };
        self.reserve(vec![pick], now, Some(reply));
    }

    /// The slot a pending fire is for.
    pub(super) fn resolve_slot(
        &self,
        fire: Option<i64>,
        slot: SlotRef,
        job: &Job,
        schedule: &Schedule,
    ) -> Option<Slot> {
        let fire = fire?;
        Some(match slot {
            SlotRef::Fire => Slot::at(fire),
            SlotRef::Fixed { slot_ms, trigger } => Slot { fire_ms: fire, slot_ms, trigger },
            SlotRef::CatchUp { stored_next } => {
                let slot_ms = if matches!(job.schedule, ScheduleSpec::At { .. }) {
                    stored_next
                } else {
                    schedule.latest_at_or_before(self.loaded_at_ms).unwrap_or(stored_next).max(stored_next)
                };
                Slot { fire_ms: fire, slot_ms, trigger: Trigger::CatchUp }
            }
        })
    }

    /// Reads due jobs from the store and reserves their slots (as many as there are free run
    /// slots).
    /// Reserves the due slots; an error only from an armed fail point (`cron.dispatched`).
    pub(super) async fn dispatch_due(&mut self) -> Result<(), Injected> {
        if !self.s.config.enabled {
            return Ok(());
        }
        let now = self.now();
        if self.load_retry_at.is_some_and(|t| now < t) {
            return Ok(());
        }
        let free = (self.s.config.max_concurrent_runs as usize).saturating_sub(self.running_count);
        let ids = self.table.due(now, free);
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let loaded = self
            .s
            .store
            .read(move |rd| {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let rows = rd.get_jobs(&keys)?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        let job = Job::from_stored(&r.job_json, &r.state_json).map_err(|e| e.0);
                        (r.id, job)
                    })
                    .collect::<std::collections::HashMap<_, _>>())
            })
            .await;
        let mut loaded = match loaded {
            Ok(l) => {
                self.load_retry_at = None;
                l
            }
            Err(e) => {
                tracing::error!(error = %e, "cron: cannot read due jobs; trying again in 1 s");
                self.load_retry_at = Some(now + LOAD_RETRY_MS);
                return Ok(());
            }
        };
        let mut picks = Vec::new();
        for id in ids {
            let job = match loaded.remove(&*id) {
                Some(Ok(job)) if job.enabled => job,
                Some(Ok(_)) | None => {
                    // Disabled or gone behind the scheduler's back: it is not scheduled.
                    self.table.update(&id, |e| e.fire = None);
                    continue;
                }
                Some(Err(e)) => {
                    tracing::error!(job = %id, error = %e, "cron: stored job does not parse; it will not run");
                    self.invalid.insert(id.to_string(), e);
                    self.table.update(&id, |e| e.fire = None);
                    continue;
                }
            };
            let schedule = match Schedule::new(&job.schedule, &job.id) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "cron: job schedule is invalid; it will not run");
                    self.invalid.insert(id.to_string(), e.to_string());
                    self.table.update(&id, |e| e.fire = None);
                    continue;
                }
            };
            let Some(slot) = self.table.get(&id).and_then(|e| self.resolve_slot(e.fire, e.slot, &job, &schedule))
            else {
                continue;
            };
            let run_id = format!("cron:{id}:{}", slot.slot_ms);
            picks.push(Pick { id, job, slot: Some(slot.slot_ms), trigger: slot.trigger, run_id });
        }
        if !picks.is_empty() {
            self.ticks += 1;
            self.last_tick_ms = Some(now);
            self.reserve(picks, now, None);
            self.s.failpoints.check("cron.dispatched")?;
        }
        Ok(())
    }

    /// Writes the picked runs' reservations (one batch). Each run starts once its reservation
    /// committed; the actor does not wait for the disk meanwhile.
    fn reserve(&mut self, picks: Vec<Pick>, now: i64, mut reply: Option<Reply<RunResult>>) {
        let mut batch = Vec::new();
        for Pick { id, job, slot, trigger, run_id } in picks {
            let timeout = job.payload.timeout_ms().map(|t| i64::try_from(t).unwrap_or(i64::MAX));
            let lease_until_ms =
                now.saturating_add(timeout.unwrap_or(UNLIMITED_LEASE_MS)).saturating_add(LEASE_GRACE_MS);
            let record = RunRecord {
                job_id: id.to_string(),
                job_name: Some(job.name.clone()),
                run_id: run_id.clone(),
                trigger: Some(trigger),
                slot_ms: Some(slot),
                run_at_ms: Some(slot.unwrap_or(now)),
                started_at_ms: Some(now),
                // Recovery reads how far the command got: `pending`, then `started`, `exited`.
                command: matches!(job.payload, Payload::Command { .. })
                    .then(|| CommandNote::new(CommandState::Pending)),
                ..RunRecord::default()
            };
            let run = RunRow {
                run_id: run_id.clone(),
                job_id: id.to_string(),
                slot_ms: slot,
                trigger,
                status: RunStatus::Running,
                lease_owner: self.s.generation,
                lease_until_ms: Some(lease_until_ms),
                started_at_ms: now,
                finished_at_ms: None,
                delivery_status: None,
                completion_status: None,
                record_json: record.to_json(),
            };
            let mut reserved = job.clone();
            reserved.state.running_at_ms = Some(now);
            reserved.state.running_run_id = Some(run_id.clone());
            let row = match job_row(&reserved) {
                Ok(row) => row,
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "cron: cannot write the job's reservation; it will not run");
                    self.invalid.insert(id.to_string(), e.to_string());
                    continue;
                }
            };
            // Kept outside the actor until an actor handled the run's outcome (see `RunToken`).
            let token = Arc::new(RunToken::default());
            self.s.track_run(&run_id, &token);
            let ctx = RunContext {
                run_id,
                tz: reserved.display_tz(&self.s.default_tz).to_string(),
                job: reserved.clone(),
                slot_ms: slot,
                started_at_ms: now,
                deadline_ms: timeout.map(|t| now.saturating_add(t)),
            };
            let entry = self.table.get(&id);
            let (fire, slot_ref) = (entry.and_then(|e| e.fire), entry.map(|e| e.slot).unwrap_or_default());
            let mut write = RowWrite::job(&id, Some(row));
            write.run = Some(RunWrite::Reserve(run));
            let pending = Pending {
                write,
                job: Some(reserved),
                fire,
                slot: slot_ref,
                then: Then::Reserved {
                    start: Box::new(Start { ctx, trigger, lease_until_ms, token }),
                    reply: reply.take(),
                },
                failures: 0,
            };
            self.running_count += 1;
            self.activate(&id, Some(job));
            batch.push((id, pending));
        }
        if let Some(reply) = reply {
            let _ = reply.send(Err(CronError::Invalid("the run could not be reserved; see the gateway log".into())));
        }
        if !batch.is_empty() {
            self.commit(batch, Some(RESERVE_POINT));
        }
    }

    /// Starts a run whose reservation committed.
    pub(super) fn start(&mut self, id: &str, start: Start, reply: Option<Reply<RunResult>>) {
        let Start { ctx, trigger, lease_until_ms, token } = start;
        let started = self.s.clock.now_ms();
        if let (Some(slot), Trigger::Scheduled) = (ctx.slot_ms, trigger) {
            let lag = (started - slot).max(0) as f64 / 1000.0;
            self.s.metrics.observe(&metrics::CRON_SLOT_LAG_SECONDS, &[], lag);
        }
        let run_id = ctx.run_id.clone();
        let mut event = json!({ "jobId": id, "action": "started", "runId": run_id, "trigger": trigger,
                                "runAtMs": ctx.slot_ms.unwrap_or(ctx.started_at_ms) });
        if let Some(next) = ctx.job.state.next_run_at_ms {
            event["nextRunAtMs"] = json!(next);
        }
        self.s.events.emit("cron", event, Some("operator.read"));
        let carrier = Carrier {
            token: token.clone(),
            job_id: id.to_string(),
            run_id: run_id.clone(),
            tx: self.tx.clone(),
            done: false,
        };
        let running = Running {
            run_id: run_id.clone(),
            trigger,
            slot_ms: ctx.slot_ms,
            started_at_ms: ctx.started_at_ms,
            lease_until_ms,
            token: token.clone(),
        };
        token.set_task(tokio::spawn(run_task(self.s.clone(), ctx, trigger, self.tx.clone(), carrier)).abort_handle());
        self.table.update(id, |e| {
            if let Some(a) = e.active.as_mut() {
                a.running = Some(running);
            }
        });
        if let Some(reply) = reply {
            let _ = reply.send(Ok(RunResult::enqueued(run_id)));
        }
    }

    /// A slot that was already reserved (by an earlier process): never run it again; move on.
    pub(super) fn skip_taken_slot(&mut self, id: &str, start: &Start, now: i64) {
        tracing::info!(run = %start.ctx.run_id, "cron: slot already reserved earlier; skipping it");
        if start.trigger == Trigger::Manual {
            return;
        }
        let Some(mut job) = self.table.get(id).and_then(|e| e.active.as_ref()).and_then(|a| a.job.clone()) else {
            return;
        };
        let after = start.ctx.slot_ms.unwrap_or(now).max(now - 1);
        let next = Schedule::new(&job.schedule, &job.id).ok().and_then(|s| s.next_after(after));
        job.state.next_run_at_ms = next;
        let row = match job_row(&job) {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(job = %id, error = %e, "cron: cannot write the job's next slot");
                return;
            }
        };
        let pending = Pending {
            write: RowWrite::job(id, Some(row)),
            fire: fire_of(&job),
            job: Some(job),
            slot: SlotRef::Fire,
            then: Then::Skipped,
            failures: 0,
        };
        self.commit(vec![(Arc::from(id), pending)], Some(RECORD_POINT));
    }

    /// A run's task ended without reporting an outcome — a panic: the run is recorded
    /// interrupted now, rather than when its lease runs out.
    fn lost(&mut self, job_id: &str, run_id: &str) {
        let Some(active) = self.table.active_mut(job_id) else {
            self.s.forget_run(run_id);
            return;
        };
        let (Some(r), Some(job)) = (active.running.as_ref().filter(|r| r.run_id == run_id), active.job.clone()) else {
            return;
        };
        tracing::error!(run = %run_id, "cron: a run ended without reporting its outcome; recorded as interrupted");
        let outcome = ExecOutcome::error(
            "interrupted: the run's task ended without reporting an outcome (an internal error; see the gateway \
             log); the slot is not run again",
            RunFailure::Interrupted,
        );
        let ctx = RunContext {
            run_id: run_id.to_string(),
            tz: job.display_tz(&self.s.default_tz).to_string(),
            job,
            slot_ms: r.slot_ms,
            started_at_ms: r.started_at_ms,
            deadline_ms: None,
        };
        let trigger = r.trigger;
        self.finished(Finished { ctx, trigger, outcome, route: None, finished_at_ms: self.now() });
    }

    /// Abandons runs that outlived their lease (time limit plus grace).
    fn watchdog(&mut self) {
        let now = self.now();
        self.ticks += 1;
        self.last_tick_ms = Some(now);
        self.s.metrics.inc(&metrics::CRON_WAKES_TOTAL, &[]);
        self.prune_runs(now);
        for id in self.table.expired_leases(now) {
            let Some(active) = self.table.active_mut(&id) else { continue };
            let (Some(r), Some(job)) = (active.running.as_ref(), active.job.clone()) else { continue };
            r.token.abort();
            let (run_id, slot_ms, started_at_ms, trigger) = (r.run_id.clone(), r.slot_ms, r.started_at_ms, r.trigger);
            tracing::error!(run = %run_id, "cron: run outlived its lease; abandoning it");
            let outcome = ExecOutcome::error(
                "the run outlived its time limit and lease, and was abandoned",
                pincer_protocol::state::ErrorClass::Timeout,
            );
            let finished = Finished {
                ctx: RunContext {
                    run_id,
                    tz: job.display_tz(&self.s.default_tz).to_string(),
                    job,
                    slot_ms,
                    started_at_ms,
                    deadline_ms: None,
                },
                trigger,
                outcome,
                route: None,
                finished_at_ms: now,
            };
            let _ = self.tx.try_send(Msg::Finished(Box::new(finished)));
        }
    }

    /// Run history retention (`cron.runRetention`): by age and by count per job, hourly.
    fn prune_runs(&mut self, now: i64) {
        if now.saturating_sub(self.last_prune_ms) < 3_600_000 {
            return;
        }
        self.last_prune_ms = now;
        let retention = &self.s.config.run_retention;
        let max_age = pincer_core::duration::parse_duration_ms(&retention.max_age, None)
            .ok()
            .and_then(|ms| i64::try_from(ms).ok())
            .unwrap_or(30 * 86_400_000);
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

    fn shutdown(&mut self) {
        let mut runs = 0;
        for id in self.table.active_ids() {
            if let Some(r) = self.table.active_mut(&id).and_then(|a| a.running.take()) {
                r.token.abort();
                runs += 1;
            }
        }
        if runs > 0 {
            tracing::warn!(
                count = runs,
                "cron: stopping with runs in flight; they are recorded as interrupted at next start"
            );
        }
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
            Some(Err(e)) => {
                return (ExecOutcome::error(format!("delivery route: {e}"), RunFailure::DeliveryRoute), None);
            }
            None => {
                return (
                    ExecOutcome::error("delivery route: this gateway has no outbox", RunFailure::DeliveryRoute),
                    None,
                );
            }
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
                RunFailure::NoAgent,
            ),
            Some(agent) => {
                if let Err(e) = agent.preflight(job) {
                    return (
                        ExecOutcome::error(e.to_string(), pincer_protocol::state::ErrorClass::ModelNotFound),
                        route,
                    );
                }
                match ctx.deadline_ms {
                    Some(deadline) => tokio::select! {
                        o = agent.run(ctx) => o,
                        _ = s.clock.sleep_until(deadline) => ExecOutcome::error(
                            "cron: job execution timed out",
                            pincer_protocol::state::ErrorClass::Timeout,
                        ),
                    },
                    None => agent.run(ctx).await,
                }
            }
        },
    };
    (outcome, route)
}
