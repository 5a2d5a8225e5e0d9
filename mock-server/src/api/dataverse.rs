//! The Dataverse Web API subset a desktop-flow client needs: `flowmachines`,
//! `flowmachinegroups`, `systemusers`, `teams`, `credentials`, `environmentvariabledefinitions`
//! and `environmentvariablevalues` as OData tables (the last three in `credentials`),
//! `workflows` (desktop flows), `flowsessions`, `connectionreferences`, `RunDesktopFlow` and
//! `CancelDesktopFlowRun` (in `runs`), `WhoAmI`, and the `EntityDefinitions`
//! queries client libraries make before CRUD (entity set name, primary id, picklists). One
//! catch-all route per org, since OData keys sit inside path segments (`flowmachines(…)`): it
//! parses the target once and hands the request to the handler of its (method, target), which
//! parses the body outside the sandbox's lock and takes the lock once.

use super::extract::{ApiPath, json_body, no_parameters};
use super::{ApiError, RequestContext, RouteInfo, json};
use crate::domain::access::{AccessChange, Grantee, Rights, ShareTarget};
use crate::domain::clock::Timestamp;
use crate::domain::connection::Caller;
use crate::domain::ids::{
    CredentialId, EnvironmentId, MachineGroupId, MachineId, PrincipalId, SystemUserId, TeamId, parse_guid,
};
use crate::domain::machine::{Expect, NewGroup, NewMachine, RowChange, Upsert, Written};
use crate::domain::world::{Environment, GroupType, Machine, MachineGroup, World};
use crate::journal::form_pairs;
use crate::odata::{self, ODataError};
use crate::operation::Operation;
use crate::sandbox::SandboxState;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};
use uuid::Uuid;

mod credentials;
pub(crate) mod runs;

/// Routes of the Dataverse surface (path form; the org host is rewritten here).
pub fn router() -> Router<AppState> {
    Router::new().route("/dataverse/{org}/api/data/{version}/{*rest}", any(dataverse))
}

/// The tables the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    FlowMachine,
    FlowMachineGroup,
    SystemUser,
    Team,
    Credential,
    VariableDefinition,
    VariableValue,
    Workflow,
    FlowSession,
    ConnectionReference,
}

impl Table {
    const ALL: [Table; 10] = [
        Table::FlowMachine,
        Table::FlowMachineGroup,
        Table::SystemUser,
        Table::Team,
        Table::Credential,
        Table::VariableDefinition,
        Table::VariableValue,
        Table::Workflow,
        Table::FlowSession,
        Table::ConnectionReference,
    ];

    fn logical(self) -> &'static str {
        match self {
            Self::FlowMachine => "flowmachine",
            Self::FlowMachineGroup => "flowmachinegroup",
            Self::SystemUser => "systemuser",
            Self::Team => "team",
            Self::Credential => "credential",
            Self::VariableDefinition => "environmentvariabledefinition",
            Self::VariableValue => "environmentvariablevalue",
            Self::Workflow => "workflow",
            Self::FlowSession => "flowsession",
            Self::ConnectionReference => "connectionreference",
        }
    }

    fn set(self) -> &'static str {
        match self {
            Self::FlowMachine => "flowmachines",
            Self::FlowMachineGroup => "flowmachinegroups",
            Self::SystemUser => "systemusers",
            Self::Team => "teams",
            Self::Credential => "credentials",
            Self::VariableDefinition => "environmentvariabledefinitions",
            Self::VariableValue => "environmentvariablevalues",
            Self::Workflow => "workflows",
            Self::FlowSession => "flowsessions",
            Self::ConnectionReference => "connectionreferences",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::FlowMachine => "flowmachineid",
            Self::FlowMachineGroup => "flowmachinegroupid",
            Self::SystemUser => "systemuserid",
            Self::Team => "teamid",
            Self::Credential => "credentialid",
            Self::VariableDefinition => "environmentvariabledefinitionid",
            Self::VariableValue => "environmentvariablevalueid",
            Self::Workflow => "workflowid",
            Self::FlowSession => "flowsessionid",
            Self::ConnectionReference => "connectionreferenceid",
        }
    }

    fn primary_name(self) -> &'static str {
        match self {
            Self::SystemUser => "fullname",
            Self::VariableDefinition | Self::VariableValue => "schemaname",
            Self::ConnectionReference => "connectionreferencedisplayname",
            _ => "name",
        }
    }

    fn properties(self) -> &'static [&'static str] {
        match self {
            Self::FlowMachine => &[
                "flowmachineid",
                "name",
                "description",
                "_flowmachinegroupid_value",
                "_ownerid_value",
                "agentversion",
                "sessioncapacity",
                "hostingtype",
                "statecode",
                "statuscode",
                "versionnumber",
            ],
            Self::FlowMachineGroup => &[
                "flowmachinegroupid",
                "name",
                "description",
                "flowgrouptype",
                "domainsetting",
                "_ownerid_value",
                "statecode",
                "statuscode",
                "versionnumber",
            ],
            Self::SystemUser => &[
                "systemuserid",
                "fullname",
                "domainname",
                "internalemailaddress",
                "applicationid",
                "azureactivedirectoryobjectid",
                "accessmode",
                "isdisabled",
            ],
            Self::Team => &["teamid", "name", "teamtype"],
            Self::Credential => &[
                "credentialid",
                "name",
                "description",
                "connectiontype",
                "credentialtype",
                "usagetype",
                "_username_value",
                "_cyberarkusername_value",
                "_password_value",
                "_ownerid_value",
                "statecode",
                "statuscode",
                "versionnumber",
            ],
            Self::VariableDefinition => &[
                "environmentvariabledefinitionid",
                "schemaname",
                "displayname",
                "description",
                "type",
                "defaultvalue",
                "_ownerid_value",
                "statecode",
                "statuscode",
                "versionnumber",
            ],
            Self::VariableValue => &[
                "environmentvariablevalueid",
                "schemaname",
                "value",
                "_environmentvariabledefinitionid_value",
                "_ownerid_value",
                "statecode",
                "statuscode",
                "versionnumber",
            ],
            Self::Workflow => &[
                "workflowid",
                "name",
                "category",
                "type",
                "primaryentity",
                "statecode",
                "statuscode",
                "_ownerid_value",
            ],
            Self::FlowSession => &[
                "flowsessionid",
                "name",
                "statuscode",
                "statecode",
                "createdon",
                "startedon",
                "completedon",
                "errorcode",
                "errormessage",
                "errordetails",
                "runmode",
                "triggertype",
                "connectionid",
                "callbackurl",
                "_regardingobjectid_value",
                "_machineid_value",
                "_machinegroupid_value",
                "_ownerid_value",
                "runwaitduration",
                "runduration",
            ],
            Self::ConnectionReference => &[
                "connectionreferenceid",
                "connectionreferencelogicalname",
                "connectionreferencedisplayname",
                "connectorid",
                "connectionid",
                "statecode",
                "statuscode",
            ],
        }
    }

    /// Picklist columns: (column, [(value, label)]).
    fn picklists(self) -> &'static [(&'static str, &'static [(i64, &'static str)])] {
        match self {
            Self::FlowMachine => &[("hostingtype", &[(0, "Customer"), (1, "Hosted"), (2, "CloudPc")])],
            Self::FlowMachineGroup => &[
                ("flowgrouptype", &[(545_940_000, "Keyless"), (545_940_001, "Standard"), (545_940_002, "Default")]),
                ("domainsetting", &[(0, "None"), (1, "AadJoined")]),
            ],
            Self::SystemUser => &[(
                "accessmode",
                &[
                    (0, "Read-Write"),
                    (1, "Administrative"),
                    (2, "Read"),
                    (3, "Support User"),
                    (4, "Non-interactive"),
                    (5, "Delegated Admin"),
                ],
            )],
            Self::Team => &[("teamtype", &[(0, "Owner"), (1, "Access")])],
            Self::Credential => &[
                (
                    "connectiontype",
                    &[
                        (1, "UsernamePassword"),
                        (2, "UsernamePasswordList"),
                        (3, "UsernamePasswordListWithGroupMapping"),
                        (4, "CyberArkIdentity"),
                        (5, "CertificateBasedAuthentication"),
                    ],
                ),
                ("credentialtype", &[(1, "SingleCredential"), (2, "ListOfCredentials")]),
            ],
            Self::VariableDefinition => &[(
                "type",
                &[
                    (100_000_000, "String"),
                    (100_000_001, "Number"),
                    (100_000_002, "Boolean"),
                    (100_000_003, "JSON"),
                    (100_000_004, "Data source"),
                    (100_000_005, "Secret"),
                ],
            )],
            Self::VariableValue | Self::ConnectionReference => &[],
            Self::Workflow => &[("category", &[(0, "Workflow"), (5, "Modern Flow"), (6, "Desktop Flow")])],
            Self::FlowSession => &[
                ("runmode", &[(0, "Local"), (1, "Attended"), (2, "Unattended")]),
                (
                    "statuscode",
                    &[
                        (2, "Running"),
                        (3, "Waiting"),
                        (4, "Succeeded"),
                        (7, "Cancelled"),
                        (8, "Failed"),
                        (10, "TimedOut"),
                    ],
                ),
            ],
        }
    }

    fn by_set(set: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.set().eq_ignore_ascii_case(set))
    }

    fn by_logical(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.logical().eq_ignore_ascii_case(name))
    }
}

