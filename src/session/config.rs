//! The sessions section of the configuration: lifetimes, the KV cache window, the cookie, the password KDF cost,
//! the login rate-limit policies, trusted-device cookies and the access-token signing key (secret
//! `AUTH_SIGNING_KEY`, a private Ed25519 JWK).

use std::fmt;

use crate::config::{ConfigError, Vars};
use crate::session::device::DeviceKey;

/// The Ed25519 private JWK that signs access tokens, with its `kid`. Debug never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningJwk {
    pub kid: String,
    /// The JWK document as given (validated at parse time: an OKP Ed25519 key with `d`, `x` and `kid`).
    pub json: String,
}

impl fmt::Debug for SigningJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningJwk {{ kid: {:?}, json: <secret> }}", self.kid)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `AUTH_SIGNING_KEY`; unset means login answers 500 `internal_error` (logged as not configured).
    pub signing_key: Option<SigningJwk>,
    /// `AUTH_ACCESS_TTL_SECS`: lifetime of an access JWT.
    pub access_ttl_secs: u64,
    /// `SESSION_IDLE_SECS`: a session not seen for this long expires (sliding expiry).
    pub idle_secs: u64,
    /// `SESSION_MAX_SECS`: no session outlives this, however active (absolute expiry).
    pub max_secs: u64,
    /// `SESSION_CACHE_SECS`: how long a KV cache entry may be trusted without asking D1. This is the worst-case
    /// time a revoked session can still pass a non-strict check in another location. 0 disables the cache.
    pub cache_secs: u64,
    /// `SESSION_TOUCH_SECS`: last-seen (and the sliding expiry) is written at most once per this interval.
    pub touch_secs: u64,
    /// `SESSION_REUSE_GRACE_SECS`: a token that a refresh retired and that comes back later than this revokes its
    /// session (someone kept a copy); sooner, it is only refused (a concurrent refresh from another tab lost).
    pub reuse_grace_secs: u64,
    /// `SESSION_ROTATE_MIN_SECS`: a session is rotated at most once per this interval; a refresh sooner gets an
    /// access token and keeps its session token. Bounds how fast anyone can push retired ids out of the remembered
    /// ones (`store::RETIRED_PER_SESSION`), which reuse detection reads.
    pub rotate_min_secs: u64,
    /// `SESSION_FAILED_BOOKMARK_SECS`: how long after a D1 read failed at a client's bookmark this isolate starts
    /// that bookmark's requests at the primary (`bookmark::Failed`); 0 remembers none.
    pub failed_bookmark_secs: u64,
    /// `SESSION_COOKIE_NAME`.
    pub cookie_name: String,
    /// The device cookie's name, made from the session cookie's once ([`super::device::cookie_name`]).
    pub device_cookie_name: String,
    /// `PASSWORD_PBKDF2_ITERATIONS`: PBKDF2-SHA256 cost for new hashes and for the dummy hash unknown emails cost.
    pub pbkdf2_iterations: u32,
    /// `SESSION_LOGIN_IP_POLICY` / `SESSION_LOGIN_EMAIL_POLICY`: rate-limit policy names for login attempts.
    pub login_ip_policy: String,
    pub login_email_policy: String,
    /// `SESSION_LOGIN_DEVICE_POLICY`: the rate-limit policy for attempts from a browser holding a device entry for
    /// the account it tries (see `device`): counted per device instead of per email. Unset and without a
    /// `login-device` policy, the email policy's limits (counted per device).
    pub login_device_policy: String,
    /// `SESSION_IP_POLICY`: the rate-limit policy (keyed by `ip`) for refresh, logout and the session lists, which
    /// write or read at D1's primary for any well-formed cookie. None when it is neither named nor defined (a
    /// configuration from before it), and then those routes are not limited.
    pub session_ip_policy: Option<String>,
    /// `SESSION_DEVICE_TTL_SECS`: how long a device entry is honoured (each login issues a fresh one); 0 issues
    /// none and honours none, so every attempt counts per email.
    pub device_ttl_secs: u64,
    /// The key device cookies are signed with, derived from `AUTH_SIGNING_KEY` once per isolate; none without that
    /// key or with `SESSION_DEVICE_TTL_SECS = 0`.
    pub device_key: Option<DeviceKey>,
    /// `SESSION_TRUSTED_ORIGINS`: origins besides the Worker's own whose pages may log in and send state-changing
    /// requests with the session cookie (a front end on a sibling subdomain, say); see `origin_check`.
    pub trusted_origins: Vec<String>,
}

/// workerd refuses PBKDF2 above 100,000 iterations ("iteration counts above 100000 are not supported").
pub const MAX_PBKDF2_ITERATIONS: u64 = super::password::MAX_ITERATIONS;

