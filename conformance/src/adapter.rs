//! One adapter process per case (conformance.md, protocol version 1): `sh -c CMD` with the
//! case's environment, JSON Lines on stdin and stdout — the runner's `hello`, the adapter's
//! `capabilities`, then one `step` and one outcome per client step — stderr kept for the
//! report, stdin closed after the last step.

use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The protocol version this runner speaks.
pub const PROTOCOL: u64 = 1;

/// How much of an adapter's stderr a report keeps (its end).
const STDERR_KEPT: usize = 16 * 1024;

/// How long an adapter may take to exit once its stdin is closed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A running adapter.
#[derive(Debug)]
pub struct Adapter {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
}

/// The environment variables the protocol defines: every inherited `MOCK_*` variable is
/// removed first, so a case's adapter sees only what the case uses.
pub type Environment = Vec<(String, String)>;

impl Adapter {
    /// Starts `sh -c command` in the current directory.
    pub fn spawn(command: &str, env: &Environment) -> Result<Self, String> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command);
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("MOCK_")) {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        // Its own process group, so that an adapter that hangs is ended with every process
        // `sh -c` started for it, not only the shell.
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start `sh -c {command}`: {e}"))?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the adapter's pipes were not opened".into());
        };
        let stderr = tokio::spawn(async move {
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
            if kept.len() > STDERR_KEPT {
                kept.drain(..kept.len() - STDERR_KEPT);
            }
            String::from_utf8_lossy(&kept).into_owned()
        });
        Ok(Self { child, stdin: Some(stdin), stdout: BufReader::new(stdout).lines(), stderr })
    }

    /// Says hello and reads the capabilities the adapter declares.
    pub async fn hello(&mut self, timeout: Duration) -> Result<Vec<String>, String> {
        self.send(&json!({ "type": "hello", "protocol": PROTOCOL })).await?;
        let answer = self.receive(timeout, "the capabilities line").await?;
        let list = answer
            .get("capabilities")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("the adapter answered hello with {answer}, not {{\"capabilities\": [...]}}"))?;
        Ok(list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    }

    /// Sends one step and reads its outcome line (its `id` must be the step's).
    pub async fn step(&mut self, id: u64, action: &str, args: &Value, timeout: Duration) -> Result<Value, String> {
        self.send(&json!({ "type": "step", "id": id, "action": action, "args": args })).await?;
        let outcome = self.receive(timeout, &format!("the outcome of step {id} ({action})")).await?;
        if outcome.get("id") != Some(&json!(id)) {
            return Err(format!("the outcome {outcome} does not carry the step's id {id}"));
        }
        if !outcome.get("ok").is_some_and(Value::is_boolean) {
            return Err(format!("the outcome {outcome} has no boolean 'ok'"));
        }
        Ok(outcome)
    }

    /// Closes stdin, waits briefly for the adapter to exit (then kills it), and returns what
    /// it wrote on stderr.
    pub async fn finish(mut self) -> String {
        drop(self.stdin.take());
        if tokio::time::timeout(EXIT_GRACE, self.child.wait()).await.is_err() {
            if let Some(group) = self.child.id() {
                let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status().await;
            }
            let _ = self.child.kill().await;
        }
        match tokio::time::timeout(EXIT_GRACE, &mut self.stderr).await {
            Ok(Ok(s)) => s,
            _ => {
                self.stderr.abort();
                String::new()
            }
        }
    }

    async fn send(&mut self, line: &Value) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("the adapter's stdin is closed")?;
        let mut text = line.to_string();
        text.push('\n');
        stdin.write_all(text.as_bytes()).await.map_err(|e| format!("the adapter stopped reading its stdin: {e}"))?;
        stdin.flush().await.map_err(|e| format!("the adapter stopped reading its stdin: {e}"))
    }

    async fn receive(&mut self, timeout: Duration, what: &str) -> Result<Value, String> {
        let read = async {
            loop {
                match self.stdout.next_line().await {
                    Ok(Some(line)) if line.trim().is_empty() => continue,
                    Ok(Some(line)) => {
                        return serde_json::from_str::<Value>(&line).ok().filter(Value::is_object).ok_or_else(|| {
                            format!("the adapter wrote a line that is not a JSON object: {}", clip(&line))
                        });
                    }
                    Ok(None) => {
                        let status = self.child.try_wait().ok().flatten();
                        return Err(format!(
                            "the adapter closed its stdout before {what}{}",
                            status.map(|s| format!(" (it exited: {s})")).unwrap_or_default()
                        ));
                    }
                    Err(e) => return Err(format!("reading the adapter's stdout: {e}")),
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| format!("no answer within {} s: waited for {what}", timeout.as_secs_f64()))?
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 300 { format!("{}…", s.chars().take(300).collect::<String>()) } else { s.to_owned() }
}
