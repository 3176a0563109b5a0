//! What the Worker and the Probe object agree on: binding, object name and the reply to a ping.

use serde::{Deserialize, Serialize};

/// wrangler.toml `[[durable_objects.bindings]]` name.
pub const BINDING: &str = "PROBE";

/// The single object readiness checks talk to. Renaming it starts a new, empty object.
pub const OBJECT_NAME: &str = "probe:readiness";

/// Reply to `POST /ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReply {
    /// Pings this object has stored since it was created.
    pub pings: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_name_is_pinned() {
        // Renaming an object silently loses its data: this test fails first.
        assert_eq!(OBJECT_NAME, "probe:readiness");
        assert_eq!(BINDING, "PROBE");
    }
}
