//! The registry: the built-in tools plus the live MCP tools, filtered by the [`ToolPolicy`] into the
//! [`ToolSet`] one turn sees. [`ToolSet::call`] is the one entry point the turn runner uses, and it
//! turns every failure — malformed JSON, an unknown or disallowed tool, a panic, a hang past the
//! deadline, an aborted turn — into a [`ToolError`] the model sees; it never panics or hangs.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::Value;

use crate::mcp::McpServers;
use crate::policy::ToolPolicy;
use crate::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec};

/// Every tool the gateway knows, and the policy that decides which of them a turn sees.
#[derive(Clone)]
pub struct Toolbox {
    builtins: Vec<Arc<dyn Tool>>,
    mcp: Option<McpServers>,
    policy: ToolPolicy,
}

impl Toolbox {
    pub fn new(policy: ToolPolicy) -> Toolbox {
        Toolbox { builtins: Vec::new(), mcp: None, policy }
    }

    /// Adds a built-in tool (a later tool with the same name replaces the earlier one).
    pub fn with_tool(mut self, tool: Arc<dyn Tool>) -> Toolbox {
        self.builtins.retain(|t| t.spec().name != tool.spec().name);
        self.builtins.push(tool);
        self
    }

    /// Adds the MCP servers' tools (read fresh at every [`Toolbox::for_turn`]).
    pub fn with_mcp(mut self, servers: McpServers) -> Toolbox {
        self.mcp = Some(servers);
        self
    }

    pub fn policy(&self) -> &ToolPolicy {
        &self.policy
    }

    /// The tools one turn may use: the configured policy narrowed by the job's `toolsAllow`
    /// (empty: no narrowing). Built-in names win over MCP names.
    pub fn for_turn(&self, job_allow: &[String]) -> ToolSet {
        let policy = self.policy.with_job_allow(job_allow);
        let mut tools: BTreeMap<String, Arc<dyn Tool>> = BTreeMap::new();
        if let Some(mcp) = &self.mcp {
            for (server, tool) in mcp.tools() {
                if policy.allows(&tool.spec().name, Some(&server)) {
                    tools.insert(tool.spec().name.clone(), tool);
                }
            }
        }
        for tool in &self.builtins {
            if policy.allows(&tool.spec().name, None) {
                tools.insert(tool.spec().name.clone(), tool.clone());
            }
        }
        ToolSet { tools }
    }
}

/// The tools that survived the policy for one turn. Only these are shown and callable.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl ToolSet {
    /// A set of exactly these tools, with no policy (tests, benchmarks).
    pub fn of(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> ToolSet {
        ToolSet { tools: tools.into_iter().map(|t| (t.spec().name.clone(), t)).collect() }
    }

    /// The specs to send to the model, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec().clone()).collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Whether every call names a tool of this set that changes nothing ([`Tool::read_only`]);
    /// an unknown name counts as one with effects.
    pub fn all_read_only<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> bool {
        names.into_iter().all(|name| self.tools.get(name).is_some_and(|t| t.read_only()))
    }

    /// This set less the owner-only tools ([`crate::policy::OWNER_ONLY`]), for a turn whose
    /// sender is not the owner: they are neither shown nor callable.
    pub fn without_owner_only(mut self) -> ToolSet {
        self.tools.retain(|name, _| !crate::policy::is_owner_only(name));
        self
    }

    /// Calls a tool with the arguments as the model wrote them (OpenAI sends a JSON string;
    /// Anthropic's object can be passed as its serialisation or through [`ToolSet::call_value`]).
    pub async fn call(&self, name: &str, raw_args: &str, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let trimmed = raw_args.trim();
        let args = if trimmed.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str::<Value>(trimmed).map_err(|e| {
                ToolError::InvalidArguments(format!(
                    "{name}: the arguments are not valid JSON ({e}); send one JSON object matching the tool's parameters"
                ))
            })?
        };
        self.call_value(name, args, ctx).await
    }

    /// Calls a tool with already-parsed arguments.
    pub async fn call_value(&self, name: &str, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Some(tool) = self.tools.get(name).cloned() else {
            let available = if self.tools.is_empty() { "(none)".to_string() } else { self.names().join(", ") };
            return Err(ToolError::UnknownTool { name: name.to_string(), available });
        };
        if !args.is_object() {
            return Err(ToolError::InvalidArguments(format!(
                "{name}: the arguments must be a JSON object, not {}",
                json_kind(&args)
            )));
        }
        if ctx.cancel.is_cancelled() {
            return Err(ToolError::Cancelled(name.to_string()));
        }
        let started = ctx.clock.now_ms();
        let task_ctx = ctx.clone();
        // A task of its own, so a panic is caught as a JoinError and a hang can be aborted (dropping
        // the tool's future kills its processes and closes its connections).
        let mut task = AbortOnDrop(tokio::spawn(async move { tool.call(args, &task_ctx).await }));
        let outcome = tokio::select! {
            joined = &mut task.0 => match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(ToolError::Panicked { tool: name.to_string(), detail: panic_text(e.into_panic()) }),
                Err(_) => Err(ToolError::Cancelled(name.to_string())),
            },
            _ = ctx.clock.sleep_until(ctx.deadline_ms) => {
                Err(ToolError::TimedOut { tool: name.to_string(), ms: ctx.deadline_ms - started })
            }
            _ = ctx.cancel.cancelled() => Err(ToolError::Cancelled(name.to_string())),
        };
        outcome
    }
}

/// Aborts the tool's task when the call ends or is dropped (a turn dropped mid-call must not leave
/// a command running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Runs `fut`, catching a panic as a [`ToolError::Panicked`]; for callers that do not go through
/// [`ToolSet::call`] (e.g. a probe from `doctor`).
pub async fn catch_panic<F>(tool: &str, fut: F) -> Result<ToolOutput, ToolError>
where
    F: std::future::Future<Output = Result<ToolOutput, ToolError>> + Send,
{
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(ToolError::Panicked { tool: tool.to_string(), detail: panic_text(p) }),
    }
}
