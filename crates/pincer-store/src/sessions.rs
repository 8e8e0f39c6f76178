//! `sessions`, `transcript` and `pending_events`: agent sessions (main, per-run isolated, named),
//! their message history, and system events waiting for the next heartbeat.

use rusqlite::{OptionalExtension, Row, params};

use crate::{Rd, Result, Tx};

/// One session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub key: String,
    /// The id of the session's current transcript (a UUID); `/new` and `sessions.reset` change it.
    pub session_id: String,
    pub agent_id: String,
    /// `main`, `isolated` or `named`.
    pub kind: String,
    pub job_id: Option<String>,
    pub run_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `{channel, to, threadId?, accountId?}` of the last conversation, for `channel: "last"`.
    pub last_route_json: Option<String>,
    pub model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Messages in the current transcript.
    pub messages: i64,
    /// The name a user gave it (`sessions.patch` `label`).
    pub label: Option<String>,
    /// The model its turns use when the request names none (`sessions.patch` `model`).
    pub model_override: Option<String>,
    /// When it was archived: kept with its transcript, out of the default list.
    pub archived_at_ms: Option<i64>,
    /// Why: `manual` (`sessions.patch`), `age-retention` or `cap` (`sessions.cleanup`).
    pub archive_reason: Option<String>,
    /// The transcript the key pointed at before the current one (`/new`, `sessions.reset`).
    pub previous_session_id: Option<String>,
}

/// A transcript a session key no longer points at (`/new`, `sessions.reset`): kept, not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedSession {
    pub session_id: String,
    pub session_key: String,
    pub messages: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub archived_at_ms: i64,
    /// `new` or `reset`.
    pub reason: String,
    /// Its first entry's time (`None` when it had none).
    pub started_at_ms: Option<i64>,
    /// The transcript the key pointed at before this one.
    pub previous_session_id: Option<String>,
}

/// What `sessions.patch` changes: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPatch {
    pub label: Option<Option<String>>,
    pub model_override: Option<Option<String>>,
    /// `Some(Some((at_ms, reason)))` archives, `Some(None)` brings the session back.
    pub archived: Option<Option<(i64, String)>>,
}

/// `sessions.cleanup`'s rules (OpenClaw's `session.maintenance`), applied to one agent's sessions
/// or all. Main sessions and `protect` are never touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub now_ms: i64,
    /// Sessions idle longer are archived (named) or deleted (finished isolated runs).
    pub prune_after_ms: Option<i64>,
    /// At most this many unarchived sessions: the oldest beyond it go the same way.
    pub max_entries: Option<u64>,
    /// Transcripts a reset replaced, older than this, are deleted.
    pub reset_archive_after_ms: Option<i64>,
    pub agent_id: Option<String>,
    pub protect: Vec<String>,
}

/// What a cleanup does (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupPlan {
    /// Unarchived sessions before.
    pub before: u64,
    pub archive_age: Vec<String>,
    pub archive_cap: Vec<String>,
    pub delete_stale: Vec<String>,
    pub delete_cap: Vec<String>,
    /// Session ids of replaced transcripts to delete.
    pub reset_transcripts: Vec<String>,
}

impl CleanupPlan {
    /// Unarchived sessions after.
    pub fn after(&self) -> u64 {
        let gone = self.archive_age.len() + self.archive_cap.len() + self.delete_stale.len() + self.delete_cap.len();
        self.before.saturating_sub(gone as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.after() == self.before && self.reset_transcripts.is_empty()
    }
}

/// SQL for a fresh session id: a random (v4) UUID, made by SQLite so no caller has to.
const NEW_SESSION_ID: &str = "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' \
    || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) \
    || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))";

/// Rows of session `?1`'s current transcript (`t` is `transcript`).
const CURRENT: &str = "t.session_key = ?1 AND t.session_id = (SELECT session_id FROM sessions WHERE key = ?1)";

/// `session_archive` rows as [`ArchivedSession`]s (`a`), with the time of each one's first entry
/// and the archived transcript before it.
const ARCHIVED: &str = "SELECT a.session_id, a.session_key, a.messages, a.input_tokens, a.output_tokens,
                               a.archived_at_ms, a.reason,
                               (SELECT MIN(t.at_ms) FROM transcript t
                                 WHERE t.session_key = a.session_key AND t.session_id = a.session_id),
                               (SELECT b.session_id FROM session_archive b
                                 WHERE b.session_key = a.session_key
                                   AND (b.archived_at_ms, b.rowid) < (a.archived_at_ms, a.rowid)
                                 ORDER BY b.archived_at_ms DESC, b.rowid DESC LIMIT 1)
                        FROM session_archive a";
const ARCHIVED_ORDER: &str = "ORDER BY a.archived_at_ms DESC, a.rowid DESC";

fn archived_from(r: &Row) -> rusqlite::Result<ArchivedSession> {
    Ok(ArchivedSession {
        session_id: r.get(0)?,
        session_key: r.get(1)?,
        messages: r.get(2)?,
        input_tokens: r.get(3)?,
        output_tokens: r.get(4)?,
        archived_at_ms: r.get(5)?,
        reason: r.get(6)?,
        started_at_ms: r.get(7)?,
        previous_session_id: r.get(8)?,
    })
}

fn transcript_row(r: &Row) -> rusqlite::Result<TranscriptRow> {
    Ok(TranscriptRow { seq: r.get(0)?, role: r.get(1)?, content: r.get(2)?, at_ms: r.get(3)?, meta_json: r.get(4)? })
}

/// A tool call whose result is not committed yet (it is running, or a crash interrupted it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenToolCall {
    pub session_key: String,
    pub call_id: String,
    pub name: String,
    pub run_id: Option<String>,
    pub at_ms: i64,
}

/// One transcript entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptRow {
    pub seq: i64,
    /// `system`, `user`, `assistant`, `event` or `toolResult`.
    pub role: String,
    pub content: String,
    pub at_ms: i64,
    pub meta_json: Option<String>,
}

