//! `domain::Error`: one variant per rule that can be broken, each with its code. Messages
//! that Microsoft documents are reproduced word for word; codes the mock makes up are marked
//! (mock-defined) here and in `docs/errors.md`.

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
}

impl Error {
    /// The error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Clock(_) => "InvalidClockChange",
            Self::EnvironmentNotFound { .. } => "ServiceToServiceEnvironmentNotFound",
            Self::CrossTenantAccess { .. } | Self::ConnectionAuthorizationFailed { .. } => {
                "ConnectionAuthorizationFailed"
            }
            Self::ConnectionNotFound(_) => "ConnectionNotFound",
            Self::ConnectorNotFound(_) => "ConnectorNotFound",
            Self::EnvironmentMismatch { .. } => "EnvironmentMismatch",
            Self::TargetGroupNotFound { .. } => "TargetGroupNotFound",
            Self::VersionMismatch => "0x80060882",
            Self::InvalidName(_) | Self::NameRequired { .. } => "0x80040203",
            Self::DefaultGroupByHand => "0x80060888",
            Self::DuplicateRecord(_) => "0x80040237",
            Self::RecordNotFound { .. } => "0x80040217",
            Self::MissingPrivilege { .. } => "0x80040220",
            Self::GroupHasMachines { .. } => "MachineGroupNotEmpty",
            Self::NotOrganizationMember(_) => "0x80072560",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Clock(_) | Self::EnvironmentMismatch { .. } | Self::TargetGroupNotFound { .. } => 400,
            Self::InvalidName(_)
            | Self::GroupHasMachines { .. }
            | Self::NameRequired { .. }
            | Self::DefaultGroupByHand => 400,
            Self::VersionMismatch | Self::DuplicateRecord(_) => 412,
            Self::RecordNotFound { .. } => 404,
            Self::MissingPrivilege { .. } | Self::NotOrganizationMember(_) => 403,
            Self::CrossTenantAccess { .. } | Self::ConnectionAuthorizationFailed { .. } => 403,
            Self::EnvironmentNotFound { .. } | Self::ConnectionNotFound(_) | Self::ConnectorNotFound(_) => 404,
        }
    }
}
