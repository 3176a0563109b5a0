//! Trusted-device cookies, OWASP's answer to lockout ("Slow Down Online Guessing Attacks with Device Cookies"). A
//! limit on login attempts per email stops guessing an account's password, but lets anyone lock the account's owner
//! out by failing on purpose. So a browser that signed in to an account gets a cookie bound to that account: an HMAC
//! over the normalised email and a random device id, under a key derived from `AUTH_SIGNING_KEY`. Its later
//! attempts for that account count against the device's own limit (`SESSION_LOGIN_DEVICE_POLICY`) instead of the
//! account's shared one, so whoever exhausts an account's limit from elsewhere locks out only the clients its owner
//! never signed in from. A cookie for another account, a forged or garbled one, or one under a rotated key is no
//! cookie at all: that attempt counts against the account, as any other. Pure.
//!
//! The value is `base64url(id).base64url(mac)`; the MAC is compared in constant time (`hmac`'s `verify_slice`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Random bytes naming a device (128 bits: ids never collide, so neither do their limits).
pub const ID_BYTES: usize = 16;

/// The key device cookies are signed with, derived from the signing key's JWK so that no second secret has to be
/// set (rotating `AUTH_SIGNING_KEY` retires every device cookie: their holders count against the account again).
/// Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey([u8; 32]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(<secret>)")
    }
}

impl DeviceKey {
    /// Derived from the signing JWK's document: an HMAC under it of a label no other use shares.
    pub fn derive(signing_jwk: &str) -> Self {
        let mut m = keyed(signing_jwk.as_bytes());
        m.update(b"edgekit login device cookie key v1");
        Self(m.finalize().into_bytes().into())
    }

    fn mac(&self, id: &[u8], email: &str) -> HmacSha256 {
        let mut m = keyed(&self.0);
        m.update(b"device\0");
        m.update(id);
        m.update(b"\0");
        m.update(email.as_bytes());
        m
    }

    /// A cookie value naming device `id` for the account `email` (normalised, as the login compares it).
    pub fn issue(&self, id: &[u8; ID_BYTES], email: &str) -> String {
        let tag = self.mac(id, email).finalize().into_bytes();
        format!("{}.{}", B64.encode(id), B64.encode(tag))
    }

    /// The device id (lower-case hex) a cookie value names, when it was issued under this key for `email`.
    pub fn verify(&self, value: &str, email: &str) -> Option<String> {
        let (id, tag) = value.split_once('.')?;
        let id = B64.decode(id).ok().filter(|id| id.len() == ID_BYTES)?;
        let tag = B64.decode(tag).ok()?;
        self.mac(&id, email).verify_slice(&tag).ok()?;
        Some(hex::encode(id))
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The device cookie's name beside the session cookie's.
pub fn cookie_name(session_cookie: &str) -> String {
    format!("{session_cookie}_device")
}

/// `Set-Cookie` for a device cookie: sent only to the login route (Path), never readable by scripts, only over
/// HTTPS, and never on another site's requests (SameSite=Strict: the login itself is refused cross-site).
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> String {
    format!("{name}={value}; Max-Age={max_age_secs}; Path=/auth/login; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"k","d":"secret","x":"public"}"#;

    #[test]
    fn a_cookie_names_its_device_for_its_account_only() {
        let key = DeviceKey::derive(JWK);
        let value = key.issue(&[7; ID_BYTES], "bob@example.com");
        assert_eq!(
            key.verify(&value, "bob@example.com").as_deref(),
            Some("07070707070707070707070707070707")
        );
        assert_eq!(
            key.verify(&value, "alice@example.com"),
            None,
            "another account"
        );
        assert_eq!(
            key.verify(&value, "Bob@example.com"),
            None,
            "not normalised"
        );
        let other = key.issue(&[8; ID_BYTES], "bob@example.com");
        assert_ne!(
            key.verify(&other, "bob@example.com"),
            key.verify(&value, "bob@example.com")
        );
        let rotated = DeviceKey::derive(&JWK.replace("secret", "another"));
        assert_eq!(
            rotated.verify(&value, "bob@example.com"),
            None,
            "a rotated key"
        );
    }

    #[test]
    fn forged_and_garbled_values_are_no_cookie() {
        let key = DeviceKey::derive(JWK);
        let value = key.issue(&[7; ID_BYTES], "bob@example.com");
        let (id, tag) = value.split_once('.').expect("two parts");
        let other_id = B64.encode([9u8; ID_BYTES]);
        let mut flipped = B64.decode(tag).expect("base64url");
        flipped[0] ^= 1;
        let cases = [
            String::new(),
            ".".into(),
            id.to_owned(),
            format!("{id}."),
            format!(".{tag}"),
            format!("{other_id}.{tag}"),
            format!("{id}.{}", B64.encode(&flipped)),
            format!("{id}.{}", &tag[..tag.len() - 2]),
            format!("{}.{tag}", B64.encode([7u8; ID_BYTES + 1])),
            format!("{id}.{tag}.x"),
            format!("{id}.{tag}="),
            "' OR 1=1 --".into(),
        ];
        for case in cases {
            assert_eq!(key.verify(&case, "bob@example.com"), None, "{case:?}");
        }
    }

    #[test]
    fn the_cookie_goes_only_to_the_login_route_and_never_to_scripts() {
        assert_eq!(cookie_name("edgekit_session"), "edgekit_session_device");
        let set = set_cookie("edgekit_session_device", "v", 60);
        for attribute in [
            "Path=/auth/login",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Max-Age=60",
        ] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        assert!(format!("{:?}", DeviceKey::derive(JWK)).contains("<secret>"));
    }
}
