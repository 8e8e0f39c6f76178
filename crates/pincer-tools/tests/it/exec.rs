//! `exec` with real processes: modes, the allowlist, the scrubbed environment, caps, the process
//! group killed on timeout and cancel, and `ask` approvals.

use std::sync::Arc;

use pincer_tools::config::AllowlistEntry;
use pincer_tools::{
    ApprovalDecision, ApprovalEvent, ApprovalQueue, Exec, ExecConfig, ExecMode, Tool, ToolContext, ToolError,
};
use serde_json::json;

use crate::support::*;

fn exec(mode: ExecMode, allow: &[&str], safe_bins: &[&str]) -> Exec {
    Exec::new(
        ExecConfig {
            mode,
            allowlist: allow.iter().map(|p| AllowlistEntry::Pattern(p.to_string())).collect(),
            safe_bins: safe_bins.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        None,
    )
}

async fn run(tool: &Exec, ctx: &ToolContext, command: &str) -> Result<String, ToolError> {
    tool.call(json!({ "command": command }), ctx).await.map(|o| o.text)
}

#[tokio::test]
async fn default_config_runs_nothing_and_says_how_to_allow() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let tool = Exec::new(ExecConfig::default(), None);
    let e = run(&tool, &ctx, "touch made").await.unwrap_err();
    assert_eq!(e.class(), "refused");
    assert!(e.to_string().contains("add \"/usr/bin/touch\" to tools.exec.allowlist"), "{e}");
    assert!(!dir.path().join("made").exists());

    let deny = exec(ExecMode::Deny, &["*"], &[]);
    let e = run(&deny, &ctx, "touch made").await.unwrap_err();
    assert!(e.to_string().contains("tools.exec.mode is \"deny\""), "{e}");
    assert!(!dir.path().join("made").exists());
}

#[tokio::test]
async fn allowlisted_pipelines_run_and_chaining_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let tool = exec(ExecMode::Allowlist, &["/usr/bin/echo", "/usr/bin/touch"], &["wc"]);
    assert_eq!(run(&tool, &ctx, "echo hello world").await.unwrap(), "hello world");
    assert_eq!(run(&tool, &ctx, "echo hello | wc -c").await.unwrap(), "6");
    // What runs is the checked argv: no expansion the check did not see.
    assert_eq!(run(&tool, &ctx, "echo $HOME '*'").await.unwrap(), "$HOME *");
    for cmd in [
        "echo a; touch pwned",
        "echo a && touch pwned",
        "echo $(touch pwned)",
        "echo `touch pwned`",
        "echo a > pwned",
        "touch x | (touch pwned)",
    ] {
        let e = run(&tool, &ctx, cmd).await.unwrap_err();
        assert_eq!(e.class(), "refused", "{cmd}: {e}");
    }
    assert!(!dir.path().join("pwned").exists());
    // A safe bin reading a file by name is not stdin-only.
    std::fs::write(dir.path().join("notes.txt"), "a b c").unwrap();
    let e = run(&tool, &ctx, "wc -c notes.txt").await.unwrap_err();
    assert!(e.to_string().contains("stdin-only"), "{e}");
}

#[tokio::test]
async fn full_mode_reports_exit_codes_and_scrubs_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let tool = exec(ExecMode::Full, &[], &[]);
    let e = run(&tool, &ctx, "echo out; echo err >&2; exit 3").await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("out") && text.contains("err") && text.ends_with("Command exited with code 3"), "{text}");
    // Cargo sets CARGO_MANIFEST_DIR for this test process; a command must not see it.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let env = run(&tool, &ctx, "env").await.unwrap();
    assert!(!env.contains("CARGO_MANIFEST_DIR"), "{env}");
    assert!(env.contains("PATH="), "{env}");
    let out = tool
        .call(json!({"command": "pwd; echo $GREETING", "workdir": "sub", "env": {"GREETING": "hi"}}), &ctx)
        .await
        .unwrap();
    assert_eq!(out.text, format!("{}\nhi", std::fs::canonicalize(dir.path().join("sub")).unwrap().display()));
    for (args, class) in [
        (json!({"command": "pwd", "workdir": "../"}), "refused"),
        (json!({"command": "pwd", "workdir": "/etc"}), "refused"),
        (json!({"command": "pwd", "env": {"LD_PRELOAD": "/tmp/x.so"}}), "refused"),
        (json!({"command": "pwd", "env": {"PATH": "/tmp"}}), "refused"),
        (json!({"command": "pwd", "background": true}), "invalid_arguments"),
        (json!({"command": 7}), "invalid_arguments"),
    ] {
        let e = tool.call(args.clone(), &ctx).await.unwrap_err();
        assert_eq!(e.class(), class, "{args}: {e}");
    }
}

