//! `cargo xtask bench [--quick] [--no-openclaw]`: Pincer beside OpenClaw 2026.9.6, measured in the
//! same run on the same machine, written to BENCHMARKS.md.

mod agent;
mod console;
mod gateway;
mod inbound;
mod jobs;
mod load;
mod outbox;
mod scheduler;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use gateway::{rss_kib, rss_parts_kib, start_openclaw, start_pincer, tree_rss_kib};
pub use load::{load, soak};

use crate::openclaw::{self, OpenClaw};

/// One line of the report.
pub struct Row {
    pub section: &'static str,
    pub metric: String,
    pub pincer: Option<f64>,
    pub openclaw: Option<f64>,
    pub unit: &'static str,
    pub target: &'static str,
    /// True when a smaller number is better (time, memory).
    pub lower_is_better: bool,
    /// Why OpenClaw has no number here, when it has none.
    pub note: &'static str,
    /// Counts (errors, messages) are compared side by side, not as a ratio.
    pub ratio: bool,
}

impl Row {
    pub fn new(section: &'static str, metric: impl Into<String>, unit: &'static str) -> Row {
        Row {
            section,
            metric: metric.into(),
            pincer: None,
            openclaw: None,
            unit,
            target: "",
            lower_is_better: true,
            note: "",
            ratio: true,
        }
    }
    pub fn pincer(mut self, v: f64) -> Row {
        self.pincer = Some(v);
        self
    }
    pub fn openclaw(mut self, v: Option<f64>) -> Row {
        self.openclaw = v;
        self
    }
    pub fn target(mut self, t: &'static str) -> Row {
        self.target = t;
        self
    }
    pub fn higher_is_better(mut self) -> Row {
        self.lower_is_better = false;
        self
    }
    pub fn count(mut self) -> Row {
        self.ratio = false;
        self
    }
    pub fn note(mut self, n: &'static str) -> Row {
        self.note = n;
        self
    }
}

/// Shared context of one benchmark run.
pub struct Bench {
    pub pincer: PathBuf,
    pub openclaw: Option<OpenClaw>,
    pub work: PathBuf,
    pub quick: bool,
    pub rows: Vec<Row>,
}

impl Bench {
    pub fn dir(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
    }
}

/// Builds the release binary once; `PINCER_BENCH_BINARY` names a binary to measure instead
/// (another build kept aside, to compare two builds in the same conditions).
pub fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
    if let Some(binary) = std::env::var_os("PINCER_BENCH_BINARY") {
        let binary = PathBuf::from(binary);
        anyhow::ensure!(binary.is_file(), "PINCER_BENCH_BINARY={} is not a file", binary.display());
        eprintln!("bench: measuring {} (PINCER_BENCH_BINARY; not built)", binary.display());
        return Ok(binary);
    }
    eprintln!("bench: building pincer (release)");
    let status =
        Command::new("cargo").args(["build", "--release", "-q", "-p", "pincer-cli"]).current_dir(root).status()?;
    anyhow::ensure!(status.success(), "release build failed");
    Ok(root.join("target/release/pincer"))
}

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let skip_openclaw = args.iter().any(|a| a == "--no-openclaw");
    // `sinks`: only the outbox's durable delivery to local sinks (a part of `outbox`).
    const SECTIONS: [&str; 10] =
        ["startup", "scheduler", "jobs", "outbox", "sinks", "load", "agent", "tools", "inbound", "console"];
    let only = match args.iter().position(|a| a == "--only") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some(s) if SECTIONS.contains(&s) => Some(s.to_string()),
            other => anyhow::bail!("--only takes one of {}, got {other:?}", SECTIONS.join(", ")),
        },
        None => None,
    };
    let wanted = |s: &str| only.as_deref().is_none_or(|o| o == s);
    raise_fd_limit();
    let pincer = build_release(root)?;
    let openclaw = if skip_openclaw { None } else { Some(openclaw::ensure(root)?) };
    let work = root.join("target/bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut b = Bench { pincer, openclaw, work, quick, rows: Vec::new() };

    if wanted("startup") {
        startup(&mut b)?;
    }
    if wanted("scheduler") {
        scheduler::run(&mut b)?;
    }
    if wanted("jobs") {
        jobs::run(&mut b)?;
    }
    if wanted("outbox") {
        outbox::run(&mut b)?;
    }
    if only.as_deref() == Some("sinks") {
        outbox::sinks(&mut b)?;
    }
    if wanted("agent") {
        agent::run(&mut b)?;
    }
    if wanted("tools") {
        tools::run(&mut b)?;
    }
    if wanted("inbound") {
        inbound::run(&mut b)?;
    }
    if wanted("load") {
        load::bench_rows(&mut b)?;
    }
    if wanted("console") {
        console::run(&mut b)?;
    }

    let report = render(&b.rows, quick);
    println!("{report}");
    if only.is_none() {
        let old = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
        std::fs::write(root.join("BENCHMARKS.md"), crate::crash::keep_section(&old, &report))?;
        eprintln!("bench: wrote BENCHMARKS.md");
    } else if only.as_deref() == Some("console") && !quick && b.rows.iter().any(|r| r.section == console::SECTION) {
        // The console's rows need no OpenClaw and take a minute: they can be refreshed alone.
        let old = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
        let date = report.lines().find_map(|l| l.strip_prefix("- Date: ")).unwrap_or("").to_string();
        let load =
            std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(String::from));
        let note = format!(
            "From `cargo xtask bench --only console` on {date}, release build, headless {}; the machine's 1-minute load average was {} right after the run.\n\n",
            console::chromium_version(),
            load.as_deref().unwrap_or("unknown")
        );
        std::fs::write(root.join("BENCHMARKS.md"), splice_section(&old, &report, console::SECTION, &note))?;
        eprintln!("bench: wrote the {} section of BENCHMARKS.md", console::SECTION);
    } else {
        eprintln!("bench: --only: BENCHMARKS.md left as it was");
    }
    Ok(())
}

