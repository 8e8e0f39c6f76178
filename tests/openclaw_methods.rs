//! OpenClaw's everyday methods beyond cron and devices, over the wire: the heartbeat switch and
//! its last event, presence and its event, session deletion and `sessions.changed`, the display
//! hints of `sessions.list`, the model catalog, channel status, agent identity and the honest
//! empties — each with OpenClaw's params (closed: unknown fields refused by name) and scopes.

use std::time::Duration;

use pincer_testkit::fakes::openai::{FakeOpenAi, FakeUsage, Reply};
use serde_json::{Value, json};

use crate::support::{TestGateway, error_of};

async fn model_gateway(fake: &FakeOpenAi, extra: &str) -> TestGateway {
    TestGateway::start_with(&format!(
        "{{ models: {{ providers: {{ openai: {{ api: 'openai-completions', baseUrl: '{}', apiKey: 'sk-secret-provider-key', models: [{{ id: 'gpt-4o', name: 'GPT-4o', contextWindow: 128000 }}, {{ id: 'gpt-4o-mini' }}] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'openai/gpt-4o', fallbacks: ['openai/gpt-4o-mini'] }} }} }} {extra} }}",
        fake.base_url()
    ))
    .await
}

/// Moves the fake clock one heartbeat interval (30 min), then a minute per 100 ms (the loop
/// may have planned its next tick a moment later; a turn has 10 minutes), until `last-heartbeat`
/// reports a new tick.
async fn next_tick(gw: &TestGateway, c: &mut pincer_testkit::ws::RawClient) -> Value {
    let before = c.call("last-heartbeat", json!({})).await.unwrap()["ts"].as_i64();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    gw.clock.advance(29 * 60_000);
    loop {
        let last = c.call("last-heartbeat", json!({})).await.unwrap();
        if last["ts"].as_i64().is_some_and(|ts| Some(ts) > before) {
            return last;
        }
        assert!(std::time::Instant::now() < deadline, "no heartbeat tick after {before:?}: {last}");
        gw.clock.advance(60_000);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn set_heartbeats_pauses_the_heartbeat_and_last_heartbeat_reports_each_tick() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;
    assert_eq!(c.call("last-heartbeat", json!({})).await.unwrap(), Value::Null, "no tick yet");

    c.call("wake", json!({"mode": "next-heartbeat", "text": "the backup finished"})).await.unwrap();
    assert_eq!(
        c.call("set-heartbeats", json!({"enabled": false})).await.unwrap(),
        json!({"ok": true, "enabled": false})
    );
    let last = next_tick(&gw, &mut c).await;
    assert_eq!((last["status"].as_str(), last["reason"].as_str()), (Some("skipped"), Some("disabled")), "{last}");
    assert_eq!(fake.request_count(), 0, "a paused heartbeat runs no turn");

    c.call("set-heartbeats", json!({"enabled": true})).await.unwrap();
    fake.push(Reply::text("Noted the backup.").with_usage(FakeUsage::new(4, 3)));
    let last = next_tick(&gw, &mut c).await;
    assert_eq!((last["status"].as_str(), last["turns"].as_u64()), (Some("ran"), Some(1)), "{last}");
    assert_eq!(fake.request_count(), 1);

    let last = next_tick(&gw, &mut c).await;
    assert_eq!((last["status"].as_str(), last["reason"].as_str()), (Some("skipped"), Some("no-events")), "{last}");

    // OpenClaw's error for a missing flag names it; admin only.
    let (code, message) = error_of(&c.request("set-heartbeats", json!({})).await.unwrap());
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.contains("set-heartbeats") && message.contains("enabled"), "{message}");
    let mut reader = gw.client(&["operator.read"]).await;
    let (code, message) = error_of(&reader.request("set-heartbeats", json!({"enabled": false})).await.unwrap());
    assert_eq!((code.as_str(), message.as_str()), ("FORBIDDEN", "missing scope: operator.admin"));
    assert!(reader.call("last-heartbeat", json!({})).await.is_ok(), "operator.read reads it");
    gw.stop().await;
}

#[tokio::test]
async fn system_presence_lists_the_gateway_and_each_connection_and_presence_events_follow_them() {
    let gw = TestGateway::start().await;
    let mut watcher = gw.client(&["operator.read"]).await;
    let list = watcher.call("system-presence", json!({})).await.unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!((rows[0]["mode"].as_str(), rows[0]["reason"].as_str()), (Some("gateway"), Some("self")));
    assert_eq!((rows[1]["reason"].as_str(), rows[1]["clientId"].as_str()), (Some("connect"), Some("cli")));
    assert_eq!(rows[1]["scopes"], json!(["operator.read"]));

    let other = gw.client(&["operator.admin"]).await;
    // The watcher's own arrival was announced first; then the other's.
    let event = loop {
        let event = watcher.next_event("presence").await.unwrap();
        if event["payload"]["presence"].as_array().unwrap().len() == 3 {
            break event;
        }
    };
    let rows = event["payload"]["presence"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["scopes"] == json!(["operator.admin"])), "{event}");

    drop(other);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = watcher.next_event("presence").await.unwrap();
        if event["payload"]["presence"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the closed connection was never announced gone");
    }
    let (code, message) = error_of(&watcher.request("system-presence", json!({"all": true})).await.unwrap());
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.contains("unknown field `all`"), "{message}");
    gw.stop().await;
}

#[tokio::test]
async fn sessions_delete_removes_a_session_with_its_transcript_and_announces_it() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut watcher = gw.client(&["operator.read"]).await;
    fake.push(Reply::text("Noted.").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "Remember the milk", "sessionKey": "session:scratch"})).await.unwrap();
    let key = "agent:main:session:scratch";

    // OpenClaw's CLI lists first, with its hints, and wants a durable identity per row.
    let page = c
        .call(
            "sessions.list",
            json!({"limit": 100, "archived": "all", "includeGlobal": true, "includeUnknown": true, "configuredAgentsOnly": true}),
        )
        .await
        .unwrap();
    let row = page["sessions"].as_array().unwrap().iter().find(|s| s["key"] == key).cloned().unwrap();
    let session_id = row["sessionId"].as_str().unwrap().to_string();
    assert_eq!((session_id.len(), row["isMain"].as_bool()), (36, Some(false)), "a UUID, as OpenClaw's: {row}");

    // Deleting needs operator.admin (OpenClaw's rule unless archivedOnly).
    let mut writer = gw.client(&["operator.write"]).await;
    let (code, _) = error_of(&writer.request("sessions.delete", json!({"key": key})).await.unwrap());
    assert_eq!(code, "FORBIDDEN");
    let (code, message) =
        error_of(&c.request("sessions.delete", json!({"key": key, "expectedSessionId": "another"})).await.unwrap());
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.contains("changed before deletion"), "{message}");
    let (_, message) =
        error_of(&c.request("sessions.delete", json!({"key": key, "emitLifecycleHooks": false})).await.unwrap());
    assert_eq!(message, "invalid sessions.delete params: emitLifecycleHooks: not supported by Pincer");
    let (_, message) = error_of(&c.request("sessions.delete", json!({"key": "agent:main:main"})).await.unwrap());
    assert!(message.starts_with("Cannot delete the main session"), "{message}");

    let res = c
        .call("sessions.delete", json!({"key": key, "expectedSessionId": session_id, "deleteTranscript": true}))
        .await
        .unwrap();
    assert_eq!(res, json!({"ok": true, "key": key, "deleted": true, "archived": []}));
    let changed = watcher.next_event("sessions.changed").await.unwrap();
    assert_eq!(
        (changed["payload"]["sessionKey"].as_str(), changed["payload"]["reason"].as_str()),
        (Some(key), Some("delete"))
    );
    let (code, _) = error_of(&c.request("chat.history", json!({"sessionKey": key})).await.unwrap());
    assert_eq!(code, "INVALID_REQUEST", "the transcript went with it");
    let again = c.call("sessions.delete", json!({"key": key})).await.unwrap();
    assert_eq!(again["deleted"], false);
    gw.stop().await;
}

