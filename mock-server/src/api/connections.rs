//! The Power Platform API connections endpoints (api-facts 3.1) on both doors: the
//! environment host (rewritten by the pipeline to the path form) and
//! `/connectivity/environments/{environmentId}/…`. A loopback call without an environment
//! takes it from `$filter=environment eq '…'`, then the body, then the sandbox's only
//! environment (DECISIONS.md).

use super::extract::{ApiPath, json_body};
use super::{ApiError, RequestContext, RouteInfo, json};
use crate::domain::clock::format_timestamp;
use crate::domain::connection::{
    Caller, Connection, ConnectionId, ConnectionStatus, Login, ParameterSet, PutConnection, PutOutcome, RunOwner,
};
use crate::domain::connection_share::{PermissionChange, PermissionPut};
use crate::domain::ids::{AppId, CredentialId, EnvironmentId, MachineGroupId};
use crate::domain::world::{PrincipalKind, World};
use crate::state::AppState;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// Routes of the connections API.
pub fn router() -> Router<AppState> {
    let one = get(get_connection).put(put_connection).delete(delete_connection);
    let env_one = "/connectivity/environments/{env}/connectors/{connector}/connections/{id}";
    let one_path = "/connectivity/connectors/{connector}/connections/{id}";
    Router::new()
        .route(&format!("{env_one}/permissions"), get(get_permissions))
        .route(&format!("{env_one}/modifyPermissions"), post(modify_permissions))
        .route(&format!("{one_path}/permissions"), get(get_permissions))
        .route(&format!("{one_path}/modifyPermissions"), post(modify_permissions))
        .route(env_one, one.clone())
        .route("/connectivity/environments/{env}/connectors/{connector}/connections", get(list_connections))
        .route("/connectivity/environments/{env}/connections", get(list_connections))
        .route(one_path, one)
        .route("/connectivity/connectors/{connector}/connections", get(list_connections))
        .route("/connectivity/connections", get(list_connections))
}

/// `api-version` must be there: `1` or a date form (`2022-03-01`, `…-preview`).
pub fn check_api_version(query: &str) -> Result<(), ApiError> {
    let v = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "api-version").map(|(_, v)| v);
    let v = v.as_deref().unwrap_or("");
    if v.is_empty() {
        return Err(ApiError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    }
    let is_date = || {
        let date = v.strip_suffix("-preview").unwrap_or(v);
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
    };
    if v == "1" || is_date() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "InvalidApiVersionParameter",
            format!("The api-version '{v}' is not supported. Use '1' or a date form such as '2022-03-01'."),
        ))
    }
}

/// The environment of a call: the door's, else `$filter`, else the body's, else the only one.
pub(crate) fn resolve_environment(
    route: &RouteInfo,
    path: &HashMap<String, String>,
    body_env: Option<&str>,
    world: &World,
) -> Result<EnvironmentId, ApiError> {
    let named = path.get("env").map(String::as_str).or(route.environment.as_deref()).or(body_env);
    let bad = |v: &str| {
        ApiError::bad_request(
            "InvalidEnvironmentId",
            format!("'{v}' is not an environment id (a GUID, optionally prefixed 'Default-')."),
        )
    };
    match named {
        Some(v) => EnvironmentId::parse(v).map_err(|_| bad(v)),
        None => match world.environments.as_slice() {
            [only] => Ok(only.id.clone()),
            _ => Err(ApiError::bad_request(
                "EnvironmentNotSpecified",
                "No environment named: call the environment host, or /connectivity/environments/{environmentId}/…, or add $filter=environment eq '{environmentId}', or give properties.environment.name in the body.",
            )),
        },
    }
}

pub(crate) fn connection_id(path: &HashMap<String, String>) -> Result<ConnectionId, ApiError> {
    let raw = path.get("id").map(String::as_str).unwrap_or("");
    ConnectionId::parse(raw).map_err(|_| {
        ApiError::bad_request(
            "InvalidConnectionId",
            format!(
                "The connection id '{}' is not a valid GUID (hyphenated or 32 hex digits).",
                raw.chars().take(80).collect::<String>()
            ),
        )
    })
}

