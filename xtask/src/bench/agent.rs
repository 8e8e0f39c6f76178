//! Gateway overhead per agent turn, against a fake OpenAI-compatible server on 127.0.0.1: from the
//! slot to the first request byte at the model server, and from the model's last byte to the
//! outbox commit of the announced reply. Turns are spaced 500 ms apart so none overlap.

use std::time::Duration;

use pincer_testkit::fakes::openai::FakeOpenAi;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use super::gateway::{TOKEN, start_openclaw, start_pincer};
use super::{Bench, Row, percentile};

const EVERY_MS: i64 = 5_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Adds `jobs` agent-turn jobs every 5 s, job `i` anchored at `first + i × 500 ms`; returns their ids.
async fn add_jobs(url: &str, jobs: usize, first: i64, delivery: Value) -> anyhow::Result<Vec<String>> {
    let mut c = RawClient::connect(url, cli_connect_params(Some(TOKEN), &["operator.admin"])).await?.0;
    let mut ids = Vec::new();
    for i in 0..jobs {
        let job = c
            .call(
                "cron.add",
                json!({"name": format!("turn-{i}"), "schedule": {"kind": "every", "everyMs": EVERY_MS, "anchorMs": first + i as i64 * 500},
                    "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": format!("bench-turn-{i} say hi")},
                    "delivery": delivery.clone()}),
            )
            .await?;
        ids.push(job["id"].as_str().unwrap_or_default().to_string());
    }
    Ok(ids)
}

