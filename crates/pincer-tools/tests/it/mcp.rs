//! MCP servers over stdio (the `mcp_test_server` example, a real process) and Streamable HTTP (an
//! `rmcp` server on 127.0.0.1): tools, filters, the policy, crashes, garbage, restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use pincer_core::{Clock, FakeClock};
use pincer_tools::config::{McpConfig, McpServerConfig, McpTransport, ToolFilter};
use pincer_tools::{McpServerState, McpServers, McpStatus, Profile, ToolPolicy, Toolbox};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

use crate::mcp_server::TestServer;
use crate::support::*;

/// The stdio test server, built by `cargo test` as an example of this crate (built here if a
/// narrower build skipped it).
pub fn test_server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    let bin = target.join("examples/mcp_test_server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "pincer-tools", "--example", "mcp_test_server"])
            .status()
            .expect("run cargo to build the MCP test server");
        assert!(status.success(), "building examples/mcp_test_server failed");
    }
    bin
}

fn stdio(filter: ToolFilter) -> McpServerConfig {
    McpServerConfig {
        command: Some(test_server_binary().display().to_string()),
        tool_filter: filter,
        request_timeout_ms: 10_000,
        ..Default::default()
    }
}

async fn wait_for(
    servers: &McpServers,
    name: &str,
    what: &str,
    cond: impl Fn(&McpServerState) -> bool,
) -> McpServerState {
    let mut rx = servers.subscribe(name).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), rx.wait_for(|s| cond(s)))
        .await
        .unwrap_or_else(|_| panic!("{name} never became {what}: {:?}", servers.state(name)))
        .unwrap()
        .clone()
}

fn start(servers: BTreeMap<String, McpServerConfig>, clock: &FakeClock) -> McpServers {
    McpServers::start(&McpConfig { servers }, clock.shared())
}

#[tokio::test]
async fn stdio_server_tools_are_namespaced_filtered_and_external() {
    let clock = clock();
    let filter = ToolFilter { include: vec![], exclude: vec!["secret.*".into(), "garbage".into()] };
    let servers = start(BTreeMap::from([("time srv".to_string(), stdio(filter))]), &clock);
    let state = wait_for(&servers, "time srv", "ready", |s| s.status == McpStatus::Ready).await;
    assert_eq!(state.tools, ["time-srv__echo", "time-srv__pid", "time-srv__fail", "time-srv__slow", "time-srv__crash"]);
    assert_eq!(state.transport, "stdio");

    let toolbox = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone());
    let set = toolbox.for_turn(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), &clock);
    let out = set.call("time-srv__echo", r#"{"text":"hi"}"#, &ctx).await.unwrap();
    assert_eq!(out.text, "echo: hi");
    assert_eq!(out.external, Some(pincer_tools::ExternalSource::Mcp));
    let e = set.call("time-srv__fail", "{}", &ctx).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("reported an error") && text.contains("[[MARKER_SANITIZED]]"), "{text}");
    assert_eq!(text.matches("<<<END_EXTERNAL_UNTRUSTED_CONTENT").count(), 1, "{text}");

    // The same policy applies: a profile without MCP, or a deny, hides them.
    let coding = Toolbox::new(ToolPolicy::new(Profile::Coding, &[], &[], &[])).with_mcp(servers.clone());
    assert!(coding.for_turn(&[]).names().iter().all(|n| !n.contains("__")));
    let deny_one =
        Toolbox::new(ToolPolicy::new(Profile::Full, &[], &[], &["time-srv__pid".into()])).with_mcp(servers.clone());
    assert!(!deny_one.for_turn(&[]).names().contains(&"time-srv__pid"));
    let probe = servers.probe("time srv", &clock.shared()).await.unwrap();
    assert_eq!(probe.len(), 5);
    assert!(servers.probe("nope", &clock.shared()).await.unwrap_err().contains("configured: time srv"));
    servers.shutdown();
}

