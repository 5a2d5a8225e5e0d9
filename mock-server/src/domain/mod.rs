//! The rules of the emulated world, as plain Rust: no axum, http, tokio or
//! `serde_json::Value` in any signature. Handlers translate wire DTOs into calls on `World`
//! and back; nothing here knows about HTTP.
//!
//! - `ids` — validated identifiers (`TenantId`, `EnvironmentId`, `MachineGroupId`, …) and the
//!   environment-host derivation of api-facts 1.2.
//! - `clock` — the only place real time is read; `VirtualClock` for sandboxes.
//! - `id_gen` — ids the mock makes up (sequential by default, so journals repeat).
//! - `world` — `World`: tenants, principals, environments, machines, groups, shares.
//! - `connection` — desktop-flow connections: who may create them on which group, their status.
//! - `access` — rights on machines and groups: ownership, shares with principals and teams,
//!   the cascade from group to machines, the Dataverse sharing messages.
//! - `connection_status` — a connection's status from the world as it is now: credentials on
//!   every machine, connect-with-sign-in prerequisites, a vanished group.
//! - `credential` — desktop-flow credentials and the environment variables they name, as
//!   Dataverse rows; the sandbox's stand-in for Azure Key Vault.
//! - `desktop_flow` — desktop flows (with the simulation of what their runs do) and
//!   connection references.
//! - `connection_share` — sharing run-owner connections with service principals.
//! - `connection_store` — the connections of a world, in creation order, found by id at once.
//! - `machine` — machines and groups as Dataverse rows: read access, create, rename, delete.
//! - `membership` — which group a machine is in: joining and leaving groups, silent
//!   registration, the control surface's edits of a machine's facts.
//! - `run` — desktop-flow runs: the queue on the virtual clock, machine selection, sessions
//!   and capacity, every outcome of runs.md; `World::advance_to` is time's one entry point.
//! - `windows_account` — which Windows account a written name (`.\user`, `AzureAD\upn`, …)
//!   stands for on a machine: one rule for connections and attended runs.
//! - `error` — `Error`: one variant per broken rule, with its documented code and message.

pub mod access;
pub mod clock;
pub mod connection;
pub mod connection_share;
pub mod connection_status;
pub mod connection_store;
pub mod credential;
pub mod desktop_flow;
pub mod error;
pub mod id_gen;
pub mod ids;
#[cfg(test)]
mod invariants;
pub mod machine;
pub mod membership;
pub mod run;
#[cfg(test)]
mod test_world;
pub mod windows_account;
pub mod world;

pub use error::Error;
