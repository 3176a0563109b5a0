//! The gateway at runtime: resolves a configured route, runs the WAF, authenticates (JWT from the KV JWKS, cached in
//! the isolate), proxies to the origin with the body streamed both ways (timeouts, retries for idempotent methods),
//! serves cacheable GETs from the Cache API (stale-while-revalidate, stale-if-error, per-key request coalescing),
//! hands WebSocket handshakes on routes that accept them to the origin, and answers the admin purge-by-tag route.
//! The rules it applies live in the pure sibling modules.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::ext::ResponseExt;
use worker::{js_sys, web_sys, Cache, Delay, Request, Response, ResponseBody};

use super::cache::{
    acts_on_its_visitor, cache_key, fill_answer_reaches, invalidates, keep_purge_made,
    lifts_refresh_hold, not_modified, null_body, origin_pushback, purge_answer, purge_marks,
    purged_since, refresh_due, refresh_hold_ms, settle_put, shared_fill_answer, storable,
    stretched_lifetime, tags_for, tags_left_out, valid_tag, write_marks, CachePolicy, CopyAging,
    FillAnswer, Freshness, KeyHolds, KeyId, PutFailed, StoredMeta, Writes, PASS_MS,
    PURGE_MARK_TTL_SECS, PURGE_RETRY_MS,
};
use super::headers::{
    cache_fill_headers, cdn_loop_for_origin, clear_site_data_for_client, connection_tokens,
    email_header, forward_on_preflight, forward_request_header, forward_response_header,
    forwarded_for, head_keeps_origin_length, length_withheld, max_forwards, own_cdn_loops,
    per_exchange, ranges_uncoded, runtime_may_code, sets_cookie_named, tailors_answer,
    without_cookies, LocationMap, CDN_LOOP_ID, MAX_CDN_LOOPS, SHARED_FILL,
};
use super::inflate;
use super::jwt::{self, Jwks, JwtPolicy, Verified, VerifiedOnce};
use super::key_set::{KeySetMemory, Lookup, ReadFailure, REFRESH_STALE_MS};
use super::request_url::{normalise_path, RequestUrl};
use super::routes::{is_retryable_method, AuthPolicy, Matched, Route};
use super::token_cache::{Recall, VerifiedTokens};
use super::waf::{self, Hit, WafConfig, WafMode};
use crate::bindings;
use crate::client_address::ClientAddress;
use crate::entry::body::{read_or_pass, Prefix};
use crate::entry::coalesce::{self, InFlight, Lead};
use crate::entry::{header_list, log, respond, Call, Isolate};
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::observability::log::Level;
use crate::observability::trace::{self, continue_or_start, TraceContext};
use crate::ratelimit::headers::RateLimitHeaders;
use crate::websocket::{self, Upgrade};
use crate::{ratelimit, session};

/// The challenge of a 403 to a bearer token that lacks a permission the route needs (RFC 6750 §3.1).
const INSUFFICIENT_SCOPE: &str = "Bearer error=\"insufficient_scope\"";

/// Prefix of the KV keys that record when a cache tag was last purged (value: milliseconds since the epoch).
const PURGE_KEY_PREFIX: &str = "gateway:purge:";

/// Serves a request no app route matched: 404/405 from the gateway table, or the proxied route.
pub async fn serve(mut call: Call) -> ApiResult<Response> {
    let isolate = call.isolate.clone();
    let method = call.method.clone();
    // Matched, screened and forwarded in one spelling, whichever the client used (request_url::normalise_path).
    let serialised = call.req.inner().url();
    let raw = RequestUrl::split(&serialised);
    let path = normalise_path(raw.path);
    let url = RequestUrl { path: &path, ..raw };
    // A CORS preflight to a route that does not serve OPTIONS asks whether the method it names may be sent: it meets
    // the route by that method, and is answered with the origin's CORS answer alone (`preflight_answer`). A route
    // that lists OPTIONS serves it as any other method, checks included.
    // The request's headers, read across the boundary once and consulted from here on.
    let incoming = header_list::read(call.req.headers());
    // Every answer of the gateway's, its own 404 and 405 too, says the trace it is part of.
    let trace = continue_or_start(
        header_list::get(&incoming, "traceparent"),
        respond::trace_random(),
        isolate.config.gateway.trace_sample_percent,
    );
    // What every error answer below says (`answered_error`), a panic's included: the CORS headers that let the page
    // that sent it read it (`GATEWAY_CORS_ORIGINS`, `cors`) and the trace. Built once: a success says the same trace.
    let traceparent = trace.header();
    let mut said = isolate
        .config
        .gateway
        .cors
        .headers(header_list::get(&incoming, "origin"));
    said.extend([
        ("x-trace-id", trace.trace_id.clone()),
        ("traceparent", traceparent.clone()),
    ]);
    crate::entry::note_error_headers(&said);
    // A request that has come round through edgekit gateways this often is in a loop (an upstream leading back to
    // the Worker): refused before any route's work, which each pass would do again.
    if own_cdn_loops(header_list::get(&incoming, "cdn-loop")) >= MAX_CDN_LOOPS {
        let error = ApiError::new(
            508,
            "loop_detected",
            "the request came back through this gateway too often: a route's upstream leads back to it",
        )
        .with_internal(format!(
            "CDN-Loop lists {CDN_LOOP_ID} {MAX_CDN_LOOPS} times or more"
        ));
        crate::entry::body::drain(&mut call.req).await;
        return Err(answered_error(error, said, &call));
    }
    let routes = &isolate.config.gateway.routes;
    let mut matched = routes.resolve(&method, &path);
    let mut preflight = None;
    if method == "OPTIONS" && matches!(matched, Matched::MethodNotAllowed { .. }) {
        preflight = header(&call.req, "access-control-request-method")
            .filter(|_| header(&call.req, "origin").is_some());
        if let Some(asked) = &preflight {
            matched = routes.resolve(asked, &path);
        }
    }
    let (route, _params) = match matched {
        Matched::Route { route, params } => (route, params),
        refused => {
            let error = match refused {
                Matched::MethodNotAllowed { allowed } => {
                    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
                    // A preflight refused for the method it asks about: that method is the one refused, and OPTIONS
                    // is served here, as this preflight is (RFC 9110 §15.5.6: Allow lists what the target supports)
                    // — but for a preflight asking about OPTIONS itself, which this route does not forward.
                    match &preflight {
                        Some(asked) => ApiError::preflight_refused(asked, &allowed),
                        None => ApiError::method_not_allowed(&method, &allowed),
                    }
                }
                _ => ApiError::not_found(format!("no route serves {path}")),
            };
            // Read before answering, as after a refusal below: a large upload answered mid-way saw a reset.
            crate::entry::body::drain(&mut call.req).await;
            return Err(answered_error(error, said, &call));
        }
    };
    let outcome = match &preflight {
        Some(asked) => preflight_answer(&mut call, route, asked, &trace, &incoming, url).await,
        None => proxy_route(&mut call, route, &method, &trace, &incoming, url).await,
    };
    if outcome.is_err() {
        // Refused before the body was read (WAF, auth, rate limit): drain it so the client sees the answer.
        crate::entry::body::drain(&mut call.req).await;
    }
    match outcome {
        Ok(response) => Ok(traced(response, &trace.trace_id, &traceparent, &call)),
        Err(error) => {
            if let Some(detail) = error.internal_detail() {
                log::warn(
                    "gateway",
                    serde_json::json!({"route": route.name, "error_code": error.code(),
                        "detail": detail, "request_id": call.request_id}),
                );
            }
            Err(answered_error(error, said, &call))
        }
    }
}

