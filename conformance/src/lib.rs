//! The conformance suite: grades any Power Platform client, in any language, against the mock
//! through a command adapter, on what it reported, what it sent, what state it left, whether
//! it leaked a secret and whether it honoured `Retry-After` (docs/conformance.md;
//! /work/shared/spec/conformance.md is the contract).
//!
//! # Use from Rust
//!
//! ```no_run
//! use conformance::{RunOptions, run};
//!
//! let mut options = RunOptions::new("python3 conformance/adapters/python/adapter.py");
//! options.case_filter = Some("connections/create".into());
//! let report = run(options)?;
//! assert_eq!(report.exit_code(), 0, "{}", report.render());
//! # Ok::<(), conformance::RunError>(())
//! ```
//!
//! The signatures other code builds on:
//!
//! - [`run`]`(RunOptions) -> Result<Report, RunError>` (its own runtime) and
//!   [`run_async`] (inside one); [`catalog`]`(Option<&Path>)` lists the cases.
//! - [`RunOptions`] `{ adapter_command, case_filter, jobs, cases_dir, mock_url, step_timeout,
//!   expected_failures, update }`; [`RunOptions::new`] fills the defaults.
//! - [`Report`] `{ run_id, adapter, cases: Vec<CaseReport>, stale, duration_ms }` with
//!   [`Report::exit_code`], [`Report::render`], [`Report::to_junit`], [`Report::to_json`];
//!   [`CaseReport`] `{ id, level, statement, file, status: CaseStatus, skip_reason, failures:
//!   Vec<Failure>, expected_failure, sandbox, doors, stderr, duration_ms }`.
//!
//! # Layout
//!
//! - [`case`] — the case format (serde, unknown fields refused) and its loader: embedded from
//!   `fixtures/cases/` or a folder; errors name file and field.
//! - [`world_map`] — default-world values ↔ a sandbox's, learnt by walking both worlds;
//!   `{"account": …}` expansion.
//! - [`substitute`] — `save` and `${name.field}`.
//! - [`adapter`] — the adapter process and protocol version 1 (JSON Lines).
//! - [`mock`] — the mock in-process (typed handle) or over HTTP (`--mock-url`), one type.
//! - [`check`] — outcomes, requests (through `mock_server::normalise`, the one normaliser),
//!   counts, leaks, state, Retry-After.
//! - [`run`](mod@run) — a run: sandboxes, parallelism, expected failures.
//! - [`report`] — the report, exit code, JUnit and JSON.
//! - [`update`] — `--update`: observed requests written back into a case file.
//! - `main.rs` — the `conformance` binary: flags only.

pub mod adapter;
pub mod case;
pub mod check;
pub mod mock;
pub mod report;
pub mod run;
pub mod substitute;
pub mod update;
pub mod world_map;

pub use case::{Case, CaseError, Level, LoadedCase};
pub use report::{CaseReport, CaseStatus, Failure, Report};
pub use run::{DEFAULT_STEP_TIMEOUT, RunError, RunOptions, catalog, run, run_async};
