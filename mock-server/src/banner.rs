//! The start banner: every bound origin in full, the CA path, and the world's test
//! identities, so a newcomer can copy them. All of it is test data, and says so.

use crate::domain::ids::EnvironmentId;
use fixtures::WorldFile;
use std::fmt::Write;

/// Renders the banner.
pub fn render(http: &str, https: Option<&str>, ca_path: Option<&str>, world: &WorldFile) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "mock-server {} is ready", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(s, "  http:   {http}");
    if let Some(h) = https {
        let _ = writeln!(s, "  https:  {h}");
    }
    if let Some(ca) = ca_path {
        let _ = writeln!(s, "  CA:     {ca}   (trust it: REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS / curl --cacert)");
    }
    let _ = writeln!(s, "  control: {http}/_mock/health, /_mock/fixture, /_mock/journal, /_mock/clock");
    let _ = writeln!(s);
    let _ = writeln!(s, "TEST DATA from world '{}' (not real credentials):", world.name);
    for t in &world.tenants {
        let _ = writeln!(s, "  tenant  {}  {}  ({})", t.id, t.domain, t.display_name);
    }
    for e in &world.environments {
        let host = EnvironmentId::parse(&e.id).map(|id| id.api_host()).unwrap_or_default();
        let _ = writeln!(s, "  environment  {}  ({})", e.id, e.display_name);
        let _ = writeln!(s, "    host      {host}");
        let _ = writeln!(s, "    loopback  {http}/connectivity/environments/{}/…", e.id);
        let _ = writeln!(
            s,
            "    dataverse {}.crm.dynamics.com  or  {http}/dataverse/{}/api/data/v9.2/",
            e.dataverse.org, e.dataverse.org
        );
        for g in &e.machine_groups {
            let machines: Vec<&str> = e.machines.iter().filter(|m| m.group == g.id).map(|m| m.name.as_str()).collect();
            let _ = writeln!(
                s,
                "    group     {}  {} [{:?}]  machines: {}",
                g.id,
                g.name,
                g.group_type,
                machines.join(", ")
            );
        }
        for m in &e.machines {
            for a in &m.windows_accounts {
                let _ = writeln!(s, "    machine   {}  {}  account {} / {}", m.id, m.name, a.username, a.password);
            }
        }
        for c in &e.credentials {
            let _ = writeln!(
                s,
                "    credential {}  {} [{:?}]  username @environmentVariables(\"{}\")  password {}",
                c.id,
                c.name,
                c.kind,
                c.username_variable,
                c.password_variable.as_deref().map_or("none".to_owned(), |v| format!("@environmentVariables(\"{v}\")"))
            );
        }
    }
    for sp in &world.service_principals {
        let _ = writeln!(
            s,
            "  service principal  {}  client_id {}  secret {}",
            sp.display_name,
            sp.app_id,
            sp.client_secret.as_deref().unwrap_or("(certificate only)")
        );
    }
    for u in &world.users {
        let _ = writeln!(s, "  user  {}  password {}", u.user_principal_name, u.password);
    }
    s
}
