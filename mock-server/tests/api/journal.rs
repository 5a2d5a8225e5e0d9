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
    assert_eq!(raw[0]["leaks"], serde_json::json!(["client_secret in query.debug"]));
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
    assert_eq!(j.counts.evicted, 3);
    assert_eq!(j.values()[0]["seq"], 4);
    t.sandbox().journal().clear().await.unwrap();
    assert_eq!(t.entries(JournalFilter::all()).await.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn the_journal_is_read_in_pages_counted_and_filtered_by_kind_and_status() {
    // Arrange: 7 requests, 3 of them answered 404.
    let t = spawn_server().await;
    for _ in 0..3 {
        t.client.get(format!("{}/nothing", t.http)).send().await.unwrap();
    }
    for _ in 0..4 {
        t.token(TENANT, &cc_form(SP_APP_ID, SP_SECRET, PP_SCOPE)).await;
    }
    // Act: read to the end, three at a time.
    let mut seqs = Vec::new();
    let mut since = String::new();
    loop {
        let page = t.journal(&format!("limit=3{since}")).await;
        seqs.extend(page["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next"].as_u64() {
            Some(n) => since = format!("&since={n}"),
            None => break,
        }
    }
    // Assert
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!(t.journal("count=true").await, serde_json::json!({"count": 7}));
    assert_eq!(t.journal("count=true&status=404").await["count"], 3);
    assert_eq!(t.journal("count=true&kind=request").await["count"], 7);
    assert_eq!(t.journal("count=true&kind=event").await["count"], 0);
    let (s, e) = t.control(reqwest::Method::GET, "/_mock/journal?limit=0", None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidQueryParameter")));
    let (s, _) = t.control(reqwest::Method::GET, "/_mock/journal?kind=gossip", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn the_journal_is_bounded_in_bytes_and_keeps_large_bodies_as_a_head_and_a_hash() {
    // Arrange: room for a few entries only.
    let t = spawn_with(MockServer::builder().journal_bytes(12 * 1024)).await;
    let big = format!("{{\"note\": \"{}\"}}", "n".repeat(40 * 1024));
    // Act
    for _ in 0..10 {
        t.client
            .post(format!("{}/nothing", t.http))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
    }
    // Assert
    let j = t.journal("").await;
    assert!(j["bytes"].as_u64().unwrap() <= 12 * 1024, "{}", j["bytes"]);
    assert!(j["evicted"].as_u64().unwrap() > 0 && j["evictedByKind"]["request"] == j["evicted"]);
    let body = &j["entries"][0]["body"]["$truncated"];
    assert_eq!(body["length"], big.len() - 1, "the redacted JSON form, re-serialised without the space");
    assert_eq!(body["head"].as_str().unwrap().len(), 4 * 1024);
}

#[cfg(feature = "insta")]
#[tokio::test]
async fn a_journal_slice_is_snapshotted_in_one_line() {
    let t = spawn_server().await;
    t.client.get(format!("{}/{TENANT_DOMAIN}/v2.0/.well-known/openid-configuration", t.http)).send().await.unwrap();
    mock_server::assert_journal_snapshot!(
        "journal_slice_openid",
        t.sandbox(),
        JournalFilter::all().operation(mock_server::operation::Operation::IdentityOpenidConfiguration)
    );
}
