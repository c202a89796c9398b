//! Loopback only (127.0.0.0/8); every loop is bounded in count and time.

use super::*;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Instant;

const DEADLINE: Duration = Duration::from_secs(5);

fn any_port() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
}

fn server() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Client address `i` in 127.1.0.0/16 (away from the server's 127.0.0.1).
fn client_ip(i: u64) -> Ipv4Addr {
    match AddressSet::parse_cidr("127.1.0.0/16").unwrap().get(i) {
        Some(std::net::IpAddr::V4(a)) => a,
        other => panic!("no v4 address {i}: {other:?}"),
    }
}

/// Receives on `sock` until `bufs` holds at least `want` datagrams or the deadline passes.
fn recv_until(sock: &mut SharedSocket, bufs: &mut RecvBuffers, want: usize) {
    let start = Instant::now();
    let mut poller = Poller::new();
    poller.add(sock.as_fd());
    while bufs.len() < want && start.elapsed() < DEADLINE {
        if sock.recv_batch(bufs).unwrap() == 0 {
            poller.wait(Duration::from_millis(50)).unwrap();
        }
    }
    assert!(bufs.len() >= want, "received {} of {want}", bufs.len());
}

use std::os::fd::AsFd;

#[test]
fn shared_socket_speaks_for_1000_source_addresses() {
    let srv = server();
    let srv_addr = srv.local_addr().unwrap();
    let mut shared = SharedSocket::bind(any_port(), &SharedConfig::default()).unwrap();
    let port = shared.local_addr().port();
    let mut bufs = RecvBuffers::new(64, 1500);
    let (n, chunk) = (1_000_u64, 50_u64);
    for first in (0..n).step_by(chunk as usize) {
        let payloads: Vec<[u8; 8]> = (first..first + chunk).map(u64::to_be_bytes).collect();
        let batch: Vec<OutgoingDatagram> = payloads
            .iter()
            .zip(first..)
            .map(|(p, i)| OutgoingDatagram {
                from: SocketAddr::from((client_ip(i), port)),
                to: srv_addr,
                payload: p,
            })
            .collect();
        assert_eq!(shared.send_batch(&batch).unwrap(), batch.len());
        // The server sees each source as chosen and replies to it.
        for _ in 0..chunk {
            let mut b = [0; 16];
            let (len, from) = srv.recv_from(&mut b).unwrap();
            let i = u64::from_be_bytes(b[..len].try_into().unwrap());
            assert_eq!(from, SocketAddr::from((client_ip(i), port)));
            srv.send_to(&b[..len], from).unwrap();
        }
        bufs.clear();
        recv_until(&mut shared, &mut bufs, chunk as usize);
        for (d, bytes) in bufs.iter() {
            let i = u64::from_be_bytes(bytes.try_into().unwrap());
            assert_eq!(d.client, SocketAddr::from((client_ip(i), port)));
            assert_eq!(d.peer, srv_addr);
            assert!(!d.truncated);
        }
    }
    assert_eq!(shared.kernel_drops(), 0);
}

#[test]
fn shared_socket_speaks_ipv6() {
    let srv = UdpSocket::bind("[::1]:0").unwrap();
    srv.set_read_timeout(Some(DEADLINE)).unwrap();
    let srv_addr = srv.local_addr().unwrap();
    let wildcard = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    let mut shared = SharedSocket::bind(wildcard, &SharedConfig::default()).unwrap();
    let client = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, shared.local_addr().port()));
    let batch = [OutgoingDatagram {
        from: client,
        to: srv_addr,
        payload: b"hello",
    }];
    assert_eq!(shared.send_batch(&batch).unwrap(), 1);
    let mut b = [0; 16];
    let (len, from) = srv.recv_from(&mut b).unwrap();
    assert_eq!((&b[..len], from), (&b"hello"[..], client));
    srv.send_to(b"back", from).unwrap();
    let mut bufs = RecvBuffers::new(8, 1500);
    recv_until(&mut shared, &mut bufs, 1);
    let (d, bytes) = bufs.get(0).unwrap();
    assert_eq!((d.client, d.peer, bytes), (client, srv_addr, &b"back"[..]));
    // An IPv4 source cannot leave from an IPv6 socket.
    let v4 = [OutgoingDatagram {
        from: SocketAddr::from((Ipv4Addr::LOCALHOST, client.port())),
        to: srv_addr,
        payload: b"x",
    }];
    assert!(matches!(
        shared.send_batch(&v4),
        Err(TransportError::WrongFamily { .. })
    ));
}

