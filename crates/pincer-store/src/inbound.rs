//! Inbound chat (migration 10): each channel's poll cursor, the messages users sent the bot (kept
//! with the cursor that confirmed them, in one commit), senders the owner approved, and pending
//! pairing codes. The reply's outbox row and its message's `answered` mark share a commit too, so a
//! `kill -9` anywhere neither loses a message nor answers it twice.

use pincer_protocol::state::InboundState;
use rusqlite::{OptionalExtension, Row, params};

use crate::{Rd, Result, Tx};

/// A message a user sent, as the channel's poller parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInbound {
    pub channel: String,
    /// Unique per channel (Telegram: the update id): a second insert is ignored.
    pub external_id: String,
    pub session_key: String,
    pub chat_id: String,
    pub thread_id: Option<String>,
    pub message_id: String,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub text: String,
    pub received_at_ms: i64,
}

/// A stored inbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRow {
    pub seq: i64,
    pub channel: String,
    pub session_key: String,
    pub chat_id: String,
    pub thread_id: Option<String>,
    pub message_id: String,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub text: String,
    pub state: InboundState,
    pub received_at_ms: i64,
    pub delivery_id: Option<String>,
}

/// A pairing code waiting for the owner.
#[derive(Debug, Clone, PartialEq)]
pub struct PairingCodeRow {
    pub channel: String,
    pub code: String,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub chat_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

const COLS: &str = "seq, channel, session_key, chat_id, thread_id, message_id, sender_id, sender_name, text, state, \
                    received_at_ms, delivery_id";

fn inbound_from(r: &Row) -> rusqlite::Result<InboundRow> {
    Ok(InboundRow {
        seq: r.get(0)?,
        channel: r.get(1)?,
        session_key: r.get(2)?,
        chat_id: r.get(3)?,
        thread_id: r.get(4)?,
        message_id: r.get(5)?,
        sender_id: r.get(6)?,
        sender_name: r.get(7)?,
        text: r.get(8)?,
        state: r.get(9)?,
        received_at_ms: r.get(10)?,
        delivery_id: r.get(11)?,
    })
}

fn pairing_from(r: &Row) -> rusqlite::Result<PairingCodeRow> {
    Ok(PairingCodeRow {
        channel: r.get(0)?,
        code: r.get(1)?,
        sender_id: r.get(2)?,
        sender_name: r.get(3)?,
        chat_id: r.get(4)?,
        created_at_ms: r.get(5)?,
        expires_at_ms: r.get(6)?,
    })
}

const PAIRING_COLS: &str = "channel, code, sender_id, sender_name, chat_id, created_at_ms, expires_at_ms";

fn sender_allowed(conn: &rusqlite::Connection, channel: &str, sender_id: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM channel_allow WHERE channel = ?1 AND sender_id = ?2",
            params![channel, sender_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// How long a channel remembers that it decided on a message: far longer than any platform
/// redelivers one (Slack retries for minutes, Telegram's webhook for hours).
pub const DECISION_MEMORY_MS: i64 = 7 * 24 * 3_600_000;

impl Tx<'_> {
    /// Moves `channel`'s cursor to `next_offset` (never back) and stores `message` if given and
    /// new — one commit, so a confirmed update is always a stored message. Returns whether the
    /// message was new.
    pub fn accept_inbound(
        &self,
        channel: &str,
        next_offset: i64,
        message: Option<&NewInbound>,
        now_ms: i64,
    ) -> Result<bool> {
        self.conn().execute(
            "INSERT INTO inbound_cursors (channel, next_offset, updated_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(channel) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset),
                                                updated_at_ms = excluded.updated_at_ms",
            params![channel, next_offset, now_ms],
        )?;
        let Some(m) = message else { return Ok(false) };
        self.insert_inbound(m)
    }

    /// Stores `m` unless a message with its `external_id` was stored before (a platform's
    /// redelivery: Slack's event id). Returns whether it was new.
    pub fn insert_inbound(&self, m: &NewInbound) -> Result<bool> {
        let added = self.conn().execute(
            "INSERT INTO inbound_messages (channel, external_id, session_key, chat_id, thread_id, message_id, sender_id,
               sender_name, text, state, received_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(channel, external_id) DO NOTHING",
            params![
                m.channel,
                m.external_id,
                m.session_key,
                m.chat_id,
                m.thread_id,
                m.message_id,
                m.sender_id,
                m.sender_name,
                m.text,
                InboundState::Queued,
                m.received_at_ms
            ],
        )?;
        Ok(added == 1)
    }

    /// Settles queued messages `seqs` as `state`, answered by outbox row `delivery_id`. Returns how
    /// many were still queued (a message is settled once).
    pub fn settle_inbound(
        &self,
        seqs: &[i64],
        state: InboundState,
        delivery_id: Option<&str>,
        now_ms: i64,
    ) -> Result<usize> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE inbound_messages SET state = ?2, delivery_id = ?3, finished_at_ms = ?4
             WHERE seq = ?1 AND state = ?5",
        )?;
        let mut n = 0;
        for seq in seqs {
            n += stmt.execute(params![seq, state, delivery_id, now_ms, InboundState::Queued])?;
        }
        Ok(n)
    }

