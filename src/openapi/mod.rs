//! The OpenAPI 3.1 document of the public HTTP API, kept in `openapi.json` beside this file as the single source
//! of truth: the Worker serves it at `GET /openapi.json`, and the host test below holds the route table to it (a
//! route missing from the document, or a documented route the Worker does not serve, fails `cargo test`).

pub mod handler;

/// The document, embedded at build time.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The document's strong entity tag (the first 128 bits of the SHA-256 of its bytes, as an image variant's,
/// `images::validator`), computed once per isolate: the same in every isolate of a build, and a new one when the
/// document changes. It is served `public, max-age=300`; without a validator, every client and CDN whose copy went
/// stale fetched the whole document again.
pub fn etag() -> &'static str {
    use sha2::{Digest, Sha256};
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| crate::images::validator::etag(&Sha256::digest(DOCUMENT.as_bytes())))
}

/// Whether an `If-Match` (when sent) fails for the document, to be answered 412: it names neither [`etag`] (strong
/// comparison) nor `*` (RFC 9110 §13.1.1: the origin then MUST NOT perform the method). Evaluated before
/// `If-None-Match` (§13.2.2).
pub fn precondition_failed(if_match: Option<&str>) -> bool {
    if_match.is_some_and(|condition| !crate::conditional::strong_match(condition, etag()))
}

/// Whether a `GET`/`HEAD` of the document with this `If-None-Match` is answered 304: it names [`etag`] (weak
/// comparison) or is `*`, which any current representation matches (RFC 9110 §13.1.2).
pub fn not_modified(if_none_match: Option<&str>) -> bool {
    if_none_match.is_some_and(|condition| crate::conditional::none_match(condition, etag()))
}

/// Every `(METHOD, path)` the document describes, paths in OpenAPI `{param}` form.
pub fn documented_operations(document: &str) -> Result<Vec<(String, String)>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(document)?;
    let mut operations = Vec::new();
    if let Some(paths) = value.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for method in item.keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    operations.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    operations.sort();
    Ok(operations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::ROUTES;

    #[test]
    fn the_route_table_and_the_document_describe_the_same_operations() {
        let documented = documented_operations(DOCUMENT).expect("openapi.json is valid JSON");
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .filter(|r| !r.debug_only)
            .map(|r| (r.method.to_owned(), r.pattern.replace("{*", "{")))
            .collect();
        served.sort();
        let undocumented: Vec<_> = served
            .iter()
            .filter(|op| !documented.contains(op))
            .collect();
        let unserved: Vec<_> = documented
            .iter()
            .filter(|op| !served.contains(op))
            .collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented operations the router does not serve: {unserved:?}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_shared_error_schema() {
        let value: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(value["openapi"], "3.1.0");
        assert!(value["components"]["schemas"]["Error"].is_object());
        assert!(value["components"]["securitySchemes"]["bearer"].is_object());
        assert!(value["components"]["securitySchemes"]["session"].is_object());
    }

    #[test]
    fn the_document_is_answered_304_to_a_client_holding_its_tag_or_asking_for_any() {
        let tag = etag();
        assert_eq!(tag.len(), 34, "a quoted 128-bit hex tag: {tag}");
        assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
        let weak = format!("W/{tag}");
        let listed = format!("\"other\", {tag}");
        for condition in [tag, weak.as_str(), listed.as_str(), "*", " * "] {
            assert!(not_modified(Some(condition)), "{condition}");
        }
        for condition in [None, Some(""), Some("\"other\""), Some("W/\"other\"")] {
            assert!(!not_modified(condition), "{condition:?}");
        }
    }

    #[test]
    fn an_if_match_naming_another_or_a_weak_tag_fails() {
        let tag = etag();
        let listed = format!("\"other\", {tag}");
        for condition in [None, Some(tag), Some("*"), Some(listed.as_str())] {
            assert!(!precondition_failed(condition), "{condition:?}");
        }
        let weak = format!("W/{tag}");
        for condition in ["\"other\"", weak.as_str(), ""] {
            assert!(precondition_failed(Some(condition)), "{condition}");
        }
    }

    #[test]
    fn documented_operations_are_listed_per_method() {
        let doc =
            r#"{"paths":{"/a":{"get":{},"post":{},"parameters":[]},"/b/{id}":{"delete":{}}}}"#;
        assert_eq!(
            documented_operations(doc).expect("valid"),
            vec![
                ("DELETE".to_owned(), "/b/{id}".to_owned()),
                ("GET".to_owned(), "/a".to_owned()),
                ("POST".to_owned(), "/a".to_owned())
            ]
        );
    }
}
