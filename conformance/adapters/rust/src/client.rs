//! The HTTP side of the client: one place for the retry rule, the token cache and reading
//! error envelopes, so every action gets them the same way.

use crate::decisions::Decisions;
use crate::surfaces::{Identity, Surfaces};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Sends per logical request: the first try and four retries.
pub const MAX_ATTEMPTS: u32 = 5;
/// Longest a single HTTP exchange may take before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An outcome with `ok: false`: the HTTP status the client got (0 when there was no answer)
/// and the error code of the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status, or 0 for a client-side failure.
    pub status: u16,
    /// `error.code` (Power Platform, Dataverse, runtime) or `error` (identity).
    pub code: String,
    /// The envelope's message, if any.
    pub message: Option<String>,
}

impl Failure {
    /// A failure with this status and code.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure { status, code: code.into(), message: Some(message.into()) }
    }

    /// The adapter could not do what it was asked (bad arguments, an answer it cannot read).
    pub fn adapter(message: impl Into<String>) -> Failure {
        Failure::new(0, "AdapterError", message)
    }

    /// The outcome line's fields.
    pub fn to_json(&self) -> Value {
        let mut out = json!({ "ok": false, "status": self.status, "code": self.code });
        if let Some(m) = &self.message {
            out["message"] = json!(m);
        }
        out
    }
}

/// One answer, read in full.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds (the delta-seconds form the services send).
    pub retry_after: Option<Duration>,
    /// `Location` (the asynchronous pattern's status URL).
    pub location: Option<String>,
    /// Whether `WWW-Authenticate` blames the token (`invalid_token`).
    pub token_rejected: bool,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (an empty body is an empty object).
    pub fn json(&self) -> Result<Value, Failure> {
        if self.body.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&self.body)
            .map_err(|e| Failure::adapter(format!("a {} answer that is not JSON: {e}", self.status)))
    }

    /// The error envelope as a [`Failure`]: Power Platform and Dataverse nest it under
    /// `error.code`; the identity platform puts the code in `error` and the text beside it.
    pub fn failure(&self) -> Failure {
        let body: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().map(str::to_owned);
        match &body["error"] {
            Value::Object(e) => Failure {
                status: self.status,
                code: e.get("code").and_then(Value::as_str).unwrap_or_default().to_owned(),
                message: e.get("message").and_then(text),
            },
            Value::String(code) => {
                Failure { status: self.status, code: code.clone(), message: text(&body["error_description"]) }
            }
            _ => Failure { status: self.status, code: String::new(), message: None },
        }
    }
}

/// What to send: method, URL, query, which token, body.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    query: Vec<(String, String)>,
    resource: Option<&'static str>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
}

impl Request {
    /// A request without a body or token.
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request { method, url: url.into(), query: Vec::new(), resource: None, body: Body::None }
    }

    /// A GET.
    pub fn get(url: impl Into<String>) -> Request {
        Request::new(Method::GET, url)
    }

    /// A POST.
    pub fn post(url: impl Into<String>) -> Request {
        Request::new(Method::POST, url)
    }

    /// Sent with a bearer token for `resource` (`powerplatform` or `dataverse`).
    pub fn auth(mut self, resource: &'static str) -> Request {
        self.resource = Some(resource);
        self
    }

    /// Query parameters (encoded by the client).
    pub fn query<K: Into<String>, V: Into<String>>(mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Request {
        self.query.extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// A JSON body.
    pub fn json(mut self, body: Value) -> Request {
        self.body = Body::Json(body);
        self
    }

    /// The resource whose token it carries.
    pub fn resource(&self) -> Option<&'static str> {
        self.resource
    }

    fn form(mut self, pairs: Vec<(String, String)>) -> Request {
        self.body = Body::Form(pairs);
        self
    }
}

struct CachedToken {
    value: String,
    renew_at: Instant,
    expires_at: Instant,
}

/// The client: surfaces, decisions, cached tokens, and the runs it started.
pub struct Client {
    http: reqwest::Client,
    /// Where the services are and who the client is.
    pub surfaces: Surfaces,
    /// The choices it makes.
    pub decisions: Box<dyn Decisions>,
    tokens: HashMap<&'static str, CachedToken>,
    pub(crate) runs: HashMap<String, crate::actions::Run>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("surfaces", &self.surfaces).field("decisions", &self.decisions).finish()
    }
}

