//! The reads OpenClaw's Control UI makes on its pages beyond sessions, chat and cron:
//! `models.authStatus` over the configured providers (whether each holds a key, never the key),
//! and the honest empties and defaults for what Pincer does not have (see
//! `pincer_protocol::schema::control_ui` and `crate::compat::HONEST_EMPTY`).

use pincer_agent::SessionRef;
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::Method;
use pincer_protocol::schema::control_ui::{
    self as wire, ApiKeySource, ModelsAuthStatusResult, OkResult, ProgressCardGetResult, ProviderAuth, SessionTarget,
    SessionsBranchesListResult, SessionsCompanionStateResult, TalkCatalogResult,
};
use serde_json::Value;

use crate::router::{Ctx, Methods};
use crate::state::AppState;

pub fn register(methods: &mut Methods) {
    methods.add::<wire::ModelsAuthStatus, _, _>(|c: Ctx, p| async move { models_auth_status(&c.state, p) });
    methods.add::<wire::TalkCatalog, _, _>(|_: Ctx, _| async move { Ok(TalkCatalogResult::default()) });
    methods.add::<wire::SessionsCompanionState, _, _>(|_: Ctx, p| async move {
        session_of::<wire::SessionsCompanionState>(&p)?;
        Ok(SessionsCompanionStateResult::default())
    });
    methods.add::<wire::SessionsBranchesList, _, _>(|_: Ctx, p| async move {
        session_of::<wire::SessionsBranchesList>(&p)?;
        Ok(SessionsBranchesListResult::default())
    });
    methods.add::<wire::ProgressCardGet, _, _>(|_: Ctx, p| async move {
        session_of::<wire::ProgressCardGet>(&p)?;
        Ok(ProgressCardGetResult::default())
    });
    methods.add::<wire::SessionsObserverVisibility, _, _>(|_: Ctx, _| async move {
        Ok(OkResult { ok: true, extra: Default::default() })
    });
    methods.add::<wire::OpenclawApprovalList, _, _>(|_: Ctx, _| async move { Ok(Vec::<Value>::new()) });
    methods.add::<wire::ArtifactsList, _, _>(|_: Ctx, p| async move {
        let bad = |m: &str| ErrorShape::invalid_request(format!("invalid {} params: {m}", wire::ArtifactsList::NAME));
        if p.limit.is_some_and(|l| !(1..=4).contains(&l)) {
            return Err(bad("limit: must be between 1 and 4"));
        }
        if p.kind.as_deref().is_some_and(|k| k != "image") {
            return Err(bad("type: only \"image\" is listed"));
        }
        if p.message_role.as_deref().is_some_and(|r| r != "assistant") {
            return Err(bad("messageRole: only \"assistant\" is accepted"));
        }
        Ok(wire::ArtifactsListResult::default())
    });
}

/// The session a per-session read names, checked as every session method checks it.
fn session_of<M: Method<Params = SessionTarget>>(p: &SessionTarget) -> Result<SessionRef, ErrorShape> {
    let bad = |m: String| ErrorShape::invalid_request(format!("invalid {} params: {m}", M::NAME));
    let key = p.session_key.trim();
    if key.is_empty() || key == "isolated" {
        return Err(bad("sessionKey: must name a session (a key from sessions.list, main or session:<id>)".into()));
    }
    let session = SessionRef::from_request(Some(key), p.agent_id.as_deref(), "").map_err(bad)?;
    if session.agent_id != "main" {
        return Err(bad(format!("agentId: unknown agent id \"{}\": Pincer's agent is \"main\"", session.agent_id)));
    }
    Ok(session)
}

/// `models.authStatus`: each configured provider, `static` when it holds an API key and
/// `missing` when it needs one and has none. A server on this machine that was given no key
/// needs none and is left out, as OpenClaw leaves out providers without credentials. The key's
/// source is told (`${VAR}` in the configuration file is `env`), its value never.
fn models_auth_status(state: &AppState, p: wire::ModelsAuthStatusParams) -> Result<ModelsAuthStatusResult, ErrorShape> {
    if let Some(agent) = p.agent_id.as_deref().filter(|a| !a.is_empty())
        && agent != "main"
    {
        return Err(ErrorShape::invalid_request(format!(
            "invalid {} params: agentId: unknown agent id \"{agent}\": Pincer's agent is \"main\"",
            wire::ModelsAuthStatus::NAME
        )));
    }
    let config = state.config();
    // The file as written, for where each key comes from (the running configuration has
    // `${VAR}` already expanded).
    let written = std::fs::read_to_string(&state.paths.config_path)
        .ok()
        .and_then(|text| pincer_core::config::Config::read_value(&text).ok());
    let mut providers = Vec::new();
    for (id, provider) in &config.models.providers {
        let has_key = provider.api_key.as_deref().is_some_and(|k| !k.trim().is_empty());
        if !has_key && super::gateway::is_local(&provider.base_url) {
            continue;
        }
        let api_key = has_key.then(|| {
            let written = written.as_ref().and_then(|w| w["models"]["providers"][id]["apiKey"].as_str());
            match written.and_then(env_reference) {
                Some(var) => ApiKeySource { source: "env".into(), env_var: Some(var.to_string()) },
                None => ApiKeySource { source: "config".into(), env_var: None },
            }
        });
        providers.push(ProviderAuth {
            provider: id.clone(),
            display_name: id.clone(),
            status: if has_key { "static" } else { "missing" }.into(),
            profiles: vec![],
            api_key,
            extra: Default::default(),
        });
    }
    Ok(ModelsAuthStatusResult { ts: state.clock.now_ms(), providers, extra: Default::default() })
}

/// `VAR` when `value` is exactly one `${VAR}` reference.
fn env_reference(value: &str) -> Option<&str> {
    let name = value.trim().strip_prefix("${")?.strip_suffix('}')?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::env_reference;

    #[test]
    fn only_a_whole_env_reference_names_a_variable() {
        assert_eq!(env_reference("${OPENAI_API_KEY}"), Some("OPENAI_API_KEY"));
        assert_eq!(env_reference(" ${_K1} "), Some("_K1"));
        for v in ["sk-live", "${}", "${1X}", "pre${K}", "${K}post", "${A-B}"] {
            assert_eq!(env_reference(v), None, "{v}");
        }
    }
}
