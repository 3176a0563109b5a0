//! Trusted-device cookies, OWASP's answer to lockout ("Slow Down Online Guessing Attacks with Device Cookies"). A
//! limit on login attempts per email stops guessing an account's password, but lets anyone lock the account's owner
//! out by failing on purpose. So a browser that signed in to an account gets a device entry for it; its later
//! attempts for that account count against the device's own limit (`SESSION_LOGIN_DEVICE_POLICY`) instead of the
//! account's shared one, so whoever exhausts an account's limit from elsewhere locks out only the clients its owner
//! never signed in from.
//!
//! An entry is `base64url(device id).issued-at.base64url(mac)`: an HMAC, under a key derived from
//! `AUTH_SIGNING_KEY`, over the device id, when it was issued, the normalised email and the account's stored
//! password hash. So an entry is worth nothing for another account, past `SESSION_DEVICE_TTL_SECS` (checked here,
//! not left to the browser), after the password changes (whoever kept entries while they knew it loses them), or
//! under a rotated key; a forged or garbled one is no entry. Such attempts count against the account as any other.
//! One cookie holds the entries of up to [`MAX_ENTRIES`] accounts (a shared computer), `~`-separated; several
//! cookies of the name (one planted from a sibling domain, say) are all read. The MAC is compared in constant time
//! (`hmac`'s `verify_slice`). Pure: the time is a parameter.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Random bytes naming a device (128 bits: ids never collide, so neither do their limits).
pub const ID_BYTES: usize = 16;
/// Accounts one browser keeps entries for; the oldest go first.
pub const MAX_ENTRIES: usize = 4;
/// Entries read from one request, over every cookie of the name: bounds the MACs a request can make us compute.
const MAX_READ: usize = 8;
/// How far in the future an issue time may be (clocks of the Worker's locations differ a little).
const SKEW_SECS: u64 = 300;

/// The account an entry is for: the normalised email (as the login compares it) and the stored password hash.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
}

/// The key device entries are signed with, derived from the signing key's JWK so that no second secret has to be
/// set (rotating `AUTH_SIGNING_KEY` retires every entry: their holders count against the account again).
/// Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey([u8; 32]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(<secret>)")
    }
}

/// One entry as read, not yet verified.
struct Entry<'a> {
    text: &'a str,
    id: Vec<u8>,
    issued: u64,
    tag: Vec<u8>,
}

fn parse(text: &str) -> Option<Entry<'_>> {
    let mut parts = text.split('.');
    let (id, issued, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || issued.len() > 12 || !issued.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = B64.decode(id).ok().filter(|id| id.len() == ID_BYTES)?;
    Some(Entry {
        text,
        id,
        issued: issued.parse().ok()?,
        tag: B64.decode(tag).ok()?,
    })
}

/// The entries of every cookie value given, at most [`MAX_READ`], in order; malformed ones are skipped.
fn entries<'a>(values: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = Entry<'a>> {
    values
        .into_iter()
        .flat_map(|value| value.split('~'))
        .take(MAX_READ)
        .filter_map(parse)
}

fn live(issued: u64, now_secs: u64, ttl_secs: u64) -> bool {
    issued <= now_secs.saturating_add(SKEW_SECS) && now_secs < issued.saturating_add(ttl_secs)
}

impl DeviceKey {
    /// Derived from the signing JWK's document: an HMAC under it of a label no other use shares.
    pub fn derive(signing_jwk: &str) -> Self {
        let mut m = keyed(signing_jwk.as_bytes());
        m.update(b"edgekit login device cookie key v1");
        Self(m.finalize().into_bytes().into())
    }

    fn mac(&self, id: &[u8], issued: u64, account: Account<'_>) -> HmacSha256 {
        let mut m = keyed(&self.0);
        // The id has a fixed length, the time a fixed width; the email cannot hold a NUL (it is checked).
        m.update(b"device\0");
        m.update(id);
        m.update(&issued.to_be_bytes());
        m.update(account.email.as_bytes());
        m.update(b"\0");
        m.update(account.password_hash.as_bytes());
        m
    }