/// A system event waiting for the next heartbeat of a main session.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub id: i64,
    pub session_key: String,
    pub text: String,
    pub source: Option<String>,
    pub created_at_ms: i64,
}

/// Tokens summed over recorded model replies, under a label (a model, or a day).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelUsage {
    pub label: String,
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    /// How many replies.
    pub replies: i64,
}

fn usage_from(r: &Row) -> rusqlite::Result<ModelUsage> {
    Ok(ModelUsage {
        label: r.get(0)?,
        input: r.get(1)?,
        output: r.get(2)?,
        cache_read: r.get(3)?,
        cache_write: r.get(4)?,
        replies: r.get(5)?,
    })
}

/// Filters of [`Rd::find_sessions`]; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// `main`, `isolated` or `named`.
    pub kind: Option<String>,
    pub agent_id: Option<String>,
    /// Leaves out per-run isolated sessions (`excludeCron`).
    pub exclude_isolated: bool,
    /// Only sessions updated at or after this time (`activeMinutes`).
    pub updated_since_ms: Option<i64>,
    /// `Some(true)`: only archived sessions; `Some(false)`: only the others.
    pub archived: Option<bool>,
}

const COLS: &str = "s.key, s.session_id, s.agent_id, s.kind, s.job_id, s.run_id, s.created_at_ms, s.updated_at_ms, s.finished_at_ms, \
                    s.last_route_json, s.model, s.input_tokens, s.output_tokens, \
                    (SELECT COUNT(*) FROM transcript t WHERE t.session_key = s.key AND t.session_id = s.session_id), \
                    s.label, s.model_override, s.archived_at_ms, s.archive_reason, \
                    (SELECT a.session_id FROM session_archive a WHERE a.session_key = s.key \
                     ORDER BY a.archived_at_ms DESC, a.rowid DESC LIMIT 1)";

fn session_from(r: &Row) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        key: r.get(0)?,
        session_id: r.get(1)?,
        agent_id: r.get(2)?,
        kind: r.get(3)?,
        job_id: r.get(4)?,
        run_id: r.get(5)?,
        created_at_ms: r.get(6)?,
        updated_at_ms: r.get(7)?,
        finished_at_ms: r.get(8)?,
        last_route_json: r.get(9)?,
        model: r.get(10)?,
        input_tokens: r.get(11)?,
        output_tokens: r.get(12)?,
        messages: r.get(13)?,
        label: r.get(14)?,
        model_override: r.get(15)?,
        archived_at_ms: r.get(16)?,
        archive_reason: r.get(17)?,
        previous_session_id: r.get(18)?,
    })
}

