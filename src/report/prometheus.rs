//! `--prometheus ADDR`: the run's metrics in the Prometheus text format (0.0.4), served at
//! `GET /metrics` by one small thread. Each scrape encodes the latest snapshot the CLI publishes
//! (an `Arc` swapped under a lock held for a pointer copy) with `prometheus-client`, so a slow
//! scraper never touches the engine.
//!
//! Every series carries `shard="K/N"` so dashboards can sum over shards and pods. Latencies are
//! histograms (`_bucket{le}`) built at scrape time from the engine's `HdrHistogram`s, one per
//! request kind (label `op`), never per client; a kind with no latency yet has no series.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text::{self, CONTENT_TYPE};
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::schema::{FirmwareCampaign, code_name};
use crate::client::{
    CLIENT_STATES, OPERATION_KINDS, REQUEST_KINDS, operation_name, request_name, state_name,
};
use crate::metrics::{BootstrapStats, FirmwareStats, HandshakeStats, RequestStats, Snapshot};

/// How long one scrape may take to send its request and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Upper bounds of the latency buckets in µs: 1-2-5 steps (about 3 per decade) from 100 µs, up
/// to the 60 s the histograms record.
const BUCKETS_US: [u64; 19] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 60_000_000,
];

/// Firmware downloads and updates: 1 s to the day the histograms record, 1-2-5 steps.
const FIRMWARE_BUCKETS_US: [u64; 15] = [
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
    20_000_000_000,
    50_000_000_000,
];

type Latest = Arc<Mutex<Arc<Snapshot>>>;
/// The embedded server's campaign counts, published beside the snapshot; `None` without one.
type LatestCampaign = Arc<Mutex<Option<Arc<FirmwareCampaign>>>>;

/// Where the numbers come from: labels on every series and in `lwm2m_swarm_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// This process's shard of the test, 0-based, of `shards`.
    pub shard: u32,
    pub shards: u32,
    /// The same for every shard of one test; empty when unknown.
    pub test_hash: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            shard: 0,
            shards: 1,
            test_hash: String::new(),
        }
    }
}

