//! GCRA (the generic cell rate algorithm) for one key: the exact, O(1)-state decision "may this request pass now?",
//! with the remaining quota and reset time the IETF RateLimit headers report. Pure: `now_ms` is a parameter.
//!
//! A quota of `limit` requests per `window_ms` is a bucket of `limit` tokens that refills one token every
//! `window_ms / limit` ms. The state is one instant, the theoretical arrival time (TAT): when the bucket would be full
//! again. A request passes iff `max(TAT, now) + window/limit − now ≤ window`. All arithmetic is in integer units of
//! `1/limit` ms, where the emission interval is exactly `window_ms` and the burst capacity exactly `window_ms · limit`,
//! so there is no rounding: from a full bucket exactly `limit` requests pass and the next is refused, and in any
//! interval of length `t` at most `limit + ⌊t · limit / window⌋` requests pass.

use serde::{Deserialize, Serialize};

/// Largest `limit` a quota may have (keeps `now_ms · limit` far inside `u64`/SQLite integer range until year 2262).
pub const MAX_LIMIT: u32 = 1_000_000;
/// Longest window a quota may have: one day.
pub const MAX_WINDOW_MS: u64 = 86_400_000;

/// `limit` requests per `window_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u32,
    window_ms: u64,
}

impl Quota {
    /// A quota, or why not: `limit` in `1..=MAX_LIMIT`, `window_ms` in `1..=MAX_WINDOW_MS`.
    pub fn new(limit: u32, window_ms: u64) -> Result<Self, String> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            ));
        }
        if window_ms == 0 || window_ms > MAX_WINDOW_MS {
            return Err(format!(
                "window_ms must be between 1 and {MAX_WINDOW_MS}, got {window_ms}"
            ));
        }
        Ok(Self { limit, window_ms })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }
}

/// The stored state of one key: its TAT as `tat_ms + tat_frac / scale` ms, where `scale` is the limit it was
/// computed under (so a policy whose limit changes reinterprets old state correctly instead of corrupting it).
/// Split into two fields so each stays a safe JavaScript integer on its way into SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    pub tat_ms: u64,
    pub tat_frac: u32,
    pub scale: u32,
}

impl KeyState {
    /// The TAT in units of `1/limit` ms (rounded up when the scale differs, never admitting more than it should).
    fn scaled(&self, limit: u32) -> u128 {
        let scale = u128::from(self.scale.max(1));
        let old = u128::from(self.tat_ms) * scale + u128::from(self.tat_frac);
        (old * u128::from(limit)).div_ceil(scale)
    }

    fn from_scaled(value: u128, limit: u32) -> Self {
        let limit128 = u128::from(limit);
        Self {
            tat_ms: (value / limit128) as u64,
            tat_frac: (value % limit128) as u32,
            scale: limit,
        }
    }

