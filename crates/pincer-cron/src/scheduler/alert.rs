//! Failure alerts: after `after` runs in a row that did not succeed (or when the scheduler turns a
//! job off), a message through a route other than the one that just failed, at most once per
//! cooldown. The job's own `failureAlert` wins over `cron.failureAlert`.

use pincer_core::config::CronConfig;
use pincer_protocol::state::{CompletionStatus, ExecStatus, OriginKind};
use pincer_store::NewDelivery;
use serde_json::Value;

use super::outcome::alert_key;
use super::record::RunRecord;
use crate::job::{FailureAlert, FailureAlertPolicy, Job};
use crate::runner::{Announcer, Origin};

/// Alerts after this many failed runs in a row unless a policy says otherwise.
const DEFAULT_AFTER: u32 = 2;
/// At most one alert per job this often unless a policy says otherwise.
const DEFAULT_COOLDOWN_MS: u64 = 3_600_000;

/// The global policy (`cron.failureAlert`) and whether it is on.
fn global_policy(config: &CronConfig) -> (FailureAlertPolicy, bool) {
    let raw = config.failure_alert.as_ref();
    let enabled = raw.and_then(|v| v.get("enabled")).and_then(Value::as_bool) != Some(false);
    let policy = raw
        .cloned()
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("enabled");
            }
            v
        })
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    (policy, enabled)
}

/// The failure alert to send now, if the policy asks for one (after N consecutive failures,
/// outside the cooldown, through a route other than the one that just failed). `job` is the job
/// after this run (its counters include it).
pub fn failure_alert(
    job: &Job,
    record: &RunRecord,
    completion: CompletionStatus,
    now: i64,
    auto_disabled: bool,
    config: &CronConfig,
    announcer: &dyn Announcer,
) -> Option<NewDelivery> {
    if completion == CompletionStatus::Succeeded {
        return None;
    }
    let (global, global_enabled) = global_policy(config);
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
    if record.execution_status == Some(ExecStatus::Skipped) && policy.include_skipped != Some(true) {
        return None;
    }
    let after = policy.after.or(global.after).unwrap_or(DEFAULT_AFTER);
    // Saturating: a cooldown beyond i64 milliseconds means "never again", not a negative one.
    let cooldown =
        i64::try_from(policy.cooldown_ms.or(global.cooldown_ms).unwrap_or(DEFAULT_COOLDOWN_MS)).unwrap_or(i64::MAX);
    let failures = job.state.consecutive_failures;
    if !auto_disabled && failures < after {
        return None;
    }
    if !auto_disabled && job.state.last_failure_alert_at_ms.is_some_and(|t| now - t < cooldown) {
        return None;
    }
    // Route precedence: the job's alert route, its failureDestination, the global route, then
    // the primary announce route — unless that route is what just failed.
    let failed_on_delivery = record.execution_status == Some(ExecStatus::Ok);
    let dest = job.delivery.as_ref().and_then(|d| d.failure_destination.as_ref());
    let candidates: [(Option<&str>, Option<&str>, Option<&str>); 3] = [
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
    let cause = record.delivery_error.as_deref().or(record.error.as_deref()).unwrap_or("no details");
    let text = if auto_disabled {
        format!(
            "Automation \"{}\" was disabled after {} consecutive errors. Last error: {cause}\nFix it, then run `pincer cron enable {}`.",
            job.name, job.state.consecutive_errors, job.id
        )
    } else {
        format!(
            "Automation \"{}\" failed {failures} times in a row (last run {}: {}). Cause: {cause}\nSee `pincer cron runs --id {}`.",
            job.name,
            if record.run_id.is_empty() { "?" } else { record.run_id.as_str() },
            completion,
            job.id
        )
    };
    let key = alert_key(&job.id, &record.run_id);
    match announcer.prepare(&route, &text, &key, Origin { kind: OriginKind::Alert, id: None, best_effort: true }) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "cron: cannot prepare failure alert");
            None
        }
    }
}
