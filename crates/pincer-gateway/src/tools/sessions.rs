//! `sessions_list`, `sessions_history` and `sessions_send`: OpenClaw's session tools over the
//! store's sessions and transcripts and the `agent` method's turn.
//!
//! Pincer sessions have no labels, so `label` is refused with what to give instead; a
//! `sessions_send` reply comes back in the tool's result (OpenClaw's inline reply) — it is not
//! also announced to the target session's chat.

use pincer_agent::SessionRef;
use pincer_agent::api::{self as agent_api, ApiError, Requester};
use pincer_agent::session::TOOL_RESULT_ROLE;
use pincer_protocol::schema::agent::AgentParams;
use pincer_protocol::schema::sessions::{ChatHistoryAnswer, ChatHistoryParams, ChatMessage};
use pincer_store::SessionRow;
use pincer_store::sessions::SessionFilter;
use pincer_tools::tool::{BoxFuture, opt_str_arg, opt_u64_arg, str_arg};
use pincer_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec};
use serde_json::{Value, json};

use super::{Binding, json_output, known_args, last_route, opt_bool, parse};
use crate::AppState;

/// OpenClaw's kinds of session, as `sessions_list` classifies them.
const KINDS: &[&str] = &["main", "group", "cron", "hook", "node", "other"];
/// Sessions `sessions_list` reads before filtering (the most recently updated).
const LIST_SCAN: u32 = 1000;
const LIST_DEFAULT: u64 = 50;
/// OpenClaw's caps: messages per session in `sessions_list`, characters per message and bytes
/// per answer in `sessions_history`.
const MESSAGE_LIMIT_MAX: u64 = 20;
const HISTORY_TEXT_MAX_CHARS: usize = 4000;
const HISTORY_MAX_BYTES: usize = 80 * 1024;
const HISTORY_DEFAULT: u64 = 50;
/// `sessions_send` waits this long for the reply unless told otherwise (0: do not wait).
const SEND_TIMEOUT_S: u64 = 30;

fn invalid(tool: &str, message: impl std::fmt::Display) -> ToolError {
    ToolError::InvalidArguments(format!("{tool}: {message}"))
}

fn api_error(tool: &str, e: ApiError) -> ToolError {
    match e {
        ApiError::Invalid(m) => invalid(tool, m),
        ApiError::NotFound(m) => invalid(tool, format!("{m} (sessions_list shows them)")),
        e => ToolError::Failed(format!("{tool}: {e}")),
    }
}

fn no_labels(tool: &str) -> ToolError {
    invalid(tool, "Pincer sessions have no labels; give `sessionKey` (sessions_list shows the keys)")
}

fn store_error(tool: &str, e: pincer_store::StoreError) -> ToolError {
    ToolError::Failed(format!("{tool}: cannot read the sessions: {e}"))
}

/// OpenClaw's `classifySessionKind`, over Pincer's keys.
fn classify(row: &SessionRow) -> &'static str {
    if row.kind == "main" {
        "main"
    } else if row.key.contains(":group:") || row.key.contains(":channel:") {
        "group"
    } else if row.job_id.is_some() || row.key.contains(":cron:") {
        "cron"
    } else {
        "other"
    }
}

/// A transcript entry as the session tools show it: text capped, tool plumbing only on request.
fn message_row(m: &ChatMessage) -> Value {
    let text = match m.text.char_indices().nth(HISTORY_TEXT_MAX_CHARS) {
        Some((cut, _)) => format!("{}\n…(truncated)…", &m.text[..cut]),
        None => m.text.clone(),
    };
    let mut row = json!({"seq": m.seq, "role": m.role, "text": text, "timestamp": m.timestamp});
    for key in ["toolCalls", "toolName", "isError"] {
        if let Some(v) = m.meta.get(key) {
            row[key] = v.clone();
        }
    }
    row
}

/// Tool results, and assistant entries that only call tools, are plumbing.
fn is_tool_message(m: &ChatMessage) -> bool {
    m.role == TOOL_RESULT_ROLE
        || (m.role == "assistant" && m.text.trim().is_empty() && m.meta.contains_key("toolCalls"))
}

