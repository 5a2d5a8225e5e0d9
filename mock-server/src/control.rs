//! The control service: every operation of the control surface as a plain Rust method with
//! typed inputs and outputs and one error type ([`ControlError`]). Two doors open onto it:
//! `/_mock/…` ([`crate::api`]'s `admin` module translates HTTP to these calls and back) and
//! the typed Rust handle ([`crate::handle`]: `MockServer::sandbox(..)` and friends). Nothing
//! here knows HTTP: statuses and envelopes are the api layer's business.
//!
//! Every operation on one sandbox goes through `Control::read` or `Control::write`, and
//! the few on the set of sandboxes through `Control::registry`, so how sandboxes are locked
//! is decided in those three places only. No operation holds the lock while it serialises,
//! normalises or copies out more than it must.

use crate::domain::access::{Grantee, Share};
use crate::domain::clock::{ClockError, ClockMode, Timestamp, format_timestamp};
use crate::domain::credential::KeyVaultReference;
use crate::domain::desktop_flow::{DesktopFlow, FlowChange, Simulation};
use crate::domain::ids::{
    AppId, EnvironmentId, FlowSessionId, MachineGroupId, MachineId, PrincipalId, TeamId, TenantId, WorkflowId,
};
use crate::domain::membership::{MachineFacts, Registration};
use crate::domain::run::RunStatus;
use crate::domain::world::{Environment, Machine, Session, WindowsAccount};
use crate::fault::{FaultRuleView, FaultSpec, RetryAfterVerdict};
use crate::journal::{Evictions, Journal};
use crate::operation::Operation;
use crate::sandbox::{Registry, RunEventView, Sandbox, SandboxError, Settings};
pub use crate::scenario::ScenarioSummary;
use crate::scenario::{ArmedTrigger, WorldStep};
use crate::state::AppState;
use fixtures::WorldFile;
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

pub use crate::journal::JournalFilter;

/// What a sandbox holds behind its lock.
type Held = crate::sandbox::SandboxState;

/// Why a control operation was refused. The api layer maps each to a status and envelope.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// No such sandbox, a name taken or malformed, an invalid world.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A domain rule refused the change (a clock going backwards, a registration by a user).
    #[error(transparent)]
    Domain(#[from] crate::domain::Error),
    /// Input the operation cannot take, with a code naming the kind and a message naming the field.
    #[error("{message}")]
    Invalid {
        /// Mock-defined code (`InvalidRequestContent`, `InvalidVaultSecretName`, …).
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// What the operation names is missing from the sandbox's world (a scenario naming a
    /// machine the world lacks): 409.
    #[error("{message}")]
    Conflict {
        /// Mock-defined code (`ScenarioWorldMismatch`).
        code: &'static str,
        /// What is missing.
        message: String,
    },
    /// Something the operation names does not exist in the sandbox.
    #[error("{message}")]
    NotFound {
        /// Mock-defined code (`EnvironmentNotFound`, `MachineNotFound`, `TlsDisabled`).
        code: &'static str,
        /// What is missing.
        message: String,
    },
}

impl ControlError {
    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }
}

impl From<fixtures::FixtureError> for ControlError {
    fn from(e: fixtures::FixtureError) -> Self {
        Self::Sandbox(e.into())
    }
}

impl From<ClockError> for ControlError {
    fn from(e: ClockError) -> Self {
        Self::Domain(e.into())
    }
}

/// The control service over one server's state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    state: AppState,
}

impl Control {
    /// The service over a server's shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The set of sandboxes (each behind its own lock).
    fn registry(&self) -> &Registry {
        self.state.registry()
    }

    /// Reads one sandbox under its lock.
    fn read<T>(&self, sandbox: &str, f: impl FnOnce(&Sandbox, &Held) -> T) -> Result<T, ControlError> {
        let sb = self.registry().get(sandbox)?;
        Ok(sb.apply(|st| f(&sb, st)))
    }

    /// Changes one sandbox under its lock; `f` checks before it writes, so a refusal leaves
    /// the sandbox as it was.
    fn write<T>(&self, sandbox: &str, f: impl FnOnce(&mut Held) -> Result<T, ControlError>) -> Result<T, ControlError> {
        self.registry().get(sandbox)?.apply(f)
    }

    /// Whether the server is up, and its sandboxes.
    pub fn health(&self) -> Health {
        Health { sandboxes: self.registry().all().iter().map(|s| s.name.clone()).collect() }
    }

    /// The world a sandbox was loaded from, test credentials included (they are test data).
    pub fn fixture(&self, sandbox: &str) -> Result<WorldFile, ControlError> {
        self.read(sandbox, |_, st| st.fixture.clone())
    }

    /// Replaces a sandbox's world; its clock, journal, ids and settings start afresh.
    pub fn load_fixture(&self, sandbox: &str, world: WorldFile) -> Result<Loaded, ControlError> {
        world.validate(&format!("world '{}'", world.name))?;
        let loaded = world.name.clone();
        self.registry().load(sandbox, world)?;
        Ok(Loaded { sandbox: sandbox.to_owned(), loaded })
    }

    /// A world shipped in the binary, by name (`default`, …).
    pub fn embedded_world(name: &str) -> Result<WorldFile, ControlError> {
        Ok(fixtures::world(name)?)
    }

    /// World, clock, journal, ids, settings, fault rules and Retry-After debts back to the fixture.
    pub fn reset(&self, sandbox: &str) -> Result<(), ControlError> {
        self.registry().get(sandbox)?.reset();
        Ok(())
    }

    /// What a sandbox holds now.
    pub fn state(&self, sandbox: &str) -> Result<SandboxState, ControlError> {
        // The journal has its own lock: taken first and let go, never inside the state's.
        let sb = self.registry().get(sandbox)?;
        let journal = sb.journal(JournalCounts::of);
        Ok(sb.apply(|st| SandboxState::of(&sb.name, st, journal)))
    }

    /// One page of the journal entries `filter` selects, oldest first, as recorded (secrets
    /// redacted); `next` is the `since` of the next page.
    pub fn journal(&self, sandbox: &str, filter: &JournalFilter) -> Result<JournalRead, ControlError> {
        let sb = self.registry().get(sandbox)?;
        Ok(sb.journal(|j| {
            let page = j.page(filter);
            JournalRead {
                sandbox: sb.name.clone(),
                counts: JournalCounts::of(j),
                next: page.next,
                entries: page.entries,
            }
        }))
    }

    /// How many journal entries `filter` selects (its `limit` aside).
    pub fn journal_count(&self, sandbox: &str, filter: &JournalFilter) -> Result<usize, ControlError> {
        Ok(self.registry().get(sandbox)?.journal(|j| j.count(filter)))
    }

    /// Empties a sandbox's journal.
    pub fn clear_journal(&self, sandbox: &str) -> Result<(), ControlError> {
        self.registry().get(sandbox)?.journal(Journal::clear);
        Ok(())
    }

    /// A sandbox's clock.
    pub fn clock(&self, sandbox: &str) -> Result<ClockView, ControlError> {
        self.read(sandbox, |_, st| ClockView::of(sandbox, st))
    }

    /// Switches the mode and/or sets the instant; a refused instant changes neither. Run
    /// transitions due up to the new instant are applied in the same lock.
    pub fn set_clock(&self, sandbox: &str, change: ClockChange) -> Result<ClockView, ControlError> {
        self.clock_change(sandbox, |clock| {
            if let Some(mode) = change.mode {
                clock.set_mode(mode);
            }
            if let Some(now) = change.now {
                clock.set(now)?;
            }
            Ok(())
        })
    }

    /// Moves a virtual clock forward, applying every run transition due on the way, each at
    /// its instant; the answer lists them.
    pub fn advance_clock(&self, sandbox: &str, by: std::time::Duration) -> Result<ClockView, ControlError> {
        let by = chrono::Duration::from_std(by).map_err(|_| ClockError::OutOfRange)?;
        self.clock_change(sandbox, |clock| clock.advance(by).map(|_| ()))
    }

    /// `untilIdle`: clock changes to each run's end until no run is Running (Waiting runs
    /// wait on world changes), at most 24 h on.
    pub fn advance_until_idle(&self, sandbox: &str) -> Result<ClockView, ControlError> {
        self.clock_walk(sandbox, usize::MAX, |st| {
            if st.world.any_run_running() { st.world.next_run_completion_after(st.clock.now()) } else { None }
        })
    }

    /// `toNextEvent`: to the next instant a run transition is due (a completion, a timeout, a
    /// queue-limit expiry), at most 24 h on; nowhere when nothing is due.
    pub fn advance_to_next_event(&self, sandbox: &str) -> Result<ClockView, ControlError> {
        self.clock_walk(sandbox, 1, |st| st.world.next_run_event_after(st.clock.now(), st.run_limits()))
    }

