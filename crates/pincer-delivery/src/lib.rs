//! Pincer's durable delivery: channel adapters behind one trait, chunking and rendering.
//!
//! - [`channel`]: the [`channel::Channel`] trait and one adapter per platform (Discord, Telegram,
//!   Slack, webhook), with the table of what each supports.
//! - [`chunk`]: splitting a message into parts that fit one platform message.
//! - [`markdown`]: rendering Markdown to Telegram's HTML subset.

pub mod channel;
pub mod chunk;
pub mod markdown;
