//! The delivery methods: `send`, `deliveries.list|get|retry|cancel|purge` and `inbox.list`, over
//! the typed wire schema (`pincer_protocol::schema::delivery`). The gateway parses the params and
//! maps each method to one function here.
//!
//! Every answer stays far below the protocol's frame limit whatever is stored: text fields are
//! cut (with a marker and the full length) and pages end early once they reach a size budget,
//! saying where the next page starts.

use pincer_protocol::state::{DeliveryErrorClass, DeliveryState, OriginKind};
use std::sync::Arc;
use std::time::Duration;

use pincer_core::config::Config;
use pincer_core::{EventBus, SharedClock};
use pincer_cron::Origin;
use pincer_protocol::schema::delivery::{
    self as wire, AttemptView, CancelParams, CancelResult, DeliveriesGetParams, DeliveriesGetResult,
    DeliveriesListParams, DeliveriesListResult, DeliveryOrigin, DeliveryRef, DeliveryView, InboxListParams,
    InboxListResult, InboxMessage, PartView, PurgeParams, PurgeResult, RetryResult, SendParams, SendResult,
};
use pincer_protocol::schema::{Method, ParamsError};
use pincer_store::{DeliveryFilter, DeliveryRow, Store};
use serde::Serialize;
use serde_json::Map;

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

impl From<ParamsError> for ApiError {
    fn from(e: ParamsError) -> ApiError {
        ApiError::Invalid(e.0)
    }
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

/// Takes items until the page would pass [`PAGE_BYTES`] serialised; always at least one.
fn page<T: Serialize>(items: impl Iterator<Item = T>) -> Vec<T> {
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
pub fn delivery_view(row: &DeliveryRow) -> DeliveryView {
    delivery_view_with(row, FULL_TEXT_CHARS)
}

fn delivery_view_with(row: &DeliveryRow, text_chars: usize) -> DeliveryView {
    let (text, text_total) = clip_text(&row.body, text_chars);
    let (last_error, last_error_chars) = match &row.last_error {
        Some(e) => {
            let (shown, total) = clip_text(e, DETAIL_CHARS);
            (Some(shown), total)
        }
        None => (None, None),
    };
    DeliveryView {
        id: row.id.clone(),
        state: row.state,
        channel: row.channel.clone(),
        to: row.target.clone(),
        attempts: row.attempts,
        max_attempts: row.max_attempts,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        origin: DeliveryOrigin { kind: row.origin_kind, id: row.origin_id.clone() },
        idempotency_key: row.idempotency_key.clone(),
        best_effort: row.best_effort,
        text,
        text_chars: text_total,
        last_error,
        last_error_chars,
        thread_id: row.thread_id.clone(),
        account_id: row.account_id.clone(),
        settled_at_ms: row.settled_at_ms,
        last_error_class: row.last_error_class,
        next_attempt_at_ms: (row.state == DeliveryState::Pending).then_some(row.next_attempt_at_ms),
        extra: Map::new(),
    }
}

/// `send`: enqueue a message durably (idempotent per `idempotencyKey`); with `wait`, answer once
/// it settled.
pub async fn send(
    outbox: &Outbox,
    announce: &Announce,
    events: &EventBus,
    p: SendParams,
) -> Result<SendResult, ApiError> {
    const M: &str = wire::Send::NAME;
    if p.media_url.is_some()
        || p.media_urls.is_some()
        || p.buffer.is_some()
        || p.as_voice.is_some()
        || p.gif_playback.is_some()
        || p.force_document.is_some()
    {
        return Err(ParamsError::new(M, "media is not supported by Pincer yet; send text").into());
    }
    let message = p.message.unwrap_or_default();
    if message.trim().is_empty() {
        return Err(ParamsError::new(M, "message: must not be empty").into());
    }
    if p.idempotency_key.trim().is_empty() {
        return Err(ParamsError::new(M, "idempotencyKey: must not be empty").into());
    }
    let route = announce
        .route(
            p.channel.as_deref(),
            Some(&p.to),
            p.thread_id.as_deref(),
            p.account_id.as_deref(),
            p.session_key.as_deref(),
        )
        .map_err(|e| ParamsError::new(M, e))?;
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
        .map_err(|e| ParamsError::new(M, e))?;
    // Only a caller that waits listens for the settlement (from before the commit, so it cannot
    // be missed); a receiver nobody reads still has to step over every event sent meanwhile.
    let settled = (p.wait == Some(true)).then(|| events.subscribe());
    let enqueued = outbox.enqueue(delivery).await?;
    let mut out = SendResult {
        ok: true,
        delivery_id: enqueued.id.clone(),
        created: enqueued.created,
        channel: route.channel.clone(),
        to: route.to.clone(),
        state: DeliveryState::Pending,
        error: None,
        run_id: p.idempotency_key.clone(),
        message_id: enqueued.id.clone(),
        extra: Map::new(),
    };
    let Some(mut settled) = settled else { return Ok(out) };
    if !enqueued.created
        && let Some(row) = outbox_row(outbox, &enqueued.id).await?
        && row.state.is_terminal()
    {
        // A repeated key for a settled delivery: answer with how it settled.
        out.state = row.state;
        out.error = row.last_error;
        return with_receipt(outbox, out).await;
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
            out.state = ev["state"].as_str().and_then(|s| s.parse().ok()).unwrap_or(DeliveryState::Pending);
            out.error = ev["error"].as_str().map(String::from);
        }
        _ => {
            // Not settled in time (or it settled before we listened): report what is stored.
            let id = enqueued.id.clone();
            let row = outbox_row(outbox, &id).await?;
            out.state = row.as_ref().map_or(DeliveryState::Pending, |r| r.state);
            out.error = row.and_then(|r| r.last_error);
        }
    }
    with_receipt(outbox, out).await
}

/// A delivered message's `messageId` is the platform's id of its last part, as OpenClaw's.
async fn with_receipt(outbox: &Outbox, mut out: SendResult) -> Result<SendResult, ApiError> {
    if out.state != pincer_protocol::state::DeliveryState::Delivered {
        return Ok(out);
    }
    let id = out.delivery_id.clone();
    let detail = outbox.store().read(move |rd| rd.get_delivery(&id)).await?;
    if let Some(receipt) = detail.and_then(|d| d.parts.into_iter().rev().find_map(|p| p.platform_message_id)) {
        out.message_id = receipt;
    }
    Ok(out)
}

async fn outbox_row(outbox: &Outbox, id: &str) -> Result<Option<DeliveryRow>, ApiError> {
    let id = id.to_string();
    Ok(outbox.store().read(move |rd| rd.delivery_row(&id)).await?)
}

fn check_states(method: &str, states: &[String]) -> Result<Vec<DeliveryState>, ApiError> {
    states
        .iter()
        .map(|s| {
            s.parse::<DeliveryState>().map_err(|e| {
                ParamsError::new(method, format!("state \"{s}\" is not one of {}", e.expected.join(", "))).into()
            })
        })
        .collect()
}

pub async fn list(store: &Store, p: DeliveriesListParams) -> Result<DeliveriesListResult, ApiError> {
    let mut states = p.states.unwrap_or_default();
    states.extend(p.state.filter(|s| s != "all"));
    let states = check_states(wire::DeliveriesList::NAME, &states)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ParamsError::new(wire::DeliveriesList::NAME, "limit must be 1..500").into());
    }
    let offset = p.offset.unwrap_or(0);
    let filter = DeliveryFilter { states, channel: p.channel, origin_id: p.origin_id, limit, offset };
    let (rows, total) = store.read(move |rd| rd.list_deliveries(&filter)).await?;
    let deliveries = page(rows.iter().map(|r| delivery_view_with(r, LIST_TEXT_CHARS)));
    let next = offset as u64 + deliveries.len() as u64;
    let has_more = next < total;
    Ok(DeliveriesListResult {
        deliveries,
        total,
        offset,
        limit,
        has_more,
        next_offset: has_more.then_some(next),
        extra: Map::new(),
    })
}

