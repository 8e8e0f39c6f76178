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

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Changes the rate from `now_ms` on (a config reload): what was taken stays taken — sends
    /// still waiting their turn keep it, and the bucket is not refilled, so no burst gets
    /// through — and the time since is counted at the old rate, the time after at the new one.
    pub fn set_rate(&mut self, per_second: f64, now_ms: i64) {
        self.refill(now_ms);
        self.per_second = per_second;
        self.tokens = self.tokens.min(per_second.max(1.0));
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second.max(1.0));
    }

    /// Takes a token; returns how long to wait (ms) before the send may go, 0 if it may go now.
    /// The token is charged either way, so concurrent senders queue up fairly.
    pub fn take(&mut self, now_ms: i64) -> i64 {
        if self.per_second <= 0.0 {
            return 0;
        }
        self.refill(now_ms);
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

    #[test]
    fn a_new_rate_keeps_what_was_taken() {
        // Two sends queued at 1/s (the second waits 1 s); the rate becomes 4/s at 500 ms.
        let mut b = Bucket::new(1.0, 0);
        assert_eq!((b.take(0), b.take(0)), (0, 1000));
        b.set_rate(4.0, 500);
        // Half a second at 1/s paid half the debt; the rest is paid at 4/s: the next token is
        // due 125 ms (the half-token debt) + 250 ms (its own) later.
        assert_eq!(b.take(500), 375);
        // Lowering the rate does not refill: the bucket holds at most the new second's worth.
        let mut b = Bucket::new(10.0, 0);
        b.set_rate(1.0, 0);
        assert_eq!((b.take(0), b.take(0)), (0, 1000));
    }
}
