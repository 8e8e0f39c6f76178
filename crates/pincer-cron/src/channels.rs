//! The channels a job may deliver to, as the gateway's channel registry declares them (the
//! registry lives in `pincer-delivery`, which the scheduler cannot see): each one's name, the
//! target prefixes that name it, and whether this gateway can use it.

/// One channel of the registry, as job validation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownChannel {
    /// The id in targets and config: `discord`, `telegram`, `inbox`, ….
    pub name: &'static str,
    /// Provider prefixes that name this channel in a target (`tg` in `tg:123`).
    pub prefixes: &'static [&'static str],
    /// Built in this gateway: a chat channel whose config section is present, or one that needs none.
    pub usable: bool,
}

/// Every registered channel, in the registry's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelCatalog {
    channels: Vec<KnownChannel>,
}

impl ChannelCatalog {
    pub fn new(channels: Vec<KnownChannel>) -> ChannelCatalog {
        ChannelCatalog { channels }
    }

    pub fn get(&self, name: &str) -> Option<&KnownChannel> {
        self.channels.iter().find(|c| c.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &KnownChannel> {
        self.channels.iter()
    }

    /// `discord, telegram, …`, for error messages.
    pub fn names(&self) -> String {
        self.channels.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
    }

    /// The channel a provider-prefixed target names (`tg:123` → `telegram`), if any. A
    /// channel's own kind prefixes (`channel:`, `user:`) are not providers.
    pub fn prefix_of(&self, to: &str) -> Option<&'static str> {
        let (head, rest) = to.split_once(':')?;
        if rest.is_empty() {
            return None;
        }
        self.channels.iter().find(|c| c.prefixes.iter().any(|p| p.eq_ignore_ascii_case(head))).map(|c| c.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_their_channel_in_any_case_and_kind_prefixes_do_not() {
        let catalog = ChannelCatalog::new(vec![
            KnownChannel { name: "telegram", prefixes: &["telegram", "tg"], usable: true },
            KnownChannel { name: "discord", prefixes: &["discord"], usable: false },
        ]);
        let cases = ["tg:123", "TELEGRAM:-100", "discord:channel:1", "channel:1", "user:7", "tg:", "42"];
        let seen: Vec<Option<&str>> = cases.iter().map(|to| catalog.prefix_of(to)).collect();
        assert_eq!(seen, [Some("telegram"), Some("telegram"), Some("discord"), None, None, None, None]);
        assert_eq!(catalog.names(), "telegram, discord");
        assert!(!catalog.get("discord").unwrap().usable && catalog.get("slack").is_none());
    }
}
