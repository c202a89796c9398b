//! A firmware campaign at fleet scale: devices pull an image through the embedded server's
//! campaign with a bounded number of downloads at once.
//!
//! `cargo bench --bench fota -- [--devices 100000] [--image-size 256KiB] [--max-concurrent 5000]
//! [--rate 10000] [--timeout 30m]`
//!
//! The embedded server runs in a child process (this binary, `--serve-child`) with one pull
//! campaign of every device, starting once the fleet has registered; the devices (smart meters,
//! Firmware Update with an update time of 1 s, no injected failures) run in this process, whose
//! heap the counting allocator measures. The parent first measures bare Block2 GETs of the image
//! against the same server (no LWM2M clients), then runs the fleet until every device is updated
//! or failed.

#[path = "support/bare_round_trips.rs"]
mod bare_round_trips;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/load_average.rs"]
mod load_average;
#[path = "support/peer_process.rs"]
mod peer_process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bare_round_trips::bare_round_trips;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use counting_alloc::heap_in_use;
use load_average::load_average;
use lwm2m_swarm::client::{ClientState, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::{Fleet, parse_duration};
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::model::TemplateSet;
use lwm2m_swarm::server::{CampaignConfig, CampaignMode, Firmware, Runner, ServerConfig};
use lwm2m_swarm::transport::PortRange;

const IMAGE_NAME: &str = "firmware-new.bin";
/// The block size the bare GETs ask for (SZX 6), as the clients do by default.
const BLOCK_SZX: u32 = 6;
/// How often both processes sample their heap and the campaign's counts.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

struct Args {
    devices: u64,
    image_size: usize,
    max_concurrent: usize,
    rate: u64,
    timeout: Duration,
}

fn parse_size(text: &str) -> usize {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: usize = number.parse().expect("--image-size 256KiB");
    n * match unit {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        other => panic!("--image-size: unknown unit {other:?} (B, KiB, MiB)"),
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        devices: 100_000,
        image_size: 256 * 1024,
        max_concurrent: 5_000,
        rate: 10_000,
        timeout: Duration::from_secs(30 * 60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--devices" => args.devices = value().parse().expect("--devices N"),
            "--image-size" => args.image_size = parse_size(&value()),
            "--max-concurrent" => {
                args.max_concurrent = value().parse().expect("--max-concurrent M");
            }
            "--rate" => args.rate = value().parse().expect("--rate R"),
            "--timeout" => args.timeout = parse_duration(&value()).expect("--timeout 30m"),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

/// The child: `--serve-child IMAGE_SIZE MAX_CONCURRENT START_MS`.
fn serve_child(args: &[String]) {
    let number = |i: usize| -> u64 { args[i].parse().expect("the child's arguments") };
    let campaign = CampaignConfig {
        share: 1.0,
        start: Duration::from_millis(number(2)),
        mode: CampaignMode::Pull,
        max_concurrent: number(1) as usize,
        firmware: Firmware::generated(IMAGE_NAME, number(0) as usize),
        version: None,
        timeout: Duration::from_secs(120),
        block_size: 512,
    };
    let config = ServerConfig {
        campaigns: vec![campaign],
        ..ServerConfig::default()
    };
    let runner = Runner::start_loopback(config, 7).expect("child server starts");
    peer_process::announce(runner.local_addr());
    let done = AtomicBool::new(false);
    let max_concurrent = number(1);
    let wave = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut wave = FirstWave::default();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(SAMPLE_EVERY);
                let heap = heap_in_use();
                let c = runner.stats().campaign;
                let ended = c.downloaded + c.failed;
                wave.sample(heap, c.started, c.downloading, ended, max_concurrent);
            }
            wave
        });
        peer_process::wait_for_parent();
        done.store(true, Ordering::Relaxed);
        sampler.join().expect("the sampler ends")
    });
    let stats = runner.stop().expect("child server stops");
    eprintln!("server: {stats}");
    eprintln!(
        "server heap, first wave: {} (the campaign's record of each of the {} devices picked is \
         in it too: compare two --max-concurrent values for the cost of one download)",
        wave.describe(),
        stats.campaign.targeted
    );
}

