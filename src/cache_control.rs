//! Reading `Cache-Control`-style lists (`Cache-Control`, `CDN-Cache-Control`, `Surrogate-Control`; RFC 9111 §5.2,
//! RFC 9213): one reader for the gateway's edge cache (what it may store) and render's write-back to KV (what it may
//! keep, and how long), so a quoted argument is read the same way by both; and the `Age` field both read. Pure.

/// The `Age` an answer arrived with (RFC 9111 §5.1): of a list (`Age: 590, 590`, a field sent twice and joined) the
/// first member; a value too large to hold is 2^31 s or more (§1.2.2: stale, not fresh); anything else not a
/// non-negative integer is ignored (`None`).
pub fn age_secs(value: &str) -> Option<u64> {
    let first = value.split(',').next().unwrap_or_default().trim();
    (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
        .then(|| first.parse::<u64>().unwrap_or(u64::MAX))
}

/// A directive of a `Cache-Control`-style list, by name (any case): `Some(None)` bare, `Some(Some(value))` with an
/// argument, `None` absent; the first occurrence (RFC 9111 §4.2.1).
pub fn directive<'a>(list: &'a str, name: &str) -> Option<Option<&'a str>> {
    items(list).into_iter().find_map(|item| {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key, Some(value.trim())),
            None => (item, None),
        };
        key.trim().eq_ignore_ascii_case(name).then_some(value)
    })
}

/// A list's members, split at the commas outside a quoted string: a field list (`no-cache="Set-Cookie, max-age"`)
/// is one argument, and nothing in it is taken for a directive of its own.
fn items(list: &str) -> Vec<&str> {
    crate::field_list::split_unquoted(list, b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_found_by_name_in_any_case_outside_quoted_arguments() {
        let list = "Public, max-age=60, no-cache=\"Set-Cookie, no-store\", S-MAXAGE = 5";
        assert_eq!(directive(list, "public"), Some(None));
        assert_eq!(directive(list, "max-age"), Some(Some("60")));
        assert_eq!(directive(list, "s-maxage"), Some(Some("5")));
        assert_eq!(
            directive(list, "no-cache"),
            Some(Some("\"Set-Cookie, no-store\""))
        );
        assert_eq!(
            directive(list, "no-store"),
            None,
            "named inside a quoted argument only"
        );
        assert_eq!(
            directive("private=\"a\\\", no-store\"", "no-store"),
            None,
            "an escaped quote"
        );
        assert_eq!(
            directive("max-age=1, max-age=2", "max-age"),
            Some(Some("1")),
            "the first"
        );
        assert_eq!(directive("", "no-store"), None);
    }
}
