//! The control surface under `/_mock/` (every host and port): HTTP translation over
//! [`crate::control::Control`], which holds the operations (the typed Rust handle calls the
//! same service). A call addresses one sandbox with the `x-mock-sandbox` header or
//! `?sandbox=`; `default` otherwise.
//!
//! | call | does |
//! |---|---|
//! | `GET /_mock/health` | 200 when ready |
//! | `GET /_mock/fixture` / `PUT /_mock/fixture` | the loaded world (test credentials included) / load another |
//! | `POST /_mock/reset` | world, clock, journal, ids, settings and fault rules back to the fixture |
//! | `GET /_mock/state` | what the sandbox holds now |
//! | `GET /_mock/journal` / `DELETE /_mock/journal` | read (filters, raw or normalised) / clear |
//! | `GET /_mock/clock`, `PUT /_mock/clock`, `POST /_mock/clock/advance` | the virtual clock |
//! | `GET /_mock/settings`, `PATCH /_mock/settings` | per-sandbox settings (token lifetime, run queue limits, throttle, async) |
//! | `GET /_mock/sandboxes`, `POST /_mock/sandboxes`, `DELETE /_mock/sandboxes/{name}` | isolation |
//! | `GET /_mock/ca.pem` | the CA certificate clients must trust |
//! | `POST /_mock/machines/register` | silent registration of a machine by a service principal |
//! | `PATCH /_mock/machines/{id}` | change a machine's facts (join state, allowlist, accounts, sessions, online, …; `group: null`) |
//! | `PUT /_mock/keyvault/{vault}/secrets/{name}` | set a secret in the stand-in for Azure Key Vault |
//! | `GET /_mock/runs` | the run queue (`group=`, `status=`) |
//! | `POST /_mock/runs/{id}/complete`, `POST /_mock/runs/{id}/fail` | end one run now |
//! | `POST /_mock/desktopflows`, `PATCH /_mock/desktopflows/{id}` | create or change a desktop flow |
//! | `POST /_mock/faults`, `GET /_mock/faults`, `DELETE /_mock/faults[/{id}]` | fault rules (scenarios.md) |
//! | `GET /_mock/scenarios`, `POST /_mock/scenarios/{name}` | named scenarios: list, apply |
//! | `GET /_mock/retry-after` | Retry-After violations (`all=true`: every verdict) |

use super::extract::{ApiJson, ApiPath, ApiQuery, NoParameters, from_json_value, is_empty, json_body};
use super::{ApiError, RouteInfo, json};
use crate::control::{
    ClockChange, Control, ControlError, DesktopFlowPatch, JournalFilter, MachineFactsPatch, MachineRegistration,
    NewSandbox, RunFilter, RunOutcome, SettingsPatch,
};
use crate::domain::ids::{AppId, EnvironmentId, FlowSessionId, MachineGroupId, MachineId, WorkflowId};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Routes of the control surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/_mock/health", get(get_health))
        .route("/_mock/fixture", get(get_fixture).put(put_fixture))
        .route("/_mock/reset", post(post_reset))
        .route("/_mock/state", get(get_state))
        .route("/_mock/journal", get(get_journal).delete(delete_journal))
        .route("/_mock/clock", get(get_clock).put(put_clock))
        .route("/_mock/clock/advance", post(post_clock_advance))
        .route("/_mock/settings", get(get_settings).patch(patch_settings))
        .route("/_mock/sandboxes", get(get_sandboxes).post(post_sandbox))
        .route("/_mock/sandboxes/{name}", delete(delete_sandbox))
        .route("/_mock/ca.pem", get(get_ca))
        .route("/_mock/machines/register", post(post_register_machine))
        .route("/_mock/machines/{id}", patch(patch_machine))
        .route("/_mock/keyvault/{vault}/secrets/{name}", put(put_vault_secret))
        .route("/_mock/runs", get(get_runs))
        .route("/_mock/runs/{id}/complete", post(post_complete_run))
        .route("/_mock/runs/{id}/fail", post(post_fail_run))
        .route("/_mock/desktopflows", post(post_desktop_flow))
        .route("/_mock/desktopflows/{id}", patch(patch_desktop_flow))
        .route("/_mock/faults", get(get_faults).post(post_fault).delete(delete_faults))
        .route("/_mock/faults/{id}", delete(delete_fault))
        .route("/_mock/retry-after", get(get_retry_after))
        .route("/_mock/scenarios", get(get_scenarios))
        .route("/_mock/scenarios/{name}", post(post_scenario))
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Sandbox(e) => Self::Sandbox(e),
            ControlError::Domain(e) => Self::Domain(e),
            ControlError::Invalid { code, message } => Self::bad_request(code, message),
            ControlError::NotFound { code, message } => Self::NotFound { code, message },
            ControlError::Conflict { code, message } => Self::BadRequest { status: 409, code, message },
        }
    }
}

