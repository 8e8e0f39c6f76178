//! Generic webhooks: `POST <url>` with the part as a JSON body and an `Idempotency-Key` that is
//! stable across retries, so the receiver can drop duplicates and an ambiguous send is always safe
//! to retry. Loopback, private, link-local and unspecified addresses are refused (the IP literal at
//! parse time, every resolved address at send time) unless `allowPrivateNetwork` is set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pincer_core::config::WebhookConfig;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::registry::{BuildContext, Built, Capabilities, ChannelSpec, Inbound};
use super::{BoxFuture, BuildError, Channel, Part, PermanentClass, Receipt, SendError, Target, TargetError};

/// Webhooks in the channel registry: always built (a target is a URL; `channels.webhook` only
/// tunes it), and the channel of `delivery.mode: "webhook"`.
pub static SPEC: ChannelSpec = ChannelSpec {
    name: "webhook",
    label: "Webhook",
    chat: false,
    default_rate: 0.0,
    target_prefixes: &[],
    capabilities: Capabilities {
        to: "`http(s)://` URL without credentials",
        thread: "refused",
        part_limit: "the whole text, one part",
        rendering: "the text if it is JSON, else `{\"text\": …}`",
        idempotency: "`Idempotency-Key` header",
        ambiguous_retried: "always",
        other_recovery: "private addresses refused unless `allowPrivateNetwork`",
        check: "nothing to check",
    },
    minimal_config: "{}",
    build,
    doctor: super::registry::no_checks,
    inbound: Inbound::None,
};

fn build(cx: &BuildContext<'_>) -> Built {
    let token = cx.config.cron.webhook_token.clone();
    Some(
        Webhook::new(&cx.config.channels.webhook, token, cx.timeout(SPEC.name))
            .map(|c| Arc::new(c) as Arc<dyn Channel>),
    )
}

/// Posts parts to HTTP endpoints.
pub struct Webhook {
    http: reqwest::Client,
    token: Option<String>,
    allow_private_network: bool,
}

/// A webhook host that resolved to an address the configuration does not allow.
#[derive(Debug, thiserror::Error)]
#[error(
    "the webhook host {host} resolves to {ip}, a private or local address; set channels.webhook.allowPrivateNetwork to allow it"
)]
pub struct PrivateAddress {
    host: String,
    ip: IpAddr,
}

/// Resolves with the system resolver, refusing names that lead to private addresses.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
                return Err(Box::new(PrivateAddress { host, ip: bad.ip() }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Loopback, private, link-local, unspecified, shared (CGNAT), broadcast and multicast addresses,
/// and IPv6 forms that carry an IPv4 address (judged as that IPv4 address; see [`embedded_v4`]).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => true,
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_private_v4(v4),
            None => {
                let first = v6.segments()[0];
                v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                    || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
            }
        },
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that reach (or name) it: IPv4-mapped
/// `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (deprecated), NAT64 `64:ff9b::/96` and the
/// local-use `64:ff9b:1::/48` (RFC 6052, 8215: the last 32 bits), 6to4 `2002:AABB:CCDD::/48`
/// (bits 16–47), Teredo `2001::/32` (the client, the last 32 bits inverted) and ISATAP interface
/// ids `…:0:5efe:a.b.c.d` / `…:200:5efe:a.b.c.d`. The same forms OpenClaw's SSRF guard unwraps.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let last = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, _, _] => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => Some(last),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!u32::from(last))),
        [_, _, _, _, id, 0x5efe, _, _] if id & 0xfcff == 0 => Some(last),
        _ => None,
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network", including 0.0.0.0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
}

impl Webhook {
    /// Builds the adapter; `token` (e.g. `cron.webhookToken`) is sent as a bearer token.
    pub fn new(config: &WebhookConfig, token: Option<String>, timeout: Duration) -> Result<Self, BuildError> {
        let user_agent = format!("pincer/{}", env!("CARGO_PKG_VERSION"));
        let mut builder = super::client_builder(&user_agent, timeout);
        if !config.allow_private_network {
            // A proxy would resolve the name itself and bypass the address check.
            builder = builder.no_proxy().dns_resolver(Arc::new(GuardedResolver));
        }
        let http = super::build("webhook", builder)?;
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        Ok(Webhook { http, token, allow_private_network: config.allow_private_network })
    }

