//! Announce, in-process: how a finished run's text reaches the outbox. Route resolution happens
//! before the run (a route that cannot resolve fails it before any model call); rendering into
//! stored parts happens when the run finishes, in the run's own transaction.
//!
//! **Architecture Invariant:** nothing here opens a WebSocket, holds a device token or passes a
//! pairing check. The scheduler calls this code directly.

use pincer_cron::job::{DeliveryMode, Job};
use pincer_cron::{Announcer, Origin, PrepareError, Route, RouteError};
use pincer_store::{NewDelivery, Store};

use crate::channel::registry;
use crate::inbox::DEFAULT_INBOX;
use crate::outbox::Outbox;
use crate::parts::TooLong;

/// The outbox as the scheduler sees it.
pub struct Announce {
    outbox: Outbox,
    store: Store,
}

impl Announce {
    pub fn new(outbox: Outbox, store: Store) -> Announce {
        Announce { outbox, store }
    }

    /// Chat channels that are configured (not the inbox, not webhooks).
    fn chat_channels(&self) -> Vec<String> {
        self.outbox.channel_names().into_iter().filter(|c| registry::find(c).is_some_and(|s| s.chat)).collect()
    }

    /// The last route of a session (`channel: "last"`), if it has one.
    fn last_route(&self, session_key: &str) -> Option<Route> {
        let key = session_key.to_string();
        let json = self.store.read_blocking(move |rd| rd.session_last_route(&key)).ok().flatten()?;
        let mut route: Route = serde_json::from_str(&json).ok()?;
        route.source = "last".into();
        Some(route)
    }

    /// Resolves `channel` / `to` / `thread` / `account` into a concrete, validated route.
    pub fn route(
        &self,
        channel: Option<&str>,
        to: Option<&str>,
        thread: Option<&str>,
        account: Option<&str>,
        session_key: Option<&str>,
    ) -> Result<Route, RouteError> {
        if let Some(a) = account
            && a != "default"
        {
            return Err(RouteError::Account(a.to_string()));
        }
        let explicit = channel.filter(|c| *c != "last" && !c.is_empty());
        let to = to.map(str::trim).filter(|t| !t.is_empty());
        let (channel, to, source) = match (explicit, to) {
            (Some(c), to) => {
                let to = match (to, to.and_then(registry::prefix_of)) {
                    (Some(t), Some(p)) if p == c => Some(t.split_once(':').map(|x| x.1).unwrap_or(t)),
                    (Some(t), Some(p)) => {
                        return Err(RouteError::PrefixContradicts {
                            prefix: p.to_string(),
                            to: t.to_string(),
                            channel: c.to_string(),
                        });
                    }
                    (t, _) => t,
                };
                (c.to_string(), to.map(String::from), "explicit")
            }
            (None, Some(t)) if let Some(p) = registry::prefix_of(t) => {
                (p.to_string(), t.split_once(':').map(|x| x.1.to_string()), "prefix")
            }
            (None, to) => {
                if let Some(route) = session_key.and_then(|k| self.last_route(k)) {
                    let to = to.map(String::from).unwrap_or(route.to.clone());
                    (route.channel.clone(), Some(to), "last")
                } else {
                    let chats = self.chat_channels();
                    match (to, chats.len()) {
                        // A fresh install, or no target: the local inbox.
                        (None, _) => ("inbox".to_string(), None, "default"),
                        (Some(t), 1) => (chats[0].clone(), Some(t.to_string()), "default"),
                        (Some(t), 0) => {
                            let chats: Vec<String> = registry::REGISTRY
                                .iter()
                                .filter(|s| s.chat)
                                .map(|s| format!("channels.{}", s.name))
                                .collect();
                            let add = match chats.split_last() {
                                Some((last, [])) => last.clone(),
                                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                                None => "a chat channel".into(),
                            };
                            return Err(RouteError::NoChatChannel { to: t.to_string(), add });
                        }
                        (Some(_), _) => return Err(RouteError::ChannelRequired(chats)),
                    }
                }
            }
        };
        let Some(adapter) = self.outbox.channel(&channel) else {
            if registry::find(&channel).is_none() {
                return Err(RouteError::UnknownChannel { channel, known: registry::names() });
            }
            return Err(RouteError::NotConfigured(channel));
        };
        let to = match (to, channel.as_str()) {
            (Some(t), _) => t,
            (None, "inbox") => DEFAULT_INBOX.to_string(),
            (None, c) => {
                // In the channel's own target syntax, not another platform's.
                let syntax = registry::find(c).map(|s| format!(": {}", s.capabilities.to)).unwrap_or_default();
                return Err(RouteError::TargetRequired { channel: c.to_string(), syntax });
            }
        };
        let target = adapter.parse_target(&to, thread).map_err(|e| RouteError::Target(e.to_string()))?;
        Ok(Route {
            channel: target.channel,
            to: target.to,
            thread_id: target.thread,
            account_id: account.map(String::from),
            source: source.into(),
        })
    }
}

impl Announcer for Announce {
    fn resolve(&self, job: &Job) -> Result<Option<Route>, RouteError> {
        let Some(d) = &job.delivery else { return Ok(None) };
        match d.mode {
            DeliveryMode::None => Ok(None),
            DeliveryMode::Webhook => {
                let url = d.to.as_deref().ok_or(RouteError::WebhookUrl)?;
                self.route(Some("webhook"), Some(url), None, None, None).map(Some)
            }
            DeliveryMode::Announce => self
                .route(
                    d.channel.as_deref(),
                    d.to.as_deref(),
                    d.thread_id.as_deref(),
                    d.account_id.as_deref(),
                    job.session_key.as_deref(),
                )
                .map(Some),
        }
    }

    fn resolve_destination(
        &self,
        channel: Option<&str>,
        to: Option<&str>,
        account: Option<&str>,
    ) -> Result<Route, RouteError> {
        self.route(channel, to, None, account, None)
    }

    fn prepare(&self, route: &Route, body: &str, key: &str, origin: Origin) -> Result<NewDelivery, PrepareError> {
        // Nobody is there to shorten a scheduled result or an alert: cut it, with a marker.
        self.outbox.prepare(route, body, key, &origin, None, TooLong::Truncate)
    }

    fn kick(&self) {
        self.outbox.kick();
    }
}
