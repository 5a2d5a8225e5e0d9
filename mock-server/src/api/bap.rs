//! BAP environment metadata: how a client finds the Dataverse org of an environment id
//! (api-facts 1.3). `instanceUrl` points at the mock's Dataverse door: the org host (with the
//! scheme and port the client used) when the client called the real BAP host, the loopback
//! path form otherwise.

use super::extract::ApiPath;
use super::{ApiError, RequestContext, json};
use crate::domain::ids::EnvironmentId;
use crate::hosts::{BAP_HOST, host_name, port_suffix};
use crate::state::AppState;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

/// Routes of the BAP surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{env}", get(get_environment))
        .route("/providers/Microsoft.BusinessAppPlatform/environments/{env}", get(get_environment))
}

async fn get_environment(ctx: RequestContext, ApiPath(env): ApiPath<String>) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound {
        code: "EnvironmentNotFound",
        message: format!("The environment '{env}' could not be found in the tenant."),
    };
    let id = EnvironmentId::parse(&env).map_err(|_| not_found())?;
    let e = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        // Another tenant's environment is not found either (the domain's visibility rule).
        let e = st.world.environment_for(&id, &ctx.caller).map_err(|_| not_found())?;
        Ok((e.id.clone(), e.tenant, e.display_name.clone(), e.org.clone(), e.org_host(), e.organization_id))
    })?;
    let (id, tenant, display_name, org, org_host, organization_id) = e;
    // The org host keeps the scheme and port the client used for BAP, so a client that only
    // resolves real names to the mock reaches it on the same port.
    let (scheme, authority) = ctx.route.origin.split_once("://").unwrap_or(("https", &ctx.route.origin));
    let instance = if host_name(authority) == BAP_HOST {
        format!("{scheme}://{org_host}{}/", port_suffix(authority))
    } else {
        format!("{}/dataverse/{org}/", ctx.route.origin)
    };
    Ok(json(
        StatusCode::OK,
        json!({
            "id": format!("/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{}", id),
            "type": "Microsoft.BusinessAppPlatform/scopes/environments",
            "location": "unitedstates",
            "name": id.to_string(),
            "properties": {
                "tenantId": tenant.to_string(),
                "azureRegion": "westus",
                "displayName": display_name,
                "environmentSku": "Sandbox",
                "isDefault": id.as_str().starts_with("Default-"),
                "linkedEnvironmentMetadata": {
                    "type": "Dynamics365Instance",
                    "resourceId": organization_id.to_string(),
                    "friendlyName": display_name,
                    "uniqueName": org,
                    "domainName": org,
                    "version": "9.2.25013.00000",
                    "instanceUrl": instance,
                    "instanceApiUrl": instance,
                    "instanceState": "Ready",
                }
            }
        }),
    ))
}
