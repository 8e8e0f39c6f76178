//! The HTTP exchange both providers share: one reqwest client per provider, and the three timers
//! (first token, stall, the run's deadline) that race every await on the injected clock.

use std::future::Future;

use bytes::Bytes;
use pincer_core::SharedClock;
use pincer_core::config::ProviderConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::error::{self, ErrorClass, ProviderError};
use super::sse::{SseError, SseEvent, SseParser};
use super::tool_calls::ToolCallParts;
use super::{ChatOutcome, ProviderSetupError, Timeouts, Usage};

/// Error bodies are read up to this size; the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// A non-streamed reply larger than this is refused.
const MAX_REPLY_BODY: usize = 32 * 1024 * 1024;

/// Where and how one configured provider is called.
pub(crate) struct Endpoint {
    pub name: String,
    pub url: String,
    client: reqwest::Client,
    /// `models.providers.<name>.headers`, sent last so they can override Pincer's own.
    extra_headers: HeaderMap,
    clock: SharedClock,
    timeouts: Timeouts,
}

impl Endpoint {
    pub fn new(
        name: &str,
        url: String,
        config: &ProviderConfig,
        clock: SharedClock,
        timeouts: Timeouts,
    ) -> Result<Endpoint, ProviderSetupError> {
        let setup_error = |detail: String| ProviderSetupError {
            provider: name.to_string(),
            message: format!("models.providers.{name}{detail}"),
        };
        let mut extra_headers = HeaderMap::new();
        for (key, value) in &config.headers {
            let header = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| setup_error(format!(".headers.{key}: not a valid HTTP header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| setup_error(format!(".headers.{key}: the value is not a valid HTTP header value")))?;
            extra_headers.insert(header, value);
        }
        let timeouts = timeouts.for_provider(config);
        pincer_core::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_millis(timeouts.connect_ms))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| setup_error(format!(": cannot build the HTTP client: {e}")))?;
        Ok(Endpoint { name: name.to_string(), url, client, extra_headers, clock, timeouts })
    }

    /// A POST to this endpoint with `headers` (the provider's own) and then the configured ones.
    pub fn post(&self, headers: HeaderMap, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.client.post(&self.url).headers(headers).headers(self.extra_headers.clone()).json(body)
    }

    /// Starts the timers for one call.
    pub fn exchange(&self, deadline_ms: Option<i64>) -> Exchange<'_> {
        let now = self.clock.now_ms();
        Exchange {
            endpoint: self,
            deadline_ms,
            first_output_by: now.saturating_add(self.timeouts.first_token_ms as i64),
            last_activity_ms: now,
            got_output: false,
            delivered: false,
        }
    }

    /// One line telling the user what to fix for errors that configuration can cause.
    pub fn hint(&self, class: ErrorClass, model: &str) -> String {
        let name = &self.name;
        match class {
            ErrorClass::Auth | ErrorClass::AuthPermanent => format!("check models.providers.{name}.apiKey"),
            ErrorClass::ModelNotFound => format!(
                "check that `{model}` is a model this provider serves, and models.providers.{name}.baseUrl (POST {})",
                self.url
            ),
            ErrorClass::Billing => format!("add credit or raise the quota of the `{name}` account"),
            _ => String::new(),
        }
    }
}

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Deadline,
    FirstToken,
    Stall,
}

/// One request in flight: every await goes through [`Exchange::within`], which gives up at the
/// earliest of the run's deadline, the first-token limit (until output starts) and the stall limit.
pub(crate) struct Exchange<'a> {
    endpoint: &'a Endpoint,
    deadline_ms: Option<i64>,
    first_output_by: i64,
    last_activity_ms: i64,
    got_output: bool,
    delivered: bool,
}

