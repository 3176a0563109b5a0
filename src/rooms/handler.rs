//! Runtime side of rooms: mints tickets, forwards WebSocket joins to the room's object (with a location hint from
//! the joiner's continent), reads a room's document as JSON, lists active rooms across the directory shards and
//! serves the demo page.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use durable_objects::room::protocol::{
    self as room, location_hint, valid_room_name, TicketGrant, HEADER_ROOM, HEADER_SETTINGS,
};
use durable_objects::room_directory::protocol::{self as directory, Listed};
use worker::wasm_bindgen::JsValue;
use worker::{Headers, Method, Request, RequestInit, Response, Stub};

use crate::entry::coalesce::{self, InFlight, Memory, Sharing};
use crate::entry::log;
use crate::entry::respond::{self, cf_string, json};
use crate::entry::Call;
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::websocket::{self, Upgrade};

/// The room named by the `{id}` route parameter, checked.
fn room_name(call: &Call) -> ApiResult<String> {
    let name = call.params.get("id").cloned().unwrap_or_default();
    if valid_room_name(&name) {
        Ok(name)
    } else {
        Err(ApiError::bad_request(
            "invalid_room",
            "a room name is 1 to 64 of A-Z a-z 0-9 - _ .",
        ))
    }
}

fn room_stub(call: &Call, name: &str) -> ApiResult<Stub> {
    let namespace = call
        .env
        .durable_object(room::BINDING)
        .or_internal("binding the rooms namespace")?;
    let object = room::object_name(name);
    match location_hint(&cf_string(call.req.inner(), "continent").unwrap_or_default()) {
        Some(hint) => namespace.get_by_name_with_location_hint(&object, hint),
        None => namespace.get_by_name(&object),
    }
    .or_internal("getting the room object")
}

/// Headers every request to a room carries: its name, the settings it enforces, and the request id (the object
/// names it in its log lines about the request, as the origins do).
fn room_headers(call: &Call, name: &str) -> ApiResult<Headers> {
    let headers = Headers::new();
    headers
        .set("x-request-id", &call.request_id)
        .or_internal("setting a header")?;
    let settings = serde_json::to_string(&call.isolate.config.rooms.settings)
        .or_internal("serialising room settings")?;
    headers
        .set(HEADER_ROOM, name)
        .or_internal("setting a header")?;
    headers
        .set(HEADER_SETTINGS, &settings)
        .or_internal("setting a header")?;
    Ok(headers)
}

async fn room_fetch(
    call: &Call,
    name: &str,
    path_and_query: &str,
    method: Method,
    headers: Headers,
    body: Option<String>,
) -> ApiResult<Response> {
    let stub = room_stub(call, name)?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(JsValue::from_str(&body)));
    }
    let req = Request::new_with_init(&format!("https://room{path_and_query}"), &init)
        .or_internal("building the room request")?;
    stub.fetch_with_request(req)
        .await
        .or_internal("calling the room object")
}

/// Stores a fresh single-use ticket for `user_id` in the room `name` (checked by [`room_name`]) and returns it;
/// with `session`, the room admits it only while that session lives, and closes its socket once it has ended.
async fn issue_ticket(
    call: &Call,
    name: &str,
    user_id: &str,
    session: Option<String>,
    expires_ms: u64,
) -> ApiResult<Response> {
    // A bearer credential: from the runtime's CSPRNG or a 500, never the pool's Math.random fallback.
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).or_internal("reading random bytes for a room ticket")?;
    let ticket = hex::encode(bytes);
    let grant = TicketGrant {
        ticket: ticket.clone(),
        user_id: user_id.to_owned(),
        expires_ms,
        session,
    };
    let body = serde_json::to_string(&grant).or_internal("serialising a ticket")?;
    let response = room_fetch(
        call,
        name,
        room::PATH_TICKET,
        Method::Post,
        room_headers(call, name)?,
        Some(body),
    )
    .await?;
    if response.status_code() != 204 {
        return Err(ApiError::internal(format!(
            "room refused the ticket with {}",
            response.status_code()
        )));
    }
    json(
        201,
        &serde_json::json!({
            "ticket": ticket,
            "expires_ms": expires_ms,
            "url": format!("/rooms/{name}/ws?{}={ticket}", room::TICKET_PARAM),
        }),
    )
}

