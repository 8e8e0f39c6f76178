//! The heartbeat: every `agents.defaults.heartbeat.every` on the injected clock, each session
//! with queued system events gets one turn over them. A session without events gets nothing, so
//! an idle gateway never spends a token.

use pincer_core::metrics;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use pincer_core::SharedClock;
use pincer_core::supervisor::TaskResult;

use crate::service::{EVENT_TURN_TIMEOUT_MS, Inner};
use crate::session::SessionRef;
use crate::turn::TurnError;

/// Runs until the service stops or is dropped (supervised: a panic starts it again).
pub(crate) async fn heartbeat_loop(inner: Weak<Inner>, clock: SharedClock, every_ms: i64, first_at: i64) -> TaskResult {
    let Some(mut stop) = inner.upgrade().map(|i| i.stop.subscribe()) else { return Ok(()) };
    let mut next = first_at;
    loop {
        if let Some(inner) = inner.upgrade() {
            inner.counters.next_heartbeat_ms.store(next, Ordering::SeqCst);
        }
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
        }
        let Some(inner) = inner.upgrade() else { return Ok(()) };
        tick(&inner).await;
        next = clock.now_ms().saturating_add(every_ms);
    }
}

/// One heartbeat over every session with queued events, concurrently.
async fn tick(inner: &Arc<Inner>) {
    let now = inner.clock.now_ms();
    let sessions = match inner.store.read(|rd| rd.sessions_with_events()).await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "heartbeat: cannot read queued events");
            Vec::new()
        }
    };
    let turns = sessions.into_iter().filter_map(|key| {
        let session = SessionRef::from_key(&key);
        if session.is_none() {
            tracing::warn!(session = %key, "heartbeat: events are queued for a session key Pincer cannot run; they wait");
        }
        session
    });
    let results = futures_util::future::join_all(turns.map(|session| async move {
        let key = session.key.clone();
        let tz = inner.default_tz.clone();
        (key, inner.event_turn(session, None, Some(now + EVENT_TURN_TIMEOUT_MS), &tz).await)
    }))
    .await;
    let mut outcome = "idle";
    for (key, result) in results {
        match result {
            Ok(Some(_)) => {
                inner.counters.heartbeat_turns.fetch_add(1, Ordering::SeqCst);
                outcome = "ran";
            }
            Ok(None) => {}
            Err(TurnError::NoModel(message)) => {
                tracing::warn!(session = %key, "heartbeat: {message}; the events wait");
                outcome = "no_model";
            }
            Err(e) => {
                tracing::warn!(session = %key, error = %e, "heartbeat: the turn failed");
                outcome = "error";
            }
        }
    }
    inner.metrics.inc(&metrics::AGENT_HEARTBEATS_TOTAL, &[("outcome", outcome)]);
    inner.counters.last_heartbeat_ms.store(now, Ordering::SeqCst);
    inner.counters.heartbeat_ticks.fetch_add(1, Ordering::SeqCst);
}
