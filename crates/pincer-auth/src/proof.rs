//! The device proof in `connect` (research §4): an Ed25519 signature, by the device's key, over a
//! `|`-joined payload that binds the client, role, scopes, bearer and this connection's challenge
//! nonce. Pure: no I/O, time is a parameter.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use pincer_protocol::{ConnectParams, DeviceProof, ErrorShape, Role, ScopeSet, close, detail_code};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::token::hex;
use crate::{MAX_PUBLIC_KEY_LEN, MAX_SIGNATURE_LEN, Rejection, SIGNATURE_SKEW_MS};

/// Longest nonce compared; challenge nonces are 36-character UUIDs.
const MAX_NONCE_LEN: usize = 256;
/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Which signed payload verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadVersion {
    /// Binds `client.platform` and `client.deviceFamily` too (what current clients send).
    V3,
    V2,
}

impl PayloadVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadVersion::V3 => "v3",
            PayloadVersion::V2 => "v2",
        }
    }
}

/// A device that proved possession of its key on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    /// Lowercase hex sha256 of the raw key.
    pub device_id: String,
    /// The raw 32-byte key as base64url without padding: the form stored and compared.
    pub public_key: String,
    pub payload: PayloadVersion,
    pub signed_at_ms: i64,
    /// `client.platform`, trimmed and lowercased (signed only by v3).
    pub platform: String,
    /// `client.deviceFamily`, trimmed and lowercased, `""` if absent (signed only by v3).
    pub device_family: String,
}

fn reject(code: &str, reason: &str, message: &str) -> Rejection {
    Rejection::new(
        ErrorShape::invalid_request(message).with_details(json!({ "code": code, "reason": reason })),
        close::POLICY,
    )
}

/// Checks `proof` against this connection's `challenge_nonce`, in OpenClaw's order: the key decodes,
/// the id matches the key, `signedAt` is within 120 s of `now_ms`, the nonce is present and equals
/// the challenge, then the v3 payload verifies, else the v2 payload.
///
/// Every failure is `INVALID_REQUEST` with `details {code, reason}` and close 1008. The role and
/// scopes are validated too (the payload signs them as sent).
pub fn verify_proof(
    proof: &DeviceProof,
    params: &ConnectParams,
    challenge_nonce: &str,
    now_ms: i64,
) -> Result<VerifiedDevice, Rejection> {
    if let Some(role) = params.role.as_deref()
        && Role::parse(role).is_none()
    {
        return Err(Rejection::new(
            ErrorShape::invalid_request(format!("invalid role: {}", clip(role))),
            close::POLICY,
        ));
    }
    if let Err(e) = ScopeSet::parse(params.scopes.as_deref().unwrap_or(&[])) {
        return Err(Rejection::new(
            ErrorShape::invalid_request(format!("invalid connect params: unknown scope: {}", clip(&e.0))),
            close::POLICY,
        ));
    }

    let public_key_invalid =
        || reject(detail_code::DEVICE_AUTH_PUBLIC_KEY_INVALID, "device-public-key", "device public key invalid");
    let raw_key = decode_public_key(&proof.public_key).ok_or_else(public_key_invalid)?;
    let key = VerifyingKey::from_bytes(&raw_key).map_err(|_| public_key_invalid())?;

    let device_id = hex(&Sha256::digest(raw_key));
    if proof.id.len() != device_id.len() || !bool::from(proof.id.as_bytes().ct_eq(device_id.as_bytes())) {
        return Err(reject(
            detail_code::DEVICE_AUTH_DEVICE_ID_MISMATCH,
            "device-id-mismatch",
            "device identity mismatch",
        ));
    }

    if now_ms.abs_diff(proof.signed_at) > SIGNATURE_SKEW_MS as u64 {
        return Err(reject(
            detail_code::DEVICE_AUTH_SIGNATURE_EXPIRED,
            "device-signature-stale",
            "device signature expired",
        ));
    }

    let nonce = proof.nonce.as_deref().map(str::trim).unwrap_or("");
    if nonce.is_empty() {
        return Err(reject(detail_code::DEVICE_AUTH_NONCE_REQUIRED, "device-nonce-missing", "device nonce required"));
    }
    if nonce.len() > MAX_NONCE_LEN
        || nonce.len() != challenge_nonce.len()
        || !bool::from(nonce.as_bytes().ct_eq(challenge_nonce.as_bytes()))
    {
        return Err(reject(detail_code::DEVICE_AUTH_NONCE_MISMATCH, "device-nonce-mismatch", "device nonce mismatch"));
    }

    let signature_invalid =
        || reject(detail_code::DEVICE_AUTH_SIGNATURE_INVALID, "device-signature", "device signature invalid");
    let signature = decode_signature(&proof.signature).ok_or_else(signature_invalid)?;
    let payload = if verifies(&key, &payload_v3(params, &device_id, proof.signed_at, nonce), &signature) {
        PayloadVersion::V3
    } else if verifies(&key, &payload_v2(params, &device_id, proof.signed_at, nonce), &signature) {
        PayloadVersion::V2
    } else {
        return Err(signature_invalid());
    };

    Ok(VerifiedDevice {
        device_id,
        public_key: URL_SAFE_NO_PAD.encode(raw_key),
        payload,
        signed_at_ms: proof.signed_at,
        platform: normalize(&params.client.platform),
        device_family: normalize(params.client.device_family.as_deref().unwrap_or("")),
    })
}

