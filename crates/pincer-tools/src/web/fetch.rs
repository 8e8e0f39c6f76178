//! `web_fetch` (OpenClaw's parameters `url`, `extractMode`, `maxChars`): fetches a page under the
//! SSRF policy and returns its readable content as markdown or text.
//!
//! Extraction uses `dom_smoothie` (a port of Mozilla's Readability, the library OpenClaw uses, with
//! its own markdown and text output on `dom_query`/html5ever); pages Readability cannot score are
//! converted whole. The body is streamed and cut at `maxResponseBytes` — a 50 MB page is never
//! downloaded — and the whole fetch (connect, redirects, body) runs against one deadline on the
//! injected clock.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;
use serde_json::{Value, json};

use super::ssrf::{GuardedResolver, HostResolver, SsrfBlocked, SsrfPolicy};
use crate::config::WebFetchConfig;
use crate::tool::{
    BoxFuture, ExternalSource, Tool, ToolContext, ToolError, ToolOutput, ToolSpec, opt_str_arg, opt_u64_arg, str_arg,
};

/// The `web_fetch` tool.
pub struct WebFetch {
    spec: ToolSpec,
    config: WebFetchConfig,
    policy: Arc<SsrfPolicy>,
    client: reqwest::Client,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ExtractMode {
    Markdown,
    Text,
}

impl WebFetch {
    /// Builds the tool with its own HTTP client whose DNS hook enforces the SSRF policy. `resolver`
    /// is [`super::SystemResolver`] in production.
    pub fn new(config: WebFetchConfig, resolver: Arc<dyn HostResolver>) -> Result<WebFetch, String> {
        let policy = Arc::new(SsrfPolicy::new(&config.ssrf_policy));
        pincer_core::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, out of reach of the DNS hook.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone(), inner: resolver }))
            .connect_timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .build()
            .map_err(|e| format!("tools.web.fetch: cannot build the HTTP client: {e}"))?;
        let spec = ToolSpec {
            name: "web_fetch".into(),
            description: "Fetch and extract readable content from a URL (HTML → markdown/text). Use for lightweight page access without browser automation.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "url": { "type": "string", "description": "HTTP or HTTPS URL to fetch." },
                    "extractMode": { "type": "string", "enum": ["markdown", "text"], "description": "Extraction mode (\"markdown\" or \"text\").", "default": "markdown" },
                    "maxChars": { "type": "number", "description": "Maximum characters to return (truncates when exceeded).", "minimum": 100 }
                },
                "required": ["url"]
            }),
        };
        Ok(WebFetch { spec, config, policy, client })
    }

    async fn fetch(&self, args: &Value) -> Result<ToolOutput, ToolError> {
        let raw_url = str_arg(args, "web_fetch", "url")?;
        let mode = match opt_str_arg(args, "web_fetch", "extractMode")? {
            None | Some("markdown") => ExtractMode::Markdown,
            Some("text") => ExtractMode::Text,
            Some(other) => {
                return Err(ToolError::InvalidArguments(format!(
                    "web_fetch: extractMode must be \"markdown\" or \"text\", not {other:?}"
                )));
            }
        };
        let max_chars = opt_u64_arg(args, "web_fetch", "maxChars")?
            .map(|n| n as usize)
            .unwrap_or(self.config.max_chars)
            .clamp(100, self.config.max_chars_cap.max(100));
        let mut url = Url::parse(raw_url.trim())
            .map_err(|e| ToolError::InvalidArguments(format!("web_fetch: `{raw_url}` is not a valid URL ({e})")))?;

        let mut redirects = 0;
        let response = loop {
            self.check_url(&url)?;
            let sent = self
                .client
                .get(url.clone())
                .header(reqwest::header::USER_AGENT, &self.config.user_agent)
                .header(reqwest::header::ACCEPT, "text/markdown, text/html;q=0.9, */*;q=0.1")
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => return Err(request_error(&url, &e)),
            };
            if response.status().is_redirection() {
                let Some(location) = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok())
                else {
                    break response;
                };
                redirects += 1;
                if redirects > self.config.max_redirects {
                    return Err(ToolError::Failed(format!(
                        "web_fetch: too many redirects (more than {}) starting at {raw_url}",
                        self.config.max_redirects
                    )));
                }
                url = url.join(location).map_err(|e| {
                    ToolError::Failed(format!("web_fetch: {url} redirected to an invalid location `{location}` ({e})"))
                })?;
                continue;
            }
            break response;
        };

        let status = response.status();
        if !status.is_success() {
            return Err(ToolError::Failed(format!("web_fetch: {url} answered HTTP {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (body, body_truncated) = read_capped(response, self.config.max_response_bytes).await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let ct = content_type.to_ascii_lowercase();
        let looks_html = ct.contains("html") || (ct.is_empty() && text.trim_start().starts_with('<'));
        let (title, extractor, content) = if looks_html {
            extract_html(&text, url.as_str(), mode, self.config.readability)
        } else if ct.contains("json") {
            let pretty = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text);
            (None, "json", pretty)
        } else if ct.is_empty() || ct.starts_with("text/") || ct.contains("xml") {
            (None, "raw", text)
        } else {
            return Err(ToolError::Failed(format!(
                "web_fetch: {url} returned `{content_type}`, which is not text; only HTML, text and JSON can be read"
            )));
        };
        let (content, cut) = truncate_chars(&content, max_chars);
        let payload = json!({
            "url": raw_url,
            "finalUrl": url.as_str(),
            "status": status.as_u16(),
            "contentType": content_type,
            "title": title,
            "extractMode": if mode == ExtractMode::Markdown { "markdown" } else { "text" },
            "extractor": extractor,
            "truncated": cut || body_truncated,
            "length": content.chars().count(),
            "text": content,
        });
        let text = serde_json::to_string_pretty(&payload).unwrap_or_default();
        Ok(ToolOutput::external(text, ExternalSource::WebFetch))
    }

    fn check_url(&self, url: &Url) -> Result<(), ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::Refused(format!(
                "web_fetch: only http and https URLs can be fetched, not `{}:`",
                url.scheme()
            )));
        }
        // The URL parser has already turned legacy IPv4 forms (`0x7f.1`, `2130706433`) into dotted
        // quads, so the check sees the address that will be connected to.
        let Some(host) = url.host_str() else {
            return Err(ToolError::InvalidArguments(format!("web_fetch: `{url}` has no host")));
        };
        self.policy.check_host(host).map_err(|e| ToolError::Refused(e.0))
    }
}

