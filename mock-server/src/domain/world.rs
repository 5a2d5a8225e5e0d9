//! `World`: every aggregate of one sandbox (tenants, principals, environments, machines,
//! machine groups), built from a validated fixture. Rules are methods on it; it holds no
//! HTTP types and reads no clock.

use super::Error;
use super::access::{Grantee, Rights, Share};
use super::connection::Caller;
use super::credential::{
    Credential, CredentialKind, EnvironmentVariable, KeyVaultReference, VariableType, VariableValue, VaultSecret,
};
use super::desktop_flow::{ConnectionReference, DesktopFlow};
use super::ids::{
    AppId, CredentialId, EnvironmentId, MachineGroupId, MachineId, PrincipalId, SystemUserId, TeamId, TenantId,
    VariableId, VariableValueId,
};
use fixtures::{
    CredentialKindFile, EnvironmentVariableTypeFile, FixtureError, GroupTypeFile, JoinTypeFile, SessionStateFile,
    ShareFile, ShareRoleFile, WindowsAccountFile, WindowsEditionFile, WorldFile,
};
use secrecy::{ExposeSecret, SecretString};

/// An Entra ID tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Initial domain, usable in authority URLs.
    pub domain: String,
    /// Display name.
    pub display_name: String,
}

/// A public client application (no secret).
#[derive(Debug, Clone)]
pub struct PublicClient {
    /// Client id.
    pub app_id: AppId,
    /// Display name.
    pub display_name: String,
}

/// A user account.
#[derive(Debug, Clone)]
pub struct User {
    /// Object id.
    pub object_id: PrincipalId,
    /// Home tenant.
    pub tenant: TenantId,
    /// Sign-in name.
    pub upn: String,
    /// Display name.
    pub display_name: String,
    /// Password (secrecy keeps it out of `Debug`).
    pub password: SecretString,
    /// Machines on which this Entra account may open a Windows session.
    pub interactive_logon: Vec<MachineId>,
}

/// The public part of a service principal's certificate, parsed once at load.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// SHA-1 thumbprint (`x5t`).
    pub thumbprint_sha1: Vec<u8>,
    /// SHA-256 thumbprint (`x5t#S256`).
    pub thumbprint_sha256: Vec<u8>,
    /// PKCS#1 `RSAPublicKey` DER of the certificate's key.
    pub rsa_public_key_der: Vec<u8>,
}

/// A service principal.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    /// Client id.
    pub app_id: AppId,
    /// Object id.
    pub object_id: PrincipalId,
    /// Home tenant.
    pub tenant: TenantId,
    /// Display name.
    pub display_name: String,
    /// Client secret, if it has one.
    pub client_secret: Option<SecretString>,
    /// Certificate credential, if it has one.
    pub certificate: Option<ClientCertificate>,
}

/// Who acts: a user or a service principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A user.
    User,
    /// A service principal (application user in Dataverse).
    ServicePrincipal,
}

/// A Dataverse `systemuser` row.
#[derive(Debug, Clone)]
pub struct SystemUser {
    /// `systemuserid`.
    pub id: SystemUserId,
    /// The user or service principal it stands for.
    pub principal: PrincipalId,
}

/// Kind of machine group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    /// User-made.
    Standard,
    /// The hidden group of a stand-alone machine.
    Default,
}

impl GroupType {
    /// The `flowgrouptype` option value.
    pub fn option_value(self) -> i64 {
        match self {
            Self::Standard => 545_940_001,
            Self::Default => 545_940_002,
        }
    }
}

/// A machine group.
#[derive(Debug, Clone)]
pub struct MachineGroup {
    /// Id (the connection `targetId`).
    pub id: MachineGroupId,
    /// Name.
    pub name: String,
    /// Kind.
    pub group_type: GroupType,
    /// Owner.
    pub owner: PrincipalId,
    /// Shares.
    pub shares: Vec<Share>,
    /// Row version (Dataverse `versionnumber`, the ETag).
    pub version: u64,
    /// Description.
    pub description: Option<String>,
}

