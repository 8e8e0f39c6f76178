//! The `connect` handshake: strict params, version negotiation, shared-token auth with failure
//! limiting, the role and the live scope set, then `hello-ok`.

use pincer_core::metrics;
use std::net::SocketAddr;
use std::sync::Arc;

use pincer_core::config::AuthMode;
use pincer_protocol::{
    ClientId, ClientMode, ConnectParams, ErrorShape, Features, HelloAuth, HelloOk, MIN_PROBE_PROTOCOL,
    PROTOCOL_VERSION, Policy, RequestFrame, Role, ScopeSet, ServerInfo, Snapshot, StateVersion, close, detail_code,
    negotiate_protocol, parse_connect_params,
};
use serde_json::json;
use subtle::ConstantTimeEq;

use pincer_auth::{AdmitRequest, AuthMethod, Credential, Peer};

use crate::state::ClientPresence;
use crate::state::{AppState, Caller};

/// Facts about the HTTP upgrade request that the auth policy needs.
#[derive(Debug, Clone)]
pub struct Upgrade {
    pub conn_id: String,
    pub remote: SocketAddr,
    pub has_origin: bool,
    pub forwarded: bool,
}

impl Upgrade {
    /// A loopback socket with no proxy headers: the only locality that keeps a CLI's declared scopes.
    pub fn direct_local(&self) -> bool {
        self.remote.ip().is_loopback() && !self.forwarded
    }

    /// Exempt from the failed-auth lockout (with `exemptLoopback`): direct loopback and no browser
    /// `Origin`, since any web page the owner opens can reach loopback.
    pub fn exempt_from_lockout(&self) -> bool {
        self.direct_local() && !self.has_origin
    }
}

/// A refused handshake: the response to send (when the frame was a request) and the close.
#[derive(Debug)]
pub struct Rejection {
    pub error: ErrorShape,
    pub close_code: u16,
    pub close_reason: String,
    /// Already written to the audit log.
    audited: bool,
}

impl Rejection {
    fn new(error: ErrorShape, close_code: u16) -> Rejection {
        let close_reason = error.message.clone();
        Rejection { error, close_code, close_reason, audited: false }
    }
}

impl From<pincer_auth::Rejection> for Rejection {
    fn from(r: pincer_auth::Rejection) -> Rejection {
        Rejection { error: r.error, close_code: r.close_code, close_reason: r.close_reason, audited: false }
    }
}

/// What the shared-secret check found.
enum SecretCheck {
    Matched,
    AuthNone,
    /// A token that is not the shared secret: a device token, if a device signs with it.
    NotMatched(String),
}

/// Events Pincer may push; `features.events`.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "shutdown",
    "health",
    "cron",
    "inbox",
    "device.pair.requested",
    "device.pair.resolved",
    "presence",
    "sessions.changed",
    "agent",
    "chat",
    "session.message",
    "exec.approval.requested",
    "exec.approval.resolved",
];

/// Runs the connect policy for the first request of a connection: params, version, shared
/// secret (with failure limiting), then — when the client signs with a device key — the proof over
/// this connection's `nonce` and the pairing state machine. Every decision is audited.
pub async fn authenticate(
    state: &AppState,
    upgrade: &Upgrade,
    frame: &RequestFrame,
    nonce: &str,
) -> Result<(Caller, ConnectParams, Option<(String, i64)>), Rejection> {
    let mut peer = Peer { conn_id: upgrade.conn_id.clone(), remote_ip: upgrade.remote.ip(), client_id: None };
    let result = admit(state, upgrade, frame, nonce, &mut peer).await;
    if let Err(rejection) = &result
        && !rejection.audited
    {
        // `Devices::admit` audits its own refusals; everything before it is audited here.
        let claimed =
            frame.params.as_ref().and_then(|p| p.get("device")).and_then(|d| d.get("id")).and_then(|v| v.as_str());
        let r = pincer_auth::Rejection {
            error: rejection.error.clone(),
            close_code: rejection.close_code,
            close_reason: rejection.close_reason.clone(),
        };
        state.devices.record_auth_failure(&peer, claimed, &r).await;
    }
    result
}

