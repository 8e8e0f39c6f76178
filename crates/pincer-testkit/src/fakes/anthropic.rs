//! A fake Anthropic messages server (`POST /v1/messages`); `base_url()` has no `/v1`, like
//! `https://api.anthropic.com`. Scripting and recording are shared with [`super::openai`].

use axum::response::Response;
use serde_json::{Value, json};

pub use super::openai::{FakeError, FakeModel, FakeToolCall, FakeUsage, Gate, ModelRequest, Reply, split_text};
use super::openai::{
    Wire, hanging_json_response, json_response, paced_events, paced_json_response, paced_sse_response, raw_response,
    sse_response,
};

/// The Anthropic messages wire.
pub struct AnthropicWire;

/// A fake Anthropic server.
pub type FakeAnthropic = FakeModel<AnthropicWire>;

impl AnthropicWire {
    fn error(error: FakeError, model: &str) -> (u16, Vec<(&'static str, String)>, Value) {
        let (status, kind, message) = match error {
            FakeError::RateLimited { .. } => (
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit (https://docs.anthropic.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.".to_string(),
            ),
            FakeError::ServerError => (500, "api_error", "Internal server error".to_string()),
            FakeError::Overloaded => (529, "overloaded_error", "Overloaded".to_string()),
            FakeError::UnknownModel => (404, "not_found_error", format!("model: {model}")),
            FakeError::Unauthorized => (401, "authentication_error", "invalid x-api-key".to_string()),
            FakeError::ContextOverflow => {
                (400, "invalid_request_error", "prompt is too long: 212345 tokens > 200000 maximum".to_string())
            }
        };
        let mut headers = vec![("request-id", "req_fake".to_string())];
        if let FakeError::RateLimited { retry_after_secs: Some(secs) } = error {
            headers.push(("retry-after", secs.to_string()));
        }
        let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"});
        (status, headers, body)
    }

    fn event(name: &str, data: Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn usage(usage: FakeUsage) -> Value {
        json!({
            "input_tokens": usage.input,
            "cache_creation_input_tokens": usage.cache_write,
            "cache_read_input_tokens": usage.cache_read,
            "output_tokens": usage.output,
        })
    }

    /// A text block (when there is text) and one `tool_use` block per call, its input streamed as
    /// `input_json_delta` pieces; then the closing events with `stop_reason: "tool_use"`.
    fn tool_call_events(
        model: &str,
        text: &str,
        calls: &[FakeToolCall],
        chunks: usize,
        usage: FakeUsage,
    ) -> Vec<String> {
        let mut events = Self::text_events(model, &split_text(text, chunks), usage);
        // `text_events` opened text block 0 (empty when there is no text); close it as a server would.
        events.push(Self::event("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        let mut index = 0;
        for call in calls {
            index += 1;
            events.push(Self::event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                       "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
            ));
            for piece in split_text(&call.arguments, chunks) {
                events.push(Self::event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
            events.push(Self::event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
        events.push(Self::event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"output_tokens": usage.output}}),
        ));
        events.push(Self::event("message_stop", json!({"type": "message_stop"})));
        events
    }

    /// A whole `message` that calls tools; input that is not JSON is sent as a string, as a buggy
    /// server might.
    fn tool_call_message(model: &str, text: &str, calls: &[FakeToolCall], usage: FakeUsage) -> Value {
        let mut message = Self::message(model, text, usage, Some("tool_use"));
        let mut content: Vec<Value> =
            if text.is_empty() { Vec::new() } else { vec![json!({"type": "text", "text": text})] };
        for call in calls {
            let input = serde_json::from_str::<Value>(&call.arguments).unwrap_or_else(|_| json!(call.arguments));
            content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
        }
        message["content"] = json!(content);
        message
    }

    /// `content_block_stop`, `message_delta` (stop reason, output usage) and `message_stop`.
    fn closing_events(finish: Option<&str>, usage: FakeUsage) -> Vec<String> {
        vec![
            Self::event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            Self::event(
                "message_delta",
                json!({"type": "message_delta",
                       "delta": {"stop_reason": finish.unwrap_or("end_turn"), "stop_sequence": null},
                       "usage": {"output_tokens": usage.output}}),
            ),
            Self::event("message_stop", json!({"type": "message_stop"})),
        ]
    }

    /// A whole `message`.
    fn message(model: &str, text: &str, usage: FakeUsage, finish: Option<&str>) -> Value {
        json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": finish.unwrap_or("end_turn"), "stop_sequence": null,
            "usage": Self::usage(usage),
        })
    }

    /// `message_start`, the text block's start, a `ping`, then one delta per piece.
    fn text_events(model: &str, pieces: &[String], usage: FakeUsage) -> Vec<String> {
        let mut start_usage = Self::usage(usage);
        start_usage["output_tokens"] = json!(1);
        let mut events = vec![
            Self::event(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": null, "stop_sequence": null, "usage": start_usage,
                }}),
            ),
            Self::event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            Self::event("ping", json!({"type": "ping"})),
        ];
        events.extend(pieces.iter().map(|piece| {
            Self::event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            )
        }));
        events
    }
}

