//! Crash safety with the real binary: `kill -9` mid-run and mid-backlog, and `SIGKILL` at chosen
//! steps (`PINCER_CRASHPOINTS`: after a slot reservation, after a run executed, after the outbox
//! commit, with a part in flight, after the send but before its receipt is stored), then restart,
//! and check that nothing accepted was lost, nothing was sent twice, no slot ran twice, and every
//! ambiguous send is resent only where the platform deduplicates (Discord), looked up where it
//! can be searched (Slack), and otherwise reported `unknown` (Telegram).

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use pincer_testkit::fakes::discord::{self, FakeDiscord};
use pincer_testkit::fakes::slack::FakeSlack;
use pincer_testkit::fakes::telegram::FakeTelegram;
use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::{group_members, pincer_bin, proc_stat, wait_file};

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
    // Quick at first, then slow enough (about 7 s for the rest) that the kill lands mid-backlog
    // even when sending the 200 takes seconds on a loaded machine.
    for i in 0..200 {
        let ms = if i < 60 { 8 } else { 200 };
        fake.push_fault(discord::Fault::Delay(Duration::from_millis(ms)));
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
    fake.clear_faults();
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

/// `kill -9` of the gateway while a command runs: the command's whole process group dies with the
/// gateway (its supervisor sees the lifeline close), so the side effects it would have had a
/// second later never happen — not the shell's, not the subshell's it put in the background —
/// and the interrupted run says the command was killed part-way.
#[tokio::test]
async fn kill_9_during_a_command_kills_its_process_group_and_the_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let mut c = client(&gw, &["operator.admin"]).await;
    let f = |name: &str| dir.path().join(name);
    let shell = format!(
        "(sleep 4; touch {bg}) & echo $$ > {pid}; sleep 4; touch {fg}",
        bg = f("background-effect").display(),
        pid = f("pid").display(),
        fg = f("effect").display()
    );
    let job = c
        .call(
            "cron.add",
            json!({
                "name": "effect", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                "payload": {"kind": "command", "argv": ["sh", "-c", shell]}, "delivery": {"mode": "none"},
            }),
        )
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let run_id =
        c.call("cron.run", json!({"id": id, "mode": "force"})).await.unwrap()["runId"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let shell_pid: i32 = wait_file(&f("pid")).await.parse().unwrap();
    let pgid = proc_stat(shell_pid).unwrap().2;
    assert_ne!(pgid, gw.child.id() as i32, "the command has a process group of its own");
    let members = group_members(pgid);
    assert!(members.len() >= 4, "supervisor, shell, subshell and sleeps: {members:?}");
    gw.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !group_members(pgid).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command's group outlived the gateway: {:?}",
            group_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Past the moment both would have touched their files.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    assert!(!f("effect").exists() && !f("background-effect").exists(), "a side effect happened after the crash");

    gw.restart().unwrap();
    let mut c = client(&gw, &["operator.admin"]).await;
    let page = c.call("cron.runs", json!({"id": id, "limit": 10})).await.unwrap();
    let run = page["entries"].as_array().unwrap().iter().find(|e| e["runId"] == run_id.as_str()).unwrap().clone();
    assert_eq!((&run["status"], &run["errorReason"]), (&json!("error"), &json!("interrupted")), "{run}");
    assert_eq!(
        run["error"],
        "interrupted: the gateway stopped while the command was running; the command was killed with it and may \
         have partly run; the slot is not run again"
    );
    assert_eq!(run["command"]["state"], "killed", "{run}");
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
                        origin_kind: pincer_protocol::state::OriginKind::Send,
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

/// The passes at which to crash: `defaults`, or every pass from 1 to `PINCER_CRASH_ITERATIONS`
/// (e.g. 20) for a longer run on demand.
fn hits(defaults: &[u32]) -> Vec<u32> {
    match std::env::var("PINCER_CRASH_ITERATIONS").ok().and_then(|n| n.parse::<u32>().ok()) {
        Some(n) => (1..=n).collect(),
        None => defaults.to_vec(),
    }
}

/// Restarts `gw` with `point:hit` armed.
fn arm(gw: &mut GatewayProcess, point: &str, hit: u32) {
    gw.kill9();
    gw.restart_with_env(&[("PINCER_CRASHPOINTS", &format!("{point}:{hit}"))]).unwrap();
}

/// Waits for the armed gateway to kill itself; fails if the point was never reached.
fn expect_crash(gw: &mut GatewayProcess, point: &str) {
    let status = gw.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| panic!("{point} was never reached"));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{point}: the gateway exited with {status}:\n{}", gw.log());
    assert!(gw.log().contains(&format!("crash point {point} reached")), "{}", gw.log());
}

/// Sends `n` messages (`msg-<i>`) until the gateway dies; returns (accepted, in doubt).
async fn send_until_dead(
    gw: &GatewayProcess,
    channel: &str,
    to: impl Fn(usize) -> String,
    n: usize,
) -> (Vec<String>, Vec<String>) {
    let (mut accepted, mut in_doubt) = (Vec::new(), Vec::new());
    let Ok((mut c, _)) = RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.write"])).await
    else {
        return (accepted, in_doubt);
    };
    for i in 0..n {
        let text = format!("msg-{i:03}");
        let params = json!({"to": to(i), "channel": channel, "message": text, "idempotencyKey": format!("k{i}")});
        match tokio::time::timeout(Duration::from_secs(10), c.call("send", params)).await {
            Ok(Ok(_)) => accepted.push(text),
            _ => {
                // The process died with this request in flight: it may or may not be committed.
                in_doubt.push(text);
                break;
            }
        }
    }
    (accepted, in_doubt)
}

/// Waits until no delivery is pending or in flight; returns every delivery.
async fn settled(gw: &GatewayProcess) -> Vec<Value> {
    let mut c = client(gw, &["operator.read"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let open = c.call("deliveries.list", json!({"states": ["pending", "sending"], "limit": 1})).await.unwrap();
        if open["total"] == 0 {
            let all = c.call("deliveries.list", json!({"limit": 500})).await.unwrap();
            return all["deliveries"].as_array().cloned().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "deliveries never settled: {open}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(texts: &[String], text: &str) -> usize {
    texts.iter().filter(|t| *t == text).count()
}

/// One crash cycle against Discord (which deduplicates on `nonce`): every accepted message
/// arrives exactly once, an in-doubt one at most once, and every row ends `delivered`.
async fn discord_cycle(point: &str, hit: u32) {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), discord_config(&fake)).unwrap();
    arm(&mut gw, point, hit);
    let (accepted, in_doubt) = send_until_dead(&gw, "discord", |i| format!("channel:{}", 2001 + i % 3), 20).await;
    expect_crash(&mut gw, point);
    gw.clear_env();
    gw.restart().unwrap();
    let rows = settled(&gw).await;
    let got: Vec<String> = fake.messages().into_iter().map(|m| m.content).collect();
    let ctx = format!("{point}:{hit}: accepted {}, in doubt {in_doubt:?}, delivered {got:?}", accepted.len());
    for text in &accepted {
        assert_eq!(count(&got, text), 1, "{text} must arrive exactly once; {ctx}");
    }
    for text in &in_doubt {
        assert!(count(&got, text) <= 1, "{text} arrived twice; {ctx}");
    }
    fake.assert_no_duplicate_nonces();
    for row in &rows {
        assert_eq!(row["state"], "delivered", "{row}; {ctx}");
        assert_eq!(count(&got, row["text"].as_str().unwrap()), 1, "{row}; {ctx}");
    }
    assert!(rows.len() >= accepted.len(), "{ctx}");
    if point == "outbox.sent" {
        assert!(fake.deduplicated() >= 1, "the resend after the crash should have hit Discord's nonce check; {ctx}");
    }
}

#[tokio::test]
async fn crash_after_the_outbox_commit_loses_nothing() {
    for hit in hits(&[1, 4, 11]) {
        discord_cycle("outbox.enqueued", hit).await;
    }
}

#[tokio::test]
async fn crash_with_a_part_in_flight_sends_it_once() {
    for hit in hits(&[1, 5, 13]) {
        discord_cycle("outbox.dispatching", hit).await;
    }
}

#[tokio::test]
async fn crash_after_the_send_before_the_receipt_is_deduplicated_by_discord() {
    for hit in hits(&[1, 6, 17]) {
        discord_cycle("outbox.sent", hit).await;
    }
}

/// One crash cycle on a single conversation: a gateway with `config` armed at `point:hit`, up to
/// ten sends to `channel`/`to` until it dies, a restart, and the settled rows; returns (accepted,
/// in doubt, rows).
async fn crash_cycle(
    config: Value,
    point: &str,
    hit: u32,
    channel: &str,
    to: &str,
) -> (Vec<String>, Vec<String>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    arm(&mut gw, point, hit);
    let (accepted, in_doubt) = send_until_dead(&gw, channel, |_| to.to_string(), 10).await;
    expect_crash(&mut gw, point);
    gw.clear_env();
    gw.restart().unwrap();
    (accepted, in_doubt, settled(&gw).await)
}

/// Telegram has no idempotency key: a part that may have been sent is reported `unknown`, never
/// sent again.
#[tokio::test]
async fn crash_around_a_telegram_send_reports_unknown_and_never_resends() {
    for (point, hit) in [("outbox.sent", 3), ("outbox.dispatching", 2)] {
        let fake = FakeTelegram::start().await;
        let config = json!({
            "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": fake.base_url() } },
            "delivery": { "rateLimits": { "telegram": 0 } },
        });
        let (accepted, in_doubt, rows) = crash_cycle(config, point, hit, "telegram", "4242").await;
        let got: Vec<String> = fake.messages().into_iter().map(|m| m.text).collect();
        let ctx = format!("{point}:{hit}: accepted {accepted:?}, in doubt {in_doubt:?}, delivered {got:?}");
        let unknown: Vec<&Value> = rows.iter().filter(|r| r["state"] == "unknown").collect();
        assert_eq!(unknown.len(), 1, "exactly the in-flight part is unknown; {ctx}; rows {rows:?}");
        let lost = unknown[0]["text"].as_str().unwrap();
        let expected_copies = if point == "outbox.sent" { 1 } else { 0 };
        assert_eq!(count(&got, lost), expected_copies, "{ctx}");
        assert!(unknown[0]["lastError"].is_string(), "the unknown row says why: {}", unknown[0]);
        for text in accepted.iter().filter(|t| *t != lost) {
            assert_eq!(count(&got, text), 1, "{text}; {ctx}");
        }
        for row in rows.iter().filter(|r| r["state"] != "unknown") {
            assert_eq!(row["state"], "delivered", "{row}; {ctx}");
        }
    }
}

