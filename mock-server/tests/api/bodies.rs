//! Bodies, limits, envelopes and timeouts (DECISIONS.md, "Bodies, limits and timeouts"): one
//! strict JSON parser, every refusal in its surface's envelope, and no client can hold a
//! connection by sending slowly.

use crate::helpers::*;
use mock_server::MockServer;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTION: &str = "d4e4a6ff-9a67-492a-a1f6-de854528668c";
const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
const BUILD01: &str = "78afb281-eb1e-4e35-ba11-9460dcabf47a";
/// How long a test waits for the mock to act on a timeout of one second: generous, so that a
/// loaded machine never fails it; a mock that never acts fails it.
const BOUND: Duration = Duration::from_secs(10);

fn connection_url(t: &TestServer) -> String {
    format!(
        "{}/connectivity/environments/{ENV_ID}/connectors/shared_uiflow/connections/{CONNECTION}?api-version=1",
        t.http
    )
}

fn connection_body() -> Value {
    json!({
        "properties": {
            "environment": { "name": ENV_ID },
            "connectionParametersSet": {
                "name": "azureRelay",
                "values": {
                    "username": { "value": "CONTOSO\\svc-rpa" },
                    "password": { "value": "Contoso-SvcRpa-Passw0rd!" },
                    "targetId": { "value": FINANCE }
                }
            }
        }
    })
}

impl TestServer {
    async fn raw_post(&self, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self.client.post(format!("{}{path}", self.http)).body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        status_json(req.send().await.unwrap()).await
    }

    async fn clock_now(&self) -> Value {
        self.control_get("/_mock/clock").await["now"].clone()
    }
}

/// Reads until the mock closes the connection, or fails after [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the mock kept the connection open; read so far: {}", String::from_utf8_lossy(&out));
    out
}

