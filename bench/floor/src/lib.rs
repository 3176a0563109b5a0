//! The least a Rust/wasm Worker can do to proxy a request: one `fetch` to `ORIGIN` with the incoming method, headers
//! and body, and the origin's response handed back untouched (a benchmark floor, see Cargo.toml).

use std::cell::OnceCell;

use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{event, js_sys, web_sys, Context, Env};

thread_local! {
    /// `ORIGIN`, read once per isolate (as edgekit reads its configuration).
    static ORIGIN: OnceCell<String> = const { OnceCell::new() };
}

#[event(fetch)]
async fn fetch(
    req: web_sys::Request,
    env: Env,
    _ctx: Context,
) -> worker::Result<web_sys::Response> {
    let origin = ORIGIN.with(|o| {
        o.get_or_init(|| env.var("ORIGIN").map(|v| v.to_string()).unwrap_or_default())
            .clone()
    });
    let url = req.url();
    let host = url.find("://").map_or(0, |i| i + 3);
    let path = url[host..].find('/').map_or("/", |i| &url[host + i..]);
    let init = web_sys::RequestInit::new();
    init.set_method(&req.method());
    init.set_headers(req.headers().as_ref());
    if let Some(body) = req.body() {
        init.set_body(&body);
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let answer =
        JsFuture::from(global.fetch_with_str_and_init(&format!("{origin}{path}"), &init)).await?;
    answer
        .dyn_into()
        .map_err(|_: JsValue| worker::Error::RustError("fetch answered without a Response".into()))
}
