//! `mock-server`: flags → logging → bind loopback → serve until Ctrl-C or SIGTERM.

use clap::Parser;
use mock_server::config::Cli;
use mock_server::{MockServer, banner, telemetry};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log);
    match serve(cli).await {
        Ok(()) => ExitCode::SUCCESS,
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
        .header_timeout(Duration::from_secs(cli.header_timeout))
        .body_timeout(Duration::from_secs(cli.body_timeout))
        .idle_timeout(Duration::from_secs(cli.idle_timeout));
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
    let server = builder.start().await?;
    let ca_path = server.ca_pem().map(|_| ca_dir.join("ca.pem").display().to_string());
    if !cli.bind.is_loopback() {
        tracing::warn!(bind = %cli.bind, "serving beyond loopback: anyone who can reach this address sees the test credentials");
    }
    print!("{}", banner::render(&server.uri(), server.https_uri().as_deref(), ca_path.as_deref(), &world));
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    if cli.ca_dir.is_none() {
        let _ = std::fs::remove_dir_all(&ca_dir);
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