    /// A 0 s clock change (what is due now, assignments included), then up to `steps` clock
    /// changes to the instants `next` names, never past 24 h from the start. Each change goes
    /// through the one entry point; the transitions are listed and journaled.
    fn clock_walk(
        &self,
        sandbox: &str,
        steps: usize,
        next: impl Fn(&Held) -> Option<Timestamp>,
    ) -> Result<ClockView, ControlError> {
        let sb = self.registry().get(sandbox)?;
        let (view, events) = sb.apply(|st| {
            if st.clock.mode() == ClockMode::System {
                return Err(ClockError::SystemMode.into());
            }
            let cap = st.clock.now() + chrono::Duration::hours(24);
            let mut events = st.clock_changed();
            for _ in 0..steps {
                let Some(at) = next(st) else { break };
                let at = at.min(cap);
                st.clock.set(at)?;
                events.extend(st.clock_changed());
                if at >= cap {
                    break;
                }
            }
            let mut view = ClockView::of(sandbox, st);
            view.run_events = events.iter().map(RunEventView::of).collect();
            view.owed = crate::callbacks::owed(&events);
            Ok::<_, ControlError>((view, events))
        })?;
        sb.journal_run_events(self.state.real_ms(), &events);
        Ok(view)
    }

    /// Makes the first attempt of each callback a clock change owes, in completion order,
    /// and lists the results in the answer (runs.md: the clock's answer waits for them);
    /// failed ones go on retrying in the background.
    pub async fn deliver_callbacks(&self, sandbox: &str, view: &mut ClockView) -> Result<(), ControlError> {
        if view.owed.is_empty() {
            return Ok(());
        }
        let sb = self.registry().get(sandbox)?;
        let owed = std::mem::take(&mut view.owed);
        view.callbacks = crate::callbacks::deliver(&self.state, &sb, owed).await;
        Ok(())
    }

    /// The timer of sandboxes on real time: applies, in each, what is due up to now (through
    /// the one entry point) and answers how long until the next run transition is due, at
    /// most `max` (so runs queued meanwhile are assigned within `max`, at their queue instant).
    /// It triggers; the queue decides.
    pub fn wake_system_clocks(&self, max: std::time::Duration) -> std::time::Duration {
        let mut wait = max;
        for sb in self.registry().all() {
            let (events, next) = sb.apply(|st| {
                if st.clock.mode() != ClockMode::System {
                    return (Vec::new(), None);
                }
                let events = st.clock_changed();
                let now = st.clock.now();
                let next = st.world.next_run_event_after(now, st.run_limits()).and_then(|t| (t - now).to_std().ok());
                (events, next)
            });
            crate::callbacks::after(&self.state, &sb, &events);
            if let Some(n) = next {
                wait = wait.min(n);
            }
        }
        wait
    }

    /// The runs of a sandbox as the portal's queue shows them: Waiting and Running runs (or
    /// every run of one status), with their position in their group's queue.
    pub fn runs(&self, sandbox: &str, filter: &RunFilter) -> Result<Vec<RunView>, ControlError> {
        let status = match &filter.status {
            None => None,
            Some(s) => Some(
                [
                    RunStatus::Waiting,
                    RunStatus::Running,
                    RunStatus::Succeeded,
                    RunStatus::Failed,
                    RunStatus::TimedOut,
                    RunStatus::Cancelled,
                ]
                .into_iter()
                .find(|x| x.name().eq_ignore_ascii_case(s))
                .ok_or_else(|| {
                    ControlError::invalid(
                        "InvalidRunStatus",
                        "status is one of Waiting, Running, Succeeded, Failed, TimedOut, Cancelled.",
                    )
                })?,
            ),
        };
        self.read(sandbox, |_, st| {
            st.world
                .runs
                .runs
                .iter()
                .filter(|r| match status {
                    Some(s) => r.status == s,
                    None => !r.status.is_terminal(),
                })
                .filter(|r| filter.group.is_none_or(|g| r.group == g))
                .map(|r| RunView::of(&st.world, r))
                .collect()
        })
    }

    /// Ends one Waiting or Running run now: Succeeded with `outputs`, or Failed with a code.
    pub fn end_run(&self, sandbox: &str, id: FlowSessionId, outcome: RunOutcome) -> Result<RunView, ControlError> {
        let outcome = match outcome {
            RunOutcome::Complete { outputs } => Ok(outputs.to_string()),
            RunOutcome::Fail { code, message } => {
                if code.trim().is_empty() {
                    return Err(ControlError::invalid("InvalidRequestContent", "The field 'code' must not be empty."));
                }
                Err((code, message))
            }
        };
        let sb = self.registry().get(sandbox)?;
        // What catching up applied is journaled even when the call is then refused.
        let (view, events) = sb.apply(|st| {
            let mut events = st.catch_up();
            let now = st.clock.now();
            let view = st.world.end_run_now(id, outcome, now).map(|ended| {
                events.push(ended);
                st.world.runs.runs.iter().find(|r| r.id == id).map(|r| RunView::of(&st.world, r))
            });
            (view, events)
        });
        crate::callbacks::after(&self.state, &sb, &events);
        view?.ok_or_else(|| ControlError::NotFound { code: "RunNotFound", message: format!("No run '{id}'.") })
    }

    /// Adds a desktop flow to an environment of the sandbox.
    pub fn create_desktop_flow(
        &self,
        sandbox: &str,
        environment: EnvironmentId,
        flow: fixtures::DesktopFlowFile,
    ) -> Result<DesktopFlowView, ControlError> {
        check_flow_file(&flow)?;
        let f =
            DesktopFlow::from_file(&flow).map_err(|e| ControlError::invalid("InvalidRequestContent", e.to_string()))?;
        self.write(sandbox, |st| {
            st.world.add_desktop_flow(&environment, f.clone())?;
            Ok(DesktopFlowView::of(&environment, &f))
        })
    }

    /// Changes a desktop flow (runs queued before keep what they were queued with).
    pub fn patch_desktop_flow(
        &self,
        sandbox: &str,
        id: WorkflowId,
        change: FlowChange,
    ) -> Result<DesktopFlowView, ControlError> {
        self.write(sandbox, |st| {
            st.world.change_desktop_flow(id, change)?;
            let (env, f) = st
                .world
                .environments
                .iter()
                .find_map(|e| e.desktop_flows.iter().find(|f| f.id == id).map(|f| (e.id.clone(), f)))
                .ok_or(crate::domain::Error::RecordNotFound { entity: "workflow", id: id.to_string() })?;
            Ok(DesktopFlowView::of(&env, f))
        })
    }

    /// One clock change: the clock and the queue move under one lock; the transitions are
    /// journaled after it.
    fn clock_change(
        &self,
        sandbox: &str,
        change: impl FnOnce(&mut crate::domain::clock::VirtualClock) -> Result<(), ClockError>,
    ) -> Result<ClockView, ControlError> {
        let sb = self.registry().get(sandbox)?;
        let (view, events) = sb.apply(|st| {
            let mut clock = st.clock.clone();
            change(&mut clock)?;
            st.clock = clock;
            let events = st.clock_changed();
            let mut view = ClockView::of(sandbox, st);
            view.run_events = events.iter().map(RunEventView::of).collect();
            view.owed = crate::callbacks::owed(&events);
            Ok::<_, ControlError>((view, events))
        })?;
        sb.journal_run_events(self.state.real_ms(), &events);
        Ok(view)
    }

    /// A sandbox's settings.
    pub fn settings(&self, sandbox: &str) -> Result<Settings, ControlError> {
        self.read(sandbox, |_, st| st.settings.clone())
    }

