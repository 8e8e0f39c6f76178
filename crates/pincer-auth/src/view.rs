//! What clients see of pairing state: pending requests (also the `device.pair.requested` payload)
//! and paired devices with their tokens redacted to metadata.

use pincer_protocol::schema::devices::{PairedDevice, PendingRequest, TokenMeta};
use pincer_protocol::{ClientInfo, Scope, ScopeSet};
use pincer_store::{DeviceRow, DeviceTokenRow, PairingRequestRow};
use serde_json::{Map, Value, json};

use crate::MAX_DISPLAY_NAME_CHARS;
use crate::proof::VerifiedDevice;

/// Trimmed, control characters dropped, at most `max` characters.
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.trim().chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Known scope names of a stored list; unknown ones (from a newer build) grant nothing.
pub(crate) fn scope_set(names: &[String]) -> ScopeSet {
    names.iter().filter_map(|n| Scope::parse(n).ok()).collect()
}

pub(crate) fn scope_names(set: ScopeSet) -> Vec<String> {
    set.names().into_iter().map(String::from).collect()
}

/// What a device said about itself, as stored with a pairing request.
pub(crate) fn client_json(client: &ClientInfo, device: &VerifiedDevice) -> String {
    let mut m = Map::new();
    if let Some(name) =
        client.display_name.as_deref().map(|n| clip(n, MAX_DISPLAY_NAME_CHARS)).filter(|n| !n.is_empty())
    {
        m.insert("displayName".into(), json!(name));
    }
    m.insert("platform".into(), json!(clip(&device.platform, 64)));
    if !device.device_family.is_empty() {
        m.insert("deviceFamily".into(), json!(clip(&device.device_family, 64)));
    }
    m.insert("clientId".into(), json!(client.id.as_str()));
    m.insert("clientMode".into(), json!(client.mode.as_str()));
    m.insert("version".into(), json!(clip(&client.version, 64)));
    m.insert("payload".into(), json!(device.payload.as_str()));
    Value::Object(m).to_string()
}

/// A pending request as `device.pair.list` and `device.pair.requested` show it.
pub(crate) fn pending_view(r: &PairingRequestRow) -> PendingRequest {
    let client: Value = serde_json::from_str(&r.client_json).unwrap_or(Value::Null);
    let claim = |key: &str| client.get(key).and_then(Value::as_str).map(String::from);
    PendingRequest {
        request_id: r.request_id.clone(),
        device_id: r.device_id.clone(),
        public_key: r.public_key.clone(),
        display_name: claim("displayName"),
        platform: claim("platform"),
        device_family: claim("deviceFamily"),
        client_id: claim("clientId"),
        client_mode: claim("clientMode"),
        role: r.role.clone(),
        roles: vec![r.role.clone()],
        scopes: r.scopes.clone(),
        remote_ip: r.remote_ip.clone(),
        reason: r.reason.clone(),
        silent: false,
        is_repair: r.reason != "not-paired",
        ts: r.created_at_ms,
        created_at_ms: r.created_at_ms,
        refreshed_at_ms: r.refreshed_at_ms,
        expires_at_ms: r.expires_at_ms,
        extra: Map::new(),
    }
}

/// A paired device; tokens appear as metadata only, never a bearer or hash.
pub(crate) fn paired_view(d: &DeviceRow, tokens: &[DeviceTokenRow], connected: Option<bool>) -> PairedDevice {
    PairedDevice {
        device_id: d.device_id.clone(),
        public_key: d.public_key.clone(),
        display_name: d.display_name.clone(),
        label: d.label.clone(),
        platform: d.platform.clone(),
        device_family: d.device_family.clone(),
        client_id: d.client_id.clone(),
        client_mode: d.client_mode.clone(),
        role: d.roles.first().cloned(),
        roles: d.roles.clone(),
        scopes: d.scopes.clone(),
        tokens: tokens
            .iter()
            .map(|t| TokenMeta {
                role: t.role.clone(),
                scopes: t.scopes.clone(),
                created_at_ms: t.created_at_ms,
                rotated_at_ms: t.rotated_at_ms,
                revoked_at_ms: t.revoked_at_ms,
                last_used_at_ms: t.last_used_at_ms,
            })
            .collect(),
        created_at_ms: d.created_at_ms,
        approved_at_ms: d.approved_at_ms,
        approved_via: d.approved_via.clone(),
        last_seen_at_ms: d.last_seen_at_ms,
        last_seen_ip: d.last_seen_ip.clone(),
        connected,
        extra: Map::new(),
    }
}
