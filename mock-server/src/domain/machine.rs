//! Machines and machine groups as Dataverse rows: who may read them, and creating, renaming
//! and deleting them. Sharing rules (User reads and runs; Co-owner also edits, deletes and
//! manages membership) follow DECISIONS.md.

use super::Error;
use super::access::Rights;
use super::connection::Caller;
use super::id_gen::IdGenerator;
use super::ids::{EnvironmentId, MachineGroupId, MachineId, PrincipalId, SystemUserId};
use super::membership::MachineFacts;
use super::world::{Environment, GroupType, Machine, MachineGroup, PrincipalKind, World, environment_not_found};

/// Changes to a group or machine row.
#[derive(Debug, Clone, Default)]
pub struct RowChange {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<Option<String>>,
}

/// A machine row to create.
#[derive(Debug, Clone)]
pub struct NewMachine {
    /// Its id.
    pub id: MachineId,
    /// Name (required; `None` is refused by name).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// The group to join; `None` makes a stand-alone machine in a new Default group.
    pub group: Option<MachineGroupId>,
    /// The id of that Default group, when one is made.
    pub default_group: MachineGroupId,
}

/// A group row to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Its id.
    pub id: MachineGroupId,
    /// Name (required; `None` is refused by name).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Kind asked for; only `Standard` can be made by hand.
    pub group_type: GroupType,
}

/// A PATCH of a row: an update, or (Dataverse's upsert) a create when the row is missing and
/// no `If-Match` was sent.
#[derive(Debug, Clone)]
pub struct Upsert<Id> {
    /// The row.
    pub id: Id,
    /// What to write.
    pub change: RowChange,
    /// `If-Match`.
    pub expect: Expect,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A new row.
    Created,
    /// An existing row changed.
    Updated,
}

/// The row version a client expects (`If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No `If-Match`.
    Any,
    /// `If-Match: *`: the row must exist.
    Exists,
    /// `If-Match: W/"N"`.
    Version(u64),
}

/// `needed` must be held (Co-owner or owner for writes); a row the caller cannot read does
/// not exist for it, and one it can only read lacks the privilege.
pub(super) fn require(
    rights: Rights,
    needed: Rights,
    privilege: &'static str,
    entity: &'static str,
    id: &str,
    who: &str,
) -> Result<(), Error> {
    if !rights.contains(Rights::READ) {
        return Err(Error::RecordNotFound { entity, id: id.to_owned() });
    }
    if rights.contains(needed) { Ok(()) } else { Err(Error::MissingPrivilege { privilege, principal: who.to_owned() }) }
}

pub(super) fn check_version(expect: Expect, version: u64) -> Result<(), Error> {
    match expect {
        Expect::Version(v) if v != version => Err(Error::VersionMismatch),
        _ => Ok(()),
    }
}

pub(super) fn validate_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(Error::InvalidName(name.chars().take(120).collect()));
    }
    Ok(())
}

impl Environment {
    /// How Dataverse names a principal in messages: its `systemuserid`, else its object id.
    pub fn dataverse_id(&self, principal: PrincipalId) -> String {
        self.system_user_of(principal).map_or_else(|| principal.to_string(), |s| s.to_string())
    }

    /// The `systemuserid` that stands for a principal in this environment.
    pub fn system_user_of(&self, principal: PrincipalId) -> Option<SystemUserId> {
        self.system_users.iter().find(|s| s.principal == principal).map(|s| s.id)
    }
}

impl World {
    /// The caller's `systemuserid` in an environment (Dataverse refuses principals without one).
    pub fn member(&self, env: &EnvironmentId, caller: &Caller) -> Result<SystemUserId, Error> {
        let e = self.environment(env).ok_or_else(|| environment_not_found(env, caller))?;
        // An application user is found by the token's app id (`systemuser.applicationid`).
        let by_app = || {
            let app = caller.app_id?;
            let sp = self.service_principals.iter().find(|s| s.app_id == app && s.tenant == caller.tenant)?;
            e.system_user_of(sp.object_id)
        };
        let found = match caller.kind {
            PrincipalKind::ServicePrincipal => by_app(),
            PrincipalKind::User => e.system_user_of(caller.principal),
        };
        found.ok_or(Error::NotOrganizationMember(caller.principal.to_string()))
    }