impl MachineGroup {
    /// The hidden group of a stand-alone machine: named after it, owned as it is.
    pub fn default_for(id: MachineGroupId, machine_name: &str, owner: PrincipalId) -> Self {
        Self {
            id,
            name: machine_name.to_owned(),
            group_type: GroupType::Default,
            owner,
            shares: Vec::new(),
            version: 1,
            description: None,
        }
    }
}

/// How a machine is joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Entra joined (synchronised).
    EntraJoined,
    /// AD domain joined only.
    DomainJoined,
    /// Neither.
    Workgroup,
}

impl From<JoinTypeFile> for JoinType {
    fn from(j: JoinTypeFile) -> Self {
        match j {
            JoinTypeFile::EntraJoined => Self::EntraJoined,
            JoinTypeFile::DomainJoined => Self::DomainJoined,
            JoinTypeFile::Workgroup => Self::Workgroup,
        }
    }
}

impl From<WindowsEditionFile> for WindowsEdition {
    fn from(w: WindowsEditionFile) -> Self {
        match w {
            WindowsEditionFile::Client => Self::Client,
            WindowsEditionFile::Server => Self::Server,
        }
    }
}

impl From<&WindowsAccountFile> for WindowsAccount {
    fn from(a: &WindowsAccountFile) -> Self {
        Self {
            username: a.username.clone(),
            password: SecretString::from(a.password.clone()),
            interactive_logon: a.interactive_logon,
        }
    }
}

/// A Windows account able to open a session on a machine.
#[derive(Debug, Clone)]
pub struct WindowsAccount {
    /// As written in the fixture (`MACHINE\user`, `DOMAIN\user`, `user@domain`).
    pub username: String,
    /// Password.
    pub password: SecretString,
    /// May open an interactive session (the logon type is granted).
    pub interactive_logon: bool,
}

/// Windows edition of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowsEdition {
    /// Windows 10/11.
    Client,
    /// Windows Server.
    Server,
}

/// A Dataverse team.
#[derive(Debug, Clone)]
pub struct Team {
    /// `teamid`.
    pub id: TeamId,
    /// Name.
    pub name: String,
    /// Members.
    pub members: Vec<PrincipalId>,
}

/// A machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Id.
    pub id: MachineId,
    /// Name.
    pub name: String,
    /// Its group.
    pub group: MachineGroupId,
    /// Owner (registrant).
    pub owner: PrincipalId,
    /// Directory join.
    pub join_type: JoinType,
    /// For `EntraJoined`: synchronised with Entra ID.
    pub entra_synced: bool,
    /// Tenants allowlisted for connect with sign-in (`AllowedRegistrationTenants`).
    pub allowed_tenants: Vec<TenantId>,
    /// Answer an unallowlisted tenant with the older "Unable to connect…" text.
    pub legacy_sign_in_error: bool,
    /// Windows edition.
    pub windows_edition: WindowsEdition,
    /// Power Automate for desktop version.
    pub agent_version: String,
    /// Parallel sessions.
    pub session_capacity: u32,
    /// Agent connected.
    pub online: bool,
    /// Maintenance mode.
    pub maintenance: bool,
    /// Accounts that can sign in.
    pub windows_accounts: Vec<WindowsAccount>,
    /// Shares of the machine itself.
    pub shares: Vec<Share>,
    /// Row version (Dataverse `versionnumber`, the ETag).
    pub version: u64,
    /// Description.
    pub description: Option<String>,
    /// Windows user sessions open on it (runs.md, "Machines and sessions").
    pub sessions: Vec<Session>,
}

/// State of a Windows user session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Signed in and unlocked.
    Active,
    /// Locked.
    Locked,
    /// Disconnected.
    Disconnected,
}

impl From<SessionStateFile> for SessionState {
    fn from(s: SessionStateFile) -> Self {
        match s {
            SessionStateFile::Active => Self::Active,
            SessionStateFile::Locked => Self::Locked,
            SessionStateFile::Disconnected => Self::Disconnected,
        }
    }
}

