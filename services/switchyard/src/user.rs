//! `switchyard user add|remove|passwd|list`: account management against the configured
//! storage. Passwords are read from `--password` or, safer, from standard input.

use crate::config::Config;
use anyhow::Context;
use clap::Subcommand;
use std::io::BufRead;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Create an account (`user@domain`, or a localpart in the first domain).
    Add {
        jid: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete an account.
    Remove { jid: String },
    /// Change an account's password.
    Passwd {
        jid: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// List all accounts.
    List,
}

/// `switchyard migrate`: applies pending PostgreSQL migrations (SQLite migrates itself
/// when opened).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let Some(pg) = crate::wiring::open_postgres(config)? else {
        anyhow::bail!("postgres.url is not set; the embedded SQLite store migrates itself");
    };
    let applied = pg.migrate().await.context("postgres migrations")?;
    println!("applied {applied} migration(s)");
    Ok(())
}

fn account(config: &Config, jid: &str) -> anyhow::Result<Jid> {
    let jid = if jid.contains('@') {
        jid.to_owned()
    } else {
        format!("{jid}@{}", config.domains[0])
    };
    let parsed = Jid::parse(&jid).with_context(|| format!("{jid:?} is not a valid JID"))?;
    anyhow::ensure!(
        parsed.local().is_some() && parsed.is_bare(),
        "{jid:?} must be user@domain"
    );
    anyhow::ensure!(
        config.domains.iter().any(|d| d == parsed.domain()),
        "{} is not a served domain",
        parsed.domain()
    );
    Ok(parsed)
}

fn credentials(config: &Config, password: Option<String>) -> anyhow::Result<StoredCredentials> {
    let password = match password {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    StoredCredentials::from_password(&password, config.auth.scram_iterations)
        .map_err(|e| anyhow::anyhow!(e))
}

pub async fn run(config: &Config, action: Action) -> anyhow::Result<()> {
    let store = crate::wiring::open_stores(config).await?.accounts;
    match action {
        Action::Add { jid, password } => {
            let jid = account(config, &jid)?;
            store
                .create(&jid, &credentials(config, password)?)
                .await
                .with_context(|| format!("cannot add {jid}"))?;
            println!("added {jid}");
        }
        Action::Remove { jid } => {
            let jid = account(config, &jid)?;
            anyhow::ensure!(store.remove(&jid).await?, "no such account: {jid}");
            println!("removed {jid}");
        }
        Action::Passwd { jid, password } => {
            let jid = account(config, &jid)?;
            store
                .set_credentials(&jid, &credentials(config, password)?)
                .await
                .with_context(|| format!("cannot change the password of {jid}"))?;
            println!("password changed for {jid}");
        }
        Action::List => {
            for jid in store.list().await? {
                println!("{jid}");
            }
        }
    }
    Ok(())
}
