//! How long a fragment the origin answered may be kept in `CONTENT_KV`, by what the origin said of it. KV is a
//! shared cache that serves the fragment to every visitor without asking the origin again, so the origin's word
//! binds it (RFC 9111): `no-store` (§5.2.2.5) and `private` (§5.2.2.7) keep it out, as does an unqualified
//! `no-cache` (§5.2.2.4: never served without revalidating, which a KV read cannot do); a freshness lifetime
//! (`s-maxage`, else `max-age`, less the `Age` it arrived with; §4.2.1, §4.2.3) shorter than the fragment's `ttl_s`
//! shortens its stay, and one shorter than KV's 60 s minimum TTL keeps it out (stored for 60 s it would be served
//! stale). A field aimed at CDNs (RFC 9213's `CDN-Cache-Control`, Cloudflare's own, `Surrogate-Control`) says the
//! lifetime when present, as it does for a CDN; `no-store` or `private` in any of them keeps it out, as the
//! gateway's edge cache reads them. A `Vary` of `*`, or naming a field the fragment fetch sends differently every time
//! ([`PER_FETCH`]: the page's `x-request-id`, its trace, the visitor's address), keeps it out too (§4.1: it never matches a later request;
//! a KV copy has no key per field, so it would be served to fetches it does not match). No such field: `ttl_s`,
//! the operator's setting. `Expires` is not read. Pure.

use crate::cache_control::directive;

/// Fields that speak to a cache like KV, the most specific first (RFC 9213 §2.2: a cache obeys the first it knows).
const TARGETED: [&str; 3] = [
    "cloudflare-cdn-cache-control",
    "cdn-cache-control",
    "surrogate-control",
];

/// The request fields a fragment fetch sends with a new value on every page: the page's `x-request-id` and trace
/// (`traceparent`, a continued trace's `tracestate`), which the Worker sets; `CF-Ray`, which Cloudflare's edge adds
/// to each request it passes to an origin; and the visitor's address, which Cloudflare puts on a Worker's
/// subrequests (`CF-Connecting-IP` and `X-Real-IP` — "the client's IP", Workers' Headers reference — and the
/// address fields it sends origins: `X-Forwarded-For`, `True-Client-IP`, `CF-Connecting-IPv6`). An answer that
/// varies on one was chosen for that one fetch, or that one visitor. Every other field is the same on every fetch —
/// one the runtime sets alike each time (`Accept-Encoding`), or one it never sends (`Cookie`, `Accept-Language`:
/// absent matches absent, §4.1) — so a `Vary` naming those matches every later fetch and the copy is kept.
pub const PER_FETCH: [&str; 9] = [
    "x-request-id",
    "traceparent",
    "tracestate",
    "cf-ray",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "x-real-ip",
    "x-forwarded-for",
    "true-client-ip",
];

/// Why an answer was chosen for its one fetch and may serve no other page — neither from KV nor to the pages that
/// waited on that fetch (`entry::coalesce`), which is a shared cache's reuse too — or `None`: `no-store` or `private`
/// in any of the fields, an unqualified `no-cache` in the one that governs (§5.2.2.4: no other request without a
/// revalidation), a `Vary` of `*` or naming a [`PER_FETCH`] field. `field` is as for [`reuse`].
pub fn for_one_fetch(field: impl Fn(&str) -> Option<String>) -> Option<String> {
    // Refusals count in every one of them, not only the one that says the lifetime (an origin telling any cache
    // not to keep an answer means KV too, as the gateway's edge cache reads them).
    let lists = TARGETED
        .iter()
        .filter_map(|name| Some((*name, field(name)?)))
        .chain(field("cache-control").map(|v| ("cache-control", v)));
    for (name, value) in lists {
        for refused in ["no-store", "private"] {
            if directive(&value, refused).is_some() {
                return Some(format!("the origin said {name}: {refused}"));
            }
        }
    }
    // A Vary with `*` never matches a later request (RFC 9111 §4.1), nor one naming a field every fetch sends anew
    // (PER_FETCH): as `no-cache`, only a revalidation could serve it, which a KV read cannot do.
    let vary = field("vary").unwrap_or_default();
    for member in vary.split(',').map(str::trim) {
        if member == "*" {
            return Some("the origin said Vary: *".to_owned());
        }
        if let Some(name) = PER_FETCH.iter().find(|f| f.eq_ignore_ascii_case(member)) {
            return Some(format!(
                "the origin said Vary: {name}, which the fetch sends anew every time"
            ));
        }
    }
    // `no-cache` with a field list (`no-cache="Set-Cookie"`) bars only those fields; KV keeps no field.
    let (name, value) = governing(&field)?;
    directive(&value, "no-cache")
        .is_some_and(|v| v.is_none())
        .then(|| format!("the origin said {name}: no-cache"))
}

