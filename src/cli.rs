//! The command line: `run`, `serve`, `check`, `credentials`, `report`. Thin: it parses, wires the fleet, the
//! engine and the embedded server together, prints, and picks the exit code.

mod bootstrap;
mod certificates;
mod embedded;
mod reporting;

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path as FsPath, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Engine, EngineConfig, Layout, TransportKind};
use crate::fleet::{
    Credentials, ExportFormat, Fleet, IdentityPattern, Overrides, Plan, Secret, ServerUri,
    format_duration, parse_duration, parse_uri,
};
use crate::metrics::Snapshot;
use crate::model::{Path, TemplateSet};
use crate::security::dtls::ServerKeys;
use crate::server::{DtlsServerConfig, ObserveLoad, Runner, ServerConfig, WriteLoad};
use crate::transport::{AddressSet, PortRange};
use crate::tui;

/// Exit codes, for scripts and CI.
pub mod exit {
    /// Bad input: command line, fleet file, templates.
    pub const BAD_INPUT: u8 = 2;
    /// The run could not go on (sockets, threads).
    pub const FAILED: u8 = 1;
    /// The server never answered anything.
    pub const UNREACHABLE: u8 = 3;
    /// Stopped by Ctrl-C (clients de-registered): not a completed run.
    pub const INTERRUPTED: u8 = 130;
    /// The run completed but a `--threshold` (or the fleet's `thresholds`) failed.
    pub const THRESHOLD_FAILED: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "lwm2m-swarm",
    version,
    about = "Simulate fleets of LWM2M devices against a server and measure how it copes"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run a fleet: start its clients, hold, de-register them, print a summary.
    Run(RunArgs),
    /// Run the embedded LWM2M server alone (with --bootstrap, behind a bootstrap server).
    Serve(ServeArgs),
    /// Validate a fleet file and print the expanded plan; sends nothing.
    Check(CheckArgs),
    /// Print every client's endpoint, PSK identity and key, for provisioning the server.
    Credentials(CredentialsArgs),
    /// Print the summary of `run --json` results, merged (shards or machines of one test).
    Report(crate::report::MergeArgs),
}

#[derive(Args, Debug)]
struct FleetArgs {
    /// The fleet file (see fleets/).
    fleet: PathBuf,
    /// Server under test, e.g. `coap://192.0.2.10:5683` (default: the fleet's, else embedded).
    #[arg(long, value_parser = parse_uri)]
    server: Option<ServerUri>,
    /// Total clients (a staged ramp keeps its shape).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    clients: Option<u64>,
    /// Clients started per second (replaces the fleet's ramp).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Stop this long after the first start: 30s, 5m, 1h.
    #[arg(long, value_parser = parse_positive_duration)]
    duration: Option<Duration>,
    /// Random seed for every population: same seed, same devices and timings.
    #[arg(long)]
    seed: Option<u64>,
    /// PSK identity of each client: `{endpoint}`, `{index}`, `{number}` and text (replaces the
    /// fleet's `[security] identity`).
    #[arg(long, value_name = "PATTERN", value_parser = parse_identity)]
    psk_identity: Option<IdentityPattern>,
    /// One PSK for every client, in hex (replaces the fleet's key source).
    #[arg(long, value_name = "HEX", value_parser = hex_arg)]
    psk_key: Option<HexArg>,
    /// Directory of object and device templates.
    #[arg(long)]
    templates: Option<PathBuf>,
}

/// `--psk-key` as typed: checked in `load`, because clap's own errors quote the value and this
/// one is a key. Debug hides it (`Cli` derives Debug).
#[derive(Clone)]
struct HexArg(String);

impl std::fmt::Debug for HexArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HexArg(<hidden>)")
    }
}

#[allow(clippy::unnecessary_wraps)] // clap's value_parser signature
fn hex_arg(s: &str) -> Result<HexArg, std::convert::Infallible> {
    Ok(HexArg(s.to_string()))
}

