//! The protocol's actions (docs/conformance.md) on a [`Client`]: each reads its arguments,
//! sends what a correct client sends, and returns the result object or a [`Failure`].

use crate::client::{Answer, Client, Failure, Request};
use crate::decisions::{ConnectionSpec, RunMode};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// Polls `waitForRun` makes before it gives up.
pub const MAX_POLLS: u32 = 30;
const CONNECTOR: &str = "shared_uiflow";

/// What an action came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `ok: true` with this result.
    Done(Value),
    /// `ok: false`.
    Failed(Failure),
    /// The action is not one this client knows.
    Unsupported,
}

/// Which API a run was started through; it is polled through the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    /// `RunDesktopFlow` on Dataverse; polled on `flowsessions({id})`.
    Dataverse,
    /// `RunUIFlow_V2` on the connector runtime; polled on the 202's `Location`.
    Connector,
}

/// A run this client started.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    door: Door,
    location: Option<String>,
    /// Not polled before this instant (the last answer's `Retry-After`).
    not_before: Instant,
    /// The outputs the connector door's final answer carried.
    outputs: Option<Value>,
}

/// Performs `action` with `args`.
pub async fn perform(client: &mut Client, action: &str, args: Value) -> Outcome {
    let result = match action {
        "acquireToken" => acquire_token(client, args).await,
        "createConnection" => put_connection(client, args, false).await,
        "updateConnection" => put_connection(client, args, true).await,
        "getConnection" => get_connection(client, args).await,
        "listConnections" => list_connections(client).await,
        "deleteConnection" => delete_connection(client, args).await,
        "shareConnection" => share_connection(client, args).await,
        "findMachineGroup" => find_machine_group(client, args).await,
        "listMachineGroups" => list_machine_groups(client).await,
        "shareMachineGroup" => share_machine_group(client, args).await,
        "startRun" => start_run(client, args).await,
        "waitForRun" => wait_for_run(client, args).await,
        "getRunOutputs" => get_run_outputs(client, args).await,
        "cancelRun" => cancel_run(client, args).await,
        _ => return Outcome::Unsupported,
    };
    match result {
        Ok(v) => Outcome::Done(v),
        Err(f) => Outcome::Failed(f),
    }
}

