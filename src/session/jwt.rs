//! Access tokens: short-lived EdDSA (Ed25519) JWTs the gateway verifies against the JWKS in `CONFIG_KV`. Claims
//! follow the cross-capability contract: `iss`, `aud`, `sub` (user id), `email`, `permissions`, `exp`/`iat`/`nbf`;
//! the header carries the signing key's `kid`. Built with jwt-compact, the crate the gateway verifies with.

use chrono::{DateTime, Utc};
use jwt_compact::alg::Ed25519;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde::{Deserialize, Serialize};

use super::config::SigningJwk;
use super::SessionUser;

type SecretKey = <Ed25519 as jwt_compact::Algorithm>::SigningKey;

/// The custom claims of an access token (`exp`/`iat`/`nbf` are jwt-compact's standard claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub email: String,
    pub permissions: Vec<String>,
}

/// Checks that `json` is a private Ed25519 JWK (`kty` OKP, `crv` Ed25519, `d` and matching `x`) with a `kid`, and
/// that its `use`, `alg` and `key_ops`, when given, say it signs with EdDSA; returns the `kid`. Problems never quote
/// the key.
pub fn validate_signing_jwk(json: &str) -> Result<String, String> {
    // A repeated member is refused, as in every structured var (`config::Unique`: its error names the member, never
    // a value); a syntax error says no more than that, as serde's could point into the key.
    let crate::config::Unique(value) =
        serde_json::from_str(json).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => e.to_string(),
            _ => "is not valid JSON".to_owned(),
        })?;
    let kid = value
        .get("kid")
        .and_then(|k| k.as_str())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| "must be an Ed25519 JWK with a non-empty \"kid\"".to_owned())?
        .to_owned();
    // Its public half is published with these members, and the gateway skips a JWKS key whose `use` or `alg` says
    // it is for something else: a key saying so here would have every token it signs refused ("unknown key id").
    let member = |name: &str| match value.get(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("\"{name}\" must be a string")),
    };
    if member("use")?.is_some_and(|usage| usage != "sig") {
        return Err("\"use\" must be \"sig\" (or absent)".to_owned());
    }
    // `Ed25519` is RFC 9864's name for EdDSA on that curve, the one WebCrypto's JWK export writes.
    if member("alg")?.is_some_and(|alg| alg != "EdDSA" && alg != "Ed25519") {
        return Err("\"alg\" must be \"EdDSA\" or \"Ed25519\" (or absent)".to_owned());
    }
    // RFC 7517 §4.3: a key listing its operations is for those only; a private key signs.
    if let Some(ops) = value.get("key_ops") {
        if !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("sign")))
        {
            return Err("\"key_ops\" must be a list including \"sign\" (or absent)".to_owned());
        }
    }
    secret_key(json)?;
    Ok(kid)
}

fn secret_key(json: &str) -> Result<SecretKey, String> {
    let jwk: JsonWebKey<'_> = serde_json::from_str(json)
        .map_err(|_| "must be an Ed25519 JWK (kty OKP, crv Ed25519, d, x)".to_owned())?;
    SecretKey::try_from(&jwk).map_err(|e| format!("must be a private Ed25519 JWK: {e}"))
}

/// Signs an access token for `user`, valid from `now_ms` until `exp_secs` ([`expiry_secs`]).
pub fn issue(
    key: &SigningJwk,
    issuer: &str,
    audience: &str,
    user: &SessionUser,
    now_ms: u64,
    exp_secs: u64,
) -> Result<String, String> {
    let secret = secret_key(&key.json)?;
    let now = at(now_ms)?;
    let mut claims = Claims::new(AccessClaims {
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        sub: user.user_id.clone(),
        email: user.email.clone(),
        permissions: user.permissions.clone(),
    });
    claims.issued_at = Some(now);
    claims.not_before = Some(now);
    claims.expiration = Some(at(exp_secs.saturating_mul(1000))?);
    let header = Header::empty().with_key_id(key.kid.clone());
    Ed25519
        .token(&header, &claims, &secret)
        .map_err(|e| format!("signing the access token: {e}"))
}

/// The `exp` (seconds since the epoch) of an access token issued at `now_ms` for `ttl_secs` (`AUTH_ACCESS_TTL_SECS`)
/// from a session that expires at `session_expires_ms`: the earlier of the two, in the whole seconds the claim is
/// written in, rounded down — never after the session's end. The gateway verifies the token without D1, so one
/// outliving its session serves requests for a session that no longer exists; a lifetime of at least one second
/// from `now` put `exp` up to a second past the end of a session with less than that left. `None` when that `exp`
/// would be the token's `iat` (the session ends within the second of issue): such a token is expired at issue
/// (`expires_in` 0, which the OpenAPI's `minimum: 1` rules out) and alive only by the gateway's leeway, past its
/// session — the caller is told to log in again instead.
pub fn expiry_secs(now_ms: u64, ttl_secs: u64, session_expires_ms: u64) -> Option<u64> {
    let exp = now_ms
        .saturating_add(ttl_secs.saturating_mul(1000))
        .min(session_expires_ms)
        / 1000;
    (exp > now_ms / 1000).then_some(exp)
}

