//! Pages of `cron_jobs` in `cron.list` order, costing the page rather than the whole set.
//!
//! Each order has a covering index (`cron_jobs_by_next`, `…_by_updated`, `…_by_name`, with
//! `enabled` as its last column) and the job counts per (enabled, scheduled) are kept by triggers
//! (`cron_job_counts`). A page is read from the index with `OFFSET`, from whichever end is nearer,
//! so the rows skipped are at most half the set and are index entries, never jobs; the total comes
//! from the counts. Only the page's own rows are read from the table.
//!
//! Jobs with no next run come after every scheduled job in both directions (OpenClaw keeps paused
//! jobs from hiding scheduled ones); otherwise a descending order is the ascending one reversed.
//! Ties go by id. Names compare ASCII case-insensitively (`COLLATE NOCASE`).

use rusqlite::OptionalExtension;

use super::{JOB_COLS, JobRow, job_from};
use crate::{Rd, Result};

/// Which jobs a listing shows, by their `enabled` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnabledFilter {
    All,
    Enabled,
    Disabled,
}

/// The key a listing is sorted by (OpenClaw's `sortBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOrder {
    /// `nextRunAtMs`; jobs with none come last.
    NextRun,
    UpdatedAt,
    Name,
}

/// One page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobPageQuery {
    pub enabled: EnabledFilter,
    pub order: JobOrder,
    pub descending: bool,
    pub offset: u64,
    pub limit: u32,
}

/// The jobs of one page, and how many jobs the whole listing has.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<JobRow>,
    pub total: u64,
}

/// What a filter looks at, read from the stored JSON without parsing the whole job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFacts {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub agent_id: Option<String>,
    pub schedule_kind: Option<String>,
    pub last_run_status: Option<String>,
}

/// A run of the order over one index range: its rows share `filter` and sort by `keys`.
struct Segment {
    index: &'static str,
    filter: &'static str,
    /// Which `cron_job_counts.scheduled` values it covers.
    scheduled: &'static [i64],
    /// Sort columns, most significant first.
    keys: &'static [&'static str],
}

const NEXT_SCHEDULED: Segment = Segment {
    index: "cron_jobs_by_next",
    filter: "next_run_at_ms IS NOT NULL",
    scheduled: &[1],
    keys: &["next_run_at_ms", "id"],
};
const NEXT_UNSCHEDULED: Segment =
    Segment { index: "cron_jobs_by_next", filter: "next_run_at_ms IS NULL", scheduled: &[0], keys: &["id"] };
const UPDATED: Segment =
    Segment { index: "cron_jobs_by_updated", filter: "1", scheduled: &[0, 1], keys: &["updated_at_ms", "id"] };
const NAME: Segment =
    Segment { index: "cron_jobs_by_name", filter: "1", scheduled: &[0, 1], keys: &["name COLLATE NOCASE", "id"] };

fn segments(order: JobOrder) -> &'static [Segment] {
    match order {
        JobOrder::NextRun => &[NEXT_SCHEDULED, NEXT_UNSCHEDULED],
        JobOrder::UpdatedAt => &[UPDATED],
        JobOrder::Name => &[NAME],
    }
}

fn enabled_sql(e: EnabledFilter) -> &'static str {
    match e {
        EnabledFilter::All => "",
        EnabledFilter::Enabled => " AND enabled != 0",
        EnabledFilter::Disabled => " AND enabled = 0",
    }
}

fn enabled_values(e: EnabledFilter) -> &'static [i64] {
    match e {
        EnabledFilter::All => &[0, 1],
        EnabledFilter::Enabled => &[1],
        EnabledFilter::Disabled => &[0],
    }
}

fn order_sql(seg: &Segment, descending: bool) -> String {
    let dir = if descending { "DESC" } else { "ASC" };
    seg.keys.iter().map(|k| format!("{k} {dir}")).collect::<Vec<_>>().join(", ")
}

