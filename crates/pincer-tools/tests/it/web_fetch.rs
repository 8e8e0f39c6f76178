//! `web_fetch` against a real server on 127.0.0.1, with names resolved by a fixed table so that
//! "a hostname that resolves to loopback" is exactly that.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pincer_tools::config::{SsrfPolicyConfig, WebFetchConfig};
use pincer_tools::web::StaticResolver;
use pincer_tools::{Tool, ToolError, ToolOutput, WebFetch};
use serde_json::{Value, json};

use crate::support::*;

const ARTICLE: &str = r#"<!doctype html><html><head><title>Pincer News</title><script>alert(1)</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>Tools arrive in Pincer</h1>
<p>Pincer's agent can now <strong>act</strong>: it fetches pages, searches the web, runs allowed commands and edits files in its workspace. Every call goes through one policy, and nothing runs until the owner allows it.</p>
<p>The fetch tool reads only the readable part of a page, converts it to markdown, and never downloads more than a couple of megabytes, so a huge page cannot exhaust the gateway's memory or stall a scheduled job for long.</p>
<p>Private addresses are refused after the name is resolved, on the very address the connection uses, so a hostile DNS server cannot point a public name at the router's admin page between the check and the connect.</p>
</article><footer>© 2026</footer></body></html>"#;

#[derive(Default)]
struct Hits {
    secret: AtomicUsize,
    big_sent: AtomicUsize,
}

