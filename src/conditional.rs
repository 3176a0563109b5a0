//! Conditional requests (RFC 9110 §13.1.2): whether an `If-None-Match` names an entity tag. One reading for every
//! answer the Worker makes 304s for itself — the gateway's edge cache and the image variants.

/// Whether `if_none_match` (the header's value) names `etag` (an entity tag, quotes included, `W/` or not) by weak
/// comparison, or is `*` (RFC 9110 §13.1.2: the condition is then false and a GET or HEAD is answered 304). A
/// malformed list matches nothing: the client gets the full answer, which is always safe.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    if if_none_match.trim() == "*" {
        return true;
    }
    let wanted = opaque(etag);
    let mut rest = if_none_match;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        rest = rest.strip_prefix("W/").unwrap_or(rest);
        // An opaque tag is a quoted string without `"` inside (it may hold commas): read to its closing quote.
        let Some(inner) = rest.strip_prefix('"') else {
            return false;
        };
        let Some(end) = inner.find('"') else {
            return false;
        };
        if Some(&inner[..end]) == wanted {
            return true;
        }
        rest = &inner[end + 1..];
    }
}

/// The opaque part of an entity tag (between its quotes, without `W/`).
fn opaque(etag: &str) -> Option<&str> {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"')?.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_star_matches_any_tag() {
        let tag = "\"abc\"";
        for (header, matches, why) in [
            ("\"abc\"", true, "the same tag"),
            ("W/\"abc\"", true, "weak comparison ignores W/"),
            ("\"x\", \"abc\"", true, "one of a list"),
            ("\"x\",W/\"abc\"", true, "a list without spaces"),
            ("\"a,b\", \"abc\"", true, "a comma inside an earlier tag"),
            ("*", true, "any current representation"),
            (" * ", true, "* with spaces"),
            ("\"abcd\"", false, "another tag"),
            ("\"ab\"", false, "a prefix"),
            ("abc", false, "unquoted: malformed"),
            ("\"abc", false, "unterminated"),
            ("", false, "empty"),
            ("\"x\", *", false, "* inside a list is malformed"),
        ] {
            assert_eq!(none_match(header, tag), matches, "{why}: {header}");
        }
    }
}
