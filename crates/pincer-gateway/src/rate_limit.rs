//! Failed-authentication limiting per remote address: `maxAttempts` failures within `windowMs`
//! lock the address out for `lockoutMs`.

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

    fn exempt(&self, ip: IpAddr) -> bool {
        self.config.exempt_loopback && ip.is_loopback()
    }

    /// `Err(retry_after_ms)` while the address is locked out.
    pub fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        if self.exempt(ip) {
            return Ok(());
        }
        let entries = self.entries.lock().expect("limiter lock");
        match entries.get(&ip) {
            Some(e) if e.locked_until > now_ms => Err((e.locked_until - now_ms) as u64),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns true when it started a lockout.
    pub fn record_failure(&self, ip: IpAddr, now_ms: i64) -> bool {
        if self.exempt(ip) {
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
        assert!(!limiter.record_failure(ip, 0));
        assert!(!limiter.record_failure(ip, 100));
        // The first failure falls out of the window.
        assert!(!limiter.record_failure(ip, 1_050));
        assert!(limiter.record_failure(ip, 1_060));
        assert_eq!(limiter.check(ip, 2_060), Err(4_000));
        assert_eq!(limiter.check(other, 2_060), Ok(()));
        assert_eq!(limiter.check(ip, 6_060), Ok(()));
    }

    #[test]
    fn loopback_exemption_is_configurable() {
        let limiter = AuthLimiter::new(RateLimitConfig {
            max_attempts: 1,
            window_ms: 1_000,
            lockout_ms: 5_000,
            exempt_loopback: true,
        });
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!limiter.record_failure(lo, 0));
        assert_eq!(limiter.check(lo, 1), Ok(()));
    }
}
