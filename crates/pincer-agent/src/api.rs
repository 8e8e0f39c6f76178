//! The agent methods — `agent`, `agents.list`, `sessions.list`, `chat.history` and `wake` — over
//! the typed wire schema (`pincer_protocol::schema::{agent, sessions}`, where an OpenClaw field
//! Pincer does not implement is refused by name). The gateway parses the params and maps each
//! method to one function here.

use pincer_protocol::state::{ErrorClass, HistoryDeltaKind, RunErrorReason};
use std::sync::Arc;

use futures_util::FutureExt;
use pincer_protocol::schema::agent::{
    self as wire, AgentAccepted, AgentIdentity, AgentIdentityParams, AgentMeta, AgentModel, AgentParams, AgentResult,
    AgentRunMeta, AgentRunResult, AgentSummary, AgentsListParams, AgentsListResult, ReplyPayload, WakeParams,
    WakeResult,
};
use pincer_protocol::schema::chat::{
    ChatStartup, ChatStartupParams, SessionsMessagesSubscribe, SessionsMessagesSubscribeParams,
};
use pincer_protocol::schema::cron::WakeMode;
use pincer_protocol::schema::sessions::{
    ArchivedFilter, ChatHistory, ChatHistoryAnswer, ChatHistoryDelta, ChatHistoryParams, ChatHistoryReset,
    ChatHistoryResult, ChatMessage, ContentPart, Session, SessionsDelete, SessionsDeleteParams, SessionsDeleteResult,
    SessionsList, SessionsListDefaults, SessionsListParams, SessionsListResult, TranscriptSummary,
};
use pincer_protocol::schema::{Method, ParamsError};
use pincer_store::SessionRow;
use pincer_store::sessions::SessionFilter;
use serde_json::{Map, Value, json};

use pincer_core::config::DmScope;
use pincer_cron::job::DEFAULT_AGENT;

use crate::chat::RunStream;
use crate::prompt;
use crate::service::{Agents, Inner, SharedRun};
use crate::session::SessionRef;
use crate::turn::{Input, Turn, TurnError};
pub use crate::turn::{ReplyOutbox, ReplySent};

/// An agent method's failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// Bad params (`INVALID_REQUEST`); the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The turn ran and failed, or no model can run it; `reason` is OpenClaw's error class.
    #[error("{message}")]
    Failed { message: String, reason: RunErrorReason, run_id: String },
    #[error("store: {0}")]
    Store(String),
}

impl From<pincer_store::StoreError> for ApiError {
    fn from(e: pincer_store::StoreError) -> ApiError {
        ApiError::Store(e.to_string())
    }
}

/// A run's default time limit for `agent` calls without `timeout`, as OpenClaw's.
pub const AGENT_TIMEOUT_S: u64 = 600;
/// `agent` results kept for repeated `idempotencyKey`s.
const REMEMBERED_RUNS: usize = 256;

pub(crate) fn invalid(method: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid(ParamsError::new(method, message).0)
}

/// `agent`: runs one turn in a session (the main session by default), streaming `agent` events
/// (`stream: "lifecycle"` start, `"assistant"` deltas, `"lifecycle"` end or error) to
/// `operator.write` connections, and answers `{runId, status: "ok", sessionKey, text, model,
/// provider, usage}` once the reply is complete and recorded.
///
/// Like OpenClaw, a valid call is first acknowledged: `on_accepted` gets `{runId, sessionKey,
/// agentId, status: "accepted", acceptedAt}` before the turn starts (the gateway sends it as an
/// interim answer; clients that wait for the final answer skip it).
/// The session an `agent` call names, as OpenClaw reads its params: `sessionKey`, else
/// `sessionId` (Pincer's session id is the session's key; a bare id is the named session
/// `session:<id>`), else a `to` shaped as an agent session key (`agent:<id>:…`), else the session
/// a DM from recipient `to` lands in under `session.dmScope` (as an inbound chat would).
fn request_session_key(
    key: Option<String>,
    session_id: Option<String>,
    to: Option<String>,
    channel: Option<&str>,
    dm_scope: DmScope,
) -> Result<Option<String>, String> {
    let nonblank = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (key, session_id, to) = (nonblank(key), nonblank(session_id), nonblank(to));
    if let (Some(k), Some(id)) = (&key, &session_id)
        && k != id
    {
        return Err(format!("sessionId \"{id}\" contradicts sessionKey \"{k}\"; pass one of them"));
    }
    if let Some(key) = key {
        return Ok(Some(key));
    }
    if let Some(id) = session_id {
        return Ok(Some(if id.starts_with("agent:") || id.starts_with("session:") || id == "main" {
            id
        } else {
            format!("session:{id}")
        }));
    }
    let channel = channel.map(str::trim).filter(|c| !c.is_empty() && *c != "last");
    match to {
        Some(to) if to.starts_with("agent:") => Ok(Some(to)),
        Some(to) => match (dm_scope, channel) {
            (DmScope::Main, _) => Ok(None),
            (DmScope::PerPeer, _) => Ok(Some(format!("session:direct:{to}"))),
            (DmScope::PerChannelPeer, Some(c)) => Ok(Some(format!("session:{c}:direct:{to}"))),
            (DmScope::PerChannelPeer, None) => Err(format!(
                "to: \"{to}\" needs its channel (session.dmScope is per-channel-peer): pass channel (--channel), \
                     or sessionKey"
            )),
        },
        None => Ok(None),
    }
}

