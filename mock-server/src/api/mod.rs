//! Thin HTTP glue, one module per surface. Handlers translate wire data into calls on the
//! domain and back; they hold no rules.
//!
//! - `routing` — which surface a request is for (by real host, else by path form,
//!   DECISIONS.md's addressing table) and which sandbox it belongs to.
//! - `error` — `ApiError` and the one function that renders envelopes.
//! - `extract` — extractors whose rejections become `ApiError` (JSON body, path).
//! - `context` — `RequestContext`: the request as routing resolved it plus its authenticated
//!   caller, what every emulated-surface handler starts from (an extractor behind the router;
//!   built by `connections::serve` for the operations the pipeline serves itself).
//! - `auth` — bearer-token checks per surface (kid, signature, exp/nbf, issuer, audience,
//!   sandbox incarnation, tenant).
//! - `connections` — the Power Platform API connections endpoints and connection sharing.
//! - `runtime` — the desktop-flow connector runtime (`TestConnection`).
//! - `bap` — BAP environment metadata (finding the Dataverse org).
//! - `dataverse` — the Dataverse Web API subset: machine tables, systemusers, WhoAmI,
//!   EntityDefinitions, and the sharing messages for machines and groups.
//! - `identity` — token endpoint, OpenID configuration, JWKS, instance and realm discovery.
//! - `faults` — fault rules and the Retry-After check on the wire (the rules: [`crate::fault`]).
//! - `admin` — the control surface under `/_mock/`: HTTP translation over [`crate::control`].
//!
//! [`app`] wraps the router in the pipeline, which runs *before* routing so it can rewrite a
//! real-host request (`{org}.crm.dynamics.com/api/data/…`) into its path form
//! (`/dataverse/{org}/api/data/…`): both doors then reach the same handlers. The connections
//! API, the hot path, is served by the pipeline on its classified operation with no router in
//! between (`connections::serves`); everything else goes through the router.

pub mod admin;
pub mod auth;
pub mod bap;
pub mod connections;
pub mod context;
pub mod dataverse;
pub mod error;
pub mod extract;
pub mod faults;
pub mod identity;
pub mod routing;
pub mod runtime;

pub use context::RequestContext;
pub use error::ApiError;
pub use routing::{RouteInfo, Surface};

use crate::journal::{Capture, CapturedText, Exchange, ExchangeText};
use crate::state::AppState;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The largest request body accepted: a RunDesktopFlow body carries up to 2 MB of escaped
/// inputs, so twice that leaves room.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The longest request target (path and query) accepted.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// The largest header block accepted (each field counted as `name: value\r\n`).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// After a 413 the mock reads and throws away up to this much of the rest of the body, so a
/// client that sends its whole body before reading still gets the envelope instead of a reset.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
/// ... or for this long, whichever comes first.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);
/// The default wait between two pieces of a request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-connection facts the serve loop attaches to each request.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// How long the mock waits for the next piece of a request body.
    pub body_timeout: Duration,
}

/// The application as the serve loop runs it: the pipeline around every surface's router.
/// Cloned per request (two `Arc`s); a request is one call of the pipeline (its future boxed
/// once, [`App::handle`]), with no service, middleware or layer between hyper and it.
#[derive(Clone, Debug)]
pub struct App {
    state: AppState,
    routes: Router,
}

/// The whole application: the pipeline around every surface's router.
pub fn app(state: AppState) -> App {
    let surfaces = Router::new()
        .merge(identity::router())
        .merge(admin::router())
        .merge(connections::router())
        .merge(bap::router())
        .merge(dataverse::router())
        .merge(runtime::router());
    assemble(surfaces, state)
}

/// The pipeline, fallbacks and panic handling around `surfaces`. The pipeline is the outermost
/// service itself (no router around it: every request goes through it anyway).
fn assemble(surfaces: Router<AppState>, state: AppState) -> App {
    let routes = surfaces
        .fallback(not_implemented)
        .method_not_allowed_fallback(method_not_allowed)
        // The pipeline has read the body within MAX_BODY_BYTES already; axum's own 2 MiB
        // default would refuse bodies the mock accepts.
        .layer(axum::extract::DefaultBodyLimit::disable())
        // Inside the pipeline, so a panicking handler's answer is rendered in its surface's shape.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(handler_panicked))
        .with_state(state.clone());
    App { state, routes }
}

impl App {
    /// One request's answer. A panic in the pipeline itself still gets an envelope.
    pub fn handle(self, req: Request) -> impl std::future::Future<Output = Response> + Send + 'static {
        use futures_util::FutureExt;
        let Self { state, routes } = self;
        let answer = std::panic::AssertUnwindSafe(pipeline(state, req, Next(routes))).catch_unwind();
        // Boxed once, where it is made: the pipeline's future is about 3 KB, and passed by
        // value into the serve loop's future and on into hyper's it was copied several times
        // per request.
        Box::pin(answer).map(|answer| answer.unwrap_or_else(pipeline_panicked))
    }
}

