//! MCP servers (`mcp.servers.<name>`) through the official Rust SDK, `rmcp`: each enabled server
//! is started once and shared by every turn, supervised by a task that restarts it with
//! exponential backoff (1 s, 2 s, 4 s … 60 s, on the injected clock) when it dies, and whose state
//! is queryable for `health`, `doctor` and `pincer mcp list|probe`. Its tools are offered as
//! `<server>__<tool>` and pass the same tool policy as built-in tools; their results are external
//! content.
//!
//! | transport         | how                                                                  |
//! |-------------------|----------------------------------------------------------------------|
//! | stdio (`command`) | child process in its own process group, scrubbed env + `env`, `cwd` |
//! | `streamable-http` | `rmcp`'s reqwest client (the workspace's reqwest 0.13), `headers`    |
//! | `sse`             | the legacy HTTP+SSE transport, which `rmcp` dropped: [`sse::LegacySse`] |

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, RwLock};

use pincer_core::SharedClock;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceExt};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub mod sse;

use crate::config::{McpConfig, McpServerConfig, McpTransport};
use crate::tool::{BoxFuture, ExternalSource, Tool, ToolContext, ToolError, ToolOutput, ToolSpec, wrap_external};

const BACKOFF_START_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 60_000;
/// Provider limit on tool names (OpenAI and Anthropic: `^[a-zA-Z0-9_-]{1,64}$`).
const TOOL_NAME_MAX: usize = 64;
const SERVER_NAME_MAX: usize = 30;

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpStatus {
    /// `enabled: false`.
    Disabled,
    Starting,
    /// Connected, its tools listed.
    #[serde(rename = "connected")]
    Ready,
    /// Died or failed to start; the next attempt is at `next_attempt_ms`.
    Backoff,
    /// Cannot work as configured (invalid config, unsupported transport); not retried.
    Failed,
}

/// What `health`, `doctor` and `pincer mcp list` show for one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerState {
    pub name: String,
    pub transport: &'static str,
    pub status: McpStatus,
    /// Namespaced names of the tools it offers (after `toolFilter`).
    pub tools: Vec<String>,
    pub last_error: Option<String>,
    /// Times it came back after dying.
    pub restarts: u32,
    pub next_attempt_ms: Option<i64>,
    pub pid: Option<u32>,
}

/// A tool the model can see, as a server listed it (for `pincer mcp probe`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpToolInfo {
    pub name: String,
    pub remote_name: String,
    pub description: String,
}

struct Slot {
    name: String,
    safe_name: String,
    config: McpServerConfig,
    /// Stops this server alone (removed or changed by a reload).
    stop: CancellationToken,
    state: watch::Sender<McpServerState>,
    live: Mutex<Option<Live>>,
}

#[derive(Clone)]
struct Live {
    peer: Peer<RoleClient>,
    tools: Vec<Arc<McpTool>>,
}

impl Slot {
    fn update(&self, f: impl FnOnce(&mut McpServerState)) {
        self.state.send_modify(f);
    }

    fn live(&self) -> Option<Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The configured MCP servers, started once and shared (cheap to clone). A config reload
/// changes the lineup in place ([`McpServers::reconfigure`]): every handle sees it.
#[derive(Clone)]
pub struct McpServers {
    slots: Arc<RwLock<BTreeMap<String, Arc<Slot>>>>,
    /// Cancels every supervisor (gateway shutdown); each slot's own token is a child of it.
    stop: CancellationToken,
    clock: SharedClock,
}

/// What [`McpServers::reconfigure`] did, by server name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpChanges {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
}

fn transport_name(config: &McpServerConfig) -> &'static str {
    match (&config.command, config.transport) {
        (Some(_), _) => "stdio",
        (None, McpTransport::StreamableHttp) => "streamable-http",
        (None, McpTransport::Sse) => "sse",
    }
}

/// `[A-Za-z0-9_-]`, as tool names allow.
fn sanitize(raw: &str) -> String {
    raw.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect()
}

