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
//! - **One pool per channel.** Each channel sends to at most its own `maxParallel` conversations
//!   at once and has its own request time limit, so a hung API delays only its own rows.
//! - **No row is left `sending` in a live process.** A receipt or a settlement the store refuses
//!   (a full disk) is written again with backoff (1 s, 2 s, 5 s, 10 s, then every 30 s) until it
//!   commits — the worker keeps what it learned meanwhile, so nothing is resent. A worker that dies
//!   leaves its lease to expire; the dispatcher then takes the rows back itself (parts caught
//!   mid-send become `unknown`, so they are reconciled or reported, never blindly resent).
//! - **The loop is supervised.** It keeps nothing of its own between passes but retry timers, so
//!   when it panics or fails the supervisor starts it again and it sweeps the store at once: rows
//!   whose lease ran out without a live worker are taken back, the rest are leased as usual. Live
//!   workers carry on; their rows are never taken from them.
//! - **Cancel stops before the next part.** `deliveries.cancel` settles a pending row at once; a
//!   row being sent finishes the request in flight and stops before its next part. Either way the
//!   row goes `dead` with class `cancelled`, naming the parts sent and any that may have been.
//!
//! - **Two commits per batch where the platform drops resends.** On a channel that deduplicates
//!   every resend by key (the webhook), a worker commits all its leased parts' `dispatching` marks
//!   in one transaction, sends them in order, and commits their receipts in one more; a part
//!   caught between the two by a crash is resent with its key after the restart.
//!
//! **Architecture Invariant:** a part is marked `dispatching` (committed) before its request is
//! sent, and `sent` (committed) after it — before the next part goes, except on a channel that
//! deduplicates every resend, where a batch's parts are in flight together.

use pincer_core::metrics;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pincer_core::crashpoint::Failpoints;
use pincer_core::supervisor::{Task, TaskResult};
use pincer_core::{EventBus, Metrics, SharedClock, Supervisor};
use pincer_cron::{Origin, PrepareError, Route, Settlement};
use pincer_protocol::schema::system::{ChannelHealth, FailedQueue, OutboxHealth};
use pincer_protocol::state::{AttemptOutcome, DeliveryErrorClass, DeliveryState, OriginKind, PartState};
use pincer_store::outbox::{LeaseLimits, PartCounts};
use pincer_store::{AttemptRow, DeliveryRow, Enqueued, LeasedDelivery, NewDelivery, PartRow, Store, StoreError};
use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::channel::{Channel, Part, Receipt, SendError, Target};
use crate::parts::{TooLong, fit};
use crate::rate::Bucket;

/// Backoff after the n-th not-sent or ambiguous attempt: 5 s, 25 s, 2 min, then 10 min.
pub const BACKOFF_MS: [i64; 4] = [5_000, 25_000, 120_000, 600_000];
/// How long a lease lasts (a row stuck longer is returned at the next start).
pub const LEASE_MS: i64 = 10 * 60_000;
/// Waits between tries of a store write the outbox cannot skip (a receipt, a settlement, a row
/// put back): 1 s, 2 s, 5 s, 10 s, then every 30 s until it commits.
pub const STORE_RETRY_MS: [i64; 5] = [1_000, 2_000, 5_000, 10_000, 30_000];
/// Rows of one conversation leased together.
const PER_CONVERSATION: u32 = 32;
/// The loop re-checks (and looks for expired leases) at least this often.
const WATCHDOG_MS: i64 = 60_000;
/// Send slots shared by rows of channels that are not configured (they are settled at once).
const UNCONFIGURED_SLOTS: usize = 1;

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
    /// Armed fail points (`PINCER_FAILPOINTS`); the default arms none.
    pub failpoints: Failpoints,
    /// Owns the dispatcher loop and restarts it after a panic or an error.
    pub supervisor: Supervisor,
}

/// What `deliveries.cancel` did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The row was pending: it is `dead` (class `cancelled`) now.
    Cancelled(Box<DeliveryRow>),
    /// The row is being sent: the request in flight finishes, then it stops before its next part.
    Stopping,
    /// The row is finished already (its state).
    Finished(DeliveryState),
    NotFound,
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
    task: Task,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    events: EventBus,
    metrics: Arc<Metrics>,
    generation: i64,
    /// The channels and limits in force; a config reload replaces it whole ([`Outbox::set_lineup`]).
    lineup: std::sync::RwLock<Arc<Lineup>>,
    /// Slots for rows of channels that are not configured.
    spare_slots: Arc<Semaphore>,
    buckets: Mutex<HashMap<String, Bucket>>,
    pauses: Mutex<HashMap<String, Pause>>,
    notify: Notify,
    settled: mpsc::UnboundedSender<Settlement>,
    stop: watch::Sender<bool>,
    failpoints: Failpoints,
    /// Rows held by a live worker (counted: a row put back by one worker may be leased by the
    /// next before the first has finished): their leases are never taken back.
    active: Mutex<HashMap<String, usize>>,
    /// When the lease of rows a dead worker left runs out (the dispatcher takes them back then).
    orphans_due: Mutex<Option<i64>>,
    /// Rows being sent that `deliveries.cancel` asked to stop.
    cancels: Mutex<HashSet<String>>,
}

/// The channels the outbox sends to and the limits it sends under (`channels.*`, `delivery.*`).
/// Workers take a snapshot per row, so a reload never changes a send half-way.
struct Lineup {
    channels: HashMap<String, Arc<dyn Channel>>,
    /// Each channel's own send slots (one per conversation in flight).
    slots: HashMap<String, Arc<Semaphore>>,
    /// The size each semaphore in `slots` was made with.
    parallel: HashMap<String, usize>,
    rates: HashMap<String, f64>,
    max_attempts: u32,
    max_parts: usize,
}

impl Lineup {
    /// `previous` keeps its semaphores where a channel's `maxParallel` did not change, so the
    /// conversations in flight still count against it.
    fn new(
        config: &pincer_core::config::DeliveryConfig,
        channels: Vec<Arc<dyn Channel>>,
        previous: Option<&Lineup>,
    ) -> Lineup {
        let rates = channels
            .iter()
            .map(|c| (c.name().to_string(), crate::channel::registry::rate_limit(config, c.name())))
            .collect();
        let slots = channels
            .iter()
            .map(|c| {
                let n = config.max_parallel(c.name()) as usize;
                let kept =
                    previous.and_then(|p| p.slots.get(c.name()).filter(|_| p.parallel.get(c.name()) == Some(&n)));
                (c.name().to_string(), kept.cloned().unwrap_or_else(|| Arc::new(Semaphore::new(n))))
            })
            .collect();
        Lineup {
            parallel: channels.iter().map(|c| (c.name().to_string(), config.max_parallel(c.name()) as usize)).collect(),
            channels: channels.into_iter().map(|c| (c.name().to_string(), c)).collect(),
            slots,
            rates,
            max_attempts: config.max_attempts,
            max_parts: config.max_parts_per_message as usize,
        }
    }
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
    /// The outbox is stopping: leave everything as it is for the next start's recovery.
    Stopped,
}

/// A part's state to write in the same commit as its row's next state.
type PartUpdate = Option<(u32, PartState)>;

/// A part the platform accepted whose receipt a worker holds until its next commit: the next
/// part's `dispatching` carries it (one commit for both), or it is written alone when no send
/// follows at once. Either way it commits before another request of the conversation goes.
struct Accepted {
    row: DeliveryRow,
    idx: u32,
    message_id: String,
    /// `sent`, or `reconciled` (found on the platform after an ambiguous send).
    outcome: AttemptOutcome,
    /// The row's last part: the row is settled `delivered` in the same commit.
    last: bool,
    at_ms: i64,
}

