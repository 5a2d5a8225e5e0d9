//! The Dataverse Web API subset over real loopback HTTP and HTTPS: the machine tables as
//! OData, writes with If-Match, WhoAmI, EntityDefinitions, and each error envelope.

use crate::helpers::*;
use serde_json::{Value, json};

const BUILD01_GROUP: &str = "fbd9ef90-eb39-437b-a791-919993c57260";
const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const HR: &str = "d8ffb0fe-5a78-4d28-abf4-b5c4167600be";
const SP_SYSTEMUSER: &str = "bb616485-1ba2-4625-8cf8-34ad1018aa27";

impl TestServer {
    async fn dv_token(&self) -> String {
        self.sp_token(&format!("{}/dataverse/{ORG}/.default", self.http)).await
    }

    async fn megan_dv_token(&self) -> String {
        let grant = self.user_grant("https://contosodev.crm.dynamics.com/.default").await;
        grant["access_token"].as_str().unwrap().to_owned()
    }

    async fn dv_send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.request(method, url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}

fn names(v: &Value) -> Vec<String> {
    v["value"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_group_id_of_a_machine_is_found_in_dataverse_and_creates_the_connection() {
    // Arrange
    let t = spawn_server().await;
    let dv = t.dv_token().await;
    // Act: find the machine's group, as the seed page says.
    let (s, _, found) = t
        .dv_send(
            reqwest::Method::GET,
            &t.dv("flowmachines?$filter=name eq 'BUILD-01'&$select=name,_flowmachinegroupid_value"),
            &dv,
            &[],
            None,
        )
        .await;
    let group = found["value"][0]["_flowmachinegroupid_value"].as_str().unwrap().to_owned();
    let pp = t.sp_token(PP_SCOPE).await;
    let put = json!({ "properties": {
        "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{ENV_ID}"), "name": ENV_ID },
        "connectionParametersSet": { "name": "azureRelay", "values": {
            "username": { "value": ".\\rpa" }, "password": { "value": "Build01-Rpa-Passw0rd!" }, "targetId": { "value": group } } } } });
    let r = t
        .client
        .put(format!("{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/00000000-0000-0000-0000-00000000d001?api-version=1", t.http))
        .bearer_auth(&pp)
        .json(&put)
        .send()
        .await
        .unwrap();
    // Assert
    assert_eq!(s, 200);
    assert_eq!(group, BUILD01_GROUP);
    assert_eq!(found["value"][0].as_object().unwrap().len(), 4, "name, group, key and etag only: {found}");
    let (status, c) = status_json(r).await;
    assert_eq!((status, c["properties"]["statuses"][0]["status"].as_str()), (201, Some("Connected")));
}

#[tokio::test]
async fn a_principal_reads_only_the_machines_and_groups_it_owns_or_that_are_shared_with_it() {
    let t = spawn_server().await;
    let sp = t.dv_token().await;
    let megan = t.megan_dv_token().await;
    let (_, _, sp_machines) =
        t.dv_send(reqwest::Method::GET, &t.dv("flowmachines?$select=name&$orderby=name"), &sp, &[], None).await;
    assert_eq!(names(&sp_machines), vec!["BUILD-01", "FIN-01", "FIN-02"], "a group share cascades to its machines");
    let (_, _, megan_machines) =
        t.dv_send(reqwest::Method::GET, &t.dv("flowmachines?$select=name&$orderby=name desc"), &megan, &[], None).await;
    assert_eq!(names(&megan_machines), vec!["HR-01", "FIN-02", "FIN-01", "BUILD-01"]);
    let (s, _, hidden) =
        t.dv_send(reqwest::Method::GET, &t.dv(&format!("flowmachinegroups({HR})")), &sp, &[], None).await;
    assert_eq!((s, hidden["error"]["code"].as_str()), (404, Some("0x80040217")));
    insta::assert_json_snapshot!("dataverse_record_not_found", hidden);
    let (s, _, by_group) = t
        .dv_send(
            reqwest::Method::GET,
            &t.dv(&format!("flowmachines?$filter=_flowmachinegroupid_value eq {FINANCE}&$select=name&$count=true")),
            &sp,
            &[],
            None,
        )
        .await;
    assert_eq!((s, by_group["@odata.count"].as_u64()), (200, Some(2)));
}

#[tokio::test]
async fn paging_follows_next_links_until_every_row_is_read() {
    let t = spawn_server().await;
    let megan = t.megan_dv_token().await;
    let mut url = t.dv("flowmachines?$select=name&$orderby=name");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (s, h, page) =
            t.dv_send(reqwest::Method::GET, &url, &megan, &[("prefer", "odata.maxpagesize=3")], None).await;
        assert_eq!(s, 200);
        assert_eq!(h["preference-applied"], "odata.maxpagesize=3");
        seen.extend(names(&page));
        pages += 1;
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((pages, seen), (2, vec!["BUILD-01".to_owned(), "FIN-01".into(), "FIN-02".into(), "HR-01".into()]));
}

#[tokio::test]
async fn a_group_is_created_renamed_with_if_match_and_deleted_only_when_empty() {
    // Arrange
    let t = spawn_server().await;
    let megan = t.megan_dv_token().await;
    // Act + Assert: create, 204 with OData-EntityId.
    let (s, h, _) = t
        .dv_send(reqwest::Method::POST, &t.dv("flowmachinegroups"), &megan, &[], Some(json!({ "name": "Night shift" })))
        .await;
    assert_eq!(s, 204);
    let location = h["odata-entityid"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&t.dv("flowmachinegroups(")), "{location}");
    // With Prefer: return=representation, 201 and the row.
    let (s, _, row) = t
        .dv_send(
            reqwest::Method::POST,
            &t.dv("flowmachinegroups"),
            &megan,
            &[("prefer", "return=representation")],
            Some(json!({ "name": "Day shift" })),
        )
        .await;
    assert_eq!((s, row["name"].as_str(), row["flowgrouptype"].as_i64()), (201, Some("Day shift"), Some(545_940_001)));
    // A stale ETag is refused; the current one or * succeeds.
    let (s, _, stale) = t
        .dv_send(reqwest::Method::PATCH, &location, &megan, &[("if-match", "W/\"7\"")], Some(json!({ "name": "x" })))
        .await;
    assert_eq!((s, stale["error"]["code"].as_str()), (412, Some("0x80060882")));
    insta::assert_json_snapshot!("dataverse_version_mismatch", stale);
    let (s, _, _) = t
        .dv_send(
            reqwest::Method::PATCH,
            &location,
            &megan,
            &[("if-match", "W/\"1\"")],
            Some(json!({ "name": "Night" })),
        )
        .await;
    assert_eq!(s, 204);
    let (_, _, now) = t.dv_send(reqwest::Method::GET, &location, &megan, &[], None).await;
    assert_eq!((now["name"].as_str(), now["@odata.etag"].as_str()), (Some("Night"), Some("W/\"2\"")));
    // A group with machines cannot be deleted; an empty one can.
    let (s, _, busy) =
        t.dv_send(reqwest::Method::DELETE, &t.dv(&format!("flowmachinegroups({FINANCE})")), &megan, &[], None).await;
    assert_eq!((s, busy["error"]["code"].as_str()), (400, Some("MachineGroupNotEmpty")));
    insta::assert_json_snapshot!("dataverse_group_not_empty", busy);
    let (s, _, _) = t.dv_send(reqwest::Method::DELETE, &location, &megan, &[("if-match", "*")], None).await;
    assert_eq!(s, 204);
    let (s, _, _) = t.dv_send(reqwest::Method::GET, &location, &megan, &[], None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_user_share_may_read_a_group_but_not_rename_it() {
    let t = spawn_server().await;
    let sp = t.dv_token().await;
    let (s, _, e) = t
        .dv_send(
            reqwest::Method::PATCH,
            &t.dv(&format!("flowmachinegroups({FINANCE})")),
            &sp,
            &[],
            Some(json!({ "name": "mine" })),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")));
    insta::assert_json_snapshot!("dataverse_missing_privilege", e);
}

#[tokio::test]
async fn who_am_i_and_entity_definitions_answer_what_client_libraries_ask_first() {
    let t = spawn_server().await;
    let sp = t.dv_token().await;
    let (s, _, me) = t.dv_send(reqwest::Method::GET, &t.dv("WhoAmI()"), &sp, &[], None).await;
    assert_eq!(
        (s, me["UserId"].as_str(), me["OrganizationId"].as_str()),
        (200, Some(SP_SYSTEMUSER), Some("093ab4e1-6f72-4fdf-beec-55bf5a2ced8d"))
    );
    let (s, _, defs) = t
        .dv_send(reqwest::Method::GET, &t.dv("EntityDefinitions?%24select=LogicalName%2CEntitySetName%2CPrimaryIdAttribute&%24filter=LogicalName+eq+%27flowmachinegroup%27"), &sp, &[], None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        defs["value"],
        json!([{ "LogicalName": "flowmachinegroup", "EntitySetName": "flowmachinegroups", "PrimaryIdAttribute": "flowmachinegroupid" }])
    );
    let (_, _, none) = t
        .dv_send(reqwest::Method::GET, &t.dv("EntityDefinitions?$filter=LogicalName eq 'account'"), &sp, &[], None)
        .await;
    assert_eq!(none["value"], json!([]));
    let (_, _, one) =
        t.dv_send(reqwest::Method::GET, &t.dv("EntityDefinitions(LogicalName='flowmachine')"), &sp, &[], None).await;
    assert_eq!(one["PrimaryNameAttribute"], "name");
    let (_, _, picks) = t
        .dv_send(
            reqwest::Method::GET,
            &t.dv("EntityDefinitions(LogicalName='flowmachinegroup')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options)"),
            &sp,
            &[],
            None,
        )
        .await;
    let options = &picks["value"][0]["OptionSet"]["Options"];
    assert_eq!(options[2]["Value"], 545_940_002);
    assert_eq!(options[2]["Label"]["LocalizedLabels"][0]["Label"], "Default");
    let (_, _, users) = t
        .dv_send(
            reqwest::Method::GET,
            &t.dv(&format!("systemusers?$filter=applicationid eq {SP_APP_ID}")),
            &sp,
            &[],
            None,
        )
        .await;
    assert_eq!(users["value"][0]["systemuserid"], SP_SYSTEMUSER, "an application user is found by its app id");
}

#[tokio::test]
async fn each_dataverse_error_has_its_code_and_envelope() {
    let t = spawn_server().await;
    let sp = t.dv_token().await;
    let pp = t.sp_token(PP_SCOPE).await;
    let frank = {
        let r = t
            .token(
                OTHER_TENANT,
                &[
                    ("grant_type", "password"),
                    ("client_id", PUBLIC_CLIENT),
                    ("username", "frank@fabrikam.onmicrosoft.com"),
                    ("password", "Frank-Test-Passw0rd!"),
                    ("scope", "https://contosodev.crm.dynamics.com/.default"),
                ],
            )
            .await;
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    };
    let cases = vec![
        ("wrong_audience", reqwest::Method::GET, t.dv("flowmachines"), pp.as_str(), None, 401, "0x80072560"),
        ("not_a_member", reqwest::Method::GET, t.dv("flowmachines"), frank.as_str(), None, 403, "0x80072560"),
        (
            "unknown_property",
            reqwest::Method::GET,
            t.dv("flowmachines?$select=nope"),
            sp.as_str(),
            None,
            400,
            "0x80060888",
        ),
        (
            "bad_filter",
            reqwest::Method::GET,
            t.dv("flowmachines?$filter=name eq 'x' or name eq 'y'"),
            sp.as_str(),
            None,
            400,
            "0x80060888",
        ),
        ("bad_key", reqwest::Method::GET, t.dv("flowmachines(BUILD-01)"), sp.as_str(), None, 400, "0x80060888"),
        (
            "invalid_property_on_create",
            reqwest::Method::POST,
            t.dv("flowmachinegroups"),
            sp.as_str(),
            Some(json!({ "nme": "x" })),
            400,
            "0x80060888",
        ),
        (
            "name_required",
            reqwest::Method::POST,
            t.dv("flowmachinegroups"),
            sp.as_str(),
            Some(json!({ "description": "x" })),
            400,
            "0x80040203",
        ),
        (
            "method_not_allowed",
            reqwest::Method::PUT,
            t.dv("flowmachines"),
            sp.as_str(),
            Some(json!({})),
            405,
            "MethodNotAllowed",
        ),
        (
            "unknown_org",
            reqwest::Method::GET,
            format!("{}/dataverse/nowhere/api/data/v9.2/flowmachines", t.http),
            sp.as_str(),
            None,
            401,
            "0x80072560",
        ),
    ];
    for (name, method, url, token, body, status, code) in cases {
        let (s, _, e) = t.dv_send(method, &url, token, &[], body).await;
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{name}: {e}");
        insta::assert_json_snapshot!(format!("dataverse_error_{name}"), mock_server::normalise::normalise(&e));
    }
}

#[tokio::test]
async fn patch_without_if_match_creates_a_missing_row_and_with_if_match_star_does_not() {
    let t = spawn_server().await;
    let megan = t.megan_dv_token().await;
    let url = t.dv("flowmachinegroups(00000000-0000-0000-0000-0000000000e1)");
    let (s, _, e) = t
        .dv_send(reqwest::Method::PATCH, &url, &megan, &[("if-match", "*")], Some(json!({ "name": "Upserted" })))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("0x80040217")), "If-Match: * never creates");
    let (s, h, _) = t.dv_send(reqwest::Method::PATCH, &url, &megan, &[], Some(json!({ "name": "Upserted" }))).await;
    assert_eq!(s, 204);
    assert_eq!(h["odata-entityid"].to_str().unwrap(), url);
    let (s, _, row) = t.dv_send(reqwest::Method::GET, &url, &megan, &[], None).await;
    assert_eq!((s, row["name"].as_str()), (200, Some("Upserted")));
}

#[tokio::test]
async fn the_whole_service_principal_journey_leaves_a_journal_that_matches_its_snapshot() {
    // Arrange: the seed journey end to end, as a client would run it.
    let t = spawn_server().await;
    let dv = t.dv_token().await;
    let pp = t.sp_token(PP_SCOPE).await;
    let (_, _, found) = t
        .dv_send(
            reqwest::Method::GET,
            &t.dv("flowmachines?$filter=name eq 'FIN-01'&$select=name,_flowmachinegroupid_value"),
            &dv,
            &[],
            None,
        )
        .await;
    let group = found["value"][0]["_flowmachinegroupid_value"].as_str().unwrap().to_owned();
    let one = format!(
        "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/d4e4a6ff-9a67-492a-a1f6-de854528668c?api-version=1",
        t.http
    );
    let body = json!({ "properties": {
        "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{ENV_ID}"), "name": ENV_ID },
        "connectionParametersSet": { "name": "azureRelay", "values": {
            "username": { "value": "CONTOSO\\svc-rpa" }, "password": { "value": "Contoso-SvcRpa-Passw0rd!" }, "targetId": { "value": group } } } } });
    // Act
    t.dv_send(reqwest::Method::PUT, &one, &pp, &[], Some(body)).await;
    t.dv_send(reqwest::Method::GET, &one, &pp, &[], None).await;
    t.dv_send(
        reqwest::Method::GET,
        &format!("{}/connectivity/environments/{ENV_ID}/connections?api-version=1", t.http),
        &pp,
        &[],
        None,
    )
    .await;
    t.dv_send(reqwest::Method::DELETE, &one, &pp, &[], None).await;
    // Assert
    let mut journal = t.entries_normalised(JournalFilter::all()).await;
    for e in journal.as_array_mut().unwrap() {
        e["headers"].as_object_mut().unwrap().remove("user-agent");
    }
    let statuses: Vec<u64> = journal.as_array().unwrap().iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![200, 200, 200, 201, 200, 200, 200]);
    let text = journal.to_string();
    assert!(!text.contains("Contoso-SvcRpa-Passw0rd!") && !text.contains(SP_SECRET) && !text.contains("eyJ"));
    insta::assert_json_snapshot!("journey_whole_journal", journal);
}
