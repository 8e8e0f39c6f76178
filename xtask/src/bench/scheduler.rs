//! Scheduler benchmarks: lag of jobs firing every minute (Pincer and OpenClaw in the same
//! minutes), then 100,000 stored jobs (ready time, memory per job) of which 10,000 fire within one
//! minute (lag, wake time).

use std::time::{Duration, Instant};

use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::json;

use super::gateway::{Gateway, TOKEN, metric, rss_kib, start_openclaw, start_pincer};
use super::{Bench, Row, percentile};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn admin(url: &str) -> anyhow::Result<RawClient> {
    Ok(RawClient::connect(url, cli_connect_params(Some(TOKEN), &["operator.admin"])).await?.0)
}

/// Adds `n` jobs firing every minute on the minute (no stagger) that run `true`.
async fn add_minute_jobs(c: &mut RawClient, n: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for i in 0..n {
        let job = c
            .call(
                "cron.add",
                json!({
                    "name": format!("bench-{i}"), "schedule": {"kind": "cron", "expr": "* * * * *", "tz": "UTC", "staggerMs": 0},
                    "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"},
                }),
            )
            .await?;
        ids.push(job["id"].as_str().unwrap_or_default().to_string());
    }
    Ok(ids)
}

/// `(runAtMs or startedAtMs) − the minute it was due`, for every run of the jobs.
async fn minute_lags(c: &mut RawClient, ids: &[String], pincer: bool) -> anyhow::Result<Vec<f64>> {
    let mut lags = Vec::new();
    for id in ids {
        let page = c.call("cron.runs", json!({"id": id, "limit": 200})).await?;
        for e in page["entries"].as_array().cloned().unwrap_or_default() {
            let lag = if pincer {
                match (e["startedAtMs"].as_i64(), e["slotMs"].as_i64()) {
                    (Some(s), Some(slot)) => s - slot,
                    _ => continue,
                }
            } else {
                let Some(at) = e["runAtMs"].as_i64().or(e["ts"].as_i64()) else { continue };
                at - at / 60_000 * 60_000
            };
            lags.push(lag as f64);
        }
    }
    Ok(lags)
}

/// Adds 10 minute jobs to the gateway at `url`, waits `minutes` minute boundaries (plus a margin
/// for the runs to be recorded) and returns every run's lag.
async fn lag_run(url: &str, minutes: u64, pincer: bool) -> anyhow::Result<Vec<f64>> {
    let mut c = admin(url).await?;
    let ids = add_minute_jobs(&mut c, 10).await?;
    let now = now_ms();
    let until = (now / 60_000 + minutes as i64) * 60_000 + 15_000;
    tokio::time::sleep(Duration::from_millis((until - now).max(0) as u64)).await;
    minute_lags(&mut admin(url).await?, &ids, pincer).await
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let rt = Bench::runtime();
    let minutes = if b.quick { 1 } else { 2 };
    // One system at a time, so neither one's burst at the minute boundary delays the other's.
    eprintln!("bench: scheduler lag, 10 jobs every minute for {minutes} min, Pincer then OpenClaw");
    let p = start_pincer(&b.pincer, &b.dir("p-cron-lag"), json!({}))?;
    let p_lags = rt.block_on(lag_run(&p.url(), minutes, true))?;
    drop(p);
    let o_lags = match &b.openclaw {
        Some(oc) => {
            let o = start_openclaw(oc, &b.dir("o-cron-lag"), json!({}))?;
            match rt.block_on(lag_run(&o.url(), minutes, false)) {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("bench: OpenClaw lag run failed: {e}");
                    None
                }
            }
        }
        None => None,
    };
    let o_ok = o_lags.as_ref().filter(|l| !l.is_empty());
    eprintln!("bench: {} Pincer runs, {} OpenClaw runs", p_lags.len(), o_ok.map_or(0, |l| l.len()));
    b.rows.push(
        Row::new("Scheduler", format!("Slot-to-start lag p50 (10 jobs × {minutes} min)"), "ms")
            .pincer(percentile(p_lags.clone(), 50.0))
            .openclaw(o_ok.map(|l| percentile(l.clone(), 50.0)))
            .note("no runs recorded"),
    );
    b.rows.push(
        Row::new("Scheduler", format!("Slot-to-start lag p99 (10 jobs × {minutes} min)"), "ms")
            .pincer(percentile(p_lags, 99.0))
            .openclaw(o_ok.map(|l| percentile(l.clone(), 99.0)))
            .target("< 10 ms")
            .note("no runs recorded"),
    );

    capacity(b)
}

