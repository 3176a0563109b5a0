//! Trusted-device cookies, OWASP's answer to lockout ("Slow Down Online Guessing Attacks with Device Cookies"). A
//! limit on login attempts per email stops guessing an account's password, but lets anyone lock the account's owner
//! out by failing on purpose. So a browser that signed in to an account gets a device entry for it; its later
//! attempts for that account count against the device's own limit (`SESSION_LOGIN_DEVICE_POLICY`) instead of the
//! account's shared one, so whoever exhausts an account's limit from elsewhere locks out only the clients its owner
//! never signed in from.
//!
//! An entry is `id.issued.account.seal.mac` (base64url but for the issue time, in seconds), every tag an HMAC under a
//! key derived from `AUTH_SIGNING_KEY`, cut to its first bytes: `account` names the normalised email (so a login
//! checks only its own entries, however many a request carries), `seal` covers the id, the time and the account
//! (the Worker made the entry: a forged one is dropped, not kept for other accounts), and `mac` binds the seal to
//! the salt of the account's stored password (renewed by every password change, kept by a re-hash at a raised
//! cost). So an entry is worth nothing for another account, past `SESSION_DEVICE_TTL_SECS` (checked here, not left
//! to the browser), after the password changes (whoever kept entries while they knew it loses them), or under a
//! rotated key. One cookie holds the entries of up to
//! [`MAX_ENTRIES`] accounts (a shared computer), `~`-separated; every cookie of the name is read (one planted from a
//! sibling domain cannot hide the browser's own: malformed pieces are skipped, and of the first [`MAX_SEALS`]
//! well-formed entries only sealed ones count — more than all the cookies of one name a login route receives can
//! hold). Tags are compared in constant time (`hmac`'s
//! `verify_truncated_left`). Pure: the time is a parameter.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Random bytes naming a device (128 bits: ids never collide, so neither do their limits).
pub const ID_BYTES: usize = 16;
/// Accounts one browser keeps entries for; the newest first.
pub const MAX_ENTRIES: usize = 4;
/// Bytes kept of the account tag (names an email among a browser's few) and of the seal and MAC (128 bits).
const ACCOUNT_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// Well-formed entries of one request looked at (each at most one seal and one MAC): a browser sends at most
/// [`MAX_ENTRIES`] of ours, and the cookies of one name a login route receives (a few domains and paths, 4 KB each)
/// hold fewer than this. Malformed pieces cost no check and are skipped however many, and entries made up for
/// other accounts or this one count for nothing unless sealed, so they cannot take a real one's place.
const MAX_SEALS: usize = 256;
/// How far in the future an issue time may be (clocks of the Worker's locations differ a little).
const SKEW_SECS: u64 = 300;

/// The account an entry is for: the normalised email (as the login compares it) and the salt of the stored password
/// (base64url), which every password change renews and a re-hash at a raised cost keeps — so a re-hash on one
/// browser does not retire the entries of the others.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub email: &'a str,
    pub password_salt: &'a str,
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
    account: Vec<u8>,
    seal: Vec<u8>,
    mac: Vec<u8>,
}

fn parse(text: &str) -> Option<Entry<'_>> {
    let mut parts = text.split('.');
    let mut next = || parts.next();
    let (id, issued, account, seal, mac) = (next()?, next()?, next()?, next()?, next()?);
    if next().is_some() || issued.len() > 12 || !issued.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = |text: &str, len: usize| B64.decode(text).ok().filter(|b| b.len() == len);
    Some(Entry {
        text,
        id: bytes(id, ID_BYTES)?,
        issued: issued.parse().ok()?,
        account: bytes(account, ACCOUNT_BYTES)?,
        seal: bytes(seal, TAG_BYTES)?,
        mac: bytes(mac, TAG_BYTES)?,
    })
}

/// The well-formed entries of every cookie value given, in order.
fn entries<'a>(values: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = Entry<'a>> {
    values
        .into_iter()
        .flat_map(|value| value.split('~'))
        .filter_map(parse)
}

fn live(issued: u64, now_secs: u64, ttl_secs: u64) -> bool {
    issued <= now_secs.saturating_add(SKEW_SECS) && now_secs < issued.saturating_add(ttl_secs)
}

impl DeviceKey {
    /// Derived from the signing JWK's document: an HMAC under it of a label no other use shares.
    pub fn derive(signing_jwk: &str) -> Self {
        let mut m = keyed(signing_jwk.as_bytes());
        m.update(b"edgekit login device cookie key v2");
        Self(m.finalize().into_bytes().into())
    }

    /// An HMAC under the device key of `label` and `parts` (each of a fixed length, but for the last).
    fn tag(&self, label: &[u8], parts: &[&[u8]]) -> HmacSha256 {
        let mut m = keyed(&self.0);
        m.update(label);
        m.update(b"\0");
        for part in parts {
            m.update(part);
        }
        m
    }