/// The newest `limit` entries of a session, oldest first.
async fn recent(
    state: &AppState,
    tool: &str,
    key: &str,
    limit: u64,
    include_tools: bool,
) -> Result<(String, Vec<ChatMessage>), ToolError> {
    // Read more than asked when tool plumbing is dropped, so `limit` counts the messages shown.
    let read = if include_tools { limit } else { (limit * 3).min(1000) };
    let p = ChatHistoryParams {
        max_bytes: None,
        session_key: key.to_string(),
        agent_id: None,
        limit: Some(read.clamp(1, 1000) as u32),
        before_seq: None,
        cursor: None,
        input_run_ids: None,
        session_id: None,
    };
    let ChatHistoryAnswer::Page(page) =
        agent_api::chat_history(&state.agents, p).await.map_err(|e| api_error(tool, e))?
    else {
        return Err(ToolError::Failed(format!("{tool}: the history came back in an unexpected shape")));
    };
    let mut messages: Vec<ChatMessage> =
        page.messages.into_iter().filter(|m| include_tools || !is_tool_message(m)).collect();
    let skip = messages.len().saturating_sub(limit as usize);
    messages.drain(..skip);
    Ok((page.session_key, messages))
}

pub struct SessionsList {
    spec: ToolSpec,
    binding: Binding,
}

impl SessionsList {
    const NAME: &'static str = "sessions_list";
    const ARGS: &'static [&'static str] = &[
        "kinds",
        "limit",
        "activeMinutes",
        "messageLimit",
        "label",
        "agentId",
        "search",
        "includeDerivedTitles",
        "includeLastMessage",
    ];

    pub fn new(binding: Binding) -> SessionsList {
        let spec = ToolSpec {
            name: Self::NAME.into(),
            description: "List sessions (the main conversation, chats, groups, cron runs), most recently active \
                first, with where each conversation happens (lastChannel/lastTo). Filter by kinds (main, group, \
                cron, other), activeMinutes or search (part of the key); messageLimit adds each session's last \
                messages."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "kinds": {"type": "array", "items": {"type": "string", "enum": KINDS}},
                    "limit": {"type": "number", "minimum": 1},
                    "activeMinutes": {"type": "number", "minimum": 1},
                    "messageLimit": {"type": "number", "minimum": 0},
                    "label": {"type": "string"},
                    "agentId": {"type": "string"},
                    "search": {"type": "string"},
                    "includeDerivedTitles": {"type": "boolean"},
                    "includeLastMessage": {"type": "boolean"}
                }
            }),
        };
        SessionsList { spec, binding }
    }

    async fn run(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        const T: &str = SessionsList::NAME;
        known_args(&args, T, Self::ARGS)?;
        if opt_str_arg(&args, T, "label")?.is_some() {
            return Err(no_labels(T));
        }
        let kinds: Vec<String> = match args.get("kinds") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|k| match k.as_str().map(|k| k.trim().to_ascii_lowercase()) {
                    Some(k) if KINDS.contains(&k.as_str()) => Ok(k),
                    _ => Err(invalid(T, format!("`kinds` entries must be among {}", KINDS.join(", ")))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid(T, "`kinds` must be a list")),
        };
        let limit = opt_u64_arg(&args, T, "limit")?.unwrap_or(LIST_DEFAULT).clamp(1, LIST_SCAN as u64) as usize;
        let active_ms = opt_u64_arg(&args, T, "activeMinutes")?.map(|m| m.max(1).saturating_mul(60_000));
        let message_limit = opt_u64_arg(&args, T, "messageLimit")?.unwrap_or(0).min(MESSAGE_LIMIT_MAX);
        let search = opt_str_arg(&args, T, "search")?.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
        let titles = opt_bool(&args, T, "includeDerivedTitles")?.unwrap_or(false);
        let last_message = opt_bool(&args, T, "includeLastMessage")?.unwrap_or(false);
        let agent_id = opt_str_arg(&args, T, "agentId")?.map(String::from);
        let state = self.binding.state(T)?;
        let filter = SessionFilter { agent_id, ..SessionFilter::default() };
        let (rows, _) =
            state.store.read(move |rd| rd.find_sessions(&filter, LIST_SCAN, 0)).await.map_err(|e| store_error(T, e))?;
        let now = ctx.clock.now_ms();
        let rows: Vec<SessionRow> = rows
            .into_iter()
            .filter(|r| kinds.is_empty() || kinds.iter().any(|k| k == classify(r)))
            .filter(|r| active_ms.is_none_or(|ms| r.updated_at_ms >= now.saturating_sub(ms as i64)))
            .filter(|r| search.as_deref().is_none_or(|s| r.key.to_lowercase().contains(s)))
            .take(limit)
            .collect();
        let mut sessions = Vec::with_capacity(rows.len());
        for row in &rows {
            let route: Option<pincer_cron::Route> =
                row.last_route_json.as_deref().and_then(|j| serde_json::from_str(j).ok());
            let mut entry = json!({
                "key": row.key, "agentId": row.agent_id, "kind": classify(row),
                "channel": route.as_ref().map(|r| r.channel.clone()),
                "lastChannel": route.as_ref().map(|r| r.channel.clone()),
                "lastTo": route.as_ref().map(|r| r.to.clone()),
                "updatedAt": row.updated_at_ms, "sessionId": row.session_id, "model": row.model,
                "totalTokens": row.input_tokens + row.output_tokens, "messageCount": row.messages,
            });
            if let Some(thread) = route.and_then(|r| r.thread_id) {
                entry["lastThreadId"] = json!(thread);
            }
            if titles || last_message {
                let key = row.key.clone();
                let (first, last) = state
                    .store
                    .read(move |rd| {
                        Ok((
                            if titles { rd.transcript_text(&key, &["user"], false)? } else { None },
                            if last_message { rd.transcript_text(&key, &["user", "assistant"], true)? } else { None },
                        ))
                    })
                    .await
                    .map_err(|e| store_error(T, e))?;
                if let Some(text) = first {
                    entry["derivedTitle"] = json!(first_line(&text, 60));
                }
                if let Some(text) = last {
                    entry["lastMessagePreview"] = json!(first_line(&text, 160));
                }
            }
            if message_limit > 0 {
                let (_, messages) = recent(&state, T, &row.key, message_limit, false).await?;
                entry["messages"] = messages.iter().map(message_row).collect();
            }
            sessions.push(entry);
        }
        Ok(json_output(&json!({"count": sessions.len(), "sessions": sessions})))
    }
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim();
    match line.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if line.chars().count() > max => format!("{}…", &line[..cut]),
        _ => line.to_string(),
    }
}

