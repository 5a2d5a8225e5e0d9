//! Property tests of the rules' invariants over random sequences of operations on the default
//! world: connection puts and deletes, grants, modifies and revokes, machine moves and
//! deletions, password rotations. After every step:
//!
//! - a connection is created or updated only on a group its caller could use at that moment;
//! - a grant or modify succeeds only with `ShareAccess`, and never gives more than the granter held;
//! - a refused operation leaves the world exactly as it was;
//! - no password, vault secret or certificate appears in what the world shows of a connection.

use super::access::{AccessChange, Grantee, Rights, ShareTarget};
use super::clock::default_start;
use super::connection::{Caller, ConnectionId, Login, ParameterSet, PutConnection, RunOwner, UIFLOW};
use super::ids::{CredentialId, EnvironmentId, MachineGroupId, MachineId, PrincipalId, TenantId};
use super::machine::Expect;
use super::membership::MachineFacts;
use super::world::{WindowsAccount, World};
use proptest::prelude::*;
use secrecy::SecretString;
use uuid::Uuid;

const ENV: &str = "37520647-dbdf-49fa-ba01-6134c14680c4";
const TENANT: &str = "c7263f1a-afcd-4e8a-a7ce-66b19698caaa";
const PRINCIPALS: [&str; 3] = [
    "9b938b62-1239-4855-aaa8-bd33df599368", // Megan, owner of everything
    "7ca44739-d892-4cfc-a132-f8d0b3e0a21d", // Adele, in the team HR bots is shared with
    "ed6535a9-e3e6-4f8a-9fd5-58313db668bf", // contoso-pipeline, User on Finance and BUILD-01
];
const GROUPS: [&str; 3] = [
    "fbd9ef90-eb39-437b-a791-919993c57260",
    "42e26112-838c-471b-b09f-958e640e9303",
    "d8ffb0fe-5a78-4d28-abf4-b5c4167600be",
];
const MACHINES: [&str; 4] = [
    "78afb281-eb1e-4e35-ba11-9460dcabf47a",
    "022701dd-0a3a-4ba3-9dbc-b24e4ec4ae0f",
    "148a5ad1-1f49-48ab-8f8f-c73dfc6ea378",
    "be3fd775-6618-4216-b243-85774e4e5361",
];
const SECRETS: [&str; 4] =
    ["Contoso-SvcRpa-Passw0rd!", "Build01-Rpa-Passw0rd!", "Hr01-Rpa-Passw0rd!", "PFX-SECRET-BLOB"];

#[derive(Debug, Clone)]
enum Op {
    Put { who: usize, id: u8, group: usize, kind: u8 },
    Delete { who: usize, id: u8 },
    Share { who: usize, group: usize, to: usize, mask: u8, kind: u8 },
    Move { who: usize, machine: usize, group: usize },
    DeleteMachine { who: usize, machine: usize },
    Rotate { machine: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..4u8, 0..3usize, 0..4u8).prop_map(|(who, id, group, kind)| Op::Put { who, id, group, kind }),
        1 => (0..3usize, 0..4u8).prop_map(|(who, id)| Op::Delete { who, id }),
        3 => (0..3usize, 0..3usize, 0..3usize, any::<u8>(), 0..3u8)
            .prop_map(|(who, group, to, mask, kind)| Op::Share { who, group, to, mask, kind }),
        1 => (0..3usize, 0..4usize, 0..3usize).prop_map(|(who, machine, group)| Op::Move { who, machine, group }),
        1 => (0..3usize, 0..4usize).prop_map(|(who, machine)| Op::DeleteMachine { who, machine }),
        1 => (0..4usize).prop_map(|machine| Op::Rotate { machine }),
    ]
}

fn caller(w: &World, i: usize) -> Caller {
    w.caller(TenantId::parse(TENANT).unwrap(), PrincipalId::parse(PRINCIPALS[i]).unwrap(), None).unwrap()
}

fn parameters(kind: u8, target: MachineGroupId) -> ParameterSet {
    let login =
        Login::Password { username: "CONTOSO\\svc-rpa".into(), password: SecretString::from(SECRETS[0].to_owned()) };
    match kind {
        0 => ParameterSet::AzureRelay { login, target },
        1 => ParameterSet::AzureRelayRunOwner {
            login,
            target,
            run_owner: RunOwner {
                app_id: super::ids::AppId::parse("71fb83d4-8950-48e6-8251-52e4b19068c8").unwrap(),
                pfx: SecretString::from(SECRETS[3].to_owned()),
            },
        },
        2 => ParameterSet::PasswordlessAttended { target },
        _ => ParameterSet::AzureRelay {
            login: Login::Credential {
                credential: CredentialId::parse("e8f63bfa-696d-4474-9bb4-e2bbe5dadb16").unwrap(),
                username: "@environmentVariables(\"new_FinanceLogin\")".into(),
                password: "@environmentVariables(\"new_FinancePassword\")".into(),
            },
            target,
        },
    }
}

