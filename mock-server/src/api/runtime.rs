//! The desktop-flow connector runtime (`/apim/uiflow/{environmentId}/{connectionId}/…`,
//! mock-defined path that a connection's `connectionRuntimeUrl` names):
//!
//! - `TestConnection` (the connection resource's `testLinks`): the same checks as the
//!   connection's status — credentials on every machine, or the connect-with-sign-in
//!   prerequisites — answered 200 or with the failure's envelope.
//! - `RunUIFlow_V2` with the asynchronous pattern (202, `Location`, `Retry-After`) and
//!   `GetRunStatus` on that `Location`; one queue and one flow session per run with the
//!   Dataverse door (runs.md, "The connector door"). `x-mock-async-disabled: true` (or the
//!   `asyncDisabled` setting) stands for the cloud flow's "Asynchronous pattern: Off".
//! - `ListUIFlows`: the environment's published desktop flows; `GetUIFlowMetadata`: a flow's
//!   input and output schemas; `Status`: whether a machine of the connection's group is
//!   online (both bodies mock-defined).

use super::connections::{connection_id, resolve_environment};
use super::dataverse::runs::{enqueue, inputs_for};
use super::extract::ApiPath;
use super::{ApiError, RequestContext, json};
use crate::domain::Error;
use crate::domain::connection::UIFLOW;
use crate::domain::ids::{EnvironmentId, FlowSessionId, WorkflowId};
use crate::domain::run::{ConnectionName, Priority, Run, RunMode, RunRequest, RunStatus};
use crate::journal::form_pairs;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Routes of the connector runtime.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apim/uiflow/{env}/{id}/usersession/testconnection", get(test_connection))
        .route("/apim/uiflow/{env}/{id}/uiFlowTypes/{kind}/uiflows", get(list_flows))
        .route("/apim/uiflow/{env}/{id}/uiFlowTypes/{kind}/uiflows/{flow}/runs", post(run_flow))
        .route("/apim/uiflow/{env}/{id}/uiFlowTypes/{kind}/uiflows/{flow}/runs/{run}", get(run_status))
        .route("/apim/uiflow/{env}/{id}/uiFlowTypes/{kind}/uiflows/{flow}/{file}", get(flow_metadata))
        .route("/apim/uiflow/{env}/{id}/status", get(agent_status))
}

async fn test_connection(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = connection_id(path.get("id").map(String::as_str))?;
    let name = ctx.sandbox.apply(|st| -> Result<String, ApiError> {
        let environment = resolve_environment(&ctx.route, path.get("env").map(String::as_str), None, &st.world)?;
        let c = st.world.connection(&ctx.caller, &environment, UIFLOW, &id)?;
        st.world.status(c).test()?;
        Ok(c.id.as_written().to_owned())
    })?;
    Ok(json(StatusCode::OK, json!({ "status": "Connected", "connectionName": name })))
}

/// Only the desktop flows of Power Automate for desktop (`desktopV2`) are emulated.
fn check_kind(path: &HashMap<String, String>) -> Result<(), ApiError> {
    match path.get("kind").map(String::as_str) {
        Some("desktopV2") => Ok(()),
        other => Err(ApiError::NotImplemented(format!(
            "The UI flow type '{}' is not implemented by the mock: 'desktopV2' is.",
            other.unwrap_or("").chars().take(40).collect::<String>()
        ))),
    }
}

fn workflow(path: &HashMap<String, String>) -> Result<WorkflowId, ApiError> {
    let raw = path.get("flow").map(String::as_str).unwrap_or("");
    WorkflowId::parse(raw).map_err(|e| ApiError::bad_request("InvalidUIFlowId", e.to_string()))
}

