//! The runner's side of the mock: one type, two doors. [`MockDoor::start`] runs the mock
//! in-process and drives it through the typed handle ([`mock_server::SandboxHandle`]);
//! [`MockDoor::connect`] drives a mock started elsewhere (`--mock-url`) with the same
//! `/_mock/…` calls over HTTP. Every answer is JSON, so the checks do not care which door.

use fixtures::WorldFile;
use mock_server::MockServer;
use mock_server::control::{JournalFilter, MachineFactsPatch, NewSandbox, SettingsPatch};
use mock_server::domain::ids::{FlowSessionId, MachineId};
use mock_server::journal::EntryKind;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Where adapters reach the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doors {
    /// `scheme://host:port` for the path forms (loopback).
    pub path_origin: String,
    /// The scheme of the real-host forms (`https://{host}:PORT`).
    pub host_scheme: String,
    /// The port of the real-host forms.
    pub host_port: u16,
    /// The CA certificate file, when the real-host door is TLS.
    pub ca_file: Option<PathBuf>,
}

/// A sandbox made for one case: its name and world.
#[derive(Debug, Clone)]
pub struct MadeSandbox {
    /// Its name.
    pub name: String,
    /// Its world (the default instantiated), test credentials included.
    pub world: WorldFile,
}

/// The mock, in-process or over HTTP.
#[derive(Debug)]
pub enum MockDoor {
    /// Started here; driven through the typed handle.
    InProcess {
        /// The server (dropping it stops it).
        server: MockServer,
        /// Keeps the CA file alive.
        ca_dir: Option<tempfile::TempDir>,
    },
    /// Started elsewhere; driven through `/_mock/…`.
    Http {
        /// Its base URL.
        base: String,
        /// The client.
        client: reqwest::Client,
        /// Keeps the CA file alive.
        ca_dir: Option<tempfile::TempDir>,
    },
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl MockDoor {
    /// Starts the mock in-process: path forms on its http door, real-host forms on its https
    /// door (the CA written to a temporary file for `MOCK_CA`).
    pub async fn start() -> Result<Self, String> {
        let server = MockServer::start().await.map_err(|e| format!("cannot start the mock: {e}"))?;
        let ca_dir = match server.ca_pem() {
            Some(pem) => Some(write_ca(pem)?),
            None => None,
        };
        Ok(Self::InProcess { server, ca_dir })
    }

    /// A mock already running at `url` (its http or https door).
    pub async fn connect(url: &str) -> Result<Self, String> {
        let base = url.trim_end_matches('/').to_owned();
        let plain = reqwest::Client::builder().timeout(Duration::from_secs(60));
        let (client, ca_dir) = if base.starts_with("https://") {
            // The CA is the mock's own test CA, served by the mock; it is fetched once without
            // verification and then trusted for every later call.
            let fetch = reqwest::Client::builder().danger_accept_invalid_certs(true).build().map_err(text)?;
            let pem = fetch
                .get(format!("{base}/_mock/ca.pem"))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("cannot fetch {base}/_mock/ca.pem: {e}"))?
                .text()
                .await
                .map_err(text)?;
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(text)?;
            (plain.add_root_certificate(cert).build().map_err(text)?, Some(write_ca(&pem)?))
        } else {
            (plain.build().map_err(text)?, None)
        };
        let health = client
            .get(format!("{base}/_mock/health"))
            .send()
            .await
            .map_err(|e| format!("no mock answers at {base}: {e}"))?;
        if !health.status().is_success() {
            return Err(format!("{base}/_mock/health answered {}", health.status()));
        }
        Ok(Self::Http { base, client, ca_dir })
    }

    /// Where adapters reach it.
    pub fn doors(&self) -> Doors {
        match self {
            Self::InProcess { server, ca_dir } => {
                let (host_scheme, host_port) = match server.https_addr() {
                    Some(a) => ("https".to_owned(), a.port()),
                    None => ("http".to_owned(), server.http_addr().port()),
                };
                Doors {
                    path_origin: server.uri(),
                    host_scheme,
                    host_port,
                    ca_file: ca_dir.as_ref().map(|d| d.path().join("ca.pem")),
                }
            }
            Self::Http { base, ca_dir, .. } => {
                let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
                let authority = rest.split('/').next().unwrap_or(rest);
                let default = if scheme == "https" { 443 } else { 80 };
                let port = mock_server::hosts::port_suffix(authority)
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(default);
                Doors {
                    path_origin: format!("{scheme}://{authority}"),
                    host_scheme: scheme.to_owned(),
                    host_port: port,
                    ca_file: ca_dir.as_ref().map(|d| d.path().join("ca.pem")),
                }
            }
        }
    }