#[derive(Debug, Deserialize)]
struct PutBody {
    properties: PutProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutProperties {
    #[serde(default)]
    environment: Option<EnvironmentRef>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    connection_parameters_set: Option<ParameterSetBody>,
    #[serde(default)]
    credential_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EnvironmentRef {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ParameterSetBody {
    name: String,
    #[serde(default)]
    values: BTreeMap<String, Value>,
}

/// Hidden parameters the portal fills in (api-facts 3.2); accepted and ignored.
const HIDDEN: &[&str] = &[
    "environment",
    "xrmInstanceUri",
    "agentPort",
    "connectionType",
    "encryptedCredentials",
    "primaryEncryptingKeyId",
    "secondaryEncryptedCredentials",
    "secondaryEncryptingKeyId",
];

const RUN_OWNER_ID: &str = "tokenRunOwnerCert:clientId";
const RUN_OWNER_CERT: &str = "tokenRunOwnerCert:clientCertificateSecret";

fn invalid(key: &str, what: &str) -> ApiError {
    ApiError::bad_request("InvalidConnectionParameter", format!("The parameter '{key}' must be {what}."))
}

/// A string parameter `{"value": "…"}`.
fn string_value(set: &str, values: &BTreeMap<String, Value>, key: &str) -> Result<String, ApiError> {
    let v = values.get(key).ok_or_else(|| {
        ApiError::bad_request(
            "MissingConnectionParameter",
            format!(
                "The parameter '{key}' is required by the parameter set '{set}': give \"{key}\": {{\"value\": \"…\"}}."
            ),
        )
    })?;
    v.get("value")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid(key, "an object {\"value\": \"…\"} holding a string"))
}

/// Every value key must be one the set knows, so a typo is named rather than ignored.
fn known_keys(set: &str, values: &BTreeMap<String, Value>, own: &[&str]) -> Result<(), ApiError> {
    for k in values.keys() {
        if !own.contains(&k.as_str()) && !HIDDEN.contains(&k.as_str()) {
            if set == "passwordlessAttended" && k.starts_with("tokenRunOwnerCert:") {
                return Err(ApiError::Domain(crate::domain::Error::SignInConnectionRunOwner));
            }
            return Err(ApiError::bad_request(
                "UnknownConnectionParameter",
                format!(
                    "The parameter set '{set}' has no parameter '{}'. Its parameters: {}.",
                    k.chars().take(80).collect::<String>(),
                    own.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn target(set: &str, values: &BTreeMap<String, Value>) -> Result<MachineGroupId, ApiError> {
    let target = string_value(set, values, "targetId")?;
    MachineGroupId::parse(&target).map_err(|_| {
        ApiError::bad_request(
            "InvalidConnectionParameter",
            format!(
                "The parameter 'targetId' must be a machine group id (a GUID); got '{}'.",
                target.chars().take(80).collect::<String>()
            ),
        )
    })
}

/// The Windows login: from the body, or from the credential `properties.credentialId` names.
fn login(set: &str, values: &BTreeMap<String, Value>, credential: Option<&str>) -> Result<Login, ApiError> {
    let username = string_value(set, values, "username")?;
    let password = string_value(set, values, "password")?;
    match credential {
        None => Ok(Login::Password { username, password: SecretString::from(password) }),
        Some(c) => {
            let credential = CredentialId::parse(c).map_err(|_| {
                ApiError::bad_request(
                    "InvalidConnectionParameter",
                    format!(
                        "properties.credentialId must be a credential id (a GUID); got '{}'.",
                        c.chars().take(80).collect::<String>()
                    ),
                )
            })?;
            Ok(Login::Credential { credential, username, password })
        }
    }
}

/// `tokenRunOwnerCert:clientId` and `tokenRunOwnerCert:clientCertificateSecret`
/// (`{"value": {"pfx": "<base64>", "password": "…"}}`).
fn run_owner(values: &BTreeMap<String, Value>) -> Result<RunOwner, ApiError> {
    let id = string_value("azureRelayRunOwner", values, RUN_OWNER_ID)?;
    let app_id =
        AppId::parse(&id).map_err(|_| invalid(RUN_OWNER_ID, "the run owner's application (client) id, a GUID"))?;
    let cert = values.get(RUN_OWNER_CERT).ok_or_else(|| {
        ApiError::bad_request(
            "MissingConnectionParameter",
            format!(
                "The parameter '{RUN_OWNER_CERT}' is required by the parameter set 'azureRelayRunOwner': give {{\"value\": {{\"pfx\": \"<base64 of the .pfx>\", \"password\": \"…\"}}}}."
            ),
        )
    })?;
    let shape = "an object {\"value\": {\"pfx\": \"<base64 of the .pfx>\", \"password\": \"…\"}}";
    let value = cert.get("value").filter(|v| v.is_object()).ok_or_else(|| invalid(RUN_OWNER_CERT, shape))?;
    let pfx = value.get("pfx").and_then(Value::as_str).ok_or_else(|| invalid(RUN_OWNER_CERT, shape))?;
    if !matches!(value.get("password"), None | Some(Value::String(_))) {
        return Err(invalid(RUN_OWNER_CERT, shape));
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(pfx.trim()).unwrap_or_default();
    if decoded.is_empty() {
        return Err(invalid(RUN_OWNER_CERT, "a certificate: its 'pfx' must be the base64 of a .pfx file"));
    }
    Ok(RunOwner { app_id, pfx: SecretString::from(pfx.to_owned()) })
}

fn parameters(set: Option<ParameterSetBody>, credential: Option<&str>) -> Result<ParameterSet, ApiError> {
    let set = set.ok_or_else(|| {
        ApiError::bad_request(
            "MissingConnectionParameter",
            "A shared_uiflow connection needs properties.connectionParametersSet (for example {\"name\": \"azureRelay\", \"values\": {…}}).",
        )
    })?;
    let v = &set.values;
    match set.name.as_str() {
        "azureRelay" => {
            known_keys("azureRelay", v, &["targetId", "username", "password"])?;
            Ok(ParameterSet::AzureRelay { login: login("azureRelay", v, credential)?, target: target("azureRelay", v)? })
        }
        "azureRelayRunOwner" => {
            known_keys("azureRelayRunOwner", v, &["targetId", "username", "password", RUN_OWNER_ID, RUN_OWNER_CERT])?;
            Ok(ParameterSet::AzureRelayRunOwner {
                login: login("azureRelayRunOwner", v, credential)?,
                target: target("azureRelayRunOwner", v)?,
                run_owner: run_owner(v)?,
            })
        }
        "passwordlessAttended" => {
            known_keys("passwordlessAttended", v, &["targetId", "token"])?;
            if credential.is_some() {
                return Err(ApiError::bad_request(
                    "UnknownConnectionParameter",
                    "properties.credentialId does not apply to passwordlessAttended: connect with sign-in uses the signed-in user, not a credential.",
                ));
            }
            Ok(ParameterSet::PasswordlessAttended { target: target("passwordlessAttended", v)? })
        }
        "onPremisesDataGateway" => Err(ApiError::NotImplemented(
            "The parameter set 'onPremisesDataGateway' (deprecated) is not emulated by the mock: gateways are out of its scope. Use azureRelay, azureRelayRunOwner or passwordlessAttended.".into(),
        )),
        other => Err(ApiError::bad_request(
            "InvalidConnectionParameterSet",
            format!(
                "'{}' is not a parameter set of shared_uiflow. Known sets: azureRelay, azureRelayRunOwner, passwordlessAttended, onPremisesDataGateway.",
                other.chars().take(80).collect::<String>()
            ),
        )),
    }
}

/// A connection's owner as the connections API shows principals (`createdBy`, the owner's permission).
/// A connection's owner or creator, keys in alphabetical order (as `owner_json` writes them);
/// the creator also shows `userPrincipalName`.
struct OwnerJson<'a> {
    who: &'a Caller,
    with_upn: bool,
}

impl Serialize for OwnerJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let who = self.who;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("displayName", &who.display_name)?;
        if let Some(upn) = &who.upn {
            m.serialize_entry("email", upn)?;
        }
        m.serialize_entry("id", &Fmt(format_args!("{}", who.principal)))?;
        m.serialize_entry("tenantId", &Fmt(format_args!("{}", who.tenant)))?;
        m.serialize_entry("type", principal_type(who.kind))?;
        if let (true, Some(upn)) = (self.with_upn, &who.upn) {
            m.serialize_entry("userPrincipalName", upn)?;
        }
        m.end()
    }
}

fn principal_type(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::ServicePrincipal => "ServicePrincipal",
    }
}

fn owner_json(who: &Caller) -> Value {
    let mut v = json!({
        "id": who.principal.to_string(),
        "displayName": who.display_name,
        "type": principal_type(who.kind),
        "tenantId": who.tenant.to_string(),
    });
    if let Some(upn) = &who.upn {
        v["email"] = json!(upn);
    }
    v
}

/// The connection resource (api-facts 3.3), with its status as the world stands now. Never a
/// secret: `username`, `targetId` and the run owner's client id only. Written straight from
/// the stored connection while the world is at hand, with no intermediate strings or `Value`
/// tree; members come in alphabetical order, the order a `Value`'s map writes them in, which
/// the answers have always had.
struct ConnectionJson<'a> {
    c: &'a Connection,
    status: ConnectionStatus,
    origin: &'a str,
}

fn connection_json<'a>(world: &World, c: &'a Connection, origin: &'a str) -> ConnectionJson<'a> {
    ConnectionJson { c, status: world.status(c), origin }
}

/// Text written as it is formatted, escaped on the way.
struct Fmt<'a>(std::fmt::Arguments<'a>);

impl Serialize for Fmt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `{"value": …}`, how a connection parameter is shown.
struct ValueOf<T>(T);

impl<T: std::fmt::Display> Serialize for ValueOf<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Value", 1)?;
        m.serialize_field("value", &Fmt(format_args!("{}", self.0)))?;
        m.end()
    }
}

impl Serialize for ConnectionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.c;
        let name = c.id.as_written();
        let mut m = s.serialize_struct("Connection", 4)?;
        m.serialize_field(
            "id",
            &Fmt(format_args!("/providers/Microsoft.PowerApps/apis/{}/connections/{name}", c.connector)),
        )?;
        m.serialize_field("name", &Fmt(format_args!("{name}")))?;
        m.serialize_field("properties", &PropertiesJson(self))?;
        m.serialize_field("type", "Microsoft.PowerApps/apis/connections")?;
        m.end()
    }
}

