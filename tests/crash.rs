//! Crash safety with the real binary: `kill -9` mid-run and mid-backlog, and `SIGKILL` at chosen
//! steps (`PINCER_CRASHPOINTS`: after a slot reservation, after a run executed, after the outbox
//! commit, with a part in flight, after the send but before its receipt is stored), then restart,
//! and check that nothing accepted was lost, nothing was sent twice, no slot ran twice, and every
//! ambiguous send is resent only where the platform deduplicates (Discord; the webhook, whose
//! whole batch of parts is in flight at once), looked up where it can be searched (Slack), and
//! otherwise reported `unknown` (Telegram).

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
    let mut cycle = Cycle::new(
        "kill_9_during_a_200_message_backlog_loses_nothing_and_sends_nothing_twice",
        "discord",
        "kill -9",
        1,
    );
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
    let expected: Vec<String> = (0..200).map(|i| format!("msg-{i:03}")).collect();
    cycle.messages(&expected, &[], &contents, &[]);
    cycle.record();
    contents.sort();
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
    let mut cycle =
        Cycle::new("kill_9_during_a_run_never_reruns_the_slot_and_the_next_slot_fires", "scheduler", "kill -9", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let mut c = client(&gw, &["operator.admin"]).await;
    let marks = dir.path().join("marks");
    let job = c
        .call("cron.add", json!({
            "name": "slow", "schedule": {"kind": "every", "everyMs": 3_000}, "sessionTarget": "isolated",
            // Long runs, short gaps: the kill below must land while a command runs even when a
            // loaded machine is slow between the check and the kill.
            "payload": {"kind": "command", "argv": ["sh", "-c", format!("echo $PINCER_RUN_ID >> {}; sleep 2.8", marks.display())]},
            "delivery": {"mode": "none"},
        }))
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    // Wait until a run's command is under way (its mark written, its sleep still going), then kill
    // the gateway. `runningAtMs` alone is set before the command starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let j = c.call("cron.get", json!({"id": id})).await.unwrap();
        let marked = std::fs::read_to_string(&marks).unwrap_or_default().lines().count();
        let finished =
            c.call("cron.runs", json!({"id": id, "limit": 200})).await.unwrap()["entries"].as_array().map_or(0, |e| {
                e.iter().filter(|r| ["ok", "error", "skipped"].contains(&r["status"].as_str().unwrap_or(""))).count()
            });
        if j["state"]["runningAtMs"].is_i64() && marked > finished {
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
    cycle.slots = entries.len();
    cycle.slots_rerun = ran.len() - unique.len();
    cycle.record();
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

/// A write-ahead log damaged after a `kill -9` (one flipped byte in its first frame): SQLite alone
/// would replay it up to the damage and silently forget every delivery after it; the gateway
/// refuses to start instead, saying what happened and what to do.
#[tokio::test]
async fn a_damaged_log_after_kill_9_stops_the_start_instead_of_forgetting_deliveries() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), discord_config(&fake)).unwrap();
    let (accepted, _) = send_until_dead(&gw, "discord", |i| format!("channel:{}", 3001 + i % 2), 10).await;
    assert_eq!(accepted.len(), 10);
    let rows = settled(&gw).await;
    assert!(rows.iter().all(|r| r["state"] == "delivered"), "{rows:?}");
    gw.kill9();
    let wal = dir.path().join("pincer.db-wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    assert!(bytes.len() > 32 + 24 + 4096, "the deliveries should still be in the log");
    bytes[32 + 24 + 100] ^= 0x5a;
    std::fs::write(&wal, bytes).unwrap();
    let err = gw.restart().expect_err("the gateway started on a damaged log").to_string();
    assert!(err.contains("it is corrupted") && err.contains("has a damaged frame (frame 1, at byte 32)"), "{err}");
    assert!(
        err.contains("SQLite would silently drop") && err.contains(&format!("truncate -s 32 {}", wal.display())),
        "{err}"
    );
}

/// The passes at which to crash: `defaults`, or every pass from 1 to `PINCER_CRASH_ITERATIONS`
/// (`cargo xtask crash --iterations 100`). Each cycle's workload grows with its pass, so any
/// pass can be reached.
fn hits(defaults: &[u32]) -> Vec<u32> {
    match std::env::var("PINCER_CRASH_ITERATIONS").ok().and_then(|n| n.parse::<u32>().ok()) {
        Some(n) => (1..=n).collect(),
        None => defaults.to_vec(),
    }
}

/// What one crash cycle observed. [`Cycle::record`] appends it as one JSON line to
/// `$PINCER_CRASH_SUMMARY` (set by `cargo xtask crash`, which adds the lines up) before the
/// cycle's assertions run, so a failing cycle is counted too.
struct Cycle {
    test: &'static str,
    /// What was crashed: the channel the outbox sent to, or the scheduler.
    target: &'static str,
    point: String,
    hit: u32,
    started: std::time::Instant,
    /// Messages the client sent (accepted, or in flight when the gateway died).
    messages: usize,
    /// Messages the fake platform received, copies included.
    delivered: usize,
    /// Accepted messages that never arrived and that no row reports as `unknown`.
    lost: usize,
    /// Distinct messages that arrived more than once.
    twice: usize,
    /// Rows settled `unknown` (the platform cannot be asked; the user is told).
    unknown: usize,
    /// Slot runs recorded.
    slots: usize,
    /// Slots that ran twice (a run id marked twice, or two runs of one slot).
    slots_rerun: usize,
}

