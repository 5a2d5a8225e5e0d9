//! `domain::Error`: one variant per rule that can be broken, each with its code. Messages
//! that Microsoft documents are reproduced word for word; codes the mock makes up are marked
//! (mock-defined) here and in `docs/errors.md`. The HTTP status of each is chosen in
//! `api::error`, not here: the domain knows rules, not HTTP.

use super::clock::ClockError;

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The sandbox clock refused a change (mock-defined `InvalidClockChange`).
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The environment does not exist (documented `ServiceToServiceEnvironmentNotFound`).
    #[error("The environment '{environment}' could not be found in the tenant '{tenant}'.")]
    EnvironmentNotFound {
        /// Environment id as given.
        environment: String,
        /// Caller's tenant.
        tenant: String,
    },
    /// A principal of one tenant acting on another tenant's environment (documented code, mock text).
    #[error(
        "The caller does not have permission. The environment '{environment}' is not in the caller's tenant '{tenant}'."
    )]
    CrossTenantAccess {
        /// Environment.
        environment: String,
        /// Caller's tenant.
        tenant: String,
    },
    /// The caller may not use the target group (documented code and message; the mock adds the group).
    #[error("The caller does not have permission. (machine group {group})")]
    ConnectionAuthorizationFailed {
        /// Group id.
        group: String,
    },
    /// The caller's relation to a connection does not allow the operation (documented code and
    /// message; the mock adds the connection and why).
    #[error("The caller does not have permission. (connection {connection}: {reason})")]
    ConnectionAccessDenied {
        /// The connection id as created.
        connection: String,
        /// What the operation needs.
        reason: &'static str,
    },
    /// No such connection (documented code `ConnectionNotFound`, mock text).
    #[error("The connection '{0}' was not found.")]
    ConnectionNotFound(String),
    /// A connector other than `shared_uiflow` (mock-defined `ConnectorNotFound`).
    #[error("The connector '{0}' is not emulated by the mock: only 'shared_uiflow' (Desktop flows) is.")]
    ConnectorNotFound(String),
    /// The body names another environment than the door (mock-defined `EnvironmentMismatch`).
    #[error("The body's properties.environment.name '{body}' is not the environment of the request '{door}'.")]
    EnvironmentMismatch {
        /// Environment in the body.
        body: String,
        /// Environment of host or path.
        door: String,
    },
    /// `targetId` is no machine group of the environment (mock-defined `TargetGroupNotFound`).
    #[error("The targetId '{target}' is not a machine group of this environment.{}", machine_group.as_ref().map(|g| format!(" It is a machine id: use the id of its group, '{g}' (the machine's Flow Machine Group column).")).unwrap_or_default())]
    TargetGroupNotFound {
        /// Given id.
        target: String,
        /// When the id is a machine's: its group.
        machine_group: Option<String>,
    },
    /// Connect with sign-in needs a user's token (mock-defined `SignInRequiresUser`).
    #[error(
        "A passwordlessAttended (connect with sign-in) connection is created with a user's token: the signed-in user is the connection's user. Service principals cannot sign in interactively."
    )]
    SignInRequiresUser,
    /// The signed-in user is not in the environment's tenant (mock-defined `SignInUserTenantMismatch`).
    #[error(
        "Connect with sign-in needs a Microsoft Entra user of the environment's tenant: the user is in tenant '{user_tenant}', the environment in tenant '{environment_tenant}'."
    )]
    SignInUserTenantMismatch {
        /// The user's tenant.
        user_tenant: String,
        /// The environment's tenant.
        environment_tenant: String,
    },
    /// A run owner on a sign-in connection (mock-defined `SignInConnectionRunOwner`; PAD-RUNOWNER).
    #[error(
        "Connect with sign-in connections cannot have a run owner: tokenRunOwnerCert parameters belong to the azureRelayRunOwner parameter set."
    )]
    SignInConnectionRunOwner,
    /// Turning a sign-in connection into a password one or back (mock-defined `ParameterSetCannotChange`).
    #[error(
        "The connection '{0}' cannot switch between connect with sign-in and username/password: create a new connection."
    )]
    SignInKindCannotChange(String),
    /// An update without the run owner the connection has (mock-defined `RunOwnerCannotBeRemoved`; PAD-RUNOWNER).
    #[error(
        "The connection '{0}' has a run owner: it can be changed but not removed. Keep the azureRelayRunOwner parameter set, or create a new connection."
    )]
    RunOwnerCannotBeRemoved(String),
    /// `tokenRunOwnerCert:clientId` names no service principal of the tenant (mock-defined `RunOwnerNotFound`).
    #[error(
        "The run owner '{app_id}' is not a service principal of the tenant '{tenant}': the run owner must be registered in the connection creator's tenant."
    )]
    RunOwnerNotFound {
        /// Client id given.
        app_id: String,
        /// Creator's tenant.
        tenant: String,
    },
    /// The run owner has no certificate credential (mock-defined `RunOwnerCertificateRequired`).
    #[error(
        "The run owner '{0}' has no certificate credential: only certificate authentication is supported for run owners."
    )]
    RunOwnerCertificateRequired(String),
    /// The run owner is not an application user of the environment (mock-defined `RunOwnerNotApplicationUser`).
    #[error(
        "The run owner '{0}' is not an application user of this environment: register the service principal as a Dataverse application user first."
    )]
    RunOwnerNotApplicationUser(String),
    /// The run owner may not use the target group (mock-defined `RunOwnerAuthorizationFailed`).
    #[error(
        "The run owner '{app_id}' does not have access to the machine group '{group}': share it with the run owner's application user."
    )]
    RunOwnerAuthorizationFailed {
        /// Run owner's client id.
        app_id: String,
        /// Group.
        group: String,
    },
    /// `properties.credentialId` names no credential of the environment (mock-defined `CredentialNotFound`).
    #[error("The credential '{0}' does not exist in this environment.")]
    CredentialNotFound(String),
    /// The credential is not shared with the creator (mock-defined `CredentialNotShared`; PAD-RUNOWNER).
    #[error(
        "The credential '{credential}' is not shared with '{principal}': a credential must be shared with the identity that creates the connection."
    )]
    CredentialNotShared {
        /// Credential.
        credential: String,
        /// Creator.
        principal: String,
    },
    /// A credential connection's value does not reference the credential's variable (mock-defined `CredentialParameterMismatch`).
    #[error("The parameter '{parameter}' of a connection with this credential must be {expected}.")]
    CredentialParameterMismatch {
        /// `username` or `password`.
        parameter: &'static str,
        /// What the credential needs.
        expected: String,
    },
    /// Sharing a desktop-flow connection without a run owner (mock-defined `ConnectionNotShareable`; PAD-CONN, PAD-RUNOWNER).
    #[error(
        "Desktop flow connections can be shared only when they have an explicit run owner (parameter set azureRelayRunOwner); the connection '{0}' has none."
    )]
    ConnectionNotShareable(String),
    /// A share recipient that is not a service principal (mock-defined `ShareRecipientNotServicePrincipal`).
    #[error("Desktop flow connections can be shared with service principals only; '{0}' is not one.")]
    ShareRecipientNotServicePrincipal(String),
    /// A share recipient this tenant does not know (mock-defined `SharePrincipalNotFound`).
    #[error("No service principal of the connection's tenant has the object id '{0}'.")]
    SharePrincipalNotFound(String),
    /// `CanViewWithShare` on a desktop-flow connection (mock-defined `CanViewWithShareNotAllowed`).
    #[error(
        "The role 'CanViewWithShare' is not allowed on desktop flow connections: use 'CanView' (can use) or 'CanEdit' (can edit)."
    )]
    CanViewWithShareNotAllowed,
    /// A role name that is not a connection role (mock-defined `InvalidPermissionRole`).
    #[error("'{0}' is not a connection role: use 'CanView' or 'CanEdit'.")]
    InvalidPermissionRole(String),
    /// Removing the owner's permission (mock-defined `OwnerPermissionCannotBeRemoved`).
    #[error("The owner's permission cannot be removed from the connection.")]
    OwnerPermissionCannotBeRemoved,
    /// `TestConnection` found the connection unusable: its status's code and message.
    #[error("{message}")]
    ConnectionTestFailed {
        /// The status code (`WindowsIdentityIncorrect`, `MachineNotJoined`, …).
        code: &'static str,
        /// Its message.
        message: String,
    },
    /// Joining another principal's stand-alone machine's group (mock-defined `DefaultGroupMembership`).
    #[error(
        "The machine group '{0}' is the hidden Default group of a stand-alone machine: machines join Standard groups only."
    )]
    DefaultGroupMembership(String),
    /// A group at its limit (mock-defined `MachineGroupFull`; the limit is PAD-MG's).
    #[error("The machine group '{group}' already holds {limit} machines, the most a group may hold.")]
    MachineGroupFull {
        /// Group.
        group: String,
        /// The limit.
        limit: usize,
    },
    /// `LeaveGroup` on a stand-alone machine (mock-defined `MachineNotInGroup`).
    #[error("The machine '{0}' is stand-alone: it is in no machine group to leave.")]
    NotInAGroup(String),
    /// Silent registration into a group the service principal may not use (mock-defined `MachineRegistrationForbidden`).
    #[error(
        "The service principal may not register machines into the machine group '{group}': share the group with its application user first."
    )]
    RegistrationForbidden {
        /// Group.
        group: String,
    },
    /// Silent registration by something else than a service principal (mock-defined `RegistrationNeedsServicePrincipal`).
    #[error("Silent registration is done by a service principal: give its application (client) id.")]
    RegistrationNeedsServicePrincipal,
    /// `If-Match` names an older row version (Dataverse `0x80060882`).
    #[error("The version of the existing record doesn't match the RowVersion property provided.")]
    VersionMismatch,
    /// A name that Dataverse would refuse (mock-defined text, Dataverse code `0x80040203`).
    #[error("The name '{0}' is invalid: it must be 1 to 100 characters and not blank.")]
    InvalidName(String),
    /// A create without a name (Dataverse `0x80040203`, mock text).
    #[error("The attribute 'name' is required to create a {entity}.")]
    NameRequired {
        /// Logical name.
        entity: &'static str,
    },
    /// Default groups come only with stand-alone machines (Dataverse code `0x80060888`, mock text).
    #[error(
        "Only Standard groups (flowgrouptype 545940001) can be created; Default groups come with stand-alone machines."
    )]
    DefaultGroupByHand,
    /// A create with an id that exists (Dataverse `0x80040237`).
    #[error("A record with the id '{0}' already exists.")]
    DuplicateRecord(String),
    /// A row that does not exist or the caller cannot see (Dataverse `0x80040217`).
    #[error("Entity '{entity}' With Id = {id} Does Not Exist")]
    RecordNotFound {
        /// Logical name.
        entity: &'static str,
        /// Id.
        id: String,
    },
    /// The caller's share does not allow the operation (Dataverse `0x80040220`).
    #[error("Principal user (Id={principal}, type=8) is missing {privilege} privilege.")]
    MissingPrivilege {
        /// Privilege name.
        privilege: &'static str,
        /// Caller.
        principal: String,
    },
    /// Sharing rights the granter does not hold itself (Dataverse `0x80040220`, mock text).
    #[error("Principal user (Id={principal}, type=8) cannot grant {rights}: a principal shares only rights it holds.")]
    GrantBeyondHeld {
        /// The rights not held.
        rights: String,
        /// Granter.
        principal: String,
    },
    /// Deleting a group that still holds machines (relationship Delete: Restrict; mock-defined code and text).
    #[error("The machine group '{group}' still holds {machines} machine(s); remove them before deleting the group.")]
    GroupHasMachines {
        /// Group.
        group: String,
        /// Members.
        machines: usize,
    },
    /// The principal has no systemuser in the environment (Dataverse `0x80072560`, mock text).
    #[error(
        "The user is not a member of the organization: principal '{0}' has no systemuser (application user) in this environment."
    )]
    NotOrganizationMember(String),
    /// A create without a required column (Dataverse `0x80040203`, mock text).
    #[error("The attribute '{attribute}' is required to create a {entity}.")]
    AttributeRequired {
        /// Logical name.
        entity: &'static str,
        /// The missing column.
        attribute: &'static str,
    },
    /// A `connectiontype` the mock does not emulate (mock-defined `CredentialTypeNotEmulated`).
    #[error(
        "The connectiontype {0} is not emulated by the mock: 1 (UsernamePassword, Azure Key Vault), 4 (CyberArkIdentity) and 5 (CertificateBasedAuthentication) are."
    )]
    CredentialTypeNotEmulated(i64),
    /// A credential column names the wrong kind of variable (mock-defined `CredentialVariableMismatch`).
    #[error("The credential column '{column}' must be {expected}.")]
    CredentialVariableMismatch {
        /// `username` or `password`.
        column: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A Secret variable's value that is no Key Vault reference (mock-defined `InvalidKeyVaultReference`).
    #[error(
        "The value of the Secret environment variable '{0}' must be an Azure Key Vault secret reference: /subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroup}}/providers/Microsoft.KeyVault/vaults/{{vault}}/secrets/{{secret}}."
    )]
    InvalidKeyVaultReference(String),
    /// A default value on a Secret variable (mock-defined `SecretVariableDefaultValue`).
    #[error(
        "The Secret environment variable '{0}' cannot have a default value: give it a value row with a Key Vault reference."
    )]
    SecretVariableDefaultValue(String),
    /// A second value row for a definition (mock-defined `EnvironmentVariableValueExists`).
    #[error("The environment variable '{variable}' already has a value ({value}): update that row instead.")]
    VariableValueExists {
        /// Schema name.
        variable: String,
        /// The existing value row.
        value: String,
    },
    /// A schema name already in use (Dataverse `0x80040237`, mock text).
    #[error("An environment variable with the schema name '{0}' already exists.")]
    DuplicateSchemaName(String),
    /// A `type` the mock does not emulate (mock-defined `EnvironmentVariableTypeNotEmulated`).
    #[error(
        "The environment variable type {0} is not emulated by the mock: 100000000 (String) and 100000005 (Secret) are."
    )]
    VariableTypeNotEmulated(i64),
    /// Changing a column fixed at creation (mock-defined `EnvironmentVariableColumnFixed`).
    #[error(
        "The schema name, type and definition of the environment variable '{0}' are fixed once it is created: create another one."
    )]
    VariableFixedColumn(String),
    /// A run request's parameter the service refuses (Dataverse `0x80040203`, mock text).
    #[error("{0}")]
    InvalidRunParameter(String),
    /// The connection a run names cannot run flows (mock-defined `ConnectionNotUsableForRuns`).
    #[error("The connection '{connection}' cannot run desktop flows: {reason}.")]
    ConnectionNotUsableForRuns {
        /// The connection (or connection reference) as named.
        connection: String,
        /// Why.
        reason: &'static str,
    },
    /// Cancelling a run that has ended (mock-defined `FlowSessionAlreadyEnded`).
    #[error("The flow session '{0}' has already ended; only a Waiting or Running run can be cancelled.")]
    RunAlreadyEnded(String),
}

