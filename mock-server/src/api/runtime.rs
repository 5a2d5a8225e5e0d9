//! The desktop-flow connector runtime (`/apim/uiflow/{environmentId}/{connectionId}/…`,
//! mock-defined path that a connection's `connectionRuntimeUrl` names). This slice serves
//! `TestConnection` (the connection resource's `testLinks`): it runs the same checks as the
//! connection's status — credentials on every machine, or the connect-with-sign-in
//! prerequisites — and answers 200 or the failure's envelope.

use super::auth::{caller, verify_bearer};
use super::extract::ApiPath;
use super::{ApiError, RouteInfo, json};
use crate::domain::connection::{ConnectionId, UIFLOW};
use crate::domain::ids::EnvironmentId;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

/// Routes of the connector runtime.
pub fn router() -> Router<AppState> {
    Router::new().route("/apim/uiflow/{env}/{id}/usersession/testconnection", get(test_connection))
}

async fn test_connection(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath((env, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = verify_bearer(&app, &headers, &route, None)?;
    let environment = EnvironmentId::parse(&env).map_err(|_| {
        ApiError::bad_request(
            "InvalidEnvironmentId",
            format!("'{}' is not an environment id.", env.chars().take(80).collect::<String>()),
        )
    })?;
    let id = ConnectionId::parse(&id).map_err(|_| {
        ApiError::bad_request(
            "InvalidConnectionId",
            format!("The connection id '{}' is not a valid GUID.", id.chars().take(80).collect::<String>()),
        )
    })?;
    let reg = app.registry();
    let sb = reg.get(&route.sandbox)?;
    let who = caller(&sb.world, &claims)?;
    let c = sb.world.connection(&who, &environment, UIFLOW, &id)?;
    sb.world.status(c).test()?;
    Ok(json(StatusCode::OK, json!({ "status": "Connected", "connectionName": c.id.as_written() })))
}
