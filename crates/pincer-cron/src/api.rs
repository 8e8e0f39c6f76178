//! The `cron.*` methods over the typed wire schema (`pincer_protocol::schema::cron`): filters and
//! paging with `snapshotRevision`, read views, manual runs. The gateway parses the params and maps
//! each method to one function here.

use pincer_protocol::schema::cron::{
    self as wire, AddParams, AddResult, CronJob, CronStatus, Declared, DeliveryPreview, JobRef, ListParams, ListResult,
    PreviewParams, PreviewResult, RemoveResult, RunEntry, RunParams, RunResult, RunsParams, RunsResult, UpdateParams,
    require_id,
};
use pincer_protocol::schema::import::{ImportOpenclaw, ImportedRun};
use pincer_protocol::schema::{Method, ParamsError};
use pincer_protocol::state::{CompletionStatus, DeliveryStatus, ExecStatus, RunStatus};
use pincer_store::{EnabledFilter, JobFacts, JobKey, JobOrder, JobPage, JobPageQuery, RunFilter, RunRow};
use serde_json::{Map, Value, json};

use crate::job::{DEFAULT_AGENT, Job, JobExt};
use crate::scheduler::{CronError, CronService, RunMode};

impl From<ParamsError> for CronError {
    fn from(e: ParamsError) -> CronError {
        CronError::Invalid(e.0)
    }
}

/// The job as clients see it: OpenClaw's read view, state limited to OpenClaw's schema.
pub fn job_view(job: &Job) -> Result<CronJob, CronError> {
    let mut view = job.read_view().map_err(|e| CronError::Invalid(e.0))?;
    view.job.state = job.state.openclaw();
    Ok(view)
}

fn preview(svc: &CronService, job: &Job) -> DeliveryPreview {
    let (label, detail) = svc.preview_route(job);
    DeliveryPreview { label, detail }
}

pub async fn status(svc: &CronService) -> Result<CronStatus, CronError> {
    svc.status().await
}

