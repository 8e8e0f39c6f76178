//! Inbound chat end to end: the real gateway long-polls the fake Telegram Bot API, answers through
//! the fake model and the outbox; access control, pairing, groups, chat commands, the connection
//! state in `health`, and the poll backoff on the fake clock.

use std::time::Duration;

use pincer_core::Clock;
use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
use pincer_testkit::fakes::telegram::{FakeTelegram, Incoming, PollFault};
use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::{TestGateway, pincer_bin};

const WAIT: Duration = Duration::from_secs(20);

fn config(tg: &FakeTelegram, model: &FakeOpenAi, telegram: Value) -> Value {
    let mut channel = json!({ "botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url() });
    for (k, v) in telegram.as_object().unwrap() {
        channel[k] = v.clone();
    }
    json!({
        "models": { "providers": { "openai": {
            "api": "openai-completions", "baseUrl": model.base_url(), "apiKey": "sk-test", "models": [{ "id": "gpt-4o" }],
        } } },
        "agents": { "defaults": { "model": { "primary": "openai/gpt-4o" } } },
        "channels": { "telegram": channel },
        "delivery": { "rateLimits": { "telegram": 0 } },
    })
}

async fn client(gw: &GatewayProcess, scopes: &[&str]) -> RawClient {
    RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), scopes)).await.unwrap().0
}

/// The last user message of a model request.
fn user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().unwrap();
    messages.iter().rev().find(|m| m["role"] == "user").map(|m| m["content"].to_string()).unwrap_or_default()
}

