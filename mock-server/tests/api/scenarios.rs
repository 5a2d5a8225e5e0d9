//! Named scenarios (`fixtures/scenarios/`) applied with one control call, each observed as a
//! client sees it, and request-driven errors (`x-mock-scenario`) behind their flag.

use crate::helpers::*;
use crate::runs::{BUILD01_GROUP, Door, FLOW_OK};
use reqwest::Method;
use serde_json::{Value, json};

const CONNECTION: &str = "d4e4a6ff-9a67-492a-a1f6-de854528668c";
const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";

fn connection_body() -> Value {
    json!({"properties": {"connectionParametersSet": {"name": "azureRelay", "values": {
        "username": {"value": "CONTOSO\\svc-rpa"}, "password": {"value": "Contoso-SvcRpa-Passw0rd!"},
        "targetId": {"value": FINANCE}}}}})
}

impl TestServer {
    async fn put_connection_status(&self, token: &str, scenario: Option<&str>) -> (u16, Value) {
        let url = format!(
            "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/{CONNECTION}?api-version=1",
            self.http
        );
        let mut req = self.client.put(url).bearer_auth(token).json(&connection_body());
        if let Some(s) = scenario {
            req = req.header("x-mock-scenario", s);
        }
        status_json(req.send().await.unwrap()).await
    }

    async fn apply(&self, name: &str) -> Value {
        let (s, applied) = self.control(Method::POST, &format!("/_mock/scenarios/{name}"), None).await;
        assert_eq!(s, 200, "{applied}");
        applied
    }
}

#[tokio::test]
async fn the_scenarios_are_listed_and_unknown_ones_refused() {
    let t = spawn_server().await;
    let listed = t.control_get("/_mock/scenarios").await;
    let names: Vec<&str> = listed["value"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for name in
        ["transient-5xx", "dataverse-unavailable", "environment-not-yet-visible", "token-expired", "throttled-runs"]
    {
        assert!(names.contains(&name), "{name}: {listed}");
    }
    assert!(listed["value"][0]["summary"].as_str().is_some_and(|s| !s.is_empty()));
    let (s, e) = t.control(Method::POST, "/_mock/scenarios/nope", None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("ScenarioNotFound")));
}

#[tokio::test]
async fn transient_5xx_fails_twice_then_creates_one_connection() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let applied = t.apply("transient-5xx").await;
    assert_eq!(applied["faults"].as_array().unwrap().len(), 2, "{applied}");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(t.put_connection_status(&token, None).await.0);
    }
    assert_eq!(statuses, [503, 503, 201]);
    assert_eq!(t.control_get("/_mock/state").await["connections"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn environment_not_yet_visible_answers_its_code_then_succeeds() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    t.apply("environment-not-yet-visible").await;
    let (s, e) = t.put_connection_status(&token, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("ServiceToServiceEnvironmentNotFound")));
    assert_eq!(t.put_connection_status(&token, None).await.0, 404);
    assert_eq!(t.put_connection_status(&token, None).await.0, 201);
}

#[tokio::test]
async fn dataverse_unavailable_answers_503_on_the_web_api_only() {
    let t = spawn_server().await;
    let token = t.sp_token(&format!("https://{ORG}.crm.dynamics.com/.default")).await;
    t.apply("dataverse-unavailable").await;
    let r = t.client.get(t.dv("WhoAmI")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "5");
    let (s, e) = status_json(r).await;
    assert_eq!((s, e["error"]["code"].as_str()), (503, Some("0x80040216")), "{e}");
    let port = t.server.https_addr().unwrap().port();
    let real_host = format!("https://{ORG}.crm.dynamics.com:{port}/api/data/v9.2/WhoAmI");
    assert_eq!(t.client.get(real_host).bearer_auth(&token).send().await.unwrap().status(), 503, "the org host too");
    t.sp_token(PP_SCOPE).await;
}

#[tokio::test]
async fn token_expired_issues_tokens_that_live_two_seconds() {
    let t = spawn_server().await;
    let applied = t.apply("token-expired").await;
    assert_eq!(applied["settings"]["tokenLifetimeSecs"], 2, "{applied}");
    let c = claims(&t.sp_token(PP_SCOPE).await);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 2, "{c}");
}

#[tokio::test]
async fn throttled_runs_throttles_the_second_run_on_a_connection() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    t.apply("throttled-runs").await;
    let dv = d.dv_token().await;
    d.start(&dv, FLOW_OK, "attended", &conn).await;
    let (s, e) = d.run(&dv, FLOW_OK, json!({"runMode": "attended", "connectionName": conn})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (429, Some("DesktopFlowsActionThrottled")), "{e}");
}

