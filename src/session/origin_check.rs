//! Cross-origin protection for what a session cookie authenticates. The cookie is `SameSite=Lax`, which keeps it off
//! requests other *sites* start, but a page on a sibling subdomain is the same site: its form or `fetch` to this
//! Worker carries the cookie. So a state-changing request (any method but GET, HEAD and OPTIONS) that a session
//! cookie would authenticate, and every login, must come from this origin or one the configuration trusts
//! (`SESSION_TRUSTED_ORIGINS`). Browsers say where a request comes from in `Sec-Fetch-Site` (all current ones) and
//! `Origin`; the rule is the one Go's `net/http` `CrossOriginProtection` applies: `Sec-Fetch-Site` `same-origin` or
//! `none` (the user typed it) passes, any other value passes only with a trusted `Origin`; without that header an
//! `Origin` must be this origin or a trusted one; a request with neither header does not come from a browser page
//! (curl, servers, older browsers on a same-origin form) and passes. Pure.

/// Methods that must not change state, and so are never refused here.
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// Where a request says it comes from, as the browser sent it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Provenance<'a> {
    pub sec_fetch_site: Option<&'a str>,
    pub origin: Option<&'a str>,
}

/// Whether a request from `from` may act with the session: `own` is this Worker's origin as the request reached it
/// (`scheme://host[:port]`), `trusted` the configured extra origins (validated, lower-case). `Err` says why not.
pub fn check(from: Provenance<'_>, own: &str, trusted: &[String]) -> Result<(), &'static str> {
    let origin_trusted = |origin: &str| {
        trusted
            .iter()
            .any(|t| t.eq_ignore_ascii_case(origin.trim()))
    };
    match from.sec_fetch_site.map(str::trim) {
        Some(site)
            if site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none") =>
        {
            Ok(())
        }
        Some(_) if from.origin.is_some_and(origin_trusted) => Ok(()),
        Some(_) => Err("the request comes from another origin (Sec-Fetch-Site)"),
        None => match from.origin {
            None => Ok(()),
            Some(origin) if origin.trim().eq_ignore_ascii_case(own) || origin_trusted(origin) => {
                Ok(())
            }
            Some(_) => Err("the request comes from another origin (Origin)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://app.example.com";

    fn from<'a>(sec_fetch_site: Option<&'a str>, origin: Option<&'a str>) -> Provenance<'a> {
        Provenance {
            sec_fetch_site,
            origin,
        }
    }

    #[test]
    fn same_origin_and_typed_requests_pass_by_sec_fetch_site() {
        assert_eq!(
            check(from(Some("same-origin"), Some(OWN)), OWN, &[]),
            Ok(())
        );
        assert_eq!(check(from(Some("none"), None), OWN, &[]), Ok(()));
        assert_eq!(check(from(Some("Same-Origin"), None), OWN, &[]), Ok(()));
    }

    #[test]
    fn same_site_and_cross_site_requests_are_refused_unless_their_origin_is_trusted() {
        let sibling = Some("https://evil.example.com");
        for site in ["same-site", "cross-site", "unknown-value", ""] {
            assert!(
                check(from(Some(site), sibling), OWN, &[]).is_err(),
                "{site}"
            );
            // Sec-Fetch-Site wins over an Origin that claims to be this one.
            assert!(
                check(from(Some(site), Some(OWN)), OWN, &[]).is_err(),
                "{site}"
            );
        }
        let trusted = vec!["https://evil.example.com".to_owned()];
        assert_eq!(
            check(from(Some("same-site"), sibling), OWN, &trusted),
            Ok(())
        );
        assert!(check(from(Some("cross-site"), None), OWN, &trusted).is_err());
    }

    #[test]
    fn without_sec_fetch_site_the_origin_decides() {
        assert_eq!(check(from(None, None), OWN, &[]), Ok(()));
        assert_eq!(check(from(None, Some(OWN)), OWN, &[]), Ok(()));
        assert_eq!(
            check(from(None, Some("HTTPS://APP.example.com")), OWN, &[]),
            Ok(())
        );
        for other in [
            "https://evil.example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "null",
            "",
        ] {
            assert!(check(from(None, Some(other)), OWN, &[]).is_err(), "{other}");
        }
        let trusted = vec!["http://app.example.com".to_owned()];
        assert_eq!(
            check(from(None, Some("http://app.example.com")), OWN, &trusted),
            Ok(())
        );
    }
}
