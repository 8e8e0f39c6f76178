//! Pincer's SQLite store: the only crate that contains SQL.
//!
//! One database file (`<state>/pincer.db`) in WAL mode with `synchronous=FULL`. All writes go
//! through one writer thread that batches concurrent requests into one transaction (group commit):
//! each request runs inside its own savepoint, so one failing request does not undo the others, and
//! nobody hears "committed" before the commit is durable. Reads run on a small pool of read-only
//! connections and never block the writer.
//!
//! Domain crates never see SQL: they call typed operations on [`Tx`] (inside [`Store::write`]) and
//! [`Rd`] (inside [`Store::read`]), defined per table in this crate's modules.
//!
//! **Architecture Invariant:** a write's result is only returned after its transaction committed.

pub mod cron;
pub mod devices;
pub mod integrity;
mod meta;
mod migrations;
pub mod outbox;
pub mod sessions;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

pub use cron::{JobRow, RunFilter, RunRow};
pub use devices::{AuditFilter, AuditRow, DeviceRow, DeviceTokenRow, NewAuditRow, PairingRequestRow};
pub use migrations::LATEST_VERSION;
pub use outbox::{
    AttemptRow, ChannelStats, DeliveryDetail, DeliveryFilter, DeliveryRow, Enqueued, InboxRow, LeasedDelivery,
    NewDelivery, PartRow,
};
pub use sessions::{PendingEvent, SessionRow, TranscriptRow};

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

type WriteJob = Box<dyn FnOnce(&Connection) -> Box<dyn FnOnce() + Send> + Send>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled reader: async reads wait for a connection instead of opening one
    /// (and a blocking thread) per concurrent request.
    read_slots: Arc<tokio::sync::Semaphore>,
}

/// Read-only connections kept open, and async reads run at once.
const READERS: usize = 8;

/// Most write requests committed in one transaction.
const MAX_BATCH: usize = 256;

impl Store {
    /// Opens (creating if needed) the database, migrating it to [`LATEST_VERSION`]. An older
    /// database is first copied to `<path>.pre-v<N>.bak`.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |message: String| StoreError::Open { path: path.to_path_buf(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_err(e.to_string()))?;
        }
        integrity::check(path)?;
        let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        configure(&conn).map_err(|e| open_err(e.to_string()))?;
        migrations::migrate(&mut conn, path).map_err(|e| match e {
            StoreError::Sqlite(e) => open_err(e.to_string()),
            other => other,
        })?;
        let (tx, rx) = mpsc::channel::<WriteJob>();
        let thread = std::thread::Builder::new()
            .name("pincer-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `f` for the next write transaction — immediately, before the returned future is
    /// polled, so writes queued one after another commit in that order — and resolves with its
    /// result once that transaction has committed. An error from `f` rolls back only `f`'s own
    /// changes.
    pub fn write<R, F>(&self, f: F) -> impl std::future::Future<Output = Result<R>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<R> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<R>>();
        let job: WriteJob = Box::new(move |conn: &Connection| {
            let result = run_in_savepoint(conn, f);
            Box::new(move || {
                let _ = done_tx.send(result);
            })
        });
        let sent = self.send(job);
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
        let job: WriteJob = Box::new(move |conn: &Connection| {
            let result = run_in_savepoint(conn, f);
            Box::new(move || {
                let _ = done_tx.send(result);
            })
        });
        self.send(job)?;
        done_rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn send(&self, job: WriteJob) -> Result<()> {
        let guard = self.inner.writer.lock().expect("writer lock");
        guard.as_ref().ok_or(StoreError::Closed)?.send(job).map_err(|_| StoreError::Closed)
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
        if pool.len() < READERS {
            pool.push(conn);
        }
        result
    }

    /// Stops the writer after it finished what was queued. Later writes fail with [`StoreError::Closed`].
    pub fn close(&self) {
        self.inner.writer.lock().expect("writer lock").take();
        if let Some(thread) = self.inner.writer_thread.lock().expect("writer thread").take() {
            let _ = thread.join();
        }
    }
}

/// Bytes SQLite has allocated now, across every connection of the process (mostly page caches,
/// each bounded by its connection's `cache_size`, 2 MiB by default), for `/metrics` and the soak.
pub fn sqlite_memory_used() -> i64 {
    // SAFETY: sqlite3_memory_used only reads SQLite's global allocation counter; it takes no
    // arguments and is safe to call from any thread at any time.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn run_in_savepoint<R>(conn: &Connection, f: impl FnOnce(&Tx<'_>) -> Result<R>) -> Result<R> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(&Tx { conn })))
        .unwrap_or_else(|_| Err(StoreError::Invalid("a store write panicked; its changes were rolled back".into())));
    if result.is_err() {
        conn.execute_batch("ROLLBACK TO job")?;
    }
    conn.execute_batch("RELEASE job")?;
    result
}

/// Drains the queue in batches: one transaction per batch, replies sent after the commit.
fn writer_loop(conn: Connection, rx: mpsc::Receiver<WriteJob>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "store: cannot begin a write transaction");
            // Dropping the jobs drops their reply channels: callers see `Closed`-style errors.
            continue;
        }
        let replies: Vec<_> = batch.into_iter().map(|job| job(&conn)).collect();
        match conn.execute_batch("COMMIT") {
            Ok(()) => replies.into_iter().for_each(|reply| reply()),
            Err(e) => {
                tracing::error!(error = %e, "store: commit failed; the batch was rolled back");
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
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
}
