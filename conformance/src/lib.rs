//! The conformance suite: grades any Power Platform client against the mock through a
//! command adapter, on what it sent, what state it left and what it reported.
//!
//! # Layout
//!
//! This crate is a placeholder until the conformance-suite issue: it holds only this map.
//! Planned modules (STYLE.md):
//!
//! - `protocol` — the adapter wire format (steps on stdin, one JSON outcome per step on stdout), versioned.
//! - `adapter` — `CommandAdapter`: spawns any client's adapter executable.
//! - `case` — cases loaded from `fixtures/cases/`.
//! - `verify` — compares normalised requests (via `mock_server::normalise`, the one
//!   normaliser), end state and reported outcome; failures show expected vs actual.
//! - `harness` — one libtest trial per case; JUnit output.
//! - `reference` — the reference Rust client that must pass 100 %.