fn parse<T: DeserializeOwned>(args: Value) -> Result<T, Failure> {
    serde_json::from_value(args).map_err(|e| Failure::adapter(format!("arguments: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionRef {
    connection_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunRef {
    run_id: String,
}

async fn acquire_token(client: &mut Client, args: Value) -> Result<Value, Failure> {
    #[derive(Deserialize)]
    struct Args {
        resource: Option<String>,
    }
    let resource = match parse::<Args>(args)?.resource.as_deref() {
        None | Some("powerplatform") => "powerplatform",
        Some("dataverse") => "dataverse",
        Some(other) => return Err(Failure::adapter(format!("unknown resource '{other}'"))),
    };
    client.token(resource).await?;
    Ok(json!({ "tokenType": "Bearer", "expiresIn": client.token_expires_in(resource) }))
}

// --- connections (Power Platform API) ---------------------------------------------------

fn connection_url(client: &Client, id: &str) -> String {
    format!("{}/connectors/{CONNECTOR}/connections/{id}", client.surfaces.power_platform)
}

async fn put_connection(client: &mut Client, args: Value, update: bool) -> Result<Value, Failure> {
    let spec: ConnectionSpec = parse(args)?;
    if !spec.sign_in && (spec.username.is_none() || spec.password.is_none()) {
        return Err(Failure::adapter("a connection without signIn needs username and password"));
    }
    // Create and update are one PUT on the caller's id: the id is the client's to choose.
    let id = if update { client.decisions.update_target(&spec.connection_id) } else { spec.connection_id.clone() };
    let request = Request::new(Method::PUT, connection_url(client, &id))
        .query(client.decisions.connection_query(&spec, update))
        .auth("powerplatform")
        .json(client.decisions.connection_body(&client.surfaces.environment, &spec));
    Ok(connection_result(&client.call(&request).await?.json()?))
}

/// `{"id", "status", "statusCode"?}` of a connection resource.
fn connection_result(connection: &Value) -> Value {
    let status = &connection["properties"]["statuses"][0];
    let mut result = json!({ "id": connection["name"], "status": status["status"] });
    if let Some(code) = status["error"]["code"].as_str() {
        result["statusCode"] = json!(code);
    }
    result
}

fn api_version() -> [(&'static str, &'static str); 1] {
    [("api-version", "1")]
}

async fn get_connection(client: &mut Client, args: Value) -> Result<Value, Failure> {
    let ConnectionRef { connection_id } = parse(args)?;
    let request = Request::get(connection_url(client, &connection_id)).query(api_version()).auth("powerplatform");
    let connection = client.call(&request).await?.json()?;
    let mut result = connection_result(&connection);
    result["displayName"] = connection["properties"]["displayName"].clone();
    Ok(result)
}

/// Every item of a listing, following its next-page links (`nextLink` on Power Platform,
/// `@odata.nextLink` on Dataverse: full URLs, query included).
async fn pages(client: &mut Client, first: Request, next_key: &str) -> Result<Vec<Value>, Failure> {
    let mut items = Vec::new();
    let mut request = first;
    loop {
        let page = client.call(&request).await?.json()?;
        items.extend(page["value"].as_array().into_iter().flatten().cloned());
        match page[next_key].as_str() {
            // The next page is read with the token of the surface the first came from.
            Some(next) => request = request.resource().map_or(Request::get(next), |r| Request::get(next).auth(r)),
            None => return Ok(items),
        }
    }
}

async fn list_connections(client: &mut Client) -> Result<Value, Failure> {
    let url = format!("{}/connectors/{CONNECTOR}/connections", client.surfaces.power_platform);
    let first = Request::get(url).query(api_version()).auth("powerplatform");
    let connections: Vec<Value> = pages(client, first, "nextLink")
        .await?
        .iter()
        .map(|c| {
            json!({
                "id": c["name"],
                "displayName": c["properties"]["displayName"],
                "status": c["properties"]["statuses"][0]["status"],
            })
        })
        .collect();
    Ok(json!({ "connections": connections }))
}

async fn delete_connection(client: &mut Client, args: Value) -> Result<Value, Failure> {
    let ConnectionRef { connection_id } = parse(args)?;
    let request =
        Request::new(Method::DELETE, connection_url(client, &connection_id)).query(api_version()).auth("powerplatform");
    client.call(&request).await?;
    Ok(json!({}))
}

async fn share_connection(client: &mut Client, args: Value) -> Result<Value, Failure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Args {
        connection_id: String,
        principal_object_id: String,
        role: String,
    }
    let a: Args = parse(args)?;
    // Desktop-flow connections are shared with service principals only (docs/rules.md §6).
    let body = json!({
        "put": [{ "properties": {
            "roleName": a.role, "capabilities": [], "NotifyShareTargetOption": "Notify",
            "principal": { "id": a.principal_object_id, "type": "ServicePrincipal", "tenantId": null },
        }}],
        "delete": [],
    });
    let url = format!("{}/modifyPermissions", connection_url(client, &a.connection_id));
    client.call(&Request::post(url).query(api_version()).auth("powerplatform").json(body)).await?;
    Ok(json!({}))
}

// --- machines and groups (Dataverse) ---------------------------------------------------

async fn find_machine_group(client: &mut Client, args: Value) -> Result<Value, Failure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Args {
        machine_name: String,
    }
    let Args { machine_name } = parse(args)?;
    let filter = format!("name eq '{}'", machine_name.replace('\'', "''")); // OData string literal
    let first = Request::get(format!("{}/flowmachines", client.surfaces.dataverse))
        .query([("$filter", filter.as_str()), ("$select", "name,_flowmachinegroupid_value")])
        .auth("dataverse");
    let machines = pages(client, first, "@odata.nextLink").await?;
    match machines.first().and_then(|m| m["_flowmachinegroupid_value"].as_str()) {
        Some(group) => Ok(json!({ "machineGroupId": group })),
        // Not an HTTP error: the query answered, with nothing in it.
        None => Err(Failure::new(404, "MachineNotFound", format!("no machine named '{machine_name}'"))),
    }
}

async fn list_machine_groups(client: &mut Client) -> Result<Value, Failure> {
    let first = Request::get(format!("{}/flowmachinegroups", client.surfaces.dataverse))
        .query([("$select", "name,flowgrouptype")])
        .auth("dataverse");
    let groups: Vec<Value> = pages(client, first, "@odata.nextLink")
        .await?
        .iter()
        .map(|g| {
            let kind = match g["flowgrouptype"].as_i64() {
                Some(545_940_001) => json!("Standard"),
                Some(545_940_002) => json!("Default"),
                _ => json!(g["flowgrouptype"].to_string()),
            };
            json!({ "id": g["flowmachinegroupid"], "name": g["name"], "type": kind })
        })
        .collect();
    Ok(json!({ "groups": groups }))
}

async fn share_machine_group(client: &mut Client, args: Value) -> Result<Value, Failure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Args {
        machine_group_id: String,
        system_user_id: String,
        access: String,
    }
    let a: Args = parse(args)?;
    let mask = match a.access.as_str() {
        "User" => "ReadAccess",
        "Co-owner" => "ReadAccess,WriteAccess,DeleteAccess,ShareAccess,AssignAccess",
        other => return Err(Failure::adapter(format!("unknown access '{other}'"))),
    };
    let body = json!({
        "Target": { "@odata.type": "Microsoft.Dynamics.CRM.flowmachinegroup", "flowmachinegroupid": a.machine_group_id },
        "PrincipalAccess": {
            "Principal": { "@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": a.system_user_id },
            "AccessMask": mask,
        },
    });
    client
        .call(&Request::post(format!("{}/GrantAccess", client.surfaces.dataverse)).auth("dataverse").json(body))
        .await?;
    Ok(json!({}))
}

// --- runs (both doors) ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartArgs {
    door: Door,
    flow_id: String,
    connection_id: Option<String>,
    connection_reference_name: Option<String>,
    run_mode: RunMode,
    inputs: Option<Value>,
    priority: Option<String>,
}

