//! `outbox`, `outbox_parts`, `outbox_attempts` and `inbox`: the durable delivery queue.
//!
//! A row is committed with its rendered parts before the first byte goes to a channel. Rows move
//! `pending → sending → delivered | unknown | dead`; each part moves `pending → dispatching → sent`
//! (or `unknown`), so progress survives a crash part by part and an accepted part is never sent
//! again. `seq` orders rows first-in-first-out per conversation.

use pincer_protocol::state::{AttemptOutcome, DeliveryErrorClass, DeliveryState, OriginKind, PartState};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Rd, Result, Tx};

/// A delivery to enqueue, with its parts already rendered for the channel.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub id: String,
    /// A second enqueue with the same key is a no-op that returns the first row.
    pub idempotency_key: String,
    pub origin_kind: OriginKind,
    /// The run id for cron deliveries.
    pub origin_id: Option<String>,
    pub channel: String,
    pub account_id: Option<String>,
    pub target: String,
    pub thread_id: Option<String>,
    pub max_attempts: u32,
    pub best_effort: bool,
    /// The text (or JSON body) before chunking, for display.
    pub body: String,
    /// `(text, nonce)` per part, in order.
    pub parts: Vec<(String, String)>,
    pub created_at_ms: i64,
}

impl NewDelivery {
    /// Deliveries to the same conversation are sent in order.
    pub fn conversation(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.channel,
            self.account_id.as_deref().unwrap_or(""),
            self.target,
            self.thread_id.as_deref().unwrap_or("")
        )
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub seq: i64,
    pub id: String,
    pub idempotency_key: String,
    pub origin_kind: OriginKind,
    pub origin_id: Option<String>,
    pub channel: String,
    pub account_id: Option<String>,
    pub target: String,
    pub thread_id: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub next_attempt_at_ms: i64,
    pub lease_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub settled_at_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_class: Option<DeliveryErrorClass>,
    pub best_effort: bool,
    pub body: String,
    /// The platform message this row answers (its first part quotes it), for inbound chat.
    pub reply_to: Option<String>,
}

/// One rendered part of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct PartRow {
    pub idx: u32,
    pub body: String,
    pub nonce: String,
    pub state: PartState,
    pub platform_message_id: Option<String>,
    pub dispatched_at_ms: Option<i64>,
    pub sent_at_ms: Option<i64>,
}

/// One send attempt, kept for `pincer deliveries show`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub at_ms: i64,
    pub part_idx: u32,
    pub outcome: AttemptOutcome,
    pub detail: Option<String>,
}

/// Filters for [`Rd::list_deliveries`].
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub states: Vec<DeliveryState>,
    pub channel: Option<String>,
    pub origin_id: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// Queue depth for one channel, for `health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelStats {
    pub channel: String,
    pub pending: u64,
    pub sending: u64,
    pub oldest_pending_created_at_ms: Option<i64>,
    pub dead: u64,
    pub unknown: u64,
    pub delivered: u64,
    pub oldest_dead_settled_at_ms: Option<i64>,
}

/// A message in the local inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub id: i64,
    pub outbox_id: String,
    pub target: String,
    pub text: String,
    pub created_at_ms: i64,
}

const ROW_COLS: &str = "seq, id, idempotency_key, origin_kind, origin_id, channel, account_id, target, thread_id, state, \
                        attempts, max_attempts, next_attempt_at_ms, lease_until_ms, created_at_ms, updated_at_ms, \
                        settled_at_ms, last_error, last_error_class, best_effort, body, reply_to";

fn row_from(r: &Row) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        idempotency_key: r.get(2)?,
        origin_kind: r.get(3)?,
        origin_id: r.get(4)?,
        channel: r.get(5)?,
        account_id: r.get(6)?,
        target: r.get(7)?,
        thread_id: r.get(8)?,
        state: r.get(9)?,
        attempts: r.get(10)?,
        max_attempts: r.get(11)?,
        next_attempt_at_ms: r.get(12)?,
        lease_until_ms: r.get(13)?,
        created_at_ms: r.get(14)?,
        updated_at_ms: r.get(15)?,
        settled_at_ms: r.get(16)?,
        last_error: r.get(17)?,
        last_error_class: r.get(18)?,
        best_effort: r.get::<_, i64>(19)? != 0,
        body: r.get(20)?,
        reply_to: r.get(21)?,
    })
}

fn part_from(r: &Row) -> rusqlite::Result<PartRow> {
    Ok(PartRow {
        idx: r.get(0)?,
        body: r.get(1)?,
        nonce: r.get(2)?,
        state: r.get(3)?,
        platform_message_id: r.get(4)?,
        dispatched_at_ms: r.get(5)?,
        sent_at_ms: r.get(6)?,
    })
}

fn parts_of(conn: &rusqlite::Connection, id: &str) -> Result<Vec<PartRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, body, nonce, state, platform_message_id, dispatched_at_ms, sent_at_ms FROM outbox_parts
         WHERE outbox_id = ?1 ORDER BY idx",
    )?;
    let parts = stmt.query_map([id], part_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(parts)
}

