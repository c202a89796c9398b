//! The `--json` result, version 3 (documented in docs/report-schema.md): serde structures, built
//! from a [`Snapshot`] and turned back into one so results from several shards or machines merge.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::client::{
    CLIENT_STATES, OPERATION_KINDS, REQUEST_KINDS, operation_name, request_name, state_index,
    state_name,
};
use crate::metrics::{
    BootstrapStats, FirmwareStats, HandshakeStats, RequestStats, Snapshot, TrafficStats,
};

/// Bumped on any change that breaks a reader: a field removed, renamed, re-typed or counting
/// something else (version 3: NON notifications left `ok` for `unacknowledged`).
pub const SCHEMA_VERSION: u32 = 3;
/// The value of the `schema` field: tells a report from other JSON.
pub const SCHEMA_NAME: &str = "lwm2m-swarm/report";

/// A run's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub version: u32,
    /// The lwm2m-swarm version that wrote it.
    pub tool_version: String,
    /// The test this report is (part of): `run` writes it (shard 0 of 1 without `--shard`);
    /// `None` in reports written before it was added.
    #[serde(default)]
    pub test: Option<TestIdentity>,
    /// A merged report's shards of `test`, ascending; empty (and not written) in one shard's
    /// report, which covers `test.shard_index` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_shards: Vec<u32>,
    pub config: RunConfig,
    /// From the run's start to its summary, seconds.
    pub elapsed_s: f64,
    pub clients: Clients,
    /// Client-initiated requests, keyed by `register`, `update`, `deregister`, `notify`,
    /// `bootstrap`.
    pub requests: BTreeMap<String, Request>,
    /// Server-initiated operations the clients answered, keyed by kind (`read`, `observe`...).
    pub server_operations: BTreeMap<String, ServerOperation>,
    pub traffic: TrafficStats,
    /// DTLS handshakes of the clients (all zero for a plain CoAP run). Absent in reports written
    /// before it was added: read as zero.
    #[serde(default)]
    pub dtls_handshakes: Handshakes,
    /// The clients' bootstraps (all zero when they register directly). Absent in reports
    /// written before it was added: read as zero.
    #[serde(default)]
    pub bootstrap: Bootstraps,
    /// TCP/TLS connection setups (connect, TLS handshake, CSM exchange) and connections lost,
    /// counted like handshakes (all zero over UDP). Absent in older reports: read as zero.
    #[serde(default)]
    pub tcp_connections: Handshakes,
    /// The embedded server's firmware campaigns; absent when it ran none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<FirmwareCampaign>,
    /// Firmware Update (object 5) downloads and updates. Absent in older reports: read as zero.
    #[serde(default)]
    pub firmware: Firmware,
    /// One entry per second of the run (the last one may be shorter).
    pub intervals: Vec<Interval>,
    pub thresholds: Vec<ThresholdResult>,
}

/// What the embedded server's firmware campaigns counted (docs/firmware-campaigns.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FirmwareCampaign {
    pub targeted: u64,
    pub waiting: u64,
    pub started: u64,
    pub downloading: u64,
    pub downloaded: u64,
    pub updated: u64,
    pub failed: u64,
    /// `failed` by reason (`timeout`, `integrity-check`...).
    pub failures: BTreeMap<String, u64>,
    pub download_time_mean_us: u64,
    pub download_time_max_us: u64,
    pub update_time_mean_us: u64,
    pub update_time_max_us: u64,
    pub blocks_served: u64,
    pub bytes_served: u64,
}

/// One shard's place in a test: shard files with the same `id` are parts of the same test, and
/// together they are the whole fleet once each `shard_index` in `0..shard_count` is present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestIdentity {
    /// SHA-256 (hex) of what defines the load: the resolved fleet (populations, counts, seeds,
    /// rates, ramp, hold), the server and the load options; not the shard, ports or bind.
    pub id: String,
    /// `K` of `--shard K/N` (0 without `--shard`).
    pub shard_index: u32,
    /// `N` of `--shard K/N` (1 without `--shard`).
    pub shard_count: u32,
    /// When this shard's load started (its ramp's t = 0), ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long after `--start-at` the shard started, ms (0 on time or without `--start-at`).
    pub late_start_ms: u64,
}

impl TestIdentity {
    /// The `id` of the test whose load `parts` define (each part length-prefixed, so no two
    /// lists of parts hash alike): SHA-256, lowercase hex.
    pub fn id_of(parts: &[&str]) -> String {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        hex::encode(hash.finalize())
    }
}

