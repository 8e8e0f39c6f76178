//! Help that clap's derive attributes do not carry: one example per command, and the help of the
//! flags that have no doc comment of their own, applied to the command tree by [`document`].
//!
//! Kept in one table rather than spread over `commands/*` so the examples read as one page and
//! one test checks them all: every example parses with the real command line, every entry names a
//! command and flag that exist, and a flag that gains a doc comment makes its entry here stale
//! (the test says to remove it).

use clap::Command;

/// `(command path, example command line)`; `#` starts a comment shown after the example.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("gateway run", "pincer gateway run --port 18789 --bind loopback"),
    ("health", "pincer health --json"),
    ("status", "pincer status"),
    ("dashboard", "pincer dashboard --no-open"),
    ("doctor", "pincer doctor"),
    ("cron status", "pincer cron status"),
    ("cron list", "pincer cron list --all"),
    ("cron get", "pincer cron get daily-brief --json"),
    ("cron show", "pincer cron show daily-brief"),
    (
        "cron add",
        "pincer cron add --name daily-brief --cron '0 7 * * *' --tz Europe/Berlin --message 'Summarise the news' --announce --channel telegram --to 123456789",
    ),
    ("cron edit", "pincer cron edit daily-brief --cron '30 7 * * 1-5'"),
    ("cron rm", "pincer cron rm daily-brief"),
    ("cron enable", "pincer cron enable daily-brief"),
    ("cron disable", "pincer cron disable daily-brief"),
    ("cron run", "pincer cron run daily-brief --wait"),
    ("cron runs", "pincer cron runs daily-brief --limit 10 --status error"),
    ("message send", "pincer message send --channel telegram --to 123456789 --message 'Backup finished'"),
    ("deliveries list", "pincer deliveries list --state dead"),
    ("deliveries show", "pincer deliveries show 3f2a"),
    ("deliveries retry", "pincer deliveries retry 3f2a"),
    ("deliveries cancel", "pincer deliveries cancel 3f2a"),
    ("deliveries purge", "pincer deliveries purge --state delivered --older-than 7d"),
    ("pairing list", "pincer pairing list telegram"),
    ("pairing approve", "pincer pairing approve telegram K7QW2MZX"),
    ("pairing reject", "pincer pairing reject telegram K7QW2MZX"),
    ("approvals list", "pincer approvals list"),
    ("approvals approve", "pincer approvals approve 3f2a9c   # --always: allow its executables from now on"),
    ("approvals deny", "pincer approvals deny 3f2a9c"),
    ("approvals grants", "pincer approvals grants --json"),
    ("approvals revoke", "pincer approvals revoke grant-1a2b3c4d5e6f"),
    ("mcp list", "pincer mcp list --json"),
    ("mcp probe", "pincer mcp probe time"),
    ("devices list", "pincer devices list"),
    ("devices approve", "pincer devices approve 8c1d"),
    ("devices reject", "pincer devices reject 8c1d"),
    ("devices remove", "pincer devices remove 5be0"),
    ("devices rename", "pincer devices rename 5be0 'Work laptop'"),
    ("devices rotate", "pincer devices rotate 5be0 --role operator"),
    ("devices revoke", "pincer devices revoke 5be0 --role operator"),
    ("audit", "pincer audit --limit 20"),
    ("agent", "pincer agent --message 'What is on my calendar today?' --session main"),
    ("sessions list", "pincer sessions list --kind named"),
    (
        "sessions show",
        "pincer sessions show main --session-id 0b7c6f2e-4d1a-4c3e-9f10-2a5d8e7b9c41   # a transcript /new replaced; without it, the current one and a list of the earlier",
    ),
    ("sessions cleanup", "pincer sessions cleanup --dry-run   # then without --dry-run to apply"),
    ("inbox", "pincer inbox --limit 5"),
    ("import openclaw", "pincer import openclaw ~/.openclaw --dry-run   # then without --dry-run"),
    ("service install", "pincer service install --dry-run   # prints the unit; without it, writes and starts it"),
    ("service uninstall", "pincer service uninstall"),
    ("service status", "pincer service status"),
    ("service restart", "pincer service restart   # after an upgrade"),
    ("logs", "pincer logs -f --level warn   # --json for JSON lines, --lines 50 for fewer"),
    ("backup", "pincer backup /var/backups/pincer-2026-03-01.db"),
    ("restore", "pincer restore /var/backups/pincer-2026-03-01.db   # with the gateway stopped"),
    ("completions", "pincer completions bash > ~/.local/share/bash-completion/completions/pincer"),
    ("man", "pincer man /usr/local/share/man/man1"),
    (
        "setup",
        "pincer setup --non-interactive --model-provider openai --api-key-env OPENAI_API_KEY --channel telegram --telegram-token-env TELEGRAM_BOT_TOKEN --to 123456789",
    ),
    ("config get", "pincer config get channels.telegram"),
    ("config set", "pincer config set channels.telegram.botToken '${TELEGRAM_BOT_TOKEN}'"),
    ("config validate", "pincer config validate"),
    ("config reload", "pincer config reload"),
];

