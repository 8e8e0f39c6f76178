//! The inbox: a local channel that needs no account. Messages are stored in SQLite, pushed as
//! `inbox` events to connected operators and listed by `pincer inbox`. A fresh install announces
//! here by default, so scheduled results are never thrown away for lack of a chat account.

use std::sync::Arc;

use pincer_core::{EventBus, SharedClock};
use pincer_store::Store;
use serde_json::json;

use crate::channel::registry::{BuildContext, Built, Capabilities, ChannelSpec, Inbound};
use crate::channel::{BoxFuture, Channel, LocalChannel, Part, Receipt, SendError, Target, TargetError};

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

impl Inbox {
    fn announce(&self, part: &Part, receipt: &Receipt, now: i64) {
        let id: i64 = receipt.message_id.trim_start_matches("inbox:").parse().unwrap_or_default();
        self.events.emit(
            "inbox",
            json!({ "id": id, "deliveryId": part.row_id, "to": part.target.to, "text": part.text, "createdAtMs": now }),
            Some("operator.read"),
        );
    }
}

impl LocalChannel for Inbox {
    fn write(&self, tx: &pincer_store::Tx<'_>, part: &Part, now_ms: i64) -> Result<Receipt, pincer_store::StoreError> {
        let id = tx.insert_inbox(&part.row_id, &part.target.to, &part.text, now_ms)?;
        Ok(Receipt { message_id: format!("inbox:{id}") })
    }

    fn committed(&self, part: &Part, receipt: &Receipt, now_ms: i64) {
        self.announce(part, receipt, now_ms);
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
            let receipt = Receipt { message_id: format!("inbox:{id}") };
            self.announce(part, &receipt, now);
            Ok(receipt)
        })
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async { Ok("inbox".to_string()) })
    }

    fn local(&self) -> Option<&dyn LocalChannel> {
        Some(self)
    }

    fn safe_to_retry_ambiguous(&self, _dispatched_at_ms: i64, _now_ms: i64) -> bool {
        // Storing is idempotent per outbox row.
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pincer_core::{EventBus, FakeClock, Metrics};
    use pincer_store::{NewDelivery, Store};

    use super::*;
    use crate::{Outbox, OutboxDeps};

    /// A backlog for the inbox is stored in one commit with its receipts and settlements: each
    /// message lands once, in order, and nothing is ever in flight (no `dispatching` step).
    #[tokio::test]
    async fn a_backlog_lands_in_one_commit_with_its_receipts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        let clock = FakeClock::new(1_700_000_000_000);
        let n = 30;
        let rows: Vec<NewDelivery> = (0..n)
            .map(|i| NewDelivery {
                id: format!("row-{i:02}"),
                idempotency_key: format!("key-{i}"),
                origin_kind: pincer_protocol::state::OriginKind::Send,
                origin_id: None,
                channel: "inbox".into(),
                account_id: None,
                target: "ops".into(),
                thread_id: None,
                max_attempts: 3,
                best_effort: false,
                body: format!("message {i}"),
                parts: vec![(format!("message {i}"), format!("nonce-{i}"))],
                created_at_ms: 1_700_000_000_000,
            })
            .collect();
        store.write(move |tx| rows.iter().try_for_each(|r| tx.enqueue_delivery(r).map(|_| ()))).await.unwrap();
        let before = store.write_requests();
        let events = EventBus::default();
        let mut seen = events.subscribe();
        let inbox = Arc::new(Inbox::new(store.clone(), events.clone(), clock.shared()));
        let (settled, _) = tokio::sync::mpsc::unbounded_channel();
        let outbox = Outbox::start(OutboxDeps {
            store: store.clone(),
            clock: clock.shared(),
            events,
            metrics: Arc::new(Metrics::default()),
            generation: 1,
            config: Default::default(),
            channels: vec![inbox],
            settled,
            failpoints: Default::default(),
            supervisor: pincer_core::Supervisor::new(clock.shared(), Arc::new(Metrics::default())),
        })
        .await
        .unwrap();
        let mut inbox_events = Vec::new();
        while inbox_events.len() < n {
            let e = tokio::time::timeout(std::time::Duration::from_secs(10), seen.recv()).await.unwrap().unwrap();
            if e.name == "inbox" {
                inbox_events.push(e.payload["text"].as_str().unwrap().to_string());
            }
        }
        let (stored, total) = store.read(|rd| rd.list_inbox(100, 0)).await.unwrap();
        let mut texts: Vec<String> = stored.into_iter().map(|m| m.text).collect();
        texts.reverse();
        let want: Vec<String> = (0..n).map(|i| format!("message {i}")).collect();
        assert_eq!((texts, total), (want.clone(), n as u64));
        assert_eq!(inbox_events, want, "told after the commit, in order");
        for i in 0..n {
            let id = format!("row-{i:02}");
            let d = store.read(move |rd| rd.get_delivery(&id)).await.unwrap().unwrap();
            assert_eq!((d.row.state.as_str(), d.parts[0].state.as_str(), d.row.attempts), ("delivered", "sent", 1));
            assert_eq!(d.attempts.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), ["sent"]);
            assert!(d.parts[0].dispatched_at_ms.is_none(), "never in flight");
        }
        // Start-up recovery, leases, one commit for the messages.
        let writes = store.write_requests() - before;
        assert!(writes < 8, "{writes} store writes for {n} inbox messages");
        outbox.shutdown();
    }
}
