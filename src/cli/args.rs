//! The option groups several commands share: the fleet and its overrides, the engine's
//! sockets, and the load the embedded server puts on clients.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse::{
    HexArg, hex_arg, parse_addresses, parse_composite_write, parse_identity, parse_path,
    parse_periodic, parse_periodic_paths, parse_ports, parse_positive_duration, parse_rate,
    parse_whole, parse_write,
};
use crate::fleet::{IdentityPattern, Plan, ServerUri, Slice, format_duration, parse_uri};
use crate::model::Path;
use crate::server::{
    DEFAULT_MAX_BOOTSTRAP_SESSIONS, DEFAULT_MAX_DTLS_SESSIONS, DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_REGISTRATIONS, DtlsServerConfig, ObserveLoad, ReadCompositeLoad, ServerConfig,
    WriteCompositeLoad, WriteLoad,
};
use crate::transport::{AddressSet, PortRange};

/// The fleet file and the command line's changes to its clients, security and server (`run`,
/// `check`, `credentials`); its timing is [`TimingArgs`]'.
#[derive(Args, Debug)]
pub(super) struct FleetArgs {
    /// The fleet file (see fleets/).
    pub fleet: PathBuf,
    /// Total clients (a staged ramp keeps its shape).
    #[arg(short, long, value_parser = super::parse::parse_count, allow_hyphen_values = true,
          help_heading = "Fleet")]
    pub clients: Option<u64>,
    /// PSK identity of each client: `{endpoint}`, `{index}`, `{number}` and text (replaces the
    /// fleet's `[security] identity`).
    #[arg(long, value_name = "PATTERN", value_parser = parse_identity, help_heading = "Security")]
    pub psk_identity: Option<IdentityPattern>,
    /// One PSK for every client, in hex (replaces the fleet's key source).
    #[arg(long, value_name = "HEX", value_parser = hex_arg, help_heading = "Security")]
    pub psk_key: Option<HexArg>,
    /// Directory of object and device templates.
    #[arg(long, value_name = "DIR", help_heading = "Fleet")]
    pub templates: Option<PathBuf>,
    /// Only shard K of N (K from 0, e.g. Kubernetes' `JOB_COMPLETION_INDEX`): the clients whose
    /// index is K modulo N, named, keyed and started as in the whole fleet; N shards together
    /// run the fleet once, each at its share of the ramp's rate.
    #[arg(long, value_name = "K/N", default_value_t = Slice::WHOLE, help_heading = "Fleet")]
    pub shard: Slice,
    /// Server under test, e.g. `coap://192.0.2.10:5683` (default: the fleet's, else embedded).
    #[arg(short, long, value_parser = parse_uri, help_heading = "Server")]
    pub server: Option<ServerUri>,
}

/// How fast the fleet starts, how long the run lasts and the seed of its random draws, replacing
/// the fleet's (`run`, `check`; not `credentials`: no key depends on them).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Load")]
pub(super) struct TimingArgs {
    /// Clients started per second (replaces the fleet's ramp).
    #[arg(short, long, value_parser = parse_rate, allow_hyphen_values = true)]
    pub rate: Option<f64>,
    /// Stop this long after the first start: 30s, 5m, 1h.
    #[arg(short, long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,
    /// Random seed for every population: same seed, same devices and timings.
    #[arg(long, value_name = "N", value_parser = super::parse::parse_whole, help_heading = "Fleet")]
    pub seed: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum TransportArg {
    /// Many clients per UDP socket (IPv4 and IPv6, Linux).
    Shared,
    /// One UDP socket per client (bounded by the open-files limit).
    PerClient,
}

/// The engine's sockets and threads (`run`, `check`).
#[derive(Args, Debug)]
#[command(next_help_heading = "Engine")]
pub(super) struct EngineArgs {
    /// How clients reach the server over UDP (a `coap+tcp://` or `coaps+tcp://` server means
    /// TCP, whatever this says).
    #[arg(long, value_enum, default_value_t = TransportArg::Shared)]
    pub transport: TransportArg,
    /// Client source addresses: a CIDR block (10.1.0.0/16), an IPv6 prefix routed to this host
    /// (`fd00:5::/64`), a list (10.0.0.1,10.0.0.2) or `loopback` (default when the server is on
    /// IPv4 loopback).
    #[arg(long, value_name = "ADDRESSES", value_parser = parse_addresses)]
    pub bind: Option<AddressSet>,
    /// Client source ports, FIRST-LAST (default: 20000 up to below the ephemeral range).
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_ports)]
    pub ports: Option<PortRange>,
    /// Engine threads; 0 is one per core [default: one per core].
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true,
          value_parser = super::parse::parse_whole_usize, allow_hyphen_values = true)]
    pub shards: usize,
}

