//! The isolate's side of one limited request, before any I/O: refuse locally a key known to be exhausted (no round
//! trip), else name the one object to ask and what to ask it, choosing a split key's part. Pure.

use durable_objects::ratelimit::protocol::{object_name, TakeReply, TakeRequest};
use durable_objects::ratelimit::shard::{sub_key, target, Target};

use super::headers::{seconds, RateLimitHeaders};
use super::memory::{Exhausted, IsolateMemory};
use super::policy::Policy;

/// How much later than the moment the Worker stops waiting a take's deadline is ([`deadline`]). The object judges
/// the deadline by its own clock, and a Worker's clock stands still while it computes (it advances with I/O): with
/// the deadline at that moment exactly, an object whose clock ran a little ahead of the Worker's — at `timeout_ms`
/// 50, by more than the time left after the round trip — refused a take the Worker was still waiting for "past its
/// deadline", and the client got 503 from a working limiter. The cost: a take decided in the margin after the
/// Worker answered 503 spends quota, as one decided just before it always could.
pub const DEADLINE_MARGIN_MS: u64 = 250;

/// How far (at least) the object's clock runs ahead of the Worker's, when a take with deadline `deadline_ms` was
/// answered "`late_ms` past its deadline" (by the object's clock) and the answer reached a Worker still waiting at
/// `answered_at_ms` (by its own): the object judged before it answered, so its clock then read `deadline_ms +
/// late_ms` while the Worker's read at most `answered_at_ms` — before the deadline by [`DEADLINE_MARGIN_MS`] at least.
pub fn clock_skew_ms(deadline_ms: u64, late_ms: u64, answered_at_ms: u64) -> u64 {
    deadline_ms
        .saturating_add(late_ms)
        .saturating_sub(answered_at_ms)
}

/// The deadline a take carries for a request that waits at most `timeout_ms` from `now_ms` (failing closed).
pub fn deadline(now_ms: u64, timeout_ms: u64) -> u64 {
    now_ms + timeout_ms + DEADLINE_MARGIN_MS
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Known exhausted: answer 429 now.
    Refuse {
        headers: RateLimitHeaders,
        retry_after_ms: u64,
    },
    /// Ask `object` (of the policy's binding) to take one request for `take.key`.
    Ask {
        object: String,
        take: TakeRequest,
        /// Where the isolate remembers this state key if it is refused.
        memory_key: String,
    },
}

fn memory_key(policy: &Policy, state_key: &str) -> String {
    format!("{}:{state_key}", policy.name)
}

/// The name under which an isolate remembers `object` (of the policy's binding) silent ([`IsolateMemory::gate`]).
pub fn silent_key(policy: &Policy, object: &str) -> String {
    format!("{}/{object}", policy.binding)
}

/// Where part `part` of `key` (over `parts`; 1 = not split) lives under `policy`: its shard by the policy's
/// [`super::policy::ShardKey`] when one is set, else FNV-1a.
fn target_of(policy: &Policy, key: &str, parts: u32, part: u32) -> Target {
    let mut target = target(key, policy.limit, policy.shards, parts, part);
    if let Some(shard_key) = &policy.shard_key {
        target.shard = shard_key.shard_of(&target.state_key, policy.shards);
    }
    target
}

/// The plan for `key` under `policy` at `now_ms`.
pub fn plan(memory: &mut IsolateMemory, policy: &Policy, key: &str, now_ms: u64) -> Plan {
    let parts = policy.parts(key);
    let exhausted = known_exhausted(memory, policy, key, now_ms);
    let part = if parts > 1 {
        // Each policy rotates on its own: two policies splitting one key must not advance each other's turn.
        let rotation = memory_key(policy, key);
        // A part whose object is silent would get the failure mode's answer (503 failing closed, uncounted failing
        // open) while another part, on another object, can take the request within its own share: it is skipped,
        // unless every part left is silent (then one is asked, and its failure mode answers, never a 429).
        let silent: Vec<bool> = if memory.any_silent(now_ms) {
            (0..parts)
                .map(|p| {
                    let object = object_name(&policy.name, target_of(policy, key, parts, p).shard);
                    memory.silent(&silent_key(policy, &object), now_ms)
                })
                .collect()
        } else {
            vec![false; parts as usize]
        };
        memory
            .next_part(&rotation, parts, |p| {
                exhausted[p as usize].is_none() && !silent[p as usize]
            })
            .or_else(|| memory.next_part(&rotation, parts, |p| exhausted[p as usize].is_none()))
    } else {
        exhausted[0].is_none().then_some(0)
    };
    let Some(part) = part else {
        return refusal(policy, &exhausted, now_ms);
    };
    let target = target_of(policy, key, parts, part);
    Plan::Ask {
        object: object_name(&policy.name, target.shard),
        memory_key: memory_key(policy, &target.state_key),
        take: TakeRequest {
            key: target.state_key,
            limit: target.limit,
            window_ms: policy.window_ms(),
            deadline_ms: None,
        },
    }
}

