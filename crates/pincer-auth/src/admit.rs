//! Admission of a verified device (research §5.1–§5.2): device-token verification, the pairing
//! decision (not-paired, metadata-, role- and scope-upgrade), Pincer's silent-approval policy,
//! deduplicated pending requests, and per-(device, role) token issuance.
//!
//! One admission is one store transaction, so the decision, its audit entries and any pending
//! request commit together; events go out after the commit.

use std::fmt;

use pincer_core::config::PairingConfig;
use pincer_protocol::{ClientId, ClientInfo, ErrorCode, ErrorShape, Role, ScopeSet, close, detail_code};
use pincer_store::{DeviceRow, DeviceTokenRow, PairingRequestRow, Tx};
use serde_json::{Value, json};

use crate::audit::{self, FailureTally, action};
use crate::proof::VerifiedDevice;
use crate::token::{mint, token_matches};
use crate::view::{client_json, clip, pending_view, scope_names, scope_set};
use crate::{AuthMethod, Devices, MAX_DISPLAY_NAME_CHARS, PENDING_TTL_MS, Peer, Rejection, store_unavailable};

pub(crate) type Events = Vec<(&'static str, Value)>;

/// What the connection proved besides the device key.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// The shared gateway secret matched. `device_token` is `auth.deviceToken` if the client also
    /// sent one; when it is valid no new token is issued.
    SharedSecret { device_token: Option<String> },
    /// Auth mode `none`: nothing to prove. A valid `device_token` makes the method `device-token`.
    AuthNone { device_token: Option<String> },
    /// Token mode without a matching shared secret: the device token is the credential
    /// (`auth.deviceToken`, or `auth.token` when it is not the shared secret).
    DeviceToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        match self {
            Credential::SharedSecret { device_token } => {
                f.debug_struct("SharedSecret").field("device_token", &redacted(device_token)).finish()
            }
            Credential::AuthNone { device_token } => {
                f.debug_struct("AuthNone").field("device_token", &redacted(device_token)).finish()
            }
            Credential::DeviceToken(_) => f.write_str("DeviceToken(<redacted>)"),
        }
    }
}

/// Everything [`Devices::admit`] needs about one `connect`.
#[derive(Debug, Clone)]
pub struct AdmitRequest {
    pub device: VerifiedDevice,
    pub role: Role,
    /// The scopes the client asked for (ignored for `node`).
    pub scopes: ScopeSet,
    pub credential: Credential,
    /// Loopback socket without `Forwarded`/`X-Forwarded-*`/`X-Real-IP` headers.
    pub direct_local: bool,
    /// The upgrade carried an `Origin` header (a browser).
    pub has_origin: bool,
    pub peer: Peer,
    pub client: ClientInfo,
}

/// An admitted device connection: what `hello-ok.auth` reports.
#[derive(Clone, PartialEq, Eq)]
pub struct Admitted {
    pub role: Role,
    /// The live, enforced scope set.
    pub scopes: ScopeSet,
    pub device_id: String,
    pub auth_method: AuthMethod,
    /// A newly issued or rotated bearer for `hello-ok.auth.deviceToken`; the only copy.
    pub device_token: Option<String>,
    /// When `device_token` was issued.
    pub issued_at_ms: Option<i64>,
}

impl fmt::Debug for Admitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("device_id", &self.device_id)
            .field("auth_method", &self.auth_method)
            .field("device_token", &self.device_token.as_ref().map(|_| "<redacted>"))
            .field("issued_at_ms", &self.issued_at_ms)
            .finish()
    }
}

/// Why a device must be (re-)approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingReason {
    NotPaired,
    RoleUpgrade,
    ScopeUpgrade,
    MetadataUpgrade,
}

impl PairingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "not-paired",
            PairingReason::RoleUpgrade => "role-upgrade",
            PairingReason::ScopeUpgrade => "scope-upgrade",
            PairingReason::MetadataUpgrade => "metadata-upgrade",
        }
    }

    /// The text after `pairing required: `.
    pub fn requirement(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "device is not approved yet",
            PairingReason::RoleUpgrade => "device is asking for a higher role than currently approved",
            PairingReason::ScopeUpgrade => "device is asking for more scopes than currently approved",
            PairingReason::MetadataUpgrade => "device identity changed and must be re-approved",
        }
    }

    fn remediation_hint(self, request_id: &str) -> String {
        let first = match self {
            PairingReason::NotPaired => "Approve this device from the pending pairing requests.",
            PairingReason::RoleUpgrade => "Review the requested role, then approve the pending upgrade.",
            PairingReason::ScopeUpgrade => "Review the requested scopes, then approve the pending upgrade.",
            PairingReason::MetadataUpgrade => "Review the changed device metadata, then approve the re-pairing.",
        };
        format!("{first} On the gateway host: `pincer devices approve {request_id}`.")
    }
}

