//! `devices`, `device_tokens`, `pairing_requests` and `audit_log`: paired devices with their
//! approved roles and scopes, one hashed bearer token per (device, role), pending pairing requests,
//! and the security audit trail.
//!
//! Only token *hashes* are stored here; bearers never reach the database.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Rd, Result, Tx};

/// A paired device and its grant: the roles and operator scopes an approver allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    /// Lowercase hex sha256 of the raw Ed25519 public key.
    pub device_id: String,
    /// The raw public key, base64url without padding.
    pub public_key: String,
    pub display_name: Option<String>,
    /// A label set by an operator (`device.pair.rename`).
    pub label: Option<String>,
    /// Pinned `client.platform`, trimmed and lowercased.
    pub platform: Option<String>,
    /// Pinned `client.deviceFamily`, trimmed and lowercased.
    pub device_family: Option<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// `silent` or `manual`.
    pub approved_via: Option<String>,
    pub created_at_ms: i64,
    pub approved_at_ms: Option<i64>,
    pub last_seen_at_ms: Option<i64>,
    pub last_seen_ip: Option<String>,
}

/// A device's bearer token for one role, stored as a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTokenRow {
    pub device_id: String,
    pub role: String,
    /// Lowercase hex sha256 of the bearer.
    pub token_hash: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    pub rotated_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

/// A pairing request: a device asking to be paired, or for more than its grant.
#[derive(Debug, Clone, PartialEq)]
pub struct PairingRequestRow {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    /// `not-paired`, `role-upgrade`, `scope-upgrade` or `metadata-upgrade`.
    pub reason: String,
    pub role: String,
    pub scopes: Vec<String>,
    /// What the device said about itself (display name, platform, client id, …) as JSON.
    pub client_json: String,
    pub remote_ip: Option<String>,
    pub created_at_ms: i64,
    pub refreshed_at_ms: i64,
    pub expires_at_ms: i64,
    /// `pending`, `approved`, `rejected`, `superseded` or `expired`.
    pub status: String,
    pub resolved_at_ms: Option<i64>,
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRow {
    pub at_ms: i64,
    pub action: String,
    pub device_id: Option<String>,
    pub remote_ip: Option<String>,
    pub conn_id: Option<String>,
    pub client_id: Option<String>,
    pub detail_json: String,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub action: String,
    pub device_id: Option<String>,
    pub remote_ip: Option<String>,
    pub conn_id: Option<String>,
    pub client_id: Option<String>,
    pub detail_json: String,
}

/// Filters for [`Rd::list_audit`]; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub device_id: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

const DEVICE_COLS: &str = "device_id, public_key, display_name, label, platform, device_family, client_id, \
                           client_mode, roles_json, scopes_json, approved_via, created_at_ms, approved_at_ms, \
                           last_seen_at_ms, last_seen_ip";
const TOKEN_COLS: &str =
    "device_id, role, token_hash, scopes_json, created_at_ms, rotated_at_ms, revoked_at_ms, last_used_at_ms";
const REQUEST_COLS: &str = "request_id, device_id, public_key, reason, role, scopes_json, client_json, remote_ip, \
                            created_at_ms, refreshed_at_ms, expires_at_ms, status, resolved_at_ms";
const AUDIT_COLS: &str = "id, at_ms, action, device_id, remote_ip, conn_id, client_id, detail_json";

fn list_from(r: &Row, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = r.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

fn list_to(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings serialises")
}

fn device_from(r: &Row) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        device_id: r.get(0)?,
        public_key: r.get(1)?,
        display_name: r.get(2)?,
        label: r.get(3)?,
        platform: r.get(4)?,
        device_family: r.get(5)?,
        client_id: r.get(6)?,
        client_mode: r.get(7)?,
        roles: list_from(r, 8)?,
        scopes: list_from(r, 9)?,
        approved_via: r.get(10)?,
        created_at_ms: r.get(11)?,
        approved_at_ms: r.get(12)?,
        last_seen_at_ms: r.get(13)?,
        last_seen_ip: r.get(14)?,
    })
}

