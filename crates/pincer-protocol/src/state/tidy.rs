//! Tidy test (rust-analyzer's kind): no state is spelled as a string literal outside its enum.
//!
//! Scans every crate's `src/` (not tests: test modules, `tests.rs`, `golden.rs`, `pincer-testkit`)
//! for string literals spelled like a value of one of [`all_spellings`]. Allowed: the definitions
//! here, a literal used as a JSON object key (`"dead": n`, `v["dead"]`, `.get("dead")`), and the
//! few words that are also another vocabulary in one place, listed in [`ELSEWHERE`] with why. SQL
//! text in the store never matches: its states are inside longer literals.

use std::path::{Path, PathBuf};

use super::all_spellings;

/// Words that are a state's spelling and, in these places, mean something else.
const ELSEWHERE: &[(&str, &[&str], &str)] = &[
    (
        "crates/pincer-agent/src/provider/",
        &["error", "model_not_found", "server_error", "billing"],
        "provider API payloads: their error types, codes and stream event names",
    ),
    ("crates/pincer-agent/src/heartbeat.rs", &["error"], "a heartbeat metric's outcome label"),
    ("crates/pincer-agent/src/turn.rs", &["ok"], "a model-turn metric's outcome label"),
    (
        "crates/pincer-agent/src/api.rs",
        &["ok", "error"],
        "the `agent` method's status and lifecycle phase (OpenClaw's)",
    ),
    (
        "crates/pincer-agent/src/api.rs",
        &["silent", "failed", "queued"],
        "the `agent --deliver` answer's `delivery.status`, noted where the reply's outbox row commits",
    ),
    ("crates/pincer-agent/src/chat.rs", &["error"], "an `agent` event's lifecycle phase (OpenClaw's)"),
    (
        "crates/pincer-gateway/src/methods/agent.rs",
        &["silent", "failed", "queued"],
        "the `agent --deliver` answer's `delivery.status` (nothing to send, refused, in the outbox)",
    ),
    (
        "crates/pincer-gateway/src/methods/control_ui.rs",
        &["missing"],
        "a provider's credential status in `models.authStatus` (OpenClaw's `static`/`missing`)",
    ),
    (
        "crates/pincer-agent/src/manage.rs",
        &["manual"],
        "a session's archive reason (OpenClaw's `archiveReason`: `manual`, `age-retention`, `cap`)",
    ),
    (
        "crates/pincer-agent/src/service.rs",
        &["cron", "heartbeat"],
        "a transcript turn's kind; a supervised task's name",
    ),
    (
        "crates/pincer-core/src/supervisor.rs",
        &["running", "failed"],
        "a supervised task's state (`TaskState`, the health/readyz vocabulary)",
    ),
    ("crates/pincer-auth/", &["pending", "manual", "silent"], "pairing-request states and how a device was approved"),
    (
        "crates/pincer-tools/",
        &["timeout", "cancelled", "failed", "cron", "format"],
        "tool errors, tool groups and arguments",
    ),
    ("crates/pincer-core/src/crashpoint.rs", &["error"], "a fail point's action"),
    ("crates/pincer-chat/src/turns.rs", &["reset"], "the `/reset` chat command (OpenClaw's name)"),
    ("crates/pincer-gateway/src/compat.rs", &["sent"], "COMPATIBILITY.md: whether Pincer sends an OpenClaw event"),
    ("crates/pincer-store/src/migrations.rs", &["cron"], "a migration's name"),
    (
        "crates/pincer-gateway/src/methods/audit.rs",
        &["started", "succeeded", "failed", "cancelled", "unknown", "unsupported", "target"],
        "OpenClaw's activity-record statuses, identity evidence states and hashed-ref kinds (`audit.*`)",
    ),
    ("crates/pincer-store/src/backup.rs", &["ok"], "SQLite's `PRAGMA quick_check` answer"),
    (
        "crates/pincer-gateway/",
        &["ok", "error", "store", "send", "config", "cron"],
        "doctor check names and levels, method names, request outcome labels, client ids",
    ),
    ("crates/pincer-cron/src/job.rs", &["payload", "heartbeat"], "field names; OpenClaw payload kinds Pincer refuses"),
    (
        "crates/pincer-gateway/src/tools/",
        &["payload", "target", "silent", "timeout", "unknown", "pending", "skipped"],
        "the gateway tools' argument names (OpenClaw's `message` and `cron` parameters), `sessions_send`'s status and its announce `delivery.status` (OpenClaw's) and an unnamed caller",
    ),
    ("crates/pincer-cron/src/schedule/", &["cron"], "the schedule kind"),
    (
        "crates/pincer-agent/src/manage.rs",
        &["new", "reset", "ok", "error", "timeout"],
        "`sessions.changed` reasons and `agent.wait`'s status (OpenClaw's words)",
    ),
    ("crates/pincer-chat/src/slack.rs", &["unknown"], "Slack's `disconnect` reason when it names none"),
    (
        "crates/pincer-chat/src/telegram.rs",
        &["polling"],
        "the inbound mode (polling | webhook), shown beside the state",
    ),
    ("crates/pincer-gateway/src/methods/doctor.rs", &["stopped"], "a doctor finding's text"),
    ("crates/pincer-gateway/src/ws.rs", &["connected"], "a log message"),
    ("crates/pincer-tools/src/mcp/", &["connected"], "an MCP server's state (`McpStatus`, its own vocabulary)"),
    ("crates/pincer-cron/src/scheduler/", &["cron", "started"], "the `cron` event and its `started` action"),
    ("crates/pincer-cron/src/api.rs", &["unknown"], "`cron.list`'s lastRunStatus filter for jobs that never ran"),
    (
        "crates/pincer-cli/",
        &[
            "payload",
            "cron",
            "config",
            "error",
            "unknown",
            "ok",
            "send",
            "running",
            "skipped",
            "delivered",
            "not-delivered",
            "not-requested",
        ],
        "field and method names, the schedule kind, log levels, doctor levels, channel health, task states, and clap's value lists (the accepted spellings of --status, --delivery-status and --state)",
    ),
    ("crates/pincer-delivery/src/outbox.rs", &["rate-limited", "credentials-rejected"], "a channel's health state"),
    ("crates/pincer-cli/src/commands/cron.rs", &["credentials-rejected"], "a channel's outbox health state"),
    ("crates/pincer-cli/src/commands/delivery.rs", &["queued"], "a delivery shown as waiting"),
    ("crates/pincer-cron/src/api.rs", &["stopped"], "the scheduler's own state in `cron.status`"),
    ("crates/pincer-delivery/src/api.rs", &["send"], "the method name"),
    ("crates/pincer-protocol/src/schema/delivery.rs", &["send"], "the method name"),
    (
        "crates/pincer-protocol/src/schema/cron.rs",
        &["cron", "heartbeat"],
        "the schedule kind; OpenClaw payload kinds Pincer refuses",
    ),
    (
        "crates/pincer-protocol/src/schema/system.rs",
        &["running", "failed", "stopped"],
        "a supervised task's state (`TaskState`)",
    ),
    ("crates/pincer-delivery/src/channel/", &["rate_limited", "ok"], "Slack's error code; a doctor finding's level"),
];

