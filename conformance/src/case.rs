//! The case format (`fixtures/cases/**.json`, one case per file) and its loader: serde types
//! that refuse unknown fields, then the checks serde cannot make (id shape, unique ids, known
//! operations, `${name.field}` naming an earlier `save`). Every error names the file and the
//! field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The surfaces a case id may start with (conformance.md, Cases).
pub const SURFACES: &[&str] = &["identity", "connections", "machines", "sharing", "runs", "retry"];

/// One conformance case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// Optional editor hint (`"$schema": "../../case.schema.json"`); ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Stable hierarchical id: `connections/create/service-principal`.
    pub id: String,
    /// MUST or SHOULD: only a failing MUST case fails the run.
    pub level: Level,
    /// One line: what a conforming client does.
    pub statement: String,
    /// What the adapter must have declared for the case to run.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// The expectation rests on a mock-defined code (conformance.md): the case cannot run
    /// against the real service as written.
    #[serde(default)]
    pub mock_only: bool,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Who the client is; the default world's first service principal when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The environment (default-world id); the world's first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Client and mock steps, in order.
    pub steps: Vec<Step>,
    /// What must hold after the steps.
    #[serde(default)]
    pub expect: CaseExpect,
}

/// How binding a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Level {
    /// A failure fails the run (exit 1).
    #[serde(rename = "MUST")]
    Must,
    /// A failure is reported only.
    #[serde(rename = "SHOULD")]
    Should,
}

impl Level {
    /// `MUST` or `SHOULD`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
        }
    }
}

/// What an adapter can do (the fixed list of conformance.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Capability {
    /// Acquiring tokens.
    Token,
    /// Creating, reading, updating, listing and deleting connections.
    Connections,
    /// Dataverse: machine groups and machines.
    Dataverse,
    /// Sharing connections and machine groups.
    Sharing,
    /// Desktop-flow runs.
    Runs,
    /// Retrying 429 and 503 honouring `Retry-After`.
    Retry,
}

impl Capability {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Connections => "connections",
            Self::Dataverse => "dataverse",
            Self::Sharing => "sharing",
            Self::Runs => "runs",
            Self::Retry => "retry",
        }
    }

    /// Every capability, in the order the docs list them.
    pub const ALL: &'static [Capability] =
        &[Self::Token, Self::Connections, Self::Dataverse, Self::Sharing, Self::Runs, Self::Retry];

    /// The capability of this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

/// Who the client is, named as in the default world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    /// A service principal's display name (client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<String>,
    /// A user's UPN (password grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The public client the user signs in through (display name; "Microsoft Azure CLI" when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_client: Option<String>,
}

/// The public client a user identity signs in through when the case names none.
pub const DEFAULT_PUBLIC_CLIENT: &str = "Microsoft Azure CLI";

/// The client-facing verbs of protocol version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Get a token for a resource.
    AcquireToken,
    /// PUT a new connection.
    CreateConnection,
    /// GET one connection.
    GetConnection,
    /// List the environment's desktop-flow connections.
    ListConnections,
    /// PUT an existing connection again.
    UpdateConnection,
    /// DELETE a connection.
    DeleteConnection,
    /// modifyPermissions on a connection.
    ShareConnection,
    /// A machine's group id through Dataverse.
    FindMachineGroup,
    /// The flowmachinegroups table.
    ListMachineGroups,
    /// GrantAccess on a machine group.
    ShareMachineGroup,
    /// Start a desktop-flow run through one of the two doors.
    StartRun,
    /// Poll a run to a terminal status.
    WaitForRun,
    /// A finished run's outputs.
    GetRunOutputs,
    /// Cancel a run.
    CancelRun,
}

impl Action {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AcquireToken => "acquireToken",
            Self::CreateConnection => "createConnection",
            Self::GetConnection => "getConnection",
            Self::ListConnections => "listConnections",
            Self::UpdateConnection => "updateConnection",
            Self::DeleteConnection => "deleteConnection",
            Self::ShareConnection => "shareConnection",
            Self::FindMachineGroup => "findMachineGroup",
            Self::ListMachineGroups => "listMachineGroups",
            Self::ShareMachineGroup => "shareMachineGroup",
            Self::StartRun => "startRun",
            Self::WaitForRun => "waitForRun",
            Self::GetRunOutputs => "getRunOutputs",
            Self::CancelRun => "cancelRun",
        }
    }
}

