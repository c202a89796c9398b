//! From options to what `run` and `check` need: the fleet loaded and checked against the
//! templates, the server resolved, the engine's settings, and their one-line description.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use super::args::{EngineArgs, FleetArgs, TimingArgs, TransportArg};
use super::parse::HexArg;
use super::{Failure, bad_input, failed};
use crate::engine::{EngineConfig, Layout, Reach, TransportKind};
use crate::fleet::Plan;
use crate::fleet::{Credentials, Fleet, Overrides, ServerUri};
use crate::model::TemplateSet;
use crate::security::tls::TlsClientConfig;

/// The fleet file with the command line's values, checked against the templates.
pub(super) struct Loaded {
    pub fleet: Fleet,
    pub templates: Vec<Arc<crate::model::DeviceTemplate>>,
    /// From `[security]` or `--psk-key`; `None`: no security (`NoSec`).
    pub credentials: Option<Arc<Credentials>>,
}

/// The fleet of `args`, with `timing`'s rate, duration and seed (`credentials` has none).
pub(super) fn load(args: &FleetArgs, timing: &TimingArgs) -> Result<Loaded, Failure> {
    let dir = templates_dir(args.templates.as_deref())?;
    let set = TemplateSet::load_dir(&dir).map_err(bad_input)?;
    let overrides = Overrides {
        server: args.server.clone(),
        clients: args.clients,
        rate: timing.rate,
        duration: timing.duration,
        seed: timing.seed,
        psk_identity: args.psk_identity.clone(),
        psk_key: args.psk_key.as_ref().map(HexArg::secret).transpose()?,
    };
    let fleet = Fleet::load_with(&args.fleet, &overrides).map_err(bad_input)?;
    let templates = fleet.check(&set).map_err(bad_input)?;
    tracing::debug!(
        "fleet {} loaded: {} templates from {}",
        args.fleet.display(),
        templates.len(),
        dir.display()
    );
    let credentials = fleet.credentials().map_err(bad_input)?.map(Arc::new);
    Ok(Loaded {
        fleet,
        templates,
        credentials,
    })
}

/// `--templates`, else `object-templates/` here, else the one shipped beside the sources.
fn templates_dir(given: Option<&FsPath>) -> Result<PathBuf, Failure> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    let candidates = [
        PathBuf::from("object-templates"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("object-templates"),
    ];
    candidates.into_iter().find(|d| d.is_dir()).ok_or_else(|| {
        bad_input("no object-templates/ directory here: give one with --templates DIR")
    })
}

pub(super) fn resolve(uri: &ServerUri) -> Result<SocketAddr, Failure> {
    let addrs: Vec<SocketAddr> = (uri.host.as_str(), uri.port)
        .to_socket_addrs()
        .map_err(|e| bad_input(format!("server {uri}: cannot resolve {}: {e}", uri.host)))?
        .collect();
    // IPv4 when the name has both: the default source addresses (127.0.0.0/8) are IPv4.
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| bad_input(format!("server {uri}: {} has no address", uri.host)))?;
    tracing::debug!("server {uri} resolved to {addr} (of {addrs:?})");
    Ok(addr)
}

/// Where the embedded server listens as far as the address plan is concerned (on loopback, so
/// clients send from 127.0.0.0/8); its port is known once it runs.
pub(super) const EMBEDDED_SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5683);

/// What this host's plan can reach and what the run needs; [`Reach::check`] says whether it
/// fits. `open_files` stands for this process's open-files limit (as soft and hard) when the
/// plan is for another host. Warns when explicit `--ports` overlap the kernel's ephemeral range.
pub(super) fn host_reach(
    plan: &Plan,
    config: &EngineConfig,
    open_files: Option<u64>,
) -> Result<Reach, Failure> {
    if let Some(ports) = config.ports
        && let Err(e) = ports.check_outside(crate::transport::addresses::ephemeral_range())
    {
        tracing::warn!("{e}");
    }
    let limit = match open_files {
        Some(n) => crate::transport::FdLimit { soft: n, hard: n },
        None => crate::transport::FdLimit::current().map_err(failed)?,
    };
    crate::engine::plan_reach(plan, config, limit).map_err(bad_input)
}

/// The engine's settings; a `coap+tcp://` or `coaps+tcp://` server means the TCP transport,
/// whatever `--transport` says (it picks between the UDP ones).
pub(super) fn engine_config(
    server: SocketAddr,
    args: &EngineArgs,
    uri: Option<&ServerUri>,
) -> EngineConfig {
    let mut config = EngineConfig::new(server);
    config.transport = match args.transport {
        _ if uri.is_some_and(|u| u.scheme.is_tcp()) => TransportKind::Tcp,
        TransportArg::Shared => TransportKind::Shared,
        TransportArg::PerClient => TransportKind::PerClient,
    };
    config.addresses.clone_from(&args.bind);
    config.ports = args.ports;
    config.shards = args.shards;
    config
}

