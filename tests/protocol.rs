//! The protocol v4 boundary: handshake, framing, auth, scopes, limits and events. Each bad-input
//! row gets the documented error or close code, and other connections carry on.

use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::{T0, TOKEN, TestGateway, error_of};

/// Opens a socket and reads the challenge.
async fn opened(gw: &TestGateway) -> RawClient {
    let mut c = RawClient::open(&gw.url()).await.unwrap();
    let challenge = c.next_frame().await.unwrap();
    assert_eq!(challenge["event"], "connect.challenge");
    c
}

fn connect_req(params: Value) -> String {
    json!({"type": "req", "id": "c1", "method": "connect", "params": params}).to_string()
}

#[tokio::test]
async fn challenge_comes_first_with_nonce_and_ts() {
    let gw = TestGateway::start().await;
    let mut c = RawClient::open(&gw.url()).await.unwrap();
    let frame = c.next_frame().await.unwrap();
    assert_eq!(frame["type"], "event");
    assert_eq!(frame["event"], "connect.challenge");
    assert!(frame.get("seq").is_none(), "the challenge carries no seq");
    assert_eq!(frame["payload"]["ts"], T0);
    let nonce = frame["payload"]["nonce"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(nonce).unwrap().get_version_num(), 4);
    gw.stop().await;
}

#[tokio::test]
async fn hello_ok_lists_exactly_the_implemented_methods_and_live_scopes() {
    let gw = TestGateway::start().await;
    let (mut c, hello) =
        RawClient::connect(&gw.url(), cli_connect_params(Some(TOKEN), &["operator.read"])).await.unwrap();
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    let methods: Vec<String> = serde_json::from_value(hello["features"]["methods"].clone()).unwrap();
    let state = &gw.gateway.as_ref().unwrap().state;
    assert_eq!(methods, state.methods.names());
    for m in &methods {
        // Everything advertised answers something other than "unknown method".
        let res = c.request(m, json!({})).await.unwrap();
        let msg = res["error"]["message"].as_str().unwrap_or("");
        assert!(!msg.starts_with("unknown method"), "{m} is advertised but unknown");
    }
    assert_eq!(hello["auth"], json!({"role": "operator", "scopes": ["operator.read"], "method": "token"}));
    assert_eq!(hello["policy"], json!({"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000}));
    assert_eq!(hello["snapshot"]["health"]["ok"], true);
    let health = c.call("health", json!({})).await.unwrap();
    assert_eq!(health["ok"], true);
    let status = c.call("status", json!({})).await.unwrap();
    assert_eq!(status["store"]["schemaVersion"], pincer_store::LATEST_VERSION);
    gw.stop().await;
}

#[tokio::test]
async fn row_malformed_json_before_hello_closes_1008() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    c.send_text("{not json").await.unwrap();
    let (code, reason) = c.expect_close().await.unwrap();
    assert_eq!(code, Some(1008));
    assert!(reason.starts_with("invalid request frame: invalid frame: malformed JSON"), "{reason}");
    gw.stop().await;
}

#[tokio::test]
async fn row_malformed_json_after_hello_answers_and_keeps_the_connection() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.read"]).await;
    c.send_text("{not json").await.unwrap();
    let res = c.next_frame().await.unwrap();
    assert_eq!(res["id"], "invalid");
    let (code, message) = error_of(&res);
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.starts_with("invalid request frame"), "{message}");
    assert_eq!(c.call("health", json!({})).await.unwrap()["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn row_first_request_not_connect() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    c.send_text(json!({"type": "req", "id": "h1", "method": "health"}).to_string()).await.unwrap();
    let res = c.next_frame().await.unwrap();
    assert_eq!(res["id"], "h1");
    assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), "invalid handshake: first request must be connect".into()));
    assert_eq!(
        c.expect_close().await.unwrap(),
        (Some(1008), "invalid handshake: first request must be connect".into())
    );
    gw.stop().await;
}