/// `cron.list`: filtered, sorted, paged; always with OpenClaw's canonical page metadata.
pub async fn list(svc: &CronService, p: ListParams) -> Result<ListResult, CronError> {
    const M: &str = wire::List::NAME;
    let limit = p.limit.unwrap_or(50);
    let max = if p.cursor.is_some() { 1000 } else { 200 };
    if !(1..=max).contains(&limit) {
        return Err(ParamsError::new(M, format!("limit must be 1..{max}")).into());
    }
    let after = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ParamsError::new(M, "cursor is not one this gateway gave out: start again with cursor \"\"")
        })?),
    };
    let offset = p.offset.unwrap_or(0);
    if let Some(t) = &p.trigger
        && t != "all"
        && t != "none"
    {
        return Err(ParamsError::new(M, format!("trigger \"{t}\" is not supported by Pincer")).into());
    }
    let enabled = match p.enabled.as_deref().unwrap_or(if p.include_disabled == Some(true) { "all" } else { "enabled" })
    {
        "all" => EnabledFilter::All,
        "enabled" => EnabledFilter::Enabled,
        "disabled" => EnabledFilter::Disabled,
        other => {
            return Err(ParamsError::new(M, format!("enabled \"{other}\" is not all, enabled or disabled")).into());
        }
    };
    let order = match p.sort_by.as_deref().unwrap_or("nextRunAtMs") {
        "nextRunAtMs" => JobOrder::NextRun,
        "updatedAtMs" => JobOrder::UpdatedAt,
        "name" => JobOrder::Name,
        other => {
            return Err(
                ParamsError::new(M, format!("sortBy \"{other}\" is not nextRunAtMs, updatedAtMs or name")).into()
            );
        }
    };
    let q = JobPageQuery {
        enabled,
        order,
        descending: p.sort_dir.as_deref() == Some("desc"),
        offset: offset as u64,
        limit,
    };
    if let Some(status) = p.last_run_status.as_deref().filter(|s| !matches!(*s, "all" | "unknown"))
        && let Err(e) = status.parse::<ExecStatus>()
    {
        return Err(ParamsError::new(M, format!("lastRunStatus: {e}")).into());
    }
    let filter = ListFilter {
        query: p.query.as_deref().map(str::to_lowercase).filter(|q| !q.is_empty()),
        schedule_kind: p.schedule_kind.clone().filter(|k| k != "all"),
        last_run_status: p.last_run_status.clone().filter(|s| s != "all"),
        agent_id: p.agent_id.clone(),
    };
    if p.cursor.is_some() && !filter.is_empty() {
        return Err(ParamsError::new(M, "cursor pages the whole listing: leave out query, scheduleKind, lastRunStatus and agentId, or page by offset").into());
    }
    // Unfiltered pages come from the order's index (by key with a cursor, else through the
    // bookmarks); a filter reads every job's facts (not the job).
    let marks = svc.list_marks();
    let keyed = p.cursor.is_some();
    let (page, more, next_cursor, revision) = svc
        .store()
        .read(move |rd| {
            let (page, more, last) = if keyed {
                let k = rd.job_page_after(&q, after.as_ref())?;
                (JobPage { jobs: k.jobs, total: k.total }, Some(k.more), k.last)
            } else if filter.is_empty() {
                (rd.job_page_marked(&q, &marks)?, None, None)
            } else {
                (rd.job_page_matching(&q, &mut |facts| filter.keeps(facts))?, None, None)
            };
            Ok((page, more, last.filter(|_| more == Some(true)).map(|k| encode_cursor(&k)), rd.cron_revision()?))
        })
        .await?;
    let listed = page.jobs.len() as u64;
    let jobs: Vec<Job> = page
        .jobs
        .iter()
        .filter_map(|r| match Job::from_stored(&r.job_json, &r.state_json) {
            Ok(job) => Some(job),
            Err(e) => {
                tracing::warn!(job = %r.id, error = %e.0, "cron.list: a stored job does not parse; it is left out");
                None
            }
        })
        .collect();
    let total = page.total;
    let has_more = more.unwrap_or((offset as u64 + listed) < total);
    // OpenClaw answers with previews unless asked for compact pages (`cron show` relies on it).
    let delivery_previews = p
        .include_delivery_previews
        .unwrap_or(p.compact != Some(true))
        .then(|| jobs.iter().map(|j| (j.id.clone(), preview(svc, j))).collect());
    Ok(ListResult {
        jobs: jobs
            .iter()
            .map(|j| Ok(CronJob { effective_agent_id: Some(j.effective_agent().to_string()), ..job_view(j)? }))
            .collect::<Result<_, CronError>>()?,
        snapshot_revision: format!("rev-{revision}"),
        total,
        offset,
        limit,
        has_more,
        next_offset: has_more.then_some(offset as u64 + listed),
        next_cursor,
        timezone: svc.default_tz().to_string(),
        delivery_previews,
        extra: Map::new(),
    })
}

/// A listing key as an opaque cursor: its JSON in URL-safe base64.
fn encode_cursor(key: &JobKey) -> String {
    use base64::Engine;
    let json = serde_json::to_vec(key).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(cursor: &str) -> Option<JobKey> {
    use base64::Engine;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&json).ok()
}

/// `cron.list`'s filters beyond `enabled`, applied to each job's stored facts.
struct ListFilter {
    /// Lower-cased text to find in the id, name or description.
    query: Option<String>,
    schedule_kind: Option<String>,
    /// A status, or `unknown` for jobs that have not run.
    last_run_status: Option<String>,
    agent_id: Option<String>,
}

impl ListFilter {
    fn is_empty(&self) -> bool {
        self.query.is_none()
            && self.schedule_kind.is_none()
            && self.last_run_status.is_none()
            && self.agent_id.is_none()
    }

    fn keeps(&self, f: &JobFacts) -> bool {
        let query = self.query.as_deref().is_none_or(|q| {
            f.id.to_lowercase().contains(q)
                || f.name.to_lowercase().contains(q)
                || f.description.as_deref().is_some_and(|d| d.to_lowercase().contains(q))
        });
        let kind = self.schedule_kind.as_deref().is_none_or(|k| f.schedule_kind.as_deref() == Some(k));
        let status = self.last_run_status.as_deref().is_none_or(|s| match s {
            "unknown" => f.last_run_status.is_none(),
            s => f.last_run_status.as_deref() == Some(s),
        });
        let agent = self.agent_id.as_deref().is_none_or(|a| f.agent_id.as_deref().unwrap_or(DEFAULT_AGENT) == a);
        query && kind && status && agent
    }
}

