//! The agent's tools at the boundary: `exec.approval.list|get|resolve` and
//! `exec.approvals.get|set` (the policy and the `allow-always` grants) over the gateway's
//! [`ApprovalQueue`] (with OpenClaw's `exec.approval.requested`/`resolved` events and an audit
//! row per decision), and `mcp.servers.list|probe` over the shared MCP servers.

use std::sync::Arc;

use pincer_auth::Peer;
use pincer_auth::audit::AuditEntry;
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::tools as wire;
use pincer_tools::{ApprovalDecision, ApprovalEvent, ApprovalRequest, McpServerState};
use serde_json::json;

use crate::router::{Ctx, Methods};
use crate::state::AppState;

/// The audit actions of exec approvals.
pub mod action {
    pub const APPROVAL_RESOLVED: &str = "exec.approval.resolved";
    pub const APPROVAL_EXPIRED: &str = "exec.approval.expired";
    pub const GRANT_REVOKED: &str = "exec.approval.grant.revoked";
}

/// The scope that receives approval events and may decide them.
const APPROVALS_SCOPE: &str = "operator.approvals";

pub fn register(methods: &mut Methods) {
    methods.add::<wire::ExecApprovalsGet, _, _>(|c: Ctx, _| async move { Ok(approvals_snapshot(&c.state)) });
    methods.add::<wire::ExecApprovalsSet, _, _>(|c: Ctx, p: wire::ExecApprovalsSetParams| async move {
        let current = approvals_snapshot(&c.state);
        if current.exists {
            match p.base_hash.as_deref().map(str::trim) {
                None | Some("") => {
                    return Err(ErrorShape::invalid_request(
                        "exec approvals base hash required; re-run exec.approvals.get and retry",
                    ));
                }
                Some(h) if Some(h) != current.hash.as_deref() => {
                    return Err(ErrorShape::invalid_request(
                        "exec approvals changed since last load; re-run exec.approvals.get and retry",
                    ));
                }
                Some(_) => {}
            }
        }
        // The policy is the config's: a file that changes it is refused with the key to edit.
        let policy = |d: &Option<wire::ExecApprovalsPolicy>| d.as_ref().map(|d| (d.security.clone(), d.ask.clone()));
        let wanted = policy(&p.file.defaults);
        if wanted.as_ref().is_some_and(|w| Some(w) != policy(&current.file.defaults).as_ref()) {
            return Err(ErrorShape::invalid_request(
                "the exec policy (defaults.security, defaults.ask) is tools.exec.mode in Pincer's config: \
                 run `pincer config set tools.exec.mode deny|allowlist|ask|full`; this method sets the allowlist grants",
            ));
        }
        // Pincer's one agent runs under every agent's entry: the grants are their union.
        let patterns: Vec<String> = p
            .file
            .agents
            .values()
            .flat_map(|a| a.allowlist.iter().map(|e| e.pattern.trim().to_string()))
            .filter(|p| !p.is_empty())
            .collect();
        c.state.tools.approvals.set_grants(patterns).map_err(ErrorShape::unavailable)?;
        Ok(approvals_snapshot(&c.state))
    });
    methods.add::<wire::ExecApprovalList, _, _>(|c: Ctx, _| async move {
        Ok(c.state.tools.approvals.pending().iter().map(approval).collect())
    });
    methods.add::<wire::ExecApprovalGet, _, _>(|c: Ctx, p: wire::ApprovalId| async move {
        let r = c.state.tools.approvals.find(&p.id).map_err(ErrorShape::invalid_request)?;
        let body = request_body(&r);
        Ok(wire::ExecApprovalDetail {
            id: r.id.clone(),
            command_text: r.command.clone(),
            command_preview: None,
            allowed_decisions: ApprovalDecision::ALL.iter().map(|d| d.as_str().to_string()).collect(),
            host: body.host,
            node_id: None,
            agent_id: body.agent_id,
            expires_at_ms: r.expires_at_ms,
            extra: Default::default(),
        })
    });
    methods.add::<wire::ExecApprovalResolve, _, _>(|c: Ctx, p: wire::ExecApprovalResolveParams| async move {
        let decision = ApprovalDecision::parse(&p.decision).map_err(ErrorShape::invalid_request)?;
        let request = c.state.tools.approvals.resolve(&p.id, decision).map_err(ErrorShape::invalid_request)?;
        let resolved_by = c.caller.presence.display_name.clone().unwrap_or_else(|| c.caller.client_id.as_str().into());
        let now = c.state.clock.now_ms();
        let event = wire::ExecApprovalResolved {
            id: request.id.clone(),
            decision: decision.as_str().into(),
            resolved_by: Some(resolved_by.clone()),
            ts: now,
            request: request_body(&request),
            extra: Default::default(),
        };
        c.state.events.emit("exec.approval.resolved", to_json(&event), Some(APPROVALS_SCOPE));
        c.state
            .devices
            .record(AuditEntry {
                action: action::APPROVAL_RESOLVED,
                device_id: c.caller.device_id.clone(),
                peer: Some(Peer {
                    conn_id: c.caller.conn_id.clone(),
                    remote_ip: c.caller.remote.ip(),
                    client_id: Some(c.caller.client_id),
                }),
                detail: json!({
                    "approvalId": request.id,
                    "decision": decision.as_str(),
                    "command": request.command,
                    "sessionKey": request.session_key,
                    "resolvedBy": resolved_by,
                }),
            })
            .await;
        Ok(wire::ResolveResult { ok: true, extra: Default::default() })
    });
    methods.add::<wire::ExecApprovalGrantsList, _, _>(|c: Ctx, p: wire::GrantsListParams| async move {
        use pincer_tools::ExecApprover;
        let limit = p.limit.unwrap_or(200).clamp(1, 500) as usize;
        let grants = c.state.tools.approvals.granted().into_iter().take(limit).map(standing_grant).collect();
        Ok(wire::GrantsListResult { grants, extra: Default::default() })
    });
    methods.add::<wire::ExecApprovalGrantsRevoke, _, _>(|c: Ctx, p: wire::GrantRevokeParams| async move {
        use pincer_tools::ExecApprover;
        let wanted = p.grant_id.trim();
        let granted = c.state.tools.approvals.granted();
        let Some(pattern) = granted.iter().find(|g| grant_id(g) == wanted || g.as_str() == wanted).cloned() else {
            return Ok(wire::GrantRevokeResult { outcome: "not-found".into(), extra: Default::default() });
        };
        let next = granted.into_iter().filter(|g| *g != pattern).collect();
        c.state.tools.approvals.set_grants(next).map_err(ErrorShape::unavailable)?;
        let revoked_by = c.caller.presence.display_name.clone().unwrap_or_else(|| c.caller.client_id.as_str().into());
        c.state
            .devices
            .record(AuditEntry {
                action: action::GRANT_REVOKED,
                device_id: c.caller.device_id.clone(),
                peer: Some(Peer {
                    conn_id: c.caller.conn_id.clone(),
                    remote_ip: c.caller.remote.ip(),
                    client_id: Some(c.caller.client_id),
                }),
                detail: json!({ "grantId": grant_id(&pattern), "pattern": pattern, "revokedBy": revoked_by }),
            })
            .await;
        Ok(wire::GrantRevokeResult { outcome: "revoked".into(), extra: Default::default() })
    });
    methods.add::<wire::McpServersList, _, _>(|c: Ctx, _| async move {
        Ok(wire::McpServersListResult { servers: mcp_servers(&c.state), extra: Default::default() })
    });
    methods.add::<wire::McpServersProbe, _, _>(|c: Ctx, p: wire::McpProbeParams| async move {
        let mcp = &c.state.tools.mcp;
        let tools = mcp.probe(&p.name, &c.state.clock).await.map_err(ErrorShape::invalid_request)?;
        Ok(wire::McpProbeResult {
            name: p.name,
            tools: tools
                .into_iter()
                .map(|t| wire::McpProbeTool {
                    name: t.name,
                    remote_name: t.remote_name,
                    description: t.description,
                    extra: Default::default(),
                })
                .collect(),
            extra: Default::default(),
        })
    });
}

