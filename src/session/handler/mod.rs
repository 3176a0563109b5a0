//! Runtime side of sessions: the `/auth/*` routes and [`current_user`], the session check other capabilities call.
//!
//! Check order: cookie → KV cache entry (trusted only while fresh, see `record`) → D1 on a miss. Strict checks
//! skip KV and read D1 every time. Last-seen and the sliding expiry are written at most once per
//! `SESSION_TOUCH_SECS`, after the response, through `waitUntil`.

mod kdf;
mod store;

pub use store::age_failed_bookmarks;

use serde::Serialize;
use serde_json::json;
use worker::Response;

use self::store::{FamilyEnd, NewSession, Retired, Store};
use crate::entry::body::{drain, read_json};
use crate::entry::respond::{json, with_appended_header, with_header};
use crate::entry::{log, Call};
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::gateway::request_url::RequestUrl;
use crate::observability::log::Level;
use crate::ratelimit::handler as ratelimit;
use crate::ratelimit::headers::RateLimitHeaders;
use crate::session::credentials::{Credentials, Form, LoginBody};
use crate::session::origin_check::{self, Provenance};
use crate::session::password::PasswordHash;
use crate::session::record::{
    decide_cached, expiry, CacheDecision, CacheEntry, SessionRecord, Status,
};
use crate::session::token::{self, CookieToken};
use crate::session::{bookmark, device, jwt, SessionUser};

/// Longest user agent stored with a session.
const MAX_USER_AGENT: usize = 256;

/// Who is calling, from the session cookie: no user for a missing, garbled, unknown, expired or revoked session.
/// `strict` reads D1 every time (for sensitive routes); otherwise a fresh KV cache entry answers.
pub async fn current_user(call: &Call, strict: bool) -> ApiResult<Caller> {
    let store = Store::open(call, strict)?;
    Ok(match check(call, &store, strict).await? {
        Checked::Unavailable(error) => return Err(error),
        Checked::Valid { record, id } => Caller {
            user: Some(record.user()),
            session: Some(id),
            stale_cookie: None,
            rotated: false,
        },
        Checked::Refused(_) => Caller {
            user: None,
            session: None,
            stale_cookie: Some(token::clear_cookie(
                &call.isolate.config.session.cookie_name,
            )),
            rotated: false,
        },
        Checked::Rotated => Caller {
            user: None,
            session: None,
            stale_cookie: None,
            rotated: true,
        },
        Checked::Missing | Checked::Malformed | Checked::Unconfirmed(_) => Caller {
            user: None,
            session: None,
            stale_cookie: None,
            rotated: false,
        },
    })
}

/// What [`current_user`] found: the user, or none — and then whether the answer should clear the session cookie.
/// Kept, a cookie naming no live session is sent with every request, and each of them pays the check's D1 reads and
/// its count against the address's budget of unknown credentials ([`credential_budget`]) — an honest browser whose
/// session expired or was ended elsewhere paid both on every page until the cookie's own `Max-Age` ran out.
pub struct Caller {
    pub user: Option<SessionUser>,
    /// The id of the session that signed the user in (with `user`): what a room ticket is tied to.
    pub session: Option<String>,
    /// `Set-Cookie` removing the session cookie, when it held a well-formed token of no live session — never for a
    /// token a concurrent refresh has just retired (the browser is taking the new one, which a clear arriving after
    /// would remove) or for a garbled value (it costs no read, and may be a planted second value beside the user's).
    pub stale_cookie: Option<String>,
    /// The cookie held a token a concurrent refresh has just rotated, into a session that lives: a route that needs
    /// the user answers 401 `session_rotated` with `Retry-After: 1`, as `/auth/*` does, so a front end retries with
    /// the cookie that refresh set (told `session_required`, it signed the user out of a live session).
    pub rotated: bool,
}

impl Caller {
    /// The user, or 401 `session_required` with `message` — clearing a stale cookie — or `session_rotated`.
    pub fn required(self, message: &'static str) -> ApiResult<SessionUser> {
        self.required_session(message).map(|(user, _)| user)
    }

    /// The user and the id of their session, or 401 as [`Caller::required`] (`session_rotated` for a token a
    /// concurrent refresh has just rotated).
    pub fn required_session(self, message: &'static str) -> ApiResult<(SessionUser, String)> {
        match (self.user.zip(self.session), self.stale_cookie) {
            (Some(user), _) => Ok(user),
            (None, None) if self.rotated => Err(rotated()),
            (None, None) => Err(session_required(message)),
            (None, Some(clear)) => Err(session_required(message).with_header("set-cookie", clear)),
        }
    }
}