async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_telegram_dm_is_answered_once_through_the_outbox_quoting_it_while_typing_shows() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::text("Sunny all day."));
    let dir = tempfile::tempdir().unwrap();
    let gw =
        GatewayProcess::start(&pincer_bin(), dir.path(), config(&tg, &model, json!({"allowFrom": [1001]}))).unwrap();
    let (_, first) = tg.push_message(Incoming::dm(1001, "What's the weather?"));
    let got = tg.wait_for_messages(1, WAIT).await;
    assert_eq!(
        (got[0].chat_id.as_str(), got[0].text.as_str(), got[0].reply_to_message_id),
        ("1001", "Sunny all day.", Some(first))
    );
    assert!(user_text(&model.requests()[0].body).contains("What's the weather?"));
    let typing = tg.chat_actions();
    assert!(typing.iter().any(|a| a.chat_id == "1001" && a.action == "typing"), "{typing:?}");
    wait_until("the update to be confirmed", || tg.unconfirmed() == 0).await;

    // The same DM session (dmScope main): the second turn sees the first exchange.
    let (_, second) = tg.push_message(Incoming::dm(1001, "And tomorrow?"));
    let got = tg.wait_for_messages(2, WAIT).await;
    assert_eq!(got[1].reply_to_message_id, Some(second));
    let history = model.requests()[1].body["messages"].to_string();
    assert!(history.contains("What's the weather?") && history.contains("Sunny all day."), "{history}");
    assert_eq!(model.request_count(), 2);

    // Chat commands are answered without the model.
    tg.push_message(Incoming::dm(1001, "/help"));
    let got = tg.wait_for_messages(3, WAIT).await;
    assert!(got[2].text.contains("/new"), "{}", got[2].text);
    assert_eq!(model.request_count(), 2);

    // The session remembers the route: a job announcing to `channel: last` reaches this chat.
    let mut c = client(&gw, &["operator.admin"]).await;
    let job = c
        .call(
            "cron.add",
            json!({
                "name": "reminder", "schedule": {"kind": "every", "everyMs": 3_600_000},
                "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "Remind me"},
                "delivery": {"mode": "announce", "channel": "last"},
            }),
        )
        .await
        .unwrap();
    model.push(Reply::text("Time to stretch."));
    c.call("cron.run", json!({"id": job["id"], "mode": "force"})).await.unwrap();
    let got = tg.wait_for_messages(4, WAIT).await;
    assert_eq!((got[3].chat_id.as_str(), got[3].text.as_str()), ("1001", "Time to stretch."));
    let health = c.call("health", json!({})).await.unwrap();
    let inbound = &health["channels"]["telegram"]["inbound"];
    assert_eq!(
        (inbound["state"].as_str(), inbound["bot"].as_str()),
        (Some("polling"), Some("@pincer_fake_bot")),
        "{health}"
    );
    // Every decision is audited.
    let audit = c.call("audit.query", json!({"action": "channel.message.allowed"})).await.unwrap().to_string();
    assert_eq!(audit.matches(r#""senderId":"1001""#).count(), 3, "{audit}");
    // The activity ledger (`openclaw audit`): each message in and out, metadata only.
    let ledger = c.call("audit.activity.list", json!({"kind": "message", "channel": "telegram"})).await.unwrap();
    let events = ledger["events"].as_array().unwrap();
    let inbound: Vec<&Value> = events.iter().filter(|e| e["direction"] == "inbound").collect();
    assert_eq!(inbound.len(), 3, "{ledger}");
    for e in &inbound {
        assert_eq!((e["status"].as_str(), e["outcome"].as_str()), (Some("succeeded"), Some("completed")), "{e}");
        assert_eq!(
            (e["actor"]["type"].as_str(), e["conversationKind"].as_str()),
            (Some("channel_sender"), Some("direct"))
        );
        assert!(e["actor"]["id"].as_str().unwrap().starts_with("hmac-sha256:v1:"), "{e}");
    }
    assert_eq!(inbound[0]["actor"], inbound[2]["actor"], "one sender, one ref");
    let replies = events.iter().filter(|e| e["direction"] == "outbound" && e["actor"]["id"] == "main").count();
    assert!(replies >= 3, "{ledger}");
    let text = ledger.to_string();
    assert!(!text.contains("1001") && !text.contains("weather") && !text.contains("Sunny"), "{text}");
    // Nothing was answered twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tg.messages().len(), 4);
}

/// `/new` and `/reset` start a new session id, as OpenClaw: the chat's key points at a fresh
/// transcript, the model no longer sees the old conversation, an old history cursor is a reset,
/// and the old transcript is kept in the store under the old id.
#[tokio::test]
async fn new_and_reset_start_a_new_session_id_and_keep_the_old_transcript() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let mut gw =
        GatewayProcess::start(&pincer_bin(), dir.path(), config(&tg, &model, json!({"allowFrom": [1001]}))).unwrap();
    let mut c = client(&gw, &["operator.read"]).await;
    let session = |page: &Value| {
        page["sessions"].as_array().unwrap().iter().find(|s| s["key"] == "agent:main:main").cloned().unwrap()
    };

    model.push(Reply::text("Noted: the blue door."));
    tg.push_message(Incoming::dm(1001, "Remember the blue door."));
    tg.wait_for_messages(1, WAIT).await;
    let first = session(&c.call("sessions.list", json!({})).await.unwrap());
    let first_id = first["sessionId"].as_str().unwrap().to_string();
    assert_eq!(first["messageCount"], 2, "{first}");
    let cursor = c.call("chat.history", json!({"sessionKey": "main"})).await.unwrap()["deltaCursor"].clone();

    tg.push_message(Incoming::dm(1001, "/new"));
    let got = tg.wait_for_messages(2, WAIT).await;
    assert!(got[1].text.starts_with("New conversation started"), "{}", got[1].text);
    let second = session(&c.call("sessions.list", json!({})).await.unwrap());
    let second_id = second["sessionId"].as_str().unwrap().to_string();
    assert_ne!(second_id, first_id, "{second}");
    assert_eq!((second["messageCount"].as_i64(), second["totalTokens"].as_i64()), (Some(0), Some(0)), "{second}");
    let history = c.call("chat.history", json!({"sessionKey": "main"})).await.unwrap();
    assert_eq!((history["messages"].clone(), history["session"]["sessionId"].clone()), (json!([]), json!(second_id)));
    let stale = c.call("chat.history", json!({"sessionKey": "main", "cursor": cursor})).await.unwrap();
    assert_eq!(stale, json!({"kind": "reset"}), "a cursor into the old transcript");

    // The next turn starts from nothing: the model does not see the old conversation.
    model.push(Reply::text("Which door?"));
    tg.push_message(Incoming::dm(1001, "What did I ask you to remember?"));
    tg.wait_for_messages(3, WAIT).await;
    let sent = model.requests()[1].body["messages"].to_string();
    assert!(!sent.contains("blue door") && sent.contains("What did I ask"), "{sent}");

    // `/reset` is the same command, and each reset keeps the transcript it left.
    tg.push_message(Incoming::dm(1001, "/reset"));
    tg.wait_for_messages(4, WAIT).await;
    let third_id =
        session(&c.call("sessions.list", json!({})).await.unwrap())["sessionId"].as_str().unwrap().to_string();
    assert!(third_id != first_id && third_id != second_id);
    drop(c);
    gw.terminate().unwrap();
    let store = pincer_store::Store::open(&dir.path().join("pincer.db")).unwrap();
    let (archive, old, middle) = store
        .read_blocking(move |rd| {
            Ok((
                rd.archived_sessions("agent:main:main")?,
                rd.transcript_by_id(&first_id)?,
                rd.transcript_by_id(&second_id)?,
            ))
        })
        .unwrap();
    let texts = |t: Option<(String, Vec<pincer_store::TranscriptRow>)>| {
        t.unwrap().1.into_iter().map(|r| r.content).collect::<Vec<_>>()
    };
    assert_eq!(texts(old), ["Remember the blue door.", "Noted: the blue door."]);
    assert_eq!(texts(middle), ["What did I ask you to remember?", "Which door?"]);
    assert_eq!(archive.iter().map(|a| a.reason.as_str()).collect::<Vec<_>>(), ["reset", "new"]);
    assert_eq!(tg.messages().len(), 4, "each command answered once");
}