    /// Parses and checks a webhook URL; errors never echo the URL (its path is often a secret).
    fn check_url(&self, to: &str) -> Result<Url, String> {
        let url = Url::parse(to.trim()).map_err(|e| format!("the webhook URL does not parse ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("webhook URLs must be http or https, not `{}`", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials in the webhook URL are refused; configure a token (cron.webhookToken) instead".into()
            );
        }
        let Some(host) = url.host_str() else { return Err("the webhook URL has no host".into()) };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let private = match host.parse::<IpAddr>() {
            Ok(ip) => is_private(ip),
            Err(_) => {
                let name = host.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
        };
        if private && !self.allow_private_network {
            return Err(
                "the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it"
                    .into(),
            );
        }
        Ok(url)
    }

    async fn send_part(&self, part: &Part) -> Result<Receipt, SendError> {
        super::expect_channel("webhook", part)?;
        let url = self.check_url(&part.target.to).map_err(|e| SendError::permanent(PermanentClass::Config, e))?;
        let key =
            HeaderValue::from_str(&part.idempotency_key).ok().filter(|_| !part.idempotency_key.is_empty()).ok_or_else(
                || SendError::permanent(PermanentClass::Config, "the idempotency key is not a valid header value"),
            )?;
        let body = if serde_json::from_str::<serde::de::IgnoredAny>(&part.text).is_ok() {
            part.text.clone()
        } else {
            serde_json::json!({ "text": part.text }).to_string()
        };
        let mut request =
            self.http.post(url).header(CONTENT_TYPE, "application/json").header("Idempotency-Key", key).body(body);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let reply = super::execute("webhook", request).await?;
        let status = reply.status.as_u16();
        let detail = format!("the webhook answered HTTP {status}: {}", reply.snippet());
        match status {
            200..=299 => {
                let id = match &reply.json()["id"] {
                    serde_json::Value::String(id) if !id.is_empty() => id.clone(),
                    serde_json::Value::Number(id) => id.to_string(),
                    _ => part.idempotency_key.clone(),
                };
                Ok(Receipt { message_id: id })
            }
            429 => Err(SendError::rate_limited(detail, super::retry_after_header(&reply.headers))),
            408 | 500.. => Err(SendError::ambiguous(detail)),
            300..=399 => Err(SendError::permanent(
                PermanentClass::Config,
                format!("{detail}; redirects are not followed, use the final URL"),
            )),
            401 | 403 => Err(SendError::permanent(PermanentClass::Auth, format!("{detail}; check the webhook token"))),
            404 | 410 => Err(SendError::permanent(PermanentClass::Target, format!("{detail}; check the webhook URL"))),
            _ => Err(SendError::permanent(PermanentClass::Payload, detail)),
        }
    }
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn parse_target(&self, to: &str, thread_id: Option<&str>) -> Result<Target, TargetError> {
        if thread_id.is_some_and(|t| !t.trim().is_empty()) {
            return Err(TargetError::new("webhook", "webhooks have no threads"));
        }
        let url = self.check_url(to).map_err(|reason| TargetError::new("webhook", reason))?;
        Ok(Target { channel: "webhook".into(), to: url.to_string(), thread: None })
    }

    fn chunk(&self, text: &str) -> Vec<String> {
        if text.trim().is_empty() { Vec::new() } else { vec![text.to_string()] }
    }

    fn send<'a>(&'a self, part: &'a Part) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.send_part(part))
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async { Ok("webhook".to_string()) })
    }

    fn safe_to_retry_ambiguous(&self, _dispatched_at_ms: i64, _now_ms: i64) -> bool {
        true
    }

    fn deduplicates_resends(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use expect_test::expect;
    use pincer_testkit::fakes::webhook::{FakeWebhook, Fault};

    use super::*;
    use crate::channel::test_support::{TIMEOUT, parse_table, part, target};

    fn adapter(allow_private_network: bool, token: Option<&str>) -> Webhook {
        Webhook::new(&WebhookConfig { allow_private_network }, token.map(str::to_string), TIMEOUT).unwrap()
    }

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
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            // IPv4-compatible (deprecated) forms of private addresses.
            "::127.0.0.1",
            "::7f00:1",
            "::10.0.0.1",
            "::169.254.169.254",
            // NAT64, well-known and local-use prefixes.
            "64:ff9b::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.1.1",
            "64:ff9b:1::10.0.0.1",
            // 6to4: the IPv4 address in bits 16-47.
            "2002:7f00:1::",
            "2002:7f00:0001::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:0101::1",
            // Teredo: the client address, inverted, in the last 32 bits (127.0.1.1, 192.168.1.1).
            "2001:0:0:0:0:0:80ff:fefe",
            "2001:0:4136:e378:8000:63bf:3f57:fefe",
            // ISATAP interface ids.
            "2001:db8:1234::5efe:127.0.0.1",
            "2001:4860:1234:1:200:5efe:a00:1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip} should be private");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::8.8.8.8",
            "2002:0808:0808::",
            "2001:0:0:0:0:0:f7f7:f7f7",
            "2001:4860:1234::5efe:8.8.8.8",
            "2001:4860:1234:1:1111:5efe:7f00:1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip} should be public");
        }
        assert!(is_private(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn urls_with_embedded_private_ipv4_are_refused_at_parse_time() {
        let guarded = adapter(false, None);
        for url in [
            "http://[::127.0.0.1]:8080/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[64:ff9b::169.254.169.254]/latest/meta-data",
            "http://[2002:7f00:1::]/hook",
            "http://[2001::80ff:fefe]/hook",
        ] {
            let error = guarded.check_url(url).expect_err(url);
            assert!(error.contains("allowPrivateNetwork"), "{url}: {error}");
            assert!(adapter(true, None).check_url(url).is_ok(), "{url} with allowPrivateNetwork");
        }
        assert!(guarded.check_url("http://[64:ff9b::8.8.8.8]/hook").is_ok());
    }

    #[test]
    fn parses_targets() {
        let cases = [
            ("https://hooks.example.com/pincer?x=1", None),
            ("http://93.184.215.14:8080/hook", None),
            ("https://hooks.example.com/a", Some("1")),
            ("https://user:pass@hooks.example.com/a", None),
            ("ftp://hooks.example.com/a", None),
            ("hooks.example.com/a", None),
            ("http://127.0.0.1:8080/hook", None),
            ("http://[::1]/hook", None),
            ("http://10.0.0.5/hook", None),
            ("http://169.254.169.254/latest/meta-data", None),
            ("http://0.0.0.0/", None),
            ("http://localhost:3000/", None),
            ("http://api.localhost/", None),
        ];
        expect![[r#"
            "https://hooks.example.com/pincer?x=1" => to=https://hooks.example.com/pincer?x=1 thread=-
            "http://93.184.215.14:8080/hook" => to=http://93.184.215.14:8080/hook thread=-
            "https://hooks.example.com/a" (thread 1) => error: invalid webhook target: webhooks have no threads
            "https://user:pass@hooks.example.com/a" => error: invalid webhook target: credentials in the webhook URL are refused; configure a token (cron.webhookToken) instead
            "ftp://hooks.example.com/a" => error: invalid webhook target: webhook URLs must be http or https, not `ftp`
            "hooks.example.com/a" => error: invalid webhook target: the webhook URL does not parse (relative URL without a base)
            "http://127.0.0.1:8080/hook" => error: invalid webhook target: the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it
            "http://[::1]/hook" => error: invalid webhook target: the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it
            "http://10.0.0.5/hook" => error: invalid webhook target: the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it
            "http://169.254.169.254/latest/meta-data" => error: invalid webhook target: the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it
            "http://0.0.0.0/" => error: invalid webhook target: the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it
            "http://localhost:3000/" => error: invalid webhook target: the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it
            "http://api.localhost/" => error: invalid webhook target: the webhook URL points at a loopback or private address; set channels.webhook.allowPrivateNetwork to allow it
        "#]]
        .assert_eq(&parse_table(&adapter(false, None), &cases));
        expect![[r#"
            "http://127.0.0.1:8080/hook" => to=http://127.0.0.1:8080/hook thread=-
            "http://localhost:3000/" => to=http://localhost:3000/ thread=-
        "#]]
        .assert_eq(&parse_table(&adapter(true, None), &[cases[6], cases[11]]));
    }

    #[tokio::test]
    async fn posts_json_with_token_and_idempotency_key() {
        let fake = FakeWebhook::start().await;
        let webhook = adapter(true, Some("s3cret"));
        let to = target(&webhook, &fake.url(), None);
        let body = r#"{"jobId":"j1","action":"finished","status":"ok"}"#;
        let receipt = webhook.send(&part(&to, "row-1", 0, 1, body)).await.unwrap();
        let delivery = &fake.deliveries()[0];
        assert_eq!(receipt.message_id, delivery.id);
        assert_eq!(delivery.path, "/hook");
        assert_eq!(delivery.body, body);
        assert_eq!(delivery.authorization.as_deref(), Some("Bearer s3cret"));
        assert_eq!(delivery.idempotency_key.as_deref(), Some("pincer-row-1"));
        assert_eq!(delivery.content_type.as_deref(), Some("application/json"));
        assert_eq!(webhook.check().await.unwrap(), "webhook");
        assert_eq!(webhook.chunk(&"x".repeat(100_000)).len(), 1);
    }

    #[tokio::test]
    async fn plain_text_is_wrapped_and_no_token_means_no_header() {
        let fake = FakeWebhook::start().await;
        let webhook = adapter(true, None);
        webhook.send(&part(&target(&webhook, &fake.url(), None), "row-2", 0, 1, "hello \"world\"")).await.unwrap();
        let delivery = &fake.deliveries()[0];
        assert_eq!(delivery.body, r#"{"text":"hello \"world\""}"#);
        assert_eq!(delivery.authorization, None);
    }

    #[tokio::test]
    async fn ambiguous_sends_retry_with_the_same_key_and_are_deduplicated() {
        let fake = FakeWebhook::start().await;
        let webhook = adapter(true, None);
        let to = target(&webhook, &fake.url(), None);
        for (row, fault) in [("row-503", Fault::AcceptThenStatus(503)), ("row-hang", Fault::AcceptThenHang)] {
            fake.push_fault(fault.clone());
            let p = part(&to, row, 0, 1, "{}");
            assert_eq!(class(webhook.send(&p).await), "ambiguous", "{fault:?}");
            assert!(webhook.safe_to_retry_ambiguous(0, i64::MAX));
            assert!(webhook.deduplicates_resends(), "so the outbox commits a batch's dispatching marks at once");
            let receipt = webhook.send(&p).await.unwrap();
            let accepted: Vec<_> = fake
                .deliveries()
                .into_iter()
                .filter(|d| d.idempotency_key.as_deref() == Some(&p.idempotency_key))
                .collect();
            assert_eq!(accepted.len(), 1, "{fault:?}");
            assert_eq!(receipt.message_id, accepted[0].id);
        }
        assert_eq!((fake.requests(), fake.duplicates()), (4, 2));
    }

    #[tokio::test]
    async fn http_answers_are_classified() {
        let fake = FakeWebhook::start().await;
        let webhook = adapter(true, None);
        let to = target(&webhook, &fake.url(), None);
        fake.push_fault(Fault::RateLimited { retry_after: Duration::from_secs(2) });
        match webhook.send(&part(&to, "row-c", 0, 1, "{}")).await {
            Err(SendError::NotSent { rate_limited: true, retry_after_ms: Some(2000), .. }) => {}
            other => panic!("{other:?}"),
        }
        let mut table = String::new();
        for fault in [
            Fault::Status(500),
            Fault::Status(502),
            Fault::Status(408),
            Fault::Status(400),
            Fault::Status(413),
            Fault::Status(404),
            Fault::Status(410),
            Fault::Status(401),
            Fault::Status(301),
            Fault::Hang,
            Fault::Reset,
            Fault::Delay(Duration::from_millis(20)),
        ] {
            fake.push_fault(fault.clone());
            table.push_str(&format!("{fault:?} => {}\n", class(webhook.send(&part(&to, "row-c", 0, 1, "{}")).await)));
        }
        expect![[r#"
            Status(500) => ambiguous
            Status(502) => ambiguous
            Status(408) => ambiguous
            Status(400) => payload
            Status(413) => payload
            Status(404) => target
            Status(410) => target
            Status(401) => auth
            Status(301) => config
            Hang => ambiguous
            Reset => ambiguous
            Delay(20ms) => sent
        "#]]
        .assert_eq(&table);
    }

    #[tokio::test]
    async fn a_wrong_token_is_an_auth_error() {
        let fake = FakeWebhook::start().await;
        fake.require_token(Some("right"));
        let webhook = adapter(true, Some("wrong"));
        assert_eq!(class(webhook.send(&part(&target(&webhook, &fake.url(), None), "row-t", 0, 1, "{}")).await), "auth");
        assert!(fake.deliveries().is_empty());
    }

    #[tokio::test]
    async fn private_addresses_are_refused_before_sending() {
        let fake = FakeWebhook::start().await;
        let webhook = adapter(false, None);
        // A target stored while private networks were allowed is still refused at send time.
        let stored = target(&adapter(true, None), &fake.url(), None);
        let error = webhook.send(&part(&stored, "row-s", 0, 1, "{}")).await.unwrap_err();
        assert!(matches!(error, SendError::Permanent { class: PermanentClass::Config, .. }), "{error:?}");
        assert_eq!(fake.requests(), 0);
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let refused = GuardedResolver.resolve(Name::from_str("localhost").unwrap()).await.err().expect("refused");
        assert!(refused.downcast_ref::<PrivateAddress>().is_some(), "{refused}");

        // End to end: this machine's own name almost always resolves to a loopback or private
        // address; the refusal must come back as a Config error, not as a retryable connect error.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
        let addrs: Vec<_> = match tokio::net::lookup_host((host.as_str(), 80)).await {
            Ok(addrs) if !host.is_empty() => addrs.collect(),
            _ => {
                eprintln!("skipping the end-to-end part: hostname {host:?} does not resolve");
                return;
            }
        };
        if !addrs.iter().any(|a| is_private(a.ip())) {
            eprintln!("skipping the end-to-end part: hostname {host:?} resolves to public addresses only");
            return;
        }
        let to = Target { channel: "webhook".into(), to: format!("http://{host}:9/hook"), thread: None };
        let error = adapter(false, None).send(&part(&to, "row-d", 0, 1, "{}")).await.unwrap_err();
        assert!(matches!(error, SendError::Permanent { class: PermanentClass::Config, .. }), "{error:?}");
        assert!(error.to_string().contains("allowPrivateNetwork"), "{error}");
    }
}
