//! CORS headers for the pages of other origins the configuration lets read answers with their cookies: the app's
//! own routes for `SESSION_TRUSTED_ORIGINS` (a front end on a sibling subdomain logging in, refreshing, asking for a
//! room ticket — without them a browser sends a login's JSON only after a preflight, and lets the page read no
//! answer), and the gateway's own error answers for `GATEWAY_CORS_ORIGINS` (`gateway::cors`). The origin is always
//! echoed from a checked list, never reflected as sent; the lists are read here too
//! ([`parse_origins`]). Pure.

/// The headers such a page may read: why it was refused, when to retry, and the ids, bookmark and entity tag to send
/// back (`If-None-Match`/`If-Match`, which a preflight allows, name an `ETag` the page read).
pub const EXPOSED: &str =
    "WWW-Authenticate, Retry-After, Allow, RateLimit, RateLimit-Policy, X-WAF-Rule, \
                           X-Request-Id, X-Trace-Id, traceparent, X-D1-Bookmark, ETag";

/// Request headers a trusted page may send to the app's routes beyond the CORS-safelisted ones; `Authorization` for
/// the routes that take a bearer token (`POST /admin/gateway/purge` from an operator's dashboard); the W3C trace
/// pair a traced page sends together (a preflight naming `tracestate` with `traceparent` allowed alone fails, and
/// the page's request is never sent); the validators a page revalidating a page or an image sends.
const ALLOWED_REQUEST_HEADERS: &str =
    "Authorization, Content-Type, X-D1-Bookmark, X-Request-Id, traceparent, \
     tracestate, If-Match, If-None-Match";

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// The entry of `listed` that `origin` names (compared without case), in the list's spelling: what is echoed is
/// always a configured origin, never the request's text (`https://APP.example` is answered `https://app.example`).
pub fn listed<'a>(listed: &'a [String], origin: Option<&str>) -> Option<&'a str> {
    let origin = origin.map(str::trim).filter(|o| !o.is_empty())?;
    listed
        .iter()
        .find(|o| o.eq_ignore_ascii_case(origin))
        .map(String::as_str)
}

/// The headers that let a page of `origin` (already checked) read an answer, cookies included.
pub fn credentialed(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("access-control-allow-origin", origin.to_owned()),
        ("access-control-allow-credentials", "true".to_owned()),
        ("access-control-expose-headers", EXPOSED.to_owned()),
        ("vary", "Origin".to_owned()),
    ]
}

/// The answer to a preflight from `origin` (already checked) asking to send `asked` to a route serving `methods`:
/// `None` when the route does not serve that method (the preflight then fails as a 405).
pub fn preflight(
    origin: &str,
    asked: &str,
    methods: &[&str],
) -> Option<Vec<(&'static str, String)>> {
    methods.contains(&asked.trim()).then(|| {
        let mut headers = credentialed(origin);
        headers.extend([
            ("access-control-allow-methods", methods.join(", ")),
            (
                "access-control-allow-headers",
                ALLOWED_REQUEST_HEADERS.to_owned(),
            ),
            ("access-control-max-age", PREFLIGHT_MAX_AGE_SECS.to_string()),
        ]);
        headers
    })
}

/// A configured list of origins under `key`, each checked by [`parse_origin`]; an error names the entry.
pub fn parse_origins(
    key: &str,
    listed: &[String],
) -> Result<Vec<String>, crate::config::ConfigError> {
    listed
        .iter()
        .enumerate()
        .map(|(i, origin)| {
            parse_origin(origin).map_err(|problem| {
                crate::config::ConfigError::new(key, format!("entry {i} {problem}"))
            })
        })
        .collect()
}

