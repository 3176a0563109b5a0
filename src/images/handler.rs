//! Runtime side of `/images/...`: parse and check the request (pure), verify a signature when signing is on, look
//! the variant up in the Cache API, otherwise fetch the source and produce the variant — through `cf.image` options
//! on the source fetch (`IMAGES_MODE = "cf-image"`, production) or the Images binding `IMAGES` (`"binding"`;
//! Miniflare implements it with sharp) — cache it and answer with `x-cache` and `Vary: Accept`. Concurrent misses for
//! one variant in an isolate share one source fetch and transform. A variant carries a strong `ETag` (a digest of its
//! bytes, stored with it) and a matching `If-None-Match` is answered 304.
//!
//! workers-rs 0.8.7 has no typed Images binding, so it is driven through `js_sys::Reflect` on the env object.

use std::time::Duration;
use worker::js_sys::{self, Function, Promise, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use worker::{web_sys, Cache, Delay, Fetch, Headers, Request, Response, ResponseBody};

use super::cache_key::cache_key;
use super::cf_image::CfImage;
use super::config::{ImagesConfig, ImagesMode};
use super::geometry::{output_size, servable_original, within, MAX_SOURCE_PIXELS};
use super::header::{
    chunks, declared, gif_blocks, isobmff_boxes, jpeg_segments, over_budget, Declared, MAX_GRIDS,
    SIZE_BYTES,
};
use super::negotiate::{
    displayable, negotiate, sniffed_mime, source_mime, Negotiated, HEADER_BYTES, SIGNATURE_BYTES,
};
use super::signature;
use super::transform::{self, FormatChoice, ImageRequest};
use super::validator;
use crate::entry::body::{read_stream_capped_blob, ReadError};
use crate::entry::coalesce::{self, InFlight, Lead};
use crate::entry::respond::with_header;
use crate::entry::Call;
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::observability::trace::OriginTrace;

/// Binding name of the Images binding (wrangler.toml `[images] binding = "IMAGES"`).
pub const IMAGES_BINDING: &str = "IMAGES";
/// Says a variant could not be produced and the original bytes were served instead.
const TRANSFORM_HEADER: &str = "x-image-transform";

thread_local! {
    /// Variants being made in this isolate, by cache key: concurrent misses for one variant wait for the request
    /// making it and read what it stored (`entry::coalesce`), so a cold image asked for by many at once costs one
    /// source fetch and one transform, not one each. The outcome says only that the variant was stored.
    static MAKING: InFlight<()> = std::cell::RefCell::new(std::collections::HashMap::new());
}

/// A produced body: its bytes (held by the runtime as a `Blob`, never copied into wasm memory, which never shrinks),
/// MIME type, and what it is.
struct Variant {
    body: web_sys::Blob,
    mime: String,
    made: Made,
}

/// What a produced body is: the requested variant, or the original in its place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    Variant,
    /// The transform failed: served, never stored (the next request may succeed).
    Failed,
    /// The variant would pass `IMAGES_MAX_SOURCE_BYTES`: every request for it would end so, so the original is
    /// stored in the variant's place.
    Oversized,
}

impl Made {
    /// The `x-image-transform` value of an original served in the variant's place.
    fn mark(self) -> Option<&'static str> {
        match self {
            Made::Variant => None,
            Made::Failed => Some("failed; served the original"),
            Made::Oversized => Some("too large; served the original"),
        }
    }
}