/// A refusal or failure of the gateway's own, left an error so the entry answers it and the request's log line
/// names its code (turned into a response here, every 401, 403, 429 and 502 was logged without one), with `said`
/// (the CORS and trace headers of any gateway answer, [`serve`]) and the edge's `Server-Timing` entry.
fn answered_error(error: ApiError, said: Vec<(&'static str, String)>, call: &Call) -> ApiError {
    error
        .with_headers(said)
        .with_header("server-timing", edge_timing(edge_ms(call)))
}

/// A gateway answer with the trace it is part of (`x-trace-id`, `traceparent`) and the edge's `Server-Timing` entry,
/// appended: the origin's own `origin;dur=…` entry stays beside it.
fn traced(response: Response, trace_id: &str, traceparent: &str, call: &Call) -> Response {
    let response = respond::with_header(response, "x-trace-id", trace_id);
    let response = respond::with_header(response, "traceparent", traceparent);
    respond::with_appended_header(response, "server-timing", &edge_timing(edge_ms(call)))
}

/// How long the request has been at the edge, in ms.
fn edge_ms(call: &Call) -> u64 {
    respond::now_ms().saturating_sub(call.started_ms)
}

/// The edge's `Server-Timing` entry.
fn edge_timing(edge_ms: u64) -> String {
    format!("edge;dur={edge_ms};desc=\"gateway\"")
}

async fn proxy_route(
    call: &mut Call,
    route: &Route,
    method: &str,
    trace: &TraceContext,
    incoming: &[(String, String)],
    url: RequestUrl<'_>,
) -> ApiResult<Response> {
    let content_length = screen_request(call, route, method, incoming, url)?;

    // A WebSocket handshake is proxied on a route that opts in (`websocket`, a GET route), after the same checks as
    // a GET ([`open_websocket`]). Elsewhere it would reach the origin as a plain GET (`Upgrade` is hop-by-hop): refused
    // as such, not answered with whatever that GET gets (or a cached copy). Other upgrades (`h2c`) are offers a server
    // may ignore, and are. One the runtime would not let the gateway answer with a socket is refused before the
    // origin is asked and the limits count it: it checks the client's version and key only once handed the 101,
    // after the origin opened a socket (`crate::websocket`, which a room's join reads its handshake with too).
    let upgrade = websocket::upgrade(header_list::get(incoming, "upgrade"));
    let websocket = upgrade != Upgrade::None;
    if websocket {
        let unsupported = if !route.websocket {
            Some(format!(
                "route {} does not accept WebSocket connections",
                route.name
            ))
        } else if method != "GET" {
            // Not reached under Miniflare, whose hop in front of the Worker opens every handshake as a GET (the
            // origin is asked, and the client gets workerd's 500 "WebSocket must be initiated with a GET request";
            // README): kept for a runtime that tells the Worker the method.
            Some(format!("a WebSocket handshake is a GET, not a {method}"))
        } else {
            None
        };
        if let Some(message) = unsupported {
            return Err(ApiError::new(501, "upgrade_unsupported", message));
        }
        if let Some(refused) = websocket::refusal(
            upgrade,
            header_list::get(incoming, "sec-websocket-version"),
            header_list::get(incoming, "sec-websocket-key"),
        ) {
            return Err(refused);
        }
    }
    // The runtime's fetch sends no body with GET or HEAD: one sent would be dropped, and the origin answer a
    // request the client did not make (a search without its query).
    if matches!(method, "GET" | "HEAD")
        && (content_length.is_some_and(|n| n > 0)
            || header_list::get(incoming, "transfer-encoding").is_some())
    {
        return Err(ApiError::bad_request(
            "body_not_forwarded",
            format!("a {method} request cannot carry a body to the origin; send it with POST"),
        ));
    }

    // Authentication and permissions: a token is verified at most once per request.
    let mut token = VerifiedOnce::default();
    let identity = authenticate(call, route, &mut token, incoming).await?;
    // A browser sends its cookies on the handshake of a WebSocket that any page opens, and no CORS check stands
    // between that page and the socket: one signed in by the session cookie (no bearer token decided) must come
    // from this site's own pages, as a state-changing request must (`session::origin_check`).
    if websocket
        && identity.is_some()
        && !token.done()
        && matches!(route.auth, AuthPolicy::Session | AuthPolicy::JwtOrSession)
    {
        session::handler::refuse_cross_origin(call)?;
    }
    if let Some(user) = &identity {
        if let Some(missing) = user.missing(&route.permissions) {
            let error = ApiError::forbidden(
                "missing_permission",
                format!("this route requires the permission {missing}"),
            );
            // A bearer token's holder learns that the token lacks what the route needs (RFC 6750 §3.1).
            return Err(if token.done() {
                error.with_header("www-authenticate", INSUFFICIENT_SCOPE)
            } else {
                error
            });
        }
    }
    // Rate limits: after authentication, so `user`/`route_user` policies key on the verified identity. Every
    // policy's key is resolved before any counts (a request without the API key one of them needs is refused
    // uncounted); then they are asked in the configured order, and the first refusal answers — counted by the
    // policies before it, not by those after.
    let user = identity.as_ref().map(|u| u.sub.as_str());
    let limited = rate_limit(call, route, user, false).await?;
    // RFC 9110 §7.6.2: an OPTIONS (or TRACE) with no hop left is answered here, as its final recipient, with what
    // the route serves; one with hops left goes on with one fewer (`origin_headers`).
    let answered = if max_forwards(method, header_list::get(incoming, "max-forwards")) == Some(0) {
        final_recipient_answer(call, url, false).await
    } else if websocket {
        open_websocket(call, route, trace, url, identity.as_ref(), incoming).await
    } else {
        let forwarded = forward(
            call,
            route,
            method,
            trace,
            url,
            identity.as_ref(),
            content_length,
            incoming,
        )
        .await;
        // The origin learns the user from `X-User-*`, never from the cookie or token the gateway read them from, so
        // its `Vary` cannot name them: a signed-in route's answer varies by both, as a per-user policy's does
        // (`CachePolicy::client_vary`). Else a browser told `private, max-age=60` answered the next user signed in
        // on it with the first one's copy, and a cache in front told `public` served it to other credentials or none.
        match identity {
            Some(_) => forwarded.map(varies_by_credentials),
            None => forwarded,
        }
    };
    // The limits counted this request whatever comes of it: a failure of the gateway's own (origin unreachable or
    // late, 502/504) says where the client stands too, as the origin's answer does.
    RateLimitHeaders::stamp_all(&limited.iter().collect::<Vec<_>>(), answered)
}

/// `response` with `Authorization` and `Cookie` in its `Vary` (merged into what it says, `*` kept).
fn varies_by_credentials(response: Response) -> Response {
    let said = response.headers().get("vary").ok().flatten();
    let vary = crate::error::merged_vary(said.as_deref().unwrap_or(""), "Authorization, Cookie");
    respond::with_header(response, "vary", &vary)
}

/// The answer to an OPTIONS with no hop left (`Max-Forwards: 0`, RFC 9110 §7.6.2), which the gateway must not forward
/// and answers as its final recipient: 200 with every method the path is served with, its body (if any) read first.
/// A `preflight`'s lists OPTIONS too, as its 405 does (`ApiError::preflight_refused`): the gateway serves it there.
async fn final_recipient_answer(
    call: &mut Call,
    url: RequestUrl<'_>,
    preflight: bool,
) -> ApiResult<Response> {
    crate::entry::body::drain(&mut call.req).await;
    let mut allowed = call.isolate.config.gateway.routes.allowed(url.path);
    if preflight && !allowed.iter().any(|m| m == "OPTIONS") {
        allowed.push("OPTIONS".to_owned());
    }
    Ok(Response::builder()
        .with_status(200)
        .with_header("allow", &allowed.join(", "))
        .or_internal("building the Allow header")?
        .with_header("content-length", "0")
        .or_internal("building the Content-Length header")?
        .empty())
}

/// The route's rate limits for a request by `user`. Every policy's key is resolved before any counts (a request
/// without the API key one of them needs is refused uncounted); then they are asked in the configured order, and
/// the first refusal answers — counted by the policies before it, not by those after. For a preflight
/// (`keyed_by_address_only`), the policies keyed by a user or API key it never carries are left out.
async fn rate_limit(
    call: &Call,
    route: &Route,
    user: Option<&str>,
    keyed_by_address_only: bool,
) -> ApiResult<Vec<RateLimitHeaders>> {
    let keys = route
        .rate_limits
        .iter()
        .filter_map(|policy| {
            match ratelimit::handler::resolve_key(call, policy, user, &route.path) {
                Err(e) if keyed_by_address_only && e.status() == 401 => None,
                resolved => Some(resolved.map(|key| (policy, key))),
            }
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let mut limited = Vec::with_capacity(keys.len());
    for (policy, key) in keys.iter().map(|(p, k)| (*p, k)) {
        match ratelimit::handler::enforce(call, policy, key).await {
            Ok(passed) => limited.push(passed),
            // A 429 also lists the policies that counted this request before the one that refused it.
            Err(refused) => {
                let passed = limited.iter().collect::<Vec<_>>();
                return Err(RateLimitHeaders::listed_on(&passed, refused));
            }
        }
    }
    Ok(limited)
}

/// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) to a route that does not serve
/// OPTIONS, matched by the method it asks about: browsers send it without credentials, so it passes without
/// authentication, and the origin answers it — but with its CORS answer only. The origin gets no body, no cookie
/// and no credentials (`forward_on_preflight`: a browser sends none, and one sent by hand gets none through), and
/// only the status and the `Access-Control-*` and `Vary` headers come back, with no body: whatever an origin does
/// with an OPTIONS it does not know (many answer it as a GET) goes no further. The WAF and the ambiguity check run
/// as for the method asked about; rate limits keyed by address count it.
async fn preflight_answer(
    call: &mut Call,
    route: &Route,
    asked: &str,
    trace: &TraceContext,
    incoming: &[(String, String)],
    url: RequestUrl<'_>,
) -> ApiResult<Response> {
    screen_request(call, route, asked, incoming, url)?;
    let limited = rate_limit(call, route, None, true).await?;
    let answered = preflight_forwarded(call, route, trace, incoming, url).await;
    // Counted whatever comes of it, as a request `proxy_route` forwards is.
    RateLimitHeaders::stamp_all(&limited.iter().collect::<Vec<_>>(), answered)
}

/// The answer to an admitted preflight ([`preflight_answer`]), before its rate-limit fields.
async fn preflight_forwarded(
    call: &mut Call,
    route: &Route,
    trace: &TraceContext,
    incoming: &[(String, String)],
    url: RequestUrl<'_>,
) -> ApiResult<Response> {
    // A preflight is an OPTIONS too: with no hop left it is not forwarded (RFC 9110 §7.6.2), and answered without the
    // origin's CORS headers, which only the origin can give; with hops left it goes on with one fewer.
    if max_forwards("OPTIONS", header_list::get(incoming, "max-forwards")) == Some(0) {
        return final_recipient_answer(call, url, true).await;
    }
    crate::entry::body::drain(&mut call.req).await;
    let headers: Vec<(String, String)> = origin_headers(
        call,
        route,
        incoming,
        named_client(incoming),
        url,
        trace,
        None,
    )
    .into_iter()
    .filter(|(name, _)| forward_on_preflight(name))
    .collect();
    let target = route.upstream_url(url.path, url.query);
    let response = send(
        &target,
        "OPTIONS",
        &headers,
        &OutBody::None,
        route.timeout_ms,
        route.retries,
        Timing::Runtime,
    )
    .await
    .map_err(Failure::into_error)?;
    if let Some(body) = response.body() {
        let _ = body.cancel();
    }
    let cors: Vec<(String, String)> = header_list::read(&worker::Headers(response.headers()))
        .into_iter()
        .filter(|(name, _)| name.starts_with("access-control-") || name == "vary")
        .collect();
    Ok(Response::builder()
        .with_status(response.status())
        .with_headers(header_list::build(&cors))
        .empty())
}

/// Forwards an admitted request: from the edge cache for cacheable GET/HEAD, else to the origin.
#[allow(clippy::too_many_arguments)]
async fn forward(
    call: &mut Call,
    route: &Route,
    method: &str,
    trace: &TraceContext,
    url: RequestUrl<'_>,
    identity: Option<&Verified>,
    content_length: Option<u64>,
    incoming: &[(String, String)],
) -> ApiResult<Response> {
    let isolate = call.isolate.clone();
    let gateway = &isolate.config.gateway;

    // Body: inspected up to the cap, then forwarded (streamed past the cap).
    let content_type = header_list::get(incoming, "content-type");
    let coding = header_list::get(incoming, "content-encoding");
    let body_waf = route.body_waf(&gateway.waf);
    let body = take_body(
        call,
        &body_waf,
        method,
        content_length,
        (content_type, coding),
        route.timeout_ms,
    )
    .await?;

    let client = named_client(incoming);
    let headers = origin_headers(call, route, incoming, client, url, trace, identity);
    // A HEAD whose GET the runtime may gzip or br for this client (its own Accept-Encoding: the Worker's is the
    // runtime's `br, gzip`, whatever was sent) is told no length: the coded body's differs (RFC 9110 §8.6).
    let head_may_code = method == "HEAD"
        && respond::cf_string(call.req.inner(), "clientAcceptEncoding")
            .is_none_or(|sent| runtime_may_code(Some(&sent)));
    let target = route.upstream_url(url.path, url.query);
    // A Range request goes to the origin as it is: a fill fetches whole representations, and the client asked for
    // part of one (a 206 only the origin makes; Safari will not play a video without it).
    let cacheable =
        matches!(method, "GET" | "HEAD") && header_list::get(incoming, "range").is_none();
    if let (true, Some(policy_name)) = (cacheable, &route.cache) {
        // On a signed-in route, shared among those it admits, but told as no cache in front can tell who that is.
        let policy = gateway
            .cache_policies
            .for_route(policy_name, route.auth != AuthPolicy::None)
            .ok_or_else(|| ApiError::internal(format!("cache policy {policy_name} vanished")))?
            .clone();
        let authorization = header_list::get(&headers, "authorization");
        let site = header_list::get(&headers, "origin");
        if let Some(key) = cache_key(&route.name, url, &policy, identity, authorization, site) {
            // The request's own directives: what it lets the cache store and serve.
            let cache_control = header_list::get(incoming, "cache-control");
            let says = |directive: &str| {
                cache_control
                    .is_some_and(|list| crate::cache_control::directive(list, directive).is_some())
            };
            let spec = Spec {
                url: target,
                headers: cache_fill_headers(&headers, policy.shared, client),
                client,
                location: route.location.clone(),
                client_authority: url.authority.to_owned(),
                isolate: call.isolate.clone(),
                timeout_ms: route.timeout_ms,
                retries: route.retries,
                route: route.name.clone(),
                key,
                max_body_bytes: gateway.cache_max_body_bytes,
                fill_body_ms: gateway.cache_fill_body_ms,
                request_id: call.request_id.clone(),
                store: !says("no-store"),
            };
            let asked = Asked {
                head: method == "HEAD",
                may_code: head_may_code,
                if_none_match: header_list::get(incoming, "if-none-match").map(str::to_owned),
                if_modified_since: header_list::get(incoming, "if-modified-since")
                    .map(str::to_owned),
                only_if_cached: says("only-if-cached"),
            };
            let own = OwnRequest {
                method,
                headers: &headers,
            };
            return cached(call, spec, policy, asked, own).await;
        }
    }
    // A request of a cached route no stored copy can answer — a Range request, or one without the credentials a
    // per-user policy keys on — asks the origin; one that said `only-if-cached` must not (RFC 9111 §5.2.1.7).
    if route.cache.is_some()
        && matches!(method, "GET" | "HEAD")
        && header_list::get(incoming, "cache-control")
            .is_some_and(|list| crate::cache_control::directive(list, "only-if-cached").is_some())
    {
        return Err(not_cached());
    }
    let started = respond::now_ms();
    let retries = if is_retryable_method(method) && !body.is_stream() {
        route.retries
    } else {
        0
    };
    let upstream = send(
        &target,
        method,
        &headers,
        &body,
        route.timeout_ms,
        retries,
        Timing::Runtime,
    )
    .await;
    let origin_ms = respond::now_ms().saturating_sub(started);
    if body.over_cap() && body_waf.mode == WafMode::Block {
        // The origin's request was cut off (the hit is logged where it was counted); the client may still be sending.
        body.drain_cut_off().await;
        return Err(blocked(&SIZE_BODY));
    }
    if let Ok(response) = &upstream {
        if invalidates(method, response.status()) {
            invalidate(call, url, identity, &headers).await;
        }
    }
    match upstream {
        Ok(response) => Ok(pass_through(
            response,
            &[("server-timing".into(), format!("origin;dur={origin_ms}"))],
            &ToClient {
                location: &route.location,
                authority: url.authority,
                asked: &target,
                own_cookies: own_cookies(&call.isolate),
            },
            method == "HEAD",
            head_may_code,
        )),
        Err(failure) => {
            // A client that stalled its own upload has nothing more to read.
            if !matches!(failure, Failure::ClientStalled(_)) {
                body.drain_unsent().await;
            }
            Err(failure.into_error())
        }
    }
}

/// An admitted WebSocket handshake on a route that accepts them, sent to the origin as a handshake of its own: the
/// headers a GET of the route gets (forwarding, identity, trace) and `Upgrade`/`Connection`, which are hop-by-hop
/// elsewhere; the client's `Sec-WebSocket-*` fields pass as any end-to-end field. Never from the edge cache, never
/// retried; the route's timeout covers the handshake only (`Timing::HeadersOnly`: the timer is dropped once the
/// origin answers, so it never cuts an open socket off). The origin's 101 goes back with its socket, which the runtime
/// then relays frame by frame, closes included; an origin that does not upgrade has its answer passed back as any.
async fn open_websocket(
    call: &Call,
    route: &Route,
    trace: &TraceContext,
    url: RequestUrl<'_>,
    identity: Option<&Verified>,
    incoming: &[(String, String)],
) -> ApiResult<Response> {
    let client = named_client(incoming);
    let mut headers = origin_headers(call, route, incoming, client, url, trace, identity);
    headers.push(("upgrade".into(), "websocket".into()));
    headers.push(("connection".into(), "Upgrade".into()));
    let target = route.upstream_url(url.path, url.query);
    let started = respond::now_ms();
    let response = send(
        &target,
        "GET",
        &headers,
        &OutBody::None,
        route.timeout_ms,
        0,
        Timing::HeadersOnly,
    )
    .await
    .map_err(Failure::into_error)?;
    let timing = [(
        "server-timing".to_owned(),
        format!("origin;dur={}", respond::now_ms().saturating_sub(started)),
    )];
    let to = ToClient {
        location: &route.location,
        authority: url.authority,
        asked: &target,
        own_cookies: own_cookies(&call.isolate),
    };
    let Some(socket) = response.websocket() else {
        return Ok(pass_through(response, &timing, &to, false, false));
    };
    // The origin's fields for the client (its chosen `Sec-WebSocket-Protocol`, cookies it sets), but those of its own
    // leg of the handshake, which the runtime writes anew for the client's.
    let mut pairs = header_list::read(&worker::Headers(response.headers()));
    // A subprotocol the client did not offer, or none of those it offered, would make it fail the connection (RFC
    // 6455 §4.1; WHATWG WebSockets) after a 101: the origin's socket is closed as its protocol error, and the client
    // told so in an answer it can read.
    let offered = header_list::get(incoming, "sec-websocket-protocol");
    let chosen = header_list::get(&pairs, "sec-websocket-protocol");
    if !websocket::protocol_offered(offered, chosen) {
        let detail =
            format!("the origin chose the subprotocol {chosen:?}; the client offered {offered:?}");
        let socket = worker::WebSocket::from(socket);
        let closed = socket
            .accept()
            .and_then(|()| socket.close(Some(1002), Some("subprotocol not offered")));
        if let Err(e) = closed {
            log::warn(
                "gateway: closing the origin's socket failed",
                serde_json::json!({"route": route.name, "request_id": call.request_id,
                    "detail": e.to_string()}),
            );
        }
        return Err(ApiError::new(
            502,
            "bad_gateway",
            "the origin's WebSocket handshake did not choose one of the subprotocols the client offered",
        )
        .with_internal(detail));
    }
    let listed = connection_tokens(header_list::get(&pairs, "connection"));
    pairs.retain(|(k, _)| forward_response_header(k, &listed) && k != "sec-websocket-accept");
    map_to_client(&mut pairs, &to);
    Ok(Response::builder()
        .with_status(101)
        .with_headers(header_list::build(pairs.iter().chain(&timing)))
        .with_websocket(socket.into())
        .empty())
}

/// After a write to `url` that the origin answered without error (`cache::invalidates`), the stored answers the
/// writer's GET of it would be served (the route serving GET there, with this request's site or none, identity and
/// credentials) are deleted before the write's answer goes out (RFC 9111 §4.4): the writer's next read is the
/// origin's. Only in this location's cache, and only those keys': the entries other sites or users keep for the URL
/// expire, or are purged by tag.
async fn invalidate(
    call: &Call,
    url: RequestUrl<'_>,
    identity: Option<&Verified>,
    headers: &[(String, String)],
) {
    let gateway = &call.isolate.config.gateway;
    let Matched::Route { route, .. } = gateway.routes.resolve("GET", url.path) else {
        return;
    };
    let Some(policy) = route
        .cache
        .as_ref()
        .and_then(|name| gateway.cache_policies.get(name))
    else {
        return;
    };
    let authorization = header_list::get(headers, "authorization");
    let site = header_list::get(headers, "origin");
    // The entry for the writer's site, and for none: a browser sends `Origin` with every write, but not with its
    // page's same-origin GETs nor its navigations (Fetch standard), which are served the entry keyed without a site.
    let key = |site| cache_key(&route.name, url, policy, identity, authorization, site);
    let Some(own) = key(site) else {
        return;
    };
    let siteless = site.and_then(|_| key(None));
    // A fill under way now was asked of the origin before the write: it is not stored, nor handed out, after it.
    let now = respond::now_ms();
    WRITES.with(|w| {
        let mut writes = w.borrow_mut();
        for key in std::iter::once(&own).chain(&siteless) {
            writes.wrote(KeyId::of(key), now);
        }
    });
    // Bounded, and side by side: a Cache API that does not answer must not hold the write's answer back.
    let (failed, siteless_failed) = futures_util::future::join(
        delete_stored(&own),
        futures_util::future::OptionFuture::from(siteless.as_deref().map(delete_stored)),
    )
    .await;
    for detail in failed.into_iter().chain(siteless_failed.flatten()) {
        log::warn(
            "gateway cache delete after a write failed",
            serde_json::json!({"route": route.name, "request_id": call.request_id, "detail": detail}),
        );
    }
}

/// Deletes the stored entry under `key`, waiting at most [`STORE_LIMIT_MS`]; why it failed, if it did.
async fn delete_stored(key: &str) -> Option<String> {
    match crate::entry::within_ms(Cache::default().delete(key, false), STORE_LIMIT_MS).await {
        Some(deleted) => deleted.err().map(|e| e.to_string()),
        None => Some(format!("no answer in {STORE_LIMIT_MS} ms")),
    }
}

/// The checks every gateway request meets first, proxied or a preflight: the WAF's header and declared body sizes,
/// its request-line rules and its rules on the headers origins read as input (cookies, `User-Agent`, `Referer`), then — after the WAF, whose rule names a traversal, and before anything that checks
/// per route — the path's ambiguity for the method it is routed by. The headers and request line are checked in
/// the global mode; the declared body size in `route`'s body mode (`waf_body`), as its counted size is: else a
/// client escapes a `block` route's size rule, where the WAF only logs, by sending `Content-Length`.
/// Returns the declared body length (none beside a `Transfer-Encoding`, which overrides it:
/// `body::declared_length`).
fn screen_request(
    call: &Call,
    route: &Route,
    method: &str,
    incoming: &[(String, String)],
    url: RequestUrl<'_>,
) -> ApiResult<Option<u64>> {
    let gateway = &call.isolate.config.gateway;
    let header_bytes: usize = incoming.iter().map(|(k, v)| k.len() + v.len()).sum();
    let content_length = crate::body::declared_length(
        header_list::get(incoming, "content-length"),
        header_list::get(incoming, "transfer-encoding"),
    )
    .and_then(|v| v.trim().parse::<u64>().ok());
    let global = gateway.waf.mode;
    waf_verdict(
        call,
        global,
        waf::inspect_sizes(&gateway.waf, header_bytes, None),
    )?;
    let body_waf = route.body_waf(&gateway.waf);
    waf_verdict(
        call,
        body_waf.mode,
        waf::inspect_sizes(&body_waf, 0, content_length),
    )?;
    waf_verdict(
        call,
        global,
        waf::inspect_url(&gateway.waf, url.path, url.query),
    )?;
    waf_verdict(call, global, waf::inspect_headers(&gateway.waf, incoming))?;
    if gateway.routes.ambiguous(method, url.path, gateway.waf.mode) {
        return Err(ambiguous_path());
    }
    Ok(content_length)
}

/// 400 for a path that meets a route with other checks when read as many origins read it (`RouteTable::ambiguous`).
fn ambiguous_path() -> ApiError {
    ApiError::bad_request(
        "ambiguous_path",
        "the path meets a route with other checks, or climbs above its route's upstream path, when read as many \
         origins read it (an escaped slash as a separator, `;` parameters dropped, dot segments resolved)",
    )
}

/// A rule's match answered in `mode` (the global one, or a route's for its body): logged, and a 403 in block mode.
fn waf_verdict(call: &Call, mode: WafMode, hit: Option<Hit>) -> ApiResult<()> {
    let Some(hit) = hit else {
        return Ok(());
    };
    log_waf_hit(&hit, mode, &call.request_id);
    if mode == WafMode::Block {
        return Err(blocked(&hit));
    }
    Ok(())
}

/// The body-size rule, for a chunked body counted past `max_body_bytes` on its way to the origin.
const SIZE_BODY: Hit = Hit {
    rule: "size-body",
    part: "body",
};

/// The WAF's log line for a rule that matched (in either mode).
fn log_waf_hit(hit: &Hit, mode: WafMode, request_id: &str) {
    log::write(
        Level::Info,
        "waf",
        serde_json::json!({"rule": hit.rule, "part": hit.part,
            "mode": if mode == WafMode::Block { "block" } else { "log" }, "request_id": request_id}),
    );
}

/// The 403 of a blocking rule, naming it in `X-WAF-Rule`.
fn blocked(hit: &Hit) -> ApiError {
    ApiError::forbidden(
        "waf_blocked",
        format!("the request was blocked by rule {}", hit.rule),
    )
    .with_header("x-waf-rule", hit.rule)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

// ---- authentication -------------------------------------------------------------------------------------------

async fn authenticate(
    call: &Call,
    route: &Route,
    token: &mut VerifiedOnce,
    incoming: &[(String, String)],
) -> ApiResult<Option<Verified>> {
    let authorization = header_list::get(incoming, "authorization");
    match route.auth {
        AuthPolicy::None => Ok(None),
        AuthPolicy::Jwt => verify_bearer(call, token, authorization).await.map(Some),
        AuthPolicy::Session => session_identity(call).await.map(Some),
        // A bearer token, when one is sent, decides; otherwise (no Authorization, or another scheme such as Basic
        // meant for the origin) the session cookie.
        AuthPolicy::JwtOrSession if jwt::bearer(authorization).is_ok() => {
            verify_bearer(call, token, authorization).await.map(Some)
        }
        // Bearer is the scheme this route also takes (RFC 9110 §11.6.1: a 401 names one).
        AuthPolicy::JwtOrSession => {
            session_identity(call)
                .await
                .map(Some)
                .map_err(|e| match e.status() {
                    401 => e.with_header("www-authenticate", "Bearer"),
                    _ => e,
                })
        }
    }
}

/// The signed-in user from the session cookie (the cached, non-strict check), as an identity; the 401 without one
/// clears a cookie that names no live session.
async fn session_identity(call: &Call) -> ApiResult<Verified> {
    let user = session::handler::current_user(call, false)
        .await?
        .required("this route needs a valid session; log in first")?;
    // The id is sent as X-User-ID under the rule a token's `sub` passes (its access token is refused by it): one
    // no header carries faithfully, or an empty one, is an operator's data error, not the caller's, and is not sent
    // (the login that made the session logged it too). The id is in the log line, never in the answer.
    if !jwt::header_value(&user.user_id) {
        return Err(ApiError::internal(format!(
            "users.id {:?} is empty or not printable ASCII without surrounding spaces: X-User-ID cannot carry it",
            user.user_id
        )));
    }
    // The email too, under a token's rule: one with control characters or surrounding spaces went out percent-encoded
    // while a token carrying it is refused. Not in the log line: the id names the account.
    if !jwt::email_value(&user.email) {
        return Err(ApiError::internal(format!(
            "users.email of user {:?} has control characters or surrounding spaces: X-User-Email cannot carry it",
            user.user_id
        )));
    }
    Ok(Verified {
        sub: user.user_id,
        permissions: user.permissions,
        email: Some(user.email),
    })
}

/// The caller's verified token from its `Authorization` header (401 with a description when absent or invalid).
async fn verify_bearer(
    call: &Call,
    token: &mut VerifiedOnce,
    authorization: Option<&str>,
) -> ApiResult<Verified> {
    let bearer =
        jwt::bearer(authorization).map_err(|missing| ApiError::bearer_required(missing.0))?;
    if !token.done() {
        let outcome = verify_token(call, bearer).await?;
        let _ = token.get_or_verify(|| outcome);
    }
    token
        .get_or_verify(|| Err(jwt::JwtError("token was not verified".into())))
        .map_err(|e| ApiError::unauthorized("invalid_token", e.0))
}

/// One verification of a bearer token: from the isolate's memory of verified tokens when it was seen with this key
/// set, else its signature is checked (by WebCrypto for RS256, ES256 and EdDSA keys) and, if it passes, remembered.
async fn verify_token(call: &Call, bearer: &str) -> ApiResult<Result<Verified, jwt::JwtError>> {
    let keys = jwks(call).await?;
    let config = &call.isolate.config;
    let policy = &config.jwt_policy;
    let now_secs = (call.started_ms / 1000) as i64;
    let capacity = config.gateway.jwt_cache_entries as usize;
    let recalled = TOKENS.with(|cell| {
        let mut slot = cell.borrow_mut();
        // A memory belongs to one key set: a changed document (a rotation) starts it afresh; a re-read finding the
        // document unchanged keeps the set, and with it the memory.
        if !slot.as_ref().is_some_and(|(k, _)| Rc::ptr_eq(k, &keys)) {
            *slot = Some((keys.clone(), VerifiedTokens::new(capacity)));
        }
        slot.as_ref()
            .map(|(_, tokens)| tokens.recall(bearer, policy, now_secs))
    });
    let remember_as = match recalled {
        Some(Recall::Known(verdict)) => return Ok(verdict),
        Some(Recall::Unknown(key)) => key,
        None => None,
    };
    let signed = check_signature(bearer, &keys, policy, &call.request_id).await;
    Ok(TOKENS.with(|cell| match cell.borrow_mut().as_mut() {
        // Still the memory of this key set (another request may have re-read the JWKS meanwhile).
        Some((k, tokens)) if Rc::ptr_eq(k, &keys) => {
            tokens.learn(remember_as, signed, policy, now_secs)
        }
        _ => signed.and_then(|s| jwt::check(&s, policy, now_secs)),
    }))
}

/// The signature check of a token: by the runtime's WebCrypto when its key is asymmetric (RS256, ES256, EdDSA:
/// native code, ~0.25 ms of CPU less per EdDSA check than in wasm), by jwt-compact in wasm for HS256 — and also when
/// WebCrypto cannot answer (a runtime without the algorithm), so a token is never refused for the runtime's sake.
async fn check_signature(
    token: &str,
    keys: &Jwks,
    policy: &JwtPolicy,
    request_id: &str,
) -> Result<jwt::Signed, jwt::JwtError> {
    let check = match jwt::screen(token, keys, policy)?.verifier() {
        jwt::Verifier::Runtime(check) => check,
        jwt::Verifier::Here(screened) => return screened.verify(),
    };
    if !check.well_formed() {
        // Not a signature this key could have made: refused before any arithmetic.
        return check.finish(false);
    }
    match webcrypto_verify(&check).await {
        Ok(valid) => check.finish(valid),
        Err(failure) => {
            let first = match failure {
                // Remembered per key: said once when the import failed, and not retried for that key.
                WebCryptoFailure::Import { first } => first,
                WebCryptoFailure::Verify => {
                    !WEBCRYPTO_VERIFY_FAILED.with(|said| said.replace(true))
                }
            };
            if first {
                log::warn(
                    "webcrypto could not verify; verifying in wasm",
                    serde_json::json!({"kid": check.kid(), "step": failure.step(),
                        "request_id": request_id}),
                );
            }
            check.verify_here()
        }
    }
}

/// Why WebCrypto gave no verdict.
#[derive(Debug, Clone, Copy)]
enum WebCryptoFailure {
    /// The key could not be imported (`first`: this request found out, rather than the memory of an earlier one).
    Import { first: bool },
    /// `verify` threw or rejected.
    Verify,
}

impl WebCryptoFailure {
    fn step(self) -> &'static str {
        match self {
            Self::Import { .. } => "importKey",
            Self::Verify => "verify",
        }
    }
}

thread_local! {
    /// Whether this isolate already said that a WebCrypto `verify` failed (said once; wasm verifies meanwhile).
    static WEBCRYPTO_VERIFY_FAILED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Public keys imported into WebCrypto, by their import algorithm and JWK (at most [`WEBCRYPTO_KEYS`]); `None`
    /// for a key WebCrypto refused to import, so it is not tried again on every request.
    static WEBCRYPTO_KEYS_IMPORTED: RefCell<HashMap<(&'static str, String), Option<web_sys::CryptoKey>>> =
        RefCell::new(HashMap::new());
}

/// Bound on imported keys kept: a JWKS holds a handful; a rotation or a hostile document cannot grow it further.
const WEBCRYPTO_KEYS: usize = 64;

/// `crypto.subtle.verify(…)` of the check's signature over its message, or why WebCrypto could not answer.
async fn webcrypto_verify(check: &jwt::RuntimeCheck<'_, '_>) -> Result<bool, WebCryptoFailure> {
    let (import_as, verify_as) = check.webcrypto_algorithms();
    let id = (import_as, check.jwk().to_owned());
    let known = WEBCRYPTO_KEYS_IMPORTED.with(|keys| keys.borrow().get(&id).cloned());
    let key = match known {
        Some(Some(key)) => key,
        Some(None) => return Err(WebCryptoFailure::Import { first: false }),
        None => {
            let imported = webcrypto_import(check.jwk(), import_as).await;
            WEBCRYPTO_KEYS_IMPORTED.with(|keys| {
                let mut keys = keys.borrow_mut();
                if keys.len() >= WEBCRYPTO_KEYS {
                    keys.clear();
                }
                keys.insert(id, imported.clone());
            });
            imported.ok_or(WebCryptoFailure::Import { first: true })?
        }
    };
    let verdict = async {
        let subtle = subtle_crypto()?;
        let algorithm: js_sys::Object = js_sys::JSON::parse(verify_as).ok()?.dyn_into().ok()?;
        let promise = subtle
            .verify_with_object_and_js_u8_array_and_js_u8_array(
                &algorithm,
                &key,
                &js_sys::Uint8Array::from(check.signature()),
                &js_sys::Uint8Array::from(check.message()),
            )
            .ok()?;
        JsFuture::from(promise).await.ok()?.as_bool()
    };
    verdict.await.ok_or(WebCryptoFailure::Verify)
}

/// `crypto.subtle.importKey("jwk", jwk, algorithm, false, ["verify"])`, or `None` if it throws or rejects.
async fn webcrypto_import(jwk: &str, algorithm: &str) -> Option<web_sys::CryptoKey> {
    let subtle = subtle_crypto()?;
    let usages = js_sys::Array::of1(&JsValue::from_str("verify"));
    let jwk: js_sys::Object = js_sys::JSON::parse(jwk).ok()?.dyn_into().ok()?;
    let algorithm: js_sys::Object = js_sys::JSON::parse(algorithm).ok()?.dyn_into().ok()?;
    let promise = subtle
        .import_key_with_object("jwk", &jwk, &algorithm, false, &usages)
        .ok()?;
    JsFuture::from(promise).await.ok()?.dyn_into().ok()
}

fn subtle_crypto() -> Option<web_sys::SubtleCrypto> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Some(global.crypto().ok()?.subtle())
}

thread_local! {
    /// The key set read from KV, and the read under way (`key_set`).
    static JWKS: RefCell<KeySetMemory<Jwks>> = RefCell::new(KeySetMemory::default());
    /// Tokens verified against the key set kept in `JWKS`.
    static TOKENS: RefCell<Option<(Rc<Jwks>, VerifiedTokens)>> = const { RefCell::new(None) };
    /// The JWKS read under way and its outcome, for the requests of a cold isolate that wait for it (`Lookup::Await`).
    static JWKS_READS: InFlight<ApiResult<Rc<Jwks>>> = RefCell::new(HashMap::new());
}

/// How many JWKS reads this isolate made (for the debug route the tests read).
pub fn jwks_reads() -> u64 {
    JWKS.with(|m| m.borrow().reads())
}

/// Ages this isolate's JWKS memory by `ms` (`KeySetMemory::age`): the debug route the tests see a TTL, a grace or a
/// hold lapse by, without waiting it out.
pub fn age_jwks(ms: u64) {
    JWKS.with(|m| m.borrow_mut().age(ms));
}

/// Ages this isolate's stale-while-revalidate refresh holds by `ms` (`cache::KeyHolds::age`): the debug route the
/// tests see a configured hold or an origin's `Retry-After` end by, without waiting it out.
pub fn age_refresh_holds(ms: u64) {
    REFRESH_HOLDS.with(|h| h.borrow_mut().age(ms));
    ORIGIN_DOWN.with(|h| h.borrow_mut().age(ms));
}

/// Ages the stored copies this isolate reads by `ms` (`cache::CopyAging`): the debug route the tests see a copy's
/// TTL pass by, without waiting it out. Copies filled after the call are not aged.
pub fn age_stored_copies(ms: u64) {
    let now = respond::now_ms();
    COPY_AGING.with(|a| a.borrow_mut().age(now, ms));
}

/// The key of [`JWKS_READS`]: one read at a time is waited for.
const JWKS_READ: &str = "jwks";

/// A JWKS read this request makes: its outcome goes to the requests waiting for it, and however it ends (kept,
/// failed, or its request gone mid-read) the key set's memory learns it is over, so nobody waits on it after.
struct JwksRead {
    read: u64,
    lead: Lead<ApiResult<Rc<Jwks>>>,
}

impl Drop for JwksRead {
    fn drop(&mut self) {
        JWKS.with(|m| m.borrow_mut().finished(self.read));
    }
}

/// The JWKS from KV, reused by this isolate for `GATEWAY_JWKS_TTL_SECONDS` and re-read by one request at a time;
/// in a cold isolate, the requests arriving while the first read is under way wait for it (`key_set`).
async fn jwks(call: &Call) -> ApiResult<Rc<Jwks>> {
    // The request's arrival time: the runtime's clock only moves across I/O, and none precedes the token check.
    let mut now = call.started_ms;
    let ttl_ms = call.isolate.config.gateway.jwks_ttl_secs * 1000;
    let read = loop {
        match JWKS.with(|m| m.borrow_mut().lookup(now, ttl_ms)) {
            Lookup::Use(keys) => return Ok(keys),
            Lookup::Read(read) => break read,
            // A read failed less than `GATEWAY_JWKS_HOLD_MS` ago, with no set to lend: that failure, not another read.
            Lookup::Held {
                detail,
                kind,
                left_ms,
            } => {
                let detail = format!("{detail} (read again after GATEWAY_JWKS_HOLD_MS)");
                return Err(match kind {
                    ReadFailure::Store => jwks_unavailable(detail, left_ms),
                    ReadFailure::Document => ApiError::internal(detail),
                });
            }
            Lookup::Await { read, wait_ms } => {
                match coalesce::in_progress(&JWKS_READS, JWKS_READ) {
                    Some(slot) => {
                        let waited = coalesce::wait(&JWKS_READS, JWKS_READ, &slot, Some(wait_ms));
                        if let Some(outcome) = waited.await {
                            return outcome;
                        }
                    }
                    // Nobody makes it (never the case: every read is claimed): not waited for.
                    None => JWKS.with(|m| m.borrow_mut().finished(read)),
                }
                now = respond::now_ms();
            }
        }
    };
    // Lapses as the key set's memory stops waiting for the read (`REFRESH_STALE_MS` from its start, and the slack
    // of every claim), as the cache's, images' and render's claims lapse: a read whose request was cancelled, its
    // future never dropped, holds no one past it.
    let read = JwksRead {
        read,
        lead: Lead::claim_at(
            &JWKS_READS,
            JWKS_READ,
            now,
            coalesce::hold_ms(REFRESH_STALE_MS),
        ),
    };
    let outcome = match read_and_keep(call, read.read, now).await {
        Err((error, kind)) => {
            // No request reads again for the hold (`KeySetMemory::failed`): a broken or missing document costs one
            // KV read per hold in an isolate, not one per request.
            let at = respond::now_ms();
            let detail = error
                .internal_detail()
                .unwrap_or(error.message())
                .to_owned();
            let hold_ms = call.isolate.config.gateway.jwks_hold_ms;
            let lent = JWKS.with(|m| {
                let mut memory = m.borrow_mut();
                memory.failed(read.read, at, hold_ms, kind, detail.clone());
                memory.grace(at, ttl_ms)
            });
            match lent {
                // A re-read that failed while the kept set is within its grace (`KeySetMemory::grace`): that set,
                // logged (once per hold: the requests the hold lends it to make no read and write no line).
                Some(keys) => {
                    log::warn(
                        "jwks read failed; the last key set read is used",
                        serde_json::json!({"detail": detail, "request_id": call.request_id}),
                    );
                    Ok(keys)
                }
                None if kind == ReadFailure::Store => Err(jwks_unavailable(detail, hold_ms)),
                None => Err(error),
            }
        }
        Ok(keys) => Ok(keys),
    };
    read.lead.publish(outcome.clone());
    outcome
}

/// 503 `jwks_unavailable`: KV erred or did not answer the JWKS read, and no key set may be lent. A store outage
/// passes, and clients retry a 503 (as D1's and a fail-closed limiter's are answered), where a 500 said the Worker
/// was broken; `Retry-After` is the hold left before the isolate reads again (whole seconds, at least 1). A missing
/// or broken document stays a 500: the deployment's fault, which no retry mends.
fn jwks_unavailable(detail: String, left_ms: u64) -> ApiError {
    ApiError::new(
        503,
        "jwks_unavailable",
        "the keys tokens are verified with cannot be read right now; try again shortly",
    )
    .with_header("retry-after", left_ms.div_ceil(1000).max(1).to_string())
    .with_internal(detail)
}

/// Read `read` of the JWKS (started at `now`), kept by the key set's memory; or why not, and whether that says
/// anything of the document (`ReadFailure`: KV erring does not).
async fn read_and_keep(
    call: &Call,
    read: u64,
    now: u64,
) -> Result<Rc<Jwks>, (ApiError, ReadFailure)> {
    // No document is the deployment's fault, as one that is no JWKS is: read as an empty set, it answered every
    // token 401 `unknown key id`, telling clients to throw away tokens that were fine. Not kept: the next request
    // reads again, so the document is used as soon as it is written.
    let text = read_jwks(call)
        .await
        .map_err(|e| (e, ReadFailure::Store))?
        .ok_or_else(|| {
            let missing = format!("JWKS: CONFIG_KV has no {:?} document", bindings::JWKS_KEY);
            (ApiError::internal(missing), ReadFailure::Document)
        })?;
    JWKS.with(|m| {
        m.borrow_mut().keep(read, now, text, |text| {
            let (keys, skipped) = Jwks::parse(text)?;
            if !skipped.is_empty() {
                log::warn(
                    "jwks keys skipped",
                    serde_json::json!({"detail": skipped.join("; "), "request_id": call.request_id}),
                );
            }
            Ok(keys)
        })
    })
    .map_err(|e: String| {
        (
            ApiError::internal(format!("JWKS: {e}")),
            ReadFailure::Document,
        )
    })
}

/// The JWKS document in `CONFIG_KV`, if there is one; an error when KV errs or does not answer within
/// [`REFRESH_STALE_MS`]. Unbounded, a read KV never answered held its request for good, and once the key set's
/// memory took it as stalled (that long after it began) every JWT request made a read of its own and waited on it:
/// a KV that stalls rather than errs held every JWT route, though the isolate had a set to lend. Given up, the read
/// fails as KV erring does — the last set read is lent within its grace, the failure held off for
/// `GATEWAY_JWKS_HOLD_MS`.
async fn read_jwks(call: &Call) -> ApiResult<Option<String>> {
    let kv = call
        .env
        .kv(bindings::CONFIG_KV)
        .or_internal("opening CONFIG_KV")?;
    crate::entry::within_ms(kv.get(bindings::JWKS_KEY).text(), REFRESH_STALE_MS)
        .await
        .ok_or_else(|| {
            ApiError::internal(format!(
                "KV did not answer the JWKS read in {REFRESH_STALE_MS} ms"
            ))
        })?
        .or_internal("reading the JWKS from KV")
}

// ---- request body -----------------------------------------------------------------------------------------------

enum OutBody {
    None,
    Bytes(Vec<u8>),
    /// A body streamed to the origin, its progress noted; unsized, with the controller that aborts the origin
    /// request when the client's body breaks off; and the reader of the client's body ([`Held`]).
    Stream(JsValue, Sending, Option<web_sys::AbortController>, Held),
    /// An unsized (chunked) body, counted on its way to the origin.
    Capped(CappedBody),
}

/// How far a streamed body has got on its way to the origin: when it last took a step of [`UPLOAD_STEP_BYTES`]
/// and, once it ended, when (ms since the epoch); and whether it is waiting for its client's next bytes. The origin
/// request's timeout counts from these rather than from the request's start: an upload takes as long as its client
/// sends it, so `timeout_ms` bounds a stall in it — which is the client's (408) when the body waits for it, the
/// origin's (504) when the origin stops reading — and then the wait for the answer once the body is sent. A 200 KiB
/// upload sent over 2.4 s to a route with a 1 s timeout was cut off at 1 s as if the origin were slow.
#[derive(Clone)]
struct Sending {
    last_ms: Rc<Cell<f64>>,
    ended_ms: Rc<Cell<Option<f64>>>,
    awaiting_client: Rc<Cell<bool>>,
}

/// The least an upload must move within a route's `timeout_ms` to count as progressing (about Apache
/// mod_reqtimeout's `MinRate`): a client trickling a byte at a time would otherwise hold an origin connection
/// open for as long as it liked.
const UPLOAD_STEP_BYTES: f64 = 16.0 * 1024.0;

/// Who let a streamed upload stall past its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    Client,
    Origin,
}

impl Sending {
    fn new() -> Self {
        Self {
            last_ms: Rc::new(Cell::new(js_sys::Date::now())),
            ended_ms: Rc::new(Cell::new(None)),
            awaiting_client: Rc::new(Cell::new(false)),
        }
    }

    /// `chunks` with their progress noted: a step each [`UPLOAD_STEP_BYTES`], the end, and whether a read is
    /// waiting for the client.
    fn note<S>(&self, chunks: S) -> impl futures_util::Stream<Item = Result<JsValue, JsValue>>
    where
        S: futures_util::Stream<Item = Result<JsValue, JsValue>>,
    {
        let (last, ended, awaiting) = (
            self.last_ms.clone(),
            self.ended_ms.clone(),
            self.awaiting_client.clone(),
        );
        let length = JsValue::from_str("byteLength");
        let mut moved = 0.0;
        let mut chunks = Box::pin(chunks);
        futures_util::stream::poll_fn(move |cx| {
            let polled = chunks.as_mut().poll_next(cx);
            awaiting.set(polled.is_pending());
            match &polled {
                std::task::Poll::Ready(Some(Ok(chunk))) => {
                    moved += js_sys::Reflect::get(chunk, &length)
                        .ok()
                        .and_then(|n| n.as_f64())
                        .unwrap_or(0.0);
                    if moved >= UPLOAD_STEP_BYTES {
                        moved = 0.0;
                        last.set(js_sys::Date::now());
                    }
                }
                std::task::Poll::Ready(None) => ended.set(Some(js_sys::Date::now())),
                _ => {}
            }
            polled
        })
    }

    /// Resolves once the body has taken no step for `timeout_ms`, or `timeout_ms` after it ended, with whose
    /// stall it was.
    async fn overdue(&self, timeout_ms: u64) -> Stall {
        let timeout = timeout_ms as f64;
        loop {
            let ended = self.ended_ms.get();
            let due = ended.unwrap_or_else(|| self.last_ms.get()) + timeout;
            let now = js_sys::Date::now();
            if now >= due {
                return if ended.is_none() && self.awaiting_client.get() {
                    Stall::Client
                } else {
                    Stall::Origin
                };
            }
            Delay::from(Duration::from_millis((due - now).ceil() as u64)).await;
        }
    }
}

/// A streamed body with its progress noted ([`Sending`]); with a known length it keeps it (the runtime sends a
/// `Content-Length`, not chunks, which origins such as object stores require). Without one, a client's body that
/// breaks off aborts the origin request, as [`capped`] does: the failing stream alone ends the chunked request
/// cleanly, and the origin took the bytes so far for the whole upload. (With one, the pipe into the
/// `FixedLengthStream` fails the request short of its length.)
fn streamed(stream: web_sys::ReadableStream, length: Option<u64>) -> ApiResult<OutBody> {
    let sending = Sending::new();
    let abort = match length {
        Some(_) => None,
        None => Some(
            web_sys::AbortController::new()
                .map_err(|e| ApiError::internal(format!("AbortController: {e:?}")))?,
        ),
    };
    let cut = abort.clone();
    let held = Held::new(&stream);
    let chunks = futures_util::StreamExt::inspect(
        held_chunks(held.clone()),
        move |chunk: &Result<JsValue, JsValue>| {
            if let (Err(_), Some(cut)) = (chunk, &cut) {
                cut.abort();
            }
        },
    );
    let noted: web_sys::ReadableStream =
        wasm_streams::ReadableStream::from_stream(sending.note(chunks))
            .into_raw()
            .unchecked_into();
    let Some(length) = length else {
        return Ok(OutBody::Stream(noted.into(), sending, abort, held));
    };
    let fixed = match u32::try_from(length) {
        Ok(n) => worker::worker_sys::FixedLengthStream::new(n),
        Err(_) => worker::worker_sys::FixedLengthStream::new_big_int(js_sys::BigInt::from(length)),
    }
    .map_err(|e| ApiError::internal(format!("FixedLengthStream: {e:?}")))?;
    let transform: &web_sys::TransformStream = fixed.as_ref();
    // The pipe's own outcome is the fetch's: a body that breaks off fails the origin request.
    let _ = noted.pipe_to(&transform.writable());
    Ok(OutBody::Stream(
        transform.readable().into(),
        sending,
        None,
        held,
    ))
}

/// A chunked body on its way to the origin, counted against the WAF's `max_body_bytes`.
struct CappedBody {
    stream: JsValue,
    /// The client's body as it arrives (the tee's forward branch): left unread past the cap, and drained before the
    /// 403 (`OutBody::drain_cut_off`).
    source: web_sys::ReadableStream,
    /// Set once the body passed the cap.
    over: Rc<Cell<bool>>,
    /// Aborts the origin request when the body passes the cap in block mode. Failing the stream alone is not
    /// enough: the runtime then ends the chunked request cleanly, and the origin would take the first
    /// `max_body_bytes` for the whole upload.
    abort: web_sys::AbortController,
    sending: Sending,
    /// The reader of `source` ([`Held`]).
    held: Held,
}

impl OutBody {
    fn js(&self) -> Option<JsValue> {
        match self {
            Self::None => None,
            Self::Bytes(b) => Some(js_sys::Uint8Array::from(b.as_slice()).into()),
            Self::Stream(s, ..) | Self::Capped(CappedBody { stream: s, .. }) => Some(s.clone()),
        }
    }

    fn is_stream(&self) -> bool {
        matches!(self, Self::Stream(..) | Self::Capped(_))
    }

    /// The progress of a streamed body, which its origin request's timeout counts from.
    fn sending(&self) -> Option<&Sending> {
        match self {
            Self::Stream(_, sending, ..) | Self::Capped(CappedBody { sending, .. }) => {
                Some(sending)
            }
            _ => None,
        }
    }

    fn over_cap(&self) -> bool {
        matches!(self, Self::Capped(c) if c.over.get())
    }

    /// The rest of an upload cut off at the cap, read and discarded (`entry::body::drain_stream`) so the 403 reaches
    /// the client and its connection stays open: unread, workerd closed it after the 403 (or reset it before).
    async fn drain_cut_off(&self) {
        if let Self::Capped(c) = self {
            crate::entry::body::drain_stream(c.source.clone()).await;
        }
    }

    /// The rest of a streamed body the origin request failed before sending, read and discarded through its reader
    /// (`entry::body::drain_reader`) so the gateway's 502 or 504 reaches the client and its connection stays open:
    /// left unread, workerd closed the connection after the answer, or reset it first and the client never saw it.
    async fn drain_unsent(&self) {
        let held = match self {
            Self::Stream(.., held) | Self::Capped(CappedBody { held, .. }) => held,
            _ => return,
        };
        let reader = held.0.borrow_mut().0.take();
        if let Some(reader) = reader {
            crate::entry::body::drain_reader(reader).await;
        }
    }

    /// The signal that cuts the origin request off, besides its timeout.
    fn abort_signal(&self) -> Option<web_sys::AbortSignal> {
        match self {
            Self::Capped(c) => Some(c.abort.signal()),
            Self::Stream(_, _, abort, _) => abort.as_ref().map(web_sys::AbortController::signal),
            _ => None,
        }
    }
}

/// `stream` counted as it goes to the origin, for a body without `Content-Length` (whose size `inspect_sizes`
/// could not check up front). Past `max` bytes the flag is set and the rule logged; in block mode the origin request
/// is also aborted and the stream fails, and the client gets the WAF's 403 `size-body` — or, when the origin already
/// answered (it did not wait for the whole body), sees that answer's body cut off. The chunks pass through as the
/// runtime's own objects (only their length is read), and a read error passes through as an error: a client that
/// breaks off its upload fails the origin request too, never ending it as if the body were complete. Cut off at the
/// cap, `stream` is let go unread (its lock released, not cancelled), so the rest can be drained before the 403.
fn capped(
    stream: web_sys::ReadableStream,
    waf_config: &WafConfig,
    request_id: &str,
) -> ApiResult<OutBody> {
    let abort = web_sys::AbortController::new()
        .map_err(|e| ApiError::internal(format!("AbortController: {e:?}")))?;
    let over = Rc::new(Cell::new(false));
    let (max, mode, request_id) = (
        waf_config.max_body_bytes,
        waf_config.mode,
        Rc::<str>::from(request_id),
    );
    let sending = Sending::new();
    let held = Held::new(&stream);
    let (flag, cut) = (over.clone(), abort.clone());
    // The body's chunks as `held_chunks` reads them, counted against `max_body_bytes`.
    let start = (Box::pin(held_chunks(held.clone())), held.clone(), 0u64);
    let chunks = futures_util::stream::unfold(Some(start), move |state| {
        let (flag, cut, request_id) = (flag.clone(), cut.clone(), request_id.clone());
        async move {
            let (mut body, reader, seen) = state?;
            let chunk = match futures_util::StreamExt::next(&mut body).await? {
                Ok(chunk) => chunk,
                // A failing stream alone would end the origin's chunked request as if complete (measured): abort it.
                Err(e) => {
                    cut.abort();
                    return Some((Err(e), None));
                }
            };
            let bytes = js_sys::Reflect::get(&chunk, &JsValue::from_str("byteLength"))
                .ok()
                .and_then(|n| n.as_f64())
                .unwrap_or(0.0);
            let seen = seen.saturating_add(bytes as u64);
            if seen > max {
                if !flag.replace(true) {
                    log_waf_hit(&SIZE_BODY, mode, &request_id);
                }
                if mode == WafMode::Block {
                    reader.0.borrow_mut().release();
                    cut.abort();
                    return Some((
                        Err(JsValue::from_str("the body is larger than max_body_bytes")),
                        None,
                    ));
                }
            }
            Some((Ok(chunk), Some((body, reader, seen))))
        }
    });
    Ok(OutBody::Capped(CappedBody {
        stream: wasm_streams::ReadableStream::from_stream(sending.note(chunks))
            .into_raw()
            .into(),
        source: stream,
        over,
        abort,
        sending,
        held,
    }))
}

/// A reader of a body on its way to the origin: dropped while it holds the body (the origin request ended before
/// the body did), it cancels it, as the body's own stream does; [`HeldReader::release`] lets the body go unread.
struct HeldReader(Option<web_sys::ReadableStreamDefaultReader>);

impl HeldReader {
    fn release(&mut self) {
        if let Some(reader) = self.0.take() {
            reader.release_lock();
        }
    }
}

impl Drop for HeldReader {
    fn drop(&mut self) {
        if let Some(reader) = self.0.take() {
            // A rejected cancel (the stream already failed) has nothing to tell.
            let ignore = Closure::once(|_: JsValue| {});
            let _ = reader.cancel().catch(&ignore);
            ignore.forget();
        }
    }
}

/// The reader of a client's body on its way to the origin, shared between the stream the origin request reads and
/// the [`OutBody`]: when the origin request ends before the body does, the runtime drops that stream, and the body
/// is cancelled with the last holder ([`HeldReader`]'s drop) — unless the gateway takes the reader first to read the
/// rest and discard it ([`OutBody::drain_unsent`]). A reader with a read pending cannot be released (workerd throws),
/// so the rest is read through this one.
#[derive(Clone)]
struct Held(Rc<RefCell<HeldReader>>);

impl Held {
    fn new(stream: &web_sys::ReadableStream) -> Self {
        Self(Rc::new(RefCell::new(HeldReader(Some(
            stream.get_reader().unchecked_into(),
        )))))
    }
}

/// The chunks of a [`Held`] body as they arrive; a read error passes through as an error, ending the stream.
fn held_chunks(held: Held) -> impl futures_util::Stream<Item = Result<JsValue, JsValue>> {
    futures_util::stream::unfold(Some(held), |state| async move {
        let held = state?;
        let read = held.0.borrow().0.as_ref()?.read();
        let result = match JsFuture::from(read).await {
            Ok(result) => result,
            Err(e) => return Some((Err(e), None)),
        };
        if js_sys::Reflect::get(&result, &JsValue::from_str("done")).is_ok_and(|d| d.is_truthy()) {
            return None;
        }
        let chunk = js_sys::Reflect::get(&result, &JsValue::from_str("value"))
            .unwrap_or(JsValue::UNDEFINED);
        Some((Ok(chunk), Some(held)))
    })
}

/// The body to forward. Up to the WAF's inspection cap it is read and checked; a longer (or unsized) body is teed:
/// one branch is read up to the cap for the WAF and then cancelled, the other streams to the origin.
/// `described` is the body's `Content-Type` and `Content-Encoding`: a body in a coding the WAF cannot read back is
/// refused before it is read (`waf::inspect_coding`: the rules cannot read what the origin will inflate); one in
/// `gzip` or `deflate` is read inflated (`waf::inspect_coded_body`), its coded prefix up to `inflate::read_bound`,
/// and forwarded as it came.
async fn take_body(
    call: &mut Call,
    waf_config: &WafConfig,
    method: &str,
    content_length: Option<u64>,
    described: (Option<&str>, Option<&str>),
    timeout_ms: u64,
) -> ApiResult<OutBody> {
    if matches!(method, "GET" | "HEAD") {
        return Ok(OutBody::None);
    }
    let Some(stream) = call.req.inner().body() else {
        return Ok(OutBody::None);
    };
    let awaits_continue = crate::body::awaits_continue(header(&call.req, "expect").as_deref());
    if waf_config.mode == WafMode::Off {
        // Unread here, the body would go to the origin at once, and a client awaiting `100 Continue` that sends
        // none was answered 408 once the origin request timed out, having been asked for a request never sent.
        let stream = if awaits_continue {
            crate::entry::body::after_first_bytes(stream, timeout_ms)
                .await
                .map_err(|e| prefix_error(e, timeout_ms, true))?
        } else {
            stream
        };
        return streamed(stream, content_length);
    }
    let (content_type, coding) = described;
    if content_length != Some(0) {
        waf_verdict(
            call,
            waf_config.mode,
            waf::inspect_coding(waf_config, coding),
        )?;
    }
    let cap = waf_config.inspect_body_bytes;
    let coding = match inflate::coding(coding) {
        inflate::Coded::Screened(coding) => Some(coding),
        _ => None,
    };
    // `whole`: the bytes are the whole body, not a prefix of it.
    let inspect = |bytes: &[u8], whole: bool| match coding {
        Some(coding) => waf::inspect_coded_body(waf_config, content_type, coding, bytes, whole),
        None => waf::inspect_body(waf_config, content_type, bytes),
    };
    if content_length.is_some_and(|n| n <= cap as u64) {
        let bytes = read_prefix(stream, usize::MAX, timeout_ms, awaits_continue).await?;
        waf_verdict(call, waf_config.mode, inspect(&bytes, true))?;
        return Ok(OutBody::Bytes(bytes));
    }
    let tee = js_sys::Reflect::get(&stream, &JsValue::from_str("tee"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| ApiError::internal("ReadableStream.tee is missing"))?;
    let branches: js_sys::Array = tee
        .call0(&stream)
        .map_err(|e| ApiError::internal(format!("tee: {e:?}")))?
        .unchecked_into();
    let forward = branches.get(1);
    // Read, the inspection branch is let go (cancelled): the forward branch keeps the whole body.
    // A coded body is read up to its read bound and a byte more, which tells a body that ends there from a longer one.
    let wanted = match coding {
        Some(_) => inflate::read_bound(cap),
        None => cap,
    };
    let mut prefix = read_prefix(
        branches.get(0).unchecked_into(),
        wanted + 1,
        timeout_ms,
        awaits_continue,
    )
    .await?;
    let whole = prefix.len() <= wanted;
    prefix.truncate(wanted);
    let verdict = waf_verdict(call, waf_config.mode, inspect(&prefix, whole));
    if let Err(blocked) = verdict {
        // The client may still be sending: read the rest (up to the drain ceiling) from the forward branch, which
        // holds the whole body, so the client gets the 403 rather than a reset connection.
        crate::entry::body::drain_stream(forward.unchecked_into()).await;
        return Err(blocked);
    }
    if content_length.is_none() {
        return capped(forward.unchecked_into(), waf_config, &call.request_id);
    }
    streamed(forward.unchecked_into(), content_length)
}

/// [`crate::entry::body::read_prefix`] for the WAF: each read waits at most `timeout_ms` for the client, and a body
/// that stops arriving (a client that declared more than it sends, or stalls) answers 408 instead of holding the
/// request until the client gives up — but 417 when not a byte came from a client awaiting `100 Continue`
/// (`awaits_continue`): workerd never sends one, so that client waits for it until it gives up; 417 says the
/// expectation cannot be met here (RFC 9110 §15.5.18), and a client such as curl sends the request again without
/// it, where a 408 had it send the same request, to wait again.
async fn read_prefix(
    stream: web_sys::ReadableStream,
    cap: usize,
    timeout_ms: u64,
    awaits_continue: bool,
) -> ApiResult<Vec<u8>> {
    crate::entry::body::read_prefix(stream, cap, timeout_ms)
        .await
        .map_err(|e| prefix_error(e, timeout_ms, awaits_continue))
}

/// The answer to a body that stopped arriving before the gateway had what it waited for ([`read_prefix`]).
fn prefix_error(
    error: crate::entry::body::PrefixError,
    timeout_ms: u64,
    awaits_continue: bool,
) -> ApiError {
    use crate::entry::body::PrefixError;
    match error {
        PrefixError::Stalled { read: 0 } if awaits_continue => crate::body::continue_refused(),
        PrefixError::Stalled { .. } => Failure::ClientStalled(timeout_ms).into_error(),
        PrefixError::Failed(detail) => {
            ApiError::bad_request("unreadable_body", "the body could not be read")
                .with_internal(detail)
        }
    }
}

// ---- origin requests --------------------------------------------------------------------------------------------

/// The client's address as the origin is told it ([`ClientAddress::named`]), read from the headers the gateway
/// already collected (`incoming`) — the reader [`Call::client_address`] uses, without asking the runtime's `Headers`
/// across the wasm boundary again on every proxied request.
fn named_client(incoming: &[(String, String)]) -> Option<IpAddr> {
    ClientAddress::read(
        header_list::get(incoming, "cf-connecting-ip"),
        header_list::get(incoming, "cf-connecting-ipv6"),
    )
    .map(ClientAddress::named)
}

/// The headers the origin receives; `client` is the requester's address ([`named_client`]).
fn origin_headers(
    call: &Call,
    route: &Route,
    incoming: &[(String, String)],
    client: Option<IpAddr>,
    url: RequestUrl<'_>,
    trace: &TraceContext,
    identity: Option<&Verified>,
) -> Vec<(String, String)> {
    let listed = connection_tokens(header_list::get(incoming, "connection"));
    let mut out: Vec<(String, String)> = incoming
        .iter()
        // `tracestate` is set below, from the one the request sent.
        .filter(|(k, _)| {
            forward_request_header(k, &listed) && !k.eq_ignore_ascii_case("tracestate")
        })
        .cloned()
        .collect();
    if let Some(at) = out
        .iter()
        .position(|(k, _)| k.eq_ignore_ascii_case("cookie"))
    {
        let config = &call.isolate.config.session;
        let (session, device) = (&config.cookie_name, &config.device_cookie_name);
        if out[at].1.contains(session.as_str()) || out[at].1.contains(device.as_str()) {
            match without_cookies(&out[at].1, &[session.as_str(), device.as_str()]) {
                Some(kept) => out[at].1 = kept,
                None => {
                    out.remove(at);
                }
            }
        }
    }
    // The list the request came with is appended to — unless its `Connection` made it hop-by-hop (RFC 9110 §7.6.1:
    // the field is removed as received, and the gateway's own, naming the address seen, added after).
    let came_with = header_list::get(incoming, "x-forwarded-for")
        .filter(|_| !listed.iter().any(|name| name == "x-forwarded-for"));
    if let Some(xff) = forwarded_for(came_with, client) {
        out.push(("x-forwarded-for".into(), xff));
    }
    // RFC 8586: the list the request came with and this gateway's own entry, so a route whose upstream leads back
    // here is refused after a few rounds (see `serve`) instead of going round without end.
    out.push((
        "cdn-loop".into(),
        cdn_loop_for_origin(header_list::get(incoming, "cdn-loop")),
    ));
    out.push(("x-forwarded-proto".into(), url.scheme.to_owned()));
    if !url.authority.is_empty() {
        out.push(("x-forwarded-host".into(), url.authority.to_owned()));
    }
    // The path the origin is mounted under at the edge, for links it builds (Spring, ASP.NET and Traefik read it).
    if let Some(prefix) = &route.strip_prefix {
        out.push(("x-forwarded-prefix".into(), prefix.clone()));
    }
    if let Some(left @ 1..) = max_forwards(&call.method, header_list::get(incoming, "max-forwards"))
    {
        out.retain(|(k, _)| !k.eq_ignore_ascii_case("max-forwards"));
        out.push(("max-forwards".into(), (left - 1).to_string()));
    }
    out.push(("x-request-id".into(), call.request_id.clone()));
    // `tracestate` belongs to the `traceparent` it came with: kept only when that trace is continued, and only a
    // valid list, cut to the size the spec asks to be passed on (`trace::origin_fields`) — and never one the client's
    // `Connection` lists, which was meant for the edge alone like any other field it names.
    let state = header_list::get(incoming, "tracestate")
        .filter(|_| forward_request_header("tracestate", &listed));
    for (name, value) in trace::origin_fields(trace, state) {
        out.push((name.into(), value));
    }
    if let Some(user) = identity {
        out.push(("x-user-id".into(), user.sub.clone()));
        out.push(("x-user-permissions".into(), user.permissions.join(",")));
        if let Some(email) = &user.email {
            out.push(("x-user-email".into(), email_header(email)));
        }
    }
    ranges_uncoded(&mut out);
    out
}

/// Why the origin gave no response.
#[derive(Debug, Clone)]
enum Failure {
    Unreachable(String),
    /// No answer within the timeout (ms) on the last of this many attempts.
    Timeout {
        ms: u64,
        attempts: u32,
    },
    /// The client's upload moved less than [`UPLOAD_STEP_BYTES`] in the route's timeout.
    ClientStalled(u64),
    /// Not fetched for this request: its key is passed to the origin ([`passing`]), and the request asks as its own.
    Passed,
}

impl Failure {
    fn into_error(self) -> ApiError {
        match self {
            Self::Unreachable(detail) => ApiError::bad_gateway(detail),
            Self::Timeout { ms, attempts } => ApiError::gateway_timeout_after(ms, attempts),
            Self::ClientStalled(ms) => ApiError::new(
                408,
                "request_timeout",
                format!(
                    "the request body stalled: less than {} KiB arrived in {ms} ms",
                    UPLOAD_STEP_BYTES as u64 / 1024
                ),
            ),
            Self::Passed => ApiError::internal("a passed key's answer was not asked for"),
        }
    }
}

/// How an origin request's timeout is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timing {
    /// The runtime's own timer (`AbortSignal.timeout`): no callback into wasm and no timer to clear on every
    /// request (measured with bench/profile.mjs). Its signal stays on the response, but a body piped to the client
    /// streams on past it. (A streamed request body's timeout is kept as `HeadersOnly`'s, counted from its
    /// progress.)
    Runtime,
    /// A timer raced against the answer's headers and dropped once they arrive, for a body read here (a cache
    /// fill): the runtime's signal would also cut that read off at the timeout, answering 502 for a body still
    /// streaming.
    HeadersOnly,
}

/// One request to the origin, up to `retries` more times on connection failure or timeout; each attempt is
/// aborted when its timeout passes before the answer's headers arrive (for a streamed body: with no step of the
/// body for that long, or that long after it was sent), and a retry's `traceparent` names a span of its own.
async fn send(
    url: &str,
    method: &str,
    headers: &[(String, String)],
    body: &OutBody,
    timeout_ms: u64,
    retries: u32,
    timing: Timing,
) -> Result<web_sys::Response, Failure> {
    let mut last = Failure::Unreachable("no attempt".into());
    // A streamed body's timeout counts from its progress ([`Sending`]), kept here like `HeadersOnly`'s.
    let sending = body.sending();
    for attempt in 0..=retries {
        let (timeout, controller) = match (timing, sending) {
            (Timing::Runtime, None) => (
                web_sys::AbortSignal::timeout_with_u32(
                    u32::try_from(timeout_ms).unwrap_or(u32::MAX),
                ),
                None,
            ),
            _ => {
                let controller = web_sys::AbortController::new()
                    .map_err(|e| Failure::Unreachable(format!("AbortController: {e:?}")))?;
                (controller.signal(), Some(controller))
            }
        };
        let signal = match body.abort_signal() {
            Some(cut) => web_sys::AbortSignal::any(&js_sys::Array::of2(&timeout, &cut)),
            None => timeout.clone(),
        };
        // `fetch(url, init)` straight through web-sys, as a JavaScript Worker would call it: workers-rs' `Fetch`
        // wants a `Request` object built first (2.6% of the CPU samples of a proxied request, bench/profile.mjs).
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        let attempt_headers = header_list::build(headers);
        // Each attempt is a request of its own, with a span of its own in the request's trace; the first sends the
        // headers as built, so a request that is not retried draws nothing more.
        if attempt > 0 {
            if let Some(retried) = header_list::get(headers, "traceparent")
                .and_then(|sent| trace::retry_traceparent(sent, respond::span_random()))
            {
                let _ = attempt_headers.set("traceparent", &retried);
            }
        }
        init.set_headers(attempt_headers.0.as_ref());
        init.set_redirect(web_sys::RequestRedirect::Manual);
        if let Some(body) = body.js() {
            init.set_body(&body);
        }
        init.set_signal(Some(&signal));
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let fetch = JsFuture::from(global.fetch_with_str_and_init(url, &init));
        let mut stall = Stall::Origin;
        let answer = match &controller {
            None => fetch.await,
            Some(controller) => {
                let timer = async {
                    match sending {
                        Some(sending) => sending.overdue(timeout_ms).await,
                        None => {
                            Delay::from(Duration::from_millis(timeout_ms)).await;
                            Stall::Origin
                        }
                    }
                };
                futures_util::pin_mut!(fetch, timer);
                match futures_util::future::select(fetch, timer).await {
                    futures_util::future::Either::Left((answer, _)) => answer,
                    futures_util::future::Either::Right((whose, fetch)) => {
                        stall = whose;
                        controller.abort();
                        fetch.await
                    }
                }
            }
        }
        .and_then(|r| r.dyn_into::<web_sys::Response>());
        match answer {
            // A status no response can carry (the runtime refuses to build one outside 200..=599): a bad answer,
            // not one to pass on or retry.
            // (A 101 comes with the socket of a WebSocket handshake the origin accepted, `open_websocket`.)
            Ok(response)
                if !(200..=599).contains(&response.status()) && response.websocket().is_none() =>
            {
                if let Some(body) = response.body() {
                    let _ = body.cancel();
                }
                return Err(Failure::Unreachable(format!(
                    "the origin answered status {}",
                    response.status()
                )));
            }
            Ok(response) => return Ok(response),
            Err(_) if timeout.aborted() && stall == Stall::Client => {
                return Err(Failure::ClientStalled(timeout_ms))
            }
            Err(_) if timeout.aborted() => {
                last = Failure::Timeout {
                    ms: timeout_ms,
                    attempts: attempt + 1,
                }
            }
            Err(e) => last = Failure::Unreachable(worker::Error::from(e).to_string()),
        }
    }
    Err(last)
}

/// The origin's response for the client: status and body (streamed) kept, hop-by-hop headers dropped, and
/// `extra` lines appended (the origin leg's `Server-Timing`). Read straight from the runtime's response: wrapping it
/// in a `worker::Response` first would also read its `webSocket` and `cf`, which a proxied answer never has.
fn pass_through(
    response: web_sys::Response,
    extra: &[(String, String)],
    to: &ToClient<'_>,
    head: bool,
    may_code: bool,
) -> Response {
    let mut pairs = header_list::read(&worker::Headers(response.headers()));
    // The names the origin's `Connection` header lists are hop-by-hop for this response only.
    let listed = connection_tokens(header_list::get(&pairs, "connection"));
    pairs.retain(|(k, _)| forward_response_header(k, &listed));
    // The origin's HEAD says the length of its bytes, which the GET's body, coded or decoded by the runtime, would
    // not have; a 204 or 304 says none at all (`length_withheld`).
    if head && !head_keeps_origin_length(header_list::get(&pairs, "content-encoding"), may_code)
        || length_withheld(response.status())
    {
        pairs.retain(|(k, _)| k != "content-length");
    }
    map_to_client(&mut pairs, to);
    let body = match response.body() {
        Some(stream) if !null_body(response.status()) => ResponseBody::Stream(stream),
        _ => ResponseBody::Empty,
    };
    // A body the origin streams (no Content-Length: chunked, SSE, NDJSON) must reach the client chunk by chunk;
    // the runtime's automatic compression would buffer it, so such a body goes out uncompressed. Bodies of known
    // length are still compressed by the runtime as usual; an answer without a body says nothing of its coding.
    if matches!(body, ResponseBody::Stream(_)) && flushed_uncompressed(&pairs) {
        pairs.push(("content-encoding".into(), "identity".into()));
    }
    Response::builder()
        .with_status(response.status())
        .with_headers(header_list::build(pairs.iter().chain(extra)))
        .body(body)
}

/// Whether a streamed answer with these headers goes out uncompressed (`content-encoding: identity`), each chunk
/// flushed as it arrives: its length is unknown (chunked, SSE, NDJSON) and it names no coding — the runtime's
/// automatic compression would buffer it.
fn flushed_uncompressed(headers: &[(String, String)]) -> bool {
    header_list::get(headers, "content-length").is_none()
        && header_list::get(headers, "content-encoding").is_none()
}

/// A redirect's `Location` (and a `Refresh`'s URL), an answer's `Content-Location` and the `Path` of the cookies it
/// sets, on the upstream,
/// mapped back under the route's prefix ([`LocationMap::client_location`], [`LocationMap::client_set_cookie`]), and a
/// cookie's `Domain` naming the upstream and not `client_authority`'s host removed. The host is passed, not kept in
/// the route's map: a map made per request would copy its strings on every proxied request.
/// `Content-Location` names the representation's own URL (RFC 9110 §8.7; a 201's or a PUT's answer, a negotiated
/// variant) and is mapped as Apache's `ProxyPassReverse` maps it: left as the origin wrote it, a client following or
/// caching by it reached a path the gateway does not route (`/items/9` for `/gw/items/9`), or the upstream's own
/// internal address.
fn map_to_client(pairs: &mut Vec<(String, String)>, to: &ToClient<'_>) {
    // The edge's own session and device cookies are not the origin's: one it set would log the user out, or into a
    // session of its choosing (it never sees them: `origin_headers` drops them from the requests it gets). Nor may
    // it clear them with every other cookie of the site (`Clear-Site-Data: "cookies"`).
    pairs.retain_mut(|(name, value)| match name.as_str() {
        "set-cookie" => !sets_cookie_named(value, &to.own_cookies),
        "clear-site-data" => match clear_site_data_for_client(value) {
            Some(kept) => {
                *value = kept;
                true
            }
            None => false,
        },
        _ => true,
    });
    for (name, value) in pairs.iter_mut() {
        let mapped = match name.as_str() {
            "location" | "content-location" => to.location.client_location(value, to.asked),
            "refresh" => to.location.client_refresh(value, to.asked),
            "set-cookie" => to.location.client_set_cookie(value, to.authority),
            _ => None,
        };
        if let Some(mapped) = mapped {
            *value = mapped;
        }
    }
}

/// How an origin's answer is told to its client ([`map_to_client`]).
struct ToClient<'a> {
    location: &'a LocationMap,
    /// The authority the client asked (`host[:port]`).
    authority: &'a str,
    /// The origin URL asked, which a relative `Location` is read against.
    asked: &'a str,
    /// The session cookie's and the device cookie's names.
    own_cookies: [&'a str; 2],
}

/// The edge's own cookies' names, which no origin answer may set ([`map_to_client`]).
fn own_cookies(isolate: &Isolate) -> [&str; 2] {
    let session = &isolate.config.session;
    [&session.cookie_name, &session.device_cookie_name]
}

// ---- edge cache -------------------------------------------------------------------------------------------------

/// What the client asked of a cached route beyond the representation: no body (HEAD), or none unless changed
/// (its validators, answered 304 when they match the stored copy's).
struct Asked {
    head: bool,
    /// The runtime may code the answer (`headers::runtime_may_code`): a HEAD is then told no length.
    may_code: bool,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    /// The request said `Cache-Control: only-if-cached` (RFC 9111 §5.2.1.7): answered from a stored copy it may be
    /// served, or 504 without asking the origin.
    only_if_cached: bool,
}

/// 504 for an `only-if-cached` request that no stored copy may answer (RFC 9111 §5.2.1.7).
fn not_cached() -> ApiError {
    ApiError::new(
        504,
        "not_cached",
        "the request said only-if-cached, and no stored copy may answer it",
    )
}

/// The request as it would go to the origin uncached: what a requester whose shared fill got an answer made for a
/// visitor without what it sent is answered by (`cache::FillAnswer`).
struct OwnRequest<'a> {
    method: &'a str,
    headers: &'a [(String, String)],
}

impl OwnRequest<'_> {
    /// It sent something a shared fill leaves out (`headers::tailors_answer`): cookies, credentials, an API key.
    /// Asked only of an answer that is not for anyone.
    fn tailored(&self) -> bool {
        self.headers.iter().any(|(name, _)| tailors_answer(name))
    }
}

