//! `conformance-adapter`: the Rust reference client as an adapter process (protocol v1 on
//! stdin and stdout; docs/conformance.md). Run it with the runner's `--adapter`.

fn main() -> std::process::ExitCode {
    match conformance_adapter::serve_stdio(Box::new(conformance_adapter::Reference)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[rust-adapter] stdin or stdout failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
