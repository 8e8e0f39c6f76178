//! A fake OpenAI-compatible server (`POST /v1/chat/completions`), plus the scripting core it
//! shares with [`super::anthropic`]: a queue of [`Reply`]s (per model id or global, then a sticky
//! reply per model, then a default), and a record of every request with the [`Instant`] it
//! arrived.
//!
//! Replies follow the request: a `Reply::text` is streamed as SSE in N chunks when the request
//! says `stream: true`, and sent as one JSON body otherwise. Errors use each platform's real
//! status codes, headers and body shapes.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::webhook::harness::{self, Conn};

/// Token counts a fake reports. `input` excludes cached tokens; each platform renders them its
/// own way (OpenAI: `prompt_tokens = input + cache_read`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl FakeUsage {
    pub fn new(input: u64, output: u64) -> FakeUsage {
        FakeUsage { input, output, cache_read: 0, cache_write: 0 }
    }
}

/// An HTTP error, rendered in the platform's real shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeError {
    /// 429, with `retry-after: <secs>` when given.
    RateLimited { retry_after_secs: Option<u64> },
    /// 500.
    ServerError,
    /// OpenAI 503; Anthropic 529 `overloaded_error`.
    Overloaded,
    /// 404 for the requested model.
    UnknownModel,
    /// 401, a bad API key.
    Unauthorized,
    /// 400, the prompt exceeds the context window.
    ContextOverflow,
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Text, streamed in `chunks` pieces (or sent whole), with `usage` and a finish reason
    /// (`None` = the platform's normal one).
    Text { text: String, chunks: usize, usage: FakeUsage, finish: Option<String> },
    /// An HTTP error.
    Error(FakeError),
    /// A 200 whose body (or, streaming, whose first event) is not valid JSON.
    Malformed,
    /// Streams the first `after_chunks` of `chunks` pieces of `text`, then sends nothing more and
    /// holds the connection open. A non-streaming request gets the headers and no body.
    Stall { text: String, chunks: usize, after_chunks: usize },
    /// Streams `after_chunks` pieces, then an error inside the stream. A non-streaming request
    /// gets the error as an HTTP error.
    StreamError { text: String, chunks: usize, after_chunks: usize, error: FakeError },
    /// Exactly these bytes, each element written as its own chunk.
    Raw { status: u16, headers: Vec<(String, String)>, chunks: Vec<Vec<u8>> },
    /// Reads the request and never answers: no status line, no headers.
    Hang,
    /// Text whose pieces are held back until the test lets them go with [`Gate::release`]: a slow
    /// model, as slow as the test's (fake) clock says. Streaming, the head and the events before
    /// the first piece go at once and each piece waits for one release (the events that end the
    /// reply go with the last piece); not streaming, the head goes at once and the body waits for
    /// one release.
    Paced { text: String, chunks: usize, gate: Gate },
    /// Streams the first `after_chunks` of `chunks` pieces of `text`, then resets the connection
    /// (TCP RST). A non-streaming request gets the head and half of the JSON body, then the reset.
    ResetAfter { text: String, chunks: usize, after_chunks: usize },
    /// Calls tools (several in one reply are parallel calls), after an optional `text`: streamed,
    /// each call's arguments arrive in `chunks` pieces, as the platforms send them.
    ToolCalls { text: String, calls: Vec<FakeToolCall>, chunks: usize, usage: FakeUsage },
}

/// One tool call a fake model makes. `arguments` is the JSON text as sent, so it can be malformed.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl FakeToolCall {
    /// A call with these exact argument bytes.
    pub fn raw(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> FakeToolCall {
        FakeToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    /// A call whose arguments are `args` serialised.
    pub fn new(id: impl Into<String>, name: impl Into<String>, args: Value) -> FakeToolCall {
        FakeToolCall::raw(id, name, args.to_string())
    }
}

/// Holds back the pieces of a [`Reply::Paced`] until the test releases them.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(tokio::sync::Semaphore::new(0)))
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets `n` more pieces go.
    pub fn release(&self, n: usize) {
        self.0.add_permits(n);
    }

    /// Waits for one release.
    async fn pass(&self) {
        if let Ok(permit) = self.0.acquire().await {
            permit.forget();
        }
    }
}