/// The heap before the campaign and while its first wave of downloads fills every slot (no
/// download ended yet): their difference is what those downloads hold, and nothing else, as
/// nothing else changes in between.
#[derive(Default)]
struct FirstWave {
    /// The last sample before the first download.
    before: Option<isize>,
    /// Samples with every slot downloading and no download ended yet.
    full: Vec<isize>,
    in_flight: u64,
}

impl FirstWave {
    fn sample(&mut self, heap: isize, started: u64, in_flight: u64, ended: u64, max: u64) {
        if started == 0 {
            self.before = Some(heap);
        } else if ended == 0 && in_flight * 100 >= max * 95 {
            self.full.push(heap);
            self.in_flight = self.in_flight.max(in_flight);
        }
    }

    /// The median growth over the full samples, and per download.
    fn growth(&self) -> Option<(isize, isize)> {
        let before = self.before?;
        let mut full = self.full.clone();
        full.sort_unstable();
        let median = *full.get(full.len() / 2)?;
        let growth = median - before;
        Some((growth, growth / self.in_flight.max(1) as isize))
    }

    fn describe(&self) -> String {
        match self.growth() {
            Some((growth, per)) => format!(
                "{per} B per download ({:.1} MiB over {} downloads, median of {} samples)",
                growth as f64 / f64::from(1 << 20),
                self.in_flight,
                self.full.len()
            ),
            None => "not measured (no sample before the campaign, or none with every slot \
                     downloading before the first download ended)"
                .to_string(),
        }
    }
}

/// A Block2 GET of the image, of block `num`, as the devices send it.
fn block_get(image_blocks: u32) -> impl Fn(u16) -> Vec<u8> {
    move |mid| {
        let num = u32::from(mid) % image_blocks;
        let value = (num << 4) | BLOCK_SZX;
        let bytes = value.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(RequestType::Get);
        p.header.message_id = mid;
        p.set_token(vec![1, 2, 3, 4]);
        p.add_option(CoapOption::UriPath, b"fw".to_vec());
        p.add_option(CoapOption::UriPath, IMAGE_NAME.as_bytes().to_vec());
        p.add_option(CoapOption::Block2, bytes[first..].to_vec());
        p.to_bytes().expect("encodes")
    }
}

fn downloads_in_flight(s: &Snapshot) -> u64 {
    s.firmware
        .started
        .saturating_sub(s.firmware.downloaded + s.firmware.failed_total())
}

/// A moment of the run: when, and the Block2 GETs answered by then. (Not a snapshot clone: its
/// histograms, a few MiB, would count in the heap figures.)
struct Mark {
    elapsed: Duration,
    blocks: u64,
}

impl Mark {
    fn of(s: &Snapshot) -> Mark {
        Mark {
            elapsed: s.elapsed,
            blocks: s.request(RequestKind::Download).ok,
        }
    }
}

/// What the parent saw of the campaign, sampled every [`SAMPLE_EVERY`].
#[derive(Default)]
struct Watched {
    /// The heap with every device registered and idle, the last time before the first download.
    idle_heap: Option<isize>,
    /// (downloads in flight, heap) at the sample with the most downloads in flight.
    busiest: (u64, isize),
    /// The heap before the campaign and during its first wave.
    first_wave: FirstWave,
    /// Downloads in flight from the first time the slots were full to the last device started:
    /// (least, sum, samples).
    steady: Option<(u64, u64, u64)>,
    first_download: Option<Mark>,
    last_downloaded: Option<Mark>,
    last_updated: Option<Mark>,
    /// The heap once every device was updated or failed.
    heap_at_end: Option<isize>,
}

