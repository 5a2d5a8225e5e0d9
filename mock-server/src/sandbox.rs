//! Sandboxes: the unit of isolation (DECISIONS.md). Each has its own world, clock, journal,
//! id generator and settings; the loaded fixture is the sandbox `default`. A request belongs
//! to the sandbox that owns what it names: the tenant (identity), the environment (Power
//! Platform API, connector runtime, BAP) or the org (Dataverse).

use crate::domain::clock::{ClockMode, VirtualClock};
use crate::domain::id_gen::IdGenerator;
use crate::domain::world::World;
use crate::journal::{Journal, JournalLimits};
use fixtures::{FixtureError, WorldFile};
use std::collections::BTreeMap;

/// The name of the sandbox the loaded fixture becomes.
pub const DEFAULT_SANDBOX: &str = "default";

/// Per-sandbox settings a test may change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Access-token lifetime in seconds (default 3599); an "expired token" scenario shortens it.
    pub token_lifetime_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { token_lifetime_secs: 3599 }
    }
}

/// One isolated world.
#[derive(Debug)]
pub struct Sandbox {
    /// Name.
    pub name: String,
    /// The fixture it was made from (what reset returns to and `/_mock/fixture` shows).
    pub fixture: WorldFile,
    /// Current state.
    pub world: World,
    /// Virtual clock.
    pub clock: VirtualClock,
    /// Journal.
    pub journal: Journal,
    /// Ids the mock makes up.
    pub ids: IdGenerator,
    /// Settings.
    pub settings: Settings,
    seed: u16,
    /// Random id of this incarnation, carried by its tokens (`xms_mock_sbx`): deleting the
    /// sandbox kills its tokens even if one of the same name (same ids) is made again.
    incarnation: String,
    /// Cached for redaction: every credential of the world.
    pub known_secrets: std::sync::Arc<Vec<(&'static str, String)>>,
}

impl Sandbox {
    /// A sandbox from a validated fixture.
    pub fn new(name: &str, fixture: WorldFile, seed: u16, journal: JournalLimits) -> Result<Self, FixtureError> {
        let world = World::from_fixture(&fixture.name, &fixture)?;
        Ok(Self {
            name: name.to_owned(),
            known_secrets: std::sync::Arc::new(world.known_secrets()),
            fixture,
            world,
            clock: VirtualClock::default(),
            journal: Journal::new(journal),
            ids: IdGenerator::sequential(seed),
            settings: Settings::default(),
            seed,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// The incarnation id its tokens carry. Reset and loading a world keep it: the sandbox
    /// is the same one; only deleting it ends it.
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// Re-reads the world's credentials after a control call changed them (a rotated password
    /// must be redacted as surely as the fixture's).
    pub fn refresh_secrets(&mut self) {
        let mut all = self.world.known_secrets();
        for old in self.known_secrets.iter() {
            if !all.iter().any(|(_, v)| v == &old.1) {
                all.push(old.clone());
            }
        }
        all.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        self.known_secrets = std::sync::Arc::new(all);
    }

    /// Back to the fixture: state, clock, journal, ids and settings.
    pub fn reset(&mut self) {
        // The fixture was valid when loaded and has not changed, so this cannot fail.
        if let Ok(world) = World::from_fixture(&self.fixture.name, &self.fixture) {
            self.known_secrets = std::sync::Arc::new(world.known_secrets());
            self.world = world;
        }
        let mode = self.clock.mode();
        self.clock = VirtualClock::default();
        if mode == ClockMode::System {
            self.clock.set_mode(ClockMode::System);
        }
        self.journal.clear();
        self.ids = IdGenerator::sequential(self.seed);
        self.settings = Settings::default();
    }
}

/// Why a sandbox operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// No such sandbox.
    #[error("no sandbox named '{0}'")]
    NotFound(String),
    /// Name taken.
    #[error("a sandbox named '{0}' already exists")]
    Exists(String),
    /// Bad name.
    #[error("sandbox names are 1 to 40 lower-case letters, digits or '-': '{0}' is not")]
    BadName(String),
    /// The default sandbox cannot be deleted.
    #[error("the sandbox 'default' cannot be deleted; reset it instead")]
    DefaultIsPermanent,
    /// The world is invalid.
    #[error(transparent)]
    Fixture(#[from] FixtureError),
}

/// All sandboxes of the server.
#[derive(Debug)]
pub struct Registry {
    sandboxes: BTreeMap<String, Sandbox>,
    journal_limits: JournalLimits,
    next_seed: u16,
}

impl Registry {
    /// A registry whose `default` sandbox holds `fixture`.
    pub fn new(fixture: WorldFile, journal_limits: JournalLimits) -> Result<Self, FixtureError> {
        let mut sandboxes = BTreeMap::new();
        sandboxes
            .insert(DEFAULT_SANDBOX.to_owned(), Sandbox::new(DEFAULT_SANDBOX, fixture, 0, journal_limits.clone())?);
        Ok(Self { sandboxes, journal_limits, next_seed: 1 })
    }

    /// A sandbox by name.
    pub fn get(&self, name: &str) -> Result<&Sandbox, SandboxError> {
        self.sandboxes.get(name).ok_or_else(|| SandboxError::NotFound(name.to_owned()))
    }

    /// A sandbox by name, mutably.
    pub fn get_mut(&mut self, name: &str) -> Result<&mut Sandbox, SandboxError> {
        self.sandboxes.get_mut(name).ok_or_else(|| SandboxError::NotFound(name.to_owned()))
    }

    /// All sandboxes.
    pub fn all(&self) -> impl Iterator<Item = &Sandbox> {
        self.sandboxes.values()
    }

    /// Replaces the world of a sandbox (load a fixture at run time); resets its clock and journal.
    pub fn load(&mut self, name: &str, fixture: WorldFile) -> Result<(), SandboxError> {
        self.check_unique(&fixture, Some(name))?;
        let old = self.get(name)?;
        let (seed, incarnation) = (old.seed, old.incarnation.clone());
        let sandbox = Sandbox { incarnation, ..Sandbox::new(name, fixture, seed, self.journal_limits.clone())? };
        self.sandboxes.insert(name.to_owned(), sandbox);
        Ok(())
    }

    /// Instantiates `template` as a fresh sandbox: new ids, hosts and test credentials for
    /// everything in it, so it can run beside every other sandbox.
    pub fn create(&mut self, name: Option<&str>, template: &WorldFile) -> Result<&Sandbox, SandboxError> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => {
                let mut i = self.next_seed;
                while self.sandboxes.contains_key(&format!("sb{i}")) {
                    i += 1;
                }
                format!("sb{i}")
            }
        };
        if name.is_empty()
            || name.len() > 40
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(SandboxError::BadName(name));
        }
        if self.sandboxes.contains_key(&name) {
            return Err(SandboxError::Exists(name));
        }
        let fixture = instantiate(template, &name);
        fixture.validate(&format!("sandbox {name}"))?;
        self.check_unique(&fixture, None)?;
        let seed = self.next_seed;
        self.next_seed = self.next_seed.wrapping_add(1);
        let sandbox = Sandbox::new(&name, fixture, seed, self.journal_limits.clone())?;
        self.sandboxes.insert(name.clone(), sandbox);
        self.get(&name)
    }

