//! OpenClaw's activity ledger over the store's `activity` table: `audit.list` (runs and tools, the
//! 2026.7 shape), `audit.activity.list` (with chat messages) and `audit.run.inspect`.
//!
//! Records are metadata only, as OpenClaw's: no message text, no tool arguments or results. The
//! ids of senders, chats, accounts, targets and platform messages leave the gateway only as keyed
//! hashes (`hmac-sha256:v1:<key id>:<mac>`, keyed by the install's `auditRefKey`), so one sender
//! can be followed across records without being named. Pincer records no execution identity, so a
//! known run inspects as `unsupported` and an unknown one as OpenClaw's `run_not_found`.

use pincer_protocol::ErrorShape;
use pincer_protocol::schema::audit::{
    self as wire, AuditActivityListParams, AuditListParams, AuditPage, AuditRunInspectParams, AuditRunInspectResult,
};
use pincer_store::{ActivityFilter, ActivityRow};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::router::{Ctx, Methods};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;
/// OpenClaw lists 30 days of activity.
const RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// OpenClaw's bounds on an identity ref (`runId`, `executionId`, cursors).
const MAX_REF_CHARS: usize = 256;

const KINDS: &[&str] = &["agent_run", "tool_action", "message"];
const STATUSES: &[&str] = &["started", "succeeded", "failed", "cancelled", "timed_out", "blocked", "unknown"];
const DIRECTIONS: &[&str] = &["inbound", "outbound"];

pub fn register(methods: &mut Methods) {
    methods.add::<wire::AuditList, _, _>(|c: Ctx, p| async move { audit_list(c, p).await });
    methods.add::<wire::AuditActivityList, _, _>(|c: Ctx, p| async move { activity_list(c, p).await });
    methods.add::<wire::AuditRunInspect, _, _>(|c: Ctx, p| async move { run_inspect(c, p).await });
}

/// The filters both lists share, checked as OpenClaw's schema does.
struct Common<'a> {
    method: &'a str,
    agent_id: Option<String>,
    session_key: Option<String>,
    run_id: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    after: Option<u64>,
    before: Option<u64>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn invalid(method: &str, message: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::invalid_request(format!("invalid {method} params: {message}"))
}

fn one_of(method: &str, field: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), ErrorShape> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => {
            Err(invalid(method, format!("{field}: must be one of {}, not {v:?}", allowed.join(", "))))
        }
        _ => Ok(()),
    }
}

fn non_empty(method: &str, fields: &[(&str, &Option<String>)]) -> Result<(), ErrorShape> {
    match fields.iter().find(|(_, v)| v.as_deref() == Some("")) {
        Some((field, _)) => Err(invalid(method, format!("{field}: must not be empty"))),
        None => Ok(()),
    }
}

/// A digit-only positive cursor (OpenClaw's grammar); `Err` for any other.
fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, ()> {
    let Some(c) = cursor.map(str::trim) else { return Ok(None) };
    if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    c.parse::<i64>().ok().filter(|n| *n >= 1).map(Some).ok_or(())
}

impl Common<'_> {
    /// The store filter, or OpenClaw's refusal.
    fn filter(&self, now_ms: i64) -> Result<(ActivityFilter, Option<i64>, u32), ErrorShape> {
        let m = self.method;
        non_empty(
            m,
            &[
                ("agentId", &self.agent_id),
                ("sessionKey", &self.session_key),
                ("runId", &self.run_id),
                ("cursor", &self.cursor),
            ],
        )?;
        one_of(m, "status", &self.status, STATUSES)?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(m, format!("limit: must be between 1 and {MAX_LIMIT}")));
        }
        let cursor = parse_cursor(self.cursor.as_deref());
        let backwards = matches!((self.after, self.before), (Some(a), Some(b)) if a > b);
        let (Ok(cursor), false) = (cursor, backwards) else {
            return Err(ErrorShape::invalid_request(format!("invalid {m} range or cursor")));
        };
        let ms = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let filter = ActivityFilter {
            agent_id: self.agent_id.clone(),
            session_key: self.session_key.clone(),
            run_id: self.run_id.clone(),
            kind: self.kind.clone(),
            status: self.status.clone(),
            after_ms: ms(self.after),
            before_ms: ms(self.before),
            retained_after_ms: Some(now_ms - RETENTION_MS),
            ..Default::default()
        };
        Ok((filter, cursor, limit))
    }
}

