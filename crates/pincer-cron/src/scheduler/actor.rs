//! The actor: one task that owns the schedule. It takes client commands, due slots, finished runs
//! and settled deliveries as messages, one at a time, and turns each into a write of the job's row
//! (with the run's row and any outbox rows) — a [`Pending`] commit.
//!
//! **Memory follows the store.** A commit is written first; the actor's memory of the job (its
//! next fire, its state) changes only when the write committed ([`Msg::Committed`]). While a
//! job's write is in flight, messages about that job wait for it, so each one sees the job as
//! stored. A reservation the store refuses is tried again 5 s later; an outcome, a settlement or a
//! skipped slot the store refuses is written again with backoff until it commits (the job does not
//! run meanwhile); a client command the store refuses is answered with the error.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use pincer_protocol::state::{
    CommandState, CompletionStatus, DeliveryState, DeliveryStatus, ExecStatus, OriginKind, RunFailure, RunStatus,
    Trigger,
};
use pincer_store::{JobRow, NewDelivery, RunRow, StoreError, Tx};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::next::{self, AfterRun, Disable, Slot};
use super::outcome::{self, Body, Finish, Plan};
use super::record::{CommandNote, ResolvedDelivery, RunRecord};
use super::table::{Active, JobTable, Running, SlotRef};
use super::{CronError, LEASE_GRACE_MS, RESERVE_RETRY_MS, RunMode, STORE_RETRY_MS, Shared, WATCHDOG_MS, alert};
use crate::job::{self, AutoDisabled, CreateContext, DeliveryMode, Job, Payload};
use crate::runner::{ExecOutcome, Origin, Route, RunContext, Settlement};
use crate::schedule::{Schedule, ScheduleSpec};

/// Runs without a time limit still hold a finite lease.
const UNLIMITED_LEASE_MS: i64 = 24 * 3_600_000;
/// A due job the store could not read is looked at again this much later.
const LOAD_RETRY_MS: i64 = 1_000;

type Reply<T> = oneshot::Sender<Result<T, CronError>>;

