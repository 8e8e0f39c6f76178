//! `cron_jobs` and `cron_runs`: job definitions with their scheduler state, and one row per run.
//!
//! A run's id for a scheduled slot is `cron:<jobId>:<slotMs>` and is the primary key, so reserving
//! the same slot twice is impossible — across restarts and `kill -9` alike.

use pincer_protocol::state::{CompletionStatus, DeliveryStatus, ExecStatus, RunStatus, Trigger};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Rd, Result, Tx};

mod list;
pub use list::{EnabledFilter, JobBookmarks, JobFacts, JobKey, JobOrder, JobPage, JobPageQuery, KeyedPage, SortValue};

/// A stored job: the definition and the scheduler-owned state, both as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// The job definition without `state`.
    pub job_json: String,
    pub state_json: String,
    pub next_run_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub job_id: String,
    pub slot_ms: Option<i64>,
    pub trigger: Trigger,
    /// `running`, then `ok`, `error` or `skipped`.
    pub status: RunStatus,
    /// Process generation holding the lease while `running`.
    pub lease_owner: i64,
    pub lease_until_ms: Option<i64>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub delivery_status: Option<DeliveryStatus>,
    pub completion_status: Option<CompletionStatus>,
    /// The full run record as JSON (summary, error, model, usage, delivery details, …).
    pub record_json: String,
}

/// Filters for [`Rd::list_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub job_id: Option<String>,
    pub run_id: Option<String>,
    pub statuses: Vec<ExecStatus>,
    pub delivery_statuses: Vec<DeliveryStatus>,
    pub offset: u32,
    pub limit: u32,
    pub ascending: bool,
    /// Case-insensitive text to find in the run's summary or error.
    pub query: Option<String>,
}

const JOB_COLS: &str = "id, name, enabled, job_json, state_json, next_run_at_ms, created_at_ms, updated_at_ms";
const RUN_COLS: &str = "run_id, job_id, slot_ms, trigger, status, lease_owner, lease_until_ms, started_at_ms, \
                        finished_at_ms, delivery_status, completion_status, record_json";

fn job_from(r: &Row) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get(0)?,
        name: r.get(1)?,
        enabled: r.get::<_, i64>(2)? != 0,
        job_json: r.get(3)?,
        state_json: r.get(4)?,
        next_run_at_ms: r.get(5)?,
        created_at_ms: r.get(6)?,
        updated_at_ms: r.get(7)?,
    })
}

fn run_from(r: &Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        job_id: r.get(1)?,
        slot_ms: r.get(2)?,
        trigger: r.get(3)?,
        status: r.get(4)?,
        lease_owner: r.get(5)?,
        lease_until_ms: r.get(6)?,
        started_at_ms: r.get(7)?,
        finished_at_ms: r.get(8)?,
        delivery_status: r.get(9)?,
        completion_status: r.get(10)?,
        record_json: r.get(11)?,
    })
}

