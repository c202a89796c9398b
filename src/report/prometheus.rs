//! `--prometheus ADDR`: the run's counters and latency quantiles in the Prometheus text format,
//! served at `GET /metrics` by one small thread. It reads the latest snapshot the CLI publishes
//! (an `Arc` swapped under a lock held for a pointer copy), so a slow scraper never touches the
//! engine.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::client::{
    CLIENT_STATES, OPERATION_KINDS, REQUEST_KINDS, operation_name, request_name, state_name,
};
use crate::metrics::{RequestStats, Snapshot};

/// How long one scrape may take to send its request and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

type Latest = Arc<Mutex<Arc<Snapshot>>>;

/// The running exporter; stops when dropped.
pub struct Exporter {
    addr: SocketAddr,
    latest: Latest,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds `addr` (as given: loopback unless told otherwise) and starts serving.
    pub fn start(addr: SocketAddr) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        // Non-blocking accept so the thread notices `stop` without a wake-up connection.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let latest: Latest = Arc::new(Mutex::new(Arc::new(Snapshot::default())));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (latest, stop) = (Arc::clone(&latest), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("prometheus".into())
                .spawn(move || serve(&listener, &latest, &stop))?
        };
        Ok(Exporter {
            addr,
            latest,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `snapshot` what the next scrape sees.
    pub fn publish(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, latest: &Latest, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let snapshot = Arc::clone(&latest.lock().unwrap_or_else(PoisonError::into_inner));
                // A scraper that misbehaves loses its own answer, nothing else.
                let _ = answer(stream, &snapshot);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn answer(mut stream: TcpStream, snapshot: &Snapshot) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    // Only the request line matters; read until the headers end (or 8 KiB), within one overall
    // deadline, so a scraper that trickles bytes cannot hold the one serving thread.
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let ended =
        |r: &[u8]| r.windows(4).any(|w| w == b"\r\n\r\n") || r.windows(2).any(|w| w == b"\n\n");
    while !ended(&request) && request.len() < 8192 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (status, kind, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(snapshot),
        ),
        (Some("GET"), Some(_)) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics only\n".into(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The exposition text for one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "elapsed_seconds",
        "gauge",
        "Time since the run started.",
        [(String::new(), s.elapsed.as_secs_f64())],
    );
    let ops = || {
        REQUEST_KINDS
            .iter()
            .map(|k| (request_name(*k), s.request(*k)))
    };
    let by_op = |value: fn(&RequestStats) -> u64| {
        ops().map(move |(op, r)| (format!("{{op=\"{op}\"}}"), value(r) as f64))
    };
    family(
        &mut out,
        "requests_sent_total",
        "counter",
        "Client-initiated requests sent, by operation.",
        by_op(|r| r.sent),
    );
    family(
        &mut out,
        "requests_total",
        "counter",
        "Client-initiated requests ended, by operation and outcome.",
        ops().flat_map(|(op, r)| {
            [
                ("ok", r.ok),
                ("error", r.error),
                ("timeout", r.timeout),
                ("aborted", r.aborted),
            ]
            .map(|(outcome, n)| (format!("{{op=\"{op}\",outcome=\"{outcome}\"}}"), n as f64))
        }),
    );
    family(
        &mut out,
        "requests_in_flight",
        "gauge",
        "Requests sent and not ended yet.",
        by_op(RequestStats::in_flight),
    );
    family(
        &mut out,
        "retransmissions_total",
        "counter",
        "CoAP retransmissions of client-initiated requests.",
        by_op(|r| r.retransmissions),
    );
    family(
        &mut out,
        "latency_seconds",
        "summary",
        "Latency from when a request was due (corrected for coordinated omission), whole run.",
        ops().flat_map(|(op, r)| latency_samples(op, &r.latency)),
    );
    others(&mut out, s);
    handshake_families(&mut out, &s.handshakes, &s.connections);
    bootstrap_families(&mut out, &s.bootstrap);
    out
}

/// Clients, server operations and traffic.
fn others(out: &mut String, s: &Snapshot) {
    family(
        out,
        "clients",
        "gauge",
        "Simulated clients by state.",
        CLIENT_STATES.iter().map(|st| {
            (
                format!("{{state=\"{}\"}}", state_name(*st)),
                s.state(*st) as f64,
            )
        }),
    );
    family(
        out,
        "server_operations_total",
        "counter",
        "Server-initiated operations the clients answered, by kind and outcome.",
        OPERATION_KINDS.iter().flat_map(|k| {
            let o = s.operation(*k);
            let op = operation_name(*k);
            [("ok", o.ok), ("error", o.error)]
                .map(|(outcome, n)| (format!("{{op=\"{op}\",outcome=\"{outcome}\"}}"), n as f64))
        }),
    );
    let t = &s.traffic;
    let directions = |sent: u64, received: u64| {
        [
            ("{direction=\"out\"}".to_string(), sent as f64),
            ("{direction=\"in\"}".to_string(), received as f64),
        ]
    };
    family(
        out,
        "datagrams_total",
        "counter",
        "UDP datagrams, by direction.",
        directions(t.datagrams_out, t.datagrams_in),
    );
    family(
        out,
        "bytes_total",
        "counter",
        "UDP payload bytes, by direction.",
        directions(t.bytes_out, t.bytes_in),
    );
    family(
        out,
        "kernel_drops_total",
        "counter",
        "Datagrams the kernel dropped because a receive buffer was full.",
        [(String::new(), t.kernel_drops as f64)],
    );
}

fn handshake_families(
    out: &mut String,
    dtls: &crate::metrics::HandshakeStats,
    tcp: &crate::metrics::HandshakeStats,
) {
    let outcomes = |h: &crate::metrics::HandshakeStats| {
        [("ok", h.ok), ("failed", h.failed), ("aborted", h.aborted)]
            .map(|(outcome, n)| (format!("{{outcome=\"{outcome}\"}}"), n as f64))
    };
    family(
        out,
        "dtls_handshakes_total",
        "counter",
        "DTLS handshakes ended, by outcome (every one begun ends once).",
        outcomes(dtls),
    );
    family(
        out,
        "tcp_connections_total",
        "counter",
        "TCP/TLS connection setups (connect, TLS, CSM) ended, by outcome (every one begun ends once).",
        outcomes(tcp),
    );
}

fn bootstrap_families(out: &mut String, b: &crate::metrics::BootstrapStats) {
    family(
        out,
        "bootstraps_total",
        "counter",
        "Bootstrap attempts ended, by outcome (every one begun ends once).",
        [
            ("finished", b.finished),
            ("failed", b.failed),
            ("aborted", b.aborted),
        ]
        .map(|(outcome, n)| (format!("{{outcome=\"{outcome}\"}}"), n as f64)),
    );
    let mut samples = latency_samples("bootstrap", &b.duration);
    // One series, no `op` label: the family is about bootstraps only.
    for (labels, _) in &mut samples {
        *labels = labels
            .replace("op=\"bootstrap\",", "")
            .replace("{op=\"bootstrap\"}", "");
    }
    family(
        out,
        "bootstrap_duration_seconds",
        "summary",
        "From when the Bootstrap-Request was due to the Bootstrap-Finish, finished bootstraps.",
        samples,
    );
}

/// One metric family: HELP, TYPE, then samples (`suffix{labels}`, value).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, f64)>,
) {
    let _ = writeln!(out, "# HELP lwm2m_swarm_{name} {help}");
    let _ = writeln!(out, "# TYPE lwm2m_swarm_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "lwm2m_swarm_{name}{labels} {value}");
    }
}

