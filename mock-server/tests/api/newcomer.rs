//! What a newcomer meets first: the binary's banner, its errors and log, `/_mock/health`, and
//! the answer of `POST /_mock/sandboxes` (DECISIONS: Addressing, Fixtures).

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn mock_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mock-server"))
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mock-newcomer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_taken_https_port_says_how_to_pick_another_and_leaves_no_ca_folder_behind() {
    // Arrange: hold a port so the mock cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tmp = fresh_dir("taken");
    // Act
    let out = mock_binary()
        .args(["--port", "0", "--https-port", &port.to_string()])
        .env("TMPDIR", &tmp)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    // Assert
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("--https-port"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "the temporary CA folder was left behind: {left:?}");
}

#[test]
fn the_banner_begins_with_the_bound_origins_and_a_log_file_has_no_colour_codes() {
    // Arrange
    let tmp = fresh_dir("banner");
    let log = tmp.join("mock.log");
    let mut child = mock_binary()
        .args(["--port", "0", "--https-port", "0", "--log", "mock_server=debug"])
        .env("TMPDIR", &tmp)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Act: read the first lines, then stop it (which it logs).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let http = lines.next().unwrap().unwrap();
    let https = lines.next().unwrap().unwrap();
    let rest: Vec<String> = lines.by_ref().take(5).map(Result::unwrap).collect();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    // Assert
    assert!(http.starts_with("http://127.0.0.1:") && !http.ends_with(":0"), "{http}");
    assert!(https.starts_with("https://127.0.0.1:"), "{https}");
    assert!(rest.iter().any(|l| l.contains("is ready")), "{rest:?}");
    assert!(status.success(), "SIGTERM shuts down cleanly: {status:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("shutting down"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "colour codes in a log file: {logged:?}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().filter(|e| e.as_ref().unwrap().path() != log).collect();
    assert!(left.is_empty(), "the temporary CA folder outlived the server: {left:?}");
}

#[tokio::test]
async fn health_lists_every_surface_with_its_host_and_path_form() {
    let t = spawn_server().await;
    let health = t.control_get("/_mock/health").await;
    assert_eq!(health["status"], "ready");
    let surfaces = health["surfaces"].as_array().unwrap();
    let named = |s: &str| surfaces.iter().find(|x| x["surface"] == s).unwrap_or_else(|| panic!("{s}: {health}"));
    assert_eq!(named("identity")["realHost"], "login.microsoftonline.com");
    assert!(named("dataverse")["pathForm"].as_str().unwrap().starts_with("/dataverse/{org}/api/data/v9.2/"));
    assert!(named("powerplatform")["pathForm"].as_str().unwrap().contains("/connectivity/environments/"));
    for s in ["bap", "runtime", "control"] {
        named(s);
    }
    // The unknown-host error points here, so it must be true to its word.
    let r = t.client.get("https://graph.microsoft.com/v1.0/me").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("/_mock/health"));
}

#[tokio::test]
async fn a_new_sandbox_answers_with_its_world_in_the_fixture_format_and_its_hosts() {
    // Arrange
    let t = spawn_server().await;
    // Act
    let (s, sb) = t.control(Method::POST, "/_mock/sandboxes", Some(json!({"name": "team-b"}))).await;
    // Assert
    assert_eq!(s, 201, "{sb}");
    assert_eq!(sb["sandbox"], "team-b");
    let fixture = t.control_get("/_mock/fixture?sandbox=team-b").await;
    let mut without_extras = sb.clone();
    let o = without_extras.as_object_mut().unwrap();
    o.remove("sandbox");
    let hosts = o.remove("hosts").unwrap();
    assert_eq!(without_extras, fixture, "the answer is the instantiated world as GET /_mock/fixture has it");
    let env = fixture["environments"][0]["id"].as_str().unwrap();
    assert_ne!(env, ENV_ID);
    assert_eq!(hosts[0]["environment"], env);
    let org = fixture["environments"][0]["dataverse"]["org"].as_str().unwrap();
    assert_eq!(hosts[0]["orgHost"], format!("{org}.crm.dynamics.com"));
    assert!(hosts[0]["apiHost"].as_str().unwrap().ends_with(".environment.api.powerplatform.com"));
}
