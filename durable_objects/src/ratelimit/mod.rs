//! RateLimiter: exact per-key rate limits, sharded over many Durable Objects.
//!
//! **Algorithm: GCRA** ([`gcra`]). Chosen over a sliding-window counter because it is exact with one integer per
//! key (the sliding-window *counter* interpolates the previous window and is approximate; an exact sliding *log*
//! stores one row per request), it yields both IETF figures directly (remaining = whole intervals of slack, reset =
//! time until the bucket is full) and `Retry-After` (time until one interval of slack), and its arithmetic is done in
//! units of `1/limit` ms so no ratio of window to limit rounds. Semantics: a bucket of `limit` requests refilling
//! at `limit / window`; from rest exactly `limit` pass at once, and in any interval of length `t` at most
//! `limit + ⌊t·limit/window⌋` pass.
//!
//! **Sharding** ([`shard`]). A policy's key goes to object `<policy>:<fnv1a64(key) % N>` ([`protocol::object_name`]);
//! each key lives in exactly one object, so its limit stays exact however many keys share that object.
//!
//! **Hot-key split** ([`shard::target`]). A key a policy marks with `S` parts is enforced as `S` sub-keys
//! `key␟0 … key␟S-1` (hashed to shards independently), part `i` enforcing share `⌊L/S⌋ (+1 for i < L mod S)`; the
//! shares add up to exactly `L`. The caller picks the part round-robin per isolate, skipping parts it knows to be
//! exhausted. Bounds, per window, from rest:
//! - over-admission: **none**. Each part is exact and the shares sum to `L`, so at most `L` pass at once (and over
//!   an interval `t`, at most what one unsplit key would pass, `L + Σ⌊t·Lᵢ/W⌋ ≤ L + ⌊t·L/W⌋`).
//! - under-admission: a request may be refused while other parts still hold quota. With one isolate sending, the
//!   parts' request counts differ by at most 1, so at a refusal each other part has at most 1 left: at most `S − 1`
//!   requests of quota are unused when the first refusal happens. With `I` isolates each rotating independently the
//!   counts differ by at most `I`, so at most `(S − 1)·I`; demand that keeps coming drains every part and all `L`
//!   pass. `examples/shard_sim.rs` measures this with the real code.
//!
//! **Storage.** One object holds many keys: a SQLite row per key (`keys`: TAT as whole ms + fraction + the limit it
//! was computed under, and its expiry), written before the decision is answered, so a restart loses nothing. An
//! alarm deletes rows whose bucket is full again (such a row reads exactly like a fresh key), at most once a second
//! per object ([`limiter::MIN_SWEEP_GAP_MS`]).
//!
//! Files: [`gcra`] (the algorithm), [`shard`] (hash, split), [`limiter`] (the object's logic over a storage trait),
//! [`protocol`] (shared with the Worker), `object` (the `#[durable_object]` glue, SQLite and alarm).

pub mod gcra;
pub mod limiter;
pub mod object;
pub mod protocol;
pub mod shard;