#[tokio::test]
async fn an_unknown_sender_gets_a_pairing_code_and_reaches_the_model_only_after_approval() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config(&tg, &model, json!({}))).unwrap();
    let (_, asked) = tg.push_message(Incoming::dm(2002, "hello?"));
    let got = tg.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].reply_to_message_id, Some(asked));
    let code = got[0].text.lines().find_map(|l| l.strip_prefix("Pairing code: ")).unwrap().to_string();
    assert!(got[0].text.contains("pincer pairing approve telegram"), "{}", got[0].text);
    // Asking again while the code waits sends nothing more, and nothing reached the model.
    tg.push_message(Incoming::dm(2002, "hello??"));
    wait_until("the second update to be confirmed", || tg.unconfirmed() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((tg.messages().len(), model.request_count()), (1, 0));

    let list = gw.cli(&["pairing", "list", "--json"]);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success() && listed.contains("2002"), "{listed} {}", String::from_utf8_lossy(&list.stderr));
    let wrong = gw.cli(&["pairing", "approve", "telegram", "NOPE2345"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("pincer pairing list"), "{wrong:?}");
    let ok = gw.cli(&["pairing", "approve", "telegram", &code.to_lowercase()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let got = tg.wait_for_messages(2, WAIT).await;
    assert_eq!(got[1].text, "Access approved. Send a message to start chatting.");

    tg.push_message(Incoming::dm(2002, "now?"));
    let got = tg.wait_for_messages(3, WAIT).await;
    assert_eq!(got[2].text, "Hello from the fake model.");
    assert_eq!(model.request_count(), 1);
    let mut c = client(&gw, &["operator.admin"]).await;
    let audit = c.call("audit.query", json!({})).await.unwrap().to_string();
    for action in ["channel.pairing.requested", "channel.pairing.approved", "channel.message.allowed"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
    assert!(!audit.contains(&code), "the audit log never holds the code");
}

#[tokio::test]
async fn pairing_codes_are_capped_and_a_rejected_code_lets_nobody_in() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config(&tg, &model, json!({}))).unwrap();
    for user in 3001..3005 {
        tg.push_message(Incoming::dm(user, "hi"));
    }
    let got = tg.wait_for_messages(3, WAIT).await;
    wait_until("every update to be confirmed", || tg.unconfirmed() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tg.messages().len(), 3, "at most 3 codes wait per channel");
    let code = got[0].text.lines().find_map(|l| l.strip_prefix("Pairing code: ")).unwrap().to_string();
    let out = gw.cli(&["pairing", "reject", "telegram", &code]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = gw.cli(&["pairing", "approve", "telegram", &code]);
    assert!(!again.status.success(), "a rejected code cannot be approved");
    assert_eq!(model.request_count(), 0);
}

#[tokio::test]
async fn in_a_group_the_bot_answers_when_mentioned_or_replied_to_and_never_other_bots() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let telegram = json!({ "groups": { "-100": {} } });
    let _gw = GatewayProcess::start(&pincer_bin(), dir.path(), config(&tg, &model, telegram)).unwrap();
    tg.push_message(Incoming::group(-100, 7, "just chatting"));
    tg.push_message(Incoming::group(-100, 7, "@pincer_fake_bot bot loop?").from_bot());
    tg.push_message(Incoming::group(-100, 7, "x").sticker());
    tg.push_message(Incoming::group(-200, 7, "@pincer_fake_bot not this group"));
    let (_, mentioned) = tg.push_message(Incoming::group(-100, 7, "@pincer_fake_bot what time is it?"));
    let got = tg.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].chat_id.as_str(), got[0].reply_to_message_id), ("-100", Some(mentioned)));
    assert!(user_text(&model.requests()[0].body).contains("what time is it?"));
    let (_, replied) = tg.push_message(Incoming::group(-100, 8, "thanks").reply_to_bot().topic(5));
    let got = tg.wait_for_messages(2, WAIT).await;
    assert_eq!((got[1].reply_to_message_id, got[1].message_thread_id), (Some(replied), Some(5)));
    wait_until("every update to be confirmed", || tg.unconfirmed() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((tg.messages().len(), model.request_count()), (2, 2));
}

