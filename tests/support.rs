//! Harness: an in-process gateway under a fake clock, and paths to the real binary.

use std::path::PathBuf;

use pincer_core::{Config, FakeClock, StatePaths};
use pincer_gateway::{GatewayOptions, RunningGateway};
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789";
/// 2026-03-01T00:00:00Z, so tests never depend on today's date.
pub const T0: i64 = 1_772_323_200_000;

/// The `pincer` binary built for this test run.
pub fn pincer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pincer"))
}

/// A gateway running inside the test process on a free port, driven by a [`FakeClock`].
pub struct TestGateway {
    pub gateway: Option<RunningGateway>,
    pub clock: FakeClock,
    pub config: Config,
    pub paths: StatePaths,
    _dir: tempfile::TempDir,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with("{}").await
    }

    /// Starts with `extra` (JSON5) merged over a config holding a token and port 0.
    pub async fn start_with(extra: &str) -> TestGateway {
        Self::start_with_failpoints(extra, "").await
    }

    /// As [`TestGateway::start_with`], with fail points armed (`PINCER_FAILPOINTS` syntax).
    pub async fn start_with_failpoints(extra: &str, failpoints: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let mut config = Config::parse(extra, &no_env).unwrap();
        config.gateway.port = 0;
        if config.gateway.auth.token.is_none() {
            config.gateway.auth.token = Some(TOKEN.into());
        }
        let paths = StatePaths::resolve(Some(dir.path()), &no_env);
        let clock = FakeClock::new(T0);
        let gateway = pincer_gateway::start(GatewayOptions {
            paths: paths.clone(),
            config: config.clone(),
            clock: clock.shared(),
            command_supervisor: Some(pincer_bin()),
            failpoints: pincer_core::crashpoint::Failpoints::parse(failpoints).unwrap(),
        })
        .await
        .unwrap();
        TestGateway { gateway: Some(gateway), clock, config, paths, _dir: dir }
    }

    /// Stops the gateway (as a crash would leave runs in flight) and starts it again on the same
    /// state at `at_ms`.
    pub async fn restart_at(&mut self, at_ms: i64) {
        if let Some(gw) = self.gateway.take() {
            gw.shutdown().await;
        }
        self.clock.set(at_ms);
        let options = GatewayOptions {
            paths: self.paths.clone(),
            config: self.config.clone(),
            clock: self.clock.shared(),
            command_supervisor: Some(pincer_bin()),
            failpoints: Default::default(),
        };
        self.gateway = Some(pincer_gateway::start(options).await.unwrap());
    }

    pub fn store(&self) -> &pincer_store::Store {
        &self.gateway.as_ref().unwrap().state.store
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.gateway.as_ref().unwrap().addr
    }

    /// A connected CLI-style client holding `scopes`.
    pub async fn client(&self, scopes: &[&str]) -> RawClient {
        RawClient::connect(&self.url(), cli_connect_params(Some(TOKEN), scopes)).await.unwrap().0
    }

    pub async fn stop(mut self) {
        if let Some(gw) = self.gateway.take() {
            gw.shutdown().await;
        }
    }
}

/// `error.code` and `error.message` of a `res` frame.
pub fn error_of(res: &Value) -> (String, String) {
    assert_eq!(res["ok"], false, "expected an error response: {res}");
    (res["error"]["code"].as_str().unwrap().into(), res["error"]["message"].as_str().unwrap().into())
}

/// Polls `cron.runs` until the job has `n` complete runs (status present) or 20 s pass.
pub async fn wait_runs(c: &mut RawClient, job_id: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page =
            c.call("cron.runs", serde_json::json!({"id": job_id, "limit": 200, "sortDir": "asc"})).await.unwrap();
        let entries: Vec<Value> = page["entries"].as_array().cloned().unwrap_or_default();
        let complete: Vec<Value> = entries.into_iter().filter(|e| e.get("status").is_some()).collect();
        if complete.len() >= n {
            return complete;
        }
        assert!(std::time::Instant::now() < deadline, "job {job_id}: {} of {n} runs after 20 s", complete.len());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Polls `cron.get` until `pred` holds for the job or 20 s pass.
pub async fn wait_job(c: &mut RawClient, job_id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let job = c.call("cron.get", serde_json::json!({"id": job_id})).await.unwrap();
        if pred(&job) {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "job never reached the expected state: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Live (not zombie) processes whose process group is `pgid`, from `/proc`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Some((state, _ppid, pgrp)) = proc_stat(pid) else { continue };
        if pgrp == pgid && state != 'Z' {
            out.push(pid);
        }
    }
    out
}

/// `(state, ppid, pgrp)` of a process, or `None` once it is gone.
pub fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// True while `pid` runs (a zombie has stopped running).
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _, _)| state != 'Z')
}

/// Waits up to 10 s for `path` to hold a line (written by a command), and returns it.
pub async fn wait_file(path: &std::path::Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s.trim().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Waits up to 10 s for every process in `pids` to stop running.
pub async fn wait_gone(pids: &[i32]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Some(pid) = pids.iter().find(|p| alive(**p)) {
        assert!(std::time::Instant::now() < deadline, "process {pid} is still running: {:?}", proc_stat(*pid));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
