//! `cargo xtask crash [--iterations N] [--write]`: the crash suite (`tests/crash.rs`) with `N`
//! cycles per crash point — each cycle arms one `PINCER_CRASHPOINTS` pass (1 to N) on the real
//! binary, lets it `SIGKILL` itself there, restarts it, and checks what arrived — then a summary
//! of what every cycle observed: cycles, messages, lost, sent twice, reported unknown, slots
//! rerun. The tests append one JSON line per cycle to `$PINCER_CRASH_SUMMARY`; this task adds
//! them up. `--write` puts the table into BENCHMARKS.md after a clean run (between the
//! crash-suite markers, which `cargo xtask bench` keeps when it rewrites the file).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// Cycles per point when `--iterations` is not given.
const DEFAULT_ITERATIONS: u32 = 10;

/// The markers around the crash-suite section of BENCHMARKS.md.
const START: &str = "<!-- crash-suite:start -->";
const END: &str = "<!-- crash-suite:end -->";

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let iterations = match args.iter().position(|a| a == "--iterations") {
        Some(i) => match args.get(i + 1).and_then(|n| n.parse::<u32>().ok()) {
            Some(n) if n >= 1 => n,
            _ => anyhow::bail!("--iterations takes a number ≥ 1, e.g. `cargo xtask crash --iterations 100`"),
        },
        None => DEFAULT_ITERATIONS,
    };
    let write = args.iter().any(|a| a == "--write");
    let dir = root.join("target/crash");
    std::fs::create_dir_all(&dir)?;
    let summary = dir.join("summary.jsonl");
    let _ = std::fs::remove_file(&summary);

    eprintln!("crash: the crash suite with {iterations} cycles per crash point");
    let mut cmd = Command::new("cargo");
    if crate::has_nextest() {
        cmd.args(["nextest", "run", "-p", "pincer-cli", "--test", "e2e", "--no-fail-fast", "-E", "test(/^crash::/)"]);
    } else {
        cmd.args(["test", "-p", "pincer-cli", "--test", "e2e", "--no-fail-fast", "--", "crash::"]);
    }
    let started = Instant::now();
    let load_before = load_average();
    let status = cmd
        .current_dir(root)
        .env("PINCER_CRASH_ITERATIONS", iterations.to_string())
        .env("PINCER_CRASH_SUMMARY", &summary)
        .status()?;
    let wall = started.elapsed();
    let load = load_before.zip(load_average());

    let text = std::fs::read_to_string(&summary).unwrap_or_default();
    let cycles: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let table = render(&cycles, iterations, wall.as_secs_f64(), load);
    println!("{table}");
    let total = Totals::of(cycles.iter());
    let clean = status.success() && total.lost == 0 && total.twice == 0 && total.rerun == 0;
    if write && clean {
        let path = root.join("BENCHMARKS.md");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, with_section(&old, &table))?;
        eprintln!("crash: wrote the crash-suite section of BENCHMARKS.md");
    } else if write {
        eprintln!("crash: the run failed; BENCHMARKS.md left as it was");
    }
    anyhow::ensure!(status.success(), "the crash suite failed (see the test output above)");
    anyhow::ensure!(!cycles.is_empty(), "no cycle was recorded in {}", summary.display());
    anyhow::ensure!(
        total.lost == 0 && total.twice == 0 && total.rerun == 0,
        "the crash suite lost {} messages, sent {} twice and reran {} slots",
        total.lost,
        total.twice,
        total.rerun
    );
    Ok(())
}

#[derive(Default)]
struct Totals {
    cycles: u64,
    max_hit: u64,
    messages: u64,
    delivered: u64,
    lost: u64,
    twice: u64,
    unknown: u64,
    slots: u64,
    rerun: u64,
    ms: u64,
}

impl Totals {
    fn of<'a>(cycles: impl Iterator<Item = &'a Value>) -> Totals {
        let mut t = Totals::default();
        for c in cycles {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            t.cycles += 1;
            t.max_hit = t.max_hit.max(n("hit"));
            t.messages += n("messages");
            t.delivered += n("delivered");
            t.lost += n("lost");
            t.twice += n("twice");
            t.unknown += n("unknown");
            t.slots += n("slots");
            t.rerun += n("slotsRerun");
            t.ms += n("ms");
        }
        t
    }

    fn row(&self, label: &str) -> String {
        let mean = if self.cycles > 0 { self.ms as f64 / self.cycles as f64 / 1000.0 } else { 0.0 };
        format!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {mean:.2} s |\n",
            self.cycles,
            self.max_hit,
            self.messages,
            self.delivered,
            self.lost,
            self.twice,
            self.unknown,
            self.slots,
            self.rerun
        )
    }
}

