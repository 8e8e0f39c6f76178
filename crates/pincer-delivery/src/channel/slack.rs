//! Slack's Web API: `POST {apiBaseUrl}/chat.postMessage` with a bot token. Slack reports most
//! failures as HTTP 200 with `ok: false` and an error code, so the body decides the class. Each
//! message carries `metadata {event_type: "pincer_delivery", event_payload: {row_id, part}}`, so
//! after an ambiguous send [`Slack::find`] looks for it with `conversations.history` (or
//! `conversations.replies` in a thread; `conversations.open` first for a `user:` DM): found, the
//! part is delivered with its `ts`; missing once a request could no longer land, it is resent.
//! Looking needs the `channels:history` / `groups:history` / `im:history` scopes; without them the
//! part is reported `unknown`, as on platforms that cannot be searched.

use std::sync::Arc;
use std::time::Duration;

use pincer_core::config::SlackConfig;
use serde_json::json;

use super::registry::{BuildContext, Built, Capabilities, ChannelSpec, Inbound};
use super::{
    BoxFuture, BuildError, Channel, MessageAction, Part, PermanentClass, Receipt, Reply, SendError, Target, TargetError,
};
use crate::chunk::chunk_text;

/// Slack in the channel registry.
pub static SPEC: ChannelSpec = ChannelSpec {
    name: "slack",
    label: "Slack",
    chat: true,
    // chat.postMessage is allowed about one message per second per channel, with bursts.
    default_rate: 10.0,
    target_prefixes: &["slack"],
    capabilities: Capabilities {
        to: "`channel:<C…\\|G…\\|D…>`, `user:<U…\\|W…>`, bare id by its first letter",
        thread: "a `thread_ts` (channel targets only)",
        part_limit: "4000 chars",
        rendering: "text as is, no unfurling",
        idempotency: "none; metadata `{row_id, part}` lets `conversations.history` find a sent part",
        ambiguous_retried: "after [`Channel::reconcile`] found it missing",
        other_recovery: "—",
        check: "`auth.test`",
    },
    minimal_config: r#"{ channels: { slack: { botToken: "xoxb-pincer-test", apiBaseUrl: "http://127.0.0.1:9" } } }"#,
    build,
    doctor: super::registry::check_credentials,
    inbound: Inbound::Socket,
};

fn build(cx: &BuildContext<'_>) -> Built {
    let config = cx.config.channels.slack.as_ref()?;
    Some(Slack::new(config, cx.timeout(SPEC.name)).map(|c| Arc::new(c) as Arc<dyn Channel>))
}

/// Sends parts to Slack channels, DMs and threads as a bot.
pub struct Slack {
    http: reqwest::Client,
    base: String,
    auth: String,
    timeout_ms: i64,
}

impl Slack {
    /// Characters per message (Slack recommends at most about 4000; it truncates at 40 000).
    pub const MAX_CHARS: usize = 4000;
    /// The `metadata.event_type` attached to every message Pincer posts.
    pub const EVENT_TYPE: &'static str = "pincer_delivery";

    /// Builds the adapter; `timeout` bounds each HTTP request.
    pub fn new(config: &SlackConfig, timeout: Duration) -> Result<Self, BuildError> {
        super::non_empty("channels.slack.botToken", &config.bot_token)?;
        let base = super::base_url("channels.slack.apiBaseUrl", &config.api_base_url)?;
        let user_agent = format!("pincer/{}", env!("CARGO_PKG_VERSION"));
        let http = super::build("slack", super::client_builder(&user_agent, timeout))?;
        let timeout_ms = timeout.as_millis().min(i64::MAX as u128) as i64;
        Ok(Slack { http, base, auth: format!("Bearer {}", config.bot_token.trim()), timeout_ms })
    }

    /// Pages read when looking for a part (200 messages each) before giving up.
    pub const FIND_MAX_PAGES: usize = 25;

    async fn get(&self, method: &str, query: &[(&str, &str)]) -> Result<Reply, SendError> {
        let url = reqwest::Url::parse_with_params(&format!("{}/{method}", self.base), query)
            .map_err(|e| SendError::permanent(PermanentClass::Config, format!("slack url: {e}")))?;
        let request = self.http.get(url).header(reqwest::header::AUTHORIZATION, &self.auth);
        super::execute("slack", request).await
    }

