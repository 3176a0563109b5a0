//! The Worker's one route table: which method and path pattern reach which handler.
//!
//! Pure and listable: [`ROUTES`] is the single list the entry dispatches on and the OpenAPI contract test reads.
//! Patterns use `matchit` syntax (`/rooms/{id}/ws`), the same `{param}` form OpenAPI paths use. `HEAD` is served
//! wherever `GET` is, but for a route marked GET-only (a WebSocket handshake), whose 405s then leave it out of `Allow`. A path no route matches falls through to the gateway's configured routes (if any) before 404.

use std::collections::HashMap;

/// Every handler the entry can dispatch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    Health,
    Ready,
    OpenApi,
    // Sessions (src/session): `/auth/session` is the cached `session` check, `/auth/sessions` the strict one.
    AuthLogin,
    AuthLogout,
    AuthRefresh,
    AuthSession,
    AuthSessions,
    AuthSessionsEnd,
    DebugPanic,
    DebugCoalesce,
    DebugJwksAge,
    DebugRefreshHoldsAge,
    DebugEdgeCacheAge,
    DebugFailedBookmarksAge,
    GatewayPurge,
    // render
    RenderHome,
    RenderPage,
    RateLimitCheck,
    RateLimitBaseline,
    Images,
    Rooms,
    RoomPage,
    RoomJoin,
    RoomTicket,
    RoomState,
    DebugRoomTicket,
}

impl RouteId {
    /// Whether every answer of this route says `Cache-Control: no-store`: a probe or a count describes this isolate
    /// and its bindings now (`/health/ready` 503 one second, 200 the next; a rate-limit check spends the caller's
    /// quota and answers their standing; `/rooms` counts who is in each room now), so a browser or CDN that kept
    /// one would answer for a Worker it never asked. Without a `Cache-Control`, a 200 is heuristically cacheable (RFC 9111 §4.2.2), and a CDN rule that
    /// caches everything keeps it.
    pub fn stored_nowhere(self) -> bool {
        matches!(
            self,
            RouteId::Health
                | RouteId::Ready
                | RouteId::Rooms
                | RouteId::RateLimitCheck
                | RouteId::RateLimitBaseline
                | RouteId::DebugCoalesce
        )
    }
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub id: RouteId,
    pub method: &'static str,
    pub pattern: &'static str,
    /// Routes only served when `DEBUG_ROUTES` is on (tests, local development); never documented publicly.
    pub debug_only: bool,
    /// For a GET route, whether its handler also serves HEAD. Not for a WebSocket join: a HEAD is no handshake, and
    /// a 405 whose `Allow` named HEAD sent clients to a method answered 405 in turn (RFC 9110 §15.5.6: `Allow`
    /// lists the methods the target supports).
    pub head: bool,
}

const fn route(id: RouteId, method: &'static str, pattern: &'static str) -> RouteSpec {
    RouteSpec {
        id,
        method,
        pattern,
        debug_only: false,
        head: true,
    }
}

/// A GET route whose handler serves GET alone (HEAD answers 405 with `Allow: GET`).
const fn get_only(id: RouteId, pattern: &'static str) -> RouteSpec {
    RouteSpec {
        head: false,
        ..route(id, "GET", pattern)
    }
}