async fn start_run(client: &mut Client, args: Value) -> Result<Value, Failure> {
    let a: StartArgs = parse(args)?;
    let mode = client.decisions.run_mode(a.run_mode).as_str();
    let (run_id, run) = match a.door {
        Door::Dataverse => {
            let mut body = json!({ "runMode": mode });
            match (&a.connection_reference_name, &a.connection_id) {
                (Some(reference), _) => {
                    body["connectionName"] = json!(reference);
                    body["connectionType"] = json!(2);
                }
                (None, Some(connection)) => body["connectionName"] = json!(connection),
                (None, None) => return Err(Failure::adapter("startRun needs connectionId or connectionReferenceName")),
            }
            if let Some(p) = &a.priority {
                body["runPriority"] = json!(p);
            }
            if let Some(inputs) = &a.inputs {
                body["inputs"] = json!(inputs.to_string()); // RunDesktopFlow takes a JSON string
            }
            let url =
                format!("{}/workflows({})/Microsoft.Dynamics.CRM.RunDesktopFlow", client.surfaces.dataverse, a.flow_id);
            let started = client.call(&Request::post(url).auth("dataverse").json(body)).await?.json()?;
            let id = started["flowsessionId"].as_str().ok_or_else(|| Failure::adapter("no flowsessionId"))?.to_owned();
            (id, Run { door: Door::Dataverse, location: None, not_before: Instant::now(), outputs: None })
        }
        Door::Connector => {
            let connection =
                a.connection_id.as_deref().ok_or_else(|| Failure::adapter("the connector door needs connectionId"))?;
            let url =
                format!("{}/{connection}/uiFlowTypes/desktopV2/uiflows/{}/runs", client.surfaces.runtime, a.flow_id);
            let mut query = vec![("runMode", mode)];
            if let Some(p) = &a.priority {
                query.push(("runPriority", p));
            }
            let body = json!({ "item": a.inputs.clone().unwrap_or_else(|| json!({})) });
            let answer = client.call(&Request::post(url).query(query).auth("powerplatform").json(body)).await?;
            let started = answer.json()?;
            let location = answer.location.clone();
            let id = match started["flowsessionId"].as_str() {
                Some(id) => id.to_owned(),
                None => location.as_deref().and_then(|l| l.rsplit('/').next()).unwrap_or_default().to_owned(),
            };
            // The asynchronous pattern: poll the Location, not before its Retry-After.
            let not_before = Instant::now() + client.decisions.poll_delay(answer.retry_after);
            (id, Run { door: Door::Connector, location, not_before, outputs: None })
        }
    };
    client.runs.insert(run_id.clone(), run);
    Ok(json!({ "runId": run_id }))
}

/// A run this client did not start is read through Dataverse, the door anyone may poll.
fn run_of(client: &mut Client, run_id: &str) -> Run {
    client
        .runs
        .entry(run_id.to_owned())
        .or_insert_with(|| Run { door: Door::Dataverse, location: None, not_before: Instant::now(), outputs: None })
        .clone()
}

async fn wait_for_run(client: &mut Client, args: Value) -> Result<Value, Failure> {
    let RunRef { run_id } = parse(args)?;
    let mut run = run_of(client, &run_id);
    for _ in 0..MAX_POLLS {
        tokio::time::sleep_until(run.not_before).await;
        let (outcome, retry_after) = match (run.door, run.location.clone()) {
            (Door::Connector, Some(location)) => poll_connector(client, &mut run, &location).await?,
            _ => poll_dataverse(client, &run_id).await?,
        };
        if let Some(outcome) = outcome {
            client.runs.insert(run_id, run);
            return Ok(outcome);
        }
        run.not_before = Instant::now() + client.decisions.poll_delay(retry_after);
    }
    Err(Failure::new(0, "RunNotFinished", format!("run {run_id} not finished after {MAX_POLLS} polls")))
}