async fn server(hits: Arc<Hits>) -> u16 {
    let port = Arc::new(AtomicUsize::new(0));
    let p = port.clone();
    let h1 = hits.clone();
    let h2 = hits.clone();
    let redirect = move |to: String| -> Response { (StatusCode::FOUND, [(header::LOCATION, to)]).into_response() };
    let (r1, r2, r3) = (redirect, redirect, redirect);
    let (p1, p2, p3) = (p.clone(), p.clone(), p.clone());
    let router = Router::new()
        .route("/article", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], ARTICLE) }))
        .route("/json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], r#"{"a":[1,2]}"#) }))
        .route("/png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0x89u8, b'P', b'N', b'G']) }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/hang", get(|| async { std::future::pending::<&'static str>().await }))
        .route("/loop", get(move || async move { redirect("/loop".into()) }))
        .route(
            "/to-private",
            get(move || async move { r1(format!("http://127.0.0.1:{}/secret", p1.load(Ordering::SeqCst))) }),
        )
        .route(
            "/to-localhost",
            get(move || async move { r2(format!("http://localhost:{}/secret", p2.load(Ordering::SeqCst))) }),
        )
        .route(
            "/to-rebound",
            get(move || async move { r3(format!("http://evil.test:{}/secret", p3.load(Ordering::SeqCst))) }),
        )
        .route(
            "/secret",
            get(move || async move {
                h1.secret.fetch_add(1, Ordering::SeqCst);
                "router admin password"
            }),
        )
        .route(
            "/big",
            get(move || async move {
                // 50 MB, generated as it is sent; the counter shows how much was actually written.
                let h = h2.clone();
                let stream = futures_util::stream::unfold(0usize, move |sent| {
                    let h = h.clone();
                    async move {
                        if sent >= 50 * 1024 * 1024 {
                            return None;
                        }
                        let chunk = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
                        h.big_sent.fetch_add(chunk.len(), Ordering::SeqCst);
                        Some((Ok::<_, std::io::Error>(chunk), sent + 64 * 1024))
                    }
                });
                ([(header::CONTENT_TYPE, "text/plain")], axum::body::Body::from_stream(stream))
            }),
        );
    let addr = serve(router).await;
    port.store(addr.port() as usize, Ordering::SeqCst);
    addr.port()
}

fn resolver() -> StaticResolver {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    StaticResolver::default()
        .with("site.test", &[ip("127.0.0.1")])
        .with("evil.test", &[ip("127.0.0.1")])
        .with("mixed.test", &[ip("93.184.216.34"), ip("127.0.0.1")])
        .with("v6.test", &[ip("::ffff:127.0.0.1")])
}

fn tool(allowed: &[&str]) -> WebFetch {
    let config = WebFetchConfig {
        ssrf_policy: SsrfPolicyConfig {
            allowed_hostnames: allowed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    WebFetch::new(config, Arc::new(resolver())).unwrap()
}

async fn fetch(tool: &WebFetch, args: Value) -> Result<ToolOutput, ToolError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    tool.call(args, &ctx(dir.path(), &clock)).await
}

fn payload(out: &ToolOutput) -> Value {
    serde_json::from_str(&out.text).unwrap()
}

#[tokio::test]
async fn readable_content_as_markdown_or_text_marked_external() {
    let hits = Arc::new(Hits::default());
    let port = server(hits.clone()).await;
    let t = tool(&["site.test"]);
    let out = fetch(&t, json!({"url": format!("http://site.test:{port}/article")})).await.unwrap();
    assert_eq!(out.external, Some(pincer_tools::ExternalSource::WebFetch));
    let p = payload(&out);
    assert_eq!(p["status"], 200);
    assert_eq!(p["extractor"], "readability");
    assert_eq!(p["title"], "Pincer News");
    let text = p["text"].as_str().unwrap();
    assert!(text.contains("**act**"), "{text}");
    assert!(!text.contains("alert(1)") && !text.contains("About"), "scripts and navigation are dropped: {text}");
    assert!(out.for_model().starts_with("<<<EXTERNAL_UNTRUSTED_CONTENT id="));

    let out =
        fetch(&t, json!({"url": format!("http://site.test:{port}/article"), "extractMode": "text", "maxChars": 120}))
            .await
            .unwrap();
    let p = payload(&out);
    assert_eq!(p["truncated"], true);
    assert_eq!(p["length"], 120);
    assert!(!p["text"].as_str().unwrap().contains("**"));

    let out = fetch(&t, json!({"url": format!("http://site.test:{port}/json")})).await.unwrap();
    assert_eq!(payload(&out)["text"], "{\n  \"a\": [\n    1,\n    2\n  ]\n}");

    for (path, expected) in [
        ("/png", "returned `image/png`, which is not text"),
        ("/missing", "answered HTTP 404 Not Found"),
        ("/loop", "too many redirects (more than 3)"),
    ] {
        let e = fetch(&t, json!({"url": format!("http://site.test:{port}{path}")})).await.unwrap_err();
        assert!(e.to_string().contains(expected), "{path}: {e}");
    }
    for (args, expected) in [
        (json!({"url": "file:///etc/passwd"}), "only http and https"),
        (json!({"url": "not a url"}), "is not a valid URL"),
        (json!({"url": format!("http://site.test:{port}/article"), "extractMode": "html"}), "extractMode must be"),
    ] {
        let e = fetch(&t, args.clone()).await.unwrap_err();
        assert!(e.to_string().contains(expected), "{args}: {e}");
    }
}

#[tokio::test]
async fn ssrf_targets_are_refused_before_any_byte_reaches_them() {
    let hits = Arc::new(Hits::default());
    let port = server(hits.clone()).await;
    let strict = tool(&[]);
    let allow_site = tool(&["site.test"]);
    let rows: Vec<(&WebFetch, String)> = vec![
        (&strict, format!("http://127.0.0.1:{port}/secret")),
        (&strict, format!("http://2130706433:{port}/secret")),
        (&strict, format!("http://0x7f.1:{port}/secret")),
        (&strict, format!("http://[::1]:{port}/secret")),
        (&strict, format!("http://[::ffff:127.0.0.1]:{port}/secret")),
        (&strict, format!("http://localhost:{port}/secret")),
        (&strict, format!("http://evil.test:{port}/secret")),
        (&strict, format!("http://mixed.test:{port}/secret")),
        (&strict, format!("http://v6.test:{port}/secret")),
        (&allow_site, format!("http://site.test:{port}/to-private")),
        (&allow_site, format!("http://site.test:{port}/to-localhost")),
        (&allow_site, format!("http://site.test:{port}/to-rebound")),
    ];
    for (t, url) in rows {
        let e = fetch(t, json!({ "url": url })).await.unwrap_err();
        assert_eq!(e.class(), "refused", "{url}: {e}");
        assert!(e.to_string().contains("allowedHostnames"), "{url}: {e}");
    }
    assert_eq!(hits.secret.load(Ordering::SeqCst), 0, "no request reached a private target");

    // An IP literal in allowedHostnames allows that address, whatever name leads to it.
    let by_ip = tool(&["127.0.0.1"]);
    for url in [format!("http://127.0.0.1:{port}/secret"), format!("http://evil.test:{port}/secret")] {
        let out = fetch(&by_ip, json!({ "url": url })).await.unwrap();
        assert!(payload(&out)["text"].as_str().unwrap().contains("router admin password"));
    }
    assert_eq!(hits.secret.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_50_mb_page_is_cut_without_being_downloaded() {
    let hits = Arc::new(Hits::default());
    let port = server(hits.clone()).await;
    let t = tool(&["site.test"]);
    let out = fetch(&t, json!({"url": format!("http://site.test:{port}/big")})).await.unwrap();
    let p = payload(&out);
    assert_eq!(p["truncated"], true);
    assert_eq!(p["length"], 50_000);
    // Give the server a moment to notice the closed connection, then check it stopped early.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let sent = hits.big_sent.load(Ordering::SeqCst);
    assert!(sent < 16 * 1024 * 1024, "the server wrote {sent} bytes of 50 MB before the client hung up");
}

#[tokio::test]
async fn a_page_that_never_answers_times_out_on_the_injected_clock() {
    let hits = Arc::new(Hits::default());
    let port = server(hits.clone()).await;
    let t = Arc::new(tool(&["site.test"]));
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let task = tokio::spawn(async move { t.call(json!({"url": format!("http://site.test:{port}/hang")}), &ctx).await });
    let e = drive(&clock, 1_000, task).await.unwrap_err();
    assert!(e.to_string().contains("no complete answer within 30000 ms"), "{e}");
}
