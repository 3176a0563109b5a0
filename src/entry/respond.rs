//! Response plumbing shared by every handler: JSON bodies, the one conversion of [`ApiError`] into a response,
//! header stamping that works on immutable (proxied) responses, and small runtime readings (colo, randomness).

use serde::Serialize;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{js_sys, Headers, Response};

use crate::error::{ApiError, ApiResult, OrInternal};

/// `X-Content-Type-Options` of every answer the Worker makes itself (the app's routes, every error): a body is read
/// as the type it is labelled, never sniffed (a JSON error echoing the request's path, read as HTML, could run).
pub const NOSNIFF: &str = "nosniff";

/// The `Content-Type` of every JSON answer the Worker makes, successes and errors alike.
pub const JSON_TYPE: &str = "application/json";

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> ApiResult<Response> {
    Ok(Response::from_json(value)
        .or_internal("serialising JSON response")?
        .with_status(status))
}

/// The response for an error: its status, its headers and `{"error":{"code","message"}}`. Cannot fail.
pub fn error_response(error: &ApiError) -> Response {
    match Response::from_bytes(error.body().into_bytes()) {
        Ok(response) => response
            .with_status(error.status())
            .with_headers(error_headers(error, true)),
        // from_bytes only builds a Rust value; this arm keeps the no-panic promise without unwrap.
        Err(_) => error_head(error),
    }
}

/// The response for an error without its JSON body: its status and headers alone. For an answer that cannot carry a
/// body (a request answered from another request's code, whose body the runtime would refuse to read).
pub fn error_head(error: &ApiError) -> Response {
    Response::empty()
        .map(|r| r.with_status(error.status()))
        .unwrap_or_else(|_| Response::builder().empty())
        .with_headers(error_headers(error, false))
}

/// An error's headers: its own, and the defaults every error says (`content-type` only when a body goes with them).
fn error_headers(error: &ApiError, body: bool) -> Headers {
    let headers = Headers::new();
    let defaults = [
        // As every success says it (`json`, through workers-rs' `from_json`): JSON has no charset parameter (RFC
        // 8259 §11), and errors said `; charset=utf-8`, a second spelling for one type.
        ("content-type", JSON_TYPE),
        ("cache-control", "no-store"),
        ("x-content-type-options", NOSNIFF),
    ];
    let defaults = if body { &defaults[..] } else { &defaults[1..] };
    // Appended: two `set-cookie` or `www-authenticate` lines are two, not the last alone.
    for (name, value) in error.response_headers(defaults) {
        let _ = headers.append(name, value);
    }
    headers
}

/// The runtime's `Response` for `response`, or the JS error that refused it (a status outside 200..=599, a body on a
/// null-body status, a 101 without a WebSocket). workers-rs' own conversion `unwrap`s that error, which aborts the
/// isolate's Wasm instance and every request in flight in it.
pub fn into_raw(response: Response) -> Result<worker::web_sys::Response, JsValue> {
    use worker::web_sys;
    let (init, body) = response.into_parts();
    let init = web_sys::ResponseInit::from(init);
    match body {
        worker::ResponseBody::Empty => web_sys::Response::new_with_opt_str_and_init(None, &init),
        worker::ResponseBody::Body(bytes) => {
            let array = js_sys::Uint8Array::from(bytes.as_slice());
            web_sys::Response::new_with_opt_buffer_source_and_init(Some(&array), &init)
        }
        worker::ResponseBody::Stream(stream) => {
            web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stream), &init)
        }
    }
}

/// Sets a header, copying the header list first when the response's headers are immutable (e.g. from `fetch`).
pub fn with_header(response: Response, name: &str, value: &str) -> Response {
    edit_headers(response, |h| h.set(name, value))
}

/// `response` without header `name` (a field the origin sent that would misinform the client).
pub fn without_header(response: Response, name: &str) -> Response {
    edit_headers(response, |h| h.delete(name))
}

/// `response` with one more `name: value` line, beside any it already has (e.g. `Server-Timing`).
pub fn with_appended_header(response: Response, name: &str, value: &str) -> Response {
    edit_headers(response, |h| h.append(name, value))
}

/// Applies `edit` to the headers, on a copy when the response's own are immutable (e.g. from `fetch`).
fn edit_headers(
    mut response: Response,
    edit: impl Fn(&mut worker::Headers) -> worker::Result<()>,
) -> Response {
    if edit(response.headers_mut()).is_ok() {
        return response;
    }
    let mut headers = response.headers().clone();
    let _ = edit(&mut headers);
    response.with_headers(headers)
}