/// One step: the client acts (through the adapter), or the runner changes the mock.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Step {
    /// A `client` step.
    Client(ClientStep),
    /// A `mock` step.
    Mock(MockStep),
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Dispatch on the key, so that an error inside a step names its own field rather
        // than "did not match any variant".
        let map = Map::<String, Value>::deserialize(d)?;
        // The field inside the step leads the message (the outer path ends at the step).
        fn inner<T: serde::de::DeserializeOwned, E: Error>(map: Map<String, Value>) -> Result<T, E> {
            serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
                let path = e.path().to_string();
                if path == "." { E::custom(e.into_inner()) } else { E::custom(format!("{path}: {}", e.into_inner())) }
            })
        }
        match (map.contains_key("client"), map.contains_key("mock")) {
            (true, false) => inner(map).map(Step::Client),
            (false, true) => inner(map).map(Step::Mock),
            _ => Err(D::Error::custom("a step has exactly one of 'client' (an action) or 'mock' (a mock step)")),
        }
    }
}

/// The adapter performs one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientStep {
    /// The action.
    pub client: Action,
    /// Its arguments (default-world values; `{"account": …}` and `${name.field}` allowed).
    #[serde(default = "empty_object")]
    pub args: Value,
    /// The outcome the client must report; `{"ok": true}` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<OutcomeExpect>,
    /// Keep the result under this name for `${name.field}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A change the runner makes to the mock between client steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mock", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum MockStep {
    /// Moves the virtual clock forward.
    Advance {
        /// Seconds.
        seconds: u64,
    },
    /// Runs the queue until no run is Running.
    AdvanceUntilIdle,
    /// Moves to the next due run transition.
    AdvanceToNextEvent,
    /// `PATCH /_mock/machines/{id}` on a machine named as in the default world.
    SetMachine {
        /// Its default-world name (`FIN-01`) or id.
        machine: String,
        /// The patch body.
        facts: Value,
    },
    /// `POST /_mock/faults`.
    Fault {
        /// The fault rule.
        rule: Value,
    },
    /// `POST /_mock/scenarios/{name}`.
    Scenario {
        /// The scenario's name.
        name: String,
    },
    /// `PATCH /_mock/settings`.
    Settings {
        /// The patch body.
        patch: Value,
    },
    /// Ends a run now, Succeeded.
    CompleteRun {
        /// The run (usually `${r.runId}`).
        run_id: String,
        /// Its outputs (`{}` when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outputs: Option<Value>,
    },
    /// Ends a run now, Failed.
    FailRun {
        /// The run.
        run_id: String,
        /// The error code.
        code: String,
        /// The message.
        #[serde(default)]
        message: String,
    },
}

impl MockStep {
    /// Its name, as cases spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Advance { .. } => "advance",
            Self::AdvanceUntilIdle => "advanceUntilIdle",
            Self::AdvanceToNextEvent => "advanceToNextEvent",
            Self::SetMachine { .. } => "setMachine",
            Self::Fault { .. } => "fault",
            Self::Scenario { .. } => "scenario",
            Self::Settings { .. } => "settings",
            Self::CompleteRun { .. } => "completeRun",
            Self::FailRun { .. } => "failRun",
        }
    }
}

/// The outcome a client step must report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeExpect {
    /// Success or failure.
    pub ok: bool,
    /// On success: a subset of the result (every key given equal, recursively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// On failure: the HTTP status, or a class (`"4xx"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusExpect>,
    /// On failure: the error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// An expected status: exact, or a class such as `4xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusExpect {
    /// This status.
    Exact(u16),
    /// Any status of this hundred (4 for `4xx`).
    Class(u16),
}

impl StatusExpect {
    /// Whether `status` is one this expectation accepts.
    pub fn accepts(self, status: u64) -> bool {
        match self {
            Self::Exact(s) => u64::from(s) == status,
            Self::Class(c) => status / 100 == u64::from(c),
        }
    }
}

impl std::fmt::Display for StatusExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(s) => write!(f, "{s}"),
            Self::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl JsonSchema for StatusExpect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusExpect".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An HTTP status (403) or a class ('4xx').",
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^[1-5]xx$"}
            ]
        })
    }
}

impl Serialize for StatusExpect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Exact(n) => s.serialize_u16(*n),
            Self::Class(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for StatusExpect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| (100..600).contains(n))
                .map(Self::Exact)
                .ok_or_else(|| D::Error::custom("a status is 100 to 599")),
            Value::String(s) => match s.as_bytes() {
                [c @ b'1'..=b'5', b'x', b'x'] => Ok(Self::Class(u16::from(c - b'0'))),
                _ => Err(D::Error::custom(format!("a status class is written like '4xx', not '{s}'"))),
            },
            _ => Err(D::Error::custom("a status is a number (403) or a class ('4xx')")),
        }
    }
}

/// What must hold once the steps ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaseExpect {
    /// Patterns matched in order as a subsequence of the case's requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestPattern>,
    /// Operation → how many requests of it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, CountExpect>,
    /// The state left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateExpect>,
    /// `honoured`: at least one Retry-After verdict, and no violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<RetryAfterExpect>,
}

