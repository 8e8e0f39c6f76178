//! The approval hook of `tools.exec.mode = "ask"`: a command the allowlist does not cover becomes
//! an [`ApprovalRequest`]; an operator answers it (`exec.approval.resolve`, `pincer approvals`).
//! [`ApprovalQueue`] is the in-process implementation the gateway serves those methods from; the
//! exec tool bounds every wait by its own deadline, so a missing operator yields a refusal, never a
//! hang.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use crate::tool::BoxFuture;

/// A command waiting for an operator's decision (the payload of `exec.approval.requested`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    pub id: String,
    pub command: String,
    pub cwd: String,
    pub session_key: Option<String>,
    /// Why the allowlist did not cover it.
    pub reason: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// OpenClaw's decisions (`allow-once`, `allow-always`, `deny`). Persisting an `allow-always` to
/// the allowlist is the gateway's job; for this call it is the same as `allow-once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalDecision {
    AllowOnce,
    AllowAlways,
    Deny,
}

/// Whoever decides `ask` requests. The future ends with the decision, or `None` when no decision
/// can come (nobody is listening); the caller applies the time limit.
pub trait ExecApprover: Send + Sync + 'static {
    fn request(&self, request: ApprovalRequest) -> BoxFuture<'static, Option<ApprovalDecision>>;
}

type Pending = HashMap<String, (ApprovalRequest, oneshot::Sender<ApprovalDecision>)>;

/// Pending approvals, resolvable by id; new requests are broadcast to subscribers (the gateway
/// turns them into `exec.approval.requested` events).
#[derive(Clone)]
pub struct ApprovalQueue {
    pending: Arc<Mutex<Pending>>,
    events: broadcast::Sender<ApprovalRequest>,
}

impl Default for ApprovalQueue {
    fn default() -> Self {
        ApprovalQueue::new()
    }
}

impl ApprovalQueue {
    pub fn new() -> ApprovalQueue {
        ApprovalQueue { pending: Arc::default(), events: broadcast::channel(64).0 }
    }

    /// New requests, as they are raised.
    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalRequest> {
        self.events.subscribe()
    }

    /// Requests still waiting, oldest first.
    pub fn pending(&self) -> Vec<ApprovalRequest> {
        let mut list: Vec<_> =
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).values().map(|(r, _)| r.clone()).collect();
        list.sort_by_key(|r| r.created_at_ms);
        list
    }

    /// Answers a pending request. Fails when the id is unknown or the request already ended.
    pub fn resolve(&self, id: &str, decision: ApprovalDecision) -> Result<(), String> {
        let entry = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        match entry {
            Some((_, tx)) => {
                tx.send(decision).map_err(|_| format!("approval `{id}` already ended (timed out or cancelled)"))
            }
            None => Err(format!("no pending approval `{id}`; list them with `pincer approvals`")),
        }
    }
}

/// Removes a request from the pending list when its waiter goes away (timeout, cancel).
struct Withdraw(Arc<Mutex<Pending>>, String);

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
    }
}

impl ExecApprover for ApprovalQueue {
    fn request(&self, request: ApprovalRequest) -> BoxFuture<'static, Option<ApprovalDecision>> {
        let (tx, rx) = oneshot::channel();
        let id = request.id.clone();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), (request.clone(), tx));
        let _ = self.events.send(request);
        let guard = Withdraw(self.pending.clone(), id);
        Box::pin(async move {
            let decision = rx.await.ok();
            drop(guard);
            decision
        })
    }
}
