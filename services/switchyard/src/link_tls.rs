//! The edge↔router link's security at start-up (`cluster.tls*`): mutual TLS with the
//! cluster certificates, watched for changes, or plaintext for development, only where
//! the link cannot leave the machine unless `cluster.insecure_plaintext` says so.
//!
//! The rule, per role (the all-in-one mode has no link and skips all of it):
//! - `cluster.tls = true` (default): the three files are required; a router serves only
//!   TLS, an edge connects only with TLS.
//! - `cluster.tls = false`: a router whose `rpc_listen` is not a loopback address, or an
//!   edge with a router address that is not (`localhost` or a loopback IP), refuses to
//!   start unless `cluster.insecure_plaintext = true`, and then warns.

use crate::config::Config;
use crate::serve::Roles;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_rpc::tls::{ClusterTls, TlsFiles};
use tokio_util::sync::CancellationToken;

/// The cluster certificates for `role` (`Edge` or `Router`), watched until `shutdown`;
/// `None` when `cluster.tls = false` and that is allowed here.
pub fn open(
    config: &Config,
    role: Roles,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<Arc<ClusterTls>>> {
    let c = &config.cluster;
    let role_name = match role {
        Roles::Router => "router",
        _ => "edge",
    };
    if !c.tls {
        check_plaintext(config, role)?;
        tracing::warn!(
            role = role_name,
            "cluster.tls = false: the edge-router link is plaintext (development only)"
        );
        return Ok(None);
    }
    anyhow::ensure!(
        !c.tls_ca_path.is_empty(),
        "--roles {role_name} needs cluster.tls_ca_path, cluster.tls_cert_path and \
         cluster.tls_key_path (mutual TLS on the edge-router link; `switchyard \
         gen-cluster-certs DIR` writes a development set), or cluster.tls = false on loopback"
    );
    let files = TlsFiles {
        ca: PathBuf::from(&c.tls_ca_path),
        cert: PathBuf::from(&c.tls_cert_path),
        key: PathBuf::from(&c.tls_key_path),
    };
    warn_if_readable_by_others(&files.key);
    let tls = ClusterTls::open(files, &c.tls_server_name)?;
    let every = Duration::from_secs(c.tls_reload_interval_secs);
    tokio::spawn(tls.clone().watch(every, shutdown.clone()));
    tokio::spawn(publish_expiry(tls.clone(), every, shutdown));
    Ok(Some(tls))
}

/// Keeps the cluster certificate's expiry metric current as the files are renewed.
async fn publish_expiry(tls: Arc<ClusterTls>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Some(der) = tls.certificate() {
            switchyard_edge::publish_expiry("cluster", switchyard_edge::not_after(&der));
        }
    }
}

fn warn_if_readable_by_others(key: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(key) {
        if meta.permissions().mode() & 0o007 != 0 {
            tracing::warn!(key = %key.display(), "the cluster TLS key is readable by other users");
        }
    }
}

fn check_plaintext(config: &Config, role: Roles) -> anyhow::Result<()> {
    let c = &config.cluster;
    let exposed: Vec<&str> = match role {
        Roles::Router => [c.rpc_listen.as_str()]
            .into_iter()
            .filter(|a| !loopback(a))
            .collect(),
        _ => c
            .routers
            .iter()
            .map(String::as_str)
            .filter(|a| !loopback(a))
            .collect(),
    };
    if exposed.is_empty() {
        return Ok(());
    }
    anyhow::ensure!(
        c.insecure_plaintext,
        "cluster.tls = false with non-loopback link addresses {exposed:?}: anyone on that \
         network could read the link and act as an edge. Configure the cluster \
         certificates (cluster.tls_ca_path, tls_cert_path, tls_key_path), or set \
         cluster.insecure_plaintext = true for a development network"
    );
    tracing::warn!(
        addresses = ?exposed,
        "cluster.insecure_plaintext: the edge-router link is plaintext on a network"
    );
    Ok(())
}

/// `host:port` whose host is `localhost` or a loopback IP.
fn loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tls: bool, insecure: bool, rpc_listen: &str, routers: &[&str]) -> Config {
        let mut c = Config::default();
        c.cluster.tls = tls;
        c.cluster.insecure_plaintext = insecure;
        c.cluster.rpc_listen = rpc_listen.into();
        c.cluster.routers = routers.iter().map(|r| r.to_string()).collect();
        c
    }

    #[test]
    fn loopback_addresses() {
        for a in [
            "127.0.0.1:7400",
            "localhost:7400",
            "[::1]:7400",
            "127.8.9.1:1",
        ] {
            assert!(loopback(a), "{a}");
        }
        for a in [
            "0.0.0.0:7400",
            "10.0.0.1:7400",
            "router-1:7400",
            "[::]:7400",
        ] {
            assert!(!loopback(a), "{a}");
        }
    }

    #[test]
    fn plaintext_only_on_loopback_unless_insecure() {
        let edge = Roles::Edge;
        let router = Roles::Router;
        assert!(check_plaintext(&config(false, false, "127.0.0.1:7400", &[]), router).is_ok());
        let err = check_plaintext(&config(false, false, "0.0.0.0:7400", &[]), router);
        assert!(format!("{:#}", err.unwrap_err()).contains("insecure_plaintext"));
        assert!(check_plaintext(&config(false, true, "0.0.0.0:7400", &[]), router).is_ok());
        let local = config(
            false,
            false,
            "0.0.0.0:7400",
            &["localhost:7400", "127.0.0.1:1"],
        );
        assert!(check_plaintext(&local, edge).is_ok());
        let remote = config(false, false, "127.0.0.1:7400", &["router-1:7400"]);
        assert!(check_plaintext(&remote, edge).is_err());
    }

    #[tokio::test]
    async fn tls_needs_the_files_for_a_role() {
        let c = config(true, false, "0.0.0.0:7400", &[]);
        let err = open(&c, Roles::Router, CancellationToken::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("cluster.tls_ca_path"),
            "{err:#}"
        );
        let dir = tempfile::tempdir().unwrap();
        switchyard_rpc::tls::generate_cluster_certs(dir.path(), &["switchyard-router".into()])
            .unwrap();
        let mut c = c;
        c.cluster.tls_ca_path = dir.path().join("ca.pem").display().to_string();
        c.cluster.tls_cert_path = dir
            .path()
            .join("switchyard-router.pem")
            .display()
            .to_string();
        c.cluster.tls_key_path = dir
            .path()
            .join("switchyard-router-key.pem")
            .display()
            .to_string();
        let stop = CancellationToken::new();
        assert!(open(&c, Roles::Router, stop.clone()).unwrap().is_some());
        stop.cancel();
    }

    #[test]
    fn validate_checks_the_tls_keys() {
        let mut c = Config::default();
        c.validate().unwrap();
        c.cluster.tls_ca_path = "/ca.pem".into();
        assert!(c.validate().is_err(), "paths are set together");
        c.cluster.tls_cert_path = "/cert.pem".into();
        c.cluster.tls_key_path = "/key.pem".into();
        c.validate().unwrap();
        c.cluster.tls_server_name = "not a name".into();
        assert!(c.validate().is_err());
        c.cluster.tls_server_name = "switchyard-router".into();
        c.cluster.insecure_plaintext = true;
        assert!(
            c.validate().is_err(),
            "insecure_plaintext without tls = false"
        );
        c.cluster.tls = false;
        c.validate().unwrap();
        c.cluster.tls_reload_interval_secs = 0;
        assert!(c.validate().is_err());
    }
}
