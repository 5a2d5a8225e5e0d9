//! The runner's parts without an adapter: case loading and its errors, the default-world →
//! sandbox mapping, `${name.field}`, request matching, counts, leaks, state, the report's
//! exit code and JUnit.

use conformance::case::{Case, check_id};
use conformance::check;
use conformance::report::{CaseReport, CaseStatus, Failure, Report};
use conformance::substitute::{Saved, substitute};
use conformance::world_map::WorldMap;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const ENV: &str = "37520647-dbdf-49fa-ba01-6134c14680c4";
const GROUP: &str = "42e26112-838c-471b-b09f-958e640e9303";

fn minimal(id: &str) -> Value {
    json!({
        "id": id, "level": "MUST", "statement": "A client gets a token.", "capabilities": ["token"],
        "steps": [{"client": "acquireToken", "args": {"resource": "powerplatform"}}]
    })
}

fn parse(v: &Value) -> Result<Case, conformance::CaseError> {
    Case::parse("cases/x.json", &v.to_string())
}

#[test]
fn the_embedded_catalog_loads_with_unique_well_formed_ids() {
    let cases = conformance::catalog(None).expect("the embedded catalog loads");
    assert!(cases.len() >= 4, "the runner's samples at least");
    let ids: BTreeSet<&str> = cases.iter().map(|c| c.case.id.as_str()).collect();
    assert_eq!(ids.len(), cases.len(), "unique ids");
    for c in &cases {
        check_id(&c.case.id).unwrap();
        assert!(c.file.starts_with("cases/") && c.file.ends_with(".json"), "{}", c.file);
    }
    assert!(ids.contains("connections/create/service-principal"));
}

