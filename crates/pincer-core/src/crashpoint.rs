//! Crash points, for the crash suite: `PINCER_CRASHPOINTS=outbox.sent:3,cron.reserved` makes the
//! process `SIGKILL` itself the 3rd time it passes `outbox.sent` and the 1st time it passes
//! `cron.reserved`, so a test can kill the gateway at an exact step instead of racing it with
//! `kill -9` from outside. Unset (always, outside tests), a pass costs one load of an
//! initialised `OnceLock`.
//!
//! The points, in the order work flows through them:
//!
//! | Point | Where the process dies |
//! |---|---|
//! | `cron.reserved` | a slot's run row is committed (passed once per reserved slot); no run of its batch has started |
//! | `cron.executed` | the run finished; its outcome is not yet recorded |
//! | `outbox.enqueued` | a delivery is committed; the caller has not been answered |
//! | `outbox.dispatching` | a part is marked in flight; no request has been made (on the webhook its whole batch is marked: each part passes just before its own request) |
//! | `outbox.sent` | the channel accepted the part; the receipt is not yet recorded (on the webhook, neither are those of the batch's earlier parts) |
//! | `inbound.polled` | a poll answered with updates; nothing of them is committed |
//! | `inbound.accepted` | a poll's messages and the next offset are committed (once per batch) |
//! | `inbound.answering` | a turn answered; its reply is not yet committed |
//! | `inbound.answered` | the reply's outbox row and its messages' `answered` mark are committed |
//! | `agent.tool_called` | an assistant message calling tools is committed; no result is recorded yet |
//! | `agent.tool_result` | a tool's result is committed relaxed (in the WAL, not fsynced); the model is not asked again yet |
//! | `agent.answered` | the model gave a turn's final reply; nothing of it is committed (nor, for `agent` with `deliver`, its outbox row) |
//! | `agent.replied` | a turn's final reply is committed — for `agent` with `deliver`, with its outbox row in the same transaction; the caller has not been answered |
//!
//! **Fail points** are the live-process counterpart: `PINCER_FAILPOINTS=outbox.receipt:3` makes
//! the first three store writes of that step fail (as a full disk would) instead of killing the
//! process, and `outbox.receipt=panic` makes the worker doing that step die (as a bug would) while
//! the gateway lives on. They are a value ([`Failpoints`]) handed to the outbox and the scheduler,
//! so in-process tests arm their own without touching the environment; unset, a check is one
//! `Option` test. The two loop points end the supervised loop itself (a panic, or an error
//! return), so tests can show that the [`crate::supervisor`] brings it back rebuilt from the store.
//!
//! | Fail point | The step that fails |
//! |---|---|
//! | `cron.dispatched` | the scheduler's loop, right after it picked due slots and queued their reservation |
//! | `cron.run` | a run's task, before it starts the payload: the task dies without reporting an outcome |
//! | `outbox.lease` | leasing due rows (error only) |
//! | `outbox.leased` | the outbox's loop, right after it leased rows and started their workers |
//! | `outbox.dispatching` | marking a part in flight, before its request |
//! | `outbox.receipt` | recording a part the channel accepted |
//! | `outbox.settle` | making a row terminal (other than with its last receipt) |
//! | `outbox.reschedule` | putting a row back: backoff, a rate limit, rows behind a held one |
//! | `cron.reserve` | reserving due slots (error only) |
//! | `cron.record` | recording a run's outcome, a settled delivery or a skipped slot (error only) |

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// Every point the code defines (an unknown name in the variable is refused at startup).
pub const POINTS: [&str; 13] = [
    "cron.reserved",
    "cron.executed",
    "outbox.enqueued",
    "outbox.dispatching",
    "outbox.sent",
    "inbound.polled",
    "inbound.accepted",
    "inbound.answering",
    "inbound.answered",
    "agent.tool_called",
    "agent.tool_result",
    "agent.answered",
    "agent.replied",
];

/// The variable that arms crash points.
pub const ENV: &str = "PINCER_CRASHPOINTS";

