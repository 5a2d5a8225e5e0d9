//! The service-principal journey of `connection-with-service-principal.md` and every rule of
//! the connections API, over real loopback HTTP and HTTPS.

use crate::helpers::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const HR: &str = "d8ffb0fe-5a78-4d28-abf4-b5c4167600be";
const BUILD01_GROUP: &str = "fbd9ef90-eb39-437b-a791-919993c57260";
const BUILD01_MACHINE: &str = "78afb281-eb1e-4e35-ba11-9460dcabf47a";
const DOMAIN_ACCOUNT: &str = "CONTOSO\\svc-rpa";
const DOMAIN_PASSWORD: &str = "Contoso-SvcRpa-Passw0rd!";

/// The seed's body, exactly.
fn seed_body(env: &str, user: &str, password: &str, group: &str) -> Value {
    json!({
        "properties": {
            "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{env}"), "name": env },
            "connectionParametersSet": {
                "name": "azureRelay",
                "values": {
                    "username": { "value": user },
                    "password": { "value": password },
                    "targetId": { "value": group }
                }
            }
        }
    })
}

impl TestServer {
    fn env_host_url(&self, rest: &str) -> String {
        let port = self.server.https_addr().unwrap().port();
        format!("https://{ENV_HOST}:{port}/connectivity{rest}")
    }

    fn env_path_url(&self, rest: &str) -> String {
        format!("{}/connectivity/environments/{ENV_ID}{rest}", self.http)
    }

    async fn put_json(&self, url: &str, token: &str, body: &Value) -> (u16, Value) {
        status_json(self.client.put(url).bearer_auth(token).json(body).send().await.unwrap()).await
    }

    async fn get_json(&self, url: &str, token: &str) -> (u16, Value) {
        status_json(self.client.get(url).bearer_auth(token).send().await.unwrap()).await
    }
}

#[tokio::test]
async fn the_service_principal_journey_creates_reads_lists_and_deletes_a_connection_on_the_environment_host() {
    // Arrange: token, then the group id of the machine (here: the shared group).
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let id = "d4e4a6ff-9a67-492a-a1f6-de854528668c";
    let url = t.env_host_url(&format!("/connectors/shared_uiflow/connections/{id}?api-version=1"));
    // Act
    let r = t
        .client
        .put(&url)
        .bearer_auth(&token)
        .header("accept", "application/json")
        .json(&seed_body(ENV_ID, DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE))
        .send()
        .await
        .unwrap();
    let (status, created) = status_json(r).await;
    // Assert
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], id);
    assert_eq!(created["id"], format!("/providers/Microsoft.PowerApps/apis/shared_uiflow/connections/{id}"));
    assert_eq!(created["properties"]["statuses"], json!([{ "status": "Connected" }]));
    assert_eq!(created["properties"]["connectionParametersSet"]["values"]["targetId"]["value"], FINANCE);
    assert_eq!(created["properties"]["connectionParametersSet"]["values"]["username"]["value"], DOMAIN_ACCOUNT);
    assert_eq!(created["properties"]["createdBy"]["type"], "ServicePrincipal");
    assert_eq!(created["properties"]["environment"]["name"], ENV_ID);
    assert!(!created.to_string().contains(DOMAIN_PASSWORD), "no secret in the response");

    let (s, got) = t.get_json(&url, &token).await;
    assert_eq!((s, got["name"].as_str()), (200, Some(id)));
    let (s, all) = t.get_json(&t.env_host_url("/connections?api-version=1"), &token).await;
    assert_eq!((s, all["value"].as_array().unwrap().len()), (200, 1));
    let (s, per) = t.get_json(&t.env_host_url("/connectors/shared_uiflow/connections?api-version=1"), &token).await;
    assert_eq!((s, per["value"][0]["name"].as_str()), (200, Some(id)));
    let r = t.client.delete(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, gone) = t.get_json(&url, &token).await;
    assert_eq!((s, gone["error"]["code"].as_str()), (404, Some("ConnectionNotFound")));

    let journal = t.entries_normalised(JournalFilter::all().method("PUT")).await;
    let mut put = journal[0].clone();
    put["headers"].as_object_mut().unwrap().remove("user-agent");
    insta::assert_json_snapshot!("journey_put_connection", put);
    let raw = t.entries(JournalFilter::all()).await.to_string();
    assert!(!raw.contains(DOMAIN_PASSWORD) && !raw.contains(SP_SECRET) && !raw.contains(&token));
}

