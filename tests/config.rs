//! The configuration of a running gateway: edits applied without a restart (file watch, `SIGHUP`,
//! `pincer config reload`), refused edits that keep the running configuration, keys that wait
//! for a restart; `pincer config get|set|validate`; `config.get`/`config.schema` without secrets.

use std::process::Output;
use std::time::{Duration, Instant};

use pincer_testkit::fakes::telegram::FakeTelegram;
use pincer_testkit::process::GatewayProcess;
use serde_json::{Value, json};

use crate::support::{TOKEN, TestGateway, pincer_bin};

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

/// `health --json`'s `pincer.config` once `done` holds for it (the watch looks every second).
fn wait_config(gw: &GatewayProcess, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = gw.cli(&["health", "--json"]);
        let health: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let config = health["pincer"]["config"].clone();
        if done(&config) {
            return config;
        }
        assert!(Instant::now() < deadline, "{what}: health says {config}\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(gw: &GatewayProcess, config: &Value) {
    std::fs::write(gw.state_dir.join("pincer.json"), serde_json::to_string_pretty(config).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_config_applies_to_the_running_gateway_and_a_bad_edit_is_refused() {
    let telegram = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let gw = GatewayProcess::start(&pincer_bin(), &state, json!({})).unwrap();
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(state.join("pincer.json")).unwrap()).unwrap();
    let add = [
        "cron",
        "add",
        "--name",
        "disk",
        "--every",
        "1h",
        "--command",
        "echo 42% used",
        "--announce",
        "--channel",
        "telegram",
        "--to",
        "123456789",
    ];
    assert!(failed(&gw.cli(&add)).contains("add channels.telegram to the config"));

    // The file gains channels.telegram: the watch applies it, no restart.
    config["channels"] = json!({ "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": telegram.base_url() } });
    write_config(&gw, &config);
    let status = wait_config(&gw, "the telegram edit", |c| c["reloads"] == 1);
    assert_eq!(status["restartNeeded"], json!([]), "{status}");
    ok(&gw.cli(&add));
    ok(&gw.cli(&["cron", "run", "disk", "--wait", "--poll-interval", "100ms", "--wait-timeout", "30s"]));
    let sent = telegram.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(sent[0].text.contains("42% used"), "{sent:?}");

    // An invalid edit is refused with its reason; the running configuration stays.
    let mut bad = config.clone();
    bad["delivery"] = json!({ "maxAttempts": 0 });
    bad["channels"]["telegram"]["apiRoot"] = json!("http://127.0.0.1:9");
    write_config(&gw, &bad);
    let status = wait_config(&gw, "the refused edit", |c| c["lastError"].is_string());
    assert_eq!(
        status["lastError"],
        "config ".to_string()
            + &format!("{}: delivery.maxAttempts: must be at least 1", state.join("pincer.json").display())
    );
    assert_eq!(status["reloads"], 1, "{status}");
    let doctor = String::from_utf8_lossy(&gw.cli(&["doctor"]).stdout).into_owned();
    assert!(doctor.contains("was refused") && doctor.contains("delivery.maxAttempts: must be at least 1"), "{doctor}");
    assert!(gw.log().contains("config reload refused"), "logged");
    ok(&gw.cli(&["message", "send", "--channel", "telegram", "--to", "123456789", "--message", "still here"]));
    telegram.wait_for_messages(2, Duration::from_secs(10)).await;
    let refused = failed(&gw.cli(&["config", "reload"]));
    assert!(refused.contains("config reload refused") && refused.contains("delivery.maxAttempts"), "{refused}");

    // A key that needs a restart is reported, not applied; SIGHUP rereads the file as well.
    let mut moved = config.clone();
    moved["gateway"]["port"] = json!(pincer_testkit::process::free_port());
    moved["delivery"] = json!({ "maxAttempts": 3 });
    write_config(&gw, &moved);
    unsafe {
        libc::kill(gw.child.id() as i32, libc::SIGHUP);
    }
    let status = wait_config(&gw, "the port edit", |c| c["reloads"] == 2);
    assert_eq!(status["restartNeeded"], json!(["gateway.port"]), "{status}");
    assert!(status.get("lastError").is_none(), "an accepted edit clears the refusal: {status}");
    let again = ok(&gw.cli(&["config", "reload"]));
    assert!(again.contains("Waiting for a restart: gateway.port"), "{again}");
    let doctor = ok(&gw.cli(&["doctor"]));
    assert!(doctor.contains("changed keys that need a restart: gateway.port"), "{doctor}");
    assert!(gw.log().contains("SIGHUP: rereading the config file"), "{}", gw.log());
}

/// The watch looks at the file on the injected clock: nothing happens until it advances.
#[tokio::test]
async fn the_config_watch_runs_on_the_injected_clock() {
    let telegram = FakeTelegram::start().await;
    let gw = TestGateway::start().await;
    let state = gw.gateway.as_ref().unwrap().state.clone();
    let text = format!(
        "{{ gateway: {{ auth: {{ token: '{TOKEN}' }} }}, channels: {{ telegram: {{ botToken: '{}', apiRoot: '{}' }} }} }}",
        FakeTelegram::TOKEN,
        telegram.base_url()
    );
    std::fs::write(&gw.paths.config_path, text).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state.config.status().reloads, 0, "reloaded before the clock moved");
    assert!(state.outbox.channel("telegram").is_none());
    gw.clock.advance(pincer_gateway::reload::WATCH_EVERY_MS);
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.config.status().reloads == 0 {
        assert!(Instant::now() < deadline, "no reload: {:?}", state.config.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(state.outbox.channel("telegram").is_some(), "the reload built the channel");
    gw.stop().await;
}

fn pincer_in(state: &std::path::Path, args: &[&str]) -> Output {
    std::process::Command::new(pincer_bin())
        .args(args)
        .env_clear()
        .env("PINCER_STATE_DIR", state)
        .env("TG_TOKEN", "123:from-env")
        .output()
        .unwrap()
}

#[test]
fn config_get_set_validate_with_the_gateways_checks() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let file = state.join("pincer.json");
    std::fs::write(&file, "// my notes\n{ gateway: { auth: { token: 'gw-secret-short' } } }\n").unwrap();

    ok(&pincer_in(state, &["config", "set", "channels.telegram.botToken", "123:abc-secret"]));
    ok(&pincer_in(state, &["config", "set", "delivery.maxAttempts", "3"]));
    ok(&pincer_in(
        state,
        &[
            "config",
            "set",
            "models.providers",
            "{local: {api: 'openai-completions', baseUrl: 'http://127.0.0.1:1/v1', apiKey: '${TG_TOKEN}'}}",
        ],
    ));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("// my notes\n"), "the leading comment is kept: {text}");
    assert!(text.contains("gw-secret-short") && text.contains("${TG_TOKEN}"), "{text}");

    let all = ok(&pincer_in(state, &["config", "get"]));
    for secret in ["123:abc-secret", "gw-secret", "123:from-env"] {
        assert!(!all.contains(secret), "{secret} shown: {all}");
    }
    assert_eq!(ok(&pincer_in(state, &["config", "get", "delivery.maxAttempts"])).trim(), "3");
    assert_eq!(ok(&pincer_in(state, &["config", "get", "channels.telegram.botToken"])).trim(), "__OPENCLAW_REDACTED__");
    assert_eq!(
        ok(&pincer_in(state, &["config", "get", "channels.telegram.botToken", "--show-secrets"])).trim(),
        "123:abc-secret"
    );
    let missing = failed(&pincer_in(state, &["config", "get", "channels.slack"]));
    assert!(missing.contains("channels.slack is not set"), "{missing}");

    // Refused as the gateway would refuse it; the file is untouched.
    let before = std::fs::read_to_string(&file).unwrap();
    let cases = [
        (vec!["config", "set", "delivery.maxAttempts", "0"], "delivery.maxAttempts: must be at least 1"),
        (vec!["config", "set", "gateway.bind", "lan", "--json"], "weak gateway.auth.token"),
        (vec!["config", "set", "channels.telegram.bogus", "1"], "unknown field `bogus`"),
        (vec!["config", "set", "agents.defaults.timezone", "Mars/Olympus"], "unknown time zone"),
    ];
    for (args, says) in cases {
        let out = pincer_in(state, &args);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(said.contains("is unchanged") && said.contains(says), "{args:?}: {said}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    ok(&pincer_in(state, &["config", "validate"]));
    std::fs::write(&file, "{ cron: { maxConcurrentRuns: 0 } }").unwrap();
    let invalid = failed(&pincer_in(state, &["config", "validate"]));
    assert!(invalid.contains("cron.maxConcurrentRuns: must be at least 1"), "{invalid}");
}

#[tokio::test]
async fn config_get_and_schema_over_the_protocol_hold_no_secret() {
    let gw = TestGateway::start_with("{ cron: { webhookToken: 'wh-secret-1' } }").await;
    std::fs::write(
        &gw.paths.config_path,
        format!("{{ gateway: {{ auth: {{ token: '{TOKEN}' }} }}, channels: {{ telegram: {{ botToken: 'tg-secret-1' }} }}, cron: {{ webhookToken: 'wh-secret-1' }} }}"),
    )
    .unwrap();
    let mut c = gw.client(&["operator.read"]).await;
    let snap = c.call("config.get", json!({})).await.unwrap();
    let text = snap.to_string();
    for secret in [TOKEN, "tg-secret-1", "wh-secret-1"] {
        assert!(!text.contains(secret), "{secret} left the gateway: {text}");
    }
    assert_eq!(snap["valid"], true, "{snap}");
    assert_eq!(snap["exists"], true);
    assert!(snap["raw"].as_str().unwrap().contains("__OPENCLAW_REDACTED__"), "{snap}");
    assert_eq!(snap["hash"].as_str().unwrap().len(), 64);
    for key in ["path", "parsed", "resolved", "config", "issues", "warnings", "legacyIssues"] {
        assert!(snap.get(key).is_some(), "no {key}: {snap}");
    }
    let schema = c.call("config.schema", json!({})).await.unwrap();
    assert!(schema["schema"]["properties"]["channels"].is_object(), "{schema}");
    assert_eq!(schema["uiHints"]["channels.telegram.botToken"]["sensitive"], true);
    // Reading needs operator.read; reloading needs operator.admin.
    let res = c.request("config.reload", json!({})).await.unwrap();
    assert_eq!(res["ok"], false, "{res}");
    assert!(res["error"]["message"].as_str().unwrap().contains("operator.admin"), "{res}");
    let res = c.request("config.get", json!({ "path": "x" })).await.unwrap();
    assert_eq!(res["ok"], false, "unknown params are refused: {res}");
    gw.stop().await;
}

#[test]
fn usage_errors_under_json_are_json_with_exit_2() {
    for args in [
        vec!["cron", "add", "--bogus", "--json"],
        vec!["--json", "nope"],
        vec!["cron", "runs", "job", "--limit", "x", "--json"],
    ] {
        let out = std::process::Command::new(pincer_bin()).args(&args).env_clear().output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let answer: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(answer["ok"], false);
        assert_eq!(answer["error"]["code"], "USAGE", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(!message.contains('\u{1b}') && !message.contains('\n'), "{message:?}");
        assert!(message.contains("pincer --help"), "{message}");
    }
    // Without --json, clap's own text on stderr, exit 2.
    let out = std::process::Command::new(pincer_bin()).args(["cron", "add", "--bogus"]).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