fn parse_identity(s: &str) -> Result<IdentityPattern, String> {
    s.parse()
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TransportArg {
    /// Many clients per UDP socket (IPv4, Linux).
    Shared,
    /// One UDP socket per client (bounded by the open-files limit).
    PerClient,
}

#[derive(Args, Debug)]
struct EngineArgs {
    #[arg(long, value_enum, default_value_t = TransportArg::Shared)]
    transport: TransportArg,
    /// Client source addresses: a CIDR block (10.1.0.0/16), a list (10.0.0.1,10.0.0.2) or
    /// `loopback` (default when the server is on loopback).
    #[arg(long, value_parser = parse_addresses)]
    bind: Option<AddressSet>,
    /// Client source ports, FIRST-LAST (default: 20000 up to below the ephemeral range).
    #[arg(long, value_parser = parse_ports)]
    ports: Option<PortRange>,
    /// Engine threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
}

/// What the embedded server asks of every registered client.
#[derive(Args, Clone, Debug, Default)]
struct LoadArgs {
    /// Read PATH every PERIOD: /3/0/13@30s.
    #[arg(long, value_name = "PATH@PERIOD", value_parser = parse_periodic)]
    read: Option<(Path, Duration)>,
    /// Observe PATH once registered: /3303/0/5700.
    #[arg(long, value_name = "PATH")]
    observe: Option<Path>,
    /// pmin (s) written before the Observe.
    #[arg(long, requires = "observe")]
    pmin: Option<u32>,
    /// pmax (s) written before the Observe.
    #[arg(long, requires = "observe")]
    pmax: Option<u32>,
    /// Write VALUE (text) to PATH every PERIOD: /1/0/3=10@1m.
    #[arg(long, value_name = "PATH=VALUE@PERIOD", value_parser = parse_write)]
    write: Option<(Path, String, Duration)>,
    /// Execute PATH every PERIOD: /1/0/8@10m (Registration Update Trigger).
    #[arg(long, value_name = "PATH@PERIOD", value_parser = parse_periodic)]
    execute: Option<(Path, Duration)>,
    /// Discover PATH every PERIOD: /3/0@5m.
    #[arg(long, value_name = "PATH@PERIOD", value_parser = parse_periodic)]
    discover: Option<(Path, Duration)>,
}

impl LoadArgs {
    fn is_empty(&self) -> bool {
        self.read.is_none()
            && self.observe.is_none()
            && self.write.is_none()
            && self.execute.is_none()
            && self.discover.is_none()
    }

    fn server_config(&self) -> ServerConfig {
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

    fn describe(&self) -> String {
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
        if parts.is_empty() {
            "registrations only".to_string()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Load the embedded server puts on clients (when the fleet has no server); without any of
    /// these flags: observe /3/0/13 (pmin 10 s, pmax 60 s) and read /3/0/0 every minute.
    #[command(flatten)]
    load: LoadArgs,
    /// Print progress lines instead of the live dashboard (the default when stdout is not a
    /// terminal).
    #[arg(long)]
    no_tui: bool,
    /// Time between progress lines (with --no-tui).
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    progress_every: Duration,
    #[command(flatten)]
    report: crate::report::ReportArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to serve on (default 127.0.0.1:5683, or 127.0.0.1:5684 with --psk-key).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Serve DTLS 1.2 with this pre-shared key (hex) for every PSK identity.
    #[arg(long, value_name = "HEX", value_parser = hex_arg)]
    psk_key: Option<HexArg>,
    /// Also run a bootstrap server on ADDR (e.g. 127.0.0.1:5783) that sends clients to this
    /// server; with --psk-key, clients use that key with the bootstrap server and get a key of
    /// their own for this one.
    #[arg(long, value_name = "ADDR")]
    bootstrap: Option<SocketAddr>,
    /// The lifetime the bootstrap server writes into the Server object.
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration, requires = "bootstrap")]
    bootstrap_lifetime: Duration,
    #[command(flatten)]
    load: LoadArgs,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_positive_duration)]
    duration: Option<Duration>,
    /// Seed for the server's message IDs, tokens and timer offsets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time between status lines.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    status_every: Duration,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Debug)]
struct CredentialsArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    format: FormatArg,
    /// Write to this file (created readable by its owner only) instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Certificate mode: write ENDPOINT.pem per client into this directory instead.
    #[arg(long, conflicts_with = "output")]
    output_dir: Option<PathBuf>,
    /// Certificate mode: include each client's private key (to files only: ENDPOINT.key
    /// readable by its owner, or a JSON --output).
    #[arg(long)]
    private_keys: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    /// `endpoint,identity,key` lines after a header: also the key file format (certificates:
    /// `endpoint,subject,sha256`).
    Csv,
    /// A JSON array of {"endpoint", "identity", "key"} objects (certificates: "endpoint",
    /// "subject", "sha256", "certificate" PEM).
    Json,
}

