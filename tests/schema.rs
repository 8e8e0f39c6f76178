//! The wire schema against the live gateway: every implemented method is called through a script
//! that reaches its answers' shapes (a job of each payload kind, a delivered, a pending, a
//! cancelled and a retried delivery, an agent turn, a pairing from request to removal), and each
//! answer must
//! - have the same shape as the answer the gateway gave before the schema was typed
//!   (`crates/pincer-protocol/answers/<method>.json`: the same field names, the same
//!   optional fields left out, the same JSON number kinds), and
//! - round-trip through the method's result type in `pincer_protocol::schema` without losing or
//!   changing a field.
//!
//! `PINCER_SCHEMA_CAPTURE=1` rewrites the captured answers from this run instead of comparing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use pincer_testkit::fakes::discord::{self, FakeDiscord};
use pincer_testkit::fakes::openai::{FakeOpenAi, FakeUsage, Reply};
use pincer_testkit::ws::RawClient;
use serde_json::{Value, json};

use crate::support::{TOKEN, TestGateway, wait_runs};

fn captured_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pincer-protocol/answers")
}

/// Where each JSON value sits (`.jobs[].state.nextRunAtMs`, `.deliveryPreviews.<id>.label`) and which kinds it took there.
type Shape = BTreeMap<String, BTreeSet<&'static str>>;

fn shape_into(v: &Value, path: String, out: &mut Shape) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(a) => {
            for item in a {
                shape_into(item, format!("{path}[]"), out);
            }
            "array"
        }
        Value::Object(o) => {
            for (k, item) in o {
                // Maps keyed by job id (`deliveryPreviews`) have one shape whatever the ids.
                let k = if uuid::Uuid::parse_str(k).is_ok() { "<id>" } else { k };
                shape_into(item, format!("{path}.{k}"), out);
            }
            "object"
        }
    };
    out.entry(path).or_default().insert(kind);
}

fn shape(samples: &[Value]) -> Shape {
    let mut out = Shape::new();
    for s in samples {
        shape_into(s, String::new(), &mut out);
    }
    out
}

/// Answers collected per method.
#[derive(Default)]
struct Answers(BTreeMap<String, Vec<Value>>);

impl Answers {
    async fn call(&mut self, c: &mut RawClient, method: &str, params: Value) -> Value {
        let res = c.call(method, params.clone()).await.unwrap_or_else(|e| panic!("{method} {params}: {e}"));
        self.0.entry(method.to_string()).or_default().push(res.clone());
        res
    }
}