/// What the run was asked to do, as the command line and fleet file said.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The command line, program name first.
    pub command: Vec<String>,
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_at_unix_s: f64,
    pub fleet: String,
    /// `coap://host:port`, or `embedded 127.0.0.1:port`.
    pub server: String,
    /// The embedded server's load on clients; `None` against an external server.
    pub embedded_load: Option<String>,
    pub clients: u64,
    /// `100 clients/s`, or the stages: `0 -> 500 over 10s, 500 -> 1000 over 5s`.
    pub ramp: String,
    pub hold: String,
    /// `--duration`, when given.
    pub duration: Option<String>,
    pub stop_timeout: String,
    pub populations: Vec<Population>,
    /// `shared` or `per-client`.
    pub transport: String,
    pub shards: usize,
    pub bind: Option<String>,
    pub ports: Option<String>,
    /// `psk, identity "{endpoint}", key: derived hmac-sha256 (16 bytes)`; never a key. `None`:
    /// no security.
    #[serde(default)]
    pub security: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Population {
    pub name: String,
    pub template: String,
    pub behaviour: String,
    pub count: u64,
    pub seed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Clients {
    /// Clients started (restarts after churn included).
    pub started: u64,
    /// Queue-mode wake-ups.
    pub woke: u64,
    /// Highest count seen per state (summed over shards).
    pub peak: BTreeMap<String, u64>,
    /// Count per state when the summary was taken.
    pub at_end: BTreeMap<String, u64>,
}

/// One kind of client-initiated request:
/// `sent = ok + error + timeout + aborted + unacknowledged + in_flight`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub sent: u64,
    pub ok: u64,
    pub error: u64,
    pub timeout: u64,
    pub aborted: u64,
    /// NON notifications sent (nothing answers them). Absent before version 3, whose `ok`
    /// counted them: read as zero.
    #[serde(default)]
    pub unacknowledged: u64,
    pub in_flight: u64,
    pub unsent: u64,
    pub retransmissions: u64,
    /// Answer codes (`2.01`, `4.04`; `0.00` a bare ACK; `RST`) with counts.
    pub codes: BTreeMap<String, u64>,
    /// From when the request was due (corrected for coordinated omission).
    pub latency_us: Latency,
    /// From when it was actually sent (not corrected).
    pub service_latency_us: Latency,
    /// `latency_us`'s histogram: HDR histogram V2 + DEFLATE, base64.
    pub hdr: String,
    /// `service_latency_us`'s histogram, same encoding.
    pub service_hdr: String,
}

/// A latency distribution in µs; all 0 when `count` is 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Every handshake that started ended once: `ok + failed + aborted`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Handshakes {
    pub ok: u64,
    pub failed: u64,
    pub aborted: u64,
    /// Failed handshakes by reason (`timeout`, an alert's name...).
    pub failures: BTreeMap<String, u64>,
    /// Sessions lost after their handshake, by reason.
    pub lost: BTreeMap<String, u64>,
    /// First `ClientHello` to connected, successful handshakes only.
    pub latency_us: Latency,
    /// The same histogram, V2 + DEFLATE, base64 (empty when there was none).
    pub hdr: String,
}

/// Every download that started ended `downloaded` or failed; every update `updated` or failed
/// (`update-failed`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Firmware {
    pub started: u64,
    pub downloaded: u64,
    pub updated: u64,
    /// Failures by reason (`integrity`, `out-of-storage`, `connection-lost`, `update-failed`...).
    pub failed: BTreeMap<String, u64>,
    /// From a download's start to its last byte.
    pub download_time_us: Latency,
    /// The same histogram, V2 + DEFLATE, base64 (empty when there was none).
    pub download_hdr: String,
    /// From the Execute of `/5/0/2` to the Register with the new version answered.
    pub update_time_us: Latency,
    pub update_hdr: String,
}

/// Every bootstrap attempt that started ended once: `finished + failed + aborted`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bootstraps {
    pub finished: u64,
    pub failed: u64,
    pub aborted: u64,
    /// Failed attempts by reason (`finish-timeout`, `rejected`...).
    pub failures: BTreeMap<String, u64>,
    /// From when the Bootstrap-Request was due to the Bootstrap-Finish, finished ones only.
    pub duration_us: Latency,
    /// The same histogram, V2 + DEFLATE, base64 (empty when there was none).
    pub hdr: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerOperation {
    pub total: u64,
    pub ok: u64,
    pub error: u64,
    /// How long a client took to handle one (datagram in to answer queued). Absent in older
    /// reports: read as none measured.
    #[serde(default)]
    pub handling_us: Latency,
    /// The same histogram, V2 + DEFLATE, base64 (empty when there was none).
    #[serde(default)]
    pub hdr: String,
}

