//! Read-only access to another system's database: OpenClaw's `state/openclaw.sqlite` (2026.6 and
//! later), for `pincer import openclaw`: job definitions, paired devices and run receipts. Nothing
//! is written.

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

fn open(db: &Path) -> Result<Connection, String> {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))
}

fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
}

/// Every row of OpenClaw's `device_pairing_paired`, in OpenClaw's `PairedDevice` JSON shape
/// (`deviceId`, `publicKey`, `roles`, `scopes`, `tokens` by role, …); none when the table is absent.
pub fn paired_devices(db: &Path) -> Result<Vec<serde_json::Value>, String> {
    use serde_json::{Value, json};
    let conn = open(db)?;
    let read = || -> rusqlite::Result<Vec<Value>> {
        if !has_table(&conn, "device_pairing_paired")? {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare(
            "SELECT device_id, public_key, display_name, platform, device_family, client_id, client_mode, role,
                    roles_json, scopes_json, tokens_json, created_at_ms, approved_at_ms
             FROM device_pairing_paired ORDER BY approved_at_ms, device_id",
        )?;
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str::<Value>(&s).ok()).unwrap_or(Value::Null);
        stmt.query_map([], |r| {
            Ok(json!({
                "deviceId": r.get::<_, String>(0)?,
                "publicKey": r.get::<_, String>(1)?,
                "displayName": r.get::<_, Option<String>>(2)?,
                "platform": r.get::<_, Option<String>>(3)?,
                "deviceFamily": r.get::<_, Option<String>>(4)?,
                "clientId": r.get::<_, Option<String>>(5)?,
                "clientMode": r.get::<_, Option<String>>(6)?,
                "role": r.get::<_, Option<String>>(7)?,
                "roles": parse(r.get(8)?),
                "scopes": parse(r.get(9)?),
                "tokens": parse(r.get(10)?),
                "createdAtMs": r.get::<_, i64>(11)?,
                "approvedAtMs": r.get::<_, i64>(12)?,
            }))
        })?
        .collect()
    };
    read().map_err(|e| format!("cannot read OpenClaw's paired devices from {}: {e}", db.display()))
}

/// Every finished row of OpenClaw's `cron_run_receipts` (`receiptId`, `jobId`, `requestRunId`,
/// `status`, `startedAtMs`, `finishedAtMs`, `error`), oldest first; none when the table is absent.
pub fn run_receipts(db: &Path) -> Result<Vec<serde_json::Value>, String> {
    use serde_json::{Value, json};
    let conn = open(db)?;
    let read = || -> rusqlite::Result<Vec<Value>> {
        if !has_table(&conn, "cron_run_receipts")? {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare(
            "SELECT receipt_id, job_id, request_run_id, status, started_at_ms, finished_at_ms, error_text
             FROM cron_run_receipts WHERE finished_at_ms IS NOT NULL ORDER BY started_at_ms, receipt_id",
        )?;
        stmt.query_map([], |r| {
            Ok(json!({
                "receiptId": r.get::<_, String>(0)?,
                "jobId": r.get::<_, String>(1)?,
                "requestRunId": r.get::<_, Option<String>>(2)?,
                "status": r.get::<_, String>(3)?,
                "startedAtMs": r.get::<_, i64>(4)?,
                "finishedAtMs": r.get::<_, i64>(5)?,
                "error": r.get::<_, Option<String>>(6)?,
            }))
        })?
        .collect()
    };
    read().map_err(|e| format!("cannot read OpenClaw's run history from {}: {e}", db.display()))
}
