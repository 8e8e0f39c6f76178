//! `cargo xtask <task>`:
//!
//! - `test`: every test — the workspace suite, the console's browser tests, then the OpenClaw
//!   interop suite.
//! - `openclaw`: install Node 24 and `openclaw@2026.9.6` into `.cache/openclaw` (npm registry only).
//! - `console`: the browser console's tests in headless Chromium (axe-core from npm).
//! - `interop`: install OpenClaw, then run the ignored `interop::` tests of the e2e suite with it.
//! - `bench`: measure Pincer beside OpenClaw in the same run and write BENCHMARKS.md.
//! - `load`: 1,000 WebSocket clients issuing mixed reads for 60 s; latency, errors, memory; then
//!   100 honest clients under a slowloris and 25 MB pre-hello frame attack (the hostile rows).
//! - `soak`: an hour of steady traffic; RSS every minute and the drift (not in CI).
//! - `fuzz`: run the cargo-fuzz targets in `fuzz/` for a bounded time each (nightly; see `fuzz.rs`).
//! - `crash`: the crash suite with N cycles per crash point, and its summary (see `crash.rs`).

mod bench;
mod console;
mod crash;
mod fuzz;
mod openclaw;

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root();
    // `PINCER_BENCH_DEBUG=1` keeps a debug xtask (with `PINCER_BENCH_BINARY` pointing at a debug
    // `pincer`): a before/after comparison without any release build, not a number to publish.
    if cfg!(debug_assertions)
        && matches!(args.first().map(String::as_str), Some("bench" | "load" | "soak"))
        && std::env::var_os("PINCER_BENCH_DEBUG").is_none()
    {
        // The measuring clients and fake servers live in this process: run them optimised.
        let status = Command::new("cargo")
            .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
            .args(&args)
            .current_dir(&root)
            .status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
    match args.first().map(String::as_str) {
        Some("openclaw") => {
            let oc = openclaw::ensure(&root)?;
            println!("NODE={}\nOPENCLAW={}", oc.node.display(), oc.mjs.display());
            Ok(())
        }
        Some("interop") => interop(&root, &args[1..]),
        Some("console") => console::run(&root, &args[1..]),
        Some("test") => {
            // No Chromium is an error, said before the suite's minutes rather than after them.
            pincer_testkit::browser::programs()?;
            suite(&root, &args[1..])?;
            console::run(&root, &[])?;
            interop(&root, &[])
        }
        Some("bench") => bench::run(&root, &args[1..]),
        Some("load") => bench::load(&root, &args[1..]),
        Some("soak") => bench::soak(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("crash") => crash::run(&root, &args[1..]),
        Some("compat") => {
            let path = root.join("COMPATIBILITY.md");
            std::fs::write(&path, pincer_gateway::compat::compatibility_markdown())?;
            println!("wrote {}", path.display());
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <test|console|openclaw|interop|bench|load|soak|fuzz|crash|compat> [args]\n");
            eprintln!("  test       every test: the workspace suite, the console in Chromium, then the interop suite");
            eprintln!("  console    the browser console's tests in headless Chromium (+ axe-core from npm)");
            eprintln!("  compat     write COMPATIBILITY.md from the method registry (a test fails when it is stale)");
            eprintln!("  openclaw   install Node 24 + openclaw@2026.9.6 into .cache/openclaw");
            eprintln!("  interop    run the stock OpenClaw CLI against Pincer (the e2e suite's interop:: tests)");
            eprintln!("  bench      measure Pincer beside OpenClaw and write BENCHMARKS.md (--quick for fewer runs)");
            eprintln!(
                "  load       1,000 WebSocket clients × 60 s of reads, then 100 under attack (--clients N --secs S"
            );
            eprintln!("             --hostile-secs S (0: none) --only-hostile --no-openclaw)");
            eprintln!("  soak       an hour of steady traffic, RSS drift (--minutes N, --state DIR)");
            eprintln!("  fuzz       the cargo-fuzz targets, bounded (--secs N per target, default 30; nightly)");
            eprintln!(
                "  crash      the crash suite, N cycles per crash point, and its summary (--iterations N, --write)"
            );
            std::process::exit(2)
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repo root").to_path_buf()
}

fn has_nextest() -> bool {
    Command::new("cargo").args(["nextest", "--version"]).output().is_ok_and(|o| o.status.success())
}

/// The workspace's tests (unit, golden, end-to-end), without the ignored interop ones.
fn suite(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    let mut cmd = Command::new("cargo");
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    let status = cmd.args(extra).current_dir(root).status()?;
    anyhow::ensure!(status.success(), "test suite failed");
    Ok(())
}

/// `base` narrowed by the caller's `-E <expr>` (nextest ORs several `-E`, which would run the
/// whole suite), and the other arguments.
fn narrowed(base: &str, extra: &[String]) -> (String, Vec<String>) {
    let (mut filter, mut rest) = (base.to_string(), Vec::new());
    let mut args = extra.iter();
    while let Some(a) = args.next() {
        let expr = match a.as_str() {
            "-E" | "--filterset" | "--filter-expr" => args.next().cloned(),
            _ => a.strip_prefix("--filterset=").or_else(|| a.strip_prefix("--filter-expr=")).map(String::from),
        };
        match expr {
            Some(e) => filter = format!("{filter} & ({e})"),
            None => rest.push(a.clone()),
        }
    }
    (filter, rest)
}

fn interop(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    let oc = openclaw::ensure(root)?;
    let mut cmd = Command::new("cargo");
    let (filter, extra) = narrowed("test(/^interop::/)", extra);
    if has_nextest() {
        cmd.args(["nextest", "run", "-p", "pincer-cli", "--test", "e2e", "--run-ignored", "only", "-E", &filter]);
    } else {
        cmd.args(["test", "-p", "pincer-cli", "--test", "e2e", "--", "--ignored", "interop::"]);
    }
    cmd.args(&extra).current_dir(root).env("PINCER_OPENCLAW_NODE", &oc.node).env("PINCER_OPENCLAW_MJS", &oc.mjs);
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "interop suite failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::narrowed;

    #[test]
    fn a_callers_filter_narrows_the_suite_instead_of_widening_it() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (f, rest) = narrowed("test(/^interop::/)", &args(&["-E", "test(control_ui)", "--no-fail-fast"]));
        assert_eq!((f.as_str(), rest), ("test(/^interop::/) & (test(control_ui))", args(&["--no-fail-fast"])));
        let (f, rest) = narrowed("test(/^interop::/)", &args(&["--filterset=test(a)", "-E", "test(b)"]));
        assert_eq!((f.as_str(), rest.len()), ("test(/^interop::/) & (test(a)) & (test(b))", 0));
        assert_eq!(narrowed("base", &[]).0, "base");
    }
}