    /// Sets the settings `patch` names; the others keep their values.
    pub fn patch_settings(&self, sandbox: &str, patch: SettingsPatch) -> Result<Settings, ControlError> {
        for (field, value) in [
            ("tokenLifetimeSecs", patch.token_lifetime_secs),
            ("queueTimeLimitSecs", patch.queue_time_limit_secs),
            ("signInQueueTimeLimitSecs", patch.sign_in_queue_time_limit_secs),
            ("runsPerMinutePerConnection", patch.runs_per_minute_per_connection),
        ] {
            if value == Some(0) {
                return Err(ControlError::invalid(
                    "InvalidRequestContent",
                    format!("The field '{field}' must be at least 1."),
                ));
            }
        }
        self.write(sandbox, |st| {
            let s = &mut st.settings;
            let SettingsPatch {
                token_lifetime_secs,
                queue_time_limit_secs,
                sign_in_queue_time_limit_secs,
                runs_per_minute_per_connection,
                run_status_retry_after_secs,
                async_disabled,
            } = patch;
            s.token_lifetime_secs = token_lifetime_secs.unwrap_or(s.token_lifetime_secs);
            s.queue_time_limit_secs = queue_time_limit_secs.unwrap_or(s.queue_time_limit_secs);
            s.sign_in_queue_time_limit_secs = sign_in_queue_time_limit_secs.unwrap_or(s.sign_in_queue_time_limit_secs);
            s.runs_per_minute_per_connection =
                runs_per_minute_per_connection.unwrap_or(s.runs_per_minute_per_connection);
            s.run_status_retry_after_secs = run_status_retry_after_secs.unwrap_or(s.run_status_retry_after_secs);
            s.async_disabled = async_disabled.unwrap_or(s.async_disabled);
            Ok(st.settings.clone())
        })
    }

    /// Adds a fault rule (`scenarios.md`, Fault rules) after the sandbox's others.
    pub fn add_fault(&self, sandbox: &str, spec: FaultSpec) -> Result<FaultRuleView, ControlError> {
        spec.validate().map_err(|m| ControlError::invalid("InvalidFaultRule", m))?;
        Ok(self.registry().get(sandbox)?.network(|n| n.faults.add(spec)))
    }

    /// The sandbox's fault rules in creation order, with their hit counts.
    pub fn faults(&self, sandbox: &str) -> Result<Vec<FaultRuleView>, ControlError> {
        Ok(self.registry().get(sandbox)?.network(|n| n.faults.list()))
    }

    /// Removes one fault rule.
    pub fn remove_fault(&self, sandbox: &str, id: &str) -> Result<(), ControlError> {
        if self.registry().get(sandbox)?.network(|n| n.faults.remove(id)) {
            Ok(())
        } else {
            Err(ControlError::NotFound {
                code: "FaultRuleNotFound",
                message: format!("The sandbox has no fault rule '{id}'."),
            })
        }
    }

    /// Removes every fault rule of the sandbox.
    pub fn clear_faults(&self, sandbox: &str) -> Result<(), ControlError> {
        self.registry().get(sandbox)?.network(|n| n.faults.clear());
        Ok(())
    }

    /// Verdicts of the Retry-After check, oldest first: the violations only unless `all`.
    pub fn retry_after(&self, sandbox: &str, all: bool) -> Result<Vec<RetryAfterVerdict>, ControlError> {
        Ok(self
            .registry()
            .get(sandbox)?
            .network(|n| n.retry_after.verdicts().filter(|v| all || !v.honoured).cloned().collect()))
    }

    /// The named scenarios, by name.
    pub fn scenarios(&self) -> Result<Vec<ScenarioSummary>, ControlError> {
        let all = crate::scenario::all().map_err(|m| ControlError::invalid("InvalidScenario", m))?;
        Ok(all.into_iter().map(|s| ScenarioSummary { name: s.name, summary: s.summary }).collect())
    }

    /// Applies a named scenario to a sandbox, adding to what it has: its world steps in order,
    /// then its fault rules after the sandbox's others. Answers what changed.
    pub fn apply_scenario(&self, sandbox: &str, name: &str) -> Result<AppliedScenario, ControlError> {
        let scenario = crate::scenario::find(name).ok_or_else(|| ControlError::NotFound {
            code: "ScenarioNotFound",
            message: format!("There is no scenario named '{name}' (GET /_mock/scenarios lists them)."),
        })?;
        self.registry().get(sandbox)?;
        // Every object a step names is found before anything changes, so a world that lacks
        // one is left as it was.
        let triggered = scenario.clock.iter().flat_map(|c| c.world.iter());
        for step in scenario.world.iter().chain(triggered) {
            match step {
                WorldStep::PatchMachine(p) => {
                    self.machine_in(sandbox, &p.machine)?;
                }
                WorldStep::RemoveShare(r) => {
                    self.share_in(sandbox, r)?;
                }
                WorldStep::PatchDesktopFlow(p) => {
                    self.desktop_flow_in(sandbox, &p.desktop_flow)?;
                }
                WorldStep::Settings(_) => {}
            }
        }
        let (mut settings, mut machines, mut removed_shares, mut desktop_flows) =
            (None, Vec::new(), Vec::new(), Vec::new());
        for step in scenario.world {
            match self.apply_world_step(sandbox, step)? {
                StepChange::Settings(s) => settings = Some(s),
                StepChange::Machine(m) => machines.push(*m),
                StepChange::Share { group, principal } => removed_shares.push(json_share(group, principal)),
                StepChange::DesktopFlow(f) => desktop_flows.push(*f),
            }
        }
        let faults = scenario.faults.into_iter().map(|f| self.add_fault(sandbox, f)).collect::<Result<_, _>>()?;
        let armed: Vec<ArmedTrigger> = scenario
            .clock
            .into_iter()
            .filter_map(|c| {
                Some(ArmedTrigger {
                    scenario: scenario.name.clone(),
                    operation: Operation::parse(&c.after.operation)?,
                    advance: c.advance.map(|a| a.duration()),
                    world: c.world,
                })
            })
            .collect();
        let triggers = armed.len();
        let overrides: Vec<String> = scenario.overrides.keys().cloned().collect();
        self.registry().get(sandbox)?.network(|n| {
            n.triggers.extend(armed);
            n.overrides.extend(scenario.overrides);
        });
        Ok(AppliedScenario {
            scenario: scenario.name,
            settings,
            machines,
            removed_shares,
            desktop_flows,
            faults,
            triggers,
            overrides,
        })
    }

    /// Applies one world step of a scenario.
    pub fn apply_world_step(&self, sandbox: &str, step: WorldStep) -> Result<StepChange, ControlError> {
        Ok(match step {
            WorldStep::Settings(patch) => StepChange::Settings(self.patch_settings(sandbox, patch)?),
            WorldStep::PatchMachine(p) => {
                let id = self.machine_in(sandbox, &p.machine)?;
                let mut fields = serde_json::Value::Object(p.fields);
                self.map_into(sandbox, &mut fields)?;
                let facts: MachineFactsPatch = serde_json::from_value(fields).map_err(|_| {
                    ControlError::invalid("InvalidScenario", "patchMachine: the fields do not fit this sandbox")
                })?;
                StepChange::Machine(Box::new(self.patch_machine_fields(sandbox, id, facts)?))
            }
            WorldStep::RemoveShare(r) => {
                let (group, principal) = self.share_in(sandbox, &r)?;
                let sb = self.registry().get(sandbox)?;
                let events = sb.apply(|st| {
                    let mut events = st.catch_up();
                    st.world.remove_share(group, principal);
                    events.extend(st.world_changed());
                    events
                });
                crate::callbacks::after(&self.state, &sb, &events);
                StepChange::Share { group, principal }
            }
            WorldStep::PatchDesktopFlow(p) => {
                let id = self.desktop_flow_in(sandbox, &p.desktop_flow)?;
                let mut fields = serde_json::Value::Object(p.fields);
                self.map_into(sandbox, &mut fields)?;
                let patch: DesktopFlowPatch = serde_json::from_value(fields).map_err(|_| {
                    ControlError::invalid("InvalidScenario", "patchDesktopFlow: the fields do not fit this sandbox")
                })?;
                StepChange::DesktopFlow(Box::new(self.patch_desktop_flow(sandbox, id, patch.into_change()?)?))
            }
        })
    }