impl Cycle {
    fn new(test: &'static str, target: &'static str, point: &str, hit: u32) -> Cycle {
        Cycle {
            test,
            target,
            point: point.to_string(),
            hit,
            started: std::time::Instant::now(),
            messages: 0,
            delivered: 0,
            lost: 0,
            twice: 0,
            unknown: 0,
            slots: 0,
            slots_rerun: 0,
        }
    }

    /// Fills in the message figures from what the client sent and the platform received.
    fn messages(&mut self, accepted: &[String], in_doubt: &[String], got: &[String], unknown: &[&str]) {
        let mut copies: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for text in got {
            *copies.entry(text.as_str()).or_default() += 1;
        }
        self.messages = accepted.len() + in_doubt.len();
        self.delivered = got.len();
        self.lost =
            accepted.iter().filter(|t| !copies.contains_key(t.as_str()) && !unknown.contains(&t.as_str())).count();
        self.twice = copies.values().filter(|n| **n > 1).count();
        self.unknown = unknown.len();
    }

    fn record(&self) {
        let Ok(path) = std::env::var("PINCER_CRASH_SUMMARY") else { return };
        let line = json!({
            "test": self.test, "target": self.target, "point": self.point, "hit": self.hit,
            "ms": self.started.elapsed().as_millis() as u64,
            "messages": self.messages, "delivered": self.delivered, "lost": self.lost, "twice": self.twice,
            "unknown": self.unknown, "slots": self.slots, "slotsRerun": self.slots_rerun,
        });
        use std::io::Write;
        // One `write` of one line on an O_APPEND file: lines from parallel tests never interleave.
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        file.write_all(format!("{line}\n").as_bytes()).unwrap();
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

/// Restarts the crashed gateway unarmed, once its `gateway.lock` is free. A command it was
/// starting when it died holds the lock until that command's `exec` closes it (a moment, longer
/// on a loaded machine); a supervisor restarting at that instant is refused, so wait as one would.
fn restart_after_the_crash(gw: &mut GatewayProcess) {
    let lock = std::fs::File::open(gw.state_dir.join("gateway.lock")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lock.try_lock().is_err() {
        assert!(std::time::Instant::now() < deadline, "gateway.lock still held 10 s after the crash");
        std::thread::sleep(Duration::from_millis(5));
    }
    lock.unlock().unwrap();
    gw.clear_env();
    gw.restart().unwrap();
}

/// Messages a cycle armed for pass `hit` sends: at least `base`, and always a few more than
/// `hit`, since every send passes `outbox.enqueued` once and every part (one per message here)
/// `outbox.dispatching` and `outbox.sent` once.
fn workload(hit: u32, base: usize) -> usize {
    base.max(hit as usize + 5)
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
            let mut rows = Vec::new();
            loop {
                let page = c.call("deliveries.list", json!({"limit": 500, "offset": rows.len()})).await.unwrap();
                rows.extend(page["deliveries"].as_array().cloned().unwrap());
                if page["hasMore"] != true {
                    return rows;
                }
            }
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
async fn discord_cycle(test: &'static str, point: &str, hit: u32) {
    let mut cycle = Cycle::new(test, "discord", point, hit);
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), discord_config(&fake)).unwrap();
    arm(&mut gw, point, hit);
    let n = workload(hit, 20);
    let (accepted, in_doubt) = send_until_dead(&gw, "discord", |i| format!("channel:{}", 2001 + i % 3), n).await;
    expect_crash(&mut gw, point);
    restart_after_the_crash(&mut gw);
    let rows = settled(&gw).await;
    let got: Vec<String> = fake.messages().into_iter().map(|m| m.content).collect();
    let unknown: Vec<&str> =
        rows.iter().filter(|r| r["state"] == "unknown").filter_map(|r| r["text"].as_str()).collect();
    cycle.messages(&accepted, &in_doubt, &got, &unknown);
    cycle.record();
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
        discord_cycle("crash_after_the_outbox_commit_loses_nothing", "outbox.enqueued", hit).await;
    }
}

#[tokio::test]
async fn crash_with_a_part_in_flight_sends_it_once() {
    for hit in hits(&[1, 5, 13]) {
        discord_cycle("crash_with_a_part_in_flight_sends_it_once", "outbox.dispatching", hit).await;
    }
}

#[tokio::test]
async fn crash_after_the_send_before_the_receipt_is_deduplicated_by_discord() {
    for hit in hits(&[1, 6, 17]) {
        discord_cycle("crash_after_the_send_before_the_receipt_is_deduplicated_by_discord", "outbox.sent", hit).await;
    }
}

/// One crash cycle on a single conversation: a gateway with `config` armed at `point:hit`,
/// [`workload`] sends (at least ten) to `channel`/`to` until it dies, a restart, and the settled
/// rows; returns (accepted, in doubt, rows).
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
    let (accepted, in_doubt) = send_until_dead(&gw, channel, |_| to.to_string(), workload(hit, 10)).await;
    expect_crash(&mut gw, point);
    restart_after_the_crash(&mut gw);
    (accepted, in_doubt, settled(&gw).await)
}

