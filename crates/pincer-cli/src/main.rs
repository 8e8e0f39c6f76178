//! `pincer`: the gateway daemon (`pincer gateway`) and its command-line client.

mod client;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
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

/// The command line, with every option's value allowed to start with `-`: Telegram group ids are
/// negative (`--to -1001234567890`), a message may start with a dash, and `openclaw` (commander)
/// likewise takes the word after an option as its value whatever it starts with.
fn command() -> clap::Command {
    fn hyphen_values(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            let option = a.get_long().is_some() && a.get_action().takes_values();
            if option { a.allow_hyphen_values(true) } else { a }
        })
        .mut_subcommands(hyphen_values)
    }
    hyphen_values(Cli::command())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = command().try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    #[test]
    fn option_values_may_start_with_a_hyphen() {
        let cli = parse(&[
            "pincer",
            "message",
            "send",
            "--channel",
            "telegram",
            "--to",
            "-1001234567890",
            "--thread-id",
            "-7",
            "--message",
            "- first item",
            "--token",
            "-tok",
        ])
        .unwrap();
        let Command::Message(commands::delivery::MessageCommand::Send { to, thread_id, message, .. }) = cli.command
        else {
            panic!("parsed as another command")
        };
        assert_eq!(
            (to.as_str(), thread_id.as_deref(), message.as_str()),
            ("-1001234567890", Some("-7"), "- first item")
        );
        let cli = parse(&[
            "pincer",
            "cron",
            "add",
            "--every",
            "1h",
            "--message",
            "-x",
            "--channel",
            "telegram",
            "--to",
            "-1001",
            "--name",
            "-n",
            "--account",
            "-a",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
        // A numeric option says the number is invalid instead of calling it an unknown flag.
        let err = parse(&["pincer", "cron", "runs", "job", "--limit", "-1"]).unwrap_err().to_string();
        assert!(err.contains("invalid value '-1' for '--limit <LIMIT>'"), "{err}");
    }

    #[test]
    fn every_option_that_takes_a_value_accepts_a_leading_hyphen() {
        fn walk(cmd: &mut clap::Command, path: &str, seen: &mut usize, missing: &mut Vec<String>) {
            cmd.build();
            for a in cmd.get_arguments().filter(|a| a.get_long().is_some() && a.get_action().takes_values()) {
                *seen += 1;
                if !a.is_allow_hyphen_values_set() {
                    missing.push(format!("{path} --{}", a.get_long().unwrap()));
                }
            }
            for sub in cmd.get_subcommands_mut() {
                let path = format!("{path} {}", sub.get_name());
                walk(sub, &path, seen, missing);
            }
        }
        let (mut seen, mut missing) = (0, Vec::new());
        walk(&mut command(), "pincer", &mut seen, &mut missing);
        assert!(missing.is_empty(), "options that refuse `-1001`: {missing:?}");
        assert!(seen > 100, "the walk saw only {seen} options");
    }
}