/// The running exporter; stops when dropped.
pub struct Exporter {
    addr: SocketAddr,
    latest: Latest,
    campaign: LatestCampaign,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds `addr` (as given: loopback unless told otherwise) and starts serving.
    pub fn start(addr: SocketAddr, identity: &Identity) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        // Non-blocking accept so the thread notices `stop` without a wake-up connection.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let latest: Latest = Arc::new(Mutex::new(Arc::new(Snapshot::default())));
        let campaign: LatestCampaign = Arc::default();
        let registry = registry(identity, Arc::clone(&latest), Arc::clone(&campaign));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("prometheus".into())
                .spawn(move || serve(&listener, &registry, &stop))?
        };
        Ok(Exporter {
            addr,
            latest,
            campaign,
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

    /// Makes the embedded server's campaign counts part of the next scrape.
    pub fn publish_campaign(&self, campaign: FirmwareCampaign) {
        let campaign = Some(Arc::new(campaign));
        *self.campaign.lock().unwrap_or_else(PoisonError::into_inner) = campaign;
    }

    /// Goes on serving what was published last for `how_long`, or until `interrupted` says so,
    /// then stops: the scrape after the run's end still sees its final numbers.
    pub fn linger(self, how_long: Duration, interrupted: impl Fn() -> bool) {
        let until = Instant::now() + how_long;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || interrupted() {
                return;
            }
            std::thread::sleep(left.min(POLL));
        }
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

fn serve(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A scraper that misbehaves loses its own answer, nothing else.
                let _ = answer(stream, registry);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn answer(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
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
        (Some("GET"), Some("/metrics")) => ("200 OK", CONTENT_TYPE, encode(registry)),
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

/// The exposition text for one snapshot (what a scrape would serve).
#[cfg(test)]
fn render(snapshot: &Snapshot, identity: &Identity) -> String {
    render_with(snapshot, None, identity)
}

/// [`render`] with the embedded server's campaign counts.
#[cfg(test)]
fn render_with(
    snapshot: &Snapshot,
    campaign: Option<&FirmwareCampaign>,
    identity: &Identity,
) -> String {
    let latest = Arc::new(Mutex::new(Arc::new(snapshot.clone())));
    let campaign = Arc::new(Mutex::new(campaign.cloned().map(Arc::new)));
    encode(&registry(identity, latest, campaign))
}

fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail, nor can our collector.
    let _ = prometheus_text::encode(&mut text, registry);
    text
}

/// The info metric and the snapshot's families, all labelled with the shard.
fn registry(identity: &Identity, latest: Latest, campaign: LatestCampaign) -> Registry {
    let shard = format!("{}/{}", identity.shard, identity.shards);
    let mut registry =
        Registry::with_labels([(Cow::Borrowed("shard"), Cow::Owned(shard))].into_iter());
    registry.register(
        "lwm2m_swarm",
        "The simulator's version and test (always 1)",
        Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("test_hash", identity.test_hash.clone()),
        ]),
    );
    registry.register_collector(Box::new(SnapshotMetrics { latest, campaign }));
    registry
}

/// Encodes whatever snapshot was published last, at each scrape.
#[derive(Debug)]
struct SnapshotMetrics {
    latest: Latest,
    campaign: LatestCampaign,
}

impl Collector for SnapshotMetrics {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let s = Arc::clone(&self.latest.lock().unwrap_or_else(PoisonError::into_inner));
        gauges(
            &mut out,
            "lwm2m_swarm_elapsed_seconds",
            "Time since the run started.",
            [(labels([]), s.elapsed.as_secs_f64())],
        )?;
        gauges(
            &mut out,
            "lwm2m_swarm_clients",
            "Simulated clients by state.",
            CLIENT_STATES.map(|st| (labels([("state", state_name(st))]), s.state(st))),
        )?;
        request_families(&mut out, &s)?;
        counters(
            &mut out,
            "lwm2m_swarm_server_operations",
            "Server-initiated operations the clients answered, by kind and outcome.",
            OPERATION_KINDS.iter().flat_map(|k| {
                let o = s.operation(*k);
                let op = operation_name(*k);
                [("ok", o.ok), ("error", o.error)]
                    .map(|(outcome, n)| (labels([("op", op), ("outcome", outcome)]), n))
            }),
        )?;
        traffic_families(&mut out, &s)?;
        handshake_families(&mut out, &s.handshakes, &s.connections)?;
        bootstrap_families(&mut out, &s.bootstrap)?;
        firmware_families(&mut out, &s.firmware)?;
        let campaign = self
            .campaign
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        campaign.map_or(Ok(()), |c| campaign_families(&mut out, &c))
    }
}

/// Client-initiated requests: counts by kind, outcome and answer code; latency histograms.
fn request_families(out: &mut DescriptorEncoder, s: &Snapshot) -> fmt::Result {
    let ops = || REQUEST_KINDS.map(|k| (request_name(k), s.request(k)));
    let by_op =
        |value: fn(&RequestStats) -> u64| ops().map(|(op, r)| (labels([("op", op)]), value(r)));
    counters(
        out,
        "lwm2m_swarm_requests_sent",
        "Client-initiated requests sent, by operation.",
        by_op(|r| r.sent),
    )?;
    counters(
        out,
        "lwm2m_swarm_requests",
        "Client-initiated requests ended, by operation and outcome.",
        ops().into_iter().flat_map(|(op, r)| {
            [
                ("ok", r.ok),
                ("error", r.error),
                ("timeout", r.timeout),
                ("aborted", r.aborted),
                ("unacknowledged", r.unacknowledged),
            ]
            .map(|(outcome, n)| (labels([("op", op), ("outcome", outcome)]), n))
        }),
    )?;
    counters(
        out,
        "lwm2m_swarm_answers",
        "Answers to client-initiated requests, by operation and CoAP code (RST: a reset).",
        ops().into_iter().flat_map(|(op, r)| {
            let mut codes = r.codes.clone();
            codes.sort_unstable();
            codes
                .into_iter()
                .map(move |(code, n)| (labels([("op", op), ("code", &code_name(code))]), n))
        }),
    )?;
    gauges(
        out,
        "lwm2m_swarm_requests_in_flight",
        "Requests sent and not ended yet.",
        by_op(RequestStats::in_flight),
    )?;
    counters(
        out,
        "lwm2m_swarm_retransmissions",
        "CoAP retransmissions of client-initiated requests.",
        by_op(|r| r.retransmissions),
    )?;
    histograms(
        out,
        "lwm2m_swarm_latency_seconds",
        "Latency from when a request was due (corrected for coordinated omission), whole run.",
        ops().map(|(op, r)| (labels([("op", op)]), &r.latency)),
    )
}

