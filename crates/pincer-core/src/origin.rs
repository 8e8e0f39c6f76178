//! Browser origins (`scheme://host[:port]`) as a WebSocket upgrade's `Origin` header and
//! `gateway.controlUi.allowedOrigins` carry them, and the check that keeps other web sites off the
//! gateway's WebSocket (cross-site WebSocket hijacking).
//!
//! An upgrade without `Origin` (the CLI, OpenClaw's clients) is not a browser and is allowed. A
//! browser's is allowed when it is listed, or when it is the gateway's own page: the same host and
//! port as the request's `Host`, where that host is `localhost` or an IP address. A DNS name must
//! be listed: a page on `attacker.example` whose name the attacker points at 127.0.0.1 (DNS
//! rebinding) sends `Origin` and `Host` that match each other, and only the list tells them apart.

use std::net::IpAddr;

/// A parsed origin: lowercase scheme (`http` or `https`) and host, and the port (explicit or the
/// scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    /// Lowercase; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `http(s)://host[:port]` (one trailing `/` allowed); `None` for anything else,
    /// including the opaque origin `null`.
    pub fn parse(text: &str) -> Option<Origin> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = host_port(rest, default_port)?;
        Some(Origin { scheme, host, port })
    }

    /// The canonical text: `scheme://host` plus `:port` unless it is the scheme's default.
    pub fn canonical(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            format!("{}://{host}", self.scheme)
        } else {
            format!("{}://{host}:{}", self.scheme, self.port)
        }
    }

    /// `localhost` or an IP address: a name no other site can be served under.
    fn names_this_machine_only(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok()
    }
}

/// `host[:port]` of a `Host` header or an origin: lowercase host (IPv6 without brackets) and port.
fn host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (addr.to_string(), None),
            p => (addr.to_string(), Some(p.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && (host.contains(':') || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p != 0)?
        }
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Checks one entry of `gateway.controlUi.allowedOrigins`.
pub fn check_allowed_entry(entry: &str) -> Result<(), String> {
    if entry.trim() == "*" || Origin::parse(entry).is_some() {
        return Ok(());
    }
    Err(format!("`{entry}` is not an origin; write scheme://host[:port] with no path, e.g. https://pincer.example.net"))
}

/// Decides whether a WebSocket upgrade carrying `origin` (the header's value; `None` when absent)
/// and `host` (the `Host` header) may proceed. `Err` says why not, for the refusal.
pub fn check_upgrade_origin(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = origin else { return Ok(()) };
    let Some(parsed) = Origin::parse(origin) else {
        return Err(format!(
            "origin `{}` is missing or invalid; a page must come from this gateway or from gateway.controlUi.allowedOrigins",
            clip(origin)
        ));
    };
    let listed = allowed.iter().any(|a| a.trim() == "*" || Origin::parse(a).is_some_and(|a| a == parsed));
    if listed {
        return Ok(());
    }
    let default_port = if parsed.scheme == "https" { 443 } else { 80 };
    let same_host = host.and_then(|h| host_port(h.trim(), default_port)) == Some((parsed.host.clone(), parsed.port));
    if same_host && parsed.names_this_machine_only() {
        return Ok(());
    }
    Err(format!(
        "origin `{}` is not this gateway's own; if that page is yours, add it to gateway.controlUi.allowedOrigins",
        parsed.canonical()
    ))
}

fn clip(s: &str) -> String {
    s.chars().take(100).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_to_scheme_host_and_port() {
        let o = |s: &str| Origin::parse(s).map(|o| (o.scheme, o.host, o.port));
        assert_eq!(o("http://127.0.0.1:18789"), Some(("http".into(), "127.0.0.1".into(), 18789)));
        assert_eq!(o("HTTPS://Pincer.Example.NET/"), Some(("https".into(), "pincer.example.net".into(), 443)));
        assert_eq!(o("http://[::1]:8080"), Some(("http".into(), "::1".into(), 8080)));
        assert_eq!(o("http://localhost"), Some(("http".into(), "localhost".into(), 80)));
        for bad in
            ["null", "", "file://", "ftp://x", "http://", "http://a/b", "http://a:0", "http://a:99999", "http://[zz]:1"]
        {
            assert_eq!(o(bad), None, "{bad}");
        }
        assert_eq!(Origin::parse("https://x.net:443").unwrap().canonical(), "https://x.net");
        assert_eq!(Origin::parse("http://[::1]:9").unwrap().canonical(), "http://[::1]:9");
    }

    #[test]
    fn the_gateways_own_page_and_listed_origins_pass_everything_else_is_refused() {
        let none: &[String] = &[];
        let check = |origin: Option<&str>, host: &str, allowed: &[String]| {
            check_upgrade_origin(origin, Some(host), allowed).map_err(|e| e.split(';').next().unwrap().to_string())
        };
        // No Origin: the CLI and OpenClaw's clients.
        assert_eq!(check(None, "127.0.0.1:18789", none), Ok(()));
        // The console itself, however the owner reached the port.
        assert_eq!(check(Some("http://127.0.0.1:18789"), "127.0.0.1:18789", none), Ok(()));
        assert_eq!(check(Some("http://localhost:9000"), "localhost:9000", none), Ok(()));
        assert_eq!(check(Some("http://[::1]:18789"), "[::1]:18789", none), Ok(()));
        assert_eq!(check(Some("http://192.168.1.5:18789"), "192.168.1.5:18789", none), Ok(()));
        // Another site, another port on this machine, DNS rebinding, opaque and broken origins.
        let refused = |o: &str| Err(format!("origin `{o}` is not this gateway's own"));
        assert_eq!(check(Some("https://evil.example"), "127.0.0.1:18789", none), refused("https://evil.example"));
        assert_eq!(check(Some("http://127.0.0.1:5173"), "127.0.0.1:18789", none), refused("http://127.0.0.1:5173"));
        assert_eq!(
            check(Some("http://rebind.example:18789"), "rebind.example:18789", none),
            refused("http://rebind.example:18789")
        );
        assert_eq!(check(Some("null"), "127.0.0.1:18789", none), Err("origin `null` is missing or invalid".into()));
        assert!(check_upgrade_origin(Some("null"), None, none).unwrap_err().contains("allowedOrigins"));
        assert!(check_upgrade_origin(Some("http://127.0.0.1:1"), None, none).is_err(), "no Host: no same-origin");
        // Listed origins, and the explicit wildcard.
        let listed = vec!["https://pincer.example.net".to_string()];
        assert_eq!(check(Some("https://pincer.example.net"), "127.0.0.1:18789", &listed), Ok(()));
        assert_eq!(check(Some("https://pincer.example.net:443"), "x", &listed), Ok(()));
        assert!(check(Some("http://pincer.example.net"), "x", &listed).is_err(), "the scheme is part of it");
        assert_eq!(check(Some("https://anything.example"), "x", &["*".to_string()]), Ok(()));
    }

    #[test]
    fn config_entries_must_be_origins() {
        assert_eq!(check_allowed_entry("https://pincer.example.net"), Ok(()));
        assert_eq!(check_allowed_entry("*"), Ok(()));
        assert!(check_allowed_entry("pincer.example.net").unwrap_err().contains("scheme://host[:port]"));
        assert!(check_allowed_entry("https://x.net/console").is_err());
    }
}