/// Slack can be searched: after a crash with a part in flight, the restarted gateway waits out
/// the request time limit (1 s here), looks the part up by its metadata, and records it
/// (crash after the send) or sends it (crash before) — every message exactly once, none `unknown`.
#[tokio::test]
async fn crash_around_a_slack_send_is_reconciled_by_looking() {
    for hit in hits(&[2, 5]) {
        for point in ["outbox.sent", "outbox.dispatching"] {
            let fake = FakeSlack::start().await;
            let config = json!({
                "channels": { "slack": { "botToken": FakeSlack::TOKEN, "apiBaseUrl": fake.base_url() } },
                "delivery": { "rateLimits": { "slack": 0 }, "requestTimeoutMs": 1000 },
            });
            let (accepted, in_doubt, rows) = crash_cycle(config, point, hit, "slack", "channel:C0123ABCD").await;
            let got: Vec<String> = fake.messages().into_iter().map(|m| m.text).collect();
            let ctx = format!("{point}:{hit}: accepted {accepted:?}, in doubt {in_doubt:?}, delivered {got:?}");
            for text in &accepted {
                assert_eq!(count(&got, text), 1, "{text} must arrive exactly once; {ctx}");
            }
            for row in &rows {
                assert_eq!(row["state"], "delivered", "{row}; {ctx}");
                assert_eq!(count(&got, row["text"].as_str().unwrap()), 1, "{row}; {ctx}");
            }
            assert_eq!(fake.requests(), got.len(), "no post was refused or repeated; {ctx}");
            let looks = fake.reads().iter().filter(|r| r.method == "conversations.history").count();
            assert_eq!(looks, 1, "the in-flight part was looked up once; {ctx}");
        }
    }
}

