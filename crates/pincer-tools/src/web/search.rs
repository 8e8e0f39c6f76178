//! `web_search` (OpenClaw's parameters `query`, `count`, `country`, `search_lang`, `freshness`)
//! through Brave Search or a SearXNG instance; results are returned in OpenClaw's shape
//! (`query`, `provider`, `count`, `results[{title, url, description, published, siteName}]`) and
//! marked as external content.
//!
//! | provider | request                                              | auth                    |
//! |----------|------------------------------------------------------|-------------------------|
//! | brave    | `GET {baseUrl}/res/v1/web/search?q=&count=`          | `X-Subscription-Token`  |
//! | searxng  | `GET {baseUrl}/search?q=&format=json`                | none                    |
//!
//! The provider's URL is the owner's configuration, not the model's input, so it is not subject to
//! the SSRF policy (a SearXNG instance on the same machine is the common case).

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{SearchProvider, WebSearchConfig};
use crate::tool::{
    BoxFuture, ExternalSource, Tool, ToolContext, ToolError, ToolOutput, ToolSpec, opt_str_arg, opt_u64_arg, str_arg,
};

const BRAVE_BASE_URL: &str = "https://api.search.brave.com";
const MAX_COUNT: u64 = 10;

/// The `web_search` tool.
pub struct WebSearch {
    spec: ToolSpec,
    config: WebSearchConfig,
    base_url: String,
    client: reqwest::Client,
}

