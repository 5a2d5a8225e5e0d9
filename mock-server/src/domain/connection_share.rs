//! Sharing desktop-flow connections (`…/permissions`, `…/modifyPermissions`). Desktop-flow
//! connections are not shareable, except those with an explicit run owner, and then only
//! with service principals, as "Can use" (`CanView`) or "Can edit" (`CanEdit`)
//! (PAD-CONN, PAD-RUNOWNER). Each broken rule has its own mock-defined code.

use super::Error;
use super::connection::{Caller, ConnectionId, ConnectionRole, ConnectionShare};
use super::ids::{EnvironmentId, PrincipalId};
use super::world::World;

/// One entry of `modifyPermissions`' `put`.
#[derive(Debug, Clone)]
pub struct PermissionPut {
    /// `principal.id` as given.
    pub principal: String,
    /// `principal.type` as given (`ServicePrincipal`, `User`, `Group`, `Tenant`).
    pub principal_type: String,
    /// `roleName` as given.
    pub role: String,
}

/// A `modifyPermissions` body.
#[derive(Debug, Clone, Default)]
pub struct PermissionChange {
    /// Shares to add or change.
    pub put: Vec<PermissionPut>,
    /// Permission names to remove (the last segment of each `id`).
    pub delete: Vec<String>,
}

fn role(name: &str) -> Result<ConnectionRole, Error> {
    match name {
        "CanView" => Ok(ConnectionRole::CanView),
        "CanEdit" => Ok(ConnectionRole::CanEdit),
        "CanViewWithShare" => Err(Error::CanViewWithShareNotAllowed),
        other => Err(Error::InvalidPermissionRole(other.chars().take(80).collect())),
    }
}

impl World {
    fn recipient(&self, caller: &Caller, put: &PermissionPut) -> Result<ConnectionShare, Error> {
        let role = role(&put.role)?;
        let short: String = put.principal.chars().take(80).collect();
        let id = PrincipalId::parse(&put.principal).map_err(|_| Error::SharePrincipalNotFound(short.clone()))?;
        if !put.principal_type.eq_ignore_ascii_case("ServicePrincipal") || self.user(id).is_some() {
            return Err(Error::ShareRecipientNotServicePrincipal(short));
        }
        let known = self.service_principals.iter().any(|s| s.object_id == id && s.tenant == caller.tenant);
        if !known {
            return Err(Error::SharePrincipalNotFound(short));
        }
        Ok(ConnectionShare { principal: id, role })
    }

    /// Applies `modifyPermissions`: the owner shares a run-owner connection with service
    /// principals, or removes shares. Everything is checked before anything changes.
    pub fn modify_permissions(
        &mut self,
        caller: &Caller,
        environment: &EnvironmentId,
        connector: &str,
        id: &ConnectionId,
        change: &PermissionChange,
    ) -> Result<(), Error> {
        let c = self.connection(caller, environment, connector, id)?;
        if c.created_by.principal != caller.principal {
            return Err(Error::ConnectionAccessDenied {
                connection: c.id.as_written().to_owned(),
                reason: "only its owner shares it",
            });
        }
        if c.parameters.run_owner().is_none() {
            return Err(Error::ConnectionNotShareable(c.id.as_written().to_owned()));
        }
        let owner = c.created_by.principal.to_string();
        let shares = change.put.iter().map(|p| self.recipient(caller, p)).collect::<Result<Vec<_>, _>>()?;
        if change.delete.iter().any(|d| d.eq_ignore_ascii_case(&owner)) {
            return Err(Error::OwnerPermissionCannotBeRemoved);
        }
        let Some(c) = self.connections.get_mut(environment, id) else {
            return Err(Error::ConnectionNotFound(id.as_written().to_owned()));
        };
        c.shares.retain(|s| !change.delete.iter().any(|d| d.eq_ignore_ascii_case(&s.principal.to_string())));
        for s in shares {
            match c.shares.iter_mut().find(|x| x.principal == s.principal) {
                Some(x) => x.role = s.role,
                None => c.shares.push(s),
            }
        }
        Ok(())
    }
}