impl SessionConfig {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let idle_secs = vars.u64_in("SESSION_IDLE_SECS", 7 * 86_400, 60, 90 * 86_400)?;
        let max_secs = vars.u64_in("SESSION_MAX_SECS", 30 * 86_400, 60, 365 * 86_400)?;
        if max_secs < idle_secs {
            return Err(ConfigError::new(
                "SESSION_MAX_SECS",
                "must be at least SESSION_IDLE_SECS",
            ));
        }
        // `__Host-`: browsers take such a cookie only from this host, `Secure`, with `Path=/` and no `Domain`, so a page
        // on a sibling subdomain cannot plant its own session cookie beside (or before) the user's (cookie tossing:
        // the first cookie of a name is the one read).
        let cookie_name = vars.string_or("SESSION_COOKIE_NAME", "__Host-edgekit_session")?;
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::new(
                "SESSION_COOKIE_NAME",
                "must be letters, digits, '_' or '-'",
            ));
        }
        // The sliding expiry is written only when a touch is due, so a session used steadily but touched less
        // often than it idles out would expire in use: a touch at most every half idle period keeps it alive.
        let touch_secs = vars.u64_in("SESSION_TOUCH_SECS", 300, 1, 86_400)?;
        if touch_secs * 2 > idle_secs {
            return Err(ConfigError::new(
                "SESSION_TOUCH_SECS",
                "must be at most half of SESSION_IDLE_SECS (a session in use would expire between touches)",
            ));
        }
        let signing_key = parse_signing_key(vars)?;
        // Browsers keep a cookie at most 400 days (RFC 6265bis), so a longer setting would not be honoured.
        let device_ttl_secs =
            vars.u64_in("SESSION_DEVICE_TTL_SECS", 180 * 86_400, 0, 400 * 86_400)?;
        let device_key = signing_key
            .as_ref()
            .filter(|_| device_ttl_secs > 0)
            .map(|key| DeviceKey::derive(&key.json));
        Ok(Self {
            signing_key,
            access_ttl_secs: vars.u64_in("AUTH_ACCESS_TTL_SECS", 300, 10, 3600)?,
            idle_secs,
            max_secs,
            cache_secs: vars.u64_in("SESSION_CACHE_SECS", 60, 0, 3600)?,
            touch_secs,
            reuse_grace_secs: vars.u64_in("SESSION_REUSE_GRACE_SECS", 30, 0, 3600)?,
            rotate_min_secs: vars.u64_in("SESSION_ROTATE_MIN_SECS", 60, 0, 3600)?,
            failed_bookmark_secs: vars.u64_in("SESSION_FAILED_BOOKMARK_SECS", 60, 0, 3600)?,
            device_cookie_name: super::device::cookie_name(&cookie_name),
            cookie_name,
            pbkdf2_iterations: vars.u64_in(
                "PASSWORD_PBKDF2_ITERATIONS",
                MAX_PBKDF2_ITERATIONS,
                10_000,
                MAX_PBKDF2_ITERATIONS,
            )? as u32,
            login_ip_policy: vars.string_or("SESSION_LOGIN_IP_POLICY", "login-ip")?,
            login_email_policy: vars.string_or("SESSION_LOGIN_EMAIL_POLICY", "login-email")?,
            login_device_policy: vars.string_or("SESSION_LOGIN_DEVICE_POLICY", "login-device")?,
            session_ip_policy: Some(vars.string_or("SESSION_IP_POLICY", "session-ip")?),
            device_ttl_secs,
            device_key,
            trusted_origins: parse_trusted_origins(vars)?,
        })
    }
}

fn parse_trusted_origins(vars: &Vars) -> Result<Vec<String>, ConfigError> {
    const KEY: &str = "SESSION_TRUSTED_ORIGINS";
    let listed: Vec<String> = vars.list(KEY)?.unwrap_or_default();
    crate::cors::parse_origins(KEY, &listed)
}