#[tokio::test]
async fn a_scenario_applies_to_the_sandbox_named_only() {
    let t = spawn_server().await;
    let (s, _) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": "team-b"}))).await;
    assert_eq!(s, 201);
    let (s, _) = t.control(Method::POST, "/_mock/scenarios/transient-5xx?sandbox=team-b", None).await;
    assert_eq!(s, 200);
    assert_eq!(t.control_get("/_mock/faults?sandbox=team-b").await["value"].as_array().unwrap().len(), 2);
    assert_eq!(t.control_get("/_mock/faults").await["value"], json!([]));
    let token = t.sp_token(PP_SCOPE).await;
    assert_eq!(t.put_connection_status(&token, None).await.0, 201, "the default sandbox behaves");
    let (s, _) = t.control(Method::POST, "/_mock/reset?sandbox=team-b", None).await;
    assert_eq!(s, 200);
    assert_eq!(t.control_get("/_mock/faults?sandbox=team-b").await["value"], json!([]), "reset removes its effect");
}

#[tokio::test]
async fn a_request_may_ask_for_a_scenarios_fault_when_the_flag_allows() {
    // Arrange
    let t = spawn_with(mock_server::MockServer::builder().allow_request_faults(true)).await;
    let token = t.sp_token(PP_SCOPE).await;
    // Act + Assert: one request answered by the scenario's rule, nothing counted or kept.
    let (s, e) = t.put_connection_status(&token, Some("environment-not-yet-visible")).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("ServiceToServiceEnvironmentNotFound")));
    let (s, _) = t.put_connection_status(&token, Some("dataverse-unavailable")).await;
    assert_eq!(s, 201, "no rule of that scenario fits: the request passes");
    let (s, e) = t.put_connection_status(&token, Some("token-expired")).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("ScenarioNotRequestable")), "{e}");
    assert_eq!(t.control_get("/_mock/faults").await["value"], json!([]));
    let journal = t.journal("operation=connections.put").await;
    assert_eq!(journal["entries"][0]["headers"]["x-mock-scenario"], "environment-not-yet-visible", "{journal}");

    let plain = spawn_server().await;
    let token = plain.sp_token(PP_SCOPE).await;
    assert_eq!(
        plain.put_connection_status(&token, Some("environment-not-yet-visible")).await.0,
        201,
        "ignored without the flag"
    );
}

#[test]
fn mock_server_scenarios_prints_one_line_each_and_starts_nothing() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mock-server")).arg("scenarios").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 5, "{stdout}");
    for line in &lines {
        let (name, summary) = line.split_once("  ").unwrap();
        assert!(!name.is_empty() && !name.contains(' ') && !summary.is_empty(), "{line}");
    }
    assert!(lines.iter().any(|l| l.starts_with("transient-5xx  ")));
}

#[test]
fn an_unknown_scenario_at_start_is_an_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mock-server"))
        .args(["--port", "0", "--no-tls", "--scenario", "nope"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scenario nope"));
}

impl Door<'_> {
    /// The status of the connect-with-sign-in connection to `group`, made now.
    async fn sign_in_status(&self, group: &str) -> (String, Option<String>) {
        let id = self.sign_in_connection(group).await;
        let token = self.token(PP_SCOPE).await;
        let url = format!(
            "{}/connectivity/environments/{}/connectors/shared_uiflow/connections/{id}?api-version=1",
            self.t.http, self.env
        );
        let (s, c) = self.send(Method::GET, &url, &token, None).await;
        assert_eq!(s, 200, "{c}");
        let status = &c["properties"]["statuses"][0];
        (status["status"].as_str().unwrap().to_owned(), status["error"]["code"].as_str().map(str::to_owned))
    }
}

#[tokio::test]
async fn credentials_incorrect_puts_connections_with_the_old_password_in_error() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let applied = t.apply("credentials-incorrect").await;
    assert_eq!(applied["machines"].as_array().unwrap().len(), 2, "{applied}");
    assert!(!applied.to_string().contains("Rotated-SvcRpa"), "no password in the answer: {applied}");
    let (s, c) = t.put_connection_status(&token, None).await;
    assert_eq!(s, 201);
    assert_eq!(c["properties"]["statuses"][0]["error"]["code"], "WindowsIdentityIncorrect", "{c}");
}