/// Why a presented device token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenFailure {
    DeviceNotPaired,
    TokenMissing,
    TokenRevoked,
    TokenMismatch,
}

impl TokenFailure {
    fn reason(self) -> &'static str {
        match self {
            TokenFailure::DeviceNotPaired => "device-not-paired",
            TokenFailure::TokenMissing => "token-missing",
            TokenFailure::TokenRevoked => "token-revoked",
            TokenFailure::TokenMismatch => "token-mismatch",
        }
    }
}

impl Devices {
    /// Decides a `connect` from a device whose proof verified: admits it (possibly after a silent
    /// local approval, issuing a device token when it did not present a valid one), or refuses it
    /// with `NOT_PAIRED` (creating or refreshing a pending request) or a device-token error.
    ///
    /// Every outcome is audited; `device.pair.*` events are emitted after the commit.
    pub async fn admit(&self, req: AdmitRequest) -> Result<Admitted, Rejection> {
        let now = self.clock.now_ms();
        let config = self.config.clone();
        let failures = self.failures.clone();
        match self.store.write(move |tx| admit_in(tx, &req, &config, now, &failures)).await {
            Ok((outcome, events)) => {
                self.emit(events);
                outcome
            }
            Err(e) => Err(Rejection::new(store_unavailable(&e), close::INTERNAL)),
        }
    }
}

type Decided = (Result<Admitted, Rejection>, Events);

