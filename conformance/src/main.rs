//! `conformance`: grades a client through its adapter command. Flags only (docs/conformance.md).

use clap::Parser;
use conformance::{RunError, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Grades a Power Platform client against the mock through an adapter command.
/// Exit 0: no MUST case failed; 1: a MUST case failed or an expected failure is stale;
/// 2: usage or infrastructure error.
#[derive(Debug, Parser)]
#[command(name = "conformance", version)]
struct Cli {
    /// Print the cases, one per line (id, level, statement), and nothing else.
    #[arg(long)]
    list: bool,
    /// Run only these cases: comma-separated ids, id prefixes (`connections/create`) or globs (`runs/*/cancel`).
    #[arg(long = "case", value_name = "PATTERN")]
    case: Option<String>,
    /// The adapter command, run with `sh -c` once per case.
    #[arg(long, value_name = "CMD")]
    adapter: Option<String>,
    /// A mock already running (its http or https URL); without it the mock starts in-process.
    #[arg(long, value_name = "URL")]
    mock_url: Option<String>,
    /// Case ids expected to fail, one per line (`#` comments); a listed case that passes is stale (exit 1).
    #[arg(long, value_name = "FILE")]
    expected_failures: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write each run case's observed requests back into its file as expect.requests.
    #[arg(long)]
    update: bool,
    /// Cases run at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Load the cases from this folder instead of the embedded catalog.
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
    /// Seconds the adapter may take for one step.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    step_timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_with(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn main_with(cli: Cli) -> Result<u8, RunError> {
    if cli.list {
        let cases = conformance::catalog(cli.cases.as_deref())?;
        let shown: Vec<_> = cases
            .iter()
            .filter(|c| cli.case.as_deref().is_none_or(|p| conformance::run::selects(p, &c.case.id)))
            .collect();
        let width = shown.iter().map(|c| c.case.id.len()).max().unwrap_or(0);
        for c in shown {
            println!("{:<width$}  {:<6}  {}", c.case.id, c.case.level.as_str(), c.case.statement);
        }
        return Ok(0);
    }
    let adapter = cli.adapter.ok_or_else(|| RunError::Usage("--adapter \"CMD\" is required (or --list)".into()))?;
    let mut options = RunOptions::new(adapter);
    options.case_filter = cli.case;
    options.jobs = cli.jobs.unwrap_or(0);
    options.cases_dir = cli.cases;
    options.mock_url = cli.mock_url;
    options.update = cli.update;
    options.step_timeout = Duration::from_secs(cli.step_timeout.max(1));
    if let Some(path) = &cli.expected_failures {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RunError::Usage(format!("--expected-failures {}: {e}", path.display())))?;
        options.expected_failures = conformance::report::parse_expected_failures(&text);
    }
    let report = conformance::run(options)?;
    print!("{}", report.render());
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|e| RunError::Io(format!("cannot write {}: {e}", path.display())))
    };
    if let Some(path) = &cli.junit {
        write(path, report.to_junit())?;
    }
    if let Some(path) = &cli.json {
        write(path, serde_json::to_string_pretty(&report.to_json()).unwrap_or_default() + "\n")?;
    }
    Ok(if report.exit_code() == 0 { 0 } else { 1 })
}
