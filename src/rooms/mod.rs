//! Rooms: collaborative Yjs documents on Durable Objects (`durable_objects::room`), joined with single-use tickets
//! and listed by a sharded directory. This module holds the pure parts the Worker needs: the configuration section
//! and the demo page (a join's handshake is read by `crate::websocket`, as a gateway route's is); `handler` is the
//! runtime side.

pub mod handler;
pub mod page;

use durable_objects::room::log::CompactionPolicy;
use durable_objects::room::protocol::RoomSettings;

use crate::config::{ConfigError, Vars};
use crate::error::ApiError;

/// `[vars]` of the rooms capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomsConfig {
    /// What every room enforces (sent to the room object with each request).
    pub settings: RoomSettings,
    /// How long a ticket from `POST /rooms/{id}/ticket` stays valid.
    pub ticket_ttl_ms: u64,
    /// `ROOMS_TICKET_POLICY`: the rate-limit policy (per user) tickets are issued under — each ticket for a new
    /// name sets up a stored room object.
    pub ticket_policy: String,
    /// `ROOMS_LIST_MEMORY_MS`: how long an isolate answers `GET /rooms` from its last listing (concurrent listings
    /// share one in any case). The route is public and asks every directory shard, so this bounds what asking it
    /// costs; 0 keeps only the sharing.
    pub list_memory_ms: u64,
    /// `ROOMS_LIST_MAX_ROOMS`: the most rooms `GET /rooms` lists, largest first. The route is public, and any
    /// signed-in user opens a room per ticket: unbounded, one account's rooms grew every listing (and what each
    /// shard ships and each isolate holds) by the thousands an hour.
    pub list_max_rooms: u32,
}

impl RoomsConfig {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let u32_in = |key: &str, default: u64, min: u64, max: u64| {
            vars.u64_in(key, default, min, max).map(|v| v as u32)
        };
        Ok(Self {
            settings: RoomSettings {
                max_message_bytes: u32_in("ROOMS_MAX_MESSAGE_BYTES", 256 * 1024, 64, 1024 * 1024)?,
                updates_per_second: u32_in("ROOMS_UPDATES_PER_SECOND", 60, 1, 10_000)?,
                // At least a join's own messages, which spend tokens at once (a y-websocket client's sync step 1,
                // its presence once it names a user, its sync step 2): a burst of 1 or 2 closed every such client
                // 1008 as it joined, and it never synced however long it retried.
                update_burst: u32_in("ROOMS_UPDATE_BURST", 200, 3, 100_000)?,
                max_members: u32_in("ROOMS_MAX_MEMBERS", 250, 1, 10_000)?,
                compaction: CompactionPolicy {
                    max_entries: vars.u64_in("ROOMS_COMPACT_AFTER_UPDATES", 500, 1, 1_000_000)?,
                    max_bytes: vars.u64_in(
                        "ROOMS_COMPACT_AFTER_BYTES",
                        1024 * 1024,
                        1024,
                        64 * 1024 * 1024,
                    )?,
                },
                directory_shards: u32_in("ROOMS_DIRECTORY_SHARDS", 4, 1, 64)?,
                directory_report_ms: vars.u64_in("ROOMS_DIRECTORY_REPORT_SECONDS", 60, 1, 3600)?
                    * 1000,
                // Out-of-order updates are taken within moments in an honest room; a day leaves an author who
                // relayed edits before going offline time to come back.
                waiting_ttl_ms: vars.u64_in("ROOMS_WAITING_TTL_SECONDS", 86_400, 1, 30 * 86_400)?
                    * 1000,
                // Below the 2 MB a SQLite-backed object stores per row, which the snapshot must fit in.
                max_document_bytes: vars.u64_in(
                    "ROOMS_MAX_DOCUMENT_BYTES",
                    1024 * 1024,
                    64 * 1024,
                    1_900_000,
                )?,
                // Set from the session settings by `Config::parse` (see there).
                session_max_ms: 0,
                session_idle_ms: 0,
            },
            ticket_ttl_ms: vars.u64_in("ROOMS_TICKET_TTL_SECONDS", 60, 5, 3600)? * 1000,
            ticket_policy: vars.string_or("ROOMS_TICKET_POLICY", "rooms-ticket")?,
            list_memory_ms: vars.u64_in("ROOMS_LIST_MEMORY_MS", 1_000, 0, 60_000)?,
            list_max_rooms: u32_in("ROOMS_LIST_MAX_ROOMS", 1_000, 1, 10_000)?,
        })
    }
}

