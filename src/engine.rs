//! The fleet engine: shards (one thread per core), each owning a slab of clients, a timer queue
//! and its sockets. A shard feeds its clients bytes and time and sends what they emit; it knows
//! nothing of LWM2M. No lock is taken per datagram: shards publish counters a few times a second.

mod emulation;
mod layout;
mod reach;
mod shard;
mod simulation;
mod start;
mod timers;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::{ClientConfig, StreamConfig};
use crate::fleet::Plan;
use crate::metrics::Snapshot;
use crate::model::DeviceTemplate;
use crate::security::CredentialSource;
use crate::security::tls::TlsClientConfig;
use crate::trace::TraceTap;
use crate::transport::{
    AddressPlan, AddressSet, FdLimit, PerClientTransport, PlanError, PortRange, SharedConfig,
    SharedTransport, TcpTransport, Transport, TransportError, reserve_files,
};

pub use layout::Layout;
pub use reach::{Reach, ReachError, thousands};
pub use simulation::Simulation;
pub use start::{
    StartDelay, Started, describe_start, describe_wait, format_time, parse_start_at, start_delay,
};

/// How clients reach the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransportKind {
    /// A few sockets per shard, many clients per socket (Linux, IPv4).
    #[default]
    Shared,
    /// One socket per client, up to the open-files limit.
    PerClient,
    /// CoAP over TCP (and TLS with [`EngineConfig::tls`]), RFC 8323: one connection per
    /// client, up to the open-files limit. Set it for `coap+tcp://` and `coaps+tcp://`; the
    /// fleet gives such clients binding `T`.
    Tcp,
}

/// Engine settings that are not in the fleet file.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub server: SocketAddr,
    pub transport: TransportKind,
    /// Client source addresses. `None`: 127.0.0.0/8 when the server is on loopback, else the
    /// address this host uses to reach the server.
    pub addresses: Option<AddressSet>,
    /// Client source ports. `None`: from 20000 up to below the kernel's ephemeral range.
    pub ports: Option<PortRange>,
    /// Threads; 0 means one per core.
    pub shards: usize,
    pub shared: SharedConfig,
    /// DTLS with a pre-shared key (`coaps://`): client `k` gets `psk(k, endpoint)` when it
    /// starts. `None`: plain CoAP.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    /// TLS over the TCP transport (`coaps+tcp://`). `None`: plain TCP.
    pub tls: Option<Arc<TlsClientConfig>>,
    /// `--start-at`: [`Engine::start`] opens the sockets, then waits for this instant to start
    /// the first clients (at once when it has passed). `None`: start at once.
    pub start_at: Option<SystemTime>,
    /// `--trace`: the clients whose endpoint matches copy their datagrams here.
    pub trace: Option<TraceTap>,
}

impl EngineConfig {
    pub fn new(server: SocketAddr) -> Self {
        EngineConfig {
            server,
            transport: TransportKind::default(),
            addresses: None,
            ports: None,
            shards: 0,
            shared: SharedConfig::default(),
            credentials: None,
            tls: None,
            start_at: None,
            trace: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("client addresses: {0}")]
    Addresses(#[from] PlanError),
    #[error(transparent)]
    Reach(#[from] ReachError),
    #[error("cannot find a local address to reach {server}: {source}")]
    Route {
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("the fleet has {groups} populations but {templates} device templates were given")]
    Templates { groups: usize, templates: usize },
    #[error(
        "the server {server} and the clients' source addresses ({client} first) are of different \
         IP families: give --bind addresses of the server's family"
    )]
    FamilyMismatch {
        server: SocketAddr,
        client: SocketAddr,
    },
    #[error("cannot start a shard thread: {0}")]
    Thread(std::io::Error),
    #[error("shard {0} panicked")]
    Panicked(usize),
    #[error("pre-shared keys are for DTLS (coaps://); TLS over TCP takes certificates ([tls])")]
    PskOverTcp,
    #[error("TLS needs the TCP transport (coaps+tcp://)")]
    TlsWithoutTcp,
    #[error(
        "rebind_every moves clients to source addresses no client has, but every address of \
         the plan is in use: give more --bind addresses or use the per-client transport"
    )]
    NoSpareAddresses,
}