    /// Rewrites what a scenario names in the default world's terms into the sandbox's: tenant
    /// ids and `name@{tenant domain}` strings (UPNs, session users), tenant by tenant in
    /// fixture order (instantiation keeps the order).
    fn map_into(&self, sandbox: &str, v: &mut serde_json::Value) -> Result<(), ControlError> {
        let default = fixtures::default_world();
        let pairs: Vec<(String, String, String, String)> = self.read(sandbox, |_, st| {
            default
                .tenants
                .iter()
                .zip(st.fixture.tenants.iter())
                .map(|(d, s)| (d.id.clone(), s.id.clone(), d.domain.clone(), s.domain.clone()))
                .collect()
        })?;
        fn walk(v: &mut serde_json::Value, pairs: &[(String, String, String, String)]) {
            match v {
                serde_json::Value::String(s) => {
                    for (default_id, id, default_domain, domain) in pairs {
                        if s.eq_ignore_ascii_case(default_id) {
                            *s = id.clone();
                            return;
                        }
                        if let Some((head, d)) = s.rsplit_once('@')
                            && d.eq_ignore_ascii_case(default_domain)
                        {
                            *s = format!("{head}@{domain}");
                            return;
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, pairs)),
                serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, pairs)),
                _ => {}
            }
        }
        walk(v, &pairs);
        Ok(())
    }

    /// The group and principal of a `removeShare` step, in the sandbox: the group by the
    /// default world's id or name (or a machine's group), the principal by object id, UPN,
    /// app id or display name (the default world's, mapped through names).
    fn share_in(
        &self,
        sandbox: &str,
        r: &crate::scenario::RemoveShare,
    ) -> Result<(MachineGroupId, PrincipalId), ControlError> {
        let default = fixtures::default_world();
        let machine_group = match &r.machine {
            Some(m) => {
                let id = self.machine_in(sandbox, m)?;
                self.read(sandbox, |_, st| {
                    st.world.environments.iter().flat_map(|e| e.machines.iter()).find(|x| x.id == id).map(|x| x.group)
                })?
            }
            None => None,
        };
        let group_ref = r.group.clone().unwrap_or_default();
        let groups = default.environments.iter().flat_map(|e| e.machine_groups.iter());
        let group_name = default_name(groups.map(|g| (g.id.as_str(), g.name.as_str())), &group_ref).to_owned();
        let mut principal_ref = serde_json::Value::String(r.principal.clone());
        self.map_into(sandbox, &mut principal_ref)?;
        let principal_ref = principal_ref.as_str().unwrap_or_default().to_owned();
        let default_name = default
            .users
            .iter()
            .find(|u| u.object_id.eq_ignore_ascii_case(&r.principal))
            .map(|u| u.user_principal_name.clone())
            .or_else(|| {
                default
                    .service_principals
                    .iter()
                    .find(|s| {
                        s.object_id.eq_ignore_ascii_case(&r.principal) || s.app_id.eq_ignore_ascii_case(&r.principal)
                    })
                    .map(|s| s.display_name.clone())
            });
        let mut default_name = serde_json::Value::String(default_name.unwrap_or_default());
        self.map_into(sandbox, &mut default_name)?;
        let default_name = default_name.as_str().unwrap_or_default().to_owned();
        let (group, principal) = self.read(sandbox, |_, st| {
            let group = machine_group.or_else(|| {
                let groups = st.world.environments.iter().flat_map(|e| e.machine_groups.iter());
                find_named(groups.map(|g| (g.id.to_string(), g.name.as_str(), g.id)), &group_ref, &group_name)
            });
            let fits = |s: &str| {
                s.eq_ignore_ascii_case(&principal_ref)
                    || (!default_name.is_empty() && s.eq_ignore_ascii_case(&default_name))
            };
            let principal = st
                .world
                .users
                .iter()
                .find(|u| fits(&u.object_id.to_string()) || fits(&u.upn))
                .map(|u| u.object_id)
                .or_else(|| {
                    st.world
                        .service_principals
                        .iter()
                        .find(|s| {
                            fits(&s.object_id.to_string()) || fits(&s.app_id.to_string()) || fits(&s.display_name)
                        })
                        .map(|s| s.object_id)
                });
            (group, principal)
        })?;
        let group =
            group.ok_or_else(|| world_mismatch("group", r.group.as_deref().or(r.machine.as_deref()).unwrap_or("")))?;
        let principal = principal.ok_or_else(|| world_mismatch("principal", &r.principal))?;
        Ok((group, principal))
    }

    /// The sandbox's machine that a scenario names by the default world's id or by name
    /// (names survive instantiation; ids do not).
    fn machine_in(&self, sandbox: &str, reference: &str) -> Result<MachineId, ControlError> {
        let default = fixtures::default_world();
        let machines = default.environments.iter().flat_map(|e| e.machines.iter());
        let name = default_name(machines.map(|m| (m.id.as_str(), m.name.as_str())), reference);
        let found = self.read(sandbox, |_, st| {
            let machines = st.world.environments.iter().flat_map(|e| e.machines.iter());
            find_named(machines.map(|m| (m.id.to_string(), m.name.as_str(), m.id)), reference, name)
        })?;
        found.ok_or_else(|| world_mismatch("machine", reference))
    }

    /// The sandbox's desktop flow a scenario names by the default world's workflow id or by
    /// name.
    fn desktop_flow_in(&self, sandbox: &str, reference: &str) -> Result<WorkflowId, ControlError> {
        let default = fixtures::default_world();
        let flows = default.environments.iter().flat_map(|e| e.desktop_flows.iter());
        let name = default_name(flows.map(|f| (f.workflow_id.as_str(), f.name.as_str())), reference);
        let found = self.read(sandbox, |_, st| {
            let flows = st.world.environments.iter().flat_map(|e| e.desktop_flows.iter());
            find_named(flows.map(|f| (f.id.to_string(), f.name.as_str(), f.id)), reference, name)
        })?;
        found.ok_or_else(|| world_mismatch("desktop flow", reference))
    }

    /// Every sandbox with its template and hosts.
    pub fn sandboxes(&self) -> Vec<SandboxSummary> {
        self.registry().all().iter().map(|sb| sb.apply(|st| SandboxSummary::of(&sb.name, st))).collect()
    }

    /// Instantiates a template world as a fresh sandbox and returns what a test needs of it.
    pub fn create_sandbox(&self, spec: NewSandbox) -> Result<SandboxWorld, ControlError> {
        let template = Self::embedded_world(spec.template.as_deref().unwrap_or("default"))?;
        let sb = self.registry().create(spec.name.as_deref(), &template)?;
        Ok(sb.apply(|st| SandboxWorld { sandbox: sb.name.clone(), hosts: hosts_of(st), world: st.fixture.clone() }))
    }

    /// Deletes a sandbox (never `default`); its tokens stop working.
    pub fn delete_sandbox(&self, name: &str) -> Result<(), ControlError> {
        Ok(self.registry().delete(name)?)
    }

    /// The CA certificate clients must trust, when TLS is on.
    pub fn ca_pem(&self) -> Result<String, ControlError> {
        self.state.ca_pem().map(str::to_owned).ok_or_else(|| ControlError::NotFound {
            code: "TlsDisabled",
            message: "This server was started without TLS.".into(),
        })
    }

    /// Silent registration: the service principal owns the machine it registers (DECISIONS.md).
    pub fn register_machine(&self, sandbox: &str, r: MachineRegistration) -> Result<RegisteredMachine, ControlError> {
        if r.name.trim().is_empty() || r.name.chars().count() > 100 {
            return Err(ControlError::invalid(
                "InvalidRequestContent",
                "The field 'name' must be 1 to 100 characters.",
            ));
        }
        self.write(sandbox, |st| {
            let tenant =
                st.world.environment(&r.environment).map(|e| e.tenant).ok_or_else(|| ControlError::NotFound {
                    code: "EnvironmentNotFound",
                    message: format!("No environment '{}' in this sandbox.", r.environment),
                })?;
            let registrant = st
                .world
                .registrant(tenant, r.application_id)
                .ok_or(crate::domain::Error::RegistrationNeedsServicePrincipal)?;
            let id = r.machine_id.unwrap_or_else(|| MachineId::from_uuid(st.ids.next_id()));
            let default_group = MachineGroupId::from_uuid(st.ids.next_id());
            let registration = Registration { id, name: r.name, group: r.group, default_group, facts: r.facts };
            let m = st.world.register_machine(&registrant, &r.environment, registration)?;
            let out = RegisteredMachine {
                machine_id: m.id,
                name: m.name.clone(),
                group_id: m.group,
                owner: m.owner,
                environment: r.environment,
            };
            st.refresh_secrets();
            Ok(out)
        })
    }

    /// Changes what is true of a machine; connection statuses follow at once.
    pub fn patch_machine(
        &self,
        sandbox: &str,
        id: MachineId,
        facts: MachineFacts,
    ) -> Result<MachineView, ControlError> {
        let sb = self.registry().get(sandbox)?;
        // What catching up applied is journaled even when the machine is unknown.
        let (out, events) = sb.apply(|st| {
            let mut events = st.catch_up();
            if st.world.patch_machine(id, facts).is_none() {
                return (None, events);
            }
            events.extend(st.world_changed());
            let m = st.world.environments.iter().flat_map(|e| e.machines.iter()).find(|m| m.id == id);
            let out = m.map(|m| MachineView::of(&st.world, m));
            st.refresh_secrets();
            (out, events)
        });
        crate::callbacks::after(&self.state, &sb, &events);
        out.ok_or_else(|| ControlError::NotFound {
            code: "MachineNotFound",
            message: format!("No machine '{id}' in this sandbox."),
        })
    }

    /// `PATCH /_mock/machines/{id}` and a scenario's `patchMachine`: `group: null` first (the
    /// machine leaves its group), then the facts.
    pub fn patch_machine_fields(
        &self,
        sandbox: &str,
        id: MachineId,
        patch: MachineFactsPatch,
    ) -> Result<MachineView, ControlError> {
        match &patch.group {
            None => {}
            Some(Some(_)) => {
                return Err(ControlError::invalid(
                    "InvalidRequestContent",
                    "The field 'group' takes null (leave the group); moving into a group is done through Dataverse.",
                ));
            }
            Some(None) => {
                let sb = self.registry().get(sandbox)?;
                let events = sb.apply(|st| {
                    let mut events = st.catch_up();
                    let default_group = MachineGroupId::from_uuid(st.ids.next_id());
                    st.world.detach_machine(id, default_group).ok_or_else(|| ControlError::NotFound {
                        code: "MachineNotInAGroup",
                        message: format!("No machine '{id}' in a Standard group of this sandbox."),
                    })?;
                    events.extend(st.world_changed());
                    Ok::<_, ControlError>(events)
                })?;
                crate::callbacks::after(&self.state, &sb, &events);
            }
        }
        self.patch_machine(sandbox, id, patch.into_facts()?)
    }

    /// Stores `n` connections in an environment at once, for benchmarks at scale: azureRelay
    /// connections of the first user who may use a group with an account on its machines,
    /// through the same domain rule as a PUT. Their ids are [`seeded_connection_id`]`(0..n)`.
    pub fn seed_connections(
        &self,
        sandbox: &str,
        environment: &EnvironmentId,
        n: usize,
    ) -> Result<Seeded, ControlError> {
        use crate::domain::connection::{ConnectionId, Login, ParameterSet, PutConnection, UIFLOW};
        self.write(sandbox, |st| {
            let not_found = || ControlError::NotFound {
                code: "EnvironmentNotFound",
                message: format!("No environment '{environment}' in this sandbox."),
            };
            let env = st.world.environment(environment).ok_or_else(not_found)?;
            let pick = st.world.users.iter().filter(|u| u.tenant == env.tenant).find_map(|u| {
                env.machine_groups.iter().find_map(|g| {
                    let account =
                        env.machines.iter().filter(|m| m.group == g.id).find_map(|m| m.windows_accounts.first())?;
                    env.may_use_group(g.id, u.object_id).then(|| (u.object_id, g.id, account.clone()))
                })
            });
            let (owner, group, account) = pick.ok_or_else(|| {
                ControlError::invalid(
                    "NothingToSeed",
                    "No user of this environment may use a group with a Windows account.",
                )
            })?;
            let caller = st.world.caller(env.tenant, owner, None).ok_or_else(not_found)?;
            let now = st.clock.now();
            for i in 0..n {
                let id = ConnectionId::parse(&seeded_connection_id(i).to_string())
                    .map_err(|e| ControlError::invalid("InvalidRequestContent", e.to_string()))?;
                let login = Login::Password { username: account.username.clone(), password: account.password.clone() };
                let cmd = PutConnection {
                    environment: environment.clone(),
                    connector: UIFLOW.to_owned(),
                    id,
                    body_environment: None,
                    display_name: None,
                    parameters: ParameterSet::AzureRelay { login, target: group },
                };
                st.world.put_connection(&caller, cmd, now, seeded_connection_id(i))?;
            }
            Ok(Seeded { environment: environment.clone(), owner, group, count: n })
        })
    }

    /// Sets a secret of the sandbox's stand-in for Azure Key Vault, as `az keyvault secret set`
    /// does for real: a Secret environment variable whose value references
    /// `…/vaults/{vault}/secrets/{name}` resolves to it. The value is redacted wherever it
    /// appears later.
    pub fn set_vault_secret(
        &self,
        sandbox: &str,
        vault: &str,
        name: &str,
        value: SecretString,
    ) -> Result<VaultSecret, ControlError> {
        // Azure's naming rules: vaults 3-24, secrets 1-127 letters, digits and dashes.
        let named = |s: &str, min: usize, max: usize| {
            (min..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !named(vault, 3, 24) || !named(name, 1, 127) {
            return Err(ControlError::invalid(
                "InvalidVaultSecretName",
                "Vault names are 3 to 24 and secret names 1 to 127 letters, digits or dashes.",
            ));
        }
        let r = KeyVaultReference { vault: vault.to_owned(), name: name.to_owned() };
        let out = VaultSecret { vault: r.vault.clone(), name: r.name.clone(), reference: r.to_text() };
        self.write(sandbox, |st| {
            st.world.set_vault_secret(r, value);
            st.refresh_secrets();
            Ok(out)
        })
    }
}

/// Machine facts as the control surface takes them: the fixture's names, every field optional,
/// unknown fields refused by name (also a scenario's `patchMachine` step).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineFactsPatch {
    join_type: Option<fixtures::JoinTypeFile>,
    entra_synced: Option<bool>,
    allowed_tenants: Option<Vec<String>>,
    legacy_sign_in_error: Option<bool>,
    windows_edition: Option<fixtures::WindowsEditionFile>,
    agent_version: Option<String>,
    session_capacity: Option<u32>,
    online: Option<bool>,
    maintenance: Option<bool>,
    windows_accounts: Option<Vec<fixtures::WindowsAccountFile>>,
    sessions: Option<Vec<fixtures::SessionFile>>,
    /// `null`: the machine leaves its Standard group for a new Default group of its own.
    #[serde(default, deserialize_with = "present")]
    group: Option<Option<String>>,
}

