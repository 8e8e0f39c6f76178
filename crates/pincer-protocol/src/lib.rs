//! Wire types of the OpenClaw Gateway protocol, version 4, as Pincer speaks it.
//!
//! This crate owns the shape of every frame that crosses the WebSocket: request, response and event
//! frames, the `connect` handshake parameters, the `hello-ok` answer, error shapes and codes, the
//! closed operator scope set with its implication rules, the method → scope table, [`schema`]:
//! every implemented method's params and result, and the states of runs and deliveries ([`state`]).
//! It does no I/O and knows nothing about the server; the gateway and the CLI both build on it.

mod connect;
mod error;
mod frame;
mod hello;
mod method;
pub mod schema;
mod scope;
pub mod shape;
pub mod state;

pub use connect::{
    ClientId, ClientInfo, ClientMode, ConnectAuth, ConnectParams, DeviceProof, Role, negotiate_protocol,
    parse_connect_params,
};
pub use error::{ErrorCode, ErrorShape, detail_code};
pub use frame::{
    EventFrame, Frame, FrameError, RawResponseFrame, RequestFrame, ResponseFrame, StateVersion, ok_response_text,
    parse_frame, parse_response,
};
pub use hello::{
    ConnectChallenge, Features, HelloAuth, HelloOk, Policy, ServerInfo, SessionDefaults, SessionScope, Snapshot,
};
pub use method::{MethodInfo, OPENCLAW_EVENTS, OPENCLAW_TSV, PINCER_METHODS, Requirement, method_info};
pub use scope::{Scope, ScopeSet, UnknownScope};

/// The protocol version Pincer speaks.
pub const PROTOCOL_VERSION: u32 = 4;
/// Lowest protocol a `probe` or `node` client may negotiate (the N-1 window).
pub const MIN_PROBE_PROTOCOL: u32 = 3;
/// Largest frame accepted before `hello-ok` (close 1009 above it).
pub const MAX_PREAUTH_PAYLOAD: usize = 64 * 1024;
/// Largest frame accepted after `hello-ok`, advertised as `policy.maxPayload`.
pub const MAX_PAYLOAD: usize = 25 * 1024 * 1024;
/// Advertised as `policy.maxBufferedBytes`.
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
/// Interval of the server's `tick` event, advertised as `policy.tickIntervalMs`.
pub const TICK_INTERVAL_MS: u64 = 30_000;
/// Time a client has from upgrade to a successful `connect`.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 15_000;

/// WebSocket close codes the server uses.
pub mod close {
    /// Protocol version mismatch.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Policy violation: bad handshake, auth failure, pairing required.
    pub const POLICY: u16 = 1008;
    /// Frame too large before `hello-ok`.
    pub const TOO_LARGE: u16 = 1009;
    /// Internal error.
    pub const INTERNAL: u16 = 1011;
    /// Server going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Credential invalidated (token rotated or revoked, device removed).
    pub const INVALIDATED: u16 = 4001;
}

#[cfg(test)]
mod golden;