fn token_from(r: &Row) -> rusqlite::Result<DeviceTokenRow> {
    Ok(DeviceTokenRow {
        device_id: r.get(0)?,
        role: r.get(1)?,
        token_hash: r.get(2)?,
        scopes: list_from(r, 3)?,
        created_at_ms: r.get(4)?,
        rotated_at_ms: r.get(5)?,
        revoked_at_ms: r.get(6)?,
        last_used_at_ms: r.get(7)?,
    })
}

fn request_from(r: &Row) -> rusqlite::Result<PairingRequestRow> {
    Ok(PairingRequestRow {
        request_id: r.get(0)?,
        device_id: r.get(1)?,
        public_key: r.get(2)?,
        reason: r.get(3)?,
        role: r.get(4)?,
        scopes: list_from(r, 5)?,
        client_json: r.get(6)?,
        remote_ip: r.get(7)?,
        created_at_ms: r.get(8)?,
        refreshed_at_ms: r.get(9)?,
        expires_at_ms: r.get(10)?,
        status: r.get(11)?,
        resolved_at_ms: r.get(12)?,
    })
}

fn audit_from(r: &Row) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        at_ms: r.get(1)?,
        action: r.get(2)?,
        device_id: r.get(3)?,
        remote_ip: r.get(4)?,
        conn_id: r.get(5)?,
        client_id: r.get(6)?,
        detail_json: r.get(7)?,
    })
}

// Reads shared by `Tx` (read-modify-write inside one transaction) and `Rd`.

fn get_device(conn: &Connection, device_id: &str) -> Result<Option<DeviceRow>> {
    Ok(conn
        .query_row(&format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = ?1"), [device_id], device_from)
        .optional()?)
}

fn device_tokens(conn: &Connection, device_id: &str) -> Result<Vec<DeviceTokenRow>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {TOKEN_COLS} FROM device_tokens WHERE device_id = ?1 ORDER BY role"))?;
    let rows = stmt.query_map([device_id], token_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn get_device_token(conn: &Connection, device_id: &str, role: &str) -> Result<Option<DeviceTokenRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {TOKEN_COLS} FROM device_tokens WHERE device_id = ?1 AND role = ?2"),
            [device_id, role],
            token_from,
        )
        .optional()?)
}

fn get_pairing_request(conn: &Connection, request_id: &str) -> Result<Option<PairingRequestRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {REQUEST_COLS} FROM pairing_requests WHERE request_id = ?1"),
            [request_id],
            request_from,
        )
        .optional()?)
}

fn pending_request_for_device(conn: &Connection, device_id: &str, now_ms: i64) -> Result<Option<PairingRequestRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {REQUEST_COLS} FROM pairing_requests
                 WHERE device_id = ?1 AND status = 'pending' AND expires_at_ms > ?2
                 ORDER BY refreshed_at_ms DESC, request_id LIMIT 1"
            ),
            params![device_id, now_ms],
            request_from,
        )
        .optional()?)
}

