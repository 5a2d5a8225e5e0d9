//! The identity rules: who may get a token for what (client credentials with a secret or a
//! certificate assertion, the password grant, the refresh-token grant), and what the token
//! says. Plain Rust over a `World`; the HTTP handler in `api::identity` only translates.
//!
//! Error texts follow Entra ID's AADSTS messages (api-facts 2.1); their codes are the real ones.

use crate::domain::ids::{AppId, TenantId};
use crate::domain::world::{Tenant, World};
use crate::hosts::Audience;
use crate::tokens::{Claims, Keys};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// A token request as the form gave it. Unknown form fields were already ignored.
#[derive(Debug, Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `client_id` (or the Basic user name).
    pub client_id: Option<String>,
    /// `client_secret` (or the Basic password).
    pub client_secret: Option<SecretString>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// `client_assertion`.
    pub client_assertion: Option<SecretString>,
    /// `scope`.
    pub scope: Option<String>,
    /// `username` (password grant).
    pub username: Option<String>,
    /// `password` (password grant).
    pub password: Option<SecretString>,
    /// `refresh_token`.
    pub refresh_token: Option<SecretString>,
    /// `client_info=1`: MSAL asks for the `client_info` blob.
    pub client_info: bool,
}

/// What the token endpoint answers on success.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Granted scope.
    pub scope: String,
    /// Lifetime in seconds (a number, as MSAL expects).
    pub expires_in: u64,
    /// Same as `expires_in`.
    pub ext_expires_in: u64,
    /// The access token.
    pub access_token: String,
    /// Refresh token (user grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// ID token (when `openid` was asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// base64url `{"uid":…,"utid":…}` (when `client_info=1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_info: Option<String>,
}

/// A token request granted, before signing: what the answer will say. Signing is the slow
/// part (RSA), so it happens after the sandbox's lock is released ([`Grant::sign`]).
#[derive(Debug)]
pub struct Grant {
    scope: String,
    expires_in: u64,
    access: Claims,
    refresh: Option<Claims>,
    id: Option<Claims>,
    client_info: Option<String>,
}

impl Grant {
    /// Signs the tokens and makes the token endpoint's answer.
    pub fn sign(self, keys: &Keys) -> TokenResponse {
        TokenResponse {
            token_type: "Bearer",
            scope: self.scope,
            expires_in: self.expires_in,
            ext_expires_in: self.expires_in,
            access_token: keys.sign(&self.access),
            refresh_token: self.refresh.map(|c| keys.sign(&c)),
            id_token: self.id.map(|c| keys.sign(&c)),
            client_info: self.client_info,
        }
    }
}

/// Everything the rules need besides the world and the request.
#[derive(Debug)]
pub struct IssueContext<'a> {
    /// Origin the client called (`https://127.0.0.1:8443`): the issuer is built from it.
    pub origin: &'a str,
    /// Wall-clock Unix seconds (tokens use real time).
    pub now_unix: i64,
    /// Access-token lifetime in seconds.
    pub lifetime_secs: u64,
    /// Signing keys.
    pub keys: &'a Keys,
    /// A fresh unique token id.
    pub uti: String,
    /// The incarnation of the sandbox the token is issued in (claim `xms_mock_sbx`), so that
    /// its tokens die with it even when a sandbox of the same name is made again.
    pub sandbox_incarnation: &'a str,
}

