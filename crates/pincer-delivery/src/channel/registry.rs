//! The channel registry: what each adapter declares about itself, in its own file (`SPEC`), and
//! the one list of them ([`REGISTRY`]). Job validation (through [`catalog`]), the outbox (pacing),
//! route resolution (names and target prefixes), the gateway (building the adapters), `health`
//! (labels) and `doctor` (each adapter's checks) all read this list, so adding a channel is its
//! file, its config struct in `pincer-core`, and one line in [`REGISTRY`].
//!
//! **Architecture Invariant:** no code outside an adapter's file names a channel; the tests below
//! build every registered channel from its minimal config and check that validation, routing,
//! `health`, `doctor` and the capability table in `channel/mod.rs` all know it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pincer_core::{Config, EventBus, SharedClock};
use pincer_cron::{ChannelCatalog, KnownChannel};
/// A `doctor` finding is the wire's: an adapter's checks go into the report as they are.
pub use pincer_protocol::schema::system::{Finding, FindingStatus};
use pincer_store::Store;

use super::{BoxFuture, BuildError, Channel};

/// Every channel Pincer can deliver to, one line per adapter. The order is the order of error
/// messages ("use discord, telegram, …") and of the capability table.
pub static REGISTRY: &[&ChannelSpec] =
    &[&super::discord::SPEC, &super::telegram::SPEC, &super::slack::SPEC, &crate::inbox::SPEC, &super::webhook::SPEC];

/// What one adapter declares about itself, next to its code.
pub struct ChannelSpec {
    /// The id in targets, routes and config keys: `discord`, `telegram`, ….
    pub name: &'static str,
    /// How people see it (`health`'s `channelLabels`).
    pub label: &'static str,
    /// A chat platform: usable only with its section under `channels`, and the default route
    /// when it is the only chat channel configured.
    pub chat: bool,
    /// Sends per second when `delivery.rateLimits.<name>` is unset (`0`: unlimited); under the
    /// platform's documented limit.
    pub default_rate: f64,
    /// Provider prefixes that name this channel in a target (`tg` in `tg:123`), any case.
    pub target_prefixes: &'static [&'static str],
    /// Its column of the capability table in `channel/mod.rs`.
    pub capabilities: Capabilities,
    /// The smallest configuration that enables it (JSON5), its API pointed at a closed local
    /// port: the registry's tests build every channel from it.
    pub minimal_config: &'static str,
    /// Builds the adapter from its config section; `None` when the section is absent.
    pub build: fn(&BuildContext<'_>) -> Built,
    /// Its `doctor` checks, run when it is built.
    pub doctor: for<'a> fn(DoctorContext<'a>) -> BoxFuture<'a, Vec<Finding>>,
    /// Its inbound side: how messages users send to the bot would reach Pincer.
    pub inbound: Inbound,
}

/// What a `build` returns: `None` when the channel is not configured.
pub type Built = Option<Result<Arc<dyn Channel>, BuildError>>;

/// One column of the capability table: what the platform offers and how the adapter uses it.
pub struct Capabilities {
    pub to: &'static str,
    pub thread: &'static str,
    pub part_limit: &'static str,
    pub rendering: &'static str,
    pub idempotency: &'static str,
    pub ambiguous_retried: &'static str,
    pub other_recovery: &'static str,
    pub check: &'static str,
}

impl Capabilities {
    /// `(row, cell)` in the table's order.
    fn rows(&self) -> [(&'static str, &'static str); 8] {
        [
            ("`to`", self.to),
            ("thread", self.thread),
            ("part limit", self.part_limit),
            ("rendering", self.rendering),
            ("idempotency", self.idempotency),
            ("ambiguous send retried", self.ambiguous_retried),
            ("other recovery", self.other_recovery),
            ("[`Channel::check`]", self.check),
        ]
    }
}

/// A channel's inbound side: how users' messages reach Pincer. The gateway hands the names of
/// channels with one to `pincer-chat`, which runs it under the supervisor (Telegram's long poll,
/// Slack's Socket Mode and the Discord gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Outbound only.
    None,
    /// The platform is polled for updates (Telegram `getUpdates`).
    LongPoll,
    /// The platform pushes events over a WebSocket (Slack Socket Mode, the Discord gateway).
    Socket,
}

/// What an adapter's `build` may use.
pub struct BuildContext<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub events: &'a EventBus,
    pub clock: &'a SharedClock,
}

impl BuildContext<'_> {
    /// The time limit of one request to `channel` (`delivery.channels.<name>.requestTimeoutMs`).
    pub fn timeout(&self, channel: &str) -> Duration {
        Duration::from_millis(self.config.delivery.request_timeout_ms(channel))
    }
}

