//! Read-your-writes across requests: the D1 Sessions API bookmark travels to the client in `x-d1-bookmark` and comes
//! back on the next request, so that request's D1 session starts at least as new as the last write the client saw.
//! A header that cannot be a bookmark is ignored (the request then starts from the primary), never an error.

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
/// not seen the revocation. Other requests start at the client's bookmark when it has a bookmark's shape.
pub fn start(header: Option<&str>, strict: bool) -> &str {
    if strict {
        return FIRST_PRIMARY;
    }
    accept(header).unwrap_or(FIRST_PRIMARY)
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
        assert_eq!(start(Some(real), true), FIRST_PRIMARY);
        assert_eq!(start(None, true), FIRST_PRIMARY);
        assert_eq!(start(Some(real), false), real);
        assert_eq!(start(Some("garbage!"), false), FIRST_PRIMARY);
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