#[tokio::test]
async fn sessions_list_honours_openclaws_display_hints() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;
    fake.push(Reply::text("First answer.\nSecond line.").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "What is first?", "sessionKey": "session:a"})).await.unwrap();
    fake.push(Reply::text("Other agent.").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "hi", "agentId": "ops", "sessionKey": "session:b"})).await.unwrap();

    let keys = |page: &Value| -> Vec<String> {
        page["sessions"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect()
    };
    let all = c.call("sessions.list", json!({})).await.unwrap();
    assert_eq!(keys(&all).len(), 2, "{all}");
    let configured = c.call("sessions.list", json!({"configuredAgentsOnly": true})).await.unwrap();
    assert_eq!(keys(&configured), ["agent:main:session:a"], "only the configured agent, main");
    let archived = c.call("sessions.list", json!({"archived": true})).await.unwrap();
    assert_eq!(archived["sessions"], json!([]), "none is archived yet");
    assert_eq!(keys(&c.call("sessions.list", json!({"archived": false})).await.unwrap()).len(), 2);
    let hinted = c
        .call(
            "sessions.list",
            json!({"configuredAgentsOnly": true, "includeLastMessage": true, "includeDerivedTitles": true,
                   "includeActivitySummary": true, "excludeSubagents": true, "excludeSystem": true}),
        )
        .await
        .unwrap();
    let row = &hinted["sessions"][0];
    assert_eq!(
        (row["lastMessagePreview"].as_str(), row["derivedTitle"].as_str()),
        (Some("First answer."), Some("What is first?"))
    );
    assert!(all["sessions"][0].get("lastMessagePreview").is_none(), "only when asked");
    assert!(all.get("people").is_none(), "only when asked: {all}");
    // The Activity page's list: recent sessions by activity, with the people facet (Pincer
    // records no people, so it is empty).
    gw.clock.advance(90 * 60_000);
    fake.push(Reply::text("Later.").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "Now", "sessionKey": "session:c"})).await.unwrap();
    let activity = c
        .call(
            "sessions.list",
            json!({"archived": "all", "includePeople": true, "sortBy": "activity", "activeMinutes": 60, "limit": 100}),
        )
        .await
        .unwrap();
    assert_eq!(keys(&activity), ["agent:main:session:c"], "only the last hour's: {activity}");
    assert_eq!(
        (&activity["people"], &activity["peopleIncomplete"], &activity["peopleSessionCount"]),
        (&json!([]), &json!(false), &json!(1))
    );
    let week = c.call("sessions.list", json!({"activeMinutes": 10080, "sortBy": "updatedAt"})).await.unwrap();
    assert_eq!(keys(&week)[0], "agent:main:session:c", "the last update first");
    assert_eq!(keys(&week).len(), 3);
    let (_, message) = error_of(&c.request("sessions.list", json!({"archived": "some"})).await.unwrap());
    assert!(message.starts_with("invalid sessions.list params: archived"), "{message}");
    let (_, message) = error_of(&c.request("sessions.list", json!({"search": "x"})).await.unwrap());
    assert_eq!(message, "invalid sessions.list params: search: not supported by Pincer");
    gw.stop().await;
}

#[tokio::test]
async fn models_list_channels_status_and_identity_answer_in_openclaws_shape_without_secrets() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(
        &fake,
        ", channels: { telegram: { botToken: '123:secret-bot-token', apiRoot: 'http://127.0.0.1:9' } }",
    )
    .await;
    let mut c = gw.client(&["operator.read"]).await;

    let models = c.call("models.list", json!({"view": "all", "includeDetails": true})).await.unwrap();
    let rows: Vec<(String, Value)> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (format!("{}/{}", m["provider"].as_str().unwrap(), m["id"].as_str().unwrap()), m["tags"].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("openai/gpt-4o".to_string(), json!(["default", "configured"])),
            ("openai/gpt-4o-mini".to_string(), json!(["fallback", "configured"]))
        ]
    );
    assert_eq!(
        (models["models"][0]["name"].as_str(), models["models"][0]["contextWindow"].as_u64()),
        (Some("GPT-4o"), Some(128_000))
    );
    assert_eq!(c.call("models.list", json!({"provider": "anthropic"})).await.unwrap()["models"], json!([]));
    // `sessionKey` is a display hint (the Control UI sends it); unknown fields are still refused.
    c.call("models.list", json!({"sessionKey": "main"})).await.unwrap();
    let (_, message) = error_of(&c.request("models.list", json!({"bogus": 1})).await.unwrap());
    assert!(message.starts_with("invalid models.list params") && message.contains("bogus"), "{message}");

    let status = c.call("channels.status", json!({"probe": true, "timeoutMs": 1000})).await.unwrap();
    assert!(status["channelOrder"].as_array().unwrap().iter().any(|c| c == "telegram"), "{status}");
    let account = &status["channelAccounts"]["telegram"][0];
    assert_eq!((account["accountId"].as_str(), account["configured"].as_bool()), (Some("default"), Some(true)));
    assert_eq!(account["tokenSource"], "config");
    assert_eq!(status["channelAccounts"]["inbox"][0]["tokenSource"], "none", "the inbox holds no credential");
    assert_eq!(status["channelDefaultAccountId"]["telegram"], "default");
    let one = c.call("channels.status", json!({"channel": "telegram"})).await.unwrap();
    assert_eq!(one["channelOrder"], json!(["telegram"]));
    let (_, message) = error_of(&c.request("channels.status", json!({"channel": "irc"})).await.unwrap());
    assert!(message.contains("unknown channel \"irc\""), "{message}");

    let identity = c.call("agent.identity.get", json!({"sessionKey": "agent:main:main"})).await.unwrap();
    assert_eq!(identity["agentId"], "main");
    let (_, message) = error_of(&c.request("agent.identity.get", json!({"agentId": "nobody"})).await.unwrap());
    assert!(message.contains("unknown agent id \"nobody\""), "{message}");

    let answers = format!("{models}{status}{identity}");
    for secret in ["sk-secret-provider-key", "secret-bot-token"] {
        assert!(!answers.contains(secret), "{secret} leaked");
    }
    gw.stop().await;
}

