//! Fault rules on `/_mock/faults` and the Retry-After check (`scenarios.md`), as a client
//! sees them: answers in each surface's envelope, nothing applied to the world, seeded
//! sequences that repeat across servers, rules that stay in their sandbox.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const CONNECTION: &str = "d4e4a6ff-9a67-492a-a1f6-de854528668c";

fn connection_body() -> Value {
    json!({
        "properties": {
            "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{ENV_ID}"), "name": ENV_ID },
            "connectionParametersSet": {
                "name": "azureRelay",
                "values": {
                    "username": { "value": "CONTOSO\\svc-rpa" },
                    "password": { "value": "Contoso-SvcRpa-Passw0rd!" },
                    "targetId": { "value": FINANCE }
                }
            }
        }
    })
}

impl TestServer {
    fn connection_url(&self, id: &str) -> String {
        format!(
            "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/{id}?api-version=1",
            self.http
        )
    }

    fn connections_url(&self) -> String {
        format!("{}/connectivity/environments/{ENV_ID}/connections?api-version=1", self.http)
    }

    async fn put_connection(&self, token: &str, id: &str) -> reqwest::Response {
        self.client.put(self.connection_url(id)).bearer_auth(token).json(&connection_body()).send().await.unwrap()
    }

    async fn add_fault(&self, rule: Value) -> Value {
        let (s, created) = self.control(Method::POST, "/_mock/faults", Some(rule)).await;
        assert_eq!(s, 201, "{created}");
        created
    }

    fn openid_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0/.well-known/openid-configuration", self.http)
    }
}

#[tokio::test]
async fn fail_twice_then_behave_answers_429_429_201_and_creates_one_connection() {
    // Arrange
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let created = t
        .add_fault(json!({"match": {"operation": "connections.put"},
                          "respond": {"status": 429, "headers": {"Retry-After": "2"}}, "times": 2}))
        .await;
    assert_eq!((created["id"].as_str(), created["remaining"].as_u64()), (Some("fault-1"), Some(2)), "{created}");
    // Act
    let mut statuses = Vec::new();
    let mut first = None;
    for _ in 0..3 {
        let r = t.put_connection(&token, CONNECTION).await;
        statuses.push(r.status().as_u16());
        if first.is_none() {
            let retry_after = r.headers()["retry-after"].to_str().unwrap().to_owned();
            first = Some((retry_after, r.json::<Value>().await.unwrap()));
        }
    }
    // Assert
    assert_eq!(statuses, [429, 429, 201]);
    let (retry_after, body) = first.unwrap();
    assert_eq!(retry_after, "2");
    assert_eq!(body, json!({"error": {"code": "TooManyRequests", "message": "Injected by fault rule fault-1."}}));
    let all: Value = t.client.get(t.connections_url()).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(all["value"].as_array().unwrap().len(), 1, "one connection: {all}");
    let listed = t.control_get("/_mock/faults").await;
    let rule = &listed["value"][0];
    assert_eq!(
        (rule["hits"].as_u64(), rule["remaining"].as_u64()),
        (Some(2), Some(0)),
        "exhausted, still listed: {listed}"
    );
    let events = t.journal("kind=event").await;
    let hits: Vec<&Value> =
        events["entries"].as_array().unwrap().iter().filter(|e| e["event"] == "fault.hit").collect();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["detail"]["rule"], "fault-1");
    assert_eq!(hits[0]["detail"]["status"], 429);
}

