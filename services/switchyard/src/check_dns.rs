//! `switchyard check dns DOMAIN`: the DNS records a client and a server would use to
//! reach DOMAIN, and whether they lead here.
//!
//! - Clients: `_xmpp-client._tcp` SRV (RFC 6120 §3.2.1; STARTTLS on `listen.c2s`), else
//!   the domain's own A/AAAA on port 5222 (§3.2.2); `_xmpps-client._tcp` SRV (XEP-0368,
//!   direct TLS on `listen.c2s_direct_tls`; no fallback).
//! - Servers: `_xmpp-server._tcp` and `_xmpps-server._tcp` SRV (RFC 6120 §3.2.1,
//!   XEP-0368). Switchyard has no server-to-server listener, so records there point at
//!   something else or at nothing useful; they are shown, not judged.
//! - A target of `.` means the service is decidedly not offered (RFC 2782).
//!
//! The whole check ends within [`DEADLINE`]; at most [`MAX_TARGETS`] targets of each
//! record are looked up, each host once. A target that cannot be looked up is reported
//! as such and the rest goes on.
//!
//! "Here" is any of `--address` (a load balancer's public addresses), or, without it, any
//! address of this host's interfaces. A client record is right when some target resolves
//! here and its port is the port the matching listener binds.

use crate::config::Config;
use anyhow::Context;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

/// The port clients use without an SRV record (RFC 6120 §3.2.2).
const FALLBACK_PORT: u16 = 5222;

/// The longest the whole check may take.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

/// SRV targets looked up per record (the rest are counted, not resolved).
const MAX_TARGETS: usize = 16;

/// One SRV target, resolved (or why not).
struct Target {
    host: String,
    port: u16,
    addrs: Vec<IpAddr>,
    failed: Option<String>,
}

/// The resolver and the hosts already looked up.
struct Lookups {
    resolver: TokioResolver,
    seen: std::collections::HashMap<String, Result<Vec<IpAddr>, String>>,
}

pub async fn check_dns(
    config: &Config,
    domain: &str,
    resolver: Option<SocketAddr>,
    addresses: Vec<IpAddr>,
) -> anyhow::Result<bool> {
    let name = switchyard_core::Jid::parse(domain.trim_end_matches('.'))
        .ok()
        .filter(|j| j.local().is_none() && j.is_bare() && j.domain().parse::<IpAddr>().is_err())
        .with_context(|| format!("{domain:?} is not a domain name"))?;
    let mut lookups = Lookups {
        resolver: open(resolver)?,
        seen: std::collections::HashMap::new(),
    };
    let checked = check(config, name.domain(), &mut lookups, addresses);
    tokio::time::timeout(DEADLINE, checked)
        .await
        .with_context(|| format!("the DNS check did not end within {} s", DEADLINE.as_secs()))?
}

async fn check(
    config: &Config,
    domain: &str,
    lookups: &mut Lookups,
    addresses: Vec<IpAddr>,
) -> anyhow::Result<bool> {
    let here: BTreeSet<IpAddr> = match addresses.is_empty() {
        false => addresses.into_iter().collect(),
        true => local_addresses()?,
    };
    let shown: Vec<String> = here.iter().map(IpAddr::to_string).collect();
    println!("here: {}", shown.join(", "));
    let c2s = listen_port(&config.listen.c2s);
    let direct = listen_port(&config.listen.c2s_direct_tls);
    let mut right = true;

    let starttls = lookups.srv(&format!("_xmpp-client._tcp.{domain}.")).await?;
    right &= match starttls {
        Some(targets) => judge("_xmpp-client._tcp", &targets, &here, c2s),
        None => {
            let fallback = [lookups.target(domain, FALLBACK_PORT).await];
            println!(
                "_xmpp-client._tcp.{domain}: no SRV; clients use {domain} port {FALLBACK_PORT}: {}",
                list(&fallback[0])
            );
            judge("the fallback", &fallback, &here, c2s)
        }
    };
    match lookups
        .srv(&format!("_xmpps-client._tcp.{domain}."))
        .await?
    {
        Some(targets) => right &= judge("_xmpps-client._tcp", &targets, &here, direct),
        None => {
            println!("_xmpps-client._tcp.{domain}: no SRV (no direct TLS for clients, XEP-0368)")
        }
    }
    for service in ["_xmpp-server._tcp", "_xmpps-server._tcp"] {
        match lookups.srv(&format!("{service}.{domain}.")).await? {
            Some(targets) => {
                for t in &targets {
                    println!(
                        "{service}.{domain}: {} port {}: {}",
                        t.host,
                        t.port,
                        list(t)
                    );
                }
            }
            None => println!("{service}.{domain}: no SRV"),
        }
    }
    println!(
        "federation: Switchyard has no server-to-server listener; server records are shown only"
    );
    println!(
        "{}",
        if right {
            "client records point here"
        } else {
            "client records do NOT all point here"
        }
    );
    Ok(right)
}