impl From<SessionState> for SessionStateFile {
    fn from(s: SessionState) -> Self {
        match s {
            SessionState::Active => Self::Active,
            SessionState::Locked => Self::Locked,
            SessionState::Disconnected => Self::Disconnected,
        }
    }
}

/// A Windows user session open on a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The signed-in account, as written (matched with `windows_account::same_account`).
    pub user: String,
    /// Its state.
    pub state: SessionState,
}

/// An environment with its Dataverse organisation and machines.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Id.
    pub id: EnvironmentId,
    /// Tenant.
    pub tenant: TenantId,
    /// Display name.
    pub display_name: String,
    /// Dataverse organisation name (`{org}.crm.dynamics.com`).
    pub org: String,
    /// Dataverse organisation id.
    pub organization_id: uuid::Uuid,
    /// Users and application users.
    pub system_users: Vec<SystemUser>,
    /// Machine groups.
    pub machine_groups: Vec<MachineGroup>,
    /// Machines.
    pub machines: Vec<Machine>,
    /// Teams.
    pub teams: Vec<Team>,
    /// Environment variables.
    pub variables: Vec<EnvironmentVariable>,
    /// Desktop-flow credentials.
    pub credentials: Vec<Credential>,
    /// Desktop flows (`workflows` of category 6).
    pub desktop_flows: Vec<DesktopFlow>,
    /// Connection references.
    pub connection_references: Vec<ConnectionReference>,
}

impl Environment {
    /// A fixture may share a stand-alone machine or its Default group: both share the one
    /// unit, so the machine's shares move to the group, where the rules look for them.
    fn unite_stand_alone_shares(&mut self) {
        for m in &mut self.machines {
            if let Some(g) =
                self.machine_groups.iter_mut().find(|g| g.id == m.group && g.group_type == GroupType::Default)
            {
                g.shares = super::access::merged(&g.shares, &m.shares);
                m.shares.clear();
            }
        }
    }

    /// The Dataverse host in the public cloud.
    pub fn org_host(&self) -> String {
        format!("{}.crm.dynamics.com", self.org)
    }
}

/// Everything one sandbox knows.
#[derive(Debug, Clone)]
pub struct World {
    /// Tenants.
    pub tenants: Vec<Tenant>,
    /// Public clients.
    pub public_clients: Vec<PublicClient>,
    /// Users.
    pub users: Vec<User>,
    /// Service principals.
    pub service_principals: Vec<ServicePrincipal>,
    /// Environments.
    pub environments: Vec<Environment>,
    /// Connections, in every environment.
    pub connections: super::connection_store::Connections,
    /// The stand-in for Azure Key Vault: what Secret environment variables' references resolve to.
    pub vault: Vec<VaultSecret>,
    /// Desktop-flow runs, in every environment.
    pub runs: super::run::RunQueue,
}

