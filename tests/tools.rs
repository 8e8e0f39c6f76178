//! The agent's tools at the gateway's boundary: `ask`-mode exec approvals over the protocol and
//! `pincer approvals` (events to `operator.approvals` clients only, decisions audited, an
//! unattended run refused on time under the fake clock), MCP servers in `pincer mcp list|probe`,
//! `health` and `doctor` (a server that dies comes back after its backoff), and broken tool
//! configuration as `doctor` checks with their fix.

use std::path::PathBuf;
use std::time::Duration;

use pincer_core::Clock;
use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
use pincer_testkit::ws::RawClient;
use serde_json::{Value, json};

use crate::support::{TOKEN, TestGateway, error_of, pincer_bin, wait_runs};

async fn gateway(fake: &FakeOpenAi, extra: &str) -> TestGateway {
    TestGateway::start_with(&format!(
        "{{ models: {{ providers: {{ openai: {{ api: 'openai-completions', baseUrl: '{}', apiKey: 'sk-test', models: [{{ id: 'gpt-4o' }}] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'openai/gpt-4o' }}, timezone: 'Europe/Berlin' }} }}, {extra} }}",
        fake.base_url()
    ))
    .await
}

const ASK: &str = "tools: { exec: { mode: 'ask', approvalTimeoutSec: 60 } }";

/// Runs the real binary against the in-process gateway.
async fn pincer(gw: &TestGateway, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(pincer_bin());
    cmd.args(args).args(["--url", &gw.url(), "--token", TOKEN]).env_clear();
    let out = cmd.output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// An agent job run now whose model asks to run `command`, then says `after`.
async fn run_exec_job(c: &mut RawClient, fake: &FakeOpenAi, command: &str, after: &str) -> String {
    fake.push(Reply::tool_call("exec", json!({ "command": command })));
    fake.push(Reply::text(after));
    run_agent_job(c, "tidy", "Tidy up").await
}

/// An hourly isolated agent job named `name` asking `message`, added and run now; its id.
async fn run_agent_job(c: &mut RawClient, name: &str, message: &str) -> String {
    let job = c
        .call(
            "cron.add",
            json!({"name": name, "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                   "payload": {"kind": "agentTurn", "message": message}, "delivery": {"mode": "none"}}),
        )
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.call("cron.run", json!({"id": job})).await.unwrap();
    job
}

async fn audit_actions(c: &mut RawClient) -> Vec<Value> {
    let page = c.call("audit.query", json!({"limit": 50})).await.unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("exec."))
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_ask_is_broadcast_to_approvers_and_decided_with_pincer_approvals() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake, ASK).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut approver = gw.client(&["operator.approvals"]).await;
    let mut reader = gw.client(&["operator.read"]).await;
    let workspace = gw.paths.state_dir.join("workspace");

    let job = run_exec_job(&mut admin, &fake, "touch approved.txt", "Done.").await;
    let event = approver.next_event("exec.approval.requested").await.unwrap();
    let p = &event["payload"];
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["request"]["command"], "touch approved.txt");
    assert_eq!(p["request"]["commandArgv"], json!(["touch", "approved.txt"]));
    assert_eq!(
        (p["request"]["host"].as_str(), p["request"]["security"].as_str()),
        (Some("gateway"), Some("allowlist"))
    );
    assert_eq!(p["request"]["ask"], "on-miss");
    assert!(p["request"]["sessionKey"].as_str().unwrap().contains(":cron:"), "{p}");
    assert_eq!(p["expiresAtMs"].as_i64().unwrap() - p["createdAtMs"].as_i64().unwrap(), 60_000);
    assert!(!workspace.join("approved.txt").exists(), "it ran before anyone approved it");

    // The list and get methods (OpenClaw's shapes); a reader may not call them.
    let list = approver.call("exec.approval.list", json!({})).await.unwrap();
    assert_eq!(list, json!([p]));
    // OpenClaw's system agent's approvals are another list: Pincer's exec approvals are not in it.
    assert_eq!(approver.call("openclaw.approval.list", json!({})).await.unwrap(), json!([]));
    let one = approver.call("exec.approval.get", json!({"id": &id[..8]})).await.unwrap();
    assert_eq!((one["id"].as_str(), one["commandText"].as_str()), (Some(id.as_str()), Some("touch approved.txt")));
    assert_eq!(one["allowedDecisions"], json!(["allow-once", "allow-always", "deny"]));
    let (code, message) = error_of(&reader.request("exec.approval.list", json!({})).await.unwrap());
    assert_eq!((code.as_str(), message.as_str()), ("FORBIDDEN", "missing scope: operator.approvals"));
    let (_, message) =
        error_of(&approver.request("exec.approval.resolve", json!({"id": id, "decision": "maybe"})).await.unwrap());
    assert!(message.contains("invalid decision `maybe`"), "{message}");

    // The CLI lists it and approves it by a prefix of its id.
    let (ok, out) = pincer(&gw, &["approvals", "list"]).await;
    assert!(ok && out.contains(&id) && out.contains("touch approved.txt"), "{out}");
    let (ok, out) = pincer(&gw, &["approvals", "approve", &id[..6]]).await;
    assert!(ok && out.contains("runs now (once)"), "{out}");
    let resolved = approver.next_event("exec.approval.resolved").await.unwrap();
    assert_eq!(
        (resolved["payload"]["id"].as_str(), resolved["payload"]["decision"].as_str()),
        (Some(id.as_str()), Some("allow-once"))
    );
    assert_eq!(resolved["payload"]["request"]["command"], "touch approved.txt");
    let run = wait_runs(&mut admin, &job, 1).await.remove(0);
    assert_eq!(run["toolCalls"][0]["isError"], false, "{run}");
    assert!(workspace.join("approved.txt").exists());
    let (ok, out) = pincer(&gw, &["approvals", "deny", &id]).await;
    assert!(!ok && out.contains("no pending approval"), "{out}");

    // The reader saw none of it.
    reader.call("health", json!({})).await.unwrap();
    while let Ok(Ok(frame)) = tokio::time::timeout(Duration::from_millis(50), reader.next_frame()).await {
        assert!(!frame["event"].as_str().unwrap_or("").starts_with("exec."), "a reader got {frame}");
    }

    // Denied: nothing runs, and the model is told so.
    run_exec_job(&mut admin, &fake, "touch denied.txt", "Understood.").await;
    let id2 =
        approver.next_event("exec.approval.requested").await.unwrap()["payload"]["id"].as_str().unwrap().to_string();
    let (ok, out) = pincer(&gw, &["approvals", "deny", &id2, "--json"]).await;
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"ok": true}));
    while fake.requests().len() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let told = serde_json::to_string(&fake.requests()[3].body).unwrap();
    assert!(told.contains("an operator denied `touch denied.txt`; nothing ran"), "{told}");
    assert!(!workspace.join("denied.txt").exists());

    // Every decision is in the audit log, with who decided.
    let audit = audit_actions(&mut admin).await;
    let decisions: Vec<(&str, &str)> =
        audit.iter().map(|e| (e["action"].as_str().unwrap(), e["detail"]["decision"].as_str().unwrap())).collect();
    assert_eq!(decisions, [("exec.approval.resolved", "deny"), ("exec.approval.resolved", "allow-once")]);
    assert_eq!(audit[1]["detail"]["command"], "touch approved.txt");
    assert_eq!(audit[1]["detail"]["resolvedBy"], "pincer");
    gw.stop().await;
}

