//! The seed rules, one test per rule and per error path: every `shared_uiflow` parameter set,
//! credentials, connect-with-sign-in prerequisites, statuses that follow the world, machine
//! and group sharing on Dataverse, group membership, silent registration and connection
//! sharing. Every documented or mock-defined error envelope is snapshotted.

use crate::helpers::*;
use serde_json::{Value, json};

const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const HR: &str = "d8ffb0fe-5a78-4d28-abf4-b5c4167600be";
const BUILD01_GROUP: &str = "fbd9ef90-eb39-437b-a791-919993c57260";
const BUILD01: &str = "78afb281-eb1e-4e35-ba11-9460dcabf47a";
const FIN02: &str = "148a5ad1-1f49-48ab-8f8f-c73dfc6ea378";
const HR01: &str = "be3fd775-6618-4216-b243-85774e4e5361";
const SP_OBJECT: &str = "ed6535a9-e3e6-4f8a-9fd5-58313db668bf";
const SP_SYSTEMUSER: &str = "bb616485-1ba2-4625-8cf8-34ad1018aa27";
const ADELE: &str = "7ca44739-d892-4cfc-a132-f8d0b3e0a21d";
const ADELE_SYSTEMUSER: &str = "22baff68-489e-46eb-8578-2ff9bc964298";
const MEGAN: &str = "9b938b62-1239-4855-aaa8-bd33df599368";
const FABRIKAM_APP: &str = "12f1f385-c7d1-4502-b1e9-4e5d3c8f0b70";
const KEY_VAULT_CREDENTIAL: &str = "e8f63bfa-696d-4474-9bb4-e2bbe5dadb16";
const CYBERARK_CREDENTIAL: &str = "1b5a1e98-af9c-40ed-ac95-fe07090f5db9";
const DOMAIN_ACCOUNT: &str = "CONTOSO\\svc-rpa";
const DOMAIN_PASSWORD: &str = "Contoso-SvcRpa-Passw0rd!";
/// A base64 blob standing for the run owner's .pfx (the mock checks the shape, not the PKCS#12).
const PFX: &str = "MIIKcQIBAzCCCjcGCSqGSIb3DQEHAaCCCigEggokMIIKIDCCBNcGCSqGSIb3DQEHBqCCBMgw";

pub(crate) fn environment() -> Value {
    json!({ "id": format!("/providers/Microsoft.PowerApps/environments/{ENV_ID}"), "name": ENV_ID })
}

pub(crate) fn body(set: &str, values: Value) -> Value {
    json!({ "properties": { "environment": environment(), "connectionParametersSet": { "name": set, "values": values } } })
}

pub(crate) fn relay(user: &str, password: &str, group: &str) -> Value {
    body(
        "azureRelay",
        json!({ "username": {"value": user}, "password": {"value": password}, "targetId": {"value": group} }),
    )
}

pub(crate) fn run_owner(user: &str, password: &str, group: &str, app: &str) -> Value {
    body(
        "azureRelayRunOwner",
        json!({
            "username": {"value": user}, "password": {"value": password}, "targetId": {"value": group},
            "tokenRunOwnerCert:clientId": {"value": app},
            "tokenRunOwnerCert:clientCertificateSecret": {"value": {"pfx": PFX, "password": ""}}
        }),
    )
}

fn sign_in(group: &str) -> Value {
    body("passwordlessAttended", json!({ "targetId": {"value": group} }))
}

pub(crate) fn with_credential(credential: &str, user: &str, password: &str, group: &str) -> Value {
    let mut b = relay(user, password, group);
    b["properties"]["credentialId"] = json!(credential);
    b
}

pub(crate) fn status_of(c: &Value) -> (&str, Option<&str>) {
    let s = &c["properties"]["statuses"][0];
    (s["status"].as_str().unwrap_or(""), s["error"]["code"].as_str())
}

impl TestServer {
    pub(crate) fn conn_url(&self, id: &str, rest: &str) -> String {
        format!(
            "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/{id}{rest}?api-version=1",
            self.http
        )
    }

    /// A Power Platform API token of a user of the default world.
    pub(crate) async fn pp_user_token(&self, tenant: &str, upn: &str, password: &str) -> String {
        let form = [
            ("grant_type", "password"),
            ("client_id", PUBLIC_CLIENT),
            ("username", upn),
            ("password", password),
            ("scope", PP_SCOPE),
        ];
        let r = self.token(tenant, &form).await;
        assert_eq!(r.status(), 200, "token for {upn}");
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn megan(&self) -> String {
        self.pp_user_token(TENANT, USER_UPN, USER_PASSWORD).await
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn put_conn(&self, id: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, &self.conn_url(id, ""), token, Some(body)).await
    }

    pub(crate) async fn get_conn(&self, id: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, &self.conn_url(id, ""), token, None).await
    }

    pub(crate) async fn dv_token_of(&self, form_user: Option<(&str, &str)>) -> String {
        let scope = format!("{}/dataverse/{ORG}/.default", self.http);
        match form_user {
            None => self.sp_token(&scope).await,
            Some((upn, password)) => {
                let form = [
                    ("grant_type", "password"),
                    ("client_id", PUBLIC_CLIENT),
                    ("username", upn),
                    ("password", password),
                    ("scope", scope.as_str()),
                ];
                let r = self.token(TENANT, &form).await;
                assert_eq!(r.status(), 200);
                r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
            }
        }
    }
}

fn snap(name: &str, body: &Value) {
    insta::assert_json_snapshot!(format!("rule_{name}"), mock_server::normalise::normalise(body));
}

// ---- parameter sets -------------------------------------------------------------------------

