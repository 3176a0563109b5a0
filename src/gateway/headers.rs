//! Header rewriting for the proxy: which request and response headers are dropped (hop-by-hop, client-sent
//! identity), and the forwarding headers the origin receives. Pure: works on name/value pairs.

use std::borrow::Cow;
use std::net::IpAddr;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus ones that only make sense on one connection; never forwarded.
/// `Expect` among them: its `100-continue` is the client's exchange with the edge, and an origin's interim 100
/// would reach the runtime's client as the final answer (a 502).
const HOP_BY_HOP: &[&str] = &[
    "expect",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Request headers that name the client's address, which some origins trust (nginx `real_ip_header`, allow-lists):
/// a client could set any of them. The origin learns the address from `X-Forwarded-For`, set by the gateway.
const CLIENT_ADDRESS: &[&str] = &[
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    // The address as another proxy in front of an origin names it: ingress-nginx keeps the list it was sent in
    // `X-Original-Forwarded-For`, Google's load balancers name the user's in `X-ProxyUser-Ip`, Azure Front Door in
    // `X-Azure-ClientIP` (and its connection's in `X-Azure-SocketIP`), WebLogic's plug-in
    // its caller's in `WL-Proxy-Client-IP` / `Proxy-Client-IP` (which Java client-address helpers read first), and
    // PHP's read `HTTP_X_FORWARDED` and `HTTP_FORWARDED_FOR` beside `X-Forwarded-For`.
    "x-original-forwarded-for",
    "x-proxyuser-ip",
    // Azure Front Door's: the client's address, and that of the connection it came over.
    "x-azure-clientip",
    "x-azure-socketip",
    "wl-proxy-client-ip",
    "proxy-client-ip",
    "x-forwarded",
    "forwarded-for",
];

/// Request headers by which a TLS-terminating proxy in front of an origin vouches for the client's TLS connection —
/// its certificate (which the origin then authenticates it by: a client's own would log it in with a certificate it
/// holds only the public half of, and certificates are public), whether it was verified, its cipher, or that the
/// request came over TLS at all. RFC 9440 §4 has a proxy remove any `Client-Cert` / `Client-Cert-Chain` a client
/// sent; ASP.NET Core's certificate forwarding reads `X-Client-Cert` (by default) or Azure App Service's
/// `X-ARR-ClientCert`, IIS's module sets `MS-ASPNETCORE-CLIENTCERT`; nginx guides' `X-Client-Verify` /
/// `X-Client-DN`; IIS ARR marks an HTTPS request `X-ARR-SSL`, WebLogic `WL-Proxy-SSL`; and [`TLS_CLIENT_PREFIXES`].
/// The gateway vouches for no certificate (Cloudflare's mTLS results are not forwarded).
const TLS_CLIENT: &[&str] = &[
    "client-cert",
    "client-cert-chain",
    "x-client-verify",
    "x-client-dn",
    "wl-proxy-ssl",
    "x-ssl",
];

/// Name prefixes of [`TLS_CLIENT`] headers: `ssl-` (Tomcat's `SSLValve` reads `ssl_client_cert`, `ssl_cipher`,
/// `ssl_session_id`; Keycloak's X.509 lookups `ssl-client-cert` and Apache's `SSL_CLIENT_CERT`), `x-ssl-`
/// (HAProxy's documented `X-SSL-Client-Cert`, `-Verify`, `-DN`…), `x-client-cert` (ASP.NET Core's, and its chain),
/// `x-arr-` (IIS ARR's and Azure App Service's `X-ARR-SSL`, `X-ARR-ClientCert`) and `ms-aspnetcore-` (what IIS's
/// ASP.NET Core module tells the app: its client certificate, its Windows user's token), `wl-proxy-client-`
/// (WebLogic's plug-in: `WL-Proxy-Client-Cert`, which WebLogic signs the user in by when its plug-in is enabled, and
/// `-Keysize`, `-Secretkeysize`; `WL-Proxy-Client-IP` too) and `x-amzn-mtls-` (AWS ALB's mutual TLS:
/// `X-Amzn-Mtls-Clientcert`, `-Leaf`, `-Subject`, `-Issuer`, `-Serial-Number`, `-Validity`).
const TLS_CLIENT_PREFIXES: &[&str] = &[
    "ssl-",
    "wl-proxy-client-",
    "x-amzn-mtls-",
    "x-ssl-",
    "x-client-cert",
    "x-arr-",
    "ms-aspnetcore-",
];

/// Request headers by which an authenticating proxy in front of an origin vouches for the user it signed in, which
/// an origin set up behind such a proxy believes as it would the gateway's own `X-User-*`: Authelia's `Remote-User`,
/// `-Groups`, `-Email`, `-Name`; the Kubernetes API server's authenticating-proxy `X-Remote-User` / `-Group` (and
/// `X-Remote-Extra-*`); Google IAP's `X-Goog-Iap-Jwt-Assertion`; Pomerium's `X-Pomerium-Jwt-Assertion`; OpenSearch's
/// proxy authentication `X-Proxy-User` / `-Roles`; vouch-proxy's `X-Vouch-User`; Kong's (and APISIX's) consumer
/// its auth plugins identified, `X-Consumer-Username`, `-ID`, `-Custom-ID`, `-Groups`, `X-Credential-Identifier`,
/// `X-Anonymous-Consumer`, and its OAuth 2.0 plugin's `X-Authenticated-Userid` / `-Scope`; Kong's OIDC plugin's
/// `X-Userinfo` and `X-Id-Token`; Keycloak Gatekeeper's (Louketo Proxy's) `X-Auth-Userid`, `-Subject`, `-Roles`,
/// `-Groups`, and `-Audience` and `-ExpiresIn`, the audience and expiry of the token it verified, which an origin
/// behind it checks the request by as it would the user (an app reading `X-Auth-Expiresin` as its session's end;
/// Border0 sets that one too) and no client sends as its own (not its `X-Auth-Username` and `X-Auth-Email`,
/// credentials some APIs take beside a password or key: Cloudflare's API reads `X-Auth-Email`); Azure Front Door's
/// `X-Azure-FDID`, by which an origin admits only its own Front Door's requests; and [`IDENTITY_PREFIXES`]. The gateway is the edge's authentication layer: a client must
/// not present itself as signed in by another one, or as come through another.
/// (oauth2-proxy's `X-Forwarded-User/-Email/-Groups` go with the `X-Forwarded-*` family, Cloudflare Access's
/// `Cf-Access-*` with every `Cf-*`.)
const IDENTITY: &[&str] = &[
    "remote-user",
    "remote-groups",
    "remote-email",
    "remote-name",
    "x-remote-user",
    "x-remote-group",
    "x-goog-iap-jwt-assertion",
    "x-pomerium-jwt-assertion",
    "x-proxy-user",
    "x-proxy-roles",
    "x-vouch-user",
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-consumer-groups",
    "x-credential-identifier",
    "x-credential-username",
    "x-anonymous-consumer",
    "x-authenticated-userid",
    "x-authenticated-scope",
    "x-authenticated-groups",
    "x-userinfo",
    "x-id-token",
    "x-auth-userid",
    "x-auth-subject",
    "x-auth-roles",
    "x-auth-groups",
    "x-auth-audience",
    "x-auth-expiresin",
    "x-azure-fdid",
];

/// Name prefixes of [`IDENTITY`] headers: Grafana's and Gitea's auth proxy `X-WEBAUTH-USER`, `-EMAIL`, `-NAME`,
/// `-GROUPS`, `-ROLE`; oauth2-proxy's `X-Auth-Request-User`, `-Email`, `-Groups`, `-Access-Token`; Azure App Service
/// Easy Auth's `X-MS-CLIENT-PRINCIPAL`, `-ID`, `-NAME`, `-IDP` and its token store's `X-MS-TOKEN-*`; Google IAP's
/// `X-Goog-Authenticated-User-Email` / `-Id`; AWS ALB's `X-Amzn-Oidc-Data`, `-Identity`, `-Accesstoken`;
/// Kubernetes' `X-Remote-Extra-*`; Pomerium's `X-Pomerium-Claim-*`; authentik's `X-authentik-*`; vouch-proxy's
/// `X-Vouch-Idp-*`; Tailscale's `Tailscale-User-Login`, `-Name`; and Envoy's `x-envoy-*`, by which a client would
/// steer an Envoy mesh behind the gateway as one of its own (`x-envoy-internal`, `x-envoy-external-address`, retry and
/// timeout overrides) — Envoy drops them only from requests it sees as external. Even a client the gateway trusts
/// sends none (`x-envoy-upstream-rq-timeout-ms` to an origin that is Envoy): the gateway's `X-Forwarded-For` names
/// the client's address, so an Envoy keeping its defaults sees the request as external and drops them itself, and
/// one set to trust the gateway as internal would take them from any client; the route's `timeout_ms` and
/// `retries` bound the gateway's own leg. Only these: other `X-Goog-*`,
/// `X-MS-*` and `X-Amzn-*` fields are API clients' own (`x-goog-user-project`, `x-ms-version`, `x-amzn-trace-id`).
const IDENTITY_PREFIXES: &[&str] = &[
    "x-webauth-",
    "x-auth-request-",
    "x-ms-client-principal",
    "x-ms-token-",
    "x-goog-authenticated-user-",
    "x-amzn-oidc-",
    "x-remote-extra-",
    "x-pomerium-claim-",
    "x-authentik-",
    "x-vouch-idp-",
    "tailscale-user-",
    "x-envoy-",
];

/// Request headers that make an origin treat a request as another method (Symfony and Laravel read the first on a
/// POST, Rails' `Rack::MethodOverride` too): a POST carrying `DELETE` would pass a POST route's checks and be
/// performed as the DELETE a route with other checks serves. `X-Original-Method` is nginx's `auth_request`
/// convention's, which an access service (Authelia's) reads as the method whose access it decides. (A `_method` form or query field cannot be dropped
/// here; an origin that reads one should not be behind per-method checks.)
const METHOD_OVERRIDE: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
];

/// Request headers that would have the origin act on something else than the request the gateway checked: `Proxy`,
/// which a CGI-style server (PHP under FastCGI, Go's `net/http/cgi`) exposes as `HTTP_PROXY`, the variable HTTP
/// clients take their proxy from — the origin's own outgoing requests would go through the caller's proxy (httpoxy,
/// CVE-2016-5385; nginx and Apache advise clearing it at the proxy) — and `X-Original-URL` / `X-Rewrite-URL`, which
/// Symfony (CVE-2018-14773), Zend Framework and IIS's URL Rewrite read as the path to serve: a request to a public
/// route would be served the path of one with other checks — and `X-Original-URI`, which nginx's `auth_request`
/// convention sets for the service that decides access, and such services read as the path asked for: a client's
/// own would be judged instead of the request's.
const TARGET_OVERRIDE: &[&str] = &["proxy", "x-original-url", "x-rewrite-url", "x-original-uri"];

/// Request headers that name another host, scheme or base path than the request's, which frameworks behind a proxy
/// they trust build absolute URLs from (a password-reset link, a cached page's asset URLs, a redirect): `X-Host`
/// (mod_wsgi's `WSGITrustedProxyHeaders`), `X-Original-Host` (Yii 2's `getHostInfo`), `X-HTTP-Host-Override` (among
/// the host overrides scanners try first), `X-Scheme` (Tornado's `xheaders`, mod_wsgi), `X-HTTPS` (mod_wsgi),
/// `Front-End-Https` (Yii 2, IIS), `X-Url-Scheme` (RhodeCode's and Kallithea's `https_fixup`, PHP front
/// controllers), Jetty's `ForwardedRequestCustomizer` defaults `X-Proxied-Https`, `Proxy-Ssl-Id` and
/// `Proxy-Auth-Cert` (each makes the request secure, the last two also name its TLS session and cipher suite) and
/// `X-Script-Name` (mod_wsgi, Flask's `ReverseProxied` recipe: the base of every URL it builds). The origin has the
/// gateway's own `X-Forwarded-Host/-Proto/-Prefix`; `Forwarded` and the `X-Forwarded-*` family
/// (`X-Forwarded-Server` too) are dropped as forwarding headers.
const HOST_OVERRIDE: &[&str] = &[
    "x-host",
    "x-original-host",
    "x-http-host-override",
    "x-scheme",
    "x-https",
    "front-end-https",
    "x-url-scheme",
    "x-proxied-https",
    "proxy-ssl-id",
    "proxy-auth-cert",
    "x-script-name",
];

/// Fields a `Connection` header cannot make hop-by-hop, in either direction: the content's own description (its type,
/// coding, language…), how it may be stored and whose it is — meant for every recipient (RFC 9110 §7.6.1 forbids
/// listing them) and read by the gateway itself (the WAF reads a body by its Content-Type and Content-Encoding; the
/// edge cache stores no answer with a cookie or `no-store`), so the message forwarded is the one that was read.
fn end_to_end(name: &[u8]) -> bool {
    name.starts_with(b"content-")
        || matches!(
            name,
            b"cache-control" | b"expires" | b"vary" | b"set-cookie"
        )
}

/// Names the gateway sets itself from what it verified: a client's own would be taken for them. The forwarding
/// headers (`Forwarded`; `X-Forwarded-*` in [`GATEWAY_SET_PREFIXES`]), the request's id (checked, then set),
/// `traceparent` (re-set from the trace context; `tracestate` passes on with it) and `CDN-Loop` (the list it came
/// with, the gateway's own entry appended: [`cdn_loop_for_origin`]).
const GATEWAY_SET: &[&str] = &["forwarded", "x-request-id", "traceparent", "cdn-loop"];

/// Name prefixes of [`GATEWAY_SET`] headers: `X-User-*` (the verified identity), `X-Forwarded-*` and `Cf-*` (the
/// edge's own, Cloudflare Access's `Cf-Access-*` among them).
const GATEWAY_SET_PREFIXES: &[&str] = &["x-user-", "x-forwarded-", "cf-"];