    /// From this instant on the key is indistinguishable from a key never seen, so its row may be deleted.
    pub fn expires_at_ms(&self) -> u64 {
        self.tat_ms + u64::from(self.tat_frac > 0)
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests that would still pass right now, after this one.
    pub remaining: u32,
    /// Milliseconds until the full quota is available again (the IETF `t` parameter, before rounding to seconds).
    pub reset_ms: u64,
    /// When refused: milliseconds until one request would pass (`Retry-After`); 0 when allowed.
    pub retry_after_ms: u64,
}

/// Decides one request. Returns the decision and the state to store (`None` when a refusal leaves it unchanged).
pub fn take(state: Option<KeyState>, quota: Quota, now_ms: u64) -> (Decision, Option<KeyState>) {
    let limit = u128::from(quota.limit);
    let interval = u128::from(quota.window_ms); // one request, in 1/limit ms
    let capacity = interval * limit; // the whole window, in 1/limit ms
    let now = u128::from(now_ms) * limit;
    let stored = state.map_or(now, |s| s.scaled(quota.limit)).max(now);
    // A stored TAT never counts for more than one whole window from now: one left by a longer window before a
    // policy change, or by a clock that has since stepped back, would otherwise refuse for up to the old window.
    // Under a steady quota and clock the TAT is never that far ahead, so the cap lets nothing more through.
    let tat = stored.min(now + capacity);
    let next = tat + interval;
    if next - now <= capacity {
        let used = next - now;
        let decision = Decision {
            allowed: true,
            limit: quota.limit,
            remaining: ((capacity - used) / interval) as u32,
            reset_ms: used.div_ceil(limit) as u64,
            retry_after_ms: 0,
        };
        (decision, Some(KeyState::from_scaled(next, quota.limit)))
    } else {
        let used = tat - now;
        let decision = Decision {
            allowed: false,
            limit: quota.limit,
            remaining: ((capacity - used.min(capacity)) / interval) as u32,
            reset_ms: used.div_ceil(limit) as u64,
            retry_after_ms: (next - now - capacity).div_ceil(limit) as u64,
        };
        // A capped TAT is stored, so later requests do not read the old one again.
        (
            decision,
            (tat < stored).then(|| KeyState::from_scaled(tat, quota.limit)),
        )
    }
}

/// Where a key stands without spending anything: what `remaining`/`reset_ms` would say before the next request.
pub fn peek(state: Option<KeyState>, quota: Quota, now_ms: u64) -> Decision {
    let limit = u128::from(quota.limit);
    let interval = u128::from(quota.window_ms);
    let capacity = interval * limit;
    let now = u128::from(now_ms) * limit;
    let tat = state
        .map_or(now, |s| s.scaled(quota.limit))
        .max(now)
        .min(now + capacity);
    let used = tat - now;
    let remaining = ((capacity - used) / interval) as u32;
    Decision {
        allowed: remaining > 0,
        limit: quota.limit,
        remaining,
        reset_ms: used.div_ceil(limit) as u64,
        retry_after_ms: if remaining > 0 {
            0
        } else {
            (tat + interval - now - capacity).div_ceil(limit) as u64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `count` requests at `now_ms` against `state`, returning how many passed and the final state.
    fn burst(state: &mut Option<KeyState>, quota: Quota, now_ms: u64, count: u32) -> u32 {
        let mut passed = 0;
        for _ in 0..count {
            let (decision, next) = take(*state, quota, now_ms);
            if decision.allowed {
                passed += 1;
            }
            if let Some(next) = next {
                *state = Some(next);
            }
        }
        passed
    }

    #[test]
    fn exactly_the_limit_passes_from_a_fresh_key_for_awkward_ratios() {
        // Ratios where window/limit is not a whole number of ms are where rounding would over- or under-admit.
        for (limit, window_ms) in [
            (1, 1),
            (3, 10),
            (7, 1000),
            (30, 100),
            (1000, 60_000),
            (MAX_LIMIT, 1),
        ] {
            let quota = Quota::new(limit, window_ms).expect("valid");
            let mut state = None;
            let passed = burst(
                &mut state,
                quota,
                1_700_000_000_000,
                limit.saturating_mul(3).min(3_000_003),
            );
            assert_eq!(
                passed, limit,
                "limit {limit} per {window_ms} ms: passed {passed}"
            );
        }
    }

    #[test]
    fn remaining_counts_down_and_reset_is_the_time_until_the_bucket_is_full() {
        let quota = Quota::new(4, 60_000).expect("valid");
        let mut state = None;
        let now = 1_000_000;
        for expected_remaining in [3, 2, 1, 0] {
            let (d, next) = take(state, quota, now);
            assert!(d.allowed, "request leaving {expected_remaining} passes");
            assert_eq!(d.remaining, expected_remaining, "remaining after a pass");
            assert_eq!(
                d.reset_ms,
                u64::from(4 - expected_remaining) * 15_000,
                "reset grows by one interval"
            );
            state = next;
        }
        let (refused, unchanged) = take(state, quota, now);
        assert!(!refused.allowed, "the fifth request is refused");
        assert_eq!(unchanged, None, "a refusal stores nothing");
        assert_eq!(
            (refused.remaining, refused.reset_ms, refused.retry_after_ms),
            (0, 60_000, 15_000)
        );
    }

    #[test]
    fn the_quota_refills_one_request_per_interval_and_fully_after_the_window() {
        let quota = Quota::new(4, 60_000).expect("valid");
        let mut state = None;
        assert_eq!(burst(&mut state, quota, 0, 10), 4, "burst of 4");
        assert_eq!(
            burst(&mut state, quota, 14_999, 1),
            0,
            "nothing refilled before one interval"
        );
        assert_eq!(
            burst(&mut state, quota, 15_000, 5),
            1,
            "one refilled after one interval"
        );
        assert_eq!(
            burst(&mut state, quota, 75_000, 10),
            4,
            "all refilled one window after the last pass"
        );
    }

    #[test]
    fn in_any_interval_at_most_limit_plus_refills_pass() {
        // Hammer one key every ms for three windows; check the GCRA bound over every window-long interval.
        let quota = Quota::new(5, 100).expect("valid");
        let mut state = None;
        let mut passes = Vec::new();
        for now in 0..300u64 {
            for _ in 0..burst(&mut state, quota, now, 3) {
                passes.push(now);
            }
        }
        for start in 0..200u64 {
            let inside = passes
                .iter()
                .filter(|&&t| t >= start && t < start + 100)
                .count();
            assert!(
                inside <= 5 + 99 * 5 / 100,
                "interval starting at {start}: {inside} passes"
            );
        }
    }

    #[test]
    fn a_changed_limit_reinterprets_stored_state_without_over_admitting() {
        let old = Quota::new(10, 1000).expect("valid");
        let mut state = None;
        assert_eq!(burst(&mut state, old, 0, 10), 10, "old quota exhausted");
        let new = Quota::new(3, 1000).expect("valid");
        assert_eq!(
            burst(&mut state, new, 0, 5),
            0,
            "the window is still fully used under the new limit"
        );
        assert_eq!(
            burst(&mut state, new, 1000, 5),
            3,
            "a window later the new limit applies"
        );
    }

    #[test]
    fn state_expires_when_the_bucket_is_full_again() {
        let quota = Quota::new(3, 1000).expect("valid");
        let (_, state) = take(None, quota, 5_000);
        let state = state.expect("stored");
        assert_eq!(
            state.expires_at_ms(),
            5_334,
            "one interval of 333.3 ms, rounded up"
        );
        assert_eq!(
            peek(Some(state), quota, 5_334),
            peek(None, quota, 5_334),
            "expired equals fresh"
        );
    }

    #[test]
    fn peek_reports_without_spending() {
        let quota = Quota::new(2, 1000).expect("valid");
        let fresh = peek(None, quota, 0);
        assert_eq!(
            (fresh.allowed, fresh.remaining, fresh.reset_ms),
            (true, 2, 0)
        );
        let (_, s1) = take(None, quota, 0);
        let (_, s2) = take(s1, quota, 0);
        let spent = peek(s2, quota, 0);
        assert_eq!(
            (spent.allowed, spent.remaining, spent.retry_after_ms),
            (false, 0, 500)
        );
    }

    #[test]
    fn quotas_outside_their_range_are_refused() {
        for (limit, window) in [
            (0, 1000),
            (MAX_LIMIT + 1, 1000),
            (1, 0),
            (1, MAX_WINDOW_MS + 1),
        ] {
            assert!(
                Quota::new(limit, window).is_err(),
                "limit {limit} window {window}"
            );
        }
    }

    /// Coverage only (it passed before it was written): a refusal's `retry_after_ms` is the first moment a request
    /// passes — `Retry-After` is built from it — and its `reset_ms` the first moment the whole quota is back, for
    /// ratios whose interval is no whole number of ms, a client retrying at once, early or as told.
    #[test]
    fn a_refusal_says_exactly_when_the_next_request_passes_and_the_quota_is_full() {
        for (limit, window_ms) in [
            (1, 1),
            (3, 10),
            (7, 1000),
            (30, 100),
            (10, 3_600_000),
            (999_999, 7),
            (MAX_LIMIT, MAX_WINDOW_MS),
        ] {
            let quota = Quota::new(limit, window_ms).expect("valid");
            let mut now = 1_700_000_000_000;
            // The whole window spent: the first request is refused, whatever the limit.
            let mut state = Some(KeyState {
                tat_ms: now + window_ms,
                tat_frac: 0,
                scale: limit,
            });
            let mut refusals = 0;
            for step in 0..300u64 {
                let (d, next) = take(state, quota, now);
                state = next.or(state);
                if d.allowed {
                    continue;
                }
                refusals += 1;
                let why = format!("{limit} per {window_ms} ms, step {step}");
                let retry = d.retry_after_ms;
                assert!(retry >= 1, "{why}: retry {retry}");
                assert!(take(state, quota, now + retry).0.allowed, "{why}: at retry");
                assert!(
                    !take(state, quota, now + retry - 1).0.allowed,
                    "{why}: 1 ms early"
                );
                assert_eq!(
                    peek(state, quota, now + d.reset_ms).remaining,
                    limit,
                    "{why}: full at reset"
                );
                assert!(
                    peek(state, quota, now + d.reset_ms - 1).remaining < limit,
                    "{why}: not before"
                );
                // Retry now, as told, or a little early: the next refusal counts from there.
                now += [0, retry, retry / 2][(step % 3) as usize];
            }
            assert!(
                refusals > 0,
                "{limit} per {window_ms} ms: refused at least once"
            );
        }
    }

    #[test]
    fn a_shortened_window_or_a_clock_stepping_back_refuses_for_at_most_one_window() {
        let hourly = Quota::new(10, 3_600_000).expect("valid");
        let mut state = None;
        assert_eq!(burst(&mut state, hourly, 0, 10), 10);
        let per_minute = Quota::new(10, 60_000).expect("valid");
        let (d, next) = take(state, per_minute, 120_000);
        assert!(
            !d.allowed,
            "the quota is still spent in the new window's terms"
        );
        assert_eq!(d.reset_ms, 60_000, "at most the new window");
        assert_eq!(d.retry_after_ms, 6_000, "one request's interval");
        assert!(next.is_some(), "the capped state is stored");
        assert_eq!(peek(state, per_minute, 120_000).reset_ms, 60_000);
        let (d, _) = take(next, per_minute, 126_000);
        assert!(d.allowed, "one interval later one request passes");

        let quota = Quota::new(5, 60_000).expect("valid");
        let (_, state) = take(None, quota, 1_000_000);
        let (d, _) = take(state, quota, 400_000);
        assert!(
            d.reset_ms <= 60_000,
            "reset {} ms past a 60 s window",
            d.reset_ms
        );
    }
}