    /// Deletes a sandbox (never `default`).
    pub fn delete(&mut self, name: &str) -> Result<(), SandboxError> {
        if name == DEFAULT_SANDBOX {
            return Err(SandboxError::DefaultIsPermanent);
        }
        self.sandboxes.remove(name).map(|_| ()).ok_or_else(|| SandboxError::NotFound(name.to_owned()))
    }

    /// Tenants, environments and orgs must be unique across sandboxes, or a request could
    /// not be attributed.
    fn check_unique(&self, fixture: &WorldFile, replacing: Option<&str>) -> Result<(), SandboxError> {
        for sb in self.sandboxes.values().filter(|s| Some(s.name.as_str()) != replacing) {
            let clash = |what: &str, v: &str| {
                Err(SandboxError::Fixture(FixtureError {
                    file: fixture.name.clone(),
                    path: String::new(),
                    message: format!("{what} '{v}' already belongs to sandbox '{}'", sb.name),
                }))
            };
            for t in &fixture.tenants {
                if sb.world.tenant_by_ref(&t.id).is_some() || sb.world.tenant_by_ref(&t.domain).is_some() {
                    return clash("tenant", &t.id);
                }
            }
            for e in &fixture.environments {
                if sb.world.environments.iter().any(|x| x.id.as_str().eq_ignore_ascii_case(&e.id)) {
                    return clash("environment", &e.id);
                }
                if sb.world.environment_by_org(&e.dataverse.org).is_some() {
                    return clash("org", &e.dataverse.org);
                }
            }
        }
        Ok(())
    }