/// An identity error: an AADSTS code and the OAuth `error` string (the api layer picks the HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// AADSTS90002.
    #[error(
        "AADSTS90002: Tenant '{0}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
    )]
    TenantNotFound(String),
    /// AADSTS50059.
    #[error(
        "AADSTS50059: No tenant-identifying information found in either the request or implied by any provided credentials."
    )]
    NoTenant,
    /// AADSTS900144.
    #[error("AADSTS900144: The request body must contain the following parameter: '{0}'.")]
    MissingParameter(&'static str),
    /// AADSTS70003.
    #[error("AADSTS70003: The app requested an unsupported grant type '{0}'.")]
    UnsupportedGrant(String),
    /// AADSTS700016.
    #[error(
        "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
    )]
    UnknownClient {
        /// Client id as sent.
        client_id: String,
        /// Tenant id or domain as addressed.
        tenant: String,
    },
    /// AADSTS7000218.
    #[error(
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
    )]
    MissingClientCredential,
    /// AADSTS7000215.
    #[error(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{0}'."
    )]
    InvalidClientSecret(String),
    /// AADSTS700027.
    #[error("AADSTS700027: Client assertion failed signature validation. {0}")]
    InvalidClientAssertion(&'static str),
    /// AADSTS70011.
    #[error(
        "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {0} is not valid."
    )]
    InvalidScope(String),
    /// AADSTS500011.
    #[error(
        "AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
    )]
    UnknownResource {
        /// Resource as asked.
        resource: String,
        /// Tenant.
        tenant: String,
    },
    /// AADSTS50034.
    #[error(
        "AADSTS50034: The user account {0} does not exist in the {1} directory. To sign into this application, the account must be added to the directory."
    )]
    UnknownUser(String, String),
    /// AADSTS50126.
    #[error("AADSTS50126: Error validating credentials due to invalid username or password.")]
    InvalidPassword,
    /// AADSTS9002313.
    #[error("AADSTS9002313: Invalid request. Request is malformed or invalid.")]
    InvalidRefreshToken,
    /// AADSTS700082 (mock reuses it for any expired refresh token).
    #[error("AADSTS700082: The refresh token has expired due to inactivity.")]
    ExpiredRefreshToken,
}

impl IdentityError {
    /// The numeric AADSTS code.
    pub fn aadsts(&self) -> u32 {
        match self {
            Self::TenantNotFound(_) => 90002,
            Self::NoTenant => 50059,
            Self::MissingParameter(_) => 900_144,
            Self::UnsupportedGrant(_) => 70003,
            Self::UnknownClient { .. } => 700_016,
            Self::MissingClientCredential => 7_000_218,
            Self::InvalidClientSecret(_) => 7_000_215,
            Self::InvalidClientAssertion(_) => 700_027,
            Self::InvalidScope(_) => 70011,
            Self::UnknownResource { .. } => 500_011,
            Self::UnknownUser(..) => 50034,
            Self::InvalidPassword => 50126,
            Self::InvalidRefreshToken => 9_002_313,
            Self::ExpiredRefreshToken => 700_082,
        }
    }

    /// The OAuth 2.0 `error` value.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::TenantNotFound(_) | Self::NoTenant | Self::MissingParameter(_) => "invalid_request",
            Self::UnsupportedGrant(_) => "unsupported_grant_type",
            Self::UnknownClient { .. } => "unauthorized_client",
            Self::MissingClientCredential | Self::InvalidClientSecret(_) | Self::InvalidClientAssertion(_) => {
                "invalid_client"
            }
            Self::InvalidScope(_) => "invalid_scope",
            Self::UnknownResource { .. } => "invalid_resource",
            Self::UnknownUser(..) | Self::InvalidPassword | Self::InvalidRefreshToken | Self::ExpiredRefreshToken => {
                "invalid_grant"
            }
        }
    }
}

/// Scopes that ask for sign-in artefacts, not for a resource.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

/// The issuer the mock writes into tokens and its OpenID configuration: the origin the
/// client called, so that issuer validation in MSAL and friends sees its own authority.
pub fn issuer(origin: &str, tenant: TenantId) -> String {
    format!("{origin}/{tenant}/v2.0")
}

/// The audience `resource` (no trailing slash) names in this world: a first-party API, an
/// org host, or the loopback Dataverse door `…/dataverse/{org}` on any origin. For a real
/// host the port is ignored (`https://api.powerplatform.com:8443` is the Power Platform API).
pub fn known_audience(world: &World, resource: &str) -> Option<Audience> {
    Audience::parse(resource).filter(|a| match a {
        Audience::Dataverse { org, .. } => world.environment_by_org(org).is_some(),
        _ => true,
    })
}