impl Exchange<'_> {
    fn limit(&self) -> (i64, Limit) {
        let stall = self.last_activity_ms.saturating_add(self.endpoint.timeouts.stall_ms as i64);
        let mut limit = (stall, Limit::Stall);
        if !self.got_output && self.first_output_by <= limit.0 {
            limit = (self.first_output_by, Limit::FirstToken);
        }
        if let Some(deadline) = self.deadline_ms
            && deadline <= limit.0
        {
            limit = (deadline, Limit::Deadline);
        }
        limit
    }

    /// Runs `fut` unless a timer fires first; then `fut` is dropped, which aborts the request.
    async fn within<T>(&self, fut: impl Future<Output = T>) -> Result<T, ProviderError> {
        let (at, which) = self.limit();
        let clock = self.endpoint.clock.clone();
        let out = tokio::select! {
            biased;
            () = clock.sleep_until(at) => None,
            out = fut => Some(out),
        };
        out.ok_or_else(|| self.timeout_error(which))
    }

    fn timeout_error(&self, which: Limit) -> ProviderError {
        let secs = |ms: u64| ms.div_ceil(1000);
        let name = &self.endpoint.name;
        let message = match which {
            Limit::Deadline => "the run's time limit was reached while waiting for the model".to_string(),
            Limit::FirstToken => format!(
                "no reply from the model within {} s; raise models.providers.{name}.timeoutSeconds for slow models",
                secs(self.endpoint.timeouts.first_token_ms)
            ),
            Limit::Stall => format!(
                "the reply stalled: nothing arrived for {} s; raise models.providers.{name}.timeoutSeconds for slow models",
                secs(self.endpoint.timeouts.stall_ms)
            ),
        };
        ProviderError::new(ErrorClass::Timeout, message).after_first_token(self.delivered)
    }

    /// Sends the request and waits for the response head.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        let response = self.within(request.send()).await?.map_err(|e| self.transport_error(&e))?;
        self.last_activity_ms = self.endpoint.clock.now_ms();
        Ok(response)
    }

    /// The next piece of the body, or `None` at its end. Any bytes, keepalives included, reset
    /// the stall timer.
    pub async fn next_chunk(&mut self, response: &mut reqwest::Response) -> Result<Option<Bytes>, ProviderError> {
        let chunk = self.within(response.chunk()).await?.map_err(|e| self.transport_error(&e))?;
        self.last_activity_ms = self.endpoint.clock.now_ms();
        Ok(chunk)
    }

    /// Reads the whole body (up to `max` bytes); the first byte stops the first-token timer.
    pub async fn read_body(&mut self, response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, ProviderError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(response).await? {
            self.output_started();
            let room = max.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= max {
                break;
            }
        }
        Ok(body)
    }

    /// Reads a whole non-streamed reply.
    pub async fn read_reply(&mut self, response: &mut reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        let body = self.read_body(response, MAX_REPLY_BODY + 1).await?;
        if body.len() > MAX_REPLY_BODY {
            return Err(ProviderError::new(ErrorClass::Format, "the reply body is larger than 32 MiB"));
        }
        Ok(body)
    }

    /// The error for a non-2xx response, from its headers and body.
    pub async fn http_error(&mut self, mut response: reqwest::Response, model: &str) -> ProviderError {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // A body that cannot be read still leaves the status to classify by.
        let body = self.read_body(&mut response, MAX_ERROR_BODY).await.unwrap_or_default();
        error::from_http(status, &headers, &body, &|class| self.endpoint.hint(class, model))
    }

    /// The model started answering: the first-token timer no longer applies.
    pub fn output_started(&mut self) {
        self.got_output = true;
    }

    /// Passes text to the listener; from now on the call must not be repeated.
    pub fn deliver(&mut self, on_delta: &(dyn Fn(&str) + Send + Sync), text: &str) {
        if text.is_empty() {
            return;
        }
        self.got_output = true;
        self.delivered = true;
        on_delta(text);
    }

    /// True once any text reached the listener.
    pub fn delivered(&self) -> bool {
        self.delivered
    }

    fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        let (class, message) = if e.is_timeout() {
            (ErrorClass::Timeout, format!("connecting to {} timed out: {detail}", self.endpoint.url))
        } else if e.is_connect() {
            (
                ErrorClass::Network,
                format!(
                    "cannot connect to {}: {detail} — is the server running? check models.providers.{}.baseUrl",
                    self.endpoint.url, self.endpoint.name
                ),
            )
        } else {
            (ErrorClass::Network, format!("the connection to {} failed: {detail}", self.endpoint.url))
        };
        ProviderError::new(class, message).after_first_token(self.delivered)
    }
}

/// True when the response is an event stream (a server may answer a streaming request with
/// plain JSON, and the other way round).
pub(crate) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

/// Parses a JSON reply, or says why it is not one.
pub(crate) fn parse_json(body: &[u8]) -> Result<serde_json::Value, ProviderError> {
    serde_json::from_slice(body).map_err(|e| {
        let shown: String = String::from_utf8_lossy(body).chars().take(200).collect();
        ProviderError::new(ErrorClass::Format, format!("the reply is not valid JSON ({e}): {shown}"))
    })
}

/// What one event of a reply stream meant.
pub(crate) enum Step {
    /// Text to pass on.
    Delta(String),
    /// The model is producing output that is not text (reasoning, a tool call, usage, the end).
    Progress,
    /// An event that does not show output yet (OpenAI's role header, Anthropic `message_start`
    /// and `ping`): it resets the stall timer, not the first-token one.
    Idle,
    /// The reply is complete; stop reading.
    Done,
}

