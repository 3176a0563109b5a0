//! Rate-limit policies from configuration: the wrangler.toml table var `RATE_LIMIT_POLICIES`, one entry per policy
//! name, parsed and validated once per isolate. An invalid entry fails the whole configuration with an error that
//! names the key, the policy and the field.
//!
//! ```toml
//! [vars.RATE_LIMIT_POLICIES.api]
//! limit = 600          # requests …
//! window = 60          # … per this many seconds
//! key = "api_key"      # ip | user | api_key | route_user
//! header = "x-api-key" # api_key only: the header holding the key (default x-api-key)
//! shards = 16          # objects the keys spread over (default 8)
//! failure = "open"     # when the limiter cannot be reached: open (allow) or closed (503); default open
//! timeout_ms = 5000    # an object that has not answered by then counts as unreachable (default 5000, 50-30000)
//! hot_keys = { "key:85dbe15d75ef9308c7ae0f33c7a324cc" = 4 }  # resolved keys (an API key as `key:` + the first
//!                      # 32 hex of its SHA-256; under an `ip` policy `ip:203.0.113.7`, any address: it is keyed by
//!                      # its network, as requests are) split over this many parts (2..=1024, at most limit)
//! check = true         # GET /ratelimit/{name}/check serves this policy (default false)
//! ```

use std::collections::BTreeMap;

use durable_objects::ratelimit::gcra::{MAX_LIMIT, MAX_WINDOW_MS};
use durable_objects::ratelimit::protocol::BINDING;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{ConfigError, Vars};

/// How long a request waits for its limiter object by default (`timeout_ms`), and the bounds of the setting: one
/// that has not answered by then (stuck, or with a queue that keeps it waiting) counts as unreachable, and the
/// policy's `failure` decides — waited on without a bound, it held every request of its shard, whatever that said.
const DEFAULT_TIMEOUT_MS: u64 = 5_000;
const MIN_TIMEOUT_MS: u64 = 50;
const MAX_TIMEOUT_MS: u64 = 30_000;

/// The table var holding every policy.
pub const POLICIES_KEY: &str = "RATE_LIMIT_POLICIES";
/// The secret that keys the choice of a key's shard (see [`ShardKey`]).
pub const SHARD_KEY_KEY: &str = "RATE_LIMIT_SHARD_KEY";
/// Shortest [`SHARD_KEY_KEY`]: 16 bytes, 128 bits nobody can guess.
const MIN_SHARD_KEY_BYTES: usize = 16;

/// A per-deployment secret that picks a key's shard as HMAC-SHA256(secret, state key) mod shards instead of the
/// public FNV-1a: with the code alone, anyone could choose keys (addresses of one /64 they own, API keys they mint)
/// that all land in one shard and pile their load on one object. Every isolate of a deployment reads the same
/// secret, so a key maps to the same object in all of them. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ShardKey(Vec<u8>);

impl std::fmt::Debug for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShardKey(..)")
    }
}

impl ShardKey {
    /// The shard (`0..shards`) of `state_key`: the first 8 bytes of its HMAC, big-endian, mod `shards`.
    pub fn shard_of(&self, state_key: &str, shards: u32) -> u32 {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(state_key.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(shards.max(1))) as u32
    }
}
/// Header an `api_key` policy reads when it names none.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";
const MAX_SHARDS: u32 = 1024;
const MAX_PARTS: u32 = 1024;

/// What identifies the client a limit applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `CF-Connecting-IP` (IPv6 addresses by their /64).
    ClientIp,
    /// The verified user id (session or access token), given by the calling capability.
    User,
    /// An API key from a request header (stored only as a SHA-256 digest).
    ApiKey { header: String },
    /// The route pattern as written and the verified user id: one limit per user per route path (gateway routes
    /// written with the same path, for other methods, share it).
    RouteUser,
}

impl KeySource {
    /// Whether the key names a signed-in user (`user`, `route_user`): a request without one cannot be counted.
    pub fn is_per_user(&self) -> bool {
        matches!(self, KeySource::User | KeySource::RouteUser)
    }
}

/// What to do when the limiter object cannot be reached or errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Let the request through (without a `RateLimit` state header).
    Open,
    /// Refuse it with 503.
    Closed,
}

/// One validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub limit: u32,
    pub window_s: u64,
    pub key: KeySource,
    pub shards: u32,
    pub failure: FailureMode,
    /// How long a request waits for its limiter object before `failure` decides.
    pub timeout_ms: u64,
    /// Resolved keys split over several parts, with their part count.
    pub hot_keys: BTreeMap<String, u32>,
    /// The Durable Object namespace binding (default `RATE_LIMITER`).
    pub binding: String,
    /// Whether `GET /ratelimit/{policy}/check` serves it. Off unless set: a GET any page can make (an `<img>`) would
    /// otherwise let a site spend its visitors' budgets under any policy — login attempts per IP included.
    pub check: bool,
    /// [`SHARD_KEY_KEY`], when set: keys the choice of shard.
    pub shard_key: Option<ShardKey>,
}

