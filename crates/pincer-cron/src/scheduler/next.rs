//! After a run: the job's next slot — the schedule's next fire, an early retry after a transient
//! error, the error backoff — and whether the job turns itself off (a one-shot that is done, a
//! recurring job after too many errors in a row). Pure; time comes in as epoch milliseconds.

use pincer_protocol::state::{ExecStatus, RunErrorReason, Trigger};

/// Error backoff after consecutive execution errors: 30 s, 1 min, 5 min, 15 min, 60 min.
pub const ERROR_BACKOFF_MS: [i64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];
/// Recurring jobs turn themselves off after this many errors in a row.
pub const AUTO_DISABLE_AFTER: u32 = 10;
/// Transient errors retry early (before the next slot) this many times.
pub const FAST_RETRIES: u32 = 3;

/// A job's next run: when it fires, the slot it is for (its identity: `cron:<job>:<slot>`) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub fire_ms: i64,
    pub slot_ms: i64,
    pub trigger: Trigger,
}

impl Slot {
    /// A regular slot: it fires when it is due.
    pub fn at(ms: i64) -> Slot {
        Slot { fire_ms: ms, slot_ms: ms, trigger: Trigger::Scheduled }
    }

    fn retry(ms: i64) -> Slot {
        Slot { fire_ms: ms, slot_ms: ms, trigger: Trigger::Retry }
    }
}

/// What the next slot depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterRun {
    /// The job is a one-shot (`at`).
    pub is_at: bool,
    pub trigger: Trigger,
    pub status: ExecStatus,
    pub reason: Option<RunErrorReason>,
    /// Execution errors in a row, this run included.
    pub consecutive_errors: u32,
    pub now_ms: i64,
    /// The schedule's first fire after now.
    pub natural: Option<i64>,
    /// The slot that was pending before the run (a manual run keeps it).
    pub pending: Option<Slot>,
    /// A paced job's next run as the run proposed it (`next_check`), already clamped to the
    /// job's pacing bounds: it replaces the schedule's next fire after a successful run.
    pub paced: Option<i64>,
}

/// Why a job turns itself off after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disable {
    /// A one-shot that will not run again.
    Done,
    /// Too many execution errors in a row.
    AutoDisabled,
}

/// The job's next slot, or how it turns itself off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub slot: Option<Slot>,
    pub disable: Option<Disable>,
}

