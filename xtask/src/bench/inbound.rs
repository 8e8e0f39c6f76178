//! Inbound chat: a gateway long-polls a fake Telegram Bot API and answers through a fake
//! OpenAI-compatible model that echoes what it was asked, both on 127.0.0.1. Measured at the fakes
//! on the wall clock: from the poll answer that handed a message over to the first byte of the
//! model request (the long-poll wait itself is not counted), and from the model's last byte to
//! the reply's `sendMessage` at the fake. Then 100 chats talk at once, several messages each, and
//! the echoed replies show whether a message was lost, answered twice or answered out of order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pincer_testkit::fakes::openai::{FakeOpenAi, new_user_text};
use pincer_testkit::fakes::telegram::{FakeTelegram, Incoming};
use serde_json::{Value, json};

use super::gateway::{start_openclaw, start_pincer};
use super::{Bench, Row, percentile};

pub const SECTION: &str = "Inbound chat";

/// The tag of message `m` of chat `c`, as the user writes it.
fn tag(c: usize, m: usize) -> String {
    format!("bench c{c} m{m}.")
}

/// Every `(chat, message)` tag in `text`, in order.
fn tags_in(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("bench c") {
        rest = &rest[at + "bench c".len()..];
        let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>();
        let c = digits(rest);
        let Some(after) = rest[c.len()..].strip_prefix(" m") else { continue };
        let m = digits(after);
        if after[m.len()..].starts_with('.')
            && let (Ok(c), Ok(m)) = (c.parse(), m.parse())
        {
            out.push((c, m));
        }
    }
    out
}

fn model_provider(fake: &FakeOpenAi) -> Value {
    json!({ "fake": { "api": "openai-completions", "baseUrl": fake.base_url(), "apiKey": "sk-bench",
                      "models": [{ "id": "gpt-4o", "name": "gpt-4o" }] } })
}

/// Pincer with Telegram inbound open to everyone, a session per chat and no send pacing.
fn pincer_config(tg: &FakeTelegram, model: &FakeOpenAi) -> Value {
    json!({
        "models": { "providers": model_provider(model) },
        "agents": { "defaults": { "model": { "primary": "fake/gpt-4o" } } },
        "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url(),
                                    "dmPolicy": "open", "allowFrom": ["*"] } },
        "session": { "dmScope": "per-channel-peer" },
        "delivery": { "rateLimits": { "telegram": 0 } },
    })
}

/// The same for OpenClaw (its Telegram channel polls `{apiRoot}/bot<token>/getUpdates`).
fn openclaw_config(tg: &FakeTelegram, model: &FakeOpenAi) -> Value {
    json!({
        "models": { "providers": model_provider(model) },
        "agents": { "defaults": { "model": { "primary": "fake/gpt-4o" } } },
        "channels": { "telegram": { "enabled": true, "botToken": FakeTelegram::TOKEN, "apiRoot": tg.base_url(),
                                    "dmPolicy": "open", "allowFrom": ["*"] } },
        "session": { "dmScope": "per-channel-peer" },
    })
}

/// What one gateway did.
#[derive(Default)]
struct Outcome {
    /// Poll answer → first byte of the model request, ms, one per message answered alone.
    to_request: Vec<f64>,
    /// Model's last byte → the reply's `sendMessage` at the fake, ms.
    to_reply: Vec<f64>,
    /// The burst: messages sent, lost, answered more than once, answered out of order; seconds
    /// from the first message to the last reply.
    burst: Option<Burst>,
}

struct Burst {
    lost: usize,
    twice: usize,
    out_of_order: usize,
    secs: f64,
}

/// Waits (real time) until `done`, polling every 2 ms; false on timeout.
fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Every reply's tags, in the order the replies reached the fake: `(tags, arrival µs)`.
fn replies(tg: &FakeTelegram) -> Vec<(Vec<(usize, usize)>, u64)> {
    let times = tg.message_times_unix_us();
    tg.messages().iter().zip(times).map(|(m, at)| (tags_in(&m.text), at)).collect()
}