fn traffic_families(out: &mut DescriptorEncoder, s: &Snapshot) -> fmt::Result {
    let t = &s.traffic;
    let directions = |sent: u64, received: u64| {
        [
            (labels([("direction", "out")]), sent),
            (labels([("direction", "in")]), received),
        ]
    };
    counters(
        out,
        "lwm2m_swarm_datagrams",
        "UDP datagrams, by direction.",
        directions(t.datagrams_out, t.datagrams_in),
    )?;
    counters(
        out,
        "lwm2m_swarm_bytes",
        "UDP payload bytes, by direction.",
        directions(t.bytes_out, t.bytes_in),
    )?;
    counters(
        out,
        "lwm2m_swarm_kernel_drops",
        "Datagrams the kernel dropped because a receive buffer was full.",
        [(labels([]), t.kernel_drops)],
    )?;
    let n = &t.network;
    counters(
        out,
        "lwm2m_swarm_network_emulated",
        "What the emulated link ([network]) did to datagrams, by effect.",
        [
            ("dropped", n.dropped),
            ("delayed", n.delayed),
            ("duplicated", n.duplicated),
            ("reordered", n.reordered),
            ("rebound", n.rebound),
            ("to_old_address", n.to_old_address),
        ]
        .map(|(effect, count)| (labels([("effect", effect)]), count)),
    )
}

fn handshake_families(
    out: &mut DescriptorEncoder,
    dtls: &HandshakeStats,
    tcp: &HandshakeStats,
) -> fmt::Result {
    let outcomes = |h: &HandshakeStats| {
        [("ok", h.ok), ("failed", h.failed), ("aborted", h.aborted)]
            .map(|(outcome, n)| (labels([("outcome", outcome)]), n))
    };
    counters(
        out,
        "lwm2m_swarm_dtls_handshakes",
        "DTLS handshakes ended, by outcome (every one begun ends once).",
        outcomes(dtls),
    )?;
    histograms(
        out,
        "lwm2m_swarm_dtls_handshake_duration_seconds",
        "From a DTLS handshake's first flight to its end, successful handshakes.",
        [(labels([]), &dtls.latency)],
    )?;
    counters(
        out,
        "lwm2m_swarm_tcp_connections",
        "TCP/TLS connection setups (connect, TLS, CSM) ended, by outcome (every one begun ends \
         once).",
        outcomes(tcp),
    )
}

fn bootstrap_families(out: &mut DescriptorEncoder, b: &BootstrapStats) -> fmt::Result {
    counters(
        out,
        "lwm2m_swarm_bootstraps",
        "Bootstrap attempts ended, by outcome (every one begun ends once).",
        [
            ("finished", b.finished),
            ("failed", b.failed),
            ("aborted", b.aborted),
        ]
        .map(|(outcome, n)| (labels([("outcome", outcome)]), n)),
    )?;
    histograms(
        out,
        "lwm2m_swarm_bootstrap_duration_seconds",
        "From when the Bootstrap-Request was due to the Bootstrap-Finish, finished bootstraps.",
        [(labels([]), &b.duration)],
    )
}

fn firmware_families(out: &mut DescriptorEncoder, f: &FirmwareStats) -> fmt::Result {
    if !f.any() {
        return Ok(());
    }
    counters(
        out,
        "lwm2m_swarm_firmware",
        "Firmware (object 5) steps: downloads started and completed, updates done.",
        [
            ("started", f.started),
            ("downloaded", f.downloaded),
            ("updated", f.updated),
        ]
        .map(|(step, n)| (labels([("step", step)]), n)),
    )?;
    counters(
        out,
        "lwm2m_swarm_firmware_failures",
        "Firmware downloads and updates failed, by reason (integrity, out-of-storage...).",
        f.failed
            .iter()
            .map(|(reason, n)| (labels([("reason", reason)]), *n)),
    )?;
    for (name, help, h) in [
        (
            "lwm2m_swarm_firmware_download_seconds",
            "From a firmware download's start to its last byte.",
            &f.download_time,
        ),
        (
            "lwm2m_swarm_firmware_update_seconds",
            "From the Execute of /5/0/2 to the Register with the new version answered.",
            &f.update_time,
        ),
    ] {
        histograms_in(out, name, help, [(labels([]), h)], &FIRMWARE_BUCKETS_US)?;
    }
    Ok(())
}

