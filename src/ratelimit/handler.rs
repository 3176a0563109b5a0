//! Runtime side of rate limiting: `enforce` (one policy, one key: the contract other capabilities call), `limit`
//! (resolve the key from the request, then enforce), stamping the headers on a counted request's answer (an error
//! too), and the public route `GET /ratelimit/{policy}/check`, which is limited by the named policy through exactly
//! the same path.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use durable_objects::ratelimit::protocol::{self as wire, TakeReply, TakeRequest};
use futures_util::future::Either;
use serde::Serialize;
use worker::wasm_bindgen::JsValue;
use worker::{Delay, Method, Request, RequestInit, Response};

use super::headers::RateLimitHeaders;
use super::key::{self, KeyInputs};
use super::memory::{Gate, IsolateMemory};
use super::plan::{self, Plan};
use super::policy::{FailureMode, KeySource, Policy};
use crate::entry::respond::{self, json};
use crate::entry::Call;
use crate::error::{ApiError, ApiResult};

/// Exhausted keys one isolate remembers at most.
const MEMORY_CAPACITY: usize = 10_000;

thread_local! {
    static MEMORY: RefCell<Option<IsolateMemory>> = const { RefCell::new(None) };
}

fn with_memory<T>(f: impl FnOnce(&mut IsolateMemory) -> T) -> T {
    MEMORY.with(|cell| {
        let mut slot = cell.borrow_mut();
        let memory = slot.get_or_insert_with(|| {
            let seed = respond::random_bytes();
            IsolateMemory::new(
                MEMORY_CAPACITY,
                u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]),
            )
        });
        f(memory)
    })
}

fn policy<'a>(call: &'a Call, name: &str) -> ApiResult<&'a Policy> {
    call.isolate.config.ratelimit.get(name).ok_or_else(|| {
        ApiError::internal(format!("no rate-limit policy named `{name}` is configured"))
    })
}

/// Limits one request for `key` under policy `policy`. `Ok`: allowed, with the headers to add to the response.
/// `Err`: 429 with the headers and `Retry-After`, or (policy `failure = "closed"`, limiter unreachable) 503.
/// At most one Durable Object round trip; none for a key this isolate knows to be exhausted.
pub async fn enforce(call: &Call, policy_name: &str, key: &str) -> ApiResult<RateLimitHeaders> {
    let policy = policy(call, policy_name)?;
    let (decided, late) = decide(&call.env, &call.request_id, policy, key, Waiting::Client).await;
    if let Some(late) = late {
        call.ctx.wait_until(late);
    }
    decided
}

/// Counts one request for `key` under policy `policy_name` after the response, through `ctx.wait_until`: for a
/// caller whose answer does not depend on the count (a failed credential, counted so the *next* request of an
/// address over its budget is refused before any work). The answer no longer waits a Durable Object round trip —
/// up to the policy's `timeout_ms` for a silent object — on bookkeeping; the count is still made, and a refusal is
/// still remembered by this isolate (when it lands). A key this isolate already refuses when the count runs is not
/// counted (as [`enforce`] would not count it), and logged as such.
pub fn count_after_response(call: &Call, policy_name: &str, key: String) {
    let (env, isolate) = (call.env.clone(), call.isolate.clone());
    let (request_id, policy_name) = (call.request_id.clone(), policy_name.to_owned());
    call.ctx.wait_until(async move {
        let Some(policy) = isolate.config.ratelimit.get(&policy_name) else {
            return;
        };
        // A key this isolate already refuses (a refusal that landed after the caller's `refused_here`) is not
        // counted: no object is asked, and the line says so rather than that a count was refused.
        let now_ms = respond::now_ms();
        if with_memory(|m| plan::known_refusal(m, policy, &key, now_ms)).is_some() {
            crate::entry::log::warn(
                "rate limit exceeded: a request was not counted after its response",
                serde_json::json!({
                    "policy": policy.name, "request_id": request_id,
                    "detail": "this isolate refuses the key until its retry time; the limiter was not asked",
                }),
            );
            return;
        }
        // A limiter that fails (open or closed) only leaves this one uncounted — and says so: failing open is logged
        // by `decide`; a 503 (failing closed) or a 500 (a take the object rejected) had no answer left to be logged
        // with, so nothing told that the budget stopped counting.
        let (decided, late) = decide(&env, &request_id, policy, &key, Waiting::None).await;
        match decided {
            Err(refusal) if refusal.status() == 429 => crate::entry::log::warn(
                "rate limit exceeded by a request counted after its response",
                serde_json::json!({ "policy": policy.name, "request_id": request_id }),
            ),
            Err(failed) => crate::entry::log::warn(
                "rate limiter failed a request counted after its response",
                serde_json::json!({
                    "policy": policy.name, "request_id": request_id, "status": failed.status(),
                    "detail": failed.internal_detail(),
                }),
            ),
            Ok(_) => {}
        }
        if let Some(late) = late {
            late.await;
        }
    });
}

