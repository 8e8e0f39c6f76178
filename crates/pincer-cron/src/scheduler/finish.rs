//! A run's outcome and its settled delivery, recorded: the run record, the delivery plan carried
//! out (an outbox row rendered for the same commit), the job's new state and next slot, completion,
//! failure alerts and one-shot deletion — all in one commit.

use pincer_core::metrics;
use std::sync::Arc;

use pincer_protocol::state::{
    CompletionStatus, DeliveryState, DeliveryStatus, ExecStatus, OriginKind, SuppressionReason, Trigger,
};
use pincer_store::{NewDelivery, RunRow};
use serde_json::{Value, json};

use super::actor::{Actor, Finished, Msg, RECORD_POINT, fire_of, job_row};
use super::alert;
use super::commit::{Pending, RowWrite, RunWrite, Then};
use super::next::{self, AfterRun, Disable, Next};
use super::outcome::{self, Body, Finish, Plan};
use super::record::RunRecord;
use super::table::SlotRef;
use crate::job::{AutoDisabled, DeliveryMode, Job, JobExt, JobStateExt};
use crate::runner::{ExecOutcome, Origin, Route, RunContext, Settlement};
use crate::schedule::{Schedule, ScheduleSpec};

/// What became of a run's result.
struct Delivery {
    status: DeliveryStatus,
    suppression: Option<SuppressionReason>,
    error: Option<String>,
    /// The outbox row, for the same commit.
    row: Option<NewDelivery>,
}

/// A recorded outcome, ready to commit.
struct Outcome {
    /// The job after.
    job: Job,
    delete: bool,
    run: RunRow,
    deliveries: Vec<NewDelivery>,
    slot: SlotRef,
    event: Value,
}

impl Actor {
    /// Records an execution outcome; hands any deliverable to the outbox in the same transaction.
    pub(super) fn finished(&mut self, f: Finished) {
        let Finished { ctx, trigger, outcome, route, finished_at_ms: now } = f;
        self.s.forget_run(&ctx.run_id);
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
        self.s.metrics.inc(&metrics::CRON_RUNS_TOTAL, &[("status", status.as_str())]);
        let mut record = RunRecord::finished(&ctx, trigger, &outcome, route.as_ref(), now);
        let delivery = self.deliver(&job, &ctx, &outcome, route.as_ref(), now);
        record.outbox_id = delivery.row.as_ref().map(|d| d.id.clone());
        record.delivery_status = Some(delivery.status);
        record.delivered = Some(false);
        record.delivery_suppression_reason = delivery.suppression;
        record.delivery_error = delivery.error.clone();

        let mut next_job = job.clone();
        next_job.state.note_run(&ctx.run_id, ctx.started_at_ms, now, status, &outcome);
        if delivery.status != DeliveryStatus::Pending {
            next_job.state.note_delivery(delivery.status, false, delivery.error.clone(), delivery.suppression);
        }
        let next = self.next_slot(&next_job, trigger, &outcome, now);
        apply_next(&mut next_job, &next, now);
        record.next_run_at_ms = Some(next_job.state.next_run_at_ms);

        let mut run = RunRow {
            run_id: ctx.run_id.clone(),
            job_id: id.clone(),
            slot_ms: ctx.slot_ms,
            trigger,
            status: status.into(),
            lease_owner: self.s.generation,
            lease_until_ms: None,
            started_at_ms: ctx.started_at_ms,
            finished_at_ms: Some(now),
            delivery_status: Some(delivery.status),
            completion_status: None,
            record_json: String::new(),
        };
        let best_effort = job.delivery.as_ref().is_some_and(|d| d.best_effort());
        let suppressed = delivery.suppression.is_some();
        let mut deliveries: Vec<NewDelivery> = delivery.row.into_iter().collect();
        let mut delete = false;
        if let Some(completion) = outcome::completion_status(status, delivery.status, suppressed, best_effort) {
            record.completion_status = Some(completion);
            run.completion_status = Some(completion);
            let (alerts, del) = self.completed(&mut next_job, &record, completion, now);
            deliveries.extend(alerts);
            delete = del;
        }
        run.record_json = record.to_json();
        let mut event = record.to_value();
        event["action"] = json!(if record.completion_status.is_some() { "finished" } else { "executed" });
        let slot = match next.slot {
            Some(s) if s.trigger == Trigger::Scheduled && s.slot_ms == s.fire_ms => SlotRef::Fire,
            Some(s) => SlotRef::Fixed { slot_ms: s.slot_ms, trigger: s.trigger },
            None => SlotRef::Fire,
        };
        self.record(&id, Outcome { job: next_job, delete, run, deliveries, slot, event });
    }

