//! DTLS at scale: the engine's clients (shared sockets) handshake (PSK, AES-128-CCM-8, or with
//! certificates) and register against a DTLS server in a child process, until every session is
//! open at once; then the sessions are held, and the run stops.
//!
//! `cargo bench --bench dtls -- [--sessions 20000] [--rate 1000,2000,4000] [--peer both]
//! [--hold 3s] [--mode psk|certificate] [--first-port 26500]`
//!
//! `--mode certificate`: the fleet gets `[security] mode = "certificate"` with a CA made for
//! the run (P-256, `ca_cert`/`ca_key`/`server_ca` written to a scratch directory): each client's
//! certificate is issued when its handshake starts; the server's comes from the same CA; clients
//! check the server's as 127.0.0.1, the server theirs.
//!
//! `--peer libcoap`: Debian's `coap-rd-openssl` (libcoap 4.3, OpenSSL 3; one socket for every
//! session); `--peer embedded`: our embedded server over DTLS (this binary, `--serve-child`);
//! `both` runs each. Each offered rate in `--rate` is a run of its own against a fresh child.
//! Per run: sessions opened, handshakes/s achieved against offered (sessions over the time until
//! all were seen open: shards publish every 200 ms, so a ramp of a few seconds reads a few %
//! low), handshake latency (first `ClientHello` to connected), failures by reason, CPU per thread
//! of both processes over the ramp (who is saturated), the child's RSS per session, and ours:
//! heap (counted by this binary's allocator) and RSS per client. A last run of the same fleet over
//! plain CoAP gives the heap baseline, so the DTLS cost per open session is the difference.
//!
//! libcoap's resource directory exits on the first De-register it gets: against it the stop's
//! De-registers go unanswered and end by the stop timeout, which the run's last line shows.

#[path = "../tests/support/accounting.rs"]
mod accounting;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/load_average.rs"]
mod load_average;
#[path = "support/peer_process.rs"]
mod peer_process;

use load_average::load_average;
#[path = "../tests/support/peers.rs"]
mod peers;
#[path = "../tests/support/shipped.rs"]
mod shipped;

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use lwm2m_swarm::client::{ClientState, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::{Fleet, parse_duration};
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::security::dtls::ServerKeys;
use lwm2m_swarm::security::x509::{
    self, Authority, DeviceCertificates, DeviceKey, DeviceSource, PeerVerifier, Usage, Validity,
};
use lwm2m_swarm::security::{CredentialSource, SharedKey};
use lwm2m_swarm::server::{DtlsServerConfig, Runner, ServerAuth, ServerConfig};
use lwm2m_swarm::transport::PortRange;

const KEY: &str = "dtls-bench-psk";
/// How long past the ramp a run may take to open every session: longer than a handshake that
/// times out (~31 s of flights) and the Register after it.
const GRACE: Duration = Duration::from_secs(45);
/// /proc reports CPU time in `USER_HZ` ticks, 100 a second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// How clients and server authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Psk,
    Certificate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerKind {
    Libcoap,
    Embedded,
    /// The embedded server over plain CoAP: the heap baseline.
    Plain,
}

impl PeerKind {
    fn name(self) -> &'static str {
        match self {
            PeerKind::Libcoap => "libcoap coap-rd-openssl",
            PeerKind::Embedded => "embedded server",
            PeerKind::Plain => "embedded server, plain CoAP",
        }
    }
}

struct Args {
    sessions: u64,
    rates: Vec<f64>,
    peers: Vec<PeerKind>,
    hold: Duration,
    mode: Mode,
    first_port: u16,
}

