//! The outcomes of runs.md's table over HTTP, each from its world cause: a group with no
//! machine, a rotated password at assignment, a locked session and an offline machine while a
//! run holds them, a timeout; and capacity with the Windows Server rule for one account.

use crate::helpers::*;
use crate::runs::{BUILD01, BUILD01_GROUP, Door, FLOW_OK};
use reqwest::Method;
use serde_json::json;

const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const RELAY: &str = "00000000-0000-0000-0000-00000000a001";

impl Door<'_> {
    pub(crate) async fn relay_connection(&self, id: &str, user: &str, password: &str, group: &str) -> String {
        let token = self.token(PP_SCOPE).await;
        let url = format!(
            "{}/connectivity/environments/{}/connectors/shared_uiflow/connections/{id}?api-version=1",
            self.t.http, self.env
        );
        let (s, v) = self.send(Method::PUT, &url, &token, Some(crate::rules::relay(user, password, group))).await;
        assert_eq!(s, 201, "{v}");
        id.to_owned()
    }

    async fn outcome(&self, token: &str, id: &str) -> (i64, String) {
        let s = self.session(token, id).await;
        (s["statuscode"].as_i64().unwrap(), s["errorcode"].as_str().unwrap_or("").to_owned())
    }
}

#[tokio::test]
async fn a_group_without_machines_fails_the_run_at_the_request() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let token = d.dv_token().await;
    let r = t
        .client
        .post(d.dv("flowmachinegroups"))
        .bearer_auth(&token)
        .json(&json!({"name": "Empty"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let entity = r.headers()["odata-entityid"].to_str().unwrap().to_owned();
    let group = entity.rsplit_once('(').unwrap().1.trim_end_matches(')').to_owned();
    let conn = d.sign_in_connection(&group).await;
    let run = d.start(&token, FLOW_OK, "attended", &conn).await;
    assert_eq!(d.outcome(&token, &run).await, (8, "GroupIsEmpty".into()));
}

#[tokio::test]
async fn a_rotated_password_fails_an_unattended_run_when_it_is_assigned() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.relay_connection(RELAY, "BUILD-01\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP).await;
    let token = d.dv_token().await;
    // Windows 10/11: Megan's session keeps unattended runs away; she signs out.
    d.set_sessions(BUILD01, json!([])).await;
    let (s, _) = d
        .control(
            Method::PATCH,
            &format!("/_mock/machines/{BUILD01}"),
            Some(json!({"windowsAccounts": [{"username": "BUILD-01\\rpa", "password": "Rotated-Passw0rd!"}]})),
        )
        .await;
    assert_eq!(s, 200);
    let run = d.start(&token, FLOW_OK, "unattended", &conn).await;
    assert_eq!(d.outcome(&token, &run).await, (3, String::new()), "Waiting: the password is checked at assignment");
    d.advance(0).await;
    assert_eq!(d.outcome(&token, &run).await, (8, "WindowsIdentityIncorrect".into()));
}

#[tokio::test]
async fn a_locked_session_or_an_offline_machine_fails_the_run_it_holds_at_that_change() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let first = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(10).await;
    d.set_sessions(BUILD01, json!([{"user": USER_UPN, "state": "locked"}])).await;
    assert_eq!(
        d.outcome(&token, &first).await,
        (8, "NoUnlockedActiveSessionForAttended".into()),
        "at the change, not at a clock change"
    );
    d.set_sessions(BUILD01, json!([{"user": USER_UPN, "state": "active"}])).await;
    let second = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(0).await;
    let (s, _) = d.control(Method::PATCH, &format!("/_mock/machines/{BUILD01}"), Some(json!({"online": false}))).await;
    assert_eq!(s, 200);
    assert_eq!(d.outcome(&token, &second).await, (8, "NoListenerConnected".into()));
    // Offline machines make runs wait instead of failing.
    let third = d.start(&token, FLOW_OK, "attended", &conn).await;
    d.advance(600).await;
    assert_eq!(d.outcome(&token, &third).await, (3, String::new()));
}

#[tokio::test]
async fn a_run_still_running_at_its_timeout_is_timed_out() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let (s, v) = d.run(&token, FLOW_OK, json!({"runMode": "attended", "connectionName": conn, "timeout": 60})).await;
    assert_eq!(s, 200);
    let run = v["flowsessionId"].as_str().unwrap().to_owned();
    d.advance(60).await;
    assert_eq!(d.outcome(&token, &run).await, (10, "DesktopFlowsActionTimeout".into()));
}

#[tokio::test]
async fn unattended_runs_of_one_account_take_one_session_per_windows_server() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let conn = d.relay_connection(RELAY, "CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!", FINANCE).await;
    let token = d.dv_token().await;
    let runs = [
        d.start(&token, FLOW_OK, "unattended", &conn).await,
        d.start(&token, FLOW_OK, "unattended", &conn).await,
        d.start(&token, FLOW_OK, "unattended", &conn).await,
    ];
    d.advance(0).await;
    let (_, q) = d.control(Method::GET, "/_mock/runs", None).await;
    let view: Vec<(String, String)> = q["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap().to_owned(), r["machine"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        view,
        [
            ("Running".to_owned(), "022701dd-0a3a-4ba3-9dbc-b24e4ec4ae0f".to_owned()),
            ("Running".to_owned(), "148a5ad1-1f49-48ab-8f8f-c73dfc6ea378".to_owned()),
            ("Waiting".to_owned(), String::new())
        ],
        "FIN-01 and FIN-02 by name; the third waits for a session of the account to end"
    );
    d.advance(120).await;
    assert_eq!(d.session(&token, &runs[2]).await["statuscode"], 2, "started when one ended");
}
