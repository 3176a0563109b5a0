//! Rate limiting: exact per-key limits enforced by sharded `RateLimiter` Durable Objects (algorithm, hash, split and
//! its bounds are documented in `durable_objects::ratelimit`), with the IETF RateLimit headers on every limited
//! response.
//!
//! Other capabilities call [`handler::limit`] (resolve the policy's key from the request, then enforce) or
//! [`handler::enforce`] with a key they resolved themselves ([`key::resolve`]), and stamp the returned headers on
//! whatever answers the counted request, an error too, with `RateLimitHeaders::stamp` (`stamp_all` for several).
//! A refusal is an `ApiError` 429 carrying the headers and `Retry-After`; returning it with `?` is all a handler
//! does. The life of a limited request:
//! 1. [`plan`]: a key this isolate saw refused, still inside its retry time, is refused here (no round trip);
//!    a split key picks its next part not known exhausted;
//! 2. one `POST /take` to object `<policy>:<fnv1a64(key) % shards>`, which decides with GCRA and stores the new
//!    state in SQLite before answering;
//! 3. allowed → headers; refused → remembered in the isolate, 429; object unreachable → the policy's failure mode
//!    (`open`: allowed without a `RateLimit` header; `closed`: 503 `rate_limit_unavailable`).

pub mod handler;
pub mod headers;
pub mod key;
pub mod memory;
pub mod plan;
pub mod policy;