/// As a tower service, for tests that drive it with `oneshot`.
impl tower::Service<Request> for App {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let app = self.clone();
        Box::pin(async move { Ok(app.handle(req).await) })
    }
}

/// The surfaces' router, for the requests the pipeline does not serve itself.
struct Next(Router);

impl Next {
    async fn run(self, req: Request) -> Response {
        tower::ServiceExt::oneshot(self.0, req).await.unwrap_or_else(|never| match never {})
    }
}

/// What a panic carried, for the log.
fn panic_detail<'a>(err: &'a (dyn std::any::Any + Send + 'static)) -> &'a str {
    err.downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown")
}

/// A panic is a bug in the mock; the client still gets an envelope, never a dropped
/// connection, and the log says where to look. The pipeline renders it for the surface.
fn handler_panicked(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(panic = panic_detail(err.as_ref()), "a handler panicked: this is a bug in the mock");
    ApiError::Internal.into_response()
}

/// A panic in the pipeline itself: the surface is not known any more, so the common shape.
fn pipeline_panicked(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(panic = panic_detail(err.as_ref()), "the request pipeline panicked: this is a bug in the mock");
    error::render(&ApiError::Internal, Surface::Unknown, "", "")
}

async fn not_implemented(req: Request) -> ApiError {
    let surface = req.extensions().get::<RouteInfo>().map_or(Surface::Unknown, |r| r.surface);
    ApiError::NotImplemented(routing::not_implemented_message(surface, req.method().as_str(), req.uri().path()))
}

pub(crate) async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed { method: req.method().to_string(), path: req.uri().path().to_owned() }
}

fn host_of(req: &Request) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The mock's own limits on a request head (hyper's are set above them, so the client gets
/// the surface's envelope rather than hyper's bare status).
fn head_refusal(parts: &axum::http::request::Parts) -> Option<ApiError> {
    let target = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(ApiError::BadRequest {
            status: 414,
            code: "RequestUriTooLong",
            message: format!(
                "The request URI is {target} bytes long; the mock's limit is {MAX_URI_BYTES} bytes (16 KiB)."
            ),
        });
    }
    let block: usize = parts.headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if block > MAX_HEADER_BYTES {
        return Some(ApiError::BadRequest {
            status: 431,
            code: "RequestHeaderFieldsTooLarge",
            message: format!(
                "The request's header block is {block} bytes; the mock's limit is {MAX_HEADER_BYTES} bytes (64 KiB)."
            ),
        });
    }
    None
}

fn too_large() -> ApiError {
    ApiError::BadRequest {
        status: 413,
        code: "RequestBodyTooLarge",
        message: format!("The request body is larger than the mock's limit of {MAX_BODY_BYTES} bytes (4 MiB)."),
    }
}