#[tokio::test]
async fn a_server_that_dies_mid_call_is_a_tool_error_and_comes_back_after_backoff() {
    let clock = clock();
    let servers = start(BTreeMap::from([("srv".to_string(), stdio(ToolFilter::default()))]), &clock);
    let first = wait_for(&servers, "srv", "ready", |s| s.status == McpStatus::Ready).await;
    let set = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone()).for_turn(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), &clock);
    let pid_before = set.call("srv__pid", "{}", &ctx).await.unwrap().text;
    assert_eq!(Some(pid_before.parse::<u32>().unwrap()), first.pid);

    let e = set.call("srv__crash", "{}", &ctx).await.unwrap_err();
    assert!(e.to_string().contains("MCP server `srv`"), "{e}");
    let down = wait_for(&servers, "srv", "in backoff", |s| s.status == McpStatus::Backoff).await;
    assert_eq!(down.next_attempt_ms, Some(clock.now_ms() + 1_000));
    assert!(down.last_error.as_deref().unwrap().contains("exited"), "{down:?}");
    // While it is down, its tools answer with the state, not a hang.
    let e = set.call("srv__pid", "{}", &ctx).await.unwrap_err();
    assert!(e.to_string().contains("is not connected"), "{e}");
    // Backoff runs on the injected clock: nothing happens until it moves.
    clock.advance(999);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(servers.state("srv").unwrap().status, McpStatus::Backoff);
    clock.advance(1);
    let back = wait_for(&servers, "srv", "ready again", |s| s.status == McpStatus::Ready).await;
    assert_eq!(back.restarts, 1);
    assert_ne!(back.pid, first.pid);
    let set = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone()).for_turn(&[]);
    assert_eq!(set.call("srv__pid", "{}", &ctx).await.unwrap().text, back.pid.unwrap().to_string());
    servers.shutdown();
    until("the server process to be killed on shutdown", || process_gone(back.pid.unwrap() as i32)).await;
}

#[tokio::test]
async fn garbage_on_stdout_or_no_answer_is_a_tool_error() {
    let clock = clock();
    let servers = start(BTreeMap::from([("srv".to_string(), stdio(ToolFilter::default()))]), &clock);
    wait_for(&servers, "srv", "ready", |s| s.status == McpStatus::Ready).await;
    let set = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone()).for_turn(&[]);
    let dir = tempfile::tempdir().unwrap();
    for tool in ["srv__slow", "srv__garbage"] {
        let ctx = ctx(dir.path(), &clock);
        let set = set.clone();
        let task = tokio::spawn(async move { set.call(tool, "{}", &ctx).await });
        let e = drive(&clock, 1_000, task).await.unwrap_err();
        // rmcp skips lines that are not JSON-RPC, so garbage ends like silence: at requestTimeoutMs.
        let name = tool.trim_start_matches("srv__");
        assert_eq!(
            e.to_string(),
            format!("MCP server `srv` did not answer `{name}` within 10000 ms (mcp.servers.srv.requestTimeoutMs)")
        );
    }
    // The connection survives both, and the next call works.
    let out = set.call("srv__echo", r#"{"text":"still here"}"#, &ctx(dir.path(), &clock)).await.unwrap();
    assert_eq!(out.text, "echo: still here");
    servers.shutdown();
}