/// Every name [`forward_request_header`] drops, and every prefix, each sorted for a binary search (one lookup per
/// header, not a scan of each list); made once per isolate from the lists above, which stay the record of why. No
/// prefix starts another, so the one a name may start with is the greatest prefix not after it.
struct Dropped {
    names: Vec<&'static str>,
    prefixes: Vec<&'static str>,
}

impl Dropped {
    /// Every list's names and every prefix, as listed (unsorted).
    fn listed() -> Self {
        Self {
            names: [
                HOP_BY_HOP,
                GATEWAY_SET,
                CLIENT_ADDRESS,
                TLS_CLIENT,
                IDENTITY,
                METHOD_OVERRIDE,
                TARGET_OVERRIDE,
                HOST_OVERRIDE,
            ]
            .concat(),
            prefixes: [GATEWAY_SET_PREFIXES, TLS_CLIENT_PREFIXES, IDENTITY_PREFIXES].concat(),
        }
    }
}

static DROPPED: std::sync::LazyLock<Dropped> = std::sync::LazyLock::new(|| {
    let Dropped {
        mut names,
        mut prefixes,
    } = Dropped::listed();
    names.sort_unstable();
    names.dedup();
    prefixes.sort_unstable();
    Dropped { names, prefixes }
});

/// The longest header name [`forward_request_header`] lowers on the stack; a longer one (none of the lists' is
/// half as long) is lowered on the heap.
const NAME_ON_STACK: usize = 64;

/// Whether a request header is forwarded to the origin. `connection_listed` are the names the client's `Connection`
/// header marks as hop-by-hop (but for [`end_to_end`] fields). Client-sent [`GATEWAY_SET`] headers are always
/// dropped (the gateway sets its own), as are [`HOP_BY_HOP`], [`CLIENT_ADDRESS`], [`TLS_CLIENT`], [`IDENTITY`],
/// [`METHOD_OVERRIDE`], [`TARGET_OVERRIDE`] and [`HOST_OVERRIDE`] headers — in any spelling with `_` for `-` too
/// (`X_User_Id`), which CGI-style servers read as the same variable; for that reason a `Content-*` field spelled
/// with `_` is dropped too (the WAF read the body by the real ones). Called for every header of every proxied
/// request: the name is lowered in a stack buffer and looked up once ([`DROPPED`]).
pub fn forward_request_header(name: &str, connection_listed: &[String]) -> bool {
    let mut stack = [0u8; NAME_ON_STACK];
    let mut heap = Vec::new();
    let lower: &mut [u8] = match stack.get_mut(..name.len()) {
        Some(buffer) => {
            buffer.copy_from_slice(name.as_bytes());
            buffer
        }
        None => {
            heap.extend_from_slice(name.as_bytes());
            heap.as_mut_slice()
        }
    };
    lower.make_ascii_lowercase();
    if !end_to_end(lower) && connection_listed.iter().any(|n| n.as_bytes() == &*lower) {
        return false;
    }
    if lower.contains(&b'_') {
        for byte in lower.iter_mut().filter(|b| **b == b'_') {
            *byte = b'-';
        }
        // The body's description in that spelling (`Content_Encoding`) is the variable a CGI-style server reads for
        // the real field: forwarded, it would have the origin decode or type a body the WAF read without it.
        if lower.starts_with(b"content-") {
            return false;
        }
    }
    let dropped = &*DROPPED;
    let lower = &*lower;
    let after = dropped.prefixes.partition_point(|p| p.as_bytes() <= lower);
    let prefixed = after
        .checked_sub(1)
        .and_then(|at| dropped.prefixes.get(at))
        .is_some_and(|p| lower.starts_with(p.as_bytes()));
    !prefixed
        && dropped
            .names
            .binary_search_by(|n| n.as_bytes().cmp(lower))
            .is_err()
}