impl World {
    /// Builds a world from a fixture that `fixtures` has validated. `file` names it in errors.
    pub fn from_fixture(file: &str, f: &WorldFile) -> Result<Self, FixtureError> {
        let bad = |path: String, message: String| FixtureError { file: file.to_owned(), path, message };
        // The fixture crate validated every id, so parse failures here mean a bug there.
        let id_err = |path: String| move |e: super::ids::IdError| bad(path.clone(), e.to_string());
        let mut w = World {
            tenants: Vec::new(),
            public_clients: Vec::new(),
            users: Vec::new(),
            service_principals: Vec::new(),
            environments: Vec::new(),
            connections: Default::default(),
            vault: Vec::new(),
            runs: super::run::RunQueue::default(),
        };
        for (i, t) in f.tenants.iter().enumerate() {
            w.tenants.push(Tenant {
                id: TenantId::parse(&t.id).map_err(id_err(format!("tenants[{i}].id")))?,
                domain: t.domain.to_ascii_lowercase(),
                display_name: t.display_name.clone(),
            });
        }
        for (i, c) in f.public_clients.iter().enumerate() {
            w.public_clients.push(PublicClient {
                app_id: AppId::parse(&c.app_id).map_err(id_err(format!("publicClients[{i}].appId")))?,
                display_name: c.display_name.clone(),
            });
        }
        for (i, u) in f.users.iter().enumerate() {
            w.users.push(User {
                object_id: PrincipalId::parse(&u.object_id).map_err(id_err(format!("users[{i}].objectId")))?,
                tenant: TenantId::parse(&u.tenant).map_err(id_err(format!("users[{i}].tenant")))?,
                upn: u.user_principal_name.clone(),
                display_name: u.display_name.clone(),
                password: SecretString::from(u.password.clone()),
                interactive_logon: u
                    .interactive_logon_machines
                    .iter()
                    .map(|m| MachineId::parse(m))
                    .collect::<Result<_, _>>()
                    .map_err(id_err(format!("users[{i}].interactiveLogonMachines")))?,
            });
        }
        for (i, s) in f.service_principals.iter().enumerate() {
            let certificate = match &s.certificate_pem {
                Some(pem) => {
                    Some(parse_certificate(pem).map_err(|m| bad(format!("servicePrincipals[{i}].certificatePem"), m))?)
                }
                None => None,
            };
            w.service_principals.push(ServicePrincipal {
                app_id: AppId::parse(&s.app_id).map_err(id_err(format!("servicePrincipals[{i}].appId")))?,
                object_id: PrincipalId::parse(&s.object_id)
                    .map_err(id_err(format!("servicePrincipals[{i}].objectId")))?,
                tenant: TenantId::parse(&s.tenant).map_err(id_err(format!("servicePrincipals[{i}].tenant")))?,
                display_name: s.display_name.clone(),
                client_secret: s.client_secret.clone().map(SecretString::from),
                certificate,
            });
        }
        for (e, env) in f.environments.iter().enumerate() {
            let at = |rest: &str| format!("environments[{e}].{rest}");
            let mut out = Environment {
                id: EnvironmentId::parse(&env.id).map_err(id_err(at("id")))?,
                tenant: TenantId::parse(&env.tenant).map_err(id_err(at("tenant")))?,
                display_name: env.display_name.clone(),
                org: env.dataverse.org.to_ascii_lowercase(),
                organization_id: super::ids::parse_guid("organization id", &env.dataverse.organization_id)
                    .map_err(id_err(at("dataverse.organizationId")))?,
                system_users: Vec::new(),
                machine_groups: Vec::new(),
                machines: Vec::new(),
                teams: Vec::new(),
                variables: Vec::new(),
                credentials: Vec::new(),
                desktop_flows: Vec::new(),
                connection_references: Vec::new(),
            };
            for (i, t) in env.teams.iter().enumerate() {
                let p = at(&format!("teams[{i}]"));
                out.teams.push(Team {
                    id: TeamId::parse(&t.team_id).map_err(id_err(p.clone()))?,
                    name: t.name.clone(),
                    members: t
                        .members
                        .iter()
                        .map(|m| PrincipalId::parse(m))
                        .collect::<Result<_, _>>()
                        .map_err(id_err(p))?,
                });
            }
            for v in &env.environment_variables {
                // The fixture names variables only; their row ids follow from the organisation,
                // so they are stable for a world and differ between sandboxes.
                let row_id = |table: &str| {
                    uuid::Uuid::new_v5(
                        &out.organization_id,
                        format!("{table}:{}", v.schema_name.to_lowercase()).as_bytes(),
                    )
                };
                // A fixture Secret holds what the vault returns: it goes to the vault stand-in,
                // and the variable gets the reference, as in Dataverse.
                let (variable_type, value) = match v.variable_type {
                    EnvironmentVariableTypeFile::Text => (VariableType::Text, v.value.clone()),
                    EnvironmentVariableTypeFile::Secret => {
                        let (text, reference) = KeyVaultReference::for_fixture(&v.schema_name);
                        w.set_vault_secret(reference, SecretString::from(v.value.clone()));
                        (VariableType::Secret, text)
                    }
                };
                out.variables.push(EnvironmentVariable {
                    id: VariableId::from_uuid(row_id("environmentvariabledefinition")),
                    schema_name: v.schema_name.clone(),
                    display_name: v.schema_name.clone(),
                    description: None,
                    variable_type,
                    default_value: None,
                    value: Some(VariableValue {
                        id: VariableValueId::from_uuid(row_id("environmentvariablevalue")),
                        value,
                        version: 1,
                    }),
                    owner: None,
                    version: 1,
                });
            }
            for (i, c) in env.credentials.iter().enumerate() {
                let p = at(&format!("credentials[{i}]"));
                out.credentials.push(Credential {
                    id: CredentialId::parse(&c.id).map_err(id_err(p.clone()))?,
                    name: c.name.clone(),
                    description: None,
                    kind: match c.kind {
                        CredentialKindFile::KeyVaultPassword => CredentialKind::KeyVaultPassword,
                        CredentialKindFile::KeyVaultCertificate => CredentialKind::KeyVaultCertificate,
                        CredentialKindFile::CyberArk => CredentialKind::CyberArk,
                    },
                    owner: PrincipalId::parse(&c.owner).map_err(id_err(p.clone()))?,
                    username_variable: c.username_variable.clone(),
                    password_variable: c.password_variable.clone(),
                    // The fixture's `sharedWith` is the portal's User role.
                    shares: c
                        .shared_with
                        .iter()
                        .map(|m| {
                            PrincipalId::parse(m)
                                .map(|p| Share { grantee: Grantee::Principal(p), rights: Rights::USER })
                        })
                        .collect::<Result<_, _>>()
                        .map_err(id_err(p))?,
                    version: 1,
                });
            }
            for (i, s) in env.system_users.iter().enumerate() {
                out.system_users.push(SystemUser {
                    id: SystemUserId::parse(&s.system_user_id).map_err(id_err(at(&format!("systemUsers[{i}]"))))?,
                    principal: PrincipalId::parse(&s.principal).map_err(id_err(at(&format!("systemUsers[{i}]"))))?,
                });
            }
            for (i, g) in env.machine_groups.iter().enumerate() {
                let p = at(&format!("machineGroups[{i}]"));
                let shares = shares_of(&out.teams, &g.shares).map_err(id_err(p.clone()))?;
                out.machine_groups.push(MachineGroup {
                    id: MachineGroupId::parse(&g.id).map_err(id_err(p.clone()))?,
                    name: g.name.clone(),
                    group_type: match g.group_type {
                        GroupTypeFile::Standard => GroupType::Standard,
                        GroupTypeFile::Default => GroupType::Default,
                    },
                    owner: PrincipalId::parse(&g.owner).map_err(id_err(p))?,
                    shares,
                    version: 1,
                    description: None,
                });
            }
            for (i, m) in env.machines.iter().enumerate() {
                let p = at(&format!("machines[{i}]"));
                let shares = shares_of(&out.teams, &m.shares).map_err(id_err(p.clone()))?;
                let allowed_tenants = m
                    .allowed_tenants
                    .iter()
                    .map(|t| TenantId::parse(t))
                    .collect::<Result<_, _>>()
                    .map_err(id_err(p.clone()))?;
                out.machines.push(Machine {
                    id: MachineId::parse(&m.id).map_err(id_err(p.clone()))?,
                    name: m.name.clone(),
                    group: MachineGroupId::parse(&m.group).map_err(id_err(p.clone()))?,
                    owner: PrincipalId::parse(&m.owner).map_err(id_err(p))?,
                    join_type: m.join_type.into(),
                    entra_synced: m.entra_synced,
                    allowed_tenants,
                    legacy_sign_in_error: m.legacy_sign_in_error,
                    windows_edition: m.windows_edition.into(),
                    agent_version: m.agent_version.clone(),
                    session_capacity: m.session_capacity,
                    online: m.online,
                    maintenance: m.maintenance,
                    windows_accounts: m.windows_accounts.iter().map(WindowsAccount::from).collect(),
                    shares,
                    version: 1,
                    description: None,
                    sessions: m
                        .sessions
                        .iter()
                        .map(|s| Session { user: s.user.clone(), state: s.state.into() })
                        .collect(),
                });
            }
            for (i, d) in env.desktop_flows.iter().enumerate() {
                let p = at(&format!("desktopFlows[{i}]"));
                out.desktop_flows.push(DesktopFlow::from_file(d).map_err(id_err(p))?);
            }
            for (i, r) in env.connection_references.iter().enumerate() {
                let p = at(&format!("connectionReferences[{i}]"));
                out.connection_references.push(ConnectionReference::from_file(r).map_err(id_err(p))?);
            }
            out.unite_stand_alone_shares();
            w.environments.push(out);
        }
        Ok(w)
    }