fn admit_in(
    tx: &Tx<'_>,
    req: &AdmitRequest,
    cfg: &PairingConfig,
    now: i64,
    failures: &FailureTally,
) -> pincer_store::Result<Decided> {
    let mut events = Events::new();
    tx.expire_pairing_requests(now)?;
    let dev = &req.device;
    let role = req.role;
    // Node tokens and grants carry no operator scopes.
    let requested = if role == Role::Node { ScopeSet::EMPTY } else { req.scopes };
    let stored = tx.get_device(&dev.device_id)?;
    let paired = stored.clone().filter(|d| d.public_key == dev.public_key);

    // §5.1: a presented device token.
    let (presented, required) = match &req.credential {
        Credential::SharedSecret { device_token } | Credential::AuthNone { device_token } => {
            (device_token.as_deref().filter(|t| !t.is_empty()), false)
        }
        Credential::DeviceToken(t) => (Some(t.as_str()), true),
    };
    let token = match presented.map(|t| check_token(tx, paired.as_ref(), role, t)).transpose()? {
        Some(Ok(row)) => Some(row),
        Some(Err(failure)) if required => {
            let rejection = device_token_rejection(failure);
            fail(tx, req, now, &rejection, failures)?;
            return Ok((Err(rejection), events));
        }
        // With a shared secret or in auth mode none a stale token is ignored and replaced.
        _ => None,
    };
    let method = match (&req.credential, &token) {
        (Credential::SharedSecret { .. }, _) => AuthMethod::Token,
        (Credential::AuthNone { .. }, None) => AuthMethod::None,
        (Credential::AuthNone { .. }, Some(_)) | (Credential::DeviceToken(_), _) => AuthMethod::DeviceToken,
    };

    // §5.2: the pairing decision. Each silent approval is saved before the next check, so a later
    // pending request does not lose it.
    let mut device = match paired {
        Some(d) => d,
        None => {
            if !silent(PairingReason::NotPaired, req, cfg, &[]) {
                let rejection = pend(tx, req, PairingReason::NotPaired, None, requested, now, &mut events)?;
                fail(tx, req, now, &rejection, failures)?;
                return Ok((Err(rejection), events));
            }
            if stored.is_some() {
                // Same id, different key encoding on record: start over with the new key.
                tx.delete_device(&dev.device_id)?;
            }
            let d = new_device(req, role, requested, now);
            tx.put_device(&d)?;
            approved_silently(tx, req, now, PairingReason::NotPaired, &d, role, requested)?;
            d
        }
    };

    if metadata_differs(&device, dev) {
        log_metadata_upgrade(req, method, &device);
        if !silent(PairingReason::MetadataUpgrade, req, cfg, &device.roles) {
            let rejection = pend(tx, req, PairingReason::MetadataUpgrade, Some(&device), requested, now, &mut events)?;
            fail(tx, req, now, &rejection, failures)?;
            return Ok((Err(rejection), events));
        }
        repin(&mut device, dev);
        tx.put_device(&device)?;
        approved_silently(tx, req, now, PairingReason::MetadataUpgrade, &device, role, requested)?;
    }

    if !device.roles.iter().any(|r| r == role.as_str()) {
        log_access_upgrade(PairingReason::RoleUpgrade, req, method, &device, requested);
        if !silent(PairingReason::RoleUpgrade, req, cfg, &device.roles) {
            let rejection = pend(tx, req, PairingReason::RoleUpgrade, Some(&device), requested, now, &mut events)?;
            fail(tx, req, now, &rejection, failures)?;
            return Ok((Err(rejection), events));
        }
        device.roles.push(role.as_str().to_string());
        tx.put_device(&device)?;
        approved_silently(tx, req, now, PairingReason::RoleUpgrade, &device, role, requested)?;
    }

    if !requested.is_empty() && !scope_set(&device.scopes).covers(requested) {
        log_access_upgrade(PairingReason::ScopeUpgrade, req, method, &device, requested);
        if !silent(PairingReason::ScopeUpgrade, req, cfg, &device.roles) {
            let rejection = pend(tx, req, PairingReason::ScopeUpgrade, Some(&device), requested, now, &mut events)?;
            fail(tx, req, now, &rejection, failures)?;
            return Ok((Err(rejection), events));
        }
        device.scopes = scope_names(scope_set(&device.scopes).union(requested));
        tx.put_device(&device)?;
        widen_token(tx, &device.device_id, role, requested)?;
        approved_silently(tx, req, now, PairingReason::ScopeUpgrade, &device, role, requested)?;
    }

    // On device-token auth the token's own scopes cap the connection (an owner may have rotated
    // it narrower than the grant).
    let token_scopes = token.as_ref().map(|t| scope_set(&t.scopes));
    if let (AuthMethod::DeviceToken, Some(held)) = (method, token_scopes)
        && !held.covers(requested)
    {
        let rejection = scope_mismatch_rejection(&device.device_id, requested, held);
        fail(tx, req, now, &rejection, failures)?;
        return Ok((Err(rejection), events));
    }

    let grant = scope_set(&device.scopes);
    let live = match (role, requested.is_empty(), method, token_scopes) {
        (Role::Node, ..) => ScopeSet::EMPTY,
        (_, false, ..) => requested,
        (_, true, AuthMethod::DeviceToken, Some(held)) => held,
        (_, true, ..) => grant,
    };

    refresh_metadata(&mut device, req, now);
    tx.put_device(&device)?;
    settle_covered_request(tx, req, &device, now, &mut events)?;

    let (device_token, issued_at_ms) = match &token {
        Some(_) => {
            tx.touch_device_token(&device.device_id, role.as_str(), now)?;
            (None, None)
        }
        None => (Some(issue_token(tx, &device, role, now)?), Some(now)),
    };
    audit::write(
        tx,
        now,
        action::AUTH_SUCCEEDED,
        Some(&device.device_id),
        Some(&req.peer),
        json!({
            "method": method.as_str(),
            "role": role.as_str(),
            "scopes": scope_names(live),
            "tokenIssued": device_token.is_some(),
            "payload": dev.payload.as_str(),
        }),
    )?;
    let admitted = Admitted {
        role,
        scopes: live,
        device_id: device.device_id.clone(),
        auth_method: method,
        device_token,
        issued_at_ms,
    };
    Ok((Ok(admitted), events))
}

