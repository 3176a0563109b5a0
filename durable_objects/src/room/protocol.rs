//! What the Worker and the Room object agree on: binding, object naming, the internal request paths and their
//! wire types, the room settings the Worker sends with each request, and the pure placement helpers.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::log::CompactionPolicy;

/// wrangler.toml `[[durable_objects.bindings]]` name.
pub const BINDING: &str = "ROOMS";

/// Internal paths the Worker calls on a room object.
pub const PATH_CONNECT: &str = "/connect";
pub const PATH_TICKET: &str = "/ticket";
pub const PATH_STATE: &str = "/state";

/// Header carrying the room's name (the object stores it, to report to the directory after hibernation).
pub const HEADER_ROOM: &str = "x-room-name";
/// Header carrying [`RoomSettings`] as JSON.
pub const HEADER_SETTINGS: &str = "x-room-settings";
/// Query parameter carrying a ticket on `/rooms/{id}/ws`.
pub const TICKET_PARAM: &str = "ticket";

/// The codes of the refusals a room answers in JSON (`{"error":{"code","message"}}`: a join's 401/426/429/500/503,
/// a state read's 500). The Worker answers each as its own error, so the request's log line names its code.
pub const REFUSAL_CODES: &[&str] = &[
    "ticket_required",
    "session_ended",
    "ticket_invalid",
    "room_unavailable",
    "room_full",
    "too_many_connections",
    "reply_rate_exceeded",
    "upgrade_required",
    "session_check_unavailable",
    "not_found",
];

/// `code` as one of [`REFUSAL_CODES`], or `None` for a code no room answers.
pub fn refusal_code(code: &str) -> Option<&'static str> {
    REFUSAL_CODES.iter().copied().find(|known| *known == code)
}

/// The object that holds room `room`. Renaming this loses every room's data: a test pins the format.
pub fn object_name(room: &str) -> String {
    format!("room:{room}")
}

/// The object `/health/ready` reads (`GET` [`PATH_STATE`]) to see that [`BINDING`] is bound to the room class. It
/// is never set up (only read), so it stores nothing, and cannot be a room's: their names start `room:`.
pub const READINESS_OBJECT: &str = "rooms:readiness";

/// A room name: 1 to 64 of `A-Z a-z 0-9 - _ .`, not all dots (`.` and `..` are path segments no URL can keep:
/// `/rooms/./ticket` reaches a client's runtime as `/rooms/ticket`).
pub fn valid_room_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.bytes().all(|b| b == b'.')
}

/// Limits and policies a room enforces, parsed from the Worker's config and sent with every request (the object
/// stores the latest so it can enforce them after hibernation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// Largest accepted frame; a larger one closes the socket with 1009.
    pub max_message_bytes: u32,
    /// Sustained document updates per second per member (all their sockets in the room), and the burst allowed above
    /// it (1008 past it).
    pub updates_per_second: u32,
    pub update_burst: u32,
    /// Sockets a room accepts; the next join is refused with 429.
    pub max_members: u32,
    /// When the update log is folded into a snapshot.
    pub compaction: CompactionPolicy,
    /// Storage a room may occupy (snapshot + log); an update past it closes its socket with 1009 (log::accept).
    #[serde(default = "default_max_document_bytes")]
    pub max_document_bytes: u64,
    /// How many directory shards the room reports to (the same number the Worker lists).
    pub directory_shards: u32,
    /// How often a room with members reports them again (an alarm), so the directory can drop a room whose
    /// reports stopped — its last report lost, or the object gone without closing its sockets.
    #[serde(default = "default_directory_report_ms")]
    pub directory_report_ms: u64,
    /// How long an update may wait for what it follows before the room drops it (see `RoomDoc::expire`).
    #[serde(default = "default_waiting_ttl_ms")]
    pub waiting_ttl_ms: u64,
    /// The sessions' absolute limit (`SESSION_MAX_SECS`): a session that began longer ago than this has ended for
    /// the room too, though D1's expiry for it is later (the limit was lowered since it began, and the Worker
    /// refuses it at its next check). 0 (settings stored before it): no limit but D1's expiry.
    #[serde(default)]
    pub session_max_ms: u64,
    /// The sessions' idle limit (`SESSION_IDLE_SECS`): a session last seen longer ago than this has ended for the
    /// room too, though D1's expiry for it is later (the limit was lowered since it was last written, and the Worker
    /// refuses it at its next check). 0 (settings stored before it): no limit but D1's expiry.
    #[serde(default)]
    pub session_idle_ms: u64,
}

