//! Dispatch: resolves the route table and calls the matching handler (paths the app does not serve go to the
//! gateway), with the CORS headers that let a `SESSION_TRUSTED_ORIGINS` page read the app's answers and its
//! preflights answered. Add a capability's arms here.

use worker::Response;

use super::Call;
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::router::{Resolved, RouteId};
use crate::{gateway, health, images, openapi, ratelimit, render, rooms, session};

pub async fn dispatch(mut call: Call) -> ApiResult<Response> {
    let method = call.method.clone();
    let raw = call.req.path();
    // Matched in the spelling the gateway matches in (`//health`, `/%68ealth` are `/health`): otherwise such a
    // spelling would miss the app's route and could reach a catch-all gateway route as the path it stands for.
    let path = gateway::request_url::normalise_path(&raw);
    let found = match call.isolate.router.resolve(&method, &path) {
        // Paths the app does not serve go to the gateway's configured routes (which answer 404/405 themselves).
        Resolved::NotFound => return gateway::handler::serve(call).await,
        Resolved::MethodNotAllowed { allowed } => Err(allowed),
        Resolved::Found { id, params } => Ok((id, params)),
    };
    // A page of a SESSION_TRUSTED_ORIGINS origin may call the app's routes with its cookies and read the answers
    // (`crate::cors`); the header is read only when origins are trusted.
    let trusted = &call.isolate.config.session.trusted_origins;
    let trusted_empty = trusted.is_empty();
    let origin = if trusted_empty {
        None
    } else {
        let sent = call.req.headers().get("origin").ok().flatten();
        crate::cors::listed(trusted, sent.as_deref()).map(str::to_owned)
    };
    // What the errors below are given, noted for a panic's answer too.
    match &origin {
        Some(origin) => super::note_error_headers(&crate::cors::credentialed(origin)),
        None if !trusted_empty => super::note_error_headers(&[("vary", "Origin".to_owned())]),
        None => {}
    }
    let answer = match found {
        Err(allowed) => {
            let asked = call
                .req
                .headers()
                .get("access-control-request-method")
                .ok()
                .flatten();
            let asked = asked.filter(|_| origin.is_some() && method == "OPTIONS");
            let preflight = match (&origin, &asked) {
                (Some(origin), Some(asked)) => crate::cors::preflight(origin, asked, &allowed),
                _ => None,
            };
            match preflight {
                // Whole as built (its CORS headers included): through the CORS step below it said
                // `Vary: Origin, Origin`.
                Some(headers) => {
                    return Response::empty()
                        .map(|r| with_headers(r.with_status(204), &headers))
                        .map(|r| {
                            super::respond::with_header(
                                r,
                                "x-content-type-options",
                                super::respond::NOSNIFF,
                            )
                        })
                        .or_internal("building a preflight answer");
                }
                None => {
                    // Read before answering (as a refused JSON body is): answered while a large upload was still
                    // coming, the client saw its connection reset instead of the 405.
                    super::body::drain(&mut call.req).await;
                    // A trusted page's preflight for a method the route does not serve: that method is refused, and
                    // OPTIONS is served here, as this preflight (RFC 9110 §15.5.6: Allow lists what is supported).
                    // A preflight asking about OPTIONS itself: the OPTIONS it would clear is the one not served.
                    match &asked {
                        Some(asked) => Err(ApiError::preflight_refused(asked, &allowed)),
                        None => Err(ApiError::method_not_allowed(&method, &allowed)),
                    }
                }
            }
        }
        Ok((id, params)) => {
            call.params = params;
            // A body the route takes no body from (a room ticket, a refresh, a logout) or refused before reading is
            // read and discarded before the answer, as a 405's is: answered unread, workerd reset the connection.
            let unread = super::body::Unread::of(&call.req);
            let answer = app_route(call, id).await;
            super::body::drain_left(unread).await;
            // Every answer of the app's own routes is read as the type it says (its errors by `error_response`).
            let answer = answer.map(|response| {
                if response.status_code() == 101 {
                    response
                } else {
                    super::respond::with_header(
                        response,
                        "x-content-type-options",
                        super::respond::NOSNIFF,
                    )
                }
            });
            match answer {
                Ok(response) if id.stored_nowhere() => Ok(super::respond::with_header(
                    response,
                    "cache-control",
                    "no-store",
                )),
                other => other,
            }
        }
    };
    let Some(origin) = origin else {
        // An answer may be stored (a browser's cache, a CDN) and later served to a trusted page: it varies by
        // Origin whenever some are trusted.
        return match answer {
            Ok(response) if !trusted_empty && response.status_code() != 101 => Ok(
                super::respond::with_appended_header(response, "vary", "Origin"),
            ),
            Err(error) if !trusted_empty => Err(error.with_header("vary", "Origin")),
            other => other,
        };
    };
    let cors = crate::cors::credentialed(&origin);
    match answer {
        // A WebSocket handshake is no CORS request.
        Ok(response) if response.status_code() == 101 => Ok(response),
        Ok(response) => Ok(with_headers(response, &cors)),
        Err(error) => Err(error.with_headers(cors)),
    }
}

