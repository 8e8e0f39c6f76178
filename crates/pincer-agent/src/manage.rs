//! Session management and run bookkeeping over the wire schema: `sessions.reset`,
//! `sessions.describe`, `sessions.resolve`, `sessions.compact`, `agent.wait`, and the token
//! usage reports `usage.status` / `usage.cost` (summed from the `usage` each model reply records
//! in its transcript entry).

use pincer_protocol::schema::Method;
use pincer_protocol::schema::agent::{AgentWait, AgentWaitParams, AgentWaitResult};
use pincer_protocol::schema::gateway::{
    ProviderUsage, UsageCost, UsageCostParams, UsageCostResult, UsageStatusResult, UsageTotals,
};
use pincer_protocol::schema::sessions::{
    CleanupAction, CleanupActionKind, CleanupArtifacts, SessionsCleanup, SessionsCleanupParams, SessionsCleanupResult,
    SessionsCompact, SessionsCompactParams, SessionsCompactResult, SessionsDescribe, SessionsDescribeParams,
    SessionsDescribeResult, SessionsPatch, SessionsPatchParams, SessionsPatchResolved, SessionsPatchResult,
    SessionsReset, SessionsResetParams, SessionsResetResult, SessionsResolve, SessionsResolveParams,
    SessionsResolveResult,
};
use pincer_store::{CleanupPolicy, ModelUsage, SessionPatch};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{ApiError, invalid, read_key, session_view, with_previews};
use crate::service::Agents;
use crate::session::{SessionKind, SessionRef};

/// `agent.wait`'s default wait, as OpenClaw's.
pub const AGENT_WAIT_DEFAULT_MS: u64 = 30_000;

fn not_found(key: &str) -> ApiError {
    ApiError::NotFound(format!("No session {key}; list sessions with `sessions.list` (or `pincer sessions list`)"))
}

/// `sessions.reset`: as OpenClaw, the key points at a new session id — the next turn starts a
/// fresh conversation under the same key, with its token counts at zero and no open tool calls —
/// and the old transcript stays in the store under the old id (`session_archive`). Emits
/// `sessions.changed` (`reason: "new"` or `"reset"`).
pub async fn sessions_reset(agents: &Agents, p: SessionsResetParams) -> Result<SessionsResetResult, ApiError> {
    const M: &str = SessionsReset::NAME;
    if let Some(reason) = &p.reason
        && reason != "new"
        && reason != "reset"
    {
        return Err(invalid(M, format!("reason: \"{reason}\" is not new or reset")));
    }
    let key = read_key(M, &p.key, p.agent_id.as_deref())?;
    let reason = p.reason.clone().unwrap_or_else(|| "reset".into());
    let inner = &agents.inner;
    // Not while a turn writes into it: the turn holds the session's lock.
    let _turn = inner.lock_session(&key).await;
    let now = inner.clock.now_ms();
    let (target, expected, why) = (key.clone(), p.expected_session_id.clone(), reason.clone());
    let row = inner
        .store
        .write(move |tx| {
            let Some(current) = tx.reader().get_session(&target)? else { return Ok(None) };
            if expected.as_ref().is_some_and(|e| *e != current.session_id) {
                return Ok(Some(Err(current.session_id)));
            }
            tx.reset_session(&target, &why, now)?;
            Ok(tx.reader().get_session(&target)?.map(Ok))
        })
        .await?
        .ok_or_else(|| not_found(&key))?
        .map_err(|id| {
            ApiError::Invalid(format!("Session {key} is now session id {id}: it changed before the reset. Retry."))
        })?;
    inner.events.emit(
        "sessions.changed",
        json!({"sessionKey": key, "sessionId": row.session_id, "agentId": row.agent_id, "reason": reason}),
        Some("operator.read"),
    );
    Ok(SessionsResetResult { ok: true, key, entry: session_view(&row), extra: Map::new() })
}

/// A label's longest length, in characters.
const LABEL_MAX: usize = 200;

