//! Devices at the protocol boundary: Ed25519 proofs over the challenge, pairing (silent local,
//! approved, scope upgrades), device tokens, revocation closing live sockets, the audit log, the
//! method × scope table, and the seed bug (#22298): internal work never pairs.

use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use pincer_testkit::fakes::discord::FakeDiscord;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{T0, TOKEN, TestGateway, error_of};

/// A device key pair, signing connect requests exactly as the OpenClaw client does.
struct Device {
    key: SigningKey,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Device {
    fn new(seed: u8) -> Device {
        Device { key: SigningKey::from_bytes(&[seed; 32]) }
    }

    fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn id(&self) -> String {
        Sha256::digest(self.public()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `connect` params with a v3 signature built here, independently of Pincer's code.
    fn params(
        &self,
        token: Option<&str>,
        device_token: Option<&str>,
        scopes: &[&str],
        nonce: &str,
        signed_at: i64,
    ) -> Value {
        let mut p = cli_connect_params(token, scopes);
        if let Some(dt) = device_token {
            p["auth"]["deviceToken"] = json!(dt);
        }
        let signed_token = token.or(device_token).unwrap_or("");
        let payload = format!(
            "v3|{}|cli|cli|operator|{}|{signed_at}|{signed_token}|{nonce}|linux|linux",
            self.id(),
            scopes.join(",")
        );
        let sig = self.key.sign(payload.as_bytes());
        p["device"] = json!({
            "id": self.id(), "publicKey": b64(&self.public()), "signature": b64(&sig.to_bytes()),
            "signedAt": signed_at, "nonce": nonce,
        });
        p
    }

    /// Opens a socket, signs over its challenge, and returns the `connect` response and the socket.
    async fn connect(
        &self,
        gw: &TestGateway,
        token: Option<&str>,
        device_token: Option<&str>,
        scopes: &[&str],
    ) -> (Value, RawClient) {
        self.connect_with(gw, |d, nonce, ts| d.params(token, device_token, scopes, nonce, ts)).await
    }

    async fn connect_with(&self, gw: &TestGateway, build: impl Fn(&Device, &str, i64) -> Value) -> (Value, RawClient) {
        let mut c = RawClient::open(&gw.url()).await.unwrap();
        let challenge = c.next_frame().await.unwrap();
        let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
        let ts = challenge["payload"]["ts"].as_i64().unwrap();
        let res = c.request("connect", build(self, &nonce, ts)).await.unwrap();
        (res, c)
    }
}

#[tokio::test]
async fn a_local_device_pairs_silently_gets_a_token_and_reconnects_with_it() {
    let gw = TestGateway::start().await;
    let d = Device::new(1);
    let (res, _c) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    let device_token = auth["deviceToken"].as_str().expect("a device token is issued").to_string();
    assert_eq!(device_token.len(), 43);
    assert_eq!(auth["scopes"], json!(["operator.read"]));
    // The token alone (no shared secret) now authenticates this key.
    let (res, mut c) = d.connect(&gw, None, Some(&device_token), &["operator.read"]).await;
    assert_eq!(res["payload"]["auth"]["method"], "device-token", "{res}");
    assert!(res["payload"]["auth"].get("deviceToken").is_none(), "a valid token is reused, not re-issued");
    assert_eq!(c.call("cron.list", json!({})).await.unwrap()["total"], 0);
    // …but not another key.
    let other = Device::new(2);
    let (res, _) = other.connect(&gw, None, Some(&device_token), &["operator.read"]).await;
    assert_eq!(res["ok"], false);
    gw.stop().await;
}

#[tokio::test]
async fn more_scopes_than_granted_is_an_approvable_request_not_a_dead_end() {
    let gw = TestGateway::start().await;
    let d = Device::new(3);
    let (res, _) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    let token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_string();
    let mut owner = gw.client(&["operator.admin"]).await;
    let mut watcher = gw.client(&["operator.pairing"]).await;
    let (res, mut sock) = d.connect(&gw, None, Some(&token), &["operator.read", "operator.write"]).await;
    let (code, message) = error_of(&res);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("NOT_PAIRED", "pairing required: device is asking for more scopes than currently approved")
    );
    let details = &res["error"]["details"];
    assert_eq!(
        (details["code"].as_str(), details["reason"].as_str()),
        (Some("PAIRING_REQUIRED"), Some("scope-upgrade"))
    );
    assert_eq!(details["approvedScopes"], json!(["operator.read"]));
    let request_id = details["requestId"].as_str().unwrap().to_string();
    let (close, reason) = sock.expect_close().await.unwrap();
    assert_eq!(close, Some(1008));
    assert!(
        reason.starts_with("pairing required: device is asking for more scopes") && reason.contains(&request_id),
        "{reason}"
    );
    let ev = watcher.next_event("device.pair.requested").await.unwrap();
    assert_eq!(ev["payload"]["requestId"], request_id.as_str());
    let list = owner.call("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"][0]["requestId"], request_id.as_str());
    owner.call("device.pair.approve", json!({"requestId": request_id})).await.unwrap();
    let (res, mut c) = d.connect(&gw, None, Some(&token), &["operator.read", "operator.write"]).await;
    assert_eq!(res["ok"], true, "{res}");
    let sent =
        c.call("send", json!({"to": "default", "channel": "inbox", "message": "hi", "idempotencyKey": "x"})).await;
    assert!(sent.is_ok(), "write scope granted: {sent:?}");
    gw.stop().await;
}

#[tokio::test]
async fn without_local_auto_approval_the_owner_approves_or_rejects() {
    let gw = TestGateway::start_with("{gateway: {pairing: {autoApproveLocal: false}}}").await;
    let mut owner = gw.client(&["operator.admin"]).await;
    let d = Device::new(4);
    let (res, _) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    assert_eq!(res["error"]["details"]["reason"], "not-paired");
    let first = res["error"]["details"]["requestId"].as_str().unwrap().to_string();
    // The same request again refreshes it instead of piling up.
    let (res, _) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    assert_eq!(res["error"]["details"]["requestId"], first.as_str());
    owner.call("device.pair.reject", json!({"requestId": first})).await.unwrap();
    assert_eq!(owner.call("device.pair.list", json!({})).await.unwrap()["pending"], json!([]));
    let (res, _) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    let second = res["error"]["details"]["requestId"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    // Requests expire after five minutes.
    gw.clock.advance(5 * 60_000 + 1);
    let res = owner.request("device.pair.approve", json!({"requestId": second})).await.unwrap();
    assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), "unknown requestId".into()));
    gw.stop().await;
}

