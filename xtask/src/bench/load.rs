//! Load and soak: many WebSocket clients issuing mixed read requests on loopback.
//!
//! - `cargo xtask load [--clients 1000] [--secs 60] [--hostile-secs 30] [--no-openclaw]` prints
//!   p50/p99 latency, errors and memory growth for Pincer (and OpenClaw under the same load), then
//!   the hostile rows: 100 honest clients working while 1,000 slowloris sockets and 40 senders of
//!   25 MB pre-hello frames attack, with the gateway's RSS sampled throughout.
//! - `cargo xtask soak [--minutes 60]` runs Pincer for an hour under steady traffic (reads, a job
//!   every minute announcing to the inbox, a `send` every second to a fake Telegram) and prints
//!   the RSS every minute and the drift. Not part of CI.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pincer_testkit::fakes::telegram::FakeTelegram;
use pincer_testkit::ws::{Incoming, RawClient, cli_connect_params, client_frame_header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let (conns, connect_errors) = rt.block_on(connect_clients(&gw.url(), clients));
    let (latencies, errors) = rt.block_on(work(conns, secs));
    LoadResult {
        requests: latencies.len() + errors,
        errors,
        connect_errors,
        p50_ms: percentile(latencies.clone(), 50.0),
        p99_ms: percentile(latencies, 99.0),
        rss_before_mib,
        rss_after_mib: rss(gw),
    }
}

/// Connects `clients` read-only clients (in batches, so the handshakes do not all time out at
/// once); returns them and how many failed to connect.
async fn connect_clients(url: &str, clients: usize) -> (Vec<RawClient>, usize) {
    let mut conns = Vec::new();
    let mut failed = 0;
    for chunk in (0..clients).collect::<Vec<_>>().chunks(50) {
        let mut batch = Vec::new();
        for _ in chunk {
            let url = url.to_string();
            batch.push(tokio::spawn(async move {
                RawClient::connect(&url, cli_connect_params(Some(TOKEN), &["operator.read"])).await.map(|c| c.0)
            }));
        }
        for t in batch {
            match t.await {
                Ok(Ok(c)) => conns.push(c),
                _ => failed += 1,
            }
        }
    }
    (conns, failed)
}

/// Each connection issues one read per second (random phase) for `secs`; the latencies of the
/// answers (ms) and the number of errors and 10 s timeouts.
async fn work(conns: Vec<RawClient>, secs: u64) -> (Vec<f64>, usize) {
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
}

/// Honest clients working while the gateway port is attacked.
pub const HONEST_CLIENTS: usize = 100;
/// Sockets that open a request and never finish it (slowloris).
pub const SLOWLORIS_SOCKETS: usize = 1_000;
/// Sockets that upgrade and then send one 25 MB frame before `hello-ok`.
pub const BIG_FRAME_SENDERS: usize = 40;
const BIG_FRAME_BYTES: u64 = 25_000_000;

pub struct HostileResult {
    pub honest: LoadResult,
    pub rss_peak_mib: f64,
    /// Slowloris sockets opened in all (each reopens a second after the gateway closes it).
    pub slow_opened: u64,
    /// ... refused at once with HTTP 503.
    pub slow_refused: u64,
    /// ... held open by the gateway, then closed by it (header timeout).
    pub slow_timed_out: u64,
    /// Longest a slowloris socket was held open before the gateway closed it.
    pub slow_longest_s: f64,
    /// Slowloris sockets still open when the run ended (held, not yet timed out).
    pub slow_open_at_end: u64,
    /// 25 MB frames sent (attempts).
    pub big_sent: u64,
    /// ... answered by a close 1009 "preauth payload too large".
    pub big_closed_1009: u64,
    /// Most payload bytes one attempt pushed into the socket before the gateway closed it.
    pub big_max_bytes: u64,
}

#[derive(Default)]
struct Tally {
    slow_opened: AtomicU64,
    slow_refused: AtomicU64,
    slow_timed_out: AtomicU64,
    slow_longest_ms: AtomicU64,
    slow_open_now: AtomicU64,
    big_sent: AtomicU64,
    big_closed_1009: AtomicU64,
    big_max_bytes: AtomicU64,
}

/// A TCP connection to `addr` from the loopback address `from` (each attacker its own address,
/// as separate hosts would be; the honest clients stay on 127.0.0.1).
async fn connect_from(addr: SocketAddr, from: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    socket.connect(addr).await
}

