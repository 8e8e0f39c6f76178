//! The tool loop: fake models (real servers on 127.0.0.1) that script tool calls, real tools in a
//! temporary workspace, and a few tools built to misbehave (panic, hang) — the `Tool` trait is the
//! extension point the loop drives, so these are fixtures, not mocks of the loop.

use std::sync::atomic::{AtomicBool, Ordering};

use pincer_testkit::fakes::openai::FakeToolCall;
use pincer_tools::tool::BoxFuture;
use pincer_tools::{ReadTool, Tool, ToolContext, ToolError, ToolOutput, ToolPolicy, ToolSpec, Toolbox, WriteTool};

use super::*;
use crate::AgentTools;

/// A tool that panics on every call.
struct Panics(ToolSpec);

impl Tool for Panics {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call<'a>(&'a self, _: Value, _: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async { panic!("the tool fell over") })
    }
}

/// A tool that never answers; `started` is set when it runs, `dropped` when its call is dropped
/// (the loop stopped it: a timeout, a cancelled turn).
struct Hangs {
    spec: ToolSpec,
    started: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Tool for Hangs {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, _: Value, _: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        let guard = SetOnDrop(self.dropped.clone());
        self.started.store(true, Ordering::SeqCst);
        Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            unreachable!()
        })
    }
}

fn spec(name: &str) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: format!("{name} (a test tool)"),
        parameters: json!({"type": "object", "properties": {}}),
    }
}

/// `read` and `write` over a temporary workspace holding `notes.txt`, plus `extra`, under the
/// config's policy.
fn tools(config: &Config, extra: Vec<Arc<dyn Tool>>) -> (tempfile::TempDir, AgentTools) {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("notes.txt"), "buy milk").unwrap();
    let mut toolbox = Toolbox::new(ToolPolicy::from_config(&config.tools))
        .with_tool(Arc::new(ReadTool::default()))
        .with_tool(Arc::new(WriteTool::default()));
    for tool in extra {
        toolbox = toolbox.with_tool(tool);
    }
    let workspace = ws.path().to_path_buf();
    (ws, AgentTools { toolbox, workspace })
}

fn anthropic_config(fake: &FakeAnthropic) -> Config {
    let mut config = Config::default();
    config.models.providers =
        [("anthropic".to_string(), provider_config(ProviderApi::AnthropicMessages, &fake.base_url(), &[]))].into();
    config.agents.defaults.model.primary = Some("anthropic/claude-test".into());
    config
}

fn meta(row: &TranscriptRow) -> Value {
    serde_json::from_str(row.meta_json.as_deref().unwrap_or("null")).unwrap()
}

