//! Sandboxes: the unit of isolation (DECISIONS.md). Each has its own world, clock, journal,
//! id generator and settings; the loaded fixture is the sandbox `default`. A request belongs
//! to the sandbox that owns what it names: the tenant (identity), the environment (Power
//! Platform API, connector runtime, BAP) or the org (Dataverse).

use crate::domain::clock::{ClockMode, Timestamp, VirtualClock, format_timestamp};
use crate::domain::id_gen::IdGenerator;
use crate::domain::ids::EnvironmentId;
use crate::domain::ids::{FlowSessionId, MachineId};
use crate::domain::run::{RunEvent, RunEventKind, RunLimits, Trigger};
use crate::domain::world::World;
use crate::journal::{EntryKind, EventEntry};
use crate::journal::{Journal, JournalLimits, KnownSecrets};
use fixtures::{FixtureError, WorldFile};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The name of the sandbox the loaded fixture becomes.
pub const DEFAULT_SANDBOX: &str = "default";

/// Per-sandbox settings a test may change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Access-token lifetime in seconds (default 3599); an "expired token" scenario shortens it.
    pub token_lifetime_secs: u64,
    /// How long a run may wait in the queue, in seconds (default 43200, 12 h).
    pub queue_time_limit_secs: u64,
    /// The same for connect-with-sign-in runs (default 3600, the documented hour).
    pub sign_in_queue_time_limit_secs: u64,
    /// Runs per minute per connection before `DesktopFlowsActionThrottled` (default 70; real time).
    pub runs_per_minute_per_connection: u64,
    /// `Retry-After` of the connector door's 202 answers, in real seconds (default 1).
    pub run_status_retry_after_secs: u64,
    /// Treat every connector-door run request as carrying `x-mock-async-disabled: true`.
    pub async_disabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_lifetime_secs: 3599,
            queue_time_limit_secs: 43_200,
            sign_in_queue_time_limit_secs: 3_600,
            runs_per_minute_per_connection: 70,
            run_status_retry_after_secs: 1,
            async_disabled: false,
        }
    }
}

/// A run transition as the control surface and the journal show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEventView {
    /// `run.queued`, `run.started` or `run.ended`.
    pub event: &'static str,
    /// The run.
    pub flowsession_id: FlowSessionId,
    /// Virtual time of the transition.
    #[serde(serialize_with = "timestamp")]
    pub at: Timestamp,
    /// Status after it (`Waiting`, `Running`, `Succeeded`, `Failed`, …).
    pub status: &'static str,
    /// The machine, when it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineId>,
    /// The error code, when it failed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

fn timestamp<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(*t))
}

impl RunEventView {
    /// The view of a domain event.
    pub fn of(e: &RunEvent) -> Self {
        let (event, status, machine, code) = match &e.kind {
            RunEventKind::Queued => ("run.queued", "Waiting", None, None),
            RunEventKind::Started { machine } => ("run.started", "Running", Some(*machine), None),
            RunEventKind::Ended { status, code } => ("run.ended", status.name(), None, code.clone()),
        };
        Self { event, flowsession_id: e.run, at: e.at, status, machine, code }
    }
}

/// What a sandbox's rules act on: reached only through [`Sandbox::apply`], under the
/// sandbox's own lock.
#[derive(Debug)]
pub struct SandboxState {
    /// The fixture it was made from (what reset returns to and `/_mock/fixture` shows).
    pub fixture: WorldFile,
    /// Current state.
    pub world: World,
    /// Virtual clock.
    pub clock: VirtualClock,
    /// Ids of what the sandbox creates (records, groups, machines). Only operations that
    /// create something draw from it, so created ids do not depend on how many reads came before.
    pub ids: IdGenerator,
    /// Settings.
    pub settings: Settings,
    /// Run requests per connection in the last minute of real time (the throttle).
    run_requests: HashMap<uuid::Uuid, VecDeque<std::time::Instant>>,
    /// Cached for redaction: every credential of the world.
    known_secrets: Arc<KnownSecrets>,
}

