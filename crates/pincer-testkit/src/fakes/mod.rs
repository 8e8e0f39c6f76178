//! Fake channel and model servers: real HTTP servers on 127.0.0.1 with scriptable faults that
//! record what they accepted. Point an adapter's configurable base URL at `fake.base_url()`.
//! `static_site` serves a directory of web files (the interop suite hosts OpenClaw's Control UI).

pub mod anthropic;
pub mod discord;
pub mod discord_gateway;
pub mod openai;
pub mod slack;
pub mod socket;
pub mod static_site;
pub mod telegram;
pub mod webhook;
