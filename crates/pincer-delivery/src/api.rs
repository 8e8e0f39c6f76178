//! The delivery methods: `send`, `deliveries.list|get|retry|cancel|purge` and `inbox.list`, with
//! closed param schemas. The gateway maps each method to one function here.
//!
//! Every answer stays far below the protocol's frame limit whatever is stored: text fields are
//! cut (with a marker and the full length) and pages end early once they reach a size budget,
//! saying where the next page starts.

use std::sync::Arc;
use std::time::Duration;

use pincer_core::config::Config;
use pincer_core::{EventBus, SharedClock};
use pincer_cron::Origin;
use pincer_protocol::state::{DeliveryErrorClass, DeliveryState, OriginKind};
use pincer_store::{DeliveryFilter, DeliveryRow, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::announce::Announce;
use crate::channel::{BuildError, Channel, registry};
use crate::outbox::{CancelOutcome, Outbox};
use crate::parts::{TooLong, group};

/// Longest text (in characters) of one delivery in `deliveries.list`.
const LIST_TEXT_CHARS: usize = 1_000;
/// Longest text of a delivery, a part or an inbox message in `deliveries.get` / `inbox.list`.
const FULL_TEXT_CHARS: usize = 16_384;
/// Longest error or attempt detail.
const DETAIL_CHARS: usize = 2_000;
/// Serialised bytes a page of rows, parts or attempts may take before it ends early (each
/// answer holds at most two such pages: ~8 MiB, a third of the 25 MiB frame limit).
const PAGE_BYTES: usize = 4 << 20;

/// A delivery method's failure: bad params (`INVALID_REQUEST`) or the store (`UNAVAILABLE`).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("store: {0}")]
    Store(#[from] pincer_store::StoreError),
}

fn params<T: for<'de> Deserialize<'de>>(method: &str, v: &Value) -> Result<T, ApiError> {
    let v = if v.is_null() { json!({}) } else { v.clone() };
    if v.is_array() {
        // serde would read a struct from a list of its fields.
        return Err(ApiError::Invalid(format!("invalid {method} params: invalid type: sequence, expected an object")));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::Invalid(if path == "." {
            format!("invalid {method} params: {inner}")
        } else {
            format!("invalid {method} params: {path}: {inner}")
        })
    })
}

/// Builds every usable channel of the registry: those that need no configuration always, chat
/// channels when their section is present.
pub fn build_channels(
    config: &Config,
    store: &Store,
    events: &EventBus,
    clock: &SharedClock,
) -> Result<Vec<Arc<dyn Channel>>, BuildError> {
    registry::build_all(&registry::BuildContext { config, store, events, clock })
}

/// `text` cut to `max` characters, with a marker saying how many more there are.
fn clip_text(text: &str, max: usize) -> (String, Option<usize>) {
    match text.char_indices().nth(max) {
        None => (text.to_string(), None),
        Some((cut, _)) => {
            let total = text.chars().count();
            (format!("{}… [{} more characters not shown]", &text[..cut], group(total - max)), Some(total))
        }
    }
}

/// Puts `text` under `key`, cut to `max` characters; a cut text also gets `<key>Chars`: its length.
fn put_text(o: &mut serde_json::Map<String, Value>, key: &str, text: &str, max: usize) {
    let (shown, total) = clip_text(text, max);
    o.insert(key.into(), json!(shown));
    if let Some(total) = total {
        o.insert(format!("{key}Chars"), json!(total));
    }
}

/// Takes items (already JSON) until the page would pass [`PAGE_BYTES`]; always at least one.
fn page(items: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut used = 0;
    let mut out = Vec::new();
    for item in items {
        let size = serde_json::to_vec(&item).map(|b| b.len()).unwrap_or(0);
        if !out.is_empty() && used + size > PAGE_BYTES {
            break;
        }
        used += size;
        out.push(item);
    }
    out
}

/// A delivery as clients see it, its text cut to `text_chars` characters.
pub fn delivery_view(row: &DeliveryRow) -> Value {
    delivery_view_with(row, FULL_TEXT_CHARS)
}