/// The tool names a request offered (either API's shape).
fn offered(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t.pointer("/function/name").or_else(|| t.get("name")).unwrap().as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn job_key(job: &Job) -> String {
    format!("agent:main:cron:{}:run:cron:{}:{START_MS}", job.id, job.id)
}

/// Both APIs, streamed and not: two parallel calls in one step, then the answer. Every call and
/// result is in the transcript, in the run record's `toolCalls`, in the request the model gets
/// next, and in the `agent` event stream.
#[tokio::test]
async fn parallel_tool_calls_round_trip_through_both_apis_streamed_and_not() {
    for (api, stream) in [("openai", true), ("openai", false), ("anthropic", true), ("anthropic", false)] {
        let calls = vec![
            FakeToolCall::new("call_r", "read", json!({"path": "notes.txt"})),
            FakeToolCall::new("call_w", "write", json!({"path": "out.txt", "content": "done"})),
        ];
        let first = Reply::tool_calls(calls).with_text("Let me look.");
        let last = Reply::text("You need milk; I wrote out.txt.");
        let (openai, anthropic) = (FakeOpenAi::start().await, FakeAnthropic::start().await);
        let config = if api == "openai" {
            openai.push(first);
            openai.push(last);
            openai_config(&openai, &["gpt-4o"])
        } else {
            anthropic.push(first);
            anthropic.push(last);
            anthropic_config(&anthropic)
        };
        let (ws, t) = tools(&config, vec![]);
        let h = Harness::start_full(config, AgentOptions { stream, ..AgentOptions::default() }, Some(t)).await;
        let mut rx = h.events.subscribe();
        let job = h.agent_job("isolated", "What do I need?");

        let out = h.run(&job).await;

        let case = format!("{api} stream={stream}");
        assert_eq!(out.text.as_deref(), Some("You need milk; I wrote out.txt."), "{case}: {out:?}");
        assert_eq!(std::fs::read_to_string(ws.path().join("out.txt")).unwrap(), "done", "{case}");
        assert_eq!(
            out.tool_calls
                .as_ref()
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["id"].clone(), c["isError"].clone()))
                .collect::<Vec<_>>(),
            [(json!("call_r"), json!(false)), (json!("call_w"), json!(false))],
            "{case}: the run record's toolCalls"
        );
        let t = h.transcript(&job_key(&job)).await;
        let rows: Vec<&str> = t.iter().map(|r| r.role.as_str()).collect();
        assert_eq!(rows, ["user", "assistant", "toolResult", "toolResult", "assistant"], "{case}");
        assert_eq!(t[1].content, "Let me look.", "{case}");
        let m1 = meta(&t[1]);
        let recorded: Vec<&str> =
            m1["toolCalls"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(recorded, ["read", "write"], "{case}");
        let mut results: Vec<(String, String)> =
            t[2..4].iter().map(|r| (meta(r)["toolCallId"].as_str().unwrap().to_string(), r.content.clone())).collect();
        results.sort();
        assert_eq!(results[0].0, "call_r", "{case}");
        assert!(results[0].1.contains("buy milk"), "{case}: {results:?}");
        assert_eq!(results[1].0, "call_w", "{case}");
        // No open calls are left behind.
        let open = h.store.write(|tx| tx.take_open_tool_calls(None)).await.unwrap();
        assert!(open.is_empty(), "{case}: {open:?}");

        let requests = if api == "openai" { openai.requests() } else { anthropic.requests() };
        assert_eq!(requests.len(), 2, "{case}");
        assert_eq!(offered(&requests[0].body), ["read", "write"], "{case}");
        let second = requests[1].body.to_string();
        assert!(second.contains("buy milk") && second.contains("call_w"), "{case}: {second}");
        if api == "openai" {
            let msgs = requests[1].body["messages"].as_array().unwrap();
            let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
            assert_eq!(roles, ["system", "user", "assistant", "tool", "tool"], "{case}");
            assert_eq!(msgs[2]["tool_calls"][1]["function"]["name"], "write", "{case}");
        } else {
            let msgs = requests[1].body["messages"].as_array().unwrap();
            assert_eq!(msgs[1]["content"][1]["type"], "tool_use", "{case}: {}", msgs[1]);
            assert_eq!(msgs[2]["content"][0]["type"], "tool_result", "{case}: {}", msgs[2]);
        }

        let mut tool_events = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if ev.name == "agent" && ev.payload["stream"] == "tool" {
                tool_events.push((ev.payload["data"]["phase"].clone(), ev.payload["data"]["toolCallId"].clone()));
            }
        }
        tool_events.sort_by_key(|e| (e.0.to_string(), e.1.to_string()));
        assert_eq!(
            tool_events,
            [
                (json!("result"), json!("call_r")),
                (json!("result"), json!("call_w")),
                (json!("start"), json!("call_r")),
                (json!("start"), json!("call_w")),
            ],
            "{case}"
        );
    }
}