/// Who a turn runs for, as OpenClaw's `senderIsOwner` decides which tools it gets: operator
/// clients (the CLI, the console), cron runs and the heartbeat act for the owner; a chat sender
/// does only when the channel names them its owner (`pincer_chat::access::is_owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    Owner,
    /// Not offered the owner-only tools (`pincer_tools::policy::OWNER_ONLY`: `cron`).
    NotOwner,
}

/// `agent`, for an operator client: the turn acts for the owner.
pub async fn agent(
    agents: &Agents,
    p: AgentParams,
    on_accepted: impl FnOnce(AgentAccepted) + Send,
) -> Result<AgentResult, ApiError> {
    agent_as(agents, p, Requester::Owner, on_accepted).await
}

/// `agent` for `requester`: a turn that is not the owner's is not offered the owner-only tools.
pub async fn agent_as(
    agents: &Agents,
    p: AgentParams,
    requester: Requester,
    on_accepted: impl FnOnce(AgentAccepted) + Send,
) -> Result<AgentResult, ApiError> {
    run_agent(agents, p, requester, None, on_accepted).await
}

/// `agent` with `deliver`, for an operator client: the final reply's outbox row (rendered by
/// `outbox`) commits in the same transaction as the reply, and the result's `delivery` says
/// what became of it (`{status: "queued", deliveryId}`, `"silent"`, or `"failed"` with `error`).
/// A run answered from its recorded reply (the same `idempotencyKey` again) has no `delivery`:
/// the caller enqueues it under the run's key, which finds the row committed with the reply.
pub async fn agent_delivering(
    agents: &Agents,
    p: AgentParams,
    outbox: Arc<dyn ReplyOutbox>,
    on_accepted: impl FnOnce(AgentAccepted) + Send,
) -> Result<AgentResult, ApiError> {
    run_agent(agents, p, Requester::Owner, Some(outbox), on_accepted).await
}

async fn run_agent(
    agents: &Agents,
    p: AgentParams,
    requester: Requester,
    reply_outbox: Option<Arc<dyn ReplyOutbox>>,
    on_accepted: impl FnOnce(AgentAccepted) + Send,
) -> Result<AgentResult, ApiError> {
    const M: &str = wire::Agent::NAME;
    let message = p.message.trim().to_string();
    if message.is_empty() {
        return Err(invalid(M, "message: must not be empty"));
    }
    // `deliver` and its routing fields are the gateway's: it sends the reply through the outbox.
    let model = match (p.provider.filter(|s| !s.is_empty()), p.model.filter(|s| !s.is_empty())) {
        (None, model) => model,
        (Some(provider), Some(model)) if !model.contains('/') => Some(format!("{provider}/{model}")),
        (Some(provider), Some(model)) if model.starts_with(&format!("{provider}/")) => Some(model),
        (Some(provider), Some(model)) => {
            return Err(invalid(
                M,
                format!("provider: \"{provider}\" contradicts model \"{model}\"; pass model alone"),
            ));
        }
        (Some(_), None) => return Err(invalid(M, "provider: needs model too (or pass model as provider/model)")),
    };
    let given = p.idempotency_key.filter(|k| !k.trim().is_empty());
    let replay = given.is_some();
    let run_id = given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // A session id names a transcript: a current one routes the turn to its session's key;
    // any other id is a session of its own (`session:<id>`), as before session ids existed.
    let by_id = match p.session_id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => {
            let id = id.to_string();
            agents.inner.store.read(move |rd| rd.session_by_id(&id)).await?.map(|row| row.key)
        }
        None => None,
    };
    let (key, session_id) = match (by_id, p.session_key) {
        (Some(found), None) => (Some(found), None),
        (Some(found), Some(given)) if found == given.trim() => (Some(found), None),
        (_, given) => (given, p.session_id),
    };
    let dm_scope = agents.inner.config().session.dm_scope;
    let session_key =
        request_session_key(key, session_id, p.to, p.channel.as_deref(), dm_scope).map_err(|e| invalid(M, e))?;
    let session =
        SessionRef::from_request(session_key.as_deref(), p.agent_id.as_deref(), &run_id).map_err(|e| invalid(M, e))?;
    let inner = agents.inner.clone();
    let chain = inner.session_chain(&session.key, model.as_deref()).await.map_err(|e| match &model {
        Some(_) => invalid(M, format!("model: {e}")),
        None => ApiError::Failed { message: e, reason: ErrorClass::ModelNotFound.into(), run_id: run_id.clone() },
    })?;
    let now = inner.clock.now_ms();
    let deadline_ms = match p.timeout.unwrap_or(AGENT_TIMEOUT_S) {
        0 => None,
        secs => Some(now.saturating_add(secs.saturating_mul(1000).min(i64::MAX as u64) as i64)),
    };
    let tools = match requester {
        Requester::Owner => inner.turn_tools(&[]),
        Requester::NotOwner => inner.turn_tools(&[]).without_owner_only(),
    };
    let turn = Turn {
        system: inner
            .compose_system(prompt::chat_system(now, &inner.default_tz, p.extra_system_prompt.as_deref()), &tools),
        tools,
        requester,
        input: Input::Message { text: message, meta: json!({"runId": run_id}), replay },
        chain,
        deadline_ms,
        run_id: run_id.clone(),
        kind: "chat",
        session,
        reply_outbox,
    };
    on_accepted(AgentAccepted {
        run_id: run_id.clone(),
        session_key: turn.session.key.clone(),
        agent_id: turn.session.agent_id.clone(),
        status: "accepted".into(),
        accepted_at: now,
    });
    let run = {
        let mut runs = inner.runs.lock().expect("agent runs");
        match runs.get(&run_id) {
            Some(run) => run.clone(),
            None => {
                if runs.len() >= REMEMBERED_RUNS {
                    runs.retain(|_, run| run.peek().is_none());
                }
                // A task of its own: the turn finishes and is recorded even if the caller leaves.
                let handle = tokio::spawn(chat_turn(inner.clone(), turn));
                let id = run_id.clone();
                let run: SharedRun = async move {
                    handle.await.unwrap_or_else(|e| {
                        Err(ApiError::Failed {
                            message: format!("the run stopped: {e}"),
                            reason: ErrorClass::Unknown.into(),
                            run_id: id,
                        })
                    })
                }
                .boxed()
                .shared();
                runs.insert(run_id, run.clone());
                run
            }
        }
    };
    run.await
}

