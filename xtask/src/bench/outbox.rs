//! Outbox benchmarks against a fake Telegram Bot API on 127.0.0.1 (OpenClaw documents
//! `channels.telegram.apiRoot`, so both systems send to the same fake): throughput of `send`, a
//! backlog accepted while Telegram was down surviving `kill -9`, and 10,000 pending rows recovered;
//! then Pincer's durable delivery to local sinks (its inbox, the webhook adapter against a fake
//! receiver) with many requests in flight.

use std::time::{Duration, Instant};

use pincer_testkit::fakes::discord::FakeDiscord;
use pincer_testkit::fakes::telegram::FakeTelegram;
use pincer_testkit::fakes::webhook::FakeWebhook;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use super::gateway::{Gateway, TOKEN, free_port, start_openclaw, start_pincer};
use super::{Bench, Row};

fn pincer_config(api_root: &str) -> Value {
    // Pincer paces Telegram at 25 messages/s by default; the throughput run measures the engine.
    json!({
        "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": api_root } },
        "delivery": { "rateLimits": { "telegram": 0 } },
    })
}

fn discord_config(fake: &FakeDiscord) -> Value {
    json!({
        "channels": { "discord": { "token": FakeDiscord::TOKEN, "apiBaseUrl": fake.base_url() } },
        "delivery": { "rateLimits": { "discord": 0 } },
    })
}

fn openclaw_config(api_root: &str) -> Value {
    json!({ "channels": { "telegram": { "enabled": true, "botToken": FakeTelegram::TOKEN, "apiRoot": api_root } } })
}

/// Sends `n` messages with the `send` method from `clients` connections at once (10 chats);
/// returns the errors.
async fn send_all(url: &str, n: usize, clients: usize, tag: &str) -> anyhow::Result<usize> {
    send_to(url, n, clients, tag, "telegram", |i| format!("{}", 1000 + i % 10)).await
}

/// [`send_all`] to any channel; `to(i)` names the target of message `i`.
async fn send_to(
    url: &str,
    n: usize,
    clients: usize,
    tag: &str,
    channel: &'static str,
    to: fn(usize) -> String,
) -> anyhow::Result<usize> {
    let mut tasks = Vec::new();
    for k in 0..clients {
        let url = url.to_string();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(&url, cli_connect_params(Some(TOKEN), &["operator.write"])).await?.0;
            let mut errors = 0;
            for i in (k..n).step_by(clients) {
                let params = json!({"channel": channel, "to": to(i),
                    "message": format!("{tag} {i}"), "idempotencyKey": format!("{tag}-{i}")});
                if c.call("send", params).await.is_err() {
                    errors += 1;
                }
            }
            anyhow::Ok(errors)
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await??;
    }
    Ok(errors)
}

/// Waits until the fake holds `n` messages tagged `tag`, or `limit` passes; returns how many
/// arrived, the time of the first and of the last arrival (from `since`).
async fn arrivals(
    fake: &FakeTelegram,
    tag: &str,
    n: usize,
    since: Instant,
    limit: Duration,
) -> (usize, Option<f64>, f64) {
    let prefix = format!("{tag} ");
    arrivals_by(|| fake.messages().iter().filter(|m| m.text.starts_with(&prefix)).count(), n, since, limit).await
}

