//! The operator's side of the CLI against a running gateway, continued from `ops.rs`: jobs
//! refused when their model is not configured, `doctor` with the gateway down, names for sessions
//! and devices, the audit log without a row per CLI call, and `pincer setup`.

use std::process::Output;

use serde_json::Value;

use crate::support::{TOKEN, TestGateway, pincer_bin};

/// `pincer <args> --url … --token …`.
async fn pincer(gw: &TestGateway, args: &[&str]) -> Output {
    tokio::process::Command::new(pincer_bin())
        .args(args)
        .args(["--url", &gw.url(), "--token", TOKEN])
        .env_clear()
        .output()
        .await
        .unwrap()
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    stdout.into_owned()
}

fn failed(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "succeeded\nstdout: {stdout}\nstderr: {stderr}");
    stderr.into_owned()
}

#[tokio::test]
async fn cron_add_refuses_a_model_that_is_not_configured_and_lists_those_that_are() {
    let gw = TestGateway::start_with(
        "{ models: { providers: {
             openai: { api: 'openai-completions', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-test', models: [{ id: 'gpt-4o' }, { id: 'gpt-4o-mini' }] },
             local: { api: 'openai-completions', baseUrl: 'http://127.0.0.1:9/v1' } } },
           agents: { defaults: { model: { primary: 'openai/gpt-4o' } } } }",
    )
    .await;
    let add = ["cron", "add", "--name", "brief", "--every", "1h", "--message", "Summarise"];
    for model in ["openai/gpt-5", "anthropic/claude"] {
        let said = failed(&pincer(&gw, &[&add[..], &["--model", model]].concat()).await);
        assert!(said.contains("this job's model would fail on every run"), "{said}");
        assert!(said.contains(model), "{said}");
        assert!(said.contains("the configured models are local/*, openai/gpt-4o, openai/gpt-4o-mini"), "{said}");
    }
    ok(&pincer(&gw, &[&add[..], &["--model", "openai/gpt-4o-mini"]].concat()).await);
    ok(&pincer(
        &gw,
        &["cron", "add", "--name", "other", "--every", "1h", "--message", "x", "--model", "local/llama3.2"],
    )
    .await);
    // `edit` checks a changed model the same way; other edits of the job go through.
    let said = failed(&pincer(&gw, &["cron", "edit", "brief", "--model", "openai/nope"]).await);
    assert!(said.contains("the configured models are"), "{said}");
    ok(&pincer(&gw, &["cron", "edit", "brief", "--description", "morning"]).await);
    let job: Value = serde_json::from_str(&ok(&pincer(&gw, &["cron", "get", "brief", "--json"]).await)).unwrap();
    assert_eq!(job["payload"]["model"], "openai/gpt-4o-mini", "{job}");
    gw.stop().await;
}