impl Wire for AnthropicWire {
    const PATH: &'static str = "/v1/messages";
    const BASE_SUFFIX: &'static str = "";

    fn render(reply: &Reply, request: &ModelRequest) -> Response {
        let model = request.model().unwrap_or("claude-fake");
        let http_error = |error: FakeError| {
            let (status, headers, body) = Self::error(error, model);
            json_response(status, &headers, &body)
        };
        match reply {
            Reply::Text { text, chunks, usage, finish } if request.stream() => {
                let mut events = Self::text_events(model, &split_text(text, *chunks), *usage);
                events.extend(Self::closing_events(finish.as_deref(), *usage));
                sse_response(events, false)
            }
            Reply::Text { text, usage, finish, .. } => {
                json_response(200, &[], &Self::message(model, text, *usage, finish.as_deref()))
            }
            Reply::ToolCalls { text, calls, chunks, usage } if request.stream() => {
                sse_response(Self::tool_call_events(model, text, calls, *chunks, *usage), false)
            }
            Reply::ToolCalls { text, calls, usage, .. } => {
                json_response(200, &[], &Self::tool_call_message(model, text, calls, *usage))
            }
            Reply::Paced { text, chunks, gate } if request.stream() => {
                let (pieces, usage) = (split_text(text, *chunks), FakeUsage::new(10, 5));
                let closing = Self::closing_events(None, usage);
                let (ready, gated) = paced_events(Self::text_events(model, &pieces, usage), pieces.len(), closing);
                paced_sse_response(ready, gated, gate.clone())
            }
            Reply::Paced { text, gate, .. } => {
                paced_json_response(&Self::message(model, text, FakeUsage::new(10, 5), None), gate.clone())
            }
            // `handle` answers these before rendering: it never answers a hang, and resets the
            // connection where a stall would begin.
            Reply::Hang => hanging_json_response(),
            Reply::ResetAfter { text, chunks, after_chunks } => Self::render(
                &Reply::Stall { text: text.clone(), chunks: *chunks, after_chunks: *after_chunks },
                request,
            ),
            Reply::Error(error) => http_error(*error),
            Reply::Malformed if request.stream() => {
                sse_response(vec!["event: message_start\ndata: {\"type\":\"message_st\n\n".to_string()], false)
            }
            Reply::Malformed => raw_response(
                200,
                &[("content-type".into(), "application/json".into())],
                &[b"{\"id\":\"msg_fake\",\"content\":[".to_vec()],
            ),
            Reply::Stall { text, chunks, after_chunks } if request.stream() => {
                let pieces: Vec<String> = split_text(text, *chunks).into_iter().take(*after_chunks).collect();
                sse_response(Self::text_events(model, &pieces, FakeUsage::new(10, 5)), true)
            }
            Reply::Stall { .. } => hanging_json_response(),
            Reply::StreamError { text, chunks, after_chunks, error } if request.stream() => {
                let pieces: Vec<String> = split_text(text, *chunks).into_iter().take(*after_chunks).collect();
                let mut events = Self::text_events(model, &pieces, FakeUsage::new(10, 5));
                let (_, _, body) = Self::error(*error, model);
                events.push(Self::event("error", body));
                sse_response(events, false)
            }
            Reply::StreamError { error, .. } => http_error(*error),
            Reply::Raw { status, headers, chunks } => raw_response(*status, headers, chunks),
        }
    }
}
