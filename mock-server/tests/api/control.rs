//! The control surface: health, fixture, reset, state, clock, settings, sandboxes, CA.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_the_fixture_with_its_test_credentials_are_served_on_every_port() {
    let t = spawn_server().await;
    let health: Value = t.client.get(format!("{}/_mock/health", t.https)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ready");
    let fixture = t.control_get("/_mock/fixture").await;
    assert_eq!(fixture["servicePrincipals"][0]["clientSecret"], SP_SECRET, "test credentials are test data");
    assert_eq!(fixture["environments"][0]["id"], ENV_ID);
}

#[tokio::test]
async fn the_clock_is_read_set_and_advanced_and_never_goes_back() {
    let t = spawn_server().await;
    let start = t.control_get("/_mock/clock").await;
    assert_eq!(start["now"], "2025-01-06T09:00:00Z");
    assert_eq!(start["mode"], "virtual");
    let (s, c) = t.control(Method::POST, "/_mock/clock/advance", Some(json!({"hours": 1, "minutes": 30}))).await;
    assert_eq!((s, c["now"].as_str()), (200, Some("2025-01-06T10:30:00Z")));
    let (s, c) = t.control(Method::PUT, "/_mock/clock", Some(json!({"now": "2025-02-01T00:00:00Z"}))).await;
    assert_eq!((s, c["now"].as_str()), (200, Some("2025-02-01T00:00:00Z")));
    let (s, e) = t.control(Method::PUT, "/_mock/clock", Some(json!({"now": "2024-01-01T00:00:00Z"}))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidClockChange")));
    insta::assert_json_snapshot!("clock_backwards", e);
    assert_eq!(t.control_get("/_mock/clock").await["now"], "2025-02-01T00:00:00Z", "a refused change changes nothing");
}

#[tokio::test]
async fn reset_restores_clock_journal_and_settings() {
    let t = spawn_server().await;
    t.sp_token(PP_SCOPE).await;
    t.control(Method::POST, "/_mock/clock/advance", Some(json!({"hours": 5}))).await;
    t.control(Method::PATCH, "/_mock/settings", Some(json!({"tokenLifetimeSecs": 60}))).await;
    let (s, _) = t.control(Method::POST, "/_mock/reset", None).await;
    assert_eq!(s, 200);
    assert_eq!(t.control_get("/_mock/clock").await["now"], "2025-01-06T09:00:00Z");
    assert_eq!(t.journal("").await["entries"].as_array().unwrap().len(), 0);
    assert_eq!(t.control_get("/_mock/settings").await["tokenLifetimeSecs"], 3599);
}

#[tokio::test]
async fn a_shorter_token_lifetime_setting_shows_in_the_next_token() {
    let t = spawn_server().await;
    let (s, _) = t.control(Method::PATCH, "/_mock/settings", Some(json!({"tokenLifetimeSecs": 5}))).await;
    assert_eq!(s, 200);
    let token = t.sp_token(PP_SCOPE).await;
    let c = claims(&token);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 5);
    let (s, e) = t.control(Method::PATCH, "/_mock/settings", Some(json!({"tokenLifetime": 5}))).await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("tokenLifetime"), "{e}");
}

#[tokio::test]
async fn a_fixture_loaded_at_run_time_replaces_the_world_and_a_typo_is_named() {
    let t = spawn_server().await;
    let mut world = t.control_get("/_mock/fixture").await;
    world["servicePrincipals"][0]["clientSecret"] = json!("rotated-secret-123");
    let (s, _) = t.control(Method::PUT, "/_mock/fixture", Some(world.clone())).await;
    assert_eq!(s, 200);
    let r = t.token(TENANT, &cc_form(SP_APP_ID, "rotated-secret-123", PP_SCOPE)).await;
    assert_eq!(r.status(), 200);
    world["tenants"][0]["displayNme"] = json!("typo");
    let (s, e) = t.control(Method::PUT, "/_mock/fixture", Some(world)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidFixture")));
    assert!(e["error"]["message"].as_str().unwrap().contains("tenants[0]"), "{e}");
    let (s, _) = t.control(Method::PUT, "/_mock/fixture", Some(json!({"embedded": "default"}))).await;
    assert_eq!(s, 200);
    assert_eq!(t.control_get("/_mock/fixture").await["servicePrincipals"][0]["clientSecret"], SP_SECRET);
}

#[tokio::test]
async fn a_new_sandbox_has_its_own_tenants_tokens_and_journal() {
    // Arrange
    let t = spawn_server().await;
    let (s, sb) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{sb}");
    let tenant = sb["tenants"][0]["id"].as_str().unwrap().to_owned();
    let app_id = sb["servicePrincipals"][0]["appId"].as_str().unwrap().to_owned();
    let secret = sb["servicePrincipals"][0]["clientSecret"].as_str().unwrap().to_owned();
    assert_ne!(tenant, TENANT);
    // Act
    let r = t.token(&tenant, &cc_form(&app_id, &secret, PP_SCOPE)).await;
    let old_secret = t.token(&tenant, &cc_form(&app_id, SP_SECRET, PP_SCOPE)).await;
    // Assert
    assert_eq!(r.status(), 200);
    assert_eq!(old_secret.status(), 401, "the template's secret does not open the sandbox");
    let theirs = t.journal("sandbox=team-a").await;
    assert_eq!(theirs["entries"].as_array().unwrap().len(), 2);
    assert_eq!(t.journal("").await["entries"].as_array().unwrap().len(), 0, "default's journal is untouched");
    let (s, _) = t.control(Method::DELETE, "/_mock/sandboxes/team-a", None).await;
    assert_eq!(s, 204);
    let (s, e) = t.control(Method::DELETE, "/_mock/sandboxes/default", None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("DefaultSandboxIsPermanent")));
}

#[tokio::test]
async fn the_state_dump_shows_the_world_and_the_ca_is_served() {
    let t = spawn_server().await;
    let state = t.control_get("/_mock/state").await;
    let env = &state["environments"][0];
    assert_eq!(env["apiHost"], ENV_HOST);
    let groups = env["machineGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[1]["machines"].as_array().unwrap().len(), 2);
    let pem = t.client.get(format!("{}/_mock/ca.pem", t.http)).send().await.unwrap().text().await.unwrap();
    assert_eq!(pem, t.server.ca_pem().unwrap());
}
