//! The gateway's route table: configured routes to origins (`GATEWAY_ROUTES`), parsed and validated once per
//! isolate, and the matcher that picks the most specific route for a method and path.
//!
//! A pattern is a path prefix made of segments; `:name` matches any one segment. A pattern matches a path when the
//! path's segments start with the pattern's (so `/api` serves `/api/users/7` too). Among matching routes the most
//! specific wins: more segments first, then literal segments before parameters, left to right. Routes of one pattern
//! may split its methods between them. If none of the most specific pattern's routes takes the method, a broader
//! route may serve it only when it checks as they do and as every route between (same auth and rate limits, their
//! permissions or more: a GET route under `/api` that only sets another cache policy); otherwise the answer is 405
//! with the methods of the routes asked in `Allow` — an open `/api` must not take the POST or DELETE of an
//! `/api/admin` set for GET with a permission.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

use serde::Deserialize;

use super::cache::CachePolicies;
use super::headers::LocationMap;
use super::request_url::as_requested;
use super::waf::{WafConfig, WafMode};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthPolicy {
    None,
    Jwt,
    Session,
    JwtOrSession,
}

/// One route as written in configuration (JSON keys shown in the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    path: String,
    #[serde(default = "default_methods")]
    methods: Vec<String>,
    upstream: String,
    strip_prefix: Option<String>,
    #[serde(default = "default_auth")]
    auth: AuthPolicy,
    #[serde(default)]
    permissions: Vec<String>,
    rate_limit: Option<PolicyNames>,
    cache: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default)]
    retries: u32,
    /// The WAF's mode for this route's request bodies, when not the global one (see [`Route::body_waf`]).
    waf_body: Option<WafMode>,
    /// Whether a WebSocket handshake (a GET with `Upgrade: websocket`) is proxied to the origin.
    #[serde(default)]
    websocket: bool,
}

/// `rate_limit`: one policy name, or a list of them that all apply (say a per-key policy with a per-IP one, so
/// that presenting a new API key each time does not escape the limit).
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "rate_limit: a policy name or a list of policy names"
)]
enum PolicyNames {
    One(String),
    All(Vec<String>),
}

/// Most rate-limit policies one route may name: each is a limiter call per request.
pub const MAX_ROUTE_RATE_LIMITS: usize = 4;

fn default_methods() -> Vec<String> {
    vec!["GET".to_owned()]
}
fn default_auth() -> AuthPolicy {
    AuthPolicy::None
}
fn default_timeout() -> u64 {
    10_000
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub path: String,
    segments: Vec<Segment>,
    pub methods: Vec<String>,
    /// Origin base URL without a trailing slash, e.g. `https://api.internal:8443/v1`.
    pub upstream: String,
    pub strip_prefix: Option<String>,
    pub auth: AuthPolicy,
    pub permissions: Vec<String>,
    /// Rate-limit policies that all apply, in the order configured (none: unlimited).
    pub rate_limits: Vec<String>,
    pub cache: Option<String>,
    pub timeout_ms: u64,
    pub retries: u32,
    /// How the origin's redirects map back under this route (worked out once, not per request; shared by the edge
    /// cache's fills, which outlive the request, rather than copied into each).
    pub location: Rc<LocationMap>,
    /// `waf_body`: the WAF's mode for this route's request bodies instead of the global one.
    pub waf_body: Option<WafMode>,
    /// `websocket`: a WebSocket handshake is proxied to the origin (its 101 and socket passed back); otherwise
    /// refused 501. Only on a route that serves GET, the handshake's method.
    pub websocket: bool,
}

impl Route {
    /// The route's own path, as a request for it is spelled (a parameter stands as `:name`, one segment).
    pub fn own_path(&self) -> String {
        let own: String = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(literal) => format!("/{literal}"),
                Segment::Param(name) => format!("/:{name}"),
            })
            .collect();
        if own.is_empty() {
            "/".to_owned()
        } else {
            own
        }
    }
}

impl Route {
    /// The WAF settings this route's request body is checked with: the global ones, in the route's `waf_body` mode
    /// when it sets one — `off` for an upload route whose content the rules misread (an editor posting HTML, a
    /// `br` upload to an object store), `log` to watch one before blocking, `block` to block on one route while the
    /// WAF only logs elsewhere. It covers the body's size, declared or counted, too; the request line and headers
    /// always follow the global mode. Borrowed unless the route's mode differs (no copy of the rule list on every
    /// request of the common route).
    pub fn body_waf<'a>(&self, global: &'a WafConfig) -> Cow<'a, WafConfig> {
        match self.waf_body {
            Some(mode) if mode != global.mode => Cow::Owned(WafConfig {
                mode,
                ..global.clone()
            }),
            _ => Cow::Borrowed(global),
        }
    }
}

/// What a request resolves to in the gateway table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched<'a> {
    Route {
        route: &'a Route,
        params: HashMap<String, String>,
    },
    MethodNotAllowed {
        allowed: Vec<String>,
    },
    NotFound,
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The compiled, validated table; routes are kept most specific first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Whether a route's literal has an upper-case letter (then every path is also read in any case).
    upper_literals: bool,
}

impl RouteTable {
    /// Parses the JSON array of routes. Errors name the entry (`route 2 ("users")`) and the rule it broke.
    /// `rate_limit_policies` is the set of policy names a route may reference, if known (None: not checked here).
    pub fn parse(
        value: &serde_json::Value,
        policies: &CachePolicies,
        rate_limit_policies: Option<&[String]>,
    ) -> Result<Self, String> {
        let items = crate::config::as_list(value)?;
        let mut routes = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let label = item
                .get("name")
                .and_then(|n| n.as_str())
                .map(|n| format!("route {index} ({n:?})"))
                .unwrap_or_else(|| format!("route {index}"));
            let raw: RawRoute =
                crate::config::typed(item.clone()).map_err(|e| format!("{label}: {e}"))?;
            let route = validate(raw, index, policies, rate_limit_policies)
                .map_err(|e| format!("{label}: {e}"))?;
            // A route's name keys its cache entries and names its purge tag (`route:<name>`): unique, and of
            // characters a tag may hold. Unique in any case: tags are (`cache::tag_key`), and `shop` and `Shop`
            // carried one tag, so a purge of either route took down the other's entries too.
            if routes
                .iter()
                .any(|r: &Route| r.name.eq_ignore_ascii_case(&route.name))
            {
                return Err(format!(
                    "{label}: the name {:?} is already used (in any case: its purge tag route:<name> is one in any case)",
                    route.name
                ));
            }
            if !route
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                || route.name.is_empty()
                || route.name.len() > 64
            {
                return Err(format!(
                    "{label}: a name is 1 to 64 letters, digits, '-', '_' or '.'"
                ));
            }
            // The name is a segment of its cache keys' URLs, where `.` and `..` are dot segments a URL parser
            // resolves: another route's keys could be reached.
            if matches!(route.name.as_str(), "." | "..") {
                return Err(format!(
                    "{label}: a name is not `.` or `..` (a URL path reads them as dot segments)"
                ));
            }
            if let Some(twin) = routes.iter().find(|r: &&Route| {
                same_pattern(&r.segments, &route.segments, Letters::AnyCase)
                    && !same_pattern(&r.segments, &route.segments, Letters::Exact)
            }) {
                return Err(format!(
                    "{label}: path {} differs from route {:?}'s only in letter case, which origins that ignore case \
                     cannot tell apart",
                    route.path, twin.name
                ));
            }
            if routes.iter().any(|r: &Route| {
                same_pattern(&r.segments, &route.segments, Letters::Exact) && overlap(r, &route)
            }) {
                return Err(format!(
                    "{label}: path {} with these methods is already served by an earlier route",
                    route.path
                ));
            }
            routes.push(route);
        }
        routes.sort_by_key(|r| std::cmp::Reverse(specificity(r)));
        let upper_literals = routes
            .iter()
            .flat_map(|r| &r.segments)
            .any(|s| matches!(s, Segment::Literal(l) if l.bytes().any(|b| b.is_ascii_uppercase())));
        Ok(Self {
            routes,
            upper_literals,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route of the most specific pattern matching `path` that serves `method` (HEAD is served wherever GET
    /// is), or 405 with that pattern's methods.
    pub fn resolve(&self, method: &str, path: &str) -> Matched<'_> {
        self.resolve_as(method, path, Letters::Exact)
    }

    fn resolve_as(&self, method: &str, path: &str, letters: Letters) -> Matched<'_> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut allowed: Vec<String> = Vec::new();
        // Every matching route met so far, asked or not. Routes are sorted most specific first, and matching
        // routes of one specificity share one pattern.
        let mut met: Vec<&Route> = Vec::new();
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &parts, letters) else {
                continue;
            };
            // A broader route is asked only when it checks as every more specific route met — the skipped ones
            // too: an open `/api` must not take, past an `/api/admin` with a permission, the POST an open
            // `/api/admin/status` page does not serve.
            // (Its own pattern's routes split that pattern's methods between them: not compared.)
            let asked = met.iter().all(|m| {
                same_pattern(&m.segments, &route.segments, Letters::Exact) || route.checks_as(m)
            });
            if asked {
                if route.accepts(method) {
                    return Matched::Route { route, params };
                }
                for m in route.allowed() {
                    if !allowed.iter().any(|a| a == m) {
                        allowed.push(m.to_owned());
                    }
                }
            }
            // Kept only past the first route (a request its most specific route serves allocates nothing here).
            met.push(route);
        }
        if allowed.is_empty() {
            Matched::NotFound
        } else {
            Matched::MethodNotAllowed { allowed }
        }
    }

    /// Every method `path` is served with, as a 405 lists them: those of all the routes of its most specific pattern
    /// (a pattern may split its methods between routes), HEAD with GET. What an OPTIONS the gateway answers itself
    /// says in `Allow`: the route it met lists only its own share.
    pub fn allowed(&self, path: &str) -> Vec<String> {
        // No route serves the empty method (methods are validated against `METHODS`): the 405's list, whole.
        match self.resolve("", path) {
            Matched::MethodNotAllowed { allowed } => allowed,
            _ => Vec::new(),
        }
    }
}

