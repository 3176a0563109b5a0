//! Runtime side of edge rendering: `GET /` and `GET /p/{page}`. Reads the visitor's inputs and the page's content
//! from `CONTENT_KV`, sends the headers and the shell at once, then streams each slot in document order as it
//! resolves (fragments from KV, else the origin with write-back through `waitUntil`, each within its budget).
//! `?render=whole` renders the same page completely before sending (the benchmark's non-streaming mode).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{self, LocalBoxFuture};
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Context, Delay, Headers, KvStore, Request, Response};

use super::assemble::{on_end, page_stream, within_budget, Miss};
use super::freshness;
use super::hints::{self, Manifest};
use super::html::{Html, TrustedSource};
use super::keys;
use super::personal::{self, Catalog, Geo, Preferences};
use super::plan::{render_mode, FragmentSpec, Mode, Slot, MIN_TTL_S, NONCE_PLACEHOLDER};
use super::templates::{self, Offers, Shell};
use super::variant::{self, Flags, Identity};
use crate::bindings;
use crate::entry::body::{js_message, read_stream_capped, ReadError};
use crate::entry::coalesce::{self, InFlight, Lead};
use crate::entry::log;
use crate::entry::respond::{self, random_bytes};
use crate::entry::within_ms;
use crate::entry::Call;
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::observability::log::Level;
use crate::observability::trace::OriginTrace;

/// The `?render=` mode, read from the raw URL (the `url` crate's parser would add its IDNA tables to the wasm).
fn mode(req: &Request) -> ApiResult<Mode> {
    render_mode(&req.inner().url()).map_err(|why| ApiError::bad_request("invalid_render_mode", why))
}

/// The page's answer to its preconditions (RFC 9110 §13.2.2), evaluated before anything is read (a 304 is then given
/// the session check's cookie clearing, [`page`]): the Worker renders
/// the page, so it answers for it as its origin, which MUST evaluate them (§13.1.1, §13.1.2). A page has no entity
/// tag (each response carries a fresh CSP nonce), so an `If-Match` list of tags names no current representation —
/// 412 — while `*` names it; an `If-None-Match` of `*` names it — 304, no body — while a list of tags never does.
/// The date preconditions are ignored: a page has no `Last-Modified` (§13.1.3, §13.1.4).
fn preconditions(req: &Request) -> ApiResult<Option<Response>> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    if let Some(if_match) = header("if-match") {
        if !crate::conditional::any(&if_match) {
            return Err(ApiError::precondition_failed(
                "If-Match names no current representation of this page (a page has no entity tag)",
            ));
        }
    }
    if header("if-none-match").is_some_and(|v| crate::conditional::any(&v)) {
        let headers = Headers::new();
        headers
            .set("cache-control", "private, no-store")
            .or_internal("setting a page header")?;
        return Ok(Some(
            Response::builder()
                .with_status(304)
                .with_headers(headers)
                .empty(),
        ));
    }
    Ok(None)
}

/// The signed-in user's id, if any (session cookie, cached check); anonymous otherwise — with the `Set-Cookie` that
/// clears a session cookie the check found naming no live session (the page is `private, no-store`, never stored
/// for others). A page must still render when the session store fails or is slow, so a failure, or no answer within
/// `budget_ms`, is logged and the visitor treated as anonymous (the cookie kept: nothing was learnt of it).
async fn session_user(call: &Call, budget_ms: u64) -> (Option<String>, Option<String>) {
    let check = crate::session::handler::current_user(call, false);
    let detail = match within_ms(check, budget_ms).await {
        Some(Ok(caller)) => return (caller.user.map(|u| u.user_id), caller.stale_cookie),
        Some(Err(error)) => error.to_string(),
        None => format!("no answer within {budget_ms} ms (RENDER_CONTENT_BUDGET_MS)"),
    };
    log::warn(
        "render: session check failed",
        serde_json::json!({"request_id": call.request_id, "detail": detail}),
    );
    (None, None)
}

