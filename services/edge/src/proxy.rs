//! The PROXY protocol (HAProxy's specification, versions 1 and 2) on the client
//! listeners, off by default (`listen.proxy_protocol`): behind an L4 load balancer every
//! connection comes from the balancer, so per-IP connection caps, login throttling and
//! logs would see one address for everyone. With it on, the balancer writes the client's
//! address first, before TLS or XML, and the edge takes it from there.
//!
//! - Only turn it on when every connection comes through a balancer that sends the
//!   header: a client reaching the listener directly could otherwise claim any address.
//!   With it on, a connection that does not start with a valid header is closed.
//! - v1 (text): `PROXY TCP4|TCP6 src dst sport dport\r\n`, at most 107 bytes;
//!   `PROXY UNKNOWN …\r\n` keeps the connection's own address.
//! - v2 (binary): the 12-byte signature, version 2, command PROXY (addresses follow:
//!   TCP or UDP over IPv4 or IPv6; other families keep the connection's own address) or
//!   LOCAL (the balancer's own health check: its own address is kept). TLVs are skipped.
//!   At most [`MAX_V2_BODY`] bytes after the fixed part.
//! - The header must arrive within the handshake timeout; it is read with `peek` and
//!   consumed exactly, so the TLS or XML bytes behind it are untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_MAX: usize = 107;
/// Bytes of a v2 header after its 16-byte fixed part: addresses and TLVs.
const MAX_V2_BODY: usize = 512;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// The client's address.
    Client(IpAddr),
    /// No client address (v1 UNKNOWN, v2 LOCAL or another family): keep the socket's.
    Local,
}

/// Why a connection's header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub &'static str);

/// Parses a header at the start of `bytes`: `Ok(None)` while incomplete, else what it
/// says and its length.
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    if bytes.len() < V2_SIGNATURE.len() {
        let v1 = b"PROXY ".starts_with(&bytes[..bytes.len().min(6)]);
        let v2 = V2_SIGNATURE.starts_with(bytes);
        return if v1 || v2 {
            Ok(None)
        } else {
            Err(Invalid("no PROXY header"))
        };
    }
    if bytes.starts_with(V2_SIGNATURE) {
        v2(bytes)
    } else if bytes.starts_with(b"PROXY ") {
        v1(bytes)
    } else {
        Err(Invalid("no PROXY header"))
    }
}

fn v1(bytes: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= V1_MAX {
            Err(Invalid("v1 header too long"))
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err(Invalid("v1 header too long"));
    }
    let line = std::str::from_utf8(&bytes[..end]).map_err(|_| Invalid("v1 header not ASCII"))?;
    let mut fields = line.split(' ');
    fields.next(); // PROXY
    let header = match fields.next() {
        Some("UNKNOWN") => Header::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let parts: Vec<&str> = fields.collect();
            let [src, dst, sport, dport] = parts[..] else {
                return Err(Invalid("v1 header needs four fields"));
            };
            let src: IpAddr = src.parse().map_err(|_| Invalid("v1 source address"))?;
            let dst: IpAddr = dst.parse().map_err(|_| Invalid("v1 destination address"))?;
            let ports = [sport, dport].iter().all(|p| port(p));
            if src.is_ipv4() != (family == "TCP4") || dst.is_ipv4() != src.is_ipv4() || !ports {
                return Err(Invalid("v1 addresses do not match their family"));
            }
            Header::Client(src)
        }
        _ => return Err(Invalid("v1 protocol family")),
    };
    Ok(Some((header, len)))
}

/// A decimal port without a leading zero (the specification's form).
fn port(text: &str) -> bool {
    !text.starts_with('0') && text.parse::<u16>().is_ok() || text == "0"
}

fn v2(bytes: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    if bytes.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 {
        return Err(Invalid("v2 version"));
    }
    let body = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if body > MAX_V2_BODY {
        return Err(Invalid("v2 header too long"));
    }
    let len = 16 + body;
    if bytes.len() < len {
        return Ok(None);
    }
    let addresses = &bytes[16..len];
    let header = match command {
        0 => Header::Local,
        1 => match bytes[13] >> 4 {
            1 if addresses.len() >= 12 => {
                let ip: [u8; 4] = addresses[..4].try_into().expect("4 bytes");
                Header::Client(IpAddr::V4(Ipv4Addr::from(ip)))
            }
            2 if addresses.len() >= 36 => {
                let ip: [u8; 16] = addresses[..16].try_into().expect("16 bytes");
                Header::Client(IpAddr::V6(Ipv6Addr::from(ip)))
            }
            1 | 2 => return Err(Invalid("v2 addresses shorter than their family")),
            _ => Header::Local,
        },
        _ => return Err(Invalid("v2 command")),
    };
    Ok(Some((header, len)))
}