/// Who waits on a decision.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The client's answer: under `failure = "closed"` a limiter later than `timeout_ms` has it refused 503, so the
    /// take carries that moment (plus [`plan::DEADLINE_MARGIN_MS`]) as its deadline, and a take landing after it
    /// spends nothing.
    Client,
    /// Nothing but the count: decided whenever it lands.
    None,
}

/// Bookkeeping for an answer that arrives after its request stopped waiting (`ctx.wait_until` runs it).
type LateAnswer = Pin<Box<dyn Future<Output = ()>>>;

/// The decision for one request, and (when the object was silent for it) what to run when its late answer lands.
async fn decide(
    env: &worker::Env,
    request_id: &str,
    policy: &Policy,
    key: &str,
    waiting: Waiting,
) -> (ApiResult<RateLimitHeaders>, Option<LateAnswer>) {
    let now_ms = respond::now_ms();
    let (object, mut take, memory_key) = match with_memory(|m| plan::plan(m, policy, key, now_ms)) {
        Plan::Refuse {
            headers,
            retry_after_ms,
        } => return (Err(headers.refusal(retry_after_ms)), None),
        Plan::Ask {
            object,
            take,
            memory_key,
        } => (object, take, memory_key),
    };
    if waiting == Waiting::Client && policy.failure == FailureMode::Closed {
        take.deadline_ms = Some(plan::deadline(now_ms, policy.timeout_ms));
    }
    let (asked, late) =
        ask_unless_silent(env, request_id, policy, &object, &take, &memory_key, now_ms).await;
    // A take the object found past its deadline while this request still waited for it: the object's clock runs
    // ahead of this Worker's by more than the deadline's margin (its own 503 says by how much it was late), not a
    // failing limiter. Answered as any limiter failure; logged as what it is.
    let asked = asked.map_err(|asked| match asked {
        Asked::PastDeadline { late_ms, detail } => {
            let skew_ms = take
                .deadline_ms
                .map(|at| plan::clock_skew_ms(at, late_ms, respond::now_ms()));
            crate::entry::log::warn(
                "rate limiter clock ahead of the Worker's",
                serde_json::json!({
                    "policy": policy.name, "object": object, "request_id": request_id,
                    "skew_ms": skew_ms, "late_ms": late_ms, "margin_ms": plan::DEADLINE_MARGIN_MS,
                }),
            );
            let detail = format!(
                "{detail} (clock skew: the object's clock is at least {} ms ahead of the Worker's)",
                skew_ms.unwrap_or(late_ms)
            );
            Asked::PastDeadline { late_ms, detail }
        }
        other => other,
    });
    let decided = match asked {
        // The object understood and refused the request itself (4xx): a fault of ours, never a reason to pass.
        Err(Asked::Rejected(detail)) => Err(ApiError::internal(format!(
            "rate limiter rejected the request for policy {} object {object}: {detail}",
            policy.name
        ))),
        Ok(reply) if reply.allowed => Ok(plan::headers_for(policy, &reply)),
        Ok(reply) => {
            with_memory(|m| plan::remember_refusal(m, &memory_key, &reply, now_ms));
            Err(plan::headers_for(policy, &reply).refusal(reply.retry_after_ms))
        }
        Err(
            Asked::Unreachable(detail)
            | Asked::Faulted(detail)
            | Asked::Silent(detail)
            | Asked::PastDeadline { detail, .. },
        ) => match policy.failure {
            FailureMode::Open => {
                crate::entry::log::warn(
                    "rate limiter unreachable; failing open",
                    serde_json::json!({
                        "policy": policy.name, "object": object, "request_id": request_id, "detail": detail,
                    }),
                );
                Ok(RateLimitHeaders {
                    policy: policy.name.clone(),
                    limit: policy.limit,
                    window_s: policy.window_s,
                    standing: None,
                })
            }
            FailureMode::Closed => {
                // An object this isolate now skips (it let this request or an earlier one wait out `timeout_ms`) is
                // not asked before its mark ends: every request until then gets this 503 at once, so a client told
                // to come back in 1 s came back up to ten times for the same answer. The mark's end is when to.
                let now_ms = respond::now_ms();
                let silent_key = plan::silent_key(policy, &object);
                let retry_s = with_memory(|m| m.silent_until(&silent_key, now_ms))
                    .map_or(1, |until_ms| {
                        super::headers::seconds(until_ms - now_ms).max(1)
                    });
                Err(ApiError::new(
                    503,
                    "rate_limit_unavailable",
                    "the rate limiter cannot be reached; try again shortly",
                )
                .with_header("retry-after", retry_s.to_string())
                .with_internal(format!("policy {} object {object}: {detail}", policy.name)))
            }
        },
    };
    (decided, late)
}

