//! Cron jobs at scale: 100,000 jobs in a gateway's store, then `cron.list` pages at several
//! offsets, the whole `pincer cron list --json`, and `cron.add` over 8 pipelined connections on
//! top of them. OpenClaw is measured beside with the jobs it can take in the time (its `cron.add`
//! rate sets how many).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use super::gateway::{TOKEN, start_openclaw, start_pincer};
use super::{Bench, Row, median};

const SECTION: &str = "Cron jobs at scale";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A job as `cron.add` takes it: a daily command, delivering nothing.
fn add_params(i: usize, tag: &str) -> Value {
    json!({
        "name": format!("{tag} {i}"), "schedule": {"kind": "every", "everyMs": 86_400_000},
        "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"},
    })
}

/// Writes `n` daily jobs (next runs spread over the day after tomorrow, so none fires during the
/// run; every 20th disabled) into the stopped gateway's store at `state`.
fn seed(state: &Path, n: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(state)?;
    let store = pincer_store::Store::open(&state.join("pincer.db"))?;
    let start = now_ms() + 2 * 86_400_000;
    let rows: Vec<pincer_store::JobRow> = (0..n)
        .map(|i| {
            let anchor = start + (i as i64 * 86_400_000) / n as i64;
            let id = format!("{:08x}-0000-4000-8000-{:012x}", i * 2_654_435_761 % (1 << 32), i);
            let enabled = i % 20 != 0;
            let name = format!("{} job {i}", ["report", "Backup", "digest", "Sync"][i % 4]);
            let job = json!({
                "id": id, "name": name, "enabled": enabled, "createdAtMs": start, "updatedAtMs": start,
                "schedule": {"kind": "every", "everyMs": 86_400_000, "anchorMs": anchor}, "sessionTarget": "isolated",
                "wakeMode": "now", "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"}, "state": {},
            });
            let next = enabled.then_some(anchor);
            pincer_store::JobRow {
                id,
                name,
                enabled,
                job_json: job.to_string(),
                state_json: next.map_or(json!({}), |t| json!({"nextRunAtMs": t})).to_string(),
                next_run_at_ms: next,
                created_at_ms: start,
                updated_at_ms: start,
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

/// `cron.add` of `n` jobs over `clients` connections, each with up to `window` requests in
/// flight, giving up after `limit`; returns the jobs added and the seconds taken.
async fn add_pipelined(
    url: &str,
    n: usize,
    clients: usize,
    window: usize,
    tag: &str,
    limit: Duration,
) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (url, tag) = (url.to_string(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(&url, cli_connect_params(Some(TOKEN), &["operator.admin"])).await?.0;
            c.wait_up_to(Duration::from_secs(60));
            let mut todo = (k..n).step_by(clients);
            let (mut in_flight, mut added, mut more) = (0usize, 0usize, true);
            loop {
                while more && in_flight < window && started.elapsed() < limit {
                    match todo.next() {
                        Some(i) => {
                            let req = json!({"type": "req", "id": format!("{tag}-{i}"), "method": "cron.add", "params": add_params(i, &tag)});
                            c.send_text(req.to_string()).await?;
                            in_flight += 1;
                        }
                        None => more = false,
                    }
                }
                if in_flight == 0 {
                    return anyhow::Ok(added);
                }
                let frame = c.next_frame().await?;
                if frame["type"] == "res" {
                    in_flight -= 1;
                    anyhow::ensure!(frame["ok"] == true, "cron.add failed: {}", frame["error"]);
                    added += 1;
                }
            }
        }));
    }
    let mut added = 0;
    for t in tasks {
        added += t.await??;
    }
    Ok((added, started.elapsed().as_secs_f64()))
}