impl Accepted {
    /// The receipt's writes: the part `sent`, its attempt, and for the last part the settlement.
    fn write(&self) -> impl Fn(&pincer_store::Tx<'_>) -> pincer_store::Result<()> + Send + Sync + 'static {
        let (id, idx, last, now) = (self.row.id.clone(), self.idx, self.last, self.at_ms);
        let attempt =
            AttemptRow { at_ms: now, part_idx: idx, outcome: self.outcome, detail: Some(self.message_id.clone()) };
        let mid = self.message_id.clone();
        move |tx| {
            tx.mark_part_sent(&id, idx, &mid, now)?;
            tx.record_attempt(&id, &attempt)?;
            if last {
                tx.settle_delivery(&id, DeliveryState::Delivered, true, None, None, now)?;
            }
            Ok(())
        }
    }
}

/// The live worker's claim on its batch; dropped without [`Held::release`] (the worker died),
/// it leaves the rows for the dispatcher to take back once their lease runs out.
struct Held {
    inner: Arc<Inner>,
    ids: Vec<String>,
    lease_until_ms: i64,
    released: bool,
}

impl Held {
    fn new(inner: Arc<Inner>, ids: Vec<String>, lease_until_ms: i64) -> Held {
        let mut active = inner.active.lock().expect("active lock");
        for id in &ids {
            *active.entry(id.clone()).or_default() += 1;
        }
        drop(active);
        Held { inner, ids, lease_until_ms, released: false }
    }