/// The 429 [`enforce`] would answer at once for `key` (this isolate saw it refused, and its retry time has not come),
/// spending nothing and asking no one: for a caller that counts only requests that turned out costly, and must
/// refuse the costly work itself to a client already over the limit. `Ok`: not known exhausted here.
pub fn refused_here(call: &Call, policy_name: &str, key: &str) -> ApiResult<()> {
    let policy = policy(call, policy_name)?;
    let now_ms = respond::now_ms();
    match with_memory(|m| plan::known_refusal(m, policy, key, now_ms)) {
        Some(Plan::Refuse {
            headers,
            retry_after_ms,
        }) => Err(headers.refusal(retry_after_ms)),
        _ => Ok(()),
    }
}

/// Resolves the key policy `policy_name` limits for this request (see [`KeySource`]): the client's address
/// ([`Call::client_address`]), the API-key header the policy names, and `user_id`, which the caller must have verified
/// (session or access token). `route` is the route pattern, for `route_user` policies.
pub fn resolve_key(
    call: &Call,
    policy_name: &str,
    user_id: Option<&str>,
    route: &str,
) -> ApiResult<String> {
    let policy = policy(call, policy_name)?;
    let header = |name: &str| call.req.headers().get(name).ok().flatten();
    let api_key = match &policy.key {
        KeySource::ApiKey { header: name } => header(name),
        _ => None,
    };
    let inputs = KeyInputs {
        client: call.client_address(),
        user_id,
        api_key: api_key.as_deref(),
        route,
    };
    key::resolve(&policy.key, &inputs).map_err(|error| error.refusal(policy_name))
}

/// [`resolve_key`] then [`enforce`]: what a route limited by a configured policy calls.
pub async fn limit(
    call: &Call,
    policy_name: &str,
    user_id: Option<&str>,
    route: &str,
) -> ApiResult<RateLimitHeaders> {
    let key = resolve_key(call, policy_name, user_id, route)?;
    enforce(call, policy_name, &key).await
}

impl RateLimitHeaders {
    /// Sets `RateLimit-Policy` and (when known) `RateLimit` on `response`, replacing any the origin sent: they
    /// describe the gateway's limit to this client. With no standing known (every policy failing open) the origin's
    /// `RateLimit` is removed too: left beside our `RateLimit-Policy`, it would describe a policy the answer no longer
    /// lists, and read as the gateway's standing (an origin's `r=0` would make a client wait for nothing).
    pub fn apply(&self, response: Response) -> Response {
        Self::apply_all(&[self], response)
    }

    /// The answer to a request this limit counted, whatever it is: a success stamped ([`Self::apply`]), an error
    /// with the fields too ([`RateLimitHeaders::listed_on`]) — the request spent a unit of the quota either way.
    pub fn stamp(&self, answered: ApiResult<Response>) -> ApiResult<Response> {
        Self::stamp_all(&[self], answered)
    }

    /// [`RateLimitHeaders::stamp`] for several policies that counted the request, listed in one field each.
    pub fn stamp_all(
        limits: &[&RateLimitHeaders],
        answered: ApiResult<Response>,
    ) -> ApiResult<Response> {
        match answered {
            Ok(response) => Ok(Self::apply_all(limits, response)),
            Err(error) => Err(Self::listed_on(limits, error)),
        }
    }

    /// [`RateLimitHeaders::apply`] for several policies the request passed, listed in one field each.
    pub fn apply_all(limits: &[&RateLimitHeaders], response: Response) -> Response {
        if limits.is_empty() {
            return response;
        }
        let pairs = Self::joined(limits);
        let standing_known = pairs.iter().any(|(name, _)| *name == "ratelimit");
        let response = pairs.into_iter().fold(response, |r, (name, value)| {
            respond::with_header(r, name, &value)
        });
        if standing_known {
            response
        } else {
            respond::without_header(response, "ratelimit")
        }
    }
}