    fn verifies(&self, entry: &Entry<'_>, account: Account<'_>) -> bool {
        self.mac(&entry.id, entry.issued, account)
            .verify_slice(&entry.tag)
            .is_ok()
    }

    /// The device id (lower-case hex) of the first live entry for `account` among the cookie `values`.
    pub fn trusted<'a>(
        &self,
        values: impl IntoIterator<Item = &'a str>,
        account: Account<'_>,
        now_secs: u64,
        ttl_secs: u64,
    ) -> Option<String> {
        entries(values)
            .find(|e| live(e.issued, now_secs, ttl_secs) && self.verifies(e, account))
            .map(|e| hex::encode(&e.id))
    }

    /// The cookie value after a login to `account` from a browser that sent `values`: a fresh entry (device `id`,
    /// issued now) first, then the live entries it had for other accounts, up to [`MAX_ENTRIES`] in all. Its
    /// entries for this account are replaced.
    pub fn renew<'a>(
        &self,
        values: impl IntoIterator<Item = &'a str>,
        id: &[u8; ID_BYTES],
        account: Account<'_>,
        now_secs: u64,
        ttl_secs: u64,
    ) -> String {
        let tag = self.mac(id, now_secs, account).finalize().into_bytes();
        let fresh = format!("{}.{now_secs}.{}", B64.encode(id), B64.encode(tag));
        let mut kept = vec![fresh];
        for entry in entries(values) {
            if kept.len() == MAX_ENTRIES {
                break;
            }
            let other = live(entry.issued, now_secs, ttl_secs) && !self.verifies(&entry, account);
            if other && !kept.iter().any(|k| k == entry.text) {
                kept.push(entry.text.to_owned());
            }
        }
        kept.join("~")
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The device cookie's name beside the session cookie's. A `__Host-` cookie must have `Path=/`, which the device
/// cookie has not (it goes to the login route only), so that prefix becomes `__Secure-`.
pub fn cookie_name(session_cookie: &str) -> String {
    match session_cookie.strip_prefix("__Host-") {
        Some(rest) => format!("__Secure-{rest}_device"),
        None => format!("{session_cookie}_device"),
    }
}

/// `Set-Cookie` for the device cookie: sent only to the login route (Path), never readable by scripts, only over
/// HTTPS, and never on another site's requests (SameSite=Strict: a front end on another site signs in without it).
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> String {
    format!("{name}={value}; Max-Age={max_age_secs}; Path=/auth/login; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"k","d":"secret","x":"public"}"#;
    const NOW: u64 = 1_800_000_000;
    const TTL: u64 = 86_400;
    const BOB: Account<'static> = Account {
        email: "bob@example.com",
        password_hash: "hash-1",
    };
    const ALICE: Account<'static> = Account {
        email: "alice@example.com",
        password_hash: "hash-2",
    };

    fn issue(key: &DeviceKey, id: u8, account: Account<'_>, at: u64) -> String {
        key.renew(None, &[id; ID_BYTES], account, at, TTL)
    }

    #[test]
    fn an_entry_names_its_device_for_its_account_while_it_lives() {
        let key = DeviceKey::derive(JWK);
        let value = issue(&key, 7, BOB, NOW);
        let trusted = |value: &str, account, now| key.trusted([value], account, now, TTL);
        assert_eq!(
            trusted(&value, BOB, NOW).as_deref(),
            Some("07070707070707070707070707070707")
        );
        assert_eq!(
            trusted(&value, BOB, NOW + TTL - 1).as_deref().map(str::len),
            Some(32)
        );
        assert_eq!(trusted(&value, BOB, NOW + TTL), None, "expired");
        assert_eq!(
            trusted(&value, BOB, NOW - SKEW_SECS - 1),
            None,
            "issued in the future"
        );
        assert_eq!(trusted(&value, ALICE, NOW), None, "another account");
        let changed = Account {
            password_hash: "hash-3",
            ..BOB
        };
        assert_eq!(trusted(&value, changed, NOW), None, "the password changed");
        let upper = Account {
            email: "Bob@example.com",
            ..BOB
        };
        assert_eq!(trusted(&value, upper, NOW), None, "not normalised");
        let rotated = DeviceKey::derive(&JWK.replace("secret", "another"));
        assert_eq!(
            rotated.trusted([value.as_str()], BOB, NOW, TTL),
            None,
            "a rotated key"
        );
    }

    #[test]
    fn forged_and_garbled_entries_are_no_entry() {
        let key = DeviceKey::derive(JWK);
        let value = issue(&key, 7, BOB, NOW);
        let [id, at, tag] = value.split('.').collect::<Vec<_>>()[..] else {
            panic!("three parts: {value}")
        };
        let other_id = B64.encode([9u8; ID_BYTES]);
        let mut flipped = B64.decode(tag).expect("base64url");
        flipped[0] ^= 1;
        let cases = [
            String::new(),
            "..".into(),
            format!("{id}.{at}"),
            format!("{id}.{at}."),
            format!(".{at}.{tag}"),
            format!("{other_id}.{at}.{tag}"),
            format!("{id}.{}.{tag}", NOW + 1),
            format!("{id}.+{at}.{tag}"),
            format!("{id}.{at}.{}", B64.encode(&flipped)),
            format!("{id}.{at}.{}", &tag[..tag.len() - 2]),
            format!("{}.{at}.{tag}", B64.encode([7u8; ID_BYTES + 1])),
            format!("{id}.{at}.{tag}.x"),
            format!("{id}.{at}.{tag}="),
            format!("{id}.99999999999999999999.{tag}"),
            "' OR 1=1 --".into(),
        ];
        for case in cases {
            assert_eq!(
                key.trusted([case.as_str()], BOB, NOW, TTL),
                None,
                "{case:?}"
            );
        }
    }

    #[test]
    fn every_cookie_of_the_name_is_read_and_entries_of_other_accounts_are_kept() {
        let key = DeviceKey::derive(JWK);
        let alices = issue(&key, 1, ALICE, NOW);
        let bobs = issue(&key, 2, BOB, NOW);
        // A planted value first, then the browser's own: Bob's entry is still found.
        let found = key.trusted(["junk", &format!("x~{alices}~{bobs}")], BOB, NOW, TTL);
        assert_eq!(found, Some(hex::encode([2u8; ID_BYTES])));
        // Bob signs in again: a fresh entry first, Alice's kept, Bob's old one and the junk dropped.
        let renewed = key.renew(
            [bobs.as_str(), "junk", &alices],
            &[3; ID_BYTES],
            BOB,
            NOW + 5,
            TTL,
        );
        let parts: Vec<&str> = renewed.split('~').collect();
        assert_eq!(parts.len(), 2, "{renewed}");
        assert_eq!(
            key.trusted([parts[0]], BOB, NOW + 5, TTL),
            Some(hex::encode([3u8; ID_BYTES]))
        );
        assert_eq!(parts[1], alices);
        // Expired entries of other accounts are dropped; at most MAX_ENTRIES are kept, the fresh one first.
        let old = issue(&key, 4, ALICE, NOW - TTL);
        let others: Vec<String> = (10..20)
            .map(|i| {
                let account = Account {
                    email: "carol@example.com",
                    password_hash: "h",
                };
                issue(&key, i, account, NOW)
            })
            .collect();
        let mut sent = vec![old.clone()];
        sent.extend(others.iter().cloned());
        let joined = sent.join("~");
        let renewed = key.renew([joined.as_str()], &[5; ID_BYTES], BOB, NOW, TTL);
        let parts: Vec<&str> = renewed.split('~').collect();
        assert_eq!(parts.len(), MAX_ENTRIES);
        assert!(!parts.contains(&old.as_str()), "expired");
        assert_eq!(
            parts[1..],
            [&others[0], &others[1], &others[2]].map(String::as_str)
        );
        // Only the first MAX_READ entries of a request are looked at.
        let many = ["junk"; MAX_READ].join("~");
        assert_eq!(key.trusted([many.as_str(), &bobs], BOB, NOW, TTL), None);
    }

    #[test]
    fn the_cookie_goes_only_to_the_login_route_and_never_to_scripts() {
        assert_eq!(cookie_name("edgekit_session"), "edgekit_session_device");
        assert_eq!(cookie_name("__Host-sid"), "__Secure-sid_device");
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
