//! Names of the bindings declared in wrangler.toml, in one place. (Durable Object binding names live with each
//! object's protocol in the `durable_objects` crate, next to the object naming they go with.)

/// KV namespace for the JWKS document (`jwks`), the session cache (`session:*`), the gateway's purge marks
/// (`gateway:purge:*`) and the readiness marker; render's content is in `CONTENT_KV`.
pub const CONFIG_KV: &str = "CONFIG_KV";
/// The D1 database; migrations in `migrations/`.
pub const DB: &str = "DB";

/// KV namespace for rendered content: critical CSS, fragments, bundle manifests, flags, geo/catalog, preferences
/// (key layout in `render::keys`).
pub const CONTENT_KV: &str = "CONTENT_KV";

/// Key in [`CONFIG_KV`] holding the JWKS document (RFC 7517) that access tokens are verified against; rotating keys
/// is writing this key.
pub const JWKS_KEY: &str = "jwks";
