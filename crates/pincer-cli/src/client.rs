//! The WebSocket client every command uses: resolves the gateway URL and token (flags, then
//! `PINCER_GATEWAY_URL` / `PINCER_GATEWAY_TOKEN`, then the config), performs the v4 handshake and
//! makes calls.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pincer_core::Config;
use pincer_core::config::{Env, StatePaths};
use pincer_protocol::schema::Method;
use pincer_protocol::{
    ClientId, ClientInfo, ClientMode, ConnectAuth, ConnectParams, ErrorShape, EventFrame, Frame, HelloOk,
    PROTOCOL_VERSION, RawResponseFrame, RequestFrame, Scope, parse_frame, parse_response,
};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

/// Connection settings shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Gateway WebSocket URL (default: PINCER_GATEWAY_URL, else ws://127.0.0.1:<gateway.port>).
    #[arg(long)]
    pub url: Option<String>,
    /// Gateway token (default: PINCER_GATEWAY_TOKEN, else gateway.auth.token from the config).
    #[arg(long)]
    pub token: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout: u64,
}

/// Where to connect and with what.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub timeout: Duration,
}

impl Target {
    pub fn resolve(args: &ConnectArgs, paths: &StatePaths, env: Env) -> anyhow::Result<Target> {
        let needs_config = args.url.is_none() && env("PINCER_GATEWAY_URL").is_none()
            || args.token.is_none() && env("PINCER_GATEWAY_TOKEN").is_none();
        let config = if needs_config { Some(load_for_client(&paths.config_path, env)?) } else { None };
        let url = match (&args.url, env("PINCER_GATEWAY_URL")) {
            (Some(url), _) => check_url("--url", url)?,
            (None, Some(url)) => check_url("PINCER_GATEWAY_URL", &url)?,
            (None, None) => running_gateway_url(paths).unwrap_or_else(|| {
                format!("ws://127.0.0.1:{}", config.as_ref().map(|c| c.gateway.port).unwrap_or(18789))
            }),
        };
        let token = args
            .token
            .clone()
            .or_else(|| env("PINCER_GATEWAY_TOKEN"))
            .or_else(|| config.as_ref().and_then(|c| c.token().map(String::from)));
        Ok(Target { url, token, timeout: Duration::from_millis(args.timeout) })
    }
}

/// The config for finding the gateway. A file that fails the schema (an edit the running gateway
/// refused) still names the port and token: they are read as written, with a warning, so every
/// command keeps working while the edit is fixed.
fn load_for_client(path: &std::path::Path, env: Env) -> anyhow::Result<Config> {
    let error = match Config::load(path, env) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    let text = std::fs::read_to_string(path).map_err(|_| anyhow::anyhow!("{error}"))?;
    // Not expanded as a whole: a `${VAR}` only the gateway's environment sets (a model key, a
    // bot token) must not stop a client from finding the gateway.
    let value = Config::read_value(&text).map_err(|_| anyhow::anyhow!("{error}"))?;
    eprintln!("warning: {error} (fix it; `pincer config validate` checks it)");
    let mut config = Config::default();
    if let Some(port) = value["gateway"]["port"].as_u64().and_then(|p| u16::try_from(p).ok()) {
        config.gateway.port = port;
    }
    config.gateway.auth.token = value["gateway"]["auth"]["token"].as_str().and_then(|t| {
        match t.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(name) => env(name),
            None => Some(t.to_string()),
        }
    });
    if let Some(token) = env("PINCER_GATEWAY_TOKEN") {
        config.gateway.auth.token = Some(token);
    }
    Ok(config)
}

/// A gateway URL as given: `ws://` or `wss://` (or `http(s)://`, which the upgrade accepts too)
/// and a host; anything else would only fail later as "cannot reach the gateway".
fn check_url(source: &str, url: &str) -> anyhow::Result<String> {
    let rest = ["ws://", "wss://", "http://", "https://"].iter().find_map(|scheme| url.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => anyhow::bail!("{source}: `{url}` is not a gateway URL; use ws://host:port, e.g. ws://127.0.0.1:18789"),
    }
}

