//! Reads a request body whole under a size cap and parses it as JSON (rules in `crate::body`). The declared
//! `content-length` is checked before reading; the bytes are counted again as they arrive (a chunked body has no
//! declared length), and reading stops at the cap. A body refused before it was read (wrong method or path, wrong
//! content type, declared length over the cap, the WAF) is still drained, up to [`DRAIN_CEILING`] bytes within
//! [`DRAIN_BUDGET_MS`]: answered while the client is still sending, workerd may reset the connection before the
//! answer arrives (the client sees ECONNRESET instead of the 404/405/413/415), and closes it after.

use std::time::Duration;

use serde::de::DeserializeOwned;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Delay, Request};

use crate::body::{
    awaits_continue, continue_refused, declared_length, parse_json, require_identity_encoding,
    require_json_content_type, require_size, too_large,
};
use crate::error::{ApiError, ApiResult};

/// How much of a refused body is read and discarded so the answer reaches the client: 100 MB, Cloudflare's request
/// body limit on the Free and Pro plans (nothing larger reaches a Worker there). Read a megabyte at a time it costs
/// about 0.3 ms of CPU per MB (measured in workerd; 4 KiB reads of a default reader cost 4.5 ms per MB). A
/// megabyte was not enough: past it workerd answers, reads on a little, then resets the connection — about one
/// refused 8 MB upload in a hundred saw ECONNRESET, and a client that sent its next request on that connection lost
/// it.
const DRAIN_CEILING: u64 = 100 * 1000 * 1000;

/// How much a drain asks for per read at first, and at most: one buffer, reused, replaced by one four times larger
/// while reads fill it. Small first, as most refused bodies are and as a stalled client keeps its drain's buffer for
/// the whole budget (a megabyte each, a hundred stalled drains would hold most of an isolate's 128 MB).
const DRAIN_FIRST_READ_BYTES: u32 = 16 * 1024;
const DRAIN_READ_BYTES: u32 = 1024 * 1024;

/// How long a drain waits for the body, in all: a client that stalls, or trickles a body that never ends, gets its
/// answer then instead of never.
const DRAIN_BUDGET_MS: u64 = 2_000;

/// How long a drain waits for each read of a body whose client awaits `100 Continue` (RFC 9110 §10.1.1): such a
/// client holds its body back until told to send it, and workerd never tells it, so waiting the whole
/// [`DRAIN_BUDGET_MS`] only held the answer the client asked to have first; one that sends anyway (as it may) is
/// still read while its bytes keep coming.
const DRAIN_CONTINUE_STALL_MS: u64 = 250;

/// How long a JSON body ([`read_json`]) whose client awaits `100 Continue` may take to send its first bytes before it
/// is answered 417 ([`continue_refused`]): such a client sends none until told to, workerd never tells it, and the
/// read waited with no bound. Longer than curl's own wait (1 s), after which it sends the body anyway.
const CONTINUE_FIRST_BYTES_MS: u64 = 2_000;

/// Reads and discards the unread request body, up to [`DRAIN_CEILING`] bytes and for at most [`DRAIN_BUDGET_MS`]
/// ([`DRAIN_CONTINUE_STALL_MS`] per read for a client that awaits `100 Continue`), so an early answer reaches the
/// client; a body already read (or locked by a reader) is left alone.
pub async fn drain(req: &mut Request) {
    drain_left(Unread::of(req)).await;
}

/// A request's body stream, held apart before its handler takes the request, so that what the handler left unread
/// can be drained once it has answered ([`drain_left`]). `None` for a request without a body.
pub struct Unread {
    body: web_sys::ReadableStream,
    stall_ms: Option<u64>,
}

impl Unread {
    pub fn of(req: &Request) -> Option<Self> {
        // The body first: most app requests (pages, GETs) have none, and need no `Expect` read.
        let body = req.inner().body()?;
        let expect = req.headers().get("expect").ok().flatten();
        let stall_ms = awaits_continue(expect.as_deref()).then_some(DRAIN_CONTINUE_STALL_MS);
        Some(Self { body, stall_ms })
    }
}

/// [`drain`] for a body held apart by [`Unread::of`]: a body its handler read (or locked) is left alone.
pub async fn drain_left(unread: Option<Unread>) {
    if let Some(Unread { body, stall_ms }) = unread {
        drain_within(body, stall_ms).await;
    }
}

/// [`drain`] for a body stream held apart from its request (e.g. one branch of a tee). The bytes stay in the
/// runtime: read into one JS buffer (a "bring your own buffer" reader, which request bodies and their tee branches
/// are), only counted in wasm.
pub async fn drain_stream(stream: web_sys::ReadableStream) {
    drain_within(stream, None).await;
}