#[test]
fn batches_of_64_both_ways() {
    let cfg = SharedConfig::default();
    let mut srv = SharedSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &cfg).unwrap();
    let srv_addr = srv.local_addr();
    let mut cli = SharedSocket::bind(any_port(), &cfg).unwrap();
    let port = cli.local_addr().port();
    let payloads: Vec<[u8; 8]> = (0..64_u64).map(u64::to_be_bytes).collect();
    let batch: Vec<OutgoingDatagram> = payloads
        .iter()
        .zip(1000..)
        .map(|(p, i)| OutgoingDatagram {
            from: SocketAddr::from((client_ip(i), port)),
            to: srv_addr,
            payload: p,
        })
        .collect();
    assert_eq!(cli.send_batch(&batch).unwrap(), 64);

    let mut bufs = RecvBuffers::new(64, 1500);
    recv_until(&mut srv, &mut bufs, 64);
    let mut echo = Vec::with_capacity(64);
    for (d, bytes) in bufs.iter() {
        assert_eq!(d.client, srv_addr, "the server socket is addressed");
        let i = u64::from_be_bytes(bytes.try_into().unwrap());
        assert_eq!(d.peer, SocketAddr::from((client_ip(1000 + i), port)));
        echo.push(OutgoingDatagram {
            from: d.client,
            to: d.peer,
            payload: bytes,
        });
    }
    assert_eq!(srv.send_batch(&echo).unwrap(), 64);

    let mut back = RecvBuffers::new(64, 1500);
    recv_until(&mut cli, &mut back, 64);
    for (d, bytes) in back.iter() {
        let i = u64::from_be_bytes(bytes.try_into().unwrap());
        assert_eq!(d.client, SocketAddr::from((client_ip(1000 + i), port)));
        assert_eq!(d.peer, srv_addr);
    }
}

#[test]
fn buffers_are_raised_and_reported() {
    let default = std::fs::read_to_string("/proc/sys/net/core/rmem_default")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992_usize);
    let s = SharedSocket::bind(any_port(), &SharedConfig::default()).unwrap();
    let sizes = s.buffer_sizes();
    eprintln!("buffer sizes obtained: {sizes:?}");
    assert!(sizes.recv > default, "{sizes:?} vs default {default}");
    assert!(sizes.send > default, "{sizes:?} vs default {default}");
}

#[test]
fn kernel_drops_are_counted_and_long_datagrams_flagged() {
    let cfg = SharedConfig {
        batch: 8,
        buffer_bytes: 4096,
    };
    let mut s = SharedSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &cfg).unwrap();
    let to = s.local_addr();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A few KB of buffer hold a handful of datagrams: the rest are dropped and counted.
    for _ in 0..200 {
        sender.send_to(&[7; 100], to).unwrap();
    }
    let mut bufs = RecvBuffers::new(8, 50);
    recv_until(&mut s, &mut bufs, 1);
    let (d, bytes) = bufs.get(0).unwrap();
    assert!(d.truncated);
    assert!(bytes.len() <= 51);
    // The count rides on datagrams queued after the drops: drain, then receive one more.
    for _ in 0..100 {
        bufs.clear();
        if s.recv_batch(&mut bufs).unwrap() == 0 {
            break;
        }
    }
    sender.send_to(&[8; 10], to).unwrap();
    bufs.clear();
    recv_until(&mut s, &mut bufs, 1);
    assert!(
        s.kernel_drops() > 100,
        "drops reported: {}",
        s.kernel_drops()
    );
}