/// What the path after `/api/data/v9.2/` names.
#[derive(Debug, PartialEq)]
enum Target {
    WhoAmI,
    Definitions,
    Definition(String),
    Picklists(String),
    Rows(Table),
    Row(Table, Uuid),
    /// `GrantAccess`, `ModifyAccess`, `RevokeAccess`.
    Sharing(SharingMessage),
    /// `RetrieveSharedPrincipalsAndAccess(Target=…)`: the text inside the parentheses.
    SharedPrincipals(String),
    /// `flowmachines(id)/Microsoft.Dynamics.CRM.LeaveGroup`.
    LeaveGroup(Uuid),
    /// `workflows(id)/Microsoft.Dynamics.CRM.RunDesktopFlow`.
    RunDesktopFlow(Uuid),
    /// `workflows(id)/inputs/$value` (true) or `/outputs/$value` (false).
    WorkflowSchema(Uuid, bool),
    /// `flowsessions(id)/outputs/$value`.
    FlowSessionOutputs(Uuid),
    /// `flowsessions(id)/Microsoft.Dynamics.CRM.CancelDesktopFlowRun`.
    CancelRun(Uuid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SharingMessage {
    Grant,
    Modify,
    Revoke,
}

fn not_found_segment(seg: &str) -> ApiError {
    ApiError::NotFound { code: "0x8006088a", message: format!("Resource not found for the segment '{seg}'.") }
}

fn parse_target(rest: &str) -> Result<Target, ApiError> {
    let rest = rest.trim_end_matches('/');
    if rest == "WhoAmI" || rest == "WhoAmI()" {
        return Ok(Target::WhoAmI);
    }
    if rest == "EntityDefinitions" {
        return Ok(Target::Definitions);
    }
    let unqualified = rest.strip_prefix("Microsoft.Dynamics.CRM.").unwrap_or(rest);
    match unqualified {
        "GrantAccess" => return Ok(Target::Sharing(SharingMessage::Grant)),
        "ModifyAccess" => return Ok(Target::Sharing(SharingMessage::Modify)),
        "RevokeAccess" => return Ok(Target::Sharing(SharingMessage::Revoke)),
        _ => {}
    }
    if let Some(args) = unqualified.strip_prefix("RetrieveSharedPrincipalsAndAccess(").and_then(|a| a.strip_suffix(')'))
    {
        return Ok(Target::SharedPrincipals(args.to_owned()));
    }
    if let Some(after) = rest.strip_prefix("EntityDefinitions(LogicalName='") {
        let (name, tail) = after.split_once("')").ok_or_else(|| not_found_segment(rest))?;
        return match tail {
            "" => Ok(Target::Definition(name.to_owned())),
            "/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata" => Ok(Target::Picklists(name.to_owned())),
            _ => Err(ApiError::NotImplemented(format!(
                "'EntityDefinitions(…){tail}' is not implemented by the mock; the entity definition and its PicklistAttributeMetadata are."
            ))),
        };
    }
    if let Some(t) = run_target(rest) {
        return t;
    }
    let (set, key) = match rest.split_once('(') {
        Some((set, k)) => {
            let (k, tail) = k.split_once(')').ok_or_else(|| not_found_segment(rest))?;
            let leave = ["/Microsoft.Dynamics.CRM.LeaveGroup", "/LeaveGroup"].contains(&tail);
            if leave && set.eq_ignore_ascii_case("flowmachines") {
                let id = parse_guid("key", k).map_err(|_| not_found_segment(rest))?;
                return Ok(Target::LeaveGroup(id));
            }
            if !tail.is_empty() {
                return Err(ApiError::NotImplemented(format!(
                    "The path '{rest}' (navigation or bound operation) is not implemented by the mock."
                )));
            }
            (set, Some(k))
        }
        None => (rest, None),
    };
    if set.contains('/') {
        return Err(ApiError::NotImplemented(format!(
            "The path '{rest}' (navigation or bound operation) is not implemented by the mock."
        )));
    }
    let table = Table::by_set(set).ok_or_else(|| not_found_segment(set))?;
    match key {
        None => Ok(Target::Rows(table)),
        Some(k) => {
            let id = parse_guid("key", k).map_err(|_| ApiError::BadRequest {
                status: 400,
                code: odata::BAD_QUERY,
                message: format!("Bad Request - Error in query syntax: '{k}' is not a GUID key."),
            })?;
            Ok(Target::Row(table, id))
        }
    }
}

/// The bound operations and file columns of desktop flows and their runs.
fn run_target(rest: &str) -> Option<Result<Target, ApiError>> {
    let (set, after) = rest.split_once('(')?;
    let (k, tail) = after.split_once(')')?;
    let bound = tail.strip_prefix("/Microsoft.Dynamics.CRM.").or_else(|| tail.strip_prefix('/'))?;
    let id = || parse_guid("key", k).map_err(|_| not_found_segment(rest));
    let target = match (set.to_ascii_lowercase().as_str(), bound) {
        ("workflows", "RunDesktopFlow") => id().map(Target::RunDesktopFlow),
        ("workflows", "inputs" | "inputs/$value") => id().map(|i| Target::WorkflowSchema(i, true)),
        ("workflows", "outputs" | "outputs/$value") => id().map(|i| Target::WorkflowSchema(i, false)),
        ("flowsessions", "outputs" | "outputs/$value") => id().map(Target::FlowSessionOutputs),
        ("flowsessions", "CancelDesktopFlowRun") => id().map(Target::CancelRun),
        _ => return None,
    };
    Some(target)
}

/// The named operation of a Dataverse request: `rest` is the path after `/api/data/{version}/`.
pub(crate) fn operation(method: &str, rest: &str) -> Operation {
    let is = |m: &str| method.eq_ignore_ascii_case(m);
    let rest = rest.trim_end_matches('/');
    if let Some(op) = run_operation(rest, is("GET"), is("POST")) {
        return op;
    }
    match parse_target(rest) {
        Ok(Target::WhoAmI) if is("GET") => Operation::DataverseWhoAmI,
        Ok(Target::Definitions | Target::Definition(_) | Target::Picklists(_)) if is("GET") => {
            Operation::DataverseEntityDefinitions
        }
        Ok(Target::Rows(_)) if is("GET") => Operation::DataverseQuery,
        Ok(Target::Rows(_)) if is("POST") => Operation::DataverseCreate,
        Ok(Target::Row(..)) if is("GET") => Operation::DataverseGet,
        Ok(Target::Row(..)) if is("PATCH") => Operation::DataverseUpdate,
        Ok(Target::Row(..)) if is("DELETE") => Operation::DataverseDelete,
        Ok(Target::Sharing(SharingMessage::Grant)) if is("POST") => Operation::DataverseGrantAccess,
        Ok(Target::Sharing(SharingMessage::Modify)) if is("POST") => Operation::DataverseModifyAccess,
        Ok(Target::Sharing(SharingMessage::Revoke)) if is("POST") => Operation::DataverseRevokeAccess,
        Ok(Target::SharedPrincipals(_)) if is("GET") => Operation::DataverseRetrieveSharedPrincipalsAndAccess,
        Ok(Target::LeaveGroup(_)) if is("POST") => Operation::DataverseLeaveGroup,
        Ok(Target::WorkflowSchema(..)) if is("GET") => Operation::DataverseGet,
        _ => Operation::Unmatched,
    }
}

/// The operations of desktop-flow runs (api-facts 5.1), named before they are served.
fn run_operation(rest: &str, get: bool, post: bool) -> Option<Operation> {
    let (set, after) = rest.split_once('(')?;
    let (_, tail) = after.split_once(')')?;
    let bound = tail.strip_prefix("/Microsoft.Dynamics.CRM.").or_else(|| tail.strip_prefix('/'));
    let set = set.to_ascii_lowercase();
    match (set.as_str(), bound, tail) {
        ("workflows", Some("RunDesktopFlow"), _) if post => Some(Operation::DataverseRunDesktopFlow),
        ("flowsessions", _, "") if get => Some(Operation::DataverseGetFlowSession),
        ("flowsessions", _, "/outputs" | "/outputs/$value") if get => Some(Operation::DataverseGetFlowSessionOutputs),
        ("flowsessions", Some("CancelDesktopFlowRun"), _) if post => Some(Operation::DataverseCancelDesktopFlowRun),
        _ => None,
    }
}

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

fn owner_value(env: &Environment, owner: PrincipalId) -> Value {
    env.system_user_of(owner).map_or(Value::Null, |s| json!(s.to_string()))
}

fn group_row(env: &Environment, g: &MachineGroup) -> Map<String, Value> {
    let v = json!({
        "@odata.etag": etag(g.version),
        "flowmachinegroupid": g.id.to_string(),
        "name": g.name,
        "description": g.description,
        "flowgrouptype": g.group_type.option_value(),
        "domainsetting": 0,
        "_ownerid_value": owner_value(env, g.owner),
        "statecode": 0,
        "statuscode": 1,
        "versionnumber": g.version,
    });
    v.as_object().cloned().unwrap_or_default()
}

fn machine_row(env: &Environment, m: &Machine) -> Map<String, Value> {
    let v = json!({
        "@odata.etag": etag(m.version),
        "flowmachineid": m.id.to_string(),
        "name": m.name,
        "description": m.description,
        "_flowmachinegroupid_value": m.group.to_string(),
        "_ownerid_value": owner_value(env, m.owner),
        "agentversion": m.agent_version,
        "sessioncapacity": m.session_capacity,
        "hostingtype": 0,
        // Maintenance mode is state 2 (Maintenance), status 4 (ManualMaintenance) (DV-FM).
        "statecode": if m.maintenance { 2 } else { 0 },
        "statuscode": if m.maintenance { 4 } else { 1 },
        "versionnumber": m.version,
    });
    v.as_object().cloned().unwrap_or_default()
}

fn system_user_rows(world: &World, env: &Environment) -> Vec<Map<String, Value>> {
    env.system_users
        .iter()
        .filter_map(|s| {
            let v = if let Some(u) = world.user(s.principal) {
                json!({
                    "systemuserid": s.id.to_string(), "fullname": u.display_name, "domainname": u.upn,
                    "internalemailaddress": u.upn, "applicationid": null,
                    "azureactivedirectoryobjectid": u.object_id.to_string(), "accessmode": 0, "isdisabled": false,
                })
            } else {
                let sp = world.service_principals.iter().find(|p| p.object_id == s.principal)?;
                json!({
                    "systemuserid": s.id.to_string(), "fullname": format!("# {}", sp.display_name),
                    "domainname": format!("{}@{}", sp.app_id, world.tenant(sp.tenant).map_or("", |t| t.domain.as_str())),
                    "internalemailaddress": null, "applicationid": sp.app_id.to_string(),
                    "azureactivedirectoryobjectid": sp.object_id.to_string(), "accessmode": 4, "isdisabled": false,
                })
            };
            v.as_object().cloned()
        })
        .collect()
}

/// Rows of a table the caller can read.
fn rows(world: &World, env: &Environment, table: Table, dv: &Dv, now: Timestamp) -> Vec<Map<String, Value>> {
    let who = dv.who();
    let principal = who.principal;
    match table {
        Table::FlowMachineGroup => env
            .machine_groups
            .iter()
            .filter(|g| env.group_rights(g, principal).contains(Rights::READ))
            .map(|g| group_row(env, g))
            .collect(),
        Table::FlowMachine => env
            .machines
            .iter()
            .filter(|m| env.machine_rights(m, principal).contains(Rights::READ))
            .map(|m| machine_row(env, m))
            .collect(),
        Table::SystemUser => system_user_rows(world, env),
        Table::Team => env
            .teams
            .iter()
            .filter_map(|t| json!({ "teamid": t.id.to_string(), "name": t.name, "teamtype": 0 }).as_object().cloned())
            .collect(),
        Table::Credential | Table::VariableDefinition | Table::VariableValue => credentials::rows(env, table, who),
        Table::Workflow | Table::FlowSession | Table::ConnectionReference => runs::rows(world, env, table, dv, now),
    }
}

fn definition(t: Table) -> Value {
    let meta = Uuid::new_v5(&Uuid::NAMESPACE_OID, t.logical().as_bytes());
    json!({
        "MetadataId": meta.to_string(),
        "LogicalName": t.logical(),
        "SchemaName": t.logical(),
        "EntitySetName": t.set(),
        "LogicalCollectionName": t.set(),
        "PrimaryIdAttribute": t.key(),
        "PrimaryNameAttribute": t.primary_name(),
        "OwnershipType": if matches!(t, Table::SystemUser | Table::Team) { "BusinessOwned" } else { "UserOwned" },
        "IsCustomEntity": false,
    })
}

fn picklist_metadata(t: Table) -> Value {
    let label = |l: &str| json!({ "Label": l, "LanguageCode": 1033 });
    let items: Vec<Value> = t
        .picklists()
        .iter()
        .map(|(col, options)| {
            json!({
                "LogicalName": col,
                "MetadataId": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{}.{col}", t.logical()).as_bytes()).to_string(),
                "OptionSet": { "Options": options.iter().map(|(v, l)| json!({
                    "Value": v, "Label": { "LocalizedLabels": [label(l)], "UserLocalizedLabel": label(l) }
                })).collect::<Vec<_>>() }
            })
        })
        .collect();
    json!({ "value": items })
}

/// Projects a JSON object onto `$select` (when given), keeping OData annotations.
fn select_keys(v: Value, pairs: &[(String, String)]) -> Value {
    let Some((_, sel)) = pairs.iter().find(|(k, _)| k == "$select") else {
        return v;
    };
    let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(k, _)| keep.contains(&k.as_str()) || k.starts_with("@odata")).collect(),
        ),
        other => other,
    }
}