impl Reply {
    /// Text in 3 chunks, usage 10 in / 5 out.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Text { text: text.into(), chunks: 3, usage: FakeUsage::new(10, 5), finish: None }
    }

    /// The silent-reply token, as a model would send it.
    pub fn no_reply() -> Reply {
        Reply::text("NO_REPLY").in_chunks(1)
    }

    pub fn error(error: FakeError) -> Reply {
        Reply::Error(error)
    }

    pub fn rate_limited(retry_after_secs: Option<u64>) -> Reply {
        Reply::Error(FakeError::RateLimited { retry_after_secs })
    }

    pub fn server_error() -> Reply {
        Reply::Error(FakeError::ServerError)
    }

    pub fn overloaded() -> Reply {
        Reply::Error(FakeError::Overloaded)
    }

    pub fn unknown_model() -> Reply {
        Reply::Error(FakeError::UnknownModel)
    }

    pub fn unauthorized() -> Reply {
        Reply::Error(FakeError::Unauthorized)
    }

    pub fn context_overflow() -> Reply {
        Reply::Error(FakeError::ContextOverflow)
    }

    pub fn malformed() -> Reply {
        Reply::Malformed
    }

    /// Six chunks of a sentence, of which only the first `after_chunks` are ever sent.
    pub fn stall_after(after_chunks: usize) -> Reply {
        Reply::Stall { text: "This answer never finishes, the server stops.".into(), chunks: 6, after_chunks }
    }

    /// Six chunks of a sentence; after `after_chunks` of them, `error` arrives in the stream.
    pub fn error_after(after_chunks: usize, error: FakeError) -> Reply {
        Reply::StreamError { text: "This answer breaks off with an error.".into(), chunks: 6, after_chunks, error }
    }

    /// Never answers the request.
    pub fn hang() -> Reply {
        Reply::Hang
    }

    /// `text` in `chunks` pieces, each sent when `gate` is released once.
    pub fn paced(text: impl Into<String>, chunks: usize, gate: &Gate) -> Reply {
        Reply::Paced { text: text.into(), chunks: chunks.max(1), gate: gate.clone() }
    }

    /// Six chunks of a sentence, of which the first `after_chunks` are sent before the connection
    /// is reset.
    pub fn reset_after(after_chunks: usize) -> Reply {
        Reply::ResetAfter { text: "This answer is cut off by a connection reset.".into(), chunks: 6, after_chunks }
    }

    /// Calls these tools (in parallel, when there are several), arguments streamed in 3 pieces.
    pub fn tool_calls(calls: Vec<FakeToolCall>) -> Reply {
        Reply::ToolCalls { text: String::new(), calls, chunks: 3, usage: FakeUsage::new(10, 5) }
    }

    /// Calls one tool with `args`; its id is `call_<name>`.
    pub fn tool_call(name: &str, args: Value) -> Reply {
        Reply::tool_calls(vec![FakeToolCall::new(format!("call_{name}"), name, args)])
    }

    /// Sets the text a tool-calling reply writes before its calls.
    pub fn with_text(mut self, new: impl Into<String>) -> Reply {
        if let Reply::ToolCalls { text, .. } = &mut self {
            *text = new.into();
        }
        self
    }

    /// A 200 event stream made of exactly these pieces.
    pub fn raw_sse<I, C>(chunks: I) -> Reply
    where
        I: IntoIterator<Item = C>,
        C: Into<Vec<u8>>,
    {
        Reply::Raw {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: chunks.into_iter().map(Into::into).collect(),
        }
    }

    /// Sets the number of pieces a text is streamed in.
    pub fn in_chunks(mut self, n: usize) -> Reply {
        if let Reply::Text { chunks, .. }
        | Reply::Stall { chunks, .. }
        | Reply::StreamError { chunks, .. }
        | Reply::Paced { chunks, .. }
        | Reply::ResetAfter { chunks, .. }
        | Reply::ToolCalls { chunks, .. } = &mut self
        {
            *chunks = n.max(1);
        }
        self
    }

    /// Sets the usage a text reports.
    pub fn with_usage(mut self, new: FakeUsage) -> Reply {
        if let Reply::Text { usage, .. } | Reply::ToolCalls { usage, .. } = &mut self {
            *usage = new;
        }
        self
    }

    /// Sets the finish reason a text reports.
    pub fn with_finish(mut self, reason: impl Into<String>) -> Reply {
        if let Reply::Text { finish, .. } = &mut self {
            *finish = Some(reason.into());
        }
        self
    }
}