/// The field that says an answer's lifetime: the most specific targeted one that is not empty (an empty one is
/// ignored, as if absent: RFC 9213 §2.1), else `Cache-Control`; with its name.
fn governing(field: impl Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    TARGETED
        .iter()
        .find_map(|name| Some((*name, field(name).filter(|v| !v.trim().is_empty())?)))
        .or_else(|| field("cache-control").map(|v| ("cache-control", v)))
}

/// Why an answer may serve no other page ([`for_one_fetch`]), and the TTL to write it back to KV with, at most
/// `ttl_s`, or why it is not written back (such an answer never is). `field` gives a response header's value by
/// lower-case name (repeated fields joined with `,`, as the runtime gives them); `min_ttl_s` is the shortest TTL KV
/// takes.
pub fn reuse(
    field: impl Fn(&str) -> Option<String>,
    ttl_s: u64,
    min_ttl_s: u64,
) -> (Option<String>, Result<u64, String>) {
    let one = for_one_fetch(&field);
    let ttl = match &one {
        Some(reason) => Err(reason.clone()),
        None => lifetime_ttl(&field, ttl_s, min_ttl_s),
    };
    (one, ttl)
}

/// The write-back TTL ([`reuse`]) of an answer [`for_one_fetch`] let through.
fn lifetime_ttl(
    field: impl Fn(&str) -> Option<String>,
    ttl_s: u64,
    min_ttl_s: u64,
) -> Result<u64, String> {
    let Some((name, value)) = governing(&field) else {
        return Ok(ttl_s);
    };
    let value = value.as_str();
    // `s-maxage` is for shared caches, in Cache-Control only (a targeted field's `max-age` already is).
    let lifetime = (name == "cache-control")
        .then(|| directive(value, "s-maxage"))
        .flatten()
        .or_else(|| directive(value, "max-age"));
    let Some(lifetime) = lifetime else {
        return Ok(ttl_s);
    };
    // An invalid lifetime (`max-age=soon`) makes the answer stale (RFC 9111 §4.2.1).
    let seconds = lifetime
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    let Some(seconds) = seconds else {
        return Err(format!(
            "the origin's {name} gives no valid freshness lifetime"
        ));
    };
    let age = field("age")
        .as_deref()
        .and_then(crate::cache_control::age_secs)
        .unwrap_or(0);
    let fresh_for = seconds.saturating_sub(age);
    if fresh_for < min_ttl_s {
        return Err(format!(
            "the origin's {name} leaves it fresh for {fresh_for} s, less than KV's {min_ttl_s} s minimum TTL"
        ));
    }
    Ok(fresh_for.min(ttl_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(fields: &[(&str, &str)], ttl_s: u64) -> Result<u64, String> {
        reuse(
            |name| {
                fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            },
            ttl_s,
            60,
        )
        .1
    }

    /// What keeps an answer to its own page (no other page gets it, not even one waiting on its fetch) is what says
    /// who it is for or that it may not be reused; a lifetime too short for KV still serves the pages that waited.
    #[test]
    fn an_answer_for_one_fetch_is_told_apart_from_one_too_short_lived_for_kv() {
        let one = |fields: &[(&str, &str)]| {
            for_one_fetch(|name| {
                fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        for fields in [
            &[("cache-control", "private")][..],
            &[("cache-control", "no-store")],
            &[("cache-control", "no-cache")],
            &[("cdn-cache-control", "private")],
            &[("vary", "CF-Connecting-IP")],
            &[("vary", "*")],
        ] {
            assert!(one(fields).is_some(), "{fields:?}");
        }
        for fields in [
            &[][..],
            &[("cache-control", "public, max-age=600")],
            &[("cache-control", "max-age=30")],
            &[("cache-control", "no-cache=\"set-cookie\"")],
            &[("vary", "Accept-Encoding")],
        ] {
            assert_eq!(one(fields), None, "{fields:?}");
        }
        assert!(
            ttl(&[("cache-control", "max-age=30")], 300).is_err(),
            "too short for KV"
        );
    }

    #[test]
    fn no_store_private_and_no_cache_keep_a_fragment_out_of_kv() {
        for fields in [
            &[("cache-control", "no-store")][..],
            &[("cache-control", "private")],
            &[("cache-control", "private, max-age=600")],
            &[("cache-control", "Private=\"set-cookie\", max-age=600")],
            &[("cache-control", "public, NO-STORE")],
            &[("cache-control", "no-cache")],
            &[("cache-control", "max-age=0, private, must-revalidate")],
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-store"),
            ],
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
            &[("surrogate-control", "no-cache")],
            // A less specific targeted field's `no-store` or `private` counts too, beside the one that says the
            // lifetime: the gateway's edge cache reads them all.
            &[
                ("cloudflare-cdn-cache-control", "max-age=600"),
                ("surrogate-control", "no-store"),
            ],
            &[
                ("cdn-cache-control", "max-age=600"),
                ("surrogate-control", "private"),
            ],
        ] {
            assert!(ttl(fields, 300).is_err(), "{fields:?}");
        }
        let reason = ttl(&[("cache-control", "no-store")], 300).unwrap_err();
        assert_eq!(reason, "the origin said cache-control: no-store");
    }

    #[test]
    fn a_vary_no_later_fetch_matches_keeps_a_fragment_out_of_kv_and_a_vary_on_fields_sent_alike_does_not(
    ) {
        // RFC 9111 §4.1: a stored answer whose Vary has `*` never matches a later request, so a cache that cannot
        // revalidate (a KV read) may not serve it — it was written back and served for ttl_s. Nor does one that
        // varies on a field every fetch sends anew (the page's request id, its trace): it was chosen for that fetch,
        // and was written back and served to every page after it.
        for vary in ["*", " * ", "Accept-Encoding, *", "accept-language,*"] {
            assert_eq!(
                ttl(&[("vary", vary), ("cache-control", "max-age=600")], 300),
                Err("the origin said Vary: *".to_owned()),
                "Vary: {vary}"
            );
        }
        for (vary, named) in [
            ("x-request-id", "x-request-id"),
            ("Accept-Encoding, X-Request-ID", "x-request-id"),
            (" traceparent ", "traceparent"),
            ("TraceState", "tracestate"),
            ("cf-ray", "cf-ray"),
            ("CF-Connecting-IP", "cf-connecting-ip"),
            ("Accept, X-Forwarded-For", "x-forwarded-for"),
            ("x-real-ip", "x-real-ip"),
        ] {
            assert_eq!(
                ttl(&[("vary", vary), ("cache-control", "max-age=600")], 300),
                Err(format!(
                    "the origin said Vary: {named}, which the fetch sends anew every time"
                )),
                "Vary: {vary}"
            );
        }
        // A field the fetch sends alike every time, or never (absent matches absent), matches every later fetch.
        for vary in [
            "Accept-Encoding",
            "Accept-Language, Cookie",
            "",
            "x-request-id-not",
        ] {
            assert_eq!(ttl(&[("vary", vary)], 300), Ok(300), "Vary: {vary}");
        }
    }

    #[test]
    fn a_shorter_freshness_lifetime_shortens_the_stay_and_one_under_kvs_minimum_keeps_it_out() {
        for (fields, expected) in [
            (&[][..], Ok(300)),
            (&[("cache-control", "public")], Ok(300)),
            (&[("cache-control", "no-cache=\"set-cookie\"")], Ok(300)),
            (&[("cache-control", "max-age=120")], Ok(120)),
            (&[("cache-control", "max-age=3600")], Ok(300)),
            (&[("cache-control", "max-age=\"120\"")], Ok(120)),
            (&[("cache-control", "max-age=10, s-maxage=100")], Ok(100)),
            (&[("cache-control", "s-maxage=100, max-age=1000")], Ok(100)),
            (&[("cache-control", "max-age=200"), ("age", "50")], Ok(150)),
            (
                &[
                    ("cache-control", "max-age=10"),
                    ("cdn-cache-control", "max-age=200"),
                ],
                Ok(200),
            ),
            (
                &[
                    ("cloudflare-cdn-cache-control", "max-age=90"),
                    ("cdn-cache-control", "max-age=200"),
                ],
                Ok(90),
            ),
            (
                &[("cache-control", "max-age=99999999999999999999999")],
                Ok(300),
            ),
        ] {
            assert_eq!(ttl(fields, 300), expected, "{fields:?}");
        }
        for fields in [
            &[("cache-control", "max-age=30")][..],
            &[("cache-control", "max-age=0")],
            &[("cache-control", "max-age=100"), ("age", "50")],
            &[("cache-control", "s-maxage=0, max-age=600")],
            &[("cache-control", "max-age=soon")],
            &[("cache-control", "max-age=-5")],
            &[("cache-control", "max-age")],
        ] {
            assert!(ttl(fields, 300).is_err(), "{fields:?}");
        }
    }

    /// A quoted argument is one argument: a directive named inside a field list is not one (RFC 9110 §5.6.4), so
    /// `max-age` inside `no-cache="..."` does not stand for the answer's own, nor `no-store` inside one keep it out.
    #[test]
    fn a_directive_named_inside_a_quoted_argument_is_not_one() {
        for (cache_control, expected) in [
            ("no-cache=\"Set-Cookie, max-age=9999\", max-age=30", Err(())),
            (
                "no-cache=\"Set-Cookie, max-age=9999\", max-age=120",
                Ok(120),
            ),
            ("no-cache=\"Set-Cookie, no-store\", max-age=120", Ok(120)),
            ("no-cache=\"a\\\", max-age=9999\", max-age=120", Ok(120)),
            ("max-age=120, no-cache=\"x, y\"", Ok(120)),
        ] {
            let got = ttl(&[("cache-control", cache_control)], 300).map_err(|_| ());
            assert_eq!(got, expected, "{cache_control}");
        }
    }

    /// A targeted field sent empty is ignored (RFC 9213 §2.1: as if it were not there), so it neither hides
    /// Cache-Control's shorter lifetime nor a less specific targeted field's.
    #[test]
    fn an_empty_targeted_field_is_as_if_absent() {
        for (fields, expected) in [
            (
                &[("cdn-cache-control", ""), ("cache-control", "max-age=30")][..],
                Err(()),
            ),
            (
                &[("cdn-cache-control", " "), ("cache-control", "max-age=120")],
                Ok(120),
            ),
            (
                &[
                    ("cloudflare-cdn-cache-control", ""),
                    ("cdn-cache-control", "max-age=90"),
                ],
                Ok(90),
            ),
            (&[("cdn-cache-control", "")], Ok(300)),
        ] {
            assert_eq!(ttl(fields, 300).map_err(|_| ()), expected, "{fields:?}");
        }
    }

    /// `Age` is a singleton, but a field sent twice arrives joined (`590, 590`): its first member counts (RFC 9111
    /// §5.1), and one too large to hold makes the answer stale (§1.2.2), not fresh for its whole `max-age`. Junk is
    /// ignored.
    #[test]
    fn an_age_list_counts_its_first_member_and_an_overflowing_age_is_stale() {
        for (age, expected) in [
            ("590, 590", Err(())),
            ("590,600", Err(())),
            ("99999999999999999999999", Err(())),
            (" 100 ", Ok(500)),
            ("100, junk", Ok(500)),
            ("junk", Ok(600)),
            ("-5", Ok(600)),
            ("", Ok(600)),
        ] {
            let got = ttl(&[("cache-control", "max-age=600"), ("age", age)], 3600).map_err(|_| ());
            assert_eq!(got, expected, "Age: {age:?}");
        }
    }
}
