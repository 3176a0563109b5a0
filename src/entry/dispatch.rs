//! Dispatch: resolves the route table and calls the matching handler. Add a capability's arms here.

use worker::Response;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::gateway;
use crate::health;
use crate::router::{Resolved, RouteId};

pub async fn dispatch(mut call: Call) -> ApiResult<Response> {
    let method = call.req.method().to_string();
    let path = call.req.path();
    match call.isolate.router.resolve(&method, &path) {
        Resolved::Found { id, params } => {
            call.params = params;
            match id {
                RouteId::Health => health::handler::health(&call),
                RouteId::Ready => health::handler::ready(&call).await,
                RouteId::DebugPanic => panic!(
                    "deliberate panic from /__debug/panic (request {})",
                    call.request_id
                ),
                RouteId::GatewayPurge => gateway::handler::purge(&mut call).await,
            }
        }
        Resolved::MethodNotAllowed { allowed } => {
            Err(ApiError::method_not_allowed(&method, &allowed))
        }
        // Paths the app does not serve go to the gateway's configured routes (which answer 404/405 themselves).
        Resolved::NotFound => gateway::handler::serve(call).await,
    }
}
