//! Reading HTTP field values (RFC 9110 §5.6): a list split at its commas, a member at its `;` parameters, each only
//! outside a quoted string — one reader for every field that may quote (`Cache-Control`'s field lists, `Accept`'s
//! and `Content-Type`'s parameters), so a `,` or `;` inside quotes separates nothing, in any of them. Pure.

/// `value`'s parts between the `separator`s (`b','` for a list's members, `b';'` for a member's parameters) outside a
/// quoted string (§5.6.4: `"` opens and closes one, `\` escapes the next byte inside it), untrimmed: one more part
/// than separators, so an empty value is one empty part.
pub fn split_unquoted(value: &str, separator: u8) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (at, byte) in value.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            // The separator is ASCII, so `at` is a char boundary.
            _ if byte == separator && !quoted => {
                parts.push(&value[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Coverage only: the reader `cache_control` had (its directive test covers it there), now shared with `Accept`.
    #[test]
    fn separators_inside_a_quoted_string_separate_nothing() {
        for (value, separator, parts, why) in [
            ("a, b,c", b',', vec!["a", " b", "c"], "plain"),
            ("", b',', vec![""], "empty: one empty part"),
            (
                "a=\"b,c\", d",
                b',',
                vec!["a=\"b,c\"", " d"],
                "a quoted comma",
            ),
            (
                "a=\"b\\\",c\", d",
                b',',
                vec!["a=\"b\\\",c\"", " d"],
                "an escaped quote inside quotes",
            ),
            (
                "a=\"b\\\\\", c",
                b',',
                vec!["a=\"b\\\\\"", " c"],
                "an escaped backslash ends before the quote",
            ),
            (
                "x;y=\"1;2\";q=0",
                b';',
                vec!["x", "y=\"1;2\"", "q=0"],
                "a quoted semicolon",
            ),
            (
                "a\\,b",
                b',',
                vec!["a\\", "b"],
                "a backslash outside quotes escapes nothing",
            ),
            (
                "a=\"open, b",
                b',',
                vec!["a=\"open, b"],
                "an unclosed quote runs to the end",
            ),
            ("é,ü", b',', vec!["é", "ü"], "UTF-8 around a separator"),
        ] {
            assert_eq!(split_unquoted(value, separator), parts, "{why}: {value:?}");
        }
    }
}
