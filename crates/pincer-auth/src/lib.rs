//! Device authentication at Pincer's external boundary: who a connecting device is, whether it is
//! paired, what it may do, and a durable record of every decision.
//!
//! - [`verify_proof`] (pure): checks a `connect` request's Ed25519 proof over this connection's
//!   challenge nonce, exactly as OpenClaw does (v3 payload, then v2; 120 s skew; the nonce binds the
//!   proof to one socket).
//! - [`Devices::admit`]: the pairing state machine for a verified device — device-token checks,
//!   silent local approval, deduplicated pending requests, and token issuance.
//! - [`Devices`]' methods: `device.pair.*`, `device.token.*` and `audit.query`, with approval-time
//!   authorization. Methods that invalidate credentials return [`Kick`]s for the gateway to act on.
//! - [`audit`]: the `audit_log` table, written in the same transaction as the decision it records.
//!
//! Bearer tokens exist only in memory on their way to the client: the store keeps a sha256 hash,
//! and neither the audit log nor `tracing` output ever contains a token or a signature.
//!
//! **Architecture Invariant:** nothing here opens a socket or knows about the gateway; internal
//! services never authenticate through this crate (pairing exists only at the external boundary).

mod admit;
pub mod audit;
mod import;
mod methods;
mod proof;
mod token;
mod view;

use std::net::IpAddr;

use pincer_core::config::PairingConfig;
use pincer_core::{EventBus, SharedClock};
use pincer_protocol::{ClientId, ErrorShape};
use pincer_store::Store;

pub use admit::{AdmitRequest, Admitted, Credential, PairingReason};
pub use audit::AuditEntry;
pub use methods::{Caller, Kick, Outcome};
pub use proof::{PayloadVersion, VerifiedDevice, payload_v2, payload_v3, signed_token, verify_proof};

/// How long a pending pairing request lives after it was last refreshed.
pub const PENDING_TTL_MS: i64 = 5 * 60 * 1000;
/// Largest accepted `|now − device.signedAt|`.
pub const SIGNATURE_SKEW_MS: i64 = 120_000;
/// Longest accepted `device.publicKey` (a PEM fits easily).
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;
/// Longest accepted `device.signature` (64 bytes are 86 base64url characters).
pub const MAX_SIGNATURE_LEN: usize = 512;
/// Longest operator label (`device.pair.rename`).
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest stored display name; longer ones are cut.
pub const MAX_DISPLAY_NAME_CHARS: usize = 128;
/// Audit entries kept; older ones are pruned as new ones arrive.
pub const AUDIT_KEEP: u32 = 100_000;
/// WebSocket close reasons are limited to 123 bytes.
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// A refused handshake: the error response to send, then the close code and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub error: ErrorShape,
    pub close_code: u16,
    /// At most 123 bytes (the WebSocket limit), cut on a character boundary.
    pub close_reason: String,
}

impl Rejection {
    /// A rejection whose close reason is the error message.
    pub fn new(error: ErrorShape, close_code: u16) -> Rejection {
        let close_reason = clip_close_reason(&error.message);
        Rejection { error, close_code, close_reason }
    }

    pub fn with_close_reason(mut self, reason: &str) -> Rejection {
        self.close_reason = clip_close_reason(reason);
        self
    }

    /// `error.details.code`, when present.
    pub fn detail_code(&self) -> Option<&str> {
        self.error.detail_code()
    }
}

fn clip_close_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason.to_string();
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// How a connection authenticated, as reported in `hello-ok.auth.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// The shared gateway secret.
    Token,
    /// Auth mode `none`.
    None,
    /// A paired device's own token.
    DeviceToken,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::None => "none",
            AuthMethod::DeviceToken => "device-token",
        }
    }
}

/// Where a connection comes from, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub conn_id: String,
    pub remote_ip: IpAddr,
    /// `client.id`, once the connect params parsed.
    pub client_id: Option<ClientId>,
}

/// Paired devices, pairing requests, device tokens and the audit log, over the store.
///
/// Cheap to clone. All time comes from the injected clock; events go out on the bus under the
/// `operator.pairing` scope.
#[derive(Clone)]
pub struct Devices {
    store: Store,
    clock: SharedClock,
    events: EventBus,
    config: PairingConfig,
    failures: std::sync::Arc<audit::FailureTally>,
    successes: std::sync::Arc<audit::SuccessTally>,
}

/// Scope a connection needs to receive `device.pair.*` events.
pub const EVENT_SCOPE: &str = "operator.pairing";

impl Devices {
    pub fn new(store: Store, clock: SharedClock, events: EventBus, config: PairingConfig) -> Devices {
        Devices { store, clock, events, config, failures: Default::default(), successes: Default::default() }
    }

    fn emit(&self, events: Vec<(&'static str, serde_json::Value)>) {
        for (name, payload) in events {
            self.events.emit(name, payload, Some(EVENT_SCOPE));
        }
    }
}

/// The store failed: the connection or call cannot be decided now.
fn store_unavailable(e: &pincer_store::StoreError) -> ErrorShape {
    tracing::error!(error = %e, "device store failed");
    ErrorShape::unavailable("the device store is unavailable; retry shortly (see the gateway log)")
}

#[cfg(test)]
mod tests;