impl RouteTable {
    /// Whether `path` meets a route with other checks (or none) when read as many origins read it — an escaped
    /// slash or backslash (`%2F`, `%5C`) as a separator, a segment's `;` parameters dropped (Tomcat, Spring,
    /// Jetty), then dot segments resolved (`/x/..;/admin`). Such a path could otherwise pass the checks of a less
    /// specific route and be served as a more specific one: `/api/admin;x=1` or `/api/admin%2F` matched `/api` (no
    /// auth) while the origin serves `/api/admin` — or `/upload/meta;x=1` matched an `/upload` route whose bodies
    /// go unchecked (`waf_body`). A path both readings route to routes with the same auth, permissions, rate
    /// limits, cache policy and body WAF mode (`/open/any%2Fthing` under `/open`, `group%2Fproject` as a
    /// parameter) is not ambiguous. `waf` is the global WAF mode, a route's body mode when it sets none. (Escapes
    /// are upper-case after `request_url::normalise_path`.) So is a path whose dot segments, read so, climb above
    /// the part of it appended to its route's upstream base.
    pub fn ambiguous(&self, method: &str, path: &str, waf: WafMode) -> bool {
        // Dot segments reach here as `%2e` decoded by `normalise_path` (the runtime resolves literal ones).
        if !path.contains(';')
            && !path.contains("%2F")
            && !path.contains("%5C")
            && !path.split('/').any(|s| s == "." || s == "..")
        {
            // Express, ASP.NET Core and koa-router match paths without regard to case: `/api/ADMIN` must not pass
            // an open `/api` route's checks on its way to the origin's `/api/admin`.
            // A path no route serves as spelled is refused anyway (404, 405).
            return (self.upper_literals || path.bytes().any(|b| b.is_ascii_uppercase())) && {
                let actual = self.resolve(method, path);
                matches!(actual, Matched::Route { .. })
                    && self.differ(actual, self.resolve_as(method, path, Letters::AnyCase), waf)
            };
        }
        let read = origin_reading(path).0.join("/");
        let actual = self.resolve(method, path);
        // The origin resolves the dot segments of what is appended to its base, not of the client's path: one
        // climbing above that part reaches the origin outside the base (`/api/..;/api/x` stripped of `/api` and
        // sent to `https://o/v2` is Tomcat's `/api/x`), whichever route the client's path resolves to.
        if let Matched::Route { route, .. } = &actual {
            if origin_reading(route.appended_path(path)).1 {
                return true;
            }
        }
        self.differ(actual.clone(), self.resolve(method, &read), waf)
            || matches!(actual, Matched::Route { .. })
                && self.differ(
                    actual,
                    self.resolve_as(method, &read, Letters::AnyCase),
                    waf,
                )
    }

    /// The first route, with a method of its, whose own path [`Self::ambiguous`] refuses (a literal with a `;`
    /// parameter, an escaped slash or backslash, a `..;` segment, which read as origins read it meets no route with
    /// the same checks): a route every request of which would answer 400 `ambiguous_path`. `waf` as there.
    pub fn refused_as_ambiguous(&self, waf: WafMode) -> Option<(&Route, &str)> {
        self.routes.iter().find_map(|route| {
            let own = route.own_path();
            let method = route
                .methods
                .iter()
                .find(|method| self.ambiguous(method, &own, waf))?;
            Some((route, method.as_str()))
        })
    }

    /// Whether two resolutions of one request would check it differently. Body modes are compared as they apply
    /// (`waf` where a route sets none): a route that spells out the global mode checks bodies as one that is silent.
    fn differ(&self, a: Matched<'_>, b: Matched<'_>, waf: WafMode) -> bool {
        match (a, b) {
            // Two routes that check alike (an escaped slash inside a parameter, `group%2Fproject`) are no risk.
            (Matched::Route { route: a, .. }, Matched::Route { route: b, .. }) => {
                !(std::ptr::eq(a, b)
                    || a.auth == b.auth
                        && a.permissions == b.permissions
                        && a.rate_limits == b.rate_limits
                        && a.cache == b.cache
                        && a.waf_body.unwrap_or(waf) == b.waf_body.unwrap_or(waf))
            }
            (Matched::Route { .. }, _) | (_, Matched::Route { .. }) => true,
            _ => false,
        }
    }
}

impl Route {
    /// Whether a request this route admits passes `other`'s checks too: same auth and rate limits, and
    /// `other`'s permissions among its own.
    fn checks_as(&self, other: &Route) -> bool {
        self.auth == other.auth
            && self.rate_limits == other.rate_limits
            && other
                .permissions
                .iter()
                .all(|p| self.permissions.contains(p))
    }

    /// The methods this route serves as an `Allow` field lists them: its own, and HEAD with GET.
    pub fn allowed(&self) -> impl Iterator<Item = &str> {
        let head =
            self.methods.iter().any(|m| m == "GET") && !self.methods.iter().any(|m| m == "HEAD");
        self.methods
            .iter()
            .map(String::as_str)
            .chain(head.then_some("HEAD"))
    }

    pub fn accepts(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
            || (method == "HEAD" && self.methods.iter().any(|m| m == "GET"))
    }

    /// The part of a request path appended to the upstream base: the path, its `strip_prefix` stripped.
    fn appended_path<'p>(&self, path: &'p str) -> &'p str {
        match &self.strip_prefix {
            Some(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => path,
            },
            None => path,
        }
    }

    /// The origin URL for a request path and query: prefix stripped, appended to the upstream base. The prefix
    /// alone (`/api`) asks the base as written (`https://o/v2`), and `/api/` asks `https://o/v2/`: the slash is the
    /// client's, as nginx's `proxy_pass` keeps it — asked `/v2/` for `/api`, an origin redirecting `/v2/` to `/v2`
    /// had that redirect mapped back to `/api`, a loop. An upstream without a path is asked its root, `/`.
    pub fn upstream_url(&self, path: &str, query: Option<&str>) -> String {
        let rest = self.appended_path(path);
        // The base path, as the route's redirect map read it once from the upstream.
        let has_base_path = !self.location.upstream_path.is_empty();
        let rest = if rest.starts_with('/') || (rest.is_empty() && has_base_path) {
            rest.to_owned()
        } else {
            format!("/{rest}")
        };
        // A bare `?` is kept: the request target is the client's, and an origin that signs or routes by it may
        // tell `/x?` from `/x`, as nginx and the runtime's URL do.
        match query {
            Some(q) => format!("{}{rest}?{q}", self.upstream),
            None => format!("{}{rest}", self.upstream),
        }
    }
}

