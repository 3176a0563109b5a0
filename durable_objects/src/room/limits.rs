//! Per-socket update rate limit: a token bucket refilled continuously, with the time passed in.

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

    /// Takes a token if one is left after refilling up to `now_ms`; false means over the rate.
    pub fn take(&mut self, per_second: u32, burst: u32, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * f64::from(per_second)).min(f64::from(burst));
        self.last_ms = self.last_ms.max(now_ms);
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
    }
}
