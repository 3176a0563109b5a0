//! Read-your-writes across requests: the D1 Sessions API bookmark travels to the client in `x-d1-bookmark` and comes
//! back on the next request, so that request's D1 session starts at least as new as the last write the client saw.
//! A header that cannot be a bookmark is ignored (the request then starts from the primary), never an error.

use std::collections::VecDeque;

/// The header carrying the bookmark both ways.
pub const HEADER: &str = "x-d1-bookmark";

/// D1 session constraint when the client sends no usable bookmark: the primary, so a fresh login is always visible.
pub const FIRST_PRIMARY: &str = "first-primary";

/// A client-sent bookmark if it has a bookmark's shape (hex digits and dashes, bounded length), else `None`.
pub fn accept(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let shaped = !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && value.bytes().any(|b| b.is_ascii_hexdigit());
    shaped.then_some(value)
}

/// Where a request's D1 session starts: a strict check (refresh, the session list, other sensitive routes) always
/// at the primary, since it promises that a revoked session is refused at once — a client's bookmark only bounds
/// how stale a replica may be, and an old one (kept from before a logout elsewhere) would admit a replica that has
/// not seen the revocation. Other requests start at the client's bookmark when it has a bookmark's shape and no read
/// at it has failed in this isolate within the time `failed` remembers it for (at `now_ms`).
pub fn start<'a>(header: Option<&'a str>, strict: bool, failed: &Failed, now_ms: u64) -> &'a str {
    if strict {
        return FIRST_PRIMARY;
    }
    match accept(header) {
        Some(bookmark) if !failed.contains(bookmark, now_ms) => bookmark,
        _ => FIRST_PRIMARY,
    }
}

/// Client bookmarks one isolate remembers as failed, at most: a bookmark forgotten costs its next request one failed
/// read and the retry again, no more, so a client inventing bookmarks to push others out gains nothing.
pub const REMEMBERED_FAILURES: usize = 256;

/// The client bookmarks a read failed at in this isolate (the latest [`REMEMBERED_FAILURES`], the oldest forgotten
/// first), each for a set time after the read that failed at it (`SESSION_FAILED_BOOKMARK_SECS`): a request carrying
/// one starts at the primary ([`start`]). D1 judges a bookmark only at a query, so one it refuses (another database's,
/// one from before a restore) failed the first read of every request sent with it, each then made again at the
/// primary ([`Reads::retry_at_primary`]) — and the routes whose answers hand no bookmark back (pages, room tickets and
/// state, gateway routes with `session` auth; an error answer) left the client sending it, paying a failed read and a
/// retry per request. A bookmark whose read failed for another cause (D1 down) is remembered too: starting at the
/// primary reads what is current, so a wrong guess costs replica reads, never freshness — and while D1 is down it
/// saves each such request the read at the bookmark. The time bounds that cost: kept until the isolate ended, an
/// outage's bookmarks sent every such client's reads to the primary long after D1 served replicas again. The cause
/// cannot be told from the failure (Miniflare ignores bookmarks, and a refused bookmark and an outage both fail the
/// read), and forgetting an entry once a read at the primary succeeds for it would forget a refused bookmark at its
/// first request served there: every other request of its client would pay the failed read again. So an entry is
/// forgotten by time alone; a refused bookmark still sent costs one failed read per that time per isolate.
#[derive(Debug)]
pub struct Failed {
    /// Each bookmark with the time (ms) it is remembered until, the earliest remembered first.
    latest: VecDeque<(String, u64)>,
    capacity: usize,
}

impl Failed {
    /// An empty memory of at most `capacity` bookmarks.
    pub const fn new(capacity: usize) -> Self {
        Self {
            latest: VecDeque::new(),
            capacity,
        }
    }

    /// Whether a read at `bookmark` failed here and is still remembered at `now_ms`.
    pub fn contains(&self, bookmark: &str, now_ms: u64) -> bool {
        self.latest
            .iter()
            .any(|(b, until)| b == bookmark && now_ms < *until)
    }