/// `deliveries.get`: the row, a page of its parts (by index) and a page of its attempts
/// (oldest first), each with its total and where the next page starts.
pub async fn get(store: &Store, p: DeliveriesGetParams) -> Result<DeliveriesGetResult, ApiError> {
    let (parts_limit, attempts_limit) = (p.parts_limit.unwrap_or(100), p.attempts_limit.unwrap_or(100));
    for (name, limit) in [("partsLimit", parts_limit), ("attemptsLimit", attempts_limit)] {
        if !(1..=1000).contains(&limit) {
            return Err(ParamsError::new(wire::DeliveriesGet::NAME, format!("{name} must be 1..1000")).into());
        }
    }
    let (parts_offset, attempts_offset) = (p.parts_offset.unwrap_or(0), p.attempts_offset.unwrap_or(0));
    let id = p.id.clone();
    let detail = store
        .read(move |rd| rd.delivery_page(&id, parts_offset, parts_limit, attempts_offset, attempts_limit))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery not found: {}", p.id)))?;
    let parts = page(detail.parts.iter().map(|part| {
        let (text, text_chars) = clip_text(&part.body, FULL_TEXT_CHARS);
        PartView {
            index: part.idx,
            state: part.state,
            nonce: part.nonce.clone(),
            platform_message_id: part.platform_message_id.clone(),
            dispatched_at_ms: part.dispatched_at_ms,
            sent_at_ms: part.sent_at_ms,
            text,
            text_chars,
        }
    }));
    let attempts = page(detail.attempts.iter().map(|a| {
        let (detail, detail_chars) = match &a.detail {
            Some(d) => {
                let (shown, total) = clip_text(d, DETAIL_CHARS);
                (Some(shown), total)
            }
            None => (None, None),
        };
        AttemptView { at_ms: a.at_ms, part: a.part_idx, outcome: a.outcome.as_str().into(), detail, detail_chars }
    }));
    let parts_next = parts.last().map(|p| p.index as u64 + 1).filter(|n| *n < detail.parts_total);
    let attempts_next = Some(attempts_offset as u64 + attempts.len() as u64).filter(|n| *n < detail.attempts_total);
    Ok(DeliveriesGetResult {
        delivery: delivery_view(&detail.row),
        parts,
        parts_total: detail.parts_total,
        parts_offset,
        parts_next_offset: parts_next,
        attempts,
        attempts_total: detail.attempts_total,
        attempts_offset,
        attempts_next_offset: attempts_next,
        extra: Map::new(),
    })
}

