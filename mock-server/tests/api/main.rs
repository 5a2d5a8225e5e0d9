//! One integration-test binary: every test talks HTTP to a real mock on free loopback ports.

#![allow(unreachable_pub, missing_docs)]

mod accounts_and_credentials;
mod addressing;
mod bad_input;
mod bodies;
mod concurrency;
mod connections;
mod control;
mod created_ids;
mod dataverse;
mod faults;
mod handle;
mod helpers;
mod identity;
mod interop;
mod journal;
mod newcomer;
mod operations;
mod routing;
mod rules;
mod runs;
mod runs_audit;
mod runs_callbacks;
mod runs_control;
mod runs_outcomes;
mod scenarios;
mod secrets;
mod token_checks;
