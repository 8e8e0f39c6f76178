//! Who may talk to the bot: OpenClaw's `dmPolicy` / `allowFrom` / `groupPolicy` /
//! `groupAllowFrom` / `groups` / `requireMention`, decided by one pure function over a parsed
//! message, the channel's config and whether the owner approved the sender (pairing).

use pincer_core::config::{ChannelsConfig, DiscordConfig, DmPolicy, GroupPolicy, SlackConfig, TelegramConfig};

/// Who sent a message and where, as the access check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender<'a> {
    pub id: &'a str,
    /// Username without `@`.
    pub username: Option<&'a str>,
    /// The group chat's id; `None` in a DM.
    pub group: Option<&'a str>,
    /// The bot was @mentioned, or the message replies to one of the bot's.
    pub addressed: bool,
}

/// What happens to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It reaches the agent.
    Answer,
    /// An unknown sender under `dmPolicy: pairing`: they get a pairing code, the model nothing.
    Pair,
    /// Dropped, with the reason (for the audit log).
    Deny(&'static str),
    /// A group message not addressed to the bot (`requireMention`): not a decision about the
    /// sender, so not audited.
    NotAddressed,
}

impl Decision {
    /// The audit action of this decision, if it is one.
    pub fn audit_action(self) -> Option<&'static str> {
        match self {
            Decision::Answer => Some("channel.message.allowed"),
            Decision::Pair => Some("channel.pairing.requested"),
            Decision::Deny(_) => Some("channel.message.denied"),
            Decision::NotAddressed => None,
        }
    }
}

/// Whether `list` names the sender: `*`, the id, or the username (with or without `@`, any case).
pub fn listed(list: &[String], sender: &Sender<'_>) -> bool {
    list.iter().any(|entry| {
        let entry = entry.trim();
        entry == "*"
            || entry == sender.id
            || sender.username.is_some_and(|u| entry.trim_start_matches('@').eq_ignore_ascii_case(u))
    })
}

/// Whether `sender` is the channel's owner, as OpenClaw's `senderIsOwner` decides it when
/// `commands.ownerAllowFrom` is not set (`src/auto-reply/command-auth.ts`): the channel's
/// `allowFrom` names them by id or username. `*` names no one, and a sender let in by pairing
/// or by a group's lists is not the owner. Only the owner's turns get the owner-only tools.
pub fn is_owner(channels: &ChannelsConfig, channel: &str, sender: &Sender<'_>) -> bool {
    listed(&owners(channels, channel), sender)
}

/// The entries of `channel`'s `allowFrom` that name an owner (every one but `*`). Empty: no
/// chat sender on that channel is the owner, so none gets the owner-only tools (`doctor` says so).
pub fn owners(channels: &ChannelsConfig, channel: &str) -> Vec<String> {
    let allow_from = match channel {
        "telegram" => channels.telegram.as_ref().map(|c| &c.allow_from),
        "discord" => channels.discord.as_ref().map(|c| &c.allow_from),
        "slack" => channels.slack.as_ref().map(|c| &c.allow_from),
        _ => None,
    };
    allow_from.into_iter().flatten().filter(|entry| !entry.trim().is_empty() && entry.trim() != "*").cloned().collect()
}

/// How a sender is named in `channel`'s `allowFrom`, for a fix to show: an example entry and
/// where to find one's own.
pub fn owner_id_example(channel: &str) -> (&'static str, &'static str) {
    match channel {
        "telegram" => ("123456789", "your numeric Telegram user id (or @username)"),
        "discord" => {
            ("123456789012345678", "your Discord user id (Developer Mode: right-click your name, Copy User ID)")
        }
        "slack" => ("U0123ABCDEF", "your Slack member id (profile, ⋮, Copy member ID)"),
        _ => ("<sender id>", "your sender id"),
    }
}