pub(crate) enum Msg {
    Add {
        params: Value,
        reply: Reply<Job>,
    },
    Update {
        id: String,
        patch: Value,
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
        reply: Reply<Value>,
    },
    Finished(Box<Finished>),
    Settled(Settlement),
    /// A batch write finished: per job, whether its run was reserved (or its row existed).
    Committed {
        ids: Vec<Arc<str>>,
        result: Result<Vec<bool>, StoreError>,
    },
    /// Time to write a refused commit again.
    RetryCommit {
        id: Arc<str>,
    },
    /// Jobs the start-up sweep found that cannot run (`done`: the sweep is over).
    Invalid {
        found: Vec<(String, String)>,
        done: bool,
    },
    Status {
        reply: oneshot::Sender<Value>,
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

/// What one commit writes: cloneable, so a refused write can be tried again.
#[derive(Clone)]
pub(crate) struct RowWrite {
    job_id: String,
    row: Option<JobRow>,
    insert: bool,
    delete: bool,
    run: Option<RunWrite>,
    deliveries: Vec<NewDelivery>,
}

#[derive(Clone)]
enum RunWrite {
    /// A reservation: written only if the slot was free; the job's row is then written too.
    Reserve(RunRow),
    Update(RunRow),
}

impl RowWrite {
    fn job(job_id: &str, row: Option<JobRow>) -> RowWrite {
        RowWrite { job_id: job_id.to_string(), row, insert: false, delete: false, run: None, deliveries: Vec::new() }
    }

    /// Applies the write; true when a reservation took its slot, or a deleted row existed.
    fn apply(&self, tx: &Tx<'_>) -> pincer_store::Result<bool> {
        let ok = match &self.run {
            Some(RunWrite::Reserve(run)) => tx.reserve_run(run)?,
            Some(RunWrite::Update(run)) => {
                tx.update_run(run)?;
                true
            }
            None => true,
        };
        if !ok {
            return Ok(false);
        }
        if self.delete {
            return tx.delete_job(&self.job_id);
        }
        if let Some(row) = &self.row {
            if self.insert {
                tx.insert_job(row)?;
            } else {
                tx.update_job(row)?;
            }
        }
        for d in &self.deliveries {
            tx.enqueue_delivery(d)?;
        }
        Ok(true)
    }
}

/// A write of one job in flight, and what follows once it committed.
pub(crate) struct Pending {
    write: RowWrite,
    /// Whether the job existed before, and was enabled.
    was: Option<bool>,
    /// The job once written (`None`: deleted, or the write does not change it).
    job: Option<Job>,
    /// Its next fire and slot once written.
    fire: Option<i64>,
    slot: SlotRef,
    then: Then,
    failures: usize,
}

enum Then {
    Added {
        reply: Reply<Job>,
    },
    Updated {
        reply: Reply<Job>,
    },
    Removed {
        reply: Reply<bool>,
        in_memory: bool,
        next_run_at_ms: Option<i64>,
    },
    Reserved {
        start: Box<Start>,
        reply: Option<Reply<Value>>,
    },
    /// A run's outcome (`event`: the `finished`/`executed` event), or its settled delivery.
    Recorded {
        event: Box<Value>,
        kick: bool,
    },
    /// A slot that was already taken: the job moved past it.
    Skipped,
}

/// A reserved run, started once its reservation committed.
struct Start {
    ctx: RunContext,
    trigger: Trigger,
    lease_until_ms: i64,
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
    pub(super) table: JobTable,
    /// Jobs that cannot run, and why (for `cron.status` and `doctor`).
    pub(super) invalid: BTreeMap<String, String>,
    /// Ids written while the start-up sweep runs (its findings about them are stale).
    pub(super) touched: Option<HashSet<String>>,
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
    /// Whether the batch being applied passed the `cron.reserved` crash point already.
    pub(super) crash_point_passed: bool,
    /// Messages released by a job's commit, handled before new ones.
    pub(super) replay: VecDeque<Msg>,
    pub(super) tx: mpsc::Sender<Msg>,
    pub(super) rx: mpsc::Receiver<Msg>,
}

/// The stored row of `job`.
pub(super) fn job_row(job: &Job) -> Result<JobRow, CronError> {
    let bad = |e: job::Invalid| CronError::Invalid(e.0);
    Ok(JobRow {
        id: job.id.clone(),
        name: job.name.clone(),
        enabled: job.enabled,
        job_json: job.definition_json().map_err(bad)?,
        state_json: job.state_json().map_err(bad)?,
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

/// Where a job is scheduled: its stored next fire, when it is enabled.
fn fire_of(job: &Job) -> Option<i64> {
    job.state.next_run_at_ms.filter(|_| job.enabled)
}

impl Actor {
    fn now(&self) -> i64 {
        self.s.clock.now_ms()
    }

    fn ctx(&self) -> CreateContext<'_> {
        CreateContext { now_ms: self.now(), default_tz: &self.s.default_tz, channels: &self.s.channels }
    }

    fn emit(&self, action: &str, job: &Job, extra: Value) {
        let mut payload = json!({ "jobId": job.id, "action": action });
        if matches!(action, "added" | "updated") {
            match job.view() {
                Ok(view) => payload["job"] = view,
                Err(e) => tracing::error!(job = %job.id, error = %e, "cron: cannot show a job in its event"),
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

    pub(super) async fn run(mut self) {
        // Wall time the actor spends per wake-up (handling messages, starting due runs), for
        // `pincer_cron_wake_seconds`; measured on the real clock because it is a cost, not a schedule.
        let mut busy_since = std::time::Instant::now();
        loop {
            // Handle everything already queued first, so finishes and adds batch into one pass.
            while let Some(msg) = self.replay.pop_front().or_else(|| self.rx.try_recv().ok()) {
                if let Msg::Shutdown { reply } = msg {
                    self.shutdown();
                    let _ = reply.send(());
                    return;
                }
                self.handle(msg).await;
            }
            self.dispatch_due().await;
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
                    self.shutdown();
                    let _ = reply.send(());
                    return;
                }
                Some(Some(msg)) => self.handle(msg).await,
                Some(None) => return,
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
            Msg::Add { params, reply } => self.add(params, reply),
            Msg::Update { id, patch, expected, reply } => self.update(&id, patch, expected, reply).await,
            Msg::Remove { id, reply } => self.remove(&id, reply).await,
            Msg::Run { id, mode, reply } => self.run_now(&id, mode, reply).await,
            Msg::Finished(f) => self.finished(*f),
            Msg::Settled(s) => self.settled(s).await,
            Msg::Committed { ids, result } => self.committed(ids, result),
            Msg::RetryCommit { id } => self.retry_commit(&id),
            Msg::Invalid { found, done } => {
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

    fn status(&self) -> Value {
        json!({
            "enabled": self.s.config.enabled,
            "storage": "sqlite",
            "sqlitePath": self.s.store.path().display().to_string(),
            "storePath": self.s.store.path().display().to_string(),
            "jobs": self.table.total,
            "enabledJobs": self.table.enabled,
            "running": self.running_count,
            "maxConcurrentRuns": self.s.config.max_concurrent_runs,
            "nextWakeAtMs": self.table.next_fire(),
            "lastTickAtMs": self.last_tick_ms,
            "ticks": self.ticks,
            "timezone": self.s.default_tz,
            "skipMissedJobs": self.s.config.skip_missed_jobs,
            "invalidJobs": self.invalid.iter().map(|(id, e)| json!({"id": id, "error": e})).collect::<Vec<_>>(),
        })
    }

    /// The job as committed: from memory while it is active, else from the store. `Ok(None)`:
    /// there is no such job.
    async fn job(&self, id: &str) -> Result<Option<Job>, CronError> {
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
    fn activate(&mut self, id: &str, job: Option<Job>) {
        self.table.update(id, |e| {
            if e.active.is_none() {
                e.active = Some(Active::new(job));
            }
        });
    }

    fn touch(&mut self, id: &str) {
        if let Some(t) = self.touched.as_mut() {
            t.insert(id.to_string());
        }
        self.invalid.remove(id);
    }

    fn add(&mut self, params: Value, reply: Reply<Job>) {
        let id = uuid::Uuid::new_v4().to_string();
        let prepared = (|| {
            let mut job = job::create(&params, id.clone(), &self.ctx()).map_err(|e| CronError::Invalid(e.0))?;
            let schedule = Schedule::new(&job.schedule, &job.id).map_err(|e| CronError::Invalid(e.to_string()))?;
            job.state.next_run_at_ms = if job.enabled { first_fire(&job, &schedule, self.now()) } else { None };
            let row = job_row(&job)?;
            Ok::<_, CronError>((job, row))
        })();
        let (job, row) = match prepared {
            Ok(j) => j,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let mut write = RowWrite::job(&id, Some(row));
        write.insert = true;
        let pending = Pending {
            write,
            was: None,
            fire: fire_of(&job),
            job: Some(job.clone()),
            slot: SlotRef::Fire,
            then: Then::Added { reply },
            failures: 0,
        };
        self.activate(&id, Some(job));
        self.commit(vec![(Arc::from(id.as_str()), pending)], "cron.commit");
    }

    async fn update(&mut self, id: &str, patch: Value, expected: Option<String>, reply: Reply<Job>) {
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
            was: Some(current.enabled),
            fire,
            job: Some(next),
            slot,
            then: Then::Updated { reply },
            failures: 0,
        };
        self.activate(id, Some(current));
        self.commit(vec![(Arc::from(id), pending)], "cron.commit");
    }

    async fn remove(&mut self, id: &str, reply: Reply<bool>) {
        let in_memory = self.table.get(id).is_some();
        let known = self.table.get(id).and_then(|e| e.active.as_ref()).and_then(|a| a.job.as_ref());
        let (was, next_run_at_ms) = match known {
            Some(job) => (Some(job.enabled), job.state.next_run_at_ms),
            None => {
                let key = id.to_string();
                match self.s.store.read(move |rd| rd.get_job(&key)).await {
                    Ok(row) => (row.as_ref().map(|r| r.enabled), row.and_then(|r| r.next_run_at_ms)),
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
            r.task.abort();
            self.running_count -= 1;
        }
        let mut write = RowWrite::job(id, None);
        write.delete = true;
        let then = Then::Removed { reply, in_memory, next_run_at_ms };
        let pending = Pending { write, was, job: None, fire: None, slot: SlotRef::Fire, then, failures: 0 };
        self.activate(id, None);
        self.commit(vec![(Arc::from(id), pending)], "cron.commit");
    }

    async fn run_now(&mut self, id: &str, mode: RunMode, reply: Reply<Value>) {
        let now = self.now();
        if self.table.get(id).and_then(|e| e.active.as_ref()).is_some_and(|a| a.running.is_some()) {
            let _ = reply.send(Ok(json!({ "ok": true, "ran": false, "reason": "already-running" })));
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
            let _ = reply.send(Ok(json!({ "ok": true, "ran": false, "reason": "invalid-spec" })));
            return;
        };
        let (slot, trigger, run_id) = match mode {
            RunMode::Due => {
                let entry = self.table.get(id);
                let due = job.enabled && entry.and_then(|e| e.fire).is_some_and(|t| t <= now);
                let slot = entry.filter(|_| due).and_then(|e| self.resolve_slot(e.fire, e.slot, &job, &schedule));
                let Some(slot) = slot else {
                    let _ = reply.send(Ok(json!({ "ok": true, "ran": false, "reason": "not-due" })));
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
    fn resolve_slot(&self, fire: Option<i64>, slot: SlotRef, job: &Job, schedule: &Schedule) -> Option<Slot> {
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
    pub(super) async fn dispatch_due(&mut self) {
        if !self.s.config.enabled {
            return;
        }
        let now = self.now();
        if self.load_retry_at.is_some_and(|t| now < t) {
            return;
        }
        let free = (self.s.config.max_concurrent_runs as usize).saturating_sub(self.running_count);
        let ids = self.table.due(now, free);
        if ids.is_empty() {
            return;
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
                return;
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
        }
    }

    /// Writes the picked runs' reservations (one batch). Each run starts once its reservation
    /// committed; the actor does not wait for the disk meanwhile.
    fn reserve(&mut self, picks: Vec<Pick>, now: i64, mut reply: Option<Reply<Value>>) {
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
                was: Some(job.enabled),
                job: Some(reserved),
                fire,
                slot: slot_ref,
                then: Then::Reserved { start: Box::new(Start { ctx, trigger, lease_until_ms }), reply: reply.take() },
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
            self.commit(batch, "cron.reserve");
        }
    }

    /// Puts each job's write in flight (the jobs must be active) and writes them as one batch.
    fn commit(&mut self, batch: Vec<(Arc<str>, Pending)>, point: &'static str) {
        let mut ids = Vec::with_capacity(batch.len());
        let mut writes = Vec::with_capacity(batch.len());
        for (id, pending) in batch {
            writes.push(pending.write.clone());
            self.table.update(&id, |e| {
                if let Some(a) = e.active.as_mut() {
                    a.commit = Some(Box::new(pending));
                }
            });
            ids.push(id);
        }
        self.spawn_write(ids, writes, point);
    }

    fn spawn_write(&self, ids: Vec<Arc<str>>, writes: Vec<RowWrite>, point: &'static str) {
        let write = match self.s.failpoints.check(point) {
            Err(injected) => Err(StoreError::Invalid(injected.to_string())),
            // Queued now, so writes commit in the order the actor issued them.
            Ok(()) => Ok(self.s.store.write(move |tx| writes.iter().map(|w| w.apply(tx)).collect())),
        };
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = match write {
                Ok(w) => w.await,
                Err(e) => Err(e),
            };
            let _ = tx.send(Msg::Committed { ids, result }).await;
        });
    }

    fn retry_commit(&mut self, id: &str) {
        let Some(write) = self.table.active_mut(id).and_then(|a| a.commit.as_ref()).map(|p| p.write.clone()) else {
            return;
        };
        self.spawn_write(vec![Arc::from(id)], vec![write], "cron.commit");
    }

    /// A batch write finished: apply what committed, deal with what did not.
    fn committed(&mut self, ids: Vec<Arc<str>>, result: Result<Vec<bool>, StoreError>) {
        let now = self.now();
        let (flags, mut error) = match result {
            Ok(flags) => (flags, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let message = error.as_ref().map(ToString::to_string);
        self.crash_point_passed = false;
        for (i, id) in ids.iter().enumerate() {
            let Some(pending) = self.table.update(id, |e| e.active.as_mut().and_then(|a| a.commit.take())) else {
                continue;
            };
            match &message {
                None => self.applied(id, *pending, flags.get(i).copied().unwrap_or(false), now),
                Some(m) => {
                    let e = error.take().unwrap_or_else(|| StoreError::Invalid(m.clone()));
                    self.refused(id, *pending, e, now);
                }
            }
            self.release(id);
        }
    }

    /// Hands the messages a job held back to the loop once no write of it is in flight, and
    /// forgets the job in full once it is idle.
    fn release(&mut self, id: &str) {
        let Some(active) = self.table.active_mut(id) else { return };
        if active.commit.is_some() {
            return;
        }
        self.replay.extend(active.waiting.drain(..));
        if active.running.is_none() {
            self.table.update(id, |e| e.active = None);
        }
    }

    /// Memory follows a committed write.
    fn applied(&mut self, id: &str, p: Pending, flag: bool, now: i64) {
        let Pending { was, job, fire, slot, then, .. } = p;
        let set = |table: &mut JobTable, job: Option<Job>| {
            let is = job.as_ref().map(|j| j.enabled);
            table.total = (table.total + u64::from(is.is_some())).saturating_sub(u64::from(was.is_some()));
            table.enabled = (table.enabled + u64::from(is == Some(true))).saturating_sub(u64::from(was == Some(true)));
            table.update(id, |e| {
                e.fire = fire;
                e.slot = slot;
                if let (Some(a), Some(job)) = (e.active.as_mut(), job) {
                    a.job = Some(job);
                }
            });
        };
        match then {
            Then::Added { reply } => {
                set(&mut self.table, job.clone());
                self.touch(id);
                if let Some(job) = job {
                    self.emit("added", &job, json!({}));
                    let _ = reply.send(Ok(job));
                }
            }
            Then::Updated { reply } => {
                set(&mut self.table, job.clone());
                self.touch(id);
                if let Some(job) = job {
                    self.emit("updated", &job, json!({}));
                    let _ = reply.send(Ok(job));
                }
            }
            Then::Removed { reply, in_memory, next_run_at_ms } => {
                if flag {
                    set(&mut self.table, None);
                }
                self.touch(id);
                // Messages that waited for the removal now find no job.
                if let Some(a) = self.table.active_mut(id) {
                    self.replay.extend(a.waiting.drain(..));
                }
                self.table.update(id, |e| *e = Default::default());
                if flag {
                    let mut event = json!({ "jobId": id, "action": "removed" });
                    if let Some(next) = next_run_at_ms {
                        event["nextRunAtMs"] = json!(next);
                    }
                    self.s.events.emit("cron", event, Some("operator.read"));
                }
                let _ = reply.send(Ok(flag || in_memory));
            }
            Then::Reserved { start, reply } => {
                if flag {
                    if !self.crash_point_passed {
                        // Once per committed batch: the reservations are durable, no run has started.
                        pincer_core::crashpoint::hit("cron.reserved");
                        self.crash_point_passed = true;
                    }
                    set(&mut self.table, job);
                    self.start(id, *start, reply);
                } else {
                    self.running_count -= 1;
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(json!({ "ok": true, "ran": false, "reason": "already-ran" })));
                    }
                    self.skip_taken_slot(id, &start, now);
                }
            }
            Then::Recorded { event, kick } => {
                let deleted = job.is_none() && was.is_some();
                set(&mut self.table, job);
                if kick && let Some(a) = &self.s.announcer {
                    a.kick();
                }
                self.s.events.emit("cron", *event, Some("operator.read"));
                if deleted {
                    if let Some(a) = self.table.active_mut(id) {
                        self.replay.extend(a.waiting.drain(..));
                    }
                    self.table.update(id, |e| *e = Default::default());
                    self.s.events.emit(
                        "cron",
                        json!({"jobId": id, "action": "removed", "reason": "deleteAfterRun"}),
                        Some("operator.read"),
                    );
                }
            }
            Then::Skipped => set(&mut self.table, job),
        }
    }

    /// The store refused a write: nothing of it was saved.
    fn refused(&mut self, id: &str, mut p: Pending, e: StoreError, now: i64) {
        match p.then {
            Then::Added { reply } => {
                self.table.update(id, |e| *e = Default::default());
                let _ = reply.send(Err(e.into()));
            }
            Then::Updated { reply } => {
                let _ = reply.send(Err(e.into()));
            }
            Then::Removed { reply, .. } => {
                let _ = reply.send(Err(e.into()));
            }
            Then::Reserved { start, reply } => {
                self.running_count -= 1;
                tracing::error!(job = %id, error = %e, "cron: cannot reserve a run; trying again in 5 s");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.into()));
                }
                // The slot is still due: try it again shortly (in memory; the store still has it due).
                if let (Some(slot_ms), false) = (start.ctx.slot_ms, start.trigger == Trigger::Manual) {
                    let trigger = start.trigger;
                    self.table.update(id, |e| {
                        e.fire = Some(now + RESERVE_RETRY_MS);
                        e.slot = SlotRef::Fixed { slot_ms, trigger };
                    });
                }
            }
            Then::Recorded { .. } | Then::Skipped => {
                let wait = STORE_RETRY_MS[p.failures.min(STORE_RETRY_MS.len() - 1)];
                p.failures += 1;
                self.s.metrics.inc(
                    "pincer_cron_store_errors_total",
                    "Scheduler writes the store refused (each is written again until it commits).",
                    &[],
                );
                tracing::error!(job = %id, error = %e, retry_in_ms = wait, failures = p.failures,
                    "cron: the store refused a run's outcome; the job waits until it is written");
                self.table.update(id, |e| {
                    if let Some(a) = e.active.as_mut() {
                        a.commit = Some(Box::new(p));
                    }
                });
                let (clock, tx, key) = (self.s.clock.clone(), self.tx.clone(), Arc::<str>::from(id));
                tokio::spawn(async move {
                    clock.sleep_until(now + wait).await;
                    let _ = tx.send(Msg::RetryCommit { id: key }).await;
                });
            }
        }
    }

    /// Starts a run whose reservation committed.
    fn start(&mut self, id: &str, start: Start, reply: Option<Reply<Value>>) {
        let Start { ctx, trigger, lease_until_ms } = start;
        let started = self.s.clock.now_ms();
        if let (Some(slot), Trigger::Scheduled) = (ctx.slot_ms, trigger) {
            let lag = (started - slot).max(0) as f64 / 1000.0;
            self.s.metrics.observe("pincer_cron_slot_lag_seconds", "Time from a slot to its run's start.", &[], lag);
        }
        let run_id = ctx.run_id.clone();
        let mut event = json!({ "jobId": id, "action": "started", "runId": run_id, "trigger": trigger,
                                "runAtMs": ctx.slot_ms.unwrap_or(ctx.started_at_ms) });
        if let Some(next) = ctx.job.state.next_run_at_ms {
            event["nextRunAtMs"] = json!(next);
        }
        self.s.events.emit("cron", event, Some("operator.read"));
        let running = Running {
            run_id: run_id.clone(),
            trigger,
            slot_ms: ctx.slot_ms,
            started_at_ms: ctx.started_at_ms,
            lease_until_ms,
            task: tokio::spawn(run_task(self.s.clone(), ctx, trigger, self.tx.clone())).abort_handle(),
        };
        self.table.update(id, |e| {
            if let Some(a) = e.active.as_mut() {
                a.running = Some(running);
            }
        });
        if let Some(reply) = reply {
            let _ = reply.send(Ok(json!({ "ok": true, "enqueued": true, "runId": run_id })));
        }
    }

    /// A slot that was already reserved (by an earlier process): never run it again; move on.
    fn skip_taken_slot(&mut self, id: &str, start: &Start, now: i64) {
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
            was: Some(job.enabled),
            fire: fire_of(&job),
            job: Some(job),
            slot: SlotRef::Fire,
            then: Then::Skipped,
            failures: 0,
        };
        self.commit(vec![(Arc::from(id), pending)], "cron.commit");
    }

    /// Abandons runs that outlived their lease (time limit plus grace).
    fn watchdog(&mut self) {
        let now = self.now();
        self.ticks += 1;
        self.last_tick_ms = Some(now);
        self.s.metrics.inc("pincer_cron_wakes_total", "Scheduler wake-ups.", &[]);
        self.prune_runs(now);
        for id in self.table.expired_leases(now) {
            let Some(active) = self.table.active_mut(&id) else { continue };
            let (Some(r), Some(job)) = (active.running.as_ref(), active.job.clone()) else { continue };
            r.task.abort();
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

    /// Records an execution outcome; hands any deliverable to the outbox in the same transaction.
    fn finished(&mut self, f: Finished) {
        let Finished { ctx, trigger, outcome, route, finished_at_ms: now } = f;
        let id = ctx.job.id.clone();
        let Some(active) = self.table.active_mut(&id) else {
            tracing::info!(run = %ctx.run_id, "cron: run finished for a removed job");
            return;
        };
        if active.running.as_ref().is_none_or(|r| r.run_id != ctx.run_id) {
            return; // Already recorded (e.g. abandoned by the watchdog).
        }
        let Some(job) = active.job.clone() else { return };
        self.table.update(&id, |e| {
            if let Some(a) = e.active.as_mut() {
                a.running = None;
            }
        });
        self.running_count -= 1;
        let status = outcome.exec_status();
        self.s.metrics.inc(
            "pincer_cron_runs_total",
            "Finished runs by execution status.",
            &[("status", status.as_str())],
        );
        let best_effort = job.delivery.as_ref().is_some_and(|d| d.best_effort());
        let mode = job.delivery.as_ref().map_or(DeliveryMode::None, |d| d.mode);
        let summary = outcome.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
        let duration = now - ctx.started_at_ms;
        let announcer = self.s.announcer.clone();
        let routed = route.as_ref().zip(announcer.as_ref());

        let mut record = RunRecord {
            ts: Some(now),
            job_id: id.clone(),
            job_name: Some(job.name.clone()),
            run_id: ctx.run_id.clone(),
            trigger: Some(trigger),
            slot_ms: ctx.slot_ms.map(Some),
            run_at_ms: Some(ctx.slot_ms.unwrap_or(ctx.started_at_ms)),
            started_at_ms: Some(ctx.started_at_ms),
            finished_at_ms: Some(now),
            duration_ms: Some(duration),
            execution_status: Some(status),
            summary: summary.clone(),
            error: outcome.error.clone(),
            error_reason: outcome.error_reason,
            model: outcome.model.clone(),
            provider: outcome.provider.clone(),
            usage: outcome.usage.clone(),
            session_key: outcome.session_key.clone(),
            command: outcome.command.as_ref().map(CommandNote::from),
            delivery: route.clone().map(|resolved| ResolvedDelivery { resolved }),
            ..RunRecord::default()
        };

        // Delivery: what to send, if anything.
        let plan = outcome::plan(&Finish {
            mode,
            status,
            summary: summary.as_deref(),
            reason: outcome.error_reason,
            routed: routed.is_some(),
        });
        let mut delivery_status = plan.status();
        let (mut suppression, mut delivery_error, mut pending) = (None, None, None);
        match (plan, routed) {
            (Plan::NotRequested, _) => {}
            (Plan::NotDelivered { suppressed, error }, _) => {
                suppression = suppressed;
                delivery_error = error.map(String::from);
            }
            (Plan::Send(body), Some((route, a))) => {
                let text = match body {
                    Body::Summary => Ok(summary.clone().unwrap_or_default()),
                    Body::Webhook => webhook_body(&job, &ctx, status, summary.as_deref(), &outcome, duration),
                };
                let key = outcome::delivery_key(&id, ctx.slot_ms, &ctx.run_id, route);
                let origin = Origin { kind: OriginKind::Cron, id: Some(ctx.run_id.clone()), best_effort };
                match text.and_then(|t| a.prepare(route, &t, &key, origin).map_err(|e| e.to_string())) {
                    Ok(d) => {
                        record.outbox_id = Some(d.id.clone());
                        pending = Some(d);
                    }
                    Err(e) => {
                        delivery_status = DeliveryStatus::NotDelivered;
                        delivery_error = Some(e);
                    }
                }
            }
            (Plan::Send(_), None) => delivery_status = DeliveryStatus::NotDelivered,
        }
        record.delivery_status = Some(delivery_status);
        record.delivered = Some(false);
        record.delivery_suppression_reason = suppression;
        record.delivery_error = delivery_error.clone();

        // Job state.
        let mut next_job = job.clone();
        let st = &mut next_job.state;
        st.running_at_ms = None;
        st.running_run_id = None;
        st.last_run_id = Some(ctx.run_id.clone());
        st.last_run_at_ms = Some(ctx.started_at_ms);
        st.last_duration_ms = Some(u64::try_from(duration).unwrap_or(0));
        st.last_run_status = Some(status);
        st.last_status = Some(status);
        st.last_error = outcome.error.clone();
        st.last_error_reason = outcome.error_reason;
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
        if delivery_status != DeliveryStatus::Pending {
            st.last_delivery_status = Some(delivery_status);
            st.last_delivered = Some(false);
            st.last_delivery_error = delivery_error;
            st.delivery_suppression_reason = suppression;
        }

        // The next slot.
        let schedule = Schedule::new(&next_job.schedule, &id).ok();
        let entry = self.table.get(&id);
        let pending_slot = match (entry, &schedule) {
            (Some(e), Some(s)) => self.resolve_slot(e.fire, e.slot, &next_job, s),
            (Some(e), None) => e.pending_slot(),
            (None, _) => None,
        };
        let next = next::after_run(&AfterRun {
            is_at: matches!(next_job.schedule, ScheduleSpec::At { .. }),
            trigger,
            status,
            reason: outcome.error_reason,
            consecutive_errors: next_job.state.consecutive_errors,
            now_ms: now,
            natural: schedule.as_ref().and_then(|s| s.next_after(now)),
            pending: pending_slot,
        });
        match next.disable {
            Some(Disable::Done) => next_job.enabled = false,
            Some(Disable::AutoDisabled) => {
                next_job.enabled = false;
                next_job.state.auto_disabled = Some(AutoDisabled {
                    reason: "consecutive-failures".into(),
                    at_ms: now,
                    consecutive_errors: next_job.state.consecutive_errors,
                });
                tracing::warn!(job = %id, "cron: disabled after {} consecutive errors", next::AUTO_DISABLE_AFTER);
            }
            None => {}
        }
        next_job.updated_at_ms = now;
        next_job.state.next_run_at_ms = next.slot.map(|s| s.fire_ms);
        record.next_run_at_ms = Some(next_job.state.next_run_at_ms);

        let mut run_row = RunRow {
            run_id: ctx.run_id.clone(),
            job_id: id.clone(),
            slot_ms: ctx.slot_ms,
            trigger,
            status: status.into(),
            lease_owner: self.s.generation,
            lease_until_ms: None,
            started_at_ms: ctx.started_at_ms,
            finished_at_ms: Some(now),
            delivery_status: Some(delivery_status),
            completion_status: None,
            record_json: String::new(),
        };
        let mut deliveries: Vec<NewDelivery> = pending.into_iter().collect();
        let mut delete = false;
        if let Some(completion) =
            outcome::completion_status(status, delivery_status, suppression.is_some(), best_effort)
        {
            record.completion_status = Some(completion);
            run_row.completion_status = Some(completion);
            let (alerts, del) = self.completed(&mut next_job, &record, completion, now);
            deliveries.extend(alerts);
            delete = del;
        }
        run_row.record_json = record.to_json();
        let mut event = record.to_value();
        event["action"] = json!(if record.completion_status.is_some() { "finished" } else { "executed" });
        let slot_ref = match next.slot {
            Some(s) if s.trigger == Trigger::Scheduled && s.slot_ms == s.fire_ms => SlotRef::Fire,
            Some(s) => SlotRef::Fixed { slot_ms: s.slot_ms, trigger: s.trigger },
            None => SlotRef::Fire,
        };
        self.record(&id, job.enabled, next_job, delete, run_row, deliveries, slot_ref, event);
    }

    /// Commits a run's outcome (or settlement) with the job's new state.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        id: &str,
        was_enabled: bool,
        job: Job,
        delete: bool,
        run: RunRow,
        deliveries: Vec<NewDelivery>,
        slot: SlotRef,
        event: Value,
    ) {
        let row = match job_row(&job) {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(job = %id, error = %e, "cron: cannot write a run's outcome");
                return;
            }
        };
        let kick = !deliveries.is_empty();
        let mut write = RowWrite::job(id, Some(row));
        write.delete = delete;
        write.run = Some(RunWrite::Update(run));
        write.deliveries = deliveries;
        let pending = Pending {
            write,
            was: Some(was_enabled),
            fire: if delete { None } else { fire_of(&job) },
            job: (!delete).then_some(job),
            slot,
            then: Then::Recorded { event: Box::new(event), kick },
            failures: 0,
        };
        self.commit(vec![(Arc::from(id), pending)], "cron.commit");
    }

    /// Completion is known: counters, failure alerts and one-shot deletion. Returns alert
    /// deliveries and whether the job is to be deleted.
    fn completed(
        &self,
        job: &mut Job,
        record: &RunRecord,
        completion: CompletionStatus,
        now: i64,
    ) -> (Vec<NewDelivery>, bool) {
        let st = &mut job.state;
        st.last_completion_status = Some(completion);
        if completion == CompletionStatus::Succeeded {
            st.consecutive_failures = 0;
        } else {
            st.consecutive_failures += 1;
        }
        let just_disabled = job.state.auto_disabled.as_ref().is_some_and(|a| a.at_ms == now);
        let mut alerts = Vec::new();
        if let Some(announcer) = &self.s.announcer
            && let Some(alert) =
                alert::failure_alert(job, record, completion, now, just_disabled, &self.s.config, announcer.as_ref())
        {
            job.state.last_failure_alert_at_ms = Some(now);
            alerts.push(alert);
        }
        let is_at = matches!(job.schedule, ScheduleSpec::At { .. });
        let delete = is_at && completion == CompletionStatus::Succeeded && job.delete_after_run == Some(true);
        (alerts, delete)
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
        if run.delivery_status != Some(DeliveryStatus::Pending) {
            return; // Already settled: settlements are idempotent.
        }
        let id = run.job_id.clone();
        if let Some(active) = self.table.active_mut(&id)
            && active.commit.is_some()
        {
            active.waiting.push_back(Msg::Settled(s));
            return;
        }
        let now = self.now();
        let mut record = RunRecord::parse(&run.record_json);
        let (delivery_status, delivered) = match s.state {
            DeliveryState::Delivered => (DeliveryStatus::Delivered, true),
            DeliveryState::Unknown => (DeliveryStatus::Unknown, false),
            DeliveryState::Dead | DeliveryState::Pending | DeliveryState::Sending => {
                (DeliveryStatus::NotDelivered, false)
            }
        };
        record.delivery_status = Some(delivery_status);
        record.delivered = Some(delivered);
        if let Some(err) = &s.error {
            record.delivery_error = Some(err.clone());
        }
        let status = run.status.exec().unwrap_or(ExecStatus::Error);
        let job = match self.job(&id).await {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cron: recording a settled delivery without its job");
                None
            }
        };
        let best_effort = job.as_ref().and_then(|j| j.delivery.as_ref()).is_some_and(|d| d.best_effort());
        let completion = outcome::completion_status(status, delivery_status, false, best_effort)
            .unwrap_or(CompletionStatus::Unknown);
        record.completion_status = Some(completion);
        let mut run_row = run.clone();
        run_row.delivery_status = Some(delivery_status);
        run_row.completion_status = Some(completion);
        let Some(job) = job else {
            // The job is gone (or unreadable); still record the run's completion.
            run_row.record_json = record.to_json();
            let write = self.s.store.write(move |tx| tx.update_run(&run_row).map(|_| ()));
            if let Err(e) = write.await {
                tracing::error!(run = %run.run_id, error = %e, "cron: cannot record a settled delivery");
            }
            return;
        };
        let mut next_job = job.clone();
        if next_job.state.last_run_id.as_deref() == Some(run.run_id.as_str()) {
            let st = &mut next_job.state;
            st.last_delivery_status = Some(delivery_status);
            st.last_delivered = Some(delivered);
            st.last_delivery_error = s.error.clone();
            st.delivery_suppression_reason = None;
        }
        let (alerts, delete) = self.completed(&mut next_job, &record, completion, now);
        run_row.record_json = record.to_json();
        let mut event = record.to_value();
        event["action"] = json!("finished");
        event["jobId"] = json!(id);
        event["nextRunAtMs"] = json!(next_job.state.next_run_at_ms);
        let slot = self.table.get(&id).map(|e| e.slot).unwrap_or_default();
        self.activate(&id, Some(job.clone()));
        self.record(&id, job.enabled, next_job, delete, run_row, alerts, slot, event);
    }

    fn shutdown(&mut self) {
        let mut runs = 0;
        for id in self.table.active_ids() {
            if let Some(r) = self.table.active_mut(&id).and_then(|a| a.running.take()) {
                r.task.abort();
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

/// The finished-run JSON a webhook delivery carries.
fn webhook_body(
    job: &Job,
    ctx: &RunContext,
    status: ExecStatus,
    summary: Option<&str>,
    outcome: &ExecOutcome,
    duration: i64,
) -> Result<String, String> {
    let mut body = json!({
        "jobId": job.id, "action": "finished", "runId": ctx.run_id, "status": status,
        "runAtMs": ctx.slot_ms.unwrap_or(ctx.started_at_ms), "durationMs": duration,
        "nextRunAtMs": Value::Null, "job": job.view().map_err(|e| e.0)?,
    });
    if status == ExecStatus::Ok {
        body["summary"] = json!(summary);
    } else {
        body["error"] = json!(outcome.error);
    }
    Ok(body.to_string())
}

/// Runs one reserved run: route preflight, then the payload under its time limit.
async fn run_task(s: Arc<Shared>, ctx: RunContext, trigger: Trigger, tx: mpsc::Sender<Msg>) {
    let (outcome, route) = execute(&s, &ctx).await;
    pincer_core::crashpoint::hit("cron.executed");
    let finished = Finished { ctx, trigger, outcome, route, finished_at_ms: s.clock.now_ms() };
    let _ = tx.send(Msg::Finished(Box::new(finished))).await;
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
