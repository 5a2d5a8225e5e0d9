//! The runner against a real adapter process: the test-only fake adapter
//! (`tests/fixtures/fake_adapter.py`, Python standard library), correct or misbehaving on
//! purpose through `FAKE_ADAPTER_FAULT`, on the runner's sample cases; the binary's exit
//! codes and `--list`.

use conformance::{CaseStatus, Report, RunOptions};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The runner's own sample cases (exact ids: other cases may join these folders).
const SAMPLES: &str = "identity/runner-samples/client-credentials,identity/runner-samples/token-reused,\
connections/create/service-principal,connections/create/group-not-shared";

fn adapter(fault: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_adapter.py");
    if fault.is_empty() { format!("python3 {script}") } else { format!("FAKE_ADAPTER_FAULT={fault} python3 {script}") }
}

fn options(fault: &str) -> RunOptions {
    let mut o = RunOptions::new(adapter(fault));
    o.case_filter = Some(SAMPLES.into());
    o.jobs = 4;
    o
}

fn statuses(report: &Report) -> BTreeMap<&str, CaseStatus> {
    report.cases.iter().filter(|c| c.selected).map(|c| (c.id.as_str(), c.status)).collect()
}

fn failed(report: &Report) -> Vec<&str> {
    report.cases.iter().filter(|c| c.status == CaseStatus::Failed).map(|c| c.id.as_str()).collect()
}

#[test]
fn a_correct_client_passes_the_samples_each_in_its_own_sandbox() {
    let report = conformance::run(options("")).unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let passed = statuses(&report).values().filter(|s| **s == CaseStatus::Passed).count();
    assert_eq!(passed, 4, "{}", report.render());
    let sandboxes: Vec<&str> = report.cases.iter().filter(|c| c.selected).map(|c| c.sandbox.as_str()).collect();
    for (n, s) in sandboxes.iter().enumerate() {
        let (prefix, rest) = s.split_at(5);
        let (run, index) = rest.split_once('-').unwrap();
        assert_eq!(prefix, "conf-");
        assert_eq!(run, report.run_id);
        assert!(run.len() == 8 && run.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{s}");
        assert_eq!(index.parse::<usize>().unwrap(), n + 1);
    }
    let create = report.case("connections/create/service-principal").unwrap();
    assert_eq!(create.doors, vec!["identity (path form)", "powerplatform (path form)"]);
    let unselected = report.cases.iter().filter(|c| !c.selected).count();
    assert_eq!(report.cases.len(), conformance::catalog(None).unwrap().len());
    assert!(report.cases.iter().filter(|c| !c.selected).all(|c| c.status == CaseStatus::Skipped), "{unselected}");
}

#[test]
fn a_wrong_body_field_fails_every_case_that_creates_a_connection() {
    let report = conformance::run(options("wrong-body")).unwrap();
    assert_eq!(
        failed(&report),
        vec![
            "connections/create/group-not-shared",
            "connections/create/service-principal",
            "identity/runner-samples/token-reused"
        ]
    );
    assert_eq!(report.exit_code(), 1);
    let f = &report.case("connections/create/service-principal").unwrap().failures[0];
    assert_eq!(f.check, "step 1 (createConnection)");
    assert_eq!(f.received.as_ref().unwrap()["code"], "UnknownConnectionParameter");
    assert!(report.render().contains("| received"), "side by side");
}

#[test]
fn a_client_that_does_not_cache_its_token_fails_only_the_reuse_case() {
    let report = conformance::run(options("no-token-cache")).unwrap();
    assert_eq!(failed(&report), vec!["identity/runner-samples/token-reused"]);
    let f = &report.case("identity/runner-samples/token-reused").unwrap().failures;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].check, "expect.counts.identity.token");
}

#[test]
fn a_password_in_the_query_string_is_a_leak() {
    let report = conformance::run(options("password-in-query")).unwrap();
    let create = report.case("connections/create/service-principal").unwrap();
    assert_eq!(create.status, CaseStatus::Failed);
    assert!(create.failures.iter().any(|f| f.check == "leak" && f.message.contains("query")), "{:?}", create.failures);
    assert!(!report.to_junit().contains("Contoso-SvcRpa-Passw0rd"), "the secret itself is never reported");
    assert!(!serde_json::to_string(&report.to_json()).unwrap().contains("Contoso-SvcRpa-Passw0rd"));
}

#[test]
fn an_adapter_that_never_answers_fails_on_the_step_timeout() {
    let mut o = options("silent");
    o.case_filter = Some("identity/runner-samples/client-credentials".into());
    o.step_timeout = Duration::from_secs(1);
    let report = conformance::run(o).unwrap();
    let case = report.case("identity/runner-samples/client-credentials").unwrap();
    assert_eq!(case.status, CaseStatus::Failed);
    assert!(case.failures[0].message.contains("no answer within 1 s"), "{:?}", case.failures);
}

