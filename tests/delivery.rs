//! The outbox end to end: cron runs announced in-process to fake Discord, Telegram, Slack and
//! webhook servers on 127.0.0.1; rate limits, ambiguous sends, dead letters, paused channels,
//! silence, idempotency, failure alerts, and the route preflight.

use std::time::Duration;

use pincer_testkit::fakes::discord::{self, FakeDiscord};
use pincer_testkit::fakes::slack::FakeSlack;
use pincer_testkit::fakes::telegram::{self, FakeTelegram};
use pincer_testkit::fakes::webhook::FakeWebhook;
use pincer_testkit::ws::RawClient;
use serde_json::{Value, json};

use crate::support::{T0, TestGateway, error_of, wait_runs};

fn channels_config(
    discord: Option<&FakeDiscord>,
    telegram: Option<&FakeTelegram>,
    slack: Option<&FakeSlack>,
    extra: &str,
) -> String {
    let mut parts = Vec::new();
    if let Some(d) = discord {
        parts.push(format!("discord: {{ token: '{}', apiBaseUrl: '{}' }}", FakeDiscord::TOKEN, d.base_url()));
    }
    if let Some(t) = telegram {
        parts.push(format!("telegram: {{ botToken: '{}', apiRoot: '{}' }}", FakeTelegram::TOKEN, t.base_url()));
    }
    if let Some(s) = slack {
        parts.push(format!("slack: {{ botToken: '{}', apiBaseUrl: '{}' }}", FakeSlack::TOKEN, s.base_url()));
    }
    format!("{{ channels: {{ {} }}, delivery: {{ requestTimeoutMs: 1000 }}, {extra} }}", parts.join(", "))
}

async fn announce_job(c: &mut RawClient, shell: &str, delivery: Value) -> String {
    let job = c
        .call(
            "cron.add",
            json!({
                "name": "announce", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                "payload": {"kind": "command", "argv": ["sh", "-c", shell]}, "delivery": delivery,
            }),
        )
        .await
        .unwrap();
    job["id"].as_str().unwrap().to_string()
}

/// Polls until the delivery reaches `state`.
async fn wait_delivery(c: &mut RawClient, id: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = c.call("deliveries.get", json!({"id": id})).await.unwrap();
        if d["delivery"]["state"] == state {
            return d;
        }
        assert!(std::time::Instant::now() < deadline, "delivery {id} never became {state}: {d}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_run_is_announced_to_discord_in_process_with_a_stable_nonce() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let id = announce_job(
        &mut c,
        "echo 'Morning brief: all systems nominal'",
        json!({"mode": "announce", "channel": "discord", "to": "channel:1001"}),
    )
    .await;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(
        (runs[0]["deliveryStatus"].as_str(), runs[0]["completionStatus"].as_str()),
        (Some("delivered"), Some("succeeded"))
    );
    assert_eq!(runs[0]["delivered"], true);
    let msgs = discord.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].channel_id.as_str(), msgs[0].content.as_str()), ("1001", "Morning brief: all systems nominal"));
    assert!(msgs[0].enforce_nonce && msgs[0].nonce.as_ref().is_some_and(|n| n.len() <= 25));
    assert_eq!(msgs[0].allowed_mentions, Some(json!({"parse": []})), "never pings anyone");
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(job["state"]["lastDeliveryStatus"], "delivered");
    let d = c.call("deliveries.get", json!({"id": runs[0]["outboxId"]})).await.unwrap();
    assert_eq!(
        d["delivery"]["idempotencyKey"],
        format!("cron:{id}:{}:discord::channel:1001:", runs[0]["runId"].as_str().unwrap())
    );
    assert_eq!(d["parts"][0]["platformMessageId"], msgs[0].id);
    gw.stop().await;
}

