//! The `cron.*` methods with OpenClaw's params and results: closed param schemas, paging with
//! `snapshotRevision`, read views. The gateway maps each method to one function here.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::job::Job;
use crate::scheduler::{CronError, CronService, RunMode};
use pincer_protocol::state::{DeliveryStatus, ExecStatus, RunStatus};
use pincer_store::{RunFilter, RunRow};

/// Parses closed params, naming the method in the error (`invalid cron.list params: …`).
fn params<T: for<'de> Deserialize<'de>>(method: &str, v: &Value) -> Result<T, CronError> {
    let v = if v.is_null() { json!({}) } else { v.clone() };
    if v.is_array() {
        // serde would read a struct from a list of its fields.
        return Err(CronError::Invalid(format!("invalid {method} params: invalid type: sequence, expected an object")));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        CronError::Invalid(if path == "." {
            format!("invalid {method} params: {inner}")
        } else {
            format!("invalid {method} params: {path}: {inner}")
        })
    })
}

/// `id`, or its legacy alias `jobId`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdParams {
    id: Option<String>,
    job_id: Option<String>,
}

fn require_id(method: &str, id: Option<String>, job_id: Option<String>) -> Result<String, CronError> {
    id.or(job_id)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CronError::Invalid(format!("invalid {method} params: id is required")))
}

/// Internal state fields kept in the store but not part of OpenClaw's closed `CronJobStateSchema`.
const INTERNAL_STATE: &[&str] =
    &["runningRunId", "lastRunId", "consecutiveFailures", "lastCompletionStatus", "scheduleErrorCount"];

/// The job as clients see it: OpenClaw's read view, state limited to OpenClaw's schema.
pub fn job_view(job: &Job) -> Result<Value, CronError> {
    let mut v = job.view().map_err(|e| CronError::Invalid(e.0))?;
    if let Some(state) = v.get_mut("state").and_then(Value::as_object_mut) {
        for k in INTERNAL_STATE {
            state.remove(*k);
        }
    }
    Ok(v)
}

pub async fn status(svc: &CronService) -> Result<Value, CronError> {
    svc.status().await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListParams {
    include_disabled: Option<bool>,
    limit: Option<u32>,
    offset: Option<u32>,
    query: Option<String>,
    enabled: Option<String>,
    schedule_kind: Option<String>,
    last_run_status: Option<String>,
    sort_by: Option<String>,
    sort_dir: Option<String>,
    agent_id: Option<String>,
    session_key: Option<String>,
    session_agent_id: Option<String>,
    trigger: Option<String>,
    compact: Option<bool>,
    include_delivery_previews: Option<bool>,
}

/// `cron.list`: filtered, sorted, paged; always with OpenClaw's canonical page metadata.
pub async fn list(svc: &CronService, v: &Value) -> Result<Value, CronError> {
    let p: ListParams = params("cron.list", v)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(CronError::Invalid("invalid cron.list params: limit must be 1..200".into()));
    }
    let offset = p.offset.unwrap_or(0);
    let _ = (p.session_key, p.session_agent_id);
    if let Some(t) = &p.trigger
        && t != "all"
        && t != "none"
    {
        return Err(CronError::Invalid(format!(
            "invalid cron.list params: trigger \"{t}\" is not supported by Pincer"
        )));
    }
    let (mut jobs, revision) = svc.all_jobs().await?;
    let enabled = p.enabled.as_deref().unwrap_or(if p.include_disabled == Some(true) { "all" } else { "enabled" });
    match enabled {
        "all" | "enabled" | "disabled" => {}
        other => {
            return Err(CronError::Invalid(format!(
                "invalid cron.list params: enabled \"{other}\" is not all, enabled or disabled"
            )));
        }
    }
    jobs.retain(|j| match enabled {
        "enabled" => j.enabled,
        "disabled" => !j.enabled,
        _ => true,
    });
    if let Some(q) = p.query.as_deref().map(str::to_lowercase).filter(|q| !q.is_empty()) {
        jobs.retain(|j| {
            j.id.to_lowercase().contains(&q)
                || j.name.to_lowercase().contains(&q)
                || j.description.as_deref().is_some_and(|d| d.to_lowercase().contains(&q))
        });
    }
    if let Some(kind) = p.schedule_kind.as_deref().filter(|k| *k != "all") {
        jobs.retain(|j| {
            serde_json::to_value(&j.schedule).ok().and_then(|s| s["kind"].as_str().map(|k| k == kind)) == Some(true)
        });
    }
    if let Some(status) = p.last_run_status.as_deref().filter(|s| *s != "all") {
        // `unknown`: never ran.
        let wanted: Option<ExecStatus> = match status.parse() {
            Ok(s) => Some(s),
            Err(_) if status == "unknown" => None,
            Err(e) => return Err(CronError::Invalid(format!("invalid cron.list params: lastRunStatus: {e}"))),
        };
        jobs.retain(|j| j.state.last_run_status == wanted);
    }
    if let Some(agent) = &p.agent_id {
        jobs.retain(|j| j.effective_agent() == agent);
    }
    let desc = p.sort_dir.as_deref() == Some("desc");
    match p.sort_by.as_deref().unwrap_or("nextRunAtMs") {
        "name" => jobs.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id))),
        "updatedAtMs" => jobs.sort_by(|a, b| a.updated_at_ms.cmp(&b.updated_at_ms).then(a.id.cmp(&b.id))),
        "nextRunAtMs" => jobs.sort_by(|a, b| {
            let key = |j: &Job| (j.state.next_run_at_ms.is_none(), j.state.next_run_at_ms.unwrap_or(0));
            key(a).cmp(&key(b)).then(a.name.cmp(&b.name)).then(a.id.cmp(&b.id))
        }),
        other => {
            return Err(CronError::Invalid(format!(
                "invalid cron.list params: sortBy \"{other}\" is not nextRunAtMs, updatedAtMs or name"
            )));
        }
    }
    if desc {
        jobs.reverse();
    }
    let total = jobs.len() as u64;
    let page: Vec<&Job> = jobs.iter().skip(offset as usize).take(limit as usize).collect();
    let has_more = (offset as u64 + page.len() as u64) < total;
    let mut out = json!({
        "jobs": page.iter().map(|j| {
            let mut v = job_view(j)?;
            v["effectiveAgentId"] = json!(j.effective_agent());
            Ok(v)
        }).collect::<Result<Vec<_>, CronError>>()?,
        "snapshotRevision": format!("rev-{revision}"),
        "total": total,
        "offset": offset,
        "limit": limit,
        "hasMore": has_more,
        "nextOffset": if has_more { json!(offset as u64 + page.len() as u64) } else { Value::Null },
        // Pincer: the zone that `every` and `at` jobs are shown in.
        "timezone": svc.default_tz(),
    });
    // OpenClaw answers with previews unless asked for compact pages (`cron show` relies on it).
    if p.include_delivery_previews.unwrap_or(p.compact != Some(true)) {
        let previews: serde_json::Map<String, Value> = page
            .iter()
            .map(|j| {
                let (label, detail) = svc.preview_route(j);
                (j.id.clone(), json!({ "label": label, "detail": detail }))
            })
            .collect();
        out["deliveryPreviews"] = Value::Object(previews);
    }
    Ok(out)
}