    /// The sandbox owning a tenant (GUID or domain).
    pub fn by_tenant(&self, reference: &str) -> Option<&str> {
        self.sandboxes.values().find(|s| s.world.tenant_by_ref(reference).is_some()).map(|s| s.name.as_str())
    }

    /// The sandbox owning the tenant of a UPN.
    pub fn by_upn(&self, upn: &str) -> Option<&str> {
        self.sandboxes.values().find(|s| s.world.tenant_of_upn(upn).is_some()).map(|s| s.name.as_str())
    }

    /// The sandbox owning an environment (id in either form).
    pub fn by_environment(&self, id: &str) -> Option<&str> {
        let id = crate::domain::ids::EnvironmentId::parse(id).ok()?;
        self.sandboxes.values().find(|s| s.world.environment(&id).is_some()).map(|s| s.name.as_str())
    }

    /// The sandbox and environment id behind an environment host prefix.
    pub fn by_environment_host(&self, prefix: &str) -> Option<(&str, String)> {
        self.sandboxes.values().find_map(|s| {
            s.world.environment_by_host_prefix(prefix).map(|e| (s.name.as_str(), e.id.as_str().to_owned()))
        })
    }

    /// The sandbox owning a Dataverse org.
    pub fn by_org(&self, org: &str) -> Option<&str> {
        self.sandboxes.values().find(|s| s.world.environment_by_org(org).is_some()).map(|s| s.name.as_str())
    }

    /// Every host the fixtures name (for the default TLS certificate).
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![
            "login.microsoftonline.com".to_owned(),
            "api.bap.microsoft.com".to_owned(),
            "api.powerplatform.com".to_owned(),
        ];
        for s in self.sandboxes.values() {
            for e in &s.world.environments {
                hosts.push(e.id.api_host());
                hosts.push(e.org_host());
            }
        }
        hosts
    }
}