/// [`drain_stream`], giving up when one read waits longer than `stall_ms`.
async fn drain_within(stream: web_sys::ReadableStream, stall_ms: Option<u64>) {
    use futures_util::future::{pending, select, Either};
    // A locked body (read, or tee'd by the gateway) is not ours: reading it would wait forever. A stream that is
    // not a byte stream has no such reader; none reaches here (request bodies and their tee branches are).
    let Ok(reader) = web_sys::ReadableStreamByobReader::new(&stream) else {
        return;
    };
    let mut buffer = js_sys::ArrayBuffer::new(DRAIN_FIRST_READ_BYTES);
    let mut read = 0u64;
    let mut budget = Delay::from(Duration::from_millis(DRAIN_BUDGET_MS));
    while read <= DRAIN_CEILING {
        let view = js_sys::Uint8Array::new(&buffer);
        let next = JsFuture::from(reader.read_with_array_buffer_view(&view));
        let stall = async {
            match stall_ms {
                Some(ms) => Delay::from(Duration::from_millis(ms)).await,
                None => pending::<()>().await,
            }
        };
        futures_util::pin_mut!(stall);
        let Either::Left((Ok(result), _)) = select(next, select(&mut budget, stall)).await else {
            break; // the budget lapsed, a read stalled, or the sender went away
        };
        let done = js_sys::Reflect::get(&result, &JsValue::from_str("done"))
            .is_ok_and(|done| done.is_truthy());
        let Ok(chunk) = js_sys::Reflect::get(&result, &JsValue::from_str("value"))
            .and_then(JsCast::dyn_into::<js_sys::Uint8Array>)
        else {
            break;
        };
        read += u64::from(chunk.byte_length());
        // The read took the buffer over (it is transferred): the next read gets it back through the chunk.
        buffer = chunk.buffer();
        let size = buffer.byte_length();
        if chunk.byte_length() == size && size < DRAIN_READ_BYTES {
            buffer = js_sys::ArrayBuffer::new((size * 4).min(DRAIN_READ_BYTES));
        }
        if done {
            break;
        }
    }
}

/// [`drain_stream`] through a default reader that already holds the stream and may have a read pending (it cannot be
/// released then: workerd throws), so it is read on: within the same budget and ceiling, then cancelled unless done.
pub async fn drain_reader(reader: web_sys::ReadableStreamDefaultReader) {
    use futures_util::future::{select, Either};
    let mut read = 0u64;
    let mut budget = Delay::from(Duration::from_millis(DRAIN_BUDGET_MS));
    while read <= DRAIN_CEILING {
        let next = JsFuture::from(reader.read());
        let Either::Left((Ok(result), _)) = select(next, &mut budget).await else {
            break; // the budget lapsed, or the sender went away
        };
        if js_sys::Reflect::get(&result, &JsValue::from_str("done")).is_ok_and(|d| d.is_truthy()) {
            return;
        }
        read += js_sys::Reflect::get(&result, &JsValue::from_str("value"))
            .and_then(|chunk| js_sys::Reflect::get(&chunk, &JsValue::from_str("byteLength")))
            .ok()
            .and_then(|n| n.as_f64())
            .map_or(0, |n| n as u64);
    }
    let ignore = worker::wasm_bindgen::closure::Closure::once(|_: JsValue| {});
    let _ = reader.cancel().catch(&ignore);
    ignore.forget();
}

