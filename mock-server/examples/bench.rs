//! The benchmark: the mock beside a bare axum server, in one run, over loopback.
//!
//! ```sh
//! cargo run --release -p mock-server --example bench            # every phase, 5 s each
//! cargo run --release -p mock-server --example bench -- --duration 10 --rounds 3
//! ```
//!
//! It re-executes itself in server mode (`serve-mock`, `serve-axum`), so the servers it measures
//! come from the same build. The load generator is `wrk` (Debian's package `wrk`); the servers
//! are pinned to core 0 and `wrk` to core 1 when `taskset` exists. It prints, per phase,
//! requests/s, p50, p99 and the ratio to bare axum where bare axum has the same kind of request
//! (static GET, PUT into a map, GET from a map: byte-identical requests, on the mock's own
//! path), and the mock's RSS after each phase. Rounds alternate between the servers; the ratio
//! is the median of each round's pair. The create
//! phase is a count, not a time (`--creates`, 100 000 fresh ids): each create stores a connection,
//! so a timed phase would store more the faster the server is. Then the first answer after spawn (median of 5,
//! with and without TLS) and the mock's peak RSS (VmHWM); then (unless `--no-scale`) GET and PUT
//! among 1 000 and 1 000 000 stored connections, each size in its own server seeded through the
//! Rust API, with its RSS after seeding. Figures and how to read them: docs/performance.md.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The same allocator as the `mock-server` binary, so the server measured is the one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANT: &str = "contoso.onmicrosoft.com";
const SP_APP_ID: &str = "71fb83d4-8950-48e6-8251-52e4b19068c8";
const SP_SECRET: &str = "mock-pipeline-secret~0001";
const ENV_ID: &str = "37520647-dbdf-49fa-ba01-6134c14680c4";
const ORG: &str = "contosodev";
/// Bare axum's connection route: the mock's own path, so both servers get byte-identical
/// requests (path, query, headers and body) and differ only in what they do with them.
const BARE_CONNECTION: &str = "/connectivity/environments/{env}/connectors/{connector}/connections/{id}";
const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve-mock") => {
            let seed = args.iter().position(|a| a == "--seed").and_then(|i| args.get(i + 1)?.parse().ok());
            serve_mock(args.iter().any(|a| a == "--no-tls"), seed.unwrap_or(0))
        }
        Some("serve-axum") => serve_axum(),
        _ => {
            if let Err(e) = bench(&Options::parse(&args)) {
                eprintln!("bench: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[derive(Debug)]
struct Options {
    duration: u64,
    connections: u32,
    rounds: usize,
    /// Also the runs at 1 000 and 1 000 000 stored connections.
    scale: bool,
    /// How many connections the create phase creates, over all its rounds.
    creates: u64,
}

impl Options {
    fn parse(args: &[String]) -> Self {
        let mut o = Self { duration: 5, connections: 64, rounds: 1, scale: true, creates: 100_000 };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| usage(a));
            match a.as_str() {
                "--duration" => o.duration = value(),
                "--connections" => o.connections = u32::try_from(value()).unwrap_or(64),
                "--rounds" => o.rounds = usize::try_from(value()).unwrap_or(1).max(1),
                "--no-scale" => o.scale = false,
                "--creates" => o.creates = value().max(1),
                _ => usage(a),
            }
        }
        o
    }
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "bench: unexpected '{arg}'. Usage: bench [--duration SECS] [--connections N] [--rounds N] [--creates N] [--no-scale]"
    );
    std::process::exit(2)
}

// ---- server modes -------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