/// The caps that protect the embedded server from its clients and from strangers: flags of
/// `serve`; `run`'s embedded server keeps the defaults.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Server")]
pub(super) struct LimitArgs {
    /// Registrations held at most; a Register of a new endpoint beyond gets 5.03.
    #[arg(long = "max-registrations", value_name = "N",
          default_value_t = DEFAULT_MAX_REGISTRATIONS, value_parser = parse_count)]
    pub registrations: usize,
    /// Longest lifetime accepted; a Register or Update asking more gets 4.00.
    #[arg(long = "max-lifetime", value_name = "DURATION", default_value = "24h",
          value_parser = parse_lifetime)]
    pub lifetime: u32,
    /// DTLS sessions at once (handshakes under way included); a `ClientHello` beyond is
    /// dropped.
    #[arg(long = "max-dtls-sessions", value_name = "N",
          default_value_t = DEFAULT_MAX_DTLS_SESSIONS, value_parser = parse_count)]
    pub dtls_sessions: usize,
    /// Clients being bootstrapped at once (with --bootstrap); a Bootstrap-Request beyond gets
    /// 5.03.
    #[arg(long = "max-bootstrap-sessions", value_name = "N",
          default_value_t = DEFAULT_MAX_BOOTSTRAP_SESSIONS, value_parser = parse_count)]
    pub bootstrap_sessions: usize,
}

impl Default for LimitArgs {
    fn default() -> Self {
        LimitArgs {
            registrations: DEFAULT_MAX_REGISTRATIONS,
            lifetime: DEFAULT_MAX_LIFETIME,
            dtls_sessions: DEFAULT_MAX_DTLS_SESSIONS,
            bootstrap_sessions: DEFAULT_MAX_BOOTSTRAP_SESSIONS,
        }
    }
}

impl LimitArgs {
    /// `config` with these caps.
    pub fn server(&self, config: ServerConfig) -> ServerConfig {
        ServerConfig {
            max_registrations: self.registrations,
            max_lifetime: self.lifetime,
            ..config
        }
    }

    /// `config` with this cap on sessions.
    pub fn dtls(&self, config: DtlsServerConfig) -> DtlsServerConfig {
        DtlsServerConfig {
            max_sessions: self.dtls_sessions,
            ..config
        }
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    let n = super::parse::parse_count(s)?;
    usize::try_from(n).map_err(|_| super::parse::too_large(usize::MAX as u64))
}

/// pmin/pmax: whole seconds, as the attribute carries them.
fn parse_seconds(s: &str) -> Result<u32, String> {
    let n = parse_whole(s)?;
    u32::try_from(n).map_err(|_| format!("at most {} seconds", u32::MAX))
}

/// A lifetime cap in whole seconds, as `lt` carries it.
fn parse_lifetime(s: &str) -> Result<u32, String> {
    let d = parse_positive_duration(s)?;
    u32::try_from(d.as_secs())
        .ok()
        .filter(|&secs| secs > 0)
        .ok_or_else(|| "must be from 1s to 136 years".into())
}

/// What the embedded server asks of every registered client (`run`, `serve`).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Embedded server load")]
pub(super) struct LoadArgs {
    /// Read PATH every PERIOD: /3/0/13@30s.
    #[arg(long, value_name = "PATH@PERIOD", value_parser = parse_periodic)]
    pub read: Option<(Path, Duration)>,
    /// Observe PATH once registered: /3303/0/5700.
    #[arg(long, value_name = "PATH")]
    pub observe: Option<Path>,
    /// pmin (s) written before the Observe.
    #[arg(long, value_name = "SECONDS", requires = "observe", value_parser = parse_seconds)]
    pub pmin: Option<u32>,
    /// pmax (s) written before the Observe.
    #[arg(long, value_name = "SECONDS", requires = "observe", value_parser = parse_seconds)]
    pub pmax: Option<u32>,
    /// Write VALUE (text) to PATH every PERIOD: /1/0/3=10@1m.
    #[arg(long, value_name = "PATH=VALUE@PERIOD", value_parser = parse_write)]
    pub write: Option<(Path, String, Duration)>,
    /// Execute PATH every PERIOD: /1/0/8@10m (Registration Update Trigger).
    #[arg(long, value_name = "PATH@PERIOD", value_parser = parse_periodic)]
    pub execute: Option<(Path, Duration)>,
    /// Discover PATH every PERIOD: /3/0@5m.
    #[arg(long, value_name = "PATH@PERIOD", value_parser = parse_periodic)]
    pub discover: Option<(Path, Duration)>,
    /// Ask LWM2M 1.2 clients for LWM2M CBOR (Accept 11544) in the Reads and Observes.
    #[arg(long)]
    pub lwm2m_cbor: bool,
    /// LWM2M 1.1 Read-Composite (FETCH, `SenML` CBOR) of PATHS every PERIOD, on 1.1+ clients:
    /// /3/0/13,/3303/0/5700@1m.
    #[arg(long, value_name = "PATH,PATH@PERIOD", value_parser = parse_periodic_paths)]
    pub read_composite: Option<(Vec<Path>, Duration)>,
    /// LWM2M 1.1 Observe-Composite of PATHS once registered, on 1.1+ clients:
    /// /3303/0/5700,/3/0/13.
    #[arg(long, value_name = "PATH,PATH", value_delimiter = ',', value_parser = parse_path)]
    pub observe_composite: Vec<Path>,
    /// LWM2M 1.1 Write-Composite (iPATCH, `SenML` CBOR) of the VALUEs every PERIOD, on 1.1+
    /// clients; numbers and true/false go as such, other values as strings:
    /// /3/0/14=+01:00,/1/0/3=60@5m.
    #[arg(long, value_name = "PATH=VALUE,...@PERIOD", value_parser = parse_composite_write)]
    pub write_composite: Option<(Vec<(Path, String)>, Duration)>,
}

impl LoadArgs {
    pub fn is_empty(&self) -> bool {
        self.read.is_none()
            && self.observe.is_none()
            && self.write.is_none()
            && self.execute.is_none()
            && self.discover.is_none()
            && self.read_composite.is_none()
            && self.observe_composite.is_empty()
            && self.write_composite.is_none()
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            read: self.read,
            observe: self.observe.map(|path| ObserveLoad {
                path,
                pmin: self.pmin,
                pmax: self.pmax,
            }),
            write: self
                .write
                .clone()
                .map(|(path, value, every)| WriteLoad { path, value, every }),
            execute: self.execute,
            discover: self.discover,
            lwm2m_cbor: self.lwm2m_cbor,
            read_composite: self
                .read_composite
                .clone()
                .map(|(paths, every)| ReadCompositeLoad { paths, every }),
            observe_composite: (!self.observe_composite.is_empty())
                .then(|| self.observe_composite.clone()),
            write_composite: self
                .write_composite
                .clone()
                .map(|(values, every)| WriteCompositeLoad { values, every }),
            ..ServerConfig::default()
        }
    }

