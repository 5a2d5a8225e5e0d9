//! The typed Rust door onto the control service, in wiremock-rs's style: a test starts a
//! [`MockServer`], points its client at the surfaces' base URLs ([`Urls`]) and drives the
//! mock through [`SandboxHandle`]s: clock, journal, settings, machines and their sessions,
//! runs and desktop flows, fault rules and the Retry-After check, reset. Everything here
//! calls [`Control`], the same service `/_mock/…` translates to, so both doors behave alike.
//!
//! The methods are `async`: a clock change answers once the callbacks of the runs it ended had
//! their first attempt (runs.md, Callbacks); the other operations finish at once.
//! The crate's front page shows the handle at work (a doctest).

use crate::control::{
    AppliedScenario, ClockChange, ClockView, Control, ControlError, DesktopFlowView, EnvironmentHosts, Health,
    JournalFilter, JournalRead, Loaded, MachineRegistration, MachineView, NewSandbox, RegisteredMachine, RunFilter,
    RunOutcome, RunView, SandboxState, SandboxSummary, Seeded, SettingsPatch, VaultSecret,
};
use crate::domain::clock::{ClockMode, Timestamp};
use crate::domain::desktop_flow::FlowChange;
use crate::domain::ids::{EnvironmentId, FlowSessionId, MachineId, WorkflowId};
use crate::domain::membership::MachineFacts;
use crate::domain::world::Session;
use crate::fault::{FaultRuleView, FaultSpec, RetryAfterVerdict};
use crate::sandbox::{DEFAULT_SANDBOX, Settings};
use crate::server::MockServer;
use fixtures::WorldFile;
use secrecy::SecretString;
use std::time::Duration;

/// The surfaces' base URLs on one of the server's loopback doors (path forms of DECISIONS'
/// addressing table). What a client is configured with instead of the real host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    origin: String,
}

impl Urls {
    /// `scheme://127.0.0.1:PORT`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The authority of a tenant (GUID or domain): what MSAL takes as `authority`.
    pub fn identity(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.origin)
    }

    /// A tenant's v2.0 token endpoint.
    pub fn token(&self, tenant: &str) -> String {
        format!("{}/oauth2/v2.0/token", self.identity(tenant))
    }

    /// The Power Platform API for one environment: append `/connections?api-version=1` and
    /// the like.
    pub fn powerplatform(&self, environment: &str) -> String {
        format!("{}/connectivity/environments/{environment}", self.origin)
    }

    /// A Dataverse org's URL: the SDKs' service root, and the root of its scope
    /// (`{url}/.default`). The Web API is under `/api/data/v9.2/`.
    pub fn dataverse(&self, org: &str) -> String {
        format!("{}/dataverse/{org}", self.origin)
    }

    /// BAP's base URL (in place of `https://api.bap.microsoft.com`).
    pub fn bap(&self) -> String {
        self.origin.clone()
    }

    /// The control surface, `/_mock`.
    pub fn control(&self) -> String {
        format!("{}/_mock", self.origin)
    }
}

impl MockServer {
    /// The control service itself (plain methods, no `await`), for callers that embed the
    /// mock in something synchronous.
    pub fn control(&self) -> Control {
        Control::new(self.state().clone())
    }

    /// The base URLs on the https door when TLS is on (clients then trust
    /// [`MockServer::ca_pem`]), on the http door otherwise.
    pub fn urls(&self) -> Urls {
        Urls { origin: self.https_uri().unwrap_or_else(|| self.uri()) }
    }

    /// The base URLs on the http door.
    pub fn http_urls(&self) -> Urls {
        Urls { origin: self.uri() }
    }

    /// A tenant's authority on [`MockServer::urls`]'s door.
    pub fn identity_url(&self, tenant: &str) -> String {
        self.urls().identity(tenant)
    }

    /// An environment's Power Platform API on [`MockServer::urls`]'s door.
    pub fn powerplatform_url(&self, environment: &str) -> String {
        self.urls().powerplatform(environment)
    }

    /// A Dataverse org's URL on [`MockServer::urls`]'s door.
    pub fn dataverse_url(&self, org: &str) -> String {
        self.urls().dataverse(org)
    }

    /// BAP's base URL on [`MockServer::urls`]'s door.
    pub fn bap_url(&self) -> String {
        self.urls().bap()
    }

