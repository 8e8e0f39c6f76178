//! The start-up integrity check: a damaged database must stop the gateway, not start it on an
//! older state. SQLite itself is silent about two kinds of damage:
//!
//! - **A damaged write-ahead-log frame.** On open, SQLite replays `pincer.db-wal` up to the first
//!   frame whose checksum fails and drops the rest — correct for a torn tail (the last, never
//!   acknowledged transaction), but when committed transactions follow the damaged frame they are
//!   lost without a word: a delivered row is `sending` again, and comes back `unknown`. So the log
//!   is read before SQLite opens it (its format is documented at sqlite.org/fileformat2.html#wal):
//!   a frame that fails its checksum followed by two or more valid commit frames (or by one, when
//!   the damaged frame was itself a commit) cannot be a torn write, because each commit is synced
//!   before the next transaction writes, so only the last transaction can be torn.
//! - **A damaged database page.** Read only when a query touches it. `PRAGMA quick_check` reads
//!   every page once; it is stopped after [`QUICK_CHECK_BUDGET`] so a huge database still starts.
//!
//! Either refuses the open with what happened and what to do (the pre-migration backups next to
//! the database, truncating the log at the damage, `sqlite3 .recover`). The check never writes:
//! its connection does not checkpoint on close.
//!
//! Damage inside the last transaction of the log looks exactly like a torn write and is let
//! through, as SQLite does.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::{Result, StoreError};

/// How long `PRAGMA quick_check` may run at start-up before it is cut short (and the start goes
/// on, with a warning). It reads about 100 MB a second, so a typical state starts within tens of ms.
pub const QUICK_CHECK_BUDGET: Duration = Duration::from_secs(1);

/// Refuses a damaged database at `path` (see the module doc); a missing one passes.
pub(crate) fn check(path: &Path) -> Result<()> {
    let corrupt = |message: String| StoreError::Open { path: path.to_path_buf(), message };
    if let Some(damage) = scan_wal(&wal_path(path)).map_err(|e| corrupt(format!("cannot read its log: {e}")))? {
        return Err(corrupt(format!(
            "it is corrupted: {damage}. Pincer will not start on it, so nothing already sent or run is \
             silently forgotten. {}",
            wal_advice(path, &damage)
        )));
    }
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(());
    }
    match quick_check(path, QUICK_CHECK_BUDGET) {
        QuickCheck::Ok => Ok(()),
        QuickCheck::Damaged(found) => Err(corrupt(format!(
            "it is corrupted (PRAGMA quick_check: {found}). Pincer will not start on it. {}",
            repair_advice(path)
        ))),
        QuickCheck::TimedOut => {
            tracing::warn!(
                db = %path.display(),
                budget_secs = QUICK_CHECK_BUDGET.as_secs(),
                "store: the start-up integrity check was cut short (a large database); `pincer doctor` runs it in full"
            );
            Ok(())
        }
        // Not damage: the open that follows reports it (permissions, a lock, a full disk).
        QuickCheck::Failed(e) => {
            tracing::debug!(db = %path.display(), error = %e, "store: the start-up integrity check could not run");
            Ok(())
        }
    }
}

/// Whether `e` says the database file is damaged (rather than unreadable for another reason).
pub fn is_corruption(e: &StoreError) -> bool {
    match e {
        StoreError::Sqlite(e) => {
            matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
        }
        StoreError::Open { message, .. } => message.contains("corrupted"),
        _ => false,
    }
}

/// What to do about a damaged database at `path`: restore a backup (naming the ones next to it)
/// or salvage what is readable.
pub fn repair_advice(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let backups = backups(path);
    let restore = if backups.is_empty() {
        format!(
            "No backup was found next to it (Pincer writes {name}.pre-v<N>.bak before each schema upgrade); restore one of your own if you have it"
        )
    } else {
        format!(
            "Restore a backup: stop the gateway, keep a copy of the damaged files, then copy {} over {} and delete {name}-wal and {name}-shm",
            backups.iter().map(|b| b.display().to_string()).collect::<Vec<_>>().join(" or "),
            path.display()
        )
    };
    format!(
        "{restore}; or salvage what is readable with `sqlite3 {0} .recover | sqlite3 {0}.recovered` and move that into place.",
        path.display()
    )
}

