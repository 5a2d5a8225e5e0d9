//! Desktop-flow credentials and the environment variables they name, as Dataverse rows:
//! `credential`, `environmentvariabledefinition` and `environmentvariablevalue`, created, read,
//! changed, deleted and (credentials) shared like machines (DECISIONS.md, "Machines, groups and
//! sharing"). A connection's `credentialId` resolves through the same rows (`connection_status`).
//!
//! A Key Vault credential names a Text variable (the Windows username) and a Secret variable,
//! whose value is a Key Vault secret reference (`/subscriptions/…/vaults/{vault}/secrets/{name}`),
//! never the password: the password lives in the sandbox's stand-in for Azure Key Vault
//! (`World::vault`, filled by the fixture and the control surface), so no Dataverse answer or
//! journal entry carries it.
//!
//! Environment variables carry no sharing rules in the mock: every member of the environment
//! reads and writes them (mock-defined). Credentials follow ownership and shares, with the
//! rights of machines: `ReadAccess` uses one, `WriteAccess` changes it, `DeleteAccess` deletes it.

use super::Error;
use super::access::{Rights, Share, held};
use super::connection::Caller;
use super::ids::{CredentialId, EnvironmentId, PrincipalId, VariableId, VariableValueId};
use super::machine::{Expect, Written, check_version, require, validate_name};
use super::world::{Environment, World};
use secrecy::{ExposeSecret, SecretString};

/// Type of an environment variable (the `type` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableType {
    /// Text (`String`, 100000000): a credential's username.
    Text,
    /// Secret (100000005): an Azure Key Vault secret reference, a credential's password.
    Secret,
}

impl VariableType {
    /// The `type` option value.
    pub fn option_value(self) -> i64 {
        match self {
            Self::Text => 100_000_000,
            Self::Secret => 100_000_005,
        }
    }

    /// The type of an option value the mock emulates.
    pub fn from_option(value: i64) -> Result<Self, Error> {
        match value {
            100_000_000 => Ok(Self::Text),
            100_000_005 => Ok(Self::Secret),
            other => Err(Error::VariableTypeNotEmulated(other)),
        }
    }
}

/// An `environmentvariablevalue` row: the current value of its definition.
#[derive(Debug, Clone)]
pub struct VariableValue {
    /// `environmentvariablevalueid`.
    pub id: VariableValueId,
    /// Text, or for a Secret variable its Key Vault reference (not a secret).
    pub value: String,
    /// Row version.
    pub version: u64,
}

/// An `environmentvariabledefinition` row with its value, if it has one.
#[derive(Debug, Clone)]
pub struct EnvironmentVariable {
    /// `environmentvariabledefinitionid`.
    pub id: VariableId,
    /// `schemaname`, as `@environmentVariables("…")` names it.
    pub schema_name: String,
    /// `displayname`.
    pub display_name: String,
    /// `description`.
    pub description: Option<String>,
    /// `type`.
    pub variable_type: VariableType,
    /// `defaultvalue` (Text only): used while there is no value row.
    pub default_value: Option<String>,
    /// The value row.
    pub value: Option<VariableValue>,
    /// Who made it (`None` for the fixture's).
    pub owner: Option<PrincipalId>,
    /// Row version.
    pub version: u64,
}

impl EnvironmentVariable {
    /// The value in force: the value row's, else the default.
    pub fn current(&self) -> Option<&str> {
        self.value.as_ref().map(|v| v.value.as_str()).or(self.default_value.as_deref())
    }
}

/// A secret in the sandbox's stand-in for Azure Key Vault.
#[derive(Debug, Clone)]
pub struct VaultSecret {
    /// Vault name (case-insensitive, as Azure's).
    pub vault: String,
    /// Secret name (case-insensitive).
    pub name: String,
    /// What the vault returns.
    pub value: SecretString,
}

/// The vault and secret a Secret variable's value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultReference {
    /// Vault name.
    pub vault: String,
    /// Secret name.
    pub name: String,
}

/// The vault the fixture's Secret variables live in.
pub const FIXTURE_VAULT: &str = "mock-vault";

