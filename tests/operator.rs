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
    ok(&pincer(&gw, &["cron", "add", "--name", "other", "--every", "1h", "--message", "x", "--model", "local/llama3.2"]).await);
    // `edit` checks a changed model the same way; other edits of the job go through.
    let said = failed(&pincer(&gw, &["cron", "edit", "brief", "--model", "openai/nope"]).await);
    assert!(said.contains("the configured models are"), "{said}");
    ok(&pincer(&gw, &["cron", "edit", "brief", "--description", "morning"]).await);
    let job: Value = serde_json::from_str(&ok(&pincer(&gw, &["cron", "get", "brief", "--json"]).await)).unwrap();
    assert_eq!(job["payload"]["model"], "openai/gpt-4o-mini", "{job}");
    gw.stop().await;
}