struct PropertiesJson<'a, 'b>(&'b ConnectionJson<'a>);

impl Serialize for PropertiesJson<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ConnectionJson { c, status, origin } = self.0;
        let name = c.id.as_written();
        let runtime = format_args!("{origin}/apim/uiflow/{}/{name}", c.environment);
        let mut m = s.serialize_struct("ConnectionProperties", 15)?;
        m.serialize_field("allowSharing", &c.parameters.run_owner().is_some())?;
        m.serialize_field("apiId", &Fmt(format_args!("/providers/Microsoft.PowerApps/apis/{}", c.connector)))?;
        m.serialize_field("connectionParametersSet", &ParameterSetJson(c))?;
        m.serialize_field("connectionRuntimeUrl", &Fmt(runtime))?;
        m.serialize_field("createdBy", &OwnerJson { who: &c.created_by, with_upn: true })?;
        m.serialize_field("createdTime", &format_timestamp(c.created_time))?;
        if let Some(id) = c.parameters.login().and_then(Login::credential) {
            m.serialize_field("credentialId", &Fmt(format_args!("{id}")))?;
        }
        m.serialize_field("displayName", &c.display_name)?;
        m.serialize_field("environment", &EnvironmentJson(&c.environment))?;
        m.serialize_field(
            "iconUri",
            "https://connectoricons-prod.azureedge.net/releases/v1.0.1700/1.0.1700.3800/uiflow/icon.png",
        )?;
        m.serialize_field("keywordsRemaining", &0)?;
        m.serialize_field("lastModifiedTime", &format_timestamp(c.last_modified_time))?;
        m.serialize_field("statuses", &[StatusJson(status)])?;
        m.serialize_field(
            "testLinks",
            &[TestLink { method: "get", request_uri: Fmt(format_args!("{runtime}/usersession/testconnection")) }],
        )?;
        m.end()
    }
}