/// What a session check found; the refusals are told apart only in logs, but for a token another request has just
/// rotated, which the client may retry with the cookie that request set.
enum Checked {
    Missing,
    /// A cookie value that cannot be a token: nothing was read for it.
    Malformed,
    /// A well-formed token of no live session.
    Refused(&'static str),
    /// A well-formed token of no session, or of an expired one, in a replica read from the client's bookmark:
    /// refused, but the session may have been created after that bookmark (a login in another tab, whose bookmark
    /// this request did not carry) or its expiry moved on by a touch the replica has not seen, so the cookie is not
    /// cleared — a clear would sign the user out for a replica's lag. (Revocation and the absolute limit never undo.)
    /// Also a token its cache entry says revoked that such a replica holds no retired id for: a refresh leaves that
    /// entry for the token it retired, and a replica that has not seen the rotation cannot tell the token from a
    /// logged-out one — cleared, the refresh's new cookie would go if this answer arrived after it. And any token
    /// whose lookup among retired ids failed ([`refused`]): it too may be one a concurrent refresh retired. And a
    /// session revoked moments ago ([`ended_moments_ago`]): a login that replaced its cookie may have ended it — as
    /// is a token retired within the grace window whose session has ended since ([`detect_reuse`]).
    Unconfirmed(&'static str),
    /// A well-formed token found in no live session whose lookup among retired ids (or the revocation of a reused
    /// token's session) D1 could not make: 503 `session_store_unavailable`, the cookie kept. It may be a token a
    /// concurrent refresh retired (a retry is the answer), and answered 401 `session_invalid` it told the front end
    /// to sign the user out for a D1 hiccup. Counted against the address's budget like the other refusals.
    Unavailable(ApiError),
    Rotated,
    Valid {
        id: String,
        record: SessionRecord,
    },
}

/// 401 `session_required`: a route the session cookie authenticates was called without a session. No
/// `WWW-Authenticate` challenge: cookies have no scheme (a route that also takes a bearer token adds its own).
pub fn session_required(message: &'static str) -> ApiError {
    ApiError::new(401, "session_required", message)
}

/// 401 `session_invalid`: the session is unknown, expired or revoked (`why` is logged only).
fn invalid(why: &'static str) -> ApiError {
    ApiError::new(
        401,
        "session_invalid",
        "the session is not valid; log in again",
    )
    .with_internal(why)
}

/// Why a check refused a session older than `SESSION_MAX_SECS` whose stored expiry was written under a longer
/// setting: without it, such a session passed checks until its next touch, and a refresh rotated it into a session
/// that had already ended (200, a new cookie, `expires_at` in the past).
const PAST_LIMIT: &str = "session past its absolute limit (SESSION_MAX_SECS)";
const EXPIRED_SESSION: &str = "session expired";
const SESSION_REVOKED: &str = "session revoked";

/// 401 `session_rotated`: the token was retired by a concurrent refresh (another tab), whose answer sets the cookie
/// that works — a front end retries once that answer has arrived (`Retry-After: 1`: the winner may still be writing
/// its cache entries) instead of signing the user out; a retry with an unchanged cookie gets the same answer.
fn rotated() -> ApiError {
    ApiError::new(
        401,
        "session_rotated",
        "the session was just refreshed by another request; retry with the current cookie",
    )
    .with_header("retry-after", "1")
}

impl Checked {
    /// The 401 for a refused check: `session_required` without a cookie, `session_invalid` otherwise — clearing a
    /// cookie that names no live session (see [`Caller::stale_cookie`]).
    fn into_user(self, cookie_name: &str) -> ApiResult<(String, SessionRecord)> {
        match self {
            Checked::Valid { id, record } => Ok((id, record)),
            Checked::Missing => Err(session_required("this route needs a session; log in first")),
            Checked::Rotated => Err(rotated()),
            Checked::Malformed => Err(invalid("cookie is not a session token")),
            Checked::Refused(why) => {
                Err(invalid(why).with_header("set-cookie", token::clear_cookie(cookie_name)))
            }
            Checked::Unconfirmed(why) => Err(invalid(why)),
            Checked::Unavailable(error) => Err(error),
        }
    }
}

fn now_ms() -> u64 {
    crate::entry::respond::now_ms()
}

/// Whether the session cookie is one well-formed token: a check of it reads D1.
fn has_token(call: &Call) -> bool {
    matches!(cookie_token(call), CookieToken::Token(_))
}

fn cookie_token(call: &Call) -> CookieToken {
    let header = call.req.headers().get("cookie").ok().flatten();
    token::read_cookie(header.as_deref(), &call.isolate.config.session.cookie_name)
}

/// 403 `cross_origin_refused` for a request another origin's page started (see `origin_check`); callers ask for
/// logins, for state-changing requests that carry a session cookie, and for WebSocket handshakes the gateway
/// proxies with one.
pub fn refuse_cross_origin(call: &Call) -> ApiResult<()> {
    let headers = call.req.headers();
    let sec_fetch_site = headers.get("sec-fetch-site").ok().flatten();
    let origin = headers.get("origin").ok().flatten();
    let url = call.req.inner().url();
    let url = RequestUrl::split(&url);
    let own = format!("{}://{}", url.scheme, url.authority);
    let from = Provenance {
        sec_fetch_site: sec_fetch_site.as_deref(),
        origin: origin.as_deref(),
    };
    origin_check::check(from, &own, &call.isolate.config.session.trusted_origins).map_err(|why| {
        ApiError::forbidden(
            "cross_origin_refused",
            "a session can only be used from this site's own pages (or SESSION_TRUSTED_ORIGINS)",
        )
        .with_internal(why)
    })
}

async fn check(call: &Call, store: &Store, strict: bool) -> ApiResult<Checked> {
    let config = &call.isolate.config.session;
    let token = match cookie_token(call) {
        CookieToken::Missing => return Ok(Checked::Missing),
        CookieToken::Garbled => return Ok(Checked::Malformed),
        CookieToken::Token(token) => token,
    };
    if !origin_check::is_safe_method(&call.method) {
        refuse_cross_origin(call)?;
    }
    let id = token::session_id(&token);
    let now = now_ms();
    let max_ms = config.max_secs * 1000;
    let mut revoked_in_cache = None;
    if !strict && config.cache_secs > 0 {
        match decide_cached(
            store.cached(&id).await.as_deref(),
            now,
            config.cache_secs * 1000,
            config.idle_secs * 1000,
        ) {
            CacheDecision::Accept(record) if record.past_limit(now, max_ms) => {
                return Ok(Checked::Refused(PAST_LIMIT))
            }
            CacheDecision::Accept(record) => {
                schedule_touch(call, &id, &record, now);
                return Ok(Checked::Valid { id, record });
            }
            CacheDecision::Refuse { revoked_at } => revoked_in_cache = Some(revoked_at),
            CacheDecision::AskD1 => {}
        }
    }
    // A cached check that reads D1 and finds no live session spends the address's budget of unknown credentials
    // ([`credential_budget`]); a strict one is limited by its route instead (`limited`), before any work. Such a
    // check costs up to two D1 reads (the session, then the retired tokens for reuse detection) for any well-formed
    // cookie, made up or not, and pages, room tickets and gateway routes make one for every request that carries
    // one: counted, a client inventing cookies is held to the policy's rate of D1 work, while signed-in users, whose
    // checks find their session, never count or wait on the limiter.
    let budget = if strict {
        None
    } else {
        credential_budget(call)?
    };
    let checked = if let Some(revoked_at) = revoked_in_cache {
        let why = "session revoked (cache)";
        refused(call, store, &id, now, why, Some(revoked_at)).await
    } else {
        check_at_d1(call, store, id, now, strict).await
    };
    // One policy: a check counts once its cookie was shown to name no live session — by D1's answer or by a fresh
    // revocation entry — whatever failed after (`Unavailable`: the lookup among retired ids). A check whose session
    // read D1 failed (here an `Err`) was shown nothing, and is not counted: in an outage every cookie's read fails,
    // a signed-in user's whose entry lapsed as a made-up one's, and counted, an address's honest checks (a busy NAT's)
    // spent its budget and were answered 429 before any read for the rest of the window after D1 was back. A made-up
    // cookie then costs the failed read (two at most, [`Store::read`]) and gets a 503 that tells it nothing; an
    // address already over the budget is still refused before reading, and once D1 answers it is counted again.
    let checked = checked?;
    if let Checked::Refused(_) | Checked::Unconfirmed(_) | Checked::Unavailable(_) = checked {
        count_failed(call, budget);
    }
    Ok(checked)
}

/// The per-address budget (`SESSION_IP_POLICY`) of requests whose credential (a session cookie, a room ticket) costs
/// storage reads to find unknown: its policy and this address's key — or `Err(429)`, before any read, when this
/// isolate already knows the address over it. `None` without the policy, or without a client address (missing or
/// malformed, `crate::client_address`: never on Cloudflare, which sets CF-Connecting-IP). Only failures are counted
/// ([`count_failed`]).
///
/// The key is the address's own under the policy, apart from the one refresh, logout and the session lists spend
/// ([`token::unknown_credentials_key`]): those count every call, a busy NAT's honest ones included, and an address
/// they had taken over the limit was refused here too — every signed-in user behind it whose cache entry had lapsed
/// got 429 from checks, room tickets and joins, and saw pages as anonymous. Only unknown credentials spend this one.
pub fn credential_budget(call: &Call) -> ApiResult<Option<(&str, String)>> {
    let Some(policy) = call.isolate.config.session.session_ip_policy.as_deref() else {
        return Ok(None);
    };
    let Ok(address) = ratelimit::resolve_key(call, policy, None, "/auth/session") else {
        return Ok(None);
    };
    let key = token::unknown_credentials_key(&address);
    ratelimit::refused_here(call, policy, &key)?;
    Ok(Some((policy, key)))
}

/// Counts a credential found unknown against its address's budget ([`credential_budget`]), after the response
/// (`ctx.wait_until`): the request's answer stays what it was and does not wait on the limiter; an address over the
/// limit is refused by the next such request this isolate sees once the count has landed, before reading.
pub fn count_failed(call: &Call, budget: Option<(&str, String)>) {
    if let Some((policy, key)) = budget {
        ratelimit::count_after_response(call, policy, key);
    }
}

/// The part of [`check`] that reads D1: the session `id` names, and the cache fill of a cached check.
async fn check_at_d1(
    call: &Call,
    store: &Store,
    id: String,
    now: u64,
    strict: bool,
) -> ApiResult<Checked> {
    let config = &call.isolate.config.session;
    let max_ms = config.max_secs * 1000;
    let Some(record) = store.session(&id).await? else {
        return refused(call, store, &id, now, "unknown session", None).await;
    };
    match record.status(now, config.idle_secs * 1000) {
        Status::Revoked if ended_moments_ago(call, record.revoked_at, now) => {
            return Ok(Checked::Unconfirmed(SESSION_REVOKED))
        }
        Status::Revoked => return Ok(Checked::Refused(SESSION_REVOKED)),
        // A replica behind the client's bookmark may not have seen a touch that moved the expiry on.
        Status::Expired if store.may_lag() => return Ok(Checked::Unconfirmed(EXPIRED_SESSION)),
        Status::Expired => return Ok(Checked::Refused(EXPIRED_SESSION)),
        Status::Active if record.past_limit(now, max_ms) => {
            return Ok(Checked::Refused(PAST_LIMIT))
        }
        Status::Active => {}
    }
    // Only a cached check fills the cache: a strict one is a refresh (about to retire this id) or a listing, and a
    // fill from it could land after the rotation it precedes.
    if !schedule_touch(call, &id, &record, now) && !strict && config.cache_secs > 0 {
        let entry = CacheEntry::new(record.clone(), now, config.cache_secs);
        let (env, key_id, cache_secs) = (call.env.clone(), id.clone(), config.cache_secs);
        let request_id = call.request_id.clone();
        call.ctx.wait_until(async move {
            let fill = store::fill_cache(env, &key_id, &entry, cache_secs, request_id.clone());
            if let Err(e) = fill.await {
                log::error(
                    "session_cache_fill_failed",
                    json!({"request_id": request_id, "detail": e.to_string()}),
                );
            }
        });
    }
    Ok(Checked::Valid { id, record })
}

/// The refusal of a token that names no live session — and, when it is one a refresh retired coming back after
/// `SESSION_REUSE_GRACE_SECS`, the revocation of the session it was rotated into: the legitimate holder got the new
/// token, so whoever presents the old one kept a copy (refresh-token reuse detection, OAuth 2.0 Security BCP).
/// Within the grace window it is only refused: a refresh from another tab that lost a concurrent rotation.
async fn refused(
    call: &Call,
    store: &Store,
    id: &str,
    now: u64,
    why: &'static str,
    revoked_at: Option<u64>,
) -> ApiResult<Checked> {
    // A failing lookup or revocation is logged and answered 503 (`Checked::Unavailable`), never a 500 — and never a
    // clear or a 401: a lookup that failed did not learn whether a concurrent refresh retired the token, and cleared,
    // the cookie that refresh is setting would go if this answer arrived after it (signed out for a D1 hiccup).
    match detect_reuse(call, store, id, now).await {
        Ok(Some(checked)) => Ok(checked),
        // Unknown, or revoked by its cache entry, with no retired id found: a replica behind the client's bookmark
        // may lack the session (created after it) or the rotation that retired the token.
        Ok(None) if store.may_lag() || ended_moments_ago(call, revoked_at, now) => {
            Ok(Checked::Unconfirmed(why))
        }
        Ok(None) => Ok(Checked::Refused(why)),
        Err(e) => {
            log::error(
                "session_reuse_check_failed",
                json!({"request_id": call.request_id, "detail": e.to_string(), "refused_for": why}),
            );
            Ok(Checked::Unavailable(e))
        }
    }
}

/// Whether a session was revoked less than `SESSION_REUSE_GRACE_SECS` ago: its cookie is then refused but not
/// cleared. A login ends the session whose cookie it replaces, so a request the browser sent with the old cookie just
/// before (a page's background call beside the login form) is checked after the login and finds it revoked; cleared,
/// the cookie the login set would go if that answer arrived after the login's — signed out right after signing in.
/// Logout and `DELETE /auth/sessions` clear the caller's cookie in their own answer; another holder of a revoked
/// session has it cleared by its first check after the window.
fn ended_moments_ago(call: &Call, revoked_at: Option<u64>, now: u64) -> bool {
    let window_ms = call.isolate.config.session.reuse_grace_secs * 1000;
    revoked_at.is_some_and(|at| now.saturating_sub(at) < window_ms)
}

/// Whether the session a refresh rotated `retired` into still lives: the token is then one a concurrent refresh
/// rotated, worth a retry with the cookie that refresh set; after a logout it is as dead as the session, and a client
/// told to retry would retry until the grace window closed. A failed read is a 503 (`session_store_unavailable`):
/// neither "rotated" (a retry with the same cookie got the same answer, and the front end then signed the user out)
/// nor "ended".
async fn rotation_lives(store: &Store, retired: &Retired, now: u64) -> ApiResult<bool> {
    store.family_live(&retired.family, now).await
}

/// [`refused`]'s lookup: what to answer when `id` is a retired one (and the session was revoked if past the grace).
/// Within the grace a token whose session lives was rotated by a concurrent refresh ([`Checked::Rotated`]); one
/// whose session has ended since is refused without a clear: a rotation needs a live session, so it ended less than
/// the grace ago ([`ended_moments_ago`]'s window) — by a login sent with the new cookie, say, whose own cookie a
/// clear arriving after its answer would remove. Past the grace, the same holds for a token whose session ended less
/// than the grace ago (a login sent with the retired token itself ends the session it became).
async fn detect_reuse(
    call: &Call,
    store: &Store,
    id: &str,
    now: u64,
) -> ApiResult<Option<Checked>> {
    let config = &call.isolate.config.session;
    let Some(retired) = store.retired(id).await? else {
        return Ok(None);
    };
    if now.saturating_sub(retired.retired_at) < config.reuse_grace_secs * 1000 {
        return Ok(Some(if rotation_lives(store, &retired, now).await? {
            Checked::Rotated
        } else {
            Checked::Unconfirmed("retired token of an ended session")
        }));
    }
    // Its session ended moments ago (a login sent with this token, or the one it became, ended it): there is no
    // copy left to stop, and a clear arriving after that login's answer would remove the cookie it set. The retired
    // id is kept, so a later return is refused — and cleared — once the window is over. Decided on the primary with
    // the revocation itself: a replica that has not seen that login's write would otherwise say the session lives.
    let window_ms = config.reuse_grace_secs * 1000;
    let revoked = match store.end_family(&retired.family, now, window_ms).await? {
        FamilyEnd::EndedMomentsAgo => {
            return Ok(Some(Checked::Unconfirmed(
                "retired token of a session ended moments ago",
            )))
        }
        FamilyEnd::Revoked(ids) => ids,
    };
    log::write(
        Level::Warn,
        "session_reuse",
        json!({"revoked_sessions": revoked.len(),
            "retired_ms_ago": now.saturating_sub(retired.retired_at), "request_id": call.request_id}),
    );
    // D1 holds the revocation: a cache write that fails is logged (cached checks may admit the session until its
    // entry's `fresh_until`), and the token is refused all the same.
    mark_revoked_all(
        store,
        &revoked,
        now,
        config.cache_secs,
        Some(&call.request_id),
    )
    .await;
    Ok(Some(Checked::Refused(
        "retired token reused: session revoked",
    )))
}

/// Starts the sliding-expiry write when due (it refreshes the cache entry too); returns whether it did.
fn schedule_touch(call: &Call, id: &str, record: &SessionRecord, now: u64) -> bool {
    let config = &call.isolate.config.session;
    if !record.touch_due(now, config.touch_secs * 1000) {
        return false;
    }
    let expires_at = expiry(
        record.created_at,
        now,
        config.idle_secs * 1000,
        config.max_secs * 1000,
    );
    let (env, id, cache_secs) = (call.env.clone(), id.to_owned(), config.cache_secs);
    let request_id = call.request_id.clone();
    call.ctx.wait_until(async move {
        let touched = store::touch(env, id, now, expires_at, cache_secs, request_id.clone());
        if let Err(e) = touched.await {
            log::error(
                "session_touch_failed",
                json!({"request_id": request_id, "detail": e.to_string()}),
            );
        }
    });
    true
}

/// Adds `x-d1-bookmark` (when D1 gave one) and `cache-control: no-store`.
fn finish(response: Response, store: &Store) -> Response {
    let response = with_header(response, "cache-control", "no-store");
    match store.bookmark() {
        Some(b) => with_header(response, bookmark::HEADER, &b),
        None => response,
    }
}

#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    email: &'a str,
    permissions: &'a [String],
}

fn user_view(record: &SessionRecord) -> UserView<'_> {
    UserView {
        id: &record.user_id,
        email: &record.email,
        permissions: &record.permissions,
    }
}

