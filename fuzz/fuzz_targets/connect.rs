//! `connect` validation: the params JSON through the gateway's handshake policy in order —
//! `parse_connect_params` (closed schema), version negotiation, role and scope parsing — and the
//! device proof (`pincer_auth::verify_proof`), both as sent and re-signed with a fixed key so the
//! fuzzer reaches the signature check: a correct v3 signature over any params that pass the
//! earlier checks must verify.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use pincer_protocol::{DeviceProof, Role, ScopeSet, negotiate_protocol, parse_connect_params};
use serde_json::Value;
use sha2::{Digest, Sha256};

const NONCE: &str = "37c2d810-d724-47f2-a1a0-1d0ee6a7068f";
const NOW_MS: i64 = 1_795_681_358_927;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let params = match parse_connect_params(Some(&value)) {
        Ok(params) => params,
        Err(message) => {
            assert!(message.starts_with("invalid connect params: "), "{message}");
            return;
        }
    };
    // What was accepted serialises and is accepted again, unchanged.
    let back = serde_json::to_value(&params).expect("params serialise");
    assert_eq!(parse_connect_params(Some(&back)).as_ref(), Ok(&params));

    if let Some(v) = negotiate_protocol(&params) {
        assert!(params.min_protocol <= v && v <= params.max_protocol);
    }
    let role_ok = params.role.as_deref().is_none_or(|r| Role::parse(r).is_some());
    let scopes_ok = ScopeSet::parse(params.scopes.as_deref().unwrap_or(&[])).is_ok();

    if let Some(proof) = &params.device {
        if let Err(r) = pincer_auth::verify_proof(proof, &params, NONCE, NOW_MS) {
            assert!(!r.error.message.is_empty());
        }
    }

    // The same params, signed properly: reaches the payload and the signature check.
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key().to_bytes();
    let id: String = Sha256::digest(public).iter().map(|b| format!("{b:02x}")).collect();
    let payload = pincer_auth::payload_v3(&params, &id, NOW_MS, NONCE);
    let proof = DeviceProof {
        id,
        public_key: URL_SAFE_NO_PAD.encode(public),
        signature: URL_SAFE_NO_PAD.encode(key.sign(payload.as_bytes()).to_bytes()),
        signed_at: NOW_MS,
        nonce: Some(NONCE.into()),
    };
    let verified = pincer_auth::verify_proof(&proof, &params, NONCE, NOW_MS);
    if role_ok && scopes_ok {
        let verified = verified.unwrap_or_else(|r| panic!("a correct v3 proof was refused: {}", r.error.message));
        assert_eq!(verified.payload, pincer_auth::PayloadVersion::V3);
    } else {
        assert!(verified.is_err(), "a proof over a bad role or scope was accepted");
    }
});
