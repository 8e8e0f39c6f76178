//! Load and soak: many WebSocket clients issuing mixed read requests on loopback.
//!
//! - `cargo xtask load [--clients 1000] [--secs 60] [--no-openclaw]` prints p50/p99 latency,
//!   errors and memory growth for Pincer (and OpenClaw under the same load).
//! - `cargo xtask soak [--minutes 60]` runs Pincer for an hour under steady traffic (reads, a job
//!   every minute announcing to the inbox, a `send` every second to a fake Telegram) and prints
//!   the RSS every minute and the drift. Not part of CI.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pincer_testkit::fakes::telegram::FakeTelegram;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::json;

use super::gateway::{Gateway, TOKEN, metric, rss_kib, start_openclaw, start_pincer, tree_rss_kib};
use super::{Bench, Row, build_release, percentile, raise_fd_limit};

/// Read methods both gateways serve.
const READS: [&str; 4] = ["health", "status", "cron.list", "cron.status"];

pub struct LoadResult {
    pub requests: usize,
    pub errors: usize,
    pub connect_errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
}

/// `clients` connections, each issuing one read per second (random phase) for `secs`.
pub fn drive(rt: &tokio::runtime::Runtime, gw: &Gateway, clients: usize, secs: u64, tree: bool) -> LoadResult {
    let rss = |gw: &Gateway| {
        let kib = if tree { tree_rss_kib(gw.child.id()) } else { rss_kib(gw.child.id()) };
        kib as f64 / 1024.0
    };
    let rss_before_mib = rss(gw);
    let url = gw.url();
    let connect_errors = Arc::new(AtomicU64::new(0));
    let (latencies, errors) = rt.block_on(async {
        // Connect everyone first (in batches, so the handshakes do not all time out at once).
        let mut conns = Vec::new();
        for chunk in (0..clients).collect::<Vec<_>>().chunks(50) {
            let mut batch = Vec::new();
            for _ in chunk {
                let url = url.clone();
                batch.push(tokio::spawn(async move {
                    RawClient::connect(&url, cli_connect_params(Some(TOKEN), &["operator.read"])).await.map(|c| c.0)
                }));
            }
            for t in batch {
                match t.await {
                    Ok(Ok(c)) => conns.push(c),
                    _ => {
                        connect_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for (k, mut c) in conns.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                tokio::time::sleep(Duration::from_millis((k as u64 * 7919) % 1000)).await;
                let mut i = k;
                while Instant::now() < deadline {
                    let tick = Instant::now();
                    let method = READS[i % READS.len()];
                    i += 1;
                    let sent = Instant::now();
                    match tokio::time::timeout(Duration::from_secs(10), c.call(method, json!({}))).await {
                        Ok(Ok(_)) => lat.push(sent.elapsed().as_secs_f64() * 1000.0),
                        _ => errors += 1,
                    }
                    let next = tick + Duration::from_secs(1);
                    tokio::time::sleep_until(next.into()).await;
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            if let Ok((lat, e)) = t.await {
                all.extend(lat);
                errors += e;
            } else {
                errors += 1;
            }
        }
        (all, errors)
    });
    LoadResult {
        requests: latencies.len() + errors,
        errors,
        connect_errors: connect_errors.load(Ordering::Relaxed) as usize,
        p50_ms: percentile(latencies.clone(), 50.0),
        p99_ms: percentile(latencies, 99.0),
        rss_before_mib,
        rss_after_mib: rss(gw),
    }
}

/// The load section of BENCHMARKS.md.
pub fn bench_rows(b: &mut Bench) -> anyhow::Result<()> {
    let (clients, secs) = if b.quick { (200, 10) } else { (1_000, 60) };
    let rt = Bench::runtime();
    eprintln!("bench: load, {clients} WebSocket clients × 1 read/s for {secs} s");
    let p = start_pincer(&b.pincer, &b.dir("p-load"), json!({}))?;
    let pr = drive(&rt, &p, clients, secs, false);
    drop(p);
    let or = match &b.openclaw {
        Some(oc) => {
            let o = start_openclaw(oc, &b.dir("o-load"), json!({}))?;
            let r = drive(&rt, &o, clients, secs, true);
            Some(r)
        }
        None => None,
    };
    let section = "Load (WebSocket)";
    let label = |what: &str| format!("{what} ({clients} clients, 1 read/s each, {secs} s)");
    b.rows
        .push(Row::new(section, label("Latency p50"), "ms").pincer(pr.p50_ms).openclaw(or.as_ref().map(|r| r.p50_ms)));
    b.rows.push(
        Row::new(section, label("Latency p99"), "ms")
            .pincer(pr.p99_ms)
            .openclaw(or.as_ref().map(|r| r.p99_ms))
            .target("< 50 ms"),
    );
    b.rows.push(
        Row::new(section, "Requests answered", "reqs")
            .pincer((pr.requests - pr.errors) as f64)
            .openclaw(or.as_ref().map(|r| (r.requests - r.errors) as f64))
            .count(),
    );
    b.rows.push(
        Row::new(section, "Errors and timeouts (incl. failed connects)", "errors")
            .pincer((pr.errors + pr.connect_errors) as f64)
            .openclaw(or.as_ref().map(|r| (r.errors + r.connect_errors) as f64))
            .count()
            .target("0"),
    );
    b.rows.push(
        Row::new(section, "Memory growth under load (process tree)", "MB")
            .pincer(pr.rss_after_mib - pr.rss_before_mib)
            .openclaw(or.as_ref().map(|r| r.rss_after_mib - r.rss_before_mib))
            .count(),
    );
    Ok(())
}

fn flag(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow::anyhow!("{name} must be a whole number, got {v:?}"))
        }
        None => Ok(default),
    }
}

/// `cargo xtask load`.
pub fn load(root: &std::path::Path, args: &[String]) -> anyhow::Result<()> {
    let clients = flag(args, "--clients", 1_000)? as usize;
    let secs = flag(args, "--secs", 60)?;
    raise_fd_limit();
    let pincer = build_release(root)?;
    let work = root.join("target/load");
    let _ = std::fs::remove_dir_all(&work);
    let rt = Bench::runtime();
    let mut results = vec![];
    eprintln!("load: {clients} clients × 1 read/s for {secs} s against Pincer");
    let p = start_pincer(&pincer, &work.join("pincer"), json!({}))?;
    results.push(("Pincer", drive(&rt, &p, clients, secs, false)));
    drop(p);
    if !args.iter().any(|a| a == "--no-openclaw") {
        let oc = crate::openclaw::ensure(root)?;
        eprintln!("load: the same against OpenClaw 2026.9.6");
        let o = start_openclaw(&oc, &work.join("openclaw"), json!({}))?;
        results.push(("OpenClaw", drive(&rt, &o, clients, secs, true)));
    }
    println!("| System | Requests | Errors | Failed connects | p50 | p99 | RSS before → after |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (name, r) in &results {
        println!(
            "| {name} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.1} → {:.1} MB |",
            r.requests, r.errors, r.connect_errors, r.p50_ms, r.p99_ms, r.rss_before_mib, r.rss_after_mib
        );
    }
    let failed = results.first().is_some_and(|(_, r)| r.errors + r.connect_errors > 0);
    anyhow::ensure!(!failed, "Pincer had errors under load");
    Ok(())
}

/// `cargo xtask soak`.
pub fn soak(root: &std::path::Path, args: &[String]) -> anyhow::Result<()> {
    let minutes = flag(args, "--minutes", 60)?;
    raise_fd_limit();
    let pincer = build_release(root)?;
    // `--state DIR` runs a second soak beside the first (e.g. under another allocator setting).
    let work = match args.iter().position(|a| a == "--state") {
        Some(i) => root.join(args.get(i + 1).ok_or_else(|| anyhow::anyhow!("--state needs a directory"))?),
        None => root.join("target/soak"),
    };
    let _ = std::fs::remove_dir_all(&work);
    let rt = Bench::runtime();
    let fake = rt.block_on(FakeTelegram::start());
    let config = json!({
        "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": fake.base_url() } },
        "cron": { "runRetention": { "maxPerJob": 50 } },
    });
    let gw = start_pincer(&pincer, &work, config)?;
    let url = gw.url();
    eprintln!("soak: {minutes} min; 50 readers at 1 req/s, a job every minute, a send every second");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        rt.spawn(async move {
            let mut admin = RawClient::connect(&url, cli_connect_params(Some(TOKEN), &["operator.admin"])).await?.0;
            admin
                .call(
                    "cron.add",
                    json!({"name": "soak", "schedule": {"kind": "cron", "expr": "* * * * *", "tz": "UTC"},
                        "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["date"]},
                        "delivery": {"mode": "announce", "channel": "inbox"}}),
                )
                .await?;
            let mut readers = Vec::new();
            for k in 0..50usize {
                let url = url.clone();
                let stop = stop.clone();
                readers.push(tokio::spawn(async move {
                    let mut c = RawClient::connect(&url, cli_connect_params(Some(TOKEN), &["operator.read"])).await?.0;
                    let mut errors = 0u64;
                    let mut i = k;
                    while !stop.load(Ordering::Relaxed) {
                        if c.call(READS[i % READS.len()], json!({})).await.is_err() {
                            errors += 1;
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    anyhow::Ok(errors)
                }));
            }
            let mut i = 0u64;
            let mut send_errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let params = json!({"channel": "telegram", "to": "42", "message": format!("soak {i}"), "idempotencyKey": format!("soak-{i}")});
                if admin.call("send", params).await.is_err() {
                    send_errors += 1;
                }
                i += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut errors = send_errors;
            for r in readers {
                errors += r.await??;
            }
            anyhow::Ok((i, errors))
        })
    };
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut sqlite = Vec::new();
    for m in 0..=minutes {
        let target = started + Duration::from_secs(m * 60);
        std::thread::sleep(target.saturating_duration_since(Instant::now()));
        let mib = rss_kib(gw.child.id()) as f64 / 1024.0;
        let cache = metric(&gw.http_get("/metrics"), "pincer_store_sqlite_memory_bytes").unwrap_or(f64::NAN) / 1e6;
        let db = dir_mb(&work);
        eprintln!("soak: minute {m:3}: RSS {mib:.1} MB, of which SQLite {cache:.1} MB; database files {db:.1} MB");
        samples.push(mib);
        sqlite.push(cache);
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, errors) = rt.block_on(traffic)??;
    let delivered = fake.messages().len();
    // Drift after warm-up: the last sample against the one at minute 5 (or the first).
    let base = samples.get(5.min(samples.len() - 1)).copied().unwrap_or(0.0);
    let last = samples.last().copied().unwrap_or(0.0);
    println!("soak: {minutes} min, {sent} sends ({delivered} delivered), {errors} errors");
    println!(
        "soak: RSS {:.1} MB at start, {base:.1} MB after warm-up, {last:.1} MB at the end; drift {:+.1} MB",
        samples[0],
        last - base
    );
    // SQLite's page caches grow with the database up to cache_size per connection: growth, not a leak.
    let cache_base = sqlite.get(5.min(sqlite.len() - 1)).copied().unwrap_or(0.0);
    let cache_last = sqlite.last().copied().unwrap_or(0.0);
    println!(
        "soak: of the drift, SQLite page caches {:+.1} MB; the rest {:+.1} MB",
        cache_last - cache_base,
        (last - base) - (cache_last - cache_base)
    );
    anyhow::ensure!(errors == 0, "{errors} requests failed during the soak");
    Ok(())
}

/// Megabytes of the files directly in `dir` (the state dir: the database, its WAL, the config).
fn dir_mb(dir: &std::path::Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0);
    bytes as f64 / 1e6
}
