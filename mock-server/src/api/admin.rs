//! The control surface under `/_mock/` (every host and port). A call addresses one sandbox
//! with the `x-mock-sandbox` header or `?sandbox=`; `default` otherwise.
//!
//! | call | does |
//! |---|---|
//! | `GET /_mock/health` | 200 when ready |
//! | `GET /_mock/fixture` / `PUT /_mock/fixture` | the loaded world (test credentials included) / load another |
//! | `POST /_mock/reset` | world, clock, journal, ids and settings back to the fixture |
//! | `GET /_mock/state` | what the sandbox holds now |
//! | `GET /_mock/journal` / `DELETE /_mock/journal` | read (filters, raw or normalised) / clear |
//! | `GET /_mock/clock`, `PUT /_mock/clock`, `POST /_mock/clock/advance` | the virtual clock |
//! | `GET /_mock/settings`, `PATCH /_mock/settings` | per-sandbox settings (token lifetime) |
//! | `GET /_mock/sandboxes`, `POST /_mock/sandboxes`, `DELETE /_mock/sandboxes/{name}` | isolation |
//! | `GET /_mock/ca.pem` | the CA certificate clients must trust |
//! | `POST /_mock/machines/register` | silent registration of a machine by a service principal |
//! | `PATCH /_mock/machines/{id}` | change a machine's facts (join state, allowlist, accounts, online, …) |
//! | `PUT /_mock/keyvault/{vault}/secrets/{name}` | set a secret in the stand-in for Azure Key Vault |

use super::extract::{ApiJson, ApiPath, ApiQuery, NoParameters, from_json_value, is_empty, json_body};
use super::{ApiError, RouteInfo, json};
use crate::domain::access::{Grantee, Share};
use crate::domain::clock::VirtualClock;
use crate::domain::clock::{ClockMode, Timestamp, format_timestamp};
use crate::domain::ids::{AppId, EnvironmentId, MachineGroupId, MachineId, TenantId};
use crate::domain::membership::{MachineFacts, Registration};
use crate::domain::world::{Machine, WindowsAccount, World};
use crate::journal::Journal;
use crate::sandbox::{Sandbox, Settings};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::Deserialize;
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
}

async fn get_health(State(app): State<AppState>) -> Response {
    let sandboxes: Vec<String> = app.registry().all().iter().map(|s| s.name.clone()).collect();
    json(
        StatusCode::OK,
        json!({ "status": "ready", "sandboxes": sandboxes, "surfaces": super::routing::surfaces_served() }),
    )
}

async fn get_fixture(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
) -> Result<Response, ApiError> {
    let sb = app.registry().get(&route.sandbox)?;
    let fixture = sb.apply(|st| serde_json::to_value(&st.fixture)).unwrap_or(Value::Null);
    Ok(json(StatusCode::OK, fixture))
}

/// Body: a whole world, or `{"embedded": "name"}` for a world shipped in the binary.
async fn put_fixture(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let world = match body.get("embedded").and_then(Value::as_str) {
        Some(name) if body.as_object().is_some_and(|o| o.len() == 1) => {
            fixtures::world(name).map_err(|e| ApiError::Sandbox(e.into()))?
        }
        _ => {
            // The strict parser's shape errors (never the value received), in the fixture's code.
            let world: fixtures::WorldFile =
                from_json_value(body).map_err(|e| e.recode("InvalidFixture", "request body: "))?;
            world.validate("request body").map_err(|e| ApiError::Sandbox(e.into()))?;
            world
        }
    };
    let reg = app.registry();
    reg.load(&route.sandbox, world)?;
    let loaded = reg.get(&route.sandbox)?.apply(|st| st.fixture.name.clone());
    Ok(json(StatusCode::OK, json!({ "sandbox": route.sandbox, "loaded": loaded })))
}

async fn post_reset(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    app.registry().get(&route.sandbox)?.reset();
    Ok(json(StatusCode::OK, json!({ "sandbox": route.sandbox, "reset": true })))
}

fn shares_json(shares: &[Share]) -> Vec<Value> {
    shares
        .iter()
        .map(|s| {
            let (kind, id) = match s.grantee {
                Grantee::Principal(p) => ("principal", p.to_string()),
                Grantee::Team(t) => ("team", t.to_string()),
            };
            json!({ kind: id, "accessMask": s.rights.names() })
        })
        .collect()
}

