//! Run callbacks: made after a clock change, in completion order, to loopback URLs only; the
//! clock's answer lists the first attempts; each attempt is a journal event.

use crate::helpers::*;
use crate::runs::{BUILD01_GROUP, Door, FLOW_FAIL, FLOW_OK};
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

/// A loopback receiver: `/ok` answers 200, `/down` 503; every request is kept.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let keep = |path: &'static str, status: StatusCode, seen: Seen| {
        move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((path.to_owned(), headers, serde_json::from_str(&body).unwrap_or_default()));
                status
            }
        }
    };
    let app = axum::Router::new()
        .route("/ok", axum::routing::post(keep("/ok", StatusCode::OK, seen.clone())))
        .route("/down", axum::routing::post(keep("/down", StatusCode::SERVICE_UNAVAILABLE, seen.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

#[tokio::test]
async fn a_run_that_ends_calls_its_loopback_callback_and_the_clock_answer_lists_the_attempts() {
    let t = spawn_server().await;
    let d = Door::default(&t);
    let (base, seen) = receiver().await;
    let conn = d.sign_in_connection(BUILD01_GROUP).await;
    let token = d.dv_token().await;
    let body = |flow_url: &str| json!({"runMode": "attended", "connectionName": conn, "callbackUrl": flow_url});
    let (_, ok) = d.run(&token, FLOW_FAIL, body(&format!("{base}/ok"))).await;
    let (_, down) = d.run(&token, FLOW_OK, body(&format!("{base}/down"))).await;
    let (_, far) = d.run(&token, FLOW_OK, body("https://callbacks.example.com/run-done")).await;
    let (s, clock) = d.control(Method::POST, "/_mock/clock/advance", Some(json!({"untilIdle": true}))).await;
    assert_eq!(s, 200, "{clock}");
    let results: Vec<(&str, bool, Option<u64>, bool)> = clock["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["flowsessionId"].as_str().unwrap(),
                c["called"].as_bool().unwrap(),
                c["status"].as_u64(),
                c["retrying"].as_bool().unwrap(),
            )
        })
        .collect();
    let id = |v: &Value| v["flowsessionId"].as_str().unwrap().to_owned();
    assert_eq!(
        results,
        [
            (id(&ok).as_str(), true, Some(200), false),
            (id(&down).as_str(), true, Some(503), true),
            (id(&far).as_str(), false, None, false)
        ],
        "in completion order; the non-loopback URL is not called"
    );
    let seen = seen.lock().unwrap().clone();
    let (path, headers, body) = &seen[0];
    assert_eq!(path, "/ok");
    assert_eq!(headers["user-agent"], "EnterpriseConnectors/1.0");
    assert_eq!(headers["x-ms-run-id"], id(&ok).as_str());
    assert_eq!(headers["x-ms-workflow-id"], FLOW_FAIL);
    assert_eq!(body["statuscode"], 8);
    assert_eq!(body["statecode"], 0);
    assert_eq!(body["flowsessionid"], id(&ok).as_str());
    assert_eq!(body["completedon"], "2025-01-06T09:01:00Z");
    assert!(seen.iter().all(|(p, _, _)| p != "/run-done"));
    let events = t.journal("kind=event").await;
    let kinds: Vec<&str> = events["entries"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"callback.attempt") && kinds.contains(&"callback.skipped"), "{kinds:?}");
}