/// What the caller may change while the engine runs.
#[derive(Debug)]
pub(crate) struct Control {
    /// Begin the stop now (Ctrl-C, a quit key).
    stop: AtomicBool,
    /// End at once: clients give up what they had out (counted as aborted), no De-registers.
    abort: AtomicBool,
    /// Start no new clients for now.
    paused: AtomicBool,
    /// How fast the start schedule runs (f64 bits): 1 as planned, 2 twice as fast.
    start_rate: AtomicU64,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            start_rate: AtomicU64::new(1.0f64.to_bits()),
        }
    }
}

impl Control {
    /// The start schedule's speed now: 0 while paused.
    pub(crate) fn start_speed(&self) -> f64 {
        if self.paused.load(Ordering::Acquire) {
            0.0
        } else {
            f64::from_bits(self.start_rate.load(Ordering::Acquire))
        }
    }
}

/// Marks a shard finished however its thread ends (a panic included), and if it ended early,
/// tells the other shards to stop too: half a fleet is no measurement.
struct ShardExit {
    finished: Arc<AtomicBool>,
    control: Arc<Control>,
}

impl Drop for ShardExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.control.stop.store(true, Ordering::Release);
        }
        self.finished.store(true, Ordering::Release);
    }
}

struct ShardHandle {
    thread: JoinHandle<Result<(), TransportError>>,
    published: Arc<Mutex<Snapshot>>,
    finished: Arc<AtomicBool>,
}

/// A running fleet.
pub struct Engine {
    shards: Vec<ShardHandle>,
    control: Arc<Control>,
    layout: Arc<Layout>,
    started: Started,
    moved_ports: Option<MovedPorts>,
}

