//! Commits: every write of a job's row (with its run's row and any outbox rows) is a [`Pending`]
//! commit, and the actor's memory of the job changes only once it committed.
//!
//! **Memory follows the store.** While a job's write is in flight, messages about that job wait
//! for it, so each one sees the job as stored. A reservation the store refuses is tried again 5 s
//! later; an outcome, a settlement or a skipped slot the store refuses is written again with backoff
//! (1 s, 2 s, 5 s, 10 s, then every 30 s) until it commits — the job does not run meanwhile, and
//! `cron.runs` shows its run still running; a client command the store refuses is answered with
//! the error.

use pincer_core::metrics;
use std::sync::Arc;

use pincer_protocol::state::Trigger;
use pincer_store::{JobRow, NewDelivery, RunRow, StoreError, Tx};
use serde_json::{Value, json};

use super::actor::{Actor, Msg, RECORD_POINT, Reply};
use super::table::{JobTable, SlotRef};
use super::{RESERVE_RETRY_MS, STORE_RETRY_MS};
use crate::job::Job;
use crate::runner::RunContext;
use pincer_protocol::schema::cron::RunResult;

/// What one commit writes: cloneable, so a refused write can be tried again.
#[derive(Clone)]
pub(super) struct RowWrite {
    pub(super) job_id: String,
    pub(super) row: Option<JobRow>,
    pub(super) insert: bool,
    pub(super) delete: bool,
    pub(super) run: Option<RunWrite>,
    pub(super) deliveries: Vec<NewDelivery>,
}

#[derive(Clone)]
pub(super) enum RunWrite {
    /// A reservation: written only if the slot was free; the job's row is then written too.
    Reserve(RunRow),
    Update(RunRow),
}

impl RowWrite {
    pub(super) fn job(job_id: &str, row: Option<JobRow>) -> RowWrite {
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
pub(super) struct Pending {
    pub(super) write: RowWrite,
    /// The job once written (`None`: deleted, or the write does not change it).
    pub(super) job: Option<Job>,
    /// Its next fire and slot once written.
    pub(super) fire: Option<i64>,
    pub(super) slot: SlotRef,
    pub(super) then: Then,
    pub(super) failures: usize,
}

pub(super) enum Then {
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
        reply: Option<Reply<RunResult>>,
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
pub(super) struct Start {
    pub(super) ctx: RunContext,
    pub(super) trigger: Trigger,
    pub(super) lease_until_ms: i64,
    pub(super) token: Arc<super::RunToken>,
}

impl Actor {
    /// Puts each job's write in flight (the jobs must be active) and writes them as one batch.
    pub(super) fn commit(&mut self, batch: Vec<(Arc<str>, Pending)>, point: Option<&'static str>) {
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

    pub(super) fn spawn_write(&self, ids: Vec<Arc<str>>, writes: Vec<RowWrite>, point: Option<&'static str>) {
        let write = match point.map_or(Ok(()), |p| self.s.failpoints.check(p)) {
            Err(injected) => Err(StoreError::Invalid(injected.to_string())),
            // Queued now, so writes commit in the order the actor issued them.
            Ok(()) => Ok(self.s.store.write(move |tx| writes.iter().map(|w| w.apply(tx)).collect())),
        };
        let (tx, epoch) = (self.tx.clone(), self.epoch);
        tokio::spawn(async move {
            let result = match write {
                Ok(w) => w.await,
                Err(e) => Err(e),
            };
            let _ = tx.send(Msg::Committed { epoch, ids, result }).await;
        });
    }

    pub(super) fn retry_commit(&mut self, id: &str) {
        let Some(write) = self.table.active_mut(id).and_then(|a| a.commit.as_ref()).map(|p| p.write.clone()) else {
            return;
        };
        self.spawn_write(vec![Arc::from(id)], vec![write], Some(RECORD_POINT));
    }

    /// A batch write finished: apply what committed, deal with what did not.
    pub(super) fn committed(&mut self, ids: Vec<Arc<str>>, result: Result<Vec<bool>, StoreError>) {
        let now = self.now();
        let (flags, mut error) = match result {
            Ok(flags) => (flags, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let message = error.as_ref().map(ToString::to_string);
        if message.is_none() {
            // Once per reserved slot, before any run of the batch starts, so `cron.reserved:<n>`
            // is the n-th slot whatever the batching.
            for (i, id) in ids.iter().enumerate() {
                let reserving = self.table.get(id).and_then(|e| e.active.as_ref()).and_then(|a| a.commit.as_ref());
                if reserving.is_some_and(|p| matches!(p.then, Then::Reserved { .. })) && flags.get(i) == Some(&true) {
                    pincer_core::crashpoint::hit("cron.reserved");
                }
            }
        }
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
    pub(super) fn release(&mut self, id: &str) {
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
    pub(super) fn applied(&mut self, id: &str, p: Pending, flag: bool, now: i64) {
        let Pending { job, fire, slot, then, .. } = p;
        self.touch(id);
        let set = |table: &mut JobTable, job: Option<Job>| {
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
                self.invalid.remove(id);
                if let Some(job) = job {
                    self.emit("added", &job, json!({}));
                    let _ = reply.send(Ok(job));
                }
            }
            Then::Updated { reply } => {
                set(&mut self.table, job.clone());
                self.invalid.remove(id);
                if let Some(job) = job {
                    self.emit("updated", &job, json!({}));
                    let _ = reply.send(Ok(job));
                }
            }
            Then::Removed { reply, in_memory, next_run_at_ms } => {
                if flag {
                    set(&mut self.table, None);
                }
                self.invalid.remove(id);
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
                    set(&mut self.table, job);
                    self.start(id, *start, reply);
                } else {
                    self.running_count -= 1;
                    self.s.forget_run(&start.ctx.run_id);
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(RunResult::not_ran("already-ran")));
                    }
                    self.skip_taken_slot(id, &start, now);
                }
            }
            Then::Recorded { event, kick } => {
                let deleted = job.is_none();
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
    pub(super) fn refused(&mut self, id: &str, mut p: Pending, e: StoreError, now: i64) {
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
                self.s.forget_run(&start.ctx.run_id);
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
                self.s.metrics.inc(&metrics::CRON_STORE_ERRORS_TOTAL, &[]);
                tracing::error!(job = %id, error = %e, retry_in_ms = wait, failures = p.failures,
                    "cron: the store refused a run's outcome; the job waits until it is written");
                self.table.update(id, |e| {
                    if let Some(a) = e.active.as_mut() {
                        a.commit = Some(Box::new(p));
                    }
                });
                let (clock, tx, key, epoch) = (self.s.clock.clone(), self.tx.clone(), Arc::<str>::from(id), self.epoch);
                tokio::spawn(async move {
                    clock.sleep_until(now + wait).await;
                    let _ = tx.send(Msg::RetryCommit { epoch, id: key }).await;
                });
            }
        }
    }
}
