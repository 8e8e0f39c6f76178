//! The approval hook of `tools.exec.mode = "ask"`: a command the allowlist does not cover becomes
//! an [`ApprovalRequest`]; an operator answers it (`exec.approval.resolve`, `pincer approvals`).
//! [`ApprovalQueue`] is the in-process implementation the gateway serves those methods from; the
//! exec tool bounds every wait by its own deadline, so a missing operator yields a refusal, never a
//! hang.
//!
//! `allow-always` (OpenClaw's) remembers the command's executables: with a grants file
//! ([`ApprovalQueue::with_grants_file`], the gateway's `<state>/exec-approvals.json`, as OpenClaw
//! keeps its own `exec-approvals.json`) they are added to the allowlist for good.

use std::collections::HashMap;
use std::path::PathBuf;
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
    /// The words of the command, when it splits as a plain pipeline.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    pub cwd: String,
    pub session_key: Option<String>,
    /// Why the allowlist did not cover it.
    pub reason: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// OpenClaw's decisions (`allow-once`, `allow-always`, `deny`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalDecision {
    AllowOnce,
    AllowAlways,
    Deny,
}

impl ApprovalDecision {
    /// Every decision, in OpenClaw's order.
    pub const ALL: [ApprovalDecision; 3] =
        [ApprovalDecision::AllowOnce, ApprovalDecision::AllowAlways, ApprovalDecision::Deny];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::AllowOnce => "allow-once",
            ApprovalDecision::AllowAlways => "allow-always",
            ApprovalDecision::Deny => "deny",
        }
    }

    /// Parses the wire spelling; the error lists the accepted ones.
    pub fn parse(s: &str) -> Result<ApprovalDecision, String> {
        ApprovalDecision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("invalid decision `{s}`; use one of allow-once, allow-always, deny"))
    }
}

/// What happened to a request, for whoever watches the queue (the gateway: events and audit).
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalEvent {
    /// A new request waits for an operator.
    Requested(ApprovalRequest),
    /// An operator decided (through [`ApprovalQueue::resolve`]).
    Resolved { request: ApprovalRequest, decision: ApprovalDecision },
    /// Its waiter went away undecided: the approval timed out or the turn was cancelled.
    Expired(ApprovalRequest),
}

/// Whoever decides `ask` requests. The future ends with the decision, or `None` when no decision
/// can come (nobody is listening); the caller applies the time limit.
pub trait ExecApprover: Send + Sync + 'static {
    fn request(&self, request: ApprovalRequest) -> BoxFuture<'static, Option<ApprovalDecision>>;

    /// Allowlist patterns granted by earlier `allow-always` decisions.
    fn granted(&self) -> Vec<String> {
        Vec::new()
    }

    /// Remembers patterns an `allow-always` granted. Fails when they cannot be kept.
    fn grant(&self, _patterns: &[String]) -> Result<(), String> {
        Err("this approver does not keep allow-always decisions".into())
    }
}

type Pending = HashMap<String, (ApprovalRequest, oneshot::Sender<ApprovalDecision>)>;

/// Pending approvals, resolvable by id (or a unique prefix of it); every change is broadcast to
/// subscribers as an [`ApprovalEvent`].
#[derive(Clone)]
pub struct ApprovalQueue {
    pending: Arc<Mutex<Pending>>,
    events: broadcast::Sender<ApprovalEvent>,
    grants: Arc<Mutex<Grants>>,
}

/// The `allow-always` patterns, and the file they are kept in.
#[derive(Default)]
struct Grants {
    file: Option<PathBuf>,
    patterns: Vec<String>,
}

/// The grants file: `{ "version": 1, "allowlist": [{ "pattern": "/usr/bin/git" }] }` (the shape
/// of OpenClaw's `exec-approvals.json` allowlist entries).
#[derive(Debug, Default, Serialize, Deserialize)]
struct GrantsFile {
    version: u32,
    allowlist: Vec<GrantEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrantEntry {
    pattern: String,
}

impl Default for ApprovalQueue {
    fn default() -> Self {
        ApprovalQueue::new()
    }
}

impl ApprovalQueue {
    pub fn new() -> ApprovalQueue {
        ApprovalQueue { pending: Arc::default(), events: broadcast::channel(256).0, grants: Arc::default() }
    }

