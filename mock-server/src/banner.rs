//! The start banner: every bound origin in full, the CA path, and the world's test
//! identities, so a newcomer can copy them. All of it is test data, and says so.

use crate::domain::ids::EnvironmentId;
use fixtures::WorldFile;
use std::fmt::Write;

/// Renders the banner.
pub fn render(http: &str, https: Option<&str>, ca_path: Option<&str>, world: &WorldFile) -> String {
    // The bound origins come first, alone on their lines, so a script can read them with
    // `head` whatever ports were picked.
    let mut s = String::new();
    let _ = writeln!(s, "{http}");
    if let Some(h) = https {
        let _ = writeln!(s, "{h}");
    }
    let _ = writeln!(s, "mock-server {} is ready", env!("CARGO_PKG_VERSION"));
    if let Some(ca) = ca_path {
        let _ = writeln!(s, "  CA:     {ca}   (trust it: REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS / curl --cacert)");
    }
    let _ = writeln!(s, "  control: {http}/_mock/health, /_mock/fixture, /_mock/journal, /_mock/clock");
    let _ = writeln!(s);
    let _ = writeln!(s, "TEST DATA from world '{}' (not real credentials):", world.name);
    for t in &world.tenants {
        let _ = writeln!(s, "  tenant  {}  {}  ({})", t.id, t.domain, t.display_name);
    }
    for c in &world.public_clients {
        let _ = writeln!(s, "  public client  {}  client_id {}  (password grant)", c.display_name, c.app_id);
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
        for u in &e.system_users {
            let _ = writeln!(s, "    systemuser {}  for {}", u.system_user_id, principal_name(world, &u.principal));
        }
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
            for session in &m.sessions {
                let _ = writeln!(
                    s,
                    "    machine   {}  {}  session of {} ({:?})",
                    m.id, m.name, session.user, session.state
                );
            }
        }
        for f in &e.desktop_flows {
            let outcome = match &f.simulation.fail {
                Some(fail) => format!("fails with {}", fail.code),
                None => "succeeds".to_owned(),
            };
            let _ = writeln!(
                s,
                "    desktop flow {}  {}  runs {} s, {outcome}",
                f.workflow_id, f.name, f.simulation.duration_seconds
            );
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

/// The UPN or display name of the user or service principal with this object id.
fn principal_name<'a>(world: &'a WorldFile, object_id: &'a str) -> &'a str {
    let user = world.users.iter().find(|u| u.object_id.eq_ignore_ascii_case(object_id));
    let sp = world.service_principals.iter().find(|p| p.object_id.eq_ignore_ascii_case(object_id));
    user.map(|u| u.user_principal_name.as_str()).or(sp.map(|p| p.display_name.as_str())).unwrap_or(object_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_begins_with_the_bound_origins_and_lists_what_the_docs_use() {
        let world = fixtures::default_world();
        let text = render("http://127.0.0.1:41000", Some("https://127.0.0.1:41001"), None, &world);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["http://127.0.0.1:41000", "https://127.0.0.1:41001"]);
        assert!(!text.contains(":8080") && !text.contains(":8443"), "examples use the bound origins:\n{text}");
        for c in &world.public_clients {
            assert!(text.contains(&c.app_id), "public client {} missing", c.app_id);
        }
        // docs/rules.md names the service principal's systemuser by id.
        assert!(text.contains("systemuser bb616485-1ba2-4625-8cf8-34ad1018aa27  for contoso-pipeline"), "{text}");
    }
}