#[tokio::test]
async fn match_fields_pick_the_request_and_the_first_matching_rule_wins() {
    // Arrange: rules that do not fit, then one that fits everything, then a catch-all.
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    t.add_fault(json!({"match": {"caller": "someone-else@contoso.onmicrosoft.com"}, "respond": {"status": 500}})).await;
    t.add_fault(json!({"match": {"operation": "connections.put", "method": "DELETE"}, "respond": {"status": 500}}))
        .await;
    t.add_fault(json!({"match": {"body": {"properties": {"connectionParametersSet": {"name": "other"}}}},
                       "respond": {"status": 500}}))
        .await;
    t.add_fault(json!({"match": {"operation": "connections.put", "method": "put", "path": "/connectivity/**/connections/*",
                                 "environment": ENV_ID, "caller": SP_APP_ID,
                                 "body": {"properties": {"connectionParametersSet": {"values": {"targetId": {"value": FINANCE}}}}}},
                       "respond": {"status": 409, "body": {"error": {"code": "Custom", "message": "made up"}},
                                   "headers": {"x-fault": "yes"}}}))
        .await;
    t.add_fault(json!({"match": {"path": "/connectivity/*"}, "respond": {"status": 500}})).await;
    // Act
    let r = t.put_connection(&token, CONNECTION).await;
    // Assert
    assert_eq!(r.headers()["x-fault"], "yes");
    let (s, body) = status_json(r).await;
    assert_eq!((s, body), (409, json!({"error": {"code": "Custom", "message": "made up"}})));
    let listed = t.control_get("/_mock/faults").await;
    let hits: Vec<u64> = listed["value"].as_array().unwrap().iter().map(|r| r["hits"].as_u64().unwrap()).collect();
    assert_eq!(hits, [0, 0, 0, 1, 0]);
    let r = t.client.get(t.connections_url()).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "`*` is one segment: the catch-all does not fit the list's longer path");
}

#[tokio::test]
async fn default_envelopes_follow_the_surface() {
    // Arrange
    let t = spawn_server().await;
    let dv_token = t.sp_token(&format!("https://{ORG}.crm.dynamics.com/.default")).await;
    t.add_fault(json!({"match": {"operation": "dataverse.whoAmI"}, "respond": {"status": 429}})).await;
    t.add_fault(json!({"match": {"operation": "identity.token", "caller": PUBLIC_CLIENT}, "respond": {"status": 503}}))
        .await;
    t.add_fault(json!({"match": {"operation": "identity.openidConfiguration"}, "respond": {"status": 400}})).await;
    t.add_fault(json!({"match": {"operation": "connections.list"}, "respond": {"status": 504}})).await;
    // Act
    let whoami = status_json(t.client.get(t.dv("WhoAmI")).bearer_auth(&dv_token).send().await.unwrap()).await;
    let grant = status_json(
        t.token(
            TENANT_DOMAIN,
            &[
                ("grant_type", "password"),
                ("client_id", PUBLIC_CLIENT),
                ("username", USER_UPN),
                ("password", USER_PASSWORD),
                ("scope", PP_SCOPE),
            ],
        )
        .await,
    )
    .await;
    let openid = status_json(t.client.get(t.openid_url(TENANT_DOMAIN)).send().await.unwrap()).await;
    let list = status_json(t.client.get(t.connections_url()).send().await.unwrap()).await;
    // Assert
    assert_eq!((whoami.0, whoami.1["error"]["code"].as_str()), (429, Some("0x80072322")), "{}", whoami.1);
    assert_eq!(whoami.1["error"]["message"], "Injected by fault rule fault-1.");
    assert_eq!((grant.0, grant.1["error"].as_str()), (503, Some("temporarily_unavailable")), "{}", grant.1);
    assert!(grant.1["error_description"].as_str().unwrap().starts_with("Injected by fault rule fault-2."));
    assert_eq!((openid.0, openid.1["error"].as_str()), (400, Some("invalid_request")), "{}", openid.1);
    assert_eq!((list.0, list.1["error"]["code"].as_str()), (504, Some("GatewayTimeout")), "before authentication");
    let sp = t.token(TENANT_DOMAIN, &cc_form(SP_APP_ID, SP_SECRET, PP_SCOPE)).await;
    assert_eq!(sp.status(), 200, "another caller's token request passes");
}

