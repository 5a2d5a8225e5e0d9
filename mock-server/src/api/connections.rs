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
use serde::{Deserialize, Serialize};
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
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let is_date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok();
    if v == "1" || is_date {
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
fn owner_json(who: &Caller) -> Value {
    let mut v = json!({
        "id": who.principal.to_string(),
        "displayName": who.display_name,
        "type": match who.kind { PrincipalKind::User => "User", PrincipalKind::ServicePrincipal => "ServicePrincipal" },
        "tenantId": who.tenant.to_string(),
    });
    if let Some(upn) = &who.upn {
        v["email"] = json!(upn);
    }
    v
}

/// The connection resource (api-facts 3.3), with its status as the world stands now. Never a
/// secret: `username`, `targetId` and the run owner's client id only. Written straight from
/// these types rather than a `Value` tree; members are declared in alphabetical order, the
/// order a `Value`'s map writes them in, which the answers have always had.
#[derive(Debug, Serialize)]
struct ConnectionJson {
    id: String,
    name: String,
    properties: ConnectionProperties,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionProperties {
    allow_sharing: bool,
    api_id: String,
    connection_parameters_set: ParameterSetJson,
    connection_runtime_url: String,
    created_by: Value,
    created_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<String>,
    display_name: String,
    environment: EnvironmentJson,
    icon_uri: &'static str,
    keywords_remaining: u32,
    last_modified_time: String,
    statuses: [Value; 1],
    test_links: [TestLink; 1],
}

#[derive(Debug, Serialize)]
struct ParameterSetJson {
    name: &'static str,
    values: serde_json::Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct EnvironmentJson {
    id: String,
    name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TestLink {
    method: &'static str,
    request_uri: String,
}

/// A list answer: `{"value": […]}`.
#[derive(Debug, Serialize)]
struct ListJson<T> {
    value: Vec<T>,
}

fn connection_json(world: &World, c: &Connection, origin: &str) -> ConnectionJson {
    let name = c.id.as_written();
    let runtime = format!("{origin}/apim/uiflow/{}/{name}", c.environment);
    let status = match &world.status(c) {
        ConnectionStatus::Connected => json!({ "status": "Connected" }),
        ConnectionStatus::Error { code, message } => {
            json!({ "status": "Error", "error": { "code": code, "message": message } })
        }
    };
    let mut values = serde_json::Map::new();
    if let Some(u) = c.parameters.username() {
        values.insert("username".into(), json!({ "value": u }));
    }
    values.insert("targetId".into(), json!({ "value": c.parameters.target().to_string() }));
    if let Some(owner) = c.parameters.run_owner() {
        values.insert(RUN_OWNER_ID.into(), json!({ "value": owner.app_id.to_string() }));
    }
    let mut created_by = owner_json(&c.created_by);
    if let Some(upn) = &c.created_by.upn {
        created_by["userPrincipalName"] = json!(upn);
    }
    ConnectionJson {
        id: format!("/providers/Microsoft.PowerApps/apis/{}/connections/{name}", c.connector),
        name: name.to_string(),
        properties: ConnectionProperties {
            allow_sharing: c.parameters.run_owner().is_some(),
            api_id: format!("/providers/Microsoft.PowerApps/apis/{}", c.connector),
            connection_parameters_set: ParameterSetJson { name: c.parameters.name(), values },
            created_by,
            created_time: format_timestamp(c.created_time),
            credential_id: c.parameters.login().and_then(Login::credential).map(|id| id.to_string()),
            display_name: c.display_name.clone(),
            environment: EnvironmentJson {
                id: format!("/providers/Microsoft.PowerApps/environments/{}", c.environment),
                name: c.environment.to_string(),
            },
            icon_uri: "https://connectoricons-prod.azureedge.net/releases/v1.0.1700/1.0.1700.3800/uiflow/icon.png",
            keywords_remaining: 0,
            last_modified_time: format_timestamp(c.last_modified_time),
            statuses: [status],
            test_links: [TestLink { method: "get", request_uri: format!("{runtime}/usersession/testconnection") }],
            connection_runtime_url: runtime,
        },
        kind: "Microsoft.PowerApps/apis/connections",
    }
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
        let c = c.clone();
        Ok((outcome, connection_json(&st.world, &c, &ctx.route.origin)))
    })?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Updated => StatusCode::OK,
    };
    Ok((status, axum::Json(out)).into_response())
}

async fn get_connection(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    read_one(&ctx, &path, |world, c| connection_json(world, c, &ctx.route.origin))
}

/// A GET of one connection the caller may see, rendered by `render`.
fn read_one<T: Serialize>(
    ctx: &RequestContext,
    path: &HashMap<String, String>,
    render: impl FnOnce(&World, &Connection) -> T,
) -> Result<Response, ApiError> {
    let id = connection_id(path)?;
    let out = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, path, None, &st.world)?;
        let connector = path.get("connector").map(String::as_str).unwrap_or_default();
        let c = st.world.connection(&ctx.caller, &environment, connector, &id)?;
        Ok(render(&st.world, c))
    })?;
    Ok((StatusCode::OK, axum::Json(out)).into_response())
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
    let value = ctx.sandbox.apply(|st| -> Result<Vec<ConnectionJson>, ApiError> {
        let environment = resolve_environment(&ctx.route, &path, None, &st.world)?;
        let list = st.world.list_connections(&ctx.caller, &environment, path.get("connector").map(String::as_str))?;
        Ok(list.into_iter().map(|c| connection_json(&st.world, c, &ctx.route.origin)).collect())
    })?;
    Ok((StatusCode::OK, axum::Json(ListJson { value })).into_response())
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
    read_one(&ctx, &path, permissions_json)
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