async fn chat_turn(inner: Arc<Inner>, turn: Turn) -> Result<AgentResult, ApiError> {
    let (run_id, session_key) = (turn.run_id.clone(), turn.session.key.clone());
    let stream = RunStream::new(&inner.events, &inner.clock, &run_id, &session_key);
    let started = inner.clock.now_ms();
    if let Input::Message { .. } = &turn.input {
        stream.start();
    }
    let on_delta = |delta: &str| stream.delta(delta);
    let on_tool = |data: Value| stream.agent("tool", data);
    let on_recorded = |row: &pincer_store::TranscriptRow| stream.recorded(row);
    match inner.run_turn(turn, &on_delta, &on_tool, &on_recorded).await {
        Ok(Some(out)) => {
            let model = out.model.to_string();
            stream.end(&out.text, &model, out.usage);
            // OpenClaw's final shape (`summary`, `result.payloads`) is what `openclaw agent` prints;
            // the flat fields are Pincer's own. A silent reply has no payload.
            let payloads = if pincer_cron::scheduler::is_silent(&out.text) {
                vec![]
            } else {
                vec![ReplyPayload { text: out.text.clone() }]
            };
            let ended = inner.clock.now_ms();
            let mut extra = Map::new();
            match out.sent {
                Some(ReplySent::Queued { delivery_id }) => {
                    extra.insert("delivery".into(), json!({"status": "queued", "deliveryId": delivery_id}));
                }
                Some(ReplySent::Silent) => {
                    extra.insert("delivery".into(), json!({"status": "silent"}));
                }
                Some(ReplySent::Failed(error)) => {
                    extra.insert("delivery".into(), json!({"status": "failed", "error": error}));
                }
                None => {}
            }
            Ok(AgentResult {
                run_id,
                status: "ok".into(),
                summary: "completed".into(),
                session_key: session_key.clone(),
                text: out.text,
                model,
                provider: out.model.provider.clone(),
                usage: out.usage,
                result: AgentRunResult {
                    payloads,
                    meta: AgentRunMeta {
                        duration_ms: ended.saturating_sub(started),
                        agent_meta: AgentMeta {
                            session_key,
                            provider: out.model.provider.clone(),
                            model: out.model.model.clone(),
                            usage: out.usage,
                        },
                    },
                },
                extra,
            })
        }
        Ok(None) => {
            Err(ApiError::Failed { message: "nothing was recorded".into(), reason: ErrorClass::Unknown.into(), run_id })
        }
        Err(e) => {
            let class = match &e {
                TurnError::Model { error, .. } => error.class,
                TurnError::NoModel(_) => ErrorClass::ModelNotFound,
                TurnError::ToolSteps { .. } | TurnError::Store(_) => ErrorClass::Unknown,
            };
            stream.fail(&e.to_string(), class);
            Err(ApiError::Failed { message: e.to_string(), reason: e.reason(), run_id })
        }
    }
}

/// A session as clients see it.
pub fn session_view(row: &SessionRow) -> Session {
    Session {
        key: row.key.clone(),
        agent_id: row.agent_id.clone(),
        kind: row.kind.clone(),
        created_at: row.created_at_ms,
        updated_at: row.updated_at_ms,
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        total_tokens: row.input_tokens + row.output_tokens,
        message_count: row.messages,
        session_id: row.session_id.clone(),
        is_main: row.kind == "main",
        job_id: row.job_id.clone(),
        run_id: row.run_id.clone(),
        finished_at: row.finished_at_ms,
        model: row.model.clone(),
        label: row.label.clone(),
        display_name: row.label.clone(),
        model_override: row.model_override.as_deref().map(|m| m.split_once('/').map_or(m, |(_, m)| m).to_string()),
        provider_override: row.model_override.as_deref().and_then(|m| m.split_once('/')).map(|(p, _)| p.to_string()),
        archived_at: row.archived_at_ms,
        archive_reason: row.archive_reason.clone(),
        previous_session_id: row.previous_session_id.clone(),
        extra: Map::new(),
    }
}

