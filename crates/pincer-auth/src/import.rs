//! `import.openclaw`'s devices: OpenClaw's paired devices added as paired here, with their token
//! hashes, so a client OpenClaw paired connects to Pincer with the identity and token it already
//! holds. Both systems derive the device id as the sha256 of the raw Ed25519 key and both accept
//! the key as base64url or PEM; a device whose id does not match its key is refused.

use pincer_protocol::ErrorShape;
use pincer_protocol::schema::import::ImportedDevice;
use pincer_protocol::{Role, ScopeSet};
use pincer_store::{DeviceRow, DeviceTokenRow};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::{self, action};
use crate::proof::decode_public_key;
use crate::token::{hash_token, hex};
use crate::{Caller, Devices};

impl Devices {
    /// Adds the devices not paired yet; returns (added, already present). A device already paired
    /// here is left exactly as it is.
    pub async fn import_openclaw(
        &self,
        caller: &Caller,
        devices: Vec<ImportedDevice>,
    ) -> Result<(u32, u32), ErrorShape> {
        for d in &devices {
            check(d)?;
        }
        let peer = caller.peer.clone();
        self.decide(move |tx, now, _events| {
            let (mut added, mut present) = (0, 0);
            for d in devices {
                if tx.get_device(&d.device_id)?.is_some() {
                    present += 1;
                    continue;
                }
                tx.put_device(&DeviceRow {
                    device_id: d.device_id.clone(),
                    public_key: d.public_key.clone(),
                    display_name: d.display_name.clone(),
                    label: None,
                    platform: d.platform.clone(),
                    device_family: d.device_family.clone(),
                    client_id: d.client_id.clone(),
                    client_mode: d.client_mode.clone(),
                    roles: d.roles.clone(),
                    scopes: d.scopes.clone(),
                    approved_via: Some("openclaw-import".into()),
                    created_at_ms: d.created_at_ms,
                    approved_at_ms: Some(d.approved_at_ms.unwrap_or(now)),
                    last_seen_at_ms: None,
                    last_seen_ip: None,
                })?;
                for t in &d.tokens {
                    tx.put_device_token(&DeviceTokenRow {
                        device_id: d.device_id.clone(),
                        role: t.role.clone(),
                        token_hash: hash_token(&t.token),
                        scopes: t.scopes.clone(),
                        created_at_ms: t.created_at_ms,
                        rotated_at_ms: None,
                        revoked_at_ms: None,
                        last_used_at_ms: None,
                    })?;
                }
                let roles: Vec<&str> = d.tokens.iter().map(|t| t.role.as_str()).collect();
                audit::write(
                    tx,
                    now,
                    action::PAIRING_IMPORTED,
                    Some(&d.device_id),
                    Some(&peer),
                    json!({ "from": "openclaw", "tokenRoles": roles }),
                )?;
                added += 1;
            }
            Ok(Ok((added, present)))
        })
        .await
    }
}

/// A device OpenClaw could not have paired: refused before anything is written.
fn check(d: &ImportedDevice) -> Result<(), ErrorShape> {
    let bad = |why: String| {
        Err(ErrorShape::invalid_request(format!("invalid import.openclaw params: device {}: {why}", d.device_id)))
    };
    let Some(raw) = decode_public_key(&d.public_key) else { return bad("its public key is not an Ed25519 key".into()) };
    if hex(&Sha256::digest(raw)) != d.device_id {
        return bad("its id is not the sha256 of its public key".into());
    }
    for role in d.roles.iter().chain(d.tokens.iter().map(|t| &t.role)) {
        if Role::parse(role).is_none() {
            return bad(format!("unknown role {role:?}"));
        }
    }
    for scopes in std::iter::once(&d.scopes).chain(d.tokens.iter().map(|t| &t.scopes)) {
        if let Err(e) = ScopeSet::parse(scopes) {
            return bad(format!("unknown scope {}", e.0));
        }
    }
    if d.tokens.iter().any(|t| t.token.is_empty()) {
        return bad("an empty token".into());
    }
    Ok(())
}
