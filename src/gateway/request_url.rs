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

#[cfg(test)]
mod tests {
    use super::*;

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
