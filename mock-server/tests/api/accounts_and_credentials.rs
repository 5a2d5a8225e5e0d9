//! Windows account names as DECISIONS.md defines them, sharing a stand-alone machine as one
//! unit with its Default group, and credentials made, read, changed, shared and deleted through
//! Dataverse (`credentials`, `environmentvariabledefinitions`, `environmentvariablevalues`).

use crate::helpers::*;
use crate::rules::{grant, relay, status_of, systemuser};
use serde_json::json;

const BUILD01_GROUP: &str = "fbd9ef90-eb39-437b-a791-919993c57260";
const BUILD01: &str = "78afb281-eb1e-4e35-ba11-9460dcabf47a";
const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const FIN02: &str = "148a5ad1-1f49-48ab-8f8f-c73dfc6ea378";
const ADELE_UPN: &str = "adele@contoso.onmicrosoft.com";
const ADELE_PASSWORD: &str = "Adele-Test-Passw0rd!";
const ADELE_SYSTEMUSER: &str = "22baff68-489e-46eb-8578-2ff9bc964298";

#[tokio::test]
async fn an_entra_account_written_azuread_backslash_upn_and_a_bare_local_name_sign_in() {
    let t = spawn_server().await;
    let sp = t.sp_token(PP_SCOPE).await;
    let cases = [
        ("00000000-0000-0000-0000-0000000005a1", "AzureAD\\rpa@contoso.onmicrosoft.com", "Rpa-Entra-Passw0rd!"),
        ("00000000-0000-0000-0000-0000000005a2", "azuread\\RPA@contoso.onmicrosoft.com", "Rpa-Entra-Passw0rd!"),
        ("00000000-0000-0000-0000-0000000005a3", "rpa", "Build01-Rpa-Passw0rd!"),
        ("00000000-0000-0000-0000-0000000005a4", "LOCAL\\rpa", "Build01-Rpa-Passw0rd!"),
    ];
    for (id, user, password) in cases {
        let (s, c) = t.put_conn(id, &sp, &relay(user, password, BUILD01_GROUP)).await;
        assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "{user}: {c}");
    }
    // A domain-style name is another account than the Entra one, even with its password.
    let (s, c) = t
        .put_conn(
            "00000000-0000-0000-0000-0000000005a5",
            &sp,
            &relay("CONTOSO\\rpa", "Rpa-Entra-Passw0rd!", BUILD01_GROUP),
        )
        .await;
    assert_eq!((s, status_of(&c)), (201, ("Error", Some("WindowsIdentityIncorrect"))), "{c}");
}

#[tokio::test]
async fn sharing_a_stand_alone_machine_shares_its_default_group() {
    let t = spawn_server().await;
    let adele = t.pp_user_token(TENANT, ADELE_UPN, ADELE_PASSWORD).await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let b = relay("BUILD-01\\rpa", "Build01-Rpa-Passw0rd!", BUILD01_GROUP);
    let (s, _) = t.put_conn("00000000-0000-0000-0000-0000000006a1", &adele, &b).await;
    assert_eq!(s, 403, "BUILD-01 is not shared with Adele yet");
    let g = grant("flowmachine", BUILD01, systemuser(ADELE_SYSTEMUSER), "ReadAccess");
    let (s, r) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&g)).await;
    assert_eq!(s, 204, "{r}");
    let (s, c) = t.put_conn("00000000-0000-0000-0000-0000000006a1", &adele, &b).await;
    assert_eq!((s, status_of(&c)), (201, ("Connected", None)), "the machine's share is its group's: {c}");
    let url = t.dv(&format!(
        "RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={{'@odata.id':'flowmachinegroups({BUILD01_GROUP})'}}"
    ));
    let (_, r) = t.send(reqwest::Method::GET, &url, &megan_dv, None).await;
    let owners: Vec<&str> =
        r["PrincipalAccesses"].as_array().unwrap().iter().filter_map(|p| p["Principal"]["ownerid"].as_str()).collect();
    assert!(owners.contains(&ADELE_SYSTEMUSER), "the Default group lists the share: {r}");
    // Revoking on the machine takes it back from the unit.
    let revoke = json!({
        "Target": { "@odata.id": format!("flowmachines({BUILD01})") },
        "Revokee": { "@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": ADELE_SYSTEMUSER }
    });
    let (s, _) = t.send(reqwest::Method::POST, &t.dv("RevokeAccess"), &megan_dv, Some(&revoke)).await;
    assert_eq!(s, 204);
    let (s, _) = t.put_conn("00000000-0000-0000-0000-0000000006a2", &adele, &b).await;
    assert_eq!(s, 403, "revoked on the machine, gone from the group");
}