    /// What `run` asks of clients when it starts the embedded server and nothing was said:
    /// observe the device's clock, read the device object now and then.
    fn demo() -> LoadArgs {
        LoadArgs {
            read: Some((Path::resource(3, 0, 0), Duration::from_secs(60))),
            observe: Some(Path::resource(3, 0, 13)),
            pmin: Some(10),
            pmax: Some(60),
            ..LoadArgs::default()
        }
    }

    /// The load `run`'s embedded server puts on clients: this one, or the demo's when empty.
    pub fn or_demo(&self) -> LoadArgs {
        if self.is_empty() {
            LoadArgs {
                lwm2m_cbor: self.lwm2m_cbor,
                ..LoadArgs::demo()
            }
        } else {
            self.clone()
        }
    }

    /// The embedded server's settings for `plan` (see [`LoadArgs::or_demo`]), and that load.
    pub fn embedded_config(&self, plan: &Plan) -> (ServerConfig, LoadArgs) {
        let load = self.or_demo();
        let mut config = load.server_config();
        config.campaigns.clone_from(&plan.campaigns);
        // Send to a sleeping client only while it is surely awake: the shortest awake window.
        if let Some(window) = plan
            .groups
            .iter()
            .filter(|g| g.config.queue_mode)
            .map(|g| g.config.awake_window)
            .min()
        {
            config.awake_window = window;
        }
        (config, load)
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((p, every)) = &self.read {
            parts.push(format!("read {p} every {}", format_duration(*every)));
        }
        if let Some(p) = &self.observe {
            let pmin = self.pmin.map(|n| format!(" pmin {n}s")).unwrap_or_default();
            let pmax = self.pmax.map(|n| format!(" pmax {n}s")).unwrap_or_default();
            parts.push(format!("observe {p}{pmin}{pmax}"));
        }
        if let Some((p, v, every)) = &self.write {
            parts.push(format!("write {p}={v} every {}", format_duration(*every)));
        }
        if let Some((p, every)) = &self.execute {
            parts.push(format!("execute {p} every {}", format_duration(*every)));
        }
        if let Some((p, every)) = &self.discover {
            parts.push(format!("discover {p} every {}", format_duration(*every)));
        }
        if self.lwm2m_cbor && (self.read.is_some() || self.observe.is_some()) {
            parts.push("LWM2M CBOR from 1.2 clients".to_string());
        }
        let list = |paths: &[Path]| {
            let names: Vec<String> = paths.iter().map(Path::to_string).collect();
            names.join(",")
        };
        if let Some((paths, every)) = &self.read_composite {
            let every = format_duration(*every);
            parts.push(format!("read-composite {} every {every}", list(paths)));
        }
        if !self.observe_composite.is_empty() {
            parts.push(format!(
                "observe-composite {}",
                list(&self.observe_composite)
            ));
        }
        if let Some((values, every)) = &self.write_composite {
            let values: Vec<String> = values.iter().map(|(p, v)| format!("{p}={v}")).collect();
            let every = format_duration(*every);
            parts.push(format!(
                "write-composite {} every {every}",
                values.join(",")
            ));
        }
        if parts.is_empty() {
            "registrations only".to_string()
        } else {
            parts.join(", ")
        }
    }
}
