//! The activity ledger (migration 16): agent runs, tool actions and chat messages as OpenClaw's
//! `audit.activity.list` lists them. Rows are written by triggers on the tables that record the
//! facts (transcript, open tool calls, cron runs, inbound messages, the outbox), never by hand;
//! this module only reads them, newest first, by the indexes on run, session, agent and kind.

use rusqlite::{Row, ToSql};

use crate::{Rd, Result};

/// One ledger row, as stored (ids of senders, chats and targets are raw here).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    pub seq: i64,
    pub source_seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub action: String,
    pub status: String,
    pub error_code: Option<String>,
    pub actor_type: String,
    pub actor_id: String,
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub session_id: Option<String>,
    pub run_id: Option<String>,
    pub tool_call_id: Option<String>,
    pub tool_name: Option<String>,
    pub direction: Option<String>,
    pub channel: Option<String>,
    pub conversation_kind: Option<String>,
    pub outcome: Option<String>,
    pub failure_stage: Option<String>,
    pub delivery_kind: Option<String>,
    pub duration_ms: Option<i64>,
    pub account_id: Option<String>,
    pub conversation_id: Option<String>,
    pub target_id: Option<String>,
    pub message_id: Option<String>,
}

/// What to list: every filter is exact and optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityFilter {
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub run_id: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub direction: Option<String>,
    pub channel: Option<String>,
    /// Inclusive bounds on the time of the record.
    pub after_ms: Option<i64>,
    pub before_ms: Option<i64>,
    /// Records older than this are not listed (OpenClaw's 30-day retention).
    pub retained_after_ms: Option<i64>,
    /// Without a `kind`, whether chat messages are listed too (`audit.list` lists none).
    pub include_messages: bool,
}

const COLS: &str = "seq, source_seq, at_ms, kind, action, status, error_code, actor_type, actor_id, agent_id, \
    session_key, session_id, run_id, tool_call_id, tool_name, direction, channel, conversation_kind, outcome, \
    failure_stage, delivery_kind, duration_ms, account_id, conversation_id, target_id, message_id";

fn row_from(r: &Row<'_>) -> rusqlite::Result<ActivityRow> {
    Ok(ActivityRow {
        seq: r.get(0)?,
        source_seq: r.get(1)?,
        at_ms: r.get(2)?,
        kind: r.get(3)?,
        action: r.get(4)?,
        status: r.get(5)?,
        error_code: r.get(6)?,
        actor_type: r.get(7)?,
        actor_id: r.get(8)?,
        agent_id: r.get(9)?,
        session_key: r.get(10)?,
        session_id: r.get(11)?,
        run_id: r.get(12)?,
        tool_call_id: r.get(13)?,
        tool_name: r.get(14)?,
        direction: r.get(15)?,
        channel: r.get(16)?,
        conversation_kind: r.get(17)?,
        outcome: r.get(18)?,
        failure_stage: r.get(19)?,
        delivery_kind: r.get(20)?,
        duration_ms: r.get(21)?,
        account_id: r.get(22)?,
        conversation_id: r.get(23)?,
        target_id: r.get(24)?,
        message_id: r.get(25)?,
    })
}