    fn account_tag(&self, email: &str) -> Vec<u8> {
        let full = self
            .tag(b"account", &[email.as_bytes()])
            .finalize()
            .into_bytes();
        full[..ACCOUNT_BYTES].to_vec()
    }

    fn seal(&self, id: &[u8], issued: u64, account: &[u8]) -> HmacSha256 {
        self.tag(b"entry", &[id, &issued.to_be_bytes(), account])
    }

    fn mac(&self, seal: &[u8], password_salt: &str) -> HmacSha256 {
        self.tag(b"credential", &[seal, password_salt.as_bytes()])
    }

    /// Whether this Worker made `entry` (its seal verifies).
    fn sealed(&self, entry: &Entry<'_>) -> bool {
        self.seal(&entry.id, entry.issued, &entry.account)
            .verify_truncated_left(&entry.seal)
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
        // The cheap tests first; a seal and a MAC only for a live entry tagged with this account.
        let tag = self.account_tag(account.email);
        entries(values)
            .take(MAX_SEALS)
            .filter(|e| e.account == tag && live(e.issued, now_secs, ttl_secs))
            .find(|e| {
                self.sealed(e)
                    && self
                        .mac(&e.seal, account.password_salt)
                        .verify_truncated_left(&e.mac)
                        .is_ok()
            })
            .map(|e| hex::encode(&e.id))
    }

