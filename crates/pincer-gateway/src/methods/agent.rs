//! `agent`, `agents.list`, `agent.identity.get`, `sessions.list`, `sessions.delete`, `chat.*`,
//! `sessions.messages.subscribe|unsubscribe`, `sessions.reset|describe|resolve|compact|subscribe|patch|cleanup`,
//! `agent.wait` and `wake`: thin adapters over `pincer_agent::{api, chat, manage}`.

use pincer_agent::api::{self, ApiError};
use pincer_agent::session::SessionRef;
use pincer_agent::{chat, manage};
use pincer_cron::Origin;
use pincer_cron::runner::Route;
use pincer_delivery::TooLong;
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::chat::{self as chat_wire, SessionsMessagesSubscribeResult};
use pincer_protocol::schema::{agent as wire, sessions};
use pincer_protocol::state::OriginKind;
use pincer_store::{Enqueued, NewDelivery};
use serde_json::{Map, json};

use crate::router::{Ctx, Methods};

/// `agent` with `deliver`: the route of the reply, as OpenClaw picks it — `replyChannel` and
/// `replyTo`, else `channel` and a recipient `to`, else where the session last talked.
fn reply_route(c: &Ctx, p: &wire::AgentParams) -> Result<Option<Route>, ErrorShape> {
    if p.deliver != Some(true) {
        return Ok(None);
    }
    let nonblank = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let recipient = nonblank(&p.to).filter(|t| !t.starts_with("agent:"));
    let channel = nonblank(&p.reply_channel).or(nonblank(&p.channel));
    let to = nonblank(&p.reply_to).or(recipient);
    let account = nonblank(&p.reply_account_id).or(nonblank(&p.account_id));
    let key = match nonblank(&p.session_key) {
        Some(key) if key.starts_with("agent:") => Some(key),
        key => SessionRef::from_request(key.as_deref(), p.agent_id.as_deref(), "deliver").ok().map(|s| s.key),
    };
    let invalid =
        |e: &dyn std::fmt::Display| ErrorShape::invalid_request(format!("invalid agent params: deliver: {e}"));
    let route = c
        .state
        .announce
        .route(channel.as_deref(), to.as_deref(), nonblank(&p.thread_id).as_deref(), account.as_deref(), key.as_deref())
        .map_err(|e| invalid(&e))?;
    // With nothing named and no conversation to go back to, the announce default (the local
    // inbox) is not what a user asking for delivery meant.
    if channel.is_none() && to.is_none() && route.source != "last" {
        return Err(invalid(
            &"delivery channel is required: pass --channel/--reply-channel and --to/--reply-to, or use a session that talked on a channel before",
        ));
    }
    Ok(Some(route))
}

/// The outbox an `agent` reply with `deliver` goes to: its row is rendered from the final reply
/// and committed in the same transaction as the reply (`pincer_agent::api::agent_delivering`),
/// keyed by the run id, so a crash leaves either neither or both and it is sent once.
struct ReplyTo {
    outbox: pincer_delivery::Outbox,
    route: Route,
    best_effort: bool,
}

/// The outbox key of run `run_id`'s reply.
fn reply_key(run_id: &str) -> String {
    format!("agent:{run_id}")
}

impl api::ReplyOutbox for ReplyTo {
    fn prepare(&self, run_id: &str, text: &str) -> Result<NewDelivery, String> {
        let origin =
            Origin { kind: OriginKind::AgentReply, id: Some(run_id.to_string()), best_effort: self.best_effort };
        self.outbox
            .prepare(&self.route, text, &reply_key(run_id), &origin, None, TooLong::Truncate)
            .map_err(|e| e.to_string())
    }

    fn committed(&self, enqueued: &Enqueued, channel: &str) {
        self.outbox.committed(enqueued, channel);
    }
}

/// Notes an `agent` reply's delivery in the result: the row the turn committed with its reply,
/// or — for a run answered from its recorded reply (the same `idempotencyKey` again) — the row
/// enqueued now under the run's key, which finds one committed with the reply. A silent reply
/// sends nothing.
async fn deliver_reply(
    c: &Ctx,
    route: &Route,
    best_effort: bool,
    result: &mut wire::AgentResult,
) -> Result<(), ErrorShape> {
    let cannot = |e: &dyn std::fmt::Display| {
        ErrorShape::unavailable(format!("the reply was recorded (run {}) but cannot be delivered: {e}", result.run_id))
    };
    let noted = result.extra.get("delivery").cloned();
    if let Some(noted) = noted {
        match noted["status"].as_str() {
            Some("failed") if !best_effort => return Err(cannot(&noted["error"].as_str().unwrap_or_default())),
            Some("queued") => {
                result.extra.insert(
                    "delivery".into(),
                    json!({"status": "queued", "deliveryId": noted["deliveryId"], "channel": route.channel, "to": route.to}),
                );
            }
            _ => {}
        }
        return Ok(());
    }
    if result.result.payloads.is_empty() {
        result.extra.insert("delivery".into(), json!({"status": "silent"}));
        return Ok(());
    }
    let origin = Origin { kind: OriginKind::AgentReply, id: Some(result.run_id.clone()), best_effort };
    let outbox = &c.state.outbox;
    let prepared = outbox.prepare(route, &result.text, &reply_key(&result.run_id), &origin, None, TooLong::Truncate);
    let enqueued = match prepared {
        Ok(d) => outbox.enqueue(d).await.map_err(|e| ErrorShape::unavailable(e.to_string()))?,
        Err(e) if best_effort => {
            result.extra.insert("delivery".into(), json!({"status": "failed", "error": e.to_string()}));
            return Ok(());
        }
        Err(e) => return Err(cannot(&e)),
    };
    result.extra.insert(
        "delivery".into(),
        json!({"status": "queued", "deliveryId": enqueued.id, "channel": route.channel, "to": route.to}),
    );
    Ok(())
}

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
        // Where the reply goes is checked before the turn runs, so a bad route costs no turn.
        let delivery = reply_route(&c, &p)?;
        let best_effort = p.best_effort_deliver == Some(true);
        let accepted = |a: wire::AgentAccepted| c.reply.interim(serde_json::to_value(a).expect("accepted serialises"));
        let mut result = match &delivery {
            Some(route) => {
                let to = ReplyTo { outbox: c.state.outbox.clone(), route: route.clone(), best_effort };
                api::agent_delivering(&c.state.agents, p, std::sync::Arc::new(to), accepted).await
            }
            None => api::agent(&c.state.agents, p, accepted).await,
        }
        .map_err(error)?;
        if let Some(route) = delivery {
            deliver_reply(&c, &route, best_effort, &mut result).await?;
        }
        Ok(result)
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