/// Telegram has no idempotency key: a part that may have been sent is reported `unknown`, never
/// sent again.
#[tokio::test]
async fn crash_around_a_telegram_send_reports_unknown_and_never_resends() {
    let cycles = hits(&[3]).into_iter().map(|h| ("outbox.sent", h));
    for (point, hit) in cycles.chain(hits(&[2]).into_iter().map(|h| ("outbox.dispatching", h))) {
        let mut cycle =
            Cycle::new("crash_around_a_telegram_send_reports_unknown_and_never_resends", "telegram", point, hit);
        let fake = FakeTelegram::start().await;
        let config = json!({
            "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": fake.base_url() } },
            "delivery": { "rateLimits": { "telegram": 0 } },
        });
        let (accepted, in_doubt, rows) = crash_cycle(config, point, hit, "telegram", "4242").await;
        let got: Vec<String> = fake.messages().into_iter().map(|m| m.text).collect();
        let unknown: Vec<&Value> = rows.iter().filter(|r| r["state"] == "unknown").collect();
        let unknown_texts: Vec<&str> = unknown.iter().filter_map(|r| r["text"].as_str()).collect();
        cycle.messages(&accepted, &in_doubt, &got, &unknown_texts);
        cycle.record();
        let ctx = format!("{point}:{hit}: accepted {accepted:?}, in doubt {in_doubt:?}, delivered {got:?}");
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
            let mut cycle = Cycle::new("crash_around_a_slack_send_is_reconciled_by_looking", "slack", point, hit);
            let fake = FakeSlack::start().await;
            let config = json!({
                "channels": { "slack": { "botToken": FakeSlack::TOKEN, "apiBaseUrl": fake.base_url() } },
                "delivery": { "rateLimits": { "slack": 0 }, "requestTimeoutMs": 1000 },
            });
            let (accepted, in_doubt, rows) = crash_cycle(config, point, hit, "slack", "channel:C0123ABCD").await;
            let got: Vec<String> = fake.messages().into_iter().map(|m| m.text).collect();
            let unknown: Vec<&str> =
                rows.iter().filter(|r| r["state"] == "unknown").filter_map(|r| r["text"].as_str()).collect();
            cycle.messages(&accepted, &in_doubt, &got, &unknown);
            cycle.record();
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

/// A webhook deduplicates by `Idempotency-Key`, so the outbox commits a whole batch's
/// `dispatching` marks before its first request and the receipts after its last. Killed in
/// between (before a part's send, or after it), the restarted gateway resends every part of the
/// batch that has no receipt, each with its own key: every message arrives once, and every extra
/// request was a repeat of a key the receiver had already accepted. The receiver holds its first
/// request 3 s, so the messages sent meanwhile are leased as one batch behind it.
#[tokio::test]
async fn kill_9_inside_a_webhook_batch_resends_only_with_the_same_key() {
    use pincer_testkit::fakes::webhook::{FakeWebhook, Fault};
    let test = "kill_9_inside_a_webhook_batch_resends_only_with_the_same_key";
    let cycles = hits(&[3, 8]).into_iter().map(|h| ("outbox.dispatching", h));
    for (point, hit) in cycles.chain(hits(&[3, 9]).into_iter().map(|h| ("outbox.sent", h))) {
        let mut cycle = Cycle::new(test, "webhook", point, hit);
        let fake = FakeWebhook::start().await;
        fake.push_fault(Fault::Delay(Duration::from_secs(3)));
        let config = json!({ "channels": { "webhook": { "allowPrivateNetwork": true } } });
        let dir = tempfile::tempdir().unwrap();
        let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
        arm(&mut gw, point, hit);
        let url = fake.url();
        let (accepted, in_doubt) = send_until_dead(&gw, "webhook", |_| url.clone(), workload(hit, 12)).await;
        expect_crash(&mut gw, point);
        let before_restart = fake.requests();
        restart_after_the_crash(&mut gw);
        let rows = settled(&gw).await;
        let deliveries = fake.deliveries();
        let text = |body: &str| serde_json::from_str::<Value>(body).unwrap()["text"].as_str().unwrap().to_string();
        let got: Vec<String> = deliveries.iter().map(|d| text(&d.body)).collect();
        cycle.messages(&accepted, &in_doubt, &got, &[]);
        cycle.record();
        let ctx = format!(
            "{point}:{hit}: accepted {}, in doubt {in_doubt:?}, delivered {got:?}, {} requests ({before_restart} before the restart), {} repeats",
            accepted.len(),
            fake.requests(),
            fake.duplicates()
        );
        // The default passes fall inside the batch of the first 12 messages, all sent while the
        // receiver held the first (longer runs of `cargo xtask crash` check the key rules only).
        let in_first_batch = hit <= 12;
        if in_first_batch {
            assert!(in_doubt.is_empty(), "every send was answered before the batch went; {ctx}");
        }
        for t in &accepted {
            assert_eq!(count(&got, t), 1, "{t} must be accepted by the receiver exactly once; {ctx}");
        }
        for row in &rows {
            assert_eq!(row["state"], "delivered", "{row}; {ctx}");
        }
        for d in &deliveries {
            // `send_until_dead` keys message `msg-<i>` with `k<i>` (the outbox row: `send:k<i>`).
            let i: usize = text(&d.body)["msg-".len()..].parse().unwrap();
            assert_eq!(d.idempotency_key.as_deref(), Some(format!("send:k{i}").as_str()), "{d:?}; {ctx}");
        }
        // Every request beyond the messages was a repeat of an accepted key (a resend without it
        // would have been accepted as a second message above).
        assert_eq!(fake.requests(), deliveries.len() + fake.duplicates(), "{ctx}");
        // The batch behind the first message was marked at once: the parts it sent before the
        // kill had no receipt yet and went again with their key. One part at a time, a kill
        // before a send repeats nothing and one after it repeats that one part.
        // (The first message is a batch of its own: killed after its send, it alone is repeated.)
        let sent_before_kill = match point {
            "outbox.sent" => (hit - 1).max(1),
            _ => hit.saturating_sub(2),
        } as usize;
        if in_first_batch {
            assert_eq!(
                fake.duplicates(),
                sent_before_kill,
                "the batch's sent parts were repeated with their keys; {ctx}"
            );
        }
    }
}

