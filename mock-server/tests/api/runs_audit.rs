//! Rules of runs.md that the first round tested only in the domain or not at all, over HTTP:
//! queue order on a frozen clock across both doors, a group deleted while a run waits,
//! callback retries, requests that make no run not counting against the throttle, the
//! allowlist failure's documented text at assignment, the standard queue limit setting,
//! maintenance, `GetRunStatus` for cancelled and timed-out runs, who may run, read, cancel and
//! list on both doors, the 2 MB inputs limit, connection references made through Dataverse, and
//! the 24 h cap of `untilIdle`.

use crate::helpers::*;
use crate::runs::{BUILD01, BUILD01_GROUP, Door, FLOW_OK};
use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[tokio::test]
async fn runs_start_by_priority_then_in_the_order_they_were_queued_on_a_frozen_clock() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let dv = d.dv_token().await;
    let pp = d.token(PP_SCOPE).await;
    let run = |priority: &str| json!({"runMode": "attended", "connectionName": conn, "runPriority": priority});
    // Four runs at one virtual instant; Megan's one session takes them one at a time.
    let (_, a) = d.run(&dv, FLOW_OK, run("normal")).await;
    let (_, b) = d.run(&dv, FLOW_OK, run("normal")).await;
    let (_, c) = d.run(&dv, FLOW_OK, run("high")).await;
    let (s, h, _) = d
        .runtime(
            Method::POST,
            &format!("{}?runMode=attended&runPriority=high", d.runtime_runs(&conn, FLOW_OK)),
            &pp,
            &[],
            None,
        )
        .await;
    assert_eq!(s, 202);
    let high_by_connector = h["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let id = |v: &Value| v["flowsessionId"].as_str().unwrap().to_owned();
    let (s, clock) = d.control(Method::POST, "/_mock/clock/advance", Some(json!({"untilIdle": true}))).await;
    assert_eq!(s, 200, "{clock}");
    let started: Vec<(String, String)> = clock["runEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "run.started")
        .map(|e| (e["flowsessionId"].as_str().unwrap().to_owned(), e["at"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(String, String)> = [
        (id(&c), "2025-01-06T09:00:00Z"),
        (high_by_connector, "2025-01-06T09:02:00Z"),
        (id(&a), "2025-01-06T09:04:00Z"),
        (id(&b), "2025-01-06T09:06:00Z"),
    ]
    .into_iter()
    .map(|(r, at)| (r, at.to_owned()))
    .collect();
    assert_eq!(started, expected, "high before normal, then queue order; each starts as the one before ends");
    assert_eq!(d.session(&dv, &id(&b)).await["startedon"], "2025-01-06T09:06:00Z");
}

#[tokio::test]
async fn a_group_deleted_while_its_run_waits_fails_the_run_with_xrm_machine_group_not_found() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let dv = d.dv_token().await;
    let r = t
        .client
        .post(d.dv("flowmachinegroups"))
        .bearer_auth(&dv)
        .json(&json!({"name": "Night shift"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let entity = r.headers()["odata-entityid"].to_str().unwrap().to_owned();
    let group = entity.rsplit('(').next().unwrap().trim_end_matches(')').to_owned();
    let join = json!({"flowmachinegroupid@odata.bind": format!("/flowmachinegroups({group})")});
    let (s, e) = d.send(Method::PATCH, &d.dv(&format!("flowmachines({BUILD01})")), &dv, Some(join)).await;
    assert_eq!(s, 204, "{e}");
    let conn = d.sign_in_connection(&group).await;
    d.set_sessions(BUILD01, json!([])).await;
    let pp = d.token(PP_SCOPE).await;
    let (s, h, _) =
        d.runtime(Method::POST, &format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_OK)), &pp, &[], None).await;
    assert_eq!(s, 202);
    let location = h["location"].to_str().unwrap().to_owned();
    let run = location.rsplit('/').next().unwrap().to_owned();
    d.advance(60).await;
    // The machine leaves: the group is empty and can go; the run still waits on it.
    let leave = d.dv(&format!("flowmachines({BUILD01})/Microsoft.Dynamics.CRM.LeaveGroup"));
    let (s, e) = d.send(Method::POST, &leave, &dv, None).await;
    assert_eq!(s, 204, "{e}");
    assert_eq!(d.session(&dv, &run).await["statuscode"], 3);
    let (s, _) = d.send(Method::DELETE, &d.dv(&format!("flowmachinegroups({group})")), &dv, None).await;
    assert_eq!(s, 204);
    // At deletion, without a clock change.
    let row = d.session(&dv, &run).await;
    assert_eq!(
        (row["statuscode"].as_i64(), row["errorcode"].as_str(), row["completedon"].as_str()),
        (Some(8), Some("XrmMachineGroupNotFound"), Some("2025-01-06T09:01:00Z")),
        "{row}"
    );
    let (s, h, v) = d.runtime(Method::GET, &location, &pp, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("XrmMachineGroupNotFound")), "api-facts 7: 404");
    assert!(h.get("location").is_none());
    let events = t.journal("kind=event").await;
    let ended: Vec<&Value> =
        events["entries"].as_array().unwrap().iter().filter(|e| e["event"] == "run.ended").collect();
    assert_eq!(ended.len(), 1, "{events}");
}

/// A loopback receiver: `/flaky` answers 500 twice, then 200; `/down` always 503.
async fn flaky_receiver() -> (String, Arc<AtomicU32>, Arc<AtomicU32>) {
    let (flaky, down) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (f, dn) = (flaky.clone(), down.clone());
    let app = axum::Router::new()
        .route(
            "/flaky",
            axum::routing::post(move || {
                let n = f.fetch_add(1, Ordering::SeqCst) + 1;
                async move { if n <= 2 { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK } }
            }),
        )
        .route(
            "/down",
            axum::routing::post(move || {
                dn.fetch_add(1, Ordering::SeqCst);
                async { StatusCode::SERVICE_UNAVAILABLE }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, flaky, down)
}

/// The `callback.attempt` events of one run: (attempt, status, retrying).
fn attempts(journal: &Value, run: &str) -> Vec<(u64, Option<u64>, bool)> {
    journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "callback.attempt" && e["detail"]["flowsessionId"] == run)
        .map(|e| {
            let d = &e["detail"];
            (d["attempt"].as_u64().unwrap(), d["status"].as_u64(), d["retrying"].as_bool().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_callback_answering_500_or_503_is_retried_three_times_in_the_background_and_journaled() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let (base, flaky_calls, down_calls) = flaky_receiver().await;
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let dv = d.dv_token().await;
    let body = |url: String| json!({"runMode": "attended", "connectionName": conn, "callbackUrl": url});
    let (_, flaky) = d.run(&dv, FLOW_OK, body(format!("{base}/flaky"))).await;
    let (_, down) = d.run(&dv, FLOW_OK, body(format!("{base}/down"))).await;
    let (flaky, down) = (flaky["flowsessionId"].as_str().unwrap(), down["flowsessionId"].as_str().unwrap());
    let (s, clock) = d.control(Method::POST, "/_mock/clock/advance", Some(json!({"untilIdle": true}))).await;
    assert_eq!(s, 200, "{clock}");
    let first: Vec<(u64, bool)> = clock["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["status"].as_u64().unwrap(), c["retrying"].as_bool().unwrap()))
        .collect();
    assert_eq!(first, [(500, true), (503, true)], "the answer lists the first attempts only");
    // Retries run on real time in the background: wait for the last one to be journaled.
    let mut journal = Value::Null;
    for _ in 0..200 {
        journal = t.journal("kind=event").await;
        if attempts(&journal, down).len() == 4 && attempts(&journal, flaky).len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(attempts(&journal, flaky), [(1, Some(500), true), (2, Some(500), true), (3, Some(200), false)]);
    assert_eq!(
        attempts(&journal, down),
        [(1, Some(503), true), (2, Some(503), true), (3, Some(503), true), (4, Some(503), false)],
        "three retries, then it gives up"
    );
    assert_eq!((flaky_calls.load(Ordering::SeqCst), down_calls.load(Ordering::SeqCst)), (3, 4));
}

#[tokio::test]
async fn requests_that_make_no_run_do_not_count_against_the_throttle() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let (s, _) = d.control(Method::PATCH, "/_mock/settings", Some(json!({"runsPerMinutePerConnection": 1}))).await;
    assert_eq!(s, 200);
    let dv = d.dv_token().await;
    let (s, e) = d.run(&dv, FLOW_OK, json!({"runMode": "attended", "connectionName": conn, "timeout": 86401})).await;
    assert_eq!((s, e["error"]["code"].is_string()), (400, true), "{e}");
    let (s, e) =
        d.run(&dv, FLOW_OK, json!({"runMode": "attended", "connectionName": conn, "inputs": "not json"})).await;
    assert_eq!(s, 400, "{e}");
    let (s, v) = d.run(&dv, FLOW_OK, json!({"runMode": "attended", "connectionName": conn})).await;
    assert_eq!(s, 200, "the refused requests made no run and took no slot: {v}");
    let (s, e) = d.run(&dv, FLOW_OK, json!({"runMode": "attended", "connectionName": conn})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (429, Some("DesktopFlowsActionThrottled")));
}

const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const FIN02: &str = "148a5ad1-1f49-48ab-8f8f-c73dfc6ea378";

#[tokio::test]
async fn a_sign_in_run_on_an_ad_joined_machine_without_the_tenant_allowlisted_fails_with_the_documented_text() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(FINANCE).await;
    // FIN-01 allowlists Contoso but has no session of Megan; FIN-02 has one and does not.
    d.set_sessions(FIN02, json!([{"user": format!("AzureAD\\{USER_UPN}"), "state": "active"}])).await;
    let dv = d.dv_token().await;
    let run = d.start(&dv, FLOW_OK, "attended", &conn).await;
    assert_eq!(d.session(&dv, &run).await["statuscode"], 3, "checked at assignment, not at the request");
    d.advance(0).await;
    let row = d.session(&dv, &run).await;
    assert_eq!((row["statuscode"].as_i64(), row["_machineid_value"].as_str()), (Some(8), Some(FIN02)), "{row}");
    assert_eq!(row["errorcode"], "UnallowedTenantForConnectWithSignIn");
    assert_eq!(
        row["errormessage"],
        format!(
            "Tenant {TENANT} needs to be explicitly allowlisted to authorize 'connect with sign-in' runs on the machine."
        ),
        "DECISIONS.md's failure table, word for word"
    );
}

#[tokio::test]
async fn other_runs_wait_up_to_the_standard_queue_limit_setting_and_maintenance_makes_runs_wait() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d
        .relay_connection(
            "00000000-0000-0000-0000-00000000a0a1",
            "BUILD-01\\rpa",
            "Build01-Rpa-Passw0rd!",
            BUILD01_GROUP,
        )
        .await;
    let (s, e) =
        d.control(Method::PATCH, &format!("/_mock/machines/{BUILD01}"), Some(json!({"runSessions": []}))).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("InvalidRequestContent")),
        "run sessions end with their run"
    );
    let (s, _) = d.control(Method::PATCH, "/_mock/settings", Some(json!({"queueTimeLimitSecs": 600}))).await;
    assert_eq!(s, 200);
    let dv = d.dv_token().await;
    // Attended needs a session of BUILD-01\rpa, which nobody opened: the run waits.
    let run = d.start(&dv, FLOW_OK, "attended", &conn).await;
    d.advance(599).await;
    assert_eq!(d.session(&dv, &run).await["statuscode"], 3);
    d.advance(1).await;
    let row = d.session(&dv, &run).await;
    assert_eq!(
        (row["statuscode"].as_i64(), row["errorcode"].as_str(), row["errordetails"].as_str()),
        (Some(8), Some("NoCandidateMachine"), Some("AttendedUserNotLoggedIn")),
        "{row}"
    );
    assert_eq!(row["errormessage"], "No machine able to run the desktop flow has been found.");
    assert_eq!(row["runwaitduration"], 600);
    // A machine in maintenance takes no run until it comes back.
    d.control(Method::PATCH, &format!("/_mock/machines/{BUILD01}"), Some(json!({"maintenance": true}))).await;
    let sign_in = d.sign_in_connection(BUILD01_GROUP).await;
    let run = d.start(&dv, FLOW_OK, "attended", &sign_in).await;
    d.advance(60).await;
    assert_eq!(d.session(&dv, &run).await["statuscode"], 3);
    let (s, _) =
        d.control(Method::PATCH, &format!("/_mock/machines/{BUILD01}"), Some(json!({"maintenance": false}))).await;
    assert_eq!(s, 200);
    assert_eq!(d.session(&dv, &run).await["statuscode"], 3, "assignments wait for the next clock change");
    d.advance(0).await;
    let row = d.session(&dv, &run).await;
    assert_eq!((row["statuscode"].as_i64(), row["startedon"].as_str()), (Some(2), Some("2025-01-06T09:11:00Z")));
}

#[tokio::test]
async fn get_run_status_answers_cancelled_and_timed_out_runs_and_follows_the_retry_after_setting() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let pp = d.token(PP_SCOPE).await;
    let (s, _) = d.control(Method::PATCH, "/_mock/settings", Some(json!({"runStatusRetryAfterSecs": 7}))).await;
    assert_eq!(s, 200);
    let long = "0f0f0f0f-2222-4333-8444-555566667777";
    let flow = json!({
        "environment": ENV_ID, "workflowId": long, "name": "Never ends",
        "owner": "9b938b62-1239-4855-aaa8-bd33df599368",
        "simulation": {"durationSeconds": 5 * 3600, "outputs": {}}
    });
    let (s, v) = d.control(Method::POST, "/_mock/desktopflows", Some(flow)).await;
    assert_eq!(s, 201, "{v}");
    let mut locations = Vec::new();
    for flow in [long, FLOW_OK] {
        let url = format!("{}?runMode=attended", d.runtime_runs(&conn, flow));
        let (s, h, v) = d.runtime(Method::POST, &url, &pp, &[], None).await;
        assert_eq!((s, h["retry-after"].to_str().unwrap()), (202, "7"), "{v}");
        locations.push(h["location"].to_str().unwrap().to_owned());
    }
    let [timing_out, cancelled] = <[String; 2]>::try_from(locations).unwrap();
    let id = cancelled.rsplit('/').next().unwrap();
    let dv = d.dv_token().await;
    let cancel = d.dv(&format!("flowsessions({id})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun"));
    assert_eq!(d.send(Method::POST, &cancel, &dv, None).await.0, 204);
    let (s, _, v) = d.runtime(Method::GET, &cancelled, &pp, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("Cancelled")), "{v}");
    // The connector door's timeout is the default: 3 h.
    d.advance(3 * 3600).await;
    let (s, _, v) = d.runtime(Method::GET, &timing_out, &pp, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("DesktopFlowsActionTimeout")), "{v}");
    let id = timing_out.rsplit('/').next().unwrap();
    assert_eq!(d.session(&dv, id).await["statuscode"], 10);
}

#[tokio::test]
async fn desktop_flows_made_on_the_control_surface_are_in_the_state_until_reset_returns_to_the_fixture() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let id = "0f0f0f0f-3333-4444-8555-666677778888";
    let flow = json!({
        "environment": ENV_ID, "workflowId": id, "name": "Made here",
        "owner": "9b938b62-1239-4855-aaa8-bd33df599368",
        "simulation": {"durationSeconds": 10, "outputs": {"Ok": true}}
    });
    let (s, v) = d.control(Method::POST, "/_mock/desktopflows", Some(flow)).await;
    assert_eq!(s, 201, "{v}");
    let flows = |state: &Value| -> Vec<String> {
        state["environments"][0]["desktopFlows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["workflowId"].as_str().unwrap().to_owned())
            .collect()
    };
    let state = t.control_get("/_mock/state").await;
    assert_eq!(flows(&state), [FLOW_OK, crate::runs::FLOW_FAIL, id]);
    assert_eq!(state["environments"][0]["desktopFlows"][2]["simulation"]["outputs"], json!({"Ok": true}));
    let fixture = t.control_get("/_mock/fixture").await;
    assert_eq!(fixture["environments"][0]["desktopFlows"].as_array().unwrap().len(), 2, "the loaded world");
    let (s, _) = d.control(Method::POST, "/_mock/reset", None).await;
    assert_eq!(s, 200);
    assert_eq!(flows(&t.control_get("/_mock/state").await), [FLOW_OK, crate::runs::FLOW_FAIL]);
}

#[tokio::test]
async fn what_the_mock_does_not_serve_of_runs_answers_not_implemented_by_mock() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let dv = d.dv_token().await;
    let run = d.start(&dv, FLOW_OK, "attended", &conn).await;
    let (_, refs) = d.send(Method::GET, &d.dv("connectionreferences"), &dv, None).await;
    let reference = refs["value"][0]["connectionreferenceid"].as_str().unwrap().to_owned();
    let cases = [
        (Method::PATCH, format!("flowsessions({run})"), Some(json!({"name": "renamed"}))),
        (Method::DELETE, format!("flowsessions({run})"), None),
        (Method::POST, "workflows".to_owned(), Some(json!({"name": "x", "category": 6}))),
        (Method::PATCH, format!("workflows({FLOW_OK})"), Some(json!({"name": "renamed"}))),
        (Method::DELETE, format!("connectionreferences({reference})"), None),
        (Method::POST, format!("flowsessions({run})/Microsoft.Dynamics.CRM.TriggerDesktopFlowRunCallback"), None),
    ];
    for (method, path, body) in cases {
        let (s, e) = d.send(method.clone(), &d.dv(&path), &dv, body).await;
        assert_eq!((s, e["error"]["code"].as_str()), (404, Some("0x8006088a")), "{method} {path}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("not implemented by the mock"),
            "{method} {path}: {e}"
        );
    }
}

