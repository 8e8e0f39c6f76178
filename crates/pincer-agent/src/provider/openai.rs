//! OpenAI-compatible chat completions (`api: "openai-completions"`): OpenAI itself, Ollama,
//! llama.cpp, vLLM, LM Studio and the proxies that copy them.
//!
//! `POST {baseUrl}/chat/completions` with `{model, messages, stream, max_tokens?}`; when
//! streaming, `stream_options.include_usage` asks for the final usage chunk. Replies are either
//! SSE (`data: {chunk}` … `data: [DONE]`) or one JSON `chat.completion`.

use pincer_core::SharedClock;
use pincer_core::config::ProviderConfig;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::http::{self, Answer, Endpoint, Exchange, Step};
use super::{
    BoxFuture, ChatOutcome, ChatRequest, ErrorClass, OnDelta, Provider, ProviderError, ProviderSetupError, Role,
    Timeouts, Usage,
};

/// A provider speaking the OpenAI chat-completions API.
pub struct OpenAiProvider {
    endpoint: Endpoint,
    auth: Option<HeaderValue>,
}

impl OpenAiProvider {
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        clock: SharedClock,
        timeouts: Timeouts,
    ) -> Result<OpenAiProvider, ProviderSetupError> {
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let auth = match config.api_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => Some(HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| ProviderSetupError {
                provider: name.to_string(),
                message: format!("models.providers.{name}.apiKey: contains characters an HTTP header cannot carry"),
            })?),
            None => None,
        };
        Ok(OpenAiProvider { endpoint: Endpoint::new(name, url, config, clock, timeouts)?, auth })
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
        if let Some(auth) = &self.auth {
            let mut auth = auth.clone();
            auth.set_sensitive(true);
            headers.insert(AUTHORIZATION, auth);
        }
        let mut response = ex.send(self.endpoint.post(headers, &request_body(req))).await?;
        if !response.status().is_success() {
            return Err(ex.http_error(response, &req.model).await);
        }
        if http::is_event_stream(&response) {
            let mut answer = Answer::new(&req.model);
            let done =
                http::read_stream(ex, response, on_delta, |event| stream_event(&mut answer, &event.data)).await?;
            // Some servers close without `[DONE]`; a finish reason is proof enough of a whole reply.
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

impl Provider for OpenAiProvider {
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

/// The request body: the system prompt first, then the conversation; an assistant message that
/// called tools carries them as `tool_calls`, and each result is a `tool` message.
fn request_body(req: &ChatRequest) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &req.messages {
        messages.push(match message.role {
            Role::User => json!({"role": "user", "content": message.content}),
            Role::Assistant if message.tool_calls.is_empty() => {
                json!({"role": "assistant", "content": message.content})
            }
            Role::Assistant => {
                let calls: Vec<Value> = message
                    .tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect();
                let content = if message.content.is_empty() { Value::Null } else { json!(message.content) };
                json!({"role": "assistant", "content": content, "tool_calls": calls})
            }
            Role::Tool => json!({
                "role": "tool", "tool_call_id": message.tool_call_id.as_deref().unwrap_or_default(),
                "content": message.content,
            }),
        });
    }
    let mut body = json!({"model": req.model, "messages": messages, "stream": req.stream});
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        body["tools"] = json!(tools);
    }
    if let Some(max_tokens) = req.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if req.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// The `tool_calls` pieces of one streamed delta (or the whole calls of a reply): keyed by
/// `index`, or by `id` / position when a server sends no index.
fn tool_call_pieces(answer: &mut Answer, calls: &Value) {
    let Some(calls) = calls.as_array() else { return };
    for (position, call) in calls.iter().enumerate() {
        let id = call.get("id").and_then(Value::as_str);
        let key = match call.get("index").and_then(Value::as_u64) {
            Some(index) => index,
            None => id
                .and_then(|id| answer.tool_calls.key_of_id(id))
                .unwrap_or_else(|| answer.tool_calls.next_key().max(position as u64)),
        };
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        // `arguments` is JSON text; a few servers send the object itself.
        let arguments = match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        answer.tool_calls.piece(key, id, name, &arguments);
    }
}

/// One `data:` event of a streamed reply.
fn stream_event(answer: &mut Answer, data: &str) -> Result<Step, ProviderError> {
    if data.trim() == "[DONE]" {
        return Ok(Step::Done);
    }
    let chunk: Value = serde_json::from_str(data).map_err(|e| {
        let shown: String = data.chars().take(200).collect();
        ProviderError::new(ErrorClass::Format, format!("a stream event is not valid JSON ({e}): {shown}"))
    })?;
    if is_error(&chunk) {
        return Err(http::reported_error(data.as_bytes()));
    }
    answer.reported_model(chunk.get("model").and_then(Value::as_str));
    if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
        answer.usage = usage_of(usage);
    }
    let choice = chunk.pointer("/choices/0");
    if let Some(reason) = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str) {
        answer.finish_reason = Some(reason.to_string());
    }
    let delta = choice.and_then(|c| c.get("delta"));
    if let Some(calls) = delta.and_then(|d| d.get("tool_calls")) {
        tool_call_pieces(answer, calls);
    }
    let text = delta.and_then(|d| d.get("content")).and_then(Value::as_str).unwrap_or_default();
    if !text.is_empty() {
        answer.text.push_str(text);
        return Ok(Step::Delta(text.to_string()));
    }
    // Reasoning (`reasoning_content` in vLLM/DeepSeek/llama.cpp, `reasoning` in Ollama) and tool
    // calls are output too: a thinking model is not stalled.
    let non_empty = |key: &str| delta.and_then(|d| d.get(key)).is_some_and(|v| v.as_str() != Some("") && !v.is_null());
    let working = ["reasoning_content", "reasoning", "tool_calls"].into_iter().any(non_empty);
    if working || answer.finish_reason.is_some() || chunk.get("usage").is_some_and(Value::is_object) {
        Ok(Step::Progress)
    } else {
        Ok(Step::Idle)
    }
}