#[test]
fn a_missing_capability_or_an_unsupported_action_skips_with_the_reason() {
    let report = conformance::run(options("capabilities=token")).unwrap();
    assert_eq!(report.exit_code(), 0);
    let skipped = report.case("connections/create/service-principal").unwrap();
    assert_eq!(skipped.status, CaseStatus::Skipped);
    assert_eq!(skipped.skip_reason.as_deref(), Some("the adapter does not declare the capability connections"));
    assert_eq!(report.case("identity/runner-samples/client-credentials").unwrap().status, CaseStatus::Passed);

    let dir = tempfile::tempdir().unwrap();
    let case = json!({"id": "connections/list/own", "level": "MUST", "statement": "Lists connections.",
        "capabilities": ["connections"], "steps": [{"client": "listConnections"}]});
    std::fs::write(dir.path().join("list.json"), case.to_string()).unwrap();
    let mut o = RunOptions::new(adapter(""));
    o.cases_dir = Some(dir.path().to_owned());
    let report = conformance::run(o).unwrap();
    assert_eq!(report.cases[0].skip_reason.as_deref(), Some("the adapter does not support listConnections"));
}

#[test]
fn expected_failures_hold_failing_cases_and_report_stale_entries() {
    let mut o = options("wrong-body");
    o.expected_failures = vec![
        "connections/create/service-principal".into(),
        "connections/create/group-not-shared".into(),
        "identity/runner-samples/token-reused".into(),
    ];
    let report = conformance::run(o.clone()).unwrap();
    assert!(report.stale.is_empty());
    assert_eq!(report.exit_code(), 0, "listed failures do not fail the run:\n{}", report.render());
    assert!(report.render().contains("XFAIL connections/create/service-principal"));

    o.expected_failures.push("identity/runner-samples/client-credentials".into());
    o.expected_failures.push("identity/runner-samples/gone".into());
    let report = conformance::run(o).unwrap();
    assert_eq!(
        report.stale,
        vec!["identity/runner-samples/client-credentials", "identity/runner-samples/gone (no such case)"]
    );
    assert_eq!(report.exit_code(), 1);
    assert!(report.render().contains("STALE identity/runner-samples/client-credentials"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mock_started_elsewhere_is_driven_over_http_and_left_clean() {
    let server = mock_server::MockServer::builder().https(None).start().await.unwrap();
    let mut o = options("");
    o.mock_url = Some(server.uri());
    let report = conformance::run_async(o).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let names: Vec<String> = server.sandboxes().await.into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["default"], "every case's sandbox was deleted");
}

#[test]
fn update_writes_the_observed_requests_and_the_case_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/cases/connections/create/service-principal.json");
    let file = dir.path().join("service-principal.json");
    std::fs::copy(source, &file).unwrap();
    let mut o = RunOptions::new(adapter(""));
    o.cases_dir = Some(dir.path().to_owned());
    o.update = true;
    assert_eq!(conformance::run(o.clone()).unwrap().exit_code(), 0);
    let updated = conformance::catalog(Some(dir.path())).unwrap().remove(0).case;
    let ops: Vec<&str> = updated.expect.requests.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(ops, vec!["identity.token", "connections.put", "connections.get"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("37520647-dbdf-49fa-ba01-6134c14680c4"), "default-world values:\n{text}");
    assert!(!text.contains("conf-"), "no sandbox value:\n{text}");
    o.update = false;
    let again = conformance::run(o).unwrap();
    assert_eq!(again.exit_code(), 0, "{}", again.render());
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
}

#[test]
fn the_binary_lists_the_catalog_and_nothing_else() {
    let out = binary().arg("--list").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let catalog = conformance::catalog(None).unwrap();
    assert_eq!(stdout.lines().count(), catalog.len());
    for (line, case) in stdout.lines().zip(&catalog) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], case.case.id);
        assert_eq!(fields[1], case.case.level.as_str());
        assert!(line.ends_with(&case.case.statement), "{line}");
    }
}