/// `(resource, permission, oidc scopes)` of a scope string.
type ParsedScope = (Option<String>, Option<String>, Vec<String>);

/// Splits a scope string into the resource it is for and the permission asked on it.
/// Returns `(resource, permission, oidc scopes)`.
fn parse_scope(scope: &str) -> Result<ParsedScope, IdentityError> {
    let mut resource: Option<String> = None;
    let mut permission = None;
    let mut oidc = Vec::new();
    for s in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&s) {
            oidc.push(s.to_owned());
            continue;
        }
        let Some((res, perm)) = s.rsplit_once('/') else {
            return Err(IdentityError::InvalidScope(s.to_owned()));
        };
        let res = res.trim_end_matches('/');
        if perm.is_empty() || res.is_empty() {
            return Err(IdentityError::InvalidScope(s.to_owned()));
        }
        match &resource {
            Some(r) if !r.eq_ignore_ascii_case(res) => {
                return Err(IdentityError::InvalidScope(scope.to_owned()));
            }
            _ => resource = Some(res.to_owned()),
        }
        permission = Some(perm.to_owned());
    }
    Ok((resource, permission, oidc))
}

fn resolve_tenant<'w>(world: &'w World, tenant_ref: &str) -> Result<Option<&'w Tenant>, IdentityError> {
    if ["common", "organizations"].iter().any(|t| t.eq_ignore_ascii_case(tenant_ref)) {
        return Ok(None);
    }
    world.tenant_by_ref(tenant_ref).map(Some).ok_or_else(|| IdentityError::TenantNotFound(tenant_ref.to_owned()))
}

fn required<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, IdentityError> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or(IdentityError::MissingParameter(name))
}

/// Handles one token request against `world` for the tenant named in the path, and signs.
pub fn issue_token(
    world: &World,
    tenant_ref: &str,
    req: &TokenRequest,
    ctx: &IssueContext<'_>,
) -> Result<TokenResponse, IdentityError> {
    grant_token(world, tenant_ref, req, ctx).map(|g| g.sign(ctx.keys))
}

/// Decides one token request against `world` for the tenant named in the path; nothing is
/// signed yet.
pub fn grant_token(
    world: &World,
    tenant_ref: &str,
    req: &TokenRequest,
    ctx: &IssueContext<'_>,
) -> Result<Grant, IdentityError> {
    let tenant = resolve_tenant(world, tenant_ref)?;
    let grant = required(&req.grant_type, "grant_type")?;
    match grant {
        "client_credentials" => client_credentials(world, tenant.ok_or(IdentityError::NoTenant)?, tenant_ref, req, ctx),
        "password" => password(world, tenant, tenant_ref, req, ctx),
        "refresh_token" => refresh(world, tenant, req, ctx),
        other => Err(IdentityError::UnsupportedGrant(other.chars().take(64).collect())),
    }
}

