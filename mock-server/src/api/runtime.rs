//! The desktop-flow connector runtime (`/apim/uiflow/{environmentId}/{connectionId}/…`,
//! mock-defined path that a connection's `connectionRuntimeUrl` names). This slice serves
//! `TestConnection` (the connection resource's `testLinks`): it runs the same checks as the
//! connection's status — credentials on every machine, or the connect-with-sign-in
//! prerequisites — and answers 200 or the failure's envelope.

use super::auth::{caller, verify_bearer};
use super::connections::{connection_id, resolve_environment};
use super::extract::ApiPath;
use super::{ApiError, RouteInfo, json};
use crate::domain::connection::UIFLOW;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;

/// Routes of the connector runtime.
pub fn router() -> Router<AppState> {
    Router::new().route("/apim/uiflow/{env}/{id}/usersession/testconnection", get(test_connection))
}

async fn test_connection(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = verify_bearer(&app, &headers, &route, None)?;
    let id = connection_id(&path)?;
    let name = route.cell()?.apply(|st| -> Result<String, ApiError> {
        let environment = resolve_environment(&route, &path, None, &st.world)?;
        let who = caller(&st.world, &claims)?;
        let c = st.world.connection(&who, &environment, UIFLOW, &id)?;
        st.world.status(c).test()?;
        Ok(c.id.as_written().to_owned())
    })?;
    Ok(json(StatusCode::OK, json!({ "status": "Connected", "connectionName": name })))
}