struct Armed {
    name: String,
    /// Passes left before the kill.
    remaining: AtomicU32,
}

static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();

/// Parses `name[:n],…`; an unknown point or a bad count is an error naming it.
pub fn parse(spec: &str) -> Result<Vec<(String, u32)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, n) = match item.split_once(':') {
                Some((name, n)) => {
                    let n: u32 = n.parse().map_err(|_| format!("{ENV}: \"{item}\": the count must be a number ≥ 1"))?;
                    (name, n)
                }
                None => (item, 1),
            };
            if n == 0 {
                return Err(format!("{ENV}: \"{item}\": the count must be ≥ 1"));
            }
            if !POINTS.contains(&name) {
                return Err(format!("{ENV}: unknown crash point \"{name}\" (known: {})", POINTS.join(", ")));
            }
            Ok((name.to_string(), n))
        })
        .collect()
}

/// Reads [`ENV`] once. Returns the armed points (empty when unset); the gateway calls this at
/// startup so a typo fails the start instead of silently never crashing.
pub fn init() -> Result<Vec<(String, u32)>, String> {
    let spec = std::env::var(ENV).unwrap_or_default();
    let parsed = parse(&spec)?;
    let _ =
        ARMED.set(parsed.iter().map(|(name, n)| Armed { name: name.clone(), remaining: AtomicU32::new(*n) }).collect());
    Ok(parsed)
}

/// Passes the point `name`; kills the process with `SIGKILL` if it is armed and this is the pass.
pub fn hit(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "undeclared crash point {name}");
    let Some(armed) = ARMED.get() else { return };
    for a in armed.iter().filter(|a| a.name == name) {
        if a.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            eprintln!("pincer: crash point {name} reached; killing the process (SIGKILL)");
            // SAFETY: sending a signal to our own pid.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            loop {
                std::thread::park();
            }
        }
    }
}

/// Every fail point the code defines, and whether it may panic (a worker's step, or a loop the
/// supervisor restarts).
pub const FAIL_POINTS: [(&str, bool); 10] = [
    ("cron.dispatched", true),
    ("cron.run", true),
    ("outbox.lease", false),
    ("outbox.leased", true),
    ("outbox.dispatching", true),
    ("outbox.receipt", true),
    ("outbox.settle", true),
    ("outbox.reschedule", true),
    ("cron.reserve", false),
    ("cron.record", false),
];

/// The variable that arms fail points.
pub const FAIL_ENV: &str = "PINCER_FAILPOINTS";

/// What an armed fail point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// The step's store write returns an error (nothing of it is committed).
    Error,
    /// The task doing the step panics (the process lives on).
    Panic,
}

/// The error an armed fail point returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{point}: injected failure ({FAIL_ENV})")]
pub struct Injected {
    pub point: &'static str,
}

#[derive(Debug)]
struct FailArmed {
    name: String,
    action: FailAction,
    /// Passes left that fail.
    remaining: AtomicU32,
}

/// Armed fail points; cheap to clone. `Failpoints::default()` arms nothing.
#[derive(Debug, Clone, Default)]
pub struct Failpoints(Option<Arc<Vec<FailArmed>>>);

