//! Named operations: classified once at routing, recorded in the journal, filterable there.

use crate::helpers::*;
use serde_json::Value;

fn operations(journal: &Value) -> Vec<&str> {
    journal["entries"].as_array().unwrap().iter().map(|e| e["operation"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn each_journal_entry_names_its_operation_on_either_door_and_the_journal_filters_by_it() {
    // Arrange
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let one = format!("/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/c1?api-version=1");
    t.client.get(format!("{}{one}", t.http)).bearer_auth(&token).send().await.unwrap();
    t.client
        .get(format!("https://{ENV_HOST}/connectivity/connectors/shared_uiflow/connections?api-version=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    t.client.post(format!("{}{one}", t.http)).bearer_auth(&token).send().await.unwrap();
    t.client.get(format!("{}/nothing/here", t.http)).send().await.unwrap();
    t.client
        .post(t.dv("workflows(42e26112-838c-471b-b09f-958e640e9303)/Microsoft.Dynamics.CRM.RunDesktopFlow"))
        .send()
        .await
        .unwrap();

    // Act
    let all = t.journal("").await;
    let lists = t.journal("operation=connections.list").await;
    let (status, refused) = t.control(reqwest::Method::GET, "/_mock/journal?operation=connections.lst", None).await;

    // Assert
    assert_eq!(
        operations(&all),
        ["identity.token", "connections.get", "connections.list", "unmatched", "unmatched", "dataverse.runDesktopFlow"]
    );
    assert_eq!(operations(&lists), ["connections.list"]);
    assert_eq!(lists["entries"][0]["host"].as_str().map(|h| h.starts_with(ENV_HOST)), Some(true));
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("InvalidJournalFilter")));
}