    /// A queue whose `allow-always` grants are kept in `path` (read now; a missing file is an
    /// empty list). Fails when the file exists but cannot be read as a grants file.
    pub fn with_grants_file(path: PathBuf) -> Result<ApprovalQueue, String> {
        let patterns = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<GrantsFile>(&text)
                .map_err(|e| format!("{}: not an exec approvals file ({e}); fix or remove it", path.display()))?
                .allowlist
                .into_iter()
                .map(|e| e.pattern)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let queue = ApprovalQueue::new();
        *queue.grants.lock().unwrap_or_else(|e| e.into_inner()) = Grants { file: Some(path), patterns };
        Ok(queue)
    }

    /// What happens to requests, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalEvent> {
        self.events.subscribe()
    }

    /// Requests still waiting, oldest first.
    pub fn pending(&self) -> Vec<ApprovalRequest> {
        let mut list: Vec<_> =
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).values().map(|(r, _)| r.clone()).collect();
        list.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then_with(|| a.id.cmp(&b.id)));
        list
    }

    /// The pending request `id` names: its exact id or a unique prefix (OpenClaw's lookup).
    pub fn find(&self, id: &str) -> Result<ApprovalRequest, String> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        lookup(&pending, id).map(|key| pending[&key].0.clone())
    }

    /// Answers a pending request (by id or unique prefix) and returns it. Fails when no pending
    /// request matches or the request already ended.
    pub fn resolve(&self, id: &str, decision: ApprovalDecision) -> Result<ApprovalRequest, String> {
        let entry = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let key = lookup(&pending, id)?;
            pending.remove(&key)
        };
        let Some((request, tx)) = entry else {
            return Err(format!("no pending approval `{id}`; list them with `pincer approvals list`"));
        };
        tx.send(decision).map_err(|_| format!("approval `{}` already ended (timed out or cancelled)", request.id))?;
        let _ = self.events.send(ApprovalEvent::Resolved { request: request.clone(), decision });
        Ok(request)
    }
}

fn lookup(pending: &Pending, id: &str) -> Result<String, String> {
    let id = id.trim();
    if pending.contains_key(id) {
        return Ok(id.to_string());
    }
    let mut matches: Vec<&String> = pending.keys().filter(|k| !id.is_empty() && k.starts_with(id)).collect();
    matches.sort();
    match matches.as_slice() {
        [] => Err(format!("no pending approval `{id}` (unknown or expired); list them with `pincer approvals list`")),
        [one] => Ok((*one).clone()),
        many => Err(format!(
            "ambiguous approval id prefix `{id}`; matches: {}. Use the full id",
            many.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Removes a request from the pending list when its waiter goes away undecided (timeout, cancel).
struct Withdraw {
    pending: Arc<Mutex<Pending>>,
    events: broadcast::Sender<ApprovalEvent>,
    id: String,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let gone = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
        if let Some((request, _)) = gone {
            let _ = self.events.send(ApprovalEvent::Expired(request));
        }
    }
}

impl ExecApprover for ApprovalQueue {
    fn request(&self, request: ApprovalRequest) -> BoxFuture<'static, Option<ApprovalDecision>> {
        let (tx, rx) = oneshot::channel();
        let id = request.id.clone();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), (request.clone(), tx));
        let _ = self.events.send(ApprovalEvent::Requested(request));
        let guard = Withdraw { pending: self.pending.clone(), events: self.events.clone(), id };
        Box::pin(async move {
            let decision = rx.await.ok();
            drop(guard);
            decision
        })
    }

    fn granted(&self) -> Vec<String> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).patterns.clone()
    }

    fn grant(&self, patterns: &[String]) -> Result<(), String> {
        let mut next = self.granted();
        for p in patterns {
            if !next.contains(p) {
                next.push(p.clone());
            }
        }
        self.set_grants(next)
    }
}

impl ApprovalQueue {
    /// The grants file, when grants are kept.
    pub fn grants_file(&self) -> Option<PathBuf> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).file.clone()
    }

    /// Replaces the `allow-always` grants with `next` (duplicates dropped) and writes the file
    /// (`exec.approvals.set`).
    pub fn set_grants(&self, mut next: Vec<String>) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        next.retain(|p| seen.insert(p.clone()));
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = grants.file.clone() else {
            return Err("allow-always decisions are not kept (no grants file)".into());
        };
        let body =
            GrantsFile { version: 1, allowlist: next.iter().map(|p| GrantEntry { pattern: p.clone() }).collect() };
        let text = serde_json::to_string_pretty(&body).map_err(|e| e.to_string())? + "\n";
        // Written beside and renamed over, so a crash leaves the old list or the new one.
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        grants.patterns = next;
        Ok(())
    }
}
