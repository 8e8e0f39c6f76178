//! Sessions: which conversation a turn belongs to, the key it is stored under, and the history
//! the model sees.
//!
//! | kind       | key                                          | lives                                   |
//! |------------|----------------------------------------------|-----------------------------------------|
//! | `main`     | `agent:<agentId>:main`                       | forever; receives system events         |
//! | `isolated` | `agent:<agentId>:cron:<jobId>:run:<runId>`   | one run, then pruned after retention    |
//! |            | `agent:<agentId>:run:<runId>` (`agent` call) |                                         |
//! | `named`    | `agent:<agentId>:session:<id>`               | forever; keeps history across runs      |

use pincer_cron::job::{DEFAULT_AGENT, Job, SessionTarget};
use pincer_store::TranscriptRow;
use serde_json::Value;

use crate::provider::{ChatMessage, Role, ToolCall};

/// Transcript entries sent to the model as context (the newest ones).
pub const HISTORY_MESSAGES: u32 = 40;

/// The main session's short key: an agent's main session is `agent:<agentId>:main` (OpenClaw's
/// `session.mainKey`).
pub const MAIN_KEY: &str = "main";

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Main,
    Isolated,
    Named,
}

impl SessionKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Main => "main",
            SessionKind::Isolated => "isolated",
            SessionKind::Named => "named",
        }
    }
}

/// A session a turn runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    pub key: String,
    pub agent_id: String,
    pub kind: SessionKind,
    /// The cron job and run an isolated session was made for.
    pub job_id: Option<String>,
    pub run_id: Option<String>,
}

impl SessionRef {
    /// The agent's main session.
    pub fn main(agent_id: &str) -> SessionRef {
        SessionRef::new(format!("agent:{agent_id}:{MAIN_KEY}"), agent_id, SessionKind::Main)
    }

    /// A fresh session for one cron run.
    pub fn cron_run(agent_id: &str, job_id: &str, run_id: &str) -> SessionRef {
        SessionRef {
            job_id: Some(job_id.to_string()),
            run_id: Some(run_id.to_string()),
            ..SessionRef::new(format!("agent:{agent_id}:cron:{job_id}:run:{run_id}"), agent_id, SessionKind::Isolated)
        }
    }

    /// A fresh session for one `agent` call.
    pub fn one_off(agent_id: &str, run_id: &str) -> SessionRef {
        SessionRef {
            run_id: Some(run_id.to_string()),
            ..SessionRef::new(format!("agent:{agent_id}:run:{run_id}"), agent_id, SessionKind::Isolated)
        }
    }

    /// A named session that keeps its history.
    pub fn named(agent_id: &str, id: &str) -> SessionRef {
        SessionRef::new(format!("agent:{agent_id}:session:{id}"), agent_id, SessionKind::Named)
    }

    fn new(key: String, agent_id: &str, kind: SessionKind) -> SessionRef {
        SessionRef { key, agent_id: agent_id.to_string(), kind, job_id: None, run_id: None }
    }

    /// Where a cron job's turn runs: `current` runs isolated, like a plain API call's job.
    pub fn for_job(job: &Job, run_id: &str) -> SessionRef {
        let agent = job.effective_agent();
        match &job.session_target {
            SessionTarget::Main => SessionRef::main(agent),
            SessionTarget::Isolated | SessionTarget::Current => SessionRef::cron_run(agent, &job.id, run_id),
            SessionTarget::Named(id) => SessionRef::named(agent, id),
        }
    }

    /// Reads a stored key back: `agent:<a>:main`, `agent:<a>:session:<id>`,
    /// `agent:<a>:cron:<job>:run:<run>` or `agent:<a>:run:<run>`.
    pub fn from_key(key: &str) -> Option<SessionRef> {
        let rest = key.strip_prefix("agent:")?;
        let (agent, rest) = rest.split_once(':')?;
        if !is_safe_id(agent) {
            return None;
        }
        if rest == "main" {
            return Some(SessionRef::main(agent));
        }
        if let Some(id) = rest.strip_prefix("session:") {
            return is_safe_session_id(id).then(|| SessionRef::named(agent, id));
        }
        if let Some(run) = rest.strip_prefix("run:") {
            return (!run.is_empty()).then(|| SessionRef::one_off(agent, run));
        }
        let (job, run) = rest.strip_prefix("cron:")?.split_once(":run:")?;
        (!job.is_empty() && !run.is_empty()).then(|| SessionRef::cron_run(agent, job, run))
    }