fn client_credentials(
    world: &World,
    tenant: &Tenant,
    tenant_ref: &str,
    req: &TokenRequest,
    ctx: &IssueContext<'_>,
) -> Result<Grant, IdentityError> {
    let client_id = required(&req.client_id, "client_id")?;
    let unknown = || IdentityError::UnknownClient { client_id: client_id.to_owned(), tenant: tenant_ref.to_owned() };
    let app_id = AppId::parse(client_id).map_err(|_| unknown())?;
    let sp = world.service_principal(tenant.id, app_id).ok_or_else(unknown)?;
    let azpacr = match (&req.client_secret, &req.client_assertion) {
        (Some(secret), _) => {
            let ok = sp.client_secret.as_ref().is_some_and(|s| s.expose_secret() == secret.expose_secret());
            if !ok {
                return Err(IdentityError::InvalidClientSecret(app_id.to_string()));
            }
            "1"
        }
        (None, Some(assertion)) => {
            if req.client_assertion_type.as_deref() != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return Err(IdentityError::MissingParameter("client_assertion_type"));
            }
            verify_client_assertion(sp, assertion.expose_secret(), ctx.now_unix)?;
            "2"
        }
        (None, None) => return Err(IdentityError::MissingClientCredential),
    };
    let scope = required(&req.scope, "scope")?;
    let (resource, permission, _) = parse_scope(scope)?;
    let resource = resource.ok_or_else(|| IdentityError::InvalidScope(scope.to_owned()))?;
    if permission.as_deref() != Some(".default") {
        return Err(IdentityError::InvalidScope(scope.to_owned()));
    }
    let Some(audience) = known_audience(world, &resource) else {
        return Err(IdentityError::UnknownResource { resource, tenant: tenant.id.to_string() });
    };
    let claims = Claims {
        aud: audience.uri().to_owned(),
        iss: issuer(ctx.origin, tenant.id),
        iat: ctx.now_unix,
        nbf: ctx.now_unix,
        exp: ctx.now_unix + ctx.lifetime_secs as i64,
        tid: tenant.id.to_string(),
        oid: sp.object_id.to_string(),
        sub: sp.object_id.to_string(),
        appid: app_id.to_string(),
        azp: app_id.to_string(),
        idtyp: "app".into(),
        roles: None,
        azpacr: Some(azpacr.into()),
        ver: "2.0".into(),
        uti: ctx.uti.clone(),
        mock_typ: "access".into(),
        xms_mock_sbx: ctx.sandbox_incarnation.to_owned(),
        ..Default::default()
    };
    Ok(Grant {
        scope: format!("{resource}/.default"),
        expires_in: ctx.lifetime_secs,
        access: claims,
        refresh: None,
        id: None,
        client_info: None,
    })
}

/// Checks a certificate client assertion: signed (RS256 or PS256) by the key of the
/// certificate registered for `sp`, named by `x5t` or `x5t#S256`, addressed to this client.
fn verify_client_assertion(
    sp: &crate::domain::world::ServicePrincipal,
    assertion: &str,
    now_unix: i64,
) -> Result<(), IdentityError> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let cert = sp
        .certificate
        .as_ref()
        .ok_or(IdentityError::InvalidClientAssertion("The application has no certificate credential."))?;
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| IdentityError::InvalidClientAssertion("The assertion is not a well-formed JWT."))?;
    let thumb_ok = header
        .x5t
        .as_deref()
        .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok())
        .is_some_and(|t| t == cert.thumbprint_sha1)
        || header
            .x5t_s256
            .as_deref()
            .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok())
            .is_some_and(|t| t == cert.thumbprint_sha256);
    if !thumb_ok {
        return Err(IdentityError::InvalidClientAssertion(
            "The key used to sign the assertion was not found among the application's certificates (x5t).",
        ));
    }
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(IdentityError::InvalidClientAssertion("The assertion must be signed with RS256 or PS256."));
    }
    let mut v = Validation::new(header.alg);
    v.validate_aud = false;
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<serde_json::Value>(assertion, &DecodingKey::from_rsa_der(&cert.rsa_public_key_der), &v)
            .map_err(|_| IdentityError::InvalidClientAssertion("The signature does not match the certificate."))?;
    let c = &data.claims;
    let app = sp.app_id.to_string();
    let names_client = |k: &str| c.get(k).and_then(|v| v.as_str()).is_some_and(|v| v.eq_ignore_ascii_case(&app));
    if !names_client("iss") || !names_client("sub") {
        return Err(IdentityError::InvalidClientAssertion("The assertion's iss and sub must be the client id."));
    }
    if c.get("exp").and_then(serde_json::Value::as_i64).is_none_or(|exp| exp <= now_unix) {
        return Err(IdentityError::InvalidClientAssertion("The assertion is expired or has no exp."));
    }
    Ok(())
}

