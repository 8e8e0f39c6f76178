//! The outbox dispatcher: a continuous loop that leases due rows from SQLite and sends them
//! through the channel adapters, part by part, recording progress before and after each request.
//!
//! - **No startup budget.** After a restart, leased rows return to `pending` and parts caught
//!   mid-send become `unknown`; then the normal loop runs. Nothing is left "for the next restart".
//! - **FIFO per conversation, parallel across.** A worker owns one conversation's leased rows and
//!   sends them in order; a row waiting for a retry holds back the rows behind it.
//! - **Retry only what provably was not sent.** A 429 pauses the channel for `retry_after` without
//!   charging an attempt; other not-sent errors back off 5 s, 25 s, 2 min, 10 min up to
//!   `delivery.maxAttempts`; permanent errors go to `dead` at once; an ambiguous send is resent only
//!   where the platform deduplicates (Discord nonce, webhook `Idempotency-Key`), else it is
//!   reported `unknown` — never silently replayed.
//! - **Rejected credentials stop a channel.** Its rows stay `pending` (nothing is thrown away) and
//!   `health` says so until the configuration is fixed.
//!
//! **Architecture Invariant:** a part is marked `dispatching` (committed) before its request is
//! sent, and `sent` (committed) before the next part goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pincer_core::{EventBus, Metrics, SharedClock};
use pincer_cron::{Origin, Route, Settlement};
use pincer_store::{AttemptRow, DeliveryRow, Enqueued, LeasedDelivery, NewDelivery, PartRow, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::channel::{Channel, Part, Receipt, SendError, Target};
use crate::rate::Bucket;

/// Backoff after the n-th not-sent or ambiguous attempt: 5 s, 25 s, 2 min, then 10 min.
pub const BACKOFF_MS: [i64; 4] = [5_000, 25_000, 120_000, 600_000];
/// How long a lease lasts (a row stuck longer is returned at the next start).
pub const LEASE_MS: i64 = 10 * 60_000;
/// Rows of one conversation leased together.
const PER_CONVERSATION: u32 = 32;
/// The loop re-checks at least this often.
const WATCHDOG_MS: i64 = 60_000;

/// Everything the outbox needs.
pub struct OutboxDeps {
    pub store: Store,
    pub clock: SharedClock,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub generation: i64,
    pub config: pincer_core::config::DeliveryConfig,
    /// Every usable channel, by name (`inbox` and `webhook` always; chat channels when configured).
    pub channels: Vec<Arc<dyn Channel>>,
    /// Settled cron deliveries are reported here (to the scheduler).
    pub settled: mpsc::UnboundedSender<Settlement>,
}

/// Why a channel is not being sent to right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    /// Rate limited until then; `None` = until the configuration changes (credentials rejected).
    pub until_ms: Option<i64>,
    pub reason: String,
}

/// Handle to the outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    events: EventBus,
    metrics: Arc<Metrics>,
    generation: i64,
    max_attempts: u32,
    max_parallel: usize,
    channels: HashMap<String, Arc<dyn Channel>>,
    rates: HashMap<String, f64>,
    buckets: Mutex<HashMap<String, Bucket>>,
    pauses: Mutex<HashMap<String, Pause>>,
    notify: Notify,
    settled: mpsc::UnboundedSender<Settlement>,
    stop: watch::Sender<bool>,
}

/// What to do with a part before sending it.
enum Unknown {
    /// Send it (it was never dispatched, or a resend cannot duplicate it).
    Send,
    /// The platform has it already: record the receipt instead of sending.
    Found(Receipt),
    /// The row stops here.
    Stop(RowOutcome),
}

enum RowOutcome {
    /// The row is terminal (delivered, dead, unknown): go on with the conversation.
    Done,
    /// The row waits (backoff or a paused channel): rows behind it must wait too.
    Hold,
}