    /// The cookie value after a login to `account` from a browser that sent `values`: a fresh entry (device `id`,
    /// issued now) first, then the live entries this Worker made for other accounts, up to [`MAX_ENTRIES`] in
    /// all. Its entries for this account are replaced; forged ones are dropped.
    pub fn renew<'a>(
        &self,
        values: impl IntoIterator<Item = &'a str>,
        id: &[u8; ID_BYTES],
        account: Account<'_>,
        now_secs: u64,
        ttl_secs: u64,
    ) -> String {
        let tag = self.account_tag(account.email);
        let seal = self.seal(id, now_secs, &tag).finalize().into_bytes();
        let seal = &seal[..TAG_BYTES];
        let mac = self
            .mac(seal, account.password_salt)
            .finalize()
            .into_bytes();
        let b64 = |bytes: &[u8]| B64.encode(bytes);
        let fresh = [
            b64(id),
            now_secs.to_string(),
            b64(&tag),
            b64(seal),
            b64(&mac[..TAG_BYTES]),
        ]
        .join(".");
        let mut kept = vec![fresh];
        let mut accounts = vec![tag.clone()];
        let others = entries(values)
            .take(MAX_SEALS)
            .filter(|e| e.account != tag && live(e.issued, now_secs, ttl_secs));
        for entry in others {
            if kept.len() == MAX_ENTRIES {
                break;
            }
            if !accounts.contains(&entry.account) && self.sealed(&entry) {
                accounts.push(entry.account.clone());
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
    // Browsers match cookie prefixes without case: `__host-sid` is a `__Host-` cookie too.
    match session_cookie
        .get(..7)
        .filter(|head| head.eq_ignore_ascii_case("__Host-"))
    {
        Some(_) => format!("__Secure-{}_device", &session_cookie[7..]),
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
        password_salt: "salt-1",
    };
    const ALICE: Account<'static> = Account {
        email: "alice@example.com",
        password_salt: "salt-2",
    };

    fn issue(key: &DeviceKey, id: u8, account: Account<'_>, at: u64) -> String {
        key.renew(None, &[id; ID_BYTES], account, at, TTL)
    }

    fn carol(n: u8) -> String {
        format!("carol{n}@example.com")
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
        assert!(trusted(&value, BOB, NOW + TTL - 1).is_some());
        assert_eq!(trusted(&value, BOB, NOW + TTL), None, "expired");
        assert_eq!(
            trusted(&value, BOB, NOW - SKEW_SECS - 1),
            None,
            "issued in the future"
        );
        assert_eq!(trusted(&value, ALICE, NOW), None, "another account");
        let changed = Account {
            password_salt: "salt-3",
            ..BOB
        };
        assert_eq!(trusted(&value, changed, NOW), None, "the password changed");
        let upper = Account {
            email: "Bob@example.com",
            ..BOB
        };
        assert_eq!(trusted(&value, upper, NOW), None, "not normalised");
        let unknown = Account {
            password_salt: "",
            ..BOB
        };
        assert_eq!(trusted(&value, unknown, NOW), None, "no stored password");
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
        let [id, at, account, seal, mac] = value.split('.').collect::<Vec<_>>()[..] else {
            panic!("five parts: {value}")
        };
        let alices = issue(&key, 7, ALICE, NOW);
        let alice_account = alices.split('.').nth(2).expect("an account tag");
        let other_id = B64.encode([9u8; ID_BYTES]);
        let flip = |tag: &str| {
            let mut bytes = B64.decode(tag).expect("base64url");
            bytes[0] ^= 1;
            B64.encode(bytes)
        };
        let cases = [
            String::new(),
            "....".into(),
            format!("{id}.{at}.{account}.{seal}"),
            format!("{id}.{at}.{account}.{seal}."),
            format!("{other_id}.{at}.{account}.{seal}.{mac}"),
            format!("{id}.{}.{account}.{seal}.{mac}", NOW + 1),
            format!("{id}.+{at}.{account}.{seal}.{mac}"),
            format!("{id}.{at}.{alice_account}.{seal}.{mac}"),
            format!("{id}.{at}.{account}.{}.{mac}", flip(seal)),
            format!("{id}.{at}.{account}.{seal}.{}", flip(mac)),
            format!("{id}.{at}.{account}.{seal}.{}", &mac[..mac.len() - 2]),
            format!(
                "{}.{at}.{account}.{seal}.{mac}",
                B64.encode([7u8; ID_BYTES + 1])
            ),
            format!("{id}.{at}.{account}.{seal}.{mac}.x"),
            format!("{id}.{at}.{account}.{seal}.{mac}="),
            format!("{id}.99999999999999999999.{account}.{seal}.{mac}"),
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
        // Planted values first — garbage, many empty pieces, forged entries for Bob's account — then the browser's
        // own cookie: Bob's entry is still found.
        let tag = bobs.split('.').nth(2).expect("an account tag");
        let forged: Vec<String> = (0..10u8)
            .map(|i| {
                format!(
                    "{}.{NOW}.{tag}.{}.{}",
                    B64.encode([i; ID_BYTES]),
                    B64.encode([i; TAG_BYTES]),
                    B64.encode([i; TAG_BYTES])
                )
            })
            .collect();
        let planted = ["junk".to_owned(), "~".repeat(4000), forged.join("~")];
        let own = format!("x~{alices}~{bobs}");
        let sent: Vec<&str> = planted
            .iter()
            .map(String::as_str)
            .chain([own.as_str()])
            .collect();
        let found = key.trusted(sent.iter().copied(), BOB, NOW, TTL);
        assert_eq!(found, Some(hex::encode([2u8; ID_BYTES])));
        // Bob signs in again: a fresh entry first, Alice's kept; Bob's old one, the junk and the forgeries dropped.
        let renewed = key.renew(sent.iter().copied(), &[3; ID_BYTES], BOB, NOW + 5, TTL);
        let parts: Vec<&str> = renewed.split('~').collect();
        assert_eq!(parts.len(), 2, "{renewed}");
        assert_eq!(
            key.trusted([parts[0]], BOB, NOW + 5, TTL),
            Some(hex::encode([3u8; ID_BYTES]))
        );
        assert_eq!(parts[1], alices);
        // Forged entries for other accounts are not kept either, nor expired ones; one entry per account, at most
        // MAX_ENTRIES, the fresh one first.
        let old = issue(&key, 4, ALICE, NOW - TTL);
        let fake_other = forged[5].replace(tag, alices.split('.').nth(2).expect("a tag"));
        let others: Vec<String> = (0..10u8)
            .map(|i| {
                let email = carol(i);
                let account = Account {
                    email: &email,
                    password_salt: "h",
                };
                issue(&key, 10 + i, account, NOW)
            })
            .collect();
        let mut sent = vec![old.clone(), fake_other.clone(), others[0].clone()];
        sent.extend(others.iter().cloned());
        let joined = sent.join("~");
        let renewed = key.renew([joined.as_str()], &[5; ID_BYTES], BOB, NOW, TTL);
        let parts: Vec<&str> = renewed.split('~').collect();
        assert_eq!(parts.len(), MAX_ENTRIES);
        assert!(!parts.contains(&old.as_str()), "expired");
        assert!(!parts.contains(&fake_other.as_str()), "forged");
        assert_eq!(
            parts[1..],
            [&others[0], &others[1], &others[2]].map(String::as_str)
        );
        // Well-formed entries made up for other accounts, however many, do not push Alice's out.
        let made_up: Vec<String> = (0..40u8)
            .map(|i| {
                let tag = B64.encode([i; ACCOUNT_BYTES]);
                let junk = B64.encode([i; TAG_BYTES]);
                format!("{}.{NOW}.{tag}.{junk}.{junk}", B64.encode([i; ID_BYTES]))
            })
            .collect();
        let sent = format!("{}~{alices}", made_up.join("~"));
        let renewed = key.renew([sent.as_str()], &[6; ID_BYTES], BOB, NOW, TTL);
        assert_eq!(renewed.split('~').nth(1), Some(alices.as_str()));
    }

    #[test]
    fn the_cookie_goes_only_to_the_login_route_and_never_to_scripts() {
        assert_eq!(cookie_name("edgekit_session"), "edgekit_session_device");
        assert_eq!(cookie_name("__Host-sid"), "__Secure-sid_device");
        assert_eq!(cookie_name("__host-sid"), "__Secure-sid_device");
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
