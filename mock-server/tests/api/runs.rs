//! Desktop-flow runs through the Dataverse door, driven by the virtual clock: the seed's
//! connect-with-sign-in limitations (one-hour queue, attended only), sessions changed through
//! `PATCH /_mock/machines/{id}`, desktop flows, flow sessions, cancel, connection references,
//! who may read a run, and runs in a fresh sandbox.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const BUILD01_GROUP: &str = "fbd9ef90-eb39-437b-a791-919993c57260";
pub(crate) const BUILD01: &str = "78afb281-eb1e-4e35-ba11-9460dcabf47a";
pub(crate) const FLOW_OK: &str = "5c0e6f3e-9a57-4c1e-8d0f-3a2b7c9e1d42";
pub(crate) const FLOW_FAIL: &str = "a7d3c1b9-2f4e-4b8a-9c6d-0e1f2a3b4c5d";
const SIGN_IN_CONNECTION: &str = "5a1b2c3d-0000-4000-8000-00000000c0de";

/// One sandbox's doors: its control header, its Dataverse URL and Megan's tokens there.
pub(crate) struct Door<'a> {
    pub(crate) t: &'a TestServer,
    pub(crate) sandbox: String,
    pub(crate) env: String,
    pub(crate) org: String,
    pub(crate) upn: String,
    pub(crate) password: String,
    pub(crate) tenant: String,
}

impl<'a> Door<'a> {
    pub(crate) fn default(t: &'a TestServer) -> Self {
        Self {
            t,
            sandbox: "default".into(),
            env: ENV_ID.into(),
            org: ORG.into(),
            upn: USER_UPN.into(),
            password: USER_PASSWORD.into(),
            tenant: TENANT.into(),
        }
    }

