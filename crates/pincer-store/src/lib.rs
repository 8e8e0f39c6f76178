//! Pincer's SQLite store: the only crate that contains SQL.
//!
//! One database file (`<state>/pincer.db`) in WAL mode with `synchronous=FULL`. All writes go
//! through one writer thread that batches concurrent requests into one transaction (group commit):
//! each request runs inside its own savepoint, so one failing request does not undo the others, and
//! nobody hears "committed" before the commit is durable; when SQLite rolls a whole transaction
//! back (a full disk), every caller hears that nothing of theirs was saved (`writer.rs`). The
//! writer keeps the store's write health ([`Store::write_health`]) for `health` and `/readyz`.
//! Reads run on a small pool of read-only connections and never block the writer. The gateway
//! opens the database exclusively (a lock on the file itself) and [`Store::close`] checkpoints
//! the WAL, so a stopped gateway's `pincer.db` alone is complete. Database files are 0600.
//!
//! Domain crates never see SQL: they call typed operations on [`Tx`] (inside [`Store::write`]) and
//! [`Rd`] (inside [`Store::read`]), defined per table in this crate's modules.
//!
//! **Architecture Invariant:** a write's result is only returned after its transaction committed,
//! and a caller told "failed" had nothing of its write saved. A [`Store::write`] is fsynced before
//! it is answered; a [`Store::write_relaxed`] is in the WAL (safe from a `kill -9`) and becomes
//! durable against power loss with the next fsynced commit.

pub mod activity;
pub mod backup;
pub mod cron;
pub mod devices;
mod files;
pub mod inbound;
pub mod integrity;
mod meta;
mod migrations;
pub mod openclaw;
pub mod outbox;
pub mod sessions;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use pincer_core::{SharedClock, SystemClock};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

pub use activity::{ActivityFilter, ActivityRow};
pub use cron::{
    EnabledFilter, JobBookmarks, JobFacts, JobKey, JobOrder, JobPage, JobPageQuery, JobRow, KeyedPage, RunFilter,
    RunRow, ScratchRow, ScratchState, ScratchWrite, SortValue,
};
pub use devices::{AuditFilter, AuditRow, DeviceRow, DeviceTokenRow, NewAuditRow, PairingRequestRow};
pub use inbound::{InboundRow, NewInbound, PairingCodeRow};
pub use migrations::LATEST_VERSION;
pub use outbox::{
    AttemptRow, ChannelStats, DeliveryDetail, DeliveryFilter, DeliveryRow, Enqueued, InboxRow, LeasedDelivery,
    NewDelivery, PartRow,
};
pub use sessions::{
    ArchivedSession, CleanupPlan, CleanupPolicy, ModelUsage, OpenToolCall, PendingEvent, SessionPatch, SessionRow,
    TranscriptRow,
};
pub use writer::{Durability, WriteFailure, WriteFailureKind};

/// Errors from the store, always saying which operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the store has shut down")]
    Closed,
    #[error("{0}")]
    Invalid(String),
    /// The filesystem holding the database is full: nothing of the write was saved.
    #[error(
        "the store is out of disk space: free space on the filesystem holding {} (this write was not saved; writes resume by themselves once there is room)",
        dir.display()
    )]
    DiskFull { dir: PathBuf },
    /// SQLite rolled back the write's transaction: nothing of it was saved.
    #[error("the write was not saved: {0}")]
    NotSaved(String),
    /// Another process (another gateway) holds the database's lock.
    #[error("{}", locked_message(path, *holder))]
    Locked { path: PathBuf, holder: Option<u32> },
}

fn locked_message(path: &Path, holder: Option<u32>) -> String {
    let who = match holder {
        Some(pid) => {
            format!("another Pincer gateway (pid {pid}) is using {}: stop it first (`kill {pid}`)", path.display())
        }
        None => format!("another process holds the lock on {}: stop the other Pincer gateway first", path.display()),
    };
    format!(
        "{who}, or start this one with another --state-dir; one gateway per database (deleting gateway.lock does not change that)"
    )
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open write transaction, handed to closures passed to [`Store::write`].
pub struct Tx<'a> {
    conn: &'a Connection,
}