impl RoomSettings {
    /// The `created_at` a session must be past to be live at `now_ms` ([`FAMILY_OF_LIVE_SESSION`]'s and
    /// [`LIVE_FAMILIES`]' `?3`): -1 (any) without a limit.
    pub fn sessions_begun_after(&self, now_ms: u64) -> f64 {
        match self.session_max_ms {
            0 => -1.0,
            max => now_ms as f64 - max as f64,
        }
    }

    /// The `last_seen_at` a session must be past to be live at `now_ms` ([`FAMILY_OF_LIVE_SESSION`]'s and
    /// [`LIVE_FAMILIES`]' `?4`): -1 (any) without a limit.
    pub fn sessions_seen_after(&self, now_ms: u64) -> f64 {
        match self.session_idle_ms {
            0 => -1.0,
            idle => now_ms as f64 - idle as f64,
        }
    }

    /// What a ticket stores (`room_tickets.session_ended`) once a join under these settings found its session ended:
    /// the limits it was judged by — with the idle limit, both ([`BOTH_LIMITS_MARK`]); without it (settings of a
    /// Worker before it), the absolute limit in ms ([`NO_LIMIT_MARK`] without one, or for one as long). 0 is "not
    /// found ended".
    pub fn ended_mark(&self) -> i64 {
        match (self.session_max_ms, self.session_idle_ms) {
            (0, _) => NO_LIMIT_MARK,
            (_, 0) => self.absolute_mark(),
            (max, idle) => {
                BOTH_LIMITS_MARK
                    | mark_secs(max, MAX_MARK_BITS) << IDLE_MARK_BITS
                    | mark_secs(idle, IDLE_MARK_BITS)
            }
        }
    }

    /// The mark of the absolute limit alone, as made before rooms were told the idle one.
    fn absolute_mark(&self) -> i64 {
        match self.session_max_ms {
            0 => NO_LIMIT_MARK,
            max => i64::try_from(max).map_or(NO_LIMIT_MARK, |max| max.min(NO_LIMIT_MARK)),
        }
    }

    /// Whether a ticket's `session_ended` mark still holds under these settings: its session was found ended under
    /// limits no shorter than these. A revocation or an expiry is final, but an end by a lowered `SESSION_MAX_SECS`
    /// or `SESSION_IDLE_SECS` alone is undone when the limit is raised again (the Worker accepts that session once
    /// more): such a mark, made under the lower limit, is then set aside and the join asks D1 again. (A mark of 1,
    /// written before the limit was kept, is set aside by every limit, which is at least a minute.)
    pub fn honours_ended_mark(&self, mark: i64) -> bool {
        if !(BOTH_LIMITS_MARK..NO_LIMIT_MARK).contains(&mark) {
            return mark != 0 && self.absolute_mark() <= mark;
        }
        let both = mark - BOTH_LIMITS_MARK;
        let (max, idle) = (both >> IDLE_MARK_BITS, both & ((1 << IDLE_MARK_BITS) - 1));
        // A limit not set now (0) is none, longer than any a mark names.
        self.session_max_ms != 0
            && self.session_idle_ms != 0
            && mark_secs(self.session_max_ms, MAX_MARK_BITS) <= max
            && mark_secs(self.session_idle_ms, IDLE_MARK_BITS) <= idle
    }
}

/// The bit a mark of both session limits carries ([`RoomSettings::ended_mark`]): above every mark of the absolute
/// limit alone (ms, at most a year: under 2^35) and, with the limits' seconds below it (the absolute one's shifted
/// past the idle one's), below [`NO_LIMIT_MARK`].
const BOTH_LIMITS_MARK: i64 = 1 << 50;

/// Bits of a mark for the absolute limit's seconds (`SESSION_MAX_SECS` is at most 365 days, under 2^25) and for the
/// idle limit's (`SESSION_IDLE_SECS`, at most 90 days, under 2^24).
const MAX_MARK_BITS: u32 = 25;
const IDLE_MARK_BITS: u32 = 24;

/// A limit in ms as the whole seconds a mark holds, at most what `bits` hold.
fn mark_secs(ms: u64, bits: u32) -> i64 {
    i64::try_from(ms / 1000).map_or((1 << bits) - 1, |secs| secs.min((1 << bits) - 1))
}