/// A Dataverse flow session's status code as a name, when the run is over.
fn terminal_status(code: i64) -> Option<&'static str> {
    Some(match code {
        4 => "Succeeded",
        5 => "Skipped",
        7 => "Cancelled",
        8 => "Failed",
        9 => "Faulted",
        10 => "TimedOut",
        11 => "Aborted",
        12 => "Ignored",
        13 => "Deleted",
        14 => "Terminated",
        _ => return None, // NotSpecified, Paused, Running, Waiting, Suspended: not over
    })
}

type Poll = (Option<Value>, Option<Duration>);

async fn poll_dataverse(client: &mut Client, run_id: &str) -> Result<Poll, Failure> {
    let request = Request::get(format!("{}/flowsessions({run_id})", client.surfaces.dataverse))
        .query([("$select", "statuscode,errorcode,errormessage")])
        .auth("dataverse");
    let answer = client.call(&request).await?;
    let session = answer.json()?;
    let Some(status) = session["statuscode"].as_i64().and_then(terminal_status) else {
        return Ok((None, answer.retry_after));
    };
    let mut outcome = json!({ "status": status });
    for (from, to) in [("errorcode", "code"), ("errormessage", "message")] {
        if let Some(v) = session[from].as_str().filter(|v| !v.is_empty()) {
            outcome[to] = json!(v);
        }
    }
    Ok((Some(outcome), None))
}

async fn poll_connector(client: &mut Client, run: &mut Run, location: &str) -> Result<Poll, Failure> {
    let answer = client.send(&Request::get(location).auth("powerplatform")).await?;
    match answer.status {
        202 => Ok((None, answer.retry_after)),
        200..=299 => {
            let body = answer.json()?;
            run.outputs = Some(body.get("outputs").cloned().unwrap_or_else(|| json!({})));
            Ok((Some(json!({ "status": body.get("status").cloned().unwrap_or_else(|| json!("Succeeded")) })), None))
        }
        _ => {
            let failure = answer.failure();
            if !is_run_outcome(&answer, &failure) {
                return Err(failure);
            }
            // GetRunStatus reports a finished, unsuccessful run as an error answer carrying
            // the run's code (runs.md, The connector door).
            let status = match failure.code.as_str() {
                "Cancelled" => "Cancelled",
                "DesktopFlowsActionTimeout" => "TimedOut",
                _ => "Failed",
            };
            let mut outcome = json!({ "status": status, "code": failure.code });
            if let Some(m) = failure.message {
                outcome["message"] = json!(m);
            }
            Ok((Some(outcome), None))
        }
    }
}

/// Whether an error answer of GetRunStatus is the run's end rather than a refusal to show
/// it: refusals are 403, a rejected token, or a Dataverse-style code (no such run).
fn is_run_outcome(answer: &Answer, failure: &Failure) -> bool {
    answer.status != 403 && !answer.token_rejected && !failure.code.starts_with("0x")
}

async fn get_run_outputs(client: &mut Client, args: Value) -> Result<Value, Failure> {
    let RunRef { run_id } = parse(args)?;
    let mut run = run_of(client, &run_id);
    if let (Door::Connector, Some(location)) = (run.door, run.location.clone()) {
        if run.outputs.is_none() {
            let answer = client.call(&Request::get(location).auth("powerplatform")).await?;
            if answer.status == 202 {
                return Err(Failure::new(202, "RunNotFinished", format!("run {run_id} has not finished")));
            }
            run.outputs = Some(answer.json()?.get("outputs").cloned().unwrap_or_else(|| json!({})));
        }
        let outputs = run.outputs.clone();
        client.runs.insert(run_id, run);
        return Ok(json!({ "outputs": outputs }));
    }
    let url = format!("{}/flowsessions({run_id})/outputs/$value", client.surfaces.dataverse);
    Ok(json!({ "outputs": client.call(&Request::get(url).auth("dataverse")).await?.json()? }))
}

async fn cancel_run(client: &mut Client, args: Value) -> Result<Value, Failure> {
    let RunRef { run_id } = parse(args)?;
    // The connector has no cancel operation: a run of either door is a flow session, which
    // Dataverse cancels.
    let url =
        format!("{}/flowsessions({run_id})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun", client.surfaces.dataverse);
    client.call(&Request::post(url).auth("dataverse").json(json!({}))).await?;
    Ok(json!({}))
}