    /// Creates a Standard group owned by the caller.
    pub fn create_machine_group(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        new: NewGroup,
    ) -> Result<&MachineGroup, Error> {
        self.member(env, caller)?;
        let NewGroup { id, name, description, group_type } = new;
        let name = name.ok_or(Error::NameRequired { entity: "flowmachinegroup" })?;
        if group_type != GroupType::Standard {
            return Err(Error::DefaultGroupByHand);
        }
        validate_name(&name)?;
        let e = self.environment_for_mut(env, caller)?;
        if e.machine_groups.iter().any(|g| g.id == id) {
            return Err(Error::DuplicateRecord(id.to_string()));
        }
        e.machine_groups.push(MachineGroup {
            id,
            name,
            group_type: GroupType::Standard,
            owner: caller.principal,
            shares: Vec::new(),
            version: 1,
            description,
        });
        Ok(e.machine_groups.last().expect("just pushed"))
    }

    /// PATCH of a group: updates it, or creates it when missing and no `If-Match` was sent.
    pub fn upsert_machine_group(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        up: Upsert<MachineGroupId>,
    ) -> Result<(Written, &MachineGroup), Error> {
        let missing = self.environment(env).is_some_and(|e| !e.machine_groups.iter().any(|g| g.id == up.id));
        if missing && up.expect == Expect::Any {
            let new = NewGroup {
                id: up.id,
                name: up.change.name,
                description: up.change.description.flatten(),
                group_type: GroupType::Standard,
            };
            return Ok((Written::Created, self.create_machine_group(caller, env, new)?));
        }
        Ok((Written::Updated, self.update_machine_group(caller, env, up.id, up.change, up.expect)?))
    }

    /// PATCH of a machine: updates it, or creates it (in `group`, or alone in a new Default
    /// group whose id comes from `ids`) when missing and no `If-Match` was sent.
    pub fn upsert_machine(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        up: Upsert<MachineId>,
        group: Option<MachineGroupId>,
        ids: &mut IdGenerator,
    ) -> Result<(Written, &Machine), Error> {
        let missing = self.environment(env).is_some_and(|e| !e.machines.iter().any(|m| m.id == up.id));
        if missing && up.expect == Expect::Any {
            let new = NewMachine {
                id: up.id,
                name: up.change.name,
                description: up.change.description.flatten(),
                group,
                default_group: MachineGroupId::from_uuid(ids.next_id()),
            };
            return Ok((Written::Created, self.create_machine(caller, env, new)?));
        }
        // A group bind on an existing machine adds it to that group: checked before the
        // row changes, applied after, so a refusal writes nothing.
        let planned = match group {
            Some(g) if self.environment(env).is_some_and(|e| e.machines.iter().any(|m| m.id == up.id)) => {
                Some(self.plan_move(caller, env, up.id, g)?)
            }
            _ => None,
        };
        self.update_machine(caller, env, up.id, up.change, up.expect)?;
        if let Some(mv) = planned {
            self.apply_move(env, mv);
        }
        let m = self
            .environment(env)
            .and_then(|e| e.machine(up.id))
            .ok_or(Error::RecordNotFound { entity: "flowmachine", id: up.id.to_string() })?;
        Ok((Written::Updated, m))
    }

    /// Renames or re-describes a group (owner or Co-owner).
    pub fn update_machine_group(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: MachineGroupId,
        change: RowChange,
        expect: Expect,
    ) -> Result<&MachineGroup, Error> {
        self.member(env, caller)?;
        if let Some(n) = &change.name {
            validate_name(n)?;
        }
        let e = self.environment_for_mut(env, caller)?;
        let i = e
            .machine_groups
            .iter()
            .position(|g| g.id == id)
            .ok_or(Error::RecordNotFound { entity: "flowmachinegroup", id: id.to_string() })?;
        require(
            e.group_rights(&e.machine_groups[i], caller.principal),
            Rights::WRITE,
            "prvWriteflowmachinegroup",
            "flowmachinegroup",
            &id.to_string(),
            &e.dataverse_id(caller.principal),
        )?;
        let g = &mut e.machine_groups[i];
        check_version(expect, g.version)?;
        if let Some(n) = change.name {
            g.name = n;
        }
        if let Some(d) = change.description {
            g.description = d;
        }
        g.version += 1;
        Ok(g)
    }