pub struct SessionsHistory {
    spec: ToolSpec,
    binding: Binding,
}

impl SessionsHistory {
    const NAME: &'static str = "sessions_history";

    pub fn new(binding: Binding) -> SessionsHistory {
        let spec = ToolSpec {
            name: Self::NAME.into(),
            description: "Read a session's transcript (oldest first, the newest `limit` messages; tool calls and \
                results only with includeTools). sessionKey is a key from sessions_list, or `main`."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "sessionKey": {"type": "string"},
                    "limit": {"type": "number", "minimum": 1},
                    "includeTools": {"type": "boolean"}
                },
                "required": ["sessionKey"]
            }),
        };
        SessionsHistory { spec, binding }
    }

    async fn run(&self, args: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        const T: &str = SessionsHistory::NAME;
        known_args(&args, T, &["sessionKey", "limit", "includeTools"])?;
        let key = str_arg(&args, T, "sessionKey")?.trim().to_string();
        if key.is_empty() {
            return Err(invalid(T, "`sessionKey` must not be empty (sessions_list shows the keys)"));
        }
        let limit = opt_u64_arg(&args, T, "limit")?.unwrap_or(HISTORY_DEFAULT).clamp(1, 1000);
        let include_tools = opt_bool(&args, T, "includeTools")?.unwrap_or(false);
        let state = self.binding.state(T)?;
        let (key, messages) = recent(&state, T, &key, limit, include_tools).await?;
        let mut rows: Vec<Value> = messages.iter().map(message_row).collect();
        let content_truncated = messages.iter().any(|m| m.text.chars().count() > HISTORY_TEXT_MAX_CHARS);
        // OpenClaw's byte cap: the oldest messages go first.
        let mut bytes: usize = rows.iter().map(|r| r.to_string().len() + 1).sum();
        let mut dropped = false;
        while bytes > HISTORY_MAX_BYTES && rows.len() > 1 {
            bytes -= rows.remove(0).to_string().len() + 1;
            dropped = true;
        }
        Ok(json_output(&json!({
            "sessionKey": key, "messages": rows, "truncated": dropped || content_truncated,
            "droppedMessages": dropped, "contentTruncated": content_truncated, "bytes": bytes,
        })))
    }
}