/// The URL a gateway running on this state dir published, if one is running (it holds the lock).
pub fn running_gateway_url(paths: &StatePaths) -> Option<String> {
    let path = paths.state_dir.join(pincer_gateway::RUNTIME_FILE);
    let file = std::fs::File::open(&path).ok()?;
    if file.try_lock_shared().is_ok() {
        return None; // Nobody holds it: no gateway is running here.
    }
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    info["url"].as_str().map(String::from)
}

/// A failed client operation, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the gateway at {url}: {reason}. Is it running? Start it with `pincer gateway`, or check --url"
    )]
    Unreachable { url: String, reason: String },
    #[error("the gateway at {url} refused the connection (HTTP {status}): {reason}")]
    Refused { url: String, status: u16, reason: String },
    #[error("the gateway at {url} did not answer within {ms} ms (raise --timeout, or check the gateway's log)")]
    Timeout { url: String, ms: u128 },
    #[error("{}", describe_rpc_error(.0))]
    Rpc(ErrorShape),
    #[error("the gateway closed the connection: {0}")]
    Closed(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Adds the next step to a gateway error.
fn describe_rpc_error(e: &ErrorShape) -> String {
    let hint = match e.detail_code() {
        // The gateway's own message already says what to do, in other words: say it once.
        Some("AUTH_TOKEN_MISMATCH") => {
            return "the gateway rejected the token: use its gateway.auth.token (in its pincer.json), \
                    PINCER_GATEWAY_TOKEN or --token, or pair this device"
                .into();
        }
        Some("AUTH_TOKEN_MISSING") => "",
        Some("AUTH_RATE_LIMITED") => " — wait for the lockout to pass, then retry with the right token",
        Some("MISSING_SCOPE") => {
            " — this connection lacks that scope; use the gateway token locally or approve a scope upgrade with `pincer devices approve`"
        }
        Some("PAIRING_REQUIRED") => " — approve it on the gateway host with `pincer devices approve <requestId>`",
        Some("PROTOCOL_MISMATCH") => {
            " — this client and the gateway speak different protocol versions; upgrade the older one"
        }
        _ => "",
    };
    format!("{}{hint}", e.message)
}

type Ws = pincer_chat::ws::Socket;

/// An authenticated connection to the gateway.
pub struct Client {
    ws: Ws,
    next_id: u64,
    target: Target,
    pub hello: HelloOk,
}

impl Client {
    /// Connects and completes the handshake, asking for `scopes`.
    pub async fn connect(target: &Target, scopes: &[Scope]) -> Result<Client, ClientError> {
        let timeout = target.timeout;
        tokio::time::timeout(timeout, Self::connect_inner(target, scopes))
            .await
            .map_err(|_| ClientError::Timeout { url: target.url.clone(), ms: timeout.as_millis() })?
    }

    async fn connect_inner(target: &Target, scopes: &[Scope]) -> Result<Client, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable { url: target.url.clone(), reason };
        // wss:// through the workspace's one TLS stack (tokio-rustls, the platform's roots).
        let (ws, _) = pincer_chat::ws::connect(target.url.as_str(), None).await.map_err(|e| match e {
            // A gateway at its connection limit answers 503 with the reason in the body.
            tokio_tungstenite::tungstenite::Error::Http(response) if response.status().is_server_error() => {
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                ClientError::Refused {
                    url: target.url.clone(),
                    status: response.status().as_u16(),
                    reason: body.trim().to_string(),
                }
            }
            e => unreachable(e.to_string()),
        })?;
        let mut client = Client { ws, next_id: 0, target: target.clone(), hello: placeholder_hello() };
        // The server speaks first: connect.challenge.
        let challenge = client.next_frame().await?;
        match challenge {
            Received::Other(Frame::Event(ev)) if ev.event == "connect.challenge" => {}
            other => return Err(ClientError::Protocol(format!("expected connect.challenge, got {other:?}"))),
        }
        let params = ConnectParams {
            min_protocol: PROTOCOL_VERSION,
            max_protocol: PROTOCOL_VERSION,
            client: ClientInfo {
                id: ClientId::Cli,
                version: pincer_gateway::VERSION.into(),
                platform: std::env::consts::OS.into(),
                mode: ClientMode::Cli,
                display_name: Some("pincer".into()),
                build_id: None,
                device_family: None,
                model_identifier: None,
                time_zone: None,
                instance_id: Some(uuid::Uuid::new_v4().to_string()),
            },
            role: Some("operator".into()),
            scopes: Some(scopes.iter().map(|s| s.as_str().to_string()).collect()),
            caps: Some(vec![]),
            commands: None,
            permissions: None,
            path_env: None,
            computer_use: None,
            worker_runs: None,
            model_catalog: None,
            auth: target.token.clone().map(|token| ConnectAuth { token: Some(token), ..Default::default() }),
            device: None,
            locale: None,
            user_agent: None,
        };
        let hello = client.request("connect", Some(serde_json::to_value(params).expect("params serialise"))).await?;
        client.hello = serde_json::from_str(payload_text(&hello))
            .map_err(|e| ClientError::Protocol(format!("invalid hello-ok: {e}")))?;
        Ok(client)
    }

    /// Calls method `M` with its params and decodes its answer.
    pub async fn call<M: Method>(&mut self, params: &M::Params) -> Result<M::Result, ClientError> {
        let timeout = self.target.timeout;
        let url = self.target.url.clone();
        let params = encode::<M>(params)?;
        let answer = tokio::time::timeout(timeout, self.request(M::NAME, Some(params)))
            .await
            .map_err(|_| ClientError::Timeout { url, ms: timeout.as_millis() })??;
        decode::<M>(&answer)
    }

    /// Calls method `M` and decodes its answer, passing every event that arrives before the
    /// response to `on_event` (e.g. the `agent` events of a streamed reply).
    pub async fn call_streaming<M: Method>(
        &mut self,
        params: &M::Params,
        mut on_event: impl FnMut(&EventFrame),
    ) -> Result<M::Result, ClientError> {
        let timeout = self.target.timeout;
        let url = self.target.url.clone();
        let params = encode::<M>(params)?;
        let call = async {
            self.next_id += 1;
            let id = format!("{}:{}", self.next_id, uuid::Uuid::new_v4());
            let frame = Frame::Req(RequestFrame {
                id: id.clone(),
                method: M::NAME.into(),
                params: Some(params),
                traceparent: None,
                expected_profile_id: None,
            });
            let text = serde_json::to_string(&frame).expect("frames serialise");
            self.ws.send(Message::Text(text.into())).await.map_err(|e| ClientError::Closed(e.to_string()))?;
            loop {
                match self.next_frame().await? {
                    Received::Other(Frame::Event(ev)) => on_event(&ev),
                    Received::Res(res) if res.id == id && !is_accepted(&res) => return answer(res),
                    _ => continue,
                }
            }
        };
        let answer = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ClientError::Timeout { url, ms: timeout.as_millis() })??;
        decode::<M>(&answer)
    }

    /// Sends a request and waits for its final answer: the payload as JSON text (`None` for an
    /// absent or `null` payload), for the caller to decode into its type without a `Value` between.
    async fn request(&mut self, method: &str, params: Option<Value>) -> Result<Option<Box<RawValue>>, ClientError> {
        self.next_id += 1;
        let id = format!("{}:{}", self.next_id, uuid::Uuid::new_v4());
        let frame = Frame::Req(RequestFrame {
            id: id.clone(),
            method: method.into(),
            params,
            traceparent: None,
            expected_profile_id: None,
        });
        let text = serde_json::to_string(&frame).expect("frames serialise");
        self.ws.send(Message::Text(text.into())).await.map_err(|e| ClientError::Closed(e.to_string()))?;
        loop {
            match self.next_frame().await? {
                Received::Res(res) if res.id == id && !is_accepted(&res) => return answer(res),
                _ => continue,
            }
        }
    }

    async fn next_frame(&mut self) -> Result<Received, ClientError> {
        loop {
            let msg = self.ws.next().await.ok_or_else(|| ClientError::Closed("connection ended".into()))?;
            match msg.map_err(|e| ClientError::Closed(e.to_string()))? {
                Message::Text(text) => {
                    let protocol = |e: pincer_protocol::FrameError| ClientError::Protocol(e.message);
                    if let Some(res) = parse_response(text.as_str()).map_err(protocol)? {
                        return Ok(Received::Res(res));
                    }
                    return match parse_frame(text.as_str()).map_err(protocol)? {
                        Frame::Res(res) => Ok(Received::Res(res.into())),
                        other => Ok(Received::Other(other)),
                    };
                }
                Message::Close(frame) => {
                    let reason = frame
                        .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                        .unwrap_or_else(|| "no reason".into());
                    return Err(ClientError::Closed(reason));
                }
                _ => continue,
            }
        }
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// One frame from the gateway: a response with its payload still JSON text, or any other frame.
#[derive(Debug)]
enum Received {
    Res(RawResponseFrame),
    Other(Frame),
}

/// A final response as the caller's result: its payload, or its error.
fn answer(res: RawResponseFrame) -> Result<Option<Box<RawValue>>, ClientError> {
    if res.ok {
        Ok(res.payload)
    } else {
        Err(ClientError::Rpc(res.error.unwrap_or_else(|| ErrorShape::invalid_request("request failed"))))
    }
}

/// The payload's JSON text; an absent payload reads as `null`, as before.
fn payload_text(payload: &Option<Box<RawValue>>) -> &str {
    payload.as_deref().map_or("null", RawValue::get)
}

fn placeholder_hello() -> HelloOk {
    serde_json::from_value(serde_json::json!({
        "type": "hello-ok", "protocol": PROTOCOL_VERSION,
        "server": {"version": "", "connId": ""},
        "features": {"methods": [], "events": []},
        "snapshot": {"presence": [], "health": {}, "stateVersion": {"presence": 0, "health": 0}, "uptimeMs": 0},
        "auth": {"role": "operator", "scopes": []},
        "policy": {"maxPayload": 0, "maxBufferedBytes": 0, "tickIntervalMs": 0}
    }))
    .expect("static hello parses")
}

/// Connects, makes one call of method `M`, closes: what most commands do.
pub async fn call_once<M: Method>(
    target: &Target,
    scopes: &[Scope],
    params: &M::Params,
) -> Result<M::Result, ClientError> {
    let mut client = Client::connect(target, scopes).await?;
    let result = client.call::<M>(params).await;
    client.close().await;
    result
}

fn encode<M: Method>(params: &M::Params) -> Result<Value, ClientError> {
    serde_json::to_value(params).map_err(|e| ClientError::Protocol(format!("cannot write {} params: {e}", M::NAME)))
}

/// The answer as `M`'s result type, read from the payload's text; the schema is shared with the
/// gateway, so a failure means the two are different builds.
fn decode<M: Method>(answer: &Option<Box<RawValue>>) -> Result<M::Result, ClientError> {
    serde_json::from_str(payload_text(answer)).map_err(|e| {
        ClientError::Protocol(format!(
            "cannot read the gateway's {} answer ({e}); is the gateway the same pincer version as this CLI?",
            M::NAME
        ))
    })
}

/// OpenClaw's interim answer (`agent` sends `status: "accepted"` before its result); the client
/// waits for the final one, as OpenClaw's does with `expectFinal`.
fn is_accepted(res: &RawResponseFrame) -> bool {
    /// Only `status` is read; the rest of the payload is skipped without being built.
    #[derive(serde::Deserialize)]
    struct Status {
        status: Option<Value>,
    }
    // An object only: serde would read the struct from a list of its fields too.
    res.ok
        && res.payload.as_deref().is_some_and(|p| {
            p.get().trim_start().starts_with('{')
                && serde_json::from_str::<Status>(p.get()).is_ok_and(|s| s.status.is_some_and(|v| v == "accepted"))
        })
}

#[cfg(test)]
mod tests {
    use pincer_protocol::schema::cron::List;

    use super::*;

    fn res(text: &str) -> RawResponseFrame {
        parse_response(text).unwrap().expect("a res frame")
    }

    /// Only an `ok` answer whose `status` is `accepted` is interim, as when it was read as a `Value`.
    #[test]
    fn an_interim_answer_is_told_from_its_raw_payload() {
        let cases = [
            (r#"{"type":"res","id":"1","ok":true,"payload":{"runId":"r","status":"accepted"}}"#, true),
            (r#"{"type":"res","id":"1","ok":true,"payload":{"status":"ok","text":"accepted"}}"#, false),
            (r#"{"type":"res","id":"1","ok":true,"payload":{"status":{"accepted":true}}}"#, false),
            (r#"{"type":"res","id":"1","ok":true,"payload":["accepted"]}"#, false),
            (r#"{"type":"res","id":"1","ok":true,"payload":null}"#, false),
            (r#"{"type":"res","id":"1","ok":true}"#, false),
            (r#"{"type":"res","id":"1","ok":false,"payload":{"status":"accepted"}}"#, false),
        ];
        for (text, accepted) in cases {
            assert_eq!(is_accepted(&res(text)), accepted, "{text}");
            let old: Value = serde_json::from_str(text).unwrap();
            assert_eq!(old["ok"] == true && old["payload"]["status"] == "accepted", accepted, "{text}");
        }
    }

    /// A typed answer read from the payload's text is the one read from its `Value`, and a payload
    /// of another shape is refused with the version hint.
    #[test]
    fn a_typed_answer_is_decoded_from_the_payload_text() {
        let page = r#"{"jobs":[{"id":"j1","name":"Zürich \"report\"","enabled":true,"createdAtMs":1,"updatedAtMs":2,
            "schedule":{"kind":"every","everyMs":60000},"sessionTarget":"isolated","wakeMode":"now",
            "payload":{"kind":"command","argv":["true"]},"state":{"nextRunAtMs":3},"configRevision":"sha256:x",
            "nextRunAtMs":3,"futureField":[1.5,{"a":null}]}],"snapshotRevision":"rev-1","total":1,"offset":0,
            "limit":1000,"hasMore":false,"nextOffset":null,"timezone":"Europe/Zurich","later":{"b":1}}"#;
        let text = format!(r#"{{"type":"res","id":"1","ok":true,"payload":{page}}}"#);
        let payload = answer(res(&text)).unwrap();
        let typed = decode::<List>(&payload).unwrap();
        let via_value: <List as Method>::Result = serde_json::from_value(serde_json::from_str(page).unwrap()).unwrap();
        assert_eq!(typed, via_value);
        assert_eq!(typed.jobs[0].job.name, "Zürich \"report\"");
        assert_eq!(typed.jobs[0].extra["futureField"], serde_json::json!([1.5, {"a": null}]));
        let wrong = answer(res(r#"{"type":"res","id":"1","ok":true,"payload":{"jobs":3}}"#)).unwrap();
        let e = decode::<List>(&wrong).unwrap_err().to_string();
        assert!(e.contains("cannot read the gateway's cron.list answer") && e.contains("same pincer version"), "{e}");
    }
}
