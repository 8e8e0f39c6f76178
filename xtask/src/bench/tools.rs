//! Tool-loop overhead per step, excluding the tool itself: a fake OpenAI-compatible model on
//! 127.0.0.1 answers one `agent` call with `steps` rounds of a `read` call before its text (then
//! the same with `write`, whose step fsyncs its open call before the tool runs). For each
//! step, the time from the model's last byte of a tool-calling reply to the first byte of the next
//! request, minus the tool's own duration (the `durationMs` its result recorded), is what the
//! gateway spent: parsing the calls, committing the assistant message and open calls, running the
//! call through the policy and `ToolSet::call`, committing the result, and building the next
//! request. OpenClaw is not measured here (its tool loop cannot be driven by this fake yet).

use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::json;

use super::gateway::{TOKEN, start_pincer};
use super::{Bench, Row, percentile};

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let rt = Bench::runtime();
    let fake = rt.block_on(FakeOpenAi::start());
    let (mut turns, steps) = if b.quick { (3, 10) } else { (10, 20) };
    // More turns for a profiler attached to the gateway (`perf record -p`, `strace -p`).
    if let Some(n) = std::env::var("PINCER_BENCH_TOOL_TURNS").ok().and_then(|n| n.parse().ok()) {
        turns = n;
    }
    eprintln!("bench: tool loop, {turns} turns of {steps} read calls against a fake model server");
    let state = b.dir("p-tools");
    std::fs::create_dir_all(state.join("workspace"))?;
    std::fs::write(state.join("workspace/notes.txt"), "buy milk")?;
    let models = json!({ "providers": { "fake": { "api": "openai-completions", "baseUrl": fake.base_url(),
        "apiKey": "sk-bench", "models": [{ "id": "gpt-4o" }] } } });
    let defaults = json!({ "defaults": { "model": { "primary": "fake/gpt-4o" } } });
    let p = start_pincer(&b.pincer, &state, json!({ "models": models, "agents": defaults }))?;
    let call = ("read", json!({"path": "notes.txt"}));
    let (overhead, _) = steps_of(&rt, &fake, &p, turns, steps, &call)?;
    // A tool with effects: its step's open call is fsynced before it runs (a read-only step's is
    // not), so that a power loss can never make it run twice.
    eprintln!("bench: tool loop, {turns} turns of {steps} write calls");
    let call = ("write", json!({"path": "out.txt", "content": "buy milk"}));
    let (write_overhead, _) = steps_of(&rt, &fake, &p, turns, steps, &call)?;
    drop(p);
    let n = overhead.len();
    eprintln!("bench: tool loop: {n} steps measured");
    b.rows.push(
        Row::new("Tool loop", format!("Overhead per step excluding the tool, p50 ({n} steps)"), "ms")
            .pincer(percentile(overhead.clone(), 50.0))
            .target("< 1 ms")
            .note("not measured: OpenClaw's tool loop is not driven by the fake model"),
    );
    b.rows.push(
        Row::new("Tool loop", "Overhead per step excluding the tool, p99", "ms")
            .pincer(percentile(overhead, 99.0))
            .note("not measured: OpenClaw's tool loop is not driven by the fake model"),
    );
    let n = write_overhead.len();
    b.rows.push(
        Row::new("Tool loop", format!("… with `write` calls (an fsync before each), p50 ({n} steps)"), "ms")
            .pincer(percentile(write_overhead.clone(), 50.0))
            .note("not measured: OpenClaw's tool loop is not driven by the fake model"),
    );
    b.rows.push(
        Row::new("Tool loop", "… with `write` calls, p99", "ms")
            .pincer(percentile(write_overhead, 99.0))
            .note("not measured: OpenClaw's tool loop is not driven by the fake model"),
    );

    // An MCP tool over stdio: the test server of pincer-tools (`echo`), started once by the
    // gateway; the round trip is the call's recorded `durationMs` (request written to the
    // server's stdin to its answer parsed), through the same loop.
    eprintln!("bench: MCP stdio round trip, {turns} turns of {steps} `echo` calls");
    let server = mcp_test_server(&b.pincer)?;
    let state = b.dir("p-tools-mcp");
    let p = start_pincer(
        &b.pincer,
        &state,
        json!({ "models": models, "agents": defaults,
                "mcp": { "servers": { "srv": { "command": server.display().to_string() } } } }),
    )?;
    let call = ("srv__echo", json!({"text": "hi"}));
    let (_, round_trips) = steps_of(&rt, &fake, &p, turns, steps, &call)?;
    drop(p);
    let n = round_trips.len();
    b.rows.push(
        Row::new("Tool loop", format!("MCP stdio call round trip, p50 ({n} calls)"), "ms")
            .pincer(percentile(round_trips.clone(), 50.0))
            .note("not measured: OpenClaw's tool loop is not driven by the fake model"),
    );
    b.rows.push(
        Row::new("Tool loop", "MCP stdio call round trip, p99", "ms")
            .pincer(percentile(round_trips, 99.0))
            .note("not measured: OpenClaw's tool loop is not driven by the fake model"),
    );
    Ok(())
}

