//! The checks of one case, each turning what the mock saw into [`Failure`]s: the outcome of
//! each client step, the requests (journal `kind=request`, in their routed form, each pattern
//! normalised together with its candidate by the mock's one normaliser), the counts, the
//! leak flags, the state left and the Retry-After verdicts.

use crate::case::{BodyMatch, CountExpect, OutcomeExpect, RequestPattern, StateExpect};
use crate::report::Failure;
use mock_server::api::routing::{Attribution, classify};
use mock_server::normalise::normalise_all;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Matches anything, wherever a case writes it.
pub const ANY: &str = "<any>";

/// What an expected secret becomes before comparing: the journal shows secrets redacted, so
/// it matches any redaction mark.
const SECRET: &str = "<secret>";

/// Whether `received` satisfies `expected`: objects by the keys `expected` gives (recursively),
/// arrays equal in length and order, `"<any>"` matching anything. With `exact`, objects must
/// also have no other keys.
pub fn matches(expected: &Value, received: &Value, exact: bool) -> bool {
    match (expected, received) {
        (Value::String(e), _) if e == ANY => true,
        (Value::String(e), Value::String(r)) if e == SECRET => r.starts_with("<redacted:"),
        (Value::Object(e), Value::Object(r)) => {
            (!exact || e.len() == r.len()) && e.iter().all(|(k, v)| r.get(k).is_some_and(|x| matches(v, x, exact)))
        }
        (Value::Array(e), Value::Array(r)) => e.len() == r.len() && e.iter().zip(r).all(|(a, b)| matches(a, b, exact)),
        (Value::Number(e), Value::Number(r)) => e.as_f64() == r.as_f64(),
        _ => expected == received,
    }
}

/// The outcome of one client step against its expectation (`{"ok": true}` when none).
pub fn outcome(check: &str, expect: Option<&OutcomeExpect>, outcome: &Value) -> Option<Failure> {
    let ok = outcome.get("ok").and_then(Value::as_bool).unwrap_or(false);
    // The echoed step id is protocol, not outcome: left out of the comparison shown.
    let mut shown = outcome.clone();
    if let Some(o) = shown.as_object_mut() {
        o.remove("id");
    }
    let fail =
        |message: String, expected: Value| Some(Failure::compared(check, message, expected, Some(shown.clone())));
    let default = OutcomeExpect { ok: true, result: None, status: None, code: None };
    let e = expect.unwrap_or(&default);
    let expected = serde_json::to_value(e).unwrap_or(Value::Null);
    match (e.ok, ok) {
        (true, false) => fail("the client reported a failure where success was expected".into(), expected),
        (false, true) => fail("the client reported success where a failure was expected".into(), expected),
        (true, true) => match &e.result {
            Some(r) if !matches(r, outcome.get("result").unwrap_or(&Value::Null), false) => {
                fail("the result differs from the expected one (a subset match)".into(), expected)
            }
            _ => None,
        },
        (false, false) => {
            let status = outcome.get("status").and_then(Value::as_u64);
            if let Some(s) = e.status
                && !status.is_some_and(|got| s.accepts(got))
            {
                return fail(format!("expected status {s}"), expected);
            }
            match &e.code {
                Some(c) if outcome.get("code").and_then(Value::as_str) != Some(c.as_str()) => {
                    fail(format!("expected error code '{c}'"), expected)
                }
                _ => None,
            }
        }
    }
}

