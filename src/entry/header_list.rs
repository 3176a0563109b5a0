//! Whole header lists across the wasm boundary. `worker::Headers::entries()` makes about seven calls into
//! JavaScript per header (iterator step, result object, two array reads, two string copies); the gateway reads
//! every request and response header it proxies, so [`read`] takes the list out as one JSON string
//! (`Array.from(headers)` + `JSON.stringify`) and lookups happen in Rust.

use worker::js_sys::{Array, JSON};
use worker::Headers;

/// Every header as (name, value), names lower-case as the runtime keeps them, `set-cookie` lines kept apart.
pub fn read(headers: &Headers) -> Vec<(String, String)> {
    let pairs = JSON::stringify(&Array::from(headers.0.as_ref()))
        .ok()
        .and_then(|s| s.as_string())
        .and_then(|s| serde_json::from_str(&s).ok());
    // The runtime hands out strings only, so the fast path cannot fail; the slow one keeps this total regardless.
    pairs.unwrap_or_else(|| headers.entries().collect())
}

/// A new mutable header list holding `pairs`, in order (repeated names are appended, not replaced). One `append`
/// per pair: measured cheaper than `new Headers(JSON.parse(…))`, whose sequence conversion in workerd costs more
/// than the calls it saves. A value the runtime refuses (e.g. a control character) skips just that line.
pub fn build<'a>(pairs: impl IntoIterator<Item = &'a (String, String)>) -> Headers {
    let headers = Headers::new();
    for (name, value) in pairs {
        let _ = headers.append(name, value);
    }
    headers
}

/// The first value of `name` (lower-case) in a list from [`read`].
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
