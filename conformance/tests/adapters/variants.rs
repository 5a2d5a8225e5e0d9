//! The broken variants of the Rust reference client: each overrides exactly one of its
//! [`Decisions`] with a mistake real clients make. They run as real adapter processes: this
//! test binary serves the protocol as the variant `CONFORMANCE_VARIANT` names
//! ([`serve_from_env`]), so [`variant_adapter_command`] is all the runner needs.

use conformance_adapter::decisions::{ConnectionSpec, Decisions, RunMode, connection_body};
use conformance_adapter::{Reference, serve_stdio};
use serde_json::Value;
use std::time::Duration;

/// The variable that turns this test binary into an adapter.
pub(crate) const VARIANT_VAR: &str = "CONFORMANCE_VARIANT";

/// A broken variant: its name (the suite's, stable) and the one decision it gets wrong (a
/// sentence that starts with the name).
pub(crate) struct Variant {
    pub(crate) name: &'static str,
    pub(crate) mistake: &'static str,
    pub(crate) decisions: fn() -> Box<dyn Decisions>,
}

/// Every broken variant, and `reference` (no mistake: the Rust reference adapter itself, so
/// tests can run it without locating another package's binary).
pub(crate) const VARIANTS: &[Variant] = &[
    Variant { name: "reference", mistake: "none", decisions: || Box::new(Reference) },
    Variant {
        name: "wrong-body-field",
        mistake: "wrong-body-field puts displayName beside properties instead of inside it",
        decisions: || Box::new(WrongBodyField),
    },
    Variant { name: "ignores-429", mistake: "ignores-429 does not retry a 429", decisions: || Box::new(Ignores429) },
    Variant {
        name: "retries-403",
        mistake: "retries-403 retries a 403 like a 429",
        decisions: || Box::new(Retries403),
    },
    Variant {
        name: "password-in-query",
        mistake: "password-in-query sends a rotated Windows password as a query parameter of the update PUT",
        decisions: || Box::new(PasswordInQuery),
    },
    Variant {
        name: "creates-instead-of-updates",
        mistake: "creates-instead-of-updates PUTs an update to a new connection id",
        decisions: || Box::new(CreatesInsteadOfUpdates),
    },
    Variant {
        name: "polls-without-retry-after",
        mistake: "polls-without-retry-after polls a run again at once, ignoring Retry-After",
        decisions: || Box::new(PollsWithoutRetryAfter),
    },
    Variant {
        name: "unattended-on-sign-in",
        mistake: "unattended-on-sign-in starts every run unattended, so sign-in connections fail",
        decisions: || Box::new(UnattendedOnSignIn),
    },
];

/// The command line that runs the variant `name` as an adapter (for `--adapter` or
/// `sh -c`): this very test binary with [`VARIANT_VAR`] set.
pub(crate) fn variant_adapter_command(name: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    format!("{VARIANT_VAR}={} {}", shell_quote(name), shell_quote(&exe.display().to_string()))
}

/// `s` as one word of `sh`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// When [`VARIANT_VAR`] is set, serves the protocol as that variant and returns the exit
/// code; otherwise `None` (the binary runs its tests).
pub(crate) fn serve_from_env() -> Option<std::process::ExitCode> {
    let name = std::env::var(VARIANT_VAR).ok()?;
    let Some(variant) = VARIANTS.iter().find(|v| v.name == name) else {
        eprintln!("unknown {VARIANT_VAR} '{name}'; known: {}", names().join(", "));
        return Some(std::process::ExitCode::from(2));
    };
    Some(match serve_stdio((variant.decisions)()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[{name}] stdin or stdout failed: {e}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// The variants' names, `reference` first.
pub(crate) fn names() -> Vec<&'static str> {
    VARIANTS.iter().map(|v| v.name).collect()
}

#[derive(Debug)]
struct WrongBodyField;

impl Decisions for WrongBodyField {
    fn connection_body(&self, environment: &str, spec: &ConnectionSpec) -> Value {
        let mut body = connection_body(environment, spec);
        if let Some(name) = body["properties"].as_object_mut().and_then(|p| p.remove("displayName")) {
            body["displayName"] = name;
        }
        body
    }
}

#[derive(Debug)]
struct Ignores429;

impl Decisions for Ignores429 {
    fn retries(&self, status: u16) -> bool {
        status == 503
    }
}

#[derive(Debug)]
struct Retries403;

impl Decisions for Retries403 {
    fn retries(&self, status: u16) -> bool {
        matches!(status, 403 | 429 | 503)
    }
}

#[derive(Debug)]
struct PasswordInQuery;

impl Decisions for PasswordInQuery {
    fn connection_query(&self, spec: &ConnectionSpec, update: bool) -> Vec<(String, String)> {
        let mut query = vec![("api-version".to_owned(), "1".to_owned())];
        query.extend(spec.password.clone().filter(|_| update).map(|p| ("password".to_owned(), p)));
        query
    }
}

#[derive(Debug)]
struct CreatesInsteadOfUpdates;

impl Decisions for CreatesInsteadOfUpdates {
    fn update_target(&self, _connection_id: &str) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

#[derive(Debug)]
struct PollsWithoutRetryAfter;

impl Decisions for PollsWithoutRetryAfter {
    fn poll_delay(&self, _retry_after: Option<Duration>) -> Duration {
        Duration::ZERO
    }
}

#[derive(Debug)]
struct UnattendedOnSignIn;

impl Decisions for UnattendedOnSignIn {
    fn run_mode(&self, _asked: RunMode) -> RunMode {
        RunMode::Unattended
    }
}
