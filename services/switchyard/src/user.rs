//! `switchyard user add|remove|passwd|list|sessions|kick`: account management, either
//! against the configured storage directly or, with `--admin-url`, through a running
//! cluster's admin API. Passwords are read from `--password` or, safer, from standard
//! input: at a terminal with a prompt, without echo, asked twice; otherwise one line.
//! A password shorter than `auth.min_password_chars` is refused (here and by the admin
//! API alike).

use crate::config::Config;
use anyhow::Context;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal};
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;
use switchyard_router::fast::{FastPolicy, FastTokens};
use switchyard_storage::{AccountStore, StorageError};

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
    /// List an account's sessions (needs --admin-url).
    Sessions { jid: String },
    /// End one session's stream (a full JID; needs --admin-url).
    Kick { jid: String },
}

/// Where account commands go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The configured database, opened by this process.
    Store,
    /// A running cluster's admin API (`http://host:port`) with its bearer token.
    Admin { url: String, token: String },
}

/// `switchyard migrate`: applies pending PostgreSQL migrations (SQLite migrates itself
/// when opened).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let Some(pg) = crate::wiring::open_postgres(config)? else {
        anyhow::bail!("neither postgres.url nor postgres.host is set; the embedded SQLite store migrates itself");
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

/// Refuses a password shorter than `min_chars` characters.
pub fn check_password(password: &str, min_chars: usize) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < min_chars {
        return Err(format!(
            "the password has {chars} characters; at least {min_chars} are required (auth.min_password_chars)"
        ));
    }
    Ok(())
}

/// The password given, or read from standard input (see the module doc), checked.
fn read_password(config: &Config, password: Option<String>, jid: &Jid) -> anyhow::Result<String> {
    let password = match password {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => {
            let first = prompt(&format!("Password for {jid}: "))?;
            let again = prompt("Again: ")?;
            anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
            first
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    check_password(&password, config.auth.min_password_chars).map_err(anyhow::Error::msg)?;
    Ok(password)
}

/// One line from the terminal with echo off (restored whatever happens).
fn prompt(text: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn echo off")?;
    // Only now: whoever sees the prompt and types at once is not echoed.
    eprint!("{text}");
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("cannot read the password")?;
    restored.context("cannot turn echo back on")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn credentials(
    config: &Config,
    password: Option<String>,
    jid: &Jid,
) -> anyhow::Result<StoredCredentials> {
    StoredCredentials::from_password(
        &read_password(config, password, jid)?,
        config.auth.scram_iterations,
    )
    .map_err(|e| anyhow::anyhow!(e))
}

pub async fn run(config: &Config, action: Action, target: Target) -> anyhow::Result<()> {
    match target {
        Target::Store => run_on_store(config, action).await,
        Target::Admin { url, token } => run_remote(config, action, &url, &token).await,
    }
}

/// Through the admin API; every answer but 2xx is an error carrying the server's reason.
async fn run_remote(config: &Config, action: Action, url: &str, token: &str) -> anyhow::Result<()> {
    use crate::admin_client::segment;
    use serde_json::json;
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| async move {
        let (status, text) =
            crate::admin_client::request(url, method, &path, token, body.as_ref()).await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "admin API answered {status}: {text}"
        );
        Ok::<String, anyhow::Error>(text)
    };
    match action {
        Action::Add { jid, password } => {
            let jid = account(config, &jid)?;
            let body = json!({ "jid": jid.to_string(), "password": read_password(config, password, &jid)? });
            call("POST", "/api/v1/users".into(), Some(body)).await?;
            println!("added {jid}");
        }
        Action::Remove { jid } => {
            let jid = account(config, &jid)?;
            call(
                "DELETE",
                format!("/api/v1/users/{}", segment(&jid.to_string())),
                None,
            )
            .await?;
            println!("removed {jid}");
        }
        Action::Passwd { jid, password } => {
            let jid = account(config, &jid)?;
            let body = json!({ "password": read_password(config, password, &jid)? });
            call(
                "PUT",
                format!("/api/v1/users/{}/password", segment(&jid.to_string())),
                Some(body),
            )
            .await?;
            println!("password changed for {jid}");
        }
        Action::List => {
            let text = call("GET", "/api/v1/users".into(), None).await?;
            let jids: Vec<String> = serde_json::from_str(&text)?;
            for jid in jids {
                println!("{jid}");
            }
        }
        Action::Sessions { jid } => {
            let jid = account(config, &jid)?;
            println!(
                "{}",
                call(
                    "GET",
                    format!("/api/v1/users/{}/sessions", segment(&jid.to_string())),
                    None
                )
                .await?
            );
        }
        Action::Kick { jid } => {
            call(
                "DELETE",
                format!("/api/v1/sessions/{}", segment(&jid)),
                None,
            )
            .await?;
            println!("kicked {jid}");
        }
    }
    Ok(())
}

async fn run_on_store(config: &Config, action: Action) -> anyhow::Result<()> {
    let stores = crate::wiring::open_stores(config).await?;
    let store = stores.accounts;
    match action {
        Action::Add { jid, password } => {
            let jid = account(config, &jid)?;
            store
                .create(&jid, &credentials(config, password, &jid)?)
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
            let tokens = FastTokens {
                documents: &*stores.documents,
                policy: FastPolicy::default(),
            };
            let creds = credentials(config, password, &jid)?;
            change_password(&*store, &tokens, &jid, &creds)
                .await
                .with_context(|| format!("cannot change the password of {jid}"))?;
            println!("password changed for {jid}");
        }
        Action::List => {
            for jid in store.list().await? {
                println!("{jid}");
            }
        }
        Action::Sessions { .. } | Action::Kick { .. } => {
            anyhow::bail!("sessions live in a running server: pass --admin-url and --admin-token")
        }
    }
    Ok(())
}

/// A new password: the credentials replaced, and every XEP-0484 token issued under the
/// old one revoked (a password is changed when a device is lost or a secret leaked).
pub(crate) async fn change_password(
    accounts: &dyn AccountStore,
    tokens: &FastTokens<'_>,
    jid: &Jid,
    creds: &StoredCredentials,
) -> Result<(), StorageError> {
    accounts.set_credentials(jid, creds).await?;
    let revoked = tokens.revoke(jid, None).await?;
    tracing::info!(%jid, revoked, "password changed; FAST tokens revoked");
    Ok(())
}
