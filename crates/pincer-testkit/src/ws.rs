//! A raw protocol v4 client for tests: sends arbitrary text, reads frames and close codes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What the server sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Frame(Value),
    /// A close frame: code (None when the server sent none) and reason.
    Closed(Option<u16>, String),
    /// The TCP connection ended without a close frame.
    Ended,
}

pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// How long [`RawClient::next`] waits; 10 s unless set.
    wait: Duration,
}

/// A masked client text frame carrying `payload` (RFC 6455 §5.2), for [`RawClient::send_raw`].
pub fn client_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame_header(true, 1, payload.len() as u64);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The header of a masked client frame declaring `len` payload bytes (mask 37 fa 21 3d).
pub fn client_frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 | opcode } else { opcode }];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xffff => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&[0x37, 0xfa, 0x21, 0x3d]);
    h
}

/// `connect` params as the stock OpenClaw CLI sends them.
/// An interim answer: `ok` with `payload.status == "accepted"`.
pub fn is_accepted(frame: &Value) -> bool {
    frame["ok"] == true && frame["payload"]["status"] == "accepted"
}

pub fn cli_connect_params(token: Option<&str>, scopes: &[&str]) -> Value {
    let mut params = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "2026.9.6", "platform": "linux", "deviceFamily": "Linux", "mode": "cli",
                   "instanceId": uuid::Uuid::new_v4().to_string()},
        "caps": [], "role": "operator", "scopes": scopes,
    });
    if let Some(token) = token {
        params["auth"] = json!({ "token": token });
    }
    params
}

impl RawClient {
    /// Opens the socket; the challenge is left unread.
    pub async fn open(url: &str) -> anyhow::Result<RawClient> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(Self::config()), false).await?;
        Ok(RawClient { ws, next_id: 0, wait: Duration::from_secs(10) })
    }

    /// Opens the socket from `local` (e.g. another loopback address, 127.0.0.2) with extra
    /// request headers (e.g. `Origin`); the challenge is left unread.
    pub async fn open_with(
        url: &str,
        local: Option<std::net::IpAddr>,
        headers: &[(&'static str, &str)],
    ) -> anyhow::Result<RawClient> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse()?);
        }
        let host = request.uri().host().unwrap_or("127.0.0.1").to_string();
        let port = request.uri().port_u16().unwrap_or(80);
        let remote: std::net::SocketAddr = format!("{host}:{port}").parse()?;
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = local {
            socket.bind((ip, 0).into())?;
        }
        let tcp = socket.connect(remote).await?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, MaybeTlsStream::Plain(tcp), Some(Self::config()))
                .await?;
        Ok(RawClient { ws, next_id: 0, wait: Duration::from_secs(10) })
    }

    fn config() -> WebSocketConfig {
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(64 << 20);
        config.max_frame_size = Some(64 << 20);
        config
    }

    /// Writes `bytes` to the socket as they are, past the WebSocket layer (e.g. a frame header
    /// alone, or several frames in one write).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self.ws.get_mut() {
            MaybeTlsStream::Plain(tcp) => {
                tcp.write_all(bytes).await?;
                tcp.flush().await?;
                Ok(())
            }
            _ => anyhow::bail!("send_raw needs a plain TCP socket"),
        }
    }

    /// Opens, reads the challenge and connects with `params`; returns the client and the hello payload.
    pub async fn connect(url: &str, params: Value) -> anyhow::Result<(RawClient, Value)> {
        let mut client = RawClient::open(url).await?;
        let challenge = client.next_frame().await?;
        anyhow::ensure!(challenge["event"] == "connect.challenge", "expected challenge, got {challenge}");
        let res = client.request("connect", params).await?;
        anyhow::ensure!(res["ok"] == true, "connect failed: {res}");
        Ok((client, res["payload"].clone()))
    }

    pub async fn send_text(&mut self, text: impl Into<String>) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into().into())).await?;
        Ok(())
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// Sends a request and returns the whole final `res` frame with the same id (events, and an
    /// interim `status: "accepted"` answer as OpenClaw's `agent` sends first, are skipped — the
    /// way OpenClaw's client waits with `expectFinal`).
    pub async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.send_request(method, params).await?;
        loop {
            let frame = self.next_frame().await?;
            if frame["type"] == "res" && frame["id"] == id.as_str() && !is_accepted(&frame) {
                return Ok(frame);
            }
        }
    }

    /// Sends a request frame and returns its id, without waiting for the answer.
    pub async fn send_request(&mut self, method: &str, params: Value) -> anyhow::Result<String> {
        self.next_id += 1;
        let id = format!("{}:{}", self.next_id, uuid::Uuid::new_v4());
        self.send_text(json!({"type": "req", "id": id, "method": method, "params": params}).to_string()).await?;
        Ok(id)
    }

    /// Calls a method and returns the payload, failing on an error response.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let res = self.request(method, params).await?;
        anyhow::ensure!(res["ok"] == true, "{method} failed: {}", res["error"]);
        Ok(res["payload"].clone())
    }

    /// The next text frame, or an error if the connection closed (with the close code).
    pub async fn next_frame(&mut self) -> anyhow::Result<Value> {
        match self.next().await? {
            Incoming::Frame(v) => Ok(v),
            other => anyhow::bail!("connection closed: {other:?}"),
        }
    }

    /// The next event called `name`, skipping other frames.
    pub async fn next_event(&mut self, name: &str) -> anyhow::Result<Value> {
        loop {
            let frame = self.next_frame().await?;
            if frame["type"] == "event" && frame["event"] == name {
                return Ok(frame);
            }
        }
    }

    /// Waits longer than 10 s for each frame (for frames of tens of megabytes in a debug build).
    pub fn wait_up_to(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Waits up to 10 s (or [`RawClient::wait_up_to`]) for the next frame or close.
    pub async fn next(&mut self) -> anyhow::Result<Incoming> {
        loop {
            let msg = tokio::time::timeout(self.wait, self.ws.next())
                .await
                .map_err(|_| anyhow::anyhow!("no frame within {:?}", self.wait))?;
            return Ok(match msg {
                None => Incoming::Ended,
                Some(Err(_)) => Incoming::Ended,
                Some(Ok(Message::Text(t))) => Incoming::Frame(serde_json::from_str(t.as_str())?),
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(f) => Incoming::Closed(Some(u16::from(f.code)), f.reason.to_string()),
                    None => Incoming::Closed(None, String::new()),
                },
                Some(Ok(_)) => continue,
            });
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> anyhow::Result<(Option<u16>, String)> {
        loop {
            match self.next().await? {
                Incoming::Frame(_) => continue,
                Incoming::Closed(code, reason) => return Ok((code, reason)),
                Incoming::Ended => return Ok((None, "ended".into())),
            }
        }
    }
}