impl McpServers {
    /// Starts a supervisor for every enabled server. Must be called inside a tokio runtime.
    pub fn start(config: &McpConfig, clock: SharedClock) -> McpServers {
        let servers =
            McpServers { slots: Arc::new(RwLock::new(BTreeMap::new())), stop: CancellationToken::new(), clock };
        servers.reconfigure(config);
        servers
    }

    /// Applies a new `mcp.servers` (a config reload): servers no longer configured are stopped
    /// (their process group killed), new ones started, and ones whose settings changed restarted;
    /// untouched servers keep their connection. A turn that still holds a stopped server's tool
    /// gets a tool error saying it was shut down.
    pub fn reconfigure(&self, config: &McpConfig) -> McpChanges {
        let mut changes = McpChanges::default();
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        slots.retain(|name, slot| {
            let keep = config.servers.get(name) == Some(&slot.config);
            if !keep {
                slot.stop.cancel();
                if config.servers.contains_key(name) {
                    changes.restarted.push(name.clone());
                } else {
                    changes.stopped.push(name.clone());
                }
            }
            keep
        });
        for (name, server) in &config.servers {
            if slots.contains_key(name) {
                continue;
            }
            let mut safe_name: String = sanitize(name);
            safe_name.truncate(SERVER_NAME_MAX);
            if safe_name.is_empty() {
                safe_name = "mcp".into();
            }
            let state = McpServerState {
                name: name.clone(),
                transport: transport_name(server),
                status: if server.enabled { McpStatus::Starting } else { McpStatus::Disabled },
                tools: Vec::new(),
                last_error: None,
                restarts: 0,
                next_attempt_ms: None,
                pid: None,
            };
            let slot = Arc::new(Slot {
                name: name.clone(),
                safe_name,
                config: server.clone(),
                stop: self.stop.child_token(),
                state: watch::Sender::new(state),
                live: Mutex::new(None),
            });
            if server.enabled {
                tokio::spawn(supervise(slot.clone(), self.clock.clone(), slot.stop.clone()));
            }
            slots.insert(name.clone(), slot);
            if !changes.restarted.contains(name) {
                changes.started.push(name.clone());
            }
        }
        changes
    }

    fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// Every server's state, by name.
    pub fn states(&self) -> Vec<McpServerState> {
        self.slots().iter().map(|s| s.state.borrow().clone()).collect()
    }

    pub fn state(&self, name: &str) -> Option<McpServerState> {
        self.slot(name).map(|s| s.state.borrow().clone())
    }

    /// Watches one server's state (tests and `doctor` wait on it).
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<McpServerState>> {
        self.slot(name).map(|s| s.state.subscribe())
    }

    /// The tools of every ready server, with the server's name.
    pub fn tools(&self) -> Vec<(String, Arc<dyn Tool>)> {
        let mut out = Vec::new();
        for slot in self.slots() {
            if let Some(live) = slot.live() {
                out.extend(live.tools.iter().map(|t| (slot.name.clone(), t.clone() as Arc<dyn Tool>)));
            }
        }
        out
    }

    /// Stops every server (process groups killed, HTTP sessions dropped).
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Connects to one configured server on a connection of its own, lists its tools and
    /// disconnects (`pincer mcp probe <name>`); the shared connection is not touched.
    pub async fn probe(&self, name: &str, clock: &SharedClock) -> Result<Vec<McpToolInfo>, String> {
        let slot = self.slot(name).ok_or_else(|| {
            let known: Vec<_> = self.slots().iter().map(|s| s.name.clone()).collect();
            format!(
                "no MCP server `{name}` in mcp.servers (configured: {})",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )
        })?;
        let conn = connect(&slot, clock).await?;
        let tools = list_tools(&slot, &conn.service, clock).await;
        let _ = conn.service.cancel().await;
        kill_group(conn.pid);
        Ok(tools?
            .iter()
            .map(|t| McpToolInfo {
                name: t.spec.name.clone(),
                remote_name: t.remote.clone(),
                description: t.spec.description.clone(),
            })
            .collect())
    }
}