pub async fn serve(call: &Call) -> ApiResult<Response> {
    let config = &call.isolate.config.images;
    // Without an origin there is no image service to ask about: every URL under it is 404, well-formed or not.
    let Some(origin) = &config.origin else {
        return Err(ApiError::not_found(
            "no image origin is configured (IMAGES_ORIGIN)",
        ));
    };
    let url = call.req.url().or_internal("reading the request URL")?;
    let rest = call.params.get("path").map(String::as_str).unwrap_or("");
    let request = transform::parse(rest, url.query(), &config.limits)?;
    if let Some(secret) = &config.signing_secret {
        signature::verify(secret, &request, call.started_ms / 1000)?;
    }
    // Said to the client on a HIT and a MISS alike (the stored copy keeps the full TTL: every request is verified
    // before the cache is read).
    let signed_exp = config.signing_secret.as_ref().and(request.signature.exp);
    let cache_control =
        signature::client_cache_control(config.cache_ttl_secs, signed_exp, call.started_ms / 1000);

    let accept = call.req.headers().get("accept").ok().flatten();
    let if_match = call.req.headers().get("if-match").ok().flatten();
    let if_none_match = call.req.headers().get("if-none-match").ok().flatten();
    let conditional =
        |response| preconditions(response, if_match.as_deref(), if_none_match.as_deref());
    let format = negotiate(request.transform.format, accept.as_deref());
    let vary = request.transform.format == FormatChoice::Auto;
    let key = cache_key(&config.variant_scope, &request, format);
    let cache = Cache::default();
    // The cache only saves transforms: a read that fails, or has not answered within the source timeout (the wait
    // the miss then allows the source), is a miss (logged), not a failed request held for as long as the cache takes.
    let read_stored = || async {
        let read = crate::entry::within_ms(
            cache.get(key.as_str(), false),
            u64::from(config.source_timeout_ms),
        )
        .await;
        let detail = match read {
            Some(Ok(hit)) => return hit.map(as_answered),
            Some(Err(e)) => e.to_string(),
            None => format!(
                "no answer in {} ms (the source timeout)",
                config.source_timeout_ms
            ),
        };
        crate::entry::log::warn(
            "image cache read failed",
            serde_json::json!({"request_id": call.request_id, "detail": detail}),
        );
        None
    };
    if let Some(hit) = read_stored().await {
        return conditional(finish(hit, "HIT", vary, &cache_control));
    }
    // The lead makes at most four timed steps: the source fetch and the resize (binding mode), or in cf-image mode
    // the resized fetch, a JPEG or PNG one for a client taking neither WebP nor AVIF, and the original after a resize
    // error; then the cache write. Its claim stands, and its waiters wait, that long and a second more.
    let making_ms = coalesce::hold_ms(4 * u64::from(config.source_timeout_ms));
    // Another request of this isolate is making this variant: wait for it (at most as long as its source fetch and
    // transform may take), then read the cache. When it stored nothing (a failure, an original served in the
    // variant's place without being stored) or went away, this request makes the variant itself.
    if let Some(slot) = coalesce::in_progress(&MAKING, &key) {
        if coalesce::wait(&MAKING, &key, &slot, Some(making_ms))
            .await
            .is_some()
        {
            if let Some(hit) = read_stored().await {
                return conditional(finish(hit, "HIT", vary, &cache_control));
            }
        }
    }
    // Lapses when its waiters stop waiting: a lead the runtime cancelled without dropping it (a client gone) holds
    // the key no longer.
    let lead = Lead::claim_at(&MAKING, &key, crate::entry::respond::now_ms(), making_ms);

    let source_url = request.source.url_under(origin);
    let trace = call.origin_trace();
    let asking = Asking {
        request_id: &call.request_id,
        trace: &trace,
    };
    let variant = match config.mode {
        ImagesMode::Binding => {
            via_binding(call, config, &request, format, &source_url, asking).await?
        }
        ImagesMode::CfImage => via_cf_image(config, &request, format, &source_url, asking).await?,
    };
    let made = variant.made;
    let marked = move |response: Response| match made.mark() {
        Some(mark) => with_header(response, TRANSFORM_HEADER, mark),
        None => response,
    };
    let variant = match made {
        Made::Variant => variant,
        Made::Failed | Made::Oversized => as_sniffed(variant).await?,
    };
    if made == Made::Failed {
        let response = marked(blob_response(&variant, "no-store", None));
        return conditional(finish(response, "MISS", vary, "no-store"));
    }
    // Stored with the answer, so a HIT gives the tag a MISS gave for the same bytes. Bounded like every other step
    // (the digest reads the runtime's Blob, which should never stall or fail): one that fails, or has not answered
    // within the source timeout, leaves the variant served untagged and not stored (a stored copy must carry its
    // tag), logged — the image is made, so it is never a 500 for want of its tag.
    let digest =
        crate::entry::within_ms(etag_of(&variant.body), u64::from(config.source_timeout_ms)).await;
    let etag = match validator::tag_or_why(digest, config.source_timeout_ms) {
        Ok(etag) => etag,
        Err(detail) => {
            crate::entry::log::warn(
                "image etag digest failed",
                serde_json::json!({"request_id": call.request_id, "detail": detail}),
            );
            drop(lead);
            let response = marked(blob_response(&variant, &cache_control, None));
            return conditional(finish(response, "MISS", vary, &cache_control));
        }
    };
    // Stored before answering, so the next request finds it; a failed write costs the next request a transform,
    // never this one its image.
    let stored = marked(blob_response(
        &variant,
        &format!("public, max-age={}, immutable", config.cache_ttl_secs),
        Some(&etag),
    ));
    // Bounded like the read (and the gateway's puts): a put that has not answered within the source timeout no
    // longer holds the answer, and its waiters, told nothing was stored, make their own; but the write goes on under
    // `waitUntil` (for PUT_FOLLOW_MS more at most), so it may still land for the requests after them — dropped, the
    // runtime would end it with the request.
    let put = Box::pin({
        let (cache, key) = (Cache::default(), key.clone());
        async move {
            cache
                .put(key.as_str(), stored)
                .await
                .map_err(|e| e.to_string())
        }
    });
    match settled_or_late(
        put,
        Delay::from(Duration::from_millis(config.source_timeout_ms.into())),
    )
    .await
    {
        Ok(Ok(())) => lead.publish(()),
        Ok(Err(detail)) => crate::entry::log::warn(
            "image cache write failed",
            serde_json::json!({"request_id": call.request_id, "detail": detail}),
        ),
        Err(late) => {
            drop(lead);
            let (request_id, limit_ms) = (call.request_id.clone(), config.source_timeout_ms);
            call.ctx.wait_until(async move {
                let follow = Delay::from(Duration::from_millis(PUT_FOLLOW_MS));
                match crate::entry::before(late, follow).await {
                    Some(Ok(())) => crate::entry::log::write(
                        crate::observability::log::Level::Info,
                        "image cache write landed late",
                        serde_json::json!({"request_id": request_id, "after_ms": limit_ms}),
                    ),
                    Some(Err(detail)) => crate::entry::log::warn(
                        "image cache write failed",
                        serde_json::json!({"request_id": request_id, "detail": detail}),
                    ),
                    None => crate::entry::log::warn(
                        "image cache write failed",
                        serde_json::json!({
                            "request_id": request_id,
                            "detail": format!(
                                "no answer in {limit_ms} ms (the source timeout) and {PUT_FOLLOW_MS} ms more"
                            ),
                        }),
                    ),
                }
            });
        }
    }
    conditional(finish(
        marked(blob_response(&variant, &cache_control, Some(&etag))),
        "MISS",
        vary,
        &cache_control,
    ))
}

