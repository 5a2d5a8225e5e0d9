//! The `credentials`, `environmentvariabledefinitions` and `environmentvariablevalues` tables:
//! rows in Dataverse's column names, and write bodies turned into the domain's changes. The
//! rules (who may, which variable a credential may name) are the domain's (`domain::credential`).

use super::{Table, string_field};
use crate::api::ApiError;
use crate::domain::connection::Caller;
use crate::domain::credential::{
    Credential, CredentialChange, CredentialKind, EnvironmentVariable, ValueChange, VariableChange, VariableType,
};
use crate::domain::ids::{CredentialId, EnvironmentId, VariableId, VariableValueId};
use crate::domain::machine::{Expect, Written};
use crate::domain::world::{Environment, World};
use crate::odata;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The usage every credential shows (`Connection`): the mock does not model desktop-script use.
const USAGE_CONNECTION: &str = "280920000";

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

fn owner_value(env: &Environment, owner: Option<crate::domain::ids::PrincipalId>) -> Value {
    owner.and_then(|o| env.system_user_of(o)).map_or(Value::Null, |s| json!(s.to_string()))
}

fn variable_id(env: &Environment, schema: Option<&str>) -> Value {
    schema.and_then(|s| env.variable(s)).map_or(Value::Null, |v| json!(v.id.to_string()))
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A `credential` row. A CyberArk credential's username is its `cyberarkusername` lookup.
pub(super) fn credential_row(env: &Environment, c: &Credential) -> Map<String, Value> {
    let username = variable_id(env, Some(&c.username_variable));
    let cyberark = c.kind == CredentialKind::CyberArk;
    object(json!({
        "@odata.etag": etag(c.version),
        "credentialid": c.id.to_string(),
        "name": c.name,
        "description": c.description,
        "connectiontype": c.kind.connection_type(),
        "credentialtype": 1,
        "usagetype": USAGE_CONNECTION,
        "_username_value": if cyberark { Value::Null } else { username.clone() },
        "_cyberarkusername_value": if cyberark { username } else { Value::Null },
        "_password_value": variable_id(env, c.password_variable.as_deref()),
        "_ownerid_value": owner_value(env, Some(c.owner)),
        "statecode": 0,
        "statuscode": 1,
        "versionnumber": c.version,
    }))
}

/// An `environmentvariabledefinition` row.
pub(super) fn variable_row(env: &Environment, v: &EnvironmentVariable) -> Map<String, Value> {
    object(json!({
        "@odata.etag": etag(v.version),
        "environmentvariabledefinitionid": v.id.to_string(),
        "schemaname": v.schema_name,
        "displayname": v.display_name,
        "description": v.description,
        "type": v.variable_type.option_value(),
        "defaultvalue": v.default_value,
        "_ownerid_value": owner_value(env, v.owner),
        "statecode": 0,
        "statuscode": 1,
        "versionnumber": v.version,
    }))
}

/// An `environmentvariablevalue` row: for a Secret variable, its Key Vault reference.
pub(super) fn value_row(env: &Environment, v: &EnvironmentVariable) -> Option<Map<String, Value>> {
    let row = v.value.as_ref()?;
    Some(object(json!({
        "@odata.etag": etag(row.version),
        "environmentvariablevalueid": row.id.to_string(),
        "schemaname": v.schema_name,
        "value": row.value,
        "_environmentvariabledefinitionid_value": v.id.to_string(),
        "_ownerid_value": owner_value(env, v.owner),
        "statecode": 0,
        "statuscode": 1,
        "versionnumber": row.version,
    })))
}

/// Rows of the three tables; credentials only those the caller can read.
pub(super) fn rows(env: &Environment, table: Table, who: &Caller) -> Vec<Map<String, Value>> {
    use crate::domain::access::Rights;
    match table {
        Table::Credential => env
            .credentials
            .iter()
            .filter(|c| env.credential_rights(c, who.principal).contains(Rights::READ))
            .map(|c| credential_row(env, c))
            .collect(),
        Table::VariableDefinition => env.variables.iter().map(|v| variable_row(env, v)).collect(),
        Table::VariableValue => env.variables.iter().filter_map(|v| value_row(env, v)).collect(),
        _ => Vec::new(),
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(odata::BAD_QUERY, message)
}

fn present<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

fn integer(map: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match present(map, key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| bad(format!("The property '{key}' must be an integer."))),
    }
}

/// `{key}: "/environmentvariabledefinitions(<id>)"`: `None` when absent, `Some(None)` when null.
fn variable_bind(map: &Map<String, Value>, key: &str) -> Result<Option<Option<VariableId>>, ApiError> {
    match present(map, key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(b)) => {
            let inner = b
                .trim_start_matches('/')
                .rsplit('/')
                .next()
                .and_then(|r| r.strip_prefix("environmentvariabledefinitions("))
                .and_then(|r| r.strip_suffix(')'));
            inner
                .and_then(|g| VariableId::parse(g).ok())
                .map(|id| Some(Some(id)))
                .ok_or_else(|| bad(format!("{key} must be '/environmentvariabledefinitions(<id>)'.")))
        }
        Some(_) => Err(bad(format!("{key} must be '/environmentvariabledefinitions(<id>)'."))),
    }
}

/// Text that may be cleared: `None` absent, `Some(None)` null.
fn clearable(map: &Map<String, Value>, key: &str) -> Result<Option<Option<String>>, ApiError> {
    match present(map, key) {
        None => Ok(None),
        Some(_) => Ok(Some(string_field(map, key)?)),
    }
}

