//! The whole embedded catalog through `conformance::run` (the mock in-process): both
//! reference adapters pass every case, each broken variant fails exactly the cases
//! [`CAUGHT_BY`] names, and the JUnit file of each of these real runs parses.

use conformance::{CaseStatus, Failure, Report, RunOptions};
use std::collections::BTreeSet;

/// Cases at once in one run. The work is mostly waiting (Retry-After is real time, each case
/// its own adapter process), so more than the cores.
const JOBS: usize = 16;

/// The variants whose mistake is a wait too short: the mock judges waits in real time, so on
/// a machine too loaded to answer within the `Retry-After` their hurry looks like patience.
/// Their catalog runs go last, alone, with [`JOBS_IN_REAL_TIME`] cases at once.
pub(crate) const JUDGED_IN_REAL_TIME: &[&str] = &["polls-without-retry-after"];

/// Cases at once in a run of [`JUDGED_IN_REAL_TIME`].
const JOBS_IN_REAL_TIME: usize = 4;

/// The cases that update a connection: a variant that puts the password in the query on
/// updates, and one that creates instead of updating, each fail exactly these.
const UPDATES: &[&str] = &[
    "connections/run-owner/cannot-be-removed",
    "connections/run-owner/update-keeps-run-owner",
    "connections/secrets/windows-password-in-body",
    "connections/sign-in/parameter-set-cannot-change",
    "connections/update/rotated-password",
    "connections/update/same-id",
];

/// Which cases catch which broken variant: the variant fails these and passes every other
/// case of the catalog. fixtures/cases/CATALOG.md shows the same table (checked below).
pub(crate) const CAUGHT_BY: &[(&str, &[&str])] = &[
    (
        "wrong-body-field",
        &[
            "connections/create/service-principal",
            "connections/get/fields",
            "connections/list/environment",
            "connections/put/seed-body",
            "connections/put/sign-in-body",
            "connections/run-owner/cannot-be-removed",
            "connections/run-owner/update-keeps-run-owner",
            "connections/sign-in/parameter-set-cannot-change",
            "connections/update/same-id",
        ],
    ),
    (
        "ignores-429",
        &[
            "retry/429/bounded",
            "retry/429/connection-put",
            "retry/429/dataverse-query",
            "retry/429/run-start",
            "retry/429/token",
        ],
    ),
    (
        "retries-403",
        &[
            "connections/create/group-not-shared",
            "retry/no-retry/forbidden-connection-put",
            "retry/no-retry/forbidden-grant-access",
        ],
    ),
    ("password-in-query", UPDATES),
    ("creates-instead-of-updates", UPDATES),
    ("polls-without-retry-after", &["runs/connector/polls-honour-retry-after", "runs/connector/waits-retry-after"]),
    (
        "unattended-on-sign-in",
        &[
            "runs/connector/passwordless-token-expiry",
            "runs/connector/queue-limit-one-hour",
            "runs/connector/waits-retry-after",
            "runs/dataverse/queue-limit-one-hour",
            "runs/dataverse/session-locked",
            "runs/dataverse/succeeds-with-outputs",
            "runs/dataverse/tenant-not-allowlisted-at-run",
        ],
    ),
];

/// The Python reference adapter by its full path, for a runner started anywhere.
pub(crate) fn python_adapter_from_anywhere() -> String {
    let script = crate::driver::repo_root().join("conformance/adapters/python/adapter.py");
    format!("python3 {}", crate::variants::shell_quote(&script.display().to_string()))
}

/// Every case of the embedded catalog against `command`, `jobs` at once.
fn run_catalog(command: &str, jobs: usize) -> Report {
    let mut options = RunOptions::new(command);
    options.jobs = jobs;
    let report = conformance::run(options).unwrap_or_else(|e| panic!("the run against {command} did not finish: {e}"));
    junit_has_one_testcase_per_case(&report);
    report
}

fn ids_with(report: &Report, status: CaseStatus) -> BTreeSet<&str> {
    report.cases.iter().filter(|c| c.status == status).map(|c| c.id.as_str()).collect()
}

/// A reference adapter passes every case, none skipped.
pub(crate) fn reference_passes_every_case(command: &str) {
    let report = run_catalog(command, JOBS);
    let passed = report.count(CaseStatus::Passed);
    assert!(
        passed == report.cases.len() && report.exit_code() == 0,
        "{}\n{command}: {passed} of {} cases passed",
        report.render(),
        report.cases.len()
    );
}

