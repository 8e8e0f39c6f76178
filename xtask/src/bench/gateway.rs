//! Starting, measuring and stopping a Pincer or OpenClaw gateway for a benchmark.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::openclaw::OpenClaw;

pub const TOKEN: &str = "bench-token-0123456789abcdefghij";

/// A running gateway under measurement.
pub struct Gateway {
    pub child: Child,
    pub state: PathBuf,
    pub port: u16,
    pub ready_ms: f64,
    openclaw: bool,
}

impl Gateway {
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn stop_after_ready(mut self) -> f64 {
        let _ = self.terminate();
        self.ready_ms
    }

    /// SIGTERM; returns the milliseconds until the process was reaped.
    pub fn terminate(&mut self) -> anyhow::Result<f64> {
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

    /// An `openclaw` CLI command pointed at this (OpenClaw) gateway.
    pub fn cli(&self, oc: &OpenClaw, args: &[&str]) -> Command {
        let mut cmd = Command::new(&oc.node);
        cmd.arg(&oc.mjs).args(args);
        openclaw_env(&mut cmd, &self.state, self.port);
        cmd
    }

    /// `GET path` on the gateway port.
    pub fn http_get(&self, path: &str) -> String {
        http_get(self.port, path)
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// Starts the release `pincer gateway` on a fresh port with `extra` merged into its config.
pub fn start_pincer(binary: &Path, state: &Path, extra: Value) -> anyhow::Result<Gateway> {
    std::fs::create_dir_all(state)?;
    let port = free_port();
    let mut config = json!({ "gateway": { "port": port, "auth": { "mode": "token", "token": TOKEN } }, "logging": { "level": "warn" } });
    merge(&mut config, extra);
    std::fs::write(state.join("pincer.json"), serde_json::to_string_pretty(&config)?)?;
    let started = Instant::now();
    let child = Command::new(binary)
        .args(["gateway"])
        .env("PINCER_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(state.join("gateway.log"))?)
        .spawn()?;
    wait_ready(child, state, port, started, false, Duration::from_secs(30))
}

pub fn openclaw_env(cmd: &mut Command, state: &Path, port: u16) {
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

/// Starts OpenClaw's gateway as the research baseline does (loopback, token, no catalog refresh).
pub fn start_openclaw(oc: &OpenClaw, state: &Path, extra: Value) -> anyhow::Result<Gateway> {
    std::fs::create_dir_all(state.join("home"))?;
    std::fs::create_dir_all(state.join("tmp"))?;
    let port = free_port();
    let mut config = json!({
        "gateway": { "mode": "local", "port": port, "bind": "loopback", "auth": { "mode": "token", "token": TOKEN } },
        "logging": { "file": state.join("openclaw.log").display().to_string() },
        "models": { "catalogRefresh": { "enabled": false } },
    });
    merge(&mut config, extra);
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

pub fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

fn readyz(port: u16) -> bool {
    let buf = http_get(port, "/readyz");
    buf.lines().next().is_some_and(|l| l.contains(" 200 ")) && buf.contains("\"ready\":true")
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A process's resident memory split as the kernel counts it: `(RssAnon, RssFile + RssShmem)` in
/// KiB. Anonymous pages are what the process allocated (heap, stacks, SQLite's cache); file pages
/// are the code and read-only data of its binary and libraries that it touched, mapped by the
/// kernel in fault-around windows (shared with every other process that maps the same file, and
/// reclaimable).
pub fn rss_parts_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:") + field("RssShmem:"))
}

/// RSS of a process and all its descendants.
pub fn tree_rss_kib(pid: u32) -> u64 {
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

/// The value of an unlabelled (or first) Prometheus series, by name prefix.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
