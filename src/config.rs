//! Typed configuration, parsed and validated once per isolate from wrangler.toml `[vars]` and secrets.
//!
//! Every key is read through [`Vars`], so a bad value always fails with a [`ConfigError`] naming the key (never its
//! value: it may be a secret). Each capability owns its section type and parses it here; nothing reads `env` for
//! settings anywhere else. Pure: the runtime side only supplies a [`VarSource`] (see `entry::env_vars`).
//!
//! [`Vars`] also records every key it is asked for: those are the keys edgekit knows, and [`keys`] reports a var
//! that looks like one of them but that no reader asked for (a misspelling, whose default silently applies). Every
//! reader asks for its keys whatever the values say, so the set is the same for any configuration that parses (a
//! test pins this, and that README documents exactly that set).

pub mod keys;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where raw settings come from: the Worker's `env` at the edge, a map in host tests.
pub trait VarSource {
    /// The value bound to `key`: a JSON string for plain vars and secrets, any JSON for table vars; `None` if unset.
    fn var(&self, key: &str) -> Option<Value>;
}

impl VarSource for std::collections::HashMap<&str, Value> {
    fn var(&self, key: &str) -> Option<Value> {
        self.get(key).cloned()
    }
}

/// A configuration value that is missing or invalid; names the key and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: &str, problem: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration key `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Typed readers over a [`VarSource`]; each names the key in its error and records it as read.
pub struct Vars<'a> {
    source: &'a dyn VarSource,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> Vars<'a> {
    pub fn new(source: &'a dyn VarSource) -> Self {
        Self {
            source,
            read: RefCell::default(),
        }
    }

    /// Every key asked for so far, set or not.
    pub fn read_keys(&self) -> BTreeSet<String> {
        self.read.borrow().clone()
    }

    /// The raw value of `key`, treating an empty string as unset.
    pub fn raw(&self, key: &str) -> Option<Value> {
        if !self.read.borrow().contains(key) {
            self.read.borrow_mut().insert(key.to_owned());
        }
        match self.source.var(key) {
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::Null) | None => None,
            other => other,
        }
    }

    /// A string setting, or `default` when unset.
    pub fn string_or(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self
            .optional_string(key)?
            .unwrap_or_else(|| default.to_owned()))
    }

    /// A string setting that may be unset.
    pub fn optional_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(ConfigError::new(key, "must be a string")),
        }
    }

    /// A string setting that must be set (a secret, typically).
    pub fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        self.optional_string(key)?
            .ok_or_else(|| ConfigError::new(key, "is required but not set"))
    }

    /// An unsigned integer in `min..=max` (a JSON number or a decimal string), or `default` when unset.
    pub fn u64_in(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.raw(key) {
            None => return Ok(default),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        }
        .filter(|v| (min..=max).contains(v))
        // One sentence for either slip, so `"lots"` or `-1` is told the range too, not only that it is no number.
        .ok_or_else(|| {
            ConfigError::new(
                key,
                format!("must be a whole number between {min} and {max}"),
            )
        })
    }

    /// A boolean (`true`/`false`, as JSON or as a string), or `default` when unset.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) => match s.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ConfigError::new(key, "must be true or false")),
            },
            Some(_) => Err(ConfigError::new(key, "must be true or false")),
        }
    }

    /// One of a fixed set of words, or `default` when unset.
    pub fn one_of(
        &self,
        key: &str,
        allowed: &[&str],
        default: &str,
    ) -> Result<String, ConfigError> {
        let value = self.string_or(key, default)?;
        if allowed.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                key,
                format!("must be one of {}", allowed.join(", ")),
            ))
        }
    }

    /// A structured setting: a wrangler.toml table var, or a JSON document in a string var/secret.
    pub fn json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.document(key)? else {
            return Ok(None);
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| ConfigError::new(key, e.to_string()))
    }

    /// A structured setting read as one `T` of named fields (`GATEWAY_WAF`): an error names the field ([`typed`]).
    pub fn table<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        self.document(key)?
            .map(typed)
            .transpose()
            .map_err(|problem| ConfigError::new(key, problem))
    }

    /// A list setting (`IMAGES_ALLOWED_WIDTHS`), each entry read as a `T`: an error names the entry (`entry 2: …`),
    /// as the checks of its values do, where serde named only the type it wanted.
    pub fn list<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Vec<T>>, ConfigError> {
        let Some(value) = self.document(key)? else {
            return Ok(None);
        };
        as_list(&value)
            .map_err(|problem| ConfigError::new(key, problem))?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                serde_json::from_value(item.clone())
                    .map_err(|e| ConfigError::new(key, format!("entry {i}: {e}")))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// A table of name → `T` (`RENDER_FRAGMENTS`), each entry read with [`typed`]: an error names the entry as
    /// `<what> "<name>"` and, in it, the field.
    pub fn entries<T: DeserializeOwned>(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<BTreeMap<String, T>>, ConfigError> {
        let Some(value) = self.document(key)? else {
            return Ok(None);
        };
        as_table(&value, what)
            .map_err(|problem| ConfigError::new(key, problem))?
            .iter()
            .map(|(name, entry)| {
                typed(entry.clone())
                    .map(|parsed| (name.clone(), parsed))
                    .map_err(|problem| ConfigError::new(key, format!("{what} {name:?}: {problem}")))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The JSON value of `key`: a table var as given, a string var parsed as one document ([`json_document`]).
    fn document(&self, key: &str) -> Result<Option<Value>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => json_document(&s)
                .map(Some)
                .map_err(|problem| ConfigError::new(key, problem)),
            Some(v) => Ok(Some(v)),
        }
    }
}

/// A list var's entries (`GATEWAY_ROUTES`, `IMAGES_ALLOWED_WIDTHS`), or an error saying what was given instead:
/// the one wording for every list var, whichever reader takes its entries.
pub fn as_list(value: &Value) -> Result<&Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("must be a list, not {}", kind(value)))
}

/// A table var's entries by name (`RATE_LIMIT_POLICIES`, `GATEWAY_CACHE_POLICIES`, `RENDER_PAGES`), or an error
/// saying what was given instead: the one wording for every table of `what`s, whichever reader takes its entries.
pub fn as_table<'v>(
    value: &'v Value,
    what: &str,
) -> Result<&'v serde_json::Map<String, Value>, String> {
    value.as_object().ok_or_else(|| {
        format!(
            "must be a table of {what} name → {what}, not {}",
            kind(value)
        )
    })
}

/// What kind of JSON value `value` is, for an error that says what was given instead.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// A JSON document from a string var, refused when an object repeats a key. JSON leaves a repeated name's meaning
/// open (RFC 8259 §4) and both serde_json and `JSON.parse` keep the last one silently, so a route written with
/// `"auth": "jwt"` and later `"auth": "none"` was served open, and a policy named twice lost its first limits.
/// (A wrangler.toml table var cannot repeat a key: TOML refuses it.)
pub fn json_document(text: &str) -> Result<Value, String> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let parsed = serde::Deserialize::deserialize(&mut reader).and_then(|Unique(value)| {
        reader.end()?;
        Ok(value)
    });
    parsed.map_err(|e| match e.classify() {
        // Only the visitor below raises a data error here: a repeated key, named, with where it stands.
        serde_json::error::Category::Data => e.to_string(),
        _ => format!("is not valid JSON: {e}"),
    })
}