async fn page(
    c: &Ctx,
    filter: ActivityFilter,
    cursor: Option<i64>,
    limit: u32,
) -> Result<(Vec<ActivityRow>, Option<String>, String), ErrorShape> {
    let (rows, more, key) = c
        .state
        .store
        .read(move |rd| {
            let (rows, more) = rd.activity_page(&filter, cursor, limit)?;
            Ok((rows, more, rd.meta_get("auditRefKey")?.unwrap_or_default()))
        })
        .await
        .map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    let next = more.then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    Ok((rows, next, key))
}

async fn audit_list(c: Ctx, p: AuditListParams) -> Result<AuditPage, ErrorShape> {
    const M: &str = "audit.list";
    one_of(M, "kind", &p.kind, &KINDS[..2])?;
    let common = Common {
        method: M,
        agent_id: p.agent_id,
        session_key: p.session_key,
        run_id: p.run_id,
        kind: p.kind,
        status: p.status,
        after: p.after,
        before: p.before,
        limit: p.limit,
        cursor: p.cursor,
    };
    let (filter, cursor, limit) = common.filter(c.state.clock.now_ms())?;
    let (rows, next_cursor, _) = page(&c, filter, cursor, limit).await?;
    let events = rows.iter().map(legacy_record).collect();
    Ok(AuditPage { events, next_cursor, extra: Map::new() })
}

async fn activity_list(c: Ctx, p: AuditActivityListParams) -> Result<AuditPage, ErrorShape> {
    const M: &str = "audit.activity.list";
    one_of(M, "kind", &p.kind, KINDS)?;
    one_of(M, "direction", &p.direction, DIRECTIONS)?;
    non_empty(M, &[("channel", &p.channel)])?;
    if let Some(conflict) = filter_conflict(&p) {
        return Err(ErrorShape::invalid_request(format!("invalid {M} filters: {conflict}")));
    }
    let common = Common {
        method: M,
        agent_id: p.agent_id,
        session_key: p.session_key,
        run_id: p.run_id,
        kind: p.kind,
        status: p.status,
        after: p.after,
        before: p.before,
        limit: p.limit,
        cursor: p.cursor,
    };
    let (mut filter, cursor, limit) = common.filter(c.state.clock.now_ms())?;
    filter.direction = p.direction;
    filter.channel = p.channel;
    filter.include_messages = true;
    let (rows, next_cursor, key) = page(&c, filter, cursor, limit).await?;
    let refs = Refs::new(&key);
    let events = rows.iter().map(|r| activity_record(r, &refs)).collect();
    Ok(AuditPage { events, next_cursor, extra: Map::new() })
}

/// OpenClaw's `findAuditActivityFilterConflict`: message filters only with messages, a session
/// only with runs and tools.
fn filter_conflict(p: &AuditActivityListParams) -> Option<String> {
    let message_field = if p.direction.is_some() {
        Some("direction")
    } else if p.channel.is_some() {
        Some("channel")
    } else {
        None
    };
    let kind = p.kind.as_deref();
    if kind == Some(KINDS[2]) && p.session_key.is_some() {
        return Some("sessionKey only applies to kind agent_run or tool_action".into());
    }
    match (kind, message_field) {
        (Some(k), Some(field)) if k != KINDS[2] => Some(format!("{field} only applies to kind message")),
        (None, Some(field)) if p.session_key.is_some() => Some(format!("{field} cannot be combined with sessionKey")),
        _ => None,
    }
}

/// Fields every record has.
fn base(r: &ActivityRow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("eventId".into(), json!(format!("pincer-activity-{}", r.seq)));
    m.insert("sequence".into(), json!(r.seq));
    m.insert("sourceSequence".into(), json!(r.source_seq.max(1)));
    m.insert("occurredAt".into(), json!(r.at_ms.max(0)));
    m.insert("redaction".into(), json!("metadata_only"));
    m.insert("kind".into(), json!(r.kind));
    m.insert("action".into(), json!(r.action));
    m.insert("status".into(), json!(r.status));
    m
}

