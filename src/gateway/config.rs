//! The gateway's configuration section: the route table (`GATEWAY_ROUTES`), cache policies
//! (`GATEWAY_CACHE_POLICIES`), WAF settings (`GATEWAY_WAF`) and the JWT verification settings, parsed and validated
//! once per isolate. Every error names the key and, inside a table, the bad entry.

use crate::config::{ConfigError, Vars};

use super::cache::{CachePolicies, MAX_RETRY_AFTER_HOLD_MS};
use super::cors::ErrorReaders;
use super::routes::RouteTable;
use super::waf::WafConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub routes: RouteTable,
    pub cache_policies: CachePolicies,
    pub waf: WafConfig,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`.
    pub jwt_leeway_secs: u64,
    /// Tokens longer than this are refused before parsing.
    pub jwt_max_bytes: u64,
    /// How long an isolate reuses the JWKS it read from KV.
    pub jwks_ttl_secs: u64,
    /// How long a failed JWKS read holds off the next in the isolate (`GATEWAY_JWKS_HOLD_MS`, 1 s; 0: none): the
    /// requests meanwhile use the kept set within its grace, or are answered that failure, without reading KV.
    pub jwks_hold_ms: u64,
    /// Signature-verified tokens an isolate remembers (0: verify every signature); see `token_cache`.
    pub jwt_cache_entries: u64,
    /// The permission the admin purge route requires.
    pub admin_permission: String,
    /// How long an isolate trusts its copy of a tag's purge time before re-reading KV (purges taken by the
    /// isolate itself apply at once).
    pub purge_sync_ms: u64,
    /// How long a stale-while-revalidate refresh the origin failed (or answered 429; a 429's or 503's `Retry-After`
    /// when longer, bounded, `cache::refresh_hold_ms`) holds off the next refresh of its key in the isolate
    /// (`GATEWAY_REFRESH_HOLD_MS`, 5 s; 0: none): a down origin is asked once per key and hold, the stale copy served
    /// meanwhile.
    pub refresh_hold_ms: u64,
    /// The largest answer a cache fill holds in memory to store and share (`GATEWAY_CACHE_MAX_BODY_BYTES`, 4 MiB,
    /// at most 16 MiB): a larger one streams to the request that fetched it and is not stored.
    pub cache_max_body_bytes: u64,
    /// How long a cache fill waits for an answer's body to arrive whole after its headers
    /// (`GATEWAY_CACHE_FILL_BODY_MS`, 10 s): a slower one streams to the request that fetched it and is not stored.
    pub cache_fill_body_ms: u64,
    /// Which sites' pages may read the gateway's own error answers (`GATEWAY_CORS_ORIGINS`; none by default).
    pub cors: ErrorReaders,
    /// Of the traces the gateway starts, the percentage marked sampled for the origin
    /// (`GATEWAY_TRACE_SAMPLE_PERCENT`, 100; continued traces keep their caller's decision).
    pub trace_sample_percent: u64,
}

impl GatewayConfig {
    /// `rate_limit_policies`: the configured policy names, which a route's `rate_limit` must be one of.
    pub fn parse(vars: &Vars, rate_limit_policies: &[String]) -> Result<Self, ConfigError> {
        let cache_policies = CachePolicies::with_overrides(
            vars.json::<serde_json::Value>("GATEWAY_CACHE_POLICIES")?
                .as_ref(),
        )
        .map_err(|e| ConfigError::new("GATEWAY_CACHE_POLICIES", e))?;
        let routes = match vars.json::<serde_json::Value>("GATEWAY_ROUTES")? {
            None => RouteTable::default(),
            Some(value) => RouteTable::parse(&value, &cache_policies, Some(rate_limit_policies))
                .map_err(|e| ConfigError::new("GATEWAY_ROUTES", e))?,
        };
        let waf = vars
            .table::<WafConfig>("GATEWAY_WAF")?
            .unwrap_or_default()
            .validate()
            .map_err(|e| ConfigError::new("GATEWAY_WAF", e))?;
        // Checked with the WAF's mode, which a route's body mode is compared in.
        if let Some((route, method)) = routes.refused_as_ambiguous(waf.mode) {
            return Err(ConfigError::new(
                "GATEWAY_ROUTES",
                format!(
                    "route {:?}: path {} would answer every {method} 400 ambiguous_path: read as many origins read \
                     it (a `;` parameter dropped, `%2F` or `%5C` a separator, `..;` resolved) it meets no route with \
                     the same checks; write the path the origin reads, or add a route for that path with the same \
                     checks",
                    route.name, route.path
                ),
            ));
        }
        let admin_permission = vars.string_or("GATEWAY_ADMIN_PERMISSION", "gateway:admin")?;
        if !super::jwt::header_list_item(&admin_permission) {
            return Err(ConfigError::new(
                "GATEWAY_ADMIN_PERMISSION",
                "no token can hold it: a permission is non-empty printable ASCII without spaces or commas",
            ));
        }
        Ok(Self {
            routes,
            cache_policies,
            waf,
            jwt_leeway_secs: vars.u64_in("GATEWAY_JWT_LEEWAY_SECONDS", 30, 0, 600)?,
            jwt_max_bytes: vars.u64_in("GATEWAY_JWT_MAX_BYTES", 8192, 256, 65_536)?,
            jwks_ttl_secs: vars.u64_in("GATEWAY_JWKS_TTL_SECONDS", 60, 0, 86_400)?,
            jwks_hold_ms: vars.u64_in("GATEWAY_JWKS_HOLD_MS", 1_000, 0, 300_000)?,
            jwt_cache_entries: vars.u64_in("GATEWAY_JWT_CACHE_ENTRIES", 10_000, 0, 1_000_000)?,
            admin_permission,
            purge_sync_ms: vars.u64_in("GATEWAY_PURGE_SYNC_MS", 5_000, 0, 60_000)?,
            // At most what an origin's Retry-After may hold a key for: a configured hold is never the longer.
            refresh_hold_ms: vars.u64_in(
                "GATEWAY_REFRESH_HOLD_MS",
                5_000,
                0,
                MAX_RETRY_AFTER_HOLD_MS,
            )?,
            // At most 16 MiB: a shared answer is copied for every waiter's response too, in a 128 MB isolate.
            cache_max_body_bytes: vars.u64_in(
                "GATEWAY_CACHE_MAX_BODY_BYTES",
                4 * 1024 * 1024,
                1024,
                16 * 1024 * 1024,
            )?,
            cache_fill_body_ms: vars.u64_in("GATEWAY_CACHE_FILL_BODY_MS", 10_000, 100, 120_000)?,
            cors: ErrorReaders::parse(vars.list("GATEWAY_CORS_ORIGINS")?)?,
            trace_sample_percent: vars.u64_in("GATEWAY_TRACE_SAMPLE_PERCENT", 100, 0, 100)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{json, Value};

    use super::*;

    fn parse(pairs: &[(&'static str, Value)]) -> Result<GatewayConfig, ConfigError> {
        let source: HashMap<&str, Value> = pairs.iter().cloned().collect();
        GatewayConfig::parse(&Vars::new(&source), &["per-user".to_owned()])
    }

    #[test]
    fn defaults_apply_and_an_empty_table_serves_nothing() {
        let c = parse(&[]).expect("defaults");
        assert!(c.routes.is_empty());
        assert_eq!(c.jwt_max_bytes, 8192);
        assert_eq!(c.admin_permission, "gateway:admin");
    }

    #[test]
    fn errors_name_the_key_and_the_entry() {
        let cases = [
            (
                "GATEWAY_ROUTES",
                json!([{"name": "x", "path": "/a", "upstream": "nope"}]),
                "route 0 (\"x\")",
            ),
            ("GATEWAY_ROUTES", json!("[{"), "not valid JSON"),
            ("GATEWAY_WAF", json!({"mode": "panic"}), "unknown variant"),
            (
                "GATEWAY_CACHE_POLICIES",
                json!({"p": {"ttl": 0, "shared": true, "cache_control": "", "surrogate_control": ""}}),
                "\"p\"",
            ),
            ("GATEWAY_JWT_LEEWAY_SECONDS", json!(9999), "between"),
            (
                "GATEWAY_ADMIN_PERMISSION",
                json!("gateway admin"),
                "no token can hold it",
            ),
            ("GATEWAY_TRACE_SAMPLE_PERCENT", json!(101), "between"),
            (
                "GATEWAY_CORS_ORIGINS",
                json!(["https://a.example/"]),
                "entry 0",
            ),
            (
                "GATEWAY_CORS_ORIGINS",
                json!("https://a.example"),
                "not valid JSON",
            ),
        ];
        for (key, value, expected) in cases {
            let error = parse(&[(key, value.clone())]).expect_err("refused");
            assert_eq!(error.key, key, "{value}");
            assert!(error.problem.contains(expected), "{key}={value}: {error}");
        }
    }

    /// A route whose own path the ambiguity check refuses — a literal with a `;` parameter, an escaped slash or
    /// backslash, a `..;` segment, read as origins read it, meets no route with the same checks — was taken, and every
    /// request for it answered 400 `ambiguous_path`: a route that never served, without a word at start.
    #[test]
    fn a_route_the_ambiguity_check_would_refuse_every_request_of_is_refused() {
        for (routes, named) in [
            (
                json!([{"name": "repo", "path": "/projects/group%2Fproject", "upstream": "http://o"}]),
                "\"repo\"",
            ),
            (
                json!([{"name": "m", "path": "/m;v=1", "upstream": "http://o"}]),
                "\"m\"",
            ),
            (
                json!([{"name": "w", "path": "/win%5Cpath", "upstream": "http://o"}]),
                "\"w\"",
            ),
            (
                json!([{"name": "up", "path": "/a/..;/b", "upstream": "http://o"}]),
                "\"up\"",
            ),
            // Read so, it meets a route that checks otherwise.
            (
                json!([{"name": "open", "path": "/files", "upstream": "http://o"},
                       {"name": "f", "path": "/files/a%2Fb", "upstream": "http://o", "auth": "jwt"}]),
                "\"f\"",
            ),
        ] {
            let error = parse(&[("GATEWAY_ROUTES", routes.clone())]).expect_err("refused");
            assert_eq!(error.key, "GATEWAY_ROUTES", "{routes}");
            assert!(
                error.problem.contains(named) && error.problem.contains("ambiguous"),
                "{routes}: {error}"
            );
        }
        // Read so, it meets a route with the same checks, which lets it pass: served.
        parse(&[(
            "GATEWAY_ROUTES",
            json!([{"name": "files", "path": "/files", "upstream": "http://o"},
                   {"name": "f", "path": "/files/a%2Fb", "upstream": "http://o"}]),
        )])
        .expect("passes the check");
        parse(&[(
            "GATEWAY_ROUTES",
            json!([{"path": "/docs/café/:id", "upstream": "http://o"}, {"path": "/m%3Bx", "upstream": "http://o"}]),
        )])
        .expect("nothing another reading routes elsewhere");
    }

    #[test]
    fn routes_may_use_policies_added_by_configuration() {
        let c = parse(&[
            ("GATEWAY_CACHE_POLICIES", json!({"tiny": {"ttl": 1, "shared": true, "cache_control": "public, max-age=1", "surrogate_control": "max-age=1"}})),
            ("GATEWAY_ROUTES", json!([{"path": "/t", "upstream": "http://o", "cache": "tiny"}])),
        ])
        .expect("valid");
        assert_eq!(c.routes.routes()[0].cache.as_deref(), Some("tiny"));
    }
}