    /// A handle on the sandbox `name`. Nothing is checked until it is used: a call on a
    /// sandbox that does not exist fails with [`crate::sandbox::SandboxError::NotFound`].
    pub fn sandbox(&self, name: &str) -> SandboxHandle {
        SandboxHandle { control: self.control(), name: name.to_owned() }
    }

    /// The sandbox holding the loaded world.
    pub fn default_sandbox(&self) -> SandboxHandle {
        self.sandbox(DEFAULT_SANDBOX)
    }

    /// Instantiates a template world as a fresh sandbox (new ids, hosts and test credentials;
    /// [`SandboxHandle::fixture`] shows them): `server.create_sandbox("team-a")`, or a
    /// [`NewSandbox`] for another template or a made-up name.
    pub async fn create_sandbox(&self, spec: impl Into<NewSandbox>) -> Result<SandboxHandle, ControlError> {
        let made = self.control().create_sandbox(spec.into())?;
        Ok(self.sandbox(&made.sandbox))
    }

    /// Every sandbox with its template and hosts.
    pub async fn sandboxes(&self) -> Vec<SandboxSummary> {
        self.control().sandboxes()
    }

    /// What `GET /_mock/health` reports.
    pub async fn health(&self) -> Health {
        self.control().health()
    }
}

/// One sandbox of a running server: its world, clock, journal, settings and machines.
/// Cheap to clone; it holds the server's state, not the server, so it does not keep the
/// server running.
#[derive(Debug, Clone)]
pub struct SandboxHandle {
    control: Control,
    name: String,
}

impl SandboxHandle {
    /// The sandbox's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The world it was made from, test credentials included.
    pub async fn fixture(&self) -> Result<WorldFile, ControlError> {
        self.control.fixture(&self.name)
    }

    /// Where each of its environments is served on the real-host doors.
    pub async fn hosts(&self) -> Result<Vec<EnvironmentHosts>, ControlError> {
        let name = &self.name;
        let all = self.control.sandboxes();
        all.into_iter()
            .find(|s| &s.name == name)
            .map(|s| s.hosts)
            .ok_or_else(|| crate::sandbox::SandboxError::NotFound(name.clone()).into())
    }

    /// Replaces its world; clock, journal, ids and settings start afresh.
    pub async fn load_fixture(&self, world: WorldFile) -> Result<Loaded, ControlError> {
        self.control.load_fixture(&self.name, world)
    }

    /// World, clock, journal, ids and settings back to the fixture (the clock keeps its mode).
    pub async fn reset(&self) -> Result<(), ControlError> {
        self.control.reset(&self.name)
    }

    /// What it holds now.
    pub async fn state(&self) -> Result<SandboxState, ControlError> {
        self.control.state(&self.name)
    }

    /// Its virtual clock.
    pub fn clock(&self) -> ClockHandle {
        ClockHandle { sandbox: self.clone() }
    }

    /// Its request journal.
    pub fn journal(&self) -> JournalHandle {
        JournalHandle { sandbox: self.clone() }
    }

    /// Its settings.
    pub async fn settings(&self) -> Result<Settings, ControlError> {
        self.control.settings(&self.name)
    }

    /// Changes the settings `patch` names.
    pub async fn patch_settings(&self, patch: SettingsPatch) -> Result<Settings, ControlError> {
        self.control.patch_settings(&self.name, patch)
    }

    /// Sets the lifetime of the access tokens issued from now on (whole seconds, at least 1).
    pub async fn set_token_lifetime(&self, lifetime: Duration) -> Result<Settings, ControlError> {
        self.patch_settings(SettingsPatch { token_lifetime_secs: Some(lifetime.as_secs()), ..SettingsPatch::default() })
            .await
    }

    /// Adds a fault rule (`scenarios.md`, Fault rules); the answer carries its id.
    pub async fn add_fault(&self, rule: FaultSpec) -> Result<FaultRuleView, ControlError> {
        self.control.add_fault(&self.name, rule)
    }

    /// Adds a fault rule written as JSON, as `POST /_mock/faults` takes it.
    pub async fn add_fault_json(&self, rule: serde_json::Value) -> Result<FaultRuleView, ControlError> {
        // The control surface's shape errors: the field path and the type wanted, never the value.
        let spec = crate::api::extract::from_json_value(rule)
            .map_err(|e| ControlError::Invalid { code: "InvalidFaultRule", message: e.to_string() })?;
        self.add_fault(spec).await
    }

