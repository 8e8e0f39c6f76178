//! Discord over REST v10: `POST /channels/{id}/messages` with a per-part `nonce` and
//! `enforce_nonce`, so a retry inside Discord's deduplication window returns the original message
//! instead of posting twice. `user:` targets open (and cache) a DM channel first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pincer_core::config::DiscordConfig;
use serde_json::json;

use super::registry::{BuildContext, Built, Capabilities, ChannelSpec, Inbound};
use super::{
    BoxFuture, BuildError, Channel, MessageAction, Part, PermanentClass, Receipt, Reply, SendError, Target, TargetError,
};
use crate::chunk::chunk_text;

/// Discord in the channel registry.
pub static SPEC: ChannelSpec = ChannelSpec {
    name: "discord",
    label: "Discord",
    chat: true,
    // Discord allows 50 requests per second per bot.
    default_rate: 40.0,
    target_prefixes: &["discord"],
    capabilities: Capabilities {
        to: "`channel:<id>`, `user:<id>` (DM opened once, cached), `<@id>`, bare id = channel",
        thread: "a thread id: posts to `channels/<thread>`",
        part_limit: "2000 chars and 17 lines",
        rendering: "Markdown as is, mentions never ping",
        idempotency: "`nonce` + `enforce_nonce`",
        ambiguous_retried: "within 2 minutes of dispatch",
        other_recovery: "—",
        check: "`GET /users/@me`",
    },
    minimal_config: r#"{ channels: { discord: { token: "pincer-test", apiBaseUrl: "http://127.0.0.1:9" } } }"#,
    build,
    doctor: super::registry::check_credentials,
    inbound: Inbound::Socket,
};

fn build(cx: &BuildContext<'_>) -> Built {
    let config = cx.config.channels.discord.as_ref()?;
    Some(Discord::new(config, cx.timeout(SPEC.name)).map(|c| Arc::new(c) as Arc<dyn Channel>))
}

/// Sends parts to Discord channels, threads and DMs as a bot.
pub struct Discord {
    http: reqwest::Client,
    base: String,
    auth: String,
    /// user id → DM channel id; opening a DM is idempotent, so a lost cache only costs a request.
    dm_channels: Mutex<HashMap<String, String>>,
}

impl Discord {
    /// Characters per message (Discord's hard limit).
    pub const MAX_CHARS: usize = 2000;
    /// Lines per message, so tall messages are not clipped by the client (OpenClaw's default).
    pub const MAX_LINES: usize = 17;
    /// How long after dispatch a nonce is trusted to deduplicate ("a few minutes", conservatively).
    pub const NONCE_WINDOW_MS: i64 = 120_000;

    /// Builds the adapter; `timeout` bounds each HTTP request.
    pub fn new(config: &DiscordConfig, timeout: Duration) -> Result<Self, BuildError> {
        super::non_empty("channels.discord.token", &config.token)?;
        let base = super::base_url("channels.discord.apiBaseUrl", &config.api_base_url)?;
        let user_agent =
            format!("DiscordBot (https://github.com/pincer-gateway/pincer, {})", env!("CARGO_PKG_VERSION"));
        let http = super::build("discord", super::client_builder(&user_agent, timeout))?;
        let token = config.token.trim();
        let auth = if token.starts_with("Bot ") { token.to_string() } else { format!("Bot {token}") };
        Ok(Discord { http, base, auth, dm_channels: Mutex::new(HashMap::new()) })
    }

