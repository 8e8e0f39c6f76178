//! The gateway's own agent tools end to end — `message`, `cron`, `sessions_list`,
//! `sessions_history`, `sessions_send` — called by a scripted fake model through the real turn loop,
//! with the fake Telegram as the chat, on the fake clock.

use std::time::Duration;

use pincer_testkit::fakes::openai::{FakeOpenAi, FakeToolCall, Reply};
use pincer_testkit::fakes::telegram::{FakeTelegram, Incoming};
use pincer_testkit::ws::RawClient;
use serde_json::{Value, json};

use crate::support::{T0, TOKEN, TestGateway, pincer_bin, wait_job, wait_runs};

const WAIT: Duration = Duration::from_secs(20);

async fn gateway(model: &FakeOpenAi, tg: Option<&FakeTelegram>, extra: Value) -> TestGateway {
    let mut config = json!({
        "models": { "providers": { "openai": {
            "api": "openai-completions", "baseUrl": model.base_url(), "apiKey": "sk-test", "models": [{ "id": "gpt-4o" }],
        } } },
        "agents": { "defaults": { "model": { "primary": "openai/gpt-4o" } } },
        "delivery": { "rateLimits": { "telegram": 0 } },
    });
    if let Some(tg) = tg {
        config["channels"] =
            json!({ "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url(), "allowFrom": [1001] } });
    }
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    TestGateway::start_with(&config.to_string()).await
}

/// What the model was sent as the result of call `id`, from the first request that carries it.
fn tool_result(model: &FakeOpenAi, id: &str) -> String {
    for request in model.requests() {
        for m in request.body["messages"].as_array().unwrap() {
            if m["role"] == "tool" && m["tool_call_id"] == id {
                return m["content"].as_str().unwrap().to_string();
            }
        }
    }
    panic!("no request carried the result of {id}")
}

/// `tool_result` parsed as the JSON a successful gateway tool answers with.
fn tool_json(model: &FakeOpenAi, id: &str) -> Value {
    let text = tool_result(model, id);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{id}: not JSON ({e}): {text}"))
}

/// Runs an `agent` turn and returns its final answer (the interim `accepted` skipped).
async fn agent(c: &mut RawClient, params: Value) -> Value {
    let id = c.send_request("agent", params).await.unwrap();
    loop {
        let f = c.next_frame().await.unwrap();
        if f["type"] == "res" && f["id"] == id.as_str() && f["payload"]["status"] != "accepted" {
            assert_eq!(f["ok"], true, "{f}");
            return f["payload"].clone();
        }
    }
}

/// "Remind me in 20 minutes", from Telegram: the model calls `cron` with a one-shot `at`; the job
/// announces to the chat the request came from, and the announce arrives once the fake clock has
/// passed the 20 minutes — not before.
#[tokio::test]
async fn a_reminder_asked_on_telegram_is_a_one_shot_job_that_announces_to_that_chat() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    // A first exchange records the chat as the session's route (inbound chat writes it with its answer).
    model.push(Reply::text("Hello."));
    model.push(Reply::tool_call(
        "cron",
        json!({"action": "add", "job": {
            "name": "stretch", "schedule": {"kind": "at", "at": "20m"},
            "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "Remind the user to stretch."},
        }}),
    ));
    model.push(Reply::text("Done: I will remind you in 20 minutes."));
    model.push(Reply::text("Time to stretch!"));
    let gw = gateway(&model, Some(&tg), json!({})).await;
    tg.push_message(Incoming::dm(1001, "hi"));
    tg.wait_for_messages(1, WAIT).await;
    tg.push_message(Incoming::dm(1001, "remind me in 20 minutes to stretch"));
    let got = tg.wait_for_messages(2, WAIT).await;
    assert_eq!((got[1].chat_id.as_str(), got[1].text.as_str()), ("1001", "Done: I will remind you in 20 minutes."));

    // The model saw the job it made; the job's delivery names this chat explicitly.
    let made = tool_json(&model, "call_cron");
    let job_id = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["schedule"], json!({"kind": "at", "at": "2026-03-01T00:20:00.000Z"}), "{made}");
    let mut c = gw.client(&["operator.admin"]).await;
    let job = c.call("cron.get", json!({"id": job_id})).await.unwrap();
    assert_eq!(
        (&job["delivery"]["mode"], &job["delivery"]["channel"], &job["delivery"]["to"]),
        (&json!("announce"), &json!("telegram"), &json!("1001")),
        "{job}"
    );
    assert_eq!(job["state"]["nextRunAtMs"], json!(T0 + 20 * 60_000));

    // Nothing before the 20 minutes pass.
    gw.clock.advance(19 * 60_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((tg.messages().len(), model.request_count()), (2, 3));
    gw.clock.advance(60_000);
    let got = tg.wait_for_messages(3, WAIT).await;
    assert_eq!((got[2].chat_id.as_str(), got[2].text.as_str()), ("1001", "Time to stretch!"));
    // Delivered, the one-shot job completed and, as OpenClaw's one-shots do, deleted itself.
    let deadline = std::time::Instant::now() + WAIT;
    while c.call("cron.list", json!({"includeDisabled": true})).await.unwrap()["total"] != 0 {
        assert!(std::time::Instant::now() < deadline, "the one-shot job was never completed and removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}

/// `message` sends through the outbox: to a named target, and without one to the chat the turn
/// belongs to; each result names the outbox id that `pincer deliveries list` shows.
#[tokio::test]
async fn the_message_tool_sends_through_the_outbox_to_a_target_or_back_to_the_chat() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::text("Hello."));
    model.push(Reply::tool_calls(vec![
        FakeToolCall::new(
            "call_team",
            "message",
            json!({"action": "send", "channel": "telegram", "target": "-100777", "message": "Standup moved to 10."}),
        ),
        FakeToolCall::new("call_here", "message", json!({"action": "send", "message": "Told the team."})),
    ]));
    model.push(Reply::text("NO_REPLY"));
    let gw = gateway(&model, Some(&tg), json!({})).await;
    tg.push_message(Incoming::dm(1001, "hi"));
    tg.wait_for_messages(1, WAIT).await;
    tg.push_message(Incoming::dm(1001, "tell the team standup moved to 10"));
    let got = tg.wait_for_messages(3, WAIT).await;
    let mut sent: Vec<(String, String)> = got[1..].iter().map(|m| (m.chat_id.clone(), m.text.clone())).collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("-100777".to_string(), "Standup moved to 10.".to_string()),
            ("1001".to_string(), "Told the team.".to_string())
        ]
    );
    let team = tool_json(&model, "call_team");
    let here = tool_json(&model, "call_here");
    assert_eq!((&team["channel"], &team["to"]), (&json!("telegram"), &json!("-100777")), "{team}");
    assert_eq!((&here["channel"], &here["to"]), (&json!("telegram"), &json!("1001")), "{here}");

    // `pincer deliveries list` shows both, by the ids the model was given.
    let out = tokio::process::Command::new(pincer_bin())
        .args(["deliveries", "list", "--json", "--url", &gw.url(), "--token", TOKEN])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    for result in [&team, &here] {
        let id = result["messageId"].as_str().unwrap();
        let row = listed["deliveries"].as_array().unwrap().iter().find(|d| d["id"] == id);
        assert!(row.is_some_and(|d| d["to"] == result["to"]), "{id} not in {listed}");
    }
    gw.stop().await;
}

