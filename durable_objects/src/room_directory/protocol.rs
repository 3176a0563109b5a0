//! What rooms, the Worker and the directory shards agree on: binding, shard naming, the stable shard hash and the
//! report/listing wire types.

use serde::{Deserialize, Serialize};

/// wrangler.toml `[[durable_objects.bindings]]` name.
pub const BINDING: &str = "ROOM_DIRECTORY";

pub const PATH_REPORT: &str = "/report";
pub const PATH_LIST: &str = "/list";
/// `GET`: a [`Count`] of the rows the shard stores, stale and emptied ones included (what its storage holds, for
/// tests and operators; nothing is deleted by asking).
pub const PATH_COUNT: &str = "/count";
/// Query parameter of `GET /list`: at most this many rooms, largest first (the order [`merge`] lists them in).
pub const LIMIT_PARAM: &str = "limit";
/// Rooms a shard lists when the request names no (valid) limit.
pub const DEFAULT_LIST_LIMIT: u32 = 10_001;

/// The `limit` of a `GET /list` query string: a whole number from 1 up, else [`DEFAULT_LIST_LIMIT`].
pub fn list_limit(query: Option<&str>) -> u32 {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix(LIMIT_PARAM)?.strip_prefix('='))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_LIST_LIMIT)
}

/// The shard object `shard`. Renaming it loses the listing: a test pins the format.
pub fn object_name(shard: u32) -> String {
    format!("room-directory:{shard}")
}

/// The object `/health/ready` asks for its [`Count`] to see that [`BINDING`] is bound to the directory class: no
/// room reports to it (shards are named by number), so the probe never adds to a real shard's load.
pub const READINESS_OBJECT: &str = "room-directory:readiness";

/// The shard a room reports to: FNV-1a (64-bit) of the name modulo `shards`. Stable across builds and platforms
/// (never `DefaultHasher`, whose output may change between Rust releases).
pub fn shard_of(room: &str, shards: u32) -> u32 {
    (crate::hash::fnv1a64(room.as_bytes()) % u64::from(shards.max(1))) as u32
}

/// A room is listed while its last report is at most this many of its report intervals old (a room with members
/// reports every `RoomSettings::directory_report_ms`, and says so in each report).
pub const STALE_AFTER_REPORTS: u64 = 3;

/// The interval a report without one (from before it was sent) is taken to have.
pub const DEFAULT_REPORT_MS: u64 = 60_000;

/// `POST /report`: a room's current member count. Reports are ordered by `(updated_ms, seq)` — `seq` counts a
/// room object's reports, for two within one millisecond — and a shard keeps only the newest, so one that arrives
/// late cannot bring back an older count (or an emptied room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub room: String,
    pub members: u32,
    pub updated_ms: u64,
    #[serde(default)]
    pub seq: u64,
    /// The room's own report interval: its row expires `STALE_AFTER_REPORTS` intervals after `updated_ms`, whatever
    /// interval the Worker that lists it has configured (they differ while a changed setting rolls out).
    #[serde(default)]
    pub report_ms: u64,
}

impl Report {
    /// When this report stops vouching for the room.
    pub fn expires_ms(&self) -> u64 {
        let every = if self.report_ms == 0 {
            DEFAULT_REPORT_MS
        } else {
            self.report_ms
        };
        self.updated_ms
            .saturating_add(STALE_AFTER_REPORTS.saturating_mul(every))
    }
}

/// A shard's row for one room, as `GET /list` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub room: String,
    pub members: u32,
    pub updated_ms: u64,
    pub expires_ms: u64,
}

/// The answer to `GET /count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub rows: u64,
}

/// One active room in the public listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRoom {
    pub room: String,
    pub members: u32,
}