    async fn send_part(&self, part: &Part) -> Result<Receipt, SendError> {
        super::expect_channel("discord", part)?;
        if part.nonce.is_empty() || part.nonce.chars().count() > 25 {
            return Err(SendError::permanent(PermanentClass::Config, "discord nonces must be 1 to 25 characters"));
        }
        let chars = part.text.chars().count();
        if part.text.trim().is_empty() || chars > Self::MAX_CHARS {
            return Err(SendError::permanent(
                PermanentClass::Payload,
                format!("a Discord message needs 1 to {} characters, this part has {chars}", Self::MAX_CHARS),
            ));
        }
        let channel_id = self.channel_of(&part.target).await?;
        let mut body = json!({
            "content": part.text,
            "nonce": part.nonce,
            "enforce_nonce": true,
            "allowed_mentions": { "parse": [] },
        });
        // A reply quotes the message it answers; a deleted original does not fail the send.
        if let Some(id) = part.reply_to.as_deref().filter(|id| is_snowflake(id)) {
            body["message_reference"] = json!({ "message_id": id, "fail_if_not_exists": false });
        }
        let request = self
            .http
            .post(format!("{}/channels/{channel_id}/messages", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .json(&body);
        let reply = super::execute("discord", request).await?;
        if !reply.status.is_success() {
            return Err(classify(&reply));
        }
        match reply.json()["id"].as_str() {
            Some(id) if !id.is_empty() => Ok(Receipt { message_id: id.to_string() }),
            _ => Err(SendError::ambiguous(format!(
                "discord answered HTTP {} without a message id: {}",
                reply.status,
                reply.snippet()
            ))),
        }
    }

    /// The DM channel with `user`, opened on first use.
    async fn dm_channel(&self, user: &str) -> Result<String, SendError> {
        if let Some(id) = self.dm_channels.lock().unwrap().get(user) {
            return Ok(id.clone());
        }
        let request = self
            .http
            .post(format!("{}/users/@me/channels", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .json(&json!({ "recipient_id": user }));
        // Nothing was posted yet, so a DM open with an unknown outcome leaves the part unsent.
        let to_not_sent = |e: SendError| match e {
            SendError::Ambiguous { message } => SendError::not_sent(format!("opening the DM failed: {message}")),
            other => other,
        };
        let reply = super::execute("discord", request).await.map_err(to_not_sent)?;
        if !reply.status.is_success() {
            return Err(to_not_sent(classify(&reply)));
        }
        let Some(id) = reply.json()["id"].as_str().map(str::to_string) else {
            return Err(SendError::not_sent(format!("discord opened a DM without a channel id: {}", reply.snippet())));
        };
        self.dm_channels.lock().unwrap().insert(user.to_string(), id.clone());
        Ok(id)
    }

    /// The channel a target posts into: its thread, its channel, or the user's DM channel.
    async fn channel_of(&self, target: &Target) -> Result<String, SendError> {
        Ok(match (&target.thread, Destination::parse(&target.to)) {
            (Some(thread), _) => thread.clone(),
            (None, Some(Destination::Channel(id))) => id.to_string(),
            (None, Some(Destination::User(user))) => self.dm_channel(user).await?,
            (None, None) => {
                return Err(SendError::permanent(
                    PermanentClass::Target,
                    format!("`{}` is not a Discord target", target.to),
                ));
            }
        })
    }

    /// Reacts to (`PUT|DELETE …/reactions/{emoji}/@me`), edits (`PATCH`) or deletes (`DELETE`) the
    /// message `message_id` in the target's channel (its thread, or the user's DM channel).
    async fn act_on(&self, target: &Target, message_id: &str, action: &MessageAction) -> Result<(), SendError> {
        if !is_snowflake(message_id) {
            return Err(SendError::permanent(
                PermanentClass::Payload,
                format!("`{message_id}` is not a Discord message id (a number like 123456789012345678)"),
            ));
        }
        let channel_id = self.channel_of(target).await?;
        let message = format!("{}/channels/{channel_id}/messages/{message_id}", self.base);
        let request = match action {
            MessageAction::React { emoji, remove } => {
                let url = format!("{message}/reactions/{}/@me", urlencoding_emoji(emoji));
                if *remove { self.http.delete(url) } else { self.http.put(url) }
            }
            MessageAction::Edit { text } => {
                let chars = text.chars().count();
                if text.trim().is_empty() || chars > Self::MAX_CHARS {
                    return Err(SendError::permanent(
                        PermanentClass::Payload,
                        format!("a Discord message needs 1 to {} characters, the edit has {chars}", Self::MAX_CHARS),
                    ));
                }
                self.http.patch(message).json(&json!({ "content": text, "allowed_mentions": { "parse": [] } }))
            }
            MessageAction::Delete => self.http.delete(message),
        };
        let reply = super::execute("discord", request.header(reqwest::header::AUTHORIZATION, &self.auth)).await?;
        if !reply.status.is_success() {
            return Err(classify(&reply));
        }
        Ok(())
    }

    async fn whoami(&self) -> Result<String, SendError> {
        let request =
            self.http.get(format!("{}/users/@me", self.base)).header(reqwest::header::AUTHORIZATION, &self.auth);
        let reply = super::execute("discord", request).await?;
        if !reply.status.is_success() {
            return Err(classify(&reply));
        }
        match reply.json()["username"].as_str() {
            Some(name) => Ok(name.to_string()),
            None => Err(SendError::ambiguous(format!("discord sent no username: {}", reply.snippet()))),
        }
    }
}

/// A normalised Discord `to`.
enum Destination<'a> {
    Channel(&'a str),
    User(&'a str),
}

impl<'a> Destination<'a> {
    fn parse(to: &'a str) -> Option<Self> {
        if let Some(id) = to.strip_prefix("channel:") {
            return is_snowflake(id).then_some(Destination::Channel(id));
        }
        let id = to.strip_prefix("user:")?;
        is_snowflake(id).then_some(Destination::User(id))
    }
}

fn is_snowflake(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) && id.parse::<u64>().is_ok_and(|n| n > 0)
}

/// An emoji as a path segment: a Unicode emoji percent-encoded, a custom one (`name:id`) as is.
fn urlencoding_emoji(emoji: &str) -> String {
    let mut out = String::new();
    for b in emoji.trim().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Classifies a non-2xx Discord answer.
fn classify(reply: &Reply) -> SendError {
    let json = reply.json();
    let code = json["code"].as_u64().filter(|c| *c != 0);
    let text = json["message"].as_str().map(str::to_string).unwrap_or_else(|| reply.snippet());
    let status = reply.status;
    let detail = match code {
        Some(code) => format!("discord answered HTTP {} (code {code}): {}", status.as_u16(), super::clip(&text)),
        None => format!("discord answered HTTP {}: {}", status.as_u16(), super::clip(&text)),
    };
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let retry_after = json["retry_after"]
            .as_f64()
            .and_then(super::seconds_to_ms)
            .or_else(|| super::retry_after_header(&reply.headers));
        return SendError::rate_limited(detail, retry_after);
    }
    match (status.as_u16(), code) {
        (401, _) => SendError::permanent(PermanentClass::Auth, format!("{detail}; check channels.discord.token")),
        (_, Some(10003 | 10013 | 50001 | 50013 | 50007)) | (403 | 404, _) => SendError::permanent(
            PermanentClass::Target,
            format!("{detail}; check the target id and that the bot can see and post there"),
        ),
        (408, _) | (500.., _) => SendError::ambiguous(detail),
        (300..=399, _) => SendError::permanent(
            PermanentClass::Config,
            format!("{detail}; redirects are not followed, check channels.discord.apiBaseUrl"),
        ),
        (400..=499, _) => SendError::permanent(PermanentClass::Payload, detail),
        _ => SendError::ambiguous(detail),
    }
}

impl Channel for Discord {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn parse_target(&self, to: &str, thread_id: Option<&str>) -> Result<Target, TargetError> {
        let err = |reason: String| TargetError::new("discord", reason);
        let to = to.trim();
        super::refuse_prefix("discord", to, SPEC.target_prefixes)?;
        let (kind, id) = if let Some(id) = to.strip_prefix("channel:") {
            ("channel", id)
        } else if let Some(id) = to.strip_prefix("user:") {
            ("user", id)
        } else if let Some(id) = to.strip_prefix("<@").and_then(|rest| rest.strip_suffix('>')) {
            ("user", id.strip_prefix('!').unwrap_or(id))
        } else if to.bytes().all(|b| b.is_ascii_digit()) {
            ("channel", to)
        } else {
            return Err(err(format!("`{to}` is not `channel:<id>`, `user:<id>`, `<@id>` or a numeric channel id")));
        };
        if !is_snowflake(id) {
            return Err(err(format!("`{id}` is not a Discord id (a number like 123456789012345678)")));
        }
        let thread = match thread_id.map(str::trim) {
            None | Some("") => None,
            Some(_) if kind == "user" => {
                return Err(err("DMs have no threads; target the thread as `channel:<id>`".into()));
            }
            Some(thread) if is_snowflake(thread) => Some(thread.to_string()),
            Some(thread) => return Err(err(format!("thread `{thread}` is not a Discord id"))),
        };
        Ok(Target { channel: "discord".into(), to: format!("{kind}:{id}"), thread })
    }

    fn max_part_chars(&self) -> usize {
        Self::MAX_CHARS
    }

    fn chunk(&self, text: &str) -> Vec<String> {
        chunk_text(text, Self::MAX_CHARS, Self::MAX_LINES)
    }

    fn send<'a>(&'a self, part: &'a Part) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.send_part(part))
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(self.whoami())
    }

    fn safe_to_retry_ambiguous(&self, dispatched_at_ms: i64, now_ms: i64) -> bool {
        // A clock that went backwards says nothing about the window: do not gamble.
        (0..Self::NONCE_WINDOW_MS).contains(&now_ms.saturating_sub(dispatched_at_ms))
    }

    fn act<'a>(
        &'a self,
        target: &'a Target,
        message_id: &'a str,
        action: &'a MessageAction,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.act_on(target, message_id, action))
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use pincer_testkit::fakes::discord::{FakeDiscord, Fault};

    use super::*;
    use crate::channel::test_support::{TIMEOUT, parse_table, part, target};

    fn adapter(fake: &FakeDiscord) -> Discord {
        adapter_with_token(fake, FakeDiscord::TOKEN)
    }

    fn adapter_with_token(fake: &FakeDiscord, token: &str) -> Discord {
        Discord::new(
            &DiscordConfig { token: token.into(), api_base_url: fake.base_url(), ..DiscordConfig::default() },
            TIMEOUT,
        )
        .unwrap()
    }

    /// `react`, `edit` and `delete` on a message the bot posted, in a channel and in a DM; an
    /// unknown message is a permanent error naming Discord's answer.
    #[tokio::test]
    async fn reacts_edits_and_deletes_posted_messages() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let to = target(&discord, "channel:123456789012345678", None);
        let id = discord.send(&part(&to, "row-1", 0, 1, "hello")).await.unwrap().message_id;
        discord.act(&to, &id, &MessageAction::React { emoji: "👍".into(), remove: false }).await.unwrap();
        discord.act(&to, &id, &MessageAction::React { emoji: "party:112233".into(), remove: true }).await.unwrap();
        discord.act(&to, &id, &MessageAction::Edit { text: "hello again".into() }).await.unwrap();
        assert_eq!(fake.messages()[0].content, "hello again");
        discord.act(&to, &id, &MessageAction::Delete).await.unwrap();
        assert_eq!(fake.deleted(), std::slice::from_ref(&id));
        let reactions: Vec<(String, bool)> = fake.reactions().into_iter().map(|r| (r.emoji, r.removed)).collect();
        assert_eq!(reactions, [("👍".to_string(), false), ("party:112233".to_string(), true)]);
        let gone = discord.act(&to, &id, &MessageAction::Edit { text: "x".into() }).await.unwrap_err();
        assert!(matches!(gone, SendError::Permanent { .. }) && gone.message().contains("Unknown Message"), "{gone}");
        let bad = discord.act(&to, "yesterday", &MessageAction::Delete).await.unwrap_err();
        assert!(bad.message().contains("not a Discord message id"), "{bad}");

        let dm = target(&discord, "user:223456789012345678", None);
        let id = discord.send(&part(&dm, "row-2", 0, 1, "psst")).await.unwrap().message_id;
        discord.act(&dm, &id, &MessageAction::React { emoji: "✅".into(), remove: false }).await.unwrap();
        assert_eq!(fake.reactions().last().unwrap().message_id, id);
    }

    fn offline() -> Discord {
        let config = DiscordConfig {
            token: "t".into(),
            api_base_url: "http://127.0.0.1:9/api".into(),
            ..DiscordConfig::default()
        };
        Discord::new(&config, TIMEOUT).unwrap()
    }

    #[test]
    fn parses_targets() {
        let table = parse_table(
            &offline(),
            &[
                ("channel:123456789012345678", None),
                ("123456789012345678", None),
                (" user:42 ", None),
                ("<@42>", None),
                ("<@!42>", None),
                ("channel:1", Some("99")),
                ("user:42", Some("99")),
                ("channel:1", Some("abc")),
                ("channel:abc", None),
                ("user:", None),
                ("channel:0", None),
                ("#general", None),
                ("discord:channel:1", None),
                ("123456789012345678901", None),
                ("", None),
            ],
        );
        expect![[r##"
            "channel:123456789012345678" => to=channel:123456789012345678 thread=-
            "123456789012345678" => to=channel:123456789012345678 thread=-
            " user:42 " => to=user:42 thread=-
            "<@42>" => to=user:42 thread=-
            "<@!42>" => to=user:42 thread=-
            "channel:1" (thread 99) => to=channel:1 thread=99
            "user:42" (thread 99) => error: invalid discord target: DMs have no threads; target the thread as `channel:<id>`
            "channel:1" (thread abc) => error: invalid discord target: thread `abc` is not a Discord id
            "channel:abc" => error: invalid discord target: `abc` is not a Discord id (a number like 123456789012345678)
            "user:" => error: invalid discord target: `` is not a Discord id (a number like 123456789012345678)
            "channel:0" => error: invalid discord target: `0` is not a Discord id (a number like 123456789012345678)
            "#general" => error: invalid discord target: `#general` is not `channel:<id>`, `user:<id>`, `<@id>` or a numeric channel id
            "discord:channel:1" => error: invalid discord target: drop the `discord:` prefix from `discord:channel:1`: the channel is chosen separately
            "123456789012345678901" => error: invalid discord target: `123456789012345678901` is not a Discord id (a number like 123456789012345678)
            "" => error: invalid discord target: `` is not a Discord id (a number like 123456789012345678)
        "##]]
        .assert_eq(&table);
    }

    #[tokio::test]
    async fn sends_with_nonce_and_no_mentions() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let to = target(&discord, "channel:111", None);
        let receipt = discord.send(&part(&to, "row-1", 0, 1, "hello @everyone")).await.unwrap();
        let messages = fake.messages();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(receipt.message_id, message.id);
        assert_eq!((message.channel_id.as_str(), message.content.as_str()), ("111", "hello @everyone"));
        assert_eq!(message.nonce.as_deref(), Some(Part::derive_nonce("row-1", 0).as_str()));
        assert!(message.enforce_nonce);
        assert_eq!(message.allowed_mentions, Some(json!({ "parse": [] })));
        assert!(message.user_agent.as_deref().unwrap().starts_with("DiscordBot (https://"), "{message:?}");
        assert_eq!(discord.check().await.unwrap(), FakeDiscord::BOT_NAME);
    }

    #[tokio::test]
    async fn long_messages_go_out_as_ordered_parts() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let text: String = (1..=40).map(|i| format!("line {i}\n")).collect::<String>() + &"word ".repeat(500);
        let parts = discord.chunk(&text);
        assert!(parts.len() >= 3, "{parts:?}");
        assert!(parts.iter().all(|p| p.chars().count() <= 2000 && p.lines().count() <= 17));
        let to = target(&discord, "222", None);
        let total = parts.len() as u32;
        for (i, text) in parts.iter().enumerate() {
            discord.send(&part(&to, "row-long", i as u32, total, text)).await.unwrap();
        }
        let contents: Vec<String> = fake.messages().into_iter().map(|m| m.content).collect();
        assert_eq!(contents, parts);
        fake.assert_no_duplicate_nonces();
    }

    #[tokio::test]
    async fn user_targets_open_a_dm_once() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let to = target(&discord, "user:4242", None);
        discord.send(&part(&to, "row-dm", 0, 2, "one")).await.unwrap();
        discord.send(&part(&to, "row-dm", 1, 2, "two")).await.unwrap();
        let dm = fake.dm_channel("4242").expect("a DM was opened");
        assert_eq!(fake.dm_opens(), 1);
        assert!(fake.messages().iter().all(|m| m.channel_id == dm));
    }

    #[tokio::test]
    async fn threads_are_posted_to_as_channels() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let to = target(&discord, "channel:100", Some("200"));
        discord.send(&part(&to, "row-t", 0, 1, "in thread")).await.unwrap();
        assert_eq!(fake.messages()[0].channel_id, "200");
    }