impl Outbox {
    /// Returns interrupted work to the queue and starts the dispatcher.
    pub async fn start(deps: OutboxDeps) -> Result<Outbox, StoreError> {
        let now = deps.clock.now_ms();
        let interrupted = deps.store.write(move |tx| tx.recover_outbox(now)).await?;
        if !interrupted.is_empty() {
            tracing::warn!(
                rows = interrupted.len(),
                "outbox: parts were mid-send at the last stop; they are now `unknown`"
            );
        }
        let rates = deps.channels.iter().map(|c| (c.name().to_string(), deps.config.rate_limit(c.name()))).collect();
        let inner = Arc::new(Inner {
            store: deps.store,
            clock: deps.clock,
            events: deps.events,
            metrics: deps.metrics,
            generation: deps.generation,
            max_attempts: deps.config.max_attempts,
            max_parallel: deps.config.max_parallel as usize,
            channels: deps.channels.into_iter().map(|c| (c.name().to_string(), c)).collect(),
            rates,
            buckets: Mutex::new(HashMap::new()),
            pauses: Mutex::new(HashMap::new()),
            notify: Notify::new(),
            settled: deps.settled,
            stop: watch::Sender::new(false),
        });
        tokio::spawn(dispatch_loop(inner.clone()));
        Ok(Outbox { inner })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Wakes the dispatcher (after a commit that added rows).
    pub fn kick(&self) {
        self.inner.notify.notify_one();
    }

    pub fn channel(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.inner.channels.get(name)
    }

    /// Names of the usable channels.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.channels.keys().cloned().collect();
        names.sort();
        names
    }

    /// Channels not being sent to, and why.
    pub fn pauses(&self) -> HashMap<String, Pause> {
        let now = self.inner.clock.now_ms();
        let mut pauses = self.inner.pauses.lock().expect("pauses lock");
        pauses.retain(|_, p| p.until_ms.is_none_or(|u| u > now));
        pauses.clone()
    }

