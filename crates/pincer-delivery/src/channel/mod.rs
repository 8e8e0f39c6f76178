//! Channel adapters: one [`Channel`] trait, one file per platform.
//!
//! The outbox stores a message as parts (from [`Channel::chunk`]) with a validated [`Target`] (from
//! [`Channel::parse_target`]), then calls [`Channel::send`] once per stored part. `send` answers with
//! the platform's message id, or a [`SendError`] that says whether the part provably was not sent
//! (retry), never can be (dead-letter), or may have been: then the part is resent where the
//! platform deduplicates ([`Channel::safe_to_retry_ambiguous`]), looked for where the platform
//! can be searched ([`Channel::reconcile`]: found → delivered, missing → resent), and otherwise
//! reported `unknown`.
//!
//! Each adapter declares its name, label, pacing, target prefixes, how it is built from its config
//! section, its `doctor` checks and its column of this table in its own file ([`registry`]); the
//! table below is that registry's (a test keeps them equal).
//!
//! | | Discord | Telegram | Slack | Inbox | Webhook |
//! |---|---|---|---|---|---|
//! | `to` | `channel:<id>`, `user:<id>` (DM opened once, cached), `<@id>`, bare id = channel | chat id (negative for groups), `@username`, `<chat>:topic:<id>`, `<chat>:<id>` | `channel:<C…\|G…\|D…>`, `user:<U…\|W…>`, bare id by its first letter | an inbox name (letters, digits, `-_.`; `default` when empty) | `http(s)://` URL without credentials |
//! | thread | a thread id: posts to `channels/<thread>` | a topic id (`message_thread_id`) | a `thread_ts` (channel targets only) | refused | refused |
//! | part limit | 2000 chars and 17 lines | 4000 chars of Markdown source | 4000 chars | the whole text, one part | the whole text, one part |
//! | rendering | Markdown as is, mentions never ping | Telegram HTML; plain-text resend on "can't parse entities" | text as is, no unfurling | text as is | the text if it is JSON, else `{"text": …}` |
//! | idempotency | `nonce` + `enforce_nonce` | none | none; metadata `{row_id, part}` lets `conversations.history` find a sent part | a local write per part | `Idempotency-Key` header |
//! | ambiguous send retried | within 2 minutes of dispatch | never | after [`Channel::reconcile`] found it missing | always | always |
//! | other recovery | — | follows `migrate_to_chat_id` (once per send, then remembered) | — | — | private addresses refused unless `allowPrivateNetwork` |
//! | [`Channel::check`] | `GET /users/@me` | `getMe` | `auth.test` | nothing to check | nothing to check |
//!
//! Every adapter classifies the same way: a connect or DNS failure and a 429 are
//! [`SendError::NotSent`]; a bad token is `Permanent(Auth)`, an unknown or forbidden target
//! `Permanent(Target)`, a rejected body `Permanent(Payload)`, a refused configuration
//! `Permanent(Config)`; a timeout after the request was written, a reset, a 5xx, or a success
//! without a message id is [`SendError::Ambiguous`]. Redirects are never followed.

use pincer_protocol::state::DeliveryErrorClass;
use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod discord;
pub mod registry;
pub mod slack;
pub mod telegram;
pub mod webhook;

pub use discord::Discord;
pub use registry::{ChannelSpec, REGISTRY};
pub use slack::Slack;
pub use telegram::Telegram;
pub use webhook::Webhook;

/// A boxed, sendable future, so the trait stays object safe (`Arc<dyn Channel>`).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A parsed, validated destination on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The adapter's [`Channel::name`].
    pub channel: String,
    /// The normalised destination, in the adapter's own grammar (see the table above).
    pub to: String,
    /// A thread, topic or `thread_ts` inside `to`.
    pub thread: Option<String>,
}