    #[tokio::test]
    async fn rate_limits_are_not_sent_with_the_advertised_delay() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        fake.push_fault(Fault::RateLimited { retry_after: Duration::from_millis(1500), global: false });
        let p = part(&target(&discord, "1", None), "row-429", 0, 1, "hi");
        match discord.send(&p).await {
            Err(SendError::NotSent { rate_limited: true, retry_after_ms: Some(1500), .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(fake.messages().is_empty());
        discord.send(&p).await.unwrap();
        assert_eq!(fake.messages().len(), 1);
    }

    #[tokio::test]
    async fn server_errors_resets_and_timeouts_are_ambiguous() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let to = target(&discord, "1", None);
        for fault in [Fault::ServerError(502), Fault::Reset, Fault::Hang] {
            fake.push_fault(fault.clone());
            let result = discord.send(&part(&to, "row-x", 0, 1, "hi")).await;
            assert!(matches!(result, Err(SendError::Ambiguous { .. })), "{fault:?}: {result:?}");
        }
        assert!(fake.messages().is_empty());
    }

    #[tokio::test]
    async fn retrying_an_ambiguous_send_returns_the_original_message() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let to = target(&discord, "1", None);
        let faults = [
            ("row-hang", Fault::AcceptThenHang),
            ("row-500", Fault::AcceptThenServerError(500)),
            ("row-reset", Fault::AcceptThenReset),
        ];
        for (row, fault) in faults {
            fake.push_fault(fault.clone());
            let p = part(&to, row, 0, 1, row);
            let first = discord.send(&p).await;
            assert!(matches!(first, Err(SendError::Ambiguous { .. })), "{fault:?}: {first:?}");
            assert!(discord.safe_to_retry_ambiguous(0, 60_000));
            let receipt = discord.send(&p).await.unwrap();
            let accepted: Vec<_> = fake.messages().into_iter().filter(|m| m.content == row).collect();
            assert_eq!(accepted.len(), 1, "{fault:?}");
            assert_eq!(receipt.message_id, accepted[0].id);
        }
        assert_eq!(fake.deduplicated(), 3);
        fake.assert_no_duplicate_nonces();
    }