/// The pre-migration backups next to the database (`pincer.db.pre-v<N>.bak`), newest schema first.
fn backups(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return Vec::new() };
    let prefix = format!("{}.pre-v", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    n.starts_with(&prefix) && n.ends_with(".bak")
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.reverse();
    found
}

fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// A damaged frame with committed transactions after it.
#[derive(Debug, PartialEq, Eq)]
struct WalDamage {
    /// The first damaged frame (0-based) and its byte offset in the log; `None` when the log's
    /// header itself is damaged.
    frame: Option<(u64, u64)>,
    /// Committed transactions SQLite would drop: the valid commit frames after the damage, and
    /// the damaged frame's own transaction when it was a commit.
    lost: u64,
    wal: PathBuf,
}

impl std::fmt::Display for WalDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.frame {
            Some((i, offset)) => write!(
                f,
                "its write-ahead log {} has a damaged frame (frame {}, at byte {offset}) with committed transactions after it: SQLite would silently drop {} committed transaction{}",
                self.wal.display(),
                i + 1,
                self.lost,
                if self.lost == 1 { "" } else { "s" }
            ),
            None => write!(
                f,
                "the header of its write-ahead log {} is damaged, so SQLite would ignore the {} committed transaction{} in it",
                self.wal.display(),
                self.lost,
                if self.lost == 1 { "" } else { "s" }
            ),
        }
    }
}

fn wal_advice(path: &Path, damage: &WalDamage) -> String {
    let accept = match damage.frame {
        Some((_, offset)) => format!(
            "To start from the state before the damage instead (losing those transactions, as SQLite would), cut the log there: `truncate -s {offset} {}`",
            damage.wal.display()
        ),
        None => format!(
            "To start from the state before the log instead (losing those transactions), move {} aside",
            damage.wal.display()
        ),
    };
    format!("Keep a copy of the database and its -wal file first. {accept}. {}", repair_advice(path))
}

const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
fn checksum(data: &[u8], big_endian: bool, mut s: (u32, u32)) -> (u32, u32) {
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let b = [b[0], b[1], b[2], b[3]];
            if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        };
        s.0 = s.0.wrapping_add(word(&pair[..4])).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(word(&pair[4..])).wrapping_add(s.0);
    }
    s
}