/// One slowloris socket, reopened a second after the gateway drops it: a request head that gets a
/// line every 2 s and is never finished.
async fn slowloris(addr: SocketAddr, from: IpAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tcp) = connect_from(addr, from).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        tally.slow_opened.fetch_add(1, Ordering::Relaxed);
        tally.slow_open_now.fetch_add(1, Ordering::Relaxed);
        let opened = Instant::now();
        let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
        let mut buf = [0u8; 512];
        let mut answer = Vec::new();
        let closed = loop {
            tokio::select! {
                read = tcp.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    if stop.load(Ordering::Relaxed) {
                        break false;
                    }
                    let _ = tcp.write_all(b"X-Slow: 1\r\n").await;
                }
            }
        };
        tally.slow_open_now.fetch_sub(1, Ordering::Relaxed);
        if !closed {
            tally.slow_open_now.fetch_add(1, Ordering::Relaxed);
            // Counted as open at the end: the run stopped first.
            return;
        }
        if answer.starts_with(b"HTTP/1.1 503") {
            tally.slow_refused.fetch_add(1, Ordering::Relaxed);
        } else {
            tally.slow_timed_out.fetch_add(1, Ordering::Relaxed);
            tally.slow_longest_ms.fetch_max(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        drop(tcp);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One sender of 25 MB frames before `hello-ok`, again half a second after each is refused.
async fn big_frames(url: String, from: IpAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let chunk = vec![b'x'; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut c) = RawClient::open_with(&url, Some(from), &[]).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if c.next_frame().await.is_err() {
            continue;
        }
        tally.big_sent.fetch_add(1, Ordering::Relaxed);
        let _ = c.send_raw(&client_frame_header(true, 1, BIG_FRAME_BYTES)).await;
        let mut pushed = 0u64;
        while pushed < BIG_FRAME_BYTES && !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_secs(5), c.send_raw(&chunk)).await {
                Ok(Ok(())) => pushed += chunk.len() as u64,
                _ => break,
            }
        }
        tally.big_max_bytes.fetch_max(pushed, Ordering::Relaxed);
        if let Ok(Incoming::Closed(Some(1009), reason)) = c.next().await
            && reason == "preauth payload too large"
        {
            tally.big_closed_1009.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// 100 honest clients read for `secs` while the port is attacked; the gateway's RSS is sampled
/// every 100 ms from before the attack to its end.
pub fn hostile(rt: &tokio::runtime::Runtime, gw: &Gateway, secs: u64, tree: bool) -> HostileResult {
    let pid = gw.child.id();
    let rss = move || (if tree { tree_rss_kib(pid) } else { rss_kib(pid) }) as f64 / 1024.0;
    let rss_before_mib = rss();
    let url = gw.url();
    let addr: SocketAddr = ([127, 0, 0, 1], gw.port).into();
    let (conns, connect_errors) = rt.block_on(connect_clients(&url, HONEST_CLIENTS));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0f64;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    let attackers: Vec<_> = (0..SLOWLORIS_SOCKETS)
        .map(|_| rt.spawn(slowloris(addr, [127, 0, 0, 2].into(), stop.clone(), tally.clone())))
        .chain(
            (0..BIG_FRAME_SENDERS)
                .map(|_| rt.spawn(big_frames(url.clone(), [127, 0, 0, 3].into(), stop.clone(), tally.clone()))),
        )
        .collect();
    let (latencies, errors) = rt.block_on(work(conns, secs));
    let rss_after_mib = rss();
    stop.store(true, Ordering::Relaxed);
    let rss_peak_mib = sampler.join().unwrap_or(0.0).max(rss_after_mib);
    rt.block_on(async {
        for a in attackers {
            let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
        }
    });
    let t = |c: &AtomicU64| c.load(Ordering::Relaxed);
    HostileResult {
        honest: LoadResult {
            requests: latencies.len() + errors,
            errors,
            connect_errors,
            p50_ms: percentile(latencies.clone(), 50.0),
            p99_ms: percentile(latencies, 99.0),
            rss_before_mib,
            rss_after_mib,
        },
        rss_peak_mib,
        slow_opened: t(&tally.slow_opened),
        slow_refused: t(&tally.slow_refused),
        slow_timed_out: t(&tally.slow_timed_out),
        slow_longest_s: t(&tally.slow_longest_ms) as f64 / 1000.0,
        slow_open_at_end: t(&tally.slow_open_now),
        big_sent: t(&tally.big_sent),
        big_closed_1009: t(&tally.big_closed_1009),
        big_max_bytes: t(&tally.big_max_bytes),
    }
}

fn print_hostile(results: &[(&str, HostileResult)], secs: u64) {
    println!(
        "\nHostile: {HONEST_CLIENTS} honest clients × 1 read/s for {secs} s, while {SLOWLORIS_SOCKETS} slowloris sockets (from 127.0.0.2, each reopened 1 s after it is dropped) and {BIG_FRAME_SENDERS} senders of 25 MB pre-hello frames (from 127.0.0.3) attack\n"
    );
    println!(
        "| System | Honest requests | Honest errors | Honest p50 | Honest p99 | RSS before → peak → after | Slowloris opened / refused 503 / closed by timeout (longest held) / open at end | 25 MB frames sent / closed 1009 / most bytes pushed |"
    );
    println!("|---|---:|---:|---:|---:|---|---|---|");
    for (name, r) in results {
        let h = &r.honest;
        println!(
            "| {name} | {} | {} | {:.2} ms | {:.2} ms | {:.1} → {:.1} → {:.1} MB | {} / {} / {} ({:.1} s) / {} | {} / {} / {:.1} MB |",
            h.requests,
            h.errors + h.connect_errors,
            h.p50_ms,
            h.p99_ms,
            h.rss_before_mib,
            r.rss_peak_mib,
            h.rss_after_mib,
            r.slow_opened,
            r.slow_refused,
            r.slow_timed_out,
            r.slow_longest_s,
            r.slow_open_at_end,
            r.big_sent,
            r.big_closed_1009,
            r.big_max_bytes as f64 / 1e6,
        );
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
    // The hostile rows: honest clients while slowloris sockets and 25 MB pre-hello frames attack.
    let hostile_secs = if b.quick { 10 } else { 30 };
    eprintln!("bench: load, hostile: {HONEST_CLIENTS} honest clients for {hostile_secs} s under attack");
    let p = start_pincer(&b.pincer, &b.dir("p-hostile"), json!({}))?;
    let ph = hostile(&rt, &p, hostile_secs, false);
    drop(p);
    let oh = match &b.openclaw {
        Some(oc) => {
            let o = start_openclaw(oc, &b.dir("o-hostile"), json!({}))?;
            Some(hostile(&rt, &o, hostile_secs, true))
        }
        None => None,
    };
    let hostile_label = |what: &str| {
        format!(
            "{what} ({HONEST_CLIENTS} honest clients; {SLOWLORIS_SOCKETS} slowloris sockets and {BIG_FRAME_SENDERS} × 25 MB pre-hello frames attacking; {hostile_secs} s)"
        )
    };
    b.rows.push(
        Row::new(section, hostile_label("Honest latency p99 under attack"), "ms")
            .pincer(ph.honest.p99_ms)
            .openclaw(oh.as_ref().map(|r| r.honest.p99_ms))
            .target("< 50 ms"),
    );
    b.rows.push(
        Row::new(section, "Honest errors under attack (incl. failed connects)", "errors")
            .pincer((ph.honest.errors + ph.honest.connect_errors) as f64)
            .openclaw(oh.as_ref().map(|r| (r.honest.errors + r.honest.connect_errors) as f64))
            .count()
            .target("0"),
    );
    b.rows.push(
        Row::new(section, "Peak RSS under attack (sampled every 100 ms)", "MB")
            .pincer(ph.rss_peak_mib)
            .openclaw(oh.as_ref().map(|r| r.rss_peak_mib))
            .target("< 100 MB"),
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
    let hostile_secs = flag(args, "--hostile-secs", 30)?;
    let only_hostile = args.iter().any(|a| a == "--only-hostile");
    let with_openclaw = !args.iter().any(|a| a == "--no-openclaw");
    raise_fd_limit();
    let pincer = build_release(root)?;
    let work = root.join("target/load");
    let _ = std::fs::remove_dir_all(&work);
    let rt = Bench::runtime();
    let oc = if with_openclaw { Some(crate::openclaw::ensure(root)?) } else { None };
    if !only_hostile {
        let mut results = vec![];
        eprintln!("load: {clients} clients × 1 read/s for {secs} s against Pincer");
        let p = start_pincer(&pincer, &work.join("pincer"), json!({}))?;
        results.push(("Pincer", drive(&rt, &p, clients, secs, false)));
        drop(p);
        if let Some(oc) = &oc {
            eprintln!("load: the same against OpenClaw 2026.9.6");
            let o = start_openclaw(oc, &work.join("openclaw"), json!({}))?;
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
    }
    if hostile_secs == 0 {
        return Ok(());
    }
    let mut hostile_results = vec![];
    eprintln!("load: hostile, {HONEST_CLIENTS} honest clients for {hostile_secs} s under attack, against Pincer");
    let p = start_pincer(&pincer, &work.join("pincer-hostile"), json!({}))?;
    hostile_results.push(("Pincer", hostile(&rt, &p, hostile_secs, false)));
    drop(p);
    if let Some(oc) = &oc {
        eprintln!("load: hostile, the same against OpenClaw 2026.9.6");
        let o = start_openclaw(oc, &work.join("openclaw-hostile"), json!({}))?;
        hostile_results.push(("OpenClaw", hostile(&rt, &o, hostile_secs, true)));
    }
    print_hostile(&hostile_results, hostile_secs);
    let pincer = &hostile_results[0].1;
    anyhow::ensure!(
        pincer.honest.errors + pincer.honest.connect_errors == 0,
        "Pincer's honest clients had {} errors under attack (target: 0)",
        pincer.honest.errors + pincer.honest.connect_errors
    );
    anyhow::ensure!(
        pincer.rss_peak_mib < HOSTILE_RSS_TARGET_MIB,
        "Pincer's RSS peaked at {:.1} MB under attack (target: < {HOSTILE_RSS_TARGET_MIB} MB)",
        pincer.rss_peak_mib
    );
    Ok(())
}

/// Most RSS the gateway may reach under the hostile run.
const HOSTILE_RSS_TARGET_MIB: f64 = 100.0;

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
