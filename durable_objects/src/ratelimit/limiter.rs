//! The rate-limiter object's logic over a small storage trait: decide a request for one of its many keys, store the
//! new state before answering, and sweep expired keys on an alarm. Pure: storage is the [`KeyStore`] trait (SQLite
//! in the object, a map in host tests) and `now_ms` is a parameter.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::gcra::{self, KeyState, Quota};
use super::protocol::{StandingReply, TakeReply, TakeRequest, MAX_KEY_BYTES};

/// The object's storage of key states.
pub trait KeyStore {
    fn load(&self, key: &str) -> Result<Option<KeyState>, String>;
    fn save(&self, key: &str, state: &KeyState) -> Result<(), String>;
    /// Deletes every key whose state expired at or before `now_ms`; returns how many.
    fn delete_expired(&self, now_ms: u64) -> Result<u64, String>;
    /// The earliest expiry among stored keys.
    fn next_expiry(&self) -> Result<Option<u64>, String>;
    fn count(&self) -> Result<u64, String>;
}

/// Why a request to the object was refused before any decision (a 400 from the object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimiterError {
    BadRequest(String),
    Storage(String),
    /// The take arrived at or after its [`TakeRequest::deadline_ms`]: the Worker has answered without it.
    PastDeadline {
        late_ms: u64,
    },
}

fn validate(req: &TakeRequest) -> Result<Quota, LimiterError> {
    if req.key.is_empty() || req.key.len() > MAX_KEY_BYTES {
        return Err(LimiterError::BadRequest(format!(
            "key must be 1 to {MAX_KEY_BYTES} bytes, got {}",
            req.key.len()
        )));
    }
    Quota::new(req.limit, req.window_ms).map_err(LimiterError::BadRequest)
}

/// Decides one request, storing the new state first (a request is answered only after its state is stored).
/// Returns the reply and the expiry of the stored state (for alarm scheduling) when something was stored.
pub fn take(
    store: &impl KeyStore,
    req: &TakeRequest,
    now_ms: u64,
) -> Result<(TakeReply, Option<u64>), LimiterError> {
    let quota = validate(req)?;
    if let Some(deadline_ms) = req.deadline_ms.filter(|&d| now_ms >= d) {
        return Err(LimiterError::PastDeadline {
            late_ms: now_ms - deadline_ms,
        });
    }
    let state = store.load(&req.key).map_err(LimiterError::Storage)?;
    let (decision, next) = gcra::take(state, quota, now_ms);
    let expiry = match next {
        Some(next) => {
            store.save(&req.key, &next).map_err(LimiterError::Storage)?;
            Some(next.expires_at_ms())
        }
        None => None,
    };
    Ok((TakeReply::from(decision), expiry))
}

/// Where a key stands, spending nothing.
pub fn standing(
    store: &impl KeyStore,
    req: &TakeRequest,
    now_ms: u64,
) -> Result<StandingReply, LimiterError> {
    let quota = validate(req)?;
    let state = store.load(&req.key).map_err(LimiterError::Storage)?;
    let stored = state.is_some_and(|s| s.expires_at_ms() > now_ms);
    Ok(StandingReply {
        stored,
        standing: TakeReply::from(gcra::peek(state, quota, now_ms)),
    })
}

/// Shortest time between two sweeps of one object. Keys of a generous quota expire within a millisecond of their
/// last request; sweeping each one as it expires would run the alarm (a storage write and an event) about as often
/// as requests arrive. An expired row left a little longer is harmless: GCRA reads it exactly as a fresh key.
pub const MIN_SWEEP_GAP_MS: u64 = 1_000;

/// The alarm to set after storing a state expiring at `expiry` at `now_ms`, given the alarm already pending.
/// Invariant kept: while any key is stored, an alarm is pending; a pending alarm is left alone (it will find later
/// keys still stored and reschedule for them), so a request waits on at most one alarm write, and only when none
/// was pending.
pub fn alarm_after_store(pending: Option<u64>, expiry: u64, now_ms: u64) -> Option<u64> {
    match pending {
        Some(_) => None,
        None => Some(expiry.max(now_ms + MIN_SWEEP_GAP_MS)),
    }
}

/// The alarm's work at `now_ms`: delete expired keys and say when to run again (`None` when no key is left), never
/// sooner than [`MIN_SWEEP_GAP_MS`] from now.
pub fn sweep(store: &impl KeyStore, now_ms: u64) -> Result<(u64, Option<u64>), String> {
    let deleted = store.delete_expired(now_ms)?;
    let next = store
        .next_expiry()?
        .map(|at| at.max(now_ms + MIN_SWEEP_GAP_MS));
    Ok((deleted, next))
}

/// An in-memory [`KeyStore`], for host tests and the shard simulator.
#[derive(Debug, Default)]
pub struct MemoryStore {
    keys: RefCell<BTreeMap<String, KeyState>>,
}

impl KeyStore for MemoryStore {
    fn load(&self, key: &str) -> Result<Option<KeyState>, String> {
        Ok(self.keys.borrow().get(key).copied())
    }

    fn save(&self, key: &str, state: &KeyState) -> Result<(), String> {
        self.keys.borrow_mut().insert(key.to_owned(), *state);
        Ok(())
    }