/// The fleet's `[tls]` with its PEM files read, for a `coaps+tcp://` server.
pub(super) fn tls_config(
    fleet: &Fleet,
    server: Option<&ServerUri>,
) -> Result<Option<Arc<TlsClientConfig>>, Failure> {
    let (Some(settings), Some(uri)) = (&fleet.tls, server) else {
        return Ok(None);
    };
    let tls = TlsClientConfig::build(settings, &uri.host)
        .map_err(|e| bad_input(format!("{}: [tls]: {e}", fleet.file)))?;
    if tls.is_insecure() {
        tracing::warn!("insecure_skip_verify: the server's certificate is not verified");
    }
    Ok(Some(Arc::new(tls)))
}

pub(super) fn describe_layout(layout: &Layout, config: &EngineConfig) -> String {
    let (first, last) = layout.first_and_last_endpoints();
    let threads = match layout.shards() {
        1 => "1 engine thread".to_string(),
        n => format!("{n} engine threads"),
    };
    let transport = match config.transport {
        TransportKind::Shared => "shared sockets",
        TransportKind::PerClient => "one socket per client",
        TransportKind::Tcp if config.tls.is_some() => "one TLS connection per client",
        TransportKind::Tcp => "one TCP connection per client",
    };
    let ip = |a: Option<SocketAddr>| a.map_or("?".into(), |a| a.ip().to_string());
    let one_ip = first.map(|a| a.ip()) == last.map(|a| a.ip());
    let sources = if config.transport == TransportKind::Tcp {
        // Connections bind the address only: the kernel picks each source port.
        let ips = if one_ip {
            ip(first)
        } else {
            format!("{} .. {}", ip(first), ip(last))
        };
        format!("{ips}, source ports from the kernel")
    } else if one_ip {
        // The shards' ranges follow each other on one address: one range says it.
        let ports = layout.ports_used();
        match (ports.first(), ports.last()) {
            (a, b) if a == b => format!("{} port {a}", ip(first)),
            (a, b) => format!("{} ports {a}-{b}", ip(first)),
        }
    } else {
        let show = |a: Option<SocketAddr>| a.map_or("?".into(), |a| a.to_string());
        format!("addresses {} .. {}", show(first), show(last))
    };
    format!("{sources}, {threads}, {transport}")
}

/// Starts the engine; names the port in use when `--ports` was given. (Where the engine moved
/// when default ports were taken is [`crate::engine::Engine::moved_ports`], for the caller to
/// say.)
/// The run's plan and engine settings, for `RUST_LOG=debug`.
pub(super) fn log_set_up(plan: &Plan, config: &EngineConfig) {
    tracing::debug!(
        "plan: {} clients in {} groups ({}), ramp {:?}, hold {:?}, stop timeout {:?}, at most {:?}",
        plan.clients,
        plan.groups.len(),
        plan.groups
            .iter()
            .map(|g| format!("{} x{} of {}", g.name, g.count, g.template))
            .collect::<Vec<_>>()
            .join(", "),
        plan.ramp,
        plan.hold,
        plan.stop_timeout,
        plan.total_duration()
    );
    tracing::debug!(
        "engine: server {}, transport {:?}, shards {} (0: one per core), client ports {}",
        config.server,
        config.transport,
        config.shards,
        config.ports.map_or("default".to_string(), |p| format!(
            "{}-{}",
            p.first(),
            p.last()
        ))
    );
}

pub(super) fn start_engine(
    plan: Plan,
    templates: Vec<Arc<crate::model::DeviceTemplate>>,
    config: &EngineConfig,
) -> Result<crate::engine::Engine, Failure> {
    let engine = crate::engine::Engine::start(plan, templates, config).map_err(|e| match &e {
        crate::engine::EngineError::Transport(crate::transport::TransportError::Bind {
            addr,
            source,
        }) if source.kind() == std::io::ErrorKind::AddrInUse => match config.ports {
            Some(ports) => failed(format!(
                "{e}: client port {} of --ports {}-{} is taken, by another run or another \
                 --shard on this host? Give each its own --ports FIRST-LAST, or leave --ports \
                 out to use free ones",
                addr.port(),
                ports.first(),
                ports.last()
            )),
            None => failed(format!(
                "every default client port up to {} is in use ({e}): give --ports FIRST-LAST",
                addr.port()
            )),
        },
        _ => failed(e),
    })?;
    let layout = engine.layout();
    tracing::debug!(
        "engine started: sockets bound, {} shards, {} clients in this process",
        layout.shards(),
        (0..layout.shards())
            .map(|s| layout.shard_clients(s))
            .sum::<u64>()
    );
    if let Some(moved) = engine.moved_ports() {
        tracing::debug!("client port range moved: {moved}");
    }
    Ok(engine)
}