impl SandboxState {
    fn new(fixture: WorldFile, seed: u16) -> Result<Self, FixtureError> {
        let world = World::from_fixture(&fixture.name, &fixture)?;
        Ok(Self {
            known_secrets: Arc::new(KnownSecrets::new(world.known_secrets())),
            fixture,
            world,
            clock: VirtualClock::default(),
            ids: IdGenerator::sequential(seed),
            settings: Settings::default(),
            run_requests: HashMap::new(),
        })
    }

    /// The throttle of runs per connection (`runsPerMinutePerConnection`, real time, both
    /// doors): whether one more run fits now, or how many seconds until a slot frees. It
    /// counts nothing: only a request that made a run counts ([`Self::count_run`]).
    pub fn run_throttle(&mut self, connection: uuid::Uuid) -> Result<(), u64> {
        let now = crate::domain::clock::monotonic();
        let minute = std::time::Duration::from_secs(60);
        let limit = usize::try_from(self.settings.runs_per_minute_per_connection).unwrap_or(usize::MAX);
        let recent = self.run_requests.entry(connection).or_default();
        while recent.front().is_some_and(|t| now.duration_since(*t) >= minute) {
            recent.pop_front();
        }
        if recent.len() >= limit {
            let oldest = recent.front().copied().unwrap_or(now);
            let wait = minute.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        Ok(())
    }

    /// A run was made on `connection`: it counts against the throttle for a minute.
    pub fn count_run(&mut self, connection: uuid::Uuid) {
        self.run_requests.entry(connection).or_default().push_back(crate::domain::clock::monotonic());
    }

    /// Every credential of the world, longest first, for the journal's redactor.
    pub fn known_secrets(&self) -> Arc<KnownSecrets> {
        self.known_secrets.clone()
    }

    /// The queue-time limits the settings give.
    pub fn run_limits(&self) -> RunLimits {
        RunLimits {
            queue_time_limit_secs: self.settings.queue_time_limit_secs,
            sign_in_queue_time_limit_secs: self.settings.sign_in_queue_time_limit_secs,
        }
    }

    /// The clock changed (or, in system mode, moved on by itself): every run transition due
    /// up to now, each at its instant.
    pub fn clock_changed(&mut self) -> Vec<RunEvent> {
        let (now, limits) = (self.clock.now(), self.run_limits());
        self.world.advance_to(now, limits, Trigger::Clock)
    }

    /// What a request does first: in system mode the clock moved by itself, so what is due
    /// up to now is applied before the request's rule runs.
    pub fn catch_up(&mut self) -> Vec<RunEvent> {
        if self.clock.mode() == ClockMode::System { self.clock_changed() } else { Vec::new() }
    }

    /// The world changed: the failures that causes, at the current instant.
    pub fn world_changed(&mut self) -> Vec<RunEvent> {
        let (now, limits) = (self.clock.now(), self.run_limits());
        self.world.advance_to(now, limits, Trigger::WorldChange)
    }

    /// Re-reads the world's credentials after a control call changed them (a rotated password
    /// must be redacted as surely as the fixture's).
    pub fn refresh_secrets(&mut self) {
        let mut all = self.world.known_secrets();
        for old in self.known_secrets.list() {
            if !all.iter().any(|(_, v)| v == &old.1) {
                all.push(old.clone());
            }
        }
        all.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        self.known_secrets = Arc::new(KnownSecrets::new(all));
    }
}

/// One isolated world, behind its own lock: requests to different sandboxes never wait on
/// each other, and a request holds its sandbox only while the rules run (signing, verifying,
/// redacting and serialising happen outside).
#[derive(Debug)]
pub struct Sandbox {
    /// Name.
    pub name: String,
    seed: u16,
    /// Random id of this incarnation, carried by its tokens (`xms_mock_sbx`): deleting the
    /// sandbox kills its tokens even if one of the same name (same ids) is made again.
    incarnation: String,
    state: Mutex<SandboxState>,
    /// Its own lock, so recording a request never waits for the rules of another.
    journal: Mutex<Journal>,
    /// Correlation ids: one per request, from their own counter so they use up no created ids.
    correlations: AtomicU64,
    /// Fault rules and the Retry-After check: network behaviour, apart from the world's lock.
    network: Mutex<Network>,
}

/// A sandbox's network behaviour: its fault rules and what its callers owe to `Retry-After`.
#[derive(Debug, Default)]
pub struct Network {
    /// Fault rules, in creation order.
    pub faults: crate::fault::FaultBook,
    /// The Retry-After check.
    pub retry_after: crate::fault::RetryAfterBook,
    /// Scenario triggers waiting for their operation, in the order they were armed.
    pub triggers: Vec<crate::scenario::ArmedTrigger>,
    /// Scenario overrides of mock-defined error codes and messages, by code.
    pub overrides: std::collections::BTreeMap<String, crate::scenario::Override>,
}

impl Sandbox {
    /// A sandbox from a validated fixture.
    pub fn new(name: &str, fixture: WorldFile, seed: u16, journal: JournalLimits) -> Result<Self, FixtureError> {
        Ok(Self {
            name: name.to_owned(),
            seed,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            state: Mutex::new(SandboxState::new(fixture, seed)?),
            journal: Mutex::new(Journal::new(journal)),
            correlations: AtomicU64::new(0),
            network: Mutex::new(Network::default()),
        })
    }