fn get_row(conn: &rusqlite::Connection, id: &str) -> Result<Option<DeliveryRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {ROW_COLS} FROM outbox WHERE id = ?1"))?;
    Ok(stmt.query_row([id], row_from).optional()?)
}

/// Whether a cancellation was asked for and not yet honoured: the row's latest cancel record is
/// a request (a row cancelled, then retried, is sent again).
fn cancel_pending(conn: &rusqlite::Connection, id: &str) -> Result<bool> {
    let latest: Option<AttemptOutcome> = conn
        .prepare_cached(
            "SELECT outcome FROM outbox_attempts WHERE outbox_id = ?1 AND outcome IN (?2, ?3) ORDER BY rowid DESC LIMIT 1",
        )?
        .query_row(params![id, AttemptOutcome::CancelRequested, AttemptOutcome::Cancelled], |r| r.get(0))
        .optional()?;
    Ok(latest == Some(AttemptOutcome::CancelRequested))
}

/// A leased row with its parts, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedDelivery {
    pub row: DeliveryRow,
    pub parts: Vec<PartRow>,
    /// `pincer deliveries cancel` asked for this row while it was being sent, and no worker has
    /// honoured it yet: the row must stop before its next part.
    pub cancel_requested: bool,
}

/// How many conversations each channel may start now: its free send slots. Every channel has
/// its own budget, so a channel whose slots are all busy (a hung API) never holds back another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseLimits {
    pub per_channel: std::collections::HashMap<String, u32>,
    /// Shared by channels not named in `per_channel` (e.g. one removed from the config, whose
    /// rows are then settled with the reason).
    pub others: u32,
}

/// A page of a delivery's parts and attempts, for `deliveries.get`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPage {
    pub row: DeliveryRow,
    pub parts: Vec<PartRow>,
    pub parts_total: u64,
    pub attempts: Vec<AttemptRow>,
    pub attempts_total: u64,
}

/// Where a delivery's parts stand, for messages about a cancelled or interrupted row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartCounts {
    pub total: u64,
    pub sent: u64,
    /// Parts that may have reached the platform (`dispatching` or `unknown`), by index; at most 10.
    pub uncertain: Vec<u32>,
}

/// A row with its parts and attempt history, for `deliveries show`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryDetail {
    pub row: DeliveryRow,
    pub parts: Vec<PartRow>,
    pub attempts: Vec<AttemptRow>,
}

/// The outcome of [`Tx::enqueue_delivery`].
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub id: String,
    /// False when a row with the same idempotency key already existed (nothing was written).
    pub created: bool,
}