impl Rd<'_> {
    /// One page of the ledger, newest first: at most `limit` rows below `before_seq` (a previous
    /// page's last `seq`), and whether more follow. Reads `limit + 1` rows along an index.
    pub fn activity_page(
        &self,
        filter: &ActivityFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<ActivityRow>, bool)> {
        let mut sql = format!("SELECT {COLS} FROM activity WHERE 1 = 1");
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let mut add = |clause: &str, value: Box<dyn ToSql>| {
            args.push(value);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(seq) = before_seq {
            add("seq <", Box::new(seq));
        }
        for (column, value) in [
            ("agent_id", &filter.agent_id),
            ("session_key", &filter.session_key),
            ("run_id", &filter.run_id),
            ("kind", &filter.kind),
            ("status", &filter.status),
            ("direction", &filter.direction),
            ("channel", &filter.channel),
        ] {
            if let Some(v) = value {
                add(&format!("{column} ="), Box::new(v.clone()));
            }
        }
        if let Some(ms) = filter.after_ms {
            add("at_ms >=", Box::new(ms));
        }
        if let Some(ms) = filter.before_ms {
            add("at_ms <=", Box::new(ms));
        }
        if let Some(ms) = filter.retained_after_ms {
            add("at_ms >=", Box::new(ms));
        }
        if filter.kind.is_none() && !filter.include_messages {
            sql.push_str(" AND kind IN ('agent_run', 'tool_action')");
        }
        args.push(Box::new(i64::from(limit) + 1));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let params: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let mut rows = stmt.query_map(params.as_slice(), row_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok((rows, more))
    }

    /// Whether Pincer knows run `run_id`: a ledger record of it, or a cron run of that id.
    pub fn run_known(&self, run_id: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM activity WHERE run_id = ?1)
                 OR EXISTS(SELECT 1 FROM cron_runs WHERE run_id = ?1)",
            [run_id],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn a_turn_with_a_tool_call_and_its_failure_leave_start_and_end_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        let key = "agent:main:main";
        store
            .write_blocking(move |tx| {
                tx.conn().execute(
                    "INSERT INTO sessions (key, agent_id, kind, created_at_ms, updated_at_ms, session_id)
                     VALUES (?1, 'main', 'main', 1, 1, 'sid-1')",
                    [key],
                )?;
                tx.append_transcript(key, "user", "hi", 10, Some(r#"{"runId":"r1"}"#))?;
                tx.append_transcript(key, "assistant", "", 11, Some(r#"{"runId":"r1","toolCalls":[{}]}"#))?;
                tx.open_tool_calls(key, Some("r1"), &[("c1", "read")], 11)?;
                tx.append_transcript(
                    key,
                    "toolResult",
                    "boom",
                    12,
                    Some(r#"{"runId":"r1","toolCallId":"c1","toolName":"read","isError":true,"errorClass":"io"}"#),
                )?;
                tx.close_tool_call(key, "c1")?;
                tx.append_transcript(key, "assistant", "done", 13, Some(r#"{"runId":"r1"}"#))?;
                // A replayed input of the same run starts nothing new.
                tx.append_transcript(key, "user", "hi", 14, Some(r#"{"runId":"r1"}"#))?;
                Ok(())
            })
            .unwrap();
        let (rows, more) = store.read_blocking(|rd| rd.activity_page(&Default::default(), None, 10)).unwrap();
        let got: Vec<(&str, &str, Option<&str>)> =
            rows.iter().map(|r| (r.action.as_str(), r.status.as_str(), r.error_code.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("agent.run.finished", "succeeded", None),
                ("tool.action.finished", "failed", Some("tool_failed")),
                ("tool.action.started", "started", None),
                ("agent.run.started", "started", None),
            ]
        );
        assert!(!more);
        assert_eq!(rows[1].tool_name.as_deref(), Some("read"));
        assert_eq!(rows[3].session_id.as_deref(), Some("sid-1"));
        let filter = crate::ActivityFilter { kind: Some("tool_action".into()), ..Default::default() };
        let (page, more) = store.read_blocking(move |rd| rd.activity_page(&filter, None, 1)).unwrap();
        assert_eq!((page.len(), more), (1, true));
        let filter = crate::ActivityFilter { kind: Some("tool_action".into()), ..Default::default() };
        let cursor = page[0].seq;
        let (next, more) = store.read_blocking(move |rd| rd.activity_page(&filter, Some(cursor), 1)).unwrap();
        assert_eq!((next[0].action.as_str(), more), ("tool.action.started", false));
        assert!(store.read_blocking(|rd| rd.run_known("r1")).unwrap());
        assert!(!store.read_blocking(|rd| rd.run_known("r2")).unwrap());
    }
}
