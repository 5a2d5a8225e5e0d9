//! The one serve loop ([`run`]) and the embeddable server ([`MockServer`]); its typed
//! control methods are in [`crate::handle`].
//!
//! `run` accepts connections (TLS when given an acceptor), tags each request with its
//! scheme, serves HTTP/1.1 and HTTP/2 with hyper's limits set above the mock's own, closes
//! connections that stall (head, idle: [`Timeouts`]; the body timeout is the pipeline's), and
//! on shutdown stops accepting and lets open connections finish. `MockServer` binds loopback ports, starts `run` for http and https, and
//! shuts both down when dropped (wiremock's pattern), so a test cannot leak a server.

use crate::api::{self, ConnInfo};
use crate::control::{ClockChange, Control};
use crate::domain::clock::ClockMode;
use crate::sandbox::{DEFAULT_SANDBOX, Registry};
use crate::state::AppState;
use crate::tls::{CertificateAuthority, SniResolver};
use crate::tokens::Keys;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// hyper's read buffer, which bounds a request head: well above the mock's own URI (16 KiB)
/// and header-block (64 KiB) limits, so those are refused in the surface's envelope. A head
/// beyond this gets hyper's bare 431: the one documented exception.
const HYPER_MAX_BUF_BYTES: usize = 512 * 1024;
/// hyper's cap on the number of header fields (its default, 100, is below what real clients
/// behind proxies may send). hyper sets aside room for this many on every request, so a
/// larger cap costs every request (1 024 cost about 4 % of the CPU of a health check).
const HYPER_MAX_HEADERS: usize = 256;
/// The HTTP/2 counterpart of the two above (hyper's default is 16 KiB).
const HYPER_MAX_HEADER_LIST_BYTES: u32 = 1024 * 1024;

/// How long the mock waits on a slow or idle client (real time: network behaviour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To receive a request head, from its first byte (or from the connection's start).
    pub header: Duration,
    /// Between two pieces of a request body.
    pub body: Duration,
    /// A kept-alive connection with no request in flight.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { header: Duration::from_secs(30), body: api::DEFAULT_BODY_TIMEOUT, idle: Duration::from_secs(120) }
    }
}