/// `value` read as a `T` (a route, a cache or rate-limit policy), an error naming the field it is in: serde names a
/// missing or unknown field, never one of the wrong type (`limit = "600"` read "invalid type: string \"600\",
/// expected u32", leaving the operator to guess which field it meant). On an error, the field is the first whose
/// removal changes it (serde reads an object's fields in order and stops at the first that fails), put first:
/// `limit: invalid type…`. Found by reading `T` again, not by a path-tracking deserializer: serde_path_to_error did
/// it for nested values too, but its second instantiation of every config type's reader cost 8.6 KB gzip of wasm.
///
/// `value` must be an object: serde reads a struct from a list too, its fields by position, so `GATEWAY_WAF = ["off"]`
/// switched the WAF off, `[]` took every default and a policy written `[10, 60, "ip"]` was served, each silently.
pub fn typed<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    if !value.is_object() {
        return Err(format!(
            "must be a table of named fields, not {}",
            kind(&value)
        ));
    }
    serde_json::from_value(value.clone()).map_err(|error| {
        let read_again = |v| serde_json::from_value::<T>(v).err().map(|e| e.to_string());
        field_named(&value, error.to_string(), &read_again)
    })
}

/// [`typed`]'s `error` reading `value`, with the field it is in put first; `read_again` reads a value as that type
/// again, its error if any (not generic, so each config type adds only that call).
fn field_named(
    value: &Value,
    error: String,
    read_again: &dyn Fn(Value) -> Option<String>,
) -> String {
    // A missing field is named by serde, and taking another away would only blame that one.
    if error.starts_with("missing field") {
        return error;
    }
    let Some(fields) = value.as_object() else {
        return error;
    };
    let differs = |name: &&String| {
        let mut without = fields.clone();
        without.remove(*name);
        read_again(Value::Object(without)).as_ref() != Some(&error)
    };
    match fields.keys().find(differs) {
        Some(name) if !error.contains(&format!("`{name}`")) => format!("{name}: {error}"),
        _ => error,
    }
}

/// A JSON value built like `serde_json::Value`, but failing on an object's second use of a key: for config vars and
/// for request bodies whose fields decide something (a login's email), where a reader that keeps the first of two
/// keys would see another request than the one served.
pub struct Unique(pub Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let shown = crate::observability::log::clipped(&key, 64);
                return Err(serde::de::Error::custom(format!(
                    "repeats the key `{shown}` in one object"
                )));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// An origin's base URL from `key`: `http://` or `https://`, a host, and no query, fragment, credentials, backslash
/// or whitespace (each would change what a joined path means); a trailing `/` is dropped.
pub fn origin_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        // Credentials are an `@` in the authority; one in the path (`/@scope/pkg`) is a path character.
        !host.is_empty()
            && !host.contains('@')
            && !r.contains(['?', '#', '\\'])
            && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    }) && parses_as_base(value);
    if ok {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::new(
            key,
            "must be an http(s) URL without query, fragment, credentials or `.`/`..` segments, with a valid host \
             and port",
        ))
    }
}

/// Whether the runtime's URL parser (the `url` crate, as workers-rs uses) takes `value` as it is written, so every
/// URL joined under it at request time parses too: a port out of range, a bad IPv6 literal or a path with dot
/// segments (which parsing would fold away) is refused at start-up rather than failing every request with a 500.
/// So is port 0: it parses, but no connection can be made to it (every request failed, 502).
pub fn parses_as_base(value: &str) -> bool {
    // The path: what follows the host.
    let path = value
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or("", |(_, path)| path);
    let dot_segment = path.split('/').any(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded == "." || decoded == ".."
    });
    !dot_segment && url::Url::parse(value).is_ok_and(|url| url.port() != Some(0))
}

/// The length of the access token the login signs with `key` for a user of the longest email it takes (ASCII), an
/// id of a UUID's length and no permissions: what `GATEWAY_JWT_MAX_BYTES` must hold at least.
fn shortest_access_token(
    key: &crate::session::config::SigningJwk,
    auth: &AuthConfig,
) -> Result<usize, ConfigError> {
    let user = crate::session::SessionUser {
        user_id: "u".repeat(36),
        email: format!(
            "{}@example.com",
            "e".repeat(crate::session::credentials::MAX_EMAIL - "@example.com".len())
        ),
        permissions: Vec::new(),
    };
    // Dates of the same width as today's (ten digits of seconds until 2286).
    let now_ms = 1_700_000_000_000;
    crate::session::jwt::issue(
        key,
        &auth.jwt_issuer,
        &auth.jwt_audience,
        &user,
        now_ms,
        now_ms / 1000 + 3600,
    )
    .map(|token| token.len())
    .map_err(|problem| ConfigError::new("AUTH_SIGNING_KEY", problem))
}

/// Deployment environment, from `ENVIRONMENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

/// Settings every part of the Worker shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// Reported by `/health` and in every log line.
    pub service_name: String,
    pub environment: Environment,
    /// Default cap on request bodies a handler reads whole (JSON bodies); larger ones answer 413. At most 16 MiB.
    pub max_body_bytes: u64,
    /// Serve `/__debug/*` routes (a deliberate panic, for the recovery test). Off unless set; never on in production.
    pub debug_routes: bool,
    /// Percentage (0-100) of successful requests that write a log line; 4xx/5xx are always logged.
    pub request_log_percent: u64,
}

impl CoreConfig {
    fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let environment = match vars
            .one_of(
                "ENVIRONMENT",
                &["development", "test", "production"],
                "development",
            )?
            .as_str()
        {
            "production" => Environment::Production,
            "test" => Environment::Test,
            _ => Environment::Development,
        };
        Ok(Self {
            service_name: vars.string_or("SERVICE_NAME", "edgekit")?,
            environment,
            // At most 16 MiB: such a body is held whole in wasm memory (which never shrinks), its buffer grown by
            // doubling, then copied again as it is parsed, in an isolate of 128 MB that other requests share.
            max_body_bytes: vars.u64_in("MAX_BODY_BYTES", 64 * 1024, 1, 16 * 1024 * 1024)?,
            debug_routes: vars.bool_or("DEBUG_ROUTES", false)?,
            request_log_percent: vars.u64_in("REQUEST_LOG_PERCENT", 100, 0, 100)?,
        })
        .and_then(|core: Self| {
            if core.debug_routes && core.environment == Environment::Production {
                Err(ConfigError::new(
                    "DEBUG_ROUTES",
                    "must not be true when ENVIRONMENT is production",
                ))
            } else {
                Ok(core)
            }
        })
    }
}

/// Identity settings shared by the token issuer (sessions) and the token verifier (gateway): access JWTs carry
/// `iss` = `JWT_ISSUER` and `aud` = `JWT_AUDIENCE`; verification keys are the JWKS document in `CONFIG_KV`
/// under [`crate::bindings::JWKS_KEY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub jwt_issuer: String,
    pub jwt_audience: String,
}

impl AuthConfig {
    fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            jwt_issuer: vars.string_or("JWT_ISSUER", "edgekit")?,
            jwt_audience: vars.string_or("JWT_AUDIENCE", "edgekit-api")?,
        })
    }
}

/// The whole configuration of one isolate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub core: CoreConfig,
    pub auth: AuthConfig,
    pub gateway: crate::gateway::config::GatewayConfig,
    /// What the gateway checks in a token's claims (issuer and audience from `auth`, leeway and size from
    /// `gateway`), built once here rather than on every request that carries a token.
    pub jwt_policy: crate::gateway::jwt::JwtPolicy,
    pub session: crate::session::config::SessionConfig,
    pub render: crate::render::plan::RenderConfig,
    /// Rate-limit policies (`RATE_LIMIT_POLICIES`).
    pub ratelimit: crate::ratelimit::policy::RateLimitConfig,
    pub images: crate::images::config::ImagesConfig,
    pub rooms: crate::rooms::RoomsConfig,
}