    pub(crate) async fn token(&self, scope: &str) -> String {
        let form = [
            ("grant_type", "password"),
            ("client_id", PUBLIC_CLIENT),
            ("username", self.upn.as_str()),
            ("password", self.password.as_str()),
            ("scope", scope),
        ];
        let (s, v) = status_json(self.t.token(&self.tenant, &form).await).await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn dv_token(&self) -> String {
        self.token(&format!("{}/dataverse/{}/.default", self.t.http, self.org)).await
    }

    pub(crate) fn dv(&self, rest: &str) -> String {
        format!("{}/dataverse/{}/api/data/v9.2/{rest}", self.t.http, self.org)
    }

    pub(crate) async fn send(&self, method: Method, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.t.client.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    pub(crate) async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req =
            self.t.client.request(method, format!("{}{path}", self.t.http)).header("x-mock-sandbox", &self.sandbox);
        if let Some(b) = body {
            req = req.json(&b);
        }
        status_json(req.send().await.unwrap()).await
    }

    /// Megan makes a connect-with-sign-in connection on a group.
    pub(crate) async fn sign_in_connection(&self, group: &str) -> String {
        let token = self.token(PP_SCOPE).await;
        let url = format!(
            "{}/connectivity/environments/{}/connectors/shared_uiflow/connections/{SIGN_IN_CONNECTION}?api-version=1",
            self.t.http, self.env
        );
        let body = json!({ "properties": {
            "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{}", self.env), "name": self.env },
            "connectionParametersSet": { "name": "passwordlessAttended", "values": { "targetId": {"value": group} } } } });
        let (s, c) = self.send(Method::PUT, &url, &token, Some(body)).await;
        assert_eq!(s, 201, "{c}");
        SIGN_IN_CONNECTION.to_owned()
    }

    pub(crate) async fn run(&self, token: &str, flow: &str, body: Value) -> (u16, Value) {
        self.send(
            Method::POST,
            &self.dv(&format!("workflows({flow})/Microsoft.Dynamics.CRM.RunDesktopFlow")),
            token,
            Some(body),
        )
        .await
    }

    /// Starts a run that makes a record and returns its flow session id.
    pub(crate) async fn start(&self, token: &str, flow: &str, mode: &str, connection: &str) -> String {
        let (s, v) = self.run(token, flow, json!({"runMode": mode, "connectionName": connection})).await;
        assert_eq!(s, 200, "{v}");
        assert!(
            v["@odata.context"].as_str().unwrap().ends_with("$metadata#Microsoft.Dynamics.CRM.RunDesktopFlowResponse")
        );
        v["flowsessionId"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn session(&self, token: &str, id: &str) -> Value {
        let (s, v) = self
            .send(
                Method::GET,
                &self.dv(&format!(
                    "flowsessions({id})?$select=statuscode,statecode,startedon,completedon,errorcode,errormessage,errordetails,runmode,_machineid_value,runwaitduration"
                )),
                token,
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub(crate) async fn advance(&self, seconds: u64) -> Value {
        let (s, v) = self.control(Method::POST, "/_mock/clock/advance", Some(json!({"seconds": seconds}))).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub(crate) async fn set_sessions(&self, machine: &str, sessions: Value) -> Value {
        let (s, v) = self
            .control(Method::PATCH, &format!("/_mock/machines/{machine}"), Some(json!({"sessions": sessions})))
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

#[tokio::test]
async fn sign_in_runs_wait_an_hour_for_a_session_run_attended_only_and_succeed_with_the_session_back() {
    // Arrange: Megan's sign-in connection on BUILD-01; her session there removed.
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let machine = d.set_sessions(BUILD01, json!([])).await;
    assert_eq!(machine["sessions"], json!([]));
    let token = d.dv_token().await;
    // Act: an attended run waits.
    let waiting = d.start(&token, FLOW_OK, "attended", &conn).await;
    assert_eq!(d.session(&token, &waiting).await["statuscode"], 3, "Waiting until the clock moves");
    d.advance(3599).await;
    let s = d.session(&token, &waiting).await;
    assert_eq!((s["statuscode"].as_i64(), s["statecode"].as_i64()), (Some(3), Some(0)), "{s}");
    assert_eq!(s["runwaitduration"], 3599);
    let answer = d.advance(1).await;
    // Assert: Failed at the hour, with the sub-code.
    let s = d.session(&token, &waiting).await;
    assert_eq!(s["statuscode"], 8, "{s}");
    assert_eq!(s["errorcode"], "NoCandidateMachine");
    assert_eq!(s["errordetails"], "AttendedUserNotLoggedIn");
    assert!(s["errormessage"].as_str().unwrap().contains("one hour"), "{s}");
    assert_eq!(s["completedon"], "2025-01-06T10:00:00Z");
    assert_eq!(answer["runEvents"][0]["event"], "run.ended");
    assert_eq!(answer["runEvents"][0]["code"], "NoCandidateMachine");

    // An unattended run on a sign-in connection fails at once.
    let unattended = d.start(&token, FLOW_OK, "unattended", &conn).await;
    let s = d.session(&token, &unattended).await;
    assert_eq!((s["statuscode"].as_i64(), s["errorcode"].as_str()), (Some(8), Some("SignInConnectionAttendedOnly")));
    assert_eq!(s["runmode"], 2);

    // With her session back, an attended run succeeds after one advance past its duration.
    d.set_sessions(BUILD01, json!([{"user": USER_UPN, "state": "active"}])).await;
    let ok = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(121).await;
    let s = d.session(&token, &ok).await;
    assert_eq!(s["statuscode"], 4, "{s}");
    assert_eq!(s["_machineid_value"], BUILD01);
    assert_eq!(s["startedon"], "2025-01-06T10:00:00Z");
    assert_eq!(s["completedon"], "2025-01-06T10:02:00Z");
    let (st, outputs) = d.send(Method::GET, &d.dv(&format!("flowsessions({ok})/outputs/$value")), &token, None).await;
    assert_eq!((st, outputs), (200, json!({"InvoiceCount": 42, "Status": "Exported"})));

    // Every transition is a journal event.
    let events = t.journal("kind=event").await;
    let kinds: Vec<&str> = events["entries"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "run.ended").count(), 3, "{kinds:?}");
    assert!(kinds.contains(&"run.started"));
}

#[tokio::test]
async fn desktop_flows_are_workflows_of_category_6_with_their_schemas() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let token = d.dv_token().await;
    let (s, v) =
        d.send(Method::GET, &d.dv("workflows?$filter=category%20eq%206&$select=name,workflowid"), &token, None).await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["value"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Export invoices", "Reconcile ledger"]);
    assert!(v["@odata.context"].as_str().unwrap().ends_with("$metadata#workflows(name,workflowid)"));
    let (s, schema) = d.send(Method::GET, &d.dv(&format!("workflows({FLOW_OK})/inputs/$value")), &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(schema["schema"]["properties"]["Month"]["default"], "2025-01");
    let (_, out) = d.send(Method::GET, &d.dv(&format!("workflows({FLOW_OK})/outputs/$value")), &token, None).await;
    assert_eq!(out["schema"]["properties"]["InvoiceCount"]["type"], "integer");
}

#[tokio::test]
async fn a_failing_flow_fails_with_its_code_and_a_cancelled_run_is_cancelled() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let fails = d.start(&token, FLOW_FAIL, "attended", &conn).await;
    let queued = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(60).await;
    let s = d.session(&token, &fails).await;
    assert_eq!((s["statuscode"].as_i64(), s["errorcode"].as_str()), (Some(8), Some("UIFlowAlreadyRunning")));
    assert_eq!(d.session(&token, &queued).await["statuscode"], 2, "started when the session freed");
    let cancel = d.dv(&format!("flowsessions({queued})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun"));
    let (s, _) = d.send(Method::POST, &cancel, &token, None).await;
    assert_eq!(s, 204);
    assert_eq!(d.session(&token, &queued).await["statuscode"], 7);
    let (s, e) = d.send(Method::POST, &cancel, &token, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("FlowSessionAlreadyEnded")));
}

#[tokio::test]
async fn requests_that_make_no_run_get_a_dataverse_envelope_and_others_runs_are_not_readable() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let unknown = "00000000-0000-0000-0000-0000000000aa";
    let cases = [
        (unknown, json!({"runMode": "attended", "connectionName": conn}), 404, "0x80040217"),
        (FLOW_OK, json!({"runMode": "sometimes", "connectionName": conn}), 400, "0x80040203"),
        (FLOW_OK, json!({"runMode": "attended", "connectionName": conn, "timeout": 86401}), 400, "0x80040203"),
        (FLOW_OK, json!({"runMode": "attended", "connectionName": conn, "inputs": "[1]"}), 400, "0x80040203"),
        (FLOW_OK, json!({"runMode": "attended", "connectionName": unknown}), 404, "ConnectionNotFound"),
        (
            FLOW_OK,
            json!({"runMode": "attended", "connectionName": "contoso_BuildMachine", "connectionType": 2}),
            400,
            "ConnectionNotUsableForRuns",
        ),
    ];
    for (flow, body, status, code) in cases {
        let (s, e) = d.run(&token, flow, body.clone()).await;
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{body}: {e}");
    }
    let (s, e) = d.run(&token, FLOW_OK, json!({"runMode": "attended"})).await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("connectionName"), "{e}");
    let (s, e) = d.run(&token, FLOW_OK, json!({"runMode": "attended", "connectionName": conn, "extra": 1})).await;
    assert_eq!(s, 400, "{e}");
    // Adele is a member of the environment, but neither started the run nor owns the flow.
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    let adele = Door {
        upn: "adele@contoso.onmicrosoft.com".into(),
        password: "Adele-Test-Passw0rd!".into(),
        ..Door::default(&t)
    };
    let adele_token = adele.dv_token().await;
    let (s, e) = d.send(Method::GET, &d.dv(&format!("flowsessions({run})")), &adele_token, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")));
    let (s, list) = d.send(Method::GET, &d.dv("flowsessions"), &adele_token, None).await;
    assert_eq!((s, list["value"].as_array().map(Vec::len)), (200, Some(0)));
    let (s, e) = d.run(&adele_token, FLOW_OK, json!({"runMode": "attended", "connectionName": conn})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("ConnectionAuthorizationFailed")), "{e}");
}

#[tokio::test]
async fn a_run_by_connection_reference_uses_the_connection_it_names() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let (s, refs) = d.send(Method::GET, &d.dv("connectionreferences"), &token, None).await;
    assert_eq!(s, 200);
    let reference = refs["value"][0]["connectionreferenceid"].as_str().unwrap().to_owned();
    assert_eq!(refs["value"][0]["connectionreferencelogicalname"], "contoso_BuildMachine");
    let (s, _) = d
        .send(
            Method::PATCH,
            &d.dv(&format!("connectionreferences({reference})")),
            &token,
            Some(json!({"connectionid": conn})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = d
        .run(
            &token,
            FLOW_OK,
            json!({"runMode": "attended", "connectionName": "contoso_BuildMachine", "connectionType": 2}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["flowsessionId"].as_str().unwrap();
    d.advance(120).await;
    assert_eq!(d.session(&token, id).await["statuscode"], 4);
}

#[tokio::test]
async fn runs_work_in_a_fresh_sandbox_where_megans_session_follows_her_upn() {
    let t = spawn_server().await;
    let (s, sb) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": "runs-a"}))).await;
    assert_eq!(s, 201, "{sb}");
    let env = &sb["environments"][0];
    let build = env["machines"].as_array().unwrap().iter().find(|m| m["name"] == "BUILD-01").unwrap();
    let upn = sb["users"][0]["userPrincipalName"].as_str().unwrap();
    assert_eq!(build["sessions"][0]["user"], upn);
    let d = Door {
        t: &t,
        sandbox: "runs-a".into(),
        env: env["id"].as_str().unwrap().into(),
        org: env["dataverse"]["org"].as_str().unwrap().into(),
        upn: upn.into(),
        password: sb["users"][0]["password"].as_str().unwrap().into(),
        tenant: sb["tenants"][0]["id"].as_str().unwrap().into(),
    };
    let group = build["group"].as_str().unwrap();
    let conn = d.sign_in_connection(group).await;
    let token = d.dv_token().await;
    let flow = env["desktopFlows"][0]["workflowId"].as_str().unwrap();
    let run = d.start(&token, flow, "attended", &conn).await;
    d.advance(120).await;
    assert_eq!(d.session(&token, &run).await["statuscode"], 4);
    let default = Door::default(&t);
    let (s, clock) = default.control(Method::GET, "/_mock/clock", None).await;
    assert_eq!(
        (s, clock["now"].as_str()),
        (200, Some("2025-01-06T09:00:00Z")),
        "the default sandbox's clock did not move"
    );
}

impl Door<'_> {
    pub(crate) fn runtime_runs(&self, connection: &str, flow: &str) -> String {
        format!("{}/apim/uiflow/{}/{connection}/uiFlowTypes/desktopV2/uiflows/{flow}/runs", self.t.http, self.env)
    }

    pub(crate) async fn runtime(
        &self,
        method: Method,
        url: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.t.client.request(method, url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let text = r.text().await.unwrap();
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}

#[tokio::test]
async fn the_connector_door_answers_202_with_location_then_the_runs_outcome() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.token(PP_SCOPE).await;
    let url = format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_OK));
    let (s, h, v) = d.runtime(Method::POST, &url, &token, &[], Some(json!({"item": {"Month": "2025-02"}}))).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(h["retry-after"], "1");
    let location = h["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!(
            "{}/apim/uiflow/{ENV_ID}/{conn}/uiFlowTypes/desktopV2/uiflows/{FLOW_OK}/runs/",
            t.http
        )),
        "{location}"
    );
    let (s, h, _) = d.runtime(Method::GET, &location, &token, &[], None).await;
    assert_eq!((s, h["location"].to_str().unwrap()), (202, location.as_str()), "Waiting: same headers");
    d.advance(120).await;
    let (s, _, v) = d.runtime(Method::GET, &location, &token, &[], None).await;
    assert_eq!((s, v), (200, json!({"status": "Succeeded", "outputs": {"InvoiceCount": 42, "Status": "Exported"}})));
    // Both doors share one flow session per run.
    let id = location.rsplit('/').next().unwrap();
    let dv = d.dv_token().await;
    assert_eq!(d.session(&dv, id).await["statuscode"], 4);
}

#[tokio::test]
async fn the_connector_door_refuses_sign_in_runs_with_async_disabled_or_unattended_and_needs_a_run_mode() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.token(PP_SCOPE).await;
    let runs = d.runtime_runs(&conn, FLOW_OK);
    let (s, h, v) = d
        .runtime(Method::POST, &format!("{runs}?runMode=attended"), &token, &[("x-mock-async-disabled", "true")], None)
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("PasswordlessTokenExpiry")), "{v}");
    assert!(h.get("location").is_none());
    let (s, _, v) = d.runtime(Method::POST, &format!("{runs}?runMode=unattended"), &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("SignInConnectionAttendedOnly")), "{v}");
    let (s, _, v) = d.runtime(Method::POST, &runs, &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("MissingRunMode")));
    // Each refused run left a Failed flow session.
    let dv = d.dv_token().await;
    let (_, list) = d
        .send(Method::GET, &d.dv("flowsessions?$select=errorcode,statuscode&$filter=statuscode%20eq%208"), &dv, None)
        .await;
    let codes: Vec<&str> = list["value"].as_array().unwrap().iter().map(|r| r["errorcode"].as_str().unwrap()).collect();
    assert_eq!(codes, ["PasswordlessTokenExpiry", "SignInConnectionAttendedOnly"]);
    // The setting turns the header on for every request.
    let (s, _) = d.control(Method::PATCH, "/_mock/settings", Some(json!({"asyncDisabled": true}))).await;
    assert_eq!(s, 200);
    let (s, _, v) = d.runtime(Method::POST, &format!("{runs}?runMode=attended"), &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("PasswordlessTokenExpiry")));
}

