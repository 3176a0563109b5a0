//! Probe: the smallest SQLite-backed Durable Object, used by `/health/ready` to prove the Durable Object binding and
//! its SQLite storage answer. Invariant: a ping is answered only after its count is stored.

pub mod object;
pub mod protocol;
