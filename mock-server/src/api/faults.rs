//! Fault rules and the Retry-After check on the wire (the rules themselves are
//! [`crate::fault`]). The pipeline calls [`intercept`] once a request is routed, before any
//! handler authenticates it, and [`after_answer`] once it has its answer (the Retry-After
//! check, and scenario `clock` triggers); the serve loop
//! calls [`on_the_wire`] to drop or cut an answer a rule broke. Nothing here changes an
//! answer except a rule that hit.

use super::{ApiError, RouteInfo, error};
use crate::control::Control;
use crate::fault::{Exchanged, FaultHit, FaultRequest, WireFault};
use crate::journal::RetryAfterMark;
use crate::operation::Operation;
use crate::sandbox::Sandbox;
use crate::scenario::ArmedTrigger;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What a request looked like to the fault rules: everything [`intercept`] reads.
#[derive(Debug)]
pub struct Seen<'a> {
    /// Method.
    pub method: &'a str,
    /// Path as sent.
    pub path: &'a str,
    /// The `Authorization` header (read, never verified, for the caller).
    pub authorization: Option<&'a HeaderValue>,
    /// The whole body.
    pub body: &'a Bytes,
    /// `x-mock-scenario`, honoured with `--allow-request-faults` only.
    pub scenario: Option<&'a HeaderValue>,
}

/// The answer of the first fault rule that applies to the request, journaled as a
/// `fault.hit` event, after the rule's delay; `None` lets the request through (after the
/// delay of a rule that only delays). Control calls never get here.
pub async fn intercept(app: &AppState, route: &RouteInfo, seen: Seen<'_>) -> Option<Response> {
    let cell = route.cell.as_ref()?;
    let requested = seen.scenario.filter(|_| app.request_faults_allowed());
    // Decided in a block: the matcher's borrowed closures must not live across an await.
    let hit = {
        let callers = || callers(seen.authorization, seen.body);
        let body = || body_json(seen.body);
        let request = FaultRequest {
            operation: route.operation,
            method: seen.method,
            path: seen.path,
            environment: route.environment.as_deref(),
            callers: &callers,
            body: &body,
        };
        match requested {
            Some(name) => match requested_hit(name, &request) {
                Ok(hit) => hit?,
                Err(refusal) => {
                    return Some(error::render(&refusal, route.surface, &route.correlation.to_string(), &now()));
                }
            },
            None => cell.network(|n| if n.faults.is_empty() { None } else { n.faults.decide(&request) })?,
        }
    };
    journal_hit(app, cell, route.operation, &seen, &hit);
    if let Some(ms) = hit.delay_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if !hit.respond.answers() {
        return None;
    }
    let mut resp = answer(route, &hit).await;
    resp.extensions_mut().insert(FaultAnswered);
    Some(resp)
}

/// Marks an answer a fault rule gave: it does not fire a scenario's `clock` trigger.
#[derive(Debug, Clone, Copy)]
struct FaultAnswered;

/// `x-mock-scenario: NAME`: the scenario's first fault rule whose `match` fits, uncounted
/// (`times`, `every` and `probability` are the sandbox's business, not one request's).
fn requested_hit(name: &HeaderValue, request: &FaultRequest<'_>) -> Result<Option<FaultHit>, ApiError> {
    let name = name.to_str().unwrap_or("").trim();
    let scenario = crate::scenario::find(name).ok_or_else(|| ApiError::NotFound {
        code: "ScenarioNotFound",
        message: format!("There is no scenario named '{name}' (GET /_mock/scenarios lists them)."),
    })?;
    if !scenario.requestable() {
        return Err(ApiError::bad_request(
            "ScenarioNotRequestable",
            format!(
                "The scenario '{name}' changes the world; only scenarios made of fault rules can be requested with x-mock-scenario. Apply it with POST /_mock/scenarios/{name}."
            ),
        ));
    }
    Ok(scenario.faults.iter().enumerate().find_map(|(i, f)| {
        f.match_.fits(request).then(|| FaultHit {
            rule: format!("{name}#{}", i + 1),
            respond: f.respond.clone(),
            delay_ms: f.respond.delay_ms.map(|d| match d {
                crate::fault::Delay::Fixed(ms) => ms,
                crate::fault::Delay::Range { min_ms, .. } => min_ms,
            }),
        })
    }))
}

fn journal_hit(app: &AppState, cell: &Sandbox, operation: Operation, seen: &Seen<'_>, hit: &FaultHit) {
    let virtual_time = cell.apply(|st| crate::domain::clock::format_timestamp(st.clock.now()));
    let answers = hit.respond.answers();
    cell.journal_event(
        app.real_ms(),
        virtual_time,
        "fault.hit",
        json!({
            "rule": hit.rule,
            "operation": operation,
            "method": seen.method,
            "path": seen.path,
            "status": answers.then(|| hit.respond.status_or_default()),
            "fault": hit.respond.fault,
            "delayMs": hit.delay_ms,
        }),
    );
}

