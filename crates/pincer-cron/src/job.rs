//! The job: OpenClaw's create defaults, validation and partial updates over the job's wire types
//! (`pincer_protocol::schema::cron`, re-exported here), and the read view clients see.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::channels::ChannelCatalog;
pub use pincer_protocol::schema::cron::{
    AutoDisabled, CronJob, DEFAULT_AGENT, Delivery, DeliveryMode, Destination, FailureAlert, FailureAlertPolicy, Job,
    JobInput, JobPatch, JobState, MAX_TIMEOUT_SECONDS, Pacing, Payload, SessionTarget, WakeMode,
};
use pincer_protocol::schema::cron::{UNSUPPORTED_JOB_FIELDS, canonicalize, check_payload_kind, job_fields};
use pincer_protocol::schema::deserialize_closed;
use pincer_protocol::state::{DeliveryStatus, ExecStatus, SuppressionReason};

use crate::schedule::{Normalize, NormalizeContext, ScheduleSpec};

/// A request that names the field at fault: `INVALID_REQUEST invalid cron.<m> params: <field>: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Context for turning client input into a stored job.
pub struct CreateContext<'a> {
    pub now_ms: i64,
    /// `agents.defaults.timezone`, else the host's zone.
    pub default_tz: &'a str,
    /// The registered channels and which are usable, for route checks.
    pub channels: &'a ChannelCatalog,
}

/// Builds a new job from `cron.add` params: OpenClaw's create defaults, then full validation.
pub fn create(input: JobInput, id: String, ctx: &CreateContext) -> Result<Job, Invalid> {
    let JobInput {
        name,
        display_name,
        declaration_key,
        description,
        enabled,
        agent_id,
        session_key,
        delete_after_run,
        schedule,
        session_target,
        wake_mode,
        payload,
        delivery,
        failure_alert,
        pacing,
    } = input;
    let target = session_target.unwrap_or(match payload {
        Payload::SystemEvent { .. } => SessionTarget::Main,
        _ => SessionTarget::Isolated,
    });
    // `current` binds to the creating conversation; a plain RPC call has none, so it runs isolated.
    let session_target =
        if target == SessionTarget::Current && session_key.is_none() { SessionTarget::Isolated } else { target };
    let delete_after_run = delete_after_run.or(matches!(schedule, ScheduleSpec::At { .. }).then_some(true));
    let delivery =
        delivery.or_else(|| {
            (session_target != SessionTarget::Main && !matches!(payload, Payload::SystemEvent { .. }))
                .then(|| Delivery { mode: DeliveryMode::Announce, channel: Some("last".into()), ..no_route() })
        });
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| infer_name(&payload));
    let mut job = Job {
        id,
        name,
        display_name,
        declaration_key,
        description,
        enabled: enabled.unwrap_or(true),
        agent_id,
        session_key,
        delete_after_run,
        created_at_ms: ctx.now_ms,
        updated_at_ms: ctx.now_ms,
        schedule,
        session_target,
        wake_mode: wake_mode.unwrap_or(WakeMode::Now),
        payload,
        delivery,
        failure_alert,
        pacing,
        state: JobState::default(),
    };
    job.schedule = job
        .schedule
        .normalize(&NormalizeContext { now_ms: ctx.now_ms, default_tz: ctx.default_tz, exact: false })
        .map_err(|e| invalid(e.to_string()))?;
    validate(&job, ctx)?;
    Ok(job)
}

/// A delivery with no route fields set.
fn no_route() -> Delivery {
    Delivery {
        mode: DeliveryMode::None,
        channel: None,
        to: None,
        thread_id: None,
        account_id: None,
        best_effort: None,
        failure_destination: None,
    }
}

