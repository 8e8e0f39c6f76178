//! OpenClaw's gateway-level methods beyond `health`/`status`: the heartbeat switch and its last
//! event, presence (and the `presence` event), `models.list`, `channels.status`, `node.list`, and
//! the honest empties (see `crate::compat::HONEST_EMPTY`).

use std::sync::Arc;

use indexmap::IndexMap;
use pincer_core::config::ProviderConfig;
use pincer_delivery::channel::registry;
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::gateway::{
    self as wire, ChannelAccount, ChannelsStatusResult, CommandEntry, CommandsListParams, CommandsListResult,
    ModelChoice, ModelsListResult, NodeListResult, PluginsListResult, PresenceEntry, ProjectsListResult,
    QuestionListResult, SetHeartbeatsResult, TasksListResult, UpdateStatusResult, WorktreesListResult,
};
use serde_json::{Value, json};

use crate::router::{Ctx, Methods};
use crate::state::AppState;

/// The `hello-ok` capability `openclaw models list` requires before it calls `models.list`.
pub const PUBLISHED_MODEL_CATALOG: &str = "published-model-catalog";

pub fn register(methods: &mut Methods) {
    methods.add::<wire::LastHeartbeat, _, _>(|c: Ctx, _| async move { Ok(c.state.agents.last_heartbeat()) });
    methods.add::<wire::SetHeartbeats, _, _>(|c: Ctx, p| async move {
        c.state.agents.set_heartbeats(p.enabled);
        tracing::info!(enabled = p.enabled, conn = %c.caller.conn_id, "heartbeats switched by set-heartbeats");
        Ok(SetHeartbeatsResult { ok: true, enabled: p.enabled, extra: Default::default() })
    });
    methods.add::<wire::SystemPresence, _, _>(|c: Ctx, _| async move { Ok(presence(&c.state)) });
    methods.add::<wire::NodeList, _, _>(|c: Ctx, _| async move {
        Ok(NodeListResult { ts: c.state.clock.now_ms(), nodes: vec![], extra: Default::default() })
    });
    methods.add::<wire::ModelsList, _, _>(|c: Ctx, p| async move { models_list(&c.state, p) });
    methods.add::<wire::ChannelsStatus, _, _>(|c: Ctx, p| async move { channels_status(&c.state, p).await });
    methods.add::<wire::UsageStatus, _, _>(|c: Ctx, _| async move {
        pincer_agent::manage::usage_status(&c.state.agents).await.map_err(|e| ErrorShape::unavailable(e.to_string()))
    });
    methods.add::<wire::UsageCost, _, _>(|c: Ctx, p| async move {
        pincer_agent::manage::usage_cost(&c.state.agents, p).await.map_err(|e| match e {
            pincer_agent::api::ApiError::Invalid(m) => ErrorShape::invalid_request(m),
            e => ErrorShape::unavailable(e.to_string()),
        })
    });
    methods.add::<wire::CommandsList, _, _>(|_: Ctx, p| async move { commands_list(p) });
    methods.add::<wire::QuestionList, _, _>(|_: Ctx, _| async move {
        Ok(QuestionListResult { questions: vec![], extra: Default::default() })
    });
    methods.add::<wire::PluginApprovalList, _, _>(|_: Ctx, _| async move { Ok(Vec::<Value>::new()) });
    methods.add::<wire::TasksList, _, _>(|_: Ctx, _| async move {
        Ok(TasksListResult { tasks: vec![], extra: Default::default() })
    });
    methods.add::<wire::PluginsList, _, _>(|_: Ctx, _| async move {
        Ok(PluginsListResult {
            plugins: vec![],
            diagnostics: vec![],
            mutation_allowed: false,
            extra: Default::default(),
        })
    });
    methods.add::<wire::UpdateStatus, _, _>(|_: Ctx, _| async move {
        Ok(UpdateStatusResult { sentinel: Value::Null, update_available: None, extra: Default::default() })
    });
    methods.add::<wire::WorktreesList, _, _>(|_: Ctx, _| async move {
        Ok(WorktreesListResult { worktrees: vec![], extra: Default::default() })
    });
    methods.add::<wire::ProjectsList, _, _>(|_: Ctx, _| async move {
        Ok(ProjectsListResult { projects: vec![], extra: Default::default() })
    });
}

