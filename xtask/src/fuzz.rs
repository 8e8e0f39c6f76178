//! `cargo xtask fuzz [--secs N] [--sanitizer none|address] [target…]`: runs the cargo-fuzz targets in
//! `fuzz/` for a bounded time each (30 s by default, as CI does; longer on demand) and fails if any
//! finds a crash, a panic or a hang.
//!
//! Needs a nightly toolchain (libFuzzer's instrumentation) and `cargo-fuzz`, which it installs from
//! crates.io when missing. Each target reads its seeds from `fuzz/corpus/<target>/` (kept in git,
//! never written) and grows a working corpus in `fuzz/target/corpus/<target>/`, which later runs
//! start from. Findings land in `fuzz/artifacts/<target>/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// Every target in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &["frame", "connect", "job", "cron_expr", "config"];

/// Seconds per target when `--secs` is not given.
const DEFAULT_SECS: u64 = 30;
/// libFuzzer's per-input limit: an input that takes longer is reported as a hang.
const INPUT_TIMEOUT_SECS: u64 = 5;

struct Options {
    secs: u64,
    sanitizer: String,
    targets: Vec<String>,
}

fn usage() -> String {
    format!(
        "usage: cargo xtask fuzz [--secs N] [--sanitizer none|address] [target…]\n  targets: {} (default: all)\n  --secs N   fuzz each target for N seconds (default {DEFAULT_SECS})",
        TARGETS.join(", ")
    )
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options { secs: DEFAULT_SECS, sanitizer: "none".into(), targets: Vec::new() };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => {
                let value = args.next().with_context(usage)?;
                options.secs = value
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .with_context(|| format!("--secs: `{value}` is not a positive number of seconds"))?;
            }
            "--sanitizer" => options.sanitizer = args.next().with_context(usage)?.clone(),
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => bail!("unknown flag {flag}\n{}", usage()),
            target if TARGETS.contains(&target) => options.targets.push(target.to_string()),
            other => bail!("unknown fuzz target `{other}`\n{}", usage()),
        }
    }
    if options.targets.is_empty() {
        options.targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok(options)
}

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let fuzz_dir = root.join("fuzz");
    let flags = ["-a", "-s", options.sanitizer.as_str()];

    // One build for every target (the first one compiles the dependencies, ~2.5 min on 2 cores).
    let started = Instant::now();
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "build"])
        .args(flags)
        .current_dir(&fuzz_dir)
        .status()
        .context("cannot run cargo fuzz build")?;
    anyhow::ensure!(status.success(), "building the fuzz targets failed");
    println!("fuzz: built the targets in {:.0} s", started.elapsed().as_secs_f64());

    let mut failed = Vec::new();
    for target in &options.targets {
        if let Err(e) = run_target(&fuzz_dir, target, &flags, options.secs) {
            eprintln!("fuzz: {target}: {e:#}");
            failed.push(target.clone());
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    println!("fuzz: {} target(s), {} s each: no crash, no hang", options.targets.len(), options.secs);
    Ok(())
}

fn run_target(fuzz_dir: &Path, target: &str, flags: &[&str], secs: u64) -> anyhow::Result<()> {
    let work = fuzz_dir.join("target/corpus").join(target);
    let seeds = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let logs = fuzz_dir.join("target/logs");
    for dir in [&work, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let before = list(&artifacts);
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let started = Instant::now();
    // libFuzzer writes new inputs to the first corpus dir only, so the seeds stay as committed.
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "run"])
        .args(flags)
        .arg(target)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .current_dir(fuzz_dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run cargo fuzz run {target}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let found: Vec<PathBuf> = list(&artifacts).into_iter().filter(|p| !before.contains(p)).collect();
    if status.success() && found.is_empty() {
        println!(
            "fuzz: {target}: {} inputs in {elapsed:.0} s, corpus {} — ok",
            stat(&text, "stat::number_of_executed_units").unwrap_or("?"),
            std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0),
        );
        return Ok(());
    }
    // The finding: the panic or libFuzzer's report, then how to reproduce it.
    for line in finding(&text) {
        eprintln!("  {line}");
    }
    eprintln!("fuzz: {target}: full log in {}", log_path.display());
    for artifact in &found {
        let rel = artifact.strip_prefix(fuzz_dir).unwrap_or(artifact).display().to_string();
        eprintln!("fuzz: {target}: input saved as fuzz/{rel}");
        eprintln!("  reproduce: (cd fuzz && cargo +nightly fuzz run {} {target} {rel})", flags.join(" "));
        eprintln!("  minimise:  (cd fuzz && cargo +nightly fuzz tmin {} {target} {rel})", flags.join(" "));
    }
    bail!("{target} failed after {elapsed:.0} s ({status})")
}

/// What went wrong, from a failed run's log: the panic message (without its backtrace) and
/// libFuzzer's verdict (`deadly signal`, `timeout`, `out-of-memory`, …), or the last lines.
fn finding(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    if let Some(start) = lines.iter().position(|l| l.contains("panicked at")) {
        out.extend(lines[start..].iter().take_while(|l| !l.starts_with("stack backtrace:")).take(20));
    }
    out.extend(
        lines
            .iter()
            .filter(|l| l.contains("ERROR: libFuzzer:") || l.starts_with("ALARM:") || l.starts_with("SUMMARY:")),
    );
    if out.is_empty() {
        out.extend(&lines[lines.len().saturating_sub(20)..]);
    }
    out
}

/// A value of libFuzzer's `-print_final_stats` output.
fn stat<'a>(log: &'a str, name: &str) -> Option<&'a str> {
    log.lines().rev().find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':').map(str::trim))
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    files
}

fn ensure_nightly() -> anyhow::Result<()> {
    let ok = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "the fuzz targets need a nightly Rust toolchain (libFuzzer instrumentation), and `rustup run nightly rustc` \
             does not work here: install it with `rustup toolchain install nightly --profile minimal`, then rerun `cargo xtask fuzz`"
        );
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz from crates.io");
    let status = Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]).status()?;
    anyhow::ensure!(status.success(), "`cargo install --locked cargo-fuzz` failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_stats_and_skips_backtraces() {
        let log = "#1 INITED\nstat::number_of_executed_units: 6048877\nstat::peak_rss_mb:              50\n";
        assert_eq!(stat(log, "stat::number_of_executed_units"), Some("6048877"));
        assert_eq!(stat(log, "stat::peak_rss_mb"), Some("50"));
        let crash = "#5 NEW\nthread '<unnamed>' (1) panicked at src/job.rs:181:29:\nattempt to multiply with overflow\n\
                     stack backtrace:\n   0: core::panicking::panic\n==1== ERROR: libFuzzer: deadly signal\nSUMMARY: x\n";
        assert_eq!(
            finding(crash),
            [
                "thread '<unnamed>' (1) panicked at src/job.rs:181:29:",
                "attempt to multiply with overflow",
                "==1== ERROR: libFuzzer: deadly signal",
                "SUMMARY: x"
            ]
        );
    }

    #[test]
    fn parses_targets_and_seconds() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse(&args(&["--secs", "20", "job", "config"])).unwrap();
        assert_eq!((o.secs, o.targets.as_slice()), (20, &["job".to_string(), "config".to_string()][..]));
        assert_eq!(parse(&args(&[])).unwrap().targets.len(), TARGETS.len());
        assert!(parse(&args(&["nope"])).is_err());
        assert!(parse(&args(&["--secs", "0"])).is_err());
    }
}