    #[tokio::test]
    async fn fake_accepts_a_nonce_again_after_its_window() {
        // Guards the guard: without deduplication the fake must show the duplicate.
        let fake = FakeDiscord::start().await;
        fake.set_nonce_window(Duration::ZERO);
        let discord = adapter(&fake);
        let p = part(&target(&discord, "1", None), "row-dup", 0, 1, "twice");
        discord.send(&p).await.unwrap();
        discord.send(&p).await.unwrap();
        assert_eq!(fake.duplicate_nonces(), vec![p.nonce.clone()]);
    }

    #[tokio::test]
    async fn permanent_errors_are_classified() {
        let fake = FakeDiscord::start().await;
        let discord = adapter(&fake);
        let to = target(&discord, "1", None);
        let cases = [
            (Fault::unauthorized(), PermanentClass::Auth),
            (Fault::unknown_channel(), PermanentClass::Target),
            (Fault::missing_access(), PermanentClass::Target),
            (Fault::missing_permissions(), PermanentClass::Target),
            (Fault::cannot_dm(), PermanentClass::Target),
            (Fault::invalid_form_body(), PermanentClass::Payload),
        ];
        for (fault, class) in cases {
            fake.push_fault(fault.clone());
            match discord.send(&part(&to, "row-p", 0, 1, "hi")).await {
                Err(SendError::Permanent { class: got, .. }) if got == class => {}
                other => panic!("{fault:?}: {other:?}"),
            }
        }
        let error = discord.send(&part(&to, "row-p", 0, 1, &"x".repeat(2001))).await.unwrap_err();
        expect!["payload error: a Discord message needs 1 to 2000 characters, this part has 2001"]
            .assert_eq(&error.to_string());
        assert_eq!(fake.requests(), 6, "the oversized part must not reach Discord");
    }

