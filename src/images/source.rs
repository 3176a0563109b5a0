//! The source path of an image request, normalised and checked before anything is fetched: it is percent-decoded
//! exactly once and must then be a plain relative path of `[A-Za-z0-9._~@-]` segments, so traversal (`..`,
//! `%2e%2e`, `%252e%252e`), backslashes, absolute or scheme-relative URLs and other hosts cannot be expressed and
//! the origin URL is always `{origin}/{path}` (no SSRF). `@` is allowed for the `logo@2x.png` names of high-density
//! assets: after `{origin}/` it can only be a path character (the authority ends at the first `/`), never userinfo.

use percent_encoding::percent_decode_str;

use crate::error::ApiError;

/// Longest source path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// A checked source path: relative, no empty/dot segments, only unreserved characters and `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath(String);

impl SourcePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The source's URL under `origin` (a validated base URL without trailing slash).
    pub fn url_under(&self, origin: &str) -> String {
        format!("{origin}/{}", self.0)
    }
}

fn invalid(why: &str) -> ApiError {
    ApiError::bad_request("invalid_source", format!("source path refused: {why}"))
}

/// Decodes `raw` (as it appears in the request path) once and checks it; the error says why it was refused.
pub fn normalise(raw: &str) -> Result<SourcePath, ApiError> {
    if raw.is_empty() {
        return Err(invalid("no source path given"));
    }
    if raw.len() > MAX_PATH_LEN * 3 {
        return Err(invalid("too long"));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| invalid("not valid UTF-8 once decoded"))?;
    if decoded.len() > MAX_PATH_LEN {
        return Err(invalid("too long"));
    }
    if decoded.contains('%') {
        return Err(invalid("encoded more than once"));
    }
    if decoded.contains('\\') {
        return Err(invalid("backslashes are not allowed"));
    }
    if decoded.contains(':') {
        return Err(invalid("absolute URLs are not allowed"));
    }
    if let Some(c) = decoded
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-' | '@' | '/')))
    {
        return Err(invalid(&format!("character {c:?} is not allowed")));
    }
    for segment in decoded.split('/') {
        if segment.is_empty() {
            return Err(invalid(
                "empty segments (leading, doubled or trailing `/`) are not allowed",
            ));
        }
        if segment.starts_with('.') {
            return Err(invalid(
                "segments may not start with `.` (no `..`, no hidden files)",
            ));
        }
    }
    Ok(SourcePath(decoded.into_owned()))
}

/// The 502 for a source answer that is no whole image (a status other than 200/203 and 404/410): the client is
/// told what the origin answered — it did answer, so "could not be reached" would send whoever debugs it to the
/// network instead of the origin's logs. A redirect says it was not followed.
pub fn unusable_answer(status: u16) -> ApiError {
    let message = match status {
        301 | 302 | 303 | 307 | 308 => format!(
            "the image origin answered {status} (a redirect, not followed: the source is always IMAGES_ORIGIN/path)"
        ),
        _ => format!("the image origin answered {status}, not the whole image"),
    };
    ApiError::new(502, "bad_gateway", message)
}