struct ParameterSetJson<'a>(&'a Connection);

impl Serialize for ParameterSetJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &self.0.parameters;
        let mut m = s.serialize_struct("ParameterSet", 2)?;
        m.serialize_field("name", p.name())?;
        m.serialize_field("values", &ParameterValuesJson(p))?;
        m.end()
    }
}

struct ParameterValuesJson<'a>(&'a ParameterSet);

impl Serialize for ParameterValuesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("targetId", &ValueOf(p.target()))?;
        if let Some(owner) = p.run_owner() {
            m.serialize_entry(RUN_OWNER_ID, &ValueOf(owner.app_id))?;
        }
        if let Some(u) = p.username() {
            m.serialize_entry("username", &ValueOf(u))?;
        }
        m.end()
    }
}

struct StatusJson<'a>(&'a ConnectionStatus);

impl Serialize for StatusJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            ConnectionStatus::Connected => m.serialize_entry("status", "Connected")?,
            ConnectionStatus::Error { code, message } => {
                m.serialize_entry("error", &ErrorJson { code, message })?;
                m.serialize_entry("status", "Error")?;
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'a str,
    message: &'a str,
}

struct EnvironmentJson<'a>(&'a EnvironmentId);

impl Serialize for EnvironmentJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Environment", 2)?;
        m.serialize_field("id", &Fmt(format_args!("/providers/Microsoft.PowerApps/environments/{}", self.0)))?;
        m.serialize_field("name", &Fmt(format_args!("{}", self.0)))?;
        m.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TestLink<'a> {
    method: &'static str,
    request_uri: Fmt<'a>,
}