impl Tx<'_> {
    fn bump_cron_revision(&self) -> Result<()> {
        self.conn().execute(
            "INSERT INTO meta(key, value) VALUES ('cronRevision', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (),
        )?;
        Ok(())
    }

    /// Inserts a new job; fails if the id exists.
    pub fn insert_job(&self, job: &JobRow) -> Result<()> {
        self.conn().execute(
            &format!("INSERT INTO cron_jobs ({JOB_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                job.id,
                job.name,
                job.enabled as i64,
                job.job_json,
                job.state_json,
                job.next_run_at_ms,
                job.created_at_ms,
                job.updated_at_ms
            ],
        )?;
        self.bump_cron_revision()
    }

    /// Replaces a job's row; returns false if it does not exist.
    pub fn update_job(&self, job: &JobRow) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE cron_jobs SET name = ?2, enabled = ?3, job_json = ?4, state_json = ?5, next_run_at_ms = ?6,
             updated_at_ms = ?7 WHERE id = ?1",
            params![
                job.id,
                job.name,
                job.enabled as i64,
                job.job_json,
                job.state_json,
                job.next_run_at_ms,
                job.updated_at_ms
            ],
        )?;
        if n > 0 {
            self.bump_cron_revision()?;
        }
        Ok(n > 0)
    }

    /// Sets a job's next fire time (the column and `state.nextRunAtMs`) without rewriting the rest
    /// of the row; returns false if the job does not exist.
    pub fn set_job_next(&self, id: &str, next_run_at_ms: Option<i64>) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE cron_jobs SET next_run_at_ms = ?2,
               state_json = CASE WHEN ?2 IS NULL THEN json_remove(state_json, '$.nextRunAtMs')
                                 ELSE json_set(state_json, '$.nextRunAtMs', ?2) END
             WHERE id = ?1",
            params![id, next_run_at_ms],
        )?;
        if n > 0 {
            self.bump_cron_revision()?;
        }
        Ok(n > 0)
    }

    /// Deletes a job, its runs and its scratch; returns false if it did not exist.
    pub fn delete_job(&self, id: &str) -> Result<bool> {
        self.conn().execute("DELETE FROM cron_runs WHERE job_id = ?1", [id])?;
        self.conn().execute("DELETE FROM cron_job_scratch WHERE job_id = ?1", [id])?;
        let n = self.conn().execute("DELETE FROM cron_jobs WHERE id = ?1", [id])?;
        if n > 0 {
            self.bump_cron_revision()?;
        }
        Ok(n > 0)
    }

    /// Inserts a run reservation. Returns false, changing nothing, when a run with this id exists:
    /// the slot was already taken.
    pub fn reserve_run(&self, run: &RunRow) -> Result<bool> {
        let n = self.conn().execute(
            &format!("INSERT OR IGNORE INTO cron_runs ({RUN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
            params![
                run.run_id,
                run.job_id,
                run.slot_ms,
                run.trigger,
                run.status,
                run.lease_owner,
                run.lease_until_ms,
                run.started_at_ms,
                run.finished_at_ms,
                run.delivery_status,
                run.completion_status,
                run.record_json
            ],
        )?;
        Ok(n > 0)
    }

    /// Writes a run's outcome fields; returns false if the run does not exist.
    pub fn update_run(&self, run: &RunRow) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE cron_runs SET status = ?2, lease_until_ms = ?3, finished_at_ms = ?4, delivery_status = ?5,
             completion_status = ?6, record_json = ?7 WHERE run_id = ?1",
            params![
                run.run_id,
                run.status,
                run.lease_until_ms,
                run.finished_at_ms,
                run.delivery_status,
                run.completion_status,
                run.record_json
            ],
        )?;
        Ok(n > 0)
    }

    /// Sets one field of a running run's record to `value` (JSON text): how far its command got,
    /// so that recovery after a crash can say whether the command may have run. A run that is no
    /// longer `running` is left alone; returns whether a row changed.
    pub fn note_running_run(&self, run_id: &str, field: &str, value: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE cron_runs SET record_json = json_set(record_json, '$.' || ?2, json(?3))
             WHERE run_id = ?1 AND status = 'running'",
            params![run_id, field, value],
        )?;
        Ok(n > 0)
    }

    /// Deletes finished runs older than `cutoff_ms`, and beyond the newest `max_per_job` per job.
    pub fn prune_runs(&self, cutoff_ms: i64, max_per_job: u32) -> Result<usize> {
        let by_age = self
            .conn()
            .execute("DELETE FROM cron_runs WHERE status != 'running' AND started_at_ms < ?1", [cutoff_ms])?;
        let by_count = self.conn().execute(
            "DELETE FROM cron_runs WHERE status != 'running' AND run_id IN (
               SELECT run_id FROM (
                 SELECT run_id, ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY started_at_ms DESC) AS n FROM cron_runs
               ) WHERE n > ?1)",
            [max_per_job],
        )?;
        Ok(by_age + by_count)
    }
}

impl Tx<'_> {
    /// Writes (`Some`) or clears (`None`) a job's scratch, OpenClaw's compare-and-swap: with
    /// `expected` the write happens only at that revision. Each write, a clear included, takes the
    /// next revision; clearing what was never written changes nothing.
    pub fn set_job_scratch(
        &self,
        job_id: &str,
        content: Option<&str>,
        expected: Option<i64>,
        now_ms: i64,
    ) -> Result<ScratchWrite> {
        let exists: bool =
            self.conn().query_row("SELECT EXISTS(SELECT 1 FROM cron_jobs WHERE id = ?1)", [job_id], |r| r.get(0))?;
        if !exists {
            return Ok(ScratchWrite::NoJob);
        }
        let current: i64 = self
            .conn()
            .query_row("SELECT revision FROM cron_job_scratch WHERE job_id = ?1", [job_id], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if expected.is_some_and(|e| e != current) {
            return Ok(ScratchWrite::Conflict { current_revision: current });
        }
        if content.is_none() && current == 0 {
            return Ok(ScratchWrite::Written { current_revision: 0, scratch: None });
        }
        let revision = current + 1;
        self.conn().execute(
            "INSERT INTO cron_job_scratch (job_id, content, revision, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(job_id) DO UPDATE SET content = ?2, revision = ?3, updated_at_ms = ?4",
            params![job_id, content, revision, now_ms],
        )?;
        let scratch = content.map(|c| ScratchRow { content: c.to_string(), revision, updated_at_ms: now_ms });
        Ok(ScratchWrite::Written { current_revision: revision, scratch })
    }
}