impl Rd<'_> {
    /// Jobs counted by `cron_job_counts`: those matching `enabled` whose `scheduled` flag is one of
    /// `scheduled`.
    fn counted_jobs(&self, enabled: EnabledFilter, scheduled: &[i64]) -> Result<u64> {
        let mut stmt =
            self.conn().prepare_cached("SELECT jobs FROM cron_job_counts WHERE enabled = ?1 AND scheduled = ?2")?;
        let mut n = 0i64;
        for e in enabled_values(enabled) {
            for s in scheduled {
                n += stmt.query_row([e, s], |r| r.get::<_, i64>(0)).optional()?.unwrap_or(0);
            }
        }
        Ok(n.max(0) as u64)
    }

    /// How many jobs there are, and how many of them are enabled (for `cron.status` and
    /// `doctor`), from the counts the triggers keep: no job is read.
    pub fn job_counts(&self) -> Result<(u64, u64)> {
        Ok((self.counted_jobs(EnabledFilter::All, &[0, 1])?, self.counted_jobs(EnabledFilter::Enabled, &[0, 1])?))
    }

    /// Row ids of `take` jobs of `seg` after skipping `skip`, reading the index from the nearer end.
    fn segment_rowids(&self, seg: &Segment, q: &JobPageQuery, len: u64, skip: u64, take: u64) -> Result<Vec<i64>> {
        // From the far end, the same rows are the `take` after skipping `len - skip - take`.
        let backwards = skip > len - skip - take;
        let (descending, skip) = if backwards { (!q.descending, len - skip - take) } else { (q.descending, skip) };
        let sql = format!(
            "SELECT rowid FROM cron_jobs INDEXED BY {} WHERE {}{} ORDER BY {} LIMIT ?1 OFFSET ?2",
            seg.index,
            seg.filter,
            enabled_sql(q.enabled),
            order_sql(seg, descending)
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut ids = stmt
            .query_map([take as i64, skip as i64], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if backwards {
            ids.reverse();
        }
        Ok(ids)
    }

    fn jobs_by_rowid(&self, rowids: &[i64]) -> Result<Vec<JobRow>> {
        let mut stmt = self.conn().prepare_cached(&format!("SELECT {JOB_COLS} FROM cron_jobs WHERE rowid = ?1"))?;
        let mut jobs = Vec::with_capacity(rowids.len());
        for id in rowids {
            if let Some(job) = stmt.query_row([id], job_from).optional()? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// One page of jobs in `q`'s order, and the listing's total. Costs the page's rows plus at
    /// most half the listing's index entries, whatever the offset.
    pub fn job_page(&self, q: &JobPageQuery) -> Result<JobPage> {
        let mut total = 0;
        let mut rowids = Vec::new();
        let (mut skip, mut want) = (q.offset, q.limit as u64);
        for seg in segments(q.order) {
            let len = self.counted_jobs(q.enabled, seg.scheduled)?;
            total += len;
            if want == 0 {
                continue;
            }
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = want.min(len - skip);
            rowids.extend(self.segment_rowids(seg, q, len, skip, take)?);
            (skip, want) = (0, want - take);
        }
        Ok(JobPage { jobs: self.jobs_by_rowid(&rowids)?, total })
    }

    /// One page of the jobs for which `keep` is true, in `q`'s order, and how many there are.
    /// Reads every job's [`JobFacts`] (not the whole job), so it costs the listing, not the page.
    pub fn job_page_matching(&self, q: &JobPageQuery, keep: &mut dyn FnMut(&JobFacts) -> bool) -> Result<JobPage> {
        let mut total = 0u64;
        let mut rowids = Vec::new();
        let end = q.offset.saturating_add(q.limit as u64);
        for seg in segments(q.order) {
            let sql = format!(
                "SELECT rowid, id, name, json_extract(job_json, '$.description'), json_extract(job_json, '$.agentId'),
                        json_extract(job_json, '$.schedule.kind'), json_extract(state_json, '$.lastRunStatus')
                 FROM cron_jobs INDEXED BY {} WHERE {}{} ORDER BY {}",
                seg.index,
                seg.filter,
                enabled_sql(q.enabled),
                order_sql(seg, q.descending)
            );
            let mut stmt = self.conn().prepare_cached(&sql)?;
            let mut rows = stmt.query(())?;
            while let Some(r) = rows.next()? {
                let facts = JobFacts {
                    id: r.get(1)?,
                    name: r.get(2)?,
                    description: r.get(3)?,
                    agent_id: r.get(4)?,
                    schedule_kind: r.get(5)?,
                    last_run_status: r.get(6)?,
                };
                if keep(&facts) {
                    if total >= q.offset && total < end {
                        rowids.push(r.get::<_, i64>(0)?);
                    }
                    total += 1;
                }
            }
        }
        Ok(JobPage { jobs: self.jobs_by_rowid(&rowids)?, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn job(id: &str, name: &str, enabled: bool, next: Option<i64>, updated: i64) -> JobRow {
        JobRow {
            id: id.into(),
            name: name.into(),
            enabled,
            job_json: format!(r#"{{"id":"{id}","schedule":{{"kind":"every"}}}}"#),
            state_json: "{}".into(),
            next_run_at_ms: next,
            created_at_ms: 1,
            updated_at_ms: updated,
        }
    }

    fn ids(page: &JobPage) -> Vec<&str> {
        page.jobs.iter().map(|j| j.id.as_str()).collect()
    }

    /// Every page of every order, from both ends and across the segment boundary, equals the same
    /// slice of the order computed in Rust from all the rows.
    #[test]
    fn every_page_is_the_slice_of_the_whole_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let mut all = Vec::new();
        for i in 0..57u32 {
            // Repeated next runs and update times (ties go by id), some unscheduled, some disabled.
            let next = (i % 5 != 0).then_some(1_000 + (i % 7) as i64 * 10);
            let name = ["beta", "Alpha", "gamma", "alpha", "Beta"][i as usize % 5];
            all.push(job(&format!("j{:02}", (i * 31) % 57), name, i % 4 != 0, next, (i % 3) as i64));
        }
        let rows = all.clone();
        store.write_blocking(move |tx| rows.iter().try_for_each(|j| tx.insert_job(j))).unwrap();
        for enabled in [EnabledFilter::All, EnabledFilter::Enabled, EnabledFilter::Disabled] {
            for order in [JobOrder::NextRun, JobOrder::UpdatedAt, JobOrder::Name] {
                for descending in [false, true] {
                    let mut want: Vec<&JobRow> = all
                        .iter()
                        .filter(|j| match enabled {
                            EnabledFilter::All => true,
                            EnabledFilter::Enabled => j.enabled,
                            EnabledFilter::Disabled => !j.enabled,
                        })
                        .collect();
                    want.sort_by(|a, b| {
                        let by_key = match order {
                            JobOrder::NextRun => a.next_run_at_ms.cmp(&b.next_run_at_ms),
                            JobOrder::UpdatedAt => a.updated_at_ms.cmp(&b.updated_at_ms),
                            JobOrder::Name => a.name.to_ascii_lowercase().cmp(&b.name.to_ascii_lowercase()),
                        };
                        let cmp = by_key.then(a.id.cmp(&b.id));
                        let cmp = if descending { cmp.reverse() } else { cmp };
                        // Unscheduled jobs last, either way.
                        let unscheduled = |j: &JobRow| order == JobOrder::NextRun && j.next_run_at_ms.is_none();
                        unscheduled(a).cmp(&unscheduled(b)).then(cmp)
                    });
                    let want: Vec<&str> = want.iter().map(|j| j.id.as_str()).collect();
                    for limit in [1u32, 4, 13, 100] {
                        for offset in 0..=want.len() as u64 + 1 {
                            let q = JobPageQuery { enabled, order, descending, offset, limit };
                            let page = store.read_blocking(|rd| rd.job_page(&q)).unwrap();
                            let slice: Vec<&str> =
                                want.iter().skip(offset as usize).take(limit as usize).copied().collect();
                            assert_eq!(ids(&page), slice, "{q:?}");
                            assert_eq!(page.total, want.len() as u64, "{q:?}");
                            let all_pass = store.read_blocking(|rd| rd.job_page_matching(&q, &mut |_| true)).unwrap();
                            assert_eq!(all_pass, page, "{q:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn counts_follow_inserts_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.insert_job(&job("a", "a", true, Some(5), 1))?;
                tx.insert_job(&job("b", "b", true, None, 1))?;
                tx.insert_job(&job("c", "c", false, Some(5), 1))
            })
            .unwrap();
        let counts = |store: &Store| {
            store
                .read_blocking(|rd| {
                    Ok((
                        rd.job_counts()?,
                        rd.counted_jobs(EnabledFilter::All, &[1])?,
                        rd.counted_jobs(EnabledFilter::All, &[0])?,
                    ))
                })
                .unwrap()
        };
        assert_eq!(counts(&store), ((3, 2), 2, 1));
        // Disable a, schedule b, leave c; then an update that changes neither flag.
        store
            .write_blocking(|tx| {
                tx.update_job(&job("a", "a", false, Some(6), 2))?;
                tx.update_job(&job("b", "b", true, Some(7), 2))?;
                tx.update_job(&job("c", "c", false, Some(8), 2))
            })
            .unwrap();
        assert_eq!(counts(&store), ((3, 1), 3, 0));
        store.write_blocking(|tx| tx.delete_job("a")).unwrap();
        assert_eq!(counts(&store), ((2, 1), 2, 0));
    }

    #[test]
    fn a_filter_sees_the_facts_and_pages_what_it_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                for i in 0..10 {
                    let mut j = job(&format!("j{i}"), &format!("job {i}"), true, Some(100 - i), 1);
                    j.job_json = format!(
                        r#"{{"id":"j{i}","description":"d{i}","agentId":"a{}","schedule":{{"kind":"cron"}}}}"#,
                        i % 2
                    );
                    j.state_json = format!(r#"{{"lastRunStatus":"{}"}}"#, if i < 3 { "error" } else { "ok" });
                    tx.insert_job(&j)?;
                }
                Ok(())
            })
            .unwrap();
        let q = JobPageQuery {
            enabled: EnabledFilter::Enabled,
            order: JobOrder::NextRun,
            descending: false,
            offset: 1,
            limit: 2,
        };
        let mut seen = Vec::new();
        let page = store
            .read_blocking(|rd| {
                rd.job_page_matching(&q, &mut |f| {
                    seen.push(f.clone());
                    f.agent_id.as_deref() == Some("a1")
                })
            })
            .unwrap();
        // a1 jobs by next run: j9 (91), j7, j5, j3, j1 — the page after the first.
        assert_eq!((ids(&page), page.total), (vec!["j7", "j5"], 5));
        assert_eq!(seen.len(), 10);
        let j2 = seen.iter().find(|f| f.id == "j2").unwrap();
        assert_eq!(
            j2,
            &JobFacts {
                id: "j2".into(),
                name: "job 2".into(),
                description: Some("d2".into()),
                agent_id: Some("a0".into()),
                schedule_kind: Some("cron".into()),
                last_run_status: Some("error".into()),
            }
        );
    }
}
