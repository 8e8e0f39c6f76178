//! Pincer's durable delivery: the SQLite outbox, its dispatcher, and the channel adapters.
//!
//! - [`channel`]: the [`channel::Channel`] trait and one adapter per platform (Discord, Telegram,
//!   Slack, webhook), with the table of what each supports.
//! - [`inbox`]: the local channel that needs no account (a fresh install's default).
//! - [`outbox`]: the dispatcher — leases, per-conversation FIFO, rate limits, backoff, the
//!   not-sent / permanent / ambiguous rules, settlement.
//! - [`announce`]: route resolution and the scheduler's in-process path into the outbox.
//! - [`api`]: `send`, `deliveries.*` and `inbox.list`.
//! - [`chunk`]: splitting a message into parts that fit one platform message.
//! - [`parts`]: a message's parts within `delivery.maxPartsPerMessage` (refused or cut with a marker).
//! - [`markdown`]: rendering Markdown to Telegram's HTML subset.
//! - [`rate`]: the per-channel token bucket.

pub mod announce;
pub mod api;
pub mod channel;
pub mod chunk;
pub mod inbox;
pub mod markdown;
pub mod outbox;
pub mod parts;
pub mod rate;

pub use announce::Announce;
pub use outbox::{CancelOutcome, Outbox, OutboxDeps};
pub use parts::TooLong;
