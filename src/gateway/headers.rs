//! Header rewriting for the proxy: which request and response headers are dropped (hop-by-hop, client-sent
//! identity), and the forwarding headers the origin receives. Pure: works on name/value pairs.

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus ones that only make sense on one connection; never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Whether a request header is forwarded to the origin. `connection_listed` are the names the client's
/// `Connection` header marks as hop-by-hop. Client-sent `X-User-*` and forwarding headers are always dropped (the
/// gateway sets its own), as are `x-request-id` (the request's id, checked, is set) and `traceparent` (re-set from
/// the trace context; `tracestate` passes on with it) —
/// in any spelling with `_` for `-` too (`X_User_Id`), which CGI-style servers read as the same variable.
pub fn forward_request_header(name: &str, connection_listed: &[String]) -> bool {
    let mut name = name.to_ascii_lowercase();
    if connection_listed.contains(&name) {
        return false;
    }
    if name.contains('_') {
        name = name.replace('_', "-");
    }
    !(HOP_BY_HOP.contains(&name.as_str())
        || name.starts_with("x-user-")
        || name.starts_with("x-forwarded-")
        || name == "forwarded"
        || name == "traceparent"
        || name == "x-request-id"
        || name.starts_with("cf-")
        || name == "x-real-ip")
}

/// Whether an origin response header is passed back to the client.
pub fn forward_response_header(name: &str, connection_listed: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    !(HOP_BY_HOP.contains(&name.as_str()) && name != "content-length"
        || connection_listed.contains(&name))
}

/// The request headers a fill for a shared policy carries: its answer goes to every requester of the key, and the
/// key holds none of theirs, so only what shapes no one's answer — the representation asked for, the client software,
/// and the forwarding and trace headers — reaches the origin. Anything else a requester sent
/// (credentials, an API key, a tenant header) could tailor an answer that the others would then be served.
/// `Origin` and `Accept-Language` go too: an origin that answers by them says so (`Vary: Origin`, as CORS requires;
/// `Vary: Accept-Language`), and such an answer is never stored — it goes to its own requester, in its language.
const SHARED_FILL: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "origin",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// Whether a request header goes on an origin request that fills the edge cache. The fill fetches the whole
/// representation for every requester of the key, so one requester's conditional and range headers never reach the
/// origin (their 304 or 206 would be handed to the others); for a shared policy only [`SHARED_FILL`] does; for a
/// per-user one (keyed by the verified user) the rest of the request as forwarded.
pub fn forward_on_cache_fill(name: &str, shared: bool) -> bool {
    if shared {
        return SHARED_FILL.contains(&name);
    }
    !matches!(
        name,
        "if-none-match"
            | "if-modified-since"
            | "if-match"
            | "if-unmodified-since"
            | "if-range"
            | "range"
    )
}

/// The names a `Connection` header lists.
pub fn connection_tokens(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `X-Forwarded-For` for the origin: the client address appended to any list a trusted hop already made (unless
/// that hop already put it last, as Cloudflare's edge does for the Worker).
pub fn forwarded_for(existing: Option<&str>, client_ip: Option<&str>) -> Option<String> {
    match (existing.map(str::trim).filter(|s| !s.is_empty()), client_ip) {
        (Some(list), Some(ip)) if list.rsplit(',').next().map(str::trim) == Some(ip) => {
            Some(list.to_owned())
        }
        (Some(list), Some(ip)) => Some(format!("{list}, {ip}")),
        (Some(list), None) => Some(list.to_owned()),
        (None, Some(ip)) => Some(ip.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_identity_and_forwarding_headers_are_not_forwarded() {
        let listed = connection_tokens(Some("Keep-Alive, X-Secret-Hop"));
        let cases = [
            ("Connection", false),
            ("Transfer-Encoding", false),
            ("Upgrade", false),
            ("X-Secret-Hop", false),
            ("X-User-ID", false),
            ("x-user-permissions", false),
            ("X_User_Id", false),
            ("x_user-permissions", false),
            ("x_forwarded_for", false),
            ("CF_Connecting_IP", false),
            ("X_Request_Id", false),
            ("X-Forwarded-For", false),
            ("traceparent", false),
            ("Host", false),
            ("Authorization", true),
            ("Content-Type", true),
            ("tracestate", true),
            ("Accept", true),
            ("x_custom_header", true),
        ];
        for (name, forwarded) in cases {
            assert_eq!(forward_request_header(name, &listed), forwarded, "{name}");
        }
        assert!(forward_response_header("content-length", &[]));
        assert!(!forward_response_header("transfer-encoding", &[]));
        assert!(!forward_response_header("x-hop", &["x-hop".into()]));
    }

    #[test]
    fn cache_fills_drop_conditionals_always_and_all_but_neutral_headers_when_shared() {
        for name in [
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-unmodified-since",
            "if-range",
            "range",
        ] {
            assert!(!forward_on_cache_fill(name, false), "{name}");
            assert!(!forward_on_cache_fill(name, true), "{name}");
        }
        for name in [
            "authorization",
            "cookie",
            "x-user-id",
            "x-user-permissions",
            "x-user-email",
        ] {
            assert!(forward_on_cache_fill(name, false), "{name} per user");
            assert!(!forward_on_cache_fill(name, true), "{name} shared");
        }
        for name in [
            "accept",
            "origin",
            "user-agent",
            "traceparent",
            "x-request-id",
            "x-forwarded-for",
        ] {
            assert!(forward_on_cache_fill(name, true), "{name}");
        }
        // Whatever else a requester sends could tailor the shared answer: an API key, a tenant, a language.
        for name in ["x-api-key", "x-tenant", "x-custom", "referer"] {
            assert!(forward_on_cache_fill(name, false), "{name} per user");
            assert!(!forward_on_cache_fill(name, true), "{name} shared");
        }
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        assert_eq!(
            forwarded_for(None, Some("1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(
            forwarded_for(Some("9.9.9.9"), Some("1.2.3.4")).as_deref(),
            Some("9.9.9.9, 1.2.3.4")
        );
        assert_eq!(forwarded_for(Some(" "), None), None);
        assert_eq!(
            forwarded_for(Some("9.9.9.9, 1.2.3.4"), Some("1.2.3.4")).as_deref(),
            Some("9.9.9.9, 1.2.3.4"),
            "not twice when the last hop already named the client"
        );
        assert_eq!(
            forwarded_for(Some("1.2.3.4, 9.9.9.9"), Some("1.2.3.4")).as_deref(),
            Some("1.2.3.4, 9.9.9.9, 1.2.3.4")
        );
    }
}
