//! Where the services are and who the client is, from the variables the runner sets
//! (docs/conformance.md). The reference adapters use the path forms on loopback.

use crate::client::Failure;

/// The Power Platform API's scope: the connector runtime takes the same token.
pub const POWER_PLATFORM_SCOPE: &str = "https://api.powerplatform.com/.default";

/// How the client signs in.
#[derive(Clone)]
pub enum Identity {
    /// A service principal: client credentials.
    ServicePrincipal {
        /// Application (client) id.
        client_id: String,
        /// Its secret.
        secret: String,
    },
    /// A user: the resource-owner password grant through a public client.
    User {
        /// The public client's application id.
        public_client_id: String,
        /// The user's UPN.
        username: String,
        /// The user's password.
        password: String,
    },
}

impl std::fmt::Debug for Identity {
    // Secrets never reach a log, even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::ServicePrincipal { client_id, .. } => write!(f, "ServicePrincipal({client_id})"),
            Identity::User { username, .. } => write!(f, "User({username})"),
        }
    }
}

/// The base URLs of every surface the client calls, and its identity.
#[derive(Debug, Clone)]
pub struct Surfaces {
    /// The environment the client works in.
    pub environment: String,
    /// The tenant's token endpoint.
    pub token_url: String,
    /// `…/connectivity/environments/{environmentId}`: connections live under it.
    pub power_platform: String,
    /// `…/dataverse/{org}`: the Dataverse scope root.
    pub dataverse_root: String,
    /// `…/dataverse/{org}/api/data/v9.2`: the Web API.
    pub dataverse: String,
    /// `…/apim/uiflow/{environmentId}`: the connector runtime, then `/{connectionId}/…`.
    pub runtime: String,
    /// The mock's CA certificate (PEM path) for https URLs.
    pub ca_path: Option<String>,
    /// Who signs in.
    pub identity: Identity,
}

impl Surfaces {
    /// Reads the `MOCK_*` variables through `var` (the process environment in the binary).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Surfaces, Failure> {
        let need = |name: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Failure::adapter(format!("environment variable {name} is not set")))
        };
        let environment = need("MOCK_ENVIRONMENT_ID")?;
        let tenant = need("MOCK_TENANT_ID")?;
        let identity = match (var("MOCK_CLIENT_ID"), var("MOCK_CLIENT_SECRET")) {
            (Some(client_id), Some(secret)) if !client_id.is_empty() && !secret.is_empty() => {
                Identity::ServicePrincipal { client_id, secret }
            }
            _ => Identity::User {
                public_client_id: need("MOCK_PUBLIC_CLIENT_ID")?,
                username: need("MOCK_USERNAME")?,
                password: var("MOCK_PASSWORD").unwrap_or_default(),
            },
        };
        let base = |name: &str| need(name).map(|url| url.trim_end_matches('/').to_owned());
        let dataverse_root = base("MOCK_DATAVERSE_PATH_URL")?;
        Ok(Surfaces {
            token_url: format!("{}/{tenant}/oauth2/v2.0/token", base("MOCK_LOGIN_URL")?),
            power_platform: base("MOCK_PPAPI_PATH_URL")?,
            dataverse: format!("{dataverse_root}/api/data/v9.2"),
            dataverse_root,
            runtime: base("MOCK_RUNTIME_URL")?,
            ca_path: var("MOCK_CA").filter(|v| !v.is_empty()),
            environment,
            identity,
        })
    }

    /// The scope of a token for `resource` (`powerplatform` or `dataverse`).
    pub fn scope(&self, resource: &str) -> Result<String, Failure> {
        match resource {
            "powerplatform" => Ok(POWER_PLATFORM_SCOPE.to_owned()),
            "dataverse" => Ok(format!("{}/.default", self.dataverse_root)),
            other => Err(Failure::adapter(format!("unknown resource '{other}'"))),
        }
    }
}