/// How a cached route's answer came to this request: what its `x-cache` says, and whether the origin's
/// per-exchange headers (`headers::per_exchange`: its ids, trace and timing echoed back) are this request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// The origin's answer to this request's own fill (`MISS`).
    Led,
    /// The answer to a fill another request led, still under way when this one came (`MISS`).
    Joined,
    /// A stored copy, or a fill complete when this request came (`HIT`).
    Hit,
    /// A stored copy past its TTL (`STALE`).
    Stale,
}

impl Served {
    fn label(self) -> &'static str {
        match self {
            Self::Led | Self::Joined => "MISS",
            Self::Hit => "HIT",
            Self::Stale => "STALE",
        }
    }
}

/// Everything needed to fetch and store one cacheable response, owned so it can outlive the request
/// (background refresh, coalesced waiters).
#[derive(Clone)]
struct Spec {
    url: String,
    headers: Vec<(String, String)>,
    /// How a redirect's `Location` maps back to the client's paths: the route's own, shared.
    location: Rc<LocationMap>,
    /// The authority the client asked (`host[:port]`), which a cookie's `Domain` is judged against
    /// ([`LocationMap::client_set_cookie`]).
    client_authority: String,
    /// The isolate's settings, for the edge's own cookie names ([`own_cookies`]).
    isolate: Rc<Isolate>,
    /// The requester's address ([`ClientAddress::named`]; `None`: missing or malformed), the last entry of the
    /// `X-Forwarded-For` its fill sends.
    client: Option<IpAddr>,
    timeout_ms: u64,
    retries: u32,
    route: String,
    key: String,
    /// `GATEWAY_CACHE_MAX_BODY_BYTES`: larger answers are streamed to their requester, not buffered or stored.
    max_body_bytes: u64,
    /// `GATEWAY_CACHE_FILL_BODY_MS`: slower answers likewise.
    fill_body_ms: u64,
    /// The request that asked for the fill, named in the lines its storing logs.
    request_id: String,
    /// Whether what this request's fill fetches may be stored: not when the request says `Cache-Control: no-store`
    /// (RFC 9111 §5.2.1.5; a stored copy still answers it). Such a request joins a fill another leads but leads
    /// none, and starts no stale-while-revalidate refresh.
    store: bool,
}