/// A journal request in the form cases compare: operation, method, the routed path, the
/// query without `api-version` (one value per name; repeated names give an array), headers,
/// body and status.
pub fn routed(entry: &Value) -> Value {
    let s = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
    let mut query = Map::new();
    for pair in entry.get("query").and_then(Value::as_array).into_iter().flatten() {
        let (Some(k), Some(v)) = (pair.get(0).and_then(Value::as_str), pair.get(1)) else { continue };
        if k.eq_ignore_ascii_case("api-version") {
            continue;
        }
        match query.get_mut(k) {
            Some(Value::Array(a)) => a.push(v.clone()),
            Some(first) => *first = Value::Array(vec![first.clone(), v.clone()]),
            None => {
                query.insert(k.to_owned(), v.clone());
            }
        }
    }
    json!({
        "operation": s("operation"),
        "method": s("method"),
        "path": routed_path(s("method"), s("host"), s("path"), entry.get("environment").and_then(Value::as_str)),
        "query": query,
        "headers": entry.get("headers").cloned().unwrap_or(Value::Object(Map::new())),
        "body": entry.get("body").cloned().unwrap_or(Value::Null),
        "status": entry.get("status").cloned().unwrap_or(Value::Null),
    })
}

/// The path after routing: environment-host and tenant-host paths in the path form, the org
/// host as `/dataverse/{org}/…`.
pub fn routed_path(method: &str, host: &str, path: &str, environment: Option<&str>) -> String {
    match classify(method, host, path, "") {
        Ok(c) => match (c.rewrite, c.attribution) {
            (Some(rewritten), _) => rewritten,
            (None, Attribution::EnvironmentHost { rest, .. }) => match environment {
                Some(env) => format!("/connectivity/environments/{env}{rest}"),
                None => path.to_owned(),
            },
            (None, _) => path.to_owned(),
        },
        Err(_) => path.to_owned(),
    }
}

/// Which door a request came through, for the report: the surface and the host form.
pub fn door(entry: &Value) -> String {
    let surface = entry.get("surface").and_then(Value::as_str).unwrap_or("unknown");
    let host = mock_server::hosts::host_name(entry.get("host").and_then(Value::as_str).unwrap_or(""));
    let form = if host.ends_with(mock_server::hosts::ENV_HOST_SUFFIX) {
        "environment host"
    } else if host == mock_server::hosts::TENANT_API_HOST {
        "tenant host"
    } else if mock_server::hosts::crm_org(&host).is_some() {
        "org host"
    } else if mock_server::hosts::is_microsoft_host(&host) {
        "real host"
    } else {
        "path form"
    };
    format!("{surface} ({form})")
}

/// `expect.requests`: each pattern matched in order as a subsequence of `entries` (routed
/// form). A pattern that finds no match is shown beside the nearest candidate.
pub fn requests(patterns: &[Value], entries: &[Value], secrets: &BTreeSet<String>) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut at = 0;
    for (i, pattern) in patterns.iter().enumerate() {
        let mut pattern = hide_secrets(pattern, secrets);
        // Any accepted api-version matches (conformance.md): it is compared on neither side.
        if let Some(q) = pattern.get_mut("query").and_then(Value::as_object_mut) {
            q.retain(|k, _| !k.eq_ignore_ascii_case("api-version"));
        }
        let op = pattern.get("operation").and_then(Value::as_str).unwrap_or("");
        let found = entries
            .iter()
            .enumerate()
            .skip(at)
            .find(|(_, e)| e.get("operation").and_then(Value::as_str) == Some(op) && compare(&pattern, e).is_ok());
        match found {
            Some((j, _)) => at = j + 1,
            None => {
                // The nearest candidate: the next request of the same operation, else the
                // last one before, else nothing.
                let same = |e: &&Value| e.get("operation").and_then(Value::as_str) == Some(op);
                let candidate = entries[at..].iter().find(same).or_else(|| entries[..at].iter().rev().find(same));
                let check = format!("expect.requests[{i}]");
                let failure = match candidate {
                    Some(c) => {
                        let (why, e, r) = match compare(&pattern, c) {
                            Err(d) => d,
                            Ok(()) => (
                                "it came before a request matched by an earlier pattern".into(),
                                pattern.clone(),
                                c.clone(),
                            ),
                        };
                        Failure::compared(
                            check,
                            format!("no {op} request after the previous match fits: {why}"),
                            e,
                            Some(r),
                        )
                    }
                    None => {
                        let seen: Vec<&str> =
                            entries.iter().filter_map(|e| e.get("operation").and_then(Value::as_str)).collect();
                        let message = format!(
                            "the client sent no {op} request (it sent: {})",
                            if seen.is_empty() { "nothing".into() } else { seen.join(", ") }
                        );
                        Failure::compared(check, message, normalise_all(std::slice::from_ref(&pattern)).remove(0), None)
                    }
                };
                failures.push(failure);
            }
        }
    }
    failures
}

