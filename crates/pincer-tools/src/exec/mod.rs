//! `exec` (OpenClaw's parameters `command`, `workdir`, `env`, `timeout`): runs a shell command in
//! the workspace under `tools.exec.mode`.
//!
//! | mode        | what runs                                                                       |
//! |-------------|---------------------------------------------------------------------------------|
//! | `deny`      | nothing                                                                         |
//! | `allowlist` | pipelines whose every segment is allowlisted or a stdin-only safe bin (default, with an empty list: nothing) |
//! | `ask`       | as `allowlist`; anything else after an operator approves it, refused when no answer comes in time |
//! | `full`      | anything                                                                        |
//!
//! Every command runs with `sh -c` in its own process group (killed whole on timeout, on
//! cancellation and when the call is dropped), in a directory inside the workspace, with a
//! scrubbed environment (no inherited secrets), and with its output streamed into a bounded buffer.

pub mod approval;
pub mod shell;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::config::{ExecConfig, ExecMode};
use crate::fs::resolve_dir;
use crate::tool::{BoxFuture, Tool, ToolContext, ToolError, ToolOutput, ToolSpec, opt_str_arg, opt_u64_arg, str_arg};
use approval::{ApprovalDecision, ApprovalRequest, ExecApprover};
use shell::{Resolution, Verdict};

/// Variables passed through from the gateway's environment; everything else is dropped.
const KEPT_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Variables a call may not set: they change what runs or how the shell starts.
fn env_refused(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    k.starts_with("LD_")
        || k.starts_with("DYLD_")
        || matches!(
            k.as_str(),
            "PATH"
                | "BASH_ENV"
                | "ENV"
                | "IFS"
                | "SHELLOPTS"
                | "BASHOPTS"
                | "PS4"
                | "PROMPT_COMMAND"
                | "NODE_OPTIONS"
                | "PYTHONSTARTUP"
                | "PYTHONPATH"
                | "PERL5OPT"
                | "RUBYOPT"
                | "GIT_SSH_COMMAND"
                | "HOME"
        )
}

/// What `doctor` should say about `tools.exec` when it lets nothing run: the problem and its fix.
pub fn doctor_advice(config: &ExecConfig) -> Option<(String, String)> {
    match config.mode {
        ExecMode::Deny => Some((
            "exec: tools.exec.mode is \"deny\"; agents cannot run commands".into(),
            "set tools.exec.mode to \"allowlist\" (with tools.exec.allowlist) or \"ask\" to let them".into(),
        )),
        ExecMode::Allowlist if config.allowlist.is_empty() && config.safe_bins.is_empty() => Some((
            "exec: nothing can run yet (tools.exec.mode is \"allowlist\" and tools.exec.allowlist is empty)".into(),
            "add executables by path, e.g. tools.exec.allowlist: [\"/usr/bin/git\"], list stdin-only filters in tools.exec.safeBins, or set tools.exec.mode to \"ask\" to approve commands one by one (`pincer approvals`)".into(),
        )),
        _ => None,
    }
}

/// [`doctor_advice`] as one line.
pub fn doctor_note(config: &ExecConfig) -> Option<String> {
    doctor_advice(config).map(|(problem, fix)| format!("{problem}. To fix: {fix}"))
}

/// The `exec` tool.
pub struct Exec {
    spec: ToolSpec,
    config: ExecConfig,
    approver: Option<Arc<dyn ExecApprover>>,
    /// The environment commands start from (the gateway's, filtered by [`KEPT_ENV`]).
    base_env: Vec<(String, String)>,
}

impl Exec {
    /// `approver` answers `ask` requests; without one, `ask` refuses what the allowlist does not
    /// cover.
    pub fn new(config: ExecConfig, approver: Option<Arc<dyn ExecApprover>>) -> Exec {
        let base_env = KEPT_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
        Exec::with_env(config, approver, base_env)
    }