/// OpenClaw infers a name from the payload when none is given.
fn infer_name(payload: &Payload) -> String {
    let text = match payload {
        Payload::AgentTurn { message, .. } => message.as_str(),
        Payload::SystemEvent { text } => text.as_str(),
        Payload::Command { argv, .. } => argv.last().map_or("command", String::as_str),
    };
    let mut name: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.chars().count() > 60 {
        name = name.chars().take(57).collect::<String>() + "...";
    }
    if name.is_empty() { "job".into() } else { name }
}

/// Strict parse of a whole job, with serde's message prefixed by the field path. An object
/// written as a list of its fields (which serde alone accepts) is refused too.
pub fn parse_job(v: Value) -> Result<Job, Invalid> {
    deserialize_closed(&v).map_err(Invalid)
}

/// The rules OpenClaw's `assertSupportedJobSpec` and delivery checks enforce.
pub fn validate(job: &Job, ctx: &CreateContext) -> Result<(), Invalid> {
    if job.name.trim().is_empty() {
        return Err(invalid("name: must not be empty"));
    }
    if job.name.chars().count() > 200 {
        return Err(invalid("name: at most 200 characters"));
    }
    if let Some(key) = &job.declaration_key {
        if key.trim().is_empty() {
            return Err(invalid("declarationKey: must not be blank"));
        }
        if key.chars().count() > 200 {
            return Err(invalid("declarationKey: at most 200 characters"));
        }
    }
    if let Some(label) = &job.display_name {
        if label.trim().is_empty() {
            return Err(invalid("displayName: must not be blank"));
        }
        if label.chars().count() > 200 {
            return Err(invalid("displayName: at most 200 characters"));
        }
    }
    if let Some(agent) = &job.agent_id
        && (agent.is_empty()
            || !agent.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return Err(invalid(format!("agentId: \"{agent}\" must be lowercase letters, digits, '-' or '_'")));
    }
    // Pincer runs one agent (`agents.list` names only it): a job for any other could never run.
    if let Some(agent) = job.agent_id.as_deref().filter(|a| *a != DEFAULT_AGENT) {
        return Err(invalid(format!(
            "agentId: unknown agent id \"{agent}\": Pincer's agent is \"{DEFAULT_AGENT}\" (omit --agent or use {DEFAULT_AGENT})"
        )));
    }
    if let Some(p) = &job.pacing {
        pacing_bounds(p)?;
    }
    match (&job.session_target, &job.payload) {
        (SessionTarget::Main, Payload::SystemEvent { .. }) => {}
        (SessionTarget::Main, p) => {
            return Err(invalid(format!(
                "sessionTarget: \"main\" runs system events only; a {} payload needs \"isolated\" or \"session:<id>\"",
                p.kind()
            )));
        }
        (t, Payload::SystemEvent { .. }) => {
            return Err(invalid(format!(
                "payload.kind: systemEvent runs in the main session only, not \"{}\" (use agentTurn or command)",
                t.as_string()
            )));
        }
        _ => {}
    }
    if job.session_target == SessionTarget::Main && job.agent_id.as_deref().is_some_and(|a| a != DEFAULT_AGENT) {
        return Err(invalid(
            "sessionTarget: \"main\" only works for the default agent; use \"isolated\" for other agents",
        ));
    }
    match &job.payload {
        Payload::SystemEvent { text } if text.trim().is_empty() => {
            return Err(invalid("payload.text: must not be empty"));
        }
        Payload::AgentTurn { message, .. } if message.trim().is_empty() => {
            return Err(invalid("payload.message: must not be empty"));
        }
        Payload::Command { argv, .. } if argv.is_empty() || argv[0].is_empty() => {
            return Err(invalid("payload.argv: must name a program"));
        }
        Payload::AgentTurn { model: Some(m), .. } if !m.contains('/') => {
            return Err(invalid(format!("payload.model: \"{m}\" must be provider/model, e.g. local/llama3.2")));
        }
        _ => {}
    }
    if let Some(s) = job.payload.timeout_seconds()
        && s > MAX_TIMEOUT_SECONDS
    {
        return Err(invalid(format!(
            "payload.timeoutSeconds: {s} is more than {MAX_TIMEOUT_SECONDS} (30 days); use 0 for no limit"
        )));
    }
    if let Payload::Command { no_output_timeout_seconds: Some(s), .. } = &job.payload
        && *s > MAX_TIMEOUT_SECONDS
    {
        return Err(invalid(format!(
            "payload.noOutputTimeoutSeconds: {s} is more than {MAX_TIMEOUT_SECONDS} (30 days); use 0 for no limit"
        )));
    }
    if let Payload::Command { output_max_bytes: Some(n), .. } = &job.payload
        && !(1..=crate::command::MAX_OUTPUT_MAX_BYTES).contains(n)
    {
        return Err(invalid(format!(
            "payload.outputMaxBytes: {n} is not between 1 and {} (16 MiB); leave it out to keep the last {} bytes \
             (1 MiB) of each stream",
            crate::command::MAX_OUTPUT_MAX_BYTES,
            crate::command::DEFAULT_OUTPUT_MAX_BYTES
        )));
    }
    if let Some(d) = &job.delivery {
        validate_delivery(d, &job.session_target, ctx)?;
    }
    if let Some(FailureAlert::Policy(p)) = &job.failure_alert
        && p.after == Some(0)
    {
        return Err(invalid("failureAlert.after: must be at least 1"));
    }
    Ok(())
}