#[tokio::test]
async fn a_run_owner_connection_takes_a_service_principal_with_a_certificate_and_never_echoes_the_pfx() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    let id = "0000000000000000000000000000a001";
    let (s, c) = t.put_conn(id, &megan, &run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID)).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(status_of(&c), ("Connected", None));
    let values = &c["properties"]["connectionParametersSet"];
    assert_eq!(values["name"], "azureRelayRunOwner");
    assert_eq!(values["values"]["tokenRunOwnerCert:clientId"]["value"], SP_APP_ID);
    assert!(values["values"].get("tokenRunOwnerCert:clientCertificateSecret").is_none());
    assert_eq!(c["properties"]["allowSharing"], true, "run-owner connections are the shareable ones");
    let text = c.to_string();
    assert!(!text.contains(PFX) && !text.contains(DOMAIN_PASSWORD), "no secret in the response");
    let journal = t.entries(JournalFilter::all().path("/connectivity")).await.to_string();
    assert!(!journal.contains(PFX) && !journal.contains(DOMAIN_PASSWORD), "no secret in the journal");
}

#[tokio::test]
async fn each_run_owner_rule_has_its_own_code() {
    // A world with two more Contoso service principals: one without a certificate, one
    // with a certificate but no application user.
    let mut world = fixtures::default_world();
    let mut no_cert = world.service_principals[0].clone();
    no_cert.app_id = "3c1b0d7e-5d0c-4a4b-9c1e-0d9d7c3f0a01".into();
    no_cert.object_id = "3c1b0d7e-5d0c-4a4b-9c1e-0d9d7c3f0a02".into();
    no_cert.certificate_pem = None;
    let mut no_user = world.service_principals[0].clone();
    no_user.app_id = "3c1b0d7e-5d0c-4a4b-9c1e-0d9d7c3f0a03".into();
    no_user.object_id = "3c1b0d7e-5d0c-4a4b-9c1e-0d9d7c3f0a04".into();
    no_user.client_secret = None;
    world.environments[0].system_users.push(fixtures::SystemUserFile {
        system_user_id: "3c1b0d7e-5d0c-4a4b-9c1e-0d9d7c3f0a05".into(),
        principal: no_cert.object_id.clone(),
    });
    world.service_principals.extend([no_cert.clone(), no_user.clone()]);
    let t = spawn_with(mock_server::MockServer::builder().fixture(world)).await;
    let megan = t.megan().await;
    let mut bad_pfx = run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID);
    bad_pfx["properties"]["connectionParametersSet"]["values"]["tokenRunOwnerCert:clientCertificateSecret"] =
        json!({"value": {"pfx": "", "password": ""}});
    let mut no_secret = run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID);
    no_secret["properties"]["connectionParametersSet"]["values"]
        .as_object_mut()
        .unwrap()
        .remove("tokenRunOwnerCert:clientCertificateSecret");
    let cases = [
        ("run_owner_unknown", run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, MEGAN), 400, "RunOwnerNotFound"),
        (
            "run_owner_other_tenant",
            run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, FABRIKAM_APP),
            400,
            "RunOwnerNotFound",
        ),
        (
            "run_owner_without_certificate",
            run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, &no_cert.app_id),
            400,
            "RunOwnerCertificateRequired",
        ),
        (
            "run_owner_not_application_user",
            run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, &no_user.app_id),
            400,
            "RunOwnerNotApplicationUser",
        ),
        (
            "run_owner_without_access_to_the_group",
            run_owner("HR-01\\rpa", "Hr01-Rpa-Passw0rd!", HR, SP_APP_ID),
            403,
            "RunOwnerAuthorizationFailed",
        ),
        ("run_owner_pfx_not_base64", bad_pfx, 400, "InvalidConnectionParameter"),
        ("run_owner_certificate_missing", no_secret, 400, "MissingConnectionParameter"),
    ];
    for (name, b, status, code) in cases {
        let (s, e) = t.put_conn("0000000000000000000000000000a002", &megan, &b).await;
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{name}: {e}");
        snap(name, &e);
    }
}

#[tokio::test]
async fn a_run_owner_can_be_changed_but_not_removed() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    let id = "0000000000000000000000000000a003";
    let (s, _) = t.put_conn(id, &megan, &run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID)).await;
    assert_eq!(s, 201);
    let mut renamed = run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID);
    renamed["properties"]["displayName"] = json!("Finance (run owner)");
    let (s, c) = t.put_conn(id, &megan, &renamed).await;
    assert_eq!((s, c["properties"]["displayName"].as_str()), (200, Some("Finance (run owner)")));
    let (s, e) = t.put_conn(id, &megan, &relay(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("RunOwnerCannotBeRemoved")), "{e}");
    snap("run_owner_cannot_be_removed", &e);
    let (_, c) = t.get_conn(id, &megan).await;
    assert_eq!(c["properties"]["connectionParametersSet"]["name"], "azureRelayRunOwner", "nothing changed");
}

#[tokio::test]
async fn every_documented_username_format_names_the_account() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let cases = [
        ("BUILD-01\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP),
        (".\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP),
        ("local\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP),
        ("rpa@contoso.onmicrosoft.com", "Rpa-Entra-Passw0rd!", BUILD01_GROUP),
        (DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE),
    ];
    for (i, (user, password, group)) in cases.iter().enumerate() {
        let id = format!("00000000-0000-0000-0000-00000000b{i:03}");
        let (s, c) = t.put_conn(&id, &sp, &relay(user, password, group)).await;
        assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{user}: {c}");
        assert_eq!(c["properties"]["connectionParametersSet"]["values"]["username"]["value"], *user, "echoed as given");
    }
    let (_, c) = t
        .put_conn(
            "00000000-0000-0000-0000-00000000b100",
            &sp,
            &relay("OTHER\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP),
        )
        .await;
    assert_eq!(status_of(&c), ("Error", Some("WindowsIdentityIncorrect")), "another machine's name is not local");
}

#[tokio::test]
async fn a_parameter_set_rejects_values_it_does_not_have_by_name() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let mut typo = relay(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE);
    typo["properties"]["connectionParametersSet"]["values"]["usernmae"] = json!({"value": "x"});
    let (s, e) = t.put_conn("00000000-0000-0000-0000-00000000c001", &sp, &typo).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("UnknownConnectionParameter")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("usernmae"));
    snap("unknown_connection_parameter", &e);
    let mut hidden = relay(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE);
    hidden["properties"]["connectionParametersSet"]["values"]["xrmInstanceUri"] = json!({"value": "https://x"});
    let (s, _) = t.put_conn("00000000-0000-0000-0000-00000000c002", &sp, &hidden).await;
    assert_eq!(s, 201, "the portal's hidden parameters are accepted");
}

// ---- credentials ----------------------------------------------------------------------------

#[tokio::test]
async fn a_key_vault_credential_connection_resolves_its_environment_variables() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let b = with_credential(
        KEY_VAULT_CREDENTIAL,
        "@environmentVariables(\"new_FinanceLogin\")",
        "@environmentVariables(\"new_FinancePassword\")",
        FINANCE,
    );
    let (s, c) = t.put_conn("00000000-0000-0000-0000-00000000d001", &sp, &b).await;
    assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{c}");
    assert_eq!(c["properties"]["credentialId"], KEY_VAULT_CREDENTIAL);
    assert_eq!(
        c["properties"]["connectionParametersSet"]["values"]["username"]["value"],
        "@environmentVariables(\"new_FinanceLogin\")"
    );
    assert!(!c.to_string().contains(DOMAIN_PASSWORD), "the vault's secret is never shown");
}

