//! Runtime side of health: `/health` answers from memory; `/health/ready` reads both KV namespaces, queries D1,
//! pings the readiness Durable Object of every rate-limit namespace the policies count in (a SQLite write and read)
//! and reads an object of each of the rooms' namespaces, so one bound to another class fails (and the Images
//! binding is looked up, when image requests use it), each check
//! reported separately. A failing check names its binding with a fixed description; the runtime's own error text
//! (SQL, exceptions) goes to the log only. One isolate checks at most once per [`READY_MEMORY_MS`], and concurrent
//! probes share one check: the probe is unauthenticated, and each check writes to the limiter object.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use durable_objects::ratelimit::protocol::{self as limiter, PingReply};
use durable_objects::room::protocol as room;
use durable_objects::room_directory::protocol as directory;
use std::time::Duration;

use futures_util::future::{Either, LocalBoxFuture};
use futures_util::FutureExt;
use worker::{Delay, Response};

use super::{Check, Health, Readiness};
use crate::bindings;
use crate::entry::coalesce::{self, InFlight, Memory, Sharing};
use crate::entry::log;
use crate::entry::respond::json;
use crate::entry::Call;
use crate::error::ApiResult;
use crate::images::config::ImagesMode;
use crate::images::handler::{images_binding, IMAGES_BINDING};

/// How long an isolate answers `/health/ready` from its last check.
const READY_MEMORY_MS: u64 = 5_000;

thread_local! {
    /// The last readiness check: when it ran and what it found.
    static LAST: Memory<Rc<Readiness>> = const { RefCell::new(None) };
    /// A check in progress: concurrent probes wait for it.
    static CHECKING: InFlight<Rc<Readiness>> = RefCell::new(HashMap::new());
}

pub fn health(call: &Call) -> ApiResult<Response> {
    json(200, &Health::new(&call.isolate.config.core.service_name))
}

/// How long the readiness checks may take together before they report not ready (a backstop: each check has its
/// own, shorter budget, [`CHECK_BUDGET_MS`]).
const READY_BUDGET_MS: u64 = 3_000;

/// How long one check may wait for its binding: one that has not answered by then fails alone, named, while the
/// others report what they found (the whole readiness timing out said only that "the checks timed out").
const CHECK_BUDGET_MS: u64 = 2_000;

pub async fn ready(call: &Call) -> ApiResult<Response> {
    let sharing = Sharing {
        in_flight: &CHECKING,
        memory: &LAST,
        memory_ms: READY_MEMORY_MS,
        budget_ms: READY_BUDGET_MS,
        keep: |_| true,
    };
    let timed_out = || timed_out(&call.request_id);
    let readiness = coalesce::shared(&sharing, || check_all(call), timed_out).await;
    match readiness.not_ready() {
        Some(error) => Err(error),
        None => json(200, &*readiness),
    }
}

fn timed_out(request_id: &str) -> Rc<Readiness> {
    log::error(
        "readiness_timed_out",
        serde_json::json!({"budget_ms": READY_BUDGET_MS, "request_id": request_id,
            "detail": format!("readiness checks took over {READY_BUDGET_MS} ms")}),
    );
    Rc::new(Readiness::from_checks(vec![Check {
        binding: "all",
        ok: false,
        detail: Some("the checks timed out"),
    }]))
}

async fn check_all(call: &Call) -> Rc<Readiness> {
    let (config_kv, content_kv, db, object, rooms, directory) = futures_util::join!(
        check_kv(call, bindings::CONFIG_KV),
        check_kv(call, bindings::CONTENT_KV),
        check_d1(call),
        check_limiter(call),
        // Each of the rooms' namespaces answers as its class: the state of a room never set up (the read writes
        // nothing), the row count of a directory object no room reports to. A lookup alone passed a binding to
        // another class (wrangler.toml's `class_name`), under which every room request, or `GET /rooms`, fails.
        check_object(
            call,
            room::BINDING,
            room::READINESS_OBJECT,
            room::PATH_STATE,
            |text| serde_json::from_str::<RoomState>(text).map(|_| ()),
            "does not answer as a room object: is its class_name Room? (see the log)",
        ),
        check_object(
            call,
            directory::BINDING,
            directory::READINESS_OBJECT,
            directory::PATH_COUNT,
            |text| serde_json::from_str::<directory::Count>(text).map(|_| ()),
            "does not answer as a room directory: is its class_name RoomDirectory? (see the log)",
        )
    );
    let mut checks = vec![config_kv, content_kv, db, object, rooms, directory];
    checks.extend(check_images(call));
    Rc::new(Readiness::from_checks(checks))
}