#[tokio::test]
async fn honest_empties_answer_openclaws_shapes_with_closed_params() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let nodes = c.call("node.list", json!({})).await.unwrap();
    assert_eq!(nodes["nodes"], json!([]));
    assert!(nodes["ts"].is_i64());
    assert_eq!(c.call("tasks.list", json!({"limit": 10})).await.unwrap(), json!({"tasks": []}));
    assert_eq!(
        c.call("plugins.list", json!({})).await.unwrap(),
        json!({"plugins": [], "diagnostics": [], "mutationAllowed": false})
    );
    assert_eq!(c.call("update.status", json!({})).await.unwrap(), json!({"sentinel": null, "updateAvailable": null}));
    assert_eq!(c.call("worktrees.list", json!({})).await.unwrap(), json!({"worktrees": []}));
    assert_eq!(c.call("projects.list", json!({"includeObserved": true})).await.unwrap(), json!({"projects": []}));
    for (method, params) in [("node.list", json!({"x": 1})), ("plugins.list", json!({"all": true}))] {
        let (code, message) = error_of(&c.request(method, params).await.unwrap());
        assert_eq!(code, "INVALID_REQUEST");
        assert!(message.starts_with(&format!("invalid {method} params: unknown field")), "{message}");
    }
    // `update.status` is admin's in OpenClaw's table.
    let mut reader = gw.client(&["operator.read"]).await;
    let (code, _) = error_of(&reader.request("update.status", json!({})).await.unwrap());
    assert_eq!(code, "FORBIDDEN");
    gw.stop().await;
}

#[tokio::test]
async fn sessions_describe_resolve_compact_and_reset_work_on_a_real_transcript() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut watcher = gw.client(&["operator.read"]).await;
    for (i, text) in ["One.", "Two.", "Three."].iter().enumerate() {
        fake.push(Reply::text(*text).with_usage(FakeUsage::new(3, 2)));
        c.call("agent", json!({"message": format!("Say {}", i + 1), "sessionKey": "session:notes"})).await.unwrap();
    }
    let key = "agent:main:session:notes";

    let described =
        c.call("sessions.describe", json!({"key": "session:notes", "includeLastMessage": true})).await.unwrap();
    let s = &described["session"];
    assert_eq!((s["key"].as_str(), s["messageCount"].as_i64()), (Some(key), Some(6)), "{described}");
    assert_eq!(s["lastMessagePreview"], "Three.");
    assert_eq!(c.call("sessions.describe", json!({"key": "session:none"})).await.unwrap(), json!({"session": null}));

    let resolved = json!({"ok": true, "key": key, "agentId": "main"});
    assert_eq!(c.call("sessions.resolve", json!({"key": "session:notes"})).await.unwrap(), resolved);
    let session_id = s["sessionId"].as_str().unwrap().to_string();
    assert_eq!(c.call("sessions.resolve", json!({"sessionId": session_id})).await.unwrap(), resolved);
    let missing = c.call("sessions.resolve", json!({"key": "session:none", "allowMissing": true})).await.unwrap();
    assert_eq!(missing, json!({"ok": false}));
    let (code, message) = error_of(&c.request("sessions.resolve", json!({"key": "session:none"})).await.unwrap());
    assert_eq!((code.as_str(), message.as_str()), ("INVALID_REQUEST", "No session found: agent:main:session:none"));
    let (_, message) = error_of(&c.request("sessions.resolve", json!({"label": "notes"})).await.unwrap());
    assert_eq!(message, "invalid sessions.resolve params: label: not supported by Pincer");

    // Compaction: without maxLines Pincer says it cannot summarise; with it, the newest stay.
    let summary = c.call("sessions.compact", json!({"key": key})).await.unwrap();
    assert_eq!((summary["ok"].as_bool(), summary["compacted"].as_bool()), (Some(false), Some(false)), "{summary}");
    assert!(summary["reason"].as_str().unwrap().contains("maxLines"), "{summary}");
    let trimmed = c.call("sessions.compact", json!({"key": key, "maxLines": 2})).await.unwrap();
    assert_eq!(trimmed, json!({"ok": true, "key": key, "compacted": true, "kept": 2}));
    let changed = watcher.next_event("sessions.changed").await.unwrap();
    assert_eq!(changed["payload"]["reason"], "compact");
    let history = c.call("chat.history", json!({"sessionKey": key})).await.unwrap();
    let texts: Vec<&str> =
        history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Say 3", "Three."]);
    let again = c.call("sessions.compact", json!({"key": key, "maxLines": 5})).await.unwrap();
    assert_eq!(again, json!({"ok": true, "key": key, "compacted": false, "kept": 2}));

    // Reset needs operator.admin, as in OpenClaw's table; then the conversation starts over.
    let mut writer = gw.client(&["operator.write"]).await;
    let (code, _) = error_of(&writer.request("sessions.reset", json!({"key": key})).await.unwrap());
    assert_eq!(code, "FORBIDDEN");
    let (_, message) = error_of(&c.request("sessions.reset", json!({"key": key, "reason": "later"})).await.unwrap());
    assert_eq!(message, "invalid sessions.reset params: reason: \"later\" is not new or reset");
    let (_, message) =
        error_of(&c.request("sessions.reset", json!({"key": key, "expectedSessionId": key})).await.unwrap());
    assert!(message.contains("changed before the reset"), "{message}");
    let reset =
        c.call("sessions.reset", json!({"key": key, "reason": "new", "expectedSessionId": session_id})).await.unwrap();
    assert_eq!((reset["ok"].as_bool(), reset["key"].as_str()), (Some(true), Some(key)), "{reset}");
    assert_eq!((reset["entry"]["messageCount"].as_i64(), reset["entry"]["totalTokens"].as_i64()), (Some(0), Some(0)));
    // As OpenClaw: the key now points at a new session id; the old one no longer resolves.
    let new_id = reset["entry"]["sessionId"].as_str().unwrap().to_string();
    assert_ne!(new_id, session_id);
    assert_eq!(c.call("sessions.resolve", json!({"sessionId": new_id})).await.unwrap(), resolved);
    let gone = c.call("sessions.resolve", json!({"sessionId": session_id, "allowMissing": true})).await.unwrap();
    assert_eq!(gone, json!({"ok": false}));
    let changed = watcher.next_event("sessions.changed").await.unwrap();
    assert_eq!(
        (changed["payload"]["sessionKey"].as_str(), changed["payload"]["reason"].as_str()),
        (Some(key), Some("new"))
    );
    assert_eq!(changed["payload"]["sessionId"].as_str(), Some(new_id.as_str()));
    let history = c.call("chat.history", json!({"sessionKey": key})).await.unwrap();
    assert_eq!(history["messages"], json!([]));
    let (code, _) = error_of(&c.request("sessions.reset", json!({"key": "session:none"})).await.unwrap());
    assert_eq!(code, "INVALID_REQUEST");
    assert_eq!(c.call("sessions.subscribe", json!({})).await.unwrap(), json!({"subscribed": true}));
    let (_, message) = error_of(&c.request("sessions.subscribe", json!({"search": "x"})).await.unwrap());
    assert_eq!(message, "invalid sessions.subscribe params: search: not supported by Pincer");
    gw.stop().await;
}

