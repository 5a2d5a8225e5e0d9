//! `RequestContext`: one request to an emulated API as the pipeline resolved it (operation,
//! sandbox, environment, origin, correlation id: [`RouteInfo`]) and who is calling (the
//! verified claims and the caller in the sandbox's world), resolved once and handed to the
//! handler as an extractor. Handlers then parse their body once and take the sandbox's lock
//! once, for the rule they apply.

use super::auth::{caller, verify_bearer};
use super::connections::check_api_version;
use super::{ApiError, RouteInfo, Surface};
use crate::domain::connection::Caller;
use crate::sandbox::Sandbox;
use crate::state::AppState;
use crate::tokens::VerifiedToken;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::sync::Arc;

/// A request to an emulated API, its caller authenticated.
#[derive(Debug)]
pub struct RequestContext {
    /// What routing decided: operation, sandbox, environment, origin, correlation id.
    pub route: RouteInfo,
    /// The sandbox the request belongs to.
    pub sandbox: Arc<Sandbox>,
    /// The bearer token, verified.
    pub token: Arc<VerifiedToken>,
    /// Who the token stands for in the sandbox's world.
    pub caller: Caller,
}

impl RequestContext {
    /// Verifies the bearer token for `route` (`org` on Dataverse, whose audience names it)
    /// and finds its principal in the sandbox's world.
    pub fn authenticate(
        app: &AppState,
        route: RouteInfo,
        headers: &HeaderMap,
        org: Option<&str>,
    ) -> Result<Self, ApiError> {
        let token = verify_bearer(app, headers, &route, org)?;
        let sandbox = route.cell()?.clone();
        let caller = sandbox.apply(|st| caller(&st.world, &token.claims))?;
        Ok(Self { route, sandbox, token, caller })
    }
}

/// The Power Platform API and BAP check `api-version` before the token; the connector
/// runtime has no `api-version`. Dataverse calls [`RequestContext::authenticate`] itself,
/// after reading the org and Web API version from its path.
impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        // Taken, not cloned: nothing after the context reads it.
        let route = parts.extensions.remove::<RouteInfo>().ok_or(ApiError::Internal)?;
        if matches!(route.surface, Surface::PowerPlatform | Surface::Bap) {
            check_api_version(parts.uri.query().unwrap_or(""))?;
        }
        Self::authenticate(app, route, &parts.headers, None)
    }
}
