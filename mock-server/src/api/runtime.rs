//! The desktop-flow connector runtime (`/apim/uiflow/{environmentId}/{connectionId}/…`,
//! mock-defined path that a connection's `connectionRuntimeUrl` names). This slice serves
//! `TestConnection` (the connection resource's `testLinks`): it runs the same checks as the
//! connection's status — credentials on every machine, or the connect-with-sign-in
//! prerequisites — and answers 200 or the failure's envelope.

use super::connections::{connection_id, resolve_environment};
use super::extract::ApiPath;
use super::{ApiError, RequestContext, json};
use crate::domain::connection::UIFLOW;
use crate::state::AppState;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;

/// Routes of the connector runtime.
pub fn router() -> Router<AppState> {
    Router::new().route("/apim/uiflow/{env}/{id}/usersession/testconnection", get(test_connection))
}

async fn test_connection(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = connection_id(&path)?;
    let name = ctx.sandbox.apply(|st| -> Result<String, ApiError> {
        let environment = resolve_environment(&ctx.route, &path, None, &st.world)?;
        let c = st.world.connection(&ctx.caller, &environment, UIFLOW, &id)?;
        st.world.status(c).test()?;
        Ok(c.id.as_written().to_owned())
    })?;
    Ok(json(StatusCode::OK, json!({ "status": "Connected", "connectionName": name })))
}
