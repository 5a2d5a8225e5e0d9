//! Which group a machine is in, and how it changes: adding a machine to a group and taking it
//! out (Co-owner of both), silent registration by a service principal, and the control
//! surface's edits of a machine's facts (join state, allowlist, accounts, …).
//!
//! A stand-alone machine lives in its own Default group. When it joins a group, that Default
//! group goes, so connections that targeted the machine break (PAD-MG): their status becomes
//! `XrmMachineGroupNotFound`. Taking a machine out of a group gives it a new Default group.

use super::Error;
use super::access::{Rights, merged};
use super::connection::Caller;
use super::ids::{AppId, EnvironmentId, MachineGroupId, MachineId, PrincipalId, TenantId};
use super::machine::require;
use super::world::{
    GroupType, JoinType, Machine, MachineGroup, PrincipalKind, Session, WindowsAccount, WindowsEdition, World,
};

/// Machines a group may hold (PAD-MG).
pub const MAX_MACHINES_PER_GROUP: usize = 50;

/// A checked move, ready to apply.
#[derive(Debug, Clone, Copy)]
pub struct Move {
    machine: MachineId,
    to: MachineGroupId,
    /// The Default group the machine leaves, which goes with the move.
    drop_default: Option<MachineGroupId>,
}

impl World {
    /// Checks that the caller may put `machine` into `group` (Co-owner or owner of both; a
    /// Standard group with room), without changing anything.
    pub fn plan_move(
        &self,
        caller: &Caller,
        env: &EnvironmentId,
        machine: MachineId,
        group: MachineGroupId,
    ) -> Result<Move, Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let m = e.machine(machine).ok_or(Error::RecordNotFound { entity: "flowmachine", id: machine.to_string() })?;
        let g = e.group(group).ok_or(Error::RecordNotFound { entity: "flowmachinegroup", id: group.to_string() })?;
        let who = e.dataverse_id(caller.principal);
        let machine_rights = e.machine_rights(m, caller.principal);
        require(machine_rights, Rights::WRITE, "prvWriteflowmachine", "flowmachine", &machine.to_string(), &who)?;
        let group_rights = e.group_rights(g, caller.principal);
        let (privilege, entity) = ("prvAppendToflowmachinegroup", "flowmachinegroup");
        require(group_rights, Rights::WRITE, privilege, entity, &group.to_string(), &who)?;
        if m.group != group && g.group_type == GroupType::Default {
            return Err(Error::DefaultGroupMembership(group.to_string()));
        }
        let members = e.machines.iter().filter(|x| x.group == group && x.id != machine).count();
        if members >= MAX_MACHINES_PER_GROUP {
            return Err(Error::MachineGroupFull { group: group.to_string(), limit: MAX_MACHINES_PER_GROUP });
        }
        let drop_default =
            e.group(m.group).filter(|old| old.group_type == GroupType::Default && old.id != group).map(|old| old.id);
        Ok(Move { machine, to: group, drop_default })
    }

    /// Applies a checked move.
    pub fn apply_move(&mut self, env: &EnvironmentId, mv: Move) {
        let Some(e) = self.environments.iter_mut().find(|e| &e.id == env) else { return };
        // The Default group's shares were the stand-alone machine's: they stay with the machine.
        let unit_shares = mv
            .drop_default
            .and_then(|old| e.machine_groups.iter().find(|g| g.id == old))
            .map(|g| g.shares.clone())
            .unwrap_or_default();
        if let Some(m) = e.machines.iter_mut().find(|m| m.id == mv.machine) {
            if m.group != mv.to {
                m.version += 1;
            }
            m.group = mv.to;
            m.shares = merged(&m.shares, &unit_shares);
        }
        if let Some(old) = mv.drop_default {
            e.machine_groups.retain(|g| g.id != old);
        }
    }

    /// `LeaveGroup`: takes a machine out of its group; it becomes stand-alone again in a new
    /// Default group (`default_group`), owned by the machine's owner.
    pub fn leave_group(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        machine: MachineId,
        default_group: MachineGroupId,
    ) -> Result<&Machine, Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let m = e.machine(machine).ok_or(Error::RecordNotFound { entity: "flowmachine", id: machine.to_string() })?;
        let g =
            e.group(m.group).ok_or(Error::RecordNotFound { entity: "flowmachinegroup", id: m.group.to_string() })?;
        if g.group_type == GroupType::Default {
            return Err(Error::NotInAGroup(machine.to_string()));
        }
        // Removing a member is a group write (Co-owner), as the portal's role table has it.
        require(
            e.group_rights(g, caller.principal),
            Rights::WRITE,
            "prvWriteflowmachinegroup",
            "flowmachinegroup",
            &g.id.to_string(),
            &e.dataverse_id(caller.principal),
        )?;
        self.detach_machine(machine, default_group)
            .ok_or(Error::RecordNotFound { entity: "flowmachine", id: machine.to_string() })
    }

    /// A share of a group with a principal is gone (the control surface's `removeShare`, as if
    /// revoked in the portal); its machines lose it with it. False when there was none.
    pub fn remove_share(&mut self, group: MachineGroupId, principal: PrincipalId) -> bool {
        let Some(g) = self.environments.iter_mut().flat_map(|e| e.machine_groups.iter_mut()).find(|g| g.id == group)
        else {
            return false;
        };
        let before = g.shares.len();
        g.shares.retain(|s| s.grantee != super::access::Grantee::Principal(principal));
        let removed = g.shares.len() != before;
        if removed {
            g.version += 1;
        }
        removed
    }

    /// A machine leaves its Standard group with no one asking (the control surface's
    /// `group: null`, as if done on the machine): it becomes stand-alone again in a new Default
    /// group (`default_group`). `None` when the machine is unknown or already alone.
    pub fn detach_machine(&mut self, machine: MachineId, default_group: MachineGroupId) -> Option<&Machine> {
        let e = self.environments.iter_mut().find(|e| e.machines.iter().any(|m| m.id == machine))?;
        let m = e.machines.iter().find(|m| m.id == machine)?;
        if e.group(m.group).is_none_or(|g| g.group_type == GroupType::Default) {
            return None;
        }
        // Alone again, the machine is one unit with its new Default group, which takes its shares.
        let mut alone = MachineGroup::default_for(default_group, &m.name, m.owner);
        alone.shares = m.shares.clone();
        e.machine_groups.push(alone);
        let m = e.machines.iter_mut().find(|m| m.id == machine)?;
        m.group = default_group;
        m.shares.clear();
        m.version += 1;
        Some(m)
    }

    /// Silent registration (`PAD.MachineRegistration.Silent.exe`, here a control call): a
    /// service principal registers a machine into a group it may use, or alone in a new
    /// Default group; it owns the machine.
    pub fn register_machine(
        &mut self,
        registrant: &Caller,
        env: &EnvironmentId,
        r: Registration,
    ) -> Result<&Machine, Error> {
        if registrant.kind != PrincipalKind::ServicePrincipal {
            return Err(Error::RegistrationNeedsServicePrincipal);
        }
        self.member(env, registrant)?;
        let e = self.environment_for(env, registrant)?;
        if e.machine(r.id).is_some() {
            return Err(Error::DuplicateRecord(r.id.to_string()));
        }
        if let Some(g) = r.group {
            let group = e.group(g).ok_or(Error::RecordNotFound { entity: "flowmachinegroup", id: g.to_string() })?;
            if group.group_type == GroupType::Default {
                return Err(Error::DefaultGroupMembership(g.to_string()));
            }
            if !e.may_use_group(g, registrant.principal) {
                return Err(Error::RegistrationForbidden { group: g.to_string() });
            }
            if e.machines.iter().filter(|m| m.group == g).count() >= MAX_MACHINES_PER_GROUP {
                return Err(Error::MachineGroupFull { group: g.to_string(), limit: MAX_MACHINES_PER_GROUP });
            }
        }
        let e = self.environment_for_mut(env, registrant)?;
        let group = match r.group {
            Some(g) => g,
            None => {
                e.machine_groups.push(MachineGroup::default_for(r.default_group, &r.name, registrant.principal));
                r.default_group
            }
        };
        e.machines.push(Machine::registered(r.id, r.name, group, registrant.principal, r.facts));
        Ok(e.machines.last().expect("just pushed"))
    }

    /// The control surface's edit of a machine's facts (what changes on the real machine:
    /// a rotated password, a new join state, an allowlisted tenant, the agent going offline).
    pub fn patch_machine(&mut self, machine: MachineId, facts: MachineFacts) -> Option<&Machine> {
        let m = self.environments.iter_mut().flat_map(|e| e.machines.iter_mut()).find(|m| m.id == machine)?;
        facts.apply(m);
        m.version += 1;
        Some(m)
    }

    /// The service principal of `tenant` that a registration names by client id (`-applicationid`), as a caller.
    pub fn registrant(&self, tenant: TenantId, app_id: AppId) -> Option<Caller> {
        let sp = self.service_principal(tenant, app_id)?;
        self.caller(tenant, sp.object_id, Some(app_id))
    }
}

