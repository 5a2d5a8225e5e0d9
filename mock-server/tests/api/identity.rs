//! The identity surface over real loopback HTTP and HTTPS.

use crate::helpers::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

#[tokio::test]
async fn a_service_principal_gets_a_token_over_https_that_verifies_against_the_jwks() {
    // Arrange
    let t = spawn_server().await;
    // Act
    let token = t.sp_token(PP_SCOPE).await;
    let jwks: Value =
        t.client.get(format!("{}/{TENANT}/discovery/v2.0/keys", t.https)).send().await.unwrap().json().await.unwrap();
    // Assert
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let key = &jwks["keys"][0];
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let decoding = DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["https://api.powerplatform.com"]);
    let c = jsonwebtoken::decode::<Value>(&token, &decoding, &v).expect("signature, audience and expiry verify").claims;
    assert_eq!(c["tid"], TENANT);
    assert_eq!(c["appid"], SP_APP_ID);
    assert_eq!(c["azp"], SP_APP_ID);
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["oid"], "ed6535a9-e3e6-4f8a-9fd5-58313db668bf");
    assert_eq!(c["iss"], format!("{}/{TENANT}/v2.0", t.https));
    let (iat, nbf, exp) = (c["iat"].as_i64().unwrap(), c["nbf"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3599);
    assert_eq!(nbf, iat);
}

#[tokio::test]
async fn the_token_endpoint_answers_over_plain_http_too_with_a_numeric_expires_in() {
    let t = spawn_server().await;
    let r = t
        .client
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", t.http))
        .form(&cc_form(SP_APP_ID, SP_SECRET, PP_SCOPE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store, no-cache");
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64(), "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["iss"], format!("{}/{TENANT}/v2.0", t.http));
}

#[tokio::test]
async fn the_client_secret_may_come_in_http_basic_auth() {
    let t = spawn_server().await;
    let r = t
        .client
        .post(format!("{}/{TENANT_DOMAIN}/oauth2/v2.0/token", t.https))
        .basic_auth(SP_APP_ID, Some(SP_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", PP_SCOPE)])
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["appid"], SP_APP_ID);
}

#[tokio::test]
async fn unknown_form_fields_and_query_parameters_are_ignored() {
    let t = spawn_server().await;
    let r = t
        .client
        .post(format!("{}/{TENANT}/oauth2/v2.0/token?x-client-SKU=MSAL.Python&x-client-Ver=1.0", t.https))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP_APP_ID),
            ("client_secret", SP_SECRET),
            ("scope", PP_SCOPE),
            ("client_info", "1"),
            ("x-anything", "ignored"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn assertion(key_pem: &str, x5t: &str, aud: &str) -> String {
    let now = mock_server::domain::clock::wall_clock().timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(x5t.to_owned());
    let claims = json!({ "aud": aud, "iss": SP_APP_ID, "sub": SP_APP_ID, "jti": "1", "nbf": now, "exp": now + 600 });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap()).unwrap()
}

fn certificate_x5t() -> String {
    use base64::Engine;
    let der = mock_server::tokens::pem_der(fixtures::SP_CERTIFICATE_PEM, "CERTIFICATE").unwrap();
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1.as_ref())
}

#[tokio::test]
async fn a_certificate_assertion_gets_a_token_and_a_foreign_key_does_not() {
    // Arrange
    let t = spawn_server().await;
    let aud = format!("{}/{TENANT}/oauth2/v2.0/token", t.https);
    let good = assertion(fixtures::SP_CERTIFICATE_KEY_PEM, &certificate_x5t(), &aud);
    let forged = assertion(fixtures::TOKEN_SIGNING_KEY_PEM, &certificate_x5t(), &aud);
    let form = |a: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", SP_APP_ID.to_owned()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            ("client_assertion", a.to_owned()),
            ("scope", PP_SCOPE.to_owned()),
        ]
    };
    // Act
    let ok = t.client.post(&aud).form(&form(&good)).send().await.unwrap();
    let bad = t.client.post(&aud).form(&form(&forged)).send().await.unwrap();
    // Assert
    let (status, body) = status_json(ok).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["azpacr"], "2");
    let (status, body) = status_json(bad).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(body["error_codes"], json!([700027]));
}

