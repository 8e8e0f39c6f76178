//! Cron slots: a croner pattern evaluated in an IANA zone under Pincer's DST rule.
//!
//! croner 4 searching a zoned `DateTime` already moves a fixed-time job out of the spring-forward gap
//! and fires it once in the fall-back overlap, but it fires wildcard and stepped patterns on *both*
//! passes of a repeated hour (`*/30` gives 01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST), and it calls a
//! job fixed only when the second, minute and hour fields are single values (so `30 2,14 * * *` skips
//! its 02:30 on the spring-forward day, where Vixie cron runs it at 03:00). So croner searches the
//! naive local wall clock here, and [`zone::place`] maps each wall time it finds onto the time line:
//! a repeated time lands on its first occurrence, a skipped time on the end of the gap for fixed-time
//! patterns (Vixie's definition: no `*` in the second, minute or hour field) and nowhere for the rest.
//! That mapping never goes backwards in time, so a search that starts from [`zone::search_wall`]
//! returns slots in order without duplicates.

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

use super::ScheduleError;
use super::zone::{self, Placement};

/// Gaps one search may hop over before it gives up (a pattern that only ever matches inside gaps).
const MAX_GAP_HOPS: usize = 4;

/// A parsed cron pattern and the zone it runs in; slots are whole seconds, returned in epoch ms.
#[derive(Debug, Clone)]
pub(super) struct CronRule {
    cron: Cron,
    tz: Tz,
    fixed_time: bool,
}

impl CronRule {
    /// Parses `expr` (5 fields, or 6 with leading seconds; Vixie OR of day-of-month and day-of-week,
    /// `L`, `W`, `#`, `?`, `+` for AND, `@daily`-style nicknames).
    pub(super) fn parse(expr: &str, tz: Tz) -> Result<CronRule, ScheduleError> {
        let cron = parser()
            .parse(expr)
            .map_err(|err| ScheduleError::InvalidCron { expr: expr.to_string(), reason: describe(expr, &err) })?;
        let pattern = &cron.pattern;
        // croner skips empty list items, so a field of only commas (`,`) matches nothing, and a
        // search for it walks for minutes before giving up: refuse it here.
        let components =
            [&pattern.seconds, &pattern.minutes, &pattern.hours, &pattern.days, &pattern.months, &pattern.days_of_week];
        if let Some(i) = components.iter().position(|c| c.values().is_empty() && !c.has_modifiers()) {
            let fields: Vec<&str> = expr.split_whitespace().collect();
            // A 5-field expression has no seconds field: its fields are the last five.
            let text = (i + fields.len()).checked_sub(6).and_then(|at| fields.get(at)).filter(|_| fields.len() >= 5);
            let reason = match text {
                Some(text) => format!("{} field {text:?} matches no value", FIELDS[i].0),
                None => format!("the {} field matches no value", FIELDS[i].0),
            };
            return Err(ScheduleError::InvalidCron { expr: expr.to_string(), reason });
        }
        if let Some(reason) = never_a_date(expr, &cron) {
            return Err(ScheduleError::InvalidCron { expr: expr.to_string(), reason });
        }
        let fixed_time =
            !(pattern.seconds.from_wildcard || pattern.minutes.from_wildcard || pattern.hours.from_wildcard);
        Ok(CronRule { cron, tz, fixed_time })
    }

    pub(super) fn zone(&self) -> Tz {
        self.tz
    }

    /// The first slot strictly after `after_ms`.
    pub(super) fn slot_after(&self, after_ms: i64) -> Option<i64> {
        let mut cursor = zone::search_wall(&self.tz, after_ms.div_euclid(1000))?;
        let mut inclusive = false;
        for _ in 0..MAX_GAP_HOPS {
            let wall = self.cron.find_next_occurrence(&cursor, inclusive).ok()?;
            match self.land(wall)? {
                Landing::At(secs) => return secs.checked_mul(1000),
                Landing::Nowhere { gap_end } => {
                    cursor = zone::wall_of(&self.tz, gap_end)?;
                    inclusive = true;
                }
            }
        }
        None
    }

