//! What clients see of pairing state: pending requests (also the `device.pair.requested` payload)
//! and paired devices with their tokens redacted to metadata.

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

fn put(m: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        m.insert(key.into(), v.into());
    }
}

/// A pending request as `device.pair.list` and `device.pair.requested` show it.
pub(crate) fn pending_view(r: &PairingRequestRow) -> Value {
    let client: Value = serde_json::from_str(&r.client_json).unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("requestId".into(), json!(r.request_id));
    m.insert("deviceId".into(), json!(r.device_id));
    m.insert("publicKey".into(), json!(r.public_key));
    for key in ["displayName", "platform", "deviceFamily", "clientId", "clientMode"] {
        put(&mut m, key, client.get(key).filter(|v| v.is_string()).cloned());
    }
    m.insert("role".into(), json!(r.role));
    m.insert("roles".into(), json!([r.role]));
    m.insert("scopes".into(), json!(r.scopes));
    put(&mut m, "remoteIp", r.remote_ip.clone());
    m.insert("reason".into(), json!(r.reason));
    m.insert("silent".into(), json!(false));
    m.insert("isRepair".into(), json!(r.reason != "not-paired"));
    m.insert("ts".into(), json!(r.created_at_ms));
    m.insert("createdAtMs".into(), json!(r.created_at_ms));
    m.insert("refreshedAtMs".into(), json!(r.refreshed_at_ms));
    m.insert("expiresAtMs".into(), json!(r.expires_at_ms));
    Value::Object(m)
}

/// A paired device; tokens appear as metadata only, never a bearer or hash.
pub(crate) fn paired_view(d: &DeviceRow, tokens: &[DeviceTokenRow], connected: Option<bool>) -> Value {
    let mut m = Map::new();
    m.insert("deviceId".into(), json!(d.device_id));
    m.insert("publicKey".into(), json!(d.public_key));
    put(&mut m, "displayName", d.display_name.clone());
    put(&mut m, "label", d.label.clone());
    put(&mut m, "platform", d.platform.clone());
    put(&mut m, "deviceFamily", d.device_family.clone());
    put(&mut m, "clientId", d.client_id.clone());
    put(&mut m, "clientMode", d.client_mode.clone());
    put(&mut m, "role", d.roles.first().cloned());
    m.insert("roles".into(), json!(d.roles));
    m.insert("scopes".into(), json!(d.scopes));
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut tm = Map::new();
            tm.insert("role".into(), json!(t.role));
            tm.insert("scopes".into(), json!(t.scopes));
            tm.insert("createdAtMs".into(), json!(t.created_at_ms));
            put(&mut tm, "rotatedAtMs", t.rotated_at_ms);
            put(&mut tm, "revokedAtMs", t.revoked_at_ms);
            put(&mut tm, "lastUsedAtMs", t.last_used_at_ms);
            Value::Object(tm)
        })
        .collect();
    m.insert("tokens".into(), Value::Array(tokens));
    m.insert("createdAtMs".into(), json!(d.created_at_ms));
    put(&mut m, "approvedAtMs", d.approved_at_ms);
    put(&mut m, "approvedVia", d.approved_via.clone());
    put(&mut m, "lastSeenAtMs", d.last_seen_at_ms);
    put(&mut m, "lastSeenIp", d.last_seen_ip.clone());
    put(&mut m, "connected", connected);
    Value::Object(m)
}