/// The status of a run's error code on the connector door.
fn status_of_code(code: &str) -> StatusCode {
    StatusCode::from_u16(super::error::run_error_status(code)).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The `Location` of a run: where `GetRunStatus` answers, on the request's origin.
fn location(ctx: &RequestContext, env: &EnvironmentId, path: &HashMap<String, String>, run: FlowSessionId) -> String {
    let get = |k: &str| path.get(k).map(String::as_str).unwrap_or("");
    format!(
        "{}/apim/uiflow/{env}/{}/uiFlowTypes/{}/uiflows/{}/runs/{run}",
        ctx.route.origin,
        get("id"),
        get("kind"),
        get("flow")
    )
}

/// What `GetRunStatus` answers for a run (and `RunUIFlow_V2` for one that failed at once).
fn status_answer(run: &Run, location: &str, retry_after: u64) -> Response {
    let (status, body) = match run.status {
        RunStatus::Waiting | RunStatus::Running => {
            let body = json!({ "status": run.status.name(), "flowsessionId": run.id.to_string() });
            let mut r = json(StatusCode::ACCEPTED, body);
            if let Ok(v) = HeaderValue::from_str(location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return r;
        }
        RunStatus::Succeeded => {
            let outputs: Value = serde_json::from_str(run.outputs.as_deref().unwrap_or("{}")).unwrap_or_default();
            (StatusCode::OK, json!({ "status": "Succeeded", "outputs": outputs }))
        }
        RunStatus::Cancelled => (
            StatusCode::BAD_REQUEST,
            json!({ "error": { "code": "Cancelled", "message": "The desktop flow run was cancelled." } }),
        ),
        RunStatus::Failed | RunStatus::TimedOut => {
            let (code, message) =
                run.failure.as_ref().map_or(("Failed", String::new()), |f| (f.code.as_str(), f.message.clone()));
            (status_of_code(code), json!({ "error": { "code": code, "message": message } }))
        }
    };
    json(status, body)
}

/// `POST …/uiFlowTypes/desktopV2/uiflows/{workflowId}/runs?runMode=…[&runPriority=…]` with
/// `{"item": {inputs}}`: 202 and `Location`, or at once the status of a run that failed at
/// the request (its flow session exists, Failed).
async fn run_flow(
    State(app): State<AppState>,
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_kind(&path)?;
    let flow = workflow(&path)?;
    let conn = connection_id(path.get("id").map(String::as_str))?;
    let query = form_pairs(uri.query().unwrap_or(""));
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mode = match param("runMode") {
        None => {
            return Err(ApiError::bad_request(
                "MissingRunMode",
                "The query parameter 'runMode' is required: 'attended' or 'unattended'.",
            ));
        }
        Some(m) => RunMode::parse(&m).ok_or_else(|| {
            ApiError::bad_request("InvalidRunMode", "The query parameter 'runMode' must be 'attended' or 'unattended'.")
        })?,
    };
    let priority = match param("runPriority") {
        None => Priority::Normal,
        Some(p) => Priority::parse(&p).ok_or_else(|| {
            ApiError::bad_request("InvalidRunPriority", "The query parameter 'runPriority' must be 'normal' or 'high'.")
        })?,
    };
    let item = if super::extract::is_empty(&body) {
        None
    } else {
        let v: Map<String, Value> = super::extract::json_body(&headers, &body)?;
        match v.get("item") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(Value::Object(m.clone()).to_string()),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "InvalidRunInputs",
                    "The body's 'item' must be a JSON object of the desktop flow's inputs.",
                ));
            }
        }
    };
    let header_async_disabled = headers
        .get("x-mock-async-disabled")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    // What catching up applied is journaled even when the request is then refused.
    let (answer, events) = ctx.sandbox.apply(|st| {
        let mut events = st.catch_up();
        let ask = RunAsk { flow, connection: &conn, mode, priority, item: item.as_deref(), header_async_disabled };
        let answer = start_run(st, &ctx, &path, ask, &mut events);
        (answer, events)
    });
    crate::callbacks::after(&app, &ctx.sandbox, &events);
    answer
}

/// What a `RunUIFlow_V2` request asks for, read from its URL, headers and body.
struct RunAsk<'a> {
    flow: WorkflowId,
    connection: &'a crate::domain::connection::ConnectionId,
    mode: RunMode,
    priority: Priority,
    item: Option<&'a str>,
    header_async_disabled: bool,
}

/// The run request of `RunUIFlow_V2`, inside the sandbox's lock.
fn start_run(
    st: &mut crate::sandbox::SandboxState,
    ctx: &RequestContext,
    path: &HashMap<String, String>,
    ask: RunAsk<'_>,
    events: &mut Vec<crate::domain::run::RunEvent>,
) -> Result<Response, ApiError> {
    let RunAsk { flow, connection: conn, mode, priority, item, header_async_disabled } = ask;
    let env = resolve_environment(&ctx.route, path.get("env").map(String::as_str), None, &st.world)?;
    let schema = st
        .world
        .environment(&env)
        .and_then(|e| e.desktop_flows.iter().find(|f| f.id == flow))
        .map(|f| f.input_schema.clone())
        .ok_or_else(|| Error::RecordNotFound { entity: "workflow", id: flow.to_string() })?;
    let inputs = inputs_for(&schema, item).map_err(|e| ApiError::bad_request("InvalidRunInputs", e.to_string()))?;
    let connection = ConnectionName::Connection(conn.as_written().to_owned());
    let req = RunRequest {
        environment: env.clone(),
        flow,
        connection,
        mode,
        priority,
        timeout_secs: None,
        inputs,
        callback_url: None,
        async_disabled: header_async_disabled || st.settings.async_disabled,
    };
    let (session, made) = enqueue(st, &ctx.caller, req)?;
    events.extend(made);
    let run = st.world.flow_session(&ctx.caller, &env, session)?;
    let location = location(ctx, &env, path, session);
    Ok(status_answer(run, &location, st.settings.run_status_retry_after_secs))
}