impl Error {
    /// The error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Clock(_) => "InvalidClockChange",
            Self::EnvironmentNotFound { .. } => "ServiceToServiceEnvironmentNotFound",
            Self::CrossTenantAccess { .. }
            | Self::ConnectionAuthorizationFailed { .. }
            | Self::ConnectionAccessDenied { .. } => "ConnectionAuthorizationFailed",
            Self::ConnectionNotFound(_) => "ConnectionNotFound",
            Self::ConnectorNotFound(_) => "ConnectorNotFound",
            Self::EnvironmentMismatch { .. } => "EnvironmentMismatch",
            Self::TargetGroupNotFound { .. } => "TargetGroupNotFound",
            Self::VersionMismatch => "0x80060882",
            Self::ConnectionTestFailed { code, .. } => code,
            Self::DefaultGroupMembership(_) => "DefaultGroupMembership",
            Self::MachineGroupFull { .. } => "MachineGroupFull",
            Self::NotInAGroup(_) => "MachineNotInGroup",
            Self::RegistrationForbidden { .. } => "MachineRegistrationForbidden",
            Self::RegistrationNeedsServicePrincipal => "RegistrationNeedsServicePrincipal",
            Self::SignInRequiresUser => "SignInRequiresUser",
            Self::SignInUserTenantMismatch { .. } => "SignInUserTenantMismatch",
            Self::SignInConnectionRunOwner => "SignInConnectionRunOwner",
            Self::SignInKindCannotChange(_) => "ParameterSetCannotChange",
            Self::RunOwnerCannotBeRemoved(_) => "RunOwnerCannotBeRemoved",
            Self::RunOwnerNotFound { .. } => "RunOwnerNotFound",
            Self::RunOwnerCertificateRequired(_) => "RunOwnerCertificateRequired",
            Self::RunOwnerNotApplicationUser(_) => "RunOwnerNotApplicationUser",
            Self::RunOwnerAuthorizationFailed { .. } => "RunOwnerAuthorizationFailed",
            Self::CredentialNotFound(_) => "CredentialNotFound",
            Self::CredentialNotShared { .. } => "CredentialNotShared",
            Self::CredentialParameterMismatch { .. } => "CredentialParameterMismatch",
            Self::ConnectionNotShareable(_) => "ConnectionNotShareable",
            Self::ShareRecipientNotServicePrincipal(_) => "ShareRecipientNotServicePrincipal",
            Self::SharePrincipalNotFound(_) => "SharePrincipalNotFound",
            Self::CanViewWithShareNotAllowed => "CanViewWithShareNotAllowed",
            Self::InvalidPermissionRole(_) => "InvalidPermissionRole",
            Self::OwnerPermissionCannotBeRemoved => "OwnerPermissionCannotBeRemoved",
            Self::InvalidName(_) | Self::NameRequired { .. } => "0x80040203",
            Self::DefaultGroupByHand => "0x80060888",
            Self::DuplicateRecord(_) => "0x80040237",
            Self::RecordNotFound { .. } => "0x80040217",
            Self::MissingPrivilege { .. } | Self::GrantBeyondHeld { .. } => "0x80040220",
            Self::GroupHasMachines { .. } => "MachineGroupNotEmpty",
            Self::NotOrganizationMember(_) => "0x80072560",
            Self::AttributeRequired { .. } => "0x80040203",
            Self::CredentialTypeNotEmulated(_) => "CredentialTypeNotEmulated",
            Self::CredentialVariableMismatch { .. } => "CredentialVariableMismatch",
            Self::InvalidKeyVaultReference(_) => "InvalidKeyVaultReference",
            Self::SecretVariableDefaultValue(_) => "SecretVariableDefaultValue",
            Self::VariableValueExists { .. } => "EnvironmentVariableValueExists",
            Self::DuplicateSchemaName(_) => "0x80040237",
            Self::VariableTypeNotEmulated(_) => "EnvironmentVariableTypeNotEmulated",
            Self::VariableFixedColumn(_) => "EnvironmentVariableColumnFixed",
            Self::InvalidRunParameter(_) => "0x80040203",
            Self::ConnectionNotUsableForRuns { .. } => "ConnectionNotUsableForRuns",
            Self::RunAlreadyEnded(_) => "FlowSessionAlreadyEnded",
        }
    }
}
