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
