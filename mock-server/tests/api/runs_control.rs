//! The control calls of runs (runs.md, "Control surface for runs"): the queue view, ending
//! a run on demand, `untilIdle` and `toNextEvent`, desktop flows created and changed, run
//! sessions of unattended runs in the state, and the same through the typed handle.

use crate::helpers::*;
use crate::runs::{BUILD01, BUILD01_GROUP, Door, FLOW_FAIL, FLOW_OK};
use mock_server::control::RunFilter;
use mock_server::domain::ids::{FlowSessionId, MachineId};
use mock_server::domain::world::{Session, SessionState};
use reqwest::Method;
use serde_json::{Value, json};

const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";

#[tokio::test]
async fn the_queue_view_shows_positions_and_next_to_run() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let first = d.start(&token, FLOW_OK, "attended", &conn).await;
    let second = d.start(&token, FLOW_OK, "attended", &conn).await;
    let third = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(0).await;
    let (s, q) = d.control(Method::GET, &format!("/_mock/runs?group={BUILD01_GROUP}"), None).await;
    assert_eq!(s, 200, "{q}");
    let rows = q["value"].as_array().unwrap();
    let view: Vec<(&str, &str, Value, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["flowsessionId"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["position"].clone(),
                r["nextToRun"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            (first.as_str(), "Running", Value::Null, false),
            (second.as_str(), "Waiting", json!(1), true),
            (third.as_str(), "Waiting", json!(2), false)
        ]
    );
    assert_eq!(rows[0]["session"], USER_UPN);
    assert_eq!(rows[0]["machine"], BUILD01);
    let (_, running) = d.control(Method::GET, "/_mock/runs?status=Running", None).await;
    assert_eq!(running["value"].as_array().unwrap().len(), 1);
    let (s, e) = d.control(Method::GET, "/_mock/runs?status=Sleeping", None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidRunStatus")));
}

#[tokio::test]
async fn until_idle_runs_the_queue_dry_and_to_next_event_reaches_a_queue_limit() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let a = d.start(&token, FLOW_OK, "attended", &conn).await;
    let b = d.start(&token, FLOW_FAIL, "attended", &conn).await;
    let (s, clock) = d.control(Method::POST, "/_mock/clock/advance", Some(json!({"untilIdle": true}))).await;
    assert_eq!(s, 200, "{clock}");
    assert_eq!(clock["now"], "2025-01-06T09:03:00Z", "120 s of one run, then 60 s of the next");
    let events: Vec<(&str, &str)> = clock["runEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [("run.started", "Running"), ("run.ended", "Succeeded"), ("run.started", "Running"), ("run.ended", "Failed")]
    );
    assert_eq!(d.session(&token, &a).await["statuscode"], 4);
    assert_eq!(d.session(&token, &b).await["errorcode"], "UIFlowAlreadyRunning");
    // A lone run waiting for a session is idle at once; its queue limit is the next event.
    d.set_sessions(BUILD01, json!([])).await;
    let waiting = d.start(&token, FLOW_OK, "attended", &conn).await;
    let (_, clock) = d.control(Method::POST, "/_mock/clock/advance", Some(json!({"untilIdle": true}))).await;
    assert_eq!(clock["now"], "2025-01-06T09:03:00Z");
    let (_, clock) = d.control(Method::POST, "/_mock/clock/advance", Some(json!({"toNextEvent": true}))).await;
    assert_eq!(clock["now"], "2025-01-06T10:03:00Z");
    assert_eq!(d.session(&token, &waiting).await["errorcode"], "NoCandidateMachine");
    let (s, e) =
        d.control(Method::POST, "/_mock/clock/advance", Some(json!({"toNextEvent": true, "seconds": 5}))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidRequestContent")));
}

#[tokio::test]
async fn a_run_ends_on_demand_without_editing_its_flow() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let done = d.start(&token, FLOW_OK, "attended", &conn).await;
    let failed = d.start(&token, FLOW_OK, "attended", &conn).await;
    let (s, v) = d
        .control(Method::POST, &format!("/_mock/runs/{done}/complete"), Some(json!({"outputs": {"Answer": 42}})))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("Succeeded")), "{v}");
    let (_, outputs) = d.send(Method::GET, &d.dv(&format!("flowsessions({done})/outputs/$value")), &token, None).await;
    assert_eq!(outputs, json!({"Answer": 42}));
    let (s, v) = d
        .control(
            Method::POST,
            &format!("/_mock/runs/{failed}/fail"),
            Some(json!({"code": "WcfServerCrash", "message": "boom"})),
        )
        .await;
    assert_eq!((s, v["errorCode"].as_str()), (200, Some("WcfServerCrash")));
    let (s, e) = d.control(Method::POST, &format!("/_mock/runs/{failed}/fail"), Some(json!({"code": "X"}))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("FlowSessionAlreadyEnded")));
}