/// Why a `to` (or thread id) is not a valid destination for a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {channel} target: {reason}")]
pub struct TargetError {
    /// The channel that refused the target.
    pub channel: &'static str,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

impl TargetError {
    pub(crate) fn new(channel: &'static str, reason: impl Into<String>) -> Self {
        TargetError { channel, reason: reason.into() }
    }
}

/// One stored part of an outbox row, as handed to [`Channel::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The outbox row this part belongs to.
    pub row_id: String,
    /// Position of this part in the row, from 0.
    pub index: u32,
    /// Number of parts in the row.
    pub total: u32,
    /// Where the part goes.
    pub target: Target,
    /// The text of this part, as returned by [`Channel::chunk`].
    pub text: String,
    /// Stable per (outbox row, part) across retries and restarts; ≤ 25 chars.
    pub nonce: String,
    /// Stable per row; webhooks send it as `Idempotency-Key`.
    pub idempotency_key: String,
    /// On the first part of a reply: the platform message it answers (Telegram quotes it).
    pub reply_to: Option<String>,
}

impl Part {
    /// A deterministic nonce for part `index` of row `row_id`: 25 hex characters of a SHA-256.
    pub fn derive_nonce(row_id: &str, index: u32) -> String {
        let digest = Sha256::digest(format!("pincer-part:{row_id}:{index}").as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest.iter() {
            hex.push_str(&format!("{byte:02x}"));
        }
        hex.truncate(25);
        hex
    }
}

/// Proof that the platform accepted a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The platform's id for the message (Discord snowflake, Telegram message id, Slack `ts`, …).
    pub message_id: String,
}

/// Which kind of permanent failure a send hit, so the dead letter can say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermanentClass {
    /// The token is missing, wrong, revoked or lacks a scope.
    Auth,
    /// The destination does not exist, is not reachable by the bot, or blocked it.
    Target,
    /// The platform refused the content (too long, empty, malformed).
    Payload,
    /// Pincer's own configuration forbids the send (e.g. a private webhook address).
    Config,
}

impl PermanentClass {
    /// The lowercase name stored with a dead letter (`auth`, `target`, `payload`, `config`).
    pub fn as_str(self) -> &'static str {
        DeliveryErrorClass::from(self).as_str()
    }
}

impl From<PermanentClass> for DeliveryErrorClass {
    fn from(c: PermanentClass) -> DeliveryErrorClass {
        match c {
            PermanentClass::Auth => DeliveryErrorClass::Auth,
            PermanentClass::Target => DeliveryErrorClass::Target,
            PermanentClass::Payload => DeliveryErrorClass::Payload,
            PermanentClass::Config => DeliveryErrorClass::Config,
        }
    }
}

impl fmt::Display for PermanentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a part was not (or not provably) delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Provably not delivered (connect failure, DNS, 429, typed pre-dispatch rejection): safe to retry.
    #[error("not sent: {message}")]
    NotSent {
        /// What happened.
        message: String,
        /// How long the platform asked us to wait, if it said.
        retry_after_ms: Option<u64>,
        /// A 429 (or the platform's equivalent): retry without charging an attempt.
        rate_limited: bool,
    },
    /// Will never succeed as is.
    #[error("{class} error: {message}")]
    Permanent {
        /// What kind of fix is needed.
        class: PermanentClass,
        /// What happened and what to do.
        message: String,
    },
    /// May or may not have reached the platform (timeout after the request was written, reset, 5xx).
    #[error("outcome unknown: {message}")]
    Ambiguous {
        /// What happened.
        message: String,
    },
}

impl SendError {
    /// The human-readable detail, without the class prefix.
    pub fn message(&self) -> &str {
        match self {
            SendError::NotSent { message, .. }
            | SendError::Permanent { message, .. }
            | SendError::Ambiguous { message } => message,
        }
    }

    pub(crate) fn not_sent(message: impl Into<String>) -> Self {
        SendError::NotSent { message: message.into(), retry_after_ms: None, rate_limited: false }
    }

    pub(crate) fn rate_limited(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        SendError::NotSent { message: message.into(), retry_after_ms, rate_limited: true }
    }

    pub(crate) fn permanent(class: PermanentClass, message: impl Into<String>) -> Self {
        SendError::Permanent { class, message: message.into() }
    }