/// Facts of a machine that the control surface may set; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct MachineFacts {
    /// Join state.
    pub join_type: Option<JoinType>,
    /// Entra synchronised.
    pub entra_synced: Option<bool>,
    /// `AllowedRegistrationTenants`.
    pub allowed_tenants: Option<Vec<TenantId>>,
    /// Older sign-in error text.
    pub legacy_sign_in_error: Option<bool>,
    /// Edition.
    pub windows_edition: Option<WindowsEdition>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Session capacity.
    pub session_capacity: Option<u32>,
    /// Online.
    pub online: Option<bool>,
    /// Maintenance.
    pub maintenance: Option<bool>,
    /// Windows accounts (replaces the list: how a rotated password is shown).
    pub windows_accounts: Option<Vec<WindowsAccount>>,
    /// Windows user sessions (replaces the list: `[]` signs everybody out).
    pub sessions: Option<Vec<Session>>,
}

/// The agent version a machine registered through Dataverse or the control surface reports.
pub const DEFAULT_AGENT_VERSION: &str = "2.50.139.24296";

impl MachineFacts {
    /// Sets on `m` every fact given.
    pub fn apply(self, m: &mut Machine) {
        let Self {
            join_type,
            entra_synced,
            allowed_tenants,
            legacy_sign_in_error,
            windows_edition,
            agent_version,
            session_capacity,
            online,
            maintenance,
            windows_accounts,
            sessions,
        } = self;
        if let Some(v) = join_type {
            m.join_type = v;
        }
        if let Some(v) = entra_synced {
            m.entra_synced = v;
        }
        if let Some(v) = allowed_tenants {
            m.allowed_tenants = v;
        }
        if let Some(v) = legacy_sign_in_error {
            m.legacy_sign_in_error = v;
        }
        if let Some(v) = windows_edition {
            m.windows_edition = v;
        }
        if let Some(v) = agent_version {
            m.agent_version = v;
        }
        if let Some(v) = session_capacity {
            m.session_capacity = v;
        }
        if let Some(v) = online {
            m.online = v;
        }
        if let Some(v) = maintenance {
            m.maintenance = v;
        }
        if let Some(v) = windows_accounts {
            m.windows_accounts = v;
        }
        if let Some(v) = sessions {
            m.sessions = v;
        }
    }
}

