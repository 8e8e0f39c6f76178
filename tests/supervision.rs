//! Supervision end to end: the scheduler's loop and the outbox's loop die on purpose (fail
//! points) and the supervisor brings them back, rebuilt from the store, on the fake clock's
//! backoff — while `/readyz`, `health` and `doctor` say so. Nothing runs twice, nothing is sent
//! twice, and both go on working afterwards.

use std::time::Duration;

use pincer_core::supervisor::RESTART_BACKOFF_MS;
use pincer_testkit::fakes::telegram::{FakeTelegram, Fault};
use pincer_testkit::ws::RawClient;
use serde_json::{Value, json};

use crate::support::{TestGateway, error_of, wait_runs};

/// Polls `health` until the task `name` is in `state`, and returns the task's report.
async fn wait_task(c: &mut RawClient, name: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let health = c.call("health", json!({})).await.unwrap();
        let tasks = health["pincer"]["tasks"].as_array().cloned().unwrap_or_default();
        if let Some(t) = tasks.into_iter().find(|t| t["name"] == name && t["state"] == state) {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "task {name} never became {state}: {health}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `/readyz`: the status and the names it lists as failing.
async fn readyz(gw: &TestGateway) -> (u16, Vec<String>) {
    let (status, body) = pincer_testkit::http::get(gw.addr(), "/readyz").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    let failing = body["failing"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    (status, failing)
}

/// The value of one series in `/metrics`, 0 when absent.
async fn metric(gw: &TestGateway, series: &str) -> f64 {
    let (_, text) = pincer_testkit::http::get(gw.addr(), "/metrics").await.unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{series} ")));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn the_scheduler_and_the_outbox_come_back_after_a_panic_and_nothing_runs_or_is_sent_twice() {
    let telegram = FakeTelegram::start().await;
    let config = format!(
        "{{ channels: {{ telegram: {{ botToken: '{}', apiRoot: '{}' }} }} }}",
        FakeTelegram::TOKEN,
        telegram.base_url()
    );
    // The scheduler's loop panics right after it picks the first due slot (its reservation is
    // queued, its memory says "running"); the outbox's loop right after it leases the first row
    // and starts its worker.
    let gw = TestGateway::start_with_failpoints(&config, "cron.dispatched=panic,outbox.leased=panic").await;
    let mut c = gw.client(&["operator.admin"]).await;
    assert_eq!(readyz(&gw).await, (200, vec![]));
    // Telegram takes its time, so the worker is mid-send while the outbox's loop restarts.
    telegram.push_fault(Fault::Delay(Duration::from_millis(1_500)));
    let job = c
        .call(
            "cron.add",
            json!({
                "name": "brief", "schedule": {"kind": "every", "everyMs": 60_000}, "sessionTarget": "isolated",
                "payload": {"kind": "command", "argv": ["sh", "-c", "echo 'all systems nominal'"]},
                "delivery": {"mode": "announce", "channel": "telegram", "to": "42"},
            }),
        )
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let slot = job["state"]["nextRunAtMs"].as_i64().unwrap();

    // The slot comes: the scheduler dies.
    gw.clock.set(slot);
    let scheduler = wait_task(&mut c, "scheduler", "restarting").await;
    assert_eq!(scheduler["restarts"], 1);
    assert!(
        scheduler["lastError"].as_str().unwrap().starts_with("panicked: fail point cron.dispatched reached"),
        "{scheduler}"
    );
    assert_eq!(scheduler["restartAtMs"], slot + RESTART_BACKOFF_MS[0]);
    assert_eq!(readyz(&gw).await, (503, vec!["scheduler".to_string()]));
    let health = c.call("health", json!({})).await.unwrap();
    assert_eq!((health["ok"].clone(), health["pincer"]["ready"].clone()), (json!(false), json!(false)));
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    let finding = doctor["findings"].as_array().unwrap().iter().find(|f| f["check"] == "task.scheduler").cloned();
    assert_eq!(finding.as_ref().map(|f| f["status"].clone()), Some(json!("fail")), "{doctor}");
    // Asking the scheduler fails at once, saying why, instead of hanging.
    let res = c.request("cron.status", json!({})).await.unwrap();
    let (code, message) = error_of(&res);
    assert_eq!(code, "UNAVAILABLE");
    assert!(message.starts_with("the scheduler is restarting after an internal error"), "{message}");

    // The backoff passes on the clock: the scheduler is back, rebuilt from the store, and takes
    // over the run that was in flight (the slot is not run again); its result goes to the outbox,
    // whose loop dies right after leasing it. The loop comes back while the worker still waits
    // for Telegram: the row stays the worker's, and is delivered once.
    gw.clock.advance(RESTART_BACKOFF_MS[0]);
    wait_task(&mut c, "scheduler", "running").await;
    let outbox = wait_task(&mut c, "outbox", "restarting").await;
    assert!(outbox["lastError"].as_str().unwrap().starts_with("panicked: fail point outbox.leased reached"));
    assert_eq!(readyz(&gw).await, (503, vec!["outbox".to_string()]));
    assert!(telegram.messages().is_empty(), "still in flight");
    gw.clock.advance(RESTART_BACKOFF_MS[0]);
    wait_task(&mut c, "outbox", "running").await;
    assert_eq!(readyz(&gw).await, (200, vec![]));
    let runs = wait_runs(&mut c, &id, 1).await;
    let run = runs[0].clone();
    let delivered = async {
        loop {
            let runs = c.call("cron.runs", json!({"id": id})).await.unwrap();
            if runs["entries"][0]["deliveryStatus"] == "delivered" {
                return runs["entries"].clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let entries = tokio::time::timeout(Duration::from_secs(20), delivered).await.expect("the run was delivered");
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    assert_eq!(
        (run["runId"].as_str(), run["status"].as_str(), run["trigger"].as_str()),
        (Some(format!("cron:{id}:{slot}").as_str()), Some("ok"), Some("scheduled"))
    );
    assert_eq!(entries[0]["completionStatus"], "succeeded");

    // Both go on working: the next slot runs and is delivered by the restarted loop.
    gw.clock.set(slot + 60_000);
    let runs = wait_runs(&mut c, &id, 2).await;
    assert_eq!(runs.len(), 2);
    let msgs = telegram.wait_for_messages(2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let msgs_now = telegram.messages();
    assert_eq!(msgs_now.len(), 2, "each slot's row was sent exactly once: {msgs_now:?}");
    assert!(msgs.iter().all(|m| m.chat_id == "42" && m.text.contains("all systems nominal")));
    let deliveries = c.call("deliveries.list", json!({})).await.unwrap();
    let states: Vec<&str> =
        deliveries["deliveries"].as_array().unwrap().iter().map(|d| d["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["delivered", "delivered"], "{deliveries}");
    assert_eq!(metric(&gw, "pincer_task_restarts_total{task=\"scheduler\"}").await, 1.0);
    assert_eq!(metric(&gw, "pincer_task_restarts_total{task=\"outbox\"}").await, 1.0);
    assert_eq!(metric(&gw, "pincer_task_up{task=\"scheduler\"}").await, 1.0);
    let health = c.call("health", json!({})).await.unwrap();
    assert_eq!(health["ok"], true, "{health}");
    gw.stop().await;
}

/// A job every minute whose command prints `text`, delivered nowhere; returns its id and first slot.
async fn minute_job(c: &mut RawClient, text: &str) -> (String, i64) {
    let job = c
        .call(
            "cron.add",
            json!({
                "name": "minutely", "schedule": {"kind": "every", "everyMs": 60_000}, "sessionTarget": "isolated",
                "payload": {"kind": "command", "argv": ["sh", "-c", format!("echo {text}")]},
                "delivery": {"mode": "none"},
            }),
        )
        .await
        .unwrap();
    (job["id"].as_str().unwrap().to_string(), job["state"]["nextRunAtMs"].as_i64().unwrap())
}

/// A run whose task dies without an outcome (a bug in a runner) is recorded at once — not when
/// its lease runs out, ten minutes later — and the next slot runs.
#[tokio::test]
async fn a_run_whose_task_panics_is_recorded_at_once_and_the_next_slot_runs() {
    let gw = TestGateway::start_with_failpoints("{}", "cron.run=panic").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let (id, slot) = minute_job(&mut c, "fine").await;
    gw.clock.set(slot);
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!((runs[0]["status"].as_str(), runs[0]["errorReason"].as_str()), (Some("error"), Some("interrupted")));
    assert!(runs[0]["error"].as_str().unwrap().contains("ended without reporting an outcome"), "{}", runs[0]);
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert!(job["state"]["runningAtMs"].is_null(), "the job is not left running: {job}");
    gw.clock.set(slot + 60_000);
    let runs = wait_runs(&mut c, &id, 2).await;
    assert_eq!(runs[1]["status"], "ok", "{}", runs[1]);
    assert_eq!(runs[1]["runId"], format!("cron:{id}:{}", slot + 60_000));
    gw.stop().await;
}

/// The scheduler dies with a run in flight whose task then dies too: the restarted scheduler takes
/// the run over, hears it was lost, records it once, and the slot is not run again.
#[tokio::test]
async fn a_run_lost_while_the_scheduler_restarts_is_recorded_once_and_not_rerun() {
    let gw = TestGateway::start_with_failpoints("{}", "cron.dispatched=panic,cron.run=panic").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let (id, slot) = minute_job(&mut c, "fine").await;
    gw.clock.set(slot);
    wait_task(&mut c, "scheduler", "restarting").await;
    gw.clock.advance(RESTART_BACKOFF_MS[0]);
    wait_task(&mut c, "scheduler", "running").await;
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["runId"], format!("cron:{id}:{slot}"));
    assert_eq!(runs[0]["errorReason"], "interrupted", "{}", runs[0]);
    gw.clock.set(slot + 60_000);
    let runs = wait_runs(&mut c, &id, 2).await;
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[1]["status"].as_str(), runs[1]["trigger"].as_str()), (Some("ok"), Some("scheduled")));
    gw.stop().await;
}