#[tokio::test]
async fn get_run_status_gives_the_section_7_status_of_a_failed_run() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    d.set_sessions(BUILD01, json!([])).await;
    let token = d.token(PP_SCOPE).await;
    let (_, h, _) = d
        .runtime(Method::POST, &format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_OK)), &token, &[], None)
        .await;
    let location = h["location"].to_str().unwrap().to_owned();
    d.advance(3600).await;
    let (s, _, v) = d.runtime(Method::GET, &location, &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("NoCandidateMachine")));
    d.set_sessions(BUILD01, json!([{"user": USER_UPN, "state": "active"}])).await;
    let (_, h, _) = d
        .runtime(Method::POST, &format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_FAIL)), &token, &[], None)
        .await;
    let location = h["location"].to_str().unwrap().to_owned();
    d.advance(60).await;
    let (s, _, v) = d.runtime(Method::GET, &location, &token, &[], None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (429, Some("UIFlowAlreadyRunning")), "SUP-ERR's status for the code");
}

#[tokio::test]
async fn the_per_connection_throttle_counts_both_doors_and_makes_no_run() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let (s, _) = d.control(Method::PATCH, "/_mock/settings", Some(json!({"runsPerMinutePerConnection": 2}))).await;
    assert_eq!(s, 200);
    let dv = d.dv_token().await;
    let pp = d.token(PP_SCOPE).await;
    d.start(&dv, FLOW_OK, "attended", &conn).await;
    let (s, _, _) =
        d.runtime(Method::POST, &format!("{}?runMode=attended", d.runtime_runs(&conn, FLOW_OK)), &pp, &[], None).await;
    assert_eq!(s, 202);
    let r = t
        .client
        .post(d.dv(&format!("workflows({FLOW_OK})/Microsoft.Dynamics.CRM.RunDesktopFlow")))
        .bearer_auth(&dv)
        .json(&json!({"runMode": "attended", "connectionName": conn}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "DesktopFlowsActionThrottled");
    let (_, list) = d.send(Method::GET, &d.dv("flowsessions"), &dv, None).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 2, "the throttled request made no run");
}