#[tokio::test]
async fn streamable_http_server_with_headers() {
    let service: StreamableHttpService<TestServer, LocalSessionManager> = StreamableHttpService::new(
        || Ok(TestServer { own_process: false }),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let seen_auth = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = seen_auth.clone();
    let router = axum::Router::new().nest_service("/mcp", service).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                seen.lock().unwrap().push(auth);
                next.run(req).await
            }
        },
    ));
    let addr = serve(router).await;
    let garbage = serve(axum::Router::new().fallback(|| async { "this is not MCP" })).await;
    let clock = clock();
    let http = |url: String| McpServerConfig {
        url: Some(url),
        transport: McpTransport::StreamableHttp,
        headers: BTreeMap::from([("Authorization".to_string(), "Bearer t0k3n".to_string())]),
        ..Default::default()
    };
    let servers = start(
        BTreeMap::from([
            ("docs".to_string(), http(format!("http://{addr}/mcp"))),
            ("junk".to_string(), http(format!("http://{garbage}/mcp"))),
            ("off".to_string(), McpServerConfig { enabled: false, ..http(format!("http://{addr}/mcp")) }),
            ("both".to_string(), McpServerConfig { command: Some("x".into()), ..http(format!("http://{addr}/mcp")) }),
        ]),
        &clock,
    );
    let docs = wait_for(&servers, "docs", "ready", |s| s.status == McpStatus::Ready).await;
    assert_eq!(docs.transport, "streamable-http");
    let set = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone()).for_turn(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = set.call("docs__echo", r#"{"text":"over http"}"#, &ctx(dir.path(), &clock)).await.unwrap();
    assert_eq!(out.text, "echo: over http");
    assert!(seen_auth.lock().unwrap().iter().all(|a| a == "Bearer t0k3n"));

    let junk = wait_for(&servers, "junk", "in backoff", |s| s.status == McpStatus::Backoff).await;
    assert!(junk.last_error.as_deref().unwrap().contains("did not complete the MCP handshake"), "{junk:?}");
    assert_eq!(servers.state("off").unwrap().status, McpStatus::Disabled);
    let both = wait_for(&servers, "both", "failed", |s| s.status == McpStatus::Failed).await;
    assert!(both.last_error.unwrap().contains("not both"));
    servers.shutdown();
}

/// A legacy HTTP+SSE server (protocol 2024-11-05) in front of the same `rmcp` handler: `GET /sse`
/// opens the stream and names `/messages?sessionId=…`; posted messages are answered on the stream.
async fn legacy_sse_server(seen_auth: Arc<std::sync::Mutex<Vec<String>>>) -> std::net::SocketAddr {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use futures_util::StreamExt;
    use rmcp::ServiceExt;
    use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
    use std::collections::HashMap;
    use tokio::sync::mpsc;

    type Sessions = Arc<std::sync::Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>>;
    let sessions: Sessions = Arc::default();
    let router = axum::Router::new()
        .route(
            "/sse",
            axum::routing::get(
                |State((sessions, _)): State<(Sessions, Arc<std::sync::Mutex<Vec<String>>>)>| async move {
                    let id = format!("{:x}", rand_id());
                    let (in_tx, in_rx) = mpsc::channel::<ClientJsonRpcMessage>(16);
                    let (out_tx, out_rx) = mpsc::channel::<ServerJsonRpcMessage>(16);
                    sessions.lock().unwrap().insert(id.clone(), in_tx);
                    let inbound =
                        futures_util::stream::unfold(in_rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
                    let outbound = futures_util::sink::unfold(out_tx, |tx, item: ServerJsonRpcMessage| async move {
                        tx.send(item).await.map_err(|_| std::io::Error::other("stream closed"))?;
                        Ok::<_, std::io::Error>(tx)
                    });
                    tokio::spawn(async move {
                        let server = TestServer { own_process: false };
                        if let Ok(running) = server.serve((Box::pin(outbound), Box::pin(inbound))).await {
                            let _ = running.waiting().await;
                        }
                    });
                    let first = futures_util::stream::once(async move {
                        Ok::<_, std::io::Error>(bytes::Bytes::from(format!(
                            "event: endpoint\ndata: /messages?sessionId={id}\n\n"
                        )))
                    });
                    let rest = futures_util::stream::unfold(out_rx, |mut rx| async move {
                        let msg = rx.recv().await?;
                        let event = format!("event: message\ndata: {}\n\n", serde_json::to_string(&msg).unwrap());
                        Some((Ok(bytes::Bytes::from(event)), rx))
                    });
                    ([(header::CONTENT_TYPE, "text/event-stream")], axum::body::Body::from_stream(first.chain(rest)))
                },
            ),
        )
        .route(
            "/messages",
            axum::routing::post(
                |State((sessions, seen)): State<(Sessions, Arc<std::sync::Mutex<Vec<String>>>)>,
                 headers: HeaderMap,
                 Query(q): Query<HashMap<String, String>>,
                 body: String| async move {
                    seen.lock()
                        .unwrap()
                        .push(headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").into());
                    let Ok(msg) = serde_json::from_str::<ClientJsonRpcMessage>(&body) else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let tx = q.get("sessionId").and_then(|id| sessions.lock().unwrap().get(id).cloned());
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(msg).await;
                            StatusCode::ACCEPTED
                        }
                        None => StatusCode::NOT_FOUND,
                    }
                },
            ),
        )
        .with_state((sessions, seen_auth));
    serve(router).await
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn legacy_sse_server_with_headers() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let addr = legacy_sse_server(seen.clone()).await;
    let clock = clock();
    let config = McpServerConfig {
        url: Some(format!("http://{addr}/sse")),
        transport: McpTransport::Sse,
        headers: BTreeMap::from([("Authorization".to_string(), "Bearer legacy".to_string())]),
        ..Default::default()
    };
    let servers = start(BTreeMap::from([("old".to_string(), config)]), &clock);
    let state = wait_for(&servers, "old", "ready", |s| s.status == McpStatus::Ready).await;
    assert_eq!(state.transport, "sse");
    assert!(state.tools.contains(&"old__echo".to_string()), "{state:?}");
    let set = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone()).for_turn(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = set.call("old__echo", r#"{"text":"over sse"}"#, &ctx(dir.path(), &clock)).await.unwrap();
    assert_eq!(out.text, "echo: over sse");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|a| a == "Bearer legacy"), "{seen:?}");
    servers.shutdown();
}

