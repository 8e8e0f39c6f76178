//! The `cron.*` methods over the typed wire schema (`pincer_protocol::schema::cron`): filters and
//! paging with `snapshotRevision`, read views, manual runs. The gateway parses the params and maps
//! each method to one function here.

use pincer_protocol::schema::cron::{
    self as wire, AddParams, AddResult, CronJob, CronStatus, Declared, DeliveryPreview, JobRef, ListParams, ListResult,
    PreviewParams, PreviewResult, RemoveResult, RunEntry, RunParams, RunResult, RunsParams, RunsResult, UpdateParams,
    require_id,
};
use pincer_protocol::schema::{Method, ParamsError};
use pincer_protocol::state::{DeliveryStatus, ExecStatus, RunStatus};
use pincer_store::{EnabledFilter, JobFacts, JobOrder, JobPageQuery, RunFilter, RunRow};
use serde_json::{Map, Value, json};

use crate::job::{DEFAULT_AGENT, Job, JobExt};
use crate::scheduler::{CronError, CronService, RunMode};

impl From<ParamsError> for CronError {
    fn from(e: ParamsError) -> CronError {
        CronError::Invalid(e.0)
    }
}

/// The job as clients see it: OpenClaw's read view, state limited to OpenClaw's schema.
pub fn job_view(job: &Job) -> CronJob {
    let mut view = job.read_view();
    view.job.state = job.state.openclaw();
    view
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
    if !(1..=200).contains(&limit) {
        return Err(ParamsError::new(M, "limit must be 1..200").into());
    }
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
    // Unfiltered pages come from the order's index; a filter reads every job's facts (not the job).
    let (page, revision) = svc
        .store()
        .read(move |rd| {
            let page = if filter.is_empty() {
                rd.job_page(&q)?
            } else {
                rd.job_page_matching(&q, &mut |facts| filter.keeps(facts))?
            };
            Ok((page, rd.cron_revision()?))
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
    let has_more = (offset as u64 + listed) < total;
    // OpenClaw answers with previews unless asked for compact pages (`cron show` relies on it).
    let delivery_previews = p
        .include_delivery_previews
        .unwrap_or(p.compact != Some(true))
        .then(|| jobs.iter().map(|j| (j.id.clone(), preview(svc, j))).collect());
    Ok(ListResult {
        jobs: jobs
            .iter()
            .map(|j| CronJob { effective_agent_id: Some(j.effective_agent().to_string()), ..job_view(j) })
            .collect(),
        snapshot_revision: format!("rev-{revision}"),
        total,
        offset,
        limit,
        has_more,
        next_offset: has_more.then_some(offset as u64 + listed),
        timezone: svc.default_tz().to_string(),
        delivery_previews,
        extra: Map::new(),
    })
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
    Ok(job_view(&svc.get(&id).await?))
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
            job: Box::new(job_view(&job)),
            delivery_preview,
        }));
    }
    Ok(AddResult::Created(Box::new(CronJob { delivery_preview, ..job_view(&job) })))
}

pub async fn update(svc: &CronService, p: UpdateParams) -> Result<CronJob, CronError> {
    const M: &str = wire::Update::NAME;
    let id = require_id(M, p.id.as_deref(), p.job_id.as_deref())?;
    let job = svc.update(&id, p.patch, p.expected_config_revision).await.map_err(|e| match e {
        CronError::Invalid(m) => ParamsError::new(M, m).into(),
        other => other,
    })?;
    Ok(job_view(&job))
}

pub async fn remove(svc: &CronService, p: JobRef) -> Result<RemoveResult, CronError> {
    let id = require_id(wire::Remove::NAME, p.id.as_deref(), p.job_id.as_deref())?;
    if !svc.remove(&id).await? {
        return Err(CronError::NotFound(id));
    }
    Ok(RemoveResult { ok: true, removed: true, extra: Map::new() })
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
