//! The Power Platform API connections endpoints (api-facts 3.1) on both doors: the
//! environment host (rewritten by the pipeline to the path form) and
//! `/connectivity/environments/{environmentId}/…`. A loopback call without an environment
//! takes it from `$filter=environment eq '…'`, then the body, then the sandbox's only
//! environment (DECISIONS.md).

use super::auth::{caller, verify_bearer};
use super::extract::{ApiPath, json_body};
use super::{ApiError, RouteInfo, json};
use crate::domain::clock::format_timestamp;
use crate::domain::connection::{
    Caller, Connection, ConnectionId, ConnectionStatus, ParameterSet, PutConnection, PutOutcome,
};
use crate::domain::ids::{EnvironmentId, MachineGroupId};
use crate::domain::world::{PrincipalKind, World};
use crate::state::AppState;
use crate::tokens::Claims;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// Routes of the connections API.
pub fn router() -> Router<AppState> {
    let one = get(get_connection).put(put_connection).delete(delete_connection);
    Router::new()
        .route("/connectivity/environments/{env}/connectors/{connector}/connections/{id}", one.clone())
        .route("/connectivity/environments/{env}/connectors/{connector}/connections", get(list_connections))
        .route("/connectivity/environments/{env}/connections", get(list_connections))
        .route("/connectivity/connectors/{connector}/connections/{id}", one)
        .route("/connectivity/connectors/{connector}/connections", get(list_connections))
        .route("/connectivity/connections", get(list_connections))
}

