//! The in-process interfaces a run goes through: executing a payload and announcing a result.
//! The scheduler owns neither models nor channels; the gateway wires the agent runner and the
//! outbox in through these traits, and nothing here touches the gateway's WebSocket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pincer_store::NewDelivery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::Job;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Execution outcome of a run, kept apart from delivery and completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    Ok,
    Error,
    Skipped,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Ok => "ok",
            ExecStatus::Error => "error",
            ExecStatus::Skipped => "skipped",
        }
    }
}

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
    /// A classified reason: `timeout`, `rate_limit`, `auth`, `exit_code`, `interrupted`, …
    pub error_reason: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub usage: Option<Value>,
    pub session_key: Option<String>,
    /// What became of a `command` payload's process (kept in the run record as `command`).
    pub command: Option<crate::command::CommandReport>,
}

impl ExecOutcome {
    pub fn ok(text: impl Into<String>) -> ExecOutcome {
        ExecOutcome { status: Some(ExecStatus::Ok), text: Some(text.into()), ..Default::default() }
    }

    pub fn error(error: impl Into<String>, reason: &str) -> ExecOutcome {
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
    fn preflight(&self, job: &Job) -> Result<(), String>;
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
    fn resolve(&self, job: &Job) -> Result<Option<Route>, String>;
    /// Resolves an alternate route (failure alerts, global defaults).
    fn resolve_destination(
        &self,
        channel: Option<&str>,
        to: Option<&str>,
        account: Option<&str>,
    ) -> Result<Route, String>;
    /// Renders `body` for `route` into a delivery row; the scheduler commits it in the same
    /// transaction as the run's outcome.
    fn prepare(&self, route: &Route, body: &str, key: &str, origin: Origin) -> Result<NewDelivery, String>;
    /// Wakes the dispatcher after such a commit.
    fn kick(&self);
}

/// Who asked for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub kind: &'static str,
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
    pub state: String,
    pub error: Option<String>,
}

pub type SharedAgentRunner = Arc<dyn AgentRunner>;
pub type SharedAnnouncer = Arc<dyn Announcer>;