/// How long a variant's cache write that outran the source timeout is followed under `waitUntil` after it: well
/// inside the 30 s the runtime gives `waitUntil` work after the answer (Cloudflare's Workers limits), past which it
/// neither settles the put nor fires the timer, and the future — the variant's response with it — would stay in the
/// isolate for good.
const PUT_FOLLOW_MS: u64 = 20_000;

/// The variant's cache write as it stands when `timer` fires: its outcome (`Ok`) if it settled first, else the
/// write itself, still under way (`Err`) — to be followed on under `waitUntil`, not dropped: dropping it leaves the
/// runtime's put to end with the request, so a put that was slow, not failed, never lands.
async fn settled_or_late<P, E>(
    put: P,
    timer: impl std::future::Future<Output = ()>,
) -> Result<Result<(), E>, P>
where
    P: std::future::Future<Output = Result<(), E>> + Unpin,
{
    use futures_util::future::{select, Either};
    match select(put, std::pin::pin!(timer)).await {
        Either::Left((settled, _)) => Ok(settled),
        Either::Right(((), put)) => Err(put),
    }
}

/// `response` as the request's preconditions leave it (RFC 9110 §13.2.2, evaluated once the answer would be a 200):
/// an `If-Match` that names no current representation — by strong comparison, §13.1.1; `*` names any — is answered
/// 412 (the Worker makes the variants, so it answers for them as their origin, which MUST evaluate it), and else an
/// `If-None-Match` is looked at ([`not_modified_or`]). `If-Unmodified-Since` and `If-Modified-Since` are ignored: a
/// variant has no modification date (§13.1.4, §13.1.3).
fn preconditions(
    response: Response,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> ApiResult<Response> {
    if let Some(if_match) = if_match {
        let matched = match response.headers().get("etag").ok().flatten() {
            Some(etag) => crate::conditional::strong_match(if_match, &etag),
            None => crate::conditional::any(if_match),
        };
        if !matched {
            return Err(ApiError::precondition_failed(
                "If-Match names no current representation of this variant",
            ));
        }
    }
    Ok(not_modified_or(response, if_none_match))
}

/// `response`, or a 304 in its place when `If-None-Match` names its `ETag` (RFC 9110 §13.1.2, §15.4.5): no body, and
/// the headers a 200 would have sent that a cache needs to update its copy — `ETag`, `Cache-Control`, `Vary` — with
/// `x-cache` and the marks. Only a variant has a tag, so a fallback (the original, served untagged) is answered
/// whole unless the list is `*`, which names any current representation and so the fallback too (§13.1.2).
fn not_modified_or(response: Response, if_none_match: Option<&str>) -> Response {
    let Some(if_none_match) = if_none_match else {
        return response;
    };
    let matched = match response.headers().get("etag").ok().flatten() {
        Some(etag) => crate::conditional::none_match(if_none_match, &etag),
        None => crate::conditional::any(if_none_match),
    };
    if !matched {
        return response;
    }
    let headers = Headers::new();
    for name in [
        "etag",
        "cache-control",
        "vary",
        "x-cache",
        "x-content-type-options",
        TRANSFORM_HEADER,
    ] {
        if let Some(value) = response.headers().get(name).ok().flatten() {
            let _ = headers.set(name, &value);
        }
    }
    Response::builder()
        .with_status(304)
        .with_headers(headers)
        .empty()
}

/// The strong `ETag` of a body (`validator::etag`): its SHA-256, from the runtime's `crypto.DigestStream` fed the
/// Blob's stream, so the bytes are neither copied into wasm memory nor held a second time whole (a variant may be
/// as large as `IMAGES_MAX_SOURCE_BYTES`, beside its source); only the 32-byte digest is read.
async fn etag_of(body: &web_sys::Blob) -> ApiResult<String> {
    let failed = js_internal("digesting the variant for its ETag");
    let digest = async {
        let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
        let digest_stream: Function =
            Reflect::get(&crypto, &JsValue::from_str("DigestStream"))?.dyn_into()?;
        let sink = Reflect::construct(
            &digest_stream,
            &js_sys::Array::of1(&JsValue::from_str("SHA-256")),
        )?;
        awaited(call_method(&stream_of(body), "pipeTo", &[&sink])?).await?;
        awaited(Reflect::get(&sink, &JsValue::from_str("digest"))?).await
    };
    let digest = digest.await.map_err(failed)?;
    Ok(validator::etag(&js_sys::Uint8Array::new(&digest).to_vec()))
}

/// A response of the variant's bytes, read from its `Blob` (each response its own stream of the same bytes). Its
/// `Content-Length` is the Blob's size, said outright: the runtime drops a body's length from the answer to a HEAD,
/// so a HEAD that missed — which makes and stores the variant like a GET, and is told what a GET would get — went
/// without one (RFC 9110 §9.3.2, §8.6), while a HEAD that hit was told the stored length.
fn blob_response(variant: &Variant, cache_control: &str, etag: Option<&str>) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", &variant.mime);
    let _ = headers.set("content-length", &(variant.body.size() as u64).to_string());
    let _ = headers.set("cache-control", cache_control);
    if let Some(etag) = etag {
        let _ = headers.set("etag", etag);
    }
    Response::builder()
        .with_headers(headers)
        .body(ResponseBody::Stream(variant.body.stream()))
}

