//! Per-socket rate limits: a token bucket refilled continuously, with the time passed in — one of messages, and one
//! of the bytes the room encodes and sends back to one socket's requests.

/// Reply bytes one socket may make the room encode and send it at once: a whole document at its largest (1.9 MB)
/// plus a whole room's presence (2 MiB) — what a client joining the fullest room could ask for.
pub const REPLY_BYTES_BURST: u32 = 4 * 1024 * 1024;
/// Reply bytes refilled per second: a whole largest document about once a minute. A request costs one message
/// token however much it makes the room encode, and a sync request or awareness query makes it encode the whole
/// document or presence: one member looping them (3 bytes each) kept a room of 1 MB busy for everyone.
pub const REPLY_BYTES_PER_SECOND: u32 = 64 * 1024;

/// A token bucket: `burst` tokens at most, refilled at `per_second`. One update costs one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn full(burst: u32, now_ms: u64) -> Self {
        Self {
            tokens: f64::from(burst),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, per_second: u32, burst: u32, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * f64::from(per_second)).min(f64::from(burst));
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Whether anything is left after refilling up to `now_ms`: a request whose cost is known only once it is
    /// served (a reply's size) may start, and pays with [`TokenBucket::spend`] after.
    pub fn has_any(&mut self, per_second: u32, burst: u32, now_ms: u64) -> bool {
        self.refill(per_second, burst, now_ms);
        self.tokens > 0.0
    }

    /// Spends `amount` tokens, going into debt if there are fewer: nothing more starts until refills repay it.
    pub fn spend(&mut self, amount: u64) {
        self.tokens -= amount as f64;
    }

    /// Whether the bucket is full again at `now_ms`, and so no different from a new one (it may be forgotten).
    pub fn is_full(&mut self, per_second: u32, burst: u32, now_ms: u64) -> bool {
        self.refill(per_second, burst, now_ms);
        self.tokens >= f64::from(burst)
    }

    /// Takes a token if one is left after refilling up to `now_ms`; false means over the rate.
    pub fn take(&mut self, per_second: u32, burst: u32, now_ms: u64) -> bool {
        self.refill(per_second, burst, now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies() {
        let mut bucket = TokenBucket::full(3, 1_000);
        let steps: &[(u64, bool, &str)] = &[
            (1_000, true, "first of the burst"),
            (1_000, true, "second of the burst"),
            (1_000, true, "third of the burst"),
            (1_000, false, "burst exhausted"),
            (
                1_099,
                false,
                "not yet a tenth of a second: no token at 10/s",
            ),
            (1_100, true, "one token refilled after 100 ms at 10/s"),
            (1_100, false, "and spent"),
            (60_000, true, "a long pause refills"),
            (60_000, true, "up to the burst"),
            (60_000, true, "the whole burst"),
            (60_000, false, "but never beyond it"),
            (59_000, false, "a clock going backwards refills nothing"),
        ];
        for (now, allowed, why) in steps {
            assert_eq!(bucket.take(10, 3, *now), *allowed, "at {now}: {why}");
        }
        assert!(!bucket.is_full(10, 3, 60_000), "spent at 60 s");
        assert!(
            bucket.is_full(10, 3, 60_300),
            "full again 3 tokens at 10/s later"
        );
    }

    #[test]
    fn a_cost_known_after_serving_is_paid_in_debt_that_refills_must_repay() {
        let mut bytes = TokenBucket::full(1_000, 0);
        assert!(bytes.has_any(100, 1_000, 0), "a full bucket starts a reply");
        bytes.spend(2_500);
        let steps: &[(u64, bool, &str)] = &[
            (0, false, "1,500 in debt"),
            (14_999, false, "still in debt a moment before it is repaid"),
            (15_001, true, "repaid after 15 s at 100/s"),
        ];
        for (now, allowed, why) in steps {
            assert_eq!(bytes.has_any(100, 1_000, *now), *allowed, "at {now}: {why}");
        }
    }
}
