//! The OpenAPI 3.1 document of the public HTTP API, kept in `openapi.json` beside this file as the single source
//! of truth: the Worker serves it at `GET /openapi.json`, and the host test below holds the route table to it (a
//! route missing from the document, or a documented route the Worker does not serve, fails `cargo test`).

pub mod handler;

/// The document, embedded at build time.
pub const DOCUMENT: &str = include_str!("openapi.json");

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