/// The answer of a control call: the operation's output as JSON.
fn answer<T: Serialize>(status: StatusCode, out: Result<T, ControlError>) -> Result<Response, ApiError> {
    Ok(json(status, serde_json::to_value(out?).unwrap_or(Value::Null)))
}

fn control(app: AppState) -> Control {
    Control::new(app)
}

async fn get_health(State(app): State<AppState>) -> Response {
    #[derive(Serialize)]
    struct Ready<'a> {
        sandboxes: Vec<String>,
        status: &'static str,
        surfaces: &'a serde_json::value::RawValue,
    }
    let health = control(app).health();
    let ready = Ready { sandboxes: health.sandboxes, status: "ready", surfaces: super::routing::surfaces_served() };
    (StatusCode::OK, axum::Json(ready)).into_response()
}

async fn get_fixture(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
) -> Result<Response, ApiError> {
    answer(StatusCode::OK, control(app).fixture(&route.sandbox))
}

/// Body: a whole world, or `{"embedded": "name"}` for a world shipped in the binary.
async fn put_fixture(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let world = match body.get("embedded").and_then(Value::as_str) {
        Some(name) if body.as_object().is_some_and(|o| o.len() == 1) => Control::embedded_world(name)?,
        _ => {
            // The strict parser's shape errors (never the value received), in the fixture's code.
            let world: fixtures::WorldFile =
                from_json_value(body).map_err(|e| e.recode("InvalidFixture", "request body: "))?;
            // Checked here too, so that an error names the request body rather than the world.
            world.validate("request body").map_err(|e| ApiError::Sandbox(e.into()))?;
            world
        }
    };
    answer(StatusCode::OK, control(app).load_fixture(&route.sandbox, world))
}

async fn post_reset(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    control(app).reset(&route.sandbox)?;
    Ok(json(StatusCode::OK, json!({ "sandbox": route.sandbox, "reset": true })))
}

/// What a sandbox holds now: the world as the domain sees it (credentials are the fixture's
/// test data), its clock, settings and journal counters.
async fn get_state(State(app): State<AppState>, Extension(route): Extension<RouteInfo>) -> Result<Response, ApiError> {
    answer(StatusCode::OK, control(app).state(&route.sandbox))
}

/// Journal filters. Unknown parameters are ignored, like the real APIs do.
#[derive(Debug, Deserialize)]
struct JournalQuery {
    environment: Option<String>,
    method: Option<String>,
    /// Prefix of the path as the client sent it.
    path: Option<String>,
    surface: Option<String>,
    /// A named operation (`connections.put`, …; docs/operations.md).
    operation: Option<String>,
    /// `request` or `event`.
    kind: Option<crate::journal::EntryKind>,
    status: Option<u16>,
    /// `raw` (default) or `normalised`.
    view: Option<String>,
    /// Only entries with `seq` greater than this.
    since: Option<u64>,
    /// Page size (default 1000, at most 10 000).
    limit: Option<usize>,
    /// `true`: only `{"count": n}` for the filters given.
    count: Option<bool>,
}

/// A page of the journal; raw entries go out as stored, without re-parsing.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JournalAnswer<'a> {
    sandbox: &'a str,
    view: &'static str,
    /// All evictions since the last clear; `evictedByKind` splits them.
    evicted: u64,
    evicted_by_kind: crate::journal::Evictions,
    leaks: u64,
    capacity: usize,
    bytes: usize,
    /// The `since` of the next page; `null` at the end.
    next: Option<u64>,
    entries: JournalEntries,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum JournalEntries {
    Raw(Vec<Box<serde_json::value::RawValue>>),
    Normalised(Vec<Value>),
}