#[tokio::test]
async fn allow_always_persists_in_the_state_dir_and_survives_a_restart() {
    let fake = FakeOpenAi::start().await;
    let mut gw = gateway(&fake, ASK).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut approver = gw.client(&["operator.approvals"]).await;
    let first = run_exec_job(&mut admin, &fake, "true", "Ran it.").await;
    let id =
        approver.next_event("exec.approval.requested").await.unwrap()["payload"]["id"].as_str().unwrap().to_string();
    let (ok, out) = pincer(&gw, &["approvals", "approve", &id, "--always"]).await;
    assert!(ok && out.contains("allowed from now on"), "{out}");
    let grants: Value =
        serde_json::from_str(&std::fs::read_to_string(gw.paths.state_dir.join("exec-approvals.json")).unwrap())
            .unwrap();
    let pattern = grants["allowlist"][0]["pattern"].as_str().unwrap().to_string();
    assert!(pattern.ends_with("/true"), "{grants}");
    assert_eq!(wait_runs(&mut admin, &first, 1).await[0]["toolCalls"][0]["isError"], false);

    // After a restart, `true` runs without asking.
    drop((admin, approver));
    gw.restart_at(gw.clock.now_ms() + 1_000).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let job = run_exec_job(&mut admin, &fake, "true", "Ran it again.").await;
    let run = wait_runs(&mut admin, &job, 1).await.remove(0);
    assert_eq!(run["toolCalls"][0]["isError"], false, "{run}");
    assert_eq!(admin.call("exec.approval.list", json!({})).await.unwrap(), json!([]));
    let doctor = admin.call("doctor.run", json!({})).await.unwrap();
    let exec = doctor["findings"].as_array().unwrap().iter().find(|f| f["check"] == "tools.exec").unwrap().clone();
    assert!(exec["message"].as_str().unwrap().contains("1 allowed always"), "{exec}");
    gw.stop().await;
}