/// The statuses of `n` OpenID configuration requests under a seeded 50 % rule.
async fn seeded_sequence(seed: u64, n: usize) -> Vec<u16> {
    let t = spawn_server().await;
    t.add_fault(json!({"match": {"operation": "identity.openidConfiguration"},
                       "respond": {"status": 503, "delayMs": {"minMs": 0, "maxMs": 3}}, "probability": 0.5, "seed": seed}))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(t.client.get(t.openid_url(TENANT_DOMAIN)).send().await.unwrap().status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn one_seed_gives_one_sequence_on_two_servers() {
    let first = seeded_sequence(7, 24).await;
    let second = seeded_sequence(7, 24).await;
    assert_eq!(first, second);
    assert!(first.contains(&503) && first.contains(&200), "{first:?}");
    assert_ne!(first, seeded_sequence(8, 24).await, "another seed, another sequence");
}

#[tokio::test]
async fn every_nth_and_delay_only_rules() {
    // Arrange
    let t = spawn_server().await;
    t.add_fault(json!({"match": {"operation": "identity.keys"}, "respond": {"delayMs": 5}})).await;
    t.add_fault(
        json!({"match": {"operation": "identity.openidConfiguration"}, "respond": {"status": 502}, "every": 2}),
    )
    .await;
    // Act
    let keys = t.client.get(format!("{}/{TENANT_DOMAIN}/discovery/v2.0/keys", t.http)).send().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(t.client.get(t.openid_url(TENANT_DOMAIN)).send().await.unwrap().status().as_u16());
    }
    // Assert
    assert_eq!(keys.status(), 200, "a rule with only delayMs lets the request through");
    assert_eq!(statuses, [200, 502, 200, 502]);
    let events = t.journal("kind=event").await;
    assert_eq!(events["entries"][0]["detail"]["delayMs"], 5);
    assert_eq!(events["entries"][0]["detail"]["status"], Value::Null);
}

#[tokio::test]
async fn wire_faults_drop_truncate_and_break_the_body() {
    // Arrange
    let t = spawn_server().await;
    t.add_fault(json!({"match": {"operation": "identity.keys"}, "respond": {"fault": "drop"}, "times": 1})).await;
    t.add_fault(
        json!({"match": {"operation": "identity.openidConfiguration"}, "respond": {"fault": "truncate"}, "times": 1}),
    )
    .await;
    t.add_fault(
        json!({"match": {"operation": "identity.instanceDiscovery"}, "respond": {"fault": "malformed", "status": 200}}),
    )
    .await;
    // Act + Assert
    let keys = format!("{}/{TENANT_DOMAIN}/discovery/v2.0/keys", t.http);
    assert!(t.client.get(&keys).send().await.is_err(), "dropped: no answer at all");
    let r = t.client.get(t.openid_url(TENANT_DOMAIN)).send().await.unwrap();
    assert_eq!(r.status(), 200, "a broken body comes with 200 unless the rule says otherwise");
    assert!(r.bytes().await.is_err(), "truncated: the body stops short of its Content-Length");
    let discovery = format!(
        "{}/common/discovery/instance?api-version=1.1&authorization_endpoint=https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        t.http
    );
    let r = t.client.get(&discovery).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "malformed: {text}");
    // The rules were one-shot: the same client goes on.
    assert_eq!(t.client.get(&keys).send().await.unwrap().status(), 200);
    assert_eq!(t.client.get(t.openid_url(TENANT_DOMAIN)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn rules_are_listed_deleted_cleared_reset_and_checked() {
    // Arrange
    let t = spawn_server().await;
    for _ in 0..3 {
        t.add_fault(json!({"respond": {"status": 500}, "match": {"operation": "identity.keys"}})).await;
    }
    // Act + Assert
    let (s, _) = t.control(Method::DELETE, "/_mock/faults/fault-2", None).await;
    assert_eq!(s, 204);
    let (s, e) = t.control(Method::DELETE, "/_mock/faults/fault-2", None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("FaultRuleNotFound")));
    let ids: Vec<String> = t.control_get("/_mock/faults").await["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["fault-1", "fault-3"]);
    let (s, _) = t.control(Method::DELETE, "/_mock/faults", None).await;
    assert_eq!(s, 204);
    assert_eq!(t.control_get("/_mock/faults").await["value"], json!([]));
    t.add_fault(json!({"respond": {"status": 500}})).await;
    let (s, _) = t.control(Method::POST, "/_mock/reset", None).await;
    assert_eq!(s, 200);
    assert_eq!(t.control_get("/_mock/faults").await["value"], json!([]), "reset clears the rules");
    assert_eq!(t.add_fault(json!({"respond": {"status": 500}})).await["id"], "fault-1", "and their numbering");

    for (bad, names) in [
        (json!({"respond": {"status": 500}, "surprise": 1}), "surprise"),
        (json!({"match": {"operation": "connections.nope"}, "respond": {"status": 500}}), "match.operation"),
        (json!({"respond": {"status": "429"}}), "respond.status"),
        (json!({"respond": {}}), "respond"),
        (json!({"respond": {"status": 500}, "probability": 1.5}), "probability"),
    ] {
        let (s, e) = t.control(Method::POST, "/_mock/faults", Some(bad.clone())).await;
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidFaultRule")), "{bad}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(names), "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_sandboxs_rules_stay_in_it() {
    // Arrange
    let t = spawn_server().await;
    let (s, other) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": "team-b"}))).await;
    assert_eq!(s, 201);
    let other_tenant = other["tenants"][0]["id"].as_str().unwrap().to_owned();
    t.add_fault(json!({"match": {"operation": "identity.openidConfiguration"}, "respond": {"status": 503}})).await;
    let handle = t.server.sandbox("team-b");
    handle.add_fault_json(json!({"match": {"operation": "identity.keys"}, "respond": {"status": 502}})).await.unwrap();
    // Act
    let here = t.client.get(t.openid_url(TENANT)).send().await.unwrap().status();
    let there = t.client.get(t.openid_url(&other_tenant)).send().await.unwrap().status();
    let keys_here = t.client.get(format!("{}/{TENANT}/discovery/v2.0/keys", t.http)).send().await.unwrap().status();
    let keys_there =
        t.client.get(format!("{}/{other_tenant}/discovery/v2.0/keys", t.http)).send().await.unwrap().status();
    // Assert
    assert_eq!((here.as_u16(), there.as_u16()), (503, 200));
    assert_eq!((keys_here.as_u16(), keys_there.as_u16()), (200, 502));
    assert_eq!(handle.faults().await.unwrap().len(), 1);
    assert_eq!(handle.faults().await.unwrap()[0].hits, 1);
    let (s, listed) = t.control(Method::GET, "/_mock/faults?sandbox=team-b", None).await;
    assert_eq!((s, listed["value"][0]["id"].as_str()), (200, Some("fault-1")));
}

/// A 429 with `Retry-After: 1` on the connection list, then the same list again after `wait`;
/// answers the second status and the sandbox's violations.
async fn retry_after_round(t: &TestServer, token: &str, wait: std::time::Duration) -> (u16, Value) {
    t.add_fault(json!({"match": {"operation": "connections.list"},
                       "respond": {"status": 429, "headers": {"Retry-After": "1"}}, "times": 1}))
        .await;
    let first = t.client.get(t.connections_url()).bearer_auth(token).send().await.unwrap();
    assert_eq!(first.status(), 429);
    tokio::time::sleep(wait).await;
    let second = t.client.get(t.connections_url()).bearer_auth(token).send().await.unwrap().status().as_u16();
    (second, t.control_get("/_mock/retry-after").await)
}

#[tokio::test]
async fn the_retry_after_check_passes_a_client_that_waits_and_flags_one_that_does_not() {
    // Arrange
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    // Act: a patient client.
    let (status, violations) = retry_after_round(&t, &token, std::time::Duration::from_millis(1100)).await;
    // Assert
    assert_eq!(status, 200);
    assert_eq!(violations["value"], json!([]), "{violations}");
    let all = t.control_get("/_mock/retry-after?all=true").await;
    assert_eq!(all["value"][0]["honoured"], true, "{all}");
    assert!(all["value"][0]["waitedMs"].as_u64().unwrap() >= 1000);

    // Act: an impatient one, in a fresh sandbox state.
    t.control(Method::POST, "/_mock/reset", None).await;
    let (status, violations) = retry_after_round(&t, &token, std::time::Duration::ZERO).await;
    // Assert: flagged, and the answer itself unchanged.
    assert_eq!(status, 200, "the check never changes an answer");
    let v = &violations["value"][0];
    assert_eq!(
        (v["operation"].as_str(), v["required"].as_u64(), v["honoured"].as_bool()),
        (Some("connections.list"), Some(1), Some(false)),
        "{violations}"
    );
    assert!(!v["caller"].as_str().unwrap().is_empty(), "the caller, from the token: {v}");
    let events = t.journal("kind=event").await;
    let verdict = events["entries"].as_array().unwrap().iter().find(|e| e["event"] == "retryAfter.verdict").unwrap();
    assert_eq!(verdict["detail"]["retryAfter"]["honoured"], false);
    assert_eq!(verdict["detail"]["retryAfter"]["required"], 1);
    let handle_view = t.sandbox().retry_after_violations().await.unwrap();
    assert_eq!(handle_view.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sandboxes_keep_their_faults_resets_and_clocks_apart() {
    // Arrange: four sandboxes, each its own tenant.
    let t = std::sync::Arc::new(spawn_server().await);
    let mut tenants = Vec::new();
    for i in 0..4 {
        let (s, sb) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": format!("par-{i}")}))).await;
        assert_eq!(s, 201);
        tenants.push(sb["tenants"][0]["id"].as_str().unwrap().to_owned());
    }
    // Act: at once, each sandbox gets i+1 one-shot 503s, is reset half-way and faulted again,
    // and has its clock moved by i hours.
    let tasks: Vec<_> = tenants
        .iter()
        .enumerate()
        .map(|(i, tenant)| {
            let (t, tenant) = (t.clone(), tenant.clone());
            tokio::spawn(async move {
                let name = format!("par-{i}");
                let handle = t.server.sandbox(&name);
                let rule = json!({"match": {"operation": "identity.openidConfiguration"}, "respond": {"status": 503},
                                  "times": i + 1});
                let mut statuses = Vec::new();
                for round in 0..2 {
                    handle.add_fault_json(rule.clone()).await.unwrap();
                    for _ in 0..5 {
                        statuses.push(t.client.get(t.openid_url(&tenant)).send().await.unwrap().status().as_u16());
                    }
                    if round == 0 {
                        handle.reset().await.unwrap();
                    }
                }
                handle.clock().advance(std::time::Duration::from_secs(3600 * i as u64)).await.unwrap();
                (statuses, handle.faults().await.unwrap(), handle.clock().get().await.unwrap())
            })
        })
        .collect();
    // Assert: each saw exactly its own rules, after its own reset, on its own clock.
    for (i, task) in tasks.into_iter().enumerate() {
        let (statuses, faults, clock) = task.await.unwrap();
        let failed = statuses.iter().filter(|s| **s == 503).count();
        assert_eq!(failed, 2 * (i + 1), "par-{i}: {statuses:?}");
        assert_eq!(faults.len(), 1, "par-{i}: the reset removed the first rule");
        assert_eq!((faults[0].id.as_str(), faults[0].hits), ("fault-1", (i + 1) as u64), "par-{i}");
        let start = chrono::DateTime::parse_from_rfc3339("2025-01-06T09:00:00Z").unwrap();
        assert_eq!((clock.now - start.with_timezone(&chrono::Utc)).num_hours(), i as i64, "par-{i}");
    }
    assert_eq!(t.control_get("/_mock/faults").await["value"], json!([]), "nothing leaked into default");
}