/// The Images binding, when image requests depend on it (`IMAGES_MODE = "binding"` and an `IMAGES_ORIGIN`): without
/// it every image request answers 500 while every other check passes. Not checked otherwise (cf-image mode never
/// uses it; without an origin `/images` answers 404).
fn check_images(call: &Call) -> Option<Check> {
    let images = &call.isolate.config.images;
    if images.mode != ImagesMode::Binding || images.origin.is_none() {
        return None;
    }
    let outcome = images_binding(&call.env).map(|_| ()).map_err(|problem| {
        (
            "not bound as an Images binding ([images] in wrangler.toml)",
            format!("the {IMAGES_BINDING} binding {problem}"),
        )
    });
    Some(check(call, IMAGES_BINDING, outcome))
}

/// A check's outcome: `Err((what the client is told, what only the log gets))`.
type Outcome = Result<(), (&'static str, String)>;

/// `outcome`, or its failure once it has waited [`CHECK_BUDGET_MS`] for a binding that does not answer. Boxed: one
/// copy of the race serves every check (generic, it was one per check's future, ~4 KB of gzipped wasm).
async fn in_time(outcome: LocalBoxFuture<'_, Outcome>) -> Outcome {
    let timer = Delay::from(Duration::from_millis(CHECK_BUDGET_MS));
    match futures_util::future::select(outcome, timer).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(_) => Err((
            "no answer in time (see the log)",
            format!("no answer in {CHECK_BUDGET_MS} ms"),
        )),
    }
}

fn check(call: &Call, binding: &'static str, outcome: Outcome) -> Check {
    match outcome {
        Ok(()) => Check {
            binding,
            ok: true,
            detail: None,
        },
        Err((public, internal)) => {
            log::error(
                "readiness",
                serde_json::json!({"binding": binding, "problem": public, "detail": internal,
                    "request_id": call.request_id}),
            );
            Check {
                binding,
                ok: false,
                detail: Some(public),
            }
        }
    }
}

async fn check_kv(call: &Call, binding: &'static str) -> Check {
    let outcome = async {
        let kv = call
            .env
            .kv(binding)
            .map_err(|e| ("not bound", e.to_string()))?;
        kv.get("__ready")
            .text()
            .await
            .map(|_| ())
            .map_err(|e| ("read failed (see the log)", e.to_string()))
    };
    check(call, binding, in_time(outcome.boxed_local()).await)
}

async fn check_d1(call: &Call) -> Check {
    let outcome = async {
        let db = call
            .env
            .d1(bindings::DB)
            .map_err(|e| ("not bound", e.to_string()))?;
        let stored = db
            .prepare("SELECT value FROM edge_meta WHERE key = 'schema_version'")
            .first::<String>(Some("value"))
            .await
            .map_err(|e| {
                (
                    "query failed: are the migrations applied? (see the log)",
                    e.to_string(),
                )
            })?;
        if super::schema_current(stored.as_deref()) {
            Ok(())
        } else {
            Err((
                "migrations missing: apply them (wrangler d1 migrations apply DB)",
                format!(
                    "edge_meta.schema_version is {stored:?}; this build needs {}",
                    super::SCHEMA_VERSION
                ),
            ))
        }
    };
    check(call, bindings::DB, in_time(outcome.boxed_local()).await)
}