#[tokio::test]
async fn output_is_capped_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let tool = Exec::new(ExecConfig { mode: ExecMode::Full, max_output_chars: 1_000, ..Default::default() }, None);
    // 200 MB of output: kept to 1,000 bytes, the rest counted, never buffered.
    let out = run(&tool, &ctx, "head -c 200000000 /dev/zero | tr '\\0' a").await.unwrap();
    assert!(out.starts_with(&"a".repeat(1_000)), "{}", &out[..50]);
    assert!(out.ends_with("[output truncated: 199999000 more bytes not shown]"), "{}", &out[out.len() - 80..]);
}

#[tokio::test]
async fn timeout_and_cancel_kill_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let tool = Arc::new(exec(ExecMode::Full, &[], &[]));
    for how in ["timeout", "cancel"] {
        let pidfile = dir.path().join(format!("{how}.pid"));
        let ctx = ctx(dir.path(), &clock);
        let token = ctx.cancel.clone();
        let command = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
        let task = {
            let tool = tool.clone();
            tokio::spawn(async move { tool.call(json!({"command": command, "timeout": 2}), &ctx).await })
        };
        until("the command to start", || std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))).await;
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert!(!process_gone(pid));
        let result = if how == "timeout" {
            drive(&clock, 500, task).await
        } else {
            token.cancel();
            task.await.unwrap()
        };
        let e = result.unwrap_err();
        assert_eq!(e.class(), if how == "timeout" { "failed" } else { "cancelled" }, "{e}");
        if how == "timeout" {
            assert!(e.to_string().contains("Command timed out after 2.0 s; its process group was killed"), "{e}");
        }
        until("the background sleep to be killed", || process_gone(pid)).await;
    }
}

#[tokio::test]
async fn ask_mode_waits_for_an_operator_and_refuses_on_silence() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let queue = ApprovalQueue::new();
    let config = ExecConfig { mode: ExecMode::Ask, approval_timeout_sec: 60, ..Default::default() };
    let tool = Arc::new(Exec::new(config.clone(), Some(Arc::new(queue.clone()))));
    let mut requests = queue.subscribe();

    for (decision, expect_ran) in [(ApprovalDecision::AllowOnce, true), (ApprovalDecision::Deny, false)] {
        let marker = dir.path().join(format!("{decision:?}"));
        let ctx = ctx(dir.path(), &clock);
        let command = format!("touch {}", marker.display());
        let task = {
            let tool = tool.clone();
            tokio::spawn(async move { tool.call(json!({"command": command}), &ctx).await })
        };
        let ApprovalEvent::Requested(request) = requests.recv().await.unwrap() else { panic!("not a request") };
        assert!(
            request.command.starts_with("touch ") && request.reason.contains("tools.exec.allowlist"),
            "{request:?}"
        );
        assert_eq!(queue.pending().len(), 1);
        // A unique prefix names it, as in OpenClaw.
        assert_eq!(queue.resolve(&request.id[..6], decision).unwrap().id, request.id);
        assert_eq!(requests.recv().await.unwrap(), ApprovalEvent::Resolved { request: request.clone(), decision });
        let result = task.await.unwrap();
        assert_eq!(result.is_ok(), expect_ran, "{result:?}");
        assert_eq!(marker.exists(), expect_ran);
    }

    // Nobody answers: the call is refused at the approval timeout, nothing runs, nothing hangs.
    let marker = dir.path().join("silence");
    let silent_ctx = ctx(dir.path(), &clock);
    let command = format!("touch {}", marker.display());
    let task = {
        let tool = tool.clone();
        tokio::spawn(async move { tool.call(json!({"command": command}), &silent_ctx).await })
    };
    let ApprovalEvent::Requested(request) = requests.recv().await.unwrap() else { panic!("not a request") };
    let e = drive(&clock, 5_000, task).await.unwrap_err();
    assert_eq!(e.class(), "refused");
    assert!(e.to_string().contains("timed out after 60 s; nothing ran"), "{e}");
    assert!(!marker.exists());
    assert!(queue.pending().is_empty());
    assert_eq!(requests.recv().await.unwrap(), ApprovalEvent::Expired(request.clone()));
    assert!(queue.resolve(&request.id, ApprovalDecision::AllowOnce).unwrap_err().contains("no pending approval"));

    // Without an approval client, `ask` refuses at once.
    let lone = Exec::new(config, None);
    let e = run(&lone, &ctx(dir.path(), &clock), "touch x").await.unwrap_err();
    assert!(e.to_string().contains("no approval client is available"), "{e}");
}