impl Spec {
    fn to_client(&self) -> ToClient<'_> {
        ToClient {
            location: &self.location,
            authority: &self.client_authority,
            asked: &self.url,
            own_cookies: own_cookies(&self.isolate),
        }
    }
}

/// An origin response of one fill, handed to the fill's waiters when it is `shareable` (stored, or a 5xx).
struct Fetched {
    status: u16,
    /// Without the headers the edge cache sets itself when storable; as the origin sent them otherwise.
    headers: Vec<(String, String)>,
    body: FetchedBody,
    tags: Vec<String>,
    /// Meant for any requester of the key (`cache::storable`): stored, and handed to the coalesced waiters. Any other
    /// answer goes out with the origin's own caching headers, to the request that fetched it alone unless it is an
    /// origin error (`shareable`).
    storable: bool,
    /// What it is to a requester that sent more than a shared fill carried (`cache::FillAnswer`; always `Anyone`
    /// for a per-user policy, whose fills carry the request).
    fill_answer: FillAnswer,
    /// The client the fill named to the origin (the last entry of its `X-Forwarded-For`): a 429 reaches only
    /// waiters of the same one (`cache::fill_answer_reaches`). An address, not the header's text: nothing to
    /// allocate on every fill for the 429 that alone reads it.
    client: Option<IpAddr>,
    /// When its origin request was made: what a stored copy is dated from (and a HIT from the fill its `Age`).
    requested_at: u64,
    /// How long the origin took to send the answer's headers.
    origin_ms: u64,
    /// Its body, meant for anyone and within the cap, came slower than the fill's budget (`Prefix::Late`): not held
    /// this time, though the next fill may hold it.
    slow: bool,
}

