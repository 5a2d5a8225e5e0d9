//! Run callbacks (runs.md, "Callbacks"): when a run with a `callbackUrl` ends, the mock POSTs
//! the documented body and headers there, after the sandbox's lock is released, in completion
//! order. Only loopback URLs (http or https) are called — a documented deviation, since the
//! real service refuses them — so the mock never sends traffic off the machine; any other URL
//! is stored but never called, and an event says why. A first attempt that answers 408 or
//! ≥ 500 (or does not answer within 5 s) is retried 3 times, 1 s apart, in the background, on
//! real time. Every attempt is a journal event (`callback.attempt`, `callback.skipped`).

use crate::domain::clock::format_timestamp;
use crate::domain::run::{Callback, RunEvent};
use crate::sandbox::Sandbox;
use crate::state::AppState;
use serde::Serialize;
use serde_json::json;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Retries after a failed first attempt.
const RETRIES: u32 = 3;
/// Between attempts.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Each attempt's limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackResult {
    /// The run.
    pub flowsession_id: String,
    /// The callback URL.
    pub url: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Whether the URL was called at all (loopback only).
    pub called: bool,
    /// The answer's status, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why there was no answer, or why the URL was not called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether attempts go on in the background.
    pub retrying: bool,
}

/// Whether `url` is http(s) on a loopback host; why not otherwise.
pub fn loopback(url: &str) -> Result<(), &'static str> {
    let u = reqwest::Url::parse(url).map_err(|_| "it is not an absolute URL")?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("only http and https URLs are called");
    }
    let host = u.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let is_loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if is_loopback {
        Ok(())
    } else {
        Err(
            "the mock calls loopback URLs only (it never sends traffic off the machine); the callback is stored, not called",
        )
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // Loopback receivers in tests use self-signed certificates; nothing leaves the machine.
        reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .tls_danger_accept_invalid_certs(true)
            .no_proxy()
            .build()
            .unwrap_or_default()
    })
}

async fn attempt(cb: &Callback) -> (Option<u16>, Option<String>) {
    let body = json!({
        "statuscode": cb.statuscode,
        "statecode": 0,
        "startedon": cb.started_on.map(format_timestamp),
        "completedon": format_timestamp(cb.completed_on),
        "flowsessionid": cb.run.to_string(),
    });
    let sent = client()
        .post(&cb.url)
        .header("User-Agent", "EnterpriseConnectors/1.0")
        .header("Content-Type", "application/json; charset=utf-8")
        .header("x-ms-workflow-id", cb.workflow.to_string())
        .header("x-ms-run-id", cb.run.to_string())
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(r) => (Some(r.status().as_u16()), None),
        Err(e) if e.is_timeout() => (None, Some("no answer within 5 s".into())),
        Err(_) => (None, Some("the connection failed".into())),
    }
}

fn retryable(status: Option<u16>) -> bool {
    status.is_none_or(|s| s == 408 || s >= 500)
}

fn journal(app: &AppState, sandbox: &Sandbox, cb: &Callback, r: &CallbackResult) {
    let event = if r.called { "callback.attempt" } else { "callback.skipped" };
    let detail = serde_json::to_value(r).unwrap_or_default();
    sandbox.journal_event(app.real_ms(), format_timestamp(cb.completed_on), event, detail);
}

/// First attempts, in completion order; failed ones go on retrying in the background.
pub async fn deliver(app: &AppState, sandbox: &Arc<Sandbox>, callbacks: Vec<Callback>) -> Vec<CallbackResult> {
    let mut out = Vec::new();
    for cb in callbacks {
        let mut r = CallbackResult {
            flowsession_id: cb.run.to_string(),
            url: cb.url.clone(),
            attempt: 1,
            called: false,
            status: None,
            error: None,
            retrying: false,
        };
        if let Err(why) = loopback(&cb.url) {
            r.error = Some(why.to_owned());
            journal(app, sandbox, &cb, &r);
            out.push(r);
            continue;
        }
        let (status, error) = attempt(&cb).await;
        r.called = true;
        r.status = status;
        r.error = error;
        r.retrying = retryable(status);
        journal(app, sandbox, &cb, &r);
        if r.retrying {
            let (app, sandbox, cb) = (app.clone(), sandbox.clone(), cb.clone());
            tokio::spawn(async move {
                for n in 2..=RETRIES + 1 {
                    tokio::time::sleep(RETRY_DELAY).await;
                    let (status, error) = attempt(&cb).await;
                    let again = retryable(status) && n <= RETRIES;
                    let r = CallbackResult {
                        flowsession_id: cb.run.to_string(),
                        url: cb.url.clone(),
                        attempt: n,
                        called: true,
                        status,
                        error,
                        retrying: again,
                    };
                    journal(&app, &sandbox, &cb, &r);
                    if !again {
                        break;
                    }
                }
            });
        }
        out.push(r);
    }
    out
}

/// The callbacks `events` owe, in order.
pub fn owed(events: &[RunEvent]) -> Vec<Callback> {
    events.iter().filter_map(|e| e.callback.clone()).collect()
}

/// After a request or the timer changed runs: journal the transitions, and make the
/// callbacks they owe in the background (nobody waits for them).
pub fn after(app: &AppState, sandbox: &Arc<Sandbox>, events: &[RunEvent]) {
    sandbox.journal_run_events(app.real_ms(), events);
    let callbacks = owed(events);
    if callbacks.is_empty() {
        return;
    }
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let (app, sandbox) = (app.clone(), sandbox.clone());
        rt.spawn(async move {
            deliver(&app, &sandbox, callbacks).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{loopback, retryable};

    #[test]
    fn a_first_attempt_is_retried_on_408_on_500_and_above_and_without_an_answer() {
        for again in [Some(408), Some(500), Some(503), None] {
            assert!(retryable(again), "{again:?}");
        }
        for done in [Some(200), Some(204), Some(400), Some(404), Some(429)] {
            assert!(!retryable(done), "{done:?}");
        }
    }

    #[test]
    fn only_http_and_https_urls_on_loopback_hosts_are_called() {
        for ok in ["http://127.0.0.1:9/cb", "https://localhost/cb", "http://[::1]:8080/x", "http://127.1.2.3/"] {
            assert!(loopback(ok).is_ok(), "{ok}");
        }
        for no in [
            "https://example.com/cb",
            "ftp://127.0.0.1/x",
            "/relative",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
        ] {
            assert!(loopback(no).is_err(), "{no}");
        }
    }
}
