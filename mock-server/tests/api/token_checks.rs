//! Token checks at every API (issue 8, item 4): a known `kid`, `nbf` with at most 5 s of
//! leeway, the issuer's form and tenant, and the sandbox incarnation a token was issued in.
//! Tokens are crafted from a real one, re-signed with the fixture key, so that only the
//! claim under test is wrong.

use crate::helpers::*;
use mock_server::tokens::{Claims, Keys};
use reqwest::Method;
use serde_json::Value;

/// One emulated API: a URL that answers 200 to the default service principal, and the scope
/// its token is asked for.
struct Api {
    name: &'static str,
    url: String,
    scope: String,
}

fn apis(t: &TestServer) -> Vec<Api> {
    vec![
        Api {
            name: "powerplatform",
            url: format!("{}/connectivity/environments/{ENV_ID}/connections?api-version=1", t.http),
            scope: PP_SCOPE.into(),
        },
        Api { name: "dataverse", url: t.dv("WhoAmI"), scope: "https://contosodev.crm.dynamics.com/.default".into() },
        Api {
            name: "bap",
            url: format!(
                "{}/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{ENV_ID}?api-version=2023-06-01",
                t.http
            ),
            scope: "https://api.bap.microsoft.com/.default".into(),
        },
        Api {
            // A connection that does not exist: the token is checked first, so a good one
            // reaches the 404 and a bad one stops at 401.
            name: "runtime",
            url: format!(
                "{}/apim/uiflow/{ENV_ID}/00000000-0000-0000-0000-0000000009a1/usersession/testconnection",
                t.http
            ),
            scope: PP_SCOPE.into(),
        },
    ]
}

async fn call(t: &TestServer, url: &str, token: &str) -> (u16, Value) {
    let r = t.client.request(Method::GET, url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 401 {
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "401 names Bearer");
    }
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The token's claims with `change` applied, signed with the fixture key under `kid`
/// (`None`: no `kid` in the header).
fn craft(token: &str, kid: Option<&str>, change: impl FnOnce(&mut Claims)) -> String {
    let mut c: Claims = serde_json::from_value(claims(token)).unwrap();
    change(&mut c);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(fixtures::TOKEN_SIGNING_KEY_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &c, &key).unwrap()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn every_api_refuses_a_future_nbf_a_foreign_issuer_and_an_unknown_kid() {
    let t = spawn_server().await;
    for api in apis(&t) {
        // Arrange
        let good = t.sp_token(&api.scope).await;
        let kid = kid_of(&good);
        let ok_status = if api.name == "runtime" { 404 } else { 200 };
        let now = claims(&good)["iat"].as_i64().unwrap();
        let tid = claims(&good)["tid"].as_str().unwrap().to_owned();
        let accepted = [
            ("the token as issued", good.clone()),
            ("the token re-signed", Keys::fixed_test_key().sign(&serde_json::from_value(claims(&good)).unwrap())),
            ("nbf within the 5 s leeway", craft(&good, Some(&kid), |c| c.nbf = now + 3)),
            (
                "an issuer on the real identity host",
                craft(&good, Some(&kid), |c| c.iss = format!("https://login.microsoftonline.com/{tid}/v2.0")),
            ),
            (
                "an issuer on another loopback port",
                craft(&good, Some(&kid), |c| c.iss = format!("http://localhost:1/{tid}/v2.0")),
            ),
        ];
        let refused = [
            ("a future nbf", craft(&good, Some(&kid), |c| c.nbf = now + 3600), "not valid yet"),
            (
                "an issuer of another tenant",
                craft(&good, Some(&kid), |c| c.iss = format!("https://127.0.0.1:1/{OTHER_TENANT}/v2.0")),
                "issuer",
            ),
            ("a v1 issuer", craft(&good, Some(&kid), |c| c.iss = format!("https://sts.windows.net/{tid}/")), "issuer"),
            (
                "an issuer on a host the mock does not serve identity on",
                craft(&good, Some(&kid), |c| c.iss = format!("https://contosodev.crm.dynamics.com/{tid}/v2.0")),
                "issuer",
            ),
            ("no issuer", craft(&good, Some(&kid), |c| c.iss = String::new()), "issuer"),
            ("no kid", craft(&good, None, |_| {}), "kid"),
            ("an unknown kid", craft(&good, Some("not-the-mocks-key"), |_| {}), "kid"),
        ];
        // Act + Assert
        for (what, token) in accepted {
            let (s, body) = call(&t, &api.url, &token).await;
            assert_eq!(s, ok_status, "{}: {what}: {body}", api.name);
        }
        for (what, token, says) in refused {
            let (s, body) = call(&t, &api.url, &token).await;
            assert_eq!(s, 401, "{}: {what}: {body}", api.name);
            // Dataverse has its own code for it; the other surfaces say InvalidAuthenticationToken.
            let code = if api.name == "dataverse" { "0x80072560" } else { "InvalidAuthenticationToken" };
            assert_eq!(body["error"]["code"], code, "{}: {what}: {body}", api.name);
            assert!(body["error"]["message"].as_str().unwrap().contains(says), "{}: {what}: {body}", api.name);
        }
    }
}

/// A client-credentials token of a sandbox's first service principal, from its tenant.
async fn sandbox_token(t: &TestServer, sandbox: &str) -> (String, String) {
    let world = t.server.sandbox(sandbox).fixture().await.unwrap();
    let sp = &world.service_principals[0];
    let form = cc_form(&sp.app_id, sp.client_secret.as_deref().unwrap(), PP_SCOPE);
    let (s, body) = status_json(t.token(&sp.tenant, &form).await).await;
    assert_eq!(s, 200, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), world.environments[0].id.clone())
}

#[tokio::test]
async fn a_token_of_a_deleted_sandbox_is_refused_even_when_one_of_the_same_name_exists_again() {
    // Arrange: a sandbox, a token of it, and the call it allows.
    let t = spawn_server().await;
    let team_x = t.server.create_sandbox("team-x").await.unwrap();
    let (old, env) = sandbox_token(&t, "team-x").await;
    let url = format!("{}/connectivity/environments/{env}/connections?api-version=1", t.http);
    assert_eq!(call(&t, &url, &old).await.0, 200);
    // Reset keeps the incarnation: the token stays good.
    team_x.reset().await.unwrap();
    assert_eq!(call(&t, &url, &old).await.0, 200, "reset keeps the sandbox's tokens");
    // Act: delete it and make one of the same name (the same ids).
    team_x.delete().await.unwrap();
    t.server.create_sandbox("team-x").await.unwrap();
    let (new, same_env) = sandbox_token(&t, "team-x").await;
    // Assert
    assert_eq!(same_env, env, "ids stay derived from the name");
    let (s, body) = call(&t, &url, &old).await;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("InvalidAuthenticationToken")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("issued for a sandbox that was deleted"), "{body}");
    assert_eq!(call(&t, &url, &new).await.0, 200, "the new incarnation's token works");
    // A live sandbox's token on another sandbox's environment names both.
    let default_env = format!("{}/connectivity/environments/{ENV_ID}/connections?api-version=1", t.http);
    let (s, body) = call(&t, &default_env, &new).await;
    assert_eq!(s, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'team-x'"), "{body}");
}
