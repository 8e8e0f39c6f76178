//! `meta`: small key/value facts about this installation (instance id, boot count).

use rusqlite::OptionalExtension;

use crate::{Rd, Result, Tx};

impl Tx<'_> {
    pub fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )?;
        Ok(())
    }

    /// Rewrites one row, so its commit has to reach the disk: the store's check that writes work
    /// again after a failure.
    pub(crate) fn record_write_probe(&self) -> Result<()> {
        self.conn().execute(
            "INSERT INTO meta(key, value) VALUES ('writeProbes', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (),
        )?;
        Ok(())
    }

    /// Increments the boot counter and returns the new value: the process generation that owns
    /// leases taken during this run.
    pub fn record_boot(&self) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO meta(key, value) VALUES ('boots', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (),
        )?;
        let boots: String = self.conn().query_row("SELECT value FROM meta WHERE key = 'boots'", (), |r| r.get(0))?;
        Ok(boots.parse().unwrap_or(1))
    }
}

impl Rd<'_> {
    pub fn meta_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn().query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// SQLite's `PRAGMA quick_check`: `ok`, or the first problems found.
    pub fn quick_check(&self) -> Result<String> {
        let mut stmt = self.conn().prepare("PRAGMA quick_check")?;
        let rows: Vec<String> = stmt.query_map((), |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows.join("; "))
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn().query_row("PRAGMA user_version", (), |r| r.get(0))?)
    }
}