pub async fn get(svc: &CronService, p: JobRef) -> Result<CronJob, CronError> {
    let id = require_id(wire::Get::NAME, p.id.as_deref(), p.job_id.as_deref())?;
    job_view(&svc.get(&id).await?)
}

/// Pincer's `cron.preview`: the zone, the next five fire times and the delivery route.
pub async fn preview_job(svc: &CronService, p: PreviewParams) -> Result<PreviewResult, CronError> {
    let id = require_id(wire::Preview::NAME, p.id.as_deref(), p.job_id.as_deref())?;
    let job = svc.get(&id).await?;
    let upcoming = if job.enabled { svc.upcoming(&job, p.count.unwrap_or(5).min(50)) } else { vec![] };
    Ok(PreviewResult {
        job_id: job.id.clone(),
        tz: job.display_tz(svc.default_tz()).to_string(),
        upcoming,
        delivery_preview: preview(svc, &job),
        extra: Map::new(),
    })
}

pub async fn add(svc: &CronService, p: AddParams) -> Result<AddResult, CronError> {
    let declared = p.0.declaration_key.is_some();
    let (job, created) = svc.add_or_declare(p.0).await.map_err(|e| match e {
        CronError::Invalid(m) => ParamsError::new(wire::Add::NAME, m).into(),
        other => other,
    })?;
    let delivery_preview = Some(preview(svc, &job));
    if declared {
        // OpenClaw's convergence answer for a declared job.
        return Ok(AddResult::Declared(Declared {
            created,
            updated: (!created).then_some(true),
            job: Box::new(job_view(&job)?),
            delivery_preview,
        }));
    }
    Ok(AddResult::Created(Box::new(CronJob { delivery_preview, ..job_view(&job)? })))
}

pub async fn update(svc: &CronService, p: UpdateParams) -> Result<CronJob, CronError> {
    const M: &str = wire::Update::NAME;
    let id = require_id(M, p.id.as_deref(), p.job_id.as_deref())?;
    let job = svc.update(&id, p.patch, p.expected_config_revision).await.map_err(|e| match e {
        CronError::Invalid(m) => ParamsError::new(M, m).into(),
        other => other,
    })?;
    job_view(&job)
}

pub async fn remove(svc: &CronService, p: JobRef) -> Result<RemoveResult, CronError> {
    let id = require_id(wire::Remove::NAME, p.id.as_deref(), p.job_id.as_deref())?;
    if !svc.remove(&id).await? {
        return Err(CronError::NotFound(id));
    }
    Ok(RemoveResult { ok: true, removed: true, extra: Map::new() })
}

fn scratch_view(row: pincer_store::ScratchRow) -> wire::Scratch {
    wire::Scratch { content: row.content, revision: row.revision, updated_at_ms: row.updated_at_ms }
}

/// `cron.scratch.get`: a job's private scratch, read from the store (it is never part of the
/// job, its list entry or its run history).
pub async fn scratch_get(svc: &CronService, p: JobRef) -> Result<wire::ScratchGetResult, CronError> {
    let id = require_id(wire::ScratchGet::NAME, p.id.as_deref(), p.job_id.as_deref())?;
    let lookup = id.clone();
    let state = svc.store().read(move |rd| rd.job_scratch(&lookup)).await?.ok_or(CronError::NotFound(id))?;
    Ok(wire::ScratchGetResult {
        scratch: state.scratch.map(scratch_view),
        current_revision: state.current_revision,
        max_bytes: wire::SCRATCH_MAX_BYTES,
    })
}

