//! `agent`, `agents.list`, `sessions.list`, `chat.history` and `wake`: thin adapters over `pincer_agent::api`.

use pincer_agent::api::{self, ApiError};
use pincer_protocol::ErrorShape;
use serde_json::{Value, json};

use crate::router::{Call, Methods};

fn error(e: ApiError) -> ErrorShape {
    match e {
        ApiError::Invalid(m) => ErrorShape::invalid_request(m),
        ApiError::NotFound(m) => ErrorShape::invalid_request(m).with_details(json!({ "code": "SESSION_NOT_FOUND" })),
        ApiError::Failed { message, reason, run_id } => ErrorShape::unavailable(message)
            .with_details(json!({ "code": "AGENT_RUN_FAILED", "errorReason": reason, "runId": run_id })),
        e @ ApiError::Store(_) => ErrorShape::unavailable(e.to_string()),
    }
}

fn params(call: &Call) -> Value {
    call.params.clone().unwrap_or(Value::Null)
}

pub fn register(methods: &mut Methods) {
    methods.add("agent", |c: Call| async move { api::agent(&c.state.agents, &params(&c)).await.map_err(error) });
    methods.add("agents.list", |c: Call| async move { api::agents_list(&c.state.agents, &params(&c)).map_err(error) });
    methods.add("sessions.list", |c: Call| async move {
        api::sessions_list(&c.state.agents, &params(&c)).await.map_err(error)
    });
    methods.add("chat.history", |c: Call| async move {
        api::chat_history(&c.state.agents, &params(&c)).await.map_err(error)
    });
    methods.add("wake", |c: Call| async move { api::wake(&c.state.agents, &params(&c)).await.map_err(error) });
}