fn credential_change(map: &Map<String, Value>) -> Result<CredentialChange, ApiError> {
    if let Some(t) = integer(map, "credentialtype")?
        && t != 1
    {
        return Err(ApiError::Domain(crate::domain::Error::CredentialTypeNotEmulated(t)));
    }
    let kind = integer(map, "connectiontype")?.map(CredentialKind::from_connection_type).transpose()?;
    let username =
        match (variable_bind(map, "username@odata.bind")?, variable_bind(map, "cyberarkusername@odata.bind")?) {
            (Some(_), Some(_)) => {
                return Err(bad("Give username@odata.bind or cyberarkusername@odata.bind, not both."));
            }
            (Some(u), None) | (None, Some(u)) => {
                Some(u.ok_or_else(|| bad("A credential's username cannot be cleared: bind another variable."))?)
            }
            (None, None) => None,
        };
    Ok(CredentialChange {
        name: string_field(map, "name")?,
        description: clearable(map, "description")?,
        kind,
        username,
        password: variable_bind(map, "password@odata.bind")?,
    })
}

fn variable_change(map: &Map<String, Value>) -> Result<VariableChange, ApiError> {
    Ok(VariableChange {
        schema_name: string_field(map, "schemaname")?,
        display_name: string_field(map, "displayname")?,
        description: clearable(map, "description")?,
        variable_type: integer(map, "type")?.map(VariableType::from_option).transpose()?,
        default_value: clearable(map, "defaultvalue")?,
    })
}

fn value_change(map: &Map<String, Value>) -> Result<ValueChange, ApiError> {
    let definition = variable_bind(map, "EnvironmentVariableDefinitionId@odata.bind")?.flatten();
    Ok(ValueChange { value: string_field(map, "value")?, definition })
}

fn env_of<'a>(world: &'a World, env: &EnvironmentId) -> Result<&'a Environment, ApiError> {
    world
        .environment(env)
        .ok_or_else(|| ApiError::NotFound { code: "0x8006088a", message: format!("No environment '{env}'.") })
}

/// POST to one of the tables: the new row.
pub(super) fn create(
    world: &mut World,
    who: &Caller,
    env: &EnvironmentId,
    table: Table,
    id: Uuid,
    map: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    upsert_or_create(world, who, env, table, id, map, None).map(|(_, row)| row)
}

/// PATCH of a row: updated, or created (upsert) when missing and no `If-Match` was sent.
pub(super) fn upsert(
    world: &mut World,
    who: &Caller,
    env: &EnvironmentId,
    table: Table,
    id: Uuid,
    map: &Map<String, Value>,
    expect: Expect,
) -> Result<(Written, Map<String, Value>), ApiError> {
    upsert_or_create(world, who, env, table, id, map, Some(expect))
}

fn upsert_or_create(
    world: &mut World,
    who: &Caller,
    env: &EnvironmentId,
    table: Table,
    id: Uuid,
    map: &Map<String, Value>,
    expect: Option<Expect>,
) -> Result<(Written, Map<String, Value>), ApiError> {
    match table {
        Table::Credential => {
            let (id, change) = (CredentialId::from_uuid(id), credential_change(map)?);
            let done = match expect {
                None => {
                    world.create_credential(who, env, id, change)?;
                    Written::Created
                }
                Some(e) => world.upsert_credential(who, env, id, change, e)?.0,
            };
            let e = env_of(world, env)?;
            let c = e.credential(id).ok_or_else(|| missing("credential", id.uuid()))?;
            Ok((done, credential_row(e, c)))
        }
        Table::VariableDefinition => {
            let (id, change) = (VariableId::from_uuid(id), variable_change(map)?);
            let done = match expect {
                None => {
                    world.create_variable(who, env, id, change)?;
                    Written::Created
                }
                Some(e) => world.upsert_variable(who, env, id, change, e)?.0,
            };
            let e = env_of(world, env)?;
            let v = e.variable_by_id(id).ok_or_else(|| missing("environmentvariabledefinition", id.uuid()))?;
            Ok((done, variable_row(e, v)))
        }
        Table::VariableValue => {
            let (id, change) = (VariableValueId::from_uuid(id), value_change(map)?);
            let done = match expect {
                None => {
                    world.create_variable_value(who, env, id, change)?;
                    Written::Created
                }
                Some(e) => world.upsert_variable_value(who, env, id, change, e)?.0,
            };
            let e = env_of(world, env)?;
            let row = e.variable_of_value(id).and_then(|v| value_row(e, v));
            Ok((done, row.ok_or_else(|| missing("environmentvariablevalue", id.uuid()))?))
        }
        _ => Err(ApiError::NotImplemented(format!("Writing {} here is a mock bug.", table.set()))),
    }
}

fn missing(entity: &'static str, id: Uuid) -> ApiError {
    ApiError::Domain(crate::domain::Error::RecordNotFound { entity, id: id.to_string() })
}

/// DELETE of a row.
pub(super) fn delete(
    world: &mut World,
    who: &Caller,
    env: &EnvironmentId,
    table: Table,
    id: Uuid,
    expect: Expect,
) -> Result<(), ApiError> {
    match table {
        Table::Credential => world.delete_credential(who, env, CredentialId::from_uuid(id), expect)?,
        Table::VariableDefinition => world.delete_variable(who, env, VariableId::from_uuid(id), expect)?,
        Table::VariableValue => world.delete_variable_value(who, env, VariableValueId::from_uuid(id), expect)?,
        _ => return Err(ApiError::NotImplemented(format!("Deleting {} here is a mock bug.", table.set()))),
    }
    Ok(())
}