/// A list answer: `{"value": […]}`.
#[derive(Debug, Serialize)]
struct ListJson<T> {
    value: Vec<T>,
}

/// A JSON answer written while the world is at hand (the view borrows it).
fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Writing plain data to a vector cannot fail; if it somehow did, the client gets an envelope.
fn to_json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    // A connection is about a kilobyte: one allocation for most answers.
    let mut out = Vec::with_capacity(2048);
    serde_json::to_writer(&mut out, v).map_err(|_| ApiError::Internal)?;
    Ok(out)
}

async fn put_connection(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = connection_id(&path)?;
    let put: PutBody = json_body(&headers, &body)?;
    let body_env = put.properties.environment.as_ref().and_then(|e| e.name.clone());
    let parameters = parameters(put.properties.connection_parameters_set, put.properties.credential_id.as_deref())?;
    let connector = path.get("connector").cloned().unwrap_or_default();
    let (outcome, out) = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, &path, body_env.as_deref(), &st.world)?;
        let cmd = PutConnection {
            environment,
            connector,
            id,
            body_environment: body_env,
            display_name: put.properties.display_name,
            parameters,
        };
        // The connection keeps the correlation id of the request that set its credentials.
        let (outcome, c) = st.world.put_connection(&ctx.caller, cmd, st.clock.now(), ctx.route.correlation)?;
        let (environment, id) = (c.environment.clone(), c.id.clone());
        let c = st.world.connections.get(&environment, &id).ok_or(ApiError::Internal)?;
        Ok((outcome, to_json_bytes(&connection_json(&st.world, c, &ctx.route.origin))?))
    })?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Updated => StatusCode::OK,
    };
    Ok(json_bytes(status, out))
}

async fn get_connection(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    read_one(&ctx, &path, |world, c| to_json_bytes(&connection_json(world, c, &ctx.route.origin)))
}

/// A GET of one connection the caller may see, rendered by `render`.
fn read_one(
    ctx: &RequestContext,
    path: &HashMap<String, String>,
    render: impl FnOnce(&World, &Connection) -> Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    let id = connection_id(path)?;
    let out = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, path, None, &st.world)?;
        let connector = path.get("connector").map(String::as_str).unwrap_or_default();
        let c = st.world.connection(&ctx.caller, &environment, connector, &id)?;
        render(&st.world, c)
    })?;
    Ok(json_bytes(StatusCode::OK, out))
}