/// 32 bytes from the runtime's CSPRNG; failure is a 500, never a weaker source.
fn random_token() -> ApiResult<String> {
    let mut bytes = [0u8; token::TOKEN_BYTES];
    getrandom::getrandom(&mut bytes).or_internal("reading random bytes for a session token")?;
    Ok(token::new_token(&bytes))
}

/// The body of a successful login or refresh, and the cookie of the session `token` it started or rotated into
/// (`None`: the session token did not change, and the cookie is left alone).
fn issued(
    call: &Call,
    token: Option<&str>,
    record: &SessionRecord,
    now: u64,
) -> ApiResult<Response> {
    let auth = &call.isolate.config.auth;
    let config = &call.isolate.config.session;
    let key = config
        .signing_key
        .as_ref()
        .ok_or_else(|| ApiError::internal("AUTH_SIGNING_KEY is not set"))?;
    // The access JWT ends with the session at the latest (its idle expiry as D1 holds it now, which the absolute
    // limit caps): the gateway verifies it without D1, so a token outliving the session would keep serving requests
    // for a session that no longer exists. `expires_in` is its `exp` less its `iat`, both in whole seconds; a session
    // ending within the second gets no token (a refresh checks before it rotates).
    // A session older than a lowered SESSION_MAX_SECS may still hold an expiry written under the longer one: a refresh
    // within SESSION_ROTATE_MIN_SECS, which does not rewrite it, must not sign a token past the limit.
    let ends_at = record.ends_at(config.idle_secs * 1000, config.max_secs * 1000);
    let exp_secs = jwt::expiry_secs(now, config.access_ttl_secs, ends_at)
        .ok_or_else(|| ended_at_issue(&config.cookie_name))?;
    let ttl_secs = exp_secs.saturating_sub(now / 1000);
    let access = jwt::issue(
        key,
        &auth.jwt_issuer,
        &auth.jwt_audience,
        &record.user(),
        now,
        exp_secs,
    )
    .map_err(ApiError::internal)?;
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl_secs,
        "user": user_view(record),
        "session": { "expires_at": ends_at },
    });
    let response = json(200, &body)?;
    let Some(token) = token else {
        return Ok(response);
    };
    // The cookie lives as long as the session can (its absolute limit): the idle expiry slides in D1 with use
    // (last-seen), which a Max-Age fixed at login would not follow, so the browser would drop a session still alive.
    let max_age = (record.created_at + config.max_secs * 1000).saturating_sub(now) / 1000;
    Ok(with_header(
        response,
        "set-cookie",
        &token::set_cookie(&config.cookie_name, token, max_age),
    ))
}