fn at(ms: u64) -> Result<DateTime<Utc>, String> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| format!("time {ms} ms is out of range"))
}

#[cfg(test)]
pub(crate) mod tests {
    use jwt_compact::{TimeOptions, UntrustedToken};

    use super::*;

    /// A private Ed25519 JWK from a fixed seed, with `kid`.
    pub(crate) fn test_jwk(kid: &str) -> serde_json::Value {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32]));
        let mut value = serde_json::to_value(JsonWebKey::from(&pair.sk)).expect("jwk");
        value["kid"] = serde_json::json!(kid);
        value["alg"] = serde_json::json!("EdDSA");
        value["use"] = serde_json::json!("sig");
        value
    }

    fn user() -> SessionUser {
        SessionUser {
            user_id: "u1".into(),
            email: "a@example.com".into(),
            permissions: vec!["read".into(), "admin".into()],
        }
    }

    #[test]
    fn an_issued_token_verifies_with_the_public_key_and_carries_the_contract_claims() {
        let jwk = test_jwk("k1");
        let key = SigningJwk {
            kid: "k1".into(),
            json: jwk.to_string(),
        };
        let now_ms = 1_800_000_000_000;
        let exp = expiry_secs(now_ms, 300, u64::MAX).expect("a live session");
        let token = issue(&key, "edgekit", "edgekit-api", &user(), now_ms, exp).expect("signed");
        let untrusted = UntrustedToken::new(&token).expect("parses");
        assert_eq!(untrusted.algorithm(), "EdDSA");
        assert_eq!(untrusted.header().key_id.as_deref(), Some("k1"));

        let mut public = jwk.clone();
        public.as_object_mut().expect("object").remove("d");
        let public: JsonWebKey<'_> = serde_json::from_value(public).expect("public jwk");
        let public = <Ed25519 as jwt_compact::Algorithm>::VerifyingKey::try_from(&public)
            .expect("public key");
        let verified = Ed25519
            .validator::<AccessClaims>(&public)
            .validate(&untrusted)
            .expect("signature verifies");
        let claims = verified.claims();
        assert_eq!(claims.custom.sub, "u1");
        assert_eq!(claims.custom.iss, "edgekit");
        assert_eq!(claims.custom.aud, "edgekit-api");
        assert_eq!(claims.custom.permissions, vec!["read", "admin"]);
        assert_eq!(
            claims.expiration.map(|e| e.timestamp()),
            Some(1_800_000_300)
        );
        assert_eq!(
            claims.not_before.map(|e| e.timestamp()),
            Some(1_800_000_000)
        );
        let options = TimeOptions::new(chrono::Duration::zero(), move || {
            DateTime::from_timestamp(1_800_000_301, 0).expect("time")
        });
        assert!(
            claims.validate_expiration(&options).is_err(),
            "expired after ttl"
        );
    }

    #[test]
    fn an_access_token_never_expires_after_its_session() {
        // (now, AUTH_ACCESS_TTL_SECS, session expiry) → exp, all of them at or before the session's end.
        let cases = [
            // Under a second of session left, across a second's boundary: exp is the session's own second (a
            // claim in whole seconds cannot say more), not one a whole second after `now`.
            (1_000_900, 300, 1_001_100, 1_001),
            (1_000_000, 300, 10_000_000, 1_300),
            (1_000_400, 300, 10_000_000, 1_300),
            (1_000_000, 300, 1_060_500, 1_060),
            (1_000_700, 300, 1_060_500, 1_060),
        ];
        for (now, ttl, session_expires, exp) in cases {
            let got = expiry_secs(now, ttl, session_expires).expect("issued");
            assert!(
                got * 1000 <= session_expires,
                "exp {got} s after the session's end {session_expires} ms (issued at {now} ms)"
            );
            assert_eq!(
                got, exp,
                "issued at {now} ms, session until {session_expires} ms"
            );
        }
    }

    #[test]
    fn no_access_token_is_issued_already_expired() {
        // TokenResponse.expires_in is `minimum: 1` in the OpenAPI: a session ending within the second of issue
        // gets no token whose exp is its iat (expired at issue, or alive only by the gateway's leeway).
        for (now, ttl, session_expires) in [
            (1_000_200, 300, 1_000_900),
            (1_000_000, 300, 1_000_001),
            (1_001_000, 300, 1_001_999),
        ] {
            let exp = expiry_secs(now, ttl, session_expires);
            assert_eq!(
                exp, None,
                "exp {exp:?} s is the iat of a token issued at {now} ms"
            );
        }
    }

    #[test]
    fn only_private_ed25519_jwks_with_a_kid_are_accepted() {
        let good = test_jwk("k1");
        assert_eq!(validate_signing_jwk(&good.to_string()), Ok("k1".into()));
        let mut no_kid = good.clone();
        no_kid.as_object_mut().expect("object").remove("kid");
        let mut public_only = good.clone();
        public_only.as_object_mut().expect("object").remove("d");
        let mut mismatched = good.clone();
        mismatched["x"] = serde_json::json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        for (case, value) in [
            ("no kid", no_kid.to_string()),
            ("public only", public_only.to_string()),
            ("x does not match d", mismatched.to_string()),
            ("not json", "{".to_owned()),
            (
                "hmac key",
                r#"{"kty":"oct","k":"AAAA","kid":"h"}"#.to_owned(),
            ),
        ] {
            assert!(validate_signing_jwk(&value).is_err(), "{case}");
        }
    }

    #[test]
    fn a_signing_key_whose_members_say_it_is_for_something_else_is_refused() {
        let with = |name: &str, member: serde_json::Value| {
            let mut jwk = test_jwk("k1");
            jwk[name] = member;
            jwk
        };
        // Published without `d`, each of these is a key the gateway skips (`use` not sig, `alg` not the key's):
        // every token it signed would be refused with "unknown key id".
        for (case, jwk) in [
            ("use enc", with("use", serde_json::json!("enc"))),
            ("use not a string", with("use", serde_json::json!(["sig"]))),
            (
                "alg of another key type",
                with("alg", serde_json::json!("ES256")),
            ),
            ("alg none", with("alg", serde_json::json!("none"))),
            ("alg not a string", with("alg", serde_json::json!(7))),
        ] {
            let mut public = jwk.clone();
            public.as_object_mut().expect("object").remove("d");
            let doc = serde_json::json!({ "keys": [public] }).to_string();
            let (published, _) = crate::gateway::jwt::Jwks::parse(&doc).expect("jwks");
            assert!(
                published.is_empty(),
                "{case}: the gateway skips its public half"
            );
            assert!(validate_signing_jwk(&jwk.to_string()).is_err(), "{case}");
        }
        // RFC 7517 §4.3: a private key lists `sign` (WebCrypto's export writes `"key_ops": ["sign"]`).
        for (case, ops) in [
            ("key_ops without sign", serde_json::json!(["encrypt"])),
            ("key_ops of a public key", serde_json::json!(["verify"])),
            ("key_ops not a list", serde_json::json!("sign")),
        ] {
            assert!(
                validate_signing_jwk(&with("key_ops", ops).to_string()).is_err(),
                "{case}"
            );
        }
        let mut exported = with("key_ops", serde_json::json!(["sign"]));
        assert_eq!(validate_signing_jwk(&exported.to_string()), Ok("k1".into()));
        exported["alg"] = serde_json::json!("Ed25519");
        assert_eq!(validate_signing_jwk(&exported.to_string()), Ok("k1".into()));
        let mut bare = test_jwk("k1");
        for name in ["alg", "use"] {
            bare.as_object_mut().expect("object").remove(name);
        }
        assert_eq!(validate_signing_jwk(&bare.to_string()), Ok("k1".into()));
    }

    #[test]
    fn a_signing_key_that_repeats_a_member_is_refused_naming_the_member_alone() {
        let good = test_jwk("k1").to_string();
        let d = test_jwk("k1")["d"].as_str().expect("d").to_owned();
        // JSON leaves a repeated name's meaning open (RFC 8259 §4): a reader keeping the first takes `enc`.
        let repeated =
            good.replacen('{', r#"{"use":"enc","#, 1)
                .replacen('}', r#","use":"sig"}"#, 1);
        let refused = validate_signing_jwk(&repeated).expect_err("a repeated member");
        assert!(refused.contains("`use`"), "{refused}");
        assert!(!refused.contains(&d), "never quotes the key: {refused}");
        let twice_d = good.replacen('}', &format!(r#","d":"{d}"}}"#), 1);
        let refused = validate_signing_jwk(&twice_d).expect_err("a repeated d");
        assert!(!refused.contains(&d), "never quotes the key: {refused}");
    }
}
