//! Slack inbound end to end: the real gateway opens Socket Mode at the fake Slack
//! (`apps.connections.open` → WebSocket), acks envelopes after committing them, answers DMs and
//! mentions in thread through the fake model and the outbox, survives a redelivered envelope, a
//! `disconnect` and a dropped socket, and stops on a refused token.

use std::time::Duration;

use pincer_core::Clock;
use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
use pincer_testkit::fakes::slack::FakeSlack;
use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::{TestGateway, pincer_bin};

const WAIT: Duration = Duration::from_secs(20);

fn config(slack: &FakeSlack, model: &FakeOpenAi, extra: Value) -> Value {
    let mut channel = json!({
        "botToken": FakeSlack::TOKEN, "appToken": FakeSlack::APP_TOKEN, "apiBaseUrl": slack.base_url(),
    });
    for (k, v) in extra.as_object().unwrap() {
        channel[k] = v.clone();
    }
    json!({
        "models": { "providers": { "openai": {
            "api": "openai-completions", "baseUrl": model.base_url(), "apiKey": "sk-test", "models": [{ "id": "gpt-4o" }],
        } } },
        "agents": { "defaults": { "model": { "primary": "openai/gpt-4o" } } },
        "channels": { "slack": channel },
        "delivery": { "rateLimits": { "slack": 0 } },
    })
}

async fn client(gw: &GatewayProcess) -> RawClient {
    RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.admin"])).await.unwrap().0
}