/// A fetched answer's body.
enum FetchedBody {
    /// Read whole (at most `GATEWAY_CACHE_MAX_BODY_BYTES`): may be stored and shared. Held as one runtime `Blob`,
    /// which every response made from it (the fetching request's, each waiter's, the Cache API write) reads without
    /// a copy of its own — copies per waiter in wasm memory would grow it for good (it never shrinks), and twenty
    /// waiters of a 4 MiB answer would hold 80 MiB of the isolate's 128.
    Held(web_sys::Blob),
    /// Larger: streamed on to the one request that fetched it (taken once), never stored or shared — holding it
    /// would take the isolate's memory.
    Streamed(RefCell<Option<web_sys::ReadableStream>>),
}

impl FetchedBody {
    /// `bytes` held by the runtime (one copy out of wasm memory, freed with the last response reading it).
    fn held(bytes: &[u8]) -> Result<Self, Failure> {
        let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
        web_sys::Blob::new_with_u8_array_sequence(&parts)
            .map(Self::Held)
            // Only when the runtime is out of memory: answered like an origin that could not be read.
            .map_err(|e| {
                Failure::Unreachable(format!("holding the origin body (out of memory?): {e:?}"))
            })
    }

    /// Cancels a streamed body nobody will take (a HEAD request, a background refresh, a stale-if-error answer
    /// not served), which stops the origin read instead of leaving it to the garbage collector. Called by the
    /// request that fetched it: a streamed answer is never shared, and I/O belongs to the request that made it.
    fn discard(&self) {
        if let Self::Streamed(stream) = self {
            if let Some(stream) = stream.borrow_mut().take() {
                let ignore = Closure::once(|_: JsValue| {});
                let _ = stream.cancel().catch(&ignore);
                ignore.forget();
            }
        }
    }

    /// The body for one response: the held bytes, or the origin's stream (the first time it is asked for).
    fn for_response(&self) -> ResponseBody {
        match self {
            // A stream of the Blob (which reports its length); an empty one is no body (a 204 may not have one).
            Self::Held(blob) if blob.size() > 0.0 => ResponseBody::Stream(blob.stream()),
            Self::Held(_) => ResponseBody::Empty,
            Self::Streamed(stream) => stream
                .borrow_mut()
                .take()
                .map_or(ResponseBody::Empty, ResponseBody::Stream),
        }
    }
}

/// The outcome of one origin fetch, filled in by the request that makes it.
type Outcome = Result<Rc<Fetched>, Failure>;

thread_local! {
    /// Origin fetches in progress in this isolate, by the digest of their cache key (`cache::KeyId`):
    /// concurrent misses wait for the same one (`entry::coalesce`).
    static IN_FLIGHT: InFlight<Outcome> = RefCell::new(HashMap::new());
    /// Purge times of cache tags as this isolate last saw them: tag → (purged at, read at).
    static PURGES: RefCell<super::cache::PurgeTimes> = RefCell::new(HashMap::new());
    /// Purge-mark reads under way, by tag, that concurrent hits needing the mark wait for (`shared_purge_read`).
    static PURGE_READS: InFlight<Result<Option<u64>, String>> = RefCell::new(HashMap::new());
    /// Keys of a shared policy whose last fill got an answer made for a visitor without the requester's cookies
    /// and credentials (`cache::KeyHolds`).
    static PASSES: RefCell<KeyHolds> = RefCell::new(KeyHolds::default());
    /// Keys this isolate saw a write to, and when (`cache::Writes`, held by digest).
    static WRITES: RefCell<Writes> = RefCell::new(Writes::default());
    /// Keys whose stale-while-revalidate refresh failed lately (`cache::KeyHolds`).
    static REFRESH_HOLDS: RefCell<KeyHolds> = RefCell::new(KeyHolds::default());
    /// Keys whose last fill or refresh the origin failed with an error stale-if-error covers (a 5xx, no answer; not
    /// a 429), for as long as a refresh hold: a copy in its stale-if-error window is served at once meanwhile.
    static ORIGIN_DOWN: RefCell<KeyHolds> = RefCell::new(KeyHolds::default());
    /// Stale-while-revalidate refreshes running now (for the debug route the tests read).
    static REFRESHING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How far the debug route aged this isolate's stored copies (`cache::CopyAging`; none without DEBUG_ROUTES).
    static COPY_AGING: RefCell<CopyAging> = RefCell::new(CopyAging::default());
}

/// Ends a failed refresh's hold on the key once a fill of it gets the origin's answer (not a 5xx, a 429, a timeout or
/// no connection: `cache::lifts_refresh_hold`): the hold is for an origin that is down or rate-limiting, and one that
/// answers again must not leave the next copy's stale-while-revalidate window without a refresh for the rest of its
/// hold (up to 5 minutes).
fn origin_answered(id: &KeyId, outcome: &Outcome) {
    if lifts_refresh_hold(answered_status(outcome)) {
        REFRESH_HOLDS.with(|h| h.borrow_mut().lift(id));
        ORIGIN_DOWN.with(|h| h.borrow_mut().lift(id));
    }
}