/// The embedded server's firmware campaigns: devices by step and by failure, those waiting and
/// downloading now, and the image served.
fn campaign_families(out: &mut DescriptorEncoder, c: &FirmwareCampaign) -> fmt::Result {
    counters(
        out,
        "lwm2m_swarm_campaign_devices",
        "Devices of the embedded server's firmware campaigns, by step reached.",
        [
            ("targeted", c.targeted),
            ("started", c.started),
            ("downloaded", c.downloaded),
            ("updated", c.updated),
            ("failed", c.failed),
        ]
        .map(|(step, n)| (labels([("step", step)]), n)),
    )?;
    counters(
        out,
        "lwm2m_swarm_campaign_failures",
        "Campaign devices failed, by reason (timeout, integrity-check...).",
        c.failures
            .iter()
            .map(|(reason, n)| (labels([("reason", reason)]), *n)),
    )?;
    gauges(
        out,
        "lwm2m_swarm_campaign_in_progress",
        "Campaign devices waiting for a download slot, and downloading, now.",
        [("waiting", c.waiting), ("downloading", c.downloading)]
            .map(|(state, n)| (labels([("state", state)]), n)),
    )?;
    counters(
        out,
        "lwm2m_swarm_campaign_served_blocks",
        "Block2 GETs of a campaign's image the embedded server answered.",
        [(labels([]), c.blocks_served)],
    )?;
    counters(
        out,
        "lwm2m_swarm_campaign_served_bytes",
        "Bytes of a campaign's image the embedded server served.",
        [(labels([]), c.bytes_served)],
    )
}

/// One series' labels (besides the registry's `shard`).
type Labels = Vec<(&'static str, String)>;

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// A counter family (`NAME_total`); `name` without the suffix.
fn counters(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

fn gauges<V: EncodeGaugeValue>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// A histogram family from µs `HdrHistogram`s; empty ones have no series (and a family with no
/// series no HELP/TYPE either), so no quantile is ever computed from nothing.
fn histograms<'h>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, &'h Histogram<u64>)>,
) -> fmt::Result {
    histograms_in(out, name, help, series, &BUCKETS_US)
}

/// [`histograms`] with its own bucket bounds (µs).
fn histograms_in<'h>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, &'h Histogram<u64>)>,
    bounds: &[u64],
) -> fmt::Result {
    let series: Vec<_> = series.into_iter().filter(|(_, h)| !h.is_empty()).collect();
    if series.is_empty() {
        return Ok(());
    }
    let mut family = out.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        // HdrHistogram keeps no exact sum: the mean (of bucket midpoints) times the count.
        let sum_s = h.mean() * h.len() as f64 / 1e6;
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum_s, h.len(), &buckets(h, bounds), None)?;
    }
    Ok(())
}

