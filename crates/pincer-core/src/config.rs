//! Pincer's configuration: `<state>/pincer.json` (JSON5 accepted), `${ENV}` expansion in string
//! values, closed schemas whose errors name the key path, and `PINCER_*` environment overrides.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Reads an environment variable. Injected so tests never touch the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for production callers.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where Pincer keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    pub db_path: PathBuf,
}

impl StatePaths {
    /// `--state-dir`, else `$PINCER_STATE_DIR`, else `~/.pincer`; config at `$PINCER_CONFIG_PATH`,
    /// else `<state>/pincer.json`; database at `<state>/pincer.db`.
    pub fn resolve(state_dir_flag: Option<&Path>, env: Env) -> StatePaths {
        let state_dir = state_dir_flag
            .map(Path::to_path_buf)
            .or_else(|| env("PINCER_STATE_DIR").map(PathBuf::from))
            .unwrap_or_else(|| env("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".pincer"));
        let config_path = env("PINCER_CONFIG_PATH").map(PathBuf::from).unwrap_or_else(|| state_dir.join("pincer.json"));
        StatePaths { db_path: state_dir.join("pincer.db"), state_dir, config_path }
    }
}

/// A configuration that could not be read, with the file and the key path at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub models: ModelsConfig,
    pub agents: AgentsConfig,
    pub channels: ChannelsConfig,
    pub cron: CronConfig,
    pub delivery: DeliveryConfig,
    pub logging: LoggingConfig,
    pub session: SessionConfig,
    /// What agent turns may call (`tools.profile/allow/deny`, `tools.exec`, `tools.web`).
    pub tools: crate::tools_config::ToolsConfig,
    /// MCP servers whose tools agent turns may call.
    pub mcp: crate::tools_config::McpConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GatewayConfig {
    pub port: u16,
    pub bind: Bind,
    pub auth: AuthConfig,
    pub pairing: PairingConfig,
    pub connections: ConnectionsConfig,
    pub control_ui: ControlUiConfig,
}

/// The browser console served on the gateway port (`gateway.controlUi`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ControlUiConfig {
    /// Browser origins (`scheme://host[:port]`) besides the gateway's own that may open its
    /// WebSocket, e.g. `https://pincer.example.net` behind a proxy; `"*"` allows any.
    pub allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            port: 18789,
            bind: Bind::Loopback,
            auth: AuthConfig::default(),
            pairing: PairingConfig::default(),
            connections: ConnectionsConfig::default(),
            control_ui: ControlUiConfig::default(),
        }
    }
}

/// Limits on the sockets of the gateway port (`gateway.connections`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ConnectionsConfig {
    /// Open sockets at most (HTTP and WebSocket). Unset: 4096, lowered to what the open-file limit
    /// leaves after the descriptors kept back for the store, channels and commands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Sockets one address may hold before it authenticates (OpenClaw's pre-auth budget).
    pub max_unauthenticated_per_address: u32,
    /// Time a client has to send a complete HTTP request head (slowloris guard).
    pub header_timeout_ms: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig { max: None, max_unauthenticated_per_address: 64, header_timeout_ms: 10_000 }
    }
}

/// Which interface the gateway listens on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bind {
    /// 127.0.0.1 only.
    #[default]
    Loopback,
    /// 0.0.0.0; refused without auth.
    Lan,
}

impl Bind {
    pub fn parse(s: &str) -> Option<Bind> {
        match s {
            "loopback" => Some(Bind::Loopback),
            "lan" => Some(Bind::Lan),
            _ => None,
        }
    }

    /// The config and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Bind::Loopback => "loopback",
            Bind::Lan => "lan",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub rate_limit: RateLimitConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A shared token, compared in constant time.
    #[default]
    Token,
    /// No shared secret; only allowed on loopback.
    None,
}

impl AuthMode {
    /// The config and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Token => "token",
            AuthMode::None => "none",
        }
    }
}

/// Failed-auth limiting per remote address (OpenClaw's `gateway.auth.rateLimit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RateLimitConfig {
    pub max_attempts: u32,
    pub window_ms: u64,
    pub lockout_ms: u64,
    /// Direct loopback clients without a browser `Origin` are never locked out (OpenClaw's default).
    pub exempt_loopback: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { max_attempts: 10, window_ms: 60_000, lockout_ms: 300_000, exempt_loopback: true }
    }
}