/// Malformed arguments, an unknown tool and a panicking tool in one step: each is a tool error the
/// model is sent and the transcript records; the turn carries on to its answer.
#[tokio::test]
async fn bad_tool_calls_become_tool_errors_and_the_turn_carries_on() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_calls(vec![
        FakeToolCall::raw("c_bad", "read", "{\"path\": \"notes"),
        FakeToolCall::new("c_unknown", "launch_rockets", json!({})),
        FakeToolCall::new("c_panic", "fragile", json!({})),
    ]));
    fake.push(Reply::text("Some tools failed; nothing was done."));
    let config = openai_config(&fake, &["gpt-4o"]);
    let (_ws, t) = tools(&config, vec![Arc::new(Panics(spec("fragile")))]);
    let h = Harness::start_full(config, AgentOptions::default(), Some(t)).await;
    let job = h.agent_job("isolated", "Do it");

    let out = h.run(&job).await;

    assert_eq!(out.exec_status(), ExecStatus::Ok, "{out:?}");
    let t = h.transcript(&job_key(&job)).await;
    let mut errors: Vec<(String, String, bool)> = t
        .iter()
        .filter(|r| r.role == "toolResult")
        .map(|r| {
            let m = meta(r);
            (
                m["toolCallId"].as_str().unwrap().to_string(),
                m["errorClass"].as_str().unwrap().to_string(),
                m["isError"] == true,
            )
        })
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            ("c_bad".into(), "invalid_arguments".into(), true),
            ("c_panic".into(), "panic".into(), true),
            ("c_unknown".into(), "unknown_tool".into(), true),
        ]
    );
    let sent = fake.requests()[1].body["messages"].clone();
    let tool_msgs: Vec<String> = sent
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert!(tool_msgs.iter().any(|m| m.contains("not valid JSON")), "{tool_msgs:?}");
    assert!(
        tool_msgs.iter().any(|m| m.contains("unknown tool `launch_rockets`") && m.contains("read, write")),
        "{tool_msgs:?}"
    );
    assert!(tool_msgs.iter().any(|m| m.contains("the tool fell over")), "{tool_msgs:?}");
    let metrics = h.metrics.render();
    assert!(
        metrics.contains(r#"pincer_agent_tool_calls_total{tool="not_offered",outcome="unknown_tool"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"pincer_agent_tool_calls_total{tool="fragile",outcome="panic"} 1"#), "{metrics}");
}

/// A tool that hangs is stopped at `agents.defaults.toolTimeoutSeconds` on the injected clock; the
/// model is told, and the turn answers.
#[tokio::test]
async fn a_hanging_tool_times_out_on_the_clock_and_the_turn_answers() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("slow", json!({})));
    fake.push(Reply::text("The tool timed out."));
    let mut config = openai_config(&fake, &["gpt-4o"]);
    config.agents.defaults.tool_timeout_seconds = 5;
    let (started, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let hangs = Hangs { spec: spec("slow"), started: started.clone(), dropped: dropped.clone() };
    let (_ws, t) = tools(&config, vec![Arc::new(hangs)]);
    let h = Harness::start_full(config, AgentOptions::default(), Some(t)).await;
    let job = h.agent_job("isolated", "Go slow");

    let run = h.spawn_run(&job);
    wait_until(|| started.load(Ordering::SeqCst)).await;
    h.clock.advance(4_999);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!dropped.load(Ordering::SeqCst), "stopped before its time limit");
    h.clock.advance(1);
    let out = finish(run).await.unwrap();

    assert_eq!(out.text.as_deref(), Some("The tool timed out."));
    assert!(dropped.load(Ordering::SeqCst), "the hanging call was dropped");
    let t = h.transcript(&job_key(&job)).await;
    let result = t.iter().find(|r| r.role == "toolResult").unwrap();
    assert_eq!(meta(result)["errorClass"], "timeout");
    assert!(result.content.contains("did not finish within 5000 ms"), "{}", result.content);
}

