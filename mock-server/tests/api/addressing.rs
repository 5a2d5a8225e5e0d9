//! Real clients unchanged (issue 8, items 1-3): the tenant-level host `api.powerplatform.com`,
//! scopes whose origin carries a port, and every URL the mock hands out served on the host and
//! port the client used. Real hosts are reached as a client that keeps its real base URL
//! would: the name resolved to the mock's https port, the mock's CA trusted.

use crate::helpers::*;
use reqwest::{Client, Method};
use serde_json::{Value, json};

const TENANT_API_HOST: &str = "api.powerplatform.com";
const ORG_HOST: &str = "contosodev.crm.dynamics.com";
const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";

/// A client that resolves every real host to the mock's https port, as `/etc/hosts` would.
fn real_host_client(t: &TestServer) -> Client {
    let addr = t.server.https_addr().unwrap();
    let ca = reqwest::Certificate::from_pem(t.server.ca_pem().unwrap().as_bytes()).unwrap();
    let mut builder = Client::builder().tls_certs_only([ca]).no_proxy();
    for h in ["login.microsoftonline.com", TENANT_API_HOST, ENV_HOST, ORG_HOST, "api.bap.microsoft.com"] {
        builder = builder.resolve(h, addr);
    }
    builder.build().unwrap()
}

fn port(t: &TestServer) -> u16 {
    t.server.https_addr().unwrap().port()
}

/// A client-credentials token of the default service principal from the real identity host.
async fn token(client: &Client, port: u16, scope: &str) -> (u16, Value) {
    let url = format!("https://login.microsoftonline.com:{port}/{TENANT}/oauth2/v2.0/token");
    status_json(client.post(url).form(&cc_form(SP_APP_ID, SP_SECRET, scope)).send().await.unwrap()).await
}

async fn access_token(client: &Client, port: u16, scope: &str) -> String {
    let (s, body) = token(client, port, scope).await;
    assert_eq!(s, 200, "{scope}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn send(client: &Client, method: Method, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn connection_body() -> Value {
    json!({
        "properties": {
            "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{ENV_ID}"), "name": ENV_ID },
            "connectionParametersSet": {
                "name": "azureRelay",
                "values": {
                    "username": { "value": "CONTOSO\\svc-rpa" },
                    "password": { "value": "Contoso-SvcRpa-Passw0rd!" },
                    "targetId": { "value": FINANCE }
                }
            }
        }
    })
}

#[tokio::test]
async fn the_tenant_level_host_serves_the_management_sdks_base_url_over_https() {
    // Arrange: a client that keeps https://api.powerplatform.com as its base URL.
    let t = spawn_server().await;
    let (client, port) = (real_host_client(&t), port(&t));
    let token = access_token(&client, port, PP_SCOPE).await;
    let base = format!("https://{TENANT_API_HOST}:{port}/connectivity/environments/{ENV_ID}");
    let id = "00000000-0000-0000-0000-0000000008a1";
    let one = format!("{base}/connectors/shared_uiflow/connections/{id}?api-version=1");
    // Act
    let (put, created) = send(&client, Method::PUT, &one, &token, Some(connection_body())).await;
    let (get, read) = send(&client, Method::GET, &one, &token, None).await;
    let (list, all) = send(&client, Method::GET, &format!("{base}/connections?api-version=1"), &token, None).await;
    let (other, unknown) =
        send(&client, Method::GET, &format!("https://{TENANT_API_HOST}:{port}/powerautomate/flows"), &token, None)
            .await;
    // Assert
    assert_eq!((put, get, list), (201, 200, 200), "{created} {read} {all}");
    assert_eq!(read["properties"]["statuses"], json!([{ "status": "Connected" }]));
    assert_eq!(all["value"][0]["name"], id);
    assert_eq!((other, unknown["error"]["code"].as_str()), (404, Some("NotImplementedByMock")), "{unknown}");
    let journal = t.entries(JournalFilter::all().surface("powerplatform")).await;
    let entries = journal.as_array().unwrap();
    assert!(entries.iter().all(|e| e["environment"] == ENV_ID && e["sandbox"] == "default"), "{journal}");
}

#[tokio::test]
async fn scopes_whose_origin_carries_a_port_are_that_hosts_audience() {
    let t = spawn_server().await;
    let (client, port) = (real_host_client(&t), port(&t));
    let http_port = t.http.rsplit(':').next().unwrap().to_owned();
    let cases = [
        (
            format!("https://{TENANT_API_HOST}:{port}/.default"),
            format!("https://{TENANT_API_HOST}:{port}/connectivity/environments/{ENV_ID}/connections?api-version=1"),
        ),
        (
            format!("https://{TENANT_API_HOST}:{port}/.default"),
            format!("https://{ENV_HOST}:{port}/connectivity/connections?api-version=1"),
        ),
        (format!("https://{ORG_HOST}:{port}/.default"), format!("https://{ORG_HOST}:{port}/api/data/v9.2/WhoAmI")),
        (format!("https://{ORG_HOST}:443/.default"), format!("{}/dataverse/{ORG}/api/data/v9.2/WhoAmI", t.http)),
        (
            format!("http://127.0.0.1:{http_port}/dataverse/{ORG}/.default"),
            format!("https://{ORG_HOST}:{port}/api/data/v9.2/WhoAmI"),
        ),
        (
            format!("http://127.0.0.1/dataverse/{ORG}/.default"),
            format!("{}/dataverse/{ORG}/api/data/v9.2/WhoAmI", t.http),
        ),
        (
            format!("https://api.bap.microsoft.com:{port}/.default"),
            format!(
                "https://api.bap.microsoft.com:{port}/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{ENV_ID}?api-version=2023-06-01"
            ),
        ),
    ];
    for (scope, url) in cases {
        let (s, body) = token(&client, port, &scope).await;
        assert_eq!(s, 200, "{scope}: {body}");
        assert_eq!(body["scope"], scope, "the scope granted is the one asked");
        let access = body["access_token"].as_str().unwrap();
        let aud = claims(access)["aud"].as_str().unwrap().to_owned();
        assert!(
            !aud.contains(&format!(":{port}")) || aud.contains("/dataverse/"),
            "a real host's aud has no port: {aud}"
        );
        let (s, answer) = send(&client, Method::GET, &url, access, None).await;
        assert_eq!(s, 200, "{scope} on {url}: {answer}");
    }
    // A port does not make an unknown org known.
    let (s, body) = token(&client, port, &format!("https://nowhere.crm.dynamics.com:{port}/.default")).await;
    assert_eq!((s, body["error_codes"][0].as_u64()), (400, Some(500_011)), "{body}");
}