/// Device pairing policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PairingConfig {
    /// Approve a device's first pairing silently when it connects over loopback.
    pub auto_approve_local: bool,
    /// Also approve loopback scope upgrades silently (off: the owner approves them).
    pub auto_approve_local_scope_upgrades: bool,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig { auto_approve_local: true, auto_approve_local_scope_upgrades: false }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ModelsConfig {
    pub providers: BTreeMap<String, ProviderConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderConfig {
    pub api: ProviderApi,
    pub base_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ProviderApi {
    #[serde(rename = "openai-completions")]
    OpenAiCompletions,
    #[serde(rename = "anthropic-messages")]
    AnthropicMessages,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelEntry {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AgentsConfig {
    pub defaults: AgentDefaults,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AgentDefaults {
    pub model: ModelSelection,
    /// IANA zone for cron jobs without an explicit `tz`; the host's zone when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub heartbeat: HeartbeatConfig,
    /// Model calls one turn may make while it calls tools; the turn then ends with an error.
    pub max_tool_steps: u32,
    /// The agent's workspace (bootstrap files, skills; file tools and `exec` are confined to it);
    /// `<state dir>/workspace` when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Time limit of one tool call (a tool's own, shorter limit still applies).
    pub tool_timeout_seconds: u64,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            model: ModelSelection::default(),
            timezone: None,
            heartbeat: HeartbeatConfig::default(),
            max_tool_steps: 25,
            workspace: None,
            tool_timeout_seconds: 600,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ModelSelection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    pub fallbacks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct HeartbeatConfig {
    /// Interval of the main-session heartbeat, e.g. `30m`; `0m` disables it.
    pub every: String,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig { every: "30m".into() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ChannelsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discord: Option<DiscordConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackConfig>,
    pub webhook: WebhookConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscordConfig {
    pub token: String,
    #[serde(default = "DiscordConfig::default_base")]
    pub api_base_url: String,
    /// The Gateway WebSocket (Pincer's key, for tests and proxies). Unset: the URL Discord names
    /// at `GET {apiBaseUrl}/gateway/bot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    /// Who may talk to the bot in DMs (OpenClaw's names): `pairing` by default.
    #[serde(default)]
    pub dm_policy: DmPolicy,
    /// User ids (or names) allowed in DMs; `*` is everyone.
    #[serde(default, deserialize_with = "ids")]
    pub allow_from: Vec<String>,
    /// Which guilds are answered: `allowlist` (those in `guilds`) by default.
    #[serde(default)]
    pub group_policy: GroupPolicy,
    /// Guild id (or `*`) → its settings.
    #[serde(default)]
    pub guilds: std::collections::BTreeMap<String, DiscordGuildConfig>,
    /// OpenClaw's `dm` block: DMs on or off, and group DMs (off by default).
    #[serde(default, skip_serializing_if = "DiscordDmConfig::is_default")]
    pub dm: DiscordDmConfig,
}

/// `channels.discord.dm` (OpenClaw's keys): `enabled` (1:1 DMs, default true), `groupEnabled`
/// (group DMs, channel type 3, default false) and `groupChannels` (the group DMs answered, by
/// channel id or name slug, `*` for all; empty: every group DM once `groupEnabled`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DiscordDmConfig {
    /// 1:1 DMs are answered (under `dmPolicy`); false ignores them all.
    pub enabled: bool,
    /// Group DMs are answered (default false: ignored).
    pub group_enabled: bool,
    /// The group DMs answered once `groupEnabled`: channel ids or name slugs, `*` for all;
    /// empty: every group DM.
    #[serde(deserialize_with = "ids")]
    pub group_channels: Vec<String>,
}

impl DiscordDmConfig {
    fn is_default(&self) -> bool {
        *self == DiscordDmConfig::default()
    }
}

impl Default for DiscordDmConfig {
    fn default() -> Self {
        DiscordDmConfig { enabled: true, group_enabled: false, group_channels: Vec::new() }
    }
}

impl DiscordConfig {
    fn default_base() -> String {
        "https://discord.com/api/v10".into()
    }
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            token: String::new(),
            api_base_url: DiscordConfig::default_base(),
            gateway_url: None,
            dm_policy: DmPolicy::default(),
            allow_from: Vec::new(),
            group_policy: GroupPolicy::default(),
            guilds: Default::default(),
            dm: DiscordDmConfig::default(),
        }
    }
}

/// One entry of `channels.discord.guilds` (OpenClaw's shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DiscordGuildConfig {
    /// Answer only when the bot is @mentioned or replied to (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_mention: Option<bool>,
    /// Members allowed to talk to the bot here; empty (and no `roles`): everyone in the guild.
    #[serde(deserialize_with = "ids")]
    pub users: Vec<String>,
    /// Role ids whose holders may talk to the bot here (OpenClaw's: a sender in `users` OR
    /// holding one of these is allowed).
    #[serde(deserialize_with = "ids")]
    pub roles: Vec<String>,
    /// Channel id (or `*`) → its settings. Once it names one channel it is an allowlist.
    pub channels: std::collections::BTreeMap<String, DiscordChannelConfig>,
}

/// One entry of a guild's `channels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DiscordChannelConfig {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_mention: Option<bool>,
    #[serde(deserialize_with = "ids")]
    pub users: Vec<String>,
    /// Role ids allowed in this channel (overrides the guild's `roles`).
    #[serde(deserialize_with = "ids")]
    pub roles: Vec<String>,
}

impl Default for DiscordChannelConfig {
    fn default() -> Self {
        DiscordChannelConfig { enabled: true, require_mention: None, users: Vec::new(), roles: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramConfig {
    pub bot_token: String,
    #[serde(default = "TelegramConfig::default_root")]
    pub api_root: String,
    /// Who may talk to the bot in DMs (OpenClaw's names): `pairing` by default.
    #[serde(default)]
    pub dm_policy: DmPolicy,
    /// Sender ids or usernames allowed in DMs; `*` is everyone.
    #[serde(default, deserialize_with = "ids")]
    pub allow_from: Vec<String>,
    /// Which group chats are answered: `allowlist` (those in `groups`) by default.
    #[serde(default)]
    pub group_policy: GroupPolicy,
    /// Senders allowed in groups; empty: `allowFrom`.
    #[serde(default, deserialize_with = "ids")]
    pub group_allow_from: Vec<String>,
    /// Group chat id (or `*`) → its settings.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, ChatGroupConfig>,
    /// In groups, answer only when mentioned or replied to (default true).
    #[serde(default = "yes")]
    pub require_mention: bool,
    /// Webhook mode instead of `getUpdates`: the public HTTPS URL Telegram posts updates to. The
    /// gateway serves its path (or `webhookPath`) on the gateway port, behind your proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token`; required with `webhookUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// The path served on the gateway port; default: the path of `webhookUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
}

impl TelegramConfig {
    /// The path the gateway serves Telegram's webhook on, in webhook mode.
    pub fn webhook_route(&self) -> Option<String> {
        let url = self.webhook_url.as_deref()?;
        let path = match &self.webhook_path {
            Some(p) => p.clone(),
            None => {
                let rest = url.split_once("://").map_or(url, |(_, r)| r);
                rest.find('/').map_or("/telegram-webhook".to_string(), |i| {
                    rest[i..].split(['?', '#']).next().unwrap_or("/").to_string()
                })
            }
        };
        Some(if path.starts_with('/') { path } else { format!("/{path}") })
    }
}

fn yes() -> bool {
    true
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            bot_token: String::new(),
            api_root: TelegramConfig::default_root(),
            dm_policy: DmPolicy::default(),
            allow_from: Vec::new(),
            group_policy: GroupPolicy::default(),
            group_allow_from: Vec::new(),
            groups: Default::default(),
            require_mention: true,
            webhook_url: None,
            webhook_secret: None,
            webhook_path: None,
        }
    }
}

/// One entry of `groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ChatGroupConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_mention: Option<bool>,
    #[serde(deserialize_with = "ids")]
    pub allow_from: Vec<String>,
}

/// `dmPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    #[default]
    Pairing,
    Allowlist,
    Open,
    Disabled,
}

/// `groupPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    #[default]
    Allowlist,
    Open,
    Disabled,
}

/// A list of ids written as numbers or strings (Telegram ids are numbers), kept as strings.
fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        N(i64),
        S(String),
    }
    Ok(Vec::<Id>::deserialize(d)?
        .into_iter()
        .map(|id| match id {
            Id::N(n) => n.to_string(),
            Id::S(s) => s.trim().to_string(),
        })
        .collect())
}