/// A path's segments as many origins read it — an escaped slash or backslash (`%2F`, `%5C`) as a separator, a
/// segment's `;` parameters dropped (Tomcat, Spring, Jetty), dot segments resolved (`/x/..;/admin` is `/admin`) —
/// and whether a `..` climbed above its first segment (dropped there, as a URL parser drops it at the root).
fn origin_reading(path: &str) -> (Vec<String>, bool) {
    let slashes = path.replace("%2F", "/").replace("%5C", "/");
    let mut segments: Vec<String> = Vec::new();
    let mut climbed = false;
    for segment in slashes
        .split('/')
        .map(|s| s.split(';').next().unwrap_or(""))
    {
        match segment {
            "" | "." => {}
            ".." => climbed |= segments.pop().is_none(),
            s => segments.push(s.to_owned()),
        }
    }
    (segments, climbed)
}

/// Whether two routes serve a method in common, HEAD counted wherever GET is ([`Route::accepts`]): a HEAD route
/// beside a GET route of its path was served or never reached by the order they were listed in.
fn overlap(a: &Route, b: &Route) -> bool {
    a.allowed().any(|m| b.accepts(m))
}

fn specificity(route: &Route) -> (usize, Vec<u8>) {
    (
        route.segments.len(),
        route
            .segments
            .iter()
            .map(|s| u8::from(matches!(s, Segment::Literal(_))))
            .collect(),
    )
}

/// How a path's letters are compared with a pattern's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Letters {
    Exact,
    /// As origins that ignore case read it (ASCII letters only).
    AnyCase,
}

/// Whether two patterns match the same paths (parameter names aside), their letters compared as `letters` says.
fn same_pattern(a: &[Segment], b: &[Segment], letters: Letters) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) => match letters {
                Letters::Exact => x == y,
                Letters::AnyCase => x.eq_ignore_ascii_case(y),
            },
            (Segment::Param(_), Segment::Param(_)) => true,
            _ => false,
        })
}

fn match_segments(
    pattern: &[Segment],
    parts: &[&str],
    letters: Letters,
) -> Option<HashMap<String, String>> {
    if parts.len() < pattern.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (segment, part) in pattern.iter().zip(parts) {
        match segment {
            Segment::Literal(l) if l == part => {}
            Segment::Literal(l) if letters == Letters::AnyCase && l.eq_ignore_ascii_case(part) => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => {
                params.insert(name.clone(), (*part).to_owned());
            }
        }
    }
    Some(params)
}

/// A route's rate-limit policies: defined (when `known` is given), distinct, at most [`MAX_ROUTE_RATE_LIMITS`].
fn rate_limits(
    names: Option<PolicyNames>,
    known: Option<&[String]>,
) -> Result<Vec<String>, String> {
    let names = match names {
        None => return Ok(Vec::new()),
        Some(PolicyNames::One(name)) => vec![name],
        Some(PolicyNames::All(names)) => names,
    };
    if names.is_empty() || names.len() > MAX_ROUTE_RATE_LIMITS {
        return Err(format!(
            "rate_limit must be a policy name or a list of 1 to {MAX_ROUTE_RATE_LIMITS}"
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err("rate_limit must be a policy name".to_owned());
        }
        if names[..i].contains(name) {
            return Err(format!("rate-limit policy {name:?} is named twice"));
        }
        if known.is_some_and(|known| !known.contains(name)) {
            return Err(format!("rate-limit policy {name:?} is not defined"));
        }
    }
    Ok(names)
}

fn validate(
    raw: RawRoute,
    index: usize,
    policies: &CachePolicies,
    rate_limit_policies: Option<&[String]>,
) -> Result<Route, String> {
    // Escaped into the pattern as a blank inside one is (`/api%20`), where no request for `/api` meets it.
    let written = [
        ("path", Some(raw.path.as_str())),
        ("strip_prefix", raw.strip_prefix.as_deref()),
    ];
    if let Some((field, value)) = written
        .into_iter()
        .find_map(|(field, value)| Some((field, value.filter(|v| v.trim() != *v)?)))
    {
        return Err(format!("{field} {value:?} has blanks around it"));
    }
    if !raw.path.starts_with('/') {
        return Err(format!("path {:?} must start with /", raw.path));
    }
    // Written as requests are matched (`request_url::as_requested`): a literal `%` in a route (`/promo/50%off`) is
    // `%25` in every request that reaches it, `%61` is `a`, and `é` is `%C3%A9`; as written, such a route would never
    // match.
    let path = as_requested(&raw.path);
    let strip_prefix = raw.strip_prefix.as_deref().map(as_requested);
    let mut segments = Vec::new();
    if path.contains('\\') {
        // The runtime's URL parser reads `\` as `/` in an http(s) URL (WHATWG): no request's path holds one.
        return Err(format!(
            "path {:?} has a backslash: requests arrive with it read as /, so it would never match; write / (or \
             %5C for a backslash the client escapes)",
            raw.path
        ));
    }
    for part in path.split('/').filter(|s| !s.is_empty()) {
        if matches!(part, "." | "..") {
            // The runtime resolves them before the Worker sees the path; an escaped one (`%2e%2e`) meets the
            // ambiguity check, which reads it resolved as the origin does: such a route would never serve a request.
            return Err(format!(
                "path {:?} has a dot segment {part:?}: requests arrive with dot segments resolved, so it would never \
                 match; write the path they resolve to",
                raw.path
            ));
        }
        if let Some(name) = part.strip_prefix(':') {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("path {:?} has a bad parameter {part:?}", raw.path));
            }
            segments.push(Segment::Param(name.to_owned()));
        } else if part.contains(['?', '#', '*', '{', '}', ':']) {
            return Err(format!("path {:?} has a bad segment {part:?}", raw.path));
        } else {
            segments.push(Segment::Literal(part.to_owned()));
        }
    }
    if raw.methods.is_empty() {
        return Err("methods must not be empty".to_owned());
    }
    let mut methods = Vec::new();
    for m in &raw.methods {
        let upper = m.to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            return Err(format!("method {m:?} is not one of {}", METHODS.join(", ")));
        }
        if !methods.contains(&upper) {
            methods.push(upper);
        }
    }
    let upstream = raw.upstream.trim_end_matches('/').to_owned();
    // The runtime sends a fetched URL's `user:password@` nowhere (no `Authorization` either): the origin would get
    // every request unauthenticated. Said without the URL, which would quote the password to every request.
    let authority = upstream.split("://").nth(1).unwrap_or("");
    if authority
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .contains('@')
    {
        return Err(
            "upstream must not hold credentials (`user:password@`): the runtime sends them nowhere, so the origin \
             would get none"
                .to_owned(),
        );
    }
    let scheme_ok = upstream.starts_with("http://") || upstream.starts_with("https://");
    let host = upstream.split("://").nth(1).unwrap_or("");
    if !scheme_ok
        || host.is_empty()
        || host.starts_with('/')
        || upstream.contains(['?', '#', '\\'])
        // The URL parser reads `\` as `/` and drops tabs and line breaks: requests went where it read the URL,
        // while the redirect and cookie maps kept the spelling.
        || upstream.chars().any(|c| c.is_whitespace() || c.is_control())
        || !crate::config::parses_as_base(&upstream)
    {
        return Err(format!(
            "upstream {:?} must be an absolute http(s) URL without query, fragment, blanks, backslash or `.`/`..` \
             segments, with a valid host and port",
            raw.upstream
        ));
    }
    if let Some(prefix) = &strip_prefix {
        // Whole literal segments of the path: a parameter cannot be stripped as written (`/t/:tenant` never
        // occurs in a request), and `/api/v` of `/api/v1` would send `/api/v1/x` to the origin as `/1/x`.
        let parts: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
        let literal_head = parts.len() <= segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(p, s)| matches!(s, Segment::Literal(l) if l == p));
        if !prefix.starts_with('/') || !literal_head {
            return Err(format!(
                "strip_prefix {prefix:?} must start with / and be whole literal segments at the start of path {:?}",
                raw.path
            ));
        }
    }
    if raw.auth == AuthPolicy::None && !raw.permissions.is_empty() {
        return Err("permissions need an auth policy other than none".to_owned());
    }
    // A name no token or user can hold (`read, write`, ` admin`) would lock the route for everyone, silently.
    if let Some(bad) = raw
        .permissions
        .iter()
        .find(|p| !super::jwt::header_list_item(p))
    {
        return Err(format!(
            "permission {bad:?} can never be held: permissions are non-empty printable ASCII without spaces or commas"
        ));
    }
    if let Some(name) = &raw.cache {
        let Some(policy) = policies.get(name) else {
            return Err(format!(
                "cache policy {name:?} is not defined (known: {})",
                policies.names().join(", ")
            ));
        };
        // Either would store nothing, and the route be served uncached without a word.
        if !policy.shared && raw.auth == AuthPolicy::None {
            return Err(format!(
                "cache policy {name:?} is per user (shared: false), but the route's auth is none: no request has a \
                 user, so nothing would be cached"
            ));
        }
        if !methods.iter().any(|m| m == "GET" || m == "HEAD") {
            return Err(format!(
                "cache policy {name:?} applies to GET and HEAD, which the route's methods do not include"
            ));
        }
    }
    let rate_limits = rate_limits(raw.rate_limit, rate_limit_policies)?;
    if !(1..=120_000).contains(&raw.timeout_ms) {
        return Err(format!(
            "timeout_ms must be 1..=120000, got {}",
            raw.timeout_ms
        ));
    }
    if raw.retries > 5 {
        return Err(format!("retries must be 0..=5, got {}", raw.retries));
    }
    // Taken and never applied otherwise: a POST or PATCH has been performed by the time its connection fails.
    if raw.retries > 0 && !methods.iter().any(|m| is_retryable_method(m)) {
        return Err(
            "retries apply to GET, HEAD, OPTIONS, PUT and DELETE, which the route's methods do not include".to_owned(),
        );
    }
    if raw.websocket && !methods.iter().any(|m| m == "GET") {
        return Err("websocket needs GET among methods: a WebSocket handshake is a GET".to_owned());
    }
    // Kept as `/` and its segments (`/` alone strips nothing).
    let strip_prefix = strip_prefix.and_then(|p| {
        let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
        (!parts.is_empty()).then(|| format!("/{}", parts.join("/")))
    });
    Ok(Route {
        name: raw.name.unwrap_or_else(|| format!("route-{index}")),
        path: raw.path,
        segments,
        methods,
        location: Rc::new(LocationMap::new(&upstream, strip_prefix.as_deref())),
        upstream,
        strip_prefix,
        auth: raw.auth,
        permissions: raw.permissions,
        rate_limits,
        cache: raw.cache,
        timeout_ms: raw.timeout_ms,
        retries: raw.retries,
        waf_body: raw.waf_body,
        websocket: raw.websocket,
    })
}

