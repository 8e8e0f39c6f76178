//! The tool policy: `tools.profile`, `tools.allow` / `tools.alsoAllow` / `tools.deny` and a job's
//! own allow list, with OpenClaw's groups, aliases and `*` globs. A tool the policy removes is never
//! shown to the model, and a call to it is answered as an unknown tool.
//!
//! Groups and profiles are copied from OpenClaw's `src/agents/tool-catalog.ts` (the core tool
//! catalog: each tool's section is its `group:<section>`, its profiles list where it appears).
//! Pincer adds `group:mcp` (every MCP tool) and `group:mcp:<server>`.

pub use crate::config::Profile;

/// OpenClaw's core tools: (name, section, profiles).
const CATALOG: &[(&str, &str, &[Profile])] = {
    use Profile::*;
    &[
        ("read", "fs", &[Coding]),
        ("write", "fs", &[Coding]),
        ("edit", "fs", &[Coding]),
        ("apply_patch", "fs", &[Coding]),
        ("exec", "runtime", &[Coding]),
        ("process", "runtime", &[Coding]),
        ("web_search", "web", &[Coding]),
        ("web_fetch", "web", &[Coding]),
        ("memory_search", "memory", &[Coding]),
        ("memory_get", "memory", &[Coding]),
        ("sessions_list", "sessions", &[Coding, Messaging]),
        ("sessions_history", "sessions", &[Coding, Messaging]),
        ("sessions_send", "sessions", &[Coding, Messaging]),
        ("sessions_spawn", "sessions", &[Coding]),
        ("sessions_yield", "sessions", &[Coding]),
        ("subagents", "sessions", &[Coding]),
        ("session_status", "sessions", &[Minimal, Coding, Messaging]),
        ("switch_model", "sessions", &[Minimal, Coding, Messaging]),
        ("browser", "ui", &[]),
        ("canvas", "ui", &[]),
        ("message", "messaging", &[Messaging]),
        ("cron", "automation", &[Coding]),
        ("gateway", "automation", &[]),
        ("nodes", "nodes", &[]),
        ("agents_list", "agents", &[]),
        ("image", "media", &[Coding]),
        ("image_generate", "media", &[Coding]),
        ("tts", "media", &[]),
    ]
};

/// Tools not in `group:openclaw` (OpenClaw's `includeInOpenClawGroup` is unset for these).
const NOT_IN_OPENCLAW_GROUP: &[&str] = &["read", "write", "edit", "apply_patch", "exec", "process"];

/// OpenClaw's aliases: a policy naming `bash` governs `exec`.
const ALIASES: &[(&str, &str)] = &[("bash", "exec"), ("apply-patch", "apply_patch")];

/// Tools only the owner may use, by OpenClaw's `OWNER_ONLY_TOOL_NAME_FALLBACKS`
/// (`src/agents/tool-policy.ts`): a turn started by anyone else (OpenClaw's `senderIsOwner`
/// false: a chat sender who is not the channel's owner) is not offered them. Pincer has `cron`;
/// the other two are OpenClaw's, listed so a tool added under either name is owner-only at once.
pub const OWNER_ONLY: &[&str] = &["cron", "gateway", "whatsapp_login"];

/// Whether `tool` is reserved to the owner ([`OWNER_ONLY`], after OpenClaw's aliases).
pub fn is_owner_only(tool: &str) -> bool {
    OWNER_ONLY.contains(&normalize(tool).as_str())
}

/// The tools a `group:…` name stands for, or `None` when `name` is not a core group.
pub fn group_members(name: &str) -> Option<Vec<&'static str>> {
    let section = name.strip_prefix("group:")?;
    if section == "openclaw" {
        return Some(CATALOG.iter().map(|t| t.0).filter(|t| !NOT_IN_OPENCLAW_GROUP.contains(t)).collect());
    }
    let members: Vec<_> = CATALOG.iter().filter(|t| t.1 == section).map(|t| t.0).collect();
    (!members.is_empty()).then_some(members)
}

fn profile_allow(profile: Profile) -> Option<Vec<String>> {
    (profile != Profile::Full)
        .then(|| CATALOG.iter().filter(|t| t.2.contains(&profile)).map(|t| t.0.to_string()).collect())
}

fn normalize(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    ALIASES.iter().find(|(alias, _)| *alias == lower).map(|(_, real)| real.to_string()).unwrap_or(lower)
}

