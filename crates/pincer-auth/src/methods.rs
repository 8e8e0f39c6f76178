//! The pairing methods (research §5.3) with approval-time authorization: `device.pair.list`,
//! `device.pair.approve`, `device.pair.reject`, `device.pair.remove`, `device.pair.rename`,
//! `device.token.rotate`, `device.token.revoke`, plus `audit.query`.
//!
//! The gateway checks the method scope (`operator.pairing`, `operator.admin` for `audit.query`);
//! these functions check what the caller may do to *this* request or device:
//! - approving a non-operator role, or `operator.admin`, needs `operator.admin`;
//! - every scope being granted (or carried by a token being rotated or revoked) must already be
//!   held by the caller;
//! - a non-admin caller on device-token auth may act only on its own device.
//!
//! Methods that invalidate credentials return [`Kick`]s; the gateway closes the matching live
//! connections with 4001 `client invalidated: <reason>`.

use std::collections::HashSet;
use std::fmt;

use pincer_protocol::schema::devices::{
    self as wire, ApproveResult, DeviceRef, PairListResult, PairedDevice, PendingRequest, RejectResult,
    RemoveDeviceResult, RenameParams, RenameResult, RequestRef, RevokeParams, RevokeResult, RotateParams, RotateResult,
};
use pincer_protocol::schema::{Method, NoParams, ParamsError};
use pincer_protocol::{ErrorShape, Role, Scope, ScopeSet, close};
use pincer_store::{DeviceRow, DeviceTokenRow, Tx};
use serde_json::{Map, Value, json};

use crate::admit::{Events, resolved, widen_token};
use crate::audit::{self, action};
use crate::token::mint;
use crate::view::{clip, paired_view, pending_view, scope_names, scope_set};
use crate::{AuthMethod, Devices, MAX_DISPLAY_NAME_CHARS, MAX_LABEL_CHARS, Peer, store_unavailable};

/// Most scopes accepted in one `device.token.rotate`.
const MAX_SCOPES: usize = 16;

/// The authenticated connection calling a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub peer: Peer,
    pub auth: AuthMethod,
    /// The connection's live scopes.
    pub scopes: ScopeSet,
    /// The connection's paired device, if it signed one.
    pub device_id: Option<String>,
    /// Loopback socket without proxy headers.
    pub direct_local: bool,
}

impl Caller {
    fn is_admin(&self) -> bool {
        self.scopes.contains(Scope::Admin)
    }

    /// Non-admin device-token sessions see and manage only their own device.
    fn own_device_only(&self) -> bool {
        self.auth == AuthMethod::DeviceToken && !self.is_admin()
    }

    fn may_act_on(&self, device_id: &str) -> Result<(), ErrorShape> {
        if self.own_device_only() && self.device_id.as_deref() != Some(device_id) {
            return Err(ErrorShape::missing_scope(Scope::Admin.as_str()));
        }
        Ok(())
    }

    /// Every scope of `set` must be held (admin holds all).
    fn require_all(&self, set: ScopeSet) -> Result<(), ErrorShape> {
        match set.iter().find(|s| !self.scopes.satisfies(*s)) {
            Some(missing) => Err(ErrorShape::missing_scope(missing.as_str())),
            None => Ok(()),
        }
    }

    /// The local owner: no device, the shared secret (or auth mode none), on a direct loopback
    /// socket — the `pincer` CLI on the gateway host.
    fn is_local_owner(&self) -> bool {
        self.device_id.is_none() && self.direct_local && matches!(self.auth, AuthMethod::Token | AuthMethod::None)
    }
}

/// A live-connection close the gateway must perform after a method succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kick {
    pub device_id: String,
    /// Only connections with this role; `None` = every connection of the device.
    pub role: Option<Role>,
    /// Goes after `client invalidated: `.
    pub reason: &'static str,
    /// The caller's own connection when a device rotated its own token (it already has the new one).
    pub except_conn_id: Option<String>,
}

impl Kick {
    /// The WebSocket close code for kicked connections, 4001.
    pub const CLOSE_CODE: u16 = close::INVALIDATED;