#[test]
fn shared_send_rejects_foreign_sources() {
    let mut s = SharedSocket::bind(any_port(), &SharedConfig::default()).unwrap();
    let port = s.local_addr().port();
    let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let wrong_port = OutgoingDatagram {
        from: SocketAddr::from((client_ip(1), port.wrapping_add(1))),
        to,
        payload: b"x",
    };
    assert!(matches!(
        s.send_batch(&[wrong_port]),
        Err(TransportError::UnknownSource { index: 0, .. })
    ));
    let v6 = OutgoingDatagram {
        from: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        to,
        payload: b"x",
    };
    let err = s.send_batch(&[v6]).unwrap_err();
    assert!(err.to_string().contains("not of the family"), "{err}");
}

/// Two adjacent free ports, found by trying a bounded number of bases below the ephemeral range.
fn open_two_ports() -> SharedTransport {
    let seed = u64::from(std::process::id());
    for attempt in 0..50 {
        let base = 21_000 + ((seed * 7 + attempt * 131) % 10_000) as u16;
        let ports = PortRange::new(base, base + 1).unwrap();
        if let Ok(t) = SharedTransport::open(
            Ipv4Addr::UNSPECIFIED.into(),
            ports,
            &SharedConfig::default(),
        ) {
            return t;
        }
    }
    panic!("no two adjacent free ports");
}

#[test]
fn shared_transport_routes_by_port() {
    let srv = server();
    let srv_addr = srv.local_addr().unwrap();
    let mut t = open_two_ports();
    let p0 = t.sockets()[0].local_addr().port();
    let from = [
        SocketAddr::from((client_ip(7), p0)),
        SocketAddr::from((client_ip(8), p0 + 1)),
        SocketAddr::from((client_ip(9), p0)),
    ];
    let batch: Vec<OutgoingDatagram> = from
        .iter()
        .map(|&f| OutgoingDatagram {
            from: f,
            to: srv_addr,
            payload: b"hi",
        })
        .collect();
    assert_eq!(t.send_batch(&batch).unwrap(), 3);
    for _ in 0..3 {
        let mut b = [0; 8];
        let (_, peer) = srv.recv_from(&mut b).unwrap();
        assert!(from.contains(&peer), "{peer}");
        srv.send_to(b"ok", peer).unwrap();
    }
    let mut bufs = RecvBuffers::new(16, 100);
    let start = Instant::now();
    while bufs.len() < 3 && start.elapsed() < DEADLINE {
        if t.recv_batch(&mut bufs).unwrap() == 0 {
            t.wait(Duration::from_millis(50)).unwrap();
        }
    }
    let mut got: Vec<SocketAddr> = bufs.iter().map(|(d, _)| d.client).collect();
    got.sort();
    let mut want = from.to_vec();
    want.sort();
    assert_eq!(got, want);
    // A source address that is not local: the kernel refuses it (nothing leaves loopback).
    let foreign = OutgoingDatagram {
        from: SocketAddr::from(([192, 0, 2, 1], p0 + 1)),
        ..batch[0]
    };
    let err = t
        .send_batch(&[batch[0], batch[1], foreign, batch[2]])
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Send { index: 2, .. }),
        "{err}"
    );
    let stray = OutgoingDatagram {
        from: SocketAddr::from((client_ip(1), p0 + 2)),
        to: srv_addr,
        payload: b"x",
    };
    assert!(matches!(
        t.send_batch(&[batch[0], stray]),
        Err(TransportError::UnknownSource { index: 1, .. })
    ));
}