    /// The latest slot at or before `t_ms`.
    pub(super) fn slot_at_or_before(&self, t_ms: i64) -> Option<i64> {
        let mut cursor = zone::search_wall(&self.tz, t_ms.div_euclid(1000))?;
        for _ in 0..MAX_GAP_HOPS {
            let wall = self.cron.find_previous_occurrence(&cursor, true).ok()?;
            match self.land(wall)? {
                Landing::At(secs) => return secs.checked_mul(1000),
                Landing::Nowhere { gap_end } => cursor = zone::wall_of(&self.tz, gap_end - 1)?,
            }
        }
        None
    }

    fn land(&self, wall: NaiveDateTime) -> Option<Landing> {
        Some(match zone::place(&self.tz, wall)? {
            Placement::Exists(secs) => Landing::At(secs),
            Placement::Skipped { gap_end } if self.fixed_time => Landing::At(gap_end),
            Placement::Skipped { gap_end } => Landing::Nowhere { gap_end },
        })
    }
}

enum Landing {
    At(i64),
    Nowhere { gap_end: i64 },
}

/// Why no date ever matches the pattern (`0 0 30 2 *`: February has no 30th), if so. croner would
/// search to the year 5000 for it (~150 ms per search) and the job would silently never run.
/// Only the days of month decide when the day-of-week field does not match on its own (it is `*`,
/// or joined with `+` for AND); `L` and `W` always find a day.
fn never_a_date(expr: &str, cron: &Cron) -> Option<String> {
    let p = &cron.pattern;
    let and_mode = expr.split_whitespace().last().is_some_and(|dow| dow.starts_with('+'));
    if p.days.from_wildcard || p.days.has_modifiers() || (!p.days_of_week.from_wildcard && !and_mode) {
        return None;
    }
    // February has a 29th in leap years.
    const LONGEST: [u16; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (days, months) = (p.days.values(), p.months.values());
    let exists = months.iter().any(|&m| {
        days.iter().any(|&d| (m as usize).checked_sub(1).and_then(|i| LONGEST.get(i)).is_some_and(|&n| d <= n))
    });
    if exists {
        return None;
    }
    let list = |v: &[u16]| v.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    Some(format!(
        "day-of-month {} never occurs in {} {}, so the job would never run",
        list(&days),
        if months.len() == 1 { "month" } else { "months" },
        list(&months)
    ))
}

/// The fields of a 6-field expression, with what each allows, for error messages.
const FIELDS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, L, #"),
];

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build()
}

/// croner's complaint, pinned to the field that caused it when there is one, as the tail of a
/// `schedule.expr` message: `minute field "61": number out of bounds (allowed 0-59)`.
fn describe(expr: &str, err: &CronError) -> String {
    let reason = match err {
        CronError::EmptyPattern => return "the expression is empty".to_string(),
        CronError::InvalidPattern(msg) if msg.contains("fields") => {
            return "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds"
                .to_string();
        }
        CronError::InvalidPattern(msg) | CronError::IllegalCharacters(msg) | CronError::ComponentError(msg) => {
            msg.clone()
        }
        other => other.to_string(),
    };
    let reason = reason.trim_end_matches('.').replace("CronPattern ", "");
    let reason = match reason.get(..1) {
        Some(first) => format!("{}{}", first.to_lowercase(), &reason[1..]),
        None => reason,
    };
    // Find the culprit by parsing each field alone, the others replaced by `*`.
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if !(5..=6).contains(&fields.len()) {
        return reason;
    }
    let names = &FIELDS[FIELDS.len() - fields.len()..];
    let culprit = (0..fields.len()).find(|&i| {
        let alone: Vec<&str> = (0..fields.len()).map(|j| if i == j { fields[j] } else { "*" }).collect();
        parser().parse(&alone.join(" ")).is_err()
    });
    match culprit {
        Some(i) if reason.contains("out of bounds") => {
            format!("{} field {:?}: number out of bounds (allowed {})", names[i].0, fields[i], names[i].1)
        }
        Some(i) => format!("{} field {:?}: {reason}", names[i].0, fields[i]),
        None => reason,
    }
}