/// 401 `session_invalid`, clearing the cookie, for a session that ends within the second an access token would be
/// issued in ([`jwt::expiry_secs`]): a token then would be expired at issue (`expires_in` 0).
fn ended_at_issue(cookie_name: &str) -> ApiError {
    invalid("session ends within the second: no access token")
        .with_header("set-cookie", token::clear_cookie(cookie_name))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        401,
        "invalid_credentials",
        "the email or the password is wrong",
    )
}

/// `s` in the Unicode normalisation form `form`, by the runtime (`String.prototype.normalize`).
fn unicode_form(s: &str, form: Form) -> String {
    String::from(worker::js_sys::JsString::from(s).normalize(form.name()))
}

/// `POST /auth/login`: `{"email","password"}` → session cookie + access JWT. Unknown emails and wrong passwords
/// cost the same KDF work and get the same 401.
pub async fn login(mut call: Call) -> ApiResult<Response> {
    let config = &call.isolate.config.session;
    // A login from another site's page would sign the browser in to the account that page chose. Per client IP
    // before any work; per email (as a hash: no addresses in limiter state) once it is parsed. Refused before its
    // body is read, the body is drained so the client sees the answer rather than a reset connection. A browser
    // holding a device cookie for the email it tries is limited per device instead (see `device`).
    let admitted = match refuse_cross_origin(&call) {
        Ok(()) => ratelimit::limit(&call, &config.login_ip_policy, None, "/auth/login").await,
        Err(refused) => Err(refused),
    };
    let ip_limit = match admitted {
        Ok(limit) => limit,
        Err(refused) => {
            drain(&mut call.req).await;
            return Err(refused);
        }
    };
    // Every answer from here on was counted by login-ip, and once the email's (or device's) limit is asked by that
    // too: each says where the client stands under them (a wrong password's 401, a bad body's 400, a 429 of the
    // email's limit listing login-ip first), as an answer to a counted request does everywhere.
    let mut account_limit = None;
    let answered = attempt(call, &mut account_limit).await;
    let counted: Vec<&RateLimitHeaders> = std::iter::once(&ip_limit)
        .chain(account_limit.as_ref())
        .collect();
    RateLimitHeaders::stamp_all(&counted, answered)
}