/// Median round trip of `cron.list {limit, offset}` over `runs` calls, and the page it returned.
async fn page_ms(c: &mut RawClient, offset: u64, limit: u64, runs: usize) -> anyhow::Result<(f64, Value)> {
    let mut times = Vec::new();
    let mut page = Value::Null;
    for _ in 0..runs {
        let started = Instant::now();
        page = c.call("cron.list", json!({"offset": offset, "limit": limit})).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((median(times), page))
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let rt = Bench::runtime();
    let n: usize = if b.quick { 20_000 } else { 100_000 };
    let adds: usize = if b.quick { 1_000 } else { 5_000 };
    let (clients, window) = (8, 16);
    eprintln!("bench: {n} jobs written to a stopped gateway's store");
    let state = b.dir("p-jobs");
    seed(&state, n)?;
    let p = start_pincer(&b.pincer, &state, json!({}))?;
    eprintln!("bench: ready with {n} jobs in {:.0} ms; cron.list pages", p.ready_ms);
    let enabled = n - n.div_ceil(20);
    let offsets = [0, enabled as u64 / 2, enabled as u64 - 50];
    let limit = 50;
    let pages = rt.block_on(async {
        let mut c = RawClient::connect(&p.url(), cli_connect_params(Some(TOKEN), &["operator.read"])).await?.0;
        let mut out = Vec::new();
        for offset in offsets {
            let (ms, page) = page_ms(&mut c, offset, limit, 21).await?;
            anyhow::ensure!(
                page["total"] == enabled && page["jobs"].as_array().map(Vec::len) == Some(limit as usize),
                "bad page at {offset}: total {}",
                page["total"]
            );
            out.push(ms);
        }
        anyhow::Ok(out)
    })?;
    eprintln!("bench: pages {pages:?} ms; the whole `pincer cron list --json`");
    let whole = |args: &[&str]| -> anyhow::Result<(f64, usize)> {
        let started = Instant::now();
        let out =
            Command::new(&b.pincer).args(args).env("PINCER_STATE_DIR", &state).stderr(Stdio::inherit()).output()?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(out.status.success(), "pincer {args:?} failed");
        Ok((ms, out.stdout.len()))
    };
    let (json_ms, json_bytes) = whole(&["cron", "list", "--json"])?;
    let (all_ms, _) = whole(&["cron", "list", "--all", "--json"])?;
    let (table_ms, _) = whole(&["cron", "list"])?;
    eprintln!(
        "bench: cron list --json {json_ms:.0} ms ({:.0} MB), --all --json {all_ms:.0} ms, table {table_ms:.0} ms; {adds} cron.add",
        json_bytes as f64 / 1e6
    );
    let (added, secs) =
        rt.block_on(add_pipelined(&p.url(), adds, clients, window, "pincer", Duration::from_secs(300)))?;
    let p_add_rate = added as f64 / secs;
    drop(p);

    // OpenClaw: as many jobs as it adds in the same way within two minutes, then its pages.
    let o = match &b.openclaw {
        Some(oc) => {
            let o = start_openclaw(oc, &b.dir("o-jobs"), json!({}))?;
            let want = if b.quick { 200 } else { 2_000 };
            eprintln!("bench: OpenClaw: {want} cron.add (8 connections × 16 in flight, at most 120 s)");
            let r = rt.block_on(async {
                let (added, secs) =
                    add_pipelined(&o.url(), want, clients, window, "openclaw", Duration::from_secs(120)).await?;
                let mut c = RawClient::connect(&o.url(), cli_connect_params(Some(TOKEN), &["operator.read"])).await?.0;
                c.wait_up_to(Duration::from_secs(60));
                let (first, _) = page_ms(&mut c, 0, limit, 5).await?;
                let (last, _) = page_ms(&mut c, added.saturating_sub(limit as usize) as u64, limit, 5).await?;
                anyhow::Ok((added, secs, first, last))
            });
            match r {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("bench: OpenClaw jobs run failed: {e}");
                    None
                }
            }
        }
        None => None,
    };
    let o_note = "not measured: OpenClaw was not run";
    let o_jobs = o.map(|(added, ..)| added).unwrap_or(0);
    b.rows.push(
        Row::new(SECTION, format!("`cron.list` page of {limit} at offset 0 ({n} jobs; OpenClaw {o_jobs})"), "ms")
            .pincer(pages[0])
            .openclaw(o.map(|(.., first, _)| first))
            .target("< 5 ms")
            .note(o_note),
    );
    b.rows.push(
        Row::new(SECTION, format!("`cron.list` page of {limit} at offset {}", offsets[1]), "ms")
            .pincer(pages[1])
            .target("< 5 ms")
            .note("-"),
    );
    b.rows.push(
        Row::new(
            SECTION,
            format!("`cron.list` page of {limit} at offset {} (the last; OpenClaw its last)", offsets[2]),
            "ms",
        )
        .pincer(pages[2])
        .openclaw(o.map(|(.., last)| last))
        .target("< 5 ms")
        .note(o_note),
    );
    b.rows.push(
        Row::new(SECTION, format!("Whole `pincer cron list --json` ({enabled} enabled jobs)"), "ms")
            .pincer(json_ms)
            .target("< 2000 ms")
            .note("-"),
    );
    b.rows.push(
        Row::new(SECTION, format!("Whole `pincer cron list --all --json` ({n} jobs)"), "ms").pincer(all_ms).note("-"),
    );
    b.rows.push(
        Row::new(SECTION, format!("Whole `pincer cron list` table ({enabled} jobs)"), "ms").pincer(table_ms).note("-"),
    );
    b.rows.push(
        Row::new(
            SECTION,
            format!("`cron.add` throughput, {adds} jobs over {clients} connections × {window} in flight (Pincer on top of {n})"),
            "jobs/s",
        )
        .pincer(p_add_rate)
        .openclaw(o.map(|(added, secs, ..)| added as f64 / secs))
        .higher_is_better()
        .note(o_note),
    );
    Ok(())
}
