//! Discord inbound end to end: the real gateway holds a WebSocket to the fake Discord gateway,
//! answers through the fake model and the outbox (REST fake) quoting the message; guild mentions,
//! resume after a drop without losing or repeating a message, heartbeats and the invalid-session
//! wait on the fake clock, a refused token, pairing.

use std::time::Duration;

use pincer_core::Clock;

use pincer_testkit::fakes::discord::{self as discord_rest, FakeDiscord, Fault};
use pincer_testkit::fakes::discord_gateway::{self, BOT_ID, FakeDiscordGateway};
use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::TestGateway;

const WAIT: Duration = Duration::from_secs(20);

struct Fakes {
    gateway: FakeDiscordGateway,
    rest: FakeDiscord,
    model: FakeOpenAi,
}

async fn start(discord: Value) -> (Fakes, TestGateway) {
    let fakes = Fakes {
        gateway: FakeDiscordGateway::start().await,
        rest: FakeDiscord::start().await,
        model: FakeOpenAi::start().await,
    };
    let mut channel =
        json!({ "token": FakeDiscord::TOKEN, "apiBaseUrl": fakes.rest.base_url(), "gatewayUrl": fakes.gateway.url() });
    for (k, v) in discord.as_object().unwrap() {
        channel[k] = v.clone();
    }
    let config = json!({
        "models": { "providers": { "openai": {
            "api": "openai-completions", "baseUrl": fakes.model.base_url(), "apiKey": "sk-test",
            "models": [{ "id": "gpt-4o" }],
        } } },
        "agents": { "defaults": { "model": { "primary": "openai/gpt-4o" } } },
        "channels": { "discord": channel },
        "delivery": { "rateLimits": { "discord": 0 } },
    });
    let gw = TestGateway::start_with(&config.to_string()).await;
    (fakes, gw)
}

/// Waits until `channels.discord.inbound.state` is `state`.
async fn wait_inbound(c: &mut RawClient, state: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let health = c.call("health", json!({})).await.unwrap();
        let inbound = health["channels"]["discord"]["inbound"].clone();
        if inbound["state"] == state {
            return inbound;
        }
        assert!(std::time::Instant::now() < deadline, "never {state}: {health}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets anything still in flight arrive, so "nothing more" is checked.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn a_discord_dm_is_answered_through_the_outbox_quoting_it_while_typing_shows_and_bots_and_empty_messages_never() {
    let (f, gw) = start(json!({ "allowFrom": ["501"] })).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let inbound = wait_inbound(&mut c, "connected").await;
    assert_eq!(inbound["bot"], format!("@{}", FakeDiscord::BOT_NAME), "{inbound}");
    let log = f.gateway.log();
    assert_eq!(log.identifies.len(), 1);
    // GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT
    assert_eq!(log.identifies[0]["intents"], 37377, "{:?}", log.identifies[0]);
    assert_eq!(log.identifies[0]["token"], FakeDiscord::TOKEN);
    assert!(log.connections[0].contains("v=10") && log.connections[0].contains("encoding=json"), "{log:?}");

    f.model.push(Reply::text("Sunny all day."));
    let mut from_bot = discord_gateway::dm("801", "502", "bot loop?");
    from_bot["author"]["bot"] = json!(true);
    f.gateway.push_message(from_bot);
    f.gateway.push_message(discord_gateway::dm("801", "501", "  "));
    let asked = f.gateway.push_message(discord_gateway::dm("801", "501", "What's the weather?"));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!(
        (got[0].channel_id.as_str(), got[0].content.as_str(), got[0].message_reference.as_deref()),
        ("801", "Sunny all day.", Some(asked.as_str()))
    );
    settle().await;
    assert_eq!((f.rest.messages().len(), f.model.request_count()), (1, 1));
    // The typing indicator showed in that channel while the turn ran (and nowhere else).
    assert_eq!(f.rest.typing(), ["801"]);
    let audit = c.call("audit.query", json!({"action": "channel.message.allowed"})).await.unwrap().to_string();
    assert_eq!(audit.matches(r#""senderId":"501""#).count(), 1, "{audit}");
    gw.stop().await;
}

#[tokio::test]
async fn in_a_guild_the_bot_answers_mentions_in_channels_and_threads_and_nothing_else() {
    let (f, gw) = start(json!({ "guilds": { "66": { "users": ["601", "602"] } } })).await;
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    f.model.push(Reply::text("It is noon."));
    f.model.push(Reply::text("In the thread."));
    f.gateway.push_message(discord_gateway::guild("66", "700", "601", "just chatting", false));
    f.gateway.push_message(discord_gateway::guild("67", "710", "601", "not this guild", true));
    f.gateway.push_message(discord_gateway::guild("66", "700", "699", "not a listed user", true));
    let asked = f.gateway.push_message(discord_gateway::guild("66", "700", "601", "what time is it?", true));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].channel_id.as_str(), got[0].message_reference.as_deref()), ("700", Some(asked.as_str())));
    let body = f.model.requests()[0].body["messages"].to_string();
    assert!(body.contains("what time is it?") && !body.contains(BOT_ID), "{body}");
    // A thread is a channel of its own: the reply goes into it.
    let in_thread = f.gateway.push_message(discord_gateway::guild("66", "7001", "602", "and here?", true));
    let got = f.rest.wait_for_messages(2, WAIT).await;
    assert_eq!((got[1].channel_id.as_str(), got[1].message_reference.as_deref()), ("7001", Some(in_thread.as_str())));
    settle().await;
    assert_eq!((f.rest.messages().len(), f.model.request_count()), (2, 2));
    let denied = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap().to_string();
    assert!(denied.contains("the guild is not in guilds") && denied.contains("the guild's users"), "{denied}");
    gw.stop().await;
}