/// The route table. Add a capability's routes here and its handler in `entry::dispatch`.
pub const ROUTES: &[RouteSpec] = &[
    route(RouteId::Health, "GET", "/health"),
    route(RouteId::Ready, "GET", "/health/ready"),
    route(RouteId::OpenApi, "GET", "/openapi.json"),
    route(RouteId::AuthLogin, "POST", "/auth/login"),
    route(RouteId::AuthLogout, "POST", "/auth/logout"),
    route(RouteId::AuthRefresh, "POST", "/auth/refresh"),
    route(RouteId::AuthSession, "GET", "/auth/session"),
    route(RouteId::AuthSessions, "GET", "/auth/sessions"),
    route(RouteId::AuthSessionsEnd, "DELETE", "/auth/sessions"),
    // render
    route(RouteId::RenderHome, "GET", "/"),
    route(RouteId::RenderPage, "GET", "/p/{page}"),
    route(RouteId::RateLimitCheck, "GET", "/ratelimit/{policy}/check"),
    // The check route minus the limiter, for bench/ratelimit.mjs's side-by-side figures.
    RouteSpec {
        id: RouteId::RateLimitBaseline,
        method: "GET",
        pattern: "/__debug/ratelimit/{policy}/unlimited",
        debug_only: true,
        head: true,
    },
    RouteSpec {
        id: RouteId::DebugPanic,
        method: "GET",
        pattern: "/__debug/panic",
        debug_only: true,
        head: true,
    },
    // How many requests of this isolate wait on another's work (entry::coalesce): what the coalescing tests hold
    // the origin's answer on, so their requests overlap by construction rather than by a long enough delay. Also
    // what the isolate counted (room listings run, JWKS reads made), which the sharing tests compare.
    RouteSpec {
        id: RouteId::DebugCoalesce,
        method: "GET",
        pattern: "/__debug/coalesce",
        debug_only: true,
        head: true,
    },
    // Ages the isolate's JWKS memory by `?ms=` (`KeySetMemory::age`): the JWKS tests see its TTL, its grace and a
    // failed read's hold lapse without waiting them out.
    RouteSpec {
        id: RouteId::DebugJwksAge,
        method: "POST",
        pattern: "/__debug/jwks/age",
        debug_only: true,
        head: true,
    },
    // Ages the isolate's stale-while-revalidate refresh holds by `?ms=` (`KeyHolds::age`): the edge cache's tests
    // see a configured hold or an origin's `Retry-After` end without waiting it out.
    RouteSpec {
        id: RouteId::DebugRefreshHoldsAge,
        method: "POST",
        pattern: "/__debug/refresh-holds/age",
        debug_only: true,
        head: true,
    },
    // Ages the isolate's stored edge-cache copies by `?ms=` (`cache::CopyAging`): the edge cache's tests see a copy's
    // TTL pass without waiting it out.
    RouteSpec {
        id: RouteId::DebugEdgeCacheAge,
        method: "POST",
        pattern: "/__debug/edge-cache/age",
        debug_only: true,
        head: true,
    },
    // Ages the isolate's remembered failed D1 bookmarks by `?ms=` (`bookmark::Failed::age`): the sessions tests see
    // one forgotten after `SESSION_FAILED_BOOKMARK_SECS` without waiting it out.
    RouteSpec {
        id: RouteId::DebugFailedBookmarksAge,
        method: "POST",
        pattern: "/__debug/failed-bookmarks/age",
        debug_only: true,
        head: true,
    },
    route(RouteId::GatewayPurge, "POST", "/admin/gateway/purge"),
    route(RouteId::Images, "GET", "/images/{*path}"),
    route(RouteId::Rooms, "GET", "/rooms"),
    route(RouteId::RoomPage, "GET", "/rooms/{id}"),
    get_only(RouteId::RoomJoin, "/rooms/{id}/ws"),
    route(RouteId::RoomTicket, "POST", "/rooms/{id}/ticket"),
    route(RouteId::RoomState, "GET", "/rooms/{id}/state"),
    RouteSpec {
        id: RouteId::DebugRoomTicket,
        method: "POST",
        pattern: "/__debug/rooms/{id}/ticket",
        debug_only: true,
        head: true,
    },
];

/// What a request resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    Found {
        id: RouteId,
        params: HashMap<String, String>,
    },
    /// The path exists but not for this method; `allowed` feeds the `Allow` header.
    MethodNotAllowed {
        allowed: Vec<&'static str>,
    },
    NotFound,
}

/// The compiled table; build once per isolate.
pub struct Router {
    tree: matchit::Router<Vec<RouteSpec>>,
}