/// The body as `T`: 415 for a body in a content coding (with `Accept-Encoding: identity`) or a content type other
/// than UTF-8 JSON, 413 over `max_bytes`, 400 for JSON that does not parse.
pub async fn read_json<T: DeserializeOwned>(req: &mut Request, max_bytes: u64) -> ApiResult<T> {
    let content_encoding = req.headers().get("content-encoding").ok().flatten();
    let content_type = req.headers().get("content-type").ok().flatten();
    let acceptable = require_identity_encoding(content_encoding.as_deref())
        .and_then(|()| require_json_content_type(content_type.as_deref()));
    if let Err(refused) = acceptable {
        drain(req).await;
        return Err(refused);
    }
    let content_length = req.headers().get("content-length").ok().flatten();
    let transfer_encoding = req.headers().get("transfer-encoding").ok().flatten();
    if let Some(declared) = declared_length(content_length.as_deref(), transfer_encoding.as_deref())
    {
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
/// `content-length` to check first) is never held whole beyond the cap. Past the cap the rest is drained before the
/// 413 ([`drain_stream`], bounded as every drain is), as a body refused by its declared length is: cancelled,
/// workerd closed the connection after the 413 (or reset it first), and a client's next request on it was lost.
/// A client awaiting `100 Continue` that sends nothing within [`CONTINUE_FIRST_BYTES_MS`] is answered 417.
async fn read_capped(req: &mut Request, max_bytes: u64) -> ApiResult<Vec<u8>> {
    use futures_util::StreamExt;
    let expect = req.headers().get("expect").ok().flatten();
    let first_within = awaits_continue(expect.as_deref()).then_some(CONTINUE_FIRST_BYTES_MS);
    let Some(stream) = req.inner().body() else {
        return Ok(Vec::new());
    };
    // A reader that lets the body go (unlocked, not cancelled) when it is dropped, at the end of this statement.
    let read = match wasm_streams::ReadableStream::from_raw(stream.clone().unchecked_into())
        .try_get_reader()
    {
        Ok(reader) => {
            let mut chunks = reader.into_stream();
            let Some(first) = next_within(&mut chunks, first_within).await else {
                // Cancelled, not let go: its read is still pending, and a body let go with one stayed locked and
                // unread, so the answer never went out.
                let _ = chunks.cancel().await;
                return Err(continue_refused());
            };
            take_capped(futures_util::stream::iter(first).chain(chunks), max_bytes).await
        }
        Err(e) => Err(ReadError::Failed(js_message(&e.into()))),
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge) => {
            drain_stream(stream).await;
            Err(too_large(max_bytes))
        }
        Err(ReadError::Failed(detail)) => Err(ApiError::bad_request(
            "unreadable_body",
            "the body could not be read",
        )
        .with_internal(detail)),
    }
}

/// The next item of `chunks` (`Some(None)`: the body ended), or `None` when `within_ms` passed before it came.
async fn next_within<S: futures_util::Stream + Unpin>(
    chunks: &mut S,
    within_ms: Option<u64>,
) -> Option<Option<S::Item>> {
    use futures_util::future::{select, Either};
    use futures_util::StreamExt;
    let Some(ms) = within_ms else {
        return Some(chunks.next().await);
    };
    match select(chunks.next(), Delay::from(Duration::from_millis(ms))).await {
        Either::Left((first, _)) => Some(first),
        Either::Right(_) => None,
    }
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
    take_capped(
        wasm_streams::ReadableStream::from_raw(stream.unchecked_into()).into_stream(),
        max_bytes,
    )
    .await
}

/// [`read_stream_capped`]'s reading, from any reader's chunks.
async fn take_capped(
    mut chunks: impl futures_util::Stream<Item = Result<JsValue, JsValue>> + Unpin,
    max_bytes: u64,
) -> Result<Vec<u8>, ReadError> {
    use futures_util::StreamExt;
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = as_bytes(&chunk.map_err(|e| ReadError::Failed(js_message(&e)))?);
        if bytes.len() as u64 + u64::from(chunk.length()) > max_bytes {
            return Err(ReadError::TooLarge);
        }
        append(&mut bytes, &chunk);
    }
    Ok(bytes)
}

/// [`read_stream_capped`] into a runtime `Blob`: the chunks stay in the runtime's memory and never cross into wasm
/// memory, which never shrinks — a large body held for one request (an image source) leaves nothing behind.
pub async fn read_stream_capped_blob(
    stream: web_sys::ReadableStream,
    max_bytes: u64,
) -> Result<web_sys::Blob, ReadError> {
    use futures_util::StreamExt;
    let mut chunks = wasm_streams::ReadableStream::from_raw(stream.unchecked_into()).into_stream();
    let parts = js_sys::Array::new();
    let mut read = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = as_bytes(&chunk.map_err(|e| ReadError::Failed(js_message(&e)))?);
        read += u64::from(chunk.length());
        if read > max_bytes {
            return Err(ReadError::TooLarge);
        }
        parts.push(&chunk);
    }
    web_sys::Blob::new_with_u8_array_sequence(&parts)
        .map_err(|e| ReadError::Failed(format!("holding the body: {}", js_message(&e))))
}

/// Why [`read_prefix`] stopped short.
#[derive(Debug)]
pub enum PrefixError {
    /// No bytes came for the time allowed per read; how many had come before.
    Stalled { read: usize },
    /// The stream failed: the JS error's message.
    Failed(String),
}

/// A body stream's first `cap` bytes or more (all of it when shorter), each read waiting at most `stall_ms` for the
/// sender; a failed read is an error, as in [`read_stream_capped`] (a sender that breaks off is never a shorter
/// complete body). The stream is left unread past what was taken (a tee's inspection branch).
pub async fn read_prefix(
    stream: web_sys::ReadableStream,
    cap: usize,
    stall_ms: u64,
) -> Result<Vec<u8>, PrefixError> {
    let mut chunks = wasm_streams::ReadableStream::from_raw(stream.unchecked_into()).into_stream();
    let mut bytes = Vec::new();
    while bytes.len() < cap {
        match next_within(&mut chunks, Some(stall_ms)).await {
            Some(Some(chunk)) => {
                let chunk = chunk.map_err(|e| PrefixError::Failed(js_message(&e)))?;
                append(&mut bytes, &as_bytes(&chunk));
            }
            Some(None) => break,
            None => return Err(PrefixError::Stalled { read: bytes.len() }),
        }
    }
    Ok(bytes)
}