/// A text value from KV of at most `max_bytes` (the cap fragments from the origin have: every value is copied into
/// pages), without a leading byte order mark; a read error, an over-size or non-UTF-8 value is logged (with the
/// page's `request_id`) and treated as absent (content is optional, the page renders).
async fn kv_text(kv: &KvStore, key: &str, max_bytes: u32, request_id: &str) -> Option<String> {
    let read = async {
        let stream = kv.get(key).stream().await.map_err(|e| e.to_string())?;
        let Some(stream) = stream else {
            return Ok(None);
        };
        let bytes = read_stream_capped(stream, u64::from(max_bytes))
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => {
                    format!("larger than {max_bytes} bytes (RENDER_MAX_FRAGMENT_BYTES)")
                }
                ReadError::Failed(detail) => detail,
            })?;
        crate::body::utf8_text(bytes)
            .map(Some)
            .map_err(|_| "not UTF-8".to_owned())
    };
    read.await.unwrap_or_else(|error| {
        log::warn(
            "content_kv_read_failed",
            serde_json::json!({"key": keys::logged(key), "detail": error, "request_id": request_id}),
        );
        None
    })
}

/// Whether a fragment has no markup at all (whitespace only, Unicode's included).
fn blank(markup: &str) -> bool {
    markup.trim().is_empty()
}

/// The reads before a page's headers: each from `CONTENT_KV`, within `budget_ms` and `max_bytes`; what goes wrong
/// is logged with the page's `request_id`.
struct Content<'a> {
    kv: &'a KvStore,
    budget_ms: u64,
    max_bytes: u32,
    request_id: &'a str,
}

impl Content<'_> {
    /// [`kv_text`] within the budget: a read taking longer is logged and treated as absent.
    async fn text(&self, key: &str) -> Option<String> {
        let read = kv_text(self.kv, key, self.max_bytes, self.request_id);
        within_ms(read, self.budget_ms).await.unwrap_or_else(|| {
            log::warn(
                "content_kv_slow",
                serde_json::json!({"key": keys::logged(key), "budget_ms": self.budget_ms,
                        "request_id": self.request_id}),
            );
            None
        })
    }

    /// A JSON document; absent, late, unreadable or malformed gives the default (and a log line for the last
    /// three). The malformed line says where and why, never what: serde_json's own message quotes the value it
    /// met (`invalid type: string "…"`), which wrote a visitor's stored display name — or the whole of a value up
    /// to `RENDER_MAX_FRAGMENT_BYTES`, on every page that read it — into the logs.
    async fn json<T: DeserializeOwned + Default>(&self, key: &str) -> T {
        let Some(text) = self.text(key).await else {
            return T::default();
        };
        serde_json::from_str(&text).unwrap_or_else(|e| {
            log::warn(
                "content_kv_malformed",
                serde_json::json!({"key": keys::logged(key), "detail": crate::body::strip_input(&e),
                    "line": e.line(), "column": e.column(), "request_id": self.request_id}),
            );
            T::default()
        })
    }
}