#[tokio::test]
async fn agent_wait_reports_how_a_run_ended_and_times_out_on_the_gateway_clock() {
    use pincer_testkit::fakes::openai::Gate;
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;

    // A run that has ended: read from its transcript entries.
    fake.push(Reply::text("Done.").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "Go", "idempotencyKey": "run-done"})).await.unwrap();
    let done = c.call("agent.wait", json!({"runId": "run-done", "timeoutMs": 0})).await.unwrap();
    assert_eq!((done["status"].as_str(), done["stopReason"].as_str()), (Some("ok"), Some("stop")), "{done}");
    assert!(done["startedAt"].is_i64() && done["endedAt"].is_i64(), "{done}");

    // A run still going: the wait ends with the run.
    let gate = Gate::new();
    fake.push(Reply::paced("Slowly.", 2, &gate));
    c.call("chat.send", json!({"sessionKey": "main", "message": "Slow", "idempotencyKey": "run-slow"})).await.unwrap();
    let mut waiter = gw.client(&["operator.write"]).await;
    let wait =
        tokio::spawn(async move { waiter.call("agent.wait", json!({"runId": "run-slow", "timeoutMs": 60_000})).await });
    fake.wait_for_requests(2).await;
    gate.release(10);
    let slow = wait.await.unwrap().unwrap();
    assert_eq!((slow["runId"].as_str(), slow["status"].as_str()), (Some("run-slow"), Some("ok")), "{slow}");

    // A run that failed.
    fake.set_default(Reply::unauthorized());
    let _ = c.request("agent", json!({"message": "Fail", "idempotencyKey": "run-bad"})).await.unwrap();
    let bad = c.call("agent.wait", json!({"runId": "run-bad"})).await.unwrap();
    assert_eq!(bad["status"], "error", "{bad}");
    assert!(bad["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}");

    // No such run: `timeout` once timeoutMs passes on the gateway's (fake) clock, not before.
    let mut waiter = gw.client(&["operator.write"]).await;
    let wait =
        tokio::spawn(async move { waiter.call("agent.wait", json!({"runId": "run-never", "timeoutMs": 5_000})).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!wait.is_finished(), "the wait ended before its time limit");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !wait.is_finished() {
        assert!(std::time::Instant::now() < deadline, "agent.wait never timed out");
        gw.clock.advance(1_000);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(wait.await.unwrap().unwrap(), json!({"runId": "run-never", "status": "timeout"}));
    let mut reader = gw.client(&["operator.read"]).await;
    let (code, _) = error_of(&reader.request("agent.wait", json!({"runId": "run-done"})).await.unwrap());
    assert_eq!(code, "FORBIDDEN", "agent.wait is operator.write's");
    gw.stop().await;
}

#[tokio::test]
async fn usage_status_and_cost_sum_the_tokens_the_recorded_replies_used() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.read", "operator.write"]).await;
    fake.push(Reply::text("A.").with_usage(FakeUsage::new(12, 7)));
    c.call("agent", json!({"message": "a"})).await.unwrap();
    fake.push(Reply::text("B.").with_usage(FakeUsage::new(5, 3)));
    c.call("agent", json!({"message": "b", "sessionKey": "session:other"})).await.unwrap();

    let status = c.call("usage.status", json!({})).await.unwrap();
    assert_eq!(
        status["providers"],
        json!([{"provider": "openai", "displayName": "openai", "windows": [], "inputTokens": 17, "outputTokens": 10, "totalTokens": 27}])
    );
    let cost = c.call("usage.cost", json!({})).await.unwrap();
    assert_eq!(cost["days"], 30);
    let daily = cost["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 1, "{cost}");
    let date = daily[0]["date"].as_str().unwrap().to_string();
    let totals = json!({"input": 17, "output": 10, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 27, "totalCost": 0.0,
        "inputCost": 0.0, "outputCost": 0.0, "cacheReadCost": 0.0, "cacheWriteCost": 0.0, "missingCostEntries": 2});
    assert_eq!(cost["totals"], totals);
    let mut day = totals.clone();
    day["date"] = json!(date);
    assert_eq!(daily[0], day);
    let same = c.call("usage.cost", json!({"startDate": date, "endDate": date, "agentScope": "all"})).await.unwrap();
    assert_eq!((same["days"].as_i64(), &same["totals"]), (Some(1), &totals));
    let before = c.call("usage.cost", json!({"startDate": "2000-01-01", "endDate": "2000-01-02"})).await.unwrap();
    assert_eq!((before["days"].as_i64(), &before["daily"]), (Some(2), &json!([])));
    for (params, want) in [
        (json!({"startDate": "2000-01-01"}), "startDate and endDate must be provided together"),
        (json!({"startDate": "2000-02-30", "endDate": "2000-03-01"}), "startDate: expected a YYYY-MM-DD calendar date"),
        (json!({"timeZone": "Europe/Berlin"}), "timeZone: not supported by Pincer"),
    ] {
        let (_, message) = error_of(&c.request("usage.cost", params).await.unwrap());
        assert!(message.ends_with(want), "{message}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn commands_questions_plugin_approvals_and_message_unsubscribe_answer_openclaws_shapes() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let commands = c.call("commands.list", json!({"provider": "telegram", "includeArgs": true})).await.unwrap();
    let names: Vec<(&str, &Value)> = commands["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), &c["textAliases"]))
        .collect();
    assert_eq!(
        names,
        [("new", &json!(["/new", "/reset"])), ("status", &json!(["/status"])), ("help", &json!(["/help", "/start"]))]
    );
    assert_eq!(c.call("commands.list", json!({"scope": "native"})).await.unwrap(), json!({"commands": []}));
    assert_eq!(c.call("question.list", json!({})).await.unwrap(), json!({"questions": []}));
    assert_eq!(c.call("plugin.approval.list", json!({})).await.unwrap(), json!([]));
    let (_, message) = error_of(&c.request("question.list", json!({"all": true})).await.unwrap());
    assert!(message.starts_with("invalid question.list params: unknown field"), "{message}");

    // Unsubscribed from a session, a connection gets none of its messages.
    let key = "agent:main:session:talk";
    let mut watcher = gw.client(&["operator.read"]).await;
    assert_eq!(watcher.call("sessions.messages.subscribe", json!({"key": key})).await.unwrap()["subscribed"], true);
    let off = watcher.call("sessions.messages.unsubscribe", json!({"key": "session:talk"})).await.unwrap();
    assert_eq!(off, json!({"subscribed": false, "key": key}));
    fake.push(Reply::text("Hi."));
    c.call("agent", json!({"message": "Hello", "sessionKey": key})).await.unwrap();
    watcher.wait_up_to(Duration::from_millis(300));
    while let Ok(f) = watcher.next_frame().await {
        assert_ne!(f["event"], "session.message", "an event after unsubscribing: {f}");
    }
    gw.stop().await;
}

/// `openclaw agent --session-id <id>` and `--to agent:<id>:…`: the turn runs in that session (a
/// session's `sessionId` is its key; a bare id is the named session), a contradiction is refused,
/// and a channel recipient picks the session a DM from them lands in (`session.dmScope`: main).
#[tokio::test]
async fn agent_routes_a_turn_by_session_id_or_an_agent_key_in_to() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;
    for (i, (params, key)) in [
        (json!({"sessionId": "notes"}), "agent:main:session:notes"),
        (json!({"sessionId": "agent:main:session:notes"}), "agent:main:session:notes"),
        (json!({"to": "agent:main:session:other"}), "agent:main:session:other"),
        (json!({"sessionKey": "main", "sessionId": "main"}), "agent:main:main"),
        (json!({"to": "+15550001"}), "agent:main:main"),
    ]
    .into_iter()
    .enumerate()
    {
        fake.push(Reply::text("noted"));
        let mut p = params.clone();
        p["message"] = json!(format!("hi {i}"));
        let res = c.call("agent", p).await.unwrap();
        assert_eq!(res["sessionKey"], key, "{params}: {res}");
    }
    let history = c.call("chat.history", json!({"sessionKey": "agent:main:session:notes"})).await.unwrap();
    let text = history.to_string();
    assert!(text.contains("hi 0") && text.contains("hi 1"), "both --session-id forms reached one session: {history}");
    for (params, want) in
        [(json!({"sessionKey": "main", "sessionId": "notes"}), "sessionId \"notes\" contradicts sessionKey \"main\"")]
    {
        let mut p = params.clone();
        p["message"] = json!("hi");
        let (code, message) = error_of(&c.request("agent", p).await.unwrap());
        assert_eq!(code, "INVALID_REQUEST", "{params}");
        assert!(message.starts_with(&format!("invalid agent params: {want}")), "{params}: {message}");
    }
    gw.stop().await;
}

/// `sessions.patch`: a label shows in lists, a model is used by the session's next turn (and
/// `null` returns to the default), an archive leaves the default list — what `openclaw sessions
/// archive` and the Control UI's rename and model picker send. Other fields are refused by name;
/// a display-only patch needs `operator.write`, anything else `operator.admin` (OpenClaw's rule).
#[tokio::test]
async fn sessions_patch_labels_sets_the_next_turns_model_and_archives() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut writer = gw.client(&["operator.write", "operator.read"]).await;
    let mut watcher = gw.client(&["operator.read"]).await;
    let key = "agent:main:session:taxes";

    // A session with no turn yet is made, so a chat's model can be chosen first.
    let res = writer
        .call("sessions.patch", json!({"key": key, "label": "Taxes 2026", "model": "openai/gpt-4o-mini"}))
        .await
        .unwrap();
    assert_eq!((res["ok"].as_bool(), res["key"].as_str()), (Some(true), Some(key)), "{res}");
    assert_eq!(
        (res["entry"]["label"].as_str(), res["entry"]["displayName"].as_str(), res["entry"]["modelOverride"].as_str()),
        (Some("Taxes 2026"), Some("Taxes 2026"), Some("gpt-4o-mini")),
        "{res}"
    );
    assert_eq!(res["resolved"], json!({"modelProvider": "openai", "model": "gpt-4o-mini"}));
    let changed = watcher.next_event("sessions.changed").await.unwrap();
    assert_eq!(changed["payload"]["reason"], "patch");

    fake.push(Reply::text("Filed.").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "File them", "sessionKey": key})).await.unwrap();
    assert_eq!(fake.requests().last().unwrap().model(), Some("gpt-4o-mini"), "the session's model");
    c.call("sessions.patch", json!({"key": key, "model": null})).await.unwrap();
    fake.push(Reply::text("Again.").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "Once more", "sessionKey": key})).await.unwrap();
    assert_eq!(fake.requests().last().unwrap().model(), Some("gpt-4o"), "back to the default");

    let (_, message) =
        error_of(&writer.request("sessions.patch", json!({"key": key, "model": "nope/x"})).await.unwrap());
    assert!(message.starts_with("invalid sessions.patch params: model: "), "{message}");
    let (_, message) =
        error_of(&writer.request("sessions.patch", json!({"key": key, "thinkingLevel": "high"})).await.unwrap());
    assert_eq!(message, "invalid sessions.patch params: thinkingLevel: not supported by Pincer");
    let (code, _) =
        error_of(&writer.request("sessions.patch", json!({"key": key, "execHost": "gateway"})).await.unwrap());
    assert_eq!(code, "FORBIDDEN", "fields beyond display and model are operator.admin's");
    let (_, message) =
        error_of(&c.request("sessions.patch", json!({"key": "agent:main:main", "archived": true})).await.unwrap());
    assert!(message.starts_with("Cannot archive the main session"), "{message}");

    // `openclaw sessions archive` wants `entry.archivedAt` back.
    let res = writer.call("sessions.patch", json!({"key": key, "archived": true})).await.unwrap();
    assert!(res["entry"]["archivedAt"].is_i64(), "{res}");
    assert_eq!(res["entry"]["archiveReason"], "manual");
    let keys = |page: Value| -> Vec<String> {
        page["sessions"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect()
    };
    assert!(!keys(c.call("sessions.list", json!({})).await.unwrap()).contains(&key.to_string()));
    assert_eq!(keys(c.call("sessions.list", json!({"archived": true})).await.unwrap()), [key]);
    let row = c.call("sessions.list", json!({"archived": "all"})).await.unwrap();
    assert!(keys(row).contains(&key.to_string()));
    // An archived session may be deleted with operator.write alone (`archivedOnly`).
    let res = writer.call("sessions.delete", json!({"key": key, "archivedOnly": true})).await.unwrap();
    assert_eq!(res["deleted"], true);
    gw.stop().await;
}