#[tokio::test]
async fn machine_not_joined_and_tenant_not_allowlisted_put_sign_in_connections_in_error() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    t.apply("machine-not-joined").await;
    assert_eq!(d.sign_in_status(BUILD01_GROUP).await, ("Error".to_owned(), Some("MachineNotJoined".to_owned())));
    t.control(Method::POST, "/_mock/reset", None).await;
    t.apply("tenant-not-allowlisted-at-creation").await;
    assert_eq!(
        d.sign_in_status(FINANCE).await,
        ("Error".to_owned(), Some("UnallowedTenantForConnectWithSignIn".to_owned()))
    );
}

#[tokio::test]
async fn a_scenario_finds_machines_by_name_in_a_new_sandbox_and_refuses_a_world_without_them() {
    let t = spawn_server().await;
    let (s, _) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": "team-c"}))).await;
    assert_eq!(s, 201);
    let (s, applied) = t.control(Method::POST, "/_mock/scenarios/machine-not-joined?sandbox=team-c", None).await;
    assert_eq!(s, 200, "{applied}");
    assert_eq!(applied["machines"][0]["name"], "BUILD-01");
    // team-c's own world without FIN-01.
    let mut world = t.control_get("/_mock/fixture?sandbox=team-c").await;
    let mut fin01 = Value::Null;
    for env in world["environments"].as_array_mut().unwrap() {
        let machines = env["machines"].as_array_mut().unwrap();
        if let Some(m) = machines.iter().find(|m| m["name"] == "FIN-01") {
            fin01 = m["id"].clone();
        }
        machines.retain(|m| m["name"] != "FIN-01");
    }
    for user in world["users"].as_array_mut().unwrap() {
        if let Some(list) = user["interactiveLogonMachines"].as_array_mut() {
            list.retain(|m| *m != fin01);
        }
    }
    for key in ["sandbox", "hosts"] {
        world.as_object_mut().unwrap().remove(key);
    }
    let (s, e) = t.control(Method::PUT, "/_mock/fixture?sandbox=team-c", Some(world)).await;
    assert_eq!(s, 200, "{e}");
    let (s, e) = t.control(Method::POST, "/_mock/scenarios/credentials-incorrect?sandbox=team-c", None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("ScenarioWorldMismatch")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("FIN-01"));
    let fin02 = t.control_get("/_mock/state?sandbox=team-c").await.to_string();
    assert!(!fin02.contains("Rotated-SvcRpa"), "nothing was changed, FIN-02 included");
}

#[tokio::test]
async fn machine_offline_makes_runs_wait() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    t.apply("machine-offline").await;
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(600).await;
    assert_eq!(d.session(&token, &run).await["statuscode"], 3, "Waiting");
}

#[tokio::test]
async fn passwordless_token_expiry_refuses_connector_runs_on_sign_in_connections() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    t.apply("passwordless-token-expiry").await;
    let token = d.token(PP_SCOPE).await;
    let runs = d.runtime_runs(&conn, FLOW_OK);
    let (s, h, v) = d.runtime(Method::POST, &format!("{runs}?runMode=attended"), &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("PasswordlessTokenExpiry")), "{v}");
    assert!(h.get("location").is_none());
}

#[tokio::test]
async fn sign_in_queue_limit_fails_the_waiting_run_once_the_trigger_moves_the_clock() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let before = t.control_get("/_mock/clock").await["now"].clone();
    let applied = t.apply("sign-in-queue-limit").await;
    assert_eq!(applied["triggers"], 2, "{applied}");
    assert_eq!(t.control_get("/_mock/clock").await["now"], before, "applying never moves the clock");
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    let s = d.session(&token, &run).await;
    assert_eq!((s["statuscode"].as_i64(), s["errorcode"].as_str()), (Some(8), Some("NoCandidateMachine")), "{s}");
    let events = t.journal("kind=event").await;
    let fired: Vec<&Value> =
        events["entries"].as_array().unwrap().iter().filter(|e| e["event"] == "scenario.trigger").collect();
    assert_eq!(fired.len(), 1, "one-shot");
    assert_eq!(fired[0]["detail"]["advancedSecs"], 3601);
    // The trigger is spent: another run waits.
    let again = d.start(&token, FLOW_OK, "attended", &conn).await;
    assert_eq!(d.session(&token, &again).await["statuscode"], 3);
}

