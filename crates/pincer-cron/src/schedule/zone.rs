//! Time zones: validating IANA names, finding the host's zone, and placing local wall-clock times on
//! the time line under Pincer's DST rule (a repeated time is its first occurrence; a skipped time maps
//! to the first instant after the gap).

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

use super::ScheduleError;

const DAY_SECS: i64 = 86_400;

/// Parses an IANA zone name (`Europe/Berlin`; any letter case, as `Intl` accepts it) into a zone.
/// Store `tz.name()` to keep the canonical spelling.
pub fn validate_tz(name: &str) -> Result<Tz, ScheduleError> {
    let trimmed = name.trim();
    if let Ok(tz) = trimmed.parse::<Tz>() {
        return Ok(tz);
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(trimmed))
        .copied()
        .ok_or_else(|| ScheduleError::UnknownZone { name: name.to_string() })
}

/// The host's IANA zone: `TZ` if it names one (`Europe/Berlin`, `:Europe/Berlin`, or a
/// `…/zoneinfo/Europe/Berlin` path), else the system setting, else `"UTC"`.
pub fn host_timezone() -> String {
    pick_host_timezone(std::env::var("TZ").ok().as_deref(), || iana_time_zone::get_timezone().ok())
}

pub(super) fn pick_host_timezone(tz_env: Option<&str>, system: impl FnOnce() -> Option<String>) -> String {
    let from_env = tz_env.map(|raw| {
        let raw = raw.strip_prefix(':').unwrap_or(raw);
        raw.rsplit_once("zoneinfo/").map_or(raw, |(_, name)| name)
    });
    from_env
        .and_then(|name| validate_tz(name).ok())
        .or_else(|| system().and_then(|name| validate_tz(&name).ok()))
        .map_or_else(|| "UTC".to_string(), |tz| tz.name().to_string())
}

/// The local wall-clock time of the whole second `secs` in `tz`.
pub(super) fn wall_of(tz: &Tz, secs: i64) -> Option<NaiveDateTime> {
    Some(DateTime::from_timestamp(secs, 0)?.with_timezone(tz).naive_local())
}

/// Where a local wall-clock time lands on the time line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// The time exists; for a time repeated when the clock goes back, this is its first occurrence.
    Exists(i64),
    /// The time was skipped when the clock went forward; `gap_end` is the first instant after it.
    Skipped { gap_end: i64 },
}

/// Places a whole-second wall-clock time in `tz`, in epoch seconds.
pub(super) fn place(tz: &Tz, wall: NaiveDateTime) -> Option<Placement> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(at) => Some(Placement::Exists(at.timestamp())),
        LocalResult::Ambiguous(first, _) => Some(Placement::Exists(first.timestamp())),
        LocalResult::None => gap_end(tz, wall).map(|gap_end| Placement::Skipped { gap_end }),
    }
}

/// Places a wall-clock time with sub-second precision, in epoch milliseconds (for `--at` in a zone).
pub(super) fn place_ms(tz: &Tz, wall: NaiveDateTime) -> Option<i64> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(at) => Some(at.timestamp_millis()),
        LocalResult::Ambiguous(first, _) => Some(first.timestamp_millis()),
        LocalResult::None => gap_end(tz, wall)?.checked_mul(1000),
    }
}

/// The first whole second whose wall-clock time is later than `wall`, a time inside a gap: the
/// instant the clock jumped forward over it.
fn gap_end(tz: &Tz, wall: NaiveDateTime) -> Option<i64> {
    // Offsets lie within ±14 h, so the wall clock is before `wall` a day earlier and after it a day
    // later. A false→true flip of "wall clock > `wall`" can only be a jump over `wall` (the clock
    // never shows `wall`), so bisection finds the jump even if the window holds other changes.
    let guess = wall.and_utc().timestamp();
    let (mut before, mut after) = (guess - DAY_SECS, guess + DAY_SECS);
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if wall_of(tz, mid)? > wall {
            after = mid;
        } else {
            before = mid;
        }
    }
    Some(after)
}

/// The latest wall-clock second all of whose slots land at or before `secs`: the start point for both
/// forward ("strictly after") and backward ("at or before") slot searches.
///
/// Normally that is just the wall clock at `secs`. During the second pass of a repeated hour every
/// repeated wall time has already landed on its first pass, so the answer is the last second before
/// the clock went back.
pub(super) fn search_wall(tz: &Tz, secs: i64) -> Option<NaiveDateTime> {
    let wall = wall_of(tz, secs)?;
    if let LocalResult::Ambiguous(first, second) = tz.from_local_datetime(&wall)
        && second.timestamp() == secs
    {
        let went_back = offset_change(tz, first.timestamp(), secs)?;
        return wall_of(tz, went_back - 1);
    }
    Some(wall)
}

/// The first second in `(lo, hi]` whose UTC offset is that of `hi`, given that `lo`'s differs.
fn offset_change(tz: &Tz, mut lo: i64, mut hi: i64) -> Option<i64> {
    let target = offset_at(tz, hi)?;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid)? == target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

fn offset_at(tz: &Tz, secs: i64) -> Option<i32> {
    let utc = DateTime::from_timestamp(secs, 0)?.naive_utc();
    Some(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}