/// The next piece of a body, `None` at its end.
async fn next_frame(body: &mut Body) -> Option<Result<axum::body::Bytes, axum::Error>> {
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await?;
        match frame {
            Ok(f) => match f.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_trailers) => continue,
            },
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Reads and discards what is left of a refused body, in the background, so the answer goes
/// out at once and the client can still read it after sending everything.
fn drain(headers: &axum::http::HeaderMap, mut body: Body) {
    // A client waiting for `100 Continue` has not sent the body: there is nothing to drain,
    // and reading would tell hyper to invite it after the final answer.
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue || body.is_end_stream() {
        return;
    }
    tokio::spawn(async move {
        let discard = async {
            let mut discarded = 0;
            while discarded < DRAIN_MAX_BYTES {
                match next_frame(&mut body).await {
                    Some(Ok(data)) => discarded += data.len(),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_MAX_TIME, discard).await;
    });
}

/// Reads a whole body within [`MAX_BODY_BYTES`], refusing on `Content-Length` before reading
/// and as soon as the limit is passed otherwise; each piece must come within `chunk_timeout`.
async fn read_body(
    headers: &axum::http::HeaderMap,
    mut body: Body,
    chunk_timeout: Duration,
) -> Result<axum::body::Bytes, ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        drain(headers, body);
        return Err(too_large());
    }
    // Most requests have no body: no timer for them.
    if body.is_end_stream() {
        return Ok(axum::body::Bytes::new());
    }
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| usize::try_from(n).unwrap_or(0)));
    loop {
        match tokio::time::timeout(chunk_timeout, next_frame(&mut body)).await {
            Err(_) => {
                return Err(ApiError::BadRequest {
                    status: 408,
                    code: "RequestBodyTimeout",
                    message: format!(
                        "The request body stopped arriving: nothing came for {} s (the mock's body timeout).",
                        chunk_timeout.as_secs_f64()
                    ),
                });
            }
            Ok(None) => return Ok(buf.into()),
            Ok(Some(Err(_))) => {
                return Err(ApiError::bad_request(
                    "InvalidRequestContent",
                    "The request body could not be read to its end.",
                ));
            }
            Ok(Some(Ok(data))) => {
                if buf.len() + data.len() > MAX_BODY_BYTES {
                    drain(headers, body);
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
    }
}

/// A refused request's answer tells the client the connection ends with it: whatever it
/// still sends is drained, not read as a next request.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Classifies, attributes, limits the head and body, renders errors in the surface's envelope
/// and journals the exchange (redacted at write time).
async fn pipeline(app: AppState, req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<ConnInfo>().copied();
    let scheme = conn.map_or("http", |c| c.scheme);
    let body_timeout = conn.map_or(DEFAULT_BODY_TIMEOUT, |c| c.body_timeout);
    let host = host_of(&req);
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let origin = [scheme, "://", if host.is_empty() { "127.0.0.1" } else { &host }].concat();

    let classified = routing::classify(&method, &host, &path, &query);
    let surface = classified.as_ref().map_or(Surface::Unknown, |c| c.surface);

    let real_ms = app.real_ms();
    let headers = crate::journal::KeptHeaders::of(req.headers());
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (mut parts, body) = req.into_parts();
    // Limits come before anything reads the request, so a refused one costs nothing.
    let body = match head_refusal(&parts) {
        Some(refusal) => {
            drain(&parts.headers, body);
            Err(refusal)
        }
        None => read_body(&parts.headers, body, body_timeout).await,
    };
    let refused = body.as_ref().err().cloned();
    let body = body.unwrap_or_default();

    if surface == Surface::Control {
        let sandbox = routing::control_sandbox(&parts.headers, &query);
        let resp = match refused {
            Some(e) => closing(error::render(&e, surface, "", "")),
            None => {
                let mut req = Request::from_parts(parts, Body::from(body));
                req.extensions_mut().insert(RouteInfo {
                    surface,
                    operation: crate::operation::Operation::Control,
                    sandbox,
                    origin,
                    environment: None,
                    cell: None,
                    correlation: uuid::Uuid::nil(),
                });
                finish_errors(next.run(req).await, |e| {
                    error::render(e, surface, "00000000-0000-0000-0000-000000000000", "")
                })
            }
        };
        return resp;
    }

    // Attribution reads the registry's indexes; the sandbox's own lock is taken only to
    // read its clock and the secrets its journal redacts.
    let (cell, environment, rewrite) = match &classified {
        Ok(c) => routing::attribute(app.registry(), c, &query),
        Err(_) => (app.registry().default_sandbox(), None, Ok(None)),
    };
    // Classified once, on the path the handler will see.
    let operation = match (&classified, &rewrite) {
        (Ok(_), Ok(Some(new_path))) => routing::operation(surface, &method, new_path),
        (Ok(_), _) => routing::operation(surface, &method, &path),
        (Err(_), _) => crate::operation::Operation::Unmatched,
    };
    let correlation_id = cell.next_correlation();
    let (virtual_time, known) = cell.apply(|st| (st.clock.now(), st.known_secrets()));
    let route = RouteInfo {
        surface,
        operation,
        sandbox: cell.name.clone(),
        origin,
        environment,
        cell: Some(cell.clone()),
        correlation: correlation_id,
    };
    let environment_named = route.environment.clone();

    let refused_body = refused.is_some();
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    let outcome: Result<Response, ApiError> = (async {
        classified?;
        if let Some(e) = refused {
            return Err(e);
        }
        if let Some(new_path) = rewrite? {
            let pq = if query.is_empty() { new_path } else { format!("{new_path}?{query}") };
            parts.uri =
                pq.parse().map_err(|_| ApiError::bad_request("InvalidPath", "The path cannot be rewritten."))?;
        }
        let seen = faults::Seen {
            method: &method,
            path: &path,
            authorization: authorization.as_ref(),
            body: &body,
            scenario: parts.headers.get("x-mock-scenario"),
        };
        if let Some(answer) = faults::intercept(&app, &route, seen).await {
            return Ok(answer);
        }
        if connections::serves(operation) {
            // Served here, with no router between: a panic is still the surface's envelope.
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                connections::serve(&app, route, &parts, &body)
            }))
            .unwrap_or_else(|panic| Ok(handler_panicked(panic)));
        }
        let mut req = Request::from_parts(parts, Body::from(body.clone()));
        req.extensions_mut().insert(route);
        Ok(next.run(req).await)
    })
    .await;

    // Entra's `Timestamp:` lines are network facts, like tokens: real time (DECISIONS.md, Time).
    // The correlation id and the time are written only into an envelope: made only for one.
    let render = |e: &ApiError| {
        let timestamp = crate::domain::clock::wall_clock().format("%Y-%m-%d %H:%M:%SZ").to_string();
        error::render(e, surface, &correlation_id.to_string(), &timestamp)
    };
    let resp = match outcome {
        Ok(r) => finish_errors(r, render),
        Err(e) if refused_body => closing(render(&e)),
        Err(e) => render(&e),
    };
    let (mut rparts, rbody) = resp.into_parts();
    let seen = faults::Seen {
        method: &method,
        path: &path,
        authorization: authorization.as_ref(),
        body: &body,
        scenario: None,
    };
    let retry_after = faults::after_answer(&app, &cell, operation, seen, real_ms, &rparts);
    let mut rbytes = axum::body::to_bytes(rbody, usize::MAX).await.unwrap_or_default();
    if let Some(b) = overridden(&cell, &rparts, &rbytes) {
        rparts.headers.remove(header::CONTENT_LENGTH);
        rbytes = b;
    }
    let rct = rparts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let text = ExchangeText {
        host: &host,
        method: &method,
        path: &path,
        query: &query,
        body: (content_type.as_deref(), if refused_body { &[] } else { &body }),
        response: (rct, &rbytes),
    };
    let exchange = Exchange {
        surface: surface.name(),
        operation,
        scheme,
        headers,
        status: rparts.status.as_u16(),
        real_ms,
        text: CapturedText::of(text),
    };
    // Redacted (when it must be now) before the journal's lock is taken: the lock only
    // numbers and stores it.
    let capture =
        Capture { known, sandbox: cell.name.clone(), virtual_time, environment: environment_named, retry_after };
    let recorded = app.redactor().prepare(exchange, capture);
    cell.journal(|j| j.record(recorded));
    Response::from_parts(rparts, Body::from(rbytes))
}

