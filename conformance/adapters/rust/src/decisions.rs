//! The decisions a desktop-flow client makes, each one method with the correct answer as its
//! default. A broken variant of the reference client overrides exactly one, so the suite can
//! show that the case meant to catch that mistake does, and that no other case does.

use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// How long to wait when a 429, 503 or 202 names no `Retry-After`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);

/// What `createConnection` and `updateConnection` are given (docs/conformance.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// The connection's id: the client chooses it, create and update alike.
    pub connection_id: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// The machine group it targets (`targetId`).
    pub machine_group_id: String,
    /// The Windows account (or an `@environmentVariables(…)` reference with `credentialId`).
    pub username: Option<String>,
    /// Its password (or a reference).
    pub password: Option<String>,
    /// Connect with sign-in (`passwordlessAttended`): no account at all.
    #[serde(default)]
    pub sign_in: bool,
    /// A credential of the environment the username and password refer to.
    pub credential_id: Option<String>,
    /// A run owner (`azureRelayRunOwner`).
    pub run_owner: Option<RunOwner>,
}

/// A connection's run owner: a service principal with a certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOwner {
    /// The service principal's application (client) id.
    pub client_id: String,
    /// Its certificate, a base64 `.pfx`.
    pub pfx: String,
    /// The certificate's password.
    #[serde(default)]
    pub password: String,
}

/// Attended (in the connection user's open session) or unattended (the service signs in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Runs in the user's active Windows session.
    Attended,
    /// Opens its own Windows session with the connection's account.
    Unattended,
}

impl RunMode {
    /// The wire form both doors take.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Attended => "attended",
            RunMode::Unattended => "unattended",
        }
    }
}

/// The choices a client makes; every default is the correct one.
pub trait Decisions: std::fmt::Debug + Send + Sync {
    /// The body of the connection PUT: the seed's shape (see [`connection_body`]).
    fn connection_body(&self, environment: &str, spec: &ConnectionSpec) -> Value {
        connection_body(environment, spec)
    }

    /// The query of the connection PUT (an update's when `update`): the API version and
    /// nothing else, because a URL is logged and cached everywhere it goes and so must never
    /// carry a secret.
    fn connection_query(&self, _spec: &ConnectionSpec, _update: bool) -> Vec<(String, String)> {
        vec![("api-version".to_owned(), "1".to_owned())]
    }

    /// Whether an answer with this status is worth another attempt: throttling (429) and
    /// unavailability (503) are transient; any other 4xx will say the same thing again.
    fn retries(&self, status: u16) -> bool {
        status == 429 || status == 503
    }

    /// How long to wait before trying again after an answer that asked for `retry_after`.
    fn retry_delay(&self, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or(DEFAULT_WAIT)
    }

    /// The connection an update PUTs to: the one it updates (PUT is create-or-replace on the
    /// caller's id, so a new id would make a second connection).
    fn update_target(&self, connection_id: &str) -> String {
        connection_id.to_owned()
    }

    /// How long to wait before polling a run again: what the last answer's `Retry-After`
    /// asked (the start's 202 before the first poll).
    fn poll_delay(&self, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or(DEFAULT_WAIT)
    }

    /// The run mode to start a run in: the one asked for (connect-with-sign-in connections
    /// run attended only).
    fn run_mode(&self, asked: RunMode) -> RunMode {
        asked
    }
}

/// The reference client: every decision made correctly.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference;

impl Decisions for Reference {}

/// The connection PUT's body as the seed (connection-with-service-principal.md) and
/// docs/rules.md section 1 show it; the parameter set follows from what the caller gives:
/// sign-in → `passwordlessAttended`, a run owner → `azureRelayRunOwner`, otherwise
/// `azureRelay` (with `credentialId` beside it when the account comes from a credential).
pub fn connection_body(environment: &str, spec: &ConnectionSpec) -> Value {
    let target = json!({ "value": spec.machine_group_id });
    let (set, values) = if spec.sign_in {
        ("passwordlessAttended", json!({ "targetId": target }))
    } else {
        let mut values = json!({
            "username": { "value": spec.username.as_deref().unwrap_or_default() },
            "password": { "value": spec.password.as_deref().unwrap_or_default() },
            "targetId": target,
        });
        match &spec.run_owner {
            None => ("azureRelay", values),
            Some(owner) => {
                values["tokenRunOwnerCert:clientId"] = json!({ "value": owner.client_id });
                values["tokenRunOwnerCert:clientCertificateSecret"] =
                    json!({ "value": { "pfx": owner.pfx, "password": owner.password } });
                ("azureRelayRunOwner", values)
            }
        }
    };
    let mut properties = json!({
        "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{environment}"), "name": environment },
        "connectionParametersSet": { "name": set, "values": values },
    });
    if let Some(name) = &spec.display_name {
        properties["displayName"] = json!(name);
    }
    if let Some(credential) = &spec.credential_id {
        properties["credentialId"] = json!(credential);
    }
    json!({ "properties": properties })
}