/// `GET …/runs/{flowsessionId}`: 202 while Waiting or Running, else the run's outcome.
async fn run_status(
    State(app): State<AppState>,
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    check_kind(&path)?;
    let raw = path.get("run").map(String::as_str).unwrap_or("");
    let run = FlowSessionId::parse(raw).map_err(|e| ApiError::bad_request("InvalidRunId", e.to_string()))?;
    let (answer, events) = ctx.sandbox.apply(|st| {
        let events = st.catch_up();
        let answer = (|| {
            let env = resolve_environment(&ctx.route, path.get("env").map(String::as_str), None, &st.world)?;
            let r = st.world.flow_session(&ctx.caller, &env, run)?;
            let location = location(&ctx, &env, &path, run);
            Ok(status_answer(r, &location, st.settings.run_status_retry_after_secs))
        })();
        (answer, events)
    });
    crate::callbacks::after(&app, &ctx.sandbox, &events);
    answer
}

/// `GET …/uiFlowTypes/desktopV2/uiflows`: the published desktop flows (mock-defined shape:
/// `{"value": [{"id", "name"}]}`).
async fn list_flows(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    check_kind(&path)?;
    let id = connection_id(path.get("id").map(String::as_str))?;
    let flows = ctx.sandbox.apply(|st| -> Result<Vec<Value>, ApiError> {
        let env = resolve_environment(&ctx.route, path.get("env").map(String::as_str), None, &st.world)?;
        st.world.connection(&ctx.caller, &env, UIFLOW, &id)?;
        let e = st
            .world
            .environment(&env)
            .ok_or_else(|| ApiError::bad_request("InvalidEnvironmentId", "No such environment."))?;
        Ok(e.desktop_flows
            .iter()
            .filter(|f| f.published)
            .map(|f| json!({ "id": f.id.to_string(), "name": f.name }))
            .collect())
    })?;
    Ok(json(StatusCode::OK, json!({ "value": flows })))
}

/// `GET …/uiflows/{workflowId}/$metadata.json`: the flow's schemas (mock-defined shape:
/// `{"name", "inputs": schema, "outputs": schema}`).
async fn flow_metadata(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    check_kind(&path)?;
    if path.get("file").map(String::as_str) != Some("$metadata.json") {
        return Err(ApiError::NotImplemented("The mock serves '$metadata.json' under a desktop flow.".into()));
    }
    let id = connection_id(path.get("id").map(String::as_str))?;
    let flow = workflow(&path)?;
    let (name, inputs, outputs) = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let env = resolve_environment(&ctx.route, path.get("env").map(String::as_str), None, &st.world)?;
        st.world.connection(&ctx.caller, &env, UIFLOW, &id)?;
        let f = st
            .world
            .environment(&env)
            .and_then(|e| e.desktop_flows.iter().find(|f| f.id == flow))
            .ok_or_else(|| Error::RecordNotFound { entity: "workflow", id: flow.to_string() })?;
        Ok((f.name.clone(), f.input_schema.clone(), f.output_schema.clone()))
    })?;
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or_default();
    Ok(json(StatusCode::OK, json!({ "name": name, "inputs": parse(&inputs), "outputs": parse(&outputs) })))
}

/// `GET …/{connectionId}/status`: the agent's status for the connection's group (mock-defined
/// shape: `{"status": "Online" | "Offline", "machines": [{"id", "name", "online"}]}`).
async fn agent_status(
    ctx: RequestContext,
    ApiPath(path): ApiPath<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = connection_id(path.get("id").map(String::as_str))?;
    let machines = ctx.sandbox.apply(|st| -> Result<Vec<Value>, ApiError> {
        let env = resolve_environment(&ctx.route, path.get("env").map(String::as_str), None, &st.world)?;
        let c = st.world.connection(&ctx.caller, &env, UIFLOW, &id)?;
        let group = c.parameters.target();
        Ok(st
            .world
            .environment(&env)
            .map(|e| {
                e.machines
                    .iter()
                    .filter(|m| m.group == group)
                    .map(|m| json!({ "id": m.id.to_string(), "name": m.name, "online": m.online && !m.maintenance }))
                    .collect()
            })
            .unwrap_or_default())
    })?;
    let online = machines.iter().any(|m| m["online"] == json!(true));
    Ok(json(StatusCode::OK, json!({ "status": if online { "Online" } else { "Offline" }, "machines": machines })))
}