/// Plans the job's next slot after a run.
pub fn after_run(a: &AfterRun) -> Next {
    let errors = a.consecutive_errors;
    let transient = a.reason.is_some_and(RunErrorReason::is_transient);
    let manual = a.trigger == Trigger::Manual;
    let slot = if a.is_at {
        match a.status {
            ExecStatus::Error if transient && errors <= FAST_RETRIES && !manual => {
                let index = errors.saturating_sub(1).min(4) as usize;
                Some(Slot::retry(a.now_ms + ERROR_BACKOFF_MS[index]))
            }
            // A forced run of a one-shot that failed leaves its own time as it was.
            ExecStatus::Error if manual => a.pending.map(|p| Slot::at(p.fire_ms)),
            _ => None,
        }
    } else if let (ExecStatus::Ok, Some(paced)) = (a.status, a.paced) {
        // OpenClaw's dynamic cadence: a successful run of a paced job chose its next check.
        Some(Slot::at(paced))
    } else if manual {
        // A forced run keeps the cadence: the pending slot stays as it was.
        a.pending
    } else {
        match a.status {
            ExecStatus::Ok | ExecStatus::Skipped => a.natural.map(Slot::at),
            ExecStatus::Error => {
                let backoff = a.now_ms + ERROR_BACKOFF_MS[(errors as usize).clamp(1, 5) - 1];
                match a.natural {
                    Some(n) if transient && errors <= FAST_RETRIES && backoff < n => Some(Slot::retry(backoff)),
                    Some(n) if backoff > n => Some(Slot::retry(backoff)),
                    other => other.map(Slot::at),
                }
            }
        }
    };
    let disable = if a.is_at && slot.is_none() && !manual {
        Some(Disable::Done)
    } else if !a.is_at && a.status == ExecStatus::Error && errors >= AUTO_DISABLE_AFTER {
        Some(Disable::AutoDisabled)
    } else {
        None
    };
    Next { slot: if disable.is_some() { None } else { slot }, disable }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use pincer_protocol::state::{ErrorClass, RunFailure};

    use super::*;

    const NOW: i64 = 1_000_000;
    const NATURAL: i64 = NOW + 3_600_000;

    #[test]
    fn next_slot_after_a_run() {
        let mut table = String::new();
        let reasons: [Option<RunErrorReason>; 2] =
            [Some(ErrorClass::RateLimit.into()), Some(RunFailure::ExitCode.into())];
        for is_at in [false, true] {
            for trigger in [Trigger::Scheduled, Trigger::Manual] {
                for (status, reason, errors) in [
                    (ExecStatus::Ok, None, 0),
                    (ExecStatus::Skipped, None, 0),
                    (ExecStatus::Error, reasons[0], 1),
                    (ExecStatus::Error, reasons[0], 4),
                    (ExecStatus::Error, reasons[1], 1),
                    (ExecStatus::Error, reasons[1], 5),
                    (ExecStatus::Error, reasons[1], 10),
                ] {
                    let a = AfterRun {
                        is_at,
                        trigger,
                        status,
                        reason,
                        consecutive_errors: errors,
                        now_ms: NOW,
                        natural: (!is_at).then_some(NATURAL),
                        pending: Some(Slot::at(NOW + 60_000)),
                        paced: None,
                    };
                    let next = after_run(&a);
                    let slot = next.slot.map_or("-".to_string(), |s| {
                        format!("+{}s {} (slot +{}s)", (s.fire_ms - NOW) / 1000, s.trigger, (s.slot_ms - NOW) / 1000)
                    });
                    table.push_str(&format!(
                        "{:<5} {:<9} {:<7} {:<10} errors={:<2} -> {slot} {:?}\n",
                        if is_at { "at" } else { "every" },
                        trigger.as_str(),
                        status.as_str(),
                        reason.map_or("-", RunErrorReason::as_str),
                        errors,
                        next.disable,
                    ));
                }
            }
        }
        expect![[r#"
            every scheduled ok      -          errors=0  -> +3600s scheduled (slot +3600s) None
            every scheduled skipped -          errors=0  -> +3600s scheduled (slot +3600s) None
            every scheduled error   rate_limit errors=1  -> +30s retry (slot +30s) None
            every scheduled error   rate_limit errors=4  -> +3600s scheduled (slot +3600s) None
            every scheduled error   exit_code  errors=1  -> +3600s scheduled (slot +3600s) None
            every scheduled error   exit_code  errors=5  -> +3600s scheduled (slot +3600s) None
            every scheduled error   exit_code  errors=10 -> - Some(AutoDisabled)
            every manual    ok      -          errors=0  -> +60s scheduled (slot +60s) None
            every manual    skipped -          errors=0  -> +60s scheduled (slot +60s) None
            every manual    error   rate_limit errors=1  -> +60s scheduled (slot +60s) None
            every manual    error   rate_limit errors=4  -> +60s scheduled (slot +60s) None
            every manual    error   exit_code  errors=1  -> +60s scheduled (slot +60s) None
            every manual    error   exit_code  errors=5  -> +60s scheduled (slot +60s) None
            every manual    error   exit_code  errors=10 -> - Some(AutoDisabled)
            at    scheduled ok      -          errors=0  -> - Some(Done)
            at    scheduled skipped -          errors=0  -> - Some(Done)
            at    scheduled error   rate_limit errors=1  -> +30s retry (slot +30s) None
            at    scheduled error   rate_limit errors=4  -> - Some(Done)
            at    scheduled error   exit_code  errors=1  -> - Some(Done)
            at    scheduled error   exit_code  errors=5  -> - Some(Done)
            at    scheduled error   exit_code  errors=10 -> - Some(Done)
            at    manual    ok      -          errors=0  -> - None
            at    manual    skipped -          errors=0  -> - None
            at    manual    error   rate_limit errors=1  -> +60s scheduled (slot +60s) None
            at    manual    error   rate_limit errors=4  -> +60s scheduled (slot +60s) None
            at    manual    error   exit_code  errors=1  -> +60s scheduled (slot +60s) None
            at    manual    error   exit_code  errors=5  -> +60s scheduled (slot +60s) None
            at    manual    error   exit_code  errors=10 -> +60s scheduled (slot +60s) None
        "#]]
        .assert_eq(&table);
    }

    #[test]
    fn a_paced_proposal_replaces_the_next_fire_only_after_a_successful_recurring_run() {
        let base = AfterRun {
            is_at: false,
            trigger: Trigger::Scheduled,
            status: ExecStatus::Ok,
            reason: None,
            consecutive_errors: 0,
            now_ms: NOW,
            natural: Some(NATURAL),
            pending: None,
            paced: Some(NOW + 900_000),
        };
        assert_eq!(after_run(&base).slot, Some(Slot::at(NOW + 900_000)));
        assert_eq!(after_run(&AfterRun { trigger: Trigger::Manual, ..base }).slot, Some(Slot::at(NOW + 900_000)));
        // A failed run keeps the normal backoff; a one-shot is done.
        let failed = AfterRun {
            status: ExecStatus::Error,
            reason: Some(RunFailure::ExitCode.into()),
            consecutive_errors: 1,
            ..base
        };
        assert_eq!(after_run(&failed).slot, Some(Slot::at(NATURAL)));
        assert_eq!(after_run(&AfterRun { is_at: true, natural: None, ..base }).disable, Some(Disable::Done));
    }
}