#[tokio::test]
async fn a_connection_made_on_each_door_hands_out_runtime_urls_served_on_that_door() {
    let t = spawn_server().await;
    let (client, port) = (real_host_client(&t), port(&t));
    let token = access_token(&client, port, PP_SCOPE).await;
    let by_path = format!("/connectivity/environments/{ENV_ID}");
    let doors = [
        (format!("https://{ENV_HOST}:{port}"), "/connectivity".to_owned()),
        (format!("https://{TENANT_API_HOST}:{port}"), by_path.clone()),
        (t.http.clone(), by_path.clone()),
        (t.https.clone(), by_path),
    ];
    for (i, (origin, prefix)) in doors.iter().enumerate() {
        let id = format!("00000000-0000-0000-0000-0000000008b{i}");
        let url = format!("{origin}{prefix}/connectors/shared_uiflow/connections/{id}?api-version=1");
        let (s, created) = send(&client, Method::PUT, &url, &token, Some(connection_body())).await;
        assert_eq!(s, 201, "{url}: {created}");
        let runtime = created["properties"]["connectionRuntimeUrl"].as_str().unwrap();
        let test_link = created["properties"]["testLinks"][0]["requestUri"].as_str().unwrap();
        assert_eq!(runtime, format!("{origin}/apim/uiflow/{ENV_ID}/{id}"), "the door's scheme, host and port");
        assert_eq!(test_link, format!("{runtime}/usersession/testconnection"));
        let (s, answer) = send(&client, Method::GET, test_link, &token, None).await;
        assert_eq!((s, answer["status"].as_str()), (200, Some("Connected")), "{test_link}: {answer}");
        // Read back on the same door, the links are the same.
        let (_, read) = send(&client, Method::GET, &url, &token, None).await;
        assert_eq!(read["properties"]["connectionRuntimeUrl"], runtime);
    }
}

#[tokio::test]
async fn the_runtime_path_on_an_environment_host_must_name_that_environment() {
    let t = spawn_server().await;
    let (client, port) = (real_host_client(&t), port(&t));
    let token = access_token(&client, port, PP_SCOPE).await;
    let url = format!(
        "https://{ENV_HOST}:{port}/apim/uiflow/00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-0000000008c1/usersession/testconnection"
    );
    let (s, body) = send(&client, Method::GET, &url, &token, None).await;
    assert_eq!((s, body["error"]["code"].as_str()), (400, Some("EnvironmentHostMismatch")), "{body}");
}

#[tokio::test]
async fn dataverse_urls_are_served_on_the_org_host_and_port_the_client_used() {
    let t = spawn_server().await;
    let (client, port) = (real_host_client(&t), port(&t));
    let scope = format!("https://{ORG_HOST}:{port}/.default");
    let grant = {
        let form = [
            ("grant_type", "password"),
            ("client_id", PUBLIC_CLIENT),
            ("username", USER_UPN),
            ("password", USER_PASSWORD),
            ("scope", scope.as_str()),
        ];
        let url = format!("https://login.microsoftonline.com:{port}/{TENANT}/oauth2/v2.0/token");
        status_json(client.post(url).form(&form).send().await.unwrap()).await
    };
    assert_eq!(grant.0, 200, "{}", grant.1);
    let megan = grant.1["access_token"].as_str().unwrap().to_owned();
    let base = format!("https://{ORG_HOST}:{port}/api/data/v9.2");
    // A create hands out OData-EntityId and Location on the same host and port.
    let r = client
        .post(format!("{base}/flowmachinegroups"))
        .bearer_auth(&megan)
        .json(&json!({ "name": "Night shift" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let entity = r.headers()["odata-entityid"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["location"].to_str().unwrap(), entity);
    assert!(entity.starts_with(&format!("{base}/flowmachinegroups(")), "{entity}");
    let (s, row) = send(&client, Method::GET, &entity, &megan, None).await;
    assert_eq!((s, row["name"].as_str()), (200, Some("Night shift")), "{row}");
    assert!(row["@odata.context"].as_str().unwrap().starts_with(&format!("{base}/$metadata#")), "{row}");
    // Paging hands out next links on the same host and port.
    let r = client
        .get(format!("{base}/flowmachines?$select=name"))
        .bearer_auth(&megan)
        .header("prefer", "odata.maxpagesize=1")
        .send()
        .await
        .unwrap();
    let (_, page) = status_json(r).await;
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{base}/flowmachines?")), "{next}");
    let (s, _) = send(&client, Method::GET, next, &megan, None).await;
    assert_eq!(s, 200);
}
