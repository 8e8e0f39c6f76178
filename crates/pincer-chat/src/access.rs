//! Who may talk to the bot: OpenClaw's `dmPolicy` / `allowFrom` / `groupPolicy` /
//! `groupAllowFrom` / `groups` / `requireMention`, decided by one pure function over a parsed
//! message, the channel's config and whether the owner approved the sender (pairing). Each
//! channel's config is read into one [`Policy`] (Slack's `channels.<id>.users` is a group's
//! `allowFrom`), so every channel decides the same way.

use std::collections::BTreeMap;

use pincer_core::config::{ChatGroupConfig, DmPolicy, GroupPolicy, SlackConfig, TelegramConfig};

/// A channel's access settings, in OpenClaw's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<String>,
    pub groups: BTreeMap<String, ChatGroupConfig>,
    pub require_mention: bool,
}

impl From<&TelegramConfig> for Policy {
    fn from(c: &TelegramConfig) -> Policy {
        Policy {
            dm_policy: c.dm_policy,
            allow_from: c.allow_from.clone(),
            group_policy: c.group_policy,
            group_allow_from: c.group_allow_from.clone(),
            groups: c.groups.clone(),
            require_mention: c.require_mention,
        }
    }
}

impl From<&SlackConfig> for Policy {
    /// A disabled entry of `channels` is left out, so `allowlist` denies it (and [`decide`]'s
    /// caller checks `enabled` itself under `open`).
    fn from(c: &SlackConfig) -> Policy {
        let groups = c
            .channels
            .iter()
            .filter(|(_, ch)| ch.enabled)
            .map(|(id, ch)| {
                (id.clone(), ChatGroupConfig { require_mention: ch.require_mention, allow_from: ch.users.clone() })
            })
            .collect();
        Policy {
            dm_policy: c.dm_policy,
            allow_from: c.allow_from.clone(),
            group_policy: c.group_policy,
            // In a channel, `channels.<id>.users` limits who may talk; without it everyone in
            // the channel may (OpenClaw's Slack), not only the DM allowlist.
            group_allow_from: vec!["*".into()],
            groups,
            require_mention: true,
        }
    }
}

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

/// Decides a message; `approved` is whether the owner approved the sender by pairing.
pub fn decide(config: &Policy, sender: &Sender<'_>, approved: bool) -> Decision {
    let Some(group) = sender.group else {
        return match config.dm_policy {
            DmPolicy::Disabled => Decision::Deny("dmPolicy is disabled"),
            DmPolicy::Open => Decision::Answer,
            _ if approved || listed(&config.allow_from, sender) => Decision::Answer,
            DmPolicy::Allowlist => Decision::Deny("the sender is not in allowFrom"),
            DmPolicy::Pairing => Decision::Pair,
        };
    };
    let entry = config.groups.get(group).or_else(|| config.groups.get("*"));
    match config.group_policy {
        GroupPolicy::Disabled => return Decision::Deny("groupPolicy is disabled"),
        GroupPolicy::Allowlist if entry.is_none() => return Decision::Deny("the group is not in groups"),
        _ => {}
    }
    // The most specific non-empty sender list applies; none at all lets every member in.
    let senders = [entry.map(|g| &g.allow_from), Some(&config.group_allow_from), Some(&config.allow_from)]
        .into_iter()
        .flatten()
        .find(|list| !list.is_empty());
    if let Some(list) = senders
        && !listed(list, sender)
        && !approved
    {
        return Decision::Deny("the sender is not in groupAllowFrom");
    }
    let require = entry.and_then(|g| g.require_mention).unwrap_or(config.require_mention);
    if require && !sender.addressed {
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
            let p = Policy::from(&config(json));
            out.push_str(&format!("{name}:\n"));
            for (who, s) in &senders {
                out.push_str(&format!("  {who:<16} {:?} / approved {:?}\n", decide(&p, s, false), decide(&p, s, true)));
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
}