/// A stored variant as this request's answer, as its MISS was: without what the Cache API says of its copy — `Date`
/// (when it was stored), `Age`, `CF-Cache-Status` (`x-cache` says HIT). The answer's `Cache-Control` is this
/// request's (a signed URL's `max-age` is the seconds left until `exp` now), but a browser or shared cache counts a
/// response's age from its `Date` (RFC 9111 §4.2.3): a variant stored a day ago, asked for with an hour-long
/// signature, came a day old with an hour to live — stale on arrival, and asked for again on every use.
fn as_answered(stored: Response) -> Response {
    ["date", "age", "cf-cache-status"]
        .into_iter()
        .fold(stored, crate::entry::respond::without_header)
}

fn finish(response: Response, cache: &str, vary: bool, cache_control: &str) -> Response {
    let response = with_header(response, "x-cache", cache);
    // An image is never read as anything else, whatever a browser would guess from its bytes.
    let response = with_header(response, "x-content-type-options", "nosniff");
    let response = with_header(response, "cache-control", cache_control);
    if vary {
        with_header(response, "vary", "Accept")
    } else {
        response
    }
}

/// The source response checked: 404 → 404, other failures → 502 (a redirect too: the source is always
/// `{IMAGES_ORIGIN}/{path}`, never where an origin points), not an image → 415, too large → 413. Read into a `Blob`.
async fn checked_source(
    response: Response,
    config: &ImagesConfig,
    source: &SourceRequest,
) -> ApiResult<(web_sys::Blob, String)> {
    match response.status_code() {
        // Only a whole representation: 204/205 have none, 206 is a part of one.
        200 | 203 => {}
        404 | 410 => {
            return Err(ApiError::new(
                404,
                "source_not_found",
                "the source image does not exist",
            ))
        }
        status => return Err(super::source::unusable_answer(status)),
    }
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    let Some(mime) = source_mime(&content_type) else {
        return Err(not_an_image());
    };
    let too_large = || {
        ApiError::payload_too_large(format!(
            "the source image is larger than {} bytes (IMAGES_MAX_SOURCE_BYTES)",
            config.max_source_bytes
        ))
    };
    let declared = response.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|l| l.trim().parse::<u64>().ok())
        .is_some_and(|l| l > config.max_source_bytes)
    {
        return Err(too_large());
    }
    // Read chunk by chunk up to the cap (a chunked or endless source is not buffered past it), and a source cut off
    // mid-body is an error, not a shorter image (worker's `bytes()` reads an aborted body as complete).
    // (A fetched body is always a stream.)
    let bytes = match response.body() {
        ResponseBody::Stream(stream) => {
            read_stream_capped_blob(stream.clone(), config.max_source_bytes)
                .await
                .map_err(|e| match e {
                    ReadError::TooLarge => too_large(),
                    ReadError::Failed(detail) => source.broke_off(detail),
                })?
        }
        _ => web_sys::Blob::new().map_err(js_internal("holding an empty source"))?,
    };
    if bytes.size() == 0.0 {
        return Err(ApiError::new(
            502,
            "bad_gateway",
            "the image origin answered an empty body",
        ));
    }
    Ok((bytes, mime.to_owned()))
}