/// `session`: how inbound chats map to agent sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SessionConfig {
    pub dm_scope: DmScope,
    pub maintenance: SessionMaintenance,
    pub agent_to_agent: AgentToAgent,
}

/// `session.agentToAgent`: the reply exchange after a `sessions_send` turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AgentToAgent {
    /// After the target session has answered a `sessions_send`, the requesting and the target
    /// session answer each other in turn (requester first) for at most this many turns, each
    /// ending it early by answering exactly `REPLY_SKIP`; then the target's announce step runs.
    /// 0..5, default 5; 0 turns the exchange off. (OpenClaw's key and range; OpenClaw 2026.9
    /// retired it for a built-in 5, and Pincer still reads it.)
    #[schemars(range(min = 0, max = 5))]
    pub max_ping_pong_turns: u32,
}

/// OpenClaw's bound on `session.agentToAgent.maxPingPongTurns`.
pub const MAX_PING_PONG_TURNS: u32 = 5;

impl Default for AgentToAgent {
    fn default() -> Self {
        AgentToAgent { max_ping_pong_turns: MAX_PING_PONG_TURNS }
    }
}

/// `session.maintenance`: what `sessions.cleanup` removes (OpenClaw's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SessionMaintenance {
    /// Sessions idle longer are archived (finished cron runs deleted); `false` keeps them.
    pub prune_after: Retention,
    /// At most this many unarchived sessions; the oldest beyond it go the same way.
    pub max_entries: u64,
    /// Transcripts a reset replaced are deleted after this; `false` keeps them. Pincer has no
    /// disk budget, so unlike OpenClaw this defaults to 30 days.
    pub reset_archive_retention: Retention,
}

impl Default for SessionMaintenance {
    fn default() -> Self {
        SessionMaintenance {
            prune_after: Retention::Duration("30d".into()),
            max_entries: 5000,
            reset_archive_retention: Retention::Duration("30d".into()),
        }
    }
}

impl Retention {
    /// The duration in milliseconds, `None` for `false`.
    pub fn ms(&self) -> Result<Option<i64>, String> {
        match self {
            Retention::Off(false) => Ok(None),
            Retention::Off(true) => Err("use a duration such as \"30d\", or false to keep everything".into()),
            Retention::Duration(d) => crate::duration::parse_duration_ms(d, None).map(|ms| Some(ms as i64)),
        }
    }
}

/// `session.dmScope`: every DM in the main session (OpenClaw's default), one session per sender,
/// or one per channel and sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DmScope {
    #[default]
    Main,
    PerPeer,
    PerChannelPeer,
}

