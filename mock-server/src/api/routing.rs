//! Addressing (DECISIONS.md): a request is routed by its `Host` when that is a real host,
//! otherwise by its path form on any host. Real-host requests are rewritten to their path
//! form so one handler serves both doors. Then the request is attributed to the sandbox that
//! owns the tenant, environment or org it names.

use super::ApiError;
use crate::domain::ids::EnvironmentId;
use crate::hosts::{BAP_HOST, ENV_HOST_SUFFIX, IDENTITY_HOSTS, TENANT_API_HOST, crm_org, host_name, is_microsoft_host};
use crate::operation::Operation;
use crate::sandbox::{DEFAULT_SANDBOX, Registry, Sandbox};
use axum::http::HeaderMap;
use std::sync::Arc;

/// The emulated surfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Entra ID token and discovery endpoints.
    Identity,
    /// Power Platform API (`/connectivity/…`).
    PowerPlatform,
    /// Dataverse Web API.
    Dataverse,
    /// BAP environment metadata.
    Bap,
    /// Desktop-flow connector runtime (mock-defined path).
    Runtime,
    /// The mock's control surface.
    Control,
    /// Nothing the mock serves.
    Unknown,
}

impl Surface {
    /// Name used in the journal.
    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::PowerPlatform => "powerplatform",
            Self::Dataverse => "dataverse",
            Self::Bap => "bap",
            Self::Runtime => "runtime",
            Self::Control => "control",
            Self::Unknown => "unknown",
        }
    }
}

/// What the pipeline decided, attached to each request.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// Surface.
    pub surface: Surface,
    /// The named operation, classified once here.
    pub operation: Operation,
    /// Sandbox the request belongs to.
    pub sandbox: String,
    /// `scheme://host[:port]` the client called (identity builds issuers from it).
    pub origin: String,
    /// Environment named by host or path, when any.
    pub environment: Option<String>,
    /// The sandbox itself, found once by the pipeline (`None` on the control surface, whose
    /// calls name a sandbox that may not exist).
    pub cell: Option<Arc<Sandbox>>,
    /// This request's correlation id (nil on the control surface).
    pub correlation: uuid::Uuid,
}

impl RouteInfo {
    /// The sandbox the request belongs to.
    pub fn cell(&self) -> Result<&Arc<Sandbox>, ApiError> {
        self.cell.as_ref().ok_or_else(|| crate::sandbox::SandboxError::NotFound(self.sandbox.clone()).into())
    }
}

/// What a request names, before the registry is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution {
    /// A tenant id or domain.
    Tenant(String),
    /// A user's UPN (realm discovery).
    Upn(String),
    /// An environment id.
    Environment(String),
    /// An environment host prefix (`37520647dbdf49faba016134c14680.c4`); the path gets rewritten.
    EnvironmentHost {
        /// Host prefix.
        prefix: String,
        /// Path after `/connectivity`.
        rest: String,
    },
    /// A Dataverse org.
    Org(String),
    /// The environment in `$filter=environment eq '…'`, if any.
    EnvironmentFilter,
    /// Nothing: the default sandbox.
    None,
}

/// A classified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// Surface.
    pub surface: Surface,
    /// Path to route on instead of the one sent (real-host requests).
    pub rewrite: Option<String>,
    /// What it names.
    pub attribution: Attribution,
}

