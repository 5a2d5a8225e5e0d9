//! The identity surface: the token endpoint and the discovery documents standard clients
//! (MSAL, azure-identity) read. Handlers translate; `crate::identity` decides.

use super::extract::ApiPath;
use super::{ApiError, RouteInfo, json, no_store};
use crate::identity::{IssueContext, TokenRequest, grant_token, issuer};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use secrecy::SecretString;
use serde_json::json;
use std::collections::HashMap;

/// Routes of the identity surface (path forms; the real host routes here too).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(post_token))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(get_openid_configuration))
        .route("/{tenant}/discovery/v2.0/keys", get(get_keys))
        .route("/common/discovery/instance", get(get_instance_discovery))
        .route("/common/userrealm/{upn}", get(get_user_realm))
}

/// Reads the form, ignoring unknown fields; HTTP Basic carries client id and secret
/// (RFC 6749 2.3.1: both form-url-encoded inside).
fn token_request(headers: &HeaderMap, body: &[u8]) -> TokenRequest {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let mut form: HashMap<String, String> = HashMap::new();
    if is_form {
        for (k, v) in crate::journal::form_pairs(&String::from_utf8_lossy(body)) {
            form.entry(k).or_insert(v);
        }
    }
    let mut take = |k: &str| form.remove(k).filter(|v| !v.is_empty());
    let mut req = TokenRequest {
        grant_type: take("grant_type"),
        client_id: take("client_id"),
        client_secret: take("client_secret").map(SecretString::from),
        client_assertion_type: take("client_assertion_type"),
        client_assertion: take("client_assertion").map(SecretString::from),
        scope: take("scope"),
        username: take("username"),
        password: take("password").map(SecretString::from),
        refresh_token: take("refresh_token").map(SecretString::from),
        client_info: take("client_info").as_deref() == Some("1"),
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if let Some((id, secret)) = basic.as_deref().and_then(|s| s.split_once(':')) {
        let decode = |s: &str| crate::journal::form_pairs(&format!("v={s}")).pop().map(|(_, v)| v).unwrap_or_default();
        req.client_id = req.client_id.or(Some(decode(id)));
        if req.client_secret.is_none() {
            req.client_secret = Some(SecretString::from(decode(secret)));
        }
    }
    req
}

async fn post_token(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(tenant): ApiPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req = token_request(&headers, &body);
    let now_unix = crate::domain::clock::wall_clock().timestamp();
    let uti = app.next_token_id();
    let sandbox = route.cell()?;
    let grant = sandbox.apply(|st| {
        let ctx = IssueContext {
            origin: &route.origin,
            now_unix,
            lifetime_secs: st.settings.token_lifetime_secs,
            keys: app.keys(),
            uti,
            sandbox_incarnation: sandbox.incarnation(),
        };
        grant_token(&st.world, &tenant, &req, &ctx)
    })?;
    // Signed outside the sandbox's lock: RSA is the slowest thing a request does.
    Ok(no_store(axum::Json(grant.sign(app.keys())).into_response()))
}

async fn get_openid_configuration(
    Extension(route): Extension<RouteInfo>,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Response, ApiError> {
    let o = &route.origin;
    let (tid, iss) = if ["common", "organizations"].iter().any(|t| t.eq_ignore_ascii_case(&tenant)) {
        (tenant.to_ascii_lowercase(), format!("{o}/{{tenantid}}/v2.0"))
    } else {
        let id = route.cell()?.apply(|st| st.world.tenant_by_ref(&tenant).map(|t| t.id));
        let id = id.ok_or_else(|| crate::identity::IdentityError::TenantNotFound(tenant.clone()))?;
        (id.to_string(), issuer(o, id))
    };
    Ok(json(
        StatusCode::OK,
        json!({
            "token_endpoint": format!("{o}/{tid}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{o}/{tid}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": iss,
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{o}/oidc/userinfo"),
            "authorization_endpoint": format!("{o}/{tid}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{o}/{tid}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{o}/{tid}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{o}/{tid}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net"
        }),
    ))
}

async fn get_keys(State(app): State<AppState>) -> Response {
    json(StatusCode::OK, app.keys().jwks())
}

/// Instance discovery answers with the mock's own origin, so a client that does call it
/// (instance discovery on) is sent back to the mock.
async fn get_instance_discovery(
    Extension(route): Extension<RouteInfo>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let o = &route.origin;
    let tenant = q
        .get("authorization_endpoint")
        .and_then(|e| e.split('/').filter(|s| !s.is_empty()).nth(2).map(str::to_owned))
        .unwrap_or_else(|| "common".to_owned());
    let host = o.split_once("://").map_or(o.as_str(), |(_, h)| h).to_owned();
    let aliases = if host == "login.microsoftonline.com" {
        json!(["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"])
    } else {
        json!([host])
    };
    json(
        StatusCode::OK,
        json!({
            "tenant_discovery_endpoint": format!("{o}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [{ "preferred_network": host, "preferred_cache": host, "aliases": aliases }]
        }),
    )
}

async fn get_user_realm(
    Extension(route): Extension<RouteInfo>,
    ApiPath(upn): ApiPath<String>,
) -> Result<Response, ApiError> {
    let domain = route.cell()?.apply(|st| st.world.tenant_of_upn(&upn).map(|t| t.domain.clone()));
    let body = match domain {
        Some(domain) => json!({
            "ver": "1.0",
            "account_type": "Managed",
            "domain_name": domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline"
        }),
        None => {
            json!({ "ver": "1.0", "account_type": "Unknown", "cloud_instance_name": "microsoftonline.com" })
        }
    };
    Ok(json(StatusCode::OK, body))
}
