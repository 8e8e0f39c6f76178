//! The method → scope table: OpenClaw's `CORE_GATEWAY_METHOD_SPECS` (copied verbatim from the
//! research TSV) plus Pincer's own methods.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use crate::scope::Scope;

/// What a caller must hold to call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any authenticated connection, even one with no scopes (`health`).
    Authenticated,
    /// One operator scope, checked with the implication rules.
    Scope(Scope),
    /// Only connections with role `node`.
    NodeRole,
    /// Decided from the params; see [`MethodInfo::required_scope`].
    Dynamic,
}

/// One row of the method table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodInfo {
    pub name: &'static str,
    pub requirement: Requirement,
    /// OpenClaw marks these as rate-limited control-plane writes.
    pub control_plane_write: bool,
}

impl MethodInfo {
    /// The operator scope this call needs, resolving dynamic methods from their params.
    /// `None` means any authenticated operator may call it.
    pub fn required_scope(&self, params: Option<&Value>) -> Option<Scope> {
        match self.requirement {
            Requirement::Authenticated | Requirement::NodeRole => None,
            Requirement::Scope(s) => Some(s),
            Requirement::Dynamic => Some(dynamic_scope(self.name, params)),
        }
    }
}

/// OpenClaw's dynamic rules for the dynamic methods Pincer implements; admin otherwise.
fn dynamic_scope(method: &str, params: Option<&Value>) -> Scope {
    match method {
        "agent" => {
            let message = params.and_then(|p| p.get("message")).and_then(Value::as_str).unwrap_or("");
            let word = message.split_whitespace().next().unwrap_or("");
            if word == "/new" || word == "/reset" { Scope::Admin } else { Scope::Write }
        }
        "channels.pairing.approve" => {
            let owner = params.and_then(|p| p.get("bootstrapCommandOwner")) == Some(&Value::Bool(true));
            if owner { Scope::Admin } else { Scope::Pairing }
        }
        // OpenClaw: a delete restricted to archived sessions is a write; any other is admin's.
        "sessions.delete" => {
            let archived_only = params.and_then(|p| p.get("archivedOnly")).and_then(Value::as_bool) == Some(true);
            if archived_only { Scope::Write } else { Scope::Admin }
        }
        // OpenClaw: a patch of display and model fields only is a write; any other is admin's.
        "sessions.patch" => {
            const WRITE_FIELDS: &[&str] = &[
                "key",
                "agentId",
                "expectedSessionId",
                "expectedLifecycleRevision",
                "expectedPermissionMode",
                "expectedMarkedUnreadAt",
                "label",
                "autoLabel",
                "icon",
                "color",
                "category",
                "boardFace",
                "boardPresentation",
                "pinned",
                "archived",
                "unread",
                "model",
                "agentRuntime",
                "thinkingLevel",
                "fastMode",
                "permissionMode",
            ];
            let Some(fields) = params.and_then(Value::as_object) else { return Scope::Write };
            let full = fields.get("permissionMode").and_then(Value::as_str) == Some("full");
            if full || fields.contains_key("sandboxMode") || !fields.keys().all(|k| WRITE_FIELDS.contains(&k.as_str()))
            {
                Scope::Admin
            } else {
                Scope::Write
            }
        }
        _ => Scope::Admin,
    }
}

/// OpenClaw 2026.9.6's method table (`method`, `required_scope`, `since`, `flags`), extracted from
/// its `CORE_GATEWAY_METHOD_SPECS`.
pub const OPENCLAW_TSV: &str = include_str!("method-scopes.tsv");

/// The events OpenClaw 2026.9.6 lists in `hello-ok` `features.events`, one a line.
pub const OPENCLAW_EVENTS: &str = include_str!("openclaw-events.txt");