/// Splits `text` into at most `n` pieces of nearly equal length (in characters).
pub fn split_text(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A request the fake accepted.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// When the request head arrived (before the body was read).
    pub at: Instant,
    /// The same moment on the wall clock, in microseconds since the Unix epoch (to compare with
    /// timestamps another process wrote).
    pub at_unix_us: u64,
    pub path: String,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The number of the connection it came over (see [`harness::Conn::id`]): equal numbers mean
    /// the client kept the connection alive and reused it.
    pub connection: u64,
}

impl ModelRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    pub fn stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool).unwrap_or(false)
    }
}

/// How one platform's API looks on the wire.
pub trait Wire: Send + Sync + 'static {
    /// The route the fake serves.
    const PATH: &'static str;
    /// What [`FakeModel::base_url`] appends to `http://127.0.0.1:<port>`.
    const BASE_SUFFIX: &'static str;
    /// Renders `reply` as an answer to `request`.
    fn render(reply: &Reply, request: &ModelRequest) -> Response;
}

struct Script {
    queue: VecDeque<Reply>,
    queue_for: HashMap<String, VecDeque<Reply>>,
    sticky_for: HashMap<String, Reply>,
    default: Reply,
    requests: Vec<ModelRequest>,
    /// Wall-clock microseconds at which each response body was fully handed to the socket.
    finished_unix_us: Vec<u64>,
    /// The same, with the index of the request each answered.
    finished_by_request: Vec<(usize, u64)>,
    /// The default reply echoes the request's new user text (see [`FakeModel::set_echo`]).
    echo: bool,
}

struct Shared {
    script: Mutex<Script>,
    seen: watch::Sender<usize>,
}

/// A fake model server speaking wire `W` on 127.0.0.1.
pub struct FakeModel<W: Wire> {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Stops serving (and drops every hung request) when the fake is dropped.
    _server: harness::Server,
    wire: PhantomData<W>,
}

/// The OpenAI chat-completions wire.
pub struct OpenAiWire;

/// A fake OpenAI-compatible server; `base_url()` ends with `/v1`.
pub type FakeOpenAi = FakeModel<OpenAiWire>;

