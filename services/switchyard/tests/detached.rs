//! XEP-0198: a detached session (its connection gone, resumption pending) holds no
//! socket. Alone in its test binary, so the process's descriptors are this test's.

mod support;

use support::sm::Counted;
use support::{Client, Server};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test]
async fn a_detached_session_gives_its_socket_back_at_once() {
    const N: usize = 20;
    let server = Server::start().await;
    let mut clients = Vec::new();
    for n in 0..N {
        server.add_user(&format!("user{n}"), "secret").await;
        let c = Client::login(&server, &format!("user{n}"), "PLAIN", "phone").await;
        let (c, id) = Counted::enable(c, true).await;
        assert!(id.is_some(), "resumable");
        clients.push(c);
    }
    let before = open_descriptors();
    // Every client's connection drops without closing its stream.
    drop(clients);
    let detached = || switchyard_telemetry::EDGE_SM_DETACHED.get() as usize;
    for _ in 0..50 {
        if detached() >= N {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(detached(), N, "every session waits to be resumed");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = open_descriptors();
    // The clients' N sockets and the server's N are closed; the sessions live on.
    assert!(
        after + 2 * N <= before + 2,
        "descriptors: {before} before, {after} after {N} sessions detached"
    );
}