    pub(crate) fn ambiguous(message: impl Into<String>) -> Self {
        SendError::Ambiguous { message: message.into() }
    }
}

/// Why an adapter could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// An action on a message already in a chat (the `message` tool's `react`, `edit`, `delete`). Unlike
/// a send it does not go through the outbox: it changes a message that exists, is safe to repeat
/// (a reaction set twice, an edit to the same text, a second delete answers "not found"), and its
/// result is what the model needs to read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Adds `emoji` to the message as the bot's reaction, or removes it with `remove`.
    React { emoji: String, remove: bool },
    /// Replaces the message's text.
    Edit { text: String },
    /// Deletes the message.
    Delete,
}

impl MessageAction {
    /// OpenClaw's action name.
    pub fn name(&self) -> &'static str {
        match self {
            MessageAction::React { .. } => "react",
            MessageAction::Edit { .. } => "edit",
            MessageAction::Delete => "delete",
        }
    }
}

/// One outbound chat platform (or webhook) behind a uniform, retry-aware interface.
pub trait Channel: Send + Sync + 'static {
    /// The channel id used in targets and config: `discord`, `telegram`, `slack` or `webhook`.
    fn name(&self) -> &'static str;

    /// Validates and normalises a destination (and optional thread) in this channel's grammar.
    fn parse_target(&self, to: &str, thread_id: Option<&str>) -> Result<Target, TargetError>;

    /// Splits a message into parts that each fit one platform message (none for blank text).
    fn chunk(&self, text: &str) -> Vec<String>;

    /// The most characters of source text one part holds (`usize::MAX`: the whole text is one
    /// part). Bounds the work of deciding whether a message fits `delivery.maxPartsPerMessage`.
    fn max_part_chars(&self) -> usize {
        usize::MAX
    }

    /// Sends one part and returns the platform's receipt.
    fn send<'a>(&'a self, part: &'a Part) -> BoxFuture<'a, Result<Receipt, SendError>>;

    /// One cheap authenticated call; returns the bot's identity (its name).
    fn check<'a>(&'a self) -> BoxFuture<'a, Result<String, SendError>>;

    /// Whether an Ambiguous send of this part may be retried without risking a duplicate.
    fn safe_to_retry_ambiguous(&self, dispatched_at_ms: i64, now_ms: i64) -> bool;

    /// Whether the platform deduplicates every resend of a part, however late (the webhook's
    /// `Idempotency-Key`): then the outbox commits a whole leased batch's `dispatching` marks in
    /// one transaction before the first request and its receipts in one after, since a part
    /// caught between the two is resent with its key and the platform drops the copy. It implies
    /// [`Channel::safe_to_retry_ambiguous`] at any time. Channels that dedupe for a while only
    /// (Discord's nonce) or not at all keep one part in flight per conversation.
    fn deduplicates_resends(&self) -> bool {
        false
    }

    /// How long after a part's dispatch [`Channel::reconcile`] can tell whether the platform has
    /// it (a request still in flight could otherwise land after the look); `None` when the
    /// platform offers no way to look.
    fn reconcile_after_ms(&self) -> Option<i64> {
        None
    }

    /// For a channel whose messages are rows of Pincer's own store (the inbox): writes parts in
    /// the outbox's transaction, so each commits with its receipt and nothing is ever in flight.
    fn local(&self) -> Option<&dyn LocalChannel> {
        None
    }

    /// Acts on the message `message_id` in `target` (its chat or channel): react, edit or delete.
    /// Channels that cannot refuse with a permanent error naming the action.
    fn act<'a>(
        &'a self,
        _target: &'a Target,
        _message_id: &'a str,
        action: &'a MessageAction,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        let (name, what) = (self.name(), action.name());
        Box::pin(async move {
            Err(SendError::permanent(
                PermanentClass::Config,
                format!("the {name} channel cannot {what} messages; use telegram, discord or slack"),
            ))
        })
    }

    /// Looks on the platform for a part whose send was ambiguous: its receipt when the platform
    /// has it, `None` when it provably does not (so a resend cannot duplicate it).
    fn reconcile<'a>(
        &'a self,
        _part: &'a Part,
        _dispatched_at_ms: i64,
    ) -> BoxFuture<'a, Result<Option<Receipt>, SendError>> {
        let name = self.name();
        Box::pin(async move {
            Err(SendError::permanent(
                PermanentClass::Config,
                format!("{name} offers no way to look for a sent message"),
            ))
        })
    }
}

