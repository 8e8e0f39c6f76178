//! The configuration sections `pincer-tools` reads, with OpenClaw's key names and defaults: `tools.*`
//! and `mcp.servers.*`, embedded in [`crate::Config`]. They are closed (`deny_unknown_fields`) like
//! the rest of Pincer's config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `tools.profile`: the base set of tools before allow/deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Minimal,
    Coding,
    Messaging,
    #[default]
    Full,
}

/// `tools`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ToolsConfig {
    pub profile: Profile,
    pub allow: Vec<String>,
    /// Added to the profile's list (OpenClaw's `tools.alsoAllow`).
    pub also_allow: Vec<String>,
    pub deny: Vec<String>,
    pub exec: ExecConfig,
    pub web: WebConfig,
}

/// `tools.exec.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// Nothing runs.
    Deny,
    /// Only pipelines whose every segment is allowlisted or a safe bin run.
    #[default]
    Allowlist,
    /// Like `allowlist`, and anything else waits for an operator's approval.
    Ask,
    /// Everything runs (still in the workspace, with a scrubbed environment).
    Full,
}

/// One `tools.exec.allowlist` entry: a path glob of an executable (`/usr/bin/git`, `~/bin/*`,
/// `/opt/**`), written as a string or as OpenClaw's `{ "pattern": … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AllowlistEntry {
    Pattern(String),
    Entry(AllowlistObject),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistObject {
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl AllowlistEntry {
    pub fn pattern(&self) -> &str {
        match self {
            AllowlistEntry::Pattern(p) => p,
            AllowlistEntry::Entry(e) => &e.pattern,
        }
    }
}

/// `tools.exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExecConfig {
    pub mode: ExecMode,
    pub allowlist: Vec<AllowlistEntry>,
    /// Executables (by name) allowed without an allowlist entry when they only read stdin: no
    /// path-like or existing-file arguments (OpenClaw's `safeBins`).
    pub safe_bins: Vec<String>,
    /// Default time limit of one command (the call's `timeout` parameter may lower it).
    pub timeout_sec: u64,
    /// How long an `ask` waits for an operator before refusing.
    pub approval_timeout_sec: u64,
    /// Output kept per command (stdout and stderr together); the rest is counted and dropped.
    pub max_output_chars: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            mode: ExecMode::Allowlist,
            allowlist: Vec::new(),
            safe_bins: Vec::new(),
            timeout_sec: 1_800,
            approval_timeout_sec: 120,
            max_output_chars: 200_000,
        }
    }
}

/// `tools.web`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebConfig {
    pub fetch: WebFetchConfig,
    pub search: WebSearchConfig,
}

/// `tools.web.fetch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebFetchConfig {
    pub enabled: bool,
    /// Default `maxChars` of the extracted text.
    pub max_chars: usize,
    /// Upper bound on the `maxChars` a call may ask for.
    pub max_chars_cap: usize,
    /// Bytes of the response body read at most; the rest is never downloaded.
    pub max_response_bytes: usize,
    pub timeout_seconds: u64,
    pub max_redirects: usize,
    pub user_agent: String,
    /// Readability extraction of the main content (off: the whole page is converted).
    pub readability: bool,
    pub ssrf_policy: SsrfPolicyConfig,
}

impl Default for WebFetchConfig {
    fn default() -> Self {
        WebFetchConfig {
            enabled: true,
            max_chars: 50_000,
            max_chars_cap: 50_000,
            max_response_bytes: 2_000_000,
            timeout_seconds: 30,
            max_redirects: 3,
            user_agent: concat!("Mozilla/5.0 (compatible; Pincer/", env!("CARGO_PKG_VERSION"), ")").to_string(),
            readability: true,
            ssrf_policy: SsrfPolicyConfig::default(),
        }
    }
}

/// `tools.web.fetch.ssrfPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SsrfPolicyConfig {
    /// Hostnames (or `*.suffix`) and IP literals exempt from the private-network check.
    pub allowed_hostnames: Vec<String>,
    /// Hostnames (or `*.suffix`) and IP literals always refused.
    pub blocked_hostnames: Vec<String>,
    /// Turns the private-network check off entirely.
    pub dangerously_allow_private_network: bool,
}

/// `tools.web.search.provider`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchProvider {
    #[default]
    Brave,
    Searxng,
}

