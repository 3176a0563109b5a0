//! Dispatch: resolves the route table and calls the matching handler. Add a capability's arms here.

use worker::Response;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::router::{Resolved, RouteId};
use crate::{gateway, health, images, openapi, ratelimit, render, rooms, session};

pub async fn dispatch(mut call: Call) -> ApiResult<Response> {
    let method = call.method.clone();
    let raw = call.req.path();
    // Matched in the spelling the gateway matches in (`//health`, `/%68ealth` are `/health`): otherwise such a
    // spelling would miss the app's route and could reach a catch-all gateway route as the path it stands for.
    let path = gateway::request_url::normalise_path(&raw);
    match call.isolate.router.resolve(&method, &path) {
        Resolved::Found { id, params } => {
            call.params = params;
            match id {
                RouteId::Health => health::handler::health(&call),
                RouteId::Ready => health::handler::ready(&call).await,
                RouteId::OpenApi => openapi::handler::document(),
                RouteId::AuthLogin => session::handler::login(call).await,
                RouteId::AuthLogout => session::handler::logout(call).await,
                RouteId::AuthRefresh => session::handler::refresh(call).await,
                RouteId::AuthSession => session::handler::session(call).await,
                RouteId::AuthSessions => session::handler::sessions(call).await,
                RouteId::RateLimitCheck => ratelimit::handler::check(&call).await,
                RouteId::RateLimitBaseline => ratelimit::handler::unlimited(&call).await,
                RouteId::Images => images::handler::serve(&call).await,
                RouteId::Rooms => rooms::handler::list(&call).await,
                RouteId::RoomPage => rooms::handler::page(&call),
                RouteId::RoomJoin => rooms::handler::join(&call).await,
                RouteId::RoomTicket => rooms::handler::ticket(&call).await,
                RouteId::RoomState => rooms::handler::authorised_state(&call).await,
                RouteId::DebugRoomTicket => rooms::handler::debug_ticket(&call).await,
                RouteId::DebugPanic => panic!(
                    "deliberate panic from /__debug/panic (request {})",
                    call.request_id
                ),
                RouteId::DebugCoalesce => super::respond::json(
                    200,
                    &serde_json::json!({ "waiting": super::coalesce::waiting(),
                        "room_listings": rooms::handler::listings_asked() }),
                ),
                RouteId::GatewayPurge => gateway::handler::purge(&mut call).await,
                // render
                RouteId::RenderHome | RouteId::RenderPage => render::handler::page(call).await,
            }
        }
        Resolved::MethodNotAllowed { allowed } => {
            Err(ApiError::method_not_allowed(&method, &allowed))
        }
        // Paths the app does not serve go to the gateway's configured routes (which answer 404/405 themselves).
        Resolved::NotFound => gateway::handler::serve(call).await,
    }
}
