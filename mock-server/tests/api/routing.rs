//! Addressing: real hosts by `Host` (over https, with SNI), path forms on any host, and a
//! clear "not implemented" for everything else.

use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn the_identity_host_routes_by_host_header_over_tls_with_sni() {
    let t = spawn_server().await;
    let port = t.server.https_addr().unwrap().port();
    let r = t
        .client
        .post(format!("https://login.microsoftonline.com:{port}/{TENANT}/oauth2/v2.0/token"))
        .form(&cc_form(SP_APP_ID, SP_SECRET, PP_SCOPE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_environment_host_and_its_path_form_reach_the_same_surface_and_sandbox() {
    // Arrange
    let t = spawn_server().await;
    let port = t.server.https_addr().unwrap().port();
    let token = t.sp_token(PP_SCOPE).await;
    // Act
    let by_host = t
        .client
        .get(format!("https://{ENV_HOST}:{port}/connectivity/connections?api-version=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let by_path = t
        .client
        .get(format!("{}/connectivity/environments/{ENV_ID}/connections?api-version=1", t.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // Assert
    let (s1, b1) = status_json(by_host).await;
    let (s2, b2) = status_json(by_path).await;
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(b1, b2);
    let journal = t.entries(JournalFilter::all().surface("powerplatform")).await;
    let entries = journal.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        assert_eq!(e["environment"], ENV_ID);
        assert_eq!(e["sandbox"], "default");
    }
    assert_eq!(entries[0]["host"], format!("{ENV_HOST}:{port}"));
    assert_eq!(entries[0]["path"], "/connectivity/connections", "the journal keeps the path the client sent");
}

#[tokio::test]
async fn an_environment_host_the_mock_does_not_know_is_a_clear_404() {
    let t = spawn_server().await;
    let port = t.server.https_addr().unwrap().port();
    let r = t
        .client
        .get(format!(
            "https://00000000000000000000000000000.00.environment.api.powerplatform.com:{port}/connectivity/connections"
        ))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("UnknownEnvironmentHost")));
    insta::assert_json_snapshot!("unknown_environment_host", body);
}

#[tokio::test]
async fn the_dataverse_host_answers_in_the_odata_envelope() {
    let t = spawn_server().await;
    let port = t.server.https_addr().unwrap().port();
    let token = t.sp_token("https://contosodev.crm.dynamics.com/.default").await;
    let by_host = t
        .client
        .get(format!("https://contosodev.crm.dynamics.com:{port}/api/data/v9.2/accounts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(by_host).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("0x8006088a")));
    let by_path = t
        .client
        .get(format!("{}/dataverse/{ORG}/api/data/v9.2/accounts", t.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body2) = status_json(by_path).await;
    assert_eq!(status, 404);
    assert_eq!(body2["error"]["message"], "Resource not found for the segment 'accounts'.");
    insta::assert_json_snapshot!("dataverse_unknown_entity_set", body2);
    let anonymous =
        t.client.get(format!("{}/dataverse/{ORG}/api/data/v9.2/flowmachines", t.http)).send().await.unwrap();
    let (status, body3) = status_json(anonymous).await;
    assert_eq!(
        (status, body3["error"]["code"].as_str()),
        (401, Some("0x80072560")),
        "no token: 401 in the OData envelope"
    );
}

#[tokio::test]
async fn a_microsoft_host_the_mock_does_not_emulate_is_named_in_the_error() {
    let t = spawn_server().await;
    let port = t.server.https_addr().unwrap().port();
    let r = t.client.get(format!("https://graph.microsoft.com:{port}/v1.0/me")).send().await.unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("'graph.microsoft.com'"), "{body}");
    insta::assert_json_snapshot!("unknown_microsoft_host", body);
}

#[tokio::test]
async fn an_unknown_path_is_not_implemented_by_the_mock_never_a_silent_200() {
    let t = spawn_server().await;
    for (method, path) in [("GET", "/"), ("POST", "/api/whatever"), ("DELETE", "/providers/Microsoft.Web/sites")] {
        let r = t.client.request(method.parse().unwrap(), format!("{}{path}", t.http)).send().await.unwrap();
        let (status, body) = status_json(r).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(body["error"]["code"], "NotImplementedByMock");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("'{method} {path}' is not implemented by the mock"))
        );
    }
    let r = t.client.get(format!("{}/nothing", t.http)).send().await.unwrap();
    insta::assert_json_snapshot!("unknown_path", status_json(r).await.1);
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_in_the_surface_envelope() {
    let t = spawn_server().await;
    let r = t.client.get(format!("{}/{TENANT}/oauth2/v2.0/token", t.https)).send().await.unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 405);
    assert_eq!(body["error"], "invalid_request", "identity surface, identity shape: {body}");
    let r = t.client.delete(format!("{}/_mock/health", t.http)).send().await.unwrap();
    let (status, body): (u16, Value) = status_json(r).await;
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("MethodNotAllowed")));
}
