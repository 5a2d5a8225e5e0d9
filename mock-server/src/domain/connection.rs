//! Desktop-flow connections (`shared_uiflow`): creating, updating, reading and deleting them,
//! with every parameter set (`azureRelay`, `azureRelayRunOwner`, credential-based, and
//! `passwordlessAttended`) and the rules that decide who may. Every command checks everything
//! before it writes, so a refused command leaves nothing half-written. A connection's status
//! is not stored: `status` works it out from the world as it is now (see `connection_status`).

use super::Error;
use super::access::Rights;
use super::clock::Timestamp;
use super::credential::{Credential, CredentialKind};
use super::ids::{
    AppId, CredentialId, EnvironmentId, IdError, MachineGroupId, MachineId, PrincipalId, TenantId, parse_guid,
};
use super::world::{Environment, PrincipalKind, World, environment_not_found};
use secrecy::SecretString;
use uuid::Uuid;

pub use super::connection_status::{ConnectionStatus, is_joined};

/// The desktop-flows connector.
pub const UIFLOW: &str = "shared_uiflow";

/// A connection id: a GUID in hyphenated or 32-hex form. Both forms name the same
/// connection; responses echo the form used at creation (DECISIONS.md).
/// The form is kept in place (36 bytes at most), not in a string of its own: a world may
/// hold a million connections.
#[derive(Debug, Clone)]
pub struct ConnectionId {
    uuid: Uuid,
    written: [u8; 36],
    len: u8,
}

impl ConnectionId {
    /// Parses either form.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let uuid = parse_guid("connection id", value)?;
        // A GUID's text is ASCII, 32 or 36 bytes (`parse_guid` checked).
        let mut written = [0u8; 36];
        for (to, from) in written.iter_mut().zip(value.bytes()) {
            *to = from.to_ascii_lowercase();
        }
        Ok(Self { uuid, written, len: value.len().min(36) as u8 })
    }

    /// The GUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// As written at creation (lower-cased).
    pub fn as_written(&self) -> &str {
        std::str::from_utf8(&self.written[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl PartialEq for ConnectionId {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl Eq for ConnectionId {}

/// Who is calling, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Object id.
    pub principal: PrincipalId,
    /// Tenant the token was issued in.
    pub tenant: TenantId,
    /// User or service principal.
    pub kind: PrincipalKind,
    /// Client id the token was issued to.
    pub app_id: Option<AppId>,
    /// Display name, for `createdBy`.
    pub display_name: String,
    /// UPN of a user.
    pub upn: Option<String>,
}

/// How a connection signs in to Windows on the target's machines.
#[derive(Debug, Clone)]
pub enum Login {
    /// Username and password in the body.
    Password {
        /// Windows account (`MACHINE\user`, `.\user`, `local\user`, `DOMAIN\user`, `user@domain`).
        username: String,
        /// Its password.
        password: SecretString,
    },
    /// A credential record (`properties.credentialId`) whose environment variables hold the
    /// account: `username` is `@environmentVariables("…")`, `password` the same or `none`.
    Credential {
        /// The credential.
        credential: CredentialId,
        /// The username value as given.
        username: String,
        /// The password value as given (`none` for certificate and CyberArk credentials).
        password: String,
    },
}

impl Login {
    /// The username as given (never a secret).
    pub fn username(&self) -> &str {
        match self {
            Self::Password { username, .. } | Self::Credential { username, .. } => username,
        }
    }

    /// The credential, for a credential-based login.
    pub fn credential(&self) -> Option<CredentialId> {
        match self {
            Self::Credential { credential, .. } => Some(*credential),
            Self::Password { .. } => None,
        }
    }
}

/// A run owner: the service principal runs execute as, authenticated by a certificate.
#[derive(Debug, Clone)]
pub struct RunOwner {
    /// `tokenRunOwnerCert:clientId`.
    pub app_id: AppId,
    /// Base64 PFX of `tokenRunOwnerCert:clientCertificateSecret` (a secret: never echoed).
    pub pfx: SecretString,
}

/// Connection parameters, per parameter set.
#[derive(Debug, Clone)]
pub enum ParameterSet {
    /// `azureRelay`: a Windows account on the target's machines.
    AzureRelay {
        /// The account.
        login: Login,
        /// The machine group.
        target: MachineGroupId,
    },
    /// `azureRelayRunOwner`: as `azureRelay`, with a service principal as run owner.
    AzureRelayRunOwner {
        /// The account.
        login: Login,
        /// The machine group.
        target: MachineGroupId,
        /// The run owner.
        run_owner: RunOwner,
    },
    /// `passwordlessAttended` (connect with sign-in): the creating user's Entra account.
    PasswordlessAttended {
        /// The machine group.
        target: MachineGroupId,
    },
}

impl ParameterSet {
    /// The set's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AzureRelay { .. } => "azureRelay",
            Self::AzureRelayRunOwner { .. } => "azureRelayRunOwner",
            Self::PasswordlessAttended { .. } => "passwordlessAttended",
        }
    }

    /// The target group.
    pub fn target(&self) -> MachineGroupId {
        match self {
            Self::AzureRelay { target, .. }
            | Self::AzureRelayRunOwner { target, .. }
            | Self::PasswordlessAttended { target } => *target,
        }
    }

    /// The Windows login, for the sets that have one.
    pub fn login(&self) -> Option<&Login> {
        match self {
            Self::AzureRelay { login, .. } | Self::AzureRelayRunOwner { login, .. } => Some(login),
            Self::PasswordlessAttended { .. } => None,
        }
    }

    /// The Windows username, when the set has one.
    pub fn username(&self) -> Option<&str> {
        self.login().map(Login::username)
    }

    /// The run owner, for `azureRelayRunOwner`.
    pub fn run_owner(&self) -> Option<&RunOwner> {
        match self {
            Self::AzureRelayRunOwner { run_owner, .. } => Some(run_owner),
            _ => None,
        }
    }

    /// Whether this is a connect-with-sign-in connection.
    pub fn is_sign_in(&self) -> bool {
        matches!(self, Self::PasswordlessAttended { .. })
    }
}

/// A role a connection is shared with (desktop flows allow these two only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRole {
    /// "Can use".
    CanView,
    /// "Can edit".
    CanEdit,
}