/// Adds `n` command jobs every second, each appending its run id to `marks`, their first slot
/// 100 ms after creation (the grid is anchored 900 ms in the past) — until the gateway dies, which
/// an armed one may do before the last is added.
async fn add_marking_jobs(gw: &GatewayProcess, marks: &std::path::Path, n: usize) {
    let Ok((mut c, _)) = RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.admin"])).await
    else {
        return;
    };
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for i in 0..n {
        let add = c.call("cron.add", json!({
            "name": format!("marks-{i}"), "schedule": {"kind": "every", "everyMs": 1_000, "anchorMs": now_ms - 900},
            "sessionTarget": "isolated",
            "payload": {"kind": "command", "argv": ["sh", "-c", format!("echo $PINCER_RUN_ID >> {}", marks.display())]},
            "delivery": {"mode": "none"},
        }));
        if !matches!(tokio::time::timeout(Duration::from_secs(10), add).await, Ok(Ok(_))) {
            return;
        }
    }
}

/// Jobs a cron cycle armed for pass `hit` runs: one per pass up to 50, so the pass is reached
/// within a second or two of slots (`cron.reserved` and `cron.executed` are passed once per slot).
fn cron_jobs(hit: u32) -> usize {
    (hit as usize).clamp(1, 50)
}

/// One crash cycle of the scheduler: command jobs on a gateway armed at `point:hit`, the crash,
/// a restart, and every job running a later slot. Slots interrupted by the crash are recorded as
/// interrupted, never run again; after `cron.reserved` one of them never ran, after
/// `cron.executed` one of them ran (once).
async fn cron_cycle(point: &str, hit: u32) {
    let mut cycle =
        Cycle::new("crash_after_a_slot_reservation_or_execution_never_reruns_the_slot", "scheduler", point, hit);
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let jobs = cron_jobs(hit);
    // Slots missed while the gateway was down are caught up five at once, then one every 5 s
    // (OpenClaw's spread): with more jobs the last would wait minutes, so those cycles skip
    // missed slots instead; the first passes (the default run among them) keep the catch-up.
    let skip_missed = jobs > pincer_cron::scheduler::CATCH_UP_IMMEDIATE;
    let config = json!({"cron": {"skipMissedJobs": skip_missed}});
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    arm(&mut gw, point, hit);
    add_marking_jobs(&gw, &marks, jobs).await;
    expect_crash(&mut gw, point);
    let before: Vec<String> = std::fs::read_to_string(&marks).unwrap_or_default().lines().map(String::from).collect();
    restart_after_the_crash(&mut gw);
    let mut c = client(&gw, &["operator.admin"]).await;
    // Every job that was committed, including one whose `cron.add` the crash cut off.
    let jobs = c.call("cron.list", json!({"includeDisabled": true, "limit": 200})).await.unwrap();
    let ids: Vec<String> =
        jobs["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    assert!(!ids.is_empty(), "{point}:{hit}: no job was committed before the crash");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let entries: Vec<Value> = loop {
        let mut entries = Vec::new();
        for id in &ids {
            let page = c.call("cron.runs", json!({"id": id, "limit": 200, "sortDir": "asc"})).await.unwrap();
            entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        }
        let last_crashed = entries
            .iter()
            .filter(|e| e["errorReason"] == "interrupted")
            .filter_map(|e| e["slotMs"].as_i64())
            .max()
            .unwrap_or(0);
        let every_job_ran_later = ids.iter().all(|id| {
            entries
                .iter()
                .any(|e| e["jobId"] == id.as_str() && e["status"] == "ok" && e["slotMs"].as_i64() > Some(last_crashed))
        });
        if last_crashed > 0 && every_job_ran_later {
            break entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{point}:{hit}: no later slot ran after the restart: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ran: Vec<String> = std::fs::read_to_string(&marks).unwrap().lines().map(String::from).collect();
    let mut unique = ran.clone();
    unique.sort();
    unique.dedup();
    let marked_twice = unique.iter().filter(|r| count(&ran, r) > 1).count();
    let mut slots: Vec<(String, i64)> = entries
        .iter()
        .map(|e| (e["jobId"].as_str().unwrap_or("").to_string(), e["slotMs"].as_i64().unwrap_or(0)))
        .collect();
    slots.sort();
    let all = slots.len();
    slots.dedup();
    cycle.slots = entries.len();
    cycle.slots_rerun = marked_twice + (all - slots.len());
    cycle.record();

    let ctx = format!("{point}:{hit}: marks before the crash {before:?}, after {ran:?}, runs {entries:?}");
    assert_eq!(marked_twice, 0, "a slot ran twice; {ctx}");
    assert_eq!(all, slots.len(), "a slot has two runs; {ctx}");
    let crashed: Vec<&Value> = entries.iter().filter(|e| e["errorReason"] == "interrupted").collect();
    assert!(crashed.iter().all(|e| e["status"] == "error"), "{ctx}");
    let executed = point == "cron.executed";
    assert!(
        crashed.iter().any(|e| count(&ran, e["runId"].as_str().unwrap()) == usize::from(executed)),
        "no interrupted run {} ran; {ctx}",
        if executed { "that" } else { "that never" }
    );
    // Each interrupted run says whether its command ran: not at all, to its end (only the record
    // was lost), or killed with the gateway.
    let said = if executed {
        "interrupted: the command had exited with code 0 before the gateway stopped, but its outcome was not \
         recorded (nothing was delivered); the slot is not run again"
    } else {
        "interrupted: the gateway stopped before the command started; it did not run, and the slot is not run again"
    };
    assert!(crashed.iter().any(|e| e["error"] == said), "no interrupted run says {said:?}; {ctx}");
    for e in &crashed {
        let error = e["error"].as_str().unwrap_or("");
        let marked = count(&ran, e["runId"].as_str().unwrap()) == 1;
        let consistent = error.contains("killed")
            || if marked { error.contains("had exited with code 0") } else { error.contains("did not run") };
        assert!(consistent, "run {} marked={marked} says {error:?}; {ctx}", e["runId"]);
    }
}

/// Crash after a slot's reservation (before the run starts) and after a run executed (before
/// its outcome is stored): the slot is recorded as interrupted, never run again, and later slots run.
#[tokio::test]
async fn crash_after_a_slot_reservation_or_execution_never_reruns_the_slot() {
    for hit in hits(&[2]) {
        for point in ["cron.reserved", "cron.executed"] {
            cron_cycle(point, hit).await;
        }
    }
}

/// Inbound chat under `kill -9` at every step — a poll answered but nothing committed, its messages
/// and offset committed, a turn answered but its reply not committed, the reply committed — then
/// a restart: every message is answered exactly once, quoting it, and every update is confirmed.
#[tokio::test]
async fn kill_9_around_an_inbound_message_neither_loses_it_nor_answers_it_twice() {
    use pincer_testkit::fakes::openai::FakeOpenAi;
    use pincer_testkit::fakes::telegram::Incoming;
    let points = [
        ("inbound.polled", 1),
        ("inbound.accepted", 1),
        ("inbound.accepted", 2),
        ("inbound.answering", 2),
        ("inbound.answered", 1),
        ("inbound.answered", 3),
    ];
    for (point, hit) in points {
        let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
        let config = json!({
            "models": { "providers": { "openai": {
                "api": "openai-completions", "baseUrl": model.base_url(), "apiKey": "sk-test", "models": [{ "id": "gpt-4o" }],
            } } },
            "agents": { "defaults": { "model": { "primary": "openai/gpt-4o" } } },
            "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url(), "allowFrom": ["*"] } },
            "session": { "dmScope": "per-channel-peer" },
            "delivery": { "rateLimits": { "telegram": 0 } },
        });
        let dir = tempfile::tempdir().unwrap();
        let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
        arm(&mut gw, point, hit);
        // One message per poll, so every pass of a point is reached: the next is pushed once the
        // gateway polls again (or at once, when it died).
        let mut sent: Vec<(i64, i64)> = Vec::new();
        for user in 1..=5 {
            let polls = tg.polls().len();
            sent.push((user, tg.push_message(Incoming::dm(user, &format!("msg-{user}"))).1));
            // A loaded machine may take seconds to poll again; a killed gateway never will.
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while tg.polls().len() <= polls
                && std::time::Instant::now() < deadline
                && gw.child.try_wait().ok().flatten().is_none()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        expect_crash(&mut gw, point);
        // The replies recorded before the kill: only the other turns may ask the model again
        // (turns of different chats run at once, so some may have been waiting on the model).
        let recorded_before: usize = {
            let db = rusqlite::Connection::open_with_flags(
                dir.path().join("pincer.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            db.query_row("SELECT COUNT(*) FROM transcript WHERE role = 'assistant'", (), |r| r.get::<_, i64>(0))
                .unwrap() as usize
        };
        let asked_before = model.request_count();
        restart_after_the_crash(&mut gw);
        // Every reply is enqueued exactly once; one the outbox was sending at the kill may have
        // reached Telegram or not, which Telegram cannot tell, so the outbox reports it `unknown`
        // (as every Telegram send cut by a crash is) and never sends it twice.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let rows = loop {
            let rows = settled(&gw).await;
            let replies = rows.iter().filter(|r| r["origin"]["kind"] == "reply").count();
            // A reply enqueued between `settled`'s check and its listing may still be sending.
            let open = rows.iter().any(|r| r["state"] == "pending" || r["state"] == "sending");
            if (replies >= sent.len() && !open) || std::time::Instant::now() > deadline {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let got = tg.messages();
        let ctx = format!("{point}:{hit}: {got:?}\n{rows:?}");
        let replies: Vec<&Value> = rows.iter().filter(|r| r["origin"]["kind"] == "reply").collect();
        assert_eq!(replies.len(), sent.len(), "one reply enqueued per message; {ctx}");
        for (user, message_id) in &sent {
            let answers: Vec<_> = got.iter().filter(|m| m.chat_id == user.to_string()).collect();
            let row: Vec<_> = replies.iter().filter(|r| r["to"].as_str() == Some(user.to_string().as_str())).collect();
            assert_eq!(row.len(), 1, "user {user}; {ctx}");
            match row[0]["state"].as_str() {
                Some("delivered") => {
                    assert_eq!(answers.len(), 1, "user {user}; {ctx}");
                    assert_eq!(answers[0].reply_to_message_id, Some(*message_id), "{ctx}");
                }
                Some("unknown") => assert!(answers.len() <= 1, "user {user}; {ctx}"),
                other => panic!("user {user}: reply {other:?}; {ctx}"),
            }
        }
        for row in replies.iter().filter(|r| r["state"] == "unknown") {
            assert!(row["lastError"].is_string(), "an unknown reply says why; {ctx}");
        }
        assert_eq!(tg.unconfirmed(), 0, "{ctx}");
        // Each chat's transcript has its message once and one reply: a turn re-run after the
        // crash neither records the message again nor asks the model a second time once the
        // reply was recorded (`inbound.answering`).
        let mut c = client(&gw, &["operator.read"]).await;
        for (user, _) in &sent {
            let key = format!("agent:main:session:telegram:direct:{user}");
            let history = c.call("chat.history", json!({"sessionKey": key})).await.unwrap();
            let entries: Vec<(&str, &str)> = history["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
                .collect();
            let msg = format!("msg-{user}");
            assert_eq!(entries.len(), 2, "user {user}: {entries:?}; {ctx}");
            assert_eq!(entries[0], ("user", msg.as_str()), "user {user}: {entries:?}; {ctx}");
            assert_eq!(entries[1].0, "assistant", "user {user}: {entries:?}; {ctx}");
        }
        // A turn whose reply was recorded before the kill is not asked for again: after the
        // restart the model answers only the chats that had no reply yet.
        assert_eq!(
            model.request_count() - asked_before,
            sent.len() - recorded_before,
            "the recorded replies ({recorded_before}) are not asked for again; {ctx}"
        );
        if point == "inbound.answering" {
            assert!(recorded_before >= 2, "the kill came after two turns recorded their replies; {ctx}");
        }
    }
}

/// A gateway configuration whose one model is the fake OpenAI-compatible server at `base_url`.
fn fake_model_config(base_url: &str) -> Value {
    json!({
        "models": {"providers": {"openai": {"api": "openai-completions", "baseUrl": base_url,
            "apiKey": "sk-test", "models": [{"id": "gpt-4o"}]}}},
        "agents": {"defaults": {"model": {"primary": "openai/gpt-4o"}}},
    })
}

/// Each `chat.history` entry's role and `errorClass`.
fn roles_and_error_classes(history: &Value) -> Vec<(String, Option<String>)> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["errorClass"].as_str().map(String::from)))
        .collect()
}

/// `SIGKILL` between a tool call and its result (`agent.tool_called`: the assistant message and its
/// open call are committed, the tool has not run): after the restart the call is answered as
/// interrupted, `pincer sessions show` prints both, and the session's next turn sends the model a
/// well-formed conversation (every call answered once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_a_tool_call_and_its_result_leaves_the_transcript_consistent() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("write", json!({"path": "made.txt", "content": "x"})));
    fake.push(Reply::text("Picking up after the restart."));
    let dir = tempfile::tempdir().unwrap();
    let config = fake_model_config(&fake.base_url());
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    arm(&mut gw, "agent.tool_called", 1);
    let mut c = client(&gw, &["operator.admin"]).await;
    let turn =
        tokio::spawn(
            async move { c.call("agent", json!({"message": "Make a file", "sessionKey": "session:crash"})).await },
        );

    expect_crash(&mut gw, "agent.tool_called");
    let _ = turn.await;
    assert!(!dir.path().join("workspace/made.txt").exists(), "the tool ran before the crash point");
    restart_after_the_crash(&mut gw);

    let mut c = client(&gw, &["operator.admin"]).await;
    let history = c.call("chat.history", json!({"sessionKey": "session:crash"})).await.unwrap();
    let entries = roles_and_error_classes(&history);
    assert_eq!(
        entries,
        [("user".into(), None), ("assistant".into(), None), ("toolResult".into(), Some("interrupted".into()))]
    );
    // The activity ledger committed with the facts: the run and the call started, once each, and
    // the call ended with an unknown outcome (interrupted), not as a success.
    let ledger = c.call("audit.activity.list", json!({"sessionKey": "agent:main:session:crash"})).await.unwrap();
    let records: Vec<(&str, &str)> = ledger["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        records,
        [("tool.action.finished", "unknown"), ("tool.action.started", "started"), ("agent.run.started", "started")],
        "{ledger}"
    );
    assert_eq!(ledger["events"][0]["errorCode"], "tool_outcome_unknown", "{ledger}");
    let shown = gw.cli(&["sessions", "show", "session:crash"]);
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(out.contains("→ tool call write (call_write)"), "{out}");
    assert!(out.contains("toolResult") && out.contains("write (call_write) · error (interrupted)"), "{out}");

    let answer = c.call("agent", json!({"message": "Go on", "sessionKey": "session:crash"})).await.unwrap();
    assert_eq!(answer["text"], "Picking up after the restart.");
    let sent = fake.requests().last().unwrap().body["messages"].clone();
    let roles: Vec<&str> = sent.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"], "{sent}");
    assert_eq!(sent[3]["tool_call_id"], "call_write");
}

/// The same kill in a step of read-only calls, whose assistant message and open call commit
/// relaxed (in the WAL, no fsync: a read may run again after a power loss, so it waits for none):
/// a `kill -9` still keeps them, and after the restart the call is answered as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_a_read_only_call_and_its_result_keeps_the_relaxed_step() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("read", json!({"path": "notes.txt"})));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("workspace")).unwrap();
    std::fs::write(dir.path().join("workspace/notes.txt"), "buy milk").unwrap();
    let config = fake_model_config(&fake.base_url());
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    arm(&mut gw, "agent.tool_called", 1);
    let mut c = client(&gw, &["operator.admin"]).await;
    let turn = tokio::spawn(async move {
        c.call("agent", json!({"message": "Read my notes", "sessionKey": "session:crash"})).await
    });
    expect_crash(&mut gw, "agent.tool_called");
    let _ = turn.await;
    restart_after_the_crash(&mut gw);

    let mut c = client(&gw, &["operator.admin"]).await;
    let history = c.call("chat.history", json!({"sessionKey": "session:crash"})).await.unwrap();
    let entries = roles_and_error_classes(&history);
    assert_eq!(
        entries,
        [("user".into(), None), ("assistant".into(), None), ("toolResult".into(), Some("interrupted".into()))],
        "{history}"
    );
    assert_eq!(fake.request_count(), 1, "the model was not asked again before the kill");
}

/// `SIGKILL` right after a tool's result was committed relaxed (`agent.tool_result`: in the WAL,
/// not fsynced, the model not asked again): the kill loses nothing the process wrote, so after
/// the restart the call has its real result — not the interrupted one — the next turn sends it
/// to the model, and the tool is not run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_a_relaxed_tool_result_keeps_the_result_and_does_not_run_the_tool_again() {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("write", json!({"path": "made.txt", "content": "x"})));
    fake.push(Reply::text("Picking up after the restart."));
    let dir = tempfile::tempdir().unwrap();
    let config = fake_model_config(&fake.base_url());
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    arm(&mut gw, "agent.tool_result", 1);
    let mut c = client(&gw, &["operator.admin"]).await;
    let turn =
        tokio::spawn(
            async move { c.call("agent", json!({"message": "Make a file", "sessionKey": "session:crash"})).await },
        );

    expect_crash(&mut gw, "agent.tool_result");
    let _ = turn.await;
    let made = dir.path().join("workspace/made.txt");
    assert!(made.exists(), "the tool ran before the crash point");
    assert_eq!(fake.requests().len(), 1, "the model was not asked again before the kill");
    // Whatever runs the tool again after the restart would make the file again.
    std::fs::remove_file(&made).unwrap();
    restart_after_the_crash(&mut gw);

    let mut c = client(&gw, &["operator.admin"]).await;
    let history = c.call("chat.history", json!({"sessionKey": "session:crash"})).await.unwrap();
    let entries: Vec<(String, Option<String>, Option<String>)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().map(String::from);
            (m["role"].as_str().unwrap().to_string(), s("errorClass"), s("toolCallId"))
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("user".into(), None, None),
            ("assistant".into(), None, None),
            ("toolResult".into(), None, Some("call_write".into()))
        ],
        "{history}"
    );

    let answer = c.call("agent", json!({"message": "Go on", "sessionKey": "session:crash"})).await.unwrap();
    assert_eq!(answer["text"], "Picking up after the restart.");
    let sent = fake.requests().last().unwrap().body["messages"].clone();
    let roles: Vec<&str> = sent.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"], "{sent}");
    assert_eq!(sent[3]["tool_call_id"], "call_write");
    assert!(!sent[3]["content"].to_string().contains("interrupted"), "{sent}");
    assert!(!made.exists(), "the tool ran again after the restart");
    assert_eq!(fake.requests().len(), 2);
}