/// The grants file as OpenClaw's `exec.approvals.get` shows its own: `defaults` from
/// `tools.exec.mode`, the grants as the allowlist of every agent (`*`).
/// A grant's id: stable for its pattern (the grants file keeps patterns only), short enough to type.
fn grant_id(pattern: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(pattern.as_bytes());
    format!("grant-{}", digest[..6].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn standing_grant(pattern: String) -> wire::StandingGrant {
    wire::StandingGrant {
        grant_id: grant_id(&pattern),
        agent_id: Some(pincer_cron::job::DEFAULT_AGENT.into()),
        command: pattern,
        ..Default::default()
    }
}

fn approvals_snapshot(state: &AppState) -> wire::ExecApprovalsSnapshot {
    use pincer_tools::ExecApprover;
    let path =
        state.tools.approvals.grants_file().unwrap_or_else(|| state.paths.state_dir.join(crate::EXEC_APPROVALS_FILE));
    let bytes = std::fs::read(&path).ok();
    let hash = bytes.as_ref().map(|b| {
        use sha2::{Digest, Sha256};
        Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect()
    });
    let (security, ask) = match state.config.get().tools.exec.mode {
        pincer_tools::ExecMode::Deny => ("deny", "off"),
        pincer_tools::ExecMode::Allowlist => ("allowlist", "off"),
        pincer_tools::ExecMode::Ask => ("allowlist", "on-miss"),
        pincer_tools::ExecMode::Full => ("full", "off"),
    };
    let allowlist = state
        .tools
        .approvals
        .granted()
        .into_iter()
        .map(|pattern| wire::ExecAllowlistEntry { pattern, extra: Default::default() })
        .collect();
    wire::ExecApprovalsSnapshot {
        path: path.display().to_string(),
        exists: bytes.is_some(),
        hash,
        file: wire::ExecApprovalsFile {
            version: 1,
            defaults: Some(wire::ExecApprovalsPolicy {
                security: Some(security.into()),
                ask: Some(ask.into()),
                ask_fallback: Some("deny".into()),
                extra: Default::default(),
            }),
            agents: [("*".to_string(), wire::ExecApprovalsAgent { allowlist, extra: Default::default() })].into(),
            extra: Default::default(),
        },
        extra: Default::default(),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// OpenClaw's request record for one of Pincer's approvals: the gateway's own host, the
/// allowlist policy asking on a miss, the main agent.
fn request_body(r: &ApprovalRequest) -> wire::ExecApprovalRequest {
    let res_path = r.argv.as_ref().and_then(|a| a.first()).filter(|w| w.starts_with('/')).cloned();
    wire::ExecApprovalRequest {
        command: r.command.clone(),
        command_argv: r.argv.clone(),
        cwd: Some(r.cwd.clone()),
        node_id: None,
        host: Some("gateway".into()),
        security: Some(to_json(&pincer_tools::ExecMode::Allowlist).as_str().unwrap_or_default().to_string()),
        ask: Some("on-miss".into()),
        agent_id: Some("main".into()),
        resolved_path: res_path,
        session_key: r.session_key.clone(),
        reason: Some(r.reason.clone()),
        extra: Default::default(),
    }
}

fn approval(r: &ApprovalRequest) -> wire::ExecApproval {
    wire::ExecApproval {
        id: r.id.clone(),
        request: request_body(r),
        created_at_ms: r.created_at_ms,
        expires_at_ms: r.expires_at_ms,
        extra: Default::default(),
    }
}

/// Every configured MCP server's state, for `mcp.servers.list`, `health` and `doctor`.
pub fn mcp_servers(state: &AppState) -> Vec<wire::McpServerInfo> {
    state.tools.mcp.states().iter().map(mcp_info).collect()
}

fn mcp_info(s: &McpServerState) -> wire::McpServerInfo {
    wire::McpServerInfo {
        name: s.name.clone(),
        transport: s.transport.to_string(),
        state: to_json(&s.status).as_str().unwrap_or_default().to_string(),
        tool_count: s.tools.len() as u32,
        tools: s.tools.clone(),
        last_error: s.last_error.clone(),
        restarts: s.restarts,
        next_attempt_at_ms: s.next_attempt_ms,
        pid: s.pid,
        extra: Default::default(),
    }
}

/// Turns the approval queue's news into events for `operator.approvals` clients and audit rows
/// for approvals nobody decided (the supervised `approvals` task; it keeps nothing in memory).
pub async fn forward_approvals(state: Arc<AppState>) -> pincer_core::TaskResult {
    let mut events = state.tools.approvals.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "exec approvals: events were dropped; clients can list pending approvals");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
        };
        match event {
            ApprovalEvent::Requested(r) => {
                tracing::info!(approval = %r.id, command = %r.command, "exec: waiting for an operator's approval");
                state.events.emit("exec.approval.requested", to_json(&approval(&r)), Some(APPROVALS_SCOPE));
            }
            // Resolutions are announced and audited by `exec.approval.resolve`, which knows who.
            ApprovalEvent::Resolved { .. } => {}
            ApprovalEvent::Expired(r) => {
                tracing::info!(approval = %r.id, command = %r.command, "exec: no decision in time; the command did not run");
                state
                    .devices
                    .record(AuditEntry {
                        action: action::APPROVAL_EXPIRED,
                        device_id: None,
                        peer: None,
                        detail: json!({
                            "approvalId": r.id,
                            "command": r.command,
                            "sessionKey": r.session_key,
                            "expiresAtMs": r.expires_at_ms,
                        }),
                    })
                    .await;
            }
        }
    }
}
