//! The inbox: a local channel that needs no account. Messages are stored in SQLite, pushed as
//! `inbox` events to connected operators and listed by `pincer inbox`. A fresh install announces
//! here by default, so scheduled results are never thrown away for lack of a chat account.

use std::sync::Arc;

use pincer_core::{EventBus, SharedClock};
use pincer_store::Store;
use serde_json::json;

use crate::channel::registry::{BuildContext, Built, Capabilities, ChannelSpec, Inbound};
use crate::channel::{BoxFuture, Channel, Part, Receipt, SendError, Target, TargetError};

/// The inbox in the channel registry: always built, needs no configuration.
pub static SPEC: ChannelSpec = ChannelSpec {
    name: "inbox",
    label: "Inbox",
    chat: false,
    default_rate: 0.0,
    target_prefixes: &["inbox"],
    capabilities: Capabilities {
        to: "an inbox name (letters, digits, `-_.`; `default` when empty)",
        thread: "refused",
        part_limit: "the whole text, one part",
        rendering: "text as is",
        idempotency: "a local write per part",
        ambiguous_retried: "always",
        other_recovery: "—",
        check: "nothing to check",
    },
    minimal_config: "{}",
    build,
    doctor: crate::channel::registry::no_checks,
    inbound: Inbound::None,
};

fn build(cx: &BuildContext<'_>) -> Built {
    Some(Ok(Arc::new(Inbox::new(cx.store.clone(), cx.events.clone(), cx.clock.clone()))))
}

/// Where inbox messages go when no `to` is given.
pub const DEFAULT_INBOX: &str = "default";

/// The local inbox channel.
pub struct Inbox {
    store: Store,
    events: EventBus,
    clock: SharedClock,
}

impl Inbox {
    pub fn new(store: Store, events: EventBus, clock: SharedClock) -> Inbox {
        Inbox { store, events, clock }
    }
}

impl Channel for Inbox {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn parse_target(&self, to: &str, thread_id: Option<&str>) -> Result<Target, TargetError> {
        let to = to.trim();
        let to = to.strip_prefix("inbox:").unwrap_or(to);
        let name = if to.is_empty() { DEFAULT_INBOX } else { to };
        if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(TargetError {
                channel: "inbox",
                reason: format!("inbox name \"{name}\" must be letters, digits, '-', '_' or '.' (at most 64)"),
            });
        }
        if thread_id.is_some() {
            return Err(TargetError { channel: "inbox", reason: "the inbox has no threads".into() });
        }
        Ok(Target { channel: "inbox".into(), to: name.into(), thread: None })
    }

    fn chunk(&self, text: &str) -> Vec<String> {
        if text.trim().is_empty() { vec![] } else { vec![text.to_string()] }
    }

    fn send<'a>(&'a self, part: &'a Part) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            let now = self.clock.now_ms();
            let (row, to, text) = (part.row_id.clone(), part.target.to.clone(), part.text.clone());
            let id = self.store.write(move |tx| tx.insert_inbox(&row, &to, &text, now)).await.map_err(|e| {
                SendError::NotSent { message: format!("inbox: {e}"), retry_after_ms: None, rate_limited: false }
            })?;
            self.events.emit(
                "inbox",
                json!({ "id": id, "deliveryId": part.row_id, "to": part.target.to, "text": part.text, "createdAtMs": now }),
                Some("operator.read"),
            );
            Ok(Receipt { message_id: format!("inbox:{id}") })
        })
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async { Ok("inbox".to_string()) })
    }

    fn safe_to_retry_ambiguous(&self, _dispatched_at_ms: i64, _now_ms: i64) -> bool {
        // Storing is idempotent per outbox row.
        true
    }
}