#[tokio::test]
async fn an_unattended_run_is_refused_when_no_decision_comes_in_time() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake, ASK).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut approver = gw.client(&["operator.approvals"]).await;
    let job = run_exec_job(&mut admin, &fake, "touch never.txt", "It was not approved.").await;
    approver.next_event("exec.approval.requested").await.unwrap();

    // Nothing moves until the (fake) clock reaches the approval timeout.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(admin.call("exec.approval.list", json!({})).await.unwrap().as_array().unwrap().len(), 1);
    let runs = admin.call("cron.runs", json!({"id": job})).await.unwrap();
    assert!(runs["entries"].as_array().unwrap().iter().all(|e| e.get("status").is_none()), "{runs}");
    gw.clock.advance(59_999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(admin.call("exec.approval.list", json!({})).await.unwrap().as_array().unwrap().len(), 1);
    gw.clock.advance(1);

    let run = wait_runs(&mut admin, &job, 1).await.remove(0);
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["toolCalls"][0]["errorClass"], "refused", "{run}");
    assert_eq!(admin.call("exec.approval.list", json!({})).await.unwrap(), json!([]));
    // The refusal is in the transcript, as the model saw it.
    let session = run["sessionKey"].as_str().unwrap();
    let history = admin.call("chat.history", json!({"sessionKey": session})).await.unwrap();
    let text = history.to_string();
    assert!(text.contains("timed out after 60 s; nothing ran"), "{history}");
    assert!(!gw.paths.state_dir.join("workspace/never.txt").exists());
    let audit = audit_actions(&mut admin).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (audit[0]["action"].as_str(), audit[0]["detail"]["command"].as_str()),
        (Some("exec.approval.expired"), Some("touch never.txt"))
    );
    gw.stop().await;
}

/// The stdio MCP test server of `pincer-tools` (an example; built here if this build skipped it).
pub fn mcp_test_server() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("examples/mcp_test_server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "pincer-tools", "--example", "mcp_test_server"])
            .status()
            .expect("run cargo to build the MCP test server");
        assert!(status.success(), "building the MCP test server failed");
    }
    bin
}