pub async fn get(svc: &CronService, v: &Value) -> Result<Value, CronError> {
    let p: IdParams = params("cron.get", v)?;
    let id = require_id("cron.get", p.id, p.job_id)?;
    job_view(&svc.get(&id).await?)
}

/// Pincer's `cron.preview`: the zone, the next five fire times and the delivery route.
pub async fn preview(svc: &CronService, v: &Value) -> Result<Value, CronError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct P {
        id: Option<String>,
        job_id: Option<String>,
        count: Option<usize>,
    }
    let p: P = params("cron.preview", v)?;
    let id = require_id("cron.preview", p.id, p.job_id)?;
    let job = svc.get(&id).await?;
    let (label, detail) = svc.preview_route(&job);
    let upcoming = if job.enabled { svc.upcoming(&job, p.count.unwrap_or(5).min(50)) } else { vec![] };
    Ok(json!({
        "jobId": job.id,
        "tz": job.display_tz(svc.default_tz()),
        "upcoming": upcoming,
        "deliveryPreview": { "label": label, "detail": detail },
    }))
}

pub async fn add(svc: &CronService, v: &Value) -> Result<Value, CronError> {
    let job = svc.add(v.clone()).await.map_err(|e| match e {
        CronError::Invalid(m) => CronError::Invalid(format!("invalid cron.add params: {m}")),
        other => other,
    })?;
    let mut out = job_view(&job)?;
    let (label, detail) = svc.preview_route(&job);
    out["deliveryPreview"] = json!({ "label": label, "detail": detail });
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateParams {
    id: Option<String>,
    job_id: Option<String>,
    patch: Value,
    expected_config_revision: Option<String>,
}

pub async fn update(svc: &CronService, v: &Value) -> Result<Value, CronError> {
    let p: UpdateParams = params("cron.update", v)?;
    let id = require_id("cron.update", p.id, p.job_id)?;
    let job = svc.update(&id, p.patch, p.expected_config_revision).await.map_err(|e| match e {
        CronError::Invalid(m) => CronError::Invalid(format!("invalid cron.update params: {m}")),
        other => other,
    })?;
    job_view(&job)
}

pub async fn remove(svc: &CronService, v: &Value) -> Result<Value, CronError> {
    let p: IdParams = params("cron.remove", v)?;
    let id = require_id("cron.remove", p.id, p.job_id)?;
    let removed = svc.remove(&id).await?;
    if !removed {
        return Err(CronError::NotFound(id));
    }
    Ok(json!({ "ok": true, "removed": true }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunParams {
    id: Option<String>,
    job_id: Option<String>,
    mode: Option<String>,
    expected_process_instance_id: Option<String>,
}

pub async fn run(svc: &CronService, v: &Value, process_instance_id: &str) -> Result<Value, CronError> {
    let p: RunParams = params("cron.run", v)?;
    let id = require_id("cron.run", p.id, p.job_id)?;
    if let Some(expected) = p.expected_process_instance_id
        && expected != process_instance_id
    {
        return Ok(json!({ "ok": true, "ran": false, "reason": "stopped", "processInstanceId": process_instance_id }));
    }
    let mode = match p.mode.as_deref().unwrap_or("force") {
        "force" => RunMode::Force,
        "due" => RunMode::Due,
        "if-enabled" => {
            if !svc.get(&id).await?.enabled {
                return Ok(json!({ "ok": true, "ran": false, "reason": "disabled" }));
            }
            RunMode::Force
        }
        other => {
            return Err(CronError::Invalid(format!(
                "invalid cron.run params: mode \"{other}\" is not force, due or if-enabled"
            )));
        }
    };
    let mut out = svc.run(&id, mode).await?;
    out["processInstanceId"] = json!(process_instance_id);
    Ok(out)
}

/// `cron.runs` entry: OpenClaw's run-log shape. `status` appears only once the run is complete
/// — executed and its delivery settled — so clients that wait for it (`openclaw cron run --wait`)
/// see the final completion.
pub fn run_entry(row: &RunRow) -> Value {
    let mut v: Value = serde_json::from_str(&row.record_json).unwrap_or_else(|_| json!({}));
    v["action"] = json!("finished");
    v["runId"] = json!(row.run_id);
    v["jobId"] = json!(row.job_id);
    v["ts"] = json!(row.finished_at_ms.unwrap_or(row.started_at_ms));
    let complete = row.status != RunStatus::Running && row.completion_status.is_some();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if complete {
            o.insert("status".into(), json!(row.status));
            o.insert("completionStatus".into(), json!(row.completion_status));
        } else {
            // The run's phase while it is not complete: OpenClaw's spelling of "running".
            let phase = if row.status == RunStatus::Running { RunStatus::Running.as_str() } else { "delivering" };
            o.insert("phase".into(), json!(phase));
        }
        if row.delivery_status == Some(DeliveryStatus::Pending) {
            o.remove("deliveryStatus");
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunsParams {
    scope: Option<String>,
    id: Option<String>,
    job_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
    status: Option<String>,
    statuses: Option<Vec<String>>,
    delivery_status: Option<String>,
    delivery_statuses: Option<Vec<String>>,
    query: Option<String>,
    sort_dir: Option<String>,
}

pub async fn runs(svc: &CronService, v: &Value) -> Result<Value, CronError> {
    let p: RunsParams = params("cron.runs", v)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(CronError::Invalid("invalid cron.runs params: limit must be 1..200".into()));
    }
    let _ = p.agent_id;
    let job_id = p.id.or(p.job_id);
    if p.scope.as_deref() == Some("job") && job_id.is_none() {
        return Err(CronError::Invalid("invalid cron.runs params: scope \"job\" needs an id".into()));
    }
    let mut names: Vec<String> = p.statuses.unwrap_or_default();
    if let Some(s) = p.status.filter(|s| s != "all") {
        names.push(s);
    }
    let statuses = names
        .iter()
        .map(|s| s.parse::<ExecStatus>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CronError::Invalid(format!("invalid cron.runs params: {e}")))?;
    let mut names: Vec<String> = p.delivery_statuses.unwrap_or_default();
    names.extend(p.delivery_status);
    let delivery = names
        .iter()
        .map(|s| s.parse::<DeliveryStatus>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CronError::Invalid(format!("invalid cron.runs params: {e}")))?;
    let filter = RunFilter {
        job_id: if p.scope.as_deref() == Some("all") { None } else { job_id },
        run_id: p.run_id,
        statuses,
        delivery_statuses: delivery,
        offset: p.offset.unwrap_or(0),
        limit,
        ascending: p.sort_dir.as_deref() == Some("asc"),
        query: p.query.filter(|q| !q.is_empty()),
    };
    let offset = filter.offset;
    let (rows, total) = svc.store().read(move |rd| rd.list_runs(&filter)).await?;
    let has_more = offset as u64 + (rows.len() as u64) < total;
    Ok(json!({
        "entries": rows.iter().map(run_entry).collect::<Vec<_>>(),
        "total": total,
        "offset": offset,
        "limit": limit,
        "hasMore": has_more,
        "nextOffset": if has_more { json!(offset as u64 + rows.len() as u64) } else { Value::Null },
    }))
}
