//! Session tokens and cookies: a token is 32 random bytes (256 bits) in base64url; the database and the cache key
//! only ever see its SHA-256 ([`session_id`]), so a leaked table or cache cannot be replayed as cookies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use sha2::{Digest, Sha256};

pub const TOKEN_BYTES: usize = 32;
/// Length of a token in base64url without padding.
pub const TOKEN_CHARS: usize = 43;

/// A fresh token from `random` (32 bytes from the runtime's CSPRNG).
pub fn new_token(random: &[u8; TOKEN_BYTES]) -> String {
    B64.encode(random)
}

/// What the session cookie held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieToken {
    /// No cookie of that name.
    Missing,
    /// A cookie that cannot be one of our tokens (wrong length or alphabet).
    Garbled,
    /// A well-formed token (it may still be unknown, expired or revoked).
    Token(String),
}

/// Reads the session cookie named `name` from a `Cookie` header. A browser holds one cookie of a `__Host-` name for
/// this host, so two values mean one was planted (by a sibling subdomain, a nameless `=__Host-…=` cookie in older
/// browsers, or for an unprefixed name any `Domain`/`Path` cookie sent first): neither is trusted (`Garbled`).
pub fn read_cookie(header: Option<&str>, name: &str) -> CookieToken {
    let mut values = cookie_values(header, name);
    match (values.next(), values.next()) {
        (None, _) => CookieToken::Missing,
        (Some(v), None) if is_token(v) => CookieToken::Token(v.to_owned()),
        _ => CookieToken::Garbled,
    }
}

/// The values of every cookie named `name` in a `Cookie` header, trimmed, in order (a browser sends several when
/// cookies of one name were set for different domains or paths). Pairs are split at `;` only, as browsers write
/// them: a value holds commas and spaces as set (RFC 6265bis §5.6), so a page on a sibling subdomain, which cannot
/// set a `__Host-` cookie, can still set `x=a,__Host-…=<token>` for the parent domain — split at `,` too, that
/// piece was read as a session cookie: a visitor without one was signed in to the planter's account, and beside the
/// user's own it made two values, refused until the planted cookie expired. Two `Cookie` fields reach the Worker
/// joined by `, ` and read alike, a cookie of the name in the second being none: a user agent sends one field (RFC
/// 6265 §5.4), and HTTP/2's cookie crumbs are joined with `; ` before a non-HTTP/2 reader (RFC 9113 §8.2.3).
pub fn cookie_values<'a>(header: Option<&'a str>, name: &'a str) -> impl Iterator<Item = &'a str> {
    header
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

/// The well-formed tokens among the values of the cookie `name`, in order, each once, the first `at_most` of them:
/// what a logout ends. Unlike [`read_cookie`], a planted second value does not hide the user's own token — a made-up
/// one ends nothing. Collecting stops at `at_most`: each value is compared with those kept, so a header of thousands
/// of distinct tokens (a 128 KiB one holds ~1,900) would cost time growing with their number squared.
pub fn tokens<'a>(header: Option<&'a str>, name: &'a str, at_most: usize) -> Vec<&'a str> {
    let mut tokens: Vec<&str> = Vec::new();
    for value in cookie_values(header, name).filter(|v| is_token(v)) {
        if tokens.len() == at_most {
            break;
        }
        if !tokens.contains(&value) {
            tokens.push(value);
        }
    }
    tokens
}

fn is_token(value: &str) -> bool {
    value.len() == TOKEN_CHARS
        && B64
            .decode(value)
            .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES)
}

/// The stored id of a token: lower-case hex SHA-256. Also the KV cache key's suffix.
pub fn session_id(token: &str) -> String {
    sha256_hex(token)
}

/// Lower-case hex SHA-256 of `text` (also keys login rate limits by email without storing the address).
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The KV key caching a session.
pub fn cache_key(session_id: &str) -> String {
    format!("session:{session_id}")
}

/// The rate-limit key under `SESSION_IP_POLICY` of the unknown credentials (session cookies, room tickets) sent from
/// the address `address_key` keys: apart from `address_key` itself, which refresh, logout and the session lists
/// spend with every call, so that those (a busy NAT's honest ones) never refuse the address's session checks.
pub fn unknown_credentials_key(address_key: &str) -> String {
    format!("unknown-credentials:{address_key}")
}