#[tokio::test]
async fn at_one_instant_a_freed_session_comes_before_a_queue_limit_which_comes_before_an_assignment() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    // The sign-in limit equals the flow's duration: the second run's limit falls at the
    // instant the first run frees Megan's session.
    let (s, _) = d.control(Method::PATCH, "/_mock/settings", Some(json!({"signInQueueTimeLimitSecs": 120}))).await;
    assert_eq!(s, 200);
    let dv = d.dv_token().await;
    let first = d.start(&dv, FLOW_OK, "attended", &conn).await;
    let second = d.start(&dv, FLOW_OK, "attended", &conn).await;
    // PUT /_mock/clock is a clock change like an advance.
    let (s, clock) = d.control(Method::PUT, "/_mock/clock", Some(json!({"now": "2025-01-06T09:05:00Z"}))).await;
    assert_eq!(s, 200, "{clock}");
    let events: Vec<(&str, &str, &str)> = clock["runEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["flowsessionId"].as_str().unwrap(), e["event"].as_str().unwrap(), e["at"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            (first.as_str(), "run.started", "2025-01-06T09:00:00Z"),
            (first.as_str(), "run.ended", "2025-01-06T09:02:00Z"),
            (second.as_str(), "run.ended", "2025-01-06T09:02:00Z"),
        ],
        "{clock}"
    );
    let row = d.session(&dv, &second).await;
    assert_eq!((row["errorcode"].as_str(), row["startedon"].as_str()), (Some("NoCandidateMachine"), None));
    assert!(row["errormessage"].as_str().unwrap().contains("120 seconds"), "the limit the setting gives: {row}");
}