async fn delete_connection(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = connection_id(&path)?;
    ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, &path, None, &st.world)?;
        let connector = path.get("connector").map(String::as_str).unwrap_or_default();
        Ok(st.world.delete_connection(&ctx.caller, &environment, connector, &id)?)
    })?;
    Ok(StatusCode::OK.into_response())
}

async fn list_connections(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let out = ctx.sandbox.apply(|st| -> Result<Vec<u8>, ApiError> {
        let environment = resolve_environment(&ctx.route, &path, None, &st.world)?;
        let list = st.world.list_connections(&ctx.caller, &environment, path.get("connector").map(String::as_str))?;
        let value: Vec<_> = list.into_iter().map(|c| connection_json(&st.world, c, &ctx.route.origin)).collect();
        to_json_bytes(&ListJson { value })
    })?;
    Ok(json_bytes(StatusCode::OK, out))
}

#[derive(Debug, Deserialize)]
struct ModifyBody {
    #[serde(default)]
    put: Vec<PutPermissionBody>,
    #[serde(default)]
    delete: Vec<DeletePermissionBody>,
}

#[derive(Debug, Deserialize)]
struct PutPermissionBody {
    properties: PutPermissionProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutPermissionProperties {
    role_name: String,
    principal: PrincipalBody,
}

#[derive(Debug, Deserialize)]
struct PrincipalBody {
    id: String,
    #[serde(rename = "type", default)]
    principal_type: String,
}

#[derive(Debug, Deserialize)]
struct DeletePermissionBody {
    id: String,
}

/// The permission list of api-facts 3.6: the owner first, then each share.
fn permissions_json(world: &World, c: &Connection) -> Value {
    let base =
        format!("/providers/Microsoft.PowerApps/apis/{}/connections/{}/permissions", c.connector, c.id.as_written());
    let item = |name: String, role: &str, principal: Value| {
        json!({
            "name": name,
            "id": format!("{base}/{name}"),
            "type": "Microsoft.PowerApps/apis/connections/permissions",
            "properties": {
                "roleName": role,
                "principal": principal,
                "notifyShareTargetOption": "NotSpecified",
                "inviteGuestToTenant": false,
            }
        })
    };
    let who = &c.created_by;
    let mut owner = owner_json(who);
    if who.upn.is_some() {
        owner["preferredLanguage"] = json!("en-us");
    }
    let mut value = vec![item(who.principal.to_string(), "Owner", owner)];
    for s in &c.shares {
        let sp = world.service_principals.iter().find(|p| p.object_id == s.principal);
        value.push(item(
            s.principal.to_string(),
            s.role.name(),
            json!({
                "id": s.principal.to_string(),
                "displayName": sp.map(|p| p.display_name.clone()),
                "type": "ServicePrincipal",
                "tenantId": sp.map(|p| p.tenant.to_string()),
            }),
        ));
    }
    json!({ "value": value })
}

async fn get_permissions(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    read_one(&ctx, &path, |world, c| to_json_bytes(&permissions_json(world, c)))
}

async fn modify_permissions(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = connection_id(&path)?;
    let m: ModifyBody = json_body(&headers, &body)?;
    let change = PermissionChange {
        put: m
            .put
            .into_iter()
            .map(|p| PermissionPut {
                principal: p.properties.principal.id,
                principal_type: p.properties.principal.principal_type,
                role: p.properties.role_name,
            })
            .collect(),
        delete: m.delete.into_iter().map(|d| d.id.rsplit('/').next().unwrap_or_default().to_owned()).collect(),
    };
    let out = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, &path, None, &st.world)?;
        let connector = path.get("connector").map(String::as_str).unwrap_or_default();
        st.world.modify_permissions(&ctx.caller, &environment, connector, &id, &change)?;
        let c = st.world.connection(&ctx.caller, &environment, connector, &id)?;
        Ok(permissions_json(&st.world, c))
    })?;
    Ok(json(StatusCode::OK, out))
}