/// How long a refresh hold `outcome` sets at `at` (`cache::refresh_hold_ms`, `hold_ms` configured), if any.
fn hold_after(outcome: &Outcome, at: u64, hold_ms: u64) -> Option<u64> {
    let retry_after = outcome.as_ref().ok().and_then(|f| {
        f.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .map(|(_, v)| v.as_str())
    });
    refresh_hold_ms(answered_status(outcome), retry_after, at, hold_ms)
}

/// Holds the key in [`ORIGIN_DOWN`] for `held_ms` (what [`hold_after`] gave `outcome`) when `outcome` is an error
/// stale-if-error covers (a 429 is none).
fn origin_down(id: KeyId, outcome: &Outcome, at: u64, held_ms: Option<u64>) {
    if let Some(held_ms) = held_ms.filter(|_| is_origin_error(outcome)) {
        ORIGIN_DOWN.with(|h| h.borrow_mut().hold(id, at, held_ms));
    }
}

/// The status of the origin's answer to a fill, `None` when it gave none (a timeout, no connection). A passed key's
/// fill asked nothing: read as the answer it was passed for (one made for a visitor: not an error).
fn answered_status(outcome: &Outcome) -> Option<u16> {
    match outcome {
        Ok(f) => Some(f.status),
        Err(Failure::Passed) => Some(200),
        Err(_) => None,
    }
}

/// How many stale-while-revalidate refreshes run in this isolate now (for the debug route: a test waits for a
/// request's refresh to end before it counts the origin's requests).
pub fn refreshes_running() -> usize {
    REFRESHING.with(std::cell::Cell::get)
}

/// Counts a refresh from when its request starts it (before its answer goes out) until it ends or is dropped.
struct Refreshing;

impl Refreshing {
    fn start() -> Self {
        REFRESHING.with(|r| r.set(r.get() + 1));
        Self
    }
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        REFRESHING.with(|r| r.set(r.get().saturating_sub(1)));
    }
}

/// Whether a write to the key reached this isolate at or after `since`.
fn written_since(id: &KeyId, since: u64) -> bool {
    WRITES.with(|w| w.borrow().written_since(id, since))
}

/// Whether requests for the key go to the origin as their own ([`PASSES`]).
fn passing(id: &KeyId, now: u64) -> bool {
    PASSES.with(|p| p.borrow().held(id, now))
}

/// How long a fill's Cache API write may keep its key claimed.
const STORE_LIMIT_MS: u64 = 5_000;

/// How long a fill's Cache API write is followed after [`STORE_LIMIT_MS`] (its timer starts then): 25 s in all,
/// inside `waitUntil`'s 30 s after the answer (Cloudflare's Workers limits), past which the runtime neither settles
/// the put nor fires the timer, and the waiting future would hold the fill's answer in the isolate for good.
const PUT_FOLLOW_MS: u64 = 20_000;

/// Whether a waiter takes the lead's answer: one meant for any requester (stored), or an origin error or a 429
/// (`cache::origin_pushback`, held whole, no `Set-Cookie`) — the fill carried no requester's credentials on a shared
/// policy, and on a per-user one the key is the user's, so the error is every waiter's too; sharing it keeps an
/// outage, or an origin saying to slow down, at one origin request per key, each waiter then serving its stale copy
/// (stale-if-error, for a 5xx) or the answer.
fn shareable(f: &Fetched) -> bool {
    f.storable
        || origin_pushback(f.status)
            && matches!(f.body, FetchedBody::Held(_))
            && !acts_on_its_visitor(&f.headers)
}

/// Whether this isolate knows of a purge of one of a fetched answer's tags made since its origin request (the
/// marks it wrote or read, `PURGES`; no KV read: a stampede of waiters must not each read every tag).
fn purged_here(f: &Fetched) -> bool {
    PURGES.with(|p| {
        let purges = p.borrow();
        purged_since(&f.tags, f.requested_at, |tag| {
            purges.get(tag).and_then(|(at, _)| *at)
        })
    })
}

/// Whether `f` says the key's stored copy is gone without standing in its place: the origin's answer for anyone
/// (not an error or a 429, which stale-if-error and the refresh holds are for, nor an answer made for one visitor,
/// which passes the key) that is not stored — one the policy keeps for no time (`negative_ttl` 0, a 404 or a
/// redirect), one too large to hold, or a status no copy is kept of (a 403, a 302). Stored, it would replace
/// the copy; not stored, the copy stayed, and a stale window served the old answer on — for the whole window, each
/// request's refresh asking the origin again for an answer it threw away (RFC 9111 §4.3.3: a full answer to a
/// revalidation is what the request gets; the stored one no longer suits). A body merely slower than the fill's
/// budget leaves the copy: it says the origin is slow, not that the copy is wrong, and without it every request
/// would wait on that slow origin until a fill held its answer.
fn takes_down(f: &Fetched, policy: &CachePolicy) -> bool {
    let leaves = origin_pushback(f.status)
        || f.slow
        || f.fill_answer == FillAnswer::Personal
        || f.storable && policy.stores(f.status);
    !leaves
}

/// Deletes the stored copy of `spec.key` an answer [`takes_down`] (logged when that fails).
async fn take_down(spec: &Spec) {
    if let Some(detail) = delete_stored(&spec.key).await {
        log::warn(
            "gateway cache delete after an unstored answer failed",
            serde_json::json!({"route": spec.route, "detail": detail, "request_id": spec.request_id}),
        );
    }
}

/// How long one fill may take: every attempt's wait for the origin's headers, then its body's time to arrive whole.
fn fill_budget_ms(spec: &Spec) -> u64 {
    spec.timeout_ms
        .saturating_mul(u64::from(spec.retries) + 1)
        .saturating_add(spec.fill_body_ms)
}

/// The one origin fetch for `spec.key`: waits for the one in progress in this isolate, or makes it. The fetch
/// hands its answer to the waiters first, then stores it if cacheable (2xx/301/404/410, no `Set-Cookie`, not
/// `no-store`) with its jittered TTL before the key is released. A waiter whose lead vanished looks again (another
/// waiter may have taken over: one takes over, the others wait for it); one that overran every attempt's timeout,
/// or was handed an answer meant for the lead alone (`shareable`), fetches itself — but for a background refresh
/// (no `ctx`), which takes that answer as it is. With the outcome, its `x-cache`
/// state: `HIT` for a stored answer that was complete when this request came (its Cache API write still under
/// way), `MISS` otherwise — this request's own fill, or one it joined — and the fill whose answer it is. A fill found
/// superseded is left for the one asked again in its place ([`coalesce::Work::successor`]): the first waiter to leave
/// it leads that one (or finds another request leading the key), and a later one follows it there while it is in
/// progress or done and kept (until the key's next claim or its claim's deadline); one that went away unanswered
/// gives way to the next. Fills of the two kinds are never linked: a `no-store` request leaving an ordinary fill,
/// with no ordinary fill asked again, leads a `no-store` one that later `no-store` leavers join only while it is in
/// progress. `left_fill`: the fill an earlier ask took and found superseded — no fill asked at or before it is taken
/// again.
async fn coalesced_fetch(
    ctx: Option<&worker::Context>,
    spec: &Spec,
    policy: &CachePolicy,
    left_fill: Option<&LeftFill>,
) -> (Outcome, Served, Option<FillRef>) {
    // Every attempt's wait for headers, then the body's time to arrive whole, and a second of slack.
    // A lead taken over by another waiter gets the budget afresh, within twice it in all.
    let budget_ms = coalesce::hold_ms(fill_budget_ms(spec));
    let first = respond::now_ms();
    let mut since = (first, None::<FillSlot>);
    // The key's digest, taken once: the isolate's maps (passes, writes, fills in progress) hold keys by it.
    let id = KeyId::of(&spec.key);
    if ctx.is_some() && passing(&id, first) {
        return (Err(Failure::Passed), Served::Led, None);
    }
    let claimed = id.memory_key();
    // The fills of requests saying `no-store` (stored nowhere) are claimed apart: only other `no-store` requests join
    // them, after looking for an ordinary fill to take.
    let unstored = (!spec.store).then(|| format!("{claimed}:no-store"));
    // The last write to the key made before this request came: a fill asked before it is not this request's answer.
    // (Writes made since are concurrent with this request; waiting out fills for those too queued every waiter
    // behind one fill after another, each serving only its lead, while writes kept coming to a hot key.)
    let written_before = WRITES.with(|w| w.borrow().last(&id));
    // The last fill of each kind (ordinary, `no-store`) found superseded for this request (a purge or a write made
    // since its origin request): not waited for again, and the fill this request leads, if it leads one of that
    // kind, takes over from it. Fills of the two kinds are claimed under two keys and never linked to each other.
    let (mut left_ordinary, mut left_unstored) = match left_fill {
        Some(l) if l.unstored => (None, Some(l.slot.clone())),
        Some(l) => (Some(l.slot.clone()), None),
        None => (None, None),
    };
    for key in std::iter::once(claimed.as_str()).chain(unstored.as_deref()) {
        // Complete, an ordinary fill's answer is being stored (a `HIT`); a `no-store` one's never is.
        let stored = key == claimed;
        let left_slot = if stored {
            &mut left_ordinary
        } else {
            &mut left_unstored
        };
        let mut superseded = left_slot.take();
        let mut next = next_fill(key, superseded.as_ref());
        while let Some(slot) = next.take() {
            let now = respond::now_ms();
            if !since.1.as_ref().is_some_and(|s| Rc::ptr_eq(s, &slot)) {
                since = (now, Some(slot.clone()));
            }
            let left = budget_ms
                .saturating_sub(now.saturating_sub(since.0))
                .min((2 * budget_ms).saturating_sub(now.saturating_sub(first)));
            if left == 0 {
                break;
            }
            // A fill complete when first looked at, before this request left any (of either kind): a `HIT`.
            let complete = left_fill.is_none() && superseded.is_none() && slot.is_done();
            match coalesce::wait(&IN_FLIGHT, key, &slot, Some(left)).await {
                // A personal answer (its fetcher passed the key): this request asks as its own too.
                Some(Ok(fetched))
                    if fetched.fill_answer == FillAnswer::Personal && ctx.is_some() =>
                {
                    return (Err(Failure::Passed), Served::Led, None)
                }
                // An answer meant for the lead alone: a request asks the origin for its own. A background refresh
                // (no `ctx`) wants no answer, and has the origin's word on the key already (the lead passed it, or
                // holds its refreshes off): asked again, every refresh that joined this one made an origin request.
                Some(Ok(fetched)) if !shareable(&fetched) && ctx.is_some() => {
                    // One too large to hold passed the key: asked as the request's own, not through another fill.
                    if passing(&id, respond::now_ms()) {
                        return (Err(Failure::Passed), Served::Led, None);
                    }
                    break;
                }
                // Asked of the origin before a purge this isolate made or read, or before a write to its URL (a
                // request that arrived after either joined it, or came while it is being stored): superseded, as the
                // stored copy is. This request asks again — through another waiter's fill, when one already took the
                // lead. A fill asked after this request came is its answer, whatever was purged since (concurrent
                // with the request): else, with a tag purged faster than fills are made, each waiter led a fill in
                // turn, one after another.
                Some(Ok(fetched))
                    if fetched.storable
                        && (left_fill.is_some_and(|l| fetched.requested_at <= l.requested_at)
                            || fetched.requested_at <= first && purged_here(&fetched)
                            || written_before.is_some_and(|at| at >= fetched.requested_at)) =>
                {
                    next = next_fill(key, Some(&slot));
                    superseded = Some(slot);
                }
                Some(Ok(fetched)) if stored && complete && fetched.storable => {
                    return (
                        Ok(fetched),
                        Served::Hit,
                        Some(FillRef {
                            slot,
                            unstored: false,
                        }),
                    )
                }
                Some(outcome) => {
                    let fill = FillRef {
                        slot,
                        unstored: !stored,
                    };
                    return (outcome, Served::Joined, Some(fill));
                }
                // Its lead went away without an answer, or this request's budget for it ran out: whatever took the
                // key over, if anything (the same fill, overrun, ends the loop at `left == 0`).
                None => {
                    next = coalesce::in_progress(&IN_FLIGHT, key)
                        .filter(|s| !superseded.as_ref().is_some_and(|p| Rc::ptr_eq(p, s)));
                    // The waiters leaving the same superseded fill meet that one too, not the fill gone away.
                    if let (Some(left), Some(current)) = (&superseded, &next) {
                        left.hand_over(current);
                    }
                }
            }
        }
        *left_slot = superseded;
    }
    // A request saying `no-store` takes a fill another leads (stored by that one), but never leads one ordinary
    // requests join: what it fetches is not stored (RFC 9111 §5.2.1.5), so each of them would get an answer kept
    // nowhere and the next miss would ask the origin again. It leads a fill only `no-store` requests join (else a
    // client saying `no-store` sent every request for a key with no fresh copy to the origin), released once
    // answered.
    if let Some(unstored) = &unstored {
        let lead = Lead::claim_at(&IN_FLIGHT, unstored, respond::now_ms(), budget_ms);
        if let Some(left) = &left_unstored {
            left.hand_over(lead.slot());
        }
        let outcome = fetch(spec, policy).await;
        origin_answered(&id, &outcome);
        lead.publish(outcome.clone());
        return (outcome, Served::Led, None);
    }
    // The claim lapses after the fill's own budget (every attempt's wait for headers and the body's) and the second
    // of slack its waiters get: a lead whose request was cancelled may never be dropped on Cloudflare, and its key
    // must not hold every request for it until each waiter's budget (counted from when the waiter came) runs out;
    // a live lead finishing at its budget's end keeps its waiters (no second origin request).
    let lead = Lead::claim_at(&IN_FLIGHT, &claimed, respond::now_ms(), budget_ms);
    if let Some(left) = &left_ordinary {
        left.hand_over(lead.slot());
    }
    let fill = FillRef {
        slot: lead.slot().clone(),
        unstored: false,
    };
    let outcome = fetch(spec, policy).await;
    origin_answered(&id, &outcome);
    // The waiters have the answer at once; the key stays claimed until it is stored (STORE_LIMIT_MS at most), so a
    // request arriving meanwhile takes this answer too instead of asking the origin again.
    lead.publish_at(outcome.clone(), respond::now_ms(), STORE_LIMIT_MS);
    let Ok(fetched) = &outcome else {
        return (outcome, Served::Led, Some(fill));
    };
    // Shared with the waiters, but not stored where the policy keeps it for no time (`negative_ttl` 0).
    if fetched.storable && policy.stores(fetched.status) {
        let [a, b, ..] = respond::random_bytes();
        let meta = StoredMeta::for_fill(
            policy,
            fetched.status,
            fetched.requested_at,
            [a, b],
            fetched.tags.clone(),
        );
        let (key, route, fetched) = (spec.key.clone(), spec.route.clone(), fetched.clone());
        let request_id = spec.request_id.clone();
        let storing = async move {
            // Asked of the origin before a write to its URL: not stored over the write's deletion (a write landing
            // during the put deletes it again below).
            if written_since(&id, fetched.requested_at) {
                drop(lead);
                return;
            }
            // Bounded: a put slower than STORE_LIMIT_MS releases the key (its answer handed out as a HIT until
            // then), but is still followed, so a write that lands before it does is checked for below — for
            // PUT_FOLLOW_MS more at most, inside waitUntil's 30 s (past them, nothing of this request runs).
            let mut lead = Some(lead);
            let put = store(&key, &fetched, &meta);
            let limit = Delay::from(Duration::from_millis(STORE_LIMIT_MS));
            let outlast = Delay::from(Duration::from_millis(PUT_FOLLOW_MS));
            let failed = match settle_put(put, limit, outlast, &mut lead).await {
                Ok(()) => None,
                Err(PutFailed::Refused(e)) => Some(e.to_string()),
                Err(PutFailed::Unsettled) => Some(format!(
                    "no answer in {} ms",
                    STORE_LIMIT_MS + PUT_FOLLOW_MS
                )),
            };
            if let Some(detail) = failed {
                log::warn(
                    "gateway cache put failed",
                    serde_json::json!({"route": route, "detail": detail, "request_id": request_id}),
                );
            }
            if written_since(&id, fetched.requested_at) {
                // The write's deletion ran while this put did: deleted again, so the write stands.
                if let Some(detail) = delete_stored(&key).await {
                    log::warn(
                        "gateway cache delete after a write failed",
                        serde_json::json!({"route": route, "detail": detail, "request_id": request_id}),
                    );
                }
            }
            drop(lead);
        };
        // The requester does not wait for the put (nor is it lost if the client goes away): `waitUntil`, unless
        // this fetch already runs in the background (a stale-while-revalidate refresh).
        match ctx {
            Some(ctx) => ctx.wait_until(storing),
            None => storing.await,
        }
    }
    (outcome, Served::Led, Some(fill))
}

/// The fill of a key as its requests share it.
type FillSlot = coalesce::Slot<Outcome>;

/// A fill whose answer a request took: its slot, and whether it is a `no-store` one (claimed under a key of its own).
struct FillRef {
    slot: FillSlot,
    unstored: bool,
}

/// A fill a request took and then found superseded (`joined_before_a_purge`): its origin request's time, and the fill.
struct LeftFill {
    requested_at: u64,
    slot: FillSlot,
    unstored: bool,
}

/// The fill to wait on for `key` after leaving `superseded` (if it left one): the fill asked again in its place,
/// else the one in progress unless it is the one left (then none: this request leads — and hands it over).
fn next_fill(key: &str, superseded: Option<&FillSlot>) -> Option<FillSlot> {
    if let Some(next) = superseded.and_then(|s| s.successor()) {
        return Some(next);
    }
    let current = coalesce::in_progress(&IN_FLIGHT, key)?;
    match superseded {
        Some(left) if Rc::ptr_eq(left, &current) => None,
        Some(left) => {
            // Another request took the key over: the waiters leaving the same fill follow this one too.
            left.hand_over(&current);
            Some(current)
        }
        None => Some(current),
    }
}

