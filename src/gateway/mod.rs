//! The API gateway: configured routes to origins with JWT/session auth, rate limits, a WAF, an edge cache with
//! stampede protection and W3C trace propagation (`observability::trace`, shared with render and images). Pure rules
//! live in the modules below; `handler` is the runtime.

pub mod cache;
pub mod config;
pub mod cors;
pub mod handler;
pub mod headers;
pub mod inflate;
pub mod jwt;
pub mod key_set;
pub mod request_url;
pub mod routes;
pub mod token_cache;
pub mod waf;