impl Policy {
    /// How many parts `key` is split over (1 = not split).
    pub fn parts(&self, key: &str) -> u32 {
        self.hot_keys.get(key).copied().unwrap_or(1)
    }

    pub fn window_ms(&self) -> u64 {
        self.window_s * 1000
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    limit: u32,
    window: u64,
    key: String,
    header: Option<String>,
    shards: Option<u32>,
    failure: Option<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    hot_keys: BTreeMap<String, u32>,
    binding: Option<String>,
    #[serde(default)]
    check: bool,
}

fn is_token(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

impl Policy {
    fn parse(name: &str, value: Value) -> Result<Self, String> {
        if name.len() > 32 || !is_token(name, b"_-") {
            return Err("names must be 1-32 characters of a-z, 0-9, _ and -".into());
        }
        let raw: RawPolicy = crate::config::typed(value)?;
        if raw.limit == 0 || raw.limit > MAX_LIMIT {
            return Err(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {}",
                raw.limit
            ));
        }
        let max_window_s = MAX_WINDOW_MS / 1000;
        if raw.window == 0 || raw.window > max_window_s {
            return Err(format!(
                "window must be between 1 and {max_window_s} seconds, got {}",
                raw.window
            ));
        }
        let key = match raw.key.as_str() {
            "ip" => KeySource::ClientIp,
            "user" => KeySource::User,
            "route_user" => KeySource::RouteUser,
            "api_key" => {
                let header = raw
                    .header
                    .clone()
                    .unwrap_or_else(|| DEFAULT_API_KEY_HEADER.to_owned())
                    .to_ascii_lowercase();
                if !is_token(&header, b"-_") {
                    return Err(format!("header must be a header name, got {header:?}"));
                }
                KeySource::ApiKey { header }
            }
            other => {
                return Err(format!(
                    "key must be one of ip, user, api_key, route_user, got {other:?}"
                ))
            }
        };
        // The check route verifies no one: a policy keyed by the signed-in user would answer every request there 401,
        // challenging a bearer token (RFC 9110 §15.5.2 wants one) that the route would then ignore — a client sending
        // a valid token got the same 401 again.
        if raw.check && matches!(key, KeySource::User | KeySource::RouteUser) {
            return Err(
                "check = true serves a policy on GET /ratelimit/{policy}/check, which has no signed-in user: \
                 not with key = \"user\" or \"route_user\""
                    .into(),
            );
        }
        if raw.header.is_some() && !matches!(key, KeySource::ApiKey { .. }) {
            return Err("header only applies to key = \"api_key\"".into());
        }
        let shards = raw.shards.unwrap_or(8);
        if shards == 0 || shards > MAX_SHARDS {
            return Err(format!(
                "shards must be between 1 and {MAX_SHARDS}, got {shards}"
            ));
        }
        let failure = match raw.failure.as_deref().unwrap_or("open") {
            "open" => FailureMode::Open,
            "closed" => FailureMode::Closed,
            other => return Err(format!("failure must be open or closed, got {other:?}")),
        };
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(format!(
                "timeout_ms must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}, got {timeout_ms}"
            ));
        }
        for (hot, parts) in &raw.hot_keys {
            if *parts < 2 || *parts > MAX_PARTS || *parts > raw.limit {
                return Err(format!(
                    "hot_keys.{hot:?} must split into 2 to {MAX_PARTS} parts and at most limit ({}), got {parts}",
                    raw.limit
                ));
            }
        }
        // Entries are keyed the way requests are (`ip:` by network); two that land on one key would silently
        // leave only one of their part counts.
        let mut hot_keys = BTreeMap::new();
        for (hot, parts) in raw.hot_keys {
            if !super::key::could_resolve_to(&key, &hot) {
                return Err(format!(
                    "hot_keys.{hot:?} is no key this policy's requests resolve to (an `ip:` address, `user:` id, \
                     `email:` + the 64 hex digits of the email's SHA-256, `device:` + 32 hex digits, `key:` + 32 hex \
                     digits, `route:…|user:…` or `long:` + 64 hex digits, per its key source, or `state:` and one; at \
                     most {} bytes)",
                    super::key::MAX_HOT_KEY_BYTES
                ));
            }
            let key = super::key::normalise_resolved(&hot);
            if hot_keys.insert(key.clone(), parts).is_some() {
                return Err(format!(
                    "hot_keys has two entries for {key:?} (an IPv6 address counts by its /64)"
                ));
            }
        }
        let binding = raw.binding.unwrap_or_else(|| BINDING.to_owned());
        if !binding
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            || binding.is_empty()
        {
            return Err(format!(
                "binding must be a binding name like {BINDING}, got {binding:?}"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            limit: raw.limit,
            window_s: raw.window,
            key,
            shards,
            failure,
            timeout_ms,
            hot_keys,
            binding,
            check: raw.check,
            shard_key: None,
        })
    }
}

/// Every policy, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    policies: BTreeMap<String, Policy>,
}