/// Shadows `request.cf` on the incoming request with an own `undefined` property, so wrapping it in a
/// `worker::Request` (which reads `cf` eagerly) does not pay for it. In workerd each read of that getter builds a
/// fresh object from the request's metadata: 14% of the CPU samples of `GET /health` under load (V8 profiler through
/// Miniflare's inspector), for a value most requests never use. [`cf_string`] reads the real one when asked.
pub fn defer_cf(req: &worker::web_sys::Request) {
    SHADOW_CF.with(|(key, descriptor)| {
        let _ = js_sys::Reflect::define_property(req.as_ref(), key, descriptor);
    });
}

thread_local! {
    /// `"cf"` and the property descriptor `{value: undefined, configurable: true}` that shadows it, made once per
    /// isolate (plain values, safe to share between requests): one call per request instead of four.
    static SHADOW_CF: (JsValue, js_sys::Object) = {
        let descriptor = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&descriptor, &JsValue::from_str("value"), &JsValue::UNDEFINED);
        let _ = js_sys::Reflect::set(&descriptor, &JsValue::from_str("configurable"), &JsValue::TRUE);
        (JsValue::from_str("cf"), descriptor)
    };
}

/// A string field of the request's `cf` object (`colo`, `country`, `continent`, …), or `None` where the runtime has
/// none (Miniflare has no real values). Reads through the prototype's getter when [`defer_cf`] shadowed it.
pub fn cf_string(req: &worker::web_sys::Request, field: &str) -> Option<String> {
    let inner: &JsValue = req.as_ref();
    let key = JsValue::from_str("cf");
    let own = js_sys::Reflect::get(inner, &key)
        .ok()
        .filter(|cf| cf.is_object());
    let cf = own.or_else(|| {
        // The shadowed accessor: call the prototype's getter on this request.
        let proto = js_sys::Object::get_prototype_of(inner);
        let descriptor = js_sys::Reflect::get_own_property_descriptor(&proto, &key).ok()?;
        let getter = js_sys::Reflect::get(&descriptor, &JsValue::from_str("get")).ok()?;
        let getter: &js_sys::Function = getter.dyn_ref()?;
        getter.call0(inner).ok().filter(|cf| cf.is_object())
    })?;
    js_sys::Reflect::get(&cf, &JsValue::from_str(field))
        .ok()
        .and_then(|v| v.as_string())
}

/// Milliseconds since the epoch by the runtime's clock (`Date.now()`: one call, where `worker::Date::now()` makes
/// two, a `new Date` and its `getTime`). On Workers the clock advances only across I/O.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Bytes of WebCrypto randomness fetched per `getRandomValues` call: [`random_bytes`] hands them out 16 at a time,
/// so the ~5 boundary calls getrandom makes per fill are paid once every 64 draws instead of on each (request ids
/// and trace ids take two to three draws per request).
const POOL_BYTES: usize = 1024;

thread_local! {
    /// Unused WebCrypto bytes and how many of them were handed out; each byte is used once.
    static POOL: std::cell::RefCell<([u8; POOL_BYTES], usize)> =
        const { std::cell::RefCell::new(([0; POOL_BYTES], POOL_BYTES)) };
}

/// The random bytes a trace context takes (`observability::trace::continue_or_start`): new ids and the sampling roll.
pub fn trace_random() -> [u8; crate::observability::trace::RANDOM_BYTES] {
    const N: usize = crate::observability::trace::RANDOM_BYTES;
    let (a, b) = (random_bytes(), random_bytes());
    let mut out = [0u8; N];
    out[..16].copy_from_slice(&a);
    out[16..].copy_from_slice(&b[..N - 16]);
    out
}

/// The random bytes of one origin fetch's span id (`observability::trace::OriginTrace::fields`).
pub fn span_random() -> [u8; crate::observability::trace::SPAN_BYTES] {
    const N: usize = crate::observability::trace::SPAN_BYTES;
    let mut out = [0u8; N];
    out.copy_from_slice(&random_bytes()[..N]);
    out
}

/// 16 random bytes from WebCrypto (`getRandomValues`, drawn from a per-isolate pool of its output), falling back to
/// `Math.random` for this draw only if that ever fails (the pool never holds fallback bytes, so the next draw asks
/// WebCrypto again).
pub fn random_bytes() -> [u8; 16] {
    POOL.with(|cell| {
        let mut pool = cell.borrow_mut();
        let (bytes, used) = &mut *pool;
        if *used + 16 > POOL_BYTES {
            if getrandom::getrandom(bytes).is_err() {
                let mut out = [0u8; 16];
                for b in &mut out {
                    *b = (js_sys::Math::random() * 256.0) as u8;
                }
                return out;
            }
            *used = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&bytes[*used..*used + 16]);
        *used += 16;
        out
    })
}
