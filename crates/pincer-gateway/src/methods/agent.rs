//! `agent`, `agents.list`, `agent.identity.get`, `sessions.list`, `sessions.delete`, `chat.*`,
//! `sessions.messages.subscribe|unsubscribe`, `sessions.reset|describe|resolve|compact|subscribe|patch|cleanup`,
//! `agent.wait` and `wake`: thin adapters over `pincer_agent::{api, chat, manage}`.

use pincer_agent::api::{self, ApiError};
use pincer_agent::{chat, manage};
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::chat::{self as chat_wire, SessionsMessagesSubscribeResult};
use pincer_protocol::schema::{agent as wire, sessions};
use serde_json::{Map, json};

use crate::router::{Ctx, Methods};

fn error(e: ApiError) -> ErrorShape {
    match e {
        ApiError::Invalid(m) => ErrorShape::invalid_request(m),
        ApiError::NotFound(m) => ErrorShape::invalid_request(m).with_details(json!({ "code": "SESSION_NOT_FOUND" })),
        ApiError::Failed { message, reason, run_id } => ErrorShape::unavailable(message)
            .with_details(json!({ "code": "AGENT_RUN_FAILED", "errorReason": reason, "runId": run_id })),
        e @ ApiError::Store(_) => ErrorShape::unavailable(e.to_string()),
    }
}

pub fn register(methods: &mut Methods) {
    methods.add::<wire::Agent, _, _>(|c: Ctx, p| async move {
        let accepted = |a: wire::AgentAccepted| c.reply.interim(serde_json::to_value(a).expect("accepted serialises"));
        api::agent(&c.state.agents, p, accepted).await.map_err(error)
    });
    methods
        .add::<wire::AgentsList, _, _>(|c: Ctx, p| async move { api::agents_list(&c.state.agents, p).map_err(error) });
    methods.add::<sessions::SessionsList, _, _>(|c: Ctx, p| async move {
        api::sessions_list(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::ChatHistory, _, _>(|c: Ctx, p| async move {
        api::chat_history(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<chat_wire::ChatStartup, _, _>(|c: Ctx, p| async move {
        api::chat_startup(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<chat_wire::ChatSend, _, _>(|c: Ctx, p| async move {
        chat::chat_send(&c.state.agents, p, c.reply.answered()).await.map_err(error)
    });
    methods.add::<chat_wire::ChatAbort, _, _>(|c: Ctx, p| async move {
        chat::chat_abort(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<chat_wire::ChatMetadata, _, _>(|c: Ctx, p| async move {
        chat::chat_metadata(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<chat_wire::SessionsMessagesSubscribe, _, _>(|c: Ctx, p| async move {
        let key = api::subscription_key(&p).map_err(error)?;
        let mut subs = c.state.session_subscriptions.lock().expect("subscriptions lock");
        subs.entry(c.caller.conn_id.clone()).or_default().insert(key.clone());
        Ok(SessionsMessagesSubscribeResult { subscribed: true, key, extra: Map::new() })
    });
    methods.add::<wire::Wake, _, _>(|c: Ctx, p| async move { api::wake(&c.state.agents, p).await.map_err(error) });
    methods.add::<wire::AgentIdentityGet, _, _>(|_: Ctx, p| async move { api::agent_identity(p).map_err(error) });
    methods.add::<sessions::SessionsDelete, _, _>(|c: Ctx, p| async move {
        api::sessions_delete(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::SessionsReset, _, _>(|c: Ctx, p| async move {
        manage::sessions_reset(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::SessionsDescribe, _, _>(|c: Ctx, p| async move {
        manage::sessions_describe(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::SessionsResolve, _, _>(|c: Ctx, p| async move {
        manage::sessions_resolve(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::SessionsCompact, _, _>(|c: Ctx, p| async move {
        manage::sessions_compact(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::SessionsPatch, _, _>(|c: Ctx, p| async move {
        manage::sessions_patch(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::SessionsCleanup, _, _>(|c: Ctx, p| async move {
        manage::sessions_cleanup(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<wire::AgentWait, _, _>(|c: Ctx, p| async move {
        manage::agent_wait(&c.state.agents, p).await.map_err(error)
    });
    // `sessions.changed` goes to every `operator.read` connection, subscribed or not.
    methods.add::<sessions::SessionsSubscribe, _, _>(|_: Ctx, _| async move {
        Ok(sessions::SessionsSubscribeResult { subscribed: true, extra: Map::new() })
    });
    methods.add::<chat_wire::SessionsMessagesUnsubscribe, _, _>(|c: Ctx, p| async move {
        let key = api::subscription_key(&chat_wire::SessionsMessagesSubscribeParams {
            key: p.key,
            agent_id: p.agent_id,
            include_approvals: None,
        })
        .map_err(error)?;
        let mut subs = c.state.session_subscriptions.lock().expect("subscriptions lock");
        if let Some(keys) = subs.get_mut(&c.caller.conn_id) {
            keys.remove(&key);
        }
        Ok(SessionsMessagesSubscribeResult { subscribed: false, key, extra: Map::new() })
    });
}