/// `tools.web.search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebSearchConfig {
    pub enabled: bool,
    pub provider: SearchProvider,
    /// Brave's subscription token (`${BRAVE_API_KEY}`); unused by SearXNG.
    pub api_key: Option<String>,
    /// Brave: `https://api.search.brave.com` by default; SearXNG: the instance URL (required).
    pub base_url: Option<String>,
    pub max_results: usize,
    pub timeout_seconds: u64,
}

impl Default for WebSearchConfig {
    fn default() -> Self {
        WebSearchConfig {
            enabled: true,
            provider: SearchProvider::Brave,
            api_key: None,
            base_url: None,
            max_results: 5,
            timeout_seconds: 30,
        }
    }
}

/// `mcp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct McpConfig {
    pub servers: BTreeMap<String, McpServerConfig>,
}

/// `mcp.servers.<name>.transport` for a `url` server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    #[default]
    StreamableHttp,
    Sse,
}

/// `mcp.servers.<name>.toolFilter`: which of the server's tools are offered at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ToolFilter {
    /// When non-empty, only these tool names (the server's own names, `*` globs allowed).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// `mcp.servers.<name>`: a stdio server (`command`) or a remote one (`url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct McpServerConfig {
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    pub transport: McpTransport,
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    pub tool_filter: ToolFilter,
    pub connection_timeout_ms: u64,
    pub request_timeout_ms: u64,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        McpServerConfig {
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            transport: McpTransport::StreamableHttp,
            headers: BTreeMap::new(),
            enabled: true,
            tool_filter: ToolFilter::default(),
            connection_timeout_ms: 30_000,
            request_timeout_ms: 60_000,
        }
    }
}

impl McpServerConfig {
    /// Checks what serde cannot: exactly one of `command` and `url`, and a usable URL.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let path = format!("mcp.servers.{name}");
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => Err(format!("{path}: set either `command` (stdio) or `url` (HTTP), not both")),
            (None, None) => Err(format!("{path}: set `command` for a stdio server or `url` for a remote one")),
            (Some(c), None) if c.trim().is_empty() => Err(format!("{path}.command: must not be empty")),
            (None, Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                Err(format!("{path}.url: `{u}` must start with http:// or https://"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn defaults_are_openclaws_and_nothing_runs() {
        let tools: ToolsConfig = parse("{}").unwrap();
        assert_eq!(tools.profile, Profile::Full);
        assert_eq!(tools.exec.mode, ExecMode::Allowlist);
        assert!(tools.exec.allowlist.is_empty() && tools.exec.safe_bins.is_empty());
        assert_eq!(tools.web.fetch.max_chars, 50_000);
        assert_eq!(tools.web.fetch.max_redirects, 3);
        assert!(!tools.web.fetch.ssrf_policy.dangerously_allow_private_network);
    }

    #[test]
    fn spec_example_parses_and_unknown_keys_name_their_path() {
        let tools: ToolsConfig = parse(
            r#"{"profile":"coding","allow":["group:web"],"deny":[],
                "exec":{"mode":"ask","safeBins":["wc"],"allowlist":["/usr/bin/git",{"pattern":"~/bin/*"}]},
                "web":{"fetch":{"ssrfPolicy":{"allowedHostnames":["127.0.0.1"],"blockedHostnames":["*.corp"],"dangerouslyAllowPrivateNetwork":false}},
                       "search":{"provider":"searxng","baseUrl":"http://127.0.0.1:8888"}}}"#,
        )
        .unwrap();
        assert_eq!(tools.exec.allowlist[1].pattern(), "~/bin/*");
        assert_eq!(tools.web.search.provider, SearchProvider::Searxng);
        let err = parse::<ToolsConfig>(r#"{"web":{"fetch":{"ssrfPolicy":{"allowPrivate":true}}}}"#).unwrap_err();
        assert!(err.starts_with("web.fetch.ssrfPolicy.allowPrivate") || err.contains("allowPrivate"), "{err}");
        let mcp: McpConfig = parse(
            r#"{"servers":{"time":{"command":"mcp-server-time","args":[],"env":{},"cwd":"/tmp"},
                "docs":{"url":"https://x/mcp","transport":"streamable-http","headers":{},"toolFilter":{"include":[]}}}}"#,
        )
        .unwrap();
        assert!(mcp.servers["time"].validate("time").is_ok());
        assert_eq!(mcp.servers["docs"].transport, McpTransport::StreamableHttp);
        let both = McpServerConfig { command: Some("x".into()), url: Some("http://x".into()), ..Default::default() };
        assert!(both.validate("both").unwrap_err().contains("not both"));
    }
}
