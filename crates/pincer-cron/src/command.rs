//! `command` payloads: a program run on the gateway host under a [`supervisor`](crate::supervisor),
//! in its own process group that dies with the gateway.
//!
//! stdout is the result text (stderr when stdout is empty) and the exit code decides the status.
//! Output is streamed: of each stream only the last `payload.outputMaxBytes` bytes are kept (1 MiB
//! by default; OpenClaw keeps the tail too), the rest is counted and dropped, and the text and the
//! run record say how much — so memory stays flat whatever the command prints. The process group
//! is killed when the run's time limit ends, when the command prints nothing for
//! `payload.noOutputTimeoutSeconds`, when the run is abandoned, and when the gateway dies.
//!
//! Before the command starts, its run record notes `command.state = "started"` (committed), and
//! `"exited"` with the exit code once it ended, so that after a crash recovery can tell a command
//! that finished from one that was killed part-way.

use std::path::Path;

use pincer_core::SharedClock;
use pincer_protocol::state::{CommandState, ErrorClass, RunFailure};
use pincer_store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::job::{MAX_TIMEOUT_SECONDS, Payload};
use crate::runner::{ExecOutcome, RunContext};
use crate::supervisor::{self, Exit, Launch};

/// Of each stream, this many bytes are kept unless `payload.outputMaxBytes` says otherwise.
pub const DEFAULT_OUTPUT_MAX_BYTES: u64 = 1024 * 1024;
/// The most `payload.outputMaxBytes` may keep per stream (OpenClaw's default), which bounds a
/// run's memory at twice this.
pub const MAX_OUTPUT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Output is read in pieces of this size.
const READ_CHUNK: usize = 64 * 1024;

/// What became of a run's command, kept in its run record as `command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandReport {
    /// `exited` (it ended by itself), `killed` (Pincer killed its process group: a time limit) or
    /// `not-started`.
    pub state: CommandState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub stdout_bytes: u64,
    pub stdout_dropped_bytes: u64,
    pub stderr_bytes: u64,
    pub stderr_dropped_bytes: u64,
    pub output_max_bytes: u64,
}

/// Kills the process group when dropped, so a finished, cancelled or timed-out run leaves nothing
/// behind. The supervisor (the group's leader) is alive until this runs, so the group id cannot
/// have been reused.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // SAFETY: plain syscall; a negative pid addresses the process group we created.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

/// Records how far the command got in the running run's record; the write is queued at once, so
/// it commits before anything the caller writes later.
fn note(store: &Store, run_id: &str, value: Value) -> impl Future<Output = Result<(), String>> + Send + 'static {
    let run_id = run_id.to_string();
    let write = store.write(move |tx| tx.note_running_run(&run_id, "command", &value.to_string()));
    async move { write.await.map(|_| ()).map_err(|e| e.to_string()) }
}

/// Why the run stopped waiting for the command.
enum Stop {
    Finished,
    TimeLimit,
    Silent,
}