#[tokio::test]
async fn sessions_and_devices_are_named_by_key_prefix_or_name_like_jobs() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let fake = FakeOpenAi::start().await;
    for _ in 0..3 {
        fake.push(Reply::text("Hello."));
    }
    let gw = TestGateway::start_with(&format!(
        "{{ models: {{ providers: {{ openai: {{ api: 'openai-completions', baseUrl: '{}', apiKey: 'sk-test', models: [{{ id: 'gpt-4o' }}] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'openai/gpt-4o' }} }} }},
           gateway: {{ pairing: {{ autoApproveLocal: false }} }} }}",
        fake.base_url()
    ))
    .await;
    for session in ["session:research", "session:recipes"] {
        ok(&pincer(&gw, &["agent", "--message", "hi", "--session", session]).await);
    }
    // By its own name, and by a unique prefix of its key.
    let shown = ok(&pincer(&gw, &["sessions", "show", "research"]).await);
    assert!(shown.contains("agent:main:session:research"), "{shown}");
    let shown = ok(&pincer(&gw, &["sessions", "show", "agent:main:session:reci"]).await);
    assert!(shown.contains("agent:main:session:recipes"), "{shown}");
    let said = failed(&pincer(&gw, &["sessions", "show", "agent:main:session:re"]).await);
    assert!(
        said.contains("`agent:main:session:re` matches 2 sessions") && said.contains("give more of the id"),
        "{said}"
    );
    let said = failed(&pincer(&gw, &["sessions", "show", "nope"]).await);
    assert_eq!(
        said.trim(),
        "error: no session matches `nope` (by id, unique id prefix or name): see `pincer sessions list`"
    );

    // A paired device by its label, or a prefix of its id.
    let url = gw.url();
    let request = crate::devices::pending_request(&url, TOKEN, 31).await;
    ok(&pincer(&gw, &["devices", "approve", &request[..8]]).await);
    let list: Value = serde_json::from_str(&ok(&pincer(&gw, &["devices", "list", "--json"]).await)).unwrap();
    let device = list["paired"][0]["deviceId"].as_str().unwrap().to_string();
    ok(&pincer(&gw, &["devices", "rename", &device[..10], "desk"]).await);
    let rotated = ok(&pincer(&gw, &["devices", "rotate", "desk", "--role", "operator"]).await);
    assert!(rotated.contains(&device[..12]), "{rotated}");
    ok(&pincer(&gw, &["devices", "revoke", "desk", "--role", "operator"]).await);
    let said = failed(&pincer(&gw, &["devices", "revoke", "laptop", "--role", "operator"]).await);
    assert_eq!(
        said.trim(),
        "error: no paired device matches `laptop` (by id, unique id prefix or name): see `pincer devices list`"
    );
    gw.stop().await;
}