impl Failpoints {
    /// Parses `name[=error|panic][:n],…` (`n`, default 1: how many passes, from the first, fail);
    /// an unknown point, action or count is an error naming it.
    pub fn parse(spec: &str) -> Result<Failpoints, String> {
        let mut armed = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (head, n) = match item.split_once(':') {
                Some((head, n)) => {
                    let n: u32 =
                        n.parse().map_err(|_| format!("{FAIL_ENV}: \"{item}\": the count must be a number ≥ 1"))?;
                    (head, n)
                }
                None => (item, 1),
            };
            if n == 0 {
                return Err(format!("{FAIL_ENV}: \"{item}\": the count must be ≥ 1"));
            }
            let (name, action) = match head.split_once('=') {
                Some((name, "error")) => (name, FailAction::Error),
                Some((name, "panic")) => (name, FailAction::Panic),
                Some((_, other)) => {
                    return Err(format!("{FAIL_ENV}: \"{item}\": unknown action \"{other}\" (use error or panic)"));
                }
                None => (head, FailAction::Error),
            };
            let Some(&(_, may_panic)) = FAIL_POINTS.iter().find(|(p, _)| *p == name) else {
                let known: Vec<&str> = FAIL_POINTS.iter().map(|(p, _)| *p).collect();
                return Err(format!("{FAIL_ENV}: unknown fail point \"{name}\" (known: {})", known.join(", ")));
            };
            if action == FailAction::Panic && !may_panic {
                return Err(format!("{FAIL_ENV}: \"{item}\": {name} can only return an error"));
            }
            armed.push(FailArmed { name: name.to_string(), action, remaining: AtomicU32::new(n) });
        }
        Ok(Failpoints((!armed.is_empty()).then(|| Arc::new(armed))))
    }

    /// Reads [`FAIL_ENV`]; the gateway calls this at startup so a typo fails the start.
    pub fn from_env() -> Result<Failpoints, String> {
        Failpoints::parse(&std::env::var(FAIL_ENV).unwrap_or_default())
    }

    /// Whether any point is armed.
    pub fn is_armed(&self) -> bool {
        self.0.is_some()
    }

    /// Passes the point `name`: an error (or a panic) while it is armed, `Ok` otherwise.
    pub fn check(&self, name: &'static str) -> Result<(), Injected> {
        let Some(armed) = &self.0 else { return Ok(()) };
        debug_assert!(FAIL_POINTS.iter().any(|(p, _)| *p == name), "undeclared fail point {name}");
        for a in armed.iter().filter(|a| a.name == name) {
            let took = a.remaining.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok();
            if took {
                if a.action == FailAction::Panic {
                    panic!("fail point {name} reached ({FAIL_ENV}): this task dies here");
                }
                return Err(Injected { point: name });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_typos_are_refused() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(
            parse("outbox.sent:3, cron.reserved").unwrap(),
            vec![("outbox.sent".to_string(), 3), ("cron.reserved".to_string(), 1)]
        );
        assert!(parse("outbox.snet").unwrap_err().contains("unknown crash point \"outbox.snet\""));
        assert!(parse("outbox.sent:0").unwrap_err().contains("≥ 1"));
        assert!(parse("outbox.sent:x").unwrap_err().contains("must be a number"));
    }

    #[test]
    fn fail_points_fail_the_first_n_passes_and_typos_are_refused() {
        let none = Failpoints::parse("").unwrap();
        assert!(!none.is_armed() && none.check("outbox.receipt").is_ok());
        let fp = Failpoints::parse("outbox.receipt:2, outbox.settle=error").unwrap();
        let passes: Vec<bool> = (0..4).map(|_| fp.check("outbox.receipt").is_err()).collect();
        assert_eq!(passes, [true, true, false, false]);
        assert_eq!(
            fp.check("outbox.settle").unwrap_err().to_string(),
            "outbox.settle: injected failure (PINCER_FAILPOINTS)"
        );
        assert!(fp.check("outbox.settle").is_ok());
        assert!(fp.check("outbox.lease").is_ok(), "not armed");
        assert!(Failpoints::parse("outbox.recipt").unwrap_err().contains("unknown fail point \"outbox.recipt\""));
        assert!(Failpoints::parse("outbox.lease=panic").unwrap_err().contains("can only return an error"));
        assert!(Failpoints::parse("outbox.settle=explode").unwrap_err().contains("unknown action"));
        assert!(Failpoints::parse("outbox.settle:0").unwrap_err().contains("≥ 1"));
        let panics = Failpoints::parse("outbox.receipt=panic").unwrap();
        assert!(std::panic::catch_unwind(|| panics.check("outbox.receipt")).is_err());
        assert!(panics.check("outbox.receipt").is_ok(), "only the first pass");
    }
}
