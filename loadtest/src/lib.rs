//! Switchyard's load generator: simulated XMPP clients built on `switchyard-core` (the
//! framer, element tree and SCRAM client), scenarios that drive them, and bulk account
//! creation. The binary in `main.rs` is a thin CLI over [`execute`]; tests call the same.

pub mod cli;
pub mod client;
pub mod procstat;
pub mod progress;
pub mod provision;
pub mod register;
pub mod report;
pub mod run;
pub mod stats;

use cli::Command;
use report::Report;
use tokio_util::sync::CancellationToken;

/// Runs one scenario; `cancel` (Ctrl-C) ends it early with a report of what was done.
pub async fn execute(command: Command, cancel: CancellationToken) -> anyhow::Result<Report> {
    match command {
        Command::Idle(a) => run::idle::run(a, cancel).await,
        Command::Chat(a) => run::chat::run(a, cancel).await,
        Command::LoginStorm(a) => run::storm::run(a, cancel).await,
        Command::ResumeStorm(a) => run::resume::run(a, cancel).await,
        Command::Churn(a) => run::churn::run(a, cancel).await,
        Command::Fanout(a) => run::fanout::run(a, cancel).await,
        Command::Provision(_) | Command::Register(_) => {
            anyhow::bail!("provision and register are not scenarios")
        }
    }
}