/// A pattern against one routed entry, both normalised in one batch; on a mismatch, why and
/// the two normalised sides (only the fields the pattern gives).
fn compare(pattern: &Value, entry: &Value) -> Result<(), (String, Value, Value)> {
    let mut projected = Map::new();
    for key in ["operation", "method", "path", "query", "headers", "body", "status"] {
        if pattern.get(key).is_some() {
            projected.insert(key.to_owned(), entry.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    let mut expected = pattern.clone();
    if let Some(o) = expected.as_object_mut() {
        o.remove("bodyMatch");
    }
    let both = normalise_all(&[expected, Value::Object(projected)]);
    let (e, r) = (&both[0], &both[1]);
    let field = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let differs = |what: &str| Err((what.to_owned(), e.clone(), r.clone()));
    if let Some(m) = e.get("method").and_then(Value::as_str)
        && !r.get("method").and_then(Value::as_str).is_some_and(|x| x.eq_ignore_ascii_case(m))
    {
        return differs("the method differs");
    }
    if e.get("path").is_some() && !matches(&field(e, "path"), &field(r, "path"), true) {
        return differs("the path differs");
    }
    if e.get("query").is_some() && !matches(&field(e, "query"), &field(r, "query"), false) {
        return differs("the query differs");
    }
    if let Some(h) = e.get("headers").and_then(Value::as_object) {
        let lower: Map<String, Value> = h.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        if !matches(&Value::Object(lower), &field(r, "headers"), false) {
            return differs("the headers differ");
        }
    }
    if e.get("body").is_some() {
        let exact = pattern.get("bodyMatch").and_then(Value::as_str) != Some("subset");
        if !matches(&field(e, "body"), &field(r, "body"), exact) {
            return differs(if exact { "the body differs" } else { "the body lacks what the pattern gives" });
        }
    }
    if e.get("status").is_some() && !matches(&field(e, "status"), &field(r, "status"), true) {
        return differs("the status differs");
    }
    Ok(())
}

fn hide_secrets(v: &Value, secrets: &BTreeSet<String>) -> Value {
    match v {
        Value::String(s) if secrets.contains(s) => Value::String(SECRET.to_owned()),
        Value::Array(a) => Value::Array(a.iter().map(|x| hide_secrets(x, secrets)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), hide_secrets(x, secrets))).collect()),
        _ => v.clone(),
    }
}

/// `expect.counts`.
pub fn counts(expected: &BTreeMap<String, CountExpect>, entries: &[Value]) -> Vec<Failure> {
    expected
        .iter()
        .filter_map(|(op, want)| {
            let n = entries.iter().filter(|e| e.get("operation").and_then(Value::as_str) == Some(op.as_str())).count()
                as u64;
            (!want.accepts(n)).then(|| {
                Failure::new(
                    format!("expect.counts.{op}"),
                    format!("expected {want} {op} requests, the client sent {n}"),
                )
            })
        })
        .collect()
}

/// Always checked: no request carries a leak flag.
pub fn leaks(entries: &[Value]) -> Vec<Failure> {
    entries
        .iter()
        .filter_map(|e| {
            let leaks: Vec<&str> = e.get("leaks").and_then(Value::as_array)?.iter().filter_map(Value::as_str).collect();
            if leaks.is_empty() {
                return None;
            }
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
            Some(Failure::new(
                "leak",
                format!(
                    "{} {} {} carries a secret outside its field: {}",
                    s("operation"),
                    s("method"),
                    s("path"),
                    leaks.join(", ")
                ),
            ))
        })
        .collect()
}

/// The connections and runs of `GET /_mock/state` in the shape state patterns use:
/// connections with `status` (`Connected` or `Error`) and `statusCode` (the error code), as a
/// client's `createConnection` reports them; runs with `runId` and `code` besides the view's fields.
pub fn state_view(state: &Value) -> (Vec<Value>, Vec<Value>) {
    let connections = state
        .get("connections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                let status = o.get("status").and_then(Value::as_str).unwrap_or("").to_owned();
                if status != "Connected" {
                    o.insert("status".into(), json!("Error"));
                    o.insert("statusCode".into(), json!(status));
                }
            }
            c
        })
        .collect();
    let runs = state
        .get("runs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                if let Some(id) = o.get("flowsessionId").cloned() {
                    o.insert("runId".into(), id);
                }
                if let Some(code) = o.get("errorCode").cloned() {
                    o.insert("code".into(), code);
                }
            }
            r
        })
        .collect();
    (connections, runs)
}

