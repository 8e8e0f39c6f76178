//! Read-only access to another system's database: OpenClaw's `state/openclaw.sqlite` (2026.6 and
//! later), for `pincer import openclaw`. Only the job definitions are read; nothing is written.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// The `job_json` of every row of OpenClaw's `cron_jobs`, in its list order.
pub fn cron_jobs(db: &Path) -> Result<Vec<String>, String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    let read = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("SELECT job_json FROM cron_jobs ORDER BY sort_order, updated_at, job_id")?;
        stmt.query_map([], |r| r.get::<_, String>(0))?.collect()
    };
    read().map_err(|e| format!("cannot read OpenClaw's jobs from {}: {e}", db.display()))
}
