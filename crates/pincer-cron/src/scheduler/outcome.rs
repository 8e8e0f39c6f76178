//! From a finished run's outcome to its delivery: what to send (if anything), the delivery status
//! when nothing is sent, and the completion that follows from the three outcomes. Pure functions,
//! tested by one table.

use pincer_protocol::state::{
    CompletionStatus, DeliveryStatus, ExecStatus, RunErrorReason, RunFailure, SuppressionReason,
};

use crate::job::DeliveryMode;
use crate::runner::Route;

/// What a finished run's result needs from delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish<'a> {
    /// The job's delivery mode (`None` without a `delivery`).
    pub mode: DeliveryMode,
    pub status: ExecStatus,
    /// The result text, trimmed; `None` when empty.
    pub summary: Option<&'a str>,
    pub reason: Option<RunErrorReason>,
    /// A route resolved before the run and an outbox to take it.
    pub routed: bool,
}

/// What to do with a finished run's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The job asks for no delivery.
    NotRequested,
    /// Nothing is sent: on purpose (`suppressed`), because the run failed, or because there is no
    /// route (`error`).
    NotDelivered { suppressed: Option<SuppressionReason>, error: Option<&'static str> },
    /// Hand the result to the outbox.
    Send(Body),
}

/// What goes to the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The summary text (announce).
    Summary,
    /// The finished-run JSON (webhook), also for failed runs.
    Webhook,
}

impl Plan {
    /// The delivery status when the plan sends nothing (a sent result is `pending` until it settles).
    pub fn status(self) -> DeliveryStatus {
        match self {
            Plan::NotRequested => DeliveryStatus::NotRequested,
            Plan::NotDelivered { .. } => DeliveryStatus::NotDelivered,
            Plan::Send(_) => DeliveryStatus::Pending,
        }
    }
}

/// The message of a run whose delivery was asked for but has no route.
pub const NO_ROUTE: &str = "no delivery route";

/// Decides a finished run's delivery, as OpenClaw does: an announce sends only a successful run's
/// non-silent text; a webhook also reports failures; `NO_REPLY` and empty results are suppressed.
pub fn plan(f: &Finish) -> Plan {
    let not_delivered = |suppressed| Plan::NotDelivered { suppressed, error: None };
    match f.mode {
        DeliveryMode::None => Plan::NotRequested,
        _ if !f.routed => Plan::NotDelivered {
            suppressed: None,
            // A route that failed to resolve already failed the run, saying why.
            error: (f.reason != Some(RunFailure::DeliveryRoute.into())).then_some(NO_ROUTE),
        },
        DeliveryMode::Announce => match (f.status, f.summary) {
            (ExecStatus::Ok, None) => not_delivered(Some(SuppressionReason::Empty)),
            (ExecStatus::Ok, Some(text)) if is_silent(text) => not_delivered(Some(SuppressionReason::Silent)),
            (ExecStatus::Ok, Some(_)) => Plan::Send(Body::Summary),
            (ExecStatus::Error | ExecStatus::Skipped, _) => not_delivered(None),
        },
        DeliveryMode::Webhook => match (f.status, f.summary) {
            (ExecStatus::Ok, None) => not_delivered(Some(SuppressionReason::Empty)),
            (ExecStatus::Ok, Some(text)) if is_silent(text) => not_delivered(Some(SuppressionReason::Silent)),
            _ => Plan::Send(Body::Webhook),
        },
    }
}

/// True for `NO_REPLY` (trimmed, any case), as a whole reply or as its last line.
pub fn is_silent(text: &str) -> bool {
    let t = text.trim();
    t.eq_ignore_ascii_case("NO_REPLY") || t.lines().last().is_some_and(|l| l.trim().eq_ignore_ascii_case("NO_REPLY"))
}

/// Completion from the three outcomes, per OpenClaw's `resolveCronCompletionStatus`; `None` while
/// the delivery is still pending.
pub fn completion_status(
    status: ExecStatus,
    delivery: DeliveryStatus,
    suppressed: bool,
    best_effort: bool,
) -> Option<CompletionStatus> {
    use CompletionStatus::{Failed, Succeeded, Unknown};
    Some(match (status, delivery) {
        (ExecStatus::Error | ExecStatus::Skipped, _) => Failed,
        (ExecStatus::Ok, DeliveryStatus::Pending) => return None,
        (ExecStatus::Ok, DeliveryStatus::Delivered | DeliveryStatus::NotRequested) => Succeeded,
        (ExecStatus::Ok, DeliveryStatus::NotDelivered) if suppressed || best_effort => Succeeded,
        (ExecStatus::Ok, DeliveryStatus::NotDelivered) => Failed,
        (ExecStatus::Ok, DeliveryStatus::Unknown) if best_effort => Succeeded,
        (ExecStatus::Ok, DeliveryStatus::Unknown) => Unknown,
    })
}

/// The outbox idempotency key of a run's result: one per slot (or manual run) and route, so a
/// recorded outcome enqueued again is the same row.
pub fn delivery_key(job_id: &str, slot_ms: Option<i64>, run_id: &str, route: &Route) -> String {
    format!(
        "cron:{job_id}:{}:{}:{}:{}:{}",
        slot_ms.map_or(run_id.to_string(), |s| s.to_string()),
        route.channel,
        route.account_id.as_deref().unwrap_or(""),
        route.to,
        route.thread_id.as_deref().unwrap_or("")
    )
}

