//! The legacy HTTP+SSE MCP transport (protocol 2024-11-05), which `rmcp` no longer ships: `GET url`
//! opens an event stream whose first `endpoint` event names where to `POST` messages; answers
//! arrive as `message` events on the stream. OpenClaw still offers it as `transport: "sse"`.

use std::future::Future;

use futures_util::StreamExt;
use reqwest::Url;
use reqwest::header::HeaderMap;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::{mpsc, oneshot};

/// One SSE event is refused past this size (a server cannot make the client buffer without bound).
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SseError(String);

/// A connected legacy SSE session.
pub struct LegacySse {
    client: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl LegacySse {
    /// Opens the event stream and waits for the `endpoint` event (the caller bounds the wait).
    pub async fn connect(client: reqwest::Client, url: &str, headers: HeaderMap) -> Result<LegacySse, String> {
        let base = Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL ({e})"))?;
        let response = client
            .get(base.clone())
            .headers(headers.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| format!("cannot open the event stream at {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered HTTP {} to the event-stream request", response.status()));
        }
        let (endpoint_tx, endpoint_rx) = oneshot::channel::<String>();
        let (tx, incoming) = mpsc::channel(64);
        let reader = tokio::spawn(read_events(response, endpoint_tx, tx));
        let endpoint = endpoint_rx
            .await
            .map_err(|_| format!("{url} closed the event stream before naming its message endpoint"))?;
        let endpoint =
            base.join(&endpoint).map_err(|e| format!("{url} named an invalid endpoint `{endpoint}` ({e})"))?;
        if endpoint.origin() != base.origin() {
            reader.abort();
            return Err(format!("{url} named an endpoint on another origin ({endpoint}); refused"));
        }
        Ok(LegacySse { client, endpoint, headers, incoming, reader })
    }
}

async fn read_events(
    response: reqwest::Response,
    endpoint: oneshot::Sender<String>,
    tx: mpsc::Sender<ServerJsonRpcMessage>,
) {
    let mut endpoint = Some(endpoint);
    let mut stream = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buf.extend_from_slice(&chunk);
        while let Some((end, sep)) = find_event_end(&buf) {
            let raw: Vec<u8> = buf.drain(..end + sep).collect();
            let (event, data) = parse_event(&String::from_utf8_lossy(&raw[..end]));
            match event.as_deref() {
                Some("endpoint") => {
                    if let Some(tx) = endpoint.take() {
                        let _ = tx.send(data);
                    }
                }
                None | Some("message") => match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                    Ok(msg) => {
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    // Like rmcp's stdio transport: a line that is not JSON-RPC is skipped.
                    Err(e) => tracing::debug!("mcp sse: skipped an event that is not JSON-RPC: {e}"),
                },
                Some(_) => {}
            }
        }
        if buf.len() > MAX_EVENT_BYTES {
            tracing::warn!("mcp sse: an event exceeded {MAX_EVENT_BYTES} bytes; closing the stream");
            return;
        }
    }
}

fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_event(text: &str) -> (Option<String>, String) {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (event, data.join("\n"))
}

impl Transport<RoleClient> for LegacySse {
    type Error = SseError;

    fn send(&mut self, item: ClientJsonRpcMessage) -> impl Future<Output = Result<(), SseError>> + Send + 'static {
        let request = self.client.post(self.endpoint.clone()).headers(self.headers.clone());
        async move {
            let body = serde_json::to_vec(&item).map_err(|e| SseError(format!("cannot encode a message: {e}")))?;
            let response = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| SseError(format!("cannot post a message: {e}")))?;
            if !response.status().is_success() {
                return Err(SseError(format!("the server answered HTTP {} to a message", response.status())));
            }
            Ok(())
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), SseError> {
        self.reader.abort();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines_with_multiline_data() {
        let buf = b"event: endpoint\ndata: /messages?id=1\n\n: comment\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nrest";
        let (end, sep) = find_event_end(buf).unwrap();
        assert_eq!(
            parse_event(std::str::from_utf8(&buf[..end]).unwrap()),
            (Some("endpoint".into()), "/messages?id=1".into())
        );
        let rest = &buf[end + sep..];
        let (end2, _) = find_event_end(rest).unwrap();
        assert_eq!(parse_event(std::str::from_utf8(&rest[..end2]).unwrap()), (None, "{\"a\":\n1}".into()));
    }
}
