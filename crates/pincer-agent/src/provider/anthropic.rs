//! Anthropic messages (`api: "anthropic-messages"`).
//!
//! `POST {baseUrl}/v1/messages` with `x-api-key`, `anthropic-version: 2023-06-01` and
//! `{model, max_tokens, system?, messages, stream}`. A stream is a sequence of named events:
//! `message_start` (input usage), `content_block_delta` (`text_delta`), `message_delta` (output
//! usage, stop reason), `message_stop`, `ping`, and `error` mid-stream.

use pincer_core::SharedClock;
use pincer_core::config::ProviderConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::http::{self, Answer, Endpoint, Exchange, Step};
use super::sse::SseEvent;
use super::{
    BoxFuture, ChatOutcome, ChatRequest, ErrorClass, OnDelta, Provider, ProviderError, ProviderSetupError, Role,
    Timeouts, Usage,
};

/// The API version Pincer speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the API; this is sent when the request sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A provider speaking the Anthropic messages API.
pub struct AnthropicProvider {
    endpoint: Endpoint,
    api_key: Option<HeaderValue>,
}

impl AnthropicProvider {
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        clock: SharedClock,
        timeouts: Timeouts,
    ) -> Result<AnthropicProvider, ProviderSetupError> {
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        let api_key = match config.api_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => {
                let mut value = HeaderValue::from_str(key).map_err(|_| ProviderSetupError {
                    provider: name.to_string(),
                    message: format!("models.providers.{name}.apiKey: contains characters an HTTP header cannot carry"),
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(AnthropicProvider { endpoint: Endpoint::new(name, url, config, clock, timeouts)?, api_key })
    }

    async fn run(&self, req: &ChatRequest, on_delta: OnDelta<'_>) -> Result<ChatOutcome, ProviderError> {
        let mut ex = self.endpoint.exchange(req.deadline_ms);
        let result = self.call(&mut ex, req, on_delta).await;
        result.map_err(|e| e.after_first_token(ex.delivered()))
    }

    async fn call(
        &self,
        ex: &mut Exchange<'_>,
        req: &ChatRequest,
        on_delta: OnDelta<'_>,
    ) -> Result<ChatOutcome, ProviderError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            headers.insert(HeaderName::from_static("x-api-key"), key.clone());
        }
        headers.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION));
        let mut response = ex.send(self.endpoint.post(headers, &request_body(req))).await?;
        if !response.status().is_success() {
            return Err(ex.http_error(response, &req.model).await);
        }
        if http::is_event_stream(&response) {
            let mut answer = Answer { id_prefix: "toolu_", ..Answer::new(&req.model) };
            let done = http::read_stream(ex, response, on_delta, |event| stream_event(&mut answer, event)).await?;
            if !done && answer.finish_reason.is_none() {
                return Err(http::cut_short());
            }
            answer.into_outcome()
        } else {
            let body = ex.read_reply(&mut response).await?;
            let outcome = parse_reply(&http::parse_json(&body)?, &req.model)?;
            ex.deliver(on_delta, &outcome.text);
            Ok(outcome)
        }
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    fn complete<'a>(
        &'a self,
        req: &'a ChatRequest,
        on_delta: OnDelta<'a>,
    ) -> BoxFuture<'a, Result<ChatOutcome, ProviderError>> {
        Box::pin(self.run(req, on_delta))
    }
}

/// The request body. Plain messages keep a string `content`; an assistant message that called
/// tools becomes `text` + `tool_use` blocks, and tool results become `tool_result` blocks of a
/// user message. Neighbours with the same role are merged into one message of blocks, as the API
/// requires alternating roles (the results of parallel calls go in one user message).
fn request_body(req: &ChatRequest) -> Value {
    let mut messages: Vec<(&str, Value)> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let (role, content) = match m.role {
            Role::User => ("user", json!(m.content)),
            Role::Assistant if m.tool_calls.is_empty() => ("assistant", json!(m.content)),
            Role::Assistant => {
                let mut blocks = Vec::with_capacity(m.tool_calls.len() + 1);
                if !m.content.trim().is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for call in &m.tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(&call.arguments)}));
                }
                ("assistant", Value::Array(blocks))
            }
            Role::Tool => {
                let mut block = json!({
                    "type": "tool_result", "tool_use_id": m.tool_call_id.as_deref().unwrap_or_default(),
                    "content": m.content,
                });
                if m.is_error {
                    block["is_error"] = json!(true);
                }
                ("user", json!([block]))
            }
        };
        match messages.last_mut() {
            Some((last_role, last)) if *last_role == role => {
                let mut blocks = as_blocks(std::mem::take(last));
                blocks.extend(as_blocks(content));
                *last = Value::Array(blocks);
            }
            _ => messages.push((role, content)),
        }
    }
    let messages: Vec<Value> =
        messages.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": req.stream,
    });
    if let Some(system) = &req.system {
        body["system"] = json!(system);
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        body["tools"] = json!(tools);
    }
    body
}

