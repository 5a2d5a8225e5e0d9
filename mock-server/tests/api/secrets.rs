//! Secrets in the journal: bodies that do not parse are journaled as a redacted rendition,
//! and secrets sent where they do not belong are flagged as leaks and counted per sandbox.

use crate::helpers::*;
use serde_json::Value;

/// A client-chosen password: not a fixture credential, so only the lenient tokenizer can find it.
const CLIENT_PASSWORD: &str = "Qz7~vK2#mW9+tR4!xB";

/// Every 6-character piece of a secret that shows up in `text`.
fn pieces_in(secret: &str, text: &str) -> Vec<String> {
    secret.as_bytes().windows(6).map(|w| String::from_utf8_lossy(w).into_owned()).filter(|p| text.contains(p)).collect()
}

#[tokio::test]
async fn a_connection_put_one_brace_short_is_journaled_without_its_password() {
    // Arrange: the seed's body with its last `}` missing.
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let body = format!(
        r#"{{"properties":{{"environment":{{"name":"{ENV_ID}"}},"connectionParametersSet":{{"name":"azureRelay","values":{{"username":{{"value":"CONTOSO\\svc-rpa"}},"password":{{"value":"{CLIENT_PASSWORD}"}},"targetId":{{"value":"42e26112-838c-471b-b09f-958e640e9303"}}}}}}}}"#
    );
    let url = format!(
        "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/00000000-0000-0000-0000-000000000801?api-version=1",
        t.http
    );
    // Act
    let r = t
        .client
        .put(url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, answer) = status_json(r).await;
    let raw = serde_json::to_string(&t.journal("method=PUT").await).unwrap();
    let normalised = serde_json::to_string(&t.journal("method=PUT&view=normalised").await).unwrap();
    // Assert
    assert_eq!(status, 400, "{answer}");
    for (name, text) in
        [("answer", answer.to_string()), ("raw journal", raw.clone()), ("normalised journal", normalised)]
    {
        assert_eq!(pieces_in(CLIENT_PASSWORD, &text), Vec::<String>::new(), "the {name} holds the password: {text}");
    }
    assert!(raw.contains("<redacted:password:"), "{raw}");
    assert!(raw.contains("CONTOSO"), "the rest of the body stays readable: {raw}");
}

#[tokio::test]
async fn a_query_parameter_named_like_a_secret_is_a_leak_whatever_its_value() {
    // Arrange
    let t = spawn_server().await;
    // Act
    t.client
        .get(format!("{}/connectivity/environments/{ENV_ID}/connections?client_secret=anything-at-all", t.http))
        .send()
        .await
        .unwrap();
    let journal = t.journal("").await;
    let state = t.control_get("/_mock/state").await;
    // Assert
    let e = &journal["entries"][0];
    assert!(!e.to_string().contains("anything-at-all"), "{e}");
    assert_eq!(e["leaks"], serde_json::json!(["client_secret in query.client_secret"]));
    assert_eq!(journal["leaks"], 1, "the journal counts the sandbox's leaks");
    assert_eq!(state["journal"]["leaks"], 1, "so does the sandbox's state");
}

#[tokio::test]
async fn requests_without_leaks_count_none() {
    let t = spawn_server().await;
    t.sp_token(PP_SCOPE).await;
    let journal = t.journal("").await;
    assert_eq!(journal["leaks"], 0);
    assert_eq!(t.control_get("/_mock/state").await["journal"]["leaks"], Value::from(0));
}