fn prefer(headers: &HeaderMap) -> (Option<usize>, bool) {
    let mut page = None;
    let mut representation = false;
    for v in headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()) {
        for part in v.split(',').map(str::trim) {
            if let Some(n) = part.strip_prefix("odata.maxpagesize=") {
                page = n.trim().parse().ok();
            } else if part == "return=representation" {
                representation = true;
            }
        }
    }
    (page, representation)
}

fn if_match(headers: &HeaderMap) -> Result<Expect, ApiError> {
    let Some(v) = headers.get("if-match") else { return Ok(Expect::Any) };
    let v = v.to_str().unwrap_or("").trim();
    if v == "*" {
        return Ok(Expect::Exists);
    }
    v.trim_start_matches("W/").trim_matches('"').parse().map(Expect::Version).map_err(|_| ApiError::BadRequest {
        status: 400,
        code: odata::BAD_QUERY,
        message: format!("The If-Match value '{v}' is not an ETag (W/\"N\") or '*'."),
    })
}

fn odata_err(e: ODataError) -> ApiError {
    ApiError::BadRequest { status: if e.code == "0x8006088a" { 404 } else { 400 }, code: e.code, message: e.message }
}

/// The body of a create or update: an object whose properties the table accepts for writing.
fn write_body(table: Table, headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let map: Map<String, Value> = json_body(headers, body)?;
    let writable: &[&str] = match table {
        Table::FlowMachineGroup => &["name", "description", "flowgrouptype"],
        Table::FlowMachine => &["name", "description", "flowmachinegroupid@odata.bind"],
        Table::SystemUser | Table::Team | Table::Workflow | Table::FlowSession => &[],
        Table::ConnectionReference => {
            &["connectionreferencelogicalname", "connectionreferencedisplayname", "connectorid", "connectionid"]
        }
        Table::Credential => &[
            "name",
            "description",
            "connectiontype",
            "credentialtype",
            "username@odata.bind",
            "cyberarkusername@odata.bind",
            "password@odata.bind",
        ],
        Table::VariableDefinition => &["schemaname", "displayname", "description", "type", "defaultvalue"],
        // The value row's own schemaname is accepted; rows show the definition's.
        Table::VariableValue => &["value", "schemaname", "EnvironmentVariableDefinitionId@odata.bind"],
    };
    for k in map.keys() {
        if !writable.iter().any(|w| w.eq_ignore_ascii_case(k)) && !k.starts_with("@odata") {
            return Err(ApiError::bad_request(
                odata::BAD_QUERY,
                format!("Invalid property '{k}' was found in entity 'Microsoft.Dynamics.CRM.{}'.", table.logical()),
            ));
        }
    }
    Ok(map)
}