/// A request the client must have sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestPattern {
    /// The named operation (docs/operations.md).
    pub operation: String,
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The routed path (path form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Query parameters (a subset; `api-version` ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Map<String, Value>>,
    /// Request headers (a subset; lower-case names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    /// The body: equal after normalisation, or a subset with `bodyMatch: subset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How `body` is compared.
    #[serde(default, skip_serializing_if = "BodyMatch::is_equal")]
    pub body_match: BodyMatch,
    /// The status the mock answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// How a pattern's body is compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BodyMatch {
    /// Equal after normalisation.
    #[default]
    Equal,
    /// Every key given equal, recursively.
    Subset,
}

impl BodyMatch {
    fn is_equal(&self) -> bool {
        *self == Self::Equal
    }
}

/// How many requests of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CountExpect {
    /// Exactly this many.
    Exact(u64),
    /// Within bounds.
    Range {
        /// At least.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        /// At most.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
}

impl CountExpect {
    /// Whether `n` requests satisfy it.
    pub fn accepts(self, n: u64) -> bool {
        match self {
            Self::Exact(e) => n == e,
            Self::Range { min, max } => min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m),
        }
    }
}

impl std::fmt::Display for CountExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(e) => write!(f, "exactly {e}"),
            Self::Range { min, max } => match (min, max) {
                (Some(a), Some(b)) => write!(f, "{a} to {b}"),
                (Some(a), None) => write!(f, "at least {a}"),
                (None, Some(b)) => write!(f, "at most {b}"),
                (None, None) => write!(f, "any number"),
            },
        }
    }
}

/// The state the case must leave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateExpect {
    /// Subset patterns of connections (`id`, `displayName`, `status`, `statusCode`, …), each
    /// matched by a different connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<Value>>,
    /// No connection exists beyond those `connections` matched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connections_exact: bool,
    /// Subset patterns of the runs (`/_mock/runs` view), each matched by a different run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<Value>>,
}

/// What the Retry-After check must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RetryAfterExpect {
    /// At least one verdict exists for the sandbox, and none is a violation.
    Honoured,
}

impl Case {
    /// The JSON Schema of the case format (what `fixtures/case.schema.json` holds), for
    /// editors; the loader's checks go further (ids, operations, references).
    pub fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(Case)).unwrap_or_default()
    }
}

/// A case with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCase {
    /// The case.
    pub case: Case,
    /// The file as named in messages (`cases/identity/token.json`, or a path on disk).
    pub file: String,
    /// Where to write it back (`--update`): the file on disk, when known.
    pub path: Option<PathBuf>,
}

/// A case file that does not load: the file, the field (a JSON path; empty for the whole
/// file) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct CaseError {
    /// The file.
    pub file: String,
    /// The field, as a path (`steps[2].expect.status`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Case {
    /// Parses and checks one case file's text (`file` names it in errors).
    pub fn parse(file: &str, text: &str) -> Result<Case, CaseError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let case: Case = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            CaseError {
                file: file.to_owned(),
                field: if field == "." { String::new() } else { field },
                message: e.into_inner().to_string(),
            }
        })?;
        case.validate(file)?;
        Ok(case)
    }

    /// The checks serde cannot make.
    pub fn validate(&self, file: &str) -> Result<(), CaseError> {
        let err = |field: String, message: String| CaseError { file: file.to_owned(), field, message };
        check_id(&self.id).map_err(|m| err("id".into(), m))?;
        if self.statement.trim().is_empty() || self.statement.contains('\n') {
            return Err(err("statement".into(), "must be one non-empty line".into()));
        }
        if let Some(identity) = &self.identity {
            match (&identity.service_principal, &identity.user) {
                (Some(_), None) if identity.public_client.is_some() => {
                    return Err(err("identity.publicClient".into(), "goes with 'user' only".into()));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => return Err(err("identity".into(), "names exactly one of 'servicePrincipal' or 'user'".into())),
            }
        }
        if self.steps.is_empty() {
            return Err(err("steps".into(), "a case has at least one step".into()));
        }
        let mut saved: BTreeSet<&str> = BTreeSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            let used = match step {
                Step::Client(c) => {
                    if !c.args.is_object() {
                        return Err(err(format!("{at}.args"), "must be a JSON object".into()));
                    }
                    if let Some(e) = &c.expect {
                        if e.ok && (e.status.is_some() || e.code.is_some()) {
                            return Err(err(format!("{at}.expect"), "'status' and 'code' go with ok: false".into()));
                        }
                        if !e.ok && e.result.is_some() {
                            return Err(err(format!("{at}.expect.result"), "goes with ok: true".into()));
                        }
                    }
                    let mut v = vec![c.args.clone()];
                    v.extend(c.expect.as_ref().and_then(|e| e.result.clone()));
                    v
                }
                Step::Mock(m) => vec![serde_json::to_value(m).unwrap_or(Value::Null)],
            };
            for v in &used {
                for name in references(v) {
                    if !saved.contains(name.as_str()) {
                        return Err(err(at.clone(), format!("'${{{name}.…}}' names no earlier step's 'save'")));
                    }
                }
            }
            if let Step::Client(ClientStep { save: Some(name), .. }) = step {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(err(format!("{at}.save"), "is a name of ASCII letters, digits and '_'".into()));
                }
                saved.insert(name.as_str());
            }
        }
        for (i, p) in self.expect.requests.iter().enumerate() {
            if mock_server::operation::Operation::parse(&p.operation).is_none() {
                return Err(err(
                    format!("expect.requests[{i}].operation"),
                    format!("'{}' is not a named operation (docs/operations.md)", p.operation),
                ));
            }
        }
        for op in self.expect.counts.keys() {
            if mock_server::operation::Operation::parse(op).is_none() {
                return Err(err(
                    format!("expect.counts.{op}"),
                    format!("'{op}' is not a named operation (docs/operations.md)"),
                ));
            }
        }
        let expectations = serde_json::to_value(&self.expect).unwrap_or(Value::Null);
        if let Some(name) = references(&expectations).into_iter().find(|n| !saved.contains(n.as_str())) {
            return Err(err("expect".into(), format!("'${{{name}.…}}' names no step's 'save'")));
        }
        Ok(())
    }
}