/// OpenClaw's `guilds.<id>.roles`: a member holding a listed role (the dispatch's `member.roles`)
/// is answered beside the listed `users`; one without is refused, and the audit says why.
#[tokio::test]
async fn in_a_guild_a_member_with_a_listed_role_is_answered_and_one_without_is_not() {
    let (f, gw) = start(json!({ "guilds": { "66": { "users": ["601"], "roles": ["900"] } } })).await;
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    f.model.push(Reply::text("Hello, moderator."));
    let with_role = |user: &str, text: &str, roles: Value| {
        let mut m = discord_gateway::guild("66", "700", user, text, true);
        m["member"] = json!({ "roles": roles });
        m
    };
    f.gateway.push_message(with_role("699", "no listed role", json!(["901"])));
    let asked = f.gateway.push_message(with_role("698", "I moderate here", json!(["901", "900"])));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].channel_id.as_str(), got[0].message_reference.as_deref()), ("700", Some(asked.as_str())));
    settle().await;
    assert_eq!((f.rest.messages().len(), f.model.request_count()), (1, 1));
    let denied = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap().to_string();
    assert!(denied.contains("the guild's users or roles") && denied.contains(r#""senderId":"699""#), "{denied}");
    gw.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_and_no_message_is_lost_or_answered_twice() {
    let (f, gw) = start(json!({ "dmPolicy": "open" })).await;
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    for text in ["one", "two", "three"] {
        f.model.push(Reply::text(format!("answer {text}")));
    }
    let first = f.gateway.push_message(discord_gateway::dm("801", "501", "first"));
    f.rest.wait_for_messages(1, WAIT).await;

    // The network drops: the client resumes the session with the last sequence it committed,
    // and a message sent meanwhile is replayed to it.
    f.gateway.drop_connections();
    let second = f.gateway.push_message(discord_gateway::dm("801", "501", "second"));
    let log = f.gateway.wait_for("a resume", WAIT, |l| !l.resumes.is_empty()).await;
    assert_eq!(log.resumes[0]["session_id"], "fake-session-1", "{log:?}");
    assert!(log.resumes[0]["seq"].as_i64().unwrap() >= 2, "the first message was acknowledged: {log:?}");
    let got = f.rest.wait_for_messages(2, WAIT).await;
    assert_eq!(got[1].message_reference.as_deref(), Some(second.as_str()));
    wait_inbound(&mut c, "connected").await;

    // Discord replays everything again on the next resume: nothing is answered twice.
    f.gateway.set_replay_all(true);
    f.gateway.drop_connections();
    f.gateway.wait_for("a second resume", WAIT, |l| l.resumes.len() >= 2).await;
    wait_inbound(&mut c, "connected").await;
    let third = f.gateway.push_message(discord_gateway::dm("801", "501", "third"));
    let got = f.rest.wait_for_messages(3, WAIT).await;
    assert_eq!(got[2].message_reference.as_deref(), Some(third.as_str()));
    settle().await;
    let quoted: Vec<_> = f.rest.messages().iter().filter_map(|m| m.message_reference.clone()).collect();
    assert_eq!(quoted, [first, second, third]);
    assert_eq!(f.model.request_count(), 3);
    assert_eq!(f.gateway.log().identifies.len(), 1, "resumed, never identified again");
    gw.stop().await;
}

#[tokio::test]
async fn heartbeats_and_the_invalid_session_wait_run_on_the_clock() {
    let (f, gw) = start(json!({ "dmPolicy": "open" })).await;
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    settle().await;
    assert_eq!(f.gateway.log().heartbeats, 0, "no heartbeat before the clock moves");
    gw.clock.advance(45_000);
    f.gateway.wait_for("a heartbeat", WAIT, |l| l.heartbeats == 1).await;
    settle().await; // the ack reaches the client

    // The gateway stops acknowledging: the next beat finds the last one unanswered and resumes.
    f.gateway.set_ack_heartbeats(false);
    gw.clock.advance(45_000);
    f.gateway.wait_for("an unacknowledged heartbeat", WAIT, |l| l.heartbeats == 2).await;
    gw.clock.advance(45_000);
    f.gateway.wait_for("a resume of the zombie connection", WAIT, |l| l.resumes.len() == 1).await;
    f.gateway.set_ack_heartbeats(true);
    wait_inbound(&mut c, "connected").await;

    // An invalid session: a new identify, but only after Discord's 1–5 s, on the clock.
    f.gateway.invalidate_session(false);
    let inbound = wait_inbound(&mut c, "backoff").await;
    assert!(inbound["lastError"].as_str().unwrap().contains("invalidated the session"), "{inbound}");
    let wait = inbound["nextAttemptAtMs"].as_i64().unwrap() - gw.clock.now_ms();
    assert!((1_000..=5_000).contains(&wait), "{inbound}");
    settle().await;
    assert_eq!(f.gateway.log().identifies.len(), 1, "no identify before the wait passed");
    gw.clock.advance(5_000);
    f.gateway.wait_for("a new identify", WAIT, |l| l.identifies.len() == 2).await;
    wait_inbound(&mut c, "connected").await;
    f.model.push(Reply::text("Still here."));
    let asked = f.gateway.push_message(discord_gateway::dm("801", "501", "still there?"));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].message_reference.as_deref(), Some(asked.as_str()));
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_discord_token_stops_the_channel_and_health_says_so() {
    let gateway = FakeDiscordGateway::start().await;
    gateway.revoke_token();
    let rest = FakeDiscord::start().await;
    let config = json!({
        "channels": { "discord": { "token": FakeDiscord::TOKEN, "apiBaseUrl": rest.base_url(), "gatewayUrl": gateway.url() } },
    });
    let gw = TestGateway::start_with(&config.to_string()).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let inbound = wait_inbound(&mut c, "credentials-rejected").await;
    let error = inbound["lastError"].as_str().unwrap();
    assert!(error.contains("4004") && error.contains("channels.discord.token"), "{inbound}");
    // It never spins: no retry however far the clock moves.
    gw.clock.advance(600_000);
    settle().await;
    assert_eq!(gateway.log().identifies.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn without_a_gateway_url_discord_connects_where_get_gateway_bot_says() {
    let gateway = FakeDiscordGateway::start().await;
    let rest = FakeDiscord::start().await;
    rest.attach_gateway(&gateway.url());
    let config = json!({
        "channels": { "discord": { "token": FakeDiscord::TOKEN, "apiBaseUrl": rest.base_url(), "dmPolicy": "open" } },
    });
    let gw = TestGateway::start_with(&config.to_string()).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let inbound = wait_inbound(&mut c, "connected").await;
    assert_eq!(inbound["bot"], format!("@{}", FakeDiscord::BOT_NAME), "{inbound}");
    let log = gateway.log();
    assert_eq!((rest.gateway_lookups(), log.identifies.len()), (1, 1), "{log:?}");
    assert!(log.connections[0].contains("v=10"), "{log:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_failed_gateway_lookup_backs_off_with_its_error_and_a_refused_one_stops_the_channel() {
    // No gateway attached: the fake answers 404; the channel backs off saying so, and retries.
    let rest = FakeDiscord::start().await;
    let config = json!({ "channels": { "discord": { "token": FakeDiscord::TOKEN, "apiBaseUrl": rest.base_url() } } });
    let gw = TestGateway::start_with(&config.to_string()).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let inbound = wait_inbound(&mut c, "backoff").await;
    let error = inbound["lastError"].as_str().unwrap();
    assert!(error.contains("/gateway/bot") && error.contains("HTTP 404"), "{inbound}");
    assert_eq!(rest.gateway_lookups(), 1);
    gw.clock.advance(600_000);
    let deadline = std::time::Instant::now() + WAIT;
    while rest.gateway_lookups() < 2 {
        assert!(std::time::Instant::now() < deadline, "never looked up again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.stop().await;

    // A refused token at the lookup: credentials-rejected, no retry.
    let rest = FakeDiscord::start().await;
    let config = json!({ "channels": { "discord": { "token": "not-the-token", "apiBaseUrl": rest.base_url() } } });
    let gw = TestGateway::start_with(&config.to_string()).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let inbound = wait_inbound(&mut c, "credentials-rejected").await;
    assert!(inbound["lastError"].as_str().unwrap().contains("channels.discord.token"), "{inbound}");
    gw.clock.advance(600_000);
    settle().await;
    assert_eq!(rest.gateway_lookups(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_unknown_discord_sender_gets_a_pairing_code_and_the_model_nothing() {
    let (f, gw) = start(json!({})).await;
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    let asked = f.gateway.push_message(discord_gateway::dm("802", "503", "hello?"));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].channel_id.as_str(), got[0].message_reference.as_deref()), ("802", Some(asked.as_str())));
    assert!(got[0].content.contains("Pairing code: "), "{}", got[0].content);
    assert!(got[0].content.contains("pincer pairing approve discord"), "{}", got[0].content);
    f.gateway.push_message(discord_gateway::dm("802", "503", "hello??"));
    settle().await;
    assert_eq!((f.rest.messages().len(), f.model.request_count()), (1, 0));
    let pending = c.call("audit.query", json!({"action": "channel.pairing.requested"})).await.unwrap().to_string();
    assert_eq!(pending.matches(r#""senderId":"503""#).count(), 2, "{pending}");
    gw.stop().await;
}

/// `kill -9` before a dispatch is committed, after it, while its turn runs and after its reply
/// is committed, then a restart: the stored session is resumed from the last committed sequence,
/// so Discord replays what was not stored, and every message is answered exactly once.
#[tokio::test]
async fn kill_9_around_a_discord_message_neither_loses_it_nor_answers_it_twice() {
    use pincer_testkit::process::GatewayProcess;

    use crate::support::pincer_bin;
    for point in ["inbound.polled", "inbound.accepted", "inbound.answering", "inbound.answered"] {
        let (gateway, rest, model) =
            (FakeDiscordGateway::start().await, FakeDiscord::start().await, FakeOpenAi::start().await);
        let config = json!({
            "models": { "providers": { "openai": {
                "api": "openai-completions", "baseUrl": model.base_url(), "apiKey": "sk-test", "models": [{ "id": "gpt-4o" }],
            } } },
            "agents": { "defaults": { "model": { "primary": "openai/gpt-4o" } } },
            "channels": { "discord": {
                "token": FakeDiscord::TOKEN, "apiBaseUrl": rest.base_url(), "gatewayUrl": gateway.url(), "dmPolicy": "open",
            } },
            "session": { "dmScope": "per-channel-peer" },
            "delivery": { "rateLimits": { "discord": 0 } },
        });
        let dir = tempfile::tempdir().unwrap();
        let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
        // The session is stored once READY is handled: from then on a restart resumes it.
        let mut c =
            RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.read"])).await.unwrap().0;
        wait_inbound(&mut c, "connected").await;
        drop(c);
        gw.kill9();
        gw.restart_with_env(&[("PINCER_CRASHPOINTS", &format!("{point}:1"))]).unwrap();
        let sent: Vec<String> = (1..=3)
            .map(|u| gateway.push_message(discord_gateway::dm(&format!("80{u}"), &format!("50{u}"), "hi")))
            .collect();
        // Waits without blocking this runtime: the fake model answers on it.
        let deadline = std::time::Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = gw.wait_exit(Duration::from_millis(1)) {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "{point} was never reached:\n{}", gw.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(gw.log().contains(&format!("crash point {point} reached")), "{point}: {status}\n{}", gw.log());
        gw.clear_env();
        gw.restart().unwrap();
        rest.wait_for_messages(3, WAIT).await;
        settle().await;
        let log = gateway.log();
        assert_eq!(log.identifies.len(), 1, "{point}: every restart resumed the stored session; {log:?}");
        let got = rest.messages();
        for id in &sent {
            let answers = got.iter().filter(|m| m.message_reference.as_deref() == Some(id.as_str())).count();
            assert_eq!(answers, 1, "{point}: message {id}; {got:?}");
        }
        assert_eq!(got.len(), 3, "{point}: {got:?}");
    }
}

/// OpenClaw's `dm.groupEnabled` / `dm.groupChannels`: a group DM (channel type 3, known only by
/// looking the channel up) is ignored by default, even from a sender `allowFrom` names; enabled,
/// the listed one (by name slug) is answered as a group chat of its own and an unlisted one is not.
#[tokio::test]
async fn a_discord_group_dm_is_ignored_by_default_and_answered_when_enabled_and_listed() {
    let (f, gw) = start(json!({ "allowFrom": ["501"] })).await;
    f.rest.add_channel(discord_rest::group_dm("900", Some("Weekend Plans")));
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    f.model.push(Reply::text("Hi, owner."));
    f.gateway.push_message(discord_gateway::dm("900", "501", "anyone here?"));
    // A 1:1 DM (the fake's unlisted channels are DMs) is still answered.
    let asked = f.gateway.push_message(discord_gateway::dm("801", "501", "and here?"));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].channel_id.as_str(), got[0].message_reference.as_deref()), ("801", Some(asked.as_str())));
    settle().await;
    assert_eq!((f.rest.messages().len(), f.model.request_count()), (1, 1));
    let denied = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap().to_string();
    assert!(
        denied.contains("group DMs are disabled (dm.groupEnabled)") && denied.contains(r#""chatId":"900""#),
        "{denied}"
    );
    gw.stop().await;

    let (f, gw) = start(json!({ "dm": { "groupEnabled": true, "groupChannels": ["weekend-plans"] } })).await;
    f.rest.add_channel(discord_rest::group_dm("900", Some("Weekend Plans")));
    f.rest.add_channel(discord_rest::group_dm("901", Some("Other")));
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    f.model.push(Reply::text("Saturday works."));
    f.gateway.push_message(discord_gateway::dm("901", "502", "not listed"));
    // No mention needed and no pairing: the owner chose the group.
    let asked = f.gateway.push_message(discord_gateway::dm("900", "503", "when do we meet?"));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].channel_id.as_str(), got[0].message_reference.as_deref()), ("900", Some(asked.as_str())));
    // A group chat: the sender is named in the turn, as in a guild channel.
    let body = f.model.requests()[0].body["messages"].to_string();
    assert!(body.contains("[user503] when do we meet?"), "{body}");
    settle().await;
    assert_eq!((f.rest.messages().len(), f.model.request_count()), (1, 1));
    let denied = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap().to_string();
    assert!(
        denied.contains("the group DM is not in dm.groupChannels") && denied.contains(r#""chatId":"901""#),
        "{denied}"
    );
    let sessions = c.call("sessions.list", json!({})).await.unwrap().to_string();
    assert!(sessions.contains("discord:group:900"), "the group DM has a session of its own: {sessions}");
    gw.stop().await;
}

/// A thread with no entry of its own in `guilds.<id>.channels` takes its parent channel's entry
/// (allow or deny, `requireMention`), as OpenClaw does. The parent comes from `GET /channels/{id}`,
/// looked up once per thread and refreshed by THREAD_* dispatches.
#[tokio::test]
async fn a_thread_falls_back_to_its_parent_channels_entry_and_the_lookup_is_cached() {
    let guilds = json!({ "66": { "channels": { "700": { "requireMention": false }, "701": { "enabled": false } } } });
    let (f, gw) = start(json!({ "guilds": guilds })).await;
    f.rest.add_channel(discord_rest::thread("7001", "66", "700"));
    f.rest.add_channel(discord_rest::thread("7011", "66", "701"));
    let mut c = gw.client(&["operator.admin"]).await;
    wait_inbound(&mut c, "connected").await;
    for text in ["one", "two", "three", "four"] {
        f.model.push(Reply::text(format!("answer {text}")));
    }
    // Under the disabled parent: denied, even when mentioned.
    f.gateway.push_message(discord_gateway::guild("66", "7011", "601", "under 701", true));
    // Under the allowed parent: answered without a mention (the parent's requireMention: false).
    let first = f.gateway.push_message(discord_gateway::guild("66", "7001", "601", "under 700", false));
    let got = f.rest.wait_for_messages(1, WAIT).await;
    assert_eq!((got[0].channel_id.as_str(), got[0].message_reference.as_deref()), ("7001", Some(first.as_str())));
    let second = f.gateway.push_message(discord_gateway::guild("66", "7001", "602", "again", false));
    // The parent itself has an entry: never looked up.
    let third = f.gateway.push_message(discord_gateway::guild("66", "700", "601", "in the parent", false));
    let got = f.rest.wait_for_messages(3, WAIT).await;
    assert_eq!(got[1].message_reference.as_deref(), Some(second.as_str()));
    assert_eq!(got[2].message_reference.as_deref(), Some(third.as_str()));
    assert_eq!(
        (f.rest.channel_lookups("7001"), f.rest.channel_lookups("7011"), f.rest.channel_lookups("700")),
        (1, 1, 0)
    );

    // A thread Discord announces (THREAD_CREATE) is known without a lookup; a deleted one is
    // forgotten, so it would be looked up again.
    f.gateway.push_dispatch("THREAD_CREATE", discord_rest::thread("7002", "66", "700"));
    f.gateway.push_dispatch("THREAD_DELETE", json!({ "id": "7001", "guild_id": "66", "parent_id": "700", "type": 11 }));
    let fourth = f.gateway.push_message(discord_gateway::guild("66", "7002", "601", "new thread", false));
    let got = f.rest.wait_for_messages(4, WAIT).await;
    assert_eq!((got[3].channel_id.as_str(), got[3].message_reference.as_deref()), ("7002", Some(fourth.as_str())));
    assert_eq!(f.rest.channel_lookups("7002"), 0);
    f.gateway.push_message(discord_gateway::guild("66", "7001", "601", "after the delete", true));
    f.rest.wait_for_channel_lookups("7001", 2, WAIT).await;
    settle().await;
    assert_eq!(f.model.request_count(), 5, "the message after the delete was answered too");
    let denied = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap().to_string();
    assert!(
        denied.contains("the channel is disabled (enabled: false)") && denied.contains(r#""parentId":"701""#),
        "{denied}"
    );
    gw.stop().await;
}

/// A channel lookup Discord refuses denies the message with a logged error and an audit row, and
/// the listener goes on: the next message is answered. A short 429 is waited out and retried.
#[tokio::test]
async fn a_failing_channel_lookup_denies_with_a_logged_error_and_the_listener_goes_on() {
    use pincer_testkit::process::GatewayProcess;

    use crate::support::pincer_bin;
    let (gateway, rest, model) =
        (FakeDiscordGateway::start().await, FakeDiscord::start().await, FakeOpenAi::start().await);
    let config = json!({
        "models": { "providers": { "openai": {
            "api": "openai-completions", "baseUrl": model.base_url(), "apiKey": "sk-test", "models": [{ "id": "gpt-4o" }],
        } } },
        "agents": { "defaults": { "model": { "primary": "openai/gpt-4o" } } },
        "channels": { "discord": {
            "token": FakeDiscord::TOKEN, "apiBaseUrl": rest.base_url(), "gatewayUrl": gateway.url(),
            "guilds": { "66": { "channels": { "700": {} } } },
        } },
        "delivery": { "rateLimits": { "discord": 0 } },
    });
    rest.add_channel(discord_rest::thread("7001", "66", "700"));
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    let mut c =
        RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.admin"])).await.unwrap().0;
    wait_inbound(&mut c, "connected").await;
    model.push(Reply::text("Found it."));
    model.push(Reply::text("Waited."));
    rest.push_channel_fault(Fault::missing_access());
    gateway.push_message(discord_gateway::guild("66", "7001", "601", "refused lookup", true));
    rest.wait_for_channel_lookups("7001", 1, WAIT).await;
    let asked = gateway.push_message(discord_gateway::guild("66", "7001", "601", "looked up now", true));
    let got = rest.wait_for_messages(1, WAIT).await;
    assert_eq!(got[0].message_reference.as_deref(), Some(asked.as_str()));
    assert_eq!(rest.channel_lookups("7001"), 2, "a failed lookup is not cached");
    let log = gw.log();
    assert!(log.contains("looking up Discord channel 7001") && log.contains("HTTP 403: Missing Access"), "{log}");
    let denied = c.call("audit.query", json!({"action": "channel.message.denied"})).await.unwrap().to_string();
    assert!(denied.contains("the channel lookup failed") && denied.contains("Missing Access"), "{denied}");
    assert_eq!(wait_inbound(&mut c, "connected").await["state"], "connected");

    // A 429 on a lookup: waited out (Discord's retry_after), then looked up again and answered.
    rest.add_channel(discord_rest::thread("7002", "66", "700"));
    rest.push_channel_fault(Fault::RateLimited { retry_after: Duration::from_millis(300), global: false });
    let asked = gateway.push_message(discord_gateway::guild("66", "7002", "601", "after a 429", true));
    let got = rest.wait_for_messages(2, WAIT).await;
    assert_eq!(got[1].message_reference.as_deref(), Some(asked.as_str()));
    assert_eq!(rest.channel_lookups("7002"), 2);
    assert_eq!(model.request_count(), 2);
}
