//! `pincer`: the gateway daemon (`pincer gateway`) and its command-line client.

mod client;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pincer_core::StatePaths;

use crate::client::ConnectArgs;

#[derive(Debug, Parser)]
#[command(
    name = "pincer",
    version,
    about = "Pincer: a self-hosted gateway for personal AI agents and scheduled automations.",
    long_about = "Pincer runs scheduled jobs, announces their results through a durable outbox, and speaks the \
                  OpenClaw Gateway protocol v4.\n\nStart the gateway with `pincer gateway`; every other command \
                  talks to it over WebSocket."
)]
struct Cli {
    /// State directory (default: PINCER_STATE_DIR, else ~/.pincer).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway in the foreground (`pincer gateway` = `pincer gateway run`).
    Gateway(commands::gateway::GatewayCommand),
    /// Check that the gateway is up and healthy.
    Health(ConnectArgs),
    /// Show the gateway's status: version, uptime, store, connections.
    Status(ConnectArgs),
    /// Check config, store, channel credentials, model providers, the outbox and jobs; say how to fix.
    Doctor(ConnectArgs),
    /// Scheduled jobs: add, list, show, run, and their run history.
    #[command(subcommand)]
    Cron(Box<commands::cron::CronCommand>),
    /// Send messages through the outbox.
    #[command(subcommand)]
    Message(commands::delivery::MessageCommand),
    /// The outbox: pending, delivered, unknown and dead deliveries, with reasons.
    #[command(subcommand)]
    Deliveries(commands::delivery::DeliveriesCommand),
    /// Paired devices and pairing requests: list, approve, reject, remove, rotate, revoke.
    #[command(subcommand)]
    Devices(commands::devices::DevicesCommand),
    /// The security audit log: connects, failed auth, pairing, token changes.
    Audit(commands::devices::AuditArgs),
    /// Run one agent turn and print the reply as it streams in.
    Agent(commands::agent::AgentArgs),
    /// Agent sessions and their transcripts.
    #[command(subcommand)]
    Sessions(commands::agent::SessionsCommand),
    /// Print (and open) the browser console's link, the gateway token in its fragment.
    Dashboard(commands::dashboard::DashboardArgs),
    /// Messages delivered to the local inbox.
    Inbox {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

fn main() -> ExitCode {
    // The gateway's command supervisor: hidden, and dispatched before clap so that the command's
    // own arguments are never parsed as ours.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == pincer_cron::supervisor::SUPERVISE_ARG) {
        return pincer_cron::supervisor::supervise(args.collect());
    }
    let cli = Cli::parse();
    let paths = StatePaths::resolve(cli.state_dir.as_deref(), &pincer_core::config::process_env);
    let result = match cli.command {
        Command::Gateway(cmd) => commands::gateway::run(cmd, paths),
        other => client_runtime().and_then(|rt| rt.block_on(run_client(other, paths))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Client commands are one short conversation: a single-threaded runtime starts fastest.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

async fn run_client(command: Command, paths: StatePaths) -> anyhow::Result<ExitCode> {
    match command {
        Command::Health(args) => commands::system::health(&args, &paths).await,
        Command::Status(args) => commands::system::status(&args, &paths).await,
        Command::Doctor(args) => commands::system::doctor(&args, &paths).await,
        Command::Cron(cmd) => commands::cron::run(*cmd, &paths).await,
        Command::Message(cmd) => commands::delivery::message(cmd, &paths).await,
        Command::Deliveries(cmd) => commands::delivery::deliveries(cmd, &paths).await,
        Command::Dashboard(a) => commands::dashboard::run(a, &paths).await,
        Command::Inbox { limit, c } => commands::delivery::inbox(c, limit, &paths).await,
        Command::Devices(cmd) => commands::devices::run(cmd, &paths).await,
        Command::Audit(args) => commands::devices::run_audit(args, &paths).await,
        Command::Agent(a) => commands::agent::agent(a, &paths).await,
        Command::Sessions(c) => commands::agent::sessions(c, &paths).await,
        Command::Gateway(_) => unreachable!("handled in main"),
    }
}