pub async fn page(call: Call) -> ApiResult<Response> {
    let isolate = call.isolate.clone();
    let config = &isolate.config.render;
    let page = config
        .page(call.params.get("page").map(String::as_str))
        .ok_or_else(|| ApiError::not_found("no such page"))?
        .clone();
    let mode = mode(&call.req)?;
    let budget_ms = u64::from(config.content_budget_ms);
    if let Some(answered) = preconditions(&call.req)? {
        // A 304 stands for the page a 200 would send, so a dead session cookie is cleared on it as on the 200 (and
        // the HEAD): a 304 may carry Set-Cookie (RFC 9110 §15.4.5 limits only representation metadata), and a kept
        // one would be sent again until a 200 cleared it. A visitor with no cookie is given no id: no page is shown,
        // so no variant is drawn for it (as for a HEAD). Nothing else is read.
        let (_, clear_session) = session_user(&call, budget_ms).await;
        if let Some(clear) = &clear_session {
            answered
                .headers()
                .append("set-cookie", clear)
                .or_internal("setting a page header")?;
        }
        return Ok(answered);
    }
    // A HEAD gets the page's headers and no body (which the runtime would drop): no slot is loaded (no fragment
    // read, origin fetch or write-back), nor the critical CSS and catalog, which only the body shows. Its headers
    // are the GET's (RFC 9110 §9.3.2), so it reads what they come from: the session check (the user picks the
    // preferences and the variant; a dead cookie is cleared), the manifest (`Link`), flags (`x-variant`),
    // preferences and geo (`Content-Language`, `x-locale-source`, `x-country`).
    let head = call.method == "HEAD";
    let (user_id, clear_session) = session_user(&call, budget_ms).await;

    let header = |name: &str| call.req.headers().get(name).ok().flatten();
    let Identity {
        prefs_key,
        subject,
        set_cookie,
    } = variant::identify(
        user_id.as_deref(),
        header("cookie").as_deref(),
        &config.visitor_cookie,
        random_bytes(),
    );

    let kv = call
        .env
        .kv(bindings::CONTENT_KV)
        .or_internal("opening CONTENT_KV")?;
    let content = Content {
        kv: &kv,
        budget_ms,
        max_bytes: config.max_fragment_bytes,
        request_id: &call.request_id,
    };
    let manifest_key = keys::manifest(&page.page_type);
    // A HEAD from a visitor given no id is told no variant (below): the flags would only pick one for nothing.
    let minted = set_cookie.is_some();
    let (css, manifest, flags, prefs, geo, catalog) = futures_util::join!(
        async {
            if head {
                None
            } else {
                content.text(keys::CRITICAL_CSS).await
            }
        },
        content.json::<Manifest>(&manifest_key),
        async {
            if head && minted {
                Flags::default()
            } else {
                content.json::<Flags>(keys::FLAGS).await
            }
        },
        async {
            match &prefs_key {
                Some(key) => content.json::<Preferences>(key).await,
                None => Preferences::default(),
            }
        },
        content.json::<Geo>(keys::GEO),
        async {
            if head {
                Catalog::default()
            } else {
                content.json::<Catalog>(keys::CATALOG).await
            }
        },
    );
    for skipped in &catalog.skipped {
        log::warn(
            "content_kv_product_skipped",
            serde_json::json!({"key": keys::CATALOG, "index": skipped.index, "sku": skipped.sku,
                "detail": skipped.error, "request_id": call.request_id}),
        );
    }
    if catalog.skipped_total > catalog.skipped.len() {
        // Past the first few, only counted: one line a page, not one per bad product per page.
        log::warn(
            "content_kv_products_skipped",
            serde_json::json!({"key": keys::CATALOG, "skipped": catalog.skipped_total,
                "logged": catalog.skipped.len(), "request_id": call.request_id}),
        );
    }

    // One line a page for each document's members left out, naming the first (where and why, as the catalog's do).
    let skips = [
        (
            "content_kv_resources_skipped",
            manifest
                .skipped
                .line(keys::logged(&manifest_key), "index", &call.request_id),
        ),
        (
            "content_kv_features_skipped",
            flags
                .features
                .skipped
                .line(keys::FLAGS, "feature", &call.request_id),
        ),
        (
            "content_kv_experiment_skipped",
            flags
                .experiment_skipped
                .line(keys::FLAGS, "member", &call.request_id),
        ),
        (
            "content_kv_preferences_skipped",
            prefs_key.as_deref().and_then(|key| {
                prefs
                    .skipped
                    .line(keys::logged(key), "field", &call.request_id)
            }),
        ),
    ];
    for (event, line) in skips {
        if let Some(line) = line {
            log::warn(event, line);
        }
    }

    let country = personal::country(
        respond::cf_string(call.req.inner(), "country").as_deref(),
        &geo,
    );
    let currency = personal::currency(&country, &geo);
    let accept_language = header("accept-language");
    let (locale, locale_source) = personal::choose_locale(
        &prefs,
        accept_language.as_deref(),
        &country,
        &geo,
        &config.default_locale,
    );
    let chosen = variant::assign(&flags, &subject);
    let link = hints::link_header(&manifest);
    // The CSP nonce: fresh per response (RENDER_CSP's `{nonce}`), on the one inline element the page writes.
    let nonce = hex::encode(random_bytes());
    let headers = Headers::new();
    let set = |name: &str, value: &str| {
        headers
            .set(name, value)
            .or_internal("setting a page header")
    };
    set("content-type", "text/html; charset=utf-8")?;
    set("cache-control", "private, no-store")?;
    if let Some(csp) = &config.csp {
        set(
            "content-security-policy",
            &csp.replace(NONCE_PLACEHOLDER, &nonce),
        )?;
    }
    set("content-language", locale)?;
    set("x-locale-source", locale_source.as_str())?;
    set("x-country", &country)?;
    // Browsers send `ECT` (effective connection type, read for the slow-connection trim) only when asked.
    set("accept-ch", "ECT")?;
    // A visitor without a cookie who only asks HEAD is given no id (the page is never shown to them): no cookie,
    // and no variant, which would be drawn for an id thrown away (their GET draws again).
    if let Some(v) = chosen.filter(|_| !(head && minted)) {
        set("x-variant", &v.name)?;
    }
    if let Some(link) = &link {
        set("link", link)?;
    }
    if let Some(cookie) = set_cookie.as_ref().filter(|_| !head) {
        set("set-cookie", cookie)?;
    }
    if let Some(clear) = &clear_session {
        headers
            .append("set-cookie", clear)
            .or_internal("setting a page header")?;
    }

    if mode == Mode::Stream {
        // The runtime's gzip/brotli encoder holds a streamed (non-SSE) body until it ends, which would turn the
        // stream back into one late chunk (measured under workerd; cloudflare/workerd#7390 flushes only SSE).
        // An explicit identity encoding keeps each chunk flowing; the cost is an uncompressed page. Said on a HEAD
        // too: without it the runtime labelled the HEAD's empty answer with the encoding it would have compressed
        // with (`gzip`), and a HEAD told another `Content-Encoding` than its GET.
        set("content-encoding", "identity")?;
    }

    if head {
        return Ok(Response::empty()
            .or_internal("building the page's headers")?
            .with_headers(headers));
    }

    // Only the body shows these: a HEAD returned above without building them.
    let slow = hints::is_slow_connection(header("ect").as_deref(), header("save-data").as_deref());
    let preloads = hints::later_preloads(&manifest, slow);

    let shell = templates::shell(&Shell {
        locale,
        title: &page.title,
        critical_css: css.as_deref().unwrap_or(""),
        nonce: &nonce,
        variant: chosen.map(|v| v.name.as_str()),
        preloads: &preloads,
    });
    let offers = templates::offers(&Offers {
        locale,
        country: &country,
        currency: &currency,
        default_currency: &geo.default_currency,
        display_name: prefs.display_name.as_deref(),
        variant: chosen,
        shipping_banner: flags.enabled("shipping_banner"),
        products: &catalog.products,
    });
    // A product priced neither in the visitor's currency nor the default one is left off this page (the offers
    // cannot show it): said once a page, naming the first, as the catalog's skipped products are.
    if let Some((first, count)) = offers.unpriced {
        let sku: String = first.sku.chars().take(personal::MAX_LOGGED_SKU).collect();
        log::warn(
            "content_kv_products_unpriced",
            serde_json::json!({"key": keys::CATALOG, "currency": currency,
                "default_currency": geo.default_currency, "sku": sku, "count": count,
                "request_id": call.request_id}),
        );
    }
    let offers = offers.html;

    // Drawn once a page: every fragment fetch of one page is in its trace (each with a span id of its own).
    let trace = Rc::new(call.origin_trace());
    let (started_ms, log_success) = (call.started_ms, call.log_success);
    let ctx = Rc::new(call.ctx);
    let request_id: Rc<str> = call.request_id.into();
    let slots: Vec<LocalBoxFuture<'static, Html>> = page
        .slots
        .iter()
        .map(|slot| match slot {
            Slot::Offers => future::ready(offers.clone()).boxed_local(),
            Slot::Fragment(name) => {
                let spec = config
                    .fragments
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| FragmentSpec {
                        ttl_s: 60,
                        budget_ms: 1,
                        fallback: String::new(),
                    });
                load_fragment(Fragment {
                    kv: kv.clone(),
                    ctx: ctx.clone(),
                    url: config.fragment_url(name),
                    name: name.clone(),
                    spec,
                    request_id: request_id.clone(),
                    trace: trace.clone(),
                    log_success,
                    timeout_ms: config.origin_timeout_ms,
                    max_bytes: config.max_fragment_bytes,
                })
                .boxed_local()
            }
        })
        .collect();
    let chunks = page_stream(shell, slots, templates::tail());

    let response = match mode {
        Mode::Stream => {
            // The request's log line is written when the headers go out; this one when the body has (or has not).
            let ended =
                move |completed| stream_ended(&request_id, started_ms, completed, log_success);
            let body = on_end(chunks, ended);
            Response::from_stream(body.map(|html| Ok::<_, worker::Error>(html.into_bytes())))
                .or_internal("starting the page stream")?
        }
        Mode::Whole => {
            let parts: Vec<Html> = chunks.collect().await;
            let mut body = Vec::new();
            for part in parts {
                body.extend(part.into_bytes());
            }
            Response::from_bytes(body).or_internal("building the page")?
        }
    };
    Ok(response.with_headers(headers))
}

