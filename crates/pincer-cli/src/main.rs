//! `pincer`: the gateway daemon (`pincer gateway`) and its command-line client.

mod client;
mod commands;
mod help;
mod logging;
mod output;
mod resolve;
mod startup_pages;

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
    /// Chat senders waiting for approval (DM pairing codes): list, approve, reject.
    #[command(subcommand)]
    Pairing(commands::pairing::PairingCommand),
    /// Commands agents want to run that wait for your decision: list, approve, deny.
    #[command(subcommand)]
    Approvals(commands::tools::ApprovalsCommand),
    /// MCP servers: their state and tools (list), a fresh connection to one (probe).
    #[command(subcommand)]
    Mcp(commands::tools::McpCommand),
    /// Run one agent turn and print the reply as it streams in.
    Agent(commands::agent::AgentArgs),
    /// Agent sessions and their transcripts.
    #[command(subcommand)]
    Sessions(commands::agent::SessionsCommand),
    /// Copy the database to a new file while the gateway runs (SQLite's online backup).
    Backup(commands::backup::BackupArgs),
    /// Replace the database by a backup; refused while a gateway uses the state dir.
    Restore(commands::backup::RestoreArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (pincer.1 and one page per subcommand) into a folder.
    Man {
        /// The folder to write into (created if missing), e.g. /usr/local/share/man/man1.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// A first configuration: a model provider and a channel, each credential tried, then how to start.
    Setup(commands::setup::SetupArgs),
    /// The config file: get, set and validate keys with the gateway's checks; reload a running gateway.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Print (and open) the browser console's link, the gateway token in its fragment.
    Dashboard(commands::dashboard::DashboardArgs),
    /// The gateway's log file: the newest lines, or follow it with -f (through the gateway, or
    /// read directly when none runs).
    Logs(commands::logs::LogsArgs),
    /// Bring jobs over from another system (OpenClaw).
    #[command(subcommand)]
    Import(commands::import::ImportCommand),
    /// Run the gateway as a per-user service (systemd user unit; launchd agent on macOS).
    #[command(subcommand)]
    Service(commands::service::ServiceCommand),
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
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return usage_error(e, std::env::args_os().any(|a| a == "--json")),
    };
    let json = json_requested(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let paths = StatePaths::resolve(cli.state_dir.as_deref(), &pincer_core::config::process_env);
    let result = match cli.command {
        Command::Gateway(cmd) => commands::gateway::run(cmd, paths),
        Command::Backup(args) => commands::backup::backup(args, &paths),
        Command::Service(cmd) => commands::service::run(cmd, &paths),
        Command::Restore(args) => commands::backup::restore(args, &paths),
        Command::Completions { shell } => {
            end_quietly_on_a_closed_pipe();
            clap_complete::generate(shell, &mut command(), "pincer", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => write_man_pages(&dir),
        Command::Setup(args) => commands::setup::run(args, &paths),
        Command::Config(commands::config::ConfigCommand::Reload(args)) => {
            end_quietly_on_a_closed_pipe();
            client_runtime().and_then(|rt| rt.block_on(commands::config::reload(&args, &paths)))
        }
        Command::Config(cmd) => {
            end_quietly_on_a_closed_pipe();
            commands::config::run_local(cmd, &paths)
        }
        other => {
            end_quietly_on_a_closed_pipe();
            client_runtime().and_then(|rt| rt.block_on(run_client(other, paths)))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) if json => {
            let error = json_error(&e);
            println!("{}", serde_json::json!({ "ok": false, "error": error }));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command line clap refused. Under `--json` (anywhere in the arguments, since the parse that
/// would place it failed) it is `{ok:false,error:{code:"USAGE",message}}` on stdout, exit 2,
/// like every other failure; `--help` and `--version` print as usual.
fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !json || informational {
        e.exit()
    }
    let text = e.render().to_string();
    let message = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message).to_string();
    let message = format!("{message} (see `pincer --help`)");
    println!("{}", serde_json::json!({ "ok": false, "error": { "code": "USAGE", "message": message } }));
    ExitCode::from(2)
}

/// `--json` given anywhere on the command line (it belongs to the innermost subcommand).
fn json_requested(matches: &clap::ArgMatches) -> bool {
    let mut m = matches;
    loop {
        if let Ok(Some(true)) = m.try_get_one::<bool>("json") {
            return true;
        }
        match m.subcommand() {
            Some((_, sub)) => m = sub,
            None => return false,
        }
    }
}

/// A failed command under `--json`: `{code, message}` (and the gateway's detail code when it gave
/// one). Codes: the gateway's (`INVALID_REQUEST`, `NOT_PAIRED`, …), `UNAVAILABLE` (no gateway
/// answers), `TIMEOUT`, `CLOSED`, `PROTOCOL`, and `FAILED` for what the CLI itself refused.
fn json_error(e: &anyhow::Error) -> serde_json::Value {
    use client::ClientError;
    let code = match e.downcast_ref::<ClientError>() {
        Some(ClientError::Rpc(shape)) => {
            let mut error = serde_json::json!({ "code": shape.code, "message": format!("{e:#}") });
            if let Some(detail) = shape.detail_code() {
                error["detailCode"] = detail.into();
            }
            return error;
        }
        Some(ClientError::Unreachable { .. } | ClientError::Refused { .. }) => "UNAVAILABLE",
        Some(ClientError::Timeout { .. }) => "TIMEOUT",
        Some(ClientError::Closed(_)) => "CLOSED",
        Some(ClientError::Protocol(_)) => "PROTOCOL",
        None => "FAILED",
    };
    serde_json::json!({ "code": code, "message": format!("{e:#}") })
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
    hyphen_values(help::document(Cli::command()))
}

/// `pincer man DIR`: the pages clap_mangen renders from the same definitions as `--help`.
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    let pages = std::fs::read_dir(dir)?.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "1")).count();
    println!("Wrote {pages} man pages to {} (read them with `man {}/pincer.1`).", dir.display(), dir.display());
    Ok(ExitCode::SUCCESS)
}

/// A client command whose reader has gone (`pincer audit | head -1`) ends as every Unix filter
/// does: killed by `SIGPIPE`, silently, instead of Rust's default (the signal ignored, so `println!`
/// panics on `EPIPE` with a backtrace and exit 101). Only client commands: the gateway keeps the
/// signal ignored so a closed socket is an error on that socket, never the end of the daemon. The
/// client's own WebSocket is unaffected: std sends with `MSG_NOSIGNAL` (`SO_NOSIGPIPE` on macOS).
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called before any thread is started; restoring a signal's default disposition has
    // no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
        Command::Logs(a) => commands::logs::run(a, &paths).await,
        Command::Import(c) => commands::import::run(c, &paths).await,
        Command::Inbox { limit, c } => commands::delivery::inbox(c, limit, &paths).await,
        Command::Devices(cmd) => commands::devices::run(cmd, &paths).await,
        Command::Audit(args) => commands::devices::run_audit(args, &paths).await,
        Command::Pairing(cmd) => commands::pairing::run(cmd, &paths).await,
        Command::Approvals(cmd) => commands::tools::approvals(cmd, &paths).await,
        Command::Mcp(cmd) => commands::tools::mcp(cmd, &paths).await,
        Command::Agent(a) => commands::agent::agent(a, &paths).await,
        Command::Sessions(c) => commands::agent::sessions(c, &paths).await,
        Command::Gateway(_)
        | Command::Backup(_)
        | Command::Service(_)
        | Command::Restore(_)
        | Command::Completions { .. }
        | Command::Config(_)
        | Command::Setup(_)
        | Command::Man { .. } => unreachable!("handled in main"),
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

    /// Every flag and argument says what it is for, and every command shows an example.
    #[test]
    fn every_flag_has_help_and_every_command_an_example() {
        fn walk(cmd: &mut clap::Command, path: &str, missing: &mut Vec<String>) {
            cmd.build();
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" || a.is_hide_set() {
                    continue;
                }
                if a.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path} {id}: no help"));
                }
            }
            let leaf = cmd.get_subcommands().next().is_none();
            let example = cmd.get_after_help().is_some_and(|h| h.to_string().contains("Example"));
            if leaf && !cmd.is_hide_set() && cmd.get_name() != "help" && !example {
                missing.push(format!("{path}: no example"));
            }
            for sub in cmd.get_subcommands_mut().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&mut command(), "pincer", &mut missing);
        assert!(missing.is_empty(), "{} missing:\n{}", missing.len(), missing.join("\n"));
    }

    /// Splits an example as `sh` would (single quotes only), up to a `#` comment or `>` redirect.
    fn words(example: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted, mut in_word) = (Vec::new(), String::new(), false, false);
        for c in example.chars() {
            match c {
                '\'' => (quoted, in_word) = (!quoted, true),
                ' ' if !quoted => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                    }
                    in_word = false;
                }
                '#' | '>' if !quoted && !in_word => break,
                c => (word, in_word) = (word + &c.to_string(), true),
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }

    /// The examples run as written, and the help table names only flags that exist and lack a
    /// doc comment of their own.
    #[test]
    fn examples_parse_and_the_help_table_is_not_stale() {
        fn find<'a>(cmd: &'a clap::Command, path: &str) -> Option<&'a clap::Command> {
            path.split(' ').try_fold(cmd, |c, name| c.find_subcommand(name))
        }
        for (path, example) in help::EXAMPLES {
            let words = words(example);
            assert_eq!(words[1..=path.split(' ').count()].join(" "), *path, "{example}");
            if let Err(e) = command().try_get_matches_from(&words) {
                panic!("the example for `{path}` does not parse: {example}\n{e}");
            }
        }
        let mut bare = Cli::command();
        bare.build();
        for (paths, id, _) in help::FLAG_HELP {
            for path in *paths {
                let cmd = find(&bare, path).unwrap_or_else(|| panic!("no command `{path}`"));
                let arg = cmd.get_arguments().find(|a| a.get_id() == *id);
                let arg = arg.unwrap_or_else(|| panic!("`{path}` has no flag `{id}`"));
                assert!(arg.get_help().is_none(), "`{path} {id}` has a doc comment now: remove its FLAG_HELP entry");
            }
        }
    }

    #[test]
    fn completions_and_man_pages_cover_every_command() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "pincer", &mut out);
            let script = String::from_utf8(out).unwrap();
            for word in ["deliveries", "older-than", "best-effort-deliver", "completions"] {
                assert!(script.contains(word), "{shell} completions lack {word}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        write_man_pages(dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join("pincer-cron-add.1")).unwrap();
        assert!(page.contains("Example") && page.contains("daily\\-brief"), "{page}");
        assert!(dir.path().join("pincer-deliveries-purge.1").exists());
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