/// Parses `args` (program name first) and runs the command.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::BAD_INPUT } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Serve(args) => serve(&args),
        Command::Check(args) => check(&args),
        Command::Credentials(args) => credentials(&args),
        Command::Report(args) => reporting::merge(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("lwm2m-swarm: {message}");
            ExitCode::from(code)
        }
    }
}

/// Why a command failed, and its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

fn bad_input(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: exit::BAD_INPUT,
        message: message.to_string(),
    }
}

fn failed(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: exit::FAILED,
        message: message.to_string(),
    }
}

/// The fleet file with the command line's values, checked against the templates.
struct Loaded {
    fleet: Fleet,
    templates: Vec<Arc<crate::model::DeviceTemplate>>,
    /// From `[security]` or `--psk-key`; `None`: no security (`NoSec`).
    credentials: Option<Arc<Credentials>>,
}

fn load(args: &FleetArgs) -> Result<Loaded, Failure> {
    let dir = templates_dir(args.templates.as_deref())?;
    let set = TemplateSet::load_dir(&dir).map_err(bad_input)?;
    let overrides = Overrides {
        server: args.server.clone(),
        clients: args.clients,
        rate: args.rate,
        duration: args.duration,
        seed: args.seed,
        psk_identity: args.psk_identity.clone(),
        psk_key: args
            .psk_key
            .as_ref()
            .map(|k| Secret::from_hex(&k.0).map_err(|e| bad_input(format!("--psk-key: {e}"))))
            .transpose()?,
    };
    let fleet = Fleet::load_with(&args.fleet, &overrides).map_err(bad_input)?;
    let templates = fleet.check(&set).map_err(bad_input)?;
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

fn resolve(uri: &ServerUri) -> Result<SocketAddr, Failure> {
    let addrs: Vec<SocketAddr> = (uri.host.as_str(), uri.port)
        .to_socket_addrs()
        .map_err(|e| bad_input(format!("server {uri}: cannot resolve {}: {e}", uri.host)))?
        .collect();
    // The shared transport is IPv4: prefer an IPv4 address when the name has both.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| bad_input(format!("server {uri}: {} has no address", uri.host)))
}

/// The engine's settings; a `coap+tcp://` or `coaps+tcp://` server means the TCP transport,
/// whatever `--transport` says (it picks between the UDP ones).
fn engine_config(server: SocketAddr, args: &EngineArgs, uri: Option<&ServerUri>) -> EngineConfig {
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

fn check(args: &CheckArgs) -> Result<(), Failure> {
    let loaded = load(&args.fleet)?;
    let plan = loaded.fleet.plan();
    print!("{plan}");
    match &loaded.fleet.security {
        Some(security) => println!("  security  {security}"),
        None => println!("  security  none (NoSec)"),
    }
    if let Some(tls) = loaded.fleet.describe_tls() {
        println!("  tls       {tls}");
    }
    let server = match &plan.server {
        Some(uri) => match resolve(uri) {
            Ok(addr) => addr,
            Err(e) => {
                println!("  note      {}", e.message);
                return Ok(());
            }
        },
        None => SocketAddr::from(([127, 0, 0, 1], 5683)),
    };
    let mut config = engine_config(server, &args.engine, plan.server.as_ref());
    // Reads the PEM files: a bad one is found before the run.
    config.tls = tls_config(&loaded.fleet, plan.server.as_ref())?;
    let layout = crate::engine::plan_layout(&plan, &config).map_err(bad_input)?;
    println!("  {}", describe_layout(&layout, &config));
    if config.transport == TransportKind::Tcp {
        println!("  {}", describe_connection_budget(plan.clients)?);
    }
    Ok(())
}

/// TCP: one open file per client. Fails when the limit cannot be raised far enough.
fn describe_connection_budget(clients: u64) -> Result<String, Failure> {
    let limit = crate::transport::FdLimit::current().map_err(failed)?;
    crate::transport::check_connection_budget(clients, limit).map_err(bad_input)?;
    Ok(format!(
        "files     {clients} TCP connections (+{} spare) within the open-files limit \
         (soft {}, hard {}; the soft limit is raised as needed)",
        crate::transport::per_client::FD_RESERVE,
        limit.soft,
        limit.hard
    ))
}

fn describe_layout(layout: &Layout, config: &EngineConfig) -> String {
    let first = layout.endpoint_of_client(0);
    let last = layout.endpoint_of_client(layout.clients().saturating_sub(1));
    let ports: Vec<String> = (0..layout.shards())
        .filter_map(|s| layout.shard_ports(s).ok())
        .map(|p| format!("{}-{}", p.first(), p.last()))
        .collect();
    let transport = match config.transport {
        TransportKind::Shared => "shared sockets",
        TransportKind::PerClient => "one socket per client",
        TransportKind::Tcp if config.tls.is_some() => "one TLS connection per client",
        TransportKind::Tcp => "one TCP connection per client",
    };
    let show = |a: Option<SocketAddr>| a.map_or("?".into(), |a| a.to_string());
    if config.transport == TransportKind::Tcp {
        // Connections bind the address only: the kernel picks each source port.
        let ip = |a: Option<SocketAddr>| a.map_or("?".into(), |a| a.ip().to_string());
        return format!(
            "addresses {} .. {}, {} shard(s), {transport}, source ports from the kernel",
            ip(first),
            ip(last),
            layout.shards(),
        );
    }
    format!(
        "addresses {} .. {}, {} shard(s), {transport}, ports {}",
        show(first),
        show(last),
        layout.shards(),
        ports.join(", ")
    )
}

/// `credentials`: every client's endpoint, identity and key, the one output with keys in it.
fn credentials(args: &CredentialsArgs) -> Result<(), Failure> {
    let loaded = load(&args.fleet)?;
    let credentials = loaded.credentials.ok_or_else(|| {
        bad_input(format!(
            "{}: no [security] table, so no credentials: add one or give --psk-key",
            loaded.fleet.file
        ))
    })?;
    let format = match args.format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Json => ExportFormat::Json,
    };
    let clients = loaded.fleet.clients;
    let credentials = match credentials.as_ref() {
        Credentials::Psk(psk) => psk,
        Credentials::Certificate(certs) => {
            return certificates::export(args, certs, clients, format);
        }
    };
    if args.output_dir.is_some() || args.private_keys {
        return Err(bad_input(
            "--output-dir and --private-keys are for certificate mode; PSK keys are the export",
        ));
    }
    let out: Box<dyn Write> = if let Some(path) = &args.output {
        let file = create_private(path)
            .map_err(|e| bad_input(format!("{}: cannot create: {e}", path.display())))?;
        Box::new(file)
    } else {
        Box::new(std::io::stdout().lock())
    };
    let mut out = std::io::BufWriter::new(out);
    let written = credentials
        .export(clients, format, &mut out)
        .and_then(|()| out.flush());
    written.map_err(|e| failed(format!("cannot write the credentials: {e}")))
}

/// A new file (or truncated) that only its owner can read: it holds keys.
fn create_private(path: &FsPath) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The mode above applies to a new file only: an existing one may be readable by others.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

#[cfg(all(test, unix))]
mod private_file_tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_file_is_owner_only_even_when_it_existed() {
        let path = std::env::temp_dir().join(format!("lwm2m-swarm-private-{}", std::process::id()));
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(super::create_private(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_file(&path).unwrap();
        assert_eq!(mode, 0o600, "{mode:o}");
    }
}

fn run(args: &RunArgs) -> Result<(), Failure> {
    let Loaded {
        fleet,
        templates,
        credentials,
    } = load(&args.fleet)?;
    let plan = fleet.plan();
    let (server, embedded) = if let Some(uri) = &plan.server {
        (resolve(uri)?, embedded::Embedded::None)
    } else {
        embedded::Embedded::start(&plan, &args.load, credentials.as_deref())?
    };
    let target = plan
        .server
        .as_ref()
        .map_or_else(|| embedded.to_string(), ToString::to_string);
    let mut config = engine_config(server, &args.engine, plan.server.as_ref());
    config.credentials = credentials.map(|c| c as Arc<dyn crate::security::CredentialSource>);
    config.tls = tls_config(&fleet, plan.server.as_ref())?;
    let total = plan.total_duration();
    let (stop_at, stop_timeout) = (plan.stop_at(), plan.stop_timeout);
    let clients = plan.clients;
    let file = plan.file.clone();
    let mut reports = reporting::Reports::start(args, &fleet, &plan, &target)?;
    let engine = Engine::start(plan, templates, &config).map_err(|e| {
        let hint = match &e {
            crate::engine::EngineError::Transport(crate::transport::TransportError::Bind {
                source,
                ..
            }) if source.kind() == std::io::ErrorKind::AddrInUse => {
                " (another run on these client ports? choose others with --ports FIRST-LAST)"
            }
            _ => "",
        };
        failed(format!("{e}{hint}"))
    })?;
    println!(
        "{file}: {clients} clients against {target}; {}; at most {}",
        describe_layout(engine.layout(), &config),
        format_duration(total)
    );
    let interrupts = catch_interrupts();
    let observed = Observed {
        engine: &engine,
        reports: RefCell::new(&mut reports),
    };
    let stop_sent = if !args.no_tui && std::io::stdout().is_terminal() {
        let info = tui::RunInfo {
            target,
            fleet: file,
            clients,
            stop_at,
            stop_timeout,
        };
        dashboard(&observed, &info, &interrupts, args.progress_every)
    } else {
        progress_lines(&observed, args.progress_every, &interrupts)
    };
    let (summary, ended) = engine.finish();
    println!("\n{summary}");
    embedded.stop();
    let thresholds = reports.finish(&summary);
    ended.map_err(|e| failed(format!("the run stopped early: {e}")))?;
    let thresholds = thresholds?;
    if summary.server_tried() && !summary.server_answered() {
        return Err(never_answered(server, &summary));
    }
    if stop_sent {
        return Err(Failure {
            code: exit::INTERRUPTED,
            message: "interrupted: the run did not complete (every client was stopped)".into(),
        });
    }
    thresholds.map_or(Ok(()), Err)
}

/// Exit 3: what was tried toward a server that never answered.
fn never_answered(server: SocketAddr, summary: &Snapshot) -> Failure {
    let sent: u64 = summary.requests.iter().map(|r| r.sent).sum();
    let connections = summary.connections.total();
    let tried = if connections > 0 {
        format!("{connections} connections begun")
    } else {
        format!("{} handshakes begun", summary.handshakes.total())
    };
    Failure {
        code: exit::UNREACHABLE,
        message: format!(
            "the server at {server} never answered ({sent} requests sent, {tried}): is it \
             running, is the address right (and the key or certificate)?"
        ),
    }
}

/// The fleet's `[tls]` with its PEM files read, for a `coaps+tcp://` server.
fn tls_config(
    fleet: &Fleet,
    server: Option<&ServerUri>,
) -> Result<Option<Arc<crate::security::tls::TlsClientConfig>>, Failure> {
    let (Some(settings), Some(uri)) = (&fleet.tls, server) else {
        return Ok(None);
    };
    let tls = crate::security::tls::TlsClientConfig::build(settings, &uri.host)
        .map_err(|e| bad_input(format!("{}: [tls]: {e}", fleet.file)))?;
    if tls.is_insecure() {
        eprintln!("warning: insecure_skip_verify: the server's certificate is not verified");
    }
    Ok(Some(Arc::new(tls)))
}

/// Counts Ctrl-Cs: the first lets clients de-register, a second leaves at once.
fn catch_interrupts() -> Arc<AtomicU32> {
    let interrupts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&interrupts);
    let handler = ctrlc::set_handler(move || {
        if counter.fetch_add(1, Ordering::AcqRel) >= 1 {
            tui::restore_terminal();
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    });
    if let Err(e) = handler {
        eprintln!("note: Ctrl-C will not de-register clients first: {e}");
    }
    interrupts
}

/// The live dashboard until the run ends; returns whether the user stopped it.
fn dashboard(
    observed: &Observed<'_>,
    info: &tui::RunInfo,
    interrupts: &AtomicU32,
    every: Duration,
) -> bool {
    match tui::run(observed, info, interrupts) {
        Ok(tui::TuiExit::Completed) => false,
        Ok(tui::TuiExit::Stopped) => true,
        // Asked twice: like a second Ctrl-C (the terminal is restored by now).
        Ok(tui::TuiExit::Abandoned) => std::process::exit(i32::from(exit::INTERRUPTED)),
        Err(e) => {
            // The run is not the dashboard's to end: go on with progress lines.
            eprintln!("lwm2m-swarm: the dashboard failed ({e}): progress lines instead");
            progress_lines(observed, every, interrupts)
        }
    }
}

/// The engine as the live views see it: every snapshot they take also feeds the reports
/// (which keep one per second).
struct Observed<'a> {
    engine: &'a Engine,
    reports: RefCell<&'a mut reporting::Reports>,
}

impl tui::Controls for Observed<'_> {
    fn snapshot(&self) -> Snapshot {
        let snapshot = self.engine.snapshot();
        self.reports.borrow_mut().tick(&snapshot);
        snapshot
    }
    fn stop(&self) {
        self.engine.stop();
    }
    fn pause_starts(&self, paused: bool) {
        self.engine.pause_starts(paused);
    }
    fn is_finished(&self) -> bool {
        self.engine.is_finished()
    }
    fn set_start_rate(&self, factor: f64) {
        self.engine.set_start_rate(factor);
    }
}

