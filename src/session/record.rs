//! A session's state and the rules over it, all in milliseconds since the epoch passed in by the caller: whether it
//! is active, expired or revoked; its sliding expiry (idle window, capped by an absolute lifetime); when last-seen
//! is due a write; and when a KV cache entry may be trusted instead of D1.
//!
//! Revocation bound: a cache entry carries `fresh_until` = the time it was written + `SESSION_CACHE_SECS`, and is
//! never trusted after that, whatever KV's own TTL or propagation does. So a session revoked at time R passes a
//! non-strict check nowhere after R + `SESSION_CACHE_SECS` (plus clock skew between locations); in the location
//! that revoked it (logout writes a revocation entry over the cached one) and on strict checks (always D1), it is
//! refused at once.

use serde::{Deserialize, Serialize};

use super::SessionUser;

/// A session joined with its user: a D1 row, and the value of a KV cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user_id: String,
    pub email: String,
    pub permissions: Vec<String>,
    pub created_at: u64,
    pub expires_at: u64,
    pub last_seen_at: u64,
    pub revoked_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Expired,
    Revoked,
}

impl SessionRecord {
    /// Revoked, expired — at its stored expiry, or idle `idle_ms` (`SESSION_IDLE_SECS`) since it was last seen —
    /// or active. Every write of the stored expiry puts it at most `idle_ms` after last-seen, so the idle rule
    /// changes nothing while the setting stands; after the setting is lowered, an older session still holds the
    /// expiry written under the longer one, and without the rule it passed checks (each touching it, under the
    /// new window, back to life) until that expiry, however long it had been idle.
    pub fn status(&self, now_ms: u64, idle_ms: u64) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if now_ms >= self.ends_idle(idle_ms) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// Whether the session has reached its absolute limit (`created_at + max_ms`, `SESSION_MAX_SECS`). Its stored
    /// expiry never passes that limit as long as the setting stands; after the setting is lowered, an older session
    /// still holds the expiry written under the longer one, and this is what ends it.
    pub fn past_limit(&self, now_ms: u64, max_ms: u64) -> bool {
        now_ms >= self.created_at.saturating_add(max_ms)
    }

    /// When the session ends at the latest: its stored expiry, or its idle or absolute limit (`last_seen_at +
    /// idle_ms`, `created_at + max_ms`) when a lowered `SESSION_IDLE_SECS` or `SESSION_MAX_SECS` put that first (see
    /// [`Self::status`], [`Self::past_limit`]).
    pub fn ends_at(&self, idle_ms: u64, max_ms: u64) -> u64 {
        self.ends_idle(idle_ms)
            .min(self.created_at.saturating_add(max_ms))
    }

    /// Its stored expiry, or its idle limit under a lowered `SESSION_IDLE_SECS` (see [`Self::status`]).
    fn ends_idle(&self, idle_ms: u64) -> u64 {
        self.expires_at
            .min(self.last_seen_at.saturating_add(idle_ms))
    }

    /// Last-seen (and with it the sliding expiry) is written at most once per `touch_ms`.
    pub fn touch_due(&self, now_ms: u64, touch_ms: u64) -> bool {
        now_ms >= self.last_seen_at.saturating_add(touch_ms)
    }

    pub fn user(&self) -> SessionUser {
        SessionUser {
            user_id: self.user_id.clone(),
            email: self.email.clone(),
            permissions: self.permissions.clone(),
        }
    }
}

/// Expiry of a session created at `created_ms` and seen at `now_ms`: the idle window from now, never past the
/// absolute lifetime.
pub fn expiry(created_ms: u64, now_ms: u64, idle_ms: u64, max_ms: u64) -> u64 {
    now_ms
        .saturating_add(idle_ms)
        .min(created_ms.saturating_add(max_ms))
}

/// The permissions column (a JSON array of strings), each one a name a header list can carry: gateway routes send
/// them to the origin as `X-User-Permissions` (comma-separated) and the access tokens minted at login carry them,
/// so one that is empty, holds a comma, whitespace or a control character (`"read,admin"`, which an origin
/// splitting the list reads as `admin`) or is not ASCII (`"lecture-é"`, mojibake to a Node origin) makes the
/// column malformed, as the gateway's JWT check refuses such a token. A permission listed twice is held once, as the gateway holds a token's.
pub fn parse_permissions(column: &str) -> Result<Vec<String>, String> {
    let permissions: Vec<String> = serde_json::from_str(column)
        .map_err(|e| format!("users.permissions is not a JSON string array: {e}"))?;
    match permissions
        .iter()
        .find(|p| !crate::gateway::jwt::header_list_item(p))
    {
        Some(bad) => Err(format!(
            "users.permissions holds {bad:?}, which is empty or not printable ASCII without commas"
        )),
        None => Ok(crate::gateway::jwt::distinct(permissions)),
    }
}