#[tokio::test]
async fn a_cyberark_credential_takes_none_as_its_password() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    let b = with_credential(CYBERARK_CREDENTIAL, "@environmentVariables(\"new_BuildLogin\")", "none", BUILD01_GROUP);
    let (s, c) = t.put_conn("00000000-0000-0000-0000-00000000d002", &megan, &b).await;
    assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{c}");
}

#[tokio::test]
async fn each_credential_rule_has_its_own_code() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let login = "@environmentVariables(\"new_FinanceLogin\")";
    let secret = "@environmentVariables(\"new_FinancePassword\")";
    let cases = [
        (
            "credential_not_shared_with_the_creator",
            with_credential(CYBERARK_CREDENTIAL, "@environmentVariables(\"new_BuildLogin\")", "none", BUILD01_GROUP),
            403,
            "CredentialNotShared",
        ),
        (
            "credential_not_found",
            with_credential("00000000-0000-0000-0000-0000000000cc", login, secret, FINANCE),
            400,
            "CredentialNotFound",
        ),
        (
            "credential_username_not_its_variable",
            with_credential(KEY_VAULT_CREDENTIAL, DOMAIN_ACCOUNT, secret, FINANCE),
            400,
            "CredentialParameterMismatch",
        ),
        (
            "credential_password_not_its_variable",
            with_credential(KEY_VAULT_CREDENTIAL, login, "none", FINANCE),
            400,
            "CredentialParameterMismatch",
        ),
    ];
    for (name, b, status, code) in cases {
        let (s, e) = t.put_conn("00000000-0000-0000-0000-00000000d003", &sp, &b).await;
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{name}: {e}");
        snap(name, &e);
    }
}

// ---- connect with sign-in -------------------------------------------------------------------

#[tokio::test]
async fn connect_with_sign_in_is_created_by_the_signed_in_user_on_an_entra_joined_machine() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    let (s, c) = t.put_conn("00000000-0000-0000-0000-00000000e001", &megan, &sign_in(BUILD01_GROUP)).await;
    assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{c}");
    assert_eq!(c["properties"]["connectionParametersSet"]["name"], "passwordlessAttended");
    assert_eq!(c["properties"]["createdBy"]["userPrincipalName"], USER_UPN);
    assert!(c["properties"]["connectionParametersSet"]["values"].get("username").is_none());
}

#[tokio::test]
async fn connect_with_sign_in_refuses_service_principals_other_tenants_and_run_owners() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let frank = t.pp_user_token(OTHER_TENANT, "frank@fabrikam.onmicrosoft.com", "Frank-Test-Passw0rd!").await;
    let megan = t.megan().await;
    let mut with_owner = sign_in(BUILD01_GROUP);
    with_owner["properties"]["connectionParametersSet"]["values"]["tokenRunOwnerCert:clientId"] =
        json!({"value": SP_APP_ID});
    let cases = [
        ("sign_in_by_a_service_principal", sp.clone(), sign_in(FINANCE), 400, "SignInRequiresUser"),
        ("sign_in_user_of_another_tenant", frank, sign_in(BUILD01_GROUP), 400, "SignInUserTenantMismatch"),
        ("sign_in_with_a_run_owner", megan.clone(), with_owner, 400, "SignInConnectionRunOwner"),
    ];
    for (name, token, b, status, code) in cases {
        let (s, e) = t.put_conn("00000000-0000-0000-0000-00000000e002", &token, &b).await;
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{name}: {e}");
        snap(name, &e);
    }
    let msg = {
        let frank = t.pp_user_token(OTHER_TENANT, "frank@fabrikam.onmicrosoft.com", "Frank-Test-Passw0rd!").await;
        t.put_conn("00000000-0000-0000-0000-00000000e003", &frank, &sign_in(BUILD01_GROUP)).await.1
    };
    let text = msg["error"]["message"].as_str().unwrap();
    assert!(text.contains(TENANT) && text.contains(OTHER_TENANT), "names both tenants: {text}");
    // An existing password connection cannot become a sign-in one, nor get a run owner that way.
    let (s, _) = t.put_conn("00000000-0000-0000-0000-00000000e004", &megan, &sign_in(BUILD01_GROUP)).await;
    assert_eq!(s, 201);
    let (s, e) = t
        .put_conn(
            "00000000-0000-0000-0000-00000000e004",
            &megan,
            &run_owner("BUILD-01\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP, SP_APP_ID),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("SignInConnectionRunOwner")), "{e}");
}

#[tokio::test]
async fn connect_with_sign_in_needs_joined_machines_and_an_allowlisted_tenant_on_ad_joined_ones() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    // HR-01 is a workgroup machine.
    let (s, c) = t.put_conn("00000000-0000-0000-0000-00000000e010", &megan, &sign_in(HR)).await;
    assert_eq!(s, 201);
    assert_eq!(status_of(&c), ("Error", Some("MachineNotJoined")));
    snap("sign_in_machine_not_joined", &c["properties"]["statuses"]);
    // FIN-02 is AD-joined and does not allowlist Contoso (FIN-01 does).
    let id = "00000000-0000-0000-0000-00000000e011";
    let (_, c) = t.put_conn(id, &megan, &sign_in(FINANCE)).await;
    assert_eq!(status_of(&c), ("Error", Some("UnallowedTenantForConnectWithSignIn")));
    assert_eq!(
        c["properties"]["statuses"][0]["error"]["message"],
        format!(
            "Tenant {TENANT} needs to be explicitly allowlisted to authorize 'connect with sign-in' runs on the machine"
        )
    );
    snap("sign_in_unallowed_tenant", &c["properties"]["statuses"]);
    // The older text, where the machine's flag asks for it.
    t.set_machine(FIN02, MachineFacts { legacy_sign_in_error: Some(true), ..Default::default() }).await;
    let (_, c) = t.get_conn(id, &megan).await;
    assert_eq!(
        c["properties"]["statuses"][0]["error"]["message"],
        "Unable to connect. The credentials for the machine are incorrect."
    );
    // Allowlisting the tenant mends it: the status follows the machine.
    let allowed = vec![TenantId::parse(TENANT).unwrap()];
    t.set_machine(FIN02, MachineFacts { allowed_tenants: Some(allowed), ..Default::default() }).await;
    let (_, c) = t.get_conn(id, &megan).await;
    assert_eq!(status_of(&c), ("Connected", None));
    // An Entra-joined machine that is not synchronised is not joined either.
    t.set_machine(BUILD01, MachineFacts { entra_synced: Some(false), ..Default::default() }).await;
    let (_, c) = t.put_conn("00000000-0000-0000-0000-00000000e012", &megan, &sign_in(BUILD01_GROUP)).await;
    assert_eq!(status_of(&c), ("Error", Some("MachineNotJoined")));
}

