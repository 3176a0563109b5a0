//! The one stable hash of the project: 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over
//! bytes. It places stored data (rate-limit shards, room-directory shards) and buckets visitors (A/B variants), so
//! its output is part of data addresses: the reference vectors below pin it. Written out rather than taken from a
//! crate because it is six lines and no dependency upgrade may silently move every key.

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (Fowler/Noll/Vo, fnv_test.c: FNV-1a 64-bit).
        let cases: &[(&str, u64)] = &[
            ("", 0xcbf29ce484222325),
            ("a", 0xaf63dc4c8601ec8c),
            ("foobar", 0x85944171f73967e8),
        ];
        for (input, expected) in cases {
            assert_eq!(fnv1a64(input.as_bytes()), *expected, "fnv1a64({input:?})");
        }
    }
}