async fn admit(
    state: &AppState,
    upgrade: &Upgrade,
    frame: &RequestFrame,
    nonce: &str,
    peer: &mut Peer,
) -> Result<(Caller, ConnectParams, Option<(String, i64)>), Rejection> {
    let params = parse_connect_params(frame.params.as_ref())
        .map_err(|message| Rejection::new(ErrorShape::invalid_request(message), close::POLICY))?;
    peer.client_id = Some(params.client.id);

    negotiate_version(&params)?;

    let role = match params.role.as_deref() {
        None => Role::Operator,
        Some(r) => Role::parse(r)
            .ok_or_else(|| Rejection::new(ErrorShape::invalid_request(format!("invalid role: {r}")), close::POLICY))?,
    };
    let requested = ScopeSet::parse(params.scopes.as_deref().unwrap_or(&[])).map_err(|e| {
        Rejection::new(ErrorShape::invalid_request(format!("invalid connect params: {e}")), close::POLICY)
    })?;

    let credential = check_shared_secret(state, upgrade, &params)?;
    let direct_local = upgrade.direct_local();

    if let Some(proof) = &params.device {
        let verified =
            pincer_auth::verify_proof(proof, &params, nonce, state.clock.now_ms()).map_err(Rejection::from)?;
        let credential = match credential {
            SecretCheck::Matched => Credential::SharedSecret { device_token: device_token_of(&params) },
            SecretCheck::AuthNone => Credential::AuthNone { device_token: device_token_of(&params) },
            SecretCheck::NotMatched(token) => Credential::DeviceToken(token),
        };
        let admitted = state
            .devices
            .admit(AdmitRequest {
                device: verified,
                role,
                scopes: requested,
                credential,
                direct_local,
                has_origin: upgrade.has_origin,
                peer: peer.clone(),
                client: params.client.clone(),
            })
            .await
            .map_err(|r| {
                if r.detail_code() == Some(detail_code::AUTH_DEVICE_TOKEN_MISMATCH) {
                    state.limiter.record_failure(
                        upgrade.remote.ip(),
                        upgrade.exempt_from_lockout(),
                        state.clock.now_ms(),
                    );
                }
                let mut rejection = Rejection::from(r);
                rejection.audited = true;
                rejection
            })?;
        let caller = Caller {
            conn_id: upgrade.conn_id.clone(),
            role: admitted.role,
            scopes: admitted.scopes,
            auth: admitted.auth_method,
            device_id: Some(admitted.device_id),
            client_id: params.client.id,
            client_version: params.client.version.clone(),
            presence: ClientPresence::of(&params, state.clock.now_ms()),
            remote: upgrade.remote,
            direct_local,
        };
        let token = admitted.device_token.map(|t| (t, admitted.issued_at_ms.unwrap_or_else(|| state.clock.now_ms())));
        return Ok((caller, params, token));
    }

    let auth = match credential {
        SecretCheck::Matched => AuthMethod::Token,
        SecretCheck::AuthNone => AuthMethod::None,
        SecretCheck::NotMatched(_) => return Err(token_mismatch(state, upgrade)),
    };
    if role == Role::Node {
        return Err(Rejection::new(
            ErrorShape::new(pincer_protocol::ErrorCode::NotPaired, "device identity required")
                .with_details(json!({"code": detail_code::DEVICE_IDENTITY_REQUIRED})),
            close::POLICY,
        ));
    }
    let keeps_scopes = device_less_keeps_scopes(params.client.id, params.client.mode, auth, upgrade);
    let scopes = if keeps_scopes { requested } else { ScopeSet::EMPTY };
    state.devices.record_connect(peer, auth, role, scopes).await;
    let caller = Caller {
        conn_id: upgrade.conn_id.clone(),
        role,
        scopes,
        auth,
        device_id: None,
        client_id: params.client.id,
        client_version: params.client.version.clone(),
        presence: ClientPresence::of(&params, state.clock.now_ms()),
        remote: upgrade.remote,
        direct_local,
    };
    Ok((caller, params, None))
}

/// Whether a connection without a device keeps the scopes it declared; everyone else holding the
/// shared secret gets no scopes (health only). OpenClaw 2026.9.6's rule (`message-handler`'s
/// `shouldSkipLocalBackendSelfPairing` / `shouldPreserveLocalCliSharedAuthScopes`), on a loopback
/// socket with no proxy headers (Pincer's `direct_local`, which covers OpenClaw's `direct_local`,
/// `cli_container_local` and `shared_secret_loopback_local`) and no browser `Origin`:
/// - the local backend helper, `gateway-client`/`backend` (the stock CLI's `status`, `agent`,
///   `gateway call` connections), with the shared secret or under `auth.mode: "none"`;
/// - the local CLI, `cli`/`cli`, with the shared secret (Pincer also under `auth.mode: "none"`,
///   where OpenClaw refuses a device-less CLI outright).
///
/// A non-loopback or proxied connection, or one with an `Origin`, never keeps them.
fn device_less_keeps_scopes(client: ClientId, mode: ClientMode, auth: AuthMethod, upgrade: &Upgrade) -> bool {
    let local = upgrade.direct_local() && !upgrade.has_origin;
    let trusted_auth = matches!(auth, AuthMethod::Token | AuthMethod::None);
    let local_client =
        matches!((client, mode), (ClientId::Cli, ClientMode::Cli) | (ClientId::GatewayClient, ClientMode::Backend));
    local && trusted_auth && local_client
}

fn device_token_of(params: &ConnectParams) -> Option<String> {
    params.auth.as_ref().and_then(|a| a.device_token.clone()).filter(|t| !t.is_empty())
}

fn negotiate_version(params: &ConnectParams) -> Result<(), Rejection> {
    let (min, max) = (params.min_protocol, params.max_protocol);
    if negotiate_protocol(params).is_some() {
        return Ok(());
    }
    Err(Rejection::new(
        ErrorShape::invalid_request("protocol mismatch").with_details(json!({
            "code": detail_code::PROTOCOL_MISMATCH,
            "clientMinProtocol": min,
            "clientMaxProtocol": max,
            "expectedProtocol": PROTOCOL_VERSION,
            "minimumProbeProtocol": MIN_PROBE_PROTOCOL,
        })),
        close::PROTOCOL_ERROR,
    ))
}

