//! The journal: every request recorded, no secret in it, bounded, filterable, normalised.

use crate::helpers::*;
use mock_server::MockServer;

#[tokio::test]
async fn no_secret_or_issued_token_appears_anywhere_in_the_journal() {
    // Arrange
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let user = t.user_grant("https://api.powerplatform.com/.default openid offline_access").await;
    t.client
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", t.https))
        .basic_auth(SP_APP_ID, Some(SP_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", PP_SCOPE)])
        .send()
        .await
        .unwrap();
    t.client
        .get(format!("{}/connectivity/environments/{ENV_ID}/connections", t.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // Act
    let raw = t.entries(JournalFilter::all()).await.to_string();
    let normalised = t.entries_normalised(JournalFilter::all()).await.to_string();
    // Assert
    let refresh = user["refresh_token"].as_str().unwrap();
    let id_token = user["id_token"].as_str().unwrap();
    for secret in [SP_SECRET, USER_PASSWORD, token.as_str(), refresh, id_token, user["access_token"].as_str().unwrap()]
    {
        assert!(!raw.contains(secret), "raw journal leaks {}", &secret[..12]);
        assert!(!normalised.contains(secret), "normalised journal leaks {}", &secret[..12]);
    }
    assert!(!raw.contains("eyJ"), "no JWT survives redaction");
    assert!(raw.contains("<redacted:client_secret:"));
    assert!(raw.contains("<redacted:password:"));
}

#[tokio::test]
async fn the_normalised_journal_of_a_token_request_matches_its_snapshot() {
    let t = spawn_server().await;
    t.sp_token(PP_SCOPE).await;
    let j = t.entries_normalised(JournalFilter::all()).await;
    let mut entry = j[0].clone();
    // The port is random and the user agent is reqwest's; neither is the request's substance.
    entry["headers"].as_object_mut().unwrap().remove("user-agent");
    insta::assert_json_snapshot!("journal_token_request", entry);
}

#[tokio::test]
async fn a_known_secret_outside_its_field_is_redacted_and_flagged_as_a_leak() {
    let t = spawn_server().await;
    t.client
        .get(format!("{}/connectivity/environments/{ENV_ID}/connections?debug={SP_SECRET}", t.http))
        .send()
        .await
        .unwrap();
    let raw = t.sandbox().journal().entries(JournalFilter::all()).await.unwrap();
    assert!(!serde_json::to_string(&raw).unwrap().contains(SP_SECRET));
    assert_eq!(raw[0].leaks, ["client_secret in query.debug"]);
}

#[tokio::test]
async fn the_journal_is_filtered_by_method_path_surface_and_environment_on_both_doors() {
    let t = spawn_server().await;
    t.sp_token(PP_SCOPE).await;
    t.client.get(format!("{}/connectivity/environments/{ENV_ID}/connections", t.http)).send().await.unwrap();
    t.client.get(format!("{}/dataverse/{ORG}/api/data/v9.2/WhoAmI", t.http)).send().await.unwrap();
    let filters = [
        ("", JournalFilter::all(), 3),
        ("method=POST", JournalFilter::all().method("POST"), 1),
        ("path=/connectivity", JournalFilter::all().path("/connectivity"), 1),
        ("surface=dataverse", JournalFilter::all().surface("dataverse"), 1),
        ("environment=37520647-DBDF-49fa-ba01-6134c14680c4", JournalFilter::all().environment(ENV_ID), 2),
        ("since=2", JournalFilter::all().since(2), 1),
    ];
    for (query, filter, n) in filters {
        let http = t.control_get(&format!("/_mock/journal?{query}")).await;
        assert_eq!(http["entries"].as_array().unwrap().len(), n, "{query}");
        assert_eq!(t.sandbox().journal().entries(filter).await.unwrap().len(), n, "{query}");
    }
    let (s, e) = t.control(reqwest::Method::GET, "/_mock/journal?view=pretty", None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidJournalView")));
}

#[tokio::test]
async fn the_journal_is_bounded_and_reports_evictions() {
    let t = spawn_with(MockServer::builder().journal_capacity(2)).await;
    for _ in 0..5 {
        t.client.get(format!("{}/nothing", t.http)).send().await.unwrap();
    }
    let j = t.sandbox().journal().read(JournalFilter::all()).await.unwrap();
    assert_eq!(j.entries.len(), 2);
    assert_eq!(j.evicted, 3);
    assert_eq!(j.entries[0].seq, 4);
    t.sandbox().journal().clear().await.unwrap();
    assert_eq!(t.entries(JournalFilter::all()).await.as_array().unwrap().len(), 0);
}
