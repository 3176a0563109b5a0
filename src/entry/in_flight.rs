//! The requests in flight in this isolate, each with a way to answer it that needs no more of the Wasm instance.
//!
//! A panic aborts the instance (`panic = "abort"`, as workers-rs requires on stable Rust): no future of it is polled
//! again, so every request it was serving — the one that panicked included — waited for the runtime's hung-request
//! detection and got its plain-text 500 (no JSON, no `x-request-id`). Each request's promise ([`serve`]) therefore
//! keeps its resolver here until its handler ends, and the panic hook settles every one still kept ([`answer_all`])
//! with the 500 any other internal error gets, before the instance stops: the promise is JavaScript's, which the
//! abort leaves running.
//!
//! The hook runs in the runtime's context of the request whose code panicked, and workerd refuses to read a body made
//! in one request's context for another ("Cannot perform I/O on behalf of a different request"): that request gets
//! the JSON body, the others the same status and headers without one.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use worker::wasm_bindgen::JsValue;
use worker::{js_sys, wasm_bindgen_futures};

use crate::error::ApiError;

/// What answering a request without its handler takes: the resolver of its promise, and what its answer and its
/// request log line say.
struct Pending {
    answer: js_sys::Function,
    request: Rc<super::Arrived>,
    /// Headers every error answer to it carries, as noted so far ([`note_error_headers`]).
    headers: Vec<(&'static str, String)>,
}

thread_local! {
    /// The next key, and the requests not yet answered by their handler.
    static PENDING: RefCell<(u64, HashMap<u64, Pending>)> = RefCell::new((0, HashMap::new()));
    /// The key of the request whose handler is being polled, if any: the one a panic interrupts.
    static POLLING: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The promise the runtime awaits for `request`: `work`'s outcome, unless the isolate panics first. One promise, as
/// `wasm_bindgen_futures::future_to_promise` makes, whose resolver is kept in [`PENDING`] until `work` ends: the
/// panic hook can settle it, and a request costs no second promise or race.
pub fn serve<F>(request: Rc<super::Arrived>, work: F) -> js_sys::Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    let mut started = Some((request, work));
    js_sys::Promise::new(&mut |resolve, reject| {
        // The executor runs once, synchronously (ECMAScript's Promise constructor).
        let Some((request, work)) = started.take() else {
            return;
        };
        let key = PENDING.with(|cell| {
            let mut pending = cell.borrow_mut();
            let key = pending.0;
            pending.0 = key.wrapping_add(1);
            let answer = resolve;
            let headers = Vec::new();
            pending.1.insert(
                key,
                Pending {
                    answer,
                    request,
                    headers,
                },
            );
            key
        });
        wasm_bindgen_futures::spawn_local(async move {
            let mut work = std::pin::pin!(work);
            let outcome = futures_util::future::poll_fn(|cx| {
                let outer = POLLING.replace(Some(key));
                let poll = work.as_mut().poll(cx);
                POLLING.set(outer);
                poll
            })
            .await;
            let pending = PENDING.with(|cell| cell.borrow_mut().1.remove(&key));
            // A promise's own resolve and reject functions do not throw.
            let _ = match (outcome, pending) {
                (Ok(value), Some(Pending { answer, .. })) => {
                    answer.call1(&JsValue::UNDEFINED, &value)
                }
                (Err(error), Some(_)) => reject.call1(&JsValue::UNDEFINED, &error),
                // Answered by the panic hook, whose instance stops: not reached.
                (_, None) => Ok(JsValue::UNDEFINED),
            };
        });
    })
}

/// Notes headers that every error answer to the request being served carries (the CORS headers that let its page
/// read the answer, the trace it is part of), for the 500 a panic answers it with: without them a trusted page's
/// browser hid that answer, status and `x-request-id` included, as a network error. Called by the code that decides
/// them, while the request's handler runs; elsewhere (a `waitUntil` task) it notes nothing.
pub fn note_error_headers(headers: &[(&'static str, String)]) {
    let Some(key) = POLLING.get() else {
        return;
    };
    PENDING.with(|cell| {
        if let Some(pending) = cell
            .try_borrow_mut()
            .ok()
            .as_mut()
            .and_then(|pending| pending.1.get_mut(&key))
        {
            pending.headers.extend_from_slice(headers);
        }
    });
}

/// The id of the request whose handler was being polled when the isolate panicked, if any (not while the panic
/// interrupted [`serve`] itself): the panic line names it, as the input that reproduces the panic.
pub fn panicking_request_id() -> Option<String> {
    let key = POLLING.get()?;
    PENDING.with(|cell| {
        let pending = cell.try_borrow().ok()?;
        pending.1.get(&key).map(|p| p.request.request_id.clone())
    })
}

/// Answers every request in flight with a 500 `internal_error` (with its JSON body the one whose handler panicked) and
/// writes its request log line: called by the panic hook, whose instance stops after it. A request whose answer
/// already went out (a streamed body) is not in flight.
pub fn answer_all() {
    let panicked = POLLING.get();
    // Not while the panic interrupted [`serve`] itself (the list borrowed): those requests keep the runtime's 500.
    let pending = PENDING.with(|cell| {
        cell.try_borrow_mut()
            .map(|mut pending| std::mem::take(&mut pending.1))
            .unwrap_or_default()
    });
    for (
        key,
        Pending {
            answer,
            request,
            headers,
        },
    ) in pending
    {
        // Each line says which request's handler panicked, and which were taken down with it.
        let detail = if Some(key) == panicked {
            "the isolate panicked in this request's handler"
        } else {
            "the isolate panicked while serving this request"
        };
        let error = ApiError::internal(detail).with_headers(headers);
        let response = if Some(key) == panicked {
            super::respond::error_response(&error)
        } else {
            super::respond::error_head(&error)
        };
        let response = super::respond::with_header(response, "x-request-id", &request.request_id);
        if let Ok(raw) = super::respond::into_raw(response) {
            let _ = answer.call1(&JsValue::UNDEFINED, &raw);
        }
        super::write_request_line(&request, 500, Some(&error));
    }
}
