//! `sessions_list`, `sessions_history` and `sessions_send`: OpenClaw's session tools over the
//! store's sessions and transcripts and the `agent` method's turn.
//!
//! Pincer sessions have no labels, so `label` is refused with what to give instead; a
//! `sessions_send` reply comes back in the tool's result (OpenClaw's inline reply), and then, as
//! in OpenClaw, the two sessions answer each other (the reply ping-pong, up to
//! `session.agentToAgent.maxPingPongTurns`) and the target's announce step posts to its chat
//! (see [`Exchange`]).

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
    const READ_ONLY: bool = true;
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
                messages. Archived sessions are not listed."
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
        // Archived sessions stay out, as OpenClaw's tool reads `sessions.list` without `archived`
        // (whose default hides them) and offers no way to ask for them.
        let filter = SessionFilter { agent_id, archived: Some(false), ..SessionFilter::default() };
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
    const READ_ONLY: bool = true;

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
    const READ_ONLY: bool = false;

    pub fn new(binding: Binding) -> SessionsSend {
        let spec = ToolSpec {
            name: Self::NAME.into(),
            description: "Send a message to another session: the agent answers it there, in that session's \
                context, and the reply comes back here (status \"ok\", `reply`). timeoutSeconds (default 30) is how \
                long to wait; 0 sends without waiting (status \"accepted\"). sessionKey is a key from sessions_list, \
                or `main`; agentId alone means that agent's main session. After the turn, once this turn is over, \
                the two sessions answer each other in turn (this one first) for a few turns; answer exactly \
                REPLY_SKIP to end that. Then an announce step runs in the target session and posts its answer to \
                that session's chat (its last route), unless it answers exactly ANNOUNCE_SKIP."
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
        let exchange = Exchange {
            state: state.clone(),
            target: target.key.clone(),
            requester: from.filter(|from| *from != target.key),
            requesting_run: ctx.run_id.clone(),
            requesting_turn: ctx.turn_ended.clone(),
            request: params.message.clone(),
            rights: requester,
            run_id: run_id.clone(),
        };
        // A task of its own: the turn goes on (and is recorded) whether or not this call waits for it;
        // the reply exchange and the announce step follow in another, so waiting for the reply does
        // not wait for them.
        let mut run = tokio::spawn(async move {
            let result = agent_api::agent_as(&agents, params, requester, |_| {}).await;
            if let Ok(done) = &result {
                tokio::spawn(exchange.run(done.text.clone()));
            }
            result
        });
        let pending = json!({"status": "pending", "mode": "announce"});
        if !wait {
            return Ok(json_output(&json!({
                "runId": run_id, "status": "accepted", "sessionKey": target.key, "delivery": pending,
            })));
        }
        // Answer before the call's own deadline, so the model reads a result rather than a timeout error.
        let until = ctx.clock.now_ms().saturating_add(timeout_s.saturating_mul(1000).min(i64::MAX as u64) as i64);
        let until = until.min(ctx.deadline_ms.saturating_sub(1_000));
        tokio::select! {
            joined = &mut run => match joined {
                Ok(Ok(result)) => {
                    // A reply that is empty or a skip token starts no exchange and announces nothing.
                    let delivery = match deliverable(&result.text) {
                        Some(_) => pending,
                        None => json!({"status": "skipped", "mode": "announce"}),
                    };
                    Ok(json_output(&json!({
                        "runId": result.run_id, "status": "ok", "reply": result.text,
                        "sessionKey": result.session_key, "delivery": delivery,
                    })))
                }
                Ok(Err(e)) => Err(ToolError::Failed(format!("{T}: the turn in {} failed: {e}", target.key))),
                Err(e) => Err(ToolError::Failed(format!("{T}: the turn in {} stopped: {e}", target.key))),
            },
            _ = ctx.clock.sleep_until(until) => Ok(json_output(&json!({
                "runId": run_id, "status": "timeout", "sessionKey": target.key, "delivery": pending,
                "error": format!("no reply within {timeout_s}s; the turn goes on, and its reply will be in sessions_history"),
            }))),
        }
    }
}

/// The answer that keeps the announce step silent.
const ANNOUNCE_SKIP: &str = "ANNOUNCE_SKIP";
/// The answer that ends the reply exchange.
const REPLY_SKIP: &str = "REPLY_SKIP";

