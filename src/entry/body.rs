//! Reads a request body whole under a size cap and parses it as JSON (rules in `crate::body`). The declared
//! `content-length` is checked before reading; the bytes are counted again as they arrive (a chunked body has no
//! declared length), and reading stops at the cap. A body refused before it
//! was read (wrong content type, declared length over the cap) is still drained, up to [`DRAIN_CEILING`] bytes:
//! answering while the client is still sending can reset the connection, and the client would see ECONNRESET
//! instead of the 415/413. Past the ceiling we stop reading.

use serde::de::DeserializeOwned;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{js_sys, web_sys, ByteStream, Request};

use crate::body::{parse_json, require_json_content_type, require_size, too_large};
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
/// `content-length` to check first) is never held whole beyond the cap. No drain after the cap: the 413 goes out at
/// once, also to a client that stalls mid-body (draining would wait on it); a client still sending a few MB gets the
/// answer as with a drain (measured), a much longer one a reset either way.
async fn read_capped(req: &mut Request, max_bytes: u64) -> ApiResult<Vec<u8>> {
    let Some(stream) = req.inner().body() else {
        return Ok(Vec::new());
    };
    read_stream_capped(stream, max_bytes)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => too_large(max_bytes),
            ReadError::Failed(detail) => {
                ApiError::bad_request("unreadable_body", "the body could not be read")
                    .with_internal(detail)
            }
        })
}

/// Why [`read_stream_capped`] stopped short.
#[derive(Debug)]
pub enum ReadError {
    /// More than the cap arrived.
    TooLarge,
    /// The stream failed (the sender went away, a timeout aborted it): the JS error's message.
    Failed(String),
}

/// A body stream read whole, refused as soon as it passes `max_bytes`. Read straight from the runtime's stream:
/// a failed read is an error — worker's `ByteStream` would end the read cleanly on an "aborted" error and hand back
/// a shorter body as if it were complete. (Request bodies read whole, fragment bodies from an origin.)
pub async fn read_stream_capped(
    stream: web_sys::ReadableStream,
    max_bytes: u64,
) -> Result<Vec<u8>, ReadError> {
    use futures_util::StreamExt;
    let mut chunks = wasm_streams::ReadableStream::from_raw(stream.unchecked_into()).into_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = js_sys::Uint8Array::new(&chunk.map_err(|e| ReadError::Failed(js_message(&e)))?);
        if bytes.len() as u64 + u64::from(chunk.length()) > max_bytes {
            return Err(ReadError::TooLarge);
        }
        bytes.extend(chunk.to_vec());
    }
    Ok(bytes)
}

/// What [`read_or_pass`] found.
pub enum Prefix {
    /// The whole body, within the cap.
    Whole(Vec<u8>),
    /// More than the cap: the whole body as a stream — what was read, then the rest as it arrives.
    Over(web_sys::ReadableStream),
}

/// A body read whole when it fits in `max_bytes`; past that, handed back as a stream of the whole body instead of
/// being held (a cache fill keeps what it can store and passes on what it cannot). A failed read is an error (the JS
/// error's message), as in [`read_stream_capped`].
pub async fn read_or_pass(
    stream: web_sys::ReadableStream,
    max_bytes: u64,
) -> Result<Prefix, String> {
    use futures_util::StreamExt;
    let mut chunks = wasm_streams::ReadableStream::from_raw(stream.unchecked_into()).into_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| js_message(&e))?;
        let array = js_sys::Uint8Array::new(&chunk);
        if bytes.len() as u64 + u64::from(array.length()) > max_bytes {
            let read = js_sys::Uint8Array::from(bytes.as_slice());
            let whole =
                futures_util::stream::iter([Ok(JsValue::from(read)), Ok(chunk)]).chain(chunks);
            let raw = wasm_streams::ReadableStream::from_stream(whole).into_raw();
            return Ok(Prefix::Over(raw.unchecked_into()));
        }
        bytes.extend(array.to_vec());
    }
    Ok(Prefix::Whole(bytes))
}

/// A thrown JS value's message (an `AbortError`/`TimeoutError` reads as its message), else its debug form.
pub fn js_message(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