/// One channel's access rules for one message, whatever the platform calls them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy<'a> {
    pub dm_policy: DmPolicy,
    pub allow_from: &'a [String],
    pub group_policy: GroupPolicy,
    /// Whether the group chat (Telegram group, Discord guild) has an entry in the config.
    pub group_listed: bool,
    /// The reason when it has none, under `groupPolicy: allowlist`.
    pub not_listed: &'static str,
    /// A refusal of the group's room itself (a Discord channel missing from a guild's `channels`).
    pub room_refused: Option<&'static str>,
    /// Who may talk in the group; empty: every member.
    pub group_senders: &'a [String],
    /// The reason when the sender is not in `group_senders`.
    pub not_a_member: &'static str,
    /// Where roles are listed (Discord): whether the sender holds one. A sender in
    /// `group_senders` OR holding a listed role is allowed; `None`: no roles listed.
    pub role_listed: Option<bool>,
    /// Answer in the group only when addressed.
    pub require_mention: bool,
}

impl<'a> Policy<'a> {
    /// Telegram's rules for a message in `group` (`None`: a DM).
    pub fn telegram(config: &'a TelegramConfig, group: Option<&str>) -> Policy<'a> {
        let entry = group.and_then(|g| config.groups.get(g).or_else(|| config.groups.get("*")));
        // The most specific non-empty sender list applies; none at all lets every member in.
        let group_senders = [entry.map(|g| &g.allow_from), Some(&config.group_allow_from), Some(&config.allow_from)]
            .into_iter()
            .flatten()
            .find(|list| !list.is_empty())
            .map_or(&[][..], |l| l.as_slice());
        Policy {
            dm_policy: config.dm_policy,
            allow_from: &config.allow_from,
            group_policy: config.group_policy,
            group_listed: entry.is_some(),
            not_listed: "the group is not in groups",
            room_refused: None,
            group_senders,
            not_a_member: "the sender is not in groupAllowFrom",
            role_listed: None,
            require_mention: entry.and_then(|g| g.require_mention).unwrap_or(config.require_mention),
        }
    }

    /// Discord's rules (OpenClaw's `guilds.<id>.{requireMention, users, channels}`) for a message
    /// in `channel` of `guild` (`None`: a DM). A guild's `channels` map, once it names a channel,
    /// is an allowlist (`*` keeps the rest open); a channel's settings override the guild's.
    /// `member_roles` are the sender's role ids (the dispatch's `member.roles`); a guild's or
    /// channel's `roles` lets their holders in beside its `users`. `parent` is a thread's parent
    /// channel: a thread without an entry of its own falls back to its parent's (allow or deny,
    /// `requireMention`, `users`, `roles`), then to `*`, as OpenClaw's
    /// `resolveDiscordChannelConfigWithFallback` does.
    pub fn discord(
        config: &'a DiscordConfig,
        guild: Option<&str>,
        channel: &str,
        parent: Option<&str>,
        member_roles: &[String],
    ) -> Policy<'a> {
        let entry = guild.and_then(|g| config.guilds.get(g).or_else(|| config.guilds.get("*")));
        let room = entry.map(|g| {
            g.channels.get(channel).or_else(|| parent.and_then(|p| g.channels.get(p))).or_else(|| g.channels.get("*"))
        });
        let room_refused = match (entry, room.flatten()) {
            (Some(g), None) if !g.channels.is_empty() => Some("the channel is not in the guild's channels"),
            (_, Some(r)) if !r.enabled => Some("the channel is disabled (enabled: false)"),
            _ => None,
        };
        let room = room.flatten();
        let group_senders = room
            .map(|r| &r.users)
            .filter(|u| !u.is_empty())
            .or(entry.map(|g| &g.users))
            .map_or(&[][..], |l| l.as_slice());
        let roles = room.map(|r| &r.roles).filter(|r| !r.is_empty()).or(entry.map(|g| &g.roles));
        let role_listed = roles.filter(|r| !r.is_empty()).map(|r| r.iter().any(|role| member_roles.contains(role)));
        Policy {
            dm_policy: config.dm_policy,
            allow_from: &config.allow_from,
            group_policy: config.group_policy,
            group_listed: entry.is_some(),
            not_listed: "the guild is not in guilds",
            role_listed,
            room_refused,
            group_senders,
            not_a_member: "the sender is not in the guild's users or roles",
            require_mention: room
                .and_then(|r| r.require_mention)
                .or(entry.and_then(|g| g.require_mention))
                .unwrap_or(true),
        }
    }
    /// Slack's rules (OpenClaw's `channels.<id>.{enabled, requireMention, users}`) for a message in
    /// `channel` (`None`: a DM). In a channel with no `users` list everyone in it may talk, not
    /// only the DM `allowFrom`; a mention is required unless the channel's entry says otherwise.
    pub fn slack(config: &'a SlackConfig, channel: Option<&str>) -> Policy<'a> {
        let entry = channel.and_then(|c| config.channels.get(c).or_else(|| config.channels.get("*")));
        Policy {
            dm_policy: config.dm_policy,
            allow_from: &config.allow_from,
            group_policy: config.group_policy,
            // A disabled entry is no entry under `allowlist`, and refused under `open`.
            group_listed: entry.is_some_and(|c| c.enabled),
            not_listed: "the group is not in groups",
            room_refused: entry.filter(|c| !c.enabled).map(|_| "the channel is disabled in channels"),
            group_senders: entry.map_or(&[][..], |c| c.users.as_slice()),
            not_a_member: "the sender is not in the channel's users",
            role_listed: None,
            require_mention: entry.and_then(|c| c.require_mention).unwrap_or(true),
        }
    }
}

/// Whether a guild's `channels` map could match `channel` only through a thread's parent: it names
/// some channel other than `*`, but not this one. Only then does Discord's inbound side look the
/// channel up (`GET /channels/{id}`) to learn its parent.
pub fn discord_needs_parent(config: &DiscordConfig, guild: &str, channel: &str) -> bool {
    let entry = config.guilds.get(guild).or_else(|| config.guilds.get("*"));
    entry.is_some_and(|g| !g.channels.contains_key(channel) && g.channels.keys().any(|k| k != "*"))
}

/// OpenClaw's `normalizeDiscordSlug`: lower case, no leading `#`, runs of other characters as `-`.
pub fn discord_slug(name: &str) -> String {
    let lower = name.trim().trim_start_matches('#').to_lowercase();
    let mut out = String::new();
    for c in lower.chars() {
        if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Decides a message in a Discord group DM (channel type 3), OpenClaw's `dm.groupEnabled` and
/// `dm.groupChannels`: ignored unless enabled; then answered where `groupChannels` is empty, has
/// `*`, or names the channel by id or name slug. Anyone in an allowed group DM may talk and no
/// mention is needed (the owner chose the group).
pub fn discord_group_dm(config: &DiscordConfig, channel: &str, name: Option<&str>) -> Decision {
    let dm = &config.dm;
    if !dm.group_enabled {
        return Decision::Deny("group DMs are disabled (dm.groupEnabled)");
    }
    let slug = name.map(discord_slug).filter(|s| !s.is_empty());
    let listed = dm.group_channels.is_empty()
        || dm.group_channels.iter().any(|e| {
            let e = e.trim();
            e == "*" || e == channel || slug.as_deref().is_some_and(|s| discord_slug(e) == s)
        });
    if listed { Decision::Answer } else { Decision::Deny("the group DM is not in dm.groupChannels") }
}

/// Decides a Telegram message; `approved` is whether the owner approved the sender by pairing.
pub fn decide(config: &TelegramConfig, sender: &Sender<'_>, approved: bool) -> Decision {
    decide_by(&Policy::telegram(config, sender.group), sender, approved)
}

/// Decides a message under `policy`; `approved` is whether the owner approved the sender.
pub fn decide_by(policy: &Policy<'_>, sender: &Sender<'_>, approved: bool) -> Decision {
    if sender.group.is_none() {
        return match policy.dm_policy {
            DmPolicy::Disabled => Decision::Deny("dmPolicy is disabled"),
            DmPolicy::Open => Decision::Answer,
            _ if approved || listed(policy.allow_from, sender) => Decision::Answer,
            DmPolicy::Allowlist => Decision::Deny("the sender is not in allowFrom"),
            DmPolicy::Pairing => Decision::Pair,
        };
    }
    match policy.group_policy {
        GroupPolicy::Disabled => return Decision::Deny("groupPolicy is disabled"),
        GroupPolicy::Allowlist if !policy.group_listed => return Decision::Deny(policy.not_listed),
        _ => {}
    }
    if let Some(why) = policy.room_refused {
        return Decision::Deny(why);
    }
    let restricted = !policy.group_senders.is_empty() || policy.role_listed.is_some();
    let member = listed(policy.group_senders, sender) || policy.role_listed == Some(true);
    if restricted && !member && !approved {
        return Decision::Deny(policy.not_a_member);
    }
    if policy.require_mention && !sender.addressed {
        return Decision::NotAddressed;
    }
    Decision::Answer
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn config(json: &str) -> TelegramConfig {
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["botToken"] = "t".into();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_owner_is_named_in_the_channels_allow_from_and_star_names_no_one() {
        let channels: ChannelsConfig = serde_json::from_value(serde_json::json!({
            "telegram": {"botToken": "t", "allowFrom": [1001, "@Alice", "*"]},
            "discord": {"token": "d", "allowFrom": ["42"]},
            "slack": {"botToken": "s", "allowFrom": ["*"]},
        }))
        .unwrap();
        let sender = |id, username| Sender { id, username, group: None, addressed: false };
        let mut out = String::new();
        for (channel, s) in [
            ("telegram", sender("1001", None)),
            ("telegram", sender("7", Some("alice"))),
            ("telegram", sender("2002", Some("bob"))),
            ("discord", sender("42", None)),
            ("discord", sender("1001", None)),
            ("slack", sender("U1", None)),
            ("webhook", sender("1001", None)),
        ] {
            out += &format!(
                "{channel:<8} {:<4} {:<6} {}\n",
                s.id,
                s.username.unwrap_or("-"),
                is_owner(&channels, channel, &s)
            );
        }
        expect![[r#"
            telegram 1001 -      true
            telegram 7    alice  true
            telegram 2002 bob    false
            discord  42   -      true
            discord  1001 -      false
            slack    U1   -      false
            webhook  1001 -      false
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn decisions_follow_openclaws_policies() {
        let configs = [
            ("defaults", "{}"),
            ("dm allowlist", r#"{"dmPolicy":"allowlist","allowFrom":[7,"@Bob"]}"#),
            ("dm open", r#"{"dmPolicy":"open"}"#),
            ("dm disabled", r#"{"dmPolicy":"disabled","allowFrom":["*"]}"#),
            ("group listed", r#"{"groups":{"-100":{}}}"#),
            ("group star, no mention", r#"{"groups":{"*":{"requireMention":false}}}"#),
            ("group open, members", r#"{"groupPolicy":"open","groupAllowFrom":[7]}"#),
            ("group disabled", r#"{"groupPolicy":"disabled","groups":{"*":{}}}"#),
        ];
        let senders = [
            ("dm 7", Sender { id: "7", username: Some("alice"), group: None, addressed: false }),
            ("dm bob", Sender { id: "8", username: Some("bob"), group: None, addressed: false }),
            ("group 7 @bot", Sender { id: "7", username: None, group: Some("-100"), addressed: true }),
            ("group 9 @bot", Sender { id: "9", username: None, group: Some("-100"), addressed: true }),
            ("group 7 chatter", Sender { id: "7", username: None, group: Some("-100"), addressed: false }),
        ];
        let mut out = String::new();
        for (name, json) in configs {
            let c = config(json);
            out.push_str(&format!("{name}:\n"));
            for (who, s) in &senders {
                out.push_str(&format!("  {who:<16} {:?} / approved {:?}\n", decide(&c, s, false), decide(&c, s, true)));
            }
        }
        expect![[r#"
            defaults:
              dm 7             Pair / approved Answer
              dm bob           Pair / approved Answer
              group 7 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 9 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 7 chatter  Deny("the group is not in groups") / approved Deny("the group is not in groups")
            dm allowlist:
              dm 7             Answer / approved Answer
              dm bob           Answer / approved Answer
              group 7 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 9 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 7 chatter  Deny("the group is not in groups") / approved Deny("the group is not in groups")
            dm open:
              dm 7             Answer / approved Answer
              dm bob           Answer / approved Answer
              group 7 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 9 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 7 chatter  Deny("the group is not in groups") / approved Deny("the group is not in groups")
            dm disabled:
              dm 7             Deny("dmPolicy is disabled") / approved Deny("dmPolicy is disabled")
              dm bob           Deny("dmPolicy is disabled") / approved Deny("dmPolicy is disabled")
              group 7 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 9 @bot     Deny("the group is not in groups") / approved Deny("the group is not in groups")
              group 7 chatter  Deny("the group is not in groups") / approved Deny("the group is not in groups")
            group listed:
              dm 7             Pair / approved Answer
              dm bob           Pair / approved Answer
              group 7 @bot     Answer / approved Answer
              group 9 @bot     Answer / approved Answer
              group 7 chatter  NotAddressed / approved NotAddressed
            group star, no mention:
              dm 7             Pair / approved Answer
              dm bob           Pair / approved Answer
              group 7 @bot     Answer / approved Answer
              group 9 @bot     Answer / approved Answer
              group 7 chatter  Answer / approved Answer
            group open, members:
              dm 7             Pair / approved Answer
              dm bob           Pair / approved Answer
              group 7 @bot     Answer / approved Answer
              group 9 @bot     Deny("the sender is not in groupAllowFrom") / approved Answer
              group 7 chatter  NotAddressed / approved NotAddressed
            group disabled:
              dm 7             Pair / approved Answer
              dm bob           Pair / approved Answer
              group 7 @bot     Deny("groupPolicy is disabled") / approved Deny("groupPolicy is disabled")
              group 9 @bot     Deny("groupPolicy is disabled") / approved Deny("groupPolicy is disabled")
              group 7 chatter  Deny("groupPolicy is disabled") / approved Deny("groupPolicy is disabled")
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn discord_guilds_follow_openclaws_shape() {
        let config = |json: &str| -> DiscordConfig {
            let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
            v["token"] = "t".into();
            serde_json::from_value(v).unwrap()
        };
        let c = config(
            r#"{"guilds":{"66":{"users":["7"],"channels":{"700":{"requireMention":false,"users":["*"]},"701":{"enabled":false},"*":{}}},"67":{"requireMention":false}}}"#,
        );
        let rows = [
            ("66", "700", "9", false),
            ("66", "701", "7", true),
            ("66", "702", "9", true),
            ("66", "702", "7", false),
            ("66", "702", "7", true),
            ("67", "1", "9", false),
            ("68", "1", "7", true),
        ];
        let mut out = String::new();
        for (guild, channel, id, addressed) in rows {
            let sender = Sender { id, username: None, group: Some(guild), addressed };
            let policy = Policy::discord(&c, Some(guild), channel, None, &[]);
            out.push_str(&format!("{guild}/{channel} {id} {addressed}: {:?}\n", decide_by(&policy, &sender, false)));
        }
        let dm = Sender { id: "7", username: None, group: None, addressed: false };
        out.push_str(&format!("dm: {:?}\n", decide_by(&Policy::discord(&c, None, "800", None, &[]), &dm, false)));
        let open = config(r#"{"groupPolicy":"open","guilds":{"66":{"channels":{"700":{}}}}}"#);
        let sender = Sender { id: "7", username: None, group: Some("69"), addressed: true };
        out.push_str(&format!(
            "open: {:?}\n",
            decide_by(&Policy::discord(&open, Some("69"), "1", None, &[]), &sender, false)
        ));
        expect![[r#"
            66/700 9 false: Answer
            66/701 7 true: Deny("the channel is disabled (enabled: false)")
            66/702 9 true: Deny("the sender is not in the guild's users or roles")
            66/702 7 false: NotAddressed
            66/702 7 true: Answer
            67/1 9 false: Answer
            68/1 7 true: Deny("the guild is not in guilds")
            dm: Pair
            open: Answer
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn discord_roles_let_their_holders_in_beside_users_and_a_channel_overrides_the_guild() {
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"token":"t","guilds":{"66":{"users":["7"],"roles":["r-mod"],"channels":{"700":{"roles":["r-ops"]},"*":{}}},"67":{"roles":["r-mod"]}}}"#,
        )
        .unwrap();
        v["guilds"]["67"]["requireMention"] = false.into();
        let c: DiscordConfig = serde_json::from_value(v).unwrap();
        let rows: [(&str, &str, &str, &[&str]); 8] = [
            ("66", "701", "7", &[]),
            ("66", "701", "9", &["r-mod"]),
            ("66", "701", "9", &["r-other"]),
            ("66", "700", "9", &["r-ops"]),
            ("66", "700", "9", &["r-mod"]),
            ("66", "700", "7", &[]),
            ("67", "1", "9", &["r-mod"]),
            ("67", "1", "9", &[]),
        ];
        let mut out = String::new();
        for (guild, channel, id, roles) in rows {
            let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
            let sender = Sender { id, username: None, group: Some(guild), addressed: true };
            let policy = Policy::discord(&c, Some(guild), channel, None, &roles);
            out.push_str(&format!("{guild}/{channel} {id} {roles:?}: {:?}\n", decide_by(&policy, &sender, false)));
        }
        expect![[r#"
            66/701 7 []: Answer
            66/701 9 ["r-mod"]: Answer
            66/701 9 ["r-other"]: Deny("the sender is not in the guild's users or roles")
            66/700 9 ["r-ops"]: Answer
            66/700 9 ["r-mod"]: Deny("the sender is not in the guild's users or roles")
            66/700 7 []: Answer
            67/1 9 ["r-mod"]: Answer
            67/1 9 []: Deny("the sender is not in the guild's users or roles")
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn a_discord_thread_takes_its_parents_entry_and_group_dms_follow_dm_group_keys() {
        let c: DiscordConfig = serde_json::from_value(serde_json::json!({
            "token": "t",
            "guilds": {"66": {"channels": {"700": {"requireMention": false}, "701": {"enabled": false}, "7009": {}}}},
            "dm": {"groupEnabled": true, "groupChannels": ["900", "#Weekend Plans"]},
        }))
        .unwrap();
        let mut out = String::new();
        for (channel, parent) in [("7001", Some("700")), ("7011", Some("701")), ("7009", Some("701")), ("7002", None)] {
            let sender = Sender { id: "7", username: None, group: Some("66"), addressed: false };
            let policy = Policy::discord(&c, Some("66"), channel, parent, &[]);
            out += &format!("thread {channel} in {parent:?}: {:?}\n", decide_by(&policy, &sender, false));
        }
        for (id, name) in [("900", None), ("901", Some("weekend plans")), ("902", Some("Other")), ("903", None)] {
            out += &format!("group dm {id} {name:?}: {:?}\n", discord_group_dm(&c, id, name));
        }
        let off: DiscordConfig = serde_json::from_value(serde_json::json!({"token": "t"})).unwrap();
        out += &format!("by default: {:?}\n", discord_group_dm(&off, "900", None));
        let all: DiscordConfig =
            serde_json::from_value(serde_json::json!({"token": "t", "dm": {"groupEnabled": true}})).unwrap();
        out += &format!("enabled, no list: {:?}\n", discord_group_dm(&all, "905", None));
        out += &format!(
            "needs parent: {} {} {}\n",
            discord_needs_parent(&c, "66", "7001"),
            discord_needs_parent(&c, "66", "700"),
            discord_needs_parent(&c, "67", "1")
        );
        expect![[r#"
            thread 7001 in Some("700"): Answer
            thread 7011 in Some("701"): Deny("the channel is disabled (enabled: false)")
            thread 7009 in Some("701"): NotAddressed
            thread 7002 in None: Deny("the channel is not in the guild's channels")
            group dm 900 None: Answer
            group dm 901 Some("weekend plans"): Answer
            group dm 902 Some("Other"): Deny("the group DM is not in dm.groupChannels")
            group dm 903 None: Deny("the group DM is not in dm.groupChannels")
            by default: Deny("group DMs are disabled (dm.groupEnabled)")
            enabled, no list: Answer
            needs parent: true false false
        "#]]
        .assert_eq(&out);
    }
}