/// `sessions.patch`: sets or clears a session's label and model, archives it or brings it back.
/// A main or named session that has had no turn yet is created, so a chat's model can be chosen
/// before its first message. Emits `sessions.changed` (`reason: "patch"`).
pub async fn sessions_patch(agents: &Agents, p: SessionsPatchParams) -> Result<SessionsPatchResult, ApiError> {
    const M: &str = SessionsPatch::NAME;
    let key = read_key(M, &p.key, p.agent_id.as_deref())?;
    let inner = &agents.inner;
    let label = match p.label {
        Some(Some(label)) => {
            let label = label.trim().to_string();
            if label.is_empty() {
                return Err(invalid(M, "label: must not be empty; pass null to clear it"));
            }
            if label.chars().count() > LABEL_MAX {
                return Err(invalid(M, format!("label: longer than {LABEL_MAX} characters")));
            }
            Some(Some(label))
        }
        other => other,
    };
    let model_override = match p.model {
        Some(Some(model)) => {
            let chain = inner.chain(Some(model.trim()), None).map_err(|e| invalid(M, format!("model: {e}")))?;
            Some(chain.first().map(ToString::to_string))
        }
        other => other,
    };
    let shape = SessionRef::from_key(&key);
    let now = inner.clock.now_ms();
    let archived = match p.archived {
        Some(true) if shape.as_ref().is_some_and(|s| s.kind == SessionKind::Main) => {
            return Err(ApiError::Invalid(format!(
                "Cannot archive the main session ({key}); archive a named session, or reset this one with `sessions.reset`"
            )));
        }
        Some(true) => Some(Some((now, "manual".to_string()))),
        Some(false) => Some(None),
        None => None,
    };
    let patch = SessionPatch { label, model_override, archived };
    let creatable = shape.filter(|s| s.kind != SessionKind::Isolated);
    let (target, expected) = (key.clone(), p.expected_session_id.clone());
    let row = inner
        .store
        .write(move |tx| {
            if let Some(s) = &creatable {
                tx.ensure_session(&s.key, &s.agent_id, s.kind.as_str(), None, None, now)?;
            }
            let Some(current) = tx.reader().get_session(&target)? else { return Ok(None) };
            if expected.as_ref().is_some_and(|e| *e != current.session_id) {
                return Ok(Some(Err(current.session_id)));
            }
            tx.patch_session(&target, &patch)?;
            Ok(tx.reader().get_session(&target)?.map(Ok))
        })
        .await?
        .ok_or_else(|| not_found(&key))?
        .map_err(|id| {
            ApiError::Invalid(format!("Session {key} is now session id {id}: it changed before the patch. Retry."))
        })?;
    inner.events.emit(
        "sessions.changed",
        json!({"sessionKey": key, "sessionId": row.session_id, "agentId": row.agent_id, "reason": "patch"}),
        Some("operator.read"),
    );
    let next = row
        .model_override
        .clone()
        .or_else(|| inner.chain(None, None).ok().and_then(|c| c.first().map(ToString::to_string)));
    let (model_provider, model) = match next.as_deref().and_then(|m| m.split_once('/')) {
        Some((provider, model)) => (Some(provider.to_string()), Some(model.to_string())),
        None => (None, next),
    };
    Ok(SessionsPatchResult {
        ok: true,
        key,
        entry: session_view(&row),
        resolved: SessionsPatchResolved { model_provider, model, extra: Map::new() },
        extra: Map::new(),
    })
}