impl MachineFactsPatch {
    /// The facts to set, checked.
    pub fn into_facts(self) -> Result<MachineFacts, ControlError> {
        let allowed_tenants = match self.allowed_tenants {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|t| TenantId::parse(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad_field("allowedTenants", format_args!("holds {e}")))?,
            ),
        };
        Ok(MachineFacts {
            join_type: self.join_type.map(Into::into),
            entra_synced: self.entra_synced,
            allowed_tenants,
            legacy_sign_in_error: self.legacy_sign_in_error,
            windows_edition: self.windows_edition.map(Into::into),
            agent_version: self.agent_version,
            session_capacity: self.session_capacity,
            online: self.online,
            maintenance: self.maintenance,
            windows_accounts: self.windows_accounts.map(|list| list.iter().map(WindowsAccount::from).collect()),
            sessions: match self.sessions {
                None => None,
                Some(list) => {
                    if list.iter().any(|s| s.user.trim().is_empty()) {
                        return Err(bad_field("sessions", "holds a session without a user"));
                    }
                    Some(list.into_iter().map(|s| Session { user: s.user, state: s.state.into() }).collect())
                }
            },
        })
    }
}

fn bad_field(field: &str, why: impl std::fmt::Display) -> ControlError {
    ControlError::invalid("InvalidRequestContent", format!("The field '{field}' {why}."))
}

fn json_share(group: MachineGroupId, principal: PrincipalId) -> serde_json::Value {
    serde_json::json!({ "group": group, "principal": principal })
}

/// What one world step changed.
#[derive(Debug, Clone)]
pub enum StepChange {
    /// The settings after it.
    Settings(Settings),
    /// The machine after it.
    Machine(Box<MachineView>),
    /// A share removed.
    Share {
        /// The group.
        group: MachineGroupId,
        /// Who lost it.
        principal: PrincipalId,
    },
    /// The desktop flow after it.
    DesktopFlow(Box<DesktopFlowView>),
}

/// What applying a scenario changed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedScenario {
    /// Its name.
    pub scenario: String,
    /// The sandbox's settings after its `settings` steps, if it had any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
    /// The machines its `patchMachine` steps changed, as they are now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<MachineView>,
    /// The shares its `removeShare` steps removed (`{"group", "principal"}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_shares: Vec<serde_json::Value>,
    /// The desktop flows its `patchDesktopFlow` steps changed, as they are now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub desktop_flows: Vec<DesktopFlowView>,
    /// How many `clock` triggers it armed.
    pub triggers: usize,
    /// The codes whose envelopes its `overrides` now change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The fault rules it added.
    pub faults: Vec<FaultRuleView>,
}

/// The default world's name for `reference` when it is one of its ids (`(id, name)` pairs),
/// else `reference` itself: a scenario may name an object either way, and names survive
/// instantiation where ids do not.
fn default_name<'a>(mut pairs: impl Iterator<Item = (&'a str, &'a str)>, reference: &'a str) -> &'a str {
    pairs.find(|(id, _)| id.eq_ignore_ascii_case(reference)).map_or(reference, |(_, name)| name)
}