fn string_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(odata::BAD_QUERY, format!("The property '{key}' must be a string."))),
    }
}

/// `flowgrouptype` of a create: Standard unless the body asks otherwise.
fn group_type(map: &Map<String, Value>) -> Result<GroupType, ApiError> {
    match map.get("flowgrouptype").filter(|v| !v.is_null()).map(Value::as_i64) {
        None => Ok(GroupType::Standard),
        Some(Some(545_940_001)) => Ok(GroupType::Standard),
        Some(Some(545_940_002)) => Ok(GroupType::Default),
        Some(_) => Err(ApiError::bad_request(
            odata::BAD_QUERY,
            "flowgrouptype must be 545940001 (Standard); Keyless groups are not emulated by the mock.",
        )),
    }
}

/// The answer to a write: 204 with `OData-EntityId` for a created row (or 201 and the row
/// under `Prefer: return=representation`); 204, or 200 and the row, for an update.
fn written(
    base: &str,
    table: Table,
    id: Uuid,
    done: Written,
    row: Map<String, Value>,
    representation: bool,
) -> Response {
    let mut r = match (representation, done) {
        (true, Written::Created) => {
            let mut row = Value::Object(row);
            row["@odata.context"] = json!(format!("{base}/$metadata#{}/$entity", table.set()));
            json(StatusCode::CREATED, row)
        }
        (true, Written::Updated) => json(StatusCode::OK, Value::Object(row)),
        (false, _) => StatusCode::NO_CONTENT.into_response(),
    };
    if done == Written::Created
        && let Ok(v) = HeaderValue::from_str(&format!("{base}/{}({id})", table.set()))
    {
        r.headers_mut().insert("odata-entityid", v.clone());
        r.headers_mut().insert("location", v);
    }
    r
}