#[tokio::test]
async fn long_output_is_chunked_in_order_and_dms_open_the_channel_once() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.admin"]).await;
    // 60 paragraphs of 60 characters: more than 2000 characters and more than 17 lines.
    let id = announce_job(
        &mut c,
        "for i in $(seq 1 60); do printf 'paragraph %02d %s\\n\\n' $i $(printf 'x%.0s' $(seq 1 46)); done",
        json!({"mode": "announce", "channel": "discord", "to": "user:777"}),
    )
    .await;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["deliveryStatus"], "delivered");
    let msgs = discord.messages();
    assert!(msgs.len() >= 4, "{} parts", msgs.len());
    assert_eq!(discord.dm_opens(), 1, "the DM channel is opened once");
    let dm = discord.dm_channel("777").unwrap();
    assert!(
        msgs.iter().all(|m| m.channel_id == dm && m.content.chars().count() <= 2000 && m.content.lines().count() <= 17)
    );
    let joined: String = msgs.iter().map(|m| m.content.clone()).collect::<Vec<_>>().join("\n\n");
    for i in 1..=60 {
        assert!(joined.contains(&format!("paragraph {i:02} ")), "paragraph {i} lost");
    }
    let order: Vec<usize> = msgs.iter().map(|m| m.content[10..12].parse().unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "parts out of order: {order:?}");
    gw.stop().await;
}