/// `old` with its `## <heading>` section replaced by the one in `report` (`note` under the
/// heading), or the section inserted before the crash suite's (else before "How each number is
/// taken", else at the end).
fn splice_section(old: &str, report: &str, heading: &str, note: &str) -> String {
    let head = format!("## {heading}\n");
    let section_of = |text: &str| -> Option<(usize, usize)> {
        let s = if text.starts_with(&head) { 0 } else { text.find(&format!("\n{head}"))? + 1 };
        let rest = &text[s + head.len()..];
        let e =
            [rest.find("\n## "), rest.find("\n<!-- ")].into_iter().flatten().min().map(|i| i + 1).unwrap_or(rest.len());
        Some((s, s + head.len() + e))
    };
    let Some((s, e)) = section_of(report) else { return old.to_string() };
    let body = report[s + head.len()..e].trim_start_matches('\n');
    let block = format!("{head}\n{note}{body}");
    if let Some((s, e)) = section_of(old) {
        return format!("{}{block}{}", &old[..s], &old[e..]);
    }
    let at = ["\n<!-- crash-suite:start -->", "\n## How each number is taken"]
        .iter()
        .find_map(|m| old.find(m))
        .map(|i| i + 1);
    match at {
        Some(i) => format!("{}{block}{}", &old[..i], &old[i..]),
        None => format!("{old}\n{block}"),
    }
}