/// A job's scratch content at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchRow {
    pub content: String,
    pub revision: i64,
    pub updated_at_ms: i64,
}

/// A job's scratch as read: the content (none when never written or cleared) and the revision
/// the next compare-and-swap must name (0 when never written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScratchState {
    pub scratch: Option<ScratchRow>,
    pub current_revision: i64,
}

/// What [`Tx::set_job_scratch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScratchWrite {
    /// There is no such job.
    NoJob,
    /// `expected` was not the current revision; nothing was written.
    Conflict {
        current_revision: i64,
    },
    Written {
        current_revision: i64,
        scratch: Option<ScratchRow>,
    },
}

impl Rd<'_> {
    /// A job's scratch, or `None` when there is no such job.
    pub fn job_scratch(&self, job_id: &str) -> Result<Option<ScratchState>> {
        let exists: bool =
            self.conn().query_row("SELECT EXISTS(SELECT 1 FROM cron_jobs WHERE id = ?1)", [job_id], |r| r.get(0))?;
        if !exists {
            return Ok(None);
        }
        let row = self
            .conn()
            .query_row(
                "SELECT content, revision, updated_at_ms FROM cron_job_scratch WHERE job_id = ?1",
                [job_id],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
            )
            .optional()?;
        Ok(Some(match row {
            None => ScratchState::default(),
            Some((content, revision, updated_at_ms)) => ScratchState {
                scratch: content.map(|content| ScratchRow { content, revision, updated_at_ms }),
                current_revision: revision,
            },
        }))
    }
}