/// What an adapter's `doctor` checks are given.
#[derive(Clone, Copy)]
pub struct DoctorContext<'a> {
    pub spec: &'static ChannelSpec,
    pub channel: &'a dyn Channel,
    pub config: &'a Config,
    pub config_path: &'a Path,
}

/// The registered channel called `name`.
pub fn find(name: &str) -> Option<&'static ChannelSpec> {
    REGISTRY.iter().copied().find(|s| s.name == name)
}

/// `discord, telegram, …`, for error messages.
pub fn names() -> String {
    REGISTRY.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The channel a provider-prefixed target names (`tg:123` → `telegram`), if any; a channel's own
/// kind prefixes (`channel:`, `user:`) are not providers.
pub fn prefix_of(to: &str) -> Option<&'static str> {
    let (head, rest) = to.split_once(':')?;
    if rest.is_empty() {
        return None;
    }
    REGISTRY.iter().find(|s| s.target_prefixes.iter().any(|p| p.eq_ignore_ascii_case(head))).map(|s| s.name)
}

/// How people see `name`: its label, or the name itself for a channel not registered.
pub fn label(name: &str) -> &str {
    find(name).map_or(name, |s| s.label)
}

/// The sends per second of `name`: `delivery.rateLimits.<name>`, else its default.
pub fn rate_limit(config: &pincer_core::config::DeliveryConfig, name: &str) -> f64 {
    config.rate_limit(name, find(name).map_or(0.0, |s| s.default_rate))
}

/// Builds every registered channel whose configuration is present (those that need none always).
pub fn build_all(cx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Channel>>, BuildError> {
    pincer_core::tls::install_default_provider();
    REGISTRY.iter().filter_map(|spec| (spec.build)(cx)).collect()
}

/// The registry as job validation sees it: every channel, usable when it was built.
pub fn catalog(built: &[Arc<dyn Channel>]) -> ChannelCatalog {
    let usable = |name: &str| built.iter().any(|c| c.name() == name);
    ChannelCatalog::new(
        REGISTRY
            .iter()
            .map(|s| KnownChannel { name: s.name, prefixes: s.target_prefixes, usable: usable(s.name) })
            .collect(),
    )
}

/// The capability table of `channel/mod.rs`, from the registry (a test keeps the two equal).
pub fn capability_table() -> String {
    let row = |cells: Vec<&str>| format!("| {} |\n", cells.join(" | "));
    let labels: Vec<&str> = REGISTRY.iter().map(|s| s.label).collect();
    let mut out = format!("| | {} |\n", labels.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(REGISTRY.len() + 1)));
    let columns: Vec<_> = REGISTRY.iter().map(|s| s.capabilities.rows()).collect();
    for (i, (name, _)) in columns[0].iter().enumerate() {
        out.push_str(&row(std::iter::once(*name).chain(columns.iter().map(|c| c[i].1)).collect()));
    }
    out
}

