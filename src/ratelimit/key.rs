//! The key a policy limits: resolved from what identifies the client (client IP, verified user id, API-key header,
//! route + user). Pure, so every capability resolves keys the same way; the handler only gathers the inputs.
//! Keys are prefixed by their source (`ip:`, `user:`, `key:`, `route:`) so sources never collide (a second budget
//! beside a key, by `state:`), and API keys are
//! stored only as a SHA-256 digest (the limiter's storage never holds a credential).

use std::net::IpAddr;

use durable_objects::ratelimit::protocol::MAX_KEY_BYTES;
use sha2::{Digest, Sha256};

use super::policy::KeySource;
use crate::client_address::ClientAddress;
use crate::error::ApiError;

/// What a request offers to identify its client. `user_id` must already be verified by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyInputs<'a> {
    /// The client's address (`None`: missing or malformed); an `ip` key is its [`ClientAddress::limited`] network.
    pub client: Option<ClientAddress>,
    pub user_id: Option<&'a str>,
    /// The value of the policy's API-key header.
    pub api_key: Option<&'a str>,
    /// The route pattern (e.g. `/rooms/{id}/ws`), not the raw path, so one limit covers the route.
    pub route: &'a str,
}

/// Why no key could be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    NoClientIp,
    NoUser,
    NoApiKey { header: String },
}

impl KeyError {
    /// The answer to a request refused for lacking what policy `policy` keys on. Never a bearer `invalid_token`
    /// challenge (RFC 6750 §3.1): that tells an OAuth client its token is expired or revoked, and it refreshes the
    /// token and retries — while what is missing is an API key beside a valid token, or a sign-in. A missing API key
    /// is challenged by the header that carries it (as Azure API Management's `WWW-Authenticate` names its key
    /// header); a missing user gets the bare `Bearer` challenge RFC 6750 §3.1 asks for when a request lacks
    /// credentials (RFC 9110 §15.5.2: a 401 always carries one), as the gateway's routes answer a missing token.
    pub fn refusal(&self, policy: &str) -> ApiError {
        match self {
            KeyError::NoClientIp => {
                ApiError::bad_request("client_ip_unknown", "the client address is unknown")
            }
            KeyError::NoUser => ApiError::new(
                401,
                "authentication_required",
                format!("rate limit `{policy}` applies per signed-in user; sign in first"),
            )
            .with_header("www-authenticate", "Bearer"),
            KeyError::NoApiKey { header } => ApiError::new(
                401,
                "api_key_required",
                format!("send your API key in the `{header}` header"),
            )
            .with_header("www-authenticate", format!("ApiKey header=\"{header}\"")),
        }
    }
}

/// The limited key for `source`, or what is missing.
pub fn resolve(source: &KeySource, inputs: &KeyInputs) -> Result<String, KeyError> {
    resolve_raw(source, inputs).map(bounded)
}

