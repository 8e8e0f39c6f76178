//! OpenClaw's paired devices and run history, mapped to `import.openclaw` params. Pure: the
//! readers hand over OpenClaw's own JSON shapes (`PairedDevice`, run receipts), tested here on
//! rows the real OpenClaw wrote.

use std::collections::BTreeMap;

use pincer_protocol::schema::import::{ImportedDevice, ImportedRun, ImportedToken};
use pincer_protocol::state::{ExecStatus, Trigger};
use pincer_protocol::{Role, Scope};
use serde_json::Value;

/// Devices that move, and (device, reason) for what cannot or changes.
pub fn devices(rows: &[Value]) -> (Vec<ImportedDevice>, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for row in rows {
        let s = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
        let list = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
        };
        let (Some(device_id), Some(public_key)) = (s("deviceId"), s("publicKey")) else {
            notes.push(("(a row)".into(), "no deviceId or publicKey".into()));
            continue;
        };
        let name = s("displayName").map_or_else(|| device_id.clone(), |n| format!("{n} ({device_id})"));
        let mut roles = list(&row["roles"]);
        if roles.is_empty() {
            roles.extend(s("role"));
        }
        let (roles, unknown): (Vec<String>, Vec<String>) = roles.into_iter().partition(|r| Role::parse(r).is_some());
        if !unknown.is_empty() {
            notes.push((
                name.clone(),
                format!("role(s) {} not carried over: Pincer has operator and node", unknown.join(", ")),
            ));
        }
        let known_scopes = |scopes: Vec<String>, notes: &mut Vec<(String, String)>| -> Vec<String> {
            let (keep, drop): (Vec<String>, Vec<String>) = scopes.into_iter().partition(|s| Scope::parse(s).is_ok());
            if !drop.is_empty() {
                notes.push((
                    name.clone(),
                    format!("scope(s) {} not carried over: Pincer has no such scope", drop.join(", ")),
                ));
            }
            keep
        };
        let scopes = known_scopes(list(&row["scopes"]), &mut notes);
        let mut tokens = Vec::new();
        let by_role: BTreeMap<String, Value> =
            row["tokens"].as_object().map(|o| o.clone().into_iter().collect()).unwrap_or_default();
        for (role, t) in by_role {
            let role = t["role"].as_str().unwrap_or(&role).to_string();
            if t.get("revokedAtMs").is_some_and(|v| !v.is_null()) {
                notes.push((name.clone(), format!("{role} token revoked in OpenClaw: not carried over")));
                continue;
            }
            let Some(token) = t["token"].as_str().filter(|t| !t.is_empty()) else { continue };
            if Role::parse(&role).is_none() {
                continue;
            }
            tokens.push(ImportedToken {
                role,
                token: token.to_string(),
                scopes: known_scopes(list(&t["scopes"]), &mut notes),
                created_at_ms: t["createdAtMs"].as_i64().unwrap_or(0),
            });
        }
        if tokens.is_empty() {
            notes.push((name.clone(), "no live token: paired here, but the client must pair again to get one".into()));
        }
        out.push(ImportedDevice {
            device_id,
            public_key,
            display_name: s("displayName"),
            platform: s("platform"),
            device_family: s("deviceFamily"),
            client_id: s("clientId"),
            client_mode: s("clientMode"),
            roles,
            scopes,
            tokens,
            created_at_ms: row["createdAtMs"].as_i64().unwrap_or(0),
            approved_at_ms: row["approvedAtMs"].as_i64(),
        });
    }
    (out, notes)
}

/// One OpenClaw run, before its job's Pincer id is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub openclaw_job_id: String,
    pub run: ImportedRun,
}