#[test]
fn per_client_sockets_work() {
    let srv = server();
    let srv_addr = srv.local_addr().unwrap();
    let eps: Vec<SocketAddr> = (1..=3)
        .map(|i| SocketAddr::from(([127, 2, 0, i], 0)))
        .collect();
    let mut t = PerClientTransport::open(&eps).unwrap();
    assert_eq!(t.len(), 3);
    let bound = t.endpoints().to_vec();
    assert!(bound.iter().all(|e| e.port() != 0));
    let batch: Vec<OutgoingDatagram> = bound
        .iter()
        .map(|&f| OutgoingDatagram {
            from: f,
            to: srv_addr,
            payload: &[1; 80],
        })
        .collect();
    assert_eq!(t.send_batch(&batch).unwrap(), 3);
    for _ in 0..3 {
        let mut b = [0; 100];
        let (len, peer) = srv.recv_from(&mut b).unwrap();
        assert!(bound.contains(&peer));
        srv.send_to(&b[..len], peer).unwrap();
    }
    let mut bufs = RecvBuffers::new(8, 40);
    let start = Instant::now();
    while bufs.len() < 3 && start.elapsed() < DEADLINE {
        if t.recv_batch(&mut bufs).unwrap() == 0 {
            t.wait(Duration::from_millis(50)).unwrap();
        }
    }
    let mut got: Vec<SocketAddr> = bufs.iter().map(|(d, _)| d.client).collect();
    got.sort();
    let mut want = bound.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(
        bufs.iter()
            .all(|(d, b)| d.truncated && b.len() == 41 && d.peer == srv_addr)
    );
}

#[test]
fn fd_budget_check() {
    let limit = FdLimit {
        soft: 1024,
        hard: 20_000,
    };
    assert_eq!(check_fd_budget(100, limit).unwrap(), 1024);
    assert_eq!(
        check_fd_budget(19_000, limit).unwrap(),
        19_000 + per_client::FD_RESERVE
    );
    let err = check_fd_budget(100_000, limit).unwrap_err();
    assert!(matches!(
        err,
        TransportError::TooManyFiles {
            clients: 100_000,
            hard: 20_000,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("RLIMIT_NOFILE") && msg.contains("20000"),
        "{msg}"
    );
    assert!(
        msg.contains("use the shared transport") && msg.contains("fewer clients"),
        "{msg}"
    );
    assert!(FdLimit::current().unwrap().hard > 0);
}

/// No `SO_REUSEADDR` / `SO_REUSEPORT`: a second run (another `--shard` on this host) on the same
/// ports fails to bind, naming the address, instead of sharing the sockets' datagrams.
#[test]
fn a_port_in_use_is_a_bind_error_naming_it() {
    let first = open_two_ports();
    let port = first.sockets()[0].local_addr().port();
    let ports = PortRange::new(port, port + 1).unwrap();
    let in_use = |result: Result<(), TransportError>| match result {
        Err(TransportError::Bind { addr, source }) => {
            assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}");
            assert_eq!(addr.port(), port);
            let text = TransportError::Bind { addr, source }.to_string();
            assert!(text.contains(&format!(":{port}")), "{text}");
        }
        Err(e) => panic!("not a bind error: {e}"),
        Ok(()) => panic!("port {port} bound twice"),
    };
    let again = SharedTransport::open(
        Ipv4Addr::UNSPECIFIED.into(),
        ports,
        &SharedConfig::default(),
    );
    in_use(again.map(drop));
    // One socket per client on a loopback address, the same port: refused too.
    let one = SocketAddr::from((client_ip(3), port));
    in_use(PerClientTransport::open(&[one]).map(drop));
}

#[test]
fn datagrams_pushed_from_elsewhere_are_cut_like_received_ones() {
    let client = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 20_000));
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 5683));
    let mut bufs = RecvBuffers::new(2, 4);
    assert!(bufs.push_received(client, peer, b"abcd"));
    assert!(bufs.push_received(client, peer, b"abcdefg"));
    assert!(
        !bufs.push_received(client, peer, b"x"),
        "both slots are taken"
    );
    let got: Vec<_> = bufs.iter().map(|(d, b)| (d, b.to_vec())).collect();
    assert_eq!(got[0].0.len, 4);
    assert!(!got[0].0.truncated);
    assert_eq!(got[0].1, b"abcd");
    assert!(got[1].0.truncated, "longer than the slot's 4 bytes");
    assert_eq!((got[1].0.client, got[1].0.peer), (client, peer));
}