    /// Renders `body` for `route` into a delivery row: parts chunked for the channel, a stable
    /// nonce per part, the route's idempotency key.
    pub fn prepare(
        &self,
        route: &Route,
        body: &str,
        key: &str,
        origin: &Origin,
        max_attempts: Option<u32>,
    ) -> Result<NewDelivery, String> {
        let channel = self.channel(&route.channel).ok_or_else(|| {
            format!("channel \"{}\" is not configured; add channels.{} to the config", route.channel, route.channel)
        })?;
        let target = channel.parse_target(&route.to, route.thread_id.as_deref()).map_err(|e| e.to_string())?;
        let parts = channel.chunk(body);
        if parts.is_empty() {
            return Err("nothing to deliver: the text is empty".into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let parts = parts.into_iter().enumerate().map(|(i, text)| (text, Part::derive_nonce(&id, i as u32))).collect();
        Ok(NewDelivery {
            id,
            idempotency_key: key.to_string(),
            origin_kind: origin.kind.to_string(),
            origin_id: origin.id.clone(),
            channel: target.channel,
            account_id: route.account_id.clone(),
            target: target.to,
            thread_id: target.thread,
            max_attempts: max_attempts.unwrap_or(self.inner.max_attempts),
            best_effort: origin.best_effort,
            body: body.to_string(),
            parts,
            created_at_ms: self.inner.clock.now_ms(),
        })
    }

    /// Commits a delivery (a repeated key returns the first row) and wakes the dispatcher.
    pub async fn enqueue(&self, d: NewDelivery) -> Result<Enqueued, StoreError> {
        let channel = d.channel.clone();
        let enqueued = self.inner.store.write(move |tx| tx.enqueue_delivery(&d)).await?;
        if enqueued.created {
            pincer_core::crashpoint::hit("outbox.enqueued");
            self.inner.metrics.inc(
                "pincer_outbox_enqueued_total",
                "Deliveries accepted into the outbox.",
                &[("channel", &channel)],
            );
        }
        self.kick();
        Ok(enqueued)
    }

    /// Sends a `dead` or `unknown` row again (attempts reset; parts already sent stay sent).
    pub async fn retry(&self, id: &str) -> Result<bool, StoreError> {
        let (id, now) = (id.to_string(), self.inner.clock.now_ms());
        let ok = self.inner.store.write(move |tx| tx.retry_delivery(&id, now)).await?;
        if ok {
            self.kick();
        }
        Ok(ok)
    }

    /// Stops the dispatcher loop; in-flight sends finish or are recovered at the next start.
    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.notify.notify_one();
    }

    /// Per-channel health: queue depth, oldest pending age, dead and unknown counts, and whether
    /// the channel is paused.
    pub async fn health(&self) -> Value {
        let now = self.inner.clock.now_ms();
        let stats = self.inner.store.read(|rd| rd.outbox_stats()).await.unwrap_or_default();
        let pauses = self.pauses();
        let mut channels = serde_json::Map::new();
        for name in self.channel_names() {
            let s = stats.iter().find(|s| s.channel == name).cloned().unwrap_or_default();
            let pause = pauses.get(&name);
            let state = match pause {
                Some(p) if p.until_ms.is_none() => "credentials-rejected",
                Some(_) => "rate-limited",
                None => "healthy",
            };
            let mut entry = json!({
                "configured": true,
                "healthState": state,
                "pending": s.pending + s.sending,
                "oldestPendingAgeMs": s.oldest_pending_created_at_ms.map(|t| (now - t).max(0)),
                "dead": s.dead,
                "unknown": s.unknown,
                "delivered": s.delivered,
            });
            if let Some(p) = pause {
                entry["lastError"] = json!(p.reason);
                if let Some(u) = p.until_ms {
                    entry["pausedUntilMs"] = json!(u);
                }
            }
            channels.insert(name, entry);
        }
        json!({
            "channels": channels,
            "failed": stats.iter().filter(|s| s.dead > 0).map(|s| json!({
                "queueName": s.channel, "count": s.dead, "oldestFailedAt": s.oldest_dead_settled_at_ms,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Inner {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn paused_channels(&self, now: i64) -> (Vec<String>, Option<i64>) {
        let mut pauses = self.pauses.lock().expect("pauses lock");
        pauses.retain(|_, p| p.until_ms.is_none_or(|u| u > now));
        let earliest = pauses.values().filter_map(|p| p.until_ms).min();
        (pauses.keys().cloned().collect(), earliest)
    }

    fn pause(&self, channel: &str, until_ms: Option<i64>, reason: String) {
        let mut pauses = self.pauses.lock().expect("pauses lock");
        let entry = pauses.entry(channel.to_string()).or_insert(Pause { until_ms, reason: reason.clone() });
        // A credentials pause is not shortened by a later rate limit.
        if entry.until_ms.is_some() {
            entry.until_ms = match (entry.until_ms, until_ms) {
                (_, None) => None,
                (Some(a), Some(b)) => Some(a.max(b)),
                (None, _) => None,
            };
            entry.reason = reason;
        }
    }

    /// Waits for the channel's rate limiter.
    async fn take_token(&self, channel: &str) {
        let rate = self.rates.get(channel).copied().unwrap_or(0.0);
        if rate <= 0.0 {
            return;
        }
        let now = self.now();
        let wait = self
            .buckets
            .lock()
            .expect("buckets lock")
            .entry(channel.to_string())
            .or_insert_with(|| Bucket::new(rate, now))
            .take(now);
        if wait > 0 {
            self.clock.sleep_until(now + wait).await;
        }
    }

    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&pincer_store::Tx<'_>) -> pincer_store::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.store.write(f).await
    }

    /// Makes a row terminal and tells its owner.
    async fn settle(&self, row: &DeliveryRow, state: &str, charge: bool, error: Option<String>, class: Option<&str>) {
        let now = self.now();
        let (id, st, class_owned) = (row.id.clone(), state.to_string(), class.map(String::from));
        let err = error.clone();
        let settled = self
            .write(move |tx| tx.settle_delivery(&id, &st, charge, err.as_deref(), class_owned.as_deref(), now))
            .await;
        if let Err(e) = settled {
            tracing::error!(delivery = %row.id, error = %e, "outbox: cannot record a settled delivery");
            return;
        }
        self.settled_notify(row, state, error);
    }

    /// Metrics, the `delivery` event and the owner's settlement, once a row is terminal in the store.
    fn settled_notify(&self, row: &DeliveryRow, state: &str, error: Option<String>) {
        let now = self.now();
        let labels = [("channel", row.channel.as_str()), ("state", state)];
        self.metrics.inc("pincer_outbox_settled_total", "Deliveries that reached a final state.", &labels);
        if state == "delivered" {
            let took = (now - row.created_at_ms).max(0) as f64 / 1000.0;
            self.metrics.observe(
                "pincer_outbox_delivery_seconds",
                "From enqueue to delivered.",
                &[("channel", &row.channel)],
                took,
            );
        } else {
            tracing::warn!(delivery = %row.id, channel = %row.channel, state, error = error.as_deref().unwrap_or(""), "outbox: delivery not delivered");
        }
        self.events.emit(
            "delivery",
            json!({ "id": row.id, "channel": row.channel, "to": row.target, "state": state, "error": error, "originId": row.origin_id }),
            Some("operator.read"),
        );
        if row.origin_kind == "cron"
            && let Some(run_id) = &row.origin_id
        {
            let _ = self.settled.send(Settlement {
                run_id: run_id.clone(),
                outbox_id: row.id.clone(),
                state: state.into(),
                error,
            });
        }
    }

    /// Puts the row back for later; `charge` counts an attempt.
    async fn reschedule(&self, row: &DeliveryRow, at_ms: i64, charge: bool, error: &str, class: &str) {
        let now = self.now();
        let (id, error_s, class_s) = (row.id.clone(), error.to_string(), class.to_string());
        if let Err(e) = self.write(move |tx| tx.reschedule_delivery(&id, at_ms, charge, &error_s, &class_s, now)).await
        {
            tracing::error!(delivery = %row.id, error = %e, "outbox: cannot reschedule a delivery");
        }
    }

    async fn attempt(&self, row: &DeliveryRow, part: u32, outcome: &str, detail: Option<String>) {
        self.metrics.inc(
            "pincer_outbox_attempts_total",
            "Send attempts by channel and outcome.",
            &[("channel", &row.channel), ("outcome", outcome)],
        );
        let a = AttemptRow { at_ms: self.now(), part_idx: part, outcome: outcome.into(), detail };
        let id = row.id.clone();
        let _ = self.write(move |tx| tx.record_attempt(&id, &a)).await;
    }

    /// Sends one row's remaining parts in order.
    async fn deliver(&self, leased: LeasedDelivery) -> RowOutcome {
        let LeasedDelivery { row, parts } = leased;
        let Some(channel) = self.channels.get(&row.channel).cloned() else {
            let msg = format!(
                "channel \"{}\" is not configured; add channels.{} to the config, then `pincer deliveries retry {}`",
                row.channel, row.channel, row.id
            );
            self.settle(&row, "dead", false, Some(msg), Some("config")).await;
            return RowOutcome::Done;
        };
        let target = Target { channel: row.channel.clone(), to: row.target.clone(), thread: row.thread_id.clone() };
        let total = parts.len() as u32;
        for part in parts.iter().filter(|p| p.state != "sent") {
            let request = Part {
                row_id: row.id.clone(),
                index: part.idx,
                total,
                target: target.clone(),
                text: part.body.clone(),
                nonce: part.nonce.clone(),
                idempotency_key: row.idempotency_key.clone(),
            };
            match self.check_unknown(&row, part, &request, channel.as_ref()).await {
                Unknown::Send => {}
                Unknown::Found(receipt) => {
                    if let Some(outcome) = self.record_sent(&row, &parts, part.idx, receipt, "reconciled").await {
                        return outcome;
                    }
                    continue;
                }
                Unknown::Stop(outcome) => return outcome,
            }
            self.take_token(&row.channel).await;
            let (id, idx, now) = (row.id.clone(), part.idx, self.now());
            if let Err(e) = self.write(move |tx| tx.mark_part_dispatching(&id, idx, now)).await {
                tracing::error!(delivery = %row.id, error = %e, "outbox: cannot mark a part dispatching; will retry");
                self.reschedule(&row, self.now() + BACKOFF_MS[0], false, &e.to_string(), "store").await;
                return RowOutcome::Hold;
            }
            pincer_core::crashpoint::hit("outbox.dispatching");
            let started = Instant::now();
            let result = channel.send(&request).await;
            self.metrics.observe(
                "pincer_outbox_send_seconds",
                "One request to a channel API.",
                &[("channel", &row.channel)],
                started.elapsed().as_secs_f64(),
            );
            match result {
                Ok(receipt) => {
                    pincer_core::crashpoint::hit("outbox.sent");
                    if let Some(outcome) = self.record_sent(&row, &parts, part.idx, receipt, "sent").await {
                        return outcome;
                    }
                }
                Err(e) => return self.failed(&row, part, channel.as_ref(), e).await,
            }
        }
        self.settle(&row, "delivered", true, None, None).await;
        RowOutcome::Done
    }

    /// Records that the platform has part `idx` (`outcome`: `sent`, or `reconciled` when it was
    /// found after an ambiguous send), in one commit with — for the last part — the settlement.
    /// `Some` when the row is finished.
    async fn record_sent(
        &self,
        row: &DeliveryRow,
        parts: &[PartRow],
        idx: u32,
        receipt: Receipt,
        outcome: &str,
    ) -> Option<RowOutcome> {
        let last = parts.iter().filter(|p| p.state != "sent").all(|p| p.idx <= idx);
        let (id, now, mid) = (row.id.clone(), self.now(), receipt.message_id);
        let attempt = AttemptRow { at_ms: now, part_idx: idx, outcome: outcome.into(), detail: Some(mid.clone()) };
        let stored = self
            .write(move |tx| {
                tx.mark_part_sent(&id, idx, &mid, now)?;
                tx.record_attempt(&id, &attempt)?;
                if last {
                    tx.settle_delivery(&id, "delivered", true, None, None, now)?;
                }
                Ok(())
            })
            .await;
        self.metrics.inc(
            "pincer_outbox_attempts_total",
            "Send attempts by channel and outcome.",
            &[("channel", &row.channel), ("outcome", outcome)],
        );
        if let Err(e) = stored {
            // The platform has it; a later resend would duplicate. Make it visible.
            tracing::error!(delivery = %row.id, error = %e, "outbox: sent, but cannot record the receipt");
            self.settle(
                row,
                "unknown",
                true,
                Some(format!("sent, but the receipt could not be stored: {e}")),
                Some("store"),
            )
            .await;
            return Some(RowOutcome::Done);
        }
        if last {
            self.settled_notify(row, "delivered", None);
            return Some(RowOutcome::Done);
        }
        None
    }

    /// A part left `unknown` (an ambiguous send, or a crash mid-send) is resent where the platform
    /// deduplicates; looked for where the platform can be searched (found: recorded as sent;
    /// missing once no request could still land: resent); otherwise the row is reported `unknown`.
    async fn check_unknown(&self, row: &DeliveryRow, part: &PartRow, request: &Part, channel: &dyn Channel) -> Unknown {
        if part.state != "unknown" && part.state != "dispatching" {
            return Unknown::Send;
        }
        let (dispatched, now) = (part.dispatched_at_ms.unwrap_or(0), self.now());
        if channel.safe_to_retry_ambiguous(dispatched, now) {
            return Unknown::Send;
        }
        let what = format!(
            "part {} of {} may have been delivered (the send was interrupted or its answer lost)",
            part.idx + 1,
            row.id
        );
        if let Some(wait) = channel.reconcile_after_ms() {
            let ready = dispatched.saturating_add(wait);
            if now < ready {
                // A request still in flight could land after a look: look once it cannot.
                let note = format!("{what}; looking for it on {} after the request time limit", row.channel);
                self.reschedule(row, ready, false, &note, "ambiguous").await;
                return Unknown::Stop(RowOutcome::Hold);
            }
            match channel.reconcile(request, dispatched).await {
                Ok(Some(receipt)) => return Unknown::Found(receipt),
                Ok(None) => {
                    let detail = format!("{} does not have part {}: sending it again", row.channel, part.idx + 1);
                    self.attempt(row, part.idx, "missing", Some(detail)).await;
                    return Unknown::Send;
                }
                Err(SendError::NotSent { message, .. }) => {
                    // Could not look this time (refused connection, 429): look again later.
                    self.attempt(row, part.idx, "lookup-failed", Some(message.clone())).await;
                    let note = format!("{what}; could not look for it yet: {message}");
                    return Unknown::Stop(self.backoff(row, row.attempts + 1, &note, "ambiguous").await);
                }
                Err(e) => {
                    self.attempt(row, part.idx, "lookup-failed", Some(e.to_string())).await;
                    let msg = format!(
                        "{what} and looking for it on {} failed ({e}); check the chat, then `pincer deliveries retry {}` if it is missing",
                        row.channel, row.id
                    );
                    self.settle(row, "unknown", false, Some(msg), Some("ambiguous")).await;
                    return Unknown::Stop(RowOutcome::Done);
                }
            }
        }
        let msg = format!(
            "{what} and {} cannot deduplicate a resend; check the chat, then `pincer deliveries retry {}` if it is missing",
            row.channel, row.id
        );
        self.settle(row, "unknown", false, Some(msg), Some("ambiguous")).await;
        Unknown::Stop(RowOutcome::Done)
    }

    async fn failed(&self, row: &DeliveryRow, part: &PartRow, channel: &dyn Channel, e: SendError) -> RowOutcome {
        let now = self.now();
        let attempts = row.attempts + 1;
        let (id, idx) = (row.id.clone(), part.idx);
        match e {
            SendError::NotSent { message, retry_after_ms, rate_limited: true } => {
                let wait = retry_after_ms.unwrap_or(1_000).max(1) as i64;
                let _ = self.write(move |tx| tx.set_part_state(&id, idx, "pending")).await;
                self.attempt(row, part.idx, "rate-limited", Some(format!("{message} (retry after {wait} ms)"))).await;
                self.pause(&row.channel, Some(now + wait), format!("rate limited: {message}"));
                self.reschedule(row, now + wait, false, &message, "rate_limited").await;
                RowOutcome::Hold
            }
            SendError::NotSent { message, .. } => {
                let _ = self.write(move |tx| tx.set_part_state(&id, idx, "pending")).await;
                self.attempt(row, part.idx, "not-sent", Some(message.clone())).await;
                self.backoff(row, attempts, &message, "not_sent").await
            }
            SendError::Permanent { class, message } => {
                let _ = self.write(move |tx| tx.set_part_state(&id, idx, "pending")).await;
                self.attempt(row, part.idx, "permanent", Some(format!("{class}: {message}"))).await;
                if class == crate::channel::PermanentClass::Auth {
                    // Every row of this channel would fail the same way: stop the channel, keep the rows.
                    self.pause(
                        &row.channel,
                        None,
                        format!("credentials rejected: {message}; fix channels.{} and restart", row.channel),
                    );
                    self.reschedule(row, now, false, &message, "auth").await;
                    return RowOutcome::Hold;
                }
                self.settle(row, "dead", true, Some(message), Some(class.as_str())).await;
                RowOutcome::Done
            }
            SendError::Ambiguous { message } => {
                let _ = self.write(move |tx| tx.set_part_state(&id, idx, "unknown")).await;
                self.attempt(row, part.idx, "ambiguous", Some(message.clone())).await;
                let dispatched = part.dispatched_at_ms.unwrap_or(now);
                if channel.safe_to_retry_ambiguous(dispatched, now) || channel.reconcile_after_ms().is_some() {
                    // The platform deduplicates (resend the same nonce / idempotency key later), or
                    // can be searched (look for the part first: `check_unknown`).
                    self.backoff(row, attempts, &message, "ambiguous").await
                } else {
                    let msg = format!(
                        "{message}; the platform may have the message and cannot deduplicate a resend, so it was not resent"
                    );
                    self.settle(row, "unknown", true, Some(msg), Some("ambiguous")).await;
                    RowOutcome::Done
                }
            }
        }
    }

    async fn backoff(&self, row: &DeliveryRow, attempts: u32, message: &str, class: &str) -> RowOutcome {
        if attempts >= row.max_attempts {
            let state = if class == "ambiguous" { "unknown" } else { "dead" };
            let msg = format!("gave up after {attempts} attempts: {message}");
            self.settle(row, state, true, Some(msg), Some(class)).await;
            return RowOutcome::Done;
        }
        let delay = BACKOFF_MS[(attempts as usize - 1).min(BACKOFF_MS.len() - 1)];
        self.reschedule(row, self.now() + delay, true, message, class).await;
        RowOutcome::Hold
    }
}

async fn dispatch_loop(inner: Arc<Inner>) {
    let slots = Arc::new(Semaphore::new(inner.max_parallel));
    let mut stop = inner.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = inner.now();
        let (paused, pause_ends) = inner.paused_channels(now);
        let free = slots.available_permits() as u32;
        let mut leased_any = false;
        if free > 0 {
            let generation = inner.generation;
            let leased = inner
                .store
                .write(move |tx| tx.lease_deliveries(now, generation, now + LEASE_MS, free, PER_CONVERSATION, &paused))
                .await;
            match leased {
                Ok(batches) => {
                    for batch in batches {
                        leased_any = true;
                        let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                        let inner = inner.clone();
                        tokio::spawn(async move {
                            conversation(&inner, batch).await;
                            drop(permit);
                            inner.notify.notify_one();
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "outbox: cannot lease deliveries"),
            }
        }
        if leased_any {
            continue;
        }
        let next_due = inner.store.read(move |rd| rd.next_delivery_due_after(now)).await.ok().flatten();
        let wake =
            [next_due, pause_ends, Some(now + WATCHDOG_MS)].into_iter().flatten().min().unwrap_or(now + WATCHDOG_MS);
        let clock = inner.clock.clone();
        tokio::select! {
            _ = inner.notify.notified() => {}
            _ = clock.sleep_until(wake) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends one conversation's leased rows in order; a held row returns the rest to the queue.
async fn conversation(inner: &Inner, batch: Vec<LeasedDelivery>) {
    let mut rows = batch.into_iter();
    while let Some(leased) = rows.next() {
        if let RowOutcome::Hold = inner.deliver(leased).await {
            let rest: Vec<String> = rows.map(|l| l.row.id).collect();
            if !rest.is_empty() {
                let now = inner.now();
                let _ = inner.store.write(move |tx| tx.release_deliveries(&rest, now)).await;
            }
            return;
        }
    }
}
