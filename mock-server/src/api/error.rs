//! `ApiError` and the one place that turns it into a body. A handler returns `ApiError`;
//! its `IntoResponse` only carries the error in the response extensions, and the pipeline
//! (which knows the surface) calls [`render`] to write the envelope that surface uses:
//!
//! - Power Platform, BAP, connector runtime and the control surface:
//!   `{"error":{"code":"…","message":"…"}}`
//! - Dataverse (OData): the same shape with Dataverse's hex codes where documented.
//! - Identity: `{"error","error_description","error_codes","timestamp","trace_id","correlation_id","error_uri"}`.

use super::Surface;
use crate::domain;
use crate::identity::IdentityError;
use crate::sandbox::SandboxError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every way a request can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// A broken domain rule.
    #[error(transparent)]
    Domain(#[from] domain::Error),
    /// An identity-surface failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Missing, malformed, expired or misaddressed bearer token (401 + `WWW-Authenticate`).
    #[error("{message}")]
    Unauthorized {
        /// Code (`InvalidAuthenticationToken`, mock-defined variants below).
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A request the mock cannot parse or accept (mock-defined codes).
    #[error("{message}")]
    BadRequest {
        /// HTTP status (400, 408, 413, 414, 415, 431).
        status: u16,
        /// Code.
        code: &'static str,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A host, path or operation the mock does not emulate (mock-defined `NotImplementedByMock`).
    #[error("{0}")]
    NotImplemented(String),
    /// A known path with another method (mock-defined `MethodNotAllowed`).
    #[error("The method {method} is not supported on {path}.")]
    MethodNotAllowed {
        /// Method used.
        method: String,
        /// Path.
        path: String,
    },
    /// Control surface: sandbox errors.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A resource that does not exist.
    #[error("{message}")]
    NotFound {
        /// Code.
        code: &'static str,
        /// Message.
        message: String,
    },
    /// A bug in the mock (a handler panicked); mock-defined `InternalError`.
    #[error("The mock hit an internal error (a bug in the mock); see its log.")]
    Internal,
    /// Too many requests: 429 with `Retry-After`.
    #[error("{message}")]
    Throttled {
        /// Code (`DesktopFlowsActionThrottled`).
        code: &'static str,
        /// Message.
        message: String,
        /// Seconds until a slot frees.
        retry_after: u64,
    },
    /// An answer a fault rule made up, without a body of its own: the surface's default
    /// envelope (`scenarios.md`, Fault rules).
    #[error("Injected by fault rule {rule}.")]
    Injected {
        /// The rule's status.
        status: u16,
        /// The rule's id.
        rule: String,
    },
}

impl ApiError {
    /// A 400 naming what is wrong.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { status: 400, code, message: message.into() }
    }

    /// The same rejection under another code, its message prefixed (a shape error in a
    /// fixture is `InvalidFixture` and names the file).
    pub fn recode(self, code: &'static str, prefix: &str) -> Self {
        match self {
            Self::BadRequest { status, message, .. } => {
                Self::BadRequest { status, code, message: format!("{prefix}{message}") }
            }
            other => other,
        }
    }

    /// The HTTP status: the one `match` that decides it.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            Self::Domain(e) => domain_status(e),
            Self::Identity(e) => identity_status(e),
            Self::Unauthorized { .. } => 401,
            Self::BadRequest { status, .. } => *status,
            Self::NotImplemented(_) | Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Throttled { .. } => 429,
            Self::Injected { status, .. } => *status,
            Self::Internal => 500,
            Self::Sandbox(e) => match e {
                SandboxError::NotFound(_) => 404,
                SandboxError::Exists(_) => 409,
                SandboxError::BadName(_) | SandboxError::DefaultIsPermanent | SandboxError::Fixture(_) => 400,
            },
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The code clients see in a Power Platform-shaped envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Domain(e) => e.code(),
            Self::Identity(e) => e.oauth_error(),
            Self::Unauthorized { code, .. }
            | Self::BadRequest { code, .. }
            | Self::NotFound { code, .. }
            | Self::Throttled { code, .. } => code,
            Self::NotImplemented(_) => "NotImplementedByMock",
            Self::MethodNotAllowed { .. } => "MethodNotAllowed",
            Self::Injected { status, .. } => injected_code(*status),
            Self::Internal => "InternalError",
            Self::Sandbox(e) => match e {
                SandboxError::NotFound(_) => "SandboxNotFound",
                SandboxError::Exists(_) => "SandboxExists",
                SandboxError::BadName(_) => "InvalidSandboxName",
                SandboxError::DefaultIsPermanent => "DefaultSandboxIsPermanent",
                SandboxError::Fixture(_) => "InvalidFixture",
            },
        }
    }

    /// Dataverse's error code for the same failure (hex codes where Dataverse documents one).
    fn dataverse_code(&self) -> &'static str {
        match self {
            Self::NotImplemented(_) => "0x8006088a",
            Self::Unauthorized { .. } => "0x80072560",
            Self::BadRequest { code, .. } if code.starts_with("0x") => code,
            Self::BadRequest { status: 400, .. } => "0x80060888",
            // 408, 413, 414, 415, 431: Dataverse documents no code; the mock's own names.
            Self::BadRequest { code, .. } => code,
            Self::Injected { status, .. } => match status {
                // Service protection: number of requests exceeded.
                429 => "0x80072322",
                400 => "0x80060888",
                401 => "0x80072560",
                403 => "0x80040220",
                404 => "0x80040217",
                412 => "0x80060882",
                500..=599 => "0x80040216",
                _ => self.code(),
            },
            _ => self.code(),
        }
    }
}

