//! `pincer approvals list|approve|deny` (exec commands waiting for an operator, OpenClaw's
//! `exec.approval.*`), `pincer approvals grants|revoke` (the standing `allow-always` grants,
//! `exec.approval.grants.*`) and `pincer mcp list|probe` (the configured MCP servers).

use std::process::ExitCode;

use clap::Subcommand;
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_protocol::Scope;
use pincer_protocol::schema::NoParams;
use pincer_protocol::schema::tools::{
    ExecApprovalGrantsList, ExecApprovalGrantsRevoke, ExecApprovalList, ExecApprovalResolve, ExecApprovalResolveParams,
    GrantRevokeParams, GrantsListParams, McpProbeParams, McpServersList, McpServersProbe,
};

use crate::client::{Client, ClientError, ConnectArgs, Target};
use crate::output::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Commands an agent wants to run that wait for your decision (tools.exec.mode "ask").
    List {
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Let the command run (once; with --always its executables join the allowlist for good).
    Approve {
        /// The approval's id, or a unique prefix of it.
        id: String,
        /// Allow these executables from now on (OpenClaw's allow-always).
        #[arg(long)]
        always: bool,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Refuse the command; the agent is told it did not run.
    Deny {
        /// The approval's id, or a unique prefix of it.
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// The standing grants: executables an `approve --always` allowed for good.
    Grants {
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Take a standing grant back: its executables ask (or are refused) again.
    Revoke {
        /// The grant's id (`pincer approvals grants`), or its pattern.
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// The configured MCP servers: state, tools, last error.
    List {
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Connect to one server on a connection of its own and list its tools.
    Probe {
        /// The server's name under mcp.servers.
        name: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

fn explain(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Rpc(shape) => anyhow::anyhow!("{}", shape.message),
        e => e.into(),
    }
}

fn ago(ms: i64) -> String {
    if ms <= 0 { "now".into() } else { format!("{} s", (ms + 999) / 1_000) }
}

pub async fn approvals(cmd: ApprovalsCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = |c: &ConnectArgs| Target::resolve(c, paths, &process_env);
    const SCOPES: &[Scope] = &[Scope::Approvals];
    let (id, decision, c) = match cmd {
        ApprovalsCommand::List { c } => {
            let mut client = Client::connect(&target(&c)?, SCOPES).await?;
            let list = client.call::<ExecApprovalList>(&NoParams {}).await;
            client.close().await;
            let list = list.map_err(explain)?;
            if c.json {
                print_json(&list);
            } else if list.is_empty() {
                println!("No commands are waiting for approval.");
            } else {
                let now = pincer_core::Clock::now_ms(&pincer_core::SystemClock);
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            a.request.command.clone(),
                            a.request.session_key.clone().unwrap_or_else(|| "-".into()),
                            ago(a.expires_at_ms - now),
                        ]
                    })
                    .collect();
                table(&["ID", "COMMAND", "SESSION", "EXPIRES IN"], &rows);
                println!("\nDecide with `pincer approvals approve <id> [--always]` or `pincer approvals deny <id>`.");
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Grants { c } => {
            let mut client = Client::connect(&target(&c)?, SCOPES).await?;
            let list = client.call::<ExecApprovalGrantsList>(&GrantsListParams { limit: Some(500) }).await;
            client.close().await;
            let list = list.map_err(explain)?;
            if c.json {
                print_json(&list);
            } else if list.grants.is_empty() {
                println!("No standing grants: `pincer approvals approve <id> --always` makes one.");
            } else {
                let rows: Vec<Vec<String>> =
                    list.grants.iter().map(|g| vec![g.grant_id.clone(), g.command.clone()]).collect();
                table(&["ID", "PATTERN"], &rows);
                println!("\nTake one back with `pincer approvals revoke <id>`.");
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Revoke { id, c } => {
            let mut client = Client::connect(&target(&c)?, SCOPES).await?;
            let out = client.call::<ExecApprovalGrantsRevoke>(&GrantRevokeParams { grant_id: id.clone() }).await;
            client.close().await;
            let out = out.map_err(explain)?;
            if c.json {
                print_json(&out);
            } else if out.outcome == "revoked" {
                println!("Revoked {id}: its executables need an approval again.");
            }
            if out.outcome != "revoked" {
                if !c.json {
                    eprintln!("error: no standing grant {id}; `pincer approvals grants` lists them");
                }
                return Ok(ExitCode::FAILURE);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Approve { id, always, c } => (id, if always { "allow-always" } else { "allow-once" }, c),
        ApprovalsCommand::Deny { id, c } => (id, "deny", c),
    };
    let mut client = Client::connect(&target(&c)?, SCOPES).await?;
    let out = client
        .call::<ExecApprovalResolve>(&ExecApprovalResolveParams { id: id.clone(), decision: decision.into() })
        .await;
    client.close().await;
    let out = out.map_err(explain)?;
    if c.json {
        print_json(&out);
    } else {
        match decision {
            "deny" => println!("Denied {id}: the command does not run."),
            "allow-always" => println!("Approved {id}: it runs now, and its executables are allowed from now on."),
            _ => println!("Approved {id}: the command runs now (once)."),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn mcp(cmd: McpCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = |c: &ConnectArgs| Target::resolve(c, paths, &process_env);
    match cmd {
        McpCommand::List { c } => {
            let mut client = Client::connect(&target(&c)?, &[Scope::Read]).await?;
            let list = client.call::<McpServersList>(&NoParams {}).await;
            client.close().await;
            let list = list.map_err(explain)?;
            if c.json {
                print_json(&list);
            } else if list.servers.is_empty() {
                println!(
                    "No MCP servers are configured (add them under mcp.servers, then run `pincer config reload`)."
                );
            } else {
                let rows: Vec<Vec<String>> = list
                    .servers
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.transport.clone(),
                            s.state.clone(),
                            s.tool_count.to_string(),
                            s.restarts.to_string(),
                            s.last_error.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["NAME", "TRANSPORT", "STATE", "TOOLS", "RESTARTS", "LAST ERROR"], &rows);
            }
        }
        McpCommand::Probe { name, c } => {
            let mut client = Client::connect(&target(&c)?, &[Scope::Admin]).await?;
            let out = client.call::<McpServersProbe>(&McpProbeParams { name: name.clone() }).await;
            client.close().await;
            let out = out.map_err(explain)?;
            if c.json {
                print_json(&out);
            } else if out.tools.is_empty() {
                println!("{name}: connected; it offers no tools (or toolFilter hides them all).");
            } else {
                println!("{name}: connected; {} tools:", out.tools.len());
                let rows: Vec<Vec<String>> = out
                    .tools
                    .iter()
                    .map(|t| vec![t.name.clone(), t.remote_name.clone(), t.description.clone()])
                    .collect();
                table(&["TOOL", "ON THE SERVER", "DESCRIPTION"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