/// `(command paths, flag id, help)` for flags without a doc comment.
pub const FLAG_HELP: &[(&[&str], &str, &str)] = &[
    (
        &["cron add", "cron edit"],
        "name",
        "The job's name; every command that takes a job accepts it in place of the id",
    ),
    (&["cron add", "cron edit"], "description", "Free text shown by `cron show`"),
    (
        &["cron add", "cron edit"],
        "model",
        "Model for the agent turn, as provider/model (default: agents.defaults.model)",
    ),
    (&["cron add", "cron edit"], "timeout_seconds", "The run's time limit in seconds"),
    (
        &["cron add", "cron edit"],
        "to",
        "Where to announce, in the channel's own syntax: telegram 123456789 or -1001234567890, discord channel:<id> or user:<id>, slack C0123 or user:U0123",
    ),
    (
        &["cron add", "cron edit"],
        "thread_id",
        "Thread or topic to announce into (Telegram topic, Slack thread, Discord thread)",
    ),
    (&["cron add", "cron edit"], "account", "Channel account to announce from, when the channel has several"),
    (
        &["cron add", "cron edit"],
        "delete_after_run",
        "Delete the job after its run succeeds (the default for --at jobs)",
    ),
    (&["cron add", "cron edit"], "keep_after_run", "Keep an --at job after it ran"),
    (&["cron edit"], "enable", "Enable the job"),
    (&["cron edit"], "disable", "Disable the job"),
    (&["cron edit"], "clear_model", "Use agents.defaults.model again"),
    (&["cron edit"], "clear_agent", "Use the main agent again"),
    (&["cron edit"], "clear_channel", "Forget the announce channel"),
    (&["cron edit"], "clear_to", "Forget the announce target"),
    (&["cron edit"], "clear_thread_id", "Forget the thread id"),
    (&["cron edit"], "clear_account", "Forget the channel account"),
    (&["cron edit"], "clear_description", "Remove the description"),
    (
        &["cron get", "cron edit", "cron rm", "cron enable", "cron disable", "cron run"],
        "id",
        "Job id, a unique id prefix, or the job's name (see `pincer cron list --all`)",
    ),
    (&["cron runs"], "id", "The job, as --id (same as the positional JOB): id, unique id prefix or name"),
    (&["cron run"], "wait_timeout", "With --wait: give up waiting after this long (the run goes on)"),
    (&["cron run"], "poll_interval", "With --wait: how often to check on the run"),
    (&["cron runs"], "run_id", "Show only this run"),
    (&["cron runs"], "limit", "At most this many runs"),
    (&["cron runs"], "offset", "Skip this many runs first (paging)"),
    (&["cron runs"], "status", "Only runs that ended so"),
    (&["cron runs"], "delivery_status", "Only runs whose delivery ended so"),
    (&["cron runs"], "sort", "Oldest (asc) or newest (desc) first; default newest"),
    (
        &["deliveries show", "deliveries retry", "deliveries cancel"],
        "id",
        "Delivery id, or a unique prefix of one (see `pincer deliveries list`)",
    ),
    (&["deliveries list"], "channel", "Only deliveries through this channel"),
    (&["deliveries list"], "limit", "At most this many deliveries"),
    (&["devices rotate", "devices revoke"], "role", "The token's role, e.g. operator"),
    (&["inbox"], "limit", "At most this many messages, newest first"),
    (&["message send"], "message", "The text to send"),
    (&["message send"], "thread_id", "Thread or topic to post into"),
    (&["sessions list"], "limit", "At most this many sessions"),
];

/// Adds [`EXAMPLES`] and [`FLAG_HELP`] to `cmd` and its subcommands.
pub fn document(cmd: Command) -> Command {
    document_at(cmd, "")
}

fn document_at(mut cmd: Command, path: &str) -> Command {
    for (paths, id, help) in FLAG_HELP {
        let has_arg = cmd.get_arguments().any(|a| a.get_id() == *id);
        if paths.contains(&path) && has_arg {
            cmd = cmd.mut_arg(*id, |a| if a.get_help().is_none() { a.help(*help) } else { a });
        }
    }
    if let Some((_, example)) = EXAMPLES.iter().find(|(p, _)| *p == path) {
        cmd = cmd.after_help(format!("Example:\n  {example}"));
    }
    cmd.mut_subcommands(|sub| {
        let sub_path = if path.is_empty() { sub.get_name().to_owned() } else { format!("{path} {}", sub.get_name()) };
        document_at(sub, &sub_path)
    })
}
