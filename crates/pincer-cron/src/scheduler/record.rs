//! The run record: what `cron.runs` shows of a run and what the `finished` event carries, stored
//! as `cron_runs.record_json`. Written once when the run is reserved, replaced when it finishes,
//! patched when its delivery settles.

use pincer_protocol::state::{
    CommandState, CompletionStatus, DeliveryStatus, ExecStatus, RunErrorReason, SuppressionReason, Trigger,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::command::CommandReport;
use crate::runner::{ExecOutcome, Route, RunContext};

/// One run, in OpenClaw's run-log shape plus Pincer's fields (`slotMs`, the three outcomes,
/// `command`, the resolved route). Fields this version does not know are kept in `extra`, so an
/// older or newer record survives a patch unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// When the record was finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The slot; written as `null` for a manual run while it runs, left out once it finished.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present_or_null")]
    pub slot_ms: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_status: Option<ExecStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<RunErrorReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// How far a `command` payload got (noted while it runs) and how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandNote>,
    /// The tool calls an agent turn made, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<ResolvedDelivery>,
    /// The outbox row carrying the result, while and after it is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<DeliveryStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_suppression_reason: Option<SuppressionReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<String>,
    /// The job's next fire time after this run; `null` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present_or_null")]
    pub next_run_at_ms: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_status: Option<CompletionStatus>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where the result was routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedDelivery {
    pub resolved: Route,
}

/// A `command` payload's progress in its run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandNote {
    pub state: CommandState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Times and output counters.
    #[serde(flatten)]
    pub detail: Map<String, Value>,
}

impl CommandNote {
    pub fn new(state: CommandState) -> CommandNote {
        CommandNote { state, exit_code: None, signal: None, detail: Map::new() }
    }
}

impl From<&CommandReport> for CommandNote {
    fn from(r: &CommandReport) -> CommandNote {
        let mut detail = Map::new();
        for (k, v) in [
            ("stdoutBytes", r.stdout_bytes),
            ("stdoutDroppedBytes", r.stdout_dropped_bytes),
            ("stderrBytes", r.stderr_bytes),
            ("stderrDroppedBytes", r.stderr_dropped_bytes),
            ("outputMaxBytes", r.output_max_bytes),
        ] {
            detail.insert(k.into(), v.into());
        }
        CommandNote { state: r.state, exit_code: r.exit_code.map(i64::from), signal: r.signal.map(i64::from), detail }
    }
}

impl RunRecord {
    /// The record of a run that just finished (delivery and completion are filled in after).
    pub fn finished(
        ctx: &RunContext,
        trigger: Trigger,
        outcome: &ExecOutcome,
        route: Option<&Route>,
        now: i64,
    ) -> RunRecord {
        RunRecord {
            ts: Some(now),
            job_id: ctx.job.id.clone(),
            job_name: Some(ctx.job.name.clone()),
            run_id: ctx.run_id.clone(),
            trigger: Some(trigger),
            slot_ms: ctx.slot_ms.map(Some),
            run_at_ms: Some(ctx.slot_ms.unwrap_or(ctx.started_at_ms)),
            started_at_ms: Some(ctx.started_at_ms),
            finished_at_ms: Some(now),
            duration_ms: Some(now - ctx.started_at_ms),
            execution_status: Some(outcome.exec_status()),
            summary: outcome.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string),
            error: outcome.error.clone(),
            error_reason: outcome.error_reason,
            model: outcome.model.clone(),
            provider: outcome.provider.clone(),
            usage: outcome.usage.clone(),
            session_key: outcome.session_key.clone(),
            command: outcome.command.as_ref().map(CommandNote::from),
            tool_calls: outcome.tool_calls.clone(),
            delivery: route.cloned().map(|resolved| ResolvedDelivery { resolved }),
            ..RunRecord::default()
        }
    }

    /// Reads a stored record. A record this version cannot read field by field (a value it does
    /// not know) is kept whole in `extra`, so nothing of it is lost when it is patched.
    pub fn parse(json: &str) -> RunRecord {
        match serde_json::from_str::<RunRecord>(json) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cron: a stored run record does not read field by field; keeping it as it is");
                let extra = match serde_json::from_str::<Value>(json) {
                    Ok(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                RunRecord { extra, ..RunRecord::default() }
            }
        }
    }

    /// The stored JSON.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The record as a JSON object (for events): the fields this version knows, then the rest of
    /// `extra` (a known field wins over a stale copy in `extra`).
    pub fn to_value(&self) -> Value {
        let mut known = self.clone();
        let extra = std::mem::take(&mut known.extra);
        // Every field is a string, a number, a bool or JSON already: this cannot fail.
        let Ok(Value::Object(mut out)) = serde_json::to_value(&known) else { return Value::Object(extra) };
        for (k, v) in extra {
            out.entry(k).or_insert(v);
        }
        Value::Object(out)
    }
}

/// `Option<Option<T>>` as "absent" (`None`), `null` (`Some(None)`) or a value.
mod present_or_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<i64>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_unknown_fields_and_the_null_next_run() {
        let stored = r#"{"jobId":"j","runId":"r","slotMs":null,"nextRunAtMs":null,"status":"error","future":{"a":1}}"#;
        let record = RunRecord::parse(stored);
        assert_eq!((record.slot_ms, record.next_run_at_ms), (Some(None), Some(None)));
        let back: Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(stored).unwrap());
    }

    #[test]
    fn a_record_with_a_value_this_version_does_not_know_is_kept_whole() {
        let stored = r#"{"jobId":"j","runId":"r","errorReason":"tls_certificate","summary":"s"}"#;
        let record = RunRecord::parse(stored);
        assert_eq!(record.error_reason, None);
        let back: Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(stored).unwrap());
    }
}
