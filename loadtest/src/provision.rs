//! `provision`: bulk test accounts written straight into a Switchyard data directory
//! through the storage layer (`SqliteStore` + `AccountStore::create`), or into a cluster's
//! PostgreSQL schema (`PgStore`, `--postgres URL --schema S`), not one process per user. PBKDF2 runs once: every account gets the same stored credential, so **all
//! test accounts share one salt** (harmless for load tests, never for real users). Run it
//! with the server stopped (or before its first start); existing accounts are skipped.
//! `--hub-contacts N` also makes users 1..=N contacts of user 0, subscribed both ways
//! (RFC 6121 §3 `both`, listed), for the `fanout` scenario.

use crate::cli::ProvisionArgs;
use anyhow::Context;
use std::time::Instant;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;
use switchyard_storage::{
    AccountStore, PgStore, RosterItem, RosterStore, SqliteStore, StorageError, Subscription,
};

/// Accounts created and skipped (already there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    pub created: usize,
    pub existing: usize,
}

pub async fn run(args: &ProvisionArgs) -> anyhow::Result<Provisioned> {
    if let Some(url) = &args.postgres {
        let store = PgStore::connect(
            &switchyard_storage::PgTarget::url(url),
            args.schema.as_deref(),
            8,
        )
        .with_context(|| format!("cannot connect to {url}"))?;
        store.migrate().await.context("postgres migration failed")?;
        return create_all(&store, args).await;
    }
    let Some(data_dir) = &args.data_dir else {
        anyhow::bail!("--data-dir or --postgres is required");
    };
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("switchyard.db");
    let store =
        SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    create_all(&store, args).await
}

async fn create_all(
    store: &(impl AccountStore + RosterStore),
    args: &ProvisionArgs,
) -> anyhow::Result<Provisioned> {
    let started = Instant::now();
    let accounts = &args.accounts;
    let creds = StoredCredentials::from_password(&accounts.password, args.iterations)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut done = Provisioned {
        created: 0,
        existing: 0,
    };
    for i in 0..accounts.users {
        let local = accounts.username(i);
        let jid = Jid::bare_from(&local, &accounts.domain)
            .with_context(|| format!("{local}@{} is not a valid JID", accounts.domain))?;
        match store.create(&jid, &creds).await {
            Ok(()) => done.created += 1,
            Err(StorageError::AlreadyExists) => done.existing += 1,
            Err(e) => return Err(e).context("account write failed"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} accounts created, {} already there, in {secs:.2} s ({:.0}/s); all share one salt",
        done.created,
        done.existing,
        accounts.users as f64 / secs
    );
    if args.hub_contacts > 0 {
        subscribe_hub(store, args).await?;
    }
    Ok(done)
}

/// Users 1..=N and user 0 in each other's rosters, `both`.
async fn subscribe_hub(store: &impl RosterStore, args: &ProvisionArgs) -> anyhow::Result<()> {
    let accounts = &args.accounts;
    anyhow::ensure!(
        args.hub_contacts < accounts.users,
        "--hub-contacts must be below --users (user 0 is the hub)"
    );
    let jid = |i: usize| {
        let local = accounts.username(i);
        Jid::bare_from(&local, &accounts.domain)
            .with_context(|| format!("{local}@{} is not a valid JID", accounts.domain))
    };
    let hub = jid(0)?;
    for i in 1..=args.hub_contacts {
        let contact = jid(i)?;
        for (account, other) in [(&hub, &contact), (&contact, &hub)] {
            let row = RosterItem {
                subscription: Subscription::Both,
                listed: true,
                ..RosterItem::new(other.clone())
            };
            store
                .update(account, other, Box::new(move |_| Some(row)))
                .await
                .context("roster write failed")?;
        }
    }
    eprintln!(
        "{} contacts of {hub}, subscribed both ways",
        args.hub_contacts
    );
    Ok(())
}
