//! The in-process interfaces a run goes through: executing a payload and announcing a result.
//! The scheduler owns neither models nor channels; the gateway wires the agent runner and the
//! outbox in through these traits, and nothing here touches the gateway's WebSocket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pincer_protocol::state::{DeliveryState, OriginKind, RunErrorReason};
use pincer_store::NewDelivery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use pincer_protocol::state::ExecStatus;

use crate::job::Job;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything a run needs to know about itself.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: String,
    pub job: Job,
    /// The schedule slot this run is for (`None` for manual runs).
    pub slot_ms: Option<i64>,
    pub started_at_ms: i64,
    /// When the run's time limit ends, on the injected clock.
    pub deadline_ms: Option<i64>,
    /// The job's zone, for the current-time line of agent prompts.
    pub tz: String,
}

/// What executing a payload produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecOutcome {
    pub status: Option<ExecStatus>,
    /// The deliverable text (stdout of a command, the final reply of a turn).
    pub text: Option<String>,
    pub error: Option<String>,
    /// Why it failed: a model call's class (`timeout`, `rate_limit`, `auth`, …) or the run's own
    /// (`exit_code`, `interrupted`, …).
    pub error_reason: Option<RunErrorReason>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub usage: Option<Value>,
    pub session_key: Option<String>,
    /// What became of a `command` payload's process (kept in the run record as `command`).
    pub command: Option<crate::command::CommandReport>,
    /// The tool calls an agent turn made (`[{id, name, isError, errorClass?, ms}]`), kept in the
    /// run record as `toolCalls`.
    pub tool_calls: Option<Value>,
    /// The delay (ms) a run of a paced job proposed for its next check (the `cron` tool's
    /// `next_check`), measured from the run's end and clamped to the job's pacing.
    pub next_check_ms: Option<i64>,
}

impl ExecOutcome {
    pub fn ok(text: impl Into<String>) -> ExecOutcome {
        ExecOutcome { status: Some(ExecStatus::Ok), text: Some(text.into()), ..Default::default() }
    }

    pub fn error(error: impl Into<String>, reason: impl Into<RunErrorReason>) -> ExecOutcome {
        ExecOutcome {
            status: Some(ExecStatus::Error),
            error: Some(error.into()),
            error_reason: Some(reason.into()),
            ..Default::default()
        }
    }

    pub fn skipped(reason: impl Into<String>) -> ExecOutcome {
        ExecOutcome { status: Some(ExecStatus::Skipped), error: Some(reason.into()), ..Default::default() }
    }

    pub fn exec_status(&self) -> ExecStatus {
        self.status.unwrap_or(ExecStatus::Error)
    }
}

/// Runs agent turns and main-session system events (implemented by the agent crate).
pub trait AgentRunner: Send + Sync + 'static {
    /// Runs the payload of `run.job` (an `agentTurn` or `systemEvent`).
    fn run<'a>(&'a self, run: &'a RunContext) -> BoxFuture<'a, ExecOutcome>;
    /// Checks, before anything runs, that the job's model resolves (no silent fallback).
    fn preflight(&self, job: &Job) -> Result<(), PreflightError>;
}

/// Why a job's model does not resolve before its run; the message (the agent runner's) names
/// what to configure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    /// No model is configured at all.
    #[error("{0}")]
    NoModel(String),
    /// The job's model (or a fallback) names a provider or model that is not configured.
    #[error("{0}")]
    Unresolved(String),
}

/// A resolved delivery route: where a run's result goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub channel: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// How the route was found: `explicit`, `prefix`, `last`, `default`.
    pub source: String,
}

/// The outbox, seen from the scheduler (implemented by the delivery crate).
pub trait Announcer: Send + Sync + 'static {
    /// Resolves where `job`'s result goes, before any model call. `None` means "no delivery".
    fn resolve(&self, job: &Job) -> Result<Option<Route>, RouteError>;
    /// Resolves an alternate route (failure alerts, global defaults).
    fn resolve_destination(
        &self,
        channel: Option<&str>,
        to: Option<&str>,
        account: Option<&str>,
    ) -> Result<Route, RouteError>;
    /// Renders `body` for `route` into a delivery row; the scheduler commits it in the same
    /// transaction as the run's outcome.
    fn prepare(&self, route: &Route, body: &str, key: &str, origin: Origin) -> Result<NewDelivery, PrepareError>;
    /// Wakes the dispatcher after such a commit.
    fn kick(&self);
}

/// Why a delivery route does not resolve; each message says what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("accountId \"{0}\" is not supported: Pincer has one account per channel (omit it or use \"default\")")]
    Account(String),
    #[error("the \"{prefix}:\" prefix of \"{to}\" contradicts channel \"{channel}\"")]
    PrefixContradicts { prefix: String, to: String, channel: String },
    /// `add`: the registry's chat channels as config keys (`channels.discord, … or channels.slack`).
    #[error("no chat channel is configured to deliver to \"{to}\": add {add} to the config, or use channel \"inbox\"")]
    NoChatChannel { to: String, add: String },
    #[error(
        "Channel is required: {} channels are configured ({}) and channel \"last\" has no previous route; set delivery.channel (--channel)",
        .0.len(), .0.join(", ")
    )]
    ChannelRequired(Vec<String>),
    #[error("unknown channel \"{channel}\" (use {known})")]
    UnknownChannel { channel: String, known: String },
    #[error("channel \"{0}\" is not configured; add channels.{0} to the config")]
    NotConfigured(String),
    /// `syntax`: `: <the channel's own target syntax>`, or empty.
    #[error("a target is required for {channel}: set delivery.to (--to){syntax}")]
    TargetRequired { channel: String, syntax: String },
    #[error("a webhook delivery needs delivery.to (an http(s) URL)")]
    WebhookUrl,
    /// The channel refused the target's grammar; the message is the channel's.
    #[error("{0}")]
    Target(String),
}

/// Why a result could not be rendered into a delivery row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("channel \"{0}\" is not configured; add channels.{0} to the config")]
    NotConfigured(String),
    /// The channel refused the target's grammar; the message is the channel's.
    #[error("{0}")]
    Target(String),
    /// Longer than `delivery.maxPartsPerMessage` parts allow; the message says how to fix it.
    #[error("{0}")]
    TooLong(String),
    #[error("nothing to deliver: the text is empty")]
    Empty,
}

/// Who asked for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub kind: OriginKind,
    pub id: Option<String>,
    pub best_effort: bool,
}

/// How a delivery settled, reported back by the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The run id the delivery belongs to.
    pub run_id: String,
    pub outbox_id: String,
    /// `delivered`, `unknown` or `dead`.
    pub state: DeliveryState,
    pub error: Option<String>,
}

pub type SharedAgentRunner = Arc<dyn AgentRunner>;
pub type SharedAnnouncer = Arc<dyn Announcer>;