/// Prints a progress line every `every` until the engine is finished; returns whether it was
/// stopped by Ctrl-C.
fn progress_lines(engine: &impl tui::Controls, every: Duration, interrupts: &AtomicU32) -> bool {
    let mut previous = Snapshot::default();
    let mut next_line = every;
    let mut stop_sent = false;
    while !engine.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if interrupts.load(Ordering::Acquire) > 0 && !stop_sent {
            println!("interrupted: de-registering (Ctrl-C again to quit at once)");
            engine.stop();
            stop_sent = true;
        }
        let snapshot = engine.snapshot();
        if snapshot.elapsed >= next_line {
            println!("{}", snapshot.progress_line(&previous));
            let _ = std::io::stdout().flush();
            next_line = snapshot.elapsed + every;
            previous = snapshot;
        }
    }
    stop_sent
}

/// The embedded server's settings for `plan`: the load asked for, or the demo's.
fn embedded_config(plan: &Plan, load: &LoadArgs) -> (ServerConfig, LoadArgs) {
    let load = if load.is_empty() {
        LoadArgs::demo()
    } else {
        load.clone()
    };
    let mut config = load.server_config();
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

/// The embedded server, on a free loopback port, with the load asked for (or the demo's);
/// over DTLS, knowing every client's key, when the fleet has credentials.
fn start_embedded(
    plan: &Plan,
    load: &LoadArgs,
    credentials: Option<&Credentials>,
) -> Result<Runner, Failure> {
    let (config, load) = embedded_config(plan, load);
    let seed = plan.groups.first().map_or(0, |g| g.seed);
    let dtls = match credentials {
        // The server learns keys by identity: the fleet's, all computed now.
        Some(Credentials::Psk(c)) => Some(DtlsServerConfig::new(ServerKeys::from_map(
            c.server_keys(plan.clients),
        ))),
        Some(Credentials::Certificate(c)) => Some(certificates::embedded_server(c)?),
        None => None,
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let runner = Runner::start_with(loopback, config, seed, dtls.as_ref())
        .map_err(|e| failed(format!("cannot start the embedded server: {e}")))?;
    let over = match credentials {
        Some(Credentials::Psk(_)) => format!(" over DTLS (PSK, {} identities)", plan.clients),
        Some(Credentials::Certificate(_)) => {
            " over DTLS (certificates issued by the fleet's CA)".to_string()
        }
        None => String::new(),
    };
    println!(
        "embedded LWM2M server on {}{over} ({})",
        runner.local_addr(),
        load.describe()
    );
    Ok(runner)
}

fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let key = args
        .psk_key
        .as_ref()
        .map(|k| Secret::from_hex(&k.0).map_err(|e| bad_input(format!("--psk-key: {e}"))))
        .transpose()?
        .map(|key| ServerKeys::shared(key.expose().to_vec()));
    let port = if key.is_some() { 5684 } else { 5683 };
    let bind = args
        .bind
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    for addr in std::iter::once(bind).chain(args.bootstrap) {
        if !addr.ip().is_loopback() {
            eprintln!(
                "note: serving on {addr}, reachable from other hosts; the default is loopback"
            );
        }
    }
    if let Some(bootstrap_bind) = args.bootstrap {
        let config = args.load.server_config();
        let (lifetime, seed) = (args.bootstrap_lifetime, args.seed);
        let pair =
            bootstrap::BootstrapPair::start(bind, bootstrap_bind, config, lifetime, key, seed)?;
        println!(
            "LWM2M server behind a bootstrap server: {pair}{} ({}); Ctrl-C stops them",
            if args.psk_key.is_some() {
                " over DTLS (PSK: one key for every identity at the bootstrap server, a key \
                 of their own at the LWM2M server)"
            } else {
                ""
            },
            args.load.describe()
        );
        wait_for_stop(args, || {
            format!(
                "bootstrap server: {} | server: {}",
                pair.bootstrap.stats(),
                pair.server.stats()
            )
        });
        pair.stop();
        return Ok(());
    }
    let dtls = key.map(DtlsServerConfig::new);
    let runner = Runner::start_with(bind, args.load.server_config(), args.seed, dtls.as_ref())
        .map_err(|e| failed(format!("cannot serve on {bind}: {e}")))?;
    let over = if dtls.is_some() {
        " over DTLS (PSK, one key for every identity)"
    } else {
        ""
    };
    println!(
        "LWM2M server on {}{over} ({}); Ctrl-C stops it",
        runner.local_addr(),
        args.load.describe()
    );
    wait_for_stop(args, || runner.stats().to_string());
    let stats = runner.stop().map_err(failed)?;
    println!("{stats}");
    Ok(())
}

/// Prints `status()` every `--status-every` until Ctrl-C or `--duration`.
fn wait_for_stop(args: &ServeArgs, status: impl Fn() -> String) {
    let interrupted = Arc::new(AtomicU32::new(0));
    {
        let interrupted = Arc::clone(&interrupted);
        let _ = ctrlc::set_handler(move || {
            interrupted.fetch_add(1, Ordering::AcqRel);
        });
    }
    let started = std::time::Instant::now();
    let mut next_line = args.status_every;
    while interrupted.load(Ordering::Acquire) == 0
        && args.duration.is_none_or(|d| started.elapsed() < d)
    {
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() >= next_line {
            println!("[{:>6.1}s] {}", started.elapsed().as_secs_f64(), status());
            next_line += args.status_every;
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err("must be more than 0 clients/s".into())
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        Err("must be more than 0s".into())
    } else {
        Ok(d)
    }
}

fn parse_addresses(s: &str) -> Result<AddressSet, String> {
    AddressSet::parse(s).map_err(|e| e.to_string())
}

fn parse_ports(s: &str) -> Result<PortRange, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected FIRST-LAST, e.g. 20000-29999"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port"))
    };
    PortRange::new(port(a)?, port(b)?).map_err(|e| e.to_string())
}

fn parse_path(s: &str) -> Result<Path, String> {
    s.parse::<Path>()
        .map_err(|_| format!("{s:?} is not an LWM2M path like /3/0/13"))
}

fn parse_periodic(s: &str) -> Result<(Path, Duration), String> {
    let (path, period) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: expected PATH@PERIOD, e.g. /3/0/13@30s"))?;
    Ok((parse_path(path)?, parse_positive_duration(period)?))
}

fn parse_write(s: &str) -> Result<(Path, String, Duration), String> {
    let (rest, period) = s
        .rsplit_once('@')
        .ok_or_else(|| format!("{s:?}: expected PATH=VALUE@PERIOD, e.g. /1/0/3=10@1m"))?;
    let (path, value) = rest
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PATH=VALUE@PERIOD"))?;
    Ok((
        parse_path(path)?,
        value.to_string(),
        parse_positive_duration(period)?,
    ))
}