/// `sessions.cleanup`: `session.maintenance` applied now (or, with `dryRun`, what it would do).
/// Idle named sessions are archived, finished idle cron runs deleted, the oldest beyond
/// `maxEntries` go the same way, and transcripts a reset replaced are deleted past
/// `resetArchiveRetention`. Main sessions and `activeKey` are never touched.
pub async fn sessions_cleanup(agents: &Agents, p: SessionsCleanupParams) -> Result<SessionsCleanupResult, ApiError> {
    const M: &str = SessionsCleanup::NAME;
    let agent_id = match (p.agent.as_deref().map(str::trim), p.all_agents) {
        (Some(_), Some(true)) => return Err(invalid(M, "agent: give agent or allAgents, not both")),
        (Some(""), _) => return Err(invalid(M, "agent: must not be empty")),
        (agent, _) => agent.map(str::to_string),
    };
    if p.fix_dm_scope == Some(true) {
        return Err(invalid(
            M,
            "fixDmScope: not supported by Pincer: it keeps no DM sessions of an earlier session.dmScope to retire; omit it",
        ));
    }
    let inner = &agents.inner;
    let maintenance = inner.config().session.maintenance.clone();
    let policy = CleanupPolicy {
        now_ms: inner.clock.now_ms(),
        prune_after_ms: maintenance
            .prune_after
            .ms()
            .map_err(|e| invalid(M, format!("session.maintenance.pruneAfter: {e}")))?,
        max_entries: Some(maintenance.max_entries),
        reset_archive_after_ms: maintenance
            .reset_archive_retention
            .ms()
            .map_err(|e| invalid(M, format!("session.maintenance.resetArchiveRetention: {e}")))?,
        agent_id: agent_id.clone(),
        protect: p.active_key.iter().map(|k| k.trim().to_string()).collect(),
    };
    let dry_run = p.dry_run == Some(true);
    let now = policy.now_ms;
    let plan = if dry_run {
        inner.store.read(move |rd| rd.cleanup_plan(&policy)).await?
    } else {
        inner
            .store
            .write(move |tx| {
                let plan = tx.reader().cleanup_plan(&policy)?;
                tx.apply_cleanup(&plan, now)?;
                Ok(plan)
            })
            .await?
    };
    let would_mutate = !plan.is_empty();
    if !dry_run && would_mutate {
        inner.events.emit("sessions.changed", json!({"reason": "cleanup"}), Some("operator.read"));
    }
    let actions = [
        (&plan.archive_age, CleanupActionKind::ArchiveAge),
        (&plan.archive_cap, CleanupActionKind::ArchiveCap),
        (&plan.delete_stale, CleanupActionKind::PruneStale),
        (&plan.delete_cap, CleanupActionKind::CapOverflow),
    ]
    .into_iter()
    .flat_map(|(keys, action)| keys.iter().map(move |key| CleanupAction { key: key.clone(), action }))
    .collect();
    Ok(SessionsCleanupResult {
        agent_id: agent_id.unwrap_or_else(|| "*".into()),
        store_path: inner.store.path().display().to_string(),
        mode: "enforce".into(),
        dry_run,
        before_count: plan.before,
        after_count: plan.after(),
        missing: 0,
        dm_scope_retired: 0,
        model_run_pruned: 0,
        archived: plan.archive_age.len() as u64,
        cap_archived: plan.archive_cap.len() as u64,
        pruned: plan.delete_stale.len() as u64,
        capped: plan.delete_cap.len() as u64,
        reset_transcripts_pruned: plan.reset_transcripts.len() as u64,
        unreferenced_artifacts: CleanupArtifacts::default(),
        disk_budget: None,
        would_mutate,
        applied: (!dry_run).then_some(true),
        applied_count: (!dry_run).then(|| plan.after()),
        actions,
        extra: Map::new(),
    })
}

/// `sessions.describe`: one session as `sessions.list` shows it, or `session: null`, with the
/// transcripts `/new`, `/reset` and `sessions.reset` replaced (`previousTranscripts`, newest
/// first). With `sessionId` (Pincer's), the session as that transcript shows it: its id,
/// counts and previews; an id that is not one of the session's transcripts is OpenClaw's
/// "sessionId does not belong to sessionKey".
pub async fn sessions_describe(agents: &Agents, p: SessionsDescribeParams) -> Result<SessionsDescribeResult, ApiError> {
    const M: &str = SessionsDescribe::NAME;
    let key = read_key(M, &p.key, p.agent_id.as_deref())?;
    let wanted = match p.session_id.as_deref().map(str::trim) {
        Some("") => return Err(invalid(M, "sessionId: must not be empty")),
        other => other.map(str::to_string),
    };
    let (last, titles) = (p.include_last_message == Some(true), p.include_derived_titles == Some(true));
    let asked = wanted.clone();
    let lookup = key.clone();
    let found = agents
        .inner
        .store
        .read(move |rd| {
            let Some(row) = rd.get_session(&lookup)? else { return Ok(Ok(None)) };
            let earlier = rd.archived_sessions(&row.key)?;
            let archived = match asked.as_deref() {
                Some(id) if id != row.session_id => match earlier.iter().find(|a| a.session_id == id) {
                    Some(a) => Some(a.clone()),
                    None => return Ok(Err(())),
                },
                _ => None,
            };
            // The previews of an archived transcript come from reading it (rare, and it is whole).
            let text = |roles: &[&str], newest: bool| -> pincer_store::Result<Option<String>> {
                let Some(a) = &archived else { return rd.transcript_text(&row.key, roles, newest) };
                let rows = rd.transcript_of(&row.key, &a.session_id, u32::MAX, None)?;
                let mut rows = rows.into_iter().filter(|r| roles.contains(&r.role.as_str()));
                Ok(if newest { rows.next_back() } else { rows.next() }.map(|r| r.content))
            };
            let last = if last { text(&["user", "assistant"], true)? } else { None };
            let title = if titles { text(&["user"], false)? } else { None };
            Ok(Ok(Some((row, archived, earlier, last, title))))
        })
        .await?;
    let Ok(found) = found else {
        return Err(crate::api::foreign_transcript(&key, wanted.as_deref().unwrap_or_default()));
    };
    let Some((row, archived, earlier, last, title)) = found else {
        return Ok(SessionsDescribeResult { session: None, previous_transcripts: None, extra: Map::new() });
    };
    let view = match &archived {
        Some(a) => crate::api::archived_view(&row, a),
        None => session_view(&row),
    };
    Ok(SessionsDescribeResult {
        session: Some(with_previews(view, last, title)),
        previous_transcripts: Some(earlier.iter().map(crate::api::transcript_summary).collect()),
        extra: Map::new(),
    })
}