/// A path's non-empty segments; every route has fewer than 16, so most paths need no allocation.
fn segments(path: &str) -> smallvec::SmallVec<[&str; 16]> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Decides the surface from host and path. Pure: the registry is consulted later.
pub fn classify(method: &str, host: &str, path: &str, query: &str) -> Result<Classified, ApiError> {
    let name = host_name(host);
    let route = |surface, rewrite, attribution| Ok(Classified { surface, rewrite, attribution });
    if path == "/_mock" || path.starts_with("/_mock/") {
        return route(Surface::Control, None, Attribution::None);
    }
    if IDENTITY_HOSTS.contains(&name.as_ref()) {
        return classify_identity(path, query).map_or_else(
            || Err(ApiError::NotImplemented(not_implemented_message(Surface::Identity, method, path))),
            |a| route(Surface::Identity, None, a),
        );
    }
    if let Some(prefix) = name.strip_suffix(ENV_HOST_SUFFIX) {
        if let Some(env) = runtime_environment(path) {
            // The host and the path each name an environment; a client mixing two would
            // otherwise act on one while believing it acts on the other.
            if EnvironmentId::parse(env).is_ok_and(|e| e.host_prefix() != prefix) {
                return Err(ApiError::bad_request(
                    "EnvironmentHostMismatch",
                    format!("The path names the environment '{env}' but the host '{name}' is another environment's."),
                ));
            }
            return route(Surface::Runtime, None, Attribution::Environment(env.to_owned()));
        }
        return match path.strip_prefix("/connectivity") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => route(
                Surface::PowerPlatform,
                None,
                Attribution::EnvironmentHost { prefix: prefix.to_owned(), rest: rest.to_owned() },
            ),
            _ => Err(ApiError::NotImplemented(not_implemented_message(Surface::PowerPlatform, method, path))),
        };
    }
    if name == TENANT_API_HOST {
        if let Some(env) = runtime_environment(path) {
            return route(Surface::Runtime, None, Attribution::Environment(env.to_owned()));
        }
        return match segments(path).as_slice() {
            ["connectivity", "environments", env, ..] => {
                route(Surface::PowerPlatform, None, Attribution::Environment((*env).to_owned()))
            }
            _ => Err(ApiError::NotImplemented(not_implemented_message(Surface::PowerPlatform, method, path))),
        };
    }
    if let Some(org) = crm_org(&name) {
        if !path.starts_with("/api/data/") {
            return Err(ApiError::NotImplemented(not_implemented_message(Surface::Dataverse, method, path)));
        }
        return route(Surface::Dataverse, Some(format!("/dataverse/{org}{path}")), Attribution::Org(org.to_owned()));
    }
    if name == BAP_HOST {
        return route(Surface::Bap, None, bap_attribution(path));
    }
    if is_microsoft_host(&name) {
        return Err(ApiError::NotImplemented(format!(
            "The mock does not emulate the host '{name}'. It serves login.microsoftonline.com, \
             {{environment}}.environment.api.powerplatform.com, api.powerplatform.com, {{org}}.crm.dynamics.com \
             and api.bap.microsoft.com, and every surface's path form on any host (GET /_mock/health lists them)."
        )));
    }
    let segs = segments(path);
    match segs.as_slice() {
        ["connectivity", "environments", env, ..] => {
            route(Surface::PowerPlatform, None, Attribution::Environment((*env).to_owned()))
        }
        ["connectivity", ..] => route(Surface::PowerPlatform, None, Attribution::EnvironmentFilter),
        ["dataverse", org, ..] => route(Surface::Dataverse, None, Attribution::Org((*org).to_owned())),
        ["providers", p, ..] if p.eq_ignore_ascii_case("Microsoft.BusinessAppPlatform") => {
            route(Surface::Bap, None, bap_attribution(path))
        }
        ["apim", "uiflow", env, ..] => route(Surface::Runtime, None, Attribution::Environment((*env).to_owned())),
        _ => match classify_identity(path, query) {
            Some(a) => route(Surface::Identity, None, a),
            None => Err(ApiError::NotImplemented(not_implemented_message(Surface::Unknown, method, path))),
        },
    }
}

/// The environment of the connector runtime's path form `/apim/uiflow/{environmentId}/…`,
/// served on every host that serves the Power Platform API.
fn runtime_environment(path: &str) -> Option<&str> {
    match segments(path).as_slice() {
        ["apim", "uiflow", env, ..] => Some(env),
        _ => None,
    }
}

fn bap_attribution(path: &str) -> Attribution {
    let segs = segments(path);
    segs.iter()
        .position(|s| s.eq_ignore_ascii_case("environments"))
        .and_then(|i| segs.get(i + 1))
        .map_or(Attribution::None, |e| Attribution::Environment((*e).to_owned()))
}

