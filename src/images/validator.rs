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

/// A variant's tag from its digest as it came back within `limit_ms` (`None`: no answer by then), or why it has
/// none: a digest that failed and one that never answered leave the variant alike — served untagged, not stored (a
/// stored copy must carry its tag), the reason logged — rather than one a 500 and the other an image.
pub fn tag_or_why<E: std::fmt::Display>(
    digest: Option<Result<String, E>>,
    limit_ms: u32,
) -> Result<String, String> {
    match digest {
        Some(Ok(tag)) => Ok(tag),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("no answer in {limit_ms} ms (the source timeout)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_that_fails_leaves_the_variant_untagged_as_one_that_never_answers() {
        let tag = etag(&[7; 32]);
        assert_eq!(tag_or_why(Some(Ok::<_, String>(tag.clone())), 500), Ok(tag));
        assert_eq!(
            tag_or_why(Some(Err("DigestStream: aborted")), 500),
            Err("DigestStream: aborted".to_owned())
        );
        assert_eq!(
            tag_or_why(None::<Result<String, String>>, 500),
            Err("no answer in 500 ms (the source timeout)".to_owned())
        );
    }

    #[test]
    fn a_tag_is_the_quoted_hex_of_the_digests_first_bytes() {
        let digest: Vec<u8> = (0u8..32).collect();
        assert_eq!(etag(&digest), "\"000102030405060708090a0b0c0d0e0f\"");
    }
}