    /// A tenant by id (either GUID form) or by domain name, case-insensitively.
    pub fn tenant_by_ref(&self, reference: &str) -> Option<&Tenant> {
        match TenantId::parse(reference) {
            Ok(id) => self.tenants.iter().find(|t| t.id == id),
            Err(_) => self.tenants.iter().find(|t| t.domain.eq_ignore_ascii_case(reference)),
        }
    }

    /// A tenant by id.
    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    /// The tenant whose domain ends a UPN (`megan@contoso.onmicrosoft.com`).
    pub fn tenant_of_upn(&self, upn: &str) -> Option<&Tenant> {
        let domain = upn.rsplit_once('@')?.1;
        self.tenants.iter().find(|t| t.domain.eq_ignore_ascii_case(domain))
    }

    /// A service principal of `tenant` by client id.
    pub fn service_principal(&self, tenant: TenantId, app_id: AppId) -> Option<&ServicePrincipal> {
        self.service_principals.iter().find(|s| s.tenant == tenant && s.app_id == app_id)
    }

    /// A user of `tenant` by UPN, case-insensitively.
    pub fn user_by_upn(&self, tenant: TenantId, upn: &str) -> Option<&User> {
        self.users.iter().find(|u| u.tenant == tenant && u.upn.eq_ignore_ascii_case(upn))
    }

