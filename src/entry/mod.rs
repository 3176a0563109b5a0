//! The Worker's entry: every request passes through [`fetch`], which gives it a request id, loads the isolate's
//! configuration, dispatches on the route table, turns any [`ApiError`] into its JSON response (the one place that
//! happens), stamps `x-request-id` and writes one structured log line. It never returns `Err`.

pub mod body;
pub mod coalesce;
pub mod debug_panic;
mod dispatch;
mod env_vars;
pub mod header_list;
mod in_flight;
mod isolate;
pub mod log;
pub mod respond;

use std::collections::HashMap;
use std::rc::Rc;

use worker::{event, Context, Env, Request, Response};

use crate::client_address::ClientAddress;
use crate::error::ApiError;
use crate::observability::log::{clipped, panic_line, sampled, RequestLog, MAX_ECHO_BYTES};
use crate::observability::request_id;
use crate::observability::trace::OriginTrace;

pub use in_flight::note_error_headers;
pub use isolate::Isolate;

/// Everything a handler gets: the request, the runtime handles, the isolate's config and the route's parameters.
pub struct Call {
    pub req: Request,
    pub env: Env,
    pub ctx: Context,
    pub isolate: Rc<Isolate>,
    pub params: HashMap<String, String>,
    pub request_id: String,
    /// The request method as the client sent it. workers-rs' `Request::method()` reads any method it does not know
    /// (PROPFIND, PURGE, …) as GET, which would route, cache and forward such a request as a GET.
    pub method: String,
    /// Milliseconds since the epoch when the request arrived (the runtime clock; pure code gets it as a parameter).
    pub started_ms: u64,
    /// Whether a success of this request is logged (`REQUEST_LOG_PERCENT`, drawn once): a handler that writes a
    /// closing line of its own after the request line (a streamed page's end) follows the same draw, so a sampled
    /// page has both lines or neither.
    pub log_success: bool,
}

impl Call {
    /// The trace this request's origin fetches continue (a render fragment's, an image source's): its incoming
    /// `traceparent` continued, else a new trace (`observability::trace`), as the gateway's origin requests carry
    /// it. Each fetch takes its fields with a span id of its own ([`respond::span_random`]).
    pub fn origin_trace(&self) -> OriginTrace {
        let header = |name: &str| self.req.headers().get(name).ok().flatten();
        let trace = crate::observability::trace::continue_or_start(
            header("traceparent").as_deref(),
            respond::trace_random(),
            self.isolate.config.gateway.trace_sample_percent,
        );
        OriginTrace::new(trace, header("tracestate").as_deref())
    }

    /// The client's address, from the headers Cloudflare's edge sets (see [`ClientAddress`]): what every rate-limit
    /// key, session record, `X-Forwarded-For` and cache fill names the client by.
    pub fn client_address(&self) -> Option<ClientAddress> {
        let header = |name: &str| self.req.headers().get(name).ok().flatten();
        ClientAddress::read(
            header("cf-connecting-ip").as_deref(),
            header("cf-connecting-ipv6").as_deref(),
        )
    }
}

#[event(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let service = log::service();
        let request_id = in_flight::panicking_request_id();
        worker::console_error!(
            "{}",
            panic_line(
                service.as_deref(),
                &message,
                location.as_deref(),
                request_id.as_deref()
            )
        );
        // The instance stops after this hook: the requests it was serving are answered now.
        in_flight::answer_all();
    }));
}

/// What the entry reads of a request before its handler runs: what its answer and its log line name it by.
pub struct Arrived {
    pub request_id: String,
    /// As the client sent it (see [`Call::method`]).
    pub method: String,
    pub path: String,
    /// Milliseconds since the epoch when it arrived.
    pub started_ms: u64,
    /// Kept to read `cf.colo` only if the request is logged.
    for_log: worker::web_sys::Request,
}

