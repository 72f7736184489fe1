//! `switchyard`: the one binary. `serve` runs the roles, `user` manages accounts,
//! `check-config` validates configuration without starting anything, `gen-cluster-certs`
//! writes development certificates for the edge-router link.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use switchyard::config::{redact, Config};

/// jemalloc: measured side by side (README, performance) it takes about 7 % off the
/// server's CPU per chat message, costs nothing on a 1,000-contact presence burst (where
/// mimalloc cost 70 % more, zeroing huge pages on every burst) and about 0.35 KiB per idle
/// session, and it keeps a long-running process's heap from fragmenting as glibc's arenas do.
/// Its background threads are on (`background_threads`): without them an idle server never
/// returns freed pages, so RSS after a reconnect storm or thousands of sessions detaching
/// stays at its peak; with them, pages unused for about 10 s go back to the system.
/// `_RJEM_MALLOC_CONF` overrides this at run time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about = "Clustered XMPP server")]
struct Cli {
    /// Configuration file (TOML); `SWITCHYARD_*` variables override it.
    #[arg(long, short, global = true, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Roles to run in this process (comma-separated: edge, router).
        #[arg(long, default_value = "edge,router", value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: switchyard::user::Action,
        /// Manage a running cluster through its admin API (`http://host:9400`) instead
        /// of opening the database.
        #[arg(long, env = "SWITCHYARD_ADMIN_URL")]
        admin_url: Option<String>,
        /// Bearer token of the admin API.
        #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", default_value = "")]
        admin_token: String,
    },
    /// Apply pending PostgreSQL schema migrations.
    Migrate,
    /// Write every account of the served domains (or of one) to FILE in XEP-0227 format:
    /// SCRAM keys (never passwords), rosters, vCards, private XML, offline messages.
    Export {
        /// Where to write (mode 0600); `-` for standard output.
        file: PathBuf,
        /// Only this served domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Read accounts from an XEP-0227 file (an export of Switchyard, Prosody or ejabberd)
    /// into the configured storage. Users of domains not served are skipped; existing
    /// accounts too, unless --merge.
    Import {
        file: PathBuf,
        /// Add the data of users whose account exists (their password stays).
        #[arg(long)]
        merge: bool,
    },
    /// Ask the local process's admin listener whether it is live (`/healthz`; with
    /// `--ready`, `/readyz`): exit 0 if so, 1 if not. A container health check with no
    /// curl in the image.
    Health {
        #[arg(long)]
        ready: bool,
    },
    /// Validate the configuration and print the effective values.
    CheckConfig,
    /// Checks against the world outside the process.
    Check {
        #[command(subcommand)]
        what: Check,
    },
    /// Write a development CA and certificates for the edge-router link's mutual TLS into
    /// DIR: `ca.pem`, `ca-key.pem`, and `NAME.pem` + `NAME-key.pem` per NAME (the
    /// certificate's DNS name). Existing files are kept; missing leaves are signed by the
    /// CA already there.
    GenClusterCerts {
        dir: PathBuf,
        /// Default: `switchyard-router` (the default cluster.tls_server_name) and
        /// `switchyard-edge`.
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Check {
    /// Print the SRV and A/AAAA records clients and servers use to reach DOMAIN and
    /// whether the client records lead to this server's listeners (exit 1 if not).
    Dns {
        domain: String,
        /// Ask this DNS server (`IP:PORT`) instead of the system's resolvers.
        #[arg(long)]
        resolver: Option<std::net::SocketAddr>,
        /// An address that counts as this server (a load balancer's public address;
        /// repeat for several). Default: the addresses of this host's interfaces.
        #[arg(long = "address")]
        addresses: Vec<std::net::IpAddr>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "switchyard: configuration error: {}",
                redact(&format!("{e:#}"))
            );
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchyard: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { roles } => {
                let _flush_on_exit = switchyard::serve::init_telemetry(&config, &roles)?;
                switchyard::serve::run(config, &roles).await
            }
            Command::User {
                action,
                admin_url,
                admin_token,
            } => {
                let target = match admin_url {
                    Some(url) => switchyard::user::Target::Admin {
                        url,
                        token: admin_token,
                    },
                    None => switchyard::user::Target::Store,
                };
                switchyard::user::run(&config, action, target).await
            }
            Command::Migrate => switchyard::user::migrate(&config).await,
            Command::Export { file, domain } => {
                let domains = match domain {
                    None => config.domains.clone(),
                    Some(d) => {
                        let served = switchyard_core::Jid::parse(&d)
                            .ok()
                            .filter(|j| j.local().is_none() && j.is_bare())
                            .map(|j| j.domain().to_owned())
                            .filter(|j| config.domains.contains(j));
                        vec![served.with_context(|| format!("{d} is not a served domain"))?]
                    }
                };
                let stores = switchyard::wiring::open_stores(&config).await?;
                let written = switchyard::pie::export_to(&stores, &domains, &file).await?;
                eprintln!(
                    "exported {} account(s); {} stored item(s) unreadable and left out",
                    written.users, written.unreadable
                );
                Ok(())
            }
            Command::Import { file, merge } => {
                let stores = switchyard::wiring::open_stores(&config).await?;
                let options = switchyard::pie::ImportOptions {
                    limits: switchyard::wiring::router_config(&config),
                    max_vcard_bytes: config.limits.max_stanza_bytes,
                    scram_iterations: config.auth.scram_iterations,
                    merge,
                };
                let done = switchyard::pie::import(&stores, &file, &options).await?;
                print!("{done}");
                Ok(())
            }
            Command::Health { ready } => switchyard::admin_client::health(&config, ready).await,
            Command::GenClusterCerts { dir, mut names } => {
                if names.is_empty() {
                    names = vec!["switchyard-router".into(), "switchyard-edge".into()];
                }
                for file in switchyard_rpc::tls::generate_cluster_certs(&dir, &names)? {
                    println!("wrote {}", file.display());
                }
                Ok(())
            }
            Command::Check {
                what:
                    Check::Dns {
                        domain,
                        resolver,
                        addresses,
                    },
            } => {
                let right =
                    switchyard::check_dns::check_dns(&config, &domain, resolver, addresses).await?;
                anyhow::ensure!(right, "the client records of {domain} do not lead here");
                Ok(())
            }
            Command::CheckConfig => {
                print!("{}", toml::to_string_pretty(&config.redacted())?);
                // What can be checked without starting: the client certificate loads,
                // names every served domain and is within its validity.
                if !config.tls.cert_path.is_empty() {
                    switchyard_edge::check_tls(
                        std::path::Path::new(&config.tls.cert_path),
                        std::path::Path::new(&config.tls.key_path),
                        &config.domains,
                    )
                    .map_err(|e| anyhow::anyhow!("tls: {e}"))?;
                }
                eprintln!("configuration is valid");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Errors may quote a connection string (a driver's message, an endpoint).
            eprintln!("switchyard: {}", redact(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}