/// Identity path forms; `None` when the path is not one of them.
fn classify_identity(path: &str, query: &str) -> Option<Attribution> {
    let segs = segments(path);
    match segs.as_slice() {
        ["common", "userrealm", upn] => Some(Attribution::Upn((*upn).to_owned())),
        ["common", "discovery", "instance"] => {
            // The tenant is inside `authorization_endpoint=https://host/{tenant}/oauth2/…`.
            let endpoint = crate::journal::form_pairs(query)
                .into_iter()
                .find(|(k, _)| k == "authorization_endpoint")
                .map(|(_, v)| v)
                .unwrap_or_default();
            let tenant = endpoint.split('/').filter(|s| !s.is_empty()).nth(2).unwrap_or("").to_owned();
            Some(if tenant.is_empty() { Attribution::None } else { Attribution::Tenant(tenant) })
        }
        [tenant, "oauth2", ..] | [tenant, "v2.0", ..] | [tenant, "discovery", ..] => {
            Some(Attribution::Tenant((*tenant).to_owned()))
        }
        _ => None,
    }
}

/// `$filter=environment eq '…'` → the id.
pub fn environment_from_filter(query: &str) -> Option<String> {
    let filter = crate::journal::form_pairs(query).into_iter().find(|(k, _)| k == "$filter")?.1;
    let rest = filter.trim().strip_prefix("environment")?.trim_start().strip_prefix("eq")?.trim();
    Some(rest.trim_matches('\'').to_owned())
}

/// Finds the sandbox (and environment) a classified request belongs to; for a real
/// environment host, also the path it is rewritten to. Unknown names fall back to `default`.
pub fn attribute(
    reg: &Registry,
    c: &Classified,
    query: &str,
) -> (Arc<Sandbox>, Option<String>, Result<Option<String>, ApiError>) {
    let or_default = |sb: Option<Arc<Sandbox>>| sb.unwrap_or_else(|| reg.default_sandbox());
    match &c.attribution {
        Attribution::Tenant(t) => (or_default(reg.by_tenant(t)), None, Ok(c.rewrite.clone())),
        Attribution::Upn(u) => (or_default(reg.by_upn(u)), None, Ok(c.rewrite.clone())),
        Attribution::Environment(e) => (or_default(reg.by_environment(e)), Some(e.clone()), Ok(c.rewrite.clone())),
        Attribution::Org(o) => match reg.by_org(o) {
            Some((sandbox, env)) => (sandbox, Some(env.to_string()), Ok(c.rewrite.clone())),
            None => (reg.default_sandbox(), None, Ok(c.rewrite.clone())),
        },
        Attribution::EnvironmentHost { prefix, rest } => match reg.by_environment_host(prefix) {
            Some((sandbox, env)) => {
                let path = format!("/connectivity/environments/{env}{rest}");
                (sandbox, Some(env.to_string()), Ok(Some(path)))
            }
            None => (
                reg.default_sandbox(),
                None,
                Err(ApiError::NotFound {
                    code: "UnknownEnvironmentHost",
                    message: format!(
                        "No environment in the mock has the host '{prefix}{ENV_HOST_SUFFIX}'. The host is the environment id without hyphens, with a period before its last two characters."
                    ),
                }),
            ),
        },
        Attribution::EnvironmentFilter => match environment_from_filter(query) {
            Some(e) => (or_default(reg.by_environment(&e)), Some(e), Ok(c.rewrite.clone())),
            None => (reg.default_sandbox(), None, Ok(c.rewrite.clone())),
        },
        Attribution::None => (reg.default_sandbox(), None, Ok(c.rewrite.clone())),
    }
}