    /// The WebSocket close reason, `client invalidated: <reason>`.
    pub fn close_reason(&self) -> String {
        format!("client invalidated: {}", self.reason)
    }

    /// True for a live connection this kick closes.
    pub fn matches(&self, device_id: Option<&str>, role: Role, conn_id: &str) -> bool {
        device_id == Some(self.device_id.as_str())
            && self.role.is_none_or(|r| r == role)
            && self.except_conn_id.as_deref() != Some(conn_id)
    }
}

/// A method's result and the connections to close because of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    pub result: T,
    pub kick: Vec<Kick>,
}

impl<T> From<T> for Outcome<T> {
    fn from(result: T) -> Outcome<T> {
        Outcome { result, kick: Vec::new() }
    }
}

fn invalid_params(method: &str, message: impl fmt::Display) -> ErrorShape {
    ErrorShape::invalid_request(ParamsError::new(method, message).0)
}

fn check_device_id(method: &str, id: &str) -> Result<(), ErrorShape> {
    if audit::plausible_device_id(id).is_none() {
        return Err(invalid_params(method, "deviceId must be 64 lowercase hex characters"));
    }
    Ok(())
}

fn check_request_id(method: &str, id: &str) -> Result<(), ErrorShape> {
    if id.is_empty() || id.len() > 64 {
        return Err(invalid_params(method, "requestId must be 1..64 characters"));
    }
    Ok(())
}

fn parse_role(method: &str, role: &str) -> Result<Role, ErrorShape> {
    Role::parse(role).ok_or_else(|| invalid_params(method, format!("unknown role: {}", clip(role, 32))))
}

fn unknown_request() -> ErrorShape {
    ErrorShape::invalid_request("unknown requestId")
}

fn unknown_device() -> ErrorShape {
    ErrorShape::invalid_request("unknown deviceId")
}

type Decision<T> = pincer_store::Result<Result<T, ErrorShape>>;

/// Audits a refused call (in the same transaction) and returns the refusal.
fn deny<T>(
    tx: &Tx<'_>,
    now: i64,
    act: &str,
    device_id: &str,
    caller: &Caller,
    error: ErrorShape,
    detail: Value,
) -> Decision<T> {
    let mut detail = detail;
    detail["error"] = json!(error.message);
    audit::write(tx, now, act, Some(device_id), Some(&caller.peer), with_actor(detail, caller))?;
    Ok(Err(error))
}

/// Who acted, added to an audit detail.
fn with_actor(mut detail: Value, caller: &Caller) -> Value {
    detail["by"] = json!({
        "auth": caller.auth.as_str(),
        "deviceId": caller.device_id,
    });
    detail
}

fn new_device_from_request(req: &pincer_store::PairingRequestRow, now: i64) -> DeviceRow {
    DeviceRow {
        device_id: req.device_id.clone(),
        public_key: req.public_key.clone(),
        display_name: None,
        label: None,
        platform: None,
        device_family: None,
        client_id: None,
        client_mode: None,
        roles: Vec::new(),
        scopes: Vec::new(),
        approved_via: None,
        created_at_ms: now,
        approved_at_ms: None,
        last_seen_at_ms: None,
        last_seen_ip: None,
    }
}