/// The session as it was while `a` was its transcript: that transcript's id, counts and
/// predecessor, updated when it was replaced.
pub fn archived_view(row: &SessionRow, a: &pincer_store::ArchivedSession) -> Session {
    let mut session = session_view(row);
    session.session_id = a.session_id.clone();
    session.updated_at = a.archived_at_ms;
    session.input_tokens = a.input_tokens;
    session.output_tokens = a.output_tokens;
    session.total_tokens = a.input_tokens + a.output_tokens;
    session.message_count = a.messages;
    session.previous_session_id = a.previous_session_id.clone();
    session.extra.insert("transcriptArchivedAt".into(), a.archived_at_ms.into());
    session.extra.insert("transcriptArchiveReason".into(), a.reason.clone().into());
    session
}

/// `sessions.describe`'s `previousTranscripts` entry for one replaced transcript.
pub fn transcript_summary(a: &pincer_store::ArchivedSession) -> TranscriptSummary {
    TranscriptSummary {
        session_id: a.session_id.clone(),
        reason: a.reason.clone(),
        started_at: a.started_at_ms,
        archived_at: a.archived_at_ms,
        message_count: a.messages,
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
        extra: Map::new(),
    }
}

/// OpenClaw's answer to a `sessionId` that is not a transcript of the session.
pub(crate) fn foreign_transcript(key: &str, id: &str) -> ApiError {
    ApiError::Invalid(format!(
        "sessionId does not belong to sessionKey: {id} is not a transcript of {key} \
         (sessions.describe lists its previousTranscripts)"
    ))
}

/// `sessions.list`: sessions, most recently updated first, paged.
pub async fn sessions_list(agents: &Agents, p: SessionsListParams) -> Result<SessionsListResult, ApiError> {
    const M: &str = SessionsList::NAME;
    // No session spawns another, so a list of children is empty whatever its page size (the
    // Control UI asks for up to 10,000).
    if p.spawned_by.is_some() {
        return Ok(empty_page(agents, p.offset.unwrap_or(0), p.limit.unwrap_or(50).min(1000)));
    }
    let limit = p.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(invalid(M, "limit: must be between 1 and 1000"));
    }
    let offset = p.offset.unwrap_or(0);
    if let Some(kind) = &p.kind
        && !["main", "isolated", "named"].contains(&kind.as_str())
    {
        return Err(invalid(M, format!("kind: \"{kind}\" is not main, isolated or named")));
    }
    // `configuredAgentsOnly`: Pincer's one configured agent is `main`; other agent ids are
    // namespaces of sessions.
    let agent_id = match (p.agent_id, p.configured_agents_only) {
        (Some(a), Some(true)) if a != DEFAULT_AGENT => return Ok(empty_page(agents, offset, limit)),
        (None, Some(true)) => Some(DEFAULT_AGENT.to_string()),
        (a, _) => a,
    };
    let archived = match p.archived {
        None => Some(false),
        Some(ArchivedFilter::Flag(flag)) => Some(flag),
        Some(ArchivedFilter::All(_)) => None,
    };
    match p.sort_by.as_deref() {
        None | Some("updatedAt") | Some("activity") => {}
        Some("lastInteractionAt") => {
            return Err(invalid(
                M,
                "sortBy: \"lastInteractionAt\" is not supported by Pincer (it records no interaction time apart from updates); use updatedAt",
            ));
        }
        Some(other) => return Err(invalid(M, format!("sortBy: \"{other}\" is not updatedAt or activity"))),
    }
    let updated_since_ms = match p.active_minutes {
        Some(0) => return Err(invalid(M, "activeMinutes: must be at least 1")),
        Some(minutes) => Some(agents.inner.clock.now_ms() - i64::from(minutes) * 60_000),
        None => None,
    };
    let (last, titles) = (p.include_last_message == Some(true), p.include_derived_titles == Some(true));
    let filter = SessionFilter {
        kind: p.kind,
        agent_id,
        exclude_isolated: p.exclude_cron == Some(true),
        updated_since_ms,
        archived,
    };
    let (rows, total, previews) = agents
        .inner
        .store
        .read(move |rd| {
            let (rows, total) = rd.find_sessions(&filter, limit, offset)?;
            let mut previews = Vec::with_capacity(rows.len());
            for row in &rows {
                let last = if last { rd.transcript_text(&row.key, &["user", "assistant"], true)? } else { None };
                let title = if titles { rd.transcript_text(&row.key, &["user"], false)? } else { None };
                previews.push((last, title));
            }
            Ok((rows, total, previews))
        })
        .await?;
    let next = offset as u64 + rows.len() as u64;
    let has_more = next < total;
    let sessions =
        rows.iter().zip(previews).map(|(row, (last, title))| with_previews(session_view(row), last, title)).collect();
    let mut extra = Map::new();
    if p.include_people == Some(true) {
        extra.insert("people".into(), json!([]));
        extra.insert("peopleIncomplete".into(), json!(false));
        extra.insert("peopleSessionCount".into(), json!(total));
    }
    Ok(SessionsListResult {
        sessions,
        total,
        offset,
        limit,
        has_more,
        next_offset: has_more.then_some(next),
        defaults: list_defaults(agents),
        extra,
    })
}

