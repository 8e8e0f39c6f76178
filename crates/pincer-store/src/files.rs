//! The database's files on disk: owner-only modes, and the lock that lets one gateway at a time
//! use a database.
//!
//! The lock is an advisory `flock` on `pincer.db` itself, so deleting a file (`gateway.lock`, a
//! "stale" `-shm`) cannot let a second gateway in. On Linux `flock` and the POSIX `fcntl` locks
//! SQLite takes on the same file do not interact, so the lock costs SQLite nothing; but closing
//! *any* descriptor of the file drops this process's `fcntl` locks on it, so the lock's
//! descriptor is opened before SQLite opens the file and closed by the writer thread only after
//! it closed its connection, the store's readers being closed before (see `Store::close`).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// Opens (creating, owner-only) the database file and takes its exclusive lock without waiting.
pub(crate) fn lock(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        message: format!("cannot open it to lock it: {e}"),
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StoreError::Locked { path: path.to_path_buf(), holder: flock_holder(&file) })
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Open { path: path.to_path_buf(), message: format!("cannot lock it: {e}") })
        }
    }
}

/// Creates the database file owner-only if it does not exist yet, so SQLite (which gives its
/// `-wal` and `-shm` files the database file's mode) never creates a world-readable one.
pub(crate) fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        // Closing it is safe: a file that did not exist has no SQLite locks to lose.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets the database, its `-wal` and `-shm` files and the backups taken before migrations to
/// 0600, whatever an older Pincer, a umask or a copy left behind: they hold transcripts, device
/// tokens' hashes and webhook URLs. By path (`chmod`), never by opening them.
pub(crate) fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    for file in database_files(path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(&file) else { continue };
        let mode = meta.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            tracing::info!(file = %file.display(), was = format!("{mode:o}"), "store: made a database file owner-only (0600)");
        }
    }
    Ok(())
}

/// `<db>`, `<db>-wal`, `<db>-shm` and `<db>.pre-v<N>.bak`.
fn database_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return files };
    files.push(path.with_file_name(format!("{name}-wal")));
    files.push(path.with_file_name(format!("{name}-shm")));
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let backup_prefix = format!("{name}.pre-v");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            if file_name.starts_with(&backup_prefix) && file_name.ends_with(".bak") {
                files.push(entry.path());
            }
        }
    }
    files
}

/// The pid holding a `flock` on `file`, from `/proc/locks`; `None` where that is unknown.
#[cfg(target_os = "linux")]
fn flock_holder(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    // glibc's major()/minor() for a user-space dev_t.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    // `/proc/locks` is produced a page at a time from a list other processes change meanwhile, so
    // one read can skip a line (seen in CI, with many test processes locking and unlocking): read
    // it again before saying the holder is unknown.
    (0..3).find_map(|_| holder_in(&std::fs::read_to_string("/proc/locks").ok()?, major, minor, meta.ino()))
}

/// The pid of the `FLOCK` on device `major:minor`, inode `ino`, in `/proc/locks`' text.
#[cfg(target_os = "linux")]
fn holder_in(locks: &str, major: u64, minor: u64, ino: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 4242 00:2d:1234 0 EOF`; a waiter has `->` after the index.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = fields.get(5)?.split(':');
        let holds = u64::from_str_radix(id.next()?, 16).ok()? == major
            && u64::from_str_radix(id.next()?, 16).ok()? == minor
            && id.next()?.parse::<u64>().ok()? == ino;
        if holds { fields.get(4)?.parse().ok() } else { None }
    })
}

#[cfg(not(target_os = "linux"))]
fn flock_holder(_file: &File) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::{Store, StoreError, StoreOptions};

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn database_files_are_owner_only_whatever_existed_before() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pincer.db");
        // Left behind world-readable: an empty database and an old backup.
        for file in [db.clone(), dir.path().join("pincer.db.pre-v3.bak")] {
            std::fs::write(&file, b"").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let store = Store::open(&db).unwrap();
        store.write_blocking(|tx| tx.meta_set("k", "v")).unwrap();
        for name in ["pincer.db", "pincer.db-wal", "pincer.db-shm", "pincer.db.pre-v3.bak"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
        store.close();

        // A fresh database under a permissive umask is owner-only from the start.
        let fresh = tempfile::tempdir().unwrap();
        let store = Store::open(&fresh.path().join("pincer.db")).unwrap();
        store.write_blocking(|tx| tx.meta_set("k", "v")).unwrap();
        for name in ["pincer.db", "pincer.db-wal", "pincer.db-shm"] {
            assert_eq!(mode(&fresh.path().join(name)), 0o600, "{name}");
        }
    }

    #[test]
    fn an_exclusive_store_refuses_a_second_one_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pincer.db");
        let exclusive = || StoreOptions { exclusive: true, ..StoreOptions::default() };
        let first = Store::open_with(&db, exclusive()).unwrap();
        first.write_blocking(|tx| tx.meta_set("k", "v")).unwrap();
        // Nothing else in the state dir matters: the lock is on the database file itself.
        for name in ["pincer.db-shm", "gateway.lock"] {
            let _ = std::fs::remove_file(dir.path().join(name));
        }
        let err = Store::open_with(&db, exclusive()).err().expect("a second exclusive open is refused");
        let pid = std::process::id();
        assert!(matches!(err, StoreError::Locked { holder: Some(p), .. } if p == pid), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("another Pincer gateway (pid {pid}) is using {}", db.display())),
            "{message}"
        );
        // Tools may still open it beside the gateway.
        let tool = Store::open(&db).unwrap();
        assert_eq!(tool.read_blocking(|rd| rd.meta_get("k")).unwrap().as_deref(), Some("v"));
        // Closing releases it.
        first.close();
        let second = Store::open_with(&db, exclusive()).unwrap();
        assert_eq!(second.read_blocking(|rd| rd.meta_get("k")).unwrap().as_deref(), Some("v"));
    }
}