impl Devices {
    /// Runs `f` in one write transaction with the clock's `now`; events go out only on success.
    pub(crate) async fn decide<T, F>(&self, f: F) -> Result<T, ErrorShape>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>, i64, &mut Events) -> Decision<T> + Send + 'static,
    {
        let now = self.clock.now_ms();
        let (out, events) = self
            .store
            .write(move |tx| {
                let mut events = Events::new();
                let out = f(tx, now, &mut events)?;
                Ok((out, events))
            })
            .await
            .map_err(|e| store_unavailable(&e))?;
        if out.is_ok() {
            self.emit(events);
        }
        out
    }

    /// `device.pair.list {}` → `{pending, paired}`; tokens redacted to metadata. Non-admin
    /// device-token callers see only their own device.
    pub async fn pair_list(
        &self,
        caller: &Caller,
        _: NoParams,
        connected: &HashSet<String>,
    ) -> Result<Outcome<PairListResult>, ErrorShape> {
        let now = self.clock.now_ms();
        let (pending, paired) = self
            .store
            .read(move |rd| {
                let pending = rd.pending_pairing_requests(now)?;
                let paired = rd
                    .list_devices()?
                    .into_iter()
                    .map(|d| {
                        let tokens = rd.device_tokens(&d.device_id)?;
                        Ok((d, tokens))
                    })
                    .collect::<pincer_store::Result<Vec<(DeviceRow, Vec<DeviceTokenRow>)>>>()?;
                Ok((pending, paired))
            })
            .await
            .map_err(|e| store_unavailable(&e))?;
        let visible = |device_id: &str| !caller.own_device_only() || caller.device_id.as_deref() == Some(device_id);
        let pending: Vec<PendingRequest> = pending.iter().filter(|r| visible(&r.device_id)).map(pending_view).collect();
        let paired: Vec<PairedDevice> = paired
            .iter()
            .filter(|(d, _)| visible(&d.device_id))
            .map(|(d, tokens)| paired_view(d, tokens, Some(connected.contains(&d.device_id))))
            .collect();
        Ok(PairListResult { pending, paired, extra: Map::new() }.into())
    }

    /// `device.pair.approve {requestId}` → `{requestId, device}`. Merges the requested role and
    /// scopes into the grant and re-pins the device's platform; a live token of that role is
    /// widened in place (a role without a token gets one at the device's next connect).
    pub async fn pair_approve(&self, caller: &Caller, p: RequestRef) -> Result<Outcome<ApproveResult>, ErrorShape> {
        const METHOD: &str = wire::PairApprove::NAME;
        let RequestRef { request_id } = p;
        check_request_id(METHOD, &request_id)?;
        let caller = caller.clone();
        self.decide(move |tx, now, events| {
            tx.expire_pairing_requests(now)?;
            let Some(req) = tx.get_pairing_request(&request_id)?.filter(|r| r.status == "pending") else {
                return Ok(Err(unknown_request()));
            };
            // An unknown stored role is treated like any non-operator role: admin only.
            let role = Role::parse(&req.role);
            let scopes = scope_set(&req.scopes);
            let authorized = caller
                .may_act_on(&req.device_id)
                .and_then(|()| {
                    if role == Some(Role::Operator) {
                        Ok(())
                    } else {
                        caller.require_all(ScopeSet::of(&[Scope::Admin]))
                    }
                })
                .and_then(|()| caller.require_all(scopes));
            if let Err(e) = authorized {
                let detail = json!({ "requestId": req.request_id, "role": req.role, "scopes": req.scopes });
                return deny(tx, now, action::PAIRING_DENIED, &req.device_id, &caller, e, detail);
            }

            let claims: Value = serde_json::from_str(&req.client_json).unwrap_or(Value::Null);
            let claim = |key: &str| claims[key].as_str().map(|s| clip(s, 64)).filter(|s| !s.is_empty());
            let mut device = match tx.get_device(&req.device_id)? {
                Some(d) if d.public_key == req.public_key => d,
                stale => {
                    if stale.is_some() {
                        tx.delete_device(&req.device_id)?;
                    }
                    new_device_from_request(&req, now)
                }
            };
            if !device.roles.contains(&req.role) {
                device.roles.push(req.role.clone());
            }
            device.scopes = scope_names(scope_set(&device.scopes).union(scopes));
            device.platform = claim("platform");
            device.device_family = claim("deviceFamily");
            if let Some(name) = claims["displayName"].as_str().map(|n| clip(n, MAX_DISPLAY_NAME_CHARS)) {
                device.display_name = Some(name).filter(|n| !n.is_empty()).or(device.display_name);
            }
            device.client_id = claim("clientId").or(device.client_id);
            device.client_mode = claim("clientMode").or(device.client_mode);
            device.approved_at_ms = Some(now);
            device.approved_via = Some("manual".into());
            tx.put_device(&device)?;
            if let Some(role) = role {
                widen_token(tx, &device.device_id, role, scopes)?;
            }
            tx.resolve_pairing_request(&req.request_id, "approved", now)?;
            audit::write(
                tx,
                now,
                action::PAIRING_APPROVED,
                Some(&device.device_id),
                Some(&caller.peer),
                with_actor(
                    json!({
                        "via": "manual",
                        "requestId": req.request_id,
                        "reason": req.reason,
                        "role": req.role,
                        "scopes": req.scopes,
                        "requestRemoteIp": req.remote_ip,
                    }),
                    &caller,
                ),
            )?;
            events.push(resolved(&req.request_id, &device.device_id, "approved", now));
            tracing::info!("device pairing approved device={} role={}", device.device_id, req.role);
            let tokens = tx.device_tokens(&device.device_id)?;
            let device = paired_view(&device, &tokens, None);
            Ok(Ok(ApproveResult { request_id: req.request_id, device, extra: Map::new() }.into()))
        })
        .await
    }

    /// `device.pair.reject {requestId}` → `{requestId, deviceId}`.
    pub async fn pair_reject(&self, caller: &Caller, p: RequestRef) -> Result<Outcome<RejectResult>, ErrorShape> {
        const METHOD: &str = wire::PairReject::NAME;
        let RequestRef { request_id } = p;
        check_request_id(METHOD, &request_id)?;
        let caller = caller.clone();
        self.decide(move |tx, now, events| {
            tx.expire_pairing_requests(now)?;
            let Some(req) = tx.get_pairing_request(&request_id)?.filter(|r| r.status == "pending") else {
                return Ok(Err(unknown_request()));
            };
            if let Err(e) = caller.may_act_on(&req.device_id) {
                let detail = json!({ "requestId": req.request_id, "decision": "rejected" });
                return deny(tx, now, action::PAIRING_DENIED, &req.device_id, &caller, e, detail);
            }
            tx.resolve_pairing_request(&req.request_id, "rejected", now)?;
            audit::write(
                tx,
                now,
                action::PAIRING_REJECTED,
                Some(&req.device_id),
                Some(&caller.peer),
                with_actor(
                    json!({
                        "requestId": req.request_id,
                        "reason": req.reason,
                        "role": req.role,
                        "scopes": req.scopes,
                    }),
                    &caller,
                ),
            )?;
            events.push(resolved(&req.request_id, &req.device_id, "rejected", now));
            Ok(Ok(RejectResult { request_id: req.request_id, device_id: req.device_id, extra: Map::new() }.into()))
        })
        .await
    }

    /// `device.pair.remove {deviceId}` → `{deviceId, removed}`; kicks every connection of it.
    pub async fn pair_remove(&self, caller: &Caller, p: DeviceRef) -> Result<Outcome<RemoveDeviceResult>, ErrorShape> {
        const METHOD: &str = wire::PairRemove::NAME;
        let DeviceRef { device_id } = p;
        check_device_id(METHOD, &device_id)?;
        let caller = caller.clone();
        self.decide(move |tx, now, events| {
            if let Err(e) = caller.may_act_on(&device_id) {
                return deny(tx, now, action::PAIRING_DENIED, &device_id, &caller, e, json!({ "op": "remove" }));
            }
            if !tx.delete_device(&device_id)? {
                return Ok(Err(unknown_device()));
            }
            // A pending upgrade request of a removed device must not bring it back when someone
            // later approves the pending list.
            let mut detail = json!({});
            if let Some(req) = tx.pending_request_for_device(&device_id, now)? {
                tx.resolve_pairing_request(&req.request_id, "rejected", now)?;
                events.push(resolved(&req.request_id, &device_id, "rejected", now));
                detail["rejectedRequestId"] = json!(req.request_id);
            }
            audit::write(
                tx,
                now,
                action::PAIRING_REMOVED,
                Some(&device_id),
                Some(&caller.peer),
                with_actor(detail, &caller),
            )?;
            tracing::info!("device pairing removed device={device_id}");
            Ok(Ok(Outcome {
                result: RemoveDeviceResult { device_id: device_id.clone(), removed: true, extra: Map::new() },
                kick: vec![Kick { device_id, role: None, reason: "device removed", except_conn_id: None }],
            }))
        })
        .await
    }

    /// `device.pair.rename {deviceId, label}` → `{deviceId, label}`; label 1..64 characters.
    pub async fn pair_rename(&self, caller: &Caller, p: RenameParams) -> Result<Outcome<RenameResult>, ErrorShape> {
        const METHOD: &str = wire::PairRename::NAME;
        let RenameParams { device_id, label } = p;
        check_device_id(METHOD, &device_id)?;
        let label = label.trim().to_string();
        let chars = label.chars().count();
        if chars == 0 || chars > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(invalid_params(
                METHOD,
                format!("label must be 1..{MAX_LABEL_CHARS} characters without control characters"),
            ));
        }
        let caller = caller.clone();
        self.decide(move |tx, now, _| {
            if let Err(e) = caller.may_act_on(&device_id) {
                return deny(tx, now, action::PAIRING_DENIED, &device_id, &caller, e, json!({ "op": "rename" }));
            }
            if !tx.set_device_label(&device_id, Some(&label))? {
                return Ok(Err(unknown_device()));
            }
            let detail = with_actor(json!({ "label": label }), &caller);
            audit::write(tx, now, action::PAIRING_RENAMED, Some(&device_id), Some(&caller.peer), detail)?;
            Ok(Ok(RenameResult { device_id, label, extra: Map::new() }.into()))
        })
        .await
    }

    /// `device.token.rotate {deviceId, role, scopes?}` →
    /// `{deviceId, role, scopes, rotatedAtMs, token?, tokenDelivery}`.
    ///
    /// The new bearer is returned in-band to the device rotating its own token and to the local
    /// owner (the CLI on the gateway host, which mints tokens for headless automation); anyone else
    /// gets `tokenDelivery: "withheld-cross-device"` and the device picks its token up at its next
    /// shared-secret connect. Without `scopes` the token keeps its scopes (or gets the grant).
    pub async fn token_rotate(&self, caller: &Caller, p: RotateParams) -> Result<Outcome<RotateResult>, ErrorShape> {
        const METHOD: &str = wire::TokenRotate::NAME;
        let RotateParams { device_id, role, scopes } = p;
        check_device_id(METHOD, &device_id)?;
        let role = parse_role(METHOD, &role)?;
        let asked = match &scopes {
            Some(list) if list.len() > MAX_SCOPES => {
                return Err(invalid_params(METHOD, format!("at most {MAX_SCOPES} scopes")));
            }
            Some(list) => Some(
                ScopeSet::parse(list)
                    .map_err(|e| invalid_params(METHOD, format!("unknown scope: {}", clip(&e.0, 64))))?,
            ),
            None => None,
        };
        let caller = caller.clone();
        self.decide(move |tx, now, _| {
            let denied = |tx: &Tx<'_>, e: ErrorShape| {
                deny(tx, now, action::TOKEN_ROTATION_DENIED, &device_id, &caller, e, json!({ "role": role.as_str() }))
            };
            if let Err(e) = caller.may_act_on(&device_id) {
                return denied(tx, e);
            }
            let Some(device) = tx.get_device(&device_id)? else { return Ok(Err(unknown_device())) };
            if !device.roles.iter().any(|r| r == role.as_str()) {
                return denied(
                    tx,
                    ErrorShape::invalid_request(format!(
                        "device {device_id} is not approved for role {}; approve a role upgrade first",
                        role.as_str()
                    )),
                );
            }
            let grant = scope_set(&device.scopes);
            let existing = tx.get_device_token(&device_id, role.as_str())?;
            let held = existing.as_ref().filter(|t| t.revoked_at_ms.is_none()).map(|t| scope_set(&t.scopes));
            let target = match role {
                Role::Node => ScopeSet::EMPTY,
                Role::Operator => asked.or(held).unwrap_or(grant),
            };
            if !grant.covers(target) {
                return denied(
                    tx,
                    ErrorShape::invalid_request(format!(
                        "the requested scopes exceed what device {device_id} is approved for ({}); approve a scope upgrade first",
                        scope_names(grant).join(", ")
                    )),
                );
            }
            if let Err(e) = caller.require_all(target.union(held.unwrap_or_default())) {
                return denied(tx, e);
            }
            let (bearer, token_hash) = mint();
            tx.put_device_token(&DeviceTokenRow {
                device_id: device_id.clone(),
                role: role.as_str().to_string(),
                token_hash,
                scopes: scope_names(target),
                created_at_ms: existing.as_ref().map_or(now, |t| t.created_at_ms),
                rotated_at_ms: Some(now),
                revoked_at_ms: None,
                last_used_at_ms: None,
            })?;
            let own = caller.device_id.as_deref() == Some(device_id.as_str());
            let in_band = own || caller.is_local_owner();
            let delivery = if in_band { "in-band" } else { "withheld-cross-device" };
            let detail = with_actor(
                json!({ "role": role.as_str(), "scopes": scope_names(target), "tokenDelivery": delivery }),
                &caller,
            );
            audit::write(tx, now, action::TOKEN_ROTATED, Some(&device_id), Some(&caller.peer), detail)?;
            tracing::info!("device token rotated device={device_id} role={} delivery={delivery}", role.as_str());
            let result = RotateResult {
                device_id: device_id.clone(),
                role: role.as_str().into(),
                scopes: scope_names(target),
                rotated_at_ms: now,
                token_delivery: delivery.into(),
                token: in_band.then_some(bearer),
                extra: Map::new(),
            };
            let except_conn_id = own.then(|| caller.peer.conn_id.clone());
            Ok(Ok(Outcome {
                result,
                kick: vec![Kick { device_id, role: Some(role), reason: "device token rotated", except_conn_id }],
            }))
        })
        .await
    }

    /// `device.token.revoke {deviceId, role}` → `{deviceId, role, revokedAtMs}`; kicks the
    /// device's connections with that role.
    pub async fn token_revoke(&self, caller: &Caller, p: RevokeParams) -> Result<Outcome<RevokeResult>, ErrorShape> {
        const METHOD: &str = wire::TokenRevoke::NAME;
        let RevokeParams { device_id, role } = p;
        check_device_id(METHOD, &device_id)?;
        let role = parse_role(METHOD, &role)?;
        let caller = caller.clone();
        self.decide(move |tx, now, _| {
            let denied = |tx: &Tx<'_>, e: ErrorShape| {
                deny(tx, now, action::TOKEN_REVOCATION_DENIED, &device_id, &caller, e, json!({ "role": role.as_str() }))
            };
            if let Err(e) = caller.may_act_on(&device_id) {
                return denied(tx, e);
            }
            if tx.get_device(&device_id)?.is_none() {
                return Ok(Err(unknown_device()));
            }
            let Some(token) = tx.get_device_token(&device_id, role.as_str())? else {
                return Ok(Err(ErrorShape::invalid_request(format!(
                    "device {device_id} has no {} token",
                    role.as_str()
                ))));
            };
            if let Err(e) = caller.require_all(scope_set(&token.scopes)) {
                return denied(tx, e);
            }
            tx.revoke_device_token(&device_id, role.as_str(), now)?;
            let revoked_at = token.revoked_at_ms.unwrap_or(now);
            let detail = with_actor(json!({ "role": role.as_str(), "scopes": token.scopes }), &caller);
            audit::write(tx, now, action::TOKEN_REVOKED, Some(&device_id), Some(&caller.peer), detail)?;
            tracing::info!("device token revoked device={device_id} role={}", role.as_str());
            Ok(Ok(Outcome {
                result: RevokeResult {
                    device_id: device_id.clone(),
                    role: role.as_str().into(),
                    revoked_at_ms: revoked_at,
                    extra: Map::new(),
                },
                kick: vec![Kick { device_id, role: Some(role), reason: "device token revoked", except_conn_id: None }],
            }))
        })
        .await
    }
}
