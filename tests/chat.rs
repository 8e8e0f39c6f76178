//! Chat over the gateway, as OpenClaw's terminal UI and Control UI use it: `chat.send` answers
//! `started` first and streams `chat` events (deltas in order, one `final` with the whole text),
//! `chat.abort` stops a stream and records the aborted turn, `chat.history`'s `cursor` catches up,
//! `sessions.messages.subscribe` routes `session.message`, and `agent` answers `accepted` first.

use pincer_testkit::fakes::openai::{FakeOpenAi, FakeUsage, Gate, Reply};
use pincer_testkit::ws::RawClient;
use serde_json::{Value, json};

use crate::support::{TestGateway, error_of};

async fn gateway(fake: &FakeOpenAi) -> TestGateway {
    TestGateway::start_with(&format!(
        "{{ models: {{ providers: {{ openai: {{ api: 'openai-completions', baseUrl: '{}', apiKey: 'sk-test', models: [{{ id: 'gpt-4o' }}] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'openai/gpt-4o' }} }} }} }}",
        fake.base_url()
    ))
    .await
}

/// The `chat` events of `run_id` until its terminal one (`final`, `aborted` or `error`).
async fn chat_events(c: &mut RawClient, run_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let ev = c.next_event("chat").await.unwrap();
        let p = ev["payload"].clone();
        if p["runId"] != run_id {
            continue;
        }
        let done = p["state"] != "delta";
        out.push(p);
        if done {
            return out;
        }
    }
}

#[tokio::test]
async fn chat_send_answers_started_then_streams_deltas_in_order_and_a_final_with_the_whole_text() {
    let fake = FakeOpenAi::start().await;
    let text = "Chat streams, piece by piece, in order.";
    fake.push(Reply::text(text).in_chunks(5).with_usage(FakeUsage::new(7, 9)));
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.write", "operator.read"]).await;

    let id = c
        .send_request("chat.send", json!({"sessionKey": "agent:main:main", "message": "Stream please", "idempotencyKey": "chat-1", "thinking": "low"}))
        .await
        .unwrap();
    // The answer comes before any event of the run.
    let first = loop {
        let f = c.next_frame().await.unwrap();
        if f["type"] == "res" || f["payload"]["runId"] == "chat-1" {
            break f;
        }
    };
    assert_eq!((first["type"].as_str(), first["id"].as_str()), (Some("res"), Some(id.as_str())), "{first}");
    assert_eq!(first["payload"], json!({"runId": "chat-1", "status": "started", "sessionKey": "agent:main:main"}));

    let events = chat_events(&mut c, "chat-1").await;
    let (deltas, last) = events.split_at(events.len() - 1);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "seq counts up from 1, as OpenClaw's");
    assert_eq!(deltas.len(), 5, "{events:?}");
    let mut so_far = String::new();
    for d in deltas {
        assert_eq!((d["state"].as_str(), d["sessionKey"].as_str()), (Some("delta"), Some("agent:main:main")));
        so_far.push_str(d["deltaText"].as_str().unwrap());
        assert_eq!(d["message"]["content"][0]["text"], so_far.as_str(), "each delta carries the text so far");
    }
    assert_eq!(so_far, text);
    let last = &last[0];
    assert_eq!(last["state"], "final");
    assert_eq!(last["message"]["role"], "assistant");
    assert_eq!(last["message"]["content"], json!([{"type": "text", "text": text}]));
    assert_eq!(last["usage"]["output_tokens"], 9);

    let history = c.call("chat.history", json!({"sessionKey": "main"})).await.unwrap();
    let entries: Vec<(&str, &str)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(entries, vec![("user", "Stream please"), ("assistant", text)]);

    // The same idempotencyKey again, after the run: a new run is not started twice while it runs,
    // and unknown fields are refused by name.
    let (code, message) = error_of(
        &c.request(
            "chat.send",
            json!({"sessionKey": "main", "message": "x", "idempotencyKey": "k", "attachments": []}),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("INVALID_REQUEST", "invalid chat.send params: attachments: not supported by Pincer")
    );
    let (_, message) = error_of(
        &c.request("chat.send", json!({"sessionKey": "main", "message": "x", "idempotencyKey": "k", "colour": 1}))
            .await
            .unwrap(),
    );
    assert!(message.starts_with("invalid chat.send params: unknown field `colour`"), "{message}");
    let (_, message) = error_of(&c.request("chat.send", json!({"sessionKey": "main", "message": "x"})).await.unwrap());
    assert_eq!(message, "invalid chat.send params: missing field `idempotencyKey`");
    gw.stop().await;
}

