//! A small stand-in for the runner: a mock started through the typed handle, one sandbox per
//! adapter session, the environment of docs/conformance.md, and an adapter process spoken to
//! line by line (hello, then one step line per outcome line).

use mock_server::{MockServer, SandboxHandle};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest an adapter may take over one step (conformance.md's default step timeout).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root: adapter commands run there, as the runner runs them.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The mock, its runtime and the CA file clients trust.
pub(crate) struct Mock {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) server: MockServer,
    pub(crate) ca_path: PathBuf,
}

impl Mock {
    /// Starts the mock (http and https) and writes its CA where adapters can read it.
    pub(crate) fn start() -> Mock {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let server = runtime.block_on(MockServer::start()).expect("the mock starts");
        let ca_path = std::env::temp_dir().join(format!("conformance-adapters-{}-ca.pem", std::process::id()));
        std::fs::write(&ca_path, server.ca_pem().expect("TLS is on")).expect("the CA file is written");
        Mock { runtime, server, ca_path }
    }

    /// A fresh sandbox of the default world.
    pub(crate) fn sandbox(&self, name: &str) -> Sandbox {
        let handle = self.runtime.block_on(self.server.create_sandbox(name)).expect("the sandbox is made");
        let world = self.runtime.block_on(handle.fixture()).expect("its world");
        let world = serde_json::to_value(world).expect("the world as JSON");
        Sandbox { handle, world, origin: self.server.urls().origin().to_owned(), ca_path: self.ca_path.clone() }
    }

    /// Runs one of the handle's futures.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_path);
    }
}

/// One sandbox: its handle and its world (ids, names and test credentials as instantiated).
pub(crate) struct Sandbox {
    pub(crate) handle: SandboxHandle,
    pub(crate) world: Value,
    origin: String,
    ca_path: PathBuf,
}

impl Sandbox {
    /// The environment the adapters work in.
    pub(crate) fn environment(&self) -> &Value {
        &self.world["environments"][0]
    }

    /// The id of the environment's machine group called `name`.
    pub(crate) fn group(&self, name: &str) -> String {
        self.find("machineGroups", "name", name)["id"].as_str().unwrap_or_default().to_owned()
    }

    /// The id of the desktop flow called `name`.
    pub(crate) fn flow(&self, name: &str) -> String {
        self.find("desktopFlows", "name", name)["workflowId"].as_str().unwrap_or_default().to_owned()
    }

    /// The password of `username` on the machine called `machine`.
    pub(crate) fn account_password(&self, machine: &str, username: &str) -> String {
        let machine = self.find("machines", "name", machine);
        let accounts = machine["windowsAccounts"].as_array().cloned().unwrap_or_default();
        let account = accounts.iter().find(|a| a["username"] == username).cloned().unwrap_or_default();
        account["password"].as_str().unwrap_or_default().to_owned()
    }

    /// The systemuser id of the principal with this object id.
    pub(crate) fn system_user(&self, object_id: &str) -> String {
        self.find("systemUsers", "principal", object_id)["systemUserId"].as_str().unwrap_or_default().to_owned()
    }

    /// A service principal of the world by display name.
    pub(crate) fn service_principal(&self, name: &str) -> Value {
        let all = self.world["servicePrincipals"].as_array().cloned().unwrap_or_default();
        all.into_iter().find(|p| p["displayName"] == name).unwrap_or_default()
    }

    /// A user of the world by the start of their UPN (`megan@`).
    pub(crate) fn user(&self, upn_prefix: &str) -> Value {
        let all = self.world["users"].as_array().cloned().unwrap_or_default();
        all.into_iter()
            .find(|u| u["userPrincipalName"].as_str().is_some_and(|n| n.starts_with(upn_prefix)))
            .unwrap_or_default()
    }

    fn find(&self, list: &str, key: &str, value: &str) -> Value {
        let all = self.environment()[list].as_array().cloned().unwrap_or_default();
        all.into_iter().find(|item| item[key] == value).unwrap_or_default()
    }

