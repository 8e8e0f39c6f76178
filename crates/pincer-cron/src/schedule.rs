//! Schedule math: when a job fires. This module owns the create-time normalisation of a job's
//! `schedule` ([`ScheduleSpec`], whose wire form is `pincer_protocol`'s), the compiled runtime form ([`Schedule`]) that
//! answers "next fire after t" and "latest fire at or before t" for `at`, `every` (anchor grid) and
//! `cron` (croner in an IANA zone, per-job stagger), Pincer's DST rule, and the parsing of `--at`
//! times. Everything here is pure: no I/O and no clock reads; time comes in as epoch milliseconds.
//!
//! **DST rule** (Vixie cron's, which Pincer follows on purpose where OpenClaw silently skips): a
//! wall-clock time repeated when the clock goes back fires once, at its first occurrence; a
//! fixed-time job (no `*` in its second, minute or hour field) whose time falls in the hour skipped
//! when the clock goes forward fires once, at the first instant after the gap; wildcard and stepped
//! patterns just skip the missing times.

#![warn(missing_docs)]

mod at;
mod cron;
pub mod describe;
mod spec;
#[cfg(test)]
mod tests;
mod zone;

pub use at::{format_iso_utc, parse_at};
pub use spec::{
    DEFAULT_TOP_OF_HOUR_STAGGER_MS, MIN_EVERY_MS, Normalize, NormalizeContext, ScheduleSpec, default_stagger_ms,
    is_top_of_hour_expr,
};
pub use zone::{host_timezone, validate_tz};

use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use self::cron::CronRule;

/// Why a schedule was rejected; the message names the offending `schedule.*` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `schedule.expr` is not a cron expression Pincer accepts (5 fields, or 6 with leading seconds).
    #[error("schedule.expr: invalid cron expression {expr:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// What croner (or Pincer) objected to.
        reason: String,
    },
    /// `schedule.tz` (or the default zone) is not an IANA time zone name.
    #[error("schedule.tz: unknown time zone {name:?} (use an IANA name such as \"Europe/Berlin\" or \"UTC\")")]
    UnknownZone {
        /// The name as given.
        name: String,
    },
    /// `schedule.at` (or `--at`) does not parse as a point in time.
    #[error("schedule.at: cannot parse {text:?} as {expected}")]
    InvalidAt {
        /// The text as given.
        text: String,
        /// The accepted forms, for the message.
        expected: &'static str,
    },
    /// A numeric field is out of range, or a field the compiled form needs is missing.
    #[error("schedule.{field}: {problem}")]
    InvalidField {
        /// The wire name of the field (`everyMs`, `anchorMs`, `staggerMs`, `tz`, …).
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The schedule is well-formed but has no fire time after now.
    #[error("schedule: {schedule} has no upcoming run time and would never fire")]
    NeverFires {
        /// A short description of the schedule (`cron "0 0 30 2 *" in UTC`).
        schedule: String,
    },
}

/// A compiled schedule: the cron expression parsed once, the zone and stagger offset resolved, ready
/// to answer fire-time questions cheaply for every job on every scheduler wake.
#[derive(Debug, Clone)]
pub struct Schedule {
    rule: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    At { at_ms: i64 },
    Every { every_ms: i64, anchor_ms: i64 },
    Cron { rule: Box<CronRule>, stagger_ms: i64, offset_ms: i64 },
}

impl Schedule {
    /// Compiles a normalised spec for the job `job_id` (the id seeds the stagger offset).
    ///
    /// A cron spec must carry its zone and an `every` spec its anchor (both are filled by
    /// [`ScheduleSpec::normalize`]); an absent `staggerMs` takes OpenClaw's effective default
    /// ([`default_stagger_ms`]), so jobs imported from OpenClaw keep their minute.
    pub fn new(spec: &ScheduleSpec, job_id: &str) -> Result<Schedule, ScheduleError> {
        let rule = match spec {
            ScheduleSpec::At { at } => {
                Rule::At { at_ms: at::parse_absolute_ms(at, None).ok_or_else(|| at::invalid(at))? }
            }
            ScheduleSpec::Every { every_ms, anchor_ms } => {
                if *every_ms < 1 {
                    return Err(field_error("everyMs", format!("must be at least 1, got {every_ms}")));
                }
                let anchor_ms = anchor_ms.ok_or_else(|| {
                    field_error("anchorMs", "missing; normalise the schedule before compiling it".into())
                })?;
                if anchor_ms < 0 {
                    return Err(field_error("anchorMs", format!("must be at least 0, got {anchor_ms}")));
                }
                Rule::Every { every_ms: *every_ms, anchor_ms }
            }
            ScheduleSpec::Cron { expr, tz, stagger_ms } => {
                let name = tz.as_deref().ok_or_else(|| {
                    field_error(
                        "tz",
                        "missing; normalise the schedule (it fills in the default zone) before compiling it".into(),
                    )
                })?;
                let rule = CronRule::parse(expr, validate_tz(name)?)?;
                let stagger_ms = match *stagger_ms {
                    Some(ms) if ms < 0 => {
                        return Err(field_error("staggerMs", format!("must be at least 0, got {ms}")));
                    }
                    Some(ms) => ms,
                    None => default_stagger_ms(expr),
                };
                Rule::Cron { rule: Box::new(rule), stagger_ms, offset_ms: stagger_offset_ms(job_id, stagger_ms) }
            }
        };
        Ok(Schedule { rule })
    }

