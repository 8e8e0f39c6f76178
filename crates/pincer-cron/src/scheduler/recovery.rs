//! Start-up: record the runs a stopped process left `running` as interrupted, coalesce the slots
//! missed while the gateway was down into one catch-up run per job (a few at once, the rest spread
//! out), and load what is due — from an index, without parsing a job. The rest of the schedule is
//! read in the background in fire order, then every job is checked, a page at a time, so
//! `cron.status` can name those that cannot run; start-up costs the same with 100 jobs or 100,000.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use pincer_protocol::state::{
    CommandState, CompletionStatus, DeliveryStatus, ExecStatus, RunFailure, RunStatus, Trigger,
};
use pincer_store::{JobRow, RunRow};
use tokio::sync::mpsc;

use std::sync::atomic::Ordering;

use super::actor::{Actor, Msg, UNLIMITED_LEASE_MS, fire_of, job_row};
use super::commit::Start;
use super::record::{CommandNote, RunRecord};
use super::table::{Active, JobTable, Running, SlotRef};
use super::{CATCH_UP_IMMEDIATE, CATCH_UP_SPREAD_MS, CronError, Queue, RunToken, Shared, settled_while_away};
use crate::job::{Job, JobExt};
use crate::runner::RunContext;
use crate::schedule::{Schedule, ScheduleSpec};

/// Schedule rows read per page.
const LOAD_PAGE: u32 = 2_000;
/// Jobs parsed per page by the background check.
const SWEEP_PAGE: u32 = 500;

/// The error of a run a stop interrupted, saying — for a command — whether it may have run, from
/// the progress its record noted; marks a command that was running `killed`.
pub fn interrupted_error(command: Option<&mut CommandNote>) -> String {
    const SLOT: &str = "the slot is not run again";
    let Some(command) = command else {
        return format!("interrupted: the gateway stopped during this run; {SLOT}");
    };
    match command.state {
        CommandState::Pending | CommandState::NotStarted => {
            format!("interrupted: the gateway stopped before the command started; it did not run, and {SLOT}")
        }
        CommandState::Started => {
            command.state = CommandState::Killed;
            format!(
                "interrupted: the gateway stopped while the command was running; the command was killed with it \
                 and may have partly run; {SLOT}"
            )
        }
        CommandState::Exited => {
            let how = match (command.exit_code, command.signal) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(signal)) => format!("been killed by signal {signal}"),
                (None, None) => "ended".to_string(),
            };
            format!(
                "interrupted: the command had {how} before the gateway stopped, but its outcome was not recorded \
                 (nothing was delivered); {SLOT}"
            )
        }
        CommandState::Killed => format!("interrupted: the gateway stopped during this run; {SLOT}"),
    }
}

/// Records a run a stop interrupted: `error`, not delivered, failed. Returns the error.
fn interrupt(run: &mut RunRow, now: i64) -> String {
    let mut record = RunRecord::parse(&run.record_json);
    let error = interrupted_error(record.command.as_mut());
    record.execution_status = Some(ExecStatus::Error);
    record.error = Some(error.clone());
    record.error_reason = Some(RunFailure::Interrupted.into());
    record.delivery_status = Some(DeliveryStatus::NotDelivered);
    record.completion_status = Some(CompletionStatus::Failed);
    record.finished_at_ms = Some(now);
    record.duration_ms = Some(now - run.started_at_ms);
    run.status = RunStatus::Error;
    run.finished_at_ms = Some(now);
    run.delivery_status = Some(DeliveryStatus::NotDelivered);
    run.completion_status = Some(CompletionStatus::Failed);
    run.record_json = record.to_json();
    error
}

/// The job after its run `run` was interrupted: the error counted, the interrupted slot consumed.
fn job_after_interrupt(job: &mut Job, run: &RunRow, error: &str) {
    let st = &mut job.state;
    st.running_at_ms = None;
    st.running_run_id = None;
    st.last_run_id = Some(run.run_id.clone());
    st.last_run_at_ms = Some(run.started_at_ms);
    st.last_run_status = Some(ExecStatus::Error);
    st.last_status = Some(ExecStatus::Error);
    st.last_error = Some(error.into());
    st.last_error_reason = Some(RunFailure::Interrupted.into());
    st.last_completion_status = Some(CompletionStatus::Failed);
    st.consecutive_errors += 1;
    st.consecutive_failures += 1;
    if run.trigger != Trigger::Manual {
        let after = run.slot_ms.unwrap_or(run.started_at_ms);
        job.state.next_run_at_ms = Schedule::new(&job.schedule, &job.id).ok().and_then(|s| s.next_after(after));
        if matches!(job.schedule, ScheduleSpec::At { .. }) {
            job.enabled = false;
        }
    }
}

