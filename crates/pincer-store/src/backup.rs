//! `pincer backup` and `pincer restore`: whole-database copies through SQLite's online backup API.
//!
//! A backup reads the live database beside a running gateway (without its lock: the copy is one
//! read transaction, so it is a consistent snapshot at one commit whatever the gateway writes
//! meanwhile) into a temporary file next to the destination, checks the copy, and renames it into
//! place, so a failed backup never leaves a half-written file under the chosen name. A restore
//! takes the gateway's lock first, so it refuses while a gateway owns the database; it checks the
//! backup (readable, not damaged, written by this or an older Pincer: the next start migrates it),
//! keeps the database it replaces as `<db>.pre-restore-<unix seconds>.bak`, and writes the copy
//! through SQLite, so a stale `-wal` cannot be replayed over it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, MAIN_DB, OpenFlags};

use crate::{LATEST_VERSION, Result, StoreError, files, migrations};

/// What a backup or a restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The file written: the backup, or the restored database.
    pub path: PathBuf,
    pub bytes: u64,
    /// The copy's schema version (`PRAGMA user_version`).
    pub schema_version: i64,
    /// Restore only: where the database it replaced was kept (`None` when there was none).
    pub previous: Option<PathBuf>,
}

/// Pages copied per step: the whole database in one read transaction, so a gateway writing
/// meanwhile cannot make the copy restart over and over.
const ALL_PAGES: std::os::raw::c_int = -1;
/// How often, and how long apart, a backup retries while the database is locked (a checkpoint).
const BUSY_WAITS: u32 = 200;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Copies the database at `db` to the new file `dest` while a gateway may be using it.
pub fn backup(db: &Path, dest: &Path) -> Result<CopyReport> {
    let fail = |message: String| StoreError::Invalid(message);
    if std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(fail(format!(
            "there is no database at {} to back up: check --state-dir (or PINCER_STATE_DIR)",
            db.display()
        )));
    }
    if dest.exists() {
        return Err(fail(format!(
            "{} already exists: choose a new file name (a backup never overwrites a file)",
            dest.display()
        )));
    }
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(fail(format!("cannot write {}: the folder {} does not exist", dest.display(), dir.display())));
    }
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("backup");
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = copy_into(db, &partial).and_then(|()| {
        let schema_version = check_copy(&partial)?;
        std::fs::rename(&partial, dest)
            .map_err(|e| fail(format!("cannot move the finished backup to {}: {e}", dest.display())))?;
        Ok(schema_version)
    });
    let schema_version = result.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(CopyReport { path: dest.to_path_buf(), bytes, schema_version, previous: None })
}

/// Replaces the database at `db` by the backup at `src`; refuses while a gateway holds `db`.
pub fn restore(db: &Path, src: &Path) -> Result<CopyReport> {
    let fail = |message: String| StoreError::Invalid(message);
    if !src.is_file() {
        return Err(fail(format!("there is no backup at {}", src.display())));
    }
    let schema_version = check_copy(src)?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("cannot create the state dir {}: {e}", parent.display())))?;
    }
    // Held until the restored database is closed: no gateway can start on it half-written.
    let lock = files::lock(db)?;
    let mut conn = Connection::open(db)?;
    let previous = if std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) > 0
        && conn.query_row("PRAGMA page_count", (), |r| r.get::<_, i64>(0))? > 0
    {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let kept = db.with_extension(format!("db.pre-restore-{secs}.bak"));
        files::create_private(&kept)
            .map_err(|e| fail(format!("cannot create {} to keep the current database: {e}", kept.display())))?;
        conn.execute("VACUUM INTO ?1", [kept.to_string_lossy()])?;
        Some(kept)
    } else {
        None
    };
    conn.restore(MAIN_DB, src, rusqlite::backup::NO_PROGRESS)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(()))?;
    drop(conn);
    drop(lock);
    files::make_private(db).map_err(|e| fail(format!("cannot make {} owner-only: {e}", db.display())))?;
    let bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    Ok(CopyReport { path: db.to_path_buf(), bytes, schema_version, previous })
}

