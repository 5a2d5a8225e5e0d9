//! `spawn_server()` and `TestServer`: a real mock on free loopback ports (http and https),
//! a client that trusts only the mock's CA, and one method per endpoint the tests use. Tests
//! drive the mock through its typed handle (`t.sandbox()`); `control` and `control_get` talk
//! HTTP to `/_mock/…`, for the tests of that door.

pub use mock_server::control::{ControlError, JournalFilter, MachineRegistration};
pub use mock_server::domain::Error as DomainError;
pub use mock_server::domain::ids::TenantId;
use mock_server::domain::ids::{AppId, EnvironmentId, MachineGroupId, MachineId};
pub use mock_server::domain::membership::MachineFacts;
pub use mock_server::domain::world::JoinType;
use mock_server::domain::world::WindowsAccount;
use mock_server::{MockServer, SandboxHandle};
use reqwest::{Client, Response};
use serde_json::Value;

pub const TENANT: &str = "c7263f1a-afcd-4e8a-a7ce-66b19698caaa";
pub const TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";
pub const OTHER_TENANT: &str = "2fb041f4-16af-4df6-9550-f140e1fe4a21";
pub const SP_APP_ID: &str = "71fb83d4-8950-48e6-8251-52e4b19068c8";
pub const SP_SECRET: &str = "mock-pipeline-secret~0001";
pub const USER_UPN: &str = "megan@contoso.onmicrosoft.com";
pub const USER_PASSWORD: &str = "Megan-Test-Passw0rd!";
pub const PUBLIC_CLIENT: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
pub const ENV_ID: &str = "37520647-dbdf-49fa-ba01-6134c14680c4";
pub const ENV_HOST: &str = "37520647dbdf49faba016134c14680.c4.environment.api.powerplatform.com";
pub const ORG: &str = "contosodev";
pub const PP_SCOPE: &str = "https://api.powerplatform.com/.default";

/// Hosts the test client resolves to the mock's https port.
pub const REAL_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    ENV_HOST,
    "contosodev.crm.dynamics.com",
    "api.bap.microsoft.com",
    "graph.microsoft.com",
    "00000000000000000000000000000.00.environment.api.powerplatform.com",
];

pub struct TestServer {
    pub server: MockServer,
    pub http: String,
    pub https: String,
    pub client: Client,
}

pub async fn spawn_server() -> TestServer {
    spawn_with(MockServer::builder()).await
}

pub async fn spawn_with(builder: mock_server::MockServerBuilder) -> TestServer {
    if std::env::var_os("TEST_LOG").is_some() {
        mock_server::telemetry::init("mock_server=debug");
    }
    let server = builder.start().await.expect("the mock starts");
    let https_addr = server.https_addr().expect("TLS is on");
    let ca = reqwest::Certificate::from_pem(server.ca_pem().unwrap().as_bytes()).unwrap();
    let mut builder = Client::builder().tls_certs_only([ca]).no_proxy();
    for h in REAL_HOSTS {
        builder = builder.resolve(h, https_addr);
    }
    TestServer { http: server.uri(), https: server.https_uri().unwrap(), client: builder.build().unwrap(), server }
}

impl TestServer {
    /// POSTs a token request over https.
    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> Response {
        self.client.post(self.server.urls().token(tenant)).form(form).send().await.unwrap()
    }

    /// A client-credentials token of the default service principal for `scope`.
    pub async fn sp_token(&self, scope: &str) -> String {
        let r = self.token(TENANT_DOMAIN, &cc_form(SP_APP_ID, SP_SECRET, scope)).await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    /// The body of the default user's password grant for `scope` (public client, Contoso).
    pub async fn user_grant(&self, scope: &str) -> Value {
        let form = [
            ("grant_type", "password"),
            ("client_id", PUBLIC_CLIENT),
            ("username", USER_UPN),
            ("password", USER_PASSWORD),
            ("scope", scope),
        ];
        let r = self.token(TENANT, &form).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// A Dataverse Web API URL on the loopback door.
    pub fn dv(&self, rest: &str) -> String {
        format!("{}/api/data/v9.2/{rest}", self.server.http_urls().dataverse(ORG))
    }

    /// The default sandbox, through the typed handle.
    pub fn sandbox(&self) -> SandboxHandle {
        self.server.default_sandbox()
    }

    /// The default sandbox's journal entries that `filter` admits, as JSON.
    pub async fn entries(&self, filter: JournalFilter) -> Value {
        serde_json::to_value(self.sandbox().journal().entries(filter).await.unwrap()).unwrap()
    }

    /// The same, through the one normaliser.
    pub async fn entries_normalised(&self, filter: JournalFilter) -> Value {
        Value::Array(self.sandbox().journal().normalised(filter).await.unwrap())
    }

    /// Sets facts of a machine of the default sandbox.
    pub async fn set_machine(&self, machine: &str, facts: MachineFacts) {
        self.sandbox().set_machine(self::machine(machine), facts).await.unwrap();
    }

    /// GET on the control surface's HTTP door.
    pub async fn control_get(&self, path: &str) -> Value {
        let r = self.client.get(format!("{}{path}", self.http)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// `GET /_mock/journal?{query}` on the HTTP door.
    pub async fn journal(&self, query: &str) -> Value {
        self.control_get(&format!("/_mock/journal?{query}")).await
    }

    /// A JSON request to the control surface's HTTP door.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.http));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// A client-credentials token request.
pub fn cc_form<'a>(client_id: &'a str, secret: &'a str, scope: &'a str) -> [(&'static str, &'a str); 4] {
    [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret), ("scope", scope)]
}

/// A machine id of the default world.
pub fn machine(id: &str) -> MachineId {
    MachineId::parse(id).unwrap()
}

/// A machine group id of the default world.
pub fn group(id: &str) -> MachineGroupId {
    MachineGroupId::parse(id).unwrap()
}

/// A stand-alone machine named `name`, silently registered in the default environment by the
/// default service principal.
pub fn registration(name: &str) -> MachineRegistration {
    MachineRegistration::new(EnvironmentId::parse(ENV_ID).unwrap(), AppId::parse(SP_APP_ID).unwrap(), name)
}

/// A Windows account that may sign in interactively.
pub fn account(username: &str, password: &str) -> WindowsAccount {
    WindowsAccount { username: username.to_owned(), password: password.to_owned().into(), interactive_logon: true }
}

/// Status and JSON body of a response.
pub async fn status_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

/// The claims of a JWT, without verifying it (the tests verify separately).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