impl Router {
    /// Compiles [`ROUTES`], leaving out debug-only routes unless `debug_routes` is on.
    pub fn new(debug_routes: bool) -> Self {
        let mut by_pattern: Vec<(&'static str, Vec<RouteSpec>)> = Vec::new();
        for spec in ROUTES.iter().filter(|s| debug_routes || !s.debug_only) {
            match by_pattern.iter_mut().find(|(p, _)| *p == spec.pattern) {
                Some((_, specs)) => specs.push(*spec),
                None => by_pattern.push((spec.pattern, vec![*spec])),
            }
        }
        let mut tree = matchit::Router::new();
        for (pattern, specs) in by_pattern {
            // The table is a constant checked by `every_route_pattern_compiles`; a conflict is a programming error.
            if let Err(e) = tree.insert(pattern, specs) {
                panic!("route table: pattern {pattern} does not compile: {e}");
            }
        }
        Self { tree }
    }

    /// Resolves a method and a path (without query) against the table.
    pub fn resolve(&self, method: &str, path: &str) -> Resolved {
        let Ok(matched) = self.tree.at(path) else {
            return Resolved::NotFound;
        };
        let serves = |s: &&RouteSpec| {
            s.method == method || (method == "HEAD" && s.method == "GET" && s.head)
        };
        match matched.value.iter().find(serves) {
            Some(spec) => Resolved::Found {
                id: spec.id,
                params: matched
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            },
            None => {
                let mut allowed: Vec<&'static str> =
                    matched.value.iter().map(|s| s.method).collect();
                if matched.value.iter().any(|s| s.method == "GET" && s.head) {
                    allowed.push("HEAD");
                }
                Resolved::MethodNotAllowed { allowed }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes and counts are never stored; a page, an image or the OpenAPI document say their own `Cache-Control`.
    #[test]
    fn probes_and_counts_are_stored_nowhere() {
        let stored_nowhere: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.id.stored_nowhere())
            .map(|r| r.pattern)
            .collect();
        assert_eq!(
            stored_nowhere,
            [
                "/health",
                "/health/ready",
                "/ratelimit/{policy}/check",
                "/__debug/ratelimit/{policy}/unlimited",
                "/__debug/coalesce",
                "/rooms",
            ]
        );
    }

    #[test]
    fn every_route_pattern_compiles_with_and_without_debug_routes() {
        let _ = Router::new(true);
        let _ = Router::new(false);
    }

    #[test]
    fn routes_resolve_by_method_and_path() {
        let router = Router::new(false);
        let cases: &[(&str, &str, Resolved)] = &[
            (
                "GET",
                "/health",
                Resolved::Found {
                    id: RouteId::Health,
                    params: HashMap::new(),
                },
            ),
            (
                "HEAD",
                "/health",
                Resolved::Found {
                    id: RouteId::Health,
                    params: HashMap::new(),
                },
            ),
            (
                "POST",
                "/health",
                Resolved::MethodNotAllowed {
                    allowed: vec!["GET", "HEAD"],
                },
            ),
            ("GET", "/nope", Resolved::NotFound),
            ("GET", "/__debug/panic", Resolved::NotFound),
        ];
        for (method, path, expected) in cases {
            assert_eq!(&router.resolve(method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn a_get_only_route_refuses_head_and_leaves_it_out_of_allow() {
        let router = Router::new(false);
        for method in ["HEAD", "POST", "OPTIONS"] {
            assert_eq!(
                router.resolve(method, "/rooms/r/ws"),
                Resolved::MethodNotAllowed {
                    allowed: vec!["GET"]
                },
                "{method} of the WebSocket join"
            );
        }
        assert!(matches!(
            router.resolve("GET", "/rooms/r/ws"),
            Resolved::Found {
                id: RouteId::RoomJoin,
                ..
            }
        ));
        assert!(matches!(
            router.resolve("HEAD", "/rooms/r"),
            Resolved::Found {
                id: RouteId::RoomPage,
                ..
            }
        ));
        assert_eq!(
            router.resolve("DELETE", "/rooms/r"),
            Resolved::MethodNotAllowed {
                allowed: vec!["GET", "HEAD"]
            }
        );
    }

    #[test]
    fn debug_routes_exist_only_when_enabled() {
        // Every route under /__debug/ (a parameter filled in): served with DEBUG_ROUTES, and a 404 — not a 405
        // naming its method — without. Before, only the first half was asserted, and for /__debug/panic alone.
        let (on, off) = (Router::new(true), Router::new(false));
        let debug: Vec<&RouteSpec> = ROUTES
            .iter()
            .filter(|s| s.pattern.starts_with("/__debug/"))
            .collect();
        assert!(debug.len() >= 7, "the debug routes: {debug:?}");
        for spec in debug {
            let path = spec
                .pattern
                .split('/')
                .map(|part| if part.starts_with('{') { "x" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            assert!(
                matches!(on.resolve(spec.method, &path), Resolved::Found { id, .. } if id == spec.id),
                "{path} with DEBUG_ROUTES"
            );
            assert!(
                matches!(off.resolve(spec.method, &path), Resolved::NotFound),
                "{path} without DEBUG_ROUTES"
            );
        }
    }
}
