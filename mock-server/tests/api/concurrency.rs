//! 64 clients on one server at once: creating, updating, sharing and deleting connections and
//! advancing clocks in three sandboxes. Afterwards the world holds exactly what the answers
//! said, every clock moved by exactly what was asked, no secret shows, and every request sent to
//! an emulated surface is in its sandbox's journal (or counted as evicted).

use crate::helpers::*;
use crate::rules::{run_owner, share_with};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

const CLIENTS: usize = 64;
const ROUNDS: usize = 4;
const SANDBOXES: [&str; 3] = ["default", "busy-1", "busy-2"];
const SP_OBJECT: &str = "ed6535a9-e3e6-4f8a-9fd5-58313db668bf";

/// What one sandbox gives its clients.
#[derive(Debug, Clone)]
struct World {
    sandbox: &'static str,
    tenant: String,
    environment: String,
    upn: String,
    password: String,
    group: String,
    account: (String, String),
}

fn world_of(sandbox: &'static str, fixture: &Value) -> World {
    let env = &fixture["environments"][0];
    let finance = env["machineGroups"].as_array().unwrap().iter().find(|g| g["name"] == "Finance bots").unwrap();
    let fin01 = env["machines"].as_array().unwrap().iter().find(|m| m["name"] == "FIN-01").unwrap();
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    World {
        sandbox,
        tenant: s(&fixture["tenants"][0]["id"]),
        environment: s(&env["id"]),
        upn: s(&fixture["users"][0]["userPrincipalName"]),
        password: s(&fixture["users"][0]["password"]),
        group: s(&finance["id"]),
        account: (s(&fin01["windowsAccounts"][0]["username"]), s(&fin01["windowsAccounts"][0]["password"])),
    }
}

fn relay_in(w: &World) -> Value {
    json!({ "properties": {
        "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{}", w.environment), "name": w.environment },
        "connectionParametersSet": { "name": "azureRelay", "values": {
            "username": {"value": w.account.0}, "password": {"value": w.account.1}, "targetId": {"value": w.group} } } } })
}

/// What one client did: the connections it left, requests it sent, seconds it advanced.
#[derive(Debug, Default)]
struct Done {
    live: BTreeSet<String>,
    sent: u64,
    advanced: u64,
}

