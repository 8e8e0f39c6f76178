//! What the scheduler keeps in memory: for each enabled job with a next fire, that fire and the
//! slot it is for (a few dozen bytes), and a queue ordered by fire time. A job is held in full only
//! while it is *active* — running, or with a write of its row in flight — and read from the store
//! when it is due or edited. Disabled jobs and jobs without a next fire are not in memory at all.
//!
//! Every change goes through [`JobTable::update`], which keeps the queue in step: a job is queued
//! exactly when it has a fire time and is neither running nor being written.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use pincer_protocol::state::Trigger;

use super::actor::Msg;
use super::commit::Pending;
use super::next::Slot;
use crate::job::Job;

/// The slot a job's next fire is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotRef {
    /// A regular slot: the fire time itself.
    #[default]
    Fire,
    /// A slot other than the fire time, or another trigger (a retry; a slot kept by a manual run;
    /// a reservation the store refused, tried again later).
    Fixed { slot_ms: i64, trigger: Trigger },
    /// A catch-up after downtime, for the latest slot at or before the restart (but not before
    /// the next run the job had stored): resolved from the schedule when it runs.
    CatchUp { stored_next: i64 },
}

/// A job the scheduler is working on.
pub struct Active {
    /// The job as last committed (for a job being added: as it will be; `None` while a job the
    /// store holds in a form this version cannot read is being removed).
    pub job: Option<Job>,
    pub running: Option<Running>,
    /// The write in flight (or waiting for its next try after the store refused it).
    pub commit: Option<Box<Pending>>,
    /// Messages for this job that arrived while a write was in flight, in order.
    pub waiting: VecDeque<Msg>,
}

impl Active {
    pub fn new(job: Option<Job>) -> Box<Active> {
        Box::new(Active { job, running: None, commit: None, waiting: VecDeque::new() })
    }
}

/// A run in flight.
pub struct Running {
    pub run_id: String,
    pub trigger: Trigger,
    pub slot_ms: Option<i64>,
    pub started_at_ms: i64,
    pub lease_until_ms: i64,
    pub task: tokio::task::AbortHandle,
}

/// One job in memory.
#[derive(Default)]
pub struct Entry {
    /// When the job fires next (`None`: it does not, or it is disabled).
    pub fire: Option<i64>,
    pub slot: SlotRef,
    pub active: Option<Box<Active>>,
}

impl Entry {
    fn queued(&self) -> Option<i64> {
        match &self.active {
            Some(a) if a.running.is_some() || a.commit.is_some() => None,
            _ => self.fire,
        }
    }

    fn is_empty(&self) -> bool {
        self.fire.is_none() && self.active.is_none()
    }

    /// The pending slot, when its slot is known without the schedule.
    pub fn pending_slot(&self) -> Option<Slot> {
        let fire = self.fire?;
        match self.slot {
            SlotRef::Fire => Some(Slot::at(fire)),
            SlotRef::Fixed { slot_ms, trigger } => Some(Slot { fire_ms: fire, slot_ms, trigger }),
            SlotRef::CatchUp { stored_next } => {
                Some(Slot { fire_ms: fire, slot_ms: stored_next, trigger: Trigger::CatchUp })
            }
        }
    }
}

/// The jobs in memory and the due queue.
#[derive(Default)]
pub struct JobTable {
    entries: HashMap<Arc<str>, Entry>,
    queue: BTreeSet<(i64, Arc<str>)>,
    /// Every stored job, and the enabled ones (for `cron.status`).
    pub total: u64,
    pub enabled: u64,
}

impl JobTable {
    /// A table of `scheduled` (`(id, fire, slot)`, enabled jobs only).
    pub fn build(scheduled: Vec<(Arc<str>, i64, SlotRef)>, total: u64, enabled: u64) -> JobTable {
        let mut entries = HashMap::with_capacity(scheduled.len());
        let mut queue = Vec::with_capacity(scheduled.len());
        for (id, fire, slot) in scheduled {
            queue.push((fire, id.clone()));
            entries.insert(id, Entry { fire: Some(fire), slot, active: None });
        }
        // One queue item per job: the fire its entry holds.
        queue.retain(|(t, id)| entries.get(id).is_some_and(|e: &Entry| e.fire == Some(*t)));
        queue.sort_unstable();
        queue.dedup();
        JobTable { entries, queue: queue.into_iter().collect(), total, enabled }
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// The active job `id` (never changes whether it is queued: use [`JobTable::update`] to
    /// start or end a run or a write).
    pub fn active_mut(&mut self, id: &str) -> Option<&mut Active> {
        self.entries.get_mut(id)?.active.as_deref_mut()
    }

    /// Changes job `id`'s entry (created empty if absent) and keeps the queue in step; an entry
    /// left with nothing in it is dropped.
    pub fn update<R>(&mut self, id: &str, f: impl FnOnce(&mut Entry) -> R) -> R {
        let key: Arc<str> = match self.entries.get_key_value(id) {
            Some((k, e)) => {
                let k = k.clone();
                if let Some(t) = e.queued() {
                    self.queue.remove(&(t, k.clone()));
                }
                k
            }
            None => Arc::from(id),
        };
        let entry = self.entries.entry(key.clone()).or_default();
        let out = f(entry);
        if let Some(t) = entry.queued() {
            self.queue.insert((t, key));
        } else if entry.is_empty() {
            self.entries.remove(id);
        }
        out
    }

    /// Ids due by `now`, earliest first, at most `n`.
    pub fn due(&self, now: i64, n: usize) -> Vec<Arc<str>> {
        self.queue.iter().take_while(|(t, _)| *t <= now).take(n).map(|(_, id)| id.clone()).collect()
    }

    /// The earliest fire in the queue.
    pub fn next_fire(&self) -> Option<i64> {
        self.queue.first().map(|(t, _)| *t)
    }

    /// Jobs with a run in flight whose lease ran out by `now`.
    pub fn expired_leases(&self, now: i64) -> Vec<Arc<str>> {
        self.entries
            .iter()
            .filter(|(_, e)| e.active.as_ref().and_then(|a| a.running.as_ref()).is_some_and(|r| r.lease_until_ms < now))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every active job (for shutdown).
    pub fn active_ids(&self) -> Vec<Arc<str>> {
        self.entries.iter().filter(|(_, e)| e.active.is_some()).map(|(id, _)| id.clone()).collect()
    }

    /// Jobs in memory (queued or active).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