impl KeyVaultReference {
    /// Parses `/subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}/secrets/{name}`
    /// (the form Power Platform stores); fixed words compare case-insensitively.
    pub fn parse(value: &str) -> Option<Self> {
        let parts: Vec<&str> = value.trim().trim_start_matches('/').split('/').collect();
        let [subs, sub, rgs, rg, providers, kv, vaults, vault, secrets, name] = parts.as_slice() else {
            return None;
        };
        let fixed = [
            (subs, "subscriptions"),
            (rgs, "resourceGroups"),
            (providers, "providers"),
            (kv, "Microsoft.KeyVault"),
            (vaults, "vaults"),
            (secrets, "secrets"),
        ];
        let well_formed = fixed.iter().all(|(p, w)| p.eq_ignore_ascii_case(w))
            && [sub, rg, vault, name].iter().all(|p| !p.is_empty());
        well_formed.then(|| Self { vault: (*vault).to_owned(), name: (*name).to_owned() })
    }

    /// The reference as text, with the mock's subscription and resource group (the mock
    /// resolves references by vault and secret name only).
    pub fn to_text(&self) -> String {
        format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mock/providers/Microsoft.KeyVault/vaults/{}/secrets/{}",
            self.vault, self.name
        )
    }

    /// The reference the fixture's Secret variables get, in [`FIXTURE_VAULT`].
    pub fn for_fixture(schema_name: &str) -> (String, Self) {
        // Key Vault secret names allow letters, digits and dashes only.
        let name: String = schema_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let r = Self { vault: FIXTURE_VAULT.to_owned(), name };
        (r.to_text(), r)
    }
}

/// Kind of a desktop-flow credential (the `connectiontype` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// Key Vault username + password (`UsernamePassword`, 1).
    KeyVaultPassword,
    /// Key Vault certificate, password `none` (`CertificateBasedAuthentication`, 5).
    KeyVaultCertificate,
    /// CyberArk, password `none` (`CyberArkIdentity`, 4).
    CyberArk,
}

impl CredentialKind {
    /// The `connectiontype` option value.
    pub fn connection_type(self) -> i64 {
        match self {
            Self::KeyVaultPassword => 1,
            Self::CyberArk => 4,
            Self::KeyVaultCertificate => 5,
        }
    }

    /// The kind of a `connectiontype` the mock emulates (the list types 2 and 3 are not).
    pub fn from_connection_type(value: i64) -> Result<Self, Error> {
        match value {
            1 => Ok(Self::KeyVaultPassword),
            4 => Ok(Self::CyberArk),
            5 => Ok(Self::KeyVaultCertificate),
            other => Err(Error::CredentialTypeNotEmulated(other)),
        }
    }
}

/// A desktop-flow credential (`credential` row).
#[derive(Debug, Clone)]
pub struct Credential {
    /// `credentialid`.
    pub id: CredentialId,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `connectiontype`.
    pub kind: CredentialKind,
    /// Owner.
    pub owner: PrincipalId,
    /// Schema name of the Text variable holding the Windows username.
    pub username_variable: String,
    /// Schema name of the Secret variable (`KeyVaultPassword` only).
    pub password_variable: Option<String>,
    /// Shares (GrantAccess on `credentials`).
    pub shares: Vec<Share>,
    /// Row version.
    pub version: u64,
}

/// Columns of a credential write; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct CredentialChange {
    /// `name`.
    pub name: Option<String>,
    /// `description` (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// `connectiontype`.
    pub kind: Option<CredentialKind>,
    /// `username` (or `cyberarkusername`) lookup.
    pub username: Option<VariableId>,
    /// `password` lookup (`Some(None)` clears it).
    pub password: Option<Option<VariableId>>,
}

/// Columns of an environment variable definition write.
#[derive(Debug, Clone, Default)]
pub struct VariableChange {
    /// `schemaname` (create only).
    pub schema_name: Option<String>,
    /// `displayname`.
    pub display_name: Option<String>,
    /// `description`.
    pub description: Option<Option<String>>,
    /// `type` (create only).
    pub variable_type: Option<VariableType>,
    /// `defaultvalue`.
    pub default_value: Option<Option<String>>,
}

/// Columns of an environment variable value write.
#[derive(Debug, Clone, Default)]
pub struct ValueChange {
    /// `value`.
    pub value: Option<String>,
    /// `EnvironmentVariableDefinitionId` lookup (create only).
    pub definition: Option<VariableId>,
}

fn credential_not_found(id: CredentialId) -> Error {
    Error::RecordNotFound { entity: "credential", id: id.to_string() }
}