/// Cold start, idle memory, CLI round trip, SIGTERM.
fn startup(b: &mut Bench) -> anyhow::Result<()> {
    let (pincer_runs, oc_runs) = if b.quick { (5, 1) } else { (15, 3) };
    eprintln!("bench: cold start to /readyz ({pincer_runs} Pincer runs, {oc_runs} OpenClaw runs)");
    let mut p_start = Vec::new();
    for i in 0..pincer_runs {
        p_start
            .push(start_pincer(&b.pincer, &b.dir(&format!("p-cold-{i}")), serde_json::json!({}))?.stop_after_ready());
    }
    let o_start = match &b.openclaw {
        Some(oc) => {
            let mut v = Vec::new();
            for i in 0..oc_runs {
                v.push(start_openclaw(oc, &b.dir(&format!("o-cold-{i}")), serde_json::json!({}))?.stop_after_ready());
            }
            Some(median(v))
        }
        None => None,
    };
    b.rows.push(
        Row::new("Start and idle", "Cold start to /readyz", "ms")
            .pincer(median(p_start))
            .openclaw(o_start)
            .target("< 100 ms"),
    );

    eprintln!("bench: idle RSS after 30 s, CLI round trip, SIGTERM to exit");
    let mut p = start_pincer(&b.pincer, &b.dir("p-idle"), serde_json::json!({}))?;
    let mut o = match &b.openclaw {
        Some(oc) => Some(start_openclaw(oc, &b.dir("o-idle"), serde_json::json!({}))?),
        None => None,
    };
    std::thread::sleep(Duration::from_secs(if b.quick { 5 } else { 30 }));
    let mib = |kib: u64| kib as f64 / 1024.0;
    b.rows.push(
        Row::new("Start and idle", "Idle RSS, main process", "MB")
            .pincer(mib(rss_kib(p.child.id())))
            .openclaw(o.as_ref().map(|o| mib(rss_kib(o.child.id()))))
            .target("< 12 MB"),
    );
    let (p_anon, p_file) = rss_parts_kib(p.child.id());
    let o_parts = o.as_ref().map(|o| rss_parts_kib(o.child.id()));
    b.rows.push(
        Row::new("Start and idle", "Idle RSS, main process: anonymous (heap, stacks, caches)", "MB")
            .pincer(mib(p_anon))
            .openclaw(o_parts.map(|(anon, _)| mib(anon))),
    );
    b.rows.push(
        Row::new("Start and idle", "Idle RSS, main process: file-backed (code pages touched)", "MB")
            .pincer(mib(p_file))
            .openclaw(o_parts.map(|(_, file)| mib(file))),
    );
    b.rows.push(
        Row::new("Start and idle", "Idle RSS, process tree", "MB")
            .pincer(mib(tree_rss_kib(p.child.id())))
            .openclaw(o.as_ref().map(|o| mib(tree_rss_kib(o.child.id())))),
    );
    let cli_runs = if b.quick { 10 } else { 30 };
    let mut p_cli = Vec::new();
    for _ in 0..cli_runs {
        p_cli.push(timed(Command::new(&b.pincer).args(["health", "--json"]).env("PINCER_STATE_DIR", &p.state))?);
    }
    let o_cli = match (&b.openclaw, &o) {
        (Some(oc), Some(o)) => {
            let mut v = Vec::new();
            for _ in 0..oc_runs.max(3) {
                v.push(timed(&mut o.cli(oc, &["health"]))?);
            }
            Some(median(v))
        }
        _ => None,
    };
    b.rows.push(
        Row::new("Start and idle", "CLI `health` round trip", "ms")
            .pincer(median(p_cli))
            .openclaw(o_cli)
            .target("< 20 ms"),
    );
    let p_stop = p.terminate()?;
    let o_stop = match o.as_mut() {
        Some(o) => Some(o.terminate()?),
        None => None,
    };
    b.rows
        .push(Row::new("Start and idle", "SIGTERM to exit", "ms").pincer(p_stop).openclaw(o_stop).target("< 1000 ms"));
    Ok(())
}

pub fn timed(cmd: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.success(), "{cmd:?} failed");
    Ok(ms)
}

pub fn median(values: Vec<f64>) -> f64 {
    percentile(values, 50.0)
}

/// The `p`-th percentile (nearest rank) of `values`.
pub fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}

/// Lets one process hold thousands of sockets (the load test, a busy gateway).
pub fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB RAM, Linux {}", kernel.trim())
}

pub fn fmt(value: f64, unit: &str) -> String {
    if value.is_nan() {
        return "-".into();
    }
    if value >= 100.0 {
        format!("{value:.0} {unit}")
    } else if value >= 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.2} {unit}")
    }
}