fn validate_delivery(d: &Delivery, target: &SessionTarget, ctx: &CreateContext) -> Result<(), Invalid> {
    // Each channel has one account, so any other account could never be delivered to.
    let accounts = [("delivery.accountId", d.account_id.as_deref())].into_iter().chain(
        d.failure_destination.iter().map(|f| ("delivery.failureDestination.accountId", f.account_id.as_deref())),
    );
    for (field, account) in accounts {
        if let Some(a) = account.filter(|a| *a != "default") {
            return Err(invalid(format!(
                "{field}: unknown account \"{a}\"; Pincer has one account per channel (omit --account or use default)"
            )));
        }
    }
    match d.mode {
        DeliveryMode::None => return Ok(()),
        DeliveryMode::Webhook => {
            let to = d.to.as_deref().ok_or_else(|| invalid("delivery.to: a webhook needs an http(s) URL"))?;
            check_webhook_url(to).map_err(|e| invalid(format!("delivery.to: {e}")))?;
            return Ok(());
        }
        DeliveryMode::Announce => {}
    }
    if !target.is_detached() {
        return Err(invalid(
            "delivery.mode: announce is only for isolated or session:<id> jobs; a main-session job may use webhook or none",
        ));
    }
    let channel = d.channel.as_deref().filter(|c| *c != "last");
    if let Some(c) = channel {
        let Some(known) = ctx.channels.get(c) else {
            let names = ctx.channels.names();
            return Err(invalid(format!("delivery.channel: unknown channel \"{c}\" (use {names})")));
        };
        if !known.usable {
            return Err(invalid(format!(
                "delivery.channel: \"{c}\" is not configured; add channels.{c} to the config, or deliver to the inbox"
            )));
        }
    }
    if let (Some(c), Some(prefix)) = (channel, d.to.as_deref().and_then(|to| ctx.channels.prefix_of(to)))
        && prefix != c
    {
        return Err(invalid(format!("delivery.to: the \"{prefix}:\" prefix contradicts delivery.channel \"{c}\"")));
    }
    Ok(())
}

/// An http(s) URL without credentials.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("\"{url}\" is not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not allowed; use cron.webhookToken".into());
    }
    Ok(())
}

