//! The in-process event bus: services publish, the gateway fans events out to connected operators.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

/// One event for connected clients, e.g. `cron` with `{jobId, action, …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub name: &'static str,
    pub payload: Value,
    /// Scope a connection needs to receive it (e.g. `operator.read`); `None` = every operator.
    pub scope: Option<&'static str>,
}

/// Broadcasts [`BusEvent`]s. Slow receivers lose the oldest events (and see a `seq` gap) rather
/// than slow the publisher down.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<BusEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(4096)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> EventBus {
        EventBus { tx: broadcast::channel(capacity).0 }
    }

    pub fn emit(&self, name: &'static str, payload: Value, scope: Option<&'static str>) {
        // No subscriber is fine: nobody is connected.
        let _ = self.tx.send(Arc::new(BusEvent { name, payload, scope }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }
}
