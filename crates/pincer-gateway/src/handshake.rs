//! The `connect` handshake: strict params, version negotiation, shared-token auth with failure
//! limiting, the role and the live scope set, then `hello-ok`.

use std::net::SocketAddr;
use std::sync::Arc;

use pincer_core::config::AuthMode;
use pincer_protocol::{
    ClientId, ClientMode, ConnectParams, ErrorShape, Features, HelloAuth, HelloOk, MIN_PROBE_PROTOCOL,
    PROTOCOL_VERSION, Policy, RequestFrame, Role, ScopeSet, ServerInfo, Snapshot, StateVersion, close, detail_code,
    parse_connect_params,
};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::state::{AppState, AuthMethod, Caller};

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
}

/// A refused handshake: the response to send (when the frame was a request) and the close.
#[derive(Debug)]
pub struct Rejection {
    pub error: ErrorShape,
    pub close_code: u16,
    pub close_reason: String,
}

impl Rejection {
    fn new(error: ErrorShape, close_code: u16) -> Rejection {
        let close_reason = error.message.clone();
        Rejection { error, close_code, close_reason }
    }
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
];

/// Runs the connect policy for the first request of a connection.
pub fn authenticate(
    state: &AppState,
    upgrade: &Upgrade,
    frame: &RequestFrame,
) -> Result<(Caller, ConnectParams), Rejection> {
    let params = parse_connect_params(frame.params.as_ref())
        .map_err(|message| Rejection::new(ErrorShape::invalid_request(message), close::POLICY))?;

    negotiate_version(&params)?;

    let role = match params.role.as_deref() {
        None => Role::Operator,
        Some(r) => Role::parse(r)
            .ok_or_else(|| Rejection::new(ErrorShape::invalid_request(format!("invalid role: {r}")), close::POLICY))?,
    };
    let requested = ScopeSet::parse(params.scopes.as_deref().unwrap_or(&[])).map_err(|e| {
        Rejection::new(ErrorShape::invalid_request(format!("invalid connect params: {e}")), close::POLICY)
    })?;

    if params.device.is_some() {
        return Err(Rejection::new(
            ErrorShape::invalid_request(
                "device identity is not supported by this Pincer build yet; connect with the gateway token (gateway.auth.token)",
            )
            .with_details(json!({"code": detail_code::DEVICE_IDENTITY_REQUIRED})),
            close::POLICY,
        ));
    }

    let auth = check_shared_secret(state, upgrade, &params)?;

    if role == Role::Node {
        return Err(Rejection::new(
            ErrorShape::new(pincer_protocol::ErrorCode::NotPaired, "device identity required")
                .with_details(json!({"code": detail_code::DEVICE_IDENTITY_REQUIRED})),
            close::POLICY,
        ));
    }

    // A device-less connection keeps its declared scopes only as the local CLI; everyone else
    // holding the shared secret gets no scopes (health only), as in OpenClaw.
    let keeps_scopes = params.client.id == ClientId::Cli
        && params.client.mode == ClientMode::Cli
        && upgrade.direct_local()
        && !upgrade.has_origin;
    let scopes = if keeps_scopes { requested } else { ScopeSet::EMPTY };

    let caller = Caller {
        conn_id: upgrade.conn_id.clone(),
        role,
        scopes,
        auth,
        device_id: None,
        client_id: params.client.id,
        client_version: params.client.version.clone(),
        remote: upgrade.remote,
    };
    Ok((caller, params))
}

fn negotiate_version(params: &ConnectParams) -> Result<(), Rejection> {
    let (min, max) = (params.min_protocol, params.max_protocol);
    let probe_or_node = params.client.mode == ClientMode::Probe
        || (params.client.mode == ClientMode::Node && params.role.as_deref() == Some("node"));
    let acceptable = |v: u32| min <= v && v <= max;
    let ok = acceptable(PROTOCOL_VERSION) || (probe_or_node && acceptable(MIN_PROBE_PROTOCOL));
    if ok {
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

fn check_shared_secret(state: &AppState, upgrade: &Upgrade, params: &ConnectParams) -> Result<AuthMethod, Rejection> {
    let ip = upgrade.remote.ip();
    let now = state.clock.now_ms();
    if let Err(retry_after) = state.limiter.check(ip, now) {
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
    match state.config.gateway.auth.mode {
        AuthMode::None => Ok(AuthMethod::None),
        AuthMode::Token => {
            let expected = state.config.token().unwrap_or_default();
            let Some(presented) = presented else {
                return Err(Rejection::new(
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
                ));
            };
            if !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
                state.limiter.record_success(ip);
                return Ok(AuthMethod::Token);
            }
            let locked = state.limiter.record_failure(ip, now);
            state.metrics.inc(
                "pincer_auth_failures_total",
                "Failed connect authentications.",
                &[("reason", "token_mismatch")],
            );
            tracing::warn!(conn = %upgrade.conn_id, remote = %upgrade.remote, locked, "unauthorized: gateway token mismatch");
            Err(Rejection::new(
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
            ))
        }
    }
}

/// The `hello-ok` payload for an accepted connection.
pub fn hello_ok(state: &Arc<AppState>, caller: &Caller, health: serde_json::Value) -> HelloOk {
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
            capabilities: Some(vec![]),
        },
        snapshot: Snapshot {
            presence: vec![],
            health,
            state_version: StateVersion::default(),
            uptime_ms: state.uptime_ms(),
            config_path: Some(state.paths.config_path.display().to_string()),
            state_dir: Some(state.paths.state_dir.display().to_string()),
            auth_mode: Some(match state.config.gateway.auth.mode {
                AuthMode::Token => "token".into(),
                AuthMode::None => "none".into(),
            }),
            extra: Default::default(),
        },
        auth: HelloAuth {
            role: caller.role.as_str().into(),
            scopes: caller.scopes.names().into_iter().map(String::from).collect(),
            method: Some(caller.auth.as_str().into()),
            device_token: None,
            issued_at_ms: None,
            extra: Default::default(),
        },
        policy: Policy::pincer(),
        extra: Default::default(),
    }
}