#[tokio::test]
async fn row_first_frame_is_not_a_request() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    c.send_text(json!({"type": "event", "event": "tick"}).to_string()).await.unwrap();
    assert_eq!(c.expect_close().await.unwrap(), (Some(1008), "invalid request frame".into()));
    gw.stop().await;
}

#[tokio::test]
async fn row_oversized_frame_before_hello_closes_1009() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    let big = connect_req(json!({"pad": "x".repeat(65 * 1024)}));
    c.send_text(big).await.unwrap();
    assert_eq!(c.expect_close().await.unwrap(), (Some(1009), "preauth payload too large".into()));
    gw.stop().await;
}

#[tokio::test]
async fn row_frame_over_25_mib_after_hello_closes_1009() {
    let gw = TestGateway::start().await;
    let mut survivor = gw.client(&["operator.read"]).await;
    let mut c = gw.client(&["operator.read"]).await;
    // Just under the limit is fine.
    let ok =
        json!({"type": "req", "id": "big", "method": "health", "params": {"pad": "y".repeat(1024 * 1024)}}).to_string();
    c.send_text(ok).await.unwrap();
    assert_eq!(c.next_frame().await.unwrap()["ok"], true);
    let _ = c.send_text("z".repeat(25 * 1024 * 1024 + 1)).await;
    let (code, _) = c.expect_close().await.unwrap();
    assert!(code == Some(1009) || code.is_none(), "closed with {code:?}");
    assert_eq!(survivor.call("health", json!({})).await.unwrap()["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn row_wrong_token() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    c.send_text(connect_req(cli_connect_params(Some("wrong"), &["operator.read"]))).await.unwrap();
    let res = c.next_frame().await.unwrap();
    let (code, message) = error_of(&res);
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.starts_with("unauthorized: gateway token mismatch"), "{message}");
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(res["error"]["details"]["recommendedNextStep"], "update_auth_credentials");
    assert_eq!(c.expect_close().await.unwrap().0, Some(1008));
    gw.stop().await;
}

#[tokio::test]
async fn row_missing_token() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    c.send_text(connect_req(cli_connect_params(None, &["operator.read"]))).await.unwrap();
    let res = c.next_frame().await.unwrap();
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISSING");
    assert_eq!(c.expect_close().await.unwrap().0, Some(1008));
    gw.stop().await;
}

#[tokio::test]
async fn row_failed_auth_is_rate_limited_per_address() {
    let gw =
        TestGateway::start_with("{gateway:{auth:{rateLimit:{maxAttempts:3, windowMs:60000, lockoutMs:300000}}}}").await;
    for _ in 0..3 {
        let mut c = opened(&gw).await;
        c.send_text(connect_req(cli_connect_params(Some("wrong"), &[]))).await.unwrap();
        assert_eq!(c.next_frame().await.unwrap()["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    // Locked out now, even with the right token.
    let mut c = opened(&gw).await;
    c.send_text(connect_req(cli_connect_params(Some(TOKEN), &[]))).await.unwrap();
    let res = c.next_frame().await.unwrap();
    assert_eq!(res["error"]["details"]["code"], "AUTH_RATE_LIMITED");
    assert_eq!(res["error"]["retryable"], true);
    assert_eq!(res["error"]["retryAfterMs"], 300_000);
    // The lockout ends with time (fake clock).
    gw.clock.advance(300_001);
    assert!(RawClient::connect(&gw.url(), cli_connect_params(Some(TOKEN), &[])).await.is_ok());
    gw.stop().await;
}

#[tokio::test]
async fn row_unsupported_protocol_version_closes_1002() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    let mut params = cli_connect_params(Some(TOKEN), &[]);
    params["minProtocol"] = json!(2);
    params["maxProtocol"] = json!(3);
    c.send_text(connect_req(params)).await.unwrap();
    let res = c.next_frame().await.unwrap();
    assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), "protocol mismatch".into()));
    assert_eq!(
        res["error"]["details"],
        json!({"code": "PROTOCOL_MISMATCH", "clientMinProtocol": 2, "clientMaxProtocol": 3, "expectedProtocol": 4, "minimumProbeProtocol": 3})
    );
    assert_eq!(c.expect_close().await.unwrap(), (Some(1002), "protocol mismatch".into()));
    gw.stop().await;
}