#[tokio::test]
async fn connect_with_sign_in_needs_the_user_to_be_allowed_to_sign_in_on_the_machine() {
    let t = spawn_server().await;
    // Adele reaches HR bots through her team; make HR-01 Entra-joined so only her logon right is missing.
    t.set_machine(HR01, MachineFacts { join_type: Some(JoinType::EntraJoined), ..Default::default() }).await;
    let adele = t.pp_user_token(TENANT, "adele@contoso.onmicrosoft.com", "Adele-Test-Passw0rd!").await;
    let (s, c) = t.put_conn("00000000-0000-0000-0000-00000000e020", &adele, &sign_in(HR)).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(status_of(&c), ("Error", Some("WindowsIdentityIncorrect")));
    let megan = t.megan().await;
    let (_, c) = t.put_conn("00000000-0000-0000-0000-00000000e021", &megan, &sign_in(HR)).await;
    assert_eq!(status_of(&c), ("Connected", None), "Megan may sign in on HR-01");
}

#[tokio::test]
async fn test_connection_runs_the_same_checks_as_the_status() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    let (_, ok) = t.put_conn("00000000-0000-0000-0000-00000000e030", &megan, &sign_in(BUILD01_GROUP)).await;
    let (_, bad) = t.put_conn("00000000-0000-0000-0000-00000000e031", &megan, &sign_in(HR)).await;
    let (_, wrong) = t.put_conn("00000000-0000-0000-0000-00000000e032", &megan, &relay("HR-01\\rpa", "nope", HR)).await;
    for (c, status, code) in
        [(ok, 200, None), (bad, 400, Some("MachineNotJoined")), (wrong, 401, Some("WindowsIdentityIncorrect"))]
    {
        let link = c["properties"]["testLinks"][0]["requestUri"].as_str().unwrap().to_owned();
        let (s, r) = t.send(reqwest::Method::GET, &link, &megan, None).await;
        assert_eq!((s, r["error"]["code"].as_str()), (status, code), "{link}: {r}");
        if s != 200 {
            snap(&format!("test_connection_{}", code.unwrap_or_default()), &r);
        }
    }
}

// ---- statuses follow the world --------------------------------------------------------------