impl ConnectionRole {
    /// The role name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::CanView => "CanView",
            Self::CanEdit => "CanEdit",
        }
    }
}

/// A share of a connection with a service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionShare {
    /// The service principal's object id (also the permission's name).
    pub principal: PrincipalId,
    /// Role.
    pub role: ConnectionRole,
}

/// A stored connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Id.
    pub id: ConnectionId,
    /// Environment.
    pub environment: EnvironmentId,
    /// Connector (`shared_uiflow`, the only one a connection can be made with).
    pub connector: &'static str,
    /// Display name.
    pub display_name: String,
    /// Parameters.
    pub parameters: ParameterSet,
    /// Creator (the owner), shared with the creator's other connections ([`Connections::creator`](super::connection_store::Connections::creator)).
    pub created_by: std::sync::Arc<Caller>,
    /// Created (virtual time).
    pub created_time: Timestamp,
    /// Last modified (virtual time).
    pub last_modified_time: Timestamp,
    /// Correlation id of the last credential check, quoted by error messages.
    pub correlation: Uuid,
    /// Shares with service principals.
    pub shares: Vec<ConnectionShare>,
}

impl Connection {
    /// The role a principal holds: `None` for the owner-or-nobody cases.
    pub fn role_of(&self, principal: PrincipalId) -> Option<ConnectionRole> {
        self.shares.iter().find(|s| s.principal == principal).map(|s| s.role)
    }

    /// Whether a principal may see the connection: its owner, or shared with it.
    pub fn visible_to(&self, principal: PrincipalId) -> bool {
        self.created_by.principal == principal || self.role_of(principal).is_some()
    }
}

/// A create-or-update request, parsed at the edge.
#[derive(Debug, Clone)]
pub struct PutConnection {
    /// Environment the door names.
    pub environment: EnvironmentId,
    /// Connector in the path.
    pub connector: String,
    /// Id in the path.
    pub id: ConnectionId,
    /// `properties.environment.name` of the body, when given.
    pub body_environment: Option<String>,
    /// `properties.displayName`.
    pub display_name: Option<String>,
    /// The parameter set.
    pub parameters: ParameterSet,
}

/// What a PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new connection (201).
    Created,
    /// An existing one replaced (200).
    Updated,
}

fn check_connector(connector: &str) -> Result<(), Error> {
    if connector.eq_ignore_ascii_case(UIFLOW) { Ok(()) } else { Err(Error::ConnectorNotFound(connector.to_owned())) }
}

/// The schema name inside `@environmentVariables("…")`.
fn variable_ref(value: &str) -> Option<&str> {
    let inner = value.trim().strip_prefix("@environmentVariables(")?.strip_suffix(')')?.trim();
    inner
        .strip_prefix('"')
        .and_then(|i| i.strip_suffix('"'))
        .or_else(|| inner.strip_prefix('\'').and_then(|i| i.strip_suffix('\'')))
}