#[tokio::test]
async fn sharing_one_machine_of_a_standard_group_does_not_open_the_group() {
    let t = spawn_server().await;
    let adele = t.pp_user_token(TENANT, ADELE_UPN, ADELE_PASSWORD).await;
    let adele_dv = t.dv_token_of(Some((ADELE_UPN, ADELE_PASSWORD))).await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let g = grant("flowmachine", FIN02, systemuser(ADELE_SYSTEMUSER), "ReadAccess");
    let (s, r) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&g)).await;
    assert_eq!(s, 204, "{r}");
    let (s, m) =
        t.send(reqwest::Method::GET, &t.dv(&format!("flowmachines({FIN02})?$select=name")), &adele_dv, None).await;
    assert_eq!((s, m["name"].as_str()), (200, Some("FIN-02")), "Adele reads the machine: {m}");
    let (s, g) = t.send(reqwest::Method::GET, &t.dv(&format!("flowmachinegroups({FINANCE})")), &adele_dv, None).await;
    assert_eq!(s, 404, "but not its group: {g}");
    let b = relay("CONTOSO\\svc-rpa", "Contoso-SvcRpa-Passw0rd!", FINANCE);
    let (s, c) = t.put_conn("00000000-0000-0000-0000-0000000006a3", &adele, &b).await;
    assert_eq!((s, c["error"]["code"].as_str()), (403, Some("ConnectionAuthorizationFailed")), "{c}");
}

// ---- credentials made from nothing through Dataverse --------------------------------------

const HR: &str = "d8ffb0fe-5a78-4d28-abf4-b5c4167600be";
const HR01: &str = "be3fd775-6618-4216-b243-85774e4e5361";
/// A password no fixture holds, so that finding it anywhere is this test's leak.
const VAULT_PASSWORD: &str = "Vault-Only-Passw0rd-73";

impl TestServer {
    /// POST to a Dataverse table with `Prefer: return=representation`: status and row.
    async fn dv_create(&self, set: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.dv(set))
            .bearer_auth(token)
            .header("Prefer", "return=representation")
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

fn credential_body(credential: &str, group: &str) -> serde_json::Value {
    crate::rules::with_credential(
        credential,
        "@environmentVariables(\"new_HrLogin\")",
        "@environmentVariables(\"new_HrPassword\")",
        group,
    )
}

#[tokio::test]
async fn a_key_vault_credential_is_made_from_nothing_shared_used_changed_and_deleted_through_dataverse() {
    let t = spawn_server().await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let adele_dv = t.dv_token_of(Some((ADELE_UPN, ADELE_PASSWORD))).await;
    let adele = t.pp_user_token(TENANT, ADELE_UPN, ADELE_PASSWORD).await;
    // Arrange: HR-01's account gets a password that only the vault will know.
    let accounts = vec![account("HR-01\\rpa", VAULT_PASSWORD)];
    t.set_machine(HR01, MachineFacts { windows_accounts: Some(accounts), ..Default::default() }).await;
    let secret = t.sandbox().set_vault_secret("contoso-kv", "hr-rpa", VAULT_PASSWORD).await.unwrap();
    let reference = secret.reference.clone();
    assert!(!format!("{secret:?}").contains(VAULT_PASSWORD), "the vault does not echo the secret");

    // Act: the portal's "New credential": two variables, their values, the credential.
    let (s, login) = t
        .dv_create(
            "environmentvariabledefinitions",
            &megan_dv,
            &json!({"schemaname": "new_HrLogin", "displayname": "HR login", "type": 100000000}),
        )
        .await;
    assert_eq!(s, 201, "{login}");
    let login_id = login["environmentvariabledefinitionid"].as_str().unwrap().to_owned();
    let (s, password) = t
        .dv_create(
            "environmentvariabledefinitions",
            &megan_dv,
            &json!({"schemaname": "new_HrPassword", "displayname": "HR password", "type": 100000005}),
        )
        .await;
    assert_eq!(s, 201, "{password}");
    let password_id = password["environmentvariabledefinitionid"].as_str().unwrap().to_owned();
    let bind = |id: &str| format!("/environmentvariabledefinitions({id})");
    let (s, e) = t
        .dv_create(
            "environmentvariablevalues",
            &megan_dv,
            &json!({"value": "not-a-reference", "EnvironmentVariableDefinitionId@odata.bind": bind(&password_id)}),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("InvalidKeyVaultReference")), "{e}");
    for (id, value) in [(&login_id, "HR-01\\rpa"), (&password_id, reference.as_str())] {
        let (s, v) = t
            .dv_create(
                "environmentvariablevalues",
                &megan_dv,
                &json!({"value": value, "EnvironmentVariableDefinitionId@odata.bind": bind(id)}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["_environmentvariabledefinitionid_value"], id.as_str());
    }
    let (s, e) = t
        .dv_create(
            "credentials",
            &megan_dv,
            &json!({"name": "HR (Key Vault)", "connectiontype": 1, "username@odata.bind": bind(&password_id),
                    "password@odata.bind": bind(&password_id)}),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("CredentialVariableMismatch")), "{e}");
    let (s, c) = t
        .dv_create(
            "credentials",
            &megan_dv,
            &json!({"name": "HR (Key Vault)", "connectiontype": 1, "credentialtype": 1,
                    "username@odata.bind": bind(&login_id), "password@odata.bind": bind(&password_id)}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(
        (c["_username_value"].as_str(), c["_password_value"].as_str()),
        (Some(login_id.as_str()), Some(password_id.as_str()))
    );
    let credential = c["credentialid"].as_str().unwrap().to_owned();

    // Not shared yet: Adele cannot see it or use it.
    let (s, _) = t.send(reqwest::Method::GET, &t.dv(&format!("credentials({credential})")), &adele_dv, None).await;
    assert_eq!(s, 404);
    let (s, e) = t.put_conn("00000000-0000-0000-0000-0000000007a1", &adele, &credential_body(&credential, HR)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("CredentialNotShared")), "{e}");
    let share = json!({
        "Target": {"@odata.type": "Microsoft.Dynamics.CRM.credential", "credentialid": credential},
        "PrincipalAccess": {"Principal": systemuser(ADELE_SYSTEMUSER), "AccessMask": "ReadAccess"}
    });
    let (s, r) = t.send(reqwest::Method::POST, &t.dv("GrantAccess"), &megan_dv, Some(&share)).await;
    assert_eq!(s, 204, "{r}");
    let (s, conn) = t.put_conn("00000000-0000-0000-0000-0000000007a1", &adele, &credential_body(&credential, HR)).await;
    assert_eq!((s, status_of(&conn)), (201, ("Connected", None)), "the vault's password signs in: {conn}");

    // Assert: the rows say which variables, never the password.
    let (s, rows) =
        t.send(reqwest::Method::GET, &t.dv("credentials?$select=name,connectiontype"), &adele_dv, None).await;
    assert_eq!(s, 200);
    assert_eq!(rows["value"].as_array().unwrap().len(), 1, "Adele reads the one shared with her: {rows}");
    let (_, values) = t
        .send(
            reqwest::Method::GET,
            &t.dv(&format!(
                "environmentvariablevalues?$filter=_environmentvariabledefinitionid_value eq {password_id}"
            )),
            &megan_dv,
            None,
        )
        .await;
    assert_eq!(values["value"][0]["value"], reference.as_str(), "a Secret's value is its reference: {values}");
    let url = t.dv(&format!(
        "RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={{'@odata.id':'credentials({credential})'}}"
    ));
    let (_, shared) = t.send(reqwest::Method::GET, &url, &megan_dv, None).await;
    assert_eq!(shared["PrincipalAccesses"][0]["Principal"]["ownerid"], ADELE_SYSTEMUSER, "{shared}");
    let journal = t.entries(JournalFilter::all()).await.to_string();
    assert!(!journal.contains(VAULT_PASSWORD), "the password never went through Dataverse or the journal");

    // A User share reads but may not rename; the owner may, and may delete.
    let rename = json!({"name": "HR bots (Key Vault)"});
    let row = t.dv(&format!("credentials({credential})"));
    let (s, e) = t.send(reqwest::Method::PATCH, &row, &adele_dv, Some(&rename)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("0x80040220")), "{e}");
    let (s, _) = t.send(reqwest::Method::PATCH, &row, &megan_dv, Some(&rename)).await;
    assert_eq!(s, 204);
    let (s, _) = t.send(reqwest::Method::DELETE, &row, &megan_dv, None).await;
    assert_eq!(s, 204);
    let (_, conn) = t.get_conn("00000000-0000-0000-0000-0000000007a1", &adele).await;
    assert_eq!(status_of(&conn), ("Error", Some("WindowsIdentityIncorrect")), "its credential is gone: {conn}");
}