#[tokio::test]
async fn a_server_that_never_completes_the_handshake_times_out_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let clock = clock();
    let config = McpServerConfig {
        command: Some("/bin/sh".into()),
        args: vec!["-c".into(), format!("sleep 600 & echo $! > {}; wait", pidfile.display())],
        connection_timeout_ms: 5_000,
        ..Default::default()
    };
    let servers = start(BTreeMap::from([("mute".to_string(), config)]), &clock);
    until("the server to start", || std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))).await;
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    clock.advance(5_000);
    let state = wait_for(&servers, "mute", "in backoff", |s| s.status == McpStatus::Backoff).await;
    assert!(state.last_error.as_deref().unwrap().contains("no MCP handshake within 5000 ms"), "{state:?}");
    until("the silent server to be killed", || process_gone(pid)).await;
    servers.shutdown();
}

/// A hand-written Streamable HTTP server that completes the handshake and lists a tool, then
/// answers the call with something that is not JSON-RPC.
#[tokio::test]
async fn an_http_server_answering_a_call_with_garbage_is_a_tool_error() {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use serde_json::{Value, json};
    let router = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|body: String| async move {
            let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let id = req.get("id").cloned().unwrap_or(Value::Null);
            let reply = |result: Value| {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
                )
                    .into_response()
            };
            match req.get("method").and_then(Value::as_str) {
                Some("initialize") => reply(json!({
                    "protocolVersion": req["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "junk", "version": "1"}
                })),
                Some("tools/list") => {
                    reply(json!({"tools": [{"name": "lookup", "description": "d", "inputSchema": {"type": "object"}}]}))
                }
                Some("tools/call") => {
                    ([(header::CONTENT_TYPE, "application/json")], "{\"jsonrpc\": garbage").into_response()
                }
                _ => StatusCode::ACCEPTED.into_response(),
            }
        })
        .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
        .delete(|| async { StatusCode::OK }),
    );
    let addr = serve(router).await;
    let clock = clock();
    let config =
        McpServerConfig { url: Some(format!("http://{addr}/mcp")), request_timeout_ms: 10_000, ..Default::default() };
    let servers = start(BTreeMap::from([("junk".to_string(), config)]), &clock);
    let state = wait_for(&servers, "junk", "ready", |s| s.status == McpStatus::Ready).await;
    assert_eq!(state.tools, ["junk__lookup"]);
    let set = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone()).for_turn(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), &clock);
    let task = tokio::spawn(async move { set.call("junk__lookup", "{}", &ctx).await });
    let e = drive(&clock, 1_000, task).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "MCP server `junk` failed during `lookup`: unexpected server response: could not parse JSON response as ServerJsonRpcMessage: expected value at line 1 column 13: {\"jsonrpc\": garbage; if the server crashed, it is restarted"
    );
    servers.shutdown();
}