/// A summary's quantiles (seconds; 0 with no samples), `_sum` and `_count`.
fn latency_samples(op: &str, h: &Histogram<u64>) -> Vec<(String, f64)> {
    let mut samples: Vec<(String, f64)> = [0.5, 0.9, 0.99, 0.999, 1.0]
        .iter()
        .map(|q| {
            let us = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(*q)
            };
            (format!("{{op=\"{op}\",quantile=\"{q}\"}}"), us as f64 / 1e6)
        })
        .collect();
    samples.push((
        format!("_sum{{op=\"{op}\"}}"),
        h.mean() * h.len() as f64 / 1e6,
    ));
    samples.push((format!("_count{{op=\"{op}\"}}"), h.len() as f64));
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn serves_the_latest_snapshot_over_real_tcp() {
        let exporter = Exporter::start(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = exporter.local_addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let before = get(addr, "/metrics");
        assert!(before.starts_with("HTTP/1.1 200 OK\r\n"), "{before}");
        assert!(before.contains("lwm2m_swarm_requests_sent_total{op=\"register\"} 0\n"));

        let mut s = Snapshot::default();
        s.requests[0].sent = 7;
        s.requests[0].ok = 6;
        s.requests[0].latency.record(2_000).unwrap();
        s.states[crate::client::state_index(crate::client::ClientState::Registered)] = 5;
        s.handshakes.ok = 4;
        s.handshakes.failed = 1;
        s.bootstrap.finished = 3;
        s.bootstrap.duration.record(2_000).unwrap();
        s.connections.aborted = 2;
        exporter.publish(s);
        let after = get(addr, "/metrics");
        let (head, body) = after.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        for sample in [
            "lwm2m_swarm_requests_sent_total{op=\"register\"} 7",
            "lwm2m_swarm_requests_total{op=\"register\",outcome=\"ok\"} 6",
            "lwm2m_swarm_requests_in_flight{op=\"register\"} 1",
            "lwm2m_swarm_latency_seconds{op=\"register\",quantile=\"0.99\"} 0.002",
            "lwm2m_swarm_latency_seconds_count{op=\"register\"} 1",
            "lwm2m_swarm_clients{state=\"registered\"} 5",
            "lwm2m_swarm_dtls_handshakes_total{outcome=\"ok\"} 4",
            "lwm2m_swarm_dtls_handshakes_total{outcome=\"failed\"} 1",
            "lwm2m_swarm_requests_sent_total{op=\"bootstrap\"} 0",
            "lwm2m_swarm_bootstraps_total{outcome=\"finished\"} 3",
            "lwm2m_swarm_bootstrap_duration_seconds{quantile=\"0.5\"} 0.002",
            "lwm2m_swarm_bootstrap_duration_seconds_count 1",
            "lwm2m_swarm_tcp_connections_total{outcome=\"aborted\"} 2",
            "# TYPE lwm2m_swarm_latency_seconds summary",
        ] {
            assert!(
                body.lines().any(|l| l == sample),
                "{sample} missing:\n{body}"
            );
        }
        // Every sample line is NAME{LABELS} VALUE with a numeric value.
        for l in body.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
        assert!(get(addr, "/").starts_with("HTTP/1.1 404"));
        drop(exporter);
        assert!(
            TcpStream::connect(addr).is_err(),
            "the listener closes with the exporter"
        );
    }
}