/// The merge patch that turns `existing` into the declaration `input` (the same
/// `declarationKey` added again): every field the declaration sets, the rest cleared; the id,
/// creation time, run state and key stay. OpenClaw keeps an interval's anchor when `everyMs` is
/// unchanged.
pub fn declaration_patch(existing: &Job, input: JobInput, ctx: &CreateContext) -> Result<JobPatch, Invalid> {
    let mut declared = create(input, existing.id.clone(), ctx)?;
    if let (
        ScheduleSpec::Every { every_ms: new_every, anchor_ms: new_anchor },
        ScheduleSpec::Every { every_ms: old_every, anchor_ms: old_anchor },
    ) = (&mut declared.schedule, &existing.schedule)
        && new_every == old_every
    {
        *new_anchor = *old_anchor;
    }
    let current = serde_json::to_value(existing).map_err(|e| invalid(format!("the stored job: {e}")))?;
    let target = serde_json::to_value(&declared).map_err(|e| invalid(format!("the declaration: {e}")))?;
    let (Some(current), Some(target)) = (current.as_object(), target.as_object()) else {
        return Err(invalid("a job is a JSON object"));
    };
    const KEPT: [&str; 5] = ["id", "createdAtMs", "updatedAtMs", "state", "declarationKey"];
    let mut patch = serde_json::Map::new();
    for key in current.keys().filter(|k| !target.contains_key(*k) && !KEPT.contains(&k.as_str())) {
        patch.insert(key.clone(), serde_json::Value::Null);
    }
    for (key, value) in target.iter().filter(|(k, _)| !KEPT.contains(&k.as_str())) {
        patch.insert(key.clone(), value.clone());
    }
    Ok(JobPatch(patch))
}

/// Applies a `cron.update` patch: a JSON merge patch (objects merge, `null` clears a field) with
/// OpenClaw's exceptions — `schedule` is replaced wholesale and a payload of another kind replaces
/// the payload. The result is validated like a new job.
pub fn apply_patch(job: &Job, patch: &JobPatch, ctx: &CreateContext) -> Result<Job, Invalid> {
    let fields = job_fields();
    for key in patch.0.keys() {
        if UNSUPPORTED_JOB_FIELDS.contains(&key.as_str()) {
            return Err(invalid(format!("patch.{key}: not supported by Pincer")));
        }
        if !fields.contains(&key.as_str()) {
            return Err(invalid(format!("patch: unknown field `{key}`")));
        }
        if key == "declarationKey" {
            return Err(invalid(
                "patch.declarationKey: a job's declaration key cannot be changed; add the job again under the new key",
            ));
        }
    }
    let mut current = serde_json::to_value(job).map_err(|e| invalid(format!("the job does not serialise: {e}")))?;
    let Some(obj) = current.as_object_mut() else { return Err(invalid("the job does not serialise as an object")) };
    let mut patch = Value::Object(patch.0.clone());
    canonicalize(&mut patch);
    let Value::Object(patch) = patch else { return Err(invalid("patch: must be an object")) };
    let schedule_changed = patch.contains_key("schedule");
    for (key, value) in patch {
        match (key.as_str(), value) {
            (_, Value::Null) => {
                obj.remove(&key);
            }
            ("schedule", v) => {
                obj.insert(key, v);
            }
            ("payload", Value::Object(p)) => {
                let old_kind = obj.get("payload").and_then(|x| x.get("kind")).cloned();
                let new_kind = p.get("kind").cloned();
                if new_kind.is_some() && new_kind != old_kind {
                    check_payload_kind(new_kind.as_ref().and_then(Value::as_str).unwrap_or("")).map_err(Invalid)?;
                    obj.insert(key, Value::Object(p));
                } else {
                    merge(obj.entry("payload").or_insert(json!({})), Value::Object(p));
                }
            }
            ("delivery" | "failureAlert", Value::Object(p)) => match obj.get_mut(&key) {
                Some(current) if current.is_object() => merge(current, Value::Object(p)),
                _ => {
                    obj.insert(key, Value::Object(p));
                }
            },
            (_, v) => {
                obj.insert(key, v);
            }
        }
    }
    obj.insert("updatedAtMs".into(), json!(ctx.now_ms));
    let mut next = parse_job(current)?;
    if schedule_changed {
        next.schedule = next
            .schedule
            .normalize(&NormalizeContext { now_ms: ctx.now_ms, default_tz: ctx.default_tz, exact: false })
            .map_err(|e| invalid(e.to_string()))?;
    }
    validate(&next, ctx)?;
    Ok(next)
}