/// The ended mark of "no session limit" (and the most any mark is): 2^53 - 1, the largest integer a JavaScript
/// number holds exactly. A room's SQLite takes and gives numbers, never BigInt: `i64::MAX` was stored as the float
/// 2^63, which no i64 reads back, so every later join with a ticket of that session failed instead of being refused.
pub const NO_LIMIT_MARK: i64 = (1 << 53) - 1;

/// For settings stored before the TTL existed: a day.
fn default_waiting_ttl_ms() -> u64 {
    24 * 60 * 60 * 1000
}

/// The limit for settings stored before it existed.
fn default_max_document_bytes() -> u64 {
    1024 * 1024
}

/// The report interval for settings stored before it existed.
fn default_directory_report_ms() -> u64 {
    60_000
}

/// `POST /ticket` body: the Worker mints the ticket, the object stores it (single use needs the object's strong
/// consistency) until it is consumed or expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketGrant {
    pub ticket: String,
    pub user_id: String,
    pub expires_ms: u64,
    /// The id of the session the ticket was minted under (`sessions.id` in [`SESSIONS_BINDING`]): the join admits
    /// it only while that session (or the one a refresh rotated it into) is live, and the socket is closed once it
    /// has ended. `None` for a ticket of no session (the debug route's): never checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// The D1 binding holding the `sessions` table (the Worker's `DB`): a room reads whether the sessions its tickets
/// and sockets came from are still live (see [`LIVE_FAMILIES`]).
pub const SESSIONS_BINDING: &str = "DB";

/// The family (a session's first id, kept across rotations: `src/session`) of session id `?1`, current or retired
/// by a refresh since, when it still has a live session (not revoked, not expired at `?2`, begun after `?3`, last
/// seen after `?4`: [`RoomSettings::sessions_begun_after`], [`RoomSettings::sessions_seen_after`]): the session a
/// ticket was minted under, followed through the refreshes since; no row when it ended.
pub const FAMILY_OF_LIVE_SESSION: &str =
    "SELECT family FROM sessions WHERE revoked_at IS NULL AND expires_at > ?2 AND created_at > ?3 \
     AND last_seen_at > ?4 AND family IN (SELECT COALESCE(family, id) FROM sessions WHERE id = ?1 \
     UNION ALL SELECT family FROM retired_session_ids WHERE id = ?1) LIMIT 1";

/// Which of `?1`, a JSON array of session families, still have a live session (not revoked, not expired at `?2`,
/// begun after `?3`, last seen after `?4`): a socket whose family is not among them is closed.
pub const LIVE_FAMILIES: &str = "SELECT DISTINCT family FROM sessions WHERE revoked_at IS NULL \
     AND expires_at > ?2 AND created_at > ?3 AND last_seen_at > ?4 AND family IN (SELECT value FROM json_each(?1))";

/// Whether a socket of session family `family` (`None`: a ticket of no session) is closed for its session's end,
/// once [`LIVE_FAMILIES`] was asked about the families `asked` and answered `live`: only a family asked about and
/// not live. A socket that joined while the read was under way (the alarm awaits D1, and a join may complete
/// meanwhile, its own check passed) has a family the answer says nothing of: closed as ended, a member who had
/// just joined was thrown out 1008 `session ended` with a live session.
pub fn session_ended(asked: &[String], live: &HashSet<String>, family: Option<&str>) -> bool {
    family.is_some_and(|f| asked.iter().any(|a| a == f) && !live.contains(f))
}

/// Whether a client's close code is one a close frame may carry back (RFC 6455 §7.4.1–7.4.2: 1000–1003, 1007–1014
/// and the registered and private ranges 3000–4999), so the answering close can echo it (§5.5.1). 1005 (no code
/// was sent), 1006 and 1015 are never sent in a frame; 1004 and 1016–2999 are reserved.
pub fn echoable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Close codes a room uses (RFC 6455 §7.4.1).
pub mod close {
    /// A text frame: y-protocols messages are binary, and RFC 6455 §7.4.1 names this code for a type of data the
    /// endpoint cannot accept (1008, which a text frame got before, says a rule was broken).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A frame that is not a valid y-protocols message or update.
    pub const INVALID_DATA: u16 = 1007;
    /// A rule broken: a rate or byte budget, the bounds on presence, or the socket's session ended.
    pub const POLICY: u16 = 1008;
    /// A frame over `max_message_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// Storage failed; reconnecting reloads the document.
    pub const INTERNAL: u16 = 1011;
    /// Sent with [`POLICY`] to a socket whose session ended (a logout, a revocation, its expiry).
    pub const SESSION_ENDED_REASON: &str = "session ended";
}

