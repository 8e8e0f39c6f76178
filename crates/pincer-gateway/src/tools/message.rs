//! `message`: OpenClaw's messaging tool. Action `send` — text to any configured channel through the
//! durable outbox (the `send` method's path: the row and its parts are committed before the first
//! byte goes out). Actions `react`, `edit` and `delete` act on a message already in a chat
//! (`messageId`: a receipt's `messageId`, or an inbound message's id) directly through the channel
//! adapter (Telegram, Discord, Slack): they change what exists and are safe to repeat, so they need
//! no outbox row. Without a `target` every action answers where the turn's conversation is: the
//! session's last route, which inbound chat records before each turn. OpenClaw's other actions
//! (polls, media, threads, moderation, …) are refused by name.

use pincer_delivery::api;
use pincer_delivery::channel::MessageAction;
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
    "messageId",
    "message_id",
    "emoji",
    "remove",
];

/// The actions Pincer carries out.
const ACTIONS: [&str; 4] = ["send", "react", "edit", "delete"];

pub struct MessageTool {
    spec: ToolSpec,
    binding: Binding,
}

impl MessageTool {
    pub fn new(binding: Binding) -> MessageTool {
        let spec = ToolSpec {
            name: NAME.into(),
            description: "Send messages via channel plugins. Actions: \"send\": text to a chat channel \
                (telegram, discord, slack), a webhook or the local inbox, through the durable outbox; \"react\" \
                (emoji, remove), \"edit\" (message) and \"delete\" act on the message `messageId` in a Telegram, \
                Discord or Slack chat. Without a target the action goes to the conversation this turn belongs to \
                (the chat the user wrote from). A send's result names the outbox message id \
                (`pincer deliveries show <id>`) and, once sent, the chat's message id."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ACTIONS},
                    "channel": {"type": "string", "description": "telegram, discord, slack, webhook or inbox; default: the current conversation's channel."},
                    "target": {"type": "string", "description": "Target channel/user id or name, in the channel's syntax (a Telegram chat id, `channel:<id>` or `user:<id>` on Discord, …); default: the current conversation."},
                    "targets": {"type": "array", "items": {"type": "string"}, "description": "Several targets; one message each."},
                    "accountId": {"type": "string"},
                    "message": {"type": "string", "description": "The text to send (send), or the new text (edit)."},
                    "messageId": {"type": "string", "description": "The message to react to, edit or delete (react, edit, delete)."},
                    "message_id": {"type": "string", "description": "snake_case alias of messageId."},
                    "emoji": {"type": "string", "description": "The reaction (react): an emoji on Telegram and Discord (`name:id` for a custom one), a name like `thumbsup` on Slack."},
                    "remove": {"type": "boolean", "description": "Remove the reaction instead of adding it (react)."},
                    "threadId": {"type": "string", "description": "Thread or forum topic id."},
                    "replyTo": {"type": "string"},
                    "silent": {"type": "boolean"},
                    "dryRun": {"type": "boolean", "description": "Resolve where the message would go without sending it."}
                },
                "required": ["action"],
                "additionalProperties": false
            }),
        };
        MessageTool { spec, binding }
    }

    async fn run(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let action = opt_str_arg(&args, NAME, "action")?.unwrap_or("send");
        if !ACTIONS.contains(&action) {
            return Err(ToolError::InvalidArguments(format!(
                "{NAME}: action \"{action}\" is not supported by Pincer; it supports \"send\" (text through the outbox), \"react\", \"edit\" and \"delete\" (Telegram, Discord, Slack)"
            )));
        }
        known_args(&args, NAME, ARGS)?;
        if action != "send" {
            return self.act(action, &args, ctx).await;
        }
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

impl MessageTool {
    /// `react`, `edit` or `delete` on `messageId` in the target chat (default: the conversation).
    async fn act(&self, action: &str, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let invalid = |m: String| ToolError::InvalidArguments(format!("{NAME}: {m}"));
        let message_id = match opt_str_arg(args, NAME, "messageId")? {
            Some(id) => Some(id),
            None => opt_str_arg(args, NAME, "message_id")?,
        };
        let Some(message_id) = message_id.map(str::trim).filter(|id| !id.is_empty()) else {
            return Err(invalid(format!(
                "action \"{action}\" needs `messageId`: the id of the message (a send's `messageId`, or the id of the user's message)"
            )));
        };
        let what = match action {
            "react" => {
                let emoji = opt_str_arg(args, NAME, "emoji")?.map(str::trim).unwrap_or_default();
                if emoji.is_empty() {
                    return Err(invalid("action \"react\" needs `emoji`, e.g. \"👍\" (Slack: \"thumbsup\")".into()));
                }
                let remove = opt_bool(args, NAME, "remove")?.unwrap_or(false);
                MessageAction::React { emoji: emoji.to_string(), remove }
            }
            "edit" => {
                let text = opt_str_arg(args, NAME, "message")?.unwrap_or_default();
                if text.trim().is_empty() {
                    return Err(invalid("action \"edit\" needs `message`: the new text".into()));
                }
                MessageAction::Edit { text: text.to_string() }
            }
            _ => MessageAction::Delete,
        };
        let targets = targets(args)?;
        if targets.len() > 1 {
            return Err(invalid(format!("action \"{action}\" acts on one message: give one `target`, not several")));
        }
        let state = self.binding.state(NAME)?;
        let channel = opt_str_arg(args, NAME, "channel")?.map(str::trim).filter(|c| !c.is_empty());
        let thread = opt_str_arg(args, NAME, "threadId")?;
        let account = opt_str_arg(args, NAME, "accountId")?;
        let route = state
            .announce
            .route(channel, targets.first().map(String::as_str), thread, account, ctx.session_key.as_deref())
            .map_err(|e| invalid(e.to_string()))?;
        let Some(adapter) = state.outbox.channel(&route.channel) else {
            return Err(invalid(format!("the {} channel is not configured", route.channel)));
        };
        let target = adapter.parse_target(&route.to, route.thread_id.as_deref()).map_err(|e| invalid(e.to_string()))?;
        let result = json!({
            "ok": true, "action": action, "channel": route.channel, "to": route.to, "messageId": message_id,
        });
        if opt_bool(args, NAME, "dryRun")?.unwrap_or(false) {
            let mut result = result;
            result["dryRun"] = json!(true);
            return Ok(json_output(&result));
        }
        adapter.act(&target, message_id, &what).await.map_err(|e| {
            let m = format!("{NAME}: {action} on {} {} failed: {}", route.channel, route.to, e.message());
            match e {
                pincer_delivery::channel::SendError::Permanent { .. } => ToolError::InvalidArguments(m),
                _ => ToolError::Failed(m),
            }
        })?;
        Ok(json_output(&result))
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