/// A turn dropped while a tool runs (its run's time limit, a shutdown) stops the tool and answers
/// the open call as interrupted, so the session's next request is well-formed.
#[tokio::test]
async fn a_dropped_turn_cancels_its_tools_and_answers_open_calls_as_interrupted() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("slow", json!({})));
    fake.push(Reply::text("Next turn."));
    let config = openai_config(&fake, &["gpt-4o"]);
    let (started, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let hangs = Hangs { spec: spec("slow"), started: started.clone(), dropped: dropped.clone() };
    let (_ws, t) = tools(&config, vec![Arc::new(hangs)]);
    let h = Harness::start_full(config, AgentOptions::default(), Some(t)).await;
    let job = h.agent_job("session:work", "Go slow");

    let run = h.spawn_run(&job);
    wait_until(|| started.load(Ordering::SeqCst)).await;
    run.abort();
    wait_until(|| dropped.load(Ordering::SeqCst)).await;
    let key = "agent:main:session:work";
    let store = h.store.clone();
    let mut rows = Vec::new();
    for _ in 0..500 {
        rows = h.transcript(key).await;
        if rows.iter().any(|r| r.role == "toolResult") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(rows.iter().map(|r| r.role.as_str()).collect::<Vec<_>>(), ["user", "assistant", "toolResult"]);
    assert_eq!(meta(&rows[2])["errorClass"], "interrupted");
    assert!(store.write(|tx| tx.take_open_tool_calls(None)).await.unwrap().is_empty());

    // The next turn in the session sends the call with its (interrupted) result.
    let out = h.run(&job).await;
    assert_eq!(out.text.as_deref(), Some("Next turn."));
    let msgs = fake.requests()[1].body["messages"].clone();
    let roles: Vec<&str> = msgs.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"], "{msgs}");
}

/// A model that keeps calling tools is stopped after `agents.defaults.maxToolSteps` steps with an
/// error that names the setting; the calls it made are in the run record.
#[tokio::test]
async fn max_tool_steps_ends_the_turn_with_an_error_naming_the_setting() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::tool_call("read", json!({"path": "notes.txt"})));
    let mut config = openai_config(&fake, &["gpt-4o"]);
    config.agents.defaults.max_tool_steps = 3;
    let (_ws, t) = tools(&config, vec![]);
    let h = Harness::start_full(config, AgentOptions::default(), Some(t)).await;
    let job = h.agent_job("isolated", "Loop forever");

    let out = h.run(&job).await;

    assert_eq!(out.exec_status(), ExecStatus::Error);
    let error = out.error.as_deref().unwrap();
    assert!(error.contains("after 3 tool steps (agents.defaults.maxToolSteps)"), "{error}");
    assert_eq!(out.error_reason.map(|r| r.as_str()), Some("tool_steps"));
    assert_eq!(fake.requests().len(), 4, "three steps, then the fourth call's tools were refused");
    assert_eq!(out.tool_calls.unwrap().as_array().unwrap().len(), 3);
    let t = h.transcript(&job_key(&job)).await;
    assert_eq!(t.last().unwrap().role, "system");
    let s = h.session(&job_key(&job)).await.unwrap();
    assert!(s.finished_at_ms.is_some());
}

/// The model sees only the tools that survive `tools.deny` and the job's `toolsAllow`, and a call
/// to a tool it was not offered is refused as unknown.
#[tokio::test]
async fn the_model_sees_only_tools_the_policy_and_the_job_allow() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("ok"));
    fake.push(Reply::tool_call("write", json!({"path": "x.txt", "content": "no"})));
    fake.push(Reply::text("could not write"));
    let mut config = openai_config(&fake, &["gpt-4o"]);
    config.tools.deny = vec!["fragile".into()];
    let (ws, t) = tools(&config, vec![Arc::new(Panics(spec("fragile")))]);
    let h = Harness::start_full(config, AgentOptions::default(), Some(t)).await;

    h.run(&h.agent_job("isolated", "Hi")).await;
    let job = h.job(json!({"name": "Reader", "sessionTarget": "isolated",
        "payload": {"kind": "agentTurn", "message": "Read only", "toolsAllow": ["read"]}}));
    let out = h.run(&job).await;

    let requests = fake.requests();
    assert_eq!(offered(&requests[0].body), ["read", "write"], "tools.deny removes fragile");
    assert_eq!(offered(&requests[1].body), ["read"], "toolsAllow narrows to read");
    assert_eq!(out.exec_status(), ExecStatus::Ok);
    assert!(!ws.path().join("x.txt").exists(), "a tool the job did not allow never ran");
    let t = h.transcript(&job_key(&job)).await;
    assert_eq!(meta(t.iter().find(|r| r.role == "toolResult").unwrap())["errorClass"], "unknown_tool");
}

