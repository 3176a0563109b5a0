//! Edge-cache rules: the named cache policies (what `Cache-Control`, `Surrogate-Control` and `Cache-Tag` say, how
//! long an entry is fresh, stale-while-revalidate and stale-if-error windows, whether it may be shared across users),
//! the normalised cache key, TTL jitter and the freshness decision for a stored entry. Pure: the clock and the
//! random bytes are parameters.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::jwt::Verified;
use super::request_url::RequestUrl;

/// One named policy. Seconds throughout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// How long a stored response is fresh at the edge.
    pub ttl: u64,
    /// After `ttl`, how long a stale copy is served while one background request refreshes it.
    #[serde(default)]
    pub stale_while_revalidate: u64,
    /// After `ttl`, how long a stale copy is served when the origin fails (5xx, timeout, unreachable).
    #[serde(default)]
    pub stale_if_error: u64,
    /// Whether one stored response may serve every caller; when false the key includes the caller's identity, and
    /// anonymous callers are not cached.
    pub shared: bool,
    /// `Cache-Control` sent to clients.
    pub cache_control: String,
    /// `Surrogate-Control` sent to clients (for a CDN in front).
    pub surrogate_control: String,
    /// The edge TTL of a stored redirect (301, 308) or absence (404, 410), at most `ttl`: a year of 404 for an asset
    /// URL requested before its deploy, or of a redirect an origin sent with `max-age=5`, would outlive what it
    /// says. Clients are told `no-cache` for them, never the policy's `Cache-Control` (`immutable`).
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: u64,
    /// Clients are told as for a per-user policy though copies are shared ([`Self::behind_sign_in`]).
    #[serde(skip)]
    pub told_per_user: bool,
}

/// [`CachePolicy::negative_ttl`] unless a policy says otherwise: three minutes, as CDNs keep a 404 by default.
const fn default_negative_ttl() -> u64 {
    180
}

impl CachePolicy {
    /// The edge TTL (seconds) of an answer with `status`.
    pub fn ttl_for(&self, status: u16) -> u64 {
        if (200..300).contains(&status) {
            self.ttl
        } else {
            self.ttl.min(self.negative_ttl)
        }
    }

    /// Whether an answer with `status` is stored at all: a `negative_ttl` of 0 stores no redirect or absence (an
    /// entry expired as it is written would cost a Cache API write per miss and serve nothing).
    pub fn stores(&self, status: u16) -> bool {
        self.ttl_for(status) > 0
    }

    /// A stale window (seconds) of an answer with `status`: a redirect's or absence's at most its edge TTL.
    fn stale_window(&self, window: u64, status: u16) -> u64 {
        if (200..300).contains(&status) {
            window
        } else {
            window.min(self.ttl_for(status))
        }
    }

    /// This policy as the clients of a route that signs them in (`auth` other than `none`) are told it. Its copies
    /// are still shared by everyone the route admits — the gateway checks each request before its cache — but a
    /// cache in front of the gateway checks no one: `public` lets such a cache serve the answer to a request with
    /// other credentials or none (RFC 9111 §3.5), as does a `Surrogate-Control` lifetime a CDN. So clients are told
    /// as for a per-user policy: `private` (`public` and `s-maxage` dropped), `Surrogate-Control: no-store`, and a
    /// `Vary` naming the credentials, so a browser does not hand the next person signed in on it the first one's copy.
    pub fn behind_sign_in(&self) -> CachePolicy {
        if !self.shared {
            return self.clone();
        }
        // Split as every list here is (a quoted argument's commas are not separators).
        let name = |d: &str| {
            d.split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        };
        let kept: Vec<&str> = crate::field_list::split_unquoted(&self.cache_control, b',')
            .into_iter()
            .map(str::trim)
            .filter(|d| !d.is_empty() && !matches!(name(d).as_str(), "public" | "s-maxage"))
            .collect();
        let private = kept
            .iter()
            .any(|d| matches!(name(d).as_str(), "private" | "no-store"));
        let cache_control = match (private, kept.is_empty()) {
            (true, _) => kept.join(", "),
            (false, true) => "private".to_owned(),
            (false, false) => format!("private, {}", kept.join(", ")),
        };
        CachePolicy {
            cache_control,
            surrogate_control: "no-store".to_owned(),
            told_per_user: true,
            ..self.clone()
        }
    }

    /// The `Cache-Control` and `Surrogate-Control` a client is told for an answer with `status` from this policy. A
    /// redirect or absence is `no-cache` for browsers; on a per-user policy it stays `private` and a CDN in front
    /// keeps none of it (a redirect to `/users/alice/home` is Alice's), as it keeps none where the policy says
    /// `no-store`.
    pub fn client_headers(&self, status: u16) -> (String, String) {
        if (200..300).contains(&status) || status == 304 {
            return (self.cache_control.clone(), self.surrogate_control.clone());
        }
        let for_anyone = self.shared && !self.told_per_user;
        let keeps_none = !for_anyone || has_directive(&self.surrogate_control, "no-store");
        let surrogate = if keeps_none {
            "no-store".to_owned()
        } else {
            format!("max-age={}", self.ttl_for(status))
        };
        let browser = if for_anyone {
            "no-cache"
        } else {
            "private, no-cache"
        };
        (browser.to_owned(), surrogate)
    }

    /// The `Vary` a client is told for an answer from this policy's stored copies. Every one varies by
    /// `Accept-Encoding` (the copy is decoded, and the runtime codes each answer as its client accepts) and `Origin`
    /// (entries are kept per requesting site). A per-user one also by `Authorization` and `Cookie`, the credentials
    /// its key holds or its user comes from (a bearer token, a session cookie): told `private, max-age=30` and
    /// varying by neither, a browser handed the next user signed in on it the first one's answer from its own cache,
    /// without asking (RFC 9111 §4.1).
    pub fn client_vary(&self) -> &'static str {
        if self.shared && !self.told_per_user {
            "Accept-Encoding, Origin"
        } else {
            "Accept-Encoding, Origin, Authorization, Cookie"
        }
    }
}

/// The table of named policies: the built-in four, overridden or extended by `GATEWAY_CACHE_POLICIES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicies {
    policies: BTreeMap<String, CachePolicy>,
    /// Each policy as a signed-in route's clients are told it ([`CachePolicy::behind_sign_in`]), made once with the
    /// table rather than on every request.
    signed_in: BTreeMap<String, CachePolicy>,
}

impl Default for CachePolicies {
    fn default() -> Self {
        let p = |ttl, swr, sie, shared, cc: &str, sc: &str| CachePolicy {
            ttl,
            stale_while_revalidate: swr,
            stale_if_error: sie,
            shared,
            cache_control: cc.to_owned(),
            surrogate_control: sc.to_owned(),
            negative_ttl: default_negative_ttl(),
            told_per_user: false,
        };
        let mut map = BTreeMap::new();
        map.insert(
            "static-immutable".to_owned(),
            p(
                31_536_000,
                0,
                0,
                true,
                "public, max-age=31536000, immutable",
                "max-age=31536000",
            ),
        );
        map.insert(
            "api-public".to_owned(),
            p(
                60,
                30,
                300,
                true,
                "public, max-age=60, stale-while-revalidate=30, stale-if-error=300",
                "max-age=60, stale-while-revalidate=30, stale-if-error=300",
            ),
        );
        map.insert(
            "api-personalized".to_owned(),
            p(30, 15, 60, false, "private, max-age=30", "no-store"),
        );
        map.insert(
            "html-dynamic".to_owned(),
            p(
                10,
                60,
                600,
                true,
                "public, max-age=0, must-revalidate",
                "max-age=10, stale-while-revalidate=60, stale-if-error=600",
            ),
        );
        Self::of(map)
    }
}

/// The longest a policy's TTL or stale windows may be: a year (the Cache API keeps nothing that long anyway, and
/// the millisecond arithmetic on them stays far from overflowing).
pub const MAX_POLICY_SECS: u64 = 365 * 86_400;

/// The longest an entry can be served after its origin request, in seconds: a TTL of at most a year with its +10%
/// jitter ([`jittered_ttl_ms`]), then a stale window of at most a year (a redirect's or absence's are shorter). A
/// purge mark older than this covers no entry that can still be served, whatever policy stored it — one an earlier
/// deploy had, longer than today's, included.
pub const LONGEST_SERVED_SECS: u64 =
    MAX_POLICY_SECS + MAX_POLICY_SECS.div_ceil(10) + MAX_POLICY_SECS;

/// The KV lifetime of a purge mark: [`LONGEST_SERVED_SECS`] and a day for the clocks of the isolates that stored
/// entries and the one that wrote the mark. Without one, a mark per tag ever purged stayed in KV for good.
pub const PURGE_MARK_TTL_SECS: u64 = LONGEST_SERVED_SECS + 86_400;

/// Most tags one stored entry carries (the route's and the origin's first ones): a hit reads the purge time of
/// each it has not seen lately.
pub const MAX_TAGS: usize = 16;

impl CachePolicies {
    /// The built-ins with `overrides` (a JSON object of name → policy) applied; errors name the policy.
    pub fn with_overrides(overrides: Option<&serde_json::Value>) -> Result<Self, String> {
        let Some(value) = overrides else {
            return Ok(Self::default());
        };
        let mut policies = Self::default().policies;
        let object = crate::config::as_table(value, "policy")?;
        for (name, raw) in object {
            let policy: CachePolicy =
                crate::config::typed(raw.clone()).map_err(|e| format!("policy {name:?}: {e}"))?;
            if policy.ttl == 0 {
                return Err(format!("policy {name:?}: ttl must be at least 1 second"));
            }
            // Sent as header fields: the runtime refuses a value with a line break or a NUL, and the answer went out
            // without the field — and without the origin's `Cache-Control`, which the policy's replaces.
            for (field, value) in [
                ("cache_control", &policy.cache_control),
                ("surrogate_control", &policy.surrogate_control),
            ] {
                if !value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
                {
                    return Err(format!(
                        "policy {name:?}: {field} must be visible ASCII, spaces and tabs (a header value)"
                    ));
                }
            }
            // A per-user policy's answers are one user's: a browser or CDN cache in front, keyed by the URL alone,
            // must be told to keep them to that user or not at all, or it serves one user's answer to the next.
            // `private` bare: a qualified one (`private="Set-Cookie"`) keeps only the fields it lists from shared
            // caches, and lets them store the rest (RFC 9111 §5.2.2.7); one inside a quoted argument
            // (`no-cache="Set-Cookie, private, Vary"`) is no directive.
            let kept_private = |value: &str| {
                crate::field_list::split_unquoted(value, b',')
                    .into_iter()
                    .any(|directive| directive.trim().eq_ignore_ascii_case("private"))
                    || has_directive(value, "no-store")
            };
            // Surrogate-Control has no `private` (Edge Architecture 1.0 defines no-store, max-age, content): a CDN
            // reading `private, max-age=60` there keeps the answer 60 s for everyone.
            if !policy.shared
                && !(kept_private(&policy.cache_control)
                    && (policy.surrogate_control.trim().is_empty()
                        || has_directive(&policy.surrogate_control, "no-store")))
            {
                return Err(format!(
                    "policy {name:?}: a policy that is not shared must say private (unqualified) or no-store in \
                     cache_control, and no-store (or nothing) in surrogate_control"
                ));
            }
            for (field, secs) in [
                ("ttl", policy.ttl),
                ("stale_while_revalidate", policy.stale_while_revalidate),
                ("stale_if_error", policy.stale_if_error),
                ("negative_ttl", policy.negative_ttl),
            ] {
                if secs > MAX_POLICY_SECS {
                    return Err(format!(
                        "policy {name:?}: {field} must be at most {MAX_POLICY_SECS} seconds (a year), got {secs}"
                    ));
                }
            }
            policies.insert(name.clone(), policy);
        }
        Ok(Self::of(policies))
    }

    /// The table of `policies`, each also as signed-in routes tell it.
    fn of(policies: BTreeMap<String, CachePolicy>) -> Self {
        // Inserted one by one: a collected map pulled in the standard library's bulk build, ~2.6 KB of wasm gzip.
        let mut signed_in = BTreeMap::new();
        for (name, policy) in &policies {
            signed_in.insert(name.clone(), policy.behind_sign_in());
        }
        Self {
            policies,
            signed_in,
        }
    }

    pub fn get(&self, name: &str) -> Option<&CachePolicy> {
        self.policies.get(name)
    }

    /// The policy `name` as a route tells its clients: [`CachePolicy::behind_sign_in`]'s form when the route signs
    /// them in.
    pub fn for_route(&self, name: &str, signed_in: bool) -> Option<&CachePolicy> {
        match signed_in {
            true => self.signed_in.get(name),
            false => self.policies.get(name),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.policies.keys().map(String::as_str).collect()
    }
}

/// The cache key for a request: a synthetic URL (the Cache API keys on URLs) made of the route, the scheme and host
/// the client used, the path and the query with its pairs sorted, plus the caller's identity and a digest of the
/// `authorization` its fill carries when the policy is not shared. The scheme and host are in it because the origin is told both (`X-Forwarded-Proto`/`-Host`) and may
/// answer by them (a redirect to https, absolute links). The identity is everything the origin is told about the
/// caller (`X-User-ID`, `-Permissions`, `-Email`), so an answer shaped by a permission is not served to the same user
/// holding a token without it. A request's `Origin` keys apart too: a fill carries it, an origin may grant that one
/// site (`Access-Control-Allow-Origin`) with or without saying `Vary: Origin`, and a grant stored for a request without
/// `Origin` (none) was served to that site's pages, which then could not read it. `None` = do not cache (a per-user
/// policy with no verified user).
pub fn cache_key(
    route: &str,
    url: RequestUrl<'_>,
    policy: &CachePolicy,
    user: Option<&Verified>,
    authorization: Option<&str>,
    origin: Option<&str>,
) -> Option<String> {
    let mut pairs: Vec<&str> = url
        .query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    // By name only, and stable: `?b=2&a=1` and `?a=1&b=2` share a key, while the values of a repeated name keep
    // their order (`?tag=a&tag=b` and `?tag=b&tag=a` may mean different things to the origin). By the name as the
    // origin decodes it: `cb` and `%63b` are one name there, so their order must stay in the key (sorted by the raw
    // spelling, `?cb=good&%63b=evil` and `?%63b=evil&cb=good` shared a key though an origin taking the last value
    // answers them apart).
    // Coarser still, so that names some origin reads as one never change order: compared by their first run of
    // ASCII letters and digits (any case: ASP.NET's names ignore it) and non-ASCII characters (all one placeholder,
    // coarser than any origin's case folding, without Unicode tables in the wasm — but for the four that fold to an
    // ASCII letter, read as it), after any leading ASCII
    // punctuation or blanks (PHP trims blanks) — so `a`, `a[]`, `a[b]`, `a_`, `a.b`, `a+b`, `a%00x` and ` a` keep their order among
    // themselves, as PHP, qs and Rack may read them as one. Coarser only ever keeps more order (fewer shared keys).
    // A query some origin splits at `;` too keeps its order whole.
    let name = |pair: &str| -> String {
        let raw = pair.split('=').next().unwrap_or("");
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        decoded
            .chars()
            .skip_while(|c| c.is_ascii() && !c.is_ascii_alphanumeric())
            .take_while(|c| !c.is_ascii() || c.is_ascii_alphanumeric())
            .map(|c| match c {
                _ if c.is_ascii() => c.to_ascii_lowercase(),
                // The four non-ASCII letters whose simple case mapping is an ASCII one: Java's
                // `equalsIgnoreCase`, Go's `EqualFold` and .NET's `OrdinalIgnoreCase` take `ſort` for `sort`
                // and `\u{212a}ind` (Kelvin sign) for `kind`.
                '\u{17f}' => 's',
                '\u{212a}' => 'k',
                '\u{130}' | '\u{131}' => 'i',
                _ => '\u{fffd}',
            })
            .collect()
    };
    if pairs.len() > 1 && !url.query.unwrap_or("").contains(';') {
        pairs.sort_by_cached_key(|pair| name(pair));
    }
    let mut key = format!(
        "https://gateway-cache.internal/{}/{}/{}{}{}",
        encode(route),
        encode(url.scheme),
        // Already lower-case: the runtime's URL serialisation lowers the host.
        encode(url.authority),
        // Beside the host, after a `~` no encoded segment holds (a query cannot spell it: a request asking
        // `?__origin=…` without an Origin must not fill that site's entry); without an Origin the key is as before.
        // As a digest: the header is the client's to fill (16 KiB under the WAF's default header budget, three
        // times that percent-encoded), and a key is long enough with the path and query in it (the isolate's maps
        // hold keys by digest, `KeyId`).
        origin.map_or(String::new(), |origin| format!(
            "~{}",
            hex::encode(Sha256::digest(origin.as_bytes()))
        )),
        url.path
    );
    // A bare `?` is forwarded as sent (`/x?` is not `/x` to every origin), so it keys apart too.
    let queried = !pairs.is_empty() || url.query.is_some();
    if queried {
        key.push('?');
        key.push_str(&pairs.join("&"));
    }
    if !policy.shared {
        let user = user?;
        key.push_str(if queried { "&" } else { "?" });
        key.push_str("__user=");
        key.push_str(&encode(&user.sub));
        key.push_str("&__permissions=");
        key.push_str(&encode(&user.permissions.join(",")));
        if let Some(email) = &user.email {
            key.push_str("&__email=");
            key.push_str(&encode(email));
        }
        // A per-user fill carries the request's `Authorization` too, and an origin that reads the token itself may
        // answer by claims the `X-User-*` headers leave out (a scope, a tenant): the same user's token without them
        // must not be served that answer.
        if let Some(credentials) = authorization {
            key.push_str("&__authorization=");
            key.push_str(&hex::encode(Sha256::digest(credentials.as_bytes())));
        }
    }
    Some(key)
}

/// What an isolate's own maps (the passed keys, the written keys, the fills in progress) hold a cache key by: its
/// SHA-256, taken once per request ([`KeyId::of`]). A key holds the client's path and query as sent (16 KiB and more
/// under the WAF's header budget), and those maps outlive the request — 4,096 passed keys of 16 KiB URLs held 64 MiB
/// of an isolate's 128. The Cache API is still asked by the key itself; two keys share an entry here exactly when
/// they are equal (SHA-256 has no known collisions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 32]);

impl KeyId {
    pub fn of(cache_key: &str) -> Self {
        Self(Sha256::digest(cache_key.as_bytes()).into())
    }