#[tokio::test]
async fn the_password_grant_returns_id_token_client_info_and_a_refresh_token_that_works() {
    let t = spawn_server().await;
    let r = t
        .token(
            "organizations",
            &[
                ("grant_type", "password"),
                ("client_id", PUBLIC_CLIENT),
                ("username", USER_UPN),
                ("password", USER_PASSWORD),
                ("scope", "https://api.powerplatform.com/.default openid profile offline_access"),
                ("client_info", "1"),
            ],
        )
        .await;
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!((access["idtyp"].as_str(), access["upn"].as_str()), (Some("user"), Some(USER_UPN)));
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!((id["aud"].as_str(), id["preferred_username"].as_str()), (Some(PUBLIC_CLIENT), Some(USER_UPN)));
    use base64::Engine;
    let info: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body["client_info"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(info, json!({ "uid": "9b938b62-1239-4855-aaa8-bd33df599368", "utid": TENANT }));

    let refreshed = t
        .token(
            TENANT,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", PUBLIC_CLIENT),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    let (status, again) = status_json(refreshed).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(claims(again["access_token"].as_str().unwrap())["aud"], "https://api.powerplatform.com");
}

/// Every identity error: the form, the expected status, `error` and AADSTS code.
/// One identity error case.
struct ErrorCase {
    name: &'static str,
    tenant: &'static str,
    form: Vec<(&'static str, &'static str)>,
    status: u16,
    error: &'static str,
    code: u64,
}

fn identity_error_cases() -> Vec<ErrorCase> {
    let cc = |secret: &'static str, scope: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", SP_APP_ID),
            ("client_secret", secret),
            ("scope", scope),
        ]
    };
    let cases = vec![
        ("unknown_tenant", "nowhere.onmicrosoft.com", cc(SP_SECRET, PP_SCOPE), 400, "invalid_request", 90002),
        (
            "unknown_client",
            TENANT,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "00000000-0000-0000-0000-0000000000aa"),
                ("client_secret", "x"),
                ("scope", PP_SCOPE),
            ],
            400,
            "unauthorized_client",
            700_016,
        ),
        ("client_of_another_tenant", OTHER_TENANT, cc(SP_SECRET, PP_SCOPE), 400, "unauthorized_client", 700_016),
        ("wrong_secret", TENANT, cc("not-the-secret", PP_SCOPE), 401, "invalid_client", 7_000_215),
        (
            "missing_grant_type",
            TENANT,
            vec![("client_id", SP_APP_ID), ("client_secret", SP_SECRET), ("scope", PP_SCOPE)],
            400,
            "invalid_request",
            900_144,
        ),
        (
            "missing_scope",
            TENANT,
            vec![("grant_type", "client_credentials"), ("client_id", SP_APP_ID), ("client_secret", SP_SECRET)],
            400,
            "invalid_request",
            900_144,
        ),
        (
            "missing_client_secret",
            TENANT,
            vec![("grant_type", "client_credentials"), ("client_id", SP_APP_ID), ("scope", PP_SCOPE)],
            401,
            "invalid_client",
            7_000_218,
        ),
        (
            "scope_not_dot_default",
            TENANT,
            cc(SP_SECRET, "https://api.powerplatform.com/user_impersonation"),
            400,
            "invalid_scope",
            70011,
        ),
        (
            "scope_of_two_resources",
            TENANT,
            cc(SP_SECRET, "https://api.powerplatform.com/.default https://api.bap.microsoft.com/.default"),
            400,
            "invalid_scope",
            70011,
        ),
        (
            "unknown_resource",
            TENANT,
            cc(SP_SECRET, "https://nothing.example.com/.default"),
            400,
            "invalid_resource",
            500_011,
        ),
        (
            "unsupported_grant",
            TENANT,
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("client_id", PUBLIC_CLIENT)],
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            "wrong_password",
            TENANT,
            vec![
                ("grant_type", "password"),
                ("client_id", PUBLIC_CLIENT),
                ("username", USER_UPN),
                ("password", "nope"),
                ("scope", PP_SCOPE),
            ],
            400,
            "invalid_grant",
            50126,
        ),
        (
            "unknown_user",
            TENANT,
            vec![
                ("grant_type", "password"),
                ("client_id", PUBLIC_CLIENT),
                ("username", "nobody@contoso.onmicrosoft.com"),
                ("password", "x"),
                ("scope", PP_SCOPE),
            ],
            400,
            "invalid_grant",
            50034,
        ),
        (
            "bad_refresh_token",
            TENANT,
            vec![("grant_type", "refresh_token"), ("client_id", PUBLIC_CLIENT), ("refresh_token", "garbage")],
            400,
            "invalid_grant",
            9_002_313,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, tenant, form, status, error, code)| ErrorCase { name, tenant, form, status, error, code })
        .collect()
}

