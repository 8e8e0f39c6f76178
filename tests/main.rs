//! Pincer's end-to-end suite: the gateway tested at its boundaries — the WebSocket protocol, the
//! HTTP endpoints and the real `pincer` binary — against fake servers on 127.0.0.1.
//!
//! `interop` runs the stock OpenClaw CLI against Pincer; it is ignored by default and run by
//! `cargo xtask interop`, which installs Node 24 and `openclaw@2026.9.6` first.

mod support;

mod agent;
mod bad_input;
mod chat;
mod cli;
mod command;
mod config;
mod console;
mod crash;
mod cron;
mod delivery;
mod devices;
mod discord_inbound;
mod gateway_tools;
mod inbound;
mod inbound_slack;
mod interop;
mod logs;
mod openclaw_methods;
mod operator;
mod ops;
mod protocol;
mod registry;
mod schema;
mod service;
mod store;
mod supervision;
mod tools;