/// Reads the log at `wal` frame by frame; `Some` when committed transactions follow damage.
fn scan_wal(wal: &Path) -> std::io::Result<Option<WalDamage>> {
    let file = match std::fs::File::open(wal) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut r = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut header = [0u8; WAL_HEADER];
    if read_full(&mut r, &mut header)? < WAL_HEADER {
        return Ok(None);
    }
    let magic = be32(&header[0..4]);
    let page_size = match be32(&header[8..12]) {
        1 => 65_536,
        n => n as usize,
    };
    let sizes_ok = (512..=65_536).contains(&page_size) && page_size.is_power_of_two();
    if !sizes_ok {
        // Without a page size the frames cannot be found; SQLite ignores such a log too. Damage
        // here is rare (the header is synced before any frame); the quick check still runs.
        return Ok(None);
    }
    let salts = [header[16..20].to_vec(), header[20..24].to_vec()].concat();
    let stored = (be32(&header[24..28]), be32(&header[28..32]));
    let header_ok = (magic == 0x377f_0682 || magic == 0x377f_0683)
        && be32(&header[4..8]) == 3_007_000
        && checksum(&header[..24], magic & 1 == 1, (0, 0)) == stored;
    // A damaged magic number hides the byte order: take the usual one (little-endian words).
    let big_endian = if header_ok { magic & 1 == 1 } else { magic == 0x377f_0683 };

    let mut frame = vec![0u8; FRAME_HEADER + page_size];
    let mut seed = stored;
    let (mut first_bad, mut bad_was_commit, mut commits_after, mut commits) = (None, false, 0u64, 0u64);
    let mut index = 0u64;
    while read_full(&mut r, &mut frame)? == frame.len() {
        let (pgno, commit_size) = (be32(&frame[0..4]), be32(&frame[4..8]));
        let own = frame[8..16] == salts[..];
        let mut s = checksum(&frame[..8], big_endian, seed);
        s = checksum(&frame[FRAME_HEADER..], big_endian, s);
        let frame_stored = (be32(&frame[16..20]), be32(&frame[20..24]));
        let valid = own && pgno != 0 && s == frame_stored;
        // The next frame's checksum continues from this one's as written, damaged or not.
        seed = frame_stored;
        match first_bad {
            None if valid => commits += u64::from(commit_size != 0),
            None => {
                first_bad = Some(index);
                bad_was_commit = own && commit_size != 0;
            }
            Some(_) => commits_after += u64::from(valid && commit_size != 0),
        }
        index += 1;
    }
    // Another process writing this database (a tool reading a live gateway's store) may have
    // restarted the log while it was read: new frames over old ones look like damage, but the
    // header was rewritten first. Not damage, then.
    let mut again = [0u8; WAL_HEADER];
    let reread = std::fs::File::open(wal).and_then(|mut f| read_full(&mut f, &mut again));
    if first_bad.is_some() && (reread.ok() != Some(WAL_HEADER) || again != header) {
        return Ok(None);
    }
    let wal = wal.to_path_buf();
    if !header_ok {
        // Every frame is measured against the header's salts and checksum as they stand.
        let lost = commits + commits_after;
        return Ok((lost > 0).then_some(WalDamage { frame: None, lost, wal }));
    }
    Ok(match first_bad {
        Some(i) if commits_after >= 2 || (commits_after == 1 && bad_was_commit) => Some(WalDamage {
            frame: Some((i, (WAL_HEADER + i as usize * frame.len()) as u64)),
            lost: commits_after + u64::from(bad_was_commit),
            wal,
        }),
        _ => None,
    })
}

/// Fills `buf` as far as the reader allows; the bytes read (short only at the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum QuickCheck {
    Ok,
    Damaged(String),
    TimedOut,
    Failed(rusqlite::Error),
}

