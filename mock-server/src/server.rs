//! The one serve loop ([`run`]) and the embeddable server handle ([`MockServer`]).
//!
//! `run` accepts connections (TLS when given an acceptor), tags each request with its
//! scheme, serves HTTP/1.1 and HTTP/2, and on shutdown stops accepting and lets open
//! connections finish. `MockServer` binds loopback ports, starts `run` for http and https, and
//! shuts both down when dropped (wiremock's pattern), so a test cannot leak a server.

use crate::api::{self, ConnInfo};
use crate::sandbox::Registry;
use crate::state::AppState;
use crate::tls::{CertificateAuthority, SniResolver};
use crate::tokens::Keys;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` changes; TLS when `tls` is given.
pub async fn run(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnInfo { scheme });
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        watcher
                            .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                None => {
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("connections still open after the drain timeout"),
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The fixture is invalid.
    #[error(transparent)]
    Fixture(#[from] fixtures::FixtureError),
    /// A port could not be bound.
    #[error("cannot bind {addr}: {source}{}", bind_hint(source))]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The signing key is unusable.
    #[error("signing key: {0}")]
    Key(String),
}

/// What to do about a port that is taken.
fn bind_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        " (another process uses this port: pick another with --port / --https-port, or MOCK_PORT / MOCK_HTTPS_PORT; 0 picks a free one)"
    } else {
        ""
    }
}

/// Configures and starts a [`MockServer`].
#[derive(Debug, Clone)]
pub struct MockServerBuilder {
    fixture: Option<fixtures::WorldFile>,
    http: SocketAddr,
    https: Option<SocketAddr>,
    ca_dir: Option<PathBuf>,
    signing_key_pem: Option<String>,
    journal_capacity: usize,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            fixture: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            https: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ca_dir: None,
            signing_key_pem: None,
            journal_capacity: crate::journal::DEFAULT_CAPACITY,
        }
    }
}

impl MockServerBuilder {
    /// Serves this world instead of the embedded default.
    pub fn fixture(mut self, world: fixtures::WorldFile) -> Self {
        self.fixture = Some(world);
        self
    }

    /// The http address (default `127.0.0.1:0`: a free port).
    pub fn http(mut self, addr: SocketAddr) -> Self {
        self.http = addr;
        self
    }

    /// The https address; `None` turns TLS off.
    pub fn https(mut self, addr: Option<SocketAddr>) -> Self {
        self.https = addr;
        self
    }

    /// Keeps the CA in `dir` (`ca.pem`, `ca.key.pem`): loaded if there, generated otherwise.
    pub fn ca_dir(mut self, dir: PathBuf) -> Self {
        self.ca_dir = Some(dir);
        self
    }

    /// Signs tokens with this PKCS#8 RSA key instead of the fixed test key.
    pub fn signing_key_pem(mut self, pem: String) -> Self {
        self.signing_key_pem = Some(pem);
        self
    }

    /// Journal entries kept per sandbox.
    pub fn journal_capacity(mut self, n: usize) -> Self {
        self.journal_capacity = n;
        self
    }

    /// Binds and starts serving.
    pub async fn start(self) -> Result<MockServer, StartError> {
        let fixture = self.fixture.unwrap_or_else(fixtures::default_world);
        let registry = Registry::new(fixture, self.journal_capacity)?;
        let keys = match &self.signing_key_pem {
            Some(pem) => Keys::from_pkcs8_pem(pem).map_err(StartError::Key)?,
            None => Keys::fixed_test_key(),
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
        };
        let http_listener = bind(self.http).await?;
        let https = match self.https {
            Some(addr) => {
                let ca = Arc::new(match &self.ca_dir {
                    Some(dir) => CertificateAuthority::load_or_generate(dir)?,
                    None => CertificateAuthority::generate()?,
                });
                let resolver = Arc::new(SniResolver::new(ca.clone(), &registry.hosts())?);
                Some((bind(addr).await?, ca, tokio_rustls::TlsAcceptor::from(resolver.server_config())))
            }
            None => None,
        };
        let state = AppState::new(registry, keys, https.as_ref().map(|(_, ca, _)| ca.cert_pem().to_owned()));
        let app = api::app(state.clone());
        let (tx, rx) = watch::channel(false);
        let http_addr = http_listener.local_addr().map_err(|source| StartError::Bind { addr: self.http, source })?;
        let mut tasks = vec![tokio::spawn(run(http_listener, None, app.clone(), rx.clone()))];
        let mut https_addr = None;
        let mut ca_pem = None;
        if let Some((listener, ca, acceptor)) = https {
            https_addr = Some(listener.local_addr().map_err(|source| StartError::Bind { addr: self.http, source })?);
            ca_pem = Some(ca.cert_pem().to_owned());
            tasks.push(tokio::spawn(run(listener, Some(acceptor), app, rx)));
        }
        Ok(MockServer { http: http_addr, https: https_addr, ca_pem, state, shutdown: tx, tasks })
    }
}

/// A running mock. Dropping it shuts the server down.
#[derive(Debug)]
pub struct MockServer {
    http: SocketAddr,
    https: Option<SocketAddr>,
    ca_pem: Option<String>,
    state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server on free loopback ports with the default world.
    pub async fn start() -> Result<Self, StartError> {
        Self::builder().start().await
    }

    /// A builder.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.http)
    }

    /// `https://127.0.0.1:PORT`, when TLS is on.
    pub fn https_uri(&self) -> Option<String> {
        self.https.map(|a| format!("https://{a}"))
    }

    /// The http address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The https address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    /// The CA certificate clients must trust (PEM), when TLS is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Shared state (for embedding tests that inspect the registry directly).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, lets open connections finish, and waits for the loops to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