/// `sessions.list`'s `defaults`: the agent's primary model, `provider/model` split in two.
fn list_defaults(agents: &Agents) -> SessionsListDefaults {
    let primary = agents.inner.config().agents.defaults.model.primary.clone();
    let (model_provider, model) = match primary.as_deref().and_then(|m| m.split_once('/')) {
        Some((provider, model)) => (Some(provider.to_string()), Some(model.to_string())),
        None => (None, primary),
    };
    SessionsListDefaults { model_provider, model, context_tokens: None, extra: Map::new() }
}

/// `session` with the display hints `lastMessagePreview` and `derivedTitle`, when asked for.
pub(crate) fn with_previews(mut session: Session, last: Option<String>, title: Option<String>) -> Session {
    if let Some(text) = last {
        session.extra.insert("lastMessagePreview".into(), Value::String(preview(&text, 160)));
    }
    if let Some(text) = title {
        session.extra.insert("derivedTitle".into(), Value::String(preview(&text, 60)));
    }
    session
}

fn empty_page(agents: &Agents, offset: u32, limit: u32) -> SessionsListResult {
    SessionsListResult {
        sessions: vec![],
        total: 0,
        offset,
        limit,
        has_more: false,
        next_offset: None,
        defaults: list_defaults(agents),
        extra: Map::new(),
    }
}

/// The first line of `text`, at most `max` characters, with `…` when cut.
fn preview(text: &str, max: usize) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// `sessions.delete`: deletes a session, its transcript and its queued events, then emits
/// `sessions.changed` (`reason: "delete"`). A missing session answers `deleted: false`, as
/// OpenClaw does; the main session is refused.
pub async fn sessions_delete(agents: &Agents, p: SessionsDeleteParams) -> Result<SessionsDeleteResult, ApiError> {
    const M: &str = SessionsDelete::NAME;
    if p.key.trim().is_empty() {
        return Err(invalid(M, "key: must not be empty"));
    }
    if p.delete_transcript == Some(false) {
        return Err(invalid(
            M,
            "deleteTranscript: false is not supported: a Pincer transcript lives inside its session; omit it",
        ));
    }
    let key = read_key(M, &p.key, p.agent_id.as_deref())?;
    if SessionRef::from_key(&key).is_some_and(|s| s.kind == crate::session::SessionKind::Main) {
        return Err(ApiError::Invalid(format!(
            "Cannot delete the main session ({key}); delete a named or isolated session instead"
        )));
    }
    let lookup = key.clone();
    let Some(row) = agents.inner.store.read(move |rd| rd.get_session(&lookup)).await? else {
        return Ok(SessionsDeleteResult { ok: true, key, deleted: false, archived: vec![], extra: Map::new() });
    };
    if let Some(expected) = &p.expected_session_id
        && *expected != row.session_id
    {
        return Err(ApiError::Invalid(format!(
            "Session {key} is now session id {}: it changed before deletion. Retry.",
            row.session_id
        )));
    }
    if p.archived_only == Some(true) && row.archived_at_ms.is_none() {
        return Err(ApiError::Invalid(format!(
            "Session {key} is not archived: archive it first (`openclaw sessions archive {key}`) or omit archivedOnly"
        )));
    }
    // Not while a turn writes into it: the turn holds the session's lock.
    let _turn = agents.inner.lock_session(&key).await;
    let target = key.clone();
    let deleted = agents.inner.store.write(move |tx| tx.delete_session(&target)).await?;
    if deleted {
        agents.inner.events.emit(
            "sessions.changed",
            json!({"sessionKey": key, "sessionId": row.session_id, "agentId": row.agent_id, "reason": "delete"}),
            Some("operator.read"),
        );
    }
    Ok(SessionsDeleteResult { ok: true, key, deleted, archived: vec![], extra: Map::new() })
}

/// `agent.identity.get`: the agent of `agentId`, of `sessionKey`'s owner, or `main`.
pub fn agent_identity(p: AgentIdentityParams) -> Result<AgentIdentity, ApiError> {
    const M: &str = wire::AgentIdentityGet::NAME;
    let from_key = match p.session_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some("main") => Some(DEFAULT_AGENT.to_string()),
        Some(key) => match SessionRef::from_key(key) {
            Some(session) => Some(session.agent_id),
            None => return Err(invalid(M, format!("malformed session key \"{key}\""))),
        },
    };
    let agent_id = match (p.agent_id, from_key) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(M, format!("agentId \"{a}\" does not own session key agent \"{b}\"")));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => DEFAULT_AGENT.to_string(),
    };
    if agent_id != DEFAULT_AGENT {
        return Err(invalid(M, format!("unknown agent id \"{agent_id}\": Pincer's agent is \"{DEFAULT_AGENT}\"")));
    }
    Ok(AgentIdentity {
        name: agent_id.clone(),
        agent_id,
        name_source: "default".into(),
        avatar_status: "none".into(),
        extra: Map::new(),
    })
}

