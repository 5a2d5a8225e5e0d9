//! Real identity clients against the mock over https. `scripts/test` installs the pinned
//! versions (tests/interop/requirements.txt) into `.venv-interop` and points
//! `MOCK_INTEROP_PYTHON` at it.

use crate::helpers::*;
use serde_json::Value;
use std::path::PathBuf;

fn interop_python() -> PathBuf {
    if let Some(p) = std::env::var_os("MOCK_INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-interop/bin/python");
    assert!(
        venv.exists(),
        "the interop tests need the pinned Python clients: run `scripts/test` (it installs them into .venv-interop)"
    );
    venv
}

#[tokio::test]
async fn msal_for_python_gets_a_client_credentials_token_then_serves_it_from_its_cache() {
    // Arrange
    let t = spawn_server().await;
    let dir = std::env::temp_dir().join(format!("mock-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, t.server.ca_pem().unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/msal_client_credentials.py");
    // Act
    let out = tokio::process::Command::new(interop_python())
        .arg(&script)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("MOCK_AUTHORITY", format!("{}/{TENANT}", t.https))
        .env("MOCK_CLIENT_ID", SP_APP_ID)
        .env("MOCK_CLIENT_SECRET", SP_SECRET)
        .env("MOCK_SCOPE", PP_SCOPE)
        .output()
        .await
        .expect("python runs");
    let _ = std::fs::remove_dir_all(&dir);
    // Assert
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "MSAL script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {stdout}"));
    assert_eq!(r["first"]["has_access_token"], true, "{r}");
    assert_eq!(r["first"]["token_source"], "identity_provider", "{r}");
    assert_eq!(r["second"]["token_source"], "cache", "{r}");
    assert_eq!(r["same_token"], true);
    assert_eq!(r["wrong_secret"]["error"], "invalid_client", "{r}");
    assert_eq!(r["wrong_secret"]["error_codes"], serde_json::json!([7000215]));
    let posts = t.entries(JournalFilter::all().method("POST")).await;
    let statuses: Vec<u64> = posts.as_array().unwrap().iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![200, 401], "one token request per app: the second came from MSAL's cache");
    let raw = t.entries(JournalFilter::all()).await.to_string();
    assert!(!raw.contains(SP_SECRET) && !raw.contains("not-the-secret") && !raw.contains("eyJ"));
}

#[tokio::test]
async fn microsofts_dataverse_sdk_with_azure_identity_finds_the_group_id_of_the_machine_and_manages_a_group() {
    // Arrange
    let t = spawn_server().await;
    let dir = std::env::temp_dir().join(format!("mock-interop-dv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, t.server.ca_pem().unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/dataverse_sdk.py");
    // Act
    let out = tokio::process::Command::new(interop_python())
        .arg(&script)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("MOCK_AUTHORITY_HOST", &t.https)
        .env("MOCK_TENANT", TENANT)
        .env("MOCK_CLIENT_ID", SP_APP_ID)
        .env("MOCK_CLIENT_SECRET", SP_SECRET)
        .env("DV_URL", format!("{}/dataverse/{ORG}", t.https))
        .output()
        .await
        .expect("python runs");
    let _ = std::fs::remove_dir_all(&dir);
    // Assert
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "SDK script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {stdout}"));
    assert_eq!(
        r["build01"],
        serde_json::json!([{ "name": "BUILD-01", "group": "fbd9ef90-eb39-437b-a791-919993c57260" }])
    );
    assert_eq!(
        r["machines_visible"],
        serde_json::json!(["BUILD-01", "FIN-01", "FIN-02"]),
        "HR-01 is not shared with the SP"
    );
    assert_eq!(
        r["groups_visible"],
        serde_json::json!(["BUILD-01", "Finance bots"]),
        "paged one by one through nextLink"
    );
    assert_eq!(r["renamed"], "Renamed by the SDK");
    assert_eq!(r["after_delete"], Value::Null);
    let journal = t.entries(JournalFilter::all().surface("dataverse")).await.to_string();
    assert!(journal.contains("EntityDefinitions"), "the SDK looked the table up first");
    assert!(!journal.contains(SP_SECRET) && !journal.contains("eyJ"));
}