/// One second of the run: counts of what happened in it, and its latency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Seconds from the start to the end of the interval.
    pub elapsed_s: f64,
    pub length_s: f64,
    /// Clients by state at the end of the interval.
    pub clients: BTreeMap<String, u64>,
    pub requests: BTreeMap<String, IntervalRequest>,
    /// Datagrams received and sent in the interval (absent in older reports: read as zero).
    #[serde(default)]
    pub datagrams_in: u64,
    #[serde(default)]
    pub datagrams_out: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalRequest {
    pub sent: u64,
    pub ok: u64,
    pub error: u64,
    pub timeout: u64,
    /// NON notifications sent (absent before version 3: read as zero).
    #[serde(default)]
    pub unacknowledged: u64,
    /// Of the requests answered in this interval, from their due time; `null` when none.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// As written: `register.p99<500ms`.
    pub threshold: String,
    /// The measured value in the threshold's unit (ms, %, or a count); `null` with no data.
    pub value: Option<f64>,
    pub passed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("not an lwm2m-swarm report: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "schema {schema:?} version {version}: this lwm2m-swarm reads {SCHEMA_NAME:?} versions 1 to {SCHEMA_VERSION}"
    )]
    Version { schema: String, version: u32 },
    #[error(
        "requests: {0:?} is no request kind (expected register, update, deregister, notify, bootstrap, download)"
    )]
    UnknownRequest(String),
    /// `entry` is where in the report: `requests.register`, `dtls_handshakes`...
    #[error("{entry}: histogram `{field}`: {message}")]
    Histogram {
        entry: String,
        field: &'static str,
        message: String,
    },
    #[error("{entry}: code {code:?} is neither `RST` nor `C.DD`")]
    Code { entry: String, code: String },
}

impl Report {
    /// The result of a run whose cumulative summary is `summary`.
    pub fn new(
        config: RunConfig,
        summary: &Snapshot,
        intervals: Vec<Interval>,
        thresholds: Vec<ThresholdResult>,
    ) -> Report {
        let requests = REQUEST_KINDS
            .iter()
            .map(|k| (request_name(*k).to_string(), request(summary.request(*k))))
            .collect();
        let server_operations = OPERATION_KINDS
            .iter()
            .map(|k| {
                let o = summary.operation(*k);
                let o = ServerOperation {
                    total: o.total,
                    ok: o.ok,
                    error: o.error,
                    handling_us: latency(&o.handling),
                    hdr: encode_unless_empty(&o.handling),
                };
                (operation_name(*k).to_string(), o)
            })
            .collect();
        Report {
            schema: SCHEMA_NAME.to_string(),
            version: SCHEMA_VERSION,
            tool_version: crate::VERSION.to_string(),
            test: None,
            merged_shards: Vec::new(),
            config,
            elapsed_s: summary.elapsed.as_secs_f64(),
            clients: Clients {
                started: summary.started,
                woke: summary.woke,
                peak: by_state(&summary.peak_states),
                at_end: by_state(&summary.states),
            },
            requests,
            server_operations,
            traffic: summary.traffic,
            dtls_handshakes: handshakes(&summary.handshakes),
            bootstrap: bootstraps(&summary.bootstrap),
            tcp_connections: handshakes(&summary.connections),
            campaign: None,
            firmware: firmware(&summary.firmware),
            intervals,
            thresholds,
        }
    }