/// A session key as a reader gives it: the shorthands `main` and `session:<id>`, or any stored key.
pub(crate) fn read_key(method: &str, key: &str, agent_id: Option<&str>) -> Result<String, ApiError> {
    let key = key.trim();
    if key == "isolated" {
        return Err(invalid(method, "sessionKey: \"isolated\" names no session; give a key from sessions.list"));
    }
    if key == "main" || key.starts_with("session:") || agent_id.is_some() {
        return SessionRef::from_request(Some(key), agent_id, "").map(|s| s.key).map_err(|e| invalid(method, e));
    }
    Ok(key.to_string())
}

/// The most entries a `cursor` catch-up answers with (OpenClaw's); more is a reset.
pub const HISTORY_DELTA_MAX: u32 = 200;

/// `chat.history`: a session's transcript, oldest first, the newest `limit` entries (before
/// `beforeSeq` when given), with the `deltaCursor` of its end. With `cursor` (a `deltaCursor`),
/// the entries added since, or `kind: "reset"` when the cursor is not a point of this transcript
/// (the session was reset, or deleted and made again) or more than [`HISTORY_DELTA_MAX`] came after it.
/// With `sessionId`, the same for that transcript of the session: its current one or one
/// `/new`, `/reset` or `sessions.reset` replaced (an archived one never grows, so a catch-up on
/// it is empty); any other id is OpenClaw's "sessionId does not belong to sessionKey".
pub async fn chat_history(agents: &Agents, p: ChatHistoryParams) -> Result<ChatHistoryAnswer, ApiError> {
    history(agents, ChatHistory::NAME, p).await
}

/// `chat.startup`: `chat.history` under the name a chat view opens with.
pub async fn chat_startup(agents: &Agents, p: ChatStartupParams) -> Result<ChatHistoryAnswer, ApiError> {
    history(agents, ChatStartup::NAME, p.0).await
}

/// A session's full key as `sessions.messages.subscribe` names it.
pub fn subscription_key(p: &SessionsMessagesSubscribeParams) -> Result<String, ApiError> {
    const M: &str = SessionsMessagesSubscribe::NAME;
    if p.key.trim().is_empty() {
        return Err(invalid(M, "key: must not be empty"));
    }
    read_key(M, &p.key, p.agent_id.as_deref())
}

/// A cursor: the session id and the seq of the last entry the client has, so a session reset
/// (`/new`) or deleted and made again under the same key never matches an old cursor.
fn cursor_of(transcript_id: &str, seq: i64) -> String {
    format!("{transcript_id}:{seq}")
}

/// Which transcript of a session a read names: the current one, or one it pointed at before.
enum Picked {
    NoSession,
    /// `sessionId` is neither the current transcript nor one the key pointed at before.
    Unknown,
    Found(Box<SessionRow>, Option<pincer_store::ArchivedSession>),
}

impl Picked {
    fn read(rd: &pincer_store::Rd<'_>, key: &str, wanted: Option<&str>) -> pincer_store::Result<Picked> {
        let Some(session) = rd.get_session(key)? else { return Ok(Picked::NoSession) };
        let archived = match wanted {
            Some(id) if id != session.session_id => match rd.archived_session(key, id)? {
                Some(a) => Some(a),
                None => return Ok(Picked::Unknown),
            },
            _ => None,
        };
        Ok(Picked::Found(Box::new(session), archived))
    }
}

/// The transcript id, the session as that transcript shows it, and the last seq a cursor may
/// name (for the current transcript, the key's last: seqs run on across transcripts).
fn picked_view(
    rd: &pincer_store::Rd<'_>,
    session: &SessionRow,
    archived: Option<&pincer_store::ArchivedSession>,
) -> pincer_store::Result<(String, Session, i64)> {
    Ok(match archived {
        Some(a) => {
            (a.session_id.clone(), archived_view(session, a), rd.transcript_last_seq_of(&session.key, &a.session_id)?)
        }
        None => (session.session_id.clone(), session_view(session), rd.transcript_last_seq(&session.key)?),
    })
}

