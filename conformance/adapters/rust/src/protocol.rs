//! Adapter protocol v1 (docs/conformance.md): JSON Lines on stdin and stdout. The runner
//! says hello, the adapter names its capabilities, then each step line gets exactly one
//! outcome line, flushed at once because the runner waits for it. Logs go to stderr only.

use crate::actions::{Outcome, perform};
use crate::client::{Client, Failure};
use crate::decisions::Decisions;
use crate::surfaces::Surfaces;
use serde_json::{Value, json};
use std::io::{BufRead, Write};

/// What this client can do: every capability of the protocol.
pub const CAPABILITIES: [&str; 6] = ["token", "connections", "dataverse", "sharing", "runs", "retry"];

/// Serves the protocol on stdin and stdout with the process environment's surfaces.
pub fn serve_stdio(decisions: Box<dyn Decisions>) -> std::io::Result<()> {
    serve(std::io::stdin().lock(), std::io::stdout().lock(), |name| std::env::var(name).ok(), decisions)
}

/// Serves the protocol: reads lines from `input` until it closes, writes outcomes to
/// `output`. The client is made at the first step (from `var`), so a hello needs no
/// environment, and keeps its state (tokens, runs) until the end of the case.
pub fn serve(
    input: impl BufRead,
    mut output: impl Write,
    var: impl Fn(&str) -> Option<String>,
    decisions: Box<dyn Decisions>,
) -> std::io::Result<()> {
    // One thread is all a client that does one step at a time needs.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut state = State::Fresh(decisions);
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            eprintln!("[rust-adapter] ignored a line that is not JSON");
            continue;
        };
        let answer = match message["type"].as_str() {
            Some("hello") => {
                if message["protocol"] != json!(1) {
                    eprintln!("[rust-adapter] protocol {} asked; this adapter speaks 1", message["protocol"]);
                }
                json!({ "capabilities": CAPABILITIES })
            }
            Some("step") => {
                if let State::Fresh(_) = state {
                    state = state.ready(&var);
                }
                let outcome = match &mut state {
                    State::Ready(client) => runtime.block_on(step(client, &message)),
                    State::Broken(failure) => Outcome::Failed(failure.clone()),
                    State::Fresh(_) => Outcome::Failed(Failure::adapter("the client was not made")),
                };
                outcome_line(&message["id"], outcome)
            }
            _ => continue,
        };
        writeln!(output, "{answer}")?;
        output.flush()?;
    }
    Ok(())
}

/// The client, made at the first step.
enum State {
    Fresh(Box<dyn Decisions>),
    Ready(Box<Client>),
    /// The environment does not describe a usable client: every step says why.
    Broken(Failure),
}

impl State {
    fn ready(self, var: impl Fn(&str) -> Option<String>) -> State {
        match self {
            State::Fresh(decisions) => match Surfaces::from_vars(var).and_then(|s| Client::new(s, decisions)) {
                Ok(client) => State::Ready(Box::new(client)),
                Err(failure) => State::Broken(failure),
            },
            other => other,
        }
    }
}

async fn step(client: &mut Client, message: &Value) -> Outcome {
    let action = message["action"].as_str().unwrap_or_default();
    let args = match &message["args"] {
        Value::Null => json!({}),
        args => args.clone(),
    };
    perform(client, action, args).await
}

fn outcome_line(id: &Value, outcome: Outcome) -> Value {
    let mut line = match outcome {
        Outcome::Done(result) => json!({ "ok": true, "result": result }),
        Outcome::Failed(failure) => failure.to_json(),
        Outcome::Unsupported => json!({ "ok": false, "unsupported": true }),
    };
    line["id"] = id.clone();
    line
}

#[cfg(test)]
mod tests {
    use super::serve;
    use crate::Reference;
    use serde_json::{Value, json};

    /// The outcome lines `serve` writes for these input lines, with no `MOCK_*` variable set.
    fn outcomes(input: &str) -> Vec<Value> {
        let mut output = Vec::new();
        serve(input.as_bytes(), &mut output, |_| None, Box::new(Reference)).expect("serves");
        String::from_utf8_lossy(&output).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    }

    #[test]
    fn hello_names_every_capability_and_other_lines_are_skipped() {
        let lines = outcomes("not json\n\n{\"type\": \"goodbye\"}\n{\"type\": \"hello\", \"protocol\": 1}\n");
        assert_eq!(
            lines,
            [json!({ "capabilities": ["token", "connections", "dataverse", "sharing", "runs", "retry"] })]
        );
    }

    #[test]
    fn each_step_gets_one_outcome_with_its_id_even_without_an_environment() {
        let lines = outcomes(concat!(
            "{\"type\": \"step\", \"id\": \"a\", \"action\": \"listConnections\", \"args\": {}}\n",
            "{\"type\": \"step\", \"id\": 7, \"action\": \"renameEnvironment\"}\n",
        ));
        assert_eq!(lines.len(), 2);
        assert_eq!((&lines[0]["id"], &lines[0]["ok"], &lines[0]["status"]), (&json!("a"), &json!(false), &json!(0)));
        assert_eq!(lines[0]["code"], "AdapterError");
        assert!(lines[0]["message"].as_str().is_some_and(|m| m.contains("MOCK_ENVIRONMENT_ID")), "{}", lines[0]);
        assert_eq!(lines[1]["id"], 7);
    }
}