/// `cron.scratch.set`: replaces (or, with `content: null`, clears) a job's scratch in one store
/// transaction that also checks the job exists and, with `expectedRevision`, the revision.
pub async fn scratch_set(svc: &CronService, p: wire::ScratchSetParams) -> Result<wire::ScratchSetResult, CronError> {
    const M: &str = wire::ScratchSet::NAME;
    let id = require_id(M, p.id.as_deref(), p.job_id.as_deref())?;
    if let Some(content) = &p.content
        && content.len() > wire::SCRATCH_MAX_BYTES
    {
        return Err(ParamsError::new(
            M,
            format!(
                "cron scratch exceeds {} bytes ({} bytes provided); keep the scratch short or store the rest in a file",
                wire::SCRATCH_MAX_BYTES,
                content.len()
            ),
        )
        .into());
    }
    let (job, now) = (id.clone(), svc.now_ms());
    let expected = p.expected_revision.map(i64::from);
    let written = svc.store().write(move |tx| tx.set_job_scratch(&job, p.content.as_deref(), expected, now)).await?;
    Ok(match written {
        pincer_store::ScratchWrite::NoJob => return Err(CronError::NotFound(id)),
        pincer_store::ScratchWrite::Conflict { current_revision } => {
            wire::ScratchSetResult::Conflict(wire::ScratchConflict {
                ok: false,
                reason: pincer_protocol::state::ScratchConflictReason::RevisionConflict,
                current_revision,
            })
        }
        pincer_store::ScratchWrite::Written { current_revision, scratch } => {
            wire::ScratchSetResult::Written(wire::ScratchWritten {
                ok: true,
                scratch: scratch.map(scratch_view),
                current_revision,
                max_bytes: wire::SCRATCH_MAX_BYTES,
            })
        }
    })
}

pub async fn run(svc: &CronService, p: RunParams, process_instance_id: &str) -> Result<RunResult, CronError> {
    const M: &str = wire::Run::NAME;
    let id = require_id(M, p.id.as_deref(), p.job_id.as_deref())?;
    let answered = |r: RunResult| RunResult { process_instance_id: Some(process_instance_id.to_string()), ..r };
    if let Some(expected) = p.expected_process_instance_id
        && expected != process_instance_id
    {
        return Ok(answered(RunResult::not_ran("stopped")));
    }
    let mode = match p.mode.as_deref().unwrap_or("force") {
        "force" => RunMode::Force,
        "due" => RunMode::Due,
        "if-enabled" => {
            if !svc.get(&id).await?.enabled {
                return Ok(RunResult::not_ran("disabled"));
            }
            RunMode::Force
        }
        other => {
            return Err(ParamsError::new(M, format!("mode \"{other}\" is not force, due or if-enabled")).into());
        }
    };
    Ok(answered(svc.run(&id, mode).await?))
}

/// `cron.runs` entry: OpenClaw's run-log shape. `status` appears only once the run is complete
/// — executed and its delivery settled — so clients that wait for it (`openclaw cron run --wait`)
/// see the final completion.
pub fn run_entry(row: &RunRow) -> RunEntry {
    let mut record: Map<String, Value> = serde_json::from_str(&row.record_json).unwrap_or_default();
    // The row says where the run stands; the record's own view of it is replaced.
    for key in ["status", "completionStatus", "phase"] {
        record.remove(key);
    }
    let ts = row.finished_at_ms.unwrap_or(row.started_at_ms);
    record.insert("action".into(), json!("finished"));
    record.insert("runId".into(), json!(row.run_id));
    record.insert("jobId".into(), json!(row.job_id));
    record.insert("ts".into(), json!(ts));
    let mut entry = serde_json::from_value::<RunEntry>(Value::Object(record.clone())).unwrap_or_else(|_| {
        let mut record = record;
        // A record this build cannot read: its other fields go through as they are.
        for key in ["action", "runId", "jobId", "ts"] {
            record.remove(key);
        }
        RunEntry {
            action: "finished".into(),
            run_id: row.run_id.clone(),
            job_id: row.job_id.clone(),
            ts,
            extra: record,
            ..RunEntry::default()
        }
    });
    if row.status != RunStatus::Running && row.completion_status.is_some() {
        entry.status = Some(row.status.as_str().into());
        entry.completion_status = row.completion_status.map(|c| c.as_str().into());
    } else {
        // The run's phase while it is not complete: OpenClaw's spelling of "running".
        let phase = if row.status == RunStatus::Running { RunStatus::Running.as_str() } else { "delivering" };
        entry.phase = Some(phase.into());
    }
    if row.delivery_status == Some(DeliveryStatus::Pending) {
        entry.delivery_status = None;
    }
    entry
}