/// A credential-based login must name the credential's own variables (PAD-RUNOWNER's table):
/// the username variable, and the password variable or the literal `none`.
fn check_credential(env: &Environment, caller: &Caller, login: &Login) -> Result<(), Error> {
    let Login::Credential { credential, username, password } = login else {
        return Ok(());
    };
    let c: &Credential = env
        .credentials
        .iter()
        .find(|c| c.id == *credential)
        .ok_or_else(|| Error::CredentialNotFound(credential.to_string()))?;
    if !env.credential_rights(c, caller.principal).contains(Rights::READ) {
        return Err(Error::CredentialNotShared {
            credential: c.id.to_string(),
            principal: caller.principal.to_string(),
        });
    }
    let expected_user = format!("@environmentVariables(\"{}\")", c.username_variable);
    if !variable_ref(username).is_some_and(|v| v.eq_ignore_ascii_case(&c.username_variable)) {
        return Err(Error::CredentialParameterMismatch { parameter: "username", expected: expected_user });
    }
    let (ok, expected) = match (c.kind, &c.password_variable) {
        (CredentialKind::KeyVaultPassword, Some(var)) => (
            variable_ref(password).is_some_and(|v| v.eq_ignore_ascii_case(var)),
            format!("@environmentVariables(\"{var}\")"),
        ),
        _ => (password.trim() == "none", "none".to_owned()),
    };
    if !ok {
        return Err(Error::CredentialParameterMismatch { parameter: "password", expected });
    }
    Ok(())
}

/// A run owner must be a service principal of the creator's tenant with a certificate,
/// registered as an application user, and able to use the target (PAD-RUNOWNER rules 4, 7).
fn check_run_owner(
    world: &World,
    env: &Environment,
    caller: &Caller,
    owner: &RunOwner,
    target: MachineGroupId,
) -> Result<(), Error> {
    let sp = world.service_principal(caller.tenant, owner.app_id).ok_or_else(|| Error::RunOwnerNotFound {
        app_id: owner.app_id.to_string(),
        tenant: caller.tenant.to_string(),
    })?;
    if sp.certificate.is_none() {
        return Err(Error::RunOwnerCertificateRequired(owner.app_id.to_string()));
    }
    if env.system_user_of(sp.object_id).is_none() {
        return Err(Error::RunOwnerNotApplicationUser(owner.app_id.to_string()));
    }
    if !env.may_use_group(target, sp.object_id) {
        return Err(Error::RunOwnerAuthorizationFailed { app_id: owner.app_id.to_string(), group: target.to_string() });
    }
    Ok(())
}

