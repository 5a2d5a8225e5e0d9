//! The Power Platform API connections endpoints (api-facts 3.1) on both doors: the
//! environment host (rewritten by the pipeline to the path form) and
//! `/connectivity/environments/{environmentId}/…`. A loopback call without an environment
//! takes it from `$filter=environment eq '…'`, then the body, then the sandbox's only
//! environment (DECISIONS.md).

use super::extract::json_body;
use super::{ApiError, RequestContext, RouteInfo, json};
use crate::domain::clock::format_timestamp;
use crate::domain::connection::{
    Caller, Connection, ConnectionId, ConnectionStatus, Login, ParameterSet, PutConnection, PutOutcome, RunOwner,
};
use crate::domain::connection_share::{PermissionChange, PermissionPut};
use crate::domain::ids::{AppId, CredentialId, EnvironmentId, MachineGroupId};
use crate::domain::world::{PrincipalKind, World};
use crate::operation::Operation;
use crate::state::AppState;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Routes of the connections API. The pipeline serves these operations itself (`serve`):
/// the router only answers a method none of them takes on their paths.
pub fn router() -> Router<AppState> {
    let env_one = "/connectivity/environments/{env}/connectors/{connector}/connections/{id}";
    let one_path = "/connectivity/connectors/{connector}/connections/{id}";
    let paths = [
        format!("{env_one}/permissions"),
        format!("{env_one}/modifyPermissions"),
        format!("{one_path}/permissions"),
        format!("{one_path}/modifyPermissions"),
        env_one.to_owned(),
        "/connectivity/environments/{env}/connectors/{connector}/connections".to_owned(),
        "/connectivity/environments/{env}/connections".to_owned(),
        one_path.to_owned(),
        "/connectivity/connectors/{connector}/connections".to_owned(),
        "/connectivity/connections".to_owned(),
    ];
    paths.iter().fold(Router::new(), |r, p| r.route(p, any(super::method_not_allowed)))
}

/// One connections call as its handler sees it: who and where (the context), the path's
/// names, the request's head and body.
struct Call<'a> {
    ctx: RequestContext,
    path: ConnectionPath<'a>,
    headers: &'a HeaderMap,
    body: &'a axum::body::Bytes,
}

type Handler = fn(&Call<'_>) -> Result<Response, ApiError>;

/// The handler of each operation the pipeline serves itself; `None` for the others.
fn handler(operation: Operation) -> Option<Handler> {
    Some(match operation {
        Operation::ConnectionsPut => put_connection,
        Operation::ConnectionsGet => get_connection,
        Operation::ConnectionsDelete => delete_connection,
        Operation::ConnectionsList => list_connections,
        Operation::ConnectionsPermissions => get_permissions,
        Operation::ConnectionsModifyPermissions => modify_permissions,
        _ => return None,
    })
}

/// Whether [`serve`] serves `operation`.
pub(crate) fn serves(operation: Operation) -> bool {
    handler(operation).is_some()
}

/// Serves a connections call the pipeline has classified (its operation is one [`serves`]
/// names), with no router in between: the operation and the path's shape are known already.
/// Checks come in the order the API has them: `api-version`, the token, then the path's names.
pub(crate) fn serve(
    app: &AppState,
    route: RouteInfo,
    parts: &axum::http::request::Parts,
    body: &axum::body::Bytes,
) -> Result<Response, ApiError> {
    let handler = handler(route.operation).ok_or(ApiError::Internal)?;
    check_api_version(parts.uri.query().unwrap_or(""))?;
    let ctx = RequestContext::authenticate(app, route, &parts.headers, None)?;
    let path = ConnectionPath::of(parts.uri.path())?;
    handler(&Call { ctx, path, headers: &parts.headers, body })
}

/// The names a connections path carries, percent-decoded as a router would:
/// `/connectivity[/environments/{env}][/connectors/{connector}]/connections[/{id}[/…]]`.
#[derive(Debug, Default)]
struct ConnectionPath<'a> {
    environment: Option<Cow<'a, str>>,
    connector: Option<Cow<'a, str>>,
    id: Option<Cow<'a, str>>,
}