/// Merges shard listings into one, largest rooms first, then by name: rooms with members whose report has not
/// expired at `now_ms`, each once — with the newest report when two shards list it (the shard count changed, and
/// the old shard's row has not expired yet) — and at most `max` of them: the second value says whether any were
/// left out. Each shard is asked for its `max + 1` largest, so the `max` largest of all are among them.
pub fn merge(shards: Vec<Vec<Listed>>, now_ms: u64, max: usize) -> (Vec<ActiveRoom>, bool) {
    let mut newest: std::collections::BTreeMap<String, Listed> = std::collections::BTreeMap::new();
    for row in shards.into_iter().flatten() {
        if row.expires_ms < now_ms {
            continue;
        }
        match newest.get(&row.room) {
            Some(known) if known.updated_ms >= row.updated_ms => {}
            _ => {
                newest.insert(row.room.clone(), row);
            }
        }
    }
    let mut all: Vec<ActiveRoom> = newest
        .into_values()
        .filter(|r| r.members > 0)
        .map(|r| ActiveRoom {
            room: r.room,
            members: r.members,
        })
        .collect();
    all.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.room.cmp(&b.room)));
    let truncated = all.len() > max;
    all.truncate(max);
    (all, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_and_hashes_are_pinned() {
        // Renaming a shard or changing the hash moves rooms to other shards: these fail first.
        assert_eq!(object_name(3), "room-directory:3");
        assert_eq!(BINDING, "ROOM_DIRECTORY");
        assert_eq!(READINESS_OBJECT, "room-directory:readiness");
        let cases: &[(&str, u32, u32)] =
            &[("notes", 1, 0), ("notes", 4, 2), ("demo", 4, 2), ("", 4, 1)];
        for (room, shards, shard) in cases {
            assert_eq!(shard_of(room, *shards), *shard, "{room:?} over {shards}");
        }
    }

    #[test]
    fn rooms_spread_over_every_shard() {
        let mut seen = [0u32; 8];
        for i in 0..800 {
            seen[shard_of(&format!("room-{i}"), 8) as usize] += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 60),
            "every shard gets a fair share: {seen:?}"
        );
    }

    #[test]
    fn a_report_expires_after_three_of_its_own_intervals() {
        let report = |report_ms| Report {
            room: "r".into(),
            members: 1,
            updated_ms: 1_000,
            seq: 1,
            report_ms,
        };
        assert_eq!(report(2_000).expires_ms(), 7_000);
        assert_eq!(
            report(0).expires_ms(),
            1_000 + 3 * DEFAULT_REPORT_MS,
            "reports from before the field"
        );
    }

    #[test]
    fn merged_listings_drop_empty_and_stale_rooms_keep_the_newest_report_and_sort_by_size() {
        let l = |room: &str, members, updated_ms| Listed {
            room: room.into(),
            members,
            updated_ms,
            expires_ms: updated_ms + 10,
        };
        let r = |room: &str, members| ActiveRoom {
            room: room.into(),
            members,
        };
        let shards = || {
            vec![
                vec![l("b", 2, 100), l("gone", 0, 100), l("moved", 9, 60)],
                vec![l("a", 2, 100), l("c", 5, 100), l("stale", 7, 49)],
                vec![l("moved", 1, 90), l("emptied", 0, 95)],
                vec![l("emptied", 4, 80)],
            ]
        };
        let merged = merge(shards(), 60, 4);
        assert_eq!(
            merged,
            (vec![r("c", 5), r("a", 2), r("b", 2), r("moved", 1)], false),
            "stale dropped; the newest report of a room listed twice wins, also when it says empty"
        );
        assert_eq!(
            merge(shards(), 60, 2),
            (vec![r("c", 5), r("a", 2)], true),
            "the largest first, and the rest said to be left out"
        );
    }

    #[test]
    fn a_listing_limit_is_read_from_the_query_or_defaults() {
        let cases: &[(Option<&str>, u32)] = &[
            (Some("limit=5"), 5),
            (Some("x=1&limit=1001"), 1001),
            (Some("limit=0"), DEFAULT_LIST_LIMIT),
            (Some("limit=-1"), DEFAULT_LIST_LIMIT),
            (Some("limits=3"), DEFAULT_LIST_LIMIT),
            (Some(""), DEFAULT_LIST_LIMIT),
            (None, DEFAULT_LIST_LIMIT),
        ];
        for (query, limit) in cases {
            assert_eq!(list_limit(*query), *limit, "{query:?}");
        }
    }
}
