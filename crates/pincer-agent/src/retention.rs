//! `cron.sessionRetention`: every 5 minutes on the injected clock, finished isolated sessions
//! (and their transcripts) older than the retention are deleted. Main and named sessions stay.

use pincer_core::metrics;
use std::sync::Weak;
use std::sync::atomic::Ordering;

use pincer_core::SharedClock;
use pincer_core::supervisor::TaskResult;

use crate::service::Inner;

/// How often the sweep runs.
pub const SWEEP_EVERY_MS: i64 = 5 * 60_000;

/// Runs until the service stops or is dropped (supervised: a panic starts it again).
pub(crate) async fn sweep_loop(inner: Weak<Inner>, clock: SharedClock, keep_ms: i64, first_at: i64) -> TaskResult {
    let Some(mut stop) = inner.upgrade().map(|i| i.stop.subscribe()) else { return Ok(()) };
    let mut next = first_at;
    loop {
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
        }
        let Some(inner) = inner.upgrade() else { return Ok(()) };
        let now = clock.now_ms();
        let cutoff = now.saturating_sub(keep_ms);
        match inner.store.write(move |tx| tx.prune_isolated_sessions(cutoff)).await {
            Ok(pruned) => {
                if pruned > 0 {
                    tracing::info!(pruned, "removed finished isolated sessions past cron.sessionRetention");
                    inner.metrics.add(&metrics::AGENT_SESSIONS_PRUNED_TOTAL, &[], pruned as f64);
                }
                inner.counters.pruned.fetch_add(pruned as u64, Ordering::SeqCst);
            }
            Err(e) => tracing::warn!(error = %e, "cannot prune isolated sessions"),
        }
        inner.counters.last_sweep_ms.store(now, Ordering::SeqCst);
        inner.counters.sweeps.fetch_add(1, Ordering::SeqCst);
        next = clock.now_ms().saturating_add(SWEEP_EVERY_MS);
    }
}
