//! The stock OpenClaw CLI (npm `openclaw@2026.9.6`) against a running Pincer gateway.
//!
//! Ignored by default: `cargo xtask interop` installs Node 24 and OpenClaw into `.cache/openclaw`
//! and runs these with `PINCER_OPENCLAW_NODE` and `PINCER_OPENCLAW_MJS` set. `control_ui` drives
//! OpenClaw's browser Control UI from the same install in headless Chromium.

use std::path::PathBuf;
use std::process::{Command, Output};

use pincer_testkit::process::GatewayProcess;
use serde_json::{Value, json};

use crate::support::pincer_bin;

mod control_ui;

/// Runs the real `openclaw` CLI with an isolated home and state dir.
pub struct OpenClaw {
    node: PathBuf,
    mjs: PathBuf,
    home: tempfile::TempDir,
}

impl OpenClaw {
    pub fn from_env() -> OpenClaw {
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is not set: run the interop suite with `cargo xtask interop`"))
        };
        OpenClaw {
            node: var("PINCER_OPENCLAW_NODE").into(),
            mjs: var("PINCER_OPENCLAW_MJS").into(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let home = self.home.path();
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.mjs)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("TMPDIR", home)
            .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
            .env("OPENCLAW_CONFIG_PATH", home.join(".openclaw/openclaw.json"))
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("OPENCLAW_OFFLINE", "1")
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `openclaw <args> --url … --token …` against `gw`.
    pub fn call(&self, gw: &GatewayProcess, args: &[&str]) -> Output {
        let url = gw.url();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--url", &url, "--token", &gw.token]);
        self.run(&full, &[])
    }
}

pub fn out(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The JSON document in a command's stdout (OpenClaw prints a title line before `gateway call` JSON).
pub fn json_out(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    let start = text.find(['{', '[']).unwrap_or_else(|| panic!("no JSON in output:\n{}", out(o)));
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", out(o)))
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_health() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    // `openclaw health` has no --url: it finds the gateway through its environment, as a user would.
    let o = oc.run(&["health"], &[("OPENCLAW_GATEWAY_URL", &gw.url()), ("OPENCLAW_GATEWAY_TOKEN", &gw.token)]);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Agents: main (default)") && text.contains("Gateway probe duration"), "{}", out(&o));
    let o =
        oc.run(&["health", "--json"], &[("OPENCLAW_GATEWAY_URL", &gw.url()), ("OPENCLAW_GATEWAY_TOKEN", &gw.token)]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(json_out(&o)["ok"], true);
    let o = oc.call(&gw, &["gateway", "health"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"), "{}", out(&o));
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_gateway_call_status() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.call(&gw, &["gateway", "call", "status"]);
    assert!(o.status.success(), "{}", out(&o));
    let status = json_out(&o);
    assert_eq!(status["ok"], true);
    assert_eq!(status["gateway"]["port"], gw.port);
    assert_eq!(status["stateDir"], dir.path().to_str().unwrap());
}

/// `openclaw gateway call config.get`: the configuration in OpenClaw's snapshot shape, with every
/// secret (the gateway token, a channel's bot token) replaced by OpenClaw's own marker.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_gateway_call_config_get_redacts_every_secret() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let bot = "123456:interop-secret-bot-token";
    let config = json!({ "channels": { "telegram": { "botToken": bot, "apiRoot": "http://127.0.0.1:9" } } });
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    let o = oc.call(&gw, &["gateway", "call", "config.get", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains(bot) && !text.contains(&gw.token), "a secret left the gateway:\n{}", out(&o));
    let snap = json_out(&o);
    assert_eq!((snap["exists"].as_bool(), snap["valid"].as_bool()), (Some(true), Some(true)), "{snap}");
    assert_eq!(snap["config"]["channels"]["telegram"]["botToken"], "__OPENCLAW_REDACTED__", "{snap}");
    assert_eq!(snap["hash"].as_str().map(str::len), Some(64), "{snap}");
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_wrong_token_fails_with_our_message() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.run(&["gateway", "call", "status", "--url", &gw.url(), "--token", "wrong"], &[]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("gateway token mismatch"), "{}", out(&o));
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_unknown_method_is_reported() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.call(&gw, &["gateway", "call", "no.such.method"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("unknown method: no.such.method"), "{}", out(&o));
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_cron_lifecycle() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.call(
        &gw,
        &[
            "cron",
            "add",
            "--name",
            "interop",
            "--every",
            "1h",
            "--session",
            "isolated",
            "--command",
            "echo interop-ok",
            "--no-deliver",
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    let job = json_out(&o);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["payload"]["kind"], "command");
    assert_eq!(job["delivery"]["mode"], "none");
    let o = oc.call(&gw, &["cron", "list"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(&id), "{}", out(&o));
    let o = oc.call(&gw, &["cron", "list", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = oc.call(&gw, &["cron", "get", &id]);
    assert_eq!(json_out(&o)["name"], "interop", "{}", out(&o));
    let o = oc.call(&gw, &["cron", "run", &id, "--wait", "--poll-interval", "200ms"]);
    assert!(o.status.success(), "{}", out(&o));
    let res = json_out(&o);
    assert_eq!(
        (res["completionStatus"].as_str(), res["run"]["summary"].as_str()),
        (Some("succeeded"), Some("interop-ok"))
    );
    let o = oc.call(&gw, &["cron", "runs", "--id", &id]);
    assert_eq!(json_out(&o)["entries"][0]["status"], "ok", "{}", out(&o));
    let o = oc.call(&gw, &["cron", "edit", &id, "--name", "renamed"]);
    assert_eq!(json_out(&o)["name"], "renamed", "{}", out(&o));
    let o = oc.call(&gw, &["cron", "disable", &id]);
    assert_eq!(json_out(&o)["enabled"], false, "{}", out(&o));
    let o = oc.call(&gw, &["cron", "enable", &id]);
    assert_eq!(json_out(&o)["enabled"], true, "{}", out(&o));
    let o = oc.call(&gw, &["cron", "show", &id]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("name: renamed"), "{}", out(&o));
    let o = oc.call(&gw, &["cron", "status"]);
    assert_eq!(json_out(&o)["enabled"], true, "{}", out(&o));
    let o = oc.call(&gw, &["cron", "rm", &id]);
    assert_eq!(json_out(&o)["removed"], true, "{}", out(&o));
    // `cron.get` says `cron job not found`; the CLI's name fallback finds none and says so.
    let o = oc.call(&gw, &["cron", "get", &id]);
    assert!(!o.status.success() && out(&o).contains("Automation not found"), "{}", out(&o));
}

/// `openclaw cron show <name>`: the CLI asks `cron.get` with the name, and falls back to a lookup
/// by name only when the answer is OpenClaw's `cron job not found: <name>`; `--display-name` on
/// `add` and `edit`.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_cron_show_by_name_and_display_name() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let add = [
        "cron",
        "add",
        "--name",
        "nightly-backup",
        "--display-name",
        "Nightly backup",
        "--every",
        "1h",
        "--command",
        "true",
        "--no-deliver",
    ];
    let o = oc.call(&gw, &add);
    assert!(o.status.success(), "{}", out(&o));
    let id = json_out(&o)["id"].as_str().unwrap().to_string();
    let o = oc.call(&gw, &["cron", "show", "nightly-backup"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains(&id) && text.contains("display name: Nightly backup"), "{}", out(&o));
    let o = oc.call(&gw, &["cron", "edit", &id, "--display-name", "Backup"]);
    assert_eq!(json_out(&o)["displayName"], "Backup", "{}", out(&o));
    // `--declaration-key` twice: one job, updated.
    let declare = |name: &str| {
        let args = ["cron", "add", "--name", name, "--declaration-key", "scripts/report", "--every", "2h"];
        oc.call(&gw, &[&args[..], &["--command", "true", "--no-deliver"]].concat())
    };
    let o = declare("report");
    assert!(o.status.success(), "{}", out(&o));
    let first = json_out(&o);
    let o = declare("report v2");
    assert!(o.status.success(), "{}", out(&o));
    let second = json_out(&o);
    assert_eq!((&second["created"], &second["job"]["id"]), (&json!(false), &first["job"]["id"]), "{second}");
    let o = oc.call(&gw, &["cron", "list", "--json"]);
    let names: Vec<String> =
        json_out(&o)["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names.iter().filter(|n| n.starts_with("report")).count(), 1, "{names:?}");
    // Jobs that could never run are refused at add.
    let agent_turn = ["cron", "add", "--name", "x", "--every", "1h", "--session", "isolated", "--message", "hi"];
    let o = oc.call(
        &gw,
        &[&agent_turn[..], &["--announce", "--channel", "inbox", "--to", "me", "--account", "work"]].concat(),
    );
    assert!(!o.status.success() && out(&o).contains("unknown account \"work\""), "{}", out(&o));
}

/// Points the stock CLI's own config at `gw` (commands such as `status` take no `--url`).
fn configure_local_gateway(oc: &OpenClaw, gw: &GatewayProcess) {
    let dir = oc.home.path().join(".openclaw");
    std::fs::create_dir_all(&dir).unwrap();
    let config = json!({"gateway": {"mode": "local", "port": gw.port, "auth": {"mode": "token", "token": gw.token}}});
    std::fs::write(dir.join("openclaw.json"), config.to_string()).unwrap();
}

/// `openclaw status --json` and `--all`: the CLI connects as the local backend helper
/// (`gateway-client`/`backend`, no device) and reads OpenClaw's summary fields from `status`.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_status_json_and_all_read_pincers_status() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    configure_local_gateway(&oc, &gw);
    let o = oc.run(&["status", "--json"], &[]);
    assert!(o.status.success(), "{}", out(&o));
    let status = json_out(&o);
    // Pincer's own fields and OpenClaw's, side by side.
    assert_eq!(status["stateDir"], dir.path().to_str().unwrap(), "{status}");
    assert_eq!(status["sessions"]["byAgent"][0]["agentId"], "main", "{status}");
    assert_eq!(status["heartbeat"]["defaultAgentId"], "main", "{status}");
    assert_eq!(status["gateway"]["reachable"], true, "{status}");
    let o = oc.run(&["status", "--all"], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("reachable") && text.contains("1 total"), "{}", out(&o));
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_cron_run_wait_fails_for_a_failing_job() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.call(
        &gw,
        &[
            "cron",
            "add",
            "--name",
            "bad",
            "--every",
            "1h",
            "--session",
            "isolated",
            "--command",
            "exit 4",
            "--no-deliver",
        ],
    );
    let id = json_out(&o)["id"].as_str().unwrap().to_string();
    let o = oc.call(&gw, &["cron", "run", &id, "--wait", "--poll-interval", "200ms"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert_eq!(json_out(&o)["completionStatus"], "failed");
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_devices_list_approve_reject() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw =
        GatewayProcess::start(&pincer_bin(), dir.path(), json!({"gateway": {"pairing": {"autoApproveLocal": false}}}))
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let request = |seed: u8| rt.block_on(crate::devices::pending_request(&gw.url(), &gw.token, seed));
    let first = request(11);
    let o = oc.call(&gw, &["devices", "list", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains(&first), "{}", out(&o));
    let o = oc.call(&gw, &["devices", "approve", &first]);
    assert!(o.status.success(), "{}", out(&o));
    let second = request(12);
    let o = oc.call(&gw, &["devices", "reject", &second]);
    assert!(o.status.success(), "{}", out(&o));
    let o = oc.call(&gw, &["devices", "list", "--json"]);
    let list = json_out(&o);
    assert_eq!(list["pending"], json!([]), "{}", out(&o));
    assert_eq!(list["paired"].as_array().unwrap().len(), 1, "{}", out(&o));
    // `devices rotate --no-scopes` mints a token with no scopes (it needs none held by the caller).
    let device = list["paired"][0]["deviceId"].as_str().unwrap().to_string();
    let o = oc.call(&gw, &["devices", "rotate", "--device", &device, "--role", "operator", "--no-scopes"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(json_out(&o)["scopes"], json!([]), "{}", out(&o));
}

/// A Pincer gateway whose default model `openai/gpt-4o` is served by `fake`.
fn model_gateway(state: &std::path::Path, fake: &pincer_testkit::fakes::openai::FakeOpenAi) -> GatewayProcess {
    let config = json!({
        "models": {"providers": {"openai": {"api": "openai-completions", "baseUrl": fake.base_url(),
            "apiKey": "sk-interop", "models": [{"id": "gpt-4o"}]}}},
        "agents": {"defaults": {"model": {"primary": "openai/gpt-4o"}}},
    });
    GatewayProcess::start(&pincer_bin(), state, config).unwrap()
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_cron_add_isolated_agent_turn_announces_to_the_inbox() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, FakeUsage, Reply};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeOpenAi::start());
    fake.push(Reply::text("Interop brief: the build is green.").with_usage(FakeUsage::new(12, 7)));
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = model_gateway(dir.path(), &fake);
    let o = oc.call(
        &gw,
        &[
            "cron",
            "add",
            "--name",
            "brief",
            "--every",
            "1h",
            "--session",
            "isolated",
            "--message",
            "Write the interop brief",
            "--announce",
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    let job = json_out(&o);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        (job["payload"]["kind"].as_str(), job["delivery"]["mode"].as_str()),
        (Some("agentTurn"), Some("announce"))
    );

    let o = oc.call(&gw, &["cron", "run", &id, "--wait", "--poll-interval", "200ms"]);
    assert!(o.status.success(), "{}", out(&o));
    let res = json_out(&o);
    assert_eq!(
        (res["completionStatus"].as_str(), res["run"]["summary"].as_str()),
        (Some("succeeded"), Some("Interop brief: the build is green.")),
        "{}",
        out(&o)
    );
    assert_eq!(res["run"]["deliveryStatus"], "delivered", "{}", out(&o));
    let o = oc.call(&gw, &["gateway", "call", "inbox.list", "--json"]);
    let inbox = json_out(&o);
    assert_eq!(inbox["messages"][0]["text"], "Interop brief: the build is green.", "{}", out(&o));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one model call");
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-interop"));
    drop(gw);
    drop(rt);
}

/// The stock `openclaw agent` (gateway mode, pointed at Pincer by `OPENCLAW_GATEWAY_URL`): it reads
/// the roster with `agents.list`, runs the turn with `agent`, and prints the reply from
/// `result.payloads`; `--json` gives the whole answer; `--session-key` picks a named session.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_agent_runs_a_turn_on_pincer_and_prints_the_reply() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeOpenAi::start());
    fake.push(Reply::text("Hello from the fake model."));
    fake.push(Reply::text("Second answer, as JSON."));
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = model_gateway(dir.path(), &fake);
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_GATEWAY_TOKEN", gw.token.as_str())];

    let o = oc.run(&["agent", "--message", "Say hello"], &env);
    assert!(o.status.success(), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Hello from the fake model."), "{}", out(&o));

    let o = oc.run(&["agent", "--agent", "main", "--message", "Again, as JSON", "--json"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let res = json_out(&o);
    assert_eq!(res["status"], "ok", "{}", out(&o));
    assert_eq!(res["result"]["payloads"][0]["text"], "Second answer, as JSON.", "{}", out(&o));

    // Both turns went to the main session, in order, and the model saw the first in the second.
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "two model calls");
    let second = &requests[1].body;
    let said: Vec<&str> = second["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(said.contains(&"Say hello") && said.contains(&"Hello from the fake model."), "{said:?}");

    // An explicit key reaches a named session of its own, with none of the main session's history.
    fake.push(Reply::text("Notes session here."));
    let o = oc.run(&["agent", "--session-key", "agent:main:session:notes", "--message", "Start the notes"], &env);
    assert!(o.status.success(), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Notes session here."), "{}", out(&o));
    let third = &fake.requests()[2].body;
    let said: Vec<&str> = third["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(said.contains(&"Start the notes") && !said.contains(&"Say hello"), "{said:?}");
    // `--model` makes the CLI connect as the device-less backend helper asking `operator.admin`,
    // which a loopback gateway grants as OpenClaw's does.
    fake.push(Reply::text("Model override here."));
    let o = oc.run(&["agent", "--model", "openai/gpt-4o", "--message", "Which model?"], &env);
    assert!(o.status.success(), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Model override here."), "{}", out(&o));
    let o = oc.call(&gw, &["gateway", "call", "sessions.list", "--json"]);
    let keys: Vec<String> = json_out(&o)["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(keys.contains(&"agent:main:main".into()) && keys.contains(&"agent:main:session:notes".into()), "{keys:?}");
    drop(gw);
    drop(rt);
}

/// `openclaw system heartbeat last|disable|enable` and `openclaw system presence` read Pincer's
/// heartbeat and its live connections.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_system_heartbeat_and_presence() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.call(&gw, &["system", "heartbeat", "last"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "null", "no tick yet: {}", out(&o));
    let o = oc.call(&gw, &["system", "heartbeat", "disable"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(json_out(&o), json!({"ok": true, "enabled": false}));
    let o = oc.call(&gw, &["system", "heartbeat", "enable"]);
    assert_eq!(json_out(&o), json!({"ok": true, "enabled": true}), "{}", out(&o));
    let o = oc.call(&gw, &["system", "presence"]);
    assert!(o.status.success(), "{}", out(&o));
    let rows = json_out(&o);
    let rows = rows.as_array().unwrap();
    assert_eq!((rows[0]["mode"].as_str(), rows[0]["reason"].as_str()), (Some("gateway"), Some("self")), "{}", out(&o));
    assert!(rows.iter().any(|r| r["reason"] == "connect" && r["version"] == "2026.9.6"), "the CLI itself: {}", out(&o));
}

/// `openclaw models list` (which demands the `published-model-catalog` capability) and
/// `openclaw channels status` read Pincer's configuration and outbox; neither takes `--url`, so
/// they find the gateway through the environment.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_models_list_and_channels_status() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(pincer_testkit::fakes::openai::FakeOpenAi::start());
    let gw = model_gateway(dir.path(), &fake);
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_GATEWAY_TOKEN", gw.token.as_str())];
    let o = oc.run(&["models", "list"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let row = text.lines().find(|l| l.starts_with("openai/gpt-4o")).unwrap_or_else(|| panic!("{}", out(&o)));
    assert!(row.contains("default") && row.contains("yes"), "{}", out(&o));
    let o = oc.run(&["channels", "status"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Gateway reachable."), "{}", out(&o));
    assert!(
        text.contains("Inbox default: enabled, configured, running") && text.contains("health:healthy"),
        "{}",
        out(&o)
    );
    assert!(!text.contains("sk-interop"), "the provider key leaked: {}", out(&o));
}

/// `openclaw sessions delete` lists the sessions with its display hints, then deletes by the
/// row's durable identity; the main session is refused.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_sessions_delete() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(pincer_testkit::fakes::openai::FakeOpenAi::start());
    fake.push(pincer_testkit::fakes::openai::Reply::text("Noted."));
    let gw = model_gateway(dir.path(), &fake);
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_GATEWAY_TOKEN", gw.token.as_str())];
    let o = oc.run(&["agent", "--session-key", "agent:main:session:scratch", "--message", "note this"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let o = oc.call(&gw, &["sessions", "delete", "agent:main:session:scratch", "--yes"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Deleted session agent:main:session:scratch."), "{}", out(&o));
    let o = oc.call(&gw, &["sessions", "delete", "agent:main:session:scratch", "--yes"]);
    assert!(!o.status.success() && out(&o).contains("Session not found"), "{}", out(&o));
    let o = oc.call(&gw, &["gateway", "call", "sessions.list", "--json"]);
    assert!(!out(&o).contains("session:scratch"), "{}", out(&o));
}

/// The stock CLI's `gateway call` reaches the chat methods: `chat.send` answers `started`, the
/// reply lands in `chat.history` (whose `deltaCursor` then catches up with nothing new), and
/// `agent --expect-final` skips the `accepted` answer for the result.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_gateway_call_reaches_the_chat_methods() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeOpenAi::start());
    fake.push(Reply::text("Chat reply from the fake model."));
    fake.push(Reply::text("Final after accepted."));
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = model_gateway(dir.path(), &fake);

    let params = r#"{"sessionKey":"agent:main:main","message":"Hello chat","idempotencyKey":"oc-chat-1"}"#;
    let o = oc.call(&gw, &["gateway", "call", "chat.send", "--params", params, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let res = json_out(&o);
    assert_eq!((&res["runId"], &res["status"]), (&json!("oc-chat-1"), &json!("started")), "{}", out(&o));

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let history = loop {
        let o = oc.call(&gw, &["gateway", "call", "chat.history", "--params", r#"{"sessionKey":"main"}"#, "--json"]);
        assert!(o.status.success(), "{}", out(&o));
        let h = json_out(&o);
        if h["messages"].as_array().is_some_and(|m| m.len() == 2) {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "the reply never reached the history: {h}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(history["messages"][1]["text"], "Chat reply from the fake model.");
    let cursor = history["deltaCursor"].as_str().unwrap();
    let params = format!(r#"{{"sessionKey":"main","cursor":"{cursor}"}}"#);
    let o = oc.call(&gw, &["gateway", "call", "chat.history", "--params", &params, "--json"]);
    assert_eq!(
        (json_out(&o)["kind"].as_str(), json_out(&o)["messages"].as_array().map(Vec::len)),
        (Some("delta"), Some(0))
    );

    let params = r#"{"message":"Accepted first?","idempotencyKey":"oc-agent-1"}"#;
    let o = oc.call(&gw, &["gateway", "call", "agent", "--params", params, "--expect-final", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(json_out(&o)["text"], "Final after accepted.", "{}", out(&o));
    drop(gw);
    drop(rt);
}

/// `openclaw logs` reads Pincer's log file through `logs.tail`: its plain and JSON renderings
/// parse Pincer's lines as OpenClaw's own (time, level, subsystem, message), and a cursor read
/// after them answers nothing new.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_logs_reads_pincers_log_file() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let file = dir.path().join("logs/pincer.log");
    let o = oc.call(&gw, &["logs", "--plain", "--limit", "50"]);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("Log file: {}", file.display())), "{}", out(&o));
    let ready = text.lines().find(|l| l.contains("pincer gateway ready")).unwrap_or_else(|| panic!("{}", out(&o)));
    // Parsed, not printed raw: no JSON braces, the level and the subsystem as words.
    assert!(!ready.contains('{') && ready.contains(" info pincer_gateway"), "{ready}");

    let o = oc.call(&gw, &["logs", "--json", "--limit", "50"]);
    assert!(o.status.success(), "{}", out(&o));
    let records: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records[0]["type"], "meta", "{}", out(&o));
    assert_eq!(records[0]["file"], file.to_str().unwrap());
    let ready =
        records.iter().find(|r| r["message"] == "pincer gateway ready").unwrap_or_else(|| panic!("{}", out(&o)));
    assert_eq!((ready["type"].as_str(), ready["level"].as_str()), (Some("log"), Some("info")), "{ready}");

    let size = std::fs::metadata(&file).unwrap().len();
    let params = format!(r#"{{"cursor":{size}}}"#);
    let o = oc.call(&gw, &["gateway", "call", "logs.tail", "--params", &params, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let tail = json_out(&o);
    assert_eq!((tail["cursor"].as_u64(), tail["lines"].as_array().map(Vec::len)), (Some(size), Some(0)), "{tail}");
    assert_eq!((tail["reset"].as_bool(), tail["truncated"].as_bool()), (Some(false), Some(false)), "{tail}");
}

/// `pincer import openclaw` on state the real OpenClaw 2026.9.6 wrote: its gateway runs on a state
/// dir of its own, `openclaw cron add` makes two jobs, the gateway stops, and Pincer imports them —
/// once: the second import finds their declaration keys and adds nothing.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn pincer_imports_jobs_the_real_openclaw_created() {
    let oc = OpenClaw::from_env();
    let state = oc.home.path().join(".openclaw");
    std::fs::create_dir_all(&state).unwrap();
    let port = pincer_testkit::process::free_port();
    let token = "oc-token-0123456789abcdef";
    let config = json!({
        "gateway": { "mode": "local", "port": port, "bind": "loopback", "auth": { "mode": "token", "token": token } },
        "models": { "catalogRefresh": { "enabled": false } },
    });
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();
    let home = oc.home.path();
    let mut gateway = Command::new(&oc.node)
        .arg(&oc.mjs)
        .args(["gateway", "run", "--port", &port.to_string(), "--bind", "loopback"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("OPENCLAW_STATE_DIR", &state)
        .env("OPENCLAW_CONFIG_PATH", state.join("openclaw.json"))
        .env("OPENCLAW_GATEWAY_PORT", port.to_string())
        .env("OPENCLAW_NO_AUTO_UPDATE", "1")
        .env("OPENCLAW_OFFLINE", "1")
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = (0..1200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
        use std::io::{Read, Write};
        let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.contains("\"ready\":true")
    });
    let url = format!("ws://127.0.0.1:{port}");
    let add = |args: &[&str]| {
        let mut full = vec!["cron", "add"];
        full.extend(args);
        full.extend(["--url", &url, "--token", token]);
        oc.run(&full, &[])
    };
    let brief = ready.then(|| {
        add(&[
            "--name",
            "morning brief",
            "--cron",
            "0 7 * * *",
            "--tz",
            "Europe/Berlin",
            "--message",
            "Summarise the news",
            "--announce",
            "--channel",
            "last",
        ])
    });
    let disk = ready.then(|| {
        add(&["--name", "disk check", "--every", "1h", "--system-event", "check the disk", "--session", "main"])
    });
    // A device OpenClaw paired (silently, on loopback, as its own clients are): the token it holds.
    let db = state.join("state/openclaw.sqlite");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let paired =
        ready.then(|| rt.block_on(crate::devices::connect_device(&url, 21, Some(token), None, &["operator.read"])));
    let ran = ready.then(|| {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let disk_id: String = conn
            .query_row("SELECT job_id FROM cron_jobs WHERE job_json LIKE '%disk check%'", [], |r| r.get(0))
            .unwrap();
        let o = oc.run(&["cron", "run", &disk_id, "--url", &url, "--token", token], &[]);
        // The run finishes in the background; its receipt is the history to import.
        let finished = (0..600).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            conn.query_row("SELECT count(*) FROM cron_run_receipts WHERE finished_at_ms IS NOT NULL", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_or(0)
                > 0
        });
        (o, finished)
    });
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(ready, "OpenClaw's gateway was not ready within 4 minutes");
    for o in [brief.unwrap(), disk.unwrap()] {
        assert!(o.status.success(), "{}", out(&o));
    }
    let paired = paired.unwrap();
    let device_token = paired["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap_or_else(|| panic!("OpenClaw issued no device token: {paired}"))
        .to_string();
    let (o, finished) = ran.unwrap();
    assert!(o.status.success() && finished, "the OpenClaw run did not finish: {}", out(&o));
    // The user's config, as OpenClaw validated it, beside the state.
    let mut config: Value = json5::from_str(include_str!("fixtures/openclaw-2026.9.6-openclaw.json5")).unwrap();
    config["gateway"] =
        json!({ "mode": "local", "port": port, "bind": "loopback", "auth": { "mode": "token", "token": token } });
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    // The variables the imported config refers to, set where the gateway runs.
    gw.terminate().unwrap();
    gw.restart_with_env(&[("OPENAI_API_KEY", "sk-test"), ("TELEGRAM_BOT_TOKEN", "1:test")]).unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "openclaw", state.to_str().unwrap()];
        args.extend(extra);
        gw.cli(&args)
    };
    let before = std::fs::read_to_string(dir.path().join("pincer.json")).unwrap();
    let o = import(&["--dry-run"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", out(&o));
    assert!(text.contains("Jobs that map (2):") && text.contains("  morning brief (OpenClaw "), "{text}");
    assert!(text.contains("channel `last`") && text.contains("daylight saving"), "{text}");
    assert!(text.contains("heartbeat-main: OpenClaw's heartbeat job"), "{text}");
    assert!(text.contains("Dry run: nothing was changed."), "{text}");
    assert!(text.contains("  adds channels") && text.contains("  plugins: Pincer has no plugins"), "{text}");
    assert!(text.contains("Paired devices that move (1)") && text.contains("tokens: operator"), "{text}");
    assert!(text.contains("Past runs that move (1)"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pincer.json")).unwrap(),
        before,
        "the dry run wrote the config"
    );
    let listed = |gw: &GatewayProcess| -> Vec<Value> {
        let o = gw.cli(&["cron", "list", "--all", "--json"]);
        assert!(o.status.success(), "{}", out(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array().or(v["jobs"].as_array()).cloned().unwrap_or_else(|| panic!("no jobs in {v}"))
    };
    assert!(listed(&gw).is_empty(), "the dry run added jobs");
    let o = import(&[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("Imported 2 job(s); 0 were already here."), "{}", out(&o));
    assert!(text.contains("Imported 1 paired device(s); 0 were already here."), "{}", out(&o));
    assert!(text.contains("Imported 1 past run(s); 0 were already here."), "{}", out(&o));
    assert!(text.contains("The gateway applied the new config"), "{}", out(&o));
    let first = listed(&gw);
    let config_after_first = std::fs::read_to_string(dir.path().join("pincer.json")).unwrap();
    let written: Value = json5::from_str(&config_after_first).unwrap();
    assert_eq!(written["channels"]["telegram"]["botToken"], "${TELEGRAM_BOT_TOKEN}");
    assert_eq!(written["models"]["providers"]["openai"]["apiKey"], "${OPENAI_API_KEY}");
    assert_eq!(written["gateway"]["auth"]["token"], gw.token.as_str(), "Pincer's own gateway settings were replaced");
    let o = import(&[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("Imported 0 job(s); 2 were already here."), "{}", out(&o));
    assert!(text.contains("Imported 0 paired device(s); 1 were already here."), "{}", out(&o));
    assert!(text.contains("Imported 0 past run(s); 1 were already here."), "{}", out(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("pincer.json")).unwrap(), config_after_first);
    let second = listed(&gw);
    assert_eq!(first, second, "the second import changed a job");
    // The client OpenClaw paired connects to Pincer with the token it already holds.
    let hello =
        rt.block_on(crate::devices::connect_device(&gw.url(), 21, None, Some(&device_token), &["operator.read"]));
    assert_eq!(hello["ok"], true, "{hello}");
    // The OpenClaw run is history of the imported disk job.
    let disk = second.iter().find(|j| j["name"] == "disk check").unwrap();
    let o = gw.cli(&["cron", "runs", disk["id"].as_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let runs = json_out(&o);
    let entries = runs["entries"].as_array().cloned().unwrap_or_else(|| runs.as_array().cloned().unwrap_or_default());
    assert_eq!(entries.len(), 1, "{runs}");
    assert!(entries[0]["runId"].as_str().unwrap().starts_with("openclaw:"), "{runs}");
    assert_eq!(entries[0]["trigger"], "manual", "{runs}");
    let mut names: Vec<&str> = second.iter().map(|j| j["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["disk check", "morning brief"]);
    assert!(
        second.iter().all(|j| j["declarationKey"].as_str().is_some_and(|k| k.starts_with("openclaw:"))),
        "{second:?}"
    );
}

/// `openclaw gateway call sessions.patch` names a session, `openclaw sessions archive` archives
/// it (it wants `entry.archivedAt` back), and `openclaw sessions cleanup --json` (sent to the
/// gateway's `sessions.cleanup`) prints Pincer's summary.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_sessions_archive_and_cleanup() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let key = "agent:main:session:scratch";
    let params = json!({"key": key, "label": "Scratch"}).to_string();
    let o = oc.call(&gw, &["gateway", "call", "sessions.patch", "--params", &params, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(json_out(&o)["entry"]["label"], "Scratch", "{}", out(&o));
    let o = oc.call(&gw, &["sessions", "archive", key, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(json_out(&o)["results"][0]["status"], "archived", "{}", out(&o));
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_GATEWAY_TOKEN", gw.token.as_str())];
    let o = oc.run(&["sessions", "cleanup", "--json"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let summary = json_out(&o);
    assert_eq!((summary["applied"].as_bool(), summary["mode"].as_str()), (Some(true), Some("enforce")), "{}", out(&o));
}

/// A transcript the stock CLI's `sessions.reset` replaced stays readable through `gateway call`:
/// `sessions.describe` lists it and `chat.history` with its `sessionId` reads it, while the
/// current transcript's history starts empty.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_gateway_call_reads_a_transcript_a_reset_replaced() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let key = "agent:main:session:kept";
    {
        let store = pincer_store::Store::open(&dir.path().join("pincer.db")).unwrap();
        store
            .write_blocking(move |tx| {
                tx.ensure_session(key, "main", "named", None, None, 1)?;
                tx.append_transcript(key, "user", "Remember the blue door", 2, None)?;
                tx.append_transcript(key, "assistant", "Noted.", 3, None).map(drop)
            })
            .unwrap();
    }
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let params = json!({"key": key, "reason": "new"}).to_string();
    let o = oc.call(&gw, &["gateway", "call", "sessions.reset", "--params", &params, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let old = json_out(&o)["entry"]["previousSessionId"].as_str().unwrap().to_string();

    let params = json!({"key": key}).to_string();
    let o = oc.call(&gw, &["gateway", "call", "sessions.describe", "--params", &params, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let previous = json_out(&o)["previousTranscripts"].clone();
    assert_eq!(
        (previous[0]["sessionId"].as_str(), previous[0]["messageCount"].as_i64()),
        (Some(old.as_str()), Some(2))
    );

    let params = json!({"sessionKey": key}).to_string();
    let o = oc.call(&gw, &["gateway", "call", "chat.history", "--params", &params, "--json"]);
    assert_eq!(json_out(&o)["messages"], json!([]), "{}", out(&o));
    let params = json!({"sessionKey": key, "sessionId": old}).to_string();
    let o = oc.call(&gw, &["gateway", "call", "chat.history", "--params", &params, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let texts: Vec<Value> = json_out(&o)["messages"].as_array().unwrap().iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, [json!("Remember the blue door"), json!("Noted.")], "{}", out(&o));
    let params = json!({"sessionKey": key, "sessionId": "not-a-transcript"}).to_string();
    let o = oc.call(&gw, &["gateway", "call", "chat.history", "--params", &params, "--json"]);
    assert!(!o.status.success());
    assert!(out(&o).contains("sessionId does not belong to sessionKey"), "{}", out(&o));
}

/// `openclaw agent --deliver --reply-channel telegram --reply-to <chat>`: the reply reaches the
/// chat through Pincer's outbox, once.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_agent_deliver_reaches_telegram_once() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (fake, tg) = rt.block_on(async { (FakeOpenAi::start().await, FakeTelegram::start().await) });
    fake.push(Reply::text("Delivered answer."));
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "models": {"providers": {"openai": {"api": "openai-completions", "baseUrl": fake.base_url(),
            "apiKey": "sk-interop", "models": [{"id": "gpt-4o"}]}}},
        "agents": {"defaults": {"model": {"primary": "openai/gpt-4o"}}},
        "channels": {"telegram": {"botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url()}},
    });
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_GATEWAY_TOKEN", gw.token.as_str())];
    let args = [
        "agent",
        "--session-key",
        "agent:main:main",
        "--message",
        "Report",
        "--deliver",
        "--reply-channel",
        "telegram",
        "--reply-to",
        "123456789",
    ];
    let o = oc.run(&args, &env);
    assert!(o.status.success(), "{}", out(&o));
    let got = rt.block_on(tg.wait_for_messages(1, std::time::Duration::from_secs(30)));
    assert_eq!((got[0].chat_id.as_str(), got[0].text.as_str()), ("123456789", "Delivered answer."));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(tg.messages().len(), 1, "sent once");
}

/// `openclaw tui` against Pincer reaches "gateway connected" on a fresh install and shows the
/// main session, without a history error (it loads the main session's history before its
/// first turn). Run under `script` for the pty it needs.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_tui_connects_and_shows_the_main_session() {
    use std::io::Read;
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let home = oc.home.path();
    let command = format!("{} {} tui --url {} --token {}", oc.node.display(), oc.mjs.display(), gw.url(), gw.token);
    let mut child = Command::new("script")
        .args(["-q", "-c", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
        .env("OPENCLAW_NO_AUTO_UPDATE", "1")
        .env("OPENCLAW_OFFLINE", "1")
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .env("LINES", "40")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the TUI in a pty");
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !seen.lock().unwrap().contains("gateway connected") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.lock().unwrap().clone();
    assert!(text.contains("gateway connected"), "the TUI never connected:\n{text}");
    assert!(text.contains("session main"), "{text}");
    assert!(!text.contains("history failed") && !text.contains("failed:"), "{text}");
}

/// DM pairing from the stock CLI. OpenClaw 2026.9.6's `openclaw pairing list|approve` read its own
/// local pairing store (`pairing-store`), not a gateway, so they cannot see any gateway's
/// requests; what reaches Pincer is `openclaw gateway call channels.pairing.list|approve`, which
/// the Control UI uses too. An unknown Telegram sender gets a code, the stock CLI lists and
/// approves it, and the sender's next message reaches the model.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_gateway_call_lists_and_approves_a_telegram_pairing_code() {
    use pincer_testkit::fakes::openai::FakeOpenAi;
    use pincer_testkit::fakes::telegram::{FakeTelegram, Incoming};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (fake, tg) = rt.block_on(async { (FakeOpenAi::start().await, FakeTelegram::start().await) });
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "models": {"providers": {"openai": {"api": "openai-completions", "baseUrl": fake.base_url(),
            "apiKey": "sk-interop", "models": [{"id": "gpt-4o"}]}}},
        "agents": {"defaults": {"model": {"primary": "openai/gpt-4o"}}},
        "channels": {"telegram": {"botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url()}},
        "delivery": {"rateLimits": {"telegram": 0}},
    });
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    let wait = std::time::Duration::from_secs(30);
    tg.push_message(Incoming::dm(4242, "hello?"));
    let got = rt.block_on(tg.wait_for_messages(1, wait));
    let code = got[0].text.lines().find_map(|l| l.strip_prefix("Pairing code: ")).unwrap().to_string();
    assert_eq!(fake.request_count(), 0, "nothing reaches the model before approval");

    let o = oc.call(&gw, &["gateway", "call", "channels.pairing.list", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    // OpenClaw's shape names the sender, never the code (the owner reads it in the chat).
    let listed = json_out(&o);
    assert_eq!(listed["requests"][0]["requestId"], "telegram:4242", "{listed}");
    assert!(!listed.to_string().contains(&code), "the code stays out of the listing: {listed}");
    let params = json!({"channel": "telegram", "code": code}).to_string();
    let o = oc.call(&gw, &["gateway", "call", "channels.pairing.approve", "--params", &params, "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let got = rt.block_on(tg.wait_for_messages(2, wait));
    assert_eq!(got[1].text, "Access approved. Send a message to start chatting.");
    tg.push_message(Incoming::dm(4242, "now?"));
    let got = rt.block_on(tg.wait_for_messages(3, wait));
    assert_eq!((got[2].chat_id.as_str(), got[2].text.as_str()), ("4242", "Hello from the fake model."));
    let o = oc.call(&gw, &["gateway", "call", "channels.pairing.list", "--json"]);
    assert_eq!(json_out(&o)["requests"], json!([]), "an approved request is no longer pending: {}", out(&o));
}

/// `openclaw agent --session-id <id>`: the stock CLI sends `sessionId`, and both of its forms (a
/// bare name and a full key) reach one session: the second turn's model call carries the first.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_agent_session_id_reaches_one_session() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeOpenAi::start());
    fake.push(Reply::text("Notes started."));
    fake.push(Reply::text("Notes continued."));
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = model_gateway(dir.path(), &fake);
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_GATEWAY_TOKEN", gw.token.as_str())];

    let o = oc.run(&["agent", "--session-id", "notes", "--message", "Start the notes"], &env);
    assert!(o.status.success(), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Notes started."), "{}", out(&o));
    let o = oc.run(&["agent", "--session-id", "agent:main:session:notes", "--message", "Go on", "--json"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let res = json_out(&o);
    assert_eq!(res["result"]["payloads"][0]["text"], "Notes continued.", "{}", out(&o));
    let second = &fake.requests()[1].body;
    let said: Vec<&str> = second["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(said.contains(&"Start the notes") && said.contains(&"Go on"), "{said:?}");
    let o = oc.run(&["gateway", "call", "sessions.list", "--json"], &env);
    let keys: Vec<String> = json_out(&o)["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str().map(str::to_string))
        .collect();
    assert_eq!(keys, ["agent:main:session:notes"], "{}", out(&o));
}

/// `openclaw audit` (2026.9.6's activity ledger) against Pincer: a cron run whose model called a
/// tool and whose reply was announced shows as run, tool and message records in the table and
/// in `--json`; `--kind`, `--run` and `--direction` filter; `--explain --run` inspects the run.
#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_audit_lists_a_cron_runs_activity_and_inspects_it() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeOpenAi::start());
    fake.push(Reply::tool_call("write", json!({"path": "brief.txt", "content": "green"})));
    fake.push(Reply::text("Interop brief filed."));
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = model_gateway(dir.path(), &fake);
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_URL", url.as_str()), ("OPENCLAW_GATEWAY_TOKEN", gw.token.as_str())];
    let o = oc.call(
        &gw,
        &[
            "cron",
            "add",
            "--name",
            "brief",
            "--every",
            "1h",
            "--session",
            "isolated",
            "--message",
            "File it",
            "--announce",
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    let id = json_out(&o)["id"].as_str().unwrap().to_string();
    let o = oc.call(&gw, &["cron", "run", &id, "--wait", "--poll-interval", "200ms"]);
    assert!(o.status.success(), "{}", out(&o));
    let run_id = json_out(&o)["run"]["runId"].as_str().unwrap().to_string();
    // The announce reaches the inbox after the run is recorded: wait for its record.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let o = oc.run(&["audit", "--json"], &env);
        assert!(o.status.success(), "{}", out(&o));
        let page = json_out(&o);
        if page["events"].as_array().unwrap().len() >= 5 || std::time::Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let actions: Vec<&str> = page["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "message.outbound.finished",
            "agent.run.finished",
            "tool.action.finished",
            "tool.action.started",
            "agent.run.started"
        ],
        "{page}"
    );
    assert!(page["events"].as_array().unwrap().iter().skip(1).all(|e| e["runId"] == run_id.as_str()), "{page}");

    let o = oc.run(&["audit"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("TIME\tKIND\tDIRECTION\tCHANNEL\tSTATUS\tAGENT\tRUN\tACTION"), "{}", out(&o));
    assert!(text.contains("tool_action") && text.contains("tool.action.finished:write"), "{}", out(&o));
    assert!(text.contains("message\toutbound\tinbox\tsucceeded"), "{}", out(&o));

    let o = oc.run(&["audit", "--kind", "tool_action", "--run", &run_id, "--limit", "1", "--json"], &env);
    let one = json_out(&o);
    assert_eq!(one["events"][0]["action"], "tool.action.finished", "{}", out(&o));
    let cursor = one["nextCursor"].as_str().unwrap().to_string();
    let o = oc.run(&["audit", "--kind", "tool_action", "--cursor", &cursor, "--json"], &env);
    assert_eq!(json_out(&o)["events"][0]["action"], "tool.action.started", "{}", out(&o));
    let o = oc.run(&["audit", "--kind", "message", "--direction", "outbound", "--json"], &env);
    let sent = json_out(&o);
    assert_eq!(sent["events"].as_array().unwrap().len(), 1, "{}", out(&o));
    assert!(!sent.to_string().contains("Interop brief filed."), "metadata only: {}", out(&o));

    let o = oc.run(&["audit", "--explain", "--run", &run_id], &env);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains(&format!("Run {run_id}: known (unsupported)")), "{}", out(&o));
    let o = oc.run(&["audit", "--explain", "--run", "no-such-run", "--json"], &env);
    assert!(o.status.success(), "{}", out(&o));
    let unknown = json_out(&o);
    assert_eq!(
        (unknown["run"]["status"].as_str(), unknown["identity"]["reasonCode"].as_str()),
        (Some("unknown"), Some("run_not_found")),
        "{}",
        out(&o)
    );
}
