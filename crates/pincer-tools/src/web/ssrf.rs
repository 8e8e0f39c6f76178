//! The SSRF policy of `web_fetch` (`tools.web.fetch.ssrfPolicy`), after OpenClaw's
//! `src/infra/net/ssrf.ts` and `src/shared/net/ip.ts`.
//!
//! A target is checked twice: the URL's host before any lookup (blocked names, IP literals), and
//! every address a hostname resolves to. The resolved addresses are checked inside the HTTP
//! client's DNS hook ([`GuardedResolver`]), and the client connects only to the addresses that hook
//! returned — so there is no window for DNS rebinding between the check and the connect. Redirects
//! are followed by hand, each hop checked the same way.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::config::SsrfPolicyConfig;
use crate::tool::BoxFuture;

/// Why a target was refused; the text is what the model sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SsrfBlocked(pub String);

/// The special-use range an address falls in, or `None` for a public address.
pub fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "unspecified (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
    ([100, 64, 0, 0], 10, "carrier-grade NAT (100.64.0.0/10)"),
    ([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
    ([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
    ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
    ([192, 0, 0, 0], 24, "reserved (192.0.0.0/24)"),
    ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    ([192, 88, 99, 0], 24, "reserved (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
];

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_RANGES.iter().find(|(base, len, _)| bits >> (32 - len) == u32::from_be_bytes(*base) >> (32 - len)).map(|r| r.2)
}

fn in_v6(ip: Ipv6Addr, base: [u16; 8], len: u32) -> bool {
    let (a, b) = (u128::from(ip), u128::from(Ipv6Addr::from(base)));
    len == 0 || a >> (128 - len) == b >> (128 - len)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let h = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    let direct: &[([u16; 8], u32, &str)] = &[
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local (fe80::/10)"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (fec0::/10)"),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (fc00::/7)"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast (ff00::/8)"),
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, "discard (100::/64)"),
        ([0x2001, 0x0002, 0, 0, 0, 0, 0, 0], 48, "benchmarking (2001:2::/48)"),
        ([0x2001, 0x0020, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2 (2001:20::/28)"),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, "documentation (2001:db8::/32)"),
    ];
    if let Some(r) = direct.iter().find(|(base, len, _)| in_v6(ip, *base, *len)) {
        return Some(r.2);
    }
    // Forms that carry an IPv4 address: blocked when that address is.
    if let Some((v4, form)) = embedded_v4(ip) {
        return blocked_v4(v4).map(|_| form);
    }
    // The rest of IANA's 2001::/23 is special-purpose, except these public assignments.
    let public_2001: &[([u16; 8], u32)] = &[
        ([0x2001, 0x0003, 0, 0, 0, 0, 0, 0], 32),      // AMT
        ([0x2001, 0x0004, 0x0112, 0, 0, 0, 0, 0], 48), // AS112
        ([0x2001, 0x0010, 0, 0, 0, 0, 0, 0], 28),      // ORCHID (deprecated)
        ([0x2001, 0x0030, 0, 0, 0, 0, 0, 0], 28),      // DRIP
    ];
    if in_v6(ip, [0x2001, 0, 0, 0, 0, 0, 0, 0], 23) && !public_2001.iter().any(|(b, l)| in_v6(ip, *b, *l)) {
        return Some("reserved (2001::/23)");
    }
    let _ = h;
    None
}

/// The IPv4 address inside an IPv6 one, for every form OpenClaw decodes.
fn embedded_v4(ip: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let h = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if h[..5] == [0, 0, 0, 0, 0] && h[5] == 0xffff {
        return Some((v4(h[6], h[7]), "IPv4-mapped IPv6 (::ffff:0:0/96) of a private address"));
    }
    if h[..4] == [0, 0, 0, 0] && h[4] == 0xffff && h[5] == 0 {
        return Some((v4(h[6], h[7]), "IPv4-translated IPv6 (::ffff:0:0:0/96) of a private address"));
    }
    if h[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some((v4(h[6], h[7]), "NAT64 (64:ff9b::/96) of a private address"));
    }
    if h[..3] == [0x64, 0xff9b, 1] && h[3..6] == [0, 0, 0] {
        return Some((v4(h[6], h[7]), "NAT64 local-use (64:ff9b:1::/48) of a private address"));
    }
    if h[..6] == [0, 0, 0, 0, 0, 0] {
        return Some((v4(h[6], h[7]), "IPv4-compatible IPv6 (::/96) of a private address"));
    }
    if h[0] == 0x2002 {
        return Some((v4(h[1], h[2]), "6to4 (2002::/16) of a private address"));
    }
    if h[0] == 0x2001 && h[1] == 0 {
        return Some((v4(h[6] ^ 0xffff, h[7] ^ 0xffff), "Teredo (2001::/32) of a private address"));
    }
    if h[4] & 0xfcff == 0 && h[5] == 0x5efe {
        return Some((v4(h[6], h[7]), "ISATAP of a private address"));
    }
    None
}

/// Names refused before any lookup (OpenClaw's `BLOCKED_HOSTNAMES` and suffixes).
fn blocked_name(host: &str) -> bool {
    matches!(host, "localhost" | "localhost.localdomain" | "metadata.google.internal")
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
}

fn normalize_host(host: &str) -> String {
    host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// A `allowedHostnames`/`blockedHostnames` entry: a hostname, `*.suffix`, or an IP literal.
#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Exact(String),
    Suffix(String),
    Ip(IpAddr),
}

impl HostPattern {
    fn parse(raw: &str) -> Option<HostPattern> {
        let host = normalize_host(raw);
        if host.is_empty() || host == "*" || host == "*." {
            return None;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(HostPattern::Ip(canonical(ip)));
        }
        Some(match host.strip_prefix("*.") {
            Some(suffix) => HostPattern::Suffix(suffix.to_string()),
            None => HostPattern::Exact(host),
        })
    }

    fn matches_host(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => {
                host.len() > s.len() + 1 && host.ends_with(s.as_str()) && host.ends_with(&format!(".{s}"))
            }
            HostPattern::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| canonical(h) == *ip),
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        matches!(self, HostPattern::Ip(p) if *p == canonical(ip))
    }
}

/// An IPv4-mapped IPv6 address compares as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The compiled `ssrfPolicy`.
#[derive(Debug, Clone, Default)]
pub struct SsrfPolicy {
    allowed: Vec<HostPattern>,
    blocked: Vec<HostPattern>,
    allow_private: bool,
}

impl SsrfPolicy {
    pub fn new(config: &SsrfPolicyConfig) -> SsrfPolicy {
        SsrfPolicy {
            allowed: config.allowed_hostnames.iter().filter_map(|h| HostPattern::parse(h)).collect(),
            blocked: config.blocked_hostnames.iter().filter_map(|h| HostPattern::parse(h)).collect(),
            allow_private: config.dangerously_allow_private_network,
        }
    }

    /// The check before any lookup: the URL's host as written (a name or an IP literal).
    pub fn check_host(&self, raw_host: &str) -> Result<(), SsrfBlocked> {
        let host = normalize_host(raw_host);
        if host.is_empty() {
            return Err(SsrfBlocked("web_fetch: the URL has no host".into()));
        }
        if self.blocked.iter().any(|p| p.matches_host(&host)) {
            return Err(SsrfBlocked(format!(
                "web_fetch: `{host}` is listed in tools.web.fetch.ssrfPolicy.blockedHostnames"
            )));
        }
        if self.allow_private || self.allowed.iter().any(|p| p.matches_host(&host)) {
            return Ok(());
        }
        if blocked_name(&host) {
            return Err(SsrfBlocked(format!(
                "web_fetch: blocked hostname `{host}` (local/internal names are never fetched); {HINT}"
            )));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check_ip(&host, ip);
        }
        Ok(())
    }

    /// The check on an address a hostname resolved to — the address that will be connected to.
    pub fn check_resolved(&self, raw_host: &str, ip: IpAddr) -> Result<(), SsrfBlocked> {
        let host = normalize_host(raw_host);
        if self.blocked.iter().any(|p| p.matches_ip(ip)) {
            return Err(SsrfBlocked(format!(
                "web_fetch: `{host}` resolves to {ip}, which is listed in tools.web.fetch.ssrfPolicy.blockedHostnames"
            )));
        }
        if self.allow_private || self.allowed.iter().any(|p| p.matches_host(&host)) {
            return Ok(());
        }
        self.check_ip(&host, ip)
    }

    fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), SsrfBlocked> {
        if self.allowed.iter().any(|p| p.matches_ip(ip)) {
            return Ok(());
        }
        match blocked_range(ip) {
            None => Ok(()),
            Some(range) if host.parse::<IpAddr>().is_ok() => {
                Err(SsrfBlocked(format!("web_fetch: blocked private/internal address {ip}: {range}; {HINT}")))
            }
            Some(range) => Err(SsrfBlocked(format!(
                "web_fetch: blocked: `{host}` resolves to {ip}, a private/internal address: {range}; {HINT}"
            ))),
        }
    }
}