#[test]
fn doctor_with_the_gateway_down_checks_what_it_can_and_says_how_to_start_it() {
    use pincer_testkit::process::GatewayProcess;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config =
        serde_json::json!({ "channels": { "telegram": { "botToken": "123:abc", "apiRoot": "http://127.0.0.1:9" } } });
    let mut gw = GatewayProcess::start(&pincer_bin(), &state, config).unwrap();
    ok(&gw.cli(&["cron", "add", "--name", "x", "--every", "1h", "--system-event", "tick", "--session", "main"]));
    assert!(gw.terminate().unwrap().0.success());

    let out = gw.cli(&["doctor"]);
    let said = ok(&out);
    for line in [
        "WARN  gateway          no gateway is running for state dir",
        "fix: start it with `pincer gateway`",
        "ok    config           ",
        "is valid",
        "ok    database         ",
        "passed its integrity check",
        &format!("ok    port             127.0.0.1:{} is free", gw.port),
        "ok    channel.telegram channels.telegram.botToken is set",
    ] {
        assert!(said.contains(line), "no `{line}` in:\n{said}");
    }
    let report: Value = serde_json::from_str(&ok(&gw.cli(&["doctor", "--json"]))).unwrap();
    assert_eq!((report["ok"].clone(), report["gatewayRunning"].clone()), (true.into(), false.into()), "{report}");

    // The port taken by another program, and a config that does not check: both fail, exit 1.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", gw.port)).unwrap();
    let said = failed(&gw.cli(&["doctor"]));
    assert!(said.is_empty(), "{said}");
    let out = gw.cli(&["doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("FAIL  port             127.0.0.1:{} is taken", gw.port)), "{said}");
    drop(squatter);
    std::fs::write(state.join("pincer.json"), "{ cron: { maxConcurrentRuns: 0 } }").unwrap();
    let out = gw.cli(&["doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("FAIL  config") && said.contains("cron.maxConcurrentRuns: must be at least 1"), "{said}");
}

#[tokio::test]
async fn routine_cli_connects_do_not_flood_the_audit_log() {
    let gw = TestGateway::start().await;
    let succeeded = |audit: &Value| -> Vec<Value> {
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "gateway.auth.succeeded")
            .cloned()
            .collect()
    };
    let audit = || async {
        let out = pincer(&gw, &["audit", "--limit", "200", "--json"]).await;
        serde_json::from_str::<Value>(&ok(&out)).unwrap()
    };
    for _ in 0..5 {
        ok(&pincer(&gw, &["cron", "list"]).await);
    }
    // A failure is always written.
    let out = tokio::process::Command::new(pincer_bin())
        .args(["cron", "list", "--url", &gw.url(), "--token", "wrong-token-0123456789"])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let log = audit().await;
    // Five `cron list` (operator.read) and one `audit` (operator.admin): one row each, the first.
    let rows = succeeded(&log);
    assert_eq!(rows.len(), 2, "{log}");
    assert!(rows.iter().all(|r| r["detail"].get("repeats").is_none()), "{log}");
    assert!(log["entries"].as_array().unwrap().iter().any(|e| e["action"] == "gateway.auth.failed"), "{log}");
    for _ in 0..3 {
        ok(&pincer(&gw, &["cron", "list"]).await);
    }
    assert_eq!(succeeded(&audit().await).len(), 2, "routine repeats are counted, not written");
    // An hour on: the next success is written again, with the count of those that were not.
    gw.clock.advance(3_600_000); // pincer_auth::audit::SUCCESS_QUIET_MS
    ok(&pincer(&gw, &["cron", "list"]).await);
    let log = audit().await;
    let rows = succeeded(&log);
    assert_eq!(rows.len(), 4, "{log}");
    let read = rows.iter().find(|r| r["detail"]["scopes"] == serde_json::json!(["operator.read"])).unwrap();
    assert_eq!(read["detail"]["repeats"], 7, "newest first: {log}");
    // Other scopes are another client: written at once.
    let mut c = gw.client(&["operator.write"]).await;
    c.call("health", serde_json::json!({})).await.unwrap();
    assert_eq!(succeeded(&audit().await).len(), 5);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_writes_a_checked_config_after_trying_each_credential() {
    use pincer_testkit::fakes::openai::FakeOpenAi;
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let (model, telegram) = (FakeOpenAi::start().await, FakeTelegram::start().await);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let setup = |tg_token: &str, extra: &[&str]| {
        let mut cmd = std::process::Command::new(pincer_bin());
        cmd.args(["setup", "--non-interactive", "--model-provider", "openai", "--model-base-url", &model.base_url()])
            .args(["--api-key-env", "OPENAI_KEY", "--channel", "telegram", "--telegram-token-env", "TG_TOKEN"])
            .args(["--channel-base-url", &telegram.base_url(), "--to", "123456789"])
            .args(extra)
            .env_clear()
            .env("PINCER_STATE_DIR", &state)
            .env("OPENAI_KEY", "sk-test")
            .env("TG_TOKEN", tg_token);
        cmd.output().unwrap()
    };
    // A token the channel refuses: nothing is written.
    let said = failed(&setup("123:wrong", &[]));
    assert!(said.contains("telegram refused the token (HTTP 401)"), "{said}");
    assert!(!state.join("pincer.json").exists());

    let said = ok(&setup(FakeTelegram::TOKEN, &[]));
    assert!(said.contains("channel telegram: the token works (bot pincer_fake_bot)"), "{said}");
    assert!(said.contains("Start the gateway:  pincer gateway"), "{said}");
    assert!(said.contains("--announce --channel telegram --to 123456789"), "{said}");
    let text = std::fs::read_to_string(state.join("pincer.json")).unwrap();
    assert!(text.contains("${TG_TOKEN}") && text.contains("${OPENAI_KEY}"), "{text}");
    assert!(
        !text.contains(FakeTelegram::TOKEN) && !text.contains("sk-test"),
        "secrets stay in the environment: {text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(state.join("pincer.json")).unwrap().permissions().mode() & 0o777, 0o600);

    // Not over an existing config without --force.
    let said = failed(&setup(FakeTelegram::TOKEN, &[]));
    assert!(said.contains("exists already") && said.contains("--force"), "{said}");
    ok(&setup(FakeTelegram::TOKEN, &["--force"]));

    // What it wrote passes the gateway's own checks.
    let out = std::process::Command::new(pincer_bin())
        .args(["config", "validate"])
        .env_clear()
        .env("PINCER_STATE_DIR", &state)
        .env("OPENAI_KEY", "sk-test")
        .env("TG_TOKEN", FakeTelegram::TOKEN)
        .output()
        .unwrap();
    ok(&out);
}
