use std::fmt::Write as _;

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use expect_test::{Expect, expect};

use super::zone::pick_host_timezone;
use super::*;

/// Epoch ms of an ISO time (UTC unless it carries an offset).
fn ms(iso: &str) -> i64 {
    parse_at(iso, None, 0).unwrap_or_else(|err| panic!("test time {iso:?}: {err}"))
}

/// `2026-03-08 03:00 EDT (07:00Z)`, with seconds and milliseconds only when they are not zero.
fn local(ms: i64, tz: Tz) -> String {
    let at = DateTime::from_timestamp_millis(ms).expect("test instant in range");
    let (wall, utc) =
        if ms % 60_000 == 0 { ("%Y-%m-%d %H:%M %Z", "%H:%MZ") } else { ("%Y-%m-%d %H:%M:%S%.3f %Z", "%H:%M:%S%.3fZ") };
    format!("{} ({})", at.with_timezone(&tz).format(wall), at.format(utc))
}

fn zone(name: &str) -> Tz {
    validate_tz(name).expect("test zone")
}

fn cron(expr: &str, tz: &str, stagger_ms: i64, job_id: &str) -> Schedule {
    let spec = ScheduleSpec::Cron { expr: expr.into(), tz: Some(tz.into()), stagger_ms: Some(stagger_ms) };
    Schedule::new(&spec, job_id).unwrap_or_else(|err| panic!("{expr:?}: {err}"))
}

/// Renders `n` fires after each `(zone, expr, after)` as a block of human-readable local times.
fn check_fires(cases: &[(&str, &str, &str, usize)], expect: Expect) {
    let mut out = String::new();
    for &(tz_name, expr, after, n) in cases {
        let tz = zone(tz_name);
        let schedule = cron(expr, tz_name, 0, "job");
        writeln!(out, "{tz_name} {expr:?} after {}:", local(ms(after), tz)).unwrap();
        for fire in schedule.upcoming(ms(after), n) {
            writeln!(out, "  {}", local(fire, tz)).unwrap();
        }
    }
    expect.assert_eq(&out);
}