    /// Its fault rules with their hit counts and what remains of them.
    pub async fn faults(&self) -> Result<Vec<FaultRuleView>, ControlError> {
        self.control.faults(&self.name)
    }

    /// Removes one fault rule.
    pub async fn remove_fault(&self, id: &str) -> Result<(), ControlError> {
        self.control.remove_fault(&self.name, id)
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.control.clear_faults(&self.name)
    }

    /// Requests that came sooner than the `Retry-After` of the answer before them.
    pub async fn retry_after_violations(&self) -> Result<Vec<RetryAfterVerdict>, ControlError> {
        self.control.retry_after(&self.name, false)
    }

    /// Every verdict of the Retry-After check, honoured ones included.
    pub async fn retry_after_verdicts(&self) -> Result<Vec<RetryAfterVerdict>, ControlError> {
        self.control.retry_after(&self.name, true)
    }

    /// Applies a named scenario (`fixtures/scenarios/`), adding to what the sandbox has.
    pub async fn apply_scenario(&self, name: &str) -> Result<AppliedScenario, ControlError> {
        self.control.apply_scenario(&self.name, name)
    }

    /// Silently registers a machine (a service principal's `-applicationid`).
    pub async fn register_machine(&self, registration: MachineRegistration) -> Result<RegisteredMachine, ControlError> {
        self.control.register_machine(&self.name, registration)
    }

    /// Changes what is true of a machine (join state, allowlist, accounts, online, …);
    /// connection statuses follow at once.
    pub async fn set_machine(&self, machine: MachineId, facts: MachineFacts) -> Result<MachineView, ControlError> {
        self.control.patch_machine(&self.name, machine, facts)
    }

    /// Sets the Windows user sessions of a machine (an empty list signs everybody out); runs
    /// they break fail at once.
    pub async fn set_sessions(&self, machine: MachineId, sessions: Vec<Session>) -> Result<MachineView, ControlError> {
        self.set_machine(machine, MachineFacts { sessions: Some(sessions), ..MachineFacts::default() }).await
    }

    /// Its run queue: Waiting and Running runs, or every run of `filter.status`.
    pub async fn runs(&self, filter: RunFilter) -> Result<Vec<RunView>, ControlError> {
        self.control.runs(&self.name, &filter)
    }

    /// Ends a Waiting or Running run now, Succeeded with `outputs`.
    pub async fn complete_run(&self, run: FlowSessionId, outputs: serde_json::Value) -> Result<RunView, ControlError> {
        self.control.end_run(&self.name, run, RunOutcome::Complete { outputs })
    }

    /// Ends a Waiting or Running run now, Failed with `code` and `message`.
    pub async fn fail_run(
        &self,
        run: FlowSessionId,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<RunView, ControlError> {
        self.control.end_run(&self.name, run, RunOutcome::Fail { code: code.into(), message: message.into() })
    }

    /// Adds a desktop flow (fixture format) to one of its environments.
    pub async fn create_desktop_flow(
        &self,
        environment: EnvironmentId,
        flow: fixtures::DesktopFlowFile,
    ) -> Result<DesktopFlowView, ControlError> {
        self.control.create_desktop_flow(&self.name, environment, flow)
    }

    /// Changes a desktop flow.
    pub async fn change_desktop_flow(
        &self,
        flow: WorkflowId,
        change: FlowChange,
    ) -> Result<DesktopFlowView, ControlError> {
        self.control.patch_desktop_flow(&self.name, flow, change)
    }

    /// Sets a secret in its stand-in for Azure Key Vault.
    pub async fn set_vault_secret(
        &self,
        vault: &str,
        name: &str,
        value: impl Into<String>,
    ) -> Result<VaultSecret, ControlError> {
        self.control.set_vault_secret(&self.name, vault, name, SecretString::from(value.into()))
    }

    /// Stores `n` connections in `environment` at once (benchmarks at scale); ids are
    /// [`crate::control::seeded_connection_id`]`(0..n)`, owned by the user `Seeded` names.
    pub async fn seed_connections(&self, environment: &str, n: usize) -> Result<Seeded, ControlError> {
        let environment = EnvironmentId::parse(environment)
            .map_err(|e| ControlError::Invalid { code: "InvalidRequestContent", message: e.to_string() })?;
        self.control.seed_connections(&self.name, &environment, n)
    }

    /// Deletes the sandbox (never `default`); its tokens stop working.
    pub async fn delete(self) -> Result<(), ControlError> {
        self.control.delete_sandbox(&self.name)
    }
}

/// A sandbox's clock.
#[derive(Debug, Clone)]
pub struct ClockHandle {
    sandbox: SandboxHandle,
}

impl ClockHandle {
    /// What it shows and how it moves.
    pub async fn get(&self) -> Result<ClockView, ControlError> {
        self.sandbox.control.clock(&self.sandbox.name)
    }

