//! The conformance suite's Rust reference adapter: a small desktop-flow client on reqwest
//! that speaks adapter protocol v1 (docs/conformance.md) and passes the whole catalog.
//!
//! The client is written as a correct client would be, and every choice a client can get
//! wrong is one method of [`Decisions`] whose default is the right answer: the suite's broken
//! variants (`conformance/tests/adapters/variants.rs`) each override exactly one of them.
//!
//! # Layout
//!
//! - [`decisions`] — the [`Decisions`] a client makes (body shape, what to retry, which id an
//!   update targets, poll pacing, run mode, what the connection URL carries) and
//!   [`Reference`], which makes each correctly.
//! - [`surfaces`] — the base URLs and the identity, read from the `MOCK_*` variables.
//! - [`client`] — [`Client`]: HTTP with the retry rule, the token cache, error envelopes.
//! - [`actions`] — the protocol's actions on a [`Client`] (connections, machines, sharing,
//!   runs through both doors).
//! - [`protocol`] — the JSON Lines loop: hello, steps, outcomes.
//!
//! The binary `conformance-adapter` is [`protocol::serve_stdio`] with [`Reference`].

pub mod actions;
pub mod client;
pub mod decisions;
pub mod protocol;
pub mod surfaces;

pub use client::{Client, Failure};
pub use decisions::{ConnectionSpec, Decisions, Reference, RunMode, RunOwner};
pub use protocol::{CAPABILITIES, serve, serve_stdio};
pub use surfaces::Surfaces;
