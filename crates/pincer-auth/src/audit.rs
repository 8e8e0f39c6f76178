//! The security audit log (`audit_log`): every connect, failed authentication, pairing request,
//! approval, rejection, removal, rename, token rotation and revocation, with the device, the peer's
//! address, connection and client id, and a small JSON detail.
//!
//! Entries written by [`crate::Devices::admit`] and the pairing methods commit in the same
//! transaction as the change they describe. Details never contain bearers, hashes or signatures.
//!
//! Failed connects are tallied per address: the first [`FAILURES_AUDITED_PER_WINDOW`] in a
//! [`FAILURE_WINDOW_MS`] window get a row each, the rest of the window one summary row with their
//! count and reasons (written when the window ends, by the next failure from that address or by
//! [`Devices::flush_auth_failures`]). A flood of failures therefore writes a few rows a minute and
//! cannot push the rest of the history out of the [`AUDIT_KEEP`] entries.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use pincer_protocol::{ErrorShape, Role, ScopeSet};
use pincer_store::{AuditFilter, NewAuditRow, Tx};
use serde_json::{Value, json};

use crate::view::scope_names;
use crate::{AUDIT_KEEP, AuthMethod, Devices, Peer, Rejection, store_unavailable};
use pincer_protocol::schema::devices::{self as wire, AuditQueryParams, AuditQueryResult};
use pincer_protocol::schema::{Method, ParamsError};

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
    pub const PAIRING_IMPORTED: &str = "device.pairing.imported";
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

/// How long routine successful connects of one client are not written again: one CLI call is
/// one connect, and a row for each pushed the history of what mattered out of the log.
pub const SUCCESS_QUIET_MS: i64 = 3_600_000;

/// The rule for successful device-less connects (the `pincer` CLI, scripts). A client is its
/// address, client id, auth method, role and scopes. Its first success gets a row; so does the
/// first after [`SUCCESS_QUIET_MS`] have passed since its last row, carrying `repeats`, the
/// successes not written in between. Any change of role, scopes or method is a new client, so
/// it gets a row at once. Failures are never collapsed here (they have their own tally).
/// Kept in memory: after a restart each client's next success gets a row again.
#[derive(Debug, Default)]
pub struct SuccessTally {
    clients: Mutex<HashMap<String, (i64, u64)>>,
}

impl SuccessTally {
    /// Notes a success at `now`; `Some(repeats)` when it gets a row.
    pub fn note(&self, key: &str, now: i64) -> Option<u64> {
        let mut clients = self.clients.lock().expect("success tally lock");
        if clients.len() > 4096 {
            clients.retain(|_, (last, _)| now - *last < SUCCESS_QUIET_MS);
        }
        match clients.get_mut(key) {
            Some((last, skipped)) if now - *last < SUCCESS_QUIET_MS => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                let repeats = std::mem::take(skipped);
                *last = now;
                Some(repeats)
            }
            None => {
                clients.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// Failed connects from one address that each get their own row, per window.
pub const FAILURES_AUDITED_PER_WINDOW: u32 = 10;
/// Length of a failure-tally window.
pub const FAILURE_WINDOW_MS: i64 = 60_000;
/// Addresses tallied separately; failures from further addresses share one tally.
const TALLY_ADDRESSES: usize = 4096;

/// One address's failures in the current window.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    started_ms: i64,
    audited: u32,
    counted: u64,
    first_counted_ms: i64,
    last_counted_ms: i64,
    reasons: BTreeMap<String, u64>,
}

/// Failures of one window beyond the audited ones: written as one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    /// `None`: the shared tally of addresses beyond [`TALLY_ADDRESSES`].
    ip: Option<IpAddr>,
    window: Window,
}

/// Failed connects per address and window (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct FailureTally {
    windows: Mutex<HashMap<Option<IpAddr>, Window>>,
}