/// A `Cookie` header without the cookies named `drop` (edgekit's own session and device cookies, which no origin
/// needs — it learns the user from `X-User-*` — and any origin could replay them), or None when nothing else is left.
/// A header sent by hand in several fields reaches the Worker joined with `, ` (HTTP/2 cookie crumbs come joined with
/// `; `, RFC 9113 §8.2.3), so a pair is also cut at a comma before a dropped name (`a=1, __Host-…=x`): only such
/// pieces go — more than the session's reading (`session::token`, which splits at `;` alone) would take for the
/// cookie, never less — and a value with commas of its own (JSON) is kept as written.
pub fn without_cookies(header: &str, drop: &[&str]) -> Option<String> {
    let dropped =
        |piece: &&str| drop.contains(&piece.split_once('=').map_or(*piece, |(k, _)| k).trim());
    let kept: Vec<Cow<'_, str>> = header
        .split(';')
        .filter_map(|pair| {
            if !pair.split(',').any(|piece| dropped(&piece)) {
                let pair = pair.trim();
                return (!pair.is_empty()).then_some(Cow::Borrowed(pair));
            }
            let left: Vec<&str> = pair.split(',').filter(|p| !dropped(p)).collect();
            let left = left.join(",");
            let left = left.trim();
            (!left.is_empty()).then(|| Cow::Owned(left.to_owned()))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Whether a `Set-Cookie` line sets (or clears) a cookie named one of `names`: its name is what comes before the
/// first `=` of its first `;`-separated part (RFC 6265 §5.2), compared exactly, as browsers compare names.
pub fn sets_cookie_named(set_cookie: &str, names: &[&str]) -> bool {
    let pair = set_cookie.split(';').next().unwrap_or("");
    let name = pair.split_once('=').map_or("", |(name, _)| name).trim();
    names.contains(&name)
}

/// The types an origin's `Clear-Site-Data` wildcard `"*"` stands for, but `"cookies"` (W3C Clear Site Data §3.1).
const CLEARED_BUT_COOKIES: &str = "\"cache\", \"storage\", \"executionContexts\"";

/// An origin's `Clear-Site-Data` as the client may be sent it, or None when nothing is left: without `"cookies"`,
/// and with `"*"` read as every other type. Either would have the browser delete every cookie of the site, the
/// edge's own session and device cookies with them, which no origin's answer may clear (as its `Set-Cookie` lines
/// naming them are dropped): an origin clears its own cookies with `Set-Cookie`. Types are matched in any case
/// (removing more than a browser would is safe).
pub fn clear_site_data_for_client(value: &str) -> Option<String> {
    let mut kept: Vec<&str> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let kind = item.trim_matches('"');
        if kind.eq_ignore_ascii_case("cookies") {
            continue;
        }
        if kind == "*" {
            kept.push(CLEARED_BUT_COOKIES);
        } else {
            kept.push(item);
        }
    }
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// Whether an origin response header is passed back to the client (and kept in a stored copy): not hop-by-hop, nor
/// listed in the origin's `Connection` (but for [`end_to_end`] fields).
pub fn forward_response_header(name: &str, connection_listed: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    !(HOP_BY_HOP.contains(&name.as_str()) && name != "content-length"
        || connection_listed.contains(&name) && !end_to_end(name.as_bytes()))
}

/// The `Accept-Encoding` a `Range` request goes to the origin with. A range is of the representation the origin picks
/// by that field, and the one the Worker has is the runtime's own `br, gzip` whatever the client sent (browsers ask
/// for media ranges in `identity`): an origin serving ranges of coded bytes (Go's `ServeContent` of a precompressed
/// file, an object store's gzip object) sent a gzip fragment, which the runtime, decoding it for a client that
/// accepts no gzip, cannot read — that client got a 206 with no body under a `Content-Range` naming ten bytes.
pub const RANGE_ACCEPT_ENCODING: &str = "identity";

/// `headers` (as forwarded to the origin) asking for the uncoded representation ([`RANGE_ACCEPT_ENCODING`]) when
/// they ask for a range of it; left alone otherwise.
pub fn ranges_uncoded(headers: &mut Vec<(String, String)>) {
    if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("range")) {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("accept-encoding"));
        headers.push((
            "accept-encoding".to_owned(),
            RANGE_ACCEPT_ENCODING.to_owned(),
        ));
    }
}

/// The request headers a fill for a shared policy carries: its answer goes to every requester of the key, and the
/// key holds none of theirs, so only what shapes no one's answer — the representation asked for, the client software,
/// and the forwarding and trace headers — reaches the origin. Anything else a requester sent
/// (credentials, an API key, a tenant header) could tailor an answer that the others would then be served.
/// `Origin` and `Accept-Language` go too: an origin that answers by them says so (`Vary: Origin`, as CORS requires;
/// `Vary: Accept-Language`), and such an answer is never stored — it goes to its own requester, in its language.
pub const SHARED_FILL: &[&str] = &[
    "accept",
    "accept-language",
    "origin",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-request-id",
    "traceparent",
    "tracestate",
    "cdn-loop",
];

/// Request headers a browser sends that shape no answer an origin makes (fetch metadata, client hints, reload and
/// privacy signals): a requester that sent only these and [`SHARED_FILL`] sent nothing a shared fill left out.
const NEUTRAL: &[&str] = &[
    "cache-control",
    "pragma",
    "dnt",
    "sec-gpc",
    "upgrade-insecure-requests",
    "referer",
    "priority",
    "purpose",
    "sec-purpose",
    "save-data",
];

/// Whether a request header could tailor an origin's answer beyond what a shared fill carries: cookies,
/// credentials, API keys, a tenant, identity headers — anything but [`SHARED_FILL`], the codings, conditionals and
/// ranges the fill sets or the edge answers itself, and [`NEUTRAL`] browser headers. A requester that sent one is
/// answered by its own request when the fill's answer was made for a visitor without it.
pub fn tailors_answer(name: &str) -> bool {
    !(SHARED_FILL.contains(&name)
        || NEUTRAL.contains(&name)
        || name.starts_with("sec-fetch-")
        || name.starts_with("sec-ch-")
        || name == "accept-encoding"
        || PER_REQUESTER.contains(&name))
}

/// A requester's conditional and range headers: a fill never carries them (their 304 or 206 would be handed to the
/// others); the edge answers the conditionals itself, and a range request is not filled at all.
const PER_REQUESTER: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// Response headers that belong to one exchange with the origin — the request's ids and trace echoed back (W3C
/// `traceparent`, `tracestate`, `traceresponse`, `baggage`; `X-Request-Id`, `X-Correlation-Id`; Zipkin's B3,
/// Jaeger's, AWS X-Ray's, Google's, Sentry's, Datadog's, Elastic's, New Relic's, Instana's and OpenTracing's), the
/// request ids an object store, a platform or a CDN in front of the origin gives each request (S3's, API Gateway's,
/// Azure's, Google Cloud Storage's, CloudFront's, Azure Front Door's, Vercel's, Netlify's, Fly's, GitHub's, the
/// origin's Cloudflare `cf-ray`) and the time it took (`Server-Timing`, Fastly's `X-Timer`, Envoy's upstream time,
/// Rails' `X-Runtime`, `X-Response-Time`) — not the representation: an answer the edge cache hands to other
/// requesters (a stored copy, a fill another request led) carries none of them. A HIT said the trace id of whichever
/// request filled the key, beside its own. `Date` is the representation's (a stored copy keeps it, as RFC 9111 §4
/// has caches do, with the `Age` counted since); a `Set-Cookie` never reaches a stored copy at all
/// (`cache::storable`). `name` in lower case, as the runtime hands header names out (`header_list::read`).
pub fn per_exchange(name: &str) -> bool {
    matches!(
        name,
        "traceparent"
            | "tracestate"
            | "traceresponse"
            | "baggage"
            | "x-request-id"
            | "request-id"
            | "x-correlation-id"
            | "correlation-id"
            | "x-trace-id"
            | "x-span-id"
            | "b3"
            | "uber-trace-id"
            | "x-amzn-trace-id"
            | "x-cloud-trace-context"
            | "sentry-trace"
            | "elastic-apm-traceparent"
            | "newrelic"
            | "x-newrelic-app-data"
            | "x-ot-span-context"
            | "x-client-trace-id"
            | "x-amz-request-id"
            | "x-amz-id-2"
            | "x-amzn-requestid"
            | "x-amz-apigw-id"
            | "x-amz-cf-id"
            | "x-ms-request-id"
            | "x-ms-client-request-id"
            | "x-azure-ref"
            | "x-guploader-uploadid"
            | "x-vercel-id"
            | "x-nf-request-id"
            | "fly-request-id"
            | "x-github-request-id"
            | "cf-ray"
            | "server-timing"
            | "x-timer"
            | "x-envoy-upstream-service-time"
            | "x-runtime"
            | "x-response-time"
    ) || ["x-b3-", "x-datadog-", "x-instana-", "ot-tracer-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Request headers a CORS preflight takes to the origin: what the browser asks, the gateway's forwarding and
/// trace headers and a `Max-Forwards` (one lower, as on any OPTIONS) — never a cookie, credentials or a body (a
/// browser sends none; one sent by hand gets none through).
pub fn forward_on_preflight(name: &str) -> bool {
    matches!(
        name,
        "origin"
            | "max-forwards"
            | "access-control-request-method"
            | "access-control-request-headers"
            | "access-control-request-private-network"
            | "user-agent"
            | "accept"
            | "x-request-id"
            | "traceparent"
            | "tracestate"
            | "cdn-loop"
    ) || name.starts_with("x-forwarded-")
}

/// The codings a cache fill accepts: the two the runtime decodes as it reads a body (anything else would be stored
/// still encoded, under a `Content-Encoding` the stored copy no longer says).
pub const FILL_ACCEPT_ENCODING: &str = "gzip, br";

/// The headers of an origin request that fills the edge cache, from those the request would be forwarded with.
/// The fill fetches the whole representation for every requester of the key, so one requester's conditional and
/// range headers never reach the origin (their 304 or 206 would be handed to the others) and its `Accept-Encoding`
/// is [`FILL_ACCEPT_ENCODING`]; for a shared policy only [`SHARED_FILL`] go; for a per-user one (keyed by the
/// verified user) the rest of the request as forwarded.
pub fn cache_fill_headers(
    forwarded: &[(String, String)],
    shared: bool,
    client: Option<IpAddr>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = forwarded
        .iter()
        .filter(|(name, _)| {
            if shared {
                // Who the client says it came through is its own to choose (`X-Forwarded-For: 10.0.0.1`, read by
                // an origin trusting the leftmost address, would be answered — and stored — as for an internal
                // caller): a shared fill names only the address the connection came from.
                return SHARED_FILL.contains(&name.as_str()) && name != "x-forwarded-for";
            }
            name != "accept-encoding" && !PER_REQUESTER.contains(&name.as_str())
        })
        .cloned()
        .collect();
    if let (true, Some(ip)) = (shared, client) {
        headers.push(("x-forwarded-for".to_owned(), ip.to_string()));
    }
    headers.push((
        "accept-encoding".to_owned(),
        FILL_ACCEPT_ENCODING.to_owned(),
    ));
    headers
}

/// How the origin's paths map back to the client's, for the `Location` of a redirect: the upstream (scheme and
/// authority, and the base path it is mounted under) and the route prefix the gateway strips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationMap {
    /// The upstream's origin as the URL parser reads it (`None` only for a URL it refuses, which the configuration
    /// does not pass): an absolute or scheme-relative `Location` on it is on the upstream ([`Self::on_upstream`]).
    upstream: Option<url::Url>,
    /// The upstream URL's path without its trailing slash (`/base`, or empty).
    pub upstream_path: String,
    /// The stripped route prefix (`/gw`), or empty.
    pub prefix: String,
    /// The upstream's host as the runtime's URL parser writes it — lower case, a name in A-labels
    /// (`xn--bcher-kva.example` for `bücher.example`) — which a cookie's `Domain` is judged against.
    upstream_host: String,
}

impl LocationMap {
    /// The map for a route's `upstream` URL (already validated: scheme, authority, optional path) and prefix.
    pub fn new(upstream: &str, strip_prefix: Option<&str>) -> Self {
        let after_scheme = upstream.find("://").map_or(0, |at| at + 3);
        let path_at = upstream[after_scheme..]
            .find('/')
            .map_or(upstream.len(), |at| after_scheme + at);
        let spelled = host_of(&upstream[after_scheme..path_at]);
        let upstream_host =
            ascii_host(spelled).map_or_else(|| spelled.to_ascii_lowercase(), Cow::into_owned);
        Self {
            upstream: url::Url::parse(&upstream[..path_at]).ok(),
            // As the runtime sends it, and the origin writes it back (`/docs/café` is `/docs/caf%C3%A9`).
            upstream_path: super::request_url::url_escaped(
                upstream[path_at..].trim_end_matches('/'),
            ),
            prefix: strip_prefix.unwrap_or("").trim_end_matches('/').to_owned(),
            upstream_host,
        }
    }

    /// What follows the upstream's origin in `read` (absolute, `https://…`, or scheme-relative, `//…`, RFC 3986 §4.2,
    /// which the origin's client reads on the scheme it asked with); `None` when it is not on it. `read` is a URL as the
    /// runtime and browsers read it (WHATWG URL, [`read_with_authority`]): `https:\\app.example\x`, `/\app.example`
    /// and a tab inside are the client's `https://app.example/x` and `//app.example`. Its authority is read by the URL
    /// parser: a host in any case, in UTF-8 or in A-labels (`https://bücher.example` is asked as
    /// `xn--bcher-kva.example`, which an origin writes back), percent-encoded (`app%2Eexample` is `app.example`), an
    /// IPv4 address in another form (`127.1`), the scheme's default port written or not (`https://app.example:443`);
    /// never a host after userinfo that spells the upstream's (`https://app.example@evil.example`).
    fn on_upstream(&self, mut read: String) -> Option<String> {
        let upstream = self.upstream.as_ref()?;
        let at = read.find("//")? + 2;
        let end = read[at..]
            .find(['/', '?', '#'])
            .map_or(read.len(), |e| at + e);
        let joined = upstream.join(&read[..end]).ok()?;
        (joined.origin() == upstream.origin()).then(|| read.split_off(end))
    }

    /// Where a redirect from the origin sends the client through the gateway, as nginx's `proxy_redirect default` does:
    /// a `Location` on the upstream — path-absolute (`/docs/`), or absolute on the upstream's own origin (which leaks
    /// an internal address; its host in UTF-8 or in A-labels, [`Self::on_upstream`]) — under its base path is mapped
    /// back under the route's prefix (`/gw/docs/`, path-absolute, so it resolves against whatever host the client
    /// used). Anything else (another site, a path outside the upstream's base, a query or fragment alone) is left as it
    /// is: `None`. Dot segments are resolved first, as the client will resolve them ([`resolve_dot_segments`]):
    /// `/base/../base/x` is `/base/x`, mapped to `/gw/x` (not `/gw/../base/x`, which the client reads as `/base/x`,
    /// outside the route), and `/other/../base/x` is on the base too.
    ///
    /// A relative path reference (`../list`, Spring's `redirect:../list`, or `login`) is resolved against `asked`,
    /// the upstream URL the request went to, as the origin meant it, and mapped likewise when it lands under the
    /// route: the client would resolve it against its own path, and a `..` climbing past the prefix (`../../v2/x`
    /// from `/v2/items/1`) reached a path outside the route — as did one without dots from the route's own path
    /// (`login` from `/api`, asked as `/`, is `/login` for the client, `/api/login` for the origin). A query or
    /// fragment alone (`?page=2`) names the same document on both sides and is left as it is.
    pub fn client_location(&self, location: &str, asked: &str) -> Option<String> {
        let relative = self.resolve_relative(location, asked);
        let on_upstream;
        let path = if let Some(resolved) = &relative {
            resolved.as_str()
        } else if let Some(read) = read_with_authority(location) {
            on_upstream = self.on_upstream(read)?;
            on_upstream.as_str()
        } else if location.starts_with('/') {
            location
        } else {
            return None;
        };
        let end = path.find(['?', '#']).unwrap_or(path.len());
        let resolved = resolve_dot_segments(&path[..end]).map(|p| format!("{p}{}", &path[end..]));
        // A relative reference resolved against `asked` is a path on the upstream, never one the origin wrote under
        // the prefix (it is read alike under any prefix): `2` from `/api/docs/1` is the client's `/api/api/docs/2`.
        let mapped = self.client_path(resolved.as_deref().unwrap_or(path), relative.is_none())?;
        (mapped != location).then_some(mapped)
    }

    /// A relative path reference (`../list?x`, `login`), resolved against the path of `asked` (an upstream URL) into a
    /// path-absolute one; `None` for anything else (a scheme, `//host`, `/path`, a query or fragment alone).
    fn resolve_relative(&self, location: &str, asked: &str) -> Option<String> {
        // Leading and trailing C0 controls and spaces are trimmed as browsers trim them: ` //host` is no path.
        let location = location.trim_matches(|c: char| c <= ' ');
        let end = location.find(['?', '#']).unwrap_or(location.len());
        let (path, tail) = location.split_at(end);
        // Read as browsers read it (tabs and line breaks dropped, `\` as `/`): a network or absolute path, or a
        // first segment with a `:` (a scheme, RFC 3986 §4.2), is no relative path.
        let read: String = url_chars(path).collect();
        let first = read.split(['/', '\\']).next().unwrap_or("");
        if read.is_empty() || read.starts_with(['/', '\\']) || first.contains(':') {
            return None;
        }
        let asked = self.on_upstream(read_with_authority(asked)?)?;
        let asked = &asked[..asked.find(['?', '#']).unwrap_or(asked.len())];
        let directory = &asked[..=asked.rfind('/')?];
        let joined = format!("{directory}{path}");
        let resolved = resolve_dot_segments(&joined).unwrap_or(joined);
        Some(format!("{resolved}{tail}"))
    }

    /// An origin's `Refresh` (`5; url=/login`: a redirect after a delay, which browsers follow) with its URL mapped
    /// as a `Location`'s is ([`Self::client_location`]), as nginx's `proxy_redirect` maps both; `None` when it is
    /// left as it is. The URL is found as HTML's declarative refresh reads it: after the delay, a `;` or `,`, and
    /// `url=` (any case, blanks around it), maybe quoted (`url='/next'`: up to the closing quote).
    pub fn client_refresh(&self, refresh: &str, asked: &str) -> Option<String> {
        let after_delay =
            refresh.find(|c: char| !(c.is_ascii_whitespace() || c.is_ascii_digit() || c == '.'))?;
        let rest = &refresh[after_delay..];
        let rest = rest.strip_prefix([';', ',']).unwrap_or(rest).trim_start();
        let rest = match rest.get(..3) {
            Some(word) if word.eq_ignore_ascii_case("url") => {
                let named = rest[3..].trim_start();
                named.strip_prefix('=').map_or(rest, str::trim_start)
            }
            _ => rest,
        };
        let (quote, rest) = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => (Some(q), &rest[1..]),
            _ => (None, rest),
        };
        let url = match quote.and_then(|q| rest.find(q)) {
            Some(end) => &rest[..end],
            None => rest.trim_end(),
        };
        if url.is_empty() {
            return None;
        }
        let start = refresh.len() - rest.len();
        let mapped = self.client_location(url, asked)?;
        Some(format!(
            "{}{mapped}{}",
            &refresh[..start],
            &refresh[start + url.len()..]
        ))
    }

    /// A `Set-Cookie` whose `Path` lies on the upstream, mapped under the route's prefix as [`Self::client_location`]
    /// maps a redirect (nginx's `proxy_cookie_path`): an origin mounted at `/` that scopes a cookie to `/account`
    /// would otherwise set one the browser never sends back to `/gw/account`. A path that already covers the
    /// route's prefix (`/`, or the prefix itself, which an origin reading `X-Forwarded-Prefix` names) is left as it
    /// is — the cookie reaches the route — and so is one outside the upstream's base path; `None` when unchanged.
    ///
    /// A `Domain` (the last one, as browsers read it) that the upstream's host lies in but the host of
    /// `client_authority` (`host[:port]`, the authority the client asked; empty when not known, and nothing is then
    /// judged) does not (`Domain=origin.internal` for a client on `api.example.com`) is removed, with every other `Domain` attribute:
    /// a browser ignores such a cookie entirely (RFC 6265 §5.3 step 6) — a login through the gateway would never
    /// stick — and without one the cookie is the client's host's alone, the narrowest scope (nginx's
    /// `proxy_cookie_domain` maps it to a name instead). A `Domain` the client's host lies in (`example.com`) is kept,
    /// and so is one naming neither host (the origin's own mistake, which the browser refuses anyway). Names are
    /// compared in A-labels ([`ascii_host`]): `Domain=bücher.example` names the upstream `xn--bcher-kva.example`.
    pub fn client_set_cookie(&self, set_cookie: &str, client_authority: &str) -> Option<String> {
        let pathed = self.client_cookie_path(set_cookie);
        let cookie = pathed.as_deref().unwrap_or(set_cookie);
        match self.without_upstream_domain(cookie, host_of(client_authority)) {
            Some(unscoped) => Some(unscoped),
            None => pathed,
        }
    }

    /// `set_cookie` without its `Domain` attributes when the last non-empty one names the upstream's host (or a domain
    /// it lies in) and not the client's; `None` when kept ([`Self::client_set_cookie`]).
    fn without_upstream_domain(&self, set_cookie: &str, client_host: &str) -> Option<String> {
        if client_host.is_empty() {
            return None;
        }
        let domains =
            || cookie_attributes(set_cookie).filter(|a| a.name.eq_ignore_ascii_case("domain"));
        // Browsers ignore an empty `Domain` and take the last other one, its leading dot dropped. `Domain=.` is not
        // empty: it leaves an empty domain, which every browser refuses the cookie for (httpwg/http-extensions#1744),
        // so it names neither host.
        // A name in UTF-8 (`bücher.example`) is read in A-labels, as the runtime writes both hosts: one domain is
        // judged alike in either spelling. One IDNA refuses names neither host.
        let domain = domains()
            .filter(|a| !a.value.is_empty())
            .map(|a| a.value.strip_prefix('.').unwrap_or(a.value))
            .last()
            .and_then(ascii_host)?;
        let client_host = ascii_host(client_host).unwrap_or(Cow::Borrowed(client_host));
        // RFC 6265 §5.1.3's domain-match, the host in any case (the domain is lowercase). An IP address is matched
        // whole: only a host name lies in a parent domain (`10.0.0.5` does not lie in `0.0.5`).
        let lies_in = |host: &str, domain: &str| {
            if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
                return host.eq_ignore_ascii_case(domain);
            }
            let host = host.as_bytes();
            host.len().checked_sub(domain.len()).is_some_and(|head| {
                host[head..].eq_ignore_ascii_case(domain.as_bytes())
                    && (head == 0 || host[head - 1] == b'.')
            })
        };
        // A trailing dot names the same host in DNS (`app.internal.`, absolute): the origin means its own by it, so
        // it is read without one on the upstream's side. Browsers match the client's host as spelled, a trailing dot
        // making another host (RFC 6265bis dropped its "ignore the attribute" note for this: httpwg/http-extensions
        // #1758, #2087): `Domain=example.com.` is refused on `shop.example.com` — removed here — and kept on
        // `shop.example.com.`, `Domain=example.com` the other way round.
        let absolute = |name: &str| name.strip_suffix('.').unwrap_or(name).to_owned();
        let upstream_domain = absolute(&domain);
        if upstream_domain.is_empty()
            || !lies_in(&absolute(&self.upstream_host), &upstream_domain)
            || lies_in(&client_host, &domain)
        {
            return None;
        }
        // Each `Domain` attribute goes with the `;` before it.
        let mut kept = String::with_capacity(set_cookie.len());
        let mut from = 0;
        for attribute in domains() {
            kept.push_str(&set_cookie[from..attribute.part.start - 1]);
            from = attribute.part.end;
        }
        kept.push_str(&set_cookie[from..]);
        Some(kept)
    }

    /// [`Self::client_set_cookie`]'s `Path` mapping; `None` when unchanged.
    fn client_cookie_path(&self, set_cookie: &str) -> Option<String> {
        // Browsers take the last `Path` attribute.
        let attribute = cookie_attributes(set_cookie)
            .filter(|a| a.name.eq_ignore_ascii_case("path"))
            .last()?;
        let (start, end, path) = (attribute.value_at, attribute.part.end, attribute.value);
        // Whether a cookie for `path` is sent with requests for `target` (RFC 6265's path-match).
        let covers = |target: &str| {
            target
                .strip_prefix(path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || path.ends_with('/'))
        };
        let prefix = self.prefix.as_str();
        if !path.starts_with('/') || !prefix.is_empty() && covers(prefix) {
            return None;
        }
        // A path covering the whole upstream (a servlet container's context path `/app` for `…/app/api`) covers
        // the whole route.
        let mapped = if !self.upstream_path.is_empty() && covers(&self.upstream_path) {
            if prefix.is_empty() { "/" } else { prefix }.to_owned()
        } else {
            self.client_path(path, true)?
        };
        (mapped != path).then(|| format!("{}{mapped}{}", &set_cookie[..start], &set_cookie[end..]))
    }

    /// Where a path on the upstream (`/base/docs/`) is for the client (`/gw/docs/`): under the route's prefix, or
    /// as it is when it is already there and `written` (the origin wrote it, and may have written it from
    /// `X-Forwarded-Prefix`); `None` outside the upstream's base path, or when it would read as another host.
    fn client_path(&self, path: &str, written: bool) -> Option<String> {
        let under = |head: &str| {
            path.strip_prefix(head)
                .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
        };
        // An origin that builds its links from X-Forwarded-Prefix already said where it is mounted (its path is
        // kept; an absolute one loses the internal address).
        let mapped = if written && !self.prefix.is_empty() && under(&self.prefix).is_some() {
            path.to_owned()
        } else {
            let under_base = under(&self.upstream_path)?;
            let mapped = format!("{}{under_base}", self.prefix);
            if mapped.is_empty() || !mapped.starts_with('/') {
                format!("/{mapped}")
            } else {
                mapped
            }
        };
        // `//host` (or `/\host`, which browsers read alike, also with tabs or line breaks between, which they
        // drop) would send the client to another site.
        let read: String = url_chars(&mapped).take(2).collect();
        if read == "//" || read == "/\\" {
            return None;
        }
        Some(mapped)
    }
}