/// `expect.state`: each pattern matched by a different item (subset match, GUIDs compared
/// after normalising pattern and items together).
pub fn state(expected: &StateExpect, connections: &[Value], runs: &[Value]) -> Vec<Failure> {
    let mut failures = Vec::new();
    if let Some(patterns) = &expected.connections {
        failures.extend(each_matched("expect.state.connections", patterns, connections));
        if expected.connections_exact && connections.len() != patterns.len() {
            failures.push(Failure::compared(
                "expect.state.connectionsExact",
                format!("expected exactly {} connections, the sandbox holds {}", patterns.len(), connections.len()),
                Value::Array(patterns.clone()),
                Some(Value::Array(connections.to_vec())),
            ));
        }
    } else if expected.connections_exact && !connections.is_empty() {
        failures.push(Failure::compared(
            "expect.state.connectionsExact",
            format!("expected no connection, the sandbox holds {}", connections.len()),
            json!([]),
            Some(Value::Array(connections.to_vec())),
        ));
    }
    if let Some(patterns) = &expected.runs {
        failures.extend(each_matched("expect.state.runs", patterns, runs));
    }
    failures
}

fn each_matched(check: &str, patterns: &[Value], items: &[Value]) -> Vec<Failure> {
    let mut batch: Vec<Value> = patterns.to_vec();
    batch.extend(items.iter().cloned());
    let normalised = normalise_all(&batch);
    let (ps, xs) = normalised.split_at(patterns.len());
    let mut used = vec![false; xs.len()];
    let mut failures = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        match xs.iter().enumerate().find(|(j, x)| !used[*j] && matches(p, x, false)) {
            Some((j, _)) => used[j] = true,
            None => failures.push(Failure::compared(
                format!("{check}[{i}]"),
                "no item of the sandbox's state fits".to_owned(),
                p.clone(),
                Some(Value::Array(xs.to_vec())),
            )),
        }
    }
    failures
}

/// `expect.retryAfter: honoured`.
pub fn retry_after_honoured(verdicts: &[Value]) -> Option<Failure> {
    if verdicts.is_empty() {
        return Some(Failure::new(
            "expect.retryAfter",
            "no request came after an answer with Retry-After (the client did not retry, or the case did not throttle)",
        ));
    }
    let violations: Vec<Value> =
        verdicts.iter().filter(|v| v.get("honoured").and_then(Value::as_bool) != Some(true)).cloned().collect();
    (!violations.is_empty()).then(|| {
        Failure::compared(
            "expect.retryAfter",
            format!("{} request(s) came sooner than the Retry-After before them", violations.len()),
            json!("every retry waits the Retry-After it was given"),
            Some(Value::Array(violations)),
        )
    })
}

/// A pattern as the JSON the checks compare (from the case's typed form).
pub fn pattern_value(p: &RequestPattern) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if p.body_match == BodyMatch::Subset
        && let Some(o) = v.as_object_mut()
    {
        o.insert("bodyMatch".into(), json!("subset"));
    }
    v
}
