//! `device.pair.*`, `device.token.*` and `audit.query`: thin adapters over `pincer_auth::Devices`.
//! Methods that invalidate credentials close the affected live connections (4001).

use std::collections::HashSet;

use pincer_auth::{Kick, Outcome, Peer};
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::devices as wire;

use crate::router::{Ctx, Methods};
use crate::state::AppState;

/// The calling connection as `pincer_auth` sees it.
pub(crate) fn caller(c: &Ctx) -> pincer_auth::Caller {
    pincer_auth::Caller {
        peer: Peer {
            conn_id: c.caller.conn_id.clone(),
            remote_ip: c.caller.remote.ip(),
            client_id: Some(c.caller.client_id),
        },
        auth: c.caller.auth,
        scopes: c.caller.scopes,
        device_id: c.caller.device_id.clone(),
        direct_local: c.caller.direct_local,
    }
}

/// Closes the connections an outcome invalidated; answers its result.
fn settle<T>(state: &AppState, outcome: Result<Outcome<T>, ErrorShape>) -> Result<T, ErrorShape> {
    let outcome = outcome?;
    for kick in &outcome.kick {
        let closed = state.kick(Kick::CLOSE_CODE, &kick.close_reason(), |conn| {
            kick.matches(conn.device_id.as_deref(), conn.role, &conn.conn_id)
        });
        tracing::info!(device = %kick.device_id, closed, reason = kick.reason, "closed connections of an invalidated credential");
    }
    Ok(outcome.result)
}

pub fn register(methods: &mut Methods) {
    methods.add::<wire::PairList, _, _>(|c: Ctx, p| async move {
        let connected: HashSet<String> = c
            .state
            .connections
            .lock()
            .expect("connections lock")
            .values()
            .filter_map(|l| l.caller.device_id.clone())
            .collect();
        settle(&c.state, c.state.devices.pair_list(&caller(&c), p, &connected).await)
    });
    methods.add::<wire::PairApprove, _, _>(|c: Ctx, p| async move {
        settle(&c.state, c.state.devices.pair_approve(&caller(&c), p).await)
    });
    methods.add::<wire::PairReject, _, _>(|c: Ctx, p| async move {
        settle(&c.state, c.state.devices.pair_reject(&caller(&c), p).await)
    });
    methods.add::<wire::PairRemove, _, _>(|c: Ctx, p| async move {
        settle(&c.state, c.state.devices.pair_remove(&caller(&c), p).await)
    });
    methods.add::<wire::PairRename, _, _>(|c: Ctx, p| async move {
        settle(&c.state, c.state.devices.pair_rename(&caller(&c), p).await)
    });
    methods.add::<wire::TokenRotate, _, _>(|c: Ctx, p| async move {
        settle(&c.state, c.state.devices.token_rotate(&caller(&c), p).await)
    });
    methods.add::<wire::TokenRevoke, _, _>(|c: Ctx, p| async move {
        settle(&c.state, c.state.devices.token_revoke(&caller(&c), p).await)
    });
    methods.add::<wire::AuditQuery, _, _>(|c: Ctx, p| async move { c.state.devices.audit_query(p).await });
}
