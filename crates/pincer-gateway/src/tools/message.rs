//! `message`: OpenClaw's messaging tool, action `send` — text to any configured channel through the
//! durable outbox (the `send` method's path: the row and its parts are committed before the first
//! byte goes out). Without a `target` it answers where the turn's conversation is: the session's
//! last route, which inbound chat records before each turn.

use pincer_delivery::api;
use pincer_protocol::schema::delivery as wire;
use pincer_tools::tool::{BoxFuture, opt_str_arg};
use pincer_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec};
use serde_json::{Value, json};

use super::{Binding, json_output, known_args, last_route, opt_bool, parse};

const NAME: &str = "message";
const ARGS: &[&str] = &[
    "action",
    "channel",
    "target",
    "targets",
    "to",
    "accountId",
    "message",
    "threadId",
    "replyTo",
    "silent",
    "dryRun",
];

pub struct MessageTool {
    spec: ToolSpec,
    binding: Binding,
}

impl MessageTool {
    pub fn new(binding: Binding) -> MessageTool {
        let spec = ToolSpec {
            name: NAME.into(),
            description: "Send messages via channel plugins. Pincer supports action \"send\": text to a chat channel \
                (telegram, discord, slack), a webhook or the local inbox, through the durable outbox. Without a \
                target the message goes to the conversation this turn belongs to (the chat the user wrote from). \
                The result names the outbox message id (`pincer deliveries show <id>`)."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["send"]},
                    "channel": {"type": "string", "description": "telegram, discord, slack, webhook or inbox; default: the current conversation's channel."},
                    "target": {"type": "string", "description": "Target channel/user id or name, in the channel's syntax (a Telegram chat id, `channel:<id>` or `user:<id>` on Discord, …); default: the current conversation."},
                    "targets": {"type": "array", "items": {"type": "string"}, "description": "Several targets; one message each."},
                    "accountId": {"type": "string"},
                    "message": {"type": "string", "description": "The text to send."},
                    "threadId": {"type": "string", "description": "Thread or forum topic id."},
                    "replyTo": {"type": "string"},
                    "silent": {"type": "boolean"},
                    "dryRun": {"type": "boolean", "description": "Resolve where the message would go without sending it."}
                },
                "required": ["action", "message"],
                "additionalProperties": false
            }),
        };
        MessageTool { spec, binding }
    }

    async fn run(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let action = opt_str_arg(&args, NAME, "action")?.unwrap_or("send");
        if action != "send" {
            return Err(ToolError::InvalidArguments(format!(
                "{NAME}: action \"{action}\" is not supported by Pincer; only \"send\" is (text through the outbox)"
            )));
        }
        known_args(&args, NAME, ARGS)?;
        let text = opt_str_arg(&args, NAME, "message")?.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(ToolError::InvalidArguments(format!("{NAME}: `message` must be a non-empty text to send")));
        }
        let state = self.binding.state(NAME)?;
        let mut channel =
            opt_str_arg(&args, NAME, "channel")?.map(str::trim).filter(|c| !c.is_empty()).map(String::from);
        let mut thread = opt_str_arg(&args, NAME, "threadId")?.map(String::from);
        let account = opt_str_arg(&args, NAME, "accountId")?;
        let mut targets = targets(&args)?;
        if targets.is_empty() {
            // OpenClaw's default: the conversation the turn belongs to, when the channel (if named) is its.
            if let Some(session) = ctx.session_key.as_deref()
                && let Some(route) = last_route(&state, session).await?
                && channel.as_deref().is_none_or(|c| c == route.channel || c == "last")
            {
                targets.push(route.to);
                channel = Some(route.channel);
                thread = thread.or(route.thread_id);
            } else {
                targets.push(String::new());
            }
        }
        let dry_run = opt_bool(&args, NAME, "dryRun")?.unwrap_or(false);
        let mut results = Vec::new();
        for target in targets {
            if dry_run {
                let route = state
                    .announce
                    .route(channel.as_deref(), Some(&target), thread.as_deref(), account, ctx.session_key.as_deref())
                    .map_err(|e| ToolError::InvalidArguments(format!("{NAME}: {e}")))?;
                results.push(json!({
                    "ok": true, "action": "send", "dryRun": true, "channel": route.channel, "to": route.to,
                    "threadId": route.thread_id,
                }));
                continue;
            }
            let params = parse::<wire::Send>(
                NAME,
                json!({
                    "to": target, "message": text, "channel": channel, "threadId": thread, "accountId": account,
                    "sessionKey": ctx.session_key, "replyToId": args.get("replyTo"), "silent": args.get("silent"),
                    // Each call sends once: a new key per target of this call.
                    "idempotencyKey": format!("tool:{}:{}", ctx.call_id, uuid::Uuid::new_v4()),
                }),
            )?;
            let sent = api::send(&state.outbox, &state.announce, &state.events, params).await.map_err(|e| match e {
                api::ApiError::Invalid(m) | api::ApiError::NotFound(m) => {
                    ToolError::InvalidArguments(format!("{NAME}: {m}"))
                }
                e @ api::ApiError::Store(_) => ToolError::Failed(format!("{NAME}: nothing was sent: {e}")),
            })?;
            results.push(json!({
                "ok": sent.ok, "action": "send", "channel": sent.channel, "to": sent.to, "threadId": thread,
                "messageId": sent.message_id, "deliveryId": sent.delivery_id, "state": sent.state,
            }));
        }
        Ok(json_output(&if results.len() == 1 { results.remove(0) } else { json!({"ok": true, "results": results}) }))
    }
}

/// `target`, `to` (an alias models use) and `targets`, in that order.
fn targets(args: &Value) -> Result<Vec<String>, ToolError> {
    let mut out = Vec::new();
    for key in ["target", "to"] {
        if let Some(t) = opt_str_arg(args, NAME, key)?.map(str::trim).filter(|t| !t.is_empty()) {
            out.push(t.to_string());
        }
    }
    match args.get("targets") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str().map(str::trim) {
                    Some(t) if !t.is_empty() => out.push(t.to_string()),
                    _ => {
                        return Err(ToolError::InvalidArguments(format!(
                            "{NAME}: `targets` must be a list of non-empty strings"
                        )));
                    }
                }
            }
        }
        Some(_) => return Err(ToolError::InvalidArguments(format!("{NAME}: `targets` must be a list of strings"))),
    }
    out.dedup();
    Ok(out)
}

impl Tool for MessageTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(self.run(args, ctx))
    }
}