impl FailureTally {
    /// Notes a failure from `ip`: `true` when it gets its own row, `false` when it was counted.
    /// Returns too the summaries of windows that have ended, for the caller to write.
    pub(crate) fn note(&self, ip: IpAddr, now: i64, reason: &str) -> (bool, Vec<Summary>) {
        let mut windows = self.windows.lock().expect("tally lock");
        let mut ended = Vec::new();
        let mut key = Some(ip);
        if !windows.contains_key(&key) && windows.len() >= TALLY_ADDRESSES {
            ended = take_ended(&mut windows, now, false);
            if windows.len() >= TALLY_ADDRESSES {
                key = None;
            }
        }
        if windows.get(&key).is_some_and(|w| now - w.started_ms >= FAILURE_WINDOW_MS) {
            let window = windows.remove(&key).expect("present");
            if window.counted > 0 {
                ended.push(Summary { ip: key, window });
            }
        }
        let window = windows.entry(key).or_insert_with(|| Window {
            started_ms: now,
            audited: 0,
            counted: 0,
            first_counted_ms: now,
            last_counted_ms: now,
            reasons: BTreeMap::new(),
        });
        if key.is_some() && window.audited < FAILURES_AUDITED_PER_WINDOW {
            window.audited += 1;
            return (true, ended);
        }
        if window.counted == 0 {
            window.first_counted_ms = now;
        }
        window.counted += 1;
        window.last_counted_ms = now;
        *window.reasons.entry(reason.to_string()).or_default() += 1;
        (false, ended)
    }

    /// Removes the windows that ended by `now` (every window when `all`); returns those with
    /// counted failures.
    pub(crate) fn take_ended(&self, now: i64, all: bool) -> Vec<Summary> {
        take_ended(&mut self.windows.lock().expect("tally lock"), now, all)
    }
}

fn take_ended(windows: &mut HashMap<Option<IpAddr>, Window>, now: i64, all: bool) -> Vec<Summary> {
    let ended: Vec<Option<IpAddr>> =
        windows.iter().filter(|(_, w)| all || now - w.started_ms >= FAILURE_WINDOW_MS).map(|(k, _)| *k).collect();
    ended
        .into_iter()
        .filter_map(|ip| windows.remove(&ip).map(|window| Summary { ip, window }))
        .filter(|s| s.window.counted > 0)
        .collect()
}

/// Writes one summary row inside `tx`.
pub(crate) fn write_summary(tx: &Tx<'_>, summary: &Summary) -> pincer_store::Result<()> {
    let w = &summary.window;
    let from = summary.ip.map(|ip| ip.to_string()).unwrap_or_else(|| format!("more than {TALLY_ADDRESSES} addresses"));
    let detail = json!({
        "summary": true,
        "count": w.counted,
        "firstAtMs": w.first_counted_ms,
        "lastAtMs": w.last_counted_ms,
        "windowStartMs": w.started_ms,
        "windowMs": FAILURE_WINDOW_MS,
        "reasons": w.reasons,
        "message": format!(
            "{} more failed connects from {from} in this window, counted rather than written one by one (the first {FAILURES_AUDITED_PER_WINDOW} of each minute are)",
            w.counted
        ),
    });
    let id = tx.insert_audit(&NewAuditRow {
        at_ms: w.last_counted_ms,
        action: action::AUTH_FAILED.to_string(),
        device_id: None,
        remote_ip: summary.ip.map(|ip| ip.to_string()),
        conn_id: None,
        client_id: None,
        detail_json: detail.to_string(),
    })?;
    if id % 1024 == 0 {
        tx.prune_audit(AUDIT_KEEP)?;
    }
    Ok(())
}

/// The reason a refused connect is tallied under: its detail code, else its error code.
pub(crate) fn failure_reason(rejection: &Rejection) -> String {
    rejection.detail_code().unwrap_or(&rejection.error.code).to_string()
}

