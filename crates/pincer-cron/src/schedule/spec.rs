//! A job's `schedule` normalised at create time, as OpenClaw does it. The wire form itself,
//! [`ScheduleSpec`], is `pincer_protocol::schema::cron`'s.

pub use pincer_protocol::schema::cron::ScheduleSpec;

use super::{Schedule, ScheduleError, at, validate_tz};

/// The stagger window given to top-of-hour cron expressions that do not set one (5 minutes).
pub const DEFAULT_TOP_OF_HOUR_STAGGER_MS: i64 = 300_000;

/// The shortest `every` interval a job may be created or edited with: one second, the finest
/// grain of a cron expression (6 fields). OpenClaw accepts `everyMs ≥ 1` but never re-arms its
/// timer sooner than 2 s after a due run; Pincer refuses what it would not honour, at `cron.add`,
/// `cron.update` and `--every`. Jobs already stored with a shorter interval still load and run.
pub const MIN_EVERY_MS: i64 = 1_000;

/// What [`Normalize::normalize`] needs from the caller.
#[derive(Debug, Clone, Copy)]
pub struct NormalizeContext<'a> {
    /// The creation time: the default `every` anchor, and "now" for the upcoming-run check.
    pub now_ms: i64,
    /// The zone for a cron job without `tz`: `agents.defaults.timezone`, else [`super::host_timezone`].
    pub default_tz: &'a str,
    /// `--exact`: a cron job without `staggerMs` gets 0 instead of the top-of-hour default.
    pub exact: bool,
}

/// Create-time normalisation of a [`ScheduleSpec`].
pub trait Normalize: Sized {
    /// Validates the spec and fills in what OpenClaw fills in on create: `at` as ISO UTC, the `every`
    /// anchor, the cron zone (canonical spelling) and the stagger window. An explicit `staggerMs` is
    /// kept, even with `exact`. A past `at` is accepted; an `every` or cron schedule without an
    /// upcoming run is not.
    fn normalize(&self, ctx: &NormalizeContext<'_>) -> Result<Self, ScheduleError>;
}

impl Normalize for ScheduleSpec {
    fn normalize(&self, ctx: &NormalizeContext<'_>) -> Result<ScheduleSpec, ScheduleError> {
        let spec = match self {
            ScheduleSpec::At { at } => {
                let ms = at::parse_absolute_ms(at, None).ok_or_else(|| at::invalid(at))?;
                ScheduleSpec::At { at: at::format_iso_utc(ms).ok_or_else(|| at::invalid(at))? }
            }
            ScheduleSpec::Every { every_ms, anchor_ms } => {
                if *every_ms < MIN_EVERY_MS {
                    return Err(ScheduleError::InvalidField {
                        field: "everyMs",
                        problem: format!(
                            "must be at least {MIN_EVERY_MS} (1s), got {every_ms}; a job runs at most once a second"
                        ),
                    });
                }
                ScheduleSpec::Every { every_ms: *every_ms, anchor_ms: Some(anchor_ms.unwrap_or(ctx.now_ms)) }
            }
            ScheduleSpec::Cron { expr, tz, stagger_ms } => {
                let expr = expr.trim();
                let zone = match tz.as_deref().filter(|name| !name.trim().is_empty()) {
                    Some(name) => validate_tz(name)?,
                    None => validate_tz(ctx.default_tz)?,
                };
                let stagger_ms = match stagger_ms {
                    Some(ms) => *ms,
                    None if ctx.exact => 0,
                    None => default_stagger_ms(expr),
                };
                ScheduleSpec::Cron {
                    expr: expr.to_string(),
                    tz: Some(zone.name().to_string()),
                    stagger_ms: Some(stagger_ms),
                }
            }
        };
        // Compiling checks the ranges and the expression.
        let schedule = Schedule::new(&spec, "")?;
        if !matches!(spec, ScheduleSpec::At { .. }) && schedule.next_after(ctx.now_ms).is_none() {
            return Err(ScheduleError::NeverFires { schedule: describe(&spec) });
        }
        Ok(spec)
    }
}

fn describe(spec: &ScheduleSpec) -> String {
    match spec {
        ScheduleSpec::At { at } => format!("at {at:?}"),
        ScheduleSpec::Every { every_ms, .. } => format!("every {every_ms} ms"),
        ScheduleSpec::Cron { expr, tz, .. } => format!("cron {expr:?} in {}", tz.as_deref().unwrap_or("UTC")),
    }
}

/// Whether `expr` fires at the top of every (or every n-th) hour, OpenClaw's test for the default
/// stagger: the minute field is exactly `0` (and the seconds field too, with 6 fields) and the hour
/// field contains `*` (`*`, `*/2`).
pub fn is_top_of_hour_expr(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.as_slice() {
        [minute, hour, _, _, _] => *minute == "0" && hour.contains('*'),
        [second, minute, hour, _, _, _] => *second == "0" && *minute == "0" && hour.contains('*'),
        _ => false,
    }
}

/// The stagger window for a cron job that does not set one: [`DEFAULT_TOP_OF_HOUR_STAGGER_MS`] for
/// top-of-hour expressions, else 0.
pub fn default_stagger_ms(expr: &str) -> i64 {
    if is_top_of_hour_expr(expr) { DEFAULT_TOP_OF_HOUR_STAGGER_MS } else { 0 }
}