/// Reads an event stream, handing each event to `on_event` and its text to `on_delta`.
/// Returns true when `on_event` said [`Step::Done`], false when the body simply ended.
pub(crate) async fn read_stream(
    ex: &mut Exchange<'_>,
    mut response: reqwest::Response,
    on_delta: &(dyn Fn(&str) + Send + Sync),
    mut on_event: impl FnMut(&SseEvent) -> Result<Step, ProviderError>,
) -> Result<bool, ProviderError> {
    let mut parser = SseParser::new();
    let broken = |e: SseError| ProviderError::new(ErrorClass::Format, e.to_string());
    loop {
        let chunk = ex.next_chunk(&mut response).await?;
        let events = match &chunk {
            Some(bytes) => parser.push(bytes).map_err(broken)?,
            None => parser.finish().map_err(broken)?.into_iter().collect(),
        };
        for event in &events {
            match on_event(event)? {
                Step::Delta(text) => ex.deliver(on_delta, &text),
                Step::Progress => ex.output_started(),
                Step::Idle => {}
                Step::Done => {
                    if chunk.is_some() {
                        finish_tail(response, &ex.endpoint.clock).await;
                    }
                    return Ok(true);
                }
            }
        }
        if chunk.is_none() {
            return Ok(false);
        }
    }
}

/// Most of a stream read after its end marker, and for how long (on the injected clock).
const MAX_TAIL_BYTES: usize = 64 * 1024;
const TAIL_MS: i64 = 200;

/// Reads what is left of a stream whose reply is complete: after OpenAI's `[DONE]` or
/// Anthropic's `message_stop` the body's last chunk is usually still on its way. Dropped before
/// the end of its body, a response closes its connection, so a tool loop opened a new connection
/// (TCP, and TLS for a real provider) for every step; read to the end, the connection goes back
/// to the client's pool before the next call. It is read here, not in a task of its own: such a
/// task lost the race to a quick step's next request, which then opened a new connection anyway.
/// A server that keeps the stream open past its end marker is given up after 64 KiB or 200 ms
/// (and its connection closed); a well-behaved one ends the body at once.
async fn finish_tail(mut response: reqwest::Response, clock: &SharedClock) {
    let until = clock.now_ms().saturating_add(TAIL_MS);
    let drain = async {
        let mut read = 0usize;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > MAX_TAIL_BYTES {
                break;
            }
        }
    };
    tokio::select! {
        () = drain => {}
        () = clock.sleep_until(until) => {}
    }
}

/// A reply being assembled.
pub(crate) struct Answer {
    pub text: String,
    pub model: String,
    pub usage: Usage,
    pub finish_reason: Option<String>,
    pub tool_calls: ToolCallParts,
    /// What an id-less call is named after (`call_` for OpenAI, `toolu_` for Anthropic).
    pub id_prefix: &'static str,
}

impl Answer {
    pub fn new(requested_model: &str) -> Answer {
        Answer {
            text: String::new(),
            model: requested_model.to_string(),
            usage: Usage::default(),
            finish_reason: None,
            tool_calls: ToolCallParts::default(),
            id_prefix: "call_",
        }
    }

    /// Takes the model id the provider reported, if any.
    pub fn reported_model(&mut self, model: Option<&str>) {
        if let Some(model) = model.filter(|m| !m.is_empty()) {
            self.model = model.to_string();
        }
    }

    /// The outcome, or `empty_response` when the model neither said anything nor called a tool.
    pub fn into_outcome(self) -> Result<ChatOutcome, ProviderError> {
        if self.text.trim().is_empty() && self.tool_calls.is_empty() {
            let reason = self.finish_reason.as_deref().unwrap_or("none");
            return Err(ProviderError::new(
                ErrorClass::EmptyResponse,
                format!("the model `{}` answered with no text (finish reason: {reason})", self.model),
            ));
        }
        // A reply that only calls tools has no text worth keeping (some servers send a newline).
        let text = if self.tool_calls.is_empty() || !self.text.trim().is_empty() { self.text } else { String::new() };
        Ok(ChatOutcome {
            text,
            usage: self.usage,
            model: self.model,
            finish_reason: self.finish_reason,
            tool_calls: self.tool_calls.finish(self.id_prefix),
        })
    }
}

/// A stream that ended without its end marker after a partial reply.
pub(crate) fn cut_short() -> ProviderError {
    ProviderError::new(ErrorClass::Network, "the reply stream ended before the reply was complete")
}

/// An error the provider reported inside a 200 reply (a stream event or a JSON body).
pub(crate) fn reported_error(raw: &[u8]) -> ProviderError {
    let (kind, message) = error::error_detail(raw);
    let class = error::classify(None, &kind, &message);
    let kind = if kind.is_empty() { String::new() } else { format!(" ({kind})") };
    ProviderError::new(class, format!("the provider reported an error{kind}: {message}"))
}