/// A message's content as a list of blocks.
fn as_blocks(content: Value) -> Vec<Value> {
    match content {
        Value::Array(blocks) => blocks,
        Value::String(text) if text.is_empty() => Vec::new(),
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        other => vec![other],
    }
}

/// A call's `input` must be an object; arguments the model sent malformed are replayed as an
/// empty one (the result that follows says they were refused).
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// One event of a streamed reply. The `type` inside the data is authoritative; the SSE event
/// name is its copy.
fn stream_event(answer: &mut Answer, event: &SseEvent) -> Result<Step, ProviderError> {
    let data: Value = serde_json::from_str(&event.data).map_err(|e| {
        let shown: String = event.data.chars().take(200).collect();
        ProviderError::new(ErrorClass::Format, format!("a stream event is not valid JSON ({e}): {shown}"))
    })?;
    let kind = data.get("type").and_then(Value::as_str).unwrap_or(&event.event);
    match kind {
        "message_start" => {
            let message = data.get("message").unwrap_or(&Value::Null);
            answer.reported_model(message.get("model").and_then(Value::as_str));
            if let Some(usage) = message.get("usage") {
                merge_usage(&mut answer.usage, usage);
            }
            Ok(Step::Idle)
        }
        "content_block_start" => {
            let block = data.get("content_block").unwrap_or(&Value::Null);
            let has_text = block.get("text").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
            if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                // `input` starts as `{}` and is streamed; a non-empty one is already whole.
                let input = match block.get("input") {
                    Some(Value::Object(o)) if !o.is_empty() => Value::Object(o.clone()).to_string(),
                    _ => String::new(),
                };
                let (id, name) = (block.get("id").and_then(Value::as_str), block.get("name").and_then(Value::as_str));
                answer.tool_calls.piece(index, id, name, &input);
            }
            match block.get("type").and_then(Value::as_str) {
                _ if has_text => text_step(answer, block.get("text")),
                // A text block opens empty, before the model wrote anything: not output yet, like
                // `message_start`, so the first-token timer keeps running.
                Some("text") | None => Ok(Step::Idle),
                // A tool call or a thinking block: the model is working.
                _ => Ok(Step::Progress),
            }
        }
        "content_block_delta" => match data.pointer("/delta/type").and_then(Value::as_str) {
            Some("text_delta") => text_step(answer, data.pointer("/delta/text")),
            Some("input_json_delta") => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let piece = data.pointer("/delta/partial_json").and_then(Value::as_str).unwrap_or_default();
                answer.tool_calls.piece(index, None, None, piece);
                Ok(Step::Progress)
            }
            _ => Ok(Step::Progress),
        },
        "message_delta" => {
            if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                answer.finish_reason = Some(reason.to_string());
            }
            if let Some(usage) = data.get("usage") {
                merge_usage(&mut answer.usage, usage);
            }
            Ok(Step::Progress)
        }
        "message_stop" => Ok(Step::Done),
        "error" => Err(http::reported_error(event.data.as_bytes())),
        "ping" => Ok(Step::Idle),
        // `content_block_stop` and event types added after this was written.
        _ => Ok(Step::Progress),
    }
}

fn text_step(answer: &mut Answer, text: Option<&Value>) -> Result<Step, ProviderError> {
    match text.and_then(Value::as_str).filter(|t| !t.is_empty()) {
        Some(text) => {
            answer.text.push_str(text);
            Ok(Step::Delta(text.to_string()))
        }
        None => Ok(Step::Progress),
    }
}

/// Applies the counts present in `usage`; `message_delta` carries cumulative output (and, in
/// newer API versions, input) counts that replace those of `message_start`.
fn merge_usage(into: &mut Usage, usage: &Value) {
    let n = |key: &str| usage.get(key).and_then(Value::as_u64);
    if let Some(input) = n("input_tokens") {
        into.input_tokens = input;
    }
    if let Some(output) = n("output_tokens") {
        into.output_tokens = output;
    }
    if let Some(read) = n("cache_read_input_tokens") {
        into.cache_read_tokens = Some(read);
    }
    if let Some(write) = n("cache_creation_input_tokens") {
        into.cache_write_tokens = Some(write);
    }
    into.total_tokens = into.input_tokens
        + into.output_tokens
        + into.cache_read_tokens.unwrap_or(0)
        + into.cache_write_tokens.unwrap_or(0);
}