/// The variant `name` fails exactly the cases [`CAUGHT_BY`] names for it, and skips none.
pub(crate) fn variant_fails_exactly_its_cases(name: &str) {
    let expected: BTreeSet<&str> = CAUGHT_BY
        .iter()
        .find(|(variant, _)| *variant == name)
        .map(|(_, ids)| ids.iter().copied().collect())
        .unwrap_or_else(|| panic!("CAUGHT_BY names no cases for the variant {name}"));
    let jobs = if JUDGED_IN_REAL_TIME.contains(&name) { JOBS_IN_REAL_TIME } else { JOBS };
    let report = run_catalog(&crate::variants::variant_adapter_command(name), jobs);
    let failed = ids_with(&report, CaseStatus::Failed);
    let skipped = ids_with(&report, CaseStatus::Skipped);
    let missed: Vec<&str> = expected.difference(&failed).copied().collect();
    let also: Vec<&str> = failed.difference(&expected).copied().collect();
    if missed.is_empty() && also.is_empty() && skipped.is_empty() {
        return;
    }
    // What the cases it should have passed saw it do wrong.
    let details: String = report
        .cases
        .iter()
        .filter(|c| also.contains(&c.id.as_str()))
        .map(|c| format!("{}:\n{}", c.id, c.failures.iter().map(Failure::render).collect::<String>()))
        .collect();
    panic!(
        "the variant {name}\n  missed (passed, but CAUGHT_BY names them): {missed:?}\n  \
         also failed (not in CAUGHT_BY): {also:?}\n  skipped: {skipped:?}\n{details}"
    );
}

/// `--junit` of a real run: it parses, with one `<testcase>` per catalog case named by its
/// id, a `<failure>` exactly in the failed ones.
fn junit_has_one_testcase_per_case(report: &Report) {
    let xml = report.to_junit();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("the JUnit file does not parse: {e}\n{xml}"));
    let testcases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    let named: Vec<&str> = testcases.iter().filter_map(|t| t.attribute("name")).collect();
    let catalog = conformance::catalog(None).expect("the embedded catalog loads");
    let ids: Vec<&str> = catalog.iter().map(|c| c.case.id.as_str()).collect();
    assert_eq!(named, ids, "one testcase per catalog case, in catalog order");
    let with_failure: BTreeSet<&str> = testcases
        .iter()
        .filter(|t| t.children().any(|c| c.has_tag_name("failure")))
        .filter_map(|t| t.attribute("name"))
        .collect();
    assert_eq!(with_failure, ids_with(report, CaseStatus::Failed));
}

/// [`CAUGHT_BY`] names every variant once, only catalog cases, and fixtures/cases/CATALOG.md
/// shows the same lists.
pub(crate) fn the_table_names_every_variant_and_matches_catalog_md() {
    let variants: Vec<&str> = crate::variants::names().into_iter().filter(|n| *n != "reference").collect();
    let tabled: Vec<&str> = CAUGHT_BY.iter().map(|(v, _)| *v).collect();
    assert_eq!(tabled, variants, "CAUGHT_BY follows VARIANTS");
    let catalog = conformance::catalog(None).expect("the embedded catalog loads");
    let ids: BTreeSet<&str> = catalog.iter().map(|c| c.case.id.as_str()).collect();
    for (variant, cases) in CAUGHT_BY {
        let unknown: Vec<&&str> = cases.iter().filter(|id| !ids.contains(**id)).collect();
        assert!(unknown.is_empty(), "CAUGHT_BY[{variant}] names cases not in the catalog: {unknown:?}");
    }
    let path = crate::driver::repo_root().join("fixtures/cases/CATALOG.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (variant, cases) in CAUGHT_BY {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| `{variant}` |")))
            .unwrap_or_else(|| panic!("CATALOG.md has no row for {variant}"));
        let listed: Vec<&str> =
            row.rsplit('|').nth(1).unwrap_or_default().split(',').map(|id| id.trim().trim_matches('`')).collect();
        assert_eq!(&listed, cases, "CATALOG.md's row for {variant} lists CAUGHT_BY's cases, in its order");
    }
}