/// Prints `READY {origin}` once serving, then serves until stdin closes.
fn serve_until_stdin_closes(origin: &str) {
    println!("READY {origin}");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn serve_mock(no_tls: bool, seed: usize) {
    let rt = runtime();
    let server = rt.block_on(async {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        mock_server::MockServer::builder().http(any).https((!no_tls).then_some(any)).start().await
    });
    let server = server.unwrap_or_else(|e| panic!("the mock starts: {e}"));
    if seed > 0 {
        let seeded = rt.block_on(server.default_sandbox().seed_connections(ENV_ID, seed));
        seeded.unwrap_or_else(|e| panic!("seeding {seed} connections: {e}"));
    }
    serve_until_stdin_closes(&server.uri());
    rt.block_on(server.shutdown());
}

/// The stack's limit: axum with a static route and a JSON map behind one mutex.
fn serve_axum() {
    use axum::extract::{Path, State};
    use axum::routing::get;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    type Map = Arc<Mutex<HashMap<String, serde_json::Value>>>;
    async fn put(
        State(map): State<Map>,
        Path((_, _, id)): Path<(String, String, String)>,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::Json<serde_json::Value> {
        map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, body.clone());
        axum::Json(body)
    }
    async fn get_one(
        State(map): State<Map>,
        Path((_, _, id)): Path<(String, String, String)>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let found = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned();
        match found {
            Some(v) => axum::Json(v).into_response(),
            None => axum::http::StatusCode::NOT_FOUND.into_response(),
        }
    }
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a port");
    let addr = listener.local_addr().expect("an address");
    let app = axum::Router::new()
        .route("/health", get(|| async { axum::Json(serde_json::json!({ "status": "ready" })) }))
        .route(BARE_CONNECTION, get(get_one).put(put))
        .with_state(Map::default());
    rt.spawn(async move { axum::serve(listener, app).await });
    serve_until_stdin_closes(&format!("http://{addr}"));
}

// ---- the driver ---------------------------------------------------------------------------

/// A server process in server mode; killed when dropped.
struct Spawned {
    child: Child,
    origin: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pinned(core: &str, program: &Path) -> Command {
    if Path::new("/usr/bin/taskset").exists() {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core).arg(program);
        c
    } else {
        Command::new(program)
    }
}

// A benchmark measures wall time by design; the domain's clock rule is for the mock.
#[allow(clippy::disallowed_methods)]
fn spawn_server(mode: &[&str]) -> Result<(Spawned, Duration), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = pinned("0", &me)
        .args(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", me.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line).map_err(|e| e.to_string())?;
    let origin = line.trim().strip_prefix("READY ").ok_or_else(|| format!("server said {line:?}"))?.to_owned();
    // First answer: the time from spawn to the first 200 of the health route.
    let path = if mode[0] == "serve-mock" { "/_mock/health" } else { "/health" };
    let addr: SocketAddr = origin.trim_start_matches("http://").parse().map_err(|e| format!("{origin}: {e}"))?;
    while started.elapsed() < Duration::from_secs(120) {
        if raw_get(addr, path).is_some_and(|s| s.starts_with("HTTP/1.1 200")) {
            return Ok((Spawned { child, origin }, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(format!("{origin} did not answer {path} within 120 s"))
}

fn raw_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// One HTTP/1.1 request with a body, answered in full (for set-up calls, not measured).
fn raw_request(origin: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Result<String, String> {
    let addr: SocketAddr = origin.trim_start_matches("http://").parse().map_err(|e| format!("{origin}: {e}"))?;
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    s.write_all(format!("{head}\r\n{body}").as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (status, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if !(status.starts_with("HTTP/1.1 2")) {
        return Err(format!("{method} {path}: {}", status.lines().next().unwrap_or("")));
    }
    Ok(rest.to_owned())
}

/// The service principal's token for `scope` (client credentials).
fn token(origin: &str, scope: &str) -> Result<String, String> {
    let form = format!(
        "grant_type=client_credentials&client_id={SP_APP_ID}&client_secret={}&scope={}",
        pct(SP_SECRET),
        pct(scope)
    );
    grant(origin, &form)
}

/// Megan's token (password grant): the seeded connections are hers.
fn user_token(origin: &str) -> Result<String, String> {
    let form = format!(
        "grant_type=password&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&username={}&password={}&scope={}",
        pct("megan@contoso.onmicrosoft.com"),
        pct("Megan-Test-Passw0rd!"),
        pct("https://api.powerplatform.com/.default")
    );
    grant(origin, &form)
}

/// The access token the token endpoint answers `form` with.
fn grant(origin: &str, form: &str) -> Result<String, String> {
    let body = raw_request(
        origin,
        "POST",
        &format!("/{TENANT}/oauth2/v2.0/token"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form,
    )?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("token answer: {e}"))?;
    v["access_token"].as_str().map(str::to_owned).ok_or_else(|| format!("no token in {v}"))
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

fn seed_body() -> String {
    serde_json::json!({
        "properties": {
            "environment": { "id": format!("/providers/Microsoft.PowerApps/environments/{ENV_ID}"), "name": ENV_ID },
            "connectionParametersSet": { "name": "azureRelay", "values": {
                "username": { "value": "CONTOSO\\svc-rpa" },
                "password": { "value": "Contoso-SvcRpa-Passw0rd!" },
                "targetId": { "value": FINANCE } } }
        }
    })
    .to_string()
}

/// What wrk measured.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    rps: f64,
    /// How many requests a counted run completed.
    requests: Option<u64>,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

/// A wrk Lua script sending `method` with `headers` and `body`; `{uuid}` in the path becomes a
/// fresh id per request.
fn lua(method: &str, path: &str, headers: &[(&str, String)], body: Option<&str>) -> String {
    let mut s = String::from("math.randomseed(os.time())\nwrk.method = \"") + method + "\"\n";
    for (k, v) in headers {
        s.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
    }
    if let Some(b) = body {
        s.push_str(&format!("wrk.body = [==[{b}]==]\n"));
    }
    if path.contains("{uuid}") {
        let (before, after) = path.split_once("{uuid}").unwrap_or((path, ""));
        s.push_str(&format!(
            "request = function()\n  local id = string.format('%08x-%04x-4%03x-a%03x-%012x', math.random(0, 0xffffffff), math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff), math.random(0, 0xffffffffffff))\n  return wrk.format(nil, \"{before}\" .. id .. \"{after}\")\nend\n"
        ));
    } else {
        s.push_str(&format!("wrk.path = \"{path}\"\n"));
    }
    s
}

/// `script` limited to `count` requests. wrk has no request count, so its thread stops itself
/// after that many, and `done` prints the exact count and mean latency: wrk keeps 64 requests
/// in flight with no pause between them, so requests/s is 64 / mean latency (Little's law;
/// wrk's own figure would divide by the whole `-d`, idle tail included).
fn counted(script: &str, count: u64) -> String {
    format!(
        "{script}local sent = 0\nlocal make = request or function() return wrk.request() end\nrequest = function()\n  sent = sent + 1\n  if sent > {count} then wrk.thread:stop() end\n  return make()\nend\ndone = function(summary, latency, requests)\n  io.write(string.format(\"counted %d %.3f\\n\", summary.requests, latency.mean))\nend\n"
    )
}

fn wrk(origin: &str, script: &str, o: &Options, dir: &Path, name: &str) -> Result<Figures, String> {
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, script).map_err(|e| e.to_string())?;
    let out = pinned("1", Path::new("/usr/bin/wrk"))
        .args(["-t1", &format!("-c{}", o.connections), &format!("-d{}s", o.duration), "--latency", "-s"])
        .arg(&file)
        .arg(origin)
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()));
    let ms = |v: String| {
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = n.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    // A counted run (`counted`): its rate from the mean latency, and the exact count.
    let counted = field("counted").and_then(|v| {
        let (n, mean_us) = v.split_once(' ')?;
        Some((n.parse::<u64>().ok()?, mean_us.parse::<f64>().ok()?))
    });
    let rps = match counted {
        Some((_, mean_us)) => f64::from(o.connections) * 1e6 / mean_us,
        None => field("Requests/sec:").and_then(|v| v.parse().ok()).ok_or_else(|| format!("wrk said: {text}"))?,
    };
    Ok(Figures {
        rps,
        requests: counted.map(|(n, _)| n),
        p50_ms: field("50%").map_or(f64::NAN, ms),
        p99_ms: field("99%").map_or(f64::NAN, ms),
        non_2xx: field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_figures(rounds: Vec<Figures>) -> Figures {
    Figures {
        rps: median(rounds.iter().map(|f| f.rps).collect()),
        requests: rounds.iter().map(|f| f.requests).sum(),
        p50_ms: median(rounds.iter().map(|f| f.p50_ms).collect()),
        p99_ms: median(rounds.iter().map(|f| f.p99_ms).collect()),
        non_2xx: rounds.iter().map(|f| f.non_2xx).sum(),
    }
}

fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)?.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Phase {
    name: &'static str,
    /// The bare-axum request of the same kind, if any.
    bare: Option<String>,
    mock: String,
}

fn bench(o: &Options) -> Result<(), String> {
    if !Path::new("/usr/bin/wrk").exists() {
        return Err("needs wrk: `apt-get install wrk` (Debian's package)".into());
    }
    let dir = std::env::temp_dir().join(format!("mock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (bare, _) = spawn_server(&["serve-axum"])?;
    let (mock, _) = spawn_server(&["serve-mock", "--no-tls"])?;
    let (bare_url, mock_url) = (bare.origin.clone(), mock.origin.clone());

    let pp = token(&mock_url, "https://api.powerplatform.com/.default")?;
    let dv = token(&mock_url, &format!("https://{ORG}.crm.dynamics.com/.default"))?;
    let body = seed_body();
    let conn = "/connectivity/environments/".to_owned() + ENV_ID + "/connectors/shared_uiflow/connections";
    let fixed = "0b4f0f1e-5d52-4b6c-9d8e-1b2c3d4e5f60";
    let json_h =
        |auth: &str| vec![("Content-Type", "application/json".to_owned()), ("Authorization", format!("Bearer {auth}"))];
    raw_request(
        &mock_url,
        "PUT",
        &format!("{conn}/{fixed}?api-version=1"),
        &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {pp}"))],
        &body,
    )?;
    raw_request(
        &bare_url,
        "PUT",
        &format!("{conn}/{fixed}?api-version=1"),
        &[("Content-Type", "application/json")],
        &body,
    )?;
    let form = format!(
        "grant_type=client_credentials&client_id={SP_APP_ID}&client_secret={}&scope={}",
        pct(SP_SECRET),
        pct("https://api.powerplatform.com/.default")
    );
    let form_h = vec![("Content-Type", "application/x-www-form-urlencoded".to_owned())];
    let filter = "$filter=name%20eq%20%27FIN-01%27&$select=name,_flowmachinegroupid_value";
    // The creates are spread over the rounds: the phase stores `--creates` connections in all.
    let per_round = (o.creates / o.rounds as u64).max(1);
    let phases = [
        Phase {
            name: "static GET",
            bare: Some(lua("GET", "/health", &[], None)),
            mock: lua("GET", "/_mock/health", &[], None),
        },
        Phase {
            name: "token (client credentials)",
            bare: None,
            mock: lua("POST", &format!("/{TENANT}/oauth2/v2.0/token"), &form_h, Some(&form)),
        },
        Phase {
            name: "PUT seed body (update)",
            bare: Some(lua("PUT", &format!("{conn}/{fixed}?api-version=1"), &json_h(&pp), Some(&body))),
            mock: lua("PUT", &format!("{conn}/{fixed}?api-version=1"), &json_h(&pp), Some(&body)),
        },
        Phase {
            name: "GET connection",
            bare: Some(lua("GET", &format!("{conn}/{fixed}?api-version=1"), &json_h(&pp), None)),
            mock: lua("GET", &format!("{conn}/{fixed}?api-version=1"), &json_h(&pp), None),
        },
        Phase {
            name: "list connections",
            bare: None,
            mock: lua(
                "GET",
                &format!("/connectivity/environments/{ENV_ID}/connections?api-version=1"),
                &json_h(&pp),
                None,
            ),
        },
        Phase {
            name: "Dataverse $filter",
            bare: None,
            mock: lua("GET", &format!("/dataverse/{ORG}/api/data/v9.2/flowmachines?{filter}"), &json_h(&dv), None),
        },
        Phase { name: "journal read (last 100)", bare: None, mock: String::new() },
        Phase {
            name: "PUT seed body (create)",
            bare: Some(counted(
                &lua("PUT", &format!("{conn}/{{uuid}}?api-version=1"), &json_h(&pp), Some(&body)),
                per_round,
            )),
            mock: counted(&lua("PUT", &format!("{conn}/{{uuid}}?api-version=1"), &json_h(&pp), Some(&body)), per_round),
        },
    ];

    println!(
        "bench: {} connections, {} s per phase, {} round(s); server on core 0, wrk on core 1",
        o.connections, o.duration, o.rounds
    );
    println!(
        "{:<28} {:>11} {:>9} {:>9} | {:>11} {:>9} {:>9} | {:>6} {:>8} {:>8}  each round's ratio",
        "phase", "mock req/s", "p50 ms", "p99 ms", "axum req/s", "p50 ms", "p99 ms", "ratio", "non-2xx", "RSS MiB"
    );
    // The create phase stores one connection per request, so the RSS after it grows with the
    // number of creates (a fixed count, `--creates`) and the memory each one takes: the peak
    // before it is printed too.
    let mut hwm_before_create = 0;
    let mut stored = 0;
    for (i, p) in phases.iter().enumerate() {
        if p.name.contains("(create)") {
            hwm_before_create = vm_kib(mock.child.id(), "VmHWM:").unwrap_or(0);
        }
        let mock_script = if p.mock.is_empty() {
            // Read the newest 100 entries: a full read of a busy journal measures its size, not the path.
            let since = raw_last_seq(&mock_url).unwrap_or(0).saturating_sub(100);
            lua("GET", &format!("/_mock/journal?since={since}"), &[], None)
        } else {
            p.mock.clone()
        };
        // Rounds alternate between the two servers, so a slow spell of the machine (a
        // neighbour's load) falls on both rather than on one server's rounds.
        let (mut mock_rounds, mut bare_rounds) = (Vec::new(), Vec::new());
        for r in 0..o.rounds {
            mock_rounds.push(wrk(&mock_url, &mock_script, o, &dir, &format!("m{i}-{r}"))?);
            if let Some(s) = &p.bare {
                bare_rounds.push(wrk(&bare_url, s, o, &dir, &format!("b{i}-{r}"))?);
            }
        }
        // The ratio is the median of each round's pair (mock, then bare axum right after it):
        // the machine's speed drifts by 20 % from one minute to the next on a shared VM, and a
        // pair run back to back sees the same speed, where two medians taken apart need not.
        let pairs: Vec<f64> = mock_rounds.iter().zip(&bare_rounds).map(|(m, b)| m.rps / b.rps).collect();
        let each = pairs.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" ");
        let paired = (!pairs.is_empty()).then(|| median(pairs));
        let m = median_figures(mock_rounds);
        let b = (!bare_rounds.is_empty()).then(|| median_figures(bare_rounds));
        let (brps, bp50, bp99, ratio) = match b.zip(paired) {
            Some((b, paired)) => (
                format!("{:.0}", b.rps),
                format!("{:.2}", b.p50_ms),
                format!("{:.2}", b.p99_ms),
                format!("{paired:.2}"),
            ),
            None => ("—".into(), "—".into(), "—".into(), "—".into()),
        };
        if p.name.contains("(create)") {
            // Every create answered 201 stored one (wrk counts non-2xx apart).
            stored = m.requests.unwrap_or(0).saturating_sub(m.non_2xx);
        }
        // The mock's RSS after the phase: where memory goes, phase by phase.
        let rss_after = vm_kib(mock.child.id(), "VmRSS:").unwrap_or(0) as f64 / 1024.0;
        println!(
            "{:<28} {:>11.0} {:>9.2} {:>9.2} | {:>11} {:>9} {:>9} | {:>6} {:>8} {:>8.1}  {each}",
            p.name, m.rps, m.p50_ms, m.p99_ms, brps, bp50, bp99, ratio, m.non_2xx, rss_after
        );
    }
    let mock_pid = mock.child.id();
    let hwm = vm_kib(mock_pid, "VmHWM:").unwrap_or(0);
    let rss = vm_kib(mock_pid, "VmRSS:").unwrap_or(0);
    drop(mock);
    drop(bare);

    let first = |mode: &[&str]| -> Result<f64, String> {
        let times =
            (0..5).map(|_| spawn_server(mode).map(|(_, t)| t.as_secs_f64() * 1000.0)).collect::<Result<Vec<_>, _>>()?;
        Ok(median(times))
    };
    let tls = first(&["serve-mock"])?;
    let plain = first(&["serve-mock", "--no-tls"])?;
    let axum = first(&["serve-axum"])?;
    println!(
        "first answer after spawn (median of 5): mock {tls:.1} ms with TLS, {plain:.1} ms without; bare axum {axum:.1} ms"
    );
    println!(
        "mock peak RSS (VmHWM) {:.1} MiB before the create phase, {:.1} MiB after it ({stored} connections stored); RSS at the end {:.1} MiB",
        hwm_before_create as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    if o.scale {
        scale(o, &dir)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// GET and PUT of one connection among 1 000 and among 1 000 000 stored ones (each in its own
/// server process, seeded through the Rust API), the list at 1 000 only, and RSS after seeding.
fn scale(o: &Options, dir: &Path) -> Result<(), String> {
    println!("scale (its own server per size, seeded through MockServer::default_sandbox().seed_connections):");
    let conn = "/connectivity/environments/".to_owned() + ENV_ID + "/connectors/shared_uiflow/connections";
    for n in [1_000usize, 1_000_000] {
        let (mock, seeded_in) = spawn_server(&["serve-mock", "--no-tls", "--seed", &n.to_string()])?;
        let rss = vm_kib(mock.child.id(), "VmRSS:").unwrap_or(0);
        let token = user_token(&mock.origin)?;
        let auth = vec![("Content-Type", "application/json".to_owned()), ("Authorization", format!("Bearer {token}"))];
        let id = mock_server::control::seeded_connection_id(n / 2);
        let get = lua("GET", &format!("{conn}/{id}?api-version=1"), &auth, None);
        let put = lua("PUT", &format!("{conn}/{id}?api-version=1"), &auth, Some(&seed_body()));
        let g = wrk(&mock.origin, &get, o, dir, &format!("s-get-{n}"))?;
        let p = wrk(&mock.origin, &put, o, dir, &format!("s-put-{n}"))?;
        let line = |what: &str, f: Figures| {
            format!("{what} {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms, non-2xx {})", f.rps, f.p50_ms, f.p99_ms, f.non_2xx)
        };
        print!(
            "  {n:>9} connections: seeded and answering in {:.1} s, RSS {:.1} MiB; {}; {}",
            seeded_in.as_secs_f64(),
            rss as f64 / 1024.0,
            line("GET", g),
            line("PUT", p)
        );
        if n == 1_000 {
            let list =
                lua("GET", &format!("/connectivity/environments/{ENV_ID}/connections?api-version=1"), &auth, None);
            let l = wrk(&mock.origin, &list, o, dir, "s-list")?;
            print!("; {}", line("list", l));
        }
        println!();
    }
    Ok(())
}

/// The highest `seq` in the journal (one full read, outside the measurement).
fn raw_last_seq(origin: &str) -> Option<u64> {
    let all = raw_request(origin, "GET", "/_mock/journal", &[], "").ok()?;
    let v: serde_json::Value = serde_json::from_str(&all).ok()?;
    v["entries"].as_array()?.iter().filter_map(|e| e["seq"].as_u64()).max()
}