    /// Marks the outbox row `id` as a reply to platform message `message_id` (its first part
    /// quotes it).
    pub fn set_delivery_reply_to(&self, id: &str, message_id: &str) -> Result<()> {
        self.conn().execute("UPDATE outbox SET reply_to = ?2 WHERE id = ?1", params![id, message_id])?;
        Ok(())
    }

    /// Whether the owner approved `sender_id` on `channel` (read inside the decision's commit).
    pub fn sender_allowed(&self, channel: &str, sender_id: &str) -> Result<bool> {
        sender_allowed(self.conn(), channel, sender_id)
    }

    /// Whether a message with this platform id is stored (answered or not).
    pub fn inbound_exists(&self, channel: &str, external_id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM inbound_messages WHERE channel = ?1 AND external_id = ?2",
                params![channel, external_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records that `channel` decided on its message `external_id`; false when it already had
    /// (a redelivery). Decisions older than [`DECISION_MEMORY_MS`] are forgotten here.
    pub fn first_decision(&self, channel: &str, external_id: &str, now_ms: i64) -> Result<bool> {
        self.conn()
            .prepare_cached("DELETE FROM inbound_decisions WHERE decided_at_ms < ?1")?
            .execute([now_ms - DECISION_MEMORY_MS])?;
        let n = self
            .conn()
            .prepare_cached(
                "INSERT OR IGNORE INTO inbound_decisions (channel, external_id, decided_at_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![channel, external_id, now_ms])?;
        Ok(n > 0)
    }

    /// Lets `sender_id` talk to the bot on `channel`.
    pub fn allow_sender(&self, channel: &str, sender_id: &str, sender_name: Option<&str>, now_ms: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO channel_allow (channel, sender_id, sender_name, approved_at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(channel, sender_id) DO NOTHING",
            params![channel, sender_id, sender_name, now_ms],
        )?;
        Ok(())
    }

    /// The live pairing code of `candidate`'s sender, else `candidate` itself (stored) — unless
    /// `max_pending` live codes already wait on the channel (then `None`). Expired codes are
    /// dropped first. Returns `(row, created)`.
    pub fn pairing_code_for(
        &self,
        candidate: &PairingCodeRow,
        max_pending: u32,
    ) -> Result<Option<(PairingCodeRow, bool)>> {
        let (channel, now_ms) = (candidate.channel.as_str(), candidate.created_at_ms);
        self.conn().execute(
            "DELETE FROM channel_pairing WHERE channel = ?1 AND expires_at_ms <= ?2",
            params![channel, now_ms],
        )?;
        let existing = self
            .conn()
            .query_row(
                &format!("SELECT {PAIRING_COLS} FROM channel_pairing WHERE channel = ?1 AND sender_id = ?2"),
                params![channel, candidate.sender_id],
                pairing_from,
            )
            .optional()?;
        if let Some(row) = existing {
            return Ok(Some((row, false)));
        }
        let pending: i64 =
            self.conn()
                .query_row("SELECT count(*) FROM channel_pairing WHERE channel = ?1", [channel], |r| r.get(0))?;
        if pending >= max_pending as i64 {
            return Ok(None);
        }
        let row = candidate;
        self.conn().execute(
            &format!("INSERT INTO channel_pairing ({PAIRING_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                row.channel,
                row.code,
                row.sender_id,
                row.sender_name,
                row.chat_id,
                row.created_at_ms,
                row.expires_at_ms
            ],
        )?;
        Ok(Some((row.clone(), true)))
    }

    /// Removes the live pairing code `code` of `channel` and returns it (`None`: no such live
    /// code). With `approve`, its sender is allowed in the same commit.
    pub fn take_pairing_code(
        &self,
        channel: &str,
        code: &str,
        approve: bool,
        now_ms: i64,
    ) -> Result<Option<PairingCodeRow>> {
        let row = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {PAIRING_COLS} FROM channel_pairing WHERE channel = ?1 AND code = ?2 COLLATE NOCASE AND expires_at_ms > ?3"
                ),
                params![channel, code, now_ms],
                pairing_from,
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        self.conn()
            .execute("DELETE FROM channel_pairing WHERE channel = ?1 AND code = ?2", params![channel, row.code])?;
        if approve {
            self.allow_sender(channel, &row.sender_id, row.sender_name.as_deref(), now_ms)?;
        }
        Ok(Some(row))
    }
}

impl Rd<'_> {
    /// Where `channel`'s next poll starts (`None`: never polled).
    pub fn inbound_offset(&self, channel: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row("SELECT next_offset FROM inbound_cursors WHERE channel = ?1", [channel], |r| r.get(0))
            .optional()?)
    }

