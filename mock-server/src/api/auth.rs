//! Bearer tokens on every emulated API (DECISIONS.md): a known `kid`, signature, `exp` and
//! `nbf`, the issuer's form, audience for the surface, the sandbox incarnation, and that the
//! issuing tenant exists in the request's sandbox. 401 with
//! `WWW-Authenticate: Bearer …` otherwise. Whether the principal may act on the environment
//! is a domain rule, checked later. A token's signature is verified once and remembered
//! (`tokens::VerifiedTokens`), with what its claims alone decide (issuer form, audience
//! parsed); everything else is checked on every request.

use super::{ApiError, RouteInfo, Surface};
use crate::domain::connection::Caller;
use crate::domain::ids::{AppId, PrincipalId, TenantId};
use crate::domain::world::World;
use crate::hosts::Audience;
use crate::state::AppState;
use crate::tokens::{CLOCK_SKEW_SECS, Claims, TokenError, VerifiedToken};
use axum::http::{HeaderMap, header};
use std::sync::Arc;

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::Unauthorized { code: "InvalidAuthenticationToken", message: message.into() }
}

/// Whether `aud` is acceptable on the surface the request reached. The port of a real host
/// is ignored, as when the token was issued.
fn audience_ok(audience: Option<&Audience>, route: &RouteInfo, org: Option<&str>) -> bool {
    let Some(audience) = audience else {
        return false;
    };
    match route.surface {
        Surface::PowerPlatform => *audience == Audience::PowerPlatform,
        Surface::Runtime => matches!(audience, Audience::PowerPlatform | Audience::ApiHub),
        Surface::Bap => matches!(audience, Audience::Bap | Audience::PowerApps),
        Surface::Dataverse => match (audience, org) {
            (Audience::Dataverse { org: named, .. }, Some(org)) => named.eq_ignore_ascii_case(org),
            _ => false,
        },
        Surface::Identity | Surface::Control | Surface::Unknown => false,
    }
}

/// A token carries the incarnation of the sandbox it was issued in: one of a sandbox that
/// is gone is refused, even when a sandbox of the same name (and so the same ids) exists again.
fn check_incarnation(app: &AppState, route: &RouteInfo, claims: &Claims) -> Result<(), ApiError> {
    if route.cell()?.incarnation() == claims.xms_mock_sbx {
        return Ok(());
    }
    match app.registry().all().into_iter().find(|sb| sb.incarnation() == claims.xms_mock_sbx) {
        Some(other) => Err(unauthorized(format!(
            "The token was issued in the sandbox '{}'; this request belongs to the sandbox '{}'.",
            other.name, route.sandbox
        ))),
        None => Err(unauthorized(
            "The token was issued for a sandbox that was deleted; get a new token from the sandbox's token endpoint.",
        )),
    }
}

/// Verifies the bearer token. Takes no sandbox lock.
pub fn verify_bearer(
    app: &AppState,
    headers: &HeaderMap,
    route: &RouteInfo,
    org: Option<&str>,
) -> Result<Arc<VerifiedToken>, ApiError> {
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
    let verified = app.keys().verify_access_token_cached(app.verified_tokens(), token, now).map_err(|e| match e {
        TokenError::Expired => unauthorized("The token is expired."),
        TokenError::WrongKind => unauthorized("The token is not an access token."),
        TokenError::Invalid => unauthorized("The token is malformed or was not issued by this mock."),
        TokenError::UnknownKey => unauthorized(
            "The token's signing key (kid) is missing or not one the mock publishes at /{tenant}/discovery/v2.0/keys.",
        ),
        TokenError::NotYetValid => unauthorized(format!(
            "The token is not valid yet: its nbf is more than {CLOCK_SKEW_SECS} seconds in the future."
        )),
    })?;
    let claims = &verified.claims;
    if !verified.issuer_ok {
        return Err(unauthorized(format!(
            "The token's issuer '{}' is not valid: expected '{{scheme}}://{{host[:port]}}/{}/v2.0' on an origin that serves the mock's identity endpoints.",
            claims.iss, claims.tid
        )));
    }
    if !audience_ok(verified.audience.as_ref(), route, org) {
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
    check_incarnation(app, route, claims)?;
    Ok(verified)
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