impl Engine {
    /// Opens every shard's sockets, waits for [`EngineConfig::start_at`] if given, then starts the
    /// shards: the first clients start at once.
    /// `templates` holds each population's device template, in group order (see
    /// [`crate::fleet::Fleet::check`]).
    ///
    /// With the default ports (`config.ports` `None`), a port another process holds (another
    /// run on this host) moves the range up past it: [`Engine::moved_ports`] says where.
    pub fn start(
        plan: Plan,
        templates: Vec<Arc<DeviceTemplate>>,
        config: &EngineConfig,
    ) -> Result<Engine, EngineError> {
        if config.ports.is_some() || config.transport == TransportKind::Tcp {
            return Engine::start_over(plan, templates, config, |layout| {
                open_transports(layout, config)
            });
        }
        let default = default_ports()?;
        let mut moved = config.clone();
        let mut taken = None;
        loop {
            let first = taken.map_or(default.first(), |port: u16| port + 1);
            moved.ports = Some(PortRange::new(first, default.last())?);
            let started = Engine::start_over(plan.clone(), templates.clone(), &moved, |layout| {
                open_transports(layout, &moved)
            });
            match started {
                Err(EngineError::Transport(TransportError::Bind { addr, source }))
                    if source.kind() == std::io::ErrorKind::AddrInUse
                        && addr.port() < default.last() =>
                {
                    taken = Some(addr.port());
                }
                Ok(mut engine) => {
                    engine.moved_ports = taken.map(|port| MovedPorts {
                        taken: port,
                        used: engine.layout.ports_used(),
                    });
                    return Ok(engine);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Engine::start`] over transports `open` makes from the layout, one per engine thread:
    /// the seam for tests whose transport must misbehave.
    pub fn start_with(
        plan: Plan,
        templates: Vec<Arc<DeviceTemplate>>,
        config: &EngineConfig,
        open: impl FnOnce(&Layout) -> Vec<Box<dyn Transport + Send>>,
    ) -> Result<Engine, EngineError> {
        Engine::start_over(plan, templates, config, |layout| {
            Ok(open(layout).into_iter().map(Opened::Given).collect())
        })
    }

    fn start_over(
        plan: Plan,
        templates: Vec<Arc<DeviceTemplate>>,
        config: &EngineConfig,
        open: impl FnOnce(&Layout) -> Result<Vec<Opened>, EngineError>,
    ) -> Result<Engine, EngineError> {
        if templates.len() != plan.groups.len() {
            return Err(EngineError::Templates {
                groups: plan.groups.len(),
                templates: templates.len(),
            });
        }
        let tcp = config.transport == TransportKind::Tcp;
        if tcp && config.credentials.is_some() {
            return Err(EngineError::PskOverTcp);
        }
        if !tcp && config.tls.is_some() {
            return Err(EngineError::TlsWithoutTcp);
        }
        plan_reach(&plan, config, FdLimit::current()?)?.check()?;
        let layout = Arc::new(plan_layout(&plan, config)?);
        let shards = layout.shards() as usize;
        let transports = open(&layout)?;
        let control = Arc::new(Control::default());
        let plan = Arc::new(plan);
        let templates: Arc<[Arc<DeviceTemplate>]> = templates.into();
        let configs = client_configs(&plan, config);
        let started = start::wait_for(config.start_at);
        let origin = std::time::Instant::now();
        if let Some(tap) = &config.trace {
            tap.set_origin(started.at);
        }
        let unix_origin = started
            .at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut handles = Vec::with_capacity(shards);
        for (index, transport) in transports.into_iter().enumerate() {
            let clients = layout.shard_clients(index as u64);
            tracing::debug!("shard {index}: starting with {clients} clients");
            let published = Arc::new(Mutex::new(Snapshot::default()));
            let finished = Arc::new(AtomicBool::new(false));
            let shard = shard::Shard::new(shard::Setup {
                index: index as u64,
                plan: Arc::clone(&plan),
                templates: Arc::clone(&templates),
                configs: Arc::clone(&configs),
                layout: Arc::clone(&layout),
                control: Arc::clone(&control),
                published: Arc::clone(&published),
                clock: shard::Timebase::Real(origin),
                unix_origin,
                loopback_only: config.server.ip().is_loopback(),
                credentials: config.credentials.clone(),
                trace: config.trace.clone(),
            });
            let exit = ShardExit {
                finished: Arc::clone(&finished),
                control: Arc::clone(&control),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || {
                    let result = match transport {
                        Opened::Shared(t) => shard.run(t),
                        Opened::PerClient(t) => shard.run(t),
                        Opened::Tcp(t) => shard.run(t),
                        Opened::Given(t) => shard.run(t),
                    };
                    if result.is_err() {
                        exit.control.stop.store(true, Ordering::Release);
                    }
                    drop(exit);
                    result
                });
            match spawned {
                Ok(thread) => handles.push(ShardHandle {
                    thread,
                    published,
                    finished,
                }),
                Err(e) => {
                    // The shards already running stop (their clients de-register) before we say so.
                    control.stop.store(true, Ordering::Release);
                    for handle in handles {
                        let _ = handle.thread.join();
                    }
                    return Err(EngineError::Thread(e));
                }
            }
        }
        Ok(Engine {
            shards: handles,
            control,
            layout,
            started,
            moved_ports: None,
        })
    }

    /// Everything counted so far, all shards merged (as of each shard's last publication).
    pub fn snapshot(&self) -> Snapshot {
        let mut total = Snapshot::default();
        for shard in &self.shards {
            let published = shard
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            total.merge(&published);
        }
        total
    }

    /// Begins the stop now: no more starts, every registered client de-registers within the
    /// fleet's stop timeout.
    pub fn stop(&self) {
        if !self.control.stop.swap(true, Ordering::AcqRel) {
            tracing::debug!("graceful stop begun: clients de-register within the stop timeout");
        }
    }

    /// Ends the run at once (a second interrupt): every client gives up, what it had in flight
    /// counted as aborted, without De-registering; the shards return within a round.
    pub fn abort(&self) {
        if !self.control.abort.swap(true, Ordering::AcqRel) {
            tracing::info!("stopping at once: clients give up without de-registering");
        }
        self.control.stop.store(true, Ordering::Release);
    }

    /// Holds (or resumes) the starting of new clients.
    pub fn pause_starts(&self, paused: bool) {
        self.control.paused.store(paused, Ordering::Release);
    }

    /// Runs the rest of the start schedule `factor` times as fast as planned (2: twice the
    /// rate; 0.5: half). Negative, zero and non-finite factors are ignored: pausing is
    /// [`Engine::pause_starts`].
    pub fn set_start_rate(&self, factor: f64) {
        if factor.is_finite() && factor > 0.0 {
            self.control
                .start_rate
                .store(factor.to_bits(), Ordering::Release);
        }
    }

    pub fn start_rate(&self) -> f64 {
        f64::from_bits(self.control.start_rate.load(Ordering::Acquire))
    }

    pub fn starts_paused(&self) -> bool {
        self.control.paused.load(Ordering::Acquire)
    }

    pub fn is_finished(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.finished.load(Ordering::Acquire))
    }

    /// Which source address and port client `index` uses.
    pub fn client_endpoint(&self, index: u64) -> Option<SocketAddr> {
        self.layout.endpoint_of_client(index)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where the clients went when the default ports were partly taken; `None` when they
    /// were free (or `--ports` was given).
    pub fn moved_ports(&self) -> Option<MovedPorts> {
        self.moved_ports
    }

    /// When the load began (the ramp's t = 0), and how late for `--start-at`.
    pub fn started(&self) -> Started {
        self.started
    }

    /// Waits for every shard to end and returns the final counts.
    pub fn join(self) -> Result<Snapshot, EngineError> {
        let (snapshot, result) = self.finish();
        result.map(|()| snapshot)
    }

    /// Waits for every shard to end; the final counts come back even when a shard failed.
    pub fn finish(self) -> (Snapshot, Result<(), EngineError>) {
        let mut total = Snapshot::default();
        let mut first_error = None;
        for (index, shard) in self.shards.into_iter().enumerate() {
            match shard.thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(EngineError::Transport(e));
                }
                Err(_) => {
                    first_error.get_or_insert(EngineError::Panicked(index));
                }
            }
            let published = shard
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            log_shard_end(index, &published);
            total.merge(&published);
        }
        warn_of_dropped(&total.traffic);
        (total, first_error.map_or(Ok(()), Err))
    }
}

/// A shard's last counts, for `RUST_LOG=debug`.
fn log_shard_end(index: usize, published: &Snapshot) {
    let t = &published.traffic;
    tracing::debug!(
        "shard {index}: ended after {:.1}s: {} clients started, {} datagrams out, {} in, \
         {} unmatched, {} foreign, {} send errors, {} kernel drops",
        published.elapsed.as_secs_f64(),
        published.started,
        t.datagrams_out,
        t.datagrams_in,
        t.unmatched,
        t.foreign,
        t.send_errors,
        t.kernel_drops
    );
}

/// One warning at the end for the datagrams the run lost or refused on its side.
fn warn_of_dropped(t: &crate::metrics::TrafficStats) {
    let lost = [
        (
            t.kernel_drops,
            "dropped by the kernel (receive buffer full)",
        ),
        (t.send_errors, "refused by the kernel on send"),
        (t.truncated, "truncated (longer than the receive slot)"),
        (t.foreign, "from another host, ignored"),
    ];
    let said: Vec<String> = lost
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if !said.is_empty() {
        tracing::warn!("datagrams: {}", said.join(", "));
    }
}

/// Each group's client settings, with the server (and the TCP transport's stream) filled in.
fn client_configs(plan: &Plan, config: &EngineConfig) -> Arc<[Arc<ClientConfig>]> {
    let tcp = config.transport == TransportKind::Tcp;
    plan.groups
        .iter()
        .map(|g| {
            let mut c = (*g.config).clone();
            c.server = config.server;
            if tcp {
                c.stream = Some(StreamConfig {
                    tls: config.tls.clone(),
                    ..StreamConfig::default()
                });
            }
            Arc::new(c)
        })
        .collect()
}

/// Where each client of `plan` will run and send from (and, rebinding, has room to move),
/// without opening anything.
pub fn plan_layout(plan: &Plan, config: &EngineConfig) -> Result<Layout, EngineError> {
    let (addresses, shards) = address_plan(config)?;
    let layout = Layout::new(addresses, plan.clients, plan.slice, shards)?;
    check_rebinding(plan, config.transport, &layout)?;
    Ok(layout)
}

/// What this host's plan can reach and what `plan` needs of it under `limit`, without opening
/// anything; [`Reach::check`] says whether it fits.
pub fn plan_reach(
    plan: &Plan,
    config: &EngineConfig,
    limit: FdLimit,
) -> Result<Reach, EngineError> {
    let (addresses, shards) = address_plan(config)?;
    let (count, ports) = (addresses.addresses().len(), addresses.ports().len());
    let layout = Layout::spread(addresses, plan.clients, plan.slice, shards);
    Ok(Reach {
        addresses: count,
        ports,
        clients: layout.clients(),
        slots: layout.slots(),
        transport: config.transport,
        sockets: layout.sockets(config.transport),
        limit,
    })
}

/// Rebinding on shared sockets needs addresses of the plan that no client has.
fn check_rebinding(
    plan: &Plan,
    transport: TransportKind,
    layout: &Layout,
) -> Result<(), EngineError> {
    let rebinds = plan.groups.iter().any(|g| g.network.rebind_every.is_some());
    if rebinds && transport == TransportKind::Shared && layout.rebound_endpoint(0, 0, 1).is_none() {
        return Err(EngineError::NoSpareAddresses);
    }
    Ok(())
}

/// The source addresses and ports, and the shard count, `config` asks for.
fn address_plan(config: &EngineConfig) -> Result<(AddressPlan, u64), EngineError> {
    let shards = match config.shards {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let addresses = match &config.addresses {
        Some(set) => set.clone(),
        None => default_addresses(config.server)?,
    };
    let ports = match config.ports {
        Some(p) => p,
        None => default_ports()?,
    };
    // One family at both ends, whatever the transport.
    if let Some(first) = addresses.get(0)
        && first.is_ipv4() != config.server.is_ipv4()
    {
        return Err(EngineError::FamilyMismatch {
            server: config.server,
            client: SocketAddr::new(first, ports.first()),
        });
    }
    Ok((AddressPlan::new(addresses, ports)?, shards as u64))
}

/// Client source ports when none are given: from 20000 up to below the kernel's ephemeral range.
fn default_ports() -> Result<PortRange, PlanError> {
    PortRange::below_ephemeral(20_000, crate::transport::addresses::ephemeral_range())
}

/// The default client ports were partly taken, so the engine moved up past them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovedPorts {
    /// The highest port found in use.
    pub taken: u16,
    /// The ports the clients use instead.
    pub used: PortRange,
}

impl std::fmt::Display for MovedPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "client port {} is in use (another run on this host?): using ports {}-{} instead",
            self.taken,
            self.used.first(),
            self.used.last()
        )
    }
}

enum Opened {
    Shared(SharedTransport),
    PerClient(PerClientTransport),
    Tcp(TcpTransport),
    Given(Box<dyn Transport + Send>),
}

fn open_transports(layout: &Layout, config: &EngineConfig) -> Result<Vec<Opened>, EngineError> {
    // Engine::start checked the hard limit (Reach::check): this raises the soft one for every
    // shard's sockets or connections at once.
    reserve_files(layout.sockets(config.transport))?;
    match config.transport {
        TransportKind::Shared => {
            (0..layout.shards())
                .map(|s| {
                    // The wildcard address of the plan's family (address_plan checked it is the
                    // server's): one socket receives for every local address.
                    let ip: std::net::IpAddr = if config.server.is_ipv4() {
                        std::net::Ipv4Addr::UNSPECIFIED.into()
                    } else {
                        std::net::Ipv6Addr::UNSPECIFIED.into()
                    };
                    let ports = layout.shard_ports(s)?;
                    Ok(Opened::Shared(SharedTransport::open(
                        ip,
                        ports,
                        &config.shared,
                    )?))
                })
                .collect()
        }
        TransportKind::PerClient => (0..layout.shards())
            .map(|s| {
                Ok(Opened::PerClient(PerClientTransport::open(&endpoints(
                    layout, s,
                ))?))
            })
            .collect(),
        TransportKind::Tcp => (0..layout.shards())
            .map(|s| {
                Ok(Opened::Tcp(TcpTransport::open(
                    &endpoints(layout, s),
                    true,
                )?))
            })
            .collect(),
    }
}

/// Shard `s`'s client endpoints, in local order.
fn endpoints(layout: &Layout, s: u64) -> Vec<SocketAddr> {
    (0..layout.shard_clients(s))
        .filter_map(|local| layout.endpoint(s, local))
        .collect()
}

/// 127.0.0.0/8 for a loopback server; otherwise the one address the kernel would send from.
fn default_addresses(server: SocketAddr) -> Result<AddressSet, EngineError> {
    if server.ip().is_loopback() && server.is_ipv4() {
        return Ok(AddressSet::loopback());
    }
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let probe = UdpSocket::bind(bind)
        .and_then(|s| s.connect(server).map(|()| s))
        .and_then(|s| s.local_addr())
        .map_err(|source| EngineError::Route { server, source })?;
    Ok(AddressSet::List(vec![probe.ip()]))
}

/// How long the engine sleeps at most when nothing is due: bounds the reaction to `stop`.
const MAX_IDLE: Duration = Duration::from_millis(20);

/// `SplitMix64` of two values: independent seeds per client from one fleet seed.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