async fn check_limiter(call: &Call) -> Check {
    let outcome = async {
        // Every namespace a policy counts in answers as a limiter, and only those: one that is no Durable Object
        // namespace fails open (or closed) on every request with only a log line per request, and one bound to
        // another class (`ROOMS`) answers each limited request 500 whatever the policy's failure mode: readiness says
        // so once. The default `RATE_LIMITER` is one of them only when a policy uses it: a deployment whose policies
        // all name another binding need not bind it, and was never ready.
        let bindings: std::collections::BTreeSet<&str> = call
            .isolate
            .config
            .ratelimit
            .policies()
            .map(|p| p.binding.as_str())
            .collect();
        // All at once, each in its own budget: one that does not answer is named, as one that fails is.
        let pings = bindings.into_iter().map(|binding| async move {
            in_time(ping(call, binding).boxed_local())
                .await
                .map_err(|(what, detail)| (what, format!("binding {binding}: {detail}")))
        });
        futures_util::future::join_all(pings)
            .await
            .into_iter()
            .collect::<Outcome>()
    };
    check(call, limiter::BINDING, outcome.await)
}

/// A room's state as far as readiness reads it: that the answer is one.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // read to see the answer is a room's state
struct RoomState {
    members: u64,
}

/// The check of namespace `binding`: `GET path` of its object `name`, the body read by `reads`, in its budget;
/// `wrong_class` is what the client is told when the object answers, but not as the class that path belongs to.
async fn check_object(
    call: &Call,
    binding: &'static str,
    name: &str,
    path: &str,
    reads: fn(&str) -> serde_json::Result<()>,
    wrong_class: &'static str,
) -> Check {
    let outcome = read_object(call, binding, name, path, reads, wrong_class);
    let outcome = in_time(outcome.boxed_local()).await;
    check(call, binding, outcome)
}

async fn read_object(
    call: &Call,
    binding: &str,
    name: &str,
    path: &str,
    reads: fn(&str) -> serde_json::Result<()>,
    wrong_class: &'static str,
) -> Outcome {
    let stub = call
        .env
        .durable_object(binding)
        .and_then(|ns| ns.get_by_name(name))
        .map_err(|e| ("not bound", e.to_string()))?;
    let mut response = stub
        .fetch_with_str(&format!("https://readiness{path}"))
        .await
        .map_err(|e| ("unreachable (see the log)", e.to_string()))?;
    let status = response.status_code();
    if status != 200 {
        return Err((wrong_class, format!("GET {path} answered {status}")));
    }
    let text = response
        .text()
        .await
        .map_err(|e| (wrong_class, format!("GET {path}: {e}")))?;
    reads(&text).map_err(|e| (wrong_class, format!("GET {path}: {e}")))
}

/// Pings the readiness object of the limiter namespace `binding`: a SQLite write and read.
async fn ping(call: &Call, binding: &str) -> Result<(), (&'static str, String)> {
    let stub = call
        .env
        .durable_object(binding)
        .and_then(|ns| ns.get_by_name(limiter::READINESS_OBJECT))
        .map_err(|e| {
            (
                "a rate-limit policy's binding is not a Durable Object namespace (see the log)",
                e.to_string(),
            )
        })?;
    let mut response = stub
        .fetch_with_request(
            worker::Request::new_with_init(
                &format!("https://ratelimiter{}", limiter::PING_PATH),
                worker::RequestInit::new().with_method(worker::Method::Post),
            )
            .map_err(|e| ("request failed", e.to_string()))?,
        )
        .await
        .map_err(|e| ("unreachable (see the log)", e.to_string()))?;
    if response.status_code() != 200 {
        return Err((
            "a rate-limit policy's binding does not answer as a rate limiter (see the log)",
            format!("ping answered {}", response.status_code()),
        ));
    }
    let reply: PingReply = response
        .json()
        .await
        .map_err(|e| ("unexpected answer (see the log)", e.to_string()))?;
    if reply.pings > 0 {
        Ok(())
    } else {
        Err(("stored nothing", "the object stored no ping".to_owned()))
    }
}