/// A job's pacing bounds in milliseconds, `(min, max)`: OpenClaw's `parseCronPacingBounds`
/// (positive durations, at least one, `min` not above `max`).
pub fn pacing_bounds(p: &Pacing) -> Result<(Option<i64>, Option<i64>), Invalid> {
    let bound = |field: &str, text: &Option<String>| -> Result<Option<i64>, Invalid> {
        let Some(text) = text else { return Ok(None) };
        match pincer_core::duration::parse_duration_ms(text, Some(1)) {
            Ok(ms) if ms > 0 => Ok(Some(i64::try_from(ms).unwrap_or(i64::MAX))),
            Ok(_) => Err(invalid(format!("pacing.{field}: must be a positive duration such as 15m, not \"{text}\""))),
            Err(e) => Err(invalid(format!("pacing.{field}: must be a positive duration such as 15m ({e})"))),
        }
    };
    let (min, max) = (bound("min", &p.min)?, bound("max", &p.max)?);
    match (min, max) {
        (None, None) => Err(invalid("pacing: give at least one of min or max (e.g. --pacing-min 15m)")),
        (Some(lo), Some(hi)) if lo > hi => Err(invalid(format!(
            "pacing: min ({}) must not exceed max ({})",
            p.min.as_deref().unwrap_or(""),
            p.max.as_deref().unwrap_or("")
        ))),
        bounds => Ok(bounds),
    }
}

/// When a paced job runs next: `delay_ms` (the run's `next_check` proposal) after `now_ms`,
/// clamped to the job's bounds (OpenClaw's `resolvePacedNextRunAtMs`). `None` when the job has no
/// valid pacing.
pub fn paced_next_run_ms(pacing: &Pacing, now_ms: i64, delay_ms: i64) -> Option<i64> {
    let (min, max) = pacing_bounds(pacing).ok()?;
    let proposed = now_ms.saturating_add(delay_ms);
    let floor = now_ms.saturating_add(min.unwrap_or(0));
    let ceiling = max.map_or(i64::MAX, |m| now_ms.saturating_add(m));
    Some(proposed.max(floor).min(ceiling))
}

/// RFC 7396 merge: objects merge recursively, `null` deletes.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

/// What the scheduler writes into a job's state when a run finishes.
pub trait JobStateExt {
    /// Notes a finished run: its id, time, duration, status and error, and the error and skip
    /// streaks.
    fn note_run(
        &mut self,
        run_id: &str,
        started_at_ms: i64,
        now_ms: i64,
        status: ExecStatus,
        outcome: &crate::runner::ExecOutcome,
    );
    /// Notes what became of the last run's result.
    fn note_delivery(
        &mut self,
        status: DeliveryStatus,
        delivered: bool,
        error: Option<String>,
        suppression: Option<SuppressionReason>,
    );
}

impl JobStateExt for JobState {
    fn note_run(
        &mut self,
        run_id: &str,
        started_at_ms: i64,
        now_ms: i64,
        status: ExecStatus,
        outcome: &crate::runner::ExecOutcome,
    ) {
        self.running_at_ms = None;
        self.running_run_id = None;
        self.last_run_id = Some(run_id.to_string());
        self.last_run_at_ms = Some(started_at_ms);
        self.last_duration_ms = Some(u64::try_from(now_ms - started_at_ms).unwrap_or(0));
        self.last_run_status = Some(status);
        self.last_status = Some(status);
        self.last_error = outcome.error.clone();
        self.last_error_reason = outcome.error_reason;
        let (errors, skipped) = match status {
            ExecStatus::Ok => (0, 0),
            ExecStatus::Error => (self.consecutive_errors + 1, 0),
            ExecStatus::Skipped => (0, self.consecutive_skipped + 1),
        };
        (self.consecutive_errors, self.consecutive_skipped) = (errors, skipped);
    }