/// `sessions.resolve`: the session a key or a current session id names; `{ok: false}` for none
/// with `allowMissing`, else an error.
pub async fn sessions_resolve(agents: &Agents, p: SessionsResolveParams) -> Result<SessionsResolveResult, ApiError> {
    const M: &str = SessionsResolve::NAME;
    let (wanted, by_id) = match (p.key.as_deref(), p.session_id.as_deref()) {
        (Some(key), None) => (read_key(M, key, p.agent_id.as_deref())?, false),
        (None, Some(id)) => (id.trim().to_string(), true),
        (Some(_), Some(_)) => return Err(invalid(M, "give key or sessionId, not both")),
        (None, None) => return Err(invalid(M, "key or sessionId is required")),
    };
    let lookup = wanted.clone();
    let row = agents
        .inner
        .store
        .read(move |rd| if by_id { rd.session_by_id(&lookup) } else { rd.get_session(&lookup) })
        .await?;
    match row {
        Some(row) if p.agent_id.as_ref().is_none_or(|a| *a == row.agent_id) => {
            Ok(SessionsResolveResult { ok: true, key: Some(row.key), agent_id: Some(row.agent_id), extra: Map::new() })
        }
        _ if p.allow_missing == Some(true) => {
            Ok(SessionsResolveResult { ok: false, key: None, agent_id: None, extra: Map::new() })
        }
        _ => Err(ApiError::NotFound(format!("No session found: {wanted}"))),
    }
}

/// `sessions.compact`: with `maxLines`, keeps the newest that many transcript entries (what the
/// model sees next) and emits `sessions.changed` (`reason: "compact"`). Without it OpenClaw
/// summarises the transcript with the model; Pincer does not, and says so with `ok: false`, the
/// way OpenClaw answers a compaction with nothing to do.
pub async fn sessions_compact(agents: &Agents, p: SessionsCompactParams) -> Result<SessionsCompactResult, ApiError> {
    const M: &str = SessionsCompact::NAME;
    if p.max_lines == Some(0) {
        return Err(invalid(M, "maxLines: must be at least 1"));
    }
    let key = read_key(M, &p.key, p.agent_id.as_deref())?;
    let inner = &agents.inner;
    let lookup = key.clone();
    let row = inner.store.read(move |rd| rd.get_session(&lookup)).await?.ok_or_else(|| not_found(&key))?;
    let answer = |ok, compacted, kept, reason: Option<&str>| SessionsCompactResult {
        ok,
        key: key.clone(),
        compacted,
        kept,
        reason: reason.map(str::to_string),
        extra: Map::new(),
    };
    let Some(max) = p.max_lines else {
        return Ok(answer(
            false,
            false,
            None,
            Some("Pincer does not summarise transcripts; pass maxLines to keep only the newest entries"),
        ));
    };
    if row.messages == 0 {
        return Ok(answer(true, false, None, Some("no transcript")));
    }
    if row.messages <= max as i64 {
        return Ok(answer(true, false, Some(row.messages as u64), None));
    }
    let _turn = inner.lock_session(&key).await;
    let target = key.clone();
    let kept = inner.store.write(move |tx| tx.trim_transcript(&target, max)).await?;
    inner.events.emit(
        "sessions.changed",
        json!({"sessionKey": key, "sessionId": row.session_id, "agentId": row.agent_id, "reason": "compact"}),
        Some("operator.read"),
    );
    Ok(answer(true, true, Some(kept), None))
}