/// `flowmachinegroupid@odata.bind: "/flowmachinegroups(<id>)"`, when given.
fn group_bind(map: &Map<String, Value>) -> Result<Option<MachineGroupId>, ApiError> {
    let Some(b) = string_field(map, "flowmachinegroupid@odata.bind")? else {
        return Ok(None);
    };
    let inner = b.trim_start_matches('/').strip_prefix("flowmachinegroups(").and_then(|r| r.strip_suffix(')'));
    inner.and_then(|g| MachineGroupId::parse(g).ok()).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            odata::BAD_QUERY,
            format!("flowmachinegroupid@odata.bind must be '/flowmachinegroups(<id>)'; got '{b}'."),
        )
    })
}

fn change_of(map: &Map<String, Value>) -> Result<RowChange, ApiError> {
    let description = match map.iter().find(|(k, _)| k.eq_ignore_ascii_case("description")) {
        None => None,
        Some(_) => Some(string_field(map, "description")?),
    };
    Ok(RowChange { name: string_field(map, "name")?, description })
}

fn bad_parameter(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(odata::BAD_QUERY, message)
}

/// The record a sharing message names: `{"@odata.type": "Microsoft.Dynamics.CRM.flowmachinegroup",
/// "flowmachinegroupid": "…"}`, or `{"@odata.id": "flowmachinegroups(…)"}`.
fn share_target(v: Option<&Value>) -> Result<ShareTarget, ApiError> {
    let v = v.filter(|v| v.is_object()).ok_or_else(|| bad_parameter("The parameter 'Target' is required: {\"@odata.type\": \"Microsoft.Dynamics.CRM.flowmachinegroup\", \"flowmachinegroupid\": \"…\"}."))?;
    if let Some(r) = v.get("@odata.id").and_then(Value::as_str) {
        return target_of_reference(r);
    }
    let kind = v.get("@odata.type").and_then(Value::as_str).unwrap_or_default();
    let kind = kind.trim_start_matches('#').trim_start_matches("Microsoft.Dynamics.CRM.");
    let id = |key: &str| v.get(key).and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok());
    match kind {
        "flowmachinegroup" | "" if id("flowmachinegroupid").is_some() => {
            Ok(ShareTarget::Group(MachineGroupId::from_uuid(id("flowmachinegroupid").unwrap_or_default())))
        }
        "flowmachine" | "" if id("flowmachineid").is_some() => {
            Ok(ShareTarget::Machine(MachineId::from_uuid(id("flowmachineid").unwrap_or_default())))
        }
        "credential" | "" if id("credentialid").is_some() => {
            Ok(ShareTarget::Credential(CredentialId::from_uuid(id("credentialid").unwrap_or_default())))
        }
        _ => Err(bad_parameter(format!(
            "The Target must be a flowmachinegroup, flowmachine or credential with its id (the mock shares these tables only); got '{}'.",
            kind.chars().take(80).collect::<String>()
        ))),
    }
}

/// `flowmachinegroups(<id>)` or `flowmachines(<id>)`, possibly after a base URL.
fn target_of_reference(r: &str) -> Result<ShareTarget, ApiError> {
    let last = r.rsplit('/').next().unwrap_or(r);
    let parsed =
        last.split_once('(').and_then(|(set, rest)| Some((set, Uuid::try_parse(rest.strip_suffix(')')?).ok()?)));
    match parsed {
        Some((set, id)) if set.eq_ignore_ascii_case("flowmachinegroups") => {
            Ok(ShareTarget::Group(MachineGroupId::from_uuid(id)))
        }
        Some((set, id)) if set.eq_ignore_ascii_case("flowmachines") => {
            Ok(ShareTarget::Machine(MachineId::from_uuid(id)))
        }
        Some((set, id)) if set.eq_ignore_ascii_case("credentials") => {
            Ok(ShareTarget::Credential(CredentialId::from_uuid(id)))
        }
        _ => Err(bad_parameter(format!(
            "'{}' does not name a flowmachinegroups(<id>), flowmachines(<id>) or credentials(<id>) record.",
            r.chars().take(120).collect::<String>()
        ))),
    }
}

/// A principal of a sharing message: a systemuser (`systemuserid` or `ownerid`) or a team.
fn grantee(env: &Environment, v: Option<&Value>, name: &str) -> Result<Grantee, ApiError> {
    let v = v.filter(|v| v.is_object()).ok_or_else(|| {
        bad_parameter(format!("The parameter '{name}' is required: {{\"@odata.type\": \"Microsoft.Dynamics.CRM.systemuser\", \"systemuserid\": \"…\"}}."))
    })?;
    let kind = v.get("@odata.type").and_then(Value::as_str).unwrap_or("systemuser");
    let kind = kind.trim_start_matches('#').trim_start_matches("Microsoft.Dynamics.CRM.");
    let id_of = |keys: &[&str]| {
        keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str)).and_then(|s| Uuid::try_parse(s).ok())
    };
    match kind {
        "systemuser" => {
            let id = id_of(&["systemuserid", "ownerid"])
                .ok_or_else(|| bad_parameter(format!("{name} needs a systemuserid (or ownerid) GUID.")))?;
            env.system_users.iter().find(|s| s.id.uuid() == id).map(|s| Grantee::Principal(s.principal)).ok_or_else(
                || ApiError::Domain(crate::domain::Error::RecordNotFound { entity: "systemuser", id: id.to_string() }),
            )
        }
        "team" => {
            let id = id_of(&["teamid", "ownerid"])
                .ok_or_else(|| bad_parameter(format!("{name} needs a teamid (or ownerid) GUID.")))?;
            Ok(Grantee::Team(TeamId::from_uuid(id)))
        }
        other => Err(bad_parameter(format!(
            "A {name} is a systemuser or a team; got '{}'.",
            other.chars().take(80).collect::<String>()
        ))),
    }
}

fn principal_json(env: &Environment, g: Grantee) -> Value {
    match g {
        Grantee::Principal(p) => json!({
            "@odata.type": "#Microsoft.Dynamics.CRM.systemuser",
            "ownerid": env.system_user_of(p).map(|s| s.to_string()),
        }),
        Grantee::Team(t) => json!({ "@odata.type": "#Microsoft.Dynamics.CRM.team", "ownerid": t.to_string() }),
    }
}

/// A sharing message's body: target, principal and (for grant and modify) the mask.
fn sharing_request(
    env: &Environment,
    msg: SharingMessage,
    v: &Value,
) -> Result<(ShareTarget, Grantee, AccessChange), ApiError> {
    let target = share_target(v.get("Target"))?;
    if msg == SharingMessage::Revoke {
        return Ok((target, grantee(env, v.get("Revokee"), "Revokee")?, AccessChange::Revoke));
    }
    let pa = v.get("PrincipalAccess").filter(|p| p.is_object()).ok_or_else(|| {
        bad_parameter(
            "The parameter 'PrincipalAccess' is required: {\"Principal\": {…}, \"AccessMask\": \"ReadAccess\"}.",
        )
    })?;
    let who = grantee(env, pa.get("Principal"), "PrincipalAccess.Principal")?;
    let mask = pa.get("AccessMask").and_then(Value::as_str).ok_or_else(|| {
        bad_parameter(
            "PrincipalAccess.AccessMask is required: names such as \"ReadAccess\" or \"ReadAccess,WriteAccess\".",
        )
    })?;
    let rights = Rights::parse(mask).map_err(|e| bad_parameter(format!("PrincipalAccess.AccessMask: {e}.")))?;
    let change = match msg {
        SharingMessage::Grant => AccessChange::Grant(rights),
        _ => AccessChange::Modify(rights),
    };
    Ok((target, who, change))
}

