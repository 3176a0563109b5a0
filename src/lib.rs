//! edgekit: an edge application platform for Cloudflare Workers, in one Rust Worker.
//!
//! The runtime sits at the edges of this crate: `entry` (the fetch event, dispatch, responses), each capability's
//! `handler` module, and the Durable Objects' `object` modules in `durable_objects/`. Everything else is pure Rust
//! that never imports `worker` and is tested on the host (`boundary` enforces this).

pub mod bindings;
pub mod body;
pub mod cache_control;
pub mod client_address;
pub mod conditional;
pub mod config;
pub mod cors;
pub mod error;
pub mod field_list;
pub mod gateway;
pub mod health;
pub mod images;
pub mod observability;
pub mod openapi;
// Edge-side rendering (streamed pages from fragments, personalised at the edge).
pub mod ratelimit;
pub mod render;
pub mod rooms;
pub mod router;
pub mod session;
pub mod websocket;

pub mod entry;

#[cfg(test)]
mod boundary;

/// Durable Object classes must be exported from the Worker's wasm module.
pub use durable_objects::RateLimiter;
pub use durable_objects::{Room, RoomDirectory};