/// The workspace's bootstrap files and skills are in the system prompt, with the rule that
/// external content is data.
#[tokio::test]
async fn workspace_files_and_skills_are_composed_into_the_system_prompt() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("ok"));
    let config = openai_config(&fake, &["gpt-4o"]);
    let (ws, t) = tools(&config, vec![]);
    std::fs::write(ws.path().join("AGENTS.md"), "Always answer in haiku.").unwrap();
    std::fs::create_dir_all(ws.path().join("skills/feeds")).unwrap();
    std::fs::write(
        ws.path().join("skills/feeds/SKILL.md"),
        "---\nname: feeds\ndescription: Summarise RSS feeds\n---\nSteps.",
    )
    .unwrap();
    let h = Harness::start_full(config, AgentOptions::default(), Some(t)).await;

    h.run(&h.agent_job("isolated", "Hi")).await;

    let system = fake.requests()[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    for needle in [
        "scheduled job",
        "EXTERNAL_UNTRUSTED_CONTENT",
        "# Project Context",
        "## AGENTS.md\n\nAlways answer in haiku.",
        "<name>feeds</name>",
        "skills/feeds/SKILL.md",
    ] {
        assert!(system.contains(needle), "{needle}:\n{system}");
    }
}

/// A 50 MB page: `web_fetch` reads up to its cap, the model gets that much wrapped as external
/// content, and the turn answers.
#[tokio::test]
async fn a_huge_page_is_capped_and_wrapped_as_external_content() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let total: u64 = 50 * 1024 * 1024;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {total}\r\n\r\n");
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'a'; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    if sock.write_all(&chunk).await.is_err() {
                        break;
                    }
                    sent += chunk.len() as u64;
                    counter.store(sent, Ordering::SeqCst);
                }
            });
        }
    });
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("web_fetch", json!({"url": format!("http://{addr}/big.txt")})));
    fake.push(Reply::text("It is a very long page of the letter a."));
    let mut config = openai_config(&fake, &["gpt-4o"]);
    config.tools.web.fetch.ssrf_policy.allowed_hostnames = vec!["127.0.0.1".into()];
    let fetch =
        pincer_tools::WebFetch::new(config.tools.web.fetch.clone(), Arc::new(pincer_tools::web::SystemResolver))
            .unwrap();
    let (_ws, t) = tools(&config, vec![Arc::new(fetch)]);
    let h = Harness::start_full(config, AgentOptions::default(), Some(t)).await;
    let job = h.agent_job("isolated", "Fetch it");

    let out = h.run(&job).await;

    assert_eq!(out.text.as_deref(), Some("It is a very long page of the letter a."));
    let t = h.transcript(&job_key(&job)).await;
    let result = t.iter().find(|r| r.role == "toolResult").unwrap();
    assert_eq!(meta(result)["isError"], false);
    assert!(result.content.starts_with("<<<EXTERNAL_UNTRUSTED_CONTENT id=\""), "{}", &result.content[..200]);
    assert!(result.content.contains("Source: Web Fetch"));
    assert!(result.content.len() < 200_000, "capped: {} bytes", result.content.len());
    assert!(served.load(Ordering::SeqCst) < 50 * 1024 * 1024, "the rest of the page was never downloaded");
}