/// The `Target` of `RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={'@odata.id':'…'}`.
fn shared_principals_target(args: &str, pairs: &[(String, String)]) -> Result<ShareTarget, ApiError> {
    let value = args.trim().strip_prefix("Target=").ok_or_else(|| {
        bad_parameter(
            "RetrieveSharedPrincipalsAndAccess takes Target=@tid with @tid={'@odata.id':'flowmachinegroups(<id>)'}.",
        )
    })?;
    let text = match value.strip_prefix('@') {
        Some(alias) => pairs
            .iter()
            .find(|(k, _)| k.strip_prefix('@') == Some(alias))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| bad_parameter(format!("The parameter alias '@{alias}' is not given in the query.")))?,
        None => value.to_owned(),
    };
    let lower = text.to_ascii_lowercase();
    let start = lower.find("flowmachine").or_else(|| lower.find("credentials(")).unwrap_or(0);
    let end = text[start..].find(')').map(|e| start + e + 1).unwrap_or(text.len());
    target_of_reference(&text[start..end])
}

/// One Dataverse request, resolved once: its context, the org's environment, the base URL
/// its answers link to, its query and body. Each handler below serves one (method, target).
struct Dv {
    ctx: RequestContext,
    env: EnvironmentId,
    base: String,
    pairs: Vec<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
    /// Whether the request may change the world (not a GET).
    write: bool,
    /// The server, for the journal's run events and the callbacks they owe.
    app: AppState,
}

impl Dv {
    /// Runs `f` under the sandbox's lock once the caller is known to be a member of the
    /// environment (its systemuser id is `f`'s second argument). In system mode what is due
    /// is applied first; after a write, the run failures it causes (runs.md, Time). Those run
    /// transitions are journaled after the lock.
    fn apply<R>(&self, f: impl FnOnce(&mut SandboxState, SystemUserId) -> Result<R, ApiError>) -> Result<R, ApiError> {
        let (out, events) = self.ctx.sandbox.apply(|st| {
            let mut events = st.catch_up();
            let out = st.world.member(&self.env, &self.ctx.caller).map_err(ApiError::from).and_then(|me| f(st, me));
            if self.write && out.is_ok() {
                events.extend(st.world_changed());
            }
            (out, events)
        });
        crate::callbacks::after(&self.app, &self.ctx.sandbox, &events);
        out
    }

    /// Who calls, for the domain.
    fn who(&self) -> &Caller {
        &self.ctx.caller
    }
}

/// The environment, which the membership check found.
fn env_of<'w>(world: &'w World, id: &EnvironmentId) -> Result<&'w Environment, ApiError> {
    world.environment(id).ok_or_else(|| not_found_segment(id.as_str()))
}

/// The one route of the surface: reads the Web API version, authenticates for the org, parses
/// the target and hands the request to its handler.
async fn dataverse(
    State(app): State<AppState>,
    Extension(route): Extension<RouteInfo>,
    ApiPath((org, version, rest)): ApiPath<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if !["v9.0", "v9.1", "v9.2"].contains(&version.as_str()) {
        return Err(ApiError::NotImplemented(format!(
            "The Web API version '{version}' is not implemented by the mock; v9.2 is."
        )));
    }
    let ctx = RequestContext::authenticate(&app, route, &headers, Some(&org))?;
    let target = parse_target(&rest)?;
    // Routing found the org's environment when it found its sandbox.
    let env = ctx.route.environment.as_deref().and_then(|e| EnvironmentId::parse(e).ok()).ok_or_else(|| {
        ApiError::NotFound {
            code: "0x8006088a",
            message: format!("No Dataverse organization named '{org}' in this sandbox."),
        }
    })?;
    // The org host keeps its own base; the loopback door its path form.
    let origin = &ctx.route.origin;
    let host_base = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    let base = if host_base.to_ascii_lowercase().starts_with(&format!("{}.crm", org.to_ascii_lowercase())) {
        format!("{origin}/api/data/{version}")
    } else {
        format!("{origin}/dataverse/{org}/api/data/{version}")
    };
    let write = method != Method::GET;
    let dv =
        Dv { ctx, env, base, pairs: form_pairs(uri.query().unwrap_or("")), headers, body, write, app: app.clone() };
    match (&method, target) {
        (&Method::GET, Target::WhoAmI) => who_am_i(&dv),
        (&Method::GET, Target::Definitions) => entity_definitions(&dv),
        (&Method::GET, Target::Definition(name)) => entity_definition(&dv, &name),
        (&Method::GET, Target::Picklists(name)) => picklists(&dv, &name),
        (&Method::GET, Target::Rows(table)) => query_rows(&dv, table),
        (&Method::GET, Target::Row(table, id)) => get_row(&dv, table, id),
        (&Method::POST, Target::Rows(table)) => create_row(&dv, table),
        (&Method::PATCH, Target::Row(table, id)) => update_row(&dv, table, id),
        (&Method::DELETE, Target::Row(table, id)) => delete_row(&dv, table, id),
        (&Method::POST, Target::Sharing(msg)) => change_access(&dv, msg),
        (&Method::GET, Target::SharedPrincipals(args)) => shared_principals(&dv, &args),
        (&Method::POST, Target::LeaveGroup(id)) => leave_group(&dv, id),
        (&Method::POST, Target::RunDesktopFlow(id)) => runs::run_desktop_flow(&dv, id),
        (&Method::GET, Target::WorkflowSchema(id, inputs)) => runs::workflow_schema(&dv, id, inputs),
        (&Method::GET, Target::FlowSessionOutputs(id)) => runs::flow_session_outputs(&dv, id),
        (&Method::POST, Target::CancelRun(id)) => runs::cancel_run(&dv, id),
        (m, t) => Err(ApiError::MethodNotAllowed {
            method: m.to_string(),
            path: format!(
                "{}/{}",
                dv.base,
                match t {
                    Target::Rows(t) | Target::Row(t, _) => t.set().to_owned(),
                    _ => rest.clone(),
                }
            ),
        }),
    }
}

/// `GET WhoAmI`.
fn who_am_i(dv: &Dv) -> Result<Response, ApiError> {
    let (me, organization) = dv.apply(|st, me| Ok((me, env_of(&st.world, &dv.env)?.organization_id)))?;
    Ok(json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", dv.base),
            "BusinessUnitId": Uuid::new_v5(&organization, b"root-business-unit").to_string(),
            "UserId": me.to_string(),
            "OrganizationId": organization.to_string(),
        }),
    ))
}