/// A whole `chat.completion` reply.
fn parse_reply(reply: &Value, requested_model: &str) -> Result<ChatOutcome, ProviderError> {
    if is_error(reply) {
        return Err(http::reported_error(reply.to_string().as_bytes()));
    }
    let choice = reply.pointer("/choices/0").ok_or_else(|| {
        ProviderError::new(ErrorClass::Format, "the reply has no `choices`; is this an OpenAI-compatible endpoint?")
    })?;
    let mut answer = Answer::new(requested_model);
    answer.reported_model(reply.get("model").and_then(Value::as_str));
    answer.text = content_text(choice.pointer("/message/content"));
    if let Some(calls) = choice.pointer("/message/tool_calls") {
        tool_call_pieces(&mut answer, calls);
    }
    answer.finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(str::to_string);
    if let Some(usage) = reply.get("usage").filter(|u| u.is_object()) {
        answer.usage = usage_of(usage);
    }
    answer.into_outcome()
}

fn is_error(value: &Value) -> bool {
    value.get("error").is_some_and(|e| !e.is_null()) || value.get("object").and_then(Value::as_str) == Some("error")
}

/// `content` as a string, or as an array of `{type:"text", text}` parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// `usage.{prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details.cached_tokens}`.
fn usage_of(usage: &Value) -> Usage {
    let n = |path: &str| usage.pointer(path).and_then(Value::as_u64);
    let prompt = n("/prompt_tokens").unwrap_or(0);
    let output = n("/completion_tokens").unwrap_or(0);
    let cached = n("/prompt_tokens_details/cached_tokens");
    Usage {
        input_tokens: prompt.saturating_sub(cached.unwrap_or(0)),
        output_tokens: output,
        total_tokens: n("/total_tokens").unwrap_or(prompt + output),
        cache_read_tokens: cached,
        cache_write_tokens: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use expect_test::expect;
    use pincer_core::config::ProviderApi;
    use pincer_core::{Clock, FakeClock};
    use pincer_testkit::fakes::openai::{FakeError, FakeOpenAi, FakeUsage, Reply, split_text};
    use serde_json::json;

    use super::*;
    use crate::provider::ChatMessage;
    use crate::provider::testing::{Deltas, START_MS, drive_until, finish, provider_config, wait_until};

    fn provider(fake: &FakeOpenAi, clock: &FakeClock, timeouts: Timeouts) -> Arc<OpenAiProvider> {
        let config = provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]);
        Arc::new(OpenAiProvider::new("local", &config, clock.shared(), timeouts).unwrap())
    }

    async fn call(provider: &OpenAiProvider, req: &ChatRequest) -> (Result<ChatOutcome, ProviderError>, Vec<String>) {
        let deltas = Deltas::default();
        let result = finish(provider.complete(req, &deltas.sink())).await;
        (result, deltas.all())
    }

    #[tokio::test]
    async fn streams_text_and_usage_and_sends_the_documented_request() {
        let fake = FakeOpenAi::start().await;
        let text = "Hello, world! Streaming works.";
        let usage = FakeUsage { input: 21, output: 9, cache_read: 5, cache_write: 0 };
        fake.push(Reply::text(text).in_chunks(4).with_usage(usage));
        let clock = FakeClock::new(START_MS);
        let mut config = provider_config(ProviderApi::OpenAiCompletions, &format!("{}/", fake.base_url()), &[]);
        config.api_key = Some("sk-test".into());
        config.headers.insert("X-Org".into(), "acme".into());
        let provider = OpenAiProvider::new("openai", &config, clock.shared(), Timeouts::default()).unwrap();
        let req = ChatRequest {
            model: "gpt-4o-mini".into(),
            system: Some("Be brief.".into()),
            messages: vec![ChatMessage::user("Hi"), ChatMessage::assistant("Hello!"), ChatMessage::user("Stream?")],
            max_tokens: Some(100),
            stream: true,
            deadline_ms: None,
            tools: Vec::new(),
        };

        let (result, deltas) = call(&provider, &req).await;

        let outcome = result.unwrap();
        assert_eq!(deltas, split_text(text, 4));
        assert_eq!(deltas.len(), 4);
        assert_eq!(outcome.text, text);
        assert_eq!(
            outcome.usage,
            Usage {
                input_tokens: 21,
                output_tokens: 9,
                total_tokens: 35,
                cache_read_tokens: Some(5),
                cache_write_tokens: None
            }
        );
        assert_eq!((outcome.model.as_str(), outcome.finish_reason.as_deref()), ("gpt-4o-mini", Some("stop")));
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/v1/chat/completions");
        assert_eq!(requests[0].header("authorization"), Some("Bearer sk-test"));
        assert_eq!(requests[0].header("x-org"), Some("acme"));
        assert_eq!(requests[0].header("content-type"), Some("application/json"));
        assert_eq!(
            requests[0].body,
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Stream?"},
                ],
                "stream": true,
                "max_tokens": 100,
                "stream_options": {"include_usage": true},
            })
        );
    }

    #[tokio::test]
    async fn non_streaming_reply_without_api_key() {
        let fake = FakeOpenAi::start().await;
        fake.push(Reply::text("Whole answer.").with_usage(FakeUsage::new(12, 3)).with_finish("length"));
        let clock = FakeClock::new(START_MS);
        let provider = provider(&fake, &clock, Timeouts::default());
        let req = ChatRequest { stream: false, ..ChatRequest::new("llama3.2:3b", "Hi") };

        let (result, deltas) = call(&provider, &req).await;

        let outcome = result.unwrap();
        assert_eq!(deltas, ["Whole answer."]);
        assert_eq!(outcome.text, "Whole answer.");
        assert_eq!(
            outcome.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 3,
                total_tokens: 15,
                cache_read_tokens: None,
                cache_write_tokens: None
            }
        );
        assert_eq!(outcome.finish_reason.as_deref(), Some("length"));
        let request = &fake.requests()[0];
        assert_eq!(request.header("authorization"), None);
        assert_eq!(
            request.body,
            json!({"model": "llama3.2:3b", "messages": [{"role": "user", "content": "Hi"}], "stream": false})
        );
    }

    #[tokio::test]
    async fn no_reply_passes_through_as_text() {
        let fake = FakeOpenAi::start().await;
        fake.push(Reply::no_reply());
        let provider = provider(&fake, &FakeClock::new(START_MS), Timeouts::default());
        let (result, deltas) = call(&provider, &ChatRequest::new("m", "anything to do?")).await;
        assert_eq!(result.unwrap().text, "NO_REPLY");
        assert_eq!(deltas, ["NO_REPLY"]);
    }

    #[tokio::test]
    async fn http_errors_are_classified() {
        let fake = FakeOpenAi::start().await;
        let provider = provider(&fake, &FakeClock::new(START_MS), Timeouts::default());
        let cases = [
            (FakeError::RateLimited { retry_after_secs: Some(7) }, ErrorClass::RateLimit, 429, Some(7_000)),
            (FakeError::ServerError, ErrorClass::ServerError, 500, None),
            (FakeError::Overloaded, ErrorClass::Overloaded, 503, None),
            (FakeError::UnknownModel, ErrorClass::ModelNotFound, 404, None),
            (FakeError::Unauthorized, ErrorClass::Auth, 401, None),
            (FakeError::ContextOverflow, ErrorClass::ContextOverflow, 400, None),
        ];
        for stream in [true, false] {
            for (error, class, status, retry_after_ms) in cases {
                fake.push(Reply::error(error));
                let req = ChatRequest { stream, ..ChatRequest::new("gpt-9", "Hi") };
                let (result, deltas) = call(&provider, &req).await;
                let e = result.unwrap_err();
                assert_eq!((e.class, e.status, e.retry_after_ms), (class, Some(status), retry_after_ms), "{error:?}");
                assert!(!e.first_token_received);
                assert!(deltas.is_empty());
            }
        }
        fake.push(Reply::unknown_model());
        let e = call(&provider, &ChatRequest::new("gpt-9", "Hi")).await.0.unwrap_err();
        expect![[r#"HTTP 404: The model `gpt-9` does not exist or you do not have access to it. — check that `gpt-9` is a model this provider serves, and models.providers.local.baseUrl (POST http://127.0.0.1:PORT/v1/chat/completions) [model_not_found]"#]]
        .assert_eq(&e.to_string().replace(&fake.addr().port().to_string(), "PORT"));
        fake.push(Reply::unauthorized());
        let e = call(&provider, &ChatRequest::new("gpt-9", "Hi")).await.0.unwrap_err();
        assert!(e.message.ends_with("check models.providers.local.apiKey"), "{e}");
    }

    #[tokio::test]
    async fn malformed_and_empty_bodies() {
        let fake = FakeOpenAi::start().await;
        let provider = provider(&fake, &FakeClock::new(START_MS), Timeouts::default());
        for stream in [true, false] {
            let req = ChatRequest { stream, ..ChatRequest::new("m", "Hi") };
            fake.push(Reply::malformed());
            assert_eq!(call(&provider, &req).await.0.unwrap_err().class, ErrorClass::Format, "stream {stream}");
            fake.push(Reply::text(""));
            assert_eq!(call(&provider, &req).await.0.unwrap_err().class, ErrorClass::EmptyResponse, "stream {stream}");
            fake.push(Reply::text(" \n"));
            assert_eq!(call(&provider, &req).await.0.unwrap_err().class, ErrorClass::EmptyResponse, "stream {stream}");
        }
        // A stream that ends without `[DONE]` or a finish reason lost its tail.
        fake.push(Reply::raw_sse(["data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\n"]));
        let e = call(&provider, &ChatRequest::new("m", "Hi")).await.0.unwrap_err();
        assert_eq!((e.class, e.first_token_received), (ErrorClass::Network, true));
        // An error inside the stream, as some proxies send it.
        fake.push(Reply::error_after(2, FakeError::ServerError));
        let (result, deltas) = call(&provider, &ChatRequest::new("m", "Hi")).await;
        let e = result.unwrap_err();
        assert_eq!((e.class, e.status, e.first_token_received, deltas.len()), (ErrorClass::ServerError, None, true, 2));
    }

    #[tokio::test]
    async fn sse_framing_on_the_wire_crlf_comments_and_split_reads() {
        let fake = FakeOpenAi::start().await;
        let provider = provider(&fake, &FakeClock::new(START_MS), Timeouts::default());
        let body = concat!(
            ": OPENROUTER PROCESSING\r\n\r\n",
            "data: {\"model\":\"m-reported\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Grüße, \"}}]}\r\n\r\n",
            ":keepalive\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"✓ done\"},\"finish_reason\":null}]}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\r\n\r\n",
            "data: [DONE]",
        );
        fake.push(Reply::raw_sse(body.as_bytes().chunks(7).map(<[u8]>::to_vec)));

        let (result, deltas) = call(&provider, &ChatRequest::new("m", "Hi")).await;

        let outcome = result.unwrap();
        assert_eq!(deltas, ["Grüße, ", "✓ done"]);
        assert_eq!(outcome.text, "Grüße, ✓ done");
        assert_eq!(outcome.model, "m-reported");
        assert_eq!((outcome.usage.input_tokens, outcome.usage.output_tokens, outcome.usage.total_tokens), (4, 2, 6));
    }

    #[test]
    fn which_stream_events_count_as_output() {
        let step = |data: &str| {
            let mut answer = Answer::new("m");
            match stream_event(&mut answer, data).unwrap() {
                Step::Delta(text) => format!("delta {text}"),
                Step::Progress => "progress".into(),
                Step::Idle => "idle".into(),
                Step::Done => "done".into(),
            }
        };
        let cases = [
            (r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#, "idle"),
            (r#"{"choices":[{"delta":{"content":"hi"}}]}"#, "delta hi"),
            (r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#, "progress"),
            (r#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#, "progress"),
            (r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#, "progress"),
            (r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#, "progress"),
            (r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#, "progress"),
            (r#"{"choices":[{"delta":{"content":null}}],"usage":null}"#, "idle"),
            ("[DONE]", "done"),
        ];
        for (data, want) in cases {
            assert_eq!(step(data), want, "{data}");
        }
    }

    #[tokio::test]
    async fn connection_refused_is_a_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let config = provider_config(ProviderApi::OpenAiCompletions, &format!("http://{addr}/v1"), &[]);
        let provider =
            OpenAiProvider::new("local", &config, FakeClock::new(START_MS).shared(), Timeouts::default()).unwrap();
        let e = call(&provider, &ChatRequest::new("m", "Hi")).await.0.unwrap_err();
        assert_eq!((e.class, e.status, e.first_token_received), (ErrorClass::Network, None, false));
        assert!(e.message.contains("check models.providers.local.baseUrl"), "{e}");
    }

    #[tokio::test]
    async fn stalled_stream_times_out_on_the_stall_timer() {
        let fake = FakeOpenAi::start().await;
        fake.push(Reply::stall_after(2));
        let clock = FakeClock::new(START_MS);
        let timeouts = Timeouts { first_token_ms: 60_000, stall_ms: 10_000, ..Timeouts::default() };
        let provider = provider(&fake, &clock, timeouts);
        let deltas = Deltas::default();
        let task = tokio::spawn({
            let (provider, sink) = (provider.clone(), deltas.sink());
            async move { provider.complete(&ChatRequest::new("m", "Hi"), &sink).await }
        });
        wait_until(|| deltas.len() == 2).await;
        drive_until(&clock, 250, || task.is_finished()).await;

        let e = finish(task).await.unwrap().unwrap_err();
        assert_eq!((e.class, e.first_token_received), (ErrorClass::Timeout, true));
        assert!(e.message.contains("stalled: nothing arrived for 10 s"), "{e}");
        let waited = clock.now_ms() - START_MS;
        assert!((10_000..=10_250).contains(&waited), "waited {waited} ms");
    }

    #[tokio::test]
    async fn no_first_token_times_out_streaming_or_not() {
        for stream in [true, false] {
            let fake = FakeOpenAi::start().await;
            fake.push(Reply::stall_after(0));
            let clock = FakeClock::new(START_MS);
            let timeouts = Timeouts { first_token_ms: 30_000, stall_ms: 60_000, ..Timeouts::default() };
            let provider = provider(&fake, &clock, timeouts);
            let task = tokio::spawn({
                let provider = provider.clone();
                async move {
                    let req = ChatRequest { stream, ..ChatRequest::new("m", "Hi") };
                    provider.complete(&req, &|_: &str| {}).await
                }
            });
            fake.wait_for_requests(1).await;
            drive_until(&clock, 500, || task.is_finished()).await;

            let e = finish(task).await.unwrap().unwrap_err();
            assert_eq!((e.class, e.first_token_received), (ErrorClass::Timeout, false));
            assert!(e.message.starts_with("no reply from the model within 30 s"), "{e}");
            let waited = clock.now_ms() - START_MS;
            assert!((30_000..=30_500).contains(&waited), "stream {stream}: waited {waited} ms");
        }
    }

    #[tokio::test]
    async fn the_run_deadline_cancels_a_streaming_call() {
        let fake = FakeOpenAi::start().await;
        fake.push(Reply::stall_after(1));
        let clock = FakeClock::new(START_MS);
        let provider = provider(&fake, &clock, Timeouts::default());
        let deltas = Deltas::default();
        let task = tokio::spawn({
            let (provider, sink) = (provider.clone(), deltas.sink());
            let req = ChatRequest { deadline_ms: Some(START_MS + 5_000), ..ChatRequest::new("m", "Hi") };
            async move { provider.complete(&req, &sink).await }
        });
        wait_until(|| deltas.len() == 1).await;
        drive_until(&clock, 100, || task.is_finished()).await;

        let e = finish(task).await.unwrap().unwrap_err();
        assert_eq!((e.class, e.first_token_received), (ErrorClass::Timeout, true));
        assert!(e.message.contains("time limit"), "{e}");
        assert!((5_000..=5_100).contains(&(clock.now_ms() - START_MS)));

        // A deadline already past sends nothing.
        let req = ChatRequest { deadline_ms: Some(clock.now_ms()), ..ChatRequest::new("m", "Hi") };
        let e = finish(provider.complete(&req, &|_: &str| {})).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Timeout);
        assert_eq!(fake.request_count(), 1);
    }
}
