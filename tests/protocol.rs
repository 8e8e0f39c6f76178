//! The protocol v4 boundary: handshake, framing, auth, scopes, limits and events. Each bad-input
//! row gets the documented error or close code, and other connections carry on.

use std::time::Duration;

use pincer_testkit::ws::{RawClient, cli_connect_params, client_frame_header, client_text_frame};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let gw = TestGateway::start_with(
        "{gateway:{auth:{rateLimit:{maxAttempts:3, windowMs:60000, lockoutMs:300000, exemptLoopback:false}}}}",
    )
    .await;
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

/// OpenClaw's rule for a device-less connection with the shared secret: only the local CLI
/// (`cli`/`cli`) and the local backend helper (`gateway-client`/`backend`, the stock CLI's `status`
/// and `agent` connections) keep the scopes they declare, and only on a direct loopback socket
/// with no `Origin` and no proxy headers; anyone else gets none.
#[tokio::test]
async fn device_less_scopes_follow_openclaws_local_client_rule() {
    let gw = TestGateway::start().await;
    let own_origin = gw.url().replacen("ws://", "http://", 1).trim_end_matches('/').to_string();
    type Row<'a> = (&'a str, &'a str, &'a [(&'static str, &'a str)], &'a str);
    let rows: &[Row] = &[
        ("cli", "cli", &[], "kept"),
        ("gateway-client", "backend", &[], "kept"),
        // The gateway's own origin (a foreign one is refused at the upgrade, before any scope).
        ("gateway-client", "backend", &[("origin", own_origin.as_str())], "cleared"),
        ("gateway-client", "backend", &[("x-forwarded-for", "203.0.113.9")], "cleared"),
        ("cli", "cli", &[("x-forwarded-for", "203.0.113.9")], "cleared"),
        ("gateway-client", "cli", &[], "cleared"),
        ("cli", "backend", &[], "cleared"),
        ("gateway-client", "ui", &[], "cleared"),
        ("test", "test", &[], "cleared"),
        ("openclaw-tui", "ui", &[], "cleared"),
    ];
    let mut seen = Vec::new();
    for (id, mode, headers, _) in rows {
        let mut c = RawClient::open_with(&gw.url(), None, headers).await.unwrap();
        c.next_event("connect.challenge").await.unwrap();
        let mut params = cli_connect_params(Some(TOKEN), &["operator.admin"]);
        params["client"]["id"] = json!(id);
        params["client"]["mode"] = json!(mode);
        c.send_text(connect_req(params)).await.unwrap();
        let hello = c.next_frame().await.unwrap();
        assert_eq!(hello["ok"], true, "{id}/{mode} {headers:?}: {hello}");
        let scopes = &hello["payload"]["auth"]["scopes"];
        let status = c.request("status", json!({})).await.unwrap();
        let got = match (scopes == &json!(["operator.admin"]), status["ok"] == true) {
            (true, true) => "kept",
            (false, false) if scopes == &json!([]) => "cleared",
            _ => panic!("{id}/{mode}: scopes {scopes}, status {status}"),
        };
        seen.push(got);
    }
    let want: Vec<&str> = rows.iter().map(|r| r.3).collect();
    assert_eq!(seen, want);
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
    gw.stop().await;
}

/// Sends `request` (a whole HTTP/1.1 request head) and returns the response head and body.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    // Read until the head is complete and, for a 101, stop there (the socket stays open).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf);
            let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length: ").and_then(|n| n.trim().parse::<usize>().ok())
            });
            if head.starts_with("HTTP/1.1 101") || length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

fn upgrade_request(addr: std::net::SocketAddr, host: &str, origin: Option<&str>) -> String {
    let _ = addr;
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
    )
}

