//! Desktop-flow runs on the virtual clock (runs.md): the queue, machine selection, sessions
//! and capacity, and every outcome of runs.md's table. One entry point, [`World::advance_to`],
//! applies every transition due up to an instant, each at the instant it is due; nothing else
//! (no timer, no request) decides when a run starts or ends.
//!
//! At one instant the order is: completions, timeouts and the failures world changes cause
//! (which free sessions), then queue-limit expiries, then assignments in queue order
//! (priority, then enqueue sequence). A run that fits no machine does not block later runs.

use super::Error;
use super::clock::Timestamp;
use super::connection::{Caller, Connection, ConnectionId, UIFLOW};
use super::connection_status::ConnectionStatus;
use super::desktop_flow::Simulation;
use super::ids::{EnvironmentId, FlowSessionId, MachineGroupId, MachineId, PrincipalId, WorkflowId};
use super::windows_account::same_account;
use super::world::{Machine, SessionState, WindowsEdition, World};
use chrono::Duration;

/// `timeout` when a request gives none (api-facts 5.1).
pub const DEFAULT_TIMEOUT_SECS: u64 = 3 * 3600;
/// The largest `timeout` (24 h).
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// The documented `NoCandidateMachine` text (SUP-QUEUE).
const NO_CANDIDATE: &str = "No machine able to run the desktop flow has been found.";

/// Attended or unattended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// In an unlocked session of the connection's user.
    Attended,
    /// In a session the run opens with the connection's account.
    Unattended,
}

impl RunMode {
    /// `attended` or `unattended`, any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "attended" => Some(Self::Attended),
            "unattended" => Some(Self::Unattended),
            _ => None,
        }
    }

    /// The `runmode` option value (1 Attended, 2 Unattended).
    pub fn option_value(self) -> i64 {
        match self {
            Self::Attended => 1,
            Self::Unattended => 2,
        }
    }

    /// As the wire names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Attended => "attended",
            Self::Unattended => "unattended",
        }
    }
}

/// Queue priority: `high` runs go before `normal` ones (the derived order is queue order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// `high`.
    High,
    /// `normal` (default).
    Normal,
}

impl Priority {
    /// `high` or `normal`, any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "high" => Some(Self::High),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }

    /// As the wire names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
        }
    }
}

/// Where a run is (the `flowsession` status reasons the mock uses; `statecode` stays 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Queued.
    Waiting,
    /// On a machine.
    Running,
    /// Ended with outputs.
    Succeeded,
    /// Ended with an error code.
    Failed,
    /// Still running at its timeout.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

impl RunStatus {
    /// The `statuscode` option value.
    pub fn statuscode(self) -> i64 {
        match self {
            Self::Running => 2,
            Self::Waiting => 3,
            Self::Succeeded => 4,
            Self::Cancelled => 7,
            Self::Failed => 8,
            Self::TimedOut => 10,
        }
    }

    /// Its name (`Waiting`, `Running`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Waiting | Self::Running)
    }
}

/// Why a run failed: `errorcode`, `errormessage` and `errordetails` of its flow session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    /// Code.
    pub code: String,
    /// Message.
    pub message: String,
    /// Sub-code (`NoCandidateMachine`'s, in `errordetails`: a mock-defined place).
    pub details: Option<String>,
}

impl RunFailure {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_owned(), message: message.into(), details: None }
    }
}

/// One run (a flow session).
#[derive(Debug, Clone)]
pub struct Run {
    /// `flowsessionid`.
    pub id: FlowSessionId,
    /// Environment.
    pub environment: EnvironmentId,
    /// The desktop flow.
    pub flow: WorkflowId,
    /// Its name then.
    pub flow_name: String,
    /// Its owner then (may read and cancel the run).
    pub flow_owner: PrincipalId,
    /// The connection.
    pub connection: ConnectionId,
    /// The machine group the connection targets.
    pub group: MachineGroupId,
    /// Attended or unattended.
    pub mode: RunMode,
    /// Priority.
    pub priority: Priority,
    /// Action timeout in seconds.
    pub timeout_secs: u64,
    /// Whether the connection is connect-with-sign-in.
    pub sign_in: bool,
    /// The Windows account it runs as (the sign-in user's UPN or the login's username).
    pub account: String,
    /// Who started it.
    pub started_by: PrincipalId,
    /// Enqueue order within the sandbox.
    pub seq: u64,
    /// When it was queued.
    pub enqueued_on: Timestamp,
    /// Status.
    pub status: RunStatus,
    /// The machine it was assigned to.
    pub machine: Option<MachineId>,
    /// When it started on the machine.
    pub started_on: Option<Timestamp>,
    /// When it ended.
    pub completed_on: Option<Timestamp>,
    /// Failure, for Failed and TimedOut.
    pub failure: Option<RunFailure>,
    /// Outputs (JSON text), for Succeeded.
    pub outputs: Option<String>,
    /// Inputs (JSON text) as given, defaults filled in.
    pub inputs: String,
    /// Where to report its end.
    pub callback_url: Option<String>,
    /// What it does once started (the flow's simulation when it was queued).
    pub simulation: Simulation,
}

impl Run {
    /// Seconds spent queued: until it started, ended, or `now`.
    pub fn wait_secs(&self, now: Timestamp) -> i64 {
        let until = self.started_on.or(self.completed_on).unwrap_or(now);
        (until - self.enqueued_on).num_seconds().max(0)
    }

    fn limit_secs(&self, limits: RunLimits) -> u64 {
        if self.sign_in { limits.sign_in_queue_time_limit_secs } else { limits.queue_time_limit_secs }
    }

    /// When it completes or times out, for a Running run.
    fn due(&self) -> Option<Timestamp> {
        let started = self.started_on?;
        let secs = self.simulation.duration_secs().min(self.timeout_secs);
        started.checked_add_signed(Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2_000)))
    }

    /// When its queue time reaches the limit, for a Waiting run.
    fn expiry(&self, limits: RunLimits) -> Timestamp {
        let secs = i64::try_from(self.limit_secs(limits)).unwrap_or(i64::MAX / 2_000);
        self.enqueued_on.checked_add_signed(Duration::seconds(secs)).unwrap_or(self.enqueued_on)
    }

    fn end(&mut self, status: RunStatus, at: Timestamp, failure: Option<RunFailure>) -> RunEvent {
        self.status = status;
        self.completed_on = Some(at);
        let kind = match &failure {
            Some(f) => RunEventKind::Ended { status, code: Some(f.code.clone()) },
            None => RunEventKind::Ended { status, code: None },
        };
        self.failure = failure;
        let callback = self.callback_url.clone().map(|url| Callback {
            url,
            workflow: self.flow,
            run: self.id,
            statuscode: status.statuscode(),
            started_on: self.started_on,
            completed_on: at,
        });
        RunEvent { run: self.id, at, kind, callback }
    }
}