fn parse_args() -> Args {
    let mut args = Args {
        sessions: 20_000,
        rates: vec![2_000.0],
        peers: vec![PeerKind::Libcoap, PeerKind::Embedded],
        hold: Duration::from_secs(3),
        mode: Mode::Psk,
        first_port: 26_500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--sessions" => args.sessions = value().parse().expect("--sessions N"),
            "--rate" => {
                args.rates = value()
                    .split(',')
                    .map(|r| r.trim().parse().expect("--rate R[,R...]"))
                    .collect();
            }
            "--peer" => {
                args.peers = match value().as_str() {
                    "libcoap" => vec![PeerKind::Libcoap],
                    "embedded" => vec![PeerKind::Embedded],
                    "both" => vec![PeerKind::Libcoap, PeerKind::Embedded],
                    other => panic!("--peer libcoap|embedded|both, not {other:?}"),
                }
            }
            "--hold" => args.hold = parse_duration(&value()).expect("--hold 3s"),
            "--mode" => {
                args.mode = match value().as_str() {
                    "psk" => Mode::Psk,
                    "certificate" => Mode::Certificate,
                    other => panic!("--mode psk|certificate, not {other:?}"),
                }
            }
            "--first-port" => args.first_port = value().parse().expect("--first-port N"),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

/// The run's CA: the key is derived from a fixed name, so the parent and the child server make
/// the same CA (same subject and key: each trusts what the other's issues).
fn bench_ca() -> (Authority, String, String) {
    let key = DeviceKey::derive(b"dtls bench", "ca");
    let validity = Validity {
        not_before: rcgen::date_time_ymd(2020, 1, 1),
        not_after: rcgen::date_time_ymd(2040, 1, 1),
    };
    let (cert, key_pem) = x509::self_signed_ca("dtls bench CA", &key, validity).expect("CA");
    let authority = Authority::from_pem(&cert, &key_pem, "bench CA").expect("CA loads");
    (authority, cert, key_pem)
}

/// A scratch directory for the run's PEM files.
fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-dtls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The clients' `[security]`, as a certificate fleet writes it: issued under the run's CA
/// (written to files) at handshake time, the server checked against the CA as 127.0.0.1.
fn certificate_security() -> String {
    let (_, cert, key) = bench_ca();
    let (ca_cert, ca_key) = (scratch().join("ca.pem"), scratch().join("ca.key"));
    std::fs::write(&ca_cert, cert).expect("write");
    std::fs::write(&ca_key, key).expect("write");
    format!(
        "[security]\nmode = \"certificate\"\nca_cert = {:?}\nca_key = {:?}\nserver_ca = {:?}\n\
         server_name = \"127.0.0.1\"\n",
        ca_cert.display().to_string(),
        ca_key.display().to_string(),
        ca_cert.display().to_string()
    )
}

/// The embedded server's view of the run's CA: it issues the server's certificate and checks
/// the clients'.
fn device_certificates() -> DeviceCertificates {
    let (authority, ca_pem, _) = bench_ca();
    let server = PeerVerifier::chain(&ca_pem, Some("127.0.0.1"), Usage::Server, "bench CA")
        .expect("verifier");
    let source = DeviceSource::Issued {
        authority: Box::new(authority),
        master: b"dtls bench devices".to_vec(),
    };
    DeviceCertificates::new(source, server)
}

/// The embedded server's DTLS: the shared key, or a certificate from the run's CA (as
/// `lwm2m-swarm run` configures it for a certificate fleet).
fn server_dtls(mode: Mode) -> DtlsServerConfig {
    match mode {
        Mode::Psk => DtlsServerConfig::new(ServerKeys::shared(KEY.as_bytes().to_vec())),
        Mode::Certificate => {
            let devices = device_certificates();
            let names = ["localhost".to_string(), "127.0.0.1".to_string()];
            let unix_origin = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            DtlsServerConfig::with_auth(ServerAuth::Certificate {
                certificate: devices.issue_server(&names).expect("server certificate"),
                clients: Arc::new(devices.client_verifier().expect("client verifier")),
                unix_origin,
            })
        }
    }
}

/// The child: the embedded server on a free loopback port, over DTLS unless `plain`.
fn serve_child(plain: bool, mode: Mode) {
    let dtls = server_dtls(mode);
    let bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let runner = Runner::start_with(bind, ServerConfig::default(), 7, (!plain).then_some(&dtls))
        .expect("child server starts");
    peer_process::announce(runner.local_addr());
    peer_process::wait_for_parent();
    let stats = runner.stop().expect("child server stops");
    eprintln!(
        "  embedded server: {stats}\n  embedded server DTLS: {:?}; datagrams in {}, out {}; {:?}",
        stats.dtls, stats.datagrams_received, stats.datagrams_sent, stats.io
    );
}

/// A DTLS (or, for the baseline, plain) server in a child process.
enum Peer {
    Libcoap(peers::LibcoapRd),
    Embedded(Child),
}

impl Peer {
    fn start(kind: PeerKind, mode: Mode) -> (Peer, std::net::SocketAddr) {
        match kind {
            PeerKind::Libcoap => {
                let rd = match mode {
                    Mode::Psk => peers::LibcoapRd::start(KEY),
                    Mode::Certificate => libcoap_pki(),
                };
                let addr = rd.dtls;
                (Peer::Libcoap(rd), addr)
            }
            PeerKind::Embedded => {
                let flag = match mode {
                    Mode::Psk => "--serve-child",
                    Mode::Certificate => "--serve-child-certificate",
                };
                let (child, addr) = peer_process::spawn(&[flag]);
                (Peer::Embedded(child), addr)
            }
            PeerKind::Plain => {
                let (child, addr) = peer_process::spawn(&["--serve-child-plain"]);
                (Peer::Embedded(child), addr)
            }
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Peer::Libcoap(rd) => rd.pid(),
            Peer::Embedded(child) => child.id(),
        }
    }

    /// Whether the child is still running (libcoap's directory exits on a De-register).
    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .is_ok_and(|stat| !matches!(state_of(&stat), Some('Z' | 'X')))
    }

    fn stop(self) {
        match self {
            Peer::Libcoap(rd) => drop(rd),
            Peer::Embedded(child) => peer_process::stop(child),
        }
    }
}

/// `coap-rd-openssl -c -C`: its certificate from the run's CA (for 127.0.0.1), clients checked
/// against the CA; the PEM files in a scratch directory.
fn libcoap_pki() -> peers::LibcoapRd {
    let dir = scratch();
    let (authority, ca_pem, _) = bench_ca();
    let key = DeviceKey::derive(b"dtls bench", "directory");
    let role = x509::Role::Server(vec!["127.0.0.1".into(), "localhost".into()]);
    let cert = authority
        .issue("127.0.0.1", &key, &role, None)
        .expect("directory certificate");
    let (both, ca) = (dir.join("directory.pem"), dir.join("ca.pem"));
    let pem = x509::certificate_pem(&cert.certificate) + &x509::private_key_pem(&cert.private_key);
    std::fs::write(&both, pem).expect("write");
    std::fs::write(&ca, ca_pem).expect("write");
    peers::LibcoapRd::start_pki(&both, &ca)
}

/// The state letter of a /proc stat line (after the command name in parentheses).
fn state_of(stat: &str) -> Option<char> {
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Resident bytes of a process (`self` or a pid).
fn rss_bytes(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds (user + system) so far, per thread name, of a process (`self` or a pid).
fn thread_cpu(pid: &str) -> Vec<(String, f64)> {
    let mut threads: Vec<(String, f64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some((head, rest)), Some(open)) = (stat.rsplit_once(") "), stat.find('(')) else {
            continue;
        };
        let name = head[open + 1..].to_string();
        // Fields after the name: state is the 1st, utime the 12th, stime the 13th.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            let seconds = (user + system) / TICKS_PER_SECOND;
            match threads.iter_mut().find(|(n, _)| *n == name) {
                Some((_, s)) => *s += seconds,
                None => threads.push((name, seconds)),
            }
        }
    }
    threads.sort_by(|a, b| a.0.cmp(&b.0));
    threads
}

/// Datagrams the kernel dropped for a full receive buffer, host-wide (`RcvbufErrors` in
/// /proc/net/snmp): the server's drops are these less ours.
fn host_udp_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of a whole process so far.
fn total_cpu(pid: &str) -> f64 {
    thread_cpu(pid).iter().map(|(_, s)| s).sum()
}

/// Share of one core each thread used between two readings over `wall`, busiest first; idle
/// threads (< 1%) left out.
fn cpu_shares(before: &[(String, f64)], after: &[(String, f64)], wall: Duration) -> String {
    let mut shares: Vec<(String, f64)> = after
        .iter()
        .map(|(name, s)| {
            let was = before.iter().find(|(n, _)| n == name).map_or(0.0, |b| b.1);
            (name.clone(), (s - was) / wall.as_secs_f64().max(1e-3))
        })
        .filter(|(_, share)| *share >= 0.01)
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    if shares.is_empty() {
        return "idle".to_string();
    }
    let shown: Vec<String> = shares
        .iter()
        .map(|(n, s)| format!("{n} {:.0}%", s * 100.0))
        .collect();
    shown.join(", ")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn reasons(counts: &[(String, u64)]) -> String {
    if counts.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<String> = counts.iter().map(|(r, n)| format!("{r} x{n}")).collect();
    shown.join(", ")
}

/// What one run measured.
struct Figures {
    kind: PeerKind,
    offered: f64,
    /// Sessions open at once (handshakes ok with the client registered), and when that was.
    open: u64,
    all_open_after: Option<Duration>,
    /// Heap and our RSS when every session was open (or at the end of the grace time).
    heap: isize,
    rss_growth: u64,
    peer_rss_growth: u64,
    /// Receive-buffer drops on the host over the ramp.
    host_drops: u64,
    at_open: Snapshot,
}

impl Figures {
    fn achieved(&self) -> f64 {
        let took = self
            .all_open_after
            .unwrap_or(self.at_open.elapsed)
            .as_secs_f64();
        self.at_open.handshakes.ok as f64 / took.max(1e-3)
    }
}

/// One line a second during the ramp: handshakes since the last line, and the CPU each process
/// used meanwhile (who is saturated when handshakes fall behind).
struct Progress<'a> {
    peer_pid: &'a str,
    heap_before: isize,
    sessions: u64,
    previous: Snapshot,
    cpu: (f64, f64),
}

impl<'a> Progress<'a> {
    fn new(peer_pid: &'a str, heap_before: isize, sessions: u64) -> Self {
        Progress {
            peer_pid,
            heap_before,
            sessions,
            previous: Snapshot::default(),
            cpu: (total_cpu("self"), total_cpu(peer_pid)),
        }
    }

    fn show(&mut self, s: &Snapshot) {
        let since = s.elapsed.saturating_sub(self.previous.elapsed);
        if since < Duration::from_secs(1) {
            return;
        }
        let seconds = since.as_secs_f64();
        let h = &s.handshakes;
        let per_second = (h.ok - self.previous.handshakes.ok) as f64 / seconds;
        let cpu = (total_cpu("self"), total_cpu(self.peer_pid));
        println!(
            "  [{:>5.1}s] started {} | handshakes ok {} ({per_second:.0}/s), in progress {}, \
             failed {} | registered {} | CPU ours {:.0}%, server {:.0}% | heap {} B/client",
            s.elapsed.as_secs_f64(),
            s.started,
            h.ok,
            h.in_progress(),
            h.failed,
            s.state(ClientState::Registered),
            100.0 * (cpu.0 - self.cpu.0) / seconds,
            100.0 * (cpu.1 - self.cpu.1) / seconds,
            (counting_alloc::heap_in_use() - self.heap_before) / self.sessions as isize,
        );
        self.previous = s.clone();
        self.cpu = cpu;
    }
}

fn fleet_text(sessions: u64, rate: f64, security: &str) -> String {
    format!(
        "{security}[client]\nlifetime = \"600s\"\nseed = 5\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {sessions}\nrate = {rate}\nhold = \"600s\"\nstop_timeout = \"5s\"\n"
    )
}

/// The clients' credentials: none over plain CoAP, the fleet's with certificates.
fn client_credentials(
    kind: PeerKind,
    mode: Mode,
    fleet: &Fleet,
) -> Option<Arc<dyn CredentialSource>> {
    match (kind, mode) {
        (PeerKind::Plain, _) => None,
        (_, Mode::Psk) => Some(Arc::new(SharedKey {
            key: KEY.as_bytes().to_vec(),
        })),
        (_, Mode::Certificate) => {
            let credentials = fleet
                .credentials()
                .expect("credentials")
                .expect("certificates");
            Some(Arc::new(credentials))
        }
    }
}

fn run(
    kind: PeerKind,
    mode: Mode,
    sessions: u64,
    rate: f64,
    hold: Duration,
    ports: PortRange,
) -> Figures {
    let (peer, server) = Peer::start(kind, mode);
    let peer_pid = peer.pid().to_string();
    let security = match (kind, mode) {
        (PeerKind::Plain, _) | (_, Mode::Psk) => String::new(),
        (_, Mode::Certificate) => certificate_security(),
    };
    let fleet = Fleet::from_toml(&fleet_text(sessions, rate, &security), "dtls-bench")
        .unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet.check(shipped::templates()).expect("templates exist");
    let plan = fleet.plan();
    let deadline = plan.ramp_duration() + GRACE;
    let mut config = EngineConfig::new(server);
    config.ports = Some(ports);
    config.credentials = client_credentials(kind, mode, &fleet);
    println!(
        "\n== {} ({mode:?}): {sessions} sessions offered at {rate}/s, server {server} (pid \
         {peer_pid})",
        kind.name()
    );

    let (heap_before, rss_before) = (counting_alloc::heap_in_use(), rss_bytes("self"));
    let peer_rss_before = rss_bytes(&peer_pid);
    let (cpu_ours, cpu_peer) = (thread_cpu("self"), thread_cpu(&peer_pid));
    let drops_before = host_udp_drops();
    let started = Instant::now();
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    let all_open = |s: &Snapshot| open_sessions(kind, s) == sessions;
    let mut progress = Progress::new(&peer_pid, heap_before, sessions);
    let mut at_open = loop {
        // Sampled often, so the moment the last session opens is seen within 50 ms.
        std::thread::sleep(Duration::from_millis(50));
        let s = engine.snapshot();
        progress.show(&s);
        if all_open(&s) || started.elapsed() >= deadline {
            break s;
        }
    };
    let open_at = started.elapsed();
    let all_open_after = all_open(&at_open).then_some(at_open.elapsed);
    let (heap, rss_growth) = (
        counting_alloc::heap_in_use() - heap_before,
        rss_bytes("self").saturating_sub(rss_before),
    );
    let peer_rss_growth = rss_bytes(&peer_pid).saturating_sub(peer_rss_before);
    let host_drops = host_udp_drops().saturating_sub(drops_before);
    println!(
        "  CPU over the ramp ({:.1} s, 2 cores shared): ours: {}; server: {}",
        open_at.as_secs_f64(),
        cpu_shares(&cpu_ours, &thread_cpu("self"), open_at),
        cpu_shares(&cpu_peer, &thread_cpu(&peer_pid), open_at)
    );

    // Hold every session open, then check none was lost meanwhile.
    std::thread::sleep(hold);
    let after_hold = engine.snapshot();
    println!(
        "  after holding {hold:?}: registered {}, sessions lost {}",
        after_hold.state(ClientState::Registered),
        reasons(&after_hold.handshakes.lost)
    );
    if all_open_after.is_none() {
        at_open = after_hold;
    }
    engine.stop();
    let total = engine.join().expect("engine ends");
    let deregister = total.request(RequestKind::Deregister);
    println!(
        "  stopped: de-registers sent {}, ok {}, timeout {}, aborted {}, unsent {}; server \
         process {}",
        deregister.sent,
        deregister.ok,
        deregister.timeout,
        deregister.aborted,
        deregister.unsent,
        if peer.alive() {
            "still running"
        } else {
            "had exited"
        }
    );
    accounting::assert_consistent(&total);
    peer.stop();
    Figures {
        kind,
        offered: rate,
        open: open_sessions(kind, &at_open),
        all_open_after,
        heap,
        rss_growth,
        peer_rss_growth,
        host_drops,
        at_open,
    }
}

/// Registered clients, over an open session unless the run is plain CoAP.
fn open_sessions(kind: PeerKind, s: &Snapshot) -> u64 {
    let registered = s.state(ClientState::Registered);
    if kind == PeerKind::Plain {
        registered
    } else {
        registered.min(s.handshakes.ok)
    }
}

/// Gives freed heap back to the kernel, so the next run's RSS growth starts from what is live.
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of glibc's allocator; any time is safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn report(f: &Figures, sessions: u64, baseline_heap: Option<isize>) {
    let h = &f.at_open.handshakes;
    println!("\n{} at {}/s offered:", f.kind.name(), f.offered);
    match f.all_open_after {
        Some(at) => println!(
            "  sessions open at once: {} of {sessions}, all after {:.2} s",
            f.open,
            at.as_secs_f64()
        ),
        None => println!(
            "  sessions open at once: {} of {sessions} (not all within the ramp + {GRACE:?})",
            f.open
        ),
    }
    println!(
        "  handshakes/s: {:.0} achieved, {} offered ({:.0}%)",
        f.achieved(),
        f.offered,
        100.0 * f.achieved() / f.offered
    );
    if !h.latency.is_empty() {
        println!(
            "  handshake latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(&h.latency, 0.5),
            ms(&h.latency, 0.99),
            h.latency.max() as f64 / 1000.0
        );
    }
    println!(
        "  handshakes ok {}, failed {} ({}), aborted {}, in progress {}",
        h.ok,
        h.failed,
        reasons(&h.failures),
        h.aborted,
        h.in_progress()
    );
    let retransmissions: u64 = f.at_open.requests.iter().map(|r| r.retransmissions).sum();
    println!(
        "  datagrams dropped for a full receive buffer: {} host-wide, {} of them ours; CoAP \
         retransmissions {retransmissions}",
        f.host_drops, f.at_open.traffic.kernel_drops
    );
    let t = &f.at_open.traffic;
    println!(
        "  ours: datagrams in {}, out {}; not for a client {}, dropped by clients {} (malformed \
         {}, duplicate {}), send errors {}",
        t.datagrams_in,
        t.datagrams_out,
        t.unmatched,
        t.client_unmatched,
        t.malformed,
        t.duplicate,
        t.send_errors
    );
    let per_client = |bytes: f64| bytes / sessions as f64;
    print!(
        "  ours: heap {:.0} B per client, RSS {:.0} B per client",
        per_client(f.heap as f64),
        per_client(f.rss_growth as f64)
    );
    // Clients whose handshake failed hold no session but are not plain clients either: the
    // difference is a per-session figure only when every session is open.
    match baseline_heap {
        Some(plain) if f.all_open_after.is_some() => println!(
            "; DTLS heap {:.0} B per open session (against the plain run)",
            per_client((f.heap - plain) as f64)
        ),
        _ => println!(),
    }
    println!(
        "  server process: RSS +{:.1} MiB, {:.0} B per open session",
        f.peer_rss_growth as f64 / 1_048_576.0,
        f.peer_rss_growth as f64 / f.open.max(1) as f64
    );
}