/// The Durable Object location hint for a first joiner's continent (`cf.continent`); `None` lets Cloudflare choose.
/// Only a new object honours a hint, so passing it on every join places a room near whoever created it.
pub fn location_hint(continent: &str) -> Option<&'static str> {
    match continent {
        "NA" => Some("enam"),
        "SA" => Some("sam"),
        "EU" => Some("weur"),
        "AS" => Some("apac"),
        "OC" => Some("oc"),
        "AF" => Some("afr"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal whose code is not listed would reach its client as written but be logged without its code.
    #[test]
    fn every_code_the_room_refuses_with_is_listed() {
        let source = include_str!("object.rs");
        let mut found = 0;
        let mut calls = source.split("json_error(");
        calls.next(); // the source before the first call
        for call in calls {
            let Some(code) = call.split('"').nth(1) else {
                continue;
            };
            if call
                .split('"')
                .next()
                .is_some_and(|head| head.contains("status"))
            {
                continue; // the function's own definition
            }
            found += 1;
            assert_eq!(refusal_code(code), Some(code), "{code} is in REFUSAL_CODES");
        }
        assert!(
            found >= REFUSAL_CODES.len(),
            "{found} refusals read in object.rs"
        );
    }

    #[test]
    fn object_names_are_pinned() {
        // Renaming an object silently loses its data: this test fails first.
        assert_eq!(object_name("notes"), "room:notes");
        assert_eq!(BINDING, "ROOMS");
        assert_eq!(READINESS_OBJECT, "rooms:readiness");
        assert!(!READINESS_OBJECT.starts_with(&object_name("")));
    }

    #[test]
    fn room_names_are_checked() {
        let cases: &[(&str, bool)] = &[
            ("notes", true),
            ("a.b-c_9", true),
            (".", false),
            ("..", false),
            ("...", false),
            (".hidden", true),
            ("", false),
            ("has space", false),
            ("slash/inside", false),
            ("é", false),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
        ];
        for (name, ok) in cases {
            assert_eq!(valid_room_name(name), *ok, "{name:?}");
        }
    }

    #[test]
    fn close_codes_a_frame_may_carry_are_echoed_others_are_not() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4000, 4999,
        ] {
            assert!(echoable_close_code(code), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(!echoable_close_code(code), "{code}");
        }
    }

    /// Minimal room settings with the sessions' absolute limit `session_max_ms`.
    fn settings_with_limit(session_max_ms: u64) -> RoomSettings {
        RoomSettings {
            session_max_ms,
            ..serde_json::from_str::<RoomSettings>(
                r#"{"max_message_bytes":1,"updates_per_second":1,"update_burst":1,"max_members":1,
                    "compaction":{"max_entries":1,"max_bytes":1},"directory_shards":1}"#,
            )
            .expect("settings")
        }
    }

    /// Settings stored before the idle limit read as none; with it, a session last seen longer ago has ended.
    #[test]
    fn the_idle_limit_bounds_last_seen_and_settings_without_it_bound_nothing() {
        let old = settings_with_limit(0);
        assert_eq!(old.session_idle_ms, 0, "absent from stored settings");
        assert_eq!(old.sessions_seen_after(10_000), -1.0);
        let idle = RoomSettings {
            session_idle_ms: 3_000,
            ..old
        };
        assert_eq!(idle.sessions_seen_after(10_000), 7_000.0);
    }

    /// A session ended by a lowered `SESSION_IDLE_SECS` alone is live again once the window is raised (the Worker
    /// accepts it: D1's expiry, written under the longer window, is later), as one ended by a lowered
    /// `SESSION_MAX_SECS` is: its tickets' mark, made under the shorter window, must not outlast it.
    #[test]
    fn an_ended_mark_made_under_a_lowered_idle_window_is_set_aside_once_it_is_raised() {
        let with = |max_ms: u64, idle_ms: u64| RoomSettings {
            session_idle_ms: idle_ms,
            ..settings_with_limit(max_ms)
        };
        let (hour, day) = (3_600_000, 86_400_000);
        let lowered = with(30 * day, hour);
        let raised = with(30 * day, 7 * day);
        assert!(
            lowered.honours_ended_mark(lowered.ended_mark()),
            "the same limits"
        );
        assert!(
            !raised.honours_ended_mark(lowered.ended_mark()),
            "a raised idle window may have made it live again"
        );
        assert!(
            lowered.honours_ended_mark(raised.ended_mark()),
            "ended under a longer window: ended under this one"
        );
        assert!(
            !with(60 * day, hour).honours_ended_mark(lowered.ended_mark()),
            "a raised absolute limit too"
        );
        let before = settings_with_limit(30 * day).ended_mark();
        assert!(
            lowered.honours_ended_mark(before),
            "a mark made before rooms knew the idle window: by the absolute limit alone, as then"
        );
        assert!(!with(60 * day, hour).honours_ended_mark(before));
        assert!(
            raised.honours_ended_mark(with(0, 0).ended_mark()),
            "ended without a limit: revoked or expired"
        );
        assert!(
            !with(0, 0).honours_ended_mark(lowered.ended_mark()),
            "the limits since dropped"
        );
        assert!(
            !lowered.honours_ended_mark(1),
            "a mark written before the limit was kept"
        );
        let widest = with(365 * day, 90 * day).ended_mark();
        assert!(
            (1..NO_LIMIT_MARK).contains(&widest),
            "a JavaScript number, below the mark of no limit"
        );
        assert!(with(365 * day, 90 * day).honours_ended_mark(widest));
    }

    #[test]
    fn an_ended_mark_holds_under_a_limit_no_longer_than_the_one_it_was_made_under() {
        let with = settings_with_limit;
        let (hour, day) = (with(3_600_000), with(86_400_000));
        assert!(!hour.honours_ended_mark(0), "not marked");
        assert!(hour.honours_ended_mark(hour.ended_mark()), "the same limit");
        assert!(
            hour.honours_ended_mark(day.ended_mark()),
            "ended under a longer limit: ended under this one"
        );
        assert!(
            !day.honours_ended_mark(hour.ended_mark()),
            "a raised limit may have made it live again"
        );
        assert!(
            day.honours_ended_mark(with(0).ended_mark()),
            "ended without a limit: revoked or expired"
        );
        assert!(
            with(0).honours_ended_mark(with(0).ended_mark()),
            "no limit then or now"
        );
        assert!(
            !with(0).honours_ended_mark(hour.ended_mark()),
            "the limit since dropped"
        );
        assert!(
            !hour.honours_ended_mark(1),
            "a mark written before the limit was kept"
        );
    }

    #[test]
    fn every_ended_mark_survives_the_javascript_number_a_room_stores_it_as() {
        let with = settings_with_limit;
        for max in [0, 60_000, 3_600_000, 365 * 86_400_000, 1 << 53, u64::MAX] {
            let mark = with(max).ended_mark();
            assert!(
                (1..=NO_LIMIT_MARK).contains(&mark),
                "limit {max}: mark {mark} is a safe integer"
            );
            assert_eq!((mark as f64) as i64, mark, "limit {max}: exact as a number");
            assert!(
                with(max).honours_ended_mark(mark),
                "limit {max}: its own mark holds"
            );
        }
        assert!(
            with(60_000).honours_ended_mark(with(0).ended_mark()),
            "no limit then: ended under any limit"
        );
    }

    #[test]
    fn only_a_family_asked_about_and_not_live_has_ended() {
        let asked = ["a".to_owned(), "b".to_owned()];
        let live = HashSet::from(["a".to_owned()]);
        assert!(session_ended(&asked, &live, Some("b")), "asked, not live");
        assert!(!session_ended(&asked, &live, Some("a")), "asked, live");
        assert!(
            !session_ended(&asked, &live, None),
            "a ticket of no session"
        );
        // A socket that joined while the read was under way (the alarm awaits D1, and a join may complete
        // meanwhile): its family was not asked about, so the answer says nothing of it.
        assert!(!session_ended(&asked, &live, Some("c")), "not asked");
    }

    #[test]
    fn a_grant_without_a_session_reads_and_writes_as_before() {
        let old: TicketGrant =
            serde_json::from_str(r#"{"ticket":"t","user_id":"u","expires_ms":1}"#).expect("old");
        assert_eq!(old.session, None);
        assert!(!serde_json::to_string(&old)
            .expect("json")
            .contains("session"));
    }

    #[test]
    fn continents_map_to_location_hints() {
        let cases: &[(&str, Option<&str>)] = &[
            ("NA", Some("enam")),
            ("SA", Some("sam")),
            ("EU", Some("weur")),
            ("AS", Some("apac")),
            ("OC", Some("oc")),
            ("AF", Some("afr")),
            ("AN", None),
            ("", None),
        ];
        for (continent, hint) in cases {
            assert_eq!(location_hint(continent), *hint, "{continent:?}");
        }
    }
}
