//! The Dataverse door of desktop-flow runs (runs.md, "The Dataverse door"): `workflows`
//! (desktop flows, category 6) with their input and output schemas, `flowsessions`,
//! `connectionreferences`, the `RunDesktopFlow` and `CancelDesktopFlowRun` actions. Rows are
//! Dataverse's column names; the rules (who may, the queue) are the domain's (`domain::run`).

use super::{Dv, Table, env_of, string_field};
use crate::api::extract::{json_body, no_parameters};
use crate::api::{ApiError, json};
use crate::domain::Error;
use crate::domain::clock::{Timestamp, format_timestamp};
use crate::domain::desktop_flow::{ConnectionReference, DesktopFlow, ReferenceChange};
use crate::domain::ids::{ConnectionReferenceId, FlowSessionId, WorkflowId};
use crate::domain::run::{ConnectionName, Priority, Run, RunEvent, RunMode, RunRequest};
use crate::domain::world::{Environment, World};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Inputs of a run are at most 2 MB (api-facts 5.1).
const MAX_INPUTS_BYTES: usize = 2 * 1024 * 1024;

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(format_timestamp(t)))
}

/// A `workflow` row of a desktop flow.
pub(super) fn workflow_row(env: &Environment, f: &DesktopFlow) -> Map<String, Value> {
    object(json!({
        "workflowid": f.id.to_string(),
        "name": f.name,
        "category": 6,
        "type": 1,
        "primaryentity": "none",
        "statecode": if f.published { 1 } else { 0 },
        "statuscode": if f.published { 2 } else { 1 },
        "_ownerid_value": env.system_user_of(f.owner).map(|s| s.to_string()),
    }))
}

/// A `flowsession` row.
pub(super) fn flow_session_row(env: &Environment, r: &Run, now: Timestamp) -> Map<String, Value> {
    let group = env.group(r.group).map(|g| g.id.to_string());
    let failure = r.failure.as_ref();
    let run_secs = match (r.started_on, r.completed_on) {
        (Some(s), Some(c)) => json!((c - s).num_seconds()),
        (Some(s), None) => json!((now - s).num_seconds()),
        _ => Value::Null,
    };
    object(json!({
        "flowsessionid": r.id.to_string(),
        "name": r.flow_name,
        "statuscode": r.status.statuscode(),
        "statecode": 0,
        "createdon": format_timestamp(r.enqueued_on),
        "startedon": time(r.started_on),
        "completedon": time(r.completed_on),
        "errorcode": failure.map(|f| f.code.clone()),
        "errormessage": failure.map(|f| f.message.clone()),
        "errordetails": failure.and_then(|f| f.details.clone()),
        "runmode": r.mode.option_value(),
        "triggertype": 3,
        "connectionid": r.connection.as_written(),
        "callbackurl": r.callback_url,
        "_regardingobjectid_value": r.flow.to_string(),
        "_machineid_value": r.machine.map(|m| m.to_string()),
        "_machinegroupid_value": group,
        "_ownerid_value": env.system_user_of(r.started_by).map(|s| s.to_string()),
        "runwaitduration": r.wait_secs(now),
        "runduration": run_secs,
    }))
}

/// A `connectionreference` row.
pub(super) fn reference_row(r: &ConnectionReference) -> Map<String, Value> {
    object(json!({
        "connectionreferenceid": r.id.to_string(),
        "connectionreferencelogicalname": r.logical_name,
        "connectionreferencedisplayname": r.display_name,
        "connectorid": r.connector_id,
        "connectionid": if r.connection_id.is_empty() { Value::Null } else { json!(r.connection_id) },
        "statecode": 0,
        "statuscode": 1,
    }))
}

/// Rows of the run tables the caller can read. Unpublished desktop flows only with
/// `MSCRM.IncludeUnpublished: true`; flow sessions only the caller's and its flows'.
pub(super) fn rows(world: &World, env: &Environment, table: Table, dv: &Dv, now: Timestamp) -> Vec<Map<String, Value>> {
    match table {
        Table::Workflow => {
            let unpublished = dv
                .headers
                .get("mscrm.includeunpublished")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            env.desktop_flows.iter().filter(|f| f.published || unpublished).map(|f| workflow_row(env, f)).collect()
        }
        Table::FlowSession => {
            world.flow_sessions(dv.who(), &env.id).into_iter().map(|r| flow_session_row(env, r, now)).collect()
        }
        Table::ConnectionReference => env.connection_references.iter().map(reference_row).collect(),
        _ => Vec::new(),
    }
}

