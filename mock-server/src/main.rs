//! `mock-server`: flags → logging → bind loopback → serve until Ctrl-C or SIGTERM.

use clap::Parser;
use mock_server::config::{Cli, Command};
use mock_server::{MockServer, banner, telemetry};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

// Every request builds and drops many small JSON values: mimalloc does that markedly faster
// than the system allocator (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Scenarios) = cli.command {
        return list_scenarios();
    }
    telemetry::init(&cli.log);
    match serve(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mock-server scenarios`: one line per scenario on stdout, nothing else; no server.
fn list_scenarios() -> ExitCode {
    match mock_server::scenario::all() {
        Ok(all) => {
            for s in all {
                println!("{}  {}", s.name, s.summary);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mock-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let world = match &cli.fixture {
        Some(path) => fixtures::load_world(path)?,
        None => fixtures::default_world(),
    };
    let mut builder = MockServer::builder()
        .fixture(world.clone())
        .http(SocketAddr::new(cli.bind, cli.port))
        .https((!cli.no_tls).then_some(SocketAddr::new(cli.bind, cli.https_port)))
        .journal_capacity(cli.journal_capacity)
        .journal_bytes(cli.journal_bytes)
        .journal_total_bytes(cli.journal_total_bytes)
        .header_timeout(Duration::from_secs(cli.header_timeout))
        .body_timeout(Duration::from_secs(cli.body_timeout))
        .idle_timeout(Duration::from_secs(cli.idle_timeout))
        .allow_request_faults(cli.allow_request_faults);
    if let Some(path) = &cli.signing_key {
        builder =
            builder.signing_key_pem(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    // The CA lives in a directory the user chose, or a fresh one for this process.
    let ca_dir = match &cli.ca_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("mock-server-ca-{}", std::process::id())),
    };
    if !cli.no_tls {
        builder = builder.ca_dir(ca_dir.clone());
    }
    let stop = shutdown_signal();
    let server = match builder.start().await {
        Ok(server) => server,
        Err(e) => {
            // The CA may already be written when a port turns out to be taken.
            if cli.ca_dir.is_none() {
                let _ = std::fs::remove_dir_all(&ca_dir);
            }
            return Err(e.into());
        }
    };
    if let Some(name) = &cli.scenario
        && let Err(e) = server.control().apply_scenario(mock_server::sandbox::DEFAULT_SANDBOX, name)
    {
        server.shutdown().await;
        return Err(format!("--scenario {name}: {e}").into());
    }
    let ca_path = server.ca_pem().map(|_| ca_dir.join("ca.pem").display().to_string());
    if !cli.bind.is_loopback() {
        tracing::warn!(bind = %cli.bind, "serving beyond loopback: anyone who can reach this address sees the test credentials");
    }
    print!("{}", banner::render(&server.uri(), server.https_uri().as_deref(), ca_path.as_deref(), &world));
    stop.await;
    tracing::info!("shutting down");
    server.shutdown().await;
    if cli.ca_dir.is_none() {
        let _ = std::fs::remove_dir_all(&ca_dir);
    }
    Ok(())
}

/// Listens for Ctrl-C and SIGTERM from the moment it is made, so a signal sent as soon as the
/// banner appears shuts down gracefully instead of killing the process.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn received(s: Option<Signal>) {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            _ = received(interrupt) => {},
            _ = received(terminate) => {},
        }
    }
}

/// Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