/// Why the limiter object gave no verdict.
enum Asked {
    /// It could not be reached (the call threw): the policy's failure mode decides.
    Unreachable(String),
    /// It answered, but with a failure (5xx): the policy's failure mode decides; the object is alive.
    Faulted(String),
    /// It did not answer within the policy's `timeout_ms`: unreachable, and not asked again for a while.
    Silent(String),
    /// It answered 4xx: the request it was sent is wrong.
    Rejected(String),
    /// It answered 503 with [`wire::LATE_HEADER`]: it got the take `late_ms` past its deadline (by its clock) and
    /// spent nothing.
    PastDeadline { late_ms: u64, detail: String },
}

impl From<String> for Asked {
    fn from(detail: String) -> Self {
        Self::Unreachable(detail)
    }
}

/// [`ask_within_budget`], unless `object` let a request of this isolate wait its whole timeout lately
/// ([`IsolateMemory::gate`]): then it is unreachable at once, with no round trip — every request of a silent shard
/// waited out `timeout_ms` before its failure mode decided. `Err` is never [`Asked::Silent`]. With the verdict, when
/// the object was silent for this request: the watch on its answer, which is still on its way ([`watch_late`]).
async fn ask_unless_silent(
    env: &worker::Env,
    request_id: &str,
    policy: &Policy,
    object: &str,
    take: &TakeRequest,
    memory_key: &str,
    now_ms: u64,
) -> (Result<TakeReply, Asked>, Option<LateAnswer>) {
    let silent_key = plan::silent_key(policy, object);
    if let Gate::Skip { until_ms } = with_memory(|m| m.gate(&silent_key, now_ms, policy.timeout_ms))
    {
        let detail = format!(
            "silent: a request waited {} ms for it lately; asked again in {} ms",
            policy.timeout_ms,
            until_ms.saturating_sub(now_ms)
        );
        return (Err(Asked::Unreachable(detail)), None);
    }
    let (asked, pending) = ask_within_budget(env, policy, object, take).await;
    with_memory(|m| match &asked {
        Err(Asked::Silent(_)) => m.object_silent(&silent_key, respond::now_ms()),
        _ => m.object_answered(&silent_key),
    });
    let late = pending.map(|pending| {
        let watch = watch_late(
            pending,
            LateContext {
                policy: policy.name.clone(),
                object: object.to_owned(),
                silent_key,
                memory_key: memory_key.to_owned(),
                request_id: request_id.to_owned(),
                asked_at_ms: now_ms,
            },
        );
        Box::pin(watch) as LateAnswer
    });
    let asked = asked.map_err(|asked| match asked {
        Asked::Silent(detail) => Asked::Unreachable(detail),
        other => other,
    });
    (asked, late)
}

/// An ask still under way.
type PendingAsk = Pin<Box<dyn Future<Output = Result<TakeReply, Asked>>>>;

/// [`ask`], waiting at most `timeout_ms` (the policy's): an object that has not answered by then is silent, and the
/// ask still under way is handed back, for [`watch_late`].
async fn ask_within_budget(
    env: &worker::Env,
    policy: &Policy,
    object: &str,
    take: &TakeRequest,
) -> (Result<TakeReply, Asked>, Option<PendingAsk>) {
    let asked: PendingAsk = Box::pin(ask(
        env.clone(),
        policy.binding.clone(),
        object.to_owned(),
        take.clone(),
    ));
    let budget = std::pin::pin!(Delay::from(Duration::from_millis(policy.timeout_ms)));
    match futures_util::future::select(asked, budget).await {
        Either::Left((answer, _)) => (answer, None),
        Either::Right((_, pending)) => (
            Err(Asked::Silent(format!(
                "no answer in {} ms",
                policy.timeout_ms
            ))),
            Some(pending),
        ),
    }
}

/// What [`watch_late`] needs to know of the request that stopped waiting.
struct LateContext {
    policy: String,
    object: String,
    silent_key: String,
    /// Where a refusal of its key is remembered ([`plan::remember_refusal`]).
    memory_key: String,
    request_id: String,
    asked_at_ms: u64,
}