impl Tx<'_> {
    /// Stores a delivery and its parts; a repeated idempotency key returns the first row.
    pub fn enqueue_delivery(&self, d: &NewDelivery) -> Result<Enqueued> {
        let conn = self.conn();
        if let Some(id) = conn
            .prepare_cached("SELECT id FROM outbox WHERE idempotency_key = ?1")?
            .query_row([&d.idempotency_key], |r| r.get::<_, String>(0))
            .optional()?
        {
            return Ok(Enqueued { id, created: false });
        }
        conn.prepare_cached(
            "INSERT INTO outbox (id, idempotency_key, origin_kind, origin_id, channel, account_id, target, thread_id,
               conversation, state, attempts, max_attempts, next_attempt_at_ms, created_at_ms, updated_at_ms,
               best_effort, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', 0, ?10, ?11, ?11, ?11, ?12, ?13)",
        )?
        .execute(params![
            d.id,
            d.idempotency_key,
            d.origin_kind,
            d.origin_id,
            d.channel,
            d.account_id,
            d.target,
            d.thread_id,
            d.conversation(),
            d.max_attempts,
            d.created_at_ms,
            d.best_effort as i64,
            d.body
        ])?;
        let mut stmt = conn.prepare_cached(
            "INSERT INTO outbox_parts (outbox_id, idx, body, nonce, state) VALUES (?1, ?2, ?3, ?4, 'pending')",
        )?;
        for (i, (body, nonce)) in d.parts.iter().enumerate() {
            stmt.execute(params![d.id, i as u32, body, nonce])?;
        }
        Ok(Enqueued { id: d.id.clone(), created: true })
    }

    /// Leases due rows, at most `limits` conversations per channel: for each conversation, the
    /// oldest unfinished row and up to `per_conversation - 1` due rows after it, in order — so a
    /// conversation stays first-in-first-out while different conversations (and channels) go in
    /// parallel. Conversations already sending and channels without budget are skipped. Leased
    /// rows become `sending` until `lease_until_ms`.
    pub fn lease_deliveries(
        &self,
        now_ms: i64,
        owner: i64,
        lease_until_ms: i64,
        limits: &LeaseLimits,
        per_conversation: u32,
    ) -> Result<Vec<Vec<LeasedDelivery>>> {
        let conn = self.conn();
        let mut budget = limits.per_channel.clone();
        let mut others = limits.others;
        let left: u64 = budget.values().map(|n| *n as u64).sum::<u64>() + others as u64;
        // The head (oldest unfinished row) of each conversation, found by stepping the
        // (conversation, seq) index from one conversation to the next: the cost is the number of
        // conversations, not the backlog behind them. Then the oldest due heads take the slots.
        let mut heads = Vec::new();
        if left > 0 {
            let mut next_head = conn.prepare_cached(
                "SELECT seq, conversation, channel, state, next_attempt_at_ms FROM outbox INDEXED BY outbox_open
                 WHERE state IN ('pending', 'sending') AND conversation > ?1 ORDER BY conversation, seq LIMIT 1",
            )?;
            let mut after = String::new();
            while let Some((seq, conversation, channel, state, due)) = next_head
                .query_row([&after], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, DeliveryState>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()?
            {
                after.clone_from(&conversation);
                if state == DeliveryState::Pending && due <= now_ms {
                    heads.push((seq, conversation, channel));
                }
            }
            heads.sort_unstable_by_key(|h| h.0);
            heads.retain(|(_, _, channel)| {
                let slot = match budget.get_mut(channel) {
                    Some(n) => n,
                    None => &mut others,
                };
                if *slot == 0 {
                    return false;
                }
                *slot -= 1;
                true
            });
        }
        let mut rows_stmt = conn.prepare_cached(&format!(
            "SELECT {ROW_COLS} FROM outbox INDEXED BY outbox_open WHERE state IN ('pending', 'sending')
             AND conversation = ?1 AND seq >= ?2 AND state = 'pending' ORDER BY seq LIMIT ?3"
        ))?;
        let mut mark = conn.prepare_cached(
            "UPDATE outbox SET state = 'sending', lease_owner = ?2, lease_until_ms = ?3, updated_at_ms = ?4 WHERE id = ?1",
        )?;
        let mut batches = Vec::new();
        for (head, conversation, _) in heads {
            let rows = rows_stmt
                .query_map(params![conversation, head, per_conversation.max(1)], row_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut batch = Vec::new();
            for mut row in rows {
                // A row still in backoff ends the batch: nothing after it may overtake it.
                if row.next_attempt_at_ms > now_ms {
                    break;
                }
                mark.execute(params![row.id, owner, lease_until_ms, now_ms])?;
                row.state = DeliveryState::Sending;
                row.lease_until_ms = Some(lease_until_ms);
                let parts = parts_of(conn, &row.id)?;
                let cancel_requested = cancel_pending(conn, &row.id)?;
                batch.push(LeasedDelivery { row, parts, cancel_requested });
            }
            if !batch.is_empty() {
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    /// Takes back rows this process (`owner`) leased whose lease ran out, except `keep` (rows a
    /// live worker still holds): parts caught mid-send become `unknown` (so they are reconciled or
    /// reported, never blindly resent) and the row returns to `pending`. Returns the rows taken.
    pub fn reclaim_expired_leases(
        &self,
        now_ms: i64,
        owner: i64,
        keep: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>> {
        let conn = self.conn();
        let expired = self.reader().expired_leases(now_ms, owner)?;
        let mut parts = conn.prepare_cached(
            "UPDATE outbox_parts SET state = 'unknown' WHERE outbox_id = ?1 AND state = 'dispatching'",
        )?;
        let mut row = conn.prepare_cached(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ?2
             WHERE id = ?1 AND state = 'sending'",
        )?;
        let mut in_flight = conn.prepare_cached(
            "SELECT idx FROM outbox_parts WHERE outbox_id = ?1 AND state = 'dispatching' ORDER BY idx LIMIT 1",
        )?;
        let mut taken = Vec::new();
        for id in expired.into_iter().filter(|id| !keep.contains(id)) {
            let part_idx: Option<u32> = in_flight.query_row([&id], |r| r.get(0)).optional()?;
            let interrupted = parts.execute([&id])?;
            row.execute(params![id, now_ms])?;
            let detail = if interrupted > 0 {
                "the lease expired with a part in flight; it is now `unknown` and is looked for or reported, not resent blindly"
            } else {
                "the lease expired; the row is back in the queue"
            };
            self.record_attempt(
                &id,
                &AttemptRow {
                    at_ms: now_ms,
                    part_idx: part_idx.unwrap_or(0),
                    outcome: AttemptOutcome::LeaseExpired,
                    detail: Some(detail.into()),
                },
            )?;
            taken.push(id);
        }
        Ok(taken)
    }

    /// Returns leased rows that were not attempted to `pending`, unchanged otherwise.
    pub fn release_deliveries(&self, ids: &[String], now_ms: i64) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ?2
             WHERE id = ?1 AND state = 'sending'",
        )?;
        for id in ids {
            stmt.execute(params![id, now_ms])?;
        }
        Ok(())
    }

    /// Persists "about to send part `idx`" before the request leaves.
    pub fn mark_part_dispatching(&self, id: &str, idx: u32, now_ms: i64) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox_parts SET state = 'dispatching', dispatched_at_ms = COALESCE(dispatched_at_ms, ?3)
             WHERE outbox_id = ?1 AND idx = ?2",
            )?
            .execute(params![id, idx, now_ms])?;
        Ok(())
    }

    /// Records the platform's receipt for part `idx`.
    pub fn mark_part_sent(&self, id: &str, idx: u32, message_id: &str, now_ms: i64) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox_parts SET state = 'sent', platform_message_id = ?3, sent_at_ms = ?4
             WHERE outbox_id = ?1 AND idx = ?2",
            )?
            .execute(params![id, idx, message_id, now_ms])?;
        Ok(())
    }

    /// Sets a part's state (`pending` after a proven non-send, `unknown` after an ambiguous one).
    pub fn set_part_state(&self, id: &str, idx: u32, state: PartState) -> Result<()> {
        self.conn()
            .execute("UPDATE outbox_parts SET state = ?3 WHERE outbox_id = ?1 AND idx = ?2", params![id, idx, state])?;
        Ok(())
    }

    pub fn record_attempt(&self, id: &str, a: &AttemptRow) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO outbox_attempts (outbox_id, at_ms, part_idx, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, a.at_ms, a.part_idx, a.outcome, a.detail])?;
        Ok(())
    }

    /// Puts a leased row back to `pending` for `next_attempt_at_ms`, charging an attempt or not.
    pub fn reschedule_delivery(
        &self,
        id: &str,
        next_attempt_at_ms: i64,
        charge_attempt: bool,
        error: &str,
        class: DeliveryErrorClass,
        now_ms: i64,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE outbox SET state = 'pending', attempts = attempts + ?2, next_attempt_at_ms = ?3, lease_owner = NULL,
               lease_until_ms = NULL, last_error = ?4, last_error_class = ?5, updated_at_ms = ?6
             WHERE id = ?1 AND state = 'sending'",
            params![id, charge_attempt as i64, next_attempt_at_ms, error, class, now_ms],
        )?;
        Ok(())
    }

    /// Makes an unfinished row terminal: `delivered`, `unknown` or `dead` (a row already
    /// terminal is left as it is, so a repeated settlement charges nothing twice). Returns the row.
    pub fn settle_delivery(
        &self,
        id: &str,
        state: DeliveryState,
        charge_attempt: bool,
        error: Option<&str>,
        class: Option<DeliveryErrorClass>,
        now_ms: i64,
    ) -> Result<Option<DeliveryRow>> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox SET state = ?2, attempts = attempts + ?3, lease_owner = NULL, lease_until_ms = NULL,
               last_error = COALESCE(?4, last_error), last_error_class = COALESCE(?5, last_error_class),
               settled_at_ms = ?6, updated_at_ms = ?6 WHERE id = ?1 AND state IN ('pending', 'sending')",
            )?
            .execute(params![id, state, charge_attempt as i64, error, class, now_ms])?;
        get_row(self.conn(), id)
    }

    /// Sends a `dead` or `unknown` row again: back to `pending`, attempts reset, parts that were
    /// never confirmed sent become `pending`. Returns false if the row is not in such a state.
    pub fn retry_delivery(&self, id: &str, now_ms: i64) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at_ms = ?2, settled_at_ms = NULL,
               updated_at_ms = ?2 WHERE id = ?1 AND state IN ('dead', 'unknown')",
            params![id, now_ms],
        )?;
        if n > 0 {
            self.conn().execute(
                "UPDATE outbox_parts SET state = 'pending', dispatched_at_ms = NULL WHERE outbox_id = ?1 AND state != 'sent'",
                [id],
            )?;
        }
        Ok(n > 0)
    }

    /// Deletes settled rows in `states` settled before `before_ms`; returns how many.
    pub fn purge_deliveries(&self, states: &[DeliveryState], before_ms: i64) -> Result<usize> {
        let mut total = 0;
        for state in states {
            if !state.is_terminal() {
                continue;
            }
            total += self.conn().execute(
                "DELETE FROM outbox WHERE state = ?1 AND settled_at_ms IS NOT NULL AND settled_at_ms < ?2",
                params![state, before_ms],
            )?;
        }
        Ok(total)
    }

    /// After a restart: leased rows go back to `pending` (nothing of ours is sending any more) and
    /// parts caught mid-send become `unknown`. Returns the rows that had such a part.
    pub fn recover_outbox(&self, now_ms: i64) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT DISTINCT outbox_id FROM outbox_parts WHERE state = 'dispatching'
               AND outbox_id IN (SELECT id FROM outbox WHERE state = 'sending')",
        )?;
        let interrupted = stmt.query_map((), |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        conn.execute(
            "UPDATE outbox_parts SET state = 'unknown' WHERE state = 'dispatching'
               AND outbox_id IN (SELECT id FROM outbox WHERE state = 'sending')",
            (),
        )?;
        conn.execute(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ?1
             WHERE state = 'sending'",
            [now_ms],
        )?;
        Ok(interrupted)
    }

    /// Stores a message for the local inbox (idempotent per outbox row).
    pub fn insert_inbox(&self, outbox_id: &str, target: &str, text: &str, now_ms: i64) -> Result<i64> {
        self.conn()
            .prepare_cached(
                "INSERT OR IGNORE INTO inbox (outbox_id, target, text, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![outbox_id, target, text, now_ms])?;
        Ok(self
            .conn()
            .prepare_cached("SELECT id FROM inbox WHERE outbox_id = ?1")?
            .query_row([outbox_id], |r| r.get(0))?)
    }
}

