//! The one writer: a thread that drains the write queue in batches, one transaction per batch
//! (group commit) and a savepoint per request, and answers every caller with what is durable.
//!
//! A request's own error rolls back only its savepoint. Some storage errors (a full disk, an I/O
//! error) make SQLite roll back the whole transaction instead: then nothing the batch did so far
//! is saved, those callers are told so, and the requests not yet run get a fresh transaction. A
//! commit hook refuses every commit except the writer's own `COMMIT`, so no statement can commit
//! on its own in autocommit mode after such a rollback. When `COMMIT` fails, every caller of the
//! batch gets the error.
//!
//! The writer also keeps the store's write health: the storage failure and since when, cleared
//! by the next commit that wrote something.
//!
//! A request is [`Durability::Full`] (the default) or [`Durability::Relaxed`]. A batch made only
//! of relaxed requests commits with `PRAGMA synchronous=NORMAL`: its WAL frames are written to the
//! operating system but not fsynced, so it survives a `kill -9` of the gateway but not a power
//! loss — until the next full commit, whose fsync of the WAL covers every frame before it. A
//! batch holding any full request commits with `synchronous=FULL`, so grouping never weakens a
//! full request.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use pincer_core::SharedClock;
use rusqlite::{Connection, ErrorCode};
use serde::Serialize;

use crate::{Result, StoreError, Tx};

/// Most write requests committed in one transaction.
const MAX_BATCH: usize = 256;

pub(crate) type Job = Box<dyn Request>;

/// How durable a write is when its caller is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Committed and fsynced (`synchronous=FULL`): survives a power loss.
    Full,
    /// Committed to the WAL without an fsync (`synchronous=NORMAL`): survives a `kill -9` of the
    /// gateway; a power loss may lose it until the next [`Durability::Full`] commit, which makes
    /// it durable too.
    Relaxed,
}

impl Durability {
    /// The `PRAGMA synchronous` value that gives this durability in WAL mode.
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "PRAGMA synchronous = FULL",
            Durability::Relaxed => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// A queued write: runs inside the writer's transaction and answers its caller once the
/// transaction's outcome is known.
pub(crate) trait Request: Send {
    /// How durable its commit must be; a batch is as durable as its most demanding request.
    fn durability(&self) -> Durability;
    /// Runs in its own savepoint; the answer waits for the commit.
    fn run(self: Box<Self>, conn: &Connection, dir: &Path) -> Box<dyn Answer>;
    /// Answers without running: no transaction could begin.
    fn refuse(self: Box<Self>, err: StoreError);
}

/// A request that ran, holding its result until its transaction committed or was rolled back.
pub(crate) trait Answer: Send {
    fn error(&self) -> Option<&StoreError>;
    /// Its transaction committed: the caller gets its result.
    fn deliver(self: Box<Self>);
    /// Its transaction was rolled back, so nothing of it was saved: the caller gets its own
    /// error if it failed anyway, else `err`.
    fn fail(self: Box<Self>, err: StoreError);
}

pub(crate) enum Reply<R> {
    Async(tokio::sync::oneshot::Sender<Result<R>>),
    Blocking(mpsc::Sender<Result<R>>),
}

impl<R> Reply<R> {
    fn send(self, result: Result<R>) {
        // A caller that stopped waiting does not change what was committed.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

pub(crate) struct Pending<R, F> {
    pub f: F,
    pub reply: Reply<R>,
    pub durability: Durability,
}

impl<R, F> Request for Pending<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Tx<'_>) -> Result<R> + Send + 'static,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(self: Box<Self>, conn: &Connection, dir: &Path) -> Box<dyn Answer> {
        let Pending { f, reply, .. } = *self;
        Box::new(Done { result: run_in_savepoint(conn, dir, f), reply })
    }

    fn refuse(self: Box<Self>, err: StoreError) {
        self.reply.send(Err(err));
    }
}

struct Done<R> {
    result: Result<R>,
    reply: Reply<R>,
}

impl<R: Send> Answer for Done<R> {
    fn error(&self) -> Option<&StoreError> {
        self.result.as_ref().err()
    }