/// One attribute of a `Set-Cookie` value, as browsers split it (RFC 6265 §5.2): `part` is its byte range between
/// `;`s, `value_at` where its value starts (after `=`, untrimmed); `name` and `value` trimmed of spaces and tabs
/// only, as browsers trim them.
struct CookieAttribute<'a> {
    part: std::ops::Range<usize>,
    value_at: usize,
    name: &'a str,
    value: &'a str,
}

/// The attributes of `set_cookie` that have an `=`, in order — past its first `;`-separated part, the cookie itself.
fn cookie_attributes(set_cookie: &str) -> impl Iterator<Item = CookieAttribute<'_>> {
    let mut at = 0;
    set_cookie
        .split(';')
        .enumerate()
        .filter_map(move |(i, part)| {
            let start = at;
            at += part.len() + 1;
            let (name, value) = part.split_once('=').filter(|_| i > 0)?;
            Some(CookieAttribute {
                part: start..start + part.len(),
                value_at: start + name.len() + 1,
                name: name.trim_matches([' ', '\t']),
                value: value.trim_matches([' ', '\t']),
            })
        })
}

/// The host of an authority (`host[:port]`, `[v6]:port`), its port dropped.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// The characters of `text` as the WHATWG URL parser (browsers, the runtime's fetch) reads a URL's: tabs and line
/// breaks dropped wherever they stand (`/\t/evil.example` is `//evil.example`).
fn url_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().filter(|c| !matches!(c, '\t' | '\r' | '\n'))
}

/// `url` as the WHATWG URL parser (browsers, the runtime's fetch) reads it against an `http` or `https` base, when it
/// names an authority: leading and trailing C0 controls and spaces trimmed, tabs and line breaks dropped, the run of
/// two or more `/` or `\` that opens it or follows an `http:` or `https:` scheme written `//` (`https:\\app.example`,
/// `/\app.example`, `///app.example` name the host `app.example`), and a `\` in its path read as `/`. `None` for
/// anything else: a path (`/x`), a relative reference, another scheme (`foo:bar`, which is never on an `http`
/// upstream), and `https:/host` or `https:host`, which a client on the same scheme reads as a path on its own host.
fn read_with_authority(url: &str) -> Option<String> {
    let read: String = url_chars(url.trim_matches(|c: char| c <= ' ')).collect();
    let slash = |c: char| c == '/' || c == '\\';
    let (scheme, after) = match read.split_once(':') {
        Some((scheme, after))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            (Some(scheme), after)
        }
        _ => (None, read.as_str()),
    };
    let authority = after.trim_start_matches(slash);
    if after.len() - authority.len() < 2 {
        return None;
    }
    // The authority ends at the path, query or fragment (`\` is a path's `/` on a special scheme).
    let path_at = authority
        .find(['/', '\\', '?', '#'])
        .unwrap_or(authority.len());
    let tail_at = authority[path_at..]
        .find(['?', '#'])
        .map_or(authority.len(), |at| path_at + at);
    Some(format!(
        "{}//{}{}{}",
        scheme.map_or(String::new(), |s| format!("{s}:")),
        &authority[..path_at],
        authority[path_at..tail_at].replace('\\', "/"),
        &authority[tail_at..]
    ))
}

/// A host name or cookie domain as the runtime's URL parser writes a host: ASCII lower-cased, and one with other
/// characters through IDNA's ToASCII (UTS #46, the `url` crate's own host parser: `BÜCHER.example` is
/// `xn--bcher-kva.example`, a trailing dot kept). `None` for a name IDNA refuses. An ASCII one is only lower-cased:
/// a `Domain` is matched as spelled (`0.0.5` is no address), and a host the runtime gives is written so already.
/// Borrowed when already so (the common case: nothing allocated per header). Full-width digits and dots that read as
/// an address (`１０.０.０.５`) are that address, as browsers canonicalise a cookie's `Domain` to it.
fn ascii_host(name: &str) -> Option<Cow<'_, str>> {
    if name.is_ascii() {
        return Some(if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        });
    }
    Some(Cow::Owned(url::Host::parse(name).ok()?.to_string()))
}

/// A path-absolute URL path (no query or fragment) with its dot segments removed as a browser removes them (RFC 3986
/// §5.2.4; the WHATWG URL parser's reading): `.` and `..` segments, also spelled with `%2e` in any case (`%2e%2e`,
/// `.%2E`), a `\` read as `/`, and tabs and line breaks dropped — so the path is the one the client will ask for.
/// `None` when it holds no dot segment (it is then read as it is written).
pub fn resolve_dot_segments(path: &str) -> Option<String> {
    let read: String = url_chars(path)
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    let one = |s: &str| s == "." || s.eq_ignore_ascii_case("%2e");
    let two = |s: &str| {
        s == ".."
            || [".%2e", "%2e.", "%2e%2e"]
                .iter()
                .any(|d| s.eq_ignore_ascii_case(d))
    };
    let segments: Vec<&str> = read.strip_prefix('/')?.split('/').collect();
    if !segments.iter().any(|s| one(s) || two(s)) {
        return None;
    }
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        let dot = one(segment);
        let dots = two(segment);
        if dots {
            out.pop();
        }
        if dot || dots {
            // A trailing dot segment leaves the path ending in `/` (`/a/b/..` is `/a/`).
            if i == last {
                out.push("");
            }
            continue;
        }
        out.push(segment);
    }
    Some(format!("/{}", out.join("/")))
}

/// Whether an answer to a client that sent this `Accept-Encoding` (the request's `cf.clientAcceptEncoding`: the
/// header a Worker sees is the runtime's own, `br, gzip`) may go out coded by the runtime, which gzips or
/// brotli-codes an uncoded body as the client allows: the length of what a GET would send is then not known before
/// it is sent, and a HEAD must not state the decoded one (RFC 9110 §8.6). A coding listed with `q=0` is refused; a
/// `q` that does not parse is read as allowing it (the runtime's reading is not ours to guess).
pub fn runtime_may_code(accept_encoding: Option<&str>) -> bool {
    accept_encoding
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|param| {
                param
                    .split_once('=')
                    .filter(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                    .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !refused
                && ["gzip", "x-gzip", "br", "*"]
                    .iter()
                    .any(|c| coding.eq_ignore_ascii_case(c))
        })
}

/// Whether the origin's answer to a HEAD passed straight on may keep its `Content-Length`: the length of the GET's
/// body as it would reach the client (RFC 9110 §8.6). Not for an uncoded answer the runtime may code
/// ([`runtime_may_code`]), nor for one in gzip or br, which the runtime decodes as it reads it and sends on decoded to
/// a client not accepting that coding, or coded anew (a 47-byte gzip body went out as 1,013 identity bytes, or 27 of
/// br): only a client whose own pick it is gets the origin's bytes. A coding the runtime leaves alone (`deflate`,
/// `zstd`) goes out as it came, its length with it.
pub fn head_keeps_origin_length(content_encoding: Option<&str>, may_code: bool) -> bool {
    match content_encoding.map(str::trim) {
        None | Some("") => !may_code,
        Some(coding) if coding.eq_ignore_ascii_case("identity") => !may_code,
        Some(codings) => !codings.split(',').any(|coding| {
            ["gzip", "x-gzip", "br"]
                .iter()
                .any(|c| coding.trim().eq_ignore_ascii_case(c))
        }),
    }
}

/// Whether an answer of this status goes out with no `Content-Length`, whatever the origin sent (RFC 9110 §8.6): a
/// 1xx or 204 must carry none, and a 304 only the length of the 200 the client would get — which the gateway cannot
/// vouch for, the origin having been asked in the runtime's gzip or br while the client is sent the body decoded or
/// coded anew. The runtime drops an origin's from a GET's answer itself, but passes a HEAD's on. A 205 has no content
/// (§15.3.6), whatever the origin says: its body is dropped (`cache::null_body`) and the runtime writes
/// `Content-Length: 0` on a GET's answer and a HEAD's alike, which a HEAD passing the origin's on contradicted (`5`).
pub fn length_withheld(status: u16) -> bool {
    matches!(status, 100..=199 | 204 | 205 | 304)
}

/// The names a `Connection` header lists.
pub fn connection_tokens(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The gateway's own entry in `CDN-Loop` (RFC 8586 §2: a pseudonym), written on every request it forwards.
pub const CDN_LOOP_ID: &str = "edgekit";

/// How many times a request may pass through edgekit gateways before it is refused 508: an upstream that leads back to
/// the Worker (its own host, or an origin proxying to it) otherwise sent each request round without end, every pass
/// spending the route's rate limits and an origin connection, and the passes went on after the client was answered
/// 504. A few passes stay allowed, for a route deliberately served through another edgekit gateway (or its own).
pub const MAX_CDN_LOOPS: usize = 4;

/// How many entries of a `CDN-Loop` value (a list of `cdn-id *( ";" parameter )`) are [`CDN_LOOP_ID`].
pub fn own_cdn_loops(value: Option<&str>) -> usize {
    value.map_or(0, |value| {
        value
            .split(',')
            .filter(|entry| {
                let id = entry.split(';').next().unwrap_or("").trim();
                id.eq_ignore_ascii_case(CDN_LOOP_ID)
            })
            .count()
    })
}

/// The `CDN-Loop` the origin is sent: the list the request came with, with [`CDN_LOOP_ID`] appended (RFC 8586 §2: an
/// intermediary appends its own entry and keeps the others).
pub fn cdn_loop_for_origin(came_with: Option<&str>) -> String {
    match came_with.map(str::trim).filter(|v| !v.is_empty()) {
        Some(list) => format!("{list}, {CDN_LOOP_ID}"),
        None => CDN_LOOP_ID.to_owned(),
    }
}

/// `X-Forwarded-For` for the origin: the client address (`ClientAddress::named`) appended to any list a trusted hop
/// already made — unless that hop already put it last, as Cloudflare's edge does for the Worker. The last entry is
/// compared as an address, not as text: `2001:DB8::7` or `::ffff:203.0.113.7` there is the client `2001:db8::7` or
/// `203.0.113.7` already named, and appending it in the other spelling made one hop look like two.
pub fn forwarded_for(existing: Option<&str>, client: Option<IpAddr>) -> Option<String> {
    let named_last = |list: &str, ip: IpAddr| {
        list.rsplit(',')
            .next()
            .and_then(|last| last.trim().parse::<IpAddr>().ok())
            .is_some_and(|last| last.to_canonical() == ip)
    };
    match (existing.map(str::trim).filter(|s| !s.is_empty()), client) {
        (Some(list), Some(ip)) if named_last(list, ip) => Some(list.to_owned()),
        (Some(list), Some(ip)) => Some(format!("{list}, {ip}")),
        (Some(list), None) => Some(list.to_owned()),
        (None, Some(ip)) => Some(ip.to_string()),
        (None, None) => None,
    }
}

/// The hops an OPTIONS or TRACE request's `Max-Forwards` leaves (RFC 9110 §7.6.2: every intermediary checks and
/// updates it before forwarding such a request, and at `0` answers it as the final recipient itself). `None` for other
/// methods (a recipient may ignore the field for them, and it passes as sent) and for a value that is no count
/// (`1*DIGIT`), which passes as sent too.
pub fn max_forwards(method: &str, value: Option<&str>) -> Option<u64> {
    if !matches!(method, "OPTIONS" | "TRACE") {
        return None;
    }
    let value = value?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits beyond u64 are as good as unlimited.
    Some(value.parse::<u64>().unwrap_or(u64::MAX))
}

/// The bytes [`email_header`] percent-encodes besides non-ASCII: controls, the space and `%` itself.
const EMAIL_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'%');

