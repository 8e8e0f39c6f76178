//! The agent methods — `agent`, `sessions.list`, `chat.history` and `wake` — with OpenClaw's
//! param names and closed schemas: an OpenClaw field Pincer does not implement is refused by name
//! ("not supported by Pincer") rather than ignored. The gateway maps each method to one function.

use pincer_protocol::state::{ErrorClass, RunErrorReason};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use pincer_core::{EventBus, SharedClock};
use pincer_store::SessionRow;
use pincer_store::sessions::SessionFilter;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use pincer_cron::job::DEFAULT_AGENT;

use crate::prompt;
use crate::service::{Agents, Inner, SharedRun};
use crate::session::SessionRef;
use crate::turn::{Input, Turn};

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

/// Parses closed params; OpenClaw fields listed in `unsupported` are refused by name.
fn params<T: for<'de> Deserialize<'de>>(method: &str, v: &Value, unsupported: &[&str]) -> Result<T, ApiError> {
    let v = if v.is_null() { json!({}) } else { v.clone() };
    if v.is_array() {
        // serde would read a struct from a list of its fields.
        return Err(invalid(method, "invalid type: sequence, expected an object"));
    }
    if let Some(field) = v.as_object().and_then(|o| o.keys().find(|k| unsupported.contains(&k.as_str()))) {
        return Err(ApiError::Invalid(format!("invalid {method} params: {field}: not supported by Pincer")));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::Invalid(if path == "." {
            format!("invalid {method} params: {inner}")
        } else {
            format!("invalid {method} params: {path}: {inner}")
        })
    })
}