#[tokio::test]
async fn a_rotated_password_turns_the_connection_to_error_until_it_is_updated() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let id = "00000000-0000-0000-0000-00000000f001";
    let (_, c) = t.put_conn(id, &sp, &relay("BUILD-01\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP)).await;
    assert_eq!(status_of(&c), ("Connected", None));
    let rotated = vec![account("BUILD-01\\rpa", "Rotated-Passw0rd-2!")];
    let facts = MachineFacts { windows_accounts: Some(rotated), ..Default::default() };
    let m = serde_json::to_string(&t.sandbox().set_machine(machine(BUILD01), facts).await.unwrap()).unwrap();
    assert!(!m.contains("Rotated-Passw0rd-2!"), "the control answer does not echo the password");
    let (_, c) = t.get_conn(id, &sp).await;
    assert_eq!(status_of(&c), ("Error", Some("WindowsIdentityIncorrect")));
    let (s, c) = t.put_conn(id, &sp, &relay("BUILD-01\\rpa", "Rotated-Passw0rd-2!", BUILD01_GROUP)).await;
    assert_eq!((s, status_of(&c)), (200, ("Connected", None)));
    let journal = t.entries(JournalFilter::all()).await.to_string();
    assert!(!journal.contains("Rotated-Passw0rd-2!"), "a rotated password is redacted too");
}

#[tokio::test]
async fn a_deleted_group_leaves_its_connections_with_xrm_machine_group_not_found() {
    let t = spawn_server().await;
    let dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let (s, g) = t
        .send(
            reqwest::Method::POST,
            &t.dv("flowmachinegroups"),
            &dv,
            Some(&json!({"name": "Short-lived", "description": "deleted below"})),
        )
        .await;
    assert_eq!(s, 204, "{g}");
    let (_, groups) =
        t.send(reqwest::Method::GET, &t.dv("flowmachinegroups?$filter=name eq 'Short-lived'"), &dv, None).await;
    let gid = groups["value"][0]["flowmachinegroupid"].as_str().unwrap().to_owned();
    let megan = t.megan().await;
    let id = "00000000-0000-0000-0000-00000000f002";
    let (_, c) = t.put_conn(id, &megan, &relay("x", "y", &gid)).await;
    assert_eq!(status_of(&c), ("Connected", None), "an empty group has nothing to fail on");
    let (s, _) = t.send(reqwest::Method::DELETE, &t.dv(&format!("flowmachinegroups({gid})")), &dv, None).await;
    assert_eq!(s, 204);
    let (s, c) = t.get_conn(id, &megan).await;
    assert_eq!((s, status_of(&c)), (200, ("Error", Some("XrmMachineGroupNotFound"))));
    snap("group_deleted_status", &c["properties"]["statuses"]);
}

#[tokio::test]
async fn adding_a_stand_alone_machine_to_a_group_breaks_the_connections_that_targeted_it() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let id = "00000000-0000-0000-0000-00000000f003";
    let (_, c) = t.put_conn(id, &sp, &relay("BUILD-01\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP)).await;
    assert_eq!(status_of(&c), ("Connected", None));
    let dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let bind = json!({"flowmachinegroupid@odata.bind": format!("/flowmachinegroups({FINANCE})")});
    let (s, r) = t.send(reqwest::Method::PATCH, &t.dv(&format!("flowmachines({BUILD01})")), &dv, Some(&bind)).await;
    assert_eq!(s, 204, "{r}");
    let (_, m) = t.send(reqwest::Method::GET, &t.dv(&format!("flowmachines({BUILD01})")), &dv, None).await;
    assert_eq!(m["_flowmachinegroupid_value"], FINANCE);
    let (s, _) = t.send(reqwest::Method::GET, &t.dv(&format!("flowmachinegroups({BUILD01_GROUP})")), &dv, None).await;
    assert_eq!(s, 404, "the machine's own Default group went with the move");
    let (_, c) = t.get_conn(id, &sp).await;
    assert_eq!(status_of(&c), ("Error", Some("XrmMachineGroupNotFound")));
    // Leaving the group makes it stand-alone again, in a new Default group.
    let (s, r) = t
        .send(
            reqwest::Method::POST,
            &t.dv(&format!("flowmachines({BUILD01})/Microsoft.Dynamics.CRM.LeaveGroup")),
            &dv,
            None,
        )
        .await;
    assert_eq!(s, 204, "{r}");
    let (_, m) = t.send(reqwest::Method::GET, &t.dv(&format!("flowmachines({BUILD01})")), &dv, None).await;
    let new_group = m["_flowmachinegroupid_value"].as_str().unwrap();
    assert_ne!(new_group, FINANCE);
    let (_, g) = t.send(reqwest::Method::GET, &t.dv(&format!("flowmachinegroups({new_group})")), &dv, None).await;
    assert_eq!(g["flowgrouptype"], 545_940_002);
}

// ---- machine and group sharing on Dataverse -------------------------------------------------

pub(crate) fn grant(target_set: &str, target: &str, principal: Value, mask: &str) -> Value {
    let (ty, key) = match target_set {
        "flowmachinegroup" => ("Microsoft.Dynamics.CRM.flowmachinegroup", "flowmachinegroupid"),
        _ => ("Microsoft.Dynamics.CRM.flowmachine", "flowmachineid"),
    };
    json!({ "Target": { "@odata.type": ty, key: target }, "PrincipalAccess": { "Principal": principal, "AccessMask": mask } })
}

pub(crate) fn systemuser(id: &str) -> Value {
    json!({ "@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": id })
}

#[tokio::test]
async fn sharing_a_group_as_user_lets_the_service_principal_create_a_connection_and_revoking_takes_it_back() {
    let t = spawn_server().await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let sp = t.sp_token(PP_SCOPE).await;
    let b = relay("HR-01\\rpa", "Hr01-Rpa-Passw0rd!", HR);
    let (s, _) = t.put_conn("00000000-0000-0000-0000-0000000000a1", &sp, &b).await;
    assert_eq!(s, 403, "not shared yet");
    let g = grant("flowmachinegroup", HR, systemuser(SP_SYSTEMUSER), "ReadAccess");
    let (s, r) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&g)).await;
    assert_eq!(s, 204, "{r}");
    let (s, c) = t.put_conn("00000000-0000-0000-0000-0000000000a1", &sp, &b).await;
    assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{c}");
    let revoke = json!({
        "Target": { "@odata.id": format!("flowmachinegroups({HR})") },
        "Revokee": { "@odata.type": "Microsoft.Dynamics.CRM.systemuser", "ownerid": SP_SYSTEMUSER }
    });
    let (s, _) = t.send(reqwest::Method::POST, &t.dv("RevokeAccess"), &megan_dv, Some(&revoke)).await;
    assert_eq!(s, 204);
    let (s, _) = t.put_conn("00000000-0000-0000-0000-0000000000a2", &sp, &b).await;
    assert_eq!(s, 403, "revoked");
}

#[tokio::test]
async fn retrieve_shared_principals_lists_group_shares_and_their_cascade_to_machines() {
    let t = spawn_server().await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let url = |set: &str, id: &str| {
        t.dv(&format!("RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={{'@odata.id':'{set}({id})'}}"))
    };
    let (s, r) = t.send(reqwest::Method::GET, &url("flowmachinegroups", FINANCE), &megan_dv, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["PrincipalAccesses"],
        json!([{ "AccessMask": "ReadAccess", "Principal": { "@odata.type": "#Microsoft.Dynamics.CRM.systemuser", "ownerid": SP_SYSTEMUSER } }])
    );
    let (_, r) = t.send(reqwest::Method::GET, &url("flowmachines", FIN02), &megan_dv, None).await;
    assert_eq!(
        r["PrincipalAccesses"][0]["Principal"]["ownerid"], SP_SYSTEMUSER,
        "the group's share reaches its machines"
    );
    let (_, r) = t.send(reqwest::Method::GET, &url("flowmachinegroups", HR), &megan_dv, None).await;
    assert_eq!(r["PrincipalAccesses"][0]["Principal"]["@odata.type"], "#Microsoft.Dynamics.CRM.team");
    snap("retrieve_shared_principals_team", &r);
}