/// The gateway (`reason: "self"`) and every authenticated connection (`reason: "connect"`),
/// newest first, as OpenClaw's `system-presence` lists them.
pub fn presence(state: &AppState) -> Vec<PresenceEntry> {
    let host = hostname();
    let version = crate::VERSION.to_string();
    let platform = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    let mut entries = vec![PresenceEntry {
        text: format!("Gateway: {host} · app {version} · mode gateway · reason self"),
        host: host.clone(),
        ip: None,
        version: version.clone(),
        platform: Some(platform),
        device_family: None,
        mode: "gateway".into(),
        reason: "self".into(),
        client_id: None,
        device_id: None,
        instance_id: Some(state.boot_id.clone()),
        roles: vec![],
        scopes: vec![],
        ts: state.clock.now_ms(),
        extra: Default::default(),
    }];
    let mut clients: Vec<PresenceEntry> = state
        .connections
        .lock()
        .expect("connections lock")
        .values()
        .map(|live| {
            let c = &live.caller;
            let p = &c.presence;
            let host = p.display_name.clone().unwrap_or_else(|| c.client_id.as_str().to_string());
            PresenceEntry {
                text: format!("Node: {host} · mode {} · reason connect", p.mode),
                host,
                // OpenClaw leaves a local client's address out.
                ip: (!c.direct_local).then(|| c.remote.ip().to_string()),
                version: c.client_version.clone(),
                platform: Some(p.platform.clone()),
                device_family: p.device_family.clone(),
                mode: p.mode.clone(),
                reason: "connect".into(),
                client_id: Some(c.client_id.as_str().to_string()),
                device_id: c.device_id.clone(),
                instance_id: p.instance_id.clone(),
                roles: vec![c.role.as_str().to_string()],
                scopes: c.scopes.names().into_iter().map(|s| s.to_string()).collect(),
                ts: p.connected_at_ms,
                extra: Default::default(),
            }
        })
        .collect();
    clients.sort_by(|a, b| b.ts.cmp(&a.ts).then_with(|| a.host.cmp(&b.host)));
    entries.extend(clients);
    entries
}