impl TelegramConfig {
    fn default_root() -> String {
        "https://api.telegram.org".into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackConfig {
    pub bot_token: String,
    #[serde(default = "SlackConfig::default_base")]
    pub api_base_url: String,
    /// The app-level token (`xapp-…`, scope `connections:write`) for Socket Mode: with it, the
    /// gateway listens for DMs (`message.im`) and mentions (`app_mention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_token: Option<String>,
    /// Who may talk to the bot in DMs (OpenClaw's names): `pairing` by default.
    #[serde(default)]
    pub dm_policy: DmPolicy,
    /// Slack user ids (`U…`) allowed in DMs; `*` is everyone.
    #[serde(default, deserialize_with = "ids")]
    pub allow_from: Vec<String>,
    /// Which channels are answered when the bot is mentioned: `allowlist` (those in `channels`)
    /// by default.
    #[serde(default)]
    pub group_policy: GroupPolicy,
    /// Channel id (`C…`, or `*`) → its settings.
    #[serde(default)]
    pub channels: std::collections::BTreeMap<String, SlackChannelConfig>,
}

impl SlackConfig {
    fn default_base() -> String {
        "https://slack.com/api".into()
    }
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            bot_token: String::new(),
            api_base_url: SlackConfig::default_base(),
            app_token: None,
            dm_policy: DmPolicy::default(),
            allow_from: Vec::new(),
            group_policy: GroupPolicy::default(),
            channels: Default::default(),
        }
    }
}

/// One entry of `channels.slack.channels` (OpenClaw's keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SlackChannelConfig {
    /// `false` ignores the channel whatever the policy says.
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_mention: Option<bool>,
    /// Slack user ids allowed to talk to the bot here; empty: everyone in the channel.
    #[serde(deserialize_with = "ids")]
    pub users: Vec<String>,
}