fn variable_not_found(id: VariableId) -> Error {
    Error::RecordNotFound { entity: "environmentvariabledefinition", id: id.to_string() }
}

fn value_not_found(id: VariableValueId) -> Error {
    Error::RecordNotFound { entity: "environmentvariablevalue", id: id.to_string() }
}

impl Environment {
    /// A principal's rights on a credential: all as its owner, else what its shares grant.
    pub fn credential_rights(&self, c: &Credential, principal: PrincipalId) -> Rights {
        if c.owner == principal { Rights::OWNER } else { held(self, &c.shares, principal) }
    }

    /// A credential by id.
    pub fn credential(&self, id: CredentialId) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.id == id)
    }

    /// An environment variable by schema name (case-insensitive, as Dataverse's unique names).
    pub fn variable(&self, schema_name: &str) -> Option<&EnvironmentVariable> {
        self.variables.iter().find(|v| v.schema_name.eq_ignore_ascii_case(schema_name))
    }

    /// An environment variable by definition id.
    pub fn variable_by_id(&self, id: VariableId) -> Option<&EnvironmentVariable> {
        self.variables.iter().find(|v| v.id == id)
    }

    /// The variable that holds a value row.
    pub fn variable_of_value(&self, id: VariableValueId) -> Option<&EnvironmentVariable> {
        self.variables.iter().find(|v| v.value.as_ref().is_some_and(|x| x.id == id))
    }

    /// Checks a credential's columns against the variables: a Text username; a Secret password
    /// for Key Vault passwords and none for the others (their password is `none`).
    fn check_credential_variables(
        &self,
        kind: CredentialKind,
        username: &str,
        password: Option<&str>,
    ) -> Result<(), Error> {
        let typed = |column: &'static str, schema: &str, want: VariableType, expected: &'static str| match self
            .variable(schema)
        {
            Some(v) if v.variable_type == want => Ok(()),
            _ => Err(Error::CredentialVariableMismatch { column, expected }),
        };
        typed("username", username, VariableType::Text, "a Text (String) environment variable")?;
        match (kind, password) {
            (CredentialKind::KeyVaultPassword, Some(p)) => {
                typed("password", p, VariableType::Secret, "a Secret environment variable")
            }
            (CredentialKind::KeyVaultPassword, None) => {
                Err(Error::AttributeRequired { entity: "credential", attribute: "password" })
            }
            (_, Some(_)) => Err(Error::CredentialVariableMismatch {
                column: "password",
                expected: "empty for this connectiontype: its password is 'none'",
            }),
            (_, None) => Ok(()),
        }
    }

    fn schema_of(&self, id: VariableId) -> Result<String, Error> {
        self.variable_by_id(id).map(|v| v.schema_name.clone()).ok_or_else(|| variable_not_found(id))
    }
}

impl World {
    /// The value a connection reads from a variable: a Text variable's text, or the secret its
    /// Key Vault reference names in the sandbox's vault.
    pub fn variable_value(&self, env: &Environment, schema_name: &str) -> Option<String> {
        let v = env.variable(schema_name)?;
        let current = v.current()?;
        match v.variable_type {
            VariableType::Text => Some(current.to_owned()),
            VariableType::Secret => {
                let r = KeyVaultReference::parse(current)?;
                self.vault_secret(&r).map(|s| s.value.expose_secret().to_owned())
            }
        }
    }

    /// A secret of the vault stand-in.
    pub fn vault_secret(&self, r: &KeyVaultReference) -> Option<&VaultSecret> {
        self.vault.iter().find(|s| s.vault.eq_ignore_ascii_case(&r.vault) && s.name.eq_ignore_ascii_case(&r.name))
    }

    /// Sets a secret of the vault stand-in (what `az keyvault secret set` does for real).
    pub fn set_vault_secret(&mut self, r: KeyVaultReference, value: SecretString) {
        match self
            .vault
            .iter_mut()
            .find(|s| s.vault.eq_ignore_ascii_case(&r.vault) && s.name.eq_ignore_ascii_case(&r.name))
        {
            Some(s) => s.value = value,
            None => self.vault.push(VaultSecret { vault: r.vault, name: r.name, value }),
        }
    }