/// Each bucket's own count (the encoder accumulates) at `BUCKETS_US`, in seconds, then +Inf. A
/// value counts as at most a bound when it is within the histogram's resolution (0.1%) of it.
fn buckets(h: &Histogram<u64>, bounds: &[u64]) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = bounds
        .iter()
        .map(|&le| {
            let up_to = h.count_between(0, le).max(below);
            let own = up_to - below;
            below = up_to;
            (le as f64 / 1e6, own)
        })
        .collect();
    buckets.push((f64::INFINITY, h.len().saturating_sub(below)));
    buckets
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
        let identity = Identity {
            shard: 2,
            shards: 4,
            test_hash: "abc123".into(),
        };
        let exporter = Exporter::start(SocketAddr::from(([127, 0, 0, 1], 0)), &identity).unwrap();
        let addr = exporter.local_addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let before = get(addr, "/metrics");
        assert!(before.starts_with("HTTP/1.1 200 OK\r\n"), "{before}");
        assert!(
            before.contains("lwm2m_swarm_requests_sent_total{shard=\"2/4\",op=\"register\"} 0\n")
        );

        let mut s = Snapshot::default();
        s.requests[0].sent = 7;
        s.requests[0].ok = 6;
        s.requests[0].codes = vec![(Some(0x41), 6)];
        s.requests[0].latency.record(2_000).unwrap();
        s.states[crate::client::state_index(crate::client::ClientState::Registered)] = 5;
        s.handshakes.ok = 4;
        s.handshakes.failed = 1;
        s.traffic.network.dropped = 3;
        exporter.publish(s);
        let after = get(addr, "/metrics");
        let (head, body) = after.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        for sample in [
            "lwm2m_swarm_info{shard=\"2/4\",version=\"0.1.0\",test_hash=\"abc123\"} 1",
            "lwm2m_swarm_requests_sent_total{shard=\"2/4\",op=\"register\"} 7",
            "lwm2m_swarm_requests_total{shard=\"2/4\",op=\"register\",outcome=\"ok\"} 6",
            "lwm2m_swarm_answers_total{shard=\"2/4\",op=\"register\",code=\"2.01\"} 6",
            "lwm2m_swarm_requests_in_flight{shard=\"2/4\",op=\"register\"} 1",
            "lwm2m_swarm_latency_seconds_count{shard=\"2/4\",op=\"register\"} 1",
            "lwm2m_swarm_clients{shard=\"2/4\",state=\"registered\"} 5",
            "lwm2m_swarm_dtls_handshakes_total{shard=\"2/4\",outcome=\"failed\"} 1",
            "lwm2m_swarm_network_emulated_total{shard=\"2/4\",effect=\"dropped\"} 3",
            "lwm2m_swarm_network_emulated_total{shard=\"2/4\",effect=\"rebound\"} 0",
        ] {
            assert!(
                body.lines().any(|l| l == sample),
                "{sample} missing:\n{body}"
            );
        }
        assert!(get(addr, "/").starts_with("HTTP/1.1 404"));
        drop(exporter);
        assert!(
            TcpStream::connect(addr).is_err(),
            "the listener closes with the exporter"
        );
    }

    /// The sample lines of `family` (its name followed by `{`, `_bucket{`, ...).
    fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(family)
                    .is_some_and(|r| r.starts_with(['{', '_']))
            })
            .collect()
    }

    #[test]
    fn latency_is_a_cumulative_histogram_per_kind_with_answers_only() {
        let mut s = Snapshot::default();
        // Register: 150 µs, 3 ms twice, and 60 s, the most the histograms hold.
        for us in [150, 3_000, 3_000, 60_000_000] {
            s.requests[0].latency.record(us).unwrap();
        }
        let text = render(&s, &Identity::default());
        let register = "{shard=\"0/1\",op=\"register\"";
        let bucket = |le: &str| {
            let line = format!("lwm2m_swarm_latency_seconds_bucket{register},le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&line))
                .unwrap_or_else(|| panic!("no bucket le={le}:\n{text}"))
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(
            ["0.0001", "0.0002", "0.002", "0.005", "50", "60", "+Inf"].map(bucket),
            [0, 1, 1, 3, 3, 4, 4]
        );
        let series = samples(&text, "lwm2m_swarm_latency_seconds");
        // 19 bounds and +Inf, _sum and _count: for register only, the kinds with no latency
        // have no series at all (no quantile can be computed from nothing).
        assert_eq!(series.len(), 22, "{series:#?}");
        assert!(series.iter().all(|l| l.contains(register)), "{series:#?}");
        let sum: f64 = series
            .iter()
            .find_map(|l| l.strip_prefix(&format!("lwm2m_swarm_latency_seconds_sum{register}}} ")))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 60.006_15).abs() < 0.1, "{sum}");
        assert!(text.contains(&format!(
            "lwm2m_swarm_latency_seconds_count{register}}} 4\n"
        )));
        for family in [
            "lwm2m_swarm_bootstrap_duration_seconds",
            "lwm2m_swarm_dtls_handshake_duration_seconds",
        ] {
            assert!(!text.contains(family), "{family} with no samples:\n{text}");
        }
    }

    #[test]
    fn firmware_steps_failures_and_times_are_families() {
        let mut s = Snapshot::default();
        assert!(!render(&s, &Identity::default()).contains("firmware"));
        s.firmware.started = 3;
        s.firmware.downloaded = 2;
        s.firmware.updated = 1;
        s.firmware.failed = vec![("integrity".into(), 1)];
        // 3 minutes: past the 60 s the request histograms record.
        s.firmware.download_time.record(180_000_000).unwrap();
        let text = render(&s, &Identity::default());
        for line in [
            "lwm2m_swarm_firmware_total{shard=\"0/1\",step=\"started\"} 3\n",
            "lwm2m_swarm_firmware_total{shard=\"0/1\",step=\"updated\"} 1\n",
            "lwm2m_swarm_firmware_failures_total{shard=\"0/1\",reason=\"integrity\"} 1\n",
            "lwm2m_swarm_firmware_download_seconds_bucket{shard=\"0/1\",le=\"100\"} 0\n",
            "lwm2m_swarm_firmware_download_seconds_bucket{shard=\"0/1\",le=\"200\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("lwm2m_swarm_firmware_update_seconds"));
    }

    #[test]
    fn campaign_steps_failures_and_slots_are_families() {
        let s = Snapshot::default();
        assert!(!render(&s, &Identity::default()).contains("campaign"));
        let campaign = FirmwareCampaign {
            targeted: 10,
            waiting: 2,
            started: 8,
            downloading: 3,
            downloaded: 4,
            updated: 3,
            failed: 2,
            failures: [
                ("timeout".to_string(), 1),
                ("integrity-check".to_string(), 1),
            ]
            .into(),
            blocks_served: 40,
            bytes_served: 40_960,
            ..FirmwareCampaign::default()
        };
        let text = render_with(&s, Some(&campaign), &Identity::default());
        for line in [
            "lwm2m_swarm_campaign_devices_total{shard=\"0/1\",step=\"targeted\"} 10\n",
            "lwm2m_swarm_campaign_devices_total{shard=\"0/1\",step=\"started\"} 8\n",
            "lwm2m_swarm_campaign_devices_total{shard=\"0/1\",step=\"downloaded\"} 4\n",
            "lwm2m_swarm_campaign_devices_total{shard=\"0/1\",step=\"updated\"} 3\n",
            "lwm2m_swarm_campaign_devices_total{shard=\"0/1\",step=\"failed\"} 2\n",
            "lwm2m_swarm_campaign_failures_total{shard=\"0/1\",reason=\"timeout\"} 1\n",
            "lwm2m_swarm_campaign_in_progress{shard=\"0/1\",state=\"waiting\"} 2\n",
            "lwm2m_swarm_campaign_in_progress{shard=\"0/1\",state=\"downloading\"} 3\n",
            "lwm2m_swarm_campaign_served_blocks_total{shard=\"0/1\"} 40\n",
            "lwm2m_swarm_campaign_served_bytes_total{shard=\"0/1\"} 40960\n",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn answer_codes_are_labels_and_resets_are_named() {
        let mut s = Snapshot::default();
        s.requests[1].codes = vec![(Some(0x84), 2), (None, 1), (Some(0x44), 5)];
        let text = render(&s, &Identity::default());
        assert_eq!(
            samples(&text, "lwm2m_swarm_answers_total"),
            [
                "lwm2m_swarm_answers_total{shard=\"0/1\",op=\"update\",code=\"RST\"} 1",
                "lwm2m_swarm_answers_total{shard=\"0/1\",op=\"update\",code=\"2.04\"} 5",
                "lwm2m_swarm_answers_total{shard=\"0/1\",op=\"update\",code=\"4.04\"} 2",
            ]
        );
    }

    #[test]
    fn linger_serves_until_interrupted() {
        let exporter =
            Exporter::start(SocketAddr::from(([127, 0, 0, 1], 0)), &Identity::default()).unwrap();
        let addr = exporter.local_addr();
        let asked = std::sync::atomic::AtomicU32::new(0);
        let started = std::time::Instant::now();
        // Scrapes from within `interrupted`: the endpoint is up while lingering; the second
        // look ends it, long before the hour.
        exporter.linger(Duration::from_secs(3600), || {
            assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200 OK"));
            asked.fetch_add(1, Ordering::Relaxed) >= 1
        });
        assert_eq!(asked.load(Ordering::Relaxed), 2);
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(TcpStream::connect(addr).is_err(), "stopped after lingering");
    }
}