/// The outbox idempotency key of a failure alert for a run.
pub fn alert_key(job_id: &str, run_id: &str) -> String {
    format!("alert:{job_id}:{run_id}")
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use pincer_protocol::state::ErrorClass;

    use super::*;

    #[test]
    fn silent_replies() {
        assert!(is_silent("NO_REPLY"));
        assert!(is_silent("  no_reply \n"));
        assert!(is_silent("Checked everything.\nNO_REPLY"));
        assert!(!is_silent("NO_REPLY is what I would say, but here is news"));
        assert!(!is_silent(""));
    }

    /// Every mode × execution status × result × route, with the delivery it gets and the
    /// completion that follows when nothing is sent.
    #[test]
    fn outcome_to_delivery_plan() {
        let modes = [DeliveryMode::None, DeliveryMode::Announce, DeliveryMode::Webhook];
        let statuses = [ExecStatus::Ok, ExecStatus::Error, ExecStatus::Skipped];
        let summaries = [None, Some("news"), Some("NO_REPLY")];
        let mut table = String::new();
        for mode in modes {
            for status in statuses {
                for summary in summaries {
                    for (routed, reason) in [
                        (true, None),
                        (false, None),
                        (false, Some(RunFailure::DeliveryRoute.into())),
                        (true, Some(ErrorClass::Timeout.into())),
                    ] {
                        if mode == DeliveryMode::None && (!routed || reason.is_some()) {
                            continue;
                        }
                        if reason.is_some() && status != ExecStatus::Error {
                            continue;
                        }
                        let f = Finish { mode, status, summary, reason, routed };
                        let plan = plan(&f);
                        let completion = |best_effort| {
                            let suppressed = matches!(plan, Plan::NotDelivered { suppressed: Some(_), .. });
                            completion_status(status, plan.status(), suppressed, best_effort)
                                .map_or("-", CompletionStatus::as_str)
                        };
                        table.push_str(&format!(
                            "{:<8} {:<7} {:<8} {:<5} {:<14} | {:<60} | {} / best-effort {}\n",
                            format!("{mode:?}"),
                            status.as_str(),
                            summary.unwrap_or("-"),
                            if routed { "route" } else { "none" },
                            reason.map_or("-", RunErrorReason::as_str),
                            format!("{plan:?}"),
                            completion(false),
                            completion(true),
                        ));
                    }
                }
            }
        }
        expect![[r#"
            None     ok      -        route -              | NotRequested                                                 | succeeded / best-effort succeeded
            None     ok      news     route -              | NotRequested                                                 | succeeded / best-effort succeeded
            None     ok      NO_REPLY route -              | NotRequested                                                 | succeeded / best-effort succeeded
            None     error   -        route -              | NotRequested                                                 | failed / best-effort failed
            None     error   news     route -              | NotRequested                                                 | failed / best-effort failed
            None     error   NO_REPLY route -              | NotRequested                                                 | failed / best-effort failed
            None     skipped -        route -              | NotRequested                                                 | failed / best-effort failed
            None     skipped news     route -              | NotRequested                                                 | failed / best-effort failed
            None     skipped NO_REPLY route -              | NotRequested                                                 | failed / best-effort failed
            Announce ok      -        route -              | NotDelivered { suppressed: Some(Empty), error: None }        | succeeded / best-effort succeeded
            Announce ok      -        none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort succeeded
            Announce ok      news     route -              | Send(Summary)                                                | - / best-effort -
            Announce ok      news     none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort succeeded
            Announce ok      NO_REPLY route -              | NotDelivered { suppressed: Some(Silent), error: None }       | succeeded / best-effort succeeded
            Announce ok      NO_REPLY none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort succeeded
            Announce error   -        route -              | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   -        none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Announce error   -        none  delivery_route | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   -        route timeout        | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   news     route -              | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   news     none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Announce error   news     none  delivery_route | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   news     route timeout        | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   NO_REPLY route -              | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   NO_REPLY none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Announce error   NO_REPLY none  delivery_route | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce error   NO_REPLY route timeout        | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce skipped -        route -              | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce skipped -        none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Announce skipped news     route -              | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce skipped news     none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Announce skipped NO_REPLY route -              | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Announce skipped NO_REPLY none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Webhook  ok      -        route -              | NotDelivered { suppressed: Some(Empty), error: None }        | succeeded / best-effort succeeded
            Webhook  ok      -        none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort succeeded
            Webhook  ok      news     route -              | Send(Webhook)                                                | - / best-effort -
            Webhook  ok      news     none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort succeeded
            Webhook  ok      NO_REPLY route -              | NotDelivered { suppressed: Some(Silent), error: None }       | succeeded / best-effort succeeded
            Webhook  ok      NO_REPLY none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort succeeded
            Webhook  error   -        route -              | Send(Webhook)                                                | failed / best-effort failed
            Webhook  error   -        none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Webhook  error   -        none  delivery_route | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Webhook  error   -        route timeout        | Send(Webhook)                                                | failed / best-effort failed
            Webhook  error   news     route -              | Send(Webhook)                                                | failed / best-effort failed
            Webhook  error   news     none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Webhook  error   news     none  delivery_route | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Webhook  error   news     route timeout        | Send(Webhook)                                                | failed / best-effort failed
            Webhook  error   NO_REPLY route -              | Send(Webhook)                                                | failed / best-effort failed
            Webhook  error   NO_REPLY none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Webhook  error   NO_REPLY none  delivery_route | NotDelivered { suppressed: None, error: None }               | failed / best-effort failed
            Webhook  error   NO_REPLY route timeout        | Send(Webhook)                                                | failed / best-effort failed
            Webhook  skipped -        route -              | Send(Webhook)                                                | failed / best-effort failed
            Webhook  skipped -        none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Webhook  skipped news     route -              | Send(Webhook)                                                | failed / best-effort failed
            Webhook  skipped news     none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
            Webhook  skipped NO_REPLY route -              | Send(Webhook)                                                | failed / best-effort failed
            Webhook  skipped NO_REPLY none  -              | NotDelivered { suppressed: None, error: Some("no delivery route") } | failed / best-effort failed
        "#]]
        .assert_eq(&table);
    }

    /// Once the delivery settled: each delivery status × execution status × best effort.
    #[test]
    fn completion_keeps_the_three_outcomes_apart() {
        let mut table = String::new();
        for status in [ExecStatus::Ok, ExecStatus::Error, ExecStatus::Skipped] {
            for delivery in DeliveryStatus::ALL {
                for (suppressed, best_effort) in [(false, false), (true, false), (false, true)] {
                    let c = completion_status(status, *delivery, suppressed, best_effort);
                    table.push_str(&format!(
                        "{:<7} {:<13} suppressed={:<5} best-effort={:<5} -> {}\n",
                        status.as_str(),
                        delivery.as_str(),
                        suppressed,
                        best_effort,
                        c.map_or("(pending)", CompletionStatus::as_str)
                    ));
                }
            }
        }
        expect![[r#"
            ok      delivered     suppressed=false best-effort=false -> succeeded
            ok      delivered     suppressed=true  best-effort=false -> succeeded
            ok      delivered     suppressed=false best-effort=true  -> succeeded
            ok      not-delivered suppressed=false best-effort=false -> failed
            ok      not-delivered suppressed=true  best-effort=false -> succeeded
            ok      not-delivered suppressed=false best-effort=true  -> succeeded
            ok      unknown       suppressed=false best-effort=false -> unknown
            ok      unknown       suppressed=true  best-effort=false -> unknown
            ok      unknown       suppressed=false best-effort=true  -> succeeded
            ok      not-requested suppressed=false best-effort=false -> succeeded
            ok      not-requested suppressed=true  best-effort=false -> succeeded
            ok      not-requested suppressed=false best-effort=true  -> succeeded
            ok      pending       suppressed=false best-effort=false -> (pending)
            ok      pending       suppressed=true  best-effort=false -> (pending)
            ok      pending       suppressed=false best-effort=true  -> (pending)
            error   delivered     suppressed=false best-effort=false -> failed
            error   delivered     suppressed=true  best-effort=false -> failed
            error   delivered     suppressed=false best-effort=true  -> failed
            error   not-delivered suppressed=false best-effort=false -> failed
            error   not-delivered suppressed=true  best-effort=false -> failed
            error   not-delivered suppressed=false best-effort=true  -> failed
            error   unknown       suppressed=false best-effort=false -> failed
            error   unknown       suppressed=true  best-effort=false -> failed
            error   unknown       suppressed=false best-effort=true  -> failed
            error   not-requested suppressed=false best-effort=false -> failed
            error   not-requested suppressed=true  best-effort=false -> failed
            error   not-requested suppressed=false best-effort=true  -> failed
            error   pending       suppressed=false best-effort=false -> failed
            error   pending       suppressed=true  best-effort=false -> failed
            error   pending       suppressed=false best-effort=true  -> failed
            skipped delivered     suppressed=false best-effort=false -> failed
            skipped delivered     suppressed=true  best-effort=false -> failed
            skipped delivered     suppressed=false best-effort=true  -> failed
            skipped not-delivered suppressed=false best-effort=false -> failed
            skipped not-delivered suppressed=true  best-effort=false -> failed
            skipped not-delivered suppressed=false best-effort=true  -> failed
            skipped unknown       suppressed=false best-effort=false -> failed
            skipped unknown       suppressed=true  best-effort=false -> failed
            skipped unknown       suppressed=false best-effort=true  -> failed
            skipped not-requested suppressed=false best-effort=false -> failed
            skipped not-requested suppressed=true  best-effort=false -> failed
            skipped not-requested suppressed=false best-effort=true  -> failed
            skipped pending       suppressed=false best-effort=false -> failed
            skipped pending       suppressed=true  best-effort=false -> failed
            skipped pending       suppressed=false best-effort=true  -> failed
        "#]]
        .assert_eq(&table);
    }
}