impl Drop for McpServers {
    fn drop(&mut self) {
        // The last handle going away stops the supervisors.
        if Arc::strong_count(&self.slots) == 1 {
            self.stop.cancel();
        }
    }
}

struct Connection {
    service: RunningService<RoleClient, ()>,
    pid: Option<u32>,
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: plain syscall; the server leads its own process group.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}

/// Kills a server's process group when dropped, unless disarmed.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

/// Runs one server for the life of the gateway.
async fn supervise(slot: Arc<Slot>, clock: SharedClock, stop: CancellationToken) {
    if let Err(e) = slot.config.validate(&slot.name) {
        slot.update(|s| {
            s.status = McpStatus::Failed;
            s.last_error = Some(e);
        });
        return;
    }
    let mut failures: u32 = 0;
    let mut ever_ready = false;
    loop {
        slot.update(|s| {
            s.status = McpStatus::Starting;
            s.next_attempt_ms = None;
        });
        let attempt = async {
            let conn = connect(&slot, &clock).await?;
            match list_tools(&slot, &conn.service, &clock).await {
                Ok(tools) => Ok((conn, tools)),
                Err(e) => {
                    kill_group(conn.pid);
                    Err(e)
                }
            }
        };
        let outcome = tokio::select! {
            r = attempt => r,
            _ = stop.cancelled() => return,
        };
        match outcome {
            Ok((conn, tools)) => {
                failures = 0;
                let names: Vec<String> = tools.iter().map(|t| t.spec.name.clone()).collect();
                *slot.live.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Live { peer: conn.service.peer().clone(), tools });
                let restarted = ever_ready;
                ever_ready = true;
                slot.update(|s| {
                    s.status = McpStatus::Ready;
                    s.tools = names;
                    s.pid = conn.pid;
                    s.last_error = None;
                    if restarted {
                        s.restarts += 1;
                    }
                });
                let token = conn.service.cancellation_token();
                let pid = conn.pid;
                let ended = tokio::select! {
                    r = conn.service.waiting() => Some(r),
                    _ = stop.cancelled() => None,
                };
                *slot.live.lock().unwrap_or_else(|e| e.into_inner()) = None;
                if ended.is_none() {
                    token.cancel();
                    kill_group(pid);
                    return;
                }
                kill_group(pid);
                slot.update(|s| {
                    s.tools.clear();
                    s.pid = None;
                    s.last_error = Some(match &s.transport {
                        &"stdio" => "the server process exited or closed its output".to_string(),
                        _ => "the connection to the server closed".to_string(),
                    });
                });
            }
            Err(e) => {
                failures += 1;
                slot.update(|s| s.last_error = Some(e));
            }
        }
        let delay = (BACKOFF_START_MS << failures.saturating_sub(1).min(6)).min(BACKOFF_MAX_MS);
        let next = clock.now_ms().saturating_add(delay);
        slot.update(|s| {
            s.status = McpStatus::Backoff;
            s.next_attempt_ms = Some(next);
        });
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Starts the process or opens the HTTP session, and runs MCP's `initialize`, within
/// `connectionTimeoutMs`.
async fn connect(slot: &Slot, clock: &SharedClock) -> Result<Connection, String> {
    let cfg = &slot.config;
    let deadline = clock.now_ms().saturating_add(cfg.connection_timeout_ms as i64);
    let name = &slot.name;
    let work = async {
        if let Some(command) = &cfg.command {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(&cfg.args).env_clear();
            for key in ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL", "TERM"] {
                if let Ok(v) = std::env::var(key) {
                    cmd.env(key, v);
                }
            }
            cmd.envs(&cfg.env);
            if let Some(cwd) = &cfg.cwd {
                cmd.current_dir(cwd);
            }
            cmd.process_group(0);
            let (transport, stderr) =
                rmcp::transport::TokioChildProcess::builder(cmd)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start `{command}`: {e}; check mcp.servers.{name}.command"))?;
            let pid = transport.id();
            if let Some(stderr) = stderr {
                let server = name.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::debug!(server = %server, "mcp stderr: {line}");
                    }
                });
            }
            // Kills the server's whole group unless the handshake completes (error, timeout, stop).
            let mut guard = GroupKill(pid);
            let served = ().serve(transport).await;
            match served {
                Ok(service) => {
                    guard.0 = None;
                    Ok(Connection { service, pid })
                }
                Err(e) => {
                    Err(format!("`{command}` did not complete the MCP handshake: {}", plain_error(&e.to_string())))
                }
            }
        } else {
            let url = cfg.url.clone().unwrap_or_default();
            let mut headers = std::collections::HashMap::new();
            for (k, v) in &cfg.headers {
                let key = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("mcp.servers.{name}.headers.{k}: not a valid HTTP header name"))?;
                let value = reqwest::header::HeaderValue::from_str(v)
                    .map_err(|_| format!("mcp.servers.{name}.headers.{k}: not a valid HTTP header value"))?;
                headers.insert(key, value);
            }
            pincer_core::tls::install_default_provider();
            let client =
                reqwest::Client::builder().build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
            let served = if cfg.transport == McpTransport::Sse {
                let mut map = reqwest::header::HeaderMap::new();
                map.extend(headers);
                let transport = sse::LegacySse::connect(client, &url, map).await?;
                ().serve(transport).await
            } else {
                let config =
                    rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url.clone())
                        .custom_headers(headers);
                ().serve(rmcp::transport::StreamableHttpClientTransport::with_client(client, config)).await
            };
            served
                .map(|service| Connection { service, pid: None })
                .map_err(|e| format!("{url} did not complete the MCP handshake: {}", plain_error(&e.to_string())))
        }
    };
    tokio::select! {
        r = work => r,
        _ = clock.sleep_until(deadline) => Err(format!(
            "no MCP handshake within {} ms (mcp.servers.{name}.connectionTimeoutMs)", cfg.connection_timeout_ms
        )),
    }
}

