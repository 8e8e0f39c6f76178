//! `web_search` against fake Brave and SearXNG servers on 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use expect_test::expect;
use pincer_tools::config::{SearchProvider, WebSearchConfig};
use pincer_tools::{Tool, WebSearch};
use serde_json::json;

use crate::support::*;

type Seen = Arc<Mutex<Vec<String>>>;

async fn brave(seen: Seen) -> String {
    let router = Router::new().route(
        "/res/v1/web/search",
        get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
            let seen = seen.clone();
            async move {
                let token = headers.get("x-subscription-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let mut keys: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
                keys.sort();
                seen.lock().unwrap().push(format!("token={token} {}", keys.join(" ")));
                if token != "brave-key" {
                    return (StatusCode::UNAUTHORIZED, "bad token").into_response();
                }
                if q.get("q").map(String::as_str) == Some("garbage") {
                    return "<html>not json</html>".into_response();
                }
                axum::Json(json!({"web": {"results": [
                    {"title": "Rust", "url": "https://www.rust-lang.org/", "description": "A language <b>empowering</b> everyone", "age": "2 days ago"},
                    {"title": "Crates", "url": "https://crates.io/", "description": "The registry"},
                    {"title": "Docs", "url": "https://docs.rs/", "description": "Docs"}
                ]}}))
                .into_response()
            }
        }),
    );
    format!("http://{}", serve(router).await)
}

async fn searxng() -> String {
    let router = Router::new().route(
        "/search",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            assert_eq!(q.get("format").map(String::as_str), Some("json"));
            axum::Json(json!({"query": q.get("q"), "results": [
                {"title": "Pincer", "url": "https://example.org/pincer", "content": "Self-hosted gateway", "engine": "ddg", "publishedDate": "2026-01-01"}
            ]}))
        }),
    );
    format!("http://{}", serve(router).await)
}

#[tokio::test]
async fn brave_results_in_openclaws_shape() {
    let seen: Seen = Arc::default();
    let base = brave(seen.clone()).await;
    let config = |key: &str| WebSearchConfig {
        provider: SearchProvider::Brave,
        api_key: Some(key.into()),
        base_url: Some(base.clone()),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let tool = WebSearch::new(config("brave-key")).unwrap();
    let out =
        tool.call(json!({"query": "rust lang", "count": 2, "country": "DE", "freshness": "pw"}), &ctx).await.unwrap();
    assert_eq!(out.external, Some(pincer_tools::ExternalSource::WebSearch));
    expect![[r#"
        {
          "query": "rust lang",
          "provider": "brave",
          "count": 2,
          "results": [
            {
              "title": "Rust",
              "url": "https://www.rust-lang.org/",
              "description": "A language <b>empowering</b> everyone",
              "published": "2 days ago",
              "siteName": "rust-lang.org"
            },
            {
              "title": "Crates",
              "url": "https://crates.io/",
              "description": "The registry",
              "published": null,
              "siteName": "crates.io"
            }
          ]
        }"#]]
    .assert_eq(&out.text);
    assert_eq!(seen.lock().unwrap()[0], "token=brave-key count=2 country=DE freshness=pw q=rust lang");

    let e = tool.call(json!({"query": "garbage"}), &ctx).await.unwrap_err();
    assert!(e.to_string().contains("not JSON"), "{e}");
    let e = WebSearch::new(config("wrong")).unwrap().call(json!({"query": "x"}), &ctx).await.unwrap_err();
    assert!(e.to_string().contains("check tools.web.search.apiKey"), "{e}");
    let e = tool.call(json!({"query": "x", "freshness": "yesterday"}), &ctx).await.unwrap_err();
    assert_eq!(e.class(), "invalid_arguments");
    let missing_key = WebSearchConfig { api_key: None, ..config("") };
    assert!(WebSearch::new(missing_key).err().unwrap().contains("BRAVE_API_KEY"));
}

#[tokio::test]
async fn searxng_results_and_unreachable_provider() {
    let base = searxng().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let tool = WebSearch::new(WebSearchConfig {
        provider: SearchProvider::Searxng,
        base_url: Some(base),
        ..Default::default()
    })
    .unwrap();
    let out = tool.call(json!({"query": "pincer"}), &ctx).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&out.text).unwrap();
    assert_eq!(v["provider"], "searxng");
    assert_eq!(v["results"][0]["description"], "Self-hosted gateway");
    assert_eq!(v["results"][0]["siteName"], "example.org");

    let closed = WebSearch::new(WebSearchConfig {
        provider: SearchProvider::Searxng,
        base_url: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    })
    .unwrap();
    let e = closed.call(json!({"query": "pincer"}), &ctx).await.unwrap_err();
    assert!(e.to_string().contains("is unreachable"), "{e}");
    assert!(WebSearch::new(WebSearchConfig { provider: SearchProvider::Searxng, ..Default::default() }).is_err());
}