impl World {
    /// Creates (201) or replaces (200) a connection.
    pub fn put_connection(
        &mut self,
        caller: &Caller,
        cmd: PutConnection,
        now: Timestamp,
        correlation: Uuid,
    ) -> Result<(PutOutcome, &Connection), Error> {
        check_connector(&cmd.connector)?;
        if cmd.parameters.is_sign_in() {
            // Connect with sign-in is a user's: the token says who signs in (DECISIONS.md).
            if caller.kind != PrincipalKind::User {
                return Err(Error::SignInRequiresUser);
            }
            let env =
                self.environment(&cmd.environment).ok_or_else(|| environment_not_found(&cmd.environment, caller))?;
            if env.tenant != caller.tenant {
                return Err(Error::SignInUserTenantMismatch {
                    user_tenant: caller.tenant.to_string(),
                    environment_tenant: env.tenant.to_string(),
                });
            }
        }
        let env = self.environment_for(&cmd.environment, caller)?;
        if let Some(named) = &cmd.body_environment {
            let matches = EnvironmentId::parse(named).is_ok_and(|n| n == cmd.environment);
            if !matches {
                return Err(Error::EnvironmentMismatch { body: named.clone(), door: cmd.environment.to_string() });
            }
        }
        let target = cmd.parameters.target();
        if env.group(target).is_none() {
            let machine = env.machine(MachineId::from_uuid(target.uuid()));
            return Err(Error::TargetGroupNotFound {
                target: target.to_string(),
                machine_group: machine.map(|m| m.group.to_string()),
            });
        }
        if !env.may_use_group(target, caller.principal) {
            return Err(Error::ConnectionAuthorizationFailed { group: target.to_string() });
        }
        let existing = self.connections.get(&cmd.environment, &cmd.id).is_some();
        if let Some(c) = self.connections.get(&cmd.environment, &cmd.id) {
            let may_edit = c.created_by.principal == caller.principal
                || c.role_of(caller.principal) == Some(ConnectionRole::CanEdit);
            if !may_edit {
                let reason = if c.visible_to(caller.principal) {
                    "editing it needs its owner or a CanEdit share"
                } else {
                    "it is neither the caller's nor shared with it"
                };
                return Err(Error::ConnectionAccessDenied { connection: c.id.as_written().to_owned(), reason });
            }
            if c.parameters.run_owner().is_some() && cmd.parameters.run_owner().is_none() {
                return Err(Error::RunOwnerCannotBeRemoved(c.id.as_written().to_owned()));
            }
            if c.parameters.is_sign_in() && cmd.parameters.run_owner().is_some() {
                return Err(Error::SignInConnectionRunOwner);
            }
            if c.parameters.is_sign_in() != cmd.parameters.is_sign_in() {
                return Err(Error::SignInKindCannotChange(c.id.as_written().to_owned()));
            }
        }
        if let Some(login) = cmd.parameters.login() {
            check_credential(env, caller, login)?;
        }
        if let Some(owner) = cmd.parameters.run_owner() {
            check_run_owner(self, env, caller, owner, target)?;
        }
        let display_name = cmd.display_name.unwrap_or_else(|| {
            let group = env.group(target).map(|g| g.name.clone()).unwrap_or_default();
            let who = match &cmd.parameters {
                ParameterSet::PasswordlessAttended { .. } => caller.upn.as_deref().unwrap_or("sign-in"),
                p => p.username().unwrap_or("connection"),
            };
            format!("{who} ({group})")
        });
        if existing {
            let c = self
                .connections
                .get_mut(&cmd.environment, &cmd.id)
                .ok_or_else(|| Error::ConnectionNotFound(cmd.id.as_written().to_owned()))?;
            c.display_name = display_name;
            c.parameters = cmd.parameters;
            c.last_modified_time = now;
            c.correlation = correlation;
            return Ok((PutOutcome::Updated, c));
        }
        // The world's own id: shared with every other connection of the environment.
        let environment = env.id.clone();
        let created_by = self.connections.creator(caller);
        let created = self.connections.insert(Connection {
            id: cmd.id,
            environment,
            connector: UIFLOW,
            display_name,
            parameters: cmd.parameters,
            created_by,
            created_time: now,
            last_modified_time: now,
            correlation,
            shares: Vec::new(),
        });
        Ok((PutOutcome::Created, created))
    }

    /// One connection the caller may see (its owner's, or shared with the caller).
    pub fn connection(
        &self,
        caller: &Caller,
        environment: &EnvironmentId,
        connector: &str,
        id: &ConnectionId,
    ) -> Result<&Connection, Error> {
        check_connector(connector)?;
        self.environment_for(environment, caller)?;
        let c = self
            .connections
            .get(environment, id)
            .ok_or_else(|| Error::ConnectionNotFound(id.as_written().to_owned()))?;
        if !c.visible_to(caller.principal) {
            return Err(Error::ConnectionAccessDenied {
                connection: c.id.as_written().to_owned(),
                reason: "it is neither the caller's nor shared with it",
            });
        }
        Ok(c)
    }

    /// Deletes a connection the caller owns.
    pub fn delete_connection(
        &mut self,
        caller: &Caller,
        environment: &EnvironmentId,
        connector: &str,
        id: &ConnectionId,
    ) -> Result<(), Error> {
        let c = self.connection(caller, environment, connector, id)?;
        if c.created_by.principal != caller.principal {
            return Err(Error::ConnectionAccessDenied {
                connection: c.id.as_written().to_owned(),
                reason: "only its owner deletes it",
            });
        }
        self.connections.remove(environment, id);
        Ok(())
    }

    /// The connections of an environment the caller may see, optionally of one connector.
    pub fn list_connections(
        &self,
        caller: &Caller,
        environment: &EnvironmentId,
        connector: Option<&str>,
    ) -> Result<Vec<&Connection>, Error> {
        if let Some(c) = connector {
            check_connector(c)?;
        }
        self.environment_for(environment, caller)?;
        Ok(self
            .connections
            .iter()
            .filter(|c| &c.environment == environment && c.visible_to(caller.principal))
            .collect())
    }

