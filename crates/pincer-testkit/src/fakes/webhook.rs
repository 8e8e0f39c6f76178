//! Fake webhook receiver: accepts `POST` on any path, records the body with its `Authorization`
//! and `Idempotency-Key` headers, and deduplicates by key (a repeated key answers 200 with the
//! original id and records nothing), like a well-behaved receiver would.
//!
//! This file also holds [`harness`], the plumbing every fake channel server shares (a server on its
//! own thread, connection resets, scripted-fault queues), because `fakes/mod.rs` only declares
//! modules.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use self::harness::{Conn, Recorder, Server};

/// Shared plumbing for the fake servers: each runs on its own thread and runtime (so it keeps
/// serving while a test blocks, e.g. on a child process) and can reset a connection on purpose.
pub mod harness {
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::connect_info::Connected;
    use axum::http::StatusCode;
    use axum::http::header::{self, HeaderValue};
    use axum::response::{IntoResponse, Response};
    use axum::serve::{IncomingStream, Listener};
    use futures_util::{Stream, StreamExt};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{oneshot, watch};

    /// A running fake server; dropping it stops the server and drops every hung request.
    pub struct Server {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
    }

    impl Server {
        /// Serves `router` on 127.0.0.1 (an ephemeral port) from a dedicated thread.
        pub async fn start(router: Router) -> Server {
            let (ready_tx, ready_rx) = oneshot::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name("pincer-fake-server".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("fake server runtime");
                    runtime.block_on(async move {
                        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
                        let _ = ready_tx.send(listener.local_addr().expect("local addr"));
                        let app = router.into_make_service_with_connect_info::<Conn>();
                        tokio::select! {
                            _ = axum::serve(FakeListener::new(listener), app) => {}
                            _ = stop_rx => {}
                        }
                    });
                    // Dropping the runtime here cancels hung handlers and closes their sockets.
                })
                .expect("spawn fake server thread");
            let addr = ready_rx.await.expect("fake server failed to start");
            Server { addr, stop: Some(stop_tx) }
        }

        /// The socket address the server listens on.
        pub fn addr(&self) -> SocketAddr {
            self.addr
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    /// A handle on the connection a request arrived on (extract it with `ConnectInfo<Conn>`).
    #[derive(Clone)]
    pub struct Conn(Arc<AtomicBool>, u64);

    impl Conn {
        /// The connection's number on its server: 1 for the first accepted, then 2, … (requests
        /// with the same number came over one kept-alive connection).
        pub fn id(&self) -> u64 {
            self.1
        }

        /// Resets the connection (TCP RST) instead of writing the response.
        pub fn reset(&self) -> Response {
            self.0.store(true, Ordering::SeqCst);
            StatusCode::OK.into_response()
        }
    }

    impl Connected<IncomingStream<'_, FakeListener>> for Conn {
        fn connect_info(stream: IncomingStream<'_, FakeListener>) -> Self {
            Conn(stream.io().reset.clone(), stream.io().id)
        }
    }

    /// Never answers (the client sees a timeout).
    pub async fn hang() -> Response {
        std::future::pending::<()>().await;
        unreachable!()
    }

    /// `response` with the last two bytes of its body cut off: its status and headers as they
    /// were, a body that no longer parses (a garbled or truncated answer to a request that was
    /// handled).
    pub async fn malformed(response: Response) -> Response {
        let (mut head, body) = response.into_parts();
        let mut body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        body.truncate(body.len().saturating_sub(2));
        head.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        Response::from_parts(head, Body::from(body))
    }

