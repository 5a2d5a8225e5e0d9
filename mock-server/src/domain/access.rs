//! Who may do what to a machine, a machine group or a credential: access rights from ownership
//! and shares (with users, application users or teams), the cascade from a group to its
//! machines, a stand-alone machine and its Default group as one unit, and the Dataverse sharing
//! messages (`GrantAccess`, `ModifyAccess`, `RevokeAccess`, `RetrieveSharedPrincipalsAndAccess`).
//!
//! DECISIONS.md maps the portal's roles onto access masks: User = `ReadAccess`; Co-owner =
//! `ReadAccess,WriteAccess,DeleteAccess,ShareAccess,AssignAccess`. Reading a group lets a
//! principal create a connection on it; only holders of `ShareAccess` share, and (as in
//! Dataverse) nobody grants a right they do not hold themselves.

use super::Error;
use super::connection::Caller;
use super::ids::{CredentialId, EnvironmentId, MachineGroupId, MachineId, PrincipalId, TeamId};
use super::world::{Environment, GroupType, Machine, MachineGroup, World};

/// A set of Dataverse access rights (`AccessRights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights(u8);

impl Rights {
    /// No rights.
    pub const NONE: Rights = Rights(0);
    /// `ReadAccess`.
    pub const READ: Rights = Rights(1);
    /// `WriteAccess`.
    pub const WRITE: Rights = Rights(2);
    /// `DeleteAccess`.
    pub const DELETE: Rights = Rights(4);
    /// `ShareAccess`.
    pub const SHARE: Rights = Rights(8);
    /// `AssignAccess`.
    pub const ASSIGN: Rights = Rights(16);
    /// `AppendAccess`.
    pub const APPEND: Rights = Rights(32);
    /// `AppendToAccess`.
    pub const APPEND_TO: Rights = Rights(64);
    /// The portal's User role.
    pub const USER: Rights = Rights::READ;
    /// The portal's Co-owner role.
    pub const CO_OWNER: Rights = Rights(1 | 2 | 4 | 8 | 16);
    /// What an owner holds.
    pub const OWNER: Rights = Rights(127);

    const NAMES: [(Rights, &'static str); 7] = [
        (Rights::READ, "ReadAccess"),
        (Rights::WRITE, "WriteAccess"),
        (Rights::APPEND, "AppendAccess"),
        (Rights::APPEND_TO, "AppendToAccess"),
        (Rights::DELETE, "DeleteAccess"),
        (Rights::SHARE, "ShareAccess"),
        (Rights::ASSIGN, "AssignAccess"),
    ];

    /// Parses an `AccessMask`: names separated by commas (`"ReadAccess, WriteAccess"`), or `None`.
    pub fn parse(mask: &str) -> Result<Rights, String> {
        let mut out = Rights::NONE;
        for part in mask.split(',').map(str::trim) {
            if part.eq_ignore_ascii_case("None") {
                continue;
            }
            let (r, _) = Self::NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(part))
                .ok_or_else(|| format!("'{part}' is not an access right"))?;
            out = out.union(*r);
        }
        Ok(out)
    }

    /// The mask as Dataverse renders it (`"ReadAccess, WriteAccess"`, or `None`).
    pub fn names(self) -> String {
        let names: Vec<&str> = Self::NAMES.iter().filter(|(r, _)| self.contains(*r)).map(|(_, n)| *n).collect();
        if names.is_empty() { "None".to_owned() } else { names.join(", ") }
    }

    /// Both sets.
    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// Whether every right of `other` is here.
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The rights of `self` that `other` lacks.
    pub fn minus(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    /// No right at all.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Who a share is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantee {
    /// A user or service principal (a systemuser in Dataverse).
    Principal(PrincipalId),
    /// A Dataverse team: its members hold the rights.
    Team(TeamId),
}

/// A share of a machine or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Recipient.
    pub grantee: Grantee,
    /// Rights granted.
    pub rights: Rights,
}

/// What is shared: a group (cascading to its machines), one machine, or a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareTarget {
    /// `flowmachinegroup`.
    Group(MachineGroupId),
    /// `flowmachine`.
    Machine(MachineId),
    /// `credential`.
    Credential(CredentialId),
}

impl ShareTarget {
    fn entity(self) -> &'static str {
        match self {
            Self::Group(_) => "flowmachinegroup",
            Self::Machine(_) => "flowmachine",
            Self::Credential(_) => "credential",
        }
    }

    fn share_privilege(self) -> &'static str {
        match self {
            Self::Group(_) => "prvShareflowmachinegroup",
            Self::Machine(_) => "prvShareflowmachine",
            Self::Credential(_) => "prvSharecredential",
        }
    }

    fn id(self) -> String {
        match self {
            Self::Group(g) => g.to_string(),
            Self::Machine(m) => m.to_string(),
            Self::Credential(c) => c.to_string(),
        }
    }
}