/// `GET /rooms/{id}/ws?ticket=…`: the WebSocket join, answered by the room object itself.
pub async fn join(call: &Call) -> ApiResult<Response> {
    // Reached by a GET only: the route is GET-only in the table (a HEAD is no handshake, and is refused there
    // before the room sees its ticket).
    let name = room_name(call)?;
    let header = |name| call.req.headers().get(name).ok().flatten();
    let upgrade = websocket::upgrade(header("upgrade").as_deref());
    if upgrade == Upgrade::None {
        return Err(ApiError::new(
            426,
            "upgrade_required",
            "this endpoint speaks WebSocket only",
        )
        .with_header("upgrade", "websocket"));
    }
    // WebSocket asked for beside other protocols (`websocket, h2c`) is refused as a gateway route refuses it.
    let (version, key) = (header("sec-websocket-version"), header("sec-websocket-key"));
    if let Some(refusal) = websocket::refusal(upgrade, version.as_deref(), key.as_deref()) {
        return Err(refusal);
    }
    // The room speaks no subprotocol and its 101 names none, which a client that offered some fails after the 101
    // (RFC 6455 §4.1; WHATWG WebSockets; `ws`: "Server sent no subprotocol") — its single-use ticket spent, and the
    // room counting a member that never opened. Refused here instead, the ticket kept.
    if !websocket::protocol_offered(header("sec-websocket-protocol").as_deref(), None) {
        return Err(ApiError::bad_request(
            "subprotocol_unsupported",
            "this endpoint speaks no WebSocket subprotocol: open the socket without one (Sec-WebSocket-Protocol)",
        ));
    }
    // Anyone may send a join, and the room's object (which every member's messages wait on) reads its tickets for
    // it: a ticket the room refuses counts against the address's budget for unknown credentials, and an address
    // over it is refused here, without asking the room.
    let budget = crate::session::handler::credential_budget(call)?;
    let url = call.req.url().or_internal("reading the request url")?;
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    let headers = room_headers(call, &name)?;
    headers
        .set("upgrade", "websocket")
        .or_internal("setting a header")?;
    let answer = room_fetch(
        call,
        &name,
        &format!("{}{query}", room::PATH_CONNECT),
        Method::Get,
        headers,
        None,
    )
    .await?;
    if answer.status_code() == 401 {
        crate::session::handler::count_failed(call, budget);
    }
    refusal_as_error(answer).await
}

/// `answer` from a room, or the room's refusal in it (a JSON error) as the Worker's own error (`super::room_refusal`):
/// the same status, code, message and `Retry-After`, and the request's log line names the code.
async fn refusal_as_error(mut answer: Response) -> ApiResult<Response> {
    let status = answer.status_code();
    if status < 400 || !is_json(&answer) {
        return Ok(answer);
    }
    let body = answer
        .bytes()
        .await
        .or_internal("reading the room's refusal")?;
    let retry_after = answer.headers().get("retry-after").ok().flatten();
    match super::room_refusal(status, &body, retry_after.as_deref()) {
        Some(refusal) => Err(refusal),
        // Not a refusal the room makes: passed on as it came.
        None => Ok(Response::from_bytes(body)
            .or_internal("building the room's answer")?
            .with_status(status)
            .with_headers(answer.headers().clone())),
    }
}

/// Whether a room's answer is JSON (a refusal of the room's is; the runtime's own failures are text).
fn is_json(answer: &Response) -> bool {
    answer
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|t| t.starts_with("application/json"))
}

/// `GET /rooms/{id}/state` (after the caller is authorised): the document of the room `name` (checked by
/// [`room_name`]) as JSON.
async fn state(call: &Call, name: &str) -> ApiResult<Response> {
    let mut response = room_fetch(
        call,
        name,
        room::PATH_STATE,
        Method::Get,
        room_headers(call, name)?,
        None,
    )
    .await?;
    if response.status_code() != 200 {
        // The room's own refusal — its JSON error, 500 `room_unavailable` when its stored document does not load —
        // goes to the client as the room wrote it, as a join's does; anything else is the Worker's 500.
        if is_json(&response) && response.status_code() >= 400 {
            return refusal_as_error(response).await;
        }
        return Err(ApiError::internal(format!(
            "room state answered {}",
            response.status_code()
        )));
    }
    // Passed on as the room wrote it (`{"room", "members", "document"}`), not parsed: serde_json refuses JSON
    // nested past 128 levels, and a document may nest deeper (shared types, and values in them, 128 each).
    let body = response
        .bytes()
        .await
        .or_internal("reading the room state")?;
    let mut out = Response::from_bytes(body).or_internal("building the room state")?;
    out.headers_mut()
        .set("content-type", respond::JSON_TYPE)
        .or_internal("setting a header")?;
    Ok(out)
}

