//! Desktop-flow connections (`shared_uiflow`): creating, updating, reading and deleting them,
//! and the rules that decide who may and what status results. Every command checks
//! everything before it writes, so a refused command leaves nothing half-written.

use super::Error;
use super::clock::Timestamp;
use super::ids::{AppId, EnvironmentId, IdError, MachineGroupId, MachineId, PrincipalId, TenantId, parse_guid};
use super::world::{Environment, JoinType, Machine, PrincipalKind, ShareRole, World};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// The desktop-flows connector.
pub const UIFLOW: &str = "shared_uiflow";

/// A connection id: a GUID in hyphenated or 32-hex form. Both forms name the same
/// connection; responses echo the form used at creation (DECISIONS.md).
#[derive(Debug, Clone)]
pub struct ConnectionId {
    uuid: Uuid,
    written: String,
}

impl ConnectionId {
    /// Parses either form.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let uuid = parse_guid("connection id", value)?;
        Ok(Self { uuid, written: value.to_ascii_lowercase() })
    }

    /// The GUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// As written at creation.
    pub fn as_written(&self) -> &str {
        &self.written
    }
}

impl PartialEq for ConnectionId {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl Eq for ConnectionId {}

/// Who is calling, from a verified token.
#[derive(Debug, Clone)]
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

/// Connection parameters, per parameter set.
#[derive(Debug, Clone)]
pub enum ParameterSet {
    /// `azureRelay`: username and password of a Windows account on the target's machines.
    AzureRelay {
        /// Windows account.
        username: String,
        /// Its password.
        password: SecretString,
        /// The machine group.
        target: MachineGroupId,
    },
}

impl ParameterSet {
    /// The set's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AzureRelay { .. } => "azureRelay",
        }
    }

    /// The target group.
    pub fn target(&self) -> MachineGroupId {
        match self {
            Self::AzureRelay { target, .. } => *target,
        }
    }

    /// The Windows username, when the set has one.
    pub fn username(&self) -> Option<&str> {
        match self {
            Self::AzureRelay { username, .. } => Some(username),
        }
    }
}

/// A connection's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Usable.
    Connected,
    /// Not usable, with the documented code and message.
    Error {
        /// Code (`WindowsIdentityIncorrect`, …).
        code: String,
        /// Message.
        message: String,
    },
}

/// A stored connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Id.
    pub id: ConnectionId,
    /// Environment.
    pub environment: EnvironmentId,
    /// Connector (`shared_uiflow`).
    pub connector: String,
    /// Display name.
    pub display_name: String,
    /// Parameters.
    pub parameters: ParameterSet,
    /// Creator.
    pub created_by: Caller,
    /// Created (virtual time).
    pub created_time: Timestamp,
    /// Last modified (virtual time).
    pub last_modified_time: Timestamp,
    /// Status.
    pub status: ConnectionStatus,
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

fn find_env<'w>(world: &'w World, id: &EnvironmentId, caller: &Caller) -> Result<&'w Environment, Error> {
    let env = world
        .environment(id)
        .ok_or_else(|| Error::EnvironmentNotFound { environment: id.to_string(), tenant: caller.tenant.to_string() })?;
    if env.tenant != caller.tenant {
        return Err(Error::CrossTenantAccess { environment: id.to_string(), tenant: caller.tenant.to_string() });
    }
    Ok(env)
}

fn check_connector(connector: &str) -> Result<(), Error> {
    if connector.eq_ignore_ascii_case(UIFLOW) { Ok(()) } else { Err(Error::ConnectorNotFound(connector.to_owned())) }
}

/// Whether a principal may use a machine group: its owner, or shared with it as User or Co-owner.
pub fn may_use_group(env: &Environment, group: MachineGroupId, principal: PrincipalId) -> bool {
    env.machine_groups.iter().find(|g| g.id == group).is_some_and(|g| {
        g.owner == principal
            || g.shares
                .iter()
                .any(|s| s.principal == principal && matches!(s.role, ShareRole::User | ShareRole::CoOwner))
    })
}

/// Whether `given` names the Windows account `account` on `machine`: case-insensitive, and a
/// machine-local account may also be written `.\user` or `local\user` (PAD-CONN).
pub fn names_account(given: &str, account: &str, machine: &Machine) -> bool {
    if given.eq_ignore_ascii_case(account) {
        return true;
    }
    let Some((domain, user)) = account.split_once('\\') else {
        return false;
    };
    if !domain.eq_ignore_ascii_case(&machine.name) {
        return false;
    }
    match given.split_once('\\') {
        Some((d, u)) => (d == "." || d.eq_ignore_ascii_case("local")) && u.eq_ignore_ascii_case(user),
        None => false,
    }
}