pub async fn retry(outbox: &Outbox, p: DeliveryRef) -> Result<RetryResult, ApiError> {
    let row =
        outbox_row(outbox, &p.id).await?.ok_or_else(|| ApiError::NotFound(format!("delivery not found: {}", p.id)))?;
    if !outbox.retry(&p.id).await? {
        return Err(ApiError::Invalid(format!(
            "delivery {} is {}; only dead or unknown deliveries can be retried",
            p.id, row.state
        )));
    }
    Ok(RetryResult { ok: true, retried: true, id: p.id, extra: Map::new() })
}

/// `deliveries.cancel`: a pending delivery is `dead` (class `cancelled`) at once; one being sent
/// finishes the request in flight and stops before its next part (waited for up to
/// `waitTimeoutMs`); a finished one is refused.
pub async fn cancel(outbox: &Outbox, events: &EventBus, p: CancelParams) -> Result<CancelResult, ApiError> {
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
                    return Ok(CancelResult {
                        ok: true,
                        id: p.id,
                        cancelled: false,
                        stopping: Some(true),
                        state: DeliveryState::Sending.as_str().into(),
                        message: Some(
                            "a part is being sent; the delivery stops before its next part (check with `pincer deliveries show`)"
                                .into(),
                        ),
                        ..CancelResult::default()
                    });
                }
            }
        }
    };
    let cancelled = row.state == DeliveryState::Dead && row.last_error_class == Some(DeliveryErrorClass::Cancelled);
    Ok(CancelResult {
        ok: true,
        id: row.id,
        cancelled,
        state: row.state.as_str().into(),
        error: row.last_error,
        ..CancelResult::default()
    })
}

pub async fn purge(store: &Store, clock: &SharedClock, p: PurgeParams) -> Result<PurgeResult, ApiError> {
    const M: &str = wire::DeliveriesPurge::NAME;
    let states = match p.states {
        Some(names) => check_states(M, &names)?,
        None => vec![DeliveryState::Delivered],
    };
    if states.iter().any(|s| !s.is_terminal()) {
        return Err(ParamsError::new(M, "pending deliveries cannot be purged").into());
    }
    // A huge `olderThanMs` reaches before the epoch (nothing is that old) instead of wrapping.
    let older = i64::try_from(p.older_than_ms.unwrap_or(0)).unwrap_or(i64::MAX);
    let before = clock.now_ms().saturating_sub(older);
    let purged = store.write(move |tx| tx.purge_deliveries(&states, before)).await?;
    Ok(PurgeResult { ok: true, purged: purged as u64, extra: Map::new() })
}

pub async fn inbox_list(store: &Store, p: InboxListParams) -> Result<InboxListResult, ApiError> {
    let (limit, offset) = (p.limit.unwrap_or(50), p.offset.unwrap_or(0));
    if !(1..=500).contains(&limit) {
        return Err(ParamsError::new(wire::InboxList::NAME, "limit must be 1..500").into());
    }
    let (rows, total) = store.read(move |rd| rd.list_inbox(limit, offset)).await?;
    let messages = page(rows.iter().map(|m| {
        let (text, text_chars) = clip_text(&m.text, FULL_TEXT_CHARS);
        InboxMessage {
            id: m.id,
            delivery_id: m.outbox_id.clone(),
            to: m.target.clone(),
            created_at_ms: m.created_at_ms,
            text,
            text_chars,
        }
    }));
    let has_more = offset as u64 + (messages.len() as u64) < total;
    Ok(InboxListResult { messages, total, offset, limit, has_more, extra: Map::new() })
}