/// One consistent copy of `db` into the new file `dest` (owner-only).
fn copy_into(db: &Path, dest: &Path) -> Result<()> {
    files::create_private(dest).map_err(|e| StoreError::Invalid(format!("cannot create {}: {e}", dest.display())))?;
    // Read-write (never creating): a read-only connection cannot read a WAL database whose
    // `-shm` it may not create. It takes no lock of the gateway's and writes nothing.
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut out = Connection::open(dest)?;
    {
        use rusqlite::backup::StepResult;
        let backup = rusqlite::backup::Backup::new(&src, &mut out)?;
        let mut waits = 0;
        loop {
            match backup.step(ALL_PAGES)? {
                StepResult::Done => break,
                // `More` cannot follow a step of all pages, but would only mean: go on.
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if waits < BUSY_WAITS => {
                    waits += 1;
                    std::thread::sleep(BUSY_PAUSE);
                }
                StepResult::Busy | StepResult::Locked => {
                    return Err(StoreError::Invalid(format!(
                        "the database stayed locked for {} s: try the backup again",
                        (BUSY_PAUSE * BUSY_WAITS).as_secs()
                    )));
                }
                other => return Err(StoreError::Invalid(format!("the backup stopped: {other:?}"))),
            }
        }
    }
    // A single file: the copy needs no `-wal` beside it to be complete.
    out.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// Checks a copy is an undamaged Pincer database this version can open; returns its version.
fn check_copy(path: &Path) -> Result<i64> {
    let bad = |why: String| StoreError::Invalid(format!("{} is not a usable Pincer backup: {why}", path.display()));
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| bad(e.to_string()))?;
    let check: String =
        conn.query_row("PRAGMA quick_check", (), |r| r.get(0)).map_err(|e| bad(format!("it cannot be read ({e})")))?;
    if check != "ok" {
        return Err(bad(format!("it is damaged (PRAGMA quick_check: {check})")));
    }
    let version = migrations::current_version(&conn).map_err(|e| bad(e.to_string()))?;
    if version == 0 {
        return Err(bad("it holds no Pincer schema (user_version 0)".into()));
    }
    if version > LATEST_VERSION {
        return Err(bad(format!(
            "it was written by a newer Pincer (schema v{version}; this one knows up to v{LATEST_VERSION}): restore it with that version"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn a_backup_is_a_complete_single_file_and_restore_brings_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pincer.db");
        let store = Store::open(&db).unwrap();
        store
            .write_blocking(|tx| {
                tx.conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);").map_err(Into::into)
            })
            .unwrap();
        let dest = dir.path().join("b.db");
        let report = backup(&db, &dest).unwrap();
        assert_eq!(report.schema_version, LATEST_VERSION);
        assert!(!dir.path().join("b.db-wal").exists());
        // Never over an existing file.
        let again = backup(&db, &dest).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");
        store.write_blocking(|tx| tx.conn.execute("INSERT INTO t VALUES (2)", ()).map_err(Into::into)).unwrap();
        store.close();
        let restored = restore(&db, &dest).unwrap();
        let kept = restored.previous.unwrap();
        let count = |p: &Path| {
            Connection::open(p).unwrap().query_row("SELECT count(*) FROM t", (), |r| r.get::<_, i64>(0)).unwrap()
        };
        assert_eq!((count(&db), count(&kept)), (1, 2));
    }

    #[test]
    fn restore_refuses_a_file_that_is_not_a_pincer_database_and_a_held_database() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"not a database at all, just some bytes").unwrap();
        let db = dir.path().join("pincer.db");
        let err = restore(&db, &junk).unwrap_err().to_string();
        assert!(err.contains("is not a usable Pincer backup"), "{err}");
        let empty = dir.path().join("empty.db");
        Connection::open(&empty).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
        let err = restore(&db, &empty).unwrap_err().to_string();
        assert!(err.contains("no Pincer schema"), "{err}");
        let newer = dir.path().join("newer.db");
        Connection::open(&newer).unwrap().pragma_update(None, "user_version", LATEST_VERSION + 1).unwrap();
        let err = restore(&db, &newer).unwrap_err().to_string();
        assert!(err.contains("newer Pincer"), "{err}");
        // Held by a gateway (the exclusive open a gateway does): refused, naming the holder.
        let good = dir.path().join("good.db");
        let held = Store::open_with(&db, crate::StoreOptions { exclusive: true, ..Default::default() }).unwrap();
        backup(&db, &good).unwrap();
        let err = restore(&db, &good).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        held.close();
        restore(&db, &good).unwrap();
    }
}
