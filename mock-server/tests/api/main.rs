//! One integration-test binary: every test talks HTTP to a real mock on free loopback ports.

#![allow(unreachable_pub, missing_docs)]

mod bad_input;
mod connections;
mod control;
mod dataverse;
mod helpers;
mod identity;
mod interop;
mod journal;
mod routing;
mod rules;
mod secrets;