/// `api-version` must be there: `1` or a date form (`2022-03-01`, `…-preview`).
pub fn check_api_version(q: &HashMap<String, String>) -> Result<(), ApiError> {
    let v = q.get("api-version").map(String::as_str).unwrap_or("");
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

/// What every Power Platform and BAP call checks first: `api-version`, then the bearer token.
pub(crate) fn admit(
    app: &AppState,
    route: &RouteInfo,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Claims, ApiError> {
    check_api_version(q)?;
    verify_bearer(app, headers, route, None)
}

/// The environment a call names and the caller its token stands for, in the sandbox's world.
fn scope(
    world: &World,
    route: &RouteInfo,
    path: &HashMap<String, String>,
    claims: &Claims,
    body_env: Option<&str>,
) -> Result<(EnvironmentId, Caller), ApiError> {
    Ok((resolve_environment(route, path, body_env, world)?, caller(world, claims)?))
}

/// The environment of a call: the door's, else `$filter`, else the body's, else the only one.
fn resolve_environment(
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

fn connection_id(path: &HashMap<String, String>) -> Result<ConnectionId, ApiError> {
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

/// Parameter sets of `shared_uiflow` that the mock knows but does not emulate yet.
const LATER_SETS: &[&str] = &["azureRelayRunOwner", "passwordlessAttended", "onPremisesDataGateway"];

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
    v.get("value").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
        ApiError::bad_request(
            "InvalidConnectionParameter",
            format!("The parameter '{key}' must be an object {{\"value\": \"…\"}} holding a string."),
        )
    })
}

fn parameters(set: Option<ParameterSetBody>) -> Result<ParameterSet, ApiError> {
    let set = set.ok_or_else(|| {
        ApiError::bad_request(
            "MissingConnectionParameter",
            "A shared_uiflow connection needs properties.connectionParametersSet (for example {\"name\": \"azureRelay\", \"values\": {…}}).",
        )
    })?;
    match set.name.as_str() {
        "azureRelay" => {
            let username = string_value("azureRelay", &set.values, "username")?;
            let password = string_value("azureRelay", &set.values, "password")?;
            let target = string_value("azureRelay", &set.values, "targetId")?;
            let target = MachineGroupId::parse(&target).map_err(|_| {
                ApiError::bad_request(
                    "InvalidConnectionParameter",
                    format!("The parameter 'targetId' must be a machine group id (a GUID); got '{target}'."),
                )
            })?;
            Ok(ParameterSet::AzureRelay { username, password: SecretString::from(password), target })
        }
        name if LATER_SETS.contains(&name) => Err(ApiError::NotImplemented(format!(
            "The parameter set '{name}' of shared_uiflow is not implemented by the mock yet; 'azureRelay' is."
        ))),
        other => Err(ApiError::bad_request(
            "InvalidConnectionParameterSet",
            format!(
                "'{other}' is not a parameter set of shared_uiflow. Known sets: azureRelay, azureRelayRunOwner, passwordlessAttended, onPremisesDataGateway."
            ),
        )),
    }
}

/// The connection resource (api-facts 3.3). Never a secret: `username` and `targetId` only.
fn connection_json(c: &Connection, origin: &str) -> Value {
    let name = c.id.as_written();
    let runtime = format!("{origin}/apim/uiflow/{}/{name}", c.environment);
    let status = match &c.status {
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
    let who = &c.created_by;
    let mut created_by = json!({
        "id": who.principal.to_string(),
        "displayName": who.display_name,
        "type": match who.kind { PrincipalKind::User => "User", PrincipalKind::ServicePrincipal => "ServicePrincipal" },
        "tenantId": who.tenant.to_string(),
    });
    if let Some(upn) = &who.upn {
        created_by["email"] = json!(upn);
        created_by["userPrincipalName"] = json!(upn);
    }
    json!({
        "name": name,
        "id": format!("/providers/Microsoft.PowerApps/apis/{}/connections/{name}", c.connector),
        "type": "Microsoft.PowerApps/apis/connections",
        "properties": {
            "apiId": format!("/providers/Microsoft.PowerApps/apis/{}", c.connector),
            "displayName": c.display_name,
            "iconUri": "https://connectoricons-prod.azureedge.net/releases/v1.0.1700/1.0.1700.3800/uiflow/icon.png",
            "statuses": [status],
            "connectionParametersSet": { "name": c.parameters.name(), "values": values },
            "keywordsRemaining": 0,
            "createdBy": created_by,
            "createdTime": format_timestamp(c.created_time),
            "lastModifiedTime": format_timestamp(c.last_modified_time),
            "testLinks": [{ "requestUri": format!("{runtime}/usersession/testconnection"), "method": "get" }],
            "connectionRuntimeUrl": runtime,
            "environment": {
                "id": format!("/providers/Microsoft.PowerApps/environments/{}", c.environment),
                "name": c.environment.to_string(),
            },
            "allowSharing": false,
        }
    })
}

async fn put_connection(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let claims = admit(&app, &route, &q, &headers)?;
    let id = connection_id(&path)?;
    let put: PutBody = json_body(&headers, &body)?;
    let body_env = put.properties.environment.as_ref().and_then(|e| e.name.clone());
    let parameters = parameters(put.properties.connection_parameters_set)?;
    let mut reg = app.registry();
    let sb = reg.get_mut(&route.sandbox)?;
    let (environment, who) = scope(&sb.world, &route, &path, &claims, body_env.as_deref())?;
    let cmd = PutConnection {
        environment,
        connector: path.get("connector").cloned().unwrap_or_default(),
        id,
        body_environment: body_env,
        display_name: put.properties.display_name,
        parameters,
    };
    let (now, correlation) = (sb.clock.now(), sb.ids.next_id());
    let (outcome, c) = sb.world.put_connection(&who, cmd, now, correlation)?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Updated => StatusCode::OK,
    };
    Ok(json(status, connection_json(c, &route.origin)))
}

async fn get_connection(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = admit(&app, &route, &q, &headers)?;
    let id = connection_id(&path)?;
    let reg = app.registry();
    let sb = reg.get(&route.sandbox)?;
    let (environment, who) = scope(&sb.world, &route, &path, &claims, None)?;
    let connector = path.get("connector").map(String::as_str).unwrap_or_default();
    let c = sb.world.connection(&who, &environment, connector, &id)?;
    Ok(json(StatusCode::OK, connection_json(c, &route.origin)))
}

async fn delete_connection(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = admit(&app, &route, &q, &headers)?;
    let id = connection_id(&path)?;
    let mut reg = app.registry();
    let sb = reg.get_mut(&route.sandbox)?;
    let (environment, who) = scope(&sb.world, &route, &path, &claims, None)?;
    let connector = path.get("connector").map(String::as_str).unwrap_or_default();
    sb.world.delete_connection(&who, &environment, connector, &id)?;
    Ok(StatusCode::OK.into_response())
}

async fn list_connections(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = admit(&app, &route, &q, &headers)?;
    let reg = app.registry();
    let sb = reg.get(&route.sandbox)?;
    let (environment, who) = scope(&sb.world, &route, &path, &claims, None)?;
    let list = sb.world.list_connections(&who, &environment, path.get("connector").map(String::as_str))?;
    let value: Vec<Value> = list.into_iter().map(|c| connection_json(c, &route.origin)).collect();
    Ok(json(StatusCode::OK, json!({ "value": value })))
}