/// A configured origin (one whose pages may read answers, or act with a session): `http(s)://host[:port]` exactly
/// as browsers send `Origin`, returned lower-cased. It is compared as text with what browsers send, the URL
/// standard's serialisation of the origin, so the `url` crate (that standard's parser) judges it: what does not
/// parse, is not http(s), or is spelt otherwise than it serialises — a path (even `/`), credentials, a query or
/// fragment, a default port, `127.1`, an uncompressed or mapped IPv6 address, a name beyond ASCII — is refused,
/// with the browsers' spelling named when there is one. Port 0 is refused too: no page is served from it.
pub fn parse_origin(value: &str) -> Result<String, String> {
    const NOT_AN_ORIGIN: &str =
        "must be an origin as browsers send it: http(s)://host[:port], no path, no default port";
    let origin = value.to_ascii_lowercase();
    let url = url::Url::parse(value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.port() != Some(0))
        .ok_or(NOT_AN_ORIGIN)?;
    let sent = url.origin().ascii_serialization();
    if sent == origin {
        Ok(origin)
    } else {
        Err(format!("{NOT_AN_ORIGIN} (browsers send {sent})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_are_echoed() {
        let list = vec!["https://app.example".to_owned()];
        assert_eq!(
            listed(&list, Some("https://App.example")),
            Some("https://app.example"),
            "the list's spelling, never the request's"
        );
        for other in [Some("https://evil.example"), Some("null"), Some(" "), None] {
            assert_eq!(listed(&list, other), None, "{other:?}");
        }
        let headers = credentialed("https://app.example");
        assert!(headers.contains(&("access-control-allow-credentials", "true".to_owned())));
        assert!(headers.contains(&("vary", "Origin".to_owned())));
    }

    #[test]
    fn a_preflight_allows_the_routes_methods_only() {
        let answer = preflight("https://app.example", "POST", &["POST"]).expect("served");
        assert!(answer.contains(&("access-control-allow-methods", "POST".to_owned())));
        assert!(answer
            .iter()
            .any(|(n, v)| *n == "access-control-allow-headers" && v.contains("Content-Type")));
        assert_eq!(preflight("https://app.example", "DELETE", &["POST"]), None);
    }

    /// The validators a preflight lets a page send are ones it read: an answer's `ETag` (an image's), which is no
    /// CORS-safelisted response header, is exposed, or `If-None-Match`/`If-Match` could only name a guess.
    #[test]
    fn the_entity_tag_a_page_sends_back_is_readable() {
        let exposed: Vec<String> = EXPOSED
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .collect();
        assert!(exposed.iter().any(|name| name == "etag"), "{exposed:?}");
    }

    /// A traced page sends `tracestate` beside `traceparent` (W3C Trace Context: a pair), and a page revalidating
    /// what it read sends its validators: a preflight naming any of them is answered with it allowed.
    #[test]
    fn a_preflight_allows_the_trace_pair_and_validators() {
        let answer = preflight("https://app.example", "GET", &["GET"]).expect("served");
        let allowed = answer
            .iter()
            .find(|(n, _)| *n == "access-control-allow-headers")
            .map(|(_, v)| v.to_ascii_lowercase())
            .expect("listed");
        let allowed: Vec<&str> = allowed.split(", ").collect();
        for name in ["traceparent", "tracestate", "if-match", "if-none-match"] {
            assert!(allowed.contains(&name), "{name} in {allowed:?}");
        }
    }

    #[test]
    fn trusted_origins_are_origins() {
        assert_eq!(
            parse_origin("https://A.example.com"),
            Ok("https://a.example.com".to_owned())
        );
        assert!(parse_origin("http://127.0.0.1:8787").is_ok());
        assert!(parse_origin("https://a.example.com:80").is_ok());
        assert!(parse_origin("https://[::1]:8443").is_ok());
        assert!(parse_origin("https://[::1]").is_ok());
        for bad in [
            "app.example.com",
            "https://",
            "https://a.example.com/",
            "https://a.example.com/x",
            "https://u@a.example.com",
            "https://a.example.com?x",
            "https://a.example.com:",
            "https://a.example.com:123456",
            "https://a.example.com:8x",
            "ftp://a.example.com",
            "https://a b",
            "https://a.example.com:443",
            "http://a.example.com:80",
            "https://a.example.com:0",
            "https://a.example.com:08443",
            "https://a.example.com:65536",
            "https://a]b",
            "https://[::1]x",
            "https://[]",
            "https://[::1",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    /// An origin is compared as text with the `Origin` a browser sends, which is the URL standard's serialisation:
    /// a host spelt any other way would never match, and its pages would silently get no CORS and be refused.
    #[test]
    fn an_origin_spelt_otherwise_than_browsers_send_it_is_refused_naming_their_spelling() {
        for (spelt, sent) in [
            ("http://[0:0:0:0:0:0:0:1]:5173", "http://[::1]:5173"),
            ("http://127.1:5173", "http://127.0.0.1:5173"),
            ("http://[::ffff:127.0.0.1]", "http://[::ffff:7f00:1]"),
            ("http://0x7f.0.0.1", "http://127.0.0.1"),
            ("https://app.example.", "https://app.example."),
        ] {
            match parse_origin(spelt) {
                Err(problem) if spelt != sent => {
                    assert!(problem.contains(sent), "{spelt}: {problem}")
                }
                Ok(origin) if spelt == sent => assert_eq!(origin, sent),
                other => panic!("{spelt}: {other:?}"),
            }
        }
        assert_eq!(
            parse_origin("https://Bücher.example"),
            Err("must be an origin as browsers send it: http(s)://host[:port], no path, no default port \
                 (browsers send https://xn--bcher-kva.example)"
                .to_owned())
        );
    }
}