    fn deliver(self: Box<Self>) {
        self.reply.send(self.result);
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let result = match self.result {
            Err(own) => Err(own),
            Ok(_) => Err(err),
        };
        self.reply.send(result);
    }
}

fn run_in_savepoint<R>(conn: &Connection, dir: &Path, f: impl FnOnce(&Tx<'_>) -> Result<R>) -> Result<R> {
    run_cached(conn, "SAVEPOINT job").map_err(|e| classify(conn, dir, e.into()))?;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(&Tx { conn })))
        .unwrap_or_else(|_| Err(StoreError::Invalid("a store write panicked; its changes were rolled back".into())))
        .map_err(|e| classify(conn, dir, e));
    if conn.is_autocommit() {
        // SQLite rolled back the whole transaction (a full disk, an I/O error): there is no
        // savepoint left to undo or release, and nothing of this request was saved — even if it
        // carried on past the error and returned `Ok`.
        return Err(result.err().unwrap_or_else(|| {
            StoreError::NotSaved("SQLite rolled back the transaction after a storage error".into())
        }));
    }
    let end = if result.is_err() {
        conn.execute_batch("ROLLBACK TO job; RELEASE job")
    } else {
        run_cached(conn, "RELEASE job")
    };
    if let Err(e) = end {
        // Committing the batch now could save half of this request: give up the transaction.
        tracing::error!(error = %e, "store: cannot end a write's savepoint; rolling back its batch");
        let _ = conn.execute_batch("ROLLBACK");
        return Err(result.err().unwrap_or_else(|| classify(conn, dir, e.into())));
    }
    result
}

/// Runs one statement of the writer's own (`SAVEPOINT`, `RELEASE`, `BEGIN`, `COMMIT`) from the
/// statement cache: each runs once or twice per write, and parsing it again each time showed in
/// the outbox's profile.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// A full disk becomes [`StoreError::DiskFull`], however SQLite reported it.
fn classify(conn: &Connection, dir: &Path, err: StoreError) -> StoreError {
    let full = match &err {
        StoreError::Sqlite(e) => match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => true,
            // ENOSPC or a quota from fsync or ftruncate arrives as an I/O error.
            Some(ErrorCode::SystemIoFailure) => {
                // SAFETY: the handle is this thread's open connection; sqlite3_system_errno only
                // reads the errno SQLite saved with its last error.
                let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
                matches!(
                    std::io::Error::from_raw_os_error(errno).kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            }
            _ => false,
        },
        _ => false,
    };
    if full { StoreError::DiskFull { dir: dir.to_path_buf() } } else { err }
}

/// Why the store cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteFailureKind {
    /// The filesystem holding the database is full (or over quota).
    DiskFull,
    /// The database or its directory cannot be written (permissions, a read-only mount).
    ReadOnly,
    /// The disk reported an I/O error.
    Io,
    /// SQLite found the database file damaged.
    Corrupt,
    /// Another process holds SQLite's write lock.
    Locked,
    Other,
}

