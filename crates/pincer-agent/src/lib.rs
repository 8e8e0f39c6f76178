//! Pincer's agent runs.
//!
//! - [`provider`]: model providers behind one trait — OpenAI-compatible chat completions and
//!   Anthropic messages — with streaming, OpenClaw's error classes, and first-token, stall and
//!   deadline timeouts on the injected clock.
//! - [`models`]: `provider/model` references, the model chain a job resolves to, and retries
//!   with backoff and fallback along that chain.

pub mod models;
pub mod provider;