/// The named operation of a request, from its surface, method and the path its handler sees
/// (after a real-host rewrite). Runs have operations before they are served.
pub fn operation(surface: Surface, method: &str, path: &str) -> Operation {
    let segs = segments(path);
    let is = |m: &str| method.eq_ignore_ascii_case(m);
    let by_method =
        |pairs: &[(&str, Operation)]| pairs.iter().find(|(m, _)| is(m)).map_or(Operation::Unmatched, |(_, op)| *op);
    match surface {
        Surface::Control => Operation::Control,
        Surface::Unknown => Operation::Unmatched,
        Surface::Identity => match segs.as_slice() {
            [_, "oauth2", "v2.0", "token"] => by_method(&[("POST", Operation::IdentityToken)]),
            [_, "v2.0", ".well-known", "openid-configuration"] => {
                by_method(&[("GET", Operation::IdentityOpenidConfiguration)])
            }
            [_, "discovery", "v2.0", "keys"] => by_method(&[("GET", Operation::IdentityKeys)]),
            ["common", "discovery", "instance"] => by_method(&[("GET", Operation::IdentityInstanceDiscovery)]),
            ["common", "userrealm", _] => by_method(&[("GET", Operation::IdentityUserRealm)]),
            _ => Operation::Unmatched,
        },
        Surface::PowerPlatform => {
            let rest = match segs.as_slice() {
                ["connectivity", "environments", _, rest @ ..] | ["connectivity", rest @ ..] => rest,
                _ => return Operation::Unmatched,
            };
            match rest {
                ["connectors", _, "connections", _, "permissions"] => {
                    by_method(&[("GET", Operation::ConnectionsPermissions)])
                }
                ["connectors", _, "connections", _, "modifyPermissions"] => {
                    by_method(&[("POST", Operation::ConnectionsModifyPermissions)])
                }
                ["connectors", _, "connections", _] => by_method(&[
                    ("PUT", Operation::ConnectionsPut),
                    ("GET", Operation::ConnectionsGet),
                    ("DELETE", Operation::ConnectionsDelete),
                ]),
                ["connectors", _, "connections"] | ["connections"] => by_method(&[("GET", Operation::ConnectionsList)]),
                _ => Operation::Unmatched,
            }
        }
        Surface::Bap => {
            let at = segs.iter().position(|s| s.eq_ignore_ascii_case("environments"));
            match at.map(|i| segs.len() - i) {
                Some(1) => by_method(&[("GET", Operation::BapListEnvironments)]),
                Some(2) => by_method(&[("GET", Operation::BapGetEnvironment)]),
                _ => Operation::Unmatched,
            }
        }
        Surface::Runtime => match segs.as_slice() {
            ["apim", "uiflow", _, _, "usersession", "testconnection"] => {
                by_method(&[("GET", Operation::RuntimeTestConnection)])
            }
            ["apim", "uiflow", _, _, "uiFlowTypes", _, "uiflows"] => {
                by_method(&[("GET", Operation::RuntimeListUIFlows)])
            }
            ["apim", "uiflow", _, _, "uiFlowTypes", _, "uiflows", _, "runs"] => {
                by_method(&[("POST", Operation::RuntimeRunUIFlow)])
            }
            ["apim", "uiflow", _, _, "uiFlowTypes", _, "uiflows", _, "runs", _] => {
                by_method(&[("GET", Operation::RuntimeGetRunStatus)])
            }
            ["apim", "uiflow", _, _, "uiFlowTypes", _, "uiflows", _, "$metadata.json"] => {
                by_method(&[("GET", Operation::RuntimeGetUIFlowMetadata)])
            }
            ["apim", "uiflow", _, _, "status"] => by_method(&[("GET", Operation::RuntimeStatus)]),
            _ => Operation::Unmatched,
        },
        Surface::Dataverse => {
            // `/dataverse/{org}/api/data/{version}/{rest}`
            let rest = path.splitn(7, '/').nth(6).unwrap_or("");
            match segs.as_slice() {
                ["dataverse", _, "api", "data", _, _, ..] => super::dataverse::operation(method, rest),
                _ => Operation::Unmatched,
            }
        }
    }
}