impl Tx<'_> {
    pub fn get_device(&self, device_id: &str) -> Result<Option<DeviceRow>> {
        get_device(self.conn(), device_id)
    }

    pub fn device_tokens(&self, device_id: &str) -> Result<Vec<DeviceTokenRow>> {
        device_tokens(self.conn(), device_id)
    }

    pub fn get_device_token(&self, device_id: &str, role: &str) -> Result<Option<DeviceTokenRow>> {
        get_device_token(self.conn(), device_id, role)
    }

    pub fn get_pairing_request(&self, request_id: &str) -> Result<Option<PairingRequestRow>> {
        get_pairing_request(self.conn(), request_id)
    }

    /// The device's live pending request (not expired at `now_ms`), if any.
    pub fn pending_request_for_device(&self, device_id: &str, now_ms: i64) -> Result<Option<PairingRequestRow>> {
        pending_request_for_device(self.conn(), device_id, now_ms)
    }

    /// Inserts or replaces a device's row (its tokens stay).
    pub fn put_device(&self, d: &DeviceRow) -> Result<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO devices ({DEVICE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT(device_id) DO UPDATE SET public_key = ?2, display_name = ?3, label = ?4, platform = ?5,
                   device_family = ?6, client_id = ?7, client_mode = ?8, roles_json = ?9, scopes_json = ?10,
                   approved_via = ?11, created_at_ms = ?12, approved_at_ms = ?13, last_seen_at_ms = ?14,
                   last_seen_ip = ?15"
            ),
            params![
                d.device_id,
                d.public_key,
                d.display_name,
                d.label,
                d.platform,
                d.device_family,
                d.client_id,
                d.client_mode,
                list_to(&d.roles),
                list_to(&d.scopes),
                d.approved_via,
                d.created_at_ms,
                d.approved_at_ms,
                d.last_seen_at_ms,
                d.last_seen_ip
            ],
        )?;
        Ok(())
    }

    /// Deletes a device and its tokens; returns false if it was not paired.
    pub fn delete_device(&self, device_id: &str) -> Result<bool> {
        // Explicit, so it does not depend on `foreign_keys` being on for this connection.
        self.conn().execute("DELETE FROM device_tokens WHERE device_id = ?1", [device_id])?;
        Ok(self.conn().execute("DELETE FROM devices WHERE device_id = ?1", [device_id])? > 0)
    }

    /// Sets or clears the operator label; returns false if the device is not paired.
    pub fn set_device_label(&self, device_id: &str, label: Option<&str>) -> Result<bool> {
        Ok(self.conn().execute("UPDATE devices SET label = ?2 WHERE device_id = ?1", params![device_id, label])? > 0)
    }

    /// Inserts or replaces the token of (device, role).
    pub fn put_device_token(&self, t: &DeviceTokenRow) -> Result<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO device_tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(device_id, role) DO UPDATE SET token_hash = ?3, scopes_json = ?4, created_at_ms = ?5,
                   rotated_at_ms = ?6, revoked_at_ms = ?7, last_used_at_ms = ?8"
            ),
            params![
                t.device_id,
                t.role,
                t.token_hash,
                list_to(&t.scopes),
                t.created_at_ms,
                t.rotated_at_ms,
                t.revoked_at_ms,
                t.last_used_at_ms
            ],
        )?;
        Ok(())
    }

    /// Marks the token of (device, role) revoked at `at_ms` (keeping the first revocation time);
    /// returns false if there is no such token.
    pub fn revoke_device_token(&self, device_id: &str, role: &str, at_ms: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE device_tokens SET revoked_at_ms = COALESCE(revoked_at_ms, ?3) WHERE device_id = ?1 AND role = ?2",
            params![device_id, role, at_ms],
        )? > 0)
    }

    /// Records a successful use of the token of (device, role).
    pub fn touch_device_token(&self, device_id: &str, role: &str, at_ms: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE device_tokens SET last_used_at_ms = ?3 WHERE device_id = ?1 AND role = ?2",
            params![device_id, role, at_ms],
        )?;
        Ok(())
    }

    pub fn insert_pairing_request(&self, r: &PairingRequestRow) -> Result<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO pairing_requests ({REQUEST_COLS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            params![
                r.request_id,
                r.device_id,
                r.public_key,
                r.reason,
                r.role,
                list_to(&r.scopes),
                r.client_json,
                r.remote_ip,
                r.created_at_ms,
                r.refreshed_at_ms,
                r.expires_at_ms,
                r.status,
                r.resolved_at_ms
            ],
        )?;
        Ok(())
    }

    /// Extends a pending request's life and updates where it came from; false if it is not pending.
    pub fn refresh_pairing_request(
        &self,
        request_id: &str,
        refreshed_at_ms: i64,
        expires_at_ms: i64,
        remote_ip: Option<&str>,
        client_json: &str,
    ) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE pairing_requests SET refreshed_at_ms = ?2, expires_at_ms = ?3, remote_ip = ?4, client_json = ?5
             WHERE request_id = ?1 AND status = 'pending'",
            params![request_id, refreshed_at_ms, expires_at_ms, remote_ip, client_json],
        )? > 0)
    }

    /// Moves a pending request to `status`; false if it was not pending (already resolved).
    pub fn resolve_pairing_request(&self, request_id: &str, status: &str, at_ms: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE pairing_requests SET status = ?2, resolved_at_ms = ?3 WHERE request_id = ?1 AND status = 'pending'",
            params![request_id, status, at_ms],
        )? > 0)
    }

    /// Marks every pending request whose lifetime ended at or before `now_ms` as `expired`.
    pub fn expire_pairing_requests(&self, now_ms: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE pairing_requests SET status = 'expired', resolved_at_ms = expires_at_ms
             WHERE status = 'pending' AND expires_at_ms <= ?1",
            [now_ms],
        )?)
    }

    /// Appends an audit entry and returns its id.
    pub fn insert_audit(&self, a: &NewAuditRow) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO audit_log (at_ms, action, device_id, remote_ip, conn_id, client_id, detail_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![a.at_ms, a.action, a.device_id, a.remote_ip, a.conn_id, a.client_id, a.detail_json],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Deletes all but the newest `keep` audit entries; returns how many went.
    pub fn prune_audit(&self, keep: u32) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM audit_log WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM audit_log) - ?1",
            [keep as i64],
        )?)
    }
}