#[tokio::test]
async fn rate_limits_pause_the_channel_without_spending_an_attempt() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.write"]).await;
    discord.push_fault(discord::Fault::RateLimited { retry_after: Duration::from_secs(3), global: false });
    let res = c
        .call("send", json!({"to": "channel:5", "channel": "discord", "message": "hi", "idempotencyKey": "k1"}))
        .await
        .unwrap();
    let id = res["deliveryId"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while discord.requests() < 1 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let health = c.call("health", json!({})).await.unwrap();
    let pending = wait_delivery(&mut c, &id, "pending").await;
    assert_eq!(pending["delivery"]["attempts"], 0, "a 429 is not an attempt");
    assert_eq!(pending["delivery"]["nextAttemptAtMs"], T0 + 3_000);
    assert!(["rate-limited", "healthy"].contains(&health["channels"]["discord"]["healthState"].as_str().unwrap()));
    gw.clock.advance(3_000);
    let done = wait_delivery(&mut c, &id, "delivered").await;
    assert_eq!(done["delivery"]["attempts"], 1);
    let outcomes: Vec<&str> =
        done["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["rate-limited", "sent"]);
    gw.stop().await;
}

#[tokio::test]
async fn an_ambiguous_discord_send_is_resent_with_the_same_nonce_and_not_duplicated() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.write"]).await;
    discord.push_fault(discord::Fault::AcceptThenServerError(502));
    let res = c
        .call("send", json!({"to": "channel:9", "channel": "discord", "message": "once", "idempotencyKey": "k2"}))
        .await
        .unwrap();
    let id = res["deliveryId"].as_str().unwrap().to_string();
    let pending = loop {
        let d = c.call("deliveries.get", json!({"id": id})).await.unwrap();
        if d["delivery"]["attempts"] == 1 {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(pending["delivery"]["state"], "pending");
    assert_eq!(pending["delivery"]["lastErrorClass"], "ambiguous");
    gw.clock.advance(5_000);
    wait_delivery(&mut c, &id, "delivered").await;
    assert_eq!(discord.messages().len(), 1, "the resend was deduplicated by its nonce");
    assert_eq!(discord.deduplicated(), 1);
    discord.assert_no_duplicate_nonces();
    gw.stop().await;
}

#[tokio::test]
async fn an_ambiguous_telegram_send_is_reported_unknown_and_never_resent_blind() {
    let tg = FakeTelegram::start().await;
    let gw = TestGateway::start_with(&channels_config(None, Some(&tg), None, "")).await;
    let mut c = gw.client(&["operator.admin"]).await;
    tg.push_fault(telegram::Fault::AcceptThenServerError(500));
    let id = announce_job(
        &mut c,
        "echo status report",
        json!({"mode": "announce", "channel": "telegram", "to": "-1001234567890"}),
    )
    .await;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(
        (runs[0]["deliveryStatus"].as_str(), runs[0]["completionStatus"].as_str()),
        (Some("unknown"), Some("unknown"))
    );
    assert!(runs[0]["deliveryError"].as_str().unwrap().contains("not resent"), "{}", runs[0]);
    gw.clock.advance(30 * 60_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tg.messages().len(), 1, "no blind replay");
    // The owner checks the chat and decides: retry sends it again.
    let outbox_id = runs[0]["outboxId"].as_str().unwrap();
    c.call("deliveries.retry", json!({"id": outbox_id})).await.unwrap();
    wait_delivery(&mut c, outbox_id, "delivered").await;
    assert_eq!(tg.messages().len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn permanent_errors_go_dead_at_once_and_failure_alerts_reach_the_alert_route() {
    let discord = FakeDiscord::start().await;
    let cfg = channels_config(
        Some(&discord),
        None,
        None,
        "cron: { failureAlert: { channel: 'inbox', after: 2, cooldownMs: 3600000 } }",
    );
    let gw = TestGateway::start_with(&cfg).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let id =
        announce_job(&mut c, "echo report", json!({"mode": "announce", "channel": "discord", "to": "channel:404"}))
            .await;
    for i in 0..3 {
        discord.push_fault(discord::Fault::unknown_channel());
        c.call("cron.run", json!({"id": id})).await.unwrap();
        let runs = wait_runs(&mut c, &id, i + 1).await;
        let last = runs.last().unwrap();
        assert_eq!(
            (last["status"].as_str(), last["deliveryStatus"].as_str(), last["completionStatus"].as_str()),
            (Some("ok"), Some("not-delivered"), Some("failed"))
        );
        assert!(last["deliveryError"].as_str().unwrap().contains("Unknown Channel"), "{last}");
    }
    let dead = c.call("deliveries.list", json!({"state": "dead", "channel": "discord"})).await.unwrap();
    assert_eq!(dead["total"], 3);
    assert_eq!(dead["deliveries"][0]["attempts"], 1, "dead at once, no retries");
    assert_eq!(dead["deliveries"][0]["lastErrorClass"], "target");
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(job["state"]["lastDeliveryStatus"], "not-delivered");
    // After the second failure one alert went to the inbox; the cooldown held back the third.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let inbox = loop {
        let inbox = c.call("inbox.list", json!({})).await.unwrap();
        if inbox["total"] == 1 {
            break inbox;
        }
        assert!(std::time::Instant::now() < deadline, "no alert: {inbox}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.call("inbox.list", json!({})).await.unwrap()["total"], 1);
    let text = inbox["messages"][0]["text"].as_str().unwrap();
    assert!(text.contains("\"announce\" failed 2 times") && text.contains("Unknown Channel"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn rejected_credentials_stop_the_channel_keep_the_rows_and_show_in_health() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.write"]).await;
    discord.push_fault(discord::Fault::unauthorized());
    let a = c
        .call("send", json!({"to": "channel:1", "channel": "discord", "message": "a", "idempotencyKey": "a"}))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let health = loop {
        let h = c.call("health", json!({})).await.unwrap();
        if h["channels"]["discord"]["healthState"] == "credentials-rejected" {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(health["channels"]["discord"]["lastError"].as_str().unwrap().contains("fix channels.discord"));
    let b = c
        .call("send", json!({"to": "channel:2", "channel": "discord", "message": "b", "idempotencyKey": "b"}))
        .await
        .unwrap();
    gw.clock.advance(600_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(discord.requests(), 1, "no hammering with a rejected token");
    for res in [a, b] {
        let d = c.call("deliveries.get", json!({"id": res["deliveryId"]})).await.unwrap();
        assert_eq!(d["delivery"]["state"], "pending", "nothing is thrown away");
    }
    assert_eq!(health["channels"]["discord"]["pending"], 1);
    gw.stop().await;
}

#[tokio::test]
async fn webhooks_carry_a_stable_idempotency_key_and_refuse_private_addresses_by_default() {
    let hook = FakeWebhook::start().await;
    let strict = TestGateway::start_with("{cron: {webhookToken: 'wh-secret'}}").await;
    let mut c = strict.client(&["operator.admin"]).await;
    let id = announce_job(&mut c, "echo done", json!({"mode": "webhook", "to": hook.url()})).await;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["status"], "error", "refused before running: {}", runs[0]);
    assert!(runs[0]["error"].as_str().unwrap().contains("delivery route"), "{}", runs[0]);
    assert!(hook.deliveries().is_empty());
    strict.stop().await;

    let gw = TestGateway::start_with(
        "{cron: {webhookToken: 'wh-secret'}, channels: {webhook: {allowPrivateNetwork: true}}}",
    )
    .await;
    let mut c = gw.client(&["operator.admin"]).await;
    let id = announce_job(&mut c, "echo done", json!({"mode": "webhook", "to": hook.url()})).await;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["deliveryStatus"], "delivered");
    let got = hook.deliveries();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].authorization.as_deref(), Some("Bearer wh-secret"));
    assert!(got[0].idempotency_key.as_ref().is_some_and(|k| k.starts_with(&format!("cron:{id}:"))));
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        (body["jobId"].as_str(), body["status"].as_str(), body["summary"].as_str()),
        (Some(id.as_str()), Some("ok"), Some("done"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn no_reply_is_silent_and_succeeds() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let id = announce_job(
        &mut c,
        "echo '  no_reply '",
        json!({"mode": "announce", "channel": "discord", "to": "channel:1"}),
    )
    .await;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["deliveryStatus"], "not-delivered");
    assert_eq!(runs[0]["deliverySuppressionReason"], "silent");
    assert_eq!(runs[0]["completionStatus"], "succeeded");
    assert!(discord.messages().is_empty());
    assert_eq!(c.call("deliveries.list", json!({})).await.unwrap()["total"], 0);
    gw.stop().await;
}

#[tokio::test]
async fn send_is_idempotent_and_validates_routes() {
    let discord = FakeDiscord::start().await;
    let slack = FakeSlack::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, Some(&slack), "")).await;
    let mut c = gw.client(&["operator.write"]).await;
    let params = json!({"to": "discord:channel:77", "message": "same", "idempotencyKey": "dup", "wait": true});
    let first = c.call("send", params.clone()).await.unwrap();
    let second = c.call("send", params).await.unwrap();
    assert_eq!(first["state"], "delivered");
    assert_eq!((second["deliveryId"].clone(), second["created"].as_bool()), (first["deliveryId"].clone(), Some(false)));
    assert_eq!(discord.messages().len(), 1);
    // OpenClaw's `runId` (the idempotency key) and `messageId` (the platform's id once delivered).
    let platform_id = discord.messages()[0].id.clone();
    assert_eq!((&first["runId"], &first["messageId"]), (&json!("dup"), &json!(platform_id)));
    assert_eq!(second["messageId"], json!(platform_id));
    let queued =
        c.call("send", json!({"to": "discord:channel:78", "message": "later", "idempotencyKey": "q"})).await.unwrap();
    assert_eq!((&queued["runId"], &queued["messageId"]), (&json!("q"), &queued["deliveryId"]), "{queued}");
    let s = c
        .call(
            "send",
            json!({"to": "channel:C0123", "channel": "slack", "message": "hey", "idempotencyKey": "s", "wait": true}),
        )
        .await
        .unwrap();
    assert_eq!(s["state"], "delivered");
    assert_eq!(slack.messages().len(), 1);
    for (params, expected) in [
        (json!({"to": "123", "message": "m", "idempotencyKey": "x"}), "Channel is required"),
        (
            json!({"to": "telegram:1", "channel": "discord", "message": "m", "idempotencyKey": "x"}),
            "contradicts channel",
        ),
        (
            json!({"to": "channel:1", "channel": "discord", "message": "", "idempotencyKey": "x"}),
            "message: must not be empty",
        ),
        (json!({"to": "channel:1", "channel": "discord", "message": "m"}), "idempotencyKey"),
        (
            json!({"to": "channel:1", "channel": "discord", "message": "m", "idempotencyKey": "x", "mediaUrl": "a.png"}),
            "media is not supported",
        ),
    ] {
        let (code, message) = error_of(&c.request("send", params).await.unwrap());
        assert_eq!(code, "INVALID_REQUEST");
        assert!(message.contains(expected), "{message} should contain {expected}");
    }
    let reader = gw.client(&["operator.read"]).await;
    let mut reader = reader;
    let res = reader
        .request("send", json!({"to": "channel:1", "channel": "discord", "message": "m", "idempotencyKey": "r"}))
        .await
        .unwrap();
    assert_eq!(error_of(&res), ("FORBIDDEN".into(), "missing scope: operator.write".into()));
    gw.stop().await;
}

#[tokio::test]
async fn an_unresolvable_route_fails_the_run_before_it_executes() {
    let discord = FakeDiscord::start().await;
    let slack = FakeSlack::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, Some(&slack), "")).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let id =
        announce_job(&mut c, &format!("touch {}", marker.display()), json!({"mode": "announce", "to": "12345"})).await;
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    let _ = job;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["status"], "error");
    assert_eq!(runs[0]["errorReason"], "delivery_route");
    assert!(runs[0]["error"].as_str().unwrap().contains("Channel is required"), "{}", runs[0]);
    assert!(!marker.exists(), "the payload never ran");
    gw.stop().await;
}

#[tokio::test]
async fn fresh_install_announces_to_the_inbox_and_pushes_an_event() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut reader = gw.client(&["operator.read"]).await;
    let job = c
        .call(
            "cron.add",
            json!({"name": "n", "schedule": {"kind": "every", "everyMs": 60_000},
            "payload": {"kind": "command", "argv": ["echo", "to the inbox"]}}),
        )
        .await
        .unwrap();
    assert_eq!(job["delivery"], json!({"mode": "announce", "channel": "last"}));
    assert_eq!(job["deliveryPreview"]["label"], "inbox -> default");
    c.call("cron.run", json!({"id": job["id"]})).await.unwrap();
    let ev = reader.next_event("inbox").await.unwrap();
    assert_eq!(ev["payload"]["text"], "to the inbox");
    let runs = wait_runs(&mut c, job["id"].as_str().unwrap(), 1).await;
    assert_eq!(runs[0]["deliveryStatus"], "delivered");
    gw.stop().await;
}

/// Serialised size of an answer, as the gateway sent it (within a few bytes).
fn frame_bytes(v: &Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

#[tokio::test]
async fn a_hung_channel_delays_only_its_own_rows() {
    let discord = FakeDiscord::start().await;
    for _ in 0..8 {
        discord.push_fault(discord::Fault::Hang);
    }
    let tg = FakeTelegram::start().await;
    // Each channel has its own two slots; Discord's requests wait up to a minute.
    let cfg = format!(
        "{{ channels: {{ discord: {{ token: '{}', apiBaseUrl: '{}' }}, telegram: {{ botToken: '{}', apiRoot: '{}' }} }},
           delivery: {{ maxParallel: 2, requestTimeoutMs: 1000, channels: {{ discord: {{ requestTimeoutMs: 60000 }} }} }} }}",
        FakeDiscord::TOKEN,
        discord.base_url(),
        FakeTelegram::TOKEN,
        tg.base_url()
    );
    let gw = TestGateway::start_with(&cfg).await;
    let mut c = gw.client(&["operator.write"]).await;
    for n in 0..4 {
        let to = format!("channel:{}", 500 + n);
        c.call("send", json!({"to": to, "channel": "discord", "message": "stuck", "idempotencyKey": format!("d{n}")}))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while discord.requests() < 2 {
        assert!(std::time::Instant::now() < deadline, "discord never called");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for n in 0..3 {
        let res = c
            .call(
                "send",
                json!({"to": format!("-100{n}"), "channel": "telegram", "message": "prompt", "idempotencyKey": format!("t{n}"), "wait": true, "waitTimeoutMs": 10_000}),
            )
            .await
            .unwrap();
        assert_eq!(res["state"], "delivered", "{res}");
    }
    assert_eq!(tg.messages().len(), 3);
    assert_eq!((discord.requests(), discord.messages().len()), (2, 0), "discord holds only its own slots, all hung");
    let hung = c.call("deliveries.list", json!({"channel": "discord", "state": "sending"})).await.unwrap();
    assert_eq!(hung["total"], 2);
    gw.stop().await;
}

#[tokio::test]
async fn an_oversized_send_is_refused_and_a_long_scheduled_result_is_cut_with_a_marker() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.admin"]).await;
    // Like the issue's 10 MB send (~300,000 Discord parts), at 3 MB to keep the test quick.
    let huge: String = (0..400_000).map(|i| format!("{i:07}\n")).collect::<String>()[..3 * 1024 * 1024].to_string();
    let res = c
        .request("send", json!({"to": "channel:1", "channel": "discord", "message": huge, "idempotencyKey": "big"}))
        .await
        .unwrap();
    let (code, message) = error_of(&res);
    assert_eq!(code, "INVALID_REQUEST");
    assert!(
        message.contains("too long for discord: 3,145,728 characters")
            && message.contains("at most 20 parts")
            && message.contains("delivery.maxPartsPerMessage"),
        "{message}"
    );
    assert_eq!(c.call("deliveries.list", json!({})).await.unwrap()["total"], 0, "nothing was stored");
    // 2,000 lines of output: 118 Discord parts of 17 lines, cut to 20 with a marker.
    let id =
        announce_job(&mut c, "seq 1 2000", json!({"mode": "announce", "channel": "discord", "to": "channel:2"})).await;
    c.call("cron.run", json!({"id": id})).await.unwrap();
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["deliveryStatus"], "delivered", "{}", runs[0]);
    let msgs = discord.messages();
    assert_eq!(msgs.len(), 20);
    assert!(msgs[0].content.starts_with("1\n2\n3\n"), "{}", msgs[0].content);
    let last = &msgs[19].content;
    assert!(
        last.contains("more characters not sent: the message was longer than 20 parts (delivery.maxPartsPerMessage)"),
        "{last}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn answers_stay_small_whatever_a_delivery_holds() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    // A row from before the part limit: 4 MB of text in 20,000 parts (for a channel that is not
    // configured, so the dispatcher settles it at once and it stays as it is).
    let body = "y".repeat(4 * 1024 * 1024);
    let row = pincer_store::NewDelivery {
        id: "huge".into(),
        idempotency_key: "huge".into(),
        origin_kind: pincer_protocol::state::OriginKind::Send,
        origin_id: None,
        channel: "slack".into(),
        account_id: None,
        target: "C1".into(),
        thread_id: None,
        max_attempts: 5,
        best_effort: false,
        body: body.clone(),
        parts: (0..20_000).map(|i| (format!("part {i} {}", "z".repeat(200)), format!("n{i}"))).collect(),
        created_at_ms: T0,
    };
    gw.store().write(move |tx| tx.enqueue_delivery(&row)).await.unwrap();
    gw.gateway.as_ref().unwrap().state.outbox.kick();
    wait_delivery(&mut c, "huge", "dead").await;

    let d = c.call("deliveries.get", json!({"id": "huge"})).await.unwrap();
    assert!(frame_bytes(&d) < 256 * 1024, "deliveries.get answered {} bytes", frame_bytes(&d));
    assert_eq!((d["partsTotal"].clone(), d["partsNextOffset"].clone()), (json!(20_000), json!(100)));
    assert_eq!(d["parts"].as_array().unwrap().len(), 100);
    assert_eq!(d["delivery"]["textChars"], 4 * 1024 * 1024);
    let text = d["delivery"]["text"].as_str().unwrap();
    assert!(text.ends_with("… [4,177,920 more characters not shown]"), "{}", &text[text.len() - 60..]);
    let tail =
        c.call("deliveries.get", json!({"id": "huge", "partsOffset": 19_990, "partsLimit": 1000})).await.unwrap();
    let indexes: Vec<u64> = tail["parts"].as_array().unwrap().iter().map(|p| p["index"].as_u64().unwrap()).collect();
    assert_eq!((indexes.first(), indexes.len(), tail["partsNextOffset"].clone()), (Some(&19_990), 10, Value::Null));
    let (code, message) =
        error_of(&c.request("deliveries.get", json!({"id": "huge", "partsLimit": 5000})).await.unwrap());
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("INVALID_REQUEST", "invalid deliveries.get params: partsLimit must be 1..1000")
    );

    let list = c.call("deliveries.list", json!({})).await.unwrap();
    assert!(frame_bytes(&list) < 16 * 1024, "deliveries.list answered {} bytes", frame_bytes(&list));
    assert_eq!(list["deliveries"][0]["textChars"], 4 * 1024 * 1024);

    // A 2 MB message to the inbox (one part): listed cut, with its length.
    let big = "i".repeat(2 * 1024 * 1024);
    let sent = c
        .call(
            "send",
            json!({"to": "default", "channel": "inbox", "message": big, "idempotencyKey": "inbox-big", "wait": true}),
        )
        .await
        .unwrap();
    assert_eq!(sent["state"], "delivered");
    let inbox = c.call("inbox.list", json!({})).await.unwrap();
    assert!(frame_bytes(&inbox) < 64 * 1024, "inbox.list answered {} bytes", frame_bytes(&inbox));
    assert_eq!(inbox["messages"][0]["textChars"], 2 * 1024 * 1024);
    gw.stop().await;
}

