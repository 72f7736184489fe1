//! `switchyard user …`: account management, either against the configured storage
//! directly (add, remove, passwd, list) or, with `--admin-url`, through a running
//! cluster's admin API (those and everything that needs the running cluster: sessions,
//! kicks, bans, rosters, offline messages, messages; see [`remote`]). Passwords are read from `--password` or, safer, from standard
//! input: at a terminal with a prompt, without echo, asked twice; otherwise one line.
//! A password shorter than `auth.min_password_chars` is refused (here and by the admin
//! API alike).

mod remote;

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
    /// Whether an account exists, its ban, session and offline counts (needs
    /// --admin-url).
    Show { jid: String },
    /// List an account's sessions (needs --admin-url).
    Sessions { jid: String },
    /// End one session's stream (a full JID) or every session of an account (a bare
    /// JID); needs --admin-url.
    Kick { jid: String },
    /// Ban an account: its sessions end and it cannot log in until unbanned (needs
    /// --admin-url).
    Ban {
        jid: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a ban (needs --admin-url).
    Unban { jid: String },
    /// Show an account's roster (needs --admin-url).
    Roster { jid: String },
    /// Add or change a roster item of an account, pushed to its clients (needs
    /// --admin-url).
    RosterAdd {
        jid: String,
        contact: String,
        #[arg(long)]
        name: Option<String>,
        /// A group (repeat for several).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Set the subscription state directly: none, to, from or both.
        #[arg(long)]
        subscription: Option<String>,
    },
    /// Remove a roster item of an account (subscriptions cancelled both ways; needs
    /// --admin-url).
    RosterRemove { jid: String, contact: String },
    /// Count an account's offline messages, or delete them with --purge (needs
    /// --admin-url).
    Offline {
        jid: String,
        #[arg(long)]
        purge: bool,
    },
    /// Send a message from the server to a user (stored offline if the user is not
    /// online; needs --admin-url).
    Message {
        jid: String,
        #[arg(long)]
        body: String,
        #[arg(long)]
        subject: Option<String>,
    },
    /// List the sessions online in the whole cluster (needs --admin-url).
    Online {
        /// Only this served domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Send a headline to every session online (in one domain with --domain; needs
    /// --admin-url).
    Announce {
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        body: String,
        #[arg(long)]
        subject: Option<String>,
    },
}

/// Where account commands go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The configured database, opened by this process.
    Store,
    /// A running cluster's admin API (`http://host:port`) with its bearer token.
    Admin { url: String, token: String },
}

/// `switchyard migrate`: creates the schema if it does not exist, then applies pending
/// PostgreSQL migrations (SQLite migrates itself when opened).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let Some(pg) = crate::wiring::open_postgres(config)? else {
        anyhow::bail!("neither postgres.url nor postgres.host is set; the embedded SQLite store migrates itself");
    };
    if let Some(schema) = pg.ensure_schema().await.context("postgres schema")? {
        println!("created schema {schema}");
    }
    let applied = pg.migrate().await.context("postgres migrations")?;
    println!("applied {applied} migration(s)");
    Ok(())
}

pub(crate) fn account(config: &Config, jid: &str) -> anyhow::Result<Jid> {
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
pub(crate) fn read_password(
    config: &Config,
    password: Option<String>,
    jid: &Jid,
) -> anyhow::Result<String> {
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
        Target::Admin { url, token } => {
            remote::run(config, action, &remote::Api::new(&url, &token)).await
        }
    }
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
            eprintln!("note: sessions a running server holds for {jid} go on until they end; remove with --admin-url to end them, or kick them: user kick {jid} --admin-url …");
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
        _ => anyhow::bail!("this needs the running server: pass --admin-url and --admin-token"),
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