fn delivery_view_with(row: &DeliveryRow, text_chars: usize) -> Value {
    let mut v = json!({
        "id": row.id,
        "state": row.state,
        "channel": row.channel,
        "to": row.target,
        "attempts": row.attempts,
        "maxAttempts": row.max_attempts,
        "createdAtMs": row.created_at_ms,
        "updatedAtMs": row.updated_at_ms,
        "origin": { "kind": row.origin_kind, "id": row.origin_id },
        "idempotencyKey": row.idempotency_key,
        "bestEffort": row.best_effort,
    });
    let o = v.as_object_mut().expect("object");
    put_text(o, "text", &row.body, text_chars);
    if let Some(e) = &row.last_error {
        put_text(o, "lastError", e, DETAIL_CHARS);
    }
    let mut put = |k: &str, val: Option<Value>| {
        if let Some(val) = val {
            o.insert(k.into(), val);
        }
    };
    put("threadId", row.thread_id.clone().map(Value::from));
    put("accountId", row.account_id.clone().map(Value::from));
    put("settledAtMs", row.settled_at_ms.map(Value::from));
    put("lastErrorClass", row.last_error_class.map(|c| json!(c)));
    if row.state == DeliveryState::Pending {
        put("nextAttemptAtMs", Some(json!(row.next_attempt_at_ms)));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SendParams {
    to: String,
    message: Option<String>,
    channel: Option<String>,
    account_id: Option<String>,
    thread_id: Option<String>,
    session_key: Option<String>,
    agent_id: Option<String>,
    idempotency_key: String,
    media_url: Option<String>,
    media_urls: Option<Vec<String>>,
    buffer: Option<String>,
    filename: Option<String>,
    content_type: Option<String>,
    as_voice: Option<bool>,
    gif_playback: Option<bool>,
    reply_to_id: Option<String>,
    force_document: Option<bool>,
    silent: Option<bool>,
    parse_mode: Option<String>,
    /// Pincer: wait until the delivery settles (delivered, dead or unknown).
    wait: Option<bool>,
    /// Pincer: how long to wait, default 30 s.
    wait_timeout_ms: Option<u64>,
}

/// `send`: enqueue a message durably (idempotent per `idempotencyKey`); with `wait`, answer once
/// it settled.
pub async fn send(outbox: &Outbox, announce: &Announce, events: &EventBus, v: &Value) -> Result<Value, ApiError> {
    let p: SendParams = params("send", v)?;
    let _ = (p.agent_id, p.reply_to_id, p.silent, p.parse_mode, p.content_type, p.filename);
    if p.media_url.is_some()
        || p.media_urls.is_some()
        || p.buffer.is_some()
        || p.as_voice.is_some()
        || p.gif_playback.is_some()
        || p.force_document.is_some()
    {
        return Err(ApiError::Invalid("invalid send params: media is not supported by Pincer yet; send text".into()));
    }
    let message = p.message.unwrap_or_default();
    if message.trim().is_empty() {
        return Err(ApiError::Invalid("invalid send params: message: must not be empty".into()));
    }
    if p.idempotency_key.trim().is_empty() {
        return Err(ApiError::Invalid("invalid send params: idempotencyKey: must not be empty".into()));
    }
    let route = announce
        .route(
            p.channel.as_deref(),
            Some(&p.to),
            p.thread_id.as_deref(),
            p.account_id.as_deref(),
            p.session_key.as_deref(),
        )
        .map_err(|e| ApiError::Invalid(format!("invalid send params: {e}")))?;
    let key = format!("send:{}", p.idempotency_key);
    let delivery = outbox
        .prepare(
            &route,
            &message,
            &key,
            &Origin { kind: OriginKind::Send, id: None, best_effort: false },
            None,
            TooLong::Refuse,
        )
        .map_err(|e| ApiError::Invalid(format!("invalid send params: {e}")))?;
    let mut settled = events.subscribe();
    let enqueued = outbox.enqueue(delivery).await?;
    let mut out = json!({ "ok": true, "deliveryId": enqueued.id, "created": enqueued.created, "channel": route.channel, "to": route.to });
    if p.wait != Some(true) {
        out["state"] = json!(DeliveryState::Pending);
        return Ok(out);
    }
    if !enqueued.created
        && let Some(row) = outbox_row(outbox, &enqueued.id).await?
        && row.state.is_terminal()
    {
        // A repeated key for a settled delivery: answer with how it settled.
        out["state"] = json!(row.state);
        if let Some(e) = row.last_error {
            out["error"] = json!(e);
        }
        return Ok(out);
    }
    let wait = Duration::from_millis(p.wait_timeout_ms.unwrap_or(30_000));
    let id = enqueued.id.clone();
    let outcome = tokio::time::timeout(wait, async {
        loop {
            match settled.recv().await {
                Ok(ev) if ev.name == "delivery" && ev.payload["id"] == id.as_str() => return Some(ev.payload.clone()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    })
    .await;
    match outcome {
        Ok(Some(ev)) => {
            out["state"] = ev["state"].clone();
            if !ev["error"].is_null() {
                out["error"] = ev["error"].clone();
            }
        }
        _ => {
            // Not settled in time (or it settled before we listened): report what is stored.
            let id = enqueued.id.clone();
            let row = outbox_row(outbox, &id).await?;
            out["state"] = json!(row.as_ref().map_or(DeliveryState::Pending, |r| r.state));
            if let Some(e) = row.and_then(|r| r.last_error) {
                out["error"] = json!(e);
            }
        }
    }
    Ok(out)
}

async fn outbox_row(outbox: &Outbox, id: &str) -> Result<Option<DeliveryRow>, ApiError> {
    let id = id.to_string();
    Ok(outbox.store().read(move |rd| rd.delivery_row(&id)).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListParams {
    state: Option<String>,
    states: Option<Vec<String>>,
    channel: Option<String>,
    origin_id: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

fn check_states(method: &str, states: &[String]) -> Result<Vec<DeliveryState>, ApiError> {
    states
        .iter()
        .map(|s| {
            s.parse::<DeliveryState>().map_err(|e| {
                ApiError::Invalid(format!(
                    "invalid {method} params: state \"{s}\" is not one of {}",
                    e.expected.join(", ")
                ))
            })
        })
        .collect()
}

pub async fn list(store: &Store, v: &Value) -> Result<Value, ApiError> {
    let p: ListParams = params("deliveries.list", v)?;
    let mut states = p.states.unwrap_or_default();
    states.extend(p.state.filter(|s| s != "all"));
    let states = check_states("deliveries.list", &states)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Invalid("invalid deliveries.list params: limit must be 1..500".into()));
    }
    let offset = p.offset.unwrap_or(0);
    let filter = DeliveryFilter { states, channel: p.channel, origin_id: p.origin_id, limit, offset };
    let (rows, total) = store.read(move |rd| rd.list_deliveries(&filter)).await?;
    let deliveries = page(rows.iter().map(|r| delivery_view_with(r, LIST_TEXT_CHARS)));
    let next = offset as u64 + deliveries.len() as u64;
    let has_more = next < total;
    Ok(json!({
        "deliveries": deliveries,
        "total": total, "offset": offset, "limit": limit, "hasMore": has_more,
        "nextOffset": if has_more { json!(next) } else { Value::Null },
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdParams {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GetParams {
    id: String,
    parts_offset: Option<u32>,
    parts_limit: Option<u32>,
    attempts_offset: Option<u32>,
    attempts_limit: Option<u32>,
}

/// `deliveries.get`: the row, a page of its parts (by index) and a page of its attempts
/// (oldest first), each with its total and where the next page starts.
pub async fn get(store: &Store, v: &Value) -> Result<Value, ApiError> {
    let p: GetParams = params("deliveries.get", v)?;
    let (parts_limit, attempts_limit) = (p.parts_limit.unwrap_or(100), p.attempts_limit.unwrap_or(100));
    for (name, limit) in [("partsLimit", parts_limit), ("attemptsLimit", attempts_limit)] {
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::Invalid(format!("invalid deliveries.get params: {name} must be 1..1000")));
        }
    }
    let (parts_offset, attempts_offset) = (p.parts_offset.unwrap_or(0), p.attempts_offset.unwrap_or(0));
    let id = p.id.clone();
    let detail = store
        .read(move |rd| rd.delivery_page(&id, parts_offset, parts_limit, attempts_offset, attempts_limit))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery not found: {}", p.id)))?;
    let parts = page(detail.parts.iter().map(|part| {
        let mut v = json!({
            "index": part.idx, "state": part.state, "nonce": part.nonce,
            "platformMessageId": part.platform_message_id, "dispatchedAtMs": part.dispatched_at_ms, "sentAtMs": part.sent_at_ms,
        });
        put_text(v.as_object_mut().expect("object"), "text", &part.body, FULL_TEXT_CHARS);
        v
    }));
    let attempts = page(detail.attempts.iter().map(|a| {
        let mut v = json!({ "atMs": a.at_ms, "part": a.part_idx, "outcome": a.outcome });
        let o = v.as_object_mut().expect("object");
        match &a.detail {
            Some(d) => put_text(o, "detail", d, DETAIL_CHARS),
            None => {
                o.insert("detail".into(), Value::Null);
            }
        }
        v
    }));
    let parts_next = parts.last().and_then(|p| p["index"].as_u64()).map(|i| i + 1).filter(|n| *n < detail.parts_total);
    let attempts_next = Some(attempts_offset as u64 + attempts.len() as u64).filter(|n| *n < detail.attempts_total);
    Ok(json!({
        "delivery": delivery_view(&detail.row),
        "parts": parts,
        "partsTotal": detail.parts_total, "partsOffset": parts_offset, "partsNextOffset": parts_next,
        "attempts": attempts,
        "attemptsTotal": detail.attempts_total, "attemptsOffset": attempts_offset, "attemptsNextOffset": attempts_next,
    }))
}

pub async fn retry(outbox: &Outbox, v: &Value) -> Result<Value, ApiError> {
    let p: IdParams = params("deliveries.retry", v)?;
    let row =
        outbox_row(outbox, &p.id).await?.ok_or_else(|| ApiError::NotFound(format!("delivery not found: {}", p.id)))?;
    if !outbox.retry(&p.id).await? {
        return Err(ApiError::Invalid(format!(
            "delivery {} is {}; only dead or unknown deliveries can be retried",
            p.id, row.state
        )));
    }
    Ok(json!({ "ok": true, "retried": true, "id": p.id }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CancelParams {
    id: String,
    /// How long to wait for a delivery being sent to stop (default 10 s).
    wait_timeout_ms: Option<u64>,
}

/// `deliveries.cancel`: a pending delivery is `dead` (class `cancelled`) at once; one being sent
/// finishes the request in flight and stops before its next part (waited for up to
/// `waitTimeoutMs`); a finished one is refused.
pub async fn cancel(outbox: &Outbox, events: &EventBus, v: &Value) -> Result<Value, ApiError> {
    let p: CancelParams = params("deliveries.cancel", v)?;
    let mut settled = events.subscribe();
    let row = match outbox.cancel(&p.id).await? {
        CancelOutcome::NotFound => return Err(ApiError::NotFound(format!("delivery not found: {}", p.id))),
        CancelOutcome::Finished(state) => {
            return Err(ApiError::Invalid(format!(
                "delivery {} is {state}; only pending or sending deliveries can be cancelled",
                p.id
            )));
        }
        CancelOutcome::Cancelled(row) => *row,
        CancelOutcome::Stopping => {
            let wait = Duration::from_millis(p.wait_timeout_ms.unwrap_or(10_000));
            let id = p.id.clone();
            let stopped = tokio::time::timeout(wait, async {
                loop {
                    match settled.recv().await {
                        Ok(ev) if ev.name == "delivery" && ev.payload["id"] == id.as_str() => return true,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return false,
                    }
                }
            })
            .await
            .unwrap_or(false);
            let row = outbox_row(outbox, &p.id).await?;
            match row {
                Some(row) if stopped || row.state != DeliveryState::Sending => row,
                _ => {
                    return Ok(json!({
                        "ok": true, "id": p.id, "cancelled": false, "stopping": true, "state": DeliveryState::Sending,
                        "message": "a part is being sent; the delivery stops before its next part (check with `pincer deliveries show`)",
                    }));
                }
            }
        }
    };
    let cancelled = row.state == DeliveryState::Dead && row.last_error_class == Some(DeliveryErrorClass::Cancelled);
    let mut out = json!({ "ok": true, "id": row.id, "cancelled": cancelled, "state": row.state });
    if let Some(e) = &row.last_error {
        out["error"] = json!(e);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PurgeParams {
    states: Option<Vec<String>>,
    older_than_ms: Option<u64>,
}

pub async fn purge(store: &Store, clock: &SharedClock, v: &Value) -> Result<Value, ApiError> {
    let p: PurgeParams = params("deliveries.purge", v)?;
    let states = match p.states {
        Some(names) => check_states("deliveries.purge", &names)?,
        None => vec![DeliveryState::Delivered],
    };
    if states.iter().any(|s| !s.is_terminal()) {
        return Err(ApiError::Invalid("invalid deliveries.purge params: pending deliveries cannot be purged".into()));
    }
    // A huge `olderThanMs` reaches before the epoch (nothing is that old) instead of wrapping.
    let older = i64::try_from(p.older_than_ms.unwrap_or(0)).unwrap_or(i64::MAX);
    let before = clock.now_ms().saturating_sub(older);
    let purged = store.write(move |tx| tx.purge_deliveries(&states, before)).await?;
    Ok(json!({ "ok": true, "purged": purged }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InboxParams {
    limit: Option<u32>,
    offset: Option<u32>,
}

pub async fn inbox_list(store: &Store, v: &Value) -> Result<Value, ApiError> {
    let p: InboxParams = params("inbox.list", v)?;
    let (limit, offset) = (p.limit.unwrap_or(50), p.offset.unwrap_or(0));
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Invalid("invalid inbox.list params: limit must be 1..500".into()));
    }
    let (rows, total) = store.read(move |rd| rd.list_inbox(limit, offset)).await?;
    let messages = page(rows.iter().map(|m| {
        let mut v = json!({ "id": m.id, "deliveryId": m.outbox_id, "to": m.target, "createdAtMs": m.created_at_ms });
        put_text(v.as_object_mut().expect("object"), "text", &m.text, FULL_TEXT_CHARS);
        v
    }));
    let has_more = offset as u64 + (messages.len() as u64) < total;
    Ok(json!({ "messages": messages, "total": total, "offset": offset, "limit": limit, "hasMore": has_more }))
}