/// Pincer's methods that OpenClaw does not have.
pub const PINCER_METHODS: &[(&str, Requirement)] = &[
    ("deliveries.list", Requirement::Scope(Scope::Read)),
    ("deliveries.get", Requirement::Scope(Scope::Read)),
    ("deliveries.retry", Requirement::Scope(Scope::Write)),
    ("deliveries.cancel", Requirement::Scope(Scope::Write)),
    ("deliveries.purge", Requirement::Scope(Scope::Admin)),
    ("inbox.list", Requirement::Scope(Scope::Read)),
    ("doctor.run", Requirement::Scope(Scope::Read)),
    ("audit.query", Requirement::Scope(Scope::Admin)),
    ("cron.preview", Requirement::Scope(Scope::Read)),
    ("config.reload", Requirement::Scope(Scope::Admin)),
    ("mcp.servers.list", Requirement::Scope(Scope::Read)),
    // Starts the server's process (or opens a session) on a connection of its own.
    ("mcp.servers.probe", Requirement::Scope(Scope::Admin)),
    ("import.openclaw", Requirement::Scope(Scope::Admin)),
];

static TABLE: LazyLock<HashMap<&'static str, MethodInfo>> = LazyLock::new(|| {
    let mut table = HashMap::new();
    for line in OPENCLAW_TSV.lines().skip(1) {
        let mut cols = line.split('\t');
        let (Some(name), Some(scope)) = (cols.next(), cols.next()) else { continue };
        let flags = cols.nth(1).unwrap_or("");
        let requirement = match scope {
            _ if name == "health" => Requirement::Authenticated,
            "dynamic" => Requirement::Dynamic,
            "node" => Requirement::NodeRole,
            s => Requirement::Scope(Scope::parse(s).expect("method table names a known scope")),
        };
        let control_plane_write = flags.split(',').any(|f| f == "controlPlaneWrite");
        table.insert(name, MethodInfo { name, requirement, control_plane_write });
    }
    for &(name, requirement) in PINCER_METHODS {
        table.insert(name, MethodInfo { name, requirement, control_plane_write: false });
    }
    table
});

/// Looks a method up. Methods in no table are unclassified and need `operator.admin`.
pub fn method_info(name: &str) -> MethodInfo {
    TABLE.get(name).cloned().unwrap_or(MethodInfo {
        name: "(unclassified)",
        requirement: Requirement::Scope(Scope::Admin),
        control_plane_write: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_matches_research() {
        assert!(TABLE.len() >= 470, "table has {} rows", TABLE.len());
        assert_eq!(method_info("health").requirement, Requirement::Authenticated);
        assert_eq!(method_info("status").requirement, Requirement::Scope(Scope::Read));
        assert_eq!(method_info("cron.add").requirement, Requirement::Scope(Scope::Admin));
        assert!(method_info("cron.add").control_plane_write);
        assert_eq!(method_info("cron.runs").requirement, Requirement::Scope(Scope::Read));
        assert_eq!(method_info("send").requirement, Requirement::Scope(Scope::Write));
        assert_eq!(method_info("deliveries.cancel").requirement, Requirement::Scope(Scope::Write));
        assert_eq!(method_info("device.pair.list").requirement, Requirement::Scope(Scope::Pairing));
        assert_eq!(method_info("node.event").requirement, Requirement::NodeRole);
        assert_eq!(method_info("made.up").requirement, Requirement::Scope(Scope::Admin));
    }

    #[test]
    fn agent_is_dynamic() {
        let agent = method_info("agent");
        assert_eq!(agent.required_scope(Some(&json!({"message": "hi"}))), Some(Scope::Write));
        assert_eq!(agent.required_scope(Some(&json!({"message": " /reset now"}))), Some(Scope::Admin));
        assert_eq!(method_info("health").required_scope(None), None);
        let delete = method_info("sessions.delete");
        assert_eq!(delete.required_scope(Some(&json!({"key": "k"}))), Some(Scope::Admin));
        assert_eq!(delete.required_scope(Some(&json!({"key": "k", "archivedOnly": true}))), Some(Scope::Write));
        let patch = method_info("sessions.patch");
        assert_eq!(patch.required_scope(Some(&json!({"key": "k", "label": "x", "model": null}))), Some(Scope::Write));
        assert_eq!(patch.required_scope(Some(&json!({"key": "k", "archived": true}))), Some(Scope::Write));
        assert_eq!(patch.required_scope(Some(&json!({"key": "k", "execHost": "x"}))), Some(Scope::Admin));
        assert_eq!(patch.required_scope(Some(&json!({"key": "k", "permissionMode": "full"}))), Some(Scope::Admin));
        assert_eq!(patch.required_scope(Some(&json!({"key": "k", "sandboxMode": null}))), Some(Scope::Admin));
    }
}