/// An original about to be served in place of its variant, as the image its first bytes show: a body that only
/// claims to be one (an error page labelled `image/png`) is refused 415, as README's "not an image" promises, and
/// one whose header declares more pixels than a variant can be made from (a decompression bomb: a few hundred bytes
/// of PNG saying 50,000 × 50,000 px, which no resizer takes; a long side alone is no bomb), or an animation whose
/// frames together are that many (`header::over_budget`), is refused 413 rather
/// than passed on to the browsers that would decode it — a variant, made by the resizer, needs no such look.
async fn as_sniffed(variant: Variant) -> ApiResult<Variant> {
    let head = head_of(&variant.body, 0, SIZE_BYTES).await?;
    let mime = sniffed_mime(&head).ok_or_else(not_an_image)?;
    // A JPEG's frame header may follow any number of APPn segments, a GIF's frames any number of extensions and an
    // animation's frames run to its end: followed window by window (each window moves past at least one segment,
    // block or chunk, and the image is at most IMAGES_MAX_SOURCE_BYTES).
    // Its length tells a walk that reaches the end of a full window that nothing follows: no empty read after it.
    let length = variant.body.size() as u64;
    let mut size = declared(&head, length);
    let size = loop {
        size = match size {
            Declared::Size(width, height) => break (width, height, 1),
            Declared::Animation(width, height, frames) => break (width, height, frames),
            // A JPEG, PNG, WebP, AVIF or GIF by its first bytes whose header never says its size (three bytes of
            // JPEG, a PNG signature then garbage) is no image a browser can show: the origin's answer is broken,
            // and is refused rather than served as a 200 "original".
            Declared::Unknown => {
                return Err(ApiError::new(
                    502,
                    "bad_gateway",
                    "the source image is cut short or corrupt: its header does not say its size",
                ))
            }
            // A PNG whose header says its size, but whose bytes no decoder reads a pixel from: as broken.
            Declared::NoPixels => {
                return Err(ApiError::new(
                    502,
                    "bad_gateway",
                    "the source image is cut short or corrupt: its header says its size, but it breaks off before \
                     its first pixel",
                ))
            }
            // A chunk no PNG decoder may pass over: refused as what it is (Apple's CgBI, before IHDR or after it).
            Declared::UnknownCritical(kind) if &kind == b"CgBI" => return Err(apple_png()),
            Declared::UnknownCritical(kind) => {
                return Err(ApiError::unsupported_media_type(format!(
                    "the source PNG has an unknown critical chunk ({}) before its pixels, which browsers cannot \
                     show: serve a standard PNG",
                    kind.escape_ascii()
                )))
            }
            Declared::TooManyGrids => {
                return Err(ApiError::payload_too_large(format!(
                    "the source image has more than {MAX_GRIDS} grid images, more than the size check reads"
                )))
            }
            // An AVIF's boxes, window by window (each moves past at least one box header), and its grids' data (a
            // read per extent, MAX_GRIDS grids at most).
            Declared::Boxes(walk) => {
                let window = head_of(&variant.body, walk.at, SIZE_BYTES).await?;
                isobmff_boxes(&window, *walk, length)
            }
            Declared::ReadOn(at) => {
                jpeg_segments(&head_of(&variant.body, at, SIZE_BYTES).await?, at, 0, length)
            }
            // A GIF's blocks and an animated PNG's or WebP's chunks, window by window to the end (each moves past
            // at least a block or a chunk header), counting frames until they are too many.
            Declared::GifFrom(walk) => {
                gif_blocks(&head_of(&variant.body, walk.at, SIZE_BYTES).await?, walk, length)
            }
            Declared::Chunks(walk) => {
                chunks(&head_of(&variant.body, walk.at, SIZE_BYTES).await?, walk, length)
            }
        };
    };
    let (width, height, frames) = size;
    if !servable_original(width, height) {
        return Err(ApiError::payload_too_large(format!(
            "the source image is {width} x {height} px, more than a variant can be made from (at most {} \
             megapixels)",
            MAX_SOURCE_PIXELS / 1_000_000
        )));
    }
    if over_budget((width, height), frames) {
        return Err(ApiError::payload_too_large(format!(
            "the source animation is {width} x {height} px in {frames} frames or more, more than a variant can be \
             made from (at most {} megapixels in all its frames)",
            MAX_SOURCE_PIXELS / 1_000_000
        )));
    }
    Ok(Variant {
        mime: mime.to_owned(),
        ..variant
    })
}

/// `bytes` bytes of a body from offset `from` (fewer where it ends), copied into wasm memory.
async fn head_of(body: &web_sys::Blob, from: u64, bytes: usize) -> ApiResult<Vec<u8>> {
    let head = body
        .slice_with_f64_and_f64(from as f64, from.saturating_add(bytes as u64) as f64)
        .map_err(js_internal("slicing the image"))?;
    let head = JsFuture::from(head.array_buffer())
        .await
        .map_err(js_internal("reading the image's first bytes"))?;
    Ok(js_sys::Uint8Array::new(&head).to_vec())
}

/// The format to make: `format`, except that `Original` of a WebP or AVIF, which a client whose `Accept` took
/// neither cannot show, is the JPEG or PNG its header allows (`negotiate::displayable`).
async fn shown_as(format: Negotiated, body: &web_sys::Blob, mime: &str) -> ApiResult<Negotiated> {
    if format != Negotiated::Original || !matches!(mime, "image/webp" | "image/avif") {
        return Ok(format);
    }
    let head = head_of(body, 0, HEADER_BYTES).await?;
    Ok(displayable(mime, &head).unwrap_or(format))
}

/// The 415 for an Apple-optimised PNG (`CgBI` before `IHDR`, or after it: `header::Declared::UnknownCritical`).
fn apple_png() -> ApiError {
    ApiError::unsupported_media_type(
        "the source is an Apple-optimised PNG (CgBI), which browsers cannot show: serve a standard PNG",
    )
}

/// The 415 for a source that is not one of the images a variant can be made from.
fn not_an_image() -> ApiError {
    ApiError::unsupported_media_type("the source is not a JPEG, PNG, WebP, AVIF or GIF image")
}

/// Who a source request is made for: the image request's `x-request-id` and the trace its source fetches continue
/// (`Call::origin_trace`, drawn once, so every fetch of one image request is in one trace, each its own span).
#[derive(Clone, Copy)]
struct Asking<'a> {
    request_id: &'a str,
    trace: &'a OriginTrace,
}

/// One source request: redirects are not followed (a 3xx is refused by [`checked_source`]), so an open redirect on
/// the origin cannot point the Worker at another host or at plain http; and the whole exchange, headers and body,
/// is cut off after `IMAGES_SOURCE_TIMEOUT_MS` (504), so a trickling origin cannot hold the request open. It carries
/// the request's `x-request-id` and its trace (`traceparent`, with a continued trace's `tracestate`), so the
/// origin's logs and traces line up with the image request that asked (as the gateway's and render's origin
/// requests do).
struct SourceRequest {
    init: web_sys::RequestInit,
    timeout: web_sys::AbortSignal,
    timeout_ms: u32,
}

