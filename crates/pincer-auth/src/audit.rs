//! The security audit log (`audit_log`): every connect, failed authentication, pairing request,
//! approval, rejection, removal, rename, token rotation and revocation, with the device, the peer's
//! address, connection and client id, and a small JSON detail.
//!
//! Entries written by [`crate::Devices::admit`] and the pairing methods commit in the same
//! transaction as the change they describe. Details never contain bearers, hashes or signatures.

use pincer_protocol::{ErrorShape, Role, ScopeSet};
use pincer_store::{AuditFilter, NewAuditRow, Tx};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::methods::params;
use crate::view::scope_names;
use crate::{AUDIT_KEEP, AuthMethod, Devices, Peer, Rejection, store_unavailable};

/// `action` values, following OpenClaw's security event names where one exists.
pub mod action {
    pub const AUTH_SUCCEEDED: &str = "gateway.auth.succeeded";
    pub const AUTH_FAILED: &str = "gateway.auth.failed";
    pub const PAIRING_REQUESTED: &str = "device.pairing.requested";
    pub const PAIRING_APPROVED: &str = "device.pairing.approved";
    pub const PAIRING_REJECTED: &str = "device.pairing.rejected";
    pub const PAIRING_DENIED: &str = "device.pairing.denied";
    pub const PAIRING_REMOVED: &str = "device.pairing.removed";
    pub const PAIRING_RENAMED: &str = "device.pairing.renamed";
    pub const TOKEN_ROTATED: &str = "device.token.rotated";
    pub const TOKEN_REVOKED: &str = "device.token.revoked";
    pub const TOKEN_ROTATION_DENIED: &str = "device.token.rotation_denied";
    pub const TOKEN_REVOCATION_DENIED: &str = "device.token.revocation_denied";
}

/// One entry to append with [`Devices::record`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub action: &'static str,
    pub device_id: Option<String>,
    pub peer: Option<Peer>,
    /// Small and free of secrets.
    pub detail: Value,
}

/// Appends an entry inside `tx`, pruning beyond [`AUDIT_KEEP`] entries now and then.
pub(crate) fn write(
    tx: &Tx<'_>,
    at_ms: i64,
    action: &str,
    device_id: Option<&str>,
    peer: Option<&Peer>,
    detail: Value,
) -> pincer_store::Result<()> {
    let id = tx.insert_audit(&NewAuditRow {
        at_ms,
        action: action.to_string(),
        device_id: device_id.map(String::from),
        remote_ip: peer.map(|p| p.remote_ip.to_string()),
        conn_id: peer.map(|p| p.conn_id.clone()),
        client_id: peer.and_then(|p| p.client_id).map(|c| c.as_str().to_string()),
        detail_json: detail.to_string(),
    })?;
    if id % 1024 == 0 {
        tx.prune_audit(AUDIT_KEEP)?;
    }
    Ok(())
}

/// A claimed device id worth recording: exactly 64 lowercase hex characters.
pub(crate) fn plausible_device_id(id: &str) -> Option<&str> {
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QueryParams {
    limit: Option<u32>,
    offset: Option<u32>,
    action: Option<String>,
    device_id: Option<String>,
    since_ms: Option<i64>,
}

impl Devices {
    /// Appends an entry. A store failure is logged, not returned: auditing never blocks the caller.
    pub async fn record(&self, entry: AuditEntry) {
        let now = self.clock.now_ms();
        let result = self
            .store
            .write(move |tx| {
                write(tx, now, entry.action, entry.device_id.as_deref(), entry.peer.as_ref(), entry.detail)
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "audit: cannot record an entry");
        }
    }

    /// Records a refused connect (bad proof, bad shared secret, rate limit, …) with its reason.
    /// `claimed_device_id` is recorded only when it looks like a device id.
    pub async fn record_auth_failure(&self, peer: &Peer, claimed_device_id: Option<&str>, rejection: &Rejection) {
        let details = rejection.error.details.as_ref();
        let reason = details.and_then(|d| d.get("reason").or_else(|| d.get("authReason"))).cloned();
        self.record(AuditEntry {
            action: action::AUTH_FAILED,
            device_id: claimed_device_id.and_then(plausible_device_id).map(String::from),
            peer: Some(peer.clone()),
            detail: json!({
                "code": rejection.error.code,
                "detailCode": rejection.detail_code(),
                "reason": reason,
                "message": rejection.error.message,
                "closeCode": rejection.close_code,
            }),
        })
        .await;
    }

    /// Records a successful connect that did not go through [`Devices::admit`] (no device).
    pub async fn record_connect(&self, peer: &Peer, method: AuthMethod, role: Role, scopes: ScopeSet) {
        self.record(AuditEntry {
            action: action::AUTH_SUCCEEDED,
            device_id: None,
            peer: Some(peer.clone()),
            detail: json!({ "method": method.as_str(), "role": role.as_str(), "scopes": scope_names(scopes) }),
        })
        .await;
    }

    /// `audit.query {limit?, offset?, action?, deviceId?, sinceMs?}` → newest first,
    /// `{entries, total, hasMore, nextOffset}`.
    pub async fn audit_query(&self, params_value: &Value) -> Result<Value, ErrorShape> {
        const METHOD: &str = "audit.query";
        let p: QueryParams = params(METHOD, params_value)?;
        let limit = p.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ErrorShape::invalid_request(format!("invalid {METHOD} params: limit must be 1..500")));
        }
        let offset = p.offset.unwrap_or(0);
        for (name, value) in [("action", &p.action), ("deviceId", &p.device_id)] {
            if value.as_ref().is_some_and(|v| v.is_empty() || v.len() > 64) {
                return Err(ErrorShape::invalid_request(format!(
                    "invalid {METHOD} params: {name} must be 1..64 characters"
                )));
            }
        }
        let filter = AuditFilter { action: p.action, device_id: p.device_id, since_ms: p.since_ms, limit, offset };
        let (rows, total) =
            self.store.read(move |rd| rd.list_audit(&filter)).await.map_err(|e| store_unavailable(&e))?;
        let entries: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                let mut e = json!({
                    "id": r.id,
                    "atMs": r.at_ms,
                    "action": r.action,
                    "detail": serde_json::from_str::<Value>(&r.detail_json).unwrap_or(Value::Null),
                });
                for (key, value) in [
                    ("deviceId", r.device_id),
                    ("remoteIp", r.remote_ip),
                    ("connId", r.conn_id),
                    ("clientId", r.client_id),
                ] {
                    if let Some(v) = value {
                        e[key] = json!(v);
                    }
                }
                e
            })
            .collect();
        let next = offset as u64 + entries.len() as u64;
        let has_more = next < total;
        Ok(json!({
            "entries": entries,
            "total": total,
            "hasMore": has_more,
            "nextOffset": if has_more { json!(next) } else { Value::Null },
        }))
    }
}