/// Fetches the answer of one fill: held whole when it is small and quick enough, and marked storable when it is
/// meant for any requester. (Dated, when stored, from before this request: a purge that lands while the origin is
/// answering covers it.)
async fn fetch(spec: &Spec, policy: &CachePolicy) -> Outcome {
    let requested_at = respond::now_ms();
    let response = Response::from(
        send(
            &spec.url,
            "GET",
            &spec.headers,
            &OutBody::None,
            spec.timeout_ms,
            spec.retries,
            Timing::HeadersOnly,
        )
        .await?,
    );
    let origin_ms = respond::now_ms().saturating_sub(requested_at);
    let status = response.status_code();
    let mut pairs = header_list::read(response.headers());
    let listed = connection_tokens(header_list::get(&pairs, "connection"));
    let origin_tags = header_list::get(&pairs, "cache-tag").map(str::to_owned);
    let declared =
        header_list::get(&pairs, "content-length").and_then(|l| l.trim().parse::<u64>().ok());
    // A coding the runtime does not decode stays on the bytes, with its `Content-Encoding`, and is never stored.
    let coding = header_list::get(&pairs, "content-encoding");
    let decoded = crate::body::runtime_decoded(coding);
    let was_coded = matches!(coding, Some("gzip" | "br"));
    let tags = tags_for(&spec.route, origin_tags.as_deref());
    // An entry that could not carry every tag its origin gave would outlive a purge of one it left out: such an
    // answer goes to its requester alone, as one too large to hold does.
    let meant_for_anyone = decoded && storable(status, &pairs, !policy.shared);
    let untaggable = meant_for_anyone && tags_left_out(&tags, origin_tags.as_deref());
    let for_anyone = meant_for_anyone && !untaggable;
    if untaggable {
        log::warn(
            "gateway answer not stored: more cache tags than an entry carries",
            serde_json::json!({"route": spec.route, "max_tags": super::cache::MAX_TAGS,
                "request_id": spec.request_id}),
        );
    }
    let fill_answer = if policy.shared {
        shared_fill_answer(status, &pairs, SHARED_FILL)
    } else {
        FillAnswer::Anyone
    };
    if fill_answer == FillAnswer::Personal {
        let now = respond::now_ms();
        PASSES.with(|p| p.borrow_mut().hold(KeyId::of(&spec.key), now, PASS_MS));
    }
    let mut rejoined = false;
    // Larger than a fill may hold (declared, or found while reading; not one merely slow, which the next fill may
    // hold): never stored or shared, so the key is passed to the origin as a personal answer's is — else every
    // request for it waited on another's fill, which read up to the cap into the isolate's memory, before asking
    // the origin itself.
    let mut too_large = false;
    let mut slow = false;
    let body = match response.body() {
        // Never stored, nor (but for an origin error) shared: streamed on at once — an event stream, a personal
        // answer or a redirect is not held back for the fill's body budget.
        ResponseBody::Stream(stream) if !for_anyone && !origin_pushback(status) => {
            FetchedBody::Streamed(RefCell::new(Some(stream.clone())))
        }
        // Declared larger than a fill may hold: not read at all.
        ResponseBody::Stream(stream) if declared.is_some_and(|l| l > spec.max_body_bytes) => {
            too_large = true;
            FetchedBody::Streamed(RefCell::new(Some(stream.clone())))
        }
        ResponseBody::Stream(stream) => {
            // Whole within GATEWAY_CACHE_FILL_BODY_MS after the headers, or passed on (and not stored): a body
            // that trickles past it is not waited for here, so the waiters' budget holds.
            match read_or_pass(stream.clone(), spec.max_body_bytes, spec.fill_body_ms)
                .await
                .map_err(|e| Failure::Unreachable(format!("reading the origin body: {e}")))?
            {
                Prefix::Whole(bytes) => FetchedBody::held(&bytes)?,
                // The part read and the rest, joined in a stream of its own: its length is unknown.
                Prefix::Over(stream) => {
                    rejoined = true;
                    too_large = true;
                    FetchedBody::Streamed(RefCell::new(Some(stream)))
                }
                Prefix::Late(stream) => {
                    rejoined = true;
                    slow = true;
                    FetchedBody::Streamed(RefCell::new(Some(stream)))
                }
            }
        }
        ResponseBody::Body(bytes) => FetchedBody::held(bytes)?,
        ResponseBody::Empty => FetchedBody::held(&[])?,
    };
    if too_large && for_anyone {
        let now = respond::now_ms();
        PASSES.with(|p| p.borrow_mut().hold(KeyId::of(&spec.key), now, PASS_MS));
    }
    // Too large to hold: this request's alone, like an answer meant for one requester.
    let storable = for_anyone && matches!(body, FetchedBody::Held(_));
    // A body held whole has a length known here, whatever the origin said: chunked, or coded and decoded as it was
    // read. A HEAD is told it as a GET's body would be (RFC 9110 §9.3.2), on a miss as on a hit (the stored copy
    // keeps it); a bodiless status says none (§8.6).
    let held_length = match &body {
        FetchedBody::Held(blob) if !null_body(status) => Some(blob.size() as u64),
        _ => None,
    };
    map_to_client(&mut pairs, &spec.to_client());
    let mut headers = Vec::new();
    for (k, v) in pairs {
        // A gzip or br body is decoded by the runtime as it is read (held or streamed), so its length and encoding
        // no longer hold; an identity body's length does (a HEAD is told it), but for a body rejoined from what a
        // fill read and the rest, which goes out chunked, flushed uncompressed as `pass_through`'s streams of
        // unknown length (`flushed_uncompressed` reads the length's absence);
        // a stored answer's caching headers are the policy's; the gateway's own stored-copy headers are never the
        // origin's to set (an origin's x-gateway-status would turn its stored 200 into a 204).
        let drop = matches!(k.as_str(), StoredMeta::HEADER | StoredMeta::STATUS_HEADER)
            || decoded && k == "content-encoding"
            || k == "content-length" && (was_coded || rejoined || held_length.is_some())
            || storable
                && matches!(
                    k.as_str(),
                    "cache-control"
                        | "expires"
                        | "vary"
                        | "age"
                        | "surrogate-control"
                        | "cache-tag"
                );
        if !drop && forward_response_header(&k, &listed) {
            headers.push((k, v));
        }
    }
    if let Some(length) = held_length {
        headers.push(("content-length".to_owned(), length.to_string()));
    }
    let fetched = Rc::new(Fetched {
        status,
        headers,
        body,
        tags,
        storable,
        fill_answer,
        client: spec.client,
        requested_at,
        origin_ms,
        slow,
    });
    Ok(fetched)
}

/// An origin answer's headers less those of its one exchange (`per_exchange`): what a stored copy, or another
/// request handed this answer, may carry.
fn representation_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !per_exchange(k))
        .cloned()
        .collect()
}

async fn store(key: &str, fetched: &Fetched, meta: &StoredMeta) -> worker::Result<()> {
    // The fill's own ids, trace and timing are not the representation's: never stored (`per_exchange`).
    let headers = header_list::build(&representation_headers(&fetched.headers));
    headers.set(StoredMeta::HEADER, &meta.encode())?;
    let (status, kept) = StoredMeta::stored_status(fetched.status);
    if let Some(kept) = kept {
        headers.set(StoredMeta::STATUS_HEADER, &kept.to_string())?;
    }
    headers.set(
        "cache-control",
        &format!("public, max-age={}", meta.retention_secs()),
    )?;
    let response = Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(fetched.body.for_response());
    Cache::default().put(key, response).await
}

/// An answer's cache tags, and when it counts as stored (its fill asked the origin; for an answer fetched for this
/// request, when it will count as stored).
struct Tagged<'a> {
    tags: &'a [String],
    stored_at_ms: u64,
}

/// A response for the client from a stored or fetched answer, with the policy's headers and `x-cache`.
fn client_response(
    status: u16,
    headers: &[(String, String)],
    body: ResponseBody,
    policy: &CachePolicy,
    Tagged { tags, stored_at_ms }: Tagged<'_>,
    served: Served,
    asked: &Asked,
) -> Response {
    let status = if not_modified(
        status,
        headers,
        asked.if_none_match.as_deref(),
        asked.if_modified_since.as_deref(),
        Some(stored_at_ms),
    ) {
        304
    } else {
        status
    };
    // The runtime sets a body's length itself; a HEAD, which has none, is told the stored one (of the identity
    // coding only: a stored gzip length would be wrong for a client the runtime decodes it for) — unless the runtime
    // may gzip or br the GET's body for this client, whose length differs (RFC 9110 §8.6).
    let head_length = asked.head
        && !asked.may_code
        && !null_body(status)
        && header_list::get(headers, "content-encoding").is_none();
    // The caching a CDN in front is told is the policy's alone: the origin's `CDN-Cache-Control` (and Cloudflare's
    // own), which such a CDN heeds over `Cache-Control` and `Surrogate-Control` (RFC 9213 §2.1), would have it keep
    // a per-user answer under its URL, or a shared one past a purge here (entries stored by earlier builds kept them).
    // The origin's ids, trace and timing echoed back (`per_exchange`: its `Server-Timing` timed the fill's request)
    // are the fill's alone: a stored copy, or a waiter handed another request's fill, does not repeat them (the
    // gateway sets this request's own ids and trace on every answer).
    let own_exchange = served == Served::Led;
    // Dated as its `Age` counts: from its fill's origin request (the second after, as `not_modified` reads it). With
    // the origin's `Date` — 100 s old from an origin behind a CDN of its own, whose `Age` the policy's headers
    // replace — a MISS looked that much older to a browser than the HIT after it, and a 60 s policy's answer was
    // stale on arrival. A HIT needs it too: the Cache API dates a copy at its put (Miniflare: the second of it,
    // rounded down), up to the fill's origin time and a second apart from this. The `Date` there was is left out
    // of the list below rather than replaced after it: one header crossing into the runtime per answer, as before.
    let dated = i64::try_from(stored_at_ms.div_ceil(1000))
        .ok()
        .and_then(crate::conditional::imf_fixdate);
    let out = header_list::build(headers.iter().filter(|(k, _)| {
        k != StoredMeta::HEADER
            && k != StoredMeta::STATUS_HEADER
            && k != "cache-control"
            && k != "cdn-cache-control"
            && k != "cloudflare-cdn-cache-control"
            // The Cache API's own word on a stored copy (workerd and Miniflare set it on a match), or an origin's
            // CDN's on the fill: beside the gateway's `x-cache` it misleads (`HIT` on a STALE answer or a 304).
            && k != "cf-cache-status"
            && (k != "content-length" || head_length)
            && (k != "date" || dated.is_none())
            && (own_exchange || !per_exchange(k))
    }));
    let (cache_control, surrogate_control) = policy.client_headers(status);
    let _ = out.set("cache-control", &cache_control);
    let _ = out.set("surrogate-control", &surrogate_control);
    // In lower case, as a purge names them (an entry an earlier build stored carries its origin's case).
    let mut tags = tags.join(",");
    tags.make_ascii_lowercase();
    let _ = out.set("cache-tag", &tags);
    // The stored copy is decoded, and the runtime codes each answer from it as its client's `Accept-Encoding` allows
    // (gzip, br or none): every one varies by that header, whatever the origin said (its `Vary` is not stored, so
    // the Cache API does not key on it). Without it, a browser or a CDN in front that kept the gzip answer handed
    // it to a client that cannot read gzip (RFC 9110 §12.5.5; a 304 says it too, §15.4.5). By `Origin` too: entries
    // are kept per requesting site (`cache::cache_key`), and a CDN in front must not hand one site's grant to another.
    // A per-user answer by the credentials too (`CachePolicy::client_vary`).
    let _ = out.set("vary", policy.client_vary());
    if let Some(date) = dated {
        let _ = out.set("date", &date);
    }
    let _ = out.set("x-cache", served.label());
    let body = if asked.head || null_body(status) {
        ResponseBody::Empty
    } else {
        body
    };
    Response::builder()
        .with_status(status)
        .with_headers(out)
        .body(body)
}

/// `response` with the `Age` of an answer `age_ms` old: a stored copy (or a fill still being written, or one another
/// request led) says how old it is, so a browser or a CDN in front counts the policy's max-age from its fetch.
fn with_age(response: Response, age_ms: u64) -> Response {
    respond::with_header(response, "age", &(age_ms / 1000).to_string())
}

fn fetched_response(f: &Fetched, policy: &CachePolicy, served: Served, asked: &Asked) -> Response {
    let mut response = fetched_answer(f, policy, served, asked);
    // Not generated for this request: a fill's answer handed to another says its age, as a stored one does (RFC 9111
    // §5.1) — a request that joined a fill under way got an answer as old as that fill's wait (its budget at most),
    // and a cache in front counted the policy's max-age from its own receipt of it.
    // An unstored answer goes out with the origin's headers, its `Age` among them (the lead forwards it as it came):
    // the wait is added to it, not put in its place (`cache::handed_age_ms`).
    if served != Served::Led {
        let origin_age = (!f.storable)
            .then(|| header_list::get(&f.headers, "age"))
            .flatten();
        let waited = respond::now_ms().saturating_sub(f.requested_at);
        response = with_age(response, super::cache::handed_age_ms(origin_age, waited));
    }
    if served == Served::Hit {
        return response;
    }
    // A miss says how long the origin took to answer the fill, as an uncached request does (the edge's own time is
    // appended beside it).
    respond::with_appended_header(
        response,
        "server-timing",
        &format!("origin;dur={}", f.origin_ms),
    )
}

fn fetched_answer(f: &Fetched, policy: &CachePolicy, served: Served, asked: &Asked) -> Response {
    if !f.storable {
        // Not stored: the origin's answer as it came, without the policy's caching headers or tags; a body of
        // unknown length that streams goes out uncompressed, each chunk flushed (as `pass_through` does). An origin
        // error handed to a waiter (`shareable`) leaves the fill's ids and trace out (`per_exchange`).
        let headers = if served == Served::Led {
            header_list::build(&f.headers)
        } else {
            header_list::build(&representation_headers(&f.headers))
        };
        let _ = headers.set("x-cache", served.label());
        // The fill carried none of the requester's conditionals (its answer could have been every requester's), so
        // they are evaluated here, against the origin's validators (RFC 9110 §13.2.2): else a revalidation of an
        // answer too large to store was sent the whole body again, where the origin, asked straight, said 304.
        let status = if not_modified(
            f.status,
            &f.headers,
            asked.if_none_match.as_deref(),
            asked.if_modified_since.as_deref(),
            None,
        ) {
            304
        } else {
            f.status
        };
        // A GET's body the runtime may code has another length than this one (RFC 9110 §8.6), as in
        // `client_response`; a 204 or 304 says none (`length_withheld`).
        if asked.head
            && asked.may_code
            && header_list::get(&f.headers, "content-encoding").is_none()
            || length_withheld(status)
        {
            let _ = headers.delete("content-length");
        }
        let streamed =
            matches!(f.body, FetchedBody::Streamed(_)) && !asked.head && !null_body(status);
        if streamed && flushed_uncompressed(&f.headers) {
            let _ = headers.set("content-encoding", "identity");
        }
        let body = if asked.head || null_body(status) {
            f.body.discard();
            ResponseBody::Empty
        } else {
            f.body.for_response()
        };
        return Response::builder()
            .with_status(status)
            .with_headers(headers)
            .body(body);
    }
    let body = if asked.head {
        ResponseBody::Empty
    } else {
        f.body.for_response()
    };
    // Judged as the stored copy will be (RFC 9111 §4.3.2 without a Last-Modified): by when it was asked of the
    // origin, the time its entry counts as stored — not by the origin's `Date`, which the HIT after it cannot read
    // (the Cache API gives a matched copy its own), nor never, for an origin that sent none.
    let tagged = Tagged {
        tags: &f.tags,
        stored_at_ms: f.requested_at,
    };
    client_response(f.status, &f.headers, body, policy, tagged, served, asked)
}

/// Whether a fetched answer counts as an origin error for stale-if-error.
fn is_origin_error(outcome: &Result<Rc<Fetched>, Failure>) -> bool {
    match outcome {
        Ok(f) => f.status >= 500,
        Err(Failure::Passed) => false,
        Err(_) => true,
    }
}

/// The answer to a fill for this request: as fetched, or, when the origin's answer may depend on what the fill left
/// out (`FillAnswer::StatusOnly` or `Personal`) and the requester sent some of it, or is a 429 the fill got for
/// another client's address (`cache::fill_answer_reaches`), the answer to its own request.
async fn answer_fetched(
    f: &Fetched,
    spec: &Spec,
    policy: &CachePolicy,
    served: Served,
    asked: &Asked,
    own: &OwnRequest<'_>,
) -> ApiResult<Response> {
    let reaches = fill_answer_reaches(f.status, f.client, spec.client);
    if reaches && (f.fill_answer == FillAnswer::Anyone || !own.tailored()) {
        return Ok(fetched_response(f, policy, served, asked));
    }
    f.body.discard();
    own_answer(spec, asked, own).await
}

/// The requester's own request, as on an uncached route (labelled a MISS).
async fn own_answer(spec: &Spec, asked: &Asked, own: &OwnRequest<'_>) -> ApiResult<Response> {
    let started = respond::now_ms();
    let response = send(
        &spec.url,
        own.method,
        own.headers,
        &OutBody::None,
        spec.timeout_ms,
        spec.retries,
        Timing::Runtime,
    )
    .await
    .map_err(Failure::into_error)?;
    let origin_ms = respond::now_ms().saturating_sub(started);
    let timing = [("server-timing".into(), format!("origin;dur={origin_ms}"))];
    let response = pass_through(
        response,
        &timing,
        &spec.to_client(),
        asked.head,
        asked.may_code,
    );
    Ok(respond::with_header(response, "x-cache", "MISS"))
}