#[tokio::test]
async fn each_identity_error_has_its_aadsts_code_and_the_identity_error_shape() {
    let t = spawn_server().await;
    for ErrorCase { name, tenant, form, status, error, code } in identity_error_cases() {
        let r = t.token(tenant, &form).await;
        let (got, body) = status_json(r).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(error)), "{name}: {body}");
        assert_eq!(body["error_codes"], json!([code]), "{name}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.starts_with(&format!("AADSTS{code}: ")), "{name}: {description}");
        for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(body[field].is_string(), "{name}: {field} missing in {body}");
        }
        insta::assert_json_snapshot!(format!("identity_error_{name}"), mock_server::normalise::normalise(&body));
    }
}

#[tokio::test]
async fn openid_configuration_uses_the_origin_the_client_called() {
    let t = spawn_server().await;
    // The real host without a port: the Host header has none, so neither has the issuer.
    for origin in [t.http.clone(), t.https.clone(), "https://login.microsoftonline.com".to_owned()] {
        let url = format!("{origin}/{TENANT_DOMAIN}/v2.0/.well-known/openid-configuration");
        let c: Value = t.client.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(c["issuer"], format!("{origin}/{TENANT}/v2.0"), "{url}");
        assert_eq!(c["token_endpoint"], format!("{origin}/{TENANT}/oauth2/v2.0/token"));
        assert_eq!(c["jwks_uri"], format!("{origin}/{TENANT}/discovery/v2.0/keys"));
    }
    let unknown = t
        .client
        .get(format!("{}/nowhere.example/v2.0/.well-known/openid-configuration", t.https))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(unknown).await;
    assert_eq!((status, body["error_codes"].clone()), (400, json!([90002])));
}

#[tokio::test]
async fn instance_discovery_sends_the_client_back_to_the_mock() {
    let t = spawn_server().await;
    let url = format!(
        "{}/common/discovery/instance?api-version=1.1&authorization_endpoint={}/{TENANT}/oauth2/v2.0/authorize",
        t.https, t.https
    );
    let d: Value = t.client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(d["tenant_discovery_endpoint"], format!("{}/{TENANT}/v2.0/.well-known/openid-configuration", t.https));
    let host = t.https.trim_start_matches("https://");
    assert_eq!(d["metadata"][0]["aliases"], json!([host]));
}

#[tokio::test]
async fn user_realm_discovery_says_managed_for_known_domains_and_unknown_otherwise() {
    let t = spawn_server().await;
    let known: Value = t
        .client
        .get(format!("{}/common/userrealm/{USER_UPN}?api-version=1.0", t.https))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((known["account_type"].as_str(), known["domain_name"].as_str()), (Some("Managed"), Some(TENANT_DOMAIN)));
    let unknown: Value = t
        .client
        .get(format!("{}/common/userrealm/someone@else.example", t.https))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unknown["account_type"], "Unknown");
}
