//! Model providers behind one trait, one file per wire API.
//!
//! | `api`                | file           | endpoint                          | auth headers                         |
//! |----------------------|----------------|-----------------------------------|--------------------------------------|
//! | `openai-completions` | `openai.rs`    | `POST {baseUrl}/chat/completions` | `Authorization: Bearer` if a key set |
//! | `anthropic-messages` | `anthropic.rs` | `POST {baseUrl}/v1/messages`      | `x-api-key`, `anthropic-version`     |
//!
//! Both stream (SSE) or not, as the request asks, and add `models.providers.<name>.headers`.
//! They share `http.rs` (one client per provider, and the first-token, stall and deadline timers
//! on the injected clock), `sse.rs` (the event-stream parser) and `error.rs` (OpenClaw's error
//! classes). Retries and fallback between models live one level up, in [`crate::models`].

pub mod anthropic;
pub mod error;
mod http;
pub mod openai;
pub mod sse;
#[cfg(test)]
pub(crate) mod testing;
mod tool_calls;

use std::sync::Arc;

use pincer_core::SharedClock;
use pincer_core::config::{ProviderApi, ProviderConfig};
use serde::{Deserialize, Serialize};

pub use anthropic::AnthropicProvider;
pub use error::{ErrorClass, ProviderError, classify};
pub use openai::OpenAiProvider;

/// A boxed, `Send` future, so [`Provider`] stays dyn-compatible.
pub type BoxFuture<'a, T> = futures_util::future::BoxFuture<'a, T>;

/// Receives streamed text as it arrives.
pub type OnDelta<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A model API Pincer can call.
pub trait Provider: Send + Sync + 'static {
    /// The provider's name in `models.providers`.
    fn name(&self) -> &str;

    /// Runs one completion; streamed text deltas are passed to `on_delta` as they arrive (a
    /// non-streamed reply is passed once, whole). No retries happen here.
    fn complete<'a>(
        &'a self,
        req: &'a ChatRequest,
        on_delta: OnDelta<'a>,
    ) -> BoxFuture<'a, Result<ChatOutcome, ProviderError>>;
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// The result of one tool call (OpenAI's `tool` message; inside a user message for Anthropic).
    Tool,
}

/// One turn of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The tools an assistant message called, in the order the model wrote them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a [`Role::Tool`] message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A [`Role::Tool`] message that reports a failure (Anthropic's `is_error`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl ChatMessage {
    fn plain(role: Role, content: String) -> ChatMessage {
        ChatMessage { role, content, tool_calls: Vec::new(), tool_call_id: None, is_error: false }
    }

    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::plain(Role::User, content.into())
    }

    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage::plain(Role::Assistant, content.into())
    }

    /// An assistant message that called tools (its text may be empty).
    pub fn assistant_calls(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage { tool_calls, ..ChatMessage::plain(Role::Assistant, content.into()) }
    }

    /// The result of the call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>, is_error: bool) -> ChatMessage {
        ChatMessage { tool_call_id: Some(call_id.into()), is_error, ..ChatMessage::plain(Role::Tool, content.into()) }
    }
}

/// A tool call as the model wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id (`call_…`, `toolu_…`); one is made up when a server sends none.
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as received (it may not be valid JSON: the tool loop
    /// answers that as a tool error).
    pub arguments: String,
}

/// A tool offered to the model: its name, what it does, and a JSON schema of its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// One completion request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The provider-local model id (the part after `provider/`).
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    /// Output token limit; Anthropic requires one and gets 4096 when this is `None`.
    pub max_tokens: Option<u32>,
    pub stream: bool,
    /// Absolute time on the injected clock when the run's time limit ends.
    pub deadline_ms: Option<i64>,
    /// Tools the model may call; none are offered when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
}

impl ChatRequest {
    /// A streamed request with one user message and no limits.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            system: None,
            messages: vec![ChatMessage::user(prompt)],
            max_tokens: None,
            stream: true,
            deadline_ms: None,
            tools: Vec::new(),
        }
    }
}

/// Token accounting of one completion (the wire type: runs, transcripts and `agent` answers carry it).
pub use pincer_protocol::schema::agent::Usage;

/// The result of one successful completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatOutcome {
    /// The whole answer (every delta, concatenated).
    pub text: String,
    pub usage: Usage,
    /// The model as the provider reported it (the requested id when it reported none).
    pub model: String,
    /// As reported: `stop`, `length`, `end_turn`, `max_tokens`, `tool_calls`, `tool_use`, …
    pub finish_reason: Option<String>,
    /// The tools the model called, in order; the turn runs them and asks again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// How long a call may wait, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect (enforced by reqwest).
    pub connect_ms: u64,
    /// From sending the request to the first output: streamed text, reasoning or a tool call,
    /// or the first body byte of a reply that is not streamed.
    pub first_token_ms: u64,
    /// Longest silence between two pieces of the reply.
    pub stall_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect_ms: 10_000, first_token_ms: 60_000, stall_ms: 60_000 }
    }
}

impl Timeouts {
    /// `models.providers.<name>.timeoutSeconds`, when set, replaces the first-token and stall
    /// limits for that provider (OpenClaw's knob for slow local models).
    pub fn for_provider(self, config: &ProviderConfig) -> Timeouts {
        match config.timeout_seconds {
            Some(secs) if secs > 0 => {
                Timeouts { first_token_ms: secs.saturating_mul(1000), stall_ms: secs.saturating_mul(1000), ..self }
            }
            _ => self,
        }
    }
}

/// A provider entry that cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderSetupError {
    pub provider: String,
    /// Names the key at fault, e.g. `models.providers.local.headers.X-Key: …`.
    pub message: String,
}

/// Builds the provider for one `models.providers` entry.
pub fn from_config(
    name: &str,
    config: &ProviderConfig,
    clock: SharedClock,
    timeouts: Timeouts,
) -> Result<Arc<dyn Provider>, ProviderSetupError> {
    Ok(match config.api {
        ProviderApi::OpenAiCompletions => Arc::new(OpenAiProvider::new(name, config, clock, timeouts)?),
        ProviderApi::AnthropicMessages => Arc::new(AnthropicProvider::new(name, config, clock, timeouts)?),
    })
}