/// Pure Ed25519 (no pre-hash), rejecting small-order keys and non-canonical signatures.
fn verifies(key: &VerifyingKey, payload: &str, signature: &Signature) -> bool {
    key.verify_strict(payload.as_bytes(), signature).is_ok()
}

/// The bearer a proof binds: the first non-empty of `auth.token`, `auth.deviceToken`,
/// `auth.bootstrapToken`, else `""`.
pub fn signed_token(params: &ConnectParams) -> &str {
    let Some(auth) = params.auth.as_ref() else { return "" };
    [&auth.token, &auth.device_token, &auth.bootstrap_token]
        .into_iter()
        .filter_map(|t| t.as_deref())
        .find(|t| !t.is_empty())
        .unwrap_or("")
}

/// `v2|deviceId|client.id|client.mode|role|scopes csv as sent|signedAtMs|token|nonce`.
pub fn payload_v2(params: &ConnectParams, device_id: &str, signed_at_ms: i64, nonce: &str) -> String {
    format!(
        "v2|{device_id}|{}|{}|{}|{}|{signed_at_ms}|{}|{nonce}",
        params.client.id.as_str(),
        params.client.mode.as_str(),
        params.role.as_deref().unwrap_or("operator"),
        params.scopes.as_deref().unwrap_or(&[]).join(","),
        signed_token(params),
    )
}

/// The v2 payload plus `|platform|deviceFamily`, both trimmed and lowercased.
pub fn payload_v3(params: &ConnectParams, device_id: &str, signed_at_ms: i64, nonce: &str) -> String {
    format!(
        "v3{}|{}|{}",
        &payload_v2(params, device_id, signed_at_ms, nonce)[2..],
        normalize(&params.client.platform),
        normalize(params.client.device_family.as_deref().unwrap_or("")),
    )
}

fn normalize(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Cuts attacker-controlled text before it goes into an error message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The raw key from base64url (the wire form), canonical standard base64, or an SPKI PEM.
pub(crate) fn decode_public_key(text: &str) -> Option<[u8; 32]> {
    if text.len() > MAX_PUBLIC_KEY_LEN {
        return None;
    }
    let text = text.trim();
    if let Some(body) = text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
        let body = body.trim_end().strip_suffix("-----END PUBLIC KEY-----")?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(b64).ok()?;
        let raw = der.strip_prefix(&SPKI_PREFIX[..])?;
        return raw.try_into().ok();
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).or_else(|_| STANDARD.decode(text)).ok()?;
    bytes.try_into().ok()
}