/// `sessions.cleanup` applies `session.maintenance`: idle named sessions are archived, finished
/// idle cron runs deleted, the main session kept; `dryRun` only says so.
#[tokio::test]
async fn sessions_cleanup_archives_idle_sessions_and_dry_run_changes_nothing() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, ", session: { maintenance: { pruneAfter: '1d', maxEntries: 100 } }").await;
    let mut c = gw.client(&["operator.admin"]).await;
    for (key, text) in [("session:old", "Old"), ("main", "Main")] {
        fake.push(Reply::text(text).with_usage(FakeUsage::new(3, 2)));
        c.call("agent", json!({"message": "hi", "sessionKey": key})).await.unwrap();
    }
    gw.clock.advance(2 * 86_400_000);
    fake.push(Reply::text("Fresh").with_usage(FakeUsage::new(3, 2)));
    c.call("agent", json!({"message": "hi", "sessionKey": "session:fresh"})).await.unwrap();

    let mut reader = gw.client(&["operator.write", "operator.read"]).await;
    let (code, _) = error_of(&reader.request("sessions.cleanup", json!({})).await.unwrap());
    assert_eq!(code, "FORBIDDEN", "operator.admin's");
    let dry = c.call("sessions.cleanup", json!({"dryRun": true})).await.unwrap();
    assert_eq!(
        (dry["dryRun"].as_bool(), dry["beforeCount"].as_u64(), dry["afterCount"].as_u64(), dry["archived"].as_u64()),
        (Some(true), Some(3), Some(2), Some(1)),
        "{dry}"
    );
    assert_eq!(dry["actions"], json!([{"key": "agent:main:session:old", "action": "archive-age"}]));
    assert_eq!(c.call("sessions.list", json!({})).await.unwrap()["total"], 3, "a dry run changes nothing");
    let done =
        c.call("sessions.cleanup", json!({"enforce": true, "activeKey": "agent:main:session:fresh"})).await.unwrap();
    assert_eq!((done["applied"].as_bool(), done["appliedCount"].as_u64()), (Some(true), Some(2)), "{done}");
    let keys: Vec<_> = c.call("sessions.list", json!({"archived": true})).await.unwrap()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap().to_string(), s["archiveReason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(keys, [("agent:main:session:old".to_string(), "age-retention".to_string())]);
    let (_, message) = error_of(&c.request("sessions.cleanup", json!({"fixDmScope": true})).await.unwrap());
    assert!(message.starts_with("invalid sessions.cleanup params: fixDmScope: not supported by Pincer"), "{message}");
    // OpenClaw's CLI always sends its flags, `false` when not given.
    let plain = json!({"enforce": false, "fixMissing": false, "fixDmScope": false, "allAgents": false});
    c.call("sessions.cleanup", plain).await.unwrap();
    gw.stop().await;
}