/// A sharing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// `GrantAccess`: adds rights to the grantee's share.
    Grant(Rights),
    /// `ModifyAccess`: replaces the grantee's rights.
    Modify(Rights),
    /// `RevokeAccess`: removes the grantee's share.
    Revoke,
}

/// The rights a principal holds through shares: its own, and its teams'.
pub(super) fn held(env: &Environment, shares: &[Share], principal: PrincipalId) -> Rights {
    shares
        .iter()
        .filter(|s| match s.grantee {
            Grantee::Principal(p) => p == principal,
            Grantee::Team(t) => env.teams.iter().any(|team| team.id == t && team.members.contains(&principal)),
        })
        .fold(Rights::NONE, |acc, s| acc.union(s.rights))
}

/// Shares of a machine with those of its group merged in (the Share cascade); also how a
/// machine's shares pass to or from its Default group when it joins or leaves a group.
pub(super) fn merged(direct: &[Share], cascaded: &[Share]) -> Vec<Share> {
    let mut out: Vec<Share> = direct.to_vec();
    for s in cascaded {
        match out.iter_mut().find(|o| o.grantee == s.grantee) {
            Some(o) => o.rights = o.rights.union(s.rights),
            None => out.push(s.clone()),
        }
    }
    out
}

impl Environment {
    /// A principal's rights on a group: all as its owner, else what its shares (direct or
    /// through a team) grant.
    pub fn group_rights(&self, g: &MachineGroup, principal: PrincipalId) -> Rights {
        if g.owner == principal { Rights::OWNER } else { held(self, &g.shares, principal) }
    }

    /// A principal's rights on a machine: its own ownership and shares, and its group's.
    pub fn machine_rights(&self, m: &Machine, principal: PrincipalId) -> Rights {
        let own = if m.owner == principal { Rights::OWNER } else { held(self, &m.shares, principal) };
        let via_group = self.group(m.group).map_or(Rights::NONE, |g| self.group_rights(g, principal));
        own.union(via_group)
    }

    /// Whether a principal may target a group with a connection: it can read it (User or Co-owner).
    pub fn may_use_group(&self, group: MachineGroupId, principal: PrincipalId) -> bool {
        self.group(group).is_some_and(|g| self.group_rights(g, principal).contains(Rights::READ))
    }

    /// A group by id.
    pub fn group(&self, id: MachineGroupId) -> Option<&MachineGroup> {
        self.machine_groups.iter().find(|g| g.id == id)
    }

    /// A machine by id.
    pub fn machine(&self, id: MachineId) -> Option<&Machine> {
        self.machines.iter().find(|m| m.id == id)
    }

    fn target_rights(&self, target: ShareTarget, principal: PrincipalId) -> Option<Rights> {
        match target {
            ShareTarget::Group(id) => self.group(id).map(|g| self.group_rights(g, principal)),
            ShareTarget::Machine(id) => self.machine(id).map(|m| self.machine_rights(m, principal)),
            ShareTarget::Credential(id) => self.credential(id).map(|c| self.credential_rights(c, principal)),
        }
    }

    /// Where the shares of a target are kept: a stand-alone machine's on its Default group
    /// (DECISIONS.md: they are one unit), anything else's on itself.
    fn share_home(&self, target: ShareTarget) -> ShareTarget {
        match target {
            ShareTarget::Machine(id) => match self.machine(id).and_then(|m| self.group(m.group)) {
                Some(g) if g.group_type == GroupType::Default => ShareTarget::Group(g.id),
                _ => target,
            },
            ShareTarget::Group(_) | ShareTarget::Credential(_) => target,
        }
    }

    fn shares_mut(&mut self, target: ShareTarget) -> Option<&mut Vec<Share>> {
        match target {
            ShareTarget::Group(id) => self.machine_groups.iter_mut().find(|g| g.id == id).map(|g| &mut g.shares),
            ShareTarget::Machine(id) => self.machines.iter_mut().find(|m| m.id == id).map(|m| &mut m.shares),
            ShareTarget::Credential(id) => self.credentials.iter_mut().find(|c| c.id == id).map(|c| &mut c.shares),
        }
    }

    fn check_grantee(&self, grantee: Grantee) -> Result<(), Error> {
        let known = match grantee {
            Grantee::Principal(p) => self.system_user_of(p).is_some(),
            Grantee::Team(t) => self.teams.iter().any(|team| team.id == t),
        };
        if known {
            return Ok(());
        }
        Err(match grantee {
            Grantee::Principal(p) => Error::RecordNotFound { entity: "systemuser", id: p.to_string() },
            Grantee::Team(t) => Error::RecordNotFound { entity: "team", id: t.to_string() },
        })
    }
}