impl Default for SlackChannelConfig {
    fn default() -> Self {
        SlackChannelConfig { enabled: true, require_mention: None, users: Vec::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct WebhookConfig {
    /// Allow webhook targets on loopback and private networks (off: refused, like OpenClaw's SSRF guard).
    pub allow_private_network: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CronConfig {
    pub enabled: bool,
    pub max_concurrent_runs: u32,
    /// How long finished isolated-run sessions are kept (`24h`); `false` keeps them forever.
    pub session_retention: Retention,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_token: Option<String>,
    pub skip_missed_jobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_alert: Option<Value>,
    pub run_retention: RunRetention,
}

impl Default for CronConfig {
    fn default() -> Self {
        CronConfig {
            enabled: true,
            max_concurrent_runs: 8,
            session_retention: Retention::Duration("24h".into()),
            webhook_token: None,
            skip_missed_jobs: false,
            failure_alert: None,
            run_retention: RunRetention::default(),
        }
    }
}

/// A duration string, or `false` for "keep forever".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Retention {
    Off(bool),
    Duration(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RunRetention {
    /// Runs older than this are pruned (`30d`).
    pub max_age: String,
    /// At most this many runs are kept per job.
    pub max_per_job: u32,
}

impl Default for RunRetention {
    fn default() -> Self {
        RunRetention { max_age: "30d".into(), max_per_job: 2000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DeliveryConfig {
    /// Attempts per outbox row before it goes dead.
    pub max_attempts: u32,
    /// Sends per second per channel (`0` = unlimited). Defaults stay under each platform's
    /// documented limits: discord 40, telegram 25, slack 10; webhook and inbox unlimited.
    pub rate_limits: BTreeMap<String, f64>,
    /// Time limit of one request to a channel's API (each channel's default).
    pub request_timeout_ms: u64,
    /// Conversations each channel sends to in parallel (each channel's default). Every channel has
    /// its own pool, so a hung channel delays only itself.
    pub max_parallel: u32,
    /// Most parts (platform messages) one delivery may take. A longer scheduled result is cut
    /// with a visible marker; a longer `send` is refused.
    pub max_parts_per_message: u32,
    /// Per-channel overrides of `maxParallel` and `requestTimeoutMs`.
    pub channels: DeliveryChannels,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 5,
            rate_limits: BTreeMap::new(),
            request_timeout_ms: 30_000,
            max_parallel: 16,
            max_parts_per_message: 20,
            channels: DeliveryChannels::default(),
        }
    }
}

/// `delivery.channels`: one optional entry per channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DeliveryChannels {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discord: Option<ChannelDelivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram: Option<ChannelDelivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<ChannelDelivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<ChannelDelivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<ChannelDelivery>,
}

/// How one channel sends; unset fields fall back to `delivery.maxParallel` / `requestTimeoutMs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ChannelDelivery {
    /// Conversations this channel sends to in parallel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Time limit of one request to this channel's API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
}

impl DeliveryChannels {
    /// The entry for `channel`, if configured.
    pub fn get(&self, channel: &str) -> Option<&ChannelDelivery> {
        match channel {
            "discord" => self.discord.as_ref(),
            "telegram" => self.telegram.as_ref(),
            "slack" => self.slack.as_ref(),
            "webhook" => self.webhook.as_ref(),
            "inbox" => self.inbox.as_ref(),
            _ => None,
        }
    }

    fn entries(&self) -> [(&'static str, Option<&ChannelDelivery>); 5] {
        [
            ("discord", self.discord.as_ref()),
            ("telegram", self.telegram.as_ref()),
            ("slack", self.slack.as_ref()),
            ("webhook", self.webhook.as_ref()),
            ("inbox", self.inbox.as_ref()),
        ]
    }
}

impl DeliveryConfig {
    /// The configured send rate of a channel (per second; 0 = unlimited), else `default` (the
    /// channel's own, which its adapter declares).
    pub fn rate_limit(&self, channel: &str, default: f64) -> f64 {
        self.rate_limits.get(channel).copied().unwrap_or(default)
    }

    /// How many conversations `channel` sends to at once.
    pub fn max_parallel(&self, channel: &str) -> u32 {
        self.channels.get(channel).and_then(|c| c.max_parallel).unwrap_or(self.max_parallel)
    }

    /// The time limit of one request to `channel`.
    pub fn request_timeout_ms(&self, channel: &str) -> u64 {
        self.channels.get(channel).and_then(|c| c.request_timeout_ms).unwrap_or(self.request_timeout_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LoggingConfig {
    /// A `tracing` filter such as `info` or `pincer_cron=debug,info`.
    pub level: String,
    /// The gateway's log file (OpenClaw's key): absent means `<state>/logs/pincer.log`; a relative
    /// path is taken from the state directory; `""` turns the file off.
    pub file: Option<String>,
    /// Size at which the file is rotated to `<name>.1<ext>` (OpenClaw's key; default 10 MiB).
    pub max_file_bytes: u64,
    /// Rotated files kept beside the active one (`.1` newest … `.N` oldest; OpenClaw keeps 5).
    pub max_files: u32,
    /// The file's lines: `json` (one object a line, what `openclaw logs` parses) or `text`.
    pub file_format: LogFileFormat,
}

/// How the log file's lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFileFormat {
    #[default]
    Json,
    Text,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            file: None,
            max_file_bytes: 10 * 1024 * 1024,
            max_files: 5,
            file_format: LogFileFormat::Json,
        }
    }
}

impl LoggingConfig {
    /// The log file's path, or `None` when `logging.file` is `""`.
    pub fn file_path(&self, paths: &StatePaths) -> Option<PathBuf> {
        match self.file.as_deref() {
            None => Some(paths.state_dir.join("logs").join("pincer.log")),
            Some("") => None,
            // `${HOME}/…` works as in every value; a relative path is the state directory's.
            Some(f) => Some(paths.state_dir.join(f)),
        }
    }
}

impl Config {
    /// Reads the config file, or the defaults when it does not exist, then applies `PINCER_*`
    /// overrides.
    pub fn load(path: &Path, env: Env) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Io { path: path.to_path_buf(), source }),
        };
        let mut config = match text {
            Some(text) => Config::parse(&text, env)
                .map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?,
            None => Config::default(),
        };
        config.apply_env(env).map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// The JSON5 text as a value, nothing expanded or checked (`config.get`'s `parsed`).
    pub fn read_value(text: &str) -> Result<Value, String> {
        check_nesting(text).map_err(|e| format!("not valid JSON5: {e}"))?;
        json5::from_str(text).map_err(|e| format!("not valid JSON5: {e}"))
    }

    /// [`Config::read_value`] with `${NAME}` expanded (`config.get`'s `resolved`).
    pub fn resolve_value(text: &str, env: Env) -> Result<Value, String> {
        let mut value = Config::read_value(text)?;
        expand_env(&mut value, &mut Vec::new(), env)?;
        Ok(value)
    }

    /// Parses JSON5 text, expands `${NAME}` in string values and checks the schema.
    pub fn parse(text: &str, env: Env) -> Result<Config, String> {
        let value = Config::resolve_value(text, env)?;
        let config: Config = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path == "." { inner } else { format!("{path}: {inner}") }
        })?;
        let typed = serde_json::to_value(&config).map_err(|e| e.to_string())?;
        if let Some(path) = pincer_protocol::shape::list_for_object(&value, &typed) {
            return Err(pincer_protocol::shape::list_for_object_error(&path));
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: Env) -> Result<(), String> {
        if let Some(port) = env("PINCER_GATEWAY_PORT") {
            self.gateway.port =
                port.parse().map_err(|_| format!("PINCER_GATEWAY_PORT: `{port}` is not a port number"))?;
        }
        if let Some(bind) = env("PINCER_GATEWAY_BIND") {
            self.gateway.bind = Bind::parse(&bind)
                .ok_or_else(|| format!("PINCER_GATEWAY_BIND: `{bind}` is not `loopback` or `lan`"))?;
        }
        if let Some(token) = env("PINCER_GATEWAY_TOKEN") {
            self.gateway.auth.token = Some(token);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        if self.logging.max_file_bytes < 1024 {
            return Err("logging.maxFileBytes: must be at least 1024 (bytes)".into());
        }
        if self.logging.max_files > 100 {
            return Err("logging.maxFiles: must be 0..100 (rotated files kept)".into());
        }
        if let Some(tg) = &self.channels.telegram
            && tg.webhook_url.is_some()
        {
            if tg.webhook_secret.as_deref().is_none_or(|s| s.trim().is_empty()) {
                return Err("channels.telegram.webhookSecret: required with webhookUrl (any random string; Telegram \
                            sends it back on every update)"
                    .into());
            }
            if tg.webhook_route().is_some_and(|p| ["/", "/healthz", "/readyz", "/metrics"].contains(&p.as_str())) {
                return Err("channels.telegram.webhookPath: choose a path the gateway does not serve \
                            (e.g. /telegram-webhook)"
                    .into());
            }
        }
        if let Some(discord) = &self.channels.discord
            && discord.dm.group_channels.iter().any(|c| c.trim().trim_start_matches('#').is_empty())
        {
            return Err("channels.discord.dm.groupChannels: an empty entry (use a group DM's channel id, its name, \
                        or \"*\")"
                .into());
        }
        if self.cron.max_concurrent_runs == 0 {
            return Err("cron.maxConcurrentRuns: must be at least 1".into());
        }
        let connections = &self.gateway.connections;
        if connections.max == Some(0) {
            return Err("gateway.connections.max: must be at least 1 (leave it out for the default)".into());
        }
        if connections.max_unauthenticated_per_address == 0 {
            return Err("gateway.connections.maxUnauthenticatedPerAddress: must be at least 1".into());
        }
        if !(100..=600_000).contains(&connections.header_timeout_ms) {
            return Err("gateway.connections.headerTimeoutMs: must be 100..600000 (milliseconds)".into());
        }
        for entry in &self.gateway.control_ui.allowed_origins {
            crate::origin::check_allowed_entry(entry).map_err(|e| format!("gateway.controlUi.allowedOrigins: {e}"))?;
        }
        if self.delivery.max_attempts == 0 {
            return Err("delivery.maxAttempts: must be at least 1".into());
        }
        if self.delivery.max_parallel == 0 {
            return Err("delivery.maxParallel: must be at least 1".into());
        }
        if self.delivery.request_timeout_ms == 0 {
            return Err("delivery.requestTimeoutMs: must be at least 1".into());
        }
        if self.delivery.max_parts_per_message == 0 {
            return Err("delivery.maxPartsPerMessage: must be at least 1".into());
        }
        for (name, entry) in self.delivery.channels.entries() {
            let Some(entry) = entry else { continue };
            if entry.max_parallel == Some(0) {
                return Err(format!("delivery.channels.{name}.maxParallel: must be at least 1"));
            }
            if entry.request_timeout_ms == Some(0) {
                return Err(format!("delivery.channels.{name}.requestTimeoutMs: must be at least 1"));
            }
        }
        for (channel, rate) in &self.delivery.rate_limits {
            if !rate.is_finite() || *rate < 0.0 {
                return Err(format!("delivery.rateLimits.{channel}: must be a number of sends per second, 0 or more"));
            }
        }
        if let Retention::Duration(d) = &self.cron.session_retention {
            crate::duration::parse_duration_ms(d, Some(3_600_000))
                .map_err(|e| format!("cron.sessionRetention: {e}"))?;
        }
        if let Retention::Off(true) = self.cron.session_retention {
            return Err("cron.sessionRetention: use a duration such as \"24h\", or false to keep sessions".into());
        }
        crate::duration::parse_duration_ms(&self.cron.run_retention.max_age, None)
            .map_err(|e| format!("cron.runRetention.maxAge: {e}"))?;
        let maintenance = &self.session.maintenance;
        maintenance.prune_after.ms().map_err(|e| format!("session.maintenance.pruneAfter: {e}"))?;
        maintenance
            .reset_archive_retention
            .ms()
            .map_err(|e| format!("session.maintenance.resetArchiveRetention: {e}"))?;
        if self.session.agent_to_agent.max_ping_pong_turns > MAX_PING_PONG_TURNS {
            return Err(format!(
                "session.agentToAgent.maxPingPongTurns: must be 0..{MAX_PING_PONG_TURNS} (0 turns the reply exchange off)"
            ));
        }
        crate::duration::parse_duration_ms(&self.agents.defaults.heartbeat.every, None)
            .map_err(|e| format!("agents.defaults.heartbeat.every: {e}"))?;
        if self.agents.defaults.max_tool_steps == 0 {
            return Err("agents.defaults.maxToolSteps: must be at least 1".into());
        }
        if self.agents.defaults.tool_timeout_seconds == 0 {
            return Err("agents.defaults.toolTimeoutSeconds: must be at least 1".into());
        }
        for (name, server) in &self.mcp.servers {
            server.validate(name)?;
        }
        for (name, provider) in &self.models.providers {
            if !(provider.base_url.starts_with("http://") || provider.base_url.starts_with("https://")) {
                return Err(format!("models.providers.{name}.baseUrl: must be an http(s) URL"));
            }
        }
        Ok(())
    }

    /// The gateway token, if one is configured (after `PINCER_GATEWAY_TOKEN`).
    pub fn token(&self) -> Option<&str> {
        self.gateway.auth.token.as_deref().filter(|t| !t.is_empty())
    }
}

/// Deepest nesting of arrays and objects a config may have; Pincer's own schema needs six levels.
const MAX_NESTING: usize = 128;

/// Refuses text nested deeper than [`MAX_NESTING`] before the JSON5 parser sees it: the parser
/// recurses once per level, so `[[[[…` a few thousand deep would overflow the stack and abort.
/// Brackets inside strings and comments do not count.
fn check_nesting(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let line = 1 + bytes[..i].iter().filter(|b| **b == b'\n').count();
                    return Err(format!("nested more than {MAX_NESTING} levels deep at line {line}"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Replaces `${NAME}` in every string with the variable's value; `$${` writes a literal `${`.
fn expand_env(value: &mut Value, path: &mut Vec<String>, env: Env) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains("${") => {
            *s = expand_str(s, env).map_err(|e| format!("{}: {e}", path.join(".")))?
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                expand_env(item, path, env)?;
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                path.push(key.clone());
                expand_env(item, path, env)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(s: &str, env: Env) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
        let name = &rest[at + 2..at + end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{name}}}` is not a valid environment variable reference"));
        }
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// On first start, writes a config with a random gateway token (file mode 0600, state dir 0700).
/// Returns true when it wrote one; an existing config is never touched.
pub fn ensure_config(paths: &StatePaths) -> Result<bool, ConfigError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    create_private_dir(&paths.state_dir).map_err(io(&paths.state_dir))?;
    if let Some(parent) = paths.config_path.parent() {
        create_private_dir(parent).map_err(io(parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(&paths.config_path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(source) => return Err(ConfigError::Io { path: paths.config_path.clone(), source }),
    };
    let text = format!(
        "// Pincer configuration (JSON5). Written on first start; see README.md for every key.\n{}\n",
        serde_json::to_string_pretty(&serde_json::json!({
            "gateway": { "port": 18789, "bind": "loopback", "auth": { "mode": "token", "token": crate::random_token() } }
        }))
        .expect("static JSON serialises")
    );
    file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(io(&paths.config_path))?;
    Ok(true)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn bind_and_auth_mode_are_spelled_as_serde_writes_them() {
        for bind in [Bind::Loopback, Bind::Lan] {
            assert_eq!(serde_json::to_value(bind).unwrap(), bind.as_str());
        }
        for mode in [AuthMode::Token, AuthMode::None] {
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str());
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_err(text: &str) -> String {
        Config::parse(text, &no_env).unwrap_err()
    }

    #[test]
    fn defaults_and_json5() {
        let config = Config::parse("{ // comment\n gateway: { port: 19000, }, }", &no_env).unwrap();
        assert_eq!(config.gateway.port, 19000);
        assert_eq!(config.gateway.bind, Bind::Loopback);
        assert_eq!(config.cron.max_concurrent_runs, 8);
        assert_eq!(config.delivery.max_attempts, 5);
    }

    #[test]
    fn unknown_keys_name_their_path() {
        expect![[r#"gateway.auth.tokn: unknown field `tokn`, expected one of `mode`, `token`, `rateLimit`"#]]
            .assert_eq(&parse_err(r#"{gateway:{auth:{tokn:"x"}}}"#));
        expect!["gatway: unknown field `gatway`, expected one of `gateway`, `models`, `agents`, `channels`, `cron`, `delivery`, `logging`, `session`, `tools`, `mcp`"]
            .assert_eq(&parse_err(r#"{gatway:{}}"#));
        expect!["channels.discord.apiBase: unknown field `apiBase`, expected one of `token`, `apiBaseUrl`, `gatewayUrl`, `dmPolicy`, `allowFrom`, `groupPolicy`, `guilds`, `dm`"]
            .assert_eq(&parse_err(r#"{channels:{discord:{token:"t", apiBase:"x"}}}"#));
        expect!["channels.discord.dm.groupEnable: unknown field `groupEnable`, expected one of `enabled`, `groupEnabled`, `groupChannels`"]
            .assert_eq(&parse_err(r#"{channels:{discord:{token:"t", dm:{groupEnable:true}}}}"#));
        expect![[
            r#"channels.discord.dm.groupChannels: an empty entry (use a group DM's channel id, its name, or "*")"#
        ]]
        .assert_eq(&parse_err(r#"{channels:{discord:{token:"t", dm:{groupEnabled:true, groupChannels:[" "]}}}}"#));
        let c = Config::parse(
            r#"{channels:{discord:{token:"t", dm:{groupEnabled:true, groupChannels:[900, "plans"]}}}}"#,
            &no_env,
        )
        .unwrap();
        let dm = &c.channels.discord.unwrap().dm;
        assert_eq!(
            (dm.enabled, dm.group_enabled, dm.group_channels.as_slice()),
            (true, true, &["900".to_string(), "plans".into()][..])
        );
        expect![[r#"gateway.port: invalid type: string "x", expected u16"#]]
            .assert_eq(&parse_err(r#"{gateway:{port:"x"}}"#));
        expect![[r#"gateway.bind: unknown variant `everywhere`, expected `loopback` or `lan`"#]]
            .assert_eq(&parse_err(r#"{gateway:{bind:"everywhere"}}"#));
        expect![[r#"cron.maxConcurrentRuns: must be at least 1"#]]
            .assert_eq(&parse_err(r#"{cron:{maxConcurrentRuns:0}}"#));
        assert!(parse_err("{nope").starts_with("not valid JSON5"));
        // Found by the bad-input suite: serde read a struct from a list of its fields.
        expect!["invalid type: sequence, expected an object"].assert_eq(&parse_err("[]"));
        expect!["gateway: invalid type: sequence, expected an object"]
            .assert_eq(&parse_err("{gateway: [1234, 'lan']}"));
        expect!["models.providers.a.models[0]: invalid type: sequence, expected an object"].assert_eq(&parse_err(
            "{models: {providers: {a: {api: 'openai-completions', baseUrl: 'http://x', models: [['m']]}}}}",
        ));
    }

    #[test]
    fn max_ping_pong_turns_is_0_to_5_default_5() {
        assert_eq!(Config::parse("{}", &no_env).unwrap().session.agent_to_agent.max_ping_pong_turns, 5);
        let off = Config::parse("{session: {agentToAgent: {maxPingPongTurns: 0}}}", &no_env).unwrap();
        assert_eq!(off.session.agent_to_agent.max_ping_pong_turns, 0);
        expect!["session.agentToAgent.maxPingPongTurns: must be 0..5 (0 turns the reply exchange off)"]
            .assert_eq(&parse_err("{session: {agentToAgent: {maxPingPongTurns: 6}}}"));
    }

    #[test]
    fn delivery_limits_are_per_channel_with_defaults() {
        let config = Config::parse(
            "{delivery: {maxParallel: 4, requestTimeoutMs: 5000, maxPartsPerMessage: 8,
              channels: {discord: {maxParallel: 1, requestTimeoutMs: 60000}, inbox: {maxParallel: 2}}}}",
            &no_env,
        )
        .unwrap();
        let d = &config.delivery;
        let got: Vec<(u32, u64)> =
            ["discord", "telegram", "inbox"].iter().map(|c| (d.max_parallel(c), d.request_timeout_ms(c))).collect();
        assert_eq!(got, [(1, 60_000), (4, 5_000), (2, 5_000)]);
        assert_eq!(d.max_parts_per_message, 8);
        let defaults = DeliveryConfig::default();
        assert_eq!((defaults.max_parallel("slack"), defaults.max_parts_per_message), (16, 20));
        expect!["delivery.channels.discrod: unknown field `discrod`, expected one of `discord`, `telegram`, `slack`, `webhook`, `inbox`"]
            .assert_eq(&parse_err("{delivery: {channels: {discrod: {maxParallel: 1}}}}"));
        expect!["delivery.channels.telegram.maxParallel: must be at least 1"]
            .assert_eq(&parse_err("{delivery: {channels: {telegram: {maxParallel: 0}}}}"));
        expect!["delivery.maxPartsPerMessage: must be at least 1"]
            .assert_eq(&parse_err("{delivery: {maxPartsPerMessage: 0}}"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Found by the `config` fuzz target: 50,000 `[` overflowed the JSON5 parser's stack.
        expect!["not valid JSON5: nested more than 128 levels deep at line 2"]
            .assert_eq(&parse_err(&format!("// x\n{}", "[".repeat(50_000))));
        let deep_but_fine = format!("{{logging: {{level: \"{}\"}}, /* {} */ }}", "[{".repeat(100), "{".repeat(200));
        assert_eq!(Config::parse(&deep_but_fine, &no_env).unwrap().logging.level, "[{".repeat(100));
        let nested = format!("{{cron: {{failureAlert: {}1{}}}}}", "[".repeat(120), "]".repeat(120));
        assert!(Config::parse(&nested, &no_env).is_ok(), "120 levels are fine");
    }

    #[test]
    fn env_expansion() {
        let env = |name: &str| (name == "TG").then(|| "secret-123".to_string());
        let config =
            Config::parse(r#"{channels:{telegram:{botToken:"${TG}"}}, gateway:{auth:{token:"a$${TG}b"}}}"#, &env)
                .unwrap();
        assert_eq!(config.channels.telegram.unwrap().bot_token, "secret-123");
        assert_eq!(config.gateway.auth.token.as_deref(), Some("a${TG}b"));
        expect![[r#"channels.slack.botToken: environment variable SLACK_TOKEN is not set"#]]
            .assert_eq(&Config::parse(r#"{channels:{slack:{botToken:"${SLACK_TOKEN}"}}}"#, &env).unwrap_err());
    }

    #[test]
    fn env_overrides_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let env = |name: &str| match name {
            "PINCER_STATE_DIR" => Some(state.to_string_lossy().into_owned()),
            "PINCER_GATEWAY_PORT" => Some("23456".into()),
            "PINCER_GATEWAY_TOKEN" => Some("from-env".into()),
            _ => None,
        };
        let paths = StatePaths::resolve(None, &env);
        assert_eq!(paths.config_path, state.join("pincer.json"));
        assert_eq!(paths.db_path, state.join("pincer.db"));
        let config = Config::load(&paths.config_path, &env).unwrap();
        assert_eq!((config.gateway.port, config.token()), (23456, Some("from-env")));
        let bad = |name: &str| (name == "PINCER_GATEWAY_PORT").then(|| "high".to_string());
        assert!(Config::load(&paths.config_path, &bad).unwrap_err().to_string().contains("PINCER_GATEWAY_PORT"));
    }

    #[test]
    fn first_start_writes_private_config_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::resolve(Some(&dir.path().join("s")), &no_env);
        assert!(ensure_config(&paths).unwrap());
        let config = Config::load(&paths.config_path, &no_env).unwrap();
        let token = config.token().unwrap().to_string();
        assert_eq!(token.len(), 43);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&paths.config_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = std::fs::metadata(&paths.state_dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        assert!(!ensure_config(&paths).unwrap());
        assert_eq!(Config::load(&paths.config_path, &no_env).unwrap().token(), Some(token.as_str()));
    }
}