/// Prints progress until every device is updated or failed (or the timeout).
fn watch(engine: &Engine, args: &Args) -> Watched {
    let started = Instant::now();
    let mut previous = Snapshot::default();
    let mut next_line = Duration::from_secs(1);
    let mut w = Watched::default();
    let full = (args.max_concurrent as u64 * 95 / 100).max(1);
    while !engine.is_finished() && started.elapsed() < args.timeout {
        std::thread::sleep(SAMPLE_EVERY);
        let heap = heap_in_use();
        let s = engine.snapshot();
        let in_flight = downloads_in_flight(&s);
        if s.elapsed >= next_line {
            let f = &s.firmware;
            println!(
                "{} | firmware started {} in flight {} downloaded {} updated {} failed {}",
                s.progress_line(&previous),
                f.started,
                in_flight,
                f.downloaded,
                f.updated,
                f.failed_total()
            );
            next_line = s.elapsed + Duration::from_secs(1);
            previous = s.clone();
        }
        let f = &s.firmware;
        let all_registered = s.state(ClientState::Registered) == args.devices;
        if f.started > 0 || all_registered {
            let ended = f.downloaded + f.failed_total();
            let max = args.max_concurrent as u64;
            w.first_wave.sample(heap, f.started, in_flight, ended, max);
        }
        if s.firmware.started == 0 {
            if all_registered {
                w.idle_heap = Some(heap);
            }
            continue;
        }
        if w.first_download.is_none() {
            w.first_download = Some(Mark::of(&s));
        }
        if in_flight > w.busiest.0 {
            w.busiest = (in_flight, heap);
        }
        if s.firmware.started < args.devices && (w.steady.is_some() || in_flight >= full) {
            let (least, sum, n) = w.steady.get_or_insert((u64::MAX, 0, 0));
            *least = (*least).min(in_flight);
            *sum += in_flight;
            *n += 1;
        }
        let failed = s.firmware.failed_total();
        if w.last_downloaded.is_none() && s.firmware.downloaded + failed >= args.devices {
            w.last_downloaded = Some(Mark::of(&s));
        }
        if s.firmware.updated + failed >= args.devices {
            w.heap_at_end = Some(heap);
            w.last_updated = Some(Mark::of(&s));
            break;
        }
    }
    w
}