/// [`login`] once login-ip counted it: reads the credentials, has the email's limit (or the trusted device's) count
/// it — its headers left in `account_limit`, for the answer — and signs in.
async fn attempt(
    mut call: Call,
    account_limit: &mut Option<RateLimitHeaders>,
) -> ApiResult<Response> {
    let config = &call.isolate.config.session;
    let max = call.isolate.config.core.max_body_bytes;
    // A key given twice is refused (400 invalid_json), not read as its last value: see `LoginBody::from_value`.
    let crate::config::Unique(value) = read_json(&mut call.req, max).await?;
    let body = LoginBody::from_value(value)?;
    let credentials = Credentials::parse(body, unicode_form)?;
    // Who the email is, before its limit: an entry of the browser's device cookie for this account (its email and
    // the salt of its stored password) moves the attempt to the device's own limit. Unknown emails have no entries,
    // and take the same D1 read.
    let store = Store::open(&call, false)?;
    let user = store.user_by_email(&credentials.email).await?;
    let stored = match &user {
        Some(u) => match &u.password {
            Ok(hash) => Some(hash.clone()),
            Err(problem) => {
                log::error(
                    "password_hash_unreadable",
                    json!({"user_id": u.id, "detail": problem.to_string(),
                        "request_id": call.request_id}),
                );
                None
            }
        },
        None => None,
    };
    let cookies = call.req.headers().get("cookie").ok().flatten();
    let device_cookie = &config.device_cookie_name;
    let sent = || token::cookie_values(cookies.as_deref(), device_cookie);
    // Unknown emails (and unreadable hashes) are checked too, against a salt no entry is ever issued for: the same
    // work as a known one whose entries do not verify.
    let password_salt = stored
        .as_ref()
        .map(PasswordHash::salt_b64)
        .unwrap_or_default();
    let account = device::Account {
        email: &credentials.email,
        password_salt: &password_salt,
    };
    let now_secs = now_ms() / 1000;
    let device = config
        .device_key
        .as_ref()
        .and_then(|key| key.trusted(sent(), account, now_secs, config.device_ttl_secs));
    let limit = match device {
        Some(id) => {
            let device_key = format!("device:{id}");
            ratelimit::enforce(&call, &config.login_device_policy, &device_key).await?
        }
        None => {
            let email_key = format!("email:{}", token::sha256_hex(&credentials.email));
            ratelimit::enforce(&call, &config.login_email_policy, &email_key).await?
        }
    };
    *account_limit = Some(limit);

    let stored = stored.unwrap_or_else(|| PasswordHash::dummy(config.pbkdf2_iterations));
    let derived = kdf::pbkdf2_sha256(
        credentials.password.as_bytes(),
        &stored.salt,
        stored.iterations,
    )
    .await?;
    let mut matched = stored.matches(&derived);
    // A hash stored before logins normalised passwords was made from the password as typed: tried second when
    // NFKC changed it (an unknown email takes the same second derivation), and replaced by the normal form's hash
    // once it matched, so the account accepts every spelling from then on.
    let mut matched_as_sent = false;
    if let (false, Some(as_sent)) = (matched, &credentials.password_as_sent) {
        let derived =
            kdf::pbkdf2_sha256(as_sent.as_bytes(), &stored.salt, stored.iterations).await?;
        matched_as_sent = stored.matches(&derived);
        matched = matched_as_sent;
    }
    let user = match user {
        Some(user) if matched && user.password.is_ok() => user,
        // Counted by both limits, as a success is: its answer says how many attempts are left (`login`).
        _ => return Err(invalid_credentials()),
    };
    // Gateway routes will not send this user as X-User-ID (500 there, and the access token below is refused): said
    // here, where the operator can tie it to the account, not first by a gateway route's 500. Pages and rooms still
    // serve the user, so the login goes on.
    if !crate::gateway::jwt::header_value(&user.id) {
        log::error(
            "user id X-User-ID cannot carry",
            json!({"request_id": call.request_id, "user_id": user.id,
                "detail": "users.id is empty or not printable ASCII without surrounding spaces: gateway routes answer this user 500 and refuse its access tokens"}),
        );
    }
    // Checked only now, so bad input still gets its 4xx from a Worker without a key (and no session row is made).
    if config.signing_key.is_none() {
        return Err(ApiError::internal("AUTH_SIGNING_KEY is not set"));
    }
    if stored.iterations < config.pbkdf2_iterations || matched_as_sent {
        let password = credentials.password.clone();
        upgrade_password_later(&call, &user.id, &stored, password, matched_as_sent);
    }

    let now = now_ms();
    let token = random_token()?;
    let id = token::session_id(&token);
    let expires_at = expiry(now, now, config.idle_secs * 1000, config.max_secs * 1000);
    let user_agent = call
        .req
        .headers()
        .get("user-agent")
        .ok()
        .flatten()
        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>());
    // The client's address as it is named everywhere (`client_address`): canonical, none when malformed.
    let ip = call
        .client_address()
        .map(|client| client.named().to_string());
    // The session the browser held before (its cookie is replaced by this answer's) ends, in the transaction that
    // starts the new one: a new authentication starts a new session, never beside a live old one (OWASP session
    // management), so a revocation D1 cannot make fails the login too (503, no session made). A token a refresh
    // retired ends the session it became — how an owner who lost a rotation to a thief and signs in again ends the
    // thief's. Every well-formed value, as a logout ends them: a planted second value beside the user's kept it alive.
    let before: Vec<String> =
        token::tokens(cookies.as_deref(), &config.cookie_name, MAX_ENDED_TOKENS)
            .iter()
            .map(|t| token::session_id(t))
            .collect();
    let (revoked, revoked_before) = store
        .insert_session(
            &NewSession {
                id: &id,
                user_id: &user.id,
                now_ms: now,
                expires_at,
                user_agent: user_agent.as_deref(),
                ip: ip.as_deref(),
            },
            &before,
        )
        .await?;
    let record = SessionRecord {
        user_id: user.id,
        email: user.email,
        permissions: user.permissions,
        created_at: now,
        expires_at,
        last_seen_at: now,
        revoked_at: None,
    };
    // The session exists in D1 from here: a cache write that fails (KV's write limits, an outage) only makes the
    // first checks read D1, so it is logged, not answered 500 with the session made and the token never delivered.
    if let Err(e) = store
        .cache(
            &id,
            &CacheEntry::new(record.clone(), now, config.cache_secs),
            config.cache_secs,
        )
        .await
    {
        log::error(
            "session_cache_write_failed",
            json!({"request_id": call.request_id, "detail": e.to_string()}),
        );
    }
    // Their cache slots say so (D1 holds the revocation; a slot not written trusts the entry until its freshness ends).
    mark_ended(
        &store,
        revoked,
        revoked_before,
        now,
        config.cache_secs,
        &call.request_id,
    )
    .await;
    let mut response = issued(&call, Some(&token), &record, now)?;
    // A fresh device entry for this account, beside the browser's entries for others.
    if let Some(key) = &config.device_key {
        let mut id = [0u8; device::ID_BYTES];
        getrandom::getrandom(&mut id).or_internal("reading random bytes for a device id")?;
        let value = key.renew(sent(), &id, account, now_secs, config.device_ttl_secs);
        let set = device::set_cookie(device_cookie, &value, config.device_ttl_secs);
        response = with_appended_header(response, "set-cookie", &set);
    }
    Ok(finish(response, &store))
}

