//! Logging set-up for the binary. The library only emits events; it never installs a
//! subscriber (a test or an embedding program chooses its own).

use tracing_subscriber::EnvFilter;

/// Installs a formatting subscriber filtered by `RUST_LOG`, else `default_filter`.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour only for a terminal: a log redirected to a file must stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}
