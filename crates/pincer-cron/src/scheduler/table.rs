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
    /// Its task's handle, and whether the actor stopped it on purpose.
    pub token: Arc<super::RunToken>,
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
}

impl JobTable {
    /// Adds a job read from the store with its next fire. The caller skips jobs written since
    /// that read (a committed write wins over it). A job already in memory without a fire is one
    /// whose first write is still in flight: it takes the stored fire, which its write replaces
    /// when it commits and which stays when the store refuses it (it is queued only once no write
    /// is in flight).
    pub fn load(&mut self, id: Arc<str>, fire: i64, slot: SlotRef) {
        match self.entries.entry(id.clone()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry { fire: Some(fire), slot, active: None });
                self.queue.insert((fire, id));
            }
            std::collections::hash_map::Entry::Occupied(o) if o.get().fire.is_none() => {
                self.update(&id, |e| {
                    e.fire = Some(fire);
                    e.slot = slot;
                });
            }
            std::collections::hash_map::Entry::Occupied(_) => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule page read in the background: a new job is queued at its stored fire; a job in
    /// memory without a fire (its first write in flight, or refused) takes the stored fire; a job
    /// in memory with a fire keeps its own.
    #[test]
    fn a_loaded_page_fills_in_what_memory_does_not_know() {
        let mut t = JobTable::default();
        t.load(Arc::from("new"), 30, SlotRef::Fire);
        t.update("in-flight", |e| e.active = Some(Active::new(None)));
        t.load(Arc::from("in-flight"), 20, SlotRef::Fire);
        t.update("known", |e| e.fire = Some(50));
        t.load(Arc::from("known"), 10, SlotRef::Fire);
        assert_eq!(t.get("in-flight").and_then(|e| e.fire), Some(20));
        assert_eq!(t.get("known").and_then(|e| e.fire), Some(50), "memory wins over an older read");
        let due: Vec<String> = t.due(i64::MAX, 10).iter().map(|id| id.to_string()).collect();
        assert_eq!(due, ["in-flight", "new", "known"]);
        assert_eq!(t.len(), 3);
    }
}