/// Waits for the answer a request stopped waiting for. One that arrives (any answer: the object is alive, only
/// slow) ends the silence its lateness marked, so the next request probes the object, instead of none asking it
/// for [`super::memory::SILENT_FOR_MS`] — one slow answer turned a working limiter off for the whole isolate. An
/// ask that fails (the call threw) leaves the mark. A refusal in the answer is remembered, as one in time is: the
/// isolate refuses the key until its retry time (counted from when the request asked, never longer than the object
/// said), instead of asking the slow object again for a key it already refused.
async fn watch_late(pending: PendingAsk, late: LateContext) {
    let answer = pending.await;
    if let Err(Asked::Unreachable(_)) = answer {
        return;
    }
    let now_ms = respond::now_ms();
    with_memory(|m| {
        m.object_late(&late.silent_key, now_ms);
        if let Ok(reply) = &answer {
            plan::remember_refusal(m, &late.memory_key, reply, late.asked_at_ms);
        }
    });
    crate::entry::log::warn(
        "rate limiter answered after its timeout",
        serde_json::json!({
            "policy": late.policy, "object": late.object, "request_id": late.request_id,
            "after_ms": now_ms.saturating_sub(late.asked_at_ms),
        }),
    );
}

/// One `POST /take` to the object: its reply, or why there is none (a detail for the log). Owns what it is given,
/// so an ask its request stopped waiting for can still be watched ([`watch_late`]).
async fn ask(
    env: worker::Env,
    binding: String,
    object: String,
    take: TakeRequest,
) -> Result<TakeReply, Asked> {
    let (binding, object, take) = (binding.as_str(), object.as_str(), &take);
    let stub = env
        .durable_object(binding)
        .and_then(|ns| ns.get_by_name(object))
        .map_err(|e| format!("binding {binding}: {e}"))?;
    let body = serde_json::to_string(take).map_err(|e| e.to_string())?;
    let request = Request::new_with_init(
        &format!("https://ratelimiter{}", wire::TAKE_PATH),
        RequestInit::new()
            .with_method(Method::Post)
            .with_body(Some(JsValue::from_str(&body))),
    )
    .map_err(|e| e.to_string())?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status_code();
    if status != 200 {
        let late_ms = response
            .headers()
            .get(wire::LATE_HEADER)
            .ok()
            .flatten()
            .and_then(|late| late.parse::<u64>().ok())
            .filter(|_| status == 503);
        let text = response.text().await.unwrap_or_default();
        let detail = format!("object answered {status}: {text}");
        if let Some(late_ms) = late_ms {
            return Err(Asked::PastDeadline { late_ms, detail });
        }
        return Err(if (400..500).contains(&status) {
            Asked::Rejected(detail)
        } else {
            Asked::Faulted(detail)
        });
    }
    response
        .json::<TakeReply>()
        .await
        .map_err(|e| Asked::Faulted(e.to_string()))
}

/// Body of `GET /ratelimit/{policy}/check`.
#[derive(Serialize)]
struct Check<'a> {
    policy: &'a str,
    limit: u32,
    window: u64,
    /// `null` when the limiter could not be asked and the policy fails open.
    remaining: Option<u32>,
    reset: Option<u64>,
}

/// `GET /ratelimit/{policy}/check`: counts as one request under the policy (key from the policy's key source) and
/// says where the caller stands; 429 once the caller is over the limit. Only policies with `check = true` are
/// served; the others answer 404 like unknown names.
pub async fn check(call: &Call) -> ApiResult<Response> {
    check_route(call, true).await
}

/// `GET /__debug/ratelimit/{policy}/unlimited` (debug routes only): the same route without the `enforce` call, the
/// baseline the benchmark measures the limiter's added latency against.
pub async fn unlimited(call: &Call) -> ApiResult<Response> {
    check_route(call, false).await
}

async fn check_route(call: &Call, limited: bool) -> ApiResult<Response> {
    const ROUTE: &str = "/ratelimit/{policy}/check";
    let name = call
        .params
        .get("policy")
        .map(String::as_str)
        .unwrap_or_default();
    let Some(policy) = call.isolate.config.ratelimit.get(name).filter(|p| p.check) else {
        return Err(ApiError::new(
            404,
            "unknown_policy",
            "no rate-limit policy with check = true has this name",
        ));
    };
    let headers = if limited {
        limit(call, name, None, ROUTE).await?
    } else {
        resolve_key(call, name, None, ROUTE)?;
        RateLimitHeaders {
            policy: policy.name.clone(),
            limit: policy.limit,
            window_s: policy.window_s,
            standing: None,
        }
    };
    let body = Check {
        policy: &headers.policy,
        limit: headers.limit,
        window: headers.window_s,
        remaining: headers.standing.map(|(r, _)| r),
        reset: headers.standing.map(|(_, t)| t),
    };
    headers.stamp(json(200, &body))
}