    /// The variables the runner sets (docs/conformance.md), path forms on the https door,
    /// for the service principal or user `identity` names.
    pub(crate) fn variables(&self, identity: &Identity) -> Vec<(String, String)> {
        let environment = self.environment()["id"].as_str().unwrap_or_default().to_owned();
        let org = self.environment()["dataverse"]["org"].as_str().unwrap_or_default().to_owned();
        let tenant = self.world["tenants"][0]["id"].as_str().unwrap_or_default().to_owned();
        let origin = &self.origin;
        let mut vars = vec![
            ("MOCK_PROTOCOL", "1".to_owned()),
            ("MOCK_LOGIN_URL", origin.clone()),
            ("MOCK_PPAPI_PATH_URL", format!("{origin}/connectivity/environments/{environment}")),
            ("MOCK_DATAVERSE_PATH_URL", format!("{origin}/dataverse/{org}")),
            ("MOCK_RUNTIME_URL", format!("{origin}/apim/uiflow/{environment}")),
            ("MOCK_CA", self.ca_path.display().to_string()),
            ("MOCK_TENANT_ID", tenant),
            ("MOCK_ENVIRONMENT_ID", environment),
        ];
        match identity {
            Identity::ServicePrincipal(name) => {
                let sp = self.service_principal(name);
                vars.push(("MOCK_CLIENT_ID", sp["appId"].as_str().unwrap_or_default().to_owned()));
                vars.push(("MOCK_CLIENT_SECRET", sp["clientSecret"].as_str().unwrap_or_default().to_owned()));
            }
            Identity::User(prefix) => {
                let user = self.user(prefix);
                let public_client = self.world["publicClients"][0]["appId"].as_str().unwrap_or_default().to_owned();
                vars.push(("MOCK_USERNAME", user["userPrincipalName"].as_str().unwrap_or_default().to_owned()));
                vars.push(("MOCK_PASSWORD", user["password"].as_str().unwrap_or_default().to_owned()));
                vars.push(("MOCK_PUBLIC_CLIENT_ID", public_client));
            }
        }
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// Who an adapter session signs in as.
pub(crate) enum Identity {
    /// A service principal by display name (client credentials).
    ServicePrincipal(&'static str),
    /// A user by the start of the UPN (password grant).
    User(&'static str),
}

/// A running adapter process.
pub(crate) struct Adapter {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u32,
    /// What it wrote on stderr: shown when its test fails, kept out of a passing run's output.
    stderr: Arc<Mutex<String>>,
}

impl Adapter {
    /// Starts `command` with `sh -c` in the repository root, with only these `MOCK_*`
    /// variables (as the runner unsets the ones a case does not use).
    pub(crate) fn spawn(command: &str, vars: &[(String, String)]) -> Adapter {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).current_dir(repo_root());
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("MOCK_")) {
            cmd.env_remove(name);
        }
        cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the adapter starts");
        let stdout = child.stdout.take().expect("its stdout");
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let kept = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    kept.push_str(&line);
                    kept.push('\n');
                }
            });
        }
        let (send, lines) = channel();
        // A reader thread, so a silent adapter fails the step after a timeout instead of
        // hanging the test.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Adapter { child, stdin, lines, next_id: 0, stderr }
    }

    fn exchange(&mut self, line: &Value) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("the adapter reads its stdin");
        let answer = self.lines.recv_timeout(STEP_TIMEOUT).expect("an answer line within the step timeout");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("the answer {answer:?} is not JSON: {e}"))
    }

    /// Says hello; returns the capabilities line.
    pub(crate) fn hello(&mut self) -> Value {
        self.exchange(&json!({ "type": "hello", "protocol": 1 }))
    }

    /// Sends one step; returns its outcome line, checked to carry the step's id.
    pub(crate) fn step(&mut self, action: &str, args: Value) -> Value {
        self.next_id += 1;
        let id = format!("s{}", self.next_id);
        let outcome = self.exchange(&json!({ "type": "step", "id": id, "action": action, "args": args }));
        assert_eq!(outcome["id"], json!(id), "the outcome of {action} carries its step's id: {outcome}");
        outcome
    }

    /// Sends one step that must succeed; returns its result.
    pub(crate) fn ok(&mut self, action: &str, args: Value) -> Value {
        let outcome = self.step(action, args);
        assert_eq!(outcome["ok"], json!(true), "{action} succeeds: {outcome}");
        outcome["result"].clone()
    }

    /// Closes stdin: the adapter must exit, successfully.
    pub(crate) fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("the adapter exits");
        assert!(status.success(), "the adapter exits 0 when stdin closes: {status}");
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        // A failed assertion must not leave the process behind.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let said = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
            eprintln!("the adapter's stderr:\n{said}");
        }
    }
}