#[tokio::test]
async fn the_fixture_credentials_and_variables_are_rows_too() {
    let t = spawn_server().await;
    let megan_dv = t.dv_token_of(Some((USER_UPN, USER_PASSWORD))).await;
    let sp_dv = t.dv_token_of(None).await;
    let (s, rows) = t
        .send(reqwest::Method::GET, &t.dv("credentials?$select=name,connectiontype&$orderby=name"), &megan_dv, None)
        .await;
    assert_eq!(s, 200, "{rows}");
    let kinds: Vec<(&str, i64)> = rows["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["connectiontype"].as_i64().unwrap()))
        .collect();
    assert_eq!(kinds, [("BUILD-01 account (CyberArk)", 4), ("Finance service account (Key Vault)", 1)]);
    let (_, rows) = t.send(reqwest::Method::GET, &t.dv("credentials?$select=name"), &sp_dv, None).await;
    assert_eq!(rows["value"].as_array().unwrap().len(), 1, "the service principal reads the one shared with it");
    let (_, values) = t
        .send(reqwest::Method::GET, &t.dv("environmentvariablevalues?$select=schemaname,value"), &megan_dv, None)
        .await;
    let text = values.to_string();
    assert!(text.contains("Microsoft.KeyVault/vaults/mock-vault/secrets/new-FinancePassword"), "{values}");
    assert!(!text.contains("Contoso-SvcRpa-Passw0rd!"), "the vault's answer is not a row");
    let (s, e) = t.dv_create("credentials", &megan_dv, &json!({"name": "List", "connectiontype": 2})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("CredentialTypeNotEmulated")), "{e}");
}