    /// Like [`Exec::new`] with an explicit base environment (tests).
    pub fn with_env(
        config: ExecConfig,
        approver: Option<Arc<dyn ExecApprover>>,
        base_env: Vec<(String, String)>,
    ) -> Exec {
        let spec = ToolSpec {
            name: "exec".into(),
            description: "Execute shell commands in the workspace. Returns combined stdout and stderr.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": { "type": "string", "description": "Shell command to execute" },
                    "workdir": { "type": "string", "description": "Working directory, relative to the workspace (defaults to the workspace)" },
                    "env": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Extra environment variables" },
                    "timeout": { "type": "number", "description": "Timeout in seconds (kills the process on expiry)" }
                },
                "required": ["command"]
            }),
        };
        Exec { spec, config, approver, base_env }
    }

    fn env_value(&self, key: &str) -> Option<&str> {
        self.base_env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    async fn run(&self, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let command = str_arg(args, "exec", "command")?;
        if command.trim().is_empty() {
            return Err(ToolError::InvalidArguments("exec: `command` must not be empty".into()));
        }
        if args.get("background").and_then(Value::as_bool) == Some(true)
            || args.get("pty").and_then(Value::as_bool) == Some(true)
        {
            return Err(ToolError::InvalidArguments(
                "exec: background and pty runs are not supported by Pincer; run the command in the foreground".into(),
            ));
        }
        let cwd = match opt_str_arg(args, "exec", "workdir")? {
            Some(dir) if !dir.trim().is_empty() => resolve_dir(&ctx.workspace, dir, "exec")?,
            _ => resolve_dir(&ctx.workspace, ".", "exec")?,
        };
        let mut extra_env = Vec::new();
        match args.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    if env_refused(k) {
                        return Err(ToolError::Refused(format!(
                            "exec: the environment variable `{k}` cannot be set by a tool call"
                        )));
                    }
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return Err(ToolError::InvalidArguments(format!("exec: env.{k} must be a string"))),
                    };
                    extra_env.push((k.clone(), v));
                }
            }
            Some(_) => return Err(ToolError::InvalidArguments("exec: `env` must be an object of strings".into())),
        }
        let timeout_ms = opt_u64_arg(args, "exec", "timeout")?
            .map(|s| s.min(self.config.timeout_sec))
            .unwrap_or(self.config.timeout_sec)
            .saturating_mul(1_000) as i64;

        let script = self.authorize(command, &cwd, ctx).await?;
        self.spawn(&script, &cwd, &extra_env, timeout_ms, ctx).await
    }

    /// Decides what to run: the checked pipeline, the command as written, or nothing.
    async fn authorize(&self, command: &str, cwd: &Path, ctx: &ToolContext) -> Result<String, ToolError> {
        let mut allowlist: Vec<String> = self.config.allowlist.iter().map(|e| e.pattern().to_string()).collect();
        // Executables an operator allowed for good (`allow-always`).
        if let Some(approver) = &self.approver {
            allowlist.extend(approver.granted());
        }
        let home = self.env_value("HOME").map(PathBuf::from);
        let res = Resolution { path_var: self.env_value("PATH").unwrap_or(DEFAULT_PATH), cwd, home: home.as_deref() };
        match self.config.mode {
            ExecMode::Deny => Err(ToolError::Refused(
                "exec is disabled (tools.exec.mode is \"deny\"); the owner can set it to \"allowlist\", \"ask\" or \"full\"".into(),
            )),
            ExecMode::Full => Ok(command.to_string()),
            ExecMode::Allowlist => match shell::evaluate(command, &allowlist, &self.config.safe_bins, &res) {
                Verdict::Allowed { script } => Ok(script),
                Verdict::Refused { reason } => Err(ToolError::Refused(format!("exec: refused: {reason}"))),
            },
            ExecMode::Ask => match shell::evaluate(command, &allowlist, &self.config.safe_bins, &res) {
                Verdict::Allowed { script } => Ok(script),
                Verdict::Refused { reason } => self.ask(command, cwd, reason, &res, ctx).await.map(|()| command.to_string()),
            },
        }
    }

    async fn ask(
        &self,
        command: &str,
        cwd: &Path,
        reason: String,
        res: &Resolution<'_>,
        ctx: &ToolContext,
    ) -> Result<(), ToolError> {
        let Some(approver) = &self.approver else {
            return Err(ToolError::Refused(format!(
                "exec: `{command}` needs an operator's approval, but no approval client is available; {reason}"
            )));
        };
        let now = ctx.clock.now_ms();
        let wait_ms = (self.config.approval_timeout_sec as i64 * 1_000).min(ctx.remaining_ms());
        let segments = shell::split_pipeline(command).ok();
        let request = ApprovalRequest {
            id: format!("{:016x}", rand::random::<u64>()),
            command: command.to_string(),
            argv: segments.as_ref().filter(|s| s.len() == 1).map(|s| s[0].argv.clone()),
            cwd: cwd.display().to_string(),
            session_key: ctx.session_key.clone(),
            reason,
            created_at_ms: now,
            expires_at_ms: now + wait_ms,
        };
        let id = request.id.clone();
        let decision = tokio::select! {
            d = approver.request(request) => d,
            _ = ctx.clock.sleep_until(now + wait_ms) => {
                return Err(ToolError::Refused(format!(
                    "exec: approval {id} for `{command}` timed out after {} s; nothing ran. Approve it in time with `pincer approvals`, or add the command to tools.exec.allowlist",
                    wait_ms / 1_000
                )));
            }
            _ = ctx.cancel.cancelled() => return Err(ToolError::Cancelled("exec".into())),
        };
        match decision {
            Some(ApprovalDecision::AllowOnce) => Ok(()),
            Some(ApprovalDecision::AllowAlways) => {
                // As OpenClaw: the executables of a plain pipeline join the allowlist; a command
                // with chaining or redirections can only ever be allowed once.
                let resolved: Option<Vec<String>> = segments.map(|segs| {
                    segs.iter()
                        .filter_map(|s| shell::resolve_executable(&s.argv[0], res))
                        .map(|p| p.display().to_string())
                        .collect()
                });
                match resolved {
                    Some(patterns) if !patterns.is_empty() => {
                        if let Err(e) = approver.grant(&patterns) {
                            tracing::warn!(approval = %id, "exec: allow-always applies to this call only: {e}");
                        }
                    }
                    _ => {
                        tracing::info!(approval = %id, "exec: allow-always on a command that is not a plain pipeline runs it once")
                    }
                }
                Ok(())
            }
            Some(ApprovalDecision::Deny) => {
                Err(ToolError::Refused(format!("exec: an operator denied `{command}`; nothing ran")))
            }
            None => Err(ToolError::Refused(format!(
                "exec: no decision on `{command}` (approval {id} was dropped); nothing ran"
            ))),
        }
    }

    async fn spawn(
        &self,
        script: &str,
        cwd: &Path,
        extra_env: &[(String, String)],
        timeout_ms: i64,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(script).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_clear();
        cmd.envs(self.base_env.iter().map(|(k, v)| (k, v)));
        if self.env_value("PATH").is_none() {
            cmd.env("PATH", DEFAULT_PATH);
        }
        cmd.env("TERM", "dumb").env("PWD", cwd);
        cmd.envs(extra_env.iter().map(|(k, v)| (k, v)));
        cmd.process_group(0).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| ToolError::Failed(format!("exec: cannot start /bin/sh: {e}")))?;
        let _group = GroupGuard(child.id().map(|p| p as i32));
        let out = Mutex::new(Capped::new(self.config.max_output_chars));
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let deadline = ctx.clock.now_ms().saturating_add(timeout_ms).min(ctx.deadline_ms);
        let limit_ms = deadline - ctx.clock.now_ms();
        let work = async {
            let (_, _, status) = tokio::join!(pump(&mut stdout, &out), pump(&mut stderr, &out), child.wait());
            status
        };
        let status = tokio::select! {
            s = work => s.map_err(|e| ToolError::Failed(format!("exec: waiting for the command failed: {e}")))?,
            _ = ctx.clock.sleep_until(deadline) => {
                let captured = out.lock().unwrap_or_else(|e| e.into_inner()).render();
                return Err(ToolError::Failed(format!(
                    "{captured}\n\nCommand timed out after {:.1} s; its process group was killed",
                    limit_ms as f64 / 1_000.0
                )));
            }
            _ = ctx.cancel.cancelled() => return Err(ToolError::Cancelled("exec".into())),
        };
        let text = out.lock().unwrap_or_else(|e| e.into_inner()).render();
        match status.code() {
            Some(0) => Ok(ToolOutput::text(if text.is_empty() { "(no output)".to_string() } else { text })),
            Some(code) => Err(ToolError::Failed(format!("{text}\n\nCommand exited with code {code}"))),
            None => Err(ToolError::Failed(format!("{text}\n\nCommand was killed by a signal ({status})"))),
        }
    }
}