#[tokio::test]
async fn only_owner_and_co_owner_share_and_never_more_than_they_hold() {
    let t = spawn_server().await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let sp_dv = t.dv_token_of(None).await;
    let to_adele = grant("flowmachinegroup", FINANCE, systemuser(ADELE_SYSTEMUSER), "ReadAccess");
    let (s, e) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &sp_dv, Some(&to_adele)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")), "a User share may not share: {e}");
    snap("share_without_share_access", &e);
    let co_owner = grant(
        "flowmachinegroup",
        FINANCE,
        systemuser(SP_SYSTEMUSER),
        "ReadAccess,WriteAccess,DeleteAccess,ShareAccess,AssignAccess",
    );
    let (s, _) = t.send(reqwest::Method::POST, &t.dv("ModifyAccess"), &megan_dv, Some(&co_owner)).await;
    assert_eq!(s, 204);
    let (s, _) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &sp_dv, Some(&to_adele)).await;
    assert_eq!(s, 204, "a Co-owner shares");
    let beyond = grant("flowmachinegroup", FINANCE, systemuser(ADELE_SYSTEMUSER), "ReadAccess,AppendToAccess");
    let (s, e) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &sp_dv, Some(&beyond)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("AppendToAccess"));
    snap("share_beyond_held", &e);
    let nobody = grant("flowmachinegroup", FINANCE, systemuser("00000000-0000-0000-0000-00000000dead"), "ReadAccess");
    let (s, e) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&nobody)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("0x80040217")), "{e}");
    let bad_mask = grant("flowmachinegroup", FINANCE, systemuser(ADELE_SYSTEMUSER), "FlyAccess");
    let (s, e) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&bad_mask)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("0x80060888")), "{e}");
    snap("share_bad_access_mask", &e);
}

#[tokio::test]
async fn a_team_share_reaches_its_members() {
    let t = spawn_server().await;
    let adele = t.pp_user_token(TENANT, "adele@contoso.onmicrosoft.com", "Adele-Test-Passw0rd!").await;
    let (s, c) = t
        .put_conn("00000000-0000-0000-0000-0000000000a3", &adele, &relay("HR-01\\rpa", "Hr01-Rpa-Passw0rd!", HR))
        .await;
    assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{c}");
    let adele_dv = t.dv_token_of(Some(("adele@contoso.onmicrosoft.com", "Adele-Test-Passw0rd!"))).await;
    let (_, teams) = t.send(reqwest::Method::GET, &t.dv("teams"), &adele_dv, None).await;
    assert_eq!(teams["value"][0]["name"], "RPA operators");
    let (_, machines) = t.send(reqwest::Method::GET, &t.dv("flowmachines?$select=name"), &adele_dv, None).await;
    assert_eq!(machines["value"].as_array().unwrap().len(), 1, "HR-01 only, through the team: {machines}");
    // Sharing Finance bots with the team lets Adele use it too.
    let team = teams["value"][0]["teamid"].as_str().unwrap();
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let to_team = grant(
        "flowmachinegroup",
        FINANCE,
        json!({ "@odata.type": "Microsoft.Dynamics.CRM.team", "teamid": team }),
        "ReadAccess",
    );
    let (s, r) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&to_team)).await;
    assert_eq!(s, 204, "{r}");
    let b = relay(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE);
    let (s, c) = t.put_conn("00000000-0000-0000-0000-0000000000a4", &adele, &b).await;
    assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{c}");
}

#[tokio::test]
async fn adding_machines_to_a_group_needs_co_owner() {
    let t = spawn_server().await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let sp_dv = t.dv_token_of(None).await;
    // The service principal registers a stand-alone machine: it owns it.
    let facts = MachineFacts { join_type: Some(JoinType::EntraJoined), ..Default::default() };
    let m = t.sandbox().register_machine(registration("SP-01").with_facts(facts)).await.unwrap();
    let machine = m.machine_id.to_string();
    let bind = json!({"flowmachinegroupid@odata.bind": format!("/flowmachinegroups({FINANCE})")});
    let (s, e) = t.send(reqwest::Method::PATCH, &t.dv(&format!("flowmachines({machine})")), &sp_dv, Some(&bind)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")), "a User share cannot add machines: {e}");
    snap("add_machine_without_co_owner", &e);
    let co_owner = grant(
        "flowmachinegroup",
        FINANCE,
        systemuser(SP_SYSTEMUSER),
        "ReadAccess,WriteAccess,DeleteAccess,ShareAccess,AssignAccess",
    );
    let (s, _) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&co_owner)).await;
    assert_eq!(s, 204);
    let (s, e) = t.send(reqwest::Method::PATCH, &t.dv(&format!("flowmachines({machine})")), &sp_dv, Some(&bind)).await;
    assert_eq!(s, 204, "{e}");
    let (_, r) = t
        .send(
            reqwest::Method::GET,
            &t.dv(&format!("flowmachines?$filter=_flowmachinegroupid_value eq {FINANCE}&$count=true")),
            &megan_dv,
            None,
        )
        .await;
    assert_eq!(r["@odata.count"], 3);
    // Machines join Standard groups only.
    let into_default = json!({"flowmachinegroupid@odata.bind": format!("/flowmachinegroups({BUILD01_GROUP})")});
    let (s, e) = t
        .send(reqwest::Method::PATCH, &t.dv(&format!("flowmachines({machine})")), &megan_dv, Some(&into_default))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("DefaultGroupMembership")), "{e}");
}

// ---- silent registration --------------------------------------------------------------------