/// The body of `RunDesktopFlow` (api-facts 5.1): unknown parameters are refused by name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RunBody {
    run_mode: String,
    connection_name: String,
    #[serde(default)]
    connection_type: Option<i64>,
    #[serde(default)]
    run_priority: Option<String>,
    #[serde(default)]
    timeout: Option<i64>,
    #[serde(default)]
    inputs: Option<String>,
    #[serde(default)]
    callback_url: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::Domain(Error::InvalidRunParameter(message.into()))
}

/// Inputs as a JSON object, checked against the flow's schema: required ones present,
/// missing ones given the schema's default.
pub(crate) fn inputs_for(schema: &str, given: Option<&str>) -> Result<String, ApiError> {
    let given = given.filter(|s| !s.trim().is_empty()).unwrap_or("{}");
    if given.len() > MAX_INPUTS_BYTES {
        return Err(bad("The inputs are larger than 2 MB, the limit for a desktop flow's inputs."));
    }
    let mut inputs: Map<String, Value> = match serde_json::from_str(given) {
        Ok(Value::Object(m)) => m,
        _ => return Err(bad("The inputs must be a JSON object serialized as a string.")),
    };
    let schema: Value = serde_json::from_str(schema).unwrap_or_default();
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !inputs.contains_key(name) {
                return Err(bad(format!("The input '{name}' is required by the desktop flow.")));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            if let (false, Some(d)) = (inputs.contains_key(name), p.get("default")) {
                inputs.insert(name.clone(), d.clone());
            }
        }
    }
    Ok(Value::Object(inputs).to_string())
}

/// `POST workflows({id})/Microsoft.Dynamics.CRM.RunDesktopFlow`: 200 with the flow session
/// whenever a run record is made (also one that failed at once).
pub(super) fn run_desktop_flow(dv: &Dv, id: Uuid) -> Result<Response, ApiError> {
    let body: RunBody = json_body(&dv.headers, &dv.body)?;
    let mode = RunMode::parse(&body.run_mode).ok_or_else(|| bad("runMode must be 'attended' or 'unattended'."))?;
    let priority = match body.run_priority.as_deref() {
        None => Priority::Normal,
        Some(p) => Priority::parse(p).ok_or_else(|| bad("runPriority must be 'normal' or 'high'."))?,
    };
    let connection = match body.connection_type {
        None | Some(1) => ConnectionName::Connection(body.connection_name),
        Some(2) => ConnectionName::Reference(body.connection_name),
        Some(_) => return Err(bad("connectionType must be 1 (connection) or 2 (connection reference).")),
    };
    let timeout_secs = match body.timeout {
        None => None,
        Some(t) => Some(u64::try_from(t).map_err(|_| bad("timeout must be a positive number of seconds."))?),
    };
    let flow = WorkflowId::from_uuid(id);
    let session = dv.apply(|st, _| {
        let env = env_of(&st.world, &dv.env)?;
        let schema = env
            .desktop_flows
            .iter()
            .find(|f| f.id == flow)
            .map(|f| f.input_schema.clone())
            .ok_or_else(|| Error::RecordNotFound { entity: "workflow", id: flow.to_string() })?;
        let inputs = inputs_for(&schema, body.inputs.as_deref())?;
        let req = RunRequest {
            environment: dv.env.clone(),
            flow,
            connection,
            mode,
            priority,
            timeout_secs,
            inputs,
            callback_url: body.callback_url,
            async_disabled: false,
        };
        enqueue(st, dv.who(), req)
    })?;
    let (session, events) = session;
    crate::callbacks::after(&dv.app, &dv.ctx.sandbox, &events);
    Ok(json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.RunDesktopFlowResponse", dv.base),
            "flowsessionId": session.to_string(),
        }),
    ))
}