    /// Reads a report, refusing another schema or a newer version; older versions are read as
    /// this one (version 1's fields renamed; version 2 lacks only fields read as zero).
    pub fn from_json(text: &str) -> Result<Report, SchemaError> {
        // Check the version first: a newer report may not even have our fields.
        #[derive(Deserialize)]
        struct Header {
            schema: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(text)?;
        if header.schema != SCHEMA_NAME || !(1..=SCHEMA_VERSION).contains(&header.version) {
            return Err(SchemaError::Version {
                schema: header.schema,
                version: header.version,
            });
        }
        if header.version == 1 {
            let mut report: serde_json::Value = serde_json::from_str(text)?;
            upgrade_from_v1(&mut report);
            return Ok(serde_json::from_value(report)?);
        }
        Ok(serde_json::from_str(text)?)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// The counters and histograms back as a snapshot (intervals are not part of it).
    pub fn to_snapshot(&self) -> Result<Snapshot, SchemaError> {
        let mut s = Snapshot {
            // A hand-edited file may hold anything: no panic on an out-of-range number.
            elapsed: std::time::Duration::try_from_secs_f64(self.elapsed_s.max(0.0))
                .unwrap_or_default(),
            started: self.clients.started,
            woke: self.clients.woke,
            traffic: self.traffic,
            ..Snapshot::default()
        };
        for (name, request) in &self.requests {
            let kind = REQUEST_KINDS
                .iter()
                .position(|k| request_name(*k) == name)
                .ok_or_else(|| SchemaError::UnknownRequest(name.clone()))?;
            s.requests[kind] = request_stats(name, request)?;
        }
        for (i, kind) in OPERATION_KINDS.iter().enumerate() {
            // Unknown kinds are ignored: a newer tool may count more kinds of server request.
            if let Some(o) = self.server_operations.get(operation_name(*kind)) {
                let stats = &mut s.operations[i];
                stats.total = o.total;
                stats.ok = o.ok;
                stats.error = o.error;
                if !o.hdr.is_empty() {
                    let entry = format!("server_operations.{}", operation_name(*kind));
                    let histogram = decode(&o.hdr).map_err(|message| SchemaError::Histogram {
                        entry,
                        field: "hdr",
                        message,
                    })?;
                    let _ = stats.handling.add(&histogram);
                }
            }
        }
        s.handshakes = handshake_stats(&self.dtls_handshakes, "dtls_handshakes")?;
        s.connections = handshake_stats(&self.tcp_connections, "tcp_connections")?;
        s.bootstrap = bootstrap_stats(&self.bootstrap)?;
        s.firmware = firmware_stats(&self.firmware)?;
        for state in CLIENT_STATES {
            let i = state_index(state);
            s.peak_states[i] = self
                .clients
                .peak
                .get(state_name(state))
                .copied()
                .unwrap_or(0);
            s.states[i] = self
                .clients
                .at_end
                .get(state_name(state))
                .copied()
                .unwrap_or(0);
        }
        Ok(s)
    }
}

/// Version 1 called the client requests `operations`, in the report and in each interval; the
/// rest is the same.
fn upgrade_from_v1(report: &mut serde_json::Value) {
    fn rename(object: &mut serde_json::Value) {
        if let Some(map) = object.as_object_mut()
            && let Some(requests) = map.remove("operations")
        {
            map.insert("requests".to_string(), requests);
        }
    }
    rename(report);
    if let Some(intervals) = report
        .get_mut("intervals")
        .and_then(serde_json::Value::as_array_mut)
    {
        intervals.iter_mut().for_each(rename);
    }
    report["version"] = SCHEMA_VERSION.into();
}

fn by_state(counts: &[u64]) -> BTreeMap<String, u64> {
    CLIENT_STATES
        .iter()
        .map(|s| (state_name(*s).to_string(), counts[state_index(*s)]))
        .collect()
}

/// [`encode`], or empty for an empty histogram.
fn encode_unless_empty(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        String::new()
    } else {
        encode(h)
    }
}

fn handshakes(h: &HandshakeStats) -> Handshakes {
    let by_reason = |counts: &[(String, u64)]| counts.iter().cloned().collect();
    Handshakes {
        ok: h.ok,
        failed: h.failed,
        aborted: h.aborted,
        failures: by_reason(&h.failures),
        lost: by_reason(&h.lost),
        latency_us: latency(&h.latency),
        hdr: if h.latency.is_empty() {
            String::new()
        } else {
            encode(&h.latency)
        },
    }
}

/// `field` names the report's field in errors.
fn handshake_stats(h: &Handshakes, field: &str) -> Result<HandshakeStats, SchemaError> {
    let mut stats = HandshakeStats {
        ok: h.ok,
        failed: h.failed,
        aborted: h.aborted,
        failures: h.failures.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        lost: h.lost.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        ..HandshakeStats::default()
    };
    if !h.hdr.is_empty() {
        let histogram = decode(&h.hdr).map_err(|message| SchemaError::Histogram {
            entry: field.to_string(),
            field: "hdr",
            message,
        })?;
        // Same bounds as ours, or the file's own: add what it holds.
        let _ = stats.latency.add(&histogram);
    }
    Ok(stats)
}

fn bootstraps(b: &BootstrapStats) -> Bootstraps {
    Bootstraps {
        finished: b.finished,
        failed: b.failed,
        aborted: b.aborted,
        failures: b.failures.iter().cloned().collect(),
        duration_us: latency(&b.duration),
        hdr: if b.duration.is_empty() {
            String::new()
        } else {
            encode(&b.duration)
        },
    }
}

fn bootstrap_stats(b: &Bootstraps) -> Result<BootstrapStats, SchemaError> {
    let mut stats = BootstrapStats {
        finished: b.finished,
        failed: b.failed,
        aborted: b.aborted,
        failures: b.failures.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        ..BootstrapStats::default()
    };
    if !b.hdr.is_empty() {
        let histogram = decode(&b.hdr).map_err(|message| SchemaError::Histogram {
            entry: "bootstrap".to_string(),
            field: "hdr",
            message,
        })?;
        let _ = stats.duration.add(&histogram);
    }
    Ok(stats)
}

fn firmware(f: &FirmwareStats) -> Firmware {
    let hdr = |h: &Histogram<u64>| {
        if h.is_empty() {
            String::new()
        } else {
            encode(h)
        }
    };
    Firmware {
        started: f.started,
        downloaded: f.downloaded,
        updated: f.updated,
        failed: f.failed.iter().cloned().collect(),
        download_time_us: latency(&f.download_time),
        download_hdr: hdr(&f.download_time),
        update_time_us: latency(&f.update_time),
        update_hdr: hdr(&f.update_time),
    }
}

fn firmware_stats(f: &Firmware) -> Result<FirmwareStats, SchemaError> {
    let mut stats = FirmwareStats {
        started: f.started,
        downloaded: f.downloaded,
        updated: f.updated,
        failed: f.failed.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        ..FirmwareStats::default()
    };
    for (field, text, into) in [
        ("download_hdr", &f.download_hdr, &mut stats.download_time),
        ("update_hdr", &f.update_hdr, &mut stats.update_time),
    ] {
        if !text.is_empty() {
            let histogram = decode(text).map_err(|message| SchemaError::Histogram {
                entry: "firmware".to_string(),
                field,
                message,
            })?;
            let _ = into.add(&histogram);
        }
    }
    Ok(stats)
}

fn request(r: &RequestStats) -> Request {
    Request {
        sent: r.sent,
        ok: r.ok,
        error: r.error,
        timeout: r.timeout,
        aborted: r.aborted,
        unacknowledged: r.unacknowledged,
        in_flight: r.in_flight(),
        unsent: r.unsent,
        retransmissions: r.retransmissions,
        codes: r
            .codes
            .iter()
            .map(|(code, n)| (code_name(*code), *n))
            .collect(),
        latency_us: latency(&r.latency),
        service_latency_us: latency(&r.service),
        hdr: encode(&r.latency),
        service_hdr: encode(&r.service),
    }
}

fn request_stats(name: &str, request: &Request) -> Result<RequestStats, SchemaError> {
    let mut r = RequestStats {
        sent: request.sent,
        ok: request.ok,
        error: request.error,
        timeout: request.timeout,
        aborted: request.aborted,
        unacknowledged: request.unacknowledged,
        unsent: request.unsent,
        retransmissions: request.retransmissions,
        ..RequestStats::default()
    };
    let entry = format!("requests.{name}");
    for (code, n) in &request.codes {
        let parsed = parse_code(code).map_err(|()| SchemaError::Code {
            entry: format!("{entry}.codes"),
            code: code.clone(),
        })?;
        r.codes.push((parsed, *n));
    }
    let histogram = |field: &'static str, text: &str, into: &mut Histogram<u64>| {
        let err = |message: String| SchemaError::Histogram {
            entry: entry.clone(),
            field,
            message,
        };
        let decoded = decode(text).map_err(err)?;
        into.add(&decoded).map_err(|e| err(format!("{e:?}")))
    };
    histogram("hdr", &request.hdr, &mut r.latency)?;
    histogram("service_hdr", &request.service_hdr, &mut r.service)?;
    Ok(r)
}

/// The summary figures of a histogram of µs.
pub fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        count: h.len(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

/// `2.01`, `0.00` for a bare ACK, `RST`.
pub(super) fn code_name(code: Option<u8>) -> String {
    match code {
        Some(c) => format!("{}.{:02}", c >> 5, c & 31),
        None => "RST".to_string(),
    }
}

/// The inverse of [`code_name`]; `Err` for anything else.
fn parse_code(text: &str) -> Result<Option<u8>, ()> {
    if text == "RST" {
        return Ok(None);
    }
    let (class, detail) = text.split_once('.').ok_or(())?;
    let class: u8 = class.parse().ok().filter(|c| *c < 8).ok_or(())?;
    let detail: u8 = detail.parse().ok().filter(|d| *d < 32).ok_or(())?;
    Ok(Some(class << 5 | detail))
}

/// HDR histogram V2 + DEFLATE, base64: what the HDR histogram tools read.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serialising into memory does not fail");
    STANDARD.encode(bytes)
}

pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram: {e:?}"))
}