/// One compiled allow or deny list: exact names and `*` globs, groups expanded.
#[derive(Debug, Clone, Default)]
struct Patterns(Vec<String>);

impl Patterns {
    fn compile(entries: &[String]) -> Patterns {
        let mut out = Vec::new();
        for entry in entries {
            let entry = normalize(entry);
            if entry.is_empty() {
                continue;
            }
            match group_members(&entry) {
                Some(members) => out.extend(members.into_iter().map(str::to_string)),
                None => out.push(entry),
            }
        }
        out.dedup();
        Patterns(out)
    }

    fn matches(&self, tool: &str, mcp_server: Option<&str>) -> bool {
        self.0.iter().any(|p| match p.as_str() {
            "group:mcp" => mcp_server.is_some(),
            p if p.starts_with("group:mcp:") => mcp_server.is_some_and(|s| s.eq_ignore_ascii_case(&p[10..])),
            p => glob_match(p, tool),
        })
    }
}

/// OpenClaw's glob: `*` matches any run of characters, everything else is literal.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// One allow/deny layer. A tool passes when no deny pattern matches and the allow list is empty or
/// matches it (`apply_patch` also passes when `exec` is allowed, as in OpenClaw).
#[derive(Debug, Clone, Default)]
struct Layer {
    allow: Patterns,
    deny: Patterns,
}

impl Layer {
    fn passes(&self, tool: &str, mcp_server: Option<&str>) -> bool {
        if self.deny.matches(tool, mcp_server) {
            return false;
        }
        self.allow.0.is_empty()
            || self.allow.matches(tool, mcp_server)
            || (tool == "apply_patch" && self.allow.matches("exec", None))
    }
}

/// The configured policy, applied to every turn; a job's own allow list narrows it further.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    layers: Vec<Layer>,
}

impl ToolPolicy {
    /// Builds the policy from `tools.profile`, `tools.alsoAllow` (added to the profile's list),
    /// `tools.allow` and `tools.deny`.
    pub fn new(profile: Profile, allow: &[String], also_allow: &[String], deny: &[String]) -> ToolPolicy {
        let mut layers = Vec::new();
        if let Some(mut base) = profile_allow(profile) {
            base.extend(also_allow.iter().cloned());
            layers.push(Layer { allow: Patterns::compile(&base), deny: Patterns::default() });
        }
        layers.push(Layer { allow: Patterns::compile(allow), deny: Patterns::compile(deny) });
        ToolPolicy { layers }
    }

    /// From the `tools` config section.
    pub fn from_config(tools: &crate::config::ToolsConfig) -> ToolPolicy {
        ToolPolicy::new(tools.profile, &tools.allow, &tools.also_allow, &tools.deny)
    }

    /// A copy narrowed by a job's `toolsAllow` (an empty list leaves the policy as it is).
    pub fn with_job_allow(&self, job_allow: &[String]) -> ToolPolicy {
        let mut narrowed = self.clone();
        if !job_allow.is_empty() {
            narrowed.layers.push(Layer { allow: Patterns::compile(job_allow), deny: Patterns::default() });
        }
        narrowed
    }