/// Polls `deliveries.get` (not recorded) until the delivery is `state` with `attempts` attempts.
async fn wait_delivery(c: &mut RawClient, id: &str, state: &str, attempts: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = c.call("deliveries.get", json!({"id": id})).await.unwrap();
        if d["delivery"]["state"] == state && d["attempts"].as_array().map_or(0, Vec::len) >= attempts {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "delivery {id} never became {state}: {d}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until Discord's inbound side (no gateway attached to the fake, so its URL lookup fails)
/// is in `backoff`: between retries it is `connecting`, without `nextAttemptAtMs`, and the
/// captured shapes of `health` and `channels.status` would depend on when they were asked.
async fn discord_in_backoff(c: &mut RawClient) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.call("health", json!({})).await.unwrap()["channels"]["discord"]["inbound"]["state"] != "backoff" {
        assert!(std::time::Instant::now() < deadline, "Discord's inbound side never reached backoff");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the script; returns every answer by method.
async fn script() -> (Answers, Vec<String>) {
    let discord = FakeDiscord::start().await;
    let fake = FakeOpenAi::start().await;
    let gw = TestGateway::start_with(&format!(
        "{{ channels: {{ discord: {{ token: '{}', apiBaseUrl: '{}' }} }}, delivery: {{ requestTimeoutMs: 1000 }},
           models: {{ providers: {{ openai: {{ api: 'openai-completions', baseUrl: '{}', apiKey: 'sk-test', models: [{{ id: 'gpt-4o' }}] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'openai/gpt-4o' }}, timezone: 'Europe/Berlin' }} }},
           gateway: {{ pairing: {{ autoApproveLocal: false }} }},
           tools: {{ exec: {{ mode: 'ask' }} }}, mcp: {{ servers: {{ srv: {{ command: '{}' }} }} }} }}",
        FakeDiscord::TOKEN,
        discord.base_url(),
        fake.base_url(),
        crate::tools::mcp_test_server().display()
    ))
    .await;
    let methods = gw.gateway.as_ref().unwrap().state.methods.names();
    let mut c = gw.client(&["operator.admin"]).await;
    let mut a = Answers::default();
    // The MCP server connected first, so `health` has one shape.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.call("mcp.servers.list", json!({})).await.unwrap()["servers"][0]["state"] != "connected" {
        assert!(std::time::Instant::now() < deadline, "the MCP server never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The gateway itself.
    discord_in_backoff(&mut c).await;
    a.call(&mut c, "health", json!({})).await;
    a.call(&mut c, "status", json!({})).await;
    a.call(&mut c, "doctor.run", json!({})).await;
    a.call(&mut c, "agents.list", json!({})).await;
    // The log file (an in-process gateway installs no subscriber, so the test writes it).
    let state = &gw.gateway.as_ref().unwrap().state;
    let log = state.config().logging.file_path(&state.paths).unwrap();
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let line =
        r#"{"time":"2026-12-05T07:00:00.000Z","level":"info","subsystem":"pincer_gateway","message":"listening"}"#;
    std::fs::write(&log, format!("{line}\n{line}\n")).unwrap();
    a.call(&mut c, "logs.tail", json!({})).await;
    a.call(&mut c, "logs.tail", json!({"cursor": 0, "limit": 1, "maxBytes": 120})).await;

    // Jobs of every payload kind and schedule kind.
    let command = a
        .call(
            &mut c,
            "cron.add",
            json!({"name": "nightly", "description": "backs up", "schedule": {"kind": "every", "everyMs": 3_600_000},
                   "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["sh", "-c", "echo backed up"]},
                   "delivery": {"mode": "announce", "channel": "inbox", "to": "ops", "bestEffort": true}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    a.call(
        &mut c,
        "cron.add",
        json!({"schedule": {"kind": "cron", "expr": "0 7 * * *", "tz": "Europe/Berlin"},
               "payload": {"kind": "agentTurn", "message": "Write the morning brief", "model": "openai/gpt-4o", "timeoutSeconds": 120},
               "failureAlert": {"after": 2, "channel": "inbox"}}),
    )
    .await;
    a.call(
        &mut c,
        "cron.add",
        json!({"name": "ping", "schedule": {"kind": "at", "at": "2026-03-02T09:00:00Z"},
               "payload": {"kind": "systemEvent", "text": "ping"}, "enabled": false}),
    )
    .await;
    a.call(&mut c, "cron.status", json!({})).await;
    a.call(&mut c, "cron.list", json!({})).await;
    a.call(&mut c, "cron.list", json!({"includeDisabled": true, "compact": true, "limit": 1})).await;
    a.call(&mut c, "cron.get", json!({"id": command})).await;
    a.call(&mut c, "cron.preview", json!({"id": command})).await;
    a.call(&mut c, "cron.update", json!({"id": command, "patch": {"name": "nightly backup"}})).await;
    a.call(&mut c, "cron.run", json!({"id": command, "mode": "due"})).await;
    a.call(&mut c, "cron.run", json!({"id": command, "expectedProcessInstanceId": "another"})).await;
    a.call(&mut c, "cron.run", json!({"id": command})).await;
    wait_runs(&mut c, &command, 1).await;
    a.call(&mut c, "cron.runs", json!({"id": command})).await;
    a.call(&mut c, "cron.runs", json!({"scope": "all", "limit": 1, "status": "ok"})).await;
    a.call(&mut c, "cron.scratch.get", json!({"id": command})).await;
    a.call(&mut c, "cron.scratch.set", json!({"id": command, "content": "seen: 1", "expectedRevision": 0})).await;
    a.call(&mut c, "cron.scratch.set", json!({"id": command, "content": "stale", "expectedRevision": 0})).await;
    a.call(&mut c, "cron.scratch.get", json!({"id": command})).await;

    // Deliveries: to the inbox (delivered), to Discord (pending, cancelled, retried).
    a.call(
        &mut c,
        "send",
        json!({"channel": "inbox", "to": "me", "message": "hello", "idempotencyKey": "k1", "wait": true}),
    )
    .await;
    a.call(&mut c, "send", json!({"channel": "inbox", "to": "me", "message": "again", "idempotencyKey": "k2"})).await;
    discord.push_fault(discord::Fault::RateLimited { retry_after: Duration::from_secs(3), global: false });
    let pending = a
        .call(
            &mut c,
            "send",
            json!({"channel": "discord", "to": "channel:7", "message": "later", "idempotencyKey": "k3", "threadId": "9"}),
        )
        .await["deliveryId"]
        .as_str()
        .unwrap()
        .to_string();
    wait_delivery(&mut c, &pending, "pending", 1).await;
    a.call(&mut c, "deliveries.list", json!({})).await;
    a.call(&mut c, "deliveries.get", json!({"id": pending})).await;
    a.call(&mut c, "deliveries.cancel", json!({"id": pending})).await;
    a.call(&mut c, "deliveries.get", json!({"id": pending})).await;
    // Past Discord's rate-limit pause.
    gw.clock.advance(3_000);
    a.call(&mut c, "deliveries.retry", json!({"id": pending})).await;
    wait_delivery(&mut c, &pending, "delivered", 2).await;
    a.call(&mut c, "deliveries.list", json!({"state": "delivered", "limit": 1})).await;
    a.call(&mut c, "deliveries.get", json!({"id": pending})).await;
    a.call(&mut c, "inbox.list", json!({})).await;
    a.call(&mut c, "deliveries.purge", json!({"states": ["dead"]})).await;

    // Agents and sessions.
    fake.push(Reply::text("Hello from the fake model.").with_usage(FakeUsage::new(12, 7)));
    a.call(&mut c, "agent", json!({"message": "Say hello", "idempotencyKey": "run-1"})).await;
    a.call(&mut c, "wake", json!({"mode": "next-heartbeat", "text": "the backup finished"})).await;
    a.call(&mut c, "sessions.list", json!({})).await;
    a.call(&mut c, "chat.history", json!({"sessionKey": "main"})).await;
    a.call(&mut c, "chat.history", json!({"sessionKey": "main", "limit": 1})).await;
    fake.push(Reply::text("Scratch noted.").with_usage(FakeUsage::new(5, 3)));
    c.call("agent", json!({"message": "A scratch note", "sessionKey": "session:scratch"})).await.unwrap();
    a.call(
        &mut c,
        "sessions.list",
        json!({"configuredAgentsOnly": true, "archived": "all", "includeLastMessage": true,
               "includeDerivedTitles": true, "includeGlobal": true, "includeUnknown": true}),
    )
    .await;
    a.call(&mut c, "sessions.delete", json!({"key": "agent:main:session:scratch", "deleteTranscript": true})).await;
    a.call(&mut c, "sessions.delete", json!({"key": "agent:main:session:scratch"})).await;
    a.call(&mut c, "agent.identity.get", json!({})).await;
    a.call(&mut c, "agent.wait", json!({"runId": "run-1", "timeoutMs": 0})).await;
    a.call(&mut c, "sessions.describe", json!({"key": "main", "includeLastMessage": true})).await;
    a.call(&mut c, "sessions.describe", json!({"key": "session:none"})).await;
    a.call(&mut c, "sessions.resolve", json!({"key": "main"})).await;
    a.call(&mut c, "sessions.resolve", json!({"key": "session:none", "allowMissing": true})).await;
    a.call(&mut c, "sessions.subscribe", json!({})).await;
    a.call(&mut c, "usage.status", json!({})).await;
    a.call(&mut c, "usage.cost", json!({})).await;
    // The activity ledger: the run above, the deliveries before it.
    a.call(&mut c, "audit.activity.list", json!({})).await;
    a.call(&mut c, "audit.activity.list", json!({"kind": "agent_run", "limit": 1})).await;
    a.call(&mut c, "audit.list", json!({"runId": "run-1"})).await;
    a.call(&mut c, "audit.run.inspect", json!({"runId": "run-1"})).await;
    a.call(&mut c, "audit.run.inspect", json!({"runId": "no-such-run"})).await;
    a.call(&mut c, "commands.list", json!({})).await;
    a.call(&mut c, "question.list", json!({})).await;
    a.call(&mut c, "plugin.approval.list", json!({})).await;

    // The gateway's OpenClaw extras: heartbeat, presence, catalog, channels, honest empties.
    a.call(&mut c, "last-heartbeat", json!({})).await;
    a.call(&mut c, "set-heartbeats", json!({"enabled": false})).await;
    gw.clock.advance(31 * 60_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.call("last-heartbeat", json!({})).await.unwrap().is_null() {
        assert!(std::time::Instant::now() < deadline, "the heartbeat never ticked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.call(&mut c, "last-heartbeat", json!({})).await;
    a.call(&mut c, "set-heartbeats", json!({"enabled": true})).await;
    a.call(&mut c, "system-presence", json!({})).await;
    a.call(&mut c, "node.list", json!({})).await;
    a.call(&mut c, "models.list", json!({"view": "all", "includeDetails": true})).await;
    discord_in_backoff(&mut c).await;
    a.call(&mut c, "channels.status", json!({"probe": false})).await;
    a.call(&mut c, "tasks.list", json!({})).await;
    a.call(&mut c, "plugins.list", json!({})).await;
    a.call(&mut c, "update.status", json!({})).await;
    a.call(&mut c, "worktrees.list", json!({})).await;
    a.call(&mut c, "projects.list", json!({})).await;
    let cursor = c.call("chat.history", json!({"sessionKey": "main"})).await.unwrap()["deltaCursor"].clone();
    a.call(&mut c, "chat.history", json!({"sessionKey": "main", "cursor": cursor})).await;
    a.call(&mut c, "chat.history", json!({"sessionKey": "main", "cursor": "1:1"})).await;
    a.call(&mut c, "chat.startup", json!({"sessionKey": "main", "limit": 1})).await;
    a.call(&mut c, "chat.metadata", json!({"sessionKey": "main"})).await;
    a.call(&mut c, "sessions.messages.subscribe", json!({"key": "main"})).await;
    a.call(&mut c, "sessions.messages.unsubscribe", json!({"key": "main"})).await;
    a.call(&mut c, "sessions.messages.subscribe", json!({"key": "main"})).await;
    fake.push(Reply::text("Chatting.").with_usage(FakeUsage::new(3, 2)));
    a.call(&mut c, "chat.send", json!({"sessionKey": "main", "message": "Chat?", "idempotencyKey": "chat-1"})).await;
    // Nothing runs in this session: deterministic (a race with chat-1 would change the shape).
    a.call(&mut c, "chat.abort", json!({"sessionKey": "session:idle"})).await;
    fake.push(Reply::text("Compact me.").with_usage(FakeUsage::new(2, 2)));
    c.call("agent", json!({"message": "A note to compact", "sessionKey": "session:compact"})).await.unwrap();
    a.call(&mut c, "sessions.compact", json!({"key": "session:compact"})).await;
    a.call(&mut c, "sessions.compact", json!({"key": "session:compact", "maxLines": 1})).await;
    a.call(&mut c, "sessions.compact", json!({"key": "session:compact", "maxLines": 5})).await;
    a.call(&mut c, "sessions.reset", json!({"key": "session:compact"})).await;
    // The transcript the reset replaced: listed by sessions.describe, read by its id.
    let described = c.call("sessions.describe", json!({"key": "session:compact"})).await.unwrap();
    let replaced = described["previousTranscripts"][0]["sessionId"].clone();
    a.call(&mut c, "sessions.describe", json!({"key": "session:compact"})).await;
    a.call(&mut c, "chat.history", json!({"sessionKey": "session:compact", "sessionId": replaced})).await;
    // What the Control UI reads on its pages: provider credentials, and the honest empties.
    a.call(&mut c, "models.authStatus", json!({})).await;
    a.call(&mut c, "talk.catalog", json!({})).await;
    a.call(&mut c, "sessions.companion.state", json!({"sessionKey": "session:compact"})).await;
    a.call(&mut c, "sessions.branches.list", json!({"sessionKey": "session:compact"})).await;
    a.call(&mut c, "progressCard.get", json!({"sessionKey": "session:compact"})).await;
    a.call(&mut c, "sessions.observer.visibility", json!({"visible": true})).await;
    a.call(&mut c, "artifacts.list", json!({"sessionKey": "session:compact", "type": "image", "limit": 4})).await;
    a.call(&mut c, "sessions.patch", json!({"key": "session:compact", "label": "Compact", "model": "openai/gpt-4o"}))
        .await;
    a.call(&mut c, "sessions.patch", json!({"key": "session:compact", "archived": true, "model": null})).await;
    a.call(&mut c, "sessions.cleanup", json!({"dryRun": true})).await;
    a.call(&mut c, "sessions.cleanup", json!({"fixDmScope": false})).await;

    // Tools: an exec approval from request to decision, the MCP server.
    fake.push(Reply::tool_call("exec", json!({"command": "true"})));
    fake.push(Reply::text("Ran it.").with_usage(FakeUsage::new(4, 2)));
    let mut turn = gw.client(&["operator.admin"]).await;
    let waiting = tokio::spawn(async move {
        turn.call("agent", json!({"message": "Run true", "sessionKey": "session:exec", "idempotencyKey": "run-exec"}))
            .await
            .unwrap()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let approval = loop {
        if let Some(first) = c.call("exec.approval.list", json!({})).await.unwrap().get(0) {
            break first["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no approval was requested");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    a.call(&mut c, "exec.approval.list", json!({})).await;
    // The system agent's approvals: none, even with an exec approval pending.
    assert_eq!(a.call(&mut c, "openclaw.approval.list", json!({})).await, json!([]));
    a.call(&mut c, "exec.approval.get", json!({"id": approval})).await;
    a.call(&mut c, "exec.approval.resolve", json!({"id": approval, "decision": "allow-once"})).await;
    waiting.await.unwrap();
    a.call(&mut c, "exec.approval.list", json!({})).await;
    a.call(&mut c, "mcp.servers.list", json!({})).await;
    a.call(&mut c, "mcp.servers.probe", json!({"name": "srv"})).await;
    let approvals = a.call(&mut c, "exec.approvals.get", json!({})).await;
    let file = json!({"version": 1, "agents": {"*": {"allowlist": [{"pattern": "/usr/bin/true"}]}}});
    a.call(&mut c, "exec.approvals.set", json!({"file": file, "baseHash": approvals["hash"]})).await;
    let grants = a.call(&mut c, "exec.approval.grants.list", json!({})).await;
    a.call(&mut c, "exec.approval.grants.revoke", json!({"grantId": grants["grants"][0]["grantId"]})).await;

    // Pairing, from request to removal.
    let url = gw.url();
    a.call(&mut c, "device.pair.list", json!({})).await;
    let first = crate::devices::pending_request(&url, TOKEN, 21).await;
    a.call(&mut c, "device.pair.list", json!({})).await;
    let device = a.call(&mut c, "device.pair.approve", json!({"requestId": first})).await["device"]["deviceId"]
        .as_str()
        .unwrap()
        .to_string();
    a.call(&mut c, "device.pair.list", json!({})).await;
    a.call(&mut c, "device.pair.rename", json!({"deviceId": device, "label": "desk"})).await;
    a.call(&mut c, "device.token.rotate", json!({"deviceId": device, "role": "operator"})).await;
    a.call(&mut c, "device.pair.list", json!({})).await;
    a.call(&mut c, "device.token.revoke", json!({"deviceId": device, "role": "operator"})).await;
    let second = crate::devices::pending_request(&url, TOKEN, 22).await;
    a.call(&mut c, "device.pair.reject", json!({"requestId": second})).await;
    a.call(&mut c, "device.pair.remove", json!({"deviceId": device})).await;
    // DM pairing of a chat channel: a second gateway polling a fake Telegram, two unknown senders.
    {
        use pincer_testkit::fakes::telegram::{FakeTelegram, Incoming};
        let tg = FakeTelegram::start().await;
        let chat = TestGateway::start_with(&format!(
            "{{ channels: {{ telegram: {{ botToken: '{}', apiRoot: '{}' }} }} }}",
            FakeTelegram::TOKEN,
            tg.base_url()
        ))
        .await;
        let mut p = chat.client(&["operator.admin"]).await;
        tg.push_message(Incoming::dm(2002, "hello"));
        tg.push_message(Incoming::dm(2003, "hi"));
        let told = tg.wait_for_messages(2, Duration::from_secs(20)).await;
        let code = |i: usize| told[i].text.lines().find_map(|l| l.strip_prefix("Pairing code: ")).unwrap().to_string();
        let first = code(0);
        let second_sender = told[1].chat_id.clone();
        a.call(&mut p, "channels.pairing.list", json!({})).await;
        a.call(&mut p, "channels.pairing.approve", json!({"channel": "telegram", "code": first})).await;
        a.call(
            &mut p,
            "channels.pairing.dismiss",
            json!({"channel": "telegram", "requestId": format!("telegram:{second_sender}")}),
        )
        .await;
        chat.stop().await;
    }
    a.call(&mut c, "audit.query", json!({})).await;
    a.call(&mut c, "audit.query", json!({"limit": 1})).await;

    // The config file, read and reloaded (last: the reload drops the Discord channel).
    std::fs::write(
        &gw.paths.config_path,
        format!("{{ gateway: {{ auth: {{ token: '{TOKEN}' }} }}, delivery: {{ maxAttempts: 4 }} }}"),
    )
    .unwrap();
    a.call(&mut c, "config.get", json!({})).await;
    a.call(&mut c, "config.schema", json!({})).await;
    a.call(&mut c, "config.reload", json!({})).await;
    // Nothing to import: an empty import answers its counts.
    a.call(&mut c, "import.openclaw", json!({"devices": [], "runs": []})).await;

    a.call(&mut c, "cron.remove", json!({"id": command})).await;
    gw.stop().await;
    (a, methods)
}

#[tokio::test]
async fn every_method_answers_in_its_captured_shape() {
    let (answers, methods) = script().await;
    let unanswered: Vec<&String> = methods.iter().filter(|m| !answers.0.contains_key(*m)).collect();
    assert!(unanswered.is_empty(), "the script calls no {unanswered:?}: add them");
    let dir = captured_dir();
    if std::env::var_os("PINCER_SCHEMA_CAPTURE").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (method, samples) in &answers.0 {
            let text = serde_json::to_string_pretty(samples).unwrap() + "\n";
            std::fs::write(dir.join(format!("{method}.json")), text).unwrap();
        }
        return;
    }
    let mut failures = Vec::new();
    for (method, samples) in &answers.0 {
        match pincer_protocol::schema::method(method) {
            None => failures.push(format!("{method}: not in pincer_protocol::schema::METHODS")),
            Some(schema) => {
                for sample in samples {
                    match (schema.round_trip_result)(sample) {
                        Ok(back) if &back == sample => {}
                        Ok(back) => failures.push(format!("{method}: the result type changed {sample} into {back}")),
                        Err(e) => failures.push(format!("{method}: the result type cannot read {sample}: {e}")),
                    }
                }
            }
        }
        let path = dir.join(format!("{method}.json"));
        let captured: Vec<Value> = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(e) => {
                failures.push(format!("{method}: no captured answer at {} ({e})", path.display()));
                continue;
            }
        };
        let (was, now) = (shape(&captured), shape(samples));
        for (path, kinds) in &was {
            match now.get(path) {
                None => failures.push(format!("{method}: {path} is gone (was {kinds:?})")),
                Some(k) if k != kinds => failures.push(format!("{method}: {path} is {k:?}, was {kinds:?}")),
                Some(_) => {}
            }
        }
        for (path, kinds) in &now {
            if !was.contains_key(path) {
                failures.push(format!("{method}: {path} is new ({kinds:?})"));
            }
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}
