//! The gateway's own agent tools — `message`, `cron`, `sessions_list`, `sessions_history` and
//! `sessions_send` — with OpenClaw's names and parameters. They reach the outbox, the scheduler and
//! the transcripts, which `pincer-tools` must not know, so they live here and are registered into
//! the toolbox as `Arc<dyn Tool>` like any built-in: the same policy (`group:messaging`,
//! `group:automation`, `group:sessions`, the profiles, a job's `toolsAllow`) decides whether a turn
//! sees them.
//!
//! Each is a thin adapter, as `methods/` are: its arguments become the params of the method that
//! does the same thing (`send`, `cron.*`, `chat.history`, `agent`), parsed by the same
//! `parse_params` and handed to the same domain function. So a job the `cron` tool makes passes
//! exactly `cron.add`'s validation, and every refusal is a tool error the model reads.
//!
//! The toolbox is built before the services it reaches (the scheduler needs the agents, whose
//! turns need the toolbox), so the tools hold a [`Binding`] that [`crate::start`] fills once the
//! gateway's state exists; a call before that, or after shutdown, is a tool error saying so.

mod cron;
mod message;
mod sessions;

use std::sync::{Arc, OnceLock, Weak};

use pincer_cron::Route;
use pincer_protocol::schema::{Method, parse_params};
use pincer_tools::{Tool, ToolError, ToolOutput};
use serde::Serialize;
use serde_json::Value;

use crate::AppState;

/// The gateway state the tools act on, filled once it exists. Weak, because the state owns the
/// agents, whose toolbox owns these tools.
#[derive(Clone, Default)]
pub struct Binding(Arc<OnceLock<Weak<AppState>>>);

impl Binding {
    pub fn bind(&self, state: &Arc<AppState>) {
        let _ = self.0.set(Arc::downgrade(state));
    }

    fn state(&self, tool: &str) -> Result<Arc<AppState>, ToolError> {
        match self.0.get().map(Weak::upgrade) {
            Some(Some(state)) => Ok(state),
            Some(None) => Err(ToolError::Failed(format!("{tool}: the gateway is shutting down"))),
            None => Err(ToolError::Failed(format!(
                "{tool}: the gateway is still starting; call the tool again in a moment"
            ))),
        }
    }
}

/// Every gateway tool, acting on `binding`'s state.
pub fn all(binding: &Binding) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(message::MessageTool::new(binding.clone())),
        Arc::new(cron::CronTool::new(binding.clone())),
        Arc::new(sessions::SessionsList::new(binding.clone())),
        Arc::new(sessions::SessionsHistory::new(binding.clone())),
        Arc::new(sessions::SessionsSend::new(binding.clone())),
    ]
}

/// Parses `params` as method `M`'s, exactly as the router would: the same errors, prefixed with
/// the tool's name.
fn parse<M: Method>(tool: &str, params: Value) -> Result<M::Params, ToolError> {
    parse_params::<M::Params>(M::NAME, Some(&params))
        .map_err(|e| ToolError::InvalidArguments(format!("{tool}: {}", e.0)))
}

/// A result as OpenClaw's tools give it: the JSON, indented.
fn json_output(value: &impl Serialize) -> ToolOutput {
    ToolOutput::text(serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(unserialisable result: {e})")))
}

/// Refuses an argument the tool does not read, naming the ones it does: a misspelt or
/// unimplemented parameter must not be silently dropped.
fn known_args(args: &Value, tool: &str, known: &[&str]) -> Result<(), ToolError> {
    let Some(object) = args.as_object() else { return Ok(()) };
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(ToolError::InvalidArguments(format!(
            "{tool}: `{key}` is not a parameter Pincer implements; the parameters are: {}",
            known.join(", ")
        ))),
    }
}

/// Reads an optional boolean parameter (absent or `null` → `None`).
fn opt_bool(args: &Value, tool: &str, key: &str) -> Result<Option<bool>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ToolError::InvalidArguments(format!("{tool}: `{key}` must be true or false"))),
    }
}

/// Where `session`'s conversation last happened (inbound chat records it before each turn).
async fn last_route(state: &AppState, session: &str) -> Result<Option<Route>, ToolError> {
    let key = session.to_string();
    let json = state
        .store
        .read(move |rd| rd.session_last_route(&key))
        .await
        .map_err(|e| ToolError::Failed(format!("cannot read the session's route: {e}")))?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that arrives before the gateway's state exists is told to retry, not answered wrongly.
    #[tokio::test]
    async fn a_call_before_the_state_is_bound_says_the_gateway_is_starting() {
        let binding = Binding::default();
        let clock = pincer_core::FakeClock::new(0);
        let ctx = pincer_tools::ToolContext::new("/nonexistent", clock.shared(), 1_000);
        for tool in all(&binding) {
            let args = match tool.spec().name.as_str() {
                "message" => serde_json::json!({"action": "send", "message": "x"}),
                "cron" => serde_json::json!({"action": "list"}),
                "sessions_list" => serde_json::json!({}),
                "sessions_history" => serde_json::json!({"sessionKey": "main"}),
                _ => serde_json::json!({"sessionKey": "agent:main:session:x", "message": "x"}),
            };
            let got = tool.call(args, &ctx).await.unwrap_err().to_string();
            assert!(got.ends_with("the gateway is still starting; call the tool again in a moment"), "{got}");
        }
    }
}
