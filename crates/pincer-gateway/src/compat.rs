//! The compatibility table (`COMPATIBILITY.md`): every method and event of OpenClaw 2026.9.6
//! against what this gateway registers, generated from the method registry
//! (`pincer_protocol::schema::METHODS`) and [`EVENTS`], never written by hand.
//! `cargo xtask compat` writes it; a test fails when the file is stale.

use std::fmt::Write;

use pincer_protocol::schema::METHODS;
use pincer_protocol::{OPENCLAW_EVENTS, OPENCLAW_TSV, PINCER_METHODS, Requirement};

use crate::handshake::EVENTS;

/// How Pincer answers an OpenClaw method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Registered, with OpenClaw's params and result shapes.
    Implemented,
    /// Registered, answering an empty result of OpenClaw's shape because Pincer has no such
    /// thing (listed in [`HONEST_EMPTY`]).
    HonestEmpty,
    /// Answered `unknown method`, for the reason given.
    Refused,
}

/// Methods answered with an empty result of the right shape, and why empty is the truth.
pub const HONEST_EMPTY: &[(&str, &str)] = &[
    ("node.list", "Pincer has no nodes"),
    ("tasks.list", "Pincer has no background task ledger (cron runs are `cron.runs`)"),
    ("plugins.list", "Pincer has no plugins"),
    ("update.status", "Pincer is updated by its package, never by the gateway"),
    ("worktrees.list", "Pincer has no git worktrees"),
    ("projects.list", "Pincer has no project registry"),
    ("question.list", "Pincer's agent asks the operator no questions"),
    ("plugin.approval.list", "Pincer has no plugins, so no plugin approvals"),
    ("talk.catalog", "Pincer has no voice or talk mode: no modes, no providers, nothing ready"),
    ("sessions.companion.state", "Pincer has no side chat: a session has no companion exchanges"),
    ("sessions.branches.list", "Pincer's transcripts are linear: no branches to switch to"),
    ("progressCard.get", "Pincer's agent keeps no progress card: `card` is `null`"),
    (
        "sessions.observer.visibility",
        "Pincer has no session observer (activity summaries): acknowledged with `ok: true`, changes nothing",
    ),
    ("artifacts.list", "Pincer stores no artifacts (images and files a session produced)"),
    (
        "openclaw.approval.list",
        "Pincer has no system agent, so none of its approvals (exec approvals are `exec.approval.list`'s)",
    ),
];