    /// Makes a sandbox from the default world.
    pub async fn create_sandbox(&self, name: &str) -> Result<MadeSandbox, String> {
        match self {
            Self::InProcess { server, .. } => {
                let made = server.control().create_sandbox(NewSandbox::named(name)).map_err(text)?;
                Ok(MadeSandbox { name: made.sandbox, world: made.world })
            }
            Self::Http { .. } => {
                let answer =
                    self.call(reqwest::Method::POST, "/_mock/sandboxes", None, Some(json!({ "name": name }))).await?;
                let world: WorldFile = serde_json::from_value(strip(answer, &["sandbox", "hosts"]))
                    .map_err(|e| format!("a sandbox's world: {e}"))?;
                Ok(MadeSandbox { name: name.to_owned(), world })
            }
        }
    }

    /// Deletes a sandbox.
    pub async fn delete_sandbox(&self, name: &str) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => server.sandbox(name).delete().await.map_err(text),
            Self::Http { .. } => {
                self.call(reqwest::Method::DELETE, &format!("/_mock/sandboxes/{name}"), None, None).await.map(drop)
            }
        }
    }

    /// Moves the clock: `seconds`, or until idle, or to the next event.
    pub async fn advance(&self, sandbox: &str, how: Advance) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => {
                let clock = server.sandbox(sandbox).clock();
                match how {
                    Advance::Seconds(s) => clock.advance(Duration::from_secs(s)).await,
                    Advance::UntilIdle => clock.advance_until_idle().await,
                    Advance::ToNextEvent => clock.advance_to_next_event().await,
                }
                .map(drop)
                .map_err(text)
            }
            Self::Http { .. } => {
                let body = match how {
                    Advance::Seconds(s) => json!({ "seconds": s }),
                    Advance::UntilIdle => json!({ "untilIdle": true }),
                    Advance::ToNextEvent => json!({ "toNextEvent": true }),
                };
                self.call(reqwest::Method::POST, "/_mock/clock/advance", Some(sandbox), Some(body)).await.map(drop)
            }
        }
    }

    /// `PATCH /_mock/machines/{id}`.
    pub async fn set_machine(&self, sandbox: &str, machine_id: &str, facts: Value) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => {
                let id = MachineId::parse(machine_id).map_err(text)?;
                let patch: MachineFactsPatch = serde_json::from_value(facts).map_err(|e| format!("facts: {e}"))?;
                server.control().patch_machine_fields(sandbox, id, patch).map(drop).map_err(text)
            }
            Self::Http { .. } => self
                .call(reqwest::Method::PATCH, &format!("/_mock/machines/{machine_id}"), Some(sandbox), Some(facts))
                .await
                .map(drop),
        }
    }

    /// `POST /_mock/faults`.
    pub async fn add_fault(&self, sandbox: &str, rule: Value) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => {
                server.sandbox(sandbox).add_fault_json(rule).await.map(drop).map_err(text)
            }
            Self::Http { .. } => {
                self.call(reqwest::Method::POST, "/_mock/faults", Some(sandbox), Some(rule)).await.map(drop)
            }
        }
    }

    /// `POST /_mock/scenarios/{name}`.
    pub async fn apply_scenario(&self, sandbox: &str, name: &str) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => {
                server.sandbox(sandbox).apply_scenario(name).await.map(drop).map_err(text)
            }
            Self::Http { .. } => self
                .call(reqwest::Method::POST, &format!("/_mock/scenarios/{name}"), Some(sandbox), None)
                .await
                .map(drop),
        }
    }

    /// `PATCH /_mock/settings`.
    pub async fn patch_settings(&self, sandbox: &str, patch: Value) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => {
                let patch: SettingsPatch = serde_json::from_value(patch).map_err(|e| format!("settings: {e}"))?;
                server.sandbox(sandbox).patch_settings(patch).await.map(drop).map_err(text)
            }
            Self::Http { .. } => {
                self.call(reqwest::Method::PATCH, "/_mock/settings", Some(sandbox), Some(patch)).await.map(drop)
            }
        }
    }

    /// Ends a run now: Succeeded with `outputs`.
    pub async fn complete_run(&self, sandbox: &str, run: &str, outputs: Value) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => {
                let id = FlowSessionId::parse(run).map_err(text)?;
                server.sandbox(sandbox).complete_run(id, outputs).await.map(drop).map_err(text)
            }
            Self::Http { .. } => self
                .call(
                    reqwest::Method::POST,
                    &format!("/_mock/runs/{run}/complete"),
                    Some(sandbox),
                    Some(json!({ "outputs": outputs })),
                )
                .await
                .map(drop),
        }
    }

    /// Ends a run now: Failed with `code` and `message`.
    pub async fn fail_run(&self, sandbox: &str, run: &str, code: &str, message: &str) -> Result<(), String> {
        match self {
            Self::InProcess { server, .. } => {
                let id = FlowSessionId::parse(run).map_err(text)?;
                server.sandbox(sandbox).fail_run(id, code, message).await.map(drop).map_err(text)
            }
            Self::Http { .. } => self
                .call(
                    reqwest::Method::POST,
                    &format!("/_mock/runs/{run}/fail"),
                    Some(sandbox),
                    Some(json!({ "code": code, "message": message })),
                )
                .await
                .map(drop),
        }
    }

    /// Every request entry of the sandbox's journal (raw, redacted), oldest first.
    pub async fn requests(&self, sandbox: &str) -> Result<Vec<Value>, String> {
        match self {
            Self::InProcess { server, .. } => {
                let filter = JournalFilter { kind: Some(EntryKind::Request), ..JournalFilter::all() };
                server.sandbox(sandbox).journal().entries(filter).await.map_err(text)
            }
            Self::Http { .. } => {
                let mut all = Vec::new();
                let mut since: Option<u64> = None;
                loop {
                    let path = match since {
                        Some(s) => format!("/_mock/journal?kind=request&limit=10000&since={s}"),
                        None => "/_mock/journal?kind=request&limit=10000".to_owned(),
                    };
                    let page = self.call(reqwest::Method::GET, &path, Some(sandbox), None).await?;
                    if let Some(entries) = page.get("entries").and_then(Value::as_array) {
                        all.extend(entries.iter().cloned());
                    }
                    match page.get("next").and_then(Value::as_u64) {
                        Some(next) => since = Some(next),
                        None => return Ok(all),
                    }
                }
            }
        }
    }

    /// What the sandbox holds now (`GET /_mock/state`).
    pub async fn state(&self, sandbox: &str) -> Result<Value, String> {
        match self {
            Self::InProcess { server, .. } => {
                let st = server.sandbox(sandbox).state().await.map_err(text)?;
                serde_json::to_value(st).map_err(text)
            }
            Self::Http { .. } => self.call(reqwest::Method::GET, "/_mock/state", Some(sandbox), None).await,
        }
    }

    /// Every Retry-After verdict of the sandbox, honoured ones included.
    pub async fn retry_after_verdicts(&self, sandbox: &str) -> Result<Vec<Value>, String> {
        match self {
            Self::InProcess { server, .. } => {
                let all = server.sandbox(sandbox).retry_after_verdicts().await.map_err(text)?;
                all.into_iter().map(|v| serde_json::to_value(v).map_err(text)).collect()
            }
            Self::Http { .. } => {
                let answer =
                    self.call(reqwest::Method::GET, "/_mock/retry-after?all=true", Some(sandbox), None).await?;
                Ok(answer.get("value").and_then(Value::as_array).cloned().unwrap_or_default())
            }
        }
    }

    /// One `/_mock/…` call over HTTP; a non-2xx answer is an error quoting its body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        sandbox: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let Self::Http { base, client, .. } = self else {
            return Err("an HTTP control call on the in-process mock".into());
        };
        let mut request = client.request(method.clone(), format!("{base}{path}"));
        if let Some(s) = sandbox {
            request = request.header("x-mock-sandbox", s);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| format!("{method} {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{method} {path} answered {status}: {}", String::from_utf8_lossy(&bytes)));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: the answer is not JSON: {e}"))
    }
}

/// How far to move a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// This many seconds.
    Seconds(u64),
    /// Until no run is Running.
    UntilIdle,
    /// To the next due run transition.
    ToNextEvent,
}

fn strip(mut v: Value, keys: &[&str]) -> Value {
    if let Value::Object(o) = &mut v {
        for k in keys {
            o.remove(*k);
        }
    }
    v
}

fn write_ca(pem: &str) -> Result<tempfile::TempDir, String> {
    let dir =
        tempfile::Builder::new().prefix("conformance-ca-").tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    std::fs::write(dir.path().join("ca.pem"), pem).map_err(|e| format!("writing the CA file: {e}"))?;
    Ok(dir)
}