/// A streamed page's second log line, `page_stream_end`: the request's `duration_ms` counts to the headers, this
/// one to the body's last chunk. `completed: false` (at `warn`, always written) when the runtime dropped the body
/// before its end. A client that disconnects is not such a case: workerd then stops reading the body without
/// cancelling it (seen under Miniflare, with or without a `waitUntil` holding the request open), so the page never
/// learns of it — a request line without its `page_stream_end` is a page the client left. A completed page's line
/// follows the request line's sampling (`REQUEST_LOG_PERCENT`).
fn stream_ended(request_id: &str, started_ms: u64, completed: bool, log_success: bool) {
    if completed && !log_success {
        return;
    }
    let level = if completed { Level::Info } else { Level::Warn };
    log::write(
        level,
        "page_stream_end",
        serde_json::json!({"request_id": request_id, "completed": completed,
            "duration_ms": respond::now_ms().saturating_sub(started_ms)}),
    );
}

/// Everything one fragment's future owns (it outlives the handler: it runs while the body streams).
struct Fragment {
    kv: KvStore,
    ctx: Rc<Context>,
    url: String,
    name: String,
    spec: FragmentSpec,
    request_id: Rc<str>,
    /// The page's trace, which each origin fetch continues (`Call::origin_trace`).
    trace: Rc<OriginTrace>,
    /// Whether this page's successes are logged (`REQUEST_LOG_PERCENT`): a fragment kept out of KV as the origin
    /// asked is one, on every page that fetches it.
    log_success: bool,
    /// `RENDER_ORIGIN_TIMEOUT_MS` and `RENDER_MAX_FRAGMENT_BYTES`.
    timeout_ms: u32,
    max_bytes: u32,
}