/// What an implemented method leaves out or reads differently from OpenClaw.
const NOTES: &[(&str, &str)] = &[
    (
        "sessions.list",
        "display hints accepted: `configuredAgentsOnly`, `archived`, `includeLastMessage`, `includeDerivedTitles`, `activeMinutes` honoured; `sortBy` `updatedAt`/`activity` (one order: the last update first); `includePeople` an empty `people` facet (Pincer records no people); `includeActivitySummary`, `excludeSubagents`, `excludeSystem`, `includeGlobal`, `includeUnknown` accepted (nothing to add or exclude)",
    ),
    (
        "agent",
        "`deliver` sends the reply through the outbox (`replyChannel`/`replyTo`, else `channel`/`to`, else the session's last route); a recipient `to` picks the session by `session.dmScope`",
    ),
    (
        "chat.history",
        "`sessionId` reads that transcript of the session (its current one or one `/new`/`/reset`/`sessions.reset` replaced) whole, paged and caught up like the current one; OpenClaw needs `messageId` with it (`messageId`, `offset`, `pendingBefore`, `maxChars` refused); another session's id is OpenClaw's \"sessionId does not belong to sessionKey\"",
    ),
    (
        "sessions.describe",
        "adds `previousTranscripts` (the replaced transcripts: id, reason, times, message and token counts); Pincer's `sessionId` describes one of them; rows carry OpenClaw's `previousSessionId`",
    ),
    ("sessions.delete", "`deleteTranscript: false` refused: a Pincer transcript lives inside its session"),
    (
        "sessions.patch",
        "`label`, `model` (the session's next turns) and `archived` honoured; every other field refused by name",
    ),
    (
        "sessions.cleanup",
        "`session.maintenance` `pruneAfter`, `maxEntries`, `resetArchiveRetention` (default 30d: no disk budget); `agent`, `allAgents`, `activeKey` honoured, `enforce` and `fixMissing` accepted, `fixDmScope: true` refused; Pincer's `dryRun`",
    ),
    ("models.list", "the configured providers' models; `view`, `includeDetails`, `refresh`, `preparedOnly` accepted"),
    ("channels.status", "the outbox's view of each channel; `probe` accepted (probes are `doctor.run`'s)"),
    ("last-heartbeat", "the last tick of Pincer's heartbeat (over queued system events)"),
    ("system-presence", "the gateway and its live connections"),
    ("exec.approval.list", "the `ask`-mode commands waiting for a decision (`pincer approvals list`)"),
    (
        "exec.approval.resolve",
        "`allow-always` adds the command's executables to `<state>/exec-approvals.json`, as OpenClaw does",
    ),
    (
        "exec.approvals.get",
        "`defaults` is `tools.exec.mode` (read-only here); the allowlist is the allow-always grants of `<state>/exec-approvals.json`, under agent `*`",
    ),
    (
        "exec.approvals.set",
        "replaces the allow-always grants (every agent's allowlist); a change of `defaults` is refused: edit `tools.exec.mode`",
    ),
    (
        "exec.approval.grants.list",
        "the allow-always grants of `<state>/exec-approvals.json`: `command` is the granted pattern; the cron binding, times and use counts are `null` (not kept)",
    ),
    (
        "exec.approval.grants.revoke",
        "by `grantId` (or the pattern): removed from the file and audited; `already-revoked` never happens, a second revoke is `not-found`",
    ),
    ("sessions.compact", "`maxLines` trims to the newest entries; without it `ok: false`: Pincer does not summarise"),
    (
        "sessions.reset",
        "a new session id, as OpenClaw; the old transcript stays in the store under its old id (no `.reset` file)",
    ),
    ("sessions.resolve", "by `key` or `sessionId`; `label`, `shortId`, `reference` refused"),
    ("sessions.subscribe", "every `operator.read` connection gets `sessions.changed`; list filters refused"),
    ("usage.status", "tokens per configured provider; no quota windows"),
    ("usage.cost", "tokens by UTC day; no prices, so costs are 0 and counted in `missingCostEntries`"),
    ("commands.list", "the chat channels' commands (`/new`, `/status`, `/help`)"),
    (
        "audit.activity.list",
        "the activity ledger (store table `activity`, written by triggers): agent runs (cron, `agent`, chat turns) and their tool actions from the transcript, inbound chat messages when answered or failed, outbound messages when the outbox settles them (`delivered`/`dead`/`unknown`); metadata only, ids as keyed hashes; no `reasonCode`/`resultCount` (Pincer records no suppression or batch counts); Pincer's security audit log stays `audit.query`",
    ),
    ("audit.list", "the same ledger's run and tool records, in OpenClaw's 2026.7 shape"),
    (
        "audit.run.inspect",
        "Pincer records no execution identity or decisions: a known run is `unsupported` (`identity_not_recorded`), an unknown one OpenClaw's `run_not_found`, an `executionId` `execution_not_found`; any `decisionCursor` is refused",
    ),
    (
        "models.authStatus",
        "each configured provider: `static` with a key (its source, `config` or `env`, never its value), `missing` without; no auth profiles, so `profiles` is empty",
    ),
];

/// Why a method Pincer does not register is refused, by name prefix (the first match wins).
const REASONS: &[(&str, &str)] = &[
    ("node.", "Pincer has no nodes"),
    ("talk.", "Pincer has no voice or talk mode"),
    ("voicewake.", "Pincer has no voice or talk mode"),
    ("tts.", "Pincer has no voice or talk mode"),
    ("exec.approvals.node.", "Pincer has no nodes: commands run on the gateway's own host (`exec.approvals.get`)"),
    ("exec.approval.", "approvals are raised by Pincer's own `exec` tool, not requested by clients"),
    ("plugin", "Pincer has no plugins"),
    ("skills.", "skills are not served over the gateway yet"),
    ("update.", "Pincer is updated by its package, not by the gateway"),
    ("terminal.", "Pincer has no terminal sessions"),
    ("chat.inject", "not implemented: Pincer's transcripts take messages only from turns"),
    ("chat.message.get", "not implemented: chat.history serves whole entries"),
    ("chat.toolTitles", "not implemented: tools are not wired into chat turns yet"),
    ("chat.", "not implemented"),
    ("sessions.", "not implemented yet (issue 14, deliver 2)"),
    ("channels.", "not implemented yet (issue 14, deliver 2)"),
    ("config.", "not implemented yet (issue 14, deliver 2)"),
    ("models.", "not implemented yet (issue 14, deliver 2)"),
    ("usage.", "not implemented yet (issue 14, deliver 2)"),
    ("logs.", "not implemented yet (issue 14, deliver 2)"),
];