impl Config {
    /// Parses and validates every section; the first invalid key fails the whole load.
    pub fn parse(source: &dyn VarSource) -> Result<Self, ConfigError> {
        Self::parse_reading(source).map(|(config, _)| config)
    }

    /// [`Config::parse`], with every key the readers asked for: the keys edgekit knows (see [`keys`]).
    pub fn parse_reading(source: &dyn VarSource) -> Result<(Self, BTreeSet<String>), ConfigError> {
        let vars = Vars::new(source);
        let config = Self::parse_vars(&vars)?;
        Ok((config, vars.read_keys()))
    }

    /// Every key the readers ask for, whatever the configuration: the keys a valid reference configuration (the
    /// rate-limit policies the defaults name, nothing else) reads. For an invalid configuration, whose parse
    /// stopped at its first error: a misspelled `RATE_LIMIT_POLICIES` fails on the login policies it leaves
    /// undefined, and the operator still hears which key they meant.
    pub fn known_keys() -> BTreeSet<String> {
        let ip = serde_json::json!({"limit": 1, "window": 1, "key": "ip"});
        let policies = serde_json::json!({"login-ip": ip, "login-email": ip, "login-device": ip,
            "rooms-ticket": ip, "session-ip": ip});
        let reference = std::collections::HashMap::from([("RATE_LIMIT_POLICIES", policies)]);
        Self::parse_reading(&reference)
            .map(|(_, read)| read)
            .unwrap_or_default()
    }