    /// A user by object id.
    pub fn user(&self, id: PrincipalId) -> Option<&User> {
        self.users.iter().find(|u| u.object_id == id)
    }

    /// Whether a client id is a known public client.
    pub fn is_public_client(&self, app_id: AppId) -> bool {
        self.public_clients.iter().any(|c| c.app_id == app_id)
    }

    /// An environment by id.
    pub fn environment(&self, id: &EnvironmentId) -> Option<&Environment> {
        self.environments.iter().find(|e| &e.id == id)
    }

    /// The environment a caller acts on: it must exist, and be in the caller's tenant.
    pub fn environment_for(&self, id: &EnvironmentId, caller: &Caller) -> Result<&Environment, Error> {
        let env = self.environment(id).ok_or_else(|| environment_not_found(id, caller))?;
        if env.tenant != caller.tenant {
            return Err(cross_tenant(id, caller));
        }
        Ok(env)
    }

    /// As [`World::environment_for`], to change it.
    pub fn environment_for_mut(&mut self, id: &EnvironmentId, caller: &Caller) -> Result<&mut Environment, Error> {
        let env =
            self.environments.iter_mut().find(|e| &e.id == id).ok_or_else(|| environment_not_found(id, caller))?;
        if env.tenant != caller.tenant {
            return Err(cross_tenant(id, caller));
        }
        Ok(env)
    }