    /// Resolves a client's `sessionKey` (and `agentId`): a full key, or the shorthands `main`,
    /// `isolated` (a fresh session for this run) and `session:<id>`. Errors name the field.
    pub fn from_request(key: Option<&str>, agent_id: Option<&str>, run_id: &str) -> Result<SessionRef, String> {
        if let Some(agent) = agent_id
            && !is_safe_id(agent)
        {
            return Err(format!(
                "agentId: \"{agent}\" is not an agent id (letters, digits, '.', '_' and '-', at most 128)"
            ));
        }
        let agent = agent_id.unwrap_or(DEFAULT_AGENT);
        let key = key.map(str::trim).filter(|k| !k.is_empty());
        let session = match key {
            // `global`: OpenClaw's key for the one session every conversation shares under
            // `session.scope: "global"` — Pincer's main session (OpenClaw's clients send it when
            // they are set to that scope; Pincer announces `per-sender`, `api::session_defaults`).
            None | Some("main") | Some("global") => SessionRef::main(agent),
            Some("isolated") => SessionRef::one_off(agent, run_id),
            Some(short) if short.starts_with("session:") => {
                let id = &short["session:".len()..];
                if !is_safe_session_id(id) {
                    return Err(format!(
                        "sessionKey: session id \"{id}\" is not allowed: use letters, digits, '.', '_', ':' and '-' (at most 128)"
                    ));
                }
                SessionRef::named(agent, id)
            }
            Some(full) => SessionRef::from_key(full).ok_or_else(|| {
                format!(
                    "sessionKey: \"{full}\" is not a session Pincer knows: use main, isolated, session:<id>, or a key such as agent:main:main or agent:main:session:<id>"
                )
            })?,
        };
        if let Some(agent) = agent_id
            && agent != session.agent_id
        {
            return Err(format!(
                "agentId: \"{agent}\" contradicts the agent that owns sessionKey \"{}\"; pass one of them",
                session.key
            ));
        }
        Ok(session)
    }
}

/// Agent ids: no `:` (it separates a key's parts) and no path characters.
pub fn is_safe_id(id: &str) -> bool {
    is_safe_session_id(id) && !id.contains(':')
}

/// Named-session ids, as `cron.add` accepts them in `session:<id>`: like agent ids, plus `:`.
pub fn is_safe_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// How a queued system event reads in the conversation.
pub fn event_message(text: &str, source: Option<&str>) -> String {
    match source {
        Some(source) => format!("System event ({source}): {text}"),
        None => format!("System event: {text}"),
    }
}

/// The transcript role of a tool result (OpenClaw's `toolResult` message).
pub const TOOL_RESULT_ROLE: &str = "toolResult";

/// What an interrupted tool call is answered with: the gateway stopped (or the turn was dropped)
/// between the call and its result, so nobody knows whether it ran.
pub const INTERRUPTED_RESULT: &str = "The tool call was interrupted before it returned a result (the gateway stopped or the turn was aborted); \
     it may or may not have run. Check before repeating anything that has side effects.";

/// The tool calls an assistant entry recorded in its meta (`toolCalls`).
pub fn recorded_calls(meta: Option<&Value>) -> Vec<ToolCall> {
    meta.and_then(|m| m.get("toolCalls"))
        .and_then(|c| serde_json::from_value::<Vec<ToolCall>>(c.clone()).ok())
        .unwrap_or_default()
}