/// The value stored in KV under `token::cache_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    #[serde(flatten)]
    pub record: SessionRecord,
    /// Not trusted at or after this time; D1 is asked instead.
    pub fresh_until: u64,
}

impl CacheEntry {
    /// The entry a revocation leaves in the cache: refused by [`decide_cached`] while fresh, and never overwritten by
    /// a cache fill that read the session before it was revoked ([`CacheEntry::is_revoked`]).
    pub fn revoked(now_ms: u64, cache_secs: u64) -> Self {
        Self::revoked_since(now_ms, now_ms, cache_secs)
    }

    /// A revocation entry written at `now_ms` for a session revoked at `revoked_at` (found so in D1, perhaps long
    /// before): fresh from now, and telling checks when the session ended, as D1 would.
    pub fn revoked_since(revoked_at: u64, now_ms: u64, cache_secs: u64) -> Self {
        let record = SessionRecord {
            user_id: String::new(),
            email: String::new(),
            permissions: Vec::new(),
            created_at: 0,
            expires_at: 0,
            last_seen_at: 0,
            revoked_at: Some(revoked_at),
        };
        Self::new(record, now_ms, cache_secs)
    }

    /// Whether a stored entry (as text) records a revocation.
    pub fn is_revoked(stored: Option<&str>) -> bool {
        stored
            .and_then(|e| serde_json::from_str::<CacheEntry>(e).ok())
            .is_some_and(|e| e.record.revoked_at.is_some())
    }

    pub fn new(record: SessionRecord, now_ms: u64, cache_secs: u64) -> Self {
        Self {
            record,
            fresh_until: now_ms.saturating_add(cache_secs * 1000),
        }
    }
}

/// KV refuses expiration TTLs under 60 s; the entry's own `fresh_until` is what bounds trust.
pub fn kv_ttl_secs(cache_secs: u64) -> u64 {
    cache_secs.max(60)
}

/// What a cache lookup decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDecision {
    /// A fresh entry for an active session.
    Accept(SessionRecord),
    /// A fresh entry that says revoked (at this time): final, no need to ask D1.
    Refuse { revoked_at: u64 },
    /// Missing, unreadable, stale or (possibly slid since) expired: D1 decides.
    AskD1,
}

