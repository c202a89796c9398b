//! Round trips per second on loopback: the shared transport (many source addresses, batched,
//! a window of requests in flight) against a recvmmsg/sendmmsg echo thread, compared with a plain
//! std `UdpSocket` ping-pong. Bounded: each run stops after 2 s or 500k round trips.
//!
//! Run: `cargo bench --bench transport`

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use lwm2m_swarm::transport::{
    AddressSet, OutgoingDatagram, Poller, RecvBuffers, SharedConfig, SharedSocket,
};

const RUN: Duration = Duration::from_secs(2);
const MAX_ROUND_TRIPS: u64 = 500_000;
const BATCH: usize = 64;
const WINDOW: u64 = 256;
const CLIENTS: u64 = 1_000;

struct Result {
    round_trips: u64,
    elapsed: Duration,
}

impl Result {
    fn rate(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let shared = shared_round_trips();
    let plain = std_ping_pong();
    let windowed = std_windowed();
    println!(
        "shared (IP_PKTINFO, {CLIENTS} source addresses, batch {BATCH}, window {WINDOW}): {} round trips in {:.2?} = {:.0}/s",
        shared.round_trips,
        shared.elapsed,
        shared.rate()
    );
    println!(
        "std UdpSocket ping-pong (one in flight): {} round trips in {:.2?} = {:.0}/s",
        plain.round_trips,
        plain.elapsed,
        plain.rate()
    );
    println!(
        "std UdpSocket, window {WINDOW}, one syscall per datagram: {} round trips in {:.2?} = {:.0}/s",
        windowed.round_trips,
        windowed.elapsed,
        windowed.rate()
    );
    println!(
        "ratio shared / std ping-pong: {:.2}; shared / std windowed: {:.2}",
        shared.rate() / plain.rate(),
        shared.rate() / windowed.rate()
    );
}

/// An echo server on a shared socket: replies from the address each datagram was sent to.
fn spawn_shared_echo(stop: Arc<AtomicBool>) -> (SocketAddr, thread::JoinHandle<()>) {
    let cfg = SharedConfig {
        batch: BATCH,
        ..SharedConfig::default()
    };
    let mut sock =
        SharedSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &cfg).expect("bind echo");
    let addr = sock.local_addr();
    let handle = thread::spawn(move || {
        let mut poller = Poller::new();
        poller.add(sock.as_fd());
        let mut bufs = RecvBuffers::new(BATCH, 64);
        while !stop.load(Ordering::Relaxed) {
            bufs.clear();
            if sock.recv_batch(&mut bufs).expect("echo recv") == 0 {
                poller.wait(Duration::from_millis(10)).expect("echo poll");
                continue;
            }
            let echo: Vec<OutgoingDatagram> = bufs
                .iter()
                .map(|(d, b)| OutgoingDatagram {
                    from: d.client,
                    to: d.peer,
                    payload: b,
                })
                .collect();
            let mut done = 0;
            // Bounded retry while the send buffer is full.
            for _ in 0..1_000 {
                done += sock.send_batch(&echo[done..]).expect("echo send");
                if done == echo.len() {
                    break;
                }
                thread::yield_now();
            }
        }
    });
    (addr, handle)
}

fn shared_round_trips() -> Result {
    let stop = Arc::new(AtomicBool::new(false));
    let (server, echo) = spawn_shared_echo(stop.clone());
    let cfg = SharedConfig {
        batch: BATCH,
        ..SharedConfig::default()
    };
    let mut sock = SharedSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), &cfg)
        .expect("bind client");
    eprintln!("client socket buffers: {:?}", sock.buffer_sizes());
    let port = sock.local_addr().port();
    let addresses = AddressSet::parse_cidr("127.3.0.0/16").expect("cidr");
    let clients: Vec<SocketAddr> = (0..CLIENTS)
        .map(|i| SocketAddr::new(addresses.get(i).expect("address"), port))
        .collect();
    let payloads: Vec<[u8; 8]> = (0..CLIENTS).map(u64::to_be_bytes).collect();
    let mut poller = Poller::new();
    poller.add(sock.as_fd());
    let mut bufs = RecvBuffers::new(BATCH, 64);
    let mut out: Vec<OutgoingDatagram> = Vec::with_capacity(BATCH);
    let (mut issued, mut in_flight, mut done, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut busy_recvs = 0u64;
    let start = Instant::now();
    let mut last_progress = start;
    while start.elapsed() < RUN && done < MAX_ROUND_TRIPS {
        out.clear();
        while in_flight + (out.len() as u64) < WINDOW && out.len() < BATCH {
            let k = (issued % CLIENTS) as usize;
            out.push(OutgoingDatagram {
                from: clients[k],
                to: server,
                payload: &payloads[k],
            });
            issued += 1;
        }
        let sent = sock.send_batch(&out).expect("send") as u64;
        issued -= out.len() as u64 - sent;
        in_flight += sent;
        bufs.clear();
        let got = sock.recv_batch(&mut bufs).expect("recv") as u64;
        done += got;
        busy_recvs += u64::from(got > 0);
        in_flight -= got.min(in_flight);
        if got > 0 {
            last_progress = Instant::now();
        } else if in_flight >= WINDOW {
            poller.wait(Duration::from_millis(20)).expect("poll");
            if last_progress.elapsed() > Duration::from_millis(200) {
                // Replies lost: stop waiting for them.
                lost += in_flight;
                in_flight = 0;
                last_progress = Instant::now();
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
    eprintln!(
        "shared: lost {lost}, kernel drops on the client socket {}, {:.1} replies per recvmmsg that returned any",
        sock.kernel_drops(),
        done as f64 / busy_recvs.max(1) as f64
    );
    Result {
        round_trips: done,
        elapsed,
    }
}

/// A plain blocking std echo thread; stops within 50 ms of `stop`.
fn spawn_std_echo(stop: Arc<AtomicBool>) -> (SocketAddr, thread::JoinHandle<()>) {
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
    server
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let addr = server.local_addr().expect("addr");
    let handle = thread::spawn(move || {
        let mut b = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, peer)) = server.recv_from(&mut b) {
                let _ = server.send_to(&b[..n], peer);
            }
        }
    });
    (addr, handle)
}

/// The same window as the shared run, but std sockets: one system call per datagram each way.
fn std_windowed() -> Result {
    let stop = Arc::new(AtomicBool::new(false));
    let (server_addr, echo) = spawn_std_echo(stop.clone());
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut b = [0u8; 64];
    let (mut in_flight, mut done) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < RUN && done < MAX_ROUND_TRIPS {
        while in_flight < WINDOW {
            client
                .send_to(&done.to_be_bytes(), server_addr)
                .expect("send");
            in_flight += 1;
        }
        if client.recv_from(&mut b).is_ok() {
            done += 1;
            in_flight -= 1;
        } else {
            in_flight = 0; // replies lost: refill the window
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
    Result {
        round_trips: done,
        elapsed,
    }
}

fn std_ping_pong() -> Result {
    let stop = Arc::new(AtomicBool::new(false));
    let (server_addr, echo) = spawn_std_echo(stop.clone());
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut b = [0u8; 64];
    let mut done = 0u64;
    let start = Instant::now();
    while start.elapsed() < RUN && done < MAX_ROUND_TRIPS {
        client
            .send_to(&done.to_be_bytes(), server_addr)
            .expect("send");
        if client.recv_from(&mut b).is_ok() {
            done += 1;
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
    Result {
        round_trips: done,
        elapsed,
    }
}