#[tokio::test]
async fn revoking_a_token_closes_its_live_connections_at_once() {
    let gw = TestGateway::start().await;
    let d = Device::new(5);
    let (res, _) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    let token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_string();
    let (_, mut live) = d.connect(&gw, None, Some(&token), &["operator.read"]).await;
    let mut owner = gw.client(&["operator.admin"]).await;
    owner.call("device.token.revoke", json!({"deviceId": d.id(), "role": "operator"})).await.unwrap();
    let (code, reason) = live.expect_close().await.unwrap();
    assert_eq!(code, Some(4001));
    assert!(reason.starts_with("client invalidated"), "{reason}");
    let (res, _) = d.connect(&gw, None, Some(&token), &["operator.read"]).await;
    assert_eq!(res["ok"], false, "a revoked token stops working: {res}");
    // Rotation mints a new bearer for the local owner; the old one dies.
    let (res, _) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    let t2 = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_string();
    let rotated = owner.call("device.token.rotate", json!({"deviceId": d.id(), "role": "operator"})).await.unwrap();
    let t3 = rotated["token"].as_str().expect("the local owner gets the new bearer").to_string();
    assert_eq!(d.connect(&gw, None, Some(&t2), &["operator.read"]).await.0["ok"], false);
    assert_eq!(d.connect(&gw, None, Some(&t3), &["operator.read"]).await.0["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn bad_proofs_are_rejected_with_their_codes_audited_and_never_panic() {
    let gw = TestGateway::start().await;
    let d = Device::new(6);
    let other = Device::new(7);
    type Build = Box<dyn Fn(&Device, &str, i64) -> Value>;
    let rows: Vec<(&str, Build)> = vec![
        (
            "DEVICE_AUTH_SIGNATURE_INVALID",
            Box::new(|d, n, ts| {
                let mut p = d.params(Some(TOKEN), None, &["operator.read"], n, ts);
                p["device"]["signature"] = json!(b64(&[7u8; 64]));
                p
            }),
        ),
        (
            "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            Box::new(|d, n, ts| {
                let mut p = d.params(Some(TOKEN), None, &["operator.read"], n, ts);
                p["device"]["publicKey"] = json!(b64(&[1u8; 31]));
                p
            }),
        ),
        (
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            Box::new(|d, n, ts| d.params(Some(TOKEN), None, &["operator.read"], n, ts - 120_001)),
        ),
        (
            "DEVICE_AUTH_NONCE_MISMATCH",
            Box::new(|d, _n, ts| {
                d.params(Some(TOKEN), None, &["operator.read"], "4539e1be-5550-46c0-be05-dc7e4a5911e0", ts)
            }),
        ),
        (
            "DEVICE_AUTH_NONCE_REQUIRED",
            Box::new(|d, n, ts| {
                let mut p = d.params(Some(TOKEN), None, &["operator.read"], n, ts);
                p["device"].as_object_mut().unwrap().remove("nonce");
                p
            }),
        ),
        (
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            Box::new(move |d, n, ts| {
                let mut p = d.params(Some(TOKEN), None, &["operator.read"], n, ts);
                p["device"]["id"] = json!("0".repeat(64));
                p
            }),
        ),
    ];
    for (expected, build) in rows {
        let (res, mut sock) = d.connect_with(&gw, |d, n, ts| build(d, n, ts)).await;
        assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{expected}: {res}");
        assert_eq!(res["error"]["details"]["code"], expected, "{res}");
        assert_eq!(sock.expect_close().await.unwrap().0, Some(1008));
    }
    // A captured connect replayed on a new socket carries the old socket's nonce.
    let mut first = RawClient::open(&gw.url()).await.unwrap();
    let ch = first.next_frame().await.unwrap();
    let captured = other.params(Some(TOKEN), None, &["operator.read"], ch["payload"]["nonce"].as_str().unwrap(), T0);
    let (res, _) = other.connect_with(&gw, |_, _, _| captured.clone()).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH");
    // Unknown scopes and roles, with a valid signature.
    let (res, _) = d.connect_with(&gw, |d, n, ts| d.params(Some(TOKEN), None, &["operator.root"], n, ts)).await;
    assert!(error_of(&res).1.contains("unknown scope: operator.root"));
    let mut owner = gw.client(&["operator.admin"]).await;
    let audit = owner.call("audit.query", json!({"limit": 200})).await.unwrap();
    let failures = audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "gateway.auth.failed").count();
    assert!(failures >= 8, "every refusal is audited: {audit}");
    assert!(audit["entries"].as_array().unwrap().iter().all(|e| e["remoteIp"] == "127.0.0.1"));
    gw.stop().await;
}