/// `message` reacts to the user's message, edits the bot's earlier answer and deletes it, in the
/// chat the turn belongs to (no target), on the fake Telegram; acting on a message that is gone is
/// a tool error the model reads.
#[tokio::test]
async fn the_message_tool_reacts_edits_and_deletes_in_the_chat() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::text("Hello."));
    // The user's second message is Telegram message 2; the bot's "Hello." is 101 (the fake's ids).
    model.push(Reply::tool_calls(vec![
        FakeToolCall::new("call_react", "message", json!({"action": "react", "messageId": "2", "emoji": "👍"})),
        FakeToolCall::new(
            "call_edit",
            "message",
            json!({"action": "edit", "messageId": "101", "message": "Hello, edited."}),
        ),
    ]));
    model.push(Reply::tool_calls(vec![FakeToolCall::new(
        "call_delete",
        "message",
        json!({"action": "delete", "message_id": "101"}),
    )]));
    model.push(Reply::tool_calls(vec![FakeToolCall::new(
        "call_again",
        "message",
        json!({"action": "delete", "messageId": "101"}),
    )]));
    model.push(Reply::text("NO_REPLY"));
    let gw = gateway(&model, Some(&tg), json!({})).await;
    tg.push_message(Incoming::dm(1001, "hi"));
    let first = tg.wait_for_messages(1, WAIT).await;
    assert_eq!(first[0].message_id, 101);
    let (_, second) = tg.push_message(Incoming::dm(1001, "thanks, now tidy up"));
    assert_eq!(second, 2);
    let deadline = std::time::Instant::now() + WAIT;
    while model.request_count() < 5 {
        assert!(std::time::Instant::now() < deadline, "the turn never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let reactions = tg.reactions();
    assert_eq!(reactions.len(), 1, "{reactions:?}");
    assert_eq!((reactions[0].chat_id.as_str(), reactions[0].message_id), ("1001", 2));
    assert_eq!(reactions[0].emoji, ["👍"]);
    assert_eq!(tg.messages()[0].text, "Hello, edited.");
    assert_eq!(tg.deleted(), [("1001".to_string(), 101)]);
    for id in ["call_react", "call_edit", "call_delete"] {
        let result = tool_json(&model, id);
        assert_eq!(
            (&result["ok"], &result["channel"], &result["to"]),
            (&json!(true), &json!("telegram"), &json!("1001")),
            "{id}: {result}"
        );
    }
    let again = tool_result(&model, "call_again");
    assert!(again.starts_with("message: delete on telegram 1001 failed:") && again.contains("not found"), "{again}");
    assert_eq!(tg.messages().len(), 1, "nothing else was sent");
    gw.stop().await;
}

/// The requests whose system prompt contains `needle`, in order.
fn asked_with(model: &FakeOpenAi, needle: &str) -> Vec<Value> {
    model
        .requests()
        .into_iter()
        .filter(|r| r.body["messages"][0]["content"].as_str().is_some_and(|s| s.contains(needle)))
        .map(|r| r.body)
        .collect()
}

/// The last message's text of a chat request.
fn last_text(body: &Value) -> String {
    body["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string()
}

/// `(role, text)` of every message in a session's history.
async fn history(c: &mut RawClient, key: &str) -> Vec<(String, String)> {
    let page = c.call("chat.history", json!({"sessionKey": key})).await.unwrap();
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (m["role"].as_str().unwrap_or_default().to_string(), m["text"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// Waits until the model has had `n` requests, then checks no other one comes.
async fn settles_at(model: &FakeOpenAi, n: usize) {
    tokio::time::timeout(WAIT, model.wait_for_requests(n)).await.expect("the model was asked");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(model.request_count(), n, "no more turns");
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(r, t)| (r.to_string(), t.to_string())).collect()
}

/// OpenClaw's reply ping-pong, then its announce step: after `sessions_send`'s turn in the main
/// session (which a Telegram chat talks to) and the end of the requesting turn, the requester is
/// given the reply, the target the requester's answer, and so on, each told its role and turn,
/// until one answers `REPLY_SKIP`; each turn is in its session's transcript. Then the target is
/// asked what to announce (given the request, the first and the latest reply), and that is posted
/// to the chat through the outbox, once.
#[tokio::test]
async fn sessions_send_replies_back_and_forth_until_reply_skip_then_announces() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::text("Hello."));
    model.push(Reply::tool_call("sessions_send", json!({"sessionKey": "main", "message": "The build passed."})));
    model.push(Reply::text("Noted."));
    model.push(Reply::text("Told main."));
    model.push(Reply::text("Which build?"));
    model.push(Reply::text("Build 42."));
    model.push(Reply::text("REPLY_SKIP"));
    model.push(Reply::text("Build 42 passed."));
    let gw = gateway(&model, Some(&tg), json!({})).await;
    tg.push_message(Incoming::dm(1001, "hi"));
    tg.wait_for_messages(1, WAIT).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let answer =
        agent(&mut c, json!({"message": "tell main", "sessionKey": "session:ci", "idempotencyKey": "ci"})).await;
    assert_eq!(answer["text"], "Told main.");
    // The tool's result is the first reply; the exchange and the announce follow it.
    let sent = tool_json(&model, "call_sessions_send");
    assert_eq!((&sent["status"], &sent["reply"]), (&json!("ok"), &json!("Noted.")), "{sent}");
    assert_eq!(sent["delivery"], json!({"status": "pending", "mode": "announce"}));

    let got = tg.wait_for_messages(2, WAIT).await;
    assert_eq!((got[1].chat_id.as_str(), got[1].text.as_str()), ("1001", "Build 42 passed."));
    settles_at(&model, 8).await;
    assert_eq!(tg.messages().len(), 2, "announced once");

    let steps = asked_with(&model, "Agent-to-agent reply step");
    let seen: Vec<(String, String)> = steps
        .iter()
        .map(|b| {
            let system = b["messages"][0]["content"].as_str().unwrap();
            let role = if system.contains("Current agent: Agent 1 (requester).") { "requester" } else { "target" };
            let turn = system.lines().find(|l| l.starts_with("Turn ")).unwrap();
            (format!("{role} {turn}"), last_text(b))
        })
        .collect();
    assert_eq!(
        seen,
        pairs(&[
            ("requester Turn 1 of 5.", "Noted."),
            ("target Turn 2 of 5.", "Which build?"),
            ("requester Turn 3 of 5.", "Build 42."),
        ])
    );
    let system = steps[0]["messages"][0]["content"].as_str().unwrap();
    for line in [
        "Agent 1 (requester) session: agent:main:session:ci.",
        "Agent 2 (target) session: agent:main:main.",
        "Agent 2 (target) channel: telegram.",
        "reply exactly \"REPLY_SKIP\"",
    ] {
        assert!(system.contains(line), "{line}: {system}");
    }
    let announce = asked_with(&model, "Agent-to-agent announce step:");
    assert_eq!(announce.len(), 1);
    let system = announce[0]["messages"][0]["content"].as_str().unwrap();
    for line in [
        "Original request: The build passed.",
        "Round 1 reply: Noted.",
        "Latest reply: Build 42.",
        "reply exactly \"ANNOUNCE_SKIP\"",
    ] {
        assert!(system.contains(line), "{line}: {system}");
    }

    // Each turn is in its own session's transcript.
    let ci = history(&mut c, "session:ci").await;
    assert_eq!(
        ci[ci.len() - 4..].to_vec(),
        pairs(&[("user", "Noted."), ("assistant", "Which build?"), ("user", "Build 42."), ("assistant", "REPLY_SKIP")]),
        "{ci:?}"
    );
    let main = history(&mut c, "main").await;
    let exchanged = main.iter().position(|m| m.1 == "Which build?").expect("the requester's answer in main");
    assert_eq!(
        main[exchanged..].to_vec(),
        pairs(&[
            ("user", "Which build?"),
            ("assistant", "Build 42."),
            ("user", "Agent-to-agent announce step."),
            ("assistant", "Build 42 passed.")
        ]),
        "{main:?}"
    );
    gw.stop().await;
}

/// The exchange stops at `session.agentToAgent.maxPingPongTurns` even when nobody skips, and a
/// target session without a chat route is not asked to announce.
#[tokio::test]
async fn sessions_send_replies_stop_at_max_ping_pong_turns() {
    let model = FakeOpenAi::start().await;
    let gw = gateway(&model, None, json!({"session": {"agentToAgent": {"maxPingPongTurns": 2}}})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    model.push(Reply::text("Ready."));
    agent(&mut c, json!({"message": "hello", "sessionKey": "session:b", "idempotencyKey": "seed"})).await;
    model.push(Reply::tool_call("sessions_send", json!({"sessionKey": "session:b", "message": "Status?"})));
    model.push(Reply::text("B: all green."));
    model.push(Reply::text("Asked b."));
    model.push(Reply::text("A: thanks, anything else?"));
    model.push(Reply::text("B: nothing else."));
    model.set_default(Reply::text("never asked"));
    agent(&mut c, json!({"message": "ask b", "sessionKey": "session:a", "idempotencyKey": "ask"})).await;
    settles_at(&model, 6).await;
    let steps = asked_with(&model, "Agent-to-agent reply step");
    let turns: Vec<&str> = steps
        .iter()
        .map(|b| b["messages"][0]["content"].as_str().unwrap().lines().find(|l| l.starts_with("Turn ")).unwrap())
        .collect();
    assert_eq!(turns, ["Turn 1 of 2.", "Turn 2 of 2."]);
    assert!(asked_with(&model, "announce step").is_empty(), "no route, no announce step");
    let a = history(&mut c, "session:a").await;
    assert_eq!(
        a[a.len() - 2..].to_vec(),
        pairs(&[("user", "B: all green."), ("assistant", "A: thanks, anything else?")])
    );
    let b = history(&mut c, "session:b").await;
    assert_eq!(
        b[b.len() - 2..].to_vec(),
        pairs(&[("user", "A: thanks, anything else?"), ("assistant", "B: nothing else.")])
    );
    gw.stop().await;
}

/// `maxPingPongTurns: 0` turns the exchange off: the announce step follows the reply straight
/// away, and `ANNOUNCE_SKIP` keeps it silent.
#[tokio::test]
async fn sessions_send_with_0_ping_pong_turns_only_announces_and_announce_skip_is_silent() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::text("Hello."));
    model.push(Reply::tool_call("sessions_send", json!({"sessionKey": "main", "message": "The build passed."})));
    model.push(Reply::text("Noted."));
    // The asking turn's answer and the announce step ask at the same moment: both get this text.
    model.push(Reply::text("ANNOUNCE_SKIP"));
    model.push(Reply::text("ANNOUNCE_SKIP"));
    let gw = gateway(&model, Some(&tg), json!({"session": {"agentToAgent": {"maxPingPongTurns": 0}}})).await;
    tg.push_message(Incoming::dm(1001, "hi"));
    tg.wait_for_messages(1, WAIT).await;
    let mut c = gw.client(&["operator.admin"]).await;
    agent(&mut c, json!({"message": "tell main", "sessionKey": "session:ci", "idempotencyKey": "ci"})).await;
    settles_at(&model, 5).await;
    assert!(asked_with(&model, "reply step").is_empty(), "no exchange");
    assert_eq!(asked_with(&model, "Agent-to-agent announce step:").len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tg.messages().len(), 1, "nothing announced");
    gw.stop().await;
}

/// A requesting turn aborted while it waits for the reply ends the exchange: the target's turn
/// still finishes (it is that session's), but no reply turn and no announce step follow.
#[tokio::test]
async fn an_aborted_requesting_turn_starts_no_reply_exchange() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let gate = pincer_testkit::fakes::openai::Gate::new();
    model.push(Reply::text("Hello."));
    model.push(Reply::tool_call("sessions_send", json!({"sessionKey": "main", "message": "The build passed."})));
    model.push(Reply::paced("Noted.", 1, &gate));
    model.set_default(Reply::text("never asked"));
    let gw = gateway(&model, Some(&tg), json!({})).await;
    tg.push_message(Incoming::dm(1001, "hi"));
    tg.wait_for_messages(1, WAIT).await;
    let mut c = gw.client(&["operator.admin"]).await;
    c.call("chat.send", json!({"sessionKey": "session:ci", "message": "tell main", "idempotencyKey": "ci"}))
        .await
        .unwrap();
    // The target's turn is at the model; the requesting turn waits in the tool.
    tokio::time::timeout(WAIT, model.wait_for_requests(3)).await.unwrap();
    let abort = c.call("chat.abort", json!({"sessionKey": "session:ci"})).await.unwrap();
    assert_eq!(abort["aborted"], true, "{abort}");
    gate.release(10);
    let deadline = std::time::Instant::now() + WAIT;
    while !history(&mut c, "main").await.iter().any(|m| m.1 == "Noted.") {
        assert!(std::time::Instant::now() < deadline, "the target's turn did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settles_at(&model, 3).await;
    assert_eq!(tg.messages().len(), 1, "nothing announced");
    gw.stop().await;
}

/// `sessions_list`, `sessions_history` and `sessions_send` over real sessions: the model finds a
/// named session (not an archived one), reads it, and asks it something; the nested turn runs in
/// that session and its reply comes back as the tool's result.
#[tokio::test]
async fn the_session_tools_list_read_and_talk_to_real_sessions() {
    let model = FakeOpenAi::start().await;
    let gw = gateway(&model, None, json!({})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    model.push(Reply::text("Noted: buy milk."));
    agent(&mut c, json!({"message": "Note: buy milk", "sessionKey": "session:notes", "idempotencyKey": "seed"})).await;
    // An archived session is not listed, as in OpenClaw (its tool asks `sessions.list`, whose
    // default leaves archived sessions out).
    model.push(Reply::text("Noted: old stuff."));
    agent(&mut c, json!({"message": "Note: old stuff", "sessionKey": "session:old", "idempotencyKey": "old"})).await;
    c.call("sessions.patch", json!({"key": "agent:main:session:old", "archived": true})).await.unwrap();

    model.push(Reply::tool_call("sessions_list", json!({"kinds": ["other"], "messageLimit": 1})));
    model.push(Reply::tool_call("sessions_history", json!({"sessionKey": "agent:main:session:notes"})));
    model.push(Reply::tool_call(
        "sessions_send",
        json!({"sessionKey": "agent:main:session:notes", "message": "What did I ask you to note?"}),
    ));
    model.push(Reply::text("You asked me to note: buy milk."));
    model.push(Reply::text("Your note says: buy milk."));
    // The reply exchange's first turn, in the requesting session: it skips.
    model.push(Reply::text("REPLY_SKIP"));
    let answer = agent(&mut c, json!({"message": "What is in my notes?", "idempotencyKey": "ask"})).await;
    assert_eq!(answer["text"], "Your note says: buy milk.");

    let listed = tool_json(&model, "call_sessions_list");
    assert_eq!(listed["count"], 1, "{listed}");
    let notes = &listed["sessions"][0];
    assert_eq!((&notes["key"], &notes["kind"]), (&json!("agent:main:session:notes"), &json!("other")), "{listed}");
    assert_eq!(notes["messages"][0]["text"], "Noted: buy milk.", "{listed}");

    let history = tool_json(&model, "call_sessions_history");
    let texts: Vec<(&str, &str)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(texts, [("user", "Note: buy milk"), ("assistant", "Noted: buy milk.")], "{history}");

    let sent = tool_json(&model, "call_sessions_send");
    assert_eq!(
        (&sent["status"], &sent["reply"], &sent["sessionKey"]),
        (&json!("ok"), &json!("You asked me to note: buy milk."), &json!("agent:main:session:notes")),
        "{sent}"
    );
    // The nested turn ran in the named session, which now holds the exchange.
    let page = c.call("chat.history", json!({"sessionKey": "session:notes"})).await.unwrap();
    let last = page["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["text"], "You asked me to note: buy milk.");
    gw.stop().await;
}

/// Bad arguments to each gateway tool come back to the model as tool errors that say what to fix;
/// nothing is created or sent, and the turn carries on to its answer.
#[tokio::test]
async fn bad_arguments_to_the_gateway_tools_are_tool_errors_the_model_reads() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let calls = [
        ("no_action", "cron", json!({})),
        (
            "bad_at",
            "cron",
            json!({"action": "add", "job": {"schedule": {"kind": "at", "at": "whenever"}, "payload": {"kind": "agentTurn", "message": "x"}}}),
        ),
        ("no_job", "cron", json!({"action": "add"})),
        (
            "main_turn",
            "cron",
            json!({"action": "add", "job": {"schedule": {"kind": "every", "everyMs": 60_000}, "sessionTarget": "main", "payload": {"kind": "agentTurn", "message": "x"}}}),
        ),
        (
            "bad_channel",
            "cron",
            json!({"action": "add", "job": {"schedule": {"kind": "every", "everyMs": 60_000}, "payload": {"kind": "agentTurn", "message": "x"}, "delivery": {"mode": "announce", "channel": "pigeon", "to": "1"}}}),
        ),
        ("no_such_job", "cron", json!({"action": "remove", "jobId": "nope"})),
        ("poll", "message", json!({"action": "poll", "pollQuestion": "lunch?"})),
        ("react", "message", json!({"action": "react", "emoji": "👍"})),
        ("empty", "message", json!({"action": "send", "message": " "})),
        (
            "unconfigured",
            "message",
            json!({"action": "send", "channel": "discord", "target": "channel:1", "message": "hi"}),
        ),
        ("no_session", "sessions_history", json!({"sessionKey": "agent:main:session:nope"})),
        ("label", "sessions_send", json!({"label": "work", "message": "hi"})),
        ("own_session", "sessions_send", json!({"sessionKey": "main", "message": "hi"})),
    ];
    model.push(Reply::tool_calls(
        calls.iter().map(|(id, name, args)| FakeToolCall::new(*id, *name, args.clone())).collect(),
    ));
    model.push(Reply::text("Some of that did not work."));
    let gw = gateway(&model, Some(&tg), json!({})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let answer = agent(&mut c, json!({"message": "do things", "idempotencyKey": "bad"})).await;
    assert_eq!(answer["text"], "Some of that did not work.");

    let errors: Vec<(&str, String)> = calls.iter().map(|(id, _, _)| (*id, tool_result(&model, id))).collect();
    let expect = [
        ("no_action", "cron: missing required parameter `action`"),
        ("bad_at", "cron: invalid cron.add params: schedule.at: cannot parse \"whenever\""),
        ("no_job", "cron: `add` needs `job`"),
        ("main_turn", "cron: invalid cron.add params:"),
        ("bad_channel", "cron: invalid cron.add params:"),
        ("no_such_job", "cron: no job nope"),
        ("poll", "message: action \"poll\" is not supported by Pincer; it supports \"send\""),
        ("react", "message: action \"react\" needs `messageId`"),
        ("empty", "message: `message` must be a non-empty text"),
        ("unconfigured", "message: invalid send params:"),
        ("no_session", "sessions_history: session not found: agent:main:session:nope"),
        ("label", "sessions_send: Pincer sessions have no labels"),
        ("own_session", "sessions_send: agent:main:main is this conversation's own session"),
    ];
    for ((id, got), (_, want)) in errors.iter().zip(expect) {
        assert!(got.starts_with(want), "{id}: {got:?} does not start with {want:?}");
    }
    // Each was recorded as an error result, and nothing was made or sent.
    let page = c.call("chat.history", json!({"sessionKey": "main"})).await.unwrap();
    let failed = page["messages"].as_array().unwrap().iter().filter(|m| m["isError"] == true).count();
    assert_eq!(failed, calls.len(), "{page}");
    assert_eq!(c.call("cron.list", json!({"includeDisabled": true})).await.unwrap()["total"], 0);
    assert_eq!(c.call("deliveries.list", json!({"state": "all"})).await.unwrap()["deliveries"], json!([]));
    assert!(tg.messages().is_empty());
    gw.stop().await;
}

/// The tool policy governs the gateway's tools with OpenClaw's groups and profiles: the model is
/// offered only what survives, and a job's `toolsAllow` narrows it further.
#[tokio::test]
async fn the_gateway_tools_pass_the_tool_policy() {
    let model = FakeOpenAi::start().await;
    let offered = |model: &FakeOpenAi, n: usize| -> Vec<String> {
        let body = &model.requests()[n].body;
        let mut names: Vec<String> = body["tools"]
            .as_array()
            .map(|t| t.iter().map(|t| t["function"]["name"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        names.retain(|n| {
            ["message", "cron", "sessions_list", "sessions_history", "sessions_send"].contains(&n.as_str())
        });
        names.sort();
        names
    };
    let rows = [
        (json!({}), vec!["cron", "message", "sessions_history", "sessions_list", "sessions_send"]),
        (json!({"profile": "messaging"}), vec!["message", "sessions_history", "sessions_list", "sessions_send"]),
        (json!({"profile": "coding"}), vec!["cron", "sessions_history", "sessions_list", "sessions_send"]),
        (json!({"deny": ["group:automation", "group:sessions"]}), vec!["message"]),
        (json!({"allow": ["group:messaging"]}), vec!["message"]),
        (json!({"profile": "minimal"}), vec![]),
    ];
    for (n, (tools, want)) in rows.iter().enumerate() {
        let gw = gateway(&model, None, json!({"tools": tools})).await;
        let mut c = gw.client(&["operator.admin"]).await;
        model.push(Reply::text("ok"));
        agent(&mut c, json!({"message": "hi", "idempotencyKey": format!("p{n}")})).await;
        assert_eq!(offered(&model, model.request_count() - 1), *want, "tools: {tools}");
        gw.stop().await;
    }
    // A job's `toolsAllow` narrows the full set to what it names.
    let gw = gateway(&model, None, json!({})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = c
        .call(
            "cron.add",
            json!({"name": "narrow", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                   "payload": {"kind": "agentTurn", "message": "go", "toolsAllow": ["sessions_list"]},
                   "delivery": {"mode": "none"}}),
        )
        .await
        .unwrap();
    model.push(Reply::text("ok"));
    let before = model.request_count();
    c.call("cron.run", json!({"id": job["id"], "mode": "force"})).await.unwrap();
    crate::support::wait_runs(&mut c, job["id"].as_str().unwrap(), 1).await;
    assert_eq!(model.request_count(), before + 1);
    assert_eq!(offered(&model, before), ["sessions_list"]);
    gw.stop().await;
}

/// `sessions_send` waits `timeoutSeconds` on the injected clock: a reply that does not come in time
/// is a `timeout` result (the other turn goes on), and `timeoutSeconds: 0` does not wait at all.
#[tokio::test]
async fn sessions_send_waits_on_the_clock_and_0_does_not_wait() {
    let model = FakeOpenAi::start().await;
    let gw = gateway(&model, None, json!({})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    model.push(Reply::text("Ready."));
    agent(&mut c, json!({"message": "hello", "sessionKey": "session:slow", "idempotencyKey": "seed"})).await;

    model.push(Reply::tool_calls(vec![FakeToolCall::new(
        "call_wait",
        "sessions_send",
        json!({"sessionKey": "session:slow", "message": "think hard", "timeoutSeconds": 5}),
    )]));
    model.push(Reply::hang());
    model.push(Reply::tool_calls(vec![FakeToolCall::new(
        "call_queue",
        "sessions_send",
        json!({"sessionKey": "main", "message": "later", "timeoutSeconds": 0}),
    )]));
    model.push(Reply::text("Asked."));
    model.push(Reply::text("Later, then."));
    let turn = c.send_request("agent", json!({"message": "ask slow", "idempotencyKey": "ask"})).await.unwrap();
    // The nested turn reached the model, which does not answer; 5 s on the clock end the wait.
    model.wait_for_requests(3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(model.request_count(), 3, "nothing moves before the clock does");
    gw.clock.advance(5_000);
    let answer = loop {
        let f = c.next_frame().await.unwrap();
        if f["type"] == "res" && f["id"] == turn.as_str() && f["payload"]["status"] != "accepted" {
            break f["payload"].clone();
        }
    };
    assert_eq!(answer["text"], "Asked.");
    let waited = tool_json(&model, "call_wait");
    assert_eq!((&waited["status"], &waited["sessionKey"]), (&json!("timeout"), &json!("agent:main:session:slow")));
    let queued = tool_json(&model, "call_queue");
    assert_eq!((&queued["status"], &queued["sessionKey"]), (&json!("accepted"), &json!("agent:main:main")));
    // The queued message runs in the main session once the asking turn is over.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page = c.call("chat.history", json!({"sessionKey": "main"})).await.unwrap();
        if page["messages"].as_array().unwrap().iter().any(|m| m["text"] == "Later, then.") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the queued message never ran: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}

/// OpenClaw's paced loop: a job with `pacing` bounds chooses its next run from inside the run with
/// the `cron` tool's `next_check`, clamped to the bounds and measured from the run's end. A job
/// without pacing, and a turn that is not a cron run, get a tool error instead.
#[tokio::test]
async fn a_paced_job_sets_its_next_run_with_next_check_within_its_bounds() {
    let model = FakeOpenAi::start().await;
    let gw = gateway(&model, None, json!({})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = |name: &str, pacing: Value| {
        let mut j = json!({
            "name": name, "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
            "payload": {"kind": "agentTurn", "message": "poll"}, "delivery": {"mode": "none"},
        });
        if !pacing.is_null() {
            j["pacing"] = pacing;
        }
        j
    };
    let paced = c.call("cron.add", job("paced", json!({"min": "10m", "max": "2h"}))).await.unwrap();
    assert_eq!(paced["pacing"], json!({"min": "10m", "max": "2h"}), "{paced}");
    let id = paced["id"].as_str().unwrap().to_string();

    // Asks for 1 minute: clamped up to the 10-minute floor.
    model.push(Reply::tool_calls(vec![FakeToolCall::new("soon", "cron", json!({"action": "next_check", "in": "1m"}))]));
    model.push(Reply::text("Quiet."));
    c.call("cron.run", json!({"id": id, "mode": "force"})).await.unwrap();
    let after = wait_job(&mut c, &id, |j| j["state"]["lastRunStatus"] == "ok").await;
    assert_eq!(tool_json(&model, "soon")["delayMs"], 60_000);
    assert_eq!(after["state"]["nextRunAtMs"], json!(T0 + 600_000), "{after}");

    // Asks for 5 hours: clamped down to the 2-hour ceiling.
    model.push(Reply::tool_calls(vec![FakeToolCall::new("late", "cron", json!({"action": "next_check", "in": "5h"}))]));
    model.push(Reply::text("Still quiet."));
    c.call("cron.run", json!({"id": id, "mode": "force"})).await.unwrap();
    let after = wait_job(&mut c, &id, |j| j["state"]["nextRunAtMs"] != json!(T0 + 600_000)).await;
    assert_eq!(after["state"]["nextRunAtMs"], json!(T0 + 7_200_000), "{after}");

    // No proposal: a forced run keeps the pending (paced) slot, as any forced run keeps its cadence.
    model.push(Reply::text("Nothing to say."));
    c.call("cron.run", json!({"id": id, "mode": "force"})).await.unwrap();
    wait_runs(&mut c, &id, 3).await;
    let after = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(after["state"]["nextRunAtMs"], json!(T0 + 7_200_000), "{after}");

    // A job without pacing cannot set its next check, nor can a plain conversation.
    let plain = c.call("cron.add", job("plain", Value::Null)).await.unwrap();
    let plain_id = plain["id"].as_str().unwrap().to_string();
    model.push(Reply::tool_calls(vec![FakeToolCall::new(
        "unpaced",
        "cron",
        json!({"action": "next_check", "in": "1m"}),
    )]));
    model.push(Reply::text("Done."));
    c.call("cron.run", json!({"id": plain_id, "mode": "force"})).await.unwrap();
    let after = wait_job(&mut c, &plain_id, |j| j["state"]["lastRunStatus"] == "ok").await;
    assert_eq!(after["state"]["nextRunAtMs"], json!(T0 + 3_600_000), "{after}");
    assert!(tool_result(&model, "unpaced").contains("has no pacing bounds"), "{}", tool_result(&model, "unpaced"));
    model.push(Reply::tool_calls(vec![FakeToolCall::new("chat", "cron", json!({"action": "next_check", "in": "1m"}))]));
    model.push(Reply::text("OK."));
    agent(&mut c, json!({"message": "check later", "idempotencyKey": "nc"})).await;
    assert!(
        tool_result(&model, "chat").contains("only available to the currently running job"),
        "{}",
        tool_result(&model, "chat")
    );
    gw.stop().await;
}

/// The tool names the model was offered in request `i`.
fn offered(model: &FakeOpenAi, i: usize) -> Vec<String> {
    let request = &model.requests()[i];
    let tools = request.body["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().map(|t| t["function"]["name"].as_str().unwrap().to_string()).collect()
}

/// `cron` is owner-only, as in OpenClaw (`senderIsOwner`: the sender is named in the channel's
/// `allowFrom`): the owner's DMs and group messages, and operator clients, are offered it; a
/// sender let in by pairing and a group member who is not the owner are not, neither directly nor
/// through a turn they start in another session with `sessions_send`, and a call the model makes
/// anyway is an unknown-tool error that creates no job.
#[tokio::test]
async fn only_the_owners_turns_are_offered_the_cron_tool() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::text("Hello, owner."));
    model.push(Reply::tool_call(
        "cron",
        json!({"action": "add", "job": {
            "name": "sneaky", "schedule": {"kind": "at", "at": "20m"},
            "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "x"},
        }}),
    ));
    model.push(Reply::text("I cannot schedule that for you."));
    model.push(Reply::text("Hello, member."));
    model.push(Reply::text("Hello, owner in the group."));
    model.push(Reply::text("Hello, operator."));
    model.push(Reply::tool_call("sessions_send", json!({"sessionKey": "session:operator", "message": "add a job"})));
    model.push(Reply::text("Nested."));
    model.push(Reply::text("Asked."));
    // The reply exchange's first turn, in the requesting session: it skips.
    model.push(Reply::text("REPLY_SKIP"));
    let telegram = json!({ "botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url(), "allowFrom": [1001],
        "groups": { "-100": { "requireMention": false, "allowFrom": [1001, 3003] } } });
    let gw = gateway(&model, Some(&tg), json!({ "channels": { "telegram": telegram } })).await;
    let mut c = gw.client(&["operator.admin"]).await;

    tg.push_message(Incoming::dm(1001, "hi"));
    tg.wait_for_messages(1, WAIT).await;
    assert!(offered(&model, 0).contains(&"cron".to_string()), "the owner's DM: {:?}", offered(&model, 0));

    // 2002 is let in by pairing: allowed to talk, not the owner.
    tg.push_message(Incoming::dm(2002, "hello?"));
    tg.wait_for_messages(2, WAIT).await;
    c.call("channels.pairing.approve", json!({"channel": "telegram", "requestId": "telegram:2002"})).await.unwrap();
    tg.wait_for_messages(3, WAIT).await;
    tg.push_message(Incoming::dm(2002, "remind me in 20 minutes"));
    let got = tg.wait_for_messages(4, WAIT).await;
    assert_eq!(got[3].text, "I cannot schedule that for you.");
    let paired = offered(&model, 1);
    assert!(!paired.is_empty() && !paired.contains(&"cron".to_string()), "a paired sender: {paired:?}");
    assert_eq!(offered(&model, 2), paired, "the same turn's next step");
    let refused = tool_result(&model, "call_cron");
    assert!(refused.contains("unknown tool `cron`"), "{refused}");
    assert_eq!(c.call("cron.list", json!({"includeDisabled": true})).await.unwrap()["total"], 0);

    tg.push_message(Incoming::group(-100, 3003, "hi all"));
    tg.wait_for_messages(5, WAIT).await;
    let member = offered(&model, 3);
    assert!(!member.is_empty() && !member.contains(&"cron".to_string()), "a group member: {member:?}");
    tg.push_message(Incoming::group(-100, 1001, "hi group"));
    tg.wait_for_messages(6, WAIT).await;
    assert!(offered(&model, 4).contains(&"cron".to_string()), "the owner in a group: {:?}", offered(&model, 4));

    let answer =
        agent(&mut c, json!({"message": "hi", "sessionKey": "session:operator", "idempotencyKey": "op-1"})).await;
    assert_eq!(answer["text"], "Hello, operator.", "{answer}");
    assert!(offered(&model, 5).contains(&"cron".to_string()), "an operator client: {:?}", offered(&model, 5));

    // Nor through another session: the turn `sessions_send` starts acts for the same sender.
    tg.push_message(Incoming::dm(2002, "ask the operator's session"));
    let got = tg.wait_for_messages(7, WAIT).await;
    assert_eq!(got[6].text, "Asked.");
    assert_eq!(tool_json(&model, "call_sessions_send")["reply"], "Nested.");
    let nested = offered(&model, 7);
    assert!(!nested.is_empty() && !nested.contains(&"cron".to_string()), "a turn sessions_send started: {nested:?}");
    gw.stop().await;
}

/// A tool loop's steps reuse one kept-alive connection to the model rather than paying a TCP (and,
/// with a real provider, TLS) handshake per step. A streamed reply ends at `[DONE]` while its
/// body's last chunk may still be on its way; the provider reads that tail before it returns, so
/// the connection is back in the pool before the next request. (With this fake the tail arrives
/// with `[DONE]`. Read in a task of its own, the tail lost the race to a quick step's next
/// request, which opened a second connection: this test failed so, `[1, 1, 1, 2]`.)
#[tokio::test]
async fn a_tool_loops_streamed_steps_reuse_one_connection_to_the_model() {
    let model = FakeOpenAi::start().await;
    let gw = gateway(&model, None, json!({})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    for _ in 0..3 {
        model.push(Reply::tool_call("sessions_list", json!({})));
    }
    model.push(Reply::text("Three looks, nothing new."));
    let answer = agent(&mut c, json!({"message": "Look three times.", "idempotencyKey": "look"})).await;
    assert_eq!(answer["text"], "Three looks, nothing new.");
    let requests = model.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r.stream()), "every step streams");
    let connections: Vec<u64> = requests.iter().map(|r| r.connection).collect();
    assert!(connections[0] > 0, "the fake numbers its connections");
    assert_eq!(connections, vec![connections[0]; 4], "a step opened a new connection: {connections:?}");
    gw.stop().await;
}