/// Finished runs that move (job ids still OpenClaw's), and (run, reason) for those that change.
pub fn runs(rows: &[Value]) -> (Vec<Receipt>, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for row in rows {
        let s = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(id), Some(job), Some(status)) = (s("receiptId"), s("jobId"), s("status")) else { continue };
        let (Some(started), Some(finished)) = (row["startedAtMs"].as_i64(), row["finishedAtMs"].as_i64()) else {
            continue;
        };
        let mut error = s("error");
        let status = match status.parse::<ExecStatus>() {
            Ok(s) => s,
            Err(_) => {
                // `interrupted` and `superseded` have no Pincer spelling: kept as the error text.
                notes.push((id.clone(), format!("OpenClaw status `{status}` kept as an error")));
                error = Some(error.map_or_else(|| status.clone(), |e| format!("{status}: {e}")));
                ExecStatus::Error
            }
        };
        let trigger = if s("requestRunId").is_some_and(|r| r.starts_with("manual:")) {
            Trigger::Manual
        } else {
            Trigger::Scheduled
        };
        out.push(Receipt {
            openclaw_job_id: job,
            run: ImportedRun {
                job_id: String::new(),
                openclaw_run_id: id,
                trigger,
                status,
                started_at_ms: started,
                finished_at_ms: finished.max(started),
                error,
            },
        });
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `device_pairing_paired` row in OpenClaw's `PairedDevice` shape (as the reader builds it).
    fn row() -> Value {
        json!({
            "deviceId": "d1", "publicKey": "pk", "displayName": "laptop", "platform": "linux", "role": "operator",
            "roles": ["operator"], "scopes": ["operator.read", "operator.workboard"],
            "tokens": {
                "operator": {"token": "live-token", "role": "operator", "scopes": ["operator.read"], "createdAtMs": 5},
                "node": {"token": "old", "role": "node", "scopes": [], "createdAtMs": 1, "revokedAtMs": 2}
            },
            "createdAtMs": 1, "approvedAtMs": 2
        })
    }

    #[test]
    fn a_paired_device_keeps_its_live_token_and_loses_what_pincer_has_not() {
        let (devices, notes) = devices(&[row()]);
        let d = &devices[0];
        assert_eq!((d.device_id.as_str(), d.public_key.as_str()), ("d1", "pk"));
        assert_eq!(d.scopes, ["operator.read"]);
        assert_eq!(d.tokens.len(), 1);
        assert_eq!((d.tokens[0].role.as_str(), d.tokens[0].token.as_str()), ("operator", "live-token"));
        let notes: Vec<String> = notes.into_iter().map(|(d, why)| format!("{d}: {why}")).collect();
        expect_test::expect![[r#"
            laptop (d1): scope(s) operator.workboard not carried over: Pincer has no such scope
            laptop (d1): node token revoked in OpenClaw: not carried over"#]]
        .assert_eq(&notes.join("\n"));
    }

    #[test]
    fn receipts_become_runs_with_their_trigger_and_openclaw_only_statuses_as_errors() {
        let rows = [
            json!({"receiptId": "r1", "jobId": "j", "requestRunId": "manual:j:1:1", "status": "error",
                   "startedAtMs": 10, "finishedAtMs": 20, "error": "agent-runner-failure"}),
            json!({"receiptId": "r2", "jobId": "j", "requestRunId": null, "status": "interrupted",
                   "startedAtMs": 30, "finishedAtMs": 40, "error": null}),
            json!({"receiptId": "r3", "jobId": "j", "status": "ok", "startedAtMs": 50, "finishedAtMs": 60}),
        ];
        let (runs, notes) = runs(&rows);
        let got: Vec<(&str, Trigger, ExecStatus, Option<&str>)> = runs
            .iter()
            .map(|r| (r.run.openclaw_run_id.as_str(), r.run.trigger, r.run.status, r.run.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("r1", Trigger::Manual, ExecStatus::Error, Some("agent-runner-failure")),
                ("r2", Trigger::Scheduled, ExecStatus::Error, Some("interrupted")),
                ("r3", Trigger::Scheduled, ExecStatus::Ok, None),
            ]
        );
        assert_eq!(notes, [("r2".to_string(), "OpenClaw status `interrupted` kept as an error".to_string())]);
    }
}