/// `X-User-Email` for `email`: its UTF-8 bytes beyond printable ASCII, and `%`, percent-encoded (RFC 3986 §2.1,
/// upper-case hex), so an address with a UTF-8 local part or domain (RFC 6531, which logins admit) reaches the
/// origin as ASCII it decodes back (`decodeURIComponent`, `urllib.parse.unquote`): sent raw, `josé@…` reached a
/// Node origin as `josÃ©@…`. `%` is encoded too, so the decoded value is always the address; an ASCII address
/// without `%` (nearly every one) goes as it is.
pub fn email_header(email: &str) -> String {
    percent_encoding::utf8_percent_encode(email, EMAIL_ESCAPED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdn_loop_counts_the_gateways_own_entries_and_appends_one() {
        assert_eq!(own_cdn_loops(None), 0);
        assert_eq!(own_cdn_loops(Some("cloudflare")), 0);
        assert_eq!(
            own_cdn_loops(Some("cloudflare; loops=2, edgekit, EdgeKit ;x=1,edgekit-x")),
            2
        );
        assert_eq!(cdn_loop_for_origin(None), "edgekit");
        assert_eq!(cdn_loop_for_origin(Some("  ")), "edgekit");
        assert_eq!(
            cdn_loop_for_origin(Some("cloudflare")),
            "cloudflare, edgekit"
        );
        let mut list = None::<String>;
        for passes in 1..=MAX_CDN_LOOPS {
            list = Some(cdn_loop_for_origin(list.as_deref()));
            assert_eq!(own_cdn_loops(list.as_deref()), passes);
        }
    }

    #[test]
    fn clear_site_data_never_clears_cookies() {
        let cases = [
            ("\"cookies\"", None),
            (" \"Cookies\" ", None),
            (
                "\"cache\", \"cookies\", \"storage\"",
                Some("\"cache\", \"storage\""),
            ),
            (
                "\"*\"",
                Some("\"cache\", \"storage\", \"executionContexts\""),
            ),
            ("\"storage\"", Some("\"storage\"")),
            ("\"cache\",,\"cookies\"", Some("\"cache\"")),
            ("", None),
        ];
        for (sent, passed) in cases {
            assert_eq!(
                clear_site_data_for_client(sent).as_deref(),
                passed,
                "{sent}"
            );
        }
    }

    /// The edge's own session and device cookies are not the origin's to set or clear.
    #[test]
    fn a_set_cookie_line_is_named_by_its_first_pair() {
        let own = ["__Host-edgekit_session", "__Secure-edgekit_session_device"];
        for line in [
            "__Host-edgekit_session=abc; Path=/; Secure",
            "__Host-edgekit_session=; Max-Age=0",
            " __Secure-edgekit_session_device = x",
        ] {
            assert!(sets_cookie_named(line, &own), "{line}");
        }
        for line in [
            "session=abc; Path=/",
            "__host-edgekit_session=abc",
            "theme=dark; Comment=__Host-edgekit_session=x",
            "__Host-edgekit_session",
            "",
        ] {
            assert!(!sets_cookie_named(line, &own), "{line}");
        }
    }

    #[test]
    fn per_exchange_headers_are_ids_trace_and_timing_never_the_representation() {
        for name in [
            "traceparent",
            "traceresponse",
            "x-request-id",
            "x-b3-traceid",
            "x-datadog-trace-id",
            "x-datadog-parent-id",
            "x-instana-t",
            "ot-tracer-traceid",
            "x-amz-request-id",
            "x-amz-id-2",
            "x-amz-cf-id",
            "x-amzn-requestid",
            "x-ms-request-id",
            "x-azure-ref",
            "x-vercel-id",
            "fly-request-id",
            "cf-ray",
            "server-timing",
            "x-timer",
            "x-envoy-upstream-service-time",
        ] {
            assert!(per_exchange(name), "{name}");
        }
        for name in [
            "content-type",
            "content-language",
            "etag",
            "last-modified",
            "date",
            "link",
            "x-content-type-options",
            "access-control-allow-origin",
            "x-amz-meta-author",
            "x-amz-version-id",
            "x-ms-version",
        ] {
            assert!(!per_exchange(name), "{name}");
        }
    }

    #[test]
    fn a_head_keeps_the_origin_length_only_of_a_body_the_runtime_sends_as_it_came() {
        for (content_encoding, may_code, kept) in [
            (None, false, true),
            (None, true, false),
            (Some("identity"), false, true),
            (Some("identity"), true, false),
            // Decoded by the runtime as it reads: sent decoded, or coded anew, whoever asks.
            (Some("gzip"), false, false),
            (Some("gzip"), true, false),
            (Some("BR"), false, false),
            (Some("x-gzip"), true, false),
            (Some("deflate, gzip"), false, false),
            // Left alone: the origin's bytes, their length with them.
            (Some("deflate"), true, true),
            (Some("zstd"), false, true),
        ] {
            assert_eq!(
                head_keeps_origin_length(content_encoding, may_code),
                kept,
                "{content_encoding:?} {may_code}"
            );
        }
    }

    #[test]
    fn a_client_accepting_gzip_or_br_may_get_a_body_the_runtime_codes() {
        for (accept_encoding, coded) in [
            (None, false),
            (Some(""), false),
            (Some("identity"), false),
            (Some("deflate, zstd"), false),
            (Some("gzip"), true),
            (Some("gzip, deflate, br, zstd"), true),
            (Some(" BR ;q=0.5"), true),
            (Some("x-gzip"), true),
            (Some("*"), true),
            (Some("gzip;q=0, br;q=0"), false),
            (Some("gzip; q=0.000, identity"), false),
            (Some("gzip;q=oops"), true),
            (Some("*;q=0, identity"), false),
        ] {
            assert_eq!(
                runtime_may_code(accept_encoding),
                coded,
                "{accept_encoding:?}"
            );
        }
    }

    #[test]
    fn hop_by_hop_identity_and_forwarding_headers_are_not_forwarded() {
        let listed = connection_tokens(Some("Keep-Alive, X-Secret-Hop"));
        let cases = [
            ("Connection", false),
            ("Transfer-Encoding", false),
            ("Upgrade", false),
            ("X-Secret-Hop", false),
            ("X-User-ID", false),
            ("x-user-permissions", false),
            ("X_User_Id", false),
            ("x_user-permissions", false),
            ("x_forwarded_for", false),
            ("CF_Connecting_IP", false),
            ("X_Request_Id", false),
            ("X-Forwarded-For", false),
            ("traceparent", false),
            ("Host", false),
            ("True-Client-IP", false),
            ("X_Client_IP", false),
            ("Fastly-Client-IP", false),
            ("X-HTTP-Method-Override", false),
            ("x-http-method", false),
            ("X-Method-Override", false),
            ("Authorization", true),
            ("Content-Type", true),
            ("tracestate", true),
            ("Accept", true),
            ("x_custom_header", true),
            // A CGI-style server reads these as the body's own Content-Encoding and Content-Type.
            ("Content_Encoding", false),
            ("content_type", false),
            ("content-language", true),
            // A WebSocket handshake's own fields, which a route that accepts WebSockets hands its origin.
            ("Sec-WebSocket-Protocol", true),
            ("Sec-WebSocket-Extensions", true),
            ("Sec-WebSocket-Key", true),
            ("Sec-WebSocket-Version", true),
        ];
        for (name, forwarded) in cases {
            assert_eq!(forward_request_header(name, &listed), forwarded, "{name}");
        }
        assert!(
            !forward_request_header("Expect", &[]),
            "100-continue stays at the edge"
        );
        let drop = ["__Host-edgekit_session", "__Secure-edgekit_session_device"];
        for (header, kept) in [
            ("__Host-edgekit_session=abc; other=1", Some("other=1")),
            ("a=1;__Host-edgekit_session=x;  b=2 ", Some("a=1; b=2")),
            ("__Host-edgekit_session=abc", None),
            (
                "__Secure-edgekit_session_device=d; __Host-edgekit_session=abc",
                None,
            ),
            (
                "__Host-edgekit_sessionx=1; flag",
                Some("__Host-edgekit_sessionx=1; flag"),
            ),
            // Fields joined with ", " by the runtime.
            (
                "a=1, __Host-edgekit_session=x; b=2, __Secure-edgekit_session_device=d",
                Some("a=1; b=2"),
            ),
            ("__Host-edgekit_session=x, a=1", Some("a=1")),
            ("__Host-edgekit_session=x, __Host-edgekit_session=y", None),
            // Commas of a value's own stay.
            (
                "j={\"a\":1,\"b\":2}; __Host-edgekit_session=x",
                Some("j={\"a\":1,\"b\":2}"),
            ),
            ("d=Mon, 01 Jan; e=1", Some("d=Mon, 01 Jan; e=1")),
        ] {
            assert_eq!(without_cookies(header, &drop).as_deref(), kept, "{header}");
        }
        assert!(forward_response_header("content-length", &[]));
        // Connection cannot take the content's description, caching or cookies: the WAF and the cache read them.
        let listed = connection_tokens(Some(
            "Content-Type, content-encoding, Cache-Control, Set-Cookie, Vary, Expires, X-Hop",
        ));
        for name in ["Content-Type", "content-encoding"] {
            assert!(forward_request_header(name, &listed), "{name}");
        }
        for name in [
            "Content-Type",
            "Content-Encoding",
            "Cache-Control",
            "Set-Cookie",
            "Vary",
            "Expires",
        ] {
            assert!(forward_response_header(name, &listed), "{name}");
        }
        assert!(!forward_request_header("x-hop", &listed));
        assert!(!forward_response_header("x-hop", &listed));
        assert!(!forward_response_header("transfer-encoding", &[]));
        assert!(!forward_response_header("x-hop", &["x-hop".into()]));
    }

    /// Coverage for the one-lookup table (`DROPPED`): it holds every list's names and prefixes, in every spelling a
    /// client may send them, and no more than they name.
    #[test]
    fn every_listed_name_and_prefix_is_dropped_in_any_spelling() {
        let Dropped { names, prefixes } = Dropped::listed();
        // The lookup takes the greatest prefix not after a name as its only candidate: no prefix may start another.
        for p in &prefixes {
            for q in prefixes.iter().filter(|q| q != &p) {
                assert!(!q.starts_with(p), "{p} starts {q}");
            }
        }
        let spellings = |name: &str| {
            [
                name.to_owned(),
                name.to_ascii_uppercase(),
                name.replace('-', "_"),
            ]
        };
        for name in names.iter().copied() {
            for spelled in spellings(name) {
                assert!(!forward_request_header(&spelled, &[]), "{spelled}");
            }
            // A name beside a listed one, not under a listed prefix, passes.
            let longer = format!("{name}z");
            if !prefixes.iter().any(|p| longer.starts_with(p)) {
                assert!(forward_request_header(&longer, &[]), "{longer}");
            }
        }
        for prefix in prefixes.iter().copied() {
            for spelled in spellings(format!("{prefix}anything").as_str()) {
                assert!(!forward_request_header(&spelled, &[]), "{spelled}");
            }
            assert!(!forward_request_header(prefix, &[]), "{prefix}");
        }
        // A name longer than the stack buffer is read whole: dropped by its prefix, or passed.
        let long = "z".repeat(NAME_ON_STACK);
        assert!(!forward_request_header(&format!("X-Envoy-{long}"), &[]));
        assert!(!forward_request_header(&format!("content_{long}"), &[]));
        assert!(forward_request_header(&format!("X-{long}"), &[]));
        let listed = connection_tokens(Some(format!("x-{long}").as_str()));
        assert!(!forward_request_header(
            &format!("X-{}", long.to_ascii_uppercase()),
            &listed
        ));
    }

    #[test]
    fn headers_that_name_another_target_or_a_proxy_for_the_origin_are_not_forwarded() {
        // `Proxy` is the CGI variable HTTP_PROXY (httpoxy, CVE-2016-5385): an origin's outgoing client would use the
        // client's proxy. `X-Original-URL` / `X-Rewrite-URL` make Symfony (CVE-2018-14773), Zend and IIS serve
        // another path than the one the route's checks were applied to.
        for name in [
            "Proxy",
            "proxy",
            "X-Original-URL",
            "x-original-url",
            "X_Original_URL",
            "X-Rewrite-URL",
            "x_rewrite_url",
            "X-Original-URI",
            "x_original_uri",
            "X-Original-Method",
        ] {
            assert!(!forward_request_header(name, &[]), "{name}");
        }
        for name in ["Proxy-Status", "X-Original", "X-URL", "X-URI", "Referer"] {
            assert!(forward_request_header(name, &[]), "{name}");
        }
    }

    #[test]
    fn headers_that_vouch_for_the_clients_tls_or_address_behind_another_proxy_are_not_forwarded() {
        for name in [
            "Client-Cert",
            "client-cert-chain",
            "X-Client-Cert",
            "x-client-cert-chain",
            "X-ARR-ClientCert",
            "X_ARR_SSL",
            "x-arr-ssl",
            "MS-ASPNETCORE-CLIENTCERT",
            "ssl_client_cert",
            "SSL_CIPHER",
            "ssl-client-cert",
            "X-SSL",
            "X-SSL-Client-Cert",
            "x-ssl-client-verify",
            "X-Client-Verify",
            "X-Client-DN",
            "WL-Proxy-SSL",
            "WL-Proxy-Client-IP",
            "Proxy-Client-IP",
            "X-Original-Forwarded-For",
            "X-ProxyUser-Ip",
            "X-Forwarded",
            "Forwarded-For",
            "forwarded_for",
        ] {
            assert!(!forward_request_header(name, &[]), "{name}");
        }
        // Names that merely start alike pass.
        for name in [
            "X-Client",
            "SSL",
            "X-SSLx",
            "Client-Certs",
            "X-Arrival",
            "Proxy-Client",
        ] {
            assert!(forward_request_header(name, &[]), "{name}");
        }
    }

    #[test]
    fn tls_headers_other_proxies_set_under_their_own_names_are_not_forwarded() {
        for name in [
            "WL-Proxy-Client-Cert",
            "WL-Proxy-Client-Keysize",
            "wl_proxy_client_secretkeysize",
            "X-Amzn-Mtls-Clientcert",
            "X-Amzn-Mtls-Clientcert-Leaf",
            "x-amzn-mtls-clientcert-subject",
        ] {
            assert!(!forward_request_header(name, &[]), "{name}");
        }
    }

    #[test]
    fn headers_by_which_another_auth_proxy_vouches_for_a_user_are_not_forwarded() {
        for name in [
            "Remote-User",
            "Remote-Groups",
            "Remote-Email",
            "Remote-Name",
            "REMOTE_USER",
            "X-Remote-User",
            "X-Remote-Group",
            "X-Remote-Extra-Scopes",
            "X-WEBAUTH-USER",
            "X-WEBAUTH-EMAIL",
            "x_webauth_groups",
            "X-Auth-Request-User",
            "X-Auth-Request-Email",
            "X-Auth-Request-Access-Token",
            "X-Forwarded-User",
            "X-Forwarded-Email",
            "X-Forwarded-Groups",
            "X-MS-CLIENT-PRINCIPAL",
            "X-MS-CLIENT-PRINCIPAL-ID",
            "X-MS-CLIENT-PRINCIPAL-NAME",
            "X-MS-TOKEN-AAD-ID-TOKEN",
            "X-Goog-Authenticated-User-Email",
            "X-Goog-Authenticated-User-Id",
            "X-Goog-Iap-Jwt-Assertion",
            "X-Amzn-Oidc-Data",
            "X-Amzn-Oidc-Identity",
            "X-Amzn-Oidc-Accesstoken",
            "Cf-Access-Jwt-Assertion",
            "Cf-Access-Authenticated-User-Email",
            "X-Pomerium-Jwt-Assertion",
            "X-Pomerium-Claim-Email",
            "X-authentik-username",
            "X-Proxy-User",
            "X-Proxy-Roles",
            "X-Vouch-User",
            "X-Vouch-Idp-Claims-Groups",
            "Tailscale-User-Login",
            "x-envoy-internal",
            "x-envoy-external-address",
            "x-envoy-retry-on",
            "X-Consumer-Username",
            "X-Consumer-ID",
            "X-Credential-Identifier",
            "X-Anonymous-Consumer",
            "X-Authenticated-Userid",
            "X-Authenticated-Scope",
            // Keycloak Gatekeeper's (Louketo Proxy's) claims of the user it signed in.
            "X-Auth-Userid",
            "X-Auth-Subject",
            "X-Auth-Roles",
            "X-Auth-Groups",
            "x_auth_userid",
            // …and the audience and expiry of the token it verified, which an origin behind it trusts as much.
            "X-Auth-Audience",
            "X-Auth-ExpiresIn",
            "x-auth-expiresin",
            // Kong's OIDC plugin: the user's claims and ID token.
            "X-Userinfo",
            "X-Id-Token",
            // Azure Front Door: the client's address, and the Front Door an origin admits requests from.
            "X-Azure-ClientIP",
            "X-Azure-SocketIP",
            "X-Azure-FDID",
            // An Envoy behind the gateway would honour these only from a request it trusts as internal, so a
            // client's own never reach it, trusted or not: the route's timeout_ms and retries are the gateway's.
            "x-envoy-upstream-rq-timeout-ms",
            "x-envoy-max-retries",
        ] {
            assert!(!forward_request_header(name, &[]), "{name}");
        }
        // API clients' own fields under the same vendors' names pass, as do names that merely start alike.
        for name in [
            "x-goog-user-project",
            "x-goog-api-client",
            "x-ms-version",
            "x-ms-date",
            "x-amzn-trace-id",
            // Credentials a client presents itself, which the origin checks (Swift's, Keystone's, Cloudflare's API's).
            "X-Auth-Token",
            "X-Auth-User",
            "X-Auth-Key",
            "X-Auth-Email",
            // Beside X-Auth-Password, a credential some APIs take (Gatekeeper's X-Auth-Username is not dropped for it).
            "X-Auth-Username",
            // Names beside the dropped ones: Front Door's trace reference, other id and token fields.
            "X-Azure-Ref",
            "X-Auth",
            "X-Userinfo-Url",
            "X-Id",
            "Remote",
            "Remote-Users",
            "X-Remote",
            "X-Webauth",
            "X-Auth-Request",
            "X-Envoy",
        ] {
            assert!(forward_request_header(name, &[]), "{name}");
        }
    }

    #[test]
    fn max_forwards_counts_only_for_options_and_trace() {
        for (method, value, left) in [
            ("OPTIONS", Some("0"), Some(0)),
            ("OPTIONS", Some(" 3 "), Some(3)),
            ("TRACE", Some("1"), Some(1)),
            ("OPTIONS", Some("99999999999999999999999"), Some(u64::MAX)),
            ("OPTIONS", None, None),
            ("OPTIONS", Some(""), None),
            ("OPTIONS", Some("-1"), None),
            ("OPTIONS", Some("1, 2"), None),
            ("GET", Some("0"), None),
            ("POST", Some("5"), None),
        ] {
            assert_eq!(max_forwards(method, value), left, "{method} {value:?}");
        }
    }

    #[test]
    fn headers_that_name_another_host_scheme_or_base_path_are_not_forwarded() {
        for name in [
            "X-Host",
            "X-Original-Host",
            "x_original_host",
            "X-HTTP-Host-Override",
            "X-Forwarded-Server",
            "Forwarded",
            "X-Scheme",
            "X-HTTPS",
            "Front-End-Https",
            "X-Script-Name",
            "x_script_name",
            "X-Url-Scheme",
            "X-Proxied-Https",
            "Proxy-Ssl-Id",
            "Proxy-auth-cert",
        ] {
            assert!(!forward_request_header(name, &[]), "{name}");
        }
        for name in [
            "X-Hostname",
            "X-Host-Id",
            "Host-Name",
            "X-Original",
            "X-Schema",
        ] {
            assert!(forward_request_header(name, &[]), "{name}");
        }
    }

    /// Whether a fill for the policy kind carries `name` (with a value of its own).
    fn forward_on_cache_fill(name: &str, shared: bool) -> bool {
        let forwarded = [(name.to_owned(), "value".to_owned())];
        cache_fill_headers(&forwarded, shared, None)
            .iter()
            .any(|(k, v)| k == name && v == "value")
    }

    #[test]
    fn cache_fills_drop_conditionals_always_and_all_but_neutral_headers_when_shared() {
        for name in [
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-unmodified-since",
            "if-range",
            "range",
            "accept-encoding",
        ] {
            assert!(!forward_on_cache_fill(name, false), "{name}");
            assert!(!forward_on_cache_fill(name, true), "{name}");
        }
        for shared in [false, true] {
            let forwarded = [("accept-encoding".to_owned(), "zstd, br".to_owned())];
            assert_eq!(
                cache_fill_headers(&forwarded, shared, None),
                [("accept-encoding".to_owned(), "gzip, br".to_owned())],
                "the codings the runtime decodes, whatever the requester accepts"
            );
        }
        for name in [
            "authorization",
            "cookie",
            "x-user-id",
            "x-user-permissions",
            "x-user-email",
        ] {
            assert!(forward_on_cache_fill(name, false), "{name} per user");
            assert!(!forward_on_cache_fill(name, true), "{name} shared");
        }
        for name in [
            "accept",
            "origin",
            "user-agent",
            "traceparent",
            "x-request-id",
        ] {
            assert!(forward_on_cache_fill(name, true), "{name}");
        }
        // X-Forwarded-For: the requester's list per user; a shared fill names the connection's address alone.
        let forwarded = [(
            "x-forwarded-for".to_owned(),
            "10.0.0.1, 203.0.113.7".to_owned(),
        )];
        let xff = |shared, ip| {
            cache_fill_headers(&forwarded, shared, ip)
                .into_iter()
                .filter(|(k, _)| k == "x-forwarded-for")
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        let ip = "203.0.113.7".parse().ok();
        assert_eq!(xff(false, ip), ["10.0.0.1, 203.0.113.7"]);
        assert_eq!(xff(true, ip), ["203.0.113.7"]);
        assert!(xff(true, None).is_empty(), "no address known: none claimed");
        // Whatever else a requester sends could tailor the shared answer: an API key, a tenant, a language.
        for name in ["x-api-key", "x-tenant", "x-custom", "referer"] {
            assert!(forward_on_cache_fill(name, false), "{name} per user");
            assert!(!forward_on_cache_fill(name, true), "{name} shared");
        }
    }

    #[test]
    fn a_refresh_url_maps_back_as_a_location_does() {
        let map = LocationMap::new("http://127.0.0.1:8080/base/", Some("/gw/"));
        let asked = "http://127.0.0.1:8080/base/page";
        for (refresh, client) in [
            ("0; url=/base/login", Some("0; url=/gw/login")),
            ("0;URL=/base/login", Some("0;URL=/gw/login")),
            (
                "5, Url = '/base/next?x=1' ",
                Some("5, Url = '/gw/next?x=1' "),
            ),
            ("1; url=\"/base/a\"b", Some("1; url=\"/gw/a\"b")),
            ("2.5; http://127.0.0.1:8080/base/x", Some("2.5; /gw/x")),
            ("0; url=next", Some("0; url=/gw/next")),
            ("0; url=https://idp.example/x", None),
            ("0; url=/other/x", None),
            ("30", None),
            ("0;", None),
            ("0; url=", None),
            ("0; url='", None),
            ("", None),
            // Relative, as a `Location` would be; a multi-byte letter where `url` might start.
            ("0; url=é/x", Some("0; url=/gw/é/x")),
            ("0; éé", Some("0; /gw/éé")),
        ] {
            assert_eq!(
                map.client_refresh(refresh, asked).as_deref(),
                client,
                "{refresh}"
            );
        }
    }

    #[test]
    fn redirects_on_the_upstream_map_back_under_the_route_prefix() {
        let map = LocationMap::new("http://127.0.0.1:8080/base/", Some("/gw/"));
        for (location, client) in [
            ("/base/docs/", Some("/gw/docs/")),
            ("/base", Some("/gw")),
            ("/base?next=1", Some("/gw?next=1")),
            (
                "http://127.0.0.1:8080/base/login?x=1",
                Some("/gw/login?x=1"),
            ),
            ("HTTP://127.0.0.1:8080/base/a", Some("/gw/a")),
            ("http://127.0.0.1:8080", None),
            ("/basement/x", None),
            ("/other/x", None),
            ("http://127.0.0.1:80801/base/x", None),
            ("https://idp.example/authorize", None),
            ("//evil.example/base/x", None),
            ("docs/", None),
            ("/gw/docs/", None),
            ("http://127.0.0.1:8080/gw/docs", Some("/gw/docs")),
            ("/base//evil.example/", Some("/gw//evil.example/")),
        ] {
            assert_eq!(
                map.client_location(location, "").as_deref(),
                client,
                "{location}"
            );
        }
        let plain = LocationMap::new("http://o:8080", None);
        assert_eq!(
            plain.client_location("/docs/", ""),
            None,
            "same path on both sides"
        );
        assert_eq!(
            plain.client_location("http://o:8080/docs/", "").as_deref(),
            Some("/docs/"),
            "the internal address does not reach the client"
        );
        assert_eq!(
            plain.client_location("http://o:8080", "").as_deref(),
            Some("/")
        );
        assert_eq!(
            plain.client_location("http://o:8080//evil.example/x", ""),
            None,
            "no open redirect"
        );
        let based = LocationMap::new("http://o:8080/base", None);
        assert_eq!(
            based.client_location("/base/\t/evil.example/", ""),
            None,
            "browsers drop the tab"
        );
        assert_eq!(
            based.client_location("/base//evil.example/", ""),
            None,
            "no open redirect"
        );
        assert_eq!(
            based.client_location("/base/\\evil.example", ""),
            None,
            "browsers read /\\ as //"
        );
        assert_eq!(
            LocationMap::new("http://o:8080", Some("/gw")).client_location("/gw/docs/", ""),
            None,
            "a prefix-aware origin's own link"
        );
        let stripped = LocationMap::new("http://o:8080", Some("/gw"));
        assert_eq!(stripped.client_location("/", "").as_deref(), Some("/gw/"));
    }

    #[test]
    fn a_redirect_to_an_internationalised_upstream_is_mapped_in_either_spelling() {
        // The runtime asks `https://bücher.example` as `xn--bcher-kva.example` (its Host header), and an origin
        // building absolute redirects from that Host writes the A-labels back.
        for upstream in [
            "https://bücher.example/base",
            "https://xn--bcher-kva.example/base",
        ] {
            let map = LocationMap::new(upstream, Some("/gw"));
            for (location, client) in [
                (
                    "https://xn--bcher-kva.example/base/docs/",
                    Some("/gw/docs/"),
                ),
                ("https://XN--BCHER-KVA.example/base?x=1", Some("/gw?x=1")),
                ("https://bücher.example/base/docs/", Some("/gw/docs/")),
                ("https://xn--bcher-kva.example.evil/base/x", None),
                ("https://bücher.example.evil/base/x", None),
                // The scheme's default port written out is the same origin; another port, or the upstream's name
                // as userinfo before another host, is not.
                (
                    "https://xn--bcher-kva.example:443/base/docs/",
                    Some("/gw/docs/"),
                ),
                ("https://bücher.example:443/base?x=1#f", Some("/gw?x=1#f")),
                ("https://BÜCHER.example/base/x?q=1#f", Some("/gw/x?q=1#f")),
                ("https://xn--bcher-kva.example:4430/base/x", None),
                ("https://bücher.example:4430/base/x", None),
                (
                    "https://xn--bcher-kva.example:443@evil.example/base/x",
                    None,
                ),
                ("https://xn--bcher-kva.example@evil.example/base/x", None),
                ("https://bücher.example@evil.example/base/x", None),
                ("https://BÜCHER.example:443@evil.example/base/x", None),
                // Scheme-relative (RFC 3986 §4.2): the origin's client resolves it against the URL it was asked, on
                // the upstream's scheme, so it names the upstream; the gateway's client would go to that host.
                ("//xn--bcher-kva.example/base/x", Some("/gw/x")),
                ("//bücher.example/base/x?q=1", Some("/gw/x?q=1")),
                ("//xn--bcher-kva.example:443/base", Some("/gw")),
                ("//xn--bcher-kva.example:4430/base/x", None),
                ("//xn--bcher-kva.example@evil.example/base/x", None),
                ("//evil.example/base/x", None),
            ] {
                assert_eq!(
                    map.client_location(location, "").as_deref(),
                    client,
                    "{location} from {upstream}"
                );
            }
            // A relative one is resolved against the URL asked, as the route spells it.
            assert_eq!(
                map.client_location("login", &format!("{upstream}/a/b"))
                    .as_deref(),
                Some("/gw/a/login")
            );
        }
    }

    #[test]
    fn a_redirect_to_the_upstream_is_mapped_however_a_url_parser_reads_its_host() {
        // The WHATWG URL parser (browsers, workerd's fetch) percent-decodes a host before reading it:
        // `https://app%2Eexample/` is `https://app.example/`, a scheme-relative `//app.example/` is on the scheme the
        // origin was asked with, and an IPv4 address may be written in other forms.
        let map = LocationMap::new("https://app.example/base", Some("/gw"));
        let local = LocationMap::new("http://127.0.0.1:8080/base", Some("/gw"));
        for (map, location, client) in [
            (&map, "https://app%2Eexample/base/x", Some("/gw/x")),
            (&map, "https://%61pp.example/base/x?q=1", Some("/gw/x?q=1")),
            (&map, "HTTPS://APP%2eEXAMPLE:443/base", Some("/gw")),
            (&map, "//app.example/base/x", Some("/gw/x")),
            (&map, "//app%2Eexample/base/x", Some("/gw/x")),
            (&map, "//APP.example:443/base/x#f", Some("/gw/x#f")),
            (&map, "//app.example:80/base/x", None),
            (&map, "http://app.example/base/x", None),
            (&map, "https://app%2Eexample.evil/base/x", None),
            (&map, "https://app%2Eexample%40evil.example/base/x", None),
            (&map, "https://app.example%2Fbase/x", None),
            (&map, "//app.example@evil.example/base/x", None),
            (&map, "//app.example/other/x", None),
            // Read as the client's parser reads it: a run of `/` or `\` after an `http(s):` scheme or opening the
            // reference names the host, tabs and line breaks are dropped, leading spaces trimmed, `\` in the path is `/`.
            (&map, "https:\\\\app.example\\base\\x", Some("/gw/x")),
            (&map, "https:///app.example/base/x", Some("/gw/x")),
            (&map, "/\\app.example/base/x", Some("/gw/x")),
            (&map, "\\\\app.example/base/x?q=\\", Some("/gw/x?q=\\")),
            (&map, "\\/app.example/base", Some("/gw")),
            (&map, "///app.example/base/x", Some("/gw/x")),
            (&map, "/\t/app.example/base/x", Some("/gw/x")),
            (&map, " //app.example/base/x", Some("/gw/x")),
            (&map, "ht\ttps://app.example/base/x", Some("/gw/x")),
            (&map, "/\\evil.example/base/x", None),
            (&map, "https:\\\\evil.example/base/x", None),
            (&map, " //evil.example/base/x", None),
            // Which a client on `https` reads as a path on its own host, and one on `http` as another host: left.
            (&map, "https:/app.example/base/x", None),
            (&map, "https:app.example/base/x", None),
            (&map, "foo:bar", None),
            (&local, "//127.0.0.1:8080/base/x", Some("/gw/x")),
            (&local, "http://127.1:8080/base/x", Some("/gw/x")),
            (&local, "http://0x7f.0.0.1:8080/base/x", Some("/gw/x")),
            (&local, "//127.0.0.1/base/x", None),
            (&local, "//127.0.0.1:8080//evil.example/x", None),
        ] {
            assert_eq!(
                map.client_location(location, "").as_deref(),
                client,
                "{location}"
            );
        }
        // A relative reference is resolved against a URL asked in any of those spellings.
        assert_eq!(
            map.client_location("login", "https://app%2Eexample/base/a/b")
                .as_deref(),
            Some("/gw/a/login")
        );
    }

    #[test]
    fn a_redirect_to_an_upstream_named_with_its_default_port_is_mapped_without_it() {
        // The runtime drops the default port from the URL it asks (`Host: app.example`), and an origin building
        // absolute redirects from its Host writes none back; the route's spelling is mapped all the same.
        for (upstream, location) in [
            (
                "https://app.example:443/base",
                "https://app.example/base/x?q=1",
            ),
            (
                "http://App.Example:80/base",
                "http://app.example/base/x?q=1",
            ),
            (
                "https://app.example:443/base",
                "https://app.example:443/base/x?q=1",
            ),
        ] {
            let map = LocationMap::new(upstream, Some("/gw"));
            assert_eq!(
                map.client_location(location, "").as_deref(),
                Some("/gw/x?q=1"),
                "{location} from {upstream}"
            );
            assert_eq!(
                map.client_location("https://app.example.evil/base/x", ""),
                None
            );
        }
        // Another scheme's default port is another origin.
        let map = LocationMap::new("https://app.example:80/base", Some("/gw"));
        assert_eq!(map.client_location("https://app.example/base/x", ""), None);
    }

    #[test]
    fn dot_segments_in_a_redirect_are_resolved_before_it_is_mapped() {
        for (path, resolved) in [
            ("/a/b/c", None),
            ("/a/./b", Some("/a/b")),
            ("/a/../b", Some("/b")),
            ("/a/b/..", Some("/a/")),
            ("/a/b/.", Some("/a/b/")),
            ("/..", Some("/")),
            ("/../../x", Some("/x")),
            ("/a//../b", Some("/a/b")),
            ("/a/%2e%2e/b", Some("/b")),
            ("/a/%2E%2e/b", Some("/b")),
            ("/a/.%2E/b", Some("/b")),
            ("/a/%2e./b", Some("/b")),
            ("/a/%2e/b", Some("/a/b")),
            ("/a\\..\\b", Some("/b")),
            ("/a/.\t./b", Some("/b")),
            ("/a/...", None),
            ("/a/.b/..c", None),
            ("/a/%2e%2e%2fb", None),
            ("a/../b", None),
        ] {
            assert_eq!(resolve_dot_segments(path).as_deref(), resolved, "{path}");
        }
        let map = LocationMap::new("http://127.0.0.1:8080/base/", Some("/gw/"));
        for (location, client) in [
            // Across the base: the client would read /gw/../base/x as /base/x, outside the route.
            ("/base/../base/x", Some("/gw/x")),
            ("/other/../base/x?y=1#f", Some("/gw/x?y=1#f")),
            ("/base/%2E%2E/base/x", Some("/gw/x")),
            ("http://127.0.0.1:8080/base/./docs/../x", Some("/gw/x")),
            ("/base/a/./b/../c", Some("/gw/a/c")),
            // Off the base once resolved: left as it is (the client resolves it alike).
            ("/base/../admin", None),
            ("/base/%2e%2e/admin", None),
            ("http://127.0.0.1:8080/base/../../x", None),
            // Never another host, however the dots fall (a `//` after the prefix is a path on the gateway).
            ("/base/..//evil.example/", None),
            ("/base/x/..//evil.example/", Some("/gw//evil.example/")),
            ("/base/x/..\\/evil.example/", Some("/gw//evil.example/")),
            // Only the path: dots in the query are data.
            ("/base/x?next=/../y", Some("/gw/x?next=/../y")),
        ] {
            assert_eq!(
                map.client_location(location, "").as_deref(),
                client,
                "{location}"
            );
        }
        // A path an origin wrote under the prefix is the prefix only once resolved.
        let stripped = LocationMap::new("http://o:8080", Some("/gw"));
        assert_eq!(
            stripped.client_location("/gw/../open/x", "").as_deref(),
            Some("/gw/open/x")
        );
        assert_eq!(
            stripped.client_location("/gw/./open/x", "").as_deref(),
            Some("/gw/open/x")
        );
        // A relative reference with dots, resolved against the upstream URL asked, as the origin meant it.
        let item = LocationMap::new("http://o:8080/v2", Some("/gw/open"));
        let asked = "http://o:8080/v2/items/1?x=1";
        for (location, client) in [
            ("../../v2/items/2", Some("/gw/open/items/2")),
            ("../3?y=2#f", Some("/gw/open/3?y=2#f")),
            ("./4", Some("/gw/open/items/4")),
            ("%2e%2e/5", Some("/gw/open/5")),
            ("..\\6", Some("/gw/open/6")),
            // Without dots, resolved alike: the same path, written whole.
            ("docs/", Some("/gw/open/items/docs/")),
            ("5?y=1", Some("/gw/open/items/5?y=1")),
            // Off the base once resolved, or a query alone (the same document on both sides): left as it is.
            ("../../x", None),
            ("../../..//evil.example/", None),
            ("?page=2", None),
            ("#top", None),
            // Not relative paths: a scheme, a network path, as browsers read them.
            ("https:../x", None),
            ("javascript:../x", None),
            ("\\\\evil.example/../x", None),
            ("\t//evil.example/../x", None),
        ] {
            assert_eq!(
                item.client_location(location, asked).as_deref(),
                client,
                "{location}"
            );
        }
        assert_eq!(
            item.client_location("../2", "http://other:8080/v2/items/1"),
            None,
            "asked elsewhere: not resolved against it"
        );
        // At the route's own path (`/api`, asked as the upstream's `/`) the client's directory is `/`, the origin's
        // `/` too but under the prefix: `login` is `/login` to a client left to resolve it, outside the route.
        let root = LocationMap::new("http://o:8080", Some("/api"));
        for location in ["login", "./login"] {
            assert_eq!(
                root.client_location(location, "http://o:8080/").as_deref(),
                Some("/api/login"),
                "{location}"
            );
        }
        // A relative reference names a path on the upstream, never one an origin wrote under the prefix: asked
        // `/api/docs/1` (the client's `/api/api/docs/1`), `2` is the upstream's `/api/docs/2`, the client's
        // `/api/api/docs/2` — not its `/api/docs/2` (the upstream's `/docs/2`).
        for (location, client) in [
            ("2", "/api/api/docs/2"),
            ("../x", "/api/api/x"),
            ("../../api/y", "/api/api/y"),
            ("../../y", "/api/y"),
        ] {
            assert_eq!(
                root.client_location(location, "http://o:8080/api/docs/1")
                    .as_deref(),
                Some(client),
                "{location}"
            );
        }
        let plain = LocationMap::new("http://o:8080", None);
        assert_eq!(
            plain.client_location("/..//evil.example/", ""),
            None,
            "no open redirect"
        );
        assert_eq!(plain.client_location("/a/../b", "").as_deref(), Some("/b"));
    }

    /// An upstream base the URL parser escapes (`/docs/café`) is asked, and written back by the origin, escaped:
    /// its redirects and cookie paths map back as an ASCII base's do.
    #[test]
    fn an_escaped_upstream_base_maps_back() {
        let map = LocationMap::new("https://o.internal/docs/café", Some("/d"));
        for location in ["/docs/caf%C3%A9/x", "https://o.internal/docs/caf%C3%A9/x"] {
            assert_eq!(
                map.client_location(location, "https://o.internal/docs/caf%C3%A9/a")
                    .as_deref(),
                Some("/d/x"),
                "{location}"
            );
        }
        assert_eq!(
            map.client_set_cookie("a=1; Path=/docs/caf%C3%A9/x", "edge.example")
                .as_deref(),
            Some("a=1; Path=/d/x")
        );
    }

    /// Each Set-Cookie as `upstream` maps it for a client on `client_host`: `None` when kept as sent.
    fn judged(upstream: &LocationMap, client_host: &str, cases: &[(&str, Option<&str>)]) {
        for (set_cookie, expected) in cases {
            assert_eq!(
                upstream
                    .client_set_cookie(set_cookie, client_host)
                    .as_deref(),
                *expected,
                "{set_cookie} for {client_host}"
            );
        }
    }

    #[test]
    fn a_cookie_domain_naming_the_upstream_and_not_the_clients_host_is_removed() {
        let map = LocationMap::new("http://App.Internal:8080", Some("/gw"));
        judged(
            &map,
            "api.example.com:443",
            &[
                (
                    "sid=1; Domain=app.internal; HttpOnly",
                    Some("sid=1; HttpOnly"),
                ),
                (
                    "sid=1; domain = .APP.internal; Path=/account",
                    Some("sid=1; Path=/gw/account"),
                ),
                // A domain the upstream lies in, also spelled after an earlier one browsers do not take.
                ("sid=1; Domain=internal", Some("sid=1")),
                (
                    "sid=1; Domain=example.com; Domain=app.internal; Secure",
                    Some("sid=1; Secure"),
                ),
                // An empty Domain is ignored: the last other one counts.
                ("sid=1; Domain=app.internal; Domain=", Some("sid=1")),
                // `Domain=.` is no empty one: the last, it names neither host (browsers refuse the cookie).
                ("sid=1; Domain=app.internal; Domain=.", None),
                ("sid=1; Domain=.", None),
                ("sid=1; Domain=..", None),
                // The client's host lies in it, or it names neither host: kept.
                ("sid=1; Domain=example.com", None),
                ("sid=1; Domain=api.example.com", None),
                ("sid=1; Domain=other.org", None),
                ("sid=1; Domain=pp.internal", None),
                ("sid=1; Domain=app.internal; Domain=example.com", None),
                // A trailing dot names the upstream all the same (a browser on api.example.com refuses the cookie).
                ("sid=1; Domain=app.internal.", Some("sid=1")),
                (
                    "sid=1; Domain=.APP.Internal.; Path=/",
                    Some("sid=1; Path=/"),
                ),
                ("sid=1; Domain=internal.", Some("sid=1")),
                ("sid=1; Domain=example.com.", None),
                // The cookie's own value is no attribute.
                ("Domain=app.internal", None),
                ("sid=1; HttpOnly", None),
            ],
        );
        // A client on the upstream's own host (a Worker in front of its zone's origin) keeps it.
        let same = LocationMap::new("https://example.com", None);
        assert_eq!(
            same.client_set_cookie("a=1; Domain=example.com", "www.example.com"),
            None
        );
        // Browsers match the client's host as spelled: with its trailing dot, `example.com` does not cover it and
        // `example.com.` does; an upstream spelled with one is the same host.
        let shared = LocationMap::new("https://app.example.com", None);
        judged(
            &shared,
            "shop.example.com.",
            &[
                ("a=1; Domain=example.com", Some("a=1")),
                ("a=1; Domain=example.com.", None),
            ],
        );
        judged(
            &shared,
            "shop.example.com",
            &[
                ("a=1; Domain=example.com.", Some("a=1")),
                ("a=1; Domain=example.com", None),
            ],
        );
        let absolute = LocationMap::new("http://app.internal.:8080", None);
        assert_eq!(
            absolute
                .client_set_cookie("a=1; Domain=app.internal", "api.example.com")
                .as_deref(),
            Some("a=1")
        );
        // No client host known: nothing judged.
        let unknown = LocationMap::new("http://app.internal", None);
        assert_eq!(
            unknown.client_set_cookie("a=1; Domain=app.internal", ""),
            None
        );
        // An upstream named by its IP address lies in no parent domain: a `Domain` naming part of it names neither
        // host, and is kept as the browser's to refuse.
        let ip = LocationMap::new("http://10.0.0.5:8080", None);
        judged(
            &ip,
            "api.example.com",
            &[
                ("a=1; Domain=10.0.0.5", Some("a=1")),
                ("a=1; Domain=0.0.5", None),
                ("a=1; Domain=.5", None),
                // Full-width digits and dots, which a browser reads as the address itself.
                ("a=1; Domain=１０.０.０.５", Some("a=1")),
                ("a=1; Domain=０.０.５", None),
            ],
        );
        let v6 = LocationMap::new("http://[fd00::1]:8080", None);
        assert_eq!(
            v6.client_set_cookie("a=1; Domain=[fd00::1]", "[::1]:8787")
                .as_deref(),
            Some("a=1")
        );
    }

    #[test]
    fn an_internationalised_cookie_domain_is_judged_alike_in_either_spelling() {
        // The runtime hands the Worker the client's host in A-labels (`www.xn--bcher-kva.example`), as the URL
        // parser writes it; a route may name its upstream in either spelling, and an origin its cookie's `Domain`.
        for upstream in ["https://bücher.example", "https://xn--bcher-kva.example"] {
            let map = LocationMap::new(upstream, None);
            judged(
                &map,
                "api.example.com",
                &[
                    ("a=1; Domain=bücher.example", Some("a=1")),
                    ("a=1; Domain=xn--bcher-kva.example", Some("a=1")),
                    ("a=1; Domain=.BÜCHER.Example.; Path=/", Some("a=1; Path=/")),
                    ("a=1; Domain=XN--BCHER-KVA.example", Some("a=1")),
                    // Another name, or one IDNA cannot write in ASCII, names neither host: kept.
                    ("a=1; Domain=bucher.example", None),
                    ("a=1; Domain=xn--bcher-kva.other", None),
                    ("a=1; Domain=bü\u{7f}cher.example", None),
                ],
            );
            // A client on the upstream's own zone: the domain covers it in either spelling, and is kept.
            for client_host in ["www.xn--bcher-kva.example", "www.bücher.example"] {
                judged(
                    &map,
                    client_host,
                    &[
                        ("a=1; Domain=bücher.example", None),
                        ("a=1; Domain=xn--bcher-kva.example", None),
                    ],
                );
            }
        }
        // A client host in another zone than the internal upstream's, named in UTF-8: only the upstream's name goes.
        let internal = LocationMap::new("http://app.internal:8080", None);
        judged(
            &internal,
            "shop.xn--bcher-kva.example",
            &[
                ("a=1; Domain=app.internal", Some("a=1")),
                ("a=1; Domain=bücher.example", None),
            ],
        );
    }

    #[test]
    fn cookie_paths_on_the_upstream_are_mapped_under_the_route_prefix() {
        let stripped = LocationMap::new("http://o:8080", Some("/gw"));
        for (set_cookie, client) in [
            (
                "sid=1; Path=/account; HttpOnly",
                Some("sid=1; Path=/gw/account; HttpOnly"),
            ),
            (
                "sid=1; HttpOnly; path = /account",
                Some("sid=1; HttpOnly; path =/gw/account"),
            ),
            // Browsers take the last Path attribute.
            ("sid=1; Path=/; Path=/a", Some("sid=1; Path=/; Path=/gw/a")),
            ("sid=1; Path=/gwx", Some("sid=1; Path=/gw/gwx")),
            // Already reaching the route: the site's root, the prefix itself, a path under it.
            ("sid=1; Path=/", None),
            ("sid=1; Path=/gw", None),
            ("sid=1; Path=/gw/account", None),
            // No path (the browser's default), one that is not a path, the cookie's own value.
            ("sid=1; HttpOnly", None),
            ("sid=1; Path=account", None),
            ("path=/account", None),
            ("sid=Path=/x; Secure", None),
            // A cookie path is no navigation: `//` stays a path.
            ("sid=1; Path=//x", Some("sid=1; Path=/gw//x")),
        ] {
            assert_eq!(
                stripped.client_set_cookie(set_cookie, "").as_deref(),
                client,
                "{set_cookie}"
            );
        }
        let based = LocationMap::new("http://o:8080/v2", Some("/gw/open"));
        assert_eq!(
            based
                .client_set_cookie("a=b; Path=/v2/items", "")
                .as_deref(),
            Some("a=b; Path=/gw/open/items")
        );
        assert_eq!(
            based.client_set_cookie("a=b; Path=/other", ""),
            None,
            "not on the upstream's base"
        );
        assert_eq!(
            based.client_set_cookie("a=b; Path=/gw/", ""),
            None,
            "covers /gw/open"
        );
        // A servlet container's context path: the cookie covers the whole upstream, so the whole route.
        let tomcat = LocationMap::new("http://tomcat:8080/app/api", Some("/gw"));
        for path in ["/app", "/app/", "/app/api"] {
            assert_eq!(
                tomcat
                    .client_set_cookie(&format!("JSESSIONID=1; Path={path}; HttpOnly"), "")
                    .as_deref(),
                Some("JSESSIONID=1; Path=/gw; HttpOnly"),
                "{path}"
            );
        }
        assert_eq!(
            tomcat.client_set_cookie("a=1; Path=/ap", "").as_deref(),
            None,
            "/ap covers nothing of /app/api"
        );
        assert_eq!(
            stripped
                .client_set_cookie("s=1; Path=/a; \u{a0}Path=/x", "")
                .as_deref(),
            Some("s=1; Path=/gw/a; \u{a0}Path=/x"),
            "a name browsers do not trim is no Path"
        );
        let unprefixed = LocationMap::new("http://o:8080/v2", None);
        assert_eq!(
            unprefixed
                .client_set_cookie("a=b; Path=/v2/api", "")
                .as_deref(),
            Some("a=b; Path=/api")
        );
        assert_eq!(
            unprefixed.client_set_cookie("a=b; Path=/v2", "").as_deref(),
            Some("a=b; Path=/")
        );
        let plain = LocationMap::new("http://o:8080", None);
        assert_eq!(
            plain.client_set_cookie("a=b; Path=/x", ""),
            None,
            "same paths on both sides"
        );
    }

    #[test]
    fn requesters_that_sent_more_than_a_shared_fill_carries_are_told_apart() {
        for name in [
            "cookie",
            "authorization",
            "x-api-key",
            "x-tenant",
            "x-user-id",
            "x-custom",
        ] {
            assert!(tailors_answer(name), "{name}");
        }
        for name in [
            "accept",
            "user-agent",
            "sec-fetch-mode",
            "sec-ch-ua-platform",
            "cache-control",
            "referer",
            "if-none-match",
            "accept-encoding",
            "x-forwarded-prefix",
            "traceparent",
        ] {
            assert!(!tailors_answer(name), "{name}");
        }
        assert!(forward_on_preflight("access-control-request-headers"));
        assert!(forward_on_preflight("x-forwarded-for"));
        assert!(
            forward_on_preflight("max-forwards"),
            "one lower, as on any OPTIONS"
        );
        for name in ["cookie", "authorization", "x-api-key", "content-type"] {
            assert!(!forward_on_preflight(name), "{name}");
        }
    }

    #[test]
    fn a_range_request_asks_for_the_uncoded_representation() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let mut ranged = pairs(&[("accept-encoding", "br, gzip"), ("range", "bytes=5-14")]);
        ranges_uncoded(&mut ranged);
        assert_eq!(
            ranged,
            pairs(&[("range", "bytes=5-14"), ("accept-encoding", "identity")]),
            "a range is asked of the uncoded body"
        );
        let mut bare = pairs(&[("Range", "bytes=0-")]);
        ranges_uncoded(&mut bare);
        assert_eq!(
            bare,
            pairs(&[("Range", "bytes=0-"), ("accept-encoding", "identity")]),
            "also when the runtime sent no Accept-Encoding"
        );
        let mut whole = pairs(&[("accept-encoding", "br, gzip")]);
        ranges_uncoded(&mut whole);
        assert_eq!(
            whole,
            pairs(&[("accept-encoding", "br, gzip")]),
            "a request for the whole body may be answered coded"
        );
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(
            forwarded_for(None, ip("1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(
            forwarded_for(Some("9.9.9.9"), ip("1.2.3.4")).as_deref(),
            Some("9.9.9.9, 1.2.3.4")
        );
        assert_eq!(forwarded_for(Some(" "), None), None);
        assert_eq!(
            forwarded_for(Some("9.9.9.9, 1.2.3.4"), ip("1.2.3.4")).as_deref(),
            Some("9.9.9.9, 1.2.3.4"),
            "not twice when the last hop already named the client"
        );
        assert_eq!(
            forwarded_for(Some("1.2.3.4, 9.9.9.9"), ip("1.2.3.4")).as_deref(),
            Some("1.2.3.4, 9.9.9.9, 1.2.3.4")
        );
        // The last hop named the client in another spelling of the same address: still not twice.
        for last in ["2001:DB8::7", "2001:db8:0:0::0007", " 2001:db8::7"] {
            let list = format!("9.9.9.9,{last}");
            assert_eq!(
                forwarded_for(Some(&list), ip("2001:db8::7")).as_deref(),
                Some(list.as_str()),
                "{last}"
            );
        }
        assert_eq!(
            forwarded_for(Some("9.9.9.9, ::ffff:1.2.3.4"), ip("1.2.3.4")).as_deref(),
            Some("9.9.9.9, ::ffff:1.2.3.4")
        );
        // A last entry that is another address, or no address (a port, brackets), is another hop.
        for last in ["1.2.3.5", "1.2.3.4:443", "[2001:db8::7]", "unknown"] {
            assert_eq!(
                forwarded_for(Some(last), ip("1.2.3.4")),
                Some(format!("{last}, 1.2.3.4")),
                "{last}"
            );
        }
    }

    #[test]
    fn an_email_goes_as_ascii_that_decodes_back_to_it() {
        for (email, sent) in [
            ("alice@example.com", "alice@example.com"),
            ("o'neil+tag@example.com", "o'neil+tag@example.com"),
            ("josé@例え.jp", "jos%C3%A9@%E4%BE%8B%E3%81%88.jp"),
            ("a%C3%A9@example.com", "a%25C3%25A9@example.com"),
            ("\"a b\"@example.com", "\"a%20b\"@example.com"),
        ] {
            assert_eq!(email_header(email), sent, "{email}");
            assert!(sent.bytes().all(|b| b.is_ascii_graphic()), "{sent}");
            assert_eq!(
                percent_encoding::percent_decode_str(sent)
                    .decode_utf8()
                    .as_deref(),
                Ok(email),
                "{email}"
            );
        }
    }
}