/// The fragment within its budget, else its fallback (logged with the reason).
async fn load_fragment(f: Fragment) -> Html {
    let timer = Delay::from(Duration::from_millis(f.spec.budget_ms));
    let (html, miss) = within_budget(fetch_fragment(&f), timer, f.spec.fallback_html()).await;
    if let Some(miss) = miss {
        let reason = match miss {
            Miss::Failed(reason) => reason,
            Miss::OverBudget => format!("over its {} ms budget", f.spec.budget_ms),
        };
        log::warn(
            "fragment_fallback",
            serde_json::json!({"fragment": f.name, "detail": reason, "request_id": &*f.request_id}),
        );
    }
    html
}

/// How long a fragment's write-back to KV may keep its fetch claimed.
const WRITE_BACK_LIMIT_MS: u64 = 5_000;

/// An origin fetch's outcome as the pages that waited on it see it: the markup, or `None` when the origin said it
/// was chosen for that one fetch (`freshness::for_one_fetch`: private, no-store, …) — each waiting page then asks for
/// its own, as no shared cache may hand it to them — or why the fetch failed.
type Shared = Result<Option<String>, String>;

thread_local! {
    /// Fragment origin fetches in progress in this isolate, by KV key: concurrent misses wait for the same one
    /// (`entry::coalesce`).
    static FRAGMENT_FETCHES: InFlight<Shared> = RefCell::new(HashMap::new());
}