/// `text` trimmed, unless it is empty or one of OpenClaw's non-deliverable answers
/// (`ANNOUNCE_SKIP`, `REPLY_SKIP`, `NO_REPLY`, `HEARTBEAT_OK`), which are never passed on.
fn deliverable(text: &str) -> Option<&str> {
    let text = text.trim();
    let silent = [ANNOUNCE_SKIP, REPLY_SKIP, "NO_REPLY", "HEARTBEAT_OK"].iter().any(|t| text.eq_ignore_ascii_case(t));
    (!text.is_empty() && !silent).then_some(text)
}

/// What follows a `sessions_send` turn, as OpenClaw's agent-to-agent flow does it:
///
/// 1. **The reply exchange** (`session.agentToAgent.maxPingPongTurns`, default 5, 0 for none):
///    once the requesting turn has ended, the two sessions answer each other in turn — the
///    requester first, given the target's reply; then the target, given the requester's answer;
///    and so on — each told which turn of how many it is and that answering exactly `REPLY_SKIP`
///    ends it. An empty or skip answer ends it too. Each turn is an ordinary turn of that
///    session, in its transcript. There is none when the requester is the target, is unknown,
///    or is an isolated cron run (as in OpenClaw), and none after a requesting turn that was
///    aborted or failed: then nothing below runs either.
/// 2. **The announce step**: the target session is asked (given the original request, the first
///    reply and the latest one) what to post to its chat; the answer goes there through the
///    outbox unless it is exactly `ANNOUNCE_SKIP` (or another skip token, or empty). A target
///    session without a chat route (never reached from a channel) announces nothing.
///
/// Every turn has an idempotency key under the send's run id (`<runId>:reply:<n>`,
/// `<runId>:announce`), so a turn already in a transcript is answered from it, never asked twice;
/// the post has one too. The exchange lives in memory, as OpenClaw's does: nothing resumes one a
/// restart interrupts, so no turn of it is started twice — and the rest of it does not run.
struct Exchange {
    state: std::sync::Arc<AppState>,
    target: String,
    /// The requesting session, when it is another one.
    requester: Option<String>,
    requesting_run: String,
    requesting_turn: tokio_util::sync::CancellationToken,
    request: String,
    rights: Requester,
    run_id: String,
}

struct Side<'a> {
    key: &'a str,
    channel: Option<String>,
}

impl Exchange {
    async fn run(self, reply: String) {
        let Some(first) = deliverable(&reply).map(str::to_string) else { return };
        let target_route = match last_route(&self.state, &self.target).await {
            Ok(route) => route,
            Err(e) => {
                tracing::warn!(session = %self.target, error = %e, "sessions_send: cannot read the target's route");
                None
            }
        };
        let target = Side { key: &self.target, channel: target_route.as_ref().map(|r| r.channel.clone()) };
        let mut latest = first.clone();
        let requester = match self.requester.as_deref() {
            Some(key) => {
                Some(Side { key, channel: last_route(&self.state, key).await.ok().flatten().map(|r| r.channel) })
            }
            None => None,
        };
        let turns = self.state.config().session.agent_to_agent.max_ping_pong_turns;
        if let Some(requester) = &requester
            && turns > 0
            && !self.requesting_run.is_empty()
            && !(requester.key.contains(":cron:") && requester.key.contains(":run:"))
        {
            // The requester's first turn would queue behind the requesting turn anyway; waiting for
            // its end says whether it finished — an aborted or failed turn ends the exchange here.
            self.requesting_turn.cancelled().await;
            if !self.requesting_turn_finished(requester.key).await {
                tracing::info!(session = %requester.key, run = %self.requesting_run,
                    "sessions_send: the requesting turn did not finish; no reply exchange and no announce");
                return;
            }
            for turn in 1..=turns {
                let (current, role) = match turn % 2 {
                    1 => (requester, "Agent 1 (requester)"),
                    _ => (&target, "Agent 2 (target)"),
                };
                let context = format!(
                    "Agent-to-agent reply step:\nCurrent agent: {role}.\nTurn {turn} of {turns}.\n{}\nIf you want to \
                     stop the ping-pong, reply exactly \"{REPLY_SKIP}\".",
                    session_lines(Some(requester), &target)
                );
                let params = AgentParams {
                    message: latest.clone(),
                    session_key: Some(current.key.to_string()),
                    idempotency_key: Some(format!("{}:reply:{turn}", self.run_id)),
                    extra_system_prompt: Some(context),
                    ..AgentParams::default()
                };
                match agent_api::agent_as(&self.state.agents, params, self.rights, |_| {}).await {
                    Ok(step) => match deliverable(&step.text) {
                        Some(text) => latest = text.to_string(),
                        None => break,
                    },
                    Err(e) => {
                        tracing::warn!(session = %current.key, turn, error = %e, "sessions_send: a reply turn failed; the exchange ends");
                        break;
                    }
                }
            }
        }
        self.announce(requester.as_ref(), &target, target_route, &first, &latest).await;
    }

