//! Scale harness: how many registered, observed clients one process holds, what each costs in
//! memory, and how fast they register.
//!
//! `cargo bench --bench scale -- --clients 100000 [--rate 5000] [--hold 20s] [--shards N]`
//!
//! The embedded LWM2M server runs in a child process (this same binary, `--serve-child`), so
//! the memory measured here is the simulator's alone. It observes /3/0/13 on every client
//! (pmin 60 s, pmax 300 s); lifetimes are 300 s.

#[path = "support/peer_process.rs"]
mod peer_process;

use std::time::{Duration, Instant};

use lwm2m_swarm::client::{ClientState, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::{Fleet, parse_duration};
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::model::{Path, TemplateSet};
use lwm2m_swarm::server::{ObserveLoad, Runner, ServerConfig};
use lwm2m_swarm::transport::PortRange;

struct Args {
    clients: u64,
    rate: f64,
    hold: Duration,
    shards: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        clients: 100_000,
        rate: 5_000.0,
        hold: Duration::from_secs(20),
        shards: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--clients" => args.clients = value().parse().expect("--clients N"),
            "--rate" => args.rate = value().parse().expect("--rate R"),
            "--hold" => args.hold = parse_duration(&value()).expect("--hold 20s"),
            "--shards" => args.shards = value().parse().expect("--shards N"),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

fn serve_child() {
    let config = ServerConfig {
        observe: Some(ObserveLoad {
            path: Path::resource(3, 0, 13),
            pmin: Some(60),
            pmax: Some(300),
        }),
        ..ServerConfig::default()
    };
    let runner = Runner::start_loopback(config, 7).expect("child server starts");
    peer_process::announce(runner.local_addr());
    peer_process::wait_for_parent();
    let stats = runner.stop().expect("child server stops");
    eprintln!("server: {stats}");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn main() {
    if std::env::args().any(|a| a == "--serve-child") {
        serve_child();
        return;
    }
    let args = parse_args();
    let (child, server) = peer_process::spawn(&["--serve-child"]);

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let set = TemplateSet::load_dir(std::path::Path::new(dir)).expect("templates");
    let text = format!(
        "[client]\nlifetime = \"300s\"\nseed = 1\n\
         [[population]]\nname = \"meters\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
         [load]\nclients = {}\nrate = {}\nhold = \"{}s\"\nstop_timeout = \"30s\"\n",
        args.clients,
        args.rate,
        args.hold.as_secs()
    );
    let fleet = Fleet::from_toml(&text, "scale").expect("fleet");
    let templates = fleet.check(&set).expect("templates exist");
    let plan = fleet.plan();
    let mut config = EngineConfig::new(server);
    config.shards = args.shards;
    // Out of the way of other runs on the default ports.
    config.ports = Some(PortRange::new(25_000, 25_999).expect("ports"));

    let rss_before = rss_bytes();
    let started = Instant::now();
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    println!(
        "scale: {} clients at {}/s against the embedded server in a child process, {} shard(s)",
        args.clients,
        args.rate,
        engine.layout().shards()
    );
    let mut previous = Snapshot::default();
    let mut all_registered: Option<(Duration, u64)> = None;
    let mut peak = (0, 0);
    let mut next_line = Duration::from_secs(1);
    while !engine.is_finished() {
        // Sampled often, so the moment everyone is registered is seen within a tenth of a second.
        std::thread::sleep(Duration::from_millis(100));
        let s = engine.snapshot();
        if s.elapsed >= next_line {
            println!("{}", s.progress_line(&previous));
            next_line = s.elapsed + Duration::from_secs(1);
            previous = s.clone();
        }
        let registered = s.state(ClientState::Registered);
        let observed = s.operation(lwm2m_swarm::client::OperationKind::Observe).ok;
        if registered >= peak.0 {
            peak = (registered, rss_bytes());
        }
        if all_registered.is_none() && registered == args.clients && observed >= args.clients {
            all_registered = Some((started.elapsed(), rss_bytes()));
            println!("all {} clients registered and observed", args.clients);
        }
    }
    let summary = engine.join().expect("engine ends");
    println!("\n{summary}\n");
    peer_process::stop(child);

    let register = summary.request(RequestKind::Register);
    let (reached, rss_at) = match all_registered {
        Some((_, rss)) => (args.clients, rss),
        None => peak,
    };
    let per_client = rss_at.saturating_sub(rss_before) / reached.max(1);
    let p = |q: f64| register.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "clients reached (registered and observed): {reached} of {}",
        args.clients
    );
    println!(
        "memory per client: {per_client} B (RSS {} MiB -> {} MiB)",
        rss_before >> 20,
        rss_at >> 20
    );
    match all_registered {
        Some((at, _)) => println!(
            "registrations/s: {:.0} ({} registered and observed {:.1} s after the first start; \
             offered {}/s)",
            args.clients as f64 / at.as_secs_f64(),
            args.clients,
            at.as_secs_f64(),
            args.rate
        ),
        None => println!("registrations/s: not every client registered"),
    }
    println!(
        "register latency from the due time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         timeouts {}, errors {}",
        p(0.5),
        p(0.99),
        register.latency.max() as f64 / 1000.0,
        register.timeout,
        register.error
    );
}
