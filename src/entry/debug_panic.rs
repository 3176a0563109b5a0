//! `/__debug/panic` (debug routes only): a deliberate panic where `?in=` says — the handler (default), a `waitUntil`
//! task, a streamed body, or a Durable Object of each class (`room`, `ratelimiter`, `directory`) — for the tests of
//! what a panic does to the request waiting on it, the log and the next request.

use durable_objects::debug_panic;
use durable_objects::ratelimit::protocol as limiter;
use durable_objects::room_directory::protocol as directory;
use worker::wasm_bindgen::JsValue;
use worker::{Headers, Method, Request, RequestInit, Response, Stub};

use super::Call;
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::rooms;

/// `?in=wait_until`: the panic comes from a task the request left to `waitUntil`, after its answer (a panic that is
/// no handler's, for the recovery test of the others in flight); `?in=stream`: from the body of the answer, after
/// its headers and a first chunk went out (as a streamed page's or a proxied body's producer would);
/// `?in=room&room={id}`, `?in=ratelimiter&policy={name}[&shard={n}]`, `?in=directory[&shard={n}]`: from that
/// object's code, the object's answer passed on (what a caller of it then meets).
pub async fn serve(call: &Call) -> ApiResult<Response> {
    let url = call.req.url().or_internal("reading the request URL")?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let message = format!(
        "deliberate panic from /__debug/panic (request {})",
        call.request_id
    );
    match param("in").as_deref() {
        Some("wait_until") => {
            call.ctx.wait_until(async move { panic!("{message}") });
            super::respond::json(202, &serde_json::json!({ "panic": "wait_until" }))
        }
        Some("stream") => {
            use futures_util::StreamExt;
            let body = futures_util::stream::iter([true, false]).map(move |first| {
                if first {
                    Ok::<_, worker::Error>(b"the first chunk\n".to_vec())
                } else {
                    panic!("{message} in its body")
                }
            });
            Response::from_stream(body).or_internal("building a streamed answer")
        }
        Some("room") => rooms::handler::debug_panic(call, &param("room").unwrap_or_default()).await,
        Some("ratelimiter") => {
            let name = param("policy").unwrap_or_default();
            let Some(policy) = call.isolate.config.ratelimit.get(&name) else {
                return Err(invalid("?policy= names a configured rate-limit policy"));
            };
            let shard = shard(param("shard"), policy.shards)?;
            let stub = stub(call, &policy.binding, &limiter::object_name(&name, shard))?;
            in_object(call, stub, Headers::new()).await
        }
        Some("directory") => {
            let shards = call.isolate.config.rooms.settings.directory_shards;
            let shard = shard(param("shard"), shards)?;
            let stub = stub(call, directory::BINDING, &directory::object_name(shard))?;
            in_object(call, stub, Headers::new()).await
        }
        _ => panic!("{message}"),
    }
}

/// Makes the object behind `stub` panic: [`debug_panic::PATH`] with `headers` (a room's carry its name and
/// settings), the request id and [`debug_panic::HEADER`] from the Worker's own validated
/// `DEBUG_ROUTES` — on, or this route would not be served. Answers what the call came back with.
pub async fn in_object(call: &Call, stub: Stub, headers: Headers) -> ApiResult<Response> {
    let debug_routes = if call.isolate.config.core.debug_routes {
        debug_panic::ON
    } else {
        "off"
    };
    headers
        .set(debug_panic::HEADER, debug_routes)
        .or_internal("setting a header")?;
    headers
        .set("x-request-id", &call.request_id)
        .or_internal("setting a header")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(None::<JsValue>);
    let req = Request::new_with_init(&format!("https://object{}", debug_panic::PATH), &init)
        .or_internal("building the object's request")?;
    stub.fetch_with_request(req)
        .await
        .or_internal("calling the object")
}

fn stub(call: &Call, binding: &str, object: &str) -> ApiResult<Stub> {
    call.env
        .durable_object(binding)
        .or_internal("binding the object's namespace")?
        .get_by_name(object)
        .or_internal("getting the object")
}

/// `?shard=` (default 0): below `shards`.
fn shard(value: Option<String>, shards: u32) -> ApiResult<u32> {
    match value.map(|v| v.parse::<u32>()) {
        None => Ok(0),
        Some(Ok(n)) if n < shards => Ok(n),
        Some(_) => Err(invalid(&format!(
            "?shard= is a shard number below {shards}"
        ))),
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::bad_request("invalid_parameter", message.to_owned())
}
