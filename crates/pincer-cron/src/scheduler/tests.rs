//! The scheduler against a real store whose writes fail on purpose (fail points), under a fake
//! clock: what it remembers follows what was written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_core::crashpoint::Failpoints;
use pincer_core::{EventBus, FakeClock, Metrics};
use pincer_protocol::state::{CompletionStatus, ExecStatus, RunStatus};
use pincer_store::{RunFilter, RunRow, Store};
use serde_json::{Value, json};

use super::{CronDeps, CronService};

/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200_000;
const MINUTE: i64 = 60_000;

struct Harness {
    cron: CronService,
    store: Store,
    clock: FakeClock,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(failpoints: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        Harness::with(dir, store, FakeClock::new(T0), failpoints).await
    }

    /// A new scheduler on the same store and clock (the old one shut down).
    async fn restart(old: Harness, failpoints: &str) -> Harness {
        let Harness { store, clock, _dir, .. } = old;
        Harness::with(_dir, store, clock, failpoints).await
    }

    async fn with(dir: tempfile::TempDir, store: Store, clock: FakeClock, failpoints: &str) -> Harness {
        let metrics = Arc::new(Metrics::default());
        let generation = store.write(|tx| tx.record_boot()).await.unwrap();
        let cron = CronService::start(CronDeps {
            store: store.clone(),
            clock: clock.shared(),
            events: EventBus::default(),
            metrics: metrics.clone(),
            config: Default::default(),
            default_tz: "UTC".into(),
            channels: crate::ChannelCatalog::new(vec![]),
            generation,
            // No agent runner: an agent turn fails at once, without a model or a process.
            agent: None,
            announcer: None,
            command_supervisor: None,
            supervisor: pincer_core::Supervisor::new(clock.shared(), metrics.clone()),
            failpoints: Failpoints::parse(failpoints).unwrap(),
        })
        .await
        .unwrap();
        Harness { cron, store, clock, metrics, _dir: dir }
    }

