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
//! | `outbox.dispatching` | a part is marked in flight; no request has been made |
//! | `outbox.sent` | the channel accepted the part; the receipt is not yet recorded |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Every point the code defines (an unknown name in the variable is refused at startup).
pub const POINTS: [&str; 5] =
    ["cron.reserved", "cron.executed", "outbox.enqueued", "outbox.dispatching", "outbox.sent"];

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
}