#[tokio::test]
async fn the_console_is_served_at_the_root_under_a_strict_policy_and_the_upgrade_stays() {
    let gw = TestGateway::start().await;
    let addr = gw.addr();
    let (status, body) = pincer_testkit::http::get(addr, "/").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("<script type=\"module\" src=\"/console/app.js\"></script>"), "{body}");
    let (head, _) = raw_http(addr, &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await;
    for expected in [
        "content-type: text/html; charset=utf-8",
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self';",
        &format!("connect-src 'self' ws://{addr} wss://{addr};"),
        "frame-ancestors 'none'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(head.contains(expected), "missing {expected:?} in:\n{head}");
    }
    let (status, js) = pincer_testkit::http::get(addr, "/console/gateway.js").await.unwrap();
    assert_eq!(status, 200);
    assert!(js.contains("openclaw-control-ui"), "the console's own protocol client");
    assert_eq!(pincer_testkit::http::get(addr, "/console/nope.js").await.unwrap().0, 404);
    // Revalidation is a 304 without a body.
    let etag = head.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap().trim().to_string();
    let (again, body) = raw_http(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(again.starts_with("http/1.1 304"), "{again}");
    assert_eq!(body, "");
    // An upgrade that is not a valid WebSocket handshake still hears how to connect.
    let (head, body) =
        raw_http(addr, &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n"))
            .await;
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert!(body.contains("OpenClaw Gateway protocol v4 over WebSocket"), "{body}");
    // And the CLI's upgrade on `/` works as before.
    let mut c = gw.client(&["operator.read"]).await;
    c.call("health", json!({})).await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_browser_upgrade_from_another_origin_is_refused_before_the_handshake() {
    let gw = TestGateway::start_with("{gateway: {controlUi: {allowedOrigins: ['https://pincer.example.net']}}}").await;
    let addr = gw.addr();
    let host = addr.to_string();
    let own = format!("http://{addr}");
    let rows = [
        ("no Origin (the CLI, OpenClaw's clients)", host.as_str(), None, "101"),
        ("the console's own page", host.as_str(), Some(own.as_str()), "101"),
        ("localhost through a tunnel", "localhost:9000", Some("http://localhost:9000"), "101"),
        ("a listed origin", host.as_str(), Some("https://pincer.example.net"), "101"),
        ("another site", host.as_str(), Some("https://evil.example"), "403"),
        ("another port on this machine", host.as_str(), Some("http://127.0.0.1:5173"), "403"),
        ("DNS rebinding", "rebind.example:18789", Some("http://rebind.example:18789"), "403"),
        ("an opaque origin", host.as_str(), Some("null"), "403"),
        ("a listed host over the wrong scheme", host.as_str(), Some("http://pincer.example.net"), "403"),
    ];
    for (what, host, origin, expected) in rows {
        let (head, body) = raw_http(addr, &upgrade_request(addr, host, origin)).await;
        let status = head.split_whitespace().nth(1).unwrap_or("").to_string();
        assert_eq!(status, expected, "{what}: {head}\n{body}");
        if expected == "403" {
            assert!(body.contains("gateway.controlUi.allowedOrigins"), "{what}: the refusal says what to do: {body}");
        }
    }
    let (_, metrics) = pincer_testkit::http::get(addr, "/metrics").await.unwrap();
    assert!(metrics.contains("pincer_ws_origin_refused_total 5\n"), "{metrics}");
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

/// The `connections` object of `health`.
async fn pressure(gw: &TestGateway) -> Value {
    let mut c = gw.client(&[]).await;
    c.call("health", json!({})).await.unwrap()["pincer"]["connections"].clone()
}

/// Reads from a raw socket until the server closes it; `None` if it is still open after 10 s.
async fn wait_closed(tcp: &mut tokio::net::TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all).await.ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// Polls `cond` every 5 ms for up to 10 s (waiting for the server to notice a closed socket).
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn row_oversized_frame_header_before_hello_closes_1009_before_the_payload_is_sent() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    // A text frame declaring 25 MB, and nothing of its payload: refused at the header.
    c.send_raw(&client_frame_header(true, 1, 25_000_000)).await.unwrap();
    assert_eq!(c.expect_close().await.unwrap(), (Some(1009), "preauth payload too large".into()));
    // A message over 64 KiB in small fragments is refused the same way.
    let mut c = opened(&gw).await;
    let fragment = vec![b' '; 40 * 1024];
    let mut first = client_frame_header(false, 1, fragment.len() as u64);
    first.extend(fragment.iter().enumerate().map(|(i, b)| b ^ [0x37, 0xfa, 0x21, 0x3d][i % 4]));
    c.send_raw(&first).await.unwrap();
    c.send_raw(&client_frame_header(true, 0, 40 * 1024)).await.unwrap();
    assert_eq!(c.expect_close().await.unwrap(), (Some(1009), "preauth payload too large".into()));
    gw.stop().await;
}

#[tokio::test]
async fn a_large_request_sent_right_behind_connect_is_read_under_the_full_limit() {
    let gw = TestGateway::start().await;
    let mut c = opened(&gw).await;
    let connect = connect_req(cli_connect_params(Some(TOKEN), &["operator.read"]));
    let big = json!({"type": "req", "id": "big", "method": "health", "params": {"pad": "y".repeat(1024 * 1024)}});
    // One write: both frames reach the gateway before it has answered `connect`.
    c.send_raw(&[client_text_frame(connect.as_bytes()), client_text_frame(big.to_string().as_bytes())].concat())
        .await
        .unwrap();
    let hello = c.next_frame().await.unwrap();
    assert_eq!((hello["id"].as_str(), hello["ok"].as_bool()), (Some("c1"), Some(true)), "{hello}");
    let res = c.next_frame().await.unwrap();
    assert_eq!((res["id"].as_str(), res["ok"].as_bool()), (Some("big"), Some(true)));
    gw.stop().await;
}

#[tokio::test]
async fn slowloris_request_heads_are_closed_after_the_header_timeout() {
    let gw = TestGateway::start_with("{gateway: {connections: {headerTimeoutMs: 300}}}").await;
    let mut silent = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n").await.unwrap();
    assert!(wait_closed(&mut silent).await.is_some(), "a socket that sends nothing stays open");
    assert!(wait_closed(&mut slow).await.is_some(), "a request head that never ends stays open");
    // A finished request on a kept-alive connection is answered; the idle connection then closes too.
    let mut keep = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let answered = wait_closed(&mut keep).await.expect("an idle kept-alive connection stays open");
    assert!(answered.starts_with("HTTP/1.1 200 OK"), "{answered}");
    let p = pressure(&gw).await;
    assert_eq!(p["headerTimeouts"], 3, "{p}");
    let (_, metrics) = pincer_testkit::http::get(gw.addr(), "/metrics").await.unwrap();
    assert!(metrics.contains("pincer_http_header_timeouts_total 3\n"), "{metrics}");
    gw.stop().await;
}

#[tokio::test]
async fn unauthenticated_sockets_per_address_are_capped_with_a_503() {
    let gw = TestGateway::start_with("{gateway: {connections: {maxUnauthenticatedPerAddress: 3}}}").await;
    // Authenticated connections do not count against their address.
    let mut owner = gw.client(&["operator.read"]).await;
    let _more = [gw.client(&[]).await, gw.client(&[]).await, gw.client(&[]).await];
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(gw.addr()).await.unwrap());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while owner.call("health", json!({})).await.unwrap()["pincer"]["connections"]["unauthenticated"] != 3 {
        assert!(std::time::Instant::now() < deadline, "the idle sockets were never counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = RawClient::open(&gw.url()).await.err().expect("a fourth unauthenticated socket is refused");
    let refused = format!("{err:?}");
    assert!(refused.contains("503"), "{refused}");
    // The answer is OpenClaw's, as plain text.
    let mut raw = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    raw.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let answer = wait_closed(&mut raw).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{answer}");
    assert!(answer.contains("\r\n\r\nToo many unauthenticated sockets from 127.0.0.1 (limit 3"), "{answer}");
    // Another address is not affected, and neither is the connection already open.
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut elsewhere = RawClient::open_with(&gw.url(), Some(other), &[]).await.unwrap();
    assert_eq!(elsewhere.next_frame().await.unwrap()["event"], "connect.challenge");
    assert_eq!(owner.call("health", json!({})).await.unwrap()["pincer"]["connections"]["refused"]["perAddress"], 2);
    // Once the idle sockets close, the address may connect again.
    drop(idle);
    eventually("the address's budget freed", || async { RawClient::open(&gw.url()).await.is_ok() }).await;
    gw.stop().await;
}

#[tokio::test]
async fn the_socket_cap_answers_503_and_health_shows_the_pressure() {
    let gw = TestGateway::start_with("{gateway: {connections: {max: 3}}}").await;
    let mut a = gw.client(&["operator.read"]).await;
    let b = gw.client(&[]).await;
    let _c = gw.client(&[]).await;
    let err = RawClient::open(&gw.url()).await.err().expect("a fourth socket is refused");
    assert!(format!("{err:?}").contains("503"), "{err:?}");
    let health = a.call("health", json!({})).await.unwrap();
    let p = &health["pincer"]["connections"];
    assert_eq!((p["open"].as_u64(), p["max"].as_u64()), (Some(3), Some(3)), "{p}");
    assert_eq!(p["maxSource"], "gateway.connections.max");
    assert_eq!(p["refused"], json!({"atCapacity": 1, "perAddress": 0}));
    // A freed slot is usable again, by HTTP too.
    drop(b);
    let metrics = loop {
        match pincer_testkit::http::get(gw.addr(), "/metrics").await {
            Ok((200, body)) => break body,
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    assert!(metrics.contains("pincer_connections_max 3\n"), "{metrics}");
    assert!(metrics.contains("pincer_connections_refused_total{reason=\"capacity\"} "), "{metrics}");
    gw.stop().await;
}

#[tokio::test]
async fn an_answer_above_max_payload_is_refused_with_how_to_page() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.read"]).await;
    // An answer twice the size of its request: the error for a wrong-typed `limit` quotes the
    // value, and each `"` (2 bytes escaped in the request) is 4 bytes once quoted and escaped
    // again. A 13.4 MB request, within the frame limit, gets a 26.8 MB answer, above it.
    let quotes = "\"".repeat(6_700_000);
    c.wait_up_to(Duration::from_secs(60));
    let res = c.request("cron.list", json!({"limit": quotes})).await.unwrap();
    let (code, message) = error_of(&res);
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.starts_with("result too large: the answer to cron.list is 25.6 MiB"), "{}", &message[..200]);
    assert!(message.contains("a smaller `limit` (and `offset` for the next page)"), "{message}");
    assert_eq!(res["error"]["details"]["code"], "RESULT_TOO_LARGE");
    assert_eq!(res["error"]["details"]["maxPayload"], 26_214_400);
    // The connection carries on.
    assert_eq!(c.call("cron.list", json!({"limit": 1})).await.unwrap()["jobs"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn loopback_clients_are_not_locked_out_by_failed_auth_but_browsers_are() {
    let gw = TestGateway::start().await;
    // Fifteen wrong tokens from the local CLI (the default limit is ten a minute)...
    for _ in 0..15 {
        let mut c = opened(&gw).await;
        c.send_text(connect_req(cli_connect_params(Some("wrong"), &[]))).await.unwrap();
        assert_eq!(c.next_frame().await.unwrap()["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    // ...and the owner still gets in.
    assert!(RawClient::connect(&gw.url(), cli_connect_params(Some(TOKEN), &["operator.read"])).await.is_ok());
    // A page in a browser on this machine (it sends Origin) is limited.
    let origin = format!("http://{}", gw.addr());
    let browser = || async {
        let mut c = RawClient::open_with(&gw.url(), None, &[("origin", origin.as_str())]).await.unwrap();
        assert_eq!(c.next_frame().await.unwrap()["event"], "connect.challenge");
        c.send_text(connect_req(cli_connect_params(Some("wrong"), &[]))).await.unwrap();
        c.next_frame().await.unwrap()["error"]["details"]["code"].clone()
    };
    for _ in 0..10 {
        assert_eq!(browser().await, "AUTH_TOKEN_MISMATCH");
    }
    assert_eq!(browser().await, "AUTH_RATE_LIMITED");
    gw.stop().await;
}

#[tokio::test]
async fn a_failed_auth_flood_writes_a_few_audit_rows_with_counts() {
    let gw = TestGateway::start().await;
    for _ in 0..60 {
        let mut c = opened(&gw).await;
        c.send_text(connect_req(cli_connect_params(Some("wrong"), &[]))).await.unwrap();
        assert_eq!(c.next_frame().await.unwrap()["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    let mut owner = gw.client(&["operator.admin"]).await;
    let failed = json!({"action": "gateway.auth.failed", "limit": 500});
    let rows = owner.call("audit.query", failed.clone()).await.unwrap();
    assert_eq!(rows["total"], 10, "the first ten of the minute get a row each: {rows}");
    // When the minute ends the other fifty are written as one row with their count.
    gw.clock.advance(60_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let summary = loop {
        let rows = owner.call("audit.query", failed.clone()).await.unwrap();
        if rows["total"] == 11 {
            break rows["entries"][0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no summary row: {rows}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(summary["remoteIp"], "127.0.0.1");
    assert_eq!(summary["detail"]["count"], 50, "{summary}");
    assert_eq!(summary["detail"]["reasons"], json!({"AUTH_TOKEN_MISMATCH": 50}));
    gw.stop().await;
}

#[tokio::test]
async fn sockets_at_the_cap_leave_descriptors_for_the_store_and_commands() {
    use pincer_testkit::process::GatewayProcess;
    // The real binary under `ulimit -n 400`: the cap is 400 less the 256 kept back, 144 sockets.
    let dir = tempfile::tempdir().unwrap();
    let config =
        json!({"gateway": {"connections": {"maxUnauthenticatedPerAddress": 10_000, "headerTimeoutMs": 600_000}}});
    let gw = GatewayProcess::start_limited(&crate::support::pincer_bin(), dir.path(), config, Some(400)).unwrap();
    let url = gw.url();
    let mut owner = RawClient::connect(&url, cli_connect_params(Some(&gw.token), &["operator.admin"])).await.unwrap().0;
    let job = owner
        .call(
            "cron.add",
            json!({"name": "date", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                   "payload": {"kind": "command", "argv": ["sh", "-c", "echo fine"]}, "delivery": {"mode": "none"}}),
        )
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    // 400 half-sent requests: more sockets than the process has descriptors.
    let mut slowloris = Vec::new();
    for _ in 0..400 {
        let mut s = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
        slowloris.push(s);
    }
    // Each socket is accepted and counted or refused (the kernel queues them until then).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let p = loop {
        let p = owner.call("health", json!({})).await.unwrap()["pincer"]["connections"].clone();
        if p["refused"]["atCapacity"].as_u64() >= Some(400 - 143) {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "not all sockets accepted or refused: {p}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((p["open"].as_u64(), p["max"].as_u64()), (Some(144), Some(144)), "{p}");
    assert!(p["maxSource"].as_str().unwrap().starts_with("the open-file limit (400"), "{p}");
    // A command still starts (its pipes need descriptors) and the store still writes its run.
    owner.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = crate::support::wait_runs(&mut owner, &id, 1).await;
    assert_eq!(runs[0]["status"], "ok", "{}", runs[0]);
    // Newcomers are told at once rather than left hanging.
    let started = std::time::Instant::now();
    let err = RawClient::open(&url).await.err().expect("refused at the cap");
    assert!(format!("{err:?}").contains("503"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(gw.log().contains("refusing connections: Too many open connections"), "{}", gw.log());
    drop(slowloris);
}