/// The conversation the model sees from transcript entries (oldest first): user and event entries
/// become user messages, assistant entries assistant messages (with the tool calls they made),
/// `toolResult` entries tool results, and `system` entries (failures) are left out. Plain
/// neighbours with the same role are joined, and the conversation starts with the user, as
/// Anthropic requires. Every tool call is answered exactly once, as both APIs require: a result
/// whose call was cut off by the history window is dropped, and a call without a recorded result
/// (a crash between the two) gets the interrupted answer.
pub fn conversation(rows: &[TranscriptRow]) -> Vec<ChatMessage> {
    let mut messages: Vec<ChatMessage> = Vec::new();
    // Calls of the latest assistant message still waiting for their results.
    let mut open: Vec<String> = Vec::new();
    let close_open = |messages: &mut Vec<ChatMessage>, open: &mut Vec<String>| {
        for id in open.drain(..) {
            messages.push(ChatMessage::tool_result(id, INTERRUPTED_RESULT, true));
        }
    };
    for row in rows {
        let meta: Option<Value> = row.meta_json.as_deref().and_then(|m| serde_json::from_str(m).ok());
        let message = match row.role.as_str() {
            "user" => ChatMessage::user(row.content.clone()),
            "assistant" => {
                let calls = recorded_calls(meta.as_ref());
                if calls.is_empty() {
                    ChatMessage::assistant(row.content.clone())
                } else {
                    ChatMessage::assistant_calls(row.content.clone(), calls)
                }
            }
            "event" => {
                let source = meta.as_ref().and_then(|m| m.get("source")).and_then(Value::as_str);
                ChatMessage::user(event_message(&row.content, source))
            }
            TOOL_RESULT_ROLE => {
                let id = meta.as_ref().and_then(|m| m.get("toolCallId")).and_then(Value::as_str).unwrap_or_default();
                let Some(at) = open.iter().position(|o| o == id) else { continue };
                open.remove(at);
                let is_error = meta.as_ref().and_then(|m| m.get("isError")).and_then(Value::as_bool) == Some(true);
                messages.push(ChatMessage::tool_result(id, row.content.clone(), is_error));
                continue;
            }
            _ => continue,
        };
        close_open(&mut messages, &mut open);
        if message.role == Role::Assistant && messages.is_empty() {
            continue;
        }
        open = message.tool_calls.iter().map(|c| c.id.clone()).collect();
        let plain = message.tool_calls.is_empty();
        match messages.last_mut() {
            Some(last) if plain && last.role == message.role && last.tool_calls.is_empty() => {
                last.content.push_str("\n\n");
                last.content.push_str(&message.content);
            }
            _ => messages.push(message),
        }
    }
    close_open(&mut messages, &mut open);
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, role: &str, content: &str, meta: Option<&str>) -> TranscriptRow {
        TranscriptRow { seq, role: role.into(), content: content.into(), at_ms: seq, meta_json: meta.map(String::from) }
    }

    #[test]
    fn keys_round_trip() {
        for session in [
            SessionRef::main("main"),
            SessionRef::cron_run("main", "job-1", "cron:job-1:1772323200000"),
            SessionRef::one_off("ops", "0b1c"),
            SessionRef::named("ops", "research"),
            SessionRef::named("main", "team:weekly"),
        ] {
            assert_eq!(SessionRef::from_key(&session.key), Some(session.clone()), "{}", session.key);
        }
        assert_eq!(SessionRef::cron_run("main", "j", "r").key, "agent:main:cron:j:run:r");
        for bad in ["main", "agent:main", "agent::main", "agent:main:other", "agent:main:session:a/b", "agent:a:cron:j"]
        {
            assert_eq!(SessionRef::from_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_keys_and_their_errors() {
        let ok = |key: Option<&str>, agent: Option<&str>| SessionRef::from_request(key, agent, "run-1").unwrap();
        assert_eq!(ok(None, None), SessionRef::main("main"));
        assert_eq!(ok(Some("main"), Some("ops")), SessionRef::main("ops"));
        assert_eq!(ok(Some("global"), Some("main")), SessionRef::main("main"));
        assert_eq!(ok(Some("isolated"), None), SessionRef::one_off("main", "run-1"));
        assert_eq!(ok(Some("session:notes"), None), SessionRef::named("main", "notes"));
        assert_eq!(ok(Some("agent:ops:session:notes"), Some("ops")), SessionRef::named("ops", "notes"));
        let err = |key: Option<&str>, agent: Option<&str>| SessionRef::from_request(key, agent, "r").unwrap_err();
        assert!(err(Some("session:../x"), None).starts_with("sessionKey: session id \"../x\""));
        assert!(err(Some("telegram:dm:1"), None).starts_with("sessionKey: \"telegram:dm:1\" is not a session"));
        assert!(err(Some("agent:ops:main"), Some("main")).starts_with("agentId: \"main\" contradicts"));
        assert!(err(None, Some("a:b")).starts_with("agentId: \"a:b\" is not an agent id"));
    }

    #[test]
    fn conversation_merges_roles_renders_events_and_starts_with_the_user() {
        let rows = [
            row(1, "assistant", "left over from a cut-off history", None),
            row(2, "user", "first", None),
            row(3, "assistant", "reply", None),
            row(4, "system", "turn failed: timeout", None),
            row(5, "event", "backup finished", Some(r#"{"source":"cron:j1"}"#)),
            row(6, "event", "disk 91% full", None),
            row(7, "user", "anything new?", None),
        ];
        let got: Vec<(Role, String)> = conversation(&rows).into_iter().map(|m| (m.role, m.content)).collect();
        assert_eq!(
            got,
            [
                (Role::User, "first".to_string()),
                (Role::Assistant, "reply".to_string()),
                (
                    Role::User,
                    "System event (cron:j1): backup finished\n\nSystem event: disk 91% full\n\nanything new?"
                        .to_string()
                ),
            ]
        );
    }
}