/// A room object's refusal — its JSON error `body` with `status` (a join's 401 `ticket_invalid` or 429 `room_full`, a
/// state read's 500 `room_unavailable`) — as the Worker's own error, with its code, message and `Retry-After`:
/// answered through the one error path, the request's log line names its code, as every error answer's does (passed
/// on as the room wrote it, a refused join was logged as a bare 401). `None` for anything else (left as it came).
pub fn room_refusal(status: u16, body: &[u8], retry_after: Option<&str>) -> Option<ApiError> {
    #[derive(serde::Deserialize)]
    struct Refusal {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
        message: String,
    }
    if !(400..=599).contains(&status) {
        return None;
    }
    let Refusal { error } = serde_json::from_slice(body).ok()?;
    let code = durable_objects::room::protocol::refusal_code(&error.code)?;
    let refusal = ApiError::new(status, code, error.message);
    Some(match retry_after {
        Some(seconds) => refusal.with_header("retry-after", seconds),
        None => refusal,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn a_rooms_refusal_becomes_the_workers_error_with_its_code_message_and_retry_after() {
        let body = br#"{"error":{"code":"reply_rate_exceeded","message":"join again shortly"}}"#;
        let refusal = room_refusal(429, body, Some("7")).expect("a refusal");
        assert_eq!(
            (refusal.status(), refusal.code()),
            (429, "reply_rate_exceeded")
        );
        assert_eq!(
            refusal.body(),
            r#"{"error":{"code":"reply_rate_exceeded","message":"join again shortly"}}"#,
            "the body the room wrote"
        );
        assert_eq!(
            refusal.response_headers(&[]),
            vec![("retry-after", "7")],
            "its Retry-After kept"
        );
        let cases: &[(u16, &[u8], &str)] = &[
            (
                401,
                br#"{"error":{"code":"made_up","message":"x"}}"#,
                "a code no room answers",
            ),
            (401, b"not json", "a body that is no JSON"),
            (401, br#"{"error":{"code":"ticket_invalid"}}"#, "no message"),
            (
                200,
                br#"{"error":{"code":"ticket_invalid","message":"x"}}"#,
                "a success",
            ),
        ];
        for (status, body, what) in cases {
            assert!(room_refusal(*status, body, None).is_none(), "{what}");
        }
    }

    #[test]
    fn defaults_apply_and_bad_values_name_their_key() {
        let empty: HashMap<&str, Value> = HashMap::new();
        let config = RoomsConfig::parse(&Vars::new(&empty)).expect("defaults are valid");
        assert_eq!(
            config.settings.max_message_bytes,
            256 * 1024,
            "message cap default"
        );
        assert_eq!(config.ticket_ttl_ms, 60_000, "ticket ttl default");
        assert_eq!(config.list_max_rooms, 1_000, "listing size default");
        let cases: &[(&str, Value)] = &[
            ("ROOMS_MAX_MESSAGE_BYTES", json!(10)),
            ("ROOMS_MAX_MEMBERS", json!(0)),
            // Below a join's own messages: no y-websocket client showing presence could join.
            ("ROOMS_UPDATE_BURST", json!(2)),
            ("ROOMS_DIRECTORY_SHARDS", json!("many")),
            ("ROOMS_LIST_MEMORY_MS", json!(60_001)),
            ("ROOMS_TICKET_TTL_SECONDS", json!(1)),
            ("ROOMS_MAX_DOCUMENT_BYTES", json!(2_000_000)),
            ("ROOMS_LIST_MAX_ROOMS", json!(0)),
            ("ROOMS_LIST_MAX_ROOMS", json!(10_001)),
        ];
        for (key, value) in cases {
            let src: HashMap<&str, Value> = [(*key, value.clone())].into_iter().collect();
            let error = RoomsConfig::parse(&Vars::new(&src)).expect_err(key);
            assert_eq!(error.key, *key, "{key}={value}");
        }
    }
}
