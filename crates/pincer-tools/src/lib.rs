//! The tools an agent turn can call, and what decides which ones it may call.
//!
//! - [`tool`]: the [`Tool`] trait ([`ToolSpec`], [`ToolContext`], [`ToolOutput`], [`ToolError`])
//!   and OpenClaw's external-content wrapper for untrusted results.
//! - [`registry`]: the [`Toolbox`] (built-ins + MCP, under the policy) and the per-turn [`ToolSet`]
//!   whose [`ToolSet::call`] turns every failure into a tool error the model sees.
//! - [`policy`]: `tools.profile`, `tools.allow`/`alsoAllow`/`deny`, OpenClaw's groups, a job's
//!   `toolsAllow`.
//! - [`web`]: `web_fetch` (readable content, SSRF policy checked on the connected address) and
//!   `web_search` (Brave, SearXNG).
//! - [`exec`]: `exec` under `tools.exec.mode`, with the allowlist/safe-bins check and the approval
//!   hook of `ask`.
//! - [`fs`]: `read`, `write`, `edit`, confined to the workspace by `openat2(RESOLVE_BENEATH)`.
//! - [`mcp`]: MCP servers over `rmcp` — shared, supervised, restarted with backoff.
//! - [`workspace`]: the bootstrap files and skills of an OpenClaw-compatible workspace.
//! - [`config`]: the `tools.*` and `mcp.*` configuration sections.
//!
//! **Architecture Invariant:** this crate depends only on `pincer-core` among Pincer's crates; it
//! knows nothing of sessions, transcripts or the gateway. Every timeout runs on the injected
//! `Clock`, and a tool result can never change the policy (the policy is read from configuration
//! only). Tools that need the gateway's services — `message`, `cron`, `sessions_*` — are written in
//! `pincer-gateway` against the same [`Tool`] trait and added with [`Toolbox::with_tool`]; the
//! policy's catalog already places them in their groups.
//!
//! How the turn runner uses it (the integration step):
//!
//! ```text
//! // at gateway start
//! let mcp = McpServers::start(&config.mcp, clock.clone());            // shared, supervised
//! let approvals = ApprovalQueue::new();                               // serves exec.approval.*
//! let (toolbox, notes) = standard_toolbox(&config.tools, Some(mcp.clone()), Some(Arc::new(approvals.clone())));
//! // per turn
//! let tools = toolbox.for_turn(&job.tools_allow);                     // policy applied here
//! let specs = tools.specs();                                          // → provider `tools`
//! let ws = Workspace::new(workspace_dir);
//! let system = [ws.project_context_section(max, total), ws.skills_section()];
//! // per tool call (parallel calls: one future each)
//! let mut ctx = ToolContext::new(workspace_dir, clock.clone(), per_tool_timeout_ms);
//! ctx.call_id = call.id; ctx.session_key = Some(session_key); ctx.cancel = turn_cancel.child_token();
//! match tools.call(&call.name, &call.arguments_json, &ctx).await {
//!     Ok(out) => transcript.tool_result(call.id, out.for_model(), false),
//!     Err(e) => transcript.tool_result(call.id, e.to_string(), true /* class: e.class() */),
//! }
//! ```

pub mod config;
pub mod exec;
pub mod fs;
pub mod mcp;
pub mod policy;
pub mod registry;
pub mod tool;
pub mod web;
pub mod workspace;

pub use config::{ExecConfig, ExecMode, McpConfig, McpServerConfig, ToolsConfig};
pub use exec::Exec;
pub use exec::approval::{ApprovalDecision, ApprovalEvent, ApprovalQueue, ApprovalRequest, ExecApprover};
pub use fs::{EditTool, ReadTool, WriteTool};
pub use mcp::{McpChanges, McpServerState, McpServers, McpStatus};
pub use policy::{Profile, ToolPolicy};
pub use registry::{ToolSet, Toolbox};
pub use tool::{ExternalSource, Tool, ToolContext, ToolError, ToolOutput, ToolSpec, wrap_external};
pub use web::{WebFetch, WebSearch};
pub use workspace::{Skill, Workspace};