/// Makes a run for either door: the per-connection throttle first (429
/// `DesktopFlowsActionThrottled` with `Retry-After`, and no run), then the domain's checks and
/// the queue. Only a request that made a run counts against the throttle.
pub(crate) fn enqueue(
    st: &mut crate::sandbox::SandboxState,
    who: &crate::domain::connection::Caller,
    req: RunRequest,
) -> Result<(FlowSessionId, Vec<RunEvent>), ApiError> {
    let id = st.world.run_connection_id(who, &req.environment, &req.connection)?;
    st.run_throttle(id.uuid()).map_err(|retry_after| ApiError::Throttled {
        code: "DesktopFlowsActionThrottled",
        message: format!(
            "Too many desktop flow runs on the connection '{}': at most {} per minute. Retry after {retry_after} seconds.",
            id.as_written(),
            st.settings.runs_per_minute_per_connection
        ),
        retry_after,
    })?;
    let session = FlowSessionId::from_uuid(st.ids.next_id());
    let now = st.clock.now();
    let events = st.world.enqueue_run(who, req, session, now)?;
    st.count_run(id.uuid());
    Ok((session, events))
}

/// `GET flowsessions({id})/outputs/$value`: the outputs of a Succeeded run (`{}` before).
pub(super) fn flow_session_outputs(dv: &Dv, id: Uuid) -> Result<Response, ApiError> {
    let outputs = dv.apply(|st, _| {
        let run = st.world.flow_session(dv.who(), &dv.env, FlowSessionId::from_uuid(id))?;
        Ok(run.outputs.clone().unwrap_or_else(|| "{}".to_owned()))
    })?;
    let v: Value = serde_json::from_str(&outputs).unwrap_or_default();
    Ok(json(StatusCode::OK, v))
}

/// `POST flowsessions({id})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun`: 204.
pub(super) fn cancel_run(dv: &Dv, id: Uuid) -> Result<Response, ApiError> {
    no_parameters(&dv.headers, &dv.body)?;
    let event = dv.apply(|st, _| {
        let now = st.clock.now();
        Ok(st.world.cancel_run(dv.who(), &dv.env, FlowSessionId::from_uuid(id), now)?)
    })?;
    crate::callbacks::after(&dv.app, &dv.ctx.sandbox, &[event]);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET workflows({id})/inputs/$value` or `/outputs/$value`: `{"schema": …}`.
pub(super) fn workflow_schema(dv: &Dv, id: Uuid, inputs: bool) -> Result<Response, ApiError> {
    let schema = dv.apply(|st, _| {
        let env = env_of(&st.world, &dv.env)?;
        let f = env
            .desktop_flows
            .iter()
            .find(|f| f.id.uuid() == id)
            .ok_or_else(|| Error::RecordNotFound { entity: "workflow", id: id.to_string() })?;
        Ok(if inputs { f.input_schema.clone() } else { f.output_schema.clone() })
    })?;
    let schema: Value = serde_json::from_str(&schema).unwrap_or_default();
    Ok(json(StatusCode::OK, json!({ "schema": schema })))
}

/// The change a `connectionreferences` write body asks for.
pub(super) fn reference_change(map: &Map<String, Value>) -> Result<ReferenceChange, ApiError> {
    Ok(ReferenceChange {
        logical_name: string_field(map, "connectionreferencelogicalname")?,
        display_name: string_field(map, "connectionreferencedisplayname")?,
        connector_id: string_field(map, "connectorid")?,
        connection_id: match map.iter().find(|(k, _)| k.eq_ignore_ascii_case("connectionid")) {
            None => None,
            Some(_) => Some(string_field(map, "connectionid")?.unwrap_or_default()),
        },
    })
}

/// Creates or updates a connection reference; its row after.
pub(super) fn upsert_reference(
    world: &mut World,
    env: &crate::domain::ids::EnvironmentId,
    id: Uuid,
    change: ReferenceChange,
) -> Result<(bool, Map<String, Value>), ApiError> {
    let id = ConnectionReferenceId::from_uuid(id);
    let created = world.upsert_connection_reference(env, id, change)?;
    let e = env_of(world, env)?;
    let row = e.connection_references.iter().find(|r| r.id == id).map(reference_row).unwrap_or_default();
    Ok((created, row))
}
