//! A WebSocket server on 127.0.0.1 for the fakes of platforms that push events over a socket
//! (Discord's gateway, Slack's Socket Mode): an accept loop on a thread of its own (like the HTTP
//! fakes), each connection handed to the fake's session function with the commands a test sends
//! it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// One accepted connection: the socket, and the path and query it was opened with.
pub struct Socket {
    pub ws: WebSocketStream<TcpStream>,
    pub path: String,
}

/// What a test tells the connections that are open now.
#[derive(Debug, Clone)]
pub enum Command {
    /// Send this JSON as a text frame.
    Send(Value),
    /// Send a close frame with this code and reason, then stop.
    Close(u16, String),
    /// Drop the TCP connection without a close frame (the network went away).
    Drop,
    /// Wake the session to look at the fake's state again.
    Poke,
}

type Session =
    Arc<dyn Fn(Socket, broadcast::Receiver<Command>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A running WebSocket server; dropping it stops the accept loop and every connection.
pub struct WsServer {
    addr: SocketAddr,
    commands: broadcast::Sender<Command>,
    stop: Option<oneshot::Sender<()>>,
}

impl WsServer {
    /// Serves `session` for every connection, on an ephemeral port of 127.0.0.1.
    pub async fn start<F, Fut>(session: F) -> WsServer
    where
        F: Fn(Socket, broadcast::Receiver<Command>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let session: Session = Arc::new(move |s, c| Box::pin(session(s, c)));
        let (commands, _) = broadcast::channel(1024);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let sender = commands.clone();
        std::thread::Builder::new()
            .name("pincer-fake-ws".into())
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("fake ws runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
                    let _ = ready_tx.send(listener.local_addr().expect("local addr"));
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else { continue };
                            let (session, commands) = (session.clone(), sender.subscribe());
                            tokio::spawn(async move {
                                let mut path = String::new();
                                let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                                                res| {
                                    path = req.uri().to_string();
                                    Ok(res)
                                };
                                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await {
                                    session(Socket { ws, path }, commands).await;
                                }
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stop_rx => {}
                    }
                });
            })
            .expect("spawn fake ws thread");
        let addr = ready_rx.await.expect("fake ws server failed to start");
        WsServer { addr, commands, stop: Some(stop_tx) }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Sends `command` to every open connection.
    pub fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What a session's next step is.
pub enum Next {
    /// A text frame from the client, as JSON (`Value::Null` when it did not parse).
    Frame(Value),
    /// A command from the test.
    Command(Command),
    /// The client closed or the connection failed.
    Gone,
}

impl Socket {
    /// Waits for the client's next text frame or the test's next command.
    pub async fn next(&mut self, commands: &mut broadcast::Receiver<Command>) -> Next {
        loop {
            tokio::select! {
                frame = self.ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        return Next::Frame(serde_json::from_str(text.as_str()).unwrap_or(Value::Null));
                    }
                    Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Next::Gone,
                },
                command = commands.recv() => match command {
                    Ok(command) => return Next::Command(command),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Next::Gone,
                },
            }
        }
    }

    /// Sends `value` as a text frame; false when the connection is gone.
    pub async fn send(&mut self, value: &Value) -> bool {
        self.ws.send(Message::text(value.to_string())).await.is_ok()
    }

    /// Sends a close frame and waits briefly for the client's answer.
    pub async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.ws.next()).await;
    }
}