use std::sync::Arc;

/// Builds the toolbox the gateway uses from configuration: the built-in tools that are enabled and
/// configured, plus the MCP servers. A built-in whose settings are unusable (e.g. `web_search`
/// without an API key) is left out; its reason, and a note when `exec` can run nothing, are
/// returned for `doctor` to show.
pub fn standard_toolbox(
    tools: &ToolsConfig,
    mcp: Option<McpServers>,
    approver: Option<Arc<dyn ExecApprover>>,
) -> (Toolbox, Vec<String>) {
    let mut problems: Vec<String> = exec::doctor_note(&tools.exec).into_iter().collect();
    let mut toolbox = Toolbox::new(ToolPolicy::from_config(tools))
        .with_tool(Arc::new(ReadTool::default()))
        .with_tool(Arc::new(WriteTool::default()))
        .with_tool(Arc::new(EditTool::default()))
        .with_tool(Arc::new(Exec::new(tools.exec.clone(), approver)));
    if tools.web.fetch.enabled {
        match WebFetch::new(tools.web.fetch.clone(), Arc::new(web::SystemResolver)) {
            Ok(t) => toolbox = toolbox.with_tool(Arc::new(t)),
            Err(e) => problems.push(e),
        }
    }
    if tools.web.search.enabled {
        match WebSearch::new(tools.web.search.clone()) {
            Ok(t) => toolbox = toolbox.with_tool(Arc::new(t)),
            Err(e) => problems.push(e),
        }
    }
    if let Some(mcp) = mcp {
        toolbox = toolbox.with_mcp(mcp);
    }
    (toolbox, problems)
}

/// One `doctor` check of `tools.*` as configured (no gateway needed): fine, or a problem with
/// its fix.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigCheck {
    /// `tools.exec`, `tools.web_search`.
    pub check: &'static str,
    pub problem: bool,
    pub message: String,
    pub fix: Option<String>,
}

/// What `doctor` says about `tools.*`: whether `exec` can run anything (and how to let it), and
/// whether `web_search`'s provider settings work. An untouched `tools.web.search` is only off.
pub fn config_checks(tools: &ToolsConfig) -> Vec<ConfigCheck> {
    let mut out = Vec::new();
    let exec = &tools.exec;
    out.push(match exec::doctor_advice(exec) {
        Some((message, fix)) => ConfigCheck { check: "tools.exec", problem: true, message, fix: Some(fix) },
        None => ConfigCheck {
            check: "tools.exec",
            problem: false,
            message: format!(
                "exec runs in {} mode: {} allowlist entries, {} safe bins",
                serde_json::to_value(exec.mode).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                exec.allowlist.len(),
                exec.safe_bins.len()
            ),
            fix: None,
        },
    });
    let search = &tools.web.search;
    if search.enabled {
        out.push(match WebSearch::new(search.clone()) {
            Ok(_) => ConfigCheck {
                check: "tools.web_search",
                problem: false,
                message: format!("web_search uses {:?}", search.provider),
                fix: None,
            },
            Err(e) => {
                let untouched = *search == config::WebSearchConfig::default();
                ConfigCheck {
                    check: "tools.web_search",
                    problem: !untouched,
                    message: if untouched {
                        "web_search is off until a provider is configured".into()
                    } else {
                        format!("web_search is not available: {e}")
                    },
                    fix: Some(format!(
                        "{e}; or set tools.web.search.enabled to false (a saved change to tools.* applies without a restart)"
                    )),
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    /// The invariant in the crate docs: among Pincer's crates, only `pincer-core` is a dependency.
    #[test]
    fn depends_on_no_pincer_crate_but_core() {
        let manifest = include_str!("../Cargo.toml");
        let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
        let pincer: Vec<&str> = deps
            .lines()
            .filter(|l| l.starts_with("pincer-"))
            .map(|l| l.split(['.', ' ', '=']).next().unwrap())
            .collect();
        assert_eq!(pincer, ["pincer-core"]);
    }
}
