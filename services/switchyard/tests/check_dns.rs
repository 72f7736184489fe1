//! `switchyard check dns` against a DNS server on loopback that this test controls: SRV
//! records that lead here, elsewhere, to the wrong port, and no SRV at all (the RFC 6120
//! §3.2.2 fallback), each judged as the operator needs to hear it.

mod support;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::Ipv4Addr;

/// The zone: (name, type) → records.
fn answers(name: &str, kind: RecordType, c2s: u16, direct: u16) -> Option<Vec<RData>> {
    let srv =
        |port, target: &str| RData::SRV(SRV::new(5, 10, port, Name::from_ascii(target).unwrap()));
    let a = |ip: [u8; 4]| RData::A(A(Ipv4Addr::from(ip)));
    let found = match (name, kind) {
        ("_xmpp-client._tcp.good.test.", RecordType::SRV) => vec![srv(c2s, "xmpp.good.test.")],
        ("_xmpps-client._tcp.good.test.", RecordType::SRV) => vec![srv(direct, "xmpp.good.test.")],
        ("_xmpp-server._tcp.good.test.", RecordType::SRV) => vec![srv(5269, "xmpp.good.test.")],
        ("xmpp.good.test.", RecordType::A) => vec![a([127, 0, 0, 1])],
        ("_xmpp-client._tcp.far.test.", RecordType::SRV) => vec![srv(c2s, "elsewhere.far.test.")],
        ("elsewhere.far.test.", RecordType::A) => vec![a([192, 0, 2, 7])],
        ("_xmpp-client._tcp.port.test.", RecordType::SRV) => vec![srv(c2s + 1, "xmpp.good.test.")],
        ("fallback.test.", RecordType::A) => vec![a([127, 0, 0, 1])],
        ("_xmpp-client._tcp.none.test.", RecordType::SRV) => vec![srv(0, ".")],
        ("_xmpp-client._tcp.ip.test.", RecordType::SRV) => vec![srv(c2s, "127.0.0.1.")],
        ("_xmpp-client._tcp.many.test.", RecordType::SRV) => {
            (0..20).map(|_| srv(c2s, "xmpp.good.test.")).collect()
        }
        // Names that exist with no record of the type asked: NODATA.
        ("xmpp.good.test." | "elsewhere.far.test." | "fallback.test.", _) => vec![],
        _ => return None,
    };
    Some(found)
}

/// Answers queries on a loopback UDP port until the test ends.
async fn dns_server(c2s: u16, direct: u16) -> std::net::SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            reply.metadata.recursion_available = true;
            reply.metadata.authoritative = true;
            if let Some(q) = query.queries.first() {
                reply.add_query(q.clone());
                let name = q.name().to_ascii().to_ascii_lowercase();
                match answers(&name, q.query_type(), c2s, direct) {
                    Some(records) => {
                        for r in records {
                            reply.add_answer(Record::from_rdata(q.name().clone(), 60, r));
                        }
                    }
                    None => reply.metadata.response_code = ResponseCode::NXDomain,
                }
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

async fn check(resolver: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(["check", "dns", "--resolver", &resolver.to_string()])
        .args(args)
        .env("SWITCHYARD_LISTEN__C2S", "[::]:15222")
        .env("SWITCHYARD_LISTEN__C2S_DIRECT_TLS", "[::]:15223");
    support::run_cli(cmd, std::time::Duration::from_secs(30)).await
}

#[tokio::test]
async fn records_are_judged_against_the_listeners_and_this_hosts_addresses() {
    let resolver = dns_server(15222, 15223).await;
    // SRV for both client services to 127.0.0.1 on the listeners' ports: right, with
    // this host's interface addresses as "here" and with --address.
    for extra in [&[][..], &["--address", "127.0.0.1"][..]] {
        let (ok, out) = check(resolver, &[&["good.test"][..], extra].concat()).await;
        assert!(ok, "{out}");
        assert!(
            out.contains("_xmpp-client._tcp: xmpp.good.test. port 15222: 127.0.0.1 — points here"),
            "{out}"
        );
        assert!(
            out.contains("_xmpps-client._tcp: xmpp.good.test. port 15223: 127.0.0.1 — points here"),
            "{out}"
        );
        assert!(
            out.contains("_xmpp-server._tcp.good.test: xmpp.good.test. port 5269: 127.0.0.1"),
            "{out}"
        );
        assert!(
            out.contains("_xmpps-server._tcp.good.test: no SRV"),
            "{out}"
        );
    }
    // The same records seen from a load balancer's address are not here.
    let (ok, out) = check(resolver, &["good.test", "--address", "198.51.100.1"]).await;
    assert!(!ok && out.contains("does not resolve here"), "{out}");

    let (ok, out) = check(resolver, &["far.test", "--address", "127.0.0.1"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("elsewhere.far.test. port 15222: 192.0.2.7 — does not resolve here"),
        "{out}"
    );
    assert!(out.contains("do not lead here"), "{out}");

    let (ok, out) = check(resolver, &["port.test", "--address", "127.0.0.1"]).await;
    assert!(
        !ok && out.contains("resolves here but the listener is on port 15222"),
        "{out}"
    );

    // No SRV: clients fall back to the domain on 5222, where nothing listens here.
    let (ok, out) = check(resolver, &["fallback.test", "--address", "127.0.0.1"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("_xmpp-client._tcp.fallback.test: no SRV; clients use fallback.test port 5222: 127.0.0.1"), "{out}");
    assert!(
        out.contains("resolves here but the listener is on port 15222"),
        "{out}"
    );

    // RFC 2782 `.`: the service is declared not offered.
    let (ok, out) = check(resolver, &["none.test", "--address", "127.0.0.1"]).await;
    assert!(
        !ok && out.contains("the service is declared not offered"),
        "{out}"
    );

    // An IP literal as a target, and more targets than are looked up.
    let (ok, out) = check(resolver, &["ip.test", "--address", "127.0.0.1"]).await;
    assert!(
        !ok && out.contains("an IP address, not a host name (RFC 2782)"),
        "{out}"
    );
    let (ok, out) = check(resolver, &["many.test", "--address", "127.0.0.1"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("20 targets; the first 16 by priority are looked up, 4 are not"),
        "{out}"
    );
    // Names that are not domains are refused before any lookup.
    for bad in ["bad domain", "user@good.test", "127.0.0.1", "a..b"] {
        let (ok, out) = check(resolver, &[bad]).await;
        assert!(!ok && out.contains("is not a domain name"), "{bad}: {out}");
    }

    // A domain that does not exist at all.
    let (ok, out) = check(resolver, &["missing.test", "--address", "127.0.0.1"]).await;
    assert!(!ok && out.contains("no address"), "{out}");
}

#[tokio::test]
async fn an_unreachable_resolver_is_a_clear_error() {
    // A UDP port nobody answers on (bound, then dropped).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (ok, out) = check(silent, &["good.test"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("looking up _xmpp-client._tcp.good.test."),
        "{out}"
    );
}