/// A key the limiter object accepts: one longer than its [`MAX_KEY_BYTES`] (a long user id or route) is replaced by
/// its SHA-256, so it is still limited — the object refuses over-long keys, and that refusal must never become a
/// pass (fail-open) for the one caller who can choose a long identity.
pub fn bounded(key: String) -> String {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    format!("long:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

fn resolve_raw(source: &KeySource, inputs: &KeyInputs) -> Result<String, KeyError> {
    // Header values (addresses, API keys) are read trimmed; a user id is verified identity, taken as given: trimmed,
    // `" u1"` and `"u1"` would share one budget.
    fn present(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let user = inputs.user_id.filter(|u| !u.is_empty());
    match source {
        KeySource::ClientIp => inputs
            .client
            .map(|client| format!("ip:{}", client_network(client.limited())))
            .ok_or(KeyError::NoClientIp),
        KeySource::User => user.map(|u| format!("user:{u}")).ok_or(KeyError::NoUser),
        KeySource::RouteUser => user
            .map(|u| format!("route:{}|user:{u}", inputs.route))
            .ok_or(KeyError::NoUser),
        KeySource::ApiKey { header } => present(inputs.api_key)
            .map(|k| format!("key:{}", &hex::encode(Sha256::digest(k.as_bytes()))[..32]))
            .ok_or(KeyError::NoApiKey {
                header: header.clone(),
            }),
    }
}

/// The key of a second budget a request's resolved key `own` has beside its own (the rooms' `/state` reads, at
/// their ticket policy's rate): `state:` and `own`, a prefix no source resolves to. A suffix could not keep them
/// apart: a user id is any text, and `user:u1|state` was both the state budget of `u1` and the key of a user
/// `u1|state` (and a long one's digest, the digest of either).
pub fn state_budget(own: &str) -> String {
    bounded(format!("state:{own}"))
}

/// The longest `hot_keys` entry: a split key's parts add `\x1f` and up to four digits, and the limiter object
/// refuses keys past [`MAX_KEY_BYTES`].
pub const MAX_HOT_KEY_BYTES: usize = MAX_KEY_BYTES - 5;

/// Whether `key` (a `hot_keys` entry) has the form `resolve` gives keys from `source`, so an entry that can never
/// match a request (an address without `ip:`, a raw API key, an email as written, a user id under an `ip` policy)
/// is refused at start. `user` policies also limit login attempts by `email:` and `device:` keys.
pub fn could_resolve_to(source: &KeySource, key: &str) -> bool {
    let hex_of = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if key.len() > MAX_HOT_KEY_BYTES {
        return false;
    }
    // A second budget beside a resolved key ([`state_budget`]) — one, never a state budget's own.
    if let Some(own) = key.strip_prefix("state:") {
        return !own.starts_with("state:") && could_resolve_to(source, own);
    }
    // Only a user id can be long enough to be keyed by its digest (an API key always is, as `key:`; an address
    // never is).
    if let Some(digest) = key.strip_prefix("long:") {
        return source.is_per_user() && hex_of(digest, 64);
    }
    let (prefix, rest) = key.split_once(':').unwrap_or((key, ""));
    match source {
        KeySource::ClientIp => prefix == "ip" && written_address(rest).parse::<IpAddr>().is_ok(),
        // A login's `email:` key is the SHA-256 of the normalised email, its `device:` key the device's 16-byte id,
        // both in lower-case hex (`session::handler`): an email as written never matched one.
        KeySource::User => match prefix {
            "user" => !rest.is_empty(),
            "email" => hex_of(rest, 64),
            "device" => hex_of(rest, 32),
            _ => false,
        },
        KeySource::RouteUser => prefix == "route" && rest.contains("|user:"),
        KeySource::ApiKey { .. } => prefix == "key" && hex_of(rest, 32),
    }
}

/// A resolved key as an operator may write it in `hot_keys`, in the form `resolve` produces: an `ip:` key by its
/// client network (an IPv6 address by its /64, an IPv4-mapped one as IPv4), so it matches; other keys as given.
pub fn normalise_resolved(key: &str) -> String {
    if let Some(own) = key.strip_prefix("state:") {
        return format!("state:{}", normalise_resolved(own));
    }
    match key.strip_prefix("ip:") {
        Some(ip) => match written_address(ip).parse::<IpAddr>() {
            Ok(ip) => format!("ip:{}", client_network(ip)),
            Err(_) => key.to_owned(),
        },
        None => key.to_owned(),
    }
}

/// The address of an `ip:` hot key as written: an IPv6 network written as `…/64` (any spelling of its address)
/// is that address, which `client_network` takes to the same /64; anything else as given.
fn written_address(ip: &str) -> &str {
    ip.strip_suffix("/64")
        .filter(|net| net.parse::<std::net::Ipv6Addr>().is_ok())
        .unwrap_or(ip)
}

/// The network a client is limited by: an IPv4 address itself, an IPv6 address by its /64 (one subscriber usually
/// holds a whole /64, so per-address limits would be trivial to evade). An IPv4 client seen through a dual-stack
/// listener (`::ffff:a.b.c.d`) is that IPv4 address: by /64 every IPv4 client would share one key.
fn client_network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str, ipv6: Option<&str>) -> Option<ClientAddress> {
        ClientAddress::read(Some(ip), ipv6)
    }

    #[test]
    fn hot_key_entries_must_have_the_form_their_policys_keys_resolve_to() {
        let api = KeySource::ApiKey {
            header: "x-api-key".into(),
        };
        let digest = |k: &str| {
            resolve(
                &api,
                &KeyInputs {
                    api_key: Some(k),
                    ..KeyInputs::default()
                },
            )
            .expect("resolved")
        };
        let long = format!("long:{}", "ab".repeat(32));
        let at_most = format!("user:{}", "u".repeat(MAX_HOT_KEY_BYTES - 5));
        let email_key = format!(
            "email:{}",
            hex::encode(Sha256::digest(b"alice@example.com"))
        );
        for (source, key) in [
            (&KeySource::ClientIp, "ip:203.0.113.7"),
            (&KeySource::ClientIp, "ip:2001:db8:1:2:3:4:5:6"),
            (&KeySource::ClientIp, "ip:2001:db8:1:2::/64"),
            (&KeySource::User, "user:u-42"),
            // A login's keys: the SHA-256 of the normalised email, the device id (16 bytes), in lower-case hex.
            (&KeySource::User, &email_key),
            (&KeySource::User, &format!("device:{}", "0f".repeat(16))),
            (&KeySource::User, &at_most),
            (&KeySource::User, &long),
            (&KeySource::RouteUser, "route:/rooms/{id}/ws|user:u-42"),
            (&api, &digest("hot")),
        ] {
            assert!(could_resolve_to(source, key), "{source:?} {key}");
        }
        let too_long = format!("user:{}", "u".repeat(MAX_HOT_KEY_BYTES - 4));
        for (source, key) in [
            (&KeySource::ClientIp, "203.0.113.7"),
            (&KeySource::ClientIp, "ip:203.0.113"),
            (&KeySource::ClientIp, "user:u-42"),
            // Addresses and API keys never resolve to a digest of a long key.
            (&KeySource::ClientIp, &long),
            (&api, &long),
            (&KeySource::User, "user:"),
            (&KeySource::User, "ip:203.0.113.7"),
            (&KeySource::User, &too_long),
            (&KeySource::RouteUser, "route:/rooms/{id}/ws"),
            // The email as written, or a digest in another spelling, is no key a login resolves to: it never matched.
            (&KeySource::User, "email:alice@example.com"),
            (
                &KeySource::User,
                &email_key.to_uppercase().replacen("EMAIL", "email", 1),
            ),
            (&KeySource::User, "email:0f0f"),
            (&KeySource::User, "device:0f0f"),
            (&KeySource::User, "device:alice-laptop"),
            (&api, "key:the-raw-api-key"),
            (&api, &format!("key:{}", digest("hot")[4..].to_uppercase())),
            (&api, "long:abc"),
        ] {
            assert!(!could_resolve_to(source, key), "{source:?} {key}");
        }
    }

    #[test]
    fn a_hot_key_written_as_any_form_of_a_64_matches_the_resolved_key() {
        let resolved = resolve(
            &KeySource::ClientIp,
            &KeyInputs {
                client: client("2001:db8::1", None),
                ..KeyInputs::default()
            },
        )
        .expect("resolved");
        for written in [
            "ip:2001:db8::/64",
            "ip:2001:DB8:0:0::/64",
            "ip:2001:0db8:0:0:1::/64",
            "ip:2001:db8::1",
        ] {
            assert!(could_resolve_to(&KeySource::ClientIp, written), "{written}");
            assert_eq!(normalise_resolved(written), resolved, "{written}");
        }
    }

    #[test]
    fn hot_keys_written_as_addresses_match_resolved_keys() {
        assert_eq!(
            normalise_resolved("ip:2001:db8:1:2:3:4:5:6"),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            normalise_resolved("ip:::ffff:203.0.113.7"),
            "ip:203.0.113.7"
        );
        assert_eq!(normalise_resolved("ip:203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(normalise_resolved("user:u-42"), "user:u-42");
    }

    #[test]
    fn behind_pseudo_ipv4_a_client_is_limited_by_the_64_of_its_real_ipv6_address() {
        let key = |ip: &str, ipv6: Option<&str>| {
            let inputs = KeyInputs {
                client: client(ip, ipv6),
                ..KeyInputs::default()
            };
            resolve(&KeySource::ClientIp, &inputs).expect("resolved")
        };
        let cases = [
            // Pseudo IPv4 "Overwrite Headers": class E addresses hashed from two addresses of one /64.
            (
                "240.16.0.1",
                Some("2001:db8:1:2::a"),
                "ip:2001:db8:1:2::/64",
            ),
            (
                "247.3.9.200",
                Some("2001:DB8:1:2:ffff::1"),
                "ip:2001:db8:1:2::/64",
            ),
            (
                "255.1.2.3",
                Some(" 2001:db8:1:2::1 "),
                "ip:2001:db8:1:2::/64",
            ),
            // A real address: the header is the client's to send, and ignored.
            ("203.0.113.7", Some("2001:db8:9::1"), "ip:203.0.113.7"),
            (
                "2001:db8:3:4::1",
                Some("2001:db8:9::1"),
                "ip:2001:db8:3:4::/64",
            ),
            // A pseudo address without a readable IPv6 one is kept.
            ("240.16.0.1", Some("not an address"), "ip:240.16.0.1"),
            ("240.16.0.1", None, "ip:240.16.0.1"),
            (
                "239.255.255.255",
                Some("2001:db8:1:2::a"),
                "ip:239.255.255.255",
            ),
        ];
        for (ip, ipv6, expected) in cases {
            assert_eq!(key(ip, ipv6), expected, "{ip} {ipv6:?}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let network = |ip: &str| client_network(ip.parse().expect("an address"));
        assert_eq!(network("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(network("::ffff:198.51.100.1"), "198.51.100.1");
        assert_eq!(network("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_state_budget_is_no_key_any_policy_resolves() {
        // A user id is any text (D1 users.id): one ending in `|state`, or long enough to be keyed by its digest,
        // must not share the state budget of another user.
        let long = "u".repeat(MAX_KEY_BYTES);
        for source in [KeySource::User, KeySource::RouteUser, KeySource::ClientIp] {
            for user in ["u1", "u1|state", long.as_str()] {
                fn inputs(user_id: &str) -> KeyInputs<'_> {
                    KeyInputs {
                        client: client("203.0.113.7", None),
                        user_id: Some(user_id),
                        route: "/rooms/state",
                        ..KeyInputs::default()
                    }
                }
                let own = resolve(&source, &inputs(user)).expect("resolves");
                let state = state_budget(&own);
                for other in [
                    format!("{user}|state"),
                    format!("{long}|state"),
                    user.to_owned(),
                ] {
                    let theirs = resolve(&source, &inputs(&other)).expect("resolves");
                    assert_ne!(state, theirs, "{source:?}: {user:?}'s state vs {other:?}");
                }
                assert!(
                    !["ip:", "user:", "email:", "device:", "route:", "key:", "long:"]
                        .iter()
                        .any(|p| state.starts_with(p)),
                    "{source:?} {state}"
                );
                assert!(could_resolve_to(&source, &state), "{source:?} {state}");
            }
        }
        // One state budget beside a key, never a state budget's own: `state:state:…` is no key any request has.
        for source in [KeySource::User, KeySource::RouteUser, KeySource::ClientIp] {
            let own = match source {
                KeySource::User => "user:u1",
                KeySource::RouteUser => "route:/rooms/state|user:u1",
                _ => "ip:203.0.113.7",
            };
            assert!(
                could_resolve_to(&source, &format!("state:{own}")),
                "{source:?}"
            );
            assert!(
                !could_resolve_to(&source, &format!("state:state:{own}")),
                "{source:?}"
            );
            assert!(!could_resolve_to(&source, "state:"), "{source:?}");
        }
        assert_eq!(state_budget("user:u1"), "state:user:u1");
        assert_eq!(
            normalise_resolved("state:ip:2001:db8:1:2:3:4:5:6"),
            "state:ip:2001:db8:1:2::/64"
        );
    }

    #[test]
    fn each_source_resolves_to_its_prefixed_key() {
        let inputs = KeyInputs {
            client: client("203.0.113.7", None),
            user_id: Some("u-42"),
            api_key: Some("secret-key"),
            route: "/rooms/{id}/ws",
        };
        let api = KeySource::ApiKey {
            header: "x-api-key".into(),
        };
        let cases: Vec<(KeySource, &str)> = vec![
            (KeySource::ClientIp, "ip:203.0.113.7"),
            (KeySource::User, "user:u-42"),
            (KeySource::RouteUser, "route:/rooms/{id}/ws|user:u-42"),
            // sha256("secret-key"), first 16 bytes in hex.
            (api, "key:85dbe15d75ef9308c7ae0f33c7a324cc"),
        ];
        for (source, expected) in cases {
            let key = resolve(&source, &inputs).expect("resolves");
            assert_eq!(key, expected, "{source:?}");
            assert!(
                !key.contains("secret"),
                "{source:?}: the API key itself is never stored"
            );
        }
    }

    #[test]
    fn a_key_too_long_for_the_limiter_object_is_limited_by_its_digest() {
        let long_user = "u".repeat(600);
        let other_user = format!("{}v", "u".repeat(599));
        let key = |user: &str| {
            let inputs = KeyInputs {
                user_id: Some(user),
                route: "/api/:id",
                ..KeyInputs::default()
            };
            resolve(&KeySource::RouteUser, &inputs).expect("resolves")
        };
        let (a, b) = (key(&long_user), key(&other_user));
        assert!(a.len() <= MAX_KEY_BYTES && a.starts_with("long:"), "{a}");
        assert_ne!(a, b, "distinct identities keep distinct keys");
        assert_eq!(a, key(&long_user), "the same identity keeps its key");
        assert_eq!(
            key("short"),
            "route:/api/:id|user:short",
            "short keys are unchanged"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64_and_ipv4_by_address() {
        let cases = [
            ("2001:db8:1:2:aaaa::1", "ip:2001:db8:1:2::/64"),
            ("2001:db8:1:2:bbbb::9", "ip:2001:db8:1:2::/64"),
            (" 198.51.100.3 ", "ip:198.51.100.3"),
        ];
        for (ip, expected) in cases {
            let inputs = KeyInputs {
                client: client(ip, None),
                ..KeyInputs::default()
            };
            assert_eq!(
                resolve(&KeySource::ClientIp, &inputs).as_deref(),
                Ok(expected),
                "{ip}"
            );
        }
    }

    #[test]
    fn distinct_api_keys_get_distinct_keys_and_the_same_key_the_same() {
        let source = KeySource::ApiKey {
            header: "x-api-key".into(),
        };
        let key = |k| {
            resolve(
                &source,
                &KeyInputs {
                    api_key: Some(k),
                    ..KeyInputs::default()
                },
            )
        };
        assert_eq!(key("a"), key("a"), "stable");
        assert_ne!(key("a"), key("b"), "distinct");
    }

    #[test]
    fn a_missing_key_is_never_answered_as_an_invalid_bearer_token() {
        let cases = [
            (
                KeyError::NoApiKey {
                    header: "x-api-key".into(),
                },
                401,
                "api_key_required",
                Some("ApiKey header=\"x-api-key\""),
            ),
            (
                KeyError::NoUser,
                401,
                "authentication_required",
                Some("Bearer"),
            ),
            (KeyError::NoClientIp, 400, "client_ip_unknown", None),
        ];
        for (error, status, code, challenge) in cases {
            let refusal = error.refusal("p");
            assert_eq!(
                (refusal.status(), refusal.code()),
                (status, code),
                "{error:?}"
            );
            let sent = refusal
                .headers()
                .iter()
                .find(|(name, _)| *name == "www-authenticate")
                .map(|(_, value)| value.as_str());
            assert_eq!(sent, challenge, "{error:?}");
        }
    }

    /// A user id is verified identity, compared as stored: trimmed, `" u1"` (a users.id a room's ticket policy keys
    /// on; rooms take any id a session names) and `"u1"` were one budget, and an id of blanks was "no user" — a 401
    /// asking a signed-in user to sign in. Addresses and API keys are header values, which the runtime trims anyway.
    #[test]
    fn user_ids_are_keyed_as_given_not_trimmed() {
        let key = |source: &KeySource, user: &'static str| {
            resolve(
                source,
                &KeyInputs {
                    user_id: Some(user),
                    route: "/rooms/ticket",
                    ..KeyInputs::default()
                },
            )
        };
        for source in [KeySource::User, KeySource::RouteUser] {
            let plain = key(&source, "u1");
            for spaced in [" u1", "u1 ", "u1\t", "u1\u{3000}"] {
                assert_ne!(key(&source, spaced), plain, "{source:?} {spaced:?}");
            }
            assert!(
                key(&source, " ").is_ok(),
                "{source:?}: an id of blanks is someone"
            );
            assert_eq!(key(&source, ""), Err(KeyError::NoUser), "{source:?}");
        }
    }

    #[test]
    fn missing_inputs_say_what_is_missing() {
        let none = KeyInputs::default();
        let api = KeySource::ApiKey {
            header: "x-api-key".into(),
        };
        assert_eq!(
            resolve(&KeySource::ClientIp, &none),
            Err(KeyError::NoClientIp),
            "no address (missing or malformed: `client_address`)"
        );
        assert_eq!(
            resolve(&KeySource::User, &none),
            Err(KeyError::NoUser),
            "no user"
        );
        assert_eq!(
            resolve(&KeySource::RouteUser, &none),
            Err(KeyError::NoUser),
            "no user for route"
        );
        assert_eq!(
            resolve(&api, &none),
            Err(KeyError::NoApiKey {
                header: "x-api-key".into()
            }),
            "no key"
        );
    }
}