#[tokio::test]
async fn a_refused_token_stops_the_channel_and_health_says_so() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    tg.revoke_token();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config(&tg, &model, json!({}))).unwrap();
    let mut c = client(&gw, &["operator.read"]).await;
    let deadline = std::time::Instant::now() + WAIT;
    let inbound = loop {
        let health = c.call("health", json!({})).await.unwrap();
        let inbound = health["channels"]["telegram"]["inbound"].clone();
        if inbound["state"] == "credentials-rejected" {
            break inbound;
        }
        assert!(std::time::Instant::now() < deadline, "{health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(inbound["lastError"].as_str().unwrap().contains("channels.telegram.botToken"), "{inbound}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(tg.polls().is_empty(), "a refused token never polls");
}

/// The backoff after a failed poll runs on the injected clock: no second poll until it passes.
#[tokio::test]
async fn a_failed_poll_backs_off_on_the_clock_and_health_shows_when_it_retries() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    tg.push_poll_fault(PollFault::ServerError(502));
    tg.push_poll_fault(PollFault::Conflict);
    let extra = config(&tg, &model, json!({ "allowFrom": ["*"] })).to_string();
    let gw = TestGateway::start_with(&extra).await;
    let mut c = gw.client(&["operator.read"]).await;
    tg.wait_for_polls(1, WAIT).await;
    let inbound = wait_inbound(&mut c, "backoff").await;
    let start = gw.clock.now_ms();
    assert_eq!(inbound["nextAttemptAtMs"].as_i64(), Some(start + 1_000), "{inbound}");
    assert!(inbound["lastError"].as_str().unwrap().contains("502"), "{inbound}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tg.polls().len(), 1, "no poll before the backoff passed");
    gw.clock.advance(1_000);
    tg.wait_for_polls(2, WAIT).await;
    // The 409 (another poller): backoff again, now 2 s.
    let inbound = wait_inbound(&mut c, "backoff").await;
    assert_eq!(inbound["nextAttemptAtMs"].as_i64(), Some(start + 3_000), "{inbound}");
    assert!(inbound["lastError"].as_str().unwrap().contains("another poller"), "{inbound}");
    gw.clock.advance(2_000);
    tg.wait_for_polls(3, WAIT).await;
    let (_, id) = tg.push_message(Incoming::dm(5, "after the faults"));
    let got = tg.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].reply_to_message_id, Some(id));
    gw.stop().await;
}