/// Reads the header from the start of `tcp` within `limit`; the client's address (the
/// socket's own `peer` when the header names none).
pub(crate) async fn read(
    tcp: &mut TcpStream,
    peer: IpAddr,
    limit: Duration,
) -> Result<IpAddr, Invalid> {
    let mut buf = [0u8; 16 + MAX_V2_BODY];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut buf))
            .await
            .map_err(|_| Invalid("no complete header in time"))?
            .map_err(|_| Invalid("connection failed"))?;
        if peeked == 0 {
            return Err(Invalid("connection closed"));
        }
        if let Some((header, len)) = parse(&buf[..peeked])? {
            tcp.read_exact(&mut buf[..len])
                .await
                .map_err(|_| Invalid("connection failed"))?;
            return Ok(match header {
                Header::Client(ip) => ip,
                Header::Local => peer,
            });
        }
        if peeked == buf.len() {
            return Err(Invalid("header too long"));
        }
        // Part of a header: wait a little for the rest rather than spin on peek.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[test]
    fn v1_names_the_client_and_ends_at_crlf() {
        let text = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 5222\r\n<stream:stream";
        let expected = Header::Client("203.0.113.7".parse().unwrap());
        assert_eq!(parse(text), Ok(Some((expected, text.len() - 14))));
        let six = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 5222\r\n";
        assert_eq!(
            parse(six).unwrap().unwrap().0,
            Header::Client("2001:db8::7".parse().unwrap())
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(Some((Header::Local, 15))));
        assert_eq!(
            parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
                .unwrap()
                .unwrap()
                .0,
            Header::Local
        );
    }

    #[test]
    fn v1_incomplete_waits_and_bad_is_refused() {
        assert_eq!(parse(b"PRO"), Ok(None));
        assert_eq!(parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 5"), Ok(None));
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"<?xml version='1.0'?>",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
            b"PROXY TCP6 203.0.113.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 70000 2\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 01 2\r\n",
            b"PROXY UDP4 203.0.113.7 10.0.0.1 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(parse(&long).is_err(), "a line past 107 bytes");
    }

    #[test]
    fn v2_proxy_local_and_families() {
        let v4 = [203, 0, 113, 7, 10, 0, 0, 1, 0xc8, 0x22, 0x14, 0x66];
        let h = v2_header(1, 0x11, &v4);
        assert_eq!(
            parse(&h),
            Ok(Some((Header::Client("203.0.113.7".parse().unwrap()), 28)))
        );
        let mut v6 = vec![0u8; 36];
        v6[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            parse(&v2_header(1, 0x21, &v6)).unwrap().unwrap().0,
            Header::Client("2001:db8::7".parse().unwrap())
        );
        // LOCAL (a health check), a unix socket family, and TLVs after the addresses.
        assert_eq!(
            parse(&v2_header(0, 0x00, &[])),
            Ok(Some((Header::Local, 16)))
        );
        assert_eq!(
            parse(&v2_header(1, 0x31, &[0; 216])).unwrap().unwrap().0,
            Header::Local
        );
        let with_tlv = [&v4[..], &[0x04, 0x00, 0x01, 0xff]].concat();
        assert_eq!(
            parse(&v2_header(1, 0x11, &with_tlv)).unwrap().unwrap().1,
            16 + 16
        );
    }

    #[test]
    fn v2_incomplete_waits_and_bad_is_refused() {
        let h = v2_header(1, 0x11, &[203, 0, 113, 7, 10, 0, 0, 1, 0, 1, 0, 2]);
        for cut in [1, 11, 12, 15, 16, 27] {
            assert_eq!(parse(&h[..cut]), Ok(None), "{cut} bytes");
        }
        let mut wrong_version = h.clone();
        wrong_version[12] = 0x11;
        assert!(parse(&wrong_version).is_err());
        let mut wrong_command = h.clone();
        wrong_command[12] = 0x22;
        assert!(parse(&wrong_command).is_err());
        assert!(
            parse(&v2_header(1, 0x11, &[1, 2, 3])).is_err(),
            "short addresses"
        );
        let mut huge = v2_header(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&600u16.to_be_bytes());
        assert!(parse(&huge).is_err(), "past the body bound");
    }
}
