//! A mock Power Platform server: the identity token endpoint, the Power Platform API
//! connections endpoints, the Dataverse machine tables and sharing, with the real rules, on a
//! virtual clock. Desktop-flow runs are routed but not served yet (404 `NotImplementedByMock`).
//! Embeddable in tests ([`MockServer`]) and runnable as a binary (`cargo run -p mock-server`).
//!
//! # Layout
//!
//! - [`domain`] — the rules, as plain Rust over `World` and a clock (no HTTP types).
//! - [`identity`] — who gets which token; AADSTS errors.
//! - [`tokens`] — signing and verifying JWTs; JWKS.
//! - [`hosts`] — the host names the mock knows, and which audience a scope names.
//! - [`sandbox`] — sandboxes (the unit of isolation) and the registry that owns them.
//! - [`control`] — the control service: every control operation as a typed Rust method, one
//!   error type; `/_mock/…` and the typed handle both call it.
//! - [`handle`] — the typed Rust door: [`MockServer`]'s base URLs and [`SandboxHandle`]s
//!   (clock, journal, settings, machines, reset).
//! - [`journal`] — the request journal; secrets are redacted when an entry is written.
//! - [`normalise`] — the one normaliser: placeholders for GUIDs, times, tokens, ports.
//! - [`odata`] — the OData subset of the Dataverse surface ($select, $filter, $top, $orderby, paging).
//! - [`api`] — thin axum glue per surface (`/_mock/…` over [`control`]), the routing pipeline
//!   and the one error renderer.
//! - [`tls`] — the test CA and on-demand certificates for SNI names.
//! - [`server`] — the one serve loop and the [`MockServer`] handle.
//! - [`state`] — `AppState`: one mutex over the registry, keys, redactor.
//! - [`config`], [`telemetry`], [`banner`] — the binary's flags, logging and start banner.

pub mod api;
pub mod banner;
pub mod config;
pub mod control;
pub mod domain;
pub mod handle;
pub mod hosts;
pub mod identity;
pub mod journal;
pub mod normalise;
pub mod odata;
pub mod sandbox;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod tokens;

pub use handle::{SandboxHandle, Urls};
pub use server::{MockServer, MockServerBuilder, StartError, run};
