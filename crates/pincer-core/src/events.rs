//! The in-process event bus: services publish, the gateway fans events out to connected operators.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::broadcast;

/// One event for connected clients, e.g. `cron` with `{jobId, action, …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub name: &'static str,
    pub payload: Value,
    /// Scope a connection needs to receive it (e.g. `operator.read`); `None` = every operator.
    pub scope: Option<&'static str>,
    /// `payload` as JSON text, written once however many connections send it.
    json: OnceLock<String>,
}

impl BusEvent {
    pub fn new(name: &'static str, payload: Value, scope: Option<&'static str>) -> BusEvent {
        BusEvent { name, payload, scope, json: OnceLock::new() }
    }

    /// The payload as JSON text (serialised on first use, then shared).
    pub fn payload_json(&self) -> &str {
        self.json.get_or_init(|| self.payload.to_string())
    }
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
        let _ = self.tx.send(Arc::new(BusEvent::new(name, payload, scope)));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }
}
