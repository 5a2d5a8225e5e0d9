//! A run: the catalog filtered, the mock started or reached, each selected case in its own
//! sandbox `conf-{run id}-{n}` (deleted afterwards) with its own adapter process, N at a time;
//! then the expected-failures baseline and `--update`.

use crate::adapter::{Adapter, Environment};
use crate::case::{Case, ClientStep, DEFAULT_PUBLIC_CLIENT, Identity, LoadedCase, MockStep, Step};
use crate::check;
use crate::mock::{Advance, Doors, MockDoor};
use crate::report::{CaseReport, CaseStatus, Failure, Report};
use crate::substitute::{Saved, substitute};
use crate::world_map::WorldMap;
use mock_server::domain::clock::monotonic;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What to run and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The adapter command, run as `sh -c CMD` once per case.
    pub adapter_command: String,
    /// `--case`: comma-separated patterns; a pattern selects the id it equals, the ids under it
    /// (`connections/create`), or, with `*`, the ids it matches as a glob. `None`: every case.
    pub case_filter: Option<String>,
    /// Cases run at once; 0: the number of cores.
    pub jobs: usize,
    /// `--cases DIR`: load the catalog from this folder instead of the embedded one.
    pub cases_dir: Option<PathBuf>,
    /// `--mock-url`: a mock already running; `None` starts one in-process.
    pub mock_url: Option<String>,
    /// How long the adapter may take for one step (and for `hello`).
    pub step_timeout: Duration,
    /// Case ids expected to fail: their failures do not fail the run; a listed case that
    /// passes (or that does not exist) is stale and fails it.
    pub expected_failures: Vec<String>,
    /// `--update`: write each run case's observed requests back as its `expect.requests`.
    pub update: bool,
}

impl RunOptions {
    /// Every case, against `adapter_command`, in-process, one case per core, 30 s per step.
    pub fn new(adapter_command: impl Into<String>) -> Self {
        Self {
            adapter_command: adapter_command.into(),
            case_filter: None,
            jobs: 0,
            cases_dir: None,
            mock_url: None,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            expected_failures: Vec::new(),
            update: false,
        }
    }
}

/// The default per-step timeout (conformance.md).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a run could not produce a report (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A case file does not load.
    #[error("invalid case: {0}")]
    Case(#[from] crate::case::CaseError),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// The mock could not be started, reached or driven.
    #[error("mock: {0}")]
    Mock(String),
    /// A file could not be written.
    #[error("{0}")]
    Io(String),
}

/// The catalog: the embedded cases, or those of `dir`.
pub fn catalog(dir: Option<&std::path::Path>) -> Result<Vec<LoadedCase>, crate::case::CaseError> {
    match dir {
        Some(d) => crate::case::load_dir(d),
        None => crate::case::embedded(),
    }
}

/// Whether `--case PATTERNS` selects `id`.
pub fn selects(patterns: &str, id: &str) -> bool {
    patterns.split(',').map(str::trim).filter(|p| !p.is_empty()).any(|p| {
        if p.contains('*') {
            glob(p.as_bytes(), id.as_bytes())
        } else {
            let p = p.trim_end_matches('/');
            id == p || id.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
        }
    })
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.split_first().is_some_and(|(d, srest)| c == d && glob(rest, srest)),
    }
}

