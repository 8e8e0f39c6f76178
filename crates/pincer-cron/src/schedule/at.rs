//! Points in time as users write them: ISO-8601 dates and date-times, epoch milliseconds, and (for
//! the CLI's `--at`) durations from now such as `20m` or `+1h30m`.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use pincer_core::duration::parse_duration_ms;

pub use pincer_protocol::schema::cron::{MAX_AT_MS, format_iso_utc};

use super::ScheduleError;
use super::zone::{self, validate_tz};

const ISO_OR_EPOCH: &str = "an ISO-8601 time or epoch milliseconds";
const ISO_EPOCH_OR_DURATION: &str = "an ISO-8601 time (2026-03-01, 2026-03-01T09:00, 2026-03-01T09:00:00+02:00), epoch milliseconds, \
     or a duration from now such as 20m or +1h30m";

/// Parses the CLI's `--at`: an ISO date (midnight) or date-time, with `Z` or an offset, or without
/// one meaning local time in `tz` (UTC if `tz` is `None`); digits only for epoch ms; or a duration
/// (`20m`, `+5m`, `1h30m`) added to `now_ms`. A local time skipped by DST means the first instant after
/// the gap, and a repeated one its first occurrence.
pub fn parse_at(text: &str, tz: Option<&str>, now_ms: i64) -> Result<i64, ScheduleError> {
    let zone = tz.map(validate_tz).transpose()?;
    let trimmed = text.trim();
    let invalid = || ScheduleError::InvalidAt { text: text.to_string(), expected: ISO_EPOCH_OR_DURATION };
    let from_now = |duration: &str| {
        let ms = parse_duration_ms(duration, None).map_err(|_| invalid())?;
        i64::try_from(ms).ok().and_then(|ms| now_ms.checked_add(ms)).filter(|ms| *ms <= MAX_AT_MS).ok_or_else(invalid)
    };
    if let Some(duration) = trimmed.strip_prefix('+') {
        return from_now(duration);
    }
    match parse_absolute_ms(trimmed, zone.as_ref()) {
        Some(ms) => Ok(ms),
        None => from_now(trimmed),
    }
}

/// The error for an unparseable `schedule.at`.
pub(super) fn invalid(text: &str) -> ScheduleError {
    ScheduleError::InvalidAt { text: text.to_string(), expected: ISO_OR_EPOCH }
}

/// Parses an absolute time: digits only as positive epoch ms, else ISO-8601; an offset-less time is
/// local to `zone`, or UTC without one.
pub(super) fn parse_absolute_ms(text: &str, zone: Option<&chrono_tz::Tz>) -> Option<i64> {
    let text = text.trim();
    let ms = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>().ok().filter(|ms| *ms > 0)?
    } else {
        let (wall, offset_secs) = parse_iso(text)?;
        match (offset_secs, zone) {
            (Some(offset), _) => wall.and_utc().timestamp_millis().checked_sub(i64::from(offset) * 1000)?,
            (None, Some(tz)) => zone::place_ms(tz, wall)?,
            (None, None) => wall.and_utc().timestamp_millis(),
        }
    };
    (0..=MAX_AT_MS).contains(&ms).then_some(ms)
}

/// `YYYY-MM-DD`, optionally followed by `T` (or a space) and `HH:MM[:SS[.fff]]`, optionally followed
/// by `Z` or `±HH[:MM]`. Returns the wall time and the offset in seconds east of UTC, if one was given.
fn parse_iso(text: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let mut s = Scanner(text.as_bytes());
    let year = s.digits(4)?;
    s.byte(b'-')?;
    let month = s.digits(2)?;
    s.byte(b'-')?;
    let day = s.digits(2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if s.0.is_empty() {
        return Some((date.and_time(NaiveTime::MIN), None));
    }
    if !matches!(s.0.first(), Some(b'T' | b't' | b' ')) {
        return None;
    }
    s.0 = &s.0[1..];
    let hour = s.digits(2)?;
    s.byte(b':')?;
    let minute = s.digits(2)?;
    let (mut second, mut nanos) = (0, 0);
    if s.byte(b':').is_some() {
        second = s.digits(2)?;
        if s.byte(b'.').is_some() || s.byte(b',').is_some() {
            let frac = s.run_of_digits();
            if frac.is_empty() || frac.len() > 9 {
                return None;
            }
            let padded = format!("{:0<9}", std::str::from_utf8(frac).ok()?);
            nanos = padded.parse().ok()?;
        }
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let offset = match s.0 {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let mut o = Scanner(rest);
            let hours = o.digits(2)?;
            let minutes = match o.0 {
                [] => 0,
                [b':', ..] => {
                    o.byte(b':')?;
                    o.digits(2)?
                }
                _ => o.digits(2)?,
            };
            if !o.0.is_empty() || hours > 23 || minutes > 59 {
                return None;
            }
            let secs = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => return None,
    };
    Some((date.and_time(time), offset))
}

/// A cursor over ASCII input for the ISO parser.
struct Scanner<'a>(&'a [u8]);

impl<'a> Scanner<'a> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let head = self.0.get(..n)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[n..];
        head.iter().try_fold(0u32, |acc, b| acc.checked_mul(10)?.checked_add(u32::from(b - b'0')))
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        let (first, rest) = self.0.split_first()?;
        (*first == want).then(|| self.0 = rest)
    }

    fn run_of_digits(&mut self) -> &'a [u8] {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (run, rest) = self.0.split_at(len);
        self.0 = rest;
        run
    }
}
