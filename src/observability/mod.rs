//! Observability: request ids, W3C trace context and the structured log line every request writes.

pub mod log;
pub mod request_id;
pub mod trace;
