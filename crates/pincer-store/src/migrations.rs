//! Versioned schema migrations. `PRAGMA user_version` holds the version; each migration runs in
//! its own transaction. Migrations are append-only: never edit one that has shipped.

use std::path::Path;

use rusqlite::Connection;

use crate::{Result, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "foundation",
    sql: "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
}];

/// The schema version this build writes.
pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

pub(crate) fn current_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", (), |r| r.get(0))?)
}

/// Brings the database to [`LATEST_VERSION`], backing up a non-empty older database first.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let version = current_version(conn)?;
    if version > LATEST_VERSION {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            message: format!(
                "the database has schema v{version}, newer than this Pincer understands (v{LATEST_VERSION}); install a newer Pincer"
            ),
        });
    }
    if version == LATEST_VERSION {
        return Ok(());
    }
    if version > 0 {
        let backup = path.with_extension(format!("db.pre-v{LATEST_VERSION}.bak"));
        if !backup.exists() {
            conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])?;
            tracing::info!(backup = %backup.display(), from = version, to = LATEST_VERSION, "store: backed up before migrating");
        }
    }
    migrate_to(conn, LATEST_VERSION)
}

/// Applies every migration above the current version up to `target`.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let from = current_version(conn)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > from && m.version <= target) {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)
            .map_err(|e| StoreError::Invalid(format!("migration v{} ({}) failed: {e}", m.version, m.name)))?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
        tracing::debug!(version = m.version, name = m.name, "store: migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// Rows written by each schema version, to check that upgrades keep them.
    fn seed(conn: &Connection, version: i64) {
        if version >= 1 {
            conn.execute_batch("INSERT INTO meta(key, value) VALUES ('instanceId', 'seeded-v1'), ('boots', '41');")
                .unwrap();
        }
    }

    fn verify(store: &Store, version: i64) {
        if version >= 1 {
            let (id, boots) =
                store.read_blocking(|rd| Ok((rd.meta_get("instanceId")?, rd.meta_get("boots")?))).unwrap();
            assert_eq!(id.as_deref(), Some("seeded-v1"));
            assert_eq!(boots.as_deref(), Some("41"));
            assert_eq!(store.write_blocking(|tx| tx.record_boot()).unwrap(), 42);
        }
    }

    #[test]
    fn every_earlier_version_upgrades_and_keeps_its_rows() {
        for version in 0..=LATEST_VERSION {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pincer.db");
            {
                let mut conn = Connection::open(&path).unwrap();
                migrate_to(&mut conn, version).unwrap();
                assert_eq!(current_version(&conn).unwrap(), version);
                seed(&conn, version);
            }
            let store = Store::open(&path).unwrap();
            assert_eq!(store.read_blocking(|rd| rd.schema_version()).unwrap(), LATEST_VERSION, "from v{version}");
            verify(&store, version);
            let backup = path.with_extension(format!("db.pre-v{LATEST_VERSION}.bak"));
            assert_eq!(backup.exists(), version > 0 && version < LATEST_VERSION, "backup from v{version}");
        }
    }

    #[test]
    fn newer_database_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pincer.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", LATEST_VERSION + 1).unwrap();
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("install a newer Pincer"), "{err}");
    }

    #[test]
    fn schema_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        drop(store);
        let conn = Connection::open(dir.path().join("pincer.db")).unwrap();
        let mut stmt = conn.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").unwrap();
        let schema: Vec<String> =
            stmt.query_map((), |r| r.get::<_, String>(0)).unwrap().map(|r| r.unwrap() + ";").collect();
        expect_test::expect_file!["../schema.sql"].assert_eq(&(schema.join("\n") + "\n"));
    }
}