impl Tool for Exec {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move { self.run(&args, ctx).await })
    }
}

/// Kills the command's whole process group when dropped (timeout, cancellation, abort).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: plain syscall; a negative pid addresses the process group the child leads.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Output kept up to a limit; the rest is counted, not stored.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Capped {
    fn new(cap: usize) -> Capped {
        Capped { buf: Vec::new(), cap, dropped: 0 }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.buf.len());
        let keep = chunk.len().min(room);
        self.buf.extend_from_slice(&chunk[..keep]);
        self.dropped += (chunk.len() - keep) as u64;
    }

    fn render(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).trim_end().to_string();
        if self.dropped > 0 {
            s.push_str(&format!("\n\n[output truncated: {} more bytes not shown]", self.dropped));
        }
        s
    }
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, out: &Mutex<Capped>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => out.lock().unwrap_or_else(|e| e.into_inner()).push(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_says_how_to_let_commands_run() {
        assert!(doctor_note(&ExecConfig::default()).unwrap().contains("tools.exec.allowlist: [\"/usr/bin/git\"]"));
        let allowed = ExecConfig { safe_bins: vec!["wc".into()], ..Default::default() };
        assert_eq!(doctor_note(&allowed), None);
        assert_eq!(doctor_note(&ExecConfig { mode: ExecMode::Full, ..Default::default() }), None);
        assert!(doctor_note(&ExecConfig { mode: ExecMode::Deny, ..Default::default() }).unwrap().contains("\"deny\""));
    }
}
