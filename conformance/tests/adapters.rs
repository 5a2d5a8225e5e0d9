//! The reference adapters and the broken variants of the Rust one, end to end against the mock.
//!
//! A `harness = false` test: with `CONFORMANCE_VARIANT` set this binary *is* an adapter (the
//! variant of that name, or `reference`), so variants are real adapter processes without
//! extra binaries (`variants::variant_adapter_command`). Without it, it drives both
//! reference adapters through every action of the protocol, two identities and both run
//! doors, and shows that each variant's one mistake is visible on the wire; then the whole
//! catalog through the runner: both reference adapters pass it, each variant fails exactly
//! the cases named to catch it (the mutation check). All at once: it is mostly waiting.
//!
//! - `adapters/driver.rs` — the mock, sandboxes, the runner's environment, an adapter process.
//! - `adapters/variants.rs` — the variants and the self-exec.
//! - `adapters/catalog.rs` — the whole catalog: the table of which cases catch which variant.

#[path = "adapters/catalog.rs"]
mod catalog;
#[path = "adapters/driver.rs"]
mod driver;
#[path = "adapters/variants.rs"]
mod variants;

use driver::{Adapter, Identity, Mock, Sandbox};
use mock_server::control::JournalFilter;
use mock_server::journal::EntryKind;
use serde_json::{Value, json};
use std::time::Duration;

/// The Python reference adapter, as docs/conformance.md tells users to run it.
const PYTHON_ADAPTER: &str = "python3 conformance/adapters/python/adapter.py";
/// Stands for a `.pfx` (base64 is checked, not PKCS#12): docs/rules.md.
const PFX: &str = "MIIKcQIBAzCCCjcGCSqGSIb3DQEHAaCCCigEggokMIIKIDCCBNcGCSqGSIb3DQEHBqCCBMgw";
const SP: Identity = Identity::ServicePrincipal("contoso-pipeline");
const MEGAN: Identity = Identity::User("megan@");

fn main() -> std::process::ExitCode {
    if let Some(code) = variants::serve_from_env() {
        return code;
    }
    let started = mock_server::domain::clock::monotonic();
    let mock = Mock::start();
    let rust = variants::variant_adapter_command("reference");
    let references = [("python", PYTHON_ADAPTER), ("rust", rust.as_str())];
    // The runner starts adapters in its own directory (cargo's: the package's), so the
    // catalog runs name the Python adapter by its full path.
    let python_anywhere = catalog::python_adapter_from_anywhere();
    let mut failed = std::thread::scope(|s| {
        let mock = &mock;
        let mut jobs = Vec::new();
        for (language, command) in references {
            let every = s.spawn(move || timed(|| every_action(mock, language, command)));
            jobs.push((format!("the {language} reference adapter does every action"), every));
            let token = s.spawn(move || timed(|| rejected_token_is_replaced(mock, language, command)));
            jobs.push((format!("the {language} reference adapter replaces a rejected token once"), token));
        }
        for (language, command) in [("python", python_anywhere.as_str()), ("rust", rust.as_str())] {
            let whole = s.spawn(move || timed(|| catalog::reference_passes_every_case(command)));
            jobs.push((format!("the {language} reference adapter passes the whole catalog"), whole));
        }
        for variant in variants::VARIANTS.iter().filter(|v| v.name != "reference") {
            let name = variant.name;
            jobs.push((variant.mistake.to_owned(), s.spawn(move || timed(|| mistake_is_visible(mock, name)))));
            if !catalog::JUDGED_IN_REAL_TIME.contains(&name) {
                let caught = s.spawn(move || timed(|| catalog::variant_fails_exactly_its_cases(name)));
                jobs.push((format!("{name} fails exactly the catalog cases named to catch it"), caught));
            }
        }
        let table = s.spawn(|| timed(catalog::the_table_names_every_variant_and_matches_catalog_md));
        jobs.push(("the table of caught variants names each once and matches CATALOG.md".to_owned(), table));
        outcomes(jobs)
    });
    // A wait too short is only seen while the machine keeps up: these run last, alone.
    failed += std::thread::scope(|s| {
        let jobs = catalog::JUDGED_IN_REAL_TIME.iter().map(|&name| {
            let caught = s.spawn(move || timed(|| catalog::variant_fails_exactly_its_cases(name)));
            (format!("{name} fails exactly the catalog cases named to catch it (alone)"), caught)
        });
        outcomes(jobs.collect())
    });
    println!("adapters: {failed} failed in {:.1} s", started.elapsed().as_secs_f64());
    if failed == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}