async fn wait_inbound(c: &mut RawClient, state: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let health = c.call("health", json!({})).await.unwrap();
        let inbound = health["channels"]["telegram"]["inbound"].clone();
        if inbound["state"] == state {
            return inbound;
        }
        assert!(std::time::Instant::now() < deadline, "never {state}: {health}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A chat's very first message already has its route: the turn's `message` tool with no target
/// reaches the chat the message came from (the route is recorded before the turn, not after).
#[tokio::test]
async fn the_first_message_of_a_chat_already_routes_the_message_tool_to_that_chat() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::tool_call("message", json!({"message": "On it."})));
    model.push(Reply::text("Done."));
    let dir = tempfile::tempdir().unwrap();
    let _gw =
        GatewayProcess::start(&pincer_bin(), dir.path(), config(&tg, &model, json!({"allowFrom": [1001]}))).unwrap();
    tg.push_message(Incoming::dm(1001, "Tell me when you start"));
    let got = tg.wait_for_messages(2, WAIT).await;
    let mut sent: Vec<(&str, &str)> = got.iter().map(|m| (m.chat_id.as_str(), m.text.as_str())).collect();
    sent.sort();
    assert_eq!(sent, [("1001", "Done."), ("1001", "On it.")], "{:?}", model.requests().last().map(|r| &r.body));
}