fn render(rows: &[Row], quick: bool) -> String {
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut out = String::new();
    out.push_str("# Benchmarks: Pincer beside OpenClaw 2026.9.6\n\n");
    out.push_str("Written by `cargo xtask bench`");
    if quick {
        out.push_str(" `--quick` (fewer runs, shorter waits)");
    }
    out.push_str(". Both systems were measured in the same run on the same machine.\n\n");
    out.push_str(&format!(
        "- Date: {date}\n- Machine: {}\n- Pincer: release build of this commit; OpenClaw: npm `openclaw@2026.9.6` on Node 24.21.0, loopback\n- Reproduce: `cargo xtask bench` (about 20 minutes; `--quick` for a smoke run, `--no-openclaw` to skip the reference)\n",
        machine()
    ));
    let mut section = "";
    for r in rows {
        if r.section != section {
            section = r.section;
            out.push_str(&format!("\n## {section}\n\n| Metric | Pincer | OpenClaw | Pincer better by | Pincer target |\n|---|---:|---:|---:|---|\n"));
        }
        let oc = match r.openclaw {
            Some(v) => fmt(v, r.unit),
            None if !r.note.is_empty() => r.note.to_string(),
            None => "not measured".into(),
        };
        // How many times better Pincer is (below 1× means OpenClaw did better).
        let factor = match (r.pincer, r.openclaw) {
            (Some(p), Some(o)) if r.ratio && p > 0.0 && o > 0.0 => Some(if r.lower_is_better { o / p } else { p / o }),
            _ => None,
        };
        let ratio = match factor {
            Some(f) if f >= 10.0 => format!("{f:.0}×"),
            Some(f) => format!("{f:.1}×"),
            None => "-".into(),
        };
        let p = r.pincer.map(|v| fmt(v, r.unit)).unwrap_or_else(|| "-".into());
        out.push_str(&format!("| {} | {p} | {oc} | {ratio} | {} |\n", r.metric, r.target));
    }
    out.push_str("\n## How each number is taken\n\n");
    for line in [
        "Cold start: spawn the gateway on a fresh state dir, poll `GET /readyz` every millisecond until it answers 200 with `\"ready\":true`; median of the runs.",
        "Idle RSS: `VmRSS` from `/proc/<pid>/status` after 30 s idle; the process tree adds every descendant (OpenClaw runs worker processes). The two rows under it split the main process's RSS into `RssAnon` (memory it allocated) and `RssFile` + `RssShmem` (pages of its binary and libraries it touched; the kernel maps them in 64 KB fault-around windows from the shared, reclaimable page cache). Five seconds after `/readyz` Pincer unmaps the clean pages of its binary that start-up touched (`MADV_DONTNEED`), and again after it sat idle for 30 s following work, so its file-backed row is the code an idle gateway has run since.",
        "CLI round trip: wall time of a whole `pincer health --json` / `openclaw health` process against an idle local gateway; median.",
        "SIGTERM to exit: from `kill -TERM` to the process being reaped.",
        "Scheduler lag: `startedAtMs − slotMs` of every run (Pincer's run records; OpenClaw's `cron runs` `runAtMs` minus the minute it was due), for 10 jobs firing every minute with no stagger; each gateway alone on the machine for its minutes.",
        "Scheduler capacity: 100,000 jobs written to a stopped gateway's store (10,000 due within the minute after the start, the rest a day later); ready is from spawning the gateway to `/readyz` answering 200 (best of three starts); memory is the RSS growth over an empty gateway 5 s after the start (after the background check of every job) divided by the job count; the 10,000 then fire spread over one minute, and the lag is `startedAtMs − slotMs` of every run; the wake time is the mean of `pincer_cron_wake_seconds` (the scheduler actor's busy time per wake-up).",
        "Outbox throughput: messages sent with the `send` method from 8 connections to 10 chats of a fake Telegram Bot API on 127.0.0.1 (both gateways use `channels.telegram.apiRoot`), from the first request to the last message received. Pincer's default pacing (25 messages/s for Telegram, 40/s for Discord) is switched off with `delivery.rateLimits.<channel>: 0`; OpenClaw has none. The Discord row is Pincer alone: OpenClaw's Discord API base cannot be pointed at a fake.",
        "Durable delivery to local sinks: `send` from 8 connections, each with 32 requests in flight, to 16 inboxes (delivered counted with `deliveries.list`) and to 16 URLs of a fake webhook receiver on 127.0.0.1; from the first request to the last delivery. Every message is committed before `send` answers, and each part's `dispatching` is committed before its request and `sent` after.",
        "Backlog across `kill -9`: `send` while the Telegram API refuses connections (Pincer accepts into its outbox; OpenClaw queues the message and answers with the send error), `kill -9` the gateway, bring the API back, restart: what arrives, how soon, and whether anything arrives twice.",
        "Restart with pending rows: rows written to a stopped gateway's outbox for 100 channels of a fake Discord; from `/readyz` answering to the first message at the fake, and from spawning the gateway to the last.",
        "Cron jobs at scale: 100,000 daily jobs (every 20th disabled, none due during the run) written to a stopped gateway's store; `cron.list` pages of 50 at the first, middle and last offset (round trip at the client, median of 21); the whole `pincer cron list --json` (all pages of 200, to the JSON printed); then `cron.add` from 8 connections, each with 16 requests in flight. OpenClaw gets as many `cron.add`s the same way as it completes in two minutes, then its first and last page.",
        "Agent turns: agent-turn jobs every 5 s, spaced 500 ms apart, against a fake OpenAI-compatible server that records when each request arrived and when each response body ended (wall clock, µs). Slot to request: arrival − the job's slot. Last byte to commit: the announced delivery's `createdAtMs` (milliseconds, taken as the middle of the millisecond) − the end of the model's response.",
        "Console: Debian's headless Chromium, driven over WebDriver, loads the Overview on loopback as a returning visitor (device key and token already in the browser); first contentful paint is the browser's `first-contentful-paint` entry, first meaningful paint the console's `pincer:overview-ready` mark, set when the gateway's health is on screen; median of the loads. Page weight: the bodies of the document and every file a fresh load of that page fetched (Resource Timing); the console is served uncompressed, so this is what crosses the wire, less headers.",
        "Tool loop: one `agent` turn per session answered by a fake OpenAI-compatible model with 20 `read` calls in a row (10 turns; then the same with `write`, a tool with effects, whose step fsyncs its open call before the tool runs, where a step of read-only calls commits without one); the overhead of a step is the gap from the model's last byte of a tool-calling reply to the first byte of the next request, minus the tool's recorded `durationMs`. The MCP row is the recorded `durationMs` of `srv__echo` on pincer-tools' stdio test server (release build), started once by the gateway.",
        "Inbound chat: the gateway long-polls a fake Telegram Bot API (`channels.telegram.apiRoot`, `dmPolicy: \"open\"`, `session.dmScope: \"per-channel-peer\"`) and answers through a fake OpenAI-compatible model that echoes the new user text; both record wall-clock microseconds. Handed over to request: from the `getUpdates` answer that carried the message (so the long-poll wait is not counted) to the model request's head, for messages sent one at a time over 20 DM chats. Last byte to reply: from the end of the model's response body to the reply's `sendMessage` at the fake. Burst: 100 DM chats each send several messages at once; the echoed replies show every message answered exactly once and each chat's messages answered in the order written (messages that arrive during a turn are answered together by the next one).",
        "Load: WebSocket clients connect with the gateway token, then each issues one of `health`, `status`, `cron.list`, `cron.status` per second (random phase); latency is request to response at the client; errors include failed connects and 10 s timeouts; memory growth is the process tree's RSS after minus before.",
    ] {
        out.push_str(&format!("- {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::splice_section;

    #[test]
    fn the_console_section_is_inserted_before_the_crash_suite_then_replaced_in_place() {
        let old = "# Benchmarks\n\n## Load\n\n| a |\n\n<!-- crash-suite:start -->\n## Crash suite\n\nx\n<!-- crash-suite:end -->\n\n## How each number is taken\n\n- y\n";
        let report = |n: &str| {
            format!(
                "# Benchmarks\n\n- Date: d\n\n## Console\n\n| paint | {n} |\n\n## How each number is taken\n\n- z\n"
            )
        };
        let once = splice_section(old, &report("1"), "Console", "From here.\n\n");
        assert_eq!(
            once,
            "# Benchmarks\n\n## Load\n\n| a |\n\n## Console\n\nFrom here.\n\n| paint | 1 |\n\n<!-- crash-suite:start -->\n## Crash suite\n\nx\n<!-- crash-suite:end -->\n\n## How each number is taken\n\n- y\n"
        );
        let twice = splice_section(&once, &report("2"), "Console", "From there.\n\n");
        assert_eq!(twice, once.replace("From here.", "From there.").replace("| 1 |", "| 2 |"));
        // Nothing to splice: the file is left as it was.
        assert_eq!(splice_section(old, "# Benchmarks\n", "Console", ""), old);
        // No crash suite: before "How each number is taken".
        let plain = "# B\n\n## Load\n\n| a |\n\n## How each number is taken\n\n- y\n";
        assert_eq!(
            splice_section(plain, &report("3"), "Console", ""),
            "# B\n\n## Load\n\n| a |\n\n## Console\n\n| paint | 3 |\n\n## How each number is taken\n\n- y\n"
        );
    }
}