/// `PRAGMA quick_check` on its own connection, interrupted after `budget`.
fn quick_check(path: &Path, budget: Duration) -> QuickCheck {
    let conn =
        match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX) {
            Ok(c) => c,
            Err(e) => return QuickCheck::Failed(e),
        };
    // Checking must not change the files: no checkpoint when this connection closes.
    let _ = conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        use std::sync::mpsc::RecvTimeoutError::Timeout;
        if finished.recv_timeout(budget) == Err(Timeout) {
            // An interrupt that lands before the statement starts stepping is a no-op in SQLite
            // (a loaded machine can take longer than the budget to prepare), so repeat it until
            // the check has ended.
            loop {
                interrupt.interrupt();
                if finished.recv_timeout(Duration::from_millis(5)) != Err(Timeout) {
                    break;
                }
            }
        }
    });
    let rows = conn
        .prepare("PRAGMA quick_check(20)")
        .and_then(|mut stmt| stmt.query_map((), |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<String>>>());
    let _ = done.send(());
    let _ = timer.join();
    match rows {
        Ok(rows) if rows == ["ok"] => QuickCheck::Ok,
        Ok(rows) => QuickCheck::Damaged(rows.join("; ")),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => QuickCheck::TimedOut,
        Err(e) if matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)) => {
            QuickCheck::Damaged(e.to_string())
        }
        Err(e) => QuickCheck::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with `commits` transactions in its log (never checkpointed), copied while the
    /// writer is still open — the files a `kill -9` leaves. Returns the copy's path.
    fn killed_with_log(dir: &Path, commits: usize) -> PathBuf {
        let live = dir.join("live.db");
        let conn = Connection::open(&live).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE outbox (id INTEGER PRIMARY KEY, state TEXT NOT NULL)").unwrap();
        // Checkpoint the schema so the log holds only the deliveries.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(())).unwrap();
        for i in 0..commits {
            conn.execute("INSERT INTO outbox (id, state) VALUES (?1, 'sending')", [i as i64]).unwrap();
            conn.execute("UPDATE outbox SET state = 'delivered' WHERE id = ?1", [i as i64]).unwrap();
        }
        let copy = dir.join("pincer.db");
        std::fs::copy(&live, &copy).unwrap();
        std::fs::copy(wal_path(&live), wal_path(&copy)).unwrap();
        drop(conn);
        copy
    }

    fn states(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT state FROM outbox ORDER BY id").unwrap();
        stmt.query_map((), |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    fn frame_len(path: &Path) -> u64 {
        let header = std::fs::read(wal_path(path)).unwrap();
        FRAME_HEADER as u64 + u64::from(be32(&header[8..12]))
    }

    /// Flips one byte of frame `i`'s page (or header, `at` < 24) in the log.
    fn damage_frame(path: &Path, i: u64, at: u64) {
        let wal = wal_path(path);
        let mut bytes = std::fs::read(&wal).unwrap();
        let offset = (WAL_HEADER as u64 + i * frame_len(path) + at) as usize;
        bytes[offset] ^= 0x5a;
        std::fs::write(&wal, bytes).unwrap();
    }

    fn open_error(path: &Path) -> String {
        match crate::Store::open(path) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn an_intact_log_after_a_kill_opens() {
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_log(dir.path(), 5);
        assert_eq!(scan_wal(&wal_path(&db)).unwrap(), None);
        check(&db).unwrap();
        assert_eq!(states(&db), vec!["delivered"; 5]);
    }

    #[test]
    fn a_damaged_frame_with_commits_after_it_is_refused_instead_of_reverting_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_log(dir.path(), 5);
        damage_frame(&db, 0, FRAME_HEADER as u64 + 100);
        // What SQLite alone makes of it: the log is cut at the damage, every delivery forgotten.
        let plain = dir.path().join("plain.db");
        std::fs::copy(&db, &plain).unwrap();
        std::fs::copy(wal_path(&db), wal_path(&plain)).unwrap();
        assert_eq!(states(&plain), Vec::<String>::new(), "SQLite should have dropped the log silently");

        let len = frame_len(&db);
        let err = open_error(&db);
        assert!(err.contains("it is corrupted") && err.contains("has a damaged frame (frame 1, at byte 32)"), "{err}");
        assert!(err.contains("SQLite would silently drop 10 committed transactions"), "{err}");
        assert!(err.contains(&format!("truncate -s 32 {}", wal_path(&db).display())), "{err}");
        assert!(err.contains("No backup was found next to it") && err.contains(".recover"), "{err}");
        // The check changed nothing: the damage is still there for whoever repairs it.
        assert!(scan_wal(&wal_path(&db)).unwrap().is_some());
        assert!(std::fs::metadata(wal_path(&db)).unwrap().len() >= 10 * len);
    }

    #[test]
    fn a_damaged_commit_frame_with_one_commit_after_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_log(dir.path(), 1);
        // Two transactions (insert, update), one frame each: damage the first commit frame.
        let damage = scan_damaged(&db, 0, FRAME_HEADER as u64 + 8);
        assert_eq!(damage.map(|d| (d.frame, d.lost)), Some((Some((0, 32)), 2)));
    }

    fn scan_damaged(db: &Path, i: u64, at: u64) -> Option<WalDamage> {
        damage_frame(db, i, at);
        scan_wal(&wal_path(db)).unwrap()
    }

    #[test]
    fn damage_in_the_last_transaction_is_a_torn_write_and_opens() {
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_log(dir.path(), 3);
        let frames = std::fs::metadata(wal_path(&db)).unwrap().len().saturating_sub(WAL_HEADER as u64) / frame_len(&db);
        // The last frame (the last commit) damaged: nothing committed follows it.
        assert_eq!(scan_damaged(&db, frames - 1, FRAME_HEADER as u64 + 50), None);
        check(&db).unwrap();
        // A half-written last frame: the log simply ends early.
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_log(dir.path(), 3);
        let wal = wal_path(&db);
        let len = std::fs::metadata(&wal).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&wal).unwrap().set_len(len - 1000).unwrap();
        assert_eq!(scan_wal(&wal).unwrap(), None);
    }

    #[test]
    fn a_damaged_log_header_with_commits_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = killed_with_log(dir.path(), 2);
        let wal = wal_path(&db);
        let mut bytes = std::fs::read(&wal).unwrap();
        bytes[13] ^= 0x01; // the checkpoint sequence number, under the header checksum
        std::fs::write(&wal, bytes).unwrap();
        let err = open_error(&db);
        assert!(err.contains("the header of its write-ahead log") && err.contains("4 committed transactions"), "{err}");
        assert!(err.contains("move") && err.contains("aside"), "{err}");
    }

    #[test]
    fn a_damaged_page_is_refused_naming_the_backups() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pincer.db");
        {
            let store = crate::Store::open(&db).unwrap();
            store.close();
        }
        let conn = Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(())).unwrap();
        let root: i64 =
            conn.query_row("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'", (), |r| r.get(0)).unwrap();
        let page_size: i64 = conn.query_row("PRAGMA page_size", (), |r| r.get(0)).unwrap();
        drop(conn);
        std::fs::write(dir.path().join("pincer.db.pre-v6.bak"), b"backup").unwrap();
        let mut bytes = std::fs::read(&db).unwrap();
        let page = ((root - 1) * page_size) as usize;
        bytes[page] = 0x42; // not a b-tree page type
        std::fs::write(&db, bytes).unwrap();
        let err = open_error(&db);
        assert!(err.contains("it is corrupted (PRAGMA quick_check:"), "{err}");
        assert!(
            err.contains(&format!("copy {} over {}", dir.path().join("pincer.db.pre-v6.bak").display(), db.display())),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_file_header_is_refused_and_doctor_can_tell_corruption_apart() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pincer.db");
        crate::Store::open(&db).unwrap().close();
        let conn = Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(())).unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&db).unwrap();
        bytes[..16].copy_from_slice(b"not a database!\0");
        std::fs::write(&db, bytes).unwrap();
        let err = open_error(&db);
        assert!(err.contains("it is corrupted (PRAGMA quick_check: file is not a database)"), "{err}");
        let conn = Connection::open(&db).unwrap();
        let e = StoreError::from(conn.query_row("PRAGMA quick_check", (), |r| r.get::<_, String>(0)).unwrap_err());
        assert!(is_corruption(&e), "{e}");
        assert!(!is_corruption(&StoreError::Closed));
    }

    #[test]
    fn the_quick_check_is_cut_short_by_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pincer.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x TEXT NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
             INSERT INTO t SELECT printf('%0100d', i) FROM n;",
        )
        .unwrap();
        drop(conn);
        assert!(matches!(quick_check(&db, Duration::from_millis(1)), QuickCheck::TimedOut));
        assert!(matches!(quick_check(&db, Duration::from_secs(60)), QuickCheck::Ok));
    }

    #[test]
    fn a_missing_or_new_database_passes() {
        let dir = tempfile::tempdir().unwrap();
        check(&dir.path().join("none.db")).unwrap();
        std::fs::write(dir.path().join("empty.db"), b"").unwrap();
        check(&dir.path().join("empty.db")).unwrap();
    }
}