impl Machine {
    /// A newly registered machine: the fixture format's defaults (a workgroup Windows client,
    /// one session, online), with `facts` over them.
    pub fn registered(
        id: MachineId,
        name: String,
        group: MachineGroupId,
        owner: PrincipalId,
        facts: MachineFacts,
    ) -> Self {
        let mut m = Machine {
            id,
            name,
            group,
            owner,
            join_type: JoinType::Workgroup,
            entra_synced: true,
            allowed_tenants: Vec::new(),
            legacy_sign_in_error: false,
            windows_edition: WindowsEdition::Client,
            agent_version: DEFAULT_AGENT_VERSION.to_owned(),
            session_capacity: 1,
            online: true,
            maintenance: false,
            windows_accounts: Vec::new(),
            shares: Vec::new(),
            version: 1,
            description: None,
            sessions: Vec::new(),
        };
        facts.apply(&mut m);
        m
    }
}

/// A silent registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The new machine's id.
    pub id: MachineId,
    /// Its name.
    pub name: String,
    /// The group to join (`-groupid`), or `None` for a stand-alone machine.
    pub group: Option<MachineGroupId>,
    /// The Default group's id when stand-alone.
    pub default_group: MachineGroupId,
    /// The machine's facts.
    pub facts: MachineFacts,
}