    #[tokio::test]
    async fn bad_tokens_are_auth_errors() {
        let fake = FakeDiscord::start().await;
        let discord = adapter_with_token(&fake, "wrong");
        let error = discord.send(&part(&target(&discord, "1", None), "row-a", 0, 1, "hi")).await.unwrap_err();
        expect!["auth error: discord answered HTTP 401: 401: Unauthorized; check channels.discord.token"]
            .assert_eq(&error.to_string());
        let error = discord.check().await.unwrap_err();
        assert!(matches!(error, SendError::Permanent { class: PermanentClass::Auth, .. }), "{error:?}");
        let dm = discord.send(&part(&target(&discord, "user:5", None), "row-a", 0, 1, "hi")).await.unwrap_err();
        assert!(matches!(dm, SendError::Permanent { class: PermanentClass::Auth, .. }), "{dm:?}");
    }

    #[tokio::test]
    async fn unreachable_servers_are_not_sent() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let config = DiscordConfig {
            token: "t".into(),
            api_base_url: format!("http://127.0.0.1:{port}/api"),
            ..DiscordConfig::default()
        };
        let discord = Discord::new(&config, TIMEOUT).unwrap();
        let result = discord.send(&part(&target(&discord, "1", None), "row-c", 0, 1, "hi")).await;
        assert!(matches!(result, Err(SendError::NotSent { rate_limited: false, .. })), "{result:?}");
    }

    #[test]
    fn nonce_window_is_conservative() {
        let discord = offline();
        assert!(discord.safe_to_retry_ambiguous(1_000, 1_000));
        assert!(discord.safe_to_retry_ambiguous(1_000, 120_999));
        assert!(!discord.safe_to_retry_ambiguous(1_000, 121_000));
        assert!(!discord.safe_to_retry_ambiguous(1_000, 999), "a clock that went backwards");
        assert!(!discord.safe_to_retry_ambiguous(i64::MIN, i64::MAX));
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = |token: &str, base: &str| {
            let config = DiscordConfig { token: token.into(), api_base_url: base.into(), ..DiscordConfig::default() };
            Discord::new(&config, TIMEOUT).err().map(|e| e.to_string()).unwrap_or_default()
        };
        expect!["channels.discord.token is empty: set it in pincer.json"].assert_eq(&bad(" ", "https://x"));
        expect!["channels.discord.apiBaseUrl is not a URL (relative URL without a base): fix it in pincer.json"]
            .assert_eq(&bad("t", "discord.com"));
    }
}