/// Re-hashes a password stored at a lower PBKDF2 cost than `PASSWORD_PBKDF2_ITERATIONS` (a cost raised since it was
/// set; a lowered setting never weakens a stored hash), after the response through `waitUntil`: the login that
/// proved the password pays nothing in latency, and stored hashes converge on the configured cost — which is also
/// what the dummy hash of unknown emails costs, so a login's time stops telling an old account from a missing one.
/// The salt is kept: device entries are bound to it, and a re-hash is no password change (the cheaper hash it
/// replaces is what anyone holding the table would attack anyway). The update is conditional on the hash it
/// replaces (a concurrent password change wins). A hash that matched the password as sent rather than its NFKC
/// form (`to_normal_form`) is re-hashed in that form, at no lower cost than it had.
fn upgrade_password_later(
    call: &Call,
    user_id: &str,
    stored: &PasswordHash,
    password: String,
    to_normal_form: bool,
) {
    let iterations = call
        .isolate
        .config
        .session
        .pbkdf2_iterations
        .max(stored.iterations);
    let (env, user_id, old_hash) = (call.env.clone(), user_id.to_owned(), stored.hash_b64());
    let (from, salt) = (stored.iterations, stored.salt.clone());
    let request_id = call.request_id.clone();
    call.ctx.wait_until(async move {
        let upgraded = async {
            let hash = kdf::pbkdf2_sha256(password.as_bytes(), &salt, iterations).await?;
            let new = PasswordHash {
                iterations,
                salt,
                hash,
            };
            store::replace_password(env, &user_id, &old_hash, &new).await
        };
        match upgraded.await {
            Ok(true) => log::write(
                Level::Info,
                "password_rehashed",
                json!({"user_id": user_id, "from_iterations": from, "to_iterations": iterations,
                    "to_normal_form": to_normal_form, "request_id": request_id}),
            ),
            Ok(false) => {}
            Err(e) => log::error(
                "password_rehash_failed",
                json!({"user_id": user_id, "detail": e.to_string(), "request_id": request_id}),
            ),
        }
    });
}

/// The per-address limit (`SESSION_IP_POLICY`) of the routes that read or write at D1's primary for any
/// well-formed cookie — refresh, logout, the session lists — taken before any of that work, and only by a request
/// that would do it (`works`: a lone well-formed token for a check, any well-formed value for a logout). One without
/// a well-formed session cookie reads nothing, and a state-changing one from another origin is refused (403) first:
/// a page on any site can send such requests in any number (its `no-cors` POSTs carry no `SameSite=Lax` cookie), and
/// counted they spent the budget of everyone at the user's address — whose logout then answered 429 and left the
/// session alive, and whose refreshes failed. `Some`: the headers of the limit that counted the request, for its
/// answer whatever it is ([`stamped`]: a forged cookie's 401 too), as every other limited route gives them.
async fn limited(call: &Call, route: &str, works: bool) -> ApiResult<Option<RateLimitHeaders>> {
    if !works {
        return Ok(None);
    }
    if !origin_check::is_safe_method(&call.method) {
        refuse_cross_origin(call)?;
    }
    match &call.isolate.config.session.session_ip_policy {
        Some(policy) => Ok(Some(ratelimit::limit(call, policy, None, route).await?)),
        None => Ok(None),
    }
}