async fn history(agents: &Agents, method: &'static str, p: ChatHistoryParams) -> Result<ChatHistoryAnswer, ApiError> {
    if p.session_key.trim().is_empty() {
        return Err(invalid(method, "sessionKey: must not be empty"));
    }
    let limit = p.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(invalid(method, "limit: must be between 1 and 1000"));
    }
    let wanted = match p.session_id.as_deref().map(str::trim) {
        Some("") => return Err(invalid(method, "sessionId: must not be empty")),
        other => other.map(str::to_string),
    };
    let key = read_key(method, &p.session_key, p.agent_id.as_deref())?;
    let receipts = input_receipts(method, p.input_run_ids.as_deref())?;
    if let Some(cursor) = p.cursor {
        if p.before_seq.is_some() {
            return Err(invalid(method, "cursor: cannot be used with beforeSeq"));
        }
        let Some((id, seq)) =
            cursor.rsplit_once(':').and_then(|(id, s)| Some((id.to_string(), s.parse::<i64>().ok()?)))
        else {
            return Err(invalid(method, format!("cursor: \"{cursor}\" is not a deltaCursor from chat.history")));
        };
        let lookup = key.clone();
        let max = limit.min(HISTORY_DELTA_MAX);
        let read = agents
            .inner
            .store
            .read(move |rd| match Picked::read(rd, &lookup, wanted.as_deref())? {
                Picked::NoSession => Ok(Err(false)),
                Picked::Unknown => Ok(Err(true)),
                Picked::Found(session, archived) => {
                    let (tid, view, last) = picked_view(rd, &session, archived.as_ref())?;
                    let rows = if tid == id && seq <= last {
                        Some(rd.transcript_after_of(&lookup, &tid, seq, max + 1)?)
                    } else {
                        None
                    };
                    Ok(Ok((tid, view, rows)))
                }
            })
            .await?;
        let (tid, view, rows) = match read {
            Ok(found) => found,
            Err(true) => return Err(foreign_transcript(&key, p.session_id.as_deref().unwrap_or_default())),
            Err(false) => return Ok(ChatHistoryAnswer::Reset(ChatHistoryReset { kind: HistoryDeltaKind::Reset })),
        };
        let Some(rows) = rows else {
            return Ok(ChatHistoryAnswer::Reset(ChatHistoryReset { kind: HistoryDeltaKind::Reset }));
        };
        if rows.len() > max as usize {
            return Ok(ChatHistoryAnswer::Reset(ChatHistoryReset { kind: HistoryDeltaKind::Reset }));
        }
        let messages: Vec<ChatMessage> = rows.iter().map(message_view).collect();
        if p.max_bytes.is_some_and(|budget| within_budget(&messages, budget) < messages.len()) {
            return Ok(ChatHistoryAnswer::Reset(ChatHistoryReset { kind: HistoryDeltaKind::Reset }));
        }
        let last = rows.last().map_or(seq, |r| r.seq);
        return Ok(ChatHistoryAnswer::Delta(ChatHistoryDelta {
            kind: HistoryDeltaKind::Delta,
            messages,
            delta_cursor: cursor_of(&tid, last),
            session_info: view,
            extra: receipts,
        }));
    }
    // An agent's main session exists before its first turn, as in OpenClaw: a chat view opening
    // on a fresh install (`openclaw tui`, the Control UI) gets an empty transcript, not an error.
    if let Some(main) = SessionRef::from_key(&key).filter(|s| s.kind == crate::session::SessionKind::Main) {
        let lookup = key.clone();
        if agents.inner.store.read(move |rd| rd.get_session(&lookup)).await?.is_none() {
            let now = agents.inner.clock.now_ms();
            let made = move |tx: &pincer_store::Tx<'_>| {
                tx.ensure_session(&main.key, &main.agent_id, main.kind.as_str(), None, None, now).map(drop)
            };
            agents.inner.store.write(made).await?;
        }
    }
    let lookup = key.clone();
    let asked = wanted.clone();
    let read = agents
        .inner
        .store
        .read(move |rd| match Picked::read(rd, &lookup, asked.as_deref())? {
            Picked::NoSession => Ok(Err(false)),
            Picked::Unknown => Ok(Err(true)),
            Picked::Found(session, archived) => {
                let (tid, view, last) = picked_view(rd, &session, archived.as_ref())?;
                let rows = rd.transcript_of(&lookup, &tid, limit + 1, p.before_seq)?;
                Ok(Ok((tid, view, rows, last)))
            }
        })
        .await?;
    let (tid, view, mut rows, last_seq) = match read {
        Ok(found) => found,
        Err(true) => return Err(foreign_transcript(&key, wanted.as_deref().unwrap_or_default())),
        Err(false) => {
            return Err(ApiError::NotFound(format!("session not found: {key}; list sessions with sessions.list")));
        }
    };
    let mut has_more = rows.len() > limit as usize;
    if has_more {
        rows.remove(0);
    }
    let mut messages: Vec<ChatMessage> = rows.iter().map(message_view).collect();
    if let Some(budget) = p.max_bytes {
        let keep = within_budget(&messages, budget);
        if keep < messages.len() {
            messages.drain(..messages.len() - keep);
            has_more = true;
        }
    }
    Ok(ChatHistoryAnswer::Page(ChatHistoryResult {
        session_key: key,
        session: view,
        next_before_seq: if has_more { messages.first().map(|m| m.seq) } else { None },
        delta_cursor: cursor_of(&tid, last_seq),
        messages,
        has_more,
        extra: receipts,
    }))
}

/// The answer to `inputRunIds` (OpenClaw's receipts for inputs queued beside a running turn):
/// Pincer queues no inputs — each `chat.send` message is recorded before its turn starts — so
/// there are none to report. Checked as OpenClaw checks it: 1–50 distinct ids of 1–256 chars.
fn input_receipts(method: &str, run_ids: Option<&[String]>) -> Result<Map<String, Value>, ApiError> {
    let Some(ids) = run_ids else { return Ok(Map::new()) };
    if !(1..=50).contains(&ids.len()) {
        return Err(invalid(method, "inputRunIds: give between 1 and 50 run ids"));
    }
    if let Some(bad) = ids.iter().find(|id| id.is_empty() || id.chars().count() > 256) {
        return Err(invalid(method, format!("inputRunIds: \"{bad}\" is not a run id (1 to 256 characters)")));
    }
    if ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id)) {
        return Err(invalid(method, "inputRunIds: each run id at most once"));
    }
    Ok(Map::from_iter([
        ("inputReceipts".to_string(), Value::Array(vec![])),
        ("inputConsumptions".to_string(), Value::Array(vec![])),
    ]))
}