/// Runs one gateway (already started against `tg` and `model`): first `sequential` messages one
/// at a time over 20 chats, then `chats` chats × `per_chat` messages at once.
fn measure(tg: &FakeTelegram, model: &FakeOpenAi, sequential: usize, chats: usize, per_chat: usize) -> Outcome {
    let mut out = Outcome::default();
    // Update id → tag, to find when each message was handed over.
    let mut updates: HashMap<(usize, usize), i64> = HashMap::new();
    // Chats 0..20 for the one-at-a-time messages; users are 7_000_000 + chat.
    let user = |c: usize| 7_000_000 + c as i64;
    let mut answered = 0;
    for i in 0..sequential {
        let (c, m) = (i % 20, i / 20);
        let (update, _) = tg.push_message(Incoming::dm(user(c), &tag(c, m)));
        updates.insert((c, m), update);
        let want = (c, m);
        if wait(Duration::from_secs(30), || replies(tg).iter().any(|(t, _)| t.contains(&want))) {
            answered += 1;
        } else {
            eprintln!("bench: inbound: message {i} was not answered within 30 s; stopping the sequential part");
            break;
        }
    }
    let handed = tg.handed_over_unix_us();
    let requests = model.requests();
    let finished: HashMap<usize, u64> = model.finished_by_request().into_iter().collect();
    let got = replies(tg);
    for (k, r) in requests.iter().enumerate() {
        let asked = tags_in(&new_user_text(&r.body));
        // Only requests for exactly one message: a batch has no single hand-over moment.
        let [one] = asked[..] else { continue };
        if let Some(at) = updates.get(&one).and_then(|u| handed.get(u)) {
            out.to_request.push((r.at_unix_us as f64 - *at as f64) / 1000.0);
        }
        let reply = got.iter().find(|(t, _)| t.contains(&one));
        if let (Some(done), Some((_, at))) = (finished.get(&k), reply) {
            out.to_reply.push((*at as f64 - *done as f64) / 1000.0);
        }
    }
    eprintln!("bench: inbound: {answered} of {sequential} messages answered one at a time");
    if answered < sequential {
        return out;
    }

    // The burst: chats 100.. so none shares a session with the part above.
    let before = tg.messages().len();
    let started = Instant::now();
    for m in 0..per_chat {
        for c in 0..chats {
            tg.push_message(Incoming::dm(user(100 + c), &tag(100 + c, m)));
        }
    }
    let sent = chats * per_chat;
    let all = || {
        let mut seen: Vec<(usize, usize)> = replies(tg).into_iter().skip(before).flat_map(|(t, _)| t).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    let complete = wait(Duration::from_secs(120), || all() >= sent);
    let secs = started.elapsed().as_secs_f64();
    // Anything answered twice would arrive a little later.
    std::thread::sleep(Duration::from_secs(2));
    if !complete {
        eprintln!("bench: inbound: not every message of the burst was answered within 120 s");
    }
    let got: Vec<Vec<(usize, usize)>> = replies(tg).into_iter().skip(before).map(|(t, _)| t).collect();
    let mut count: HashMap<(usize, usize), usize> = HashMap::new();
    let mut last_of_chat: HashMap<usize, usize> = HashMap::new();
    let mut out_of_order = 0;
    for (c, m) in got.iter().flatten() {
        *count.entry((*c, *m)).or_default() += 1;
        // Within a chat, the replies must answer its messages in the order they were written.
        if let Some(last) = last_of_chat.insert(*c, *m)
            && *m <= last
        {
            out_of_order += 1;
        }
    }
    let lost = (0..chats).flat_map(|c| (0..per_chat).map(move |m| (100 + c, m))).filter(|t| !count.contains_key(t));
    let lost = lost.count();
    let twice = count.values().filter(|n| **n > 1).count();
    eprintln!(
        "bench: inbound: {chats} chats × {per_chat} messages at once: {lost} lost, {twice} answered twice, {out_of_order} out of order, {} replies, {secs:.1} s",
        got.len()
    );
    out.burst = Some(Burst { lost, twice, out_of_order, secs });
    out
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let rt = Bench::runtime();
    let (sequential, chats, per_chat) = if b.quick { (40, 100, 3) } else { (400, 100, 5) };
    eprintln!(
        "bench: inbound chat, {sequential} messages one at a time, then {chats} chats × {per_chat} messages at once"
    );
    let fakes = || {
        rt.block_on(async {
            let (tg, model) = (FakeTelegram::start().await, FakeOpenAi::start().await);
            model.set_echo(true);
            (tg, model)
        })
    };
    let polling = |tg: &FakeTelegram| wait(Duration::from_secs(60), || !tg.polls().is_empty());

    let (tg, model) = fakes();
    let p = start_pincer(&b.pincer, &b.dir("p-inbound"), pincer_config(&tg, &model))?;
    anyhow::ensure!(polling(&tg), "Pincer never polled the fake Telegram (see {}/gateway.log)", p.state.display());
    let pincer = measure(&tg, &model, sequential, chats, per_chat);
    drop(p);

    // Why OpenClaw's cells are empty when it has no outcome at all.
    let mut missing = "not measured: OpenClaw was not run";
    let openclaw = match &b.openclaw {
        Some(oc) => {
            let (tg, model) = fakes();
            match start_openclaw(oc, &b.dir("o-inbound"), openclaw_config(&tg, &model)) {
                Ok(_gateway) if polling(&tg) => Some(measure(&tg, &model, sequential, chats, per_chat)),
                Ok(_) => {
                    eprintln!("bench: inbound: OpenClaw never polled the fake Telegram");
                    missing = "not measured: OpenClaw never polled the fake Telegram";
                    None
                }
                Err(e) => {
                    eprintln!("bench: inbound: OpenClaw did not start: {e}");
                    missing = "not measured: OpenClaw did not start";
                    None
                }
            }
        }
        None => None,
    };

    let oc = |f: &dyn Fn(&Outcome) -> Option<f64>| openclaw.as_ref().and_then(f);
    let pct = |v: &[f64], p: f64| (!v.is_empty()).then(|| percentile(v.to_vec(), p));
    let note = if openclaw.is_some() { "no message was answered" } else { missing };
    let n = pincer.to_request.len();
    let mut push = |row: Row| b.rows.push(row);
    let mut latency = |metric: String, p: f64, get: fn(&Outcome) -> &Vec<f64>, target: &'static str| {
        let mut row = Row::new(SECTION, metric, "ms").openclaw(oc(&|o| pct(get(o), p))).note(note).target(target);
        row.pincer = pct(get(&pincer), p);
        push(row);
    };
    latency(
        format!("Message handed over to first request byte at the model, p50 ({n} messages)"),
        50.0,
        |o| &o.to_request,
        "",
    );
    latency("Message handed over to first request byte at the model, p99".into(), 99.0, |o| &o.to_request, "< 10 ms");
    latency(
        format!("Model's last byte to the reply at Telegram, p50 ({} replies)", pincer.to_reply.len()),
        50.0,
        |o| &o.to_reply,
        "",
    );
    latency("Model's last byte to the reply at Telegram, p99".into(), 99.0, |o| &o.to_reply, "< 10 ms");

    let burst_note = if openclaw.is_some() { "the burst did not run" } else { missing };
    let burst = |o: &Outcome, f: fn(&Burst) -> f64| o.burst.as_ref().map(f);
    type Count = fn(&Burst) -> f64;
    let counts: [(String, Count); 3] = [
        (format!("{chats} chats × {per_chat} messages at once: not answered within 2 min"), |b| b.lost as f64),
        ("… answered twice".into(), |b| b.twice as f64),
        ("… answered out of order within a chat".into(), |b| b.out_of_order as f64),
    ];
    for (metric, f) in counts {
        let mut row = Row::new(SECTION, metric, "msgs").count().target("0").note(burst_note);
        row.pincer = burst(&pincer, f);
        row.openclaw = oc(&|o| burst(o, f));
        b.rows.push(row);
    }
    let mut row = Row::new(SECTION, format!("… first message to last reply ({} messages)", chats * per_chat), "s")
        .note(burst_note);
    row.pincer = burst(&pincer, |b| b.secs);
    row.openclaw = oc(&|o| burst(o, |b| if b.lost == 0 { b.secs } else { f64::NAN }));
    b.rows.push(row);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{tag, tags_in};

    #[test]
    fn tags_are_read_back_from_an_echo_in_order_and_nothing_else_is() {
        let text =
            format!("echo: [Telegram user] {}\n{} bench c1 m x bench c2 m3 {}", tag(3, 0), tag(3, 1), tag(12, 10));
        assert_eq!(tags_in(&text), vec![(3, 0), (3, 1), (12, 10)]);
        assert_eq!(tags_in("bench c1 m1"), vec![]);
    }
}