/// A whole `message` reply.
fn parse_reply(reply: &Value, requested_model: &str) -> Result<ChatOutcome, ProviderError> {
    if reply.get("type").and_then(Value::as_str) == Some("error") {
        return Err(http::reported_error(reply.to_string().as_bytes()));
    }
    let content = reply.get("content").and_then(Value::as_array).ok_or_else(|| {
        ProviderError::new(ErrorClass::Format, "the reply has no `content`; is this an Anthropic messages endpoint?")
    })?;
    let mut answer = Answer { id_prefix: "toolu_", ..Answer::new(requested_model) };
    answer.reported_model(reply.get("model").and_then(Value::as_str));
    answer.text = content
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect();
    for (index, block) in content.iter().enumerate() {
        if block.get("type").and_then(Value::as_str) == Some("tool_use") {
            // `input` is an object; a server that sends it as text gets that text checked later.
            let input = match block.get("input") {
                Some(Value::String(text)) => text.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            let (id, name) = (block.get("id").and_then(Value::as_str), block.get("name").and_then(Value::as_str));
            answer.tool_calls.piece(index as u64, id, name, &input);
        }
    }
    answer.finish_reason = reply.get("stop_reason").and_then(Value::as_str).map(str::to_string);
    if let Some(usage) = reply.get("usage") {
        merge_usage(&mut answer.usage, usage);
    }
    answer.into_outcome()
}

#[cfg(test)]
mod tests {
    use pincer_core::FakeClock;
    use pincer_core::config::ProviderApi;
    use pincer_testkit::fakes::anthropic::{FakeAnthropic, FakeError, FakeUsage, Reply, split_text};
    use serde_json::json;

    use super::*;
    use crate::provider::ChatMessage;
    use crate::provider::testing::{Deltas, START_MS, finish, provider_config};

    fn provider(fake: &FakeAnthropic, api_key: Option<&str>) -> AnthropicProvider {
        let mut config = provider_config(ProviderApi::AnthropicMessages, &fake.base_url(), &[]);
        config.api_key = api_key.map(str::to_string);
        AnthropicProvider::new("anthropic", &config, FakeClock::new(START_MS).shared(), Timeouts::default()).unwrap()
    }

    async fn call(
        provider: &AnthropicProvider,
        req: &ChatRequest,
    ) -> (Result<ChatOutcome, ProviderError>, Vec<String>) {
        let deltas = Deltas::default();
        let result = finish(provider.complete(req, &deltas.sink())).await;
        (result, deltas.all())
    }

    #[tokio::test]
    async fn streams_text_and_usage_and_sends_the_documented_request() {
        let fake = FakeAnthropic::start().await;
        let text = "Bonjour! Ceci est une réponse en flux.";
        let usage = FakeUsage { input: 30, output: 12, cache_read: 7, cache_write: 3 };
        fake.push(Reply::text(text).in_chunks(5).with_usage(usage));
        let provider = provider(&fake, Some("sk-ant-test"));
        let req = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: Some("Be brief.".into()),
            messages: vec![ChatMessage::user("Hi"), ChatMessage::assistant("Hello!"), ChatMessage::user("Stream?")],
            max_tokens: None,
            stream: true,
            deadline_ms: None,
            tools: Vec::new(),
        };

        let (result, deltas) = call(&provider, &req).await;

        let outcome = result.unwrap();
        assert_eq!(deltas, split_text(text, 5));
        assert_eq!(outcome.text, text);
        assert_eq!(
            outcome.usage,
            Usage {
                input_tokens: 30,
                output_tokens: 12,
                total_tokens: 52,
                cache_read_tokens: Some(7),
                cache_write_tokens: Some(3)
            }
        );
        assert_eq!((outcome.model.as_str(), outcome.finish_reason.as_deref()), ("claude-sonnet-4-5", Some("end_turn")));
        let request = &fake.requests()[0];
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("authorization"), None);
        assert_eq!(
            request.body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Stream?"},
                ],
                "stream": true,
                "system": "Be brief.",
            })
        );
    }

    #[tokio::test]
    async fn non_streaming_reply() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text("Whole.").with_usage(FakeUsage::new(8, 2)).with_finish("max_tokens"));
        let provider = provider(&fake, Some("k"));
        let req = ChatRequest { stream: false, max_tokens: Some(64), ..ChatRequest::new("claude-haiku", "Hi") };

        let (result, deltas) = call(&provider, &req).await;

        let outcome = result.unwrap();
        assert_eq!((outcome.text.as_str(), deltas), ("Whole.", vec!["Whole.".to_string()]));
        assert_eq!(
            outcome.usage,
            Usage {
                input_tokens: 8,
                output_tokens: 2,
                total_tokens: 10,
                cache_read_tokens: Some(0),
                cache_write_tokens: Some(0)
            }
        );
        assert_eq!(outcome.finish_reason.as_deref(), Some("max_tokens"));
        let body = &fake.requests()[0].body;
        assert_eq!((body["stream"].clone(), body["max_tokens"].clone()), (json!(false), json!(64)));
        assert!(body.get("system").is_none());
    }

    #[tokio::test]
    async fn http_errors_are_classified() {
        let fake = FakeAnthropic::start().await;
        let provider = provider(&fake, Some("k"));
        let cases = [
            (FakeError::RateLimited { retry_after_secs: Some(3) }, ErrorClass::RateLimit, 429, Some(3_000)),
            (FakeError::ServerError, ErrorClass::ServerError, 500, None),
            (FakeError::Overloaded, ErrorClass::Overloaded, 529, None),
            (FakeError::UnknownModel, ErrorClass::ModelNotFound, 404, None),
            (FakeError::Unauthorized, ErrorClass::Auth, 401, None),
            (FakeError::ContextOverflow, ErrorClass::ContextOverflow, 400, None),
        ];
        for (error, class, status, retry_after_ms) in cases {
            fake.push(Reply::error(error));
            let e = call(&provider, &ChatRequest::new("claude-9", "Hi")).await.0.unwrap_err();
            assert_eq!((e.class, e.status, e.retry_after_ms), (class, Some(status), retry_after_ms), "{error:?}");
        }
        fake.push(Reply::overloaded());
        let e = call(&provider, &ChatRequest::new("claude-9", "Hi")).await.0.unwrap_err();
        assert_eq!(e.to_string(), "HTTP 529: Overloaded [overloaded]");
    }

    #[tokio::test]
    async fn error_event_mid_stream() {
        let fake = FakeAnthropic::start().await;
        let provider = provider(&fake, Some("k"));
        fake.push(Reply::error_after(2, FakeError::Overloaded));
        let (result, deltas) = call(&provider, &ChatRequest::new("claude", "Hi")).await;
        let e = result.unwrap_err();
        assert_eq!((e.class, e.status, e.first_token_received), (ErrorClass::Overloaded, None, true));
        assert_eq!(e.message, "the provider reported an error (overloaded_error): Overloaded");
        assert_eq!(deltas.len(), 2);

        fake.push(Reply::error_after(0, FakeError::ServerError));
        let (result, deltas) = call(&provider, &ChatRequest::new("claude", "Hi")).await;
        let e = result.unwrap_err();
        assert_eq!((e.class, e.first_token_received, deltas.len()), (ErrorClass::ServerError, false, 0));
    }

    #[test]
    fn which_stream_events_count_as_output() {
        let step = |event: &str, data: &str| {
            let mut answer = Answer::new("m");
            let event = SseEvent { event: event.into(), data: data.into() };
            match stream_event(&mut answer, &event).unwrap() {
                Step::Delta(text) => format!("delta {text}"),
                Step::Progress => "progress".into(),
                Step::Idle => "idle".into(),
                Step::Done => "done".into(),
            }
        };
        let cases = [
            ("message_start", r#"{"type":"message_start","message":{"model":"m","usage":{}}}"#, "idle"),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                "idle",
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Hi"}}"#,
                "delta Hi",
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
                "progress",
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
                "progress",
            ),
            ("ping", r#"{"type":"ping"}"#, "idle"),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
                "delta a",
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
                "progress",
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}"#,
                "progress",
            ),
            ("message_stop", r#"{"type":"message_stop"}"#, "done"),
        ];
        for (event, data, want) in cases {
            assert_eq!(step(event, data), want, "{data}");
        }
    }

    #[tokio::test]
    async fn malformed_empty_and_no_reply() {
        let fake = FakeAnthropic::start().await;
        let provider = provider(&fake, None);
        for stream in [true, false] {
            let req = ChatRequest { stream, ..ChatRequest::new("claude", "Hi") };
            fake.push(Reply::malformed());
            assert_eq!(call(&provider, &req).await.0.unwrap_err().class, ErrorClass::Format, "stream {stream}");
            fake.push(Reply::text(""));
            assert_eq!(call(&provider, &req).await.0.unwrap_err().class, ErrorClass::EmptyResponse, "stream {stream}");
            fake.push(Reply::no_reply());
            assert_eq!(call(&provider, &req).await.0.unwrap().text, "NO_REPLY", "stream {stream}");
        }
        assert!(fake.requests().iter().all(|r| r.header("x-api-key").is_none()));
    }
}