async fn get_journal(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiQuery(q): ApiQuery<JournalQuery>,
) -> Result<Response, ApiError> {
    let normalised = match q.view.as_deref() {
        None | Some("raw") => false,
        Some("normalised" | "normalized") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "InvalidJournalView",
                format!("view must be 'raw' or 'normalised', not '{other}'."),
            ));
        }
    };
    let operation = match q.operation.as_deref() {
        None => None,
        Some(name) => Some(crate::operation::Operation::parse(name).ok_or_else(|| {
            ApiError::bad_request(
                "InvalidJournalFilter",
                format!(
                    "'{name}' is not a named operation; docs/operations.md lists them (connections.put, dataverse.query, …)."
                ),
            )
        })?),
    };
    if q.limit.is_some_and(|l| l == 0 || l > crate::journal::MAX_PAGE) {
        return Err(ApiError::bad_request(
            "InvalidQueryParameter",
            format!("The query parameter 'limit' must be 1 to {}.", crate::journal::MAX_PAGE),
        ));
    }
    let filter = JournalFilter {
        since: q.since,
        limit: q.limit,
        kind: q.kind,
        operation,
        method: q.method,
        path: q.path,
        surface: q.surface,
        environment: q.environment,
        status: q.status,
    };
    let control = control(app);
    if q.count == Some(true) {
        return Ok(json(StatusCode::OK, json!({ "count": control.journal_count(&route.sandbox, &filter)? })));
    }
    let read = control.journal(&route.sandbox, &filter)?;
    // Normalising happens outside the lock: it is the slowest thing here.
    let (view, entries) = if normalised {
        ("normalised", JournalEntries::Normalised(crate::normalise::normalise_all(&read.values())))
    } else {
        ("raw", JournalEntries::Raw(read.entries))
    };
    let c = read.counts;
    let answer = JournalAnswer {
        sandbox: &read.sandbox,
        view,
        evicted: c.evicted,
        evicted_by_kind: c.evicted_by_kind,
        leaks: c.leaks,
        capacity: c.capacity,
        bytes: c.bytes,
        next: read.next,
        entries,
    };
    let body = serde_json::to_vec(&answer).map_err(|_| ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn delete_journal(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    control(app).clear_journal(&route.sandbox)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_clock(State(app): State<AppState>, Extension(route): Extension<RouteInfo>) -> Result<Response, ApiError> {
    answer(StatusCode::OK, control(app).clock(&route.sandbox))
}

async fn put_clock(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(change): ApiJson<ClockChange>,
) -> Result<Response, ApiError> {
    let control = control(app);
    let view = control.set_clock(&route.sandbox, change);
    clock_answer(&control, &route.sandbox, view).await
}

/// A clock change's answer, once the first attempt of each callback it owes is made.
async fn clock_answer(
    control: &Control,
    sandbox: &str,
    view: Result<crate::control::ClockView, ControlError>,
) -> Result<Response, ApiError> {
    let mut view = view?;
    control.deliver_callbacks(sandbox, &mut view).await?;
    answer(StatusCode::OK, Ok(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    seconds: u64,
    #[serde(default)]
    minutes: u64,
    #[serde(default)]
    hours: u64,
    /// Until no run is Running (at most 24 h).
    #[serde(default, rename = "untilIdle")]
    until_idle: bool,
    /// To the next run transition that is due (at most 24 h).
    #[serde(default, rename = "toNextEvent")]
    to_next_event: bool,
}

async fn post_clock_advance(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(by): ApiJson<Advance>,
) -> Result<Response, ApiError> {
    let span = by.seconds > 0 || by.minutes > 0 || by.hours > 0;
    if u8::from(by.until_idle) + u8::from(by.to_next_event) + u8::from(span) > 1 {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "Give one of: a duration (seconds, minutes, hours), untilIdle or toNextEvent.",
        ));
    }
    let control = control(app);
    if by.until_idle {
        return clock_answer(&control, &route.sandbox, control.advance_until_idle(&route.sandbox)).await;
    }
    if by.to_next_event {
        return clock_answer(&control, &route.sandbox, control.advance_to_next_event(&route.sandbox)).await;
    }
    let total = by
        .hours
        .checked_mul(3600)
        .and_then(|h| by.minutes.checked_mul(60).and_then(|m| m.checked_add(h)))
        .and_then(|hm| hm.checked_add(by.seconds))
        .ok_or(crate::domain::Error::Clock(crate::domain::clock::ClockError::OutOfRange))?;
    let view = control.advance_clock(&route.sandbox, std::time::Duration::from_secs(total));
    clock_answer(&control, &route.sandbox, view).await
}

async fn get_settings(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
) -> Result<Response, ApiError> {
    answer(StatusCode::OK, control(app).settings(&route.sandbox))
}

/// Sets the given fields; unknown fields are refused by name.
async fn patch_settings(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Response, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request("InvalidRequestContent", "The settings patch must be a JSON object."));
    }
    let patch: SettingsPatch = from_json_value(patch)?;
    answer(StatusCode::OK, control(app).patch_settings(&route.sandbox, patch))
}

