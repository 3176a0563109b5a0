//! Serves the embedded OpenAPI document at `GET /openapi.json`, with its strong `ETag`: a client or CDN holding the
//! document revalidates it (`If-None-Match`, answered 304) rather than fetching it whole again; an `If-Match` naming
//! another document is answered 412.

use worker::Response;

use super::DOCUMENT;
use crate::entry::respond::with_header;
use crate::entry::Call;
use crate::error::{ApiError, ApiResult, OrInternal};

/// How long a client or CDN may use its copy before revalidating it.
const CACHE_CONTROL: &str = "public, max-age=300";

pub fn document(call: &Call) -> ApiResult<Response> {
    let header = |name: &str| call.req.headers().get(name).ok().flatten();
    if super::precondition_failed(header("if-match").as_deref()) {
        return Err(ApiError::precondition_failed(
            "If-Match names no current representation of this document",
        ));
    }
    let response = if super::not_modified(header("if-none-match").as_deref()) {
        // No body, and the headers a cache updates its copy with (RFC 9110 §15.4.5).
        Response::empty()
            .or_internal("building the OpenAPI 304")?
            .with_status(304)
    } else {
        let response = Response::from_bytes(DOCUMENT.as_bytes().to_vec())
            .or_internal("building the OpenAPI response")?;
        with_header(response, "content-type", crate::entry::respond::JSON_TYPE)
    };
    let response = with_header(response, "etag", super::etag());
    Ok(with_header(response, "cache-control", CACHE_CONTROL))
}