/// Runs the catalog on a runtime of its own (not from inside an async context: use
/// [`run_async`] there).
pub fn run(options: RunOptions) -> Result<Report, RunError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(RunError::Usage("conformance::run was called inside an async runtime: use run_async".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Io(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(run_async(options))
}

/// Runs the catalog.
pub async fn run_async(options: RunOptions) -> Result<Report, RunError> {
    let started = monotonic();
    if options.adapter_command.trim().is_empty() {
        return Err(RunError::Usage("no adapter command (--adapter \"CMD\")".into()));
    }
    let cases = catalog(options.cases_dir.as_deref())?;
    let selected: Vec<usize> = (0..cases.len())
        .filter(|&i| options.case_filter.as_deref().is_none_or(|p| selects(p, &cases[i].case.id)))
        .collect();
    if selected.is_empty() {
        return Err(RunError::Usage(format!(
            "--case {} selects no case (--list shows them)",
            options.case_filter.as_deref().unwrap_or("")
        )));
    }
    let door = Arc::new(
        match &options.mock_url {
            Some(url) => MockDoor::connect(url).await,
            None => MockDoor::start().await,
        }
        .map_err(RunError::Mock)?,
    );
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let jobs =
        if options.jobs == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { options.jobs };
    let gate = Arc::new(tokio::sync::Semaphore::new(jobs));
    let default_world = Arc::new(fixtures::default_world());
    let mut tasks = tokio::task::JoinSet::new();
    for (n, &i) in selected.iter().enumerate() {
        let (door, gate, world) = (door.clone(), gate.clone(), default_world.clone());
        let case = cases[i].clone();
        let sandbox = format!("conf-{run_id}-{}", n + 1);
        let (command, timeout, update) = (options.adapter_command.clone(), options.step_timeout, options.update);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let outcome = run_case(&door, &world, &case, &sandbox, &command, timeout).await;
            (i, case, outcome, update)
        });
    }
    let mut reports: Vec<Option<CaseReport>> = vec![None; cases.len()];
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, case, outcome, update)) = joined else {
            first_error.get_or_insert(RunError::Mock("a case's task panicked".into()));
            continue;
        };
        match outcome {
            Ok((report, observed)) => {
                if update
                    && let Some(observed) = observed
                    && let Err(e) = crate::update::write_requests(&case, &observed)
                {
                    first_error.get_or_insert(RunError::Io(e));
                }
                reports[i] = Some(report);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let filter = options.case_filter.clone().unwrap_or_default();
    let mut cases_out: Vec<CaseReport> = reports
        .into_iter()
        .zip(&cases)
        .map(|(r, c)| {
            r.unwrap_or_else(|| CaseReport {
                selected: false,
                ..CaseReport::skipped(c, format!("not selected by --case {filter}"))
            })
        })
        .collect();
    let listed: BTreeSet<&str> = options.expected_failures.iter().map(String::as_str).collect();
    let mut stale = Vec::new();
    for id in &listed {
        match cases_out.iter_mut().find(|c| c.id == *id) {
            Some(c) => {
                c.expected_failure = true;
                if c.status == CaseStatus::Passed {
                    stale.push((*id).to_owned());
                }
            }
            None => stale.push(format!("{id} (no such case)")),
        }
    }
    Ok(Report {
        run_id,
        adapter: options.adapter_command.clone(),
        cases: cases_out,
        stale,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Requests as observed, in routed form and sandbox values (for `--update`).
type Observed = Vec<Value>;

async fn run_case(
    door: &MockDoor,
    default_world: &fixtures::WorldFile,
    loaded: &LoadedCase,
    sandbox: &str,
    command: &str,
    timeout: Duration,
) -> Result<(CaseReport, Option<Observed>), RunError> {
    let started = monotonic();
    let made =
        door.create_sandbox(sandbox).await.map_err(|e| RunError::Mock(format!("creating sandbox {sandbox}: {e}")))?;
    let map = WorldMap::new(default_world, &made.world);
    let result = execute(door, &door.doors(), &map, &loaded.case, sandbox, command, timeout).await;
    let deleted = door.delete_sandbox(sandbox).await;
    let mut report = CaseReport::skipped(loaded, "");
    report.sandbox = sandbox.to_owned();
    report.duration_ms = started.elapsed().as_millis() as u64;
    let executed = result?;
    deleted.map_err(|e| RunError::Mock(format!("deleting sandbox {sandbox}: {e}")))?;
    report.stderr = executed.stderr;
    report.doors = executed.doors;
    match executed.skip {
        Some(reason) => report.skip_reason = Some(reason),
        None => {
            report.skip_reason = None;
            report.status = if executed.failures.is_empty() { CaseStatus::Passed } else { CaseStatus::Failed };
            // Shown in default-world values, as the case file is written.
            report.failures = executed
                .failures
                .into_iter()
                .map(|f| Failure {
                    message: map.back.string(&f.message),
                    expected: f.expected.map(|v| map.back.value(&v)),
                    received: f.received.map(|v| map.back.value(&v)),
                    ..f
                })
                .collect();
        }
    }
    let back: Vec<String> = map.secrets.iter().map(|s| map.back.string(s)).collect();
    crate::report::Scrubber::new(map.secrets.iter().map(String::as_str).chain(back.iter().map(String::as_str)))
        .case(&mut report);
    let observed = executed
        .steps_completed
        .then(|| executed.requests.iter().map(|e| map.back.value(&crate::check::routed(e))).collect());
    Ok((report, observed))
}

struct Executed {
    failures: Vec<Failure>,
    skip: Option<String>,
    stderr: String,
    doors: Vec<String>,
    requests: Vec<Value>,
    steps_completed: bool,
}

/// The environment of a case's adapter (conformance.md, adapter protocol).
pub fn environment(doors: &Doors, map: &WorldMap, case: &Case) -> Result<Environment, String> {
    let sandbox = &map.sandbox_world;
    let default = &map.default_world;
    let env_index = match &case.environment {
        None => 0,
        Some(id) => default
            .environments
            .iter()
            .position(|e| e.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| format!("the default world has no environment '{id}'"))?,
    };
    let env = sandbox.environments.get(env_index).ok_or("the sandbox has no environment")?;
    let api_host = mock_server::domain::ids::EnvironmentId::parse(&env.id).map_err(|e| e.to_string())?.api_host();
    let org_host = format!("{}.crm.dynamics.com", env.dataverse.org);
    let (origin, hs, port) = (&doors.path_origin, &doors.host_scheme, doors.host_port);
    let mut vars: Environment = vec![
        ("MOCK_PROTOCOL".into(), crate::adapter::PROTOCOL.to_string()),
        ("MOCK_LOGIN_URL".into(), origin.clone()),
        ("MOCK_PPAPI_URL".into(), format!("{hs}://{api_host}:{port}")),
        ("MOCK_PPAPI_TENANT_URL".into(), format!("{hs}://{}:{port}", mock_server::hosts::TENANT_API_HOST)),
        ("MOCK_PPAPI_PATH_URL".into(), format!("{origin}/connectivity/environments/{}", env.id)),
        ("MOCK_DATAVERSE_URL".into(), format!("{hs}://{org_host}:{port}")),
        ("MOCK_DATAVERSE_PATH_URL".into(), format!("{origin}/dataverse/{}", env.dataverse.org)),
        ("MOCK_RUNTIME_URL".into(), format!("{origin}/apim/uiflow/{}", env.id)),
        (
            "MOCK_HOSTS".into(),
            [
                mock_server::hosts::IDENTITY_HOSTS[0],
                api_host.as_str(),
                mock_server::hosts::TENANT_API_HOST,
                org_host.as_str(),
                mock_server::hosts::BAP_HOST,
            ]
            .join(","),
        ),
        ("MOCK_ENVIRONMENT_ID".into(), env.id.clone()),
    ];
    if let Some(ca) = &doors.ca_file {
        vars.push(("MOCK_CA".into(), ca.display().to_string()));
    }
    let identity = case.identity.clone().unwrap_or_else(|| Identity {
        service_principal: default.service_principals.first().map(|s| s.display_name.clone()),
        user: None,
        public_client: None,
    });
    match (&identity.service_principal, &identity.user) {
        (Some(name), _) => {
            let i = default
                .service_principals
                .iter()
                .position(|s| &s.display_name == name)
                .ok_or_else(|| format!("the default world has no service principal '{name}'"))?;
            let sp = &sandbox.service_principals[i];
            vars.push(("MOCK_TENANT_ID".into(), sp.tenant.clone()));
            vars.push(("MOCK_CLIENT_ID".into(), sp.app_id.clone()));
            if let Some(secret) = &sp.client_secret {
                vars.push(("MOCK_CLIENT_SECRET".into(), secret.clone()));
            }
        }
        (None, Some(upn)) => {
            let i = default
                .users
                .iter()
                .position(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
                .ok_or_else(|| format!("the default world has no user '{upn}'"))?;
            let user = &sandbox.users[i];
            let client_name = identity.public_client.as_deref().unwrap_or(DEFAULT_PUBLIC_CLIENT);
            let client = sandbox
                .public_clients
                .iter()
                .find(|c| c.display_name == client_name)
                .ok_or_else(|| format!("the default world has no public client '{client_name}'"))?;
            vars.push(("MOCK_TENANT_ID".into(), user.tenant.clone()));
            vars.push(("MOCK_USERNAME".into(), user.user_principal_name.clone()));
            vars.push(("MOCK_PASSWORD".into(), user.password.clone()));
            vars.push(("MOCK_PUBLIC_CLIENT_ID".into(), client.app_id.clone()));
        }
        (None, None) => return Err("the identity names nobody".into()),
    }
    Ok(vars)
}

async fn execute(
    door: &MockDoor,
    doors: &Doors,
    map: &WorldMap,
    case: &Case,
    sandbox: &str,
    command: &str,
    timeout: Duration,
) -> Result<Executed, RunError> {
    let mut out = Executed {
        failures: Vec::new(),
        skip: None,
        stderr: String::new(),
        doors: Vec::new(),
        requests: Vec::new(),
        steps_completed: false,
    };
    let env = match environment(doors, map, case) {
        Ok(env) => env,
        Err(e) => {
            out.failures.push(Failure::new("identity", e));
            return Ok(out);
        }
    };
    let mut adapter = match Adapter::spawn(command, &env) {
        Ok(a) => a,
        Err(e) => {
            out.failures.push(Failure::new("adapter", e));
            return Ok(out);
        }
    };
    let (steps_ok, saved) = drive(&mut adapter, door, map, case, sandbox, timeout, &mut out).await;
    out.stderr = adapter.finish().await;
    if out.skip.is_some() {
        return Ok(out);
    }
    out.steps_completed = steps_ok;
    let entries = door.requests(sandbox).await.map_err(RunError::Mock)?;
    let mut doors_seen: Vec<String> = entries.iter().map(check::door).collect();
    doors_seen.sort();
    doors_seen.dedup();
    out.doors = doors_seen;
    out.failures.extend(check::leaks(&entries));
    if steps_ok {
        let expect = &case.expect;
        let routed: Vec<Value> = entries.iter().map(check::routed).collect();
        let patterns: Vec<Value> = expect.requests.iter().map(check::pattern_value).collect();
        match prepare(map, &Value::Array(patterns), &saved) {
            Ok(Value::Array(patterns)) => out.failures.extend(check::requests(&patterns, &routed, &map.secrets)),
            Ok(_) => {}
            Err(e) => out.failures.push(Failure::new("expect.requests", e)),
        }
        out.failures.extend(check::counts(&expect.counts, &entries));
        if let Some(st) = &expect.state {
            let state = door.state(sandbox).await.map_err(RunError::Mock)?;
            let (connections, runs) = check::state_view(&state);
            let prepared = prepare(map, &serde_json::to_value(st).unwrap_or(Value::Null), &saved)
                .and_then(|v| serde_json::from_value::<crate::case::StateExpect>(v).map_err(|e| e.to_string()));
            match prepared {
                Ok(st) => out.failures.extend(check::state(&st, &connections, &runs)),
                Err(e) => out.failures.push(Failure::new("expect.state", e)),
            }
        }
        if expect.retry_after.is_some() {
            let verdicts = door.retry_after_verdicts(sandbox).await.map_err(RunError::Mock)?;
            out.failures.extend(check::retry_after_honoured(&verdicts));
        }
    }
    out.requests = entries;
    Ok(out)
}

/// A case's value made ready for the sandbox: world values mapped, accounts expanded,
/// `${name.field}` substituted.
fn prepare(map: &WorldMap, v: &Value, saved: &Saved) -> Result<Value, String> {
    substitute(&map.to_sandbox(v)?, saved)
}

/// Says hello, then runs the steps in order. Returns whether every step ran as expected,
/// and what the steps saved. A failure or a skip reason lands in `out`.
async fn drive(
    adapter: &mut Adapter,
    door: &MockDoor,
    map: &WorldMap,
    case: &Case,
    sandbox: &str,
    timeout: Duration,
    out: &mut Executed,
) -> (bool, Saved) {
    let mut saved = Saved::new();
    let declared = match adapter.hello(timeout).await {
        Ok(c) => c,
        Err(e) => {
            out.failures.push(Failure::new("hello", e));
            return (false, saved);
        }
    };
    let missing: Vec<&str> =
        case.capabilities.iter().map(|c| c.as_str()).filter(|c| !declared.iter().any(|d| d == c)).collect();
    if !missing.is_empty() {
        out.skip = Some(format!("the adapter does not declare the capability {}", missing.join(", ")));
        return (false, saved);
    }
    for (i, step) in case.steps.iter().enumerate() {
        let n = i as u64 + 1;
        match step {
            Step::Client(c) => {
                let check = format!("step {n} ({})", c.client.as_str());
                match client_step(adapter, map, c, n, &saved, timeout).await {
                    Err(e) => {
                        out.failures.push(Failure::new(check, e));
                        return (false, saved);
                    }
                    Ok(outcome) if outcome.get("unsupported").and_then(Value::as_bool) == Some(true) => {
                        out.skip = Some(format!("the adapter does not support {}", c.client.as_str()));
                        return (false, saved);
                    }
                    Ok(outcome) => {
                        let expect = match &c.expect {
                            Some(e) => match prepare(map, &serde_json::to_value(e).unwrap_or(Value::Null), &saved)
                                .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
                            {
                                Ok(e) => Some(e),
                                Err(e) => {
                                    out.failures.push(Failure::new(check, e));
                                    return (false, saved);
                                }
                            },
                            None => None,
                        };
                        if let Some(f) = check::outcome(&check, expect.as_ref(), &outcome) {
                            out.failures.push(f);
                            return (false, saved);
                        }
                        if let Some(name) = &c.save {
                            let kept = outcome.get("result").cloned().unwrap_or(outcome);
                            saved.insert(name.clone(), kept);
                        }
                    }
                }
            }
            Step::Mock(m) => {
                if let Err(e) = mock_step(door, map, m, sandbox, &saved).await {
                    out.failures.push(Failure::new(format!("step {n} (mock {})", m.name()), e));
                    return (false, saved);
                }
            }
        }
    }
    (true, saved)
}

async fn client_step(
    adapter: &mut Adapter,
    map: &WorldMap,
    step: &ClientStep,
    n: u64,
    saved: &Saved,
    timeout: Duration,
) -> Result<Value, String> {
    let args = prepare(map, &step.args, saved)?;
    adapter.step(n, step.client.as_str(), &args, timeout).await
}

async fn mock_step(
    door: &MockDoor,
    map: &WorldMap,
    step: &MockStep,
    sandbox: &str,
    saved: &Saved,
) -> Result<(), String> {
    let ready = |v: &Value| prepare(map, v, saved);
    let text = |s: &str| -> Result<String, String> {
        Ok(ready(&Value::String(s.to_owned()))?.as_str().map(str::to_owned).unwrap_or_default())
    };
    match step {
        MockStep::Advance { seconds } => door.advance(sandbox, Advance::Seconds(*seconds)).await,
        MockStep::AdvanceUntilIdle => door.advance(sandbox, Advance::UntilIdle).await,
        MockStep::AdvanceToNextEvent => door.advance(sandbox, Advance::ToNextEvent).await,
        MockStep::SetMachine { machine, facts } => {
            let id = map.machine_id(machine)?;
            door.set_machine(sandbox, &id, ready(facts)?).await
        }
        MockStep::Fault { rule } => door.add_fault(sandbox, ready(rule)?).await,
        MockStep::Scenario { name } => door.apply_scenario(sandbox, name).await,
        MockStep::Settings { patch } => door.patch_settings(sandbox, ready(patch)?).await,
        MockStep::CompleteRun { run_id, outputs } => {
            let outputs = match outputs {
                Some(o) => ready(o)?,
                None => Value::Object(serde_json::Map::new()),
            };
            door.complete_run(sandbox, &text(run_id)?, outputs).await
        }
        MockStep::FailRun { run_id, code, message } => door.fail_run(sandbox, &text(run_id)?, code, message).await,
    }
}