/// The figures: heap per download, completion time, Block2 exchanges/s against the bare rate.
fn report(args: &Args, summary: &Snapshot, watched: &Watched, heap_before: isize, bare_rate: f64) {
    let f = &summary.firmware;
    println!(
        "devices: {} of {} updated, {} failed {:?}",
        f.updated,
        args.devices,
        f.failed_total(),
        f.failed
    );
    println!(
        "client heap per download (the engine, this process; first wave against all registered \
         and idle): {}",
        watched.first_wave.describe()
    );
    match watched.idle_heap {
        Some(idle) => {
            let per_download = (watched.busiest.1 - idle) / watched.busiest.0.max(1) as isize;
            println!(
                "heap growth from all registered to the busiest sample, per download in flight: \
                 {per_download} B, devices done by then included ({} downloads in flight; heap \
                 {} MiB idle after registration, {} MiB then; idle client {} B)",
                watched.busiest.0,
                idle >> 20,
                watched.busiest.1 >> 20,
                (idle - heap_before) / args.devices as isize
            );
        }
        None => {
            println!(
                "heap per downloading device: not every device registered before the campaign"
            );
        }
    }
    if let (Some(idle), Some(end)) = (watched.idle_heap, watched.heap_at_end) {
        println!(
            "client heap per updated device, once all were (what an update leaves: new version, \
             Package URI, State and Update Result written): {} B",
            (end - idle) / args.devices as isize
        );
    }
    match watched.steady {
        Some((least, sum, n)) => println!(
            "downloads in flight from the first fill to the last start: least {least}, mean {} \
             ({n} samples, at most {})",
            sum / n.max(1),
            args.max_concurrent
        ),
        None => println!(
            "downloads in flight never reached 95% of {}",
            args.max_concurrent
        ),
    }
    let (Some(first), Some(downloaded)) = (&watched.first_download, &watched.last_downloaded)
    else {
        println!(
            "campaign: not every download ended within {:?}",
            args.timeout
        );
        return;
    };
    let window = downloaded.elapsed.saturating_sub(first.elapsed);
    let exchanges = downloaded.blocks - first.blocks;
    let rate = exchanges as f64 / window.as_secs_f64();
    match &watched.last_updated {
        Some(updated) => println!(
            "campaign completion (first Package URI write to last device updated, sampled every \
             0.1 s): {:.1} s",
            updated.elapsed.saturating_sub(first.elapsed).as_secs_f64()
        ),
        None => println!(
            "campaign completion: not every device updated within {:?}",
            args.timeout
        ),
    }
    println!(
        "Block2 exchanges: {exchanges} in {:.1} s (first download to last downloaded) = {rate:.0}/s; \
         timeouts {}",
        window.as_secs_f64(),
        summary.request(RequestKind::Download).timeout
    );
    println!("ratio engine / bare: {:.2}", rate / bare_rate);
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    if let Some(i) = all.iter().position(|a| a == "--serve-child") {
        serve_child(&all[i + 1..]);
        return;
    }
    let args = parse_args();
    let ramp = Duration::from_secs_f64(args.devices as f64 / args.rate as f64);
    // Registered by then, with room to spare on a busy machine.
    let campaign_start = ramp + Duration::from_secs(10);
    let child_args = [
        args.image_size.to_string(),
        args.max_concurrent.to_string(),
        campaign_start.as_millis().to_string(),
    ];
    let (child, server) = peer_process::spawn(&[
        "--serve-child",
        &child_args[0],
        &child_args[1],
        &child_args[2],
    ]);
    println!(
        "fota: {} devices pull a {} B image, at most {} at once; load average {}",
        args.devices,
        args.image_size,
        args.max_concurrent,
        load_average()
    );

    let image_blocks = args.image_size.div_ceil(1 << (BLOCK_SZX + 4)) as u32;
    let (bare, bare_time) = bare_round_trips(
        server,
        Duration::from_secs(3),
        block_get(image_blocks.max(1)),
    );
    let bare_rate = bare as f64 / bare_time.as_secs_f64();
    println!(
        "bare Block2 round trips (shared socket, 256 in flight): {bare} in {bare_time:.2?} = {bare_rate:.0}/s"
    );

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let set = TemplateSet::load_dir(std::path::Path::new(dir)).expect("templates");
    let text = format!(
        "[client]\nlifetime = \"600s\"\nseed = 1\nfirmware = {{ update_time = \"1s\" }}\n\
         [[population]]\nname = \"meters\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
         [load]\nclients = {}\nrate = {}\nhold = \"{}s\"\nstop_timeout = \"30s\"\n",
        args.devices,
        args.rate,
        args.timeout.as_secs()
    );
    let fleet = Fleet::from_toml(&text, "fota").expect("fleet");
    let templates = fleet.check(&set).expect("templates exist");
    let plan = fleet.plan();
    let mut config = EngineConfig::new(server);
    // Out of the way of other runs on the default ports.
    config.ports = Some(PortRange::new(27_000, 27_999).expect("ports"));

    let heap_before = heap_in_use();
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    println!(
        "engine: {} shard(s); the campaign starts {:.0?} after the first Register",
        engine.layout().shards(),
        campaign_start
    );
    let watched = watch(&engine, &args);
    engine.stop();
    let summary = engine.join().expect("engine ends");
    println!("\n{summary}\n");
    peer_process::stop(child);

    report(&args, &summary, &watched, heap_before, bare_rate);
    println!("load average at the end: {}", load_average());
}