    /// Remembers that a read at `bookmark` failed at `now_ms`, for `for_ms` (0 remembers nothing); the entries
    /// whose time is over are forgotten, and the oldest when full.
    pub fn remember(&mut self, bookmark: &str, now_ms: u64, for_ms: u64) {
        self.latest
            .retain(|(b, until)| now_ms < *until && b != bookmark);
        if self.capacity == 0 || for_ms == 0 {
            return;
        }
        if self.latest.len() == self.capacity {
            self.latest.pop_front();
        }
        self.latest
            .push_back((bookmark.to_owned(), now_ms.saturating_add(for_ms)));
    }

    /// Moves every entry's end `ms` into the past, as if that long had passed: the tests' way (through a debug route)
    /// to see an entry forgotten without waiting it out.
    pub fn age(&mut self, ms: u64) {
        for (_, until) in &mut self.latest {
            *until = until.saturating_sub(ms);
        }
    }
}

/// Where a request's D1 reads stand against the client's bookmark (the store's copy decides [`Reads::may_lag`] and
/// whether a failed read is made once more at the primary).
///
/// workerd's `withSession` takes any non-empty string, so D1 judges a client's bookmark only at the first query
/// that carries it: a bookmark it refuses (another database's, one from before a restore) fails that read, which is
/// then made once more from a session at the primary — and what the request reads from then on is current. A read
/// at the client's bookmark that succeeded may come from a replica behind the client's last write, and a later
/// switch to the primary does not make it current: an answer built on it (a session found missing) still may lag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    /// Whether queries still go through the session started at the client's bookmark.
    at_client_bookmark: bool,
    /// Whether a read at the client's bookmark has succeeded: its answer may lag whatever is read after it.
    read_at_client_bookmark: bool,
}

impl Reads {
    /// Reads starting at the client's bookmark (`true`) or at the primary.
    pub fn new(at_client_bookmark: bool) -> Self {
        Self {
            at_client_bookmark,
            read_at_client_bookmark: false,
        }
    }

    /// After a read that succeeded.
    pub fn read(self) -> Self {
        Self {
            read_at_client_bookmark: self.read_at_client_bookmark || self.at_client_bookmark,
            ..self
        }
    }

    /// After a read that failed: the state to make it once more in, from a session at the primary — `None` when it
    /// already went to the primary (a request retries once).
    pub fn retry_at_primary(self) -> Option<Self> {
        self.at_client_bookmark.then_some(Self {
            at_client_bookmark: false,
            ..self
        })
    }