/// What this isolate remembers of each part of `key` (one part when it is not split): exhausted until when.
fn known_exhausted(
    memory: &IsolateMemory,
    policy: &Policy,
    key: &str,
    now_ms: u64,
) -> Vec<Option<Exhausted>> {
    let parts = policy.parts(key);
    (0..parts)
        .map(|p| {
            let state_key = if parts > 1 {
                sub_key(key, p)
            } else {
                key.to_owned()
            };
            memory.exhausted(&memory_key(policy, &state_key), now_ms)
        })
        .collect()
}

/// The local refusal of a key whose every part is known exhausted: the earliest part to free up says when to
/// retry, the last one to fill up again when the whole key's quota is back (the 429's `t` is its `Retry-After`:
/// [`RateLimitHeaders::refusal`]).
fn refusal(policy: &Policy, exhausted: &[Option<Exhausted>], now_ms: u64) -> Plan {
    let known = exhausted.iter().flatten();
    let until = known.clone().map(|e| e.until_ms).min().unwrap_or(now_ms);
    let reset_at = known.map(|e| e.reset_at_ms).max().unwrap_or(now_ms);
    Plan::Refuse {
        headers: RateLimitHeaders {
            policy: policy.name.clone(),
            limit: policy.limit,
            window_s: policy.window_s,
            standing: Some((0, seconds(reset_at.saturating_sub(now_ms)))),
        },
        retry_after_ms: until.saturating_sub(now_ms),
    }
}

/// The refusal [`plan`] would answer for `key` without a round trip, if this isolate knows every part of it
/// exhausted at `now_ms`; `None` when the key would be asked. Changes nothing (a split key's rotation stays): for a
/// caller that skips work an over-limit client must not cause before it counts the request.
pub fn known_refusal(
    memory: &IsolateMemory,
    policy: &Policy,
    key: &str,
    now_ms: u64,
) -> Option<Plan> {
    let exhausted = known_exhausted(memory, policy, key, now_ms);
    exhausted
        .iter()
        .all(Option::is_some)
        .then(|| refusal(policy, &exhausted, now_ms))
}

/// The headers for an object's reply: the policy's own limit and window, the asked key's standing (for a split
/// key, the standing of the part this request used).
pub fn headers_for(policy: &Policy, reply: &TakeReply) -> RateLimitHeaders {
    RateLimitHeaders {
        policy: policy.name.clone(),
        limit: policy.limit,
        window_s: policy.window_s,
        standing: Some((reply.remaining, seconds(reply.reset_ms))),
    }
}