#[tokio::test]
async fn the_path_door_serves_the_same_connections_and_a_second_put_updates() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let id = "d4e4a6ff9a67492aa1f6de854528668c";
    let url = t.env_path_url(&format!("/connectors/shared_uiflow/connections/{id}?api-version=1"));
    let (s, c) = t.put_json(&url, &token, &seed_body(ENV_ID, DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE)).await;
    assert_eq!((s, c["name"].as_str()), (201, Some(id)), "the 32-hex form is echoed as given");
    let mut again = seed_body(ENV_ID, DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE);
    again["properties"]["displayName"] = json!("Finance bots (pipeline)");
    let hyphenated =
        t.env_host_url("/connectors/shared_uiflow/connections/d4e4a6ff-9a67-492a-a1f6-de854528668c?api-version=1");
    let (s, u) = t.put_json(&hyphenated, &token, &again).await;
    assert_eq!(
        (s, u["properties"]["displayName"].as_str(), u["name"].as_str()),
        (200, Some("Finance bots (pipeline)"), Some(id))
    );
}

#[tokio::test]
async fn a_loopback_call_without_an_environment_uses_the_filter_the_body_or_the_only_environment() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let base = format!("{}/connectivity/connectors/shared_uiflow/connections", t.http);
    let (s, _) = t
        .put_json(
            &format!("{base}/00000000-0000-0000-0000-000000000001?api-version=1"),
            &token,
            &seed_body(ENV_ID, DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE),
        )
        .await;
    assert_eq!(s, 201, "from the body");
    let filter =
        format!("{base}/00000000-0000-0000-0000-000000000001?api-version=1&%24filter=environment+eq+%27{ENV_ID}%27");
    assert_eq!(t.get_json(&filter, &token).await.0, 200, "from $filter");
    let (s, list) = t.get_json(&format!("{}/connectivity/connections?api-version=1", t.http), &token).await;
    assert_eq!((s, list["value"].as_array().unwrap().len()), (200, 1), "the only environment");
}

#[tokio::test]
async fn wrong_credentials_give_201_with_an_error_status_naming_the_machine() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let url =
        t.env_path_url("/connectors/shared_uiflow/connections/00000000-0000-0000-0000-000000000002?api-version=1");
    let (s, c) = t.put_json(&url, &token, &seed_body(ENV_ID, DOMAIN_ACCOUNT, "wrong", FINANCE)).await;
    assert_eq!(s, 201);
    let status = &c["properties"]["statuses"][0];
    assert_eq!(status["status"], "Error");
    assert_eq!(status["error"]["code"], "WindowsIdentityIncorrect");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Details: Connection failed: [Machine 022701dd-0a3a-4ba3-9dbc-b24e4ec4ae0f]. There's an issue with your credentials. Check your credentials or use different credentials to connect to the machine. Correlation id: "), "{message}");
}

