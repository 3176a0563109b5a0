//! Response plumbing shared by every handler: JSON bodies, the one conversion of [`ApiError`] into a response,
//! header stamping that works on immutable (proxied) responses, and small runtime readings (colo, randomness).

use serde::Serialize;
use worker::wasm_bindgen::JsValue;
use worker::{js_sys, Headers, Request, Response};

use crate::error::{ApiError, ApiResult, OrInternal};

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> ApiResult<Response> {
    Ok(Response::from_json(value)
        .or_internal("serialising JSON response")?
        .with_status(status))
}

/// The response for an error: its status, its headers and `{"error":{"code","message"}}`. Cannot fail.
pub fn error_response(error: &ApiError) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    for (name, value) in error.headers() {
        let _ = headers.set(name, value);
    }
    match Response::from_bytes(error.body().into_bytes()) {
        Ok(response) => response.with_status(error.status()).with_headers(headers),
        // from_bytes only builds a Rust value; this arm keeps the no-panic promise without unwrap.
        Err(_) => Response::empty()
            .map(|r| r.with_status(error.status()))
            .unwrap_or_else(|_| Response::builder().empty()),
    }
}

/// Sets a header, copying the header list first when the response's headers are immutable (e.g. from `fetch`).
pub fn with_header(response: Response, name: &str, value: &str) -> Response {
    edit_headers(response, |h| h.set(name, value))
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

/// The Cloudflare data centre serving the request (`cf.colo`), or "" where the runtime has none.
pub fn colo(req: &Request) -> String {
    let inner: &JsValue = req.inner().as_ref();
    js_sys::Reflect::get(inner, &JsValue::from_str("cf"))
        .ok()
        .filter(|cf| cf.is_object())
        .and_then(|cf| js_sys::Reflect::get(&cf, &JsValue::from_str("colo")).ok())
        .and_then(|c| c.as_string())
        .unwrap_or_default()
}

/// 16 random bytes from WebCrypto (`getRandomValues`), falling back to `Math.random` if that ever fails.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes
}