/// KV first; on a miss the origin — once per isolate for concurrent misses of one fragment: the others wait for
/// that fetch within their own budgets. The origin fetch runs under `waitUntil`, detached from the page: the page
/// waits for it only within the fragment's budget, while a 200 answer, even a late one, is written back to KV with
/// the fragment's TTL, so a slow origin is asked once and the next visitors get the fragment from KV.
async fn fetch_fragment(f: &Fragment) -> Result<Html, String> {
    let key = keys::fragment(&f.name);
    // An empty value is a miss, as an empty origin answer is refused (by the same test: one is never written back
    // to be missed on every page).
    if let Some(markup) = kv_text(&f.kv, &key, f.max_bytes, &f.request_id)
        .await
        .filter(|m| !blank(m))
    {
        return Ok(Html::trusted(markup, TrustedSource::Fragment));
    }
    // No await between the KV miss and the claim: of concurrent misses exactly one leads.
    // The wait has no budget of its own: the fragment's budget ends it (within_budget drops this future).
    if let Some(slot) = coalesce::in_progress(&FRAGMENT_FETCHES, &key) {
        let shared = coalesce::wait(&FRAGMENT_FETCHES, &key, &slot, None)
            .await
            .unwrap_or_else(|| {
                Err("the origin fetch this page waited on was abandoned".to_owned())
            })?;
        if let Some(markup) = shared {
            return Ok(Html::trusted(markup, TrustedSource::Fragment));
        }
        // The answer was for the page that asked alone: this page asks for its own (within its budget, which ends
        // this future), uncoalesced and not written back — the next miss leads anew.
        let (markup, _, _) = fetch_origin(
            &f.url,
            f.timeout_ms,
            f.max_bytes,
            f.spec.ttl_s,
            &f.request_id,
            &f.trace,
        )
        .await?;
        return Ok(Html::trusted(markup, TrustedSource::Fragment));
    }
    // Held until the answer is written back to KV, so a page arriving in between waits rather than asks again —
    // but no longer than the fetch may take (its `timeout_ms` bounds headers and body) and a second, then than the
    // write-back may (`WRITE_BACK_LIMIT_MS`) and a second: the lead runs
    // in `waitUntil`, which the runtime may cancel without dropping it, and a claim that never lapsed would hold
    // every later page of this isolate to its fragment's fallback.
    let lead = Lead::claim_at(
        &FRAGMENT_FETCHES,
        &key,
        respond::now_ms(),
        coalesce::hold_ms(u64::from(f.timeout_ms)),
    );
    let (answer, answered) = oneshot::channel::<Result<String, String>>();
    let (kv, url, ttl) = (f.kv.clone(), f.url.clone(), f.spec.ttl_s);
    let (timeout_ms, max_bytes, name) = (f.timeout_ms, f.max_bytes, f.name.clone());
    let (request_id, trace, log_success) = (f.request_id.clone(), f.trace.clone(), f.log_success);
    f.ctx.wait_until(async move {
        let fetched = fetch_origin(&url, timeout_ms, max_bytes, ttl, &request_id, &trace).await;
        if let Err(reason) = &fetched {
            // Said here too: the page may have stopped waiting, and then no one else hears of it.
            log::warn(
                "fragment_origin_failed",
                serde_json::json!({"fragment": name, "detail": reason, "request_id": &*request_id}),
            );
        }
        let (fetched, write_back, shared) = match fetched {
            Ok((markup, write_back, for_one_fetch)) => {
                let shared = Ok(for_one_fetch.is_none().then(|| markup.clone()));
                (Ok(markup), Some(write_back), shared)
            }
            Err(reason) => (Err(reason.clone()), None, Err(reason)),
        };
        let markup = fetched.as_ref().ok().cloned();
        // The claim now lasts through the write-back (bounded below): lapsing at the fetch's own bound, it let a page
        // arriving while KV was slow to take the answer ask the origin again.
        lead.publish_at(
            shared,
            respond::now_ms(),
            coalesce::hold_ms(WRITE_BACK_LIMIT_MS),
        );
        // The page may have stopped waiting (budget spent); the write-back happens regardless.
        let _ = answer.send(fetched);
        let (Some(markup), Some(write_back)) = (markup, write_back) else {
            return;
        };
        // The origin's caching word binds KV, a shared cache (`freshness`): shown on this page, not stored. Not a
        // failure but the origin's choice, met on every page that fetches the fragment: sampled as successes are.
        let ttl = match write_back {
            Ok(ttl) => ttl,
            Err(_) if !log_success => return,
            Err(reason) => {
                log::write(
                    Level::Info,
                    "fragment_not_written_back",
                    serde_json::json!({"fragment": name, "detail": reason, "request_id": &*request_id}),
                );
                return;
            }
        };
        // Bounded: the claim (which hands this answer to pages arriving meanwhile) must end even if KV stalls.
        let put = async {
            match kv.put(&key, markup) {
                Ok(put) => put.expiration_ttl(ttl).execute().await,
                Err(e) => Err(e),
            }
            .map_err(|e| e.to_string())
        };
        let written = within_ms(put, WRITE_BACK_LIMIT_MS)
            .await
            .unwrap_or_else(|| Err(format!("no answer within {WRITE_BACK_LIMIT_MS} ms")));
        if let Err(e) = written {
            log::warn(
                "fragment_write_back_failed",
                serde_json::json!({"key": key, "detail": e, "request_id": &*request_id}),
            );
        }
        drop(lead);
    });
    let markup = answered
        .await
        .map_err(|_| "origin fetch abandoned".to_owned())??;
    Ok(Html::trusted(markup, TrustedSource::Fragment))
}

