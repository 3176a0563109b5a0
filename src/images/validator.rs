//! Validators for variant answers (RFC 9110 §8.8.3): a variant's `ETag` is a digest of its bytes, so it is strong by
//! construction — the same bytes give the same tag on a HIT and a MISS, in any isolate, and a variant made again from
//! a replaced source (after its cache entry expired) gets a new one, which a tag built from the cache key alone would
//! not (a client revalidating would be told its old image is current). `If-None-Match` is read by
//! [`crate::conditional`], as the gateway's cache reads it.

/// How many leading bytes of the SHA-256 of the bytes name a variant (128 bits: collisions are not a concern).
pub const TAG_BYTES: usize = 16;

/// The strong entity tag (`"…"`, quotes included) for a body whose SHA-256 is `digest`.
pub fn etag(digest: &[u8]) -> String {
    format!(
        "\"{}\"",
        hex::encode(&digest[..digest.len().min(TAG_BYTES)])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_the_quoted_hex_of_the_digests_first_bytes() {
        let digest: Vec<u8> = (0u8..32).collect();
        assert_eq!(etag(&digest), "\"000102030405060708090a0b0c0d0e0f\"");
    }
}