/// `GET /rooms`: the `ROOMS_LIST_MAX_ROOMS` largest active rooms with member counts (`truncated` when more are
/// active), merged from every directory shard, asked at once. A room whose
/// last report is older than `STALE_AFTER_REPORTS` of its report intervals is left out (and deleted by its shard).
/// A shard that fails, or does not answer within `SHARD_BUDGET_MS`, leaves its rooms out and marks the listing
/// `incomplete`; when none answers, 503. The route is
/// public and fans out to every shard, so an isolate lists at most once per `ROOMS_LIST_MEMORY_MS` and concurrent
/// requests share one listing.
pub async fn list(call: &Call) -> ApiResult<Response> {
    let sharing = Sharing {
        in_flight: &LISTING,
        memory: &LISTED,
        memory_ms: call.isolate.config.rooms.list_memory_ms,
        budget_ms: LIST_BUDGET_MS,
        // Only a complete listing: after a shard failed, the next request asks again.
        keep: |listing| {
            listing
                .as_ref()
                .is_some_and(|body| body.get("incomplete").is_none())
        },
    };
    let timed_out = || {
        log::error(
            "room_listing_timed_out",
            serde_json::json!({"budget_ms": LIST_BUDGET_MS, "request_id": call.request_id,
                "detail": format!("room listing took over {LIST_BUDGET_MS} ms")}),
        );
        None
    };
    match coalesce::shared(&sharing, || ask_shards(call), timed_out).await {
        Some(body) => json(200, &*body),
        None => Err(ApiError::new(
            503,
            "directory_unavailable",
            "no room directory shard answered; try again shortly",
        )),
    }
}

/// How long asking the shards for one listing may take before it answers 503.
const LIST_BUDGET_MS: u64 = 5_000;

/// How long one shard may take to answer before its rooms are left out (the listing marked `incomplete`): inside
/// [`LIST_BUDGET_MS`], so one stuck shard (an overloaded object, a storage stall) costs its own rooms, not the
/// whole listing a 503.
const SHARD_BUDGET_MS: u64 = 4_000;

/// A listing's body, or `None` when no shard answered.
type Listing = Option<Rc<serde_json::Value>>;

thread_local! {
    /// The last listing of this isolate, and when it was made.
    static LISTED: Memory<Listing> = const { RefCell::new(None) };
    /// A listing in progress: concurrent requests wait for it.
    static LISTING: InFlight<Listing> = RefCell::new(HashMap::new());
    /// Listings this isolate has asked the shards for (for the debug route the tests read).
    static LISTINGS: Cell<u64> = const { Cell::new(0) };
}

/// How many times this isolate has asked the directory shards for a listing.
pub fn listings_asked() -> u64 {
    LISTINGS.with(Cell::get)
}

async fn ask_shards(call: &Call) -> Listing {
    LISTINGS.with(|n| n.set(n.get() + 1));
    let settings = &call.isolate.config.rooms.settings;
    let namespace = match call.env.durable_object(directory::BINDING) {
        Ok(namespace) => namespace,
        Err(e) => {
            log::error(
                "room_directory_unbound",
                serde_json::json!({"binding": directory::BINDING, "request_id": call.request_id,
                    "detail": format!("binding the room directory: {e}")}),
            );
            return None;
        }
    };
    // One more than is listed from each shard: whether any room was left out is then known.
    let max_rooms = call.isolate.config.rooms.list_max_rooms;
    let url = format!(
        "https://room-directory{}?{}={}",
        directory::PATH_LIST,
        directory::LIMIT_PARAM,
        max_rooms + 1
    );
    let asks = (0..settings.directory_shards).map(|shard| {
        let (namespace, url) = (&namespace, &url);
        let ask = async move {
            let stub = namespace
                .get_by_name(&directory::object_name(shard))
                .map_err(|e| e.to_string())?;
            let mut response = stub.fetch_with_str(url).await.map_err(|e| e.to_string())?;
            if response.status_code() != 200 {
                return Err(format!("shard answered {}", response.status_code()));
            }
            response
                .json::<Vec<Listed>>()
                .await
                .map_err(|e| e.to_string())
        };
        async move {
            crate::entry::within_ms(ask, SHARD_BUDGET_MS)
                .await
                .unwrap_or_else(|| Err(format!("no answer in {SHARD_BUDGET_MS} ms")))
        }
    });
    let mut listings = Vec::new();
    let mut incomplete = false;
    for (shard, answer) in futures_util::future::join_all(asks)
        .await
        .into_iter()
        .enumerate()
    {
        match answer {
            Ok(rooms) => listings.push(rooms),
            Err(e) => {
                incomplete = true;
                log::error(
                    "room_directory_shard_failed",
                    serde_json::json!({"shard": shard, "detail": e, "request_id": call.request_id}),
                );
            }
        }
    }
    if listings.is_empty() {
        return None;
    }
    let (rooms, truncated) = directory::merge(listings, respond::now_ms(), max_rooms as usize);
    let mut body = serde_json::json!({ "rooms": rooms });
    if incomplete {
        body["incomplete"] = serde_json::json!(true);
    }
    if truncated {
        body["truncated"] = serde_json::json!(true);
    }
    Some(Rc::new(body))
}