#[tokio::test]
async fn chat_send_needs_operator_write() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.read"]).await;
    let (code, message) = error_of(
        &c.request("chat.send", json!({"sessionKey": "main", "message": "hi", "idempotencyKey": "r"})).await.unwrap(),
    );
    assert_eq!((code.as_str(), message.as_str()), ("FORBIDDEN", "missing scope: operator.write"));
    let (code, message) = error_of(&c.request("chat.abort", json!({"sessionKey": "main"})).await.unwrap());
    assert_eq!((code.as_str(), message.as_str()), ("FORBIDDEN", "missing scope: operator.write"));
    assert!(c.call("chat.metadata", json!({})).await.is_ok());
    assert_eq!(fake.request_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn chat_abort_stops_the_stream_and_records_an_aborted_turn() {
    let fake = FakeOpenAi::start().await;
    let gate = Gate::new();
    fake.push(Reply::paced("One two three four five six", 6, &gate));
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.write"]).await;
    let mut watcher = gw.client(&["operator.read"]).await;

    let started = c
        .call("chat.send", json!({"sessionKey": "session:abort", "message": "Count", "idempotencyKey": "run-a"}))
        .await
        .unwrap();
    assert_eq!(started["status"], "started");
    gate.release(2);
    let mut streamed = String::new();
    for _ in 0..2 {
        let ev = watcher.next_event("chat").await.unwrap();
        assert_eq!(ev["payload"]["state"], "delta", "{ev}");
        streamed.push_str(ev["payload"]["deltaText"].as_str().unwrap());
    }
    let again = c
        .call("chat.send", json!({"sessionKey": "session:abort", "message": "Count", "idempotencyKey": "run-a"}))
        .await
        .unwrap();
    assert_eq!(again["status"], "in_flight", "a repeated key joins the running run");

    let (_, message) =
        error_of(&c.request("chat.abort", json!({"sessionKey": "main", "runId": "run-a"})).await.unwrap());
    assert_eq!(
        message,
        "invalid chat.abort params: runId: run run-a belongs to session agent:main:session:abort, not agent:main:main"
    );
    let abort = c.call("chat.abort", json!({"sessionKey": "session:abort", "preserveSideRuns": true})).await.unwrap();
    assert_eq!(abort, json!({"ok": true, "aborted": true, "runIds": ["run-a"]}));
    // The rest of the reply may now arrive at the fake; none of it reaches a client.
    gate.release(10);

    let ev = watcher.next_event("chat").await.unwrap();
    let p = &ev["payload"];
    assert_eq!((p["state"].as_str(), p["stopReason"].as_str()), (Some("aborted"), Some("rpc")), "{ev}");
    assert_eq!(p["message"]["content"][0]["text"], streamed.as_str());

    let history = c.call("chat.history", json!({"sessionKey": "session:abort"})).await.unwrap();
    let last = history["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["role"], &last["text"], &last["aborted"], &last["runId"]),
        (&json!("assistant"), &json!(streamed), &json!(true), &json!("run-a")),
        "{history}"
    );
    assert_eq!(history["messages"].as_array().unwrap().len(), 2, "the user message and the aborted reply: {history}");

    // Nothing is running now; no further chat event of the run ever comes.
    let none = c.call("chat.abort", json!({"sessionKey": "session:abort"})).await.unwrap();
    assert_eq!(none, json!({"ok": true, "aborted": false, "runIds": []}));
    c.call("health", json!({})).await.unwrap();
    watcher.wait_up_to(std::time::Duration::from_millis(500));
    while let Ok(f) = watcher.next_frame().await {
        assert!(!(f["event"] == "chat" && f["payload"]["runId"] == "run-a"), "an event after the abort: {f}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn chat_history_cursor_catches_up_with_what_was_added_and_resets_when_it_cannot() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::text("ok"));
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.write"]).await;
    c.call("agent", json!({"message": "one", "sessionKey": "session:cur"})).await.unwrap();

    let page = c.call("chat.history", json!({"sessionKey": "session:cur"})).await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    let cursor = page["deltaCursor"].as_str().unwrap().to_string();

    let nothing = c.call("chat.history", json!({"sessionKey": "session:cur", "cursor": cursor})).await.unwrap();
    assert_eq!(
        (&nothing["kind"], &nothing["messages"], &nothing["deltaCursor"]),
        (&json!("delta"), &json!([]), &json!(cursor))
    );
    assert_eq!(nothing["sessionInfo"]["key"], "agent:main:session:cur");

    c.call("agent", json!({"message": "two", "sessionKey": "session:cur"})).await.unwrap();
    let delta = c.call("chat.history", json!({"sessionKey": "session:cur", "cursor": cursor})).await.unwrap();
    let texts: Vec<&str> = delta["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["two", "ok"]);
    let next = delta["deltaCursor"].as_str().unwrap().to_string();
    assert_ne!(next, cursor);
    let after = c.call("chat.history", json!({"sessionKey": "session:cur", "cursor": next})).await.unwrap();
    assert_eq!(after["messages"], json!([]));

    // More than `limit` after the cursor: the client must fetch a fresh page.
    let reset =
        c.call("chat.history", json!({"sessionKey": "session:cur", "cursor": cursor, "limit": 1})).await.unwrap();
    assert_eq!(reset, json!({"kind": "reset"}));
    // A cursor of another incarnation of the session (or past its end) is a reset too.
    let seq = cursor.split(':').nth(1).unwrap();
    let other =
        c.call("chat.history", json!({"sessionKey": "session:cur", "cursor": format!("1:{seq}")})).await.unwrap();
    assert_eq!(other, json!({"kind": "reset"}));
    let created = cursor.split(':').next().unwrap();
    let beyond =
        c.call("chat.history", json!({"sessionKey": "session:cur", "cursor": format!("{created}:999")})).await.unwrap();
    assert_eq!(beyond, json!({"kind": "reset"}));
    let (_, message) =
        error_of(&c.request("chat.history", json!({"sessionKey": "session:cur", "cursor": "abc"})).await.unwrap());
    assert_eq!(message, "invalid chat.history params: cursor: \"abc\" is not a deltaCursor from chat.history");

    // chat.startup is the same first page.
    let startup = c.call("chat.startup", json!({"sessionKey": "session:cur", "limit": 2})).await.unwrap();
    assert_eq!(startup["messages"].as_array().unwrap().len(), 2);
    assert_eq!(startup["hasMore"], true);
    let (_, message) = error_of(&c.request("chat.startup", json!({"shortId": "x", "agentId": "main"})).await.unwrap());
    assert_eq!(message, "invalid chat.startup params: shortId: not supported by Pincer");
    gw.stop().await;
}

#[tokio::test]
async fn agent_answers_accepted_first_then_its_result() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Done."));
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.write"]).await;
    let id = c.send_request("agent", json!({"message": "Go", "idempotencyKey": "acc-1"})).await.unwrap();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let f = c.next_frame().await.unwrap();
        if f["type"] == "res" && f["id"] == id.as_str() {
            answers.push(f["payload"].clone());
        }
    }
    let accepted = answers[0].as_object().unwrap();
    assert_eq!(
        (&accepted["status"], &accepted["runId"], &accepted["sessionKey"], &accepted["agentId"]),
        (&json!("accepted"), &json!("acc-1"), &json!("agent:main:main"), &json!("main"))
    );
    assert!(accepted["acceptedAt"].is_i64());
    assert_eq!((&answers[1]["status"], &answers[1]["text"]), (&json!("ok"), &json!("Done.")));
    gw.stop().await;
}

#[tokio::test]
async fn session_messages_go_only_to_connections_subscribed_to_the_session() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::text("Noted."));
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.write"]).await;
    let mut subscribed = gw.client(&["operator.read"]).await;
    let mut other = gw.client(&["operator.read"]).await;
    let sub = subscribed.call("sessions.messages.subscribe", json!({"key": "session:notes"})).await.unwrap();
    assert_eq!(sub, json!({"subscribed": true, "key": "agent:main:session:notes"}));
    other.call("sessions.messages.subscribe", json!({"key": "main"})).await.unwrap();
    // OpenClaw's Control UI asks for approvals too; Pincer accepts the flag (it sends none over
    // the gateway) but still refuses what it does not know.
    other.call("sessions.messages.subscribe", json!({"key": "main", "includeApprovals": true})).await.unwrap();
    let (_, message) =
        error_of(&other.request("sessions.messages.subscribe", json!({"key": "main", "bogus": true})).await.unwrap());
    assert!(message.starts_with("invalid sessions.messages.subscribe params"), "{message}");
    assert!(message.contains("bogus"), "{message}");

    c.call("chat.send", json!({"sessionKey": "session:notes", "message": "Remember milk", "idempotencyKey": "n-1"}))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = subscribed.next_event("session.message").await.unwrap();
        let p = &ev["payload"];
        assert_eq!(p["sessionKey"], "agent:main:session:notes");
        seen.push((
            p["message"]["role"].as_str().unwrap().to_string(),
            p["message"]["content"][0]["text"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        seen,
        vec![("user".to_string(), "Remember milk".to_string()), ("assistant".to_string(), "Noted.".to_string())]
    );
    // The connection subscribed to another session got the run's chat events but no session.message.
    chat_events(&mut other, "n-1").await;
    other.call("health", json!({})).await.unwrap();
    other.wait_up_to(std::time::Duration::from_millis(300));
    while let Ok(f) = other.next_frame().await {
        assert_ne!(f["event"], "session.message", "{f}");
    }
    gw.stop().await;
}

/// `session.message` is sent once its entry is in the transcript, in OpenClaw's shape: the entry
/// as `chat.history` has it (`__openclaw.seq`, the user message's `<runId>:user` key), its
/// `messageSeq` and the session's agent. OpenClaw's Control UI reloads the history when the
/// user's message arrives while the reply streams; a message sent before its row existed (and
/// without `messageSeq`) made the page drop its own copy of what the user had just sent.
#[tokio::test]
async fn a_session_message_follows_its_committed_entry_with_openclaws_seq_and_keys() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.write"]).await;
    let mut watcher = gw.client(&["operator.read"]).await;
    watcher.call("sessions.messages.subscribe", json!({"key": "main"})).await.unwrap();
    let gate = Gate::new();
    fake.push(Reply::paced("Streaming slowly.", 2, &gate));
    let sent = c
        .call("chat.send", json!({"sessionKey": "main", "message": "Keep me visible", "idempotencyKey": "vis-1"}))
        .await
        .unwrap();
    assert_eq!(sent["status"], "started");
    // The reply is held back: the user's message is announced while the run streams.
    let user = watcher.next_event("session.message").await.unwrap()["payload"].clone();
    assert_eq!(
        (&user["sessionKey"], &user["agentId"], &user["runId"], &user["message"]["role"]),
        (&json!("agent:main:main"), &json!("main"), &json!("vis-1"), &json!("user"))
    );
    assert_eq!(user["message"]["__openclaw"]["idempotencyKey"], "vis-1:user", "{user}");
    let seq = user["messageSeq"].as_i64().unwrap_or_else(|| panic!("no messageSeq: {user}"));
    assert_eq!(user["message"]["__openclaw"]["seq"], seq, "{user}");
    // A history read on the event finds the entry, under the same seq.
    let history = watcher.call("chat.history", json!({"sessionKey": "main"})).await.unwrap();
    let last = history["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["role"], &last["text"], &last["__openclaw"]["seq"]),
        (&json!("user"), &json!("Keep me visible"), &json!(seq))
    );
    assert_eq!(last, user["message"], "the event's message is the history's entry");

    gate.release(2);
    let reply = watcher.next_event("session.message").await.unwrap()["payload"].clone();
    assert_eq!((&reply["message"]["role"], &reply["messageSeq"]), (&json!("assistant"), &json!(seq + 1)), "{reply}");
    let history = watcher.call("chat.history", json!({"sessionKey": "main"})).await.unwrap();
    assert_eq!(history["messages"].as_array().unwrap().last().unwrap(), &reply["message"]);
    gw.stop().await;
}

#[tokio::test]
async fn chat_metadata_names_the_agent_and_its_models() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.read"]).await;
    let meta = c.call("chat.metadata", json!({"sessionKey": "main"})).await.unwrap();
    assert_eq!(
        meta,
        json!({"agentId": "main", "sessionKey": "agent:main:main", "model": "openai/gpt-4o",
            "models": [{"id": "openai/gpt-4o", "name": "gpt-4o", "provider": "openai"}], "commands": []})
    );
    let (_, message) = error_of(&c.request("chat.metadata", json!({"authProfileId": "p"})).await.unwrap());
    assert_eq!(message, "invalid chat.metadata params: authProfileId: not supported by Pincer");
    gw.stop().await;
}