#[tokio::test]
async fn silent_registration_makes_the_service_principal_the_owner_of_the_machine() {
    let t = spawn_server().await;
    let facts = MachineFacts {
        join_type: Some(JoinType::DomainJoined),
        windows_accounts: Some(vec![account(DOMAIN_ACCOUNT, DOMAIN_PASSWORD)]),
        ..Default::default()
    };
    let fin03 = registration("FIN-03").in_group(group(FINANCE)).with_facts(facts);
    let m = t.sandbox().register_machine(fin03).await.unwrap();
    assert_eq!((m.owner.to_string(), m.group_id.to_string()), (SP_OBJECT.to_owned(), FINANCE.to_owned()));
    let sp_dv = t.dv_token_of(None).await;
    let (_, row) = t.send(reqwest::Method::GET, &t.dv(&format!("flowmachines({})", m.machine_id)), &sp_dv, None).await;
    assert_eq!(row["_ownerid_value"], SP_SYSTEMUSER);
    let e = t.sandbox().register_machine(registration("HR-02").in_group(group(HR))).await.unwrap_err();
    assert!(matches!(e, ControlError::Domain(DomainError::RegistrationForbidden { .. })), "{e}");
    // The HTTP door names a typo in a fact.
    let (s, e) = t
        .control(
            reqwest::Method::POST,
            "/_mock/machines/register",
            Some(json!({"environment": ENV_ID, "applicationId": SP_APP_ID, "name": "X", "joinTyp": "Workgroup"})),
        )
        .await;
    assert_eq!(s, 400, "a typo in a fact is named: {e}");
    assert!(e.to_string().contains("joinTyp"));
}

// ---- connection sharing ---------------------------------------------------------------------

pub(crate) fn share_with(principal: &str, kind: &str, role: &str) -> Value {
    json!({ "put": [ { "properties": {
        "roleName": role, "capabilities": [],
        "principal": { "id": principal, "type": kind, "tenantId": null },
        "NotifyShareTargetOption": "Notify" } } ], "delete": [] })
}

#[tokio::test]
async fn a_run_owner_connection_is_shared_with_a_service_principal_who_may_then_use_it() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let id = "00000000-0000-0000-0000-0000000000b1";
    let (s, _) = t.put_conn(id, &megan, &run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID)).await;
    assert_eq!(s, 201);
    let (s, _) = t.get_conn(id, &sp).await;
    assert_eq!(s, 403, "not shared yet");
    let modify = t.conn_url(id, "/modifyPermissions");
    let (s, r) = t
        .send(reqwest::Method::POST, &modify, &megan, Some(&share_with(SP_OBJECT, "ServicePrincipal", "CanView")))
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, perms) = t.send(reqwest::Method::GET, &t.conn_url(id, "/permissions"), &megan, None).await;
    assert_eq!(s, 200);
    let roles: Vec<(&str, &str)> = perms["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["properties"]["roleName"].as_str().unwrap(), p["properties"]["principal"]["type"].as_str().unwrap())
        })
        .collect();
    assert_eq!(roles, [("Owner", "User"), ("CanView", "ServicePrincipal")]);
    assert_eq!(perms["value"][0]["name"], MEGAN, "the owner's permission is named by its object id");
    snap("connection_permissions", &perms);
    let (s, _) = t.get_conn(id, &sp).await;
    assert_eq!(s, 200, "CanView reads it");
    let (s, list) = t
        .send(
            reqwest::Method::GET,
            &format!("{}/connectivity/environments/{ENV_ID}/connections?api-version=1", t.http),
            &sp,
            None,
        )
        .await;
    assert_eq!((s, list["value"].as_array().unwrap().len()), (200, 1));
    let (s, _) = t.put_conn(id, &sp, &run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID)).await;
    assert_eq!(s, 403, "CanView does not edit");
    let (s, _) = t
        .send(reqwest::Method::POST, &modify, &megan, Some(&share_with(SP_OBJECT, "ServicePrincipal", "CanEdit")))
        .await;
    assert_eq!(s, 200);
    let (s, _) = t.put_conn(id, &sp, &run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID)).await;
    assert_eq!(s, 200, "CanEdit edits");
    let (s, _) = t.send(reqwest::Method::DELETE, &t.conn_url(id, ""), &sp, None).await;
    assert_eq!(s, 403, "only the owner deletes");
    let unshare = json!({ "put": [], "delete": [ { "id": format!("/providers/Microsoft.PowerApps/apis/shared_uiflow/connections/{id}/permissions/{SP_OBJECT}") } ] });
    let (s, _) = t.send(reqwest::Method::POST, &modify, &megan, Some(&unshare)).await;
    assert_eq!(s, 200);
    let (s, _) = t.get_conn(id, &sp).await;
    assert_eq!(s, 403, "unshared");
}

#[tokio::test]
async fn each_connection_sharing_rule_has_its_own_code() {
    let t = spawn_server().await;
    let megan = t.megan().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let owned = "00000000-0000-0000-0000-0000000000b2";
    let plain = "00000000-0000-0000-0000-0000000000b3";
    let signin = "00000000-0000-0000-0000-0000000000b4";
    assert_eq!(t.put_conn(owned, &megan, &run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID)).await.0, 201);
    assert_eq!(t.put_conn(plain, &megan, &relay(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE)).await.0, 201);
    assert_eq!(t.put_conn(signin, &megan, &sign_in(BUILD01_GROUP)).await.0, 201);
    let modify = |id: &str| t.conn_url(id, "/modifyPermissions");
    let edit = share_with(SP_OBJECT, "ServicePrincipal", "CanEdit");
    assert_eq!(t.send(reqwest::Method::POST, &modify(owned), &megan, Some(&edit)).await.0, 200);
    let remove_owner = json!({ "put": [], "delete": [ { "id": format!("/providers/Microsoft.PowerApps/apis/shared_uiflow/connections/{owned}/permissions/{MEGAN}") } ] });
    let cases = [
        ("share_without_run_owner", modify(plain), megan.clone(), edit.clone(), 400, "ConnectionNotShareable"),
        ("share_sign_in_connection", modify(signin), megan.clone(), edit.clone(), 400, "ConnectionNotShareable"),
        (
            "share_with_a_user",
            modify(owned),
            megan.clone(),
            share_with(ADELE, "User", "CanView"),
            400,
            "ShareRecipientNotServicePrincipal",
        ),
        (
            "share_with_a_user_as_service_principal",
            modify(owned),
            megan.clone(),
            share_with(ADELE, "ServicePrincipal", "CanView"),
            400,
            "ShareRecipientNotServicePrincipal",
        ),
        (
            "share_can_view_with_share",
            modify(owned),
            megan.clone(),
            share_with(SP_OBJECT, "ServicePrincipal", "CanViewWithShare"),
            400,
            "CanViewWithShareNotAllowed",
        ),
        (
            "share_unknown_role",
            modify(owned),
            megan.clone(),
            share_with(SP_OBJECT, "ServicePrincipal", "Owner"),
            400,
            "InvalidPermissionRole",
        ),
        (
            "share_unknown_principal",
            modify(owned),
            megan.clone(),
            share_with("00000000-0000-0000-0000-00000000beef", "ServicePrincipal", "CanView"),
            400,
            "SharePrincipalNotFound",
        ),
        (
            "share_other_tenant_principal",
            modify(owned),
            megan.clone(),
            share_with("8eff5b36-3720-453f-bf1f-abf7a3a14ea2", "ServicePrincipal", "CanView"),
            400,
            "SharePrincipalNotFound",
        ),
        ("remove_owner_permission", modify(owned), megan.clone(), remove_owner, 400, "OwnerPermissionCannotBeRemoved"),
        ("share_by_a_non_owner", modify(owned), sp.clone(), edit.clone(), 403, "ConnectionAuthorizationFailed"),
    ];
    for (name, url, token, b, status, code) in cases {
        let (s, e) = t.send(reqwest::Method::POST, &url, &token, Some(&b)).await;
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{name}: {e}");
        snap(name, &e);
    }
    let (_, perms) = t.send(reqwest::Method::GET, &t.conn_url(owned, "/permissions"), &megan, None).await;
    assert_eq!(perms["value"].as_array().unwrap().len(), 2, "no refused change landed: {perms}");
}

