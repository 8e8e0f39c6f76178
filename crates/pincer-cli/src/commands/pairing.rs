//! `pincer pairing list|approve|reject`: DM pairing codes of chat channels. An unknown sender
//! under `dmPolicy: pairing` was told a code; the owner approves it here (`channels.pairing.*`).

use std::process::ExitCode;

use clap::Subcommand;
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_protocol::Scope;
use pincer_protocol::schema::channels::{
    PairingApprove, PairingDecision, PairingDismiss, PairingList, PairingListParams,
};

use crate::client::{Client, ClientError, ConnectArgs, Target};
use crate::output::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum PairingCommand {
    /// Senders waiting for approval (codes live an hour, at most 3 per channel).
    List {
        /// Only this channel, e.g. telegram.
        channel: Option<String>,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Let the sender who was told `code` talk to the agent; they are told so.
    Approve {
        /// The channel, e.g. telegram.
        channel: String,
        /// The code the sender was sent (any case).
        code: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Drop a pairing code without letting its sender in.
    Reject {
        /// The channel, e.g. telegram.
        channel: String,
        /// The code the sender was sent (any case).
        code: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

const PAIRING: &[Scope] = &[Scope::Pairing];

fn explain(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Rpc(shape) => anyhow::anyhow!("{}", shape.message),
        e => e.into(),
    }
}

pub async fn run(cmd: PairingCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = |c: &ConnectArgs| Target::resolve(c, paths, &process_env);
    match cmd {
        PairingCommand::List { channel, c } => {
            let mut client = Client::connect(&target(&c)?, PAIRING).await?;
            let list = client.call::<PairingList>(&PairingListParams { channel, account_id: None }).await;
            client.close().await;
            let list = list.map_err(explain)?;
            if c.json {
                print_json(&list);
            } else if list.requests.is_empty() {
                println!("No pairing requests are waiting.");
            } else {
                let rows: Vec<Vec<String>> = list
                    .requests
                    .iter()
                    .map(|r| {
                        let name = r.metadata.get("username").and_then(|v| v.as_str()).unwrap_or("-");
                        vec![r.channel.clone(), r.sender_id.clone(), name.to_string(), r.expires_at.clone()]
                    })
                    .collect();
                table(&["CHANNEL", "SENDER", "USERNAME", "EXPIRES"], &rows);
                println!("\nApprove with `pincer pairing approve <channel> <code>` (the code the sender was told).");
            }
        }
        PairingCommand::Approve { channel, code, c } => {
            let params = PairingDecision { channel: channel.clone(), code: Some(code), ..PairingDecision::default() };
            let mut client = Client::connect(&target(&c)?, PAIRING).await?;
            let out = client.call::<PairingApprove>(&params).await;
            client.close().await;
            let out = out.map_err(explain)?;
            if c.json {
                print_json(&out);
            } else {
                println!("Approved: {channel} user {} may now talk to the agent (they were told).", out.sender_id);
            }
        }
        PairingCommand::Reject { channel, code, c } => {
            let params = PairingDecision { channel: channel.clone(), code: Some(code), ..PairingDecision::default() };
            let mut client = Client::connect(&target(&c)?, PAIRING).await?;
            let out = client.call::<PairingDismiss>(&params).await;
            client.close().await;
            let out = out.map_err(explain)?;
            if c.json {
                print_json(&out);
            } else {
                println!("Rejected: the code of {channel} user {} no longer works.", out.sender_id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