async fn mcp_list_until(c: &mut RawClient, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = c.call("mcp.servers.list", json!({})).await.unwrap();
        if pred(&list) {
            return list;
        }
        assert!(std::time::Instant::now() < deadline, "MCP servers never became {what}: {list}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn server<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["servers"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

#[tokio::test]
async fn mcp_servers_are_visible_in_mcp_list_probe_health_and_doctor_and_come_back_after_dying() {
    let bin = mcp_test_server();
    let gw = TestGateway::start_with(&format!(
        "{{ mcp: {{ servers: {{ srv: {{ command: '{}' }}, broken: {{ command: '/nonexistent/mcp-server' }} }} }} }}",
        bin.display()
    ))
    .await;
    let mut c = gw.client(&["operator.admin"]).await;
    let list = mcp_list_until(&mut c, "connected", |l| {
        server(l, "srv")["state"] == "connected" && server(l, "broken")["state"] == "backoff"
    })
    .await;
    let srv = server(&list, "srv");
    assert_eq!(srv["transport"], "stdio");
    assert!(srv["tools"].as_array().unwrap().contains(&json!("srv__echo")), "{srv}");
    assert_eq!(srv["toolCount"].as_u64().unwrap() as usize, srv["tools"].as_array().unwrap().len());
    let broken = server(&list, "broken");
    assert!(broken["lastError"].as_str().unwrap().contains("cannot start `/nonexistent/mcp-server`"), "{broken}");

    // The CLI: the list, a probe on a fresh connection, an unknown name.
    let (ok, out) = pincer(&gw, &["mcp", "list"]).await;
    assert!(ok && out.contains("srv") && out.contains("connected") && out.contains("backoff"), "{out}");
    let (ok, out) = pincer(&gw, &["mcp", "list", "--json"]).await;
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["servers"].as_array().unwrap().len(), 2);
    let (ok, out) = pincer(&gw, &["mcp", "probe", "srv"]).await;
    assert!(ok && out.contains("srv: connected;") && out.contains("srv__echo") && out.contains("echo"), "{out}");
    let (ok, out) = pincer(&gw, &["mcp", "probe", "nope"]).await;
    assert!(!ok && out.contains("no MCP server `nope`") && out.contains("configured: broken, srv"), "{out}");
    let (ok, out) = pincer(&gw, &["mcp", "probe", "broken"]).await;
    assert!(!ok && out.contains("cannot start"), "{out}");

    // health and doctor.
    let health = c.call("health", json!({})).await.unwrap();
    let names: Vec<&str> =
        health["pincer"]["mcp"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["broken", "srv"]);
    let (ok, out) = pincer(&gw, &["health"]).await;
    assert!(ok && out.contains("mcp srv: connected"), "{out}");
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    let finding = |check: &str| doctor["findings"].as_array().unwrap().iter().find(|f| f["check"] == check).cloned();
    assert_eq!(finding("mcp.srv").unwrap()["status"], "ok");
    let bad = finding("mcp.broken").unwrap();
    assert_eq!(bad["status"], "warn", "{bad}");
    assert!(bad["fix"].as_str().unwrap().contains("`pincer mcp probe broken`"), "{bad}");

    // The server dies: it is in backoff with the reason, then back after 1 s of (fake) time.
    let pid = srv["pid"].as_i64().unwrap() as i32;
    // SAFETY: plain syscall on the test's own child process.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let list = mcp_list_until(&mut c, "in backoff", |l| server(l, "srv")["state"] == "backoff").await;
    let down = server(&list, "srv");
    assert!(down["lastError"].as_str().unwrap().contains("exited"), "{down}");
    assert_eq!(down["toolCount"], 0);
    assert_eq!(down["nextAttemptAtMs"].as_i64(), Some(gw.clock.now_ms() + 1_000));
    let (ok, out) = pincer(&gw, &["mcp", "list"]).await;
    assert!(ok && out.contains("exited"), "{out}");
    gw.clock.advance(1_000);
    let list = mcp_list_until(&mut c, "connected again", |l| server(l, "srv")["state"] == "connected").await;
    let back = server(&list, "srv");
    assert_eq!(back["restarts"], 1);
    assert_ne!(back["pid"].as_i64().unwrap() as i32, pid);
    gw.stop().await;
}

#[tokio::test]
async fn doctor_names_broken_tool_configuration_with_the_fix() {
    let gw = TestGateway::start_with("{ tools: { web: { search: { provider: 'brave' , maxResults: 3 } } } }").await;
    let mut c = gw.client(&["operator.read"]).await;
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    let finding = |check: &str| {
        doctor["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check)
            .cloned()
            .unwrap_or_else(|| panic!("no {check}: {doctor}"))
    };
    let exec = finding("tools.exec");
    assert_eq!(exec["status"], "warn");
    assert!(exec["message"].as_str().unwrap().contains("nothing can run yet"), "{exec}");
    assert!(exec["fix"].as_str().unwrap().contains("tools.exec.allowlist: [\"/usr/bin/git\"]"), "{exec}");
    let search = finding("tools.web_search");
    assert_eq!(search["status"], "warn");
    assert!(search["fix"].as_str().unwrap().contains("Brave Search needs an API key"), "{search}");
    assert!(doctor["findings"].as_array().unwrap().iter().all(|f| !f["check"].as_str().unwrap().starts_with("mcp.")));
    gw.stop().await;

    // Untouched web_search is only off; an allowlist lets exec run.
    let gw = TestGateway::start_with("{ tools: { exec: { allowlist: ['/usr/bin/git'] } } }").await;
    let mut c = gw.client(&["operator.read"]).await;
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    let statuses: Vec<(String, String)> = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"].as_str().unwrap().starts_with("tools."))
        .map(|f| (f["check"].as_str().unwrap().to_string(), f["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        statuses,
        [("tools.exec".to_string(), "ok".to_string()), ("tools.web_search".to_string(), "ok".to_string())]
    );
    gw.stop().await;
}

#[test]
fn doctor_without_a_gateway_checks_the_tool_configuration_too() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("pincer.json"),
        format!("{{ gateway: {{ auth: {{ token: '{TOKEN}' }} }}, tools: {{ web: {{ search: {{ provider: 'searxng' }} }} }} }}"),
    )
    .unwrap();
    std::fs::write(state.join("exec-approvals.json"), "not json").unwrap();
    let out = std::process::Command::new(pincer_bin())
        .arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PINCER_STATE_DIR", &state)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    for line in [
        "WARN  tools.exec       exec: nothing can run yet",
        "fix: add executables by path, e.g. tools.exec.allowlist: [\"/usr/bin/git\"]",
        "WARN  tools.web_search web_search is not available: tools.web.search.baseUrl",
        "WARN  tools.exec.grants",
        "not an exec approvals file",
    ] {
        assert!(said.contains(line), "no `{line}` in:\n{said}");
    }
}

/// The tool names a model request offered.
fn offered(req: &pincer_testkit::fakes::openai::ModelRequest) -> Vec<String> {
    req.body["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["function"]["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// `tools.*` and `mcp.servers` edits apply on `pincer config reload`: the next turn sees the new
/// policy and exec mode, removed MCP servers are stopped and their process reaped, new ones
/// started, changed ones restarted, an unchanged one keeps its process; a turn in flight keeps the
/// tools it began with.
#[tokio::test]
async fn tools_and_mcp_edits_apply_on_reload_and_turns_in_flight_keep_their_tools() {
    let bin = mcp_test_server();
    let fake = FakeOpenAi::start().await;
    let models = format!(
        "models: {{ providers: {{ openai: {{ api: 'openai-completions', baseUrl: '{}', apiKey: 'sk-test', models: [{{ id: 'gpt-4o' }}] }} }} }},
         agents: {{ defaults: {{ model: {{ primary: 'openai/gpt-4o' }}, timezone: 'Europe/Berlin' }} }}",
        fake.base_url()
    );
    let srv =
        |name: &str, extra: &str| format!("{name}: {{ command: '{}', requestTimeoutMs: 2000 {extra} }}", bin.display());
    let before = format!(
        "{models}, tools: {{ profile: 'full' }}, mcp: {{ servers: {{ {}, {}, {} }} }}",
        srv("keep", ""),
        srv("gone", ""),
        srv("edit", "")
    );
    let gw = TestGateway::start_with(&format!("{{ {before} }}")).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let all_connected = |names: &'static [&'static str]| {
        move |l: &Value| {
            l["servers"].as_array().unwrap().len() == names.len()
                && names.iter().all(|n| server(l, n)["state"] == "connected")
        }
    };
    let list = mcp_list_until(&mut c, "connected", all_connected(&["edit", "gone", "keep"])).await;
    let pid = |l: &Value, n: &str| server(l, n)["pid"].as_i64().unwrap() as i32;
    let (keep_pid, gone_pid, edit_pid) = (pid(&list, "keep"), pid(&list, "gone"), pid(&list, "edit"));
    std::fs::write(gw.paths.state_dir.join("workspace/note.txt"), "from the workspace").unwrap();

    // A turn starts under the old policy; its MCP call holds it until the clock moves.
    fake.push(Reply::tool_call("keep__slow", json!({})));
    fake.push(Reply::tool_call("read", json!({ "path": "note.txt" })));
    fake.push(Reply::text("first done"));
    let job = run_agent_job(&mut c, "t", "go").await;
    fake.wait_for_requests(1).await;
    let first = offered(&fake.requests()[0]);
    assert!(first.contains(&"read".into()) && first.contains(&"gone__echo".into()), "{first:?}");

    // The edit: `read` denied, exec runs anything, `gone` removed, `edit` changed, `added` new.
    let after = format!(
        "{{ gateway: {{ port: 0, auth: {{ token: '{TOKEN}' }} }}, {models},
           tools: {{ profile: 'full', deny: ['read'], exec: {{ mode: 'full' }} }},
           mcp: {{ servers: {{ {}, {}, {} }} }} }}",
        srv("keep", ""),
        srv("edit", ", env: { EDITED: '1' }"),
        srv("added", "")
    );
    std::fs::write(&gw.paths.config_path, after).unwrap();
    let (ok, out) = pincer(&gw, &["config", "reload", "--json"]).await;
    assert!(ok, "{out}");
    let reloaded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reloaded["restartNeeded"], json!([]), "{reloaded}");
    let applied: Vec<&str> = reloaded["applied"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(applied.contains(&"tools.deny") && applied.contains(&"mcp.servers.gone"), "{applied:?}");

    let list = mcp_list_until(&mut c, "reconfigured", all_connected(&["added", "edit", "keep"])).await;
    assert_eq!(pid(&list, "keep"), keep_pid, "an unchanged server keeps its process");
    assert_ne!(pid(&list, "edit"), edit_pid, "a changed server is restarted");
    // Removed and replaced servers are killed and reaped (no zombie left).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while [gone_pid, edit_pid].iter().any(|p| crate::support::proc_stat(*p).is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "not reaped: {:?} {:?}",
            crate::support::proc_stat(gone_pid),
            crate::support::proc_stat(edit_pid)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The turn in flight finishes with the tools it began with: `read` still works for it.
    while fake.request_count() < 2 {
        gw.clock.advance(500);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_runs(&mut c, &job, 1).await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(offered(&requests[1]).contains(&"read".into()));
    assert!(requests[2].body.to_string().contains("from the workspace"), "{}", requests[2].body);

    // The next turn: no `read`, the new server's tools, and exec in `full` mode.
    fake.push(Reply::tool_call("exec", json!({ "command": "echo reloaded-exec" })));
    fake.push(Reply::text("second done"));
    c.call("cron.run", json!({"id": job, "mode": "force"})).await.unwrap();
    wait_runs(&mut c, &job, 2).await;
    let requests = fake.requests();
    let next = offered(&requests[3]);
    assert!(!next.contains(&"read".into()) && !next.contains(&"gone__echo".into()), "{next:?}");
    assert!(next.contains(&"added__echo".into()) && next.contains(&"keep__echo".into()), "{next:?}");
    let result = requests[4].body.to_string();
    assert!(result.contains("reloaded-exec") && !result.contains("allowlist"), "{result}");

    // health and doctor no longer wait for a restart.
    let health = c.call("health", json!({})).await.unwrap();
    assert_eq!(health["pincer"]["config"]["restartNeeded"], json!([]), "{health}");
    gw.stop().await;
}

/// `exec.approvals.get|set` in OpenClaw's shapes: the policy from `tools.exec.mode`, the
/// allow-always grants as the allowlist; `set` replaces the grants (guarded by `baseHash`), which
/// the next `exec` call honours, and refuses to change the policy, naming the config key.
#[tokio::test]
async fn exec_approvals_get_and_set_show_and_replace_the_grants() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake, "tools: { profile: 'full' }").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let path = gw.paths.state_dir.join("exec-approvals.json");
    let got = c.call("exec.approvals.get", json!({})).await.unwrap();
    assert_eq!(
        got,
        json!({"path": path.display().to_string(), "exists": false, "hash": null,
               "file": {"version": 1, "defaults": {"security": "allowlist", "ask": "off", "askFallback": "deny"},
                        "agents": {"*": {"allowlist": []}}}})
    );
    // Nothing granted: `true` is refused.
    let job = run_exec_job(&mut c, &fake, "true", "Tried.").await;
    assert_eq!(wait_runs(&mut c, &job, 1).await[0]["toolCalls"][0]["isError"], true);

    let bin = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("true"))
        .find(|p| p.exists())
        .unwrap()
        .display()
        .to_string();
    let file = json!({"version": 1, "agents": {"*": {"allowlist": [{"pattern": bin}]}}});
    let set = c.call("exec.approvals.set", json!({ "file": file })).await.unwrap();
    assert_eq!(set["exists"], true);
    assert_eq!(set["file"]["agents"]["*"]["allowlist"], json!([{ "pattern": bin }]));
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(on_disk["allowlist"][0]["pattern"], bin.as_str());
    let hash = set["hash"].as_str().unwrap().to_string();
    assert_eq!(c.call("exec.approvals.get", json!({})).await.unwrap(), set);
    let job = run_exec_job(&mut c, &fake, "true", "Ran it.").await;
    let run = wait_runs(&mut c, &job, 1).await.remove(0);
    assert_eq!(run["toolCalls"][0]["isError"], false, "{run}");

    // Once the file exists, a set needs the hash it was read at.
    let empty = json!({"version": 1, "agents": {}});
    let refused = c.call("exec.approvals.set", json!({ "file": empty })).await.unwrap_err();
    assert!(refused.to_string().contains("base hash required"), "{refused}");
    let refused = c.call("exec.approvals.set", json!({ "file": empty, "baseHash": "0000" })).await.unwrap_err();
    assert!(refused.to_string().contains("changed since last load"), "{refused}");
    // The policy is the config's.
    let full = json!({"version": 1, "defaults": {"security": "full", "ask": "off"}, "agents": {}});
    let refused = c.call("exec.approvals.set", json!({ "file": full, "baseHash": hash })).await.unwrap_err();
    assert!(refused.to_string().contains("tools.exec.mode"), "{refused}");
    let cleared = c.call("exec.approvals.set", json!({ "file": empty, "baseHash": hash })).await.unwrap();
    assert_eq!(cleared["file"]["agents"]["*"]["allowlist"], json!([]));
    // Node hosts do not exist here: their methods stay refused (COMPATIBILITY.md says why).
    let node = c.call("exec.approvals.node.get", json!({"nodeId": "n1"})).await.unwrap_err();
    assert!(node.to_string().contains("unknown method"), "{node}");
    gw.stop().await;
}