fn check_shared_secret(state: &AppState, upgrade: &Upgrade, params: &ConnectParams) -> Result<SecretCheck, Rejection> {
    let ip = upgrade.remote.ip();
    let now = state.clock.now_ms();
    if let Err(retry_after) = state.limiter.check(ip, upgrade.exempt_from_lockout(), now) {
        return Err(Rejection::new(
            ErrorShape::invalid_request("unauthorized: too many failed authentication attempts (retry later)")
                .retry_after(retry_after)
                .with_details(
                    json!({"code": detail_code::AUTH_RATE_LIMITED, "recommendedNextStep": "wait_then_retry"}),
                ),
            close::POLICY,
        ));
    }
    let auth = params.auth.as_ref();
    let presented = auth.and_then(|a| a.token.as_deref().or(a.password.as_deref())).filter(|t| !t.is_empty());
    match state.config().gateway.auth.mode {
        AuthMode::None => Ok(SecretCheck::AuthNone),
        AuthMode::Token => {
            let config = state.config();
            let expected = config.token().unwrap_or_default();
            if let Some(p) = presented
                && !expected.is_empty()
                && bool::from(p.as_bytes().ct_eq(expected.as_bytes()))
            {
                state.limiter.record_success(ip);
                return Ok(SecretCheck::Matched);
            }
            // A signed device may present its device token instead ("shared-token-fallback").
            let device_token = device_token_of(params).or_else(|| presented.map(String::from));
            match (params.device.is_some(), device_token, presented) {
                (true, Some(token), _) => Ok(SecretCheck::NotMatched(token)),
                (_, _, Some(_)) => Err(token_mismatch(state, upgrade)),
                (_, _, None) => Err(Rejection::new(
                    ErrorShape::invalid_request(
                        "unauthorized: gateway token missing (pass --token, set PINCER_GATEWAY_TOKEN, or use gateway.auth.token from the gateway's config)",
                    )
                    .with_details(json!({
                        "code": detail_code::AUTH_TOKEN_MISSING,
                        "authReason": "token_missing",
                        "canRetryWithDeviceToken": false,
                        "recommendedNextStep": "update_auth_configuration",
                    })),
                    close::POLICY,
                )),
            }
        }
    }
}

fn token_mismatch(state: &AppState, upgrade: &Upgrade) -> Rejection {
    let locked = state.limiter.record_failure(upgrade.remote.ip(), upgrade.exempt_from_lockout(), state.clock.now_ms());
    state.metrics.inc(&metrics::AUTH_FAILURES_TOTAL, &[("reason", "token_mismatch")]);
    tracing::warn!(conn = %upgrade.conn_id, remote = %upgrade.remote, locked, "unauthorized: gateway token mismatch");
    Rejection::new(
        ErrorShape::invalid_request(
            "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
        )
        .with_details(json!({
            "code": detail_code::AUTH_TOKEN_MISMATCH,
            "authReason": "token_mismatch",
            "canRetryWithDeviceToken": false,
            "recommendedNextStep": "update_auth_credentials",
        })),
        close::POLICY,
    )
}

/// The `hello-ok` payload for an accepted connection.
pub fn hello_ok(
    state: &Arc<AppState>,
    caller: &Caller,
    health: serde_json::Value,
    device_token: Option<(String, i64)>,
) -> HelloOk {
    let mut methods = state.methods.names();
    methods.sort();
    HelloOk {
        kind: "hello-ok".into(),
        protocol: PROTOCOL_VERSION,
        server: ServerInfo {
            version: crate::VERSION.into(),
            conn_id: caller.conn_id.clone(),
            build_id: None,
            boot_id: Some(state.boot_id.clone()),
            extra: Default::default(),
        },
        features: Features {
            methods,
            events: EVENTS.iter().map(|e| e.to_string()).collect(),
            // `openclaw models list` demands this one before it calls `models.list`.
            capabilities: Some(vec![crate::methods::gateway::PUBLISHED_MODEL_CATALOG.into()]),
        },
        snapshot: Snapshot {
            presence: vec![],
            health,
            state_version: StateVersion::default(),
            uptime_ms: state.uptime_ms(),
            config_path: Some(state.paths.config_path.display().to_string()),
            state_dir: Some(state.paths.state_dir.display().to_string()),
            auth_mode: Some(match state.config().gateway.auth.mode {
                AuthMode::Token => "token".into(),
                AuthMode::None => "none".into(),
            }),
            session_defaults: Some(pincer_agent::api::session_defaults(&state.agents)),
            extra: Default::default(),
        },
        auth: HelloAuth {
            role: caller.role.as_str().into(),
            scopes: caller.scopes.names().into_iter().map(String::from).collect(),
            method: Some(caller.auth.as_str().into()),
            issued_at_ms: device_token.as_ref().map(|(_, at)| *at),
            device_token: device_token.map(|(t, _)| t),
            extra: Default::default(),
        },
        policy: Policy::pincer(),
        extra: Default::default(),
    }
}
