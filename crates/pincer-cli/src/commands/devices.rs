//! `pincer devices …` and `pincer audit`: pending pairing requests, paired devices and their
//! tokens, and the gateway's security audit log.
//!
//! Request and device ids may be given as a unique prefix (as `list` shows them). Approving,
//! rotating and revoking ask for `operator.admin` besides `operator.pairing`, because the gateway
//! lets an approver grant only scopes it holds itself.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_core::duration::format_duration_ms;
use pincer_protocol::Scope;
use pincer_protocol::schema::devices::{
    AuditQuery, AuditQueryParams, DeviceRef, PairApprove, PairList, PairListResult, PairReject, PairRemove, PairRename,
    PairedDevice, RenameParams, RequestRef, RevokeParams, RotateParams, TokenRevoke, TokenRotate,
};
use pincer_protocol::schema::{Method, NoParams};

use crate::client::{Client, ClientError, ConnectArgs, Target};
use crate::output::{opt, print_json, table, time_in};

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Pending pairing requests (newest ask first), then paired devices.
    List(ConnectArgs),
    /// Approve a pending pairing request: the device gets the role and scopes it asked for.
    Approve {
        /// Request id, or a unique prefix of one (see `pincer devices list`).
        request_id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Reject a pending pairing request.
    Reject {
        /// Request id, or a unique prefix of one.
        request_id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Forget a paired device; its open connections are closed.
    #[command(alias = "rm")]
    Remove {
        /// Device id, or a unique prefix of one.
        device_id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Set the label shown for a paired device.
    Rename {
        /// Device id, or a unique prefix of one.
        device_id: String,
        /// Up to 64 characters.
        label: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Mint a new token for a device's role and print it once; the old token stops working.
    Rotate {
        /// Device id, or a unique prefix of one.
        device_id: String,
        #[arg(long, default_value = "operator", value_parser = ["operator", "node"])]
        role: String,
        /// Scope for the new token (repeat; default: the token's current scopes). Must be within
        /// what the device was approved for.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Revoke a device's token for a role; its connections with that role are closed.
    Revoke {
        /// Device id, or a unique prefix of one.
        device_id: String,
        #[arg(long, default_value = "operator", value_parser = ["operator", "node"])]
        role: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

/// `pincer audit`: the security audit log, newest first.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Most entries to show (1..500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Skip this many newer entries (to page back).
    #[arg(long, default_value_t = 0)]
    offset: u32,
    /// Only this action, e.g. gateway.auth.failed, device.pairing.approved, device.token.rotated.
    #[arg(long)]
    action: Option<String>,
    /// Only entries about this device id.
    #[arg(long, value_name = "DEVICE_ID")]
    device: Option<String>,
    #[command(flatten)]
    c: ConnectArgs,
}

const PAIRING: &[Scope] = &[Scope::Pairing];
/// Approval-time authorization: an approver may grant only scopes it holds.
const GRANTING: &[Scope] = &[Scope::Pairing, Scope::Admin];

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn short(id: &str, n: usize) -> String {
    id.chars().take(n).collect()
}

/// `5m ago`, from a millisecond timestamp.
fn ago(ms: Option<i64>, now: i64) -> String {
    match ms {
        Some(t) => format!("{} ago", format_duration_ms(now.saturating_sub(t).max(0) as u64)),
        None => "never".into(),
    }
}

fn list_of(items: &[String]) -> String {
    if items.is_empty() { "-".into() } else { items.join(",") }
}

/// A device's name for people: label, else display name.
fn device_name(d: &PairedDevice) -> String {
    opt(d.label.as_deref().or(d.display_name.as_deref()))
}

/// Adds what to do next to the gateway's answer.
fn explain(e: ClientError, id: &str) -> anyhow::Error {
    match &e {
        ClientError::Rpc(shape) if shape.message == "unknown requestId" => anyhow::anyhow!(
            "no pending request {id}: it was approved, rejected, superseded or expired (requests live 5 minutes); run `pincer devices list` and ask the device to reconnect"
        ),
        ClientError::Rpc(shape) if shape.message == "unknown deviceId" => {
            anyhow::anyhow!("no paired device {id}: run `pincer devices list` to see paired devices")
        }
        _ => e.into(),
    }
}

/// Resolves a full id or a unique prefix against the ids `list` returns.
fn resolve(given: &str, ids: Vec<String>, what: &str) -> anyhow::Result<String> {
    if ids.iter().any(|id| id == given) {
        return Ok(given.to_string());
    }
    let matches: Vec<String> = ids.into_iter().filter(|id| !given.is_empty() && id.starts_with(given)).collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(anyhow::anyhow!("no {what} starts with `{given}`: run `pincer devices list`")),
        many => Err(anyhow::anyhow!(
            "`{given}` matches {} {what}s ({}); give more characters",
            many.len(),
            many.iter().map(|m| short(m, 12)).collect::<Vec<_>>().join(", ")
        )),
    }
}

async fn request_id(client: &mut Client, given: &str) -> anyhow::Result<String> {
    if given.len() == 36 {
        return Ok(given.to_string());
    }
    let list = client.call::<PairList>(&NoParams {}).await?;
    resolve(given, list.pending.into_iter().map(|r| r.request_id).collect(), "pending request")
}

async fn device_id(client: &mut Client, given: &str) -> anyhow::Result<String> {
    if given.len() == 64 {
        return Ok(given.to_string());
    }
    let list = client.call::<PairList>(&NoParams {}).await?;
    resolve(given, list.paired.into_iter().map(|d| d.device_id).collect(), "paired device")
}

/// Connects, resolves the id, calls `M`, closes.
async fn call_with_id<M: Method>(
    target: &Target,
    scopes: &[Scope],
    given: &str,
    is_request: bool,
    params: impl FnOnce(String) -> M::Params,
) -> anyhow::Result<M::Result> {
    let mut client = Client::connect(target, scopes).await?;
    let result = async {
        let id = if is_request { request_id(&mut client, given).await? } else { device_id(&mut client, given).await? };
        client.call::<M>(&params(id.clone())).await.map_err(|e| explain(e, &id))
    }
    .await;
    client.close().await;
    result
}

pub async fn run(cmd: DevicesCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = |c: &ConnectArgs| Target::resolve(c, paths, &process_env);
    match cmd {
        DevicesCommand::List(c) => {
            let mut client = Client::connect(&target(&c)?, PAIRING).await?;
            let list = client.call::<PairList>(&NoParams {}).await;
            client.close().await;
            let list = list?;
            if c.json {
                print_json(&list);
            } else {
                print_list(&list, now_ms());
            }
        }
        DevicesCommand::Approve { request_id, c } => {
            let out = call_with_id::<PairApprove>(&target(&c)?, GRANTING, &request_id, true, |id| RequestRef {
                request_id: id,
            })
            .await?;
            if c.json {
                print_json(&out);
            } else {
                let d = &out.device;
                println!(
                    "Approved request {}: device {} ({}) may now connect as {} with scopes {}.",
                    out.request_id,
                    short(&d.device_id, 12),
                    device_name(d),
                    list_of(&d.roles),
                    list_of(&d.scopes),
                );
            }
        }
        DevicesCommand::Reject { request_id, c } => {
            let out = call_with_id::<PairReject>(&target(&c)?, PAIRING, &request_id, true, |id| RequestRef {
                request_id: id,
            })
            .await?;
            if c.json {
                print_json(&out);
            } else {
                println!("Rejected request {} from device {}.", out.request_id, short(&out.device_id, 12));
            }
        }
        DevicesCommand::Remove { device_id, c } => {
            let out =
                call_with_id::<PairRemove>(&target(&c)?, PAIRING, &device_id, false, |id| DeviceRef { device_id: id })
                    .await?;
            if c.json {
                print_json(&out);
            } else {
                println!("Removed device {}; its connections were closed.", out.device_id);
            }
        }
        DevicesCommand::Rename { device_id, label, c } => {
            let out = call_with_id::<PairRename>(&target(&c)?, PAIRING, &device_id, false, |id| RenameParams {
                device_id: id,
                label,
            })
            .await?;
            if c.json {
                print_json(&out);
            } else {
                println!("Device {} is now labelled \"{}\".", short(&out.device_id, 12), out.label);
            }
        }
        DevicesCommand::Rotate { device_id, role, scopes, c } => {
            if let Some(bad) = scopes.iter().find(|s| Scope::parse(s).is_err()) {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                anyhow::bail!("unknown scope `{bad}`; use one of: {}", known.join(", "));
            }
            let out = call_with_id::<TokenRotate>(&target(&c)?, GRANTING, &device_id, false, |id| RotateParams {
                device_id: id,
                role,
                scopes: (!scopes.is_empty()).then_some(scopes),
            })
            .await?;
            if c.json {
                print_json(&out);
            } else if let Some(token) = &out.token {
                println!(
                    "New {} token for device {} (scopes: {}):",
                    out.role,
                    short(&out.device_id, 12),
                    list_of(&out.scopes)
                );
                println!("{token}");
                eprintln!(
                    "Store it now: it is shown only once, and the previous token stopped working. \
                     The device sends it as auth.deviceToken."
                );
            } else {
                println!(
                    "Rotated the {} token of device {}; the new token was withheld ({}). The device receives one at its next connect with the gateway token.",
                    out.role,
                    short(&out.device_id, 12),
                    out.token_delivery,
                );
            }
        }
        DevicesCommand::Revoke { device_id, role, c } => {
            let out = call_with_id::<TokenRevoke>(&target(&c)?, GRANTING, &device_id, false, |id| RevokeParams {
                device_id: id,
                role,
            })
            .await?;
            if c.json {
                print_json(&out);
            } else {
                println!(
                    "Revoked the {} token of device {}; its {} connections were closed.",
                    out.role,
                    short(&out.device_id, 12),
                    out.role,
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &PairListResult, now: i64) {
    let (pending, paired) = (&list.pending, &list.paired);
    if pending.is_empty() {
        println!("No pending pairing requests.");
    } else {
        println!("Pending requests (approve with `pincer devices approve <request>`; they expire after 5 minutes):");
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|r| {
                vec![
                    short(&r.request_id, 8),
                    format!("{} {}", short(&r.device_id, 12), r.display_name.as_deref().unwrap_or("")),
                    r.reason.clone(),
                    r.role.clone(),
                    list_of(&r.scopes),
                    opt(r.remote_ip.as_deref()),
                    ago(Some(r.created_at_ms), now),
                ]
            })
            .collect();
        table(&["REQUEST", "DEVICE", "REASON", "ROLE", "SCOPES", "FROM", "ASKED"], &rows);
    }
    println!();
    if paired.is_empty() {
        println!("No paired devices.");
        return;
    }
    println!("Paired devices:");
    let rows: Vec<Vec<String>> = paired
        .iter()
        .map(|d| {
            let tokens: Vec<String> = d
                .tokens
                .iter()
                .map(|t| if t.revoked_at_ms.is_some() { format!("{} (revoked)", t.role) } else { t.role.clone() })
                .collect();
            let seen = match &d.last_seen_ip {
                Some(ip) => format!("{} from {ip}", ago(d.last_seen_at_ms, now)),
                None => ago(d.last_seen_at_ms, now),
            };
            vec![
                short(&d.device_id, 12),
                device_name(d),
                list_of(&d.roles),
                list_of(&d.scopes),
                list_of(&tokens),
                seen,
                if d.connected == Some(true) { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    table(&["DEVICE", "NAME", "ROLES", "SCOPES", "TOKENS", "LAST SEEN", "CONNECTED"], &rows);
}

/// `pincer audit`.
pub async fn run_audit(args: AuditArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(&args.c, paths, &process_env)?;
    let params = AuditQueryParams {
        limit: Some(args.limit),
        offset: Some(args.offset),
        action: args.action.clone(),
        device_id: args.device.clone(),
        since_ms: None,
    };
    let mut client = Client::connect(&target, &[Scope::Admin]).await?;
    let page = client.call::<AuditQuery>(&params).await;
    client.close().await;
    let page = page?;
    if args.c.json {
        print_json(&page);
        return Ok(ExitCode::SUCCESS);
    }
    let entries = &page.entries;
    if entries.is_empty() {
        println!("No audit entries{}.", if args.action.is_some() || args.device.is_some() { " match" } else { "" });
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let detail = e.detail.to_string();
            let detail =
                if detail.chars().count() > 70 { detail.chars().take(69).collect::<String>() + "…" } else { detail };
            vec![
                time_in(e.at_ms, "UTC"),
                e.action.clone(),
                e.device_id.as_deref().map(|d| short(d, 12)).unwrap_or_else(|| "-".into()),
                opt(e.remote_ip.as_deref()),
                opt(e.client_id.as_deref()),
                detail,
            ]
        })
        .collect();
    table(&["TIME (UTC)", "ACTION", "DEVICE", "FROM", "CLIENT", "DETAIL"], &rows);
    if page.has_more {
        println!("… {} in all; older: `pincer audit --offset {}`", page.total, opt(page.next_offset));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct DevicesCli {
        #[command(subcommand)]
        cmd: DevicesCommand,
    }

    #[derive(Debug, Parser)]
    struct AuditCli {
        #[command(flatten)]
        args: AuditArgs,
    }

    #[test]
    fn flags_parse_as_documented() {
        DevicesCli::command().debug_assert();
        AuditCli::command().debug_assert();
        let cli = DevicesCli::try_parse_from([
            "devices",
            "rotate",
            "105df4",
            "--scope",
            "operator.read",
            "--scope",
            "operator.write",
            "--json",
        ])
        .unwrap();
        let DevicesCommand::Rotate { device_id, role, scopes, c } = cli.cmd else { panic!("rotate") };
        assert_eq!((device_id.as_str(), role.as_str(), c.json), ("105df4", "operator", true));
        assert_eq!(scopes, ["operator.read", "operator.write"]);
        assert!(DevicesCli::try_parse_from(["devices", "revoke", "105df4", "--role", "admin"]).is_err());
        assert!(DevicesCli::try_parse_from(["devices", "rename", "105df4"]).is_err(), "label is required");
        let DevicesCommand::Remove { .. } = DevicesCli::try_parse_from(["devices", "rm", "105df4"]).unwrap().cmd else {
            panic!("rm is remove")
        };
        let audit = AuditCli::try_parse_from(["audit", "--action", "gateway.auth.failed", "--device", "ab"]).unwrap();
        assert_eq!((audit.args.limit, audit.args.offset), (50, 0));
        assert_eq!(audit.args.action.as_deref(), Some("gateway.auth.failed"));
    }

    #[test]
    fn ids_resolve_by_exact_id_or_unique_prefix() {
        let ids = || vec!["abc123".to_string(), "abd456".to_string(), "ab".to_string()];
        assert_eq!(resolve("abc", ids(), "paired device").unwrap(), "abc123");
        assert_eq!(resolve("ab", ids(), "paired device").unwrap(), "ab", "an exact id wins");
        let e = resolve("a", ids(), "paired device").unwrap_err().to_string();
        assert!(e.contains("matches 3 paired devices"), "{e}");
        let e = resolve("zz", ids(), "pending request").unwrap_err().to_string();
        assert_eq!(e, "no pending request starts with `zz`: run `pincer devices list`");
        assert!(resolve("", ids(), "paired device").is_err());
    }

    #[test]
    fn list_and_hints_render_without_panicking() {
        let now = 1_795_681_400_000;
        let list: PairListResult = serde_json::from_value(serde_json::json!({
            "pending": [{"requestId": "4539e1be-5550-46c0-be05-dc7e4a5911e0", "deviceId": "105df4c6fe32", "publicKey": "k",
                         "reason": "scope-upgrade", "role": "operator", "roles": ["operator"],
                         "scopes": ["operator.read", "operator.write"], "remoteIp": "203.0.113.9", "silent": false,
                         "isRepair": true, "ts": now - 90_000, "createdAtMs": now - 90_000,
                         "refreshedAtMs": now - 90_000, "expiresAtMs": now + 210_000}],
            "paired": [{"deviceId": "105df4c6fe32", "publicKey": "k", "label": "desk", "roles": ["operator"],
                        "scopes": ["operator.read"], "createdAtMs": 1,
                        "tokens": [{"role": "operator", "scopes": [], "createdAtMs": 1, "revokedAtMs": 1}],
                        "lastSeenAtMs": now - 5_000, "lastSeenIp": "127.0.0.1", "connected": true},
                       {"deviceId": "x", "publicKey": "k", "roles": [], "scopes": [], "tokens": [], "createdAtMs": 1}],
        }))
        .unwrap();
        print_list(&list, now);
        print_list(&PairListResult::default(), now);
        assert_eq!(ago(Some(now - 120_000), now), "2m ago");
        assert_eq!(ago(None, now), "never");
        let e = explain(ClientError::Rpc(pincer_protocol::ErrorShape::invalid_request("unknown requestId")), "r-1");
        assert!(e.to_string().starts_with("no pending request r-1: it was approved, rejected, superseded or expired"));
        let e = explain(ClientError::Rpc(pincer_protocol::ErrorShape::invalid_request("unknown deviceId")), "d-1");
        assert_eq!(e.to_string(), "no paired device d-1: run `pincer devices list` to see paired devices");
    }
}