/// Queue-time limits (settings `queueTimeLimitSecs`, `signInQueueTimeLimitSecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Standard limit (default 12 h).
    pub queue_time_limit_secs: u64,
    /// Connect with sign-in (default 1 h).
    pub sign_in_queue_time_limit_secs: u64,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self { queue_time_limit_secs: 43_200, sign_in_queue_time_limit_secs: 3_600 }
    }
}

/// A transition a run went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEventKind {
    /// Queued (Waiting).
    Queued,
    /// Assigned to a machine (Running).
    Started {
        /// The machine.
        machine: MachineId,
    },
    /// Ended.
    Ended {
        /// Final status.
        status: RunStatus,
        /// Error code, when it failed or timed out.
        code: Option<String>,
    },
}

/// A run transition at an instant of the virtual clock (journaled as an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    /// The run.
    pub run: FlowSessionId,
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: RunEventKind,
    /// The call its end owes its `callbackUrl` (made by the api layer, after the lock).
    pub callback: Option<Callback>,
}

/// What the end of a run with a `callbackUrl` sends there (api-facts 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// Where.
    pub url: String,
    /// `x-ms-workflow-id`.
    pub workflow: WorkflowId,
    /// `x-ms-run-id` and `flowsessionid`.
    pub run: FlowSessionId,
    /// `statuscode` at the end.
    pub statuscode: i64,
    /// `startedon`.
    pub started_on: Option<Timestamp>,
    /// `completedon`.
    pub completed_on: Timestamp,
}

/// What moved the queue: a clock change assigns runs; a world change (a control call, a
/// Dataverse write) only applies the failures it causes, at the current instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The clock changed (an advance of 0 s too).
    Clock,
    /// The world changed.
    WorldChange,
}

/// The runs of a sandbox.
#[derive(Debug, Clone, Default)]
pub struct RunQueue {
    /// Every run, in enqueue order.
    pub runs: Vec<Run>,
    next_seq: u64,
    /// The instant up to which transitions have been applied.
    settled: Option<Timestamp>,
}

/// How a run request names its connection (`connectionType` 1 or 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionName {
    /// A connection's name (its id).
    Connection(String),
    /// A connection reference's logical name.
    Reference(String),
}

/// A run request from either door, parsed at the edge.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Environment.
    pub environment: EnvironmentId,
    /// The desktop flow.
    pub flow: WorkflowId,
    /// The connection.
    pub connection: ConnectionName,
    /// Mode.
    pub mode: RunMode,
    /// Priority.
    pub priority: Priority,
    /// Timeout in seconds (`None`: 3 h).
    pub timeout_secs: Option<u64>,
    /// Inputs as JSON text.
    pub inputs: String,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// The cloud flow's asynchronous pattern is off (`x-mock-async-disabled: true`).
    pub async_disabled: bool,
}

/// Which account, in which session state, a machine shows for a run's user.
fn session_of<'m>(m: &'m Machine, account: &str) -> impl Iterator<Item = SessionState> + 'm {
    let account = account.to_owned();
    m.sessions.iter().filter(move |s| same_account(&account, &s.user, &m.name)).map(|s| s.state)
}

impl World {
    fn running_on(&self, machine: MachineId) -> impl Iterator<Item = &Run> {
        self.runs.runs.iter().filter(move |r| r.status == RunStatus::Running && r.machine == Some(machine))
    }

    /// The sessions unattended runs have opened on a machine: (account, run).
    pub fn run_sessions(&self, machine: MachineId) -> Vec<(String, FlowSessionId)> {
        self.running_on(machine).filter(|r| r.mode == RunMode::Unattended).map(|r| (r.account.clone(), r.id)).collect()
    }

    /// Whether `run` may start on `m` now (DECISIONS.md, Runs: machine selection).
    fn fits(&self, run: &Run, m: &Machine) -> bool {
        if m.group != run.group || !m.online || m.maintenance {
            return false;
        }
        match run.mode {
            RunMode::Attended => m.sessions.iter().any(|s| {
                s.state == SessionState::Active
                    && same_account(&run.account, &s.user, &m.name)
                    && !self
                        .running_on(m.id)
                        .any(|r| r.mode == RunMode::Attended && same_account(&r.account, &s.user, &m.name))
            }),
            RunMode::Unattended => {
                let opened = self.running_on(m.id).filter(|r| r.mode == RunMode::Unattended).count();
                if u32::try_from(opened).unwrap_or(u32::MAX) >= m.session_capacity {
                    return false;
                }
                match m.windows_edition {
                    // Windows 10/11 hold one session at a time: any session, even locked, blocks.
                    WindowsEdition::Client => m.sessions.is_empty() && opened == 0,
                    WindowsEdition::Server => {
                        session_of(m, &run.account).next().is_none()
                            && !self.running_on(m.id).any(|r| {
                                r.mode == RunMode::Unattended && same_account(&r.account, &run.account, &m.name)
                            })
                    }
                }
            }
        }
    }