    /// Whether the requesting turn recorded its final reply (not aborted, not failed).
    async fn requesting_turn_finished(&self, key: &str) -> bool {
        let (key, run) = (key.to_string(), self.requesting_run.clone());
        matches!(self.state.store.read(move |rd| rd.final_reply_of_run(&key, &run)).await, Ok(Some(_)))
    }

    async fn announce(
        &self,
        requester: Option<&Side<'_>>,
        target: &Side<'_>,
        route: Option<pincer_cron::Route>,
        first: &str,
        latest: &str,
    ) {
        let Some(route) = route else { return };
        let context = format!(
            "Agent-to-agent announce step:\n{}\nOriginal request: {}\nRound 1 reply: {first}\nLatest reply: {latest}\n\
             If you want to remain silent, reply exactly \"{ANNOUNCE_SKIP}\".\nAny other reply is sent as is to this \
             session's chat ({} {}).\nAfter this reply, the agent-to-agent conversation is over.",
            session_lines(requester, target),
            self.request,
            route.channel,
            route.to
        );
        let params = AgentParams {
            message: "Agent-to-agent announce step.".into(),
            session_key: Some(self.target.clone()),
            idempotency_key: Some(format!("{}:announce", self.run_id)),
            extra_system_prompt: Some(context),
            ..AgentParams::default()
        };
        let text = match agent_api::agent_as(&self.state.agents, params, self.rights, |_| {}).await {
            Ok(step) => step.text,
            Err(e) => {
                tracing::warn!(session = %self.target, error = %e, "sessions_send: the announce step failed; nothing was announced");
                return;
            }
        };
        let Some(text) = deliverable(&text) else { return };
        let send = parse::<pincer_protocol::schema::delivery::Send>(
            SessionsSend::NAME,
            json!({
                "to": route.to, "channel": route.channel, "threadId": route.thread_id, "accountId": route.account_id,
                "message": text, "sessionKey": self.target,
                "idempotencyKey": format!("sessions_send:{}:announce", self.run_id),
            }),
        );
        let sent = match send {
            Ok(params) => {
                pincer_delivery::api::send(&self.state.outbox, &self.state.announce, &self.state.events, params)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            tracing::warn!(session = %self.target, error = %e, "sessions_send: the announce could not be queued");
        }
    }
}

/// OpenClaw's lines naming the two sides of an agent-to-agent exchange.
fn session_lines(requester: Option<&Side<'_>>, target: &Side<'_>) -> String {
    let mut lines = Vec::new();
    if let Some(requester) = requester {
        lines.push(format!("Agent 1 (requester) session: {}.", requester.key));
        if let Some(channel) = &requester.channel {
            lines.push(format!("Agent 1 (requester) channel: {channel}."));
        }
    }
    lines.push(format!("Agent 2 (target) session: {}.", target.key));
    if let Some(channel) = &target.channel {
        lines.push(format!("Agent 2 (target) channel: {channel}."));
    }
    lines.join("\n")
}

macro_rules! tool_impl {
    ($($t:ty),*) => {$(
        impl Tool for $t {
            fn spec(&self) -> &ToolSpec {
                &self.spec
            }

            fn read_only(&self) -> bool {
                <$t>::READ_ONLY
            }

            fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
                Box::pin(self.run(args, ctx))
            }
        }
    )*};
}

tool_impl!(SessionsList, SessionsHistory, SessionsSend);

#[cfg(test)]
mod tests {
    use super::deliverable;

    /// OpenClaw's non-deliverable answers end the exchange and keep the announce silent; anything
    /// else is passed on trimmed.
    #[test]
    fn skip_tokens_and_empty_answers_are_not_deliverable() {
        for silent in ["", "  ", "REPLY_SKIP", " ANNOUNCE_SKIP\n", "NO_REPLY", "no_reply", "HEARTBEAT_OK"] {
            assert_eq!(deliverable(silent), None, "{silent:?}");
        }
        assert_eq!(deliverable("  Build 42.\n"), Some("Build 42."));
        assert_eq!(deliverable("REPLY_SKIP, but not quite"), Some("REPLY_SKIP, but not quite"));
    }
}
