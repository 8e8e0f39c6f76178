//! End-to-end tests of the pairing state machine against a real store in a temporary directory:
//! each connect is signed with a real Ed25519 key, verified with [`verify_proof`] and admitted,
//! the way the gateway's handshake does it. Time comes from a [`FakeClock`].

use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use pincer_core::config::PairingConfig;
use pincer_core::{BusEvent, Clock, EventBus, FakeClock};
use pincer_protocol::schema::devices::{
    AuditQuery, PairApprove, PairList, PairReject, PairRemove, PairRename, RotateParams, TokenRevoke, TokenRotate,
};
use pincer_protocol::schema::{Method, Params, parse_params};
use pincer_protocol::{ClientId, DeviceProof, Role, Scope, ScopeSet, close, detail_code, parse_connect_params};
use pincer_store::{AuditFilter, Store};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::*;
use crate::audit::action;
use crate::token::{hash_token, hex};

/// The pairing methods as the gateway calls them: params parsed by the schema, answers as JSON.
trait Json {
    async fn json_call(&self, method: &str, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape>;

    async fn json_pair_list(
        &self,
        caller: &Caller,
        p: &Value,
        connected: &HashSet<String>,
    ) -> Result<Outcome<Value>, ErrorShape>;

    async fn json_pair_approve(&self, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape> {
        self.json_call("device.pair.approve", caller, p).await
    }

    async fn json_pair_reject(&self, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape> {
        self.json_call("device.pair.reject", caller, p).await
    }

    async fn json_pair_remove(&self, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape> {
        self.json_call("device.pair.remove", caller, p).await
    }

    async fn json_pair_rename(&self, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape> {
        self.json_call("device.pair.rename", caller, p).await
    }

    async fn json_token_rotate(&self, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape> {
        self.json_call("device.token.rotate", caller, p).await
    }

    async fn json_token_revoke(&self, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape> {
        self.json_call("device.token.revoke", caller, p).await
    }

    async fn json_audit_query(&self, p: &Value) -> Result<Value, ErrorShape> {
        let p = params(AuditQuery::NAME, p)?;
        Ok(serde_json::to_value(self.audit_query_typed(p).await?).unwrap())
    }

    async fn audit_query_typed(
        &self,
        p: pincer_protocol::schema::devices::AuditQueryParams,
    ) -> Result<pincer_protocol::schema::devices::AuditQueryResult, ErrorShape>;
}

fn params<P: Params>(method: &str, p: &Value) -> Result<P, ErrorShape> {
    parse_params(method, Some(p)).map_err(|e| ErrorShape::invalid_request(e.0))
}

fn json<T: serde::Serialize>(o: Result<Outcome<T>, ErrorShape>) -> Result<Outcome<Value>, ErrorShape> {
    o.map(|o| Outcome { result: serde_json::to_value(o.result).unwrap(), kick: o.kick })
}

impl Json for Devices {
    async fn json_call(&self, method: &str, caller: &Caller, p: &Value) -> Result<Outcome<Value>, ErrorShape> {
        match method {
            PairApprove::NAME => json(self.pair_approve(caller, params(method, p)?).await),
            PairReject::NAME => json(self.pair_reject(caller, params(method, p)?).await),
            PairRemove::NAME => json(self.pair_remove(caller, params(method, p)?).await),
            PairRename::NAME => json(self.pair_rename(caller, params(method, p)?).await),
            TokenRotate::NAME => json(self.token_rotate(caller, params(method, p)?).await),
            TokenRevoke::NAME => json(self.token_revoke(caller, params(method, p)?).await),
            AuditQuery::NAME => self.json_audit_query(p).await.map(Outcome::from),
            PairList::NAME => self.json_pair_list(caller, p, &HashSet::new()).await,
            other => panic!("no pairing method {other}"),
        }
    }

    async fn json_pair_list(
        &self,
        caller: &Caller,
        p: &Value,
        connected: &HashSet<String>,
    ) -> Result<Outcome<Value>, ErrorShape> {
        json(self.pair_list(caller, params(PairList::NAME, p)?, connected).await)
    }

    async fn audit_query_typed(
        &self,
        p: pincer_protocol::schema::devices::AuditQueryParams,
    ) -> Result<pincer_protocol::schema::devices::AuditQueryResult, ErrorShape> {
        self.audit_query(p).await
    }
}

const T0: i64 = 1_795_681_358_927;
const SHARED: &str = "shared-gateway-secret";
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

struct Gw {
    _dir: tempfile::TempDir,
    clock: FakeClock,
    store: Store,
    devices: Devices,
    bus: broadcast::Receiver<Arc<BusEvent>>,
    next_conn: AtomicU32,
}

impl Gw {
    fn new(config: PairingConfig) -> Gw {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        let clock = FakeClock::new(T0);
        let events = EventBus::default();
        let bus = events.subscribe();
        let devices = Devices::new(store.clone(), clock.shared(), events, config);
        Gw { _dir: dir, clock, store, devices, bus, next_conn: AtomicU32::new(1) }
    }

    fn default() -> Gw {
        Gw::new(PairingConfig::default())
    }

    fn peer(&self, local: bool) -> Peer {
        Peer {
            conn_id: format!("conn-{}", self.next_conn.fetch_add(1, Ordering::Relaxed)),
            remote_ip: if local { LOCAL } else { REMOTE },
            client_id: Some(ClientId::Cli),
        }
    }

    /// Events emitted since the last call: (name, payload).
    fn events(&mut self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        while let Ok(e) = self.bus.try_recv() {
            assert_eq!(e.scope, Some(EVENT_SCOPE));
            out.push((e.name, e.payload.clone()));
        }
        out
    }

    fn audit(&self) -> Vec<pincer_store::AuditRow> {
        self.store.read_blocking(|rd| rd.list_audit(&AuditFilter { limit: 10_000, ..Default::default() })).unwrap().0
    }

    async fn list(&self, caller: &Caller) -> Value {
        self.devices.json_pair_list(caller, &json!({}), &HashSet::new()).await.unwrap().result
    }

    async fn approve(&self, caller: &Caller, request_id: &str) -> Result<Outcome<Value>, ErrorShape> {
        self.devices.json_pair_approve(caller, &json!({ "requestId": request_id })).await
    }
}

/// A device with its own Ed25519 key.
struct Dev {
    key: SigningKey,
    id: String,
}

impl Dev {
    fn new(seed: u8) -> Dev {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let id = hex(&<sha2::Sha256 as sha2::Digest>::digest(key.verifying_key().to_bytes()));
        Dev { key, id }
    }
}

#[derive(Clone)]
enum Cred {
    /// `auth.token` = the shared secret.
    Shared,
    /// Auth mode none, no token.
    Open,
    /// Auth mode none with a cached device token.
    OpenWith(String),
    /// `auth.deviceToken` only.
    Token(String),
}

#[derive(Clone)]
struct Opts {
    role: &'static str,
    scopes: Vec<&'static str>,
    cred: Cred,
    local: bool,
    origin: bool,
    platform: &'static str,
    /// Connects as the browser console (`openclaw-control-ui` / `webchat`) instead of the CLI.
    console: bool,
}

impl Opts {
    fn local(scopes: &[&'static str]) -> Opts {
        Opts {
            role: "operator",
            scopes: scopes.to_vec(),
            cred: Cred::Shared,
            local: true,
            origin: false,
            platform: "linux",
            console: false,
        }
    }
    fn remote(scopes: &[&'static str]) -> Opts {
        Opts { local: false, ..Opts::local(scopes) }
    }
    fn cred(self, cred: Cred) -> Opts {
        Opts { cred, ..self }
    }
    fn token(self, token: &str) -> Opts {
        self.cred(Cred::Token(token.to_string()))
    }
    fn role(self, role: &'static str) -> Opts {
        Opts { role, ..self }
    }
    fn platform(self, platform: &'static str) -> Opts {
        Opts { platform, ..self }
    }
    fn origin(self) -> Opts {
        Opts { origin: true, ..self }
    }
    fn console(self) -> Opts {
        Opts { console: true, origin: true, ..self }
    }
}

/// One signed `connect`, checked the way the gateway does: proof, then admission.
async fn connect(gw: &Gw, dev: &Dev, o: Opts) -> Result<Admitted, Rejection> {
    let nonce = uuid::Uuid::new_v4().to_string();
    let now = gw.clock.now_ms();
    let (id, mode) = if o.console { ("openclaw-control-ui", "webchat") } else { ("cli", "cli") };
    let mut p = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": id, "version": "2026.9.6", "platform": o.platform, "deviceFamily": "Linux",
                   "mode": mode, "displayName": "test box"},
        "role": o.role, "scopes": o.scopes,
    });
    match &o.cred {
        Cred::Shared => p["auth"] = json!({ "token": SHARED }),
        Cred::Token(t) | Cred::OpenWith(t) => p["auth"] = json!({ "deviceToken": t }),
        Cred::Open => {}
    }
    let mut params = parse_connect_params(Some(&p)).unwrap();
    let signature = dev.key.sign(payload_v3(&params, &dev.id, now, &nonce).as_bytes());
    let proof = DeviceProof {
        id: dev.id.clone(),
        public_key: URL_SAFE_NO_PAD.encode(dev.key.verifying_key().to_bytes()),
        signature: URL_SAFE_NO_PAD.encode(signature.to_bytes()),
        signed_at: now,
        nonce: Some(nonce.clone()),
    };
    params.device = Some(proof.clone());
    let device = verify_proof(&proof, &params, &nonce, now)?;
    let presented = params.auth.as_ref().and_then(|a| a.device_token.clone());
    let credential = match o.cred {
        Cred::Shared => Credential::SharedSecret { device_token: presented },
        Cred::Open | Cred::OpenWith(_) => Credential::AuthNone { device_token: presented },
        Cred::Token(t) => Credential::DeviceToken(t),
    };
    gw.devices
        .admit(AdmitRequest {
            device,
            role: Role::parse(o.role).unwrap(),
            scopes: ScopeSet::parse(&o.scopes).unwrap(),
            credential,
            direct_local: o.local,
            has_origin: o.origin,
            peer: gw.peer(o.local),
            client: params.client.clone(),
        })
        .await
}

fn scopes(names: &[&str]) -> ScopeSet {
    ScopeSet::parse(names).unwrap()
}

fn details(r: &Rejection) -> &Value {
    r.error.details.as_ref().expect("details")
}

/// The pending request id of a `NOT_PAIRED` refusal with `reason`.
fn pending(result: Result<Admitted, Rejection>, reason: &str) -> String {
    let r = result.expect_err("connect must be refused");
    assert_eq!(r.error.code, "NOT_PAIRED", "{r:?}");
    assert_eq!(details(&r)["reason"], reason, "{r:?}");
    details(&r)["requestId"].as_str().unwrap().to_string()
}

fn token_of(a: &Admitted) -> String {
    a.device_token.clone().expect("a device token was issued")
}

fn caller(scopes: &[Scope], auth: AuthMethod, device_id: Option<&str>, local: bool) -> Caller {
    Caller {
        peer: Peer {
            conn_id: "op-conn".into(),
            remote_ip: if local { LOCAL } else { REMOTE },
            client_id: Some(ClientId::Cli),
        },
        auth,
        scopes: ScopeSet::of(scopes),
        device_id: device_id.map(String::from),
        direct_local: local,
    }
}

/// The `pincer` CLI on the gateway host: shared token, loopback, no device.
fn owner() -> Caller {
    caller(&[Scope::Admin, Scope::Pairing], AuthMethod::Token, None, true)
}

#[tokio::test]
async fn silent_local_first_pairing_issues_a_token_that_works_on_reconnect() {
    let mut gw = Gw::default();
    let dev = Dev::new(1);
    let first = connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap();
    assert_eq!(first.auth_method, AuthMethod::Token);
    assert_eq!(first.scopes, scopes(&["operator.read"]));
    assert_eq!(first.device_id, dev.id);
    assert_eq!(first.issued_at_ms, Some(T0));
    let token = token_of(&first);
    assert_eq!(token.len(), 43);
    assert!(!format!("{first:?}").contains(&token), "Debug redacts the bearer");
    assert!(gw.events().is_empty(), "silent approval creates no pending request");

    let again = connect(&gw, &dev, Opts::local(&["operator.read"]).token(&token)).await.unwrap();
    assert_eq!((again.auth_method, again.device_token.clone()), (AuthMethod::DeviceToken, None));
    // No scopes asked: the token's scopes.
    let bare = connect(&gw, &dev, Opts::remote(&[]).token(&token)).await.unwrap();
    assert_eq!(bare.scopes, scopes(&["operator.read"]));

    let list = gw.list(&owner()).await;
    let paired = &list["paired"][0];
    assert_eq!(paired["deviceId"], dev.id);
    assert_eq!(paired["approvedVia"], "silent");
    assert_eq!(paired["lastSeenIp"], REMOTE.to_string());
    assert_eq!(paired["tokens"][0]["lastUsedAtMs"], T0);
}

#[tokio::test]
async fn remote_first_pairing_is_pending_with_the_full_not_paired_answer() {
    let mut gw = Gw::default();
    let dev = Dev::new(2);
    let r = connect(&gw, &dev, Opts::remote(&["operator.read", "operator.write"])).await.unwrap_err();
    let id = details(&r)["requestId"].as_str().unwrap().to_string();
    assert_eq!(r.error.code, "NOT_PAIRED");
    assert_eq!(r.error.message, "pairing required: device is not approved yet");
    assert_eq!(r.close_code, close::POLICY);
    assert_eq!(r.close_reason, format!("pairing required: device is not approved yet (requestId: {id})"));
    assert_eq!(
        *details(&r),
        json!({
            "code": "PAIRING_REQUIRED",
            "reason": "not-paired",
            "requestId": id,
            "remediationHint": format!("Approve this device from the pending pairing requests. On the gateway host: `pincer devices approve {id}`."),
            "deviceId": dev.id,
            "requestedRole": "operator",
            "requestedScopes": ["operator.read", "operator.write"],
            "recommendedNextStep": "wait_then_retry",
            "retryable": true,
            "pauseReconnect": false,
        })
    );
    let events = gw.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "device.pair.requested");
    assert_eq!(events[0].1["requestId"], id);
    assert_eq!(events[0].1["remoteIp"], REMOTE.to_string());
    assert_eq!(events[0].1["expiresAtMs"], T0 + PENDING_TTL_MS);
    let list = gw.list(&owner()).await;
    assert_eq!(list["pending"].as_array().unwrap().len(), 1);
    assert_eq!(list["paired"], json!([]));

    // A browser on loopback, or any local connect with auto-approval off, is not silent either.
    assert_eq!(pending(connect(&gw, &Dev::new(3), Opts::local(&[]).origin()).await, "not-paired").len(), 36);
    let strict = Gw::new(PairingConfig { auto_approve_local: false, auto_approve_local_scope_upgrades: true });
    pending(connect(&strict, &dev, Opts::local(&["operator.read"])).await, "not-paired");
}

#[tokio::test]
async fn the_console_in_a_local_browser_pairs_silently_but_not_from_afar_nor_on_a_changed_platform() {
    let gw = Gw::default();
    let dev = Dev::new(30);
    let admin = ["operator.admin", "operator.read", "operator.write", "operator.pairing"];
    // On loopback, with the shared token from the dashboard link: paired at once, token issued.
    let first = connect(&gw, &dev, Opts::local(&admin).console()).await.expect("silent console pairing");
    assert_eq!(first.auth_method, AuthMethod::Token);
    let token = token_of(&first);
    // Later visits sign in with the device token alone.
    let again = connect(&gw, &dev, Opts::local(&[]).console().token(&token)).await.unwrap();
    assert_eq!((again.auth_method, again.scopes), (AuthMethod::DeviceToken, scopes(&admin)));
    // The same browser reporting another platform is re-approved by its owner.
    pending(connect(&gw, &dev, Opts::local(&[]).console().token(&token).platform("macos")).await, "metadata-upgrade");
    // A console in a browser elsewhere on the network asks for approval like any device.
    pending(connect(&gw, &Dev::new(31), Opts::remote(&admin).console()).await, "not-paired");
}

#[tokio::test]
async fn approval_lets_the_next_connect_in_with_a_device_token() {
    let mut gw = Gw::default();
    let dev = Dev::new(4);
    let id = pending(connect(&gw, &dev, Opts::remote(&["operator.read"])).await, "not-paired");
    gw.events();
    let out = gw.approve(&owner(), &id).await.unwrap();
    assert!(out.kick.is_empty());
    assert_eq!(out.result["requestId"], id);
    assert_eq!(out.result["device"]["roles"], json!(["operator"]));
    assert_eq!(out.result["device"]["scopes"], json!(["operator.read"]));
    assert_eq!(out.result["device"]["approvedVia"], "manual");
    let events = gw.events();
    assert_eq!(
        events,
        [("device.pair.resolved", json!({"requestId": id, "deviceId": dev.id, "decision": "approved", "ts": T0}))]
    );

    let ok = connect(&gw, &dev, Opts::remote(&["operator.read"])).await.unwrap();
    assert_eq!(ok.auth_method, AuthMethod::Token);
    let token = token_of(&ok);
    let by_token = connect(&gw, &dev, Opts::remote(&["operator.read"]).token(&token)).await.unwrap();
    assert_eq!((by_token.auth_method, by_token.device_token), (AuthMethod::DeviceToken, None));
    // Approving twice: the request is gone.
    assert_eq!(gw.approve(&owner(), &id).await.unwrap_err().message, "unknown requestId");
}

#[tokio::test]
async fn device_token_reconnect_asking_for_more_is_an_approvable_scope_upgrade() {
    // Even with silent scope upgrades enabled, device-token auth never widens its grant silently.
    let gw = Gw::new(PairingConfig { auto_approve_local: true, auto_approve_local_scope_upgrades: true });
    let dev = Dev::new(5);
    let token = token_of(&connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap());
    let r = connect(&gw, &dev, Opts::local(&["operator.read", "operator.write", "operator.admin"]).token(&token))
        .await
        .unwrap_err();
    assert_eq!(r.error.message, "pairing required: device is asking for more scopes than currently approved");
    let d = details(&r);
    assert_eq!(d["reason"], "scope-upgrade");
    assert_eq!(d["approvedRoles"], json!(["operator"]));
    assert_eq!(d["approvedScopes"], json!(["operator.read"]));
    assert_eq!(d["requestedScopes"], json!(["operator.admin", "operator.read", "operator.write"]));
    // 124 bytes of text: cut to the WebSocket limit.
    assert!(
        r.close_reason
            .starts_with("pairing required: device is asking for more scopes than currently approved (requestId: ")
    );
    assert!(r.close_reason.len() <= 123);
    let id = d["requestId"].as_str().unwrap().to_string();

    gw.approve(&owner(), &id).await.unwrap();
    let ok = connect(&gw, &dev, Opts::local(&["operator.read", "operator.write", "operator.admin"]).token(&token))
        .await
        .unwrap();
    assert_eq!(ok.auth_method, AuthMethod::DeviceToken);
    assert_eq!(ok.scopes, scopes(&["operator.admin", "operator.read", "operator.write"]));
    assert_eq!(ok.device_token, None, "the cached bearer was widened in place");
}

#[tokio::test]
async fn scope_upgrades_are_silent_only_for_the_shared_secret_when_enabled() {
    let on = Gw::new(PairingConfig { auto_approve_local: true, auto_approve_local_scope_upgrades: true });
    let dev = Dev::new(6);
    connect(&on, &dev, Opts::local(&["operator.read"])).await.unwrap();
    // Remote connections are never silent.
    pending(connect(&on, &dev, Opts::remote(&["operator.write"])).await, "scope-upgrade");
    let wider = connect(&on, &dev, Opts::local(&["operator.admin"])).await.unwrap();
    assert_eq!(wider.scopes, scopes(&["operator.admin"]));

    let off = Gw::default();
    connect(&off, &dev, Opts::local(&["operator.read"])).await.unwrap();
    pending(connect(&off, &dev, Opts::local(&["operator.write"])).await, "scope-upgrade");

    // Auth mode none proves no secret.
    let open = Gw::new(PairingConfig { auto_approve_local: true, auto_approve_local_scope_upgrades: true });
    let first = connect(&open, &dev, Opts::local(&["operator.read"]).cred(Cred::Open)).await.unwrap();
    assert_eq!(first.auth_method, AuthMethod::None);
    pending(connect(&open, &dev, Opts::local(&["operator.write"]).cred(Cred::Open)).await, "scope-upgrade");
    let cached = connect(&open, &dev, Opts::local(&[]).cred(Cred::OpenWith(token_of(&first)))).await.unwrap();
    assert_eq!((cached.auth_method, cached.scopes), (AuthMethod::DeviceToken, scopes(&["operator.read"])));
    // A stale cached token in auth mode none is replaced, not refused.
    let stale = connect(&open, &dev, Opts::local(&[]).cred(Cred::OpenWith("stale".into()))).await.unwrap();
    assert_eq!(stale.auth_method, AuthMethod::None);
    assert!(stale.device_token.is_some());
}

#[tokio::test]
async fn pending_requests_are_refreshed_or_superseded_per_device() {
    let mut gw = Gw::default();
    let dev = Dev::new(7);
    let id1 = pending(connect(&gw, &dev, Opts::remote(&["operator.read", "operator.write"])).await, "not-paired");
    gw.clock.advance(1_000);
    let same = pending(connect(&gw, &dev, Opts::remote(&["operator.write", "operator.read"])).await, "not-paired");
    let covered = pending(connect(&gw, &dev, Opts::remote(&["operator.read"])).await, "not-paired");
    assert_eq!((same.as_str(), covered.as_str()), (id1.as_str(), id1.as_str()));
    assert_eq!(gw.events().len(), 1, "only the first connect announced a request");
    let list = gw.list(&owner()).await;
    assert_eq!(list["pending"][0]["refreshedAtMs"], T0 + 1_000);
    assert_eq!(list["pending"][0]["createdAtMs"], T0);

    let id2 = pending(connect(&gw, &dev, Opts::remote(&["operator.admin"])).await, "not-paired");
    assert_ne!(id2, id1);
    let events = gw.events();
    assert_eq!(
        events[0],
        (
            "device.pair.resolved",
            json!({"requestId": id1, "deviceId": dev.id, "decision": "rejected", "ts": T0 + 1_000})
        )
    );
    assert_eq!(events[1].0, "device.pair.requested");
    assert_eq!(events[1].1["requestId"], id2);
    let list = gw.list(&owner()).await;
    assert_eq!(list["pending"].as_array().unwrap().len(), 1, "one pending request per device");
    assert_eq!(list["pending"][0]["scopes"], json!(["operator.admin", "operator.read", "operator.write"]));
    assert_eq!(gw.approve(&owner(), &id1).await.unwrap_err().message, "unknown requestId");
}

#[tokio::test]
async fn pending_requests_expire_five_minutes_after_their_last_refresh() {
    let gw = Gw::default();
    let dev = Dev::new(8);
    let id = pending(connect(&gw, &dev, Opts::remote(&["operator.read"])).await, "not-paired");
    gw.clock.advance(4 * 60_000);
    assert_eq!(pending(connect(&gw, &dev, Opts::remote(&["operator.read"])).await, "not-paired"), id);
    gw.clock.advance(PENDING_TTL_MS - 1);
    assert_eq!(gw.list(&owner()).await["pending"][0]["requestId"], id, "alive 1 ms before expiry");
    gw.clock.advance(1);
    assert_eq!(gw.list(&owner()).await["pending"], json!([]));
    assert_eq!(gw.approve(&owner(), &id).await.unwrap_err().message, "unknown requestId");
    let status = gw.store.read_blocking({
        let id = id.clone();
        move |rd| rd.get_pairing_request(&id)
    });
    assert_eq!(status.unwrap().unwrap().status, "expired");
    let fresh = pending(connect(&gw, &dev, Opts::remote(&["operator.read"])).await, "not-paired");
    assert_ne!(fresh, id);
}

#[tokio::test]
async fn rejecting_resolves_the_request_for_good() {
    let mut gw = Gw::default();
    let dev = Dev::new(9);
    let id = pending(connect(&gw, &dev, Opts::remote(&[])).await, "not-paired");
    gw.events();
    let out = gw.devices.json_pair_reject(&owner(), &json!({ "requestId": id })).await.unwrap();
    assert_eq!(out.result, json!({ "requestId": id, "deviceId": dev.id }));
    assert_eq!(gw.events()[0].1["decision"], "rejected");
    assert_eq!(gw.approve(&owner(), &id).await.unwrap_err().message, "unknown requestId");
    let again = gw.devices.json_pair_reject(&owner(), &json!({ "requestId": id })).await.unwrap_err();
    assert_eq!(again.message, "unknown requestId");
    assert_ne!(pending(connect(&gw, &dev, Opts::remote(&[])).await, "not-paired"), id);
}

#[tokio::test]
async fn removing_a_device_forgets_it_and_kicks_its_connections() {
    let gw = Gw::default();
    let dev = Dev::new(10);
    let token = token_of(&connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap());
    let out = gw.devices.json_pair_remove(&owner(), &json!({ "deviceId": dev.id })).await.unwrap();
    assert_eq!(out.result, json!({ "deviceId": dev.id, "removed": true }));
    assert_eq!(
        out.kick,
        [Kick { device_id: dev.id.clone(), role: None, reason: "device removed", except_conn_id: None }]
    );
    assert_eq!(out.kick[0].close_reason(), "client invalidated: device removed");
    assert_eq!(Kick::CLOSE_CODE, 4001);
    assert!(out.kick[0].matches(Some(&dev.id), Role::Node, "any"));
    assert!(!out.kick[0].matches(None, Role::Operator, "any"));

    let r = connect(&gw, &dev, Opts::remote(&["operator.read"]).token(&token)).await.unwrap_err();
    assert_eq!(r.detail_code(), Some(detail_code::AUTH_DEVICE_TOKEN_MISMATCH));
    assert_eq!(details(&r)["reason"], "device-not-paired");
    assert_eq!(r.error.message, "unauthorized: device token mismatch (rotate/reissue device token)");
    let again = gw.devices.json_pair_remove(&owner(), &json!({ "deviceId": dev.id })).await.unwrap_err();
    assert_eq!(again.message, "unknown deviceId");
}

#[tokio::test]
async fn removing_a_device_rejects_its_pending_upgrade_so_approving_cannot_bring_it_back() {
    let mut gw = Gw::default();
    let dev = Dev::new(12);
    connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap();
    let id = pending(connect(&gw, &dev, Opts::remote(&["operator.admin"])).await, "scope-upgrade");
    gw.events();
    gw.devices.json_pair_remove(&owner(), &json!({ "deviceId": dev.id })).await.unwrap();
    let events = gw.events();
    assert_eq!(events[0].0, "device.pair.resolved", "{events:?}");
    assert_eq!(
        (events[0].1["requestId"].as_str(), events[0].1["decision"].as_str()),
        (Some(id.as_str()), Some("rejected"))
    );
    assert_eq!(gw.list(&owner()).await["pending"], json!([]));
    assert_eq!(gw.approve(&owner(), &id).await.unwrap_err().message, "unknown requestId");
    assert_eq!(gw.list(&owner()).await["paired"], json!([]));
}

#[tokio::test]
async fn rotating_stops_the_old_token_at_once() {
    let gw = Gw::default();
    let dev = Dev::new(11);
    let old = token_of(&connect(&gw, &dev, Opts::local(&["operator.read", "operator.write"])).await.unwrap());
    gw.clock.advance(10);
    let rotate = RotateParams { device_id: dev.id.clone(), role: "operator".into(), scopes: None };
    let out = gw.devices.token_rotate(&owner(), rotate).await.unwrap();
    let new = out.result.token.clone().unwrap();
    assert_eq!(out.result.token_delivery, "in-band", "the local owner mints tokens for automation");
    assert_eq!(out.result.scopes, ["operator.read", "operator.write"]);
    assert_eq!(out.result.rotated_at_ms, T0 + 10);
    assert!(!format!("{out:?}").contains(&new), "Debug redacts the bearer");
    assert_eq!(
        out.kick,
        [Kick {
            device_id: dev.id.clone(),
            role: Some(Role::Operator),
            reason: "device token rotated",
            except_conn_id: None
        }]
    );

    let r = connect(&gw, &dev, Opts::remote(&["operator.read"]).token(&old)).await.unwrap_err();
    assert_eq!(
        (r.detail_code(), details(&r)["reason"].as_str()),
        (Some("AUTH_DEVICE_TOKEN_MISMATCH"), Some("token-mismatch"))
    );
    connect(&gw, &dev, Opts::remote(&["operator.read"]).token(&new)).await.unwrap();

    // Narrower on request; the token then caps the connection below the grant.
    let narrow = gw
        .devices
        .json_token_rotate(&owner(), &json!({ "deviceId": dev.id, "role": "operator", "scopes": ["operator.read"] }))
        .await
        .unwrap();
    let narrow = narrow.result["token"].as_str().unwrap().to_string();
    let r = connect(&gw, &dev, Opts::remote(&["operator.write"]).token(&narrow)).await.unwrap_err();
    assert_eq!(r.detail_code(), Some(detail_code::AUTH_SCOPE_MISMATCH));
    assert_eq!(connect(&gw, &dev, Opts::remote(&[]).token(&narrow)).await.unwrap().scopes, scopes(&["operator.read"]));

    // Never beyond the grant, never for a role the pairing did not approve.
    let beyond = json!({ "deviceId": dev.id, "role": "operator", "scopes": ["operator.admin"] });
    let e = gw.devices.json_token_rotate(&owner(), &beyond).await.unwrap_err();
    assert!(e.message.contains("exceed what device"), "{e:?}");
    let e = gw.devices.json_token_rotate(&owner(), &json!({ "deviceId": dev.id, "role": "node" })).await.unwrap_err();
    assert!(e.message.contains("is not approved for role node"), "{e:?}");

    // Someone else's admin session gets no bearer; a device rotating its own token does, and
    // keeps its own connection.
    let remote_admin = caller(&[Scope::Admin], AuthMethod::DeviceToken, Some(&Dev::new(99).id), false);
    let out =
        gw.devices.json_token_rotate(&remote_admin, &json!({ "deviceId": dev.id, "role": "operator" })).await.unwrap();
    assert_eq!(out.result["tokenDelivery"], "withheld-cross-device");
    assert!(out.result.get("token").is_none());
    let itself = caller(&[Scope::Pairing, Scope::Read], AuthMethod::DeviceToken, Some(&dev.id), false);
    let out = gw.devices.json_token_rotate(&itself, &json!({ "deviceId": dev.id, "role": "operator" })).await.unwrap();
    assert_eq!(out.result["tokenDelivery"], "in-band");
    assert_eq!(out.kick[0].except_conn_id.as_deref(), Some("op-conn"));
    assert!(!out.kick[0].matches(Some(&dev.id), Role::Operator, "op-conn"));
    assert!(out.kick[0].matches(Some(&dev.id), Role::Operator, "other-conn"));
}

#[tokio::test]
async fn revoking_refuses_the_token_until_the_device_reconnects_with_the_secret() {
    let gw = Gw::default();
    let dev = Dev::new(12);
    let token = token_of(&connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap());
    gw.clock.advance(5);
    let out = gw.devices.json_token_revoke(&owner(), &json!({ "deviceId": dev.id, "role": "operator" })).await.unwrap();
    assert_eq!(out.result, json!({ "deviceId": dev.id, "role": "operator", "revokedAtMs": T0 + 5 }));
    assert_eq!(out.kick[0].reason, "device token revoked");
    assert_eq!(out.kick[0].role, Some(Role::Operator));
    let r = connect(&gw, &dev, Opts::local(&["operator.read"]).token(&token)).await.unwrap_err();
    assert_eq!(details(&r)["reason"], "token-revoked");
    // The shared secret is full trust: it gets a fresh token.
    let fresh = token_of(&connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap());
    connect(&gw, &dev, Opts::remote(&["operator.read"]).token(&fresh)).await.unwrap();
    let e = gw.devices.json_token_revoke(&owner(), &json!({ "deviceId": dev.id, "role": "node" })).await.unwrap_err();
    assert!(e.message.contains("has no node token"), "{e:?}");
}

#[tokio::test]
async fn approvers_can_grant_only_what_they_hold() {
    let gw = Gw::default();
    let (a, b) = (Dev::new(13), Dev::new(14));
    let admin_request = pending(connect(&gw, &a, Opts::remote(&["operator.admin"])).await, "not-paired");
    let pairing_only = caller(&[Scope::Pairing], AuthMethod::Token, None, true);
    let e = gw.approve(&pairing_only, &admin_request).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("FORBIDDEN", "missing scope: operator.admin"));
    assert_eq!(e.detail_code(), Some("MISSING_SCOPE"));

    let write_request =
        pending(connect(&gw, &b, Opts::remote(&["operator.read", "operator.write"])).await, "not-paired");
    let reader = caller(&[Scope::Pairing, Scope::Read], AuthMethod::Token, None, true);
    assert_eq!(gw.approve(&reader, &write_request).await.unwrap_err().message, "missing scope: operator.write");
    let writer = caller(&[Scope::Pairing, Scope::Write], AuthMethod::Token, None, true);
    gw.approve(&writer, &write_request).await.expect("write satisfies read and write");

    // A node role needs admin.
    let node = Dev::new(15);
    let node_request = pending(connect(&gw, &node, Opts::remote(&[]).role("node")).await, "not-paired");
    assert_eq!(gw.approve(&writer, &node_request).await.unwrap_err().message, "missing scope: operator.admin");

    // A non-admin device-token session acts only on its own device.
    let b_session = caller(&[Scope::Pairing, Scope::Read, Scope::Write], AuthMethod::DeviceToken, Some(&b.id), false);
    let a_read = pending(connect(&gw, &a, Opts::remote(&["operator.read"])).await, "not-paired");
    assert_eq!(gw.approve(&b_session, &a_read).await.unwrap_err().message, "missing scope: operator.admin");
    let e = gw.devices.json_pair_remove(&b_session, &json!({ "deviceId": a.id })).await.unwrap_err();
    assert_eq!(e.code, "FORBIDDEN");
    let e = gw.devices.json_pair_rename(&b_session, &json!({ "deviceId": a.id, "label": "x" })).await.unwrap_err();
    assert_eq!(e.code, "FORBIDDEN");
    let list = gw.list(&b_session).await;
    assert_eq!(list["pending"], json!([]), "sees no other device's request");
    assert_eq!(list["paired"].as_array().unwrap().len(), 1);
    assert_eq!(list["paired"][0]["deviceId"], b.id);
    gw.devices.json_pair_rename(&b_session, &json!({ "deviceId": b.id, "label": "mine" })).await.unwrap();
    let b_upgrade = pending(
        connect(&gw, &b, Opts::remote(&["operator.read", "operator.write", "operator.approvals"])).await,
        "scope-upgrade",
    );
    assert_eq!(gw.approve(&b_session, &b_upgrade).await.unwrap_err().message, "missing scope: operator.approvals");

    // Revoking a token broader than your own scopes is refused.
    let admin_dev = Dev::new(16);
    connect(&gw, &admin_dev, Opts::local(&["operator.admin"])).await.unwrap();
    let e = gw
        .devices
        .json_token_revoke(&pairing_only, &json!({ "deviceId": admin_dev.id, "role": "operator" }))
        .await
        .unwrap_err();
    assert_eq!(e.message, "missing scope: operator.admin");

    let denied: Vec<String> = gw
        .audit()
        .into_iter()
        .filter(|r| r.action.ends_with("denied"))
        .map(|r| format!("{} {}", r.action, r.device_id.unwrap()))
        .collect();
    assert!(denied.contains(&format!("device.pairing.denied {}", a.id)), "{denied:?}");
    assert!(denied.contains(&format!("device.token.revocation_denied {}", admin_dev.id)), "{denied:?}");
}

#[tokio::test]
async fn metadata_and_role_upgrades() {
    let gw = Gw::default();
    let dev = Dev::new(17);
    let token = token_of(&connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap());

    // A different platform from afar must be re-approved; the approval re-pins it.
    let r = connect(&gw, &dev, Opts::remote(&["operator.read"]).token(&token).platform("Darwin")).await.unwrap_err();
    assert_eq!(r.error.message, "pairing required: device identity changed and must be re-approved");
    let id = details(&r)["requestId"].as_str().unwrap().to_string();
    gw.approve(&owner(), &id).await.unwrap();
    connect(&gw, &dev, Opts::remote(&["operator.read"]).token(&token).platform("darwin")).await.unwrap();
    // Locally, without a browser, it is re-pinned silently.
    connect(&gw, &dev, Opts::local(&["operator.read"]).token(&token).platform("windows")).await.unwrap();
    assert_eq!(gw.list(&owner()).await["paired"][0]["platform"], "windows");

    // An operator device asking for the node role: silent locally, pending from afar.
    let node = connect(&gw, &dev, Opts::local(&["operator.read"]).role("node").platform("windows")).await.unwrap();
    assert_eq!((node.role, node.scopes), (Role::Node, ScopeSet::EMPTY));
    assert!(node.device_token.is_some(), "one token per (device, role)");
    let remote_dev = Dev::new(18);
    let id = pending(connect(&gw, &remote_dev, Opts::remote(&["operator.read"])).await, "not-paired");
    gw.approve(&owner(), &id).await.unwrap();
    let r = connect(&gw, &remote_dev, Opts::remote(&[]).role("node")).await.unwrap_err();
    assert_eq!(r.error.message, "pairing required: device is asking for a higher role than currently approved");
    assert_eq!(details(&r)["requestedRole"], "node");

    // A node-only device does not silently become an operator.
    let node_only = Dev::new(19);
    connect(&gw, &node_only, Opts::local(&[]).role("node")).await.unwrap();
    pending(connect(&gw, &node_only, Opts::local(&["operator.read"])).await, "role-upgrade");
}

#[tokio::test]
async fn list_shows_token_metadata_only() {
    let gw = Gw::default();
    let dev = Dev::new(20);
    let token = token_of(&connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap());
    gw.devices.json_pair_rename(&owner(), &json!({ "deviceId": dev.id, "label": "  build box  " })).await.unwrap();
    let connected: HashSet<String> = [dev.id.clone()].into();
    let list = gw.devices.json_pair_list(&owner(), &Value::Null, &connected).await.unwrap().result;
    let paired = &list["paired"][0];
    assert_eq!(paired["connected"], true);
    assert_eq!(paired["label"], "build box");
    assert_eq!(paired["displayName"], "test box");
    assert_eq!(
        paired["tokens"],
        json!([{ "role": "operator", "scopes": ["operator.read"], "createdAtMs": T0, "lastUsedAtMs": T0 }])
    );
    let text = list.to_string();
    assert!(!text.contains(&token) && !text.contains(&hash_token(&token)), "no bearer, no hash");
    assert_eq!(gw.list(&owner()).await["paired"][0]["connected"], false);
}

#[tokio::test]
async fn params_are_closed_and_bounded() {
    let gw = Gw::default();
    let dev = Dev::new(21);
    connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap();
    let o = owner();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("device.pair.list", json!({ "x": 1 }), "invalid device.pair.list params: unknown field `x`"),
        (
            "device.pair.approve",
            json!({ "requestId": "r", "extra": 1 }),
            "invalid device.pair.approve params: unknown field `extra`",
        ),
        ("device.pair.approve", json!({}), "invalid device.pair.approve params: missing field `requestId`"),
        (
            "device.pair.approve",
            json!({ "requestId": 7 }),
            "invalid device.pair.approve params: requestId: invalid type",
        ),
        (
            "device.pair.approve",
            json!({ "requestId": "x".repeat(65) }),
            "invalid device.pair.approve params: requestId must be",
        ),
        ("device.pair.reject", json!({ "requestId": "" }), "invalid device.pair.reject params: requestId must be"),
        ("device.pair.remove", json!({ "deviceId": "abc" }), "invalid device.pair.remove params: deviceId must be 64"),
        (
            "device.pair.remove",
            json!({ "deviceId": dev.id.to_uppercase() }),
            "invalid device.pair.remove params: deviceId",
        ),
        (
            "device.pair.rename",
            json!({ "deviceId": dev.id, "label": "x".repeat(65) }),
            "invalid device.pair.rename params: label must be 1..64",
        ),
        (
            "device.pair.rename",
            json!({ "deviceId": dev.id, "label": "  " }),
            "invalid device.pair.rename params: label",
        ),
        (
            "device.pair.rename",
            json!({ "deviceId": dev.id, "label": "a\nb" }),
            "invalid device.pair.rename params: label",
        ),
        (
            "device.token.rotate",
            json!({ "deviceId": dev.id, "role": "root" }),
            "invalid device.token.rotate params: unknown role: root",
        ),
        (
            "device.token.rotate",
            json!({ "deviceId": dev.id, "role": "operator", "scopes": ["operator.root"] }),
            "invalid device.token.rotate params: unknown scope: operator.root",
        ),
        (
            "device.token.rotate",
            json!({ "deviceId": dev.id, "role": "operator", "scopes": vec!["operator.read"; 17] }),
            "invalid device.token.rotate params: at most 16",
        ),
        (
            "device.token.revoke",
            json!({ "deviceId": dev.id }),
            "invalid device.token.revoke params: missing field `role`",
        ),
        ("audit.query", json!({ "limit": 0 }), "invalid audit.query params: limit must be 1..500"),
        ("audit.query", json!({ "bogus": true }), "invalid audit.query params: unknown field `bogus`"),
        ("device.pair.approve", json!({ "requestId": "no-such-request" }), "unknown requestId"),
        ("device.pair.rename", json!({ "deviceId": "0".repeat(64), "label": "x" }), "unknown deviceId"),
    ];
    for (method, params, expected) in cases {
        let e = gw.devices.json_call(method, &o, &params).await.unwrap_err();
        assert_eq!(e.code, "INVALID_REQUEST", "{method} {params}");
        assert!(e.message.starts_with(expected), "{method} {params}: {}", e.message);
    }
}

/// Captures `tracing` output process-wide for the secrets test.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_action_is_audited_and_no_secret_is_stored_or_logged() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("only this test installs a subscriber");

    let gw = Gw::default();
    let (a, b, c) = (Dev::new(30), Dev::new(31), Dev::new(32));
    let mut secrets: Vec<String> = vec![SHARED.to_string()];

    // A refused proof, as the gateway reports it.
    let failed_peer = gw.peer(false);
    let rejection = Rejection::new(ErrorShape::invalid_request("device signature invalid"), close::POLICY);
    gw.devices.record_auth_failure(&failed_peer, Some(&c.id), &rejection).await;
    gw.devices.record_auth_failure(&failed_peer, Some("not-an-id"), &rejection).await;
    // A device-less CLI connect.
    gw.devices.record_connect(&gw.peer(true), AuthMethod::Token, Role::Operator, scopes(&["operator.read"])).await;

    secrets.push(token_of(&connect(&gw, &a, Opts::local(&["operator.read"])).await.unwrap()));
    let id = pending(connect(&gw, &b, Opts::remote(&["operator.read"])).await, "not-paired");
    gw.approve(&owner(), &id).await.unwrap();
    let b_token = token_of(&connect(&gw, &b, Opts::remote(&["operator.read"])).await.unwrap());
    secrets.push(b_token.clone());
    let up = pending(
        connect(&gw, &b, Opts::remote(&["operator.read", "operator.write"]).token(&b_token)).await,
        "scope-upgrade",
    );
    gw.approve(&owner(), &up).await.unwrap();
    connect(&gw, &b, Opts::remote(&["operator.write"]).token("wrong")).await.unwrap_err();
    gw.devices.json_pair_rename(&owner(), &json!({ "deviceId": a.id, "label": "desk" })).await.unwrap();
    let rotated =
        gw.devices.json_token_rotate(&owner(), &json!({ "deviceId": a.id, "role": "operator" })).await.unwrap();
    secrets.push(rotated.result["token"].as_str().unwrap().to_string());
    gw.devices.json_token_revoke(&owner(), &json!({ "deviceId": a.id, "role": "operator" })).await.unwrap();
    let c_id = pending(connect(&gw, &c, Opts::remote(&["operator.admin"])).await, "not-paired");
    let e = gw.approve(&caller(&[Scope::Pairing], AuthMethod::Token, None, true), &c_id).await.unwrap_err();
    assert_eq!(e.code, "FORBIDDEN");
    gw.devices.json_pair_reject(&owner(), &json!({ "requestId": c_id })).await.unwrap();
    gw.devices.json_pair_remove(&owner(), &json!({ "deviceId": b.id })).await.unwrap();

    let rows = gw.audit();
    let expect = [
        (action::AUTH_FAILED, &c.id),
        (action::PAIRING_APPROVED, &a.id), // silent
        (action::AUTH_SUCCEEDED, &a.id),
        (action::PAIRING_REQUESTED, &b.id),
        (action::PAIRING_APPROVED, &b.id),
        (action::AUTH_SUCCEEDED, &b.id),
        (action::AUTH_FAILED, &b.id), // NOT_PAIRED and the wrong token
        (action::PAIRING_RENAMED, &a.id),
        (action::TOKEN_ROTATED, &a.id),
        (action::TOKEN_REVOKED, &a.id),
        (action::PAIRING_DENIED, &c.id),
        (action::PAIRING_REJECTED, &c.id),
        (action::PAIRING_REMOVED, &b.id),
    ];
    for (act, device) in expect {
        let row = rows.iter().find(|r| r.action == act && r.device_id.as_deref() == Some(device.as_str()));
        let row = row.unwrap_or_else(|| panic!("no {act} row for {device}"));
        assert!(row.remote_ip.is_some() && row.conn_id.is_some(), "{act}: {row:?}");
        assert_eq!(row.client_id.as_deref(), Some("cli"), "{act}");
    }
    let silent = rows.iter().find(|r| r.action == action::PAIRING_APPROVED && r.device_id.as_deref() == Some(&a.id));
    assert!(silent.unwrap().detail_json.contains(r#""via":"silent""#));
    let scope_upgrade = rows
        .iter()
        .any(|r| r.action == action::PAIRING_REQUESTED && r.detail_json.contains(r#""reason":"scope-upgrade""#));
    assert!(scope_upgrade, "the scope upgrade request is audited");
    let wrong_token = rows.iter().any(|r| r.action == action::AUTH_FAILED && r.detail_json.contains("token-mismatch"));
    assert!(wrong_token);
    assert!(
        rows.iter().any(|r| r.action == action::AUTH_FAILED && r.device_id.is_none()),
        "implausible ids are dropped"
    );
    assert!(rows.iter().any(|r| r.action == action::AUTH_SUCCEEDED && r.device_id.is_none()), "device-less connect");

    // No bearer (or its hash) anywhere in the audit log or the logs.
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for secret in &secrets {
        for row in &rows {
            let all = format!("{row:?}");
            assert!(!all.contains(secret.as_str()), "audit row leaks a secret: {all}");
            assert!(!all.contains(&hash_token(secret)), "audit row leaks a token hash: {all}");
        }
        assert!(!log_text.contains(secret.as_str()), "log leaks a secret");
    }
    let line = format!(
        "security audit: device access upgrade requested reason=scope-upgrade device={} ip={REMOTE} auth=device-token \
         roleFrom=operator roleTo=operator scopesFrom=operator.read scopesTo=operator.read,operator.write client=cli conn=conn-",
        b.id
    );
    assert!(log_text.contains(&line), "missing `{line}` in:\n{log_text}");
    assert!(log_text.contains(&format!("device pairing auto-approved device={} role=operator", a.id)));
    assert!(log_text.contains(&format!("device pairing approved device={} role=operator", b.id)));

    // The same rows through `audit.query`.
    let page = gw.devices.json_audit_query(&json!({ "deviceId": b.id, "limit": 2 })).await.unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["nextOffset"], 2);
    assert_eq!(page["entries"][0]["action"], action::PAIRING_REMOVED, "newest first");
    assert_eq!(page["entries"][0]["remoteIp"], LOCAL.to_string());
    assert!(page["entries"][0]["detail"].is_object());
    let total = page["total"].as_u64().unwrap();
    let rest = gw.devices.json_audit_query(&json!({ "deviceId": b.id, "offset": 2, "limit": 500 })).await.unwrap();
    assert_eq!(rest["entries"].as_array().unwrap().len() as u64, total - 2);
    assert_eq!((rest["hasMore"].clone(), rest["nextOffset"].clone()), (json!(false), Value::Null));
    let failed = gw.devices.json_audit_query(&json!({ "action": "gateway.auth.failed", "sinceMs": T0 })).await.unwrap();
    assert!(failed["entries"].as_array().unwrap().iter().all(|e| e["action"] == "gateway.auth.failed"));
    let later = gw.devices.json_audit_query(&json!({ "sinceMs": T0 + 1 })).await.unwrap();
    assert_eq!(later["total"], 0);
}

#[tokio::test]
async fn a_pending_request_covered_by_a_later_local_pairing_is_approved_with_it() {
    let mut gw = Gw::default();
    let dev = Dev::new(40);
    let id = pending(connect(&gw, &dev, Opts::remote(&["operator.read"])).await, "not-paired");
    gw.events();
    connect(&gw, &dev, Opts::local(&["operator.read"])).await.unwrap();
    assert_eq!(
        gw.events(),
        [("device.pair.resolved", json!({"requestId": id, "deviceId": dev.id, "decision": "approved", "ts": T0}))]
    );
    assert_eq!(gw.list(&owner()).await["pending"], json!([]));
}

#[tokio::test]
async fn a_flood_of_failed_connects_writes_a_few_rows_with_counts() {
    use crate::audit::{FAILURE_WINDOW_MS, FAILURES_AUDITED_PER_WINDOW};
    let gw = Gw::default();
    let mismatch = Rejection::new(
        ErrorShape::invalid_request("unauthorized: gateway token mismatch")
            .with_details(json!({ "code": detail_code::AUTH_TOKEN_MISMATCH })),
        close::POLICY,
    );
    let missing = Rejection::new(
        ErrorShape::invalid_request("unauthorized: gateway token missing")
            .with_details(json!({ "code": detail_code::AUTH_TOKEN_MISSING })),
        close::POLICY,
    );
    for i in 0..1_000 {
        let rejection = if i % 4 == 0 { &missing } else { &mismatch };
        gw.devices.record_auth_failure(&gw.peer(false), None, rejection).await;
        gw.clock.advance(10);
    }
    // Another address has its own allowance.
    gw.devices.record_auth_failure(&gw.peer(true), None, &mismatch).await;
    let failed = |gw: &Gw| gw.audit().into_iter().filter(|r| r.action == action::AUTH_FAILED).collect::<Vec<_>>();
    assert_eq!(failed(&gw).len(), FAILURES_AUDITED_PER_WINDOW as usize + 1);
    // The window (60 s) ends at T0 + 60 s: the flush writes one row counting the rest of it, and
    // the failures after it start a new window with its own rows.
    gw.clock.set(T0 + FAILURE_WINDOW_MS);
    gw.devices.flush_auth_failures(false).await;
    let rows = failed(&gw);
    let summaries: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.detail_json).unwrap())
        .filter(|d| d["summary"] == true)
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let counted = 1_000 - FAILURES_AUDITED_PER_WINDOW as u64;
    assert_eq!(summaries[0]["count"], counted);
    assert_eq!(summaries[0]["reasons"], json!({ "AUTH_TOKEN_MISMATCH": 750 - 7, "AUTH_TOKEN_MISSING": 250 - 3 }));
    let summary_row = rows.iter().find(|r| r.detail_json.contains("\"summary\":true")).unwrap();
    assert_eq!(summary_row.remote_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(summary_row.conn_id, None);
    // The loopback window had nothing counted: no summary for it, even when everything is flushed.
    gw.devices.flush_auth_failures(true).await;
    assert_eq!(failed(&gw).len(), FAILURES_AUDITED_PER_WINDOW as usize + 2);
    // A later failure from the flooding address gets its own row again.
    gw.devices.record_auth_failure(&gw.peer(false), None, &mismatch).await;
    assert_eq!(failed(&gw).len(), FAILURES_AUDITED_PER_WINDOW as usize + 3);
}