impl<W: Wire> FakeModel<W> {
    /// Starts the server on an ephemeral port. The default reply is `Reply::text("Hello from
    /// the fake model.")`.
    pub async fn start() -> FakeModel<W> {
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                queue_for: HashMap::new(),
                sticky_for: HashMap::new(),
                default: Reply::text("Hello from the fake model."),
                requests: Vec::new(),
                finished_unix_us: Vec::new(),
                finished_by_request: Vec::new(),
                echo: false,
            }),
            seen: watch::Sender::new(0),
        });
        let app = Router::new().route(W::PATH, post(handle::<W>)).with_state(shared.clone());
        // Its own thread and runtime, like every fake: a test that blocks its thread (waiting for
        // a child process, `GatewayProcess::wait_exit`) must not stop the model from answering.
        let server = harness::Server::start(app).await;
        FakeModel { addr: server.addr(), shared, _server: server, wire: PhantomData }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to put in `models.providers.<name>.baseUrl`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, W::BASE_SUFFIX)
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a reply for the next request, whatever its model.
    pub fn push(&self, reply: Reply) {
        self.script().queue.push_back(reply);
    }

    /// Queues a reply for the next request for `model`; it goes before the global queue.
    pub fn push_for(&self, model: &str, reply: Reply) {
        self.script().queue_for.entry(model.to_string()).or_default().push_back(reply);
    }

    /// Answers every request for `model` with `reply` once the queues are empty.
    pub fn reply_for(&self, model: &str, reply: Reply) {
        self.script().sticky_for.insert(model.to_string(), reply);
    }

    /// The reply when nothing else applies.
    pub fn set_default(&self, reply: Reply) {
        self.script().default = reply;
    }

    /// With `on`, the reply when nothing else applies is `echo: <text>`, where the text is every
    /// user message after the request's last assistant message, joined by newlines: what a
    /// benchmark needs to tell which messages each reply answers.
    pub fn set_echo(&self, on: bool) {
        self.script().echo = on;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.script().requests.clone()
    }

    /// When each response body ended (its last byte written), in microseconds since the Unix
    /// epoch, in completion order. Hanging responses never appear.
    pub fn finished_unix_us(&self) -> Vec<u64> {
        self.script().finished_unix_us.clone()
    }

    /// When each response body ended, with the index (in [`FakeModel::requests`]) of the request
    /// it answered, in completion order.
    pub fn finished_by_request(&self) -> Vec<(usize, u64)> {
        self.script().finished_by_request.clone()
    }

    pub fn request_count(&self) -> usize {
        *self.shared.seen.borrow()
    }

    /// Waits (in real time, at most 10 s) until `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.shared.seen.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|seen| *seen >= n)).await;
        assert!(waited.is_ok(), "the fake saw {} requests after 10 s, expected {n}", self.request_count());
    }
}

async fn handle<W: Wire>(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = Instant::now();
    let at_unix_us = unix_us();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let recorded = ModelRequest {
        at,
        at_unix_us,
        path: parts.uri.path().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        connection: parts.extensions.get::<ConnectInfo<Conn>>().map_or(0, |ConnectInfo(conn)| conn.id()),
    };
    let (reply, index) = {
        let mut script = shared.script.lock().unwrap_or_else(|e| e.into_inner());
        let model = recorded.model().unwrap_or_default().to_string();
        script.requests.push(recorded.clone());
        let index = script.requests.len() - 1;
        let queued = script.queue_for.get_mut(&model).and_then(VecDeque::pop_front);
        let reply = queued.or_else(|| script.queue.pop_front()).or_else(|| script.sticky_for.get(&model).cloned());
        let reply = match reply {
            Some(reply) => reply,
            None if script.echo => Reply::text(format!("echo: {}", new_user_text(&recorded.body))),
            None => script.default.clone(),
        };
        (reply, index)
    };
    shared.seen.send_modify(|seen| *seen += 1);
    match reply {
        Reply::Hang => return harness::hang().await,
        Reply::ResetAfter { text, chunks, after_chunks } => {
            let Some(ConnectInfo(conn)) = parts.extensions.get::<ConnectInfo<Conn>>().cloned() else {
                unreachable!("the fake is served with connection info")
            };
            return if recorded.stream() {
                let stalled = W::render(&Reply::Stall { text, chunks, after_chunks }, &recorded);
                let (head, body) = stalled.into_parts();
                Response::from_parts(head, harness::reset_when_stalled(&conn, body))
            } else {
                harness::break_off(&conn, W::render(&Reply::text(text), &recorded)).await
            };
        }
        _ => {}
    }
    let (head, body) = W::render(&reply, &recorded).into_parts();
    // An empty final chunk (hyper writes nothing for it) that records when the body ended.
    let tail = stream::once(async move {
        let mut script = shared.script.lock().unwrap_or_else(|e| e.into_inner());
        let now = unix_us();
        script.finished_unix_us.push(now);
        script.finished_by_request.push((index, now));
        Ok::<Bytes, axum::Error>(Bytes::new())
    });
    Response::from_parts(head, Body::from_stream(body.into_data_stream().chain(tail)))
}

/// The user messages after the last assistant message of a chat request (OpenAI's or
/// Anthropic's shape: `content` as text or as a list of text blocks), joined by newlines.
pub fn new_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let text_of = |m: &Value| match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    };
    let start = messages.iter().rposition(|m| m["role"] == "assistant").map_or(0, |i| i + 1);
    messages[start..].iter().filter(|m| m["role"] == "user").map(text_of).collect::<Vec<_>>().join("\n")
}

fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A 200 `text/event-stream` written one element at a time; with `hang`, the body then never
/// ends (and never sends another byte).
pub fn sse_response(events: Vec<String>, hang: bool) -> Response {
    let items = stream::iter(events.into_iter().map(|e| Ok::<Bytes, Infallible>(Bytes::from(e))));
    let body = if hang { Body::from_stream(items.chain(stream::pending())) } else { Body::from_stream(items) };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .expect("valid response")
}

/// A 200 `text/event-stream`: `ready` at once, then each of `gated` after one release of `gate`.
pub fn paced_sse_response(ready: Vec<String>, gated: Vec<String>, gate: Gate) -> Response {
    let ready = stream::iter(ready.into_iter().map(|e| Ok::<Bytes, Infallible>(Bytes::from(e))));
    let gated = stream::iter(gated).then(move |event| {
        let gate = gate.clone();
        async move {
            gate.pass().await;
            Ok::<Bytes, Infallible>(Bytes::from(event))
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(ready.chain(gated)))
        .expect("valid response")
}

/// A 200 JSON response whose head goes at once and whose body waits for one release of `gate`.
pub fn paced_json_response(body: &Value, gate: Gate) -> Response {
    let body = body.to_string();
    let body = stream::once(async move {
        gate.pass().await;
        Ok::<Bytes, Infallible>(Bytes::from(body))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .expect("valid response")
}

/// The pieces of a paced stream: the events before the first piece at once, then one per piece,
/// with the closing events riding on the last piece.
pub(super) fn paced_events(mut events: Vec<String>, pieces: usize, tail: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut gated = events.split_off(events.len() - pieces);
    match gated.last_mut() {
        Some(last) => last.push_str(&tail.concat()),
        None => gated.push(tail.concat()),
    }
    (events, gated)
}

/// A JSON response with extra headers.
pub fn json_response(status: u16, headers: &[(&str, String)], body: &Value) -> Response {
    let mut builder = Response::builder().status(status).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder.body(Body::from(body.to_string())).expect("valid response")
}

/// A 200 JSON response whose body never arrives.
pub fn hanging_json_response() -> Response {
    let body = Body::from_stream(stream::pending::<Result<Bytes, Infallible>>());
    Response::builder().status(StatusCode::OK).header("content-type", "application/json").body(body).expect("valid")
}

/// Exactly the scripted bytes.
pub fn raw_response(status: u16, headers: &[(String, String)], chunks: &[Vec<u8>]) -> Response {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let items: Vec<Result<Bytes, Infallible>> = chunks.iter().map(|c| Ok(Bytes::from(c.clone()))).collect();
    builder.body(Body::from_stream(stream::iter(items))).expect("valid response")
}

impl OpenAiWire {
    fn error(error: FakeError, model: &str) -> (u16, Vec<(&'static str, String)>, Value) {
        let body = |message: &str, kind: &str, param: Value, code: Value| json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
        match error {
            FakeError::RateLimited { retry_after_secs } => {
                let wait = retry_after_secs.unwrap_or(1);
                let mut headers = vec![
                    ("x-ratelimit-limit-requests", "3".to_string()),
                    ("x-ratelimit-remaining-requests", "0".to_string()),
                ];
                if let Some(secs) = retry_after_secs {
                    headers.push(("retry-after", secs.to_string()));
                }
                let message = format!(
                    "Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in {wait}s."
                );
                (429, headers, body(&message, "requests", Value::Null, json!("rate_limit_exceeded")))
            }
            FakeError::ServerError => (
                500,
                vec![],
                body(
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    Value::Null,
                    Value::Null,
                ),
            ),
            FakeError::Overloaded => (
                503,
                vec![],
                body(
                    "The engine is currently overloaded, please try again later",
                    "server_error",
                    Value::Null,
                    Value::Null,
                ),
            ),
            FakeError::UnknownModel => (
                404,
                vec![],
                body(
                    &format!("The model `{model}` does not exist or you do not have access to it."),
                    "invalid_request_error",
                    Value::Null,
                    json!("model_not_found"),
                ),
            ),
            FakeError::Unauthorized => (
                401,
                vec![],
                body(
                    "Incorrect API key provided: sk-fake***. You can find your API key at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    Value::Null,
                    json!("invalid_api_key"),
                ),
            ),
            FakeError::ContextOverflow => (
                400,
                vec![],
                body(
                    "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.",
                    "invalid_request_error",
                    json!("messages"),
                    json!("context_length_exceeded"),
                ),
            ),
        }
    }

    fn chunk(model: &str, delta: Value, finish: Option<&str>, include_usage: bool) -> String {
        let mut chunk = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        format!("data: {chunk}\n\n")
    }

    fn usage(usage: FakeUsage) -> Value {
        let prompt = usage.input + usage.cache_read;
        let mut value = json!({
            "prompt_tokens": prompt,
            "completion_tokens": usage.output,
            "total_tokens": prompt + usage.output,
        });
        if usage.cache_read > 0 {
            value["prompt_tokens_details"] = json!({"cached_tokens": usage.cache_read});
        }
        value
    }

    /// The finish chunk, the usage chunk (when the request asked for it) and `[DONE]`.
    fn closing_events(model: &str, finish: Option<&str>, usage: FakeUsage, include_usage: bool) -> Vec<String> {
        let mut events = vec![Self::chunk(model, json!({}), Some(finish.unwrap_or("stop")), include_usage)];
        if include_usage {
            let last = json!({
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": [], "usage": Self::usage(usage),
            });
            events.push(format!("data: {last}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_string());
        events
    }

    /// A whole `chat.completion`.
    fn completion(model: &str, text: &str, usage: FakeUsage, finish: Option<&str>) -> Value {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": finish.unwrap_or("stop"),
            }],
            "usage": Self::usage(usage),
        })
    }

    /// The role chunk, the text, then each call: its id and name, then its arguments in pieces.
    fn tool_call_events(
        model: &str,
        text: &str,
        calls: &[FakeToolCall],
        chunks: usize,
        include_usage: bool,
    ) -> Vec<String> {
        let mut events = Self::text_events(model, &split_text(text, chunks), include_usage);
        for (index, call) in calls.iter().enumerate() {
            let head = json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}]});
            events.push(Self::chunk(model, head, None, include_usage));
            for piece in split_text(&call.arguments, chunks) {
                let delta = json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
                events.push(Self::chunk(model, delta, None, include_usage));
            }
        }
        events
    }

    /// A whole `chat.completion` that calls tools.
    fn tool_call_completion(model: &str, text: &str, calls: &[FakeToolCall], usage: FakeUsage) -> Value {
        let mut completion = Self::completion(model, text, usage, Some("tool_calls"));
        let calls: Vec<Value> = calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        completion["choices"][0]["message"]["tool_calls"] = json!(calls);
        if text.is_empty() {
            completion["choices"][0]["message"]["content"] = Value::Null;
        }
        completion
    }

    /// The role chunk and then one chunk per piece.
    fn text_events(model: &str, pieces: &[String], include_usage: bool) -> Vec<String> {
        let mut events = vec![Self::chunk(model, json!({"role": "assistant", "content": ""}), None, include_usage)];
        events.extend(pieces.iter().map(|p| Self::chunk(model, json!({"content": p}), None, include_usage)));
        events
    }
}