/// The rule's answer: its body or the surface's default envelope, its headers, and a wire
/// fault for the serve loop to carry out.
async fn answer(route: &RouteInfo, hit: &FaultHit) -> Response {
    let status = hit.respond.status_or_default();
    let mut resp = match &hit.respond.body {
        Some(body) => {
            let code =
                axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            (code, axum::Json(body.clone())).into_response()
        }
        None => {
            let injected = ApiError::Injected { status, rule: hit.rule.clone() };
            error::render(&injected, route.surface, &route.correlation.to_string(), &now())
        }
    };
    for (name, value) in &hit.respond.headers {
        // Validated when the rule was posted.
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            resp.headers_mut().insert(n, v);
        }
    }
    match hit.respond.fault {
        None => resp,
        Some(WireFault::Drop) => {
            resp.extensions_mut().insert(OnTheWire::Drop);
            resp
        }
        Some(WireFault::Truncate) => {
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let mut resp = Response::from_parts(parts, Body::from(bytes.clone()));
            resp.extensions_mut().insert(OnTheWire::Truncate(bytes));
            resp
        }
        Some(WireFault::Malformed) => {
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let mut broken = bytes[..bytes.len() / 2].to_vec();
            broken.extend_from_slice(b"\x00<<malformed by the mock>>");
            Response::from_parts(parts, Body::from(broken))
        }
    }
}

/// Entra's `Timestamp:` is a network fact: real time, as the pipeline writes it.
fn now() -> String {
    crate::domain::clock::wall_clock().format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// What the serve loop does to an answer after the pipeline journaled it.
#[derive(Debug, Clone)]
enum OnTheWire {
    /// Close the connection without answering.
    Drop,
    /// Send the head (its `Content-Length` the whole body's), half the body, then close.
    Truncate(Bytes),
}

/// The connection was dropped on a fault rule's word.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by a fault rule")]
pub struct Dropped;

/// Carries out a rule's wire fault: `Err` closes the connection with no answer; a truncated
/// answer stops halfway through its body.
pub fn on_the_wire(mut resp: Response) -> Result<Response, Dropped> {
    match resp.extensions_mut().remove::<OnTheWire>() {
        None => Ok(resp),
        Some(OnTheWire::Drop) => Err(Dropped),
        Some(OnTheWire::Truncate(whole)) => {
            let (mut parts, _) = resp.into_parts();
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(whole.len()));
            let half = whole.slice(..whole.len() / 2);
            Ok(Response::from_parts(parts, Body::new(Halfway::new(half))))
        }
    }
}

/// A body that gives its piece, then fails: hyper closes the connection short of the
/// length it announced. It pauses between the two, so the piece is flushed to the client
/// before the failure ends the connection.
struct Halfway {
    piece: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl Halfway {
    fn new(piece: Bytes) -> Self {
        Self { piece: Some(piece), pause: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(20))) }
    }
}

impl axum::body::HttpBody for Halfway {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if let Some(piece) = self.piece.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "truncated by a fault rule",
            )))),
        }
    }
}

/// The body as JSON, a form as an object of strings; `None` for anything else.
fn body_json(body: &Bytes) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Some(v);
    }
    let text = std::str::from_utf8(body).ok()?;
    let pairs = crate::journal::form_pairs(text);
    (!pairs.is_empty()).then(|| Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
}