impl Tool for WebFetch {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let limit_ms = (self.config.timeout_seconds as i64 * 1_000).min(ctx.remaining_ms());
            let deadline = ctx.clock.now_ms().saturating_add(limit_ms);
            tokio::select! {
                r = self.fetch(&args) => r,
                _ = ctx.clock.sleep_until(deadline) => Err(ToolError::Failed(format!(
                    "web_fetch: no complete answer within {limit_ms} ms (tools.web.fetch.timeoutSeconds); the site may be slow"
                ))),
                _ = ctx.cancel.cancelled() => Err(ToolError::Cancelled("web_fetch".into())),
            }
        })
    }
}

/// Finds an SSRF refusal from the DNS hook in the error chain; otherwise a plain failure.
fn request_error(url: &Url, e: &reqwest::Error) -> ToolError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(blocked) = err.downcast_ref::<SsrfBlocked>() {
            return ToolError::Refused(blocked.0.clone());
        }
        source = err.source();
    }
    let mut detail = e.to_string();
    let mut inner = std::error::Error::source(e);
    while let Some(err) = inner {
        detail = format!("{detail}: {err}");
        inner = err.source();
    }
    ToolError::Failed(format!("web_fetch: cannot fetch {url}: {detail}"))
}

/// Reads at most `cap` bytes of the body; the connection is dropped after that.
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<(Vec<u8>, bool), ToolError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ToolError::Failed(format!("web_fetch: the response broke off: {e}")))?;
        let room = cap - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

fn truncate_chars(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((idx, _)) => (text[..idx].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// Readable content of an HTML page: Readability's article, or the whole body when Readability
/// finds none. Returns (title, extractor, content).
fn extract_html(html: &str, url: &str, mode: ExtractMode, readability: bool) -> (Option<String>, &'static str, String) {
    if readability {
        let cfg = dom_smoothie::Config {
            text_mode: match mode {
                ExtractMode::Markdown => dom_smoothie::TextMode::Markdown,
                ExtractMode::Text => dom_smoothie::TextMode::Formatted,
            },
            ..Default::default()
        };
        if let Ok(mut reader) = dom_smoothie::Readability::new(html, Some(url), Some(cfg))
            && let Ok(article) = reader.parse()
        {
            let text = article.text_content.trim().to_string();
            if !text.is_empty() {
                let title = Some(article.title).filter(|t| !t.trim().is_empty());
                return (title, "readability", text);
            }
        }
    }
    let doc = dom_query::Document::from(html);
    let title = Some(doc.select("title").text().trim().to_string()).filter(|t| !t.is_empty());
    doc.select("script, style, noscript, template, svg").remove();
    let body = doc.select("body");
    let content = match (mode, body.nodes().first()) {
        (ExtractMode::Markdown, Some(node)) => node.md(None).trim().to_string(),
        (ExtractMode::Markdown, None) => doc.md(None).trim().to_string(),
        (ExtractMode::Text, Some(_)) => body.formatted_text().trim().to_string(),
        (ExtractMode::Text, None) => doc.formatted_text().trim().to_string(),
    };
    (title, "html", content)
}