impl SourceRequest {
    fn new(config: &ImagesConfig, asking: Asking) -> Self {
        let init = web_sys::RequestInit::new();
        init.set_redirect(web_sys::RequestRedirect::Manual);
        // A request id is 1 to 128 characters of a header-safe alphabet (`observability::request_id`): `set` cannot
        // refuse it, and a source request without it would still be a good one.
        if let Ok(headers) = web_sys::Headers::new() {
            let _ = headers.set("x-request-id", asking.request_id);
            for (name, value) in asking.trace.fields(crate::entry::respond::span_random()) {
                let _ = headers.set(name, &value);
            }
            init.set_headers(headers.as_ref());
        }
        let timeout = web_sys::AbortSignal::timeout_with_u32(config.source_timeout_ms);
        init.set_signal(Some(&timeout));
        Self {
            init,
            timeout,
            timeout_ms: config.source_timeout_ms,
        }
    }

    /// The error for a failed exchange: 504 once the timeout cut it off, else 502.
    fn failed(&self, doing: &str, detail: impl std::fmt::Display) -> ApiError {
        if self.timeout.aborted() {
            ApiError::gateway_timeout(u64::from(self.timeout_ms))
                .with_internal(format!("{doing}: {detail}"))
        } else {
            ApiError::bad_gateway(format!("{doing}: {detail}"))
        }
    }

    /// The error for a source body that stopped before its end: 504 once the timeout cut it off, else a 502 saying
    /// that the origin's answer broke off — it did answer, so "could not be reached" would send whoever debugs it to
    /// the network rather than to the origin.
    fn broke_off(&self, detail: impl std::fmt::Display) -> ApiError {
        if self.timeout.aborted() {
            return self.failed("reading the source", detail);
        }
        ApiError::new(
            502,
            "bad_gateway",
            "the image origin's answer broke off before the whole image",
        )
        .with_internal(format!("reading the source: {detail}"))
    }

    async fn send(&self, url: &str, doing: &str) -> ApiResult<Response> {
        let js_request = web_sys::Request::new_with_str_and_init(url, &self.init)
            .map_err(|e| ApiError::internal(format!("building the {doing} request: {e:?}")))?;
        Fetch::Request(Request::from(js_request))
            .send()
            .await
            .map_err(|e| self.failed(doing, e))
    }
}

async fn fetch_source(
    url: &str,
    config: &ImagesConfig,
    asking: Asking<'_>,
) -> ApiResult<(web_sys::Blob, String)> {
    let source = SourceRequest::new(config, asking);
    let response = source.send(url, "fetching the source").await?;
    checked_source(response, config, &source).await
}

/// Production: the source fetch carries `cf.image`, so Cloudflare returns the variant. Cloudflare keeps the source's
/// format when none is given, which this Worker does not know before the answer: a WebP or AVIF variant for a client
/// taking neither is asked for again as JPEG or PNG (one more resize, once per variant: it is then cached).
async fn via_cf_image(
    config: &ImagesConfig,
    request: &ImageRequest,
    format: Negotiated,
    source_url: &str,
    asking: Asking<'_>,
) -> ApiResult<Variant> {
    let variant = cf_image_fetch(config, request, format, source_url, asking).await?;
    if variant.made == Made::Variant {
        let shown = shown_as(format, &variant.body, &variant.mime).await?;
        if shown != format {
            return cf_image_fetch(config, request, shown, source_url, asking).await;
        }
    }
    Ok(variant)
}

/// One source fetch carrying `cf.image` for `format`. A resize error (reported in the `cf-resized` header as
/// `err=...`) falls back to the original, fetched without options; an answer without `cf-resized` was not resized at
/// all and is that original.
async fn cf_image_fetch(
    config: &ImagesConfig,
    request: &ImageRequest,
    format: Negotiated,
    source_url: &str,
    asking: Asking<'_>,
) -> ApiResult<Variant> {
    let options = CfImage::new(&request.transform, format, config.limits.max_side);
    let source = SourceRequest::new(config, asking);
    let cf = js_sys::JSON::parse(&options.cf_json())
        .map_err(js_internal("building cf.image options"))?;
    Reflect::set(&source.init, &JsValue::from_str("cf"), &cf)
        .map_err(js_internal("setting cf.image options"))?;
    let response = source
        .send(source_url, "fetching the source with cf.image")
        .await?;
    let resized = response.headers().get("cf-resized").ok().flatten();
    if resized.is_none() {
        // No Cf-Resized: resizing was not attempted (Image Resizing off for the zone, or another Worker in the
        // way), so the answer is the original — served as the fallback, never stored as the variant.
        let (body, mime) = checked_source(response, config, &source).await?;
        crate::entry::log::warn(
            "cf.image was not applied (no Cf-Resized header): is Image Resizing enabled for the zone?",
            serde_json::json!({"request_id": asking.request_id}),
        );
        return Ok(Variant {
            body,
            mime,
            made: Made::Failed,
        });
    }
    if resized.is_some_and(|v| v.contains("err=")) {
        let (body, mime) = fetch_source(source_url, config, asking).await?;
        return Ok(Variant {
            body,
            mime,
            made: Made::Failed,
        });
    }
    let (body, mime) = checked_source(response, config, &source).await?;
    Ok(Variant {
        body,
        mime,
        made: Made::Variant,
    })
}