/// Runs a command payload to completion, or until `run.deadline_ms` on `clock`, under the
/// supervisor binary `supervisor` (`None`: this gateway cannot run commands, and says so).
pub async fn run_command(
    run: &RunContext,
    clock: &SharedClock,
    store: &Store,
    supervisor: Option<&Path>,
) -> ExecOutcome {
    let Payload::Command { argv, cwd, env, input, output_max_bytes, no_output_timeout_seconds, .. } = &run.job.payload
    else {
        return ExecOutcome::error("not a command payload", ErrorClass::Format);
    };
    let Some(exe) = supervisor else {
        return ExecOutcome::error(
            "this gateway cannot run command jobs: it was started without the `pincer` binary to supervise them \
             (run the gateway with `pincer gateway`)",
            RunFailure::Spawn,
        );
    };
    let max = output_max_bytes.unwrap_or(DEFAULT_OUTPUT_MAX_BYTES).clamp(1, MAX_OUTPUT_MAX_BYTES);
    let silence_ms = no_output_timeout_seconds.filter(|s| *s > 0).map(|s| s.min(MAX_TIMEOUT_SECONDS) as i64 * 1_000);

    // Commit before effect: a crash from here on is reported as "may have run".
    let started_at_ms = clock.now_ms();
    if let Err(e) =
        note(store, &run.run_id, json!({"state": CommandState::Started, "startedAtMs": started_at_ms})).await
    {
        return ExecOutcome::error(
            format!("cannot record that the command is starting, so it was not started: {e}"),
            RunFailure::Store,
        );
    }
    let mut vars: Vec<(String, String)> = env.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.push(("PINCER_JOB_ID".into(), run.job.id.clone()));
    vars.push(("PINCER_RUN_ID".into(), run.run_id.clone()));
    let launch = Launch { exe, argv, cwd: cwd.as_deref(), env: &vars };
    let mut sup = match supervisor::spawn(&launch) {
        Ok(s) => s,
        Err(e) => {
            return ExecOutcome::error(
                format!("cannot start the command supervisor `{} {}`: {e}", exe.display(), supervisor::SUPERVISE_ARG),
                RunFailure::Spawn,
            );
        }
    };
    let guard = GroupGuard(sup.pgid);
    let (Some(mut stdout), Some(mut stderr)) = (sup.child.stdout.take(), sup.child.stderr.take()) else {
        return ExecOutcome::error(
            "the command supervisor started without its output pipes; the command was stopped",
            RunFailure::Spawn,
        );
    };
    let stdin = sup.child.stdin.take();
    let input = input.clone().unwrap_or_default();
    // Written alongside reading: a command that prints before it reads must not deadlock.
    let mut feed = std::pin::pin!(async move {
        if let Some(mut w) = stdin {
            let _ = w.write_all(input.as_bytes()).await;
        }
    });

    let (mut out, mut err) = (Tail::new(max as usize), Tail::new(max as usize));
    let (mut obuf, mut ebuf) = (vec![0u8; READ_CHUNK], vec![0u8; READ_CHUNK]);
    let (mut out_open, mut err_open, mut fed) = (true, true, false);
    let mut exit: Option<Exit> = None;
    let mut exited_note = None;
    let mut last_output_ms = clock.now_ms();
    let stop = loop {
        if !out_open && !err_open && exit.is_some() {
            break Stop::Finished;
        }
        let silent_at = silence_ms.map(|ms| last_output_ms + ms);
        let wake = match (run.deadline_ms, silent_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            r = stdout.read(&mut obuf), if out_open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    out.push(&obuf[..n]);
                    last_output_ms = clock.now_ms();
                }
            },
            r = stderr.read(&mut ebuf), if err_open => match r {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => {
                    err.push(&ebuf[..n]);
                    last_output_ms = clock.now_ms();
                }
            },
            e = sup.exit(), if exit.is_none() => {
                let value = match &e {
                    Exit::Code(_) | Exit::Signal(_) => {
                        let (code, signal) = code_and_signal(&e);
                        Some(json!({"state": CommandState::Exited, "startedAtMs": started_at_ms, "exitedAtMs": clock.now_ms(),
                                    "exitCode": code, "signal": signal}))
                    }
                    Exit::SpawnFailed(_) => Some(json!({"state": CommandState::NotStarted, "startedAtMs": started_at_ms})),
                    Exit::WaitFailed(_) | Exit::Lost => None,
                };
                exited_note = value.map(|v| note(store, &run.run_id, v));
                exit = Some(e);
            },
            _ = &mut feed, if !fed => fed = true,
            _ = sleep_until(clock, wake) => {
                let now = clock.now_ms();
                if run.deadline_ms.is_some_and(|d| now >= d) {
                    break Stop::TimeLimit;
                }
                if silent_at.is_some_and(|s| now >= s) {
                    break Stop::Silent;
                }
            },
        }
    };
    // The group goes first (the supervisor, the command and anything it left behind), then the
    // lifeline; the supervisor is reaped in the background.
    drop(guard);
    if let Some(write) = exited_note
        && let Err(e) = write.await
    {
        tracing::warn!(run = %run.run_id, error = %e, "cron: cannot record that the command exited");
    }

    let (code, signal) = exit.as_ref().map(code_and_signal).unwrap_or((None, None));
    let mut report = CommandReport {
        state: match (&stop, &exit) {
            (_, Some(Exit::SpawnFailed(_))) => CommandState::NotStarted,
            (Stop::Finished, _) | (_, Some(Exit::Code(_) | Exit::Signal(_))) => CommandState::Exited,
            _ => CommandState::Killed,
        },
        exit_code: code,
        signal,
        stdout_bytes: out.total,
        stdout_dropped_bytes: 0,
        stderr_bytes: err.total,
        stderr_dropped_bytes: 0,
        output_max_bytes: max,
    };
    let (out, out_dropped) = out.text("stdout", max);
    let (err, err_dropped) = err.text("stderr", max);
    report.stdout_dropped_bytes = out_dropped;
    report.stderr_dropped_bytes = err_dropped;
    let body = if !out.is_empty() { out } else { err.clone() };
    let mut outcome = match (stop, exit) {
        (Stop::TimeLimit, _) => {
            let secs = run.deadline_ms.map_or(0, |d| (d - run.started_at_ms) / 1_000);
            ExecOutcome::error(
                format!("cron: job execution timed out after {secs}s; the process group was killed"),
                ErrorClass::Timeout,
            )
        }
        (Stop::Silent, _) => {
            let secs = silence_ms.unwrap_or(0) / 1_000;
            ExecOutcome::error(
                format!(
                    "cron: the command printed nothing for {secs}s (payload.noOutputTimeoutSeconds is {secs}); \
                     the process group was killed"
                ),
                ErrorClass::Timeout,
            )
        }
        (Stop::Finished, Some(Exit::Code(0))) => ExecOutcome::ok(body.clone()),
        (Stop::Finished, Some(Exit::Code(c))) => failed(format!("exit code {c}"), &err),
        (Stop::Finished, Some(Exit::Signal(s))) => failed(format!("killed (signal {s})"), &err),
        (Stop::Finished, Some(Exit::SpawnFailed(e))) => {
            ExecOutcome::error(format!("cannot start `{}`: {e}", argv[0]), RunFailure::Spawn)
        }
        (Stop::Finished, Some(Exit::WaitFailed(e))) => {
            ExecOutcome::error(format!("command wait failed: {e}"), RunFailure::Spawn)
        }
        (Stop::Finished, Some(Exit::Lost) | None) => ExecOutcome::error(
            "the command's supervisor was killed before it reported how the command ended; the command may have partly run",
            RunFailure::Spawn,
        ),
    };
    if outcome.status != Some(crate::runner::ExecStatus::Ok) {
        outcome.text = Some(body).filter(|b| !b.is_empty());
    }
    outcome.command = Some(report);
    outcome
}

