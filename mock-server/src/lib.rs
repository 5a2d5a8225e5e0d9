//! A mock Power Platform server: the identity token endpoint, the Power Platform API
//! connections endpoints, the Dataverse machine tables and sharing, and desktop-flow runs
//! (`RunDesktopFlow`, `flowsessions`, `RunUIFlow_V2` and `GetRunStatus`: one queue over Windows
//! sessions on the machines), with the real rules, on a virtual clock.
//! Embeddable in tests ([`MockServer`]) and runnable as a binary (`cargo run -p mock-server`).
//!
//! # In a test
//!
//! A server on free loopback ports with the default world, a token from it, then the typed
//! handle ([`handle`]): the clock, the journal, reset. Dropping the server shuts it down.
//!
//! ```
//! use mock_server::MockServer;
//! use mock_server::control::JournalFilter;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = MockServer::start().await?;
//! let urls = server.http_urls();
//! // The default world's pipeline service principal gets a token for the Power Platform API.
//! let token: serde_json::Value = reqwest::Client::new()
//!     .post(urls.token("contoso.onmicrosoft.com"))
//!     .form(&[
//!         ("grant_type", "client_credentials"),
//!         ("client_id", "71fb83d4-8950-48e6-8251-52e4b19068c8"),
//!         ("client_secret", "mock-pipeline-secret~0001"),
//!         ("scope", "https://api.powerplatform.com/.default"),
//!     ])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! let environment = urls.powerplatform("37520647-dbdf-49fa-ba01-6134c14680c4");
//! let connections = reqwest::Client::new()
//!     .get(format!("{environment}/connections?api-version=1"))
//!     .bearer_auth(token["access_token"].as_str().unwrap_or_default())
//!     .send()
//!     .await?;
//! assert_eq!(connections.status(), 200);
//!
//! let sandbox = server.default_sandbox();
//! let clock = sandbox.clock().advance(Duration::from_secs(90 * 60)).await?;
//! assert_eq!(clock.now.to_rfc3339(), "2025-01-06T10:30:00+00:00");
//! let posts = sandbox.journal().entries(JournalFilter::all().method("POST")).await?;
//! assert_eq!(posts.len(), 1, "the token request");
//! assert!(!format!("{posts:?}").contains("mock-pipeline-secret"), "its secret was redacted");
//! sandbox.reset().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`domain`] — the rules, as plain Rust over `World` and a clock (no HTTP types).
//! - [`identity`] — who gets which token; AADSTS errors.
//! - [`tokens`] — signing and verifying JWTs; JWKS.
//! - [`hosts`] — the host names the mock knows, and which audience a scope names.
//! - [`sandbox`] — sandboxes (the unit of isolation, each behind its own lock) and the registry
//!   that owns and indexes them.
//! - [`control`] — the control service: every control operation as a typed Rust method, one
//!   error type; `/_mock/…` and the typed handle both call it.
//! - [`handle`] — the typed Rust door: [`MockServer`]'s base URLs and [`SandboxHandle`]s
//!   (clock, journal, settings, machines and sessions, runs, desktop flows, reset).
//! - [`fault`] — fault rules (matching, `times`/`every`/seeded `probability`, delays) and the
//!   Retry-After check, as plain Rust; `api::faults` puts them on the wire.
//! - [`scenario`] — named scenarios (`fixtures/scenarios/`): fault rules and world steps.
//! - [`journal`] — the request journal; secrets are redacted when an entry is written.
//! - [`normalise`] — the one normaliser: placeholders for GUIDs, times, tokens, ports.
//! - [`operation`] — the named operations every request is classified into (journal, docs).
//! - [`odata`] — the OData subset of the Dataverse surface ($select, $filter, $top, $orderby, paging).
//! - [`api`] — thin axum glue per surface (`/_mock/…` over [`control`]), the routing pipeline
//!   and the one error renderer.
//! - [`callbacks`] — run callbacks: POSTs to loopback `callbackUrl`s after the lock, retried
//!   in the background, journaled.
//! - [`tls`] — the test CA and on-demand certificates for SNI names.
//! - `snapshot` (feature `insta`) — `assert_journal_snapshot!`: a journal slice snapshotted in one line.
//! - [`server`] — the one serve loop and the [`MockServer`] handle.
//! - [`state`] — `AppState`: the registry (a lock per sandbox), keys, the verified-token cache, redactor.
//! - [`config`], [`telemetry`], [`banner`] — the binary's flags, logging and start banner.

pub mod api;
pub mod banner;
pub mod callbacks;
pub mod config;
pub mod control;
pub mod domain;
pub mod fault;
pub mod handle;
pub mod hosts;
pub mod identity;
pub mod journal;
pub mod normalise;
pub mod odata;
pub mod operation;
pub mod sandbox;
pub mod scenario;
pub mod server;
#[cfg(feature = "insta")]
pub mod snapshot;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod tokens;

pub use handle::{SandboxHandle, Urls};
pub use server::{MockServer, MockServerBuilder, StartError, run};