const HINT: &str = "to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames";

/// Looks up the addresses of a hostname. The system resolver is the default; tests use a
/// [`StaticResolver`] (a fixed table, like `/etc/hosts`).
pub trait HostResolver: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo` on a blocking thread, via tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed name → addresses table; names not in it do not resolve.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver(pub HashMap<String, Vec<IpAddr>>);

impl StaticResolver {
    pub fn with(mut self, host: &str, ips: &[IpAddr]) -> StaticResolver {
        self.0.insert(host.to_ascii_lowercase(), ips.to_vec());
        self
    }
}

impl HostResolver for StaticResolver {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let found = self.0.get(&normalize_host(host)).cloned();
        let host = host.to_string();
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no address for `{host}`")))
        })
    }
}

/// The HTTP client's DNS hook: resolves with the inner resolver, refuses the name when any address
/// is blocked (as OpenClaw does), and hands the client exactly the addresses it checked.
pub struct GuardedResolver {
    pub policy: Arc<SsrfPolicy>,
    pub inner: Arc<dyn HostResolver>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let policy = self.policy.clone();
        let lookup = self.inner.lookup(&host);
        Box::pin(async move {
            let ips = lookup.await?;
            if ips.is_empty() {
                return Err(Box::new(io::Error::new(io::ErrorKind::NotFound, format!("`{host}` has no address")))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            for ip in &ips {
                policy
                    .check_resolved(&host, *ip)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            }
            let addrs: Vec<SocketAddr> = ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn every_special_range_is_blocked_and_public_addresses_pass() {
        let rows = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // public neighbours of the ranges
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            // IPv6
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "100::1",
            "2001:2::1",
            "2001:20::1",
            "2001:db8::1",
            "2001:1::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:8.8.8.8",
            "::ffff:0:192.168.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::a00:1",
            "::127.0.0.1",
            "::8.8.8.8",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:808:808::",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2001:db9::5efe:10.0.0.1",
            "2607:f8b0::5efe:192.168.0.1",
            "2607:f8b0:4005:80a::200e",
            "2606:4700::1111",
            "2001:3::1",
            "2001:4:112::1",
        ];
        let table: String = rows
            .iter()
            .map(|s| {
                let ip: IpAddr = s.parse().unwrap();
                format!("{s:40} {}\n", blocked_range(ip).unwrap_or("public"))
            })
            .collect();
        expect![[r#"
            0.0.0.0                                  unspecified (0.0.0.0/8)
            0.1.2.3                                  unspecified (0.0.0.0/8)
            10.0.0.1                                 private (10.0.0.0/8)
            10.255.255.255                           private (10.0.0.0/8)
            100.64.0.1                               carrier-grade NAT (100.64.0.0/10)
            100.127.255.254                          carrier-grade NAT (100.64.0.0/10)
            127.0.0.1                                loopback (127.0.0.0/8)
            127.255.255.254                          loopback (127.0.0.0/8)
            169.254.169.254                          link-local (169.254.0.0/16)
            172.16.0.1                               private (172.16.0.0/12)
            172.31.255.255                           private (172.16.0.0/12)
            192.0.0.8                                reserved (192.0.0.0/24)
            192.0.2.1                                documentation (192.0.2.0/24)
            192.88.99.1                              reserved (192.88.99.0/24)
            192.168.1.1                              private (192.168.0.0/16)
            198.18.0.1                               benchmarking (198.18.0.0/15)
            198.19.255.255                           benchmarking (198.18.0.0/15)
            198.51.100.7                             documentation (198.51.100.0/24)
            203.0.113.9                              documentation (203.0.113.0/24)
            224.0.0.1                                multicast (224.0.0.0/4)
            239.255.255.250                          multicast (224.0.0.0/4)
            240.0.0.1                                reserved (240.0.0.0/4)
            255.255.255.255                          reserved (240.0.0.0/4)
            100.63.255.255                           public
            100.128.0.0                              public
            172.15.255.255                           public
            172.32.0.0                               public
            198.17.255.255                           public
            198.20.0.0                               public
            8.8.8.8                                  public
            1.1.1.1                                  public
            93.184.216.34                            public
            ::                                       unspecified (::)
            ::1                                      loopback (::1)
            fe80::1                                  link-local (fe80::/10)
            febf::1                                  link-local (fe80::/10)
            fec0::1                                  site-local (fec0::/10)
            fc00::1                                  unique local (fc00::/7)
            fd12:3456::1                             unique local (fc00::/7)
            ff02::1                                  multicast (ff00::/8)
            100::1                                   discard (100::/64)
            2001:2::1                                benchmarking (2001:2::/48)
            2001:20::1                               ORCHIDv2 (2001:20::/28)
            2001:db8::1                              documentation (2001:db8::/32)
            2001:1::1                                reserved (2001::/23)
            ::ffff:127.0.0.1                         IPv4-mapped IPv6 (::ffff:0:0/96) of a private address
            ::ffff:10.1.2.3                          IPv4-mapped IPv6 (::ffff:0:0/96) of a private address
            ::ffff:8.8.8.8                           public
            ::ffff:0:192.168.0.1                     IPv4-translated IPv6 (::ffff:0:0:0/96) of a private address
            64:ff9b::7f00:1                          NAT64 (64:ff9b::/96) of a private address
            64:ff9b::808:808                         public
            64:ff9b:1::a00:1                         NAT64 local-use (64:ff9b:1::/48) of a private address
            ::127.0.0.1                              IPv4-compatible IPv6 (::/96) of a private address
            ::8.8.8.8                                public
            2002:7f00:1::                            6to4 (2002::/16) of a private address
            2002:a9fe:a9fe::1                        6to4 (2002::/16) of a private address
            2002:808:808::                           public
            2001:0:4136:e378:8000:63bf:80ff:fffe     Teredo (2001::/32) of a private address
            2001:0:4136:e378:8000:63bf:f7f7:f7f7     public
            2001:db9::5efe:10.0.0.1                  ISATAP of a private address
            2607:f8b0::5efe:192.168.0.1              ISATAP of a private address
            2607:f8b0:4005:80a::200e                 public
            2606:4700::1111                          public
            2001:3::1                                public
            2001:4:112::1                            public
        "#]]
        .assert_eq(&table);
    }

    fn policy(allowed: &[&str], blocked: &[&str], private: bool) -> SsrfPolicy {
        SsrfPolicy::new(&SsrfPolicyConfig {
            allowed_hostnames: allowed.iter().map(|s| s.to_string()).collect(),
            blocked_hostnames: blocked.iter().map(|s| s.to_string()).collect(),
            dangerously_allow_private_network: private,
        })
    }

    #[test]
    fn host_and_resolved_checks_follow_the_policy_keys() {
        let default = policy(&[], &[], false);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let rows: Vec<(&str, Result<(), SsrfBlocked>)> = vec![
            ("localhost", default.check_host("localhost")),
            ("LOCALHOST.", default.check_host("LOCALHOST.")),
            ("printer.local", default.check_host("printer.local")),
            ("metadata.google.internal", default.check_host("metadata.google.internal")),
            ("app.localhost", default.check_host("app.localhost")),
            ("[::1] literal", default.check_host("[::1]")),
            ("example.com", default.check_host("example.com")),
            ("example.com → 127.0.0.1", default.check_resolved("example.com", ip("127.0.0.1"))),
            ("example.com → ::ffff:10.0.0.1", default.check_resolved("example.com", ip("::ffff:10.0.0.1"))),
            ("example.com → 93.184.216.34", default.check_resolved("example.com", ip("93.184.216.34"))),
            ("allowed ip literal 127.0.0.1", policy(&["127.0.0.1"], &[], false).check_host("127.0.0.1")),
            (
                "allowed ip → name resolving to it",
                policy(&["127.0.0.1"], &[], false).check_resolved("fake.test", ip("127.0.0.1")),
            ),
            (
                "allowed ip does not cover 127.0.0.2",
                policy(&["127.0.0.1"], &[], false).check_resolved("fake.test", ip("127.0.0.2")),
            ),
            (
                "allowed name → private",
                policy(&["intranet.test"], &[], false).check_resolved("intranet.test", ip("10.0.0.5")),
            ),
            (
                "allowed *.corp.test",
                policy(&["*.corp.test"], &[], false).check_resolved("wiki.corp.test", ip("10.0.0.5")),
            ),
            ("*.corp.test not apex", policy(&["*.corp.test"], &[], false).check_resolved("corp.test", ip("10.0.0.5"))),
            ("dangerouslyAllowPrivateNetwork", policy(&[], &[], true).check_resolved("x.test", ip("192.168.0.1"))),
            ("blocked name", policy(&[], &["evil.test"], true).check_host("evil.test")),
            ("blocked *.evil.test", policy(&[], &["*.evil.test"], false).check_host("a.b.evil.test")),
            (
                "blocked ip wins over allowed",
                policy(&["x.test"], &["93.184.216.34"], false).check_resolved("x.test", ip("93.184.216.34")),
            ),
        ];
        let table: String = rows
            .iter()
            .map(|(name, r)| {
                format!("{name:38} {}\n", r.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.0.clone()))
            })
            .collect();
        expect![[r#"
            localhost                              web_fetch: blocked hostname `localhost` (local/internal names are never fetched); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            LOCALHOST.                             web_fetch: blocked hostname `localhost` (local/internal names are never fetched); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            printer.local                          web_fetch: blocked hostname `printer.local` (local/internal names are never fetched); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            metadata.google.internal               web_fetch: blocked hostname `metadata.google.internal` (local/internal names are never fetched); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            app.localhost                          web_fetch: blocked hostname `app.localhost` (local/internal names are never fetched); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            [::1] literal                          web_fetch: blocked private/internal address ::1: loopback (::1); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            example.com                            ok
            example.com → 127.0.0.1                web_fetch: blocked: `example.com` resolves to 127.0.0.1, a private/internal address: loopback (127.0.0.0/8); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            example.com → ::ffff:10.0.0.1          web_fetch: blocked: `example.com` resolves to ::ffff:10.0.0.1, a private/internal address: IPv4-mapped IPv6 (::ffff:0:0/96) of a private address; to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            example.com → 93.184.216.34            ok
            allowed ip literal 127.0.0.1           ok
            allowed ip → name resolving to it      ok
            allowed ip does not cover 127.0.0.2    web_fetch: blocked: `fake.test` resolves to 127.0.0.2, a private/internal address: loopback (127.0.0.0/8); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            allowed name → private                 ok
            allowed *.corp.test                    ok
            *.corp.test not apex                   web_fetch: blocked: `corp.test` resolves to 10.0.0.5, a private/internal address: private (10.0.0.0/8); to allow it, add the host or address to tools.web.fetch.ssrfPolicy.allowedHostnames
            dangerouslyAllowPrivateNetwork         ok
            blocked name                           web_fetch: `evil.test` is listed in tools.web.fetch.ssrfPolicy.blockedHostnames
            blocked *.evil.test                    web_fetch: `a.b.evil.test` is listed in tools.web.fetch.ssrfPolicy.blockedHostnames
            blocked ip wins over allowed           web_fetch: `x.test` resolves to 93.184.216.34, which is listed in tools.web.fetch.ssrfPolicy.blockedHostnames
        "#]]
        .assert_eq(&table);
    }
}