/// The names `${name.field}` strings refer to, anywhere in `v`.
pub fn references(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    crate::substitute::visit_strings(v, &mut |s| {
        if let Some((name, _)) = crate::substitute::reference(s) {
            out.push(name.to_owned());
        }
    });
    out
}

/// A case id: lower-case ASCII letters, digits and `-` in at least two `/`-separated
/// segments, the first naming a surface.
pub fn check_id(id: &str) -> Result<(), String> {
    let segments: Vec<&str> = id.split('/').collect();
    if segments.len() < 2 {
        return Err(format!("'{id}' has fewer than two '/'-separated segments"));
    }
    if let Some(s) = segments.iter().find(|s| {
        s.is_empty()
            || s.starts_with('-')
            || s.ends_with('-')
            || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }) {
        return Err(format!("segment '{s}' of '{id}' is not lower-case ASCII letters, digits and inner '-'"));
    }
    if !SURFACES.contains(&segments[0]) {
        return Err(format!("'{id}' starts with '{}', not a surface ({})", segments[0], SURFACES.join(", ")));
    }
    Ok(())
}

/// The catalog embedded in the `fixtures` crate, checked (unique ids).
pub fn embedded() -> Result<Vec<LoadedCase>, CaseError> {
    let on_disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures");
    let files = fixtures::case_files()
        .into_iter()
        .map(|(file, text)| {
            let path = on_disk.join(&file);
            let relative = file.strip_prefix("cases/").unwrap_or(&file).to_owned();
            Source { file, relative, text: text.to_owned(), path: path.is_file().then_some(path) }
        })
        .collect();
    from_texts(files)
}

/// Every `*.json` under `dir` (recursively), checked (unique ids).
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedCase>, CaseError> {
    let mut paths = Vec::new();
    collect(dir, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| CaseError {
            file: file.clone(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        files.push(Source { file, relative, text, path: Some(path) });
    }
    if files.is_empty() {
        return Err(CaseError {
            file: dir.display().to_string(),
            field: String::new(),
            message: "holds no *.json case".into(),
        });
    }
    from_texts(files)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CaseError> {
    let read = std::fs::read_dir(dir).map_err(|e| CaseError {
        file: dir.display().to_string(),
        field: String::new(),
        message: format!("cannot read the folder: {e}"),
    })?;
    for entry in read.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// A case file before parsing.
struct Source {
    /// As named in messages.
    file: String,
    /// Its path below the catalog's root (`connections/create/x.json`).
    relative: String,
    text: String,
    path: Option<PathBuf>,
}

fn from_texts(files: Vec<Source>) -> Result<Vec<LoadedCase>, CaseError> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for Source { file, relative, text, path } in files {
        let case = Case::parse(&file, &text)?;
        // A case lives in the folder of its surface; a file at the root of a folder given
        // with --cases may hold any case.
        if let Some((folder, _)) = relative.split_once('/')
            && case.id.split('/').next() != Some(folder)
        {
            return Err(CaseError {
                file,
                field: "id".into(),
                message: format!(
                    "'{}' is in the folder '{folder}/': a case lives in the folder of its surface",
                    case.id
                ),
            });
        }
        if let Some(first) = seen.insert(case.id.clone(), file.clone()) {
            return Err(CaseError {
                file,
                field: "id".into(),
                message: format!("'{}' is also the id of {first}", case.id),
            });
        }
        out.push(LoadedCase { case, file, path });
    }
    out.sort_by(|a, b| a.case.id.cmp(&b.case.id));
    Ok(out)
}