    /// Deletes a group: owner or Co-owner, and only when it holds no machine (Delete: Restrict).
    pub fn delete_machine_group(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: MachineGroupId,
        expect: Expect,
    ) -> Result<(), Error> {
        self.member(env, caller)?;
        let e = self.environment_for_mut(env, caller)?;
        let g = e
            .machine_groups
            .iter()
            .find(|g| g.id == id)
            .ok_or(Error::RecordNotFound { entity: "flowmachinegroup", id: id.to_string() })?;
        require(
            e.group_rights(g, caller.principal),
            Rights::DELETE,
            "prvDeleteflowmachinegroup",
            "flowmachinegroup",
            &id.to_string(),
            &e.dataverse_id(caller.principal),
        )?;
        check_version(expect, g.version)?;
        let members = e.machines.iter().filter(|m| m.group == id).count();
        if members > 0 {
            return Err(Error::GroupHasMachines { group: id.to_string(), machines: members });
        }
        e.machine_groups.retain(|g| g.id != id);
        Ok(())
    }

    /// Creates a machine row: in `group` (owner or Co-owner of it), or alone in a new Default
    /// group, as a registration does. The caller owns it.
    pub fn create_machine(&mut self, caller: &Caller, env: &EnvironmentId, new: NewMachine) -> Result<&Machine, Error> {
        self.member(env, caller)?;
        let NewMachine { id, name, description, group, default_group } = new;
        let name = name.ok_or(Error::NameRequired { entity: "flowmachine" })?;
        validate_name(&name)?;
        let e = self.environment_for_mut(env, caller)?;
        if e.machines.iter().any(|m| m.id == id) {
            return Err(Error::DuplicateRecord(id.to_string()));
        }
        let group = match group {
            Some(gid) => {
                let g = e
                    .machine_groups
                    .iter()
                    .find(|g| g.id == gid)
                    .ok_or(Error::RecordNotFound { entity: "flowmachinegroup", id: gid.to_string() })?;
                require(
                    e.group_rights(g, caller.principal),
                    Rights::WRITE,
                    "prvAppendToflowmachinegroup",
                    "flowmachinegroup",
                    &gid.to_string(),
                    &e.dataverse_id(caller.principal),
                )?;
                gid
            }
            None => {
                e.machine_groups.push(MachineGroup::default_for(default_group, &name, caller.principal));
                default_group
            }
        };
        // A row made through Dataverse knows nothing of the real machine: not synchronised.
        let facts = MachineFacts { entra_synced: Some(false), ..MachineFacts::default() };
        let mut m = Machine::registered(id, name, group, caller.principal, facts);
        m.description = description;
        e.machines.push(m);
        Ok(e.machines.last().expect("just pushed"))
    }

    /// Renames or re-describes a machine (its owner, or owner/Co-owner of its group).
    pub fn update_machine(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: MachineId,
        change: RowChange,
        expect: Expect,
    ) -> Result<&Machine, Error> {
        self.member(env, caller)?;
        if let Some(n) = &change.name {
            validate_name(n)?;
        }
        let e = self.environment_for_mut(env, caller)?;
        let i = e
            .machines
            .iter()
            .position(|m| m.id == id)
            .ok_or(Error::RecordNotFound { entity: "flowmachine", id: id.to_string() })?;
        require(
            e.machine_rights(&e.machines[i], caller.principal),
            Rights::WRITE,
            "prvWriteflowmachine",
            "flowmachine",
            &id.to_string(),
            &e.dataverse_id(caller.principal),
        )?;
        let m = &mut e.machines[i];
        check_version(expect, m.version)?;
        if let Some(n) = change.name {
            m.name = n;
        }
        if let Some(d) = change.description {
            m.description = d;
        }
        m.version += 1;
        Ok(m)
    }