    /// Writes `response`'s status line, its headers (with the full `Content-Length`) and the first
    /// half of its body, then resets the connection: the answer breaks off mid-response.
    pub async fn break_off(conn: &Conn, response: Response) -> Response {
        let (mut head, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        head.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let first = body.slice(..body.len() / 2);
        let rest = body.slice(body.len() / 2..);
        let first = futures_util::stream::once(async move { Ok::<Bytes, axum::Error>(first) });
        let body = Body::from_stream(first.chain(then_reset(
            conn,
            futures_util::stream::empty::<Result<Bytes, axum::Error>>(),
            rest,
        )));
        Response::from_parts(head, body)
    }

    /// Ends `body` with a reset: its chunks are written as long as it has them ready; where it would
    /// wait for more (a scripted stall), the connection is reset instead.
    pub fn reset_when_stalled(conn: &Conn, body: Body) -> Body {
        Body::from_stream(then_reset(conn, body.into_data_stream(), Bytes::from_static(b"\n")))
    }

    fn then_reset(
        conn: &Conn,
        mut inner: impl Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + 'static,
        last: Bytes,
    ) -> impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
        let reset = conn.0.clone();
        let mut stage = 0;
        futures_util::stream::poll_fn(move |cx| match stage {
            0 => match inner.poll_next_unpin(cx) {
                Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
                // The body stalls (or ends): let the server flush what it has written, then …
                Poll::Ready(None) | Poll::Pending => {
                    stage = 1;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            },
            // … reset the connection, which the next write (these bytes) turns into a TCP RST.
            1 => {
                stage = 2;
                reset.store(true, Ordering::SeqCst);
                Poll::Ready(Some(Ok(last.clone())))
            }
            _ => Poll::Ready(None),
        })
    }

    /// A TCP listener whose connections can be reset from a handler.
    pub struct FakeListener(TcpListener, u64);

    impl FakeListener {
        /// Wraps a bound listener (serve it with `into_make_service_with_connect_info::<Conn>()`).
        pub fn new(listener: TcpListener) -> Self {
            FakeListener(listener, 0)
        }
    }

    impl Listener for FakeListener {
        type Io = FakeStream;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (FakeStream, SocketAddr) {
            loop {
                match self.0.accept().await {
                    Ok((inner, addr)) => {
                        self.1 += 1;
                        return (FakeStream { inner, reset: Arc::default(), id: self.1 }, addr);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            self.0.local_addr()
        }
    }

    /// A TCP stream that fails (and closes with RST) once its [`Conn`] asked for a reset.
    pub struct FakeStream {
        inner: TcpStream,
        reset: Arc<AtomicBool>,
        id: u64,
    }

    impl FakeStream {
        fn check(&self) -> io::Result<()> {
            if self.reset.load(Ordering::SeqCst) {
                // Linger 0 turns the close into a RST.
                let _ = self.inner.set_zero_linger();
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            Ok(())
        }
    }

    impl AsyncRead for FakeStream {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            self.check()?;
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for FakeStream {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.check()?;
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.check()?;
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.check()?;
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A fake's state behind a lock, with a signal for "something was recorded".
    pub struct Recorder<S> {
        state: Mutex<S>,
        changed: watch::Sender<u64>,
    }

    impl<S> Recorder<S> {
        /// Wraps the initial state.
        pub fn new(state: S) -> Self {
            Recorder { state: Mutex::new(state), changed: watch::Sender::new(0) }
        }

        /// Locks the state (a panicking test thread does not poison the fake for the others).
        pub fn lock(&self) -> MutexGuard<'_, S> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Wakes waiters after the state changed.
        pub fn notify(&self) {
            self.changed.send_modify(|n| *n += 1);
        }

        /// A receiver that sees every [`Recorder::notify`] (for handlers that wait, e.g. a long poll).
        pub fn changes(&self) -> watch::Receiver<u64> {
            self.changed.subscribe()
        }

        /// Waits until `ready` returns something, or panics after `timeout`.
        pub async fn wait_for<T>(&self, timeout: Duration, what: &str, ready: impl Fn(&S) -> Option<T>) -> T {
            let mut changes = self.changed.subscribe();
            let wait = async {
                loop {
                    if let Some(out) = ready(&self.lock()) {
                        return out;
                    }
                    let _ = changes.changed().await;
                }
            };
            match tokio::time::timeout(timeout, wait).await {
                Ok(out) => out,
                Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
            }
        }
    }

    /// A 429 answer with a `Retry-After` header (whole seconds, rounded up) and a JSON body.
    pub fn too_many_requests(retry_after: Duration, body: serde_json::Value) -> Response {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", seconds.to_string())], axum::Json(body)).into_response()
    }

    /// A status code from a test's script (500 if it is not a valid status).
    pub fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// A scripted misbehaviour for the next request the fake webhook receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer 429 with `Retry-After`, recording nothing.
    RateLimited {
        /// The delay to advertise.
        retry_after: Duration,
    },
    /// Answer with this status, recording nothing (e.g. 500, 404, 400).
    Status(u16),
    /// Record the delivery, then answer with this status ("accepted but answered with an error").
    AcceptThenStatus(u16),
    /// Never answer, recording nothing.
    Hang,
    /// Record the delivery, then never answer.
    AcceptThenHang,
    /// Reset the connection, recording nothing.
    Reset,
    /// Record the delivery, then reset the connection.
    AcceptThenReset,
    /// Record the delivery, then answer 200 with the answer's body cut short (not JSON).
    AcceptThenMalformed,
    /// Record the delivery, then send the 200 answer's head and half its body, and reset the
    /// connection.
    AcceptThenBreakOff,
    /// Wait this long, then handle the request normally.
    Delay(Duration),
}

/// One delivery the fake webhook accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The id the fake answered with (`{"id": …}`).
    pub id: String,
    /// The request path (and query).
    pub path: String,
    /// The raw body.
    pub body: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

#[derive(Default)]
struct WebhookState {
    deliveries: Vec<WebhookDelivery>,
    /// Idempotency key → id of the delivery it created.
    keys: HashMap<String, String>,
    faults: VecDeque<Fault>,
    requests: usize,
    duplicates: usize,
    required_token: Option<String>,
}

/// A fake webhook receiver on 127.0.0.1.
pub struct FakeWebhook {
    server: Server,
    shared: Arc<Recorder<WebhookState>>,
}

impl FakeWebhook {
    /// Starts the receiver.
    pub async fn start() -> Self {
        let shared = Arc::new(Recorder::new(WebhookState::default()));
        let router = Router::new().fallback(receive).with_state(shared.clone());
        FakeWebhook { server: Server::start(router).await, shared }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// A URL to deliver to: `{base_url}/hook`.
    pub fn url(&self) -> String {
        format!("{}/hook", self.base_url())
    }

    /// Queues a fault for the next request (faults apply in order, one per request).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Answers 401 unless `Authorization: Bearer <token>` is sent (`None`: accept anything).
    pub fn require_token(&self, token: Option<&str>) {
        self.shared.lock().required_token = token.map(str::to_string);
    }

    /// Every delivery accepted, in order (duplicates by key are not recorded twice).
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.lock().deliveries.clone()
    }

    /// How many deliveries were accepted (without copying them).
    pub fn delivered(&self) -> usize {
        self.shared.lock().deliveries.len()
    }

    /// Requests received, including refused, faulted and duplicate ones.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// Requests whose `Idempotency-Key` had already been accepted.
    pub fn duplicates(&self) -> usize {
        self.shared.lock().duplicates
    }

    /// Waits until at least `n` deliveries were accepted and returns them.
    pub async fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<WebhookDelivery> {
        let what = format!("{n} webhook deliveries");
        self.shared.wait_for(timeout, &what, |s| (s.deliveries.len() >= n).then(|| s.deliveries.clone())).await
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn receive(
    State(shared): State<Arc<Recorder<WebhookState>>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut state = shared.lock();
        state.requests += 1;
        state.faults.pop_front()
    };
    shared.notify();
    match &fault {
        Some(Fault::RateLimited { retry_after }) => {
            return harness::too_many_requests(*retry_after, json!({ "error": "slow down" }));
        }
        Some(Fault::Status(code)) => return (harness::status(*code), "scripted failure").into_response(),
        Some(Fault::Hang) => return harness::hang().await,
        Some(Fault::Reset) => return conn.reset(),
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        _ => {}
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let authorization = header(&headers, "authorization");
    let id = {
        let mut state = shared.lock();
        if let Some(token) = &state.required_token
            && authorization.as_deref() != Some(&format!("Bearer {token}"))
        {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "bad token" }))).into_response();
        }
        let key = header(&headers, "idempotency-key");
        match key.as_ref().and_then(|k| state.keys.get(k)).cloned() {
            Some(id) => {
                state.duplicates += 1;
                id
            }
            None => {
                let id = format!("wh-{}", state.deliveries.len() + 1);
                if let Some(key) = &key {
                    state.keys.insert(key.clone(), id.clone());
                }
                state.deliveries.push(WebhookDelivery {
                    id: id.clone(),
                    path: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    authorization,
                    idempotency_key: key,
                    content_type: header(&headers, "content-type"),
                });
                id
            }
        }
    };
    shared.notify();
    match fault {
        Some(Fault::AcceptThenStatus(code)) => (harness::status(code), "scripted failure").into_response(),
        Some(Fault::AcceptThenHang) => harness::hang().await,
        Some(Fault::AcceptThenReset) => conn.reset(),
        Some(Fault::AcceptThenMalformed) => {
            harness::malformed(axum::Json(json!({ "ok": true, "id": id })).into_response()).await
        }
        Some(Fault::AcceptThenBreakOff) => {
            harness::break_off(&conn, axum::Json(json!({ "ok": true, "id": id })).into_response()).await
        }
        _ => axum::Json(json!({ "ok": true, "id": id })).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Posts `body` over a fresh connection and returns what came back (or the read error).
    async fn post(fake: &FakeWebhook, key: &str, body: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(fake.server.addr()).await?;
        let request = format!(
            "POST /hook HTTP/1.1\r\nHost: x\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn records_deduplicates_and_wakes_waiters() {
        let fake = FakeWebhook::start().await;
        let (deliveries, first) =
            tokio::join!(fake.wait_for_deliveries(1, Duration::from_secs(5)), post(&fake, "k1", "{}"));
        assert!(first.unwrap().contains(r#""id":"wh-1""#));
        assert_eq!(deliveries[0].idempotency_key.as_deref(), Some("k1"));
        assert!(post(&fake, "k1", "{}").await.unwrap().contains(r#""id":"wh-1""#));
        assert_eq!((fake.deliveries().len(), fake.requests(), fake.duplicates()), (1, 2, 1));
    }

    #[tokio::test]
    async fn resets_are_real_resets() {
        let fake = FakeWebhook::start().await;
        fake.push_fault(Fault::AcceptThenReset);
        let error = post(&fake, "k2", "{}").await.expect_err("the connection should be reset");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
        assert_eq!(fake.deliveries().len(), 1, "accepted before the reset");
        assert!(post(&fake, "k3", "{}").await.unwrap().starts_with("HTTP/1.1 200"), "the server keeps serving");
    }
}