pub struct SessionsSend {
    spec: ToolSpec,
    binding: Binding,
}

impl SessionsSend {
    const NAME: &'static str = "sessions_send";

    pub fn new(binding: Binding) -> SessionsSend {
        let spec = ToolSpec {
            name: Self::NAME.into(),
            description: "Send a message to another session: the agent answers it there, in that session's \
                context, and the reply comes back here (status \"ok\", `reply`). timeoutSeconds (default 30) is how \
                long to wait; 0 sends without waiting (status \"accepted\"). sessionKey is a key from sessions_list, \
                or `main`; agentId alone means that agent's main session. After the turn, an announce step runs in \
                the target session and posts its answer to that session's chat (its last route), unless it answers \
                exactly ANNOUNCE_SKIP."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "sessionKey": {"type": "string"},
                    "label": {"type": "string"},
                    "agentId": {"type": "string"},
                    "message": {"type": "string"},
                    "timeoutSeconds": {"type": "integer", "minimum": 0}
                },
                "required": ["message"]
            }),
        };
        SessionsSend { spec, binding }
    }

    async fn run(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        const T: &str = SessionsSend::NAME;
        known_args(&args, T, &["sessionKey", "label", "agentId", "message", "timeoutSeconds"])?;
        let message = str_arg(&args, T, "message")?.trim().to_string();
        if message.is_empty() {
            return Err(invalid(T, "`message` must not be empty"));
        }
        if opt_str_arg(&args, T, "label")?.is_some() {
            return Err(no_labels(T));
        }
        let key = opt_str_arg(&args, T, "sessionKey")?.map(str::trim).filter(|k| !k.is_empty());
        let agent_id = opt_str_arg(&args, T, "agentId")?.map(str::trim).filter(|a| !a.is_empty());
        if key.is_none() && agent_id.is_none() {
            return Err(invalid(T, "either `sessionKey` or `agentId` is required (sessions_list shows the keys)"));
        }
        if key == Some("isolated") {
            return Err(invalid(T, "`isolated` names no session; give a key from sessions_list"));
        }
        let target = SessionRef::from_request(key.or(Some("main")), agent_id, "").map_err(|e| invalid(T, e))?;
        let timeout_s = opt_u64_arg(&args, T, "timeoutSeconds")?.unwrap_or(SEND_TIMEOUT_S);
        let wait = timeout_s > 0;
        let from = ctx.session_key.clone();
        if wait && from.as_deref() == Some(target.key.as_str()) {
            return Err(invalid(
                T,
                format!(
                    "{} is this conversation's own session: a turn cannot wait for its own reply; use timeoutSeconds 0 to queue the message for after this turn",
                    target.key
                ),
            ));
        }
        let state = self.binding.state(T)?;
        if target.kind != pincer_agent::SessionKind::Main {
            let lookup = target.key.clone();
            if state.store.read(move |rd| rd.get_session(&lookup)).await.map_err(|e| store_error(T, e))?.is_none() {
                return Err(invalid(T, format!("no session {} (sessions_list shows the keys)", target.key)));
            }
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let params = AgentParams {
            message,
            session_key: Some(target.key.clone()),
            idempotency_key: Some(run_id.clone()),
            extra_system_prompt: Some(format!(
                "This message comes from another of your sessions ({}) through sessions_send, not from the user \
                 directly. Answer it; your reply is returned to that session.",
                from.as_deref().unwrap_or("unknown")
            )),
            ..AgentParams::default()
        };
        let agents = state.agents.clone();
        // The other session's turn acts for whoever this turn acts for: a sender who is not the
        // owner cannot reach the owner-only tools through another session.
        let requester = if ctx.sender_is_owner { Requester::Owner } else { Requester::NotOwner };
        let announce = Announce {
            state: state.clone(),
            key: target.key.clone(),
            from,
            request: params.message.clone(),
            requester,
        };
        // A task of its own: the turn goes on (and is recorded) whether or not this call waits for it;
        // its announce step follows in another, so waiting for the reply does not wait for it.
        let mut run = tokio::spawn(async move {
            let result = agent_api::agent_as(&agents, params, requester, |_| {}).await;
            if let Ok(done) = &result {
                tokio::spawn(announce.run(done.run_id.clone(), done.text.clone()));
            }
            result
        });
        if !wait {
            return Ok(json_output(&json!({"runId": run_id, "status": "accepted", "sessionKey": target.key})));
        }
        // Answer before the call's own deadline, so the model reads a result rather than a timeout error.
        let until = ctx.clock.now_ms().saturating_add(timeout_s.saturating_mul(1000).min(i64::MAX as u64) as i64);
        let until = until.min(ctx.deadline_ms.saturating_sub(1_000));
        tokio::select! {
            joined = &mut run => match joined {
                Ok(Ok(result)) => Ok(json_output(&json!({
                    "runId": result.run_id, "status": "ok", "reply": result.text, "sessionKey": result.session_key,
                }))),
                Ok(Err(e)) => Err(ToolError::Failed(format!("{T}: the turn in {} failed: {e}", target.key))),
                Err(e) => Err(ToolError::Failed(format!("{T}: the turn in {} stopped: {e}", target.key))),
            },
            _ = ctx.clock.sleep_until(until) => Ok(json_output(&json!({
                "runId": run_id, "status": "timeout", "sessionKey": target.key,
                "error": format!("no reply within {timeout_s}s; the turn goes on, and its reply will be in sessions_history"),
            }))),
        }
    }
}