impl Tx<'_> {
    /// Creates the session if it does not exist; returns true when it was created.
    pub fn ensure_session(
        &self,
        key: &str,
        agent_id: &str,
        kind: &str,
        job_id: Option<&str>,
        run_id: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let n = self.conn().prepare_cached(&format!(
            "INSERT OR IGNORE INTO sessions (key, session_id, agent_id, kind, job_id, run_id, created_at_ms, updated_at_ms)
             VALUES (?1, {NEW_SESSION_ID}, ?2, ?3, ?4, ?5, ?6, ?6)"
        ))?
        .execute(params![key, agent_id, kind, job_id, run_id, now_ms])?;
        Ok(n > 0)
    }

    /// Appends to a session's transcript; returns the entry's sequence number.
    pub fn append_transcript(
        &self,
        key: &str,
        role: &str,
        content: &str,
        at_ms: i64,
        meta_json: Option<&str>,
    ) -> Result<i64> {
        // Every statement here from the statement cache: a tool step appends twice, and parsing
        // these again each time showed in the tool loop's profile.
        let seq: i64 = self
            .conn()
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM transcript WHERE session_key = ?1")?
            .query_row([key], |r| r.get(0))?;
        self.conn()
            .prepare_cached(
                "INSERT INTO transcript (session_key, session_id, seq, role, content, at_ms, meta_json)
             VALUES (?1, (SELECT session_id FROM sessions WHERE key = ?1), ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![key, seq, role, content, at_ms, meta_json])?;
        self.conn()
            .prepare_cached("UPDATE sessions SET updated_at_ms = ?2 WHERE key = ?1")?
            .execute(params![key, at_ms])?;
        Ok(seq)
    }

    /// [`Rd::final_reply_of_run`], inside the write.
    pub fn final_reply_of_run(&self, key: &str, run_id: &str) -> Result<Option<TranscriptRow>> {
        self.reader().final_reply_of_run(key, run_id)
    }

    /// Starts a session over as OpenClaw does: the key points at a fresh session id, the old
    /// transcript stays under the old id (listed in `session_archive` with its counts), and the
    /// open tool calls and token counts are forgotten (`/new`, `/reset`, `sessions.reset`; `reason`
    /// says which). Returns the archived id, or `None` when there is no such session.
    pub fn reset_session(&self, key: &str, reason: &str, now_ms: i64) -> Result<Option<String>> {
        let archived = self
            .conn()
            .query_row(
                "INSERT INTO session_archive
                   (session_id, session_key, messages, input_tokens, output_tokens, archived_at_ms, reason)
                 SELECT s.session_id, s.key,
                        (SELECT COUNT(*) FROM transcript t WHERE t.session_key = s.key AND t.session_id = s.session_id),
                        s.input_tokens, s.output_tokens, ?2, ?3
                 FROM sessions s WHERE s.key = ?1
                 RETURNING session_id",
                params![key, now_ms, reason],
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        if archived.is_none() {
            return Ok(None);
        }
        self.conn().execute("DELETE FROM open_tool_calls WHERE session_key = ?1", [key])?;
        self.conn().execute(
            &format!(
                "UPDATE sessions SET session_id = {NEW_SESSION_ID}, input_tokens = 0, output_tokens = 0,
                   updated_at_ms = ?2 WHERE key = ?1"
            ),
            params![key, now_ms],
        )?;
        Ok(archived)
    }

    /// Keeps only the newest `keep` transcript entries of `key` (`sessions.compact` with
    /// `maxLines`); returns how many entries remain.
    pub fn trim_transcript(&self, key: &str, keep: u32) -> Result<u64> {
        // Only the current transcript: an archived one is kept whole.
        self.conn().execute(
            &format!(
                "DELETE FROM transcript AS t WHERE {CURRENT}
                   AND seq <= (SELECT MAX(seq) FROM transcript t WHERE {CURRENT}) - ?2"
            ),
            params![key, keep],
        )?;
        // A tool result whose call was cut away would dangle at the start of the history.
        self.conn().execute(
            &format!(
                "DELETE FROM transcript AS t WHERE {CURRENT} AND role = 'toolResult'
                   AND seq < COALESCE((SELECT MIN(seq) FROM transcript t WHERE {CURRENT} AND role <> 'toolResult'), 1 << 62)"
            ),
            [key],
        )?;
        let left: i64 =
            self.conn()
                .query_row(&format!("SELECT COUNT(*) FROM transcript t WHERE {CURRENT}"), [key], |r| r.get(0))?;
        Ok(left as u64)
    }

    /// Adds a turn's token usage and records the model that answered.
    pub fn add_session_usage(&self, key: &str, model: Option<&str>, input: i64, output: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE sessions SET input_tokens = input_tokens + ?2, output_tokens = output_tokens + ?3,
               model = COALESCE(?4, model) WHERE key = ?1",
            params![key, input, output, model],
        )?;
        Ok(())
    }

    pub fn finish_session(&self, key: &str, at_ms: i64) -> Result<()> {
        self.conn().execute("UPDATE sessions SET finished_at_ms = ?2 WHERE key = ?1", params![key, at_ms])?;
        Ok(())
    }

    /// Remembers where a session's conversation happens, for `channel: "last"`.
    pub fn set_session_last_route(&self, key: &str, agent_id: &str, route_json: &str, now_ms: i64) -> Result<()> {
        self.ensure_session(key, agent_id, if key.ends_with(":main") { "main" } else { "named" }, None, None, now_ms)?;
        self.conn().execute("UPDATE sessions SET last_route_json = ?2 WHERE key = ?1", params![key, route_json])?;
        Ok(())
    }

    /// Deletes finished isolated-run sessions (and their transcripts) finished before `cutoff_ms`.
    pub fn prune_isolated_sessions(&self, cutoff_ms: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM sessions WHERE kind = 'isolated' AND finished_at_ms IS NOT NULL AND finished_at_ms < ?1",
            [cutoff_ms],
        )?)
    }

    /// Applies `sessions.patch`'s changes; false when there is no such session. Archiving an
    /// archived session keeps its first time and reason.
    pub fn patch_session(&self, key: &str, patch: &SessionPatch) -> Result<bool> {
        let (archive, archived_at, reason) = match &patch.archived {
            None => (false, None, None),
            Some(None) => (true, None, None),
            Some(Some((at, reason))) => (true, Some(*at), Some(reason.as_str())),
        };
        let n = self.conn().execute(
            "UPDATE sessions SET
               label = CASE WHEN ?2 THEN ?3 ELSE label END,
               model_override = CASE WHEN ?4 THEN ?5 ELSE model_override END,
               archived_at_ms = CASE WHEN ?6 THEN (CASE WHEN ?7 IS NULL THEN NULL ELSE COALESCE(archived_at_ms, ?7) END)
                                ELSE archived_at_ms END,
               archive_reason = CASE WHEN ?6 THEN (CASE WHEN ?7 IS NULL THEN NULL ELSE COALESCE(archive_reason, ?8) END)
                                ELSE archive_reason END
             WHERE key = ?1",
            params![
                key,
                patch.label.is_some(),
                patch.label.clone().flatten(),
                patch.model_override.is_some(),
                patch.model_override.clone().flatten(),
                archive,
                archived_at,
                reason,
            ],
        )?;
        Ok(n > 0)
    }

    /// Carries out a [`CleanupPlan`] made in this transaction: archives, deletes, and drops the
    /// replaced transcripts it lists.
    pub fn apply_cleanup(&self, plan: &CleanupPlan, now_ms: i64) -> Result<()> {
        for (keys, reason) in [(&plan.archive_age, "age-retention"), (&plan.archive_cap, "cap")] {
            for key in keys {
                let archive = Some(Some((now_ms, reason.to_string())));
                self.patch_session(key, &SessionPatch { archived: archive, ..SessionPatch::default() })?;
            }
        }
        for key in plan.delete_stale.iter().chain(&plan.delete_cap) {
            self.delete_session(key)?;
        }
        for id in &plan.reset_transcripts {
            self.conn().execute("DELETE FROM transcript WHERE session_id = ?1", [id])?;
            self.conn().execute("DELETE FROM session_archive WHERE session_id = ?1", [id])?;
        }
        Ok(())
    }

    /// Deletes a session with its transcripts (archived ones too) and queued events; false when
    /// there was none.
    pub fn delete_session(&self, key: &str) -> Result<bool> {
        self.conn().execute("DELETE FROM transcript WHERE session_key = ?1", [key])?;
        self.conn().execute("DELETE FROM session_archive WHERE session_key = ?1", [key])?;
        self.conn().execute("DELETE FROM pending_events WHERE session_key = ?1", [key])?;
        Ok(self.conn().execute("DELETE FROM sessions WHERE key = ?1", [key])? > 0)
    }

    /// Records tool calls as open: call it in the transaction that appends the assistant message
    /// making them.
    pub fn open_tool_calls(
        &self,
        session_key: &str,
        run_id: Option<&str>,
        calls: &[(&str, &str)],
        at_ms: i64,
    ) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT OR REPLACE INTO open_tool_calls (session_key, call_id, name, run_id, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (id, name) in calls {
            stmt.execute(params![session_key, id, name, run_id, at_ms])?;
        }
        Ok(())
    }

    /// Closes a tool call: call it in the transaction that appends its result.
    pub fn close_tool_call(&self, session_key: &str, call_id: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM open_tool_calls WHERE session_key = ?1 AND call_id = ?2",
            params![session_key, call_id],
        )?;
        Ok(())
    }

    /// Removes and returns the open tool calls of one session, or of every session (`None`), oldest
    /// first: nothing is running them any more, and the caller records how they ended.
    pub fn take_open_tool_calls(&self, session_key: Option<&str>) -> Result<Vec<OpenToolCall>> {
        let calls = {
            let mut stmt = self.conn().prepare_cached(
                "SELECT session_key, call_id, name, run_id, at_ms FROM open_tool_calls
                 WHERE ?1 IS NULL OR session_key = ?1 ORDER BY session_key, at_ms, rowid",
            )?;
            stmt.query_map([session_key], |r| {
                Ok(OpenToolCall {
                    session_key: r.get(0)?,
                    call_id: r.get(1)?,
                    name: r.get(2)?,
                    run_id: r.get(3)?,
                    at_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        self.conn().execute("DELETE FROM open_tool_calls WHERE ?1 IS NULL OR session_key = ?1", [session_key])?;
        Ok(calls)
    }

    /// Queues a system event for the next heartbeat of `session_key`.
    pub fn queue_event(&self, session_key: &str, text: &str, source: Option<&str>, now_ms: i64) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO pending_events (session_key, text, source, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![session_key, text, source, now_ms],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Removes and returns the queued events of a session, oldest first.
    pub fn take_events(&self, session_key: &str) -> Result<Vec<PendingEvent>> {
        let events = {
            let mut stmt = self.conn().prepare_cached(
                "SELECT id, session_key, text, source, created_at_ms FROM pending_events WHERE session_key = ?1 ORDER BY id",
            )?;
            stmt.query_map([session_key], |r| {
                Ok(PendingEvent {
                    id: r.get(0)?,
                    session_key: r.get(1)?,
                    text: r.get(2)?,
                    source: r.get(3)?,
                    created_at_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        self.conn().execute("DELETE FROM pending_events WHERE session_key = ?1", [session_key])?;
        Ok(events)
    }
}

impl Rd<'_> {
    /// The final reply `run_id` recorded in session `key` (an assistant entry without tool calls
    /// and not marked aborted): whether that run finished. An abort reads it inside its write
    /// ([`Tx::final_reply_of_run`]) to tell it came too late.
    pub fn final_reply_of_run(&self, key: &str, run_id: &str) -> Result<Option<TranscriptRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT seq, role, content, at_ms, meta_json FROM transcript t
                     WHERE {CURRENT} AND role = 'assistant' AND json_extract(meta_json, '$.runId') = ?2
                       AND json_extract(meta_json, '$.toolCalls') IS NULL AND json_extract(meta_json, '$.aborted') IS NULL
                     ORDER BY seq DESC LIMIT 1"
                ),
                params![key, run_id],
                transcript_row,
            )
            .optional()?)
    }
    pub fn get_session(&self, key: &str) -> Result<Option<SessionRow>> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {COLS} FROM sessions s WHERE s.key = ?1"))?
            .query_row([key], session_from)
            .optional()?)
    }

    /// Plans a cleanup under `policy`: stale sessions first, then the oldest beyond the cap.
    pub fn cleanup_plan(&self, policy: &CleanupPolicy) -> Result<CleanupPlan> {
        let agent = policy.agent_id.as_deref();
        let mut stmt = self.conn().prepare_cached(
            "SELECT key, kind, updated_at_ms, finished_at_ms FROM sessions
             WHERE archived_at_ms IS NULL AND (?1 IS NULL OR agent_id = ?1)
             ORDER BY updated_at_ms, key",
        )?;
        let rows = stmt
            .query_map([agent], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut plan = CleanupPlan { before: rows.len() as u64, ..CleanupPlan::default() };
        // An isolated run still going is not removed; a named session is archived, not deleted.
        let eligible: Vec<_> = rows
            .iter()
            .filter(|(key, kind, _, finished)| {
                kind != "main" && !policy.protect.contains(key) && (kind != "isolated" || finished.is_some())
            })
            .collect();
        let mut taken = std::collections::HashSet::new();
        if let Some(after) = policy.prune_after_ms {
            let cutoff = policy.now_ms.saturating_sub(after);
            for (key, kind, _, _) in eligible.iter().filter(|(_, _, updated, _)| *updated < cutoff) {
                taken.insert(key.clone());
                if kind == "isolated" { &mut plan.delete_stale } else { &mut plan.archive_age }.push(key.clone());
            }
        }
        if let Some(max) = policy.max_entries {
            for (key, kind, _, _) in eligible.iter().filter(|(key, ..)| !taken.contains(key)) {
                if plan.after() <= max {
                    break;
                }
                if kind == "isolated" { &mut plan.delete_cap } else { &mut plan.archive_cap }.push(key.clone());
            }
        }
        if let Some(after) = policy.reset_archive_after_ms {
            let cutoff = policy.now_ms.saturating_sub(after);
            let mut stmt = self.conn().prepare_cached(
                "SELECT a.session_id FROM session_archive a JOIN sessions s ON s.key = a.session_key
                 WHERE a.archived_at_ms < ?1 AND (?2 IS NULL OR s.agent_id = ?2) ORDER BY a.archived_at_ms",
            )?;
            plan.reset_transcripts =
                stmt.query_map(params![cutoff, agent], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        }
        Ok(plan)
    }

    /// Sessions, most recently updated first, with the total.
    pub fn list_sessions(&self, kind: Option<&str>, limit: u32, offset: u32) -> Result<(Vec<SessionRow>, u64)> {
        let total: i64 =
            self.conn()
                .query_row("SELECT COUNT(*) FROM sessions WHERE ?1 IS NULL OR kind = ?1", [kind], |r| r.get(0))?;
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLS} FROM sessions s WHERE ?1 IS NULL OR s.kind = ?1 ORDER BY s.updated_at_ms DESC, s.key LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = stmt.query_map(params![kind, limit, offset], session_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }

    /// Sessions matching `filter`, most recently updated first, with the total.
    pub fn find_sessions(&self, filter: &SessionFilter, limit: u32, offset: u32) -> Result<(Vec<SessionRow>, u64)> {
        const WHERE: &str = "(?1 IS NULL OR s.kind = ?1) AND (?2 IS NULL OR s.agent_id = ?2) \
                             AND (?3 = 0 OR s.kind <> 'isolated') AND (?4 IS NULL OR s.updated_at_ms >= ?4) \
                             AND (?7 IS NULL OR (s.archived_at_ms IS NOT NULL) = ?7)";
        let (kind, agent, exclude) = (filter.kind.as_deref(), filter.agent_id.as_deref(), filter.exclude_isolated);
        let (since, archived) = (filter.updated_since_ms, filter.archived);
        let total: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM sessions s WHERE {}", WHERE.replace("?7", "?5")),
            params![kind, agent, exclude, since, archived],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLS} FROM sessions s WHERE {WHERE} ORDER BY s.updated_at_ms DESC, s.key LIMIT ?5 OFFSET ?6"
        ))?;
        let rows = stmt
            .query_map(params![kind, agent, exclude, since, limit, offset, archived], session_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }

    /// The last `limit` transcript entries of a session (optionally before `before_seq`), oldest first.
    pub fn transcript(&self, key: &str, limit: u32, before_seq: Option<i64>) -> Result<Vec<TranscriptRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT seq, role, content, at_ms, meta_json FROM transcript t
             WHERE {CURRENT} AND (?2 IS NULL OR seq < ?2) ORDER BY seq DESC LIMIT ?3"
        ))?;
        let mut rows =
            stmt.query_map(params![key, before_seq, limit], transcript_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// The text of a session's first (`newest: false`) or newest entry with one of `roles`.
    pub fn transcript_text(&self, key: &str, roles: &[&str], newest: bool) -> Result<Option<String>> {
        let placeholders = vec!["?"; roles.len()].join(", ");
        let order = if newest { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT content FROM transcript t
             WHERE t.session_key = ?1 AND t.session_id = (SELECT session_id FROM sessions WHERE key = ?1)
               AND role IN ({placeholders}) ORDER BY seq {order} LIMIT 1"
        );
        let mut values: Vec<&str> = vec![key];
        values.extend_from_slice(roles);
        Ok(self.conn().prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(values), |r| r.get(0)).optional()?)
    }

    /// A session's entries after `after_seq`, oldest first, at most `limit`.
    pub fn transcript_after(&self, key: &str, after_seq: i64, limit: u32) -> Result<Vec<TranscriptRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT seq, role, content, at_ms, meta_json FROM transcript t
             WHERE {CURRENT} AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let rows =
            stmt.query_map(params![key, after_seq, limit], transcript_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The transcripts `key` pointed at before, newest first.
    pub fn archived_sessions(&self, key: &str) -> Result<Vec<ArchivedSession>> {
        let mut stmt = self.conn().prepare_cached(&format!("{ARCHIVED} WHERE a.session_key = ?1 {ARCHIVED_ORDER}"))?;
        let rows = stmt.query_map([key], archived_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// One transcript `key` pointed at before; `None` when `session_id` is not one of them.
    pub fn archived_session(&self, key: &str, session_id: &str) -> Result<Option<ArchivedSession>> {
        Ok(self
            .conn()
            .prepare_cached(&format!("{ARCHIVED} WHERE a.session_key = ?1 AND a.session_id = ?2"))?
            .query_row(params![key, session_id], archived_from)
            .optional()?)
    }

    /// The newest `limit` entries of transcript `session_id` of `key` (current or archived)
    /// before `before_seq`, oldest first.
    pub fn transcript_of(
        &self,
        key: &str,
        session_id: &str,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<Vec<TranscriptRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, role, content, at_ms, meta_json FROM transcript
             WHERE session_key = ?1 AND session_id = ?2 AND (?3 IS NULL OR seq < ?3) ORDER BY seq DESC LIMIT ?4",
        )?;
        let mut rows = stmt
            .query_map(params![key, session_id, before_seq, limit], transcript_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// The entries of transcript `session_id` of `key` after `after_seq`, oldest first, at most `limit`.
    pub fn transcript_after_of(
        &self,
        key: &str,
        session_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<TranscriptRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, role, content, at_ms, meta_json FROM transcript
             WHERE session_key = ?1 AND session_id = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![key, session_id, after_seq, limit], transcript_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The last seq of transcript `session_id` of `key` (0 when it has no entries).
    pub fn transcript_last_seq_of(&self, key: &str, session_id: &str) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE session_key = ?1 AND session_id = ?2",
            params![key, session_id],
            |r| r.get(0),
        )?)
    }

    /// Every entry of one transcript by its session id, current or archived, oldest first, with
    /// the key it belongs to; `None` for an unknown id.
    pub fn transcript_by_id(&self, session_id: &str) -> Result<Option<(String, Vec<TranscriptRow>)>> {
        let key: Option<String> = self
            .conn()
            .query_row(
                "SELECT key FROM sessions WHERE session_id = ?1
                 UNION ALL SELECT session_key FROM session_archive WHERE session_id = ?1 LIMIT 1",
                [session_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(key) = key else { return Ok(None) };
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, role, content, at_ms, meta_json FROM transcript
             WHERE session_key = ?1 AND session_id = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![key, session_id], transcript_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some((key, rows)))
    }

    /// The session whose current transcript is `session_id`.
    pub fn session_by_id(&self, session_id: &str) -> Result<Option<SessionRow>> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {COLS} FROM sessions s WHERE s.session_id = ?1"), [session_id], session_from)
            .optional()?)
    }

    /// Every transcript entry recorded by run `run_id`, oldest first, with its session key.
    /// Scans the transcript (run ids are inside `meta_json`); `agent.wait` reads it once per call.
    pub fn run_entries(&self, run_id: &str) -> Result<Vec<(String, TranscriptRow)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT session_key, seq, role, content, at_ms, meta_json FROM transcript
             WHERE json_extract(meta_json, '$.runId') = ?1 ORDER BY at_ms, seq",
        )?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((
                    r.get(0)?,
                    TranscriptRow {
                        seq: r.get(1)?,
                        role: r.get(2)?,
                        content: r.get(3)?,
                        at_ms: r.get(4)?,
                        meta_json: r.get(5)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Tokens of the recorded model replies, by model (`provider/model`).
    pub fn usage_by_model(&self) -> Result<Vec<ModelUsage>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT json_extract(meta_json, '$.model'),
                    SUM(COALESCE(json_extract(meta_json, '$.usage.input_tokens'), 0)),
                    SUM(COALESCE(json_extract(meta_json, '$.usage.output_tokens'), 0)),
                    SUM(COALESCE(json_extract(meta_json, '$.usage.cache_read_tokens'), 0)),
                    SUM(COALESCE(json_extract(meta_json, '$.usage.cache_write_tokens'), 0)),
                    COUNT(*)
             FROM transcript
             WHERE role = 'assistant' AND json_extract(meta_json, '$.usage') IS NOT NULL
               AND json_extract(meta_json, '$.model') IS NOT NULL
             GROUP BY 1 ORDER BY 1",
        )?;
        let rows = stmt.query_map([], usage_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Tokens of the recorded model replies by UTC day (`YYYY-MM-DD`, in `label`) between
    /// `start_ms` and `end_ms` inclusive, of one agent's sessions or of all.
    pub fn usage_by_day(&self, start_ms: i64, end_ms: i64, agent_id: Option<&str>) -> Result<Vec<ModelUsage>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT date(t.at_ms / 1000, 'unixepoch'),
                    SUM(COALESCE(json_extract(t.meta_json, '$.usage.input_tokens'), 0)),
                    SUM(COALESCE(json_extract(t.meta_json, '$.usage.output_tokens'), 0)),
                    SUM(COALESCE(json_extract(t.meta_json, '$.usage.cache_read_tokens'), 0)),
                    SUM(COALESCE(json_extract(t.meta_json, '$.usage.cache_write_tokens'), 0)),
                    COUNT(*)
             FROM transcript t JOIN sessions s ON s.key = t.session_key
             WHERE t.role = 'assistant' AND json_extract(t.meta_json, '$.usage') IS NOT NULL
               AND t.at_ms BETWEEN ?1 AND ?2 AND (?3 IS NULL OR s.agent_id = ?3)
             GROUP BY 1 ORDER BY 1",
        )?;
        let rows =
            stmt.query_map(params![start_ms, end_ms, agent_id], usage_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Whether run `run_id` already recorded its user message in session `key`'s current
    /// transcript (a turn re-run after a crash must not record it twice).
    pub fn run_has_user_message(&self, key: &str, run_id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT 1 FROM transcript t WHERE {CURRENT} AND role = 'user' AND json_extract(meta_json, '$.runId') = ?2"
            ))?
            .query_row(params![key, run_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The seq of a session key's newest entry (0 when it has none). Seqs keep counting across
    /// the key's session ids, so this is also where the current transcript's next entry follows.
    pub fn transcript_last_seq(&self, key: &str) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE session_key = ?1",
            [key],
            |r| r.get(0),
        )?)
    }

    pub fn session_last_route(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT last_route_json FROM sessions WHERE key = ?1", [key], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Queued events of a session, oldest first (without removing them).
    pub fn pending_events(&self, session_key: &str) -> Result<Vec<PendingEvent>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, session_key, text, source, created_at_ms FROM pending_events WHERE session_key = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([session_key], |r| {
                Ok(PendingEvent {
                    id: r.get(0)?,
                    session_key: r.get(1)?,
                    text: r.get(2)?,
                    source: r.get(3)?,
                    created_at_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Sessions with queued events.
    pub fn sessions_with_events(&self) -> Result<Vec<String>> {
        let mut stmt =
            self.conn().prepare_cached("SELECT DISTINCT session_key FROM pending_events ORDER BY session_key")?;
        let rows = stmt.query_map((), |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::{CleanupPolicy, SessionFilter, SessionPatch, SessionRow};
    use crate::Store;

    #[test]
    fn transcript_usage_routes_events_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                assert!(tx.ensure_session(
                    "agent:main:cron:j:run:r1",
                    "main",
                    "isolated",
                    Some("j"),
                    Some("r1"),
                    10
                )?);
                assert!(!tx.ensure_session(
                    "agent:main:cron:j:run:r1",
                    "main",
                    "isolated",
                    Some("j"),
                    Some("r1"),
                    11
                )?);
                tx.append_transcript("agent:main:cron:j:run:r1", "user", "hi", 12, None)?;
                tx.append_transcript("agent:main:cron:j:run:r1", "assistant", "hello", 13, Some("{\"model\":\"m\"}"))?;
                tx.add_session_usage("agent:main:cron:j:run:r1", Some("local/m"), 7, 3)?;
                tx.finish_session("agent:main:cron:j:run:r1", 14)?;
                tx.set_session_last_route("agent:main:main", "main", "{\"channel\":\"discord\"}", 15)?;
                tx.queue_event("agent:main:main", "ping", Some("cron:j"), 16)?;
                Ok(())
            })
            .unwrap();
        let (s, t, route, events) = store
            .read_blocking(|rd| {
                Ok((
                    rd.get_session("agent:main:cron:j:run:r1")?.unwrap(),
                    rd.transcript("agent:main:cron:j:run:r1", 10, None)?,
                    rd.session_last_route("agent:main:main")?,
                    rd.pending_events("agent:main:main")?,
                ))
            })
            .unwrap();
        assert_eq!((s.input_tokens, s.output_tokens, s.messages, s.model.as_deref()), (7, 3, 2, Some("local/m")));
        assert_eq!(t.iter().map(|r| r.content.as_str()).collect::<Vec<_>>(), ["hi", "hello"]);
        assert_eq!(route.as_deref(), Some("{\"channel\":\"discord\"}"));
        assert_eq!(events.len(), 1);
        let taken = store.write_blocking(|tx| tx.take_events("agent:main:main")).unwrap();
        assert_eq!(taken[0].text, "ping");
        assert_eq!(
            store.write_blocking(|tx| tx.prune_isolated_sessions(14)).unwrap(),
            0,
            "finished at 14 is not before 14"
        );
        assert_eq!(store.write_blocking(|tx| tx.prune_isolated_sessions(15)).unwrap(), 1);
        assert!(
            store.read_blocking(|rd| rd.transcript("agent:main:cron:j:run:r1", 10, None)).unwrap().is_empty(),
            "transcript cascades"
        );
        assert!(
            store.read_blocking(|rd| rd.get_session("agent:main:main")).unwrap().is_some(),
            "main sessions are kept"
        );
    }

    /// `/new` and `sessions.reset` point the key at a new session id and keep the old transcript
    /// under the old one; readers of the key see only the new transcript.
    #[test]
    fn a_reset_starts_a_new_session_id_and_keeps_the_old_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let key = "agent:main:telegram:direct:1";
        store
            .write_blocking(move |tx| {
                tx.ensure_session(key, "main", "named", None, None, 1)?;
                tx.append_transcript(key, "user", "old question", 2, None)?;
                tx.append_transcript(key, "assistant", "old answer", 3, None)?;
                tx.add_session_usage(key, Some("local/m"), 5, 7)?;
                tx.open_tool_calls(key, Some("r"), &[("c1", "read")], 3)?;
                Ok(())
            })
            .unwrap();
        let before = store.read_blocking(move |rd| rd.get_session(key)).unwrap().unwrap();
        assert_eq!(before.session_id.len(), 36, "a UUID: {}", before.session_id);
        let old_id = before.session_id.clone();
        let archived = store.write_blocking(move |tx| tx.reset_session(key, "new", 10)).unwrap();
        assert_eq!(archived.as_deref(), Some(before.session_id.as_str()));
        assert_eq!(store.write_blocking(|tx| tx.reset_session("agent:main:none", "reset", 10)).unwrap(), None);
        store.write_blocking(move |tx| tx.append_transcript(key, "user", "new question", 11, None).map(drop)).unwrap();

        let (after, current, text, archive, old, by_new_id) = store
            .read_blocking(move |rd| {
                let after = rd.get_session(key)?.unwrap();
                let by_new_id = rd.session_by_id(&after.session_id)?.map(|s| s.key);
                Ok((
                    after,
                    rd.transcript(key, 10, None)?,
                    rd.transcript_text(key, &["user"], false)?,
                    rd.archived_sessions(key)?,
                    rd.transcript_by_id(&old_id)?,
                    by_new_id,
                ))
            })
            .unwrap();
        assert_ne!(after.session_id, before.session_id);
        assert_eq!((after.messages, after.input_tokens, after.output_tokens), (1, 0, 0));
        assert_eq!(current.iter().map(|r| (r.seq, r.content.as_str())).collect::<Vec<_>>(), [(3, "new question")]);
        assert_eq!(text.as_deref(), Some("new question"));
        assert_eq!(by_new_id.as_deref(), Some(key));
        assert_eq!(archive.len(), 1);
        assert_eq!(
            (archive[0].messages, archive[0].input_tokens, archive[0].output_tokens, archive[0].reason.as_str()),
            (2, 5, 7, "new")
        );
        assert_eq!((archive[0].started_at_ms, archive[0].previous_session_id.as_deref()), (Some(2), None));
        assert_eq!(after.previous_session_id.as_deref(), Some(before.session_id.as_str()));
        let (id, cur) = (before.session_id.clone(), after.session_id.clone());
        let (page, tail, lasts, one, foreign) = store
            .read_blocking(move |rd| {
                Ok((
                    rd.transcript_of(key, &id, 1, None)?,
                    rd.transcript_after_of(key, &id, 0, 10)?,
                    (rd.transcript_last_seq_of(key, &id)?, rd.transcript_last_seq_of(key, &cur)?),
                    rd.archived_session(key, &id)?,
                    rd.archived_session(key, &cur)?,
                ))
            })
            .unwrap();
        assert_eq!(page.iter().map(|r| r.content.as_str()).collect::<Vec<_>>(), ["old answer"]);
        assert_eq!(tail.len(), 2);
        assert_eq!(lasts, (2, 3));
        assert_eq!(one.as_ref(), Some(&archive[0]));
        assert_eq!(foreign, None, "the current transcript is not an archived one");
        let (old_key, old_rows) = old.unwrap();
        assert_eq!(old_key, key);
        assert_eq!(old_rows.iter().map(|r| r.content.as_str()).collect::<Vec<_>>(), ["old question", "old answer"]);
        assert!(store.write_blocking(|tx| tx.take_open_tool_calls(None)).unwrap().is_empty(), "open calls forgotten");
        // Trimming the current transcript leaves the archived one whole; deleting the key drops both.
        store.write_blocking(move |tx| tx.trim_transcript(key, 0)).unwrap();
        let old_id = before.session_id.clone();
        assert_eq!(store.read_blocking(move |rd| rd.transcript_by_id(&old_id)).unwrap().unwrap().1.len(), 2);
        assert!(store.write_blocking(move |tx| tx.delete_session(key)).unwrap());
        let old_id = before.session_id.clone();
        assert_eq!(store.read_blocking(move |rd| rd.transcript_by_id(&old_id)).unwrap(), None);
        assert!(store.read_blocking(move |rd| rd.archived_sessions(key)).unwrap().is_empty());
    }

    #[test]
    fn find_sessions_filters_by_kind_agent_and_isolation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.ensure_session("agent:main:main", "main", "main", None, None, 1)?;
                tx.ensure_session("agent:main:cron:j:run:r", "main", "isolated", Some("j"), Some("r"), 2)?;
                tx.ensure_session("agent:ops:session:notes", "ops", "named", None, None, 3)?;
                Ok(())
            })
            .unwrap();
        let keys = |filter: SessionFilter, limit: u32, offset: u32| {
            let (rows, total) = store.read_blocking(|rd| rd.find_sessions(&filter, limit, offset)).unwrap();
            (rows.into_iter().map(|r| r.key).collect::<Vec<_>>(), total)
        };
        assert_eq!(
            keys(SessionFilter::default(), 10, 0),
            (vec!["agent:ops:session:notes".into(), "agent:main:cron:j:run:r".into(), "agent:main:main".into()], 3)
        );
        assert_eq!(keys(SessionFilter::default(), 1, 1), (vec!["agent:main:cron:j:run:r".into()], 3));
        let main_only = SessionFilter { agent_id: Some("main".into()), exclude_isolated: true, ..Default::default() };
        assert_eq!(keys(main_only, 10, 0), (vec!["agent:main:main".into()], 1));
        let isolated = SessionFilter { kind: Some("isolated".into()), ..Default::default() };
        assert_eq!(keys(isolated, 10, 0), (vec!["agent:main:cron:j:run:r".into()], 1));
    }

    /// `sessions.patch` sets and clears fields one by one; archiving twice keeps the first time;
    /// the list's `archived` filter follows it.
    #[test]
    fn a_patch_sets_and_clears_fields_and_archives() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let key = "agent:main:work";
        store.write_blocking(move |tx| tx.ensure_session(key, "main", "named", None, None, 1).map(drop)).unwrap();
        let patch = |p: SessionPatch| store.write_blocking(move |tx| tx.patch_session(key, &p)).unwrap();
        let get = || store.read_blocking(move |rd| rd.get_session(key)).unwrap().unwrap();
        assert!(patch(SessionPatch {
            label: Some(Some("Taxes".into())),
            model_override: Some(Some("local/m".into())),
            ..SessionPatch::default()
        }));
        assert_eq!((get().label.as_deref(), get().model_override.as_deref()), (Some("Taxes"), Some("local/m")));
        patch(SessionPatch { model_override: Some(None), ..SessionPatch::default() });
        assert_eq!((get().label.as_deref(), get().model_override), (Some("Taxes"), None), "only the model cleared");
        patch(SessionPatch { archived: Some(Some((5, "manual".into()))), ..SessionPatch::default() });
        patch(SessionPatch { archived: Some(Some((9, "cap".into()))), ..SessionPatch::default() });
        assert_eq!((get().archived_at_ms, get().archive_reason.as_deref()), (Some(5), Some("manual")));
        let listed = |archived| {
            let filter = SessionFilter { archived, ..SessionFilter::default() };
            store.read_blocking(move |rd| rd.find_sessions(&filter, 10, 0)).unwrap().1
        };
        assert_eq!((listed(Some(true)), listed(Some(false)), listed(None)), (1, 0, 1));
        patch(SessionPatch { archived: Some(None), ..SessionPatch::default() });
        assert_eq!((get().archived_at_ms, listed(Some(false))), (None, 1));
        assert!(!store.write_blocking(|tx| tx.patch_session("agent:main:none", &SessionPatch::default())).unwrap());
    }

    /// Cleanup: idle named sessions are archived, finished idle runs deleted, the oldest beyond
    /// the cap go next, main and protected keys stay, and old replaced transcripts are dropped.
    #[test]
    fn cleanup_prunes_by_age_and_count_and_drops_old_replaced_transcripts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.ensure_session("agent:main:main", "main", "main", None, None, 1)?;
                tx.ensure_session("agent:main:old", "main", "named", None, None, 2)?;
                tx.ensure_session("agent:main:cron:j:run:r", "main", "isolated", Some("j"), Some("r"), 3)?;
                tx.finish_session("agent:main:cron:j:run:r", 3)?;
                tx.ensure_session("agent:main:kept", "main", "named", None, None, 4)?;
                tx.ensure_session("agent:main:a", "main", "named", None, None, 100)?;
                tx.ensure_session("agent:main:b", "main", "named", None, None, 101)?;
                tx.append_transcript("agent:main:b", "user", "before the reset", 101, None)?;
                tx.reset_session("agent:main:b", "reset", 102)?;
                tx.ensure_session("agent:work:x", "work", "named", None, None, 1)?;
                Ok(())
            })
            .unwrap();
        let policy = CleanupPolicy {
            now_ms: 200,
            prune_after_ms: Some(150),
            max_entries: Some(2),
            reset_archive_after_ms: Some(50),
            agent_id: Some("main".into()),
            protect: vec!["agent:main:kept".into()],
        };
        let plan = store.read_blocking({
            let policy = policy.clone();
            move |rd| rd.cleanup_plan(&policy)
        });
        let plan = plan.unwrap();
        assert_eq!(plan.before, 6);
        assert_eq!(plan.archive_age, ["agent:main:old"]);
        assert_eq!(plan.delete_stale, ["agent:main:cron:j:run:r"]);
        assert_eq!(plan.archive_cap, ["agent:main:a", "agent:main:b"], "main and the protected key stay");
        assert_eq!((plan.reset_transcripts.len(), plan.after()), (1, 2));
        store
            .write_blocking(move |tx| {
                let plan = tx.reader().cleanup_plan(&policy)?;
                tx.apply_cleanup(&plan, 200)
            })
            .unwrap();
        let (active, archived, old, work) = store
            .read_blocking(|rd| {
                let f =
                    |archived| SessionFilter { agent_id: Some("main".into()), archived, ..SessionFilter::default() };
                let keys = |(rows, _): (Vec<SessionRow>, u64)| rows.into_iter().map(|r| r.key).collect::<Vec<_>>();
                Ok((
                    keys(rd.find_sessions(&f(Some(false)), 10, 0)?),
                    keys(rd.find_sessions(&f(Some(true)), 10, 0)?),
                    rd.archived_sessions("agent:main:b")?,
                    rd.get_session("agent:work:x")?,
                ))
            })
            .unwrap();
        assert_eq!(active, ["agent:main:kept", "agent:main:main"]);
        assert_eq!(archived, ["agent:main:b", "agent:main:a", "agent:main:old"]);
        assert!(old.is_empty(), "the replaced transcript is gone: {old:?}");
        assert!(work.is_some_and(|w| w.archived_at_ms.is_none()), "another agent's sessions are not touched");
    }
}