/// `exec.approval.grants.list|revoke` (OpenClaw's) and `pincer approvals grants|revoke` over the
/// grants file: a grant is listed with its id, revoked once (audited, gone from the file, and the
/// next `exec` of it refused again), and a second revoke is `not-found`.
#[tokio::test]
async fn standing_grants_are_listed_and_revoked_with_an_audit_row() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake, "tools: { profile: 'full' }").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let bin = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("true"))
        .find(|p| p.exists())
        .unwrap()
        .display()
        .to_string();
    let file = json!({"version": 1, "agents": {"*": {"allowlist": [{"pattern": bin}, {"pattern": "/usr/bin/git"}]}}});
    c.call("exec.approvals.set", json!({ "file": file })).await.unwrap();

    let mut approver = gw.client(&["operator.approvals"]).await;
    let listed = approver.call("exec.approval.grants.list", json!({})).await.unwrap();
    let grants = listed["grants"].as_array().unwrap();
    let commands: Vec<&str> = grants.iter().map(|g| g["command"].as_str().unwrap()).collect();
    assert_eq!(commands, [bin.as_str(), "/usr/bin/git"], "{listed}");
    let id = grants[0]["grantId"].as_str().unwrap().to_string();
    assert!(id.starts_with("grant-"), "{listed}");
    assert_eq!(grants[0]["revokedAtMs"], Value::Null);
    let limited = approver.call("exec.approval.grants.list", json!({"limit": 1})).await.unwrap();
    assert_eq!(limited["grants"].as_array().unwrap().len(), 1);

    let (ok, out) = pincer(&gw, &["approvals", "grants"]).await;
    assert!(ok && out.contains(&id) && out.contains("/usr/bin/git"), "{out}");
    let (ok, out) = pincer(&gw, &["approvals", "revoke", &id]).await;
    assert!(ok && out.contains(&format!("Revoked {id}")), "{out}");

    let after = approver.call("exec.approval.grants.list", json!({})).await.unwrap();
    assert_eq!(after["grants"].as_array().unwrap().len(), 1, "{after}");
    let on_disk = std::fs::read_to_string(gw.paths.state_dir.join("exec-approvals.json")).unwrap();
    assert!(!on_disk.contains(&bin) && on_disk.contains("/usr/bin/git"), "{on_disk}");
    let revoked = audit_actions(&mut c).await;
    let row = revoked.iter().find(|e| e["action"] == "exec.approval.grant.revoked").expect("an audit row");
    assert_eq!(row["detail"]["grantId"], id.as_str(), "{row}");
    assert_eq!(row["detail"]["pattern"], bin.as_str(), "{row}");
    let job = run_exec_job(&mut c, &fake, "true", "Tried.").await;
    assert_eq!(wait_runs(&mut c, &job, 1).await[0]["toolCalls"][0]["isError"], true, "the grant is gone");

    let again = approver.call("exec.approval.grants.revoke", json!({"grantId": id})).await.unwrap();
    assert_eq!(again, json!({"outcome": "not-found"}));
    let (ok, out) = pincer(&gw, &["approvals", "revoke", &id]).await;
    assert!(!ok && out.contains("pincer approvals grants"), "{out}");
    // By pattern too, as `pincer approvals revoke` documents.
    let by_pattern = approver.call("exec.approval.grants.revoke", json!({"grantId": "/usr/bin/git"})).await.unwrap();
    assert_eq!(by_pattern, json!({"outcome": "revoked"}));
    gw.stop().await;
}