    /// The caller a verified token stands for, if this world knows the principal.
    pub fn caller(&self, tenant: TenantId, object_id: PrincipalId, app_id: Option<AppId>) -> Option<Caller> {
        if let Some(u) = self.users.iter().find(|u| u.object_id == object_id && u.tenant == tenant) {
            return Some(Caller {
                principal: object_id,
                tenant,
                kind: PrincipalKind::User,
                app_id,
                display_name: u.display_name.clone(),
                upn: Some(u.upn.clone()),
            });
        }
        self.service_principals.iter().find(|s| s.object_id == object_id && s.tenant == tenant).map(|s| Caller {
            principal: object_id,
            tenant,
            kind: PrincipalKind::ServicePrincipal,
            app_id: Some(s.app_id),
            display_name: s.display_name.clone(),
            upn: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::default_start;
    use crate::domain::test_world::*;

    fn sp(w: &World) -> Caller {
        w.caller(
            TenantId::parse("c7263f1a-afcd-4e8a-a7ce-66b19698caaa").unwrap(),
            PrincipalId::parse("ed6535a9-e3e6-4f8a-9fd5-58313db668bf").unwrap(),
            None,
        )
        .unwrap()
    }

    fn put(id: &str, group: &str, user: &str, pw: &str) -> PutConnection {
        PutConnection {
            environment: EnvironmentId::parse(ENV).unwrap(),
            connector: UIFLOW.into(),
            id: ConnectionId::parse(id).unwrap(),
            body_environment: Some(ENV.into()),
            display_name: None,
            parameters: ParameterSet::AzureRelay {
                login: Login::Password { username: user.into(), password: SecretString::from(pw.to_owned()) },
                target: MachineGroupId::parse(group).unwrap(),
            },
        }
    }

    #[test]
    fn a_shared_group_with_good_credentials_gives_a_connected_connection() {
        let mut w = world();
        let caller = sp(&w);
        let (outcome, c) = w
            .put_connection(
                &caller,
                put("d4e4a6ff9a67492aa1f6de854528668c", FINANCE, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!"),
                default_start(),
                Uuid::nil(),
            )
            .unwrap();
        assert_eq!(outcome, PutOutcome::Created);
        assert_eq!(c.id.as_written(), "d4e4a6ff9a67492aa1f6de854528668c");
        let c = c.clone();
        assert_eq!(w.status(&c), ConnectionStatus::Connected);
    }

    #[test]
    fn a_group_not_shared_with_the_caller_is_refused_and_nothing_is_stored() {
        let mut w = world();
        let caller = sp(&w);
        let e = w
            .put_connection(
                &caller,
                put("d4e4a6ff9a67492aa1f6de854528668c", HR, "HR-01\\rpa", "Hr01-Rpa-Passw0rd!"),
                default_start(),
                Uuid::nil(),
            )
            .unwrap_err();
        assert_eq!(e.code(), "ConnectionAuthorizationFailed");
        assert!(w.connections.is_empty());
    }

    #[test]
    fn wrong_credentials_still_create_the_connection_with_an_error_status_naming_the_machine() {
        let mut w = world();
        let caller = sp(&w);
        let (_, c) = w
            .put_connection(
                &caller,
                put("00000000-0000-0000-0000-000000000001", FINANCE, "CONTOSO\\svc-rpa", "wrong"),
                default_start(),
                Uuid::nil(),
            )
            .unwrap();
        let c = c.clone();
        match &w.status(&c) {
            ConnectionStatus::Error { code, message } => {
                assert_eq!(*code, "WindowsIdentityIncorrect");
                assert!(message.starts_with("Details: Connection failed: [Machine 022701dd-0a3a-4ba3-9dbc-b24e4ec4ae0f]. There's an issue with your credentials."), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_hyphenated_and_32_hex_forms_name_the_same_connection() {
        let mut w = world();
        let caller = sp(&w);
        w.put_connection(
            &caller,
            put("d4e4a6ff9a67492aa1f6de854528668c", FINANCE, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!"),
            default_start(),
            Uuid::nil(),
        )
        .unwrap();
        let (outcome, c) = w
            .put_connection(
                &caller,
                put("d4e4a6ff-9a67-492a-a1f6-de854528668c", FINANCE, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!"),
                default_start(),
                Uuid::nil(),
            )
            .unwrap();
        assert_eq!(outcome, PutOutcome::Updated);
        assert_eq!(c.id.as_written(), "d4e4a6ff9a67492aa1f6de854528668c", "the form used at creation is kept");
        assert_eq!(w.connections.len(), 1);
    }

    #[test]
    fn a_machine_id_as_target_is_refused_with_a_hint_at_its_group() {
        let mut w = world();
        let caller = sp(&w);
        let e = w
            .put_connection(
                &caller,
                put(
                    "00000000-0000-0000-0000-000000000002",
                    "78afb281-eb1e-4e35-ba11-9460dcabf47a",
                    "BUILD-01\\rpa",
                    "x",
                ),
                default_start(),
                Uuid::nil(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("fbd9ef90-eb39-437b-a791-919993c57260"), "{e}");
    }
}