/// A command that ended by itself but not with 0: how, and the last line of its stderr.
fn failed(how: String, stderr: &str) -> ExecOutcome {
    let detail = if stderr.is_empty() { String::new() } else { format!(": {}", last_line(stderr)) };
    ExecOutcome::error(format!("command failed with {how}{detail}"), RunFailure::ExitCode)
}

fn code_and_signal(e: &Exit) -> (Option<i32>, Option<i32>) {
    match e {
        Exit::Code(c) => (Some(*c), None),
        Exit::Signal(s) => (None, Some(*s)),
        _ => (None, None),
    }
}

async fn sleep_until(clock: &SharedClock, at: Option<i64>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

/// The last `cap` bytes written to a stream (a ring buffer), and how many were written in all.
#[derive(Debug)]
struct Tail {
    buf: Vec<u8>,
    cap: usize,
    /// Where the oldest byte is once `buf` is full.
    start: usize,
    total: u64,
}

impl Tail {
    fn new(cap: usize) -> Tail {
        Tail { buf: Vec::new(), cap: cap.max(1), start: 0, total: 0 }
    }

    fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if data.len() >= self.cap {
            data = &data[data.len() - self.cap..];
            self.buf.clear();
            self.buf.reserve_exact(self.cap);
            self.buf.extend_from_slice(data);
            self.start = 0;
            return;
        }
        if self.buf.len() < self.cap {
            let n = (self.cap - self.buf.len()).min(data.len());
            // Grow by doubling, but never past the cap.
            let want = (self.buf.len() + n).max((self.buf.capacity() * 2).min(self.cap));
            self.buf.reserve_exact(want - self.buf.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        while !data.is_empty() {
            let n = (self.cap - self.start).min(data.len());
            self.buf[self.start..self.start + n].copy_from_slice(&data[..n]);
            self.start = (self.start + n) % self.cap;
            data = &data[n..];
        }
    }

    /// The kept text (a leading partial UTF-8 character counts as dropped), headed by a line
    /// saying how many earlier bytes were dropped, trimmed at the end; and that count.
    fn text(self, stream: &str, max: u64) -> (String, u64) {
        let mut bytes = self.buf;
        bytes.rotate_left(self.start);
        let mut dropped = self.total - bytes.len() as u64;
        let mut skip = 0;
        if dropped > 0 {
            while skip < bytes.len().min(3) && bytes[skip] & 0xC0 == 0x80 {
                skip += 1;
            }
            dropped += skip as u64;
        }
        let kept = String::from_utf8_lossy(&bytes[skip..]);
        let kept = kept.trim_end();
        if dropped == 0 {
            return (kept.to_string(), 0);
        }
        (
            format!(
                "[{dropped} earlier bytes of {stream} were dropped: payload.outputMaxBytes keeps the last {max}]\n{kept}"
            ),
            dropped,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(cap: usize, pieces: &[&[u8]]) -> Tail {
        let mut t = Tail::new(cap);
        for p in pieces {
            t.push(p);
        }
        t
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_whatever_the_pieces() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        for cap in [1, 7, 64, 1000, 9_999, 10_000, 20_000] {
            for piece in [1, 3, 64, 999, 4096, 10_000] {
                let mut t = Tail::new(cap);
                for chunk in data.chunks(piece) {
                    t.push(chunk);
                }
                assert!(t.buf.capacity() <= cap, "cap {cap}, piece {piece}: capacity {}", t.buf.capacity());
                let mut kept = t.buf.clone();
                kept.rotate_left(t.start);
                assert_eq!(kept, data[data.len().saturating_sub(cap)..], "cap {cap}, piece {piece}");
                assert_eq!(t.total, 10_000);
            }
        }
    }

    #[test]
    fn the_text_says_how_much_was_dropped() {
        let (text, dropped) = tail_of(5, &[b"hello ", b"world\n\n"]).text("stdout", 5);
        assert_eq!(dropped, 8);
        assert_eq!(text, "[8 earlier bytes of stdout were dropped: payload.outputMaxBytes keeps the last 5]\nrld");
        assert_eq!(tail_of(64, &[b"all of it\n"]).text("stdout", 64), ("all of it".to_string(), 0));
        // A cut through a character drops its stray continuation bytes too.
        let (text, dropped) = tail_of(4, &["aé€".as_bytes()]).text("stderr", 4);
        assert_eq!((text.lines().last(), dropped), (Some("€"), 3));
    }
}