/// For every model request: (job index, slot, arrival in µs).
fn arrivals(fake: &FakeOpenAi, first: i64) -> Vec<(usize, i64, u64)> {
    fake.requests()
        .iter()
        .filter_map(|r| {
            let body = r.body.to_string();
            let at = body.find("bench-turn-")? + "bench-turn-".len();
            let i: usize = body[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()?;
            let anchor = first + i as i64 * 500;
            let t_ms = (r.at_unix_us / 1000) as i64;
            let slot = anchor + (t_ms - anchor).div_euclid(EVERY_MS) * EVERY_MS;
            Some((i, slot, r.at_unix_us))
        })
        .collect()
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let rt = Bench::runtime();
    let fake = rt.block_on(FakeOpenAi::start());
    let (jobs, secs) = if b.quick { (4, 12) } else { (10, 40) };
    eprintln!("bench: agent turns, {jobs} jobs every 5 s for {secs} s against a fake model server");
    let provider = |api_key: &str| {
        json!({ "api": "openai-completions", "baseUrl": fake.base_url(), "apiKey": api_key,
                "models": [{ "id": "gpt-4o", "name": "gpt-4o" }] })
    };

    // Pincer.
    let p = start_pincer(
        &b.pincer,
        &b.dir("p-agent"),
        json!({ "models": { "providers": { "fake": provider("sk-bench") } },
                "agents": { "defaults": { "model": { "primary": "fake/gpt-4o" } } } }),
    )?;
    let first = now_ms() + 3_000;
    let ids = rt.block_on(add_jobs(&p.url(), jobs, first, json!({"mode": "announce", "channel": "inbox"})))?;
    std::thread::sleep(Duration::from_millis((first - now_ms()).max(0) as u64 + secs * 1000));
    let (deliveries, runs) = rt.block_on(async {
        let mut c = RawClient::connect(&p.url(), cli_connect_params(Some(TOKEN), &["operator.read"])).await?.0;
        let deliveries = c.call("deliveries.list", json!({"limit": 500})).await?;
        let mut runs = Vec::new();
        for id in &ids {
            let page = c.call("cron.runs", json!({"id": id, "limit": 200})).await?;
            runs.extend(page["entries"].as_array().cloned().unwrap_or_default());
        }
        anyhow::Ok((deliveries, runs))
    })?;
    // The scheduler's share: slot to the run's start (milliseconds on the gateway's clock).
    let wake: Vec<f64> =
        runs.iter().filter_map(|r| Some((r["startedAtMs"].as_i64()? - r["slotMs"].as_i64()?) as f64)).collect();
    drop(p);
    let reqs = arrivals(&fake, first);
    let finished = fake.finished_unix_us();
    let mut to_request = Vec::new();
    let mut to_commit = Vec::new();
    let rows = deliveries["deliveries"].as_array().cloned().unwrap_or_default();
    for (k, (i, slot, at_us)) in reqs.iter().enumerate() {
        to_request.push((*at_us as f64 / 1000.0) - *slot as f64);
        let run_id = format!("cron:{}:{slot}", ids[*i]);
        let row = rows.iter().find(|r| r["origin"]["id"] == run_id.as_str());
        if let (Some(row), Some(done_us)) = (row, finished.get(k)) {
            // The outbox stores milliseconds; take the middle of the millisecond.
            let commit_ms = row["createdAtMs"].as_f64().unwrap_or(f64::NAN) + 0.5;
            to_commit.push(commit_ms - *done_us as f64 / 1000.0);
        }
    }
    eprintln!("bench: Pincer: {} turns, {} announced", to_request.len(), to_commit.len());

    // OpenClaw, same jobs against the same fake (no delivery: its outbox cannot be observed).
    let before = fake.requests().len();
    let o_to_request = match &b.openclaw {
        Some(oc) => {
            let o = start_openclaw(
                oc,
                &b.dir("o-agent"),
                json!({ "models": { "providers": { "fake": provider("sk-bench") } },
                        "agents": { "defaults": { "model": { "primary": "fake/gpt-4o" } } } }),
            )?;
            let first = now_ms() + 5_000;
            match rt.block_on(add_jobs(&o.url(), jobs, first, json!({"mode": "none"}))) {
                Ok(_) => {
                    std::thread::sleep(Duration::from_millis((first - now_ms()).max(0) as u64 + secs * 1000));
                    let all = arrivals(&fake, first);
                    let lags: Vec<f64> =
                        all.iter().skip(before).map(|(_, slot, at)| *at as f64 / 1000.0 - *slot as f64).collect();
                    eprintln!("bench: OpenClaw: {} turns reached the model", lags.len());
                    Some(lags).filter(|l| !l.is_empty())
                }
                Err(e) => {
                    eprintln!("bench: OpenClaw refused the agent jobs: {e}");
                    None
                }
            }
        }
        None => None,
    };
    let n = to_request.len();
    b.rows.push(
        Row::new("Agent turns", format!("Slot to first request byte at the model, p50 ({n} turns)"), "ms")
            .pincer(percentile(to_request.clone(), 50.0))
            .openclaw(o_to_request.as_ref().map(|l| percentile(l.clone(), 50.0)))
            .note("no turn reached the model"),
    );
    b.rows.push(
        Row::new("Agent turns", "Slot to first request byte at the model, p99", "ms")
            .pincer(percentile(to_request, 99.0))
            .openclaw(o_to_request.as_ref().map(|l| percentile(l.clone(), 99.0)))
            .target("< 5 ms")
            .note("no turn reached the model"),
    );
    b.rows.push(
        Row::new("Agent turns", "… of which slot to run start (scheduler wake), p50", "ms")
            .pincer(percentile(wake.clone(), 50.0))
            .note("-"),
    );
    b.rows.push(
        Row::new("Agent turns", "… of which slot to run start, p99", "ms").pincer(percentile(wake, 99.0)).note("-"),
    );
    let note = "not measured: no outbox commit time is exposed";
    b.rows.push(
        Row::new("Agent turns", format!("Model's last byte to outbox commit, p50 ({} turns)", to_commit.len()), "ms")
            .pincer(percentile(to_commit.clone(), 50.0))
            .note(note),
    );
    b.rows.push(
        Row::new("Agent turns", "Model's last byte to outbox commit, p99", "ms")
            .pincer(percentile(to_commit, 99.0))
            .target("< 5 ms")
            .note(note),
    );
    Ok(())
}