/// The sandbox's object among `(id, name, value)` whose id is `reference` or whose name is
/// `name` (any case).
fn find_named<'a, T>(mut items: impl Iterator<Item = (String, &'a str, T)>, reference: &str, name: &str) -> Option<T> {
    items.find(|(id, n, _)| id.eq_ignore_ascii_case(reference) || n.eq_ignore_ascii_case(name)).map(|(_, _, v)| v)
}

/// A scenario names something this sandbox's world does not have (409, mock-defined).
fn world_mismatch(what: &str, name: &str) -> ControlError {
    ControlError::Conflict {
        code: "ScenarioWorldMismatch",
        message: format!("The scenario names the {what} '{name}', which this sandbox's world does not have."),
    }
}

/// The id of the `i`th connection [`Control::seed_connections`] stores.
pub fn seeded_connection_id(i: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | i as u128)
}

/// What [`Control::seed_connections`] stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seeded {
    /// The environment.
    pub environment: EnvironmentId,
    /// Who owns them (a user: get a token for them to read the connections).
    pub owner: PrincipalId,
    /// The group they target.
    pub group: MachineGroupId,
    /// How many.
    pub count: usize,
}

/// Which runs `GET /_mock/runs` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Runs of this machine group only.
    pub group: Option<MachineGroupId>,
    /// Runs of this status (`Waiting`, …, `Cancelled`); absent: Waiting and Running.
    pub status: Option<String>,
}

/// How `end_run` ends a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Succeeded with these outputs.
    Complete {
        /// Outputs.
        outputs: serde_json::Value,
    },
    /// Failed with this code and message.
    Fail {
        /// `errorcode`.
        code: String,
        /// `errormessage`.
        message: String,
    },
}

/// A run as the portal's queue and `GET /_mock/runs` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// `flowsessionid`.
    pub flowsession_id: FlowSessionId,
    /// Environment.
    pub environment: EnvironmentId,
    /// The desktop flow.
    pub flow: WorkflowId,
    /// Its name.
    pub flow_name: String,
    /// `Waiting`, `Running`, `Succeeded`, `Failed`, `TimedOut`, `Cancelled`.
    pub status: &'static str,
    /// `statuscode`.
    pub statuscode: i64,
    /// `attended` or `unattended`.
    pub run_mode: &'static str,
    /// `high` or `normal`.
    pub priority: &'static str,
    /// The machine group.
    pub group: MachineGroupId,
    /// The machine, once assigned.
    pub machine: Option<MachineId>,
    /// The session it runs in (the account), while Running.
    pub session: Option<String>,
    /// 1-based place in its group's queue, while Waiting.
    pub position: Option<usize>,
    /// First in its group's queue.
    pub next_to_run: bool,
    /// Queued.
    #[serde(serialize_with = "timestamp")]
    pub enqueued_on: Timestamp,
    /// Started.
    pub started_on: Option<String>,
    /// Ended.
    pub completed_on: Option<String>,
    /// Error code.
    pub error_code: Option<String>,
    /// Error message.
    pub error_message: Option<String>,
    /// Sub-code (`NoCandidateMachine`'s).
    pub error_details: Option<String>,
}

impl RunView {
    fn of(w: &crate::domain::world::World, r: &crate::domain::run::Run) -> Self {
        let position = (r.status == RunStatus::Waiting).then(|| {
            w.runs
                .runs
                .iter()
                .filter(|o| {
                    o.status == RunStatus::Waiting && o.group == r.group && (o.priority, o.seq) < (r.priority, r.seq)
                })
                .count()
                + 1
        });
        Self {
            flowsession_id: r.id,
            environment: r.environment.clone(),
            flow: r.flow,
            flow_name: r.flow_name.clone(),
            status: r.status.name(),
            statuscode: r.status.statuscode(),
            run_mode: r.mode.name(),
            priority: r.priority.name(),
            group: r.group,
            machine: r.machine,
            session: (r.status == RunStatus::Running).then(|| r.account.clone()),
            position,
            next_to_run: position == Some(1),
            enqueued_on: r.enqueued_on,
            started_on: r.started_on.map(format_timestamp),
            completed_on: r.completed_on.map(format_timestamp),
            error_code: r.failure.as_ref().map(|f| f.code.clone()),
            error_message: r.failure.as_ref().map(|f| f.message.clone()),
            error_details: r.failure.as_ref().and_then(|f| f.details.clone()),
        }
    }
}

/// A desktop flow in the fixture format, with its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesktopFlowView {
    /// The environment.
    pub environment: EnvironmentId,
    /// The flow.
    #[serde(flatten)]
    pub flow: fixtures::DesktopFlowFile,
}

impl DesktopFlowView {
    fn of(env: &EnvironmentId, f: &DesktopFlow) -> Self {
        let parse = |t: &str| serde_json::from_str(t).unwrap_or_default();
        let simulation = match &f.simulation {
            Simulation::Succeed { duration_secs, outputs } => {
                fixtures::SimulationFile { duration_seconds: *duration_secs, outputs: Some(parse(outputs)), fail: None }
            }
            Simulation::Fail { duration_secs, code, message } => fixtures::SimulationFile {
                duration_seconds: *duration_secs,
                outputs: None,
                fail: Some(fixtures::FailureFile { code: code.clone(), message: message.clone() }),
            },
        };
        Self {
            environment: env.clone(),
            flow: fixtures::DesktopFlowFile {
                workflow_id: f.id.to_string(),
                name: f.name.clone(),
                owner: f.owner.to_string(),
                published: f.published,
                input_schema: parse(&f.input_schema),
                output_schema: parse(&f.output_schema),
                simulation,
            },
        }
    }
}

/// The checks the fixture format makes on one flow.
fn check_flow_file(f: &fixtures::DesktopFlowFile) -> Result<(), ControlError> {
    let bad = |m: &str| Err(ControlError::invalid("InvalidRequestContent", m));
    if f.simulation.outputs.is_some() && f.simulation.fail.is_some() {
        return bad("A simulation has 'outputs' or 'fail', not both.");
    }
    if !f.input_schema.is_object() || !f.output_schema.is_object() {
        return bad("'inputSchema' and 'outputSchema' are JSON Schema objects.");
    }
    if f.name.trim().is_empty() {
        return bad("The field 'name' must not be empty.");
    }
    Ok(())
}

/// What `health` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Names of every sandbox.
    pub sandboxes: Vec<String>,
}

/// The answer to loading a world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loaded {
    /// The sandbox.
    pub sandbox: String,
    /// The world's name.
    pub loaded: String,
}

/// One page of a sandbox's journal.
#[derive(Debug)]
pub struct JournalRead {
    /// The sandbox.
    pub sandbox: String,
    /// The journal's counters (evictions, leaks, bytes) when it was read.
    pub counts: JournalCounts,
    /// The `since` of the next page; `None` at the end.
    pub next: Option<u64>,
    /// The entries, oldest first, as stored.
    pub entries: Vec<Box<serde_json::value::RawValue>>,
}

impl JournalRead {
    /// The entries as JSON values.
    pub fn values(&self) -> Vec<serde_json::Value> {
        self.entries.iter().filter_map(|e| serde_json::from_str(e.get()).ok()).collect()
    }
}

fn timestamp<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(*t))
}

/// A sandbox's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockView {
    /// The sandbox.
    pub sandbox: String,
    /// What it shows now.
    #[serde(serialize_with = "timestamp")]
    pub now: Timestamp,
    /// How it moves.
    pub mode: ClockMode,
    /// The run transitions this change applied, in order (absent when none).
    #[serde(rename = "runEvents", skip_serializing_if = "Vec::is_empty")]
    pub run_events: Vec<RunEventView>,
    /// The callbacks those transitions owe, until they are made.
    #[serde(skip)]
    pub owed: Vec<crate::domain::run::Callback>,
    /// The first attempt of each callback (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<crate::callbacks::CallbackResult>,
}

impl ClockView {
    fn of(sandbox: &str, st: &Held) -> Self {
        Self {
            sandbox: sandbox.to_owned(),
            now: st.clock.now(),
            mode: st.clock.mode(),
            run_events: Vec::new(),
            owed: Vec::new(),
            callbacks: Vec::new(),
        }
    }
}

/// A change of clock: the mode is switched first, then the instant set (virtual mode only).
/// Also the body of `PUT /_mock/clock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockChange {
    /// The instant to show; never earlier than now.
    pub now: Option<Timestamp>,
    /// The mode to switch to.
    pub mode: Option<ClockMode>,
}