/// A read-only connection, handed to closures passed to [`Store::read`].
pub struct Rd<'a> {
    conn: &'a Connection,
}

/// How to open the store.
#[derive(Clone)]
pub struct StoreOptions {
    /// Stamps the write health ([`WriteFailure::since_ms`]).
    pub clock: SharedClock,
    /// Hold an exclusive lock on the database file until [`Store::close`], refusing to open a
    /// database another process holds so: one gateway per database. Without it the database
    /// can be opened beside a running gateway (tools, benchmarks).
    pub exclusive: bool,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions { clock: SystemClock::shared(), exclusive: false }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<writer::Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled reader: async reads wait for a connection instead of opening one
    /// (and a blocking thread) per concurrent request.
    read_slots: Arc<tokio::sync::Semaphore>,
    health: Arc<writer::Health>,
    /// A write probe is queued (see [`Store::check_writes`]).
    probing: AtomicBool,
    /// Write requests queued since the store was opened.
    writes: AtomicU64,
    closed: AtomicBool,
}

/// Read-only connections kept open, and async reads run at once.
const READERS: usize = 8;

impl Store {
    /// Opens (creating if needed) the database, migrating it to [`LATEST_VERSION`]. An older
    /// database is first copied to `<path>.pre-v<N>.bak`.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// [`Store::open`] with options: the gateway opens its database exclusively.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store> {
        let open_err = |message: String| StoreError::Open { path: path.to_path_buf(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_err(e.to_string()))?;
        }
        // Before SQLite opens the file: its lock, and owner-only modes for every database file.
        let lock = if options.exclusive {
            Some(files::lock(path)?)
        } else {
            files::create_private(path).map_err(|e| open_err(e.to_string()))?;
            None
        };
        files::make_private(path).map_err(|e| open_err(format!("cannot make it owner-only (0600): {e}")))?;
        integrity::check(path)?;
        let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        configure(&conn).map_err(|e| open_err(e.to_string()))?;
        migrations::migrate(&mut conn, path).map_err(|e| match e {
            StoreError::Sqlite(e) => open_err(e.to_string()),
            other => other,
        })?;
        let health = Arc::new(writer::Health::new(options.clock, path));
        let writer = writer::Writer::new(conn, health.clone(), lock).map_err(|e| open_err(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<writer::Job>();
        let thread = std::thread::Builder::new()
            .name("pincer-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
                health,
                probing: AtomicBool::new(false),
                writes: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `f` for the next write transaction — immediately, before the returned future is
    /// polled, so writes queued one after another commit in that order — and resolves with its
    /// result once that transaction has committed. An error from `f` rolls back only `f`'s own
    /// changes. An error from the store (a full disk) means nothing of `f` was saved.
    pub fn write<R, F>(&self, f: F) -> impl std::future::Future<Output = Result<R>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<R> + Send + 'static,
    {
        self.write_with(Durability::Full, f)
    }

    /// [`Store::write`] answered once the transaction is in the WAL, without waiting for an fsync
    /// ([`Durability::Relaxed`]): the write survives a `kill -9` of the gateway at once, and a
    /// power loss from the next full write's commit on. For a step whose loss on power failure
    /// the caller can repair, followed soon by a full write (the tool loop's results).
    pub fn write_relaxed<R, F>(&self, f: F) -> impl std::future::Future<Output = Result<R>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<R> + Send + 'static,
    {
        self.write_with(Durability::Relaxed, f)
    }

    fn write_with<R, F>(
        &self,
        durability: Durability,
        f: F,
    ) -> impl std::future::Future<Output = Result<R>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<R> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<R>>();
        let sent = self.send(Box::new(writer::Pending { f, reply: writer::Reply::Async(done_tx), durability }));
        async move {
            sent?;
            done_rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Blocking form of [`Store::write`] for code outside the async runtime.
    pub fn write_blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<R> + Send + 'static,
    {
        let (done_tx, done_rx) = mpsc::channel::<Result<R>>();
        self.send(Box::new(writer::Pending {
            f,
            reply: writer::Reply::Blocking(done_tx),
            durability: Durability::Full,
        }))?;
        done_rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn send(&self, job: writer::Job) -> Result<()> {
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        let guard = self.inner.writer.lock().expect("writer lock");
        guard.as_ref().ok_or(StoreError::Closed)?.send(job).map_err(|_| StoreError::Closed)
    }

    /// Write requests queued since the store was opened (each runs in its own savepoint; many
    /// share a commit).
    pub fn write_requests(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Transactions the writer committed since the store was opened.
    pub fn commits(&self) -> u64 {
        self.inner.health.commits.load(Ordering::Relaxed)
    }

    /// Why writes are failing now (a full disk, an I/O error), or `None` when the last write that
    /// reached the disk committed.
    pub fn write_health(&self) -> Option<WriteFailure> {
        self.inner.health.get()
    }

    /// [`Store::write_health`], after trying one small write if writes were failing, so the
    /// state clears by itself once the disk has room again even when nothing else writes. At
    /// most one probe is queued at a time.
    pub async fn check_writes(&self) -> Option<WriteFailure> {
        if self.write_health().is_none() || self.inner.probing.swap(true, Ordering::AcqRel) {
            return self.write_health();
        }
        struct Probing<'a>(&'a AtomicBool);
        impl Drop for Probing<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _probing = Probing(&self.inner.probing);
        let _ = self.write(|tx| tx.record_write_probe()).await;
        self.write_health()
    }

    /// Runs `f` on a read-only connection in a blocking thread, at most [`READERS`] at once.
    pub async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Rd<'_>) -> Result<R> + Send + 'static,
    {
        let permit = self.inner.read_slots.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            store.read_blocking(f)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Blocking form of [`Store::read`].
    pub fn read_blocking<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Rd<'_>) -> Result<R>,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let conn = self.inner.readers.lock().expect("reader pool").pop();
        let conn = match conn {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                conn
            }
        };
        // A read sees one consistent snapshot.
        conn.execute_batch("BEGIN DEFERRED")?;
        let result = f(&Rd { conn: &conn });
        let _ = conn.execute_batch("COMMIT");
        let mut pool = self.inner.readers.lock().expect("reader pool");
        // After `close` a reader is closed, not pooled: the final checkpoint wants none open.
        if pool.len() < READERS && !self.inner.closed.load(Ordering::Acquire) {
            pool.push(conn);
        }
        result
    }

    /// Closes the readers, stops the writer after it finished what was queued, checkpoints the
    /// WAL into the database file (which alone is then complete) and releases the database's
    /// lock. Later reads and writes fail with [`StoreError::Closed`].
    pub fn close(&self) {
        self.inner.shut_down();
    }
}

impl Inner {
    fn shut_down(&self) {
        self.closed.store(true, Ordering::Release);
        // Idle readers first, so the writer's final checkpoint can empty the WAL.
        self.readers.lock().expect("reader pool").clear();
        self.writer.lock().expect("writer lock").take();
        let thread = self.writer_thread.lock().expect("writer thread").take();
        // The writer checkpoints, closes its connection and releases the database's lock. A
        // write closure may hold the last handle: the writer thread cannot wait for itself.
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Bytes SQLite has allocated now, across every connection of the process (mostly page caches,
/// each bounded by its connection's `cache_size`, 2 MiB by default), for `/metrics` and the soak.
pub fn sqlite_memory_used() -> i64 {
    // SAFETY: sqlite3_memory_used only reads SQLite's global allocation counter; it takes no
    // arguments and is safe to call from any thread at any time.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

/// Prepared statements kept per connection (each a few KB, made only when first used).
const STATEMENT_CACHE: usize = 64;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // rusqlite keeps 16 prepared statements by default; one outbox delivery alone cycles through
    // about 20 (the writer's own four included), so with 16 each was parsed again every time.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl Tx<'_> {
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }

    /// Reads inside this transaction (seeing its own writes), saving a second trip to the store.
    pub fn reader(&self) -> Rd<'_> {
        Rd { conn: self.conn }
    }
}

impl Rd<'_> {
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writes_commit_and_failures_roll_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let mut handles = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .write(move |tx| {
                        tx.meta_set(&format!("k{i}"), &i.to_string())?;
                        if i % 10 == 0 { Err(StoreError::Invalid("no".into())) } else { Ok(i) }
                    })
                    .await
            }));
        }
        let mut failed = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        let present =
            store.read(|rd| (0..200).map(|i| rd.meta_get(&format!("k{i}"))).collect::<Result<Vec<_>>>()).await.unwrap();
        for (i, v) in present.iter().enumerate() {
            assert_eq!(v.is_some(), i % 10 != 0, "key {i}");
        }
    }

    #[tokio::test]
    async fn a_panicking_write_does_not_kill_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let err = store
            .write(|tx| {
                tx.meta_set("half", "done")?;
                panic!("boom")
            })
            .await
            .map(|_: ()| ());
        assert!(err.unwrap_err().to_string().contains("panicked"));
        store.write(|tx| tx.meta_set("after", "ok")).await.unwrap();
        assert_eq!(store.read(|rd| rd.meta_get("half")).await.unwrap(), None);
        assert_eq!(store.read(|rd| rd.meta_get("after")).await.unwrap().as_deref(), Some("ok"));
    }

    #[tokio::test]
    async fn reads_do_not_block_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store.write(|tx| tx.meta_set("k", "1")).await.unwrap();
        // Hold a read snapshot open while a write commits.
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel::<Option<String>>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let reader = store.clone();
        let t = std::thread::spawn(move || {
            reader
                .read_blocking(|rd| {
                    let first = rd.meta_get("k")?;
                    started_tx.send(()).unwrap();
                    hold_rx.recv().unwrap();
                    seen_tx.send(rd.meta_get("k")?).unwrap();
                    Ok(first)
                })
                .unwrap()
        });
        started_rx.recv().unwrap();
        store.write(|tx| tx.meta_set("k", "2")).await.unwrap();
        hold_tx.send(()).unwrap();
        assert_eq!(seen_rx.recv().unwrap().as_deref(), Some("1"), "snapshot isolation");
        assert_eq!(t.join().unwrap().as_deref(), Some("1"));
        assert_eq!(store.read(|rd| rd.meta_get("k")).await.unwrap().as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn after_close_the_database_file_alone_holds_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pincer.db");
        let store = Store::open(&db).unwrap();
        for i in 0..50 {
            store.write(move |tx| tx.meta_set(&format!("k{i}"), "v")).await.unwrap();
        }
        // Pooled readers stay open until close.
        store.read(|rd| rd.meta_get("k0")).await.unwrap();
        store.close();
        let wal = std::fs::metadata(dir.path().join("pincer.db-wal")).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal, 0, "the WAL still holds writes after close");
        // Copy the database file alone, as a user backing up "the one SQLite file" would.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(&db, copy.path().join("pincer.db")).unwrap();
        let conn = Connection::open(copy.path().join("pincer.db")).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM meta WHERE key LIKE 'k%'", (), |r| r.get(0)).unwrap();
        assert_eq!(n, 50);
        assert!(matches!(store.write(|tx| tx.meta_set("late", "v")).await, Err(StoreError::Closed)));
        assert!(matches!(store.read(|rd| rd.meta_get("k0")).await, Err(StoreError::Closed)));
    }
}