/// The whole body as a stream, handed on once its first bytes came (or it ended), each read of them waiting at
/// most `stall_ms`: for a body forwarded unread from a client awaiting `100 Continue`, which sends none until told
/// to — and workerd never tells it — so the origin is not asked for a request whose body may never come.
pub async fn after_first_bytes(
    stream: web_sys::ReadableStream,
    stall_ms: u64,
) -> Result<web_sys::ReadableStream, PrefixError> {
    let mut chunks = wasm_streams::ReadableStream::from_raw(stream.unchecked_into()).into_stream();
    match next_within(&mut chunks, Some(stall_ms)).await {
        Some(Some(Ok(chunk))) => Ok(pass_on(Vec::new(), Some(chunk), chunks)),
        Some(Some(Err(e))) => Err(PrefixError::Failed(js_message(&e))),
        Some(None) => Ok(pass_on(Vec::new(), None, chunks)),
        None => Err(PrefixError::Stalled { read: 0 }),
    }
}

/// What [`read_or_pass`] found.
pub enum Prefix {
    /// The whole body, within the cap and the time budget.
    Whole(Vec<u8>),
    /// More than the cap: the whole body as a stream — what was read, then the rest as it arrives.
    Over(web_sys::ReadableStream),
    /// Not all of it within the budget (within the cap so far): the whole body as a stream, as [`Self::Over`].
    Late(web_sys::ReadableStream),
}

/// A body read whole when it fits in `max_bytes` and arrives within `budget_ms`; otherwise handed back as a stream
/// of the whole body instead of being held or waited for (a cache fill keeps what it can store and share, and
/// passes on what it cannot). A failed read is an error (the JS error's message), as in [`read_stream_capped`].
pub async fn read_or_pass(
    stream: web_sys::ReadableStream,
    max_bytes: u64,
    budget_ms: u64,
) -> Result<Prefix, String> {
    use futures_util::future::{select, Either};
    use futures_util::StreamExt;
    let mut chunks = wasm_streams::ReadableStream::from_raw(stream.unchecked_into()).into_stream();
    let mut bytes = Vec::new();
    let mut budget = Delay::from(Duration::from_millis(budget_ms));
    loop {
        // A read the budget interrupts stays pending inside `chunks` (wasm-streams keeps it), so nothing is lost.
        let chunk = match select(chunks.next(), &mut budget).await {
            Either::Left((Some(chunk), _)) => chunk.map_err(|e| js_message(&e))?,
            Either::Left((None, _)) => return Ok(Prefix::Whole(bytes)),
            Either::Right(_) => return Ok(Prefix::Late(pass_on(bytes, None, chunks))),
        };
        let array = as_bytes(&chunk);
        if bytes.len() as u64 + u64::from(array.length()) > max_bytes {
            return Ok(Prefix::Over(pass_on(bytes, Some(chunk), chunks)));
        }
        append(&mut bytes, &array);
    }
}

/// A stream of `read` (when not empty), then `chunk`, then the rest of `chunks`.
fn pass_on(
    read: Vec<u8>,
    chunk: Option<JsValue>,
    chunks: wasm_streams::readable::IntoStream<'static>,
) -> web_sys::ReadableStream {
    use futures_util::StreamExt;
    let read = (!read.is_empty()).then(|| JsValue::from(js_sys::Uint8Array::from(read.as_slice())));
    let head = futures_util::stream::iter(read.into_iter().chain(chunk).map(Ok));
    wasm_streams::ReadableStream::from_stream(head.chain(chunks))
        .into_raw()
        .unchecked_into()
}

/// A stream chunk as bytes: a fetched body's chunks are `Uint8Array`s already (anything else is viewed as one).
fn as_bytes(chunk: &JsValue) -> js_sys::Uint8Array {
    chunk
        .clone()
        .dyn_into::<js_sys::Uint8Array>()
        .unwrap_or_else(|other| js_sys::Uint8Array::new(&other))
}

/// Copies `array` onto the end of `bytes` (one copy, out of JS memory).
fn append(bytes: &mut Vec<u8>, array: &js_sys::Uint8Array) {
    let start = bytes.len();
    bytes.resize(start + array.length() as usize, 0);
    array.copy_to(&mut bytes[start..]);
}

/// A thrown JS value's message (an `AbortError`/`TimeoutError` reads as its message), else its debug form.
pub fn js_message(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
