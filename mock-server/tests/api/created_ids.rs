//! Ids the mock makes up are drawn only by operations that create something: how many
//! requests came before (reads, refusals, token requests) does not change them.

use crate::helpers::{ORG, TestServer, spawn_server};
use serde_json::{Value, json};

async fn megan(t: &TestServer) -> String {
    t.user_grant(&format!("https://{ORG}.crm.dynamics.com/.default")).await["access_token"].as_str().unwrap().to_owned()
}

async fn send(t: &TestServer, method: reqwest::Method, rest: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = t.client.request(method, t.dv(rest)).bearer_auth(token).header("prefer", "return=representation");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates a machine group and a stand-alone machine (which brings its own Default group).
async fn create_group_and_machine(t: &TestServer, token: &str) -> [String; 3] {
    let (s, group) =
        send(t, reqwest::Method::POST, "flowmachinegroups", token, Some(json!({ "name": "Night shift" }))).await;
    assert_eq!(s, 201, "{group}");
    let (s, machine) = send(t, reqwest::Method::POST, "flowmachines", token, Some(json!({ "name": "NIGHT-01" }))).await;
    assert_eq!(s, 201, "{machine}");
    [&group["flowmachinegroupid"], &machine["flowmachineid"], &machine["_flowmachinegroupid_value"]]
        .map(|v| v.as_str().unwrap().to_owned())
}

#[tokio::test]
async fn created_ids_do_not_depend_on_how_many_requests_came_before() {
    // Arrange: two servers on the same world; one answers ten reads and a refused write first.
    let quiet = spawn_server().await;
    let busy = spawn_server().await;
    let (quiet_token, busy_token) = (megan(&quiet).await, megan(&busy).await);
    for _ in 0..10 {
        let (s, _) = send(&busy, reqwest::Method::GET, "flowmachinegroups", &busy_token, None).await;
        assert_eq!(s, 200);
    }
    let (s, _) =
        send(&busy, reqwest::Method::POST, "flowmachinegroups", &busy_token, Some(json!({ "nme": "x" }))).await;
    assert_eq!(s, 400);

    // Act
    let quiet_ids = create_group_and_machine(&quiet, &quiet_token).await;
    let busy_ids = create_group_and_machine(&busy, &busy_token).await;

    // Assert: the same ids, and every one distinct.
    assert_eq!(quiet_ids, busy_ids);
    assert!(quiet_ids[0] != quiet_ids[1] && quiet_ids[1] != quiet_ids[2] && quiet_ids[0] != quiet_ids[2]);
}