    fn release(mut self) {
        self.released = true;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut active = self.inner.active.lock().expect("active lock");
        for id in &self.ids {
            if let Some(n) = active.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    active.remove(id);
                }
            }
        }
        drop(active);
        // A worker dropped while the outbox stops is not a failure: the next start recovers.
        if !self.released && !*self.inner.stop.borrow() {
            tracing::error!(
                rows = self.ids.len(),
                "outbox: a delivery worker stopped unexpectedly; its rows are taken back when their lease expires"
            );
            let mut due = self.inner.orphans_due.lock().expect("orphans lock");
            *due = Some(due.map_or(self.lease_until_ms, |d| d.min(self.lease_until_ms)));
            drop(due);
            self.inner.notify.notify_one();
        }
    }
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
        let lineup = Lineup::new(&deps.config, deps.channels, None);
        if deps.failpoints.is_armed() {
            tracing::warn!(
                "outbox: fail points are armed ({}): store writes will fail on purpose",
                pincer_core::crashpoint::FAIL_ENV
            );
        }
        let inner = Arc::new(Inner {
            store: deps.store,
            clock: deps.clock,
            events: deps.events,
            metrics: deps.metrics,
            generation: deps.generation,
            lineup: std::sync::RwLock::new(Arc::new(lineup)),
            spare_slots: Arc::new(Semaphore::new(UNCONFIGURED_SLOTS)),
            buckets: Mutex::new(HashMap::new()),
            pauses: Mutex::new(HashMap::new()),
            notify: Notify::new(),
            settled: deps.settled,
            stop: watch::Sender::new(false),
            failpoints: deps.failpoints,
            active: Mutex::new(HashMap::new()),
            orphans_due: Mutex::new(None),
            cancels: Mutex::new(HashSet::new()),
        });
        let mut restart = false;
        let task = deps.supervisor.spawn("outbox", true, {
            let inner = inner.clone();
            move || dispatch_loop(inner.clone(), std::mem::replace(&mut restart, true))
        });
        Ok(Outbox { inner, task })
    }

    /// The state of the dispatcher loop's task (running, restarting, failed).
    pub fn task(&self) -> &Task {
        &self.task
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Wakes the dispatcher (after a commit that added rows).
    pub fn kick(&self) {
        self.inner.notify.notify_one();
    }

    pub fn channel(&self, name: &str) -> Option<Arc<dyn Channel>> {
        self.inner.lineup().channels.get(name).cloned()
    }

    /// Replaces the channels and the delivery limits (a config reload). Rows being sent finish
    /// with the adapter they started with; the next lease uses the new ones. Pauses for rejected
    /// credentials are lifted (the configuration changed). Rate buckets are kept — a reload must
    /// not let a burst through — and a changed `delivery.rateLimits.<channel>` applies from now.
    pub fn set_lineup(&self, config: &pincer_core::config::DeliveryConfig, channels: Vec<Arc<dyn Channel>>) {
        let mut slot = self.inner.lineup.write().expect("lineup lock");
        let next = Lineup::new(config, channels, Some(&slot));
        let now = self.inner.clock.now_ms();
        self.inner.buckets.lock().expect("buckets lock").retain(|channel, bucket| {
            let rate = next.rates.get(channel).copied().unwrap_or(0.0);
            if rate > 0.0 && rate != bucket.per_second() {
                bucket.set_rate(rate, now);
            }
            rate > 0.0
        });
        *slot = Arc::new(next);
        drop(slot);
        self.inner.pauses.lock().expect("pauses lock").retain(|_, p| p.until_ms.is_some());
        self.inner.notify.notify_one();
    }

    /// Names of the usable channels.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.lineup().channels.keys().cloned().collect();
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

    /// Renders `body` for `route` into a delivery row: parts chunked for the channel (at most
    /// `delivery.maxPartsPerMessage`; a longer text is refused or cut as `too_long` says), a
    /// stable nonce per part, the route's idempotency key.
    pub fn prepare(
        &self,
        route: &Route,
        body: &str,
        key: &str,
        origin: &Origin,
        max_attempts: Option<u32>,
        too_long: TooLong,
    ) -> Result<NewDelivery, PrepareError> {
        let channel = self.channel(&route.channel).ok_or_else(|| PrepareError::NotConfigured(route.channel.clone()))?;
        let target = channel
            .parse_target(&route.to, route.thread_id.as_deref())
            .map_err(|e| PrepareError::Target(e.to_string()))?;
        let fitted =
            fit(channel.as_ref(), body, self.inner.lineup().max_parts, too_long).map_err(PrepareError::TooLong)?;
        if fitted.parts.is_empty() {
            return Err(PrepareError::Empty);
        }
        if fitted.cut_chars > 0 {
            tracing::warn!(channel = %target.channel, cut_chars = fitted.cut_chars, origin = %origin.kind, "outbox: a message longer than delivery.maxPartsPerMessage was cut");
        }
        let (parts, body) = (fitted.parts, fitted.body);
        // Time-ordered on the injected clock (UUID v7): a new row's id, parts and attempts land at
        // the end of their indexes, so a commit of many rows writes few pages.
        let now = self.inner.clock.now_ms().max(0);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, (now / 1000) as u64, (now % 1000) as u32 * 1_000_000);
        let id = uuid::Uuid::new_v7(ts).to_string();
        let parts = parts.into_iter().enumerate().map(|(i, text)| (text, Part::derive_nonce(&id, i as u32))).collect();
        Ok(NewDelivery {
            id,
            idempotency_key: key.to_string(),
            origin_kind: origin.kind,
            origin_id: origin.id.clone(),
            channel: target.channel,
            account_id: route.account_id.clone(),
            target: target.to,
            thread_id: target.thread,
            max_attempts: max_attempts.unwrap_or(self.inner.lineup().max_attempts),
            best_effort: origin.best_effort,
            body,
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
        }
        self.committed(&enqueued, &channel);
        Ok(enqueued)
    }

    /// After a commit that enqueued a row (here, or in another write — an `agent` reply commits
    /// its row with the reply): counts a new row and wakes the dispatcher.
    pub fn committed(&self, enqueued: &Enqueued, channel: &str) {
        if enqueued.created {
            self.inner.metrics.inc(&metrics::OUTBOX_ENQUEUED_TOTAL, &[("channel", channel)]);
        }
        self.kick();
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

    /// Cancels a delivery that is not finished: a pending row is settled `dead` (class
    /// `cancelled`) at once; a row being sent stops before its next part — the request in flight
    /// (if any) finishes and is recorded, nothing is interrupted mid-request. The request is
    /// recorded with the row, so it holds across a restart.
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome, StoreError> {
        let (key, now) = (id.to_string(), self.inner.clock.now_ms());
        let outcome = self
            .inner
            .store
            .write(move |tx| {
                let rd = tx.reader();
                let Some(row) = rd.delivery_row(&key)? else { return Ok(CancelOutcome::NotFound) };
                match row.state {
                    DeliveryState::Pending => {
                        let message = cancel_message(&rd.part_counts(&key)?);
                        let a =
                            AttemptRow { at_ms: now, part_idx: 0, outcome: AttemptOutcome::Cancelled, detail: None };
                        tx.record_attempt(&key, &a)?;
                        let class = Some(DeliveryErrorClass::Cancelled);
                        let row = tx.settle_delivery(&key, DeliveryState::Dead, false, Some(&message), class, now)?;
                        Ok(row.map_or(CancelOutcome::NotFound, |r| CancelOutcome::Cancelled(Box::new(r))))
                    }
                    DeliveryState::Sending => {
                        if !rd.cancel_requested(&key)? {
                            let outcome = AttemptOutcome::CancelRequested;
                            let a = AttemptRow { at_ms: now, part_idx: 0, outcome, detail: None };
                            tx.record_attempt(&key, &a)?;
                        }
                        Ok(CancelOutcome::Stopping)
                    }
                    other => Ok(CancelOutcome::Finished(other)),
                }
            })
            .await?;
        match &outcome {
            CancelOutcome::Cancelled(row) => {
                self.inner.settled_notify(row, DeliveryState::Dead, row.last_error.clone());
                self.kick();
            }
            CancelOutcome::Stopping => {
                self.inner.cancels.lock().expect("cancels lock").insert(id.to_string());
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Stops the dispatcher loop; in-flight sends finish or are recovered at the next start.
    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.notify.notify_one();
    }

    /// Per-channel health: queue depth, oldest pending age, dead and unknown counts, and whether
    /// the channel is paused.
    pub async fn health(&self) -> OutboxHealth {
        let now = self.inner.clock.now_ms();
        let stats = self.inner.store.read(|rd| rd.outbox_stats()).await.unwrap_or_default();
        let pauses = self.pauses();
        let mut channels = indexmap::IndexMap::new();
        for name in self.channel_names() {
            let s = stats.iter().find(|s| s.channel == name).cloned().unwrap_or_default();
            let pause = pauses.get(&name);
            let state = match pause {
                Some(p) if p.until_ms.is_none() => "credentials-rejected",
                Some(_) => "rate-limited",
                None => "healthy",
            };
            let entry = ChannelHealth {
                configured: true,
                health_state: state.into(),
                pending: s.pending + s.sending,
                oldest_pending_age_ms: s.oldest_pending_created_at_ms.map(|t| (now - t).max(0)),
                dead: s.dead,
                unknown: s.unknown,
                delivered: s.delivered,
                last_error: pause.map(|p| p.reason.clone()),
                paused_until_ms: pause.and_then(|p| p.until_ms),
                extra: Default::default(),
            };
            channels.insert(name, entry);
        }
        OutboxHealth {
            channels,
            failed: stats
                .iter()
                .filter(|s| s.dead > 0)
                .map(|s| FailedQueue {
                    queue_name: s.channel.clone(),
                    count: s.dead,
                    oldest_failed_at: s.oldest_dead_settled_at_ms,
                })
                .collect(),
        }
    }
}

impl Inner {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The channels and limits in force now.
    fn lineup(&self) -> Arc<Lineup> {
        self.lineup.read().expect("lineup lock").clone()
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

    /// Takes a send token from the channel's rate limiter; returns how long to wait (0: go now).
    fn reserve_token(&self, channel: &str) -> i64 {
        let rate = self.lineup().rates.get(channel).copied().unwrap_or(0.0);
        if rate <= 0.0 {
            return 0;
        }
        let now = self.now();
        self.buckets
            .lock()
            .expect("buckets lock")
            .entry(channel.to_string())
            .or_insert_with(|| Bucket::new(rate, now))
            .take(now)
    }

    /// Writes `f` until it commits (a receipt, a settlement, a row put back: steps the outbox
    /// cannot skip without leaving the row `sending`), waiting [`STORE_RETRY_MS`] on the clock
    /// between tries. `None` only when the outbox is stopping (the next start recovers the row).
    async fn write_through<R, F>(&self, point: &'static str, row_id: &str, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: Fn(&pincer_store::Tx<'_>) -> pincer_store::Result<R> + Send + Sync + 'static,
    {
        self.write_through_after(point, row_id, 0, f).await
    }

    /// [`Inner::write_through`] after `failures` tries already failed (the first try here waits
    /// as the next retry would).
    async fn write_through_after<R, F>(&self, point: &'static str, row_id: &str, failures: usize, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: Fn(&pincer_store::Tx<'_>) -> pincer_store::Result<R> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let mut stop = self.stop.subscribe();
        let mut failures = failures;
        if failures > 0 && !self.wait_retry(failures - 1, &mut stop).await {
            return None;
        }
        loop {
            let result = match self.failpoints.check(point) {
                Err(injected) => Err(StoreError::Invalid(injected.to_string())),
                Ok(()) => {
                    let f = f.clone();
                    self.store.write(move |tx| f(tx)).await
                }
            };
            let e = match result {
                Ok(r) => {
                    if failures > 0 {
                        tracing::info!(delivery = %row_id, step = point, failures, "outbox: recorded after the store recovered");
                    }
                    return Some(r);
                }
                Err(e) => e,
            };
            let wait = STORE_RETRY_MS[failures.min(STORE_RETRY_MS.len() - 1)];
            self.store_error(point);
            tracing::error!(delivery = %row_id, step = point, error = %e, retry_in_ms = wait, "outbox: the store refused a write; trying again");
            if !self.wait_retry(failures, &mut stop).await {
                return None;
            }
            failures += 1;
        }
    }

    /// Waits before the retry that follows `failures` failed tries; false when the outbox stops.
    async fn wait_retry(&self, failures: usize, stop: &mut watch::Receiver<bool>) -> bool {
        if *stop.borrow() {
            return false;
        }
        let until = self.now() + STORE_RETRY_MS[failures.min(STORE_RETRY_MS.len() - 1)];
        tokio::select! {
            _ = self.clock.sleep_until(until) => true,
            _ = stop.changed() => false,
        }
    }

    fn store_error(&self, step: &'static str) {
        self.metrics.inc(&metrics::OUTBOX_STORE_ERRORS_TOTAL, &[("step", step)]);
    }

    /// Makes a row terminal (with `part`'s state in the same commit) and tells its owner.
    async fn settle(
        &self,
        row: &DeliveryRow,
        state: DeliveryState,
        charge: bool,
        error: Option<String>,
        class: Option<DeliveryErrorClass>,
        part: PartUpdate,
    ) -> RowOutcome {
        let now = self.now();
        let (id, err) = (row.id.clone(), error.clone());
        let settled = self
            .write_through("outbox.settle", &row.id, move |tx| {
                if let Some((idx, part_state)) = part {
                    tx.set_part_state(&id, idx, part_state)?;
                }
                tx.settle_delivery(&id, state, charge, err.as_deref(), class, now)
            })
            .await;
        if settled.is_none() {
            return RowOutcome::Stopped;
        }
        self.settled_notify(row, state, error);
        RowOutcome::Done
    }

    /// Metrics, the `delivery` event and the owner's settlement, once a row is terminal in the store.
    fn settled_notify(&self, row: &DeliveryRow, state: DeliveryState, error: Option<String>) {
        self.cancels.lock().expect("cancels lock").remove(&row.id);
        let now = self.now();
        let labels = [("channel", row.channel.as_str()), ("state", state.as_str())];
        self.metrics.inc(&metrics::OUTBOX_SETTLED_TOTAL, &labels);
        if state == DeliveryState::Delivered {
            let took = (now - row.created_at_ms).max(0) as f64 / 1000.0;
            self.metrics.observe(&metrics::OUTBOX_DELIVERY_SECONDS, &[("channel", &row.channel)], took);
        } else {
            tracing::warn!(delivery = %row.id, channel = %row.channel, state = state.as_str(), error = error.as_deref().unwrap_or(""), "outbox: delivery not delivered");
        }
        self.events.emit(
            "delivery",
            json!({ "id": row.id, "channel": row.channel, "to": row.target, "state": state, "error": error, "originId": row.origin_id }),
            Some("operator.read"),
        );
        if row.origin_kind == OriginKind::Cron
            && let Some(run_id) = &row.origin_id
        {
            let _ = self.settled.send(Settlement { run_id: run_id.clone(), outbox_id: row.id.clone(), state, error });
        }
    }

    /// Puts the row back for later (with `part`'s state in the same commit); `charge` counts an
    /// attempt. A row asked to stop is cancelled instead.
    async fn reschedule(
        &self,
        row: &DeliveryRow,
        at_ms: i64,
        charge: bool,
        error: &str,
        class: DeliveryErrorClass,
        part: PartUpdate,
    ) -> RowOutcome {
        if self.cancel_asked(&row.id) {
            return self.cancel_now(row, part).await;
        }
        let now = self.now();
        let (id, error_s) = (row.id.clone(), error.to_string());
        let put_back = self
            .write_through("outbox.reschedule", &row.id, move |tx| {
                if let Some((idx, part_state)) = part {
                    tx.set_part_state(&id, idx, part_state)?;
                }
                tx.reschedule_delivery(&id, at_ms, charge, &error_s, class, now)
            })
            .await;
        if put_back.is_none() { RowOutcome::Stopped } else { RowOutcome::Hold }
    }

    fn cancel_asked(&self, id: &str) -> bool {
        self.cancels.lock().expect("cancels lock").contains(id)
    }

    /// Honours `deliveries.cancel` for a row this worker holds: `dead`, class `cancelled`.
    async fn cancel_now(&self, row: &DeliveryRow, part: PartUpdate) -> RowOutcome {
        let (id, now) = (row.id.clone(), self.now());
        let settled = self
            .write_through("outbox.settle", &row.id, move |tx| {
                if let Some((idx, part_state)) = part {
                    tx.set_part_state(&id, idx, part_state)?;
                }
                let message = cancel_message(&tx.reader().part_counts(&id)?);
                tx.record_attempt(
                    &id,
                    &AttemptRow { at_ms: now, part_idx: 0, outcome: AttemptOutcome::Cancelled, detail: None },
                )?;
                let class = Some(DeliveryErrorClass::Cancelled);
                tx.settle_delivery(&id, DeliveryState::Dead, false, Some(&message), class, now)?;
                Ok(message)
            })
            .await;
        let Some(message) = settled else { return RowOutcome::Stopped };
        self.settled_notify(row, DeliveryState::Dead, Some(message));
        RowOutcome::Done
    }

    /// Records one attempt for `deliveries show` (history only: a failure here loses a line of
    /// history, never a row's state).
    async fn attempt(&self, row: &DeliveryRow, part: u32, outcome: AttemptOutcome, detail: Option<String>) {
        self.metrics.inc(&metrics::OUTBOX_ATTEMPTS_TOTAL, &[("channel", &row.channel), ("outcome", outcome.as_str())]);
        let a = AttemptRow { at_ms: self.now(), part_idx: part, outcome, detail };
        let id = row.id.clone();
        let _ = self.store.write(move |tx| tx.record_attempt(&id, &a)).await;
    }

    /// Sends one row's remaining parts in order. A part the platform accepted is left in
    /// `accepted` for the worker's next commit — the next part's `dispatching`, in this row or the
    /// next — so that one commit records one part sent and puts the next in flight.
    async fn deliver(&self, leased: LeasedDelivery, accepted: &mut Option<Accepted>) -> RowOutcome {
        let LeasedDelivery { row, parts, cancel_requested } = leased;
        if cancel_requested {
            self.cancels.lock().expect("cancels lock").insert(row.id.clone());
        }
        let Some(channel) = self.lineup().channels.get(&row.channel).cloned() else {
            if !self.record_accepted(accepted).await {
                return RowOutcome::Stopped;
            }
            let msg = format!(
                "channel \"{}\" is not configured; add channels.{} to the config, then `pincer deliveries retry {}`",
                row.channel, row.channel, row.id
            );
            return self
                .settle(&row, DeliveryState::Dead, false, Some(msg), Some(DeliveryErrorClass::Config), None)
                .await;
        };
        let target = Target { channel: row.channel.clone(), to: row.target.clone(), thread: row.thread_id.clone() };
        let total = parts.len() as u32;
        let unsent: Vec<&PartRow> = parts.iter().filter(|p| p.state != PartState::Sent).collect();
        for (k, part) in unsent.iter().enumerate() {
            let last = k + 1 == unsent.len();
            // Anything but a plain send writes on its own: the receipt held goes first.
            let plain = part.state == PartState::Pending && !self.cancel_asked(&row.id);
            if !plain && !self.record_accepted(accepted).await {
                return RowOutcome::Stopped;
            }
            if self.cancel_asked(&row.id) {
                return self.cancel_now(&row, None).await;
            }
            let request = Part {
                row_id: row.id.clone(),
                index: part.idx,
                total,
                target: target.clone(),
                text: part.body.clone(),
                nonce: part.nonce.clone(),
                idempotency_key: row.idempotency_key.clone(),
                reply_to: row.reply_to.clone().filter(|_| part.idx == 0),
            };
            match self.check_unknown(&row, part, &request, channel.as_ref()).await {
                Unknown::Send => {}
                Unknown::Found(receipt) => {
                    *accepted = Some(self.accepted(&row, part.idx, receipt, AttemptOutcome::Reconciled, last));
                    if !self.record_accepted(accepted).await {
                        return RowOutcome::Stopped;
                    }
                    if last {
                        return RowOutcome::Done;
                    }
                    continue;
                }
                Unknown::Stop(outcome) => return outcome,
            }
            let wait = self.reserve_token(&row.channel);
            if wait > 0 {
                // A receipt does not wait for the next send's turn.
                if !self.record_accepted(accepted).await {
                    return RowOutcome::Stopped;
                }
                self.clock.sleep_until(self.now() + wait).await;
            }
            if let Err(e) = self.mark_dispatching(&row, part.idx, accepted).await {
                let Some(e) = e else { return RowOutcome::Stopped };
                self.store_error("outbox.dispatching");
                // Nothing was sent: put the row back (not charged) and try again after a backoff.
                tracing::error!(delivery = %row.id, error = %e, "outbox: cannot mark a part dispatching; will retry");
                let message = format!("cannot record the send before making it: {e}");
                let retry_at = self.now() + BACKOFF_MS[0];
                return self.reschedule(&row, retry_at, false, &message, DeliveryErrorClass::Store, None).await;
            }
            match self.timed_send(channel.as_ref(), &row.channel, &request).await {
                Ok(receipt) => {
                    *accepted = Some(self.accepted(&row, part.idx, receipt, AttemptOutcome::Sent, last));
                    if last {
                        // Settled `delivered` with this receipt, in the worker's next commit.
                        return RowOutcome::Done;
                    }
                }
                Err(e) => return self.failed(&row, part, channel.as_ref(), e).await,
            }
        }
        if !self.record_accepted(accepted).await {
            return RowOutcome::Stopped;
        }
        self.settle(&row, DeliveryState::Delivered, true, None, None, None).await
    }

    /// A conversation on a channel that deduplicates every resend (the webhook): one commit marks
    /// every unsent part of the leased rows `dispatching`, the parts are sent in order, and one
    /// commit records their receipts and settles the rows. A part caught between the two commits
    /// (a crash) is `unknown` at the next start and resent with the same idempotency key, which
    /// the platform drops. Returns the outcome of the last row it handled and the rows left for
    /// the part-by-part way: from a row asked to stop, from a failed send (after that row's
    /// failure is handled), or all of them when the marks could not be committed (the first row is
    /// then put back with a backoff, as a part-by-part send would be).
    async fn deliver_batch(
        &self,
        channel: Arc<dyn Channel>,
        batch: Vec<LeasedDelivery>,
    ) -> (RowOutcome, Vec<LeasedDelivery>) {
        // Rows asked to stop, and a row with nothing left to send, go the part-by-part way.
        let n = batch
            .iter()
            .take_while(|l| {
                !l.cancel_requested
                    && !self.cancel_asked(&l.row.id)
                    && l.parts.iter().any(|p| p.state != PartState::Sent)
            })
            .count();
        if n == 0 {
            return (RowOutcome::Done, batch);
        }
        let marks: Vec<(String, u32)> = batch[..n]
            .iter()
            .flat_map(|l| l.parts.iter().filter(|p| p.state != PartState::Sent).map(|p| (l.row.id.clone(), p.idx)))
            .collect();
        let now = self.now();
        let marked = match self.failpoints.check("outbox.dispatching") {
            Err(injected) => Err(StoreError::Invalid(injected.to_string())),
            Ok(()) => {
                self.store
                    .write(move |tx| marks.iter().try_for_each(|(id, idx)| tx.mark_part_dispatching(id, *idx, now)))
                    .await
            }
        };
        let mut rows = batch;
        if let Err(e) = marked {
            self.store_error("outbox.dispatching");
            // Nothing was sent: the first row waits a backoff (not charged), the rest go back.
            tracing::error!(delivery = %rows[0].row.id, error = %e, "outbox: cannot mark a batch dispatching; will retry");
            let first = rows.remove(0);
            let message = format!("cannot record the send before making it: {e}");
            let retry_at = self.now() + BACKOFF_MS[0];
            let outcome = self.reschedule(&first.row, retry_at, false, &message, DeliveryErrorClass::Store, None).await;
            return (outcome, rows);
        }
        let mut accepted: Vec<Accepted> = Vec::new();
        // Where the batch stopped: the row, and the failed send with its part (none: a cancel).
        let mut stopped: Option<(usize, Option<(PartRow, SendError)>)> = None;
        'rows: for (r, leased) in rows[..n].iter().enumerate() {
            let row = &leased.row;
            let target = Target { channel: row.channel.clone(), to: row.target.clone(), thread: row.thread_id.clone() };
            let total = leased.parts.len() as u32;
            let unsent: Vec<&PartRow> = leased.parts.iter().filter(|p| p.state != PartState::Sent).collect();
            for (k, part) in unsent.iter().enumerate() {
                if self.cancel_asked(&row.id) {
                    stopped = Some((r, None));
                    break 'rows;
                }
                let wait = self.reserve_token(&row.channel);
                if wait > 0 {
                    self.clock.sleep_until(self.now() + wait).await;
                }
                let request = Part {
                    row_id: row.id.clone(),
                    index: part.idx,
                    total,
                    target: target.clone(),
                    text: part.body.clone(),
                    nonce: part.nonce.clone(),
                    idempotency_key: row.idempotency_key.clone(),
                    reply_to: row.reply_to.clone().filter(|_| part.idx == 0),
                };
                match self.timed_send(channel.as_ref(), &row.channel, &request).await {
                    Ok(receipt) => {
                        let last = k + 1 == unsent.len();
                        accepted.push(self.accepted(row, part.idx, receipt, AttemptOutcome::Sent, last));
                    }
                    Err(e) => {
                        stopped = Some((r, Some(((*part).clone(), e))));
                        break 'rows;
                    }
                }
            }
        }
        // Parts marked but not sent get their state back (the failed one keeps `dispatching`
        // until its failure is recorded), in the commit that records the receipts.
        let sent: HashSet<(String, u32)> = accepted.iter().map(|a| (a.row.id.clone(), a.idx)).collect();
        let failed_part = stopped.as_ref().and_then(|(r, f)| f.as_ref().map(|(p, _)| (rows[*r].row.id.clone(), p.idx)));
        let restore: Vec<(String, u32, PartState)> = rows[..n]
            .iter()
            .flat_map(|l| l.parts.iter().map(move |p| (l.row.id.clone(), p)))
            .filter(|(id, p)| {
                let key = (id.clone(), p.idx);
                p.state != PartState::Sent && !sent.contains(&key) && failed_part.as_ref() != Some(&key)
            })
            .map(|(id, p)| (id, p.idx, p.state))
            .collect();
        let writes: Vec<_> = accepted.iter().map(Accepted::write).collect();
        let first = rows[0].row.id.clone();
        let recorded = self
            .write_through("outbox.receipt", &first, move |tx| {
                for write in &writes {
                    write(tx)?;
                }
                for (id, idx, state) in &restore {
                    tx.set_part_state(id, *idx, *state)?;
                }
                Ok(())
            })
            .await;
        if recorded.is_none() {
            return (RowOutcome::Stopped, Vec::new());
        }
        for a in &accepted {
            self.recorded(a);
        }
        let Some((r, failure)) = stopped else {
            rows.drain(..n);
            return (RowOutcome::Done, rows);
        };
        // The row where the batch stopped: what was sent is recorded, in memory too.
        let id = rows[r].row.id.clone();
        for p in rows[r].parts.iter_mut() {
            if sent.contains(&(id.clone(), p.idx)) {
                p.state = PartState::Sent;
            }
        }
        let rest = rows.split_off(r);
        match failure {
            None => (RowOutcome::Done, rest),
            Some((part, e)) => {
                let mut rest = rest.into_iter();
                let Some(leased) = rest.next() else { return (RowOutcome::Done, Vec::new()) };
                let outcome = self.failed(&leased.row, &part, channel.as_ref(), e).await;
                (outcome, rest.collect())
            }
        }
    }

    /// A local channel's rows (the inbox): every part, its receipt and its row's settlement in
    /// one commit, written until it commits — nothing is ever in flight. Rows asked to stop are
    /// cancelled first, one by one.
    async fn deliver_local(&self, channel: Arc<dyn Channel>, batch: Vec<LeasedDelivery>) {
        let mut rows = Vec::new();
        for leased in batch {
            if leased.cancel_requested {
                self.cancels.lock().expect("cancels lock").insert(leased.row.id.clone());
            }
            if self.cancel_asked(&leased.row.id) {
                if let RowOutcome::Stopped = self.cancel_now(&leased.row, None).await {
                    return;
                }
                continue;
            }
            rows.push(leased);
        }
        let Some(first) = rows.first().map(|l| l.row.id.clone()) else { return };
        let now = self.now();
        let items: Arc<Vec<(String, Vec<Part>)>> = Arc::new(
            rows.iter()
                .map(|l| {
                    let target = Target {
                        channel: l.row.channel.clone(),
                        to: l.row.target.clone(),
                        thread: l.row.thread_id.clone(),
                    };
                    let parts = l
                        .parts
                        .iter()
                        .filter(|p| p.state != PartState::Sent)
                        .map(|p| Part {
                            row_id: l.row.id.clone(),
                            index: p.idx,
                            total: l.parts.len() as u32,
                            target: target.clone(),
                            text: p.body.clone(),
                            nonce: p.nonce.clone(),
                            idempotency_key: l.row.idempotency_key.clone(),
                            reply_to: l.row.reply_to.clone().filter(|_| p.idx == 0),
                        })
                        .collect();
                    (l.row.id.clone(), parts)
                })
                .collect(),
        );
        let (written, ch) = (items.clone(), channel.clone());
        let receipts = self
            .write_through("outbox.receipt", &first, move |tx| {
                let Some(local) = ch.local() else {
                    return Err(StoreError::Invalid(format!("channel {} stores nothing locally", ch.name())));
                };
                let mut receipts = Vec::new();
                for (id, parts) in written.iter() {
                    for part in parts {
                        let receipt = local.write(tx, part, now)?;
                        tx.mark_part_sent(id, part.index, &receipt.message_id, now)?;
                        let detail = Some(receipt.message_id.clone());
                        tx.record_attempt(
                            id,
                            &AttemptRow { at_ms: now, part_idx: part.index, outcome: AttemptOutcome::Sent, detail },
                        )?;
                        receipts.push(receipt);
                    }
                    tx.settle_delivery(id, DeliveryState::Delivered, true, None, None, now)?;
                }
                Ok(receipts)
            })
            .await;
        // `None`: the outbox is stopping; the next start takes the rows back.
        let (Some(receipts), Some(local)) = (receipts, channel.local()) else { return };
        let mut receipts = receipts.iter();
        for ((_, parts), leased) in items.iter().zip(&rows) {
            for (part, receipt) in parts.iter().zip(receipts.by_ref()) {
                self.metrics.inc(
                    &metrics::OUTBOX_ATTEMPTS_TOTAL,
                    &[("channel", &leased.row.channel), ("outcome", AttemptOutcome::Sent.as_str())],
                );
                local.committed(part, receipt, now);
            }
            self.settled_notify(&leased.row, DeliveryState::Delivered, None);
        }
    }

    /// A part the platform has (`outcome`: `sent`, or `reconciled` when it was found after an
    /// ambiguous send), to be recorded — the row's last part with its settlement.
    /// One part to the platform, between the `outbox.dispatching` and `outbox.sent` crash points
    /// (the caller has committed the part `dispatching`), timed into `pincer_outbox_send_seconds`.
    async fn timed_send(&self, channel: &dyn Channel, name: &str, part: &Part) -> Result<Receipt, SendError> {
        pincer_core::crashpoint::hit("outbox.dispatching");
        let started = Instant::now();
        let result = channel.send(part).await;
        self.metrics.observe(&metrics::OUTBOX_SEND_SECONDS, &[("channel", name)], started.elapsed().as_secs_f64());
        if result.is_ok() {
            pincer_core::crashpoint::hit("outbox.sent");
        }
        result
    }

    fn accepted(&self, row: &DeliveryRow, idx: u32, receipt: Receipt, outcome: AttemptOutcome, last: bool) -> Accepted {
        self.metrics.inc(&metrics::OUTBOX_ATTEMPTS_TOTAL, &[("channel", &row.channel), ("outcome", outcome.as_str())]);
        Accepted { row: row.clone(), idx, message_id: receipt.message_id, outcome, last, at_ms: self.now() }
    }

    /// Commits part `idx` as `dispatching` before its request, and in the same commit the receipt
    /// held in `accepted`. `Err(None)` when the outbox is stopping.
    async fn mark_dispatching(
        &self,
        row: &DeliveryRow,
        idx: u32,
        accepted: &mut Option<Accepted>,
    ) -> Result<(), Option<StoreError>> {
        let Some(a) = accepted.take() else { return self.mark_dispatching_alone(row, idx).await };
        // Each step keeps its own fail point; the receipt's is checked first (it is written first).
        let injected = match self.failpoints.check("outbox.receipt") {
            Err(e) => Some(("outbox.receipt", e)),
            Ok(()) => self.failpoints.check("outbox.dispatching").err().map(|e| ("outbox.dispatching", e)),
        };
        let written = match injected {
            Some((point, e)) => Err((point, StoreError::Invalid(e.to_string()))),
            None => {
                let (id, now, write) = (row.id.clone(), self.now(), a.write());
                let result = self
                    .store
                    .write(move |tx| {
                        write(tx)?;
                        tx.mark_part_dispatching(&id, idx, now)
                    })
                    .await;
                // SQLite cannot say which half failed: the receipt is the one that must not be lost.
                result.map_err(|e| ("outbox.receipt", e))
            }
        };
        match written {
            Ok(()) => {
                self.recorded(&a);
                Ok(())
            }
            Err(("outbox.dispatching", e)) => {
                // The receipt alone, then the dispatching failure as if it had been written alone.
                *accepted = Some(a);
                if !self.record_accepted(accepted).await {
                    return Err(None);
                }
                Err(Some(e))
            }
            Err((_, e)) => {
                // That was the receipt's first try: it is written again after the usual waits,
                // then this part is marked on its own.
                self.receipt_refused(&a, &e);
                if self.write_through_after("outbox.receipt", &a.row.id, 1, a.write()).await.is_none() {
                    return Err(None);
                }
                self.recorded(&a);
                self.mark_dispatching_alone(row, idx).await
            }
        }
    }

    async fn mark_dispatching_alone(&self, row: &DeliveryRow, idx: u32) -> Result<(), Option<StoreError>> {
        let (id, now) = (row.id.clone(), self.now());
        match self.failpoints.check("outbox.dispatching") {
            Err(injected) => Err(Some(StoreError::Invalid(injected.to_string()))),
            Ok(()) => self.store.write(move |tx| tx.mark_part_dispatching(&id, idx, now)).await.map_err(Some),
        }
    }

    fn receipt_refused(&self, a: &Accepted, e: &dyn std::fmt::Display) {
        self.store_error("outbox.receipt");
        tracing::error!(delivery = %a.row.id, step = "outbox.receipt", error = %e, retry_in_ms = STORE_RETRY_MS[0], "outbox: the store refused a write; trying again");
    }

    /// Writes the receipt held in `accepted` on its own, until it commits (the platform has the
    /// part: it must never be sent again). False only when the outbox is stopping.
    async fn record_accepted(&self, accepted: &mut Option<Accepted>) -> bool {
        let Some(a) = accepted.take() else { return true };
        if self.write_through("outbox.receipt", &a.row.id, a.write()).await.is_none() {
            return false;
        }
        self.recorded(&a);
        true
    }

    /// A receipt is committed: the row it finished is settled.
    fn recorded(&self, a: &Accepted) {
        if a.last {
            self.settled_notify(&a.row, DeliveryState::Delivered, None);
        }
    }

    /// A part left `unknown` (an ambiguous send, or a crash mid-send) is resent where the platform
    /// deduplicates; looked for where the platform can be searched (found: recorded as sent;
    /// missing once no request could still land: resent); otherwise the row is reported `unknown`.
    async fn check_unknown(&self, row: &DeliveryRow, part: &PartRow, request: &Part, channel: &dyn Channel) -> Unknown {
        if !matches!(part.state, PartState::Unknown | PartState::Dispatching) {
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
                let ambiguous = DeliveryErrorClass::Ambiguous;
                return Unknown::Stop(self.reschedule(row, ready, false, &note, ambiguous, None).await);
            }
            match channel.reconcile(request, dispatched).await {
                Ok(Some(receipt)) => return Unknown::Found(receipt),
                Ok(None) => {
                    let detail = format!("{} does not have part {}: sending it again", row.channel, part.idx + 1);
                    self.attempt(row, part.idx, AttemptOutcome::Missing, Some(detail)).await;
                    return Unknown::Send;
                }
                Err(SendError::NotSent { message, .. }) => {
                    // Could not look this time (refused connection, 429): look again later.
                    self.attempt(row, part.idx, AttemptOutcome::LookupFailed, Some(message.clone())).await;
                    let note = format!("{what}; could not look for it yet: {message}");
                    let ambiguous = DeliveryErrorClass::Ambiguous;
                    return Unknown::Stop(self.backoff(row, row.attempts + 1, &note, ambiguous, None).await);
                }
                Err(e) => {
                    self.attempt(row, part.idx, AttemptOutcome::LookupFailed, Some(e.to_string())).await;
                    let msg = format!(
                        "{what} and looking for it on {} failed ({e}); check the chat, then `pincer deliveries retry {}` if it is missing",
                        row.channel, row.id
                    );
                    let ambiguous = Some(DeliveryErrorClass::Ambiguous);
                    return Unknown::Stop(
                        self.settle(row, DeliveryState::Unknown, false, Some(msg), ambiguous, None).await,
                    );
                }
            }
        }
        let msg = format!(
            "{what} and {} cannot deduplicate a resend; check the chat, then `pincer deliveries retry {}` if it is missing",
            row.channel, row.id
        );
        let ambiguous = Some(DeliveryErrorClass::Ambiguous);
        Unknown::Stop(self.settle(row, DeliveryState::Unknown, false, Some(msg), ambiguous, None).await)
    }

    async fn failed(&self, row: &DeliveryRow, part: &PartRow, channel: &dyn Channel, e: SendError) -> RowOutcome {
        let now = self.now();
        let attempts = row.attempts + 1;
        let idx = part.idx;
        match e {
            SendError::NotSent { message, retry_after_ms, rate_limited: true } => {
                let wait = retry_after_ms.unwrap_or(1_000).max(1) as i64;
                let detail = Some(format!("{message} (retry after {wait} ms)"));
                self.attempt(row, idx, AttemptOutcome::RateLimited, detail).await;
                self.pause(&row.channel, Some(now + wait), format!("rate limited: {message}"));
                let (class, part) = (DeliveryErrorClass::RateLimited, Some((idx, PartState::Pending)));
                self.reschedule(row, now + wait, false, &message, class, part).await
            }
            SendError::NotSent { message, .. } => {
                self.attempt(row, idx, AttemptOutcome::NotSent, Some(message.clone())).await;
                let (class, part) = (DeliveryErrorClass::NotSent, Some((idx, PartState::Pending)));
                self.backoff(row, attempts, &message, class, part).await
            }
            SendError::Permanent { class, message } => {
                self.attempt(row, idx, AttemptOutcome::Permanent, Some(format!("{class}: {message}"))).await;
                if class == crate::channel::PermanentClass::Auth {
                    // Every row of this channel would fail the same way: stop the channel, keep the rows.
                    self.pause(
                        &row.channel,
                        None,
                        format!("credentials rejected: {message}; fix channels.{}, then run `pincer config reload` (saving the config file applies it too)", row.channel),
                    );
                    let part = Some((idx, PartState::Pending));
                    return self.reschedule(row, now, false, &message, DeliveryErrorClass::Auth, part).await;
                }
                let part = Some((idx, PartState::Pending));
                self.settle(row, DeliveryState::Dead, true, Some(message), Some(class.into()), part).await
            }
            SendError::Ambiguous { message } => {
                self.attempt(row, idx, AttemptOutcome::Ambiguous, Some(message.clone())).await;
                let dispatched = part.dispatched_at_ms.unwrap_or(now);
                if channel.safe_to_retry_ambiguous(dispatched, now) || channel.reconcile_after_ms().is_some() {
                    // The platform deduplicates (resend the same nonce / idempotency key later), or
                    // can be searched (look for the part first: `check_unknown`).
                    let part = Some((idx, PartState::Unknown));
                    self.backoff(row, attempts, &message, DeliveryErrorClass::Ambiguous, part).await
                } else {
                    let msg = format!(
                        "{message}; the platform may have the message and cannot deduplicate a resend, so it was not resent"
                    );
                    let (class, part) = (Some(DeliveryErrorClass::Ambiguous), Some((idx, PartState::Unknown)));
                    self.settle(row, DeliveryState::Unknown, true, Some(msg), class, part).await
                }
            }
        }
    }

    async fn backoff(
        &self,
        row: &DeliveryRow,
        attempts: u32,
        message: &str,
        class: DeliveryErrorClass,
        part: PartUpdate,
    ) -> RowOutcome {
        if attempts >= row.max_attempts {
            // An ambiguous send that was never confirmed may have arrived: `unknown`, not `dead`.
            let state =
                if class == DeliveryErrorClass::Ambiguous { DeliveryState::Unknown } else { DeliveryState::Dead };
            let msg = format!("gave up after {attempts} attempts: {message}");
            return self.settle(row, state, true, Some(msg), Some(class), part).await;
        }
        let delay = BACKOFF_MS[(attempts as usize - 1).min(BACKOFF_MS.len() - 1)];
        self.reschedule(row, self.now() + delay, true, message, class, part).await
    }

    /// The send slots of `channel` (the shared spare slots for a channel not configured).
    fn slots(&self, channel: &str) -> Arc<Semaphore> {
        self.lineup().slots.get(channel).unwrap_or(&self.spare_slots).clone()
    }

    /// Each channel's free send slots (none while it is paused).
    fn lease_limits(&self, paused: &[String]) -> LeaseLimits {
        let per_channel = self
            .lineup()
            .slots
            .iter()
            .map(|(name, slots)| {
                let free = if paused.contains(name) { 0 } else { slots.available_permits() as u32 };
                (name.clone(), free)
            })
            .collect();
        LeaseLimits { per_channel, others: self.spare_slots.available_permits() as u32 }
    }

    /// Takes back rows whose lease expired while no live worker holds them (a worker died).
    /// Returns false when the store refused (try again soon).
    async fn reclaim_expired(&self, now: i64) -> bool {
        let owner = self.generation;
        let expired = match self.store.read(move |rd| rd.expired_leases(now, owner)).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot look for expired leases");
                return false;
            }
        };
        let keep: HashSet<String> = self.active.lock().expect("active lock").keys().cloned().collect();
        if expired.iter().all(|id| keep.contains(id)) {
            return true;
        }
        match self.store.write(move |tx| tx.reclaim_expired_leases(now, owner, &keep)).await {
            Ok(taken) => {
                if !taken.is_empty() {
                    tracing::warn!(
                        rows = taken.len(),
                        "outbox: took back deliveries whose worker stopped (lease expired)"
                    );
                    self.metrics.add(&metrics::OUTBOX_LEASES_RECLAIMED_TOTAL, &[], taken.len() as f64);
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot take back expired leases");
                false
            }
        }
    }
}

