//! Schedule math on any input: a cron expression in a time zone (normalised as `cron.add` does,
//! and compiled raw), `every` and `at` schedules, `--at` parsing and durations. Input is lines:
//! `expr`, `tz`, `after_ms`, `stagger_ms`, `every_ms`, `anchor_ms`. Each compiled schedule computes
//! several consecutive fire times (strictly increasing: no hang, no overflow) and the latest fire
//! at or before the start.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pincer_core::duration::parse_duration_ms;
use pincer_cron::schedule::{Normalize, NormalizeContext, Schedule, ScheduleSpec, parse_at, validate_tz};

const NOW_MS: i64 = 1_772_323_200_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let expr = lines.next().unwrap_or("").to_string();
    let tz = lines.next().filter(|t| !t.is_empty()).map(String::from);
    let mut number = |default: i64| lines.next().and_then(|l| l.trim().parse::<i64>().ok()).unwrap_or(default);
    let after = number(NOW_MS);
    let stagger = lines_opt(number(-1));
    let every = number(60_000);
    let anchor = lines_opt(number(-1));

    let cron = ScheduleSpec::Cron { expr: expr.clone(), tz: tz.clone(), stagger_ms: stagger };
    for exact in [false, true] {
        let ctx = NormalizeContext { now_ms: after, default_tz: "Europe/Berlin", exact };
        if let Ok(normal) = cron.normalize(&ctx) {
            let schedule = Schedule::new(&normal, "fuzz-job")
                .unwrap_or_else(|e| panic!("a normalised spec does not compile: {e}: {normal:?}"));
            walk(&schedule, after);
            assert!(schedule.next_after(after).is_some(), "normalize accepted a schedule that never fires");
        }
    }
    if let Ok(schedule) = Schedule::new(&cron, &expr) {
        walk(&schedule, after);
    }
    let every = ScheduleSpec::Every { every_ms: every, anchor_ms: anchor };
    if let Ok(schedule) = Schedule::new(&every, "fuzz-job") {
        walk(&schedule, after);
    }
    let ctx = NormalizeContext { now_ms: after, default_tz: "UTC", exact: false };
    if let Ok(normal) = every.normalize(&ctx) {
        walk(&Schedule::new(&normal, "fuzz-job").expect("a normalised every spec compiles"), after);
    }
    let at = ScheduleSpec::At { at: expr.clone() };
    if let Ok(normal) = at.normalize(&ctx) {
        walk(&Schedule::new(&normal, "fuzz-job").expect("a normalised at spec compiles"), after);
    }
    // A duration counts from `after`, which only the fuzzer makes negative.
    if let Ok(ms) = parse_at(&expr, tz.as_deref(), after)
        && after >= 0
    {
        assert!(ms >= 0, "parse_at({expr:?}) = {ms}");
    }
    if let Some(tz) = &tz {
        let _ = validate_tz(tz);
    }
    let _ = parse_duration_ms(&expr, None);
    let _ = parse_duration_ms(&expr, Some(3_600_000));
});

fn lines_opt(n: i64) -> Option<i64> {
    (n != -1).then_some(n)
}

/// Eight consecutive fire times after `from`, strictly increasing, and the latest one before it.
fn walk(schedule: &Schedule, from: i64) {
    let mut t = from;
    for _ in 0..8 {
        let Some(next) = schedule.next_after(t) else { break };
        assert!(next > t, "next_after({t}) = {next}");
        t = next;
    }
    let upcoming = schedule.upcoming(from, 5);
    assert!(upcoming.windows(2).all(|w| w[0] < w[1]), "{upcoming:?}");
    if let Some(prev) = schedule.latest_at_or_before(from) {
        assert!(prev <= from, "latest_at_or_before({from}) = {prev}");
    }
}
