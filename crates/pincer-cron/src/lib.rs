//! Pincer's scheduler: OpenClaw-compatible cron jobs and exactly-once slot execution.
//!
//! - [`schedule`]: pure schedule math — `at`, `every` (anchor grid) and `cron` (croner + chrono-tz,
//!   Vixie DOM/DOW OR, `L`/`W`/`#`, 5 or 6 fields), DST handling, and the per-job stagger offset.
//! - [`channels`]: the registered channels as job validation sees them (names, prefixes, usable).
//! - [`job`]: the job JSON (closed schemas), OpenClaw's create defaults, validation, patches.
//! - [`scheduler`]: the one task that owns every job's timer and state — split into the actor,
//!   the in-memory table, start-up recovery and catch-up, the outcome → delivery plan, the next
//!   slot, failure alerts and the typed run record.
//! - [`runner`]: the in-process interfaces to the agent runner and the outbox.
//! - [`command`]: `command` payloads: streamed output with a cap, time limits, crash notes.
//! - [`supervisor`]: `pincer __supervise`, which makes a command's process group die with the
//!   gateway.
//! - [`api`]: the `cron.*` methods' params and results.

pub mod api;
pub mod channels;
pub mod command;
pub mod job;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod supervisor;

pub use channels::{ChannelCatalog, KnownChannel};
pub use job::Job;
pub use runner::{
    AgentRunner, Announcer, ExecOutcome, ExecStatus, Origin, PreflightError, PrepareError, Route, RouteError,
    RunContext, Settlement,
};
pub use scheduler::{CronDeps, CronError, CronService, RunMode};
