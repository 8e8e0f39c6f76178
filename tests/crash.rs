//! Crash safety with the real binary: `kill -9` mid-run and mid-backlog, then restart, and check
//! that nothing accepted was lost and nothing was sent twice.

use std::time::Duration;

use pincer_testkit::fakes::discord::{self, FakeDiscord};
use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::pincer_bin;

fn discord_config(fake: &FakeDiscord) -> Value {
    json!({
        "channels": { "discord": { "token": FakeDiscord::TOKEN, "apiBaseUrl": fake.base_url() } },
        "delivery": { "rateLimits": { "discord": 0 }, "requestTimeoutMs": 5000 },
    })
}

async fn client(gw: &GatewayProcess, scopes: &[&str]) -> RawClient {
    RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), scopes)).await.unwrap().0
}

#[tokio::test]
async fn kill_9_during_a_200_message_backlog_loses_nothing_and_sends_nothing_twice() {
    let fake = FakeDiscord::start().await;
    for _ in 0..200 {
        fake.push_fault(discord::Fault::Delay(Duration::from_millis(8)));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), discord_config(&fake)).unwrap();
    let mut c = client(&gw, &["operator.write"]).await;
    for i in 0..200 {
        let res = c
            .call("send", json!({"to": format!("channel:{}", 1001 + i % 4), "channel": "discord", "message": format!("msg-{i:03}"), "idempotencyKey": format!("k{i}")}))
            .await
            .unwrap();
        assert_eq!(res["ok"], true);
    }
    fake.wait_for_messages(50, Duration::from_secs(30)).await;
    gw.kill9();
    let before = fake.messages().len();
    assert!(before < 200, "the backlog finished before the kill; slow the fake down");
    gw.restart().unwrap();
    let msgs = fake.wait_for_messages(200, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let msgs = if fake.messages().len() > msgs.len() { fake.messages() } else { msgs };
    let mut contents: Vec<String> = msgs.iter().map(|m| m.content.clone()).collect();
    contents.sort();
    let expected: Vec<String> = (0..200).map(|i| format!("msg-{i:03}")).collect();
    assert_eq!(contents, expected, "every accepted message exactly once");
    fake.assert_no_duplicate_nonces();
    // Per conversation, order is kept.
    for ch in 0..4 {
        let seq: Vec<String> =
            msgs.iter().filter(|m| m.channel_id == (1001 + ch).to_string()).map(|m| m.content.clone()).collect();
        let mut sorted = seq.clone();
        sorted.sort();
        assert_eq!(seq, sorted, "conversation {ch} out of order");
    }
    let mut c = client(&gw, &["operator.read"]).await;
    let delivered = c.call("deliveries.list", json!({"state": "delivered", "limit": 1})).await.unwrap();
    assert_eq!(delivered["total"], 200, "all settled delivered (killed with {before} sent)");
}

#[tokio::test]
async fn kill_9_during_a_run_never_reruns_the_slot_and_the_next_slot_fires() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let mut c = client(&gw, &["operator.admin"]).await;
    let marks = dir.path().join("marks");
    let job = c
        .call("cron.add", json!({
            "name": "slow", "schedule": {"kind": "every", "everyMs": 2_000}, "sessionTarget": "isolated",
            "payload": {"kind": "command", "argv": ["sh", "-c", format!("echo $PINCER_RUN_ID >> {}; sleep 1.5", marks.display())]},
            "delivery": {"mode": "none"},
        }))
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    // Wait until a run is in flight, then kill the gateway.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let j = c.call("cron.get", json!({"id": id})).await.unwrap();
        if j["state"]["runningAtMs"].is_i64() {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.kill9();
    let killed_run = std::fs::read_to_string(&marks).unwrap().lines().last().unwrap().to_string();
    gw.restart().unwrap();
    let mut c = client(&gw, &["operator.admin"]).await;
    // The interrupted run is recorded, and later slots run.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let entries = loop {
        let page = c.call("cron.runs", json!({"id": id, "limit": 200, "sortDir": "asc"})).await.unwrap();
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        let later_ok = entries.iter().any(|e| e["status"] == "ok");
        if later_ok {
            break entries;
        }
        assert!(std::time::Instant::now() < deadline, "no slot ran after the restart: {entries:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let interrupted = entries.iter().find(|e| e["runId"] == killed_run.as_str()).expect("the killed run is recorded");
    assert_eq!(
        (interrupted["status"].as_str(), interrupted["errorReason"].as_str()),
        (Some("error"), Some("interrupted"))
    );
    let ran: Vec<String> = std::fs::read_to_string(&marks).unwrap().lines().map(String::from).collect();
    let mut unique = ran.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ran.len(), "a slot ran twice: {ran:?}");
    assert_eq!(ran.iter().filter(|r| **r == killed_run).count(), 1);
}

#[tokio::test]
async fn restart_with_10000_pending_rows_dispatches_all_of_them() {
    const N: u32 = 10_000;
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Fill the outbox of a stopped gateway.
    {
        let store = pincer_store::Store::open(&dir.path().join("pincer.db")).unwrap();
        store
            .write_blocking(|tx| {
                for i in 0..N {
                    let id = format!("row-{i:05}");
                    tx.enqueue_delivery(&pincer_store::NewDelivery {
                        id: id.clone(),
                        idempotency_key: format!("seed:{i}"),
                        origin_kind: "send".into(),
                        origin_id: None,
                        channel: "discord".into(),
                        account_id: None,
                        target: format!("channel:{}", 1000 + i % 100),
                        thread_id: None,
                        max_attempts: 5,
                        best_effort: false,
                        body: format!("backlog {i}"),
                        parts: vec![(format!("backlog {i}"), format!("n{i:05}"))],
                        created_at_ms: 1_000,
                    })?;
                }
                Ok(())
            })
            .unwrap();
        store.close();
    }
    let started = std::time::Instant::now();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), discord_config(&fake)).unwrap();
    let msgs = fake.wait_for_messages(N as usize, Duration::from_secs(240)).await;
    eprintln!("{N} pending rows drained {:?} after the restart", started.elapsed());
    let (_, metrics) = pincer_testkit::http::get(gw.addr(), "/metrics").await.unwrap();
    for line in metrics.lines().filter(|l| {
        l.contains("send_seconds_sum")
            || l.contains("send_seconds_count")
            || l.contains("send_seconds_bucket{channel=\"discord\",le=\"0.05\"}")
    }) {
        eprintln!("{line}");
    }
    assert_eq!(msgs.len(), N as usize);
    fake.assert_no_duplicate_nonces();
    let mut c = client(&gw, &["operator.read"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pending = c.call("deliveries.list", json!({"states": ["pending", "sending"], "limit": 1})).await.unwrap();
        if pending["total"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rows left behind: {}", pending["total"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