    /// The first fire instant strictly after `after_ms`, or `None` if the schedule never fires again.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.rule {
            Rule::At { at_ms } => (*at_ms > after_ms).then_some(*at_ms),
            Rule::Every { every_ms, anchor_ms } => {
                if after_ms < *anchor_ms {
                    return Some(*anchor_ms);
                }
                let steps = (after_ms - anchor_ms) / every_ms + 1;
                steps.checked_mul(*every_ms)?.checked_add(*anchor_ms)
            }
            // Searching slots from `after - offset` finds the slot whose staggered fire is the first
            // after `after`, even when the slot itself is already past (OpenClaw does the same).
            Rule::Cron { rule, offset_ms, .. } => {
                rule.slot_after(after_ms.checked_sub(*offset_ms)?)?.checked_add(*offset_ms)
            }
        }
    }

    /// The latest fire instant at or before `t_ms`, or `None` if there is none; the scheduler uses it
    /// to notice slots missed while it was down. The search is bounded (croner walks backwards by
    /// field, not by second), never an iteration from the epoch.
    pub fn latest_at_or_before(&self, t_ms: i64) -> Option<i64> {
        match &self.rule {
            Rule::At { at_ms } => (*at_ms <= t_ms).then_some(*at_ms),
            Rule::Every { every_ms, anchor_ms } => {
                (t_ms >= *anchor_ms).then(|| anchor_ms + (t_ms - anchor_ms) / every_ms * every_ms)
            }
            Rule::Cron { rule, offset_ms, .. } => {
                rule.slot_at_or_before(t_ms.checked_sub(*offset_ms)?)?.checked_add(*offset_ms)
            }
        }
    }

    /// Up to `n` consecutive fire instants after `after_ms`, for previews ("next five runs").
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n.min(64));
        let mut cursor = after_ms;
        while out.len() < n {
            let Some(next) = self.next_after(cursor) else { break };
            out.push(next);
            cursor = next;
        }
        out
    }

    /// This job's offset inside its stagger window, in milliseconds (0 for `at`, `every` and exact
    /// cron jobs).
    pub fn stagger_offset_ms(&self) -> i64 {
        match &self.rule {
            Rule::Cron { offset_ms, .. } => *offset_ms,
            _ => 0,
        }
    }

    /// The effective stagger window in milliseconds (0 for `at` and `every`).
    pub fn stagger_ms(&self) -> i64 {
        match &self.rule {
            Rule::Cron { stagger_ms, .. } => *stagger_ms,
            _ => 0,
        }
    }

    /// The zone a cron schedule is evaluated in (`None` for `at` and `every`).
    pub fn zone(&self) -> Option<Tz> {
        match &self.rule {
            Rule::Cron { rule, .. } => Some(rule.zone()),
            _ => None,
        }
    }

    /// The IANA name of the cron zone, for display (`None` for `at` and `every`).
    pub fn zone_name(&self) -> Option<&'static str> {
        self.zone().map(|tz| tz.name())
    }
}

/// The per-job offset inside a stagger window: `u32::from_be_bytes(sha256(job_id)[0..4]) % stagger_ms`,
/// exactly as OpenClaw computes it, so jobs migrated from OpenClaw keep their firing minute.
pub fn stagger_offset_ms(job_id: &str, stagger_ms: i64) -> i64 {
    if stagger_ms <= 1 {
        return 0;
    }
    let digest = Sha256::digest(job_id.as_bytes());
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    i64::from(head) % stagger_ms
}

fn field_error(field: &'static str, problem: String) -> ScheduleError {
    ScheduleError::InvalidField { field, problem }
}