    /// The credentials of an environment the caller can read.
    pub fn readable_credentials(&self, caller: &Caller, env: &EnvironmentId) -> Result<Vec<&Credential>, Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        Ok(e.credentials.iter().filter(|c| e.credential_rights(c, caller.principal).contains(Rights::READ)).collect())
    }

    /// Creates a credential owned by the caller.
    pub fn create_credential(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: CredentialId,
        change: CredentialChange,
    ) -> Result<&Credential, Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        if e.credential(id).is_some() {
            return Err(Error::DuplicateRecord(id.to_string()));
        }
        let name = change.name.ok_or(Error::NameRequired { entity: "credential" })?;
        validate_name(&name)?;
        let kind = change.kind.ok_or(Error::AttributeRequired { entity: "credential", attribute: "connectiontype" })?;
        let username =
            change.username.ok_or(Error::AttributeRequired { entity: "credential", attribute: "username" })?;
        let username_variable = e.schema_of(username)?;
        let password_variable = change.password.flatten().map(|p| e.schema_of(p)).transpose()?;
        e.check_credential_variables(kind, &username_variable, password_variable.as_deref())?;
        let e = self.environment_for_mut(env, caller)?;
        e.credentials.push(Credential {
            id,
            name,
            description: change.description.flatten(),
            kind,
            owner: caller.principal,
            username_variable,
            password_variable,
            shares: Vec::new(),
            version: 1,
        });
        Ok(e.credentials.last().expect("just pushed"))
    }

    /// PATCH of a credential: updates it (`WriteAccess`), or creates it when missing and no
    /// `If-Match` was sent.
    pub fn upsert_credential(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: CredentialId,
        change: CredentialChange,
        expect: Expect,
    ) -> Result<(Written, &Credential), Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let Some(c) = e.credential(id) else {
            if expect != Expect::Any {
                return Err(credential_not_found(id));
            }
            return Ok((Written::Created, self.create_credential(caller, env, id, change)?));
        };
        let who = e.dataverse_id(caller.principal);
        require(
            e.credential_rights(c, caller.principal),
            Rights::WRITE,
            "prvWritecredential",
            "credential",
            &id.to_string(),
            &who,
        )?;
        check_version(expect, c.version)?;
        if let Some(n) = &change.name {
            validate_name(n)?;
        }
        let kind = change.kind.unwrap_or(c.kind);
        let username_variable = match change.username {
            Some(u) => e.schema_of(u)?,
            None => c.username_variable.clone(),
        };
        let password_variable = match change.password {
            Some(p) => p.map(|p| e.schema_of(p)).transpose()?,
            // A credential that stops needing a password drops it with its type.
            None if kind == CredentialKind::KeyVaultPassword => c.password_variable.clone(),
            None => None,
        };
        e.check_credential_variables(kind, &username_variable, password_variable.as_deref())?;
        let e = self.environment_for_mut(env, caller)?;
        let c = e.credentials.iter_mut().find(|c| c.id == id).ok_or_else(|| credential_not_found(id))?;
        if let Some(n) = change.name {
            c.name = n;
        }
        if let Some(d) = change.description {
            c.description = d;
        }
        c.kind = kind;
        c.username_variable = username_variable;
        c.password_variable = password_variable;
        c.version += 1;
        Ok((Written::Updated, c))
    }

    /// Deletes a credential (`DeleteAccess`). Connections that use it stop resolving it.
    pub fn delete_credential(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: CredentialId,
        expect: Expect,
    ) -> Result<(), Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let c = e.credential(id).ok_or_else(|| credential_not_found(id))?;
        let who = e.dataverse_id(caller.principal);
        require(
            e.credential_rights(c, caller.principal),
            Rights::DELETE,
            "prvDeletecredential",
            "credential",
            &id.to_string(),
            &who,
        )?;
        check_version(expect, c.version)?;
        self.environment_for_mut(env, caller)?.credentials.retain(|c| c.id != id);
        Ok(())
    }

    /// Creates an environment variable definition.
    pub fn create_variable(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: VariableId,
        change: VariableChange,
    ) -> Result<&EnvironmentVariable, Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        if e.variable_by_id(id).is_some() {
            return Err(Error::DuplicateRecord(id.to_string()));
        }
        let entity = "environmentvariabledefinition";
        let schema_name = change.schema_name.ok_or(Error::AttributeRequired { entity, attribute: "schemaname" })?;
        validate_name(&schema_name)?;
        if e.variable(&schema_name).is_some() {
            return Err(Error::DuplicateSchemaName(schema_name));
        }
        let variable_type = change.variable_type.ok_or(Error::AttributeRequired { entity, attribute: "type" })?;
        let default_value = change.default_value.flatten();
        if variable_type == VariableType::Secret && default_value.is_some() {
            return Err(Error::SecretVariableDefaultValue(schema_name));
        }
        let display_name = change.display_name.unwrap_or_else(|| schema_name.clone());
        let e = self.environment_for_mut(env, caller)?;
        e.variables.push(EnvironmentVariable {
            id,
            schema_name,
            display_name,
            description: change.description.flatten(),
            variable_type,
            default_value,
            value: None,
            owner: Some(caller.principal),
            version: 1,
        });
        Ok(e.variables.last().expect("just pushed"))
    }

    /// PATCH of a definition: updates it, or creates it when missing and no `If-Match` was sent.
    /// The schema name and type are fixed once made (Dataverse: not valid for update).
    pub fn upsert_variable(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: VariableId,
        change: VariableChange,
        expect: Expect,
    ) -> Result<(Written, &EnvironmentVariable), Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let Some(v) = e.variable_by_id(id) else {
            if expect != Expect::Any {
                return Err(variable_not_found(id));
            }
            return Ok((Written::Created, self.create_variable(caller, env, id, change)?));
        };
        check_version(expect, v.version)?;
        let fixed_changed = change.schema_name.as_ref().is_some_and(|s| !s.eq_ignore_ascii_case(&v.schema_name))
            || change.variable_type.is_some_and(|t| t != v.variable_type);
        if fixed_changed {
            return Err(Error::VariableFixedColumn(v.schema_name.clone()));
        }
        if v.variable_type == VariableType::Secret && change.default_value.as_ref().is_some_and(Option::is_some) {
            return Err(Error::SecretVariableDefaultValue(v.schema_name.clone()));
        }
        let e = self.environment_for_mut(env, caller)?;
        let v = e.variables.iter_mut().find(|v| v.id == id).ok_or_else(|| variable_not_found(id))?;
        if let Some(d) = change.display_name {
            v.display_name = d;
        }
        if let Some(d) = change.description {
            v.description = d;
        }
        if let Some(d) = change.default_value {
            v.default_value = d;
        }
        v.version += 1;
        Ok((Written::Updated, v))
    }

    /// Deletes a definition and its value. Credentials naming it stop resolving it.
    pub fn delete_variable(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: VariableId,
        expect: Expect,
    ) -> Result<(), Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let v = e.variable_by_id(id).ok_or_else(|| variable_not_found(id))?;
        check_version(expect, v.version)?;
        self.environment_for_mut(env, caller)?.variables.retain(|v| v.id != id);
        Ok(())
    }

    /// Creates the value row of a definition (one per definition). A Secret variable's value
    /// must be a Key Vault secret reference.
    pub fn create_variable_value(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: VariableValueId,
        change: ValueChange,
    ) -> Result<&EnvironmentVariable, Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        if e.variable_of_value(id).is_some() {
            return Err(Error::DuplicateRecord(id.to_string()));
        }
        let entity = "environmentvariablevalue";
        let definition = change
            .definition
            .ok_or(Error::AttributeRequired { entity, attribute: "EnvironmentVariableDefinitionId" })?;
        let v = e.variable_by_id(definition).ok_or_else(|| variable_not_found(definition))?;
        if let Some(existing) = &v.value {
            return Err(Error::VariableValueExists { variable: v.schema_name.clone(), value: existing.id.to_string() });
        }
        let value = change.value.ok_or(Error::AttributeRequired { entity, attribute: "value" })?;
        check_value(v, &value)?;
        let e = self.environment_for_mut(env, caller)?;
        let v = e.variables.iter_mut().find(|v| v.id == definition).ok_or_else(|| variable_not_found(definition))?;
        v.value = Some(VariableValue { id, value, version: 1 });
        Ok(v)
    }

    /// PATCH of a value row: updates it, or creates it when missing and no `If-Match` was sent.
    pub fn upsert_variable_value(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: VariableValueId,
        change: ValueChange,
        expect: Expect,
    ) -> Result<(Written, &EnvironmentVariable), Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let Some(v) = e.variable_of_value(id) else {
            if expect != Expect::Any {
                return Err(value_not_found(id));
            }
            return Ok((Written::Created, self.create_variable_value(caller, env, id, change)?));
        };
        if change.definition.is_some_and(|d| d != v.id) {
            return Err(Error::VariableFixedColumn(v.schema_name.clone()));
        }
        check_version(expect, v.value.as_ref().map_or(0, |x| x.version))?;
        if let Some(value) = &change.value {
            check_value(v, value)?;
        }
        let definition = v.id;
        let e = self.environment_for_mut(env, caller)?;
        let v = e.variables.iter_mut().find(|v| v.id == definition).ok_or_else(|| value_not_found(id))?;
        if let (Some(value), Some(row)) = (change.value, v.value.as_mut()) {
            row.value = value;
            row.version += 1;
        }
        Ok((Written::Updated, v))
    }

    /// Deletes a value row: its definition falls back to its default value.
    pub fn delete_variable_value(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: VariableValueId,
        expect: Expect,
    ) -> Result<(), Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let v = e.variable_of_value(id).ok_or_else(|| value_not_found(id))?;
        check_version(expect, v.value.as_ref().map_or(0, |x| x.version))?;
        let definition = v.id;
        let e = self.environment_for_mut(env, caller)?;
        if let Some(v) = e.variables.iter_mut().find(|v| v.id == definition) {
            v.value = None;
        }
        Ok(())
    }
}