pub async fn runs(svc: &CronService, p: RunsParams) -> Result<RunsResult, CronError> {
    const M: &str = wire::Runs::NAME;
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ParamsError::new(M, "limit must be 1..200").into());
    }
    let job_id = p.id.or(p.job_id);
    if p.scope.as_deref() == Some("job") && job_id.is_none() {
        return Err(ParamsError::new(M, "scope \"job\" needs an id").into());
    }
    let mut statuses: Vec<String> = p.statuses.unwrap_or_default();
    if let Some(s) = p.status.filter(|s| s != "all") {
        statuses.push(s);
    }
    let statuses = statuses
        .iter()
        .map(|s| s.parse::<ExecStatus>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ParamsError::new(M, e.to_string()))?;
    let mut names: Vec<String> = p.delivery_statuses.unwrap_or_default();
    names.extend(p.delivery_status);
    let delivery = names
        .iter()
        .map(|s| s.parse::<DeliveryStatus>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ParamsError::new(M, e.to_string()))?;
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
    Ok(RunsResult {
        entries: rows.iter().map(run_entry).collect(),
        total,
        offset,
        limit,
        has_more,
        next_offset: has_more.then_some(offset as u64 + rows.len() as u64),
        extra: Map::new(),
    })
}

/// `import.openclaw`'s runs: OpenClaw's finished runs as read-only history rows of the imported
/// jobs (`run_id` `openclaw:<id>`, so a second import finds them). OpenClaw's receipts do not say
/// what became of the delivery, so it is left unknown. Returns (added, already present).
pub async fn import_runs(svc: &CronService, runs: Vec<ImportedRun>) -> Result<(u32, u32), CronError> {
    const M: &str = ImportOpenclaw::NAME;
    let ids: Vec<String> = runs.iter().map(|r| r.job_id.clone()).collect();
    let known = svc.store().read(move |rd| {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        rd.get_jobs(&ids)
    });
    let known: std::collections::HashMap<String, String> =
        known.await?.into_iter().map(|j| (j.id.clone(), j.name.clone())).collect();
    let mut rows = Vec::with_capacity(runs.len());
    for r in runs {
        let Some(name) = known.get(&r.job_id) else {
            return Err(ParamsError::new(
                M,
                format!("run {}: no job {} (import the jobs first)", r.openclaw_run_id, r.job_id),
            )
            .into());
        };
        if r.finished_at_ms < r.started_at_ms {
            return Err(ParamsError::new(M, format!("run {}: finishes before it starts", r.openclaw_run_id)).into());
        }
        let run_id = format!("openclaw:{}", r.openclaw_run_id);
        let completion = match r.status {
            ExecStatus::Ok => CompletionStatus::Unknown,
            ExecStatus::Error | ExecStatus::Skipped => CompletionStatus::Failed,
        };
        let mut record = json!({
            "ts": r.finished_at_ms,
            "jobId": r.job_id,
            "jobName": name,
            "runId": run_id,
            "trigger": r.trigger,
            "runAtMs": r.started_at_ms,
            "startedAtMs": r.started_at_ms,
            "finishedAtMs": r.finished_at_ms,
            "durationMs": r.finished_at_ms - r.started_at_ms,
            "executionStatus": r.status,
            "completionStatus": completion,
            "importedFrom": "openclaw",
        });
        if let Some(e) = &r.error {
            record["error"] = json!(e);
        }
        rows.push(RunRow {
            run_id,
            job_id: r.job_id,
            slot_ms: None,
            trigger: r.trigger,
            status: RunStatus::from(r.status),
            lease_owner: 0,
            lease_until_ms: None,
            started_at_ms: r.started_at_ms,
            finished_at_ms: Some(r.finished_at_ms),
            delivery_status: None,
            completion_status: Some(completion),
            record_json: record.to_string(),
        });
    }
    let added = svc
        .store()
        .write(move |tx| {
            let mut added = 0;
            for row in &rows {
                added += u32::from(tx.reserve_run(row)?);
            }
            Ok((added, rows.len() as u32 - added))
        })
        .await?;
    Ok(added)
}