/// A command job every second that appends its run id to `marks`.
async fn marking_job(gw: &GatewayProcess, marks: &std::path::Path) -> String {
    let mut c = client(gw, &["operator.admin"]).await;
    let job = c
        .call("cron.add", json!({
            "name": "marks", "schedule": {"kind": "every", "everyMs": 1_000}, "sessionTarget": "isolated",
            "payload": {"kind": "command", "argv": ["sh", "-c", format!("echo $PINCER_RUN_ID >> {}", marks.display())]},
            "delivery": {"mode": "none"},
        }))
        .await
        .unwrap();
    job["id"].as_str().unwrap().to_string()
}

/// Crash after the slot's reservation (before the run starts) and after a run executed (before
/// its outcome is stored): the slot is recorded as interrupted, never run again, and later slots run.
#[tokio::test]
async fn crash_after_a_slot_reservation_or_execution_never_reruns_the_slot() {
    for (point, executed) in [("cron.reserved", false), ("cron.executed", true)] {
        let dir = tempfile::tempdir().unwrap();
        let marks = dir.path().join("marks");
        let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
        let id = marking_job(&gw, &marks).await;
        arm(&mut gw, point, 2);
        expect_crash(&mut gw, point);
        let before: Vec<String> =
            std::fs::read_to_string(&marks).unwrap_or_default().lines().map(String::from).collect();
        gw.clear_env();
        gw.restart().unwrap();
        let mut c = client(&gw, &["operator.admin"]).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let (entries, crashed) = loop {
            let page = c.call("cron.runs", json!({"id": id, "limit": 200, "sortDir": "asc"})).await.unwrap();
            let entries = page["entries"].as_array().cloned().unwrap_or_default();
            let crashed: Vec<Value> = entries.iter().filter(|e| e["errorReason"] == "interrupted").cloned().collect();
            let ok_after = crashed.first().is_some_and(|c| {
                entries.iter().any(|e| e["status"] == "ok" && e["slotMs"].as_i64() > c["slotMs"].as_i64())
            });
            if ok_after {
                break (entries, crashed);
            }
            assert!(std::time::Instant::now() < deadline, "{point}: no slot ran after the restart: {entries:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(crashed.len(), 1, "{point}: one interrupted run: {entries:?}");
        // It says whether the command ran: not at all, or to its end (only the record was lost).
        let said = if executed {
            "interrupted: the command had exited with code 0 before the gateway stopped, but its outcome was not \
             recorded (nothing was delivered); the slot is not run again"
        } else {
            "interrupted: the gateway stopped before the command started; it did not run, and the slot is not run again"
        };
        assert_eq!(crashed[0]["error"], said, "{point}");
        let crashed_id = crashed[0]["runId"].as_str().unwrap();
        let ran: Vec<String> = std::fs::read_to_string(&marks).unwrap().lines().map(String::from).collect();
        assert_eq!(
            count(&ran, crashed_id),
            usize::from(executed),
            "{point}: the crashed slot ran {} times (before the crash: {before:?})",
            count(&ran, crashed_id)
        );
        let mut unique = ran.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ran.len(), "{point}: a slot ran twice: {ran:?}");
        let mut slots: Vec<i64> = entries.iter().filter_map(|e| e["slotMs"].as_i64()).collect();
        let n = slots.len();
        slots.dedup();
        assert_eq!(slots.len(), n, "{point}: a slot has two runs: {entries:?}");
    }
}