#[tokio::test]
async fn a_fault_rules_answer_does_not_fire_a_trigger() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    t.apply("sign-in-queue-limit").await;
    t.sandbox()
        .add_fault_json(
            json!({"match": {"operation": "dataverse.runDesktopFlow"}, "respond": {"status": 503}, "times": 1}),
        )
        .await
        .unwrap();
    let before = t.control_get("/_mock/clock").await["now"].clone();
    let (s, _) = d.run(&token, FLOW_OK, json!({"runMode": "attended", "connectionName": conn})).await;
    assert_eq!(s, 503);
    assert_eq!(t.control_get("/_mock/clock").await["now"], before);
}

#[tokio::test]
async fn no_unlocked_session_fails_the_running_attended_run() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    t.apply("no-unlocked-session").await;
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    let s = d.session(&token, &run).await;
    assert_eq!(
        (s["statuscode"].as_i64(), s["errorcode"].as_str()),
        (Some(8), Some("NoUnlockedActiveSessionForAttended")),
        "{s}"
    );
}

#[tokio::test]
async fn a_scenario_naming_megan_follows_her_upn_into_a_new_sandbox() {
    let t = spawn_server().await;
    let (s, sb) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": "scn-a"}))).await;
    assert_eq!(s, 201, "{sb}");
    let env = &sb["environments"][0];
    let build = env["machines"].as_array().unwrap().iter().find(|m| m["name"] == "BUILD-01").unwrap();
    let upn = sb["users"][0]["userPrincipalName"].as_str().unwrap();
    let d = Door {
        t: &t,
        sandbox: "scn-a".into(),
        env: env["id"].as_str().unwrap().into(),
        org: env["dataverse"]["org"].as_str().unwrap().into(),
        upn: upn.into(),
        password: sb["users"][0]["password"].as_str().unwrap().into(),
        tenant: sb["tenants"][0]["id"].as_str().unwrap().into(),
    };
    let conn = d.sign_in_connection(build["group"].as_str().unwrap()).await;
    let token = d.dv_token().await;
    let (s, applied) = d.control(Method::POST, "/_mock/scenarios/no-unlocked-session", None).await;
    assert_eq!(s, 200, "{applied}");
    let flow = env["desktopFlows"][0]["workflowId"].as_str().unwrap();
    let run = d.start(&token, flow, "attended", &conn).await;
    let s = d.session(&token, &run).await;
    assert_eq!(s["errorcode"], "NoUnlockedActiveSessionForAttended", "{s}");
    let machine = t.control_get("/_mock/state?sandbox=scn-a").await.to_string();
    assert!(machine.contains(&format!("\"user\":\"{upn}\"")), "the locked session is the sandbox's Megan");
}

#[tokio::test]
async fn tenant_not_allowlisted_at_run_fails_the_run_at_assignment() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    t.apply("tenant-not-allowlisted-at-run").await;
    assert_eq!(d.sign_in_status(FINANCE).await, ("Connected".to_owned(), None), "fine at creation");
    let token = d.dv_token().await;
    let conn = "5a1b2c3d-0000-4000-8000-00000000c0de";
    let run = d.start(&token, FLOW_OK, "attended", conn).await;
    let s = d.session(&token, &run).await;
    assert_eq!(
        (s["statuscode"].as_i64(), s["errorcode"].as_str()),
        (Some(8), Some("UnallowedTenantForConnectWithSignIn")),
        "{s}"
    );
}

#[tokio::test]
async fn group_empty_fails_runs_on_the_emptied_group() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(FINANCE).await;
    let applied = t.apply("group-empty").await;
    let groups: Vec<&str> =
        applied["machines"].as_array().unwrap().iter().map(|m| m["group"].as_str().unwrap_or("")).collect();
    assert!(groups.iter().all(|g| *g != FINANCE), "{applied}");
    let token = d.dv_token().await;
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    let s = d.session(&token, &run).await;
    assert_eq!((s["statuscode"].as_i64(), s["errorcode"].as_str()), (Some(8), Some("GroupIsEmpty")), "{s}");
    let (s, e) = t
        .control(Method::PATCH, "/_mock/machines/022701dd-0a3a-4ba3-9dbc-b24e4ec4ae0f", Some(json!({"group": null})))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("MachineNotInAGroup")), "already alone: {e}");
}

#[tokio::test]
async fn group_not_shared_refuses_the_service_principals_connection() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let applied = t.apply("group-not-shared").await;
    assert_eq!(applied["removedShares"][0]["group"], FINANCE, "{applied}");
    let (s, e) = t.put_connection_status(&token, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("ConnectionAuthorizationFailed")), "{e}");
}