/// When the `n`-th catch-up (from 0) fires: the first few at once, the rest spread out.
pub fn catch_up_fire(n: usize, now: i64) -> i64 {
    if n < CATCH_UP_IMMEDIATE { now } else { now + CATCH_UP_SPREAD_MS * (n - CATCH_UP_IMMEDIATE + 1) as i64 }
}

fn parse(row: &JobRow) -> Result<Job, String> {
    Job::from_stored(&row.job_json, &row.state_json).map_err(|e| e.0)
}

/// A run of this process a restarted actor takes over.
struct Adopted {
    run: RunRow,
    job: Job,
    token: Arc<RunToken>,
}

impl Actor {
    /// An actor with the jobs and runs in the store, ready to run. `restart`: the previous actor
    /// died, so wait for the writes it queued first, and take over the runs this process still
    /// carries. Settlements that arrived meanwhile are completed, and slots already due (catch-ups)
    /// reserved, before the actor reads its queue.
    pub(crate) async fn boot(
        s: Arc<Shared>,
        tx: mpsc::Sender<Msg>,
        queue: Queue,
        restart: bool,
    ) -> Result<Actor, CronError> {
        let rx = queue.lock_owned().await;
        if restart {
            // Writes commit in order: once this one has, everything the previous actor queued has.
            s.store.write(|_| Ok(())).await?;
        }
        let epoch = s.epochs.fetch_add(1, Ordering::AcqRel) + 1;
        let mut actor = Actor::load(s, tx, rx, epoch).await?;
        for settlement in settled_while_away(&actor.s.store).await? {
            actor.settled(settlement).await;
        }
        actor.dispatch_due().await.map_err(|e| CronError::Unavailable(e.to_string()))?;
        if restart {
            tracing::warn!(
                scheduled = actor.table.len(),
                running = actor.running_count,
                "cron: the scheduler restarted and reloaded its state from the store"
            );
        }
        Ok(actor)
    }

