//! For the tests of TLS to a backend: a test CA (and another one), a server certificate
//! for 127.0.0.1 signed by it, a free port below the ephemeral range, and a child
//! process killed when the test ends.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::Path;

/// Writes `ca.pem`, `other-ca.pem`, `server.pem` and `server-key.pem` (for 127.0.0.1,
/// signed by `ca.pem`) into `dir`.
pub fn write_certificates(dir: &Path) {
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("ca");
    ca("other-ca");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    std::fs::write(dir.join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), leaf_key.serialize_pem()).unwrap();
}

/// A port below the ephemeral range, free now.
pub fn free_port() -> u16 {
    (20_000..30_000)
        .map(|p| p + (std::process::id() % 7_000) as u16 % 3_000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port")
}

/// A server process, killed and reaped when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (at most 10 s) until `port` on 127.0.0.1 accepts connections.
pub async fn listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}