/// `openclaw agent --deliver --reply-channel telegram --reply-to <chat>` (and `--channel` with a
/// recipient `--to`): the reply goes through the outbox to that chat, once — a repeated
/// `idempotencyKey` answers the same run and sends nothing more. A route that cannot work is
/// refused before the turn runs.
#[tokio::test]
async fn agent_deliver_sends_the_reply_through_the_outbox_once() {
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let (fake, tg) = (FakeOpenAi::start().await, FakeTelegram::start().await);
    let channels =
        format!(", channels: {{ telegram: {{ botToken: '{}', apiRoot: '{}' }} }}", FakeTelegram::TOKEN, tg.base_url());
    let gw = model_gateway(&fake, &channels).await;
    let mut c = gw.client(&["operator.admin"]).await;

    let (_, message) = error_of(
        &c.request("agent", json!({"message": "hi", "deliver": true, "replyChannel": "nope", "replyTo": "1"}))
            .await
            .unwrap(),
    );
    assert!(message.starts_with("invalid agent params: deliver: "), "{message}");
    let (_, message) = error_of(&c.request("agent", json!({"message": "hi", "deliver": true})).await.unwrap());
    assert!(message.contains("delivery channel is required"), "{message}");
    assert_eq!(fake.request_count(), 0, "no turn ran for a route that cannot work");

    fake.push(Reply::text("The report is ready.").with_usage(FakeUsage::new(3, 2)));
    let params = json!({"message": "Write the report", "deliver": true, "replyChannel": "telegram",
                        "replyTo": "123456789", "idempotencyKey": "report-1"});
    let res = c.call("agent", params.clone()).await.unwrap();
    assert_eq!(
        (res["delivery"]["status"].as_str(), res["delivery"]["channel"].as_str()),
        (Some("queued"), Some("telegram")),
        "{res}"
    );
    let id = res["delivery"]["deliveryId"].as_str().unwrap().to_string();
    let got = tg.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!((got[0].chat_id.as_str(), got[0].text.as_str()), ("123456789", "The report is ready."));
    let again = c.call("agent", params).await.unwrap();
    assert_eq!(again["delivery"]["deliveryId"], id.as_str(), "the same run, the same delivery");
    let listed = c.call("deliveries.list", json!({})).await.unwrap();
    let rows = listed["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["origin"]["kind"], "agent-reply", "{listed}");
    assert_eq!((tg.messages().len(), fake.request_count()), (1, 1), "sent once, one turn");

    // `--channel telegram --to <chat>`: the recipient is the target (and, under dmScope main,
    // the turn runs in the main session).
    fake.push(Reply::text("Second.").with_usage(FakeUsage::new(3, 2)));
    let res = c
        .call("agent", json!({"message": "again", "deliver": true, "channel": "telegram", "to": "555"}))
        .await
        .unwrap();
    assert_eq!(res["sessionKey"], "agent:main:main", "{res}");
    let got = tg.wait_for_messages(2, Duration::from_secs(20)).await;
    assert_eq!((got[1].chat_id.as_str(), got[1].text.as_str()), ("555", "Second."));
    gw.stop().await;
}

/// A chat view opening on a fresh install (`openclaw tui` loads the main session's history right
/// after connecting) gets the main session's empty transcript, not `session not found`; a named
/// session that never ran is still unknown.
#[tokio::test]
async fn chat_history_of_a_fresh_main_session_is_empty_not_an_error() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(&fake, "").await;
    let mut c = gw.client(&["operator.read", "operator.write"]).await;
    for key in ["agent:main:main", "main"] {
        let page = c.call("chat.history", json!({"sessionKey": key, "limit": 200})).await.unwrap();
        assert_eq!(
            (page["sessionKey"].as_str(), page["messages"].as_array().map(Vec::len)),
            (Some("agent:main:main"), Some(0)),
            "{page}"
        );
        assert_eq!(page["session"]["isMain"], true);
    }
    let startup = c.call("chat.startup", json!({"sessionKey": "agent:ops:main"})).await.unwrap();
    assert_eq!(startup["session"]["agentId"], "ops", "{startup}");
    let (_, message) = error_of(&c.request("chat.history", json!({"sessionKey": "session:never"})).await.unwrap());
    assert!(message.starts_with("session not found"), "{message}");
    gw.stop().await;
}

/// `models.authStatus`, as the Control UI's Models page reads it: each configured provider with a
/// key is `static` and says where the key comes from (`${VAR}` in the file is `env`), a remote
/// provider without one is `missing`, a local server without one needs none and is left out;
/// no key's value is in the answer. Closed params, `operator.read`'s.
#[tokio::test]
async fn models_auth_status_tells_each_providers_credential_state_never_its_value() {
    let fake = FakeOpenAi::start().await;
    let gw = model_gateway(
        &fake,
        ", models: { providers: {
             openai: { api: 'openai-completions', baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-secret-provider-key', models: [{ id: 'gpt-4o' }] },
             work: { api: 'openai-completions', baseUrl: 'https://llm.example.com/v1', apiKey: 'sk-secret-work-key', models: [{ id: 'w' }] },
             anthropic: { api: 'anthropic-messages', baseUrl: 'https://api.anthropic.com', models: [{ id: 'claude' }] },
             ollama: { api: 'openai-completions', baseUrl: 'http://127.0.0.1:11434/v1', models: [{ id: 'llama' }] } } }",
    )
    .await;
    // The file as the user wrote it: the work key is read from the environment.
    std::fs::write(
        &gw.paths.config_path,
        "{ models: { providers: { openai: { apiKey: 'sk-secret-provider-key' }, work: { apiKey: '${WORK_LLM_KEY}' } } } }",
    )
    .unwrap();
    let mut c = gw.client(&["operator.read"]).await;
    let status = c.call("models.authStatus", json!({"refresh": true, "agentId": "main"})).await.unwrap();
    assert!(status["ts"].is_i64(), "{status}");
    let mut providers = status["providers"].as_array().unwrap().clone();
    providers.sort_by_key(|p| p["provider"].as_str().unwrap().to_string());
    assert_eq!(
        providers,
        [
            json!({"provider": "anthropic", "displayName": "anthropic", "status": "missing", "profiles": []}),
            json!({"provider": "openai", "displayName": "openai", "status": "static", "profiles": [],
                   "apiKey": {"source": "config"}}),
            json!({"provider": "work", "displayName": "work", "status": "static", "profiles": [],
                   "apiKey": {"source": "env", "envVar": "WORK_LLM_KEY"}}),
        ]
    );
    assert!(!status.to_string().contains("sk-secret"), "a key leaked: {status}");
    assert_eq!(c.call("models.authStatus", json!({})).await.unwrap()["providers"].as_array().unwrap().len(), 3);
    let (_, message) = error_of(&c.request("models.authStatus", json!({"agentId": "ops"})).await.unwrap());
    assert!(message.contains("unknown agent id \"ops\""), "{message}");
    let (_, message) = error_of(&c.request("models.authStatus", json!({"profileId": "p"})).await.unwrap());
    assert!(message.starts_with("invalid models.authStatus params: unknown field"), "{message}");
    let mut approver = gw.client(&["operator.approvals"]).await;
    let (code, message) = error_of(&approver.request("models.authStatus", json!({})).await.unwrap());
    assert_eq!((code.as_str(), message.as_str()), ("FORBIDDEN", "missing scope: operator.read"));
    gw.stop().await;
}