/// The `doctor` check of a chat channel: one cheap authenticated call (`Channel::check`).
pub fn check_credentials(cx: DoctorContext<'_>) -> BoxFuture<'_, Vec<Finding>> {
    Box::pin(async move {
        let (name, check) = (cx.spec.name, format!("channel.{}", cx.spec.name));
        let finding = match tokio::time::timeout(Duration::from_secs(10), cx.channel.check()).await {
            Ok(Ok(identity)) => Finding {
                check,
                status: FindingStatus::Ok,
                message: format!("credentials accepted (bot {identity})"),
                fix: None,
            },
            Ok(Err(e)) => Finding {
                check,
                status: FindingStatus::Fail,
                message: e.to_string(),
                fix: Some(format!("check channels.{name} in {} (token and API URL)", cx.config_path.display())),
            },
            Err(_) => Finding {
                check,
                status: FindingStatus::Fail,
                message: "no answer within 10 s".into(),
                fix: Some(format!("check channels.{name} API URL and the network")),
            },
        };
        vec![finding]
    })
}

/// For a channel with nothing to check beyond what the gateway's start already did.
pub fn no_checks(_cx: DoctorContext<'_>) -> BoxFuture<'_, Vec<Finding>> {
    Box::pin(async { Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a JSON5 config the way the gateway reads `pincer.json`.
    fn config(text: &str) -> Config {
        Config::parse(text, &|_: &str| None).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn build(config: &Config) -> Vec<Arc<dyn Channel>> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        let clock = pincer_core::FakeClock::new(0).shared();
        let cx = BuildContext { config, store: &store, events: &EventBus::default(), clock: &clock };
        build_all(&cx).unwrap()
    }

    fn built_names(config: &Config) -> Vec<&'static str> {
        build(config).iter().map(|c| c.name()).collect()
    }

    #[test]
    fn names_and_target_prefixes_are_unique() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|s| s.name).collect();
        let mut prefixes: Vec<String> =
            REGISTRY.iter().flat_map(|s| s.target_prefixes.iter().map(|p| p.to_ascii_lowercase())).collect();
        let (n, p) = (names.len(), prefixes.len());
        names.sort();
        names.dedup();
        prefixes.sort();
        prefixes.dedup();
        assert_eq!((names.len(), prefixes.len()), (n, p), "a name or prefix is registered twice");
        for spec in REGISTRY {
            assert!(spec.label.chars().next().is_some_and(char::is_uppercase), "{}: label {:?}", spec.name, spec.label);
            assert!(spec.default_rate >= 0.0 && spec.default_rate.is_finite(), "{}", spec.name);
        }
    }

    #[test]
    fn every_channel_builds_from_its_minimal_config_and_chat_channels_only_from_it() {
        let none = built_names(&config("{}"));
        for spec in REGISTRY {
            let built = build(&config(spec.minimal_config));
            let adapter = built.iter().find(|c| c.name() == spec.name);
            assert!(adapter.is_some(), "{} is not built from its minimal config {}", spec.name, spec.minimal_config);
            assert_eq!(none.contains(&spec.name), !spec.chat, "{}: built without its section?", spec.name);
            // Only chat platforms have an inbound side (Telegram's long poll, Discord's gateway).
            if !spec.chat {
                assert_eq!(spec.inbound, Inbound::None, "{}: not a chat platform", spec.name);
            }
        }
        // `delivery.channels.<name>` (a config struct in pincer-core) has an entry for each.
        for spec in REGISTRY {
            let tuned = config(&format!("{{ delivery: {{ channels: {{ {}: {{ maxParallel: 3 }} }} }} }}", spec.name));
            assert_eq!(tuned.delivery.max_parallel(spec.name), 3, "delivery.channels.{} is not read", spec.name);
        }
        let with_rates = config(r#"{ delivery: { rateLimits: { telegram: 3 } } }"#);
        let rates: Vec<f64> = REGISTRY.iter().map(|s| rate_limit(&with_rates.delivery, s.name)).collect();
        assert_eq!(rates, [40.0, 3.0, 10.0, 0.0, 0.0]);
    }

    #[test]
    fn job_validation_knows_every_channel_and_its_prefixes() {
        use pincer_protocol::schema::cron::AddParams;
        use pincer_protocol::schema::parse_params;

        fn ctx(channels: &ChannelCatalog) -> pincer_cron::job::CreateContext<'_> {
            pincer_cron::job::CreateContext { now_ms: 0, default_tz: "UTC", channels }
        }
        for spec in REGISTRY {
            let known = catalog(&build(&config(spec.minimal_config)));
            let params = serde_json::json!({
                "name": "registry", "schedule": {"kind": "every", "everyMs": 60_000}, "sessionTarget": "isolated",
                "payload": {"kind": "agentTurn", "message": "hi"},
                "delivery": {"mode": "announce", "channel": spec.name, "to": "x"},
            });
            let input = || parse_params::<AddParams>("cron.add", Some(&params)).unwrap().0;
            let created = pincer_cron::job::create(input(), "job".into(), &ctx(&known));
            assert!(created.is_ok(), "{}: {:?}", spec.name, created.err());
            for prefix in spec.target_prefixes {
                assert_eq!(known.prefix_of(&format!("{prefix}:1")), Some(spec.name));
                assert_eq!(prefix_of(&format!("{prefix}:1")), Some(spec.name));
            }
            if spec.chat {
                let unconfigured = catalog(&build(&config("{}")));
                let refused = pincer_cron::job::create(input(), "job".into(), &ctx(&unconfigured)).unwrap_err().0;
                assert!(refused.contains("is not configured; add channels."), "{refused}");
            }
        }
    }

    #[test]
    fn every_built_adapter_answers_to_its_registered_name() {
        for spec in REGISTRY {
            for adapter in build(&config(spec.minimal_config)) {
                assert!(find(adapter.name()).is_some(), "{} built an unregistered {}", spec.name, adapter.name());
            }
        }
    }

    #[test]
    fn the_capability_table_in_the_module_doc_is_the_registrys() {
        let source = include_str!("mod.rs");
        let documented: String =
            source.lines().filter_map(|l| l.strip_prefix("//! |")).map(|l| format!("|{l}\n")).collect();
        let expected = capability_table();
        assert!(
            documented == expected,
            "the table in channel/mod.rs differs from the registry; replace it with:\n{}",
            expected.lines().map(|l| format!("//! {l}\n")).collect::<String>()
        );
    }
}