#[tokio::test]
async fn allow_always_keeps_the_executables_in_the_grants_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let grants = dir.path().join("exec-approvals.json");
    let queue = ApprovalQueue::with_grants_file(grants.clone()).unwrap();
    let config = ExecConfig { mode: ExecMode::Ask, approval_timeout_sec: 60, ..Default::default() };
    let tool = Arc::new(Exec::new(config.clone(), Some(Arc::new(queue.clone()))));
    let mut events = queue.subscribe();
    let call = |command: &'static str| {
        let (tool, ctx) = (tool.clone(), ctx(dir.path(), &clock));
        tokio::spawn(async move { tool.call(json!({ "command": command }), &ctx).await })
    };

    let task = call("true");
    let ApprovalEvent::Requested(request) = events.recv().await.unwrap() else { panic!("not a request") };
    assert_eq!(request.argv, Some(vec!["true".to_string()]));
    queue.resolve(&request.id, ApprovalDecision::AllowAlways).unwrap();
    assert!(matches!(events.recv().await.unwrap(), ApprovalEvent::Resolved { .. }));
    task.await.unwrap().unwrap();
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&grants).unwrap()).unwrap();
    let true_path = std::fs::canonicalize(which("true")).unwrap();
    assert_eq!(kept, json!({"version": 1, "allowlist": [{"pattern": true_path.display().to_string()}]}));

    // The next call runs without asking, and so does one through a queue read back from the file.
    call("true").await.unwrap().unwrap();
    assert!(events.try_recv().is_err(), "a granted command asked again");
    let reread = ApprovalQueue::with_grants_file(grants.clone()).unwrap();
    let again = Exec::new(config.clone(), Some(Arc::new(reread)));
    run(&again, &ctx(dir.path(), &clock), "true").await.unwrap();

    // Chaining can only be allowed once: nothing is added.
    let task = call("true; true");
    let ApprovalEvent::Requested(request) = events.recv().await.unwrap() else { panic!("not a request") };
    assert_eq!(request.argv, None);
    queue.resolve(&request.id, ApprovalDecision::AllowAlways).unwrap();
    task.await.unwrap().unwrap();
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&grants).unwrap()).unwrap();
    assert_eq!(kept["allowlist"].as_array().unwrap().len(), 1);

    // A grants file that is not one is refused with what to do.
    std::fs::write(&grants, "[1]").unwrap();
    let e = ApprovalQueue::with_grants_file(grants).err().unwrap();
    assert!(e.contains("not an exec approvals file") && e.contains("fix or remove it"), "{e}");
}

fn which(name: &str) -> std::path::PathBuf {
    std::env::var("PATH").unwrap().split(':').map(|d| std::path::Path::new(d).join(name)).find(|p| p.is_file()).unwrap()
}