    /// Queued messages, oldest first.
    pub fn queued_inbound(&self, limit: u32) -> Result<Vec<InboundRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {COLS} FROM inbound_messages WHERE state = ?1 ORDER BY seq LIMIT ?2"))?;
        Ok(stmt.query_map(params![InboundState::Queued, limit], inbound_from)?.collect::<rusqlite::Result<_>>()?)
    }

    /// Queued messages of one session, oldest first.
    pub fn queued_inbound_of(&self, session_key: &str, limit: u32) -> Result<Vec<InboundRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLS} FROM inbound_messages WHERE state = ?1 AND session_key = ?2 ORDER BY seq LIMIT ?3"
        ))?;
        Ok(stmt
            .query_map(params![InboundState::Queued, session_key, limit], inbound_from)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Every stored message of `channel`, oldest first (tests, `doctor`).
    pub fn inbound_messages(&self, channel: &str) -> Result<Vec<InboundRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {COLS} FROM inbound_messages WHERE channel = ?1 ORDER BY seq"))?;
        Ok(stmt.query_map([channel], inbound_from)?.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the owner approved `sender_id` on `channel`.
    pub fn sender_allowed(&self, channel: &str, sender_id: &str) -> Result<bool> {
        sender_allowed(self.conn(), channel, sender_id)
    }

    /// Whether a message with this platform id is stored (answered or not).
    pub fn inbound_exists(&self, channel: &str, external_id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM inbound_messages WHERE channel = ?1 AND external_id = ?2",
                params![channel, external_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Live pairing codes (of `channel`, or all), oldest first.
    pub fn pairing_codes(&self, channel: Option<&str>, now_ms: i64) -> Result<Vec<PairingCodeRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {PAIRING_COLS} FROM channel_pairing WHERE (?1 IS NULL OR channel = ?1) AND expires_at_ms > ?2
             ORDER BY created_at_ms, code"
        ))?;
        Ok(stmt.query_map(params![channel, now_ms], pairing_from)?.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn message(id: &str) -> NewInbound {
        NewInbound {
            channel: "telegram".into(),
            external_id: id.into(),
            session_key: "agent:main:main".into(),
            chat_id: "42".into(),
            thread_id: None,
            message_id: format!("m{id}"),
            sender_id: "42".into(),
            sender_name: None,
            text: "hi".into(),
            received_at_ms: 1,
        }
    }

    #[test]
    fn the_cursor_and_the_message_commit_together_and_a_message_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        let first = store.write_blocking(|tx| tx.accept_inbound("telegram", 11, Some(&message("10")), 5)).unwrap();
        let again = store.write_blocking(|tx| tx.accept_inbound("telegram", 11, Some(&message("10")), 6)).unwrap();
        // A cursor never moves back (an old poll's answer arriving late).
        store.write_blocking(|tx| tx.accept_inbound("telegram", 3, None, 7)).unwrap();
        let (offset, queued) =
            store.read_blocking(|rd| Ok((rd.inbound_offset("telegram")?, rd.queued_inbound(10)?))).unwrap();
        assert_eq!((first, again, offset, queued.len()), (true, false, Some(11), 1));
        let seq = queued[0].seq;
        let settled = store
            .write_blocking(move |tx| tx.settle_inbound(&[seq, seq], InboundState::Answered, Some("d1"), 9))
            .unwrap();
        assert_eq!(settled, 1);
        assert!(store.read_blocking(|rd| rd.queued_inbound(10)).unwrap().is_empty());
    }

    #[test]
    fn pairing_codes_expire_are_capped_per_channel_and_approval_allows_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        let code = |sender: &'static str, code: &'static str, now: i64| {
            let candidate = PairingCodeRow {
                channel: "telegram".into(),
                code: code.into(),
                sender_id: sender.into(),
                sender_name: None,
                chat_id: sender.into(),
                created_at_ms: now,
                expires_at_ms: now + 100,
            };
            store
                .write_blocking(move |tx| tx.pairing_code_for(&candidate, 3))
                .unwrap()
                .map(|(row, created)| (row.code, created))
        };
        assert_eq!(code("1", "AAAA", 0), Some(("AAAA".into(), true)));
        assert_eq!(code("1", "BBBB", 10), Some(("AAAA".into(), false)), "a sender keeps its live code");
        assert_eq!(code("2", "CCCC", 10), Some(("CCCC".into(), true)));
        assert_eq!(code("3", "DDDD", 10), Some(("DDDD".into(), true)));
        assert_eq!(code("4", "EEEE", 10), None, "at most 3 pending per channel");
        assert_eq!(code("4", "EEEE", 100), Some(("EEEE".into(), true)), "AAAA expired at 100");
        let taken = store.write_blocking(|tx| tx.take_pairing_code("telegram", "cccc", true, 101)).unwrap();
        assert_eq!(taken.map(|r| r.sender_id), Some("2".to_string()));
        let expired = store.write_blocking(|tx| tx.take_pairing_code("telegram", "DDDD", true, 110)).unwrap();
        assert_eq!(expired, None);
        let allowed =
            store.read_blocking(|rd| Ok((rd.sender_allowed("telegram", "2")?, rd.sender_allowed("telegram", "3")?)));
        assert_eq!(allowed.unwrap(), (true, false));
    }
}