    /// In hex: what the fills in progress (`entry::coalesce`, keyed by text) are held by.
    pub fn memory_key(&self) -> String {
        hex::encode(self.0)
    }
}

/// Why a fill's Cache API put did not store its answer, as far as this isolate can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum PutFailed<E> {
    /// The Cache API refused it.
    Refused(E),
    /// It had not settled when it stopped being followed (`outlast`): it may still land, unseen.
    Unsettled,
}

/// Awaits a fill's Cache API `put` until it settles, releasing `claim` (the fill's hold on its key, whose waiters
/// are handed its answer as a HIT meanwhile) when `limit` comes first: a put that has not settled must not keep the
/// key claimed, but it may still land — its caller checks the write memory once it has (a write's deletion that ran
/// while it was under way is undone by it), so it is followed on, not dropped (dropping the future would not stop
/// the runtime's put, only the check after it). Followed until `outlast` (polled from `limit` on), which must end
/// inside `waitUntil`'s 30 s after the answer (Cloudflare's Workers limits): past those the runtime neither settles
/// the put nor fires a timer for this request, so a put followed without end kept this future — the fill's whole
/// answer with it — in the isolate for good.
pub async fn settle_put<E, C>(
    put: impl std::future::Future<Output = Result<(), E>>,
    limit: impl std::future::Future<Output = ()>,
    outlast: impl std::future::Future<Output = ()>,
    claim: &mut Option<C>,
) -> Result<(), PutFailed<E>> {
    use futures_util::future::{select, Either};
    let put = std::pin::pin!(put);
    let limit = std::pin::pin!(limit);
    let stored = match select(put, limit).await {
        Either::Left((stored, _)) => stored,
        Either::Right((_, put)) => {
            drop(claim.take());
            match select(put, std::pin::pin!(outlast)).await {
                Either::Left((stored, _)) => stored,
                Either::Right(_) => return Err(PutFailed::Unsettled),
            }
        }
    };
    stored.map_err(PutFailed::Refused)
}

/// Keys held until a time (ms), by digest: the keys of a shared policy whose last fill got an answer made for one
/// visitor, whose requests go to the origin as their own for [`PASS_MS`], as Varnish's hit-for-pass does, instead of
/// a fill and then their own request each (the handler's passes); and the keys whose stale-while-revalidate refresh
/// failed lately (the origin answered 5xx or 429, timed out or could not be reached), whose stale copy is served
/// without another refresh for the hold [`refresh_hold_ms`] gives, so an origin that is down or rate-limiting costs
/// one refresh per key and hold in an isolate, not one per request (the handler's refresh holds).
///
/// At most [`MAX_KEYS_HELD`]: when full, the holds that have ended are dropped, then, if still full, the one that
/// ends soonest (the oldest, for holds of one length) — O(log n) each. (An earlier build cleared the map whole when
/// it filled: a flood of new keys — each passed or failed once — lifted every live hold at once, so a held key was
/// refreshed, or a passed key filled, again.)
#[derive(Debug, Default)]
pub struct KeyHolds {
    /// Each held key's end.
    until: std::collections::HashMap<KeyId, u64>,
    /// The same, ending soonest first: what is dropped when full.
    order: std::collections::BTreeSet<(u64, KeyId)>,
}

/// How long a key stays passed to the origin after its fill got a personal answer (Varnish's default, 120 s).
pub const PASS_MS: u64 = 120_000;
/// At most this many keys are held (ended ones are dropped first; then the one ending soonest).
pub const MAX_KEYS_HELD: usize = 4096;

impl KeyHolds {
    /// Whether the key is held at `now`.
    pub fn held(&self, id: &KeyId, now: u64) -> bool {
        self.until.get(id).is_some_and(|until| now < *until)
    }

    /// Holds the key from `now` for `hold_ms`, dropping the holds that have ended and, if still full, the one that
    /// ends soonest. O(log n).
    pub fn hold(&mut self, id: KeyId, now: u64, hold_ms: u64) {
        self.lift(&id);
        while let Some(&(until, oldest)) = self.order.first() {
            if now < until && self.order.len() < MAX_KEYS_HELD {
                break;
            }
            self.order.pop_first();
            self.until.remove(&oldest);
        }
        let until = now.saturating_add(hold_ms);
        self.until.insert(id, until);
        self.order.insert((until, id));
    }

    /// Ends the key's hold (a fill of it got the origin's answer, so the origin is not down for it).
    pub fn lift(&mut self, id: &KeyId) {
        if let Some(until) = self.until.remove(id) {
            self.order.remove(&(until, *id));
        }
    }

    /// Moves every hold's end `ms` into the past, as if that long had passed: the tests' way (through a debug route)
    /// to see a hold end without waiting it out. The order is kept: every end moves alike (those that reach 0 tie,
    /// told apart by key as ever).
    pub fn age(&mut self, ms: u64) {
        for until in self.until.values_mut() {
            *until = until.saturating_sub(ms);
        }
        self.order = self
            .order
            .iter()
            .map(|&(until, id)| (until.saturating_sub(ms), id))
            .collect();
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// The bytes the remembered keys and times take (each twice: by key and in order), whatever the keys' length
    /// (the collections' own slack aside).
    pub fn held_bytes(&self) -> usize {
        self.len() * 2 * std::mem::size_of::<(KeyId, u64)>()
    }
}

/// The most an origin's `Retry-After` holds a key's refreshes off, and the longest `GATEWAY_REFRESH_HOLD_MS` allows, so
/// an origin (or anything answering for it) saying `Retry-After: 86400` cannot leave a key's stale copy unrefreshed
/// for a day.
pub const MAX_RETRY_AFTER_HOLD_MS: u64 = 300_000;

/// How long the origin's answer to a stale-while-revalidate refresh holds off the key's next refresh, if at all
/// (`status`: the answer's, `None` when there was none — a timeout, no connection; `retry_after`: its header;
/// `hold_ms`: `GATEWAY_REFRESH_HOLD_MS`, whose 0 holds nothing). A 5xx or no answer holds for `hold_ms`. A 429 (the
/// origin rate-limiting) holds too — asked again by every request in the window, a rate-limited origin is asked
/// hardest when it is asking for less (RFC 6585 §4) — for its `Retry-After` (delta-seconds or an HTTP-date, RFC 9110
/// §10.2.3) when that is longer, at most [`MAX_RETRY_AFTER_HOLD_MS`]; without one (or one that cannot be read),
/// `hold_ms`. A 503 holds for its `Retry-After` alike (RFC 9110 §10.2.3: how long the service expects to be
/// unavailable; before, a 503 saying `Retry-After: 120` was asked again every `hold_ms`); other 5xx name no wait.
/// Anything else holds nothing. (A 429 is not an error stale-if-error covers — RFC 5861 §4 names 500, 502, 503 and
/// 504 —: a request outside the stale-while-revalidate window is answered the 429.)
pub fn refresh_hold_ms(
    status: Option<u16>,
    retry_after: Option<&str>,
    now_ms: u64,
    hold_ms: u64,
) -> Option<u64> {
    if hold_ms == 0 {
        return None;
    }
    match status {
        None => Some(hold_ms),
        Some(429 | 503) => {
            let asked = retry_after.and_then(|v| retry_after_ms(v, now_ms));
            Some(asked.unwrap_or(0).min(MAX_RETRY_AFTER_HOLD_MS).max(hold_ms))
        }
        Some(s) if s >= 500 => Some(hold_ms),
        Some(_) => None,
    }
}

/// Whether the origin's answer to a fill of a key (`status`, `None` for none) ends the key's refresh hold: an
/// answer, but not a 5xx or a 429 — an origin still failing or still rate-limiting has not come back, and a 429 to a
/// fill lifting the hold a 429 or a 5xx set let the next request in the window refresh again.
pub fn lifts_refresh_hold(status: Option<u16>) -> bool {
    status.is_some_and(|s| s < 500 && s != 429)
}

/// The wait a `Retry-After` value asks for in ms at `now_ms`: delta-seconds (digits alone), or an HTTP-date (a date
/// past is no wait). `None` for anything else.
fn retry_after_ms(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits past u64 are a wait longer than any bound.
        return Some(
            value
                .parse::<u64>()
                .unwrap_or(u64::MAX)
                .saturating_mul(1000),
        );
    }
    let at_secs = crate::conditional::http_date(value)?;
    let at_ms = u64::try_from(at_secs).ok()?.saturating_mul(1000);
    Some(at_ms.saturating_sub(now_ms))
}

/// Whether a stale-while-revalidate hit starts a background refresh of its key: not while the key is passed to the
/// origin (`passing`: its last fill got an answer made for one visitor, and a refresh is such a fill, made again for
/// nothing — the requests themselves are not refreshes), nor while a failed refresh holds it off (`held`).
pub fn refresh_due(passing: bool, held: bool) -> bool {
    !passing && !held
}

/// The keys this isolate saw a write to (`invalidates`), each with when (ms): a fill asked of the origin before a
/// write to its key is neither stored after it (over the write's deletion) nor handed to requests made after it.
/// Kept [`WRITE_KEPT_MS`], longer than a fill can take; at most [`MAX_WRITES_KEPT`], the oldest dropped first. A
/// write dropped before its time is not forgotten: the latest such time stands for every key ([`Writes::last`]), so
/// a fill asked before it is treated as written over — refused where it might not be (not stored; a waiter asks
/// again) rather than stored over a write. (Clearing them all, as an earlier build did past 4,096 writes in 15
/// minutes, let every fill then under way store the answer from before its key's write.)
#[derive(Debug, Default)]
pub struct Writes {
    /// Each remembered key's last write.
    last: std::collections::HashMap<KeyId, u64>,
    /// The same, oldest first: what is dropped when full or expired.
    order: std::collections::BTreeSet<(u64, KeyId)>,
    /// The latest write dropped while fills asked before it may still be under way.
    dropped: Option<u64>,
}

/// How long a write is remembered: past the longest fill (two minutes' timeout, six attempts, two minutes of body).
pub const WRITE_KEPT_MS: u64 = 15 * 60_000;
/// At most this many written keys are remembered (expired ones first, then the oldest; see [`Writes`]).
pub const MAX_WRITES_KEPT: usize = 4096;

impl Writes {
    /// Notes a write to the key at `now`. O(log n).
    pub fn wrote(&mut self, id: KeyId, now: u64) {
        if let Some(before) = self.last.insert(id, now) {
            self.order.remove(&(before, id));
        }
        self.order.insert((now, id));
        while let Some(&(at, oldest)) = self.order.first() {
            let expired = now.saturating_sub(at) >= WRITE_KEPT_MS;
            if !expired && self.order.len() <= MAX_WRITES_KEPT {
                break;
            }
            self.order.pop_first();
            self.last.remove(&oldest);
            if !expired {
                self.dropped = self.dropped.max(Some(at));
            }
        }
        if self
            .dropped
            .is_some_and(|at| now.saturating_sub(at) >= WRITE_KEPT_MS)
        {
            self.dropped = None;
        }
    }

    /// Whether the key was written at or after `since` (an answer asked of the origin then may predate the write).
    pub fn written_since(&self, id: &KeyId, since: u64) -> bool {
        self.last(id).is_some_and(|at| at >= since)
    }

    /// When the key was last written, as far as this isolate knows (or, for a key whose write was dropped unexpired,
    /// may have been: the latest dropped write's time): what a request arriving now must not be handed an answer
    /// from before. (A write made after a request came is concurrent with it: the answer from before it is as good
    /// as one from after, and a waiter that asked again for every such write would queue behind one fill after
    /// another while writes keep coming.)
    pub fn last(&self, id: &KeyId) -> Option<u64> {
        self.last.get(id).copied().max(self.dropped)
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Whether an origin answer may be stored in the edge cache and handed to other requests for the same key: a
/// cacheable status (2xx but 201, 202 and 206, 301, 308, 404, 410), no `Set-Cookie` or `Clear-Site-Data`, no `Cache-Control: no-store`, no `private`
/// unless the policy keys entries per user, no `Vary` beyond `Accept-Encoding` and `Origin` (the key includes no
/// other request header; `Origin` is in it) — and `Authorization` on a per-user policy, whose key holds the digest of
/// the `Authorization` its fill carries ([`cache_key`]), so a copy is served only to requests sending the same one
/// (refused, an origin saying `Vary: Authorization` on its per-token answers, as token-authenticated APIs do, had
/// every request of a personalised route go to it) —, and not an event stream (`text/event-stream` is live: it goes to its requester as it is written). Freshness directives (`max-age`, `no-cache`, …) do not count: the route's policy sets the edge TTL, as an
/// edge TTL override does on a CDN. Header names lower-case, as the runtime gives them.
pub fn storable(status: u16, headers: &[(String, String)], per_user: bool) -> bool {
    storable_status(status)
        && for_anyone(headers, per_user)
        && varies_only_by(
            headers,
            if per_user {
                &["origin", "authorization"]
            } else {
                &["origin"]
            },
        )
        && !headers.iter().any(|(name, value)| {
            name == "content-type" && crate::body::media_type(value) == "text/event-stream"
        })
}

/// 2xx but 201 and 202 — an answer about the request (a resource it made; how its processing is getting on, RFC 9110
/// §15.3.2–3), not the target's representation: a 202 stored while an export was being made was served for the
/// policy's TTL after it was ready — and 206 (a part) —, 301, 308, 404, 410.
fn storable_status(status: u16) -> bool {
    matches!(status, 200 | 203..=205 | 207..=299 | 301 | 308 | 404 | 410)
}

/// Whether a `Cache-Control`-style list names the directive `name` (any case, with or without a value; one named
/// only inside a quoted argument, `no-cache="Set-Cookie, no-store"`, is not one).
fn has_directive(value: &str, name: &str) -> bool {
    crate::cache_control::directive(value, name).is_some()
}

/// No `Set-Cookie` or `Clear-Site-Data` ([`acts_on_its_visitor`]), no `no-store`, and no `private` unless entries are
/// kept per user — in `Cache-Control` or in a
/// field aimed at caches like this one (RFC 9213's `CDN-Cache-Control`, Cloudflare's own, `Surrogate-Control`):
/// an origin telling CDNs alone not to keep an answer means the edge too.
fn for_anyone(headers: &[(String, String)], per_user: bool) -> bool {
    headers.iter().all(|(name, value)| match name.as_str() {
        name if ACTS_ON_ITS_VISITOR.contains(&name) => false,
        "cache-control"
        | "cdn-cache-control"
        | "cloudflare-cdn-cache-control"
        | "surrogate-control" => {
            !(has_directive(value, "no-store") || (!per_user && has_directive(value, "private")))
        }
        _ => true,
    })
}

/// Whether every field a `Vary` lists is `Accept-Encoding` or one of `fields` (lower-case). An answer that lets one
/// named site read it (`Access-Control-Allow-Origin` other than `*`) varies by `Origin` whether or not it says so:
/// a fill carries its requester's `Origin`, and an origin echoing it without `Vary: Origin` would otherwise have
/// one site's grant stored and served to every other site's pages.
fn varies_only_by(headers: &[(String, String)], fields: &[&str]) -> bool {
    let by_origin = headers
        .iter()
        .any(|(name, value)| name == "access-control-allow-origin" && value.trim() != "*");
    (!by_origin || fields.contains(&"origin"))
        && headers
            .iter()
            .filter(|(name, _)| name == "vary")
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .all(|field| {
                field.is_empty()
                    || field.eq_ignore_ascii_case("accept-encoding")
                    || fields.iter().any(|f| f.eq_ignore_ascii_case(field))
            })
}

/// The fields with which an answer acts on its one visitor's browser: setting a cookie, clearing the site's data.
const ACTS_ON_ITS_VISITOR: [&str; 2] = ["set-cookie", "clear-site-data"];

/// Whether an answer acts on its one visitor's browser ([`ACTS_ON_ITS_VISITOR`]): handed to another requester, it
/// would act on theirs.
pub fn acts_on_its_visitor(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(name, _)| ACTS_ON_ITS_VISITOR.contains(&name.as_str()))
}

/// What the answer to a shared fill — which carried none of its requester's cookies or credentials, only `carried`
/// — is to a requester that sent more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillAnswer {
    /// An answer for anyone: storable (if perhaps too large to store), or an origin error without a cookie.
    Anyone,
    /// Its status may come from what the fill did not carry (a 401 without the API key, a redirect to a login
    /// page, a 403): a requester that sent more is answered by a request of its own.
    StatusOnly,
    /// It says it was made for its one visitor — `Set-Cookie` (an origin starting a session for a request without
    /// one), `private` or `no-store`, a `Vary` on what the fill did not carry: the key answers per visitor, and is
    /// passed to the origin for a while (hit-for-pass).
    Personal,
}

