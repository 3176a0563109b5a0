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
/// at it has failed in this isolate (`failed`).
pub fn start<'a>(header: Option<&'a str>, strict: bool, failed: &Failed) -> &'a str {
    if strict {
        return FIRST_PRIMARY;
    }
    match accept(header) {
        Some(bookmark) if !failed.contains(bookmark) => bookmark,
        _ => FIRST_PRIMARY,
    }
}

/// Client bookmarks one isolate remembers as failed, at most: a bookmark forgotten costs its next request one failed
/// read and the retry again, no more, so a client inventing bookmarks to push others out gains nothing.
pub const REMEMBERED_FAILURES: usize = 256;

/// The client bookmarks a read failed at in this isolate (the latest [`REMEMBERED_FAILURES`], the oldest forgotten
/// first): a request carrying one starts at the primary ([`start`]). D1 judges a bookmark only at a query, so one it
/// refuses (another database's, one from before a restore) failed the first read of every request sent with it, each
/// then made again at the primary ([`Reads::retry_at_primary`]) — and the routes whose answers hand no bookmark back
/// (pages, room tickets and state, gateway routes with `session` auth; an error answer) left the client sending it,
/// paying a failed read and a retry per request. A bookmark whose read failed for another cause (D1 down) is
/// remembered too: starting at the primary reads what is current, so a wrong guess costs replica reads, never
/// freshness — and while D1 is down it saves each such request the read at the bookmark.
#[derive(Debug)]
pub struct Failed {
    latest: VecDeque<String>,
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

    /// Whether a read at `bookmark` failed here (and is still remembered).
    pub fn contains(&self, bookmark: &str) -> bool {
        self.latest.iter().any(|b| b == bookmark)
    }

    /// Remembers that a read at `bookmark` failed, forgetting the oldest when full.
    pub fn remember(&mut self, bookmark: &str) {
        if self.capacity == 0 || self.contains(bookmark) {
            return;
        }
        if self.latest.len() == self.capacity {
            self.latest.pop_front();
        }
        self.latest.push_back(bookmark.to_owned());
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
        assert_eq!(start(Some(real), true, &none), FIRST_PRIMARY);
        assert_eq!(start(None, true, &none), FIRST_PRIMARY);
        assert_eq!(start(Some(real), false, &none), real);
        assert_eq!(start(Some("garbage!"), false, &none), FIRST_PRIMARY);
    }

    #[test]
    fn a_bookmark_a_read_failed_at_starts_later_requests_at_the_primary_and_no_other() {
        let refused = "0000000b-00000001-00004f6f-43d4ce6c0a8a2b5ec5b7a7b6e0f45d4c";
        let other = "0000000b-00000002-00004f6f-43d4ce6c0a8a2b5ec5b7a7b6e0f45d4c";
        let mut failed = Failed::new(REMEMBERED_FAILURES);
        failed.remember(refused);
        assert_eq!(start(Some(refused), false, &failed), FIRST_PRIMARY);
        assert_eq!(
            start(Some(&format!(" {refused} ")), false, &failed),
            FIRST_PRIMARY,
            "as D1 is sent it"
        );
        assert_eq!(
            start(Some(other), false, &failed),
            other,
            "another bookmark is still tried"
        );
    }

    #[test]
    fn failed_bookmarks_are_bounded_the_oldest_forgotten_first() {
        let mut failed = Failed::new(3);
        for b in ["01", "02", "02", "03"] {
            failed.remember(b);
        }
        assert!(
            failed.contains("01"),
            "a bookmark remembered twice takes one place"
        );
        failed.remember("04");
        assert!(!failed.contains("01"), "the oldest is forgotten when full");
        assert!(["02", "03", "04"].iter().all(|b| failed.contains(b)));
        let mut off = Failed::new(0);
        off.remember("01");
        assert!(!off.contains("01"));
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