/// What building one client's DTLS configuration costs: every handshake builds one, so the
/// provider's self-test must stay cheap (it skips ECDH and ECDSA).
fn configuration_cost() -> Duration {
    let psk = lwm2m_swarm::security::Psk {
        identity: b"x".to_vec(),
        key: vec![0x11; 16],
    };
    let params = lwm2m_swarm::security::dtls::DtlsParams::default();
    let started = Instant::now();
    for seed in 0..200 {
        std::hint::black_box(lwm2m_swarm::security::dtls::client_config(
            &psk, &params, seed,
        ));
    }
    started.elapsed() / 200
}

fn main() {
    if std::env::args().any(|a| a == "--serve-child") {
        serve_child(false, Mode::Psk);
        return;
    }
    if std::env::args().any(|a| a == "--serve-child-certificate") {
        serve_child(false, Mode::Certificate);
        return;
    }
    if std::env::args().any(|a| a == "--serve-child-plain") {
        serve_child(true, Mode::Psk);
        return;
    }
    let args = parse_args();
    println!(
        "client handshake configuration: {:.0} us each",
        configuration_cost().as_secs_f64() * 1e6
    );
    println!(
        "dtls ({:?}): {} sessions, offered {:?}/s, against {:?}; load average {}",
        args.mode,
        args.sessions,
        args.rates,
        args.peers.iter().map(|p| p.name()).collect::<Vec<_>>(),
        load_average()
    );
    // A block of 100 source ports per run (with 127.x addresses: 20,000 distinct sources in
    // 200 addresses), each run a block of its own within 500 ports from --first-port.
    let mut block = 0u16;
    let mut next_ports = || {
        let first = args.first_port + (block % 5) * 100;
        block += 1;
        PortRange::new(first, first + 99).expect("ports")
    };
    let mut results = Vec::new();
    for &rate in &args.rates {
        for &kind in &args.peers {
            let ports = next_ports();
            results.push(run(kind, args.mode, args.sessions, rate, args.hold, ports));
            trim_heap();
        }
    }
    // Plain CoAP registers fast: the baseline need not wait for a slow DTLS rate.
    let baseline_rate = args.rates.iter().copied().fold(5_000.0, f64::max);
    let plain = run(
        PeerKind::Plain,
        args.mode,
        args.sessions,
        baseline_rate,
        Duration::ZERO,
        next_ports(),
    );
    let baseline = plain.all_open_after.map(|_| plain.heap);
    println!(
        "\nplain CoAP baseline: heap {:.0} B per client",
        plain.heap as f64 / args.sessions as f64
    );
    for f in &results {
        report(f, args.sessions, baseline);
    }
    // The box is shared: other work running meanwhile shows here.
    println!("\nload average at the end: {}", load_average());
    if args.mode == Mode::Certificate {
        let _ = std::fs::remove_dir_all(scratch());
    }
}
