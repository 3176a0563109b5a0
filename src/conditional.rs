//! Conditional requests (RFC 9110 §13.1.1, §13.1.2): whether an `If-None-Match` (or an `If-Match`) names an entity
//! tag. One reading for every answer the Worker makes 304s (or 412s) for itself — the gateway's edge cache and the
//! image variants.

/// Whether `if_none_match` (the header's value) names `etag` (an entity tag, quotes included, `W/` or not) by weak
/// comparison, or is `*` (RFC 9110 §13.1.2: the condition is then false and a GET or HEAD is answered 304). A
/// malformed list matches nothing: the client gets the full answer, which is always safe. An origin's tag without
/// quotes is compared as it was sent ([`as_sent`]).
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    if any(if_none_match) {
        return true;
    }
    let Some(wanted) = opaque(etag) else {
        return as_sent(if_none_match, etag);
    };
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
        if &inner[..end] == wanted {
            return true;
        }
        rest = &inner[end + 1..];
    }
}

/// Whether `if_match` (an `If-Match` value) names `etag` by strong comparison (RFC 9110 §13.1.1, §8.8.3.2): both
/// tags strong and their opaque parts equal, or `*`. A weak tag on either side, or a malformed list, matches nothing.
pub fn strong_match(if_match: &str, etag: &str) -> bool {
    if any(if_match) {
        return true;
    }
    if etag.starts_with("W/") {
        return false;
    }
    let Some(wanted) = opaque(etag) else {
        return false;
    };
    let mut rest = if_match;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let weak = rest.starts_with("W/");
        rest = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(inner) = rest.strip_prefix('"') else {
            return false;
        };
        let Some(end) = inner.find('"') else {
            return false;
        };
        if !weak && &inner[..end] == wanted {
            return true;
        }
        rest = &inner[end + 1..];
    }
}

/// Whether the header is `*`, which names any current representation, tagged or not.
pub fn any(if_none_match: &str) -> bool {
    if_none_match.trim() == "*"
}

/// Whether a list names `etag` as it was given, for an origin's tag without its quotes (`ETag: 5d8c72a5`: RFC 9110
/// §8.8.3 requires them, yet such origins exist and browsers send the value back as they got it, so a stricter
/// reading would answer every revalidation in full). Members are split on commas outside quotes: such a tag cannot
/// hold one, but a quoted member of the list may (`"v1, 5d8c72a5, v2"` is one tag, and names no `5d8c72a5`).
fn as_sent(if_none_match: &str, etag: &str) -> bool {
    fn bare(tag: &str) -> &str {
        let tag = tag.trim();
        tag.strip_prefix("W/").unwrap_or(tag)
    }
    let etag = bare(etag);
    let mut quoted = false;
    !etag.is_empty()
        && if_none_match
            .split(|c| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .any(|member| bare(member) == etag)
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

    #[test]
    fn if_match_compares_strongly() {
        let tag = "\"abc\"";
        for (header, matches, why) in [
            ("\"abc\"", true, "the same tag"),
            ("\"x\", \"abc\"", true, "one of a list"),
            ("*", true, "any current representation"),
            ("W/\"abc\"", false, "a weak tag never matches strongly"),
            ("W/\"abc\", \"y\"", false, "nor in a list"),
            ("\"abcd\"", false, "another tag"),
            ("abc", false, "unquoted: malformed"),
            ("", false, "empty"),
        ] {
            assert_eq!(strong_match(header, tag), matches, "{why}: {header}");
        }
        assert!(
            !strong_match("\"abc\"", "W/\"abc\""),
            "a weak ETag never matches"
        );
    }

    #[test]
    fn an_origins_tag_without_quotes_is_matched_as_it_was_sent() {
        for (header, tag, matches, why) in [
            ("5d8c72a5", "5d8c72a5", true, "sent back as given"),
            ("\"x\", 5d8c72a5", "5d8c72a5", true, "in a list"),
            ("W/5d8c72a5", "W/5d8c72a5", true, "weak, unquoted"),
            (
                "\"5d8c72a5\"",
                "5d8c72a5",
                false,
                "quoted is another spelling",
            ),
            ("5d8c72a", "5d8c72a5", false, "a prefix"),
            (
                "\"v1, 5d8c72a5, v2\"",
                "5d8c72a5",
                false,
                "inside one quoted tag holding a comma",
            ),
            (
                "W/\"v1, x\", 5d8c72a5",
                "5d8c72a5",
                true,
                "after a quoted tag holding a comma",
            ),
            ("", "", false, "an empty tag names nothing"),
        ] {
            assert_eq!(none_match(header, tag), matches, "{why}: {header} vs {tag}");
        }
    }
}