/// OpenClaw's agent-to-agent announce step: after a `sessions_send` turn, the target agent is asked
/// (in its own session) what to tell the chat that session belongs to; its answer goes there
/// through the outbox, unless it is exactly `ANNOUNCE_SKIP` (or `NO_REPLY`, or empty). A target
/// session without a chat route (never reached from a channel) announces nothing. OpenClaw's
/// reply ping-pong between the two sessions (`REPLY_SKIP`, `maxPingPongTurns`) is not built.
struct Announce {
    state: std::sync::Arc<AppState>,
    key: String,
    from: Option<String>,
    request: String,
    requester: Requester,
}

/// The answer that keeps the announce step silent.
const ANNOUNCE_SKIP: &str = "ANNOUNCE_SKIP";

impl Announce {
    async fn run(self, run_id: String, reply: String) {
        let Announce { state, key, from, request, requester } = self;
        let route = match last_route(&state, &key).await {
            Ok(Some(route)) => route,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(session = %key, error = %e, "sessions_send: cannot read the route to announce to");
                return;
            }
        };
        let from = from.as_deref().unwrap_or("another session");
        let params = AgentParams {
            message: format!("Original request (from {from}):\n{request}\n\nYour reply:\n{reply}"),
            session_key: Some(key.clone()),
            idempotency_key: Some(format!("{run_id}:announce")),
            extra_system_prompt: Some(format!(
                "Agent-to-agent announce step. Write what to post to this session's chat ({} {}) about the exchange \
                 above; it is sent as is. Reply exactly {ANNOUNCE_SKIP} to post nothing.",
                route.channel, route.to
            )),
            ..AgentParams::default()
        };
        let text = match agent_api::agent_as(&state.agents, params, requester, |_| {}).await {
            Ok(step) => step.text.trim().to_string(),
            Err(e) => {
                tracing::warn!(session = %key, error = %e, "sessions_send: the announce step failed; nothing was announced");
                return;
            }
        };
        if text.is_empty() || text == ANNOUNCE_SKIP || text.eq_ignore_ascii_case("NO_REPLY") {
            return;
        }
        let send = parse::<pincer_protocol::schema::delivery::Send>(
            SessionsSend::NAME,
            json!({
                "to": route.to, "channel": route.channel, "threadId": route.thread_id, "accountId": route.account_id,
                "message": text, "sessionKey": key, "idempotencyKey": format!("sessions_send:{run_id}:announce"),
            }),
        );
        let sent = match send {
            Ok(params) => pincer_delivery::api::send(&state.outbox, &state.announce, &state.events, params)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            tracing::warn!(session = %key, error = %e, "sessions_send: the announce could not be queued");
        }
    }
}

macro_rules! tool_impl {
    ($($t:ty),*) => {$(
        impl Tool for $t {
            fn spec(&self) -> &ToolSpec {
                &self.spec
            }

            fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
                Box::pin(self.run(args, ctx))
            }
        }
    )*};
}

tool_impl!(SessionsList, SessionsHistory, SessionsSend);