/// What a cancelled row's error says: the parts sent, and any that may have been.
fn cancel_message(counts: &PartCounts) -> String {
    let mut message =
        format!("cancelled with `pincer deliveries cancel`: {} of {} parts had been sent", counts.sent, counts.total);
    if !counts.uncertain.is_empty() {
        let which: Vec<String> = counts.uncertain.iter().map(|i| (i + 1).to_string()).collect();
        message.push_str(&format!(
            "; part {} may have been delivered too (its send was in flight or its answer lost)",
            which.join(", ")
        ));
    }
    message
}

/// The dispatcher. `restart`: a previous loop died, so look for rows to take back at once (the
/// start's own recovery ran before the first).
async fn dispatch_loop(inner: Arc<Inner>, restart: bool) -> TaskResult {
    let mut stop = inner.stop.subscribe();
    let mut lease_failures = 0usize;
    let mut lease_retry_at: Option<i64> = None;
    let mut sweep_at = if restart { inner.now() } else { inner.now() + WATCHDOG_MS };
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let now = inner.now();
        let orphans_due = *inner.orphans_due.lock().expect("orphans lock");
        if now >= sweep_at || orphans_due.is_some_and(|t| now >= t) {
            if inner.reclaim_expired(now).await {
                sweep_at = now + WATCHDOG_MS;
                let mut due = inner.orphans_due.lock().expect("orphans lock");
                if due.is_some_and(|t| t <= now) {
                    *due = None;
                }
            } else {
                sweep_at = now + STORE_RETRY_MS[0];
            }
        }
        let (paused, pause_ends) = inner.paused_channels(now);
        let limits = inner.lease_limits(&paused);
        let has_slots = limits.others > 0 || limits.per_channel.values().any(|n| *n > 0);
        let mut leased_any = false;
        if has_slots && lease_retry_at.is_none_or(|t| now >= t) {
            let generation = inner.generation;
            let leased = match inner.failpoints.check("outbox.lease") {
                Err(injected) => Err(StoreError::Invalid(injected.to_string())),
                Ok(()) => {
                    inner
                        .store
                        .write(move |tx| {
                            tx.lease_deliveries(now, generation, now + LEASE_MS, &limits, PER_CONVERSATION)
                        })
                        .await
                }
            };
            match leased {
                Ok(batches) => {
                    (lease_failures, lease_retry_at) = (0, None);
                    for batch in batches {
                        leased_any = true;
                        spawn_worker(&inner, batch, now + LEASE_MS);
                    }
                    if leased_any {
                        inner.failpoints.check("outbox.leased")?;
                    }
                }
                Err(e) => {
                    let wait = STORE_RETRY_MS[lease_failures.min(STORE_RETRY_MS.len() - 1)];
                    lease_failures += 1;
                    lease_retry_at = Some(now + wait);
                    inner.store_error("outbox.lease");
                    tracing::error!(error = %e, retry_in_ms = wait, "outbox: cannot lease deliveries");
                }
            }
        }
        if leased_any {
            continue;
        }
        let next_due = inner.store.read(move |rd| rd.next_delivery_due_after(now)).await.ok().flatten();
        let orphans_due = *inner.orphans_due.lock().expect("orphans lock");
        let wake = [next_due, pause_ends, lease_retry_at, orphans_due, Some(sweep_at), Some(now + WATCHDOG_MS)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + WATCHDOG_MS);
        let clock = inner.clock.clone();
        tokio::select! {
            _ = inner.notify.notified() => {}
            _ = clock.sleep_until(wake) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Starts a worker for one conversation's leased rows, on a slot of its channel.
fn spawn_worker(inner: &Arc<Inner>, batch: Vec<LeasedDelivery>, lease_until_ms: i64) {
    let ids: Vec<String> = batch.iter().map(|l| l.row.id.clone()).collect();
    let Ok(permit) = inner.slots(&batch[0].row.channel).try_acquire_owned() else {
        // Leased beyond the channel's free slots (cannot happen: the lease counted them); give
        // the rows back rather than leave them leased without a worker.
        let (inner, now) = (inner.clone(), inner.now());
        tokio::spawn(async move {
            let _ = inner.store.write(move |tx| tx.release_deliveries(&ids, now)).await;
        });
        return;
    };
    let held = Held::new(inner.clone(), ids, lease_until_ms);
    let inner = inner.clone();
    tokio::spawn(async move {
        conversation(&inner, batch).await;
        held.release();
        drop(permit);
        inner.notify.notify_one();
    });
}

/// Sends one conversation's leased rows in order; a held row returns the rest to the queue.
async fn conversation(inner: &Inner, batch: Vec<LeasedDelivery>) {
    let channel = batch.first().and_then(|l| inner.lineup().channels.get(&l.row.channel).cloned());
    if let Some(channel) = channel.clone().filter(|c| c.local().is_some()) {
        return inner.deliver_local(channel, batch).await;
    }
    // A platform that drops every resend by key takes the batch with two commits; what that way
    // does not finish (a failure, a cancel) carries on part by part below.
    let (mut outcome, batch) =
        match channel.filter(|c| c.deduplicates_resends() && c.safe_to_retry_ambiguous(0, i64::MAX)) {
            Some(channel) => inner.deliver_batch(channel, batch).await,
            None => (RowOutcome::Done, batch),
        };
    let mut rows = batch.into_iter();
    // The receipt of the last part sent, until the next commit carries it.
    let mut accepted = None;
    loop {
        match outcome {
            RowOutcome::Done => {}
            RowOutcome::Stopped => {
                inner.record_accepted(&mut accepted).await;
                return;
            }
            RowOutcome::Hold => {
                if !inner.record_accepted(&mut accepted).await {
                    return;
                }
                let rest: Vec<String> = rows.map(|l| l.row.id).collect();
                if !rest.is_empty() {
                    let now = inner.now();
                    let first = rest[0].clone();
                    inner.write_through("outbox.reschedule", &first, move |tx| tx.release_deliveries(&rest, now)).await;
                }
                return;
            }
        }
        let Some(leased) = rows.next() else { break };
        outcome = inner.deliver(leased, &mut accepted).await;
    }
    inner.record_accepted(&mut accepted).await;
}
