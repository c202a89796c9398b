//! The bare loopback ceiling a harness compares the engine against: CON requests from 1,000
//! source addresses on one shared socket, 256 in flight, no LWM2M and no clients.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use lwm2m_swarm::transport::{
    AddressSet, OutgoingDatagram, Poller, RecvBuffers, SharedConfig, SharedSocket,
};

const BATCH: usize = 64;

/// Round trips answered in `run` (and how long it took); `request(message_id)` is the datagram.
pub fn bare_round_trips(
    server: SocketAddr,
    run: Duration,
    request: impl Fn(u16) -> Vec<u8>,
) -> (u64, Duration) {
    const WINDOW: u64 = 256;
    const SOURCES: u64 = 1_000;
    let config = SharedConfig {
        batch: BATCH,
        ..SharedConfig::default()
    };
    let mut socket =
        SharedSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), &config).expect("bind");
    let port = socket.local_addr().port();
    let addresses = AddressSet::loopback();
    let source = |i: u64| SocketAddr::new(addresses.get(i % SOURCES).expect("address"), port);
    let mut poller = Poller::new();
    poller.add(socket.as_fd());
    let mut bufs = RecvBuffers::new(BATCH, 256);
    let started = Instant::now();
    let (mut sent, mut answered) = (0u64, 0u64);
    while started.elapsed() < run {
        let mut out = Vec::new();
        while sent - answered < WINDOW && out.len() < BATCH {
            out.push((source(sent), request(sent as u16)));
            sent += 1;
        }
        let batch: Vec<OutgoingDatagram<'_>> = out
            .iter()
            .map(|(from, bytes)| OutgoingDatagram {
                from: *from,
                to: server,
                payload: bytes,
            })
            .collect();
        let went = socket.send_batch(&batch).expect("send") as u64;
        sent -= batch.len() as u64 - went;
        bufs.clear();
        let got = socket.recv_batch(&mut bufs).expect("recv") as u64;
        answered += got;
        if got == 0 {
            poller.wait(Duration::from_millis(10)).expect("poll");
            // Lost datagrams would shrink the window for good: count them as answered.
            if poller.is_ready(0) {
                continue;
            }
            answered = sent;
        }
    }
    (answered, started.elapsed())
}