fn put(m: &mut Map<String, Value>, key: &str, value: &Option<impl serde::Serialize>) {
    if let Some(v) = value {
        m.insert(key.into(), json!(v));
    }
}

/// A run or tool record's agent fields.
fn agent_fields(m: &mut Map<String, Value>, r: &ActivityRow) {
    m.insert("actor".into(), json!({"type": r.actor_type, "id": r.actor_id}));
    m.insert("agentId".into(), json!(r.agent_id.as_deref().unwrap_or(&r.actor_id)));
    put(m, "sessionKey", &r.session_key);
    put(m, "sessionId", &r.session_id);
    m.insert("runId".into(), json!(r.run_id.as_deref().unwrap_or_default()));
    put(m, "toolCallId", &r.tool_call_id);
    put(m, "toolName", &r.tool_name);
    put(m, "errorCode", &r.error_code);
}

/// `audit.list`'s record: no `schemaVersion` or `eventType` (OpenClaw's 2026.7 shape).
fn legacy_record(r: &ActivityRow) -> Value {
    let mut m = base(r);
    agent_fields(&mut m, r);
    Value::Object(m)
}

fn activity_record(r: &ActivityRow, refs: &Refs) -> Value {
    let mut m = base(r);
    m.insert("schemaVersion".into(), json!(1));
    if r.kind != KINDS[2] {
        m.insert("eventType".into(), json!(r.kind));
        agent_fields(&mut m, r);
        return Value::Object(m);
    }
    let channel = r.channel.clone().unwrap_or_default();
    let inbound = r.direction.as_deref() == Some(DIRECTIONS[0]);
    m.insert("eventType".into(), json!(if inbound { "inbound_message" } else { "outbound_message" }));
    m.insert("direction".into(), json!(r.direction));
    m.insert("channel".into(), json!(channel));
    m.insert("conversationKind".into(), json!(r.conversation_kind));
    put(&mut m, "outcome", &r.outcome);
    put(&mut m, "errorCode", &r.error_code);
    put(&mut m, "failureStage", &r.failure_stage);
    put(&mut m, "deliveryKind", &r.delivery_kind);
    put(&mut m, "durationMs", &r.duration_ms);
    put(&mut m, "agentId", &r.agent_id);
    put(&mut m, "runId", &r.run_id);
    let account = r.account_id.as_deref();
    let conversation = r.conversation_id.as_deref();
    let reference = |kind: &str, value: Option<&str>| value.map(|v| refs.of(kind, &channel, account, None, v));
    put(&mut m, "accountRef", &reference("account", account));
    put(&mut m, "conversationRef", &reference("conversation", conversation));
    put(&mut m, "targetRef", &reference("target", r.target_id.as_deref()));
    if let Some(id) = r.message_id.as_deref() {
        m.insert("messageRef".into(), json!(refs.of("message", &channel, account, conversation, id)));
    }
    let actor_id = if r.actor_type == "channel_sender" {
        refs.of("actor", &channel, account, None, &r.actor_id)
    } else {
        r.actor_id.clone()
    };
    m.insert("actor".into(), json!({"type": r.actor_type, "id": actor_id}));
    Value::Object(m)
}

/// Keyed hashes of platform ids: stable per install, meaningless without its key.
struct Refs {
    key: Vec<u8>,
    key_id: String,
}

impl Refs {
    fn new(key_hex: &str) -> Refs {
        let key = key_hex.as_bytes().to_vec();
        let key_id = hex(&Sha256::digest([b"pincer-audit-ref-key:".as_slice(), &key].concat())[..16]);
        Refs { key, key_id }
    }

    fn of(&self, kind: &str, channel: &str, account: Option<&str>, conversation: Option<&str>, value: &str) -> String {
        let mut msg = Vec::new();
        for part in [kind, channel, account.unwrap_or(""), conversation.unwrap_or(""), value] {
            msg.extend_from_slice(part.as_bytes());
            msg.push(0);
        }
        format!("hmac-sha256:v1:{}:{}", self.key_id, hex(&hmac_sha256(&self.key, &msg)))
    }
}