impl Rd<'_> {
    pub fn get_delivery(&self, id: &str) -> Result<Option<DeliveryDetail>> {
        let conn = self.conn();
        let Some(row) = get_row(conn, id)? else { return Ok(None) };
        let parts = parts_of(conn, id)?;
        let mut stmt = conn.prepare_cached(
            "SELECT at_ms, part_idx, outcome, detail FROM outbox_attempts WHERE outbox_id = ?1 ORDER BY at_ms, rowid",
        )?;
        let attempts = stmt
            .query_map([id], |r| {
                Ok(AttemptRow { at_ms: r.get(0)?, part_idx: r.get(1)?, outcome: r.get(2)?, detail: r.get(3)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(DeliveryDetail { row, parts, attempts }))
    }

    /// One delivery without its parts and attempts.
    pub fn delivery_row(&self, id: &str) -> Result<Option<DeliveryRow>> {
        get_row(self.conn(), id)
    }

    /// One delivery with a page of its parts (by index) and of its attempts (oldest first).
    pub fn delivery_page(
        &self,
        id: &str,
        parts_offset: u32,
        parts_limit: u32,
        attempts_offset: u32,
        attempts_limit: u32,
    ) -> Result<Option<DeliveryPage>> {
        let conn = self.conn();
        let Some(row) = get_row(conn, id)? else { return Ok(None) };
        let parts_total: i64 =
            conn.query_row("SELECT COUNT(*) FROM outbox_parts WHERE outbox_id = ?1", [id], |r| r.get(0))?;
        let parts = conn
            .prepare_cached(
                "SELECT idx, body, nonce, state, platform_message_id, dispatched_at_ms, sent_at_ms FROM outbox_parts
                 WHERE outbox_id = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3",
            )?
            .query_map(params![id, parts_offset, parts_limit], part_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let attempts_total: i64 =
            conn.query_row("SELECT COUNT(*) FROM outbox_attempts WHERE outbox_id = ?1", [id], |r| r.get(0))?;
        let attempts = conn
            .prepare_cached(
                "SELECT at_ms, part_idx, outcome, detail FROM outbox_attempts WHERE outbox_id = ?1
                 ORDER BY at_ms, rowid LIMIT ?3 OFFSET ?2",
            )?
            .query_map(params![id, attempts_offset, attempts_limit], |r| {
                Ok(AttemptRow { at_ms: r.get(0)?, part_idx: r.get(1)?, outcome: r.get(2)?, detail: r.get(3)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(DeliveryPage {
            row,
            parts,
            parts_total: parts_total as u64,
            attempts,
            attempts_total: attempts_total as u64,
        }))
    }

    /// How many of a delivery's parts were sent, and which may have been.
    pub fn part_counts(&self, id: &str) -> Result<PartCounts> {
        let conn = self.conn();
        let (total, sent): (i64, i64) = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(state = 'sent'), 0) FROM outbox_parts WHERE outbox_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let uncertain = conn
            .prepare_cached(
                "SELECT idx FROM outbox_parts WHERE outbox_id = ?1 AND state IN ('dispatching', 'unknown') ORDER BY idx LIMIT 10",
            )?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<u32>>>()?;
        Ok(PartCounts { total: total as u64, sent: sent as u64, uncertain })
    }

    /// Whether `pincer deliveries cancel` asked for this row and no worker has honoured it yet.
    pub fn cancel_requested(&self, id: &str) -> Result<bool> {
        cancel_pending(self.conn(), id)
    }

    /// Rows `owner` leased whose lease ran out by `now_ms`.
    pub fn expired_leases(&self, now_ms: i64, owner: i64) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id FROM outbox INDEXED BY outbox_open_seq WHERE state IN ('pending', 'sending') AND state = 'sending'
               AND lease_owner = ?2 AND lease_until_ms <= ?1 ORDER BY seq",
        )?;
        let ids = stmt.query_map(params![now_ms, owner], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    /// The delivery with this idempotency key, if any.
    pub fn delivery_by_key(&self, key: &str) -> Result<Option<DeliveryRow>> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {ROW_COLS} FROM outbox WHERE idempotency_key = ?1"), [key], row_from)
            .optional()?)
    }

    /// Newest first, with the total matching.
    pub fn list_deliveries(&self, f: &DeliveryFilter) -> Result<(Vec<DeliveryRow>, u64)> {
        let mut clauses = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if !f.states.is_empty() {
            let mut marks = Vec::new();
            for s in &f.states {
                args.push(s.as_str().to_string().into());
                marks.push(format!("?{}", args.len()));
            }
            clauses.push(format!("state IN ({})", marks.join(", ")));
        }
        if let Some(c) = &f.channel {
            args.push(c.clone().into());
            clauses.push(format!("channel = ?{}", args.len()));
        }
        if let Some(o) = &f.origin_id {
            args.push(o.clone().into());
            clauses.push(format!("origin_id = ?{}", args.len()));
        }
        let where_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let total: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM outbox {where_sql}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        args.push((f.limit as i64).into());
        args.push((f.offset as i64).into());
        let sql = format!(
            "SELECT {ROW_COLS} FROM outbox {where_sql} ORDER BY seq DESC LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows =
            stmt.query_map(rusqlite::params_from_iter(args.iter()), row_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }

    /// Per-channel depth, oldest pending age and dead/unknown counts.
    pub fn outbox_stats(&self) -> Result<Vec<ChannelStats>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT channel,
               SUM(state = 'pending'), SUM(state = 'sending'), MIN(CASE WHEN state IN ('pending','sending') THEN created_at_ms END),
               SUM(state = 'dead'), SUM(state = 'unknown'), SUM(state = 'delivered'),
               MIN(CASE WHEN state = 'dead' THEN settled_at_ms END)
             FROM outbox GROUP BY channel ORDER BY channel",
        )?;
        let stats = stmt
            .query_map((), |r| {
                Ok(ChannelStats {
                    channel: r.get(0)?,
                    pending: r.get::<_, i64>(1)? as u64,
                    sending: r.get::<_, i64>(2)? as u64,
                    oldest_pending_created_at_ms: r.get(3)?,
                    dead: r.get::<_, i64>(4)? as u64,
                    unknown: r.get::<_, i64>(5)? as u64,
                    delivered: r.get::<_, i64>(6)? as u64,
                    oldest_dead_settled_at_ms: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(stats)
    }

    /// When the earliest pending row due strictly after `after_ms` becomes due, if any.
    pub fn next_delivery_due_after(&self, after_ms: i64) -> Result<Option<i64>> {
        Ok(self.conn().query_row(
            "SELECT MIN(next_attempt_at_ms) FROM outbox WHERE state = 'pending' AND next_attempt_at_ms > ?1",
            [after_ms],
            |r| r.get(0),
        )?)
    }

    /// Inbox messages, newest first.
    pub fn list_inbox(&self, limit: u32, offset: u32) -> Result<(Vec<InboxRow>, u64)> {
        let total: i64 = self.conn().query_row("SELECT COUNT(*) FROM inbox", (), |r| r.get(0))?;
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, outbox_id, target, text, created_at_ms FROM inbox ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = stmt
            .query_map(params![limit, offset], |r| {
                Ok(InboxRow {
                    id: r.get(0)?,
                    outbox_id: r.get(1)?,
                    target: r.get(2)?,
                    text: r.get(3)?,
                    created_at_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn delivery(id: &str, channel: &str, target: &str, parts: usize) -> NewDelivery {
        NewDelivery {
            id: id.into(),
            idempotency_key: format!("key-{id}"),
            origin_kind: OriginKind::Send,
            origin_id: None,
            channel: channel.into(),
            account_id: None,
            target: target.into(),
            thread_id: None,
            max_attempts: 5,
            best_effort: false,
            body: "body".into(),
            parts: (0..parts).map(|i| (format!("part {i}"), format!("n-{id}-{i}"))).collect(),
            created_at_ms: 100,
        }
    }

    /// `n` conversations for any channel, none for `paused`.
    fn limits(n: u32, paused: &[&str]) -> LeaseLimits {
        LeaseLimits { per_channel: paused.iter().map(|c| (c.to_string(), 0)).collect(), others: n }
    }

    fn ids(batches: &[Vec<LeasedDelivery>]) -> Vec<Vec<String>> {
        batches.iter().map(|b| b.iter().map(|l| l.row.id.clone()).collect()).collect()
    }

    #[test]
    fn enqueue_is_idempotent_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let first = store.write_blocking(|tx| tx.enqueue_delivery(&delivery("a", "discord", "channel:1", 2))).unwrap();
        let mut again = delivery("b", "discord", "channel:1", 1);
        again.idempotency_key = "key-a".into();
        let second = store.write_blocking(move |tx| tx.enqueue_delivery(&again)).unwrap();
        assert_eq!((first.created, second.created, second.id.as_str()), (true, false, "a"));
        let parts = store.read_blocking(|rd| rd.get_delivery("a")).unwrap().unwrap().parts;
        assert_eq!(parts.len(), 2);
        assert!(store.read_blocking(|rd| rd.get_delivery("b")).unwrap().is_none());
    }

    #[test]
    fn leasing_is_fifo_per_conversation_and_parallel_across() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                for (id, target) in [("a1", "c:1"), ("b1", "c:2"), ("a2", "c:1"), ("a3", "c:1"), ("b2", "c:2")] {
                    tx.enqueue_delivery(&delivery(id, "discord", target, 1))?;
                }
                tx.enqueue_delivery(&delivery("t1", "telegram", "42", 1))?;
                Ok(())
            })
            .unwrap();
        let leased =
            store.write_blocking(|tx| tx.lease_deliveries(1_000, 1, 9_000, &limits(10, &["telegram"]), 2)).unwrap();
        assert_eq!(ids(&leased), [vec!["a1", "a2"], vec!["b1", "b2"]]);
        // Conversation c:1 is busy until a1/a2 finish; a3 must wait.
        assert!(
            store
                .write_blocking(|tx| tx.lease_deliveries(1_000, 1, 9_000, &limits(10, &[]), 2))
                .unwrap()
                .iter()
                .all(|b| b[0].row.id == "t1")
        );
        store
            .write_blocking(|tx| {
                tx.settle_delivery("a1", DeliveryState::Delivered, true, None, None, 1_001)?;
                // a2 goes back into backoff: a3 may not overtake it.
                tx.reschedule_delivery("a2", 5_000, true, "boom", DeliveryErrorClass::Ambiguous, 1_001)
            })
            .unwrap();
        assert!(
            store.write_blocking(|tx| tx.lease_deliveries(2_000, 1, 9_000, &limits(10, &[]), 5)).unwrap().is_empty()
        );
        let leased = store.write_blocking(|tx| tx.lease_deliveries(5_000, 1, 9_000, &limits(10, &[]), 5)).unwrap();
        assert_eq!(ids(&leased), [vec!["a2", "a3"]]);
        assert_eq!(leased[0][0].row.attempts, 1);
        // Released rows return untouched.
        store.write_blocking(|tx| tx.release_deliveries(&["a3".into()], 5_001)).unwrap();
        let stats = store.read_blocking(|rd| rd.outbox_stats()).unwrap();
        let discord = stats.iter().find(|s| s.channel == "discord").unwrap();
        assert_eq!((discord.pending, discord.sending, discord.delivered), (1, 3, 1));
    }

    #[test]
    fn recovery_marks_mid_send_parts_unknown_and_retry_resends_only_unsent_parts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store.write_blocking(|tx| tx.enqueue_delivery(&delivery("a", "discord", "c:1", 3)).map(|_| ())).unwrap();
        store
            .write_blocking(|tx| {
                tx.lease_deliveries(1_000, 1, 9_000, &limits(10, &[]), 1)?;
                tx.mark_part_dispatching("a", 0, 1_000)?;
                tx.mark_part_sent("a", 0, "m0", 1_001)?;
                tx.mark_part_dispatching("a", 1, 1_002)
            })
            .unwrap();
        let interrupted = store.write_blocking(|tx| tx.recover_outbox(2_000)).unwrap();
        assert_eq!(interrupted, ["a"]);
        let DeliveryDetail { row, parts, .. } = store.read_blocking(|rd| rd.get_delivery("a")).unwrap().unwrap();
        assert_eq!(row.state, DeliveryState::Pending);
        assert_eq!(
            parts.iter().map(|p| p.state).collect::<Vec<_>>(),
            [PartState::Sent, PartState::Unknown, PartState::Pending]
        );
        store
            .write_blocking(|tx| {
                tx.settle_delivery(
                    "a",
                    DeliveryState::Unknown,
                    false,
                    Some("?"),
                    Some(DeliveryErrorClass::Ambiguous),
                    2_001,
                )
                .map(|_| ())
            })
            .unwrap();
        assert!(store.write_blocking(|tx| tx.retry_delivery("a", 3_000)).unwrap());
        let DeliveryDetail { row, parts, .. } = store.read_blocking(|rd| rd.get_delivery("a")).unwrap().unwrap();
        assert_eq!((row.state, row.attempts), (DeliveryState::Pending, 0));
        assert_eq!(
            parts.iter().map(|p| p.state).collect::<Vec<_>>(),
            [PartState::Sent, PartState::Pending, PartState::Pending]
        );
        assert!(!store.write_blocking(|tx| tx.retry_delivery("a", 3_000)).unwrap(), "only dead/unknown rows retry");
    }

    #[test]
    fn each_channel_leases_only_as_many_conversations_as_it_has_free_slots() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                for (id, channel, target) in [
                    ("d1", "discord", "c:1"),
                    ("d2", "discord", "c:2"),
                    ("d3", "discord", "c:3"),
                    ("t1", "telegram", "1"),
                    ("s1", "slack", "C1"),
                    ("t2", "telegram", "2"),
                ] {
                    tx.enqueue_delivery(&delivery(id, channel, target, 1))?;
                }
                Ok(())
            })
            .unwrap();
        // Discord has one free slot (its others are busy), Telegram three; Slack is not configured.
        let limits = LeaseLimits {
            per_channel: [("discord".to_string(), 1), ("telegram".to_string(), 3)].into_iter().collect(),
            others: 0,
        };
        let leased = store.write_blocking(move |tx| tx.lease_deliveries(1_000, 1, 9_000, &limits, 5)).unwrap();
        assert_eq!(ids(&leased), [vec!["d1"], vec!["t1"], vec!["t2"]], "discord's backlog does not hold telegram back");
        let limits = LeaseLimits { per_channel: [("discord".to_string(), 0)].into_iter().collect(), others: 1 };
        let leased = store.write_blocking(move |tx| tx.lease_deliveries(1_000, 1, 9_000, &limits, 5)).unwrap();
        assert_eq!(ids(&leased), [vec!["s1"]], "a channel not configured shares the spare slots");
    }

    #[test]
    fn expired_leases_are_taken_back_unless_a_live_worker_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                for (id, target) in [("a", "c:1"), ("b", "c:2"), ("c", "c:3")] {
                    tx.enqueue_delivery(&delivery(id, "discord", target, 2))?;
                }
                tx.lease_deliveries(1_000, 7, 5_000, &limits(10, &[]), 1)?;
                // `a` died after its first part went out; `b` had not started; `c` is still held.
                tx.mark_part_dispatching("a", 0, 1_001)?;
                tx.mark_part_sent("a", 0, "m0", 1_002)?;
                tx.mark_part_dispatching("a", 1, 1_003)
            })
            .unwrap();
        let keep: std::collections::HashSet<String> = ["c".to_string()].into();
        let (k1, k2, k3) = (keep.clone(), keep.clone(), keep);
        assert!(store.write_blocking(move |tx| tx.reclaim_expired_leases(4_999, 7, &k1)).unwrap().is_empty());
        assert!(
            store.write_blocking(move |tx| tx.reclaim_expired_leases(5_000, 8, &k2)).unwrap().is_empty(),
            "not ours"
        );
        let taken = store.write_blocking(move |tx| tx.reclaim_expired_leases(5_000, 7, &k3)).unwrap();
        assert_eq!(taken, ["a", "b"]);
        let a = store.read_blocking(|rd| rd.get_delivery("a")).unwrap().unwrap();
        assert_eq!(a.row.state, DeliveryState::Pending);
        assert_eq!(a.parts.iter().map(|p| p.state).collect::<Vec<_>>(), [PartState::Sent, PartState::Unknown]);
        let last = a.attempts.last().unwrap();
        assert_eq!((last.outcome, last.part_idx), (AttemptOutcome::LeaseExpired, 1));
        assert!(last.detail.as_deref().unwrap().contains("not resent blindly"));
        let c = store.read_blocking(|rd| rd.delivery_row("c")).unwrap().unwrap();
        assert_eq!(c.state, DeliveryState::Sending, "a live worker's row is left alone");
    }

    #[test]
    fn a_cancel_request_is_seen_by_the_next_lease_until_it_is_honoured_and_a_retry_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let note = |outcome| AttemptRow { at_ms: 1_500, part_idx: 0, outcome, detail: None };
        let (requested, done) = (note(AttemptOutcome::CancelRequested), note(AttemptOutcome::Cancelled));
        store
            .write_blocking(move |tx| {
                tx.enqueue_delivery(&delivery("a", "discord", "c:1", 3))?;
                tx.lease_deliveries(1_000, 1, 9_000, &limits(10, &[]), 1)?;
                tx.record_attempt("a", &requested)?;
                // The process died before the worker saw the request.
                tx.recover_outbox(2_000).map(|_| ())
            })
            .unwrap();
        let lease = |now: i64| {
            store.write_blocking(move |tx| tx.lease_deliveries(now, 2, now + 9_000, &limits(10, &[]), 1)).unwrap()
        };
        assert!(lease(2_000)[0][0].cancel_requested, "the request survives a restart");
        store
            .write_blocking(move |tx| {
                tx.record_attempt("a", &done)?;
                tx.settle_delivery(
                    "a",
                    DeliveryState::Dead,
                    false,
                    Some("cancelled"),
                    Some(DeliveryErrorClass::Cancelled),
                    2_001,
                )
                .map(|_| ())
            })
            .unwrap();
        assert!(store.write_blocking(|tx| tx.retry_delivery("a", 3_000)).unwrap());
        assert!(!lease(3_000)[0][0].cancel_requested, "a retried row is sent again");
        let counts = store.read_blocking(|rd| rd.part_counts("a")).unwrap();
        assert_eq!(counts, PartCounts { total: 3, sent: 0, uncertain: vec![] });
    }

    #[test]
    fn a_repeated_settlement_or_reschedule_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.enqueue_delivery(&delivery("a", "discord", "c:1", 1))?;
                tx.lease_deliveries(1_000, 1, 9_000, &limits(10, &[]), 1)?;
                tx.settle_delivery("a", DeliveryState::Delivered, true, None, None, 1_001)?;
                tx.settle_delivery(
                    "a",
                    DeliveryState::Dead,
                    true,
                    Some("late"),
                    Some(DeliveryErrorClass::Target),
                    1_002,
                )?;
                tx.reschedule_delivery("a", 5_000, true, "late", DeliveryErrorClass::NotSent, 1_003)
            })
            .unwrap();
        let row = store.read_blocking(|rd| rd.delivery_row("a")).unwrap().unwrap();
        assert_eq!((row.state, row.attempts, row.settled_at_ms), (DeliveryState::Delivered, 1, Some(1_001)));
    }

    #[test]
    fn purge_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                for id in ["a", "b", "c"] {
                    tx.enqueue_delivery(&delivery(id, "discord", id, 1))?;
                }
                tx.settle_delivery("a", DeliveryState::Delivered, true, None, None, 10)?;
                tx.settle_delivery("b", DeliveryState::Dead, true, Some("403"), Some(DeliveryErrorClass::Target), 20)?;
                Ok(())
            })
            .unwrap();
        let filter = DeliveryFilter { states: vec![DeliveryState::Dead], limit: 10, ..Default::default() };
        let (rows, total) = store.read_blocking(move |rd| rd.list_deliveries(&filter)).unwrap();
        assert_eq!((total, rows[0].last_error.as_deref()), (1, Some("403")));
        assert_eq!(
            store
                .write_blocking(|tx| tx.purge_deliveries(&[DeliveryState::Delivered, DeliveryState::Dead], 15))
                .unwrap(),
            1
        );
        let (_, total) =
            store.read_blocking(|rd| rd.list_deliveries(&DeliveryFilter { limit: 10, ..Default::default() })).unwrap();
        assert_eq!(total, 2);
    }
}