/// Lists the server's tools, applies `toolFilter`, and namespaces them.
async fn list_tools(
    slot: &Arc<Slot>,
    service: &RunningService<RoleClient, ()>,
    clock: &SharedClock,
) -> Result<Vec<Arc<McpTool>>, String> {
    let deadline = clock.now_ms().saturating_add(slot.config.request_timeout_ms as i64);
    let listed = tokio::select! {
        r = service.peer().list_all_tools() => r.map_err(|e| format!("tools/list failed: {e}"))?,
        _ = clock.sleep_until(deadline) => return Err(format!(
            "tools/list got no answer within {} ms (mcp.servers.{}.requestTimeoutMs)", slot.config.request_timeout_ms, slot.name
        )),
    };
    let filter = &slot.config.tool_filter;
    let mut tools = Vec::new();
    for tool in listed {
        let remote = tool.name.to_string();
        if !filter.include.is_empty() && !filter.include.iter().any(|p| crate::policy::glob_match(p, &remote)) {
            continue;
        }
        if filter.exclude.iter().any(|p| crate::policy::glob_match(p, &remote)) {
            continue;
        }
        let name = format!("{}__{}", slot.safe_name, sanitize(&remote));
        if name.len() > TOOL_NAME_MAX {
            tracing::warn!(server = %slot.name, "MCP tool `{remote}` skipped: `{name}` is longer than {TOOL_NAME_MAX} characters");
            continue;
        }
        let description = tool
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("Provided by MCP server \"{}\".", slot.name));
        let mut parameters = Value::Object((*tool.input_schema).clone());
        if parameters.get("type").is_none() {
            parameters["type"] = Value::String("object".into());
        }
        tools.push(Arc::new(McpTool {
            spec: ToolSpec { name, description, parameters },
            remote,
            server: slot.name.clone(),
            request_timeout_ms: slot.config.request_timeout_ms as i64,
            slot_live: SlotRef(Arc::downgrade(slot)),
        }));
    }
    Ok(tools)
}