fn check_token(
    tx: &Tx<'_>,
    paired: Option<&DeviceRow>,
    role: Role,
    presented: &str,
) -> pincer_store::Result<Result<DeviceTokenRow, TokenFailure>> {
    let Some(device) = paired else { return Ok(Err(TokenFailure::DeviceNotPaired)) };
    let Some(row) = tx.get_device_token(&device.device_id, role.as_str())? else {
        return Ok(Err(TokenFailure::TokenMissing));
    };
    // Compare first, so a revoked token and a wrong one take the same time to refuse.
    let matches = token_matches(presented, &row.token_hash);
    Ok(match (row.revoked_at_ms, matches) {
        (Some(_), _) => Err(TokenFailure::TokenRevoked),
        (None, false) => Err(TokenFailure::TokenMismatch),
        (None, true) => Ok(row),
    })
}

/// Pincer's silent-approval policy; remote connections are never silent, and a browser only as
/// the console (OpenClaw's rule: Control UI and webchat clients, whose `Origin` the upgrade has
/// already checked to be the gateway's own or allowed).
fn silent(reason: PairingReason, req: &AdmitRequest, cfg: &PairingConfig, roles: &[String]) -> bool {
    if !cfg.auto_approve_local || !req.direct_local {
        return false;
    }
    let console = matches!(req.client.id, ClientId::OpenclawControlUi | ClientId::WebchatUi | ClientId::Webchat);
    if req.has_origin && !console {
        return false;
    }
    match reason {
        PairingReason::NotPaired => true,
        // A browser's changed platform is re-approved by its owner.
        PairingReason::MetadataUpgrade => !req.has_origin,
        // A node device does not silently become an operator.
        PairingReason::RoleUpgrade => roles.iter().any(|r| r == Role::Operator.as_str()),
        // Paired scopes are a durable cap: only a connection that proved the shared secret may
        // widen them silently, and only when the owner opted in.
        PairingReason::ScopeUpgrade => {
            cfg.auto_approve_local_scope_upgrades && matches!(req.credential, Credential::SharedSecret { .. })
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn new_device(req: &AdmitRequest, role: Role, scopes: ScopeSet, now: i64) -> DeviceRow {
    DeviceRow {
        device_id: req.device.device_id.clone(),
        public_key: req.device.public_key.clone(),
        display_name: req.client.display_name.as_deref().map(|n| clip(n, MAX_DISPLAY_NAME_CHARS)).and_then(non_empty),
        label: None,
        platform: non_empty(clip(&req.device.platform, 64)),
        device_family: non_empty(clip(&req.device.device_family, 64)),
        client_id: Some(req.client.id.as_str().to_string()),
        client_mode: Some(req.client.mode.as_str().to_string()),
        roles: vec![role.as_str().to_string()],
        scopes: scope_names(scopes),
        approved_via: Some("silent".into()),
        created_at_ms: now,
        approved_at_ms: Some(now),
        last_seen_at_ms: None,
        last_seen_ip: None,
    }
}

fn pinned_differs(pinned: Option<&str>, claimed: &str) -> bool {
    matches!(pinned, Some(p) if !p.is_empty() && p != clip(claimed, 64))
}

fn metadata_differs(d: &DeviceRow, dev: &VerifiedDevice) -> bool {
    pinned_differs(d.platform.as_deref(), &dev.platform)
        || pinned_differs(d.device_family.as_deref(), &dev.device_family)
}

fn repin(d: &mut DeviceRow, dev: &VerifiedDevice) {
    d.platform = non_empty(clip(&dev.platform, 64));
    d.device_family = non_empty(clip(&dev.device_family, 64));
}

/// Last seen, what the client calls itself, and pins that were never set.
fn refresh_metadata(d: &mut DeviceRow, req: &AdmitRequest, now: i64) {
    d.last_seen_at_ms = Some(now);
    d.last_seen_ip = Some(req.peer.remote_ip.to_string());
    if let Some(name) = req.client.display_name.as_deref().map(|n| clip(n, MAX_DISPLAY_NAME_CHARS)).and_then(non_empty)
    {
        d.display_name = Some(name);
    }
    d.client_id = Some(req.client.id.as_str().to_string());
    d.client_mode = Some(req.client.mode.as_str().to_string());
    if d.platform.as_deref().unwrap_or("").is_empty() {
        d.platform = non_empty(clip(&req.device.platform, 64));
    }
    if d.device_family.as_deref().unwrap_or("").is_empty() {
        d.device_family = non_empty(clip(&req.device.device_family, 64));
    }
}

/// Adds `scopes` to the live token of (device, role), so the device's cached bearer carries an
/// approved upgrade without a new token it could not receive.
pub(crate) fn widen_token(tx: &Tx<'_>, device_id: &str, role: Role, scopes: ScopeSet) -> pincer_store::Result<()> {
    if role != Role::Operator {
        return Ok(());
    }
    if let Some(mut t) = tx.get_device_token(device_id, role.as_str())?.filter(|t| t.revoked_at_ms.is_none()) {
        t.scopes = scope_names(scope_set(&t.scopes).union(scopes));
        tx.put_device_token(&t)?;
    }
    Ok(())
}

/// Mints the (device, role) token with the device's grant, replacing any earlier one.
fn issue_token(tx: &Tx<'_>, device: &DeviceRow, role: Role, now: i64) -> pincer_store::Result<String> {
    let existing = tx.get_device_token(&device.device_id, role.as_str())?;
    let (bearer, token_hash) = mint();
    tx.put_device_token(&DeviceTokenRow {
        device_id: device.device_id.clone(),
        role: role.as_str().to_string(),
        token_hash,
        scopes: if role == Role::Operator { device.scopes.clone() } else { Vec::new() },
        created_at_ms: existing.as_ref().map_or(now, |t| t.created_at_ms),
        rotated_at_ms: existing.as_ref().map(|_| now),
        revoked_at_ms: None,
        last_used_at_ms: Some(now),
    })?;
    Ok(bearer)
}

fn approved_silently(
    tx: &Tx<'_>,
    req: &AdmitRequest,
    now: i64,
    reason: PairingReason,
    device: &DeviceRow,
    role: Role,
    requested: ScopeSet,
) -> pincer_store::Result<()> {
    tracing::info!(
        "device pairing auto-approved device={} role={} reason={}",
        device.device_id,
        role.as_str(),
        reason.as_str()
    );
    audit::write(
        tx,
        now,
        action::PAIRING_APPROVED,
        Some(&device.device_id),
        Some(&req.peer),
        json!({
            "via": "silent",
            "reason": reason.as_str(),
            "role": role.as_str(),
            "scopes": scope_names(requested),
            "roles": device.roles,
            "grantedScopes": device.scopes,
        }),
    )
}

/// A live pending request that the grant now covers is approved with it.
fn settle_covered_request(
    tx: &Tx<'_>,
    req: &AdmitRequest,
    device: &DeviceRow,
    now: i64,
    events: &mut Events,
) -> pincer_store::Result<()> {
    let Some(pending) = tx.pending_request_for_device(&device.device_id, now)? else { return Ok(()) };
    let claims: Value = serde_json::from_str(&pending.client_json).unwrap_or(Value::Null);
    let claims_match = claims["platform"].as_str().unwrap_or("") == device.platform.as_deref().unwrap_or("")
        && claims["deviceFamily"].as_str().unwrap_or("") == device.device_family.as_deref().unwrap_or("");
    let covered = device.roles.contains(&pending.role) && scope_set(&device.scopes).covers(scope_set(&pending.scopes));
    if !(covered && claims_match && pending.public_key == device.public_key) {
        return Ok(());
    }
    if tx.resolve_pairing_request(&pending.request_id, "approved", now)? {
        events.push(resolved(&pending.request_id, &device.device_id, "approved", now));
        audit::write(
            tx,
            now,
            action::PAIRING_APPROVED,
            Some(&device.device_id),
            Some(&req.peer),
            json!({ "via": "silent", "requestId": pending.request_id, "reason": pending.reason, "covered": true }),
        )?;
    }
    Ok(())
}

pub(crate) fn resolved(request_id: &str, device_id: &str, decision: &str, now: i64) -> (&'static str, Value) {
    ("device.pair.resolved", json!({ "requestId": request_id, "deviceId": device_id, "decision": decision, "ts": now }))
}

/// Creates, refreshes or supersedes the device's pending request and returns the `NOT_PAIRED`
/// rejection naming it.
fn pend(
    tx: &Tx<'_>,
    req: &AdmitRequest,
    reason: PairingReason,
    device: Option<&DeviceRow>,
    requested: ScopeSet,
    now: i64,
    events: &mut Events,
) -> pincer_store::Result<Rejection> {
    let dev = &req.device;
    let role = req.role;
    let claims = client_json(&req.client, dev);
    let ip = req.peer.remote_ip.to_string();
    let expires = now.saturating_add(PENDING_TTL_MS);
    let existing = tx.pending_request_for_device(&dev.device_id, now)?;
    let same_claims = |old: &PairingRequestRow| {
        let (a, b): (Value, Value) = (
            serde_json::from_str(&old.client_json).unwrap_or_default(),
            serde_json::from_str(&claims).unwrap_or_default(),
        );
        a["platform"] == b["platform"] && a["deviceFamily"] == b["deviceFamily"]
    };
    let request = match existing {
        // An identical or covered re-request keeps its id and lives another five minutes.
        Some(old)
            if old.reason == reason.as_str()
                && old.role == role.as_str()
                && old.public_key == dev.public_key
                && scope_set(&old.scopes).covers(requested)
                && same_claims(&old) =>
        {
            tx.refresh_pairing_request(&old.request_id, now, expires, Some(&ip), &claims)?;
            audit::write(
                tx,
                now,
                action::PAIRING_REQUESTED,
                Some(&dev.device_id),
                Some(&req.peer),
                json!({
                    "requestId": old.request_id,
                    "reason": reason.as_str(),
                    "role": role.as_str(),
                    "scopes": old.scopes,
                    "refreshed": true,
                }),
            )?;
            PairingRequestRow {
                refreshed_at_ms: now,
                expires_at_ms: expires,
                remote_ip: Some(ip),
                client_json: claims,
                ..old
            }
        }
        // A changed one supersedes it: the old id is resolved as rejected, and the new request
        // keeps what the old one asked for (same role), so nothing asked earlier is lost.
        old => {
            let mut scopes = requested;
            if let Some(old) = &old {
                tx.resolve_pairing_request(&old.request_id, "superseded", now)?;
                events.push(resolved(&old.request_id, &dev.device_id, "rejected", now));
                if old.role == role.as_str() {
                    scopes = scopes.union(scope_set(&old.scopes));
                }
            }
            let row = PairingRequestRow {
                request_id: uuid::Uuid::new_v4().to_string(),
                device_id: dev.device_id.clone(),
                public_key: dev.public_key.clone(),
                reason: reason.as_str().to_string(),
                role: role.as_str().to_string(),
                scopes: scope_names(scopes),
                client_json: claims,
                remote_ip: Some(ip),
                created_at_ms: now,
                refreshed_at_ms: now,
                expires_at_ms: expires,
                status: "pending".into(),
                resolved_at_ms: None,
            };
            tx.insert_pairing_request(&row)?;
            events.push(("device.pair.requested", serde_json::to_value(pending_view(&row)).expect("views serialise")));
            audit::write(
                tx,
                now,
                action::PAIRING_REQUESTED,
                Some(&dev.device_id),
                Some(&req.peer),
                json!({
                    "requestId": row.request_id,
                    "reason": reason.as_str(),
                    "role": role.as_str(),
                    "scopes": row.scopes,
                    "supersedes": old.map(|o| o.request_id),
                }),
            )?;
            row
        }
    };
    Ok(not_paired_rejection(reason, &request, device))
}

fn not_paired_rejection(reason: PairingReason, request: &PairingRequestRow, device: Option<&DeviceRow>) -> Rejection {
    let mut details = json!({
        "code": detail_code::PAIRING_REQUIRED,
        "reason": reason.as_str(),
        "requestId": request.request_id,
        "remediationHint": reason.remediation_hint(&request.request_id),
        "deviceId": request.device_id,
        "requestedRole": request.role,
        "requestedScopes": request.scopes,
    });
    if let Some(d) = device {
        details["approvedRoles"] = json!(d.roles);
        details["approvedScopes"] = json!(d.scopes);
    }
    details["recommendedNextStep"] = json!("wait_then_retry");
    details["retryable"] = json!(true);
    details["pauseReconnect"] = json!(false);
    let error = ErrorShape::new(ErrorCode::NotPaired, format!("pairing required: {}", reason.requirement()))
        .with_details(details);
    Rejection::new(error, close::POLICY).with_close_reason(&format!(
        "pairing required: {} (requestId: {})",
        reason.requirement(),
        request.request_id
    ))
}

fn device_token_rejection(failure: TokenFailure) -> Rejection {
    let error = ErrorShape::invalid_request("unauthorized: device token mismatch (rotate/reissue device token)")
        .with_details(json!({
            "code": detail_code::AUTH_DEVICE_TOKEN_MISMATCH,
            "authReason": "device_token_mismatch",
            "reason": failure.reason(),
            "canRetryWithDeviceToken": false,
            "recommendedNextStep": "update_auth_credentials",
            "remediationHint": "Connect once with the gateway token to receive a new device token, \
                                or have the owner run `pincer devices rotate <deviceId>`.",
        }));
    Rejection::new(error, close::POLICY)
}

fn scope_mismatch_rejection(device_id: &str, requested: ScopeSet, held: ScopeSet) -> Rejection {
    let error = ErrorShape::invalid_request(
        "unauthorized: device token scope mismatch (the token does not carry the requested scopes)",
    )
    .with_details(json!({
        "code": detail_code::AUTH_SCOPE_MISMATCH,
        "authReason": "scope_mismatch",
        "reason": "scope-mismatch",
        "requestedScopes": scope_names(requested),
        "tokenScopes": scope_names(held),
        "canRetryWithDeviceToken": false,
        "recommendedNextStep": "update_auth_credentials",
        "remediationHint": format!(
            "Ask for fewer scopes, or have the owner run `pincer devices rotate {device_id}` with the needed --scope flags."
        ),
    }));
    Rejection::new(error, close::POLICY)
}

/// Audits a refused connect inside the admission transaction, or counts it toward its address's
/// summary row.
fn fail(
    tx: &Tx<'_>,
    req: &AdmitRequest,
    now: i64,
    rejection: &Rejection,
    failures: &FailureTally,
) -> pincer_store::Result<()> {
    let (own_row, ended) = failures.note(req.peer.remote_ip, now, &audit::failure_reason(rejection));
    for summary in &ended {
        audit::write_summary(tx, summary)?;
    }
    if !own_row {
        return Ok(());
    }
    let details = rejection.error.details.as_ref();
    audit::write(
        tx,
        now,
        action::AUTH_FAILED,
        Some(&req.device.device_id),
        Some(&req.peer),
        json!({
            "code": rejection.error.code,
            "detailCode": rejection.detail_code(),
            "reason": details.and_then(|d| d.get("reason")).cloned(),
            "requestId": details.and_then(|d| d.get("requestId")).cloned(),
            "message": rejection.error.message,
            "closeCode": rejection.close_code,
        }),
    )
}

/// Keeps attacker-chosen text on one grep-able log line.
fn log_safe(s: &str) -> String {
    let s: String = s.chars().take(64).map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect();
    if s.is_empty() { "<none>".into() } else { s }
}

fn csv_or_none(items: &[String]) -> String {
    if items.is_empty() { "<none>".into() } else { items.join(",") }
}

fn log_access_upgrade(
    reason: PairingReason,
    req: &AdmitRequest,
    method: AuthMethod,
    device: &DeviceRow,
    requested: ScopeSet,
) {
    tracing::warn!(
        "security audit: device access upgrade requested reason={} device={} ip={} auth={} roleFrom={} roleTo={} scopesFrom={} scopesTo={} client={} conn={}",
        reason.as_str(),
        device.device_id,
        req.peer.remote_ip,
        method.as_str(),
        csv_or_none(&device.roles),
        req.role.as_str(),
        csv_or_none(&device.scopes),
        csv_or_none(&scope_names(requested)),
        req.client.id.as_str(),
        log_safe(&req.peer.conn_id),
    );
}

fn log_metadata_upgrade(req: &AdmitRequest, method: AuthMethod, device: &DeviceRow) {
    tracing::warn!(
        "security audit: device metadata upgrade requested reason=metadata-upgrade device={} ip={} auth={} payload={} claimedPlatform={} pinnedPlatform={} claimedDeviceFamily={} pinnedDeviceFamily={} client={} conn={}",
        device.device_id,
        req.peer.remote_ip,
        method.as_str(),
        req.device.payload.as_str(),
        log_safe(&req.device.platform),
        log_safe(device.platform.as_deref().unwrap_or("")),
        log_safe(&req.device.device_family),
        log_safe(device.device_family.as_deref().unwrap_or("")),
        req.client.id.as_str(),
        log_safe(&req.peer.conn_id),
    );
}