/// The sandbox a control call addresses: `x-mock-sandbox` header, else `?sandbox=`, else `default`.
pub fn control_sandbox(headers: &HeaderMap, query: &str) -> String {
    headers
        .get("x-mock-sandbox")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| crate::journal::form_pairs(query).into_iter().find(|(k, _)| k == "sandbox").map(|(_, v)| v))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SANDBOX.to_owned())
}

/// What the mock serves, per surface: real hosts and path forms (DECISIONS' addressing table).
/// The one description behind `GET /_mock/health` and every "not implemented" message.
const SERVED: &[(Surface, &str, &str)] = &[
    (
        Surface::Identity,
        "login.microsoftonline.com",
        "POST /{tenant}/oauth2/v2.0/token, GET /{tenant}/v2.0/.well-known/openid-configuration, GET /{tenant}/discovery/v2.0/keys, GET /common/discovery/instance, GET /common/userrealm/{upn}",
    ),
    (
        Surface::PowerPlatform,
        "{environment}.environment.api.powerplatform.com (/connectivity/…) and api.powerplatform.com (/connectivity/environments/{environmentId}/…)",
        "/connectivity/environments/{environmentId}/…",
    ),
    (Surface::Dataverse, "{org}.crm.dynamics.com (/api/data/v9.2/…)", "/dataverse/{org}/api/data/v9.2/…"),
    (
        Surface::Bap,
        "api.bap.microsoft.com",
        "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{environmentId}",
    ),
    (
        Surface::Runtime,
        "{environment}.environment.api.powerplatform.com and api.powerplatform.com",
        "/apim/uiflow/{environmentId}/{connectionId}/… (mock-defined)",
    ),
    (Surface::Control, "", "/_mock/…"),
];

fn served_text(surface: Surface, host: &str, paths: &str) -> String {
    let on_host = if host.is_empty() { String::new() } else { format!("on {host}, or ") };
    format!("{}: {on_host}{paths} on any host", surface.name())
}

/// The surfaces the mock serves, for `GET /_mock/health`.
pub fn surfaces_served() -> &'static serde_json::value::RawValue {
    // Fixed for the process, and the health route is what readiness probes poll: written once.
    static LIST: std::sync::LazyLock<Box<serde_json::value::RawValue>> = std::sync::LazyLock::new(|| {
        let list: Vec<serde_json::Value> = SERVED
            .iter()
            .map(|(surface, host, paths)| {
                serde_json::json!({ "surface": surface.name(), "realHost": host, "pathForm": paths })
            })
            .collect();
        serde_json::value::to_raw_value(&list).unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned())
    });
    &LIST
}