    /// `NoCandidateMachine`'s sub-code: why no machine of the group fitted (SUP-QUEUE).
    fn no_candidate_reason(&self, run: &Run) -> Option<&'static str> {
        let env = self.environment(&run.environment)?;
        let ready: Vec<&Machine> =
            env.machines.iter().filter(|m| m.group == run.group && m.online && !m.maintenance).collect();
        if ready.is_empty() {
            return None;
        }
        let states: Vec<SessionState> = ready.iter().flat_map(|m| session_of(m, &run.account)).collect();
        match run.mode {
            RunMode::Attended if states.is_empty() => Some("AttendedUserNotLoggedIn"),
            RunMode::Attended if !states.contains(&SessionState::Active) => Some("AttendedUserSessionNotActive"),
            RunMode::Attended => Some("UIFlowAlreadyRunning"),
            RunMode::Unattended => Some(match states.first() {
                Some(SessionState::Locked) => "UnattendedUserSessionLocked",
                Some(SessionState::Disconnected) => "UnattendedUserSessionDisconnected",
                Some(SessionState::Active) => "SessionExistsForTheUserWhenUnattended",
                None => "UIFlowAlreadyRunning",
            }),
        }
    }

    /// The connection a request names, if the caller may run flows with it.
    fn run_connection(
        &self,
        caller: &Caller,
        env: &EnvironmentId,
        name: &ConnectionName,
    ) -> Result<&Connection, Error> {
        let e = self.environment(env).ok_or_else(|| super::world::environment_not_found(env, caller))?;
        let id_text = match name {
            ConnectionName::Connection(id) => id.clone(),
            ConnectionName::Reference(logical) => {
                let r =
                    e.connection_references.iter().find(|r| r.logical_name.eq_ignore_ascii_case(logical)).ok_or_else(
                        || Error::ConnectionNotUsableForRuns {
                            connection: logical.clone(),
                            reason: "no connection reference has this logical name",
                        },
                    )?;
                if r.connection_id.is_empty() {
                    return Err(Error::ConnectionNotUsableForRuns {
                        connection: logical.clone(),
                        reason: "the connection reference names no connection (its connectionid is empty)",
                    });
                }
                r.connection_id.clone()
            }
        };
        let id = ConnectionId::parse(&id_text).map_err(|_| Error::ConnectionNotFound(id_text.clone()))?;
        let c = self
            .connections
            .iter()
            .find(|c| &c.environment == env && c.id == id)
            .ok_or_else(|| Error::ConnectionNotFound(id_text.clone()))?;
        if c.connector != UIFLOW {
            return Err(Error::ConnectionNotUsableForRuns {
                connection: id_text,
                reason: "it is not a desktop flows connection",
            });
        }
        if !c.visible_to(caller.principal) {
            return Err(Error::ConnectionAccessDenied {
                connection: c.id.as_written().to_owned(),
                reason: "a run needs the connection's owner or a principal it is shared with",
            });
        }
        Ok(c)
    }

    /// The connection a run request names, if the caller may run flows with it (what the
    /// throttle counts runs by).
    pub fn run_connection_id(
        &self,
        caller: &Caller,
        env: &EnvironmentId,
        name: &ConnectionName,
    ) -> Result<ConnectionId, Error> {
        self.run_connection(caller, env, name).map(|c| c.id.clone())
    }

    /// Queues a run: Waiting until the clock next changes, or Failed at once for the outcomes
    /// decided at the request. Refusals that make no run are errors.
    pub fn enqueue_run(
        &mut self,
        caller: &Caller,
        req: RunRequest,
        id: FlowSessionId,
        now: Timestamp,
    ) -> Result<Vec<RunEvent>, Error> {
        let timeout_secs = req.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
            return Err(Error::InvalidRunParameter(format!(
                "The timeout must be 1 to {MAX_TIMEOUT_SECS} seconds (24 hours); got {timeout_secs}."
            )));
        }
        let env = self
            .environment(&req.environment)
            .ok_or_else(|| super::world::environment_not_found(&req.environment, caller))?;
        let flow = env
            .desktop_flows
            .iter()
            .find(|f| f.id == req.flow)
            .ok_or_else(|| Error::RecordNotFound { entity: "workflow", id: req.flow.to_string() })?
            .clone();
        let c = self.run_connection(caller, &req.environment, &req.connection)?;
        let group = c.parameters.target();
        let sign_in = c.parameters.is_sign_in();
        let account = self.run_account(c).unwrap_or_default();
        let connection = c.id.clone();
        let group_state = self
            .environment(&req.environment)
            .map(|e| (e.group(group).is_some(), e.machines.iter().any(|m| m.group == group)));
        let seq = self.runs.next_seq;
        self.runs.next_seq += 1;
        let mut run = Run {
            id,
            environment: req.environment,
            flow: flow.id,
            flow_name: flow.name.clone(),
            flow_owner: flow.owner,
            connection,
            group,
            mode: req.mode,
            priority: req.priority,
            timeout_secs,
            sign_in,
            account,
            started_by: caller.principal,
            seq,
            enqueued_on: now,
            status: RunStatus::Waiting,
            machine: None,
            started_on: None,
            completed_on: None,
            failure: None,
            outputs: None,
            inputs: req.inputs,
            callback_url: req.callback_url,
            simulation: flow.simulation,
        };
        let mut events = vec![RunEvent { run: id, at: now, kind: RunEventKind::Queued, callback: None }];
        let at_once = if sign_in && req.mode == RunMode::Unattended {
            Some(RunFailure::new(
                "SignInConnectionAttendedOnly",
                "Connect with sign-in works only for attended runs: run this desktop flow attended, or use a connection with a Windows username and password for unattended runs.",
            ))
        } else if sign_in && req.async_disabled {
            Some(RunFailure::new(
                "PasswordlessTokenExpiry",
                "The connect-with-sign-in token cannot be used when the cloud flow's asynchronous pattern is off (AsyncDisabled): turn the asynchronous pattern on for this action (mock text).",
            ))
        } else {
            match group_state {
                Some((false, _)) | None => Some(RunFailure::new(
                    "XrmMachineGroupNotFound",
                    format!("The machine group '{group}' was not found: it was deleted."),
                )),
                Some((true, false)) => Some(RunFailure::new(
                    "GroupIsEmpty",
                    format!("The machine group '{group}' has no machines: add one to run desktop flows on it."),
                )),
                Some((true, true)) => None,
            }
        };
        if let Some(f) = at_once {
            events.push(run.end(RunStatus::Failed, now, Some(f)));
        }
        self.runs.runs.push(run);
        if self.runs.settled.is_none_or(|s| s < now) {
            self.runs.settled = Some(now);
        }
        Ok(events)
    }

    /// The one entry point of time: applies, in time order, every transition due at or before
    /// `to`, each at the instant it is due. A clock change assigns runs at each instant from
    /// the last settled one; a world change applies only the failures it causes, at `to`.
    pub fn advance_to(&mut self, to: Timestamp, limits: RunLimits, trigger: Trigger) -> Vec<RunEvent> {
        let mut events = Vec::new();
        let mut at = match (trigger, self.runs.settled) {
            (Trigger::Clock, Some(s)) if s < to => s,
            _ => to,
        };
        loop {
            self.step(at, limits, trigger == Trigger::Clock, &mut events);
            match self.next_due_after(at, limits) {
                Some(next) if next <= to => at = next,
                _ => break,
            }
        }
        self.runs.settled = Some(to);
        events
    }

    /// The next instant after `at` when a run transition is due (a completion, a timeout, a
    /// queue-limit expiry): what `toNextEvent` advances to.
    pub fn next_run_event_after(&self, at: Timestamp, limits: RunLimits) -> Option<Timestamp> {
        self.next_due_after(at, limits)
    }

    /// The next instant after `at` when a Running run ends; `None` when none runs (what
    /// `untilIdle` waits for: Waiting runs wait on world changes).
    pub fn next_run_completion_after(&self, at: Timestamp) -> Option<Timestamp> {
        self.runs.runs.iter().filter(|r| r.status == RunStatus::Running).filter_map(Run::due).filter(|t| *t > at).min()
    }

    /// Whether a run is Running.
    pub fn any_run_running(&self) -> bool {
        self.runs.runs.iter().any(|r| r.status == RunStatus::Running)
    }

    /// Ends a Waiting or Running run now, as a test asks (`POST /_mock/runs/{id}/complete` or
    /// `/fail`), without editing its flow: outputs (JSON text) to succeed, a failure to fail.
    pub fn end_run_now(
        &mut self,
        id: FlowSessionId,
        outcome: Result<String, (String, String)>,
        now: Timestamp,
    ) -> Result<RunEvent, Error> {
        let run = self
            .runs
            .runs
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::RecordNotFound { entity: "flowsession", id: id.to_string() })?;
        if run.status.is_terminal() {
            return Err(Error::RunAlreadyEnded(id.to_string()));
        }
        Ok(match outcome {
            Ok(outputs) => {
                run.outputs = Some(outputs);
                run.end(RunStatus::Succeeded, now, None)
            }
            Err((code, message)) => run.end(RunStatus::Failed, now, Some(RunFailure::new(&code, message))),
        })
    }

    /// The next instant after `at` when something is due: a completion, a timeout, an expiry.
    fn next_due_after(&self, at: Timestamp, limits: RunLimits) -> Option<Timestamp> {
        self.runs
            .runs
            .iter()
            .filter_map(|r| match r.status {
                RunStatus::Running => r.due(),
                RunStatus::Waiting => Some(r.expiry(limits)),
                _ => None,
            })
            .filter(|t| *t > at)
            .min()
    }

    /// Everything due at the instant `at`, in runs.md's order.
    fn step(&mut self, at: Timestamp, limits: RunLimits, assign: bool, events: &mut Vec<RunEvent>) {
        // 1. Completions, timeouts, and failures of running runs the world caused.
        for i in 0..self.runs.runs.len() {
            let run = &self.runs.runs[i];
            let outcome = match run.status {
                RunStatus::Running => self.running_outcome(run, at),
                RunStatus::Waiting => self.waiting_group_gone(run),
                _ => None,
            };
            if let Some((status, failure, outputs)) = outcome {
                let run = &mut self.runs.runs[i];
                run.outputs = outputs;
                events.push(run.end(status, at, failure));
            }
        }
        // 2. Queue-limit expiries (inclusive).
        for i in 0..self.runs.runs.len() {
            let run = &self.runs.runs[i];
            if run.status == RunStatus::Waiting && run.expiry(limits) <= at {
                let details = self.no_candidate_reason(run).map(str::to_owned);
                let message = if run.sign_in {
                    format!(
                        "{NO_CANDIDATE} Connect with sign-in runs can wait in the queue for {} at most.",
                        span(limits.sign_in_queue_time_limit_secs)
                    )
                } else {
                    NO_CANDIDATE.to_owned()
                };
                let failure = RunFailure { code: "NoCandidateMachine".into(), message, details };
                let run = &mut self.runs.runs[i];
                events.push(run.end(RunStatus::Failed, at, Some(failure)));
            }
        }
        if !assign {
            return;
        }
        // 3. Assignments in queue order; the first machine by name that fits.
        let mut order: Vec<usize> =
            (0..self.runs.runs.len()).filter(|i| self.runs.runs[*i].status == RunStatus::Waiting).collect();
        order.sort_by_key(|i| (self.runs.runs[*i].priority, self.runs.runs[*i].seq));
        for i in order {
            let run = &self.runs.runs[i];
            let Some(env) = self.environment(&run.environment) else { continue };
            let mut candidates: Vec<&Machine> = env.machines.iter().filter(|m| self.fits(run, m)).collect();
            candidates.sort_by_key(|m| m.name.to_lowercase());
            let Some(m) = candidates.first() else { continue };
            let machine = m.id;
            let refused = self.sign_in_refusal(run, m, env.tenant);
            let run = &mut self.runs.runs[i];
            run.machine = Some(machine);
            match refused {
                Some(f) => events.push(run.end(RunStatus::Failed, at, Some(f))),
                None => {
                    run.status = RunStatus::Running;
                    run.started_on = Some(at);
                    events.push(RunEvent { run: run.id, at, kind: RunEventKind::Started { machine }, callback: None });
                }
            }
        }
    }

    /// The failure a run meets when it signs in on the machine it was assigned to.
    fn sign_in_refusal(&self, run: &Run, m: &Machine, tenant: super::ids::TenantId) -> Option<RunFailure> {
        let Some(c) = self.connections.get(&run.environment, &run.connection) else {
            return Some(RunFailure::new(
                "WindowsIdentityIncorrect",
                format!("The connection '{}' was deleted: the run cannot sign in.", run.connection.as_written()),
            ));
        };
        match self.status_on(c, m) {
            ConnectionStatus::Connected => None,
            ConnectionStatus::Error { code: "UnallowedTenantForConnectWithSignIn", .. } => Some(RunFailure::new(
                "UnallowedTenantForConnectWithSignIn",
                format!(
                    "Tenant {tenant} needs to be explicitly allowlisted to authorize 'connect with sign-in' runs on the machine."
                ),
            )),
            ConnectionStatus::Error { code, message } => Some(RunFailure::new(code, message)),
        }
    }

    /// How a Running run ends at `at`, if it does.
    fn running_outcome(&self, run: &Run, at: Timestamp) -> Option<(RunStatus, Option<RunFailure>, Option<String>)> {
        let machine =
            run.machine.and_then(|id| self.environment(&run.environment)?.machines.iter().find(|m| m.id == id));
        let Some(m) = machine.filter(|m| m.online) else {
            let name = machine.map_or_else(|| "the machine".to_owned(), |m| m.name.clone());
            return Some((
                RunStatus::Failed,
                Some(RunFailure::new(
                    "NoListenerConnected",
                    format!("The endpoint of {name} has no listener connected: the machine is offline."),
                )),
                None,
            ));
        };
        if run.mode == RunMode::Attended && !session_of(m, &run.account).any(|s| s == SessionState::Active) {
            return Some((
                RunStatus::Failed,
                Some(RunFailure::new(
                    "NoUnlockedActiveSessionForAttended",
                    format!(
                        "There is no unlocked active session of '{}' on {}: the session the attended run used was locked, disconnected or closed.",
                        run.account, m.name
                    ),
                )),
                None,
            ));
        }
        if run.due().is_some_and(|d| d <= at) {
            if run.simulation.duration_secs() > run.timeout_secs {
                return Some((
                    RunStatus::TimedOut,
                    Some(RunFailure::new(
                        "DesktopFlowsActionTimeout",
                        format!(
                            "The desktop flow run did not finish within its timeout of {} seconds.",
                            run.timeout_secs
                        ),
                    )),
                    None,
                ));
            }
            return Some(match &run.simulation {
                Simulation::Succeed { outputs, .. } => (RunStatus::Succeeded, None, Some(outputs.clone())),
                Simulation::Fail { code, message, .. } => {
                    (RunStatus::Failed, Some(RunFailure::new(code, message.clone())), None)
                }
            });
        }
        None
    }

    /// A Waiting run whose group was deleted fails at once.
    fn waiting_group_gone(&self, run: &Run) -> Option<(RunStatus, Option<RunFailure>, Option<String>)> {
        let gone = self.environment(&run.environment).is_none_or(|e| e.group(run.group).is_none());
        gone.then(|| {
            (
                RunStatus::Failed,
                Some(RunFailure::new(
                    "XrmMachineGroupNotFound",
                    format!("The machine group '{}' was not found: it was deleted while the run waited.", run.group),
                )),
                None,
            )
        })
    }

    /// A run the caller may read: it started it, or owns its flow (others: `0x80040220`).
    pub fn flow_session(&self, caller: &Caller, env: &EnvironmentId, id: FlowSessionId) -> Result<&Run, Error> {
        let run = self
            .runs
            .runs
            .iter()
            .find(|r| r.id == id && &r.environment == env)
            .ok_or_else(|| Error::RecordNotFound { entity: "flowsession", id: id.to_string() })?;
        if run.started_by != caller.principal && run.flow_owner != caller.principal {
            return Err(Error::MissingPrivilege {
                privilege: "prvReadflowsession",
                principal: caller.principal.to_string(),
            });
        }
        Ok(run)
    }

    /// The runs of an environment the caller may read.
    pub fn flow_sessions(&self, caller: &Caller, env: &EnvironmentId) -> Vec<&Run> {
        self.runs
            .runs
            .iter()
            .filter(|r| &r.environment == env && (r.started_by == caller.principal || r.flow_owner == caller.principal))
            .collect()
    }

    /// `CancelDesktopFlowRun`: a Waiting or Running run ends Cancelled now, freeing its session.
    pub fn cancel_run(
        &mut self,
        caller: &Caller,
        env: &EnvironmentId,
        id: FlowSessionId,
        now: Timestamp,
    ) -> Result<RunEvent, Error> {
        let status = self.flow_session(caller, env, id)?.status;
        if status.is_terminal() {
            return Err(Error::RunAlreadyEnded(id.to_string()));
        }
        let run = self.runs.runs.iter_mut().find(|r| r.id == id).ok_or(Error::RunAlreadyEnded(id.to_string()))?;
        Ok(run.end(RunStatus::Cancelled, now, None))
    }
}

