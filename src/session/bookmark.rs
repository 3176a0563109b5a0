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

#[cfg(test)]
mod tests {
    use super::*;

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
