//! Log set-up: human-readable text or one JSON object per line, filtered by `RUST_LOG`
//! (default `info`), on standard error; standard output carries only the
//! `switchyard: listening KIND ADDR` lines. Log lines never carry passwords or message
//! bodies.

use tracing_subscriber::EnvFilter;

pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