/// What `PATCH /_mock/desktopflows/{id}` may change (also a scenario's `patchDesktopFlow`
/// step); unknown fields are refused by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesktopFlowPatch {
    name: Option<String>,
    owner: Option<String>,
    published: Option<bool>,
    input_schema: Option<serde_json::Map<String, serde_json::Value>>,
    output_schema: Option<serde_json::Map<String, serde_json::Value>>,
    simulation: Option<fixtures::SimulationFile>,
}

impl DesktopFlowPatch {
    /// The domain's change, or which field is wrong.
    pub fn into_change(self) -> Result<FlowChange, ControlError> {
        if self.simulation.as_ref().is_some_and(|s| s.outputs.is_some() && s.fail.is_some()) {
            return Err(bad_field("simulation", "has outputs or fail, not both"));
        }
        let owner = match &self.owner {
            Some(o) => Some(PrincipalId::parse(o).map_err(|e| bad_field("owner", format_args!("is invalid: {e}")))?),
            None => None,
        };
        Ok(FlowChange {
            name: self.name,
            owner,
            published: self.published,
            input_schema: self.input_schema.map(|m| serde_json::Value::Object(m).to_string()),
            output_schema: self.output_schema.map(|m| serde_json::Value::Object(m).to_string()),
            simulation: self.simulation.as_ref().map(Simulation::from_file),
        })
    }
}

/// Settings to change; `None` keeps a value. Also the body of `PATCH /_mock/settings`, where
/// unknown fields are refused by name and `null` is no value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    /// Access-token lifetime in seconds (at least 1).
    #[serde(default, deserialize_with = "present")]
    pub token_lifetime_secs: Option<u64>,
    /// Standard queue-time limit in seconds (at least 1).
    #[serde(default, deserialize_with = "present")]
    pub queue_time_limit_secs: Option<u64>,
    /// Connect-with-sign-in queue-time limit in seconds (at least 1).
    #[serde(default, deserialize_with = "present")]
    pub sign_in_queue_time_limit_secs: Option<u64>,
    /// Runs per minute per connection (at least 1).
    #[serde(default, deserialize_with = "present")]
    pub runs_per_minute_per_connection: Option<u64>,
    /// `Retry-After` of the connector door's 202 answers.
    #[serde(default, deserialize_with = "present")]
    pub run_status_retry_after_secs: Option<u64>,
    /// Every connector-door run request as if it carried `x-mock-async-disabled: true`.
    #[serde(default, deserialize_with = "present")]
    pub async_disabled: Option<bool>,
}

/// A field that, when given, must hold a value (`null` is refused like any other wrong type).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// How to make a sandbox. Also the body of `POST /_mock/sandboxes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSandbox {
    /// Its name (1 to 40 of `a-z`, `0-9`, `-`); made up when absent.
    pub name: Option<String>,
    /// The embedded world to instantiate (default `default`).
    pub template: Option<String>,
}

impl NewSandbox {
    /// A sandbox of this name from the default world.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), template: None }
    }

    /// Instantiates this embedded world instead of `default`.
    pub fn template(mut self, world: impl Into<String>) -> Self {
        self.template = Some(world.into());
        self
    }
}

impl From<&str> for NewSandbox {
    fn from(name: &str) -> Self {
        Self::named(name)
    }
}

/// Where an environment of a sandbox is served on the real-host doors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentHosts {
    /// The environment.
    pub environment: EnvironmentId,
    /// Its Power Platform API host.
    pub api_host: String,
    /// Its Dataverse org host.
    pub org_host: String,
}

fn hosts_of(st: &Held) -> Vec<EnvironmentHosts> {
    st.world
        .environments
        .iter()
        .map(|e| EnvironmentHosts { environment: e.id.clone(), api_host: e.id.api_host(), org_host: e.org_host() })
        .collect()
}

/// One line of the sandbox list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxSummary {
    /// Its name.
    pub name: String,
    /// The world it was made from.
    pub fixture: String,
    /// The hosts of its environments.
    pub hosts: Vec<EnvironmentHosts>,
}

impl SandboxSummary {
    fn of(name: &str, st: &Held) -> Self {
        Self { name: name.to_owned(), fixture: st.fixture.name.clone(), hosts: hosts_of(st) }
    }
}

/// What a new sandbox gives a test (DECISIONS, Fixtures): the instantiated world in the
/// fixture format, as `GET /_mock/fixture` returns it, plus its name and hosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SandboxWorld {
    /// Its name.
    pub sandbox: String,
    /// The hosts of its environments.
    pub hosts: Vec<EnvironmentHosts>,
    /// The instantiated world, test credentials included.
    #[serde(flatten)]
    pub world: WorldFile,
}

/// A silent registration of a machine by a service principal (`-environmentid`,
/// `-applicationid`, `-groupid`, the machine's name and facts).
#[derive(Debug, Clone)]
pub struct MachineRegistration {
    /// The environment.
    pub environment: EnvironmentId,
    /// The registering service principal.
    pub application_id: AppId,
    /// The group to join; `None` for a stand-alone machine.
    pub group: Option<MachineGroupId>,
    /// The machine's name (1 to 100 characters).
    pub name: String,
    /// Its id; made up when `None`.
    pub machine_id: Option<MachineId>,
    /// Facts other than the registration defaults.
    pub facts: MachineFacts,
}

impl MachineRegistration {
    /// A stand-alone machine named `name`, registered in `environment` by `application_id`.
    pub fn new(environment: EnvironmentId, application_id: AppId, name: impl Into<String>) -> Self {
        Self {
            environment,
            application_id,
            group: None,
            name: name.into(),
            machine_id: None,
            facts: MachineFacts::default(),
        }
    }

    /// Joins this group instead of standing alone.
    pub fn in_group(mut self, group: MachineGroupId) -> Self {
        self.group = Some(group);
        self
    }

    /// Uses this id.
    pub fn with_id(mut self, id: MachineId) -> Self {
        self.machine_id = Some(id);
        self
    }

    /// Sets these facts.
    pub fn with_facts(mut self, facts: MachineFacts) -> Self {
        self.facts = facts;
        self
    }
}

/// A machine just registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredMachine {
    /// Its id.
    pub machine_id: MachineId,
    /// Its name.
    pub name: String,
    /// The group it is in (its Default group when stand-alone).
    pub group_id: MachineGroupId,
    /// Its owner: the registering service principal.
    pub owner: PrincipalId,
    /// The environment.
    pub environment: EnvironmentId,
}

/// A share of a group or machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareView {
    /// The user or service principal, when shared with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalId>,
    /// The team, when shared with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamId>,
    /// The rights, as Dataverse names them (`"ReadAccess, WriteAccess"`).
    pub access_mask: String,
}

fn shares_of(shares: &[Share]) -> Vec<ShareView> {
    shares
        .iter()
        .map(|s| {
            let (principal, team) = match s.grantee {
                Grantee::Principal(p) => (Some(p), None),
                Grantee::Team(t) => (None, Some(t)),
            };
            ShareView { principal, team, access_mask: s.rights.names() }
        })
        .collect()
}

/// A Windows account of a machine: its name, never its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowsAccountView {
    /// As written in the fixture.
    pub username: String,
    /// May open an interactive session.
    pub interactive_logon: bool,
}

/// A machine with every fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineView {
    /// Id.
    pub id: MachineId,
    /// Name.
    pub name: String,
    /// Its group.
    pub group: MachineGroupId,
    /// Owner.
    pub owner: PrincipalId,
    /// Directory join (`EntraJoined`, `DomainJoined`, …).
    pub join_type: String,
    /// Accounts that can sign in.
    pub windows_accounts: Vec<WindowsAccountView>,
    /// Synchronised with Entra ID.
    pub entra_synced: bool,
    /// Tenants allowlisted for connect with sign-in.
    pub allowed_tenants: Vec<TenantId>,
    /// Answers an unallowlisted tenant with the older text.
    pub legacy_sign_in_error: bool,
    /// `Client` or `Server`.
    pub windows_edition: String,
    /// Power Automate for desktop version.
    pub agent_version: String,
    /// Parallel sessions.
    pub session_capacity: u32,
    /// Agent connected.
    pub online: bool,
    /// Maintenance mode.
    pub maintenance: bool,
    /// Shares of the machine itself.
    pub shares: Vec<ShareView>,
    /// Windows user sessions open on it.
    pub sessions: Vec<fixtures::SessionFile>,
    /// Sessions unattended runs opened (not patchable; they end with their run).
    pub run_sessions: Vec<RunSessionView>,
}

/// A session an unattended run opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSessionView {
    /// The account it signed in with.
    pub user: String,
    /// The run.
    pub run_id: crate::domain::ids::FlowSessionId,
}