#[tokio::test]
async fn cancel_stops_a_pending_delivery_at_once_and_one_being_sent_before_its_next_part() {
    let discord = FakeDiscord::start().await;
    let gw = TestGateway::start_with(&channels_config(Some(&discord), None, None, "")).await;
    let mut c = gw.client(&["operator.write"]).await;
    // Pending: the channel asked to wait 3 s.
    discord.push_fault(discord::Fault::RateLimited { retry_after: Duration::from_secs(3), global: false });
    let res = c
        .call("send", json!({"to": "channel:7", "channel": "discord", "message": "later", "idempotencyKey": "p"}))
        .await
        .unwrap();
    let id = res["deliveryId"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = c.call("deliveries.get", json!({"id": id})).await.unwrap();
        if d["delivery"]["state"] == "pending" && d["attempts"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled = c.call("deliveries.cancel", json!({"id": id})).await.unwrap();
    assert_eq!(
        (cancelled["cancelled"].clone(), cancelled["state"].clone()),
        (json!(true), json!("dead")),
        "{cancelled}"
    );
    assert_eq!(cancelled["error"], "cancelled with `pincer deliveries cancel`: 0 of 1 parts had been sent");
    gw.clock.advance(3_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(discord.messages().len(), 0, "a cancelled delivery is not sent");
    let (code, message) = error_of(&c.request("deliveries.cancel", json!({"id": id})).await.unwrap());
    assert_eq!(code, "INVALID_REQUEST");
    assert_eq!(message, format!("delivery {id} is dead; only pending or sending deliveries can be cancelled"));
    // A cancelled delivery can be sent after all.
    c.call("deliveries.retry", json!({"id": id})).await.unwrap();
    wait_delivery(&mut c, &id, "delivered").await;
    assert_eq!(discord.messages().len(), 1);

    // Being sent: three parts, the first answered slowly; the cancel lets it finish, then stops.
    discord.push_fault(discord::Fault::Delay(Duration::from_millis(800)));
    let long: String = (1..=51).map(|i| format!("line {i}\n")).collect();
    let res = c
        .call("send", json!({"to": "channel:8", "channel": "discord", "message": long, "idempotencyKey": "s"}))
        .await
        .unwrap();
    let id = res["deliveryId"].as_str().unwrap().to_string();
    while discord.requests() < 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cancelled = c.call("deliveries.cancel", json!({"id": id})).await.unwrap();
    assert_eq!(
        (cancelled["cancelled"].clone(), cancelled["state"].clone()),
        (json!(true), json!("dead")),
        "{cancelled}"
    );
    assert_eq!(cancelled["error"], "cancelled with `pincer deliveries cancel`: 1 of 3 parts had been sent");
    let msgs = discord.messages();
    assert_eq!(msgs.len(), 2, "the part in flight finished; none after it");
    assert!(msgs[1].content.starts_with("line 1\n"));
    let d = c.call("deliveries.get", json!({"id": id})).await.unwrap();
    let states: Vec<&str> = d["parts"].as_array().unwrap().iter().map(|p| p["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["sent", "pending", "pending"]);
    assert_eq!(d["delivery"]["lastErrorClass"], "cancelled");
    gw.stop().await;
}
