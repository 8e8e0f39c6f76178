//! `device.pair.*`, `device.token.*` and `audit.query`: thin adapters over `pincer_auth::Devices`.
//! Methods that invalidate credentials close the affected live connections (4001).

use std::collections::HashSet;

use pincer_auth::{Kick, METHODS, Peer};
use pincer_protocol::ErrorShape;
use serde_json::Value;

use crate::router::{Call, Methods};

pub fn register(methods: &mut Methods) {
    for &name in METHODS {
        methods.add(name, move |c: Call| async move {
            let state = &c.state;
            let caller = pincer_auth::Caller {
                peer: Peer { conn_id: c.caller.conn_id.clone(), remote_ip: c.caller.remote.ip(), client_id: Some(c.caller.client_id) },
                auth: c.caller.auth,
                scopes: c.caller.scopes,
                device_id: c.caller.device_id.clone(),
                direct_local: c.caller.direct_local,
            };
            let connected: HashSet<String> = state
                .connections
                .lock()
                .expect("connections lock")
                .values()
                .filter_map(|l| l.caller.device_id.clone())
                .collect();
            let params = c.params.clone().unwrap_or(Value::Null);
            let outcome = state
                .devices
                .call(name, &caller, &params, &connected)
                .await
                .unwrap_or_else(|| Err(ErrorShape::unknown_method(name)))?;
            for kick in &outcome.kick {
                let closed = state.kick(Kick::CLOSE_CODE, &kick.close_reason(), |conn| {
                    kick.matches(conn.device_id.as_deref(), conn.role, &conn.conn_id)
                });
                tracing::info!(device = %kick.device_id, closed, reason = kick.reason, "closed connections of an invalidated credential");
            }
            Ok(outcome.result)
        });
    }
}
