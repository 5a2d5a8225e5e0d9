//! Command-line flags, each with an environment-variable fallback.

use clap::Parser;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// What `--help` says about the limits; a test keeps it in step with the constants that enforce them.
const LIMITS: &str = "Limits: request bodies up to 4 MiB (413), URIs up to 16 KiB (414), header blocks up to \
64 KiB (431), each answered in the surface's error envelope (docs/errors.md).";

/// A mock Power Platform server for offline tests.
#[derive(Debug, Clone, Parser)]
#[command(name = "mock-server", version, about, after_help = LIMITS)]
pub struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Apply this named scenario to the default sandbox at start (`mock-server scenarios` lists them).
    #[arg(long, env = "MOCK_SCENARIO", value_name = "NAME")]
    pub scenario: Option<String>,
    /// Address to bind. Loopback by default; anything else exposes test credentials.
    #[arg(long, env = "MOCK_BIND", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// http port (0 picks a free one).
    #[arg(long, short = 'p', env = "MOCK_PORT", default_value_t = 8080)]
    pub port: u16,
    /// https port (0 picks a free one). MSAL for Python needs 443 for the password grant.
    #[arg(long, env = "MOCK_HTTPS_PORT", default_value_t = 8443)]
    pub https_port: u16,
    /// Serve http only.
    #[arg(long, env = "MOCK_NO_TLS")]
    pub no_tls: bool,
    /// World to serve instead of the embedded default (a JSON file, see fixtures/README.md).
    #[arg(long, env = "MOCK_FIXTURE")]
    pub fixture: Option<PathBuf>,
    /// Keep the test CA here (ca.pem, ca.key.pem): loaded if present, generated otherwise.
    /// Default: a new CA in a fresh temporary directory.
    #[arg(long, env = "MOCK_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// PKCS#8 RSA key (PEM) to sign tokens with, instead of the fixed test key.
    #[arg(long, env = "MOCK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Journal entries kept per sandbox.
    #[arg(long, env = "MOCK_JOURNAL_CAPACITY", default_value_t = crate::journal::DEFAULT_CAPACITY)]
    pub journal_capacity: usize,
    /// Journal bytes kept per sandbox, counted at stored size (oldest entries evicted first).
    #[arg(long, env = "MOCK_JOURNAL_BYTES", default_value_t = crate::journal::DEFAULT_SANDBOX_BYTES, value_name = "BYTES")]
    pub journal_bytes: usize,
    /// Journal bytes kept over all sandboxes; a sandbox over it evicts its own oldest entries.
    #[arg(long, env = "MOCK_JOURNAL_TOTAL_BYTES", default_value_t = crate::journal::DEFAULT_TOTAL_BYTES, value_name = "BYTES")]
    pub journal_total_bytes: usize,
    /// Log filter (tracing EnvFilter syntax); RUST_LOG works too.
    #[arg(long, env = "MOCK_LOG", default_value = "mock_server=info")]
    pub log: String,
    /// Seconds a client may take to send a request head (then the connection is closed).
    #[arg(long, env = "MOCK_HEADER_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 30, value_name = "SECS")]
    pub header_timeout: u64,
    /// Seconds a client may pause between two pieces of a request body (then 408 and close).
    #[arg(long, env = "MOCK_BODY_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 30, value_name = "SECS")]
    pub body_timeout: u64,
    /// Honour the request header `x-mock-scenario: NAME`: the scenario's first fault rule that
    /// fits answers that one request (scenarios made of fault rules only).
    #[arg(long, env = "MOCK_ALLOW_REQUEST_FAULTS")]
    pub allow_request_faults: bool,
    /// Seconds a kept-alive connection may sit idle between requests.
    #[arg(long, env = "MOCK_IDLE_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 120, value_name = "SECS")]
    pub idle_timeout: u64,
}

/// Commands other than serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print the named scenarios, one a line (name, two spaces, summary), and exit.
    Scenarios,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URI_BYTES};

    #[test]
    fn help_states_the_limits_the_pipeline_enforces() {
        let stated = [(MAX_BODY_BYTES, "4 MiB"), (MAX_URI_BYTES, "16 KiB"), (MAX_HEADER_BYTES, "64 KiB")];
        for (bytes, text) in stated {
            let (n, unit) = text.split_once(' ').unwrap();
            let shift = if unit == "MiB" { 20 } else { 10 };
            assert_eq!(bytes, n.parse::<usize>().unwrap() << shift, "{text}");
            assert!(LIMITS.contains(text), "{text}");
        }
    }

    #[test]
    fn a_timeout_of_zero_is_refused() {
        assert!(Cli::try_parse_from(["mock-server", "--header-timeout", "0"]).is_err());
        assert_eq!(Cli::try_parse_from(["mock-server", "--body-timeout", "5"]).unwrap().body_timeout, 5);
    }
}