    /// A job firing every minute (first at T0 + 1 min) whose runs fail fast.
    async fn add_every_minute(&self) -> String {
        let job = self
            .cron
            .add(
                serde_json::from_value(json!({
                    "name": "minutely", "schedule": {"kind": "every", "everyMs": MINUTE}, "sessionTarget": "isolated",
                    "payload": {"kind": "agentTurn", "message": "m"}, "delivery": {"mode": "none"},
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        job.id
    }

    async fn runs(&self) -> Vec<RunRow> {
        let filter = RunFilter { limit: 10_000, ascending: true, ..Default::default() };
        self.store.read(move |rd| rd.list_runs(&filter)).await.unwrap().0
    }

    async fn status(&self) -> Value {
        serde_json::to_value(self.cron.status().await.unwrap()).unwrap()
    }

    fn store_errors(&self) -> u64 {
        self.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix("pincer_cron_store_errors_total "))
            .map_or(0, |n| n.trim().parse::<f64>().unwrap() as u64)
    }

    /// Waits (for the scheduler's tasks, not for time to pass: the clock is fake) until `f` holds.
    async fn until<F: AsyncFnMut(&Harness) -> bool>(&self, what: &str, mut f: F) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f(self).await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn an_outcome_the_store_refuses_is_written_again_and_the_job_waits_for_it() {
    // The first three writes of a run's outcome fail as a full disk would.
    let h = Harness::start("cron.record:3").await;
    let id = h.add_every_minute().await;
    h.clock.set(T0 + MINUTE);
    h.until("the outcome to be refused once", async |h| h.store_errors() == 1).await;

    // Nothing of the outcome was saved, and the scheduler did not move on: the run is still
    // running in the store, and no next wake is planned for the job until its outcome is written.
    let runs = h.runs().await;
    assert_eq!(
        runs.iter().map(|r| (r.slot_ms, r.status)).collect::<Vec<_>>(),
        [(Some(T0 + MINUTE), RunStatus::Running)]
    );
    assert_eq!(h.status().await["nextWakeAtMs"], Value::Null, "memory waits for the write");
    let stored = h.cron.get(&id).await.unwrap();
    assert_eq!((stored.state.next_run_at_ms, stored.state.last_run_status), (Some(T0 + MINUTE), None));

    // The next slot comes while the store still refuses: it is not run over the unrecorded one.
    h.clock.set(T0 + 2 * MINUTE + 5_000);
    h.until("the second refusal", async |h| h.store_errors() == 2).await;
    h.clock.advance(2_000);
    h.until("the third refusal", async |h| h.store_errors() == 3).await;
    assert_eq!(h.runs().await.len(), 1, "no slot is reserved while the last outcome is unwritten");

    // The store takes the write again: the outcome is recorded, then the due slot runs, once.
    h.clock.advance(5_000);
    h.until("both runs recorded", async |h| {
        let runs = h.runs().await;
        runs.len() == 2 && runs.iter().all(|r| r.completion_status.is_some())
    })
    .await;
    let runs = h.runs().await;
    let view: Vec<_> = runs.iter().map(|r| (r.slot_ms, r.status, r.completion_status)).collect();
    assert_eq!(
        view,
        [
            (Some(T0 + MINUTE), RunStatus::Error, Some(CompletionStatus::Failed)),
            (Some(T0 + 2 * MINUTE), RunStatus::Error, Some(CompletionStatus::Failed)),
        ]
    );
    // The second error in a row backs off a minute from when it ran (T0 + 2 min 12 s).
    let job = h.cron.get(&id).await.unwrap();
    let next = T0 + 3 * MINUTE + 12_000;
    assert_eq!(
        (job.state.last_run_status, job.state.consecutive_errors, job.state.next_run_at_ms),
        (Some(ExecStatus::Error), 2, Some(next))
    );
    assert_eq!(h.status().await["nextWakeAtMs"], next);
    h.cron.shutdown().await;
}

#[tokio::test]
async fn a_reservation_the_store_refuses_is_tried_again_and_runs_once() {
    let h = Harness::start("cron.reserve:1").await;
    h.add_every_minute().await;
    h.clock.set(T0 + MINUTE);
    h.until("the retry to be planned", async |h| h.status().await["nextWakeAtMs"] == T0 + MINUTE + 5_000).await;
    assert!(h.runs().await.is_empty(), "nothing was reserved");
    h.clock.set(T0 + MINUTE + 5_000);
    h.until("the run", async |h| h.runs().await.iter().any(|r| r.completion_status.is_some())).await;
    let runs = h.runs().await;
    assert_eq!(runs.iter().map(|r| r.slot_ms).collect::<Vec<_>>(), [Some(T0 + MINUTE)], "the same slot, once");
    h.cron.shutdown().await;
}

/// More jobs than one page of the schedule: start-up reads the first page, the rest arrives in the
/// background; a job edited meanwhile keeps its edit, and every other job fires at its time.
#[tokio::test]
async fn the_schedule_read_in_the_background_fires_every_job_and_keeps_edits() {
    let h = Harness::start("").await;
    let template = h.cron.get(&h.add_every_minute().await).await.unwrap();
    h.cron.remove(&template.id).await.unwrap();
    let n = 2_500;
    let rows: Vec<pincer_store::JobRow> = (0..n)
        .map(|i| {
            let mut job = template.clone();
            job.id = format!("job-{i:05}");
            job.state.next_run_at_ms = Some(T0 + MINUTE + i as i64);
            super::actor::job_row(&job).unwrap()
        })
        .collect();
    h.store.write(move |tx| rows.iter().try_for_each(|r| tx.insert_job(r))).await.unwrap();
    // A second scheduler on the same store, started with the jobs in it.
    h.cron.shutdown().await;
    let h2 = Harness::restart(h, "").await;
    // The last job is on the second page: turn it off at once.
    let last = format!("job-{:05}", n - 1);
    h2.cron.update(&last, serde_json::from_value(json!({"enabled": false})).unwrap(), None).await.unwrap();
    h2.clock.set(T0 + MINUTE + n as i64);
    // Polled slowly: each look reads every run, and 2,500 runs take a while on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(120);
    while h2.runs().await.len() < n - 1 {
        assert!(Instant::now() < deadline, "timed out waiting for every other job to run");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let runs = h2.runs().await;
    assert_eq!(runs.len(), n - 1, "each job once, and not the one turned off");
    assert!(runs.iter().all(|r| r.job_id != last));
    h2.cron.shutdown().await;
}