struct SlotRef(std::sync::Weak<Slot>);

/// One MCP tool as the model sees it.
pub struct McpTool {
    spec: ToolSpec,
    remote: String,
    server: String,
    request_timeout_ms: i64,
    slot_live: SlotRef,
}

impl McpTool {
    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let slot = self
            .slot_live
            .0
            .upgrade()
            .ok_or_else(|| ToolError::Failed(format!("MCP server `{}` was shut down", self.server)))?;
        let Some(live) = slot.live() else {
            let s = slot.state.borrow().clone();
            let when = s
                .next_attempt_ms
                .map(|t| format!("; next attempt in {} s", ((t - ctx.clock.now_ms()).max(0) + 999) / 1_000))
                .unwrap_or_default();
            return Err(ToolError::Failed(format!(
                "MCP server `{}` is not connected (status {:?}{}{when}); try again later",
                self.server,
                s.status,
                s.last_error.map(|e| format!(", last error: {e}")).unwrap_or_default()
            )));
        };
        let Value::Object(arguments) = args else {
            return Err(ToolError::InvalidArguments(format!(
                "{}: the arguments must be a JSON object",
                self.spec.name
            )));
        };
        let params = CallToolRequestParams::new(self.remote.clone()).with_arguments(arguments);
        let deadline = ctx.clock.now_ms().saturating_add(self.request_timeout_ms).min(ctx.deadline_ms);
        let result = tokio::select! {
            r = live.peer.call_tool(params) => r,
            _ = ctx.clock.sleep_until(deadline) => return Err(ToolError::Failed(format!(
                "MCP server `{}` did not answer `{}` within {} ms (mcp.servers.{}.requestTimeoutMs)",
                self.server, self.remote, self.request_timeout_ms, self.server
            ))),
            _ = ctx.cancel.cancelled() => return Err(ToolError::Cancelled(self.spec.name.clone())),
        };
        match result {
            Ok(result) => render(result, &self.server, &self.remote),
            Err(rmcp::ServiceError::McpError(e)) => Err(ToolError::Failed(format!(
                "MCP server `{}` refused `{}`: {}",
                self.server,
                self.remote,
                wrap_external(&e.message, ExternalSource::Mcp)
            ))),
            Err(e) => Err(ToolError::Failed(format!(
                "MCP server `{}` failed during `{}`: {}; if the server crashed, it is restarted",
                self.server,
                self.remote,
                plain_error(&e.to_string())
            ))),
        }
    }
}

/// rmcp's transport errors name Rust types (`Transport [rmcp::…<…>] error: …`); the model and the
/// owner only need what the server did.
fn plain_error(text: &str) -> String {
    match text.rfind("] error: ") {
        Some(i) => text[i + "] error: ".len()..].to_string(),
        None => text.to_string(),
    }
}

fn render(result: CallToolResult, server: &str, tool: &str) -> Result<ToolOutput, ToolError> {
    let mut parts = Vec::new();
    for block in &result.content {
        match block {
            ContentBlock::Text(t) => parts.push(t.text.clone()),
            ContentBlock::Image(i) => parts.push(format!("[image: {}]", i.mime_type)),
            ContentBlock::Audio(a) => parts.push(format!("[audio: {}]", a.mime_type)),
            other => parts.push(serde_json::to_string(other).unwrap_or_default()),
        }
    }
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(serde_json::to_string_pretty(structured).unwrap_or_default());
    }
    let text =
        if parts.is_empty() { format!("(MCP tool {server}/{tool} returned no content)") } else { parts.join("\n") };
    if result.is_error == Some(true) {
        return Err(ToolError::Failed(format!(
            "MCP tool `{tool}` on `{server}` reported an error:\n{}",
            wrap_external(&text, ExternalSource::Mcp)
        )));
    }
    Ok(ToolOutput::external(text, ExternalSource::Mcp))
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(self.invoke(args, ctx))
    }
}