    fn note_delivery(
        &mut self,
        status: DeliveryStatus,
        delivered: bool,
        error: Option<String>,
        suppression: Option<SuppressionReason>,
    ) {
        self.last_delivery_status = Some(status);
        self.last_delivered = Some(delivered);
        self.last_delivery_error = error;
        self.delivery_suppression_reason = suppression;
    }
}

/// What the scheduler adds to the job's wire type: its stored form, its revision, its read view.
pub trait JobExt: Sized {
    /// Rebuilds a job from its stored definition and state.
    fn from_stored(job_json: &str, state_json: &str) -> Result<Self, Invalid>;
    /// The definition alone (state emptied), as stored in `job_json`.
    fn definition_json(&self) -> Result<String, Invalid>;
    /// An opaque hash of the definition without `updatedAtMs` and `state`, for optimistic
    /// concurrency (`expectedConfigRevision`).
    fn config_revision(&self) -> Result<String, Invalid>;
    /// The read view: the job (state as stored) plus OpenClaw's computed mirrors
    /// (`configRevision`, `nextRunAtMs`, …).
    fn read_view(&self) -> Result<CronJob, Invalid>;
    /// [`JobExt::read_view`] as JSON, for `cron` events and webhook bodies.
    fn view(&self) -> Result<Value, Invalid>;
}

impl JobExt for Job {
    fn from_stored(job_json: &str, state_json: &str) -> Result<Job, Invalid> {
        // A stored row is this gateway's own write: parsed straight into the types (still closed:
        // both refuse unknown fields). Only a row that fails goes the strict way below, for its
        // field path; at 100,000 jobs a listing is several times faster for it.
        if job_json.trim_start().starts_with('{')
            && state_json.trim_start().starts_with('{')
            && let (Ok(mut job), Ok(state)) =
                (serde_json::from_str::<Job>(job_json), serde_json::from_str::<JobState>(state_json))
        {
            job.state = state;
            return Ok(job);
        }
        let mut v: Value =
            serde_json::from_str(job_json).map_err(|e| invalid(format!("stored job is not JSON: {e}")))?;
        let state: Value =
            serde_json::from_str(state_json).map_err(|e| invalid(format!("stored state is not JSON: {e}")))?;
        v["state"] = state;
        parse_job(v)
    }

    fn definition_json(&self) -> Result<String, Invalid> {
        let mut def = self.clone();
        def.state = JobState::default();
        serde_json::to_string(&def).map_err(|e| unserialisable(&self.id, &e))
    }