impl Rd<'_> {
    pub fn get_device(&self, device_id: &str) -> Result<Option<DeviceRow>> {
        get_device(self.conn(), device_id)
    }

    /// Every paired device, oldest first.
    pub fn list_devices(&self) -> Result<Vec<DeviceRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY created_at_ms, device_id"))?;
        let rows = stmt.query_map((), device_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn device_tokens(&self, device_id: &str) -> Result<Vec<DeviceTokenRow>> {
        device_tokens(self.conn(), device_id)
    }

    pub fn get_device_token(&self, device_id: &str, role: &str) -> Result<Option<DeviceTokenRow>> {
        get_device_token(self.conn(), device_id, role)
    }

    pub fn get_pairing_request(&self, request_id: &str) -> Result<Option<PairingRequestRow>> {
        get_pairing_request(self.conn(), request_id)
    }

    pub fn pending_request_for_device(&self, device_id: &str, now_ms: i64) -> Result<Option<PairingRequestRow>> {
        pending_request_for_device(self.conn(), device_id, now_ms)
    }

    /// Pending requests still alive at `now_ms`, oldest first.
    pub fn pending_pairing_requests(&self, now_ms: i64) -> Result<Vec<PairingRequestRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {REQUEST_COLS} FROM pairing_requests WHERE status = 'pending' AND expires_at_ms > ?1
             ORDER BY created_at_ms, request_id"
        ))?;
        let rows = stmt.query_map([now_ms], request_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A page of audit entries matching `filter`, newest first, and the total matching.
    pub fn list_audit(&self, filter: &AuditFilter) -> Result<(Vec<AuditRow>, u64)> {
        let mut clauses = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(action) = &filter.action {
            args.push(action.clone().into());
            clauses.push(format!("action = ?{}", args.len()));
        }
        if let Some(device) = &filter.device_id {
            args.push(device.clone().into());
            clauses.push(format!("device_id = ?{}", args.len()));
        }
        if let Some(since) = filter.since_ms {
            args.push(since.into());
            clauses.push(format!("at_ms >= ?{}", args.len()));
        }
        let where_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let total: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM audit_log {where_sql}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        args.push((filter.limit as i64).into());
        args.push((filter.offset as i64).into());
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log {where_sql} ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), audit_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn device(id: &str) -> DeviceRow {
        DeviceRow {
            device_id: id.into(),
            public_key: format!("key-{id}"),
            display_name: Some("laptop".into()),
            label: None,
            platform: Some("linux".into()),
            device_family: None,
            client_id: Some("cli".into()),
            client_mode: Some("cli".into()),
            roles: vec!["operator".into()],
            scopes: vec!["operator.read".into()],
            approved_via: Some("silent".into()),
            created_at_ms: 1_000,
            approved_at_ms: Some(1_000),
            last_seen_at_ms: None,
            last_seen_ip: None,
        }
    }

    fn token(id: &str, role: &str) -> DeviceTokenRow {
        DeviceTokenRow {
            device_id: id.into(),
            role: role.into(),
            token_hash: format!("hash-{id}-{role}"),
            scopes: vec!["operator.read".into()],
            created_at_ms: 1_000,
            rotated_at_ms: None,
            revoked_at_ms: None,
            last_used_at_ms: None,
        }
    }

    fn request(id: &str, device: &str, refreshed: i64) -> PairingRequestRow {
        PairingRequestRow {
            request_id: id.into(),
            device_id: device.into(),
            public_key: format!("key-{device}"),
            reason: "not-paired".into(),
            role: "operator".into(),
            scopes: vec!["operator.read".into(), "operator.write".into()],
            client_json: "{}".into(),
            remote_ip: Some("192.0.2.7".into()),
            created_at_ms: refreshed,
            refreshed_at_ms: refreshed,
            expires_at_ms: refreshed + 300_000,
            status: "pending".into(),
            resolved_at_ms: None,
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn devices_round_trip_update_and_delete_with_their_tokens() {
        let (_dir, store) = open();
        store
            .write_blocking(|tx| {
                tx.put_device(&device("a"))?;
                tx.put_device(&device("b"))?;
                tx.put_device_token(&token("a", "operator"))?;
                tx.put_device_token(&token("a", "node"))?;
                tx.put_device_token(&token("b", "operator"))
            })
            .unwrap();
        let mut changed = device("a");
        changed.scopes = vec!["operator.read".into(), "operator.admin".into()];
        changed.last_seen_ip = Some("127.0.0.1".into());
        let c = changed.clone();
        store.write_blocking(move |tx| tx.put_device(&c)).unwrap();
        assert!(store.write_blocking(|tx| tx.set_device_label("a", Some("work laptop"))).unwrap());
        assert!(!store.write_blocking(|tx| tx.set_device_label("nope", Some("x"))).unwrap());

        let got = store.read_blocking(|rd| rd.get_device("a")).unwrap().unwrap();
        assert_eq!(got.scopes, changed.scopes);
        assert_eq!(got.label.as_deref(), Some("work laptop"));
        assert_eq!(got.last_seen_ip.as_deref(), Some("127.0.0.1"));
        let roles: Vec<String> =
            store.read_blocking(|rd| rd.device_tokens("a")).unwrap().into_iter().map(|t| t.role).collect();
        assert_eq!(roles, ["node", "operator"]);

        assert!(store.write_blocking(|tx| tx.delete_device("a")).unwrap());
        assert!(!store.write_blocking(|tx| tx.delete_device("a")).unwrap());
        assert!(store.read_blocking(|rd| rd.get_device("a")).unwrap().is_none());
        assert!(store.read_blocking(|rd| rd.device_tokens("a")).unwrap().is_empty(), "tokens go with the device");
        assert_eq!(store.read_blocking(|rd| rd.list_devices()).unwrap().len(), 1);
        assert!(store.read_blocking(|rd| rd.get_device_token("b", "operator")).unwrap().is_some());
    }

    #[test]
    fn token_revocation_keeps_the_first_time_and_touch_records_use() {
        let (_dir, store) = open();
        store.write_blocking(|tx| tx.put_device(&device("a"))).unwrap();
        store.write_blocking(|tx| tx.put_device_token(&token("a", "operator"))).unwrap();
        store.write_blocking(|tx| tx.touch_device_token("a", "operator", 5_000)).unwrap();
        assert!(store.write_blocking(|tx| tx.revoke_device_token("a", "operator", 6_000)).unwrap());
        assert!(store.write_blocking(|tx| tx.revoke_device_token("a", "operator", 7_000)).unwrap());
        assert!(!store.write_blocking(|tx| tx.revoke_device_token("a", "node", 7_000)).unwrap());
        let t = store.read_blocking(|rd| rd.get_device_token("a", "operator")).unwrap().unwrap();
        assert_eq!((t.last_used_at_ms, t.revoked_at_ms), (Some(5_000), Some(6_000)));
    }

    #[test]
    fn pending_requests_refresh_resolve_once_and_expire() {
        let (_dir, store) = open();
        store
            .write_blocking(|tx| {
                tx.insert_pairing_request(&request("r1", "a", 1_000))?;
                tx.insert_pairing_request(&request("r2", "b", 2_000))
            })
            .unwrap();
        // Alive until expires_at_ms (exclusive).
        assert_eq!(store.read_blocking(|rd| rd.pending_pairing_requests(301_000)).unwrap().len(), 1);
        assert_eq!(
            store.read_blocking(|rd| rd.pending_request_for_device("a", 300_999)).unwrap().unwrap().request_id,
            "r1"
        );
        assert!(store.read_blocking(|rd| rd.pending_request_for_device("a", 301_000)).unwrap().is_none());

        assert!(store.write_blocking(|tx| tx.refresh_pairing_request("r1", 250_000, 550_000, None, "{}")).unwrap());
        assert!(store.read_blocking(|rd| rd.pending_request_for_device("a", 400_000)).unwrap().is_some());

        assert!(store.write_blocking(|tx| tx.resolve_pairing_request("r1", "approved", 260_000)).unwrap());
        assert!(!store.write_blocking(|tx| tx.resolve_pairing_request("r1", "rejected", 261_000)).unwrap());
        assert!(!store.write_blocking(|tx| tx.refresh_pairing_request("r1", 262_000, 1, None, "{}")).unwrap());
        let r1 = store.read_blocking(|rd| rd.get_pairing_request("r1")).unwrap().unwrap();
        assert_eq!((r1.status.as_str(), r1.resolved_at_ms), ("approved", Some(260_000)));

        assert_eq!(store.write_blocking(|tx| tx.expire_pairing_requests(302_000)).unwrap(), 1);
        let r2 = store.read_blocking(|rd| rd.get_pairing_request("r2")).unwrap().unwrap();
        assert_eq!((r2.status.as_str(), r2.resolved_at_ms), ("expired", Some(302_000)));
        assert_eq!(r2.scopes, ["operator.read", "operator.write"]);
    }

    #[test]
    fn audit_filters_pages_and_prunes() {
        let (_dir, store) = open();
        store
            .write_blocking(|tx| {
                for i in 0..10 {
                    tx.insert_audit(&NewAuditRow {
                        at_ms: i * 100,
                        action: if i % 2 == 0 { "gateway.auth.succeeded" } else { "gateway.auth.failed" }.into(),
                        device_id: (i % 3 == 0).then(|| "dev".to_string()),
                        remote_ip: Some("127.0.0.1".into()),
                        conn_id: Some(format!("c{i}")),
                        client_id: Some("cli".into()),
                        detail_json: "{}".into(),
                    })?;
                }
                Ok(())
            })
            .unwrap();
        let page = |f: AuditFilter| store.read_blocking(move |rd| rd.list_audit(&f)).unwrap();
        let (rows, total) = page(AuditFilter { limit: 3, ..Default::default() });
        assert_eq!(total, 10);
        assert_eq!(rows.iter().map(|r| r.conn_id.clone().unwrap()).collect::<Vec<_>>(), ["c9", "c8", "c7"]);
        let (rows, total) = page(AuditFilter {
            action: Some("gateway.auth.failed".into()),
            since_ms: Some(400),
            limit: 10,
            offset: 1,
            ..Default::default()
        });
        assert_eq!(total, 3, "5, 7, 9");
        assert_eq!(rows.iter().map(|r| r.at_ms).collect::<Vec<_>>(), [700, 500]);
        let (_, total) = page(AuditFilter { device_id: Some("dev".into()), limit: 10, ..Default::default() });
        assert_eq!(total, 4, "0, 3, 6, 9");

        assert_eq!(store.write_blocking(|tx| tx.prune_audit(4)).unwrap(), 6);
        let (rows, total) = page(AuditFilter { limit: 10, ..Default::default() });
        assert_eq!(total, 4);
        assert_eq!(rows.last().unwrap().at_ms, 600);
    }
}