impl WriteFailureKind {
    /// The wire spelling (`health`'s `pincer.store.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            WriteFailureKind::DiskFull => "disk-full",
            WriteFailureKind::ReadOnly => "read-only",
            WriteFailureKind::Io => "io",
            WriteFailureKind::Corrupt => "corrupt",
            WriteFailureKind::Locked => "locked",
            WriteFailureKind::Other => "other",
        }
    }

    /// The storage failure behind `err`; `None` for a request's own error (bad input, a
    /// constraint), which says nothing about whether the store can write.
    fn of(err: &StoreError) -> Option<WriteFailureKind> {
        match err {
            StoreError::DiskFull { .. } => Some(WriteFailureKind::DiskFull),
            StoreError::NotSaved(_) => Some(WriteFailureKind::Other),
            StoreError::Sqlite(e) => match e.sqlite_error_code()? {
                ErrorCode::DiskFull => Some(WriteFailureKind::DiskFull),
                ErrorCode::ReadOnly => Some(WriteFailureKind::ReadOnly),
                ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => Some(WriteFailureKind::Io),
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Some(WriteFailureKind::Corrupt),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(WriteFailureKind::Locked),
                ErrorCode::OutOfMemory => Some(WriteFailureKind::Other),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The store cannot write: what failed, since when, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFailure {
    pub kind: WriteFailureKind,
    /// The latest error callers were given.
    pub error: String,
    /// The first failure of this kind, on the store's clock.
    pub since_ms: i64,
    pub last_ms: i64,
    /// Write requests refused or rolled back since `since_ms`, the store's own probes included.
    pub failed_writes: u64,
    /// What the user should do.
    pub fix: String,
}

/// The writer's view of whether writes succeed, shared with every [`crate::Store`] handle.
pub(crate) struct Health {
    failing: Mutex<Option<WriteFailure>>,
    /// Transactions committed since the store was opened.
    pub(crate) commits: std::sync::atomic::AtomicU64,
    clock: SharedClock,
    db: PathBuf,
    dir: PathBuf,
}

impl Health {
    pub(crate) fn new(clock: SharedClock, db: &Path) -> Health {
        let dir = db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        Health { failing: Mutex::new(None), commits: Default::default(), clock, db: db.to_path_buf(), dir }
    }

    pub(crate) fn get(&self) -> Option<WriteFailure> {
        self.failing.lock().expect("write health").clone()
    }

    fn failed(&self, kind: WriteFailureKind, err: &StoreError, writes: usize) {
        let now = self.clock.now_ms();
        let mut failing = self.failing.lock().expect("write health");
        match failing.as_mut() {
            Some(f) if f.kind == kind => {
                f.last_ms = now;
                f.failed_writes += writes as u64;
                f.error = err.to_string();
            }
            _ => {
                tracing::error!(error = %err, kind = ?kind, "store: writes are failing; health and /readyz report it until a write succeeds");
                *failing = Some(WriteFailure {
                    kind,
                    error: err.to_string(),
                    since_ms: now,
                    last_ms: now,
                    failed_writes: writes as u64,
                    fix: self.fix(kind),
                });
            }
        }
    }

    fn succeeded(&self) {
        if let Some(f) = self.failing.lock().expect("write health").take() {
            let after_ms = self.clock.now_ms() - f.since_ms;
            tracing::info!(after_ms, failed_writes = f.failed_writes, "store: writes succeed again");
        }
    }

    fn fix(&self, kind: WriteFailureKind) -> String {
        let (db, dir) = (self.db.display(), self.dir.display());
        match kind {
            WriteFailureKind::DiskFull => format!(
                "free space on the filesystem holding {dir} (`df -h {dir}`); writes resume by themselves, no restart needed"
            ),
            WriteFailureKind::ReadOnly => format!(
                "let the gateway's user write {db} and {dir}, and check that the filesystem is not mounted read-only"
            ),
            WriteFailureKind::Io => {
                format!(
                    "check the disk holding {dir} (`dmesg` shows I/O errors); writes resume by themselves once it works"
                )
            }
            WriteFailureKind::Corrupt => {
                format!("stop the gateway and restore {db} from a backup (such as {db}.pre-v*.bak)")
            }
            WriteFailureKind::Locked => {
                format!(
                    "another process holds SQLite's write lock on {db}: close it (a `sqlite3` shell, a backup tool)"
                )
            }
            WriteFailureKind::Other => "see the gateway log for the error".into(),
        }
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    conn: Connection,
    dir: PathBuf,
    health: Arc<Health>,
    /// Set only around the writer's own `COMMIT`; the commit hook refuses every other commit.
    may_commit: Arc<AtomicBool>,
    /// The database's exclusive lock (see `files.rs`), released when the writer's connection is
    /// closed: it lives exactly as long as the connection that writes.
    lock: Option<std::fs::File>,
    /// The connection's `synchronous` setting now (`configure` opens it at `FULL`).
    synchronous: std::cell::Cell<Durability>,
}

impl Writer {
    pub(crate) fn new(
        mut conn: Connection,
        health: Arc<Health>,
        lock: Option<std::fs::File>,
    ) -> rusqlite::Result<Writer> {
        let may_commit = Arc::new(AtomicBool::new(false));
        let allowed = may_commit.clone();
        // Returning true turns the commit into a rollback: a statement left outside the batch's
        // transaction fails instead of committing alone.
        conn.commit_hook(Some(move || !allowed.load(Ordering::Acquire)))?;
        let dir = health.dir.clone();
        Ok(Writer { conn, dir, health, may_commit, lock, synchronous: std::cell::Cell::new(Durability::Full) })
    }

    /// Drains the queue until every sender is gone, then checkpoints so the database file alone
    /// holds everything, closes the connection and releases the lock.
    pub(crate) fn run(self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = VecDeque::from([first]);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push_back(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
        self.checkpoint();
        let Writer { conn, lock, .. } = self;
        if let Err((_, e)) = conn.close() {
            tracing::warn!(error = %e, "store: closing the writer's connection failed");
        }
        // Only now, with the connection closed (closing the lock's descriptor earlier would drop
        // SQLite's own locks on the file): another gateway may open the database.
        drop(lock);
    }

    /// Runs `queue` in one transaction — or, when SQLite rolls a transaction back under it, in
    /// as many as needed — and answers every request.
    fn commit_batch(&self, mut queue: VecDeque<Job>) {
        while !queue.is_empty() {
            let durability = if queue.iter().all(|job| job.durability() == Durability::Relaxed) {
                Durability::Relaxed
            } else {
                Durability::Full
            };
            if durability != self.synchronous.get() {
                match run_cached(&self.conn, durability.pragma()) {
                    Ok(()) => self.synchronous.set(durability),
                    // Still at the old setting: a relaxed batch committed with FULL is only slower,
                    // but a full batch must not commit relaxed.
                    Err(e) if durability == Durability::Full => {
                        let err = classify(&self.conn, &self.dir, e.into());
                        tracing::error!(error = %err, "store: cannot make the next commit durable (PRAGMA synchronous)");
                        self.health.failed(WriteFailureKind::Other, &err, queue.len());
                        for job in queue.drain(..) {
                            job.refuse(self.echo(&err));
                        }
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "store: cannot relax the next commit; it is fsynced"),
                }
            }
            if let Err(e) = run_cached(&self.conn, "BEGIN IMMEDIATE") {
                let err = classify(&self.conn, &self.dir, e.into());
                tracing::error!(error = %err, "store: cannot begin a write transaction");
                self.health.failed(WriteFailureKind::of(&err).unwrap_or(WriteFailureKind::Other), &err, queue.len());
                for job in queue.drain(..) {
                    job.refuse(self.echo(&err));
                }
                return;
            }
            let changes_before = self.conn.total_changes();
            let mut answers = Vec::with_capacity(queue.len());
            let mut failure = None;
            let mut lost = false;
            while let Some(job) = queue.pop_front() {
                let answer = job.run(&self.conn, &self.dir);
                if let Some(err) = answer.error()
                    && let Some(kind) = WriteFailureKind::of(err)
                {
                    failure.get_or_insert((kind, self.echo(err)));
                }
                answers.push(answer);
                if self.conn.is_autocommit() {
                    lost = true;
                    break;
                }
            }
            if lost {
                // Nothing this transaction did is saved; the requests not yet run get a new one.
                let (kind, err) = failure.unwrap_or_else(|| {
                    (WriteFailureKind::Other, StoreError::NotSaved("SQLite rolled back the transaction".into()))
                });
                tracing::warn!(error = %err, rolled_back = answers.len(), still_queued = queue.len(), "store: SQLite rolled back a write transaction");
                self.health.failed(kind, &err, answers.len());
                for answer in answers {
                    answer.fail(self.echo(&err));
                }
                continue;
            }
            let wrote = self.conn.total_changes() > changes_before;
            self.may_commit.store(true, Ordering::Release);
            let committed = run_cached(&self.conn, "COMMIT");
            self.may_commit.store(false, Ordering::Release);
            match committed {
                Ok(()) => {
                    self.health.commits.fetch_add(1, Ordering::Relaxed);
                    match failure {
                        Some((kind, err)) => self.health.failed(kind, &err, 1),
                        None if wrote => self.health.succeeded(),
                        None => {}
                    }
                    answers.into_iter().for_each(|a| a.deliver());
                }
                Err(e) => {
                    // A failed COMMIT usually rolls back by itself; if the transaction is still
                    // open (a busy checkpoint), end it so nothing of it can commit later.
                    if !self.conn.is_autocommit() {
                        let _ = self.conn.execute_batch("ROLLBACK");
                    }
                    let err = classify(&self.conn, &self.dir, e.into());
                    tracing::error!(error = %err, requests = answers.len(), "store: commit failed; the batch was rolled back");
                    self.health.failed(
                        WriteFailureKind::of(&err).unwrap_or(WriteFailureKind::Other),
                        &err,
                        answers.len(),
                    );
                    for answer in answers {
                        answer.fail(self.echo(&err));
                    }
                }
            }
            return;
        }
    }

    /// The same failure again, for another caller (errors are not `Clone`).
    fn echo(&self, err: &StoreError) -> StoreError {
        match err {
            StoreError::DiskFull { dir } => StoreError::DiskFull { dir: dir.clone() },
            StoreError::NotSaved(message) => StoreError::NotSaved(message.clone()),
            other => StoreError::NotSaved(other.to_string()),
        }
    }

    /// On a clean stop, moves the WAL into the database file and empties it, so a copy of
    /// `pincer.db` alone is complete.
    fn checkpoint(&self) {
        let result = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match result {
            Ok((0, _, _)) => tracing::debug!("store: checkpointed at stop; the database file is complete"),
            Ok((_, wal_frames, moved)) => tracing::warn!(
                wal_frames,
                moved,
                "store: a read was still running at stop, so the WAL was not fully checkpointed; SQLite finishes it at the next open"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "store: checkpoint at stop failed; the latest writes stay in the WAL until the next open")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use pincer_core::FakeClock;

    use super::WriteFailureKind;
    use crate::{Store, StoreError, StoreOptions};

    #[test]
    fn write_failure_kinds_are_spelled_as_serde_writes_them() {
        use WriteFailureKind::*;
        for kind in [DiskFull, ReadOnly, Io, Corrupt, Locked, Other] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str(), "{kind:?}");
        }
    }

    fn open(dir: &std::path::Path, clock: &FakeClock) -> Store {
        let options = StoreOptions { clock: clock.shared(), ..StoreOptions::default() };
        Store::open_with(&dir.join("pincer.db"), options).unwrap()
    }

    /// Caps the database at its current size plus `spare` pages on the writer's connection, so a
    /// large write fails with SQLITE_FULL.
    fn cap_pages(store: &Store, spare: i64) {
        store
            .write_blocking(move |tx| {
                let pages: i64 = tx.conn().query_row("PRAGMA page_count", (), |r| r.get(0))?;
                let cap: i64 =
                    tx.conn().query_row(&format!("PRAGMA max_page_count = {}", pages + spare), (), |r| r.get(0))?;
                assert_eq!(cap, pages + spare);
                Ok(())
            })
            .unwrap();
    }

    fn key_present(store: &Store, key: &str) -> bool {
        let key = key.to_string();
        store.read_blocking(move |rd| rd.meta_get(&key)).unwrap().is_some()
    }

    /// A caller's answer, short: `ok`, or the kind of error.
    fn answer(result: &Result<(), StoreError>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(StoreError::DiskFull { .. }) => "disk full",
            Err(StoreError::NotSaved(_)) => "not saved",
            Err(StoreError::Closed) => "store has shut down",
            Err(_) => "other error",
        }
    }

    /// One batch: `small-1`, the request that overflows the disk, `small-2`, `small-3` — queued
    /// while the writer is held, so they share one transaction. Every caller's answer must match
    /// what is in the database afterwards, and no storage error may let a request commit alone.
    #[test]
    fn a_write_that_fills_the_disk_mid_batch_answers_every_caller_with_what_is_durable() {
        // SQLite rolls the whole transaction back on SQLITE_FULL unless the statement has a
        // statement journal (a multi-row insert has one; a single-row insert does not).
        let overflows = [
            ("one-row insert", "INSERT INTO meta(key, value) VALUES ('big', printf('%.*c', 400000, 'x'))"),
            (
                "multi-row insert",
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
                 INSERT INTO meta(key, value) SELECT 'big' || i, printf('%.*c', 4000, 'x') FROM n",
            ),
        ];
        let mut table = String::new();
        for (shape, sql) in overflows {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), &FakeClock::new(1_000));
            store.write_blocking(|tx| tx.meta_set("before", "1")).unwrap();
            cap_pages(&store, 8);

            // Hold the writer so the next four requests queue up into one batch.
            let (held_tx, held_rx) = std_mpsc::channel::<()>();
            let (release_tx, release_rx) = std_mpsc::channel::<()>();
            let gate = store.write(move |_| {
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            });
            held_rx.recv().unwrap();
            let insert = |key: &'static str| {
                move |tx: &crate::Tx<'_>| -> crate::Result<()> {
                    tx.conn().execute("INSERT INTO meta(key, value) VALUES (?1, 'v')", [key])?;
                    Ok(())
                }
            };
            let sql = sql.to_string();
            type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = crate::Result<()>> + Send>>;
            let requests: Vec<(&str, Answer)> = vec![
                ("small-1", Box::pin(store.write(insert("small-1")))),
                (
                    "overflow",
                    Box::pin(store.write(move |tx: &crate::Tx<'_>| {
                        tx.conn().execute_batch(&sql)?;
                        Ok(())
                    })),
                ),
                ("small-2", Box::pin(store.write(insert("small-2")))),
                ("small-3", Box::pin(store.write(insert("small-3")))),
            ];
            release_tx.send(()).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(gate).unwrap();
            for (key, request) in requests {
                let result = rt.block_on(request);
                let durable = if key == "overflow" {
                    key_present(&store, "big") || key_present(&store, "big1")
                } else {
                    key_present(&store, key)
                };
                assert_eq!(result.is_ok(), durable, "{shape}: {key} answered {result:?} but durable = {durable}");
                table += &format!("{shape:<17} {key:<9} {}\n", answer(&result));
            }
            assert!(key_present(&store, "before"));
        }
        expect_test::expect![[r#"
            one-row insert    small-1   disk full
            one-row insert    overflow  disk full
            one-row insert    small-2   ok
            one-row insert    small-3   ok
            multi-row insert  small-1   ok
            multi-row insert  overflow  disk full
            multi-row insert  small-2   ok
            multi-row insert  small-3   ok
        "#]]
        .assert_eq(&table);
    }

    /// A statement that finds the batch's transaction gone must fail, not commit on its own.
    #[test]
    fn a_write_that_carries_on_after_its_transaction_was_rolled_back_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &FakeClock::new(1_000));
        cap_pages(&store, 8);
        let result = store.write_blocking(|tx| {
            // Swallows SQLITE_FULL (which rolled the transaction back), then writes again.
            let _ = tx.conn().execute_batch("INSERT INTO meta(key, value) VALUES ('big', printf('%.*c', 400000, 'x'))");
            tx.conn().execute("INSERT INTO meta(key, value) VALUES ('after', 'v')", ())?;
            Ok(())
        });
        assert!(result.is_err(), "{result:?}");
        assert!(!key_present(&store, "after"), "a statement committed outside the batch's transaction");
        store.write_blocking(|tx| tx.meta_set("next", "v")).unwrap();
        assert!(key_present(&store, "next"));
    }

    #[test]
    fn a_failed_commit_is_answered_to_every_caller_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &FakeClock::new(1_000));
        let (held_tx, held_rx) = std_mpsc::channel::<()>();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let gate = store.write(move |_| {
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(())
        });
        held_rx.recv().unwrap();
        let first = store.write(|tx| tx.meta_set("first", "v"));
        // A foreign key checked only at COMMIT makes the COMMIT itself fail.
        let breaks_commit = store.write(|tx| {
            tx.conn().execute_batch(
                "PRAGMA defer_foreign_keys = ON;
                 INSERT INTO outbox_parts (outbox_id, idx, body, nonce, state) VALUES ('missing', 0, 'b', 'n', 'pending');",
            )?;
            Ok(())
        });
        let last = store.write(|tx| tx.meta_set("last", "v"));
        release_tx.send(()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(gate).unwrap();
        for (name, result) in
            [("first", rt.block_on(first)), ("breaks", rt.block_on(breaks_commit)), ("last", rt.block_on(last))]
        {
            let err = result.expect_err(name).to_string();
            assert!(err.contains("FOREIGN KEY constraint failed"), "{name}: {err}");
        }
        assert!(!key_present(&store, "first"));
        assert!(!key_present(&store, "last"));
        // The writer goes on.
        store.write_blocking(|tx| tx.meta_set("after", "v")).unwrap();
        assert!(key_present(&store, "after"));
    }

    /// The `synchronous` level each request of a batch ran under, as SQLite reports it inside the
    /// transaction (1 = NORMAL, 2 = FULL).
    fn levels_of_one_batch(store: &Store, durabilities: &[super::Durability]) -> Vec<i64> {
        let (held_tx, held_rx) = std_mpsc::channel::<()>();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let gate = store.write(move |_| {
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(())
        });
        held_rx.recv().unwrap();
        let level = |tx: &crate::Tx<'_>| -> crate::Result<i64> {
            tx.meta_set("touched", "v")?;
            Ok(tx.conn().query_row("PRAGMA synchronous", (), |r| r.get(0))?)
        };
        let requests: Vec<_> = durabilities
            .iter()
            .map(|d| match d {
                super::Durability::Full => Box::pin(store.write(level))
                    as std::pin::Pin<Box<dyn std::future::Future<Output = crate::Result<i64>> + Send>>,
                super::Durability::Relaxed => Box::pin(store.write_relaxed(level)),
            })
            .collect();
        release_tx.send(()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(gate).unwrap();
        requests.into_iter().map(|r| rt.block_on(r).unwrap()).collect()
    }

    /// A batch of relaxed writes commits without an fsync; a batch holding any full write is
    /// fsynced whatever else shares it, and the level goes back to FULL after a relaxed batch.
    #[test]
    fn a_batch_commits_relaxed_only_when_every_request_in_it_is_relaxed() {
        use super::Durability::{Full, Relaxed};
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &FakeClock::new(1_000));
        let mut table = String::new();
        for batch in [vec![Relaxed], vec![Relaxed, Relaxed], vec![Relaxed, Full, Relaxed], vec![Full], vec![Relaxed]] {
            let levels = levels_of_one_batch(&store, &batch);
            table += &format!("{batch:?} -> {levels:?}\n");
        }
        // The gate of each batch is a full write that commits alone before it.
        expect_test::expect![[r#"
            [Relaxed] -> [1]
            [Relaxed, Relaxed] -> [1, 1]
            [Relaxed, Full, Relaxed] -> [2, 2, 2]
            [Full] -> [2]
            [Relaxed] -> [1]
        "#]]
        .assert_eq(&table);
        assert_eq!(store.read_blocking(|rd| rd.meta_get("touched")).unwrap().as_deref(), Some("v"));
    }

    /// The same disk-full path as on a real full disk (tested on a tmpfs end to end), without a mount.
    #[test]
    fn disk_full_is_reported_and_clears_once_a_write_reaches_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::new(1_000);
        let store = open(dir.path(), &clock);
        let big = || |tx: &crate::Tx<'_>| tx.meta_set("big", &"x".repeat(400_000));
        store.write_blocking(|tx| tx.meta_set("k", "v")).unwrap();
        assert_eq!(store.write_health(), None);
        cap_pages(&store, 8);

        let err = store.write_blocking(big()).unwrap_err().to_string();
        let dir_name = dir.path().display().to_string();
        assert!(err.contains("store is out of disk space"), "{err}");
        assert!(err.contains(&format!("free space on the filesystem holding {dir_name}")), "{err}");
        clock.advance(5_000);
        store.write_blocking(big()).unwrap_err();
        let failure = store.write_health().unwrap();
        assert_eq!(failure.kind, super::WriteFailureKind::DiskFull);
        assert_eq!((failure.since_ms, failure.last_ms, failure.failed_writes), (1_000, 6_000, 2));
        assert!(failure.fix.contains(&format!("df -h {dir_name}")), "{}", failure.fix);

        // A write that changes nothing proves nothing.
        store.write_blocking(|tx| tx.reader().meta_get("k").map(|_| ())).unwrap();
        assert!(store.write_health().is_some());

        // Room again: the next write that reaches the disk clears the state.
        cap_pages(&store, 10_000);
        store.write_blocking(big()).unwrap();
        assert_eq!(store.write_health(), None);

        // And `check_writes` probes by itself.
        cap_pages(&store, 8);
        store.write_blocking(|tx| tx.meta_set("big2", &"x".repeat(400_000))).unwrap_err();
        assert!(store.write_health().is_some());
        cap_pages(&store, 10_000);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(rt.block_on(store.check_writes()), None);
    }
}