fn parse_signing_key(vars: &Vars) -> Result<Option<SigningJwk>, ConfigError> {
    const KEY: &str = "AUTH_SIGNING_KEY";
    let Some(json) = vars.optional_string(KEY)? else {
        return Ok(None);
    };
    let kid = crate::session::jwt::validate_signing_jwk(&json)
        .map_err(|problem| ConfigError::new(KEY, problem))?;
    Ok(Some(SigningJwk { kid, json }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{json, Value};

    use super::*;

    fn parse(pairs: &[(&'static str, Value)]) -> Result<SessionConfig, ConfigError> {
        let source: HashMap<&str, Value> = pairs.iter().cloned().collect();
        SessionConfig::parse(&Vars::new(&source))
    }

    #[test]
    fn defaults_are_valid_and_leave_the_signing_key_unset() {
        let config = parse(&[]).expect("defaults");
        assert_eq!(config.signing_key, None);
        assert_eq!(config.cache_secs, 60);
        assert_eq!(config.reuse_grace_secs, 30);
        assert_eq!(config.rotate_min_secs, 60);
        assert_eq!(config.pbkdf2_iterations, 100_000);
        assert_eq!(config.cookie_name, "__Host-edgekit_session");
        assert!(config.trusted_origins.is_empty());
    }

    #[test]
    fn a_touch_interval_over_half_the_idle_expiry_is_refused() {
        // Used every 5 s, a session of SESSION_IDLE_SECS=60 and the default 300 s touch expired in use.
        let error = parse(&[("SESSION_IDLE_SECS", json!(60))]).expect_err("default touch");
        assert_eq!(error.key, "SESSION_TOUCH_SECS");
        assert!(error.problem.contains("half"), "{error}");
        parse(&[
            ("SESSION_IDLE_SECS", json!(600)),
            ("SESSION_TOUCH_SECS", json!(300)),
        ])
        .expect("exactly half");
        parse(&[
            ("SESSION_IDLE_SECS", json!(600)),
            ("SESSION_TOUCH_SECS", json!(301)),
        ])
        .expect_err("over half");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, Value, &str)] = &[
            ("PASSWORD_PBKDF2_ITERATIONS", json!(200_000), "between"),
            ("PASSWORD_PBKDF2_ITERATIONS", json!(1000), "between"),
            ("SESSION_CACHE_SECS", json!(-1), "whole number"),
            ("SESSION_REUSE_GRACE_SECS", json!(7200), "between"),
            ("SESSION_ROTATE_MIN_SECS", json!(3601), "between"),
            ("SESSION_FAILED_BOOKMARK_SECS", json!(3601), "between"),
            (
                "SESSION_FAILED_BOOKMARK_SECS",
                json!("a minute"),
                "whole number",
            ),
            ("SESSION_COOKIE_NAME", json!("a b"), "letters"),
            ("SESSION_MAX_SECS", json!(120), "at least"),
            ("SESSION_TOUCH_SECS", json!(86_401), "between"),
            ("SESSION_DEVICE_TTL_SECS", json!(401 * 86_400), "between"),
            ("SESSION_DEVICE_TTL_SECS", json!("a year"), "whole number"),
            (
                "SESSION_TRUSTED_ORIGINS",
                json!(["https://a.example", "https://b.example/"]),
                "entry 1 must be an origin",
            ),
            (
                "SESSION_TRUSTED_ORIGINS",
                json!("https://a.example"),
                "JSON",
            ),
            ("AUTH_SIGNING_KEY", json!("{not json"), "JSON"),
            (
                "AUTH_SIGNING_KEY",
                json!(r#"{"kty":"oct","k":"AAAA","kid":"h"}"#),
                "Ed25519",
            ),
        ];
        for (key, value, problem) in cases {
            let error = parse(&[(key, value.clone())]).expect_err("must fail");
            assert_eq!(error.key, *key, "case {key}={value}");
            assert!(error.problem.contains(problem), "case {key}: {error}");
            assert!(
                !error.to_string().contains("AAAA"),
                "no value echoed: {error}"
            );
        }
    }

    #[test]
    fn a_valid_signing_key_keeps_its_kid_and_hides_the_secret_in_debug() {
        let jwk = crate::session::jwt::tests::test_jwk("k1");
        let config = parse(&[("AUTH_SIGNING_KEY", json!(jwk.to_string()))]).expect("valid");
        let key = config.signing_key.expect("set");
        assert_eq!(key.kid, "k1");
        assert!(!format!("{key:?}").contains(jwk["d"].as_str().expect("d")));
    }

    #[test]
    fn device_cookies_are_keyed_from_the_signing_key_unless_turned_off() {
        let jwk = crate::session::jwt::tests::test_jwk("k1").to_string();
        let on = parse(&[("AUTH_SIGNING_KEY", json!(jwk))]).expect("valid");
        assert_eq!(on.device_ttl_secs, 180 * 86_400);
        assert_eq!(on.login_device_policy, "login-device");
        let key = on.device_key.expect("derived");
        let bob = crate::session::device::Account {
            email: "bob@example.com",
            password_salt: "h",
        };
        let value = key.renew(None, &[1; crate::session::device::ID_BYTES], bob, 100, 60);
        assert!(key.trusted([value.as_str()], bob, 100, 60).is_some());
        let off = parse(&[
            ("AUTH_SIGNING_KEY", json!(jwk)),
            ("SESSION_DEVICE_TTL_SECS", json!(0)),
        ])
        .expect("valid");
        assert_eq!(off.device_key, None, "turned off");
        assert_eq!(
            parse(&[]).expect("valid").device_key,
            None,
            "no signing key"
        );
    }
}