#[tokio::test]
async fn row_unknown_method() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let res = c.request("made.up", json!({})).await.unwrap();
    assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), "unknown method: made.up".into()));
    assert_eq!(c.call("health", json!({})).await.unwrap()["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn row_wrong_parameter_types() {
    let gw = TestGateway::start().await;
    // In connect params.
    let mut c = opened(&gw).await;
    let mut params = cli_connect_params(Some(TOKEN), &[]);
    params["minProtocol"] = json!("4");
    c.send_text(connect_req(params)).await.unwrap();
    let (code, message) = error_of(&c.next_frame().await.unwrap());
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.starts_with("invalid connect params: invalid type: string \"4\""), "{message}");
    assert_eq!(c.expect_close().await.unwrap().0, Some(1008));
    // In a request frame after hello: answered, connection kept.
    let mut c = gw.client(&["operator.read"]).await;
    c.send_text(r#"{"type":"req","id":"r1","method":7}"#).await.unwrap();
    let res = c.next_frame().await.unwrap();
    assert_eq!(res["id"], "r1");
    assert!(error_of(&res).1.starts_with("invalid request frame: invalid req frame: invalid type"));
    c.send_text(r#"{"type":"req","id":"r2","method":"health","bogus":1}"#).await.unwrap();
    assert!(error_of(&c.next_frame().await.unwrap()).1.contains("unknown field `bogus`"));
    assert_eq!(c.call("health", json!({})).await.unwrap()["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn row_closed_enums_and_scopes_are_enforced_at_connect() {
    let gw = TestGateway::start().await;
    for (mutate, expected) in [
        (json!({"client": {"id": "hacker"}}), "invalid connect params: unknown variant `hacker`"),
        (json!({"client": {"mode": "root"}}), "invalid connect params: unknown variant `root`"),
        (json!({"scopes": ["operator.root"]}), "invalid connect params: unknown scope: operator.root"),
        (json!({"role": "superuser"}), "invalid role: superuser"),
        (json!({"surprise": true}), "invalid connect params: unknown field `surprise`"),
    ] {
        let mut params = cli_connect_params(Some(TOKEN), &[]);
        for (k, v) in mutate.as_object().unwrap() {
            match v {
                Value::Object(inner) => inner.iter().for_each(|(ik, iv)| params[k][ik] = iv.clone()),
                _ => params[k] = v.clone(),
            }
        }
        let mut c = opened(&gw).await;
        c.send_text(connect_req(params)).await.unwrap();
        let (code, message) = error_of(&c.next_frame().await.unwrap());
        assert_eq!(code, "INVALID_REQUEST");
        assert!(message.starts_with(expected), "{message} should start with {expected}");
        assert_eq!(c.expect_close().await.unwrap().0, Some(1008));
    }
    gw.stop().await;
}

#[tokio::test]
async fn missing_scope_is_forbidden_and_health_needs_none() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&[]).await;
    assert_eq!(c.call("health", json!({})).await.unwrap()["ok"], true);
    let res = c.request("status", json!({})).await.unwrap();
    assert_eq!(error_of(&res), ("FORBIDDEN".into(), "missing scope: operator.read".into()));
    assert_eq!(
        res["error"]["details"],
        json!({"code": "MISSING_SCOPE", "missingScope": "operator.read", "requiredScopes": ["operator.read"]})
    );
    gw.stop().await;
}

#[tokio::test]
async fn only_the_local_cli_keeps_declared_scopes() {
    let gw = TestGateway::start().await;
    let mut params = cli_connect_params(Some(TOKEN), &["operator.admin"]);
    params["client"]["id"] = json!("test");
    params["client"]["mode"] = json!("test");
    let (mut c, hello) = RawClient::connect(&gw.url(), params).await.unwrap();
    assert_eq!(hello["auth"]["scopes"], json!([]));
    assert_eq!(error_of(&c.request("status", json!({})).await.unwrap()).0, "FORBIDDEN");
    gw.stop().await;
}

#[tokio::test]
async fn handshake_times_out_after_15_seconds() {
    let gw = TestGateway::start().await;
    let mut early = opened(&gw).await;
    gw.clock.advance(14_999);
    // At 14.999 s the handshake still goes through.
    early.send_text(connect_req(cli_connect_params(Some(TOKEN), &[]))).await.unwrap();
    assert_eq!(early.next_frame().await.unwrap()["ok"], true);
    let mut idle = opened(&gw).await;
    gw.clock.advance(15_000);
    // Like OpenClaw, the timeout closes without an explicit code.
    assert_eq!(idle.expect_close().await.unwrap(), (None, String::new()));
    gw.stop().await;
}

#[tokio::test]
async fn ticks_every_30_seconds_with_per_connection_seq() {
    let gw = TestGateway::start().await;
    let mut a = gw.client(&["operator.read"]).await;
    gw.clock.advance(30_000);
    let t1 = a.next_event("tick").await.unwrap();
    assert_eq!((t1["seq"].as_u64(), t1["payload"]["ts"].as_i64()), (Some(1), Some(T0 + 30_000)));
    let mut b = gw.client(&["operator.read"]).await;
    gw.clock.advance(30_000);
    assert_eq!(a.next_event("tick").await.unwrap()["seq"], 2);
    assert_eq!(b.next_event("tick").await.unwrap()["seq"], 1, "seq counts per connection");
    gw.stop().await;
}

#[tokio::test]
async fn many_bad_connections_do_not_disturb_a_good_one() {
    let gw = TestGateway::start().await;
    let mut good = gw.client(&["operator.read"]).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = gw.url();
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::open(&url).await.unwrap();
            let _ = c.next_frame().await;
            let junk = match i % 4 {
                0 => "garbage".to_string(),
                1 => json!({"type": "req", "id": "x", "method": "status"}).to_string(),
                2 => connect_req(cli_connect_params(Some("nope"), &[])),
                _ => "[]".to_string(),
            };
            c.send_text(junk).await.unwrap();
            c.expect_close().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().0, Some(1008));
    }
    assert_eq!(good.call("status", json!({})).await.unwrap()["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn http_endpoints() {
    let gw = TestGateway::start().await;
    let (status, body) = pincer_testkit::http::get(gw.addr(), "/healthz").await.unwrap();
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["ok"].clone()), (200, json!(true)));
    let (status, body) = pincer_testkit::http::get(gw.addr(), "/readyz").await.unwrap();
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["ready"].clone()), (200, json!(true)));
    let mut c = gw.client(&["operator.read"]).await;
    c.call("health", json!({})).await.unwrap();
    let (status, metrics) = pincer_testkit::http::get(gw.addr(), "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("pincer_ws_connections 1\n"), "{metrics}");
    assert!(metrics.contains("pincer_ws_requests_total{method=\"health\",outcome=\"ok\"} 1\n"), "{metrics}");
    let sqlite: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pincer_store_sqlite_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no SQLite memory gauge: {metrics}"));
    assert!(sqlite > 0.0, "an open store holds some memory: {sqlite}");
    let (status, _) = pincer_testkit::http::get(gw.addr(), "/").await.unwrap();
    assert_eq!(status, 426);
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_sends_event_and_closes_1001() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.read"]).await;
    let addr = gw.addr();
    gw.stop().await;
    let ev = c.next_event("shutdown").await.unwrap();
    assert_eq!(ev["payload"]["reason"], "gateway stopping");
    assert_eq!(c.expect_close().await.unwrap().0, Some(1001));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "port released");
}
