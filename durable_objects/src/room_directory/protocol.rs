//! What rooms, the Worker and the directory shards agree on: binding, shard naming, the stable shard hash and the
//! report/listing wire types.

use serde::{Deserialize, Serialize};

/// wrangler.toml `[[durable_objects.bindings]]` name.
pub const BINDING: &str = "ROOM_DIRECTORY";

pub const PATH_REPORT: &str = "/report";
pub const PATH_LIST: &str = "/list";

/// The shard object `shard`. Renaming it loses the listing: a test pins the format.
pub fn object_name(shard: u32) -> String {
    format!("room-directory:{shard}")
}

/// The shard a room reports to: FNV-1a (64-bit) of the name modulo `shards`. Stable across builds and platforms
/// (never `DefaultHasher`, whose output may change between Rust releases).
pub fn shard_of(room: &str, shards: u32) -> u32 {
    (crate::hash::fnv1a64(room.as_bytes()) % u64::from(shards.max(1))) as u32
}

/// `POST /report`: a room's current member count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub room: String,
    pub members: u32,
    pub updated_ms: u64,
}

/// One active room in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRoom {
    pub room: String,
    pub members: u32,
}

/// Merges shard listings into one, largest rooms first, then by name.
pub fn merge(shards: Vec<Vec<ActiveRoom>>) -> Vec<ActiveRoom> {
    let mut all: Vec<ActiveRoom> = shards
        .into_iter()
        .flatten()
        .filter(|r| r.members > 0)
        .collect();
    all.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.room.cmp(&b.room)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_and_hashes_are_pinned() {
        // Renaming a shard or changing the hash moves rooms to other shards: these fail first.
        assert_eq!(object_name(3), "room-directory:3");
        assert_eq!(BINDING, "ROOM_DIRECTORY");
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
    fn merged_listings_drop_empty_rooms_and_sort_by_size() {
        let r = |room: &str, members| ActiveRoom {
            room: room.into(),
            members,
        };
        let merged = merge(vec![
            vec![r("b", 2), r("gone", 0)],
            vec![r("a", 2), r("c", 5)],
        ]);
        assert_eq!(merged, vec![r("c", 5), r("a", 2), r("b", 2)]);
    }
}