/// The caller's rights on a target it must at least read; a target it cannot read does not
/// exist for it.
fn visible(env: &Environment, target: ShareTarget, caller: &Caller) -> Result<Rights, Error> {
    let not_found = || Error::RecordNotFound { entity: target.entity(), id: target.id() };
    let rights = env.target_rights(target, caller.principal).ok_or_else(not_found)?;
    if rights.contains(Rights::READ) { Ok(rights) } else { Err(not_found()) }
}

impl World {
    /// Applies a sharing message. Only holders of `ShareAccess` share, and only rights they hold.
    pub fn change_access(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        target: ShareTarget,
        grantee: Grantee,
        change: AccessChange,
    ) -> Result<(), Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        let mine = visible(e, target, caller)?;
        if !mine.contains(Rights::SHARE) {
            let privilege = target.share_privilege();
            return Err(Error::MissingPrivilege { privilege, principal: e.dataverse_id(caller.principal) });
        }
        e.check_grantee(grantee)?;
        if let AccessChange::Grant(r) | AccessChange::Modify(r) = change {
            let beyond = r.minus(mine);
            if !beyond.is_empty() {
                return Err(Error::GrantBeyondHeld {
                    rights: beyond.names(),
                    principal: e.dataverse_id(caller.principal),
                });
            }
        }
        // A stand-alone machine and its Default group are one unit: their shares live on the group.
        let home = e.share_home(target);
        let Some(shares) = self.environments.iter_mut().find(|x| &x.id == env).and_then(|e| e.shares_mut(home)) else {
            return Err(Error::RecordNotFound { entity: target.entity(), id: target.id() });
        };
        let existing = shares.iter().position(|s| s.grantee == grantee);
        match (change, existing) {
            (AccessChange::Revoke, Some(i)) => {
                shares.remove(i);
            }
            (AccessChange::Revoke, None) => {}
            (AccessChange::Grant(r), Some(i)) => shares[i].rights = shares[i].rights.union(r),
            (AccessChange::Modify(r), Some(i)) if r.is_empty() => {
                shares.remove(i);
            }
            (AccessChange::Modify(r), Some(i)) => shares[i].rights = r,
            (AccessChange::Grant(r) | AccessChange::Modify(r), None) if !r.is_empty() => {
                shares.push(Share { grantee, rights: r })
            }
            (AccessChange::Grant(_) | AccessChange::Modify(_), None) => {}
        }
        Ok(())
    }

    /// `RetrieveSharedPrincipalsAndAccess`: the shares of a target the caller can read; a
    /// machine's include those cascading from its group. The owner is not listed.
    pub fn shared_access(
        &self,
        caller: &Caller,
        env: &EnvironmentId,
        target: ShareTarget,
    ) -> Result<Vec<Share>, Error> {
        self.member(env, caller)?;
        let e = self.environment_for(env, caller)?;
        visible(e, target, caller)?;
        Ok(match target {
            ShareTarget::Group(id) => e.group(id).map(|g| g.shares.clone()).unwrap_or_default(),
            ShareTarget::Machine(id) => e
                .machine(id)
                .map(|m| merged(&m.shares, e.group(m.group).map(|g| g.shares.as_slice()).unwrap_or_default()))
                .unwrap_or_default(),
            ShareTarget::Credential(id) => e.credential(id).map(|c| c.shares.clone()).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_world::*;

    const FIN_01: &str = "022701dd-0a3a-4ba3-9dbc-b24e4ec4ae0f";

    fn p(id: &str) -> PrincipalId {
        PrincipalId::parse(id).unwrap()
    }

    fn g(id: &str) -> MachineGroupId {
        MachineGroupId::parse(id).unwrap()
    }

    #[test]
    fn masks_parse_with_or_without_spaces_and_render_as_dataverse_does() {
        let r = Rights::parse("ReadAccess,WriteAccess").unwrap();
        assert_eq!(r, Rights::parse(" writeaccess , ReadAccess").unwrap());
        assert_eq!(r.names(), "ReadAccess, WriteAccess");
        assert_eq!(Rights::parse("None").unwrap().names(), "None");
        assert!(Rights::parse("ReadAccess,FlyAccess").is_err());
        assert_eq!(Rights::CO_OWNER.names(), "ReadAccess, WriteAccess, DeleteAccess, ShareAccess, AssignAccess");
    }

    #[test]
    fn a_team_share_reaches_its_members_only() {
        let w = world();
        let e = w.environment(&env()).unwrap();
        assert!(e.may_use_group(g(HR), p(ADELE)), "Adele is in the team HR bots is shared with");
        assert!(!e.may_use_group(g(HR), p(SP)));
    }

    #[test]
    fn a_group_share_cascades_to_its_machines_and_is_listed_on_them() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let sp = Grantee::Principal(p(SP));
        w.change_access(&megan, &env(), ShareTarget::Group(g(HR)), sp, AccessChange::Grant(Rights::CO_OWNER)).unwrap();
        let e = w.environment(&env()).unwrap();
        let hr01 = e.machines.iter().find(|m| m.group == g(HR)).unwrap();
        assert_eq!(e.machine_rights(hr01, p(SP)), Rights::CO_OWNER);
        let listed = w.shared_access(&megan, &env(), ShareTarget::Machine(hr01.id)).unwrap();
        assert!(listed.iter().any(|s| s.grantee == sp && s.rights == Rights::CO_OWNER), "{listed:?}");
    }

    #[test]
    fn a_user_share_may_not_share_and_a_co_owner_only_what_it_holds() {
        let mut w = world();
        let sp = caller(&w, SP);
        let adele = Grantee::Principal(p(ADELE));
        let e = w
            .change_access(&sp, &env(), ShareTarget::Group(g(FINANCE)), adele, AccessChange::Grant(Rights::USER))
            .unwrap_err();
        assert_eq!(e.code(), "0x80040220");
        let megan = caller(&w, MEGAN);
        let custom = Rights::CO_OWNER.minus(Rights::ASSIGN);
        let sp_grantee = Grantee::Principal(sp.principal);
        w.change_access(&megan, &env(), ShareTarget::Group(g(FINANCE)), sp_grantee, AccessChange::Modify(custom))
            .unwrap();
        let e = w
            .change_access(&sp, &env(), ShareTarget::Group(g(FINANCE)), adele, AccessChange::Grant(Rights::CO_OWNER))
            .unwrap_err();
        assert!(matches!(e, Error::GrantBeyondHeld { ref rights, .. } if rights == "AssignAccess"), "{e:?}");
        w.change_access(&sp, &env(), ShareTarget::Group(g(FINANCE)), adele, AccessChange::Grant(Rights::USER)).unwrap();
    }

    #[test]
    fn revoke_removes_the_share_and_with_it_the_use_of_the_group() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let sp = Grantee::Principal(p(SP));
        w.change_access(&megan, &env(), ShareTarget::Group(g(FINANCE)), sp, AccessChange::Revoke).unwrap();
        let e = w.environment(&env()).unwrap();
        assert!(!e.may_use_group(g(FINANCE), p(SP)));
        let fin01 = e.machine(MachineId::parse(FIN_01).unwrap()).unwrap();
        assert!(e.machine_rights(fin01, p(SP)).is_empty(), "the cascade goes with the group share");
    }

    #[test]
    fn a_stand_alone_machine_share_is_its_default_group_s_and_stays_with_the_machine_when_it_joins_a_group() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let build01 = MachineId::parse("78afb281-eb1e-4e35-ba11-9460dcabf47a").unwrap();
        let default = g("fbd9ef90-eb39-437b-a791-919993c57260");
        let adele = Grantee::Principal(p(ADELE));
        w.change_access(&megan, &env(), ShareTarget::Machine(build01), adele, AccessChange::Grant(Rights::USER))
            .unwrap();
        assert!(w.environment(&env()).unwrap().may_use_group(default, p(ADELE)));
        let mv = w.plan_move(&megan, &env(), build01, g(FINANCE)).unwrap();
        w.apply_move(&env(), mv);
        let e = w.environment(&env()).unwrap();
        let m = e.machine(build01).unwrap();
        assert_eq!(e.machine_rights(m, p(ADELE)), Rights::USER, "the machine keeps the unit's share");
        assert!(!e.may_use_group(g(FINANCE), p(ADELE)), "the new group is not shared by it");
        let alone = g("00000000-0000-0000-0000-00000000abcd");
        w.leave_group(&megan, &env(), build01, alone).unwrap();
        assert!(w.environment(&env()).unwrap().may_use_group(alone, p(ADELE)), "alone again, the unit is shared");
    }

    #[test]
    fn an_unknown_grantee_is_a_missing_record() {
        let mut w = world();
        let megan = caller(&w, MEGAN);
        let nobody = Grantee::Principal(p("00000000-0000-0000-0000-0000000000ff"));
        let e = w
            .change_access(&megan, &env(), ShareTarget::Group(g(HR)), nobody, AccessChange::Grant(Rights::USER))
            .unwrap_err();
        assert_eq!(e.code(), "0x80040217");
    }
}