fn fingerprint(w: &World) -> String {
    format!("{:?}", (&w.environments, &w.connections))
}

/// Runs one operation, checking the invariants that concern it.
fn step(w: &mut World, op: &Op, n: usize) -> Result<(), TestCaseError> {
    let env = EnvironmentId::parse(ENV).unwrap();
    let before = fingerprint(w);
    let ok = match *op {
        Op::Put { who, id, group, kind } => {
            let c = caller(w, who);
            let target = MachineGroupId::parse(GROUPS[group]).unwrap();
            let could_use = w.environment(&env).unwrap().may_use_group(target, c.principal);
            let cmd = PutConnection {
                environment: env.clone(),
                connector: UIFLOW.into(),
                id: ConnectionId::parse(&format!("00000000-0000-0000-0000-0000000000{id:02}")).unwrap(),
                body_environment: None,
                display_name: None,
                parameters: parameters(kind, target),
            };
            let ok = w.put_connection(&c, cmd, default_start(), Uuid::from_u128(n as u128)).is_ok();
            prop_assert!(!ok || could_use, "a connection on a group its caller could not use: {op:?}");
            ok
        }
        Op::Delete { who, id } => {
            let c = caller(w, who);
            let id = ConnectionId::parse(&format!("00000000-0000-0000-0000-0000000000{id:02}")).unwrap();
            w.delete_connection(&c, &env, UIFLOW, &id).is_ok()
        }
        Op::Share { who, group, to, mask, kind } => {
            let c = caller(w, who);
            let target = ShareTarget::Group(MachineGroupId::parse(GROUPS[group]).unwrap());
            let g = w.environment(&env).unwrap().group(MachineGroupId::parse(GROUPS[group]).unwrap()).cloned();
            let held = g.map_or(Rights::NONE, |g| w.environment(&env).unwrap().group_rights(&g, c.principal));
            let rights = Rights::parse(&mask_names(mask)).unwrap();
            let grantee = Grantee::Principal(PrincipalId::parse(PRINCIPALS[to]).unwrap());
            let change = match kind {
                0 => AccessChange::Grant(rights),
                1 => AccessChange::Modify(rights),
                _ => AccessChange::Revoke,
            };
            let ok = w.change_access(&c, &env, target, grantee, change).is_ok();
            if ok {
                prop_assert!(held.contains(Rights::SHARE), "shared without ShareAccess: {op:?}");
                if kind < 2 {
                    prop_assert!(held.contains(rights), "granted {} holding {}: {op:?}", rights.names(), held.names());
                }
            }
            ok
        }
        Op::Move { who, machine, group } => {
            let c = caller(w, who);
            let m = MachineId::parse(MACHINES[machine]).unwrap();
            match w.plan_move(&c, &env, m, MachineGroupId::parse(GROUPS[group]).unwrap()) {
                Ok(mv) => {
                    w.apply_move(&env, mv);
                    true
                }
                Err(_) => false,
            }
        }
        Op::DeleteMachine { who, machine } => {
            let c = caller(w, who);
            w.delete_machine(&c, &env, MachineId::parse(MACHINES[machine]).unwrap(), Expect::Any).is_ok()
        }
        Op::Rotate { machine } => {
            let accounts = vec![WindowsAccount {
                username: "CONTOSO\\svc-rpa".into(),
                password: SecretString::from(SECRETS[1].to_owned()),
                interactive_logon: true,
            }];
            let facts = MachineFacts { windows_accounts: Some(accounts), ..MachineFacts::default() };
            w.patch_machine(MachineId::parse(MACHINES[machine]).unwrap(), facts).is_some()
        }
    };
    if !ok {
        prop_assert_eq!(&before, &fingerprint(w), "a refused {:?} changed the world", op);
    }
    for c in &w.connections {
        let shown = format!("{c:?} {:?}", w.status(c));
        for s in SECRETS {
            prop_assert!(!shown.contains(s), "a secret shows in a connection: {}", shown);
        }
    }
    Ok(())
}

fn mask_names(mask: u8) -> String {
    let names =
        ["ReadAccess", "WriteAccess", "DeleteAccess", "ShareAccess", "AssignAccess", "AppendAccess", "AppendToAccess"];
    let picked: Vec<&str> = names.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| *n).collect();
    if picked.is_empty() { "None".into() } else { picked.join(",") }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_sharing_and_connection_invariants(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::from_fixture("default", &fixtures::default_world()).unwrap();
        for (n, op) in ops.iter().enumerate() {
            step(&mut w, op, n)?;
        }
    }
}