/// `answered` with the `RateLimit-Policy`/`RateLimit` of the limit that counted its request ([`limited`]), if any.
fn stamped(limit: Option<&RateLimitHeaders>, answered: ApiResult<Response>) -> ApiResult<Response> {
    match limit {
        Some(limit) => limit.stamp(answered),
        None => answered,
    }
}

/// `POST /auth/refresh`: rotates the session token (the old one stops working at once) and issues a new access JWT.
/// Of concurrent refreshes of one session exactly one succeeds; the others get 401 `session_rotated`.
pub async fn refresh(call: Call) -> ApiResult<Response> {
    let limit = limited(&call, "/auth/refresh", has_token(&call)).await?;
    stamped(limit.as_ref(), rotate(call).await)
}

/// [`refresh`] once its request is counted.
async fn rotate(call: Call) -> ApiResult<Response> {
    let config = &call.isolate.config.session;
    let store = Store::open(&call, true)?;
    let (old_id, record) = check(&call, &store, true)
        .await?
        .into_user(&config.cookie_name)?;
    let now = now_ms();
    let token = random_token()?;
    let new_id = token::session_id(&token);
    let expires_at = expiry(
        record.created_at,
        now,
        config.idle_secs * 1000,
        config.max_secs * 1000,
    );
    let record = SessionRecord {
        expires_at,
        last_seen_at: now,
        ..record
    };
    // The answer (its access token signed, its cookie set) is made before the rotation: once that lands, the new
    // token exists only in this answer, so whatever would keep it from being sent — a session ending within the
    // second (no access token: `issued`), no AUTH_SIGNING_KEY (a secret deleted since the session began) — must
    // fail the refresh first. After the rotation it retired the browser's token for one never delivered: the
    // user was signed out, and the browser's next refresh past SESSION_REUSE_GRACE_SECS revoked the session as
    // reused (a `session_reuse` alarm for no thief).
    let answer = issued(&call, Some(&token), &record, now)?;
    if !store
        .rotate(
            &old_id,
            &new_id,
            now,
            expires_at,
            config.max_secs * 1000,
            config.rotate_min_secs * 1000,
        )
        .await?
    {
        // Lost a race with another refresh (the token is now a retired one of a live session), or the session
        // ended meanwhile (a logout, its expiry): only the first is worth a retry.
        // A read that fails is a 503 (`session_store_unavailable`): the rotation changed nothing, the cookie is kept.
        let raced = match store.retired(&old_id).await? {
            Some(retired) => rotation_lives(&store, &retired, now).await?,
            None => false,
        };
        if raced {
            return Err(rotated().with_internal("lost a concurrent rotation"));
        }
        // Still the session's token, rotated less than SESSION_ROTATE_MIN_SECS ago: an access token, and the
        // session token kept — without a Set-Cookie, which the browser already holds. Re-set, it could overwrite
        // the cookie of a concurrent refresh that did rotate (a tab refreshing as the interval ended, whose answer
        // arrived first): the browser would then hold the retired token, and its next use past
        // SESSION_REUSE_GRACE_SECS would revoke the user's own session as a reused one.
        if let Some(current) = store.session(&old_id).await? {
            if current.status(now, config.idle_secs * 1000) == Status::Active {
                return Ok(finish(issued(&call, None, &current, now)?, &store));
            }
        }
        return Err(invalid("the session ended during the refresh"));
    }
    // From here the new token exists only in this answer: the cache writes that follow are best effort (logged),
    // since failing now (a KV write limit, say) would answer 500 without the token and leave the user logged out —
    // the old token retired in D1, the new one never delivered. If the revocation entry is not written, cached
    // checks may accept the old token until its entry's age limit (SESSION_CACHE_SECS); D1 checks refuse it.
    if let Err(e) = store.mark_revoked(&old_id, now, config.cache_secs).await {
        log::error(
            "session_revocation_entry_failed",
            json!({"request_id": call.request_id, "detail": e.to_string()}),
        );
    }
    // A refill, not a plain write: a reuse detection may already have revoked the session rotated into.
    if let Err(e) = store
        .refill(
            &new_id,
            &CacheEntry::new(record.clone(), now, config.cache_secs),
            config.cache_secs,
        )
        .await
    {
        log::error(
            "session_cache_write_failed",
            json!({"request_id": call.request_id, "detail": e.to_string()}),
        );
    }
    Ok(finish(answer, &store))
}

/// Revokes the sessions `tokens` name in D1 (or, for a token a refresh retired, the session it became), in one
/// statement however many there are, and leaves revocation entries in the cache: for the sessions this revoked, and
/// for the slot of a token whose session was revoked before when the cache still holds an entry for it (its entry
/// perhaps never written) — never for a token nothing knows, or any made-up cookie would buy a KV write (or read). A
/// write that fails is logged: D1 has revoked the session (cached checks may accept it until SESSION_CACHE_SECS; D1
/// checks refuse).
async fn end_sessions(
    store: &Store,
    tokens: &[&str],
    now: u64,
    cache_secs: u64,
    request_id: &str,
) -> ApiResult<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = tokens.iter().map(|t| token::session_id(t)).collect();
    let (marked, revoked_before) = store.revoke_each(&ids, now).await?;
    mark_ended(store, marked, revoked_before, now, cache_secs, request_id).await;
    Ok(())
}

/// Revocation entries for the sessions a revocation ended now (`marked`) and for those among `revoked_before`
/// (already revoked) whose cache slot still holds an entry (it may still admit them).
async fn mark_ended(
    store: &Store,
    mut marked: Vec<String>,
    revoked_before: Vec<String>,
    now: u64,
    cache_secs: u64,
    request_id: &str,
) {
    for id in revoked_before {
        if !marked.contains(&id) && store.cached(&id).await.is_some() {
            marked.push(id);
        }
    }
    mark_revoked_all(store, &marked, now, cache_secs, Some(request_id)).await;
}