/// 100,000 jobs stored (ready time, memory per job), of which 10,000 fire within one minute (lag,
/// wake time); the rest are due a day later.
fn capacity(b: &mut Bench) -> anyhow::Result<()> {
    let stored: usize = if b.quick { 20_000 } else { 100_000 };
    let firing: usize = if b.quick { 2_000 } else { 10_000 };
    let spread_ms: i64 = if b.quick { 10_000 } else { 60_000 };
    let lead_ms: i64 = if b.quick { 20_000 } else { 40_000 };
    eprintln!("bench: {stored} jobs stored, {firing} of them fired within {} s", spread_ms / 1000);
    let empty = start_pincer(&b.pincer, &b.dir("p-cap-empty"), json!({}))?;
    let empty_ready = empty.ready_ms;
    std::thread::sleep(Duration::from_secs(2));
    let empty_rss = rss_kib(empty.child.id());
    drop(empty);

    let state = b.dir("p-cap");
    std::fs::create_dir_all(&state)?;
    let first = now_ms() + lead_ms;
    write_jobs(&state.join("pincer.db"), stored, firing, first, spread_ms)?;
    // Best of three starts (the first also migrates nothing: the store was written by this build).
    let mut ready = Vec::new();
    for _ in 0..2 {
        let gw = start_pincer(&b.pincer, &state, json!({}))?;
        ready.push(gw.ready_ms);
        drop(gw);
    }
    let gw: Gateway = start_pincer(&b.pincer, &state, json!({}))?;
    ready.push(gw.ready_ms);
    // The start-up check of every job runs in the background; measure once it is done.
    std::thread::sleep(Duration::from_secs(if b.quick { 3 } else { 5 }));
    let loaded_rss = rss_kib(gw.child.id());
    let per_job_bytes = (loaded_rss.saturating_sub(empty_rss)) as f64 * 1024.0 / stored as f64;
    b.rows.push(
        Row::new("Scheduler", format!("Ready with {stored} stored jobs (best of 3; empty: {empty_ready:.0} ms)"), "ms")
            .pincer(ready.iter().copied().fold(f64::INFINITY, f64::min))
            .target("< 100 ms"),
    );
    b.rows.push(
        Row::new("Scheduler", format!("Memory per stored job ({stored} jobs)"), "bytes")
            .pincer(per_job_bytes)
            .target("< 1024 bytes"),
    );

    // Let the firing jobs fire once.
    let deadline = Instant::now() + Duration::from_millis((first + spread_ms - now_ms() + 20_000).max(0) as u64);
    let db = state.join("pincer.db");
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let done = count_runs(&db)?;
        if done >= firing || Instant::now() > deadline {
            break;
        }
    }
    let metrics = gw.http_get("/metrics");
    let wakes_sum = metric(&metrics, "pincer_cron_wake_seconds_sum").unwrap_or(f64::NAN);
    let wakes = metric(&metrics, "pincer_cron_wake_seconds_count").unwrap_or(f64::NAN);
    let rss_after = rss_kib(gw.child.id());
    drop(gw);
    let lags = run_lags(&db)?;
    eprintln!("bench: {} of {firing} capacity runs recorded", lags.len());
    b.rows.push(
        Row::new("Scheduler", format!("Runs started of {firing} due within {} s", spread_ms / 1000), "runs")
            .pincer(lags.len() as f64)
            .count(),
    );
    b.rows.push(
        Row::new("Scheduler", format!("Slot-to-start lag p50 ({firing} of {stored} jobs firing)"), "ms")
            .pincer(percentile(lags.clone(), 50.0)),
    );
    b.rows.push(
        Row::new("Scheduler", format!("Slot-to-start lag p99 ({firing} of {stored} jobs firing)"), "ms")
            .pincer(percentile(lags, 99.0))
            .target("< 10 ms"),
    );
    b.rows.push(Row::new("Scheduler", "Scheduler task time per wake (mean)", "µs").pincer(wakes_sum / wakes * 1e6));
    b.rows.push(Row::new("Scheduler", format!("RSS after {firing} runs"), "MB").pincer(rss_after as f64 / 1024.0));
    Ok(())
}

/// Writes `stored` command jobs (`true`, every hour) to a stopped gateway's store: `firing` of them
/// first due between `first` and `first + spread_ms`, the rest a day later.
fn write_jobs(db: &std::path::Path, stored: usize, firing: usize, first: i64, spread_ms: i64) -> anyhow::Result<()> {
    let store = pincer_store::Store::open(db)?;
    let rows: Vec<pincer_store::JobRow> = (0..stored)
        .map(|i| {
            let anchor = if i < firing {
                first + (i as i64 * spread_ms) / firing as i64
            } else {
                first + 86_400_000 + (i as i64 % 3_600) * 1_000
            };
            let id = format!("cap-{i:06}");
            let job = json!({
                "id": id, "name": format!("capacity {i}"), "enabled": true, "createdAtMs": anchor, "updatedAtMs": anchor,
                "schedule": {"kind": "every", "everyMs": 3_600_000, "anchorMs": anchor}, "sessionTarget": "isolated",
                "wakeMode": "now", "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"}, "state": {},
            });
            pincer_store::JobRow {
                id,
                name: format!("capacity {i}"),
                enabled: true,
                job_json: job.to_string(),
                state_json: json!({"nextRunAtMs": anchor}).to_string(),
                next_run_at_ms: Some(anchor),
                created_at_ms: anchor,
                updated_at_ms: anchor,
            }
        })
        .collect();
    store.write_blocking(move |tx| {
        for r in &rows {
            tx.insert_job(r)?;
        }
        Ok(())
    })?;
    store.close();
    Ok(())
}

fn count_runs(db: &std::path::Path) -> anyhow::Result<usize> {
    let store = pincer_store::Store::open(db)?;
    let (_, total) =
        store.read_blocking(|rd| rd.list_runs(&pincer_store::RunFilter { limit: 1, ..Default::default() }))?;
    Ok(total as usize)
}

fn run_lags(db: &std::path::Path) -> anyhow::Result<Vec<f64>> {
    let store = pincer_store::Store::open(db)?;
    let (runs, _) =
        store.read_blocking(|rd| rd.list_runs(&pincer_store::RunFilter { limit: 1_000_000, ..Default::default() }))?;
    Ok(runs.iter().filter_map(|r| r.slot_ms.map(|s| (r.started_at_ms - s) as f64)).collect())
}