/// The bearer token's claims, decoded without checking anything: fault rules and the
/// Retry-After check only want to know who the caller says it is.
fn unverified_claims(authorization: Option<&HeaderValue>) -> Option<Value> {
    let value = authorization?.to_str().ok()?;
    let token = value.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer "))?;
    let payload = value[token.len()..].trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Who the request says is calling: the token's `oid`, `appid`/`azp` and `upn`; on the
/// token endpoint, the form's `client_id` and `username`.
fn callers(authorization: Option<&HeaderValue>, body: &Bytes) -> Vec<String> {
    if let Some(claims) = unverified_claims(authorization) {
        return ["oid", "appid", "azp", "upn", "preferred_username"]
            .iter()
            .filter_map(|c| claims.get(*c).and_then(Value::as_str).map(str::to_owned))
            .collect();
    }
    match body_json(body) {
        Some(Value::Object(form)) => ["client_id", "username"]
            .iter()
            .filter_map(|k| form.get(*k).and_then(Value::as_str).map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// One name for a caller in the Retry-After check: the first of [`callers`], empty when
/// the request says nothing.
fn caller_key(authorization: Option<&HeaderValue>, body: &Bytes) -> String {
    callers(authorization, body).into_iter().next().unwrap_or_default().to_ascii_lowercase()
}

/// After a request is answered, before it is journaled: the Retry-After check, and the
/// scenario triggers waiting for this operation when the handler answered with a success.
/// Neither changes the answer. Answers the check's verdict on this request, for its journal
/// entry.
pub fn after_answer(
    app: &AppState,
    cell: &Arc<Sandbox>,
    operation: Operation,
    seen: Seen<'_>,
    arrived_ms: u64,
    answer: &axum::http::response::Parts,
) -> Option<RetryAfterMark> {
    // One look under the lock for the common case: nothing owed, nothing armed.
    let (owed, armed) = cell.network(|n| (!n.retry_after.owes_nothing(), !n.triggers.is_empty()));
    let mark = if owed || answer.headers.contains_key(header::RETRY_AFTER) {
        check_retry_after(app, cell, operation, seen, arrived_ms, answer)
    } else {
        None
    };
    if armed && answer.status.is_success() && answer.extensions.get::<FaultAnswered>().is_none() {
        fire_triggers(app, cell, operation);
    }
    mark
}

/// Fires, once each, the sandbox's triggers waiting for `operation`, in the order armed.
fn fire_triggers(app: &AppState, cell: &Arc<Sandbox>, operation: Operation) {
    let due: Vec<ArmedTrigger> = cell.network(|n| {
        let (due, waiting) = std::mem::take(&mut n.triggers).into_iter().partition(|t| t.operation == operation);
        n.triggers = waiting;
        due
    });
    let control = Control::new(app.clone());
    for trigger in due {
        let mut changed = Vec::new();
        for step in trigger.world {
            if let Err(e) = control.apply_world_step(&cell.name, step) {
                changed.push(format!("refused: {e}"));
            }
        }
        let mut advanced = None;
        if let Some(by) = trigger.advance {
            match control.advance_clock(&cell.name, by) {
                Ok(mut view) => {
                    advanced = Some(by.as_secs());
                    let control = control.clone();
                    let name = cell.name.clone();
                    // Callbacks of the runs it ended go out in the background, as after any clock change.
                    tokio::spawn(async move {
                        let _ = control.deliver_callbacks(&name, &mut view).await;
                    });
                }
                Err(e) => changed.push(format!("refused: {e}")),
            }
        }
        let virtual_time = cell.apply(|st| crate::domain::clock::format_timestamp(st.clock.now()));
        cell.journal_event(
            app.real_ms(),
            virtual_time,
            "scenario.trigger",
            json!({ "scenario": trigger.scenario, "after": operation, "advancedSecs": advanced, "problems": changed }),
        );
    }
}

/// The Retry-After check (`scenarios.md`): judges this request against what its caller's
/// earlier answer asked (a `retryAfter.verdict` event in the journal, and the mark it answers
/// for the request's own entry) and records what this answer asks. It never changes the answer.
fn check_retry_after(
    app: &AppState,
    cell: &Sandbox,
    operation: Operation,
    seen: Seen<'_>,
    arrived_ms: u64,
    answer: &axum::http::response::Parts,
) -> Option<RetryAfterMark> {
    let retry_after = answer
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let status = answer.status.as_u16();
    let location = answer
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| l.parse::<axum::http::Uri>().map_or_else(|_| l.to_owned(), |u| u.path().to_owned()));
    let exchanged = Exchanged {
        operation,
        path: seen.path,
        caller: caller_key(seen.authorization, seen.body),
        arrived_ms,
        answered_ms: app.real_ms(),
        status,
        retry_after,
        location,
    };
    let verdict = cell.network(|n| n.retry_after.observe(exchanged))?;
    let virtual_time = cell.apply(|st| crate::domain::clock::format_timestamp(st.clock.now()));
    cell.journal_event(
        arrived_ms,
        virtual_time,
        "retryAfter.verdict",
        json!({ "retryAfter": { "required": verdict.required, "waitedMs": verdict.waited_ms, "honoured": verdict.honoured },
                "operation": verdict.operation, "path": verdict.path, "caller": verdict.caller, "afterStatus": verdict.after_status }),
    );
    Some(RetryAfterMark { required: verdict.required, waited_ms: verdict.waited_ms, honoured: verdict.honoured })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_come_from_the_token_unverified_or_the_form() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"oid":"o-1","appid":"a-1"}"#);
        let bearer: HeaderValue = format!("Bearer x.{payload}.sig").parse().unwrap();
        assert_eq!(callers(Some(&bearer), &Bytes::new()), ["o-1", "a-1"]);
        let form = Bytes::from_static(b"grant_type=client_credentials&client_id=c-1&client_secret=s");
        assert_eq!(callers(None, &form), ["c-1"]);
        assert!(callers(None, &Bytes::from_static(b"\xff")).is_empty());
    }
}
