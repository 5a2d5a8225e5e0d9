//! Bearer tokens on every emulated API (DECISIONS.md): signature, expiry, audience for the
//! surface, and that the issuing tenant exists in the request's sandbox. 401 with
//! `WWW-Authenticate: Bearer …` otherwise. Whether the principal may act on the environment
//! is a domain rule, checked later.

use super::{ApiError, RouteInfo, Surface};
use crate::domain::connection::Caller;
use crate::domain::ids::{AppId, PrincipalId, TenantId};
use crate::domain::world::World;
use crate::state::AppState;
use crate::tokens::{Claims, TokenError};
use axum::http::{HeaderMap, header};

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::Unauthorized { code: "InvalidAuthenticationToken", message: message.into() }
}

/// Whether `aud` is acceptable on the surface the request reached.
fn audience_ok(aud: &str, route: &RouteInfo, org: Option<&str>) -> bool {
    let aud = aud.trim_end_matches('/');
    match route.surface {
        Surface::PowerPlatform => aud.eq_ignore_ascii_case("https://api.powerplatform.com"),
        Surface::Runtime => {
            ["https://api.powerplatform.com", "https://apihub.azure.com"].iter().any(|a| aud.eq_ignore_ascii_case(a))
        }
        Surface::Bap => ["https://api.bap.microsoft.com", "https://service.powerapps.com"]
            .iter()
            .any(|a| aud.eq_ignore_ascii_case(a)),
        Surface::Dataverse => org.is_some_and(|org| {
            let Some(rest) = aud.strip_prefix("https://").or_else(|| aud.strip_prefix("http://")) else {
                return false;
            };
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            if path.is_empty() {
                host.split_once('.').is_some_and(|(label, dom)| {
                    label.eq_ignore_ascii_case(org) && dom.starts_with("crm") && dom.ends_with(".dynamics.com")
                })
            } else {
                path.strip_prefix("dataverse/").is_some_and(|o| o.eq_ignore_ascii_case(org))
            }
        }),
        Surface::Identity | Surface::Control | Surface::Unknown => false,
    }
}

/// Verifies the bearer token (no lock taken).
pub fn verify_bearer(
    app: &AppState,
    headers: &HeaderMap,
    route: &RouteInfo,
    org: Option<&str>,
) -> Result<Claims, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("The request has no Authorization header; send 'Authorization: Bearer {token}'."))?
        .to_str()
        .map_err(|_| unauthorized("The Authorization header is not readable text."))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("The Authorization header must use the Bearer scheme."))?
        .trim();
    let now = crate::domain::clock::wall_clock().timestamp();
    let claims = app.keys().verify_access_token(token, now).map_err(|e| match e {
        TokenError::Expired => unauthorized("The token is expired."),
        TokenError::WrongKind => unauthorized("The token is not an access token."),
        TokenError::Invalid => unauthorized("The token is malformed or was not issued by this mock."),
    })?;
    if !audience_ok(&claims.aud, route, org) {
        let expected = match route.surface {
            Surface::PowerPlatform => "https://api.powerplatform.com".to_owned(),
            Surface::Runtime => "https://api.powerplatform.com or https://apihub.azure.com".to_owned(),
            Surface::Bap => "https://api.bap.microsoft.com or https://service.powerapps.com".to_owned(),
            _ => format!(
                "the org URL the client used (https://{}.crm.dynamics.com or …/dataverse/{})",
                org.unwrap_or("{org}"),
                org.unwrap_or("{org}")
            ),
        };
        return Err(unauthorized(format!(
            "The token's audience '{}' is not valid here; expected {expected}.",
            claims.aud
        )));
    }
    Ok(claims)
}

/// The caller the claims stand for in this sandbox's world.
pub fn caller(world: &World, claims: &Claims) -> Result<Caller, ApiError> {
    let tenant = TenantId::parse(&claims.tid).ok().filter(|t| world.tenant(*t).is_some());
    let tenant =
        tenant.ok_or_else(|| unauthorized(format!("The token's tenant '{}' is not in this sandbox.", claims.tid)))?;
    let oid = PrincipalId::parse(&claims.oid).map_err(|_| unauthorized("The token has no valid oid."))?;
    let app_id = AppId::parse(&claims.appid).ok();
    world
        .caller(tenant, oid, app_id)
        .ok_or_else(|| unauthorized(format!("The token's principal '{}' is not in this sandbox.", claims.oid)))
}