/// A channel that stores its messages in Pincer's database ([`Channel::local`]): the outbox
/// writes a conversation's leased parts, their receipts and settlements in one transaction.
pub trait LocalChannel: Send + Sync {
    /// Stores `part` in `tx` (idempotent per outbox row) and returns its receipt.
    fn write(&self, tx: &pincer_store::Tx<'_>, part: &Part, now_ms: i64) -> Result<Receipt, pincer_store::StoreError>;

    /// After the transaction holding `part` committed (e.g. tell connected operators).
    fn committed(&self, part: &Part, receipt: &Receipt, now_ms: i64);
}

/// A response whose status line and body were fully received.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The body as text, shortened for an error message.
    pub fn snippet(&self) -> String {
        clip(String::from_utf8_lossy(&self.body).trim())
    }
}

/// Shortens platform-provided text so error messages stay one readable line.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 300;
    let one_line = text.replace(['\n', '\r'], " ");
    match one_line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Builds the HTTP client every adapter uses: per-request timeout, a shorter connect timeout (so a
/// connect that never finished is told apart from a request that got no answer), no redirects.
pub(crate) fn client_builder(user_agent: &str, timeout: Duration) -> reqwest::ClientBuilder {
    pincer_core::tls::install_default_provider();
    reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(timeout)
        .connect_timeout(timeout / 2)
        .redirect(reqwest::redirect::Policy::none())
}

pub(crate) fn build(channel: &str, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, BuildError> {
    builder.build().map_err(|e| BuildError(format!("cannot build the {channel} HTTP client: {}", chain(&e))))
}

/// Checks a configured API base URL and strips its trailing slash.
pub(crate) fn base_url(key: &str, value: &str) -> Result<String, BuildError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| BuildError(format!("{key} is not a URL ({e}): fix it in pincer.json")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BuildError(format!("{key} must be an http(s) URL")));
    }
    Ok(value.trim_end_matches('/').to_string())
}

pub(crate) fn non_empty(key: &str, value: &str) -> Result<(), BuildError> {
    if value.trim().is_empty() {
        return Err(BuildError(format!("{key} is empty: set it in pincer.json")));
    }
    Ok(())
}

/// An error and its sources as one line.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}

/// Sends a request and reads the whole answer, classifying transport failures.
pub(crate) async fn execute(channel: &str, request: reqwest::RequestBuilder) -> Result<Reply, SendError> {
    let response = request.send().await.map_err(|e| transport_error(channel, e))?;
    let status = response.status();
    let headers = response.headers().clone();
    match response.bytes().await {
        Ok(body) => Ok(Reply { status, headers, body }),
        // A refusal is a refusal even if its body broke off; classify it by status alone.
        Err(_) if status.is_client_error() => Ok(Reply { status, headers, body: Bytes::new() }),
        Err(e) => Err(SendError::ambiguous(format!(
            "{channel} answered HTTP {status} but the body broke off: {}",
            chain(&e.without_url())
        ))),
    }
}

/// Classifies an error that happened before a full response arrived.
pub(crate) fn transport_error(channel: &str, err: reqwest::Error) -> SendError {
    // The URL may carry a secret (Telegram's bot token, a webhook's path).
    let err = err.without_url();
    let detail = chain(&err);
    let mut source = err.source();
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<webhook::PrivateAddress>() {
            return SendError::permanent(PermanentClass::Config, refused.to_string());
        }
        source = inner.source();
    }
    if err.is_builder() {
        SendError::permanent(PermanentClass::Config, format!("{channel}: cannot build the request: {detail}"))
    } else if err.is_connect() {
        SendError::not_sent(format!("{channel}: cannot connect: {detail}"))
    } else if err.is_timeout() {
        SendError::ambiguous(format!("{channel}: no answer within the timeout after the request was sent"))
    } else {
        SendError::ambiguous(format!("{channel}: the connection failed after the request was sent: {detail}"))
    }
}