/// `GET EntityDefinitions[?$filter=LogicalName eq '…']`.
fn entity_definitions(dv: &Dv) -> Result<Response, ApiError> {
    dv.apply(|_, _| Ok(()))?;
    let filter = dv.pairs.iter().find(|(k, _)| k == "$filter").map(|(_, v)| v.clone());
    let defs: Vec<Value> = match filter {
        None => Table::ALL.iter().map(|t| definition(*t)).collect(),
        Some(f) => {
            let cmp = odata::parse_filter(&f).map_err(odata_err)?;
            let name = match cmp.as_slice() {
                [c] if c.field == "LogicalName" && !c.negated => match &c.value {
                    odata::Literal::Str(s) => s.clone(),
                    _ => String::new(),
                },
                _ => {
                    return Err(ApiError::NotImplemented(
                        "Only $filter=LogicalName eq '…' is implemented by the mock on EntityDefinitions.".into(),
                    ));
                }
            };
            Table::by_logical(&name).map(definition).into_iter().collect()
        }
    };
    let value: Vec<Value> = defs.into_iter().map(|d| select_keys(d, &dv.pairs)).collect();
    Ok(json(
        StatusCode::OK,
        json!({ "@odata.context": format!("{}/$metadata#EntityDefinitions", dv.base), "value": value }),
    ))
}

/// `GET EntityDefinitions(LogicalName='…')`.
fn entity_definition(dv: &Dv, name: &str) -> Result<Response, ApiError> {
    dv.apply(|_, _| Ok(()))?;
    let t = Table::by_logical(name).ok_or_else(|| ApiError::NotFound {
        code: "0x80040217",
        message: format!("Could not find an entity with the LogicalName '{name}'."),
    })?;
    let mut d = select_keys(definition(t), &dv.pairs);
    d["@odata.context"] = json!(format!("{}/$metadata#EntityDefinitions/$entity", dv.base));
    Ok(json(StatusCode::OK, d))
}

/// `GET EntityDefinitions(LogicalName='…')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`.
fn picklists(dv: &Dv, name: &str) -> Result<Response, ApiError> {
    dv.apply(|_, _| Ok(()))?;
    // Tables the mock does not model have no picklists it could name: an empty list, which
    // is what client libraries expect rather than an error.
    Ok(json(StatusCode::OK, Table::by_logical(name).map_or_else(|| json!({ "value": [] }), picklist_metadata)))
}

/// `GET {table}` with OData options.
fn query_rows(dv: &Dv, table: Table) -> Result<Response, ApiError> {
    let q = odata::parse_query(&dv.pairs).map_err(odata_err)?;
    let (max_page, _) = prefer(&dv.headers);
    let page = dv.apply(|st, _| {
        let all = rows(&st.world, env_of(&st.world, &dv.env)?, table, dv, st.clock.now());
        odata::apply(all, &q, table.logical(), table.properties(), table.key(), max_page).map_err(odata_err)
    })?;
    let sel = q.select.as_ref().map(|s| format!("({})", s.join(","))).unwrap_or_default();
    let mut out =
        json!({ "@odata.context": format!("{}/$metadata#{}{sel}", dv.base, table.set()), "value": page.rows });
    if q.count {
        out["@odata.count"] = json!(page.count);
    }
    if let Some(next) = page.next_skip {
        let kept: Vec<(String, String)> = dv.pairs.iter().filter(|(k, _)| k != "$skiptoken").cloned().collect();
        let mut qs = serde_urlencoded::to_string(&kept).unwrap_or_default();
        if !qs.is_empty() {
            qs.push('&');
        }
        out["@odata.nextLink"] = json!(format!("{}/{}?{qs}%24skiptoken={next}", dv.base, table.set()));
    }
    let mut r = json(StatusCode::OK, out);
    if let Some(n) = max_page
        && let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={n}"))
    {
        r.headers_mut().insert("preference-applied", v);
    }
    Ok(r)
}

/// `GET {table}({id})`.
fn get_row(dv: &Dv, table: Table, id: Uuid) -> Result<Response, ApiError> {
    let q = odata::parse_query(&dv.pairs).map_err(odata_err)?;
    let row = dv.apply(|st, _| {
        if table == Table::FlowSession {
            // Another principal's run exists but is not the caller's to read: 403, not 404.
            st.world.flow_session(dv.who(), &dv.env, crate::domain::ids::FlowSessionId::from_uuid(id))?;
        }
        rows(&st.world, env_of(&st.world, &dv.env)?, table, dv, st.clock.now())
            .into_iter()
            .find(|r| r.get(table.key()).and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok()) == Some(id))
            .ok_or_else(|| {
                ApiError::Domain(crate::domain::Error::RecordNotFound { entity: table.logical(), id: id.to_string() })
            })
    })?;
    let page =
        odata::apply(vec![row], &q, table.logical(), table.properties(), table.key(), None).map_err(odata_err)?;
    let mut out = Value::Object(page.rows.into_iter().next().unwrap_or_default());
    out["@odata.context"] = json!(format!("{}/$metadata#{}/$entity", dv.base, table.set()));
    Ok(json(StatusCode::OK, out))
}

/// `POST {table}`: a new row; its ids are the only ones this request makes up.
fn create_row(dv: &Dv, table: Table) -> Result<Response, ApiError> {
    if matches!(table, Table::Workflow | Table::FlowSession) {
        return Err(read_only(table));
    }
    let map = write_body(table, &dv.headers, &dv.body)?;
    if table == Table::ConnectionReference {
        let change = runs::reference_change(&map)?;
        let (id, row) = dv.apply(|st, _| {
            let id = st.ids.next_id();
            Ok((id, runs::upsert_reference(&mut st.world, &dv.env, id, change)?.1))
        })?;
        let (_, representation) = prefer(&dv.headers);
        return Ok(written(&dv.base, table, id, Written::Created, row, representation));
    }
    let name = string_field(&map, "name")?;
    let description = string_field(&map, "description")?;
    if matches!(table, Table::SystemUser | Table::Team) {
        return Err(ApiError::NotImplemented(format!(
            "Creating {} is not implemented by the mock: declare them in the fixture.",
            table.set()
        )));
    }
    let group_type = if table == Table::FlowMachineGroup { Some(group_type(&map)?) } else { None };
    let group = if table == Table::FlowMachine { group_bind(&map)? } else { None };
    let who = dv.who();
    let (new_id, row) = dv.apply(|st, _| {
        let new_id = st.ids.next_id();
        let row = match (table, group_type) {
            (Table::FlowMachineGroup, Some(group_type)) => {
                let new = NewGroup { id: MachineGroupId::from_uuid(new_id), name, description, group_type };
                let g = st.world.create_machine_group(who, &dv.env, new)?.clone();
                group_row(env_of(&st.world, &dv.env)?, &g)
            }
            (Table::FlowMachine, _) => {
                let default_group = MachineGroupId::from_uuid(st.ids.next_id());
                let new = NewMachine { id: MachineId::from_uuid(new_id), name, description, group, default_group };
                let m = st.world.create_machine(who, &dv.env, new)?.clone();
                machine_row(env_of(&st.world, &dv.env)?, &m)
            }
            (t, _) => credentials::create(&mut st.world, who, &dv.env, t, new_id, &map)?,
        };
        Ok((new_id, row))
    })?;
    let (_, representation) = prefer(&dv.headers);
    Ok(written(&dv.base, table, new_id, Written::Created, row, representation))
}