/// Whether a method may be retried: it is idempotent and carries no body we would have to replay.
pub fn is_retryable_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::request_url::normalise_path;
    use super::*;

    fn table(routes: serde_json::Value) -> RouteTable {
        RouteTable::parse(&routes, &CachePolicies::default(), None).expect("valid table")
    }

    /// HEAD is served wherever GET is, so a HEAD route on a GET route's path overlaps it: it was taken, and which of
    /// the two served HEAD depended on their order in the list — listed after the GET route, the HEAD route (its
    /// auth, its upstream) was never reached, without a word at start.
    #[test]
    fn a_head_route_on_a_get_routes_path_overlaps_it_in_either_order() {
        let get = json!({"name": "get", "path": "/x", "methods": ["GET"], "upstream": "http://a", "auth": "jwt"});
        let head =
            json!({"name": "head", "path": "/x", "methods": ["HEAD"], "upstream": "http://b"});
        for (routes, label) in [
            (json!([get, head]), "route 1 (\"head\")"),
            (json!([head, get]), "route 1 (\"get\")"),
        ] {
            let error = RouteTable::parse(&routes, &CachePolicies::default(), None)
                .expect_err("HEAD is GET's too");
            assert!(
                error.starts_with(&format!(
                    "{label}: path /x with these methods is already served"
                )),
                "{error}"
            );
        }
        // Split otherwise, the methods of one path may be served by several routes.
        table(json!([
            {"name": "read", "path": "/x", "methods": ["GET"], "upstream": "http://a"},
            {"name": "write", "path": "/x", "methods": ["POST", "PUT"], "upstream": "http://b", "auth": "jwt"},
        ]));
    }

    #[test]
    fn a_path_another_reading_routes_elsewhere_is_ambiguous() {
        let t = table(json!([
            {"name": "all", "path": "/api", "methods": ["GET", "POST"], "upstream": "http://a"},
            {"name": "admin", "path": "/api/admin", "upstream": "http://a", "auth": "jwt", "permissions": ["admin"]},
            {"name": "user", "path": "/api/users/:id", "upstream": "http://a"},
            {"name": "user-admin", "path": "/api/users/:id/admin", "upstream": "http://a", "auth": "jwt"},
        ]));
        for path in [
            "/api/admin;x=1",
            "/api/admin%2F",
            "/api/admin%5C",
            "/api%2Fadmin",
            "/api/users/7%2Fadmin",
            "/api/users/7/admin;jsessionid=1",
        ] {
            assert!(t.ambiguous("GET", path, WafMode::Block), "{path}");
        }
        for path in [
            "/api/admin",
            "/api/other%2Fthing",
            "/api/other;v=2",
            "/api/admin/x;v=2",
            "/api/users/a%2Fb",
            "/elsewhere%2Fx",
        ] {
            assert!(!t.ambiguous("GET", path, WafMode::Block), "{path}");
        }
    }

    #[test]
    fn an_escaped_slash_in_a_parameter_between_routes_with_the_same_checks_passes() {
        let t = table(json!([
            {"name": "api", "path": "/api", "upstream": "http://a"},
            {"name": "issues", "path": "/api/projects/:id/issues", "upstream": "http://a"},
        ]));
        assert!(!t.ambiguous(
            "GET",
            "/api/projects/group%2Fproject/issues",
            WafMode::Block
        ));
    }

    #[test]
    fn a_path_another_reading_routes_to_a_route_checking_bodies_otherwise_is_ambiguous() {
        let t = table(json!([
            {"name": "raw", "path": "/up", "methods": ["PUT"], "upstream": "http://a", "waf_body": "off"},
            {"name": "meta", "path": "/up/meta", "methods": ["PUT"], "upstream": "http://a"},
        ]));
        for path in ["/up/meta;x=1", "/up/meta%2F", "/up/x/..;/meta", "/up/META"] {
            assert!(t.ambiguous("PUT", path, WafMode::Block), "{path}");
        }
        assert!(
            !t.ambiguous("PUT", "/up/other;x=1", WafMode::Block),
            "the off route both ways"
        );
    }

    /// A route that sets `waf_body` to the global mode checks bodies as one that sets none: `group%2Fproject` read
    /// both ways meets the two and is no more ambiguous than before routes had body modes.
    #[test]
    fn a_route_setting_the_global_body_mode_checks_bodies_as_one_setting_none() {
        let t = table(json!([
            {"name": "api", "path": "/api", "methods": ["POST"], "upstream": "http://a", "waf_body": "block"},
            {"name": "issues", "path": "/api/projects/:id/issues", "methods": ["POST"], "upstream": "http://a"},
        ]));
        let path = "/api/projects/group%2Fproject/issues";
        assert!(!t.ambiguous("POST", path, WafMode::Block));
        assert!(
            t.ambiguous("POST", path, WafMode::Log),
            "block here, log there"
        );
    }

    #[test]
    fn dot_dot_semicolon_is_ambiguous() {
        let t = table(json!([
            {"name": "all", "path": "/api", "upstream": "http://a"},
            {"name": "admin", "path": "/api/admin", "upstream": "http://a", "auth": "jwt"},
        ]));
        assert!(t.ambiguous("GET", "/api/x/..;/admin", WafMode::Block));
        assert!(
            t.ambiguous("GET", "/api/x/../admin", WafMode::Block),
            "%2e%2e decoded by normalise_path"
        );
    }

    /// The origin resolves dot segments (the runtime's fetch those spelled `..`, Tomcat, Spring and Jetty `..;`)
    /// against the upstream URL, not the client's path: one that climbs above the part of the path appended to
    /// the upstream base would reach the origin outside it, whatever route the client's path resolves to.
    #[test]
    fn a_path_whose_dot_segments_climb_above_the_upstream_base_is_ambiguous() {
        let t = table(json!([
            {"name": "api", "path": "/api", "strip_prefix": "/api", "upstream": "http://a/v2"},
            {"name": "root", "path": "/", "upstream": "http://b/site"},
        ]));
        for path in [
            "/api/../api/x",
            "/api/..;/api/x",
            "/api/..;x=1/api/x",
            "/api/x/../../api/y",
            "/api/..%2Fapi/x",
            "/docs/../../x",
            "/..;/x",
        ] {
            assert!(t.ambiguous("GET", path, WafMode::Block), "{path}");
        }
        // Dot segments that stay inside the appended part resolve where the client's path does.
        for path in ["/api/x/../y", "/api/x/..;/y", "/docs/a/../b", "/api/./x"] {
            assert!(!t.ambiguous("GET", path, WafMode::Block), "{path}");
        }
    }

    #[test]
    fn the_most_specific_matching_route_wins() {
        let t = table(json!([
            {"name": "all", "path": "/api", "methods": ["GET", "POST"], "upstream": "http://a"},
            {"name": "users", "path": "/api/users", "upstream": "http://b"},
            {"name": "user", "path": "/api/users/:id", "methods": ["GET", "DELETE"], "upstream": "http://c"},
            {"name": "me", "path": "/api/users/me", "upstream": "http://d"},
        ]));
        let cases = [
            ("GET", "/api", "all"),
            ("GET", "/api/other/x", "all"),
            ("GET", "/api/users", "users"),
            ("GET", "/api/users/7", "user"),
            ("GET", "/api/users/7/posts", "user"),
            ("GET", "/api/users/me", "me"),
            ("HEAD", "/api/users/me", "me"),
        ];
        for (method, path, name) in cases {
            match t.resolve(method, path) {
                Matched::Route { route, .. } => assert_eq!(route.name, name, "{method} {path}"),
                other => panic!("{method} {path}: expected {name}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_method_the_most_specific_pattern_does_not_take_is_405_not_a_broader_routes_request() {
        // The broader route's checks are not the ones set for the path: an open `/api` must not take the POST or
        // DELETE of an admin route that only serves GET.
        let t = table(json!([
            {"name": "all", "path": "/api", "methods": ["GET", "POST", "DELETE"], "upstream": "http://a"},
            {"name": "admin", "path": "/api/admin", "methods": ["GET"], "upstream": "http://a",
             "auth": "jwt", "permissions": ["admin"]},
            {"name": "user", "path": "/api/users/:id", "methods": ["GET"], "upstream": "http://c"},
            {"name": "user-delete", "path": "/api/users/:key", "methods": ["DELETE"], "upstream": "http://c",
             "auth": "jwt"},
        ]));
        let get_head = Matched::MethodNotAllowed {
            allowed: vec!["GET".into(), "HEAD".into()],
        };
        assert_eq!(t.resolve("POST", "/api/admin/users"), get_head);
        assert_eq!(t.resolve("DELETE", "/api/admin/users/7"), get_head);
        // One pattern's methods may be split between routes (parameter names aside): each serves its own, and
        // the 405 lists them all.
        for (method, name) in [("GET", "user"), ("DELETE", "user-delete")] {
            match t.resolve(method, "/api/users/7") {
                Matched::Route { route, .. } => assert_eq!(route.name, name, "{method}"),
                other => panic!("{method}: expected {name}, got {other:?}"),
            }
        }
        assert_eq!(
            t.resolve("POST", "/api/users/7"),
            Matched::MethodNotAllowed {
                allowed: vec!["GET".into(), "HEAD".into(), "DELETE".into()]
            }
        );
        let Matched::Route { route, .. } = t.resolve("POST", "/api/other") else {
            panic!("the broader route still serves its own paths");
        };
        assert_eq!(route.name, "all");
    }

    #[test]
    fn a_broader_route_is_asked_only_when_it_checks_as_every_more_specific_route_met() {
        // An open GET page under an admin area must not open the area's POST to `/api`: `/api` checks as the
        // page, but not as `/api/admin`, which stands between them.
        let t = table(json!([
            {"name": "all", "path": "/api", "methods": ["GET", "POST"], "upstream": "http://a"},
            {"name": "admin", "path": "/api/admin", "methods": ["POST"], "upstream": "http://a",
             "auth": "jwt", "permissions": ["admin"]},
            {"name": "status", "path": "/api/admin/status", "methods": ["GET"], "upstream": "http://a"},
        ]));
        assert_eq!(
            t.resolve("POST", "/api/admin/status"),
            Matched::MethodNotAllowed {
                allowed: vec!["GET".into(), "HEAD".into()]
            }
        );
        for (method, path, name) in [
            ("POST", "/api/admin/other", "admin"),
            ("GET", "/api/admin/status", "status"),
            ("POST", "/api/other", "all"),
        ] {
            match t.resolve(method, path) {
                Matched::Route { route, .. } => assert_eq!(route.name, name, "{method} {path}"),
                other => panic!("{method} {path}: expected {name}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_broader_route_that_checks_alike_or_more_serves_the_methods_a_specific_one_leaves() {
        // A GET route that only sets a cache policy under a broader route with the same checks.
        let t = table(json!([
            {"name": "api", "path": "/api", "methods": ["GET", "POST", "DELETE"], "upstream": "http://a",
             "auth": "jwt", "permissions": ["read"]},
            {"name": "catalog", "path": "/api/catalog", "upstream": "http://a", "auth": "jwt",
             "permissions": ["read"], "cache": "api-public"},
            {"name": "stricter", "path": "/api/stricter", "upstream": "http://a", "auth": "jwt"},
            {"name": "open-items", "path": "/api/open", "upstream": "http://a"},
        ]));
        let served_by = |method: &str, path: &str| match t.resolve(method, path) {
            Matched::Route { route, .. } => route.name.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(served_by("GET", "/api/catalog/items"), "catalog");
        assert_eq!(
            served_by("POST", "/api/catalog/items"),
            "api",
            "the same checks"
        );
        // /api asks for the read permission /api/stricter does not: a request admitted there is checked more at
        // /api, never less.
        assert_eq!(served_by("DELETE", "/api/stricter/x"), "api");
        // An open route's request is never handed to /api either way round: /api's checks are not open-items'.
        assert_eq!(
            t.resolve("POST", "/api/open/x"),
            Matched::MethodNotAllowed {
                allowed: vec!["GET".into(), "HEAD".into()]
            }
        );
    }

    #[test]
    fn the_methods_a_path_is_served_with_are_those_of_every_route_of_its_pattern() {
        let t = table(json!([
            {"name": "read", "path": "/o", "methods": ["GET"], "upstream": "http://a"},
            {"name": "write", "path": "/o", "methods": ["PUT", "OPTIONS"], "upstream": "http://b"},
            {"name": "other", "path": "/p", "methods": ["POST"], "upstream": "http://a"},
        ]));
        let listed = vec![
            "GET".to_owned(),
            "HEAD".into(),
            "PUT".into(),
            "OPTIONS".into(),
        ];
        assert_eq!(
            t.allowed("/o/x"),
            listed,
            "both routes' methods, not the one OPTIONS met"
        );
        assert_eq!(
            t.resolve("PATCH", "/o/x"),
            Matched::MethodNotAllowed { allowed: listed },
            "as a 405 lists them"
        );
        assert_eq!(t.allowed("/p"), vec!["POST".to_owned()]);
        assert!(t.allowed("/nowhere").is_empty());
    }

    #[test]
    fn routes_whose_paths_differ_only_in_letter_case_are_refused() {
        let value = json!([
            {"name": "low", "path": "/a/:x", "upstream": "http://a"},
            {"name": "up", "path": "/A/:y", "methods": ["POST"], "upstream": "http://a", "auth": "jwt"},
        ]);
        let error = RouteTable::parse(&value, &CachePolicies::default(), None).expect_err("twins");
        assert!(
            error.contains("only in letter case") && error.contains("\"low\""),
            "{error}"
        );
    }

    #[test]
    fn with_upper_case_in_a_route_a_lower_case_path_that_meets_other_checks_is_ambiguous() {
        // ASP.NET's casing: /api/Admin needs a token, and /api/admin/users must not pass the open /api to it.
        let t = table(json!([
            {"name": "all", "path": "/api", "upstream": "http://a"},
            {"name": "admin", "path": "/api/Admin", "upstream": "http://a", "auth": "jwt"},
        ]));
        assert!(t.ambiguous("GET", "/api/admin/users", WafMode::Block));
        assert!(t.ambiguous("GET", "/api/x/../admin", WafMode::Block));
        assert!(
            !t.ambiguous("GET", "/api/Admin/users", WafMode::Block),
            "its own spelling"
        );
        assert!(!t.ambiguous("GET", "/api/other", WafMode::Block));
    }

    #[test]
    fn a_path_that_meets_a_route_with_other_checks_in_another_letter_case_is_ambiguous() {
        let t = table(json!([
            {"name": "all", "path": "/api", "upstream": "http://a"},
            {"name": "admin", "path": "/api/admin", "upstream": "http://a", "auth": "jwt"},
            {"name": "Docs", "path": "/Docs/API", "upstream": "http://a", "auth": "jwt"},
        ]));
        for path in [
            "/api/ADMIN/users",
            "/api/Admin",
            "/api/x/../Admin",
            "/api/ADMIN;x=1",
        ] {
            assert!(t.ambiguous("GET", path, WafMode::Block), "{path}");
        }
        // A route's own spelling, and paths every reading routes alike, are not.
        for path in [
            "/Docs/API/x",
            "/api/admin/users",
            "/api/Users",
            "/API/other",
        ] {
            assert!(!t.ambiguous("GET", path, WafMode::Block), "{path}");
        }
        assert_eq!(
            t.resolve("GET", "/API/other"),
            Matched::NotFound,
            "404 as before"
        );
    }

    #[test]
    fn a_strip_prefix_is_whole_literal_segments_of_the_path() {
        let policies = CachePolicies::default();
        for (prefix, path) in [
            ("/t/:tenant", "/t/:tenant/api"),
            ("/api/v", "/api/v1"),
            ("/api/v1/x", "/api/v1"),
        ] {
            let value = json!([{"path": path, "upstream": "http://a", "strip_prefix": prefix}]);
            let error = RouteTable::parse(&value, &policies, None).expect_err(prefix);
            assert!(
                error.contains("whole literal segments"),
                "{prefix}: {error}"
            );
        }
        let t = table(json!([
            {"path": "/t/:tenant/api", "upstream": "http://a/v2", "strip_prefix": "/t"},
            {"path": "/api//v1/", "upstream": "http://b", "strip_prefix": "/api//v1/"},
            {"path": "/all", "upstream": "http://c", "strip_prefix": "/"},
        ]));
        let url = |i: usize, path: &str| t.routes()[i].upstream_url(path, None);
        assert_eq!(url(0, "/t/acme/api/items"), "http://a/v2/acme/api/items");
        assert_eq!(url(1, "/api/v1/x"), "http://b/x");
        assert_eq!(url(2, "/all/x"), "http://c/all/x", "`/` strips nothing");
    }

    #[test]
    fn a_route_is_written_as_requests_are_matched_so_a_literal_percent_still_meets_it() {
        // A request's `/promo/50%off` is matched as `/promo/50%25off` (request_url::normalise_path).
        let t = table(json!([
            {"path": "/promo/50%off", "upstream": "http://a", "strip_prefix": "/promo/50%off"},
            {"path": "/%61pi", "upstream": "http://b"},
        ]));
        let request = normalise_path("/promo/50%off/x");
        assert_eq!(request, "/promo/50%25off/x");
        assert!(matches!(t.resolve("GET", &request), Matched::Route { .. }));
        assert_eq!(t.routes()[0].upstream_url(&request, None), "http://a/x");
        assert!(matches!(t.resolve("GET", "/api"), Matched::Route { .. }));
        // A request's `/docs/café` arrives as `/docs/caf%C3%A9` (the URL escapes it).
        let t = table(json!([
            {"path": "/docs/café", "upstream": "http://a", "strip_prefix": "/docs/café"},
        ]));
        let request = normalise_path("/docs/caf%c3%a9/x");
        assert!(matches!(t.resolve("GET", &request), Matched::Route { .. }));
        assert_eq!(t.routes()[0].upstream_url(&request, None), "http://a/x");
    }

    #[test]
    fn params_are_captured_and_unmatched_paths_or_methods_answer_404_or_405() {
        let t = table(json!([
            {"path": "/items/:id", "methods": ["GET"], "upstream": "http://a"},
            {"path": "/items", "methods": ["POST"], "upstream": "http://a"},
        ]));
        let Matched::Route { params, .. } = t.resolve("GET", "/items/42") else {
            panic!("GET /items/42 matches");
        };
        assert_eq!(params.get("id").map(String::as_str), Some("42"));
        assert_eq!(
            t.resolve("GET", "/other"),
            Matched::NotFound,
            "unknown path"
        );
        assert_eq!(
            t.resolve("GET", "/itemsx"),
            Matched::NotFound,
            "prefix is per segment"
        );
        assert_eq!(
            t.resolve("PUT", "/items/42"),
            Matched::MethodNotAllowed {
                allowed: vec!["GET".into(), "HEAD".into(), "POST".into()]
            },
            "405 lists the methods of every route asked (these check alike)"
        );
    }

    #[test]
    fn upstream_urls_strip_the_prefix_and_keep_the_query() {
        let t = table(json!([
            {"path": "/api/v1", "upstream": "http://o:8080/base/", "strip_prefix": "/api"},
            {"path": "/raw", "upstream": "https://o"},
        ]));
        let routes = t.routes();
        let cases = [
            (
                &routes[0],
                "/api/v1/x",
                Some("a=1"),
                "http://o:8080/base/v1/x?a=1",
            ),
            (&routes[0], "/api", None, "http://o:8080/base"),
            (&routes[1], "/raw/y", Some(""), "https://o/raw/y?"),
            (&routes[1], "/raw/y", None, "https://o/raw/y"),
        ];
        for (route, path, query, expected) in cases {
            assert_eq!(route.upstream_url(path, query), expected, "{path}");
        }
    }

    #[test]
    fn the_route_prefix_alone_asks_the_upstream_base_as_written_and_a_trailing_slash_stays_the_clients(
    ) {
        let t = table(json!([
            {"path": "/api", "upstream": "https://o/v2", "strip_prefix": "/api"},
            {"path": "/root", "upstream": "https://o", "strip_prefix": "/root"},
        ]));
        let routes = t.routes();
        let cases = [
            // `/api` is the upstream's `/v2`, as `/api/x` is its `/v2/x`: asked as `/v2/`, an origin that redirects
            // `/v2/` to `/v2` (FastAPI's `redirect_slashes`, Laravel's trailing-slash rule) had its redirect mapped
            // back to `/api`, which asked `/v2/` again — a redirect loop.
            (&routes[0], "/api", None, "https://o/v2"),
            (&routes[0], "/api", Some("a=1"), "https://o/v2?a=1"),
            (&routes[0], "/api/", None, "https://o/v2/"),
            (&routes[0], "/api/x/", None, "https://o/v2/x/"),
            // An upstream without a path has none to keep: its root is `/`.
            (&routes[1], "/root", None, "https://o/"),
            (&routes[1], "/root", Some(""), "https://o/?"),
        ];
        for (route, path, query, expected) in cases {
            assert_eq!(
                route.upstream_url(path, query),
                expected,
                "{path} {query:?}"
            );
        }
    }

    #[test]
    fn a_bad_entry_is_named_with_the_rule_it_broke() {
        let cases = [
            (json!({"x": 1}), "must be a list, not a table"),
            (
                json!([{"name": "a", "path": "nope", "upstream": "http://a"}]),
                "route 0 (\"a\"): path",
            ),
            (
                json!([{"path": "/a", "upstream": "ftp://a"}]),
                "route 0: upstream",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a:99999"}]),
                "route 0: upstream",
            ),
            // Port 0 parses, but no connection can be made to it: every request was 502.
            (
                json!([{"path": "/a", "upstream": "http://a:0/v1"}]),
                "route 0: upstream",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a/v1/../admin"}]),
                "route 0: upstream",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "methods": ["BREW"]}]),
                "method \"BREW\"",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "methods": []}]),
                "methods must not be empty",
            ),
            (
                json!([{"path": "/a/:", "upstream": "http://a"}]),
                "bad parameter",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "auth": "magic"}]),
                "unknown variant",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "cache": "forever"}]),
                "cache policy \"forever\"",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "timeout_ms": 0}]),
                "timeout_ms",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "retries": 9}]),
                "retries",
            ),
            // A value of the wrong type names its field (serde alone said only "invalid type: string").
            (
                json!([{"path": "/a", "upstream": "http://a", "timeout_ms": "5000"}]),
                "route 0: timeout_ms: invalid type",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "methods": ["GET", 7]}]),
                "route 0: methods: invalid type",
            ),
            // A missing field is named by serde itself, and no field beside it is blamed.
            (
                json!([{"name": "a", "path": "/a"}]),
                "route 0 (\"a\"): missing field `upstream`",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "permissions": ["x"]}]),
                "permissions need",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "strip_prefix": "/b"}]),
                "strip_prefix",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "colour": "red"}]),
                "unknown field",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a"}, {"name": "dup", "path": "/a/", "upstream": "http://b"}]),
                "route 1 (\"dup\"): path /a/ with these methods is already served",
            ),
            (
                json!([{"name": "x", "path": "/a", "upstream": "http://a"}, {"name": "x", "path": "/b", "upstream": "http://b"}]),
                "route 1 (\"x\"): the name \"x\" is already used",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a"}, {"name": "route-0", "path": "/b", "upstream": "http://b"}]),
                "the name \"route-0\" is already used",
            ),
            // In another case too: the purge tag `route:<name>` is one in any case (tags are case-insensitive, as
            // Cloudflare's are), so a purge of `route:shop` took down route `Shop`'s entries as well.
            (
                json!([{"name": "shop", "path": "/a", "upstream": "http://a"}, {"name": "Shop", "path": "/b", "upstream": "http://b"}]),
                "route 1 (\"Shop\"): the name \"Shop\" is already used",
            ),
            (
                json!([{"name": "a;b", "path": "/a", "upstream": "http://a"}]),
                "a name is 1 to 64",
            ),
            (
                json!([{"name": "..", "path": "/a", "upstream": "http://a"}]),
                "not `.` or `..`",
            ),
            (
                json!([{"name": ".", "path": "/a", "upstream": "http://a"}]),
                "not `.` or `..`",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "auth": "jwt", "permissions": ["read, write"]}]),
                "permission \"read, write\" can never be held",
            ),
            (
                json!([{"path": "/a", "upstream": "http://a", "auth": "jwt", "permissions": [" admin"]}]),
                "can never be held",
            ),
        ];
        for (value, expected) in cases {
            let error = RouteTable::parse(&value, &CachePolicies::default(), None)
                .expect_err("must be refused");
            assert!(error.contains(expected), "{value}: {error}");
        }
    }

    /// The runtime sends no `user:password@` of a fetched URL (no `Authorization` either: seen in workerd, the origin
    /// got neither), so such a route was served with its origin's every request unauthenticated. Refused without
    /// quoting the URL: the error is the answer every request gets, and the password is a secret.
    #[test]
    fn an_upstream_with_credentials_is_refused_without_quoting_them() {
        for upstream in [
            "https://user:s3cret@o.example",
            "https://user@o.example/v1",
            "http://:s3cret@127.0.0.1:8080",
            "https://user:s3cret@o.example:99999",
        ] {
            let error = RouteTable::parse(
                &json!([{"name": "r", "path": "/a", "upstream": upstream}]),
                &CachePolicies::default(),
                None,
            )
            .expect_err(upstream);
            assert!(
                error.starts_with("route 0 (\"r\"): upstream must not hold credentials"),
                "{upstream}: {error}"
            );
            assert!(!error.contains("s3cret"), "{upstream}: {error}");
        }
        table(json!([{"path": "/a", "upstream": "https://o.example/@me"}]));
    }

    /// The URL parser reads a `\` in an http(s) URL as `/` and drops tabs and line breaks, so such an upstream was
    /// taken and its requests went where the parser read it, while the route's redirect map kept the spelling: with
    /// `http://o.example\v2` an origin's `Location: /v2/login` became `/api/v2/login` (base `/v2` never seen), and
    /// with a tab or line break in the base no redirect was mapped back at all, the origin's own URL passed to the
    /// client. Refused as `RENDER_ORIGIN` and `IMAGES_ORIGIN` are.
    #[test]
    fn an_upstream_the_url_parser_reads_otherwise_than_written_is_refused() {
        for upstream in [
            "http://o.example\\v2",
            "http://o.example/v2\\x",
            "http://o.example/v\t2",
            "http://o.example/v2\n",
            "http://o.example/v2\r",
            "http://o.example/v2\u{7f}",
            "http://o.example/v2\u{a0}",
        ] {
            let error = RouteTable::parse(
                &json!([{"name": "r", "path": "/api", "upstream": upstream, "strip_prefix": "/api"}]),
                &CachePolicies::default(),
                None,
            )
            .expect_err(upstream);
            assert!(
                error.starts_with("route 0 (\"r\"): upstream "),
                "{upstream:?}: {error}"
            );
        }
    }

    /// A cache policy that can store nothing on its route was taken and served as no cache at all, silently: a
    /// per-user one (`shared: false`) keys by the signed-in user, whom an `auth: none` route never has, and no policy
    /// stores the answers of a route without GET (or HEAD), the only methods answered from the cache.
    #[test]
    fn a_cache_policy_that_could_store_nothing_on_its_route_is_refused() {
        for (route, expected) in [
            (
                json!({"name": "r", "path": "/a", "upstream": "http://a", "cache": "api-personalized"}),
                "route 0 (\"r\"): cache policy \"api-personalized\" is per user",
            ),
            (
                json!({"name": "r", "path": "/a", "methods": ["POST", "PUT"], "upstream": "http://a",
                       "cache": "api-public"}),
                "route 0 (\"r\"): cache policy \"api-public\" applies to GET and HEAD",
            ),
        ] {
            let error = RouteTable::parse(&json!([route]), &CachePolicies::default(), None)
                .expect_err(expected);
            assert!(error.starts_with(expected), "{error}");
        }
        table(json!([
            {"path": "/me", "upstream": "http://a", "auth": "jwt", "cache": "api-personalized"},
            {"path": "/head", "methods": ["HEAD"], "upstream": "http://a", "cache": "api-public"},
            {"path": "/rw", "methods": ["POST", "GET"], "upstream": "http://a", "cache": "api-public"},
        ]));
    }

    /// Retries apply to the methods that can be asked again ([`is_retryable_method`]): on a route of POST or PATCH
    /// alone, `retries` was taken and never applied, its first connection failure answered 502 as with none.
    #[test]
    fn retries_on_a_route_with_no_method_to_retry_are_refused() {
        let error = RouteTable::parse(
            &json!([{"name": "r", "path": "/a", "methods": ["POST", "PATCH"], "upstream": "http://a", "retries": 2}]),
            &CachePolicies::default(),
            None,
        )
        .expect_err("nothing to retry");
        assert!(
            error.starts_with(
                "route 0 (\"r\"): retries apply to GET, HEAD, OPTIONS, PUT and DELETE"
            ),
            "{error}"
        );
        table(json!([
            {"path": "/w", "methods": ["POST"], "upstream": "http://a", "retries": 0},
            {"path": "/rw", "methods": ["POST", "PUT"], "upstream": "http://a", "retries": 2},
        ]));
    }

    /// A blank after a path (`"/api "`, a copy-paste) was escaped into it (`/api%20`), as a space inside one is: no
    /// request for `/api` met the route, and the answer was 404 without a word at start.
    #[test]
    fn a_path_with_blanks_around_it_is_refused() {
        for (route, expected) in [
            (
                json!({"name": "r", "path": "/api ", "upstream": "http://a"}),
                "route 0 (\"r\"): path \"/api \" has blanks around it",
            ),
            (
                json!({"name": "r", "path": "/api/\t", "upstream": "http://a"}),
                "route 0 (\"r\"): path \"/api/\\t\" has blanks around it",
            ),
            (
                json!({"name": "r", "path": "/api", "strip_prefix": "/api ", "upstream": "http://a"}),
                "route 0 (\"r\"): strip_prefix \"/api \" has blanks around it",
            ),
        ] {
            let error = RouteTable::parse(&json!([route]), &CachePolicies::default(), None)
                .expect_err(expected);
            assert!(error.starts_with(expected), "{error}");
        }
        let t = table(json!([{"path": "/my docs", "upstream": "http://a"}]));
        assert!(matches!(
            t.resolve("GET", "/my%20docs/x"),
            Matched::Route { .. }
        ));
    }

    #[test]
    fn a_route_may_check_its_bodies_in_its_own_waf_mode() {
        let global = WafConfig::default();
        let routes = table(json!([
            {"name": "upload", "path": "/up", "methods": ["PUT"], "upstream": "http://a", "waf_body": "off"},
            {"name": "watched", "path": "/w", "methods": ["POST"], "upstream": "http://a", "waf_body": "log"},
            {"name": "plain", "path": "/p", "methods": ["POST"], "upstream": "http://a"},
        ]));
        let mode = |name: &str| {
            let route = routes.routes.iter().find(|r| r.name == name).expect(name);
            route.body_waf(&global)
        };
        assert_eq!(mode("upload").mode, WafMode::Off);
        assert_eq!(mode("watched").mode, WafMode::Log);
        assert_eq!(
            *mode("plain"),
            global,
            "the global settings when the route sets none"
        );
        assert_eq!(
            mode("upload").inspect_body_bytes,
            global.inspect_body_bytes,
            "only the mode is the route's"
        );
        let logging = WafConfig {
            mode: WafMode::Log,
            ..WafConfig::default()
        };
        let strict = table(json!([
            {"path": "/b", "methods": ["POST"], "upstream": "http://a", "waf_body": "block"}
        ]));
        assert_eq!(strict.routes[0].body_waf(&logging).mode, WafMode::Block);
        let error = RouteTable::parse(
            &json!([{"name": "x", "path": "/a", "upstream": "http://a", "waf_body": "skip"}]),
            &CachePolicies::default(),
            None,
        )
        .expect_err("not a mode");
        assert!(
            error.contains("route 0 (\"x\")") && error.contains("unknown variant `skip`"),
            "{error}"
        );
    }

    #[test]
    fn a_route_accepts_websockets_only_when_it_opts_in_and_serves_get() {
        let routes = table(json!([
            {"name": "chat", "path": "/chat", "upstream": "http://a", "websocket": true},
            {"name": "feed", "path": "/feed", "methods": ["GET", "POST"], "upstream": "http://a"},
        ]));
        let accepts = |name: &str| {
            routes
                .routes
                .iter()
                .find(|r| r.name == name)
                .expect(name)
                .websocket
        };
        assert!(accepts("chat"));
        assert!(!accepts("feed"), "off unless the route says so");
        for value in [
            json!([{"name": "push", "path": "/push", "methods": ["POST"], "upstream": "http://a", "websocket": true}]),
            json!([{"name": "push", "path": "/push", "methods": ["HEAD"], "upstream": "http://a", "websocket": true}]),
        ] {
            let error = RouteTable::parse(&value, &CachePolicies::default(), None)
                .expect_err("a handshake is a GET");
            assert!(
                error.contains("route 0 (\"push\")") && error.contains("websocket needs GET"),
                "{error}"
            );
        }
        let error = RouteTable::parse(
            &json!([{"name": "x", "path": "/a", "upstream": "http://a", "websocket": "yes"}]),
            &CachePolicies::default(),
            None,
        )
        .expect_err("not a boolean");
        assert!(error.contains("route 0 (\"x\")"), "{error}");
    }

    #[test]
    fn rate_limit_names_are_checked_when_the_policies_are_known() {
        let value = json!([{"path": "/a", "upstream": "http://a", "rate_limit": "burst"}]);
        let known = vec!["api".to_owned()];
        let error = RouteTable::parse(&value, &CachePolicies::default(), Some(&known))
            .expect_err("unknown policy");
        assert!(error.contains("rate-limit policy \"burst\""), "{error}");
        assert!(RouteTable::parse(&value, &CachePolicies::default(), None).is_ok());
    }

    #[test]
    fn a_route_may_name_several_rate_limits_that_all_apply() {
        let known: Vec<String> = ["api", "per-ip", "a", "b", "c"].map(str::to_owned).to_vec();
        let parse = |rate_limit: serde_json::Value| {
            let value = json!([{"path": "/a", "upstream": "http://a", "rate_limit": rate_limit}]);
            RouteTable::parse(&value, &CachePolicies::default(), Some(&known))
                .map(|table| table.routes[0].rate_limits.clone())
        };
        assert_eq!(parse(json!("api")), Ok(vec!["api".to_owned()]));
        assert_eq!(
            parse(json!(["api", "per-ip"])),
            Ok(vec!["api".to_owned(), "per-ip".to_owned()])
        );
        let none = json!([{"path": "/a", "upstream": "http://a"}]);
        let table = RouteTable::parse(&none, &CachePolicies::default(), Some(&known));
        assert_eq!(table.map(|t| t.routes[0].rate_limits.is_empty()), Ok(true));
        for (bad, expected) in [
            (json!([]), "a list of 1 to 4"),
            (json!(["api", "per-ip", "a", "b", "c"]), "a list of 1 to 4"),
            (json!(["api", "api"]), "\"api\" is named twice"),
            (json!(["api", "burst"]), "\"burst\" is not defined"),
            (json!(["api", ""]), "must be a policy name"),
            (json!(""), "must be a policy name"),
            (json!(5), "a policy name or a list of policy names"),
            (json!(["api", 5]), "a policy name or a list of policy names"),
            (
                json!({"name": "api"}),
                "a policy name or a list of policy names",
            ),
        ] {
            let error = parse(bad.clone()).expect_err("refused");
            assert!(error.contains(expected), "{bad}: {error}");
            assert!(
                error.starts_with("route 0"),
                "{bad}: names the route: {error}"
            );
        }
    }

    #[test]
    fn a_path_with_dot_segments_is_refused_as_never_matching() {
        // Requests arrive with `.` and `..` resolved (the runtime's URL parser, `%2e` read by the ambiguity check
        // as the origin reads it): a route written with one would never serve a request.
        for path in [
            "/a/../b",
            "/./x",
            "/a/.",
            "/a/%2e%2E/b",
            "/a/%2E/b",
            "/..",
            "/v1/:id/../x",
        ] {
            let routes = json!([{"name": "dots", "path": path, "upstream": "http://a"}]);
            let error =
                RouteTable::parse(&routes, &CachePolicies::default(), None).expect_err(path);
            assert!(error.starts_with("route 0 (\"dots\")"), "{path}: {error}");
            assert!(error.contains("dot segment"), "{path}: {error}");
        }
        // A backslash is a `/` to the runtime's URL parser (WHATWG, http and https): `/a\\..\\b` is `/b` by then, and
        // `/a\\b` is `/a/b`; written `%5C` it stays one.
        for path in ["/a\\..\\b", "/a\\b", "/a/..\\"] {
            let routes = json!([{"name": "slash", "path": path, "upstream": "http://a"}]);
            let error =
                RouteTable::parse(&routes, &CachePolicies::default(), None).expect_err(path);
            assert!(error.contains("backslash"), "{path}: {error}");
        }
        assert!(RouteTable::parse(
            &json!([{"name": "escaped", "path": "/a%5Cb", "upstream": "http://a"}]),
            &CachePolicies::default(),
            None
        )
        .is_ok());
        for path in ["/a/...", "/a/.well-known", "/a/b.c", "/.x", "/a/..b"] {
            let routes = json!([{"name": "dotted", "path": path, "upstream": "http://a"}]);
            assert!(
                RouteTable::parse(&routes, &CachePolicies::default(), None).is_ok(),
                "{path}"
            );
        }
    }
}