    fn config_revision(&self) -> Result<String, Invalid> {
        use base64::Engine;
        let mut def = serde_json::to_value(self).map_err(|e| unserialisable(&self.id, &e))?;
        if let Some(o) = def.as_object_mut() {
            o.remove("updatedAtMs");
            o.remove("state");
        }
        let digest = Sha256::digest(def.to_string().as_bytes());
        Ok(format!("sha256:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)))
    }

    fn read_view(&self) -> Result<CronJob, Invalid> {
        Ok(CronJob::new(self.clone(), self.config_revision()?))
    }

    fn view(&self) -> Result<Value, Invalid> {
        serde_json::to_value(self.read_view()?).map_err(|e| unserialisable(&self.id, &e))
    }
}

/// A job serde cannot write (a map key that is not a string, a float that is not finite).
fn unserialisable(id: &str, e: &serde_json::Error) -> Invalid {
    invalid(format!("job {id} cannot be written as JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use pincer_protocol::schema::cron::AddParams;
    use pincer_protocol::schema::parse_params;

    use super::*;

    use crate::channels::KnownChannel;

    /// The registry's channels as the gateway passes them; chat channels usable when `configured`.
    fn catalog(configured: &[&str]) -> &'static ChannelCatalog {
        let known = |name: &'static str, prefixes: &'static [&'static str], chat: bool| KnownChannel {
            name,
            prefixes,
            usable: !chat || configured.contains(&name),
        };
        Box::leak(Box::new(ChannelCatalog::new(vec![
            known("discord", &["discord"], true),
            known("telegram", &["telegram", "tg"], true),
            known("slack", &["slack"], true),
            known("inbox", &["inbox"], false),
            known("webhook", &[], false),
        ])))
    }

    fn ctx() -> CreateContext<'static> {
        CreateContext { now_ms: 1_772_323_200_000, default_tz: "Europe/Berlin", channels: catalog(&[]) }
    }

    /// `cron.add` as the gateway runs it: the params parse, then the create defaults.
    fn add(params: Value) -> Result<Job, String> {
        let strip = |m: String| m.trim_start_matches("invalid cron.add params: ").to_string();
        let input = parse_params::<AddParams>("cron.add", Some(&params)).map_err(|e| strip(e.0))?;
        create(input.0, "job-1".into(), &ctx()).map_err(|e| e.0)
    }

    fn patch(v: Value) -> JobPatch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn openclaw_create_defaults() {
        let job = add(json!({
            "name": "tap-iso", "schedule": {"kind": "every", "everyMs": 3600000},
            "payload": {"kind": "agentTurn", "message": "tap test"}
        }))
        .unwrap();
        assert_eq!(job.session_target, SessionTarget::Isolated);
        assert_eq!(job.wake_mode, WakeMode::Now);
        assert!(job.enabled);
        assert_eq!(job.delivery.as_ref().unwrap().mode, DeliveryMode::Announce);
        assert_eq!(job.delivery.as_ref().unwrap().channel.as_deref(), Some("last"));
        let main = add(json!({"schedule": {"kind": "cron", "expr": "*/15 * * * *"},
                              "payload": {"kind": "SYSTEMEVENT", "text": "ping"}}))
        .unwrap();
        assert_eq!(main.session_target, SessionTarget::Main);
        assert_eq!(main.delivery, None);
        assert_eq!(main.name, "ping");
        assert_eq!(main.display_tz("UTC"), "Europe/Berlin", "a cron job stores the default zone");
        let once = add(json!({"schedule": {"kind": "at", "at": "2026-03-02T09:00:00Z"},
                              "payload": {"kind": "command", "argv": ["echo", "hi"]}}))
        .unwrap();
        assert_eq!(once.delete_after_run, Some(true));
    }

    #[test]
    fn bad_input_names_the_field() {
        let base =
            json!({"schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "agentTurn", "message": "m"}});
        let with = |k: &str, v: Value| {
            let mut p = base.clone();
            p[k] = v;
            add(p).unwrap_err()
        };
        assert!(with("surprise", json!(1)).starts_with("unknown field `surprise`, expected one of `name`"));
        assert_eq!(with("trigger", json!({})), "trigger: not supported by Pincer");
        assert!(
            with("payload", json!({"kind": "agentTurn", "message": "m", "colour": 1}))
                .starts_with("payload: unknown field `colour`")
        );
        assert!(
            with("payload", json!({"kind": "script", "script": "x"}))
                .starts_with("payload.kind: \"script\" is not supported")
        );
        assert!(with("sessionTarget", json!("main")).starts_with("sessionTarget: \"main\" runs system events only"));
        assert!(with("sessionTarget", json!("session:../etc")).contains("is not allowed"));
        assert!(
            with("delivery", json!({"mode": "announce", "channel": "discord", "to": "telegram:123"}))
                .contains("is not configured")
        );
        assert!(with("delivery", json!({"mode": "webhook", "to": "ftp://x"})).starts_with("delivery.to:"));
        assert!(with("delivery", json!({"mode": "webhook", "to": "https://u:p@x/"})).contains("credentials"));
        assert_eq!(with("delivery", json!(["none"])), "delivery: invalid type: sequence, expected an object");
        assert_eq!(
            with("schedule", json!(["every", 60000, null])),
            "schedule: invalid type: sequence, expected an object"
        );
        let command = |k: &str, v: Value| with("payload", json!({"kind": "command", "argv": ["true"], k: v}));
        assert_eq!(
            command("outputMaxBytes", json!(0)),
            "payload.outputMaxBytes: 0 is not between 1 and 16777216 (16 MiB); leave it out to keep the last 1048576 \
             bytes (1 MiB) of each stream"
        );
        assert!(command("outputMaxBytes", json!(16_777_217)).starts_with("payload.outputMaxBytes: 16777217 is not"));
        assert_eq!(
            command("noOutputTimeoutSeconds", json!(2_592_001)),
            "payload.noOutputTimeoutSeconds: 2592001 is more than 2592000 (30 days); use 0 for no limit"
        );
        assert_eq!(
            with("payload", json!({"kind": "agentTurn", "message": "m", "timeoutSeconds": u64::MAX})),
            "payload.timeoutSeconds: 18446744073709551615 is more than 2592000 (30 days); use 0 for no limit"
        );
    }

    #[test]
    fn a_huge_stored_timeout_is_bounded() {
        // Found by the `job` fuzz target: `timeoutSeconds * 1000` overflowed for huge values.
        let payload = Payload::Command {
            argv: vec!["true".into()],
            cwd: None,
            env: None,
            input: None,
            timeout_seconds: Some(u64::MAX),
            no_output_timeout_seconds: None,
            output_max_bytes: None,
        };
        assert_eq!(payload.timeout_ms(), Some(MAX_TIMEOUT_SECONDS * 1_000));
    }

    #[test]
    fn prefix_contradicting_channel_is_rejected() {
        let params = json!({"schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "agentTurn", "message": "m"},
            "delivery": {"mode": "announce", "channel": "discord", "to": "telegram:123"}});
        let ctx = CreateContext { channels: catalog(&["discord", "telegram"]), ..ctx() };
        let input = parse_params::<AddParams>("cron.add", Some(&params)).unwrap().0;
        let err = create(input, "j".into(), &ctx).unwrap_err().0;
        assert_eq!(err, "delivery.to: the \"telegram:\" prefix contradicts delivery.channel \"discord\"");
    }

    #[test]
    fn patch_merges_and_null_clears() {
        let job = add(json!({"schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "agentTurn", "message": "m", "model": "local/a"},
            "delivery": {"mode": "announce", "channel": "inbox", "bestEffort": true}}))
        .unwrap();
        let patched = apply_patch(
            &job,
            &patch(json!({"payload": {"model": null, "message": "new"}, "delivery": {"bestEffort": null}, "enabled": false})),
            &ctx(),
        )
        .unwrap();
        match &patched.payload {
            Payload::AgentTurn { message, model, .. } => assert_eq!((message.as_str(), model), ("new", &None)),
            other => panic!("{other:?}"),
        }
        assert_eq!(patched.delivery.as_ref().unwrap().best_effort, None);
        assert_eq!(patched.delivery.as_ref().unwrap().channel.as_deref(), Some("inbox"));
        assert!(!patched.enabled);
        assert_ne!(patched.config_revision().unwrap(), job.config_revision().unwrap());
        assert!(apply_patch(&job, &patch(json!({"state": {}})), &ctx()).unwrap_err().0.contains("not supported"));
    }

    #[test]
    fn stored_round_trip_and_revision_ignores_state() {
        let mut job = add(json!({"schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"}}))
        .unwrap();
        let before = job.config_revision().unwrap();
        job.state.next_run_at_ms = Some(5);
        job.state.consecutive_errors = 2;
        assert_eq!(job.config_revision().unwrap(), before);
        let state = serde_json::to_string(&job.state).unwrap();
        let back = Job::from_stored(&job.definition_json().unwrap(), &state).unwrap();
        assert_eq!(back, job);
        assert_eq!(job.view().unwrap()["nextRunAtMs"], 5);
    }
}