impl RateLimitConfig {
    /// Reads and validates [`POLICIES_KEY`]; unset means no policies.
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let raw = vars
            .json::<Value>(POLICIES_KEY)?
            .unwrap_or_else(|| Value::Object(Default::default()));
        let raw = crate::config::as_table(&raw, "policy")
            .map_err(|problem| ConfigError::new(POLICIES_KEY, problem))?;
        let shard_key = match vars.optional_string(SHARD_KEY_KEY)? {
            None => None,
            Some(secret) if secret.len() < MIN_SHARD_KEY_BYTES => {
                return Err(ConfigError::new(
                    SHARD_KEY_KEY,
                    format!("must be at least {MIN_SHARD_KEY_BYTES} bytes"),
                ))
            }
            Some(secret) => Some(ShardKey(secret.into_bytes())),
        };
        let mut policies = BTreeMap::new();
        for (name, value) in raw {
            let mut policy = Policy::parse(name, value.clone()).map_err(|problem| {
                ConfigError::new(POLICIES_KEY, format!("policy `{name}`: {problem}"))
            })?;
            policy.shard_key = shard_key.clone();
            policies.insert(name.clone(), policy);
        }
        Ok(Self { policies })
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// Every policy, by name.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn parse(policies: Value) -> Result<RateLimitConfig, ConfigError> {
        let source: HashMap<&str, Value> = [(POLICIES_KEY, policies)].into_iter().collect();
        RateLimitConfig::parse(&Vars::new(&source))
    }

    #[test]
    fn a_full_policy_parses_with_its_defaults() {
        let config = parse(json!({
            "api": { "limit": 600, "window": 60, "key": "api_key", "check": true },
            "login": { "limit": 5, "window": 60, "key": "ip", "shards": 16, "failure": "closed", "timeout_ms": 800,
                       "hot_keys": { "ip:203.0.113.7": 4 }, "binding": "OTHER_LIMITER" },
        }))
        .expect("valid");
        let api = config.get("api").expect("api");
        assert_eq!(
            api.key,
            KeySource::ApiKey {
                header: "x-api-key".into()
            },
            "default header"
        );
        assert_eq!(
            (
                api.shards,
                api.failure,
                api.timeout_ms,
                api.binding.as_str(),
                api.check
            ),
            (8, FailureMode::Open, 5_000, "RATE_LIMITER", true)
        );
        let login = config.get("login").expect("login");
        assert_eq!(
            (login.shards, login.failure, login.timeout_ms, login.check),
            (16, FailureMode::Closed, 800, false),
            "not served by the check route unless it says so"
        );
        assert_eq!(login.parts("ip:203.0.113.7"), 4, "hot key split");
        assert_eq!(login.parts("ip:198.51.100.1"), 1, "other keys whole");
        assert_eq!(config.names().collect::<Vec<_>>(), vec!["api", "login"]);
    }

    #[test]
    fn a_shard_key_keys_every_policys_shards_and_is_checked_once() {
        let policies = json!({ "api": { "limit": 10, "window": 60, "key": "ip", "shards": 16 } });
        let with_key = |secret: &str| {
            let source: HashMap<&str, Value> = [
                (POLICIES_KEY, policies.clone()),
                (SHARD_KEY_KEY, json!(secret)),
            ]
            .into_iter()
            .collect();
            RateLimitConfig::parse(&Vars::new(&source))
        };
        let error = with_key("too-short").expect_err("short");
        assert_eq!(error.key, SHARD_KEY_KEY);
        let config = with_key("a-deployment-secret-of-32-bytes!").expect("valid");
        let key = config
            .get("api")
            .and_then(|p| p.shard_key.clone())
            .expect("set");
        assert_eq!(format!("{key:?}"), "ShardKey(..)", "never printed");
        // HMAC-SHA256(secret, key)'s first 8 bytes (0x240f5014c2666818 and 0x4e6070226b6f5267, from node:crypto),
        // pinned: a change moves every key's state.
        assert_eq!(
            (
                key.shard_of("ip:203.0.113.7", 16),
                key.shard_of("ip:203.0.113.7", 7)
            ),
            (8, 5)
        );
        assert_eq!(
            (key.shard_of("key:abc", 16), key.shard_of("key:abc", 7)),
            (7, 2)
        );
        let shards: Vec<u32> = (0..64)
            .map(|i| key.shard_of(&format!("ip:10.0.0.{i}"), 16))
            .collect();
        assert!(shards.iter().all(|&s| s < 16));
        assert!(
            (0..16).all(|s| shards.contains(&s)),
            "keys spread over every shard: {shards:?}"
        );
        assert_eq!(
            parse(policies)
                .expect("valid")
                .get("api")
                .map(|p| p.shard_key.is_none()),
            Some(true),
            "unset: FNV-1a, as before"
        );
    }

    #[test]
    fn no_policies_is_a_valid_configuration() {
        let empty: HashMap<&str, Value> = HashMap::new();
        assert_eq!(
            RateLimitConfig::parse(&Vars::new(&empty)),
            Ok(RateLimitConfig::default())
        );
    }

    #[test]
    fn each_invalid_entry_is_named_with_the_rule_it_broke() {
        let ok = json!({ "limit": 10, "window": 60, "key": "ip" });
        let with = |field: &str, value: Value| {
            let mut p = ok.clone();
            p[field] = value;
            p
        };
        let cases: Vec<(&str, Value, &str)> = vec![
            ("bad", with("limit", json!(0)), "limit must be between"),
            (
                "bad",
                with("limit", json!(2_000_000)),
                "limit must be between",
            ),
            ("bad", with("window", json!(0)), "window must be between"),
            (
                "bad",
                with("window", json!(100_000)),
                "window must be between",
            ),
            ("bad", with("key", json!("cookie")), "key must be one of"),
            ("bad", with("shards", json!(0)), "shards must be between"),
            (
                "bad",
                with("timeout_ms", json!(10)),
                "timeout_ms must be between",
            ),
            (
                "bad",
                with("timeout_ms", json!(60_000)),
                "timeout_ms must be between",
            ),
            (
                "bad",
                with("failure", json!("maybe")),
                "failure must be open or closed",
            ),
            ("bad", with("header", json!("x-key")), "header only applies"),
            (
                "bad",
                with("hot_keys", json!({"ip:203.0.113.1": 1})),
                "hot_keys",
            ),
            (
                "bad",
                with(
                    "hot_keys",
                    json!({"ip:2001:db8:1:2::1": 2, "ip:2001:db8:1:2::9": 3}),
                ),
                "two entries",
            ),
            (
                "bad",
                with("hot_keys", json!({"ip:203.0.113.1": 11})),
                "at most limit",
            ),
            (
                "bad",
                with("hot_keys", json!({"203.0.113.7": 4})),
                "no key this policy",
            ),
            (
                "bad",
                with("hot_keys", json!({"ip:not-an-address": 4})),
                "no key this policy",
            ),
            (
                "bad",
                with("hot_keys", json!({"user:alice": 4})),
                "no key this policy",
            ),
            (
                "bad",
                json!({ "limit": 10, "window": 60, "key": "user",
                        "hot_keys": { "email:alice@example.com": 2 } }),
                "the 64 hex digits of the email's SHA-256",
            ),
            ("bad", with("binding", json!("lower")), "binding must be"),
            (
                "bad",
                json!({ "limit": 10, "window": 60, "key": "user", "check": true }),
                "no signed-in user",
            ),
            (
                "bad",
                json!({ "limit": 10, "window": 60, "key": "route_user", "check": true }),
                "no signed-in user",
            ),
            ("bad", with("colour", json!("red")), "unknown field"),
            (
                "bad",
                json!({ "limit": 10, "window": 60 }),
                "missing field `key`",
            ),
            ("Bad:Name", ok.clone(), "names must be"),
        ];
        for (name, policy, problem) in cases {
            let error = parse(json!({ "fine": ok, name: policy.clone() })).expect_err("invalid");
            assert_eq!(error.key, POLICIES_KEY, "{policy}");
            assert!(
                error.problem.contains(&format!("policy `{name}`")),
                "names the policy: {error}"
            );
            assert!(error.problem.contains(problem), "{policy}: {error}");
        }
        assert!(
            parse(json!(["not", "a", "table"])).is_err(),
            "a list is not a table"
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        // serde names a missing or unknown field, never a mistyped one: `limit = "600"` and `shards = "16"` both read
        // "invalid type: string, expected u32", leaving the operator to guess which of the policy's fields it meant.
        let ok = json!({ "limit": 10, "window": 60, "key": "ip" });
        let cases: Vec<(&str, Value)> = vec![
            ("limit", json!("600")),
            ("limit", json!(5_000_000_000_u64)),
            ("window", json!(1.5)),
            ("shards", json!("16")),
            ("check", json!("yes")),
            ("hot_keys", json!({"ip:203.0.113.7": "4"})),
        ];
        for (field, value) in cases {
            let mut policy = ok.clone();
            policy[field] = value;
            let error = parse(json!({ "api": policy })).expect_err("invalid");
            assert!(
                error.problem.starts_with(&format!("policy `api`: {field}")),
                "{field}: {error}"
            );
        }
    }
}