/// OpenClaw's implication rules, written out again for the test: admin covers everything; write
/// covers read, talk and the session scopes; read covers sessions.read; sessions.write covers
/// sessions.read.
fn covers(held: &[&str], required: &str) -> bool {
    held.iter().any(|h| {
        *h == required
            || *h == "operator.admin"
            || (*h == "operator.write"
                && ["operator.read", "operator.talk", "operator.sessions.read", "operator.sessions.write"]
                    .contains(&required))
            || (*h == "operator.read" && required == "operator.sessions.read")
            || (*h == "operator.sessions.write" && required == "operator.sessions.read")
    })
}

#[tokio::test]
async fn every_method_times_every_scope_set_is_allowed_or_denied_by_the_table() {
    let gw = TestGateway::start().await;
    let tsv = include_str!("../crates/pincer-protocol/src/method-scopes.tsv");
    let mut table = std::collections::HashMap::new();
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        table.insert(cols[0], cols[1]);
    }
    let pincer_own = [
        ("deliveries.list", "operator.read"),
        ("deliveries.get", "operator.read"),
        ("deliveries.retry", "operator.write"),
        ("deliveries.cancel", "operator.write"),
        ("deliveries.purge", "operator.admin"),
        ("inbox.list", "operator.read"),
        ("doctor.run", "operator.read"),
        ("audit.query", "operator.admin"),
        ("cron.preview", "operator.read"),
        ("mcp.servers.list", "operator.read"),
        ("mcp.servers.probe", "operator.admin"),
    ];
    for (m, s) in pincer_own {
        table.insert(m, s);
    }
    let (hello_client, hello) = RawClient::connect(&gw.url(), cli_connect_params(Some(TOKEN), &[])).await.unwrap();
    drop(hello_client);
    let methods: Vec<String> = serde_json::from_value(hello["features"]["methods"].clone()).unwrap();
    let scope_sets: Vec<Vec<&str>> = vec![
        vec![],
        vec!["operator.read"],
        vec!["operator.write"],
        vec!["operator.admin"],
        vec!["operator.pairing"],
        vec!["operator.approvals"],
        vec!["operator.sessions.read"],
        vec!["operator.read", "operator.pairing"],
    ];
    let mut checked = 0;
    for scopes in &scope_sets {
        let mut c = gw.client(scopes).await;
        for m in &methods {
            let required = match m.as_str() {
                "health" => None,
                "agent" => Some("operator.write"),
                // Without `bootstrapCommandOwner` (OpenClaw's dynamic rule).
                "channels.pairing.approve" => Some("operator.pairing"),
                // Dynamic: admin unless `archivedOnly` (OpenClaw's rule).
                "sessions.delete" => Some("operator.admin"),
                // Dynamic: write for display and model fields only, admin for any other field
                // (the probe's unknown one).
                "sessions.patch" => Some("operator.admin"),
                other => Some(*table.get(other).unwrap_or(&"operator.admin")),
            };
            let allowed = required.is_none_or(|r| covers(scopes, r));
            // Params that fail validation early keep the test free of side effects.
            let res = c.request(m, json!({"__probe": true})).await.unwrap();
            let forbidden = res["error"]["code"] == "FORBIDDEN";
            assert_eq!(!forbidden, allowed, "{m} with {scopes:?}: {res}");
            if forbidden {
                assert_eq!(res["error"]["details"]["missingScope"], required.unwrap());
            }
            checked += 1;
        }
    }
    assert!(checked >= methods.len() * scope_sets.len());
    gw.stop().await;
}