/// Waits for each test in turn and prints its line; returns how many failed.
fn outcomes(jobs: Vec<(String, std::thread::ScopedJoinHandle<'_, f64>)>) -> usize {
    let mut failed = 0;
    for (name, job) in jobs {
        match job.join() {
            Ok(seconds) => println!("test {name} ... ok ({seconds:.1} s)"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    failed
}

/// Runs one test; returns its wall time in seconds (reported, never asserted).
fn timed(test: impl FnOnce()) -> f64 {
    let started = mock_server::domain::clock::monotonic();
    test();
    started.elapsed().as_secs_f64()
}

/// The sandbox's request entries of `operation`, oldest first.
fn requests(mock: &Mock, sandbox: &Sandbox, operation: &str) -> Vec<Value> {
    let entries = mock.block_on(sandbox.handle.journal().entries(JournalFilter::all())).expect("the journal");
    entries.into_iter().filter(|e| e["kind"] == "request" && e["operation"] == operation).collect()
}

/// The sandbox's entries that carry a leak flag.
fn leaks(mock: &Mock, sandbox: &Sandbox) -> Vec<Value> {
    let entries = mock.block_on(sandbox.handle.journal().entries(JournalFilter::all())).expect("the journal");
    entries.into_iter().filter(|e| e["leaks"].as_array().is_some_and(|l| !l.is_empty())).collect()
}

fn add_fault(mock: &Mock, sandbox: &Sandbox, rule: Value) {
    mock.block_on(sandbox.handle.add_fault_json(rule)).expect("the fault rule is added");
}

fn advance(mock: &Mock, sandbox: &Sandbox, seconds: u64) {
    mock.block_on(sandbox.handle.clock().advance(Duration::from_secs(seconds))).expect("the clock moves");
}

fn failure(outcome: &Value, status: u16, code: &str) {
    assert_eq!(
        (&outcome["ok"], &outcome["status"], &outcome["code"]),
        (&json!(false), &json!(status), &json!(code)),
        "expected {status} {code}: {outcome}"
    );
}

fn relay(sandbox: &Sandbox, id: &str, name: &str, group: &str, machine: &str, username: &str) -> Value {
    json!({
        "connectionId": id, "displayName": name, "machineGroupId": sandbox.group(group),
        "username": username, "password": sandbox.account_password(machine, username),
    })
}

/// Both identities, every action, both run doors, a 429 with Retry-After, and the requests
/// the mock saw.
fn every_action(mock: &Mock, label: &str, command: &str) {
    let sandbox = mock.sandbox(&format!("adapters-{label}"));
    let finance = sandbox.group("Finance bots");
    let environment = sandbox.environment()["id"].as_str().unwrap_or_default().to_owned();
    let c1 = "0d2c9f4e-1b7a-4c55-9a0e-3f1e2d4c5b6a";

    // The service principal: tokens, machines, connections, and the retry rule.
    let mut sp = Adapter::spawn(command, &sandbox.variables(&SP));
    assert_eq!(
        sp.hello(),
        json!({ "capabilities": ["token", "connections", "dataverse", "sharing", "runs", "retry"] })
    );
    let token = sp.ok("acquireToken", json!({ "resource": "powerplatform" }));
    assert_eq!(token["tokenType"], "Bearer");
    assert!(token["expiresIn"].as_u64().is_some_and(|n| n > 3000), "{token}");
    assert_eq!(sp.ok("findMachineGroup", json!({ "machineName": "FIN-01" })), json!({ "machineGroupId": finance }));
    failure(&sp.step("findMachineGroup", json!({ "machineName": "NO-SUCH-MACHINE" })), 404, "MachineNotFound");
    let groups = sp.ok("listMachineGroups", json!({}))["groups"].clone();
    assert!(
        groups
            .as_array()
            .is_some_and(|g| g.contains(&json!({ "id": finance, "name": "Finance bots", "type": "Standard" }))),
        "{groups}"
    );
    assert!(
        groups.as_array().is_some_and(
            |g| g.contains(&json!({ "id": sandbox.group("BUILD-01"), "name": "BUILD-01", "type": "Default" }))
        ),
        "{groups}"
    );

    add_fault(
        mock,
        &sandbox,
        json!({
            "match": { "operation": "connections.put" },
            "respond": { "status": 429, "headers": { "Retry-After": "1" } },
            "times": 2,
        }),
    );
    let create = relay(&sandbox, c1, "Finance bots", "Finance bots", "FIN-01", "CONTOSO\\svc-rpa");
    assert_eq!(sp.ok("createConnection", create.clone()), json!({ "id": c1, "status": "Connected" }));
    let mut rename = create.clone();
    rename["displayName"] = json!("Finance bots (renamed)");
    assert_eq!(sp.ok("updateConnection", rename), json!({ "id": c1, "status": "Connected" }));
    assert_eq!(
        sp.ok("getConnection", json!({ "connectionId": c1 })),
        json!({ "id": c1, "status": "Connected", "displayName": "Finance bots (renamed)" })
    );
    let c2 = "0d2c9f4e-1b7a-4c55-9a0e-3f1e2d4c5b6b";
    let hr = relay(&sandbox, c2, "HR bots", "HR bots", "HR-01", "HR-01\\rpa");
    failure(&sp.step("createConnection", hr.clone()), 403, "ConnectionAuthorizationFailed");
    assert_eq!(
        sp.ok("listConnections", json!({})),
        json!({ "connections": [{ "id": c1, "displayName": "Finance bots (renamed)", "status": "Connected" }] })
    );
    assert_eq!(sp.ok("deleteConnection", json!({ "connectionId": c1 })), json!({}));
    failure(&sp.step("getConnection", json!({ "connectionId": c1 })), 404, "ConnectionNotFound");
    let unknown = sp.step("renameEnvironment", json!({}));
    assert_eq!((&unknown["ok"], &unknown["unsupported"]), (&json!(false), &json!(true)), "{unknown}");
    sp.finish();

    assert_eq!(requests(mock, &sandbox, "identity.token").len(), 2, "one token per resource, then the cache");
    let puts = requests(mock, &sandbox, "connections.put");
    let statuses: Vec<&Value> = puts.iter().map(|p| &p["status"]).collect();
    assert_eq!(statuses, [429, 429, 201, 200, 403], "429s retried, the 403 not");
    assert!(puts[..4].iter().all(|p| p["path"] == puts[0]["path"]), "the update PUTs to the same id");
    assert_eq!(
        puts[2]["body"]["properties"]["connectionParametersSet"]["values"]["targetId"],
        json!({ "value": finance })
    );
    assert_eq!(puts[2]["body"]["properties"]["environment"]["name"], json!(environment));
    assert_eq!(puts[2]["body"]["properties"]["connectionParametersSet"]["name"], "azureRelay");
    assert_eq!(puts[2]["body"]["properties"]["displayName"], "Finance bots");

    // Megan: a sign-in connection on BUILD-01, runs through both doors, sharing.
    let build = sandbox.group("BUILD-01");
    let export = sandbox.flow("Export invoices");
    let s1 = "00000000-0000-0000-0000-000000001201";
    let mut megan = Adapter::spawn(command, &sandbox.variables(&MEGAN));
    megan.hello();
    let sign_in =
        json!({ "connectionId": s1, "displayName": "Megan on BUILD-01", "machineGroupId": build, "signIn": true });
    assert_eq!(megan.ok("createConnection", sign_in), json!({ "id": s1, "status": "Connected" }));
    let run = |door: &str, mode: &str| json!({ "door": door, "flowId": export, "connectionId": s1, "runMode": mode });
    let r1 = megan.ok("startRun", run("connector", "attended"))["runId"].clone();
    let mut dataverse_run = run("dataverse", "attended");
    dataverse_run["inputs"] = json!({ "Month": "2025-02" });
    dataverse_run["priority"] = json!("high");
    let r2 = megan.ok("startRun", dataverse_run)["runId"].clone();
    advance(mock, &sandbox, 300);
    let outputs = json!({ "outputs": { "InvoiceCount": 42, "Status": "Exported" } });
    for r in [&r1, &r2] {
        assert_eq!(megan.ok("waitForRun", json!({ "runId": r })), json!({ "status": "Succeeded" }));
        assert_eq!(megan.ok("getRunOutputs", json!({ "runId": r })), outputs);
    }
    let r3 = megan.ok("startRun", run("dataverse", "unattended"))["runId"].clone();
    let failed = megan.ok("waitForRun", json!({ "runId": r3 }));
    assert_eq!(
        (&failed["status"], &failed["code"]),
        (&json!("Failed"), &json!("SignInConnectionAttendedOnly")),
        "{failed}"
    );
    failure(&megan.step("startRun", run("connector", "unattended")), 400, "SignInConnectionAttendedOnly");
    let r4 = megan.ok("startRun", run("connector", "attended"))["runId"].clone();
    assert_eq!(megan.ok("cancelRun", json!({ "runId": r4 })), json!({}));
    assert_eq!(megan.ok("waitForRun", json!({ "runId": r4 }))["status"], "Cancelled");

    let pipeline = sandbox.service_principal("contoso-pipeline");
    let pipeline_user = sandbox.system_user(pipeline["objectId"].as_str().unwrap_or_default());
    let share = json!({ "machineGroupId": sandbox.group("HR bots"), "systemUserId": pipeline_user, "access": "User" });
    assert_eq!(megan.ok("shareMachineGroup", share), json!({}));
    let owned = "00000000-0000-0000-0000-000000000601";
    let mut run_owner = relay(&sandbox, owned, "Finance (run owner)", "Finance bots", "FIN-01", "CONTOSO\\svc-rpa");
    run_owner["runOwner"] = json!({ "clientId": pipeline["appId"], "pfx": PFX, "password": "" });
    assert_eq!(megan.ok("createConnection", run_owner), json!({ "id": owned, "status": "Connected" }));
    let share = |principal: &Value| json!({ "connectionId": owned, "principalObjectId": principal, "role": "CanView" });
    assert_eq!(megan.ok("shareConnection", share(&pipeline["objectId"])), json!({}));
    failure(
        &megan.step("shareConnection", share(&sandbox.user("adele@")["objectId"])),
        400,
        "ShareRecipientNotServicePrincipal",
    );
    megan.finish();

    let run_starts = requests(mock, &sandbox, "dataverse.runDesktopFlow");
    assert_eq!(
        run_starts[0]["body"],
        json!({ "runMode": "attended", "connectionName": s1, "runPriority": "high", "inputs": "{\"Month\":\"2025-02\"}" })
    );
    let connector_starts = requests(mock, &sandbox, "runtime.runUIFlow");
    assert_eq!(connector_starts[0]["query"], json!([["runMode", "attended"]]));

    // The service principal again: what Megan shared is now its to use.
    let mut sp = Adapter::spawn(command, &sandbox.variables(&SP));
    sp.hello();
    assert_eq!(sp.ok("getConnection", json!({ "connectionId": owned }))["status"], "Connected");
    assert_eq!(sp.ok("createConnection", hr), json!({ "id": c2, "status": "Connected" }));
    sp.finish();

    if label == "rust" {
        // What the Rust reference client sends, pinned: a change to any request shows in review.
        // The wait before a retry or poll is real time, so only its verdict is kept.
        let requests = JournalFilter::all().kind(EntryKind::Request);
        let entries = mock.block_on(sandbox.handle.journal().normalised(requests)).expect("the journal");
        insta::assert_json_snapshot!("rust_reference_every_action", entries, { "[].retryAfter.waitedMs" => "<waited-ms>" });
    }
    assert_eq!(leaks(mock, &sandbox), Vec::<Value>::new(), "no request leaks a secret");
    let verdicts = mock.block_on(sandbox.handle.retry_after_verdicts()).expect("the verdicts");
    assert!(
        verdicts.iter().any(|v| v.after_status == 429) && verdicts.iter().any(|v| v.after_status == 202),
        "{verdicts:?}"
    );
    assert!(verdicts.iter().all(|v| v.honoured), "every Retry-After honoured: {verdicts:?}");
}

/// A token the API no longer accepts (its sandbox was deleted and made again) is dropped
/// from the cache and replaced, once, without failing the step.
fn rejected_token_is_replaced(mock: &Mock, label: &str, command: &str) {
    let name = format!("adapters-token-{label}");
    let sandbox = mock.sandbox(&name);
    let mut sp = Adapter::spawn(command, &sandbox.variables(&SP));
    sp.hello();
    sp.ok("acquireToken", json!({ "resource": "powerplatform" }));
    mock.block_on(sandbox.handle.clone().delete()).expect("the sandbox is deleted");
    let sandbox = mock.sandbox(&name);
    assert_eq!(sp.ok("listConnections", json!({})), json!({ "connections": [] }));
    sp.finish();
    let entries = mock.block_on(sandbox.handle.journal().entries(JournalFilter::all().kind(EntryKind::Request)));
    let seen: Vec<(Value, Value)> =
        entries.expect("the journal").iter().map(|e| (e["operation"].clone(), e["status"].clone())).collect();
    let expected = [("connections.list", 401), ("identity.token", 200), ("connections.list", 200)];
    assert_eq!(seen, expected.map(|(o, s)| (json!(o), json!(s))));
}

/// The variant's one mistake, seen on the wire in a sandbox of its own.
fn mistake_is_visible(mock: &Mock, name: &str) {
    let sandbox = mock.sandbox(&format!("variant-{name}"));
    let command = variants::variant_adapter_command(name);
    let identity = if matches!(name, "polls-without-retry-after" | "unattended-on-sign-in") { MEGAN } else { SP };
    let mut adapter = Adapter::spawn(&command, &sandbox.variables(&identity));
    adapter.hello();
    let c1 = "0d2c9f4e-1b7a-4c55-9a0e-3f1e2d4c5b6a";
    let finance = relay(&sandbox, c1, "Finance bots", "Finance bots", "FIN-01", "CONTOSO\\svc-rpa");
    let s1 = "00000000-0000-0000-0000-000000001201";
    let sign_in = json!({ "connectionId": s1, "machineGroupId": sandbox.group("BUILD-01"), "signIn": true });
    let run = |door: &str| json!({ "door": door, "flowId": sandbox.flow("Export invoices"), "connectionId": s1, "runMode": "attended" });
    match name {
        "wrong-body-field" => {
            adapter.ok("createConnection", finance);
            let body = &requests(mock, &sandbox, "connections.put")[0]["body"];
            assert_eq!(
                (&body["displayName"], &body["properties"]["displayName"]),
                (&json!("Finance bots"), &Value::Null)
            );
        }
        "ignores-429" => {
            add_fault(
                mock,
                &sandbox,
                json!({ "match": { "operation": "connections.put" }, "respond": { "status": 429, "headers": { "Retry-After": "1" } }, "times": 1 }),
            );
            failure(&adapter.step("createConnection", finance), 429, "TooManyRequests");
        }
        "retries-403" => {
            let hr = relay(&sandbox, c1, "HR bots", "HR bots", "HR-01", "HR-01\\rpa");
            failure(&adapter.step("createConnection", hr), 403, "ConnectionAuthorizationFailed");
            assert_eq!(requests(mock, &sandbox, "connections.put").len(), 5);
        }
        "password-in-query" => {
            adapter.ok("createConnection", finance.clone());
            assert_eq!(leaks(mock, &sandbox), Vec::<Value>::new(), "the create keeps the password in its body");
            adapter.ok("updateConnection", finance);
            assert_eq!(leaks(mock, &sandbox).len(), 1, "the update PUT's query carries the password");
        }
        "creates-instead-of-updates" => {
            adapter.ok("createConnection", finance.clone());
            adapter.ok("updateConnection", finance);
            assert_eq!(adapter.ok("listConnections", json!({}))["connections"].as_array().map(Vec::len), Some(2));
        }
        "polls-without-retry-after" => {
            adapter.ok("createConnection", sign_in);
            let r = adapter.ok("startRun", run("connector"))["runId"].clone();
            failure(&adapter.step("waitForRun", json!({ "runId": r })), 0, "RunNotFinished");
            let violations = mock.block_on(sandbox.handle.retry_after_violations()).expect("the verdicts");
            assert!(!violations.is_empty(), "polls came sooner than Retry-After");
        }
        "unattended-on-sign-in" => {
            adapter.ok("createConnection", sign_in);
            let r = adapter.ok("startRun", run("dataverse"))["runId"].clone();
            assert_eq!(adapter.ok("waitForRun", json!({ "runId": r }))["code"], "SignInConnectionAttendedOnly");
        }
        other => panic!("no check for the variant {other}"),
    }
    adapter.finish();
}
