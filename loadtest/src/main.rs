//! `switchyard-loadtest`: parses the command line, runs one scenario or account command,
//! prints the report. The first Ctrl-C ends the run gracefully (a report is still
//! printed); a second one exits at once.

use clap::Parser;
use switchyard_loadtest::cli::{Cli, Command};
use switchyard_loadtest::{execute, provision, register};
use tokio_util::sync::CancellationToken;

fn json_of(command: &Command) -> bool {
    match command {
        Command::Idle(a) => a.output.json,
        Command::Chat(a) => a.output.json,
        Command::LoginStorm(a) => a.output.json,
        Command::ResumeStorm(a) => a.output.json,
        Command::Churn(a) => a.output.json,
        Command::Fanout(a) => a.output.json,
        Command::Provision(_) | Command::Register(_) => false,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing (Ctrl-C again to exit now)");
            on_signal.cancel();
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    match cli.command {
        Command::Provision(args) => provision::run(&args).await.map(|_| ()),
        Command::Register(args) => register::run(args).await.map(|_| ()),
        command => {
            let json = json_of(&command);
            execute(command, cancel).await?.print(json)
        }
    }
}
