//! Resource hints from the bundle manifest of a page type (`manifest:{page_type}` in `CONTENT_KV`): the critical
//! resources as `Link: <…>; rel=preload` (the same for every client, so Early Hints may replay it), the others as
//! `<link rel=preload>` in the page for clients that do not signal a slow connection. Pure.

use serde::Deserialize;

use super::skips::Skips;

/// A page type's bundle manifest, `{"resources": [...]}`, each resource read on its own: one that does not read
/// (no `href` or `as`, a `critical` that is not a boolean, not an object) is left out and counted — refusing the
/// whole manifest for it took every preload off every page of the type. A document of another shape is still
/// malformed as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub resources: Vec<Resource>,
    /// The resources left out, the first named by its index in `resources`.
    pub skipped: Skips<usize>,
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            resources: Vec<serde_json::Value>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let mut manifest = Manifest::default();
        for (index, item) in raw.resources.into_iter().enumerate() {
            match Resource::deserialize(item) {
                Ok(resource) => manifest.resources.push(resource),
                Err(e) => manifest.skipped.note(|| index, &e),
            }
        }
        Ok(manifest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Resource {
    pub href: String,
    /// The preload destination (`style`, `script`, `font`, `image`, `fetch`).
    #[serde(rename = "as")]
    pub destination: String,
    /// Needed for first paint; the only kind kept for slow connections.
    #[serde(default)]
    pub critical: bool,
    #[serde(default, rename = "type")]
    pub mime: Option<String>,
    #[serde(default)]
    pub crossorigin: bool,
}

const DESTINATIONS: &[&str] = &["style", "script", "font", "image", "fetch"];

/// Whether the client asked to save data or reports an effective connection type of 3g or slower.
pub fn is_slow_connection(ect: Option<&str>, save_data: Option<&str>) -> bool {
    let slow_ect = ect.is_some_and(|e| {
        matches!(
            e.trim().to_ascii_lowercase().as_str(),
            "slow-2g" | "2g" | "3g"
        )
    });
    let save = save_data.is_some_and(|s| s.trim().eq_ignore_ascii_case("on"));
    slow_ect || save
}

/// A value that can sit inside a `Link` header without ending the URI or the parameter (`<>,;"`, spaces, controls),
/// nor escaping a quoted string's closing quote (`\`).
fn header_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b';' | b'"' | b'\\'))
}

/// Whether `href` is a relative reference (`/a.css`, `a.css`, `//cdn/a.css`, `?v=1`) or an `http://` or `https://`
/// URL: a colon before its first `/`, `?` or `#` names a scheme (RFC 3986 §4.2: a relative path's first segment has
/// none), and no other scheme is fetched as a subresource (`javascript:`, `data:`, `blob:`, `file:`). A bare
/// `https:` or `http:x` is refused too: a browser resolves such a "special" URL against the page's own.
fn fetchable(href: &str) -> bool {
    let first_segment = href.split(['/', '?', '#']).next().unwrap_or_default();
    if !first_segment.contains(':') {
        return true;
    }
    let lower = href.to_ascii_lowercase();
    ["http://", "https://"]
        .iter()
        .any(|scheme| lower.len() > scheme.len() && lower.starts_with(scheme))
}

/// A preload that can be written as given (safe characters, a relative or http(s) URL, a known destination).
fn usable(r: &Resource) -> bool {
    header_safe(&r.href) && fetchable(&r.href) && DESTINATIONS.contains(&r.destination.as_str())
}

impl Resource {
    /// Fonts and `fetch()` requests are always CORS: a preload without `crossorigin` would not be reused.
    pub fn cors(&self) -> bool {
        self.crossorigin || matches!(self.destination.as_str(), "font" | "fetch")
    }

    /// The MIME type when it can be written as given.
    pub fn safe_mime(&self) -> Option<&str> {
        self.mime.as_deref().filter(|m| header_safe(m))
    }
}

/// The `Link` header: the critical preloads only, the same for every client. Cloudflare's Early Hints replays a
/// page's `Link` preloads as a 103 to later visitors whatever their connection, so the header must not depend on
/// the client (a slow visitor would get the last fast one's full list). `None` when nothing is critical. Entries
/// that could break the header (bad characters, unknown destination) are skipped.
pub fn link_header(manifest: &Manifest) -> Option<String> {
    let links: Vec<String> = manifest
        .resources
        .iter()
        .filter(|r| r.critical && usable(r))
        .map(|r| {
            let mut link = format!("<{}>; rel=preload; as={}", r.href, r.destination);
            if let Some(mime) = r.safe_mime() {
                link.push_str(&format!("; type=\"{mime}\""));
            }
            if r.cors() {
                link.push_str("; crossorigin");
            }
            link
        })
        .collect();
    (!links.is_empty()).then(|| links.join(", "))
}

