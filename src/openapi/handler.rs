//! Serves the embedded OpenAPI document at `GET /openapi.json`.

use worker::Response;

use super::DOCUMENT;
use crate::entry::respond::with_header;
use crate::error::{ApiResult, OrInternal};

pub fn document() -> ApiResult<Response> {
    let response = Response::from_bytes(DOCUMENT.as_bytes().to_vec())
        .or_internal("building the OpenAPI response")?;
    let response = with_header(response, "content-type", crate::entry::respond::JSON_TYPE);
    Ok(with_header(
        response,
        "cache-control",
        "public, max-age=300",
    ))
}