fn open(at: Option<SocketAddr>) -> anyhow::Result<TokioResolver> {
    let builder = match at {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            let config = ResolverConfig::from_name_servers(vec![server]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => TokioResolver::builder_tokio()
            .context("cannot read the system's resolver configuration")?,
    };
    builder.build().context("cannot start a DNS resolver")
}

impl Lookups {
    /// The SRV targets (resolved, at most [`MAX_TARGETS`]), or `None` when there is no
    /// such record; an SRV lookup that fails ends the check (nothing can be judged).
    async fn srv(&mut self, name: &str) -> anyhow::Result<Option<Vec<Target>>> {
        let lookup = match self.resolver.srv_lookup(name).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(None),
            Err(e) => anyhow::bail!("looking up {name}: {e}"),
        };
        let mut records: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(srv.clone()),
                _ => None,
            })
            .collect();
        records.sort_by_key(|s| (s.priority, std::cmp::Reverse(s.weight)));
        if records.len() > MAX_TARGETS {
            let more = records.len() - MAX_TARGETS;
            println!("{name}: {} targets; the first {MAX_TARGETS} by priority are looked up, {more} are not", records.len());
            records.truncate(MAX_TARGETS);
        }
        let mut targets = Vec::new();
        for record in records {
            targets.push(self.target(&record.target.to_string(), record.port).await);
        }
        Ok(Some(targets))
    }

    /// `host`'s addresses (each host looked up once); `.` has none.
    async fn target(&mut self, host: &str, port: u16) -> Target {
        let found = match self.seen.get(host) {
            Some(found) => found.clone(),
            None if host == "." => Ok(Vec::new()),
            None if host.trim_end_matches('.').parse::<IpAddr>().is_ok() => {
                Err("an IP address, not a host name (RFC 2782)".to_owned())
            }
            None => {
                let found = match self.resolver.lookup_ip(host).await {
                    Ok(found) => Ok(found.iter().collect()),
                    Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
                    Err(e) => Err(format!("lookup failed: {e}")),
                };
                self.seen.insert(host.to_owned(), found.clone());
                found
            }
        };
        let (addrs, failed) = match found {
            Ok(addrs) => (addrs, None),
            Err(why) => (Vec::new(), Some(why)),
        };
        Target {
            host: host.to_owned(),
            port,
            addrs,
            failed,
        }
    }
}

/// Prints each target with its verdict; whether one of them leads here on `port`.
fn judge(what: &str, targets: &[Target], here: &BTreeSet<IpAddr>, port: Option<u16>) -> bool {
    let mut any = false;
    for t in targets {
        let home = t.addrs.iter().any(|a| here.contains(a));
        let port_ok = port == Some(t.port);
        let verdict = match (t.host.as_str(), home, port_ok) {
            (".", _, _) => "the service is declared not offered".to_owned(),
            (_, true, true) => "points here".to_owned(),
            (_, true, false) => match port {
                Some(p) => format!("resolves here but the listener is on port {p}"),
                None => "resolves here but that listener is off".to_owned(),
            },
            (_, false, _) => "does not resolve here".to_owned(),
        };
        println!(
            "{what}: {} port {}: {} — {verdict}",
            t.host,
            t.port,
            list(t)
        );
        any |= home && port_ok;
    }
    any
}

fn list(target: &Target) -> String {
    match (&target.failed, target.addrs.is_empty()) {
        (Some(why), _) => why.clone(),
        (None, true) => "no address".to_owned(),
        (None, false) => target
            .addrs
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The port a listener binds (`None` when it is off).
fn listen_port(listen: &str) -> Option<u16> {
    listen.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Every address of this host's interfaces.
fn local_addresses() -> anyhow::Result<BTreeSet<IpAddr>> {
    let found = nix::ifaddrs::getifaddrs().context("cannot list this host's addresses")?;
    Ok(found
        .filter_map(|i| i.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect())
}