/// The other preloads, written as `<link rel=preload>` in the shell's head — for clients on a fast connection only
/// (none when `slow`).
pub fn later_preloads(manifest: &Manifest, slow: bool) -> Vec<&Resource> {
    if slow {
        return Vec::new();
    }
    manifest
        .resources
        .iter()
        .filter(|r| !r.critical && usable(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({"resources": [
            {"href": "/a.css", "as": "style", "critical": true},
            {"href": "/hero.avif", "as": "image"},
            {"href": "/f.woff2", "as": "font", "type": "font/woff2"},
            {"href": "/evil>, </x", "as": "style", "critical": true},
            {"href": "/x.bin", "as": "nonsense", "critical": true}
        ]}))
        .expect("manifest")
    }

    #[test]
    fn slow_connections_are_recognised_by_ect_or_save_data() {
        let cases = [
            (Some("2g"), None, true),
            (Some("slow-2g"), None, true),
            (Some("3G"), None, true),
            (Some("4g"), None, false),
            (None, Some("on"), true),
            (Some("4g"), Some("on"), true),
            (None, Some("off"), false),
            (None, None, false),
        ];
        for (ect, save, expected) in cases {
            assert_eq!(
                is_slow_connection(ect, save),
                expected,
                "ECT {ect:?}, Save-Data {save:?}"
            );
        }
    }

    #[test]
    fn the_header_has_the_critical_preloads_for_everyone_and_fast_clients_get_the_rest_in_the_page()
    {
        assert_eq!(
            link_header(&manifest()).as_deref(),
            Some("</a.css>; rel=preload; as=style")
        );
        let m = manifest();
        let later: Vec<&str> = later_preloads(&m, false)
            .iter()
            .map(|r| r.href.as_str())
            .collect();
        assert_eq!(later, ["/hero.avif", "/f.woff2"]);
        assert!(later_preloads(&manifest(), true).is_empty(), "slow clients");
        assert_eq!(link_header(&Manifest::default()), None);
    }

    #[test]
    fn a_preload_href_is_a_relative_or_http_url_never_another_scheme() {
        for (href, kept) in [
            ("/a.css", true),
            ("a.css", true),
            ("./a.css?v=1:2", true),
            ("//cdn.example/a.css", true),
            ("https://cdn.example/a.css", true),
            ("HTTP://cdn.example/a.css", true),
            ("/p:1/a.css", true),
            ("?v=1", true),
            ("javascript:alert(1)", false),
            ("JavaScript:alert(1)", false),
            ("data:text/css,x", false),
            ("vbscript:x", false),
            ("blob:https://x/y", false),
            ("file:///etc/passwd", false),
            ("https:", false),
            ("http:x", false),
            ("1a:b", false),
            (":a", false),
            ("HTTPS://cdn.example/a.css", true),
            ("https:///cdn.example/a.css", true),
            (" https://cdn.example/a.css", false),
            ("https://cdn.example/a.css ", false),
            ("\\\\evil.example/a.css", false),
            ("/\\evil.example/a.css", false),
            ("https:/\\evil.example/a.css", false),
            ("https:evil.example/a.css", false),
            ("java\tscript:alert(1)", false),
            ("java\nscript:alert(1)", false),
            ("\u{1}javascript:alert(1)", false),
            ("javascript\u{0}:alert(1)", false),
            ("j\u{e1}vascript:x", false),
            ("%6Aavascript:alert(1)", false),
        ] {
            let m: Manifest = serde_json::from_value(serde_json::json!({"resources": [
                {"href": href, "as": "style", "critical": true},
                {"href": href, "as": "script"}
            ]}))
            .expect("manifest");
            assert_eq!(link_header(&m).is_some(), kept, "Link: {href}");
            assert_eq!(
                later_preloads(&m, false).len(),
                usize::from(kept),
                "<link>: {href}"
            );
        }
    }

    #[test]
    fn a_resource_the_manifest_cannot_read_is_left_out_and_the_others_are_kept() {
        // One entry without `as`, one whose `critical` is not a boolean, one that is not an object: each is left
        // out (counted, the first named by index and why); refusing the whole manifest for them took every preload
        // off every page of the type.
        let m: Manifest = serde_json::from_value(serde_json::json!({"resources": [
            {"href": "/a.css", "as": "style", "critical": true},
            {"href": "/no-as.js", "critical": true},
            {"href": "/b.css", "as": "style", "critical": "yes"},
            "/c.css",
            {"href": "/hero.avif", "as": "image"}
        ]}))
        .expect("manifest");
        assert_eq!(
            link_header(&m).as_deref(),
            Some("</a.css>; rel=preload; as=style")
        );
        let later: Vec<&str> = later_preloads(&m, false)
            .iter()
            .map(|r| r.href.as_str())
            .collect();
        assert_eq!(later, ["/hero.avif"]);
        assert_eq!(m.skipped.count, 3);
        let (index, error) = m.skipped.first.as_ref().expect("the first left out");
        assert_eq!(*index, 1);
        assert_eq!(error, "missing field `as`");
        // A document that is not a manifest is still malformed as a whole.
        assert!(serde_json::from_value::<Manifest>(serde_json::json!({"resources": {}})).is_err());
        assert!(serde_json::from_value::<Manifest>(serde_json::json!([])).is_err());
    }

    #[test]
    fn a_backslash_cannot_swallow_the_links_after_it_and_fetch_preloads_are_cors() {
        let m: Manifest = serde_json::from_value(serde_json::json!({"resources": [
            {"href": "/f.woff2", "as": "font", "type": "font/woff2\\", "critical": true},
            {"href": "/app.js", "as": "script", "critical": true},
            {"href": "/api/feed.json", "as": "fetch", "critical": true}
        ]}))
        .expect("manifest");
        assert_eq!(
            link_header(&m).as_deref(),
            Some(
                "</f.woff2>; rel=preload; as=font; crossorigin, </app.js>; rel=preload; as=script, \
                 </api/feed.json>; rel=preload; as=fetch; crossorigin"
            )
        );
    }
}