/// Locally (and with the real binding): fetch the source, read its size with `IMAGES.info`, then
/// `IMAGES.input(..).transform({width, height, fit}).output({format, quality})`. A failure (an empty output too) serves
/// the original.
async fn via_binding(
    call: &Call,
    config: &ImagesConfig,
    request: &ImageRequest,
    format: Negotiated,
    source_url: &str,
    asking: Asking<'_>,
) -> ApiResult<Variant> {
    // Looked up first: without the binding no source is worth fetching.
    let images = images_binding(&call.env).map_err(|problem| {
        ApiError::internal(format!(
            "the {IMAGES_BINDING} binding {problem} ([images] in wrangler.toml)"
        ))
    })?;
    let (source, labelled) = fetch_source(source_url, config, asking).await?;
    // The source's format is what its bytes are, as Cloudflare reads it in cf-image mode: a transparent logo served
    // `image/jpeg` stays a PNG (a JPEG has no alpha), a photo served `image/png` a JPEG. The label still decides
    // whether it is an image at all (415); bytes of no format known here are left to the binding under it.
    let head = head_of(&source, 0, SIGNATURE_BYTES).await?;
    let source_mime = sniffed_mime(&head).unwrap_or(&labelled).to_owned();
    let out_mime = shown_as(format, &source, &source_mime)
        .await?
        .mime(&source_mime)
        .to_owned();
    // Bounded like the source: a resizer that hangs answers 504 after IMAGES_SOURCE_TIMEOUT_MS rather than holding
    // the request, and a variant larger than IMAGES_MAX_SOURCE_BYTES (a huge PNG) is not served or stored: the
    // original is, in its place.
    // A second handle on the same runtime Blob (no bytes copied): the original stays servable if this fails.
    let input = source.clone();
    let transform =
        transform_with_binding(&images, &input, request, &out_mime, config.limits.max_side);
    let timer = Delay::from(Duration::from_millis(config.source_timeout_ms.into()));
    futures_util::pin_mut!(transform, timer);
    let made = match futures_util::future::select(transform, timer).await {
        futures_util::future::Either::Left((made, _)) => made,
        futures_util::future::Either::Right(_) => {
            return Err(ApiError::new(
                504,
                "gateway_timeout",
                format!(
                    "the image was not transformed within {} ms",
                    config.source_timeout_ms
                ),
            ))
        }
    };
    match made {
        Ok(out) if out.size() > config.max_source_bytes as f64 => {
            crate::entry::log::warn(
                "image variant over IMAGES_MAX_SOURCE_BYTES; serving the original",
                serde_json::json!({"request_id": call.request_id, "bytes": out.size()}),
            );
            Ok(Variant {
                body: source,
                mime: source_mime,
                made: Made::Oversized,
            })
        }
        Ok(out) => Ok(Variant {
            body: out,
            mime: out_mime.clone(),
            made: Made::Variant,
        }),
        Err(error) => {
            crate::entry::log::warn(
                "image transform failed; serving the original",
                serde_json::json!({"request_id": call.request_id, "detail": format!("{error:?}")}),
            );
            Ok(Variant {
                body: source,
                mime: source_mime,
                made: Made::Failed,
            })
        }
    }
}

/// The Images binding, or what is wrong with it: not bound at all, or bound to something without the Images
/// binding's `info` and `input` (another kind of binding under its name). Also `/health/ready`'s check.
pub fn images_binding(env: &worker::Env) -> Result<JsValue, &'static str> {
    let binding = Reflect::get(env.as_ref(), &JsValue::from_str(IMAGES_BINDING))
        .ok()
        .filter(|b| b.is_object())
        .ok_or("is missing")?;
    let callable = |name: &str| {
        Reflect::get(&binding, &JsValue::from_str(name)).is_ok_and(|f| f.is_function())
    };
    if callable("info") && callable("input") {
        Ok(binding)
    } else {
        Err("is not an Images binding")
    }
}

/// Maps a JS exception to a 500 whose log detail says what was being done.
fn js_internal(doing: &'static str) -> impl Fn(JsValue) -> ApiError {
    move |e| ApiError::internal(format!("{doing}: {e:?}"))
}

fn stream_of(source: &web_sys::Blob) -> JsValue {
    JsValue::from(source.stream())
}

fn call_method(target: &JsValue, name: &str, args: &[&JsValue]) -> Result<JsValue, JsValue> {
    let method: Function = Reflect::get(target, &JsValue::from_str(name))?.dyn_into()?;
    let list = js_sys::Array::new();
    for arg in args {
        list.push(arg);
    }
    method.apply(target, &list)
}

async fn awaited(value: JsValue) -> Result<JsValue, JsValue> {
    match value.dyn_into::<Promise>() {
        Ok(promise) => JsFuture::from(promise).await,
        Err(value) => Ok(value),
    }
}

fn number(object: &JsValue, key: &str) -> Result<u32, JsValue> {
    Reflect::get(object, &JsValue::from_str(key))?
        .as_f64()
        .filter(|n| *n >= 1.0)
        .map(|n| n as u32)
        .ok_or_else(|| JsValue::from_str(&format!("info has no {key}")))
}

