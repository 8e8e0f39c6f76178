//! `send`, `deliveries.*` and `inbox.list`: the outbox as clients see it. Texts in answers may be
//! cut (`text` ends with a marker and `textChars` gives the full length), and pages may end early
//! to stay far below the frame limit.

use crate::state::{DeliveryErrorClass, DeliveryState, OriginKind, PartState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Params, methods};

methods! {
    /// Enqueues a message durably; with `wait`, answers once it settled.
    Send = "send" (SendParams) -> SendResult;
    /// Deliveries, newest first.
    DeliveriesList = "deliveries.list" (DeliveriesListParams) -> DeliveriesListResult;
    /// One delivery with a page of its parts and of its attempts.
    DeliveriesGet = "deliveries.get" (DeliveriesGetParams) -> DeliveriesGetResult;
    /// Sends a dead or unknown delivery again.
    DeliveriesRetry = "deliveries.retry" (DeliveryRef) -> RetryResult;
    /// Stops a pending delivery, or one being sent before its next part.
    DeliveriesCancel = "deliveries.cancel" (CancelParams) -> CancelResult;
    /// Deletes settled deliveries.
    DeliveriesPurge = "deliveries.purge" (PurgeParams) -> PurgeResult;
    /// Messages delivered to the local inbox, newest first.
    InboxList = "inbox.list" (InboxListParams) -> InboxListResult;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendParams {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// Accepted and ignored: Pincer runs one agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub idempotency_key: String,
    /// Media is refused (text only, for now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<String>,
    /// Accepted and ignored (a media hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Accepted and ignored (a media hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_voice: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gif_playback: Option<bool>,
    /// Accepted and ignored (a display hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_document: Option<bool>,
    /// Accepted and ignored (a display hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<bool>,
    /// Accepted and ignored (a display hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<String>,
    /// Pincer: wait until the delivery settles (delivered, dead or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    /// Pincer: how long to wait, default 30 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout_ms: Option<u64>,
}

impl Params for SendParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    pub ok: bool,
    pub delivery_id: String,
    /// False when the `idempotencyKey` named an earlier delivery.
    pub created: bool,
    pub channel: String,
    pub to: String,
    pub state: DeliveryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// OpenClaw's `runId`: the request's `idempotencyKey`.
    pub run_id: String,
    /// OpenClaw's `messageId`: the platform's id of the last part once delivered; until then
    /// (Pincer answers once the outbox holds the message) the delivery id, which
    /// `pincer deliveries show` takes.
    pub message_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeliveriesListParams {
    /// One state, or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

impl Params for DeliveriesListParams {}

/// A delivery (an outbox row) as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub state: DeliveryState,
    pub channel: String,
    pub to: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub origin: DeliveryOrigin,
    pub idempotency_key: String,
    pub best_effort: bool,
    pub text: String,
    /// The full length of a `text` that was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_chars: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_chars: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_class: Option<DeliveryErrorClass>,
    /// While pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What enqueued a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryOrigin {
    pub kind: OriginKind,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveriesListResult {
    pub deliveries: Vec<DeliveryView>,
    pub total: u64,
    pub offset: u32,
    pub limit: u32,
    pub has_more: bool,
    pub next_offset: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeliveriesGetParams {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_limit: Option<u32>,
}

impl Params for DeliveriesGetParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveriesGetResult {
    pub delivery: DeliveryView,
    pub parts: Vec<PartView>,
    pub parts_total: u64,
    pub parts_offset: u32,
    pub parts_next_offset: Option<u64>,
    pub attempts: Vec<AttemptView>,
    pub attempts_total: u64,
    pub attempts_offset: u32,
    pub attempts_next_offset: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One rendered part of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartView {
    pub index: u32,
    pub state: PartState,
    pub nonce: String,
    pub platform_message_id: Option<String>,
    pub dispatched_at_ms: Option<i64>,
    pub sent_at_ms: Option<i64>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_chars: Option<usize>,
}

/// One send attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at_ms: i64,
    pub part: u32,
    pub outcome: String,
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_chars: Option<usize>,
}

/// `{id}` of a delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRef {
    pub id: String,
}

impl Params for DeliveryRef {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryResult {
    pub ok: bool,
    pub retried: bool,
    pub id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CancelParams {
    pub id: String,
    /// How long to wait for a delivery being sent to stop (default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout_ms: Option<u64>,
}

impl Params for CancelParams {}

/// `deliveries.cancel`: `cancelled` once the delivery is dead (class `cancelled`); `stopping`
/// while the part in flight finishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelResult {
    pub ok: bool,
    pub id: String,
    pub cancelled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<bool>,
    /// A `DeliveryState` spelling (a string so the result keeps its `Default`).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PurgeParams {
    /// Default `["delivered"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than_ms: Option<u64>,
}

impl Params for PurgeParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeResult {
    pub ok: bool,
    pub purged: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InboxListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

impl Params for InboxListParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxMessage {
    pub id: i64,
    pub delivery_id: String,
    pub to: String,
    pub created_at_ms: i64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_chars: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxListResult {
    pub messages: Vec<InboxMessage>,
    pub total: u64,
    pub offset: u32,
    pub limit: u32,
    pub has_more: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