/// Which [`FillAnswer`] an answer to a shared fill is. `private` and `no-store` make only an answer that would be
/// stored personal: origins put them on their errors too (Symfony's and Laravel's default), and a 406 for an odd
/// `Accept` must not pass a key — only a cookie or a `Vary` on what the fill left out does then; an origin error is
/// never personal.
pub fn shared_fill_answer(
    status: u16,
    headers: &[(String, String)],
    carried: &[&str],
) -> FillAnswer {
    let sets_cookie = acts_on_its_visitor(headers);
    if status >= 500 {
        // An origin error is shared with the waiters whatever it says (a sticky load balancer's cookie on a 503):
        // passing the key would send every request to a failing origin.
        FillAnswer::Anyone
    } else if sets_cookie || !varies_only_by(headers, carried) {
        FillAnswer::Personal
    } else if !storable_status(status) {
        FillAnswer::StatusOnly
    } else if for_anyone(headers, false) {
        FillAnswer::Anyone
    } else {
        FillAnswer::Personal
    }
}

/// Whether a conditional GET or HEAD is answered 304 Not Modified by a representation with these headers (RFC 9110
/// §13.2.2): only for a 200; `If-None-Match` (`*`, or an entity tag of the list by weak comparison) decides when it
/// is sent, else `If-Modified-Since`: a copy whose `Last-Modified` is not after its date (§13.1.3; both read as
/// HTTP-dates, [`crate::conditional::http_date`]), or without one when it was stored (`stored_at_ms`; RFC 9111
/// §4.3.2), or with no such time its `Date`. One that is no
/// HTTP-date (or more than one) is ignored; an origin's `Last-Modified` that is none cannot be compared, and is
/// matched as it was sent.
pub fn not_modified(
    status: u16,
    headers: &[(String, String)],
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    stored_at_ms: Option<u64>,
) -> bool {
    // RFC 9110 §15.4.5: a 304 stands for the 200 the request would otherwise get.
    if status != 200 {
        return false;
    }
    let field = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    if let Some(condition) = if_none_match {
        let Some(etag) = field("etag") else {
            return condition.trim() == "*";
        };
        return crate::conditional::none_match(condition, etag);
    }
    match (if_modified_since, field("last-modified")) {
        (Some(since), Some(modified)) => {
            use crate::conditional::http_date;
            match (http_date(since), http_date(modified)) {
                (Some(since), Some(modified)) => modified <= since,
                (_, None) => since.trim() == modified,
                (None, Some(_)) => false,
            }
        }
        // RFC 9111 §4.3.2: without a Last-Modified, a cache SHOULD compare the response's Date, or the time it was
        // received. A stored copy is compared by when it was stored (the second after, rounded up): the Cache API
        // hands a matched copy back with a Date of its own. The gateway passes that time for a fetched copy too, so
        // a MISS answers as the HIT after it does. A Date is no validator to match as sent.
        (Some(since), None) => {
            use crate::conditional::http_date;
            let received = match stored_at_ms {
                Some(ms) => i64::try_from(ms.div_ceil(1000)).ok(),
                None => field("date").and_then(http_date),
            };
            match (http_date(since), received) {
                (Some(since), Some(received)) => received <= since,
                _ => false,
            }
        }
        _ => false,
    }
}

/// The stored TTL in milliseconds: `ttl` ± up to 10%, from two random bytes (so entries stored together do not all
/// expire together).
pub fn jittered_ttl_ms(ttl_secs: u64, random: [u8; 2]) -> u64 {
    let base = ttl_secs.saturating_mul(1000);
    let spread = base / 10;
    if spread == 0 {
        return base;
    }
    let r = u64::from(u16::from_le_bytes(random)); // 0..=65535
    let offset = r * (2 * spread) / 65_535; // 0..=2*spread
    base - spread + offset
}

/// A client's caching header (`Cache-Control`, `Surrogate-Control`) for a stored copy served fresh at `age_ms`: its
/// `max-age` and `s-maxage` saying the policy's TTL (`nominal_secs`) are raised to the copy's own jittered TTL
/// (`stored_ttl_ms`, whole seconds rounded up) once the copy is older than the policy's TTL — else an answer labelled
/// `HIT` said an `Age` past its `max-age`, which a browser or a CDN in front reads as stale. `None`: unchanged (a
/// copy not yet past the policy's TTL, or past its own: that one is not served fresh).
pub fn stretched_lifetime(
    value: &str,
    nominal_secs: u64,
    stored_ttl_ms: u64,
    age_ms: u64,
) -> Option<String> {
    let nominal_ms = nominal_secs.saturating_mul(1000);
    if age_ms < nominal_ms || age_ms >= stored_ttl_ms {
        return None;
    }
    let stored_secs = stored_ttl_ms.div_ceil(1000).to_string();
    // Only the lifetime's argument is replaced: every other byte (directives, spacing, case) stays as written, and
    // a comma inside a quoted argument (`no-cache="a,b"`) separates no directive.
    let mut told = String::with_capacity(value.len() + 4);
    let mut changed = false;
    let mut start = 0;
    for end in directive_ends(value) {
        let directive = &value[start..end];
        let rewritten = directive.split_once('=').and_then(|(name, argument)| {
            let lifetime = ["max-age", "s-maxage"]
                .iter()
                .any(|n| name.trim().eq_ignore_ascii_case(n));
            let said = argument.trim();
            let number = said
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(said);
            (lifetime && number.parse::<u64>() == Ok(nominal_secs)).then(|| {
                let at = name.len() + 1 + (argument.len() - argument.trim_start().len());
                format!(
                    "{}{stored_secs}{}",
                    &directive[..at],
                    &directive[at + said.len()..]
                )
            })
        });
        changed |= rewritten.is_some();
        told.push_str(rewritten.as_deref().unwrap_or(directive));
        if end < value.len() {
            told.push(',');
        }
        start = end + 1;
    }
    changed.then_some(told)
}

/// The byte offsets of the commas that end `value`'s directives (outside quoted strings, whose `\` escapes a
/// character), and its length for the last one.
fn directive_ends(value: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let (mut quoted, mut escaped) = (false, false);
    for (i, b) in value.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => ends.push(i),
            _ => {}
        }
    }
    ends.push(value.len());
    ends
}

/// What the gateway writes beside a stored response (as headers on the stored copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMeta {
    pub stored_at_ms: u64,
    pub ttl_ms: u64,
    pub swr_ms: u64,
    pub sie_ms: u64,
    pub tags: Vec<String>,
}

impl StoredMeta {
    pub const HEADER: &'static str = "x-gateway-meta";
    /// Beside a stored answer whose status has no body (204, 205), which is stored as a 200: Miniflare's cache
    /// rebuilds a stored answer with a body stream, which the Fetch standard refuses for those statuses, so such
    /// an answer was never found again.
    pub const STATUS_HEADER: &'static str = "x-gateway-status";

    /// The status to store an answer under, and the real one when it differs (see [`Self::STATUS_HEADER`]).
    pub fn stored_status(status: u16) -> (u16, Option<u16>) {
        if null_body(status) {
            (200, Some(status))
        } else {
            (status, None)
        }
    }

    /// The status of a stored answer: the one [`Self::STATUS_HEADER`] keeps when it is a bodiless one, else the
    /// stored response's own.
    pub fn served_status(stored: u16, kept: Option<&str>) -> u16 {
        match kept.and_then(|s| s.trim().parse::<u16>().ok()) {
            Some(status) if stored == 200 && null_body(status) => status,
            _ => stored,
        }
    }

    /// The metadata of an answer stored under `policy`: dated from its origin request, with the policy's TTL
    /// jittered by two random bytes (±10%) and its stale windows.
    pub fn for_fill(
        policy: &CachePolicy,
        status: u16,
        requested_at_ms: u64,
        random: [u8; 2],
        tags: Vec<String>,
    ) -> Self {
        Self {
            stored_at_ms: requested_at_ms,
            ttl_ms: jittered_ttl_ms(policy.ttl_for(status), random),
            // A redirect or absence is not served stale for longer than it is kept fresh (a pre-deploy 404 served
            // for a day of stale-if-error would outlive what negative_ttl promises).
            swr_ms: policy.stale_window(policy.stale_while_revalidate, status) * 1000,
            sie_ms: policy.stale_window(policy.stale_if_error, status) * 1000,
            tags,
        }
    }

    pub fn encode(&self) -> String {
        format!(
            "{};{};{};{};{}",
            self.stored_at_ms,
            self.ttl_ms,
            self.swr_ms,
            self.sie_ms,
            self.tags.join(",")
        )
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut it = s.splitn(5, ';');
        let mut n = || it.next().and_then(|v| v.parse::<u64>().ok());
        let (stored_at_ms, ttl_ms, swr_ms, sie_ms) = (n()?, n()?, n()?, n()?);
        let tags = it
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
            // As stored: an earlier build kept the origin's case, and its purge marks name the tag so
            // ([`Self::mark_names`]).
            .map(str::to_owned)
            .collect();
        Some(Self {
            stored_at_ms,
            ttl_ms,
            swr_ms,
            sie_ms,
            tags,
        })
    }

    /// How long the Cache API must keep the copy: fresh time plus the longer stale window, in whole seconds.
    pub fn retention_secs(&self) -> u64 {
        (self.ttl_ms + self.swr_ms.max(self.sie_ms))
            .div_ceil(1000)
            .max(1)
    }

    /// Where this entry stands at `now_ms`.
    pub fn freshness(&self, now_ms: u64) -> Freshness {
        let age = now_ms.saturating_sub(self.stored_at_ms);
        if age < self.ttl_ms {
            Freshness::Fresh
        } else if age < self.ttl_ms + self.swr_ms {
            Freshness::StaleRevalidate
        } else if age < self.ttl_ms + self.sie_ms {
            Freshness::StaleIfError
        } else {
            Freshness::Expired
        }
    }

    /// The purge marks that cover this entry: each tag's as a purge names it now ([`tag_key`]), and a tag an earlier
    /// build stored in its origin's case (`Product-42`) also as it is, the name that build's purges wrote their
    /// marks under — else an entry purged before the deploy was served again after it, until it expired.
    /// Borrowed from the entry, but for the lower-case name of a tag stored in another case (read on every hit); each
    /// name once.
    pub fn mark_names(&self) -> Vec<std::borrow::Cow<'_, str>> {
        let mut names: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(self.tags.len());
        for tag in &self.tags {
            if tag.bytes().any(|b| b.is_ascii_uppercase()) {
                let key = tag_key(tag);
                if !names.iter().any(|n| *n == key) {
                    names.push(std::borrow::Cow::Owned(key));
                }
            }
            // Each once: an earlier build kept `Product-42` and `product-42` as two tags of one entry, and a mark
            // named twice was read twice by one hit (the second waiting on the first as another request would).
            if !names.iter().any(|n| n == tag) {
                names.push(std::borrow::Cow::Borrowed(tag.as_str()));
            }
        }
        names
    }

    /// Whether a purge of one of this entry's tags (a mark of [`Self::mark_names`]) at a later time invalidates it.
    pub fn purged(&self, purge_time_of: impl Fn(&str) -> Option<u64>) -> bool {
        self.mark_names()
            .iter()
            .any(|t| purge_time_of(t).is_some_and(|at| at >= self.stored_at_ms))
    }
}

/// Whether the answer to a `method` request invalidates the stored answer for its URL (RFC 9111 §4.4): a method
/// that is not safe (POST, PUT, PATCH, DELETE) answered with a non-error status (2xx, 3xx). Else a client that
/// changed or deleted a resource was served the copy from before its own write until the policy's TTL ran out.
pub fn invalidates(method: &str, status: u16) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE") && (200..400).contains(&status)
}

/// Whether a purge of one of `tags` (as [`tags_for`] gives them) at or after `requested_at_ms` covers an answer whose
/// origin request was made then: as a stored copy is covered ([`StoredMeta::purged`]), so is a fill still under way
/// or being stored, which concurrent requests would otherwise be handed — content from before the purge, to requests
/// made after it.
pub fn purged_since(
    tags: &[String],
    requested_at_ms: u64,
    purge_time_of: impl Fn(&str) -> Option<u64>,
) -> bool {
    tags.iter()
        .any(|tag| purge_time_of(tag).is_some_and(|at| at >= requested_at_ms))
}

/// The purge time a tag's mark in KV holds (`None`: no mark, never purged), or why it is none: the purge route writes
/// the time in ms as decimal digits, and anything else (another writer's, a damaged value) cannot be read as a time.
/// Such a mark is an `Err`, counted as purged as a mark KV cannot give is: read as "never purged", the entries it
/// covers were served on, though a purge is how an operator takes content down.
pub fn purge_time(mark: Option<&str>) -> Result<Option<u64>, String> {
    match mark {
        None => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            format!(
                "the mark {:?} is not a time",
                crate::observability::log::clipped(text, 64)
            )
        }),
    }
}

/// The age in ms of an answer handed to a request it was not made for, `waited_ms` after its origin request: that
/// wait, plus the origin's own `Age` (`origin_age`, read as render reads it: [`crate::cache_control::age_secs`];
/// anything else ignored) when the answer goes out with the origin's headers (an unstored one): set to the wait
/// alone, a joiner of a fill the origin said was 100 s old said less than the lead that forwarded that 100 (RFC 9111
/// §4.2.3 adds the two).
pub fn handed_age_ms(origin_age: Option<&str>, waited_ms: u64) -> u64 {
    let origin_secs = origin_age
        .and_then(crate::cache_control::age_secs)
        .unwrap_or(0);
    origin_secs.saturating_mul(1000).saturating_add(waited_ms)
}

/// Purge times of cache tags as an isolate last saw them: tag → (purged at, read at).
pub type PurgeTimes = std::collections::HashMap<String, (Option<u64>, u64)>;

/// Keeps `read`, the purge time of `tag` a KV read begun at `now` brought (`None`: never purged), in `purges`
/// (at most `kept` tags, what was not re-read within `sync_ms` forgotten first), and gives the time now known: a
/// purge this isolate made or read since is not taken back by an older read's answer.
pub fn keep_purge_read(
    purges: &mut PurgeTimes,
    tag: String,
    read: Option<u64>,
    now: u64,
    sync_ms: u64,
    kept: usize,
) -> Option<u64> {
    // Taken before the map is cut down below: a purge it holds must survive the cut it is about to be put back after.
    let at = read.max(purges.get(&tag).and_then(|(at, _)| *at));
    // What it has not re-read lately is read again anyway: forgotten once the map grows.
    if purges.len() >= kept {
        purges.retain(|_, (_, read_at)| now.saturating_sub(*read_at) < sync_ms);
        if purges.len() >= kept {
            // All read lately: start over rather than grow (each is read again when needed).
            purges.clear();
        }
    }
    purges.insert(tag, (at, now));
    at
}

/// Keeps the purge of `tag` this isolate just made at `at` in `purges`, bounded as a read is ([`keep_purge_read`]: at
/// most `kept` tags, what was not re-read within `sync_ms` forgotten first): the purge route added its marks to the
/// map as they were, so purges of new tags (100 a request) grew it past the bound the reads keep.
pub fn keep_purge_made(
    purges: &mut PurgeTimes,
    tag: String,
    at: u64,
    sync_ms: u64,
    kept: usize,
) -> Option<u64> {
    keep_purge_read(purges, tag, Some(at), at, sync_ms, kept)
}

/// Whether a purge mark's KV write was refused by Workers KV's limit of one write a second to one key (`429 Too
/// Many Requests`; `detail` is the error's text): another purge marked the tag within the second, and the write may
/// be made again a second later. Any other refusal is not retried.
pub fn kv_write_limited(detail: &str) -> bool {
    // The status as a number of its own: "429" inside a reference id, a length or a decimal (`25.429`, `429.5`) is no
    // limit, and retrying on it held the purge a second for nothing.
    let bytes = detail.as_bytes();
    let at = |i: Option<usize>| i.and_then(|i| bytes.get(i).copied());
    let digit = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_digit());
    detail.match_indices("429").any(|(start, _)| {
        let (before, after) = (at(start.checked_sub(1)), at(Some(start + 3)));
        let decimal = before == Some(b'.') && digit(at(start.checked_sub(2)))
            || after == Some(b'.') && digit(at(Some(start + 4)));
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
            && !decimal
    })
}

/// How long a purge waits before writing again the marks Workers KV refused for its per-key limit (one write a
/// second to a key).
pub const PURGE_RETRY_MS: u64 = 1_000;