impl WebSearch {
    /// Checks the provider's settings (Brave needs `apiKey`, SearXNG needs `baseUrl`).
    pub fn new(config: WebSearchConfig) -> Result<WebSearch, String> {
        let base_url = match (config.provider, &config.base_url) {
            (_, Some(url)) => url.trim_end_matches('/').to_string(),
            (SearchProvider::Brave, None) => BRAVE_BASE_URL.to_string(),
            (SearchProvider::Searxng, None) => {
                return Err(
                    "tools.web.search.baseUrl: set the URL of your SearXNG instance (e.g. http://127.0.0.1:8888)"
                        .into(),
                );
            }
        };
        if config.provider == SearchProvider::Brave && config.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            return Err("tools.web.search.apiKey: Brave Search needs an API key (e.g. \"${BRAVE_API_KEY}\"), or set provider to \"searxng\"".into());
        }
        pincer_core::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.timeout_seconds.clamp(1, 30)))
            .build()
            .map_err(|e| format!("tools.web.search: cannot build the HTTP client: {e}"))?;
        let spec = ToolSpec {
            name: "web_search".into(),
            description: "Search the web. Returns titles, URLs, and snippets for fast research.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "description": "Search query string." },
                    "count": { "type": "number", "description": "Number of results to return (1-10).", "minimum": 1, "maximum": MAX_COUNT },
                    "country": { "type": "string", "description": "2-letter country code for region-specific results (e.g., 'DE', 'US')." },
                    "search_lang": { "type": "string", "description": "ISO language code for search results (e.g., 'de', 'en')." },
                    "freshness": { "type": "string", "description": "Filter by discovery time: 'pd' (day), 'pw' (week), 'pm' (month), 'py' (year)." }
                },
                "required": ["query"]
            }),
        };
        Ok(WebSearch { spec, config, base_url, client })
    }

    async fn search(&self, args: &Value) -> Result<ToolOutput, ToolError> {
        let query = str_arg(args, "web_search", "query")?.trim();
        if query.is_empty() {
            return Err(ToolError::InvalidArguments("web_search: `query` must not be empty".into()));
        }
        let count =
            opt_u64_arg(args, "web_search", "count")?.unwrap_or(self.config.max_results as u64).clamp(1, MAX_COUNT);
        let country = opt_str_arg(args, "web_search", "country")?;
        let lang = opt_str_arg(args, "web_search", "search_lang")?;
        let freshness = opt_str_arg(args, "web_search", "freshness")?;
        if let Some(f) = freshness
            && !matches!(f, "pd" | "pw" | "pm" | "py")
        {
            return Err(ToolError::InvalidArguments(format!(
                "web_search: freshness must be one of pd, pw, pm, py, not {f:?}"
            )));
        }
        let (provider, results) = match self.config.provider {
            SearchProvider::Brave => ("brave", self.brave(query, count, country, lang, freshness).await?),
            SearchProvider::Searxng => ("searxng", self.searxng(query, count, lang, freshness).await?),
        };
        let payload = json!({
            "query": query,
            "provider": provider,
            "count": results.len(),
            "results": results,
        });
        Ok(ToolOutput::external(serde_json::to_string_pretty(&payload).unwrap_or_default(), ExternalSource::WebSearch))
    }

    async fn brave(
        &self,
        query: &str,
        count: u64,
        country: Option<&str>,
        lang: Option<&str>,
        freshness: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        let mut params: Vec<(&str, String)> = vec![("q", query.into()), ("count", count.to_string())];
        params.extend(country.map(|c| ("country", c.to_string())));
        params.extend(lang.map(|l| ("search_lang", l.to_string())));
        params.extend(freshness.map(|f| ("freshness", f.to_string())));
        let request = self
            .client
            .get(self.url("/res/v1/web/search", &params)?)
            .header("Accept", "application/json")
            .header("X-Subscription-Token", self.config.api_key.as_deref().unwrap_or_default());
        let body = self.send("Brave Search", request).await?;
        let items = body.pointer("/web/results").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(items
            .iter()
            .take(count as usize)
            .map(|r| {
                let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
                json!({
                    "title": r.get("title").and_then(Value::as_str).unwrap_or_default(),
                    "url": url,
                    "description": r.get("description").and_then(Value::as_str).unwrap_or_default(),
                    "published": r.get("age").and_then(Value::as_str),
                    "siteName": site_name(url),
                })
            })
            .collect())
    }

    async fn searxng(
        &self,
        query: &str,
        count: u64,
        lang: Option<&str>,
        freshness: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        let mut params: Vec<(&str, String)> = vec![("q", query.into()), ("format", "json".into())];
        params.extend(lang.map(|l| ("language", l.to_string())));
        let range = freshness.map(|f| match f {
            "pd" => "day",
            "pw" => "week",
            "pm" => "month",
            _ => "year",
        });
        params.extend(range.map(|r| ("time_range", r.to_string())));
        let request = self.client.get(self.url("/search", &params)?).header("Accept", "application/json");
        let body = self.send("SearXNG", request).await?;
        let items = body.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(items
            .iter()
            .take(count as usize)
            .map(|r| {
                let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
                json!({
                    "title": r.get("title").and_then(Value::as_str).unwrap_or_default(),
                    "url": url,
                    "description": r.get("content").and_then(Value::as_str).unwrap_or_default(),
                    "published": r.get("publishedDate").and_then(Value::as_str),
                    "siteName": site_name(url),
                })
            })
            .collect())
    }

    fn url(&self, path: &str, params: &[(&str, String)]) -> Result<reqwest::Url, ToolError> {
        reqwest::Url::parse_with_params(&format!("{}{path}", self.base_url), params).map_err(|e| {
            ToolError::Failed(format!(
                "web_search: tools.web.search.baseUrl `{}` is not a valid URL ({e})",
                self.base_url
            ))
        })
    }

    async fn send(&self, who: &str, request: reqwest::RequestBuilder) -> Result<Value, ToolError> {
        let response = request
            .send()
            .await
            .map_err(|e| ToolError::Failed(format!("web_search: {who} at {} is unreachable: {e}", self.base_url)))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ToolError::Failed(format!(
                "web_search: {who} refused the request (HTTP {status}); check tools.web.search.apiKey"
            )));
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ToolError::Failed(format!(
                "web_search: {who} rate-limited the request (HTTP 429); try again later"
            )));
        }
        if !status.is_success() {
            return Err(ToolError::Failed(format!("web_search: {who} answered HTTP {status}")));
        }
        // Search answers are small; 2 MB is far above any real one.
        let bytes = response.bytes().await.map_err(|e| ToolError::Failed(format!("web_search: {who}: {e}")))?;
        if bytes.len() > 2_000_000 {
            return Err(ToolError::Failed(format!(
                "web_search: {who} sent an oversized answer ({} bytes)",
                bytes.len()
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ToolError::Failed(format!("web_search: {who} answered with something that is not JSON ({e})")))
    }
}

fn site_name(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(|h| h.trim_start_matches("www.").to_string()))
}

impl Tool for WebSearch {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let limit_ms = (self.config.timeout_seconds as i64 * 1_000).min(ctx.remaining_ms());
            let deadline = ctx.clock.now_ms().saturating_add(limit_ms);
            tokio::select! {
                r = self.search(&args) => r,
                _ = ctx.clock.sleep_until(deadline) => Err(ToolError::Failed(format!(
                    "web_search: no answer within {limit_ms} ms (tools.web.search.timeoutSeconds)"
                ))),
                _ = ctx.cancel.cancelled() => Err(ToolError::Cancelled("web_search".into())),
            }
        })
    }
}