#[tokio::test]
async fn polling_a_202_location_sooner_than_its_retry_after_is_a_violation() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.token(PP_SCOPE).await;
    let url = format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_OK));
    let (s, h, _) = d.runtime(Method::POST, &url, &token, &[], None).await;
    assert_eq!(s, 202);
    let location = h["location"].to_str().unwrap().to_owned();
    let (s, _, _) = d.runtime(Method::GET, &location, &token, &[], None).await;
    assert_eq!(s, 202, "the check never changes an answer");
    let violations = t.control_get("/_mock/retry-after").await;
    let v = &violations["value"][0];
    assert_eq!(
        (v["operation"].as_str(), v["afterStatus"].as_u64()),
        (Some("runtime.getRunStatus"), Some(202)),
        "{violations}"
    );
    assert_eq!(v["honoured"], false);
}

#[tokio::test]
async fn unattended_run_on_sign_in_answers_connector_runs_400_and_creates_no_session() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let applied = t.apply("unattended-run-on-sign-in").await;
    assert_eq!(applied["faults"].as_array().unwrap().len(), 1, "{applied}");
    let token = d.token(PP_SCOPE).await;
    let runs = d.runtime_runs(&conn, FLOW_OK);
    let (s, h, v) = d.runtime(Method::POST, &format!("{runs}?runMode=attended"), &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("SignInConnectionAttendedOnly")), "{v}");
    assert!(h.get("location").is_none());
    let dv = d.dv_token().await;
    let (_, list) = d.send(Method::GET, &d.dv("flowsessions?$select=statuscode"), &dv, None).await;
    assert_eq!(list["value"], json!([]), "a fault rule applies nothing: {list}");
}

#[tokio::test]
async fn a_patch_desktop_flow_step_changes_what_later_runs_do() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let applied = t.apply("desktop-flow-already-running").await;
    assert_eq!(applied["desktopFlows"][0]["workflowId"], FLOW_OK, "{applied}");
    assert_eq!(applied["desktopFlows"][0]["simulation"]["fail"]["code"], "UIFlowAlreadyRunning", "{applied}");
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(120).await;
    let s = d.session(&token, &run).await;
    assert_eq!((s["statuscode"].as_i64(), s["errorcode"].as_str()), (Some(8), Some("UIFlowAlreadyRunning")), "{s}");
}

#[tokio::test]
async fn the_retry_after_verdict_is_also_on_the_next_requests_own_journal_entry() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.token(PP_SCOPE).await;
    let url = format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_OK));
    let (s, h, _) = d.runtime(Method::POST, &url, &token, &[], None).await;
    assert_eq!(s, 202);
    let location = h["location"].to_str().unwrap().to_owned();
    d.runtime(Method::GET, &location, &token, &[], None).await;
    let journal = t.journal("operation=runtime.getRunStatus").await;
    let mark = &journal["entries"][0]["retryAfter"];
    assert_eq!((mark["required"].as_u64().is_some(), mark["honoured"].as_bool()), (true, Some(false)), "{journal}");
    assert!(mark["waitedMs"].as_u64().is_some(), "{journal}");
    let runs = t.journal("operation=runtime.runUIFlow").await;
    assert!(runs["entries"][0].get("retryAfter").is_none(), "nothing was owed before the run request: {runs}");
    let events = t.journal("kind=event").await;
    assert!(
        events["entries"].as_array().unwrap().iter().any(|e| e["event"] == "retryAfter.verdict"),
        "the event stays: {events}"
    );
}

#[tokio::test]
async fn overrides_replace_a_codes_message_until_reset() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let applied = t.apply("sign-in-attended-only-real-text").await;
    assert_eq!(applied["overrides"], json!(["SignInConnectionAttendedOnly"]), "{applied}");
    let token = d.token(PP_SCOPE).await;
    let url = format!("{}?runMode=unattended", d.runtime_runs(&conn, FLOW_OK));
    let (s, _, v) = d.runtime(Method::POST, &url, &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("SignInConnectionAttendedOnly")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("sign-in-attended-only-real-text"), "{v}");
    let journal = t.journal("operation=runtime.runUIFlow").await;
    assert_eq!(journal["entries"][0]["response"], v, "the journal holds the answer as sent");
    t.control(Method::POST, "/_mock/reset", None).await;
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.token(PP_SCOPE).await;
    let url = format!("{}?runMode=unattended", d.runtime_runs(&conn, FLOW_OK));
    let (_, _, v) = d.runtime(Method::POST, &url, &token, &[], None).await;
    assert!(v["error"]["message"].as_str().unwrap().starts_with("Connect with sign-in"), "reset removes it: {v}");
}