async fn client(t: Arc<TestServer>, w: World, n: usize) -> Done {
    let mut done = Done::default();
    let form = [
        ("grant_type", "password"),
        ("client_id", PUBLIC_CLIENT),
        ("username", w.upn.as_str()),
        ("password", w.password.as_str()),
        ("scope", PP_SCOPE),
    ];
    let r = t.token(&w.tenant, &form).await;
    done.sent += 1;
    assert_eq!(r.status(), 200, "{}: token", w.sandbox);
    let token = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let url = |id: &str, rest: &str| {
        format!(
            "{}/connectivity/environments/{}/connectors/shared_uiflow/connections/{id}{rest}?api-version=1",
            t.http, w.environment
        )
    };
    let send = |method: Method, url: String, body: Option<Value>| {
        let mut req = t.client.request(method, url).bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for round in 0..ROUNDS {
        let id = format!("00000000-0000-4000-8000-{n:06}{round:06}");
        // In the default sandbox half the clients make run-owner connections and share them.
        let shared = w.sandbox == "default" && n.is_multiple_of(2);
        let body = if shared { run_owner(&w.account.0, &w.account.1, &w.group, SP_APP_ID) } else { relay_in(&w) };
        let (s, c) = send(Method::PUT, url(&id, ""), Some(body.clone())).await;
        assert_eq!(s, 201, "{}: create {id}: {c}", w.sandbox);
        let (s, _) = send(Method::PUT, url(&id, ""), Some(body)).await;
        assert_eq!(s, 200, "{}: update {id}", w.sandbox);
        let (s, _) = send(Method::GET, url(&id, ""), None).await;
        assert_eq!(s, 200, "{}: read {id}", w.sandbox);
        done.sent += 3;
        if shared {
            let share = share_with(SP_OBJECT, "ServicePrincipal", "CanView");
            let (s, r) = send(Method::POST, url(&id, "/modifyPermissions"), Some(share)).await;
            assert_eq!(s, 200, "share {id}: {r}");
            done.sent += 1;
        }
        if round % 2 == 1 {
            let (s, _) = send(Method::DELETE, url(&id, ""), None).await;
            assert!(s == 200 || s == 204, "{}: delete {id}: {s}", w.sandbox);
            done.sent += 1;
        } else {
            done.live.insert(id);
        }
        let (s, _) = t
            .control(Method::POST, &format!("/_mock/clock/advance?sandbox={}", w.sandbox), Some(json!({"seconds": 1})))
            .await;
        assert_eq!(s, 200, "{}: advance", w.sandbox);
        done.advanced += 1;
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_at_once_leave_every_sandbox_as_their_answers_said() {
    // Arrange: three sandboxes, their clocks as they start.
    let t = spawn_server().await;
    let mut worlds = vec![world_of("default", &t.control_get("/_mock/fixture").await)];
    for name in &SANDBOXES[1..] {
        let (s, fixture) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({ "name": name }))).await;
        assert_eq!(s, 201, "{fixture}");
        worlds.push(world_of(name, &fixture));
    }
    let clock = |v: &Value| chrono::DateTime::parse_from_rfc3339(v["now"].as_str().unwrap()).unwrap();
    let mut started = Vec::new();
    for w in &worlds {
        started.push(clock(&t.control_get(&format!("/_mock/clock?sandbox={}", w.sandbox)).await));
    }
    let t = Arc::new(t);
    // Act
    let tasks: Vec<_> =
        (0..CLIENTS).map(|n| tokio::spawn(client(t.clone(), worlds[n % worlds.len()].clone(), n))).collect();
    let mut done: Vec<Done> = Vec::new();
    for task in tasks {
        done.push(task.await.expect("a client panicked"));
    }
    // Assert, per sandbox.
    for (i, w) in worlds.iter().enumerate() {
        let mine = done.iter().enumerate().filter(|(n, _)| n % worlds.len() == i).map(|(_, d)| d);
        let (mut live, mut sent, mut advanced) = (BTreeSet::new(), 0, 0);
        for d in mine {
            live.extend(d.live.iter().cloned());
            sent += d.sent;
            advanced += d.advanced;
        }
        let state = t.control_get(&format!("/_mock/state?sandbox={}", w.sandbox)).await;
        let held: BTreeSet<String> =
            state["connections"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(held, live, "{}: the connections are exactly those the answers left", w.sandbox);
        for c in state["connections"].as_array().unwrap() {
            assert_eq!(c["targetId"], w.group.as_str(), "{}: {c}", w.sandbox);
            let shares = c["shares"].as_array().unwrap();
            assert_eq!(c["parameterSet"] == "azureRelayRunOwner", shares.len() == 1, "{}: {c}", w.sandbox);
        }
        let now = clock(&state["clock"]);
        assert_eq!((now - started[i]).num_seconds(), i64::try_from(advanced).unwrap(), "{}: clock", w.sandbox);
        let journal = t.control_get(&format!("/_mock/journal?sandbox={}&count=true&kind=request", w.sandbox)).await;
        let kept = journal["count"].as_u64().unwrap();
        let evicted = state["journal"]["evictedByKind"]["request"].as_u64().unwrap();
        assert_eq!(kept + evicted, sent, "{}: every request journaled once", w.sandbox);
        let whole =
            format!("{state}{}", t.control_get(&format!("/_mock/journal?sandbox={}&limit=10000", w.sandbox)).await);
        assert!(!whole.contains(&w.account.1) && !whole.contains(&w.password), "{}: a secret shows", w.sandbox);
    }
}