/// Runs `turns` agent turns of `steps` calls of `call` each; returns the gateway's overhead per
/// step (the gap between a tool-calling reply's last byte and the next request's first, minus the
/// tool's recorded duration) and the tools' recorded durations.
fn steps_of(
    rt: &tokio::runtime::Runtime,
    fake: &FakeOpenAi,
    p: &super::gateway::Gateway,
    turns: usize,
    steps: usize,
    call: &(&str, serde_json::Value),
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut overhead, mut durations) = (Vec::new(), Vec::new());
    for turn in 0..turns {
        let before = fake.requests().len();
        let before_done = fake.finished_unix_us().len();
        for _ in 0..steps {
            fake.push(Reply::tool_call(call.0, call.1.clone()));
        }
        fake.push(Reply::text("done"));
        let session = format!("session:bench-{}-{turn}", call.0);
        let tool_ms: Vec<f64> = rt.block_on(async {
            let mut c = RawClient::connect(&p.url(), cli_connect_params(Some(TOKEN), &["operator.admin"])).await?.0;
            c.call("agent", json!({"message": "call it again and again", "sessionKey": session})).await?;
            let history = c.call("chat.history", json!({"sessionKey": session, "limit": 1000})).await?;
            let results: Vec<serde_json::Value> = history["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m["role"] == "toolResult")
                .collect();
            if let Some(bad) = results.iter().find(|m| m["isError"] == true) {
                anyhow::bail!("the {} call failed: {bad}", call.0);
            }
            anyhow::Ok(results.iter().map(|m| m["durationMs"].as_f64().unwrap_or(0.0)).collect())
        })?;
        let requests = fake.requests();
        let done = fake.finished_unix_us();
        anyhow::ensure!(tool_ms.len() == steps, "turn {turn}: {} tool results, expected {steps}", tool_ms.len());
        for (k, tool) in tool_ms.iter().enumerate() {
            durations.push(*tool);
            let (Some(finished), Some(next)) = (done.get(before_done + k), requests.get(before + k + 1)) else {
                continue;
            };
            let gap_ms = (next.at_unix_us as f64 - *finished as f64) / 1000.0;
            overhead.push(gap_ms - tool);
        }
    }
    Ok((overhead, durations))
}

/// pincer-tools' stdio MCP test server, built in this workspace in the profile of the measured
/// `pincer` binary (a binary in a `debug` directory gets a debug server and one in `profiling` a
/// `--profile profiling` one, so no release build is made; a copy set aside anywhere else, e.g.
/// `/tmp/pincer-copy`, gets a release one).
fn mcp_test_server(pincer: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = pincer.parent().and_then(|d| d.file_name()).and_then(|name| name.to_str()).unwrap_or("");
    let profile = match dir {
        "debug" | "profiling" => dir,
        _ => "release",
    };
    let root = crate::repo_root();
    let mut args = vec!["build", "-q", "-p", "pincer-tools", "--example", "mcp_test_server"];
    match profile {
        "debug" => {}
        "release" => args.push("--release"),
        other => args.extend(["--profile", other]),
    }
    let status = std::process::Command::new("cargo").args(&args).current_dir(&root).status()?;
    anyhow::ensure!(status.success(), "building the MCP test server failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root.join("target"));
    Ok(target.join(profile).join("examples/mcp_test_server"))
}