/// A claimed device id worth recording: exactly 64 lowercase hex characters.
pub(crate) fn plausible_device_id(id: &str) -> Option<&str> {
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(id)
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

    /// Records a refused connect (bad proof, bad shared secret, rate limit, …) with its reason,
    /// or counts it toward its address's summary row (see the module doc). `claimed_device_id` is
    /// recorded only when it looks like a device id.
    pub async fn record_auth_failure(&self, peer: &Peer, claimed_device_id: Option<&str>, rejection: &Rejection) {
        let now = self.clock.now_ms();
        let (own_row, ended) = self.failures.note(peer.remote_ip, now, &failure_reason(rejection));
        if !own_row && ended.is_empty() {
            return;
        }
        let details = rejection.error.details.as_ref();
        let reason = details.and_then(|d| d.get("reason").or_else(|| d.get("authReason"))).cloned();
        let entry = own_row.then(|| AuditEntry {
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
        });
        let result = self
            .store
            .write(move |tx| {
                for summary in &ended {
                    write_summary(tx, summary)?;
                }
                match entry {
                    Some(e) => write(tx, now, e.action, e.device_id.as_deref(), e.peer.as_ref(), e.detail),
                    None => Ok(()),
                }
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "audit: cannot record a failed connect");
        }
    }

    /// Writes the summary rows of tally windows that have ended — every window when `all` (at
    /// shutdown). The gateway calls this once a window.
    pub async fn flush_auth_failures(&self, all: bool) {
        let ended = self.failures.take_ended(self.clock.now_ms(), all);
        if ended.is_empty() {
            return;
        }
        let result = self
            .store
            .write(move |tx| {
                for summary in &ended {
                    write_summary(tx, summary)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "audit: cannot record failed-connect summaries");
        }
    }

    /// Records a successful connect that did not go through [`Devices::admit`] (no device), under
    /// the rule of [`SuccessTally`]: the first from a client in [`SUCCESS_QUIET_MS`] gets a row
    /// (with how many were not written since the last one); the routine repeats are counted only.
    pub async fn record_connect(&self, peer: &Peer, method: AuthMethod, role: Role, scopes: ScopeSet) {
        let key = format!(
            "{}|{}|{}|{}|{}",
            peer.remote_ip,
            peer.client_id.map(|c| c.as_str()).unwrap_or("-"),
            method.as_str(),
            role.as_str(),
            scope_names(scopes).join(",")
        );
        let Some(repeats) = self.successes.note(&key, self.clock.now_ms()) else { return };
        let mut detail = json!({ "method": method.as_str(), "role": role.as_str(), "scopes": scope_names(scopes) });
        if repeats > 0 {
            detail["repeats"] = repeats.into();
        }
        self.record(AuditEntry { action: action::AUTH_SUCCEEDED, device_id: None, peer: Some(peer.clone()), detail })
            .await;
    }

    /// `audit.query {limit?, offset?, action?, deviceId?, sinceMs?}` → newest first,
    /// `{entries, total, hasMore, nextOffset}`.
    pub async fn audit_query(&self, p: AuditQueryParams) -> Result<AuditQueryResult, ErrorShape> {
        const METHOD: &str = wire::AuditQuery::NAME;
        let invalid = |m: String| ErrorShape::invalid_request(ParamsError::new(METHOD, m).0);
        let limit = p.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(invalid("limit must be 1..500".into()));
        }
        let offset = p.offset.unwrap_or(0);
        for (name, value) in [("action", &p.action), ("deviceId", &p.device_id)] {
            if value.as_ref().is_some_and(|v| v.is_empty() || v.len() > 64) {
                return Err(invalid(format!("{name} must be 1..64 characters")));
            }
        }
        let filter = AuditFilter { action: p.action, device_id: p.device_id, since_ms: p.since_ms, limit, offset };
        let (rows, total) =
            self.store.read(move |rd| rd.list_audit(&filter)).await.map_err(|e| store_unavailable(&e))?;
        let entries: Vec<wire::AuditEntry> = rows
            .into_iter()
            .map(|r| wire::AuditEntry {
                id: r.id,
                at_ms: r.at_ms,
                action: r.action,
                detail: serde_json::from_str::<Value>(&r.detail_json).unwrap_or(Value::Null),
                device_id: r.device_id,
                remote_ip: r.remote_ip,
                conn_id: r.conn_id,
                client_id: r.client_id,
            })
            .collect();
        let next = offset as u64 + entries.len() as u64;
        let has_more = next < total;
        Ok(AuditQueryResult {
            entries,
            total,
            has_more,
            next_offset: has_more.then_some(next),
            extra: Default::default(),
        })
    }
}