/// Whether `path` is under one of `prefixes` (an empty list allows every path).
pub fn allowed_by(path: &SourcePath, prefixes: &[String]) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| path.0.starts_with(p.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_answer_is_a_502_saying_what_the_origin_answered() {
        for (status, says) in [
            (500, "answered 500"),
            (503, "answered 503"),
            (403, "answered 403"),
            (301, "answered 301 (a redirect, not followed"),
            (304, "answered 304, not the whole image"),
            (206, "answered 206, not the whole image"),
        ] {
            let error = unusable_answer(status);
            assert_eq!(
                (error.status(), error.code()),
                (502, "bad_gateway"),
                "{status}"
            );
            assert!(
                error.message().contains(says),
                "{status}: {}",
                error.message()
            );
        }
    }

    #[test]
    fn plain_relative_paths_are_accepted_and_decoded_once() {
        let cases = [
            ("photo.jpg", "photo.jpg"),
            ("photos/2024/cat_01.png", "photos/2024/cat_01.png"),
            ("a-b~c.jpeg", "a-b~c.jpeg"),
            ("photos%2Fcat.jpg", "photos/cat.jpg"),
            ("%70hoto.jpg", "photo.jpg"),
            ("icons/logo@2x.png", "icons/logo@2x.png"),
            ("icons/logo%402x.png", "icons/logo@2x.png"),
        ];
        for (raw, expected) in cases {
            let path = normalise(raw).unwrap_or_else(|e| panic!("{raw} refused: {e}"));
            assert_eq!(path.as_str(), expected, "{raw}");
        }
    }

    #[test]
    fn traversal_ssrf_and_odd_characters_are_refused() {
        let cases = [
            ("", "empty"),
            ("../secret.jpg", "dot-dot"),
            ("photos/../../etc/passwd", "nested dot-dot"),
            ("%2e%2e/secret.jpg", "encoded dot-dot"),
            (
                "%2E%2E%2Fsecret.jpg",
                "upper-case encoded dot-dot and slash",
            ),
            ("%252e%252e/secret.jpg", "double-encoded dot-dot"),
            ("%25252e/x.jpg", "triple-encoded"),
            ("..%5csecret.jpg", "encoded backslash"),
            ("photos\\..\\secret.jpg", "backslash"),
            ("/etc/passwd", "absolute path"),
            ("/evil.com/x.jpg", "scheme-relative after the prefix slash"),
            ("//evil.com/x.jpg", "scheme-relative"),
            ("http://evil.com/x.jpg", "absolute URL"),
            ("http:%2F%2Fevil.com%2Fx.jpg", "encoded absolute URL"),
            ("photo.jpg?x=1", "query"),
            ("photo.jpg#f", "fragment"),
            ("pho to.jpg", "space"),
            ("photo%00.jpg", "NUL"),
            ("photos//cat.jpg", "empty segment"),
            ("photos/", "trailing slash"),
            ("./photo.jpg", "dot segment"),
            (".env", "hidden file"),
            ("%ff.jpg", "invalid UTF-8"),
            ("caf%C3%A9.jpg", "non-ASCII"),
        ];
        for (raw, why) in cases {
            let error = normalise(raw).expect_err(why);
            assert_eq!(error.status(), 400, "{why}: {raw}");
            assert_eq!(error.code(), "invalid_source", "{why}: {raw}");
        }
        let long = "a/".repeat(600) + "x.jpg";
        assert!(normalise(&long).is_err(), "over-long path");
    }

    #[test]
    fn prefixes_restrict_sources_and_the_origin_url_is_a_plain_join() {
        let path = normalise("photos/cat.jpg").expect("ok");
        assert!(allowed_by(&path, &[]));
        assert!(allowed_by(&path, &["photos/".to_owned()]));
        assert!(!allowed_by(&path, &["public/".to_owned()]));
        assert_eq!(
            path.url_under("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000/photos/cat.jpg"
        );
    }

    #[test]
    fn an_at_sign_is_a_path_character_under_the_origin_never_userinfo() {
        // Once refused as "userinfo", which it cannot be after `{origin}/`: the URL parser the runtime fetches with
        // (WHATWG's, as the `url` crate) ends the authority at the first `/`, so the host stays the origin's.
        for raw in [
            "evil.com@127.0.0.1/x.jpg",
            "%40evil.com/x.jpg",
            "a/b@c:80/x.jpg",
        ] {
            let Ok(path) = normalise(raw) else {
                assert!(raw.contains(':'), "{raw} refused for its `@`");
                continue;
            };
            let url = url::Url::parse(&path.url_under("https://img.example")).expect("a URL");
            assert_eq!(url.host_str(), Some("img.example"), "{raw}");
            assert_eq!((url.username(), url.password()), ("", None), "{raw}");
        }
    }
}