/// The fragment's markup from the origin: a direct (not redirected) 200 `text/html` answer's non-empty UTF-8 body
/// (no `charset` other than UTF-8's, but for an all-ASCII body in a charset that extends ASCII)
/// of at most `max_bytes`, read within `timeout_ms` (the runtime's timer aborts headers and body alike); anything
/// else is an error, and nothing of it is written back — fragments are trusted as the operator's own markup, so
/// only the configured origin's own answers are taken (a redirect could lead anywhere), and an empty answer is not
/// cached in place of the fallback. Read straight from the runtime's stream, so a body cut off mid-way is an
/// error, never a shorter fragment. With it: the TTL to write it back with, or why not, and why it may go to no
/// other page, if the origin said so (`freshness::for_one_fetch`).
async fn fetch_origin(
    url: &str,
    timeout_ms: u32,
    max_bytes: u32,
    ttl_s: u64,
    request_id: &str,
    trace: &OriginTrace,
) -> Result<(String, Result<u64, String>, Option<String>), String> {
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(timeout_ms)));
    init.set_redirect(web_sys::RequestRedirect::Manual);
    // The page's request id and trace, so the origin's logs and traces line up with the page that asked.
    let headers = web_sys::Headers::new().map_err(|e| js_message(&e))?;
    let fields = std::iter::once(("x-request-id", request_id.to_owned()))
        .chain(trace.fields(respond::span_random()));
    for (name, value) in fields {
        headers.set(name, &value).map_err(|e| js_message(&e))?;
    }
    init.set_headers(headers.as_ref());
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let response: web_sys::Response = JsFuture::from(global.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("origin unreachable: {}", js_message(&e)))?
        .dyn_into()
        .map_err(|_| "origin answered without a response".to_owned())?;
    if response.status() != 200 {
        return Err(format!("origin answered {}", response.status()));
    }
    let field = |name: &str| response.headers().get(name).ok().flatten();
    let (for_one_fetch, write_back) = freshness::reuse(field, ttl_s, MIN_TTL_S);
    let content_type = response.headers().get("content-type").ok().flatten();
    if content_type.as_deref().map(crate::body::media_type) != Some("text/html".to_owned()) {
        // Named as sent: `{:?}` wrote Rust's `Some("application/xhtml+xml")` into the log line.
        return Err(match content_type.as_deref().map(str::trim) {
            None | Some("") => "origin answered no Content-Type, not text/html".to_owned(),
            Some(sent) => format!("origin answered {sent}, not text/html"),
        });
    }
    // Bytes still in a coding are no markup: such a coding's output may be valid UTF-8 (and was taken, and written
    // back), or was refused as "not UTF-8", which named the wrong cause.
    let coding = response.headers().get("content-encoding").ok().flatten();
    if !crate::body::runtime_decoded(coding.as_deref()) {
        return Err(format!(
            "origin answered Content-Encoding {}, which the runtime does not decode",
            coding.as_deref().unwrap_or_default().trim()
        ));
    }
    // The page is UTF-8: a fragment the origin says is in another charset is not taken as UTF-8 bytes (UTF-16 of
    // ASCII markup is valid UTF-8, a NUL before every character, and was written into pages and back to KV) — unless
    // the charset extends ASCII and the body is all ASCII, which reads the same either way (a servlet container's
    // `charset=ISO-8859-1` on plain markup).
    let charset = content_type
        .as_deref()
        .and_then(crate::body::non_utf8_charset);
    if let Some(charset) = charset.filter(|c| !crate::body::extends_ascii(c)) {
        return Err(format!("fragment is in charset {charset}, not UTF-8"));
    }
    let Some(body) = response.body() else {
        return Err("origin answered an empty fragment".to_owned());
    };
    let bytes = read_stream_capped(body, u64::from(max_bytes))
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => format!("fragment larger than {max_bytes} bytes"),
            ReadError::Failed(detail) => format!("origin body unreadable: {detail}"),
        })?;
    if let Some(charset) = charset.filter(|_| !bytes.is_ascii()) {
        return Err(format!(
            "fragment is in charset {charset}, not UTF-8, and not all ASCII"
        ));
    }
    let markup = crate::body::utf8_text(bytes).map_err(|_| "fragment is not UTF-8".to_owned())?;
    if blank(&markup) {
        return Err("origin answered an empty fragment".to_owned());
    }
    Ok((markup, write_back, for_one_fetch))
}