/// What the Control UI reads on its pages for features Pincer does not have answers OpenClaw's
/// empty or default shape (never invented data), with closed params and OpenClaw's scopes:
/// talk, side chat, transcript branches, progress cards, the session observer and the system
/// agent's approvals (empty with an exec approval pending too: `tests/tools.rs`).
#[tokio::test]
async fn the_control_uis_reads_of_features_pincer_lacks_answer_openclaws_empty_shapes() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    assert_eq!(
        c.call("talk.catalog", json!({})).await.unwrap(),
        json!({"modes": [], "transports": [], "brains": [],
               "speech": {"ready": false, "providers": []},
               "transcription": {"ready": false, "providers": []},
               "realtime": {"ready": false, "providers": []}})
    );
    c.call("talk.catalog", json!({"provider": "openai", "model": "gpt-realtime"})).await.unwrap();
    for key in ["main", "agent:main:main", "session:notes"] {
        let target = json!({"sessionKey": key});
        assert_eq!(c.call("sessions.companion.state", target.clone()).await.unwrap(), json!({"exchanges": []}));
        assert_eq!(c.call("sessions.branches.list", target.clone()).await.unwrap(), json!({"branches": []}));
        assert_eq!(c.call("progressCard.get", target).await.unwrap(), json!({"card": null}));
    }
    for visible in [true, false] {
        let answer = c.call("sessions.observer.visibility", json!({"visible": visible})).await.unwrap();
        assert_eq!(answer, json!({"ok": true}));
    }
    assert_eq!(c.call("openclaw.approval.list", json!({})).await.unwrap(), json!([]));
    let artifacts = json!({"sessionKey": "agent:main:main", "agentId": "main", "type": "image", "limit": 4});
    assert_eq!(c.call("artifacts.list", artifacts).await.unwrap(), json!({"artifacts": []}));

    // Bad input is refused by name, as OpenClaw's closed schemas refuse it.
    for (method, params, want) in [
        ("talk.catalog", json!({"voice": "x"}), "invalid talk.catalog params: unknown field `voice`"),
        ("sessions.companion.state", json!({}), "invalid sessions.companion.state params: missing field `sessionKey`"),
        (
            "sessions.branches.list",
            json!({"sessionKey": " "}),
            "invalid sessions.branches.list params: sessionKey: must name a session",
        ),
        (
            "progressCard.get",
            json!({"sessionKey": "main", "agentId": "ops"}),
            "invalid progressCard.get params: agentId",
        ),
        ("progressCard.get", json!({"sessionKey": "main", "rev": 1}), "invalid progressCard.get params: unknown field"),
        (
            "sessions.observer.visibility",
            json!({}),
            "invalid sessions.observer.visibility params: missing field `visible`",
        ),
        ("openclaw.approval.list", json!({"all": true}), "invalid openclaw.approval.list params: unknown field"),
        ("artifacts.list", json!({"limit": 5}), "invalid artifacts.list params: limit: must be between 1 and 4"),
        ("artifacts.list", json!({"type": "video"}), "invalid artifacts.list params: type"),
    ] {
        let (code, message) = error_of(&c.request(method, params).await.unwrap());
        assert_eq!(code, "INVALID_REQUEST", "{method}");
        assert!(message.starts_with(want), "{method}: {message}");
    }

    // OpenClaw's scopes: the reads are `operator.read`'s, the system agent's approvals
    // `operator.approvals`'.
    let mut approver = gw.client(&["operator.approvals"]).await;
    for (method, params) in [
        ("talk.catalog", json!({})),
        ("sessions.companion.state", json!({"sessionKey": "main"})),
        ("sessions.branches.list", json!({"sessionKey": "main"})),
        ("progressCard.get", json!({"sessionKey": "main"})),
        ("sessions.observer.visibility", json!({"visible": true})),
        ("artifacts.list", json!({})),
    ] {
        let (code, message) = error_of(&approver.request(method, params).await.unwrap());
        assert_eq!((code.as_str(), message.as_str()), ("FORBIDDEN", "missing scope: operator.read"), "{method}");
    }
    assert_eq!(approver.call("openclaw.approval.list", json!({})).await.unwrap(), json!([]));
    let mut reader = gw.client(&["operator.read"]).await;
    let (code, message) = error_of(&reader.request("openclaw.approval.list", json!({})).await.unwrap());
    assert_eq!((code.as_str(), message.as_str()), ("FORBIDDEN", "missing scope: operator.approvals"));
    gw.stop().await;
}