/// `response` with `headers` set, but `Vary` added to any the handler set (images vary by `Accept`).
fn with_headers(response: Response, headers: &[(&'static str, String)]) -> Response {
    headers.iter().fold(response, |response, (name, value)| {
        if *name == "vary" {
            super::respond::with_appended_header(response, name, value)
        } else {
            super::respond::with_header(response, name, value)
        }
    })
}

/// The app's handler for `id`.
async fn app_route(mut call: Call, id: RouteId) -> ApiResult<Response> {
    match id {
        RouteId::Health => health::handler::health(&call),
        RouteId::Ready => health::handler::ready(&call).await,
        RouteId::OpenApi => openapi::handler::document(&call),
        RouteId::AuthLogin => session::handler::login(call).await,
        RouteId::AuthLogout => session::handler::logout(call).await,
        RouteId::AuthRefresh => session::handler::refresh(call).await,
        RouteId::AuthSession => session::handler::session(call).await,
        RouteId::AuthSessions => session::handler::sessions(call).await,
        RouteId::AuthSessionsEnd => session::handler::end_all(call).await,
        RouteId::RateLimitCheck => ratelimit::handler::check(&call).await,
        RouteId::RateLimitBaseline => ratelimit::handler::unlimited(&call).await,
        RouteId::Images => images::handler::serve(&call).await,
        RouteId::Rooms => rooms::handler::list(&call).await,
        RouteId::RoomPage => rooms::handler::page(&call),
        RouteId::RoomJoin => rooms::handler::join(&call).await,
        RouteId::RoomTicket => rooms::handler::ticket(&call).await,
        RouteId::RoomState => rooms::handler::authorised_state(&call).await,
        RouteId::DebugRoomTicket => rooms::handler::debug_ticket(&call).await,
        RouteId::DebugPanic => super::debug_panic::serve(&call).await,
        // `waiting`: requests waiting on another's fill, fragment, image or key set; those waiting on a purge-mark
        // read (which comes before a fill) are counted apart, so "all wait on the fill" is not seen true early.
        // `fills`: gateway cache fills claimed now (under way, or answered and being stored).
        RouteId::DebugCoalesce => {
            let purge_reads = gateway::handler::purge_reads_waiting();
            super::respond::json(
                200,
                &serde_json::json!({ "waiting": super::coalesce::waiting().saturating_sub(purge_reads),
                        "purge_reads_waiting": purge_reads,
                        "fills": gateway::handler::fills_in_progress(),
                        "room_listings": rooms::handler::listings_asked(),
                        "jwks_reads": gateway::handler::jwks_reads(),
                        "refreshing": gateway::handler::refreshes_running() }),
            )
        }
        RouteId::DebugJwksAge
        | RouteId::DebugRefreshHoldsAge
        | RouteId::DebugEdgeCacheAge
        | RouteId::DebugFailedBookmarksAge => {
            let url = call.req.url().or_internal("reading the request URL")?;
            let ms = url
                .query_pairs()
                .find(|(k, _)| k == "ms")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_ms", "?ms= must be a number of milliseconds")
                })?;
            match id {
                RouteId::DebugJwksAge => gateway::handler::age_jwks(ms),
                RouteId::DebugRefreshHoldsAge => gateway::handler::age_refresh_holds(ms),
                RouteId::DebugFailedBookmarksAge => session::handler::age_failed_bookmarks(ms),
                _ => gateway::handler::age_stored_copies(ms),
            }
            super::respond::json(200, &serde_json::json!({ "aged_ms": ms }))
        }
        RouteId::GatewayPurge => gateway::handler::purge(&mut call).await,
        // render
        RouteId::RenderHome | RouteId::RenderPage => render::handler::page(call).await,
    }
}