impl MachineView {
    fn of(w: &crate::domain::world::World, m: &Machine) -> Self {
        Self {
            id: m.id,
            name: m.name.clone(),
            group: m.group,
            owner: m.owner,
            join_type: format!("{:?}", m.join_type),
            windows_accounts: m
                .windows_accounts
                .iter()
                .map(|a| WindowsAccountView { username: a.username.clone(), interactive_logon: a.interactive_logon })
                .collect(),
            entra_synced: m.entra_synced,
            allowed_tenants: m.allowed_tenants.clone(),
            legacy_sign_in_error: m.legacy_sign_in_error,
            windows_edition: format!("{:?}", m.windows_edition),
            agent_version: m.agent_version.clone(),
            session_capacity: m.session_capacity,
            online: m.online,
            maintenance: m.maintenance,
            shares: shares_of(&m.shares),
            sessions: m
                .sessions
                .iter()
                .map(|s| fixtures::SessionFile { user: s.user.clone(), state: s.state.into() })
                .collect(),
            run_sessions: w
                .run_sessions(m.id)
                .into_iter()
                .map(|(user, run_id)| RunSessionView { user, run_id })
                .collect(),
        }
    }
}

/// A machine group and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineGroupView {
    /// Id.
    pub id: MachineGroupId,
    /// Name.
    pub name: String,
    /// `Standard` or `Default` (a stand-alone machine's hidden group).
    #[serde(rename = "type")]
    pub group_type: String,
    /// Owner.
    pub owner: PrincipalId,
    /// Shares.
    pub shares: Vec<ShareView>,
    /// Its machines.
    pub machines: Vec<MachineId>,
}

/// An environment's Dataverse organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataverseView {
    /// Org name.
    pub org: String,
    /// Org host.
    pub host: String,
    /// Organisation id.
    pub organization_id: uuid::Uuid,
}

/// An environment with its groups and machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    /// Id.
    pub id: EnvironmentId,
    /// Tenant.
    pub tenant: TenantId,
    /// Display name.
    pub display_name: String,
    /// Power Platform API host.
    pub api_host: String,
    /// Dataverse organisation.
    pub dataverse: DataverseView,
    /// Machine groups.
    pub machine_groups: Vec<MachineGroupView>,
    /// Machines.
    pub machines: Vec<MachineView>,
    /// Desktop flows in the fixture format, those made with `POST /_mock/desktopflows` too
    /// (the fixture, which reset returns to, has only its own).
    pub desktop_flows: Vec<fixtures::DesktopFlowFile>,
}

impl EnvironmentView {
    fn of(w: &crate::domain::world::World, e: &Environment) -> Self {
        Self {
            id: e.id.clone(),
            tenant: e.tenant,
            display_name: e.display_name.clone(),
            api_host: e.id.api_host(),
            dataverse: DataverseView { org: e.org.clone(), host: e.org_host(), organization_id: e.organization_id },
            machine_groups: e
                .machine_groups
                .iter()
                .map(|g| MachineGroupView {
                    id: g.id,
                    name: g.name.clone(),
                    group_type: format!("{:?}", g.group_type),
                    owner: g.owner,
                    shares: shares_of(&g.shares),
                    machines: e.machines.iter().filter(|m| m.group == g.id).map(|m| m.id).collect(),
                })
                .collect(),
            machines: e.machines.iter().map(|m| MachineView::of(w, m)).collect(),
            desktop_flows: e.desktop_flows.iter().map(|f| DesktopFlowView::of(&e.id, f).flow).collect(),
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// Id.
    pub id: TenantId,
    /// Initial domain.
    pub domain: String,
    /// Display name.
    pub display_name: String,
}

/// A user (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Object id.
    pub object_id: PrincipalId,
    /// Home tenant.
    pub tenant: TenantId,
    /// Sign-in name.
    pub user_principal_name: String,
}

/// A service principal (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalView {
    /// Client id.
    pub app_id: AppId,
    /// Object id.
    pub object_id: PrincipalId,
    /// Home tenant.
    pub tenant: TenantId,
    /// Display name.
    pub display_name: String,
}

/// A connection share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionShareView {
    /// The service principal.
    pub principal: PrincipalId,
    /// `CanView` or `CanEdit`.
    pub role: String,
}

/// A connection as the domain holds it (never its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    /// Id as written.
    pub id: String,
    /// Environment.
    pub environment: EnvironmentId,
    /// Connector.
    pub connector: String,
    /// Display name.
    pub display_name: String,
    /// `azureRelay`, `azureRelayRunOwner` or `passwordlessAttended`.
    pub parameter_set: String,
    /// Machine group.
    pub target_id: MachineGroupId,
    /// Windows username, for the sets with one.
    pub username: Option<String>,
    /// Run owner's app id, for `azureRelayRunOwner`.
    pub run_owner: Option<AppId>,
    /// Creator.
    pub created_by: PrincipalId,
    /// Status code (`Connected` or the error the status shows).
    pub status: String,
    /// Shares.
    pub shares: Vec<ConnectionShareView>,
}

/// A sandbox's journal counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalCounts {
    /// Entries held.
    pub entries: usize,
    /// Bytes held, counted at stored size.
    pub bytes: usize,
    /// Entries evicted since the last clear.
    pub evicted: u64,
    /// The same, per kind.
    pub evicted_by_kind: Evictions,
    /// Entries flagged with a leak since the last clear.
    pub leaks: u64,
    /// Entries kept at most.
    pub capacity: usize,
}

impl JournalCounts {
    fn of(j: &mut Journal) -> Self {
        Self {
            entries: j.len(),
            bytes: j.bytes(),
            evicted: j.evicted().total(),
            evicted_by_kind: j.evicted(),
            leaks: j.leaks(),
            capacity: j.limits().entries,
        }
    }
}

/// What a sandbox holds now: the world as the domain sees it, its clock, settings and journal
/// counters. Credentials are not in it (the fixture has them).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxState {
    /// The sandbox.
    pub sandbox: String,
    /// The world it was made from.
    pub fixture: String,
    /// Its clock.
    pub clock: ClockView,
    /// Its settings.
    pub settings: Settings,
    /// Its journal's counters.
    pub journal: JournalCounts,
    /// Tenants.
    pub tenants: Vec<TenantView>,
    /// Users.
    pub users: Vec<UserView>,
    /// Service principals.
    pub service_principals: Vec<ServicePrincipalView>,
    /// Environments.
    pub environments: Vec<EnvironmentView>,
    /// Connections.
    pub connections: Vec<ConnectionView>,
    /// Every run, in enqueue order.
    pub runs: Vec<RunView>,
}

impl SandboxState {
    fn of(sandbox: &str, st: &Held, journal: JournalCounts) -> Self {
        let w = &st.world;
        Self {
            sandbox: sandbox.to_owned(),
            fixture: st.fixture.name.clone(),
            clock: ClockView::of(sandbox, st),
            settings: st.settings.clone(),
            journal,
            tenants: w
                .tenants
                .iter()
                .map(|t| TenantView { id: t.id, domain: t.domain.clone(), display_name: t.display_name.clone() })
                .collect(),
            users: w
                .users
                .iter()
                .map(|u| UserView { object_id: u.object_id, tenant: u.tenant, user_principal_name: u.upn.clone() })
                .collect(),
            service_principals: w
                .service_principals
                .iter()
                .map(|s| ServicePrincipalView {
                    app_id: s.app_id,
                    object_id: s.object_id,
                    tenant: s.tenant,
                    display_name: s.display_name.clone(),
                })
                .collect(),
            environments: w.environments.iter().map(|e| EnvironmentView::of(w, e)).collect(),
            connections: w
                .connections
                .iter()
                .map(|c| ConnectionView {
                    id: c.id.as_written().to_owned(),
                    environment: c.environment.clone(),
                    connector: c.connector.to_owned(),
                    display_name: c.display_name.clone(),
                    parameter_set: c.parameters.name().to_owned(),
                    target_id: c.parameters.target(),
                    username: c.parameters.username().map(str::to_owned),
                    run_owner: c.parameters.run_owner().map(|o| o.app_id),
                    created_by: c.created_by.principal,
                    status: w.status(c).code().unwrap_or("Connected").to_owned(),
                    shares: c
                        .shares
                        .iter()
                        .map(|s| ConnectionShareView { principal: s.principal, role: s.role.name().to_owned() })
                        .collect(),
                })
                .collect(),
            runs: w.runs.runs.iter().map(|r| RunView::of(w, r)).collect(),
        }
    }
}

/// A secret set in the Key Vault stand-in (its value is not repeated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultSecret {
    /// Vault name.
    pub vault: String,
    /// Secret name.
    pub name: String,
    /// The reference a Secret environment variable holds to resolve to it.
    pub reference: String,
}