/// The status a connection gets from checking its credentials on every machine of its group.
fn evaluate(env: &Environment, parameters: &ParameterSet, correlation: Uuid) -> ConnectionStatus {
    let ParameterSet::AzureRelay { username, password, target } = parameters;
    for m in env.machines.iter().filter(|m| m.group == *target) {
        let ok = m
            .windows_accounts
            .iter()
            .any(|a| names_account(username, &a.username, m) && a.password.expose_secret() == password.expose_secret());
        if !ok {
            return ConnectionStatus::Error {
                code: "WindowsIdentityIncorrect".into(),
                message: format!(
                    "Details: Connection failed: [Machine {}]. There's an issue with your credentials. Check your credentials or use different credentials to connect to the machine. Correlation id: {correlation}.",
                    m.id
                ),
            };
        }
    }
    ConnectionStatus::Connected
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
        let env = find_env(self, &cmd.environment, caller)?;
        if let Some(named) = &cmd.body_environment {
            let matches = EnvironmentId::parse(named).is_ok_and(|n| n == cmd.environment);
            if !matches {
                return Err(Error::EnvironmentMismatch { body: named.clone(), door: cmd.environment.to_string() });
            }
        }
        let target = cmd.parameters.target();
        if !env.machine_groups.iter().any(|g| g.id == target) {
            let machine = env.machines.iter().find(|m| MachineId::from_uuid(target.uuid()) == m.id);
            return Err(Error::TargetGroupNotFound {
                target: target.to_string(),
                machine_group: machine.map(|m| m.group.to_string()),
            });
        }
        if !may_use_group(env, target, caller.principal) {
            return Err(Error::ConnectionAuthorizationFailed { group: target.to_string() });
        }
        let existing = self.connections.iter().position(|c| c.environment == cmd.environment && c.id == cmd.id);
        if let Some(i) = existing {
            let c = &self.connections[i];
            if c.created_by.principal != caller.principal {
                return Err(Error::ConnectionAuthorizationFailed { group: target.to_string() });
            }
        }
        let status = evaluate(env, &cmd.parameters, correlation);
        let display_name = cmd.display_name.unwrap_or_else(|| {
            let group = env.machine_groups.iter().find(|g| g.id == target).map(|g| g.name.clone()).unwrap_or_default();
            format!("{} ({})", cmd.parameters.username().unwrap_or("connection"), group)
        });
        match existing {
            Some(i) => {
                let c = &mut self.connections[i];
                c.display_name = display_name;
                c.parameters = cmd.parameters;
                c.last_modified_time = now;
                c.status = status;
                Ok((PutOutcome::Updated, &self.connections[i]))
            }
            None => {
                self.connections.push(Connection {
                    id: cmd.id,
                    environment: cmd.environment,
                    connector: UIFLOW.to_owned(),
                    display_name,
                    parameters: cmd.parameters,
                    created_by: caller.clone(),
                    created_time: now,
                    last_modified_time: now,
                    status,
                });
                let last = self.connections.len() - 1;
                Ok((PutOutcome::Created, &self.connections[last]))
            }
        }
    }

    /// One connection the caller may see (its creator's).
    pub fn connection(
        &self,
        caller: &Caller,
        environment: &EnvironmentId,
        connector: &str,
        id: &ConnectionId,
    ) -> Result<&Connection, Error> {
        check_connector(connector)?;
        find_env(self, environment, caller)?;
        let c = self
            .connections
            .iter()
            .find(|c| &c.environment == environment && &c.id == id)
            .ok_or_else(|| Error::ConnectionNotFound(id.as_written().to_owned()))?;
        if c.created_by.principal != caller.principal {
            return Err(Error::ConnectionAuthorizationFailed { group: c.parameters.target().to_string() });
        }
        Ok(c)
    }

    /// Deletes a connection the caller created.
    pub fn delete_connection(
        &mut self,
        caller: &Caller,
        environment: &EnvironmentId,
        connector: &str,
        id: &ConnectionId,
    ) -> Result<(), Error> {
        self.connection(caller, environment, connector, id)?;
        self.connections.retain(|c| !(&c.environment == environment && &c.id == id));
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
        find_env(self, environment, caller)?;
        Ok(self
            .connections
            .iter()
            .filter(|c| &c.environment == environment && c.created_by.principal == caller.principal)
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

/// Whether a machine can take connect-with-sign-in at all (used by later rules).
pub fn is_joined(m: &Machine) -> bool {
    matches!(m.join_type, JoinType::EntraJoined | JoinType::DomainJoined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::default_start;

    const ENV: &str = "37520647-dbdf-49fa-ba01-6134c14680c4";
    const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
    const HR: &str = "d8ffb0fe-5a78-4d28-abf4-b5c4167600be";

    fn world() -> World {
        World::from_fixture("default", &fixtures::default_world()).unwrap()
    }

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
                username: user.into(),
                password: SecretString::from(pw.to_owned()),
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
        assert_eq!(c.status, ConnectionStatus::Connected);
        assert_eq!(c.id.as_written(), "d4e4a6ff9a67492aa1f6de854528668c");
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
        match &c.status {
            ConnectionStatus::Error { code, message } => {
                assert_eq!(code, "WindowsIdentityIncorrect");
                assert!(message.starts_with("Details: Connection failed: [Machine 022701dd-0a3a-4ba3-9dbc-b24e4ec4ae0f]. There's an issue with your credentials."), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_machine_local_account_may_be_written_with_a_dot_or_local() {
        let w = world();
        let m = &w.environments[0].machines[0];
        assert!(names_account(".\\rpa", "BUILD-01\\rpa", m));
        assert!(names_account("local\\RPA", "BUILD-01\\rpa", m));
        assert!(names_account("build-01\\rpa", "BUILD-01\\rpa", m));
        assert!(!names_account("OTHER\\rpa", "BUILD-01\\rpa", m));
        let fin = &w.environments[0].machines[1];
        assert!(!names_account(".\\svc-rpa", "CONTOSO\\svc-rpa", fin), "a domain account is not local");
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