/// What OpenClaw's Control UI needs to draw a chat turn live: the `hello-ok` names the main
/// session it chats in (`sessionDefaults`) and the run's `chat` events carry that key (under
/// Pincer's old `agents.list` scope `global` the page chatted as `global` and dropped every event
/// of `agent:main:main`); `sessions.list` has the `defaults` its chat view draws its model picker
/// from (without them the view threw while drawing, and stayed blank); and `chat.history` names
/// each entry as OpenClaw does (`__openclaw.seq`, `runId`, the user message's
/// `<runId>:user` key), and answers the `inputRunIds` the page confirms its send with.
#[tokio::test]
async fn openclaws_chat_view_finds_its_session_its_turn_and_the_defaults_it_draws_with() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Drawn live.").in_chunks(2));
    let gw = gateway(&fake).await;
    let (mut c, hello) = RawClient::connect(
        &gw.url(),
        pincer_testkit::ws::cli_connect_params(Some(crate::support::TOKEN), &["operator.write", "operator.read"]),
    )
    .await
    .unwrap();
    let defaults = &hello["snapshot"]["sessionDefaults"];
    assert_eq!(
        *defaults,
        json!({"defaultAgentId": "main", "modelConfigured": true, "ownership": "sole", "selectionRequired": false,
               "mainKey": "main", "mainSessionKey": "agent:main:main", "scope": "per-sender"}),
        "{hello}"
    );
    let roster = c.call("agents.list", json!({})).await.unwrap();
    assert_eq!((roster["mainKey"].as_str(), roster["scope"].as_str()), (Some("main"), Some("per-sender")));

    let main = defaults["mainSessionKey"].as_str().unwrap();
    c.call("chat.send", json!({"sessionKey": main, "message": "Draw me", "idempotencyKey": "ui-1"})).await.unwrap();
    let events = chat_events(&mut c, "ui-1").await;
    assert!(events.iter().all(|e| e["sessionKey"] == main), "{events:?}");
    assert_eq!(events.last().unwrap()["state"], "final");

    let list_defaults = json!({"modelProvider": "openai", "model": "gpt-4o", "contextTokens": null});
    assert_eq!(c.call("sessions.list", json!({})).await.unwrap()["defaults"], list_defaults);
    let children = c.call("sessions.list", json!({"spawnedBy": main, "limit": 10000})).await.unwrap();
    assert_eq!((children["sessions"].clone(), children["defaults"].clone()), (json!([]), list_defaults));

    let page =
        c.call("chat.history", json!({"sessionKey": main, "inputRunIds": ["ui-1"], "limit": 1000})).await.unwrap();
    assert_eq!((page["inputReceipts"].clone(), page["inputConsumptions"].clone()), (json!([]), json!([])), "{page}");
    let ids: Vec<Value> = page["messages"].as_array().unwrap().iter().map(|m| m["__openclaw"].clone()).collect();
    assert_eq!(
        ids,
        [json!({"seq": 1, "runId": "ui-1", "idempotencyKey": "ui-1:user"}), json!({"seq": 2, "runId": "ui-1"})]
    );
    let plain = c.call("chat.history", json!({"sessionKey": main})).await.unwrap();
    assert!(plain.get("inputReceipts").is_none(), "only when asked: {plain}");
    let delta = c
        .call("chat.history", json!({"sessionKey": main, "cursor": page["deltaCursor"], "inputRunIds": ["ui-1"]}))
        .await
        .unwrap();
    assert_eq!((delta["kind"].as_str(), delta["inputReceipts"].clone()), (Some("delta"), json!([])), "{delta}");
    for (ids, why) in [
        (json!([]), "inputRunIds: give between 1 and 50 run ids"),
        (json!(["a", "a"]), "inputRunIds: each run id at most once"),
        (json!([""]), "inputRunIds: \"\" is not a run id (1 to 256 characters)"),
    ] {
        let (_, message) =
            error_of(&c.request("chat.history", json!({"sessionKey": main, "inputRunIds": ids})).await.unwrap());
        assert_eq!(message, format!("invalid chat.history params: {why}"));
    }
    gw.stop().await;
}