async fn cached(
    call: &Call,
    spec: Spec,
    policy: CachePolicy,
    asked: Asked,
    own: OwnRequest<'_>,
) -> ApiResult<Response> {
    let came = respond::now_ms();
    // The cache only saves origin requests: one it cannot read counts as a miss (logged), not as a failed request.
    // Nor does a slow one hold the request: a read that has not answered within the route's `timeout_ms` (the wait
    // it allows the origin, which the miss then asks) is a miss too.
    let read = crate::entry::within_ms(
        Cache::default().get(spec.key.as_str(), false),
        spec.timeout_ms,
    )
    .await
    .unwrap_or_else(|| {
        Err(worker::Error::RustError(format!(
            "no answer in {} ms (the route's timeout_ms)",
            spec.timeout_ms
        )))
    });
    let stored = read.unwrap_or_else(|e| {
        log::warn(
            "edge cache read failed",
            serde_json::json!({"request_id": call.request_id, "detail": e.to_string()}),
        );
        None
    });
    let now = respond::now_ms();
    let entry = match stored {
        Some(response) => {
            let meta = response
                .headers()
                .get(StoredMeta::HEADER)
                .ok()
                .flatten()
                .and_then(|m| StoredMeta::decode(&m));
            match meta {
                Some(meta) if !purged(call, &meta, now, spec.timeout_ms).await => {
                    Some((response, meta))
                }
                _ => None,
            }
        }
        None => None,
    };
    let Some((response, meta)) = entry else {
        if asked.only_if_cached {
            return Err(not_cached());
        }
        let (outcome, served) = fill(call, &spec, &policy, came).await;
        return match outcome {
            Ok(f) => answer_fetched(&f, &spec, &policy, served, &asked, &own).await,
            Err(Failure::Passed) => own_answer(&spec, &asked, &own).await,
            Err(failure) => Err(failure.into_error()),
        };
    };
    // The copy's clock: as the runtime's, but for how far the debug route aged it (`cache::CopyAging`, 0 unless it
    // was asked).
    let aged_ms = COPY_AGING.with(|a| a.borrow().aged_ms(meta.stored_at_ms));
    let copy_clock = |now: u64| now.saturating_add(aged_ms);
    let freshness = meta.freshness(copy_clock(now));
    // Only a copy it may be served without the origin: fresh, or within its stale-while-revalidate window (whose
    // refresh goes on in the background).
    if asked.only_if_cached && matches!(freshness, Freshness::StaleIfError | Freshness::Expired) {
        return Err(not_cached());
    }
    // A stored copy's age, read once per answer: the lifetime it is told and the `Age` it says are of one instant.
    // A HIT is as old as when it was found fresh (`now`): read again after the purge marks' KV read, a copy found
    // fresh just before its own TTL ended said an `Age` past the `max-age` its freshness had chosen. A STALE one is
    // as old as when it is served (stale-if-error answers after the origin failed).
    let serve_stored = |response: Response, served: Served| {
        let age_ms = copy_clock(match served {
            Served::Hit => now,
            _ => respond::now_ms(),
        })
        .saturating_sub(meta.stored_at_ms);
        let kept = response
            .headers()
            .get(StoredMeta::STATUS_HEADER)
            .ok()
            .flatten();
        let status = StoredMeta::served_status(response.status_code(), kept.as_deref());
        let headers = header_list::read(response.headers());
        let (_, body) = response.into_parts();
        let mut answer = client_response(
            status,
            &headers,
            body,
            &policy,
            Tagged {
                tags: &meta.tags,
                stored_at_ms: meta.stored_at_ms,
            },
            served,
            &asked,
        );
        // Fresh past the policy's TTL (its TTL jittered up): told its own lifetime, so its `Age` stays below it.
        if served == Served::Hit {
            for name in ["cache-control", "surrogate-control"] {
                let said = answer.headers().get(name).ok().flatten();
                if let Some(told) = said.and_then(|v| {
                    stretched_lifetime(&v, policy.ttl_for(status), meta.ttl_ms, age_ms)
                }) {
                    answer = respond::with_header(answer, name, &told);
                }
            }
        }
        with_age(answer, age_ms)
    };
    match freshness {
        Freshness::Fresh => Ok(serve_stored(response, Served::Hit)),
        // A request saying `no-store` starts no refresh: what it fetched would not be stored (RFC 9111 §5.2.1.5), an
        // origin request thrown away while the copy stayed stale. It is served the copy the origin's
        // stale-while-revalidate allows (RFC 5861 §3), and the next request without `no-store` refreshes it.
        Freshness::StaleRevalidate if !spec.store => Ok(serve_stored(response, Served::Stale)),
        Freshness::StaleRevalidate => {
            // No refresh of a passed key (a refresh is a shared fill, which got an answer made for one visitor), nor
            // one a refresh that failed lately holds off: a down origin is asked once per key and hold, not once per
            // request in the window. Either way the stale copy is served, as the window allows.
            let id = KeyId::of(&spec.key);
            let at = respond::now_ms();
            let held = REFRESH_HOLDS.with(|h| h.borrow().held(&id, at));
            if refresh_due(passing(&id, at), held) {
                let (spec, policy) = (spec.clone(), policy.clone());
                let hold_ms = call.isolate.config.gateway.refresh_hold_ms;
                let refreshing = Refreshing::start();
                call.ctx.wait_until(async move {
                    let _refreshing = refreshing;
                    // Already in the background: the store is awaited here.
                    let (outcome, served, _) = coalesced_fetch(None, &spec, &policy, None).await;
                    // A 5xx, no answer, or a 429 (held for its `Retry-After`, bounded): `cache::refresh_hold_ms`.
                    let at = respond::now_ms();
                    let held_ms = hold_after(&outcome, at, hold_ms);
                    if let Some(held_ms) = held_ms {
                        REFRESH_HOLDS.with(|h| h.borrow_mut().hold(id, at, held_ms));
                    }
                    origin_down(id, &outcome, at, held_ms);
                    if let Ok(fetched) = outcome {
                        // Only its own: a streamed body of a fill it joined is the lead's.
                        if served == Served::Led {
                            fetched.body.discard();
                        }
                        if takes_down(&fetched, &policy) {
                            take_down(&spec).await;
                        }
                    }
                });
            }
            Ok(serve_stored(response, Served::Stale))
        }
        Freshness::StaleIfError => {
            // The origin failed this key lately: the copy is served without asking it again (and waiting out its
            // timeout, when it hangs) until the hold ends or another fill of the key gets its answer.
            let id = KeyId::of(&spec.key);
            if ORIGIN_DOWN.with(|h| h.borrow().held(&id, respond::now_ms())) {
                return Ok(serve_stored(response, Served::Stale));
            }
            let (outcome, served) = fill(call, &spec, &policy, came).await;
            let (at, hold_ms) = (
                respond::now_ms(),
                call.isolate.config.gateway.refresh_hold_ms,
            );
            origin_down(id, &outcome, at, hold_after(&outcome, at, hold_ms));
            if let Ok(fetched) = &outcome {
                if takes_down(fetched, &policy) {
                    let spec = spec.clone();
                    call.ctx.wait_until(async move { take_down(&spec).await });
                }
            }
            // The window is checked again once the origin has failed (its timeouts may have outlasted it).
            let within = meta.freshness(copy_clock(respond::now_ms())) != Freshness::Expired;
            if is_origin_error(&outcome) && within {
                if let Ok(fetched) = &outcome {
                    fetched.body.discard();
                }
                return Ok(serve_stored(response, Served::Stale));
            }
            let answer = match outcome {
                Ok(f) => answer_fetched(&f, &spec, &policy, served, &asked, &own).await,
                Err(Failure::Passed) => own_answer(&spec, &asked, &own).await,
                Err(failure) => Err(failure.into_error()),
            };
            // The requester's own request (a passed key, or an answer made for the fill alone) fails like a fill.
            let failed = match &answer {
                Ok(r) => r.status_code() >= 500,
                Err(e) => matches!(e.status(), 502 | 504),
            };
            if failed && meta.freshness(copy_clock(respond::now_ms())) != Freshness::Expired {
                return Ok(serve_stored(response, Served::Stale));
            }
            answer
        }
        Freshness::Expired => match fill(call, &spec, &policy, came).await {
            (Ok(f), served) => answer_fetched(&f, &spec, &policy, served, &asked, &own).await,
            (Err(Failure::Passed), _) => own_answer(&spec, &asked, &own).await,
            (Err(failure), _) => Err(failure.into_error()),
        },
    }
}

/// The fill of a request that came at `came` and found no stored copy it may serve (none, or one past its TTL and
/// stale-while-revalidate window): [`coalesced_fetch`], asked once more when the fill it joined was asked before a
/// purge of its answer's own tags ([`joined_before_a_purge`]). A stored copy's marks say nothing of the tags the
/// origin gives its next answer, so a request with an expired copy reads the joined answer's marks too.
async fn fill(call: &Call, spec: &Spec, policy: &CachePolicy, came: u64) -> (Outcome, Served) {
    let (outcome, served, taken) = coalesced_fetch(Some(&call.ctx), spec, policy, None).await;
    if joined_before_a_purge(call, &outcome, served, policy, came, spec.timeout_ms).await {
        // The fill is superseded, and this request asks again — through the fill asked in its place when another
        // waiter leaving it already leads one (done, maybe, by the time this request's marks were read) — leaving
        // that fill by its time: a mark that could not be read keeps no purge time, and the fill, complete and
        // still being stored, was found again and served as a `HIT`.
        let left = outcome.as_ref().ok().zip(taken).map(|(f, fill)| LeftFill {
            requested_at: f.requested_at,
            slot: fill.slot,
            unstored: fill.unstored,
        });
        let (outcome, served, _) =
            coalesced_fetch(Some(&call.ctx), spec, policy, left.as_ref()).await;
        return (outcome, served);
    }
    (outcome, served)
}

/// Whether a request that found no stored copy it may serve took the answer of another request's fill asked of the
/// origin before it came (`came`), and a purge of one of the answer's tags made since — anywhere, as its marks in KV
/// show it — supersedes that answer, as it would the stored copy. `coalesced_fetch` leaves such a fill only for a
/// purge this isolate made or read: a request with no stored copy reads no marks (one with an expired copy, only
/// that copy's tags'), so a purge made in another isolate held for it not within `GATEWAY_PURGE_SYNC_MS` but never,
/// while fills were joined (under way, or complete and being stored: a
/// `HIT`). The marks are read as a hit reads them (kept times first, a read under way shared; one unreadable counts
/// as a purge), and kept, so the next `coalesced_fetch` leaves the fill.
async fn joined_before_a_purge(
    call: &Call,
    outcome: &Outcome,
    served: Served,
    policy: &CachePolicy,
    came: u64,
    timeout_ms: u64,
) -> bool {
    let Ok(fetched) = outcome else {
        return false;
    };
    if served == Served::Led || !fetched.storable || fetched.requested_at > came {
        return false;
    }
    // A purge this isolate read while the request waited (the next `coalesced_fetch` leaves the fill for it).
    if purged_here(fetched) {
        return true;
    }
    let meta = StoredMeta::for_fill(
        policy,
        fetched.status,
        fetched.requested_at,
        [0, 0],
        fetched.tags.clone(),
    );
    purged(call, &meta, respond::now_ms(), timeout_ms).await
}

/// Tags whose purge times an isolate keeps before dropping those it read longer than `GATEWAY_PURGE_SYNC_MS` ago.
const MAX_PURGES_KEPT: usize = 4096;

/// Whether one of the entry's tags was purged after it was stored (purge times from KV, cached briefly). A purge
/// time that cannot be read counts as a purge (the entry is a miss, and the tag is read again next time): a purge
/// is how an operator takes content down, and a KV failure must not serve it on. The marks this isolate does not
/// know are read together, for at most the route's `timeout_ms` (the wait it allows the origin, which a miss then
/// asks): a KV read that has not answered by then counts as unreadable too, so a slow KV costs each hit that wait
/// rather than holding it for as long as KV takes. The reads go on under `waitUntil`, and the times they bring are
/// kept as any read's, so the next requests find them without a KV read.
async fn purged(call: &Call, meta: &StoredMeta, now: u64, timeout_ms: u64) -> bool {
    let sync_ms = call.isolate.config.gateway.purge_sync_ms;
    let mut times = HashMap::new();
    let mut unknown = Vec::new();
    for tag in &meta.mark_names() {
        let known = PURGES.with(|p| {
            p.borrow()
                .get(tag.as_ref())
                .filter(|(_, read_at)| now.saturating_sub(*read_at) < sync_ms)
                .map(|(at, _)| *at)
        });
        match known {
            Some(at) => {
                times.insert(tag.to_string(), at);
            }
            None => unknown.push(tag.to_string()),
        }
    }
    if !unknown.is_empty() {
        let unreadable = |tag: &str, detail: &str| {
            log::warn(
                "purge time unreadable; serving from the origin",
                serde_json::json!({"tag": tag, "request_id": call.request_id, "detail": detail}),
            );
            true
        };
        let kv = match call.env.kv(bindings::CONFIG_KV) {
            Ok(kv) => kv,
            Err(e) => return unreadable(&unknown[0], &e.to_string()),
        };
        let reads =
            futures_util::future::join_all(unknown.into_iter().map(|tag| {
                shared_purge_read(&call.ctx, kv.clone(), tag, now, sync_ms, timeout_ms)
            }));
        let mut reads = Box::pin(reads);
        let limit = std::pin::pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match futures_util::future::select(reads.as_mut(), limit).await {
            futures_util::future::Either::Left((read, _)) => {
                for (tag, at) in read {
                    match at {
                        Ok(at) => {
                            times.insert(tag, at);
                        }
                        Err(detail) => return unreadable(&tag, &detail),
                    }
                }
            }
            futures_util::future::Either::Right(_) => {
                // The reads go on under `waitUntil` (`shared_purge_read`), each keeping its time when it comes.
                return unreadable(
                    "(any not yet known)",
                    &format!("KV did not answer in {timeout_ms} ms (the route's timeout_ms)"),
                );
            }
        }
    }
    meta.purged(|t| times.get(t).copied().flatten())
}

/// How many cache fills this isolate has claimed now: under way, or answered and being stored (for the debug route
/// the tests read).
pub fn fills_in_progress() -> usize {
    coalesce::claims_at(&IN_FLIGHT, respond::now_ms())
}

/// How many requests of this isolate wait on another's purge-mark read now (for the debug route the tests read:
/// apart from the waiters on fills, which a test that counts those must not take them for).
pub fn purge_reads_waiting() -> usize {
    coalesce::waiting_on(&PURGE_READS)
}

/// [`read_purge_time`], shared by the requests of this isolate that need `tag`'s mark at once: the first reads it under
/// `waitUntil` (its claim standing for the route's `timeout_ms` and a second; its request cancelled, the read still
/// publishes), the others take its outcome, polled on their own timers (`coalesce::wait`) — awaiting the reader's
/// promise would wake them in its request's context, which workerd cancels as a hung request. Only a read begun less
/// than `sync_ms` before this request came is taken, as a kept time is: its outcome is KV's as that read found it, and
/// a purge made since (anywhere) must hold for this request within `GATEWAY_PURGE_SYNC_MS` (0: each request reads its
/// own). A waiter whose reader went away without an outcome, or was replaced by a fresher read, looks again (it joins
/// the fresher one), else reads the mark itself.
async fn shared_purge_read(
    ctx: &worker::Context,
    kv: worker::kv::KvStore,
    tag: String,
    now: u64,
    sync_ms: u64,
    timeout_ms: u64,
) -> (String, Result<Option<u64>, String>) {
    let came = respond::now_ms();
    let mut gave_up: Option<coalesce::Slot<Result<Option<u64>, String>>> = None;
    while let Some(slot) = coalesce::in_progress_within(&PURGE_READS, &tag, came, sync_ms) {
        if gave_up.as_ref().is_some_and(|g| Rc::ptr_eq(g, &slot)) {
            break;
        }
        // No budget of its own: `purged` stops waiting at the route's timeout.
        if let Some(outcome) = coalesce::wait(&PURGE_READS, &tag, &slot, None).await {
            return (tag, outcome);
        }
        gave_up = Some(slot);
    }
    let lead = Lead::claim_at(
        &PURGE_READS,
        &tag,
        respond::now_ms(),
        coalesce::hold_ms(timeout_ms),
    );
    // The read runs under `waitUntil`, which outlives this request: cancelled (its client gone), it still publishes
    // its outcome and releases the claim, instead of holding the tag's waiters until the claim lapses. This request
    // awaits the same read (one future, shared within this request: no other request's promise is awaited).
    let read = futures_util::FutureExt::shared(futures_util::FutureExt::boxed_local(
        read_purge_time(kv, tag, now, sync_ms),
    ));
    ctx.wait_until({
        let read = read.clone();
        async move {
            let (_, outcome) = read.await;
            lead.publish(outcome);
        }
    });
    read.await
}

/// The purge time of `tag` read from KV (`None`: never purged), kept in [`PURGES`] as read at `now`; or why it could
/// not be read — KV failed, or holds a mark that is no time ([`super::cache::purge_time`]): such a mark counts as
/// purged as an unreadable one does, where it read as "never purged" and the entries it covers were served on.
async fn read_purge_time(
    kv: worker::kv::KvStore,
    tag: String,
    now: u64,
    sync_ms: u64,
) -> (String, Result<Option<u64>, String>) {
    let read = match kv.get(&format!("{PURGE_KEY_PREFIX}{tag}")).text().await {
        Ok(text) => match super::cache::purge_time(text.as_deref()) {
            Ok(at) => at,
            Err(detail) => return (tag, Err(detail)),
        },
        Err(e) => return (tag, Err(e.to_string())),
    };
    let at = PURGES.with(|p| {
        super::cache::keep_purge_read(
            &mut p.borrow_mut(),
            tag.clone(),
            read,
            now,
            sync_ms,
            MAX_PURGES_KEPT,
        )
    });
    (tag, Ok(at))
}

/// A purge's token: verified, and carrying the admin permission (401, or 403 naming the permission); its holder.
async fn purge_admitted(call: &Call) -> ApiResult<Verified> {
    let mut token = VerifiedOnce::default();
    let authorization = header(&call.req, "authorization");
    let user = verify_bearer(call, &mut token, authorization.as_deref()).await?;
    let admin = call.isolate.config.gateway.admin_permission.clone();
    if user.missing(std::slice::from_ref(&admin)).is_some() {
        return Err(ApiError::forbidden(
            "missing_permission",
            format!("purging needs the permission {admin}"),
        )
        .with_header("www-authenticate", INSUFFICIENT_SCOPE));
    }
    Ok(user)
}

/// A purge's body. A field it does not know is refused (400), not ignored: `{"tags": […], "dry_run": true}` purged
/// for real.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    tags: Vec<String>,
}

/// `POST /admin/gateway/purge` `{"tags": [...]}`: needs a JWT carrying the admin permission; every cached entry
/// with one of the tags, stored before now, is treated as a miss from then on. Each mark is written whatever became
/// of another's (`cache::purge_answer`: 200, or 503 with `Retry-After: 1` naming the tags not marked); one Workers KV
/// refuses for its one-write-a-second-per-key limit is written again a second later.
pub async fn purge(call: &mut Call) -> ApiResult<Response> {
    let admin = match purge_admitted(call).await {
        Ok(admin) => admin,
        Err(refused) => {
            // Refused before its body was read: drained so the client sees the answer (as a gateway route's 401 is).
            crate::entry::body::drain(&mut call.req).await;
            return Err(refused);
        }
    };
    let max = call.isolate.config.core.max_body_bytes;
    let request: PurgeRequest = crate::entry::body::read_json(&mut call.req, max).await?;
    if request.tags.is_empty() || request.tags.len() > 100 {
        return Err(ApiError::bad_request(
            "invalid_tags",
            "tags must list 1 to 100 tags",
        ));
    }
    let now = respond::now_ms();
    let kv = call
        .env
        .kv(bindings::CONFIG_KV)
        .or_internal("opening CONFIG_KV")?;
    // Every tag is checked before any is marked: a refused request purges nothing.
    if let Some(bad) = request.tags.iter().position(|t| !valid_tag(t)) {
        return Err(ApiError::bad_request(
            "invalid_tags",
            format!(
                "tag {} is not a valid cache tag (1 to 128 printable ASCII characters, no comma or semicolon)",
                bad + 1
            ),
        ));
    }
    let sync_ms = call.isolate.config.gateway.purge_sync_ms;
    // Known in this isolate at once, within the bound its reads keep.
    let keep_made = |tag: &str, at: u64| {
        PURGES.with(|p| {
            keep_purge_made(
                &mut p.borrow_mut(),
                tag.to_owned(),
                at,
                sync_ms,
                MAX_PURGES_KEPT,
            )
        });
    };
    // Every mark is written, whichever fails (a failed one no longer leaves the tags after it unmarked), each dated
    // by its own write, and one KV refuses for its per-key limit written again a second later (`cache::write_marks`).
    let kv = &kv;
    let failed: Vec<String> = write_marks(
        purge_marks(&request.tags),
        respond::now_ms,
        |tag, at| async move { write_purge_mark(kv, &tag, at).await },
        || Delay::from(Duration::from_millis(PURGE_RETRY_MS)),
        keep_made,
    )
    .await
    .into_iter()
    .map(|(tag, detail)| purge_mark_failed(call, tag, &detail))
    .collect();
    // Who took what down is on record whatever `REQUEST_LOG_PERCENT` samples (the request line may be left out, and
    // names neither): a purge is an operator's act on what every client is served. The tags are at most 100 of 128
    // printable ASCII characters (checked above), the id a token's `sub` (printable ASCII).
    log::write(
        Level::Info,
        "gateway_purge",
        serde_json::json!({"user_id": admin.sub, "tags": request.tags, "failed": failed,
            "at_ms": now, "request_id": call.request_id}),
    );
    // The tags named as the request listed them, in the 503 (an error, with the fields of any other) as in the 200.
    respond::json(200, &purge_answer(&request.tags, &failed, now)?)
}

/// Writes `tag`'s purge mark, time `at`; or why KV refused it (its text).
async fn write_purge_mark(kv: &worker::kv::KvStore, tag: &str, at: u64) -> Result<(), String> {
    kv.put(&format!("{PURGE_KEY_PREFIX}{tag}"), at.to_string())
        .map_err(|e| e.to_string())?
        // Gone once no entry it covers can still be served: marks do not pile up in KV.
        .expiration_ttl(PURGE_MARK_TTL_SECS)
        .execute()
        .await
        .map_err(|e| e.to_string())
}

/// Logs a purge mark KV did not take, and gives its tag (the purge's answer names it).
fn purge_mark_failed(call: &Call, tag: String, detail: &str) -> String {
    log::warn(
        "purge mark not written",
        serde_json::json!({"tag": tag, "request_id": call.request_id, "detail": detail}),
    );
    tag
}