    /// The incarnation id its tokens carry. Reset and loading a world keep it: the sandbox
    /// is the same one; only deleting it ends it.
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// The one entry point to the sandbox's state: runs `f` under the sandbox's lock. Keep
    /// `f` to the rules; anything slow belongs before or after it. A poisoned lock is
    /// recovered: every command checks before it writes, so a panic cannot have left a
    /// half-written record behind.
    pub fn apply<R>(&self, f: impl FnOnce(&mut SandboxState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` on the journal, under the journal's own lock.
    pub fn journal<R>(&self, f: impl FnOnce(&mut Journal) -> R) -> R {
        f(&mut self.journal.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` on the fault rules and the Retry-After check, under their own lock.
    pub fn network<R>(&self, f: impl FnOnce(&mut Network) -> R) -> R {
        f(&mut self.network.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The next correlation id (`00000000-0000-4000-9000-{seed}{n}`: never a created id).
    pub fn next_correlation(&self) -> uuid::Uuid {
        let n = self.correlations.fetch_add(1, Ordering::Relaxed) + 1;
        IdGenerator::correlation(self.seed, n)
    }

    /// Journals run transitions as events (after the state's lock is released: the journal
    /// has its own).
    pub fn journal_run_events(&self, real_ms: u64, events: &[RunEvent]) {
        for e in events {
            let view = RunEventView::of(e);
            self.journal_event(
                real_ms,
                format_timestamp(e.at),
                view.event,
                serde_json::to_value(&view).unwrap_or_default(),
            );
        }
    }

    /// Journals one event (`run.ended`, `callback.attempt`, …).
    pub fn journal_event(&self, real_ms: u64, virtual_time: String, event: &str, detail: serde_json::Value) {
        self.journal(|j| {
            let seq = j.next_seq();
            j.push_event(EventEntry {
                seq,
                kind: EntryKind::Event,
                sandbox: self.name.clone(),
                virtual_time,
                real_ms,
                event: event.to_owned(),
                detail,
            });
        });
    }

    /// Back to the fixture: state, clock, journal, ids, settings, fault rules and Retry-After debts.
    pub fn reset(&self) {
        self.apply(|st| {
            // The fixture was valid when loaded and has not changed, so this cannot fail.
            if let Ok(world) = World::from_fixture(&st.fixture.name, &st.fixture) {
                st.known_secrets = Arc::new(KnownSecrets::new(world.known_secrets()));
                st.world = world;
            }
            let mode = st.clock.mode();
            st.clock = VirtualClock::default();
            if mode == ClockMode::System {
                st.clock.set_mode(ClockMode::System);
            }
            st.ids = IdGenerator::sequential(self.seed);
            st.settings = Settings::default();
            st.run_requests.clear();
        });
        self.journal(Journal::clear);
        self.correlations.store(0, Ordering::Relaxed);
        self.network(|n| *n = Network::default());
    }

    /// Replaces the world with another fixture's: clock, ids and settings start again, the
    /// journal is emptied.
    fn replace(&self, state: SandboxState) {
        self.apply(|st| *st = state);
        self.journal(Journal::clear);
        self.correlations.store(0, Ordering::Relaxed);
        self.network(|n| *n = Network::default());
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

/// The names a sandbox's world claims: tenants (ids and domains), environments (ids and host
/// prefixes) and orgs, lower-cased. They must be unique across sandboxes, or a request could
/// not be attributed.
#[derive(Debug, Default)]
struct Claimed {
    tenants: Vec<String>,
    /// (environment id, host prefix, org).
    environments: Vec<(EnvironmentId, String, String)>,
}

impl Claimed {
    fn of(world: &World) -> Self {
        Self {
            tenants: world
                .tenants
                .iter()
                .flat_map(|t| [t.id.to_string().to_ascii_lowercase(), t.domain.to_ascii_lowercase()])
                .collect(),
            environments: world
                .environments
                .iter()
                .map(|e| (e.id.clone(), e.id.host_prefix(), e.org.to_ascii_lowercase()))
                .collect(),
        }
    }
}

/// The sandboxes and the indexes that attribute a request to one of them, kept up to date on
/// create, load and delete.
#[derive(Debug, Default)]
struct Index {
    sandboxes: BTreeMap<String, Arc<Sandbox>>,
    /// Tenant id or domain → sandbox.
    tenants: HashMap<String, Arc<Sandbox>>,
    /// Environment id → sandbox.
    environments: HashMap<EnvironmentId, Arc<Sandbox>>,
    /// Environment host prefix → sandbox and environment.
    env_hosts: HashMap<String, (Arc<Sandbox>, EnvironmentId)>,
    /// Org → sandbox and environment.
    orgs: HashMap<String, (Arc<Sandbox>, EnvironmentId)>,
    next_seed: u16,
}

impl Index {
    /// The first name of `claimed` another sandbox than `except` holds.
    fn clash(&self, claimed: &Claimed, except: &str) -> Option<(&'static str, String, String)> {
        let other = |sb: &Arc<Sandbox>| (sb.name != except).then(|| sb.name.clone());
        for t in &claimed.tenants {
            if let Some(owner) = self.tenants.get(t).and_then(other) {
                return Some(("tenant", t.clone(), owner));
            }
        }
        for (id, _, org) in &claimed.environments {
            if let Some(owner) = self.environments.get(id).and_then(other) {
                return Some(("environment", id.to_string(), owner));
            }
            if let Some(owner) = self.orgs.get(org).and_then(|(sb, _)| other(sb)) {
                return Some(("org", org.clone(), owner));
            }
        }
        None
    }

    fn insert(&mut self, sandbox: Arc<Sandbox>, claimed: Claimed) {
        self.remove_claims(&sandbox.name);
        for t in claimed.tenants {
            self.tenants.insert(t, sandbox.clone());
        }
        for (id, prefix, org) in claimed.environments {
            self.environments.insert(id.clone(), sandbox.clone());
            self.env_hosts.insert(prefix, (sandbox.clone(), id.clone()));
            self.orgs.insert(org, (sandbox.clone(), id));
        }
        self.sandboxes.insert(sandbox.name.clone(), sandbox);
    }

    fn remove_claims(&mut self, name: &str) {
        self.tenants.retain(|_, sb| sb.name != name);
        self.environments.retain(|_, sb| sb.name != name);
        self.env_hosts.retain(|_, (sb, _)| sb.name != name);
        self.orgs.retain(|_, (sb, _)| sb.name != name);
    }
}

/// All sandboxes of the server. A read lock finds a sandbox; only create, load and delete
/// take the write lock.
#[derive(Debug)]
pub struct Registry {
    index: RwLock<Index>,
    /// `default`, which is never deleted: where unattributed requests go.
    default: Arc<Sandbox>,
    journal_limits: JournalLimits,
}

fn fixture_clash(fixture: &WorldFile, (what, value, owner): (&str, String, String)) -> SandboxError {
    SandboxError::Fixture(FixtureError {
        file: fixture.name.clone(),
        path: String::new(),
        message: format!("{what} '{value}' already belongs to sandbox '{owner}'"),
    })
}

impl Registry {
    /// A registry whose `default` sandbox holds `fixture`.
    pub fn new(fixture: WorldFile, journal_limits: JournalLimits) -> Result<Self, FixtureError> {
        let sandbox = Arc::new(Sandbox::new(DEFAULT_SANDBOX, fixture, 0, journal_limits.clone())?);
        let claimed = sandbox.apply(|st| Claimed::of(&st.world));
        let mut index = Index { next_seed: 1, ..Index::default() };
        index.insert(sandbox.clone(), claimed);
        Ok(Self { index: RwLock::new(index), default: sandbox, journal_limits })
    }

    /// The sandbox `default`.
    pub fn default_sandbox(&self) -> Arc<Sandbox> {
        self.default.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A sandbox by name.
    pub fn get(&self, name: &str) -> Result<Arc<Sandbox>, SandboxError> {
        self.read().sandboxes.get(name).cloned().ok_or_else(|| SandboxError::NotFound(name.to_owned()))
    }

    /// All sandboxes, by name.
    pub fn all(&self) -> Vec<Arc<Sandbox>> {
        self.read().sandboxes.values().cloned().collect()
    }

    /// Replaces the world of a sandbox (load a fixture at run time); resets its clock and journal.
    pub fn load(&self, name: &str, fixture: WorldFile) -> Result<(), SandboxError> {
        let sandbox = self.get(name)?;
        let state = SandboxState::new(fixture, sandbox.seed)?;
        let claimed = Claimed::of(&state.world);
        let mut index = self.write();
        if let Some(clash) = index.clash(&claimed, name) {
            return Err(fixture_clash(&state.fixture, clash));
        }
        sandbox.replace(state);
        index.insert(sandbox, claimed);
        Ok(())
    }

    /// Instantiates `template` as a fresh sandbox: new ids, hosts and test credentials for
    /// everything in it, so it can run beside every other sandbox.
    pub fn create(&self, name: Option<&str>, template: &WorldFile) -> Result<Arc<Sandbox>, SandboxError> {
        // Name and seed under the write lock; the world is built outside it, so requests to
        // other sandboxes are not held up while it loads.
        let (name, seed) = {
            let mut index = self.write();
            let name = match name {
                Some(n) => n.to_owned(),
                None => {
                    let mut i = index.next_seed;
                    while index.sandboxes.contains_key(&format!("sb{i}")) {
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
            if index.sandboxes.contains_key(&name) {
                return Err(SandboxError::Exists(name));
            }
            let seed = index.next_seed;
            index.next_seed = index.next_seed.wrapping_add(1);
            (name, seed)
        };
        let fixture = instantiate(template, &name);
        fixture.validate(&format!("sandbox {name}"))?;
        let sandbox = Arc::new(Sandbox::new(&name, fixture, seed, self.journal_limits.clone())?);
        let claimed = sandbox.apply(|st| Claimed::of(&st.world));
        let mut index = self.write();
        // Another call may have taken the name meanwhile.
        if index.sandboxes.contains_key(&name) {
            return Err(SandboxError::Exists(name));
        }
        if let Some(clash) = index.clash(&claimed, &name) {
            return Err(sandbox.apply(|st| fixture_clash(&st.fixture, clash)));
        }
        index.insert(sandbox.clone(), claimed);
        Ok(sandbox)
    }

    /// Deletes a sandbox (never `default`).
    pub fn delete(&self, name: &str) -> Result<(), SandboxError> {
        if name == DEFAULT_SANDBOX {
            return Err(SandboxError::DefaultIsPermanent);
        }
        let mut index = self.write();
        index.sandboxes.remove(name).ok_or_else(|| SandboxError::NotFound(name.to_owned()))?;
        index.remove_claims(name);
        Ok(())
    }

    /// The sandbox owning a tenant (GUID or domain).
    pub fn by_tenant(&self, reference: &str) -> Option<Arc<Sandbox>> {
        let key = match crate::domain::ids::TenantId::parse(reference) {
            Ok(id) => id.to_string().to_ascii_lowercase(),
            Err(_) => reference.to_ascii_lowercase(),
        };
        self.read().tenants.get(&key).cloned()
    }

    /// The sandbox owning the tenant of a UPN.
    pub fn by_upn(&self, upn: &str) -> Option<Arc<Sandbox>> {
        let domain = upn.rsplit_once('@')?.1;
        self.read().tenants.get(&domain.to_ascii_lowercase()).cloned()
    }

    /// The sandbox owning an environment (id in either form).
    pub fn by_environment(&self, id: &str) -> Option<Arc<Sandbox>> {
        EnvironmentId::canonical(id, |id| self.read().environments.get(id).cloned()).ok()?
    }

    /// The sandbox and environment id behind an environment host prefix.
    pub fn by_environment_host(&self, prefix: &str) -> Option<(Arc<Sandbox>, EnvironmentId)> {
        self.read().env_hosts.get(&prefix.to_ascii_lowercase()).cloned()
    }

    /// The sandbox owning a Dataverse org, and the org's environment.
    pub fn by_org(&self, org: &str) -> Option<(Arc<Sandbox>, EnvironmentId)> {
        self.read().orgs.get(&org.to_ascii_lowercase()).cloned()
    }

    /// Every host the fixtures name (for the default TLS certificate).
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![
            "login.microsoftonline.com".to_owned(),
            "api.bap.microsoft.com".to_owned(),
            "api.powerplatform.com".to_owned(),
        ];
        for s in self.all() {
            s.apply(|st| {
                for e in &st.world.environments {
                    hosts.push(e.id.api_host());
                    hosts.push(e.org_host());
                }
            });
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
    // `name@{a world tenant's domain}` (also after `AzureAD\`) follows its tenant; other
    // accounts (`CONTOSO\svc-rpa`, `BUILD-01\rpa`) are machine or AD names and stay.
    let tenant_domains: Vec<String> = template.tenants.iter().map(|t| t.domain.to_ascii_lowercase()).collect();
    let account = |a: &str| match a.rsplit_once('@') {
        Some((head, d)) if tenant_domains.contains(&d.to_ascii_lowercase()) => format!("{head}@{}", domain(d)),
        _ => a.to_owned(),
    };
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
                a.username = account(&a.username);
                a.password = secret(&a.password);
            }
            for t in &mut m.allowed_tenants {
                *t = guid(t);
            }
            for s in &mut m.shares {
                s.principal = guid(&s.principal);
            }
            for s in &mut m.sessions {
                s.user = account(&s.user);
            }
        }
        for f in &mut e.desktop_flows {
            f.workflow_id = guid(&f.workflow_id);
            f.owner = guid(&f.owner);
        }
        for r in &mut e.connection_references {
            r.connection_reference_id = guid(&r.connection_reference_id);
            if fixtures::is_guid(&r.connection_id) {
                r.connection_id = guid(&r.connection_id);
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
        let r = Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        let sb = r.create(Some("team-a"), &fixtures::default_world()).unwrap();
        let (t, org) = sb.apply(|st| (st.world.tenants[0].id.to_string(), st.world.environments[0].org.clone()));
        assert_eq!(org, "contosodev-team-a");
        let name = |s: Option<Arc<Sandbox>>| s.map(|s| s.name.clone());
        assert_eq!(name(r.by_tenant(&t)).as_deref(), Some("team-a"));
        assert_eq!(name(r.by_tenant("c7263f1a-afcd-4e8a-a7ce-66b19698caaa")).as_deref(), Some("default"));
        assert_eq!(name(r.by_tenant("CONTOSO.onmicrosoft.com")).as_deref(), Some("default"));
        assert_eq!(name(r.by_upn("megan@contoso.onmicrosoft.com")).as_deref(), Some("default"));
        assert_eq!(name(r.by_org("contosodev").map(|o| o.0)).as_deref(), Some("default"));
        assert_eq!(name(r.by_org(&org).map(|o| o.0)).as_deref(), Some("team-a"));
        let env = sb.apply(|st| st.world.environments[0].id.clone());
        assert_eq!(name(r.by_environment(env.as_str())).as_deref(), Some("team-a"));
        assert_eq!(name(r.by_environment_host(&env.host_prefix()).map(|h| h.0)).as_deref(), Some("team-a"));
        assert!(matches!(r.create(Some("team-a"), &fixtures::default_world()), Err(SandboxError::Exists(_))));
        r.delete("team-a").unwrap();
        assert!(r.by_tenant(&t).is_none() && r.by_org(&org).is_none(), "deleting forgets the sandbox's names");
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
        let build = env.machines.iter().find(|m| m.name == "BUILD-01").unwrap();
        assert_eq!(build.sessions[0].user, a.users[0].user_principal_name, "Megan's session follows her UPN");
        assert_eq!(build.sessions[0].user, "megan@contoso-x.onmicrosoft.com");
        let accounts: Vec<&str> = build.windows_accounts.iter().map(|a| a.username.as_str()).collect();
        assert_eq!(accounts, ["BUILD-01\\rpa", "rpa@contoso-x.onmicrosoft.com"], "an Entra account follows its tenant");
        let template = fixtures::default_world();
        assert_eq!(env.desktop_flows.len(), template.environments[0].desktop_flows.len());
        assert_ne!(env.desktop_flows[0].workflow_id, template.environments[0].desktop_flows[0].workflow_id);
        assert_eq!(env.desktop_flows[0].owner, a.users[0].object_id, "the owner follows the user");
        assert_ne!(
            env.connection_references[0].connection_reference_id,
            template.environments[0].connection_references[0].connection_reference_id
        );
    }

    #[test]
    fn reset_and_load_keep_the_incarnation_and_a_new_sandbox_of_the_same_name_gets_another() {
        let r = Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        let first = r.create(Some("x"), &fixtures::default_world()).unwrap().incarnation().to_owned();
        r.get("x").unwrap().reset();
        assert_eq!(r.get("x").unwrap().incarnation(), first);
        r.load("x", instantiate(&fixtures::default_world(), "x")).unwrap();
        assert_eq!(r.get("x").unwrap().incarnation(), first);
        r.delete("x").unwrap();
        let second = r.create(Some("x"), &fixtures::default_world()).unwrap().incarnation().to_owned();
        assert_ne!(first, second);
        assert_ne!(r.get(DEFAULT_SANDBOX).unwrap().incarnation(), second);
    }

    #[test]
    fn correlation_ids_use_no_created_id_and_start_again_on_reset() {
        let r = Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        let sb = r.create(Some("c"), &fixtures::default_world()).unwrap();
        let first = sb.next_correlation();
        assert_ne!(sb.next_correlation(), first);
        let created = sb.apply(|st| st.ids.next_id());
        assert_eq!(created.to_string(), "00000000-0000-4000-8000-000100000001", "two correlations drew no id");
        assert_ne!(created, first);
        sb.reset();
        assert_eq!(sb.next_correlation(), first);
        assert_eq!(sb.apply(|st| st.ids.next_id()), created);
    }

    #[test]
    fn loading_a_world_that_clashes_with_another_sandbox_is_refused() {
        let r = Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        r.create(Some("b"), &fixtures::default_world()).unwrap();
        let clash = instantiate(&fixtures::default_world(), "b");
        assert!(r.load(DEFAULT_SANDBOX, clash).is_err());
        assert!(r.load(DEFAULT_SANDBOX, fixtures::default_world()).is_ok());
    }
}