#[tokio::test]
async fn a_run_that_fits_no_machine_does_not_block_later_runs_of_its_group() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let stuck = d
        .relay_connection(
            "00000000-0000-0000-0000-00000000a0a2",
            "BUILD-01\\rpa",
            "Build01-Rpa-Passw0rd!",
            BUILD01_GROUP,
        )
        .await;
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let dv = d.dv_token().await;
    // Nobody signed in as BUILD-01\rpa: the first run cannot be placed; Megan's can.
    let first = d.start(&dv, FLOW_OK, "attended", &stuck).await;
    let second = d.start(&dv, FLOW_OK, "attended", &conn).await;
    d.advance(0).await;
    assert_eq!(d.session(&dv, &first).await["statuscode"], 3);
    assert_eq!(d.session(&dv, &second).await["statuscode"], 2);
    let (_, q) = d.control(Method::GET, &format!("/_mock/runs?group={BUILD01_GROUP}"), None).await;
    let view: Vec<(&str, &str)> = q["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["flowsessionId"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(view, [(first.as_str(), "Waiting"), (second.as_str(), "Running")]);
}

#[tokio::test]
async fn who_may_run_read_cancel_and_list_on_both_doors() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    // The service principal starts a run on its own connection; Megan owns the flow.
    let sp_pp = t.sp_token(PP_SCOPE).await;
    let sp_conn = "00000000-0000-0000-0000-00000000a0a3";
    let url = format!(
        "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/{sp_conn}?api-version=1",
        t.http
    );
    let body = crate::rules::relay("BUILD-01\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP);
    let (s, v) = d.send(Method::PUT, &url, &sp_pp, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let sp_dv = t.dv_token_of(None).await;
    let run = d.start(&sp_dv, FLOW_OK, "unattended", sp_conn).await;
    let megan_dv = d.dv_token().await;
    let adele = Door {
        upn: "adele@contoso.onmicrosoft.com".into(),
        password: "Adele-Test-Passw0rd!".into(),
        ..Door::default(&t)
    };
    let adele_dv = adele.dv_token().await;
    // Read: the principal who started it and the flow's owner; nobody else.
    assert_eq!(d.send(Method::GET, &d.dv(&format!("flowsessions({run})")), &sp_dv, None).await.0, 200);
    assert_eq!(d.send(Method::GET, &d.dv(&format!("flowsessions({run})")), &megan_dv, None).await.0, 200);
    let (s, e) = d.send(Method::GET, &d.dv(&format!("flowsessions({run})/outputs/$value")), &adele_dv, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")));
    // Cancel: the same.
    let cancel = d.dv(&format!("flowsessions({run})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun"));
    let (s, e) = d.send(Method::POST, &cancel, &adele_dv, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")), "{e}");
    assert_eq!(d.session(&megan_dv, &run).await["statuscode"], 3);
    assert_eq!(d.send(Method::POST, &cancel, &megan_dv, None).await.0, 204, "the flow's owner may cancel");
    // List and read desktop flows: every systemuser of the environment.
    let (s, flows) =
        d.send(Method::GET, &d.dv("workflows?$filter=category%20eq%206&$select=name"), &adele_dv, None).await;
    assert_eq!((s, flows["value"].as_array().map(Vec::len)), (200, Some(2)));
    let (s, _) = d.send(Method::GET, &d.dv(&format!("workflows({FLOW_OK})/inputs/$value")), &adele_dv, None).await;
    assert_eq!(s, 200);
    // The connector door: the same rules, in the runtime envelope.
    let megan_conn = d.sign_in_connection(BUILD01_GROUP).await;
    let adele_pp = adele.token(PP_SCOPE).await;
    let (s, _, e) = d
        .runtime(
            Method::POST,
            &format!("{}?runMode=attended", d.runtime_runs(&megan_conn, FLOW_OK)),
            &adele_pp,
            &[],
            None,
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("ConnectionAuthorizationFailed")), "{e}");
    let megan_pp = d.token(PP_SCOPE).await;
    let (s, h, _) = d
        .runtime(
            Method::POST,
            &format!("{}?runMode=attended", d.runtime_runs(&megan_conn, FLOW_OK)),
            &megan_pp,
            &[],
            None,
        )
        .await;
    assert_eq!(s, 202);
    let location = h["location"].to_str().unwrap().to_owned();
    let (s, _, e) = d.runtime(Method::GET, &location, &adele_pp, &[], None).await;
    assert_eq!(s, 403, "{e}");
    assert!(e["error"]["code"].is_string() && e["error"]["message"].is_string(), "{e}");
}

#[tokio::test]
async fn inputs_over_2_mb_make_no_run_and_connection_references_are_created_through_dataverse() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let dv = d.dv_token().await;
    let big = json!({"Month": "x".repeat(2 * 1024 * 1024)}).to_string();
    let (s, e) = d.run(&dv, FLOW_OK, json!({"runMode": "attended", "connectionName": conn, "inputs": big})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("0x80040203")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("2 MB"), "{e}");
    let (_, list) = d.send(Method::GET, &d.dv("flowsessions"), &dv, None).await;
    assert_eq!(list["value"].as_array().map(Vec::len), Some(0));
    // A reference made through Dataverse runs like one from the fixture.
    let reference = json!({
        "connectionreferencelogicalname": "contoso_NightRuns",
        "connectionreferencedisplayname": "Night runs",
        "connectorid": "/providers/Microsoft.PowerApps/apis/shared_uiflow",
        "connectionid": conn,
    });
    let r = t.client.post(d.dv("connectionreferences")).bearer_auth(&dv).json(&reference).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (s, v) = d
        .run(&dv, FLOW_OK, json!({"runMode": "attended", "connectionName": "contoso_NightRuns", "connectionType": 2}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, refs) = d
        .send(
            Method::GET,
            &d.dv("connectionreferences?$filter=connectionreferencelogicalname%20eq%20'contoso_NightRuns'&$select=connectionid"),
            &dv,
            None,
        )
        .await;
    assert_eq!(refs["value"][0]["connectionid"], conn.as_str());
}

#[tokio::test]
async fn until_idle_stops_24_hours_on_at_most() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let (s, _) = d.control(Method::PATCH, "/_mock/settings", Some(json!({"signInQueueTimeLimitSecs": 172800}))).await;
    assert_eq!(s, 200);
    let two_hours = "0f0f0f0f-4444-4555-8666-777788889999";
    let flow = json!({
        "environment": ENV_ID, "workflowId": two_hours, "name": "Two hours",
        "owner": "9b938b62-1239-4855-aaa8-bd33df599368",
        "simulation": {"durationSeconds": 7200, "outputs": {}}
    });
    assert_eq!(d.control(Method::POST, "/_mock/desktopflows", Some(flow)).await.0, 201);
    let dv = d.dv_token().await;
    // 13 runs of 2 h, one at a time in Megan's session: 26 h of work.
    let mut runs = Vec::new();
    for _ in 0..13 {
        runs.push(d.start(&dv, two_hours, "attended", &conn).await);
    }
    let (s, clock) = d.control(Method::POST, "/_mock/clock/advance", Some(json!({"untilIdle": true}))).await;
    assert_eq!((s, clock["now"].as_str()), (200, Some("2025-01-07T09:00:00Z")), "capped at 24 h");
    assert_eq!(d.session(&dv, &runs[11]).await["statuscode"], 4);
    assert_eq!(d.session(&dv, &runs[12]).await["statuscode"], 2, "the last one started at the cap");
}

#[tokio::test]
async fn the_connector_door_answers_runs_that_fail_at_the_request_at_once_without_location() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let dv = d.dv_token().await;
    let r =
        t.client.post(d.dv("flowmachinegroups")).bearer_auth(&dv).json(&json!({"name": "Empty"})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let entity = r.headers()["odata-entityid"].to_str().unwrap().to_owned();
    let group = entity.rsplit('(').next().unwrap().trim_end_matches(')').to_owned();
    let conn = d.sign_in_connection(&group).await;
    let pp = d.token(PP_SCOPE).await;
    let url = format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_OK));
    let (s, h, e) = d.runtime(Method::POST, &url, &pp, &[], None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("GroupIsEmpty")), "{e}");
    assert!(h.get("location").is_none());
    assert_eq!(d.send(Method::DELETE, &d.dv(&format!("flowmachinegroups({group})")), &dv, None).await.0, 204);
    let (s, h, e) = d.runtime(Method::POST, &url, &pp, &[], None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("XrmMachineGroupNotFound")), "{e}");
    assert!(h.get("location").is_none());
    let (_, list) = d.send(Method::GET, &d.dv("flowsessions?$select=statuscode,errorcode"), &dv, None).await;
    let rows: Vec<(i64, &str)> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["statuscode"].as_i64().unwrap(), r["errorcode"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [(8, "GroupIsEmpty"), (8, "XrmMachineGroupNotFound")], "each made a Failed flow session");
}