#[test]
fn the_binary_exits_0_1_or_2() {
    let code = |args: &[&str]| binary().args(args).output().unwrap().status.code();
    assert_eq!(code(&["--no-such-flag"]), Some(2));
    assert_eq!(code(&["--case", "identity"]), Some(2), "no adapter");
    assert_eq!(code(&["--adapter", &adapter(""), "--case", "billing/none"]), Some(2), "selects nothing");
    assert_eq!(code(&["--list", "--cases", "/nonexistent/cases"]), Some(2));
    assert_eq!(code(&["--adapter", &adapter("wrong-body"), "--case", "connections/create/service-principal"]), Some(1));

    // Inherited MOCK_* variables are unset: the adapter sees only what its case uses.
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let guarded = format!("test -z \"$MOCK_USERNAME\" && test -n \"$MOCK_CLIENT_SECRET\" && {}", adapter(""));
    let out = binary()
        .env("MOCK_USERNAME", "someone-else")
        .args(["--adapter", &guarded, "--case", SAMPLES, "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let n = doc.descendants().filter(|n| n.has_tag_name("testcase")).count();
    assert_eq!(n, conformance::catalog(None).unwrap().len(), "one testcase per catalog case");
}

#[test]
fn secrets_and_tokens_an_adapter_prints_never_reach_the_report() {
    let mut o = RunOptions::new(
        "env | grep ^MOCK_ | sort >&2; echo 'Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl' >&2; exit 1",
    );
    o.case_filter = Some("identity/runner-samples/client-credentials".into());
    let report = conformance::run(o).unwrap();
    let case = report.case("identity/runner-samples/client-credentials").unwrap();
    assert_eq!(case.status, CaseStatus::Failed);
    assert!(case.failures[0].message.contains("closed its stdout"), "{:?}", case.failures);
    assert!(case.stderr.contains("MOCK_CLIENT_SECRET=<redacted>"), "{}", case.stderr);
    assert!(case.stderr.contains("Bearer <redacted:token>"), "{}", case.stderr);
    assert!(case.stderr.contains("MOCK_PROTOCOL=1") && case.stderr.contains("MOCK_CA="), "{}", case.stderr);
    assert!(!case.stderr.contains("MOCK_USERNAME"), "a service principal's case sets no user");
    let all = format!("{}{}", report.render(), report.to_junit());
    assert!(!all.contains("mock-pipeline-secret") && !all.contains("eyJhbGci"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mock_step_runs_on_both_doors_for_a_user_identity() {
    let dir = tempfile::tempdir().unwrap();
    let case = json!({
        "id": "runs/runner/mock-steps", "level": "SHOULD", "statement": "Every mock step runs.",
        "capabilities": ["token"], "identity": {"user": "megan@contoso.onmicrosoft.com"},
        "steps": [
            {"mock": "setMachine", "machine": "FIN-01", "facts": {"online": false}},
            {"mock": "setMachine", "machine": "BUILD-01", "facts": {"sessions": [{"user": "megan@contoso.onmicrosoft.com", "state": "active"}]}},
            {"mock": "settings", "patch": {"tokenLifetimeSecs": 600}},
            {"mock": "scenario", "name": "throttled-runs"},
            {"mock": "fault", "rule": {"match": {"operation": "connections.put"}, "respond": {"status": 429, "headers": {"Retry-After": "1"}}, "times": 1}},
            {"mock": "advance", "seconds": 10},
            {"mock": "advanceUntilIdle"},
            {"mock": "advanceToNextEvent"},
            {"client": "acquireToken", "args": {"resource": "powerplatform"}, "expect": {"ok": true, "result": {"expiresIn": 600}}}
        ],
        "expect": {
            "requests": [{"operation": "identity.token", "body": {"grant_type": "password", "username": "megan@contoso.onmicrosoft.com",
                "password": "Megan-Test-Passw0rd!", "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"}, "bodyMatch": "subset"}],
            "state": {"connectionsExact": true, "runs": []}
        }
    });
    std::fs::write(dir.path().join("steps.json"), case.to_string()).unwrap();
    let mut o = RunOptions::new(adapter(""));
    o.cases_dir = Some(dir.path().to_owned());
    let in_process = conformance::run_async(o.clone()).await.unwrap();
    assert_eq!(in_process.cases[0].status, CaseStatus::Passed, "{}", in_process.render());
    let server = mock_server::MockServer::builder().https(None).start().await.unwrap();
    o.mock_url = Some(server.uri());
    let over_http = conformance::run_async(o.clone()).await.unwrap();
    assert_eq!(over_http.cases[0].status, CaseStatus::Passed, "{}", over_http.render());
    let nested = conformance::run(o).unwrap_err();
    assert!(nested.to_string().contains("run_async"), "the blocking entry point refuses, never panics: {nested}");
}

#[test]
fn the_real_host_doors_work_and_are_reported_never_failed() {
    for (mode, door) in
        [("host-form", "powerplatform (environment host)"), ("tenant-form", "powerplatform (tenant host)")]
    {
        let report = conformance::run(options(mode)).unwrap();
        assert_eq!(report.exit_code(), 0, "{mode}: {}", report.render());
        let create = report.case("connections/create/service-principal").unwrap();
        assert_eq!(create.status, CaseStatus::Passed, "the path pattern matches the routed request");
        assert!(create.doors.contains(&door.to_owned()), "{mode}: {:?}", create.doors);
    }
}
