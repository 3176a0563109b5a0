//! Runtime side of health: `/health` answers from memory; `/health/ready` reads KV, queries D1 and pings the
//! rate limiter's readiness Durable Object (a SQLite write and read), each check reported separately.

use durable_objects::ratelimit::protocol::{self as limiter, PingReply};
use worker::Response;

use super::{Check, Health, Readiness};
use crate::bindings;
use crate::entry::respond::json;
use crate::entry::Call;
use crate::error::ApiResult;

pub fn health(call: &Call) -> ApiResult<Response> {
    json(200, &Health::new(&call.isolate.config.core.service_name))
}

pub async fn ready(call: &Call) -> ApiResult<Response> {
    let (kv, db, object) = futures_util::join!(check_kv(call), check_d1(call), check_limiter(call));
    let readiness = Readiness::from_checks(vec![kv, db, object]);
    json(readiness.status(), &readiness)
}

fn check(binding: &'static str, outcome: Result<(), String>) -> Check {
    Check {
        binding,
        ok: outcome.is_ok(),
        detail: outcome.err(),
    }
}

async fn check_kv(call: &Call) -> Check {
    let outcome = async {
        let kv = call
            .env
            .kv(bindings::CONFIG_KV)
            .map_err(|e| e.to_string())?;
        kv.get("__ready")
            .text()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    check(bindings::CONFIG_KV, outcome.await)
}

async fn check_d1(call: &Call) -> Check {
    let outcome = async {
        let db = call.env.d1(bindings::DB).map_err(|e| e.to_string())?;
        let row = db
            .prepare("SELECT value FROM edge_meta WHERE key = 'schema'")
            .first::<serde_json::Value>(None)
            .await
            .map_err(|e| e.to_string())?;
        row.map(|_| ())
            .ok_or_else(|| "migrations not applied (edge_meta is empty)".to_owned())
    };
    check(bindings::DB, outcome.await)
}

async fn check_limiter(call: &Call) -> Check {
    let outcome = async {
        let stub = call
            .env
            .durable_object(limiter::BINDING)
            .and_then(|ns| ns.get_by_name(limiter::READINESS_OBJECT))
            .map_err(|e| e.to_string())?;
        let mut response = stub
            .fetch_with_request(
                worker::Request::new_with_init(
                    &format!("https://ratelimiter{}", limiter::PING_PATH),
                    worker::RequestInit::new().with_method(worker::Method::Post),
                )
                .map_err(|e| e.to_string())?,
            )
            .await
            .map_err(|e| e.to_string())?;
        let reply: PingReply = response.json().await.map_err(|e| e.to_string())?;
        if reply.pings > 0 {
            Ok(())
        } else {
            Err("the object stored no ping".to_owned())
        }
    };
    check(limiter::BINDING, outcome.await)
}