/// `PATCH {table}({id})`: update, or create with that id.
fn update_row(dv: &Dv, table: Table, id: Uuid) -> Result<Response, ApiError> {
    if matches!(table, Table::Workflow | Table::FlowSession) {
        return Err(read_only(table));
    }
    let map = write_body(table, &dv.headers, &dv.body)?;
    let expect = if_match(&dv.headers)?;
    if table == Table::ConnectionReference {
        let change = runs::reference_change(&map)?;
        let (created, row) = dv.apply(|st, _| runs::upsert_reference(&mut st.world, &dv.env, id, change))?;
        let done = if created { Written::Created } else { Written::Updated };
        let (_, representation) = prefer(&dv.headers);
        return Ok(written(&dv.base, table, id, done, row, representation));
    }
    if matches!(table, Table::SystemUser | Table::Team) {
        return Err(ApiError::NotImplemented(format!("Updating {} is not implemented by the mock.", table.set())));
    }
    let change =
        if matches!(table, Table::FlowMachineGroup | Table::FlowMachine) { Some(change_of(&map)?) } else { None };
    let group = if table == Table::FlowMachine { group_bind(&map)? } else { None };
    let who = dv.who();
    let (done, row) = dv.apply(|st, _| match (table, change) {
        (Table::FlowMachineGroup, Some(change)) => {
            let up = Upsert { id: MachineGroupId::from_uuid(id), change, expect };
            let (done, g) = st.world.upsert_machine_group(who, &dv.env, up)?;
            let g = g.clone();
            Ok((done, group_row(env_of(&st.world, &dv.env)?, &g)))
        }
        (Table::FlowMachine, Some(change)) => {
            let up = Upsert { id: MachineId::from_uuid(id), change, expect };
            let (done, m) = st.world.upsert_machine(who, &dv.env, up, group, &mut st.ids)?;
            let m = m.clone();
            Ok((done, machine_row(env_of(&st.world, &dv.env)?, &m)))
        }
        (t, _) => credentials::upsert(&mut st.world, who, &dv.env, t, id, &map, expect),
    })?;
    let (_, representation) = prefer(&dv.headers);
    Ok(written(&dv.base, table, id, done, row, representation))
}

/// `DELETE {table}({id})`.
fn delete_row(dv: &Dv, table: Table, id: Uuid) -> Result<Response, ApiError> {
    let expect = if_match(&dv.headers)?;
    if matches!(
        table,
        Table::SystemUser | Table::Team | Table::Workflow | Table::FlowSession | Table::ConnectionReference
    ) {
        return Err(ApiError::NotImplemented(format!("Deleting {} is not implemented by the mock.", table.set())));
    }
    let who = dv.who();
    dv.apply(|st, _| match table {
        Table::FlowMachineGroup => {
            Ok(st.world.delete_machine_group(who, &dv.env, MachineGroupId::from_uuid(id), expect)?)
        }
        Table::FlowMachine => Ok(st.world.delete_machine(who, &dv.env, MachineId::from_uuid(id), expect)?),
        t => credentials::delete(&mut st.world, who, &dv.env, t, id, expect),
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Desktop flows are made with `POST /_mock/desktopflows` and runs with `RunDesktopFlow`.
fn read_only(table: Table) -> ApiError {
    ApiError::NotImplemented(format!(
        "Writing {} directly is not implemented by the mock: desktop flows come from the fixture, runs from RunDesktopFlow.",
        table.set()
    ))
}

/// `POST GrantAccess`, `ModifyAccess` or `RevokeAccess`.
fn change_access(dv: &Dv, msg: SharingMessage) -> Result<Response, ApiError> {
    let body: Value = json_body(&dv.headers, &dv.body)?;
    dv.apply(|st, _| {
        let (target, who_gets, change) = sharing_request(env_of(&st.world, &dv.env)?, msg, &body)?;
        Ok(st.world.change_access(dv.who(), &dv.env, target, who_gets, change)?)
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET RetrieveSharedPrincipalsAndAccess(Target=…)`.
fn shared_principals(dv: &Dv, args: &str) -> Result<Response, ApiError> {
    let target = shared_principals_target(args, &dv.pairs)?;
    let accesses = dv.apply(|st, _| {
        let shares = st.world.shared_access(dv.who(), &dv.env, target)?;
        let env = env_of(&st.world, &dv.env)?;
        Ok(shares
            .iter()
            .map(|s| json!({ "AccessMask": s.rights.names(), "Principal": principal_json(env, s.grantee) }))
            .collect::<Vec<Value>>())
    })?;
    Ok(json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.RetrieveSharedPrincipalsAndAccessResponse", dv.base),
            "PrincipalAccesses": accesses,
        }),
    ))
}

/// `POST flowmachines({id})/Microsoft.Dynamics.CRM.LeaveGroup`: the machine becomes stand-alone
/// in a new Default group (a created id).
fn leave_group(dv: &Dv, id: Uuid) -> Result<Response, ApiError> {
    no_parameters(&dv.headers, &dv.body)?;
    dv.apply(|st, _| {
        let default_group = MachineGroupId::from_uuid(st.ids.next_id());
        st.world.leave_group(dv.who(), &dv.env, MachineId::from_uuid(id), default_group)?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_paths_are_parsed_into_targets() {
        assert_eq!(parse_target("WhoAmI()").unwrap(), Target::WhoAmI);
        assert_eq!(parse_target("flowmachines").unwrap(), Target::Rows(Table::FlowMachine));
        let id = Uuid::try_parse("42e26112-838c-471b-b09f-958e640e9303").unwrap();
        assert_eq!(
            parse_target("flowmachinegroups(42e26112-838c-471b-b09f-958e640e9303)").unwrap(),
            Target::Row(Table::FlowMachineGroup, id)
        );
        assert_eq!(
            parse_target("EntityDefinitions(LogicalName='flowmachine')").unwrap(),
            Target::Definition("flowmachine".into())
        );
        assert_eq!(
            parse_target("EntityDefinitions(LogicalName='flowmachine')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata").unwrap(),
            Target::Picklists("flowmachine".into())
        );
        assert!(matches!(parse_target("accounts"), Err(ApiError::NotFound { code: "0x8006088a", .. })));
        assert!(matches!(parse_target("flowmachines(nope)"), Err(ApiError::BadRequest { .. })));
        assert!(matches!(
            parse_target("flowmachines(42e26112-838c-471b-b09f-958e640e9303)/owninguser"),
            Err(ApiError::NotImplemented(_))
        ));
    }
}