/// [`arrivals`] with any way of counting what arrived.
async fn arrivals_by(got: impl Fn() -> usize, n: usize, since: Instant, limit: Duration) -> (usize, Option<f64>, f64) {
    let mut first = None;
    loop {
        let got = got();
        let at = since.elapsed().as_secs_f64() * 1000.0;
        if got > 0 && first.is_none() {
            first = Some(at);
        }
        if got >= n || since.elapsed() > limit {
            return (got, first, at);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn duplicates(fake: &FakeTelegram, tag: &str) -> usize {
    let prefix = format!("{tag} ");
    let mut texts: Vec<String> =
        fake.messages().into_iter().map(|m| m.text).filter(|t| t.starts_with(&prefix)).collect();
    let all = texts.len();
    texts.sort();
    texts.dedup();
    all - texts.len()
}

/// Sends `n` messages with `send` over `clients` connections, each keeping up to `window`
/// requests in flight (the gateway answers a connection's requests concurrently); returns the
/// errors.
async fn send_pipelined(
    url: &str,
    n: usize,
    clients: usize,
    window: usize,
    tag: &str,
    channel: &'static str,
    to: impl Fn(usize) -> String + Clone + Send + 'static,
) -> anyhow::Result<usize> {
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (url, tag, to) = (url.to_string(), tag.to_string(), to.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(&url, cli_connect_params(Some(TOKEN), &["operator.write"])).await?.0;
            let mut todo = (k..n).step_by(clients);
            let (mut in_flight, mut errors, mut more) = (0usize, 0usize, true);
            loop {
                while more && in_flight < window {
                    match todo.next() {
                        Some(i) => {
                            let params = json!({"channel": channel, "to": to(i),
                                "message": format!("{tag} {i}"), "idempotencyKey": format!("{tag}-{i}")});
                            c.send_text(
                                json!({"type": "req", "id": format!("{tag}-{i}"), "method": "send", "params": params})
                                    .to_string(),
                            )
                            .await?;
                            in_flight += 1;
                        }
                        None => more = false,
                    }
                }
                if in_flight == 0 {
                    return anyhow::Ok(errors);
                }
                let frame = c.next_frame().await?;
                if frame["type"] == "res" {
                    in_flight -= 1;
                    if frame["ok"] != true {
                        errors += 1;
                    }
                }
            }
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await??;
    }
    Ok(errors)
}

/// Messages the gateway has delivered on `channel`, from `deliveries.list`.
async fn delivered_on(c: &mut RawClient, channel: &str) -> usize {
    let page = c.call("deliveries.list", json!({"state": "delivered", "channel": channel, "limit": 1})).await;
    page.ok().and_then(|p| p["total"].as_u64()).unwrap_or(0) as usize
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let rt = Bench::runtime();
    let fake = rt.block_on(FakeTelegram::start());
    throughput(b, &rt, &fake)?;
    local_sinks(b, &rt)?;
    backlog_across_kill(b, &rt, &fake)?;
    seeded_recovery(b, &rt)
}

/// Only the durable delivery to local sinks (`--only sinks`).
pub fn sinks(b: &mut Bench) -> anyhow::Result<()> {
    local_sinks(b, &Bench::runtime())
}

/// `n` messages through `send`, from the first request to the last message at the fake.
fn throughput(b: &mut Bench, rt: &tokio::runtime::Runtime, fake: &FakeTelegram) -> anyhow::Result<()> {
    let n = if b.quick { 500 } else { 2_000 };
    eprintln!("bench: outbox throughput, {n} messages via `send` to a fake Telegram (8 connections, 10 chats)");
    let measure = |gw: &Gateway, tag: &str| -> anyhow::Result<(f64, usize, usize)> {
        rt.block_on(async {
            let started = Instant::now();
            let errors = send_all(&gw.url(), n, 8, tag).await?;
            let (got, _, last_ms) = arrivals(fake, tag, n - errors, started, Duration::from_secs(300)).await;
            anyhow::Ok((got as f64 / (last_ms / 1000.0), errors, got))
        })
    };
    let p = start_pincer(&b.pincer, &b.dir("p-outbox"), pincer_config(&fake.base_url()))?;
    let (p_rate, p_err, p_got) = measure(&p, "pincer-tp")?;
    drop(p);
    // The same into a fake Discord (Pincer only: OpenClaw's Discord REST base cannot be changed).
    let discord = rt.block_on(FakeDiscord::start());
    let p = start_pincer(&b.pincer, &b.dir("p-outbox-discord"), discord_config(&discord))?;
    let d_rate = rt.block_on(async {
        let started = Instant::now();
        let errors = send_to(&p.url(), n, 8, "discord-tp", "discord", |i| format!("channel:{}", 3000 + i % 10)).await?;
        let (got, _, last_ms) =
            arrivals_by(|| discord.messages().len(), n - errors, started, Duration::from_secs(300)).await;
        anyhow::Ok(got as f64 / (last_ms / 1000.0))
    })?;
    drop(p);
    let o = match &b.openclaw {
        Some(oc) => {
            let o = start_openclaw(oc, &b.dir("o-outbox"), openclaw_config(&fake.base_url()))?;
            let r = measure(&o, "openclaw-tp")?;
            Some(r)
        }
        None => None,
    };
    eprintln!("bench: Pincer {p_got}/{n} delivered ({p_err} errors), OpenClaw {:?}", o.map(|(_, e, g)| (g, e)));
    b.rows.push(
        Row::new("Outbox", format!("Throughput, {n} messages via `send`, fake Telegram"), "msg/s")
            .pincer(p_rate)
            .openclaw(o.map(|(r, _, _)| r))
            .higher_is_better()
            .target("≥ 1000 msg/s"),
    );
    b.rows.push(
        Row::new("Outbox", format!("Throughput, {n} messages via `send`, fake Discord"), "msg/s")
            .pincer(d_rate)
            .higher_is_better()
            .note("not measured: its Discord API base is fixed"),
    );
    b.rows.push(
        Row::new("Outbox", format!("`send` errors of {n}"), "errors")
            .pincer(p_err as f64)
            .openclaw(o.map(|(_, e, _)| e as f64))
            .count()
            .target("0"),
    );
    Ok(())
}

/// Conversations of the local-sink runs: the default `delivery.maxParallel`, so every send slot
/// is busy.
const SINK_CONVERSATIONS: usize = 16;

/// Durable delivery to local sinks: `n` messages via `send` (8 connections × 32 in flight) to 16
/// inboxes, and to 16 webhook URLs of a fake receiver; from the first request to the last message
/// delivered. Each message is committed before it is acknowledged and delivered with its
/// `dispatching` and `sent` commits, as always. OpenClaw has neither sink for `send`.
fn local_sinks(b: &mut Bench, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let n = if b.quick { 2_000 } else { 10_000 };
    let (clients, window) = (8, 32);
    eprintln!(
        "bench: durable delivery, {n} messages via `send` ({clients} connections × {window} in flight) to the inbox"
    );
    let p = start_pincer(&b.pincer, &b.dir("p-sink-inbox"), json!({}))?;
    let (inbox_rate, inbox_err) = rt.block_on(async {
        let mut watcher = RawClient::connect(&p.url(), cli_connect_params(Some(TOKEN), &["operator.read"])).await?.0;
        let started = Instant::now();
        let to = |i: usize| format!("inbox-{}", i % SINK_CONVERSATIONS);
        let errors = send_pipelined(&p.url(), n, clients, window, "inbox-tp", "inbox", to).await?;
        let mut last = 0usize;
        while last < n - errors && started.elapsed() < Duration::from_secs(300) {
            last = delivered_on(&mut watcher, "inbox").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok((last as f64 / started.elapsed().as_secs_f64(), errors))
    })?;
    drop(p);
    eprintln!("bench: durable delivery, {n} messages via `send` to 16 webhook URLs of a fake receiver");
    let hook = rt.block_on(FakeWebhook::start());
    let config = json!({"channels": {"webhook": {"allowPrivateNetwork": true}}});
    let p = start_pincer(&b.pincer, &b.dir("p-sink-webhook"), config)?;
    let base = hook.base_url();
    let (hook_rate, hook_err) = rt.block_on(async {
        let started = Instant::now();
        let to = move |i: usize| format!("{base}/hook/{}", i % SINK_CONVERSATIONS);
        let errors = send_pipelined(&p.url(), n, clients, window, "hook-tp", "webhook", to).await?;
        let (got, _, last_ms) = arrivals_by(|| hook.delivered(), n - errors, started, Duration::from_secs(300)).await;
        anyhow::Ok((got as f64 / (last_ms / 1000.0), errors))
    })?;
    drop(p);
    eprintln!(
        "bench: inbox {inbox_rate:.0} msg/s ({inbox_err} errors), webhook {hook_rate:.0} msg/s ({hook_err} errors)"
    );
    let note = "not measured: `send` has no local sink in OpenClaw";
    b.rows.push(
        Row::new(
            "Outbox",
            format!("Durable delivery, {n} messages via `send` to the inbox (16 conversations)"),
            "msg/s",
        )
        .pincer(inbox_rate)
        .higher_is_better()
        .target("≥ 5000 msg/s")
        .note(note),
    );
    b.rows.push(
        Row::new("Outbox", format!("Durable delivery, {n} messages via `send` to a local webhook (16 URLs)"), "msg/s")
            .pincer(hook_rate)
            .higher_is_better()
            .target("≥ 5000 msg/s")
            .note(note),
    );
    b.rows.push(
        Row::new("Outbox", format!("`send` errors of {n} (inbox and webhook)"), "errors")
            .pincer((inbox_err + hook_err) as f64)
            .count()
            .target("0")
            .note(note),
    );
    Ok(())
}

/// 200 messages accepted while Telegram is down, `kill -9`, Telegram back, restart: how many
/// arrive, how soon, and how many twice.
fn backlog_across_kill(b: &mut Bench, rt: &tokio::runtime::Runtime, fake: &FakeTelegram) -> anyhow::Result<()> {
    let n = if b.quick { 50 } else { 200 };
    let limit = Duration::from_secs(if b.quick { 60 } else { 180 });
    eprintln!("bench: {n} messages sent while Telegram is down, kill -9, Telegram back, restart (up to {limit:?})");
    let down = format!("http://127.0.0.1:{}", free_port());
    let run = |openclaw: bool, tag: &str| -> anyhow::Result<(usize, Option<f64>, f64)> {
        let state = b.dir(&format!("{tag}-state"));
        let start = |api: &str| match (&b.openclaw, openclaw) {
            (Some(oc), true) => start_openclaw(oc, &state, openclaw_config(api)),
            _ => start_pincer(&b.pincer, &state, pincer_config(api)),
        };
        let mut gw = start(&down)?;
        // OpenClaw answers `send` only after its attempt failed; Pincer once the row is durable.
        let _ = rt.block_on(send_all(&gw.url(), n, 8, tag))?;
        gw.child.kill()?;
        let _ = gw.child.wait();
        drop(gw);
        let started = Instant::now();
        let gw = start(&fake.base_url())?;
        let r = rt.block_on(arrivals(fake, tag, n, started, limit));
        drop(gw);
        Ok(r)
    };
    let (p_got, p_first, p_all) = run(false, "pincer-kill")?;
    let p_dup = duplicates(fake, "pincer-kill");
    let o = if b.openclaw.is_some() { Some(run(true, "openclaw-kill")?) } else { None };
    let o_dup = o.map(|_| duplicates(fake, "openclaw-kill"));
    eprintln!("bench: backlog after kill -9: Pincer {p_got}/{n} ({p_dup} twice), OpenClaw {o:?} ({o_dup:?} twice)");
    b.rows.push(
        Row::new(
            "Outbox",
            format!("Backlog of {n} accepted while Telegram was down, then `kill -9`: delivered after restart"),
            "msgs",
        )
        .pincer(p_got as f64)
        .openclaw(o.map(|(g, _, _)| g as f64))
        .count()
        .target("all"),
    );
    b.rows.push(
        Row::new("Outbox", "… of which delivered twice", "msgs")
            .pincer(p_dup as f64)
            .openclaw(o_dup.map(|d| d as f64))
            .count()
            .target("0"),
    );
    b.rows.push(
        Row::new("Outbox", "… restart to first delivery", "ms")
            .pincer(p_first.unwrap_or(f64::NAN))
            .openclaw(o.and_then(|(_, f, _)| f))
            .note("nothing delivered"),
    );
    let all = |got: usize, at: f64| if got >= n { at } else { f64::NAN };
    b.rows.push(
        Row::new("Outbox", "… restart to last delivery", "ms")
            .pincer(all(p_got, p_all))
            .openclaw(o.and_then(|(g, _, at)| (g >= n).then_some(at)))
            .note("not all delivered in the time limit"),
    );
    Ok(())
}

/// 10,000 rows pending in a stopped gateway's outbox, for a fake Discord: from ready to the first
/// resend and to the last delivery.
fn seeded_recovery(b: &mut Bench, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let n: usize = if b.quick { 2_000 } else { 10_000 };
    eprintln!("bench: restart with {n} pending outbox rows (fake Discord)");
    let fake = rt.block_on(FakeDiscord::start());
    let state = b.dir("p-recovery");
    std::fs::create_dir_all(&state)?;
    {
        let store = pincer_store::Store::open(&state.join("pincer.db"))?;
        store.write_blocking(move |tx| {
            for i in 0..n {
                let text = format!("seeded {i}");
                tx.enqueue_delivery(&pincer_store::NewDelivery {
                    id: format!("seed-{i:05}"),
                    idempotency_key: format!("seed:{i}"),
                    origin_kind: pincer_protocol::state::OriginKind::Send,
                    origin_id: None,
                    channel: "discord".into(),
                    account_id: None,
                    target: format!("channel:{}", 2000 + i % 100),
                    thread_id: None,
                    max_attempts: 5,
                    best_effort: false,
                    body: text.clone(),
                    parts: vec![(text, format!("n{i:05}"))],
                    created_at_ms: 1_000,
                })?;
            }
            Ok(())
        })?;
        store.close();
    }
    let started = Instant::now();
    let gw = start_pincer(&b.pincer, &state, discord_config(&fake))?;
    let ready = gw.ready_ms;
    let (got, first, last) = rt.block_on(arrivals_by(|| fake.messages().len(), n, started, Duration::from_secs(600)));
    drop(gw);
    eprintln!("bench: {got}/{n} seeded rows delivered; ready {ready:.0} ms, first {first:?} ms, last {last:.0} ms");
    let note = "not measured: its queue rows are private JSON; see the kill -9 backlog above";
    b.rows.push(
        Row::new("Outbox", format!("Restart with {n} pending rows: ready to first resend"), "ms")
            .pincer(first.map_or(f64::NAN, |f| (f - ready).max(0.0)))
            .target("< 100 ms")
            .note(note),
    );
    b.rows.push(
        Row::new("Outbox", format!("Restart with {n} pending rows: start to all delivered"), "ms")
            .pincer(if got >= n { last } else { f64::NAN })
            .target("< 60 s")
            .note(note),
    );
    Ok(())
}