    /// An environment by its API host prefix (`37520647dbdf49faba016134c14680.c4`).
    pub fn environment_by_host_prefix(&self, prefix: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.id.host_prefix().eq_ignore_ascii_case(prefix))
    }

    /// An environment by Dataverse org name.
    pub fn environment_by_org(&self, org: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.org.eq_ignore_ascii_case(org))
    }

    /// Every credential the world holds, so the journal can redact them wherever they appear.
    pub fn known_secrets(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for u in &self.users {
            out.push(("password", u.password.expose_secret().to_owned()));
        }
        for s in &self.service_principals {
            if let Some(secret) = &s.client_secret {
                out.push(("client_secret", secret.expose_secret().to_owned()));
            }
        }
        for e in &self.environments {
            for m in &e.machines {
                for a in &m.windows_accounts {
                    out.push(("password", a.password.expose_secret().to_owned()));
                }
            }
        }
        for s in &self.vault {
            out.push(("password", s.value.expose_secret().to_owned()));
        }
        // Short values would match inside ordinary words; the fixture's are long.
        out.retain(|(_, v)| v.len() >= 6);
        out.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        out.dedup_by(|a, b| a.1 == b.1);
        out
    }
}

/// The environment does not exist (for the caller's tenant).
pub fn environment_not_found(id: &EnvironmentId, caller: &Caller) -> Error {
    Error::EnvironmentNotFound { environment: id.to_string(), tenant: caller.tenant.to_string() }
}

fn cross_tenant(id: &EnvironmentId, caller: &Caller) -> Error {
    Error::CrossTenantAccess { environment: id.to_string(), tenant: caller.tenant.to_string() }
}

/// Shares from the fixture: a principal or a team, with the role's rights (DECISIONS.md).
fn shares_of(teams: &[Team], file: &[ShareFile]) -> Result<Vec<Share>, super::ids::IdError> {
    file.iter()
        .map(|s| {
            let id = PrincipalId::parse(&s.principal)?;
            let grantee = match teams.iter().find(|t| t.id.uuid() == id.uuid()) {
                Some(t) => Grantee::Team(t.id),
                None => Grantee::Principal(id),
            };
            let rights = match s.role {
                ShareRoleFile::User => Rights::USER,
                ShareRoleFile::CoOwner => Rights::CO_OWNER,
            };
            Ok(Share { grantee, rights })
        })
        .collect()
}

/// Parses a PEM certificate into thumbprints and its RSA public key.
fn parse_certificate(pem: &str) -> Result<ClientCertificate, String> {
    use aws_lc_rs::digest;
    let (_, der) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = der.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
        return Err("only RSA certificates are supported for client assertions".into());
    }
    Ok(ClientCertificate {
        thumbprint_sha1: digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der.contents).as_ref().to_vec(),
        thumbprint_sha256: digest::digest(&digest::SHA256, &der.contents).as_ref().to_vec(),
        rsa_public_key_der: spki.subject_public_key.data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_world() -> World {
        World::from_fixture("default", &fixtures::default_world()).unwrap()
    }

    #[test]
    fn a_tenant_is_found_by_id_in_either_form_or_by_domain() {
        let w = default_world();
        let by_domain = w.tenant_by_ref("CONTOSO.onmicrosoft.com").unwrap().id;
        assert_eq!(w.tenant_by_ref("c7263f1a-afcd-4e8a-a7ce-66b19698caaa").unwrap().id, by_domain);
        assert_eq!(w.tenant_by_ref("c7263f1aafcd4e8aa7ce66b19698caaa").unwrap().id, by_domain);
        assert!(w.tenant_by_ref("nowhere.example").is_none());
    }

    #[test]
    fn the_service_principal_certificate_is_parsed_at_load() {
        let w = default_world();
        let cert = w.service_principals[0].certificate.as_ref().unwrap();
        assert_eq!(cert.thumbprint_sha1.len(), 20);
        assert!(!cert.rsa_public_key_der.is_empty());
    }

    #[test]
    fn known_secrets_include_every_fixture_credential_and_no_duplicates() {
        let w = default_world();
        let secrets = w.known_secrets();
        let values: Vec<&str> = secrets.iter().map(|(_, v)| v.as_str()).collect();
        assert!(values.contains(&"mock-pipeline-secret~0001"));
        assert!(values.contains(&"Megan-Test-Passw0rd!"));
        assert!(values.contains(&"Contoso-SvcRpa-Passw0rd!"));
        let mut dedup = values.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), values.len());
    }
}