impl Client {
    /// A client for these surfaces; https URLs trust `MOCK_CA` only.
    pub fn new(surfaces: Surfaces, decisions: Box<dyn Decisions>) -> Result<Client, Failure> {
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).no_proxy();
        if let Some(path) = &surfaces.ca_path {
            let pem = std::fs::read(path).map_err(|e| Failure::adapter(format!("reading MOCK_CA {path}: {e}")))?;
            let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| Failure::adapter(format!("MOCK_CA: {e}")))?;
            builder = builder.tls_certs_only([ca]);
        }
        let http = builder.build().map_err(|e| Failure::adapter(format!("building the HTTP client: {e}")))?;
        Ok(Client { http, surfaces, decisions, tokens: HashMap::new(), runs: HashMap::new() })
    }

    /// Sends `request` and returns whatever answer it finally got (after retries and, once,
    /// a fresh token when the API rejected the cached one).
    pub async fn send(&mut self, request: &Request) -> Result<Answer, Failure> {
        let Some(resource) = request.resource else {
            return self.attempts(request, None).await;
        };
        let token = self.token(resource).await?;
        let answer = self.attempts(request, Some(&token)).await?;
        if answer.status == 401 && answer.token_rejected {
            // The cached token died early (revoked, a shortened lifetime): get a new one and
            // try once more; a second rejection is the answer.
            self.tokens.remove(resource);
            let token = self.token(resource).await?;
            return self.attempts(request, Some(&token)).await;
        }
        Ok(answer)
    }

    /// [`Client::send`], with any error answer turned into its [`Failure`].
    pub async fn call(&mut self, request: &Request) -> Result<Answer, Failure> {
        let answer = self.send(request).await?;
        if answer.status >= 400 {
            return Err(answer.failure());
        }
        Ok(answer)
    }

    /// The retry rule: at most [`MAX_ATTEMPTS`] sends, another one only when the decisions
    /// say the status is transient, each after the delay the answer asked for.
    async fn attempts(&self, request: &Request, bearer: Option<&str>) -> Result<Answer, Failure> {
        let mut attempt = 1;
        loop {
            let answer = self.exchange(request, bearer).await?;
            if attempt >= MAX_ATTEMPTS || !self.decisions.retries(answer.status) {
                return Ok(answer);
            }
            tokio::time::sleep(self.decisions.retry_delay(answer.retry_after)).await;
            attempt += 1;
        }
    }

    async fn exchange(&self, request: &Request, bearer: Option<&str>) -> Result<Answer, Failure> {
        let mut builder = self.http.request(request.method.clone(), &request.url).header("Accept", "application/json");
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(token) = bearer {
            builder = builder.bearer_auth(token);
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(v) => builder.json(v),
            Body::Form(pairs) => builder.form(pairs),
        };
        let response = builder.send().await.map_err(|e| Failure::new(0, "NetworkError", e.to_string()))?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let status = response.status().as_u16();
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| Duration::from_secs_f64(s.max(0.0)));
        let location = header("location");
        let token_rejected = header("www-authenticate").is_some_and(|v| v.contains("invalid_token"));
        // The path only: never a query string or a header in the log.
        eprintln!("[rust-adapter] {} {} -> {status}", request.method, response.url().path());
        let body = response.text().await.map_err(|e| Failure::new(0, "NetworkError", e.to_string()))?;
        Ok(Answer { status, retry_after, location, token_rejected, body })
    }

    /// A token for `resource`: the cached one while valid, else a new one from the tenant's
    /// token endpoint (client credentials, or the password grant for a user).
    pub async fn token(&mut self, resource: &'static str) -> Result<String, Failure> {
        if let Some(t) = self.tokens.get(resource).filter(|t| Instant::now() < t.renew_at) {
            return Ok(t.value.clone());
        }
        let scope = self.surfaces.scope(resource)?;
        let form = match &self.surfaces.identity {
            Identity::ServicePrincipal { client_id, secret } => vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", &scope),
            ],
            Identity::User { public_client_id, username, password } => vec![
                ("grant_type", "password"),
                ("client_id", public_client_id),
                ("username", username),
                ("password", password),
                ("scope", &scope),
            ],
        };
        let form = form.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let request = Request::post(&self.surfaces.token_url).form(form);
        let answer = self.attempts(&request, None).await?;
        if answer.status >= 400 {
            return Err(answer.failure());
        }
        let granted = answer.json()?;
        let value = granted["access_token"]
            .as_str()
            .ok_or_else(|| Failure::adapter("the token answer has no access_token"))?
            .to_owned();
        let lifetime = Duration::from_secs(granted["expires_in"].as_u64().unwrap_or(0));
        // Renew a little early so a token does not expire in flight: a tenth of its lifetime,
        // at most a minute (short-lived test tokens stay usable).
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        let now = Instant::now();
        self.tokens.insert(
            resource,
            CachedToken { value: value.clone(), renew_at: now + lifetime - margin, expires_at: now + lifetime },
        );
        Ok(value)
    }

    /// Seconds the cached token for `resource` has left.
    pub fn token_expires_in(&self, resource: &str) -> u64 {
        self.tokens
            .get(resource)
            .map_or(0, |t| t.expires_at.saturating_duration_since(Instant::now()).as_secs_f64().round() as u64)
    }
}