#[tokio::test]
async fn the_connector_lists_flows_with_their_metadata_and_the_agent_status() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.token(PP_SCOPE).await;
    let base = format!("{}/apim/uiflow/{}/{conn}", t.http, d.env);
    let (s, _, list) =
        d.runtime(Method::GET, &format!("{base}/uiFlowTypes/desktopV2/uiflows"), &token, &[], None).await;
    assert_eq!(s, 200);
    assert_eq!(list["value"][0], json!({"id": FLOW_OK, "name": "Export invoices"}));
    let (s, _, meta) = d
        .runtime(
            Method::GET,
            &format!("{base}/uiFlowTypes/desktopV2/uiflows/{FLOW_OK}/$metadata.json"),
            &token,
            &[],
            None,
        )
        .await;
    assert_eq!(s, 200, "{meta}");
    assert_eq!(meta["inputs"]["properties"]["Month"]["type"], "string");
    let (s, _, status) = d.runtime(Method::GET, &format!("{base}/status"), &token, &[], None).await;
    assert_eq!((s, status["status"].as_str()), (200, Some("Online")));
    d.control(Method::PATCH, &format!("/_mock/machines/{BUILD01}"), Some(json!({"online": false}))).await;
    let (_, _, status) = d.runtime(Method::GET, &format!("{base}/status"), &token, &[], None).await;
    assert_eq!(status["status"], "Offline");
    let ops = t.journal("surface=runtime").await;
    let names: Vec<&str> =
        ops["entries"].as_array().unwrap().iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(names, ["runtime.listUIFlows", "runtime.getUIFlowMetadata", "runtime.status", "runtime.status"]);
}
