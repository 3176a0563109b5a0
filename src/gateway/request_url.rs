//! The parts of an incoming request's URL the gateway uses (scheme, authority, path, query), sliced out of the
//! runtime's serialisation of it. That string is already a parsed, normalised WHATWG URL, so re-parsing it with the
//! `url` crate on every proxied request (as `worker::Request::url` does) bought nothing but wasm time. Pure.

/// Borrowed parts of a serialised absolute URL such as `http://127.0.0.1:8787/api/x?a=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestUrl<'a> {
    /// `http` or `https` (no colon).
    pub scheme: &'a str,
    /// Host and, when not the scheme's default, `:port` — what `X-Forwarded-Host` carries.
    pub authority: &'a str,
    /// The percent-encoded path, starting with `/`.
    pub path: &'a str,
    /// The raw query without its `?`: `None` when the URL has no `?`, `Some("")` for a bare `?`.
    pub query: Option<&'a str>,
}

impl<'a> RequestUrl<'a> {
    /// Splits a serialised URL. A request URL always has a scheme, an authority and a path (WHATWG serialisation
    /// never omits the path of an http(s) URL); the fallbacks keep this total for any other input.
    pub fn split(serialised: &'a str) -> Self {
        let (scheme, rest) = serialised.split_once("://").unwrap_or(("", serialised));
        let rest = rest.split('#').next().unwrap_or(rest);
        let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(path_start);
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        Self {
            scheme,
            authority,
            path: if path.is_empty() { "/" } else { path },
            query,
        }
    }
}

/// The path the gateway matches routes on and forwards: runs of `/` collapsed to one, percent-escapes of unreserved
/// characters decoded and the hex of the others upper-cased (RFC 3986 §6.2.2), so every spelling of one path —
/// `/api/%61dmin`, `//api/admin` — meets the route, auth policy and prefix strip that `/api/admin` meets, and the
/// origin receives the path that was matched. Escapes of reserved characters (`%2F`, `%3F`, …) stay escaped, and a
/// `%` that starts no escape is written `%25`: decoding the escapes after it must not make a new one
/// (`/l%%36%31nd` is not `/l%61nd`, which a reader decoding once more — an origin, the image source path — would take
/// for `/land`), and an origin decoding once gets the `%` the client sent.
pub fn normalise_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains("//") && !path.contains('%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'/' && out.ends_with('/') {
            i += 1;
            continue;
        }
        if b == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = &path[i + 1..i + 3];
            if let Ok(value) = u8::from_str_radix(hex, 16) {
                if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                    out.push(value as char);
                } else {
                    out.push('%');
                    out.push_str(&hex.to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        if b == b'%' {
            out.push_str("%25");
            i += 1;
            continue;
        }
        // Any other byte of the already-valid path: copied as it is.
        let next = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + next]);
        i += next;
    }
    std::borrow::Cow::Owned(out)
}

/// A configured path (a route's `path`, its `strip_prefix`) in the spelling requests for it are matched in: the
/// characters a WHATWG URL escapes in a request's path — controls, space, `"`, `<`, `>`, `` ` `` and all beyond ASCII
/// (`/docs/café` arrives as `/docs/caf%C3%A9`) — escaped as it does, then [`normalise_path`]. Written as it is, such
/// a route never matched a request.
pub fn as_requested(path: &str) -> String {
    normalise_path(&url_escaped(path)).into_owned()
}

/// `path` with what a WHATWG URL escapes in a path escaped as it does (its path percent-encode set: controls,
/// space, `"`, `#`, `<`, `>`, `?`, `` ` ``, `{`, `}`, and every byte beyond ASCII, in upper-case hex): the spelling
/// the runtime sends a configured path in, and an origin writes back.
pub fn url_escaped(path: &str) -> String {
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(path, ESCAPED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_path_is_spelled_as_the_url_of_a_request_for_it() {
        for raw in [
            "/docs/café",
            "/my docs/a\"b<c>d`e",
            "/promo/50%off",
            "/%61pi//x",
            "/caf%c3%a9",
            "/tpl/{id}",
        ] {
            let request = url::Url::parse(&format!("http://h{raw}")).expect("parses");
            assert_eq!(as_requested(raw), normalise_path(request.path()), "{raw}");
        }
        assert_eq!(as_requested("/docs/café"), "/docs/caf%C3%A9");
        assert_eq!(as_requested("/plain/path"), "/plain/path");
    }

    #[test]
    fn parts_match_what_the_url_crate_reports() {
        let cases = [
            "http://127.0.0.1:8787/api/items/42?fields=name",
            "https://example.com/",
            "https://example.com/a%20b/c?x=%27&y",
            "http://[::1]:8080/p?",
            "http://example.com/p?q=1#frag",
            "https://example.com:443/default-port",
            "http://h/path;params/x?a=1?b=2",
        ];
        for raw in cases {
            let parsed = url::Url::parse(raw).expect("valid URL");
            let serialised = parsed.as_str();
            let split = RequestUrl::split(serialised);
            assert_eq!(split.scheme, parsed.scheme(), "{raw}");
            let authority = match (parsed.host_str(), parsed.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => String::new(),
            };
            assert_eq!(split.authority, authority, "{raw}");
            assert_eq!(split.path, parsed.path(), "{raw}");
            assert_eq!(split.query, parsed.query(), "{raw}");
        }
    }

    #[test]
    fn every_spelling_of_a_path_normalises_to_one() {
        let cases = [
            ("/api/admin", "/api/admin"),
            ("/api/%61dmin", "/api/admin"),
            ("/api/%41DMIN", "/api/ADMIN"),
            ("//api///admin/", "/api/admin/"),
            ("/a%2db%5fc%2Ed%7e", "/a-b_c.d~"),
            ("/files/a%2fb", "/files/a%2Fb"),
            ("/q%3fx%20y", "/q%3Fx%20y"),
            ("/%e9%", "/%E9%25"),
            ("/%é", "/%25é"),
            ("/100%", "/100%25"),
            ("/bad%zz/%4", "/bad%25zz/%254"),
            // A lone `%` never joins the escapes decoded after it into a new one.
            ("/l%%36%31nd", "/l%2561nd"),
            ("/%%32%65%%32%65/x", "/%252e%252e/x"),
            ("/caf%C3%A9/é", "/caf%C3%A9/é"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise_path(raw), want, "{raw}");
            assert_eq!(
                normalise_path(want),
                want,
                "{raw}: normalised once for good"
            );
        }
        assert!(matches!(
            normalise_path("/plain/path"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn input_without_the_usual_parts_is_still_split() {
        let split = RequestUrl::split("example.com");
        assert_eq!(
            (split.authority, split.path, split.query),
            ("example.com", "/", None)
        );
        let split = RequestUrl::split("http://h?x=1");
        assert_eq!(
            (split.authority, split.path, split.query),
            ("h", "/", Some("x=1"))
        );
    }
}
