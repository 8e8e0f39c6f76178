//! The channels a job may deliver to, as the gateway's channel registry declares them (the
//! registry lives in `pincer-delivery`, which the scheduler cannot see): each one's name, the
//! target prefixes that name it, and whether this gateway can use it.

use std::sync::{Arc, RwLock};

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

/// Every registered channel, in the registry's order. Clones share one list, which a config
/// reload replaces ([`ChannelCatalog::replace`]): a channel added to the config is usable for
/// the next `cron.add` without a restart.
#[derive(Debug, Clone, Default)]
pub struct ChannelCatalog {
    channels: Arc<RwLock<Arc<Vec<KnownChannel>>>>,
}

impl PartialEq for ChannelCatalog {
    fn eq(&self, other: &Self) -> bool {
        self.snapshot() == other.snapshot()
    }
}

impl Eq for ChannelCatalog {}

impl ChannelCatalog {
    pub fn new(channels: Vec<KnownChannel>) -> ChannelCatalog {
        ChannelCatalog { channels: Arc::new(RwLock::new(Arc::new(channels))) }
    }

    /// Puts `other`'s channels in place of these, for every clone of this catalog.
    pub fn replace(&self, other: &ChannelCatalog) {
        let next = other.snapshot();
        *self.channels.write().expect("catalog lock") = next;
    }

    fn snapshot(&self) -> Arc<Vec<KnownChannel>> {
        self.channels.read().expect("catalog lock").clone()
    }

    pub fn get(&self, name: &str) -> Option<KnownChannel> {
        self.snapshot().iter().find(|c| c.name == name).copied()
    }

    /// The channels as they are now.
    pub fn list(&self) -> Vec<KnownChannel> {
        self.snapshot().to_vec()
    }

    /// `discord, telegram, …`, for error messages.
    pub fn names(&self) -> String {
        self.snapshot().iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
    }

    /// The channel a provider-prefixed target names (`tg:123` → `telegram`), if any. A
    /// channel's own kind prefixes (`channel:`, `user:`) are not providers.
    pub fn prefix_of(&self, to: &str) -> Option<&'static str> {
        let (head, rest) = to.split_once(':')?;
        if rest.is_empty() {
            return None;
        }
        self.snapshot().iter().find(|c| c.prefixes.iter().any(|p| p.eq_ignore_ascii_case(head))).map(|c| c.name)
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
        let shared = catalog.clone();
        catalog.replace(&ChannelCatalog::new(vec![KnownChannel {
            name: "discord",
            prefixes: &["discord"],
            usable: true,
        }]));
        assert!(shared.get("discord").unwrap().usable && shared.get("telegram").is_none(), "clones see a replacement");
    }
}