/// OpenClaw's Control UI sends the transcript it shows as `sessionId`: the current one is
/// accepted; one a reset replaced is refused, saying so, and nothing is added to the new one.
#[tokio::test]
async fn chat_send_takes_the_current_session_id_and_refuses_one_a_reset_replaced() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::text("Noted."));
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let key = "agent:main:session:ids";
    c.call("chat.send", json!({"sessionKey": key, "message": "First", "idempotencyKey": "ids-1"})).await.unwrap();
    agent_wait(&mut c, "ids-1").await;
    let old = c.call("sessions.describe", json!({"key": key})).await.unwrap()["session"]["sessionId"].clone();
    let old = old.as_str().unwrap().to_string();
    c.call("chat.send", json!({"sessionKey": key, "sessionId": old, "message": "Second", "idempotencyKey": "ids-2"}))
        .await
        .unwrap();
    agent_wait(&mut c, "ids-2").await;
    c.call("sessions.reset", json!({"key": key})).await.unwrap();
    let (code, message) = error_of(
        &c.request(
            "chat.send",
            json!({"sessionKey": key, "sessionId": old, "message": "Third", "idempotencyKey": "ids-3"}),
        )
        .await
        .unwrap(),
    );
    assert_eq!(code, "INVALID_REQUEST", "{message}");
    assert!(message.contains("no longer the current transcript"), "{message}");
    let history = c.call("chat.history", json!({"sessionKey": key})).await.unwrap();
    assert_eq!(history["messages"].as_array().unwrap().len(), 0, "{history}");
    assert_eq!(fake.requests().len(), 2);
}