// ---- bad input on the rules' endpoints -------------------------------------------------------

/// Valid bodies of every endpoint this file covers, to be broken at random.
fn valid_bodies() -> Vec<(reqwest::Method, &'static str, Value)> {
    vec![
        (reqwest::Method::PUT, "conn", run_owner(DOMAIN_ACCOUNT, DOMAIN_PASSWORD, FINANCE, SP_APP_ID)),
        (reqwest::Method::PUT, "conn", sign_in(BUILD01_GROUP)),
        (
            reqwest::Method::PUT,
            "conn",
            with_credential(
                KEY_VAULT_CREDENTIAL,
                "@environmentVariables(\"new_FinanceLogin\")",
                "@environmentVariables(\"new_FinancePassword\")",
                FINANCE,
            ),
        ),
        (reqwest::Method::POST, "modify", share_with(SP_OBJECT, "ServicePrincipal", "CanView")),
        (reqwest::Method::POST, "GrantAccess", grant("flowmachinegroup", HR, systemuser(SP_SYSTEMUSER), "ReadAccess")),
        (reqwest::Method::POST, "ModifyAccess", grant("flowmachine", HR01, systemuser(ADELE_SYSTEMUSER), "ReadAccess")),
        (
            reqwest::Method::POST,
            "RevokeAccess",
            json!({"Target": {"@odata.id": format!("flowmachinegroups({FINANCE})")}, "Revokee": systemuser(SP_SYSTEMUSER)}),
        ),
        (
            reqwest::Method::PATCH,
            "bind",
            json!({"flowmachinegroupid@odata.bind": format!("/flowmachinegroups({FINANCE})")}),
        ),
        (
            reqwest::Method::POST,
            "register",
            json!({"environment": ENV_ID, "applicationId": SP_APP_ID, "groupId": FINANCE, "name": "R-01"}),
        ),
        (reqwest::Method::PATCH, "facts", json!({"allowedTenants": [TENANT], "online": false})),
    ]
}

fn junk() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        Just(json!("00000000-0000-0000-0000-000000000000")),
        Just(json!({"value": {"pfx": 1}})),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z@.:]{1,10}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a pseudo-random path of `v` (picked by `pick`) with `with`.
fn break_at(v: &mut Value, mut pick: usize, with: Value) {
    let mut cur = v;
    loop {
        let keys: Vec<String> = match cur.as_object() {
            Some(m) if !m.is_empty() => m.keys().cloned().collect(),
            _ => {
                *cur = with;
                return;
            }
        };
        let k = &keys[pick % keys.len()];
        pick /= keys.len().max(2);
        if pick.is_multiple_of(3) {
            cur.as_object_mut().unwrap().insert(k.clone(), with);
            return;
        }
        cur = cur.as_object_mut().unwrap().get_mut(k).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, failure_persistence: None, ..Default::default() })]

    #[test]
    fn broken_bodies_on_the_rule_endpoints_get_4xx_envelopes_and_change_nothing(
        which in 0..10usize, pick in proptest::prelude::any::<usize>(), with in junk(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = spawn_server().await;
            let megan = t.megan().await;
            let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
            let (method, endpoint, mut b) = valid_bodies().swap_remove(which);
            break_at(&mut b, pick, with);
            // The world, without the journal's counters (the refused request is journaled).
            let world = || async {
                let mut s = serde_json::to_value(t.sandbox().state().await.unwrap()).unwrap();
                s.as_object_mut().unwrap().remove("journal");
                s
            };
            let before = world().await;
            let (url, token) = match endpoint {
                "conn" => (t.conn_url("00000000-0000-0000-0000-0000000000f9", ""), megan.clone()),
                "modify" => (t.conn_url("00000000-0000-0000-0000-0000000000f9", "/modifyPermissions"), megan.clone()),
                "bind" => (t.dv(&format!("flowmachines({HR01})")), megan_dv.clone()),
                "register" => (format!("{}/_mock/machines/register", t.http), String::new()),
                "facts" => (format!("{}/_mock/machines/{FIN02}", t.http), String::new()),
                action => (t.dv(action), megan_dv.clone()),
            };
            let (status, answer) = t.send(method.clone(), &url, &token, Some(&b)).await;
            assert!(status < 500, "{method} {endpoint} {b} -> {status} {answer}");
            if status >= 400 {
                assert!(answer["error"]["code"].is_string(), "no envelope: {answer}");
                assert!(before == world().await, "a refused {endpoint} changed the world: {b}");
            }
        });
    }
}