impl Rd<'_> {
    pub fn get_job(&self, id: &str) -> Result<Option<JobRow>> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {JOB_COLS} FROM cron_jobs WHERE id = ?1"), [id], job_from)
            .optional()?)
    }

    /// Every job, oldest first.
    pub fn list_jobs(&self) -> Result<Vec<JobRow>> {
        let mut stmt =
            self.conn().prepare_cached(&format!("SELECT {JOB_COLS} FROM cron_jobs ORDER BY created_at_ms, id"))?;
        let rows = stmt.query_map((), job_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The given jobs, in no particular order (ids that do not exist are left out).
    /// The job declared under `key` (`cron.add` with a `declarationKey`), if any.
    pub fn job_id_by_declaration_key(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id FROM cron_jobs INDEXED BY cron_jobs_by_declaration_key
                 WHERE json_extract(job_json, '$.declarationKey') = ?1 LIMIT 1",
            )?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub fn get_jobs(&self, ids: &[&str]) -> Result<Vec<JobRow>> {
        let mut stmt = self.conn().prepare_cached(&format!("SELECT {JOB_COLS} FROM cron_jobs WHERE id = ?1"))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = stmt.query_row([id], job_from).optional()? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// A page of the enabled jobs that have a next fire time, as `(id, next_run_at_ms)` in fire
    /// order, after `after` (the last pair of the previous page). Read from an index alone, so the
    /// scheduler can start without parsing a single job.
    pub fn scheduled_jobs(&self, after: Option<(i64, &str)>, limit: u32) -> Result<Vec<(String, i64)>> {
        let (next, id) = after.unwrap_or((i64::MIN, ""));
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, next_run_at_ms FROM cron_jobs INDEXED BY cron_jobs_schedule
             WHERE enabled = 1 AND next_run_at_ms IS NOT NULL AND (next_run_at_ms, id) > (?1, ?2)
             ORDER BY next_run_at_ms, id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![next, id, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Ids of enabled jobs without a next fire time.
    pub fn unscheduled_jobs(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id FROM cron_jobs INDEXED BY cron_jobs_schedule WHERE enabled = 1 AND next_run_at_ms IS NULL",
        )?;
        let rows = stmt.query_map((), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// A page of jobs in id order after `after_id`.
    pub fn jobs_after(&self, after_id: &str, limit: u32) -> Result<Vec<JobRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {JOB_COLS} FROM cron_jobs WHERE id > ?1 ORDER BY id LIMIT ?2"))?;
        let rows = stmt.query_map(params![after_id, limit], job_from)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Changes with every job insert, update or delete.
    pub fn cron_revision(&self) -> Result<i64> {
        Ok(self.meta_get("cronRevision")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub fn get_run(&self, run_id: &str) -> Result<Option<RunRow>> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {RUN_COLS} FROM cron_runs WHERE run_id = ?1"), [run_id], run_from)
            .optional()?)
    }

    /// Runs still marked `running` (in flight, or interrupted by a crash).
    pub fn running_runs(&self) -> Result<Vec<RunRow>> {
        let mut stmt =
            self.conn().prepare_cached(&format!("SELECT {RUN_COLS} FROM cron_runs WHERE status = 'running'"))?;
        let rows = stmt.query_map((), run_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Runs whose delivery has not settled yet.
    pub fn runs_pending_delivery(&self) -> Result<Vec<RunRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {RUN_COLS} FROM cron_runs WHERE delivery_status = 'pending'"))?;
        let rows = stmt.query_map((), run_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A page of runs matching `filter`, newest first unless `ascending`, and the total count.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<(Vec<RunRow>, u64)> {
        let mut clauses = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(job) = &filter.job_id {
            args.push(job.clone().into());
            clauses.push(format!("job_id = ?{}", args.len()));
        }
        if let Some(run) = &filter.run_id {
            args.push(run.clone().into());
            clauses.push(format!("run_id = ?{}", args.len()));
        }
        let statuses = filter.statuses.iter().map(|s| s.as_str());
        let delivery = filter.delivery_statuses.iter().map(|s| s.as_str());
        for (column, values) in [("status", statuses.collect::<Vec<_>>()), ("delivery_status", delivery.collect())] {
            if values.is_empty() {
                continue;
            }
            let mut marks = Vec::new();
            for v in values {
                args.push(v.to_string().into());
                marks.push(format!("?{}", args.len()));
            }
            clauses.push(format!("{column} IN ({})", marks.join(", ")));
        }
        if let Some(q) = &filter.query {
            args.push(format!("%{}%", q.to_lowercase().replace('%', "\\%").replace('_', "\\_")).into());
            let n = args.len();
            clauses.push(format!(
                "(lower(COALESCE(json_extract(record_json, '$.summary'), '')) LIKE ?{n} ESCAPE '\\'
                  OR lower(COALESCE(json_extract(record_json, '$.error'), '')) LIKE ?{n} ESCAPE '\\')"
            ));
        }
        let where_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let total: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM cron_runs {where_sql}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let order = if filter.ascending { "ASC" } else { "DESC" };
        args.push((filter.limit as i64).into());
        args.push((filter.offset as i64).into());
        let sql = format!(
            "SELECT {RUN_COLS} FROM cron_runs {where_sql} ORDER BY started_at_ms {order}, run_id {order} LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows =
            stmt.query_map(rusqlite::params_from_iter(args.iter()), run_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn run(id: &str, job: &str, started: i64, status: RunStatus) -> RunRow {
        RunRow {
            run_id: id.into(),
            job_id: job.into(),
            slot_ms: Some(started),
            trigger: Trigger::Scheduled,
            status,
            lease_owner: 1,
            lease_until_ms: None,
            started_at_ms: started,
            finished_at_ms: None,
            delivery_status: None,
            completion_status: None,
            record_json: "{}".into(),
        }
    }

    fn job(id: &str, enabled: bool, next: Option<i64>) -> JobRow {
        JobRow {
            id: id.into(),
            name: id.into(),
            enabled,
            job_json: "{}".into(),
            state_json: next.map_or("{}".into(), |n| format!(r#"{{"nextRunAtMs":{n},"lastRunId":"r"}}"#)),
            next_run_at_ms: next,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn the_schedule_reads_page_in_fire_order_and_the_next_fire_is_set_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                for j in [
                    job("c", true, Some(20)),
                    job("a", true, Some(20)),
                    job("b", true, Some(10)),
                    job("off", false, Some(5)),
                    job("none", true, None),
                ] {
                    tx.insert_job(&j)?;
                }
                Ok(())
            })
            .unwrap();
        let page1 = store.read_blocking(|rd| rd.scheduled_jobs(None, 2)).unwrap();
        assert_eq!(page1, [("b".to_string(), 10), ("a".to_string(), 20)]);
        let page2 = store.read_blocking(|rd| rd.scheduled_jobs(Some((20, "a")), 2)).unwrap();
        assert_eq!(page2, [("c".to_string(), 20)]);
        assert_eq!(store.read_blocking(|rd| rd.unscheduled_jobs()).unwrap(), ["none"]);
        assert_eq!(store.read_blocking(|rd| rd.job_counts()).unwrap(), (5, 4));
        let rev = store.read_blocking(|rd| rd.cron_revision()).unwrap();
        assert!(store.write_blocking(|tx| tx.set_job_next("a", Some(30))).unwrap());
        assert!(store.write_blocking(|tx| tx.set_job_next("c", None)).unwrap());
        assert!(!store.write_blocking(|tx| tx.set_job_next("gone", None)).unwrap());
        let rows = store.read_blocking(|rd| rd.get_jobs(&["a", "c", "gone"])).unwrap();
        let view: Vec<_> = rows.iter().map(|r| (r.id.as_str(), r.next_run_at_ms, r.state_json.as_str())).collect();
        assert_eq!(
            view,
            [("a", Some(30), r#"{"nextRunAtMs":30,"lastRunId":"r"}"#), ("c", None, r#"{"lastRunId":"r"}"#)]
        );
        assert_eq!(store.read_blocking(|rd| rd.cron_revision()).unwrap(), rev + 2, "a changed job is a new revision");
        let after_a = store.read_blocking(|rd| rd.jobs_after("a", 2)).unwrap();
        assert_eq!(after_a.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn a_slot_can_be_reserved_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        assert!(store.write_blocking(|tx| tx.reserve_run(&run("cron:a:1", "a", 1, RunStatus::Running))).unwrap());
        assert!(!store.write_blocking(|tx| tx.reserve_run(&run("cron:a:1", "a", 1, RunStatus::Running))).unwrap());
        assert_eq!(store.read_blocking(|rd| rd.running_runs()).unwrap().len(), 1);
    }

    #[test]
    fn a_note_reaches_only_a_running_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.reserve_run(&run("cron:a:1", "a", 1, RunStatus::Running))?;
                tx.reserve_run(&run("cron:a:2", "a", 2, RunStatus::Ok))
            })
            .unwrap();
        let note = r#"{"state":"started","startedAtMs":5}"#;
        assert!(store.write_blocking(move |tx| tx.note_running_run("cron:a:1", "command", note)).unwrap());
        assert!(!store.write_blocking(move |tx| tx.note_running_run("cron:a:2", "command", note)).unwrap());
        let record = |id: &'static str| store.read_blocking(move |rd| rd.get_run(id)).unwrap().unwrap().record_json;
        assert_eq!(record("cron:a:1"), r#"{"command":{"state":"started","startedAtMs":5}}"#);
        assert_eq!(record("cron:a:2"), "{}", "a finished run keeps its record");
    }

    #[test]
    fn runs_filter_page_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                for i in 0..10 {
                    tx.reserve_run(&run(
                        &format!("cron:a:{i}"),
                        "a",
                        i,
                        if i % 2 == 0 { RunStatus::Ok } else { RunStatus::Error },
                    ))?;
                }
                tx.reserve_run(&run("cron:b:1", "b", 1, RunStatus::Ok))?;
                Ok(())
            })
            .unwrap();
        let filter =
            RunFilter { job_id: Some("a".into()), statuses: vec![ExecStatus::Error], limit: 2, ..Default::default() };
        let (page, total) = store.read_blocking(move |rd| rd.list_runs(&filter)).unwrap();
        assert_eq!(total, 5);
        assert_eq!(page.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["cron:a:9", "cron:a:7"]);
        // Keep the newest 3 per job, and nothing started before t=2.
        let pruned = store.write_blocking(|tx| tx.prune_runs(2, 3)).unwrap();
        assert_eq!(pruned, 8);
        let (rest, _) = store
            .read_blocking(|rd| rd.list_runs(&RunFilter { limit: 100, ascending: true, ..Default::default() }))
            .unwrap();
        assert_eq!(rest.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["cron:a:7", "cron:a:8", "cron:a:9"]);
    }
}
