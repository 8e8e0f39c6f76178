//! Shared helpers: contexts on a fake clock, HTTP servers on 127.0.0.1, waiting for conditions.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pincer_core::FakeClock;
use pincer_tools::ToolContext;

pub const START_MS: i64 = 1_700_000_000_000;

pub fn clock() -> FakeClock {
    FakeClock::new(START_MS)
}

/// A context on `clock` with a generous deadline.
pub fn ctx(workspace: &Path, clock: &FakeClock) -> ToolContext {
    ToolContext::new(workspace, clock.shared(), 600_000)
}

/// Serves `router` on an ephemeral port of 127.0.0.1.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Polls `cond` until it holds (waiting for another task or process, not for time to pass).
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Advances the fake clock in steps until `task` finishes, yielding real time between steps so
/// I/O can make progress.
pub async fn drive<T>(clock: &FakeClock, step_ms: i64, task: tokio::task::JoinHandle<T>) -> T {
    let mut task = task;
    for _ in 0..2_000 {
        tokio::select! {
            r = &mut task => return r.unwrap(),
            _ = tokio::time::sleep(Duration::from_millis(5)) => clock.advance(step_ms),
        }
    }
    panic!("task did not finish");
}

/// Whether a process is gone (or a zombie waiting to be reaped).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}