/// A 64-byte signature from base64url (with or without padding) or standard base64.
fn decode_signature(text: &str) -> Option<Signature> {
    if text.len() > MAX_SIGNATURE_LEN {
        return None;
    }
    let bytes =
        URL_SAFE_NO_PAD.decode(text).or_else(|_| URL_SAFE.decode(text)).or_else(|_| STANDARD.decode(text)).ok()?;
    let bytes: [u8; 64] = bytes.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use pincer_core::{Clock, FakeClock};
    use pincer_protocol::{ConnectAuth, Frame, parse_connect_params, parse_frame};

    const FRAME_13: &str = include_str!("../../pincer-protocol/testdata/13_connect.req.c2s.with-device-signature.json");

    fn frame_13() -> ConnectParams {
        let Frame::Req(req) = parse_frame(FRAME_13).unwrap() else { panic!("frame 13 is a request") };
        parse_connect_params(req.params.as_ref()).unwrap()
    }

    #[test]
    fn the_captured_v3_proof_verifies_with_its_own_challenge() {
        let params = frame_13();
        let proof = params.device.clone().unwrap();
        let clock = FakeClock::new(proof.signed_at);
        let nonce = proof.nonce.clone().unwrap();
        let verified = verify_proof(&proof, &params, &nonce, clock.now_ms()).unwrap();
        assert_eq!(verified.payload, PayloadVersion::V3);
        assert_eq!(verified.device_id, "105df4c6fe326c933d208dbddf957a61f0e614e61153e0fe92e92be3d8410323");
        assert_eq!(verified.public_key, "hSSkJBZVppDGUUctM1AQk0Ux-lypb9svIfLXvIO7Kso");
        assert_eq!((verified.platform.as_str(), verified.device_family.as_str()), ("linux", "linux"));

        // The same signature does not verify over the v2 payload.
        let key = VerifyingKey::from_bytes(&decode_public_key(&proof.public_key).unwrap()).unwrap();
        let signature = decode_signature(&proof.signature).unwrap();
        assert!(verifies(&key, &payload_v3(&params, &proof.id, proof.signed_at, &nonce), &signature));
        assert!(!verifies(&key, &payload_v2(&params, &proof.id, proof.signed_at, &nonce), &signature));

        // One flipped byte in the signature, or in what was signed, and it fails.
        let mut raw = URL_SAFE_NO_PAD.decode(&proof.signature).unwrap();
        raw[10] ^= 0x01;
        let flipped = DeviceProof { signature: URL_SAFE_NO_PAD.encode(&raw), ..proof.clone() };
        let e = verify_proof(&flipped, &params, &nonce, clock.now_ms()).unwrap_err();
        assert_eq!(e.detail_code(), Some(detail_code::DEVICE_AUTH_SIGNATURE_INVALID));
        let mut other_scopes = params.clone();
        other_scopes.scopes = Some(vec!["operator.read".into()]);
        let e = verify_proof(&proof, &other_scopes, &nonce, clock.now_ms()).unwrap_err();
        assert_eq!(e.detail_code(), Some(detail_code::DEVICE_AUTH_SIGNATURE_INVALID));
    }

    #[test]
    fn payloads_byte_for_byte() {
        let params = frame_13();
        let id = "105df4c6fe326c933d208dbddf957a61f0e614e61153e0fe92e92be3d8410323";
        let nonce = "37c2d810-d724-47f2-a1a0-1d0ee6a7068f";
        assert_eq!(
            payload_v3(&params, id, 1795681358927, nonce),
            "v3|105df4c6fe326c933d208dbddf957a61f0e614e61153e0fe92e92be3d8410323|cli|cli|operator|\
             operator.read,operator.write,operator.admin|1795681358927|tok-pair|37c2d810-d724-47f2-a1a0-1d0ee6a7068f|\
             linux|linux"
        );
        assert_eq!(
            payload_v2(&params, id, 1795681358927, nonce),
            "v2|105df4c6fe326c933d208dbddf957a61f0e614e61153e0fe92e92be3d8410323|cli|cli|operator|\
             operator.read,operator.write,operator.admin|1795681358927|tok-pair|37c2d810-d724-47f2-a1a0-1d0ee6a7068f"
        );

        // Defaults: no role → operator, no scopes → "", no auth → "", no family → "".
        let mut bare = params.clone();
        bare.role = None;
        bare.scopes = None;
        bare.auth = None;
        bare.client.device_family = None;
        bare.client.platform = "  Darwin ".into();
        assert_eq!(payload_v3(&bare, "id", 5, "n"), "v3|id|cli|cli|operator||5||n|darwin|");

        // The bearer is the first non-empty of token, deviceToken, bootstrapToken.
        let mut tokens = params;
        tokens.auth = Some(ConnectAuth {
            token: Some(String::new()),
            device_token: Some("dev-tok".into()),
            bootstrap_token: Some("boot".into()),
            ..Default::default()
        });
        assert_eq!(signed_token(&tokens), "dev-tok");
        tokens.auth.as_mut().unwrap().device_token = None;
        assert_eq!(signed_token(&tokens), "boot");
    }

    #[test]
    fn accepts_standard_base64_and_pem_keys_and_v2_signatures() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let raw = key.verifying_key().to_bytes();
        let mut params = frame_13();
        params.auth = None;
        let device_id = hex(&Sha256::digest(raw));
        let nonce = "n-1";
        let v2 = key.sign(payload_v2(&params, &device_id, 1_000, nonce).as_bytes());
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&der));
        for public_key in [URL_SAFE_NO_PAD.encode(raw), STANDARD.encode(raw), pem] {
            let proof = DeviceProof {
                id: device_id.clone(),
                public_key,
                signature: URL_SAFE_NO_PAD.encode(v2.to_bytes()),
                signed_at: 1_000,
                nonce: Some(nonce.into()),
            };
            let verified = verify_proof(&proof, &params, nonce, 1_000).unwrap();
            assert_eq!(verified.payload, PayloadVersion::V2);
            assert_eq!(verified.public_key, URL_SAFE_NO_PAD.encode(raw), "stored in one canonical form");
        }
    }

    /// One row per bad input: the detail code (or message) it must produce, and no panic.
    #[test]
    fn bad_inputs_are_rejected_with_their_detail_code() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let raw = key.verifying_key().to_bytes();
        let id = hex(&Sha256::digest(raw));
        let now = 1_795_681_358_927;
        let challenge = "2f1c6a52-5f7e-4c1e-9d0a-1b2c3d4e5f60";
        let mut params = frame_13();
        params.auth = None;
        let good = DeviceProof {
            id: id.clone(),
            public_key: URL_SAFE_NO_PAD.encode(raw),
            signature: URL_SAFE_NO_PAD.encode(key.sign(payload_v3(&params, &id, now, challenge).as_bytes()).to_bytes()),
            signed_at: now,
            nonce: Some(challenge.into()),
        };
        assert!(verify_proof(&good, &params, challenge, now).is_ok());
        let other_key = SigningKey::from_bytes(&[10u8; 32]);

        type Case<'a> = (&'static str, Box<dyn Fn(&mut DeviceProof, &mut ConnectParams, &mut i64) + 'a>, &'static str);
        let cases: Vec<Case> = vec![
            (
                "forged signature (another key signed the same payload)",
                Box::new(|p, c, _| {
                    p.signature = URL_SAFE_NO_PAD
                        .encode(other_key.sign(payload_v3(c, &p.id, p.signed_at, challenge).as_bytes()).to_bytes())
                }),
                detail_code::DEVICE_AUTH_SIGNATURE_INVALID,
            ),
            (
                "signature of the wrong length",
                Box::new(|p, _, _| p.signature = URL_SAFE_NO_PAD.encode([1u8; 63])),
                detail_code::DEVICE_AUTH_SIGNATURE_INVALID,
            ),
            (
                "signature not base64",
                Box::new(|p, _, _| p.signature = "!!!".into()),
                detail_code::DEVICE_AUTH_SIGNATURE_INVALID,
            ),
            (
                "oversized signature",
                Box::new(|p, _, _| p.signature = "A".repeat(MAX_SIGNATURE_LEN + 1)),
                detail_code::DEVICE_AUTH_SIGNATURE_INVALID,
            ),
            (
                "key of 31 bytes",
                Box::new(|p, _, _| p.public_key = URL_SAFE_NO_PAD.encode([1u8; 31])),
                detail_code::DEVICE_AUTH_PUBLIC_KEY_INVALID,
            ),
            (
                "key of 33 bytes",
                Box::new(|p, _, _| p.public_key = URL_SAFE_NO_PAD.encode([1u8; 33])),
                detail_code::DEVICE_AUTH_PUBLIC_KEY_INVALID,
            ),
            (
                "oversized key",
                Box::new(|p, _, _| p.public_key = "A".repeat(MAX_PUBLIC_KEY_LEN + 1)),
                detail_code::DEVICE_AUTH_PUBLIC_KEY_INVALID,
            ),
            (
                "empty key",
                Box::new(|p, _, _| p.public_key = String::new()),
                detail_code::DEVICE_AUTH_PUBLIC_KEY_INVALID,
            ),
            (
                "PEM with garbage",
                Box::new(|p, _, _| p.public_key = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into()),
                detail_code::DEVICE_AUTH_PUBLIC_KEY_INVALID,
            ),
            (
                "signedAt 120 001 ms in the past",
                Box::new(|_, _, now| *now += 120_001),
                detail_code::DEVICE_AUTH_SIGNATURE_EXPIRED,
            ),
            (
                "signedAt 120 001 ms in the future",
                Box::new(|_, _, now| *now -= 120_001),
                detail_code::DEVICE_AUTH_SIGNATURE_EXPIRED,
            ),
            (
                "signedAt at i64::MIN",
                Box::new(|p, _, _| p.signed_at = i64::MIN),
                detail_code::DEVICE_AUTH_SIGNATURE_EXPIRED,
            ),
            ("nonce missing", Box::new(|p, _, _| p.nonce = None), detail_code::DEVICE_AUTH_NONCE_REQUIRED),
            ("nonce blank", Box::new(|p, _, _| p.nonce = Some("  ".into())), detail_code::DEVICE_AUTH_NONCE_REQUIRED),
            (
                "nonce from another connection (replay)",
                Box::new(|p, _, _| p.nonce = Some("0d7c1e1c-0000-4000-8000-000000000000".into())),
                detail_code::DEVICE_AUTH_NONCE_MISMATCH,
            ),
            (
                "oversized nonce",
                Box::new(|p, _, _| p.nonce = Some("n".repeat(100_000))),
                detail_code::DEVICE_AUTH_NONCE_MISMATCH,
            ),
            (
                "device id of another key",
                Box::new(|p, _, _| p.id = hex(&Sha256::digest(other_key.verifying_key().to_bytes()))),
                detail_code::DEVICE_AUTH_DEVICE_ID_MISMATCH,
            ),
            (
                "device id in upper case",
                Box::new(|p, _, _| p.id = p.id.to_uppercase()),
                detail_code::DEVICE_AUTH_DEVICE_ID_MISMATCH,
            ),
            (
                "oversized device id",
                Box::new(|p, _, _| p.id = "a".repeat(100_000)),
                detail_code::DEVICE_AUTH_DEVICE_ID_MISMATCH,
            ),
            (
                "scopes changed after signing",
                Box::new(|_, c, _| c.scopes = Some(vec!["operator.admin".into()])),
                detail_code::DEVICE_AUTH_SIGNATURE_INVALID,
            ),
            (
                "bearer added after signing",
                Box::new(|_, c, _| c.auth = Some(ConnectAuth { device_token: Some("t".into()), ..Default::default() })),
                detail_code::DEVICE_AUTH_SIGNATURE_INVALID,
            ),
            ("unknown role", Box::new(|_, c, _| c.role = Some("root".into())), "invalid role: root"),
            (
                "unknown scope",
                Box::new(|_, c, _| c.scopes = Some(vec!["operator.root".into()])),
                "invalid connect params: unknown scope: operator.root",
            ),
        ];
        for (name, mutate, expected) in cases {
            let (mut proof, mut p, mut now_ms) = (good.clone(), params.clone(), now);
            mutate(&mut proof, &mut p, &mut now_ms);
            let e = verify_proof(&proof, &p, challenge, now_ms).expect_err(name);
            assert_eq!(e.error.code, "INVALID_REQUEST", "{name}");
            assert_eq!(e.close_code, close::POLICY, "{name}");
            assert_eq!(e.close_reason, e.error.message, "{name}");
            let got = e.detail_code().map(String::from).unwrap_or_else(|| e.error.message.clone());
            assert_eq!(got, expected, "{name}");
            if e.detail_code().is_some() {
                assert!(e.error.details.as_ref().unwrap()["reason"].is_string(), "{name}: details.reason");
            }
        }

        // ±120 000 ms is still fine.
        for skew in [120_000, -120_000] {
            assert!(verify_proof(&good, &params, challenge, now + skew).is_ok(), "skew {skew}");
        }
    }
}
