//! Which sites' pages may read the gateway's own error answers (`GATEWAY_CORS_ORIGINS`). A browser app calling a
//! gateway route from another origin gets the origin's CORS headers on every answer the origin makes, but an answer
//! the gateway makes itself — 401 for an expired token, 403, 429, 502, 504 — carried none, so the app saw a network
//! error where it should have refreshed its token or backed off. Listed origins are told they may read those
//! answers, with credentials (the request's `Origin` echoed, `Vary: Origin`); `["*"]` allows any site to read them
//! without credentials (`Access-Control-Allow-Origin: *`: a page sending cookies still cannot, so no site learns
//! whether its visitor is signed in). The origin's own answers, preflights included, are never changed.

use crate::config::ConfigError;

/// The configured sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ErrorReaders {
    /// None (the default): error answers carry no CORS headers.
    #[default]
    Nobody,
    /// `["*"]`: any site, without credentials.
    Anyone,
    /// These origins (as browsers send them: lower case, no default port), with credentials.
    Origins(Vec<String>),
}

impl ErrorReaders {
    /// `GATEWAY_CORS_ORIGINS`: a JSON list of origins (`https://host[:port]`), or `["*"]` alone.
    pub fn parse(listed: Option<Vec<String>>) -> Result<Self, ConfigError> {
        const KEY: &str = "GATEWAY_CORS_ORIGINS";
        let listed = listed.unwrap_or_default();
        if listed.iter().any(|o| o == "*") {
            return if listed.len() == 1 {
                Ok(Self::Anyone)
            } else {
                Err(ConfigError::new(KEY, "\"*\" must be the list's only entry"))
            };
        }
        if listed.is_empty() {
            return Ok(Self::Nobody);
        }
        crate::cors::parse_origins(KEY, &listed).map(Self::Origins)
    }

    /// The CORS headers for an error answer to a request sent from `origin` (its `Origin` header): none when no
    /// site is configured, the request names no origin, or its origin is not listed.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        match self {
            Self::Nobody => Vec::new(),
            Self::Anyone if origin.is_some_and(|o| !o.trim().is_empty()) => vec![
                ("access-control-allow-origin", "*".to_owned()),
                (
                    "access-control-expose-headers",
                    crate::cors::EXPOSED.to_owned(),
                ),
            ],
            Self::Anyone => Vec::new(),
            Self::Origins(listed) => crate::cors::listed(listed, origin)
                .map(crate::cors::credentialed)
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(origins: &[&str]) -> Result<ErrorReaders, ConfigError> {
        ErrorReaders::parse(Some(origins.iter().map(|o| (*o).to_owned()).collect()))
    }

    #[test]
    fn listed_origins_read_errors_with_credentials_and_others_read_nothing() {
        let readers = listed(&["https://App.example", "http://localhost:5173"]).expect("valid");
        let got = readers.headers(Some("https://app.example"));
        assert_eq!(
            got[0],
            (
                "access-control-allow-origin",
                "https://app.example".to_owned()
            )
        );
        assert!(got.contains(&("access-control-allow-credentials", "true".to_owned())));
        assert!(got.contains(&("vary", "Origin".to_owned())));
        assert!(got
            .iter()
            .any(|(name, value)| *name == "access-control-expose-headers"
                && value.contains("WWW-Authenticate")
                && value.contains("Retry-After")));
        assert!(!readers.headers(Some("http://localhost:5173")).is_empty());
        for other in [
            Some("https://evil.example"),
            Some("https://app.example.evil.example"),
            Some("http://app.example"),
            Some("null"),
            Some(""),
            None,
        ] {
            assert!(readers.headers(other).is_empty(), "{other:?}");
        }
        assert!(ErrorReaders::default()
            .headers(Some("https://app.example"))
            .is_empty());
    }

    #[test]
    fn any_site_reads_errors_without_credentials() {
        let readers = listed(&["*"]).expect("valid");
        let got = readers.headers(Some("https://anywhere.example"));
        assert_eq!(got[0], ("access-control-allow-origin", "*".to_owned()));
        assert!(!got
            .iter()
            .any(|(name, _)| name.contains("credentials") || *name == "vary"));
        assert!(readers.headers(None).is_empty());
    }

    #[test]
    fn bad_lists_name_the_entry() {
        for (origins, problem) in [
            (
                &["https://a.example", "https://b.example/app"][..],
                "entry 1 must be an origin",
            ),
            (&["*", "https://a.example"][..], "only entry"),
            (&["app.example"][..], "entry 0"),
        ] {
            let error = listed(origins).expect_err("refused");
            assert_eq!(error.key, "GATEWAY_CORS_ORIGINS");
            assert!(error.problem.contains(problem), "{origins:?}: {error}");
        }
        assert_eq!(ErrorReaders::parse(None), Ok(ErrorReaders::Nobody));
        assert_eq!(listed(&[]), Ok(ErrorReaders::Nobody));
    }
}