/// Writes a purge's marks ([`purge_marks`]) one after another through `write` (a KV put of the mark's time), each
/// dated by `clock` at its own write. A mark Workers KV refuses for its one-write-a-second-per-key limit
/// ([`kv_write_limited`]: another purge marked the tag within the second) is written again once `retry_wait` has
/// passed (a second), dated then. `marked` is told each mark written and its time as it lands (the isolate knows its
/// own purges at once). Gives the marks not written, each with why.
///
/// (Dated by the request's arrival, as an earlier build dated them, a mark written late in a long list — 100 puts
/// in turn — could land after a later purge's mark of the same tag, more than the second KV's limit covers after
/// it, and take that mark back to before the later purge: every isolate reading it then served the copies stored
/// between the two, which the later purge took down. Each dated as its own put is issued, it covers a little more
/// than its purge — what was stored while the list was being written — never less. A put that lands after a later
/// purge's put of the tag still says the earlier time: within KV's second it is refused and written again, dated
/// then, but one in flight longer than that overwrites the later mark — KV has no compare-and-set (README, Known
/// limits).)
pub async fn write_marks<W, D>(
    marks: Vec<String>,
    clock: impl Fn() -> u64,
    mut write: impl FnMut(String, u64) -> W,
    retry_wait: impl FnOnce() -> D,
    mut marked: impl FnMut(&str, u64),
) -> Vec<(String, String)>
where
    W: std::future::Future<Output = Result<(), String>>,
    D: std::future::Future<Output = ()>,
{
    let (mut failed, mut limited) = (Vec::new(), Vec::new());
    for tag in marks {
        let at = clock();
        match write(tag.clone(), at).await {
            Ok(()) => marked(&tag, at),
            Err(detail) if kv_write_limited(&detail) => limited.push(tag),
            Err(detail) => failed.push((tag, detail)),
        }
    }
    if !limited.is_empty() {
        retry_wait().await;
        for tag in limited {
            let at = clock();
            match write(tag.clone(), at).await {
                Ok(()) => marked(&tag, at),
                Err(detail) => failed.push((tag, detail)),
            }
        }
    }
    failed
}

/// The answer to a purge once its marks are written: 200 when every tag is marked; else 503 with `Retry-After: 1`,
/// naming the tags marked and those not (`failed_marks`: the marks not written, [`tag_key`] names) — the others were
/// marked all the same, and a purge is safe to repeat, so the caller sends the failed ones again. (A 500 at the first
/// failed mark left the tags after it unmarked, and did not say which.) Both answers name the tags as the request
/// listed them, in its order (a tag listed twice, or in two cases, named each time): `purged` and `failed` together
/// are the request's list, as the 200's `purged` is — a 503 naming them by their lower-case marks told a caller
/// matching its own list that `Product-42` had been neither purged nor failed.
pub fn purge_answer(
    requested: &[String],
    failed_marks: &[String],
    at_ms: u64,
) -> Result<serde_json::Value, crate::error::ApiError> {
    if failed_marks.is_empty() {
        return Ok(serde_json::json!({"purged": requested, "at_ms": at_ms}));
    }
    let (failed, purged): (Vec<&String>, Vec<&String>) = requested
        .iter()
        .partition(|tag| failed_marks.contains(&tag_key(tag)));
    let message = format!(
        "{} of {} tags could not be marked purged; send them again",
        failed.len(),
        requested.len()
    );
    let fields = serde_json::Map::from_iter([
        ("purged".to_owned(), serde_json::json!(purged)),
        ("failed".to_owned(), serde_json::json!(failed)),
        ("at_ms".to_owned(), at_ms.into()),
    ]);
    Err(
        crate::error::ApiError::new(503, "purge_incomplete", message)
            .with_header("retry-after", "1")
            .with_fields(fields),
    )
}

/// Whether an answer with `status` that is not stored is still held whole and handed to a fill's coalesced waiters
/// (unless it sets a cookie): an origin error (5xx) or a 429, the origin pushing back on the key. Each waiter asking
/// again sent a rate-limiting origin one request per waiter as soon as it had said to slow down (a 429 was the
/// lead's alone), where a 5xx cost one per key. A 429 stays a status-only answer ([`shared_fill_answer`]): a requester
/// that sent credentials the fill left out asks for its own, as a rate limit may be by who asks; so does one from
/// another address than the fill named ([`fill_answer_reaches`]).
pub fn origin_pushback(status: u16) -> bool {
    status >= 500 || status == 429
}

/// Whether a fill's answer with `status` is also the answer to a coalesced waiter whose own fill would have named
/// `own_client` as its client, the fill having named `fill_client` (each the address its `X-Forwarded-For` ends with,
/// `crate::client_address::ClientAddress::named`; `None` when there is none). A 429 is for the subject of the limit
/// (RFC 6585 §4): an origin limiting by the client's address answers one address's 429 while another's requests are
/// still welcome, so it is handed on only to a waiter of the same address — another asks for its own (before, every
/// waiter got the lead's 429 and its `Retry-After`, meant for someone else). A 5xx is the origin's state, every
/// requester's alike (RFC 9110 §15.6.4: a 503 is the server's overload, not the client's).
pub fn fill_answer_reaches(
    status: u16,
    fill_client: Option<IpAddr>,
    own_client: Option<IpAddr>,
) -> bool {
    status != 429 || fill_client == own_client
}

/// The debug seam's aging of stored copies (`POST /__debug/edge-cache/age?ms=`, DEBUG_ROUTES only): when each aging
/// was made and by how much. A copy whose fill asked the origin at or before an aging is that much older to its
/// freshness ([`StoredMeta::freshness`]) and its `Age`; one filled after it is not, so a refresh stored after an
/// aging is fresh. The stored time itself is left as it is (purge marks and `If-Modified-Since` compare it).
/// Freshness is the gateway's own reading of that time — the Cache API's `max-age` on a stored copy is only how long
/// it is kept ([`StoredMeta::retention_secs`]: its TTL and longest stale window) —, so this ages what decides a HIT,
/// a STALE or a miss, and tests see a TTL pass without waiting it out.
#[derive(Debug, Default)]
pub struct CopyAging(Vec<(u64, u64)>);

/// The most agings [`CopyAging`] remembers (the oldest forgotten first): a debug seam's memory stays bounded.
const MAX_AGINGS: usize = 64;

impl CopyAging {
    /// Ages every copy filled at or before `now_ms` by `ms` more.
    pub fn age(&mut self, now_ms: u64, ms: u64) {
        if self.0.len() >= MAX_AGINGS {
            self.0.remove(0);
        }
        self.0.push((now_ms, ms));
    }

    /// How much older than its stored time says a copy whose fill asked the origin at `stored_at_ms` is.
    pub fn aged_ms(&self, stored_at_ms: u64) -> u64 {
        self.0
            .iter()
            .filter(|(at, _)| stored_at_ms <= *at)
            .fold(0, |sum, (_, ms)| sum.saturating_add(*ms))
    }
}

/// Statuses the Fetch standard gives no body: a response with one of them must be built without a body.
pub fn null_body(status: u16) -> bool {
    matches!(status, 101 | 103 | 204 | 205 | 304)
}

/// The state of a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it (`x-cache: HIT`).
    Fresh,
    /// Serve it (`STALE`) and refresh it in the background.
    StaleRevalidate,
    /// Only serve it (`STALE`) if the origin fails now.
    StaleIfError,
    /// Treat as a miss.
    Expired,
}

/// A tag as entries carry it and purge marks name it: in ASCII lower case, since tags are case-insensitive, as
/// Cloudflare's purge by tag is (`Product-42` and `product-42` are one tag): an origin's `Cache-Tag: Product-42`
/// and an operator's purge of `product-42`, written as the same tag on Cloudflare, must meet.
pub fn tag_key(tag: &str) -> String {
    tag.to_ascii_lowercase()
}

/// The purge marks a purge of `tags` writes, in its order: one per tag as entries carry it ([`tag_key`]), each once.
/// Workers KV takes at most one write a second to a key (a second is refused, 429): a purge listing one tag twice,
/// or in two cases (`Product-42`, `product-42`), failed at its second mark with a 500, the tags after it unmarked.
pub fn purge_marks(tags: &[String]) -> Vec<String> {
    let mut marks: Vec<String> = Vec::with_capacity(tags.len());
    for mark in tags.iter().map(|t| tag_key(t)) {
        if !marks.contains(&mark) {
            marks.push(mark);
        }
    }
    marks
}

/// A tag entries can carry and a purge can name: 1 to 128 printable ASCII characters, no comma or semicolon.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
}

/// Whether `Cache-Tag` lists a valid tag that `tags` (from [`tags_for`]) left out, past [`MAX_TAGS`]: an entry
/// stored without it could not be purged by it, though a purge naming it answers as if it had been.
pub fn tags_left_out(tags: &[String], origin_cache_tag: Option<&str>) -> bool {
    origin_cache_tag
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .any(|tag| valid_tag(tag) && !tags.contains(&tag_key(tag)))
}

