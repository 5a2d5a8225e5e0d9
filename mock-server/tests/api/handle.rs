//! The typed Rust handle: base URLs a client is pointed at, sandboxes, clock, journal,
//! settings, machines and reset, and that it drives the same service as `/_mock/…`.

use crate::helpers::*;
use mock_server::MockServer;
use mock_server::control::{ClockChange, NewSandbox, SettingsPatch};
use mock_server::domain::clock::ClockMode;
use mock_server::sandbox::SandboxError;
use serde_json::Value;
use std::time::Duration;

const FIN02: &str = "148a5ad1-1f49-48ab-8f8f-c73dfc6ea378";

/// A client that trusts only the mock's CA.
fn client_of(server: &MockServer) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(server.ca_pem().unwrap().as_bytes()).unwrap();
    reqwest::Client::builder().tls_certs_only([ca]).no_proxy().build().unwrap()
}

#[tokio::test]
async fn a_client_pointed_at_the_base_urls_gets_a_token_and_reaches_every_surface() {
    // Arrange
    let server = MockServer::start().await.unwrap();
    let client = client_of(&server);
    assert!(server.identity_url(TENANT).starts_with("https://127.0.0.1:"), "https when TLS is on");
    // Act
    let token: Value = client
        .post(format!("{}/oauth2/v2.0/token", server.identity_url(TENANT_DOMAIN)))
        .form(&cc_form(SP_APP_ID, SP_SECRET, PP_SCOPE))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pp = token["access_token"].as_str().unwrap();
    let dv_scope = format!("{}/.default", server.dataverse_url(ORG));
    let dv: Value = client
        .post(server.urls().token(TENANT))
        .form(&cc_form(SP_APP_ID, SP_SECRET, &dv_scope))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bap: Value = client
        .post(server.urls().token(TENANT))
        .form(&cc_form(SP_APP_ID, SP_SECRET, "https://api.bap.microsoft.com/.default"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let get = |url: String, token: String| {
        let client = client.clone();
        async move { client.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    let connections = format!("{}/connections?api-version=1", server.powerplatform_url(ENV_ID));
    let who_am_i = format!("{}/api/data/v9.2/WhoAmI", server.dataverse_url(ORG));
    let environment = format!(
        "{}/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{ENV_ID}?api-version=2023-06-01",
        server.bap_url()
    );
    // Assert
    assert_eq!(get(connections, pp.to_owned()).await, 200);
    assert_eq!(get(who_am_i, dv["access_token"].as_str().unwrap().to_owned()).await, 200, "{dv}");
    assert_eq!(get(environment, bap["access_token"].as_str().unwrap().to_owned()).await, 200, "{bap}");
    let http = server.http_urls();
    assert_eq!(http.origin(), server.uri());
    assert_eq!(http.control(), format!("{}/_mock", server.uri()));
}

#[tokio::test]
async fn without_tls_the_base_urls_are_on_the_http_door() {
    let server = MockServer::builder().https(None).start().await.unwrap();
    assert_eq!(server.urls(), server.http_urls());
    assert_eq!(server.bap_url(), server.uri());
    let e = server.control().ca_pem().unwrap_err();
    assert!(matches!(e, ControlError::NotFound { code: "TlsDisabled", .. }), "{e}");
}

#[tokio::test]
async fn a_sandbox_made_through_the_handle_has_its_own_world_tokens_and_journal() {
    // Arrange
    let t = spawn_server().await;
    let team = t.server.create_sandbox("team-a").await.unwrap();
    let world = team.fixture().await.unwrap();
    let sp = &world.service_principals[0];
    assert_ne!(sp.tenant, TENANT);
    // Act
    let (s, _) =
        status_json(t.token(&sp.tenant, &cc_form(&sp.app_id, sp.client_secret.as_deref().unwrap(), PP_SCOPE)).await)
            .await;
    // Assert
    assert_eq!(s, 200);
    assert_eq!(team.journal().entries(JournalFilter::all()).await.unwrap().len(), 1);
    assert!(t.sandbox().journal().entries(JournalFilter::all()).await.unwrap().is_empty(), "default's is untouched");
    let hosts = team.hosts().await.unwrap();
    assert_eq!(hosts[0].environment.as_str(), world.environments[0].id);
    let names: Vec<String> = t.server.sandboxes().await.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["default", "team-a"]);
    assert_eq!(t.server.health().await.sandboxes, names);
    team.clone().delete().await.unwrap();
    let gone = team.clock().now().await.unwrap_err();
    assert!(matches!(gone, ControlError::Sandbox(SandboxError::NotFound(ref n)) if n == "team-a"), "{gone}");
    let e = t.sandbox().delete().await.unwrap_err();
    assert!(matches!(e, ControlError::Sandbox(SandboxError::DefaultIsPermanent)), "{e}");
    let made_up = t.server.create_sandbox(NewSandbox::default()).await.unwrap();
    assert!(made_up.name().starts_with("sb"), "{}", made_up.name());
    let e = t.server.create_sandbox(NewSandbox::named("x").template("nowhere")).await.unwrap_err();
    assert!(e.to_string().contains("no embedded world named 'nowhere'"), "{e}");
}

#[tokio::test]
async fn the_clock_advances_is_set_never_goes_back_and_switches_to_real_time() {
    let t = spawn_server().await;
    let clock = t.sandbox().clock();
    let start = clock.now().await.unwrap();
    let moved = clock.advance(Duration::from_secs(90 * 60)).await.unwrap();
    assert_eq!(moved.now - start, chrono::Duration::minutes(90));
    assert_eq!(moved.mode, ClockMode::Virtual);
    let e = clock.set(start).await.unwrap_err();
    assert!(matches!(e, ControlError::Domain(DomainError::Clock(_))), "{e}");
    let e = clock.change(ClockChange { mode: Some(ClockMode::System), now: Some(start) }).await.unwrap_err();
    assert!(matches!(e, ControlError::Domain(DomainError::Clock(_))), "{e}");
    assert_eq!(clock.get().await.unwrap(), moved, "a refused change changes nothing, the mode included");
    assert_eq!(clock.advance(Duration::from_secs(u64::MAX)).await.unwrap_err().to_string(), e_out_of_range());
    let real = clock.set_mode(ClockMode::System).await.unwrap();
    assert_eq!(real.mode, ClockMode::System);
    assert!(real.now >= moved.now, "the switch never goes back");
    let http = t.control_get("/_mock/clock").await;
    assert_eq!(http["mode"], "system", "both doors show one clock");
}

fn e_out_of_range() -> String {
    mock_server::domain::clock::ClockError::OutOfRange.to_string()
}

#[tokio::test]
async fn a_builder_clock_mode_of_system_holds_for_the_default_sandbox_and_survives_reset() {
    let t = spawn_with(MockServer::builder().clock_mode(ClockMode::System)).await;
    assert_eq!(t.sandbox().clock().get().await.unwrap().mode, ClockMode::System);
    t.sandbox().reset().await.unwrap();
    assert_eq!(t.sandbox().clock().get().await.unwrap().mode, ClockMode::System);
    let other = t.server.create_sandbox("other").await.unwrap();
    assert_eq!(other.clock().get().await.unwrap().mode, ClockMode::Virtual, "made later: virtual");
}

#[tokio::test]
async fn a_token_lifetime_set_through_the_handle_shows_in_the_next_token_and_zero_is_refused() {
    let t = spawn_server().await;
    let settings = t.sandbox().set_token_lifetime(Duration::from_secs(5)).await.unwrap();
    assert_eq!(settings.token_lifetime_secs, 5);
    let c = claims(&t.sp_token(PP_SCOPE).await);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 5);
    let e = t
        .sandbox()
        .patch_settings(SettingsPatch { token_lifetime_secs: Some(0), ..SettingsPatch::default() })
        .await
        .unwrap_err();
    assert!(matches!(e, ControlError::Invalid { code: "InvalidRequestContent", .. }), "{e}");
    assert_eq!(t.sandbox().settings().await.unwrap().token_lifetime_secs, 5, "refused: unchanged");
    t.sandbox().reset().await.unwrap();
    assert_eq!(t.sandbox().settings().await.unwrap().token_lifetime_secs, 3599);
}

#[tokio::test]
async fn machine_facts_set_through_the_handle_show_in_the_state_and_an_unknown_machine_is_named() {
    let t = spawn_server().await;
    let offline = MachineFacts { online: Some(false), ..Default::default() };
    assert!(!t.sandbox().set_machine(machine(FIN02), offline).await.unwrap().online);
    let state = t.sandbox().state().await.unwrap();
    let fin02 = state.environments[0].machines.iter().find(|m| m.id == machine(FIN02)).unwrap();
    assert!(!fin02.online);
    let unknown = machine("00000000-0000-0000-0000-000000000001");
    let e = t.sandbox().set_machine(unknown, MachineFacts::default()).await.unwrap_err();
    assert!(matches!(e, ControlError::NotFound { code: "MachineNotFound", .. }), "{e}");
    let registered = t.sandbox().register_machine(registration("NEW-01")).await.unwrap();
    let state = t.sandbox().state().await.unwrap();
    assert!(state.environments[0].machines.iter().any(|m| m.id == registered.machine_id && m.name == "NEW-01"));
    let e = t.sandbox().register_machine(registration(" ")).await.unwrap_err();
    assert!(e.to_string().contains("'name'"), "{e}");
}

#[tokio::test]
async fn both_doors_show_the_same_state_world_and_journal() {
    // Arrange: something in every part of the state.
    let t = spawn_server().await;
    t.sp_token(PP_SCOPE).await;
    t.sandbox().clock().advance(Duration::from_secs(60)).await.unwrap();
    let team = t.server.create_sandbox("team-b").await.unwrap();
    // Act
    let typed = serde_json::to_value(t.sandbox().state().await.unwrap()).unwrap();
    let http = t.control_get("/_mock/state").await;
    let world = serde_json::to_value(team.fixture().await.unwrap()).unwrap();
    let http_world = t.control_get("/_mock/fixture?sandbox=team-b").await;
    let entries = t.entries(JournalFilter::all()).await;
    let http_entries = t.journal("").await["entries"].clone();
    let normalised = t.entries_normalised(JournalFilter::all()).await;
    let http_normalised = t.journal("view=normalised").await["entries"].clone();
    // Assert
    assert_eq!(typed, http);
    assert_eq!(world, http_world);
    assert_eq!(entries, http_entries);
    assert_eq!(normalised, http_normalised);
}

#[tokio::test]
async fn reset_through_the_handle_restores_world_clock_journal_and_settings() {
    let t = spawn_server().await;
    let before = serde_json::to_value(t.sandbox().state().await.unwrap()).unwrap();
    t.sp_token(PP_SCOPE).await;
    t.sandbox().clock().advance(Duration::from_secs(3600)).await.unwrap();
    t.sandbox().set_token_lifetime(Duration::from_secs(60)).await.unwrap();
    t.set_machine(FIN02, MachineFacts { maintenance: Some(true), ..Default::default() }).await;
    t.sandbox().reset().await.unwrap();
    assert_eq!(serde_json::to_value(t.sandbox().state().await.unwrap()).unwrap(), before);
}

#[tokio::test]
async fn a_loaded_fixture_replaces_the_world_and_the_journal_is_cleared() {
    let t = spawn_server().await;
    let mut world = t.sandbox().fixture().await.unwrap();
    world.service_principals[0].client_secret = Some("rotated-secret-123".into());
    let loaded = t.sandbox().load_fixture(world.clone()).await.unwrap();
    assert_eq!(loaded.loaded, world.name);
    assert_eq!(t.token(TENANT, &cc_form(SP_APP_ID, "rotated-secret-123", PP_SCOPE)).await.status(), 200);
    assert_eq!(t.sandbox().journal().entries(JournalFilter::all()).await.unwrap().len(), 1);
    t.sandbox().journal().clear().await.unwrap();
    assert!(t.entries(JournalFilter::all()).await.as_array().unwrap().is_empty());
    world.tenants.clear();
    let e = t.sandbox().load_fixture(world).await.unwrap_err();
    assert!(matches!(e, ControlError::Sandbox(SandboxError::Fixture(_))), "{e}");
}

#[tokio::test]
async fn a_server_that_is_shut_down_answers_no_more() {
    let server = MockServer::start().await.unwrap();
    let health = server.http_urls().control() + "/health";
    assert_eq!(reqwest::get(&health).await.unwrap().status(), 200);
    let sandbox = server.default_sandbox();
    server.shutdown().await;
    assert!(reqwest::get(&health).await.is_err(), "nothing listens any more");
    assert!(sandbox.clock().now().await.is_ok(), "a handle outliving its server still reads the state");
}

#[tokio::test]
async fn the_http_door_refuses_a_settings_patch_the_typed_one_could_not_hold() {
    let t = spawn_server().await;
    for (body, names) in [
        (serde_json::json!({"tokenLifetimeSecs": null}), "tokenLifetimeSecs"),
        (serde_json::json!({"tokenLifetime": 5}), "tokenLifetime"),
        (serde_json::json!([1]), "JSON object"),
        (serde_json::json!({"tokenLifetimeSecs": 0}), "at least 1"),
    ] {
        let (s, e) = t.control(reqwest::Method::PATCH, "/_mock/settings", Some(body.clone())).await;
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidRequestContent")), "{body}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(names), "{body}: {e}");
    }
    assert_eq!(t.sandbox().settings().await.unwrap().token_lifetime_secs, 3599, "nothing changed");
}

#[tokio::test]
async fn an_advance_beyond_any_instant_is_refused_on_both_doors() {
    let t = spawn_server().await;
    for seconds in [i64::MAX as u64, u64::MAX, 10_u64.pow(15)] {
        let body = serde_json::json!({ "seconds": seconds });
        let (s, e) = t.control(reqwest::Method::POST, "/_mock/clock/advance", Some(body)).await;
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidClockChange")), "{seconds}: {e}");
        let e = t.sandbox().clock().advance(Duration::from_secs(seconds)).await.unwrap_err();
        assert!(matches!(e, ControlError::Domain(DomainError::Clock(_))), "{seconds}: {e}");
    }
    assert_eq!(t.control_get("/_mock/clock").await["now"], "2025-01-06T09:00:00Z", "nothing moved");
}

#[tokio::test]
async fn seeded_connections_are_ordinary_connections_of_their_owner() {
    // Arrange
    let t = spawn_server().await;
    // Act
    let seeded = t.sandbox().seed_connections(ENV_ID, 1000).await.unwrap();
    // Assert
    assert_eq!(seeded.count, 1000);
    let megan = t.megan().await;
    let id = mock_server::control::seeded_connection_id(999);
    let (s, c) = t.get_conn(&id.to_string(), &megan).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["properties"]["connectionParametersSet"]["name"], "azureRelay");
    let list = format!("{}/connectivity/environments/{ENV_ID}/connections?api-version=1", t.http);
    let (s, all) = t.send(reqwest::Method::GET, &list, &megan, None).await;
    assert_eq!((s, all["value"].as_array().unwrap().len()), (200, 1000));
    assert!(t.sandbox().seed_connections("not-an-environment", 1).await.is_err());
    let other = "00000000-0000-0000-0000-000000000000";
    assert!(t.sandbox().seed_connections(other, 1).await.is_err(), "an unknown environment");
}