/// Polls `audit.activity.list` with `params` until `n` records are listed.
async fn activity(c: &mut pincer_testkit::ws::RawClient, params: Value, n: usize) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = c.call("audit.activity.list", params.clone()).await.unwrap();
        if page["events"].as_array().unwrap().len() >= n {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "fewer than {n} records: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// OpenClaw's activity ledger over a cron run whose model called a tool and whose reply was
/// delivered: the run, the tool action and the outbound message as records, newest first, paged
/// by sequence; metadata only (no message text, no tool arguments, the chat as a keyed hash);
/// `audit.list` in its older shape; run inspection; closed params refused by name.
#[tokio::test]
async fn the_audit_methods_list_a_cron_runs_agent_tool_and_message_records() {
    use crate::support::wait_runs;
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let (fake, tg) = (FakeOpenAi::start().await, FakeTelegram::start().await);
    let channels =
        format!(", channels: {{ telegram: {{ botToken: '{}', apiRoot: '{}' }} }}", FakeTelegram::TOKEN, tg.base_url());
    let gw = model_gateway(&fake, &channels).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut c = gw.client(&["operator.read"]).await;

    fake.push(Reply::tool_call("write", json!({"path": "secret-notes.txt", "content": "the vault code"})));
    fake.push(Reply::text("Report filed.").with_usage(FakeUsage::new(3, 2)));
    let job = admin
        .call(
            "cron.add",
            json!({"name": "report", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                   "payload": {"kind": "agentTurn", "message": "File the report"},
                   "delivery": {"mode": "announce", "channel": "telegram", "to": "123456789"}}),
        )
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin.call("cron.run", json!({"id": job})).await.unwrap();
    let run_id = wait_runs(&mut admin, &job, 1).await[0]["runId"].as_str().unwrap().to_string();
    tg.wait_for_messages(1, Duration::from_secs(20)).await;

    // Newest first: the delivered message, the run's end, the tool's end and start, the run's start.
    let page = activity(&mut c, json!({}), 5).await;
    let events = page["events"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e["eventType"].as_str().unwrap(), e["action"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("outbound_message", "message.outbound.finished", "succeeded"),
            ("agent_run", "agent.run.finished", "succeeded"),
            ("tool_action", "tool.action.finished", "succeeded"),
            ("tool_action", "tool.action.started", "started"),
            ("agent_run", "agent.run.started", "started"),
        ],
        "{page}"
    );
    assert!(page.get("nextCursor").is_none(), "{page}");
    let seqs: Vec<i64> = events.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let run = &events[4];
    assert_eq!((run["runId"].as_str(), run["agentId"].as_str()), (Some(run_id.as_str()), Some("main")));
    assert_eq!(run["actor"], json!({"type": "agent", "id": "main"}));
    assert_eq!((run["schemaVersion"].as_i64(), run["redaction"].as_str()), (Some(1), Some("metadata_only")));
    assert!(run["sessionKey"].as_str().unwrap().contains(":cron:"), "{run}");
    let tool = &events[2];
    assert_eq!((tool["toolName"].as_str(), tool["toolCallId"].as_str()), (Some("write"), Some("call_write")));
    let sent = &events[0];
    assert_eq!((sent["channel"].as_str(), sent["direction"].as_str()), (Some("telegram"), Some("outbound")));
    assert_eq!((sent["outcome"].as_str(), sent["runId"].as_str()), (Some("sent"), Some(run_id.as_str())));
    assert_eq!(sent["actor"], json!({"type": "agent", "id": "main"}));
    let target = sent["targetRef"].as_str().unwrap();
    assert!(target.starts_with("hmac-sha256:v1:") && target.len() == 15 + 32 + 1 + 64, "{sent}");
    let text = page.to_string();
    for secret in ["123456789", "Report filed", "vault code", "File the report", "secret-notes"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }

    // Filters and paging (the cursor is the last sequence of the page before).
    let first = c.call("audit.activity.list", json!({"kind": "tool_action", "limit": 1})).await.unwrap();
    assert_eq!(first["events"][0]["action"], "tool.action.finished", "{first}");
    let cursor = first["nextCursor"].as_str().unwrap().to_string();
    let next =
        c.call("audit.activity.list", json!({"kind": "tool_action", "limit": 1, "cursor": cursor})).await.unwrap();
    assert_eq!(next["events"][0]["action"], "tool.action.started", "{next}");
    assert!(next.get("nextCursor").is_none(), "{next}");
    let by_run = c.call("audit.activity.list", json!({"runId": run_id})).await.unwrap();
    assert_eq!(by_run["events"].as_array().unwrap().len(), 5, "the message names its run too: {by_run}");
    let outbound = c.call("audit.activity.list", json!({"kind": "message", "direction": "outbound"})).await.unwrap();
    assert_eq!(outbound["events"].as_array().unwrap().len(), 1, "{outbound}");
    let failed = c.call("audit.activity.list", json!({"status": "failed"})).await.unwrap();
    assert_eq!(failed["events"], json!([]));

    // `audit.list`: runs and tools only, without `schemaVersion` and `eventType`.
    let legacy = c.call("audit.list", json!({"runId": run_id})).await.unwrap();
    let legacy = legacy["events"].as_array().unwrap();
    assert_eq!(legacy.len(), 4, "{legacy:?}");
    assert!(legacy.iter().all(|e| e.get("schemaVersion").is_none() && e.get("eventType").is_none()), "{legacy:?}");

    // Run inspection: Pincer keeps no execution identity; an unknown run is OpenClaw's not-found.
    let known = c.call("audit.run.inspect", json!({"runId": run_id})).await.unwrap();
    assert_eq!(known["run"], json!({"runId": run_id, "status": "known"}));
    assert_eq!((known["identity"]["state"].as_str(), known["schemaVersion"].as_i64()), (Some("unsupported"), Some(1)));
    assert_eq!(known["decisionDisplays"], json!([]));
    let unknown = c.call("audit.run.inspect", json!({"runId": "no-such-run", "executionLimit": 50})).await.unwrap();
    assert_eq!(unknown["run"], json!({"runId": "no-such-run", "status": "unknown"}));
    assert_eq!(
        (unknown["identity"]["state"].as_str(), unknown["identity"]["reasonCode"].as_str()),
        (Some("unknown"), Some("run_not_found"))
    );
    assert_eq!(unknown["coverage"]["missingEvidence"], json!(["run.record", "identity.context"]));

    // Closed params, OpenClaw's refusals.
    for (method, params, want) in [
        (
            "audit.activity.list",
            json!({"verbose": true}),
            "invalid audit.activity.list params: unknown field `verbose`",
        ),
        ("audit.list", json!({"direction": "inbound"}), "invalid audit.list params: unknown field `direction`"),
        (
            "audit.list",
            json!({"kind": "message"}),
            "invalid audit.list params: kind: must be one of agent_run, tool_action",
        ),
        (
            "audit.activity.list",
            json!({"limit": 501}),
            "invalid audit.activity.list params: limit: must be between 1 and 500",
        ),
        ("audit.activity.list", json!({"cursor": "abc"}), "invalid audit.activity.list range or cursor"),
        ("audit.activity.list", json!({"after": 5, "before": 4}), "invalid audit.activity.list range or cursor"),
        (
            "audit.activity.list",
            json!({"kind": "message", "sessionKey": "agent:main:main"}),
            "invalid audit.activity.list filters: sessionKey only applies to kind agent_run or tool_action",
        ),
        (
            "audit.activity.list",
            json!({"sessionKey": "agent:main:main", "channel": "telegram"}),
            "invalid audit.activity.list filters: channel cannot be combined with sessionKey",
        ),
        ("audit.run.inspect", json!({}), "invalid audit.run.inspect params: pass exactly one of runId and executionId"),
        ("audit.run.inspect", json!({"runId": "r", "decisionCursor": "x"}), "invalid audit.run.inspect cursor"),
        (
            "audit.run.inspect",
            json!({"runId": "r", "token": "x"}),
            "invalid audit.run.inspect params: unknown field `token`",
        ),
    ] {
        let (code, message) = error_of(&c.request(method, params.clone()).await.unwrap());
        assert_eq!(code, "INVALID_REQUEST", "{method} {params}");
        assert!(message.starts_with(want), "{method} {params}: {message}");
    }
    // Reading the ledger needs `operator.read`, as in OpenClaw.
    let mut none = gw.client(&[]).await;
    let (code, _) = error_of(&none.request("audit.activity.list", json!({})).await.unwrap());
    assert_eq!(code, "FORBIDDEN");
    gw.stop().await;
}