/// A copy of `template` with every GUID replaced by one derived from the sandbox name (so the
/// same name gives the same ids), tenant domains, orgs and credentials suffixed with it.
pub fn instantiate(template: &WorldFile, name: &str) -> WorldFile {
    let ns = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("mock-server:sandbox:{name}").as_bytes());
    let guid = |g: &str| -> String {
        match g.strip_prefix("Default-") {
            Some(rest) => format!("Default-{}", uuid::Uuid::new_v5(&ns, rest.to_ascii_lowercase().as_bytes())),
            None => uuid::Uuid::new_v5(&ns, g.to_ascii_lowercase().as_bytes()).to_string(),
        }
    };
    let domain = |d: &str| match d.split_once('.') {
        Some((head, tail)) => format!("{head}-{name}.{tail}"),
        None => format!("{d}-{name}"),
    };
    let secret = |s: &str| format!("{s}-{name}");
    let mut w = template.clone();
    w.name = format!("{}@{name}", template.name);
    for t in &mut w.tenants {
        t.id = guid(&t.id);
        t.domain = domain(&t.domain);
    }
    for u in &mut w.users {
        u.object_id = guid(&u.object_id);
        u.tenant = guid(&u.tenant);
        if let Some((local, d)) = u.user_principal_name.split_once('@') {
            u.user_principal_name = format!("{local}@{}", domain(d));
        }
        u.password = secret(&u.password);
        for m in &mut u.interactive_logon_machines {
            *m = guid(m);
        }
    }
    for s in &mut w.service_principals {
        s.app_id = guid(&s.app_id);
        s.object_id = guid(&s.object_id);
        s.tenant = guid(&s.tenant);
        s.client_secret = s.client_secret.as_deref().map(secret);
    }
    for e in &mut w.environments {
        e.id = guid(&e.id);
        e.tenant = guid(&e.tenant);
        e.dataverse.org = format!("{}-{name}", e.dataverse.org);
        e.dataverse.organization_id = guid(&e.dataverse.organization_id);
        for s in &mut e.system_users {
            s.system_user_id = guid(&s.system_user_id);
            s.principal = guid(&s.principal);
        }
        for g in &mut e.machine_groups {
            g.id = guid(&g.id);
            g.owner = guid(&g.owner);
            for s in &mut g.shares {
                s.principal = guid(&s.principal);
            }
        }
        for t in &mut e.teams {
            t.team_id = guid(&t.team_id);
            for m in &mut t.members {
                *m = guid(m);
            }
        }
        for v in &mut e.environment_variables {
            if v.variable_type == fixtures::EnvironmentVariableTypeFile::Secret {
                v.value = secret(&v.value);
            }
        }
        for c in &mut e.credentials {
            c.id = guid(&c.id);
            c.owner = guid(&c.owner);
            for s in &mut c.shared_with {
                *s = guid(s);
            }
        }
        for m in &mut e.machines {
            m.id = guid(&m.id);
            m.group = guid(&m.group);
            m.owner = guid(&m.owner);
            for a in &mut m.windows_accounts {
                a.password = secret(&a.password);
            }
            for t in &mut m.allowed_tenants {
                *t = guid(t);
            }
            for s in &mut m.shares {
                s.principal = guid(&s.principal);
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_from_the_template_shares_no_tenant_environment_or_org_with_default() {
        let mut r = Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        let sb = r.create(Some("team-a"), &fixtures::default_world()).unwrap();
        let t = sb.world.tenants[0].id.to_string();
        let org = sb.world.environments[0].org.clone();
        assert_eq!(org, "contosodev-team-a");
        assert_eq!(r.by_tenant(&t), Some("team-a"));
        assert_eq!(r.by_tenant("c7263f1a-afcd-4e8a-a7ce-66b19698caaa"), Some("default"));
        assert_eq!(r.by_org("contosodev"), Some("default"));
        assert_eq!(r.by_org(&org), Some("team-a"));
        assert!(matches!(r.create(Some("team-a"), &fixtures::default_world()), Err(SandboxError::Exists(_))));
    }

    #[test]
    fn the_same_sandbox_name_gives_the_same_ids() {
        let a = instantiate(&fixtures::default_world(), "x");
        let b = instantiate(&fixtures::default_world(), "x");
        assert_eq!(a, b);
        assert_ne!(a.tenants[0].id, fixtures::default_world().tenants[0].id);
        a.validate("x").expect("every reference survives the renaming");
        let env = &a.environments[0];
        let secret = env.environment_variables.iter().find(|v| v.schema_name == "new_FinancePassword").unwrap();
        let fin = env.machines.iter().find(|m| m.name == "FIN-01").unwrap();
        assert_eq!(secret.value, fin.windows_accounts[0].password, "the Key Vault secret follows the renamed password");
    }

    #[test]
    fn reset_and_load_keep_the_incarnation_and_a_new_sandbox_of_the_same_name_gets_another() {
        let mut r = Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        let first = r.create(Some("x"), &fixtures::default_world()).unwrap().incarnation().to_owned();
        r.get_mut("x").unwrap().reset();
        assert_eq!(r.get("x").unwrap().incarnation(), first);
        r.load("x", instantiate(&fixtures::default_world(), "x")).unwrap();
        assert_eq!(r.get("x").unwrap().incarnation(), first);
        r.delete("x").unwrap();
        let second = r.create(Some("x"), &fixtures::default_world()).unwrap().incarnation().to_owned();
        assert_ne!(first, second);
        assert_ne!(r.get(DEFAULT_SANDBOX).unwrap().incarnation(), second);
    }

    #[test]
    fn loading_a_world_that_clashes_with_another_sandbox_is_refused() {
        let mut r = Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        r.create(Some("b"), &fixtures::default_world()).unwrap();
        let clash = instantiate(&fixtures::default_world(), "b");
        assert!(r.load(DEFAULT_SANDBOX, clash).is_err());
        assert!(r.load(DEFAULT_SANDBOX, fixtures::default_world()).is_ok());
    }
}