#[tokio::test]
async fn a_stand_alone_machine_is_targeted_through_its_own_group_with_a_local_account() {
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let url =
        t.env_path_url("/connectors/shared_uiflow/connections/00000000-0000-0000-0000-000000000003?api-version=1");
    let (s, c) = t.put_json(&url, &token, &seed_body(ENV_ID, ".\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP)).await;
    assert_eq!((s, c["properties"]["statuses"][0]["status"].as_str()), (201, Some("Connected")), "{c}");
    let (s, e) = t.put_json(&url, &token, &seed_body(ENV_ID, ".\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_MACHINE)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("TargetGroupNotFound")));
    assert!(
        e["error"]["message"].as_str().unwrap().contains(BUILD01_GROUP),
        "the error points at the machine's group: {e}"
    );
}

/// A connection-API error: how to provoke it and what must come back.
struct Case {
    name: &'static str,
    url: String,
    token: Option<String>,
    body: Option<Value>,
    status: u16,
    code: &'static str,
}

#[tokio::test]
async fn each_connection_rule_has_its_status_code_and_envelope() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let bap = t.sp_token("https://api.bap.microsoft.com/.default").await;
    let fabrikam = {
        let r = t
            .token(
                OTHER_TENANT,
                &cc_form("12f1f385-c7d1-4502-b1e9-4e5d3c8f0b70", "mock-fabrikam-secret~0002", PP_SCOPE),
            )
            .await;
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    };
    let expired = {
        let keys = mock_server::tokens::Keys::fixed_test_key();
        let mut c: mock_server::tokens::Claims = serde_json::from_value(claims(&sp)).unwrap();
        c.exp = c.iat - 10;
        keys.sign(&c)
    };
    let one = |id: &str, q: &str| t.env_path_url(&format!("/connectors/shared_uiflow/connections/{id}{q}"));
    let good = seed_body(ENV_ID, DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE);
    let mut no_password = good.clone();
    no_password["properties"]["connectionParametersSet"]["values"].as_object_mut().unwrap().remove("password");
    let mut bad_set = good.clone();
    bad_set["properties"]["connectionParametersSet"]["name"] = json!("basicAuth");
    let mut later_set = good.clone();
    later_set["properties"]["connectionParametersSet"]["name"] = json!("onPremisesDataGateway");
    let mut target_not_guid = good.clone();
    target_not_guid["properties"]["connectionParametersSet"]["values"]["targetId"] = json!({"value": "BUILD-01"});
    let mut username_number = good.clone();
    username_number["properties"]["connectionParametersSet"]["values"]["username"] = json!({"value": 7});
    let id = "00000000-0000-0000-0000-0000000000c1";
    let q = "?api-version=1";
    let cases = vec![
        Case {
            name: "no_token",
            url: one(id, q),
            token: None,
            body: Some(good.clone()),
            status: 401,
            code: "InvalidAuthenticationToken",
        },
        Case {
            name: "expired_token",
            url: one(id, q),
            token: Some(expired),
            body: Some(good.clone()),
            status: 401,
            code: "InvalidAuthenticationToken",
        },
        Case {
            name: "wrong_audience",
            url: one(id, q),
            token: Some(bap),
            body: Some(good.clone()),
            status: 401,
            code: "InvalidAuthenticationToken",
        },
        Case {
            name: "missing_api_version",
            url: one(id, ""),
            token: Some(sp.clone()),
            body: Some(good.clone()),
            status: 400,
            code: "MissingApiVersionParameter",
        },
        Case {
            name: "unknown_api_version",
            url: one(id, "?api-version=banana"),
            token: Some(sp.clone()),
            body: Some(good.clone()),
            status: 400,
            code: "InvalidApiVersionParameter",
        },
        Case {
            name: "malformed_connection_id",
            url: one("not-a-guid", q),
            token: Some(sp.clone()),
            body: Some(good.clone()),
            status: 400,
            code: "InvalidConnectionId",
        },
        Case {
            name: "unknown_connector",
            url: t.env_path_url(&format!("/connectors/shared_sql/connections/{id}{q}")),
            token: Some(sp.clone()),
            body: Some(good.clone()),
            status: 404,
            code: "ConnectorNotFound",
        },
        Case {
            name: "body_environment_differs",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(seed_body("00000000-0000-0000-0000-000000000000", DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE)),
            status: 400,
            code: "EnvironmentMismatch",
        },
        Case {
            name: "unknown_environment",
            url: format!(
                "{}/connectivity/environments/00000000-0000-0000-0000-000000000000/connectors/shared_uiflow/connections/{id}{q}",
                t.http
            ),
            token: Some(sp.clone()),
            body: Some(seed_body("00000000-0000-0000-0000-000000000000", DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE)),
            status: 404,
            code: "ServiceToServiceEnvironmentNotFound",
        },
        Case {
            name: "another_tenants_principal",
            url: one(id, q),
            token: Some(fabrikam),
            body: Some(good.clone()),
            status: 403,
            code: "ConnectionAuthorizationFailed",
        },
        Case {
            name: "unknown_target_group",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(seed_body(ENV_ID, DOMAIN_ACCOUNT, DOMAIN_PASSWORD, "00000000-0000-0000-0000-0000000000ff")),
            status: 400,
            code: "TargetGroupNotFound",
        },
        Case {
            name: "target_not_a_guid",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(target_not_guid),
            status: 400,
            code: "InvalidConnectionParameter",
        },
        Case {
            name: "username_not_a_string",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(username_number),
            status: 400,
            code: "InvalidConnectionParameter",
        },
        Case {
            name: "group_not_shared_with_caller",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(seed_body(ENV_ID, "HR-01\\rpa", "Hr01-Rpa-Passw0rd!", HR)),
            status: 403,
            code: "ConnectionAuthorizationFailed",
        },
        Case {
            name: "missing_password",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(no_password),
            status: 400,
            code: "MissingConnectionParameter",
        },
        Case {
            name: "unknown_parameter_set",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(bad_set),
            status: 400,
            code: "InvalidConnectionParameterSet",
        },
        Case {
            name: "gateway_parameter_set_not_emulated",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(later_set),
            status: 404,
            code: "NotImplementedByMock",
        },
        Case {
            name: "no_properties",
            url: one(id, q),
            token: Some(sp.clone()),
            body: Some(json!({})),
            status: 400,
            code: "InvalidRequestContent",
        },
        Case {
            name: "connection_not_found",
            url: one(id, q),
            token: Some(sp.clone()),
            body: None,
            status: 404,
            code: "ConnectionNotFound",
        },
    ];
    for c in cases {
        let mut req = match &c.body {
            Some(b) => t.client.put(&c.url).json(b),
            None => t.client.get(&c.url),
        };
        if let Some(tok) = &c.token {
            req = req.bearer_auth(tok);
        }
        let r = req.send().await.unwrap();
        let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = status_json(r).await;
        assert_eq!((status, body["error"]["code"].as_str()), (c.status, Some(c.code)), "{}: {body}", c.name);
        if status == 401 {
            assert!(www.is_some_and(|w| w.starts_with("Bearer ")), "{}: 401 carries WWW-Authenticate", c.name);
        }
        insta::assert_json_snapshot!(format!("connection_error_{}", c.name), mock_server::normalise::normalise(&body));
    }
    let (_, list) = t.get_json(&t.env_path_url("/connections?api-version=1"), &sp).await;
    assert_eq!(list["value"], json!([]), "no refused PUT stored anything");
}

#[tokio::test]
async fn bap_metadata_leads_a_client_from_the_environment_id_to_the_dataverse_door() {
    let t = spawn_server().await;
    let token = t.sp_token("https://api.bap.microsoft.com/.default").await;
    let path =
        format!("/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{ENV_ID}?api-version=2023-06-01");
    let (s, env) = t.get_json(&format!("{}{path}", t.http), &token).await;
    assert_eq!(s, 200, "{env}");
    assert_eq!(env["properties"]["linkedEnvironmentMetadata"]["instanceUrl"], format!("{}/dataverse/{ORG}/", t.http));
    let port = t.server.https_addr().unwrap().port();
    let (s, real) = t.get_json(&format!("https://api.bap.microsoft.com:{port}{path}"), &token).await;
    assert_eq!(s, 200);
    assert_eq!(
        real["properties"]["linkedEnvironmentMetadata"]["instanceUrl"],
        format!("https://contosodev.crm.dynamics.com:{port}/"),
        "the org host keeps the port the client used"
    );
    let missing = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/00000000-0000-0000-0000-000000000000?api-version=2023-06-01";
    let (s, e) = t.get_json(&format!("{}{missing}", t.http), &token).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("EnvironmentNotFound")));
    assert_eq!(
        e["error"]["message"],
        "The environment '00000000-0000-0000-0000-000000000000' could not be found in the tenant."
    );
}

fn put_body() -> impl Strategy<Value = Value> {
    let group = prop_oneof![
        Just(FINANCE.to_owned()),
        Just(HR.to_owned()),
        Just(BUILD01_GROUP.to_owned()),
        Just(BUILD01_MACHINE.to_owned()),
        "[a-f0-9-]{0,36}"
    ];
    let user = prop_oneof![Just(DOMAIN_ACCOUNT.to_owned()), Just(".\\rpa".to_owned()), "[ -~]{0,12}"];
    let password =
        prop_oneof![Just(DOMAIN_PASSWORD.to_owned()), Just("Build01-Rpa-Passw0rd!".to_owned()), "[ -~]{0,12}"];
    let set = prop_oneof![Just("azureRelay".to_owned()), Just("passwordlessAttended".to_owned()), "[a-zA-Z]{0,10}"];
    let env = prop_oneof![Just(Some(ENV_ID.to_owned())), Just(None), Just(Some("x".to_owned()))];
    let drop_key = prop_oneof![Just(None), Just(Some("username")), Just(Some("password")), Just(Some("targetId"))];
    (group, user, password, set, env, drop_key).prop_map(|(g, u, p, s, e, drop)| {
        let mut values = json!({ "username": { "value": u }, "password": { "value": p }, "targetId": { "value": g } });
        if let Some(k) = drop {
            values.as_object_mut().unwrap().remove(k);
        }
        let mut props = json!({ "connectionParametersSet": { "name": s, "values": values } });
        if let Some(e) = e {
            props["environment"] = json!({ "name": e });
        }
        json!({ "properties": props })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_put_bodies_get_a_2xx_or_a_4xx_envelope_and_never_a_half_written_connection(bodies in proptest::collection::vec(put_body(), 1..6)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = spawn_server().await;
            let token = t.sp_token(PP_SCOPE).await;
            let mut created = 0;
            for (i, b) in bodies.iter().enumerate() {
                let url = t.env_path_url(&format!("/connectors/shared_uiflow/connections/00000000-0000-0000-0000-{i:012}?api-version=1"));
                let (s, v) = t.put_json(&url, &token, b).await;
                assert!(s < 500, "{b} -> {s} {v}");
                if s == 201 {
                    created += 1;
                    assert_eq!(v["properties"]["connectionParametersSet"]["name"], "azureRelay");
                } else {
                    assert!(v["error"]["code"].is_string(), "{v}");
                }
            }
            let (_, list) = t.get_json(&t.env_path_url("/connections?api-version=1"), &token).await;
            let stored = list["value"].as_array().unwrap();
            assert_eq!(stored.len(), created, "exactly the accepted PUTs are stored");
            for c in stored {
                let target = c["properties"]["connectionParametersSet"]["values"]["targetId"]["value"].as_str().unwrap();
                assert!([FINANCE, BUILD01_GROUP].contains(&target), "only groups the caller may use: {target}");
                assert!(!c.to_string().contains("password"), "no secret echoed: {c}");
            }
        });
    }
}