/// The tags of a stored response: the route's own tag plus the first the origin sent in `Cache-Tag`
/// (comma-separated), deduplicated, each limited to printable ASCII without commas or semicolons, [`MAX_TAGS`] in all,
/// each in the case [`tag_key`] gives it.
pub fn tags_for(route: &str, origin_cache_tag: Option<&str>) -> Vec<String> {
    let mut tags = vec![tag_key(&format!("route:{route}"))];
    for tag in origin_cache_tag.unwrap_or("").split(',') {
        if tags.len() == MAX_TAGS {
            break;
        }
        let tag = tag.trim();
        if !valid_tag(tag) {
            continue;
        }
        let tag = tag_key(tag);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_named_policies_exist_and_say_what_clients_see() {
        let p = CachePolicies::default();
        for name in [
            "static-immutable",
            "api-public",
            "api-personalized",
            "html-dynamic",
        ] {
            let policy = p.get(name).unwrap_or_else(|| panic!("{name} exists"));
            assert!(!policy.cache_control.is_empty(), "{name}");
        }
        assert!(
            !p.get("api-personalized").map(|x| x.shared).unwrap_or(true),
            "personalized is per user"
        );
    }

    #[test]
    fn overrides_replace_or_add_policies_and_bad_ones_are_named() {
        let value = serde_json::json!({"short": {"ttl": 5, "shared": true, "cache_control": "public, max-age=5", "surrogate_control": "max-age=5"}});
        let p = CachePolicies::with_overrides(Some(&value)).expect("valid");
        assert_eq!(p.get("short").map(|x| x.ttl), Some(5));
        assert!(p.get("api-public").is_some(), "built-ins stay");
        let bad = serde_json::json!({"oops": {"ttl": 0, "shared": true, "cache_control": "", "surrogate_control": ""}});
        let e = CachePolicies::with_overrides(Some(&bad)).expect_err("ttl 0");
        assert!(e.contains("\"oops\""), "{e}");
        for (cache_control, surrogate_control) in [
            ("public, max-age=60", "no-store"),
            ("max-age=60", ""),
            ("private, max-age=60", "max-age=60"),
            // RFC 9111 5.2.2.7: a qualified `private` keeps only the fields it lists from shared caches.
            ("private=\"Set-Cookie\", max-age=60", ""),
            ("private, max-age=60", "private=\"set-cookie\", max-age=60"),
            // Surrogate-Control has no `private`: a CDN keeps this 60 s for everyone.
            ("private, max-age=60", "private, max-age=60"),
            // A `private` only inside a quoted field list is an argument, not the directive: a shared cache
            // stores this 60 s for everyone.
            ("no-cache=\"Set-Cookie, private, Vary\", max-age=60", ""),
        ] {
            let leaky = serde_json::json!({"mine": {"ttl": 60, "shared": false,
                "cache_control": cache_control, "surrogate_control": surrogate_control}});
            let e =
                CachePolicies::with_overrides(Some(&leaky)).expect_err("per-user told shareable");
            assert!(e.contains("\"mine\"") && e.contains("not shared"), "{e}");
        }
        for (cache_control, surrogate_control) in [
            ("private, max-age=30", "no-store"),
            ("no-store", ""),
            ("Private", " NO-STORE "),
        ] {
            let kept = serde_json::json!({"mine": {"ttl": 60, "shared": false,
                "cache_control": cache_control, "surrogate_control": surrogate_control}});
            assert!(
                CachePolicies::with_overrides(Some(&kept)).is_ok(),
                "{cache_control}"
            );
        }
        let bad = serde_json::json!({"typo": {"tll": 5}});
        assert!(CachePolicies::with_overrides(Some(&bad))
            .expect_err("unknown")
            .contains("\"typo\""));
        // A value of the wrong type names its field, not only its policy.
        let mistyped = serde_json::json!({"short": {"ttl": "5", "shared": true, "cache_control": "", "surrogate_control": ""}});
        let e = CachePolicies::with_overrides(Some(&mistyped)).expect_err("mistyped");
        assert!(e.contains("policy \"short\": ttl: invalid type"), "{e}");
    }

    /// The runtime refuses a header value holding a line break or a NUL, and the gateway's answer then went out with
    /// no `Cache-Control` at all (the origin's is dropped for the policy's): a per-user answer without its `private`.
    #[test]
    fn a_policy_header_that_is_no_header_value_is_refused_naming_its_field() {
        for (field, value) in [
            ("cache_control", "private,\nmax-age=60"),
            ("cache_control", "private, max-age=60\r"),
            ("cache_control", "private\u{0}, max-age=60"),
            ("cache_control", "private, max-age=60 \u{2013} no-transform"),
            ("surrogate_control", "no-store\n"),
            ("surrogate_control", "no-store\u{7f}"),
        ] {
            let mut policy = serde_json::json!({"ttl": 60, "shared": false,
                "cache_control": "private, max-age=60", "surrogate_control": "no-store"});
            policy[field] = serde_json::json!(value);
            let e = CachePolicies::with_overrides(Some(&serde_json::json!({ "mine": policy })))
                .expect_err(value);
            assert!(
                e.starts_with(&format!("policy \"mine\": {field} must be")),
                "{value:?}: {e}"
            );
        }
        let tabbed = serde_json::json!({"mine": {"ttl": 60, "shared": true,
            "cache_control": " public,\tmax-age=60 ", "surrogate_control": ""}});
        assert!(CachePolicies::with_overrides(Some(&tabbed)).is_ok());
    }

    #[test]
    fn only_answers_meant_for_any_requester_are_stored() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let plain = h(&[("content-type", "application/json"), ("etag", "\"1\"")]);
        for status in [200, 203, 204, 301, 404, 410] {
            assert!(storable(status, &plain, false), "{status}");
        }
        for status in [206, 302, 304, 400, 401, 403, 500, 502, 503] {
            assert!(!storable(status, &plain, false), "{status}");
        }
        // A 202 is the state of a request still being processed (RFC 9110 §15.3.3: "intentionally noncommittal"),
        // a 201 the outcome of one that made a resource (§15.3.2): neither is the target's representation. Stored,
        // an export or a variant answered 202 while it was being made was served as 202 for the policy's TTL once
        // it was ready — a year, told `immutable`, on `static-immutable`.
        for status in [201, 202] {
            assert!(!storable(status, &plain, false), "{status}");
            assert!(!storable(status, &plain, true), "{status} per user");
            assert_eq!(
                shared_fill_answer(status, &plain, &[]),
                FillAnswer::StatusOnly,
                "{status}"
            );
        }
        let refused: &[&[(&str, &str)]] = &[
            &[("set-cookie", "sid=a")],
            &[("clear-site-data", "\"cache\"")],
            &[("cache-control", "no-store")],
            &[("cache-control", "max-age=60, No-Store")],
            &[("cache-control", "private, max-age=60")],
            &[("cache-control", "private=\"set-cookie\"")],
            &[("vary", "*")],
            &[("vary", "Accept-Encoding, Accept-Language")],
            &[("vary", "Origin, Cookie")],
            &[("content-type", "Text/Event-Stream; charset=utf-8")],
            // What an origin tells CDNs alone holds for the edge too.
            &[
                ("cdn-cache-control", "no-store"),
                ("cache-control", "public, max-age=600"),
            ],
            &[("cloudflare-cdn-cache-control", "private")],
            &[("surrogate-control", "no-store")],
        ];
        for headers in refused {
            assert!(!storable(200, &h(headers), false), "{headers:?}");
        }
        // (headers, per user, stored, why)
        for (headers, per_user, stored, why) in [
            (
                ("cache-control", "private, max-age=60"),
                true,
                true,
                "private is fine per user",
            ),
            (
                ("vary", "Cookie"),
                true,
                false,
                "Vary still matters per user",
            ),
            // A per-user key holds the fill's `Authorization` (its digest): an answer by it is that key's alone.
            (
                ("vary", "Authorization, Accept-Encoding"),
                true,
                true,
                "Vary: Authorization is the key's own per user",
            ),
            (
                ("vary", "Authorization"),
                false,
                false,
                "a shared key holds no credentials",
            ),
        ] {
            assert_eq!(storable(200, &h(&[headers]), per_user), stored, "{why}");
        }
        assert!(storable(
            200,
            &h(&[
                ("vary", "accept-encoding"),
                ("cache-control", "public, max-age=60")
            ]),
            false
        ));
        assert!(
            storable(200, &h(&[("cache-control", "no-cache, max-age=0")]), false),
            "the policy sets the TTL"
        );
        assert!(
            storable(
                200,
                &h(&[("cache-control", "no-cache=\"Set-Cookie, no-store, Age\"")]),
                false
            ),
            "a directive named inside a quoted field list is none"
        );
        assert!(
            storable(200, &h(&[("access-control-allow-origin", " * ")]), false),
            "a grant to any site is the same for every site"
        );
        // The key holds the request's `Origin`: an answer by it, said or not, is the same for every request under it.
        for headers in [
            &[("vary", "Origin")][..],
            &[("access-control-allow-origin", "https://app.example")],
            &[("access-control-allow-origin", "null")],
        ] {
            assert!(storable(200, &h(headers), false), "{headers:?}");
        }
        assert!(
            storable(200, &h(&[("cdn-cache-control", "max-age=5")]), false),
            "a CDN TTL is the policy's to set"
        );
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_shared_fill_answer_is_for_anyone_status_only_or_personal() {
        let carried = ["accept", "accept-language", "origin", "user-agent"];
        let kind =
            |status, list: &[(&str, &str)]| shared_fill_answer(status, &pairs(list), &carried);
        assert_eq!(
            kind(200, &[("content-type", "text/html")]),
            FillAnswer::Anyone
        );
        assert_eq!(kind(404, &[]), FillAnswer::Anyone);
        assert_eq!(
            kind(308, &[("location", "/new")]),
            FillAnswer::Anyone,
            "permanent"
        );
        assert_eq!(
            kind(503, &[]),
            FillAnswer::Anyone,
            "an origin error is shared"
        );
        let balancer = kind(503, &[("set-cookie", "AWSALB=x")]);
        assert_eq!(
            balancer,
            FillAnswer::Anyone,
            "a balancer's cookie on an error"
        );
        assert_eq!(
            kind(200, &[("vary", "Accept-Language, Origin")]),
            FillAnswer::Anyone,
            "the fill carried them"
        );
        assert_eq!(
            kind(
                200,
                &[("access-control-allow-origin", "https://app.example")]
            ),
            FillAnswer::Anyone,
            "an echoed Origin is the fill's own: not stored, yet no visitor's either"
        );
        for status in [302, 307, 400, 401, 403, 406, 429, 451] {
            assert_eq!(
                kind(status, &[("retry-after", "5")]),
                FillAnswer::StatusOnly,
                "{status}"
            );
            let private = kind(status, &[("cache-control", "private")]);
            assert_eq!(private, FillAnswer::StatusOnly, "{status} private");
        }
        for cache_control in ["no-store", "no-cache, private"] {
            let outage = kind(503, &[("cache-control", cache_control)]);
            assert_eq!(outage, FillAnswer::Anyone, "an outage's {cache_control}");
        }
        for (status, list) in [
            (200, &[("set-cookie", "sid=NEW; Path=/")][..]),
            (200, &[("clear-site-data", "\"storage\"")]),
            (403, &[("vary", "Cookie")]),
            (200, &[("cache-control", "private")]),
            (200, &[("cache-control", "no-store")]),
            (200, &[("vary", "Cookie")]),
            (200, &[("vary", "*")]),
            (302, &[("set-cookie", "sid=NEW"), ("location", "/login")]),
        ] {
            assert_eq!(
                kind(status, list),
                FillAnswer::Personal,
                "{status} {list:?}"
            );
        }
    }

    #[test]
    fn conditional_requests_match_the_stored_validators() {
        let tagged = pairs(&[
            ("etag", "\"v1\""),
            ("last-modified", "Tue, 01 Dec 2026 04:00:00 GMT"),
        ]);
        let check = |status, inm: Option<&str>, ims: Option<&str>| {
            not_modified(status, &tagged, inm, ims, None)
        };
        assert!(check(200, Some("\"v1\""), None));
        assert!(
            check(200, Some("\"v0\", W/\"v1\""), None),
            "weak comparison, in a list"
        );
        assert!(check(200, Some("*"), None));
        assert!(!check(200, Some("\"v2\""), None));
        assert!(
            !check(200, Some("\"v2\""), Some("Tue, 01 Dec 2026 04:00:00 GMT")),
            "If-None-Match decides when sent"
        );
        assert!(check(200, None, Some("Tue, 01 Dec 2026 04:00:00 GMT")));
        assert!(!check(200, None, Some("Mon, 30 Nov 2026 04:00:00 GMT")));
        assert!(!check(200, None, Some("Tue, 01 Dec 2026 03:59:59 GMT")));
        assert!(!check(200, None, None));
        assert!(!check(404, Some("\"v1\""), None), "only a 200");
        assert!(!check(204, Some("\"v1\""), None), "only a 200");
        assert!(
            !not_modified(200, &[], Some("\"v1\""), None, None),
            "no ETag"
        );
        assert!(!not_modified(
            200,
            &[],
            None,
            Some("Tue, 01 Dec 2026 04:00:00 GMT"),
            None
        ));
    }

    #[test]
    fn if_modified_since_without_last_modified_compares_the_stored_date() {
        // RFC 9111 §4.3.2: a cache evaluating If-Modified-Since for a stored response without Last-Modified SHOULD
        // use its Date.
        let dated = pairs(&[("date", "Tue, 01 Dec 2026 04:00:00 GMT")]);
        let check = |ims: &str| not_modified(200, &dated, None, Some(ims), None);
        assert!(check("Tue, 01 Dec 2026 04:00:00 GMT"), "the same date");
        assert!(check("Wed, 02 Dec 2026 00:00:00 GMT"), "a day later");
        assert!(!check("Tue, 01 Dec 2026 03:59:59 GMT"), "a second earlier");
        assert!(!check("yesterday"), "not a date: ignored");
        // A Date that is no HTTP-date is no validator: never matched as sent.
        let odd = pairs(&[("date", "2026-12-01 04:00")]);
        assert!(!not_modified(
            200,
            &odd,
            None,
            Some("2026-12-01 04:00"),
            None
        ));
        // A stored copy: when it was stored (1796097600 s is Tue, 01 Dec 2026 04:00:00 GMT), not the Date the Cache
        // API gives it back with.
        let stored = |ms: u64, ims: &str| not_modified(200, &dated, None, Some(ims), Some(ms));
        assert!(stored(1_796_097_600_000, "Tue, 01 Dec 2026 04:00:00 GMT"));
        assert!(
            !stored(1_796_097_600_001, "Tue, 01 Dec 2026 04:00:00 GMT"),
            "stored within the second after"
        );
        assert!(stored(1_796_097_600_001, "Tue, 01 Dec 2026 04:00:01 GMT"));
        assert!(
            !stored(1_796_101_200_000, "Tue, 01 Dec 2026 04:00:00 GMT"),
            "stored after its Date"
        );
        // Last-Modified, when there is one, decides.
        let both = pairs(&[
            ("date", "Wed, 02 Dec 2026 00:00:00 GMT"),
            ("last-modified", "Tue, 01 Dec 2026 04:00:00 GMT"),
        ]);
        assert!(not_modified(
            200,
            &both,
            None,
            Some("Tue, 01 Dec 2026 05:00:00 GMT"),
            None
        ));
    }

    #[test]
    fn if_modified_since_compares_dates_not_spellings() {
        // RFC 9110 §13.1.3: 304 when the copy was not modified after the date given, in any HTTP-date format.
        let dated = pairs(&[("last-modified", "Tue, 01 Dec 2026 04:00:00 GMT")]);
        let check = |inm: Option<&str>, ims: &str| not_modified(200, &dated, inm, Some(ims), None);
        for (since, answered_304, why) in [
            ("Tue, 01 Dec 2026 04:00:00 GMT", true, "the same date"),
            ("Tue, 01 Dec 2026 04:00:01 GMT", true, "a second later"),
            ("Wed, 02 Dec 2026 00:00:00 GMT", true, "a day later"),
            ("Tue, 01 Dec 2026 03:59:59 GMT", false, "a second earlier"),
            ("Tuesday, 01-Dec-26 04:00:00 GMT", true, "rfc850-date"),
            ("Tue Dec  1 04:00:00 2026", true, "asctime-date"),
            ("Tue Dec  1 03:00:00 2026", false, "asctime-date, earlier"),
            ("  Tue, 01 Dec 2026 05:00:00 GMT ", true, "spaces around"),
            ("yesterday", false, "not a date: ignored"),
            ("1796083200", false, "seconds are no HTTP-date"),
            (
                "Tue, 01 Dec 2026 05:00:00 GMT, Tue, 01 Dec 2026 05:00:00 GMT",
                false,
                "two members: ignored",
            ),
            ("Tue, 01 Dec 2026 05:00:00 +0100", false, "not GMT"),
            ("Tue, 31 Nov 2026 05:00:00 GMT", false, "no such day"),
            ("", false, "empty"),
        ] {
            assert_eq!(check(None, since), answered_304, "{why}: {since}");
        }
        assert!(
            !check(Some("\"other\""), "Wed, 02 Dec 2026 00:00:00 GMT"),
            "ignored beside If-None-Match"
        );
        // An origin's Last-Modified that is no HTTP-date cannot be compared: sent back as given, it names the copy.
        let odd = pairs(&[("last-modified", "2026-12-01 04:00")]);
        assert!(not_modified(
            200,
            &odd,
            None,
            Some("2026-12-01 04:00"),
            None
        ));
        assert!(!not_modified(
            200,
            &odd,
            None,
            Some("Wed, 02 Dec 2026 00:00:00 GMT"),
            None
        ));
    }

    #[test]
    fn a_late_purge_read_keeps_a_purge_made_since_even_when_the_map_is_full() {
        // A read begun before this isolate purged the tag answers after it (a timed-out read finishing under
        // waitUntil): "never purged" must not take the purge back, however many tags the isolate holds.
        let (sync_ms, kept) = (60_000, 8);
        for others in [0, kept - 1, kept, 3 * kept] {
            let mut purges: PurgeTimes = (0..others)
                .map(|i| (format!("other{i}"), (None, 10_000)))
                .collect();
            purges.insert("t".to_owned(), (Some(10_500), 10_500));
            let at = keep_purge_read(&mut purges, "t".to_owned(), None, 10_000, sync_ms, kept);
            assert_eq!(at, Some(10_500), "{others} other tags");
            assert_eq!(
                purges.get("t").and_then(|(at, _)| *at),
                Some(10_500),
                "{others} other tags"
            );
            assert!(purges.len() <= kept, "{others} other tags: bounded");
        }
        // A newer purge read is kept over an older one, and a read of none over nothing known.
        let mut purges = PurgeTimes::new();
        assert_eq!(
            keep_purge_read(&mut purges, "t".into(), None, 1, sync_ms, kept),
            None
        );
        assert_eq!(
            keep_purge_read(&mut purges, "t".into(), Some(5), 2, sync_ms, kept),
            Some(5)
        );
        assert_eq!(
            keep_purge_read(&mut purges, "t".into(), Some(3), 3, sync_ms, kept),
            Some(5)
        );
    }

    #[test]
    fn a_purge_made_here_is_kept_within_the_bound_reads_keep() {
        // 4,096 tags read lately, then purges of new tags: the map stays bounded, and each purge is kept.
        let (sync_ms, kept) = (5_000, 64);
        let mut purges: PurgeTimes = (0..kept)
            .map(|i| (format!("read{i}"), (None, 10_000)))
            .collect();
        for i in 0..3 * kept {
            let at = 10_001 + i as u64;
            assert_eq!(
                keep_purge_made(&mut purges, format!("new{i}"), at, sync_ms, kept),
                Some(at)
            );
            assert!(purges.len() <= kept, "{i}: {} tags kept", purges.len());
            assert_eq!(purges.get(&format!("new{i}")), Some(&(Some(at), at)));
        }
        // A later purge of a tag read as purged is kept, not the read.
        let mut purges = PurgeTimes::new();
        keep_purge_read(&mut purges, "t".into(), Some(5), 6, sync_ms, kept);
        assert_eq!(
            keep_purge_made(&mut purges, "t".into(), 9, sync_ms, kept),
            Some(9)
        );
    }

    #[test]
    fn an_answer_handed_to_another_request_adds_its_wait_to_the_origins_age() {
        assert_eq!(handed_age_ms(None, 1_500), 1_500);
        assert_eq!(handed_age_ms(Some("100"), 1_500), 101_500);
        assert_eq!(handed_age_ms(Some(" 100 "), 0), 100_000);
        // Not an Age (RFC 9111 §5.1): ignored, never a negative or a fraction.
        for invalid in ["", "-5", "1.5", "x", "1e3"] {
            assert_eq!(handed_age_ms(Some(invalid), 7), 7, "{invalid:?}");
        }
        assert_eq!(handed_age_ms(Some("99999999999999999999999"), 7), u64::MAX);
    }

    #[test]
    fn a_purge_mark_that_is_no_time_cannot_be_read_rather_than_never_purged() {
        assert_eq!(purge_time(None), Ok(None));
        assert_eq!(
            purge_time(Some("1764740000000")),
            Ok(Some(1_764_740_000_000))
        );
        for garbled in [
            "x",
            "",
            "-1",
            "1.5e12",
            " 17",
            "17 ",
            "99999999999999999999999",
        ] {
            let read = purge_time(Some(garbled));
            assert!(read.is_err(), "{garbled:?}: {read:?}");
        }
        // Quoted in the log line, cut short.
        let long = "é".repeat(100);
        let detail = purge_time(Some(&long)).unwrap_err();
        assert!(detail.len() < 120, "{detail}");
    }

    #[test]
    fn each_purge_mark_is_dated_by_its_own_write_and_a_limited_one_by_its_retry() {
        use std::cell::{Cell, RefCell};
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        // A clock that moves 10 ms each time it is read (each KV put takes time), and a KV refusing the tag "busy"
        // once for its per-key limit and "broken" always.
        let time = Cell::new(1_000u64);
        let clock = || {
            let now = time.get();
            time.set(now + 10);
            now
        };
        let written = RefCell::new(Vec::new());
        let refused = Cell::new(false);
        let write = |tag: String, at: u64| {
            let outcome = match tag.as_str() {
                "busy" if !refused.replace(true) => {
                    Err("KV PUT failed: 429 Too Many Requests".to_owned())
                }
                "broken" => Err("KV PUT failed: 500".to_owned()),
                _ => {
                    written.borrow_mut().push((tag, at));
                    Ok(())
                }
            };
            std::future::ready(outcome)
        };
        let waited = Cell::new(false);
        let told = RefCell::new(Vec::new());
        let marks = ["a", "busy", "b", "broken", "c"].map(String::from).to_vec();
        let mut writing = std::pin::pin!(write_marks(
            marks,
            clock,
            write,
            || {
                waited.set(true);
                std::future::ready(())
            },
            |tag: &str, at| told.borrow_mut().push((tag.to_owned(), at)),
        ));
        let Poll::Ready(failed) = writing
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("every write was ready");
        };
        assert!(waited.get(), "the limited mark waited for the second");
        assert_eq!(
            failed,
            vec![("broken".to_owned(), "KV PUT failed: 500".to_owned())]
        );
        let written = written.borrow().clone();
        let names: Vec<&str> = written.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "busy"]);
        // Each dated when it was written: later writes say later times (before, every first write said the
        // request's arrival, and a mark landing late took back a later purge's).
        for pair in written.windows(2) {
            assert!(pair[0].1 < pair[1].1, "{pair:?}");
        }
        assert_eq!(
            *told.borrow(),
            written,
            "the isolate told each mark as written"
        );
    }

    #[test]
    fn a_shared_policy_behind_sign_in_is_told_private_and_by_credentials() {
        let policies = CachePolicies::default();
        for (name, told) in [
            (
                "api-public",
                "private, max-age=60, stale-while-revalidate=30, stale-if-error=300",
            ),
            ("static-immutable", "private, max-age=31536000, immutable"),
            ("html-dynamic", "private, max-age=0, must-revalidate"),
        ] {
            let policy = policies.get(name).expect("built in").behind_sign_in();
            assert!(
                policy.shared,
                "{name}: copies still shared among the admitted"
            );
            for status in [200, 304] {
                assert_eq!(
                    policy.client_headers(status),
                    (told.to_owned(), "no-store".to_owned()),
                    "{name} {status}"
                );
            }
            assert_eq!(
                policy.client_headers(404),
                ("private, no-cache".to_owned(), "no-store".to_owned())
            );
            assert_eq!(
                policy.client_vary(),
                "Accept-Encoding, Origin, Authorization, Cookie"
            );
        }
        let custom = CachePolicy {
            cache_control: "s-maxage=600, PUBLIC".into(),
            ..policies.get("api-public").expect("built in").clone()
        };
        assert_eq!(custom.behind_sign_in().cache_control, "private");
        let quoted = CachePolicy {
            cache_control: "public, no-cache=\"Set-Cookie, public\"".into(),
            ..custom
        };
        assert_eq!(
            quoted.behind_sign_in().cache_control,
            "private, no-cache=\"Set-Cookie, public\"",
            "a quoted argument is one member"
        );
        assert_eq!(
            policies.for_route("api-public", true),
            Some(
                &policies
                    .get("api-public")
                    .expect("built in")
                    .behind_sign_in()
            )
        );
        assert_eq!(
            policies.for_route("api-public", false),
            policies.get("api-public")
        );
        let personal = policies.get("api-personalized").expect("built in");
        assert_eq!(&personal.behind_sign_in(), personal, "already per user");
    }

    #[test]
    fn a_purge_names_the_tags_it_could_not_mark_and_asks_for_them_again() {
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let failed = |requested: &[&str], failed: &[&str]| {
            let error = purge_answer(&tags(requested), &tags(failed), 7).expect_err("a 503");
            let body: serde_json::Value = serde_json::from_str(&error.body()).expect("JSON");
            (error, body)
        };
        let body = purge_answer(&tags(&["A", "b"]), &[], 7).expect("a 200");
        assert_eq!(body, serde_json::json!({"purged": ["A", "b"], "at_ms": 7}));
        let (error, body) = failed(&["a", "b", "c"], &["b"]);
        assert_eq!((error.status(), error.code()), (503, "purge_incomplete"));
        assert_eq!(error.headers(), [("retry-after", "1".to_owned())]);
        assert_eq!(body["purged"], serde_json::json!(["a", "c"]));
        assert_eq!(body["failed"], serde_json::json!(["b"]));
        assert_eq!(body["error"]["code"], "purge_incomplete");
        assert_eq!(body["at_ms"], 7);
        // As the 200 names them: the tags as listed, in the request's order, each spelling of a failed mark failed.
        let (_, body) = failed(
            &["Product-42", "news", "product-42", "Sale"],
            &["product-42"],
        );
        assert_eq!(body["purged"], serde_json::json!(["news", "Sale"]));
        assert_eq!(
            body["failed"],
            serde_json::json!(["Product-42", "product-42"])
        );
        assert_eq!(
            body["error"]["message"],
            "2 of 4 tags could not be marked purged; send them again"
        );
        // Workers KV's per-key limit (the binding's error text) is retried; other refusals are not.
        assert!(kv_write_limited("KV PUT failed: 429 Too Many Requests"));
        assert!(!kv_write_limited(
            "KV PUT failed: 500 Internal Server Error"
        ));
        assert!(!kv_write_limited("Error: network connection lost"));
        // A 429 that is no status: within a reference id or a length, not the per-key limit (no second's wait).
        assert!(!kv_write_limited(
            "internal error; reference = 4z429kq1vu0fmsbtq"
        ));
        assert!(!kv_write_limited(
            "KV PUT failed: 413 Value length of 42900000 exceeds limit"
        ));
        // Nor the digits of a decimal on either side of its point (a size or a time in the text).
        for decimal in [
            "KV PUT failed: 413 value of 25.429 MiB exceeds limit",
            "KV PUT failed: 500 after 429.5 ms",
        ] {
            assert!(!kv_write_limited(decimal), "{decimal}");
        }
        assert!(kv_write_limited("KV PUT failed (429)."));
    }

    #[test]
    fn a_failed_refresh_holds_off_the_next_for_a_while_and_a_passed_key_is_not_refreshed() {
        let mut holds = KeyHolds::default();
        let id = KeyId::of("k");
        assert!(refresh_due(false, holds.held(&id, 1_000)));
        const HOLD_MS: u64 = 5_000;
        holds.hold(id, 1_000, HOLD_MS);
        assert!(!refresh_due(false, holds.held(&id, 1_000)));
        assert!(!refresh_due(false, holds.held(&id, 1_000 + HOLD_MS - 1)));
        assert!(refresh_due(false, holds.held(&id, 1_000 + HOLD_MS)));
        // A hold of 0 (`GATEWAY_REFRESH_HOLD_MS` 0) holds nothing off.
        let other = KeyId::of("zero");
        holds.hold(other, 1_000, 0);
        assert!(refresh_due(false, holds.held(&other, 1_000)));
        assert!(refresh_due(false, holds.held(&KeyId::of("other"), 1_000)));
        assert!(!refresh_due(true, false), "a passed key is not refreshed");
        // A fill of the key the origin answered ends its hold.
        let lifted = KeyId::of("lifted");
        holds.hold(lifted, 1_000, HOLD_MS);
        holds.lift(&lifted);
        assert!(refresh_due(false, holds.held(&lifted, 1_001)));
        // Bounded: ended holds go first, then the one ending soonest.
        for i in 0..2 * MAX_KEYS_HELD {
            holds.hold(KeyId::of(&format!("k{i}")), 2_000, HOLD_MS);
            assert!(holds.len() <= MAX_KEYS_HELD, "{i}");
        }
    }

    #[test]
    fn a_flood_of_new_holds_drops_the_ended_then_the_soonest_ending_never_every_live_hold() {
        const HOLD_MS: u64 = 5_000;
        let mut holds = KeyHolds::default();
        // A full map of live holds, each a millisecond after the one before: key i ends at HOLD_MS + i.
        for i in 0..MAX_KEYS_HELD as u64 {
            holds.hold(KeyId::of(&format!("live{i}")), i, HOLD_MS);
        }
        assert_eq!(holds.len(), MAX_KEYS_HELD);
        // One more key: the hold ending soonest makes room; every other stays. Before, the map was cleared whole, and
        // an attacker making new keys held (each failed or passed once) lifted every live hold at once.
        let now = MAX_KEYS_HELD as u64;
        holds.hold(KeyId::of("flood0"), now, HOLD_MS);
        assert_eq!(holds.len(), MAX_KEYS_HELD);
        assert!(
            !holds.held(&KeyId::of("live0"), now),
            "the soonest-ending one dropped"
        );
        for i in 1..MAX_KEYS_HELD as u64 {
            assert!(holds.held(&KeyId::of(&format!("live{i}")), now), "live{i}");
        }
        assert!(holds.held(&KeyId::of("flood0"), now));
        // A flood of 100 more drops the 100 ending soonest after it, and no other.
        for j in 1..=100 {
            holds.hold(KeyId::of(&format!("flood{j}")), now, HOLD_MS);
        }
        assert_eq!(holds.len(), MAX_KEYS_HELD);
        assert!(!holds.held(&KeyId::of("live100"), now));
        assert!(holds.held(&KeyId::of("live101"), now));
        assert!(holds.held(&KeyId::of(&format!("live{}", MAX_KEYS_HELD - 1)), now));
        // Ended holds go before any live one: at a time when the first 1,000 have ended, 1,000 new keys take their
        // room, and a key ending later than all of them is kept.
        let later = HOLD_MS + 1_100;
        for j in 0..1_000 {
            holds.hold(KeyId::of(&format!("after{j}")), later, HOLD_MS);
        }
        assert_eq!(holds.len(), MAX_KEYS_HELD);
        for i in 1_101..MAX_KEYS_HELD as u64 {
            assert!(
                holds.held(&KeyId::of(&format!("live{i}")), later),
                "live{i}"
            );
        }
        assert!(holds.held(&KeyId::of("flood100"), later));
        assert!(holds.held(&KeyId::of("after999"), later));
        // Held again, a key's hold moves: its old end is not left to drop it early, nor does it count twice.
        let again = KeyId::of("live2000");
        holds.hold(again, later, 10 * HOLD_MS);
        assert!(holds.held(&again, later + 9 * HOLD_MS));
        holds.lift(&again);
        assert!(!holds.held(&again, later));
        assert_eq!(holds.len(), holds.order.len());
    }

    #[test]
    fn key_holds_by_key_and_by_end_always_agree() {
        // The two collections name the same holds after every step: a key held again (its old end leaves the
        // order), lifted (held or not), holds with equal ends (told apart by key), ends saturated at u64::MAX, a
        // hold made at u64::MAX itself (everything ended), and eviction when full.
        fn agree(holds: &KeyHolds) {
            assert_eq!(holds.until.len(), holds.order.len());
            for (id, until) in &holds.until {
                assert!(holds.order.contains(&(*until, *id)), "{id:?} at {until}");
            }
        }
        let mut holds = KeyHolds::default();
        let key = |i: u64| KeyId::of(&format!("k{i}"));
        // A small generator, so the steps are the same each run.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for step in 0..8_000u64 {
            let id = key(next() % 6_000);
            match next() % 6 {
                0 => holds.lift(&id),
                1 => holds.hold(id, 1_000, u64::MAX),
                2 => holds.hold(id, u64::MAX - 1, 5),
                // Equal ends for many keys.
                3 => holds.hold(id, 2_000, 1_000),
                _ => holds.hold(id, step, next() % 10_000),
            }
            assert_eq!(holds.until.len(), holds.order.len(), "{step}");
            if step % 64 == 0 {
                agree(&holds);
            }
            assert!(holds.len() <= MAX_KEYS_HELD, "{step}");
        }
        // Held again at once, and lifted twice.
        let id = key(1);
        holds.hold(id, 10, 100);
        holds.hold(id, 10, 100);
        agree(&holds);
        assert!(holds.held(&id, 109) && !holds.held(&id, 110));
        holds.lift(&id);
        holds.lift(&id);
        agree(&holds);
        assert!(!holds.held(&id, 10));
        // A hold made at the end of time: every other has ended, and goes.
        holds.hold(key(2), u64::MAX, 1);
        agree(&holds);
        assert_eq!(holds.len(), 1);
        assert!(!holds.held(&key(2), u64::MAX));
        // Full, with no hold ended (each made at 0 for a second or more): a new key drops the one ending soonest. The
        // steps above never fill it (a hold made at u64::MAX - 1, every sixth step, drops all the others: at most
        // ~1,500 are held), so these steps are what the eviction when full is checked by.
        let mut holds = KeyHolds::default();
        let mut full_steps = 0;
        for step in 0..3 * MAX_KEYS_HELD as u64 {
            let id = key(next() % (2 * MAX_KEYS_HELD as u64));
            match next() % 8 {
                0 => holds.lift(&id),
                // Equal ends for many keys.
                1 => holds.hold(id, 0, 5_000),
                _ => holds.hold(id, 0, 1_000 + next() % 100_000),
            }
            assert_eq!(holds.until.len(), holds.order.len(), "full {step}");
            assert!(holds.len() <= MAX_KEYS_HELD, "full {step}");
            if holds.len() == MAX_KEYS_HELD {
                full_steps += 1;
            }
            if step % 64 == 0 {
                agree(&holds);
            }
        }
        assert!(full_steps > MAX_KEYS_HELD, "full for {full_steps} steps");
        for i in 0..MAX_KEYS_HELD as u64 {
            if holds.len() == MAX_KEYS_HELD {
                break;
            }
            holds.hold(key(100_000 + i), 0, 200_000);
        }
        let &(_, soonest) = holds.order.first().expect("full");
        let others: Vec<KeyId> = holds
            .until
            .keys()
            .copied()
            .filter(|k| *k != soonest)
            .collect();
        holds.hold(key(1_000_000), 0, 1_000);
        agree(&holds);
        assert_eq!(holds.len(), MAX_KEYS_HELD);
        assert!(!holds.held(&soonest, 0), "the hold ending soonest goes");
        assert!(others.iter().all(|k| holds.held(k, 0)), "and it alone");
        assert!(holds.held(&key(1_000_000), 0));
    }

    #[test]
    fn aged_key_holds_end_as_if_that_long_had_passed_and_still_agree() {
        let key = |i: u64| KeyId::of(&format!("aged{i}"));
        let mut holds = KeyHolds::default();
        holds.hold(key(1), 1_000, 5_000);
        holds.hold(key(2), 1_000, 120_000);
        holds.hold(key(3), 1_000, 1);
        holds.age(5_000);
        // At 1_000 still: the 5 s hold has ended as if 5 s had passed, the 120 s one has not.
        assert!(!holds.held(&key(1), 1_000));
        assert!(holds.held(&key(2), 1_000));
        assert!(!holds.held(&key(3), 1_000));
        assert!(holds.held(&key(2), 115_999) && !holds.held(&key(2), 116_000));
        // Past the start of the clock: ends saturate at 0, tie, and both collections still name the same holds.
        holds.age(u64::MAX);
        assert!(!holds.held(&key(2), 0));
        assert_eq!(holds.until.len(), holds.order.len());
        for (id, until) in &holds.until {
            assert_eq!(*until, 0);
            assert!(holds.order.contains(&(0, *id)));
        }
        // A full set drops the aged (ended) holds first.
        for i in 0..MAX_KEYS_HELD as u64 {
            holds.hold(key(100 + i), 10, 1_000);
        }
        holds.age(1_000);
        holds.hold(key(1), 10, 1_000);
        assert_eq!(holds.len(), 1);
        assert!(holds.held(&key(1), 10));
    }

    #[test]
    fn a_refresh_answered_429_holds_for_its_retry_after_within_bounds_and_lifts_nothing() {
        const HOLD: u64 = 5_000;
        // ms since the epoch.
        let now = 1_764_000_000_000;
        // 5xx or no answer: the configured hold (a 503's Retry-After aside: below); an answer the origin gave, none.
        for status in [500, 502, 504] {
            assert_eq!(
                refresh_hold_ms(Some(status), Some("120"), now, HOLD),
                Some(HOLD),
                "{status}"
            );
        }
        assert_eq!(refresh_hold_ms(None, None, now, HOLD), Some(HOLD));
        for status in [200, 304, 404, 410, 403] {
            assert_eq!(
                refresh_hold_ms(Some(status), Some("120"), now, HOLD),
                None,
                "{status}"
            );
        }
        // 429: its Retry-After when longer than the hold, delta-seconds or an HTTP-date.
        assert_eq!(
            refresh_hold_ms(Some(429), Some("120"), now, HOLD),
            Some(120_000)
        );
        assert_eq!(
            refresh_hold_ms(Some(429), Some(" 60 "), now, HOLD),
            Some(60_000)
        );
        let date = "Mon, 24 Nov 2025 16:02:00 GMT"; // 1_764_000_120 s
        assert_eq!(
            refresh_hold_ms(Some(429), Some(date), now, HOLD),
            Some(120_000)
        );
        // Shorter than the configured hold, past, absent or unreadable: the configured hold.
        for said in [
            Some("1"),
            Some("0"),
            Some("Mon, 24 Nov 2025 15:00:00 GMT"),
            None,
            Some("soon"),
            Some("-5"),
            Some("1.5"),
        ] {
            assert_eq!(
                refresh_hold_ms(Some(429), said, now, HOLD),
                Some(HOLD),
                "{said:?}"
            );
        }
        // Bounded: at most MAX_RETRY_AFTER_HOLD_MS, however long it asks.
        for said in [
            "86400",
            "99999999999999999999999",
            "Fri, 01 Jan 2100 00:00:00 GMT",
        ] {
            assert_eq!(
                refresh_hold_ms(Some(429), Some(said), now, HOLD),
                Some(MAX_RETRY_AFTER_HOLD_MS),
                "{said}"
            );
        }
        // `GATEWAY_REFRESH_HOLD_MS` 0 holds nothing, a 429 either.
        assert_eq!(refresh_hold_ms(Some(429), Some("120"), now, 0), None);
        assert_eq!(refresh_hold_ms(Some(503), None, now, 0), None);
        // A fill answered 429 (or 5xx, or not at all) does not lift a hold; any other answer does.
        for (status, lifts) in [
            (Some(200), true),
            (Some(404), true),
            (Some(304), true),
            (Some(429), false),
            (Some(503), false),
            (Some(500), false),
            (None, false),
        ] {
            assert_eq!(lifts_refresh_hold(status), lifts, "{status:?}");
        }
    }

    #[test]
    fn a_refresh_answered_503_holds_for_its_retry_after_as_a_429_does() {
        // RFC 9110 §10.2.3: a 503's Retry-After is how long the service expects to be unavailable. Before, it was
        // read for a 429 alone, and a 503 saying `Retry-After: 120` was asked again every GATEWAY_REFRESH_HOLD_MS.
        const HOLD: u64 = 5_000;
        let now = 1_764_000_000_000;
        for (said, held) in [
            (Some("120"), 120_000),
            (Some("Mon, 24 Nov 2025 16:02:00 GMT"), 120_000),
            (Some("Monday, 24-Nov-25 16:02:00 GMT"), 120_000),
            (Some("Mon Nov 24 16:02:00 2025"), 120_000),
            (Some("86400"), MAX_RETRY_AFTER_HOLD_MS),
            (Some("1"), HOLD),
            (Some("soon"), HOLD),
            (None, HOLD),
        ] {
            assert_eq!(
                refresh_hold_ms(Some(503), said, now, HOLD),
                Some(held),
                "503 {said:?}"
            );
            assert_eq!(
                refresh_hold_ms(Some(429), said, now, HOLD),
                Some(held),
                "429 {said:?}"
            );
        }
        assert_eq!(refresh_hold_ms(Some(503), Some("120"), now, 0), None);
        assert!(!lifts_refresh_hold(Some(503)));
    }

    #[test]
    fn an_answer_whose_cookie_domain_was_judged_for_one_host_never_reaches_another() {
        // A cookie's Domain is judged against the host the client asked (LocationMap::client_set_cookie): an
        // answer setting one is stored for no one, and any other answer a fill hands on stays within its key,
        // which keeps hosts (and ports) apart.
        let public = CachePolicies::default();
        let public = public.get("api-public").expect("policy");
        let key = |url| cache_key("r", RequestUrl::split(url), public, None, None, None);
        let api = key("https://api.example.com/x");
        assert!(api.is_some());
        for other in [
            "https://api.example.org/x",
            "https://app.internal/x",
            "https://api.example.com:8443/x",
        ] {
            assert_ne!(api, key(other), "{other}");
        }
        let cookie = [(
            "set-cookie".to_owned(),
            "sid=1; Domain=example.com".to_owned(),
        )];
        assert!(!storable(200, &cookie, false));
        assert!(!storable(200, &cookie, true));
        assert_eq!(shared_fill_answer(200, &cookie, &[]), FillAnswer::Personal);
    }

    #[test]
    fn keys_sort_the_query_and_separate_users_unless_shared() {
        let p = CachePolicies::default();
        let public = p.get("api-public").expect("policy");
        let personal = p.get("api-personalized").expect("policy");
        let at = |query| RequestUrl::split(query);
        let user = |sub: &str, permissions: &[&str], email: Option<&str>| Verified {
            sub: sub.to_owned(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            email: email.map(str::to_owned),
        };
        let (u1, u2) = (user("u1", &["read"], None), user("u2", &["read"], None));
        let a = cache_key(
            "r",
            at("https://gw.example/x?b=2&a=1"),
            public,
            Some(&u1),
            None,
            None,
        );
        let b = cache_key(
            "r",
            at("https://gw.example/x?a=1&b=2"),
            public,
            Some(&u2),
            None,
            None,
        );
        assert_eq!(
            a, b,
            "query order and user do not matter for a shared policy"
        );
        assert_eq!(
            a.as_deref(),
            Some("https://gateway-cache.internal/r/https/gw%2Eexample/x?a=1&b=2")
        );
        assert_ne!(
            cache_key(
                "r",
                at("https://gw.example/x?tag=a&tag=b"),
                public,
                None,
                None,
                None
            ),
            cache_key(
                "r",
                at("https://gw.example/x?tag=b&tag=a"),
                public,
                None,
                None,
                None
            ),
            "a repeated name keeps the order of its values"
        );
        // Spellings of one name (as some origin decodes it) are one name: their values keep their order too.
        for (one, other) in [
            ("?t=1&cb=good&%63b=evil", "?t=1&%63b=evil&cb=good"),
            ("?a+b=1&a%20b=2", "?a%20b=2&a+b=1"),
            ("?a+b=good&a%2Bb=evil", "?a%2Bb=evil&a+b=good"),
            ("?a.b=good&a_b=evil", "?a_b=evil&a.b=good"),
            ("?cb=good&CB=evil", "?CB=evil&cb=good"),
            ("?a=1;cb=evil&cb=good", "?cb=good&a=1;cb=evil"),
            ("?a=x&a[]=y", "?a[]=y&a=x"),
            ("?%20a=evil&a=good", "?a=good&%20a=evil"),
            ("?a%00x=evil&a=good", "?a=good&a%00x=evil"),
            ("?a[=evil&a_=good", "?a_=good&a[=evil"),
            ("?%C3%A9=good&%C3%89=evil", "?%C3%89=evil&%C3%A9=good"),
            // Non-ASCII letters that case-fold to ASCII ones (long s, Kelvin sign, dotted and dotless i).
            ("?sort=good&%C5%BFort=evil", "?%C5%BFort=evil&sort=good"),
            (
                "?kind=good&%E2%84%AAind=evil",
                "?%E2%84%AAind=evil&kind=good",
            ),
            ("?id=good&%C4%B0d=evil", "?%C4%B0d=evil&id=good"),
            ("?id=good&%C4%B1d=evil", "?%C4%B1d=evil&id=good"),
        ] {
            let (one_url, other_url) = (
                format!("https://gw.example/x{one}"),
                format!("https://gw.example/x{other}"),
            );
            assert_ne!(
                cache_key("r", RequestUrl::split(&one_url), public, None, None, None),
                cache_key("r", RequestUrl::split(&other_url), public, None, None, None),
                "{one} {other}"
            );
        }
        assert_eq!(
            cache_key(
                "r",
                at("https://gw.example/x?z=1&tag=b&a&tag=a"),
                public,
                None,
                None,
                None
            )
            .as_deref(),
            Some("https://gateway-cache.internal/r/https/gw%2Eexample/x?a&tag=b&tag=a&z=1")
        );
        for (one, other, why) in [
            ("https://gw.example/x", "https://gw.example/x?", "a bare ?"),
            ("http://gw.example/x", "https://gw.example/x", "the scheme"),
            ("https://gw.example/x", "https://shop.example/x", "the host"),
            (
                "https://gw.example/x",
                "https://gw.example:8443/x",
                "the port",
            ),
        ] {
            assert_ne!(
                cache_key("r", at(one), public, None, None, None),
                cache_key("r", at(other), public, None, None, None),
                "{why} the origin is told separates entries"
            );
        }
        assert_ne!(
            cache_key(
                "r",
                at("https://gw.example/x"),
                personal,
                Some(&u1),
                None,
                None
            ),
            cache_key(
                "r",
                at("https://gw.example/x?"),
                personal,
                Some(&u1),
                None,
                None
            ),
            "a bare ? for one user"
        );
        let url = at("https://gw.example/x?a=1");
        assert_ne!(
            cache_key("r", url, personal, Some(&u1), None, None),
            cache_key("r", url, personal, Some(&u2), None, None),
            "per-user policy never shares across users"
        );
        assert_ne!(
            cache_key(
                "r",
                url,
                personal,
                Some(&user("u1", &["read", "admin"], None)),
                None,
                None
            ),
            cache_key("r", url, personal, Some(&u1), None, None),
            "nor across the permissions the origin is told"
        );
        assert_ne!(
            cache_key(
                "r",
                url,
                personal,
                Some(&user("u1", &["read"], Some("a@x"))),
                None,
                None
            ),
            cache_key("r", url, personal, Some(&u1), None, None),
            "nor across the email the origin is told"
        );
        assert_eq!(
            cache_key("r", url, personal, None, None, None),
            None,
            "anonymous is not cached per user"
        );
        let with = |authorization| cache_key("r", url, personal, Some(&u1), authorization, None);
        assert_ne!(
            with(Some("Bearer scope-read")),
            with(Some("Bearer scope-all")),
            "nor across the credentials a per-user fill carries (claims beyond X-User-*)"
        );
        assert_ne!(with(Some("Bearer t")), with(None));
        assert_eq!(with(Some("Bearer t")), with(Some("Bearer t")));
        assert_eq!(
            cache_key("r", url, public, None, Some("Bearer t"), None),
            cache_key("r", url, public, None, None, None),
            "a shared fill carries no credentials, so they are not in its key"
        );
        assert_ne!(
            cache_key("r1", url, public, None, None, None),
            cache_key("r2", url, public, None, None, None),
            "routes do not share entries"
        );
        let site = |origin| cache_key("r", url, public, None, None, origin);
        assert_ne!(
            site(Some("https://a.example")),
            site(None),
            "a request from a site does not share the entry of one from none"
        );
        assert_ne!(
            site(Some("https://a.example")),
            site(Some("https://b.example"))
        );
        assert_eq!(
            site(None),
            cache_key("r", url, public, None, None, None),
            "without an Origin the key is as it was"
        );
        for spelled in [
            "https://gw.example/x?a=1&~=https%3A%2F%2Fa.example",
            "https://gw.example/x?a=1&__origin=https%3A%2F%2Fa.example",
            "https://gw.example/x?__origin=https%3A%2F%2Fa.example&a=1",
        ] {
            assert_ne!(
                cache_key("r", at(spelled), public, None, None, None),
                site(Some("https://a.example")),
                "no query spells a site's key"
            );
        }
        assert_ne!(
            site(Some("https://a.example")),
            site(Some("https://A.example")),
            "as sent: an origin may answer the spellings apart"
        );
        let long = ".".repeat(16 * 1024);
        let (short_key, long_key) = (
            site(Some("https://a.example")).unwrap_or_default(),
            site(Some(long.as_str())).unwrap_or_default(),
        );
        assert_eq!(
            long_key.len(),
            short_key.len(),
            "a key's length does not grow with the Origin a client sends (keys are held in memory)"
        );
        assert_ne!(
            cache_key(
                "r",
                url,
                personal,
                Some(&u1),
                None,
                Some("https://a.example")
            ),
            cache_key("r", url, personal, Some(&u1), None, None),
            "per user too"
        );
    }

    #[test]
    fn passed_keys_are_held_by_digest_so_long_urls_cannot_grow_an_isolate() {
        let mut passes = KeyHolds::default();
        // 5,000 distinct keys of 16 KiB URLs: 80 MiB of text, had the keys been held as they are.
        let long = |i: usize| {
            format!(
                "https://gateway-cache.internal/r/https/h/x?{i}&q={}",
                "a".repeat(16 * 1024)
            )
        };
        for i in 0..5_000 {
            passes.hold(KeyId::of(&long(i)), 1_000, PASS_MS);
            assert!(passes.len() <= MAX_KEYS_HELD, "{i}");
        }
        assert!(
            passes.held_bytes() <= MAX_KEYS_HELD * 80,
            "{} bytes",
            passes.held_bytes()
        );
        // Behaviour as before: the last key passed for PASS_MS, another key (one byte apart) not, and expiry.
        assert!(passes.held(&KeyId::of(&long(4_999)), 1_000 + PASS_MS - 1));
        assert!(!passes.held(&KeyId::of(&long(4_999)), 1_000 + PASS_MS));
        assert!(!passes.held(&KeyId::of(&format!("{}b", long(4_999))), 1_000));
        // Expired keys go first when the map is full: a live key stays.
        let mut passes = KeyHolds::default();
        for i in 0..MAX_KEYS_HELD {
            passes.hold(KeyId::of(&format!("old{i}")), 0, PASS_MS);
        }
        passes.hold(KeyId::of("live"), 10 * PASS_MS, PASS_MS);
        passes.hold(KeyId::of("next"), 10 * PASS_MS, PASS_MS);
        assert_eq!(passes.len(), 2, "the expired ones dropped");
        assert!(
            passes.held(&KeyId::of("live"), 10 * PASS_MS)
                && passes.held(&KeyId::of("next"), 10 * PASS_MS)
        );
        // The fills in progress are held by the same digest: equal keys meet, others do not, and none is long.
        assert_eq!(
            KeyId::of(&long(1)).memory_key(),
            KeyId::of(&long(1)).memory_key()
        );
        assert_ne!(
            KeyId::of(&long(1)).memory_key(),
            KeyId::of(&long(2)).memory_key()
        );
        assert_eq!(KeyId::of(&long(1)).memory_key().len(), 64);
    }

    #[test]
    fn a_fill_is_stored_with_the_policys_jittered_ttl_and_stale_windows() {
        let p = CachePolicies::default();
        let policy = p.get("api-public").expect("policy");
        let tags = vec!["route:r".to_owned()];
        let low = StoredMeta::for_fill(policy, 200, 1_000, [0, 0], tags.clone());
        let high = StoredMeta::for_fill(policy, 200, 1_000, [255, 255], tags.clone());
        assert_eq!(low.ttl_ms, policy.ttl * 900, "-10%");
        assert_eq!(high.ttl_ms, policy.ttl * 1100, "+10%");
        assert_eq!(low.stored_at_ms, 1_000);
        assert_eq!(low.swr_ms, policy.stale_while_revalidate * 1000);
        assert_eq!(low.sie_ms, policy.stale_if_error * 1000);
        assert_eq!(low.tags, tags);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spans_the_range() {
        let mut seen_low = false;
        let mut seen_high = false;
        for r in 0..=u16::MAX {
            let ttl = jittered_ttl_ms(60, r.to_le_bytes());
            assert!((54_000..=66_000).contains(&ttl), "{r} gives {ttl}");
            seen_low |= ttl < 55_000;
            seen_high |= ttl > 65_000;
        }
        assert!(seen_low && seen_high, "the whole ±10% range is used");
    }

    #[test]
    fn a_per_user_answer_tells_browsers_it_varies_by_the_credentials_its_key_holds() {
        let p = CachePolicies::default();
        let personal = p.get("api-personalized").expect("policy");
        assert_eq!(
            personal.client_vary(),
            "Accept-Encoding, Origin, Authorization, Cookie"
        );
        for shared in ["api-public", "static-immutable", "html-dynamic"] {
            let policy = p.get(shared).expect("policy");
            assert_eq!(
                policy.client_vary(),
                "Accept-Encoding, Origin",
                "{shared}: one answer for every requester"
            );
        }
    }

    #[test]
    fn redirects_and_absences_are_kept_briefly_and_never_told_immutable() {
        let p = CachePolicies::default();
        // A per-user policy's stay private, and no CDN keeps them.
        let personal = p.get("api-personalized").expect("policy");
        assert_eq!(
            personal.client_headers(301),
            ("private, no-cache".to_owned(), "no-store".to_owned())
        );
        let api = p.get("api-public").expect("policy");
        let stale = StoredMeta::for_fill(api, 404, 0, [128, 0], Vec::new());
        assert!(
            stale.sie_ms <= 60_000 && stale.swr_ms <= 30_000,
            "stale windows capped by the negative ttl: {} {}",
            stale.sie_ms,
            stale.swr_ms
        );
        let immutable = p.get("static-immutable").expect("policy");
        assert_eq!(immutable.ttl_for(200), 31_536_000);
        for status in [301, 308, 404, 410] {
            assert_eq!(immutable.ttl_for(status), 180, "{status}");
            assert_eq!(
                immutable.client_headers(status),
                ("no-cache".to_owned(), "max-age=180".to_owned()),
                "{status}"
            );
        }
        assert_eq!(immutable.client_headers(304).0, immutable.cache_control);
        // Never longer than the policy's own TTL, and settable per policy.
        let short = CachePolicies::with_overrides(Some(&serde_json::json!({
            "short": {"ttl": 30, "shared": true, "cache_control": "public", "surrogate_control": ""},
            "kept": {"ttl": 600, "negative_ttl": 60, "shared": true, "cache_control": "public", "surrogate_control": ""},
        })))
        .expect("valid");
        assert_eq!(short.get("short").map(|p| p.ttl_for(404)), Some(30));
        assert_eq!(short.get("kept").map(|p| p.ttl_for(404)), Some(60));
        let meta = StoredMeta::for_fill(immutable, 404, 0, [128, 0], Vec::new());
        assert!(meta.ttl_ms <= 198_000, "{}", meta.ttl_ms);
    }

    #[test]
    fn a_negative_ttl_of_zero_stores_no_redirect_or_absence() {
        let policy = CachePolicy {
            ttl: 60,
            stale_while_revalidate: 30,
            stale_if_error: 300,
            shared: true,
            cache_control: "public, max-age=60".into(),
            surrogate_control: "max-age=60".into(),
            negative_ttl: 0,
            told_per_user: false,
        };
        for status in [301, 308, 404, 410] {
            assert!(!policy.stores(status), "{status}");
        }
        for status in [200, 203, 204] {
            assert!(policy.stores(status), "{status}");
        }
        let default = CachePolicies::default();
        let public = default.get("api-public").expect("built in");
        assert!(public.stores(404) && public.stores(200));
    }

    #[test]
    fn a_stretched_lifetime_changes_the_lifetime_alone_byte_for_byte() {
        // Only the number changes: the operator's spacing, case and other directives stay as written.
        assert_eq!(
            stretched_lifetime(
                "public,max-age=60,stale-while-revalidate=60",
                60,
                66_000,
                63_000
            )
            .as_deref(),
            Some("public,max-age=66,stale-while-revalidate=60")
        );
        assert_eq!(
            stretched_lifetime("Max-Age=\"60\" ,  s-maxage = 60", 60, 66_000, 63_000).as_deref(),
            Some("Max-Age=66 ,  s-maxage = 66")
        );
        // A comma inside a quoted argument separates no directive: what it quotes is neither split nor rewritten.
        assert_eq!(
            stretched_lifetime(
                "no-cache=\"set-cookie,max-age=60\", max-age=60",
                60,
                66_000,
                63_000
            )
            .as_deref(),
            Some("no-cache=\"set-cookie,max-age=60\", max-age=66")
        );
        assert_eq!(
            stretched_lifetime("x=\"a, max-age=60\"", 60, 66_000, 63_000),
            None,
            "a max-age quoted inside another directive is none"
        );
    }

    #[test]
    fn a_hit_past_the_policy_ttl_is_told_its_own_longer_lifetime() {
        // A 60 s policy whose copy was stored with 66 s (jittered up).
        let cc = "public, max-age=60, stale-while-revalidate=30, stale-if-error=300";
        assert_eq!(
            stretched_lifetime(cc, 60, 66_000, 59_999),
            None,
            "not yet past 60 s"
        );
        let told = stretched_lifetime(cc, 60, 66_000, 63_000).expect("past 60 s");
        assert_eq!(
            told,
            "public, max-age=66, stale-while-revalidate=30, stale-if-error=300"
        );
        assert_eq!(
            stretched_lifetime("max-age=60, S-MaxAge=60", 60, 65_500, 65_400).as_deref(),
            Some("max-age=66, S-MaxAge=66"),
            "rounded up: the Age said (65) stays below it"
        );
        assert_eq!(
            stretched_lifetime("public, max-age=0, must-revalidate", 10, 10_900, 10_500),
            None,
            "a max-age that is not the policy's TTL is the operator's"
        );
        assert_eq!(
            stretched_lifetime(cc, 60, 66_000, 66_000),
            None,
            "past its own TTL it is stale"
        );
        // A copy jittered down is told the policy's lifetime as written, at every age (README, Known limits: it is
        // fresh by the policy until then; only the edge refreshes it earlier).
        for age_ms in [0, 30_000, 53_999, 54_000, 55_000, 90_000] {
            assert_eq!(
                stretched_lifetime(cc, 60, 54_000, age_ms),
                None,
                "jittered down, at {age_ms}"
            );
        }
        // Whatever the jitter, the Age a fresh copy is served with (whole seconds, rounded down) stays below the
        // max-age it is told.
        for random in [[0, 0], [0x80, 0], [0xff, 0xff], [0x12, 0xc4]] {
            let stored = jittered_ttl_ms(60, random);
            for age_ms in (0..stored).step_by(250) {
                let max_age = stretched_lifetime("max-age=60", 60, stored, age_ms)
                    .map_or(60, |v| v["max-age=".len()..].parse().expect("a number"));
                assert!(age_ms / 1000 < max_age, "{random:?} {age_ms}");
            }
        }
    }

    #[test]
    fn freshness_moves_from_fresh_to_stale_windows_to_expired() {
        let meta = StoredMeta {
            stored_at_ms: 1_000,
            ttl_ms: 10_000,
            swr_ms: 5_000,
            sie_ms: 20_000,
            tags: vec![],
        };
        let cases = [
            (1_000, Freshness::Fresh),
            (10_999, Freshness::Fresh),
            (11_000, Freshness::StaleRevalidate),
            (15_999, Freshness::StaleRevalidate),
            (16_000, Freshness::StaleIfError),
            (30_999, Freshness::StaleIfError),
            (31_000, Freshness::Expired),
        ];
        for (now, expected) in cases {
            assert_eq!(meta.freshness(now), expected, "at {now}");
        }
        assert_eq!(meta.retention_secs(), 30);
    }

    #[test]
    fn meta_round_trips_and_purges_apply_to_entries_stored_before_them() {
        let meta = StoredMeta {
            stored_at_ms: 500,
            ttl_ms: 1,
            swr_ms: 2,
            sie_ms: 3,
            tags: vec!["route:r".into(), "product-1".into()],
        };
        assert_eq!(StoredMeta::decode(&meta.encode()), Some(meta.clone()));
        assert_eq!(StoredMeta::decode("garbage"), None);
        assert!(
            meta.purged(|t| (t == "product-1").then_some(600)),
            "purged after storing"
        );
        assert!(
            !meta.purged(|t| (t == "product-1").then_some(400)),
            "stored after the purge"
        );
        assert!(!meta.purged(|_| None));
    }

    #[test]
    fn a_write_is_remembered_for_the_fills_asked_before_it_and_bounded() {
        let mut writes = Writes::default();
        writes.wrote(KeyId::of("k"), 1_000);
        assert!(
            writes.written_since(&KeyId::of("k"), 900),
            "a fill asked before the write"
        );
        assert!(
            writes.written_since(&KeyId::of("k"), 1_000),
            "in its millisecond"
        );
        assert!(
            !writes.written_since(&KeyId::of("k"), 1_001),
            "a fill asked after it"
        );
        assert!(!writes.written_since(&KeyId::of("other"), 0));
        assert_eq!(
            writes.last(&KeyId::of("k")),
            Some(1_000),
            "the last write to a key"
        );
        assert_eq!(writes.last(&KeyId::of("other")), None);
        writes.wrote(KeyId::of("k"), 2_000);
        assert_eq!(
            writes.last(&KeyId::of("k")),
            Some(2_000),
            "a later write replaces it"
        );
        for i in 0..MAX_WRITES_KEPT {
            writes.wrote(KeyId::of(&format!("old{i}")), 0);
        }
        writes.wrote(KeyId::of("new"), WRITE_KEPT_MS);
        assert!(writes.len() <= 2, "the old ones dropped: {}", writes.len());
        assert!(writes.written_since(&KeyId::of("new"), WRITE_KEPT_MS));
    }

    #[test]
    fn a_write_dropped_for_room_still_refuses_the_fills_asked_before_it() {
        let mut writes = Writes::default();
        // A fill of "first" is asked at 500; "first" is written at 1_000, then 4,096 other URLs within a minute.
        writes.wrote(KeyId::of("first"), 1_000);
        for i in 0..MAX_WRITES_KEPT {
            writes.wrote(KeyId::of(&format!("other{i}")), 2_000 + i as u64);
        }
        assert_eq!(writes.len(), MAX_WRITES_KEPT, "bounded");
        assert!(
            writes.written_since(&KeyId::of("first"), 500),
            "the fill asked before the write is not stored over it"
        );
        assert!(
            writes.written_since(&KeyId::of("other0"), 2_000),
            "the writes kept are all kept"
        );
        assert!(
            writes.written_since(&KeyId::of("never"), 500),
            "a key whose write may have been the one dropped is refused too"
        );
        assert!(
            !writes.written_since(&KeyId::of("never"), 1_001),
            "but not for fills asked after the dropped write"
        );
        // The oldest goes first, one at a time: not every write at once.
        writes.wrote(KeyId::of("next"), 60_000);
        assert_eq!(writes.len(), MAX_WRITES_KEPT);
        assert!(!writes.written_since(&KeyId::of("other0"), 2_001));
        assert!(writes.written_since(&KeyId::of("other1"), 2_001));
        // Once past WRITE_KEPT_MS, what was dropped no longer refuses anything.
        writes.wrote(
            KeyId::of("late"),
            2_000 + MAX_WRITES_KEPT as u64 + WRITE_KEPT_MS,
        );
        assert!(!writes.written_since(&KeyId::of("never"), 0));
        assert!(writes.len() <= 2, "expired ones dropped: {}", writes.len());
    }

    #[test]
    fn a_put_past_its_limit_releases_its_key_and_is_awaited_until_it_lands() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let (land, put) = futures_channel::oneshot::channel::<Result<(), &str>>();
        let put = async move { put.await.unwrap_or(Err("dropped")) };
        let mut claim = Some("the fill's claim on its key");
        let mut cx = Context::from_waker(Waker::noop());
        let settled = {
            let mut settling = std::pin::pin!(settle_put(
                put,
                std::future::ready(()),
                std::future::pending(),
                &mut claim
            ));
            assert!(
                settling.as_mut().poll(&mut cx).is_pending(),
                "the put is awaited past its limit (a write landing meanwhile is checked after it)"
            );
            land.send(Ok(())).expect("the put is still awaited");
            match settling.as_mut().poll(&mut cx) {
                Poll::Ready(settled) => settled,
                Poll::Pending => panic!("the put landed"),
            }
        };
        assert_eq!(settled, Ok(()));
        assert_eq!(claim, None, "the key was released at the limit");

        let mut claim = Some("claim");
        {
            let quick = settle_put(
                std::future::ready(Err::<(), _>("refused")),
                std::future::pending(),
                std::future::pending(),
                &mut claim,
            );
            let mut quick = std::pin::pin!(quick);
            assert_eq!(
                quick.as_mut().poll(&mut cx),
                Poll::Ready(Err(PutFailed::Refused("refused")))
            );
        }
        assert_eq!(claim, Some("claim"), "kept for its caller to release");
    }

    #[test]
    fn a_put_that_never_settles_is_followed_only_until_its_outlast_bound() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        // The runtime never settles it (past waitUntil's 30 s nothing of the request runs): followed without end,
        // this future — and the fill's answer it holds — stayed in the isolate for good.
        let (outlasted, outlast) = futures_channel::oneshot::channel::<()>();
        let outlast = async move {
            let _ = outlast.await;
        };
        let mut claim = Some("claim");
        let mut cx = Context::from_waker(Waker::noop());
        let settled = {
            let settling = settle_put(
                std::future::pending::<Result<(), &str>>(),
                std::future::ready(()),
                outlast,
                &mut claim,
            );
            let mut settling = std::pin::pin!(settling);
            assert!(
                settling.as_mut().poll(&mut cx).is_pending(),
                "followed past the limit, until its bound"
            );
            outlasted.send(()).expect("the bound is awaited");
            match settling.as_mut().poll(&mut cx) {
                Poll::Ready(settled) => settled,
                Poll::Pending => panic!("a put past its bound is let go"),
            }
        };
        assert_eq!(settled, Err(PutFailed::Unsettled));
        assert_eq!(claim, None, "the key was released at the limit");
    }

    #[test]
    fn a_write_answered_without_error_invalidates_its_url() {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            for status in [200, 201, 204, 303] {
                assert!(invalidates(method, status), "{method} {status}");
            }
            for status in [101, 400, 404, 409, 500, 503] {
                assert!(
                    !invalidates(method, status),
                    "{method} {status}: no change made"
                );
            }
        }
        for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(!invalidates(method, 200), "{method} is safe");
        }
    }

    #[test]
    fn a_fill_asked_before_a_purge_of_one_of_its_tags_is_covered_by_it() {
        let tags = tags_for("r", Some("product-1"));
        let marks = |tag: &str| match tag {
            "product-1" => Some(600),
            "route:other" => Some(900),
            _ => None,
        };
        assert!(
            purged_since(&tags, 500, marks),
            "asked at 500, purged at 600"
        );
        assert!(
            purged_since(&tags, 600, marks),
            "asked in the purge's millisecond"
        );
        assert!(!purged_since(&tags, 601, marks), "asked after the purge");
        assert!(!purged_since(&tags, 0, |_| None), "no purge known");
        assert!(
            !purged_since(&tags_for("r", None), 0, marks),
            "another route's purge"
        );
    }

    #[test]
    fn tags_include_the_route_and_clean_origin_tags() {
        assert_eq!(
            tags_for("r", Some("a, b,a, bad;tag, ,c")),
            vec!["route:r", "a", "b", "c"]
        );
        assert_eq!(tags_for("r", None), vec!["route:r"]);
        let many: Vec<String> = (0..100).map(|i| format!("item-{i}")).collect();
        let tags = tags_for("r", Some(&many.join(",")));
        assert_eq!(tags.len(), MAX_TAGS, "capped");
        assert_eq!(
            tags[1..],
            many[..MAX_TAGS - 1],
            "the route's, then the origin's first"
        );
        assert!(
            tags_left_out(&tags, Some(&many.join(","))),
            "a tag past the cap would not purge the entry"
        );
        let fits = many[..MAX_TAGS - 1].join(", ") + ", bad;tag, item-0";
        assert!(
            !tags_left_out(&tags_for("r", Some(&fits)), Some(&fits)),
            "repeats and invalid tags (a purge refuses those) leave nothing out"
        );
        assert!(!tags_left_out(&tags_for("r", None), None));
    }

    #[test]
    fn a_purge_mark_outlives_every_entry_it_covers() {
        let longest = CachePolicy {
            ttl: MAX_POLICY_SECS,
            stale_while_revalidate: MAX_POLICY_SECS,
            stale_if_error: MAX_POLICY_SECS,
            shared: true,
            cache_control: String::new(),
            surrogate_control: String::new(),
            negative_ttl: MAX_POLICY_SECS,
            told_per_user: false,
        };
        for status in [200, 301, 404] {
            let meta = StoredMeta::for_fill(&longest, status, 0, [0xff, 0xff], Vec::new());
            assert!(meta.retention_secs() <= LONGEST_SERVED_SECS, "{status}");
            assert_eq!(
                meta.freshness(LONGEST_SERVED_SECS * 1000),
                Freshness::Expired
            );
            assert_ne!(
                meta.freshness(LONGEST_SERVED_SECS * 1000 - 1),
                Freshness::Expired,
                "no shorter would do"
            );
        }
    }

    #[test]
    fn a_purge_writes_each_mark_once_whatever_the_case_or_repeats() {
        let tags: Vec<String> = ["Product-42", "a", "product-42", "A", "b", "a"]
            .map(String::from)
            .into();
        assert_eq!(purge_marks(&tags), ["product-42", "a", "b"]);
        assert_eq!(purge_marks(&["x".to_owned()]), ["x"]);
    }

    #[test]
    fn tags_are_one_in_any_case() {
        assert_eq!(
            tags_for("Api.V2", Some("Product-42, product-42, LIST")),
            vec!["route:api.v2", "product-42", "list"],
            "kept as a purge names them, and one tag in two cases is one"
        );
        let spellings: Vec<String> = (0..MAX_TAGS - 1)
            .flat_map(|i| [format!("Item-{i}"), format!("item-{i}")])
            .collect();
        let header = spellings.join(",");
        assert!(
            !tags_left_out(&tags_for("r", Some(&header)), Some(&header)),
            "two cases of a kept tag leave nothing out"
        );
        assert_eq!(tag_key("Route:Cached"), "route:cached");
        let earlier = StoredMeta::decode("1;2;3;4;route:Api,Product-42").expect("decodes");
        assert_eq!(
            earlier.mark_names(),
            vec!["route:api", "route:Api", "product-42", "Product-42"],
            "an entry stored in the origin's case by an earlier build is purged by the tag in any case"
        );
        for mark in ["product-42", "Product-42", "route:Api", "route:api"] {
            assert!(
                earlier.purged(|t| (t == mark).then_some(5)),
                "a mark {mark:?} (an earlier build's purge wrote it as named) covers it"
            );
        }
        assert!(!earlier.purged(|t| (t == "PRODUCT-42").then_some(5)));
        let now = StoredMeta::decode("1;2;3;4;route:r,product-42").expect("decodes");
        assert_eq!(
            now.mark_names(),
            vec!["route:r", "product-42"],
            "no second read"
        );
        // An earlier build kept two cases of one tag as two: each mark is read once (a second read of the same mark
        // by one hit waited on its own read, counted as a waiter, or with GATEWAY_PURGE_SYNC_MS 0 read it twice).
        let both = StoredMeta::decode("1;2;3;4;route:r,Product-42,product-42,PRODUCT-42")
            .expect("decodes");
        assert_eq!(
            both.mark_names(),
            vec!["route:r", "product-42", "Product-42", "PRODUCT-42"],
            "each mark once"
        );
    }

    #[test]
    fn policy_windows_are_bounded_to_a_year() {
        let year = MAX_POLICY_SECS;
        for field in ["ttl", "stale_while_revalidate", "stale_if_error"] {
            let mut policy = serde_json::json!({
                "ttl": 60, "stale_while_revalidate": 0, "stale_if_error": 0, "shared": true,
                "cache_control": "public", "surrogate_control": "max-age=60"
            });
            policy[field] = serde_json::json!(year);
            let at_bound = serde_json::json!({ "p": policy.clone() });
            assert!(
                CachePolicies::with_overrides(Some(&at_bound)).is_ok(),
                "{field} at a year"
            );
            policy[field] = serde_json::json!(u64::MAX);
            let error = CachePolicies::with_overrides(Some(&serde_json::json!({ "p": policy })))
                .expect_err("past a year");
            assert!(
                error.contains(field) && error.contains("at most"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_origin_error_or_a_429_is_held_for_the_waiters_and_nothing_else_unstored_is() {
        for status in [429, 500, 502, 503, 504, 599] {
            assert!(origin_pushback(status), "{status}");
        }
        for status in [200, 304, 400, 401, 403, 404, 406, 428, 431] {
            assert!(!origin_pushback(status), "{status}");
        }
    }

    #[test]
    fn aged_copies_are_older_by_the_agings_made_after_their_fill_and_no_others() {
        let mut aging = CopyAging::default();
        assert_eq!(aging.aged_ms(1_000), 0, "none made");
        aging.age(2_000, 1_200);
        assert_eq!(aging.aged_ms(1_000), 1_200, "filled before the aging");
        assert_eq!(aging.aged_ms(2_000), 1_200, "in its millisecond");
        assert_eq!(
            aging.aged_ms(2_001),
            0,
            "filled after it: a refresh stored since is fresh"
        );
        aging.age(3_000, u64::MAX);
        assert_eq!(aging.aged_ms(1_000), u64::MAX, "saturates");
        assert_eq!(aging.aged_ms(2_500), u64::MAX);
        for i in 0..MAX_AGINGS as u64 {
            aging.age(4_000 + i, 1);
        }
        assert_eq!(aging.0.len(), MAX_AGINGS, "bounded");
        assert_eq!(aging.aged_ms(4_000), MAX_AGINGS as u64);
        // Aged 1.2 s, a 1 s copy filled just now is stale; what decides it is the gateway's own clock reading.
        let meta = StoredMeta {
            stored_at_ms: 10_000,
            ttl_ms: 1_000,
            swr_ms: 3_600_000,
            sie_ms: 0,
            tags: Vec::new(),
        };
        let mut aging = CopyAging::default();
        assert_eq!(meta.freshness(10_001), Freshness::Fresh);
        aging.age(10_001, 1_200);
        let aged = aging.aged_ms(meta.stored_at_ms);
        assert_eq!(meta.freshness(10_001 + aged), Freshness::StaleRevalidate);
    }

    #[test]
    fn a_fills_429_reaches_only_waiters_of_the_address_it_named_and_a_5xx_reaches_every_one() {
        let (lead, other) = ("203.0.113.7".parse().ok(), "198.51.100.9".parse().ok());
        assert!(
            fill_answer_reaches(429, lead, lead),
            "the lead's own address"
        );
        assert!(
            fill_answer_reaches(429, None, None),
            "no address named, none sent"
        );
        for (fill, own) in [(lead, other), (lead, None), (None, other)] {
            assert!(!fill_answer_reaches(429, fill, own), "{fill:?} to {own:?}");
        }
        for status in [200, 404, 500, 503, 504] {
            assert!(fill_answer_reaches(status, lead, other), "{status}");
        }
    }

    #[test]
    fn bodiless_answers_are_stored_as_200_and_served_with_their_status() {
        for status in [204, 205] {
            let (stored, kept) = StoredMeta::stored_status(status);
            assert_eq!((stored, kept), (200, Some(status)));
            let kept = kept.map(|s| s.to_string());
            assert_eq!(StoredMeta::served_status(stored, kept.as_deref()), status);
        }
        assert_eq!(StoredMeta::stored_status(200), (200, None));
        assert_eq!(StoredMeta::stored_status(404), (404, None));
        assert_eq!(StoredMeta::served_status(200, None), 200);
        assert_eq!(
            StoredMeta::served_status(404, Some("204")),
            404,
            "only a stored 200 stands for another status"
        );
        assert_eq!(
            StoredMeta::served_status(200, Some("500")),
            200,
            "and only for a bodiless one"
        );
        assert_eq!(StoredMeta::served_status(200, Some("x")), 200);
    }
}