/// Serves `app` on `listener` until `shutdown` changes; TLS when `tls` is given.
pub async fn run(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: api::App,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(HYPER_MAX_BUF_BYTES).max_headers(HYPER_MAX_HEADERS);
    builder.http2().max_header_list_size(HYPER_MAX_HEADER_LIST_BYTES);
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
        let builder = builder.clone();
        tokio::spawn(async move {
            let activity = Arc::new(Activity::new(timeouts));
            let busy = activity.clone();
            let info = ConnInfo { scheme, body_timeout: timeouts.body };
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info);
                let in_flight = busy.request_started();
                let answer = app.clone().handle(req.map(axum::body::Body::new));
                async move {
                    let resp = answer.await;
                    drop(in_flight);
                    api::faults::on_the_wire(resp)
                }
            });
            let stream = match tls {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => Transport::Tls(Box::new(stream)),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                None => Transport::Plain(stream),
            };
            let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
            let connection = watcher.watch(builder.serve_connection_with_upgrades(io, service).into_owned());
            // Dropping the connection closes it: a client that stalls gets no more of the mock.
            let result = tokio::select! {
                r = connection => r,
                why = activity.expired() => {
                    tracing::debug!(why, "closing a connection");
                    Ok(())
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

/// What one connection is doing, so its timeouts can tell "sending a head too slowly" from
/// "idle between requests" (hyper's own header timeout also runs while idle, which would cut
/// keep-alive to 30 s).
///
/// The watchdog ([`Activity::expired`]) sleeps until the deadline it armed and then looks
/// again; it is woken early only when a deadline comes sooner than the one armed (a new head
/// starts, or a connection that was busy goes idle). Busy keep-alive traffic so costs no timer
/// and no wake-up per request.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
    timeouts: Timeouts,
}

#[derive(Debug)]
struct ActivityState {
    /// Requests handed to the application and not yet answered.
    in_flight: usize,
    /// When the head now being received began (the connection's start for the first one).
    head_started: Option<Instant>,
    /// Last byte read or written.
    last: Instant,
    /// HTTP/2 has no request heads between requests, only frames: idle rules only.
    http2: bool,
    seen_bytes: bool,
    /// The deadline the watchdog sleeps until; `None` while it waits for a change.
    armed: Option<Instant>,
}

/// Real time, read through the one place allowed to.
fn now() -> Instant {
    Instant::from_std(crate::domain::clock::monotonic())
}

impl Activity {
    fn new(timeouts: Timeouts) -> Self {
        let start = now();
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                head_started: Some(start),
                last: start,
                http2: false,
                seen_bytes: false,
                armed: None,
            }),
            changed: Notify::new(),
            timeouts,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_read(&self, bytes: &[u8]) {
        let mut s = self.state();
        let at = now();
        s.last = at;
        if !s.seen_bytes {
            s.seen_bytes = true;
            s.http2 = bytes.starts_with(b"PRI ");
            if s.http2 {
                s.head_started = None;
                self.changed.notify_one();
            }
        }
        if !s.http2 && s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(at);
            if s.armed.is_none_or(|armed| at + self.timeouts.header < armed) {
                self.changed.notify_one();
            }
        }
    }

    fn on_write(&self) {
        self.state().last = now();
    }

    #[must_use = "the request counts as in flight until this guard drops"]
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut s = self.state();
        s.in_flight += 1;
        // No deadline while a request is in flight: the watchdog finds that when it wakes.
        s.head_started = None;
        InFlight(self.clone())
    }

    /// When the connection must close if nothing changes, and why; armed as the watchdog's.
    fn arm(&self) -> Option<(Instant, &'static str)> {
        let t = self.timeouts;
        let mut s = self.state();
        let deadline = if s.in_flight > 0 {
            // The body timeout is the pipeline's; an answer being written is not waited on.
            None
        } else {
            match s.head_started {
                Some(at) => Some((at + t.header, "the request head did not arrive within the header timeout")),
                None => Some((s.last + t.idle, "idle for the keep-alive timeout")),
            }
        };
        s.armed = deadline.map(|(at, _)| at);
        deadline
    }

    /// Resolves when the connection has stalled past its timeout.
    async fn expired(&self) -> &'static str {
        loop {
            match self.arm() {
                None => self.changed.notified().await,
                Some((at, why)) => {
                    if now() >= at {
                        return why;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.last = now();
        // A watchdog with a deadline armed wakes then and sees the idle one, always later.
        if s.in_flight == 0 && s.armed.is_none() {
            self.0.changed.notify_one();
        }
    }
}

/// A plain or TLS stream, so one code path serves both.
#[derive(Debug)]
enum Transport {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

/// A stream that reports reads and writes to its connection's [`Activity`].
#[derive(Debug)]
struct Tracked {
    inner: Transport,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.inner {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, data),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        };
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
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
    journal: (usize, usize, usize),
    timeouts: Timeouts,
    clock_mode: ClockMode,
    request_faults: bool,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            fixture: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            https: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ca_dir: None,
            signing_key_pem: None,
            journal: (
                crate::journal::DEFAULT_CAPACITY,
                crate::journal::DEFAULT_SANDBOX_BYTES,
                crate::journal::DEFAULT_TOTAL_BYTES,
            ),
            timeouts: Timeouts::default(),
            clock_mode: ClockMode::Virtual,
            request_faults: false,
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

    /// Honour `x-mock-scenario: NAME` on requests (`--allow-request-faults`): the named
    /// scenario's first fault rule that fits answers that one request. Off by default.
    pub fn allow_request_faults(mut self, allow: bool) -> Self {
        self.request_faults = allow;
        self
    }

    /// How the `default` sandbox's clock moves: virtual (the default: it stands at the
    /// fixed start instant until told to move) or system (real time from that instant on).
    /// Sandboxes made later start virtual; reset keeps a sandbox's mode.
    pub fn clock_mode(mut self, mode: ClockMode) -> Self {
        self.clock_mode = mode;
        self
    }

    /// Journal entries kept per sandbox (default 10 000).
    pub fn journal_capacity(mut self, n: usize) -> Self {
        self.journal.0 = n;
        self
    }

    /// Journal bytes kept per sandbox, counted at stored size (default 16 MiB).
    pub fn journal_bytes(mut self, n: usize) -> Self {
        self.journal.1 = n;
        self
    }

    /// Journal bytes kept over all sandboxes (default 48 MiB).
    pub fn journal_total_bytes(mut self, n: usize) -> Self {
        self.journal.2 = n;
        self
    }

    /// How long a client may take to send a request head (default 30 s).
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.timeouts.header = d;
        self
    }

    /// How long a client may pause between two pieces of a body (default 30 s).
    pub fn body_timeout(mut self, d: Duration) -> Self {
        self.timeouts.body = d;
        self
    }

    /// How long a kept-alive connection may sit idle (default 120 s).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.timeouts.idle = d;
        self
    }

    /// Binds and starts serving.
    pub async fn start(self) -> Result<MockServer, StartError> {
        let fixture = self.fixture.unwrap_or_else(fixtures::default_world);
        let (entries, bytes, total) = self.journal;
        let registry = Registry::new(fixture, crate::journal::JournalLimits::new(entries, bytes, total))?;
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
        state.allow_request_faults(self.request_faults);
        if self.clock_mode != ClockMode::Virtual {
            let change = ClockChange { now: None, mode: Some(self.clock_mode) };
            // Switching the mode of a sandbox that was just made cannot be refused.
            let _ = Control::new(state.clone()).set_clock(DEFAULT_SANDBOX, change);
        }
        let app = api::app(state.clone());
        let (tx, rx) = watch::channel(false);
        let http_addr = http_listener.local_addr().map_err(|source| StartError::Bind { addr: self.http, source })?;
        let mut tasks = vec![
            tokio::spawn(run(http_listener, None, app.clone(), self.timeouts, rx.clone())),
            tokio::spawn(system_clock_timer(Control::new(state.clone()), rx.clone())),
        ];
        let mut https_addr = None;
        let mut ca_pem = None;
        if let Some((listener, ca, acceptor)) = https {
            https_addr = Some(listener.local_addr().map_err(|source| StartError::Bind { addr: self.http, source })?);
            ca_pem = Some(ca.cert_pem().to_owned());
            tasks.push(tokio::spawn(run(listener, Some(acceptor), app, self.timeouts, rx)));
        }
        Ok(MockServer { http: http_addr, https: https_addr, ca_pem, state, shutdown: tx, tasks })
    }
}

/// Sandboxes on real time (runs.md, Time): wakes at the next due run transition, at least
/// once a second, and calls the queue's one entry point. It triggers; it decides nothing.
async fn system_clock_timer(control: Control, mut shutdown: watch::Receiver<bool>) {
    const AT_MOST: Duration = Duration::from_secs(1);
    loop {
        let wait = control.wake_system_clocks(AT_MOST).max(Duration::from_millis(5));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
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