async fn agent_wait(c: &mut RawClient, run_id: &str) {
    let done = c.call("agent.wait", json!({"runId": run_id, "timeoutMs": 10_000})).await.unwrap();
    assert_eq!(done["status"], "ok", "{done}");
}

/// After a reset (`/new`) the current transcript's history shows only the new turn; the one it
/// replaced stays readable by its `sessionId` (`previousSessionId`, `sessions.describe`'s
/// `previousTranscripts`), paged and caught up the same way; another session's id is refused as
/// OpenClaw refuses it.
#[tokio::test]
async fn chat_history_reads_a_transcript_a_reset_replaced_by_its_session_id() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::text("Noted."));
    let gw = gateway(&fake).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let key = "agent:main:session:archive";
    c.call("chat.send", json!({"sessionKey": key, "message": "Remember the blue door", "idempotencyKey": "ar-1"}))
        .await
        .unwrap();
    agent_wait(&mut c, "ar-1").await;
    let old = c.call("sessions.describe", json!({"key": key})).await.unwrap()["session"]["sessionId"].clone();
    let old = old.as_str().unwrap().to_string();
    c.call("sessions.reset", json!({"key": key, "reason": "new"})).await.unwrap();
    c.call("chat.send", json!({"sessionKey": key, "message": "What door?", "idempotencyKey": "ar-2"})).await.unwrap();
    agent_wait(&mut c, "ar-2").await;
    let texts = |page: &Value| -> Vec<String> {
        page["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect()
    };

    let current = c.call("chat.history", json!({"sessionKey": key})).await.unwrap();
    assert_eq!(texts(&current), ["What door?", "Noted."], "{current}");
    let new_id = current["session"]["sessionId"].as_str().unwrap().to_string();
    assert_ne!(new_id, old);
    assert_eq!(current["session"]["previousSessionId"], old.as_str(), "{current}");
    let same = c.call("chat.history", json!({"sessionKey": key, "sessionId": new_id})).await.unwrap();
    assert_eq!(same, current, "the current transcript's id reads the current transcript");

    let earlier = c.call("chat.history", json!({"sessionKey": key, "sessionId": old})).await.unwrap();
    assert_eq!(texts(&earlier), ["Remember the blue door", "Noted."], "{earlier}");
    assert_eq!((earlier["sessionKey"].as_str(), earlier["hasMore"].as_bool()), (Some(key), Some(false)));
    let s = &earlier["session"];
    assert_eq!((s["sessionId"].as_str(), s["messageCount"].as_i64()), (Some(old.as_str()), Some(2)), "{s}");
    assert_eq!(s["transcriptArchiveReason"], "new");
    // Paged backwards like the current one.
    let newest = c.call("chat.history", json!({"sessionKey": key, "sessionId": old, "limit": 1})).await.unwrap();
    assert_eq!((texts(&newest), newest["hasMore"].as_bool()), (vec!["Noted.".to_string()], Some(true)));
    let before = newest["nextBeforeSeq"].clone();
    let oldest =
        c.call("chat.history", json!({"sessionKey": key, "sessionId": old, "limit": 1, "beforeSeq": before})).await;
    let oldest = oldest.unwrap();
    assert_eq!((texts(&oldest), oldest["hasMore"].as_bool()), (vec!["Remember the blue door".into()], Some(false)));
    // Its cursor catches up on it (nothing comes after: it never grows); on the current one it is a reset.
    let cursor = earlier["deltaCursor"].clone();
    assert!(cursor.as_str().unwrap().starts_with(&old), "{cursor}");
    let delta = c.call("chat.history", json!({"sessionKey": key, "sessionId": old, "cursor": cursor})).await.unwrap();
    assert_eq!((delta["kind"].as_str(), delta["messages"].clone()), (Some("delta"), json!([])), "{delta}");
    assert_eq!(delta["sessionInfo"]["sessionId"], old.as_str());
    let crossed = c.call("chat.history", json!({"sessionKey": key, "cursor": cursor})).await.unwrap();
    assert_eq!(crossed, json!({"kind": "reset"}));

    // sessions.describe lists it, and describes it by its id.
    let described = c.call("sessions.describe", json!({"key": key})).await.unwrap();
    let previous = described["previousTranscripts"].as_array().unwrap();
    assert_eq!(previous.len(), 1, "{described}");
    let p = &previous[0];
    assert_eq!(
        (p["sessionId"].as_str(), p["reason"].as_str(), p["messageCount"].as_i64()),
        (Some(old.as_str()), Some("new"), Some(2)),
        "{p}"
    );
    assert!(p["startedAt"].as_i64().unwrap() <= p["archivedAt"].as_i64().unwrap(), "{p}");
    let that =
        c.call("sessions.describe", json!({"key": key, "sessionId": old, "includeLastMessage": true})).await.unwrap();
    assert_eq!(that["session"]["sessionId"], old.as_str());
    assert_eq!(that["session"]["lastMessagePreview"], "Noted.");

    // Neither method reads another session's transcript, nor an id that is none.
    c.call("chat.send", json!({"sessionKey": "agent:main:session:other", "message": "Hi", "idempotencyKey": "ar-3"}))
        .await
        .unwrap();
    agent_wait(&mut c, "ar-3").await;
    let other = c.call("sessions.describe", json!({"key": "agent:main:session:other"})).await.unwrap();
    let other_id = other["session"]["sessionId"].as_str().unwrap().to_string();
    for (method, params) in [
        ("chat.history", json!({"sessionKey": key, "sessionId": other_id})),
        ("chat.history", json!({"sessionKey": key, "sessionId": "no-such-transcript"})),
        ("sessions.describe", json!({"key": key, "sessionId": "no-such-transcript"})),
    ] {
        let (code, message) = error_of(&c.request(method, params).await.unwrap());
        assert_eq!(code, "INVALID_REQUEST", "{message}");
        assert!(message.starts_with("sessionId does not belong to sessionKey"), "{message}");
    }
    gw.stop().await;
}