    fn parse_vars(vars: &Vars) -> Result<Self, ConfigError> {
        // The gateway's routes and the login limits name rate-limit policies, so that section is parsed first.
        let ratelimit = crate::ratelimit::policy::RateLimitConfig::parse(vars)?;
        let policy_names: Vec<String> = ratelimit.names().map(str::to_owned).collect();
        let mut session = crate::session::config::SessionConfig::parse(vars)?;
        // Configurations written before device cookies define no `login-device`: unless one is named, device
        // attempts then take the email policy's limits (each device its own count), rather than failing to start.
        if vars
            .optional_string("SESSION_LOGIN_DEVICE_POLICY")?
            .is_none()
            && ratelimit.get(&session.login_device_policy).is_none()
        {
            session.login_device_policy = session.login_email_policy.clone();
        }
        // Likewise configurations written before `session-ip`: unless one is named, those routes go unlimited.
        if vars.optional_string("SESSION_IP_POLICY")?.is_none()
            && session
                .session_ip_policy
                .as_ref()
                .is_some_and(|name| ratelimit.get(name).is_none())
        {
            session.session_ip_policy = None;
        }
        let rooms_ticket_policy = vars.string_or("ROOMS_TICKET_POLICY", "rooms-ticket")?;
        for (key, name) in [
            ("SESSION_LOGIN_IP_POLICY", &session.login_ip_policy),
            ("SESSION_LOGIN_EMAIL_POLICY", &session.login_email_policy),
            ("SESSION_LOGIN_DEVICE_POLICY", &session.login_device_policy),
            ("ROOMS_TICKET_POLICY", &rooms_ticket_policy),
        ]
        .into_iter()
        .chain(
            session
                .session_ip_policy
                .as_ref()
                .map(|name| ("SESSION_IP_POLICY", name)),
        ) {
            if ratelimit.get(name).is_none() {
                return Err(ConfigError::new(
                    key,
                    format!("names the rate-limit policy `{name}`, which RATE_LIMIT_POLICIES does not define"),
                ));
            }
        }
        // The address and ticket policies must be keyed as their caller can key them (any other key fails every
        // such request: 401 "sign in first" on every login): a login is limited per address before anyone is
        // known, a ticket is asked for by a signed-in user without an API key. The email and device policies are
        // given their keys by the login (`email:<hash>`, `device:<id>`), whatever they say.
        use crate::ratelimit::policy::KeySource;
        let keyed = |name: &str, fits: fn(&KeySource) -> bool| {
            ratelimit.get(name).is_some_and(|p| fits(&p.key))
        };
        let by_ip = (|k| matches!(k, KeySource::ClientIp)) as fn(&KeySource) -> bool;
        for (key, name, fits, kinds) in [
            (
                "SESSION_LOGIN_IP_POLICY",
                &session.login_ip_policy,
                by_ip,
                "ip",
            ),
            (
                "ROOMS_TICKET_POLICY",
                &rooms_ticket_policy,
                |k| !matches!(k, KeySource::ApiKey { .. }),
                "ip, user or route_user",
            ),
        ]
        .into_iter()
        .chain(
            session
                .session_ip_policy
                .as_ref()
                .map(|name| ("SESSION_IP_POLICY", name, by_ip, "ip")),
        ) {
            if !keyed(name, fits) {
                return Err(ConfigError::new(
                    key,
                    format!("names the rate-limit policy `{name}`, whose key must be {kinds} for this use"),
                ));
            }
        }
        let auth = AuthConfig::parse(vars)?;
        let gateway = crate::gateway::config::GatewayConfig::parse(vars, &policy_names)?;
        // A route without auth has no user to key a `user` or `route_user` limit by: every request would be 401.
        for route in gateway.routes.routes() {
            if route.auth != crate::gateway::routes::AuthPolicy::None {
                continue;
            }
            let keyed_by_user = route
                .rate_limits
                .iter()
                .find(|name| ratelimit.get(name).is_some_and(|p| p.key.is_per_user()));
            if let Some(name) = keyed_by_user {
                return Err(ConfigError::new(
                    "GATEWAY_ROUTES",
                    format!(
                        "route {:?}: rate-limit policy `{name}` is keyed by the signed-in user, but the route's auth is none",
                        route.name
                    ),
                ));
            }
        }
        let jwt_policy = crate::gateway::jwt::JwtPolicy {
            issuer: Some(auth.jwt_issuer.clone()),
            audience: Some(auth.jwt_audience.clone()),
            leeway_secs: gateway.jwt_leeway_secs as i64,
            max_token_bytes: gateway.jwt_max_bytes as usize,
        };
        // The login signs its access tokens for this gateway (its `iss` and `aud`), which refuses a longer token than
        // `GATEWAY_JWT_MAX_BYTES` unread: below what the login issues, every `jwt` route refused every such token.
        if let Some(key) = &session.signing_key {
            let least = shortest_access_token(key, &auth)?;
            if least > jwt_policy.max_token_bytes {
                return Err(ConfigError::new(
                    "GATEWAY_JWT_MAX_BYTES",
                    format!(
                        "must hold the access tokens the login signs with AUTH_SIGNING_KEY, which the gateway would \
                         refuse unread: with this JWT_ISSUER, JWT_AUDIENCE and key id, one for a user of a \
                         {}-character email and no permissions is {least} bytes (each permission adds to it)",
                        crate::session::credentials::MAX_EMAIL
                    ),
                ));
            }
        }
        let core = CoreConfig::parse(vars)?;
        // A gateway route below an app route that takes every path under it (`/images/{*path}`) is never reached:
        // the app's routes are resolved first (`entry::dispatch`), and answer every method, a 405 included.
        let app = crate::router::Router::new(core.debug_routes);
        let taken = |path: &str| app.resolve("GET", path) != crate::router::Resolved::NotFound;
        if let Some(route) = gateway.routes.routes().iter().find(|route| {
            let own = route.own_path();
            taken(&own) && taken(&format!("{}/-", own.trim_end_matches('/')))
        }) {
            return Err(ConfigError::new(
                "GATEWAY_ROUTES",
                format!(
                    "route {:?}: path {} lies under one of the app's own routes, which takes every path below it: \
                     no request would reach the route",
                    route.name, route.path
                ),
            ));
        }
        let render = crate::render::plan::RenderConfig::parse(vars)?;
        // A visitor id written over the session cookie would sign the user out whenever their session is not
        // recognised (a session store failure included).
        if [&session.cookie_name, &session.device_cookie_name].contains(&&render.visitor_cookie) {
            return Err(ConfigError::new(
                "RENDER_VISITOR_COOKIE",
                "must differ from the session's cookies (SESSION_COOKIE_NAME and its _device cookie)",
            ));
        }
        let images = crate::images::config::ImagesConfig::parse(vars)?;
        // In production, origins whose answers are trusted and cached (fragments as markup, image variants for a
        // year) are reached over https only: over plain http anyone on the path could inject what gets stored.
        if core.environment == Environment::Production {
            for (key, origin) in [
                ("RENDER_ORIGIN", Some(render.origin.as_str())),
                ("IMAGES_ORIGIN", images.origin.as_deref()),
            ] {
                if origin.is_some_and(|o| o.starts_with("http://")) {
                    return Err(ConfigError::new(
                        key,
                        "must be an https:// URL in production",
                    ));
                }
            }
            // Pages of these origins read the app's answers with the user's cookies (access tokens, session
            // lists): over plain http anyone on the path could become one.
            if let Some(i) = session
                .trusted_origins
                .iter()
                .position(|o| o.starts_with("http://"))
            {
                return Err(ConfigError::new(
                    "SESSION_TRUSTED_ORIGINS",
                    format!("entry {i} must be an https:// origin in production"),
                ));
            }
            // Likewise the pages that read the gateway's own answers with the user's cookies (whether a token was
            // refused, a permission missing): a plain-http page is anyone's on the path.
            if let crate::gateway::cors::ErrorReaders::Origins(listed) = &gateway.cors {
                if let Some(i) = listed.iter().position(|o| o.starts_with("http://")) {
                    return Err(ConfigError::new(
                        "GATEWAY_CORS_ORIGINS",
                        format!("entry {i} must be an https:// origin in production"),
                    ));
                }
            }
            // Without it every login and refresh is 500 while `/health` and `/health/ready` say 200; a secret put
            // without the `--env` the deploy used (secrets are per Worker) is the usual way to lose it.
            if session.signing_key.is_none() {
                return Err(ConfigError::new(
                    "AUTH_SIGNING_KEY",
                    "must be set when ENVIRONMENT is production (wrangler secret put AUTH_SIGNING_KEY, with the \
                     deploy's --env if it has one)",
                ));
            }
        }
        // Rooms judge a ticket's and a socket's session by D1 alone, which holds the expiry a session was given under
        // the limits of its time: told the absolute and idle limits now, they end what a lowered one ended.
        let mut rooms = crate::rooms::RoomsConfig::parse(vars)?;
        rooms.settings.session_max_ms = session.max_secs * 1000;
        rooms.settings.session_idle_ms = session.idle_secs * 1000;
        Ok(Self {
            core,
            auth,
            gateway,
            jwt_policy,
            session,
            render,
            ratelimit,
            images,
            rooms,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    /// Credentials are refused in an origin's authority only: an `@` in its path (a CDN's npm scope,
    /// `https://unpkg.com/@scope/pkg`) is a path character, and refusing it refused a working origin.
    #[test]
    fn an_origin_refuses_credentials_but_not_an_at_sign_in_its_path() {
        for ok in [
            "https://unpkg.com/@scope/pkg",
            "https://cdn.example/a@2x/",
            "http://127.0.0.1:8788/@",
        ] {
            assert_eq!(
                origin_url("K", ok).as_deref(),
                Ok(ok.trim_end_matches('/')),
                "{ok}"
            );
        }
        for refused in [
            "https://u@cdn.example",
            "https://u:p@cdn.example/a",
            "https://@cdn.example",
            "https://cdn.example@evil.example/a@b",
        ] {
            assert!(origin_url("K", refused).is_err(), "{refused}");
        }
    }

    /// `pairs` over the least a valid configuration needs: the rate-limit policies the login and the room tickets
    /// name.
    fn source(pairs: &[(&'static str, Value)]) -> HashMap<&'static str, Value> {
        let ip = json!({"limit": 10, "window": 60, "key": "ip"});
        let user = json!({"limit": 10, "window": 60, "key": "user"});
        let mut map: HashMap<&'static str, Value> = HashMap::from([(
            "RATE_LIMIT_POLICIES",
            json!({"login-ip": ip, "login-email": user, "login-device": user, "rooms-ticket": user}),
        )]);
        map.extend(pairs.iter().cloned());
        map
    }

    #[test]
    fn a_login_limit_naming_an_undefined_policy_is_refused_at_load() {
        let error = Config::parse(&source(&[("SESSION_LOGIN_EMAIL_POLICY", json!("nope"))]))
            .expect_err("an undefined policy");
        assert_eq!(error.key, "SESSION_LOGIN_EMAIL_POLICY", "{error}");
        assert!(error.to_string().contains("`nope`"), "{error}");
    }

    #[test]
    fn a_policy_keyed_as_its_user_cannot_key_is_refused_at_load() {
        let keyed = |key: &str| json!({"limit": 10, "window": 60, "key": key});
        let policies = |login_ip: &str, email: &str, ticket: &str| {
            json!({"login-ip": keyed(login_ip), "login-email": keyed(email),
                   "login-device": keyed("user"), "rooms-ticket": keyed(ticket)})
        };
        for (login_ip, email, ticket, key) in [
            ("user", "user", "user", "SESSION_LOGIN_IP_POLICY"),
            ("api_key", "user", "user", "SESSION_LOGIN_IP_POLICY"),
            ("ip", "user", "api_key", "ROOMS_TICKET_POLICY"),
        ] {
            let error = Config::parse(&source(&[(
                "RATE_LIMIT_POLICIES",
                policies(login_ip, email, ticket),
            )]))
            .expect_err(key);
            assert_eq!(error.key, key, "{error}");
            assert!(error.to_string().contains("key must be"), "{error}");
        }
        for ticket in ["ip", "user", "route_user"] {
            Config::parse(&source(&[(
                "RATE_LIMIT_POLICIES",
                policies("ip", "user", ticket),
            )]))
            .expect(ticket);
        }
        // The login keys its email attempts itself (`email:<hash>`), whatever the policy's key says.
        Config::parse(&source(&[(
            "RATE_LIMIT_POLICIES",
            policies("ip", "ip", "user"),
        )]))
        .expect("an email policy keyed by ip, as earlier builds took");
    }

    /// A gateway route under `/images/` was taken, and never reached: the app's `/images/{*path}` is resolved first
    /// and answers every path below it (a 405 to any method but GET). Routes the app shadows in part (`/`, served
    /// by the app at `/` alone; `/rooms/:id`, whose deeper paths the app does not serve) still serve the rest.
    #[test]
    fn a_gateway_route_the_app_takes_every_path_of_is_refused() {
        let routes = |path: &str| json!([{"name": "r", "path": path, "upstream": "http://o.example", "methods": ["GET", "POST"]}]);
        for path in ["/images/cdn", "/images/:id", "/images/a/b"] {
            let error =
                Config::parse(&source(&[("GATEWAY_ROUTES", routes(path))])).expect_err(path);
            assert_eq!(error.key, "GATEWAY_ROUTES", "{error}");
            assert!(
                error
                    .problem
                    .contains(&format!("\"r\": path {path} lies under")),
                "{error}"
            );
        }
        for path in [
            "/",
            "/images",
            "/imagesx",
            "/Images/cdn",
            "/rooms/:id",
            "/health",
            "/auth",
            "/p/x",
        ] {
            Config::parse(&source(&[("GATEWAY_ROUTES", routes(path))])).expect(path);
        }
    }

    #[test]
    fn the_session_routes_limit_is_per_address_and_optional_for_older_configurations() {
        let config = Config::parse(&source(&[])).expect("no session-ip policy defined");
        assert_eq!(
            config.session.session_ip_policy, None,
            "unlimited, as before"
        );
        let mut policies = source(&[])["RATE_LIMIT_POLICIES"].clone();
        policies["session-ip"] = json!({"limit": 10, "window": 60, "key": "ip"});
        let config =
            Config::parse(&source(&[("RATE_LIMIT_POLICIES", policies.clone())])).expect("defined");
        assert_eq!(
            config.session.session_ip_policy.as_deref(),
            Some("session-ip")
        );
        let error = Config::parse(&source(&[("SESSION_IP_POLICY", json!("nope"))]))
            .expect_err("named and undefined");
        assert_eq!(error.key, "SESSION_IP_POLICY", "{error}");
        policies["session-ip"] = json!({"limit": 10, "window": 60, "key": "user"});
        let error = Config::parse(&source(&[("RATE_LIMIT_POLICIES", policies)]))
            .expect_err("keyed by user");
        assert_eq!(error.key, "SESSION_IP_POLICY", "{error}");
        assert!(error.to_string().contains("key must be ip"), "{error}");
    }

    #[test]
    fn a_route_without_auth_cannot_be_limited_per_user() {
        let mut policies = source(&[])["RATE_LIMIT_POLICIES"].clone();
        policies["per-user"] = json!({"limit": 10, "window": 60, "key": "user"});
        policies["per-ip"] = json!({"limit": 10, "window": 60, "key": "ip"});
        let routes = |auth: &str, limits: Value| {
            json!([{"name": "open", "path": "/x", "upstream": "http://127.0.0.1:9", "auth": auth,
                    "rate_limit": limits}])
        };
        let error = Config::parse(&source(&[
            ("RATE_LIMIT_POLICIES", policies.clone()),
            (
                "GATEWAY_ROUTES",
                routes("none", json!(["per-ip", "per-user"])),
            ),
        ]))
        .expect_err("auth none, limited per user");
        assert_eq!(error.key, "GATEWAY_ROUTES", "{error}");
        assert!(error.to_string().contains("`per-user`"), "{error}");
        for (auth, limits) in [
            ("none", json!("per-ip")),
            ("jwt", json!(["per-ip", "per-user"])),
        ] {
            Config::parse(&source(&[
                ("RATE_LIMIT_POLICIES", policies.clone()),
                ("GATEWAY_ROUTES", routes(auth, limits)),
            ]))
            .expect(auth);
        }
    }

    #[test]
    fn the_visitor_cookie_cannot_be_a_session_cookie() {
        for (session, visitor) in [
            ("edgekit_session", "edgekit_session"),
            ("edgekit_session", "edgekit_session_device"),
            ("sid", "sid"),
        ] {
            let error = Config::parse(&source(&[
                ("SESSION_COOKIE_NAME", json!(session)),
                ("RENDER_VISITOR_COOKIE", json!(visitor)),
            ]))
            .expect_err("a visitor cookie named like a session cookie");
            assert_eq!(error.key, "RENDER_VISITOR_COOKIE", "{error}");
        }
    }

    /// The keys `Config::parse` reads with `pairs` over the least valid configuration.
    fn keys_read(pairs: &[(&'static str, Value)]) -> BTreeSet<String> {
        Config::parse_reading(&source(pairs))
            .expect("a valid configuration")
            .1
    }

    /// `config::keys` takes the keys the readers asked for as the keys edgekit knows: a key read only when another
    /// says so (the images signing secret, read only with signing on) would be reported as unknown when set
    /// beside signing off, and be no one's "did you mean".
    #[test]
    fn every_key_is_read_whatever_the_configuration_says() {
        let least = keys_read(&[]);
        let routes = json!([{"name": "r", "path": "/r", "upstream": "https://o.example", "auth": "jwt",
                             "rate_limit": "login-ip", "cache": "api-public"}]);
        let most = keys_read(&[
            ("ENVIRONMENT", json!("production")),
            ("RENDER_ORIGIN", json!("https://fragments.example")),
            ("IMAGES_ORIGIN", json!("https://images.example")),
            ("IMAGES_MODE", json!("cf-image")),
            ("IMAGES_SIGNING", json!(true)),
            ("IMAGES_SIGNING_SECRET", json!("s".repeat(32))),
            ("IMAGES_ALLOWED_WIDTHS", json!([100])),
            ("IMAGES_ALLOWED_HEIGHTS", json!([100])),
            ("IMAGES_SOURCE_PREFIXES", json!(["photos/"])),
            (
                "AUTH_SIGNING_KEY",
                json!(crate::session::jwt::tests::test_jwk("k1").to_string()),
            ),
            ("SESSION_LOGIN_DEVICE_POLICY", json!("login-device")),
            ("SESSION_IP_POLICY", json!("login-ip")),
            ("SESSION_TRUSTED_ORIGINS", json!(["https://app.example"])),
            ("GATEWAY_ROUTES", routes),
            ("GATEWAY_CORS_ORIGINS", json!(["https://app.example"])),
            ("GATEWAY_WAF", json!({"mode": "log"})),
        ]);
        assert_eq!(least, most);
        assert!(least.contains("IMAGES_SIGNING_SECRET"), "{least:?}");
        assert_eq!(
            Config::known_keys(),
            least,
            "the reference configuration is valid"
        );
    }

    /// The `| `KEY` |` rows of README's configuration tables (vars and secrets; bindings are not read as vars).
    fn readme_keys() -> BTreeSet<String> {
        let readme = include_str!("../README.md");
        let start = readme
            .find("## Configuration")
            .expect("a Configuration section");
        let end = start
            + readme[start..]
                .find("### Bindings")
                .expect("a Bindings table");
        readme[start..end]
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
            .map(|(key, _)| key)
            .filter(|key| {
                key.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .map(str::to_owned)
            .collect()
    }

    /// README documents exactly the keys the readers ask for: a key added to a reader and not to README, or
    /// documented and not read (renamed, or misspelled in the docs), fails here.
    #[test]
    fn readme_documents_every_key_edgekit_reads_and_no_other() {
        let read = keys_read(&[]);
        let documented = readme_keys();
        assert_eq!(
            read.difference(&documented).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "read but not in README's tables"
        );
        assert_eq!(
            documented.difference(&read).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "in README's tables but never read"
        );
    }

    /// The fields of a table var's entry, as serde lists them when refusing an unknown one: `entry` puts an object
    /// holding only the unknown field `zz_unknown` where the var takes an entry.
    fn fields_taken(key: &'static str, entry: fn(Value) -> Value) -> BTreeSet<String> {
        let value = entry(json!({"zz_unknown": 1}));
        let error = Config::parse(&source(&[(key, value)])).expect_err(key);
        let listed = error
            .problem
            .split_once("unknown field `zz_unknown`, expected ")
            .unwrap_or_else(|| panic!("{key}: {error}"))
            .1;
        // The names are the backquoted words: every second piece after the first backquote.
        let (_, names) = listed.split_once('`').unwrap_or_default();
        names.split('`').step_by(2).map(str::to_owned).collect()
    }

    /// The `| `field` |` rows of the README table after the line starting `heading`.
    fn readme_fields(heading: &str) -> BTreeSet<String> {
        let readme = include_str!("../README.md");
        let start = readme.find(heading).expect(heading);
        // From the line after the heading's.
        let (_, after) = readme[start..].split_once('\n').unwrap_or_default();
        after
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
            .map(|(field, _)| field.to_owned())
            .collect()
    }

    /// README's field tables of the table vars list exactly the fields their readers take: a field added to a reader
    /// and not documented, or documented under a name serde refuses (every entry's unknown fields are), fails here.
    /// The vars' own keys have their test above; this is the class inside them. (A guard: it passed on 4c756f7, and
    /// was seen failing with a README row renamed, `retries` → `retry`, and with `waf_body` dropped from README.)
    #[test]
    fn readme_documents_every_field_of_each_table_var_and_no_other() {
        for (key, entry, heading) in [
            (
                "GATEWAY_ROUTES",
                (|e: Value| json!([e])) as fn(Value) -> Value,
                "`GATEWAY_ROUTES` entry (",
            ),
            (
                "GATEWAY_CACHE_POLICIES",
                |e| json!({"p": e}),
                "`GATEWAY_CACHE_POLICIES` policy (",
            ),
            ("GATEWAY_WAF", |e| e, "`GATEWAY_WAF` ("),
            (
                "RATE_LIMIT_POLICIES",
                |e| json!({"login-ip": e}),
                "Policy (`RawPolicy`",
            ),
        ] {
            let taken = fields_taken(key, entry);
            assert!(taken.len() >= 5, "{key}: {taken:?}");
            assert_eq!(readme_fields(heading), taken, "{key}");
        }
        // The render entries are told in a paragraph, not a table: each field their reader takes is named in it.
        let readme = include_str!("../README.md");
        for key in ["RENDER_FRAGMENTS", "RENDER_PAGES"] {
            let heading = format!("`{key}` entry (");
            let start = readme.find(&heading).expect(key);
            let paragraph = readme[start..].split("\n\n").next().unwrap_or_default();
            let taken = fields_taken(key, |e| json!({ "header": e }));
            assert!(taken.len() >= 3, "{key}: {taken:?}");
            for field in taken {
                assert!(
                    paragraph.contains(&format!("`{field}`")),
                    "{key}: README's entry paragraph does not name `{field}`"
                );
            }
        }
    }

    /// README names the prefixes `config::keys` takes as edgekit's: the list it gives is the one derived.
    #[test]
    fn readme_names_the_prefixes_edgekit_owns() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("a prefix that two or more keys share: ")
            .expect("the sentence")
            + 38;
        let end = start + readme[start..].find(')').expect("the list's end");
        let mut named: Vec<String> = readme[start..end]
            .split(',')
            .map(|p| p.trim().trim_matches('`').to_owned())
            .collect();
        named.sort();
        assert_eq!(named, keys::owned_prefixes(&Config::known_keys()));
    }

    /// Every var wrangler.toml sets, or names in its comments, is a key edgekit reads: the shipped configuration
    /// draws no `config_key_unread` warning.
    #[test]
    fn wrangler_toml_names_only_keys_edgekit_reads() {
        let read = keys_read(&[]);
        let toml = include_str!("../wrangler.toml");
        let bindings: BTreeSet<&str> = toml
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix("binding = \"")
                    .or_else(|| l.strip_prefix("name = \""))
            })
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let named: BTreeSet<&str> = toml
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                w.len() > 3
                    && w.contains('_')
                    && w.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .filter(|w| !bindings.contains(w))
            .collect();
        assert!(
            named.contains("RATE_LIMIT_POLICIES") && named.contains("IMAGES_SIGNING_SECRET"),
            "{named:?}"
        );
        let unread: Vec<_> = named.iter().filter(|k| !read.contains(**k)).collect();
        assert!(
            unread.is_empty(),
            "wrangler.toml names keys nothing reads: {unread:?}"
        );
        // And the vars it sets draw no report.
        let set = toml
            .lines()
            .filter_map(|l| Some(l.split_once(" = ")?.0.trim()))
            .chain(
                toml.lines()
                    .filter_map(|l| l.strip_prefix("[vars.")?.split(['.', ']']).next()),
            )
            .filter(|k| k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        assert_eq!(keys::unread_keys(set, &read), vec![]);
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::parse(&source(&[])).expect("defaults are valid");
        assert_eq!(config.core.service_name, "edgekit");
        assert_eq!(config.core.environment, Environment::Development);
        assert_eq!(config.core.max_body_bytes, 65536);
    }

    #[test]
    fn device_logins_fall_back_to_the_email_policy_unless_a_device_policy_is_named() {
        let login = json!({"limit": 10, "window": 60, "key": "user"});
        let ip = json!({"limit": 10, "window": 60, "key": "ip"});
        let without = json!({"login-ip": ip, "login-email": login, "rooms-ticket": login});
        let config = Config::parse(&source(&[("RATE_LIMIT_POLICIES", without.clone())]))
            .expect("a configuration from before device cookies still starts");
        assert_eq!(config.session.login_device_policy, "login-email");
        let config = Config::parse(&source(&[])).expect("valid");
        assert_eq!(config.session.login_device_policy, "login-device");
        let error = Config::parse(&source(&[
            ("RATE_LIMIT_POLICIES", without),
            ("SESSION_LOGIN_DEVICE_POLICY", json!("login-device")),
        ]))
        .expect_err("a named policy must exist");
        assert_eq!(error.key, "SESSION_LOGIN_DEVICE_POLICY", "{error}");
    }

    #[test]
    fn numbers_are_accepted_as_json_numbers_or_decimal_strings() {
        for value in [json!(1024), json!("1024"), json!(" 1024 ")] {
            let config =
                Config::parse(&source(&[("MAX_BODY_BYTES", value.clone())])).expect("valid");
            assert_eq!(config.core.max_body_bytes, 1024, "{value}");
        }
    }

    #[test]
    fn an_invalid_value_names_its_key_and_not_its_value() {
        let cases: &[(&str, Value, &str)] = &[
            // What is allowed, whatever the slip: no number, a negative, an exponent, too large.
            (
                "MAX_BODY_BYTES",
                json!("lots"),
                "whole number between 1 and 16777216",
            ),
            (
                "MAX_BODY_BYTES",
                json!(0),
                "whole number between 1 and 16777216",
            ),
            (
                "MAX_BODY_BYTES",
                json!(-5),
                "whole number between 1 and 16777216",
            ),
            (
                "MAX_BODY_BYTES",
                json!("1e3"),
                "whole number between 1 and 16777216",
            ),
            (
                "MAX_BODY_BYTES",
                json!(1.5),
                "whole number between 1 and 16777216",
            ),
            (
                "MAX_BODY_BYTES",
                json!("18446744073709551616"),
                "whole number between 1 and 16777216",
            ),
            ("ENVIRONMENT", json!("staging-ish"), "must be one of"),
            ("SERVICE_NAME", json!(42), "must be a string"),
            ("DEBUG_ROUTES", json!("on"), "must be true or false"),
            ("REQUEST_LOG_PERCENT", json!(101), "between 0 and 100"),
        ];
        for (key, value, problem) in cases {
            let error = Config::parse(&source(&[(key, value.clone())])).expect_err("must fail");
            assert_eq!(error.key, *key, "case {key}={value}");
            assert!(
                error.problem.contains(problem),
                "case {key}={value}: {error}"
            );
            assert!(
                error.to_string().contains(key),
                "message names the key: {error}"
            );
            // And not the value, as the name says: it may be a secret.
            let given = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            assert!(
                !error.problem.contains(&given),
                "the value is not echoed: {error}"
            );
        }
    }

    /// A JSON body is held whole in wasm memory (which never shrinks), grown by doubling and copied again when
    /// parsed: at the old top of 100 MiB one unauthenticated login body passed the isolate's 128 MB and took it
    /// down with every request in flight there.
    #[test]
    fn the_json_body_cap_leaves_an_isolate_its_memory() {
        let cap = |value: Value| Config::parse(&source(&[("MAX_BODY_BYTES", value)]));
        assert_eq!(
            cap(json!(16 * 1024 * 1024))
                .expect("16 MiB")
                .core
                .max_body_bytes,
            16 * 1024 * 1024
        );
        for over in [16 * 1024 * 1024 + 1, 100 * 1024 * 1024] {
            let error = cap(json!(over)).expect_err("over 16 MiB");
            assert_eq!(error.key, "MAX_BODY_BYTES");
            assert!(error.problem.contains("between 1 and 16777216"), "{error}");
        }
    }

    #[test]
    fn debug_routes_are_refused_in_production() {
        let src = source(&[
            ("DEBUG_ROUTES", json!(true)),
            ("ENVIRONMENT", json!("production")),
        ]);
        assert_eq!(
            Config::parse(&src).expect_err("refused").key,
            "DEBUG_ROUTES"
        );
    }

    /// A production Worker without its signing key answered `/health` and `/health/ready` 200 while every login
    /// was 500: a `wrangler secret put` without the `--env` the deploy used (secrets are per Worker) went unseen.
    #[test]
    fn production_needs_the_signing_key() {
        let without = source(&[
            ("ENVIRONMENT", json!("production")),
            ("RENDER_ORIGIN", json!("https://fragments.example")),
        ]);
        let error = Config::parse(&without).expect_err("refused");
        assert_eq!(error.key, "AUTH_SIGNING_KEY", "{error}");
        assert!(error.problem.contains("wrangler secret put"), "{error}");
        let jwk = crate::session::jwt::tests::test_jwk("k1").to_string();
        let with = source(&[
            ("ENVIRONMENT", json!("production")),
            ("RENDER_ORIGIN", json!("https://fragments.example")),
            ("AUTH_SIGNING_KEY", json!(jwk)),
        ]);
        assert!(Config::parse(&with).is_ok());
        assert!(
            Config::parse(&source(&[])).is_ok(),
            "unset is fine outside production"
        );
    }

    /// The gateway refuses a token longer than `GATEWAY_JWT_MAX_BYTES` before reading it, and the login signs its
    /// access tokens for that gateway (`iss`/`aud` are the ones it checks): set below what a login issues (256 is in
    /// range; seed's alice got a 355-byte token), every `auth = "jwt"` route answered 401 `token exceeds 256 bytes`
    /// to every token the Worker's own login handed out, while the configuration parsed.
    #[test]
    fn the_gateway_takes_the_access_tokens_the_login_issues() {
        let jwk = crate::session::jwt::tests::test_jwk("k1").to_string();
        let user = crate::session::SessionUser {
            user_id: "user-alice".to_owned(),
            email: "alice@example.com".to_owned(),
            permissions: vec!["read".to_owned(), "write".to_owned(), "admin".to_owned()],
        };
        let issued = |config: &Config| {
            let key = config.session.signing_key.as_ref().expect("a key");
            let now = 1_700_000_000_000;
            crate::session::jwt::issue(key, "edgekit", "edgekit-api", &user, now, now / 1000 + 300)
                .expect("signed")
        };
        let config = Config::parse(&source(&[("AUTH_SIGNING_KEY", json!(jwk))])).expect("defaults");
        let token = issued(&config);
        assert!(
            token.len() <= config.jwt_policy.max_token_bytes,
            "the default holds it"
        );
        let error = Config::parse(&source(&[
            ("AUTH_SIGNING_KEY", json!(jwk)),
            ("GATEWAY_JWT_MAX_BYTES", json!(256)),
        ]))
        .expect_err(&format!(
            "a {}-byte token the gateway would refuse",
            token.len()
        ));
        assert_eq!(error.key, "GATEWAY_JWT_MAX_BYTES", "{error}");
        assert!(error.problem.contains("AUTH_SIGNING_KEY"), "{error}");
        // Without a signing key the Worker issues none: the gateway's tokens are another issuer's, of its own size.
        Config::parse(&source(&[("GATEWAY_JWT_MAX_BYTES", json!(256))])).expect("no login tokens");
    }

    #[test]
    fn trusted_origins_are_https_in_production() {
        for key in ["RENDER_ORIGIN", "IMAGES_ORIGIN"] {
            let plain = source(&[
                ("ENVIRONMENT", json!("production")),
                ("RENDER_ORIGIN", json!("https://fragments.example")),
                (key, json!("http://plain.example")),
            ]);
            assert_eq!(Config::parse(&plain).expect_err("refused").key, key);
            let development = source(&[(key, json!("http://127.0.0.1:8788"))]);
            assert!(
                Config::parse(&development).is_ok(),
                "{key}: http is fine locally"
            );
        }
        let plain_page = source(&[
            ("ENVIRONMENT", json!("production")),
            ("RENDER_ORIGIN", json!("https://fragments.example")),
            (
                "SESSION_TRUSTED_ORIGINS",
                json!(["https://app.example", "http://old.example"]),
            ),
        ]);
        let error = Config::parse(&plain_page).expect_err("refused");
        assert_eq!(error.key, "SESSION_TRUSTED_ORIGINS");
        assert!(error.problem.contains("entry 1"), "{error}");
        let plain_reader = source(&[
            ("ENVIRONMENT", json!("production")),
            ("RENDER_ORIGIN", json!("https://fragments.example")),
            (
                "GATEWAY_CORS_ORIGINS",
                json!(["https://app.example", "http://old.example"]),
            ),
        ]);
        let error = Config::parse(&plain_reader).expect_err("refused");
        assert_eq!(error.key, "GATEWAY_CORS_ORIGINS");
        assert!(error.problem.contains("entry 1"), "{error}");
        assert!(
            Config::parse(&source(&[(
                "GATEWAY_CORS_ORIGINS",
                json!(["http://127.0.0.1:5173"])
            )]))
            .is_ok(),
            "http is fine locally"
        );
        let jwk = crate::session::jwt::tests::test_jwk("k1").to_string();
        let secure = source(&[
            ("ENVIRONMENT", json!("production")),
            ("AUTH_SIGNING_KEY", json!(jwk)),
            ("RENDER_ORIGIN", json!("https://fragments.example")),
            ("IMAGES_ORIGIN", json!("https://images.example")),
            ("SESSION_TRUSTED_ORIGINS", json!(["https://app.example"])),
            ("GATEWAY_CORS_ORIGINS", json!(["https://app.example"])),
        ]);
        assert!(Config::parse(&secure).is_ok());
        let anyone = source(&[
            ("ENVIRONMENT", json!("production")),
            ("AUTH_SIGNING_KEY", json!(jwk)),
            ("RENDER_ORIGIN", json!("https://fragments.example")),
            ("GATEWAY_CORS_ORIGINS", json!(["*"])),
        ]);
        assert!(Config::parse(&anyone).is_ok(), "`*` sends no credentials");
    }

    #[test]
    fn json_settings_come_from_tables_or_json_strings() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Item {
            n: u32,
        }
        let src = source(&[
            ("A", json!({"n": 1})),
            ("B", json!("{\"n\": 2}")),
            ("C", json!("{nope")),
        ]);
        let vars = Vars::new(&src);
        assert_eq!(vars.json::<Item>("A").expect("table"), Some(Item { n: 1 }));
        assert_eq!(vars.json::<Item>("B").expect("string"), Some(Item { n: 2 }));
        assert_eq!(vars.json::<Item>("MISSING").expect("unset"), None);
        let error = vars.json::<Item>("C").expect_err("bad json");
        assert_eq!(error.key, "C");
    }

    #[test]
    fn a_json_document_that_repeats_a_key_is_refused_naming_the_key() {
        let src = source(&[
            (
                "ROUTES",
                json!(r#"[{"path": "/a", "auth": "jwt", "nested": {"auth": 1}, "auth": "none"}]"#),
            ),
            (
                "POLICIES",
                json!(r#"{"login": {"limit": 5}, "login": {"limit": 500}}"#),
            ),
            (
                "FINE",
                json!(r#"{"a": {"x": 1}, "b": {"x": [1, 2.5, -3, null, true, "s"]}}"#),
            ),
            ("TRAILING", json!(r#"{"a": 1} {"a": 2}"#)),
        ]);
        let vars = Vars::new(&src);
        for (key, repeated) in [("ROUTES", "auth"), ("POLICIES", "login")] {
            let error = vars.json::<Value>(key).expect_err(key);
            assert_eq!(error.key, key, "{error}");
            assert!(
                error
                    .problem
                    .starts_with(&format!("repeats the key `{repeated}` in one object")),
                "{error}"
            );
        }
        assert_eq!(
            vars.json::<Value>("FINE")
                .expect("no key repeated in one object"),
            Some(json!({"a": {"x": 1}, "b": {"x": [1, 2.5, -3, null, true, "s"]}}))
        );
        let error = vars.json::<Value>("TRAILING").expect_err("two documents");
        assert!(error.problem.starts_with("is not valid JSON"), "{error}");
    }

    /// serde reads a struct from a list as well, its fields by position: `GATEWAY_WAF = ["off"]` switched the WAF off,
    /// `[]` took the defaults, and a policy, route or fragment written as a list was served, each without a word.
    #[test]
    fn a_setting_of_named_fields_written_as_a_list_is_refused() {
        let mut policies = source(&[])["RATE_LIMIT_POLICIES"].clone();
        policies["positional"] = json!([10, 60, "ip"]);
        let cases: &[(&str, Value, &str)] = &[
            (
                "GATEWAY_WAF",
                json!(["off"]),
                "must be a table of named fields, not a list",
            ),
            (
                "GATEWAY_WAF",
                json!("[]"),
                "must be a table of named fields, not a list",
            ),
            (
                "RATE_LIMIT_POLICIES",
                policies,
                "policy `positional`: must be a table of named fields, not a list",
            ),
            (
                "GATEWAY_ROUTES",
                json!([["open", "/open", "https://o.example"]]),
                "route 0: must be a table of named fields, not a list",
            ),
            (
                "GATEWAY_CACHE_POLICIES",
                json!({"p": [60, 0, 0, true, "public", "max-age=60"]}),
                "policy \"p\": must be a table of named fields, not a list",
            ),
            (
                "RENDER_FRAGMENTS",
                json!({"header": [300, 1000, "<header></header>"]}),
                "fragment \"header\": must be a table of named fields, not a list",
            ),
            (
                "RENDER_PAGES",
                json!({"home": ["home", "Home", []]}),
                "page \"home\": must be a table of named fields, not a list",
            ),
            (
                "RENDER_PAGES",
                json!(["home"]),
                "must be a table of page name → page, not a list",
            ),
            // A table of entries written as a list, or a list as a table: every such var says it in one wording.
            (
                "RATE_LIMIT_POLICIES",
                json!([]),
                "must be a table of policy name → policy, not a list",
            ),
            (
                "GATEWAY_CACHE_POLICIES",
                json!("[]"),
                "must be a table of policy name → policy, not a list",
            ),
            (
                "GATEWAY_ROUTES",
                json!({"open": {"path": "/open", "upstream": "https://o.example"}}),
                "must be a list, not a table",
            ),
        ];
        for (key, value, problem) in cases {
            let error = Config::parse(&source(&[(key, value.clone())])).expect_err(key);
            assert_eq!(error.key, *key, "{key}={value}: {error}");
            assert_eq!(&error.problem, problem, "{key}={value}");
        }
    }

    /// README: "inside a table var the bad entry is named". serde named only the type it wanted (`invalid type:
    /// string "300", expected u64`), leaving the operator to find which fragment, which field, which list entry.
    #[test]
    fn a_bad_entry_of_a_structured_setting_is_named_with_its_field() {
        let cases: &[(&str, Value, &str)] = &[
            (
                "RENDER_FRAGMENTS",
                json!({"header": {"ttl_s": 300, "budget_ms": 1000, "fallback": ""},
                       "nav": {"ttl_s": "300", "budget_ms": 1000, "fallback": ""}}),
                "fragment \"nav\": ttl_s: invalid type: string \"300\", expected u64",
            ),
            (
                "RENDER_FRAGMENTS",
                json!({"nav": {"ttl_s": 300, "budget_ms": 1000}}),
                "fragment \"nav\": missing field `fallback`",
            ),
            (
                "RENDER_PAGES",
                json!({"home": {"page_type": "home", "title": "Home", "slots": "@offers"}}),
                "page \"home\": slots: invalid type: string \"@offers\", expected a sequence",
            ),
            (
                "GATEWAY_WAF",
                json!({"mode": "block", "max_header_bytes": "32k"}),
                "max_header_bytes: invalid type: string \"32k\", expected usize",
            ),
            (
                "IMAGES_ALLOWED_WIDTHS",
                json!([320, "640"]),
                "entry 1: invalid type: string \"640\", expected u32",
            ),
            (
                "IMAGES_ALLOWED_HEIGHTS",
                json!([180, -1]),
                "entry 1: invalid value: integer `-1`, expected u32",
            ),
            (
                "IMAGES_SOURCE_PREFIXES",
                json!(["photos/", 7]),
                "entry 1: invalid type: integer `7`, expected a string",
            ),
            (
                "SESSION_TRUSTED_ORIGINS",
                json!(["https://app.example", {"origin": "https://b.example"}]),
                "entry 1: invalid type: map, expected a string",
            ),
            (
                "GATEWAY_CORS_ORIGINS",
                json!("\"*\""),
                "must be a list, not a string",
            ),
            (
                "IMAGES_ALLOWED_WIDTHS",
                json!(320),
                "must be a list, not a number",
            ),
        ];
        for (key, value, problem) in cases {
            let mut pairs = vec![(*key, value.clone())];
            if *key == "IMAGES_ALLOWED_HEIGHTS" {
                pairs.push(("IMAGES_ALLOWED_WIDTHS", json!([320])));
            }
            let error = Config::parse(&source(&pairs)).expect_err(key);
            assert_eq!(error.key, *key, "{key}={value}: {error}");
            assert_eq!(&error.problem, problem, "{key}={value}");
        }
    }

    #[test]
    fn booleans_and_required_strings() {
        let src = source(&[
            ("F", json!("true")),
            ("G", json!(false)),
            ("H", json!("yes")),
        ]);
        let vars = Vars::new(&src);
        assert!(vars.bool_or("F", false).expect("true"));
        assert!(!vars.bool_or("G", true).expect("false"));
        assert!(vars.bool_or("H", true).is_err());
        assert!(vars.bool_or("UNSET", true).expect("default"));
        assert_eq!(
            vars.required_string("UNSET").expect_err("required").key,
            "UNSET"
        );
    }
}