/// Many chats at once: every message answered once, in order within each chat, none lost.
#[tokio::test]
async fn many_chats_at_once_are_each_answered_once_and_in_order() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&tg, &model, json!({ "allowFrom": ["*"] }));
    cfg["session"] = json!({ "dmScope": "per-channel-peer" });
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), cfg).unwrap();
    let (chats, rounds) = (20i64, 2);
    let mut sent = Vec::new();
    for round in 0..rounds {
        for user in 1..=chats {
            sent.push((user, tg.push_message(Incoming::dm(user, &format!("round {round}"))).1));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Messages of one chat that arrive during its turn may be answered together, so wait for
    // every message to be answered rather than for a count of replies.
    loop {
        let answered = gw.cli(&["health", "--json"]);
        let _ = answered;
        let got = tg.messages();
        let done = (1..=chats).all(|u| {
            let last = sent.iter().rev().find(|(s, _)| *s == u).unwrap().1;
            got.iter().any(|m| m.chat_id == u.to_string() && m.reply_to_message_id == Some(last))
        });
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} replies: {got:?}\n{}", got.len(), gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = tg.messages();
    for user in 1..=chats {
        let replies: Vec<i64> =
            got.iter().filter(|m| m.chat_id == user.to_string()).filter_map(|m| m.reply_to_message_id).collect();
        let mut sorted = replies.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(replies, sorted, "chat {user}: answered out of order or twice");
    }
    assert_eq!(tg.unconfirmed(), 0);
}

/// Webhook mode: `setWebhook` on start, updates posted by the fake to the gateway's port (the
/// secret checked, each stored before the 200), answered through the same pipeline; switching
/// back to polling deletes the webhook and polls the updates it left.
#[tokio::test]
async fn webhook_mode_sets_the_webhook_checks_the_secret_and_switching_back_deletes_it() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    model.push(Reply::text("Hooked."));
    let dir = tempfile::tempdir().unwrap();
    let port = pincer_testkit::process::free_port();
    let url = format!("http://127.0.0.1:{port}/tg-hook");
    let mut cfg = config(&tg, &model, json!({ "allowFrom": [1001], "webhookUrl": url, "webhookSecret": "s3cret" }));
    cfg["gateway"] = json!({ "port": port });
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), cfg.clone()).unwrap();
    wait_until("setWebhook", || tg.webhook().is_some()).await;
    assert_eq!(tg.webhook(), Some((url.clone(), Some("s3cret".to_string()))));
    let mut c = client(&gw, &["operator.read"]).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let inbound = c.call("health", json!({})).await.unwrap()["channels"]["telegram"]["inbound"].clone();
        if inbound["state"] == "connected" {
            assert_eq!(inbound["mode"], "webhook", "{inbound}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{inbound}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A request without the secret is refused and stores nothing.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let own = json!({"update_id": 999, "message": {"message_id": 77, "date": 1, "chat": {"id": 1001, "type": "private"},
        "from": {"id": 1001, "is_bot": false, "first_name": "X"}, "text": "posted by hand"}});
    let post = |secret: Option<&'static str>| {
        let headers: Vec<(&str, &str)> =
            secret.map(|s| vec![("X-Telegram-Bot-Api-Secret-Token", s)]).unwrap_or_default();
        let own = own.clone();
        async move { pincer_testkit::http::post_json(addr, "/tg-hook", &headers, &own).await.unwrap().0 }
    };
    assert_eq!((post(None).await, post(Some("wrong")).await), (401, 401));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(model.request_count(), 0, "a refused update reaches nobody");
    // With the secret it is stored before the 200; the same update again (Telegram retrying
    // after a lost 200) is answered once.
    assert_eq!(post(Some("s3cret")).await, 200);
    let got = tg.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].text.as_str(), got[0].reply_to_message_id), ("Hooked.", Some(77)));
    assert_eq!(post(Some("s3cret")).await, 200);

    // Updates the fake posts, as Telegram does.
    let (_, id) = tg.push_message(Incoming::dm(1001, "via the hook"));
    assert_eq!(tg.deliver_webhook().await.unwrap(), vec![200]);
    let got = tg.wait_for_messages(2, WAIT).await;
    assert_eq!(got[1].reply_to_message_id, Some(id));
    assert!(user_text(&model.requests()[1].body).contains("via the hook"));
    assert!(tg.polls().is_empty(), "webhook mode never polls");

    // Back to polling: the webhook is deleted, and an update pushed meanwhile is polled.
    gw.terminate().unwrap();
    let (_, later) = tg.push_message(Incoming::dm(1001, "while switching"));
    cfg["channels"]["telegram"].as_object_mut().unwrap().retain(|k, _| !k.starts_with("webhook"));
    let _gw = GatewayProcess::start(&pincer_bin(), dir.path(), cfg).unwrap();
    let got = tg.wait_for_messages(3, WAIT).await;
    assert_eq!(got[2].reply_to_message_id, Some(later));
    assert_eq!(tg.webhook_calls(), vec![format!("set {url}"), "delete".to_string()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((tg.messages().len(), model.request_count()), (3, 3));
}

/// A reload applies inbound chat settings: a fixed bot token starts the listener again (and the
/// outbox sends what it held), a new `allowFrom` lets a sender in from the next message, and the
/// task list keeps one listener.
#[tokio::test]
async fn a_fixed_token_and_a_new_allow_list_apply_on_reload_without_a_restart() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let mut cfg = config(&tg, &model, json!({ "botToken": "123:wrong", "dmPolicy": "allowlist", "allowFrom": [5] }));
    let gw = TestGateway::start_with(&cfg.to_string()).await;
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "credentials-rejected").await;
    let sent = c
        .call(
            "send",
            json!({ "channel": "telegram", "to": "5", "message": "held until the token is fixed",
            "idempotencyKey": "held-1" }),
        )
        .await
        .unwrap();
    assert!(sent["messageId"].is_string() || sent["id"].is_string(), "{sent}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(tg.messages().is_empty(), "nothing reaches Telegram with a refused token");

    let write = |cfg: &Value| {
        let mut cfg = cfg.clone();
        cfg["gateway"] = json!({ "port": 0, "auth": { "token": crate::support::TOKEN } });
        std::fs::write(&gw.paths.config_path, cfg.to_string()).unwrap();
    };
    cfg["channels"]["telegram"]["botToken"] = json!(FakeTelegram::TOKEN);
    write(&cfg);
    let reloaded = c.call("config.reload", json!({})).await.unwrap();
    assert!(reloaded.to_string().contains("channels.telegram.botToken"), "{reloaded}");
    wait_inbound(&mut c, "polling").await;
    let got = tg.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].chat_id.as_str(), got[0].text.as_str()), ("5", "held until the token is fixed"));
    let (_, id) = tg.push_message(Incoming::dm(5, "hello after the fix"));
    let got = tg.wait_for_messages(2, WAIT).await;
    assert_eq!((got[1].chat_id.as_str(), got[1].reply_to_message_id), ("5", Some(id)));

    // Sender 6 is not on the list: refused until the list names it.
    tg.push_message(Incoming::dm(6, "let me in"));
    wait_until("the refused update to be confirmed", || tg.unconfirmed() == 0).await;
    cfg["channels"]["telegram"]["allowFrom"] = json!([5, 6]);
    write(&cfg);
    c.call("config.reload", json!({})).await.unwrap();
    let (_, id) = tg.push_message(Incoming::dm(6, "now?"));
    let got = tg.wait_for_messages(3, WAIT).await;
    assert_eq!((got[2].chat_id.as_str(), got[2].reply_to_message_id), ("6", Some(id)));
    assert_eq!(model.request_count(), 2, "the refused message never reached the model");
    let status = c.call("status", json!({})).await.unwrap();
    let listeners = status.to_string().matches("\"telegram-inbound\"").count();
    assert_eq!(listeners, 1, "one listener after two reloads: {status}");
    gw.stop().await;
}