    /// Carries out the delivery plan: renders the result into an outbox row when there is one to
    /// send.
    fn deliver(&self, job: &Job, ctx: &RunContext, outcome: &ExecOutcome, route: Option<&Route>, now: i64) -> Delivery {
        let status = outcome.exec_status();
        let summary = outcome.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let routed = route.zip(self.s.announcer.as_ref());
        let plan = outcome::plan(&Finish {
            mode: job.delivery.as_ref().map_or(DeliveryMode::None, |d| d.mode),
            status,
            summary,
            reason: outcome.error_reason,
            routed: routed.is_some(),
        });
        let nothing = |status, suppression, error: Option<String>| Delivery { status, suppression, error, row: None };
        match (plan, routed) {
            (Plan::NotRequested, _) => nothing(plan.status(), None, None),
            (Plan::NotDelivered { suppressed, error }, _) => {
                nothing(plan.status(), suppressed, error.map(String::from))
            }
            (Plan::Send(_), None) => nothing(DeliveryStatus::NotDelivered, None, None),
            (Plan::Send(body), Some((route, announcer))) => {
                let duration = now - ctx.started_at_ms;
                let text = match body {
                    Body::Summary => Ok(summary.unwrap_or_default().to_string()),
                    Body::Webhook => webhook_body(job, ctx, status, summary, outcome, duration),
                };
                let key = outcome::delivery_key(&job.id, ctx.slot_ms, &ctx.run_id, route);
                let best_effort = job.delivery.as_ref().is_some_and(|d| d.best_effort());
                let origin = Origin { kind: OriginKind::Cron, id: Some(ctx.run_id.clone()), best_effort };
                match text.and_then(|t| announcer.prepare(route, &t, &key, origin).map_err(|e| e.to_string())) {
                    Ok(row) => {
                        Delivery { status: DeliveryStatus::Pending, suppression: None, error: None, row: Some(row) }
                    }
                    Err(e) => nothing(DeliveryStatus::NotDelivered, None, Some(e)),
                }
            }
        }
    }

    /// The job's next slot after a run (`job`'s counters include the run).
    fn next_slot(&self, job: &Job, trigger: Trigger, outcome: &ExecOutcome, now: i64) -> Next {
        let schedule = Schedule::new(&job.schedule, &job.id).ok();
        let pending = match (self.table.get(&job.id), &schedule) {
            (Some(e), Some(s)) => self.resolve_slot(e.fire, e.slot, job, s),
            (Some(e), None) => e.pending_slot(),
            (None, _) => None,
        };
        next::after_run(&AfterRun {
            is_at: matches!(job.schedule, ScheduleSpec::At { .. }),
            trigger,
            status: outcome.exec_status(),
            reason: outcome.error_reason,
            consecutive_errors: job.state.consecutive_errors,
            now_ms: now,
            natural: schedule.as_ref().and_then(|s| s.next_after(now)),
            pending,
            paced: job
                .pacing
                .as_ref()
                .zip(outcome.next_check_ms)
                .and_then(|(p, delay)| crate::job::paced_next_run_ms(p, now, delay)),
        })
    }

    /// Commits a run's outcome (or settlement) with the job's new state.
    fn record(&mut self, id: &str, o: Outcome) {
        let row = match job_row(&o.job) {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(job = %id, error = %e, "cron: cannot write a run's outcome");
                return;
            }
        };
        let kick = !o.deliveries.is_empty();
        let mut write = RowWrite::job(id, Some(row));
        write.delete = o.delete;
        write.run = Some(RunWrite::Update(o.run));
        write.deliveries = o.deliveries;
        let pending = Pending {
            write,
            fire: if o.delete { None } else { fire_of(&o.job) },
            job: (!o.delete).then_some(o.job),
            slot: o.slot,
            then: Then::Recorded { event: Box::new(o.event), kick },
            failures: 0,
        };
        self.commit(vec![(Arc::from(id), pending)], Some(RECORD_POINT));
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
    pub(super) async fn settled(&mut self, s: Settlement) {
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
            next_job.state.note_delivery(delivery_status, delivered, s.error.clone(), None);
        }
        let (alerts, delete) = self.completed(&mut next_job, &record, completion, now);
        run_row.record_json = record.to_json();
        let mut event = record.to_value();
        event["action"] = json!("finished");
        event["jobId"] = json!(id);
        event["nextRunAtMs"] = json!(next_job.state.next_run_at_ms);
        let slot = self.table.get(&id).map(|e| e.slot).unwrap_or_default();
        self.activate(&id, Some(job));
        let o = Outcome { job: next_job, delete, run: run_row, deliveries: alerts, slot, event };
        self.record(&id, o);
    }
}

/// Applies the next slot (or the job turning itself off) to the job.
fn apply_next(job: &mut Job, next: &Next, now: i64) {
    match next.disable {
        Some(Disable::Done) => job.enabled = false,
        Some(Disable::AutoDisabled) => {
            job.enabled = false;
            job.state.auto_disabled = Some(AutoDisabled {
                reason: "consecutive-failures".into(),
                at_ms: now,
                consecutive_errors: job.state.consecutive_errors,
            });
            tracing::warn!(job = %job.id, "cron: disabled after {} consecutive errors", next::AUTO_DISABLE_AFTER);
        }
        None => {}
    }
    job.updated_at_ms = now;
    job.state.next_run_at_ms = next.slot.map(|s| s.fire_ms);
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
