//! `command` payloads: a program run on the gateway host in its own process group. stdout is the
//! result text (stderr when stdout is empty), the exit code decides the status, and the whole
//! process group is killed when the run's time limit ends or the run is abandoned.

use std::process::Stdio;

use pincer_core::SharedClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::job::Payload;
use crate::runner::{ExecOutcome, RunContext};

/// Output beyond this many bytes is cut (OpenClaw's `outputMaxBytes` default).
const DEFAULT_OUTPUT_MAX: u64 = 64 * 1024;

/// Kills the process group when dropped, so a cancelled or timed-out run leaves nothing behind.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: plain syscall; a negative pid addresses the process group we created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Runs a command payload to completion, or until `run.deadline_ms` on `clock`.
pub async fn run_command(run: &RunContext, clock: &SharedClock) -> ExecOutcome {
    let Payload::Command { argv, cwd, env, input, output_max_bytes, .. } = &run.job.payload else {
        return ExecOutcome::error("not a command payload", "format");
    };
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd.process_group(0);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    if let Some(env) = env {
        cmd.envs(env);
    }
    cmd.env("PINCER_JOB_ID", &run.job.id).env("PINCER_RUN_ID", &run.run_id);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ExecOutcome::error(format!("cannot start `{}`: {e}", argv[0]), "spawn"),
    };
    let _guard = GroupGuard(child.id().map(|p| p as i32));
    let max = output_max_bytes.unwrap_or(DEFAULT_OUTPUT_MAX) as usize;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let input = input.clone().unwrap_or_default();
    let work = async {
        if let Some(mut w) = stdin.take() {
            let _ = w.write_all(input.as_bytes()).await;
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (o, e, status) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err), child.wait());
        let _ = (o, e);
        (out, err, status)
    };
    let (out, err, status) = match run.deadline_ms {
        Some(deadline) => tokio::select! {
            r = work => r,
            _ = clock.sleep_until(deadline) => {
                let secs = (deadline - run.started_at_ms) / 1_000;
                return ExecOutcome::error(format!("cron: job execution timed out after {secs}s; the process group was killed"), "timeout");
            }
        },
        None => work.await,
    };
    let text = |bytes: &[u8]| {
        let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
        if bytes.len() > max {
            s.push_str("\n[output truncated]");
        }
        s.trim_end().to_string()
    };
    let (out, err) = (text(&out), text(&err));
    let body = if !out.is_empty() { out } else { err.clone() };
    match status {
        Ok(s) if s.success() => ExecOutcome::ok(body),
        Ok(s) => {
            let code = s.code().map(|c| format!("exit code {c}")).unwrap_or_else(|| format!("killed ({s})"));
            let detail = if err.is_empty() { String::new() } else { format!(": {}", last_line(&err)) };
            let mut outcome = ExecOutcome::error(format!("command failed with {code}{detail}"), "exit_code");
            outcome.text = Some(body).filter(|b| !b.is_empty());
            outcome
        }
        Err(e) => ExecOutcome::error(format!("command wait failed: {e}"), "spawn"),
    }
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}
