//! The gateway port's accept loop: every socket is admitted or refused with HTTP 503
//! ([`crate::admission`]), then served as HTTP/1.1 with a deadline for the request head, so a
//! client that never finishes its request (slowloris) is closed after
//! `gateway.connections.headerTimeoutMs`. WebSocket upgrades leave through `http.rs`.
//!
//! axum's `serve` sets no timer on hyper, so hyper's header timeout never runs there; this loop is
//! the small part of it Pincer needs (accept, one task per connection, graceful stop) with the
//! timer, the admission check and the refusal added.

use pincer_core::metrics;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::admission::{REFUSAL_SLOTS, Refusal, Slot};
use crate::state::AppState;

/// Serves `listener` until `shutdown` turns true, then stops accepting, lets each HTTP connection
/// finish its request, and returns once they are closed. Upgraded WebSockets stop on their own.
pub async fn serve(listener: Arc<TcpListener>, app: Router, state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let header_timeout = Duration::from_millis(state.config.gateway.connections.header_timeout_ms);
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let refused = AtomicU64::new(0);
    // Every connection task holds a receiver; `closed()` resolves once all of them are gone.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(&state, e).await;
                continue;
            }
        };
        match state.admission.admit(remote.ip()) {
            Ok(slot) => {
                let connection = Connection {
                    tcp,
                    remote,
                    slot,
                    app: app.clone(),
                    header_timeout,
                    state: state.clone(),
                    shutdown: shutdown.clone(),
                };
                let open = open_rx.clone();
                tokio::spawn(async move {
                    connection.serve().await;
                    drop(open);
                });
            }
            Err(refusal) => {
                let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
                // The first refusal and every thousandth after: an attack must show in the log
                // without writing a line per socket.
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!(remote = %remote, refused = n, "refusing connections: {}", refusal.message());
                }
                refuse(tcp, &refusal, &refusals);
            }
        }
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// `accept` failed. Out of descriptors despite the cap (something else holds them): say so and
/// pause rather than spin; anything else is the client's connection going away.
async fn accept_failed(state: &AppState, e: io::Error) {
    let out_of_files = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM));
    if out_of_files {
        state.metrics.inc(&metrics::ACCEPT_ERRORS_TOTAL, &[]);
        tracing::error!(error = %e, max = state.admission.max(), "cannot accept a connection; retrying in 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Answers `503` and closes. The socket is half-closed after the answer and its request read and
/// dropped for up to 2 s, because closing with unread input resets the connection and the client
/// could lose the answer; at most [`REFUSAL_SLOTS`] sockets linger so, the rest close at once.
fn refuse(tcp: TcpStream, refusal: &Refusal, slots: &Arc<Semaphore>) {
    let response = refusal.response();
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        let _ = tcp.try_write(response.as_bytes());
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let mut tcp = tcp;
        let linger = async {
            tcp.write_all(response.as_bytes()).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut drained = 0;
            while drained < 64 * 1024 {
                match tcp.read(&mut sink).await? {
                    0 => break,
                    n => drained += n,
                }
            }
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), linger).await;
    });
}

/// One admitted socket, served as HTTP/1.1.
struct Connection {
    tcp: TcpStream,
    remote: SocketAddr,
    slot: Arc<Slot>,
    app: Router,
    header_timeout: Duration,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self) {
        let Connection { tcp, remote, slot, app, header_timeout, state, mut shutdown } = self;
        let _ = tcp.set_nodelay(true);
        // Each request carries the peer and the slot; a WebSocket upgrade keeps the slot.
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            req.extensions_mut().insert(slot.clone());
            let mut app = app.clone();
            async move {
                use tower_service::Service;
                std::future::poll_fn(|cx| Service::<hyper::Request<Incoming>>::poll_ready(&mut app, cx)).await?;
                app.call(req).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
        let conn = builder.serve_connection(TokioIo::new(tcp), service).with_upgrades();
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    match result {
                        Err(e) if e.is_timeout() => {
                            state.admission.header_timed_out();
                            tracing::debug!(remote = %remote, "closed: no complete request head in time");
                        }
                        Err(e) => tracing::trace!(remote = %remote, error = %e, "connection ended"),
                        Ok(()) => {}
                    }
                    break;
                }
                _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
