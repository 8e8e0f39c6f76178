//! Per-channel send rate: a token bucket on the injected clock (burst = one second's worth).

/// A token bucket refilled at `per_second`; `0` means unlimited.
#[derive(Debug, Clone)]
pub struct Bucket {
    per_second: f64,
    tokens: f64,
    last_ms: i64,
}

impl Bucket {
    pub fn new(per_second: f64, now_ms: i64) -> Bucket {
        Bucket { per_second, tokens: per_second.max(1.0), last_ms: now_ms }
    }

    /// Takes a token; returns how long to wait (ms) before the send may go, 0 if it may go now.
    /// The token is charged either way, so concurrent senders queue up fairly.
    pub fn take(&mut self, now_ms: i64) -> i64 {
        if self.per_second <= 0.0 {
            return 0;
        }
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.last_ms = now_ms;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second.max(1.0));
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { 0 } else { (-self.tokens / self.per_second * 1000.0).ceil() as i64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_spaces_sends() {
        let mut b = Bucket::new(2.0, 0);
        assert_eq!((b.take(0), b.take(0)), (0, 0), "a burst of one second's worth");
        assert_eq!(b.take(0), 500);
        assert_eq!(b.take(0), 1000);
        // Time refills the bucket.
        let mut b = Bucket::new(2.0, 0);
        b.take(0);
        b.take(0);
        assert_eq!(b.take(1000), 0);
        assert_eq!(Bucket::new(0.0, 0).take(0), 0, "0 = unlimited");
    }
}
