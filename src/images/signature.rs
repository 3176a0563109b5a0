//! Signed image URLs: `sig` is the lower-case hex HMAC-SHA256, under the `IMAGES_SIGNING_SECRET`, of
//! `"{canonical transform}\n{source path}\n{exp}"`, where `exp` is a Unix time in seconds. Checked before anything is
//! fetched or read from cache; comparison is constant-time (`hmac`'s `verify_slice`). The time is a parameter.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::transform::ImageRequest;
use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

fn message(canonical: &str, path: &str, exp: u64) -> String {
    format!("{canonical}\n{path}\n{exp}")
}

fn mac(secret: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// The signature for a canonical transform, source path and expiry.
pub fn sign(secret: &str, canonical: &str, path: &str, exp: u64) -> String {
    let mut m = mac(secret);
    m.update(message(canonical, path, exp).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Checks a request's `sig`/`exp` at `now_secs`: missing → 403 `signature_required`, expired → 403
/// `signature_expired`, wrong → 403 `signature_invalid`.
pub fn verify(secret: &str, request: &ImageRequest, now_secs: u64) -> Result<(), ApiError> {
    let (Some(sig), Some(exp)) = (&request.signature.sig, request.signature.exp) else {
        return Err(ApiError::forbidden(
            "signature_required",
            "this URL must be signed (exp and sig parameters)",
        ));
    };
    if exp < now_secs {
        return Err(ApiError::forbidden(
            "signature_expired",
            "the signed URL has expired",
        ));
    }
    let given = hex::decode(sig)
        .map_err(|_| ApiError::forbidden("signature_invalid", "the signature does not match"))?;
    let mut m = mac(secret);
    m.update(message(&request.transform.canonical(), request.source.as_str(), exp).as_bytes());
    m.verify_slice(&given)
        .map_err(|_| ApiError::forbidden("signature_invalid", "the signature does not match"))
}

/// The `Cache-Control` a client gets for a variant kept `ttl_secs`: a signed URL's answer may be reused downstream
/// only until its `exp` (a browser or shared cache would otherwise serve it for the whole TTL after the Worker
/// started refusing it), so it says at most that long and is not `immutable`. Unsigned variants are immutable.
pub fn client_cache_control(ttl_secs: u64, signed_exp: Option<u64>, now_secs: u64) -> String {
    match signed_exp {
        Some(exp) => format!(
            "public, max-age={}",
            exp.saturating_sub(now_secs).min(ttl_secs)
        ),
        None => format!("public, max-age={ttl_secs}, immutable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::config::Limits;
    use crate::images::transform::parse;

    const SECRET: &str = "a-test-secret-of-at-least-32-chars!!";

    fn request(rest: &str, query: &str) -> ImageRequest {
        let limits = Limits::open(4096);
        parse(rest, Some(query), &limits).expect("parses")
    }

    #[test]
    fn a_signature_covers_the_canonical_transform_so_any_url_form_verifies() {
        let canonical = request("p.jpg", "w=300&h=200").transform.canonical();
        let sig = sign(SECRET, &canonical, "p.jpg", 2_000);
        for (rest, query) in [
            ("300x200/p.jpg", format!("exp=2000&sig={sig}")),
            ("p.jpg", format!("h=200&w=300&exp=2000&sig={sig}")),
            (
                "p.jpg",
                format!("w=300&h=200&exp=2000&sig={}", sig.to_uppercase()),
            ),
        ] {
            assert_eq!(
                verify(SECRET, &request(rest, &query), 1_000),
                Ok(()),
                "{rest}?{query}"
            );
        }
    }

    #[test]
    fn missing_expired_and_wrong_signatures_are_refused_with_403() {
        let canonical = request("p.jpg", "w=300").transform.canonical();
        let sig = sign(SECRET, &canonical, "p.jpg", 2_000);
        let cases = [
            ("p.jpg", "w=300".to_owned(), "signature_required"),
            ("p.jpg", format!("w=300&sig={sig}"), "signature_required"),
            ("p.jpg", "w=300&exp=2000".to_owned(), "signature_required"),
            (
                "p.jpg",
                format!("w=300&exp=999&sig={sig}"),
                "signature_expired",
            ),
            (
                "p.jpg",
                format!("w=301&exp=2000&sig={sig}"),
                "signature_invalid",
            ),
            (
                "q.jpg",
                format!("w=300&exp=2000&sig={sig}"),
                "signature_invalid",
            ),
            (
                "p.jpg",
                format!("w=300&exp=2001&sig={sig}"),
                "signature_invalid",
            ),
            (
                "p.jpg",
                format!("w=300&format=webp&exp=2000&sig={sig}"),
                "signature_invalid",
            ),
            (
                "p.jpg",
                "w=300&exp=2000&sig=zz".to_owned(),
                "signature_invalid",
            ),
            (
                "p.jpg",
                format!("w=300&exp=2000&sig={}", &sig[..10]),
                "signature_invalid",
            ),
        ];
        for (rest, query, code) in cases {
            let error = verify(SECRET, &request(rest, &query), 1_000).expect_err("refused");
            assert_eq!(
                (error.status(), error.code()),
                (403, code),
                "{rest}?{query}"
            );
        }
        let other = verify(
            "another-secret-of-at-least-32-chars",
            &request("p.jpg", &format!("w=300&exp=2000&sig={sig}")),
            1_000,
        );
        assert_eq!(other.expect_err("other key").code(), "signature_invalid");
    }

    #[test]
    fn a_signed_variant_may_be_reused_downstream_only_until_its_expiry() {
        assert_eq!(
            client_cache_control(31_536_000, Some(1_600), 1_000),
            "public, max-age=600"
        );
        assert_eq!(
            client_cache_control(60, Some(10_000), 1_000),
            "public, max-age=60",
            "never past the TTL"
        );
        assert_eq!(
            client_cache_control(60, Some(1_000), 1_000),
            "public, max-age=0",
            "expiring now"
        );
        assert_eq!(
            client_cache_control(60, None, 1_000),
            "public, max-age=60, immutable"
        );
    }
}