/// "Not implemented by the mock", naming what it does serve on that surface (everything, when
/// the surface is unknown).
pub fn not_implemented_message(surface: Surface, method: &str, path: &str) -> String {
    let what = if method.is_empty() { path.to_owned() } else { format!("{method} {path}") };
    let serves: Vec<String> = SERVED
        .iter()
        .filter(|(s, ..)| *s == surface || matches!(surface, Surface::Unknown | Surface::Control))
        .map(|(s, host, paths)| served_text(*s, host, paths))
        .collect();
    format!("'{what}' is not implemented by the mock. It serves {} (GET /_mock/health lists them).", serves.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(host: &str, path: &str) -> Classified {
        classify("GET", host, path, "").unwrap()
    }

    #[test]
    fn real_hosts_route_by_host() {
        assert_eq!(
            c("login.microsoftonline.com", "/contoso.onmicrosoft.com/oauth2/v2.0/token").surface,
            Surface::Identity
        );
        let pp = c(
            "37520647dbdf49faba016134c14680.c4.environment.api.powerplatform.com:443",
            "/connectivity/connectors/shared_uiflow/connections/x",
        );
        assert_eq!(
            pp.attribution,
            Attribution::EnvironmentHost {
                prefix: "37520647dbdf49faba016134c14680.c4".into(),
                rest: "/connectors/shared_uiflow/connections/x".into()
            }
        );
        let dv = c("contosodev.crm4.dynamics.com", "/api/data/v9.2/flowmachines");
        assert_eq!(dv.rewrite.as_deref(), Some("/dataverse/contosodev/api/data/v9.2/flowmachines"));
        assert_eq!(
            c("api.bap.microsoft.com", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/e1")
                .attribution,
            Attribution::Environment("e1".into())
        );
    }

    #[test]
    fn path_forms_route_on_any_host() {
        for host in ["127.0.0.1:8080", "localhost", "mock:9", ""] {
            assert_eq!(c(host, "/c7263f1a-afcd-4e8a-a7ce-66b19698caaa/oauth2/v2.0/token").surface, Surface::Identity);
            assert_eq!(
                c(host, "/connectivity/environments/e/connections").attribution,
                Attribution::Environment("e".into())
            );
            assert_eq!(c(host, "/dataverse/contosodev/api/data/v9.2/WhoAmI").surface, Surface::Dataverse);
            assert_eq!(c(host, "/apim/uiflow/e/c/usersession/testconnection").surface, Surface::Runtime);
            assert_eq!(c(host, "/_mock/health").surface, Surface::Control);
        }
    }

    #[test]
    fn unknown_hosts_and_paths_are_not_implemented() {
        assert!(matches!(classify("GET", "graph.microsoft.com", "/v1.0/me", ""), Err(ApiError::NotImplemented(_))));
        assert!(matches!(classify("GET", "127.0.0.1", "/nothing/here", ""), Err(ApiError::NotImplemented(_))));
        assert!(matches!(
            classify("GET", "x.environment.api.powerplatform.com", "/powerautomate/flows", ""),
            Err(ApiError::NotImplemented(_))
        ));
    }

    #[test]
    fn the_tenant_level_host_serves_the_environment_path_forms_and_the_runtime() {
        let pp = c("api.powerplatform.com:8443", "/connectivity/environments/e1/connectors/shared_uiflow/connections");
        assert_eq!(
            (pp.surface, pp.attribution, pp.rewrite),
            (Surface::PowerPlatform, Attribution::Environment("e1".into()), None)
        );
        let rt = c("api.powerplatform.com", "/apim/uiflow/e1/c1/usersession/testconnection");
        assert_eq!((rt.surface, rt.attribution), (Surface::Runtime, Attribution::Environment("e1".into())));
        for path in ["/connectivity/connections", "/powerautomate/flows", "/"] {
            assert!(
                matches!(classify("GET", "api.powerplatform.com", path, ""), Err(ApiError::NotImplemented(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn the_environment_host_serves_the_runtime_of_its_own_environment() {
        let host = "37520647dbdf49faba016134c14680.c4.environment.api.powerplatform.com:8443";
        let rt = c(host, "/apim/uiflow/37520647-dbdf-49fa-ba01-6134c14680c4/c1/usersession/testconnection");
        assert_eq!(
            (rt.surface, rt.attribution),
            (Surface::Runtime, Attribution::Environment("37520647-dbdf-49fa-ba01-6134c14680c4".into()))
        );
        let other = classify(
            "GET",
            host,
            "/apim/uiflow/00000000-0000-0000-0000-000000000001/c1/usersession/testconnection",
            "",
        );
        assert!(matches!(other, Err(ApiError::BadRequest { code: "EnvironmentHostMismatch", .. })));
    }

    #[test]
    fn operations_are_named_from_surface_method_and_path() {
        fn op(surface: Surface, method: &str, path: &str) -> &'static str {
            operation(surface, method, path).as_str()
        }
        let env = "/connectivity/environments/e1";
        assert_eq!(op(Surface::Identity, "POST", "/contoso.onmicrosoft.com/oauth2/v2.0/token"), "identity.token");
        assert_eq!(op(Surface::Identity, "GET", "/contoso.onmicrosoft.com/oauth2/v2.0/token"), "unmatched");
        assert_eq!(op(Surface::Identity, "GET", "/common/userrealm/a@b.c"), "identity.userRealm");
        let one = format!("{env}/connectors/shared_uiflow/connections/c1");
        assert_eq!(op(Surface::PowerPlatform, "PUT", &one), "connections.put");
        assert_eq!(op(Surface::PowerPlatform, "GET", &one), "connections.get");
        assert_eq!(op(Surface::PowerPlatform, "DELETE", &one), "connections.delete");
        assert_eq!(op(Surface::PowerPlatform, "GET", &format!("{one}/permissions")), "connections.permissions");
        assert_eq!(
            op(Surface::PowerPlatform, "POST", &format!("{one}/modifyPermissions")),
            "connections.modifyPermissions"
        );
        assert_eq!(op(Surface::PowerPlatform, "GET", "/connectivity/connections"), "connections.list");
        let bap = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments";
        assert_eq!(op(Surface::Bap, "GET", &format!("{bap}/e1")), "bap.getEnvironment");
        assert_eq!(op(Surface::Bap, "GET", bap), "bap.listEnvironments");
        let rt = "/apim/uiflow/e1/c1";
        assert_eq!(op(Surface::Runtime, "GET", &format!("{rt}/usersession/testconnection")), "runtime.testConnection");
        let flows = format!("{rt}/uiFlowTypes/desktopV2/uiflows");
        assert_eq!(op(Surface::Runtime, "GET", &flows), "runtime.listUIFlows");
        assert_eq!(op(Surface::Runtime, "POST", &format!("{flows}/w1/runs")), "runtime.runUIFlow");
        assert_eq!(op(Surface::Runtime, "GET", &format!("{flows}/w1/runs/r1")), "runtime.getRunStatus");
        let dv = "/dataverse/contosodev/api/data/v9.2";
        let id = "42e26112-838c-471b-b09f-958e640e9303";
        for (method, rest, name) in [
            ("GET", "flowmachines", "dataverse.query"),
            ("POST", "flowmachines", "dataverse.create"),
            ("GET", &format!("flowmachines({id})") as &str, "dataverse.get"),
            ("PATCH", &format!("flowmachines({id})"), "dataverse.update"),
            ("DELETE", &format!("flowmachines({id})"), "dataverse.delete"),
            ("GET", "WhoAmI", "dataverse.whoAmI"),
            ("POST", "GrantAccess", "dataverse.grantAccess"),
            ("POST", "Microsoft.Dynamics.CRM.ModifyAccess", "dataverse.modifyAccess"),
            ("POST", "RevokeAccess", "dataverse.revokeAccess"),
            ("GET", "RetrieveSharedPrincipalsAndAccess(Target=@t)", "dataverse.retrieveSharedPrincipalsAndAccess"),
            ("GET", "EntityDefinitions(LogicalName='flowmachine')", "dataverse.entityDefinitions"),
            ("POST", &format!("flowmachines({id})/Microsoft.Dynamics.CRM.LeaveGroup"), "dataverse.leaveGroup"),
            ("POST", &format!("workflows({id})/Microsoft.Dynamics.CRM.RunDesktopFlow"), "dataverse.runDesktopFlow"),
            ("GET", &format!("flowsessions({id})"), "dataverse.getFlowSession"),
            ("GET", &format!("flowsessions({id})/outputs/$value"), "dataverse.getFlowSessionOutputs"),
            (
                "POST",
                &format!("flowsessions({id})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun"),
                "dataverse.cancelDesktopFlowRun",
            ),
            ("GET", "accounts", "unmatched"),
            ("PUT", "flowmachines", "unmatched"),
        ] {
            assert_eq!(op(Surface::Dataverse, method, &format!("{dv}/{rest}")), name, "{method} {rest}");
        }
        assert_eq!(op(Surface::Control, "GET", "/_mock/health"), "control");
    }

    #[test]
    fn the_environment_filter_is_read() {
        assert_eq!(environment_from_filter("%24filter=environment+eq+%27abc%27&api-version=1").as_deref(), Some("abc"));
        assert_eq!(environment_from_filter("api-version=1"), None);
    }
}