/// The Power Platform API's code for a status a fault rule answers with (mock-defined where
/// the service documents none: `InjectedFault`).
fn injected_code(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        408 => "RequestTimeout",
        409 => "Conflict",
        412 => "PreconditionFailed",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "InjectedFault",
    }
}

/// The HTTP status of a broken domain rule: the api layer decides it, not the domain.
fn domain_status(e: &domain::Error) -> u16 {
    use domain::Error as E;
    match e {
        E::Clock(_) | E::EnvironmentMismatch { .. } | E::TargetGroupNotFound { .. } => 400,
        E::InvalidName(_)
        | E::GroupHasMachines { .. }
        | E::NameRequired { .. }
        | E::DefaultGroupByHand
        | E::AttributeRequired { .. }
        | E::CredentialTypeNotEmulated(_)
        | E::CredentialVariableMismatch { .. }
        | E::InvalidKeyVaultReference(_)
        | E::SecretVariableDefaultValue(_)
        | E::VariableValueExists { .. }
        | E::VariableTypeNotEmulated(_)
        | E::VariableFixedColumn(_)
        | E::InvalidRunParameter(_)
        | E::ConnectionNotUsableForRuns { .. }
        | E::RunAlreadyEnded(_) => 400,
        E::VersionMismatch | E::DuplicateRecord(_) | E::DuplicateSchemaName(_) => 412,
        // SUP-ERR gives these statuses to the same codes on runs.
        E::ConnectionTestFailed { code, .. } => run_error_status(code),
        E::SignInRequiresUser
        | E::SignInUserTenantMismatch { .. }
        | E::SignInConnectionRunOwner
        | E::SignInKindCannotChange(_)
        | E::RunOwnerCannotBeRemoved(_)
        | E::RunOwnerNotFound { .. }
        | E::RunOwnerCertificateRequired(_)
        | E::RunOwnerNotApplicationUser(_)
        | E::CredentialNotFound(_)
        | E::CredentialParameterMismatch { .. }
        | E::ConnectionNotShareable(_)
        | E::ShareRecipientNotServicePrincipal(_)
        | E::SharePrincipalNotFound(_)
        | E::CanViewWithShareNotAllowed
        | E::InvalidPermissionRole(_)
        | E::OwnerPermissionCannotBeRemoved => 400,
        E::RunOwnerAuthorizationFailed { .. } | E::CredentialNotShared { .. } | E::RegistrationForbidden { .. } => 403,
        E::DefaultGroupMembership(_)
        | E::MachineGroupFull { .. }
        | E::NotInAGroup(_)
        | E::RegistrationNeedsServicePrincipal => 400,
        E::RecordNotFound { .. } => 404,
        E::MissingPrivilege { .. } | E::GrantBeyondHeld { .. } | E::NotOrganizationMember(_) => 403,
        E::CrossTenantAccess { .. } | E::ConnectionAuthorizationFailed { .. } | E::ConnectionAccessDenied { .. } => 403,
        E::EnvironmentNotFound { .. } | E::ConnectionNotFound(_) | E::ConnectorNotFound(_) => 404,
    }
}

