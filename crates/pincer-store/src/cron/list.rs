//! Pages of `cron_jobs` in `cron.list` order, costing the page rather than the whole set.
//!
//! Each order has a covering index (`cron_jobs_by_next`, `…_by_updated`, `…_by_name`, with
//! `enabled` as its last column) and the job counts per (enabled, scheduled) are kept by triggers
//! (`cron_job_counts`). A page is read from the index with `OFFSET`, from whichever end is nearer,
//! so the rows skipped are at most half the set and are index entries, never jobs; the total comes
//! from the counts. Only the page's own rows are read from the table.
//!
//! A listing can also be read by key ([`JobKey`], the row a page continues after): such a page
//! costs its own rows wherever it starts, and a job present from the first page to the last is
//! seen exactly once even while others are added and removed. The offset path keeps such keys as
//! bookmarks ([`JobBookmarks`]) for the cron revision they were read at, so the next page of a
//! sequential offset walk (`nextOffset`), or a repeated offset, is a keyed read too; any change to
//! `cron_jobs` bumps the revision and so retires every bookmark.
//!
//! Jobs with no next run come after every scheduled job in both directions (OpenClaw keeps paused
//! jobs from hiding scheduled ones); otherwise a descending order is the ascending one reversed.
//! Ties go by id. Names compare ASCII case-insensitively (`COLLATE NOCASE`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use rusqlite::OptionalExtension;
use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};

use super::{JOB_COLS, JobRow, job_from};
use crate::{Rd, Result};

/// Which jobs a listing shows, by their `enabled` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnabledFilter {
    All,
    Enabled,
    Disabled,
}

/// The key a listing is sorted by (OpenClaw's `sortBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// A row's place in a listing's order: a keyed page continues after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobKey {
    /// The order's segment the row is in (`nextRunAtMs`: 0 scheduled, 1 not).
    pub seg: u8,
    /// The sort key's value; none where the segment sorts by id alone.
    pub key: Option<SortValue>,
    pub id: String,
}

/// A sort key's value: a time or a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    Int(i64),
    Text(String),
}

/// A keyed page: the jobs, the listing's total, the key of the last row and whether rows follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedPage {
    pub jobs: Vec<JobRow>,
    pub total: u64,
    pub last: Option<JobKey>,
    pub more: bool,
}

/// Bookmarks into listings: for an offset, the key of the row before it, valid at one cron revision.
#[derive(Debug, Default)]
pub struct JobBookmarks {
    listings: Mutex<HashMap<(EnabledFilter, JobOrder, bool), Marks>>,
}

#[derive(Debug, Default)]
struct Marks {
    revision: i64,
    at: BTreeMap<u64, JobKey>,
}

/// Bookmarks kept per listing; past it, the listing's are dropped and collected afresh.
const MAX_MARKS: usize = 4096;

impl JobBookmarks {
    fn listing(q: &JobPageQuery) -> (EnabledFilter, JobOrder, bool) {
        (q.enabled, q.order, q.descending)
    }

    fn get(&self, q: &JobPageQuery, revision: i64, offset: u64) -> Option<JobKey> {
        let listings = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        let marks = listings.get(&Self::listing(q))?;
        (marks.revision == revision).then(|| marks.at.get(&offset).cloned()).flatten()
    }

    fn put(&self, q: &JobPageQuery, revision: i64, offset: u64, key: JobKey) {
        let mut listings = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        let marks = listings.entry(Self::listing(q)).or_default();
        if marks.revision > revision {
            return; // read at an older snapshot than the bookmarks kept
        }
        if marks.revision < revision || marks.at.len() >= MAX_MARKS {
            *marks = Marks { revision, at: BTreeMap::new() };
        }
        marks.at.insert(offset, key);
    }
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
    /// The sort column before `id` as selected, and as compared; none when the segment sorts by id.
    key: Option<(&'static str, &'static str)>,
    filter: &'static str,
    /// Which `cron_job_counts.scheduled` values it covers.
    scheduled: &'static [i64],
    /// Sort columns, most significant first.
    keys: &'static [&'static str],
}

const NEXT_SCHEDULED: Segment = Segment {
    index: "cron_jobs_by_next",
    key: Some(("next_run_at_ms", "next_run_at_ms")),
    filter: "next_run_at_ms IS NOT NULL",
    scheduled: &[1],
    keys: &["next_run_at_ms", "id"],
};
const NEXT_UNSCHEDULED: Segment =
    Segment { index: "cron_jobs_by_next", key: None, filter: "next_run_at_ms IS NULL", scheduled: &[0], keys: &["id"] };