    fn delete_expired(&self, now_ms: u64) -> Result<u64, String> {
        let mut keys = self.keys.borrow_mut();
        let before = keys.len();
        keys.retain(|_, s| s.expires_at_ms() > now_ms);
        Ok((before - keys.len()) as u64)
    }

    fn next_expiry(&self) -> Result<Option<u64>, String> {
        Ok(self
            .keys
            .borrow()
            .values()
            .map(KeyState::expires_at_ms)
            .min())
    }

    fn count(&self) -> Result<u64, String> {
        Ok(self.keys.borrow().len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, limit: u32, window_ms: u64) -> TakeRequest {
        TakeRequest {
            key: key.to_owned(),
            limit,
            window_ms,
            deadline_ms: None,
        }
    }

    #[test]
    fn a_take_past_its_deadline_spends_nothing() {
        let store = MemoryStore::default();
        let late = TakeRequest {
            deadline_ms: Some(1_000),
            ..req("k", 1, 60_000)
        };
        assert_eq!(
            take(&store, &late, 1_000),
            Err(LimiterError::PastDeadline { late_ms: 0 }),
            "at the deadline the Worker has stopped waiting"
        );
        assert_eq!(
            take(&store, &late, 1_500),
            Err(LimiterError::PastDeadline { late_ms: 500 })
        );
        assert_eq!(store.count(), Ok(0), "nothing stored");
        let (reply, _) = take(&store, &late, 999).expect("in time");
        assert!(reply.allowed, "decided and spent before it");
        let (reply, _) = take(&store, &req("k", 1, 60_000), 5_000).expect("no deadline");
        assert!(
            !reply.allowed,
            "a take without a deadline is decided whenever it lands"
        );
    }

    #[test]
    fn keys_in_one_object_are_independent_and_exact() {
        let store = MemoryStore::default();
        for key in ["a", "b", "c"] {
            let passed = (0..9)
                .filter(|_| {
                    take(&store, &req(key, 3, 60_000), 0)
                        .expect("take")
                        .0
                        .allowed
                })
                .count();
            assert_eq!(passed, 3, "key {key} gets its own 3");
        }
        assert_eq!(store.count(), Ok(3));
    }

    #[test]
    fn a_refusal_stores_nothing_and_reports_when_to_retry() {
        let store = MemoryStore::default();
        let r = req("k", 1, 10_000);
        let (first, expiry) = take(&store, &r, 100).expect("take");
        assert!(first.allowed);
        assert_eq!(expiry, Some(10_100), "stored until the window has passed");
        let (second, none) = take(&store, &r, 200).expect("take");
        assert_eq!(
            (second.allowed, second.retry_after_ms, none),
            (false, 9_900, None)
        );
    }

    #[test]
    fn bad_requests_are_refused_before_touching_storage() {
        let store = MemoryStore::default();
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        for (r, why) in [
            (req("", 1, 1000), "empty key"),
            (req(&long, 1, 1000), "key too long"),
            (req("k", 0, 1000), "zero limit"),
            (req("k", 1, 0), "zero window"),
        ] {
            assert!(
                matches!(take(&store, &r, 0), Err(LimiterError::BadRequest(_))),
                "{why}"
            );
        }
        assert_eq!(store.count(), Ok(0), "nothing stored");
    }

    #[test]
    fn the_alarm_sweeps_expired_keys_and_reschedules_for_the_rest() {
        let store = MemoryStore::default();
        let (_, short) = take(&store, &req("short", 1, 1_000), 0).expect("take");
        let (_, long) = take(&store, &req("long", 1, 5_000), 0).expect("take");
        let (_, brief) = take(&store, &req("brief", 1_000, 1_000), 0).expect("take");
        let cases = [
            (
                alarm_after_store(None, short.expect("stored"), 0),
                Some(1_000),
                "first key sets the alarm",
            ),
            (
                alarm_after_store(Some(1_000), long.expect("stored"), 0),
                None,
                "a pending alarm is kept",
            ),
            (
                alarm_after_store(None, brief.expect("stored"), 0),
                Some(MIN_SWEEP_GAP_MS),
                "never sooner than the gap",
            ),
        ];
        for (got, expected, why) in cases {
            assert_eq!(got, expected, "{why}");
        }
        assert_eq!(
            sweep(&store, 1_000),
            Ok((2, Some(5_000))),
            "short and brief swept, alarm at long's expiry"
        );
        assert_eq!(
            sweep(&store, 5_000),
            Ok((1, None)),
            "all swept, no alarm needed"
        );
        assert_eq!(store.count(), Ok(0));
        take(&store, &req("again", 1_000, 1_000), 6_000).expect("take");
        assert_eq!(
            sweep(&store, 6_000),
            Ok((0, Some(6_000 + MIN_SWEEP_GAP_MS))),
            "a rerun waits at least the gap"
        );
    }

    #[test]
    fn standing_spends_nothing() {
        let store = MemoryStore::default();
        let r = req("k", 2, 1_000);
        take(&store, &r, 0).expect("take");
        for _ in 0..3 {
            let s = standing(&store, &r, 0).expect("standing");
            assert_eq!(
                (s.stored, s.standing.remaining),
                (true, 1),
                "still one left"
            );
        }
        assert!(
            !standing(&store, &r, 500).expect("standing").stored,
            "expired state is not stored state"
        );
    }
}
