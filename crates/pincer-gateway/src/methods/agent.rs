//! `agent`, `agents.list`, `sessions.list`, `chat.history` and `wake`: thin adapters over `pincer_agent::api`.

use pincer_agent::api::{self, ApiError};
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::{agent as wire, sessions};
use serde_json::json;

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
    methods.add::<wire::Agent, _, _>(|c: Ctx, p| async move { api::agent(&c.state.agents, p).await.map_err(error) });
    methods
        .add::<wire::AgentsList, _, _>(|c: Ctx, p| async move { api::agents_list(&c.state.agents, p).map_err(error) });
    methods.add::<sessions::SessionsList, _, _>(|c: Ctx, p| async move {
        api::sessions_list(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<sessions::ChatHistory, _, _>(|c: Ctx, p| async move {
        api::chat_history(&c.state.agents, p).await.map_err(error)
    });
    methods.add::<wire::Wake, _, _>(|c: Ctx, p| async move { api::wake(&c.state.agents, p).await.map_err(error) });
}