/// `Retry-After` in milliseconds (delta-seconds, possibly fractional).
pub(crate) fn retry_after_header(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    seconds_to_ms(value.trim().parse::<f64>().ok()?)
}

pub(crate) fn seconds_to_ms(seconds: f64) -> Option<u64> {
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).ceil() as u64)
}

/// Refuses a part addressed to another channel (a wiring bug, never retried).
pub(crate) fn expect_channel(name: &str, part: &Part) -> Result<(), SendError> {
    if part.target.channel != name {
        return Err(SendError::permanent(
            PermanentClass::Config,
            format!("a {} target was handed to the {name} adapter", part.target.channel),
        ));
    }
    Ok(())
}

/// Refuses a provider prefix such as `telegram:` (`prefixes` as the registry lists them, without
/// the colon): the channel is chosen separately.
pub(crate) fn refuse_prefix(channel: &'static str, to: &str, prefixes: &[&str]) -> Result<(), TargetError> {
    for prefix in prefixes {
        let head = format!("{prefix}:");
        if to.len() > head.len() && to.get(..head.len()).is_some_and(|h| h.eq_ignore_ascii_case(&head)) {
            return Err(TargetError::new(
                channel,
                format!("drop the `{head}` prefix from `{to}`: the channel is chosen separately"),
            ));
        }
    }
    Ok(())
}

/// Helpers shared by the adapters' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::time::Duration;

    use super::{Channel, Part, Target};

    /// The per-request timeout adapters get in tests: short so "no answer" tests stay fast, long
    /// enough that a loaded machine does not turn a prompt answer into a timeout.
    pub const TIMEOUT: Duration = Duration::from_millis(500);

    /// Part `index` of `total` of row `row`, with the nonce and idempotency key the outbox would store.
    pub fn part(target: &Target, row: &str, index: u32, total: u32, text: &str) -> Part {
        Part {
            row_id: row.into(),
            index,
            total,
            target: target.clone(),
            text: text.into(),
            nonce: Part::derive_nonce(row, index),
            idempotency_key: format!("pincer-{row}"),
            reply_to: None,
        }
    }

    /// Parses `to` with `channel` or panics with the error.
    pub fn target(channel: &dyn Channel, to: &str, thread: Option<&str>) -> Target {
        channel.parse_target(to, thread).unwrap_or_else(|e| panic!("{to}: {e}"))
    }

    /// One row per input: the normalised target, or the error text.
    pub fn parse_table(channel: &dyn Channel, cases: &[(&str, Option<&str>)]) -> String {
        let mut out = String::new();
        for (to, thread) in cases {
            let result = match channel.parse_target(to, *thread) {
                Ok(t) => format!("to={} thread={}", t.to, t.thread.as_deref().unwrap_or("-")),
                Err(e) => format!("error: {e}"),
            };
            let thread = thread.map(|t| format!(" (thread {t})")).unwrap_or_default();
            out.push_str(&format!("{to:?}{thread} => {result}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_stable_short_and_distinct() {
        let a = Part::derive_nonce("row-1", 0);
        assert_eq!(a, Part::derive_nonce("row-1", 0));
        assert_eq!(a.len(), 25);
        assert_ne!(a, Part::derive_nonce("row-1", 1));
        assert_ne!(a, Part::derive_nonce("row-2", 0));
    }

    #[test]
    fn target_serialises_camel_case() {
        let target = Target { channel: "telegram".into(), to: "-100".into(), thread: Some("7".into()) };
        let json = serde_json::to_string(&target).unwrap();
        assert_eq!(json, r#"{"channel":"telegram","to":"-100","thread":"7"}"#);
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), target);
    }

    #[test]
    fn clip_keeps_one_short_line() {
        assert_eq!(clip("a\nb"), "a b");
        assert_eq!(clip(&"é".repeat(400)).chars().count(), 301);
    }
}