#[test]
fn dst_new_york_2026() {
    // Spring forward Sun 2026-03-08 02:00 EST → 03:00 EDT (07:00Z);
    // fall back Sun 2026-11-01 02:00 EDT → 01:00 EST (06:00Z).
    check_fires(
        &[
            ("America/New_York", "30 2 * * *", "2026-03-07T17:00:00Z", 3),
            ("America/New_York", "0 2 * * *", "2026-03-07T17:00:00Z", 2),
            ("America/New_York", "0 30 2 * * *", "2026-03-07T17:00:00Z", 2),
            ("America/New_York", "30 2,14 * * *", "2026-03-07T17:00:00Z", 4),
            ("America/New_York", "0 * * * *", "2026-03-08T05:30:00Z", 3),
            ("America/New_York", "*/30 * * * *", "2026-03-08T06:00:00Z", 3),
            ("America/New_York", "*/15 2 * * *", "2026-03-07T17:00:00Z", 2),
            ("America/New_York", "30 1 * * *", "2026-10-31T16:00:00Z", 2),
            ("America/New_York", "15,45 1 * * *", "2026-10-31T16:00:00Z", 3),
            ("America/New_York", "*/30 * * * *", "2026-11-01T04:00:00Z", 5),
            ("America/New_York", "0 * * * *", "2026-11-01T04:00:00Z", 3),
            // Searching from inside the first and the second pass of the repeated hour.
            ("America/New_York", "*/30 * * * *", "2026-11-01T05:10:00Z", 2),
            ("America/New_York", "*/30 * * * *", "2026-11-01T06:10:00Z", 2),
        ],
        expect![[r#"
            America/New_York "30 2 * * *" after 2026-03-07 12:00 EST (17:00Z):
              2026-03-08 03:00 EDT (07:00Z)
              2026-03-09 02:30 EDT (06:30Z)
              2026-03-10 02:30 EDT (06:30Z)
            America/New_York "0 2 * * *" after 2026-03-07 12:00 EST (17:00Z):
              2026-03-08 03:00 EDT (07:00Z)
              2026-03-09 02:00 EDT (06:00Z)
            America/New_York "0 30 2 * * *" after 2026-03-07 12:00 EST (17:00Z):
              2026-03-08 03:00 EDT (07:00Z)
              2026-03-09 02:30 EDT (06:30Z)
            America/New_York "30 2,14 * * *" after 2026-03-07 12:00 EST (17:00Z):
              2026-03-07 14:30 EST (19:30Z)
              2026-03-08 03:00 EDT (07:00Z)
              2026-03-08 14:30 EDT (18:30Z)
              2026-03-09 02:30 EDT (06:30Z)
            America/New_York "0 * * * *" after 2026-03-08 00:30 EST (05:30Z):
              2026-03-08 01:00 EST (06:00Z)
              2026-03-08 03:00 EDT (07:00Z)
              2026-03-08 04:00 EDT (08:00Z)
            America/New_York "*/30 * * * *" after 2026-03-08 01:00 EST (06:00Z):
              2026-03-08 01:30 EST (06:30Z)
              2026-03-08 03:00 EDT (07:00Z)
              2026-03-08 03:30 EDT (07:30Z)
            America/New_York "*/15 2 * * *" after 2026-03-07 12:00 EST (17:00Z):
              2026-03-09 02:00 EDT (06:00Z)
              2026-03-09 02:15 EDT (06:15Z)
            America/New_York "30 1 * * *" after 2026-10-31 12:00 EDT (16:00Z):
              2026-11-01 01:30 EDT (05:30Z)
              2026-11-02 01:30 EST (06:30Z)
            America/New_York "15,45 1 * * *" after 2026-10-31 12:00 EDT (16:00Z):
              2026-11-01 01:15 EDT (05:15Z)
              2026-11-01 01:45 EDT (05:45Z)
              2026-11-02 01:15 EST (06:15Z)
            America/New_York "*/30 * * * *" after 2026-11-01 00:00 EDT (04:00Z):
              2026-11-01 00:30 EDT (04:30Z)
              2026-11-01 01:00 EDT (05:00Z)
              2026-11-01 01:30 EDT (05:30Z)
              2026-11-01 02:00 EST (07:00Z)
              2026-11-01 02:30 EST (07:30Z)
            America/New_York "0 * * * *" after 2026-11-01 00:00 EDT (04:00Z):
              2026-11-01 01:00 EDT (05:00Z)
              2026-11-01 02:00 EST (07:00Z)
              2026-11-01 03:00 EST (08:00Z)
            America/New_York "*/30 * * * *" after 2026-11-01 01:10 EDT (05:10Z):
              2026-11-01 01:30 EDT (05:30Z)
              2026-11-01 02:00 EST (07:00Z)
            America/New_York "*/30 * * * *" after 2026-11-01 01:10 EST (06:10Z):
              2026-11-01 02:00 EST (07:00Z)
              2026-11-01 02:30 EST (07:30Z)
        "#]],
    );
}

#[test]
fn dst_berlin_2026() {
    // Spring forward Sun 2026-03-29 02:00 CET → 03:00 CEST (01:00Z);
    // fall back Sun 2026-10-25 03:00 CEST → 02:00 CET (01:00Z).
    check_fires(
        &[
            ("Europe/Berlin", "30 2 * * *", "2026-03-28T11:00:00Z", 2),
            ("Europe/Berlin", "0 * * * *", "2026-03-28T23:30:00Z", 3),
            ("Europe/Berlin", "*/30 * * * *", "2026-03-29T00:00:00Z", 3),
            ("Europe/Berlin", "30 2 * * *", "2026-10-24T10:00:00Z", 2),
            ("Europe/Berlin", "*/30 * * * *", "2026-10-24T23:00:00Z", 5),
            ("Europe/Berlin", "0 * * * *", "2026-10-24T23:30:00Z", 3),
        ],
        expect![[r#"
            Europe/Berlin "30 2 * * *" after 2026-03-28 12:00 CET (11:00Z):
              2026-03-29 03:00 CEST (01:00Z)
              2026-03-30 02:30 CEST (00:30Z)
            Europe/Berlin "0 * * * *" after 2026-03-29 00:30 CET (23:30Z):
              2026-03-29 01:00 CET (00:00Z)
              2026-03-29 03:00 CEST (01:00Z)
              2026-03-29 04:00 CEST (02:00Z)
            Europe/Berlin "*/30 * * * *" after 2026-03-29 01:00 CET (00:00Z):
              2026-03-29 01:30 CET (00:30Z)
              2026-03-29 03:00 CEST (01:00Z)
              2026-03-29 03:30 CEST (01:30Z)
            Europe/Berlin "30 2 * * *" after 2026-10-24 12:00 CEST (10:00Z):
              2026-10-25 02:30 CEST (00:30Z)
              2026-10-26 02:30 CET (01:30Z)
            Europe/Berlin "*/30 * * * *" after 2026-10-25 01:00 CEST (23:00Z):
              2026-10-25 01:30 CEST (23:30Z)
              2026-10-25 02:00 CEST (00:00Z)
              2026-10-25 02:30 CEST (00:30Z)
              2026-10-25 03:00 CET (02:00Z)
              2026-10-25 03:30 CET (02:30Z)
            Europe/Berlin "0 * * * *" after 2026-10-25 01:30 CEST (23:30Z):
              2026-10-25 02:00 CEST (00:00Z)
              2026-10-25 03:00 CET (02:00Z)
              2026-10-25 04:00 CET (03:00Z)
        "#]],
    );
}

/// Pins what croner 4 does on its own with a zoned `DateTime`, which is why `cron.rs` searches the
/// naive wall clock and applies the DST rule itself. If an upgrade changes this, revisit `cron.rs`.
#[test]
fn croner_zoned_search_differs_from_pincer_rule() {
    let tz = zone("America/New_York");
    let render = |expr: &str, from: &str, n: usize| {
        let parsed = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .expect("pattern");
        let mut cursor = DateTime::from_timestamp_millis(ms(from)).expect("instant").with_timezone(&tz);
        let mut out = Vec::new();
        for _ in 0..n {
            cursor = parsed.find_next_occurrence(&cursor, false).expect("next");
            out.push(local(cursor.timestamp_millis(), tz));
        }
        out.join(", ")
    };
    // Wildcards fire on both passes of the repeated hour (Pincer: first pass only).
    expect![[r#"2026-11-01 01:00 EDT (05:00Z), 2026-11-01 01:30 EDT (05:30Z), 2026-11-01 01:00 EST (06:00Z), 2026-11-01 01:30 EST (06:30Z)"#]]
        .assert_eq(&render("*/30 * * * *", "2026-11-01T04:45:00Z", 4));
    // A list in the hour field is not "fixed time" to croner, so its 02:30 is skipped (Pincer: 03:00).
    expect![[r#"2026-03-07 14:30 EST (19:30Z), 2026-03-08 14:30 EDT (18:30Z)"#]].assert_eq(&render(
        "30 2,14 * * *",
        "2026-03-07T17:00:00Z",
        2,
    ));
}

/// `latest_at_or_before` agrees with the forward enumeration around every 2026 transition, for fixed,
/// listed, wildcard, stepped, 6-field and staggered patterns, at grid points and at each fire ±1 ms.
#[test]
fn latest_at_or_before_agrees_with_forward_fires_across_dst() {
    let windows = [
        ("America/New_York", "2026-03-08T07:00:00Z"),
        ("America/New_York", "2026-11-01T06:00:00Z"),
        ("Europe/Berlin", "2026-03-29T01:00:00Z"),
        ("Europe/Berlin", "2026-10-25T01:00:00Z"),
    ];
    let patterns = [
        ("30 2 * * *", 0),
        ("30 1 * * *", 0),
        ("0 2 * * *", 0),
        ("15,45 1-3 * * *", 0),
        ("0 * * * *", 0),
        ("0 * * * *", 300_000),
        ("*/30 * * * *", 0),
        ("*/7 1-3 * * *", 0),
        ("*/20 * 1-3 * * *", 0),
        ("30 2 * * *", 3_600_000),
    ];
    let mut checked = 0;
    for (tz_name, change) in windows {
        let (start, end) = (ms(change) - 86_400_000, ms(change) + 86_400_000);
        for (expr, stagger) in patterns {
            let schedule = cron(expr, tz_name, stagger, "job-7");
            let mut fires = Vec::new();
            let mut cursor = start;
            while let Some(next) = schedule.next_after(cursor).filter(|next| *next <= end) {
                assert!(next > cursor, "{expr} in {tz_name}: {next} after {cursor}");
                fires.push(next);
                cursor = next;
            }
            assert!(!fires.is_empty(), "{expr} in {tz_name} fires in the window");
            let probes = (0..)
                .map(|k| start + k * 433_001)
                .take_while(|t| *t <= end)
                .chain(fires.iter().flat_map(|f| [f - 1, *f, f + 1]));
            for t in probes {
                let expected_latest = fires.iter().rev().find(|f| **f <= t).copied();
                if expected_latest.is_some() {
                    assert_eq!(schedule.latest_at_or_before(t), expected_latest, "{expr} in {tz_name}, latest ≤ {t}");
                }
                let expected_next = fires.iter().find(|f| **f > t).copied();
                if expected_next.is_some() {
                    assert_eq!(schedule.next_after(t), expected_next, "{expr} in {tz_name}, next > {t}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "only {checked} probes");
}

#[test]
fn latest_at_or_before_examples() {
    // Job "abc" has offset 32319 ms in a 300000 ms window (see `stagger_offset_matches_openclaw`).
    let cases = [
        ("America/New_York", "30 2 * * *", 0, "2026-03-08T07:00:00Z"),
        ("America/New_York", "30 2 * * *", 0, "2026-03-08T06:59:59Z"),
        ("America/New_York", "30 1 * * *", 0, "2026-11-01T06:45:00Z"),
        ("America/New_York", "*/30 * * * *", 0, "2026-11-01T06:45:00Z"),
        ("America/New_York", "*/30 * * * *", 0, "2026-11-01T07:10:00Z"),
        ("America/New_York", "0 * * * *", 0, "2026-03-08T07:30:00Z"),
        ("America/New_York", "0 * * * *", 300_000, "2026-11-01T06:20:00Z"),
        ("America/New_York", "0 * * * *", 300_000, "2026-11-01T07:00:30Z"),
        ("Europe/Berlin", "30 2 * * *", 0, "2026-03-29T03:00:00Z"),
        ("Europe/Berlin", "0 9 * * 1", 0, "2026-03-29T03:00:00Z"),
    ];
    let mut out = String::new();
    for (tz_name, expr, stagger, t) in cases {
        let tz = zone(tz_name);
        let latest = cron(expr, tz_name, stagger, "abc").latest_at_or_before(ms(t));
        let shown = latest.map_or_else(|| "none".to_string(), |at| local(at, tz));
        writeln!(out, "{expr:?} stagger {stagger} at {} → {shown}", local(ms(t), tz)).unwrap();
    }
    expect![[r#"
        "30 2 * * *" stagger 0 at 2026-03-08 03:00 EDT (07:00Z) → 2026-03-08 03:00 EDT (07:00Z)
        "30 2 * * *" stagger 0 at 2026-03-08 01:59:59.000 EST (06:59:59.000Z) → 2026-03-07 02:30 EST (07:30Z)
        "30 1 * * *" stagger 0 at 2026-11-01 01:45 EST (06:45Z) → 2026-11-01 01:30 EDT (05:30Z)
        "*/30 * * * *" stagger 0 at 2026-11-01 01:45 EST (06:45Z) → 2026-11-01 01:30 EDT (05:30Z)
        "*/30 * * * *" stagger 0 at 2026-11-01 02:10 EST (07:10Z) → 2026-11-01 02:00 EST (07:00Z)
        "0 * * * *" stagger 0 at 2026-03-08 03:30 EDT (07:30Z) → 2026-03-08 03:00 EDT (07:00Z)
        "0 * * * *" stagger 300000 at 2026-11-01 01:20 EST (06:20Z) → 2026-11-01 01:00:32.319 EDT (05:00:32.319Z)
        "0 * * * *" stagger 300000 at 2026-11-01 02:00:30.000 EST (07:00:30.000Z) → 2026-11-01 01:00:32.319 EDT (05:00:32.319Z)
        "30 2 * * *" stagger 0 at 2026-03-29 05:00 CEST (03:00Z) → 2026-03-29 03:00 CEST (01:00Z)
        "0 9 * * 1" stagger 0 at 2026-03-29 05:00 CEST (03:00Z) → 2026-03-23 09:00 CET (08:00Z)
    "#]]
    .assert_eq(&out);
}

#[test]
fn cron_syntax_vixie_or_l_w_hash_and_seconds() {
    let cases = [
        ("0 9 1 * 1", "2026-06-01T00:00:00Z", 7),
        ("0 9 1 * *", "2026-06-01T00:00:00Z", 2),
        ("0 9 * * 1", "2026-06-01T00:00:00Z", 2),
        ("0 9 1 * +1", "2026-01-01T00:00:00Z", 2),
        ("0 9 ? * MON", "2026-06-01T00:00:00Z", 2),
        ("0 9 L * *", "2026-01-01T00:00:00Z", 3),
        ("0 9 15W * *", "2026-08-01T00:00:00Z", 4),
        ("0 9 * * 5#2", "2026-06-01T00:00:00Z", 2),
        ("0 9 * * 5#L", "2026-06-01T00:00:00Z", 2),
        ("0 0 29 2 *", "2026-01-01T00:00:00Z", 2),
        ("@daily", "2026-06-01T12:00:00Z", 2),
        ("*/20 * * * * *", "2026-06-01T12:00:00Z", 3),
        ("30 0 9 * * *", "2026-06-01T12:00:00Z", 2),
    ];
    let mut out = String::new();
    for (expr, after, n) in cases {
        let fires = cron(expr, "UTC", 0, "job").upcoming(ms(after), n);
        let shown: Vec<String> = fires
            .iter()
            .map(|at| DateTime::from_timestamp_millis(*at).unwrap().format("%a %Y-%m-%d %H:%M:%S").to_string())
            .collect();
        writeln!(out, "{expr:?}: {}", shown.join(", ")).unwrap();
    }
    expect![[r#"
        "0 9 1 * 1": Mon 2026-06-01 09:00:00, Mon 2026-06-08 09:00:00, Mon 2026-06-15 09:00:00, Mon 2026-06-22 09:00:00, Mon 2026-06-29 09:00:00, Wed 2026-07-01 09:00:00, Mon 2026-07-06 09:00:00
        "0 9 1 * *": Mon 2026-06-01 09:00:00, Wed 2026-07-01 09:00:00
        "0 9 * * 1": Mon 2026-06-01 09:00:00, Mon 2026-06-08 09:00:00
        "0 9 1 * +1": Mon 2026-06-01 09:00:00, Mon 2027-02-01 09:00:00
        "0 9 ? * MON": Mon 2026-06-01 09:00:00, Mon 2026-06-08 09:00:00
        "0 9 L * *": Sat 2026-01-31 09:00:00, Sat 2026-02-28 09:00:00, Tue 2026-03-31 09:00:00
        "0 9 15W * *": Fri 2026-08-14 09:00:00, Tue 2026-09-15 09:00:00, Thu 2026-10-15 09:00:00, Mon 2026-11-16 09:00:00
        "0 9 * * 5#2": Fri 2026-06-12 09:00:00, Fri 2026-07-10 09:00:00
        "0 9 * * 5#L": Fri 2026-06-26 09:00:00, Fri 2026-07-31 09:00:00
        "0 0 29 2 *": Tue 2028-02-29 00:00:00, Sun 2032-02-29 00:00:00
        "@daily": Tue 2026-06-02 00:00:00, Wed 2026-06-03 00:00:00
        "*/20 * * * * *": Mon 2026-06-01 12:00:20, Mon 2026-06-01 12:00:40, Mon 2026-06-01 12:01:00
        "30 0 9 * * *": Tue 2026-06-02 09:00:30, Wed 2026-06-03 09:00:30
    "#]]
    .assert_eq(&out);
}

#[test]
fn stagger_offset_matches_openclaw() {
    // sha256("abc") = ba7816bf 8f01cfea …  (FIPS 180-2 test vector); 0xba7816bf = 3128432319, and
    // 3128432319 − 10428 × 300000 = 32319.
    assert_eq!(stagger_offset_ms("abc", 300_000), 32_319);
    assert_eq!(stagger_offset_ms("abc", 0), 0);
    assert_eq!(stagger_offset_ms("abc", 1), 0);
    for window in [2, 7, 60_000, 300_000, 3_600_000] {
        for i in 0..2_000 {
            let offset = stagger_offset_ms(&format!("job-{i}"), window);
            assert!((0..window).contains(&offset), "job-{i} in {window}: {offset}");
        }
    }
    // Offsets spread over the window rather than clumping at one end.
    let late = (0..2_000).filter(|i| stagger_offset_ms(&format!("job-{i}"), 300_000) >= 150_000).count();
    assert!((800..1_200).contains(&late), "{late} of 2000 in the second half");
}

#[test]
fn stagger_shifts_each_slot_by_the_job_offset() {
    let schedule = cron("0 * * * *", "UTC", 300_000, "abc");
    assert_eq!(schedule.stagger_offset_ms(), 32_319);
    assert_eq!(schedule.stagger_ms(), 300_000);
    let cases = [
        // The 12:00 slot is past but its staggered fire is not: still found from `after - offset`.
        ("2026-06-01T12:00:10Z", Some("2026-06-01T12:00:32.319Z"), Some("2026-06-01T11:00:32.319Z")),
        ("2026-06-01T11:59:59Z", Some("2026-06-01T12:00:32.319Z"), Some("2026-06-01T11:00:32.319Z")),
        ("2026-06-01T12:00:32.319Z", Some("2026-06-01T13:00:32.319Z"), Some("2026-06-01T12:00:32.319Z")),
        ("2026-06-01T12:00:32.318Z", Some("2026-06-01T12:00:32.319Z"), Some("2026-06-01T11:00:32.319Z")),
    ];
    for (t, next, latest) in cases {
        assert_eq!(schedule.next_after(ms(t)), next.map(ms), "next after {t}");
        assert_eq!(schedule.latest_at_or_before(ms(t)), latest.map(ms), "latest at or before {t}");
    }
    // An absent staggerMs (an OpenClaw row) takes the top-of-hour default at compile time.
    let spec = ScheduleSpec::Cron { expr: "0 * * * *".into(), tz: Some("UTC".into()), stagger_ms: None };
    assert_eq!(Schedule::new(&spec, "abc").unwrap().stagger_offset_ms(), 32_319);
}

#[test]
fn default_stagger_rule() {
    let cases = [
        ("0 * * * *", 300_000),
        ("0 */2 * * *", 300_000),
        ("  0   *  * * 1-5 ", 300_000),
        ("0 0 * * * *", 300_000),
        ("0 0 */3 * * *", 300_000),
        ("5 * * * *", 0),
        ("0 9 * * *", 0),
        ("0 9-17 * * *", 0),
        ("30 0 * * * *", 0),
        ("0 0 9 * * *", 0),
        ("*/15 * * * *", 0),
        ("00 * * * *", 0),
        ("@hourly", 0),
    ];
    for (expr, expected) in cases {
        assert_eq!(default_stagger_ms(expr), expected, "{expr:?}");
    }
}

#[test]
fn every_grid() {
    let spec = ScheduleSpec::Every { every_ms: 500, anchor_ms: Some(1_000) };
    let schedule = Schedule::new(&spec, "job").unwrap();
    let next = [(0, 1_000), (999, 1_000), (1_000, 1_500), (1_001, 1_500), (1_499, 1_500), (1_500, 2_000)];
    for (after, expected) in next {
        assert_eq!(schedule.next_after(after), Some(expected), "next after {after}");
    }
    let latest = [
        (0, None),
        (999, None),
        (1_000, Some(1_000)),
        (1_499, Some(1_000)),
        (1_500, Some(1_500)),
        (1_700, Some(1_500)),
    ];
    for (t, expected) in latest {
        assert_eq!(schedule.latest_at_or_before(t), expected, "latest at or before {t}");
    }
    assert_eq!(schedule.upcoming(1_200, 3), vec![1_500, 2_000, 2_500]);
    assert_eq!(schedule.stagger_offset_ms(), 0);
    assert_eq!(schedule.zone_name(), None);
    // Far in the future the grid overflows to "never" rather than wrapping.
    let huge = Schedule::new(&ScheduleSpec::Every { every_ms: i64::MAX / 2, anchor_ms: Some(0) }, "job").unwrap();
    assert_eq!(huge.next_after(i64::MAX - 10), Some(i64::MAX - 1));
    assert_eq!(huge.next_after(i64::MAX - 1), None);
}

#[test]
fn at_fires_once() {
    let schedule = Schedule::new(&ScheduleSpec::At { at: "2026-03-01T09:00:00.000Z".into() }, "job").unwrap();
    let at = ms("2026-03-01T09:00:00Z");
    assert_eq!(schedule.next_after(at - 1), Some(at));
    assert_eq!(schedule.next_after(at), None);
    assert_eq!(schedule.latest_at_or_before(at - 1), None);
    assert_eq!(schedule.latest_at_or_before(at), Some(at));
    assert_eq!(schedule.upcoming(0, 5), vec![at]);
}

#[test]
fn wire_round_trips_exactly() {
    let cases = [
        r#"{"kind":"at","at":"2026-03-01T09:00:00.000Z"}"#,
        r#"{"kind":"every","everyMs":60000}"#,
        r#"{"kind":"every","everyMs":60000,"anchorMs":1767225600000}"#,
        r#"{"kind":"cron","expr":"0 9 * * *"}"#,
        r#"{"kind":"cron","expr":"0 * * * *","tz":"Europe/Berlin","staggerMs":300000}"#,
    ];
    for json in cases {
        let spec: ScheduleSpec = serde_json::from_str(json).unwrap_or_else(|err| panic!("{json}: {err}"));
        assert_eq!(serde_json::to_string(&spec).unwrap(), json);
    }
}

#[test]
fn wire_reads_legacy_at_ms_and_rejects_unknown_fields() {
    let legacy: ScheduleSpec = serde_json::from_str(r#"{"kind":"at","atMs":1772355600000}"#).unwrap();
    assert_eq!(serde_json::to_string(&legacy).unwrap(), r#"{"kind":"at","at":"2026-03-01T09:00:00.000Z"}"#);
    let cases = [
        r#"{"kind":"every","everyMs":1000,"tz":"UTC"}"#,
        r#"{"kind":"cron","expr":"* * * * *","timezone":"UTC"}"#,
        r#"{"kind":"at"}"#,
        r#"{"kind":"at","atMs":-5}"#,
        r#"{"kind":"stream","command":["tail"]}"#,
        r#"{"expr":"* * * * *"}"#,
    ];
    let mut out = String::new();
    for json in cases {
        let err = serde_json::from_str::<ScheduleSpec>(json).expect_err(json);
        writeln!(out, "{json}\n  {err}").unwrap();
    }
    expect![[r#"
        {"kind":"every","everyMs":1000,"tz":"UTC"}
          unknown field `tz`, expected `everyMs` or `anchorMs`
        {"kind":"cron","expr":"* * * * *","timezone":"UTC"}
          unknown field `timezone`, expected one of `expr`, `tz`, `staggerMs`
        {"kind":"at"}
          missing field `at`
        {"kind":"at","atMs":-5}
          `atMs` must be a positive epoch-millisecond time, got -5
        {"kind":"stream","command":["tail"]}
          unknown variant `stream`, expected one of `at`, `every`, `cron` at line 1 column 16
        {"expr":"* * * * *"}
          missing field `kind` at line 1 column 20
    "#]]
    .assert_eq(&out);
}

const NOW: i64 = 1_772_355_600_000; // 2026-03-01T09:00:00Z

fn normalize(json: &str, exact: bool) -> Result<String, ScheduleError> {
    let spec: ScheduleSpec = serde_json::from_str(json).unwrap_or_else(|err| panic!("{json}: {err}"));
    let ctx = NormalizeContext { now_ms: NOW, default_tz: "America/New_York", exact };
    spec.normalize(&ctx).map(|spec| serde_json::to_string(&spec).unwrap())
}

#[test]
fn normalize_fills_what_openclaw_fills() {
    let cases = [
        (r#"{"kind":"at","at":"2026-03-01"}"#, false),
        (r#"{"kind":"at","at":"2026-03-01T09:00"}"#, false),
        (r#"{"kind":"at","at":"2026-03-01T11:00:00+02:00"}"#, false),
        (r#"{"kind":"at","at":"1772355600000"}"#, false),
        (r#"{"kind":"at","at":"2020-01-01T00:00:00Z"}"#, false),
        (r#"{"kind":"every","everyMs":60000}"#, false),
        (r#"{"kind":"every","everyMs":60000,"anchorMs":0}"#, false),
        (r#"{"kind":"cron","expr":" 0 * * * * "}"#, false),
        (r#"{"kind":"cron","expr":"0 * * * *"}"#, true),
        (r#"{"kind":"cron","expr":"0 * * * *","staggerMs":1234}"#, true),
        (r#"{"kind":"cron","expr":"0 9 * * *","tz":"europe/berlin"}"#, false),
        (r#"{"kind":"cron","expr":"5 * * * *","tz":"  "}"#, false),
    ];
    let mut out = String::new();
    for (json, exact) in cases {
        let normalized = normalize(json, exact).unwrap_or_else(|err| panic!("{json}: {err}"));
        writeln!(out, "{json}{}\n  {normalized}", if exact { " exact" } else { "" }).unwrap();
    }
    expect![[r#"
        {"kind":"at","at":"2026-03-01"}
          {"kind":"at","at":"2026-03-01T00:00:00.000Z"}
        {"kind":"at","at":"2026-03-01T09:00"}
          {"kind":"at","at":"2026-03-01T09:00:00.000Z"}
        {"kind":"at","at":"2026-03-01T11:00:00+02:00"}
          {"kind":"at","at":"2026-03-01T09:00:00.000Z"}
        {"kind":"at","at":"1772355600000"}
          {"kind":"at","at":"2026-03-01T09:00:00.000Z"}
        {"kind":"at","at":"2020-01-01T00:00:00Z"}
          {"kind":"at","at":"2020-01-01T00:00:00.000Z"}
        {"kind":"every","everyMs":60000}
          {"kind":"every","everyMs":60000,"anchorMs":1772355600000}
        {"kind":"every","everyMs":60000,"anchorMs":0}
          {"kind":"every","everyMs":60000,"anchorMs":0}
        {"kind":"cron","expr":" 0 * * * * "}
          {"kind":"cron","expr":"0 * * * *","tz":"America/New_York","staggerMs":300000}
        {"kind":"cron","expr":"0 * * * *"} exact
          {"kind":"cron","expr":"0 * * * *","tz":"America/New_York","staggerMs":0}
        {"kind":"cron","expr":"0 * * * *","staggerMs":1234} exact
          {"kind":"cron","expr":"0 * * * *","tz":"America/New_York","staggerMs":1234}
        {"kind":"cron","expr":"0 9 * * *","tz":"europe/berlin"}
          {"kind":"cron","expr":"0 9 * * *","tz":"Europe/Berlin","staggerMs":0}
        {"kind":"cron","expr":"5 * * * *","tz":"  "}
          {"kind":"cron","expr":"5 * * * *","tz":"America/New_York","staggerMs":0}
    "#]]
    .assert_eq(&out);
}

#[test]
fn normalize_errors_name_the_field() {
    let cases = [
        r#"{"kind":"cron","expr":"61 * * * *"}"#,
        r#"{"kind":"cron","expr":"* * * *"}"#,
        r#"{"kind":"cron","expr":"0 0 0 1 1 * 2030"}"#,
        r#"{"kind":"cron","expr":"5/5 * * * *"}"#,
        r#"{"kind":"cron","expr":"0 9 * * FOO"}"#,
        r#"{"kind":"cron","expr":"   "}"#,
        // Found by the `job` fuzz target: an all-comma field matched nothing and the search for
        // its next slot ran for minutes.
        r#"{"kind":"cron","expr":", * * * *"}"#,
        r#"{"kind":"cron","expr":"0 ,, * * * *"}"#,
        r#"{"kind":"cron","expr":"0 0 , * *"}"#,
        r#"{"kind":"cron","expr":"0 9 * * *","tz":"Mars/Base"}"#,
        r#"{"kind":"cron","expr":"0 9 * * *","staggerMs":-1}"#,
        r#"{"kind":"cron","expr":"0 0 30 2 *","tz":"UTC"}"#,
        r#"{"kind":"cron","expr":"0 0 31 4,6,9,11 *","tz":"UTC"}"#,
        r#"{"kind":"cron","expr":"0 0 30 2 +MON","tz":"UTC"}"#,
        r#"{"kind":"every","everyMs":0}"#,
        r#"{"kind":"every","everyMs":1}"#,
        r#"{"kind":"every","everyMs":999}"#,
        r#"{"kind":"every","everyMs":1000,"anchorMs":-1}"#,
        r#"{"kind":"at","at":"tomorrowish"}"#,
        r#"{"kind":"at","at":"2026-02-30T09:00:00Z"}"#,
        r#"{"kind":"at","at":"0"}"#,
    ];
    let mut out = String::new();
    for json in cases {
        let err = normalize(json, false).expect_err(json);
        writeln!(out, "{json}\n  {err}").unwrap();
    }
    expect![[r#"
        {"kind":"cron","expr":"61 * * * *"}
          schedule.expr: invalid cron expression "61 * * * *": minute field "61": number out of bounds (allowed 0-59)
        {"kind":"cron","expr":"* * * *"}
          schedule.expr: invalid cron expression "* * * *": expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds
        {"kind":"cron","expr":"0 0 0 1 1 * 2030"}
          schedule.expr: invalid cron expression "0 0 0 1 1 * 2030": expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds
        {"kind":"cron","expr":"5/5 * * * *"}
          schedule.expr: invalid cron expression "5/5 * * * *": minute field "5/5": invalid step syntax: single number steps like "5/5" are not allowed. Use "*/5" for wildcard steps or "X-Y/5" for range steps
        {"kind":"cron","expr":"0 9 * * FOO"}
          schedule.expr: invalid cron expression "0 9 * * FOO": day-of-week field "FOO": contains illegal character 'F' in part 'FOO'
        {"kind":"cron","expr":"   "}
          schedule.expr: invalid cron expression "": the expression is empty
        {"kind":"cron","expr":", * * * *"}
          schedule.expr: invalid cron expression ", * * * *": minute field "," matches no value
        {"kind":"cron","expr":"0 ,, * * * *"}
          schedule.expr: invalid cron expression "0 ,, * * * *": minute field ",," matches no value
        {"kind":"cron","expr":"0 0 , * *"}
          schedule.expr: invalid cron expression "0 0 , * *": day-of-month field "," matches no value
        {"kind":"cron","expr":"0 9 * * *","tz":"Mars/Base"}
          schedule.tz: unknown time zone "Mars/Base" (use an IANA name such as "Europe/Berlin" or "UTC")
        {"kind":"cron","expr":"0 9 * * *","staggerMs":-1}
          schedule.staggerMs: must be at least 0, got -1
        {"kind":"cron","expr":"0 0 30 2 *","tz":"UTC"}
          schedule.expr: invalid cron expression "0 0 30 2 *": day-of-month 30 never occurs in month 2, so the job would never run
        {"kind":"cron","expr":"0 0 31 4,6,9,11 *","tz":"UTC"}
          schedule.expr: invalid cron expression "0 0 31 4,6,9,11 *": day-of-month 31 never occurs in months 4,6,9,11, so the job would never run
        {"kind":"cron","expr":"0 0 30 2 +MON","tz":"UTC"}
          schedule.expr: invalid cron expression "0 0 30 2 +MON": day-of-month 30 never occurs in month 2, so the job would never run
        {"kind":"every","everyMs":0}
          schedule.everyMs: must be at least 1000 (1s), got 0; a job runs at most once a second
        {"kind":"every","everyMs":1}
          schedule.everyMs: must be at least 1000 (1s), got 1; a job runs at most once a second
        {"kind":"every","everyMs":999}
          schedule.everyMs: must be at least 1000 (1s), got 999; a job runs at most once a second
        {"kind":"every","everyMs":1000,"anchorMs":-1}
          schedule.anchorMs: must be at least 0, got -1
        {"kind":"at","at":"tomorrowish"}
          schedule.at: cannot parse "tomorrowish" as an ISO-8601 time or epoch milliseconds
        {"kind":"at","at":"2026-02-30T09:00:00Z"}
          schedule.at: cannot parse "2026-02-30T09:00:00Z" as an ISO-8601 time or epoch milliseconds
        {"kind":"at","at":"0"}
          schedule.at: cannot parse "0" as an ISO-8601 time or epoch milliseconds
    "#]]
    .assert_eq(&out);
}

#[test]
fn parse_at_forms() {
    let now = ms("2026-03-01T09:00:00Z");
    let cases = [
        ("2026-03-01", None),
        ("2026-03-01", Some("Europe/Berlin")),
        ("2026-03-01T09:00", None),
        ("2026-03-01T09:00", Some("Europe/Berlin")),
        ("2026-03-01 09:00:30", Some("America/New_York")),
        ("2026-03-01T09:00:00.5Z", Some("America/New_York")),
        ("2026-03-01T09:00:00+02:00", Some("America/New_York")),
        ("2026-03-01T09:00:00-0530", None),
        ("2026-03-08T02:30", Some("America/New_York")),
        ("2026-11-01T01:30", Some("America/New_York")),
        ("1772355600000", Some("Europe/Berlin")),
        ("20m", None),
        ("+5m", None),
        ("1h30m", None),
        (" +90s ", None),
    ];
    let mut out = String::new();
    for (text, tz) in cases {
        let at = parse_at(text, tz, now).unwrap_or_else(|err| panic!("{text:?}: {err}"));
        writeln!(out, "{text:?} in {} → {}", tz.unwrap_or("-"), format_iso_utc(at).unwrap()).unwrap();
    }
    for (text, tz) in [
        ("tomorrowish", None),
        ("2026-13-01", None),
        ("+soon", None),
        ("09:00", None),
        ("2026-03-01", Some("Mars/Base")),
    ] {
        writeln!(out, "{text:?} in {} → {}", tz.unwrap_or("-"), parse_at(text, tz, now).unwrap_err()).unwrap();
    }
    expect![[r#"
        "2026-03-01" in - → 2026-03-01T00:00:00.000Z
        "2026-03-01" in Europe/Berlin → 2026-02-28T23:00:00.000Z
        "2026-03-01T09:00" in - → 2026-03-01T09:00:00.000Z
        "2026-03-01T09:00" in Europe/Berlin → 2026-03-01T08:00:00.000Z
        "2026-03-01 09:00:30" in America/New_York → 2026-03-01T14:00:30.000Z
        "2026-03-01T09:00:00.5Z" in America/New_York → 2026-03-01T09:00:00.500Z
        "2026-03-01T09:00:00+02:00" in America/New_York → 2026-03-01T07:00:00.000Z
        "2026-03-01T09:00:00-0530" in - → 2026-03-01T14:30:00.000Z
        "2026-03-08T02:30" in America/New_York → 2026-03-08T07:00:00.000Z
        "2026-11-01T01:30" in America/New_York → 2026-11-01T05:30:00.000Z
        "1772355600000" in Europe/Berlin → 2026-03-01T09:00:00.000Z
        "20m" in - → 2026-03-01T09:20:00.000Z
        "+5m" in - → 2026-03-01T09:05:00.000Z
        "1h30m" in - → 2026-03-01T10:30:00.000Z
        " +90s " in - → 2026-03-01T09:01:30.000Z
        "tomorrowish" in - → schedule.at: cannot parse "tomorrowish" as an ISO-8601 time (2026-03-01, 2026-03-01T09:00, 2026-03-01T09:00:00+02:00), epoch milliseconds, or a duration from now such as 20m or +1h30m
        "2026-13-01" in - → schedule.at: cannot parse "2026-13-01" as an ISO-8601 time (2026-03-01, 2026-03-01T09:00, 2026-03-01T09:00:00+02:00), epoch milliseconds, or a duration from now such as 20m or +1h30m
        "+soon" in - → schedule.at: cannot parse "+soon" as an ISO-8601 time (2026-03-01, 2026-03-01T09:00, 2026-03-01T09:00:00+02:00), epoch milliseconds, or a duration from now such as 20m or +1h30m
        "09:00" in - → schedule.at: cannot parse "09:00" as an ISO-8601 time (2026-03-01, 2026-03-01T09:00, 2026-03-01T09:00:00+02:00), epoch milliseconds, or a duration from now such as 20m or +1h30m
        "2026-03-01" in Mars/Base → schedule.tz: unknown time zone "Mars/Base" (use an IANA name such as "Europe/Berlin" or "UTC")
    "#]]
    .assert_eq(&out);
}

#[test]
fn zones() {
    assert_eq!(validate_tz("Europe/Berlin").unwrap().name(), "Europe/Berlin");
    assert_eq!(validate_tz("america/new_york").unwrap().name(), "America/New_York");
    assert_eq!(validate_tz("utc").unwrap().name(), "UTC");
    assert!(validate_tz("Mars/Base").is_err());
    assert!(validate_tz("").is_err());
    let cases = [
        (Some("Europe/Berlin"), Some("Asia/Tokyo"), "Europe/Berlin"),
        (Some(":America/New_York"), None, "America/New_York"),
        (Some("/usr/share/zoneinfo/Asia/Tokyo"), None, "Asia/Tokyo"),
        (Some("EST5EDT,M3.2.0,M11.1.0"), Some("Europe/Paris"), "Europe/Paris"),
        (Some(""), Some("Europe/Paris"), "Europe/Paris"),
        (None, Some("Europe/Paris"), "Europe/Paris"),
        (None, Some("Not/AZone"), "UTC"),
        (None, None, "UTC"),
    ];
    for (env, sys, expected) in cases {
        assert_eq!(pick_host_timezone(env, || sys.map(str::to_string)), expected, "TZ={env:?}, system {sys:?}");
    }
    let tz = host_timezone();
    assert!(validate_tz(&tz).is_ok(), "host zone {tz:?} is valid");
}

/// A scheduler wake may recompute every job: compiling and querying 10,000 schedules must stay
/// linear and cheap (no timing assert; a quadratic or per-second search would make this crawl).
#[test]
fn ten_thousand_schedules() {
    let exprs = [
        "0 * * * *",
        "*/5 * * * *",
        "30 2 * * *",
        "0 9 * * 1-5",
        "0 9 1 * 1",
        "0 0 L * *",
        "15 */2 * * *",
        "0 30 9 * * *",
    ];
    let zones = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo"];
    let now = ms("2026-11-01T05:30:00Z");
    let mut total = 0i128;
    for i in 0..10_000usize {
        let spec = match i % 10 {
            8 => ScheduleSpec::Every { every_ms: 60_000 + i as i64, anchor_ms: Some(now - 1_000_000) },
            9 => ScheduleSpec::At { at: format_iso_utc(now + i as i64 * 1_000).unwrap() },
            _ => ScheduleSpec::Cron {
                expr: exprs[i % exprs.len()].into(),
                tz: Some(zones[i % zones.len()].into()),
                stagger_ms: None,
            },
        };
        let schedule = Schedule::new(&spec, &format!("job-{i}")).unwrap();
        let next = schedule.next_after(now).expect("fires again");
        assert!(next > now);
        if let Some(latest) = schedule.latest_at_or_before(now) {
            assert!(latest <= now);
        }
        total += i128::from(next - now);
    }
    assert!(total > 0);
}

#[test]
fn compile_requires_a_normalised_spec() {
    let no_zone = ScheduleSpec::Cron { expr: "0 9 * * *".into(), tz: None, stagger_ms: None };
    let no_anchor = ScheduleSpec::Every { every_ms: 1_000, anchor_ms: None };
    expect![[r#"schedule.tz: missing; normalise the schedule (it fills in the default zone) before compiling it"#]]
        .assert_eq(&Schedule::new(&no_zone, "job").unwrap_err().to_string());
    expect![[r#"schedule.anchorMs: missing; normalise the schedule before compiling it"#]]
        .assert_eq(&Schedule::new(&no_anchor, "job").unwrap_err().to_string());
    let berlin = cron("0 9 * * *", "Europe/Berlin", 0, "job");
    assert_eq!(berlin.zone_name(), Some("Europe/Berlin"));
    assert_eq!(berlin.zone(), Some(chrono_tz::Europe::Berlin));
    assert_eq!(
        chrono_tz::Europe::Berlin.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap().timestamp_millis(),
        berlin.next_after(ms("2026-06-01T00:00:00Z")).unwrap()
    );
}

/// Days of month that exist in some listed month (Feb 29 in leap years), or a day-of-week field
/// that matches on its own (Vixie OR), or `L`, keep a pattern; only an impossible date is refused.
#[test]
fn rare_but_real_dates_still_fire() {
    check_fires(
        &[
            ("UTC", "0 0 29 2 *", "2026-11-26T00:00:00Z", 2),
            ("UTC", "0 0 30 2 1", "2026-11-26T00:00:00Z", 2),
            ("UTC", "0 0 L 2 *", "2026-11-26T00:00:00Z", 2),
            ("UTC", "0 0 31 2,3 *", "2026-11-26T00:00:00Z", 2),
        ],
        expect![[r#"
            UTC "0 0 29 2 *" after 2026-11-26 00:00 UTC (00:00Z):
              2028-02-29 00:00 UTC (00:00Z)
              2032-02-29 00:00 UTC (00:00Z)
            UTC "0 0 30 2 1" after 2026-11-26 00:00 UTC (00:00Z):
              2027-02-01 00:00 UTC (00:00Z)
              2027-02-08 00:00 UTC (00:00Z)
            UTC "0 0 L 2 *" after 2026-11-26 00:00 UTC (00:00Z):
              2027-02-28 00:00 UTC (00:00Z)
              2028-02-29 00:00 UTC (00:00Z)
            UTC "0 0 31 2,3 *" after 2026-11-26 00:00 UTC (00:00Z):
              2027-03-31 00:00 UTC (00:00Z)
              2028-03-31 00:00 UTC (00:00Z)
        "#]],
    );
}