/// Revocation entries for `ids`; a write that fails is logged (D1 holds the revocation).
async fn mark_revoked_all(
    store: &Store,
    ids: &[String],
    now: u64,
    cache_secs: u64,
    request_id: Option<&str>,
) {
    for id in ids {
        if let Err(e) = store.mark_revoked(id, now, cache_secs).await {
            log::error(
                "session_revocation_entry_failed",
                json!({"request_id": request_id, "detail": e.to_string()}),
            );
        }
    }
}

/// 204 with the session cookie cleared: the answer of a logout.
fn signed_out(
    config: &crate::session::config::SessionConfig,
    store: &Store,
) -> ApiResult<Response> {
    let response = with_header(
        Response::empty()
            .or_internal("building the answer")?
            .with_status(204),
        "set-cookie",
        &token::clear_cookie(&config.cookie_name),
    );
    Ok(finish(response, store))
}

/// `POST /auth/logout`: revokes the session in D1 (also when the cookie holds a token a refresh has just retired:
/// then the session it became), leaves a revocation entry in its cache slot and clears the cookie. Idempotent: 204
/// whether or not the cookie named a live session. Another origin's page is refused whatever the cookie: its
/// cross-site form post arrives without the `SameSite=Lax` cookie, yet the browser stores the answer's
/// `Set-Cookie` (a top-level navigation, RFC 6265bis §5.7), so a 204 would sign the user out from any site and
/// leave the session alive in D1.
pub async fn logout(call: Call) -> ApiResult<Response> {
    refuse_cross_origin(&call)?;
    let config = &call.isolate.config.session;
    // Every well-formed value of the cookie, not only a lone one: beside a planted second value (which makes the
    // cookie authenticate nothing) the user's own token is still there, and a logout that ended nothing left their
    // session alive for whoever had copied it.
    let header = call.req.headers().get("cookie").ok().flatten();
    let tokens = token::tokens(header.as_deref(), &config.cookie_name, MAX_ENDED_TOKENS);
    let limit = limited(&call, "/auth/logout", !tokens.is_empty()).await?;
    let ended = async {
        let store = Store::open(&call, true)?;
        end_sessions(
            &store,
            &tokens,
            now_ms(),
            config.cache_secs,
            &call.request_id,
        )
        .await?;
        signed_out(config, &store)
    };
    stamped(limit.as_ref(), ended.await)
}

/// Values of the session cookie one logout (or login) ends at most: more than a browser keeps for one site (Chrome
/// 180), so no number of planted values can push the user's own out of the few a small bound would read — a planter
/// sets its values under longer paths, which the browser sends first. One D1 statement ends them all.
const MAX_ENDED_TOKENS: usize = 256;

/// `GET /auth/session` (auth policy `session`, cached check): the current user.
pub async fn session(call: Call) -> ApiResult<Response> {
    let store = Store::open(&call, false)?;
    let config = &call.isolate.config.session;
    let (_, record) = check(&call, &store, false)
        .await?
        .into_user(&config.cookie_name)?;
    let ends_at = record.ends_at(config.idle_secs * 1000, config.max_secs * 1000);
    let body = json!({ "user": user_view(&record), "session": { "expires_at": ends_at } });
    Ok(finish(json(200, &body)?, &store))
}

/// Revocation entries one `DELETE /auth/sessions` writes at most (one KV write each: KV allows 1,000 operations per
/// invocation, and the free plan 1,000 writes a day to different keys); the caller's own session first. Further
/// sessions are refused by D1 checks at once and by cached checks once their entries' `fresh_until` passes: at most
/// `SESSION_CACHE_SECS` after the revocation (plus a lagging replica's delay), as every entry is written from a D1
/// read made before it or at a replica that had not seen it (then put back as a revocation entry by the fill's
/// second read, at the primary: [`Store::refill`]). Elsewhere than where this ran, an entry
/// written here only arrives as KV propagates it (up to 60 s or more), so entries for all would not tighten that.
const MAX_REVOCATION_ENTRIES: usize = 40;

/// `DELETE /auth/sessions`: ends every session of the caller's user — the way out when `GET /auth/sessions` lists
/// one they do not know (a stolen token) — and clears the cookie. A strict check: the caller's session must be live.
pub async fn end_all(call: Call) -> ApiResult<Response> {
    let limit = limited(&call, "/auth/sessions", has_token(&call)).await?;
    stamped(limit.as_ref(), revoke_all(call).await)
}

/// [`end_all`] once its request is counted.
async fn revoke_all(call: Call) -> ApiResult<Response> {
    let config = &call.isolate.config.session;
    let store = Store::open(&call, true)?;
    let (id, record) = check(&call, &store, true)
        .await?
        .into_user(&config.cookie_name)?;
    let now = now_ms();
    let mut revoked = store.revoke_user(&record.user_id, now).await?;
    if let Some(at) = revoked.iter().position(|r| *r == id) {
        revoked.swap(0, at);
    }
    log::write(
        Level::Info,
        "sessions_ended",
        json!({"revoked_sessions": revoked.len(),
            "cache_entries": revoked.len().min(MAX_REVOCATION_ENTRIES), "request_id": call.request_id}),
    );
    let cached = &revoked[..revoked.len().min(MAX_REVOCATION_ENTRIES)];
    mark_revoked_all(
        &store,
        cached,
        now,
        config.cache_secs,
        Some(&call.request_id),
    )
    .await;
    signed_out(config, &store)
}

/// `GET /auth/sessions` (auth policy `session`, strict: always D1): the caller's active sessions, for reviewing
/// where the account is logged in. Sensitive (it shows IPs and devices), so a revoked session is refused at once.
/// At most 50: the caller's own first (`current`), then the newest; `truncated` says whether the user has more.
pub async fn sessions(call: Call) -> ApiResult<Response> {
    let limit = limited(&call, "/auth/sessions", has_token(&call)).await?;
    stamped(limit.as_ref(), list_sessions(call).await)
}

/// [`sessions`] once its request is counted.
async fn list_sessions(call: Call) -> ApiResult<Response> {
    let store = Store::open(&call, true)?;
    let (id, record) = check(&call, &store, true)
        .await?
        .into_user(&call.isolate.config.session.cookie_name)?;
    let config = &call.isolate.config.session;
    let (idle_ms, max_ms) = (config.idle_secs * 1000, config.max_secs * 1000);
    let (list, truncated) = store
        .active_sessions(&record.user_id, &id, now_ms(), idle_ms, max_ms)
        .await?;
    let items: Vec<_> = list
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["current"] = json!(s.id == id);
            v
        })
        .collect();
    let body = json!({ "user": user_view(&record), "sessions": items, "truncated": truncated });
    Ok(finish(json(200, &body)?, &store))
}