    /// The conversation id of a target: a channel's own, a user's DM (opened if needed). A DM is
    /// posted to by user id, but read, reacted to, edited and deleted by its conversation id.
    async fn conversation(&self, to: &str) -> Result<String, SendError> {
        if let Some(id) = to.strip_prefix("channel:") {
            return Ok(id.to_string());
        }
        let Some(user) = to.strip_prefix("user:") else {
            return Err(SendError::permanent(PermanentClass::Target, format!("`{to}` is not a Slack target")));
        };
        let reply = self.call("conversations.open", &json!({"users": user, "return_im": false})).await?;
        let json = checked(&reply)?;
        match json["channel"]["id"].as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(SendError::ambiguous(format!("slack opened no DM: {}", reply.snippet()))),
        }
    }

    /// `reactions.add|remove`, `chat.update` or `chat.delete` on the message `ts` in the target.
    async fn act_on(&self, target: &Target, ts: &str, action: &MessageAction) -> Result<(), SendError> {
        let channel = self.conversation(&target.to).await?;
        let (method, body) = match action {
            MessageAction::React { emoji, remove } => {
                // Slack names reactions (`thumbsup`), with or without colons.
                let name = emoji.trim().trim_matches(':');
                let method = if *remove { "reactions.remove" } else { "reactions.add" };
                (method, json!({ "channel": channel, "timestamp": ts, "name": name }))
            }
            MessageAction::Edit { text } => {
                if text.trim().is_empty() {
                    return Err(SendError::permanent(PermanentClass::Payload, "a Slack message cannot be empty"));
                }
                ("chat.update", json!({ "channel": channel, "ts": ts, "text": text }))
            }
            MessageAction::Delete => ("chat.delete", json!({ "channel": channel, "ts": ts })),
        };
        let reply = self.call(method, &body).await?;
        checked(&reply).map(|_| ())
    }

    /// Looks for `part` among the messages of its conversation posted since a minute before
    /// `dispatched_at_ms`, by the metadata every Pincer message carries.
    pub async fn find(&self, part: &Part, dispatched_at_ms: i64) -> Result<Option<Receipt>, SendError> {
        super::expect_channel("slack", part)?;
        let conversation = self.conversation(&part.target.to).await?;
        let oldest = format!("{}.000000", (dispatched_at_ms / 1000).saturating_sub(60).max(0));
        let (method, thread) = match &part.target.thread {
            Some(ts) => ("conversations.replies", Some(ts.as_str())),
            None => ("conversations.history", None),
        };
        let mut cursor = String::new();
        for _ in 0..Self::FIND_MAX_PAGES {
            let mut query = vec![
                ("channel", conversation.as_str()),
                ("oldest", oldest.as_str()),
                ("include_all_metadata", "true"),
                ("limit", "200"),
            ];
            if let Some(ts) = thread {
                query.push(("ts", ts));
            }
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let reply = self.get(method, &query).await?;
            let json = checked(&reply)?;
            let Some(messages) = json["messages"].as_array() else {
                return Err(SendError::ambiguous(format!("slack answered {method} without messages")));
            };
            let ours = messages.iter().find(|m| {
                let meta = &m["metadata"];
                meta["event_type"] == Self::EVENT_TYPE
                    && meta["event_payload"]["row_id"] == part.row_id.as_str()
                    && meta["event_payload"]["part"] == part.index
            });
            if let Some(ts) = ours.and_then(|m| m["ts"].as_str()).filter(|ts| !ts.is_empty()) {
                return Ok(Some(Receipt { message_id: ts.to_string() }));
            }
            match json["response_metadata"]["next_cursor"].as_str().filter(|c| !c.is_empty()) {
                Some(next) => cursor = next.to_string(),
                None => return Ok(None),
            }
        }
        Err(SendError::ambiguous(format!(
            "more than {} messages were posted to {} since; stopped looking",
            Self::FIND_MAX_PAGES * 200,
            part.target.to
        )))
    }

    async fn call(&self, method: &str, body: &serde_json::Value) -> Result<Reply, SendError> {
        let request = self
            .http
            .post(format!("{}/{method}", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        super::execute("slack", request).await
    }

    async fn send_part(&self, part: &Part) -> Result<Receipt, SendError> {
        super::expect_channel("slack", part)?;
        if part.text.trim().is_empty() {
            return Err(SendError::permanent(PermanentClass::Payload, "a Slack message cannot be empty"));
        }
        let Some(channel) = part.target.to.strip_prefix("channel:").or_else(|| part.target.to.strip_prefix("user:"))
        else {
            return Err(SendError::permanent(
                PermanentClass::Target,
                format!("`{}` is not a Slack target", part.target.to),
            ));
        };
        let mut body = json!({
            "channel": channel,
            "text": part.text,
            "unfurl_links": false,
            "unfurl_media": false,
            "metadata": {
                "event_type": Self::EVENT_TYPE,
                "event_payload": { "row_id": part.row_id, "part": part.index },
            },
        });
        if let Some(thread) = &part.target.thread {
            body["thread_ts"] = json!(thread);
        }
        let reply = self.call("chat.postMessage", &body).await?;
        let json = checked(&reply)?;
        match json["ts"].as_str() {
            Some(ts) if !ts.is_empty() => Ok(Receipt { message_id: ts.to_string() }),
            _ => Err(SendError::ambiguous(format!("slack answered ok without a ts: {}", reply.snippet()))),
        }
    }

    async fn whoami(&self) -> Result<String, SendError> {
        let reply = self.call("auth.test", &json!({})).await?;
        let json = checked(&reply)?;
        let user = json["user"].as_str().unwrap_or("?");
        let mut who = match json["team"].as_str() {
            Some(team) => format!("{user} ({team})"),
            None => user.to_string(),
        };
        // Slack lists a token's scopes in a header; without a history scope an ambiguous send
        // cannot be looked up, so say so where the owner checks the channel.
        let scopes = reply.headers.get("x-oauth-scopes").and_then(|v| v.to_str().ok());
        if let Some(scopes) = scopes {
            let has = |scope: &str| scopes.split(',').any(|s| s.trim() == scope);
            let missing: Vec<&str> =
                ["channels:history", "groups:history", "im:history"].into_iter().filter(|s| !has(s)).collect();
            if !missing.is_empty() {
                who.push_str(&format!(
                    "; without {} an ambiguous send there cannot be looked up and is reported unknown",
                    missing.join(", ")
                ));
            }
        }
        Ok(who)
    }
}

/// The body of a successful answer, or the classified failure.
fn checked(reply: &Reply) -> Result<serde_json::Value, SendError> {
    let status = reply.status.as_u16();
    let json = reply.json();
    if status == 429 {
        return Err(SendError::rate_limited(
            "slack answered HTTP 429 (rate limited)",
            super::retry_after_header(&reply.headers),
        ));
    }
    if reply.status.is_success() && json["ok"] == json!(true) {
        return Ok(json);
    }
    let Some(code) = json["error"].as_str() else {
        let detail = format!("slack answered HTTP {status}: {}", reply.snippet());
        return Err(match status {
            500.. | 408 | 200..=299 => SendError::ambiguous(detail),
            300..=399 => SendError::permanent(
                PermanentClass::Config,
                format!("{detail}; redirects are not followed, check channels.slack.apiBaseUrl"),
            ),
            _ => SendError::permanent(PermanentClass::Payload, detail),
        });
    };
    let detail = format!("slack refused the message: {code}");
    Err(match code {
        "invalid_auth"
        | "not_authed"
        | "token_revoked"
        | "token_expired"
        | "account_inactive"
        | "missing_scope"
        | "not_allowed_token_type"
        | "no_permission"
        | "team_access_not_granted" => SendError::permanent(
            PermanentClass::Auth,
            format!("{detail}; check channels.slack.botToken and its scopes"),
        ),
        "channel_not_found"
        | "not_in_channel"
        | "is_archived"
        | "user_not_found"
        | "user_not_visible"
        | "cannot_dm_bot"
        | "user_disabled"
        | "restricted_action"
        | "restricted_action_read_only_channel"
        | "restricted_action_thread_only_channel"
        | "restricted_action_non_threadable_channel"
        | "thread_not_found" => SendError::permanent(
            PermanentClass::Target,
            format!("{detail}; check the channel id and invite the bot to the channel"),
        ),
        "ratelimited" | "rate_limited" => SendError::rate_limited(detail, super::retry_after_header(&reply.headers)),
        // The request body arrived truncated or not at all: nothing was posted.
        "request_timeout" => SendError::not_sent(detail),
        "internal_error" | "fatal_error" | "service_unavailable" => SendError::ambiguous(detail),
        // msg_too_long, no_text, invalid_blocks, invalid_metadata_*, and codes we do not know: a
        // refusal that a retry would repeat.
        _ => SendError::permanent(PermanentClass::Payload, detail),
    })
}

/// Whether `id` looks like a Slack id starting with one of `kinds` (e.g. `C0123ABCD`).
fn is_id(id: &str, kinds: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| kinds.contains(c))
        && (5..=21).contains(&id.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_thread_ts(ts: &str) -> bool {
    ts.split_once('.').is_some_and(|(secs, micros)| {
        !secs.is_empty()
            && !micros.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && micros.bytes().all(|b| b.is_ascii_digit())
    })
}

impl Channel for Slack {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn parse_target(&self, to: &str, thread_id: Option<&str>) -> Result<Target, TargetError> {
        let err = |reason: String| TargetError::new("slack", reason);
        let to = to.trim();
        super::refuse_prefix("slack", to, SPEC.target_prefixes)?;
        if to.starts_with('#') || to.starts_with('@') {
            return Err(err(format!("`{to}` is a name; use the channel id (C…) or user id (U…) instead")));
        }
        let (kind, id) = if let Some(id) = to.strip_prefix("channel:") {
            if !is_id(id, "CGD") {
                return Err(err(format!("`{id}` is not a channel id (C…, G… or D…, upper case)")));
            }
            ("channel", id)
        } else if let Some(id) = to.strip_prefix("user:") {
            if !is_id(id, "UW") {
                return Err(err(format!("`{id}` is not a user id (U… or W…, upper case)")));
            }
            ("user", id)
        } else if is_id(to, "CGD") {
            ("channel", to)
        } else if is_id(to, "UW") {
            ("user", to)
        } else {
            return Err(err(format!("`{to}` is not `channel:<C…|G…|D…>`, `user:<U…>` or a Slack id")));
        };
        let thread = match thread_id.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(_) if kind == "user" => {
                return Err(err("threads need a channel target; use the DM's `channel:D…` id".into()));
            }
            Some(ts) if is_thread_ts(ts) => Some(ts.to_string()),
            Some(ts) => return Err(err(format!("thread `{ts}` is not a message ts like 1712345678.000100"))),
        };
        Ok(Target { channel: "slack".into(), to: format!("{kind}:{id}"), thread })
    }

    fn max_part_chars(&self) -> usize {
        Self::MAX_CHARS
    }

    fn chunk(&self, text: &str) -> Vec<String> {
        chunk_text(text, Self::MAX_CHARS, usize::MAX)
    }

    fn send<'a>(&'a self, part: &'a Part) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.send_part(part))
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(self.whoami())
    }

    fn safe_to_retry_ambiguous(&self, _dispatched_at_ms: i64, _now_ms: i64) -> bool {
        false
    }

    fn act<'a>(
        &'a self,
        target: &'a Target,
        message_id: &'a str,
        action: &'a MessageAction,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.act_on(target, message_id, action))
    }

    /// A request gets at most the request time limit; after that a missing message stays missing.
    fn reconcile_after_ms(&self) -> Option<i64> {
        Some(self.timeout_ms)
    }

    fn reconcile<'a>(
        &'a self,
        part: &'a Part,
        dispatched_at_ms: i64,
    ) -> BoxFuture<'a, Result<Option<Receipt>, SendError>> {
        Box::pin(self.find(part, dispatched_at_ms))
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use pincer_testkit::fakes::slack::{FakeSlack, Fault};

    use super::*;
    use crate::channel::test_support::{TIMEOUT, parse_table, part, target};

    fn adapter(fake: &FakeSlack) -> Slack {
        adapter_with_token(fake, FakeSlack::TOKEN)
    }

    fn adapter_with_token(fake: &FakeSlack, token: &str) -> Slack {
        Slack::new(
            &SlackConfig { bot_token: token.into(), api_base_url: fake.base_url(), ..SlackConfig::default() },
            TIMEOUT,
        )
        .unwrap()
    }

    fn offline() -> Slack {
        let config = SlackConfig {
            bot_token: "t".into(),
            api_base_url: "http://127.0.0.1:9/api".into(),
            ..SlackConfig::default()
        };
        Slack::new(&config, TIMEOUT).unwrap()
    }

    /// The class of a failed send, as one word.
    fn class(result: Result<Receipt, SendError>) -> String {
        match result {
            Ok(_) => "sent".into(),
            Err(SendError::NotSent { rate_limited: true, .. }) => "rate-limited".into(),
            Err(SendError::NotSent { .. }) => "not-sent".into(),
            Err(SendError::Permanent { class, .. }) => class.to_string(),
            Err(SendError::Ambiguous { .. }) => "ambiguous".into(),
        }
    }

    #[test]
    fn parses_targets() {
        let table = parse_table(
            &offline(),
            &[
                ("channel:C0123ABCD", None),
                ("channel:G0123ABCD", None),
                ("channel:D0123ABCD", None),
                ("user:U0123ABCD", None),
                ("C0123ABCD", None),
                ("U0123ABCD", None),
                ("W0123ABCD", None),
                ("channel:C0123ABCD", Some("1712345678.000100")),
                ("channel:C0123ABCD", Some("yesterday")),
                ("user:U0123ABCD", Some("1712345678.000100")),
                ("channel:U0123ABCD", None),
                ("user:C0123ABCD", None),
                ("channel:c0123abcd", None),
                ("#general", None),
                ("@alice", None),
                ("slack:C0123ABCD", None),
                ("", None),
            ],
        );
        expect![[r##"
            "channel:C0123ABCD" => to=channel:C0123ABCD thread=-
            "channel:G0123ABCD" => to=channel:G0123ABCD thread=-
            "channel:D0123ABCD" => to=channel:D0123ABCD thread=-
            "user:U0123ABCD" => to=user:U0123ABCD thread=-
            "C0123ABCD" => to=channel:C0123ABCD thread=-
            "U0123ABCD" => to=user:U0123ABCD thread=-
            "W0123ABCD" => to=user:W0123ABCD thread=-
            "channel:C0123ABCD" (thread 1712345678.000100) => to=channel:C0123ABCD thread=1712345678.000100
            "channel:C0123ABCD" (thread yesterday) => error: invalid slack target: thread `yesterday` is not a message ts like 1712345678.000100
            "user:U0123ABCD" (thread 1712345678.000100) => error: invalid slack target: threads need a channel target; use the DM's `channel:D…` id
            "channel:U0123ABCD" => error: invalid slack target: `U0123ABCD` is not a channel id (C…, G… or D…, upper case)
            "user:C0123ABCD" => error: invalid slack target: `C0123ABCD` is not a user id (U… or W…, upper case)
            "channel:c0123abcd" => error: invalid slack target: `c0123abcd` is not a channel id (C…, G… or D…, upper case)
            "#general" => error: invalid slack target: `#general` is a name; use the channel id (C…) or user id (U…) instead
            "@alice" => error: invalid slack target: `@alice` is a name; use the channel id (C…) or user id (U…) instead
            "slack:C0123ABCD" => error: invalid slack target: drop the `slack:` prefix from `slack:C0123ABCD`: the channel is chosen separately
            "" => error: invalid slack target: `` is not `channel:<C…|G…|D…>`, `user:<U…>` or a Slack id
        "##]]
        .assert_eq(&table);
    }

    /// `react`, `edit` and `delete` on a message the bot posted, in a channel and in a DM (acted
    /// on by its conversation id); a message that is gone is a permanent error.
    #[tokio::test]
    async fn reacts_edits_and_deletes_posted_messages() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        let to = target(&slack, "channel:C0123ABCD", None);
        let ts = slack.send(&part(&to, "row-1", 0, 1, "hello")).await.unwrap().message_id;
        let react = MessageAction::React { emoji: ":thumbsup:".into(), remove: false };
        slack.act(&to, &ts, &react).await.unwrap();
        slack.act(&to, &ts, &MessageAction::React { emoji: "thumbsup".into(), remove: true }).await.unwrap();
        slack.act(&to, &ts, &MessageAction::Edit { text: "hello again".into() }).await.unwrap();
        assert_eq!(fake.messages()[0].text, "hello again");
        slack.act(&to, &ts, &MessageAction::Delete).await.unwrap();
        assert_eq!(fake.deleted(), std::slice::from_ref(&ts));
        let reactions: Vec<(String, bool)> = fake.reactions().into_iter().map(|r| (r.name, r.removed)).collect();
        assert_eq!(reactions, [("thumbsup".to_string(), false), ("thumbsup".to_string(), true)]);
        let gone = slack.act(&to, &ts, &MessageAction::Delete).await.unwrap_err();
        assert!(matches!(gone, SendError::Permanent { .. }) && gone.message().contains("message_not_found"), "{gone}");

        let dm = target(&slack, "user:U0123ABCD", None);
        let ts = slack.send(&part(&dm, "row-2", 0, 1, "psst")).await.unwrap().message_id;
        slack.act(&dm, &ts, &MessageAction::Edit { text: "psst!".into() }).await.unwrap();
        assert_eq!(fake.messages()[1].text, "psst!");
    }

    #[tokio::test]
    async fn sends_with_metadata_and_no_unfurling() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        let to = target(&slack, "channel:C0123ABCD", Some("1712345678.000100"));
        let receipt = slack.send(&part(&to, "row-1", 3, 4, "hello https://example.com")).await.unwrap();
        let message = &fake.messages()[0];
        assert_eq!(receipt.message_id, message.ts);
        assert_eq!(message.channel, "C0123ABCD");
        assert_eq!(message.thread_ts.as_deref(), Some("1712345678.000100"));
        assert_eq!(message.unfurl_links, Some(false));
        assert_eq!(
            message.metadata,
            Some(json!({ "event_type": "pincer_delivery", "event_payload": { "row_id": "row-1", "part": 3 } }))
        );
        let dm = target(&slack, "user:U0123ABCD", None);
        slack.send(&part(&dm, "row-2", 0, 1, "hi")).await.unwrap();
        assert_eq!(fake.messages()[1].channel, "U0123ABCD");
        assert_eq!(slack.check().await.unwrap(), "pincer-fake (Fake Team)");
    }

    #[tokio::test]
    async fn find_looks_up_a_part_by_its_metadata_across_pages() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        let to = target(&slack, "channel:C0123ABCD", None);
        let wanted = part(&to, "row-7", 1, 2, "the one");
        let receipt = slack.send(&wanted).await.unwrap();
        // 450 newer messages push it onto the third page; another row's part 1 is not it.
        for i in 0..450 {
            slack.send(&part(&to, &format!("other-{i}"), 1, 2, "noise")).await.unwrap();
        }
        let dispatched_ms = 1_764_000_000_123;
        assert_eq!(slack.find(&wanted, dispatched_ms).await.unwrap(), Some(receipt));
        let reads = fake.reads();
        assert_eq!(reads.len(), 3, "{reads:?}");
        assert_eq!(
            (reads[0].method.as_str(), reads[0].param("channel"), reads[0].param("oldest")),
            ("conversations.history", Some("C0123ABCD"), Some("1763999940.000000"))
        );
        assert_eq!(reads[0].param("include_all_metadata"), Some("true"));
        assert_eq!(reads[2].param("cursor"), Some("off:400"));

        // Part 0 of the same row was never posted.
        assert_eq!(slack.find(&part(&to, "row-7", 0, 2, "the one"), dispatched_ms).await.unwrap(), None);
    }

    #[tokio::test]
    async fn find_reads_threads_with_replies_and_dms_after_opening_them() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        let in_thread = part(&target(&slack, "channel:C0123ABCD", Some("1712345678.000100")), "row-t", 0, 1, "reply");
        let receipt = slack.send(&in_thread).await.unwrap();
        assert_eq!(slack.find(&in_thread, 0).await.unwrap(), Some(receipt));
        let reads = fake.reads();
        assert_eq!(
            (reads[0].method.as_str(), reads[0].param("ts"), reads[0].param("oldest")),
            ("conversations.replies", Some("1712345678.000100"), Some("0.000000"))
        );

        let dm = part(&target(&slack, "user:U0123ABCD", None), "row-d", 0, 1, "psst");
        assert_eq!(slack.find(&dm, 0).await.unwrap(), None, "not sent yet");
        let receipt = slack.send(&dm).await.unwrap();
        assert_eq!(slack.find(&dm, 0).await.unwrap(), Some(receipt));
        let reads = fake.reads();
        assert_eq!(
            (reads[1].method.as_str(), reads[1].param("users"), reads[2].param("channel")),
            ("conversations.open", Some("U0123ABCD"), Some("D0123ABCD"))
        );
    }

    #[tokio::test]
    async fn find_without_the_history_scope_is_a_permanent_error() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        fake.refuse_reads(Some("missing_scope"));
        let p = part(&target(&slack, "channel:C0123ABCD", None), "row-1", 0, 1, "hi");
        let e = slack.find(&p, 0).await.unwrap_err();
        assert!(matches!(e, SendError::Permanent { class: PermanentClass::Auth, .. }), "{e:?}");
        assert!(e.to_string().contains("missing_scope"), "{e}");
    }

    #[tokio::test]
    async fn long_messages_go_out_as_ordered_parts() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        let text = (0..600).map(|i| format!("item {i}")).collect::<Vec<_>>().join("\n");
        let parts = slack.chunk(&text);
        assert!(parts.len() >= 2 && parts.iter().all(|p| p.chars().count() <= 4000));
        let to = target(&slack, "C0123ABCD", None);
        for (i, text) in parts.iter().enumerate() {
            slack.send(&part(&to, "row-long", i as u32, parts.len() as u32, text)).await.unwrap();
        }
        let sent: Vec<String> = fake.messages().into_iter().map(|m| m.text).collect();
        assert_eq!(sent, parts);
        assert_eq!(sent.join("\n"), text);
    }

    #[tokio::test]
    async fn ok_false_codes_are_classified() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        let to = target(&slack, "C0123ABCD", None);
        let mut table = String::new();
        for code in [
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "account_inactive",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "user_not_found",
            "msg_too_long",
            "no_text",
            "ratelimited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
            "something_new",
        ] {
            fake.push_fault(Fault::Error(code.into()));
            table.push_str(&format!("{code} => {}\n", class(slack.send(&part(&to, "row-e", 0, 1, "hi")).await)));
        }
        expect![[r#"
            invalid_auth => auth
            not_authed => auth
            token_revoked => auth
            account_inactive => auth
            channel_not_found => target
            not_in_channel => target
            is_archived => target
            user_not_found => target
            msg_too_long => payload
            no_text => payload
            ratelimited => rate-limited
            internal_error => ambiguous
            fatal_error => ambiguous
            service_unavailable => ambiguous
            request_timeout => not-sent
            something_new => payload
        "#]]
        .assert_eq(&table);
        assert!(fake.messages().is_empty());
    }

    #[tokio::test]
    async fn http_failures_are_classified() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        let to = target(&slack, "C0123ABCD", None);
        fake.push_fault(Fault::RateLimited { retry_after: Duration::from_secs(3) });
        match slack.send(&part(&to, "row-h", 0, 1, "hi")).await {
            Err(SendError::NotSent { rate_limited: true, retry_after_ms: Some(3000), .. }) => {}
            other => panic!("{other:?}"),
        }
        for fault in [Fault::ServerError(503), Fault::AcceptThenServerError(500), Fault::AcceptThenHang, Fault::Reset] {
            fake.push_fault(fault.clone());
            assert_eq!(class(slack.send(&part(&to, "row-h", 0, 1, "hi")).await), "ambiguous", "{fault:?}");
        }
        assert!(!slack.safe_to_retry_ambiguous(0, 1));
        fake.push_fault(Fault::Delay(Duration::from_millis(50)));
        assert_eq!(class(slack.send(&part(&to, "row-h", 0, 1, "slow")).await), "sent");
    }

    #[tokio::test]
    async fn bad_tokens_are_auth_errors() {
        let fake = FakeSlack::start().await;
        let slack = adapter_with_token(&fake, "xoxb-wrong");
        let result = slack.send(&part(&target(&slack, "C0123ABCD", None), "row-a", 0, 1, "hi")).await;
        expect!["auth error: slack refused the message: invalid_auth; check channels.slack.botToken and its scopes"]
            .assert_eq(&result.unwrap_err().to_string());
        let check = slack.check().await.unwrap_err();
        assert!(matches!(check, SendError::Permanent { class: PermanentClass::Auth, .. }), "{check:?}");
    }

    #[tokio::test]
    async fn check_names_missing_history_scopes() {
        let fake = FakeSlack::start().await;
        let slack = adapter(&fake);
        fake.set_scopes("chat:write,channels:history");
        expect!["pincer-fake (Fake Team); without groups:history, im:history an ambiguous send there cannot be looked up and is reported unknown"]
            .assert_eq(&slack.check().await.unwrap());
        fake.set_scopes("chat:write,channels:history,groups:history,im:history,im:write");
        assert_eq!(slack.check().await.unwrap(), "pincer-fake (Fake Team)");
    }
}