/// Records a refusal so later requests for the same state key are refused without a round trip.
pub fn remember_refusal(
    memory: &mut IsolateMemory,
    memory_key: &str,
    reply: &TakeReply,
    now_ms: u64,
) {
    if !reply.allowed {
        memory.remember(memory_key, now_ms, reply.retry_after_ms, reply.reset_ms);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use durable_objects::ratelimit::shard::shard_of;

    use super::*;
    use crate::ratelimit::memory::SILENT_FOR_MS;
    use crate::ratelimit::policy::{FailureMode, KeySource};

    fn policy(hot_keys: &[(&str, u32)]) -> Policy {
        Policy {
            name: "api".into(),
            limit: 10,
            window_s: 60,
            key: KeySource::ClientIp,
            shards: 8,
            failure: FailureMode::Open,
            timeout_ms: 5_000,
            hot_keys: hot_keys
                .iter()
                .map(|(k, p)| ((*k).to_owned(), *p))
                .collect::<BTreeMap<_, _>>(),
            binding: "RATE_LIMITER".into(),
            check: false,
            shard_key: None,
        }
    }

    fn refused(retry_after_ms: u64) -> TakeReply {
        TakeReply {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_ms: 60_000,
            retry_after_ms,
        }
    }

    #[test]
    fn a_plain_key_asks_its_shard_object_with_the_whole_limit() {
        let mut memory = IsolateMemory::new(100, 0);
        let Plan::Ask {
            object,
            take,
            memory_key,
        } = plan(&mut memory, &policy(&[]), "ip:1.2.3.4", 0)
        else {
            panic!("a fresh key asks its object");
        };
        assert_eq!(object, format!("api:{}", shard_of("ip:1.2.3.4", 8)));
        assert_eq!(
            take,
            TakeRequest {
                key: "ip:1.2.3.4".into(),
                limit: 10,
                window_ms: 60_000,
                deadline_ms: None,
            }
        );
        assert_eq!(memory_key, "api:ip:1.2.3.4");
    }

    /// The object judges a take's deadline by its own clock: one a little ahead of the Worker's must not refuse a
    /// take the Worker is still waiting for.
    #[test]
    fn a_take_answered_past_its_deadline_while_the_worker_waits_measures_the_clock_skew() {
        let now = 1_700_000_000_000;
        let at = deadline(now, 2_000);
        // Answered 1,500 ms into the wait by an object that found the take 10 ms late: its clock was 760 ms ahead.
        assert_eq!(clock_skew_ms(at, 10, now + 1_500), 2_000 + 250 + 10 - 1_500);
        assert_eq!(clock_skew_ms(at, 0, at + 5), 0, "never negative");
    }

    #[test]
    fn a_takes_deadline_leaves_a_margin_past_the_workers_timeout() {
        use durable_objects::ratelimit::limiter::{take, LimiterError};
        let now = 1_000_000;
        let at = deadline(now, 50);
        assert_eq!(at, now + 50 + DEADLINE_MARGIN_MS);
        let store = durable_objects::ratelimit::limiter::MemoryStore::default();
        let req = TakeRequest {
            key: "k".into(),
            limit: 5,
            window_ms: 60_000,
            deadline_ms: Some(at),
        };
        // Decided at the Worker's timeout by an object clock 200 ms ahead: still in time.
        assert!(take(&store, &req, now + 50 + 200).is_ok());
        assert!(matches!(
            take(&store, &req, at),
            Err(LimiterError::PastDeadline { .. })
        ));
    }

    #[test]
    fn a_refused_key_is_refused_locally_until_its_retry_time() {
        let p = policy(&[]);
        let mut memory = IsolateMemory::new(100, 0);
        remember_refusal(&mut memory, "api:ip:1.2.3.4", &refused(6_000), 1_000);
        match plan(&mut memory, &p, "ip:1.2.3.4", 2_000) {
            Plan::Refuse {
                headers,
                retry_after_ms,
            } => {
                assert_eq!(retry_after_ms, 5_000, "retry counts from now");
                assert_eq!(headers.standing, Some((0, 59)), "reset counts from now");
            }
            other => panic!("expected a local refusal, got {other:?}"),
        }
        assert!(
            matches!(plan(&mut memory, &p, "ip:1.2.3.4", 7_000), Plan::Ask { .. }),
            "asked again at retry time"
        );
        assert!(
            matches!(plan(&mut memory, &p, "ip:5.6.7.8", 2_000), Plan::Ask { .. }),
            "other keys asked"
        );
    }

    #[test]
    fn a_known_refusal_is_the_local_plan_and_spends_no_turn() {
        let p = policy(&[("ip:9.9.9.9", 2)]);
        let mut memory = IsolateMemory::new(100, 0);
        assert_eq!(known_refusal(&memory, &p, "ip:1.2.3.4", 0), None, "fresh");
        remember_refusal(&mut memory, "api:ip:1.2.3.4", &refused(6_000), 1_000);
        let known = known_refusal(&memory, &p, "ip:1.2.3.4", 2_000);
        assert!(
            matches!(
                known,
                Some(Plan::Refuse {
                    retry_after_ms: 5_000,
                    ..
                })
            ),
            "{known:?}"
        );
        assert_eq!(
            known,
            Some(plan(&mut memory, &p, "ip:1.2.3.4", 2_000)),
            "what plan answers"
        );
        assert_eq!(
            known_refusal(&memory, &p, "ip:1.2.3.4", 7_000),
            None,
            "after its retry time"
        );
        remember_refusal(&mut memory, "api:ip:9.9.9.9\u{1f}0", &refused(1_000), 0);
        assert_eq!(
            known_refusal(&memory, &p, "ip:9.9.9.9", 0),
            None,
            "a part is left"
        );
        let Plan::Ask { take, .. } = plan(&mut memory, &p, "ip:9.9.9.9", 0) else {
            panic!("part 1 is asked")
        };
        assert_eq!(take.key, "ip:9.9.9.9\u{1f}1");
        remember_refusal(&mut memory, "api:ip:9.9.9.9\u{1f}1", &refused(2_000), 0);
        assert!(
            known_refusal(&memory, &p, "ip:9.9.9.9", 0).is_some(),
            "both parts known exhausted"
        );
    }

    #[test]
    fn a_hot_key_rotates_over_its_parts_with_their_shares_and_skips_exhausted_parts() {
        let p = policy(&[("ip:9.9.9.9", 4)]);
        let mut memory = IsolateMemory::new(100, 0);
        let asks: Vec<TakeRequest> = (0..4)
            .map(|_| match plan(&mut memory, &p, "ip:9.9.9.9", 0) {
                Plan::Ask { take, .. } => take,
                other => panic!("asks: {other:?}"),
            })
            .collect();
        let keys: Vec<&str> = asks.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "ip:9.9.9.9\u{1f}0",
                "ip:9.9.9.9\u{1f}1",
                "ip:9.9.9.9\u{1f}2",
                "ip:9.9.9.9\u{1f}3"
            ]
        );
        assert_eq!(
            asks.iter().map(|t| t.limit).sum::<u32>(),
            10,
            "shares add up to the limit"
        );
        for part in 0..3 {
            remember_refusal(
                &mut memory,
                &format!("api:ip:9.9.9.9\u{1f}{part}"),
                &refused(1_000 + part as u64),
                0,
            );
        }
        for _ in 0..3 {
            let Plan::Ask { take, .. } = plan(&mut memory, &p, "ip:9.9.9.9", 0) else {
                panic!("part 3 is left")
            };
            assert_eq!(
                take.key, "ip:9.9.9.9\u{1f}3",
                "only the part not known exhausted is asked"
            );
        }
        let last = TakeReply {
            reset_ms: 90_000,
            ..refused(5_000)
        };
        remember_refusal(&mut memory, "api:ip:9.9.9.9\u{1f}3", &last, 0);
        match plan(&mut memory, &p, "ip:9.9.9.9", 0) {
            Plan::Refuse {
                retry_after_ms,
                headers,
            } => {
                assert_eq!(retry_after_ms, 1_000, "the soonest part");
                assert_eq!(
                    headers.standing,
                    Some((0, 90)),
                    "the whole quota is back when the last part is"
                );
            }
            other => panic!("all parts exhausted: {other:?}"),
        }
    }

    #[test]
    fn a_hot_keys_part_whose_object_is_silent_is_skipped_while_another_part_can_be_asked() {
        use durable_objects::ratelimit::shard::sub_key;
        // A silent object fails its requests at once (`failure` decides: 503 when closed, uncounted when open);
        // another part of the same key, on another object, can take the request within its own share instead.
        let p = policy(&[("ip:9.9.9.9", 4)]);
        let object_of = |part: u32| object_name("api", shard_of(&sub_key("ip:9.9.9.9", part), 8));
        let silent = object_of(0);
        assert!(
            (1..4).any(|part| object_of(part) != silent),
            "parts on other objects"
        );
        let mut memory = IsolateMemory::new(100, 0);
        memory.object_silent(&format!("RATE_LIMITER/{silent}"), 0);
        let asked = |memory: &mut IsolateMemory, now_ms: u64| -> Vec<String> {
            (0..8)
                .map(|_| match plan(memory, &p, "ip:9.9.9.9", now_ms) {
                    Plan::Ask { object, .. } => object,
                    other => panic!("asks: {other:?}"),
                })
                .collect()
        };
        let objects = asked(&mut memory, 1_000);
        assert!(!objects.contains(&silent), "{silent} skipped: {objects:?}");
        let objects = asked(&mut memory, SILENT_FOR_MS);
        assert!(
            objects.contains(&silent),
            "probed once its silence is over: {objects:?}"
        );
        for part in 0..4 {
            memory.object_silent(&format!("RATE_LIMITER/{}", object_of(part)), SILENT_FOR_MS);
        }
        assert!(
            matches!(
                plan(&mut memory, &p, "ip:9.9.9.9", SILENT_FOR_MS + 1),
                Plan::Ask { .. }
            ),
            "every part silent: still asked (its failure mode answers), never a 429"
        );
    }

    #[test]
    fn two_policies_splitting_one_hot_key_rotate_apart() {
        let a = policy(&[("ip:9.9.9.9", 4)]);
        let b = Policy {
            name: "api-hour".into(),
            ..a.clone()
        };
        let mut memory = IsolateMemory::new(100, 0);
        let mut part_of = |p: &Policy| match plan(&mut memory, p, "ip:9.9.9.9", 0) {
            Plan::Ask { take, .. } => take.key,
            other => panic!("asks: {other:?}"),
        };
        let a_parts: Vec<String> = (0..4)
            .map(|_| {
                part_of(&b);
                part_of(&a)
            })
            .collect();
        assert_eq!(
            a_parts,
            (0..4)
                .map(|n| format!("ip:9.9.9.9\u{1f}{n}"))
                .collect::<Vec<_>>(),
            "a's turns are every part in order, however often b took one"
        );
    }
}
