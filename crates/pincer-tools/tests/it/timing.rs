//! Timings, run by hand (`cargo nextest run -p pincer-tools --run-ignored only -E 'test(/timing/)'
//! --no-capture`): the registry's per-call overhead and an MCP stdio round trip.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use pincer_core::SystemClock;
use pincer_tools::tool::BoxFuture;
use pincer_tools::{
    McpServers, McpStatus, Tool, ToolContext, ToolError, ToolOutput, ToolPolicy, ToolSet, ToolSpec, Toolbox,
};
use serde_json::{Value, json};

struct Noop(ToolSpec);
impl Tool for Noop {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call<'a>(&'a self, _args: Value, _ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async { Ok(ToolOutput::text("ok")) })
    }
}

fn median_us(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run by hand"]
async fn timing_registry_call_and_mcp_stdio_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let clock = SystemClock::shared();
    let ctx = ToolContext::new(dir.path(), clock.clone(), 60_000);
    let set = ToolSet::of([Arc::new(Noop(ToolSpec {
        name: "noop".into(),
        description: String::new(),
        parameters: json!({"type":"object"}),
    })) as Arc<dyn Tool>]);
    let mut samples = Vec::new();
    for _ in 0..5_000 {
        let t = Instant::now();
        set.call("noop", r#"{"a":1,"b":"two"}"#, &ctx).await.unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (p50, p99) = median_us(samples);
    println!(
        "TIMING ToolSet::call overhead (no-op tool, JSON args parsed, task spawned): p50 {p50:.1} µs, p99 {p99:.1} µs"
    );

    let config = pincer_tools::McpServerConfig {
        command: Some(super::mcp::test_server_binary().display().to_string()),
        ..Default::default()
    };
    let servers =
        McpServers::start(&pincer_tools::McpConfig { servers: BTreeMap::from([("s".into(), config)]) }, clock.clone());
    let mut rx = servers.subscribe("s").unwrap();
    rx.wait_for(|s| s.status == McpStatus::Ready).await.unwrap();
    let set = Toolbox::new(ToolPolicy::default()).with_mcp(servers.clone()).for_turn(&[]);
    let mut samples = Vec::new();
    for _ in 0..1_000 {
        let t = Instant::now();
        set.call("s__echo", r#"{"text":"ping"}"#, &ctx).await.unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (p50, p99) = median_us(samples);
    println!("TIMING MCP stdio round trip (echo via rmcp, through ToolSet::call): p50 {p50:.1} µs, p99 {p99:.1} µs");
    servers.shutdown();
}