impl<'a> ConnectionPath<'a> {
    fn of(path: &'a str) -> Result<Self, ApiError> {
        let decode = |s: &'a str| {
            percent_encoding::percent_decode_str(s).decode_utf8().map_err(|_| {
                ApiError::bad_request("InvalidPath", "A segment of the path is not UTF-8 once percent-decoded.")
            })
        };
        let segs: smallvec::SmallVec<[&str; 16]> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut names = ConnectionPath::default();
        let rest = match segs.as_slice() {
            ["connectivity", "environments", env, rest @ ..] => {
                names.environment = Some(decode(env)?);
                rest
            }
            ["connectivity", rest @ ..] => rest,
            _ => &[],
        };
        if let ["connectors", connector, "connections", more @ ..] = rest {
            names.connector = Some(decode(connector)?);
            if let [id, ..] = more {
                names.id = Some(decode(id)?);
            }
        }
        Ok(names)
    }

    fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    fn connector(&self) -> &str {
        self.connector.as_deref().unwrap_or_default()
    }
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
    path_env: Option<&str>,
    body_env: Option<&str>,
    world: &World,
) -> Result<EnvironmentId, ApiError> {
    let named = path_env.or(route.environment.as_deref()).or(body_env);
    let bad = |v: &str| {
        ApiError::bad_request(
            "InvalidEnvironmentId",
            format!("'{v}' is not an environment id (a GUID, optionally prefixed 'Default-')."),
        )
    };
    match named {
        // The world's own id when it has the environment: shared, not allocated again.
        Some(v) => match EnvironmentId::canonical(v, |id| world.environments.iter().find(|e| e.id.as_str() == id)) {
            Ok(Some(known)) => Ok(known.id.clone()),
            Ok(None) => EnvironmentId::parse(v).map_err(|_| bad(v)),
            Err(_) => Err(bad(v)),
        },
        None => match world.environments.as_slice() {
            [only] => Ok(only.id.clone()),
            _ => Err(ApiError::bad_request(
                "EnvironmentNotSpecified",
                "No environment named: call the environment host, or /connectivity/environments/{environmentId}/…, or add $filter=environment eq '{environmentId}', or give properties.environment.name in the body.",
            )),
        },
    }
}

pub(crate) fn connection_id(raw: Option<&str>) -> Result<ConnectionId, ApiError> {
    let raw = raw.unwrap_or("");
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

/// A PUT body; names the client wrote are read in place where they need no copy.
#[derive(Debug, Deserialize)]
struct PutBody<'a> {
    #[serde(borrow)]
    properties: PutProperties<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutProperties<'a> {
    #[serde(default)]
    environment: Option<EnvironmentRef>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default, borrow)]
    connection_parameters_set: Option<ParameterSetBody<'a>>,
    #[serde(default)]
    credential_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EnvironmentRef {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ParameterSetBody<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    values: BTreeMap<Cow<'a, str>, Param<'a>>,
}

/// One connection parameter as sent: what its `value` member holds, `None` when it is not an
/// object with one. Other members are ignored (the last `value` counts, as in a `Value`), and
/// the object itself is never built.
#[derive(Debug, Default)]
struct Param<'a> {
    value: Option<ParamValue<'a>>,
}

/// A parameter's `value`: a string (read in place when it has no escapes), or any other JSON
/// as a tree.
#[derive(Debug)]
enum ParamValue<'a> {
    Text(Cow<'a, str>),
    Tree(Value),
}

impl ParamValue<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            Self::Tree(_) => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Param<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ParamValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamValueVisitor)
    }
}

struct ParamVisitor;