#[tokio::test]
async fn desktop_flows_are_created_and_changed_on_the_control_surface() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let id = "0f0f0f0f-1111-4222-8333-444455556666";
    let flow = json!({
        "environment": ENV_ID, "workflowId": id, "name": "Needs a month",
        "owner": "9b938b62-1239-4855-aaa8-bd33df599368",
        "inputSchema": {"type": "object", "required": ["Month"], "properties": {"Month": {"type": "string"}}},
        "simulation": {"durationSeconds": 30, "outputs": {"Done": true}}
    });
    let (s, v) = d.control(Method::POST, "/_mock/desktopflows", Some(flow.clone())).await;
    assert_eq!(s, 201, "{v}");
    let (s, e) = d.run(&token, id, json!({"runMode": "attended", "connectionName": conn})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("0x80040203")), "a required input is missing: {e}");
    let (s, _) = d
        .run(&token, id, json!({"runMode": "attended", "connectionName": conn, "inputs": "{\"Month\":\"2025-03\"}"}))
        .await;
    assert_eq!(s, 200);
    let (s, v) =
        d.control(Method::PATCH, &format!("/_mock/desktopflows/{id}"), Some(json!({"published": false}))).await;
    assert_eq!((s, v["published"].as_bool()), (200, Some(false)));
    let names = |v: &Value| -> Vec<String> {
        v["value"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, listed) = d.send(Method::GET, &d.dv("workflows?$select=name"), &token, None).await;
    assert!(!names(&listed).contains(&"Needs a month".to_owned()), "unpublished flows are hidden");
    let r = t
        .client
        .get(d.dv("workflows?$select=name"))
        .bearer_auth(&token)
        .header("MSCRM.IncludeUnpublished", "true")
        .send()
        .await
        .unwrap();
    assert!(names(&r.json().await.unwrap()).contains(&"Needs a month".to_owned()));
    let (s, _) = d.control(Method::POST, "/_mock/desktopflows", Some(flow)).await;
    assert_eq!(s, 412, "the same workflow id twice");
    let (s, e) = d.control(Method::PATCH, &format!("/_mock/desktopflows/{id}"), Some(json!({"colour": "red"}))).await;
    assert_eq!(s, 400, "{e}");
}

#[tokio::test]
async fn unattended_runs_show_their_sessions_and_the_typed_handle_drives_runs() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let pp = d.token(PP_SCOPE).await;
    let conn = "5a1b2c3d-0000-4000-8000-0000000f1a2b";
    let url = format!(
        "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/{conn}?api-version=1",
        t.http
    );
    let (s, v) = d
        .send(
            Method::PUT,
            &url,
            &pp,
            Some(crate::rules::relay("CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!", FINANCE)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let token = d.dv_token().await;
    let run = d.start(&token, FLOW_OK, "unattended", conn).await;
    let sb = t.sandbox();
    sb.clock().advance(std::time::Duration::ZERO).await.unwrap();
    let state = t.control_get("/_mock/state").await;
    let fin01 =
        state["environments"][0]["machines"].as_array().unwrap().iter().find(|m| m["name"] == "FIN-01").unwrap();
    assert_eq!(fin01["runSessions"], json!([{"user": "CONTOSO\\svc-rpa", "runId": run}]));
    assert_eq!(state["runs"][0]["status"], "Running");
    let queue = sb.runs(RunFilter::default()).await.unwrap();
    assert_eq!(queue.len(), 1);
    let clock = sb.clock().advance_until_idle().await.unwrap();
    assert_eq!(clock.run_events.len(), 1);
    assert!(sb.runs(RunFilter::default()).await.unwrap().is_empty(), "nothing waits or runs");
    // Sessions through the handle: Megan signs out of BUILD-01.
    let machine = sb.set_sessions(MachineId::parse(BUILD01).unwrap(), vec![]).await.unwrap();
    assert!(machine.sessions.is_empty());
    let back = Session { user: USER_UPN.into(), state: SessionState::Active };
    sb.set_sessions(MachineId::parse(BUILD01).unwrap(), vec![back]).await.unwrap();
    let unknown = FlowSessionId::parse("00000000-0000-0000-0000-0000000000ff").unwrap();
    assert!(sb.complete_run(unknown, json!({})).await.is_err());
}

#[tokio::test]
async fn a_sandbox_on_real_time_is_woken_by_its_timer_through_the_same_entry_point() {
    // The timer's work, called directly (no sleeping in tests): what is due applies at its instant.
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let (s, _) = d.control(Method::PUT, "/_mock/clock", Some(json!({"mode": "system"}))).await;
    assert_eq!(s, 200);
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    let control = mock_server::control::Control::new(t.server.state().clone());
    let wait = control.wake_system_clocks(std::time::Duration::from_secs(1));
    assert!(wait <= std::time::Duration::from_secs(1));
    // The handle's queue view applies nothing itself: the run was started by the wake.
    let running = t.sandbox().runs(RunFilter { status: Some("Running".into()), ..RunFilter::default() }).await.unwrap();
    assert_eq!(running.iter().map(|r| r.flowsession_id.to_string()).collect::<Vec<_>>(), [run]);
    assert!(running[0].started_on.is_some());
}
