//! Thin HTTP glue, one module per surface. Handlers translate wire data into calls on the
//! domain and back; they hold no rules.
//!
//! - `routing` — which surface a request is for (by real host, else by path form,
//!   DECISIONS.md's addressing table) and which sandbox it belongs to.
//! - `error` — `ApiError` and the one function that renders envelopes.
//! - `extract` — extractors whose rejections become `ApiError` (JSON body, path).
//! - `auth` — bearer-token checks per surface (kid, signature, exp/nbf, issuer, audience,
//!   sandbox incarnation, tenant).
//! - `connections` — the Power Platform API connections endpoints and connection sharing.
//! - `runtime` — the desktop-flow connector runtime (`TestConnection`).
//! - `bap` — BAP environment metadata (finding the Dataverse org).
//! - `dataverse` — the Dataverse Web API subset: machine tables, systemusers, WhoAmI,
//!   EntityDefinitions, and the sharing messages for machines and groups.
//! - `identity` — token endpoint, OpenID configuration, JWKS, instance and realm discovery.
//! - `admin` — the control surface under `/_mock/`.
//!
//! [`app`] wraps the router in the pipeline, which runs *before* routing so it can rewrite a
//! real-host request (`{org}.crm.dynamics.com/api/data/…`) into its path form
//! (`/dataverse/{org}/api/data/…`): both doors then reach the same handlers.

pub mod admin;
pub mod auth;
pub mod bap;
pub mod connections;
pub mod dataverse;
pub mod error;
pub mod extract;
pub mod identity;
pub mod routing;
pub mod runtime;

pub use error::ApiError;
pub use routing::{RouteInfo, Surface};

use crate::journal::{Exchange, KEPT_HEADERS};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

/// The largest request body accepted (desktop-flow inputs are capped at 2 MB; this leaves room).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Per-connection facts the serve loop attaches to each request.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// `http` or `https`.
    pub scheme: &'static str,
}

/// The whole application: the pipeline around every surface's router.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .merge(identity::router())
        .merge(admin::router())
        .merge(connections::router())
        .merge(bap::router())
        .merge(dataverse::router())
        .merge(runtime::router())
        .fallback(not_implemented)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    Router::new()
        .fallback_service(tower::Layer::layer(&middleware::from_fn_with_state(state, pipeline), routes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
}

/// A panic is a bug in the mock; the client still gets an envelope, never a dropped
/// connection, and the log says where to look.
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = detail, "a handler panicked: this is a bug in the mock");
    json(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        serde_json::json!({ "error": { "code": "InternalError", "message": "The mock hit an internal error (a bug in the mock); see its log." } }),
    )
}

async fn not_implemented(req: Request) -> ApiError {
    let surface = req.extensions().get::<RouteInfo>().map_or(Surface::Unknown, |r| r.surface);
    ApiError::NotImplemented(routing::not_implemented_message(surface, req.method().as_str(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
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

/// Classifies, attributes, limits the body, renders errors in the surface's envelope and
/// journals the exchange (redacted at write time).
async fn pipeline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let scheme = req.extensions().get::<ConnInfo>().map_or("http", |c| c.scheme);
    let host = host_of(&req);
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let origin = format!("{scheme}://{}", if host.is_empty() { "127.0.0.1" } else { &host });

    let classified = routing::classify(&method, &host, &path, &query);
    let surface = classified.as_ref().map_or(Surface::Unknown, |c| c.surface);

    if surface == Surface::Control {
        let sandbox = routing::control_sandbox(req.headers(), &query);
        let mut req = req;
        req.extensions_mut().insert(RouteInfo { surface, sandbox, origin, environment: None });
        let resp = next.run(req).await;
        return finish_errors(resp, surface, "00000000-0000-0000-0000-000000000000", "");
    }

    let real_ms = app.real_ms();
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|h| {
            req.headers().get(*h).map(|v| ((*h).to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        })
        .collect();
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (mut parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;

    // One lock: attribute the request, read the sandbox's clock and make a correlation id.
    let (route, virtual_time, correlation, known) = {
        let mut reg = app.registry();
        let (sandbox, environment, rewrite) = match &classified {
            Ok(c) => routing::attribute(&reg, c, &query),
            Err(_) => (crate::sandbox::DEFAULT_SANDBOX.to_owned(), None, Ok(None)),
        };
        let (vt, corr, known) = match reg.get_mut(&sandbox).ok() {
            Some(sb) => (sb.clock.now(), sb.ids.next_id().to_string(), sb.known_secrets.clone()),
            None => (crate::domain::clock::default_start(), String::new(), Default::default()),
        };
        ((RouteInfo { surface, sandbox, origin, environment }, rewrite), vt, corr, known)
    };
    let (route, rewrite) = route;

    let too_large = body.is_err();
    let body = body.unwrap_or_default();
    let outcome: Result<Response, ApiError> = (async {
        classified?;
        if too_large {
            return Err(ApiError::BadRequest {
                status: 413,
                code: "RequestBodyTooLarge",
                message: format!("The request body is larger than the mock's limit of {MAX_BODY_BYTES} bytes."),
            });
        }
        if let Some(new_path) = rewrite? {
            let pq = if query.is_empty() { new_path } else { format!("{new_path}?{query}") };
            parts.uri =
                pq.parse().map_err(|_| ApiError::bad_request("InvalidPath", "The path cannot be rewritten."))?;
        }
        let mut req = Request::from_parts(parts, Body::from(body.clone()));
        req.extensions_mut().insert(route.clone());
        Ok(next.run(req).await)
    })
    .await;

    let timestamp = virtual_time.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let resp = match outcome {
        Ok(r) => finish_errors(r, surface, &correlation, &timestamp),
        Err(e) => error::render(&e, surface, &correlation, &timestamp),
    };
    let (rparts, rbody) = resp.into_parts();
    let rbytes = axum::body::to_bytes(rbody, usize::MAX).await.unwrap_or_default();
    let rct = rparts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let exchange = Exchange {
        surface: surface.name(),
        scheme,
        host,
        method,
        path,
        query,
        headers,
        body: (content_type, if too_large { Vec::new() } else { body.to_vec() }),
        status: rparts.status.as_u16(),
        response: (rct, rbytes.to_vec()),
        real_ms,
    };
    let vt = crate::domain::clock::format_timestamp(virtual_time);
    {
        let mut reg = app.registry();
        if let Ok(sb) = reg.get_mut(&route.sandbox) {
            let seq = sb.journal.next_seq();
            let mut entry = app.redactor().record(exchange, &known, seq, &route.sandbox, vt);
            entry.environment = route.environment.clone();
            sb.journal.push(entry);
        }
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

/// Renders an `ApiError` a handler returned; passes other responses through.
fn finish_errors(resp: Response, surface: Surface, correlation: &str, timestamp: &str) -> Response {
    match resp.extensions().get::<ApiError>() {
        Some(e) => error::render(e, surface, correlation, timestamp),
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