/// Waits until `health` shows Slack's inbound side in `state`; returns it.
async fn wait_inbound(c: &mut RawClient, state: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let health = c.call("health", json!({})).await.unwrap();
        let inbound = health["channels"]["slack"]["inbound"].clone();
        if inbound["state"] == state {
            return inbound;
        }
        assert!(std::time::Instant::now() < deadline, "never {state}: {health}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().unwrap();
    messages.iter().rev().find(|m| m["role"] == "user").map(|m| m["content"].to_string()).unwrap_or_default()
}

#[tokio::test]
async fn a_slack_dm_and_a_mention_are_answered_once_in_thread_and_bots_and_edits_are_not() {
    let (slack, model) = (FakeSlack::start_socket_mode().await, FakeOpenAi::start().await);
    model.push(Reply::text("Sunny all day."));
    model.push(Reply::text("It is noon."));
    let dir = tempfile::tempdir().unwrap();
    let extra = json!({ "allowFrom": ["U0ANN"], "channels": { "C0TEAM": {} } });
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config(&slack, &model, extra)).unwrap();
    let mut c = client(&gw).await;
    let inbound = wait_inbound(&mut c, "connected").await;
    assert_eq!((&inbound["bot"], &inbound["mode"]), (&json!("@pincer-fake"), &json!("socket")), "{inbound}");
    let status = c.call("channels.status", json!({"channel": "slack"})).await.unwrap();
    let account = &status["channelAccounts"]["slack"][0];
    assert_eq!((&account["connected"], &account["mode"]), (&json!(true), &json!("socket")), "{status}");

    let dm = slack.push_dm("U0ANN", "What's the weather?");
    let got = slack.wait_for_messages(1, WAIT).await;
    assert_eq!(
        (got[0].channel.as_str(), got[0].text.as_str(), got[0].thread_ts.as_deref()),
        ("D0ANN", "Sunny all day.", Some(dm.as_str()))
    );
    assert!(user_text(&model.requests()[0].body).contains("What's the weather?"));

    // The bot's own reply coming back, an edit, a deletion, a thread in a channel not listed,
    // another bot's mention: all acked, none answered.
    slack.push_event(json!({
        "type": "message", "channel_type": "im", "channel": "D0ANN", "user": FakeSlack::BOT_USER, "bot_id": "B0FAKEBOT",
        "text": "Sunny all day.",
    }));
    slack.push_event(json!({
        "type": "message", "channel_type": "im", "channel": "D0ANN", "subtype": "message_changed",
        "message": { "user": "U0ANN", "text": "What's the weather now?" },
    }));
    slack.push_event(
        json!({ "type": "message", "channel_type": "im", "channel": "D0ANN", "subtype": "message_deleted" }),
    );
    slack.push_mention("C0OTHER", "U0ANN", "not here", None);
    slack.push_event(json!({
        "type": "app_mention", "channel": "C0TEAM", "user": "U0BOB", "bot_id": "B0OTHER", "text": "<@U0FAKEBOT> loop?",
    }));

    // A mention in a listed channel, inside a thread: the reply goes to that thread.
    slack.push_mention("C0TEAM", "U0BOB", "what time is it?", Some("1700000000.000042"));
    let got = slack.wait_for_messages(2, WAIT).await;
    assert_eq!(
        (got[1].channel.as_str(), got[1].text.as_str(), got[1].thread_ts.as_deref()),
        ("C0TEAM", "It is noon.", Some("1700000000.000042"))
    );
    assert!(user_text(&model.requests()[1].body).contains("what time is it?"));
    slack.wait_all_acked(WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((slack.messages().len(), model.request_count()), (2, 2));
    let audit = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap().to_string();
    assert!(audit.contains("C0OTHER") && audit.contains("the group is not in groups"), "{audit}");
}

#[tokio::test]
async fn a_never_acked_envelope_is_redelivered_and_answered_once() {
    let (slack, model) = (FakeSlack::start_socket_mode().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let gw =
        GatewayProcess::start(&pincer_bin(), dir.path(), config(&slack, &model, json!({"allowFrom": ["*"]}))).unwrap();
    let mut c = client(&gw).await;
    wait_inbound(&mut c, "connected").await;
    slack.lose_next_ack();
    slack.push_dm("U0ANN", "hello once");
    slack.wait_for_messages(1, WAIT).await;
    assert_eq!(slack.unacked(), 1, "the ack was lost");
    // Slack retries the envelope: the gateway acks it and answers nothing more.
    slack.redeliver_unacked();
    slack.wait_all_acked(WAIT).await;
    assert_eq!(slack.deliveries(1), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((slack.messages().len(), model.request_count()), (1, 1));
}

/// A thread in a channel is its own conversation (OpenClaw's `…:thread:<ts>` key): the model
/// sees neither the channel's other messages nor another thread's, and each thread's next message
/// sees its own history.
#[tokio::test]
async fn each_slack_thread_has_its_own_session() {
    let (slack, model) = (FakeSlack::start_socket_mode().await, FakeOpenAi::start().await);
    model.set_default(Reply::text("ok"));
    let dir = tempfile::tempdir().unwrap();
    let extra = json!({ "channels": { "C0TEAM": {} } });
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config(&slack, &model, extra)).unwrap();
    let mut c = client(&gw).await;
    wait_inbound(&mut c, "connected").await;
    slack.push_mention("C0TEAM", "U0ANN", "top-level alpha", None);
    slack.wait_for_messages(1, WAIT).await;
    slack.push_mention("C0TEAM", "U0ANN", "thread one bravo", Some("1700000000.000001"));
    slack.wait_for_messages(2, WAIT).await;
    slack.push_mention("C0TEAM", "U0ANN", "thread two charlie", Some("1700000000.000002"));
    slack.wait_for_messages(3, WAIT).await;
    slack.push_mention("C0TEAM", "U0ANN", "thread one delta", Some("1700000000.000001"));
    slack.wait_for_messages(4, WAIT).await;
    let sent = |i: usize| model.requests()[i].body["messages"].to_string();
    assert!(!sent(1).contains("alpha"), "a thread does not see the channel: {}", sent(1));
    assert!(!sent(2).contains("alpha") && !sent(2).contains("bravo"), "{}", sent(2));
    assert!(sent(3).contains("bravo") && !sent(3).contains("charlie"), "{}", sent(3));
    let list = c.call("sessions.list", json!({})).await.unwrap();
    let mut keys: Vec<&str> = list["sessions"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "agent:main:session:slack:group:C0TEAM",
            "agent:main:session:slack:group:C0TEAM:thread:1700000000.000001",
            "agent:main:session:slack:group:C0TEAM:thread:1700000000.000002",
        ]
    );
}

/// A refused message and one that got a pairing code, each redelivered because its ack was
/// lost: each is decided and audited once, and the code is sent once.
#[tokio::test]
async fn a_redelivered_refused_or_pairing_message_is_audited_once() {
    let (slack, model) = (FakeSlack::start_socket_mode().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    // DMs pair (the default); channel C0OPEN is not in `groups`, so a mention there is refused.
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config(&slack, &model, json!({}))).unwrap();
    let mut c = client(&gw).await;
    wait_inbound(&mut c, "connected").await;
    slack.lose_next_ack();
    slack.push_dm("U0NEW", "let me in");
    slack.wait_for_messages(1, WAIT).await;
    slack.lose_next_ack();
    slack.push_mention("C0OPEN", "U0NEW", "<@U0BOT> hello", None);
    let deadline = std::time::Instant::now() + WAIT;
    while slack.unacked() < 2 {
        assert!(std::time::Instant::now() < deadline, "the mention never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    slack.redeliver_unacked();
    slack.wait_all_acked(WAIT).await;
    assert_eq!((slack.deliveries(1), slack.deliveries(2)), (2, 2));
    let count = |audit: &Value| audit.to_string().matches(r#""senderId":"U0NEW""#).count();
    let paired = c.call("audit.query", json!({"action": "channel.pairing.requested"})).await.unwrap();
    assert_eq!(count(&paired), 1, "{paired}");
    let denied = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap();
    assert_eq!(count(&denied), 1, "{denied}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((slack.messages().len(), model.request_count()), (1, 0), "one code sent, nothing to the model");
}

#[tokio::test]
async fn a_disconnect_reconnects_at_once_and_a_dropped_socket_backs_off_on_the_clock() {
    let (slack, model) = (FakeSlack::start_socket_mode().await, FakeOpenAi::start().await);
    let extra = config(&slack, &model, json!({ "allowFrom": ["*"] })).to_string();
    let gw = TestGateway::start_with(&extra).await;
    let mut c = gw.client(&["operator.read"]).await;
    wait_inbound(&mut c, "connected").await;
    slack.wait_for_connections(1, WAIT).await;

    // Slack refreshing the link: a new connection without waiting on the clock.
    slack.disconnect("refresh_requested");
    slack.wait_for_connections(2, WAIT).await;
    assert_eq!(slack.opens(), 2);
    let ts = slack.push_dm("U0ANN", "after the refresh");
    let got = slack.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].thread_ts.as_deref(), Some(ts.as_str()));

    // The network drops: back off 1 s on the injected clock, then reconnect.
    let start = gw.clock.now_ms();
    slack.drop_connections();
    let inbound = wait_inbound(&mut c, "backoff").await;
    assert_eq!(inbound["nextAttemptAtMs"].as_i64(), Some(start + 1_000), "{inbound}");
    assert!(inbound["lastError"].as_str().unwrap().contains("slack socket"), "{inbound}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.opens(), 2, "no new connection before the backoff passed");
    gw.clock.advance(1_000);
    slack.wait_for_connections(3, WAIT).await;
    wait_inbound(&mut c, "connected").await;
    slack.push_dm("U0ANN", "after the drop");
    slack.wait_for_messages(2, WAIT).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_app_token_stops_slack_inbound_and_health_says_so() {
    let (slack, model) = (FakeSlack::start_socket_mode().await, FakeOpenAi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&slack, &model, json!({ "appToken": "xapp-revoked" }));
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), cfg).unwrap();
    let mut c = client(&gw).await;
    let inbound = wait_inbound(&mut c, "credentials-rejected").await;
    let error = inbound["lastError"].as_str().unwrap();
    assert!(error.contains("invalid_auth") && error.contains("channels.slack.appToken"), "{inbound}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.opens(), 1, "a refused token is not retried");

    // The same state in channels.status (OpenClaw's account fields), doctor and /metrics.
    let status = c.call("channels.status", json!({})).await.unwrap();
    let account = &status["channelAccounts"]["slack"][0];
    assert_eq!(
        (&account["running"], &account["connected"], &account["state"]),
        (&json!(false), &json!(false), &json!("credentials-rejected")),
        "{status}"
    );
    assert!(account["lastError"].as_str().unwrap().contains("channels.slack.appToken"), "{account}");
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    let finding = doctor["findings"].as_array().unwrap().iter().find(|f| f["check"] == "channel.slack.inbound");
    let finding = finding.unwrap_or_else(|| panic!("{doctor}"));
    assert_eq!(finding["status"], "fail", "{finding}");
    assert!(finding["fix"].as_str().unwrap().contains("channels.slack"), "{finding}");
    let (_, metrics) = pincer_testkit::http::get(gw.addr(), "/metrics").await.unwrap();
    for line in [
        r#"pincer_channel_inbound_state{channel="slack",state="credentials-rejected"} 1"#,
        r#"pincer_channel_inbound_state{channel="slack",state="connected"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}