/// `GET /rooms/{id}`: the demo editor.
pub fn page(call: &Call) -> ApiResult<Response> {
    let name = room_name(call)?;
    // A fresh nonce per response for the page's inline style (the page is `no-store`, so never served twice).
    let nonce = hex::encode(respond::random_bytes());
    let mut response =
        Response::from_html(super::page::render(&name, &nonce)).or_internal("building the page")?;
    let headers = response.headers_mut();
    let _ = headers.set("cache-control", "no-store");
    let url = call.req.inner().url();
    let url = crate::gateway::request_url::RequestUrl::split(&url);
    let policy = super::page::csp(&nonce, url.scheme, url.authority);
    let _ = headers.set("content-security-policy", &policy);
    Ok(response)
}

/// `POST /rooms/{id}/ticket`: a signed-in user's single-use ticket for `/rooms/{id}/ws`, limited per user by
/// `ROOMS_TICKET_POLICY` (a ticket for a new name sets up a stored room object). A ticket is a credential:
/// `no-store`.
pub async fn ticket(call: &Call) -> ApiResult<Response> {
    // A name no room can have is refused before the session is read or the user's budget spent.
    let name = room_name(call)?;
    let caller = crate::session::handler::current_user(call, false).await?;
    let (user, session) = caller.required_session("sign in to join a room")?;
    let user = user.user_id;
    let policy = &call.isolate.config.rooms.ticket_policy;
    let limit =
        crate::ratelimit::handler::limit(call, policy, Some(&user), "/rooms/ticket").await?;
    // Counted: the answer carries the limit's fields whatever it is (a room that cannot be reached: a 500 with them).
    let issued = issue_ticket(call, &name, &user, Some(session), ticket_expiry(call)).await;
    limit.stamp(issued.map(no_store))
}

/// `GET /rooms/{id}/state`, for signed-in users (`no-store`: a document is private to a room's members), limited
/// per user at `ROOMS_TICKET_POLICY`'s rate in a budget of its own (`state:` and the policy's key,
/// `key::state_budget`): each read makes the room render its whole document as JSON in the object every member's
/// messages wait on (a map of 32,000 short entries: ~200 ms a read; 50 reads at once held the members' sync answers
/// back 11 s).
pub async fn authorised_state(call: &Call) -> ApiResult<Response> {
    use crate::ratelimit::{handler as ratelimit, key};
    let name = room_name(call)?;
    let user = signed_in_user(call).await?;
    let policy = &call.isolate.config.rooms.ticket_policy;
    let own = ratelimit::resolve_key(call, policy, Some(&user), "/rooms/state")?;
    let limit = ratelimit::enforce(call, policy, &key::state_budget(&own)).await?;
    limit.stamp(state(call, &name).await.map(no_store))
}

fn no_store(response: Response) -> Response {
    respond::with_header(response, "cache-control", "no-store")
}

/// When a ticket issued now expires (`ROOMS_TICKET_TTL_SECONDS`).
fn ticket_expiry(call: &Call) -> u64 {
    call.started_ms + call.isolate.config.rooms.ticket_ttl_ms
}

/// `POST /__debug/rooms/{id}/ticket?user=…[&expired=1]` (debug routes only): a ticket without a session, for tests —
/// `expired=1` makes one that expired a millisecond before it was issued, so a test shows the room refusing an
/// expired ticket without waiting out `ROOMS_TICKET_TTL_SECONDS`; any other `expired` value is a 400.
pub async fn debug_ticket(call: &Call) -> ApiResult<Response> {
    let url = call.req.url().or_internal("reading the request url")?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let user = param("user").unwrap_or_else(|| "debug".to_owned());
    let expires_ms = match param("expired").as_deref() {
        None => ticket_expiry(call),
        Some("1") => call.started_ms.saturating_sub(1),
        // A test asking for `expired=true` (or `0`) must not get a live ticket and pass for the wrong reason.
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("parameter `expired` must be 1 or absent, got {other:?}"),
            ))
        }
    };
    issue_ticket(call, &room_name(call)?, &user, None, expires_ms).await
}

/// `/__debug/panic?in=room&room={name}` (debug routes only): makes the room's object panic, and answers what the
/// object's call came back with — as a ticket's or a join's caller would meet it.
pub async fn debug_panic(call: &Call, name: &str) -> ApiResult<Response> {
    if !valid_room_name(name) {
        return Err(ApiError::bad_request(
            "invalid_room",
            "?room= names the room whose object panics: 1 to 64 of A-Z a-z 0-9 - _ .",
        ));
    }
    crate::entry::debug_panic::in_object(call, room_stub(call, name)?, room_headers(call, name)?)
        .await
}

/// The signed-in user's id (session cookie, cached check), or 401 (clearing a cookie that names no live session).
async fn signed_in_user(call: &Call) -> ApiResult<String> {
    let caller = crate::session::handler::current_user(call, false).await?;
    Ok(caller.required("sign in to join a room")?.user_id)
}