async fn transform_with_binding(
    images: &JsValue,
    source: &web_sys::Blob,
    request: &ImageRequest,
    out_mime: &str,
    max_side: u32,
) -> Result<web_sys::Blob, JsValue> {
    let info = awaited(call_method(images, "info", &[&stream_of(source)])?).await?;
    let (width, height) = within(
        output_size(
            &request.transform,
            number(&info, "width")?,
            number(&info, "height")?,
        ),
        max_side,
    );
    let options = js_sys::Object::new();
    Reflect::set(&options, &"width".into(), &width.into())?;
    Reflect::set(&options, &"height".into(), &height.into())?;
    Reflect::set(
        &options,
        &"fit".into(),
        &request.transform.effective_fit().as_str().into(),
    )?;
    let output = js_sys::Object::new();
    Reflect::set(&output, &"format".into(), &out_mime.into())?;
    Reflect::set(
        &output,
        &"quality".into(),
        &u32::from(request.transform.quality).into(),
    )?;
    let transformer = call_method(images, "input", &[&stream_of(source)])?;
    let transformer = call_method(&transformer, "transform", &[&options])?;
    let result = awaited(call_method(&transformer, "output", &[&output])?).await?;
    let response: web_sys::Response = call_method(&result, "response", &[])?.dyn_into()?;
    let variant: web_sys::Blob = JsFuture::from(response.blob()?).await?.dyn_into()?;
    // No bytes is no image: a resizer that failed once its answer had begun (Miniflare's, on a PNG whose pixel data
    // is cut short) answers 200 and nothing, which stored would be every client's empty image for IMAGES_CACHE_TTL.
    if variant.size() == 0.0 {
        return Err(JsValue::from_str("the transform produced an empty image"));
    }
    Ok(variant)
}

#[cfg(test)]
mod tests {
    use worker::{ResizeConfig, ResizeFit, ResizeFormat, ResizeQuality};

    use super::*;
    use crate::images::transform::{Fit, Transform};

    #[test]
    fn a_cache_write_past_its_timer_is_handed_on_not_dropped() {
        use futures_util::future::{pending, ready, FutureExt};
        // A put that has not answered when the timer fires no longer holds the answer, but is given back whole (to
        // be followed under waitUntil): the same write then lands. Dropped, as it was, it never did.
        let (land, landing) = futures_channel::oneshot::channel::<Result<(), String>>();
        let put = Box::pin(async move { landing.await.unwrap_or(Err("gone".to_owned())) });
        let Some(Err(late)) = settled_or_late(put, ready(())).now_or_never() else {
            panic!("the timer fired first: the write is handed back");
        };
        land.send(Ok(())).expect("the write is still awaited");
        assert_eq!(late.now_or_never(), Some(Ok(())), "the same write lands");
        assert!(matches!(
            settled_or_late(pending::<Result<(), String>>(), ready(())).now_or_never(),
            Some(Err(_))
        ));
        assert_eq!(
            settled_or_late(ready(Ok::<(), String>(())), pending())
                .now_or_never()
                .and_then(Result::ok),
            Some(Ok(())),
            "a stored variant is no failure"
        );
        assert_eq!(
            settled_or_late(ready(Err::<(), _>("quota".to_owned())), pending())
                .now_or_never()
                .and_then(Result::ok),
            Some(Err("quota".to_owned()))
        );
    }

    /// workers-rs 0.8.7's `ResizeConfig` (what `CfProperties.image` would send) against the documented `cf.image`
    /// shape: `quality` must be a plain number and unset options must be absent. It gets `quality` wrong, which is
    /// why `CfImage` builds the object itself.
    #[test]
    fn workers_rs_resize_config_serialises_quality_wrongly_so_we_build_cf_image_ourselves() {
        let upstream = ResizeConfig {
            width: Some(300),
            height: Some(200),
            fit: Some(ResizeFit::ScaleDown),
            format: Some(ResizeFormat::Avif),
            quality: Some(ResizeQuality::Specific { value: 80 }),
            dpr: Some(2.0),
            ..Default::default()
        };
        let upstream = serde_json::to_value(&upstream).expect("serialises");
        assert_eq!(upstream["width"], 300);
        assert_eq!(upstream["fit"], "scale-down", "fit names are right");
        assert_eq!(upstream["format"], "avif", "format names are right");
        assert_eq!(
            upstream["quality"],
            serde_json::json!({"value": 80}),
            "quality is nested, not a number"
        );
        assert!(
            upstream["blur"].is_null(),
            "unset options are present (null in JSON, undefined in JS)"
        );
        assert!(
            upstream.get("origin-auth").is_some(),
            "field names are kebab-case"
        );

        let ours = CfImage::new(
            &Transform {
                width: Some(300),
                height: Some(200),
                fit: Fit::ScaleDown,
                quality: 80,
                dpr_hundredths: 100,
                format: FormatChoice::Auto,
            },
            Negotiated::Avif,
            4096,
        );
        let ours = serde_json::to_value(&ours).expect("serialises");
        assert_eq!(ours["quality"], 80);
        assert!(ours.get("dpr").is_none(), "sides in device pixels, no dpr");
        for field in ["width", "height", "fit", "format"] {
            assert_eq!(
                ours[field], upstream[field],
                "{field} agrees with workers-rs"
            );
        }
        assert_eq!(
            ours.as_object().map(|o| o.len()),
            Some(5),
            "nothing else is sent"
        );
    }
}