fn invalid(method: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid(format!("invalid {method} params: {message}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AgentParams {
    message: String,
    agent_id: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    /// `main` (default), `isolated`, `session:<id>`, or a full key.
    session_key: Option<String>,
    /// Only `false`: the reply comes back in the response.
    deliver: Option<bool>,
    /// Seconds; 0 = no limit.
    timeout: Option<u64>,
    extra_system_prompt: Option<String>,
    /// Doubles as the run id; a repeated call answers with the first call's result.
    idempotency_key: Option<String>,
}

const AGENT_UNSUPPORTED: &[&str] = &[
    "to",
    "replyTo",
    "sessionId",
    "expectedExistingSessionId",
    "thinking",
    "attachments",
    "channel",
    "replyChannel",
    "accountId",
    "replyAccountId",
    "threadId",
    "groupId",
    "groupChannel",
    "groupSpace",
    "bestEffortDeliver",
    "lane",
    "cwd",
    "cleanupBundleMcpOnRunEnd",
    "modelRun",
    "promptMode",
    "bootstrapContextMode",
    "bootstrapContextRunKind",
    "acpTurnSource",
    "internalRuntimeHandoffId",
    "internalExecutionIdentityRetry",
    "internalExecutionIdentityRecoveryAttempt",
    "execApprovalFollowupExpectedSessionId",
    "internalEvents",
    "inputProvenance",
    "suppressPromptPersistence",
    "sessionEffects",
    "sourceReplyDeliveryMode",
    "disableMessageTool",
    "swarmCollector",
    "swarmOutputSchema",
    "forceRestartSafeTools",
    "forceCodeModeTools",
    "voiceWakeTrigger",
    "label",
];

/// `agent`: runs one turn in a session (the main session by default), streaming `agent` events
/// (`stream: "lifecycle"` start, `"assistant"` deltas, `"lifecycle"` end or error) to
/// `operator.write` connections, and answers `{runId, status: "ok", sessionKey, text, model,
/// provider, usage}` once the reply is complete and recorded.
pub async fn agent(agents: &Agents, v: &Value) -> Result<Value, ApiError> {
    const M: &str = "agent";
    let p: AgentParams = params(M, v, AGENT_UNSUPPORTED)?;
    let message = p.message.trim().to_string();
    if message.is_empty() {
        return Err(invalid(M, "message: must not be empty"));
    }
    if p.deliver == Some(true) {
        return Err(invalid(
            M,
            "deliver: not supported by Pincer: the reply comes back in this response; to send results to a channel, use a cron job with --announce",
        ));
    }
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
    let run_id = p.idempotency_key.filter(|k| !k.trim().is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let session = SessionRef::from_request(p.session_key.as_deref(), p.agent_id.as_deref(), &run_id)
        .map_err(|e| invalid(M, e))?;
    let inner = agents.inner.clone();
    let chain = inner.chain(model.as_deref(), None).map_err(|e| match &model {
        Some(_) => invalid(M, format!("model: {e}")),
        None => ApiError::Failed { message: e, reason: ErrorClass::ModelNotFound.into(), run_id: run_id.clone() },
    })?;
    let now = inner.clock.now_ms();
    let deadline_ms = match p.timeout.unwrap_or(AGENT_TIMEOUT_S) {
        0 => None,
        secs => Some(now.saturating_add(secs.saturating_mul(1000).min(i64::MAX as u64) as i64)),
    };
    let turn = Turn {
        system: prompt::chat_system(now, &inner.default_tz, p.extra_system_prompt.as_deref()),
        input: Input::Message { text: message, meta: json!({"runId": run_id}) },
        chain,
        deadline_ms,
        run_id: run_id.clone(),
        kind: "chat",
        session,
    };
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

async fn chat_turn(inner: Arc<Inner>, turn: Turn) -> Result<Value, ApiError> {
    let (run_id, session_key) = (turn.run_id.clone(), turn.session.key.clone());
    let stream = AgentStream::new(&inner.events, &inner.clock, &run_id, &session_key);
    let started = inner.clock.now_ms();
    stream.emit("lifecycle", json!({"phase": "start", "startedAt": started}));
    let on_delta = |delta: &str| stream.delta(delta);
    match inner.run_turn(turn, &on_delta).await {
        Ok(Some(out)) => {
            let model = out.model.to_string();
            stream.emit(
                "lifecycle",
                json!({"phase": "end", "endedAt": inner.clock.now_ms(), "text": out.text, "model": model, "usage": out.usage}),
            );
            // OpenClaw's final shape (`summary`, `result.payloads`) is what `openclaw agent` prints;
            // the flat fields are Pincer's own. A silent reply has no payload.
            let payloads =
                if pincer_cron::scheduler::is_silent(&out.text) { json!([]) } else { json!([{"text": out.text}]) };
            let ended = inner.clock.now_ms();
            Ok(json!({
                "runId": run_id, "status": "ok", "summary": "completed", "sessionKey": session_key,
                "text": out.text, "model": model, "provider": out.model.provider, "usage": out.usage,
                "result": {"payloads": payloads, "meta": {"durationMs": ended.saturating_sub(started),
                    "agentMeta": {"sessionKey": session_key, "provider": out.model.provider, "model": out.model.model,
                        "usage": out.usage}}},
            }))
        }
        Ok(None) => {
            Err(ApiError::Failed { message: "nothing was recorded".into(), reason: ErrorClass::Unknown.into(), run_id })
        }
        Err(e) => {
            stream.emit(
                "lifecycle",
                json!({"phase": "error", "endedAt": inner.clock.now_ms(), "error": e.to_string(), "errorReason": e.reason()}),
            );
            Err(ApiError::Failed { message: e.to_string(), reason: e.reason(), run_id })
        }
    }
}

/// The `agent` events of one run, in OpenClaw's shape: `{runId, seq, stream, ts, sessionKey, data}`.
struct AgentStream<'a> {
    events: &'a EventBus,
    clock: &'a SharedClock,
    run_id: &'a str,
    session_key: &'a str,
    seq: AtomicU64,
    text: Mutex<String>,
}

impl<'a> AgentStream<'a> {
    fn new(events: &'a EventBus, clock: &'a SharedClock, run_id: &'a str, session_key: &'a str) -> AgentStream<'a> {
        AgentStream { events, clock, run_id, session_key, seq: AtomicU64::new(0), text: Mutex::default() }
    }

    fn emit(&self, stream: &str, data: Value) {
        let payload = json!({
            "runId": self.run_id, "seq": self.seq.fetch_add(1, Ordering::SeqCst), "stream": stream,
            "ts": self.clock.now_ms(), "sessionKey": self.session_key, "data": data,
        });
        self.events.emit("agent", payload, Some("operator.write"));
    }

    /// `data: {text (so far), delta}`.
    fn delta(&self, delta: &str) {
        let text = {
            let mut text = self.text.lock().expect("streamed text");
            text.push_str(delta);
            text.clone()
        };
        self.emit("assistant", json!({"text": text, "delta": delta}));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SessionsListParams {
    limit: Option<u32>,
    offset: Option<u32>,
    /// Pincer: `main`, `isolated` or `named`.
    kind: Option<String>,
    agent_id: Option<String>,
    exclude_cron: Option<bool>,
    /// Pincer has no global or unknown sessions, so these change nothing.
    include_global: Option<bool>,
    include_unknown: Option<bool>,
}

const SESSIONS_LIST_UNSUPPORTED: &[&str] = &[
    "activeMinutes",
    "activeOnly",
    "requireLastInteraction",
    "sortBy",
    "excludeSubagents",
    "excludeSystem",
    "configuredAgentsOnly",
    "includeDerivedTitles",
    "includeLastMessage",
    "includeActivitySummary",
    "label",
    "projectId",
    "workspaceDir",
    "group",
    "pinned",
    "boardFace",
    "hasBoard",
    "creatorId",
    "ownerId",
    "ownerFirst",
    "involvingMe",
    "profileRelation",
    "involvingProfileId",
    "includePeople",
    "spawnedBy",
    "search",
    "archived",
];

/// A session as clients see it.
pub fn session_view(row: &SessionRow) -> Value {
    let mut v = json!({
        "key": row.key,
        "agentId": row.agent_id,
        "kind": row.kind,
        "createdAt": row.created_at_ms,
        "updatedAt": row.updated_at_ms,
        "inputTokens": row.input_tokens,
        "outputTokens": row.output_tokens,
        "totalTokens": row.input_tokens + row.output_tokens,
        "messageCount": row.messages,
    });
    let o = v.as_object_mut().expect("object");
    let mut put = |k: &str, val: Option<Value>| {
        if let Some(val) = val {
            o.insert(k.into(), val);
        }
    };
    put("jobId", row.job_id.clone().map(Value::from));
    put("runId", row.run_id.clone().map(Value::from));
    put("finishedAt", row.finished_at_ms.map(Value::from));
    put("model", row.model.clone().map(Value::from));
    v
}

/// `sessions.list`: sessions, most recently updated first, paged.
pub async fn sessions_list(agents: &Agents, v: &Value) -> Result<Value, ApiError> {
    const M: &str = "sessions.list";
    let p: SessionsListParams = params(M, v, SESSIONS_LIST_UNSUPPORTED)?;
    let _ = (p.include_global, p.include_unknown);
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
    let filter = SessionFilter { kind: p.kind, agent_id: p.agent_id, exclude_isolated: p.exclude_cron == Some(true) };
    let (rows, total) = agents.inner.store.read(move |rd| rd.find_sessions(&filter, limit, offset)).await?;
    let next = offset as u64 + rows.len() as u64;
    let has_more = next < total;
    Ok(json!({
        "sessions": rows.iter().map(session_view).collect::<Vec<_>>(),
        "total": total, "offset": offset, "limit": limit, "hasMore": has_more,
        "nextOffset": if has_more { json!(next) } else { Value::Null },
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChatHistoryParams {
    session_key: String,
    agent_id: Option<String>,
    limit: Option<u32>,
    /// Pincer: page backwards from this entry (exclusive).
    before_seq: Option<i64>,
}

const CHAT_HISTORY_UNSUPPORTED: &[&str] =
    &["cursor", "maxBytes", "offset", "pendingBefore", "inputRunIds", "messageId", "sessionId", "maxChars"];

/// A session key as a reader gives it: the shorthands `main` and `session:<id>`, or any stored key.
fn read_key(method: &str, key: &str, agent_id: Option<&str>) -> Result<String, ApiError> {
    let key = key.trim();
    if key == "isolated" {
        return Err(invalid(method, "sessionKey: \"isolated\" names no session; give a key from sessions.list"));
    }
    if key == "main" || key.starts_with("session:") || agent_id.is_some() {
        return SessionRef::from_request(Some(key), agent_id, "").map(|s| s.key).map_err(|e| invalid(method, e));
    }
    Ok(key.to_string())
}

/// `chat.history`: a session's transcript, oldest first, the newest `limit` entries (before
/// `beforeSeq` when given).
pub async fn chat_history(agents: &Agents, v: &Value) -> Result<Value, ApiError> {
    const M: &str = "chat.history";
    let p: ChatHistoryParams = params(M, v, CHAT_HISTORY_UNSUPPORTED)?;
    if p.session_key.trim().is_empty() {
        return Err(invalid(M, "sessionKey: must not be empty"));
    }
    let limit = p.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(invalid(M, "limit: must be between 1 and 1000"));
    }
    let key = read_key(M, &p.session_key, p.agent_id.as_deref())?;
    let lookup = key.clone();
    let (session, mut rows) = agents
        .inner
        .store
        .read(move |rd| Ok((rd.get_session(&lookup)?, rd.transcript(&lookup, limit + 1, p.before_seq)?)))
        .await?;
    let Some(session) = session else {
        return Err(ApiError::NotFound(format!("session not found: {key}; list sessions with sessions.list")));
    };
    let has_more = rows.len() > limit as usize;
    if has_more {
        rows.remove(0);
    }
    let messages: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("seq".into(), json!(r.seq));
            m.insert("role".into(), json!(r.role));
            m.insert("content".into(), json!([{"type": "text", "text": r.content}]));
            m.insert("text".into(), json!(r.content));
            m.insert("timestamp".into(), json!(r.at_ms));
            if let Some(Value::Object(meta)) = r.meta_json.as_deref().and_then(|j| serde_json::from_str(j).ok()) {
                for (k, v) in meta.into_iter().filter(|(_, v)| !v.is_null()) {
                    m.entry(k).or_insert(v);
                }
            }
            Value::Object(m)
        })
        .collect();
    let mut result =
        json!({"sessionKey": key, "session": session_view(&session), "messages": messages, "hasMore": has_more});
    if has_more {
        result["nextBeforeSeq"] = json!(rows.first().map(|r| r.seq));
    }
    Ok(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsListParams {}

/// `agents.list`: the roster, in OpenClaw's shape. Pincer runs one agent, `main`, whose sessions
/// are shared by every client (`scope: "global"`), so `openclaw agent -m …` needs no `--agent`.
/// Other agent ids are namespaces of sessions (`agentId` on `agent` and `cron.add`), not
/// configured agents, and are not listed.
pub fn agents_list(agents: &Agents, v: &Value) -> Result<Value, ApiError> {
    let AgentsListParams {} = params("agents.list", v, &["includeSystem"])?;
    let model = &agents.inner.config.agents.defaults.model;
    let mut agent = json!({"id": DEFAULT_AGENT, "name": DEFAULT_AGENT, "kind": "agent"});
    if let Some(primary) = &model.primary {
        agent["model"] = json!({"primary": primary, "fallbacks": model.fallbacks});
    }
    Ok(json!({
        "defaultId": DEFAULT_AGENT, "ownership": "sole", "selectionRequired": false,
        "mainKey": "main", "scope": "global", "agents": [agent],
    }))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum WakeMode {
    Now,
    NextHeartbeat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WakeParams {
    mode: WakeMode,
    text: String,
    session_key: Option<String>,
    agent_id: Option<String>,
}

/// `wake`: queues a system event for a session (the agent's main session by default); `now`
/// also runs that session's turn at once, in the background. Answers `{ok, queued, sessionKey}`.
pub async fn wake(agents: &Agents, v: &Value) -> Result<Value, ApiError> {
    const M: &str = "wake";
    let p: WakeParams = params(M, v, &[])?;
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
    Ok(
        json!({"ok": true, "queued": true, "mode": if p.mode == WakeMode::Now { "now" } else { "next-heartbeat" }, "sessionKey": session.key}),
    )
}
