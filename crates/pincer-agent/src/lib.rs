//! Pincer's agent runs.
//!
//! - [`provider`]: model providers behind one trait — OpenAI-compatible chat completions and
//!   Anthropic messages — with streaming, OpenClaw's error classes, and first-token, stall and
//!   deadline timeouts on the injected clock.
//! - [`models`]: `provider/model` references, the model chain a job resolves to, and retries
//!   with backoff and fallback along that chain.
//! - [`session`]: session keys (main, per-run isolated, named) and the history a turn sends.
//! - [`prompt`]: the system prompts (with the current time in the job's zone) and the cron
//!   user prompt.
//! - `turn`: one model call in one session, recorded in the transcript with its model and usage.
//! - [`service`]: [`Agents`], the service the gateway holds: the scheduler's [`AgentRunner`]
//!   (`agentTurn` and `systemEvent` payloads), the heartbeat that runs main-session turns only
//!   when events are queued, and the `cron.sessionRetention` sweep — all on the injected clock.
//! - [`api`]: the `agent`, `sessions.list`, `chat.history` (and `chat.startup`) and `wake` methods.
//! - [`chat`]: `chat.send`, `chat.abort`, `chat.metadata`, and the `agent` / `chat` /
//!   `session.message` events every interactive run streams.
//! - [`manage`]: `sessions.reset|describe|resolve|compact`, `agent.wait`, and the token usage
//!   reports `usage.status` / `usage.cost`.
//!
//! [`AgentRunner`]: pincer_cron::AgentRunner

pub mod api;
pub mod chat;
mod heartbeat;
pub mod manage;
pub mod models;
pub mod prompt;
pub mod provider;
mod retention;
pub mod service;
pub mod session;
mod turn;

pub use service::{AgentDeps, AgentError, AgentOptions, AgentTools, Agents, NO_MODEL};
pub use session::{SessionKind, SessionRef};

#[cfg(test)]
mod tests;
