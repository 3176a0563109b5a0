//! Image resizing at the edge: `/images/...` URLs parse into one canonical [`transform::Transform`], are checked
//! (limits, source path, optional HMAC signature) before anything is fetched, negotiate the output format from
//! `Accept`, and are cached under a key built from the canonical transform and the negotiated format.
//!
//! Everything here is pure and host-tested except `handler`, which fetches the source (with `cf.image` options in
//! production, through the Images binding locally), talks to the Cache API and builds the response.

pub mod cache_key;
pub mod cf_image;
pub mod config;
pub mod geometry;
pub mod handler;
pub mod header;
pub mod negotiate;
pub mod signature;
pub mod source;
pub mod transform;
pub mod validator;