/// The 1-minute load average (Linux), to say how busy the machine was.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// The summary as a Markdown section, one row per (crashed component, crash point).
fn render(cycles: &[Value], iterations: u32, wall_secs: f64, load: Option<(f64, f64)>) -> String {
    let mut groups: BTreeMap<(usize, String, String), Vec<&Value>> = BTreeMap::new();
    for c in cycles {
        let point = c["point"].as_str().unwrap_or("?").to_string();
        // Crash points in the order work flows through them; plain `kill -9` last.
        let order = ["cron.reserved", "cron.executed", "outbox.enqueued", "outbox.dispatching", "outbox.sent"]
            .iter()
            .position(|p| *p == point)
            .unwrap_or(9);
        let target = c["target"].as_str().unwrap_or("?").to_string();
        groups.entry((order, point, target)).or_default().push(c);
    }
    let mut out = String::new();
    out.push_str("## Crash suite\n\n");
    out.push_str(&format!(
        "From `cargo xtask crash --iterations {iterations}`: every crash point armed at every pass from 1 to {iterations} (`PINCER_CRASHPOINTS=<point>:<pass>`), the debug binary `SIGKILL`ing itself there, restarted, and checked; plus the plain `kill -9` tests once. {} cycles in {:.0} s of wall time on this machine (two tests at a time).\n\n",
        cycles.len(),
        wall_secs
    ));
    if let Some((before, after)) = load {
        out.push_str(&format!(
            "The machine's 1-minute load average was {before:.1} at the start and {after:.1} at the end; cycle times stretch with it.\n\n"
        ));
    }
    out.push_str("| Crashed at | Cycles | Up to pass | Messages sent | Arrivals | Lost | Sent twice | Reported unknown | Slot runs | Slots rerun | Mean cycle |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((_, point, target), list) in &groups {
        out.push_str(&Totals::of(list.iter().copied()).row(&format!("`{point}` ({target})")));
    }
    out.push_str(&Totals::of(cycles.iter()).row("**All**"));
    out.push_str(
        "\nMessages sent counts every `send` the client made, including the one in flight when the gateway died (it may or may not have been committed). Lost: accepted and never arrived, with no row reporting it `unknown`. Sent twice: arrived more than once. Reported unknown: Telegram parts that may have been sent when the gateway died; Telegram cannot be asked, so they are reported, never resent. Slots rerun: a run id that executed twice, or two runs of one slot.\n",
    );
    out
}

/// `old` with its crash-suite section replaced by `section` (or inserted before "How each number
/// is taken", else appended).
pub fn with_section(old: &str, section: &str) -> String {
    let block = format!("{START}\n{section}{END}\n\n");
    if let (Some(s), Some(e)) = (old.find(START), old.find(END))
        && s < e
    {
        return format!("{}{block}{}", &old[..s], old[e + END.len()..].trim_start_matches('\n'));
    }
    match old.find("\n## How each number is taken") {
        Some(i) => format!("{}{block}{}", &old[..=i], &old[i + 1..]),
        None => format!("{old}\n{block}"),
    }
}

/// `new` (a fresh report from `cargo xtask bench`) with the crash-suite section of `old`, if it
/// had one: the bench does not run the crash suite, so it must not drop its figure.
pub fn keep_section(old: &str, new: &str) -> String {
    let Some(s) = old.find(START) else { return new.to_string() };
    let Some(e) = old[s..].find(END).map(|e| e + s) else { return new.to_string() };
    with_section(new, old[s + START.len()..e].trim_start_matches('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_inserted_then_replaced_and_survives_a_bench_rewrite() {
        let bench = "# Benchmarks\n\n## Load\n\n| a |\n\n## How each number is taken\n\n- x\n";
        let once = with_section(bench, "## Crash suite\n\nfirst\n");
        assert_eq!(
            once,
            "# Benchmarks\n\n## Load\n\n| a |\n\n<!-- crash-suite:start -->\n## Crash suite\n\nfirst\n<!-- crash-suite:end -->\n\n## How each number is taken\n\n- x\n"
        );
        let twice = with_section(&once, "## Crash suite\n\nsecond\n");
        assert!(twice.contains("second") && !twice.contains("first"), "{twice}");
        assert_eq!(twice.matches(START).count(), 1);
        // A bench rewrite (no section) takes the old section back.
        assert_eq!(keep_section(&twice, bench), twice);
        assert_eq!(keep_section(bench, bench), bench);
    }

    #[test]
    fn cycles_add_up_per_point() {
        let cycles: Vec<Value> = [
            r#"{"target":"discord","point":"outbox.sent","hit":1,"ms":200,"messages":4,"delivered":3,"lost":0,"twice":0,"unknown":0,"slots":0,"slotsRerun":0}"#,
            r#"{"target":"discord","point":"outbox.sent","hit":2,"ms":400,"messages":5,"delivered":4,"lost":0,"twice":1,"unknown":0,"slots":0,"slotsRerun":0}"#,
            r#"{"target":"scheduler","point":"cron.reserved","hit":1,"ms":1000,"messages":0,"delivered":0,"lost":0,"twice":0,"unknown":0,"slots":3,"slotsRerun":0}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let table = render(&cycles, 2, 1.6, Some((0.5, 1.25)));
        assert!(table.contains("load average was 0.5 at the start and 1.2 at the end"), "{table}");
        assert!(
            table.contains("| `cron.reserved` (scheduler) | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 3 | 0 | 1.00 s |"),
            "{table}"
        );
        assert!(table.contains("| `outbox.sent` (discord) | 2 | 2 | 9 | 7 | 0 | 1 | 0 | 0 | 0 | 0.30 s |"), "{table}");
        assert!(table.contains("| **All** | 3 | 2 | 9 | 7 | 0 | 1 | 0 | 3 | 0 | 0.53 s |"), "{table}");
        assert!(table.find("cron.reserved").unwrap() < table.find("outbox.sent").unwrap(), "{table}");
    }
}