    /// Whether a tool survives every layer. `mcp_server` names the server of an MCP tool.
    pub fn allows(&self, tool: &str, mcp_server: Option<&str>) -> bool {
        let tool = normalize(tool);
        self.layers.iter().all(|layer| layer.passes(&tool, mcp_server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const PROBE: &[(&str, Option<&str>)] = &[
        ("read", None),
        ("write", None),
        ("exec", None),
        ("apply_patch", None),
        ("web_fetch", None),
        ("web_search", None),
        ("message", None),
        ("cron", None),
        ("session_status", None),
        ("sessions_send", None),
        ("time__now", Some("time")),
        ("docs__search", Some("docs")),
    ];

    fn surviving(policy: &ToolPolicy) -> String {
        PROBE.iter().filter(|(t, s)| policy.allows(t, *s)).map(|(t, _)| *t).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn policy_table() {
        let rows: Vec<(&str, ToolPolicy)> = vec![
            ("full (default)", ToolPolicy::default()),
            ("profile full", ToolPolicy::new(Profile::Full, &[], &[], &[])),
            ("profile minimal", ToolPolicy::new(Profile::Minimal, &[], &[], &[])),
            ("profile coding", ToolPolicy::new(Profile::Coding, &[], &[], &[])),
            ("profile messaging", ToolPolicy::new(Profile::Messaging, &[], &[], &[])),
            ("coding + alsoAllow group:mcp", ToolPolicy::new(Profile::Coding, &[], &list(&["group:mcp"]), &[])),
            ("allow group:web", ToolPolicy::new(Profile::Full, &list(&["group:web"]), &[], &[])),
            (
                "allow group:fs, deny write",
                ToolPolicy::new(Profile::Full, &list(&["group:fs"]), &[], &list(&["write"])),
            ),
            ("deny group:runtime", ToolPolicy::new(Profile::Full, &[], &[], &list(&["group:runtime"]))),
            ("deny bash (alias of exec)", ToolPolicy::new(Profile::Full, &[], &[], &list(&["BASH"]))),
            ("allow exec → apply_patch too", ToolPolicy::new(Profile::Full, &list(&["exec"]), &[], &[])),
            ("allow sessions_* glob", ToolPolicy::new(Profile::Full, &list(&["sessions_*"]), &[], &[])),
            ("allow *", ToolPolicy::new(Profile::Full, &list(&["*"]), &[], &[])),
            ("deny wins over allow", ToolPolicy::new(Profile::Full, &list(&["web_fetch"]), &[], &list(&["web_*"]))),
            ("allow group:mcp:time", ToolPolicy::new(Profile::Full, &list(&["group:mcp:time"]), &[], &[])),
            ("deny group:mcp", ToolPolicy::new(Profile::Full, &[], &[], &list(&["group:mcp"]))),
            ("allow docs__* glob", ToolPolicy::new(Profile::Full, &list(&["docs__*"]), &[], &[])),
            ("allow group:openclaw", ToolPolicy::new(Profile::Full, &list(&["group:openclaw"]), &[], &[])),
            ("job allow narrows full", ToolPolicy::default().with_job_allow(&list(&["web_fetch", "read"]))),
            (
                "job allow cannot widen coding",
                ToolPolicy::new(Profile::Coding, &[], &[], &[]).with_job_allow(&list(&["web_fetch", "message"])),
            ),
            ("empty job allow keeps policy", ToolPolicy::new(Profile::Minimal, &[], &[], &[]).with_job_allow(&[])),
        ];
        let table: String = rows.iter().map(|(name, p)| format!("{name:32} | {}\n", surviving(p))).collect();
        expect![[r#"
            full (default)                   | read write exec apply_patch web_fetch web_search message cron session_status sessions_send time__now docs__search
            profile full                     | read write exec apply_patch web_fetch web_search message cron session_status sessions_send time__now docs__search
            profile minimal                  | session_status
            profile coding                   | read write exec apply_patch web_fetch web_search cron session_status sessions_send
            profile messaging                | message session_status sessions_send
            coding + alsoAllow group:mcp     | read write exec apply_patch web_fetch web_search cron session_status sessions_send time__now docs__search
            allow group:web                  | web_fetch web_search
            allow group:fs, deny write       | read apply_patch
            deny group:runtime               | read write apply_patch web_fetch web_search message cron session_status sessions_send time__now docs__search
            deny bash (alias of exec)        | read write apply_patch web_fetch web_search message cron session_status sessions_send time__now docs__search
            allow exec → apply_patch too     | exec apply_patch
            allow sessions_* glob            | sessions_send
            allow *                          | read write exec apply_patch web_fetch web_search message cron session_status sessions_send time__now docs__search
            deny wins over allow             | 
            allow group:mcp:time             | time__now
            deny group:mcp                   | read write exec apply_patch web_fetch web_search message cron session_status sessions_send
            allow docs__* glob               | docs__search
            allow group:openclaw             | web_fetch web_search message cron session_status sessions_send
            job allow narrows full           | read web_fetch
            job allow cannot widen coding    | web_fetch
            empty job allow keeps policy     | session_status
        "#]]
        .assert_eq(&table);
    }

    #[test]
    fn groups_match_openclaw_catalog() {
        assert_eq!(group_members("group:web").unwrap(), ["web_search", "web_fetch"]);
        assert_eq!(group_members("group:fs").unwrap(), ["read", "write", "edit", "apply_patch"]);
        assert_eq!(group_members("group:runtime").unwrap(), ["exec", "process"]);
        assert_eq!(group_members("group:messaging").unwrap(), ["message"]);
        assert_eq!(group_members("group:automation").unwrap(), ["cron", "gateway"]);
        assert_eq!(group_members("group:nope"), None);
        assert!(glob_match("a*b*c", "axxbyyc") && !glob_match("a*b*c", "axxc") && glob_match("*", ""));
    }
}