/// HTTP status of an identity failure: 401 for client authentication failures (RFC 6749 5.2), else 400.
/// The HTTP status SUP-ERR gives a run error code on the connector action (api-facts 7), for
/// `TestConnection` and `GetRunStatus`; codes without one, the mock-defined ones included, are 400.
pub fn run_error_status(code: &str) -> u16 {
    match code {
        "InvalidUIFlowsCertificates" | "WindowsIdentityIncorrect" | "AuthTokenNotYetValid" => 401,
        "UnattendedUnsupportedWithOldConnection" => 403,
        "NoListenerConnected"
        | "ConnectionNotEstablished"
        | "DnsError"
        | "ConnectionTimeout"
        | "EndpointDoNotExist"
        | "XrmMachineGroupNotFound" => 404,
        "LocalPlaybackOrRecordingOngoing" | "UIFlowAlreadyRunning" | "DesktopFlowsActionThrottled" => 429,
        "UIFlowAgentLauncherServiceIsNotRunning" | "DesktopFlowMalformedMachineResponse" | "WcfServerCrash" => 500,
        "OnPremiseDataGatewayNotAvailable" => 502,
        _ => 400,
    }
}

fn identity_status(e: &IdentityError) -> u16 {
    match e.oauth_error() {
        "invalid_client" => 401,
        _ => 400,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status().into_response();
        r.extensions_mut().insert(self);
        r
    }
}

/// Writes the envelope for `err` on `surface`. `correlation` fills the identity shape's ids.
pub fn render(err: &ApiError, surface: Surface, correlation: &str, timestamp: &str) -> Response {
    let status = err.status();
    let message = err.to_string();
    let body = match (surface, err) {
        (Surface::Identity, e) => {
            let (error, codes) = match e {
                ApiError::Identity(i) => (i.oauth_error(), vec![i.aadsts()]),
                ApiError::Internal => ("server_error", vec![]),
                ApiError::Injected { status, .. } if *status == 429 || *status >= 500 => {
                    ("temporarily_unavailable", vec![])
                }
                _ => ("invalid_request", vec![]),
            };
            json!({
                "error": error,
                "error_description": format!("{message}\r\nTrace ID: {correlation}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"),
                "error_codes": codes,
                "timestamp": timestamp,
                "trace_id": correlation,
                "correlation_id": correlation,
                "error_uri": codes.first().map(|c| format!("https://login.microsoftonline.com/error?code={c}")),
            })
        }
        (Surface::Dataverse, e) => {
            json!({ "error": { "code": e.dataverse_code(), "message": message } })
        }
        (_, e) => json!({ "error": { "code": e.code(), "message": message } }),
    };
    let mut r = (status, axum::Json(body)).into_response();
    if let ApiError::Unauthorized { code, message } = err {
        let value =
            format!("Bearer error=\"invalid_token\", error_description=\"{code}: {}\"", message.replace('"', "'"));
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    if let ApiError::Throttled { retry_after, .. } = err {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    if matches!(err, ApiError::Identity(_)) {
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    }
    r
}