    /// Loads what is due now and recovers from the last stop; the actor is ready to run after it.
    /// The rest of the schedule (fires after now) is read in the background, in fire order.
    async fn load(
        s: Arc<Shared>,
        tx: mpsc::Sender<Msg>,
        rx: tokio::sync::OwnedMutexGuard<mpsc::Receiver<Msg>>,
        epoch: u64,
    ) -> Result<Actor, CronError> {
        let now = s.clock.now_ms();
        let store = s.store.clone();

        // Runs a previous process left `running` were interrupted (crash, kill -9, power loss);
        // so were this process's, unless it still carries them (the scheduler restarted).
        let running = store.read(|rd| rd.running_runs()).await?;
        let ids: Vec<String> = running.iter().map(|r| r.job_id.clone()).collect();
        let rows = store.read(move |rd| rd.get_jobs(&ids.iter().map(String::as_str).collect::<Vec<_>>())).await?;
        let mut interrupted_jobs: HashMap<String, Job> =
            rows.iter().filter_map(|r| parse(r).ok().map(|j| (r.id.clone(), j))).collect();
        let mut interrupted_runs = Vec::new();
        let mut adopted: HashMap<String, Adopted> = HashMap::new();
        for mut run in running {
            let token = s.tracked_run(&run.run_id).filter(|_| run.lease_owner == s.generation);
            if let Some(token) = token
                && !adopted.contains_key(&run.job_id)
                && let Some(job) = interrupted_jobs.remove(&run.job_id)
            {
                adopted.insert(run.job_id.clone(), Adopted { run, job, token });
                continue;
            }
            let error = interrupt(&mut run, now);
            if let Some(job) = interrupted_jobs.get_mut(&run.job_id) {
                job_after_interrupt(job, &run, &error);
            }
            tracing::warn!(run = %run.run_id, "cron: run was interrupted by a restart; recorded as error");
            interrupted_runs.push(run);
        }
        // Runs this process carries that are not taken over will never report: stop them.
        let stale: Vec<(String, Arc<RunToken>)> = {
            let runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.iter()
                .filter(|(run_id, _)| !adopted.values().any(|a| &a.run.run_id == *run_id))
                .map(|(run_id, token)| (run_id.clone(), token.clone()))
                .collect()
        };
        for (run_id, token) in stale {
            token.abort();
            s.forget_run(&run_id);
        }

        // The schedule up to now and a page beyond, from the index alone (`(id, next fire)` of
        // enabled jobs, in fire order); the rest is read in the background.
        let mut scheduled: Vec<(String, i64)> = Vec::new();
        let mut complete = false;
        while !complete && scheduled.last().is_none_or(|(_, t)| *t <= now) {
            let after = scheduled.last().map(|(id, t)| (*t, id.clone()));
            let page = store
                .read(move |rd| rd.scheduled_jobs(after.as_ref().map(|(t, id)| (*t, id.as_str())), LOAD_PAGE))
                .await?;
            complete = page.len() < LOAD_PAGE as usize;
            scheduled.extend(page);
        }
        let resume = (!complete).then(|| scheduled.last().map(|(id, t)| (*t, id.clone()))).flatten();
        // Interrupted jobs moved on (or were turned off) above; adopted ones are running.
        scheduled.retain(|(id, _)| !interrupted_jobs.contains_key(id) && !adopted.contains_key(id));
        for (id, job) in &interrupted_jobs {
            if let Some(next) = job.state.next_run_at_ms.filter(|_| job.enabled) {
                scheduled.push((id.clone(), next));
            }
        }
        scheduled.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));

        // Enabled jobs without a next fire get one; missed ones (due at or before now) are caught
        // up once, or — with `skipMissedJobs` — moved to their next slot (not `at` jobs).
        let mut unscheduled = store.read(|rd| rd.unscheduled_jobs()).await?;
        unscheduled.retain(|id| !adopted.contains_key(id));
        let missed: Vec<String> = scheduled.iter().take_while(|(_, t)| *t <= now).map(|(id, _)| id.clone()).collect();
        let mut need: Vec<String> = unscheduled.clone();
        if s.config.skip_missed_jobs {
            need.extend(missed.iter().cloned());
        }
        need.retain(|id| !interrupted_jobs.contains_key(id));
        let loaded: HashMap<String, Job> = if need.is_empty() {
            HashMap::new()
        } else {
            let rows = store.read(move |rd| rd.get_jobs(&need.iter().map(String::as_str).collect::<Vec<_>>())).await?;
            rows.iter().filter_map(|r| parse(r).ok().map(|j| (r.id.clone(), j))).collect()
        };
        let job_of = |id: &str| interrupted_jobs.get(id).or_else(|| loaded.get(id));
        let mut moves: Vec<(String, Option<i64>)> = Vec::new();
        let mut table = JobTable::default();
        let mut catch_ups = 0usize;
        for (id, stored_next) in &scheduled {
            if *stored_next > now {
                table.load(Arc::from(id.as_str()), *stored_next, SlotRef::Fire);
                continue;
            }
            let job = job_of(id);
            let is_at = job.is_some_and(|j| matches!(j.schedule, ScheduleSpec::At { .. }));
            if s.config.skip_missed_jobs
                && let Some(job) = job.filter(|_| !is_at)
            {
                let next = Schedule::new(&job.schedule, &job.id).ok().and_then(|s| s.next_after(now));
                moves.push((id.clone(), next));
                if let Some(next) = next {
                    table.load(Arc::from(id.as_str()), next, SlotRef::Fire);
                }
                continue;
            }
            let fire = catch_up_fire(catch_ups, now);
            catch_ups += 1;
            moves.push((id.clone(), Some(fire)));
            table.load(Arc::from(id.as_str()), fire, SlotRef::CatchUp { stored_next: *stored_next });
        }
        for id in &unscheduled {
            let Some(job) = job_of(id) else { continue };
            if interrupted_jobs.get(id).is_some_and(|j| j.state.next_run_at_ms.is_some() || !j.enabled) {
                continue; // Scheduled (or turned off) by its interruption above.
            }
            let Some(next) = Schedule::new(&job.schedule, &job.id).ok().and_then(|s| s.next_after(now)) else {
                continue;
            };
            moves.push((id.clone(), Some(next)));
            table.load(Arc::from(id.as_str()), next, SlotRef::Fire);
        }

        let mut rows = Vec::new();
        for (id, job) in interrupted_jobs.iter_mut() {
            if let Some((_, next)) = moves.iter().find(|(m, _)| m == id) {
                job.state.next_run_at_ms = *next;
            }
            rows.push(job_row(job)?);
        }
        moves.retain(|(id, _)| !interrupted_jobs.contains_key(id));
        store
            .write(move |tx| {
                for run in &interrupted_runs {
                    tx.update_run(run)?;
                }
                for row in &rows {
                    tx.update_job(row)?;
                }
                for (id, next) in &moves {
                    tx.set_job_next(id, *next)?;
                }
                Ok(())
            })
            .await?;

        tracing::info!(
            scheduled = table.len(),
            due = scheduled.iter().take_while(|(_, t)| *t <= now).count(),
            more = resume.is_some(),
            "cron: scheduler loaded"
        );
        // Runs taken over: in memory as running; one whose reservation committed while no actor
        // was there to start it starts now (its slot has not run).
        let mut starts = Vec::new();
        for (id, Adopted { run, job, token }) in adopted {
            let key: Arc<str> = Arc::from(id.as_str());
            let lease_until_ms = run.lease_until_ms.unwrap_or(run.started_at_ms + UNLIMITED_LEASE_MS);
            let (fire, started) = (fire_of(&job), token.started());
            if started {
                let running = Running {
                    run_id: run.run_id.clone(),
                    trigger: run.trigger,
                    slot_ms: run.slot_ms,
                    started_at_ms: run.started_at_ms,
                    lease_until_ms,
                    token,
                };
                table.update(&key, |e| {
                    e.fire = fire;
                    let mut active = Active::new(Some(job));
                    active.running = Some(running);
                    e.active = Some(active);
                });
            } else {
                let timeout = job.payload.timeout_ms().map(|t| i64::try_from(t).unwrap_or(i64::MAX));
                let ctx = RunContext {
                    run_id: run.run_id.clone(),
                    tz: job.display_tz(&s.default_tz).to_string(),
                    job: job.clone(),
                    slot_ms: run.slot_ms,
                    started_at_ms: run.started_at_ms,
                    deadline_ms: timeout.map(|t| run.started_at_ms.saturating_add(t)),
                };
                table.update(&key, |e| {
                    e.fire = fire;
                    e.active = Some(Active::new(Some(job)));
                });
                starts.push((key, Start { ctx, trigger: run.trigger, lease_until_ms, token }));
            }
            tracing::info!(run = %run.run_id, started, "cron: run reserved before the scheduler's restart; taken over");
        }
        let running_count = table.active_ids().len();
        let mut actor = Actor {
            s,
            epoch,
            table,
            invalid: BTreeMap::new(),
            touched: Some(HashSet::new()),
            declaring: HashMap::new(),
            loaded_at_ms: now,
            running_count,
            manual_seq: 0,
            ticks: 0,
            last_tick_ms: None,
            last_prune_ms: i64::MIN,
            load_retry_at: None,
            replay: VecDeque::new(),
            tx,
            rx,
        };
        for (id, start) in starts {
            actor.start(&id, start, None);
        }
        actor.spawn_background(resume);
        Ok(actor)
    }

    /// In the background, one page at a time: the rest of the schedule after `resume` (fires
    /// after now), then a check of every stored job that reports those that cannot run (a row
    /// this version cannot read, a schedule that does not compile).
    fn spawn_background(&self, mut resume: Option<(i64, String)>) {
        let (store, tx, epoch) = (self.s.store.clone(), self.tx.clone(), self.epoch);
        tokio::spawn(async move {
            while let Some(after) = resume.take() {
                let page = store.read(move |rd| rd.scheduled_jobs(Some((after.0, after.1.as_str())), LOAD_PAGE)).await;
                let page = match page {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "cron: cannot read the schedule; jobs not read yet run once edited or after a restart");
                        break;
                    }
                };
                if page.len() == LOAD_PAGE as usize {
                    resume = page.last().map(|(id, t)| (*t, id.clone()));
                }
                let jobs = page.into_iter().map(|(id, t)| (Arc::from(id.as_str()), t)).collect();
                if tx.send(Msg::Loaded { epoch, jobs }).await.is_err() {
                    return;
                }
            }
            let mut after = String::new();
            loop {
                let from = after.clone();
                let page = store
                    .read(move |rd| {
                        let rows = rd.jobs_after(&from, SWEEP_PAGE)?;
                        let last = rows.last().map(|r| r.id.clone());
                        let bad: Vec<(String, String)> = rows
                            .iter()
                            .filter_map(|r| match parse(r) {
                                Err(e) => Some((r.id.clone(), e)),
                                Ok(job) => {
                                    Schedule::new(&job.schedule, &job.id).err().map(|e| (r.id.clone(), e.to_string()))
                                }
                            })
                            .collect();
                        Ok((last, bad))
                    })
                    .await;
                match page {
                    Ok((last, bad)) => {
                        for (id, error) in &bad {
                            tracing::error!(job = %id, error = %error, "cron: stored job cannot run; it stays in the store");
                        }
                        if !bad.is_empty() && tx.send(Msg::Invalid { epoch, found: bad, done: false }).await.is_err() {
                            return;
                        }
                        match last {
                            Some(id) => after = id,
                            None => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cron: cannot check the stored jobs");
                        break;
                    }
                }
            }
            let _ = tx.send(Msg::Invalid { epoch, found: Vec::new(), done: true }).await;
        });
    }
}
