//! Resource hints: `Link: <…>; rel=preload` from the bundle manifest of a page type (`manifest:{page_type}` in
//! `CONTENT_KV`), trimmed to the critical resources when the client signals a slow connection. Pure.

use serde::Deserialize;

/// A page type's bundle manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    pub resources: Vec<Resource>,
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

/// The `Link` header value for `manifest`, or `None` when nothing is to be preloaded. Entries that could break the
/// header (bad characters, unknown destination) are skipped.
pub fn link_header(manifest: &Manifest, slow: bool) -> Option<String> {
    let links: Vec<String> = manifest
        .resources
        .iter()
        .filter(|r| r.critical || !slow)
        .filter(|r| header_safe(&r.href) && DESTINATIONS.contains(&r.destination.as_str()))
        .map(|r| {
            let mut link = format!("<{}>; rel=preload; as={}", r.href, r.destination);
            if let Some(mime) = r.mime.as_deref().filter(|m| header_safe(m)) {
                link.push_str(&format!("; type=\"{mime}\""));
            }
            // Fonts and fetch() requests are always CORS: a preload without crossorigin would not be reused.
            if r.crossorigin || matches!(r.destination.as_str(), "font" | "fetch") {
                link.push_str("; crossorigin");
            }
            link
        })
        .collect();
    (!links.is_empty()).then(|| links.join(", "))
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
    fn fast_clients_get_every_safe_preload_and_slow_ones_only_critical() {
        assert_eq!(
            link_header(&manifest(), false).as_deref(),
            Some("</a.css>; rel=preload; as=style, </hero.avif>; rel=preload; as=image, </f.woff2>; rel=preload; as=font; type=\"font/woff2\"; crossorigin")
        );
        assert_eq!(
            link_header(&manifest(), true).as_deref(),
            Some("</a.css>; rel=preload; as=style")
        );
        assert_eq!(link_header(&Manifest::default(), false), None);
    }

    #[test]
    fn a_backslash_cannot_swallow_the_links_after_it_and_fetch_preloads_are_cors() {
        let m: Manifest = serde_json::from_value(serde_json::json!({"resources": [
            {"href": "/f.woff2", "as": "font", "type": "font/woff2\\"},
            {"href": "/app.js", "as": "script"},
            {"href": "/api/feed.json", "as": "fetch"}
        ]}))
        .expect("manifest");
        assert_eq!(
            link_header(&m, false).as_deref(),
            Some(
                "</f.woff2>; rel=preload; as=font; crossorigin, </app.js>; rel=preload; as=script, \
                 </api/feed.json>; rel=preload; as=fetch; crossorigin"
            )
        );
    }
}