fn refusal_reason(name: &str) -> &'static str {
    REASONS.iter().find(|(prefix, _)| name.starts_with(prefix)).map_or("not implemented", |(_, why)| why)
}

/// Whether and how Pincer answers `name`.
pub fn support(name: &str) -> (Support, &'static str) {
    if let Some((_, why)) = HONEST_EMPTY.iter().find(|(m, _)| *m == name) {
        return (Support::HonestEmpty, why);
    }
    if let Some(why) = NOTES.iter().find(|(m, _)| *m == name).map(|(_, why)| *why)
        && METHODS.iter().any(|m| m.name == name)
    {
        return (Support::Implemented, why);
    }
    if METHODS.iter().any(|m| m.name == name) {
        return (Support::Implemented, "");
    }
    (Support::Refused, refusal_reason(name))
}

/// The whole `COMPATIBILITY.md`.
pub fn compatibility_markdown() -> String {
    let rows: Vec<(&str, &str)> = OPENCLAW_TSV
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?, cols.next()?))
        })
        .collect();
    let count = |s: Support| rows.iter().filter(|(m, _)| support(m).0 == s).count();
    let mut out = String::new();
    let _ = writeln!(out, "# Compatibility with OpenClaw 2026.9.6\n");
    let _ = writeln!(
        out,
        "Generated by `cargo xtask compat` from Pincer's method registry against OpenClaw's method table\n\
         (`crates/pincer-protocol/src/method-scopes.tsv`) and `hello-ok` event list; do not edit by hand.\n\
         A test fails when this file is stale.\n"
    );
    let _ = writeln!(
        out,
        "Of OpenClaw's {} methods: {} implemented, {} honest-empty, {} refused (`unknown method`).\n",
        rows.len(),
        count(Support::Implemented),
        count(Support::HonestEmpty),
        count(Support::Refused)
    );
    let _ = writeln!(out, "## Methods\n\n| Method | OpenClaw scope | Pincer | Note |\n|---|---|---|---|");
    for (name, scope) in &rows {
        let (s, why) = support(name);
        let label = match s {
            Support::Implemented => "implemented",
            Support::HonestEmpty => "honest-empty",
            Support::Refused => "refused",
        };
        let _ = writeln!(out, "| `{name}` | {scope} | {label} | {why} |");
    }
    let _ = writeln!(out, "\n## Pincer's own methods\n\n| Method | Scope |\n|---|---|");
    for (name, requirement) in PINCER_METHODS {
        let scope = match requirement {
            Requirement::Authenticated => "any",
            Requirement::Scope(s) => s.as_str(),
            Requirement::NodeRole => "node",
            Requirement::Dynamic => "dynamic",
        };
        let _ = writeln!(out, "| `{name}` | {scope} |");
    }
    let openclaw_events: Vec<&str> = OPENCLAW_EVENTS.lines().filter(|l| !l.is_empty()).collect();
    let sent = openclaw_events.iter().filter(|e| EVENTS.contains(e)).count();
    let _ = writeln!(
        out,
        "\n## Events\n\nOf OpenClaw's {} events Pincer sends {sent}.\n\n| Event | Pincer |\n|---|---|",
        openclaw_events.len()
    );
    for event in &openclaw_events {
        let label = if EVENTS.contains(event) { "sent" } else { "not sent" };
        let _ = writeln!(out, "| `{event}` | {label} |");
    }
    let own: Vec<&&str> = EVENTS.iter().filter(|e| !openclaw_events.contains(e)).collect();
    let _ = writeln!(
        out,
        "\nPincer's own events: {}.",
        own.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `COMPATIBILITY.md` is what the registry says today.
    #[test]
    fn compatibility_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../COMPATIBILITY.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == compatibility_markdown(),
            "COMPATIBILITY.md is stale: run `cargo xtask compat` and commit it"
        );
    }

    #[test]
    fn every_registered_method_is_in_a_table() {
        for m in METHODS {
            let in_openclaw = OPENCLAW_TSV.lines().any(|l| l.split('\t').next() == Some(m.name));
            let own = PINCER_METHODS.iter().any(|(n, _)| *n == m.name);
            assert!(in_openclaw || own, "{} is in neither OpenClaw's table nor Pincer's own", m.name);
        }
        assert_eq!(support("cron.get").0, Support::Implemented);
        assert_eq!(support("node.list"), (Support::HonestEmpty, "Pincer has no nodes"));
        assert_eq!(support("node.invoke"), (Support::Refused, "Pincer has no nodes"));
        for (name, _) in HONEST_EMPTY {
            assert!(METHODS.iter().any(|m| m.name == *name), "{name} is honest-empty but not registered");
        }
    }
}