/// What a check at `now_ms` makes of the cache entry `entry`, trusting none longer than `cache_ms`
/// (`SESSION_CACHE_SECS`) from now: one fresh beyond that was written under a longer setting, since lowered, and
/// trusted to its own `fresh_until` it admitted a session revoked since for up to the old setting's window instead of
/// today's bound (a lowered trust window, say after an incident, did not tighten revocation until every entry
/// written before had run out). D1 then decides, and a fill writes the entry anew under today's setting.
pub fn decide_cached(
    entry: Option<&str>,
    now_ms: u64,
    cache_ms: u64,
    idle_ms: u64,
) -> CacheDecision {
    let Some(entry) = entry.and_then(|e| serde_json::from_str::<CacheEntry>(e).ok()) else {
        return CacheDecision::AskD1;
    };
    if now_ms >= entry.fresh_until || entry.fresh_until > now_ms.saturating_add(cache_ms) {
        return CacheDecision::AskD1;
    }
    if let Some(revoked_at) = entry.record.revoked_at {
        return CacheDecision::Refuse { revoked_at };
    }
    // The permissions a current entry holds passed `parse_permissions` when it was written; one written by an older
    // rule (a deploy within its trust window) or by hand may hold a name no header carries: D1 reads the column anew.
    if !entry
        .record
        .permissions
        .iter()
        .all(|p| crate::gateway::jwt::header_list_item(p))
    {
        return CacheDecision::AskD1;
    }
    match entry.record.status(now_ms, idle_ms) {
        Status::Active => CacheDecision::Accept(entry.record),
        Status::Revoked | Status::Expired => CacheDecision::AskD1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle window longer than any record here: the idle rule stays out of the way.
    const DAY: u64 = 86_400_000;

    #[test]
    fn a_revocation_entry_is_refused_and_recognised() {
        let entry = serde_json::to_string(&CacheEntry::revoked(1_000, 60)).expect("serialises");
        assert!(matches!(
            decide_cached(Some(&entry), 1_500, 60_000, DAY),
            CacheDecision::Refuse { revoked_at: 1_000 }
        ));
        assert!(
            matches!(
                decide_cached(Some(&entry), 61_000, 60_000, DAY),
                CacheDecision::AskD1
            ),
            "D1 decides once stale"
        );
        assert!(CacheEntry::is_revoked(Some(&entry)));
        // Found revoked long ago: fresh from its writing, saying when the session ended.
        let late = serde_json::to_string(&CacheEntry::revoked_since(10, 1_000, 60)).expect("json");
        assert!(matches!(
            decide_cached(Some(&late), 1_500, 60_000, DAY),
            CacheDecision::Refuse { revoked_at: 10 }
        ));
        let active = serde_json::to_string(&CacheEntry::new(record(10_000, None), 1_000, 60))
            .expect("serialises");
        assert!(!CacheEntry::is_revoked(Some(&active)));
        assert!(!CacheEntry::is_revoked(None));
        assert!(!CacheEntry::is_revoked(Some("not json")));
    }

    fn record(expires_at: u64, revoked_at: Option<u64>) -> SessionRecord {
        SessionRecord {
            user_id: "u".into(),
            email: "u@example.com".into(),
            permissions: vec![],
            created_at: 0,
            expires_at,
            last_seen_at: 100,
            revoked_at,
        }
    }

    #[test]
    fn status_is_revoked_before_expired_before_active() {
        let cases = [
            (record(1000, Some(5)), 10, Status::Revoked),
            (record(1000, Some(5)), 2000, Status::Revoked),
            (record(1000, None), 1000, Status::Expired),
            (record(1000, None), 999, Status::Active),
        ];
        for (r, now, expected) in cases {
            assert_eq!(r.status(now, DAY), expected, "{r:?} at {now}");
        }
    }

    #[test]
    fn a_session_idle_past_a_lowered_idle_window_is_expired_whatever_its_stored_expiry() {
        // Last seen at 100, its expiry (10 s) stored under a longer idle window; the window is now 5 s.
        let r = record(10_000, None);
        assert_eq!(r.status(5_099, 5_000), Status::Active, "within the window");
        assert_eq!(r.status(5_100, 5_000), Status::Expired, "idle past it");
        assert_eq!(
            r.status(5_100, 60_000),
            Status::Active,
            "a longer window leaves the stored expiry in charge"
        );
        let entry = serde_json::to_string(&CacheEntry::new(r, 5_000, 60)).expect("json");
        assert_eq!(
            decide_cached(Some(&entry), 5_100, 60_000, 5_000),
            CacheDecision::AskD1,
            "a cached entry says expired: D1 decides (a touch elsewhere may have moved last-seen on)"
        );
    }

    #[test]
    fn sliding_expiry_never_passes_the_absolute_lifetime() {
        assert_eq!(expiry(0, 100, 50, 1000), 150, "idle window from now");
        assert_eq!(expiry(0, 990, 50, 1000), 1000, "capped by the lifetime");
    }

    #[test]
    fn a_session_is_past_its_limit_from_created_at_plus_the_maximum() {
        let r = record(10_000, None); // created at 0, stored expiry 10 s
        assert!(!r.past_limit(4_999, 5_000), "within a limit lowered to 5 s");
        assert!(
            r.past_limit(5_000, 5_000),
            "at it, whatever the stored expiry says"
        );
        assert!(!r.past_limit(9_999, 60_000));
        assert_eq!(
            r.ends_at(DAY, 5_000),
            5_000,
            "the lowered limit comes first"
        );
        assert_eq!(
            r.ends_at(DAY, 60_000),
            10_000,
            "the stored expiry comes first"
        );
        assert_eq!(
            r.ends_at(5_000, 60_000),
            5_100,
            "a lowered idle window comes first"
        );
    }

    #[test]
    fn last_seen_is_due_once_per_interval() {
        let r = record(10_000, None);
        assert!(!r.touch_due(100, 60), "just seen");
        assert!(!r.touch_due(159, 60), "inside the interval");
        assert!(r.touch_due(160, 60), "interval elapsed");
    }

    #[test]
    fn a_cache_entry_holding_permissions_the_column_would_not_is_read_from_d1() {
        // An entry written before the column's rule (or by hand) holding a permission no header carries would send
        // it to an origin for SESSION_CACHE_SECS (up to an hour): D1 decides, reading the column by today's rule.
        for held in [
            vec!["read", "lecture-é"],
            vec!["read,admin"],
            vec!["read admin"],
            vec![""],
        ] {
            let mut r = record(1_000_000, None);
            r.permissions = held.iter().map(|p| (*p).to_owned()).collect();
            let entry = serde_json::to_string(&CacheEntry::new(r, 0, 60)).expect("json");
            assert_eq!(
                decide_cached(Some(&entry), 10, 60_000, DAY),
                CacheDecision::AskD1,
                "{held:?}"
            );
        }
        let mut r = record(1_000_000, None);
        r.permissions = vec!["read".into(), "users:write".into()];
        let entry = serde_json::to_string(&CacheEntry::new(r.clone(), 0, 60)).expect("json");
        assert_eq!(
            decide_cached(Some(&entry), 10, 60_000, DAY),
            CacheDecision::Accept(r)
        );
    }

    #[test]
    fn a_cache_entry_is_trusted_only_while_fresh_and_active() {
        let fresh =
            |r: SessionRecord| serde_json::to_string(&CacheEntry::new(r, 0, 60)).expect("json");
        let active = fresh(record(1_000_000, None));
        let cases: Vec<(Option<String>, u64, CacheDecision, &str)> = vec![
            (None, 10, CacheDecision::AskD1, "missing"),
            (
                Some("{garbled".into()),
                10,
                CacheDecision::AskD1,
                "unreadable",
            ),
            (
                Some(active.clone()),
                59_999,
                CacheDecision::Accept(record(1_000_000, None)),
                "fresh",
            ),
            (
                Some(active.clone()),
                60_000,
                CacheDecision::AskD1,
                "stale at the bound",
            ),
            (
                Some(fresh(record(1_000_000, Some(1)))),
                10,
                CacheDecision::Refuse { revoked_at: 1 },
                "revoked",
            ),
            (
                Some(fresh(record(5, None))),
                10,
                CacheDecision::AskD1,
                "expired per cache: D1 may have slid it",
            ),
        ];
        for (entry, now, expected, case) in cases {
            assert_eq!(
                decide_cached(entry.as_deref(), now, 60_000, DAY),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn an_entry_written_under_a_longer_cache_setting_is_not_trusted_past_today_s_bound() {
        // Written at 0 by a Worker trusting entries an hour; read under SESSION_CACHE_SECS = 60.
        let hour =
            |r: SessionRecord| serde_json::to_string(&CacheEntry::new(r, 0, 3_600)).expect("json");
        let active = hour(record(10_000_000, None));
        assert_eq!(
            decide_cached(Some(&active), 61_000, 60_000, DAY),
            CacheDecision::AskD1,
            "an active entry: D1 decides, and the fill writes it under today's setting"
        );
        assert_eq!(
            decide_cached(
                Some(&hour(record(10_000_000, Some(5)))),
                61_000,
                60_000,
                DAY
            ),
            CacheDecision::AskD1,
            "a revocation entry too: D1 holds the revocation"
        );
        assert_eq!(
            decide_cached(Some(&active), 61_000, 3_600_000, DAY),
            CacheDecision::Accept(record(10_000_000, None)),
            "under the setting it was written with, trusted to its fresh_until"
        );
        assert_eq!(
            decide_cached(Some(&active), 3_540_000, 60_000, DAY),
            CacheDecision::Accept(record(10_000_000, None)),
            "within today's bound of its fresh_until"
        );
    }

    #[test]
    fn the_kv_ttl_respects_kvs_minimum() {
        assert_eq!(kv_ttl_secs(0), 60);
        assert_eq!(kv_ttl_secs(5), 60);
        assert_eq!(kv_ttl_secs(300), 300);
    }

    #[test]
    fn permissions_are_a_json_string_array() {
        assert_eq!(
            parse_permissions(r#"["a","b"]"#),
            Ok(vec!["a".into(), "b".into()])
        );
        assert!(parse_permissions("a,b").is_err());
        assert!(parse_permissions("[1]").is_err());
        // What X-User-Permissions could not carry as one name, refused as the gateway's JWT check refuses it.
        for column in [
            r#"["read,admin"]"#,
            r#"["read write"]"#,
            r#"[""]"#,
            "[\"a\\n\"]",
            r#"["lecture-é"]"#,
            r#"["read\u00a0"]"#,
        ] {
            assert!(parse_permissions(column).is_err(), "{column}");
        }
        assert_eq!(parse_permissions("[]"), Ok(vec![]));
    }

    #[test]
    fn a_permission_listed_twice_is_held_once_as_a_token_holding_it_twice_is() {
        // The gateway passes a token's permissions on once each (X-User-Permissions `read,write`); a session of the
        // same user (whose access token was minted from this column) must tell the origin the same.
        assert_eq!(
            parse_permissions(r#"["read","write","read","write"]"#),
            Ok(vec!["read".into(), "write".into()])
        );
    }
}