    /// The instant it shows.
    pub async fn now(&self) -> Result<Timestamp, ControlError> {
        Ok(self.get().await?.now)
    }

    /// Moves it forward (virtual mode); answers once the callbacks the runs that ended owe
    /// had their first attempt.
    pub async fn advance(&self, by: Duration) -> Result<ClockView, ControlError> {
        let view = self.sandbox.control.advance_clock(&self.sandbox.name, by);
        self.delivered(view).await
    }

    async fn delivered(&self, view: Result<ClockView, ControlError>) -> Result<ClockView, ControlError> {
        let mut view = view?;
        self.sandbox.control.deliver_callbacks(&self.sandbox.name, &mut view).await?;
        Ok(view)
    }

    /// Runs the queue until no run is Running (at most 24 h on): what `untilIdle` does.
    pub async fn advance_until_idle(&self) -> Result<ClockView, ControlError> {
        self.delivered(self.sandbox.control.advance_until_idle(&self.sandbox.name)).await
    }

    /// Moves to the next instant a run transition is due (at most 24 h on): `toNextEvent`.
    pub async fn advance_to_next_event(&self) -> Result<ClockView, ControlError> {
        self.delivered(self.sandbox.control.advance_to_next_event(&self.sandbox.name)).await
    }

    /// Sets the instant (virtual mode; never backwards).
    pub async fn set(&self, now: Timestamp) -> Result<ClockView, ControlError> {
        self.change(ClockChange { now: Some(now), mode: None }).await
    }

    /// Switches between virtual and real time; the switch never jumps.
    pub async fn set_mode(&self, mode: ClockMode) -> Result<ClockView, ControlError> {
        self.change(ClockChange { now: None, mode: Some(mode) }).await
    }

    /// Switches the mode, then sets the instant; a refused instant changes neither.
    pub async fn change(&self, change: ClockChange) -> Result<ClockView, ControlError> {
        self.delivered(self.sandbox.control.set_clock(&self.sandbox.name, change)).await
    }
}

/// A sandbox's request journal (secrets were redacted when each entry was written).
#[derive(Debug, Clone)]
pub struct JournalHandle {
    sandbox: SandboxHandle,
}

impl JournalHandle {
    /// Every entry `filter` selects, oldest first, read page by page to the end (requests and
    /// events, as JSON: what `GET /_mock/journal` returns in `entries`).
    pub async fn entries(&self, filter: JournalFilter) -> Result<Vec<serde_json::Value>, ControlError> {
        let mut filter = filter;
        let mut all = Vec::new();
        loop {
            let page = self.read(filter.clone()).await?;
            all.extend(page.values());
            match page.next {
                Some(next) => filter.since = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of the entries `filter` selects, with the journal's counters.
    pub async fn read(&self, filter: JournalFilter) -> Result<JournalRead, ControlError> {
        self.sandbox.control.journal(&self.sandbox.name, &filter)
    }

    /// How many entries `filter` selects.
    pub async fn count(&self, filter: JournalFilter) -> Result<usize, ControlError> {
        self.sandbox.control.journal_count(&self.sandbox.name, &filter)
    }

    /// Every entry `filter` selects through the one normaliser: what snapshots compare.
    pub async fn normalised(&self, filter: JournalFilter) -> Result<Vec<serde_json::Value>, ControlError> {
        Ok(crate::normalise::normalise_all(&self.entries(filter).await?))
    }

    /// Empties it.
    pub async fn clear(&self) -> Result<(), ControlError> {
        self.sandbox.control.clear_journal(&self.sandbox.name)
    }
}