#[test]
fn ids_are_lower_case_with_two_segments_and_a_surface_first() {
    for good in ["connections/create/service-principal", "identity/token", "runs/connector-door/start-2"] {
        assert_eq!(check_id(good), Ok(()), "{good}");
    }
    for bad in
        ["connections", "Connections/create", "billing/x", "connections//x", "connections/-x", "runs/a_b", "runs/a b"]
    {
        assert!(check_id(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn an_unknown_field_is_an_error_naming_the_file_and_the_field() {
    let mut v = minimal("identity/token/x");
    v["steps"][0]["expect"] = json!({"ok": false, "stauts": 403});
    let e = parse(&v).unwrap_err();
    assert_eq!(e.file, "cases/x.json");
    assert_eq!(e.field, "steps[0]");
    assert!(e.message.contains("expect") && e.message.contains("stauts"), "{e}");

    let mut v = minimal("identity/token/x");
    v["expect"] = json!({"requests": [{"operation": "identity.token", "methd": "POST"}]});
    let e = parse(&v).unwrap_err();
    assert_eq!(e.field, "expect.requests[0].methd");
    assert!(e.message.contains("unknown field"), "{e}");

    let mut v = minimal("identity/token/x");
    v["level"] = json!("MAY");
    assert_eq!(parse(&v).unwrap_err().field, "level");
}

#[test]
fn what_serde_cannot_check_is_checked_by_name() {
    let e = parse(&minimal("billing/token")).unwrap_err();
    assert_eq!(e.field, "id");

    let mut v = minimal("identity/token/x");
    v["expect"] = json!({"requests": [{"operation": "connections.create"}]});
    let e = parse(&v).unwrap_err();
    assert_eq!(e.field, "expect.requests[0].operation");
    assert!(e.message.contains("connections.create"), "{e}");

    let mut v = minimal("identity/token/x");
    v["expect"] = json!({"counts": {"identity.tokens": 1}});
    assert_eq!(parse(&v).unwrap_err().field, "expect.counts.identity.tokens");

    let mut v = minimal("identity/token/x");
    v["steps"] = json!([{"client": "getConnection", "args": {"connectionId": "${conn.id}"}}]);
    let e = parse(&v).unwrap_err();
    assert_eq!(e.field, "steps[0]");
    assert!(e.message.contains("conn"), "{e}");

    let mut v = minimal("identity/token/x");
    v["steps"] = json!([{"client": "acquireToken", "mock": "advance"}]);
    assert!(parse(&v).unwrap_err().message.contains("exactly one"));

    let mut v = minimal("identity/token/x");
    v["identity"] = json!({"servicePrincipal": "contoso-pipeline", "user": "megan@contoso.onmicrosoft.com"});
    assert_eq!(parse(&v).unwrap_err().field, "identity");

    let mut v = minimal("identity/token/x");
    v["steps"][0]["expect"] = json!({"ok": false, "status": "4xx"});
    let case = parse(&v).expect("a status class is accepted");
    assert!(
        matches!(&case.steps[0], conformance::case::Step::Client(c) if c.expect.as_ref().unwrap().status.unwrap().accepts(404))
    );
    v["steps"][0]["expect"] = json!({"ok": false, "status": "4x"});
    assert!(parse(&v).is_err());
}

#[test]
fn a_folder_with_two_cases_of_one_id_is_refused_naming_the_second_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("identity")).unwrap();
    std::fs::write(dir.path().join("identity/a.json"), minimal("identity/token/same").to_string()).unwrap();
    std::fs::write(dir.path().join("identity/b.json"), minimal("identity/token/same").to_string()).unwrap();
    let e = conformance::catalog(Some(dir.path())).unwrap_err();
    assert!(e.file.ends_with("b.json"), "{e}");
    assert_eq!(e.field, "id");
    assert!(e.message.contains("a.json"), "{e}");

    let misplaced = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(misplaced.path().join("runs")).unwrap();
    std::fs::write(misplaced.path().join("runs/c.json"), minimal("identity/token/c").to_string()).unwrap();
    let e = conformance::catalog(Some(misplaced.path())).unwrap_err();
    assert_eq!(e.field, "id");
    assert!(e.message.contains("folder 'runs/'"), "{e}");
    std::fs::rename(misplaced.path().join("runs/c.json"), misplaced.path().join("c.json")).unwrap();
    assert!(conformance::catalog(Some(misplaced.path())).is_ok(), "a file at the root may hold any case");

    let empty = tempfile::tempdir().unwrap();
    assert!(conformance::catalog(Some(empty.path())).unwrap_err().message.contains("no *.json"));
}

fn sandbox_map(name: &str) -> WorldMap {
    let default = fixtures::default_world();
    WorldMap::new(&default, &mock_server::sandbox::instantiate(&default, name))
}

#[test]
fn default_world_values_map_into_the_sandbox_whole_and_inside_strings() {
    let map = sandbox_map("conf-0000abcd-1");
    let sandbox = &map.sandbox_world;
    let env = sandbox.environments[0].id.clone();
    assert_ne!(env, ENV);
    let m = |s: &str| map.to_sandbox.string(s);
    assert_eq!(m(ENV), env);
    assert_eq!(m(&ENV.replace('-', "")), env.replace('-', ""), "the 32-hex form too");
    assert_eq!(
        m(&format!("/providers/Microsoft.PowerApps/environments/{ENV}")),
        format!("/providers/Microsoft.PowerApps/environments/{env}")
    );
    assert_eq!(m("megan@contoso.onmicrosoft.com"), "megan@contoso-conf-0000abcd-1.onmicrosoft.com");
    assert_eq!(m("mock-pipeline-secret~0001"), "mock-pipeline-secret~0001-conf-0000abcd-1");
    assert_eq!(m("contosodev.crm.dynamics.com"), "contosodev-conf-0000abcd-1.crm.dynamics.com");
    let host = ENV.replace('-', "");
    let host = format!("{}.{}.environment.api.powerplatform.com", &host[..30], &host[30..]);
    let want = mock_server::domain::ids::EnvironmentId::parse(&env).unwrap().api_host();
    assert_eq!(m(&host), want, "the environment host");
    // An Entra Windows account follows its tenant's domain, like a UPN.
    assert_eq!(m("rpa@contoso.onmicrosoft.com"), "rpa@contoso-conf-0000abcd-1.onmicrosoft.com");
    // What instantiation keeps stays: a domain Windows account, a NetBIOS name, the world's name.
    assert_eq!(m("CONTOSO\\svc-rpa"), "CONTOSO\\svc-rpa");
    assert_eq!(m("default"), "default");
    assert_eq!(m("Finance bots"), "Finance bots");
    // And back.
    assert_eq!(
        map.back.string(&format!("/connectivity/environments/{env}/connections")),
        format!("/connectivity/environments/{ENV}/connections")
    );
    assert!(map.secrets.contains("Contoso-SvcRpa-Passw0rd!-conf-0000abcd-1"));
    assert!(map.secrets.contains("mock-pipeline-secret~0001-conf-0000abcd-1"));
}

#[test]
fn an_account_expands_to_the_sandboxs_username_and_password() {
    let map = sandbox_map("conf-0000abcd-2");
    let args = json!({"machineGroupId": GROUP, "account": {"machine": "FIN-01", "username": "CONTOSO\\svc-rpa"}});
    let mapped = map.to_sandbox(&args).unwrap();
    assert_eq!(mapped["username"], "CONTOSO\\svc-rpa");
    assert_eq!(mapped["password"], "Contoso-SvcRpa-Passw0rd!-conf-0000abcd-2");
    assert!(mapped.get("account").is_none());
    assert_eq!(mapped["machineGroupId"], map.sandbox_world.environments[0].machine_groups[1].id);
    let entra = map
        .to_sandbox(&json!({"account": {"machine": "BUILD-01", "username": "rpa@contoso.onmicrosoft.com"}}))
        .unwrap();
    assert_eq!(entra["username"], "rpa@contoso-conf-0000abcd-2.onmicrosoft.com", "the account as the sandbox has it");
    let e = map.to_sandbox(&json!({"account": {"machine": "FIN-09", "username": "x"}})).unwrap_err();
    assert!(e.contains("FIN-09"), "{e}");
    assert!(
        map.to_sandbox(&json!({"account": {"machine": "FIN-01", "username": "nobody"}}))
            .unwrap_err()
            .contains("nobody")
    );
}

#[test]
fn saved_results_replace_whole_string_references() {
    let mut saved = Saved::new();
    saved.insert("conn".into(), json!({"id": "abc", "status": "Connected"}));
    saved.insert("r".into(), json!({"runId": "r-1", "outputs": {"total": 42, "lines": ["a", "b"]}}));
    let v = json!({"connectionId": "${conn.id}", "n": "${r.outputs.total}", "second": "${r.outputs.lines.1}",
                   "whole": "${conn}", "inside": "x ${conn.id}", "list": ["${r.runId}"]});
    let out = substitute(&v, &saved).unwrap();
    assert_eq!(out["connectionId"], "abc");
    assert_eq!(out["n"], 42, "the value keeps its type");
    assert_eq!(out["second"], "b");
    assert_eq!(out["whole"]["status"], "Connected");
    assert_eq!(out["inside"], "x ${conn.id}", "only whole strings are references");
    assert_eq!(out["list"][0], "r-1");
    assert!(substitute(&json!("${conn.nope}"), &saved).unwrap_err().contains("nope"));
    assert!(substitute(&json!("${other.id}"), &saved).unwrap_err().contains("other"));
}

/// A journal entry as the mock writes it.
fn entry(op: &str, method: &str, path: &str, query: &[(&str, &str)], body: Value, status: u16) -> Value {
    json!({
        "kind": "request", "operation": op, "method": method, "host": "127.0.0.1:8080", "path": path,
        "query": query.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "headers": {"accept": "application/json", "content-type": "application/json"},
        "body": body, "status": status, "response": {}
    })
}

fn put_body(group: &str) -> Value {
    json!({"properties": {"environment": {"name": ENV, "id": format!("/providers/Microsoft.PowerApps/environments/{ENV}")},
        "displayName": "Finance bots",
        "connectionParametersSet": {"name": "azureRelay", "values": {
            "targetId": {"value": group}, "username": {"value": "CONTOSO\\svc-rpa"}, "password": {"value": "<redacted:password:1a2b3c4d>"}}}}})
}

fn put_path(connection: &str) -> String {
    format!("/connectivity/environments/{ENV}/connectors/shared_uiflow/connections/{connection}")
}

#[test]
fn a_pattern_matches_32_hex_ids_other_key_orders_and_any_api_version() {
    let conn = "0d2c9f4e-1b7a-4c55-9a0e-3f1e2d4c5b6a";
    let journal = [
        entry("identity.token", "POST", "/t/oauth2/v2.0/token", &[], json!({"grant_type": "client_credentials"}), 200),
        entry(
            "connections.put",
            "PUT",
            &put_path(&conn.replace('-', "")),
            &[("api-version", "2022-03-01-preview")],
            put_body(&GROUP.replace('-', "")),
            201,
        ),
    ];
    let routed: Vec<Value> = journal.iter().map(check::routed).collect();
    let secrets: BTreeSet<String> = ["Contoso-SvcRpa-Passw0rd!".to_owned()].into();
    // Written hyphenated, keys in another order, the password as the case knows it.
    let pattern = json!({"operation": "connections.put", "method": "put", "path": put_path(conn),
        "query": {"api-version": "1"},
        "body": {"properties": {"connectionParametersSet": {"values": {"password": {"value": "Contoso-SvcRpa-Passw0rd!"},
            "username": {"value": "CONTOSO\\svc-rpa"}, "targetId": {"value": GROUP}}, "name": "azureRelay"},
            "displayName": "Finance bots", "environment": {"id": format!("/providers/Microsoft.PowerApps/environments/{ENV}"), "name": ENV}}},
        "headers": {"Content-Type": "application/json"}, "status": 201});
    assert_eq!(check::requests(std::slice::from_ref(&pattern), &routed, &secrets), vec![]);

    // Another group is another placeholder: no match, shown side by side.
    let other = [
        journal[0].clone(),
        entry("connections.put", "PUT", &put_path(conn), &[], put_body("d8ffb0fe-5a78-4d28-abf4-b5c4167600be"), 201),
    ];
    let routed: Vec<Value> = other.iter().map(check::routed).collect();
    let failures = check::requests(&[pattern], &routed, &secrets);
    assert_eq!(failures.len(), 1);
    let text = failures[0].render();
    assert!(failures[0].message.contains("body differs"), "{text}");
    assert!(
        text.contains("expected")
            && text.contains("| received")
            && text.contains("<group-id:1>")
            && text.contains("<group-id:2>"),
        "{text}"
    );
}

#[test]
fn patterns_match_in_order_as_a_subsequence_with_extra_requests_between() {
    let journal: Vec<Value> = [
        entry("identity.token", "POST", "/t/oauth2/v2.0/token", &[], Value::Null, 200),
        entry("connections.get", "GET", &put_path(GROUP), &[], Value::Null, 404),
        entry("connections.put", "PUT", &put_path(GROUP), &[], Value::Null, 201),
        entry("connections.get", "GET", &put_path(GROUP), &[], Value::Null, 200),
    ]
    .iter()
    .map(check::routed)
    .collect();
    let none = BTreeSet::new();
    let p = |op: &str, status: u16| json!({"operation": op, "status": status});
    assert!(check::requests(&[p("identity.token", 200), p("connections.get", 200)], &journal, &none).is_empty());
    assert!(check::requests(&[p("connections.put", 201), p("connections.get", 200)], &journal, &none).is_empty());
    let out_of_order = check::requests(&[p("connections.get", 200), p("connections.put", 201)], &journal, &none);
    assert_eq!(out_of_order.len(), 1);
    assert_eq!(out_of_order[0].check, "expect.requests[1]");
    let missing = check::requests(&[p("connections.delete", 200)], &journal, &none);
    assert!(missing[0].message.contains("no connections.delete request"), "{}", missing[0].message);
    assert!(missing[0].message.contains("identity.token, connections.get"), "{}", missing[0].message);
    let any = json!({"operation": "connections.put", "path": "<any>", "body": "<any>"});
    assert!(check::requests(&[any], &journal, &none).is_empty());
}

#[test]
fn a_subset_body_and_query_match_what_they_give() {
    let journal: Vec<Value> = [entry(
        "dataverse.query",
        "GET",
        "/dataverse/contosodev/api/data/v9.2/flowmachines",
        &[("$filter", "name eq 'FIN-01'"), ("$select", "name,_flowmachinegroupid_value")],
        json!({"a": 1, "b": {"c": 2, "d": 3}}),
        200,
    )]
    .iter()
    .map(check::routed)
    .collect();
    let none = BTreeSet::new();
    let subset = json!({"operation": "dataverse.query", "query": {"$filter": "name eq 'FIN-01'"}, "body": {"b": {"c": 2}}, "bodyMatch": "subset"});
    assert!(check::requests(&[subset], &journal, &none).is_empty());
    let equal = json!({"operation": "dataverse.query", "body": {"b": {"c": 2}}});
    assert_eq!(check::requests(&[equal], &journal, &none).len(), 1, "equal is the default");
    let query = json!({"operation": "dataverse.query", "query": {"$filter": "name eq 'FIN-02'"}});
    assert!(check::requests(&[query], &journal, &none)[0].message.contains("query differs"));
}

#[test]
fn real_host_requests_compare_in_their_routed_path_form() {
    let host = ENV.replace('-', "");
    let host = format!("{}.{}.environment.api.powerplatform.com:8443", &host[..30], &host[30..]);
    assert_eq!(
        check::routed_path("PUT", &host, "/connectivity/connectors/shared_uiflow/connections/x", Some(ENV)),
        format!("/connectivity/environments/{ENV}/connectors/shared_uiflow/connections/x")
    );
    assert_eq!(
        check::routed_path("GET", "contosodev.crm.dynamics.com", "/api/data/v9.2/flowmachines", None),
        "/dataverse/contosodev/api/data/v9.2/flowmachines"
    );
    assert_eq!(
        check::routed_path("GET", "127.0.0.1:1", "/dataverse/contosodev/api/data/v9.2/x", None),
        "/dataverse/contosodev/api/data/v9.2/x"
    );
    let e = json!({"surface": "powerplatform", "host": host});
    assert_eq!(check::door(&e), "powerplatform (environment host)");
}

#[test]
fn counts_leaks_and_retry_after_verdicts() {
    let mut leaky = entry("connections.put", "PUT", "/x", &[], Value::Null, 201);
    leaky["leaks"] = json!(["password in query.password"]);
    let journal = vec![entry("identity.token", "POST", "/t", &[], Value::Null, 200), leaky];
    let counts: std::collections::BTreeMap<String, conformance::case::CountExpect> =
        serde_json::from_value(json!({"identity.token": 1, "connections.put": {"min": 2}})).unwrap();
    let f = check::counts(&counts, &journal);
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("at least 2") && f[0].message.contains("sent 1"), "{}", f[0].message);
    let leaks = check::leaks(&journal);
    assert_eq!(leaks.len(), 1);
    assert!(leaks[0].message.contains("password in query.password"));
    assert!(check::retry_after_honoured(&[]).is_some(), "no verdict is not honouring");
    assert!(check::retry_after_honoured(&[json!({"honoured": true})]).is_none());
    assert!(check::retry_after_honoured(&[json!({"honoured": true}), json!({"honoured": false})]).is_some());
}

#[test]
fn state_patterns_use_the_clients_status_words_and_each_item_once() {
    let state = json!({"connections": [
        {"id": "a", "displayName": "One", "status": "Connected"},
        {"id": "b", "displayName": "Two", "status": "MachineGroupNotShared"}],
        "runs": [{"flowsessionId": "r", "status": "Failed", "errorCode": "NoUnlockedActiveSessionForAttended"}]});
    let (connections, runs) = check::state_view(&state);
    let expect: conformance::case::StateExpect = serde_json::from_value(json!({
        "connections": [{"id": "b", "status": "Error", "statusCode": "MachineGroupNotShared"}, {"id": "a", "status": "Connected"}],
        "connectionsExact": true,
        "runs": [{"runId": "r", "code": "NoUnlockedActiveSessionForAttended"}]})).unwrap();
    assert_eq!(check::state(&expect, &connections, &runs), vec![]);
    let twice: conformance::case::StateExpect =
        serde_json::from_value(json!({"connections": [{"status": "Connected"}, {"status": "Connected"}]})).unwrap();
    assert_eq!(check::state(&twice, &connections, &runs).len(), 1, "one connection matches one pattern");
    let exact: conformance::case::StateExpect = serde_json::from_value(json!({"connectionsExact": true})).unwrap();
    assert!(check::state(&exact, &connections, &runs)[0].message.contains("no connection"));
}

#[test]
fn outcomes_compare_ok_result_subset_status_class_and_code() {
    let expect = |v: Value| serde_json::from_value::<conformance::case::OutcomeExpect>(v).unwrap();
    let ok = json!({"id": 1, "ok": true, "result": {"id": "x", "status": "Connected", "extra": 1}});
    assert!(check::outcome("s", None, &ok).is_none());
    assert!(check::outcome("s", Some(&expect(json!({"ok": true, "result": {"status": "Connected"}}))), &ok).is_none());
    assert!(check::outcome("s", Some(&expect(json!({"ok": true, "result": {"status": "Error"}}))), &ok).is_some());
    let denied = json!({"id": 1, "ok": false, "status": 403, "code": "ConnectionAuthorizationFailed"});
    assert!(check::outcome("s", None, &denied).unwrap().message.contains("failure where success"));
    assert!(check::outcome("s", Some(&expect(json!({"ok": false, "status": "4xx"}))), &denied).is_none());
    assert!(check::outcome("s", Some(&expect(json!({"ok": false, "status": 404}))), &denied).is_some());
    assert!(check::outcome("s", Some(&expect(json!({"ok": false, "code": "Other"}))), &denied).is_some());
}

fn case_report(id: &str, level: conformance::Level, status: CaseStatus) -> CaseReport {
    CaseReport {
        id: id.into(),
        level,
        statement: "S & <t>".into(),
        file: format!("cases/{id}.json"),
        status,
        skip_reason: (status == CaseStatus::Skipped).then(|| "the adapter does not declare the capability runs".into()),
        failures: if status == CaseStatus::Failed {
            vec![Failure::compared(
                "step 1 (createConnection)",
                "differs",
                json!({"ok": true}),
                Some(json!({"ok": false, "code": "<x> & \"y\""})),
            )]
        } else {
            vec![]
        },
        expected_failure: false,
        selected: true,
        sandbox: "conf-00000000-1".into(),
        doors: vec![],
        stderr: if status == CaseStatus::Failed { "Traceback \u{1b}[31m <boom>".into() } else { String::new() },
        duration_ms: 12,
    }
}

#[test]
fn exit_code_follows_must_failures_and_stale_entries() {
    use conformance::Level::{Must, Should};
    let report = |cases: Vec<CaseReport>, stale: Vec<String>| Report {
        run_id: "00000000".into(),
        adapter: "x".into(),
        cases,
        stale,
        duration_ms: 1,
    };
    assert_eq!(
        report(
            vec![
                case_report("identity/a", Must, CaseStatus::Passed),
                case_report("identity/b", Must, CaseStatus::Skipped)
            ],
            vec![]
        )
        .exit_code(),
        0
    );
    assert_eq!(
        report(vec![case_report("identity/a", Should, CaseStatus::Failed)], vec![]).exit_code(),
        0,
        "SHOULD failures are reported only"
    );
    assert_eq!(report(vec![case_report("identity/a", Must, CaseStatus::Failed)], vec![]).exit_code(), 1);
    let mut expected = case_report("identity/a", Must, CaseStatus::Failed);
    expected.expected_failure = true;
    assert_eq!(report(vec![expected], vec![]).exit_code(), 0, "a listed failure does not fail the run");
    assert_eq!(report(vec![], vec!["identity/gone".into()]).exit_code(), 1, "a stale entry does");
    assert_eq!(
        conformance::report::parse_expected_failures("# baseline\nidentity/a  # flaky client\n\n  runs/b\n"),
        vec!["identity/a", "runs/b"]
    );
}

#[test]
fn the_junit_file_parses_with_one_testcase_per_case() {
    use conformance::Level::Must;
    let report = Report {
        run_id: "0badcafe".into(),
        adapter: "x".into(),
        cases: vec![
            case_report("identity/a", Must, CaseStatus::Passed),
            case_report("runs/b", Must, CaseStatus::Skipped),
            case_report("connections/create/c", Must, CaseStatus::Failed),
        ],
        stale: vec![],
        duration_ms: 40,
    };
    let xml = report.to_junit();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[1].attribute("name"), Some("runs/b"));
    assert!(cases[1].children().any(|c| c.has_tag_name("skipped")));
    let failure = cases[2].children().find(|c| c.has_tag_name("failure")).expect("a failure element");
    assert!(failure.text().unwrap_or("").contains(r#"<x> & \"y\""#), "escaped and restored");
    assert_eq!(cases[2].attribute("classname"), Some("connections/create"));
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures"), suite.attribute("skipped")),
        (Some("3"), Some("1"), Some("1"))
    );
}

#[test]
fn the_update_keeps_the_file_and_writes_the_requests_in_pattern_order() {
    let text = "{\n  \"id\": \"identity/token/x\",\n  \"level\": \"MUST\",\n  \"statement\": \"S.\",\n  \"steps\": [{\"client\": \"acquireToken\"}],\n  \"expect\": {\n    \"counts\": {\"identity.token\": 1}\n  }\n}\n";
    let observed = vec![
        json!({"operation": "identity.token", "method": "POST", "path": "/t/oauth2/v2.0/token", "query": {},
        "headers": {"accept": "*/*"}, "body": {"client_secret": "<redacted:client_secret:0ff1d851>", "grant_type": "client_credentials"}, "status": 200}),
    ];
    let updated = conformance::update::with_requests(text, &observed).unwrap();
    assert!(updated.starts_with("{\n  \"id\": \"identity/token/x\",\n  \"level\": \"MUST\""), "{updated}");
    assert!(updated.contains("\"counts\": {\"identity.token\": 1}"), "other members keep their text:\n{updated}");
    let case = Case::parse("x.json", &updated).unwrap();
    let r = &case.expect.requests[0];
    assert_eq!((r.operation.as_str(), r.method.as_deref(), r.status), ("identity.token", Some("POST"), Some(200)));
    assert_eq!(r.body.as_ref().unwrap()["client_secret"], "<any>", "a redacted secret matches anything");
    assert!(r.headers.is_none() && r.query.is_none());
    let op = updated.find("\"operation\"").unwrap();
    assert!(op < updated.find("\"method\"").unwrap(), "operation first:\n{updated}");
}

#[test]
fn the_checked_in_case_schema_is_the_one_the_format_generates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/case.schema.json");
    let generated = serde_json::to_string_pretty(&Case::json_schema()).unwrap() + "\n";
    if std::env::var_os("CONFORMANCE_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "fixtures/case.schema.json is stale: run CONFORMANCE_UPDATE_SCHEMA=1 cargo test -p conformance --test runner"
    );
}

#[test]
fn side_by_side_aligns_equal_lines_and_marks_the_rest() {
    let text = conformance::report::side_by_side(
        &json!({"ok": true, "result": {"displayName": "Build machine", "id": "x", "status": "Connected"}}),
        Some(&json!({"ok": true, "result": {"id": "x", "status": "Connected"}})),
    );
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].contains("expected") && rows[0].contains("| received"), "{text}");
    let marked: Vec<&&str> = rows.iter().filter(|r| r.trim_start().starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "only the missing key differs:\n{text}");
    assert!(marked[0].contains("\"displayName\"") && marked[0].trim_end().ends_with('|'), "{text}");
    let id_row = rows.iter().find(|r| r.contains("\"id\"")).unwrap();
    assert_eq!(id_row.matches("\"id\": \"x\"").count(), 2, "equal lines side by side despite the comma:\n{text}");
    assert!(conformance::report::side_by_side(&json!(1), None).contains("(nothing)"));
}
