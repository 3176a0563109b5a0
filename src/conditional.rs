//! Conditional requests (RFC 9110 §13.1.1, §13.1.2): whether an `If-None-Match` (or an `If-Match`) names an entity
//! tag, and the HTTP-dates an `If-Modified-Since` is compared by (§13.1.3). One reading for every answer the Worker
//! makes 304s (or 412s) for itself — the gateway's edge cache and the image variants.

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
    names_tag(if_none_match, wanted, false)
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
    names_tag(if_match, wanted, true)
}

/// Whether the entity-tag list `list` names the opaque tag `wanted` — by strong comparison when `strong` (a `W/` tag
/// in the list never matches), else by weak. A malformed list matches nothing.
fn names_tag(list: &str, wanted: &str, strong: bool) -> bool {
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let weak = rest.starts_with("W/");
        rest = rest.strip_prefix("W/").unwrap_or(rest);
        // An opaque tag is a quoted string without `"` inside (it may hold commas): read to its closing quote.
        let Some(inner) = rest.strip_prefix('"') else {
            return false;
        };
        let Some(end) = inner.find('"') else {
            return false;
        };
        if !(strong && weak) && &inner[..end] == wanted {
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

/// An HTTP-date (RFC 9110 §5.6.7) in seconds since the epoch: an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or
/// either obsolete format a recipient MUST accept — rfc850-date (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime-date
/// (`Sun Nov  6 08:49:37 1994`). `None` for anything else: another zone, a day the month lacks, a weekday the date
/// does not fall on, a list of dates. Words may be parted by any run of spaces. An rfc850-date's two-digit year is
/// read as 1970–2069 (not by §5.6.7's "more than 50 years in the future" rule: the two differ only for dates decades
/// away, and a date read too early costs only a full answer). Read here rather than by chrono's `parse_from_str`,
/// whose format parser added 16 KB gzip to the wasm; chrono still checks the calendar.
pub fn http_date(value: &str) -> Option<i64> {
    let weekday = |name: &str, long: bool| {
        DAYS.iter()
            .find(|(short, full, _)| name == if long { *full } else { *short })
            .map(|(_, _, day)| *day)
    };
    let mut words = value.split_ascii_whitespace();
    let first = words.next()?;
    let Some(name) = first.strip_suffix(',') else {
        // asctime-date: `Sun Nov  6 08:49:37 1994`, which names no zone (it is GMT).
        let weekday = weekday(first, false)?;
        let (month, day, time) = (words.next()?, words.next()?, words.next()?);
        let year = number(words.next()?, 4..=4)?;
        if words.next().is_some() {
            return None;
        }
        return instant(weekday, (day, 1..=2), month, year, time);
    };
    let date = words.next()?;
    let mut dashed = date.split('-');
    let (weekday, day, month, year) =
        match (dashed.next(), dashed.next(), dashed.next(), dashed.next()) {
            // rfc850-date: `Sunday, 06-Nov-94 08:49:37 GMT`.
            (Some(day), Some(month), Some(year), None) => {
                let year = number(year, 2..=2)?;
                let year = if year >= 70 { 1900 + year } else { 2000 + year };
                (weekday(name, true)?, day, month, year)
            }
            // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
            (Some(_), None, _, _) => {
                let month = words.next()?;
                let year = number(words.next()?, 4..=4)?;
                (weekday(name, false)?, date, month, year)
            }
            _ => return None,
        };
    let time = words.next()?;
    if words.next() != Some("GMT") || words.next().is_some() {
        return None;
    }
    instant(weekday, (day, 2..=2), month, year, time)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const DAYS: [(&str, &str, chrono::Weekday); 7] = [
    ("Mon", "Monday", chrono::Weekday::Mon),
    ("Tue", "Tuesday", chrono::Weekday::Tue),
    ("Wed", "Wednesday", chrono::Weekday::Wed),
    ("Thu", "Thursday", chrono::Weekday::Thu),
    ("Fri", "Friday", chrono::Weekday::Fri),
    ("Sat", "Saturday", chrono::Weekday::Sat),
    ("Sun", "Sunday", chrono::Weekday::Sun),
];

/// The instant an HTTP-date's parts name (`day` with how many digits it may have), if the calendar has that day and
/// it is a `weekday`.
fn instant(
    weekday: chrono::Weekday,
    (day, day_digits): (&str, std::ops::RangeInclusive<usize>),
    month: &str,
    year: u32,
    time: &str,
) -> Option<i64> {
    use chrono::{Datelike, NaiveDate};
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, number(day, day_digits)?)?;
    if date.weekday() != weekday {
        return None;
    }
    let mut clock = time.split(':');
    let mut part = || number(clock.next()?, 2..=2);
    let (hour, minute, second) = (part()?, part()?, part()?);
    if clock.next().is_some() || second > 60 {
        return None;
    }
    // A leap second (§5.6.7 allows 60) is read as the second before it.
    let at = date.and_hms_opt(hour, minute, second.min(59))?;
    Some(at.and_utc().timestamp())
}

/// `secs` since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7), the form a sender
/// MUST generate; `None` for an instant chrono cannot place (years past 262143).
pub fn imf_fixdate(secs: i64) -> Option<String> {
    use chrono::{Datelike, Timelike};
    let at = chrono::DateTime::from_timestamp(secs, 0)?;
    let (weekday, _, _) = DAYS.iter().find(|(_, _, day)| *day == at.weekday())?;
    Some(format!(
        "{weekday}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        at.day(),
        MONTHS[at.month0() as usize],
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    ))
}

/// A number written in `digits` ASCII digits (a range: asctime-date's day has one or two).
fn number(text: &str, digits: std::ops::RangeInclusive<usize>) -> Option<u32> {
    if !digits.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
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
    fn an_instant_is_written_as_the_imf_fixdate_it_is_read_from() {
        assert_eq!(
            imf_fixdate(784_111_777).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            "RFC 9110's own example"
        );
        for secs in [0, 951_782_400, 1_796_327_037, 4_102_444_799] {
            let written = imf_fixdate(secs).expect("a date");
            assert_eq!(http_date(&written), Some(secs), "{written}");
        }
    }

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
    fn http_dates_are_read_in_all_three_formats() {
        let at = Some(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        for (value, read) in [
            ("Sun, 06 Nov 1994 08:49:37 GMT", at),
            ("Sunday, 06-Nov-94 08:49:37 GMT", at),
            ("Sun Nov  6 08:49:37 1994", at),
            ("Sun Nov 06 08:49:37 1994", at),
            ("  Sun,  06 Nov 1994 08:49:37 GMT ", at),
            ("Sun, 06 Nov 1994 08:49:60 GMT", Some(784_111_799)),
            ("Thursday, 01-Jan-70 00:00:00 GMT", Some(0)),
            ("Sat, 29 Feb 2020 00:00:00 GMT", Some(1_582_934_400)),
            ("Sun, 29 Feb 2021 00:00:00 GMT", None),
            ("Sun, 06 nov 1994 08:49:37 GMT", None),
            ("Sun, 6 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 94 08:49:37 GMT", None),
            ("Sun, 06-Nov-94 08:49:37 GMT", None),
            ("Monday, 06-Nov-94 08:49:37 GMT", None),
            ("Sun Nov  6 08:49:37 1994 GMT", None),
            ("Sun, 06 Nov 1994 08:49:61 GMT", None),
            ("Sun, 06 Nov 1994 8:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37:00 GMT", None),
            ("Sun, +6 Nov 1994 08:49:37 GMT", None),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Mon, 06 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 06 Nov 1994 08:49:37", None),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
            ("06 Nov 1994 08:49:37 GMT", None),
            (
                "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
                None,
            ),
            ("784111777", None),
            ("", None),
        ] {
            assert_eq!(http_date(value), read, "{value}");
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