/// A Secret variable holds a Key Vault reference, never the secret itself.
fn check_value(v: &EnvironmentVariable, value: &str) -> Result<(), Error> {
    if v.variable_type == VariableType::Secret && KeyVaultReference::parse(value).is_none() {
        return Err(Error::InvalidKeyVaultReference(v.schema_name.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{AccessChange, Grantee, ShareTarget};
    use crate::domain::test_world::*;

    fn id(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    /// Megan's Text and Secret variables, the Secret's value referencing `vault/secret`.
    fn variables(w: &mut World, megan: &Caller) -> (VariableId, VariableId) {
        let text = VariableId::from_uuid(id(1));
        let secret = VariableId::from_uuid(id(2));
        for (v, name, t) in [(text, "new_Login", VariableType::Text), (secret, "new_Password", VariableType::Secret)] {
            let change =
                VariableChange { schema_name: Some(name.into()), variable_type: Some(t), ..VariableChange::default() };
            w.create_variable(megan, &env(), v, change).unwrap();
        }
        let values = [
            (text, "HR-01\\rpa".to_owned()),
            (secret, KeyVaultReference { vault: "kv".into(), name: "s".into() }.to_text()),
        ];
        for (n, (definition, value)) in values.into_iter().enumerate() {
            let change = ValueChange { value: Some(value), definition: Some(definition) };
            w.create_variable_value(megan, &env(), VariableValueId::from_uuid(id(10 + n as u128)), change).unwrap();
        }
        (text, secret)
    }

    #[test]
    fn a_key_vault_credential_names_a_text_username_and_a_secret_password_resolved_through_the_vault() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let (text, secret) = variables(&mut w, &megan);
        let cred = CredentialId::from_uuid(id(20));
        let change = |username, password| CredentialChange {
            name: Some("HR".into()),
            kind: Some(CredentialKind::KeyVaultPassword),
            username: Some(username),
            password: Some(Some(password)),
            ..CredentialChange::default()
        };
        let e = w.create_credential(&megan, &env(), cred, change(secret, secret)).unwrap_err();
        assert!(matches!(e, Error::CredentialVariableMismatch { column: "username", .. }), "{e:?}");
        let e = w.create_credential(&megan, &env(), cred, change(text, text)).unwrap_err();
        assert!(matches!(e, Error::CredentialVariableMismatch { column: "password", .. }), "{e:?}");
        let mut cyberark = change(text, secret);
        cyberark.kind = Some(CredentialKind::CyberArk);
        let e = w.create_credential(&megan, &env(), cred, cyberark).unwrap_err();
        assert!(matches!(e, Error::CredentialVariableMismatch { column: "password", .. }), "{e:?}");
        w.create_credential(&megan, &env(), cred, change(text, secret)).unwrap();
        let e_ref = w.environment(&env()).unwrap();
        assert_eq!(w.variable_value(e_ref, "new_Password"), None, "nothing in the vault yet");
        w.set_vault_secret(
            KeyVaultReference { vault: "KV".into(), name: "S".into() },
            SecretString::from("pw".to_owned()),
        );
        let e_ref = w.environment(&env()).unwrap();
        assert_eq!(w.variable_value(e_ref, "NEW_password").as_deref(), Some("pw"));
        assert_eq!(w.variable_value(e_ref, "new_Login").as_deref(), Some("HR-01\\rpa"));
    }

    #[test]
    fn a_credential_shared_as_user_is_read_but_not_changed_or_deleted() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let adele = caller(&w, ADELE);
        let (text, secret) = variables(&mut w, &megan);
        let cred = CredentialId::from_uuid(id(21));
        let change = CredentialChange {
            name: Some("HR".into()),
            kind: Some(CredentialKind::KeyVaultPassword),
            username: Some(text),
            password: Some(Some(secret)),
            ..CredentialChange::default()
        };
        w.create_credential(&megan, &env(), cred, change).unwrap();
        assert!(w.readable_credentials(&adele, &env()).unwrap().iter().all(|c| c.id != cred));
        let to_adele = Grantee::Principal(adele.principal);
        w.change_access(&megan, &env(), ShareTarget::Credential(cred), to_adele, AccessChange::Grant(Rights::USER))
            .unwrap();
        assert!(w.readable_credentials(&adele, &env()).unwrap().iter().any(|c| c.id == cred));
        let rename = CredentialChange { name: Some("x".into()), ..CredentialChange::default() };
        let e = w.upsert_credential(&adele, &env(), cred, rename, Expect::Any).unwrap_err();
        assert!(matches!(e, Error::MissingPrivilege { privilege: "prvWritecredential", .. }), "{e:?}");
        let e = w.delete_credential(&adele, &env(), cred, Expect::Any).unwrap_err();
        assert!(matches!(e, Error::MissingPrivilege { privilege: "prvDeletecredential", .. }), "{e:?}");
        w.delete_credential(&megan, &env(), cred, Expect::Version(1)).unwrap();
    }

    #[test]
    fn a_secret_variable_holds_a_reference_never_a_password_and_one_value_row() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let (_, secret) = variables(&mut w, &megan);
        let again = ValueChange { value: Some("x".into()), definition: Some(secret) };
        let e = w.create_variable_value(&megan, &env(), VariableValueId::from_uuid(id(30)), again).unwrap_err();
        assert!(matches!(e, Error::VariableValueExists { .. }), "{e:?}");
        let plain = ValueChange { value: Some("Passw0rd!".into()), definition: None };
        let row = VariableValueId::from_uuid(id(11));
        let e = w.upsert_variable_value(&megan, &env(), row, plain, Expect::Any).unwrap_err();
        assert!(matches!(e, Error::InvalidKeyVaultReference(_)), "{e:?}");
        assert!(!e.to_string().contains("Passw0rd!"), "the refusal does not echo the value");
        let default = VariableChange { default_value: Some(Some("x".into())), ..VariableChange::default() };
        let e = w.upsert_variable(&megan, &env(), secret, default, Expect::Any).unwrap_err();
        assert!(matches!(e, Error::SecretVariableDefaultValue(_)), "{e:?}");
    }

    #[test]
    fn a_key_vault_reference_is_parsed_with_fixed_words_in_any_case_and_nothing_else_is() {
        let r = KeyVaultReference::parse(
            "/subscriptions/1c5fe9bd-0000-0000-0000-000000000000/resourceGroups/rpa/providers/Microsoft.KeyVault/vaults/contoso-kv/secrets/svc-rpa",
        )
        .unwrap();
        assert_eq!(r, KeyVaultReference { vault: "contoso-kv".into(), name: "svc-rpa".into() });
        assert!(
            KeyVaultReference::parse(
                "subscriptions/s/resourcegroups/g/providers/microsoft.keyvault/vaults/v/secrets/n"
            )
            .is_some()
        );
        for bad in [
            "Contoso-SvcRpa-Passw0rd!",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/secrets/",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/keys/n",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/secrets/n/version",
        ] {
            assert!(KeyVaultReference::parse(bad).is_none(), "{bad}");
        }
        let (text, r) = KeyVaultReference::for_fixture("new_FinancePassword");
        assert_eq!(KeyVaultReference::parse(&text), Some(r));
    }
}