/// `Set-Cookie` for a live session: HttpOnly, Secure, SameSite=Lax, Path=/, expiring with the session.
pub fn set_cookie(name: &str, token: &str, max_age_secs: u64) -> String {
    format!("{name}={token}; Max-Age={max_age_secs}; Path=/; HttpOnly; Secure; SameSite=Lax")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_base64url_chars_and_their_ids_are_sha256_hex() {
        let token = new_token(&[0xab; 32]);
        assert_eq!(token.len(), TOKEN_CHARS);
        let id = session_id(&token);
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, session_id(&new_token(&[0xac; 32])));
        assert_eq!(cache_key("abc"), "session:abc");
    }

    #[test]
    fn unknown_credentials_are_limited_apart_from_the_address_s_session_calls() {
        assert_eq!(
            unknown_credentials_key("ip:203.0.113.7"),
            "unknown-credentials:ip:203.0.113.7"
        );
        assert_ne!(unknown_credentials_key("ip:203.0.113.7"), "ip:203.0.113.7");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_checked_for_shape() {
        let token = new_token(&[1; 32]);
        let cases: Vec<(Option<String>, CookieToken)> = vec![
            (None, CookieToken::Missing),
            (Some("other=1".into()), CookieToken::Missing),
            (
                Some(format!("a=1; edgekit_session={token}; b=2")),
                CookieToken::Token(token.clone()),
            ),
            (
                Some(format!("edgekit_session={token}")),
                CookieToken::Token(token.clone()),
            ),
            (Some("edgekit_session=".into()), CookieToken::Garbled),
            (
                Some(format!("edgekit_session={token}; edgekit_session={token}")),
                CookieToken::Garbled,
            ),
            (Some("edgekit_session=garbage".into()), CookieToken::Garbled),
            (
                Some(format!("edgekit_session={}", "%".repeat(43))),
                CookieToken::Garbled,
            ),
            (
                Some(format!("edgekit_session={token}x")),
                CookieToken::Garbled,
            ),
            (
                Some("edgekit_session=' OR 1=1 --".into()),
                CookieToken::Garbled,
            ),
            // A comma is part of a value (see `cookie_values`): what follows one is no cookie of its own.
            (
                Some(format!("a=1, edgekit_session={token}")),
                CookieToken::Missing,
            ),
            (
                Some(format!("edgekit_session={token}, edgekit_session={token}")),
                CookieToken::Garbled,
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                read_cookie(header.as_deref(), "edgekit_session"),
                expected,
                "{header:?}"
            );
        }
    }

    /// A page on a sibling subdomain cannot set a `__Host-` cookie, but it can set `x=a,__Host-…=<token>` for the
    /// parent domain: browsers keep commas (and spaces) inside a value, which ends only at `;` (RFC 6265bis §5.6).
    /// Read as a cookie of ours, that value signed a visitor without a session in to the planter's account, and beside
    /// the visitor's own cookie made it two values (garbled): locked out until the planted cookie expired.
    #[test]
    fn a_cookie_of_the_name_inside_another_cookie_s_value_is_no_cookie_of_it() {
        let (own, planted) = (new_token(&[1; 32]), new_token(&[2; 32]));
        let name = "__Host-edgekit_session";
        for tossed in [
            format!("x=a,{name}={planted}"),
            format!("x=a, {name}={planted}"),
        ] {
            assert_eq!(
                read_cookie(Some(&tossed), name),
                CookieToken::Missing,
                "{tossed}"
            );
            let both = format!("{name}={own}; {tossed}");
            assert_eq!(
                read_cookie(Some(&both), name),
                CookieToken::Token(own.clone()),
                "{both}"
            );
            assert_eq!(tokens(Some(&both), name, 8), vec![own.as_str()], "{both}");
        }
    }

    #[test]
    fn every_well_formed_value_is_a_token_to_end_once() {
        let (a, b) = (new_token(&[1; 32]), new_token(&[2; 32]));
        let header = format!("s=x; s={a}; other={b}; s={b}; s={a}; s=");
        assert_eq!(tokens(Some(&header), "s", 8), vec![a.as_str(), b.as_str()]);
        assert_eq!(tokens(Some(&header), "s", 1), vec![a.as_str()]);
        assert!(tokens(Some("s=x"), "s", 8).is_empty());
        assert!(tokens(None, "s", 8).is_empty());
    }

    #[test]
    fn set_cookie_has_every_required_attribute() {
        let set = set_cookie("edgekit_session", "tok", 60);
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        assert!(clear_cookie("edgekit_session").contains("Max-Age=0"));
    }
}