/// An error envelope (`{"error": {"code", "message"}}`) whose code a scenario's `overrides`
/// replace, rewritten; `None` when nothing is overridden.
fn overridden(
    cell: &crate::sandbox::Sandbox,
    parts: &axum::http::response::Parts,
    body: &axum::body::Bytes,
) -> Option<axum::body::Bytes> {
    if parts.status.is_success() {
        return None;
    }
    let overrides = cell.network(|n| (!n.overrides.is_empty()).then(|| n.overrides.clone()))?;
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = v.get_mut("error")?.as_object_mut()?;
    let o = overrides.get(error.get("code")?.as_str()?)?;
    if let Some(code) = &o.code {
        error.insert("code".into(), code.clone().into());
    }
    if let Some(message) = &o.message {
        error.insert("message".into(), message.clone().into());
    }
    serde_json::to_vec(&v).ok().map(Into::into)
}

/// Renders an `ApiError` a handler returned with `render`; passes other responses through.
fn finish_errors(resp: Response, render: impl FnOnce(&ApiError) -> Response) -> Response {
    match resp.extensions().get::<ApiError>() {
        Some(e) => render(e),
        None => resp,
    }
}

/// `Cache-Control: no-store` for token responses.
pub(crate) fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// JSON with a status.
pub(crate) fn json(status: axum::http::StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::any;
    use tower::ServiceExt;

    async fn panicking() -> Response {
        panic!("a bug planted by the test")
    }

    async fn answer_of(path: &str) -> (u16, serde_json::Value) {
        let registry =
            crate::sandbox::Registry::new(fixtures::default_world(), crate::journal::JournalLimits::default()).unwrap();
        let state = AppState::new(registry, crate::tokens::Keys::fixed_test_key(), None);
        let surfaces = Router::new()
            .route("/dataverse/{org}/api/data/{version}/{*rest}", any(panicking))
            .route("/{tenant}/oauth2/v2.0/token", any(panicking));
        let app = assemble(surfaces, state);
        let resp = app.oneshot(Request::post(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_its_surfaces_envelope() {
        let (status, dataverse) = answer_of("/dataverse/contosodev/api/data/v9.2/WhoAmI").await;
        assert_eq!(status, 500);
        assert_eq!(dataverse["error"]["code"], "InternalError", "{dataverse}");
        let (status, identity) = answer_of("/contoso.onmicrosoft.com/oauth2/v2.0/token").await;
        assert_eq!(status, 500);
        assert_eq!(identity["error"], "server_error", "the Entra shape: {identity}");
        assert!(identity["error_description"].as_str().unwrap().contains("bug in the mock"), "{identity}");
    }
}
