//! Failed-authentication limiting per remote address: `maxAttempts` failures within `windowMs`
//! lock the address out for `lockoutMs`. As in OpenClaw, local clients are exempt by default
//! (`exemptLoopback`), so a local process cannot lock the owner out; a browser page on loopback
//! (it sends `Origin`) and anything behind a local proxy are not exempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use pincer_core::config::RateLimitConfig;

#[derive(Debug)]
pub struct AuthLimiter {
    config: RateLimitConfig,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    failures: Vec<i64>,
    locked_until: i64,
}

impl AuthLimiter {
    pub fn new(config: RateLimitConfig) -> AuthLimiter {
        AuthLimiter { config, entries: Mutex::new(HashMap::new()) }
    }

    /// `local`: a direct loopback client without a browser `Origin`.
    fn exempt(&self, local: bool) -> bool {
        self.config.exempt_loopback && local
    }

    /// `Err(retry_after_ms)` while the address is locked out.
    pub fn check(&self, ip: IpAddr, local: bool, now_ms: i64) -> Result<(), u64> {
        if self.exempt(local) {
            return Ok(());
        }
        let entries = self.entries.lock().expect("limiter lock");
        match entries.get(&ip) {
            Some(e) if e.locked_until > now_ms => Err((e.locked_until - now_ms) as u64),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns true when it started a lockout.
    pub fn record_failure(&self, ip: IpAddr, local: bool, now_ms: i64) -> bool {
        if self.exempt(local) {
            return false;
        }
        let mut entries = self.entries.lock().expect("limiter lock");
        // Bound memory under a spray of addresses: forget idle entries.
        if entries.len() > 10_000 {
            entries.retain(|_, e| {
                e.locked_until > now_ms || e.failures.iter().any(|t| now_ms - t < self.config.window_ms as i64)
            });
        }
        let entry = entries.entry(ip).or_default();
        entry.failures.retain(|t| now_ms - t < self.config.window_ms as i64);
        entry.failures.push(now_ms);
        if entry.failures.len() as u32 >= self.config.max_attempts {
            entry.failures.clear();
            entry.locked_until = now_ms + self.config.lockout_ms as i64;
            return true;
        }
        false
    }

    pub fn record_success(&self, ip: IpAddr) {
        self.entries.lock().expect("limiter lock").remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_max_failures_in_window_then_expires() {
        let limiter = AuthLimiter::new(RateLimitConfig {
            max_attempts: 3,
            window_ms: 1_000,
            lockout_ms: 5_000,
            exempt_loopback: false,
        });
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        assert!(!limiter.record_failure(ip, false, 0));
        assert!(!limiter.record_failure(ip, false, 100));
        // The first failure falls out of the window.
        assert!(!limiter.record_failure(ip, false, 1_050));
        assert!(limiter.record_failure(ip, false, 1_060));
        assert_eq!(limiter.check(ip, false, 2_060), Err(4_000));
        assert_eq!(limiter.check(other, false, 2_060), Ok(()));
        assert_eq!(limiter.check(ip, false, 6_060), Ok(()));
    }

    #[test]
    fn local_clients_are_exempt_by_default_and_only_they() {
        let config = RateLimitConfig { max_attempts: 1, ..RateLimitConfig::default() };
        assert!(config.exempt_loopback, "OpenClaw's default");
        let limiter = AuthLimiter::new(config.clone());
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!limiter.record_failure(lo, true, 0));
        assert_eq!(limiter.check(lo, true, 1), Ok(()));
        // Loopback with an Origin (a browser page) or proxy headers is not `local`.
        assert!(limiter.record_failure(lo, false, 2));
        assert_eq!(limiter.check(lo, false, 3), Err(300_000 - 1));
        // Switched off, local clients are limited too.
        let strict = AuthLimiter::new(RateLimitConfig { exempt_loopback: false, ..config });
        assert!(strict.record_failure(lo, true, 0));
        assert!(strict.check(lo, true, 1).is_err());
    }
}