fn user_response(
    world: &World,
    user: &crate::domain::world::User,
    client_id: &str,
    scope: &str,
    ctx: &IssueContext<'_>,
) -> Result<Grant, IdentityError> {
    let (resource, permission, oidc) = parse_scope(scope)?;
    let resource = resource.unwrap_or_else(|| "https://graph.microsoft.com".to_owned());
    let Some(audience) = known_audience(world, &resource) else {
        return Err(IdentityError::UnknownResource { resource, tenant: user.tenant.to_string() });
    };
    let permission = permission.unwrap_or_else(|| "User.Read".to_owned());
    let scp = if permission == ".default" { "user_impersonation".to_owned() } else { permission.clone() };
    let base = Claims {
        iss: issuer(ctx.origin, user.tenant),
        iat: ctx.now_unix,
        nbf: ctx.now_unix,
        exp: ctx.now_unix + ctx.lifetime_secs as i64,
        tid: user.tenant.to_string(),
        oid: user.object_id.to_string(),
        sub: user.object_id.to_string(),
        ver: "2.0".into(),
        uti: ctx.uti.clone(),
        xms_mock_sbx: ctx.sandbox_incarnation.to_owned(),
        ..Default::default()
    };
    let access = Claims {
        aud: audience.uri().to_owned(),
        appid: client_id.to_owned(),
        azp: client_id.to_owned(),
        idtyp: "user".into(),
        upn: Some(user.upn.clone()),
        name: Some(user.display_name.clone()),
        scp: Some(scp),
        azpacr: Some("0".into()),
        mock_typ: "access".into(),
        ..base.clone()
    };
    let granted = format!("{resource}/{permission}");
    let refresh = Claims {
        aud: client_id.to_owned(),
        // Refresh tokens live 90 days, like Entra's default for inactive tokens.
        exp: ctx.now_unix + 90 * 24 * 3600,
        mock_typ: "refresh".into(),
        mock_scope: Some(granted.clone()),
        ..base.clone()
    };
    let id = oidc.iter().any(|s| s == "openid").then(|| Claims {
        aud: client_id.to_owned(),
        name: Some(user.display_name.clone()),
        preferred_username: Some(user.upn.clone()),
        mock_typ: "id".into(),
        ..base.clone()
    });
    let mut scope_out = vec![granted];
    scope_out.extend(oidc.iter().filter(|s| *s != "offline_access").cloned());
    Ok(Grant {
        scope: scope_out.join(" "),
        expires_in: ctx.lifetime_secs,
        access,
        refresh: Some(refresh),
        id,
        client_info: None,
    })
}

