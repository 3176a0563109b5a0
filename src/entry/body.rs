//! Reads a request body whole under a size cap and parses it as JSON (rules in `crate::body`). The declared
//! `content-length` is checked before reading; the bytes are counted again as they arrive (a chunked body has no
//! declared length), and reading stops at the cap. A body refused before it
//! was read (wrong content type, declared length over the cap) is still drained, up to [`DRAIN_CEILING`] bytes:
//! answering while the client is still sending can reset the connection, and the client would see ECONNRESET
//! instead of the 415/413. Past the ceiling we stop reading.

use serde::de::DeserializeOwned;
use worker::{ByteStream, Request};

use crate::body::{parse_json, require_json_content_type, require_size};
use crate::error::{ApiError, ApiResult};

/// How much of an over-size body is read and discarded so the 413 reaches the client.
const DRAIN_CEILING: u64 = 1024 * 1024;

/// Reads and discards the unread request body, up to [`DRAIN_CEILING`] bytes, so an early answer reaches the
/// client; a body already read (or locked by a reader) is left alone.
pub async fn drain(req: &mut Request) {
    // A locked body (read, or tee'd by the gateway) is not ours to read: reading it would wait forever.
    if req.inner().body().is_none_or(|body| body.locked()) {
        return;
    }
    if let Ok(stream) = req.stream() {
        drain_stream(stream).await;
    }
}

/// [`drain`] for a body stream held apart from its request (e.g. one branch of a tee).
pub async fn drain_stream(mut stream: ByteStream) {
    use futures_util::StreamExt;
    let mut read = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len() as u64;
        if read > DRAIN_CEILING {
            break;
        }
    }
}

/// The body as `T`: 415 for a non-JSON content type, 413 over `max_bytes`, 400 for JSON that does not parse.
pub async fn read_json<T: DeserializeOwned>(req: &mut Request, max_bytes: u64) -> ApiResult<T> {
    let content_type = req.headers().get("content-type").ok().flatten();
    if let Err(refused) = require_json_content_type(content_type.as_deref()) {
        drain(req).await;
        return Err(refused);
    }
    if let Some(declared) = req.headers().get("content-length").ok().flatten() {
        let declared: u64 = declared.trim().parse().map_err(|_| {
            ApiError::bad_request("invalid_header", "content-length is not a number")
        })?;
        if let Err(too_large) = require_size(declared, max_bytes) {
            drain(req).await;
            return Err(too_large);
        }
    }
    parse_json(&read_capped(req, max_bytes).await?)
}

/// The body, read chunk by chunk and refused with 413 as soon as it passes `max_bytes`: a chunked body (no
/// `content-length` to check first) is never held whole beyond the cap.
async fn read_capped(req: &mut Request, max_bytes: u64) -> ApiResult<Vec<u8>> {
    use futures_util::StreamExt;
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let unreadable = |e: worker::Error| {
        ApiError::bad_request("unreadable_body", "the body could not be read")
            .with_internal(e.to_string())
    };
    let mut stream = req.stream().map_err(unreadable)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(unreadable)?);
        // No drain here: the 413 goes out at once, also to a client that stalls mid-body (draining would wait on
        // it); a client still sending a few MB gets the answer as with a drain (measured), a much longer one a reset
        // either way.
        require_size(bytes.len() as u64, max_bytes)?;
    }
    Ok(bytes)
}