const UPDATED: Segment = Segment {
    index: "cron_jobs_by_updated",
    key: Some(("updated_at_ms", "updated_at_ms")),
    filter: "1",
    scheduled: &[0, 1],
    keys: &["updated_at_ms", "id"],
};
const NAME: Segment = Segment {
    index: "cron_jobs_by_name",
    key: Some(("name", "name COLLATE NOCASE")),
    filter: "1",
    scheduled: &[0, 1],
    keys: &["name COLLATE NOCASE", "id"],
};

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

/// A `(rowid, key, id)` row of segment `si` as its id and [`JobKey`].
fn key_row(si: usize, r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, JobKey)> {
    let key = match r.get_ref(1)? {
        rusqlite::types::ValueRef::Integer(n) => Some(SortValue::Int(n)),
        rusqlite::types::ValueRef::Text(t) => Some(SortValue::Text(String::from_utf8_lossy(t).into_owned())),
        _ => None,
    };
    Ok((r.get(0)?, JobKey { seg: si as u8, key, id: r.get(2)? }))
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

    /// Row ids and keys of `take` jobs of segment `si` after skipping `skip`, reading the index
    /// from the nearer end.
    fn segment_rows(&self, si: usize, q: &JobPageQuery, len: u64, skip: u64, take: u64) -> Result<Vec<(i64, JobKey)>> {
        let seg = &segments(q.order)[si];
        // From the far end, the same rows are the `take` after skipping `len - skip - take`.
        let backwards = skip > len - skip - take;
        let (descending, skip) = if backwards { (!q.descending, len - skip - take) } else { (q.descending, skip) };
        let sql = format!(
            "SELECT rowid, {}, id FROM cron_jobs INDEXED BY {} WHERE {}{} ORDER BY {} LIMIT ?1 OFFSET ?2",
            seg.key.map_or("NULL", |k| k.0),
            seg.index,
            seg.filter,
            enabled_sql(q.enabled),
            order_sql(seg, descending)
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows =
            stmt.query_map([take as i64, skip as i64], |r| key_row(si, r))?.collect::<rusqlite::Result<Vec<_>>>()?;
        if backwards {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Up to `take` row ids and keys of the listing after `after` (from its start when none),
    /// in order: each segment's rows from its index, starting at the key.
    fn rows_after(&self, q: &JobPageQuery, after: Option<&JobKey>, take: u64) -> Result<Vec<(i64, JobKey)>> {
        let mut out = Vec::new();
        let from = after.map_or(0, |k| k.seg as usize);
        for (si, seg) in segments(q.order).iter().enumerate().skip(from) {
            let want = take - out.len() as u64;
            if want == 0 {
                break;
            }
            let mut args: Vec<SqlValue> = vec![SqlValue::Integer(want as i64)];
            let mut cond = String::new();
            if let Some(k) = after.filter(|k| k.seg as usize == si) {
                let op = if q.descending { "<" } else { ">" };
                match (seg.key, &k.key) {
                    (Some((_, cmp)), Some(v)) => {
                        cond = format!(" AND ({cmp}, id) {op} (?2, ?3)");
                        args.push(match v {
                            SortValue::Int(n) => SqlValue::Integer(*n),
                            SortValue::Text(t) => SqlValue::Text(t.clone()),
                        });
                    }
                    (None, None) => cond = format!(" AND id {op} ?2"),
                    _ => return Err(crate::StoreError::Invalid("a listing key does not fit its order".into())),
                }
                args.push(SqlValue::Text(k.id.clone()));
            }
            let sql = format!(
                "SELECT rowid, {}, id FROM cron_jobs INDEXED BY {} WHERE {}{}{cond} ORDER BY {} LIMIT ?1",
                seg.key.map_or("NULL", |k| k.0),
                seg.index,
                seg.filter,
                enabled_sql(q.enabled),
                order_sql(seg, q.descending)
            );
            let mut stmt = self.conn().prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| key_row(si, r))?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
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

    /// The listing's total, and the row ids and keys of `count` rows from position `skip`: each
    /// segment read from its index from the nearer end.
    fn rows_at(&self, q: &JobPageQuery, skip: u64, count: u64) -> Result<(u64, Vec<(i64, JobKey)>)> {
        let mut total = 0;
        let mut rows = Vec::new();
        let (mut skip, mut want) = (skip, count);
        for (si, seg) in segments(q.order).iter().enumerate() {
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
            rows.extend(self.segment_rows(si, q, len, skip, take)?);
            (skip, want) = (0, want - take);
        }
        Ok((total, rows))
    }

    /// One page of jobs in `q`'s order, and the listing's total. Costs the page's rows plus at
    /// most half the listing's index entries, whatever the offset.
    pub fn job_page(&self, q: &JobPageQuery) -> Result<JobPage> {
        let (total, rows) = self.rows_at(q, q.offset, q.limit as u64)?;
        let rowids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        Ok(JobPage { jobs: self.jobs_by_rowid(&rowids)?, total })
    }

    /// [`Rd::job_page`] through `marks`: when a bookmark for `q.offset` was kept at this revision,
    /// the page is a keyed read costing its own rows; otherwise it is read by offset. Either way
    /// the key before the page and its last key are kept, for a repeat and for the next page.
    pub fn job_page_marked(&self, q: &JobPageQuery, marks: &JobBookmarks) -> Result<JobPage> {
        let revision = self.cron_revision()?;
        let limit = q.limit as u64;
        let (total, rows) = match marks.get(q, revision, q.offset) {
            Some(key) => {
                let total = segments(q.order)
                    .iter()
                    .map(|seg| self.counted_jobs(q.enabled, seg.scheduled))
                    .sum::<Result<u64>>()?;
                (total, self.rows_after(q, Some(&key), limit)?)
            }
            None => {
                // One row more in front: its key is the bookmark of this very offset.
                let before = q.offset.min(1);
                let (total, mut rows) = self.rows_at(q, q.offset - before, limit + before)?;
                if before == 1 && !rows.is_empty() {
                    marks.put(q, revision, q.offset, rows.remove(0).1);
                }
                (total, rows)
            }
        };
        if let Some((_, last)) = rows.last() {
            marks.put(q, revision, q.offset + rows.len() as u64, last.clone());
        }
        let rowids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        Ok(JobPage { jobs: self.jobs_by_rowid(&rowids)?, total })
    }

    /// The page of `q.limit` jobs after `after` (from the start when none), read by key: costs its
    /// own rows wherever it is. `q.offset` is not used.
    pub fn job_page_after(&self, q: &JobPageQuery, after: Option<&JobKey>) -> Result<KeyedPage> {
        let limit = q.limit as u64;
        let mut rows = self.rows_after(q, after, limit + 1)?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let total =
            segments(q.order).iter().map(|seg| self.counted_jobs(q.enabled, seg.scheduled)).sum::<Result<u64>>()?;
        let last = rows.last().map(|r| r.1.clone());
        let rowids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        Ok(KeyedPage { jobs: self.jobs_by_rowid(&rowids)?, total, last, more })
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
                        let q = JobPageQuery { enabled, order, descending, offset: 0, limit };
                        assert_eq!(keyed_walk(&store, &q, |_| {}), want, "{q:?}");
                        let marks = JobBookmarks::default();
                        for offset in 0..=want.len() as u64 + 1 {
                            let q = JobPageQuery { enabled, order, descending, offset, limit };
                            let page = store.read_blocking(|rd| rd.job_page(&q)).unwrap();
                            // Read by offset the first time, from its bookmark the second.
                            for _ in 0..2 {
                                let marked = store.read_blocking(|rd| rd.job_page_marked(&q, &marks)).unwrap();
                                assert_eq!(marked, page, "{q:?}");
                            }
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

    /// Every page of a keyed walk from the start, with `between` run after each page; the ids seen.
    fn keyed_walk(store: &Store, q: &JobPageQuery, mut between: impl FnMut(usize)) -> Vec<String> {
        let (mut after, mut seen, mut pages) = (None::<JobKey>, Vec::new(), 0);
        loop {
            let a = after.clone();
            let q2 = *q;
            let page = store.read_blocking(move |rd| rd.job_page_after(&q2, a.as_ref())).unwrap();
            seen.extend(page.jobs.iter().map(|j| j.id.clone()));
            assert!(page.jobs.len() <= q.limit as usize);
            if !page.more {
                assert!(page.jobs.len() < q.limit as usize || page.last.is_some());
                return seen;
            }
            after = page.last;
            between(pages);
            pages += 1;
        }
    }

    /// A keyed walk sees every job that exists from its first page to its last exactly once, in
    /// order, while others are added and removed ahead of and behind it; an offset walk over the
    /// same changes skips a job (the reason the CLI walks by key).
    #[test]
    fn a_keyed_walk_sees_every_lasting_job_once_under_adds_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let lasting: Vec<JobRow> =
            (0..60).map(|i| job(&format!("k{i:02}"), &format!("n{i:02}"), true, Some(1_000 + i), i)).collect();
        let rows = lasting.clone();
        store.write_blocking(move |tx| rows.iter().try_for_each(|j| tx.insert_job(j))).unwrap();
        for order in [JobOrder::NextRun, JobOrder::UpdatedAt, JobOrder::Name] {
            for descending in [false, true] {
                let q = JobPageQuery { enabled: EnabledFilter::Enabled, order, descending, offset: 0, limit: 7 };
                let tag = format!("{order:?}{descending}");
                let seen = keyed_walk(&store, &q, |page| {
                    // Add two transient jobs at both ends and one beside the walk's position, and
                    // remove the previous round's.
                    let tag = tag.clone();
                    store
                        .write_blocking(move |tx| {
                            if page > 0 {
                                for which in ["lo", "hi", "mid"] {
                                    tx.delete_job(&format!("t{tag}{which}{}", page - 1))?;
                                }
                            }
                            let p = page as i64;
                            tx.insert_job(&job(&format!("t{tag}lo{p}"), "a", true, Some(10 + p), -p))?;
                            tx.insert_job(&job(&format!("t{tag}hi{p}"), "z", true, Some(9_000 + p), 900 + p))?;
                            let mid = 1_000 + 7 * p + 3;
                            tx.insert_job(&job(
                                &format!("t{tag}mid{p}"),
                                &format!("n{:02}", 7 * p + 3),
                                true,
                                Some(mid),
                                7 * p + 3,
                            ))
                        })
                        .unwrap();
                });
                let mut lasting_seen: Vec<&str> =
                    seen.iter().filter(|id| id.starts_with('k')).map(String::as_str).collect();
                let want: Vec<String> = if descending {
                    lasting.iter().rev().map(|j| j.id.clone()).collect()
                } else {
                    lasting.iter().map(|j| j.id.clone()).collect()
                };
                assert_eq!(lasting_seen, want, "{q:?}");
                lasting_seen.dedup();
                let mut all = seen.clone();
                all.sort();
                all.dedup();
                assert_eq!(all.len(), seen.len(), "a job seen twice: {seen:?}");
                let tag = format!("{order:?}{descending}");
                store
                    .write_blocking(move |tx| {
                        for page in 0..20 {
                            for which in ["lo", "hi", "mid"] {
                                tx.delete_job(&format!("t{tag}{which}{page}"))?;
                            }
                        }
                        Ok(())
                    })
                    .unwrap();
            }
        }
        // The same changes under an offset walk: removing a job behind the walk shifts one past it.
        let q = JobPageQuery {
            enabled: EnabledFilter::Enabled,
            order: JobOrder::NextRun,
            descending: false,
            offset: 0,
            limit: 7,
        };
        let first = store.read_blocking(move |rd| rd.job_page(&q)).unwrap();
        store.write_blocking(|tx| tx.delete_job("k00").map(|_| ())).unwrap();
        let second = store.read_blocking(move |rd| rd.job_page(&JobPageQuery { offset: 7, ..q })).unwrap();
        assert_eq!((ids(&first).last().copied(), ids(&second).first().copied()), (Some("k06"), Some("k08")));
    }

    /// A bookmark kept before a change is not used after it: the page at an offset is always the
    /// slice of the current order.
    #[test]
    fn bookmarks_do_not_outlive_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write_blocking(|tx| {
                (0..30).try_for_each(|i| tx.insert_job(&job(&format!("j{i:02}"), "n", true, Some(100 + i), 1)))
            })
            .unwrap();
        let marks = JobBookmarks::default();
        let q = JobPageQuery {
            enabled: EnabledFilter::Enabled,
            order: JobOrder::NextRun,
            descending: false,
            offset: 10,
            limit: 5,
        };
        let marked = |store: &Store| store.read_blocking(|rd| rd.job_page_marked(&q, &marks)).unwrap();
        assert_eq!(ids(&marked(&store)), ["j10", "j11", "j12", "j13", "j14"]);
        // A job in front of the page, and one removed from it: the bookmark at 10 (after j09) and
        // the one at 15 (after j14) no longer hold.
        store
            .write_blocking(|tx| {
                tx.insert_job(&job("a0", "n", true, Some(1), 1))?;
                tx.delete_job("j12").map(|_| ())
            })
            .unwrap();
        assert_eq!(ids(&marked(&store)), ["j09", "j10", "j11", "j13", "j14"]);
        let next = store.read_blocking(|rd| rd.job_page_marked(&JobPageQuery { offset: 15, ..q }, &marks)).unwrap();
        assert_eq!(ids(&next), ["j15", "j16", "j17", "j18", "j19"]);
        assert_eq!(next.total, 30);
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