/// `one hour`, `2 hours`, `90 seconds`.
fn span(secs: u64) -> String {
    match secs {
        3600 => "one hour".to_owned(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::default_start;
    use crate::domain::connection::{Login, ParameterSet};
    use crate::domain::ids::TenantId;
    use crate::domain::world::{GroupType, MachineGroup, Session};
    use secrecy::SecretString;

    const ENV: &str = "37520647-dbdf-49fa-ba01-6134c14680c4";
    const CONTOSO: &str = "c7263f1a-afcd-4e8a-a7ce-66b19698caaa";
    const MEGAN: &str = "9b938b62-1239-4855-aaa8-bd33df599368";
    const BUILD_GROUP: &str = "fbd9ef90-eb39-437b-a791-919993c57260";
    const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
    const BUILD_01: &str = "78afb281-eb1e-4e35-ba11-9460dcabf47a";
    const FLOW_OK: &str = "5c0e6f3e-9a57-4c1e-8d0f-3a2b7c9e1d42";
    const FLOW_FAIL: &str = "a7d3c1b9-2f4e-4b8a-9c6d-0e1f2a3b4c5d";

    /// A default world, its clock, and the connections a test made.
    struct Sim {
        w: World,
        now: Timestamp,
        ids: u128,
        limits: RunLimits,
    }

    fn env() -> EnvironmentId {
        EnvironmentId::parse(ENV).unwrap()
    }

    impl Sim {
        fn new() -> Self {
            let w = World::from_fixture("default", &fixtures::default_world()).unwrap();
            Self { w, now: default_start(), ids: 0, limits: RunLimits::default() }
        }

        fn megan(&self) -> Caller {
            self.w.caller(TenantId::parse(CONTOSO).unwrap(), PrincipalId::parse(MEGAN).unwrap(), None).unwrap()
        }

        fn connect(&mut self, parameters: ParameterSet) -> String {
            self.ids += 1;
            let id = format!("00000000-0000-0000-0000-{:012}", self.ids);
            let megan = self.megan();
            self.w.connections.insert(Connection {
                id: ConnectionId::parse(&id).unwrap(),
                environment: env(),
                connector: UIFLOW,
                display_name: id.clone(),
                parameters,
                created_by: megan.into(),
                created_time: self.now,
                last_modified_time: self.now,
                correlation: uuid::Uuid::nil(),
                shares: Vec::new(),
            });
            id
        }

        fn sign_in(&mut self, group: &str) -> String {
            self.connect(ParameterSet::PasswordlessAttended { target: MachineGroupId::parse(group).unwrap() })
        }

        fn password(&mut self, group: &str, username: &str, password: &str) -> String {
            self.connect(ParameterSet::AzureRelay {
                login: Login::Password { username: username.into(), password: SecretString::from(password.to_owned()) },
                target: MachineGroupId::parse(group).unwrap(),
            })
        }

        fn request(&mut self, conn: &str, mode: RunMode, flow: &str) -> RunRequest {
            RunRequest {
                environment: env(),
                flow: WorkflowId::parse(flow).unwrap(),
                connection: ConnectionName::Connection(conn.to_owned()),
                mode,
                priority: Priority::Normal,
                timeout_secs: None,
                inputs: "{}".into(),
                callback_url: None,
                async_disabled: false,
            }
        }

        fn submit(&mut self, req: RunRequest) -> FlowSessionId {
            self.ids += 1;
            let id = FlowSessionId::from_uuid(uuid::Uuid::from_u128(0xf000_0000 + self.ids));
            let megan = self.megan();
            self.w.enqueue_run(&megan, req, id, self.now).unwrap();
            id
        }

        fn run(&mut self, conn: &str, mode: RunMode, flow: &str) -> FlowSessionId {
            let req = self.request(conn, mode, flow);
            self.submit(req)
        }

        fn advance(&mut self, secs: i64) -> Vec<RunEvent> {
            self.now += Duration::seconds(secs);
            self.w.advance_to(self.now, self.limits, Trigger::Clock)
        }

        fn get(&self, id: FlowSessionId) -> &Run {
            self.w.runs.runs.iter().find(|r| r.id == id).unwrap()
        }

        fn status(&self, id: FlowSessionId) -> (RunStatus, Option<String>) {
            let r = self.get(id);
            (r.status, r.failure.as_ref().map(|f| f.code.clone()))
        }

        fn set_sessions(&mut self, machine: &str, sessions: Vec<Session>) {
            let id = MachineId::parse(machine).unwrap();
            let m = self.w.environments[0].machines.iter_mut().find(|m| m.id == id).unwrap();
            m.sessions = sessions;
            let now = self.now;
            self.w.advance_to(now, self.limits, Trigger::WorldChange);
        }

        fn machine_mut(&mut self, name: &str) -> &mut Machine {
            self.w.environments[0].machines.iter_mut().find(|m| m.name == name).unwrap()
        }
    }

    fn megan_session(state: SessionState) -> Session {
        Session { user: "megan@contoso.onmicrosoft.com".into(), state }
    }

    #[test]
    fn an_attended_sign_in_run_waits_for_the_clock_then_succeeds_with_the_flows_outputs() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        assert_eq!(s.status(run), (RunStatus::Waiting, None), "never assigned inside its request");
        s.advance(0);
        assert_eq!(s.status(run).0, RunStatus::Running);
        assert_eq!(s.get(run).started_on, Some(default_start()));
        assert_eq!(s.get(run).machine, Some(MachineId::parse(BUILD_01).unwrap()));
        s.advance(119);
        assert_eq!(s.status(run).0, RunStatus::Running);
        s.advance(1);
        assert_eq!(s.status(run), (RunStatus::Succeeded, None));
        assert_eq!(s.get(run).completed_on, Some(default_start() + Duration::seconds(120)));
        assert_eq!(s.get(run).outputs.as_deref(), Some(r#"{"InvoiceCount":42,"Status":"Exported"}"#));
    }

    #[test]
    fn one_advance_applies_each_transition_at_its_own_instant() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(7200);
        let r = s.get(run);
        assert_eq!(r.started_on, Some(default_start()));
        assert_eq!(r.completed_on, Some(default_start() + Duration::seconds(120)), "not at the advance's end");
    }

    #[test]
    fn a_sign_in_run_without_its_users_session_fails_with_no_candidate_machine_at_one_hour_inclusive() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        s.set_sessions(BUILD_01, Vec::new());
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(3599);
        assert_eq!(s.status(run), (RunStatus::Waiting, None));
        s.advance(1);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("NoCandidateMachine".into())));
        let f = s.get(run).failure.clone().unwrap();
        assert!(f.message.contains("one hour"), "{}", f.message);
        assert_eq!(f.details.as_deref(), Some("AttendedUserNotLoggedIn"));
        assert_eq!(s.get(run).completed_on, Some(default_start() + Duration::seconds(3600)));
    }

    #[test]
    fn a_locked_session_gives_the_session_not_active_sub_code() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        s.set_sessions(BUILD_01, vec![megan_session(SessionState::Locked)]);
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(4000);
        assert_eq!(s.get(run).failure.as_ref().unwrap().details.as_deref(), Some("AttendedUserSessionNotActive"));
    }

    #[test]
    fn other_connections_wait_up_to_the_standard_limit_setting() {
        let mut s = Sim::new();
        let c = s.password(BUILD_GROUP, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!");
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(3600);
        assert_eq!(s.status(run).0, RunStatus::Waiting, "the one-hour limit is for sign-in only");
        s.advance(43_200 - 3600 - 1);
        assert_eq!(s.status(run).0, RunStatus::Waiting);
        s.advance(1);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("NoCandidateMachine".into())));
        assert_eq!(s.get(run).failure.as_ref().unwrap().message, NO_CANDIDATE);
        let mut s = Sim::new();
        s.limits.queue_time_limit_secs = 600;
        let c = s.password(BUILD_GROUP, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!");
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(600);
        assert_eq!(s.status(run).0, RunStatus::Failed, "the limit is a setting");
    }

    #[test]
    fn at_the_request_unattended_sign_in_and_async_disabled_fail_at_once() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        let run = s.run(&c, RunMode::Unattended, FLOW_OK);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("SignInConnectionAttendedOnly".into())));
        let mut req = s.request(&c, RunMode::Attended, FLOW_OK);
        req.async_disabled = true;
        let run = s.submit(req);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("PasswordlessTokenExpiry".into())));
        let p = s.password(BUILD_GROUP, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!");
        let mut req = s.request(&p, RunMode::Attended, FLOW_OK);
        req.async_disabled = true;
        let run = s.submit(req);
        assert_eq!(s.status(run).0, RunStatus::Waiting, "AsyncDisabled changes nothing for other connections");
    }

    #[test]
    fn an_empty_or_deleted_group_fails_the_run() {
        let mut s = Sim::new();
        let empty = "11111111-2222-3333-4444-555555555555";
        let mut g = MachineGroup::default_for(
            MachineGroupId::parse(empty).unwrap(),
            "Empty",
            PrincipalId::parse(MEGAN).unwrap(),
        );
        g.group_type = GroupType::Standard;
        s.w.environments[0].machine_groups.push(g);
        let c = s.sign_in(empty);
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("GroupIsEmpty".into())));
        let c = s.password(BUILD_GROUP, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!");
        let waiting = s.run(&c, RunMode::Attended, FLOW_OK);
        s.w.environments[0].machine_groups.retain(|g| g.id != MachineGroupId::parse(BUILD_GROUP).unwrap());
        let now = s.now;
        s.w.advance_to(now, s.limits, Trigger::WorldChange);
        assert_eq!(s.status(waiting), (RunStatus::Failed, Some("XrmMachineGroupNotFound".into())));
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("XrmMachineGroupNotFound".into())));
    }

    #[test]
    fn a_sign_in_run_on_an_ad_joined_machine_that_does_not_allowlist_the_tenant_fails_at_assignment() {
        let mut s = Sim::new();
        let c = s.sign_in(FINANCE);
        // FIN-01 allowlists Contoso; only FIN-02 has Megan's session.
        s.machine_mut("FIN-02").sessions.push(megan_session(SessionState::Active));
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        assert_eq!(s.status(run).0, RunStatus::Waiting);
        s.advance(0);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("UnallowedTenantForConnectWithSignIn".into())));
        assert_eq!(
            s.get(run).failure.as_ref().unwrap().message,
            format!(
                "Tenant {CONTOSO} needs to be explicitly allowlisted to authorize 'connect with sign-in' runs on the machine."
            )
        );
        s.machine_mut("FIN-01").sessions.push(megan_session(SessionState::Active));
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(0);
        assert_eq!(s.get(run).status, RunStatus::Running, "FIN-01 allowlists the tenant and comes first by name");
    }

    #[test]
    fn a_rotated_password_fails_the_run_at_assignment_with_windows_identity_incorrect() {
        let mut s = Sim::new();
        let c = s.password(FINANCE, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!");
        for m in ["FIN-01", "FIN-02"] {
            s.machine_mut(m).windows_accounts[0].password = SecretString::from("rotated-Passw0rd!".to_owned());
        }
        let run = s.run(&c, RunMode::Unattended, FLOW_OK);
        s.advance(0);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("WindowsIdentityIncorrect".into())));
    }

    #[test]
    fn priority_then_fifo_on_a_frozen_clock() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        let a = s.run(&c, RunMode::Attended, FLOW_OK);
        let b = s.run(&c, RunMode::Attended, FLOW_OK);
        let mut req = s.request(&c, RunMode::Attended, FLOW_OK);
        req.priority = Priority::High;
        let high = s.submit(req);
        s.advance(0);
        assert_eq!(
            [s.status(high).0, s.status(a).0, s.status(b).0],
            [RunStatus::Running, RunStatus::Waiting, RunStatus::Waiting]
        );
        s.advance(120);
        assert_eq!(
            [s.status(high).0, s.status(a).0, s.status(b).0],
            [RunStatus::Succeeded, RunStatus::Running, RunStatus::Waiting]
        );
        assert_eq!(
            s.get(a).started_on,
            Some(default_start() + Duration::seconds(120)),
            "started when the session freed"
        );
        s.advance(120);
        assert_eq!(s.status(b).0, RunStatus::Running);
    }

    #[test]
    fn a_run_that_fits_no_machine_does_not_block_later_runs() {
        let mut s = Sim::new();
        let stuck = s.password(BUILD_GROUP, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!");
        let first = s.run(&stuck, RunMode::Attended, FLOW_OK);
        let c = s.sign_in(BUILD_GROUP);
        let second = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(0);
        assert_eq!((s.status(first).0, s.status(second).0), (RunStatus::Waiting, RunStatus::Running));
    }

    #[test]
    fn a_locked_session_or_an_offline_machine_fails_the_run_it_holds_at_that_change() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(10);
        s.set_sessions(BUILD_01, vec![megan_session(SessionState::Locked)]);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("NoUnlockedActiveSessionForAttended".into())));
        assert_eq!(s.get(run).completed_on, Some(default_start() + Duration::seconds(10)));
        s.set_sessions(BUILD_01, vec![megan_session(SessionState::Active)]);
        let run = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(0);
        s.machine_mut("BUILD-01").online = false;
        let now = s.now;
        s.w.advance_to(now, s.limits, Trigger::WorldChange);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("NoListenerConnected".into())));
    }

    #[test]
    fn a_run_still_running_at_its_timeout_times_out_and_a_failing_flow_fails_with_its_code() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        let mut req = s.request(&c, RunMode::Attended, FLOW_OK);
        req.timeout_secs = Some(60);
        let run = s.submit(req);
        s.advance(60);
        assert_eq!(s.status(run), (RunStatus::TimedOut, Some("DesktopFlowsActionTimeout".into())));
        assert_eq!(s.get(run).status.statuscode(), 10);
        let run = s.run(&c, RunMode::Attended, FLOW_FAIL);
        s.advance(60);
        assert_eq!(s.status(run), (RunStatus::Failed, Some("UIFlowAlreadyRunning".into())));
    }

    #[test]
    fn unattended_runs_respect_capacity_and_the_server_rule_for_one_account() {
        let mut s = Sim::new();
        let c = s.password(FINANCE, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!");
        let runs: Vec<_> = (0..3).map(|_| s.run(&c, RunMode::Unattended, FLOW_OK)).collect();
        s.advance(0);
        let names: Vec<Option<String>> = runs
            .iter()
            .map(|r| {
                let m = s.get(*r).machine?;
                s.w.environments[0].machines.iter().find(|x| x.id == m).map(|x| x.name.clone())
            })
            .collect();
        // One session of an account per Windows Server machine: FIN-01 and FIN-02 take one each.
        assert_eq!(names, vec![Some("FIN-01".into()), Some("FIN-02".into()), None]);
        assert_eq!(s.w.run_sessions(s.get(runs[0]).machine.unwrap()), vec![("CONTOSO\\svc-rpa".to_owned(), runs[0])]);
    }

    #[test]
    fn a_windows_client_with_any_user_session_takes_no_unattended_run() {
        let mut s = Sim::new();
        let c = s.password(BUILD_GROUP, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!");
        let run = s.run(&c, RunMode::Unattended, FLOW_OK);
        s.advance(0);
        assert_eq!(s.status(run).0, RunStatus::Waiting, "Megan's session blocks it");
        s.set_sessions(BUILD_01, Vec::new());
        assert_eq!(s.status(run).0, RunStatus::Waiting, "a world change assigns nothing");
        s.advance(0);
        assert_eq!(s.status(run).0, RunStatus::Running);
        assert_eq!(s.get(run).started_on, Some(default_start()));
    }

    #[test]
    fn cancel_ends_a_waiting_or_running_run_and_frees_its_session() {
        let mut s = Sim::new();
        let c = s.sign_in(BUILD_GROUP);
        let a = s.run(&c, RunMode::Attended, FLOW_OK);
        let b = s.run(&c, RunMode::Attended, FLOW_OK);
        s.advance(5);
        let megan = s.megan();
        let now = s.now;
        s.w.cancel_run(&megan, &env(), a, now).unwrap();
        assert_eq!(s.status(a).0, RunStatus::Cancelled);
        assert!(matches!(s.w.cancel_run(&megan, &env(), a, now), Err(Error::RunAlreadyEnded(_))));
        s.advance(0);
        assert_eq!(s.get(b).started_on, Some(default_start() + Duration::seconds(5)));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Run { conn: usize, unattended: bool, high: bool, fail: bool },
            Sessions { machine: usize, megan: Option<u8>, rpa: bool },
            Online { machine: usize, online: bool },
            Cancel { run: usize },
            Advance { secs: i64 },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..4usize, any::<bool>(), any::<bool>(), any::<bool>())
                    .prop_map(|(conn, unattended, high, fail)| Op::Run { conn, unattended, high, fail }),
                2 => (0..4usize, proptest::option::of(0..3u8), any::<bool>())
                    .prop_map(|(machine, megan, rpa)| Op::Sessions { machine, megan, rpa }),
                1 => (0..4usize, any::<bool>()).prop_map(|(machine, online)| Op::Online { machine, online }),
                1 => (0..16usize).prop_map(|run| Op::Cancel { run }),
                3 => prop_oneof![0..200i64, 0..5000i64].prop_map(|secs| Op::Advance { secs }),
            ]
        }

        type Snapshot =
            Vec<(FlowSessionId, RunStatus, Option<MachineId>, Option<Timestamp>, Option<Timestamp>, Option<String>)>;

        fn snapshot(w: &World) -> Snapshot {
            w.runs
                .runs
                .iter()
                .map(|r| {
                    (
                        r.id,
                        r.status,
                        r.machine,
                        r.started_on,
                        r.completed_on,
                        r.failure.as_ref().map(|f| f.code.clone()),
                    )
                })
                .collect()
        }

        fn check_invariants(w: &World, started: &[RunEvent]) -> Result<(), TestCaseError> {
            for m in &w.environments[0].machines {
                let running: Vec<&Run> = w.running_on(m.id).collect();
                let unattended = running.iter().filter(|r| r.mode == RunMode::Unattended).count();
                prop_assert!(unattended as u32 <= m.session_capacity, "{} unattended on {}", unattended, m.name);
                for (i, a) in running.iter().enumerate() {
                    for b in &running[i + 1..] {
                        prop_assert!(
                            !(a.mode == RunMode::Attended
                                && b.mode == RunMode::Attended
                                && same_account(&a.account, &b.account, &m.name)),
                            "two runs in one session on {}",
                            m.name
                        );
                    }
                }
            }
            for e in started {
                let RunEventKind::Started { machine } = e.kind else { continue };
                let run = w.runs.runs.iter().find(|r| r.id == e.run).unwrap();
                let m = w.environments[0].machines.iter().find(|m| m.id == machine).unwrap();
                prop_assert!(m.online && !m.maintenance);
                match run.mode {
                    RunMode::Attended => prop_assert!(
                        session_of(m, &run.account).any(|s| s == SessionState::Active),
                        "attended run started without an active session of its user"
                    ),
                    RunMode::Unattended => {
                        if m.windows_edition == WindowsEdition::Client {
                            prop_assert!(m.sessions.is_empty(), "unattended run on a client with a user session");
                        } else {
                            prop_assert!(session_of(m, &run.account).next().is_none());
                        }
                    }
                }
            }
            for r in &w.runs.runs {
                prop_assert_eq!(r.status.is_terminal(), r.completed_on.is_some());
            }
            Ok(())
        }

        fn play(ops: &[Op], check_steps: bool) -> Result<(Snapshot, Vec<RunEvent>), TestCaseError> {
            let mut s = Sim::new();
            let conns = [
                s.sign_in(BUILD_GROUP),
                s.password(BUILD_GROUP, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!"),
                s.password(FINANCE, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!"),
                s.sign_in(FINANCE),
            ];
            let machines: Vec<MachineId> = s.w.environments[0].machines.iter().map(|m| m.id).collect();
            let mut ids = Vec::new();
            let mut events = Vec::new();
            for op in ops {
                let mut new_events = Vec::new();
                match op {
                    Op::Run { conn, unattended, high, fail } => {
                        let mode = if *unattended { RunMode::Unattended } else { RunMode::Attended };
                        let mut req = s.request(&conns[*conn], mode, if *fail { FLOW_FAIL } else { FLOW_OK });
                        req.priority = if *high { Priority::High } else { Priority::Normal };
                        // Keep the flow short of the timeout sometimes, past it others.
                        req.timeout_secs = Some(if *fail { 30 } else { 3 * 3600 });
                        s.ids += 1;
                        let id = FlowSessionId::from_uuid(uuid::Uuid::from_u128(0xf000_0000 + s.ids));
                        let megan = s.megan();
                        new_events = s.w.enqueue_run(&megan, req, id, s.now).unwrap();
                        ids.push(id);
                    }
                    Op::Sessions { machine, megan, rpa } => {
                        let mut list = Vec::new();
                        if let Some(state) = megan {
                            let state = [SessionState::Active, SessionState::Locked, SessionState::Disconnected]
                                [*state as usize];
                            list.push(megan_session(state));
                        }
                        if *rpa {
                            list.push(Session { user: "CONTOSO\\svc-rpa".into(), state: SessionState::Active });
                        }
                        let id = machines[*machine];
                        s.w.environments[0].machines.iter_mut().find(|m| m.id == id).unwrap().sessions = list;
                        let now = s.now;
                        new_events = s.w.advance_to(now, s.limits, Trigger::WorldChange);
                    }
                    Op::Online { machine, online } => {
                        let id = machines[*machine];
                        s.w.environments[0].machines.iter_mut().find(|m| m.id == id).unwrap().online = *online;
                        let now = s.now;
                        new_events = s.w.advance_to(now, s.limits, Trigger::WorldChange);
                    }
                    Op::Cancel { run } => {
                        if let Some(id) = ids.get(*run) {
                            let megan = s.megan();
                            let now = s.now;
                            if let Ok(e) = s.w.cancel_run(&megan, &env(), *id, now) {
                                new_events.push(e);
                            }
                        }
                    }
                    Op::Advance { secs } => {
                        if check_steps && *secs <= 2000 {
                            // One advance gives what second-by-second advances give.
                            let mut stepped = Sim { w: s.w.clone(), now: s.now, ids: s.ids, limits: s.limits };
                            let mut stepped_events = Vec::new();
                            // An advance of 0 s is a clock change too: it is compared with itself.
                            let steps = if *secs == 0 { vec![0] } else { vec![1; usize::try_from(*secs).unwrap_or(0)] };
                            for step in steps {
                                stepped_events.extend(stepped.advance(step));
                            }
                            new_events = s.advance(*secs);
                            prop_assert_eq!(snapshot(&stepped.w), snapshot(&s.w));
                            prop_assert_eq!(&stepped_events, &new_events);
                        } else {
                            new_events = s.advance(*secs);
                        }
                    }
                }
                check_invariants(&s.w, &new_events)?;
                events.extend(new_events);
            }
            for r in &s.w.runs.runs {
                let ends =
                    events.iter().filter(|e| e.run == r.id && matches!(e.kind, RunEventKind::Ended { .. })).count();
                prop_assert_eq!(ends, usize::from(r.status.is_terminal()), "a run ends at most once");
            }
            Ok((snapshot(&s.w), events))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn the_queue_keeps_its_invariants_and_time_is_one_entry_point(ops in proptest::collection::vec(op(), 1..40)) {
                let first = play(&ops, true)?;
                let again = play(&ops, false)?;
                prop_assert_eq!(first.0, again.0, "the same sequence gives the same result");
                prop_assert_eq!(first.1, again.1);
            }
        }

        #[test]
        fn two_hours_in_one_advance_equal_7200_advances_of_one_second() {
            let mut s = Sim::new();
            let sign_in = s.sign_in(BUILD_GROUP);
            let svc = s.password(FINANCE, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!");
            for i in 0..6 {
                s.run(&sign_in, RunMode::Attended, if i % 2 == 0 { FLOW_OK } else { FLOW_FAIL });
                s.run(&svc, RunMode::Unattended, FLOW_OK);
            }
            let mut stepped = Sim { w: s.w.clone(), now: s.now, ids: s.ids, limits: s.limits };
            let once = s.advance(7200);
            let mut many = Vec::new();
            for _ in 0..7200 {
                many.extend(stepped.advance(1));
            }
            assert_eq!(snapshot(&s.w), snapshot(&stepped.w));
            assert_eq!(once, many);
            assert!(s.w.runs.runs.iter().all(|r| r.status.is_terminal()), "{:?}", snapshot(&s.w));
        }
    }
}
