//! Cron job JSON: `cron.add` params through the schema's params parse (the closed schema, OpenClaw's
//! aliases) and `job::create` (OpenClaw's defaults, normalisation, validation), then — when the input holds a NUL byte — the rest as a `cron.update`
//! patch through `job::apply_patch`. An accepted job compiles to a schedule (as the scheduler does
//! next), answers fire-time questions, round-trips through its stored form and renders its view.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pincer_cron::{ChannelCatalog, Job, KnownChannel};
use pincer_cron::job::{CreateContext, JobExt, JobPatch, apply_patch, create};
use pincer_cron::schedule::Schedule;
use pincer_protocol::schema::cron::AddParams;
use pincer_protocol::schema::parse_params;
use serde_json::Value;

/// 2026-03-01T00:00:00Z.
const NOW_MS: i64 = 1_772_323_200_000;

fuzz_target!(|data: &[u8]| {
    let (add, patch) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(params) = serde_json::from_slice::<Value>(add) else { return };
    let known = |name, prefixes: &'static [&'static str], usable| KnownChannel { name, prefixes, usable };
    let channels = ChannelCatalog::new(vec![
        known("discord", &["discord"], true),
        known("telegram", &["telegram", "tg"], true),
        known("slack", &["slack"], false),
        known("inbox", &["inbox"], true),
        known("webhook", &[], true),
    ]);
    let ctx = CreateContext { now_ms: NOW_MS, default_tz: "Europe/Berlin", channels: &channels };
    let Ok(AddParams(input)) = parse_params::<AddParams>("cron.add", Some(&params)) else { return };
    let Ok(job) = create(input, "fuzz-job".into(), &ctx) else { return };
    check(&job);
    let Some(patch) = patch.and_then(|p| serde_json::from_slice::<JobPatch>(p).ok()) else { return };
    let later = CreateContext { now_ms: NOW_MS + 60_000, ..ctx };
    if let Ok(next) = apply_patch(&job, &patch, &later) {
        assert_eq!(next.id, job.id, "a patch never changes the id");
        check(&next);
    }
});

fn check(job: &Job) {
    let schedule = Schedule::new(&job.schedule, &job.id)
        .unwrap_or_else(|e| panic!("an accepted job's schedule does not compile: {e}: {:?}", job.schedule));
    let mut t = NOW_MS;
    for _ in 0..5 {
        let Some(next) = schedule.next_after(t) else { break };
        assert!(next > t, "next_after({t}) = {next}");
        t = next;
    }
    if let Some(prev) = schedule.latest_at_or_before(NOW_MS) {
        assert!(prev <= NOW_MS, "latest_at_or_before({NOW_MS}) = {prev}");
    }
    let _ = job.payload.timeout_ms();
    job.view().unwrap_or_else(|e| panic!("a valid job has no view: {e}"));
    job.config_revision().unwrap_or_else(|e| panic!("a valid job has no revision: {e}"));
    let state = serde_json::to_string(&job.state).expect("state serialises");
    let stored = job.definition_json().unwrap_or_else(|e| panic!("a valid job does not serialise: {e}"));
    let back = Job::from_stored(&stored, &state)
        .unwrap_or_else(|e| panic!("a stored job does not load back: {e}"));
    assert_eq!(&back, job, "stored round trip changed the job");
}