/// A machine as the control surface shows it: every fact, account names (never passwords).
fn machine_json(m: &Machine) -> Value {
    json!({
        "id": m.id.to_string(), "name": m.name, "group": m.group.to_string(),
        "owner": m.owner.to_string(), "joinType": format!("{:?}", m.join_type),
        "windowsAccounts": m.windows_accounts.iter().map(|a| json!({"username": a.username, "interactiveLogon": a.interactive_logon})).collect::<Vec<_>>(),
        "entraSynced": m.entra_synced,
        "allowedTenants": m.allowed_tenants.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "legacySignInError": m.legacy_sign_in_error,
        "windowsEdition": format!("{:?}", m.windows_edition),
        "agentVersion": m.agent_version,
        "sessionCapacity": m.session_capacity,
        "online": m.online,
        "maintenance": m.maintenance,
        "shares": shares_json(&m.shares),
    })
}

fn clock_view(sandbox: &str, clock: &VirtualClock) -> Value {
    json!({ "sandbox": sandbox, "now": format_timestamp(clock.now()), "mode": clock.mode() })
}

/// What a sandbox holds now: the world as the domain sees it (credentials are the fixture's
/// test data), its clock, settings and journal counters.
async fn get_state(State(app): State<AppState>, Extension(route): Extension<RouteInfo>) -> Result<Response, ApiError> {
    let sb = app.registry().get(&route.sandbox)?;
    let journal = sb.journal(|j| {
        json!({ "entries": j.len(), "bytes": j.bytes(), "evicted": j.evicted().total(), "evictedByKind": j.evicted(), "leaks": j.leaks(), "capacity": j.limits().entries })
    });
    let state = sb.apply(|st| {
    let w = &st.world;
    let environments: Vec<Value> = w
        .environments
        .iter()
        .map(|e| {
            json!({
                "id": e.id.as_str(),
                "tenant": e.tenant.to_string(),
                "displayName": e.display_name,
                "apiHost": e.id.api_host(),
                "dataverse": { "org": e.org, "host": e.org_host(), "organizationId": e.organization_id.to_string() },
                "machineGroups": e.machine_groups.iter().map(|g| json!({
                    "id": g.id.to_string(), "name": g.name, "type": format!("{:?}", g.group_type),
                    "owner": g.owner.to_string(),
                    "shares": shares_json(&g.shares),
                    "machines": e.machines.iter().filter(|m| m.group == g.id).map(|m| m.id.to_string()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "machines": e.machines.iter().map(machine_json).collect::<Vec<_>>(),
            })
        })
        .collect();
        json!({
            "sandbox": sb.name,
            "fixture": st.fixture.name,
            "clock": clock_view(&sb.name, &st.clock),
            "settings": st.settings,
            "journal": journal,
            "tenants": w.tenants.iter().map(|t| json!({"id": t.id.to_string(), "domain": t.domain, "displayName": t.display_name})).collect::<Vec<_>>(),
            "users": w.users.iter().map(|u| json!({"objectId": u.object_id.to_string(), "tenant": u.tenant.to_string(), "userPrincipalName": u.upn})).collect::<Vec<_>>(),
            "servicePrincipals": w.service_principals.iter().map(|s| json!({"appId": s.app_id.to_string(), "objectId": s.object_id.to_string(), "tenant": s.tenant.to_string(), "displayName": s.display_name})).collect::<Vec<_>>(),
            "environments": environments,
            "connections": w.connections.iter().map(|c| json!({
                "id": c.id.as_written(),
                "environment": c.environment.to_string(),
                "connector": c.connector,
                "displayName": c.display_name,
                "parameterSet": c.parameters.name(),
                "targetId": c.parameters.target().to_string(),
                "username": c.parameters.username(),
                "runOwner": c.parameters.run_owner().map(|o| o.app_id.to_string()),
                "createdBy": c.created_by.principal.to_string(),
                "status": w.status(c).code().unwrap_or("Connected"),
                "shares": c.shares.iter().map(|s| json!({"principal": s.principal.to_string(), "role": s.role.name()})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    });
    Ok(json(StatusCode::OK, state))
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
struct JournalAnswer<'a> {
    sandbox: &'a str,
    view: &'static str,
    /// All evictions since the last clear; `evictedByKind` splits them.
    evicted: u64,
    #[serde(rename = "evictedByKind")]
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
    let filter = crate::journal::JournalFilter {
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
    let sb = app.registry().get(&route.sandbox)?;
    if q.count == Some(true) {
        return Ok(json(StatusCode::OK, json!({ "count": sb.journal(|j| j.count(&filter)) })));
    }
    let (page, evicted, leaks, capacity, bytes) =
        sb.journal(|j| (j.page(&filter), j.evicted(), j.leaks(), j.limits().entries, j.bytes()));
    // Normalising happens outside the lock: it is the slowest thing here.
    let (view, entries) = if normalised {
        let values: Vec<Value> = page.entries.iter().filter_map(|e| serde_json::from_str(e.get()).ok()).collect();
        ("normalised", JournalEntries::Normalised(crate::normalise::normalise_all(&values)))
    } else {
        ("raw", JournalEntries::Raw(page.entries))
    };
    let answer = JournalAnswer {
        sandbox: &route.sandbox,
        view,
        evicted: evicted.total(),
        evicted_by_kind: evicted,
        leaks,
        capacity,
        bytes,
        next: page.next,
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
    app.registry().get(&route.sandbox)?.journal(Journal::clear);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_clock(State(app): State<AppState>, Extension(route): Extension<RouteInfo>) -> Result<Response, ApiError> {
    let sb = app.registry().get(&route.sandbox)?;
    Ok(json(StatusCode::OK, sb.apply(|st| clock_view(&sb.name, &st.clock))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    now: Option<Timestamp>,
    mode: Option<ClockMode>,
}

async fn put_clock(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(change): ApiJson<ClockChange>,
) -> Result<Response, ApiError> {
    let sb = app.registry().get(&route.sandbox)?;
    let view = sb.apply(|st| -> Result<Value, ApiError> {
        // Check before writing: a refused `now` must not leave a changed mode behind.
        let mut clock = st.clock.clone();
        if let Some(mode) = change.mode {
            clock.set_mode(mode);
        }
        if let Some(now) = change.now {
            clock.set(now).map_err(crate::domain::Error::from)?;
        }
        st.clock = clock;
        Ok(clock_view(&sb.name, &st.clock))
    })?;
    Ok(json(StatusCode::OK, view))
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
}

async fn post_clock_advance(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(by): ApiJson<Advance>,
) -> Result<Response, ApiError> {
    let total = by
        .hours
        .checked_mul(3600)
        .and_then(|h| by.minutes.checked_mul(60).and_then(|m| m.checked_add(h)))
        .and_then(|hm| hm.checked_add(by.seconds))
        .and_then(|s| i64::try_from(s).ok())
        .ok_or(crate::domain::Error::Clock(crate::domain::clock::ClockError::OutOfRange))?;
    let sb = app.registry().get(&route.sandbox)?;
    let view = sb.apply(|st| -> Result<Value, ApiError> {
        st.clock.advance(chrono::Duration::seconds(total)).map_err(crate::domain::Error::from)?;
        Ok(clock_view(&sb.name, &st.clock))
    })?;
    Ok(json(StatusCode::OK, view))
}

async fn get_settings(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
) -> Result<Response, ApiError> {
    let settings = app.registry().get(&route.sandbox)?.apply(|st| st.settings.clone());
    Ok(json(StatusCode::OK, serde_json::to_value(&settings).unwrap_or(Value::Null)))
}

/// Merges the given fields into the settings; unknown fields are refused by name.
async fn patch_settings(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let sb = app.registry().get(&route.sandbox)?;
    let mut merged = serde_json::to_value(sb.apply(|st| st.settings.clone())).unwrap_or(Value::Null);
    match (merged.as_object_mut(), patch.as_object()) {
        (Some(m), Some(p)) => {
            for (k, v) in p {
                m.insert(k.clone(), v.clone());
            }
        }
        _ => {
            return Err(ApiError::bad_request("InvalidRequestContent", "The settings patch must be a JSON object."));
        }
    }
    let settings: Settings = from_json_value(merged)?;
    if settings.token_lifetime_secs == 0 {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "The field 'tokenLifetimeSecs' must be at least 1.",
        ));
    }
    let out = serde_json::to_value(&settings).unwrap_or(Value::Null);
    sb.apply(|st| st.settings = settings);
    Ok(json(StatusCode::OK, out))
}

async fn get_sandboxes(State(app): State<AppState>) -> Response {
    let list: Vec<Value> = app.registry().all().iter().map(|sb| sandbox_summary(sb)).collect();
    json(StatusCode::OK, json!({ "value": list }))
}

/// One line of the sandbox list: its name, template and the hosts of its environments.
fn sandbox_summary(sb: &Sandbox) -> Value {
    sb.apply(|st| json!({ "name": sb.name, "fixture": st.fixture.name, "hosts": sandbox_hosts(&st.world) }))
}

/// Where each environment of a sandbox is served on the real-host doors.
fn sandbox_hosts(world: &World) -> Vec<Value> {
    world
        .environments
        .iter()
        .map(|e| json!({ "environment": e.id.as_str(), "apiHost": e.id.api_host(), "orgHost": e.org_host() }))
        .collect()
}

/// What a new sandbox gives a test (DECISIONS, Fixtures): the instantiated world in the fixture
/// format, as `GET /_mock/fixture` returns it, plus its name and hosts.
fn instantiated_world(sb: &Sandbox) -> Value {
    sb.apply(|st| {
        let mut world = serde_json::to_value(&st.fixture).unwrap_or_else(|_| json!({}));
        if let Some(o) = world.as_object_mut() {
            o.insert("sandbox".into(), json!(sb.name));
            o.insert("hosts".into(), json!(sandbox_hosts(&st.world)));
        }
        world
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewSandbox {
    name: Option<String>,
    /// Embedded world to instantiate (default `default`).
    template: Option<String>,
}

async fn post_sandbox(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Every field is optional, so an empty body (with or without a content type) is the default.
    let req: NewSandbox = if is_empty(&body) { NewSandbox::default() } else { json_body(&headers, &body)? };
    let template =
        fixtures::world(req.template.as_deref().unwrap_or("default")).map_err(|e| ApiError::Sandbox(e.into()))?;
    let sb = app.registry().create(req.name.as_deref(), &template)?;
    Ok(json(StatusCode::CREATED, instantiated_world(&sb)))
}

async fn delete_sandbox(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _: NoParameters,
) -> Result<Response, ApiError> {
    app.registry().delete(&name)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_ca(State(app): State<AppState>) -> Result<Response, ApiError> {
    match app.ca_pem() {
        Some(pem) => Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem.to_owned()).into_response()),
        None => Err(ApiError::NotFound { code: "TlsDisabled", message: "This server was started without TLS.".into() }),
    }
}

/// Machine facts as the control surface takes them: the fixture's names, every field optional,
/// unknown fields refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MachineFactsBody {
    join_type: Option<fixtures::JoinTypeFile>,
    entra_synced: Option<bool>,
    allowed_tenants: Option<Vec<String>>,
    legacy_sign_in_error: Option<bool>,
    windows_edition: Option<fixtures::WindowsEditionFile>,
    agent_version: Option<String>,
    session_capacity: Option<u32>,
    online: Option<bool>,
    maintenance: Option<bool>,
    windows_accounts: Option<Vec<fixtures::WindowsAccountFile>>,
}

fn bad_field(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("InvalidRequestContent", format!("The field '{field}' {why}."))
}

impl MachineFactsBody {
    fn into_facts(self) -> Result<MachineFacts, ApiError> {
        let allowed_tenants = match self.allowed_tenants {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|t| TenantId::parse(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad_field("allowedTenants", format_args!("holds {e}")))?,
            ),
        };
        Ok(MachineFacts {
            join_type: self.join_type.map(Into::into),
            entra_synced: self.entra_synced,
            allowed_tenants,
            legacy_sign_in_error: self.legacy_sign_in_error,
            windows_edition: self.windows_edition.map(Into::into),
            agent_version: self.agent_version,
            session_capacity: self.session_capacity,
            online: self.online,
            maintenance: self.maintenance,
            windows_accounts: self.windows_accounts.map(|list| list.iter().map(WindowsAccount::from).collect()),
        })
    }
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
    let facts: MachineFactsBody = from_json_value(Value::Object(rest))?;
    let env =
        EnvironmentId::parse(&r.environment).map_err(|e| bad_field("environment", format_args!("is invalid: {e}")))?;
    let app_id =
        AppId::parse(&r.application_id).map_err(|e| bad_field("applicationId", format_args!("is invalid: {e}")))?;
    let group = match &r.group_id {
        Some(g) => Some(MachineGroupId::parse(g).map_err(|e| bad_field("groupId", format_args!("is invalid: {e}")))?),
        None => None,
    };
    let machine_id = match &r.machine_id {
        Some(m) => Some(MachineId::parse(m).map_err(|e| bad_field("machineId", format_args!("is invalid: {e}")))?),
        None => None,
    };
    if r.name.trim().is_empty() || r.name.chars().count() > 100 {
        return Err(bad_field("name", "must be 1 to 100 characters"));
    }
    let facts = facts.into_facts()?;
    let out = app.registry().get(&route.sandbox)?.apply(|sb| -> Result<Value, ApiError> {
        let tenant = sb.world.environment(&env).map(|e| e.tenant).ok_or_else(|| ApiError::NotFound {
            code: "EnvironmentNotFound",
            message: format!("No environment '{env}' in this sandbox."),
        })?;
        let registrant = sb
            .world
            .registrant(tenant, app_id)
            .ok_or(ApiError::Domain(crate::domain::Error::RegistrationNeedsServicePrincipal))?;
        let id = machine_id.unwrap_or_else(|| MachineId::from_uuid(sb.ids.next_id()));
        let default_group = MachineGroupId::from_uuid(sb.ids.next_id());
        let registration = Registration { id, name: r.name, group, default_group, facts };
        let m = sb.world.register_machine(&registrant, &env, registration)?;
        let out = json!({
            "machineId": m.id.to_string(),
            "name": m.name,
            "groupId": m.group.to_string(),
            "owner": m.owner.to_string(),
            "environment": env.to_string(),
        });
        sb.refresh_secrets();
        Ok(out)
    })?;
    Ok(json(StatusCode::CREATED, out))
}

/// Changes what is true of a machine; connection statuses follow at once.
async fn patch_machine(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath(id): ApiPath<String>,
    ApiJson(facts): ApiJson<MachineFactsBody>,
) -> Result<Response, ApiError> {
    let id =
        MachineId::parse(&id).map_err(|e| ApiError::NotFound { code: "MachineNotFound", message: e.to_string() })?;
    let facts = facts.into_facts()?;
    let out = app.registry().get(&route.sandbox)?.apply(|sb| -> Result<Value, ApiError> {
        let m = sb.world.patch_machine(id, facts).ok_or_else(|| ApiError::NotFound {
            code: "MachineNotFound",
            message: format!("No machine '{id}' in this sandbox."),
        })?;
        let out = machine_json(m);
        sb.refresh_secrets();
        Ok(out)
    })?;
    Ok(json(StatusCode::OK, out))
}

/// The body of a vault secret: its value (a secret: this surface is not journaled, and the
/// value is redacted wherever it appears later).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultSecretBody {
    value: String,
}

/// Sets a secret of the sandbox's stand-in for Azure Key Vault, as `az keyvault secret set`
/// does for real: a Secret environment variable whose value references
/// `…/vaults/{vault}/secrets/{name}` resolves to it.
async fn put_vault_secret(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath((vault, name)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<VaultSecretBody>,
) -> Result<Response, ApiError> {
    use crate::domain::credential::KeyVaultReference;
    // Azure's naming rules: vaults 3-24, secrets 1-127 letters, digits and dashes.
    let named = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !named(&vault, 24) || vault.len() < 3 || !named(&name, 127) {
        return Err(ApiError::bad_request(
            "InvalidVaultSecretName",
            "Vault names are 3 to 24 and secret names 1 to 127 letters, digits or dashes.",
        ));
    }
    let r = KeyVaultReference { vault: vault.clone(), name: name.clone() };
    let reference = r.to_text();
    app.registry().get(&route.sandbox)?.apply(|sb| {
        sb.world.set_vault_secret(r, secrecy::SecretString::from(b.value));
        sb.refresh_secrets();
    });
    Ok(json(StatusCode::OK, json!({ "vault": vault, "name": name, "reference": reference })))
}