/// The file that defines the spellings, and this test.
const DEFINITIONS: [&str; 2] = ["crates/pincer-protocol/src/state.rs", "crates/pincer-protocol/src/state/"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if name != "tests" && name != "testdata" {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" && name != "golden.rs" {
            out.push(path);
        }
    }
}

/// A string literal: its text, the line it starts on, and its byte range in the file.
struct Literal {
    text: String,
    line: usize,
    start: usize,
    end: usize,
}

/// The string literals of `src` up to its test module (`#[cfg(test)]` at the start of a line),
/// skipping comments, char literals and lifetimes; raw strings are skipped (never a bare state).
fn literals(src: &str) -> Vec<Literal> {
    let src = match src.find("\n#[cfg(test)]") {
        Some(i) => &src[..i],
        None => src,
    };
    let b = src.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#')) && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                let mut j = i + 1 + hashes + 1;
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    line += usize::from(b[j] == b'\n');
                    j += 1;
                }
                i = j + close.len();
                continue;
            }
            b'\'' => {
                // A char literal ('x', '\n', '"'), or a lifetime ('a) which has no closing quote.
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 2;
                }
            }
            b'"' => {
                let (start, first_line) = (i, line);
                let mut text = Vec::new();
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        text.push(b[i]);
                        i += 1;
                    }
                    line += usize::from(b[i] == b'\n');
                    text.push(b[i]);
                    i += 1;
                }
                out.push(Literal { text: String::from_utf8_lossy(&text).into(), line: first_line, start, end: i + 1 });
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A literal used as a JSON object key: `"k": v`, `v["k"]`, `.get("k")` and friends.
fn is_key(src: &str, lit: &Literal) -> bool {
    let after = src[lit.end..].trim_start();
    let before = src[..lit.start].trim_end();
    (after.starts_with(':') && !after.starts_with("::"))
        || (before.ends_with('[') && after.starts_with(']'))
        || [".get(", ".get_mut(", ".remove(", ".contains_key(", ".insert(", ".entry("]
            .iter()
            .any(|m| before.ends_with(m))
}

#[test]
fn no_state_is_spelled_outside_its_enum() {
    let root = workspace();
    let spellings: Vec<(&str, &str)> =
        all_spellings().into_iter().flat_map(|(what, all)| all.iter().map(move |s| (*s, what))).collect();
    let mut files = Vec::new();
    let Ok(crates) = std::fs::read_dir(root.join("crates")) else { panic!("no crates/ under {}", root.display()) };
    for krate in crates.flatten() {
        if krate.file_name() != "pincer-testkit" {
            sources(&krate.path().join("src"), &mut files);
        }
    }
    files.sort();
    assert!(files.len() > 50, "the scan found only {} files under {}", files.len(), root.display());
    let mut found = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().replace('\\', "/");
        if DEFINITIONS.iter().any(|d| rel.starts_with(d)) {
            continue;
        }
        let Ok(src) = std::fs::read_to_string(path) else { continue };
        for lit in literals(&src) {
            let Some((_, what)) = spellings.iter().find(|(s, _)| *s == lit.text) else { continue };
            if is_key(&src, &lit) {
                continue;
            }
            let elsewhere = ELSEWHERE
                .iter()
                .any(|(prefix, words, _)| rel.starts_with(prefix) && words.contains(&lit.text.as_str()));
            if !elsewhere {
                found.push(format!(
                    "{rel}:{}: \"{}\" spells a value of {what}; use the enum in pincer_protocol::state",
                    lit.line, lit.text
                ));
            }
        }
    }
    assert!(found.is_empty(), "state spellings outside their enums:\n{}", found.join("\n"));
}

#[test]
fn the_scan_sees_literals_and_skips_comments_keys_and_chars() {
    let src = "// \"dead\"\nlet a = '\"'; let b = \"dead\"; let c = json!({\"dead\": 1}); v[\"dead\"];\nr#\"dead\"#;\n#[cfg(test)]\n\"dead\"";
    let lits = literals(src);
    let seen: Vec<(&str, usize, bool)> = lits.iter().map(|l| (l.text.as_str(), l.line, is_key(src, l))).collect();
    assert_eq!(seen, [("dead", 2, false), ("dead", 2, true), ("dead", 2, true)]);
}