/// Status and JSON body of a raw HTTP/1.1 answer (`Content-Length` framed).
fn parse_answer(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer: {text}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    (status, serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON ({status}): {body}")))
}

// ---- item 8: strict JSON --------------------------------------------------------------------

#[tokio::test]
async fn a_top_level_array_or_trailing_bytes_are_refused_and_the_clock_does_not_move() {
    // Arrange
    let t = spawn_server().await;
    let before = t.clock_now().await;
    // Act
    let (array, array_env) = t.raw_post("/_mock/clock/advance", Some("application/json"), "[1,2,3]").await;
    let (trailing, trailing_env) =
        t.raw_post("/_mock/clock/advance", Some("application/json"), r#"{"hours": 1}xyz"#).await;
    let (second, _) = t.raw_post("/_mock/clock/advance", Some("application/json"), r#"{"hours": 1}{"hours": 2}"#).await;
    // Assert
    assert_eq!((array, array_env["error"]["code"].as_str()), (400, Some("InvalidRequestContent")), "{array_env}");
    assert_eq!(array_env["error"]["message"], "The request body must be a JSON object, not an array.");
    assert_eq!((trailing, trailing_env["error"]["code"].as_str()), (400, Some("InvalidJson")), "{trailing_env}");
    assert_eq!(second, 400);
    assert_eq!(t.clock_now().await, before, "no refused body moved the clock");
}

#[tokio::test]
async fn a_connection_body_followed_by_bytes_creates_nothing() {
    // Arrange
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let body = format!("{}xyz", connection_body());
    // Act
    let r = t
        .client
        .put(connection_url(&t))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, env) = status_json(r).await;
    // Assert
    assert_eq!((status, env["error"]["code"].as_str()), (400, Some("InvalidJson")), "{env}");
    let r = t.client.get(connection_url(&t)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404, "no connection was created");
}

#[tokio::test]
async fn a_shape_error_names_the_field_and_type_but_never_the_value_sent() {
    // Arrange: the password block sent as a bare string where an object of values belongs.
    let t = spawn_server().await;
    let token = t.sp_token(PP_SCOPE).await;
    let secret = "Wr0ngShape-Passw0rd-7731";
    let mut body = connection_body();
    body["properties"]["connectionParametersSet"]["values"] = json!(secret);
    // Act
    let (status, env) =
        status_json(t.client.put(connection_url(&t)).bearer_auth(&token).json(&body).send().await.unwrap()).await;
    // Assert
    assert_eq!(status, 400, "{env}");
    assert_eq!(
        env["error"]["message"],
        "The field 'properties.connectionParametersSet.values' must be an object, not a string."
    );
    assert!(!env.to_string().contains("Passw0rd"), "the value came back: {env}");
}

#[tokio::test]
async fn parameterless_control_calls_take_an_empty_body_with_or_without_a_content_type() {
    let t = spawn_server().await;
    for ct in [None, Some("text/plain"), Some("application/json")] {
        let (s, env) = t.raw_post("/_mock/reset", ct, "").await;
        assert_eq!(s, 200, "{ct:?}: {env}");
    }
    let r = t
        .client
        .delete(format!("{}/_mock/journal", t.http))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, env) = t.raw_post("/_mock/reset", Some("application/json"), "{}").await;
    assert_eq!(s, 200, "{env}");
    // The control surface refuses what it does not know, parameters included.
    let (s, env) = t.raw_post("/_mock/reset", Some("application/json"), r#"{"keepJournal": true}"#).await;
    assert_eq!((s, env["error"]["code"].as_str()), (400, Some("InvalidRequestContent")), "{env}");
    assert_eq!(
        env["error"]["message"].as_str().map(|m| m.starts_with("The field 'keepJournal' is not known here")),
        Some(true),
        "{env}"
    );
}

#[tokio::test]
async fn a_dataverse_write_with_a_non_json_content_type_is_415_in_dataverses_envelope() {
    // Arrange
    let t = spawn_server().await;
    let token =
        t.user_grant("https://contosodev.crm.dynamics.com/.default").await["access_token"].as_str().unwrap().to_owned();
    // Act
    let r = t
        .client
        .post(t.dv("flowmachinegroups"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"name": "Night shift"}"#)
        .send()
        .await
        .unwrap();
    let (status, env) = status_json(r).await;
    // Assert
    assert_eq!(status, 415, "{env}");
    assert_eq!(env["error"]["code"], "UnsupportedMediaType");
    assert_eq!(env.as_object().map(|o| o.len()), Some(1), "only the OData error object: {env}");
    // An action without parameters takes an empty body whatever its content type.
    let leave = t.dv(&format!("flowmachines({BUILD01})/Microsoft.Dynamics.CRM.LeaveGroup"));
    let r = t.client.post(&leave).bearer_auth(&token).header("content-type", "text/plain").send().await.unwrap();
    assert_ne!(r.status(), 415);
    let r =
        t.client.post(&leave).bearer_auth(&token).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status(), 415);
}

// ---- item 9: every refusal is an envelope ---------------------------------------------------

#[tokio::test]
async fn a_body_over_4_mib_declared_up_front_is_413_and_a_client_that_sends_it_all_still_reads_it() {
    // Arrange
    let t = spawn_server().await;
    let body = vec![b' '; mock_server::api::MAX_BODY_BYTES + 1024 * 1024];
    let head = format!(
        "POST /_mock/clock/advance HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(t.server.http_addr()).await.unwrap();
    // Act: the whole body first, as naive clients do, and only then read.
    stream.write_all(head.as_bytes()).await.unwrap();
    let sent = stream.write_all(&body).await;
    let (status, env) = parse_answer(&read_until_closed(&mut stream).await);
    // Assert
    assert!(sent.is_ok(), "the mock stopped reading the body: {sent:?}");
    assert_eq!((status, env["error"]["code"].as_str()), (413, Some("RequestBodyTooLarge")), "{env}");
    assert!(env["error"]["message"].as_str().unwrap().contains("4 MiB"), "{env}");
}

#[tokio::test]
async fn a_chunked_body_passing_4_mib_is_413_in_the_dataverse_envelope() {
    // Arrange
    let t = spawn_server().await;
    let chunk = vec![b' '; 64 * 1024];
    let mut stream = TcpStream::connect(t.server.http_addr()).await.unwrap();
    let head = format!(
        "POST /dataverse/{ORG}/api/data/v9.2/flowmachinegroups HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    // Act
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut sent = Ok(());
    for _ in 0..(mock_server::api::MAX_BODY_BYTES / chunk.len() + 8) {
        sent = async {
            stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            stream.write_all(&chunk).await?;
            stream.write_all(b"\r\n").await
        }
        .await;
        if sent.is_err() {
            break;
        }
    }
    if sent.is_ok() {
        sent = stream.write_all(b"0\r\n\r\n").await;
    }
    let raw = read_until_closed(&mut stream).await;
    // Assert
    assert!(sent.is_ok(), "the mock stopped reading the body: {sent:?}");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#"{"error":{"code":"RequestBodyTooLarge","#), "{text}");
}

#[tokio::test]
async fn the_control_surface_takes_bodies_up_to_the_same_4_mib() {
    let t = spawn_server().await;
    let body = format!(r#"{{"padding": "{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let r = t
        .client
        .put(format!("{}/_mock/fixture", t.http))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, env) = status_json(r).await;
    assert_eq!((status, env["error"]["code"].as_str()), (400, Some("InvalidFixture")), "read, not refused: {env}");
}

#[tokio::test]
async fn a_uri_over_16_kib_is_414_in_the_surfaces_envelope() {
    let t = spawn_server().await;
    let pad = "a".repeat(17 * 1024);
    let r = t.client.get(format!("{}/_mock/health?pad={pad}", t.http)).send().await.unwrap();
    let (status, env) = status_json(r).await;
    assert_eq!((status, env["error"]["code"].as_str()), (414, Some("RequestUriTooLong")), "{env}");
    let r = t.client.post(format!("{}/{TENANT}/oauth2/v2.0/token?pad={pad}", t.https)).send().await.unwrap();
    let (status, env) = status_json(r).await;
    assert_eq!((status, env["error"].as_str()), (414, Some("invalid_request")), "the identity shape: {env}");
    // Just under the limit is served.
    let r = t.client.get(format!("{}/_mock/health?pad={}", t.http, "a".repeat(15 * 1024))).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_header_block_over_64_kib_is_431_in_the_surfaces_envelope_and_many_small_headers_are_fine() {
    let t = spawn_server().await;
    let r =
        t.client.get(format!("{}/_mock/health", t.http)).header("x-pad", "a".repeat(70 * 1024)).send().await.unwrap();
    let (status, env) = status_json(r).await;
    assert_eq!((status, env["error"]["code"].as_str()), (431, Some("RequestHeaderFieldsTooLarge")), "{env}");
    // 150 fields (hyper's default cap is 100) in 15 KiB: well inside the mock's limit.
    let mut req = t.client.get(format!("{}/_mock/health", t.http));
    for i in 0..150 {
        req = req.header(format!("x-pad-{i}"), "b".repeat(90));
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_journal_filter_that_is_not_a_number_is_a_named_envelope() {
    let t = spawn_server().await;
    let r = t.client.get(format!("{}/_mock/journal?since=abc", t.http)).send().await.unwrap();
    let (status, env) = status_json(r).await;
    assert_eq!((status, env["error"]["code"].as_str()), (400, Some("InvalidQueryParameter")), "{env}");
    assert!(env["error"]["message"].as_str().unwrap().contains("'since'"), "{env}");
}

// ---- item 10: timeouts ----------------------------------------------------------------------

#[tokio::test]
async fn a_half_sent_request_head_is_cut_off_after_the_header_timeout() {
    // Arrange
    let t = spawn_with(MockServer::builder().header_timeout(Duration::from_secs(1))).await;
    let mut stream = TcpStream::connect(t.server.http_addr()).await.unwrap();
    // Act
    stream.write_all(b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    // Assert: closed (read_until_closed fails after 10 s otherwise), and nothing was served.
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_the_connection_closes() {
    // Arrange
    let t = spawn_with(MockServer::builder().body_timeout(Duration::from_secs(1))).await;
    let mut stream = TcpStream::connect(t.server.http_addr()).await.unwrap();
    // Act: 10 of the 100 bytes announced, then silence.
    stream
        .write_all(b"POST /_mock/clock/advance HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"hours\":")
        .await
        .unwrap();
    let (status, env) = parse_answer(&read_until_closed(&mut stream).await);
    // Assert
    assert_eq!((status, env["error"]["code"].as_str()), (408, Some("RequestBodyTimeout")), "{env}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_and_closes_after_the_idle_timeout() {
    // Arrange
    let t =
        spawn_with(MockServer::builder().header_timeout(Duration::from_secs(1)).idle_timeout(Duration::from_secs(4)))
            .await;
    let mut stream = TcpStream::connect(t.server.http_addr()).await.unwrap();
    let request = b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    stream.write_all(request).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Act: idle for longer than the header timeout, then a second request on the same connection.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stream.write_all(request).await.unwrap();
    let n = tokio::time::timeout(BOUND, stream.read(&mut buf)).await.unwrap().unwrap();
    // Assert: served; then, idle again, the mock closes it.
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    read_until_closed(&mut stream).await;
}

// ---- item 14: Entra timestamps follow real time ---------------------------------------------

#[tokio::test]
async fn an_entra_error_timestamp_is_real_time_even_when_the_sandbox_clock_is_days_ahead() {
    // Arrange
    let t = spawn_server().await;
    let (s, _) = t.control(Method::POST, "/_mock/clock/advance", Some(json!({"hours": 240}))).await;
    assert_eq!(s, 200);
    // Act
    let r = t.token(TENANT, &cc_form(SP_APP_ID, "not-the-secret", PP_SCOPE)).await;
    let (_, env) = status_json(r).await;
    // Assert
    let description = env["error_description"].as_str().unwrap();
    let line = description.rsplit("Timestamp: ").next().unwrap();
    let stamped = chrono::NaiveDateTime::parse_from_str(line, "%Y-%m-%d %H:%M:%SZ").unwrap().and_utc();
    #[allow(clippy::disallowed_methods)]
    let wall = chrono::Utc::now();
    assert!((wall - stamped).num_seconds().abs() < 300, "{stamped} is not the wall clock's {wall}");
    assert_eq!(env["timestamp"].as_str(), Some(line));
}