/// HMAC-SHA256 (RFC 2104), from the `hmac` crate.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn run_inspect(c: Ctx, p: AuditRunInspectParams) -> Result<AuditRunInspectResult, ErrorShape> {
    const M: &str = "audit.run.inspect";
    let refs = [
        ("runId", &p.run_id),
        ("executionId", &p.execution_id),
        ("executionCursor", &p.execution_cursor),
        ("decisionCursor", &p.decision_cursor),
    ];
    if let Some((field, _)) =
        refs.iter().find(|(_, v)| v.as_ref().is_some_and(|v| v.is_empty() || v.chars().count() > MAX_REF_CHARS))
    {
        return Err(invalid(M, format!("{field}: must be 1 to {MAX_REF_CHARS} characters")));
    }
    if p.execution_limit.is_some_and(|n| !(1..=50).contains(&n)) {
        return Err(invalid(M, "executionLimit: must be between 1 and 50"));
    }
    if p.decision_limit.is_some_and(|n| !(1..=100).contains(&n)) {
        return Err(invalid(M, "decisionLimit: must be between 1 and 100"));
    }
    let run_only = p.execution_cursor.is_some() || p.execution_limit.is_some();
    match (&p.run_id, &p.execution_id) {
        (Some(_), Some(_)) | (None, None) => return Err(invalid(M, "pass exactly one of runId and executionId")),
        (None, Some(_)) if run_only => {
            return Err(invalid(M, "executionCursor and executionLimit apply to runId only"));
        }
        _ => {}
    }
    // Pincer records no decisions, so no decision cursor is one it handed out.
    if p.decision_cursor.is_some() || parse_cursor(p.execution_cursor.as_deref()).is_err() {
        return Err(ErrorShape::invalid_request(format!("invalid {M} cursor")));
    }
    let Some(run_id) = p.run_id else {
        return Ok(unavailable(
            json!({"executionId": p.execution_id, "status": "unknown"}),
            "unknown",
            "execution_not_found",
            &["identity.context"],
            "verify_execution_id",
            "Verify the exact execution id; absence of best-effort identity evidence is not proof that no run occurred.",
        ));
    };
    let lookup = run_id.clone();
    let known = c
        .state
        .store
        .read(move |rd| rd.run_known(&lookup))
        .await
        .map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    if !known {
        return Ok(unavailable(
            json!({"runId": run_id, "status": "unknown"}),
            "unknown",
            "run_not_found",
            &["run.record", "identity.context"],
            "verify_run_id",
            "Verify the run id; absence of best-effort audit activity is not proof of no run.",
        ));
    }
    Ok(unavailable(
        json!({"runId": run_id, "status": "known"}),
        "unsupported",
        "identity_not_recorded",
        &["identity.context"],
        "list_run_activity",
        "Pincer records no execution identity; `openclaw audit --run <id>` lists this run's activity.",
    ))
}

/// OpenClaw's `unavailableResult`: no identity context, no decisions.
fn unavailable(
    run: Value,
    state: &str,
    reason: &str,
    missing: &[&str],
    code: &str,
    text: &str,
) -> AuditRunInspectResult {
    AuditRunInspectResult {
        schema_version: 1,
        run,
        identity: json!({
            "state": state, "reasonCode": reason, "missingEvidence": missing,
            "remediation": [{"code": code, "text": text}],
        }),
        decision_displays: vec![],
        coverage: json!({"state": state, "missingEvidence": missing}),
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn refs_have_openclaws_form_and_differ_by_kind() {
        let refs = Refs::new("00ff");
        let a = refs.of("actor", "telegram", None, None, "42");
        assert!(a.starts_with("hmac-sha256:v1:") && a.len() == "hmac-sha256:v1:".len() + 32 + 1 + 64, "{a}");
        assert_ne!(a, refs.of("target", "telegram", None, None, "42"));
        assert_eq!(a, Refs::new("00ff").of("actor", "telegram", None, None, "42"));
    }
}