/// The Worker's fetch export (what `#[event(fetch)]` would generate, but answered through [`in_flight::serve`], so
/// that a panic answers the requests in flight with JSON rather than leaving them to the runtime). One difference:
/// an `Err` of [`handle`] (only when even the error's own response cannot be built) rejects the promise, leaving the
/// answer to the runtime as an uncaught exception, where the macro logged it and answered a text 500 itself.
#[worker::wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen = ::worker::wasm_bindgen)]
pub fn fetch(
    raw: worker::web_sys::Request,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> worker::js_sys::Promise {
    let started_ms = respond::now_ms();
    respond::defer_cf(&raw);
    let for_log = Clone::clone(&raw);
    let req = Request::from(raw);
    let incoming_id = req.headers().get("x-request-id").ok().flatten();
    let arrived = Rc::new(Arrived {
        request_id: request_id::accept_or_generate(incoming_id.as_deref(), respond::random_bytes()),
        method: for_log.method(),
        path: req.path(),
        started_ms,
        for_log,
    });
    let ctx = Context::new(ctx);
    in_flight::serve(Rc::clone(&arrived), async move {
        handle(req, arrived, env, ctx)
            .await
            .map(worker::wasm_bindgen::JsValue::from)
            .map_err(worker::wasm_bindgen::JsValue::from)
    })
}

async fn handle(
    req: Request,
    arrived: Rc<Arrived>,
    env: Env,
    ctx: Context,
) -> worker::Result<worker::web_sys::Response> {
    let isolate = isolate::get(&env);
    let log_percent = isolate
        .as_ref()
        .map_or(100, |i| i.config.core.request_log_percent);
    // Drawn before dispatch, so the handler knows whether a success is logged (`Call::log_success`).
    let roll = if log_percent >= 100 {
        0
    } else {
        let [a, b, c, d, ..] = respond::random_bytes();
        u32::from_le_bytes([a, b, c, d])
    };
    let outcome = match isolate {
        Ok(isolate) => {
            let call = Call {
                req,
                env,
                ctx,
                isolate,
                params: HashMap::new(),
                request_id: arrived.request_id.clone(),
                method: arrived.method.clone(),
                started_ms: arrived.started_ms,
                log_success: sampled(200, log_percent, roll),
            };
            dispatch::dispatch(call).await
        }
        Err(error) => {
            // Read before answering, as any refusal before its body is read: answered while an upload was still
            // coming, the client saw its connection reset instead of the 500 naming the key.
            let mut req = req;
            body::drain(&mut req).await;
            Err(error)
        }
    };
    let (response, error): (Response, Option<ApiError>) = match outcome {
        Ok(response) => (response, None),
        Err(error) => (respond::error_response(&error), Some(error)),
    };
    let stamped = |r: Response| respond::with_header(r, "x-request-id", &arrived.request_id);
    // Built here rather than by workers-rs, whose conversion panics on a response the runtime refuses.
    let (response, error) = match respond::into_raw(stamped(response)) {
        Ok(raw) => (raw, error),
        Err(refused) => {
            let error = ApiError::bad_gateway(format!(
                "the runtime refused the response: {}",
                body::js_message(&refused)
            ));
            let raw = respond::into_raw(stamped(respond::error_response(&error)))
                .map_err(|e| worker::Error::from(body::js_message(&e)))?;
            (raw, Some(error))
        }
    };

    let status = response.status();
    if sampled(status, log_percent, roll) {
        write_request_line(&arrived, status, error.as_ref());
    }
    Ok(response)
}

/// The request's log line, through the console method of its level, as for every other line (`entry::log`).
fn write_request_line(arrived: &Arrived, status: u16, error: Option<&ApiError>) {
    let level = RequestLog::level_for(status);
    let service = log::service();
    let line = RequestLog {
        level,
        msg: "request",
        service: service.as_deref(),
        method: &arrived.method,
        // A path is echoed at most MAX_ECHO_BYTES long (one request must not write a 20 KB line).
        path: &clipped(&arrived.path, MAX_ECHO_BYTES),
        status,
        duration_ms: respond::now_ms().saturating_sub(arrived.started_ms),
        request_id: &arrived.request_id,
        colo: &respond::cf_string(&arrived.for_log, "colo").unwrap_or_default(),
        error_code: error.map(ApiError::code),
        detail: error.and_then(ApiError::internal_detail),
    }
    .to_line();
    match level {
        "error" => worker::console_error!("{line}"),
        "warn" => worker::console_warn!("{line}"),
        _ => worker::console_log!("{line}"),
    }
}

/// `work`'s output, or `None` when `timer` fires first (`work` dropped: a runtime call it made goes on unawaited).
pub async fn before<F, T>(work: F, timer: T) -> Option<F::Output>
where
    F: std::future::Future,
    T: std::future::Future<Output = ()>,
{
    use futures_util::future::{select, Either};
    match select(std::pin::pin!(work), std::pin::pin!(timer)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

/// [`before`] a timer of `ms`: for a read whose wait the request must not take past its own budget, such as a Cache
/// API `get` stalling, or a KV read the page goes on without.
pub async fn within_ms<F: std::future::Future>(work: F, ms: u64) -> Option<F::Output> {
    before(
        work,
        worker::Delay::from(std::time::Duration::from_millis(ms)),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::before;
    use futures_util::future::{self, FutureExt};

    #[test]
    fn a_read_before_the_shell_gives_way_to_its_timer() {
        assert_eq!(
            before(future::ready(7), future::pending::<()>()).now_or_never(),
            Some(Some(7))
        );
        assert_eq!(
            before(future::pending::<u8>(), future::ready(())).now_or_never(),
            Some(None)
        );
        assert_eq!(
            before(future::pending::<u8>(), future::pending::<()>()).now_or_never(),
            None,
            "neither yet"
        );
    }
}