impl Wire for OpenAiWire {
    const PATH: &'static str = "/v1/chat/completions";
    const BASE_SUFFIX: &'static str = "/v1";

    fn render(reply: &Reply, request: &ModelRequest) -> Response {
        let model = request.model().unwrap_or("gpt-fake");
        let include_usage = request.body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
        let http_error = |error: FakeError| {
            let (status, headers, body) = Self::error(error, model);
            json_response(status, &headers, &body)
        };
        match reply {
            Reply::Text { text, chunks, usage, finish } if request.stream() => {
                let mut events = Self::text_events(model, &split_text(text, *chunks), include_usage);
                events.extend(Self::closing_events(model, finish.as_deref(), *usage, include_usage));
                sse_response(events, false)
            }
            Reply::Text { text, usage, finish, .. } => {
                json_response(200, &[], &Self::completion(model, text, *usage, finish.as_deref()))
            }
            Reply::ToolCalls { text, calls, chunks, usage } if request.stream() => {
                let mut events = Self::tool_call_events(model, text, calls, *chunks, include_usage);
                events.extend(Self::closing_events(model, Some("tool_calls"), *usage, include_usage));
                sse_response(events, false)
            }
            Reply::ToolCalls { text, calls, usage, .. } => {
                json_response(200, &[], &Self::tool_call_completion(model, text, calls, *usage))
            }
            Reply::Paced { text, chunks, gate } if request.stream() => {
                let pieces = split_text(text, *chunks);
                let closing = Self::closing_events(model, None, FakeUsage::new(10, 5), include_usage);
                let (ready, gated) =
                    paced_events(Self::text_events(model, &pieces, include_usage), pieces.len(), closing);
                paced_sse_response(ready, gated, gate.clone())
            }
            Reply::Paced { text, gate, .. } => {
                paced_json_response(&Self::completion(model, text, FakeUsage::new(10, 5), None), gate.clone())
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
                sse_response(vec!["data: {\"id\":\"chatcmpl-fake\",\"choices\":[{\"delta\":\n\n".to_string()], false)
            }
            Reply::Malformed => raw_response(
                200,
                &[("content-type".into(), "application/json".into())],
                &[b"{\"id\":\"chatcmpl-fake\",\"choices\":[{\"message\":".to_vec()],
            ),
            Reply::Stall { text, chunks, after_chunks } if request.stream() => {
                let pieces: Vec<String> = split_text(text, *chunks).into_iter().take(*after_chunks).collect();
                sse_response(Self::text_events(model, &pieces, include_usage), true)
            }
            Reply::Stall { .. } => hanging_json_response(),
            Reply::StreamError { text, chunks, after_chunks, error } if request.stream() => {
                let pieces: Vec<String> = split_text(text, *chunks).into_iter().take(*after_chunks).collect();
                let mut events = Self::text_events(model, &pieces, include_usage);
                let (_, _, body) = Self::error(*error, model);
                events.push(format!("data: {body}\n\n"));
                sse_response(events, false)
            }
            Reply::StreamError { error, .. } => http_error(*error),
            Reply::Raw { status, headers, chunks } => raw_response(*status, headers, chunks),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn the_echo_reads_the_user_messages_after_the_last_assistant_reply() {
        let body = json!({ "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": "old" },
            { "role": "assistant", "content": "answered" },
            { "role": "user", "content": "first" },
            { "role": "user", "content": [{ "type": "text", "text": "second" }, { "type": "image_url" }] },
        ] });
        assert_eq!(new_user_text(&body), "first\nsecond");
        assert_eq!(new_user_text(&json!({ "messages": [{ "role": "user", "content": "only" }] })), "only");
        assert_eq!(new_user_text(&json!({})), "");
    }

    /// A test on a current-thread runtime that blocks its thread — as the crash tests do while
    /// `GatewayProcess::wait_exit` waits for the gateway to kill itself — must still get answers
    /// from the fake model: the gateway's turns wait for them.
    #[tokio::test]
    async fn the_fake_model_answers_while_the_test_thread_is_blocked() {
        let fake = FakeOpenAi::start().await;
        let addr = fake.addr();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
            let answer = (|| -> std::io::Result<String> {
                let mut conn = std::net::TcpStream::connect(addr)?;
                write!(
                    conn,
                    "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    OpenAiWire::PATH,
                    body.len()
                )?;
                let mut answer = String::new();
                conn.read_to_string(&mut answer)?;
                Ok(answer)
            })();
            let _ = done_tx.send(answer);
        });
        // Blocks this runtime's only thread, as a blocking wait in a test does.
        let answer = done_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the fake model did not answer while the test's thread was blocked")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("Hello from the fake model."), "{answer}");
        assert_eq!(fake.requests().len(), 1);
    }
}
