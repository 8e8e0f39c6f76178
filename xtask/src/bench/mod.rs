//! `cargo xtask bench [--quick]`: Pincer beside OpenClaw 2026.9.6, measured in the same run on the
//! same machine, written to BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::openclaw::{self, OpenClaw};

const OC_TOKEN: &str = "bench-token-openclaw-0123456789";

struct Row {
    metric: &'static str,
    pincer: f64,
    openclaw: Option<f64>,
    unit: &'static str,
    target: &'static str,
    /// True when a smaller number is better (time, memory).
    lower_is_better: bool,
}

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let skip_openclaw = args.iter().any(|a| a == "--no-openclaw");
    eprintln!("bench: building pincer (release)");
    let status =
        Command::new("cargo").args(["build", "--release", "-q", "-p", "pincer-cli"]).current_dir(root).status()?;
    anyhow::ensure!(status.success(), "release build failed");
    let pincer = root.join("target/release/pincer");
    let oc = if skip_openclaw { None } else { Some(openclaw::ensure(root)?) };
    let work = root.join("target/bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let (pincer_runs, oc_runs) = if quick { (5, 1) } else { (15, 3) };
    let mut rows = Vec::new();

    eprintln!("bench: cold start to /readyz ({pincer_runs} Pincer runs, {oc_runs} OpenClaw runs)");
    let p_start = median(
        (0..pincer_runs)
            .map(|i| start_pincer(&pincer, &work.join(format!("p-cold-{i}"))).map(|g| g.stop_after_ready()))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let o_start = match &oc {
        Some(oc) => Some(median(
            (0..oc_runs)
                .map(|i| start_openclaw(oc, &work.join(format!("o-cold-{i}"))).map(|g| g.stop_after_ready()))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )),
        None => None,
    };
    rows.push(Row {
        metric: "Cold start to /readyz",
        pincer: p_start,
        openclaw: o_start,
        unit: "ms",
        target: "< 100 ms",
        lower_is_better: true,
    });

    eprintln!("bench: idle RSS after 30 s, CLI round trip, SIGTERM to exit");
    let mut p = start_pincer(&pincer, &work.join("p-idle"))?;
    let mut o = match &oc {
        Some(oc) => Some(start_openclaw(oc, &work.join("o-idle"))?),
        None => None,
    };
    std::thread::sleep(Duration::from_secs(if quick { 5 } else { 30 }));
    let p_rss = rss_kib(p.child.id()) as f64 / 1024.0;
    let o_rss = o.as_ref().map(|o| rss_kib(o.child.id()) as f64 / 1024.0);
    let o_tree = o.as_ref().map(|o| tree_rss_kib(o.child.id()) as f64 / 1024.0);
    rows.push(Row {
        metric: "Idle RSS, main process",
        pincer: p_rss,
        openclaw: o_rss,
        unit: "MB",
        target: "< 30 MB",
        lower_is_better: true,
    });
    rows.push(Row {
        metric: "Idle RSS, process tree",
        pincer: tree_rss_kib(p.child.id()) as f64 / 1024.0,
        openclaw: o_tree,
        unit: "MB",
        target: "",
        lower_is_better: true,
    });

    let cli_runs = if quick { 10 } else { 30 };
    let p_cli = median(
        (0..cli_runs)
            .map(|_| timed(Command::new(&pincer).args(["health", "--json"]).env("PINCER_STATE_DIR", &p.state)))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let o_cli = match (&oc, &o) {
        (Some(oc), Some(o)) => Some(median(
            (0..oc_runs.max(3)).map(|_| timed(&mut o.cli(oc, &["health"]))).collect::<anyhow::Result<Vec<_>>>()?,
        )),
        _ => None,
    };
    rows.push(Row {
        metric: "CLI `health` round trip",
        pincer: p_cli,
        openclaw: o_cli,
        unit: "ms",
        target: "< 20 ms",
        lower_is_better: true,
    });

    let p_stop = p.terminate()?;
    let o_stop = match o.as_mut() {
        Some(o) => Some(o.terminate()?),
        None => None,
    };
    rows.push(Row {
        metric: "SIGTERM to exit",
        pincer: p_stop,
        openclaw: o_stop,
        unit: "ms",
        target: "< 1000 ms",
        lower_is_better: true,
    });

    let report = render(&rows, quick);
    println!("{report}");
    std::fs::write(root.join("BENCHMARKS.md"), &report)?;
    eprintln!("bench: wrote BENCHMARKS.md");
    Ok(())
}

struct Gateway {
    child: Child,
    state: PathBuf,
    port: u16,
    ready_ms: f64,
    openclaw: bool,
}

impl Gateway {
    fn stop_after_ready(mut self) -> f64 {
        let _ = self.terminate();
        self.ready_ms
    }

    fn terminate(&mut self) -> anyhow::Result<f64> {
        let started = Instant::now();
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                anyhow::bail!("gateway did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    }

    fn cli(&self, oc: &OpenClaw, args: &[&str]) -> Command {
        let mut cmd = Command::new(&oc.node);
        cmd.arg(&oc.mjs).args(args);
        openclaw_env(&mut cmd, &self.state, self.port);
        cmd
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.openclaw {
            // OpenClaw's workers are children of the main process; make sure none outlive it.
            let _ = Command::new("pkill").args(["-f", &self.state.display().to_string()]).status();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_pincer(binary: &Path, state: &Path) -> anyhow::Result<Gateway> {
    std::fs::create_dir_all(state)?;
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(binary)
        .args(["gateway", "--port", &port.to_string()])
        .env("PINCER_STATE_DIR", state)
        .env("PINCER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_ready(child, state, port, started, false, Duration::from_secs(20))
}

fn openclaw_env(cmd: &mut Command, state: &Path, port: u16) {
    cmd.env("HOME", state.join("home"))
        .env("TMPDIR", state.join("tmp"))
        .env("OPENCLAW_STATE_DIR", state)
        .env("OPENCLAW_CONFIG_PATH", state.join("openclaw.json"))
        .env("OPENCLAW_GATEWAY_PORT", port.to_string())
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .env("OPENCLAW_NO_AUTO_UPDATE", "1")
        .env("OPENCLAW_OFFLINE", "1")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

fn start_openclaw(oc: &OpenClaw, state: &Path) -> anyhow::Result<Gateway> {
    std::fs::create_dir_all(state.join("home"))?;
    std::fs::create_dir_all(state.join("tmp"))?;
    let port = free_port();
    let config = serde_json::json!({
        "gateway": { "mode": "local", "port": port, "bind": "loopback", "auth": { "mode": "token", "token": OC_TOKEN } },
        "logging": { "file": state.join("openclaw.log").display().to_string() },
        "models": { "catalogRefresh": { "enabled": false } },
    });
    std::fs::write(state.join("openclaw.json"), serde_json::to_string_pretty(&config)?)?;
    let started = Instant::now();
    let mut cmd = Command::new(&oc.node);
    cmd.arg(&oc.mjs).args(["gateway", "run", "--port", &port.to_string(), "--bind", "loopback"]);
    openclaw_env(&mut cmd, state, port);
    let child = cmd.spawn()?;
    wait_ready(child, state, port, started, true, Duration::from_secs(120))
}

fn wait_ready(
    mut child: Child,
    state: &Path,
    port: u16,
    started: Instant,
    openclaw: bool,
    limit: Duration,
) -> anyhow::Result<Gateway> {
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("gateway in {} exited early with {status}", state.display());
        }
        if readyz(port) {
            let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
            return Ok(Gateway { child, state: state.to_path_buf(), port, ready_ms, openclaw });
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            anyhow::bail!("gateway in {} not ready after {limit:?}", state.display());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn readyz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.lines().next().is_some_and(|l| l.contains(" 200 ")) && buf.contains("\"ready\":true")
}

fn timed(cmd: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.success(), "{cmd:?} failed");
    Ok(ms)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// RSS of a process and all its descendants.
fn tree_rss_kib(pid: u32) -> u64 {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut total = 0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        total += rss_kib(p);
        stack.extend(children.get(&p).cloned().unwrap_or_default());
    }
    total
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

fn fmt(value: f64, unit: &str) -> String {
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
        out.push_str(" `--quick` (fewer runs, 5 s idle instead of 30 s)");
    }
    out.push_str(". Both systems were measured in the same run on the same machine; medians of repeated runs.\n\n");
    out.push_str(&format!("- Date: {date}\n- Machine: {}\n- Pincer: release build of this commit; OpenClaw: npm `openclaw@2026.9.6` on Node 24.21.0, loopback, no channels\n\n", machine()));
    out.push_str("| Metric | Pincer | OpenClaw | OpenClaw ÷ Pincer | Pincer target |\n|---|---:|---:|---:|---|\n");
    for r in rows {
        let oc = r.openclaw.map(|v| fmt(v, r.unit)).unwrap_or_else(|| "not measured".into());
        let ratio = match r.openclaw {
            Some(v) if r.pincer > 0.0 && r.lower_is_better => format!("{:.0}×", v / r.pincer),
            Some(v) if v > 0.0 => format!("{:.0}×", r.pincer / v),
            _ => "-".into(),
        };
        let met = if r.target.is_empty() { String::new() } else { r.target.to_string() };
        out.push_str(&format!("| {} | {} | {oc} | {ratio} | {met} |\n", r.metric, fmt(r.pincer, r.unit)));
    }
    out.push_str("\nHow each number is taken:\n\n");
    out.push_str("- Cold start: spawn the gateway on a fresh state dir, poll `GET /readyz` every millisecond until it answers 200 with `\"ready\":true`.\n");
    out.push_str("- Idle RSS: `VmRSS` from `/proc/<pid>/status` after 30 s idle; the process tree adds every descendant (OpenClaw runs two worker processes).\n");
    out.push_str("- CLI round trip: wall time of a whole `pincer health --json` / `openclaw health` process against an idle local gateway.\n");
    out.push_str("- SIGTERM to exit: from `kill -TERM` to the process being reaped.\n");
    out
}