impl<'de> serde::de::Visitor<'de> for ParamVisitor {
    type Value = Param<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a connection parameter {\"value\": …}")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Param<'de>, A::Error> {
        let mut param = Param::default();
        while let Some(is_value) = map.next_key_seed(super::extract::MemberName(|name: &str| name == "value"))? {
            if is_value {
                param.value = Some(map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(param)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Param<'de>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Param::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Param<'de>, E> {
        Ok(Param::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Param<'de>, E> {
        Ok(Param::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Param<'de>, E> {
        Ok(Param::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Param<'de>, E> {
        Ok(Param::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Param<'de>, E> {
        Ok(Param::default())
    }
    fn visit_unit<E>(self) -> Result<Param<'de>, E> {
        Ok(Param::default())
    }
}

struct ParamValueVisitor;

impl<'de> serde::de::Visitor<'de> for ParamValueVisitor {
    type Value = ParamValue<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Text(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Tree(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Tree(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Tree(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Tree(Value::from(v)))
    }
    fn visit_unit<E>(self) -> Result<ParamValue<'de>, E> {
        Ok(ParamValue::Tree(Value::Null))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ParamValue<'de>, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ParamValue::Tree)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<ParamValue<'de>, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(ParamValue::Tree)
    }
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
fn string_value(set: &str, values: &BTreeMap<Cow<'_, str>, Param<'_>>, key: &str) -> Result<String, ApiError> {
    let v = values.get(key).ok_or_else(|| {
        ApiError::bad_request(
            "MissingConnectionParameter",
            format!(
                "The parameter '{key}' is required by the parameter set '{set}': give \"{key}\": {{\"value\": \"…\"}}."
            ),
        )
    })?;
    v.value
        .as_ref()
        .and_then(ParamValue::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid(key, "an object {\"value\": \"…\"} holding a string"))
}

/// Every value key must be one the set knows, so a typo is named rather than ignored.
fn known_keys(set: &str, values: &BTreeMap<Cow<'_, str>, Param<'_>>, own: &[&str]) -> Result<(), ApiError> {
    for k in values.keys() {
        if !own.contains(&k.as_ref()) && !HIDDEN.contains(&k.as_ref()) {
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

fn target(set: &str, values: &BTreeMap<Cow<'_, str>, Param<'_>>) -> Result<MachineGroupId, ApiError> {
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
fn login(set: &str, values: &BTreeMap<Cow<'_, str>, Param<'_>>, credential: Option<&str>) -> Result<Login, ApiError> {
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
fn run_owner(values: &BTreeMap<Cow<'_, str>, Param<'_>>) -> Result<RunOwner, ApiError> {
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
    let value = match &cert.value {
        Some(ParamValue::Tree(v)) if v.is_object() => v,
        _ => return Err(invalid(RUN_OWNER_CERT, shape)),
    };
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

fn parameters(set: Option<ParameterSetBody<'_>>, credential: Option<&str>) -> Result<ParameterSet, ApiError> {
    let set = set.ok_or_else(|| {
        ApiError::bad_request(
            "MissingConnectionParameter",
            "A shared_uiflow connection needs properties.connectionParametersSet (for example {\"name\": \"azureRelay\", \"values\": {…}}).",
        )
    })?;
    let v = &set.values;
    match set.name.as_ref() {
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

/// JSON text written by hand into one buffer. The connection resource is most of what a
/// connections GET or PUT answers, and serde's generic writer spent more on its plumbing
/// (a formatter call per key, escaping through `fmt::Write`) than on the text itself.
struct JsonText {
    out: Vec<u8>,
}

impl JsonText {
    fn new() -> Self {
        // A connection is about a kilobyte: one allocation for most answers.
        Self { out: Vec::with_capacity(2048) }
    }

    /// Text that is JSON already (punctuation, member names, literals).
    fn raw(&mut self, s: &str) -> &mut Self {
        self.out.extend_from_slice(s.as_bytes());
        self
    }

    /// A string value, escaped as JSON requires.
    fn string(&mut self, s: &str) -> &mut Self {
        // Writing to a vector cannot fail.
        let _ = s.serialize(&mut serde_json::Serializer::new(&mut self.out));
        self
    }

    /// A string value made of `pieces`: ids (checked when parsed) and fixed text, which never
    /// need escaping.
    fn ids(&mut self, pieces: &[&str]) -> &mut Self {
        self.raw("\"");
        for piece in pieces {
            self.raw(piece);
        }
        self.raw("\"")
    }

    /// A URL on the origin the client called (its `Host`, which could hold anything) followed
    /// by id `pieces`: escaped only when the origin needs it.
    fn url(&mut self, origin: &str, pieces: &[&str]) -> &mut Self {
        let whole: smallvec::SmallVec<[&str; 8]> = std::iter::once(origin).chain(pieces.iter().copied()).collect();
        if origin.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            return self.string(&whole.concat());
        }
        self.ids(&whole)
    }

    /// A GUID, hyphenated and lower-case as every body shows one.
    fn guid(&mut self, id: uuid::Uuid) -> &mut Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.raw("\"").raw(id.hyphenated().encode_lower(&mut buf)).raw("\"")
    }

    /// A connection's owner or creator, members in alphabetical order (as `owner_json`
    /// writes them); the creator also shows `userPrincipalName`.
    fn owner(&mut self, who: &Caller, with_upn: bool) -> &mut Self {
        self.raw("{\"displayName\":").string(&who.display_name);
        if let Some(upn) = &who.upn {
            self.raw(",\"email\":").string(upn);
        }
        self.raw(",\"id\":").guid(who.principal.uuid());
        self.raw(",\"tenantId\":").guid(who.tenant.uuid());
        self.raw(",\"type\":").string(principal_type(who.kind));
        if let (true, Some(upn)) = (with_upn, &who.upn) {
            self.raw(",\"userPrincipalName\":").string(upn);
        }
        self.raw("}")
    }

    /// The connection resource (api-facts 3.3) with `status`, its status as the world stands
    /// now. Never a secret: `username`, `targetId` and the run owner's client id only.
    /// Members come in alphabetical order, the order a `Value`'s map writes them in, which the
    /// answers have always had.
    fn connection(&mut self, c: &Connection, status: &ConnectionStatus, origin: &str) -> &mut Self {
        let name = c.id.as_written();
        let environment = c.environment.as_str();
        let runtime = ["/apim/uiflow/", environment, "/", name];
        let p = &c.parameters;
        self.raw("{\"id\":").ids(&["/providers/Microsoft.PowerApps/apis/", c.connector, "/connections/", name]);
        self.raw(",\"name\":").ids(&[name]);
        self.raw(",\"properties\":{\"allowSharing\":").raw(if p.run_owner().is_some() { "true" } else { "false" });
        self.raw(",\"apiId\":").ids(&["/providers/Microsoft.PowerApps/apis/", c.connector]);
        self.raw(",\"connectionParametersSet\":{\"name\":").string(p.name());
        self.raw(",\"values\":{\"targetId\":{\"value\":").guid(p.target().uuid()).raw("}");
        if let Some(owner) = p.run_owner() {
            self.raw(",\"").raw(RUN_OWNER_ID).raw("\":{\"value\":").guid(owner.app_id.uuid()).raw("}");
        }
        if let Some(u) = p.username() {
            self.raw(",\"username\":{\"value\":").string(u).raw("}");
        }
        self.raw("}},\"connectionRuntimeUrl\":").url(origin, &runtime);
        self.raw(",\"createdBy\":").owner(&c.created_by, true);
        self.raw(",\"createdTime\":").string(&format_timestamp(c.created_time));
        if let Some(id) = p.login().and_then(Login::credential) {
            self.raw(",\"credentialId\":").guid(id.uuid());
        }
        self.raw(",\"displayName\":").string(&c.display_name);
        self.raw(",\"environment\":{\"id\":").ids(&["/providers/Microsoft.PowerApps/environments/", environment]);
        self.raw(",\"name\":").ids(&[environment]).raw("}");
        self.raw(",\"iconUri\":\"https://connectoricons-prod.azureedge.net/releases/v1.0.1700/1.0.1700.3800/uiflow/icon.png\"");
        self.raw(",\"keywordsRemaining\":0");
        self.raw(",\"lastModifiedTime\":").string(&format_timestamp(c.last_modified_time));
        self.raw(",\"statuses\":[{");
        match status {
            ConnectionStatus::Connected => self.raw("\"status\":\"Connected\""),
            ConnectionStatus::Error { code, message } => {
                self.raw("\"error\":{\"code\":").string(code).raw(",\"message\":").string(message);
                self.raw("},\"status\":\"Error\"")
            }
        };
        let [uiflow, environment, slash, name] = runtime;
        self.raw("}],\"testLinks\":[{\"method\":\"get\",\"requestUri\":")
            .url(origin, &[uiflow, environment, slash, name, "/usersession/testconnection"]);
        self.raw("}]},\"type\":\"Microsoft.PowerApps/apis/connections\"}")
    }
}

/// One connection as the API shows it, with its status as the world stands now.
fn connection_text(world: &World, c: &Connection, origin: &str) -> Vec<u8> {
    let mut text = JsonText::new();
    text.connection(c, &world.status(c), origin);
    text.out
}

/// A JSON answer written while the world is at hand (the view borrows it).
fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(axum::body::Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    r
}

/// Writing plain data to a vector cannot fail; if it somehow did, the client gets an envelope.
fn to_json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    // A connection is about a kilobyte: one allocation for most answers.
    let mut out = Vec::with_capacity(2048);
    serde_json::to_writer(&mut out, v).map_err(|_| ApiError::Internal)?;
    Ok(out)
}

fn put_connection(call: &Call<'_>) -> Result<Response, ApiError> {
    let Call { ctx, path, headers, body } = call;
    let id = connection_id(path.id.as_deref())?;
    let put: PutBody = json_body(headers, body)?;
    let body_env = put.properties.environment.as_ref().and_then(|e| e.name.clone());
    let parameters = parameters(put.properties.connection_parameters_set, put.properties.credential_id.as_deref())?;
    let connector = path.connector().to_owned();
    let (outcome, out) = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, path.environment(), body_env.as_deref(), &st.world)?;
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
        Ok((outcome, connection_text(&st.world, c, &ctx.route.origin)))
    })?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Updated => StatusCode::OK,
    };
    Ok(json_bytes(status, out))
}

fn get_connection(call: &Call<'_>) -> Result<Response, ApiError> {
    read_one(call, |world, c| Ok(connection_text(world, c, &call.ctx.route.origin)))
}

fn get_permissions(call: &Call<'_>) -> Result<Response, ApiError> {
    read_one(call, |world, c| to_json_bytes(&permissions_json(world, c)))
}

/// A GET of one connection the caller may see, rendered by `render`.
fn read_one(
    Call { ctx, path, .. }: &Call<'_>,
    render: impl FnOnce(&World, &Connection) -> Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    let id = connection_id(path.id.as_deref())?;
    let out = ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, path.environment(), None, &st.world)?;
        let c = st.world.connection(&ctx.caller, &environment, path.connector(), &id)?;
        render(&st.world, c)
    })?;
    Ok(json_bytes(StatusCode::OK, out))
}

fn delete_connection(Call { ctx, path, .. }: &Call<'_>) -> Result<Response, ApiError> {
    let id = connection_id(path.id.as_deref())?;
    ctx.sandbox.apply(|st| -> Result<_, ApiError> {
        let environment = resolve_environment(&ctx.route, path.environment(), None, &st.world)?;
        Ok(st.world.delete_connection(&ctx.caller, &environment, path.connector(), &id)?)
    })?;
    Ok(StatusCode::OK.into_response())
}

fn list_connections(Call { ctx, path, .. }: &Call<'_>) -> Result<Response, ApiError> {
    let out = ctx.sandbox.apply(|st| -> Result<Vec<u8>, ApiError> {
        let environment = resolve_environment(&ctx.route, path.environment(), None, &st.world)?;
        let list = st.world.list_connections(&ctx.caller, &environment, path.connector.as_deref())?;
        let mut text = JsonText::new();
        text.raw("{\"value\":[");
        for (i, c) in list.into_iter().enumerate() {
            text.raw(if i == 0 { "" } else { "," }).connection(c, &st.world.status(c), &ctx.route.origin);
        }
        text.raw("]}");
        Ok(text.out)
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

fn modify_permissions(Call { ctx, path, headers, body }: &Call<'_>) -> Result<Response, ApiError> {
    let id = connection_id(path.id.as_deref())?;
    let m: ModifyBody = json_body(headers, body)?;
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
        let environment = resolve_environment(&ctx.route, path.environment(), None, &st.world)?;
        st.world.modify_permissions(&ctx.caller, &environment, path.connector(), &id, &change)?;
        let c = st.world.connection(&ctx.caller, &environment, path.connector(), &id)?;
        Ok(permissions_json(&st.world, c))
    })?;
    Ok(json(StatusCode::OK, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{PrincipalId, TenantId};
    use proptest::prelude::*;

    fn connection(display_name: &str, username: &str, upn: Option<&str>) -> Connection {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00.5Z").unwrap().to_utc();
        Connection {
            id: ConnectionId::parse("0B4F0F1E5D524B6C9D8E1B2C3D4E5F60").unwrap(),
            environment: EnvironmentId::parse("Default-37520647-dbdf-49fa-ba01-6134c14680c4").unwrap(),
            connector: "shared_uiflow",
            display_name: display_name.to_owned(),
            parameters: ParameterSet::AzureRelayRunOwner {
                login: Login::Credential {
                    credential: CredentialId::parse("5f0c7a6e-1d2b-4c3d-8e9f-0a1b2c3d4e5f").unwrap(),
                    username: username.to_owned(),
                    password: "not shown".to_owned(),
                },
                target: MachineGroupId::parse("42e26112-838c-471b-b09f-958e640e9303").unwrap(),
                run_owner: RunOwner {
                    app_id: AppId::parse("71fb83d4-8950-48e6-8251-52e4b19068c8").unwrap(),
                    pfx: SecretString::from("MIIK"),
                },
            },
            created_by: Caller {
                principal: PrincipalId::parse("0d5e4f3a-2b1c-4d0e-9f8a-7b6c5d4e3f2a").unwrap(),
                tenant: TenantId::parse("c7263f1a-afcd-4e8a-a7ce-66b19698caaa").unwrap(),
                kind: PrincipalKind::User,
                app_id: None,
                display_name: "Megan \"Bowen\"".to_owned(),
                upn: upn.map(str::to_owned),
            }
            .into(),
            created_time: at,
            last_modified_time: at,
            correlation: uuid::Uuid::nil(),
            shares: Vec::new(),
        }
    }

    fn written(c: &Connection, status: &ConnectionStatus, origin: &str) -> Value {
        let mut text = JsonText::new();
        text.connection(c, status, origin);
        serde_json::from_slice(&text.out).expect("the text is JSON")
    }

    #[test]
    fn the_connection_resource_has_every_member_in_order_and_no_secret() {
        let c = connection("Finance bots", "CONTOSO\\svc-rpa", Some("megan@contoso.com"));
        let status = ConnectionStatus::Error { code: "WindowsIdentityIncorrect", message: "Bad \"login\"\n".into() };
        let mut text = JsonText::new();
        text.connection(&c, &status, "https://127.0.0.1:8443");
        let raw = String::from_utf8(text.out).unwrap();
        assert!(!raw.contains("not shown") && !raw.contains("MIIK"), "{raw}");
        let v: Value = serde_json::from_str(&raw).unwrap();
        let name = "0b4f0f1e5d524b6c9d8e1b2c3d4e5f60";
        let runtime = format!("https://127.0.0.1:8443/apim/uiflow/Default-37520647-dbdf-49fa-ba01-6134c14680c4/{name}");
        let expected = json!({
            "id": format!("/providers/Microsoft.PowerApps/apis/shared_uiflow/connections/{name}"),
            "name": name,
            "properties": {
                "allowSharing": true,
                "apiId": "/providers/Microsoft.PowerApps/apis/shared_uiflow",
                "connectionParametersSet": {"name": "azureRelayRunOwner", "values": {
                    "targetId": {"value": "42e26112-838c-471b-b09f-958e640e9303"},
                    "tokenRunOwnerCert:clientId": {"value": "71fb83d4-8950-48e6-8251-52e4b19068c8"},
                    "username": {"value": "CONTOSO\\svc-rpa"},
                }},
                "connectionRuntimeUrl": runtime,
                "createdBy": {
                    "displayName": "Megan \"Bowen\"",
                    "email": "megan@contoso.com",
                    "id": "0d5e4f3a-2b1c-4d0e-9f8a-7b6c5d4e3f2a",
                    "tenantId": "c7263f1a-afcd-4e8a-a7ce-66b19698caaa",
                    "type": "User",
                    "userPrincipalName": "megan@contoso.com",
                },
                "createdTime": "2026-11-28T10:00:00.500Z",
                "credentialId": "5f0c7a6e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
                "displayName": "Finance bots",
                "environment": {
                    "id": "/providers/Microsoft.PowerApps/environments/Default-37520647-dbdf-49fa-ba01-6134c14680c4",
                    "name": "Default-37520647-dbdf-49fa-ba01-6134c14680c4",
                },
                "iconUri": "https://connectoricons-prod.azureedge.net/releases/v1.0.1700/1.0.1700.3800/uiflow/icon.png",
                "keywordsRemaining": 0,
                "lastModifiedTime": "2026-11-28T10:00:00.500Z",
                "statuses": [{"error": {"code": "WindowsIdentityIncorrect", "message": "Bad \"login\"\n"}, "status": "Error"}],
                "testLinks": [{"method": "get", "requestUri": format!("{runtime}/usersession/testconnection")}],
            },
            "type": "Microsoft.PowerApps/apis/connections",
        });
        assert_eq!(v, expected);
        // Members in alphabetical order, as a `Value` writes them: the text equals the tree's.
        assert_eq!(raw, serde_json::to_string(&expected).unwrap());
    }

    proptest! {
        /// Whatever the strings a client or the world chose, the text is JSON and says them exactly.
        #[test]
        fn any_string_is_escaped_and_reads_back(
            display in proptest::arbitrary::any::<String>(),
            username in proptest::arbitrary::any::<String>(),
            upn in proptest::option::of(proptest::arbitrary::any::<String>()),
            host in "[ -~]{0,40}",
        ) {
            let c = connection(&display, &username, upn.as_deref());
            let origin = format!("https://{host}");
            let v = written(&c, &ConnectionStatus::Connected, &origin);
            prop_assert_eq!(v["properties"]["displayName"].as_str(), Some(display.as_str()));
            prop_assert_eq!(v["properties"]["connectionParametersSet"]["values"]["username"]["value"].as_str(), Some(username.as_str()));
            prop_assert_eq!(v["properties"]["createdBy"]["email"].as_str(), upn.as_deref());
            let runtime = v["properties"]["connectionRuntimeUrl"].as_str().unwrap();
            prop_assert!(runtime.starts_with(&format!("{origin}/apim/uiflow/")), "{}", runtime);
        }
    }
}