/// A gateway with a fake model and a fake Telegram, armed at `point:1`; `agent` with `deliver`
/// (reply to Telegram chat 4242, `idempotencyKey` `deliver-1`) runs until the gateway kills itself
/// there, and it is restarted. Returns the gateway, the fakes and the run's `agent.wait` answer.
async fn deliver_cycle(
    dir: &std::path::Path,
    point: &str,
) -> (GatewayProcess, pincer_testkit::fakes::openai::FakeOpenAi, FakeTelegram, Value) {
    use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
    let (fake, tg) = (FakeOpenAi::start().await, FakeTelegram::start().await);
    fake.push(Reply::text("The report is ready."));
    let config = json!({
        "models": {"providers": {"openai": {"api": "openai-completions", "baseUrl": fake.base_url(),
            "apiKey": "sk-test", "models": [{"id": "gpt-4o"}]}}},
        "agents": {"defaults": {"model": {"primary": "openai/gpt-4o"}}},
        "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url() } },
        "delivery": { "rateLimits": { "telegram": 0 } },
    });
    let mut gw = GatewayProcess::start(&pincer_bin(), dir, config).unwrap();
    arm(&mut gw, point, 1);
    let mut c = client(&gw, &["operator.admin"]).await;
    let params = json!({"message": "Write the report", "sessionKey": "session:report", "deliver": true,
                        "replyChannel": "telegram", "replyTo": "4242", "idempotencyKey": "deliver-1"});
    let turn = tokio::spawn(async move { c.call("agent", params).await });
    expect_crash(&mut gw, point);
    assert!(turn.await.unwrap().is_err(), "the caller was answered before the crash point");
    restart_after_the_crash(&mut gw);
    let mut c = client(&gw, &["operator.admin"]).await;
    let waited = c.call("agent.wait", json!({"runId": "deliver-1", "timeoutMs": 2000})).await.unwrap();
    (gw, fake, tg, waited)
}