    /// Deletes a machine; a stand-alone machine's Default group goes with it.
    pub fn delete_machine(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: MachineId,
        expect: Expect,
    ) -> Result<(), Error> {
        self.member(env, caller)?;
        let e = self.environment_for_mut(env, caller)?;
        let m = e
            .machines
            .iter()
            .find(|m| m.id == id)
            .ok_or(Error::RecordNotFound { entity: "flowmachine", id: id.to_string() })?;
        require(
            e.machine_rights(m, caller.principal),
            Rights::DELETE,
            "prvDeleteflowmachine",
            "flowmachine",
            &id.to_string(),
            &e.dataverse_id(caller.principal),
        )?;
        check_version(expect, m.version)?;
        let group = m.group;
        let default = e.machine_groups.iter().any(|g| g.id == group && g.group_type == GroupType::Default);
        e.machines.retain(|m| m.id != id);
        if default {
            e.machine_groups.retain(|g| g.id != group);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_world::*;

    #[test]
    fn a_group_with_machines_cannot_be_deleted_and_an_empty_one_can() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let env = EnvironmentId::parse(ENV).unwrap();
        let finance = MachineGroupId::parse("42e26112-838c-471b-b09f-958e640e9303").unwrap();
        assert!(matches!(
            w.delete_machine_group(&megan, &env, finance, Expect::Any),
            Err(Error::GroupHasMachines { machines: 2, .. })
        ));
        let id = MachineGroupId::parse("00000000-0000-0000-0000-00000000aaaa").unwrap();
        let new = NewGroup { id, name: Some("Empty".into()), description: None, group_type: GroupType::Standard };
        w.create_machine_group(&megan, &env, new).unwrap();
        w.delete_machine_group(&megan, &env, id, Expect::Exists).unwrap();
    }

    #[test]
    fn a_user_share_reads_but_may_not_rename_or_delete() {
        let mut w = world();
        let sp = caller(&w, SP);
        let env = EnvironmentId::parse(ENV).unwrap();
        let finance = MachineGroupId::parse("42e26112-838c-471b-b09f-958e640e9303").unwrap();
        let e = w.environment(&env).unwrap();
        assert_eq!(e.group_rights(e.group(finance).unwrap(), sp.principal), Rights::USER);
        let change = RowChange { name: Some("x".into()), ..Default::default() };
        assert!(matches!(
            w.update_machine_group(&sp, &env, finance, change, Expect::Any),
            Err(Error::MissingPrivilege { .. })
        ));
        let hr = MachineGroupId::parse("d8ffb0fe-5a78-4d28-abf4-b5c4167600be").unwrap();
        assert!(
            matches!(w.delete_machine_group(&sp, &env, hr, Expect::Any), Err(Error::RecordNotFound { .. })),
            "an unshared group is invisible"
        );
    }

    #[test]
    fn a_patch_creates_a_missing_group_only_without_if_match_and_needs_a_name() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let env = EnvironmentId::parse(ENV).unwrap();
        let id = MachineGroupId::parse("00000000-0000-0000-0000-00000000dddd").unwrap();
        let up = |expect, name: Option<&str>| Upsert {
            id,
            change: RowChange { name: name.map(str::to_owned), ..Default::default() },
            expect,
        };
        assert!(matches!(
            w.upsert_machine_group(&megan, &env, up(Expect::Exists, Some("G"))),
            Err(Error::RecordNotFound { .. })
        ));
        assert!(matches!(w.upsert_machine_group(&megan, &env, up(Expect::Any, None)), Err(Error::NameRequired { .. })));
        assert_eq!(w.upsert_machine_group(&megan, &env, up(Expect::Any, Some("G"))).unwrap().0, Written::Created);
        assert_eq!(w.upsert_machine_group(&megan, &env, up(Expect::Any, Some("H"))).unwrap().0, Written::Updated);
        let default = NewGroup { id, name: Some("D".into()), description: None, group_type: GroupType::Default };
        assert!(matches!(w.create_machine_group(&megan, &env, default), Err(Error::DefaultGroupByHand)));
    }

    #[test]
    fn a_stale_version_is_refused_and_a_fresh_one_bumps_it() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let env = EnvironmentId::parse(ENV).unwrap();
        let hr = MachineGroupId::parse("d8ffb0fe-5a78-4d28-abf4-b5c4167600be").unwrap();
        let rename = |n: &str| RowChange { name: Some(n.into()), ..Default::default() };
        assert_eq!(w.update_machine_group(&megan, &env, hr, rename("HR"), Expect::Version(1)).unwrap().version, 2);
        assert!(matches!(
            w.update_machine_group(&megan, &env, hr, rename("HR2"), Expect::Version(1)),
            Err(Error::VersionMismatch)
        ));
    }

    #[test]
    fn a_machine_created_alone_gets_its_own_default_group_which_goes_with_it() {
        let mut w = world();
        let sp = caller(&w, SP);
        let env = EnvironmentId::parse(ENV).unwrap();
        let mid = MachineId::parse("00000000-0000-0000-0000-00000000bbbb").unwrap();
        let gid = MachineGroupId::parse("00000000-0000-0000-0000-00000000cccc").unwrap();
        assert_eq!(
            w.create_machine(
                &sp,
                &env,
                NewMachine { id: mid, name: Some("SP-01".into()), description: None, group: None, default_group: gid }
            )
            .unwrap()
            .group,
            gid
        );
        assert_eq!(
            w.environment(&env).unwrap().machine_groups.iter().find(|g| g.id == gid).unwrap().owner,
            sp.principal
        );
        w.delete_machine(&sp, &env, mid, Expect::Any).unwrap();
        assert!(!w.environment(&env).unwrap().machine_groups.iter().any(|g| g.id == gid));
    }
}
