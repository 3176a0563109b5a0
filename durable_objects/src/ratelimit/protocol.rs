//! What the Worker and the `RateLimiter` object agree on: the binding, how objects are named (policy and shard),
//! the paths and the wire types. Renaming an object or changing its name format loses the state it holds.

use serde::{Deserialize, Serialize};

use super::gcra::Decision;

/// wrangler.toml `[[durable_objects.bindings]]` name.
pub const BINDING: &str = "RATE_LIMITER";

/// The object `/health/ready` pings. Cannot collide with a policy's objects: their names end in a shard number.
pub const READINESS_OBJECT: &str = "ratelimit:readiness";

/// `POST` a [`TakeRequest`], get a [`TakeReply`]: decide (and spend) one request.
pub const TAKE_PATH: &str = "/take";
/// `POST` a [`TakeRequest`], get a [`StandingReply`]: where the key stands, spending nothing.
pub const STANDING_PATH: &str = "/standing";
/// `POST` anything, get a [`PingReply`]: a SQLite write and read, for readiness.
pub const PING_PATH: &str = "/ping";

/// On the object's 503 to a take it got at or after its deadline: how many ms past it (by the object's clock). A
/// Worker still waiting for that answer learns the object's clock runs ahead of its own.
pub const LATE_HEADER: &str = "x-ratelimit-late-ms";

/// Longest key the object accepts.
pub const MAX_KEY_BYTES: usize = 512;

/// The object holding shard `shard` of policy `policy`.
pub fn object_name(policy: &str, shard: u32) -> String {
    format!("{policy}:{shard}")
}

/// One request's worth of a key's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeRequest {
    /// The state key (a split key's sub-key included).
    pub key: String,
    /// The limit this key enforces (a split key's share).
    pub limit: u32,
    pub window_ms: u64,
    /// When the Worker stops waiting for the answer, plus a margin for the two clocks (ms since the epoch; the
    /// Worker's `DEADLINE_MARGIN_MS`), for a request its policy refuses when the limiter is late
    /// (`failure = "closed"`): a take the object gets to at or after it spends nothing, as the client was already
    /// refused 503. Absent: decided whenever it arrives (a request let through by a late limiter
    /// did pass, so it counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// The object's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeReply {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_ms: u64,
    pub retry_after_ms: u64,
}

impl From<Decision> for TakeReply {
    fn from(d: Decision) -> Self {
        Self {
            allowed: d.allowed,
            limit: d.limit,
            remaining: d.remaining,
            reset_ms: d.reset_ms,
            retry_after_ms: d.retry_after_ms,
        }
    }
}

/// A key's standing: whether state is stored for it, and what the next request would see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingReply {
    pub stored: bool,
    pub standing: TakeReply,
}

/// Reply to a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReply {
    /// Pings this object has stored since it was created.
    pub pings: u64,
    /// Keys this object holds state for.
    pub keys: u64,
    /// `/take` requests this instance of the object has answered since it started (in memory: an observable count of
    /// round trips, which shows the isolate refusing exhausted keys without one).
    pub takes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_and_binding_are_pinned() {
        // Renaming an object silently loses its data: this test fails first.
        assert_eq!(object_name("api", 0), "api:0");
        assert_eq!(object_name("login", 15), "login:15");
        assert_eq!(READINESS_OBJECT, "ratelimit:readiness");
        assert_eq!(BINDING, "RATE_LIMITER");
    }
}
