//! Where a key's state lives: the stable hash that maps a key onto one of a policy's N shard objects, and the
//! hot-key split that spreads one key over S sub-keys, each holding an exact share of the limit. Pure.
//!
//! The hash is the project's pinned 64-bit FNV-1a ([`crate::hash`]) over the key's UTF-8 bytes; the shard is
//! `hash % N`. Its output is part of the stored data's address, so the test below pins shards too.

pub use crate::hash::fnv1a64;

/// The shard (`0..shards`) holding `key`'s state. `shards` must be at least 1.
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (fnv1a64(key.as_bytes()) % u64::from(shards.max(1))) as u32
}

/// Separates a split key from its part number. A control character, so it cannot occur in a key taken from an HTTP
/// header or a user id, and a sub-key never collides with another real key.
pub const SPLIT_SEPARATOR: char = '\u{1f}';

/// The state key of part `part` of a split key.
pub fn sub_key(key: &str, part: u32) -> String {
    format!("{key}{SPLIT_SEPARATOR}{part}")
}

/// The share of `limit` that part `part` of `parts` enforces: the limit divided as evenly as possible, the first
/// `limit % parts` parts taking one more, so the shares add up to exactly `limit`.
pub fn share(limit: u32, parts: u32, part: u32) -> u32 {
    let parts = parts.max(1);
    limit / parts + u32::from(part < limit % parts)
}

/// Where one request for a key goes: which shard object, which key inside it, and what limit that key enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub shard: u32,
    pub state_key: String,
    pub limit: u32,
}

/// The target for `key` under a policy of `limit` and `shards`. `parts` is the key's split (1 = not split) and
/// `part` the sub-key this request uses (taken modulo `parts`).
pub fn target(key: &str, limit: u32, shards: u32, parts: u32, part: u32) -> Target {
    if parts <= 1 {
        return Target {
            shard: shard_of(key, shards),
            state_key: key.to_owned(),
            limit,
        };
    }
    let part = part % parts;
    let state_key = sub_key(key, part);
    Target {
        shard: shard_of(&state_key, shards),
        state_key,
        limit: share(limit, parts, part),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_pinned_so_stored_state_never_moves() {
        // Changing the hash or the modulo moves every key to another object and silently resets its limit.
        let cases: &[(&str, u32, u32)] = &[
            ("ip:203.0.113.7", 16, 9),
            ("a", 16, (0xaf63dc4c8601ec8c_u64 % 16) as u32),
            ("foobar", 7, (0x85944171f73967e8_u64 % 7) as u32),
            ("anything", 1, 0),
        ];
        for (key, shards, expected) in cases {
            assert_eq!(shard_of(key, *shards), *expected, "{key} over {shards}");
        }
    }

    #[test]
    fn many_keys_use_every_shard() {
        for shards in [1, 2, 8, 16, 256] {
            let mut used = vec![0u32; shards as usize];
            for i in 0..(shards * 64) {
                used[shard_of(&format!("ip:10.0.{}.{}", i / 256, i % 256), shards) as usize] += 1;
            }
            assert!(used.iter().all(|&n| n > 0), "{shards} shards: {used:?}");
        }
    }

    #[test]
    fn shares_add_up_to_the_limit_and_differ_by_at_most_one() {
        for limit in 1..200 {
            for parts in 1..=limit.min(16) {
                let shares: Vec<u32> = (0..parts).map(|p| share(limit, parts, p)).collect();
                assert_eq!(
                    shares.iter().sum::<u32>(),
                    limit,
                    "limit {limit} in {parts}: {shares:?}"
                );
                let (min, max) = (shares.iter().min(), shares.iter().max());
                assert!(
                    max.zip(min).is_some_and(|(a, b)| a - b <= 1),
                    "{limit}/{parts}: {shares:?}"
                );
            }
        }
    }

    #[test]
    fn a_split_key_spreads_its_parts_and_an_unsplit_key_keeps_its_own_name() {
        let whole = target("user:1", 100, 16, 1, 7);
        assert_eq!(
            whole,
            Target {
                shard: shard_of("user:1", 16),
                state_key: "user:1".into(),
                limit: 100
            }
        );
        let parts: Vec<Target> = (0..4).map(|p| target("user:1", 10, 16, 4, p)).collect();
        assert_eq!(
            parts.iter().map(|t| t.limit).collect::<Vec<_>>(),
            vec![3, 3, 2, 2],
            "shares of 10"
        );
        assert_eq!(
            parts[1].state_key, "user:1\u{1f}1",
            "sub-key name is pinned"
        );
        assert_eq!(
            target("user:1", 10, 16, 4, 5),
            parts[1],
            "part is taken modulo parts"
        );
    }
}