/// `agent.wait`: how run `runId` (an `agent`, `chat.send` or cron turn) ended — from its
/// transcript entries when it has ended, else from its `lifecycle` end or error event — or
/// `status: "timeout"` when `timeoutMs` (default 30 s, on the gateway's clock) passes first.
pub async fn agent_wait(agents: &Agents, p: AgentWaitParams) -> Result<AgentWaitResult, ApiError> {
    const M: &str = AgentWait::NAME;
    let run_id = p.run_id.trim().to_string();
    if run_id.is_empty() {
        return Err(invalid(M, "runId: must not be empty"));
    }
    let inner = &agents.inner;
    // Subscribed before the look-up, so an end between the two is not missed.
    let mut events = inner.events.subscribe();
    let deadline =
        inner.clock.now_ms().saturating_add(p.timeout_ms.unwrap_or(AGENT_WAIT_DEFAULT_MS).min(i64::MAX as u64) as i64);
    let mut started_at = None;
    if let Some(done) = recorded_end(agents, &run_id, &mut started_at).await? {
        return Ok(done);
    }
    let sleep = inner.clock.sleep_until(deadline);
    tokio::pin!(sleep);
    let mut closed = false;
    loop {
        tokio::select! {
            _ = &mut sleep => return Ok(wait_result(&run_id, "timeout", started_at, None, None, None)),
            ev = events.recv(), if !closed => match ev {
                Ok(ev) => {
                    let p = &ev.payload;
                    if ev.name != "agent" || p["runId"] != run_id.as_str() || p["stream"] != "lifecycle" {
                        continue;
                    }
                    let data = &p["data"];
                    match data["phase"].as_str() {
                        Some("start") => started_at = data["startedAt"].as_i64(),
                        Some("end") => {
                            let stop = if data["aborted"] == true { "rpc" } else { "stop" };
                            return Ok(wait_result(&run_id, "ok", started_at, data["endedAt"].as_i64(), None, Some(stop)));
                        }
                        Some("error") => {
                            let error = data["error"].as_str().map(str::to_string);
                            return Ok(wait_result(&run_id, "error", started_at, data["endedAt"].as_i64(), error, None));
                        }
                        _ => {}
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    if let Some(done) = recorded_end(agents, &run_id, &mut started_at).await? {
                        return Ok(done);
                    }
                }
                Err(RecvError::Closed) => closed = true,
            },
        }
    }
}

fn wait_result(
    run_id: &str,
    status: &str,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    error: Option<String>,
    stop_reason: Option<&str>,
) -> AgentWaitResult {
    AgentWaitResult {
        run_id: run_id.to_string(),
        status: status.to_string(),
        started_at,
        ended_at,
        error,
        stop_reason: stop_reason.map(str::to_string),
        extra: Map::new(),
    }
}

/// The end of `run_id` as its transcript entries record it: a final reply (no tool calls), an
/// aborted turn, or a failure note — or, for a run this process did not start that has none of
/// these and is not running again, its interruption. A `chat.send` run still registered has not
/// ended.
async fn recorded_end(
    agents: &Agents,
    run_id: &str,
    started_at: &mut Option<i64>,
) -> Result<Option<AgentWaitResult>, ApiError> {
    let lookup = run_id.to_string();
    let rows = agents.inner.store.read(move |rd| rd.run_entries(&lookup)).await?;
    if let Some((_, first)) = rows.first() {
        started_at.get_or_insert(first.at_ms);
    }
    if agents.inner.chats.running(run_id) {
        return Ok(None);
    }
    for (_, row) in rows.iter().rev() {
        let meta: Value = row.meta_json.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
        if meta["aborted"] == true {
            return Ok(Some(wait_result(run_id, "ok", *started_at, Some(row.at_ms), None, Some("rpc"))));
        }
        if row.role == "assistant" && meta.get("toolCalls").is_none() {
            return Ok(Some(wait_result(run_id, "ok", *started_at, Some(row.at_ms), None, Some("stop"))));
        }
        if row.role == "system" && meta.get("error").is_some() {
            let error = meta["error"].as_str().map(str::to_string);
            return Ok(Some(wait_result(run_id, "error", *started_at, Some(row.at_ms), error, None)));
        }
    }
    // No end, every entry from before this process started, and not running again now (an
    // inbound message still queued, the same `idempotencyKey` again): a stop cut the run off.
    let inner = &agents.inner;
    let running = inner.runs.lock().expect("agent runs").get(run_id).is_some_and(|run| run.peek().is_none());
    if let Some((_, last)) = rows.last()
        && !running
        && rows.iter().all(|(_, row)| row.at_ms < inner.started_ms)
    {
        let error = format!("{INTERRUPTED_RUN} (run {run_id}); nothing of its reply was recorded or sent");
        return Ok(Some(wait_result(run_id, "error", *started_at, Some(last.at_ms), Some(error), None)));
    }
    Ok(None)
}

/// How `agent.wait` describes a run a stop (a crash, a restart) cut off before it ended.
pub const INTERRUPTED_RUN: &str = "interrupted: the gateway stopped before the run ended";

/// `usage.status`: each configured provider with the tokens its recorded replies used. Pincer
/// cannot see a provider's quota windows, so `windows` is empty.
pub async fn usage_status(agents: &Agents) -> Result<UsageStatusResult, ApiError> {
    let inner = &agents.inner;
    let by_model = inner.store.read(|rd| rd.usage_by_model()).await?;
    let config = inner.config();
    let mut providers: Vec<ProviderUsage> = config
        .models
        .providers
        .keys()
        .map(|name| ProviderUsage {
            provider: name.clone(),
            display_name: name.clone(),
            windows: vec![],
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            extra: Map::new(),
        })
        .collect();
    for usage in by_model {
        let provider = usage.label.split_once('/').map_or(usage.label.as_str(), |(p, _)| p);
        if let Some(entry) = providers.iter_mut().find(|p| p.provider == provider) {
            entry.input_tokens += usage.input.max(0) as u64;
            entry.output_tokens += usage.output.max(0) as u64;
            entry.total_tokens = entry.input_tokens + entry.output_tokens;
        }
    }
    Ok(UsageStatusResult { updated_at: inner.clock.now_ms(), providers, extra: Map::new() })
}

const DAY_MS: i64 = 86_400_000;

/// `usage.cost`: tokens by UTC day over the last `days` days (30 by default) or
/// `startDate`..`endDate`, of the main agent's sessions (`agentId` for another, `agentScope:
/// "all"` for every one). Pincer has no prices: costs are 0 and every reply counts in
/// `missingCostEntries`.
pub async fn usage_cost(agents: &Agents, p: UsageCostParams) -> Result<UsageCostResult, ApiError> {
    const M: &str = UsageCost::NAME;
    let inner = &agents.inner;
    let now = inner.clock.now_ms();
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let (start, end) = match (p.start_date.as_deref(), p.end_date.as_deref()) {
        (Some(s), Some(e)) => {
            let start = day_start(s).ok_or_else(|| invalid(M, "startDate: expected a YYYY-MM-DD calendar date"))?;
            let end = day_start(e).ok_or_else(|| invalid(M, "endDate: expected a YYYY-MM-DD calendar date"))?;
            if start > end {
                return Err(invalid(M, "startDate must not be after endDate"));
            }
            (start, end)
        }
        (None, None) => {
            let days = p.days.unwrap_or(30).max(1) as i64;
            (today - (days - 1) * DAY_MS, today)
        }
        _ => return Err(invalid(M, "startDate and endDate must be provided together")),
    };
    let agent_id = match (p.agent_scope.as_deref(), p.agent_id) {
        (Some("all"), Some(_)) => return Err(invalid(M, "agentScope=all cannot be combined with agentId")),
        (Some("all"), None) => None,
        (Some(other), _) => return Err(invalid(M, format!("agentScope: \"{other}\" is not all"))),
        (None, agent) => Some(agent.unwrap_or_else(|| pincer_cron::job::DEFAULT_AGENT.to_string())),
    };
    let rows = inner.store.read(move |rd| rd.usage_by_day(start, end + DAY_MS - 1, agent_id.as_deref())).await?;
    let daily: Vec<UsageTotals> = rows.iter().map(|u| totals(Some(u.label.clone()), u)).collect();
    let mut sum = ModelUsage::default();
    for u in &rows {
        sum.input += u.input;
        sum.output += u.output;
        sum.cache_read += u.cache_read;
        sum.cache_write += u.cache_write;
        sum.replies += u.replies;
    }
    Ok(UsageCostResult {
        updated_at: now,
        days: ((end - start) / DAY_MS + 1) as u32,
        daily,
        totals: totals(None, &sum),
        extra: Map::new(),
    })
}

fn totals(date: Option<String>, u: &ModelUsage) -> UsageTotals {
    let n = |v: i64| v.max(0) as u64;
    UsageTotals {
        date,
        input: n(u.input),
        output: n(u.output),
        cache_read: n(u.cache_read),
        cache_write: n(u.cache_write),
        total_tokens: n(u.input) + n(u.output) + n(u.cache_read) + n(u.cache_write),
        missing_cost_entries: n(u.replies),
        ..UsageTotals::default()
    }
}

/// The UTC start of `YYYY-MM-DD`, in ms.
fn day_start(date: &str) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}