async fn get_sandboxes(State(app): State<AppState>) -> Response {
    json(StatusCode::OK, json!({ "value": control(app).sandboxes() }))
}

async fn post_sandbox(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Every field is optional, so an empty body (with or without a content type) is the default.
    let spec: NewSandbox = if is_empty(&body) { NewSandbox::default() } else { json_body(&headers, &body)? };
    answer(StatusCode::CREATED, control(app).create_sandbox(spec))
}

async fn delete_sandbox(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    control(app).delete_sandbox(&name)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_ca(State(app): State<AppState>) -> Result<Response, ApiError> {
    let pem = control(app).ca_pem()?;
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
}

fn bad_field(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("InvalidRequestContent", format!("The field '{field}' {why}."))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    /// `-environmentid`.
    environment: String,
    /// `-applicationid`: the registering service principal.
    application_id: String,
    /// `-groupid`; absent for a stand-alone machine.
    #[serde(default)]
    group_id: Option<String>,
    /// The machine's name.
    name: String,
    /// Its id; made up when absent.
    #[serde(default)]
    machine_id: Option<String>,
}

const REGISTER_KEYS: [&str; 5] = ["environment", "applicationId", "groupId", "name", "machineId"];

/// Silent registration: the service principal owns the machine it registers (DECISIONS.md).
async fn post_register_machine(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Response, ApiError> {
    // The registration's own keys, and the machine's facts (unknown fields refused) in the rest.
    let (own, rest): (serde_json::Map<String, Value>, serde_json::Map<String, Value>) =
        body.into_iter().partition(|(k, _)| REGISTER_KEYS.contains(&k.as_str()));
    let r: RegisterBody = from_json_value(Value::Object(own))?;
    let facts: MachineFactsPatch = from_json_value(Value::Object(rest))?;
    let environment =
        EnvironmentId::parse(&r.environment).map_err(|e| bad_field("environment", format_args!("is invalid: {e}")))?;
    let application_id =
        AppId::parse(&r.application_id).map_err(|e| bad_field("applicationId", format_args!("is invalid: {e}")))?;
    let group = match &r.group_id {
        Some(g) => Some(MachineGroupId::parse(g).map_err(|e| bad_field("groupId", format_args!("is invalid: {e}")))?),
        None => None,
    };
    let machine_id = match &r.machine_id {
        Some(m) => Some(MachineId::parse(m).map_err(|e| bad_field("machineId", format_args!("is invalid: {e}")))?),
        None => None,
    };
    let registration = MachineRegistration {
        environment,
        application_id,
        group,
        name: r.name,
        machine_id,
        facts: facts.into_facts()?,
    };
    answer(StatusCode::CREATED, control(app).register_machine(&route.sandbox, registration))
}

/// Changes what is true of a machine; connection statuses follow at once.
async fn patch_machine(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(id): ApiPath<String>,
    ApiJson(facts): ApiJson<MachineFactsPatch>,
) -> Result<Response, ApiError> {
    let id =
        MachineId::parse(&id).map_err(|e| ApiError::NotFound { code: "MachineNotFound", message: e.to_string() })?;
    answer(StatusCode::OK, control(app).patch_machine_fields(&route.sandbox, id, facts))
}

/// The body of a vault secret: its value (a secret: this surface is not journaled, and the
/// value is redacted wherever it appears later).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultSecretBody {
    value: String,
}

/// `az keyvault secret set` for the sandbox's stand-in for Azure Key Vault.
async fn put_vault_secret(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath((vault, name)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<VaultSecretBody>,
) -> Result<Response, ApiError> {
    let out = control(app).set_vault_secret(&route.sandbox, &vault, &name, secrecy::SecretString::from(b.value));
    answer(StatusCode::OK, out)
}

/// `GET /_mock/runs` filters. Unknown parameters (`sandbox`, …) are ignored, as the journal's.
#[derive(Debug, Deserialize)]
struct RunsQuery {
    group: Option<String>,
    status: Option<String>,
}

/// The run queue as the portal shows it.
async fn get_runs(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Response, ApiError> {
    let group = match &q.group {
        Some(g) => Some(MachineGroupId::parse(g).map_err(|e| bad_field("group", format_args!("is invalid: {e}")))?),
        None => None,
    };
    let filter = RunFilter { group, status: q.status };
    let runs = control(app).runs(&route.sandbox, &filter)?;
    Ok(json(StatusCode::OK, json!({ "value": runs })))
}

fn run_id(id: &str) -> Result<FlowSessionId, ApiError> {
    FlowSessionId::parse(id).map_err(|e| ApiError::NotFound { code: "RunNotFound", message: e.to_string() })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    #[serde(default)]
    outputs: Option<serde_json::Map<String, Value>>,
}

/// Ends a run now, Succeeded with the outputs given (`{}` without).
async fn post_complete_run(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    let b: CompleteBody = if is_empty(&body) { CompleteBody { outputs: None } } else { json_body(&headers, &body)? };
    let outputs = Value::Object(b.outputs.unwrap_or_default());
    answer(StatusCode::OK, control(app).end_run(&route.sandbox, id, RunOutcome::Complete { outputs }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// Ends a run now, Failed with the code given.
async fn post_fail_run(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<FailBody>,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    answer(
        StatusCode::OK,
        control(app).end_run(&route.sandbox, id, RunOutcome::Fail { code: b.code, message: b.message }),
    )
}

/// A desktop flow in the fixture format, with `environment` naming where it goes.
async fn post_desktop_flow(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Response, ApiError> {
    let (own, rest): (serde_json::Map<String, Value>, serde_json::Map<String, Value>) =
        body.into_iter().partition(|(k, _)| k == "environment");
    let environment = own
        .get("environment")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_field("environment", "is required (an environment id)"))?;
    let environment =
        EnvironmentId::parse(environment).map_err(|e| bad_field("environment", format_args!("is invalid: {e}")))?;
    let flow: fixtures::DesktopFlowFile = from_json_value(Value::Object(rest))?;
    for (field, id) in [("workflowId", &flow.workflow_id), ("owner", &flow.owner)] {
        if !fixtures::is_guid(id) {
            return Err(bad_field(field, "must be a GUID"));
        }
    }
    answer(StatusCode::CREATED, control(app).create_desktop_flow(&route.sandbox, environment, flow))
}

async fn patch_desktop_flow(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(id): ApiPath<String>,
    ApiJson(p): ApiJson<DesktopFlowPatch>,
) -> Result<Response, ApiError> {
    let id = WorkflowId::parse(&id)
        .map_err(|e| ApiError::NotFound { code: "DesktopFlowNotFound", message: e.to_string() })?;
    let change = p.into_change()?;
    answer(StatusCode::OK, control(app).patch_desktop_flow(&route.sandbox, id, change))
}

/// Body: a fault rule (`scenarios.md`, Fault rules); unknown fields are refused.
async fn post_fault(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("InvalidFaultRule", "The fault rule must be a JSON object."));
    }
    let spec: crate::fault::FaultSpec = from_json_value(body).map_err(|e| e.recode("InvalidFaultRule", ""))?;
    answer(StatusCode::CREATED, control(app).add_fault(&route.sandbox, spec))
}

async fn get_faults(State(app): State<AppState>, Extension(route): Extension<RouteInfo>) -> Result<Response, ApiError> {
    let rules = control(app).faults(&route.sandbox)?;
    Ok(json(StatusCode::OK, json!({ "value": rules })))
}

async fn delete_faults(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    control(app).clear_faults(&route.sandbox)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_fault(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(id): ApiPath<String>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    control(app).remove_fault(&route.sandbox, &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct RetryAfterQuery {
    /// `true`: every verdict, honoured ones included.
    all: Option<bool>,
}

async fn get_retry_after(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiQuery(q): ApiQuery<RetryAfterQuery>,
) -> Result<Response, ApiError> {
    let verdicts = control(app).retry_after(&route.sandbox, q.all.unwrap_or(false))?;
    Ok(json(StatusCode::OK, json!({ "value": verdicts })))
}

async fn get_scenarios(State(app): State<AppState>) -> Result<Response, ApiError> {
    let all = control(app).scenarios()?;
    Ok(json(StatusCode::OK, json!({ "value": all })))
}

/// Takes no body; answers what the scenario changed.
async fn post_scenario(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(name): ApiPath<String>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    answer(StatusCode::OK, control(app).apply_scenario(&route.sandbox, &name))
}
