//! The layout of `CONTENT_KV`, in one place: every key the renderer reads or writes.

/// Critical CSS inlined in every page's head (text).
pub const CRITICAL_CSS: &str = "css:critical";
/// Feature flags and the A/B experiment (JSON, `variant::Flags`).
pub const FLAGS: &str = "flags";
/// Country → currency and locale (JSON, `personal::Geo`).
pub const GEO: &str = "geo";
/// Products with per-currency prices (JSON array of `personal::Product`).
pub const CATALOG: &str = "catalog";

/// A fragment's markup; written back with the fragment's TTL after an origin fetch.
pub fn fragment(name: &str) -> String {
    format!("fragment:{name}")
}

/// The bundle manifest for a page type (JSON, `hints::Manifest`).
pub fn manifest(page_type: &str) -> String {
    format!("manifest:{page_type}")
}

/// A signed-in user's preferences (JSON, `personal::Preferences`).
pub fn user_prefs(user_id: &str) -> String {
    format!("prefs:user:{user_id}")
}

/// An anonymous visitor's preferences, by the visitor id in their cookie.
pub fn visitor_prefs(visitor_id: &str) -> String {
    format!("prefs:visitor:{visitor_id}")
}

/// `key` as a log line names it: a visitor's preferences key holds the visitor id from their cookie, an identifier
/// of one browser that logs must not collect (and could replay as the cookie), so it is named by its kind only.
pub fn logged(key: &str) -> &str {
    const VISITOR_PREFS: &str = "prefs:visitor:";
    if key.starts_with(VISITOR_PREFS) {
        "prefs:visitor:*"
    } else {
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pinned_because_renaming_one_orphans_stored_content() {
        assert_eq!(fragment("nav"), "fragment:nav");
        assert_eq!(manifest("home"), "manifest:home");
        assert_eq!(user_prefs("u1"), "prefs:user:u1");
        assert_eq!(visitor_prefs("ab"), "prefs:visitor:ab");
        assert_eq!(logged(&visitor_prefs("ab")), "prefs:visitor:*");
        assert_eq!(logged(&user_prefs("u1")), "prefs:user:u1");
        assert_eq!(logged(GEO), "geo");
        assert_eq!(
            [CRITICAL_CSS, FLAGS, GEO, CATALOG],
            ["css:critical", "flags", "geo", "catalog"]
        );
    }
}
