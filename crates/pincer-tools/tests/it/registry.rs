//! The registry's containment: every bad call becomes a tool error the model sees.

use std::sync::Arc;

use pincer_tools::tool::BoxFuture;
use pincer_tools::{
    ExecConfig, ExecMode, Profile, ReadTool, Tool, ToolContext, ToolError, ToolOutput, ToolPolicy, ToolSet, ToolSpec,
    Toolbox, WriteTool,
};
use serde_json::{Value, json};

use crate::support::*;

/// A tool that panics, standing in for a buggy tool.
struct Panics(ToolSpec);
impl Tool for Panics {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call<'a>(&'a self, _args: Value, _ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async { panic!("index out of bounds in the tool") })
    }
}

/// A tool that never finishes, standing in for a hung tool.
struct Hangs(ToolSpec);
impl Tool for Hangs {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call<'a>(&'a self, _args: Value, _ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(std::future::pending())
    }
}

fn spec(name: &str) -> ToolSpec {
    ToolSpec { name: name.into(), description: String::new(), parameters: json!({"type":"object"}) }
}

#[tokio::test]
async fn bad_calls_become_tool_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let set = ToolSet::of([
        Arc::new(ReadTool::default()) as Arc<dyn Tool>,
        Arc::new(Panics(spec("buggy"))),
        Arc::new(Hangs(spec("stuck"))),
    ]);
    let ctx = ctx(dir.path(), &clock);

    let e = set.call("read", "{\"path\": ", &ctx).await.unwrap_err();
    assert_eq!(e.class(), "invalid_arguments");
    assert!(e.to_string().contains("not valid JSON"), "{e}");

    let e = set.call("read", "[1,2]", &ctx).await.unwrap_err();
    assert_eq!(e.to_string(), "read: the arguments must be a JSON object, not an array");

    let e = set.call("read", "{}", &ctx).await.unwrap_err();
    assert_eq!(e.to_string(), "read: missing required parameter `path`");

    let e = set.call("rm_rf", "{}", &ctx).await.unwrap_err();
    assert_eq!(e.to_string(), "unknown tool `rm_rf`; the tools available are: buggy, read, stuck");

    let e = set.call("buggy", "{}", &ctx).await.unwrap_err();
    assert_eq!(e.class(), "panic");
    assert!(e.to_string().contains("index out of bounds in the tool"), "{e}");

    // A hang ends at the call's deadline on the injected clock.
    let short = ToolContext::new(dir.path(), clock.shared(), 5_000);
    let task = {
        let set = set.clone();
        tokio::spawn(async move { set.call("stuck", "", &short).await })
    };
    let e = drive(&clock, 1_000, task).await.unwrap_err();
    assert_eq!(e.to_string(), "`stuck` did not finish within 5000 ms and was stopped");

    // An aborted turn cancels the call.
    let cancel_ctx = ctx.clone();
    let token = cancel_ctx.cancel.clone();
    let task = {
        let set = set.clone();
        tokio::spawn(async move { set.call("stuck", "{}", &cancel_ctx).await })
    };
    tokio::task::yield_now().await;
    token.cancel();
    assert_eq!(task.await.unwrap().unwrap_err().class(), "cancelled");
}

#[tokio::test]
async fn the_model_only_sees_tools_that_survive_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let exec = pincer_tools::Exec::new(ExecConfig { mode: ExecMode::Full, ..Default::default() }, None);
    let toolbox = Toolbox::new(ToolPolicy::new(Profile::Full, &[], &[], &["group:runtime".to_string()]))
        .with_tool(Arc::new(ReadTool::default()))
        .with_tool(Arc::new(WriteTool::default()))
        .with_tool(Arc::new(exec));
    let turn = toolbox.for_turn(&[]);
    assert_eq!(turn.specs().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["read", "write"]);
    // A denied tool cannot be called even when the model names it.
    let marker = dir.path().join("ran");
    let args = json!({"command": format!("touch {}", marker.display())}).to_string();
    let e = turn.call("exec", &args, &ctx(dir.path(), &clock)).await.unwrap_err();
    assert_eq!(e.class(), "unknown_tool");
    assert!(!marker.exists());
    // A job's toolsAllow narrows further.
    let job = toolbox.for_turn(&["read".to_string()]);
    assert_eq!(job.names(), ["read"]);
}

#[tokio::test]
async fn a_turn_dropped_mid_call_kills_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let exec = pincer_tools::Exec::new(ExecConfig { mode: ExecMode::Full, ..Default::default() }, None);
    let set = ToolSet::of([Arc::new(exec) as Arc<dyn Tool>]);
    let pidfile = dir.path().join("pid");
    let args = json!({"command": format!("sleep 600 & echo $! > {}; wait", pidfile.display())}).to_string();
    let ctx = ctx(dir.path(), &clock);
    // The turn's future is dropped (aborted), not cancelled through the token.
    let turn = tokio::spawn(async move { set.call("exec", &args, &ctx).await });
    until("the command to start", || std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))).await;
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    turn.abort();
    until("the command to be killed", || process_gone(pid)).await;
}

#[tokio::test]
async fn the_standard_toolbox_from_default_config() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (toolbox, problems) = pincer_tools::standard_toolbox(&pincer_tools::ToolsConfig::default(), None, None);
    // Brave is the default provider and has no key: web_search is left out, and doctor is told why.
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("exec: nothing can run yet"), "{problems:?}");
    assert!(problems[1].contains("tools.web.search.apiKey"), "{problems:?}");
    let set = toolbox.for_turn(&[]);
    assert_eq!(set.names(), ["edit", "exec", "read", "web_fetch", "write"]);
    // exec is offered but, by default, runs nothing.
    let e = set.call("exec", r#"{"command":"echo hi"}"#, &ctx(dir.path(), &clock)).await.unwrap_err();
    assert_eq!(e.class(), "refused");
}

/// Only a step whose every call is a read-only tool may be recorded without an fsync: `read` is
/// one; `write`, `edit`, a tool that does not say, and a name the set does not hold are not.
#[test]
fn only_reads_count_as_read_only_calls() {
    let set = ToolSet::of([
        Arc::new(ReadTool::default()) as Arc<dyn Tool>,
        Arc::new(WriteTool::default()),
        Arc::new(pincer_tools::EditTool::default()),
        Arc::new(Hangs(spec("mystery"))),
    ]);
    assert!(set.all_read_only(["read"]));
    assert!(set.all_read_only(["read", "read"]));
    assert!(!set.all_read_only(["read", "write"]));
    assert!(!set.all_read_only(["edit"]));
    assert!(!set.all_read_only(["mystery"]), "a tool is not read-only unless it says so");
    assert!(!set.all_read_only(["read", "not_a_tool"]), "an unknown name counts as a tool with effects");
}