/// `SIGKILL` right after an `agent --deliver` reply is committed (`agent.replied`), before the
/// caller is answered: the reply's outbox row committed in the same transaction, so after the
/// restart the outbox sends it — once — with nobody asking again, and a retry with the same
/// `idempotencyKey` finds that row and sends nothing more. (Before the row was enqueued in its
/// own write after the reply's, and this kill left the reply unsent.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_an_agent_deliver_reply_is_committed_sends_it_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, fake, tg, waited) = deliver_cycle(dir.path(), "agent.replied").await;
    assert_eq!((waited["status"].as_str(), waited["stopReason"].as_str()), (Some("ok"), Some("stop")), "{waited}");

    let got = tg.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!((got[0].chat_id.as_str(), got[0].text.as_str()), ("4242", "The report is ready."));
    let rows = settled(&gw).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["state"].as_str(), rows[0]["origin"]["kind"].as_str()),
        (Some("delivered"), Some("agent-reply"))
    );
    assert_eq!(rows[0]["origin"]["id"], "deliver-1", "{}", rows[0]);

    let mut c = client(&gw, &["operator.admin"]).await;
    let params = json!({"message": "Write the report", "sessionKey": "session:report", "deliver": true,
                        "replyChannel": "telegram", "replyTo": "4242", "idempotencyKey": "deliver-1"});
    let again = c.call("agent", params).await.unwrap();
    assert_eq!(again["text"], "The report is ready.");
    assert_eq!(again["delivery"]["deliveryId"], rows[0]["id"], "the retry finds the row committed with the reply");
    assert_eq!(settled(&gw).await.len(), 1);
    assert_eq!((tg.messages().len(), fake.request_count()), (1, 1), "sent once, the model asked once");
}

/// `SIGKILL` after the model answered an `agent --deliver` turn but before anything of the reply
/// was committed (`agent.answered`): after the restart nothing is sent, no delivery exists, the
/// history holds the message alone, and `agent.wait` answers that the run was interrupted
/// instead of waiting for an end that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_an_agent_deliver_reply_is_committed_sends_nothing_and_says_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, fake, tg, waited) = deliver_cycle(dir.path(), "agent.answered").await;
    assert_eq!(waited["status"], "error", "{waited}");
    assert!(waited["error"].as_str().unwrap().contains("interrupted"), "{waited}");

    let mut c = client(&gw, &["operator.admin"]).await;
    let history = c.call("chat.history", json!({"sessionKey": "session:report"})).await.unwrap();
    let roles: Vec<&str> =
        history["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user"], "{history}");
    assert!(settled(&gw).await.is_empty(), "no delivery was committed");
    assert_eq!((tg.messages().len(), fake.request_count()), (0, 1), "nothing sent; the model was asked once");
}