/// Sends the `presence` event (`{presence: [...]}`) to every `operator.read` connection.
pub fn broadcast_presence(state: &AppState) {
    let list = serde_json::to_value(presence(state)).expect("presence serialises");
    state.events.emit("presence", json!({ "presence": list }), Some("operator.read"));
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a provider can be called: an API key, or a server on this machine that needs none.
fn provider_ready(p: &ProviderConfig) -> bool {
    p.api_key.as_deref().is_some_and(|k| !k.trim().is_empty()) || is_local(&p.base_url)
}

pub(crate) fn is_local(base_url: &str) -> bool {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `models.list`: every model of `models.providers` (the default and fallbacks must be among
/// them), tagged `default`/`fallback`.
fn models_list(state: &AppState, p: wire::ModelsListParams) -> Result<ModelsListResult, ErrorShape> {
    if let Some(agent) = p.agent_id.as_deref()
        && agent != "main"
    {
        return Err(ErrorShape::invalid_request(format!(
            "invalid models.list params: unknown agent id \"{agent}\": Pincer's agent is \"main\""
        )));
    }
    let config = state.config();
    let selection = &config.agents.defaults.model;
    let primary = selection.primary.as_deref();
    let tags_of = |key: &str| {
        let mut tags = vec!["configured".to_string()];
        if primary == Some(key) {
            tags.insert(0, "default".into());
        } else if selection.fallbacks.iter().any(|f| f == key) {
            tags.insert(0, "fallback".into());
        }
        tags
    };
    let mut models: Vec<ModelChoice> = Vec::new();
    let mut push = |provider: &str, id: &str, name: Option<&str>, context_window: Option<u64>| {
        let key = format!("{provider}/{id}");
        let config = config.models.providers.get(provider);
        let mut extra = serde_json::Map::new();
        if let Some(window) = context_window {
            extra.insert("contextWindow".into(), json!(window));
        }
        models.push(ModelChoice {
            id: id.to_string(),
            name: name.unwrap_or(id).to_string(),
            provider: provider.to_string(),
            tags: tags_of(&key),
            available: config.is_some_and(provider_ready),
            local: config.is_some_and(|c| is_local(&c.base_url)),
            input: vec!["text".into()],
            extra,
        });
    };
    for (provider, config) in &config.models.providers {
        for m in &config.models {
            push(provider, &m.id, m.name.as_deref(), m.context_window);
        }
    }
    if let Some(only) = p.provider.as_deref() {
        models.retain(|m| m.provider == only);
    }
    Ok(ModelsListResult { models, extra: Default::default() })
}

/// `channels.status`: every registered channel with its outbox's health; one `default` account
/// per configured channel. Credentials are reported by source only, never by value.
async fn channels_status(
    state: &Arc<AppState>,
    p: wire::ChannelsStatusParams,
) -> Result<ChannelsStatusResult, ErrorShape> {
    if let Some(channel) = p.channel.as_deref()
        && registry::find(channel).is_none()
    {
        return Err(ErrorShape::invalid_request(format!(
            "invalid channels.status params: channel: unknown channel \"{channel}\"; Pincer's channels are {}",
            registry::names()
        )));
    }
    let outbox = state.outbox.health().await;
    let inbound = state.chat.status();
    let mut result = ChannelsStatusResult {
        ts: state.clock.now_ms(),
        channel_order: vec![],
        channel_labels: IndexMap::new(),
        channels: IndexMap::new(),
        channel_accounts: IndexMap::new(),
        channel_default_account_id: IndexMap::new(),
        extra: Default::default(),
    };
    for (name, health) in outbox.channels {
        if p.channel.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        result.channel_labels.insert(name.clone(), registry::label(&name).to_string());
        result.channel_default_account_id.insert(name.clone(), "default".into());
        let listening = inbound.iter().find(|i| i.channel == name);
        let mut account = ChannelAccount {
            account_id: "default".into(),
            enabled: health.configured,
            configured: health.configured,
            running: health.configured,
            health_state: health.health_state.clone(),
            last_error: health.last_error.clone(),
            // Only chat platforms hold a credential; the inbox and webhooks have none of their own.
            token_source: if health.configured && registry::find(&name).is_some_and(|s| s.chat) {
                "config"
            } else {
                "none"
            }
            .into(),
            extra: Default::default(),
        };
        // A chat channel that listens: its connection, in OpenClaw's account fields.
        if let Some(i) = listening {
            use pincer_protocol::state::ConnectionState as C;
            account.running = !matches!(i.state, C::CredentialsRejected | C::Stopped);
            account.last_error = i.last_error.clone().or(account.last_error);
            let extra = &mut account.extra;
            extra.insert("connected".into(), json!(matches!(i.state, C::Connected | C::Polling)));
            extra.insert("state".into(), json!(i.state.as_str()));
            extra.insert("reconnectAttempts".into(), json!(i.failures));
            if let Some(mode) = &i.mode {
                extra.insert("mode".into(), json!(mode));
            }
            if let Some(at) = i.last_poll_at_ms {
                extra.insert("lastTransportActivityAt".into(), json!(at));
            }
            if let Some(at) = i.next_attempt_at_ms {
                extra.insert("nextAttemptAtMs".into(), json!(at));
            }
        }
        result.channel_accounts.insert(name.clone(), if health.configured { vec![account] } else { vec![] });
        result
            .channels
            .insert(name.clone(), serde_json::to_value(&health).map_err(|e| ErrorShape::unavailable(e.to_string()))?);
        result.channel_order.push(name);
    }
    Ok(result)
}

/// `commands.list`: the chat commands Pincer's chat channels understand (typed as text; Pincer
/// registers no native command menus, so `scope: "native"` lists none).
fn commands_list(p: CommandsListParams) -> Result<CommandsListResult, ErrorShape> {
    let commands = match p.scope.as_deref() {
        None | Some("text") | Some("both") => pincer_chat::COMMANDS
            .iter()
            .map(|c| CommandEntry {
                name: c.name.to_string(),
                text_aliases: c.words.iter().map(|w| format!("/{w}")).collect(),
                description: c.description.to_string(),
                category: c.category.to_string(),
                source: "native".into(),
                scope: "text".into(),
                accepts_args: false,
                extra: Default::default(),
            })
            .collect(),
        Some("native") => vec![],
        Some(other) => {
            return Err(ErrorShape::invalid_request(format!(
                "invalid commands.list params: scope: \"{other}\" is not text, native or both"
            )));
        }
    };
    Ok(CommandsListResult { commands, extra: Default::default() })
}

#[cfg(test)]
mod tests {
    use super::is_local;

    #[test]
    fn local_base_urls_are_loopback_hosts() {
        for url in ["http://127.0.0.1:11434/v1", "http://localhost/v1", "http://[::1]:8080", "http://u:p@127.0.0.2/x"] {
            assert!(is_local(url), "{url}");
        }
        for url in ["https://api.openai.com/v1", "http://10.0.0.1/v1", "http://localhost.evil.com/v1"] {
            assert!(!is_local(url), "{url}");
        }
    }
}