/// How many of the newest `messages` fit in `budget` bytes of JSON — at least one, so a single
/// entry larger than the budget still shows.
fn within_budget(messages: &[ChatMessage], budget: u64) -> usize {
    let mut used = 0u64;
    let mut keep = 0;
    for m in messages.iter().rev() {
        used += serde_json::to_vec(m).map_or(0, |j| j.len() as u64);
        if used > budget && keep > 0 {
            break;
        }
        keep += 1;
    }
    keep
}

/// One transcript entry as clients see it, with OpenClaw's `__openclaw` identity beside Pincer's
/// fields: `seq` (the entry's place in the session, from 1), `runId`, and for a user message its
/// run's `idempotencyKey` as OpenClaw writes it (`<runId>:user`). OpenClaw's Control UI knows an
/// entry by these: it confirms its `chat.send` by finding that key, and merges a run's streamed
/// reply with the recorded one by `runId`.
pub(crate) fn message_view(r: &pincer_store::TranscriptRow) -> ChatMessage {
    let mut meta = Map::new();
    if let Some(Value::Object(m)) = r.meta_json.as_deref().and_then(|j| serde_json::from_str(j).ok()) {
        const OWN: &[&str] = &["seq", "role", "content", "text", "timestamp", "__openclaw"];
        meta.extend(m.into_iter().filter(|(k, v)| !v.is_null() && !OWN.contains(&k.as_str())));
    }
    let mut openclaw = Map::from_iter([("seq".to_string(), Value::from(r.seq))]);
    if let Some(run_id) = meta.get("runId").and_then(Value::as_str) {
        openclaw.insert("runId".into(), run_id.into());
        if r.role == "user" {
            openclaw.insert("idempotencyKey".into(), format!("{run_id}:user").into());
        }
    }
    meta.insert("__openclaw".into(), Value::Object(openclaw));
    ChatMessage {
        seq: r.seq,
        role: r.role.clone(),
        content: vec![ContentPart { kind: "text".into(), text: r.content.clone() }],
        text: r.content.clone(),
        timestamp: r.at_ms,
        meta,
    }
}

/// Which agent and session a client opens when it names none, as OpenClaw's `hello-ok`
/// `snapshot.sessionDefaults` says it: Pincer runs one agent, `main` (`ownership: "sole"`, so
/// `openclaw agent -m …` needs no `--agent`), whose main session is `agent:main:main` — OpenClaw's
/// `per-sender` scope, under which chat senders get sessions of their own (`session.dmScope`).
/// Under `global`, OpenClaw's Control UI would chat in a session keyed `global` and drop the
/// `chat` events of `agent:main:main`.
pub fn session_defaults(agents: &Agents) -> pincer_protocol::SessionDefaults {
    pincer_protocol::SessionDefaults {
        default_agent_id: DEFAULT_AGENT.into(),
        model_configured: agents.inner.config().agents.defaults.model.primary.is_some(),
        ownership: "sole".into(),
        selection_required: false,
        main_key: crate::session::MAIN_KEY.into(),
        main_session_key: SessionRef::main(DEFAULT_AGENT).key,
        scope: pincer_protocol::SessionScope::PerSender,
    }
}

/// `agents.list`: the roster, in OpenClaw's shape, headed by [`session_defaults`]. Other agent
/// ids are namespaces of sessions (`agentId` on `agent` and `cron.add`), not configured agents,
/// and are not listed.
pub fn agents_list(agents: &Agents, _: AgentsListParams) -> Result<AgentsListResult, ApiError> {
    let config = agents.inner.config();
    let model = &config.agents.defaults.model;
    let agent = AgentSummary {
        id: DEFAULT_AGENT.into(),
        name: DEFAULT_AGENT.into(),
        kind: "agent".into(),
        model: model
            .primary
            .as_ref()
            .map(|primary| AgentModel { primary: primary.clone(), fallbacks: model.fallbacks.clone() }),
    };
    let defaults = session_defaults(agents);
    Ok(AgentsListResult {
        default_id: defaults.default_agent_id,
        ownership: defaults.ownership,
        selection_required: defaults.selection_required,
        main_key: defaults.main_key,
        scope: defaults.scope,
        agents: vec![agent],
        extra: Map::new(),
    })
}

/// `wake`: queues a system event for a session (the agent's main session by default); `now`
/// also runs that session's turn at once, in the background. Answers `{ok, queued, sessionKey}`.
pub async fn wake(agents: &Agents, p: WakeParams) -> Result<WakeResult, ApiError> {
    const M: &str = wire::Wake::NAME;
    let text = p.text.trim();
    if text.is_empty() {
        return Err(invalid(M, "text: must not be empty"));
    }
    let session =
        SessionRef::from_request(p.session_key.as_deref(), p.agent_id.as_deref(), "").map_err(|e| invalid(M, e))?;
    if session.kind == crate::session::SessionKind::Isolated {
        return Err(invalid(M, "sessionKey: an isolated run's session takes no events; wake main or session:<id>"));
    }
    agents.wake(&session, text, Some("wake"), p.mode == WakeMode::Now).await?;
    Ok(WakeResult { ok: true, queued: true, mode: p.mode, session_key: session.key, extra: Map::new() })
}