    /// Whether something read may lag the client's last write: a read made at its bookmark, or one still to come.
    pub fn may_lag(self) -> bool {
        self.at_client_bookmark || self.read_at_client_bookmark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_failed_at_the_client_bookmark_is_made_once_more_at_the_primary() {
        let start = Reads::new(true);
        assert!(start.may_lag());
        let retry = start
            .retry_at_primary()
            .expect("a first read at the bookmark is retried");
        assert!(
            !retry.may_lag(),
            "nothing read at the bookmark: what the primary answers is current"
        );
        assert_eq!(retry.retry_at_primary(), None, "once per request");
        assert!(!retry.read().may_lag());
        assert_eq!(
            Reads::new(false).retry_at_primary(),
            None,
            "started at the primary"
        );
        assert!(!Reads::new(false).read().may_lag());
    }

    #[test]
    fn a_switch_to_the_primary_after_a_read_at_the_client_bookmark_leaves_that_read_lagging() {
        // The session read at a replica behind the client's login finds nothing; the retired-id lookup then fails
        // and is made at the primary: the "unknown session" is still the replica's, and the cookie must not be
        // cleared as the primary's refusal would be.
        let read = Reads::new(true).read();
        assert!(read.may_lag());
        let retry = read
            .retry_at_primary()
            .expect("a later read at the bookmark is retried too");
        assert!(retry.may_lag(), "the earlier read may still lag");
        assert!(retry.read().may_lag());
        assert_eq!(retry.retry_at_primary(), None, "once per request");
    }

    #[test]
    fn strict_checks_start_at_the_primary_whatever_the_client_sends() {
        let real = "0000000b-00000001-00004f6f-43d4ce6c0a8a2b5ec5b7a7b6e0f45d4c";
        let none = Failed::new(REMEMBERED_FAILURES);
        assert_eq!(start(Some(real), true, &none, 0), FIRST_PRIMARY);
        assert_eq!(start(None, true, &none, 0), FIRST_PRIMARY);
        assert_eq!(start(Some(real), false, &none, 0), real);
        assert_eq!(start(Some("garbage!"), false, &none, 0), FIRST_PRIMARY);
    }

    #[test]
    fn a_bookmark_a_read_failed_at_starts_later_requests_at_the_primary_and_no_other() {
        let refused = "0000000b-00000001-00004f6f-43d4ce6c0a8a2b5ec5b7a7b6e0f45d4c";
        let other = "0000000b-00000002-00004f6f-43d4ce6c0a8a2b5ec5b7a7b6e0f45d4c";
        let mut failed = Failed::new(REMEMBERED_FAILURES);
        failed.remember(refused, 1_000, 60_000);
        assert_eq!(start(Some(refused), false, &failed, 1_000), FIRST_PRIMARY);
        assert_eq!(
            start(Some(&format!(" {refused} ")), false, &failed, 1_000),
            FIRST_PRIMARY,
            "as D1 is sent it"
        );
        assert_eq!(
            start(Some(other), false, &failed, 1_000),
            other,
            "another bookmark is still tried"
        );
    }

    #[test]
    fn a_failed_bookmark_is_forgotten_its_set_time_after_the_read_that_failed_at_it() {
        // An outage's bookmarks were remembered until 256 later ones pushed them out or the isolate ended: long
        // after D1 served again, their clients' reads all went to the primary.
        let outage = "0000000b-00000001-00004f6f-43d4ce6c0a8a2b5ec5b7a7b6e0f45d4c";
        let mut failed = Failed::new(REMEMBERED_FAILURES);
        failed.remember(outage, 1_000, 60_000);
        assert_eq!(start(Some(outage), false, &failed, 60_999), FIRST_PRIMARY);
        assert_eq!(
            start(Some(outage), false, &failed, 61_000),
            outage,
            "tried at the bookmark again once its time is over"
        );
        // Failing again there, it is remembered afresh, from that failure on.
        failed.remember(outage, 61_000, 60_000);
        assert!(failed.contains(outage, 120_999));
        assert!(!failed.contains(outage, 121_000));
        assert_eq!(failed.latest.len(), 1, "one entry per bookmark");
        // Aged (the debug route), as if the time had passed.
        failed.age(59_999);
        assert!(failed.contains(outage, 61_000));
        failed.age(1);
        assert!(!failed.contains(outage, 61_000));
        // An entry whose time is over takes no place once another is remembered.
        failed.remember("01", 61_000, 60_000);
        assert_eq!(failed.latest.len(), 1);
        // A time of 0 (`SESSION_FAILED_BOOKMARK_SECS` 0) remembers nothing.
        failed.remember("02", 61_000, 0);
        assert!(!failed.contains("02", 61_000));
    }

    #[test]
    fn failed_bookmarks_are_bounded_the_oldest_forgotten_first() {
        let mut failed = Failed::new(3);
        for b in ["01", "02", "02", "03"] {
            failed.remember(b, 0, 60_000);
        }
        assert!(
            failed.contains("01", 0),
            "a bookmark remembered twice takes one place"
        );
        failed.remember("04", 0, 60_000);
        assert!(
            !failed.contains("01", 0),
            "the oldest is forgotten when full"
        );
        assert!(["02", "03", "04"].iter().all(|b| failed.contains(b, 0)));
        let mut off = Failed::new(0);
        off.remember("01", 0, 60_000);
        assert!(!off.contains("01", 0));
    }

    #[test]
    fn only_bookmark_shaped_headers_are_passed_to_d1() {
        let real = "0000000b-00000001-00004f6f-43d4ce6c0a8a2b5ec5b7a7b6e0f45d4c";
        let long = "a".repeat(129);
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, None),
            (Some(""), None),
            (Some(real), Some(real)),
            (Some(" 00ab-01 "), Some("00ab-01")),
            (Some("first-unconstrained"), None),
            (Some("first-primary"), None),
            (Some("---"), None),
            (Some("'; DROP TABLE sessions; --"), None),
            (Some(&long), None),
        ];
        for (header, expected) in cases {
            assert_eq!(accept(*header), *expected, "{header:?}");
        }
    }
}
