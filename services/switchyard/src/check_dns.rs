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

/// One SRV target, resolved.
struct Target {
    host: String,
    port: u16,
    addrs: Vec<IpAddr>,
}

pub async fn check_dns(
    config: &Config,
    domain: &str,
    resolver: Option<SocketAddr>,
    addresses: Vec<IpAddr>,
) -> anyhow::Result<bool> {
    let resolver = open(resolver)?;
    let here: BTreeSet<IpAddr> = match addresses.is_empty() {
        false => addresses.into_iter().collect(),
        true => local_addresses()?,
    };
    let shown: Vec<String> = here.iter().map(IpAddr::to_string).collect();
    println!("here: {}", shown.join(", "));
    let domain = domain.trim_end_matches('.');
    let c2s = listen_port(&config.listen.c2s);
    let direct = listen_port(&config.listen.c2s_direct_tls);
    let mut right = true;

    let starttls = srv(&resolver, &format!("_xmpp-client._tcp.{domain}.")).await?;
    right &= match starttls {
        Some(targets) => judge("_xmpp-client._tcp", &targets, &here, c2s),
        None => {
            let addrs = ips(&resolver, domain).await?;
            println!(
                "_xmpp-client._tcp.{domain}: no SRV; clients use {domain} port {FALLBACK_PORT}: {}",
                list(&addrs)
            );
            let fallback = [Target {
                host: domain.to_owned(),
                port: FALLBACK_PORT,
                addrs,
            }];
            judge("the fallback", &fallback, &here, c2s)
        }
    };
    match srv(&resolver, &format!("_xmpps-client._tcp.{domain}.")).await? {
        Some(targets) => right &= judge("_xmpps-client._tcp", &targets, &here, direct),
        None => {
            println!("_xmpps-client._tcp.{domain}: no SRV (no direct TLS for clients, XEP-0368)")
        }
    }
    for service in ["_xmpp-server._tcp", "_xmpps-server._tcp"] {
        match srv(&resolver, &format!("{service}.{domain}.")).await? {
            Some(targets) => {
                for t in &targets {
                    println!(
                        "{service}.{domain}: {} port {}: {}",
                        t.host,
                        t.port,
                        list(&t.addrs)
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

/// The SRV targets (resolved), or `None` when there is no such record.
async fn srv(resolver: &TokioResolver, name: &str) -> anyhow::Result<Option<Vec<Target>>> {
    let lookup = match resolver.srv_lookup(name).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("looking up {name}")),
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
    let mut targets = Vec::new();
    for record in records {
        let host = record.target.to_string();
        let addrs = match host.as_str() {
            "." => Vec::new(),
            _ => ips(resolver, &host).await?,
        };
        targets.push(Target {
            host,
            port: record.port,
            addrs,
        });
    }
    Ok(Some(targets))
}

async fn ips(resolver: &TokioResolver, host: &str) -> anyhow::Result<Vec<IpAddr>> {
    match resolver.lookup_ip(host).await {
        Ok(found) => Ok(found.iter().collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("looking up {host}")),
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
            list(&t.addrs)
        );
        any |= home && port_ok;
    }
    any
}

fn list(addrs: &[IpAddr]) -> String {
    match addrs.is_empty() {
        true => "no address".to_owned(),
        false => addrs
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