/// `cron` is owner-only, and a chat sender is the owner only when the channel's `allowFrom`
/// names them (`*` names no one): with the default `dmPolicy: pairing` and no `allowFrom`,
/// nobody on Telegram can have a reminder made. `doctor` warns about exactly that, with the
/// config key, an id in the channel's form and `pincer config reload`; a list of `*` still
/// warns, and once the list names the owner and the config is reloaded, the warning is gone.
#[tokio::test]
async fn doctor_warns_when_no_telegram_sender_is_the_owner_and_says_how_to_name_one() {
    let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let mut cfg = config(&tg, &model, json!({}));
    let gw = TestGateway::start_with(&cfg.to_string()).await;
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "polling").await;
    let owner_finding = |doctor: &Value| {
        doctor["findings"].as_array().unwrap().iter().find(|f| f["check"] == "channel.telegram.owner").cloned()
    };
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    let finding = owner_finding(&doctor).unwrap_or_else(|| panic!("no owner warning: {doctor}"));
    assert_eq!(finding["status"], "warn", "{finding}");
    let (message, fix) = (finding["message"].as_str().unwrap(), finding["fix"].as_str().unwrap());
    assert!(message.contains("channels.telegram.allowFrom") && message.contains("cron"), "{message}");
    assert!(fix.contains(r#"`channels.telegram.allowFrom: ["123456789"]`"#), "{fix}");
    assert!(fix.contains("pincer config reload"), "{fix}");

    let write = |cfg: &Value| {
        let mut cfg = cfg.clone();
        cfg["gateway"] = json!({ "port": 0, "auth": { "token": crate::support::TOKEN } });
        std::fs::write(&gw.paths.config_path, cfg.to_string()).unwrap();
    };
    cfg["channels"]["telegram"]["allowFrom"] = json!(["*"]);
    cfg["channels"]["telegram"]["dmPolicy"] = json!("open");
    write(&cfg);
    c.call("config.reload", json!({})).await.unwrap();
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    assert!(owner_finding(&doctor).is_some(), "\"*\" names no owner: {doctor}");

    cfg["channels"]["telegram"]["allowFrom"] = json!(["*", 1001]);
    write(&cfg);
    c.call("config.reload", json!({})).await.unwrap();
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    assert_eq!(owner_finding(&doctor), None, "{doctor}");
    gw.stop().await;
}
