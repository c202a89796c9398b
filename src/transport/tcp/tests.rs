//! The TCP transport against std listeners on loopback (ports 25500-25519).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use super::*;

fn endpoint(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 7, i], 20_000))
}

/// Receives until `f` says done or 5 s pass.
fn until(t: &mut TcpTransport, mut f: impl FnMut(&mut TcpTransport, &RecvBuffers) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut bufs = RecvBuffers::new(8, 2048);
    loop {
        bufs.clear();
        t.wait(Duration::from_millis(20)).unwrap();
        t.recv_batch(&mut bufs).unwrap();
        if f(t, &bufs) {
            return;
        }
        assert!(Instant::now() < deadline, "nothing within 5 s");
    }
}

#[test]
fn bytes_both_ways_then_the_server_closes() {
    let listener = TcpListener::bind("127.0.0.1:25500").unwrap();
    let server = listener.local_addr().unwrap();
    let mut t = TcpTransport::open(&[endpoint(1), endpoint(2)], true).unwrap();
    t.open_link(endpoint(2), server);
    // Written while connecting: held until the connection is up.
    assert!(t.send_link(endpoint(2), b"hello"));
    assert!(
        !t.send_link(endpoint(1), b"nobody"),
        "no connection for this one"
    );
    assert_eq!(t.open_connections(), 1);
    let (mut accepted, from) = listener.accept().unwrap();
    assert_eq!(
        from.ip(),
        endpoint(2).ip(),
        "sourced from the client's address"
    );
    accepted
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    until(&mut t, |_, _| {
        let mut buf = [0; 16];
        if let Ok(n) = accepted.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= 5
    });
    assert_eq!(got, b"hello");
    accepted.write_all(b"world").unwrap();
    let mut read = Vec::new();
    until(&mut t, |_, bufs| {
        for (d, bytes) in bufs.iter() {
            assert_eq!((d.client, d.peer), (endpoint(2), server));
            read.extend_from_slice(bytes);
        }
        read.len() >= 5
    });
    assert_eq!(read, b"world");
    drop(accepted);
    until(&mut t, |t, _| t.open_connections() == 0);
    assert_eq!(
        t.poll_link_ended(),
        Some(LinkEnded {
            client: endpoint(2),
            error: None
        })
    );
}

#[test]
fn a_refused_connect_is_reported() {
    // Bound, never listening: the SYN is answered with RST.
    let socket = std::net::UdpSocket::bind("127.0.0.1:25501").unwrap();
    drop(socket);
    let mut t = TcpTransport::open(&[endpoint(3)], false).unwrap();
    t.open_link(endpoint(3), SocketAddr::from(([127, 0, 0, 1], 25501)));
    until(&mut t, |t, _| t.open_connections() == 0);
    assert_eq!(
        t.poll_link_ended(),
        Some(LinkEnded {
            client: endpoint(3),
            error: Some(io::ErrorKind::ConnectionRefused)
        })
    );
}

#[test]
fn a_close_writes_what_waits_first_and_is_not_reported() {
    let listener = TcpListener::bind("127.0.0.1:25502").unwrap();
    let server = listener.local_addr().unwrap();
    let mut t = TcpTransport::open(&[endpoint(4)], true).unwrap();
    t.open_link(endpoint(4), server);
    let (mut accepted, _) = listener.accept().unwrap();
    until(&mut t, |t, _| {
        t.conns[0].as_ref().is_some_and(|c| !c.connecting)
    });
    assert!(t.send_link(endpoint(4), b"goodbye"));
    t.close_link(endpoint(4));
    accepted
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    accepted.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"goodbye", "everything, then the end of stream");
    assert_eq!(t.open_connections(), 0);
    assert_eq!(t.poll_link_ended(), None);
}
