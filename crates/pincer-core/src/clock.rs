//! The clock every service reads time from, injected so tests can drive time by hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Wall-clock milliseconds since the Unix epoch, and a way to wait for a future instant.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;

    /// Completes once `now_ms() >= deadline_ms`.
    fn sleep_until(&self, deadline_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock. Sleeps re-check the wall clock at least once a minute, so a clock jump
/// (suspend, NTP step) delays a deadline by at most that much.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

const MAX_SLEEP_MS: i64 = 60_000;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }

    fn sleep_until(&self, deadline_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let left = deadline_ms - self.now_ms();
                if left <= 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(left.min(MAX_SLEEP_MS) as u64)).await;
            }
        })
    }
}

/// A clock that only moves when a test calls [`FakeClock::advance`] or [`FakeClock::set`].
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<watch::Sender<i64>>,
}

impl FakeClock {
    pub fn new(start_ms: i64) -> FakeClock {
        FakeClock { now: Arc::new(watch::Sender::new(start_ms)) }
    }

    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    pub fn advance(&self, ms: i64) {
        self.now.send_modify(|t| *t += ms);
    }

    pub fn set(&self, ms: i64) {
        self.now.send_replace(ms);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, so `wait_for` only ends when the deadline passes.
            let _ = rx.wait_for(|t| *t >= deadline_ms).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fake_clock_wakes_sleepers_only_when_advanced_past_deadline() {
        let clock = FakeClock::new(1_000);
        let shared = clock.shared();
        let sleeper = tokio::spawn(async move { shared.sleep_until(5_000).await });
        tokio::task::yield_now().await;
        clock.advance(3_000);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(1_000);
        sleeper.await.unwrap();
        assert_eq!(clock.now_ms(), 5_000);
    }
}