fn client_info(user: &crate::domain::world::User) -> String {
    let json = serde_json::json!({ "uid": user.object_id.to_string(), "utid": user.tenant.to_string() });
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// A client allowed to use the password grant in `tenant`: a public client, or a service
/// principal of that tenant authenticating with its secret.
fn check_user_grant_client(world: &World, tenant: &Tenant, req: &TokenRequest) -> Result<String, IdentityError> {
    let client_id = required(&req.client_id, "client_id")?;
    let unknown = || IdentityError::UnknownClient { client_id: client_id.to_owned(), tenant: tenant.id.to_string() };
    let app_id = AppId::parse(client_id).map_err(|_| unknown())?;
    if world.is_public_client(app_id) {
        return Ok(app_id.to_string());
    }
    let sp = world.service_principal(tenant.id, app_id).ok_or_else(unknown)?;
    match &req.client_secret {
        Some(secret) if sp.client_secret.as_ref().is_some_and(|s| s.expose_secret() == secret.expose_secret()) => {
            Ok(app_id.to_string())
        }
        Some(_) => Err(IdentityError::InvalidClientSecret(app_id.to_string())),
        None => Err(IdentityError::MissingClientCredential),
    }
}

fn password(
    world: &World,
    tenant: Option<&Tenant>,
    tenant_ref: &str,
    req: &TokenRequest,
    ctx: &IssueContext<'_>,
) -> Result<Grant, IdentityError> {
    let username = required(&req.username, "username")?;
    let password = req.password.as_ref().ok_or(IdentityError::MissingParameter("password"))?;
    let scope = required(&req.scope, "scope")?;
    let tenant = match tenant {
        Some(t) => t,
        None => world
            .tenant_of_upn(username)
            .ok_or_else(|| IdentityError::UnknownUser(username.to_owned(), tenant_ref.to_owned()))?,
    };
    let client_id = check_user_grant_client(world, tenant, req)?;
    let user = world
        .user_by_upn(tenant.id, username)
        .ok_or_else(|| IdentityError::UnknownUser(username.to_owned(), tenant.id.to_string()))?;
    if user.password.expose_secret() != password.expose_secret() {
        return Err(IdentityError::InvalidPassword);
    }
    let mut resp = user_response(world, user, &client_id, scope, ctx)?;
    if req.client_info {
        resp.client_info = Some(client_info(user));
    }
    Ok(resp)
}

fn refresh(
    world: &World,
    tenant: Option<&Tenant>,
    req: &TokenRequest,
    ctx: &IssueContext<'_>,
) -> Result<Grant, IdentityError> {
    let token = req.refresh_token.as_ref().ok_or(IdentityError::MissingParameter("refresh_token"))?;
    let client_id = required(&req.client_id, "client_id")?;
    let claims = ctx.keys.verify_any(token.expose_secret(), ctx.now_unix).map_err(|e| match e {
        crate::tokens::TokenError::Expired => IdentityError::ExpiredRefreshToken,
        _ => IdentityError::InvalidRefreshToken,
    })?;
    // A refresh token of a deleted sandbox is dead, even when a sandbox of the same name
    // (same ids) exists again.
    if claims.mock_typ != "refresh"
        || !claims.aud.eq_ignore_ascii_case(client_id)
        || claims.xms_mock_sbx != ctx.sandbox_incarnation
    {
        return Err(IdentityError::InvalidRefreshToken);
    }
    let user = crate::domain::ids::PrincipalId::parse(&claims.oid)
        .ok()
        .and_then(|id| world.user(id))
        .ok_or(IdentityError::InvalidRefreshToken)?;
    if tenant.is_some_and(|t| t.id != user.tenant) {
        return Err(IdentityError::InvalidRefreshToken);
    }
    let scope = req.scope.clone().filter(|s| !s.is_empty()).or(claims.mock_scope).unwrap_or_default();
    let mut resp = user_response(world, user, client_id, &scope, ctx)?;
    if req.client_info {
        resp.client_info = Some(client_info(user));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::from_fixture("default", &fixtures::default_world()).unwrap()
    }

    fn ctx(keys: &Keys) -> IssueContext<'_> {
        IssueContext {
            origin: "https://127.0.0.1:1",
            now_unix: 1_000,
            lifetime_secs: 3599,
            keys,
            uti: "u1".into(),
            sandbox_incarnation: "sbx-1",
        }
    }

    fn cc(secret: &str, scope: &str) -> TokenRequest {
        TokenRequest {
            grant_type: Some("client_credentials".into()),
            client_id: Some("71fb83d4-8950-48e6-8251-52e4b19068c8".into()),
            client_secret: Some(SecretString::from(secret.to_owned())),
            scope: Some(scope.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_service_principal_gets_an_app_token_for_the_power_platform_api() {
        let keys = Keys::fixed_test_key();
        let w = world();
        let r = issue_token(
            &w,
            "contoso.onmicrosoft.com",
            &cc("mock-pipeline-secret~0001", "https://api.powerplatform.com/.default"),
            &ctx(&keys),
        )
        .unwrap();
        let c = keys.verify_access_token(&r.access_token, 1_001).unwrap();
        assert_eq!(c.aud, "https://api.powerplatform.com");
        assert_eq!(c.idtyp, "app");
        assert_eq!(c.tid, "c7263f1a-afcd-4e8a-a7ce-66b19698caaa");
        assert_eq!(c.iss, "https://127.0.0.1:1/c7263f1a-afcd-4e8a-a7ce-66b19698caaa/v2.0");
        assert_eq!(r.expires_in, 3599);
    }

    #[test]
    fn a_wrong_secret_is_invalid_client_with_aadsts7000215() {
        let keys = Keys::fixed_test_key();
        let e = issue_token(
            &world(),
            "contoso.onmicrosoft.com",
            &cc("nope", "https://api.powerplatform.com/.default"),
            &ctx(&keys),
        )
        .unwrap_err();
        assert_eq!((e.aadsts(), e.oauth_error()), (7_000_215, "invalid_client"));
    }

    #[test]
    fn a_service_principal_of_another_tenant_is_an_unknown_client() {
        let keys = Keys::fixed_test_key();
        let e = issue_token(
            &world(),
            "fabrikam.onmicrosoft.com",
            &cc("mock-pipeline-secret~0001", "https://api.powerplatform.com/.default"),
            &ctx(&keys),
        )
        .unwrap_err();
        assert_eq!(e.aadsts(), 700_016);
    }

    #[test]
    fn scopes_must_name_one_known_resource_with_dot_default() {
        let keys = Keys::fixed_test_key();
        let w = world();
        let e = |scope: &str| {
            issue_token(&w, "contoso.onmicrosoft.com", &cc("mock-pipeline-secret~0001", scope), &ctx(&keys))
                .unwrap_err()
                .aadsts()
        };
        assert_eq!(e("https://api.powerplatform.com/user_impersonation"), 70011);
        assert_eq!(e("https://api.powerplatform.com/.default https://api.bap.microsoft.com/.default"), 70011);
        assert_eq!(e("https://unknown.example/.default"), 500_011);
        let ok = issue_token(
            &w,
            "contoso.onmicrosoft.com",
            &cc("mock-pipeline-secret~0001", "https://contosodev.crm.dynamics.com//.default"),
            &ctx(&keys),
        )
        .unwrap();
        assert_eq!(ok.scope, "https://contosodev.crm.dynamics.com/.default");
        let loopback = issue_token(
            &w,
            "contoso.onmicrosoft.com",
            &cc("mock-pipeline-secret~0001", "https://127.0.0.1:9/dataverse/contosodev/.default"),
            &ctx(&keys),
        );
        assert!(loopback.is_ok());
    }

    #[test]
    fn a_scope_whose_origin_carries_a_port_names_that_hosts_audience() {
        let keys = Keys::fixed_test_key();
        let w = world();
        for (scope, aud) in [
            ("https://api.powerplatform.com:8443/.default", "https://api.powerplatform.com"),
            ("https://contosodev.crm.dynamics.com:8443/.default", "https://contosodev.crm.dynamics.com"),
            ("https://127.0.0.1:8443/dataverse/contosodev/.default", "https://127.0.0.1:8443/dataverse/contosodev"),
        ] {
            let r = issue_token(&w, "contoso.onmicrosoft.com", &cc("mock-pipeline-secret~0001", scope), &ctx(&keys))
                .unwrap_or_else(|e| panic!("{scope}: {e}"));
            assert_eq!(keys.verify_access_token(&r.access_token, 1_001).unwrap().aud, aud);
            assert_eq!(r.scope, scope, "the scope granted is the one asked, so the client's cache finds it");
        }
        let e = issue_token(
            &w,
            "contoso.onmicrosoft.com",
            &cc("mock-pipeline-secret~0001", "https://nowhere.crm.dynamics.com:8443/.default"),
            &ctx(&keys),
        )
        .unwrap_err();
        assert_eq!(e.aadsts(), 500_011);
    }

    #[test]
    fn a_refresh_token_of_another_sandbox_incarnation_is_refused() {
        let keys = Keys::fixed_test_key();
        let w = world();
        let req = TokenRequest {
            grant_type: Some("password".into()),
            client_id: Some("04b07795-8ddb-461a-bbee-02f9e1bf7b46".into()),
            username: Some("megan@contoso.onmicrosoft.com".into()),
            password: Some(SecretString::from("Megan-Test-Passw0rd!".to_owned())),
            scope: Some("https://api.powerplatform.com/.default offline_access".into()),
            ..Default::default()
        };
        let r = issue_token(&w, "organizations", &req, &ctx(&keys)).unwrap();
        assert_eq!(keys.verify_access_token(&r.access_token, 1_001).unwrap().xms_mock_sbx, "sbx-1");
        let again = TokenRequest {
            grant_type: Some("refresh_token".into()),
            client_id: req.client_id.clone(),
            refresh_token: r.refresh_token.clone().map(SecretString::from),
            ..Default::default()
        };
        let reborn = IssueContext { sandbox_incarnation: "sbx-2", ..ctx(&keys) };
        assert_eq!(issue_token(&w, "organizations", &again, &reborn).unwrap_err().aadsts(), 9_002_313);
    }

    #[test]
    fn the_password_grant_returns_id_token_client_info_and_a_working_refresh_token() {
        let keys = Keys::fixed_test_key();
        let w = world();
        let req = TokenRequest {
            grant_type: Some("password".into()),
            client_id: Some("04b07795-8ddb-461a-bbee-02f9e1bf7b46".into()),
            username: Some("megan@contoso.onmicrosoft.com".into()),
            password: Some(SecretString::from("Megan-Test-Passw0rd!".to_owned())),
            scope: Some("https://api.powerplatform.com/.default openid profile offline_access".into()),
            client_info: true,
            ..Default::default()
        };
        let r = issue_token(&w, "organizations", &req, &ctx(&keys)).unwrap();
        assert!(r.id_token.is_some() && r.client_info.is_some());
        let c = keys.verify_access_token(&r.access_token, 1_001).unwrap();
        assert_eq!((c.idtyp.as_str(), c.upn.as_deref()), ("user", Some("megan@contoso.onmicrosoft.com")));
        let again = TokenRequest {
            grant_type: Some("refresh_token".into()),
            client_id: req.client_id.clone(),
            refresh_token: r.refresh_token.clone().map(SecretString::from),
            ..Default::default()
        };
        let r2 = issue_token(&w, "contoso.onmicrosoft.com", &again, &ctx(&keys)).unwrap();
        assert_eq!(keys.verify_access_token(&r2.access_token, 1_001).unwrap().aud, "https://api.powerplatform.com");
        let wrong = TokenRequest { password: Some(SecretString::from("bad".to_owned())), ..req };
        assert_eq!(issue_token(&w, "organizations", &wrong, &ctx(&keys)).unwrap_err().aadsts(), 50126);
    }

    #[test]
    fn a_missing_grant_type_and_an_unknown_grant_are_named() {
        let keys = Keys::fixed_test_key();
        let w = world();
        let e = issue_token(&w, "contoso.onmicrosoft.com", &TokenRequest::default(), &ctx(&keys)).unwrap_err();
        assert_eq!(e.to_string(), "AADSTS900144: The request body must contain the following parameter: 'grant_type'.");
        let r = TokenRequest { grant_type: Some("implicit".into()), ..Default::default() };
        assert_eq!(issue_token(&w, "contoso.onmicrosoft.com", &r, &ctx(&keys)).unwrap_err().aadsts(), 70003);
        assert_eq!(issue_token(&w, "nowhere.example", &r, &ctx(&keys)).unwrap_err().aadsts(), 90002);
    }
}