#[tokio::test]
async fn seed_bug_scheduled_announces_never_touch_pairing_even_when_every_device_is_read_only() {
    let discord = FakeDiscord::start().await;
    let cfg = format!(
        "{{ channels: {{ discord: {{ token: '{}', apiBaseUrl: '{}' }} }}, delivery: {{ rateLimits: {{ discord: 0 }} }} }}",
        FakeDiscord::TOKEN,
        discord.base_url()
    );
    let gw = TestGateway::start_with(&cfg).await;
    // The only paired device holds just operator.read.
    let d = Device::new(9);
    let (res, _) = d.connect(&gw, Some(TOKEN), None, &["operator.read"]).await;
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.read"]));
    let mut owner = gw.client(&["operator.admin"]).await;
    let job = owner
        .call(
            "cron.add",
            json!({
                "name": "announce", "schedule": {"kind": "every", "everyMs": 60_000}, "sessionTarget": "isolated",
                "payload": {"kind": "command", "argv": ["echo", "scheduled report"]},
                "delivery": {"mode": "announce", "channel": "discord", "to": "channel:4242"},
            }),
        )
        .await
        .unwrap();
    let before_devices = owner.call("device.pair.list", json!({})).await.unwrap();
    let before_audit = owner.call("audit.query", json!({"limit": 500})).await.unwrap();
    for i in 1..=100 {
        gw.clock.set(T0 + i * 60_000);
        discord.wait_for_messages(i as usize, Duration::from_secs(20)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let runs =
            owner.call("cron.runs", json!({"id": job["id"], "limit": 1, "deliveryStatus": "delivered"})).await.unwrap();
        if runs["total"] == 100 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "every scheduled announce delivered: {}", runs["total"]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(discord.messages().len(), 100);
    let after_devices = owner.call("device.pair.list", json!({})).await.unwrap();
    assert_eq!(after_devices["pending"], json!([]), "no pairing request");
    assert_eq!(before_devices["paired"].as_array().unwrap().len(), after_devices["paired"].as_array().unwrap().len());
    assert_eq!(after_devices["paired"][0]["tokens"][0]["scopes"], json!(["operator.read"]), "no scope upgrade");
    let after_audit = owner.call("audit.query", json!({"limit": 500})).await.unwrap();
    assert_eq!(
        after_audit["total"], before_audit["total"],
        "the audit log shows no internal connection: {}",
        after_audit["entries"][0]
    );
    gw.stop().await;
}

/// Connects a fresh device (key from `seed`) to a gateway that requires approval; returns the
/// pending request's id. Used by the interop suite.
pub async fn pending_request(url: &str, token: &str, seed: u8) -> String {
    let d = Device::new(seed);
    let mut c = RawClient::open(url).await.unwrap();
    let challenge = c.next_frame().await.unwrap();
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let ts = challenge["payload"]["ts"].as_i64().unwrap();
    // Signed over the shared token, as OpenClaw's client does when it has one.
    let params = d.params(Some(token), None, &["operator.read"], &nonce, ts);
    let res = c.request("connect", params).await.unwrap();
    res["error"]["details"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a pending request: {res}"))
        .to_string()
}

/// The `connect` response of the device with key `seed` presenting the shared `token` or a
/// `device_token`: how a client pairs (silently, on loopback) and how it comes back.
pub async fn connect_device(
    url: &str,
    seed: u8,
    token: Option<&str>,
    device_token: Option<&str>,
    scopes: &[&str],
) -> Value {
    let d = Device::new(seed);
    let mut c = RawClient::open(url).await.unwrap();
    let challenge = c.next_frame().await.unwrap();
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let ts = challenge["payload"]["ts"].as_i64().unwrap();
    c.request("connect", d.params(token, device_token, scopes, &nonce, ts)).await.unwrap()
}
