//! `capacity`: the highest load the server holds. Each step runs a fresh slice of the fleet (new
//! endpoints, so every Register is a new registration) in the engine, de-registers it, and checks
//! the thresholds on that step alone; `report::capacity::Planner` says which load comes next.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::args::{EngineArgs, FleetArgs, LimitArgs, LoadArgs, TimingArgs};
use super::embedded::Embedded;
use super::interrupts::Interrupts;
use super::parse::{parse_positive_duration, parse_rate};
use super::run::reports::{threshold_failure, unwritten};
use super::setup::{
    EMBEDDED_SERVER, Loaded, engine_config, host_reach, load, resolve, start_engine, tls_config,
};
use super::{Failure, bad_input, exit, failed};
use crate::engine::{EngineConfig, MovedPorts};
use crate::fleet::{Plan, Ramp, ServerUri, Slice, format_duration, parse_uri};
use crate::metrics::Snapshot;
use crate::model::DeviceTemplate;
use crate::report::capacity::{
    CapacityReport, Measured, Next, Outcome, Planner, SearchConfig, StepRecord, StepRequest,
    format_load,
};
use crate::report::{Threshold, Verdict, check_thresholds, threshold_results};
use crate::transport::AddressSet;

/// What the steps grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum By {
    /// New registrations per second: each step starts its clients at that rate for --step.
    Rate,
    /// Clients registered at once: each step starts them over the first quarter of --step and
    /// holds them, with the fleet's Updates and notifications, for the rest.
    Clients,
}

#[derive(Args, Debug)]
pub(super) struct CapacityArgs {
    /// The fleet file: its populations, client settings and server (its load table's ramp and
    /// hold are replaced by the steps).
    #[arg(help_heading = "Fleet")]
    pub fleet: PathBuf,
    /// Server under test, e.g. `coap://192.0.2.10:5683` (default: the fleet's, else embedded).
    #[arg(long, short = 's', value_parser = parse_uri, help_heading = "Server")]
    pub server: Option<ServerUri>,
    /// Directory of object and device templates.
    #[arg(long, help_heading = "Fleet")]
    pub templates: Option<PathBuf>,
    /// Random seed for every population.
    #[arg(long, help_heading = "Fleet")]
    pub seed: Option<u64>,
    /// What the steps grow: registrations per second, or clients registered at once.
    #[arg(long, value_enum, default_value_t = By::Rate, help_heading = "Load")]
    pub by: By,
    /// The first step's load [default: 10 registrations/s, or 100 clients].
    #[arg(long, value_name = "LOAD", value_parser = parse_rate, help_heading = "Load")]
    pub start: Option<f64>,
    /// Each step up offers this many times the last.
    #[arg(long, default_value_t = 1.5, value_parser = parse_factor, help_heading = "Load")]
    pub factor: f64,
    /// No step offers more [default: 10000 registrations/s, or 100000 clients].
    #[arg(long, value_name = "LOAD", value_parser = parse_rate, help_heading = "Load")]
    pub max: Option<f64>,
    /// How long each step offers its load.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration,
          help_heading = "Load")]
    pub step: Duration,
    /// How long each step's clients stay after --step, so the last requests are answered
    /// before they de-register (within the fleet's `stop_timeout`).
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration,
          help_heading = "Load")]
    pub hold: Duration,
    /// Bisection steps at most between the last step that held and the first that failed.
    #[arg(long, default_value_t = 3, help_heading = "Load")]
    pub refine: u32,
    /// Stop bisecting once the failed load is within this much of the held one.
    #[arg(long, default_value = "5%", value_parser = parse_precision, help_heading = "Load")]
    pub precision: f64,
    /// A criterion every step must meet, repeatable: `register.p99<500ms`,
    /// `register.error_rate<1%`. Added to the fleet's thresholds; at least one is needed.
    #[arg(long = "threshold", value_name = "EXPR", help_heading = "Load",
          value_parser = clap::value_parser!(Threshold))]
    pub thresholds: Vec<Threshold>,
    /// Write the search and every step as JSON (docs/capacity.md).
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub json: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Engine")]
    pub engine: EngineArgs,
    #[command(flatten, next_help_heading = "Embedded server load")]
    pub load: LoadArgs,
    #[command(flatten, next_help_heading = "Embedded server load")]
    pub limits: LimitArgs,
}

fn parse_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 1.0 => Ok(f),
        _ => Err(format!("{s:?}: give a number above 1, like 1.5")),
    }
}

fn parse_precision(s: &str) -> Result<f64, String> {
    let bad = || format!("{s:?}: give a percentage, like 5%");
    let pct: f64 = s
        .strip_suffix('%')
        .ok_or_else(bad)?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if pct.is_finite() && (0.0..=100.0).contains(&pct) {
        Ok(pct / 100.0)
    } else {
        Err(bad())
    }
}

impl By {
    fn unit(self) -> &'static str {
        match self {
            By::Rate => "registrations/s",
            By::Clients => "clients",
        }
    }

    /// A load with its unit, short: `22.5/s`, `4500 clients`.
    fn short(self, load: f64) -> String {
        match self {
            By::Rate => format!("{}/s", format_load(load)),
            By::Clients => format!("{} clients", format_load(load)),
        }
    }
}

/// The fleet, its server and the engine's settings, shared by every step.
struct Bench {
    base: Plan,
    templates: Vec<Arc<DeviceTemplate>>,
    config: EngineConfig,
    thresholds: Vec<Threshold>,
    by: By,
    step: Duration,
    hold: Duration,
    /// Clients used by the steps so far: the next step's endpoints start after them.
    used: u64,
    /// Where the last step's clients went when default ports were taken (said once).
    moved_ports: Option<MovedPorts>,
}

pub(super) fn capacity(args: &CapacityArgs) -> Result<(), Failure> {
    let (
        Loaded {
            fleet, templates, ..
        },
        thresholds,
    ) = load_fleet(args)?;
    let search = search_config(args)?;
    if let Some(path) = &args.json {
        crate::report::check_writable(path).map_err(bad_input)?;
    }
    let plan = fleet.plan();
    let remote = plan.server.as_ref().map(resolve).transpose()?;
    let early = engine_config(
        remote.unwrap_or(EMBEDDED_SERVER),
        &args.engine,
        plan.server.as_ref(),
    );
    let first = step_plan(&plan, args.by, search.start, args.step, args.hold, 0).0;
    host_reach(&first, &early, None)?
        .check()
        .map_err(bad_input)?;
    let search = within_reach(search, args.by, |load| {
        let (step, _) = step_plan(&plan, args.by, load, args.step, args.hold, 0);
        crate::transport::FdLimit::current()
            .ok()
            .and_then(|limit| crate::engine::plan_reach(&step, &early, limit).ok())
            .is_some_and(|reach| reach.check().is_ok())
    });
    let (server, embedded) = match remote {
        Some(server) => (server, Embedded::None),
        None => Embedded::start_limited(&plan, &args.load, &args.limits)?,
    };
    let target = plan
        .server
        .as_ref()
        .map_or_else(|| embedded.to_string(), ToString::to_string);
    let mut config = engine_config(server, &args.engine, plan.server.as_ref());
    config.tls = tls_config(&fleet, plan.server.as_ref())?;
    let names: Vec<String> = thresholds.iter().map(|t| t.text.clone()).collect();
    println!(
        "capacity of {target} in {}: from {} by x{} up to {}, {} steps (+{} hold), then up to \
         {} bisections; every step must meet {}",
        args.by.unit(),
        format_load(search.start),
        args.factor,
        format_load(search.max),
        format_duration(args.step),
        format_duration(args.hold),
        search.refine,
        names.join(", ")
    );
    let mut bench = Bench {
        base: plan,
        templates,
        config,
        thresholds,
        by: args.by,
        step: args.step,
        hold: args.hold,
        used: 0,
        moved_ports: None,
    };
    let interrupts = Interrupts::catch(Some(3));
    let (records, ending) = search_steps(&mut bench, search, &interrupts);
    let embedded_ended = embedded.stop();
    let written = conclude(args, &search, target, names, &records, &ending);
    embedded_ended?;
    written?;
    match ending {
        Ending::Failed(failure) => Err(failure),
        Ending::Interrupted => Err(Failure {
            code: interrupts.exit_code().unwrap_or(exit::INTERRUPTED),
            message: format!(
                "interrupted by {}: the search did not end",
                interrupts.last_name()
            ),
        }),
        Ending::Done(Outcome::FailedAtStart { .. }) => {
            let first = records.first().map_or(&[][..], |r| &r.verdicts[..]);
            threshold_failure(first).map_or(Ok(()), Err)
        }
        Ending::Done(_) => Ok(()),
    }
}

/// Prints the capacity line (when the search ended) and writes `--json`.
fn conclude(
    args: &CapacityArgs,
    search: &SearchConfig,
    target: String,
    names: Vec<String>,
    records: &[Ran],
    ending: &Ending,
) -> Result<(), Failure> {
    let outcome = match &ending {
        Ending::Done(outcome) => Some(*outcome),
        Ending::Interrupted | Ending::Failed(_) => None,
    };
    if let Some(outcome) = outcome {
        println!("{}", capacity_line(args.by, &outcome, records, search.max));
    }
    let report = CapacityReport {
        by: match args.by {
            By::Rate => "rate",
            By::Clients => "clients",
        },
        unit: args.by.unit(),
        target,
        thresholds: names,
        capacity: outcome.and_then(|o| o.capacity()),
        failed_at: outcome.and_then(|o| o.failed()),
        incomplete: outcome.is_none(),
        steps: records.iter().map(|r| r.record.clone()).collect(),
    };
    match &args.json {
        Some(path) => {
            let json = serde_json::to_string_pretty(&report).expect("plain data serializes");
            unwritten(crate::report::write_files([(path.as_path(), json)])).map_or(Ok(()), Err)
        }
        None => Ok(()),
    }
}

/// The fleet, refused when capacity cannot run it, and every threshold a step must meet.
fn load_fleet(args: &CapacityArgs) -> Result<(Loaded, Vec<Threshold>), Failure> {
    let fleet_args = FleetArgs {
        fleet: args.fleet.clone(),
        server: args.server.clone(),
        clients: None,
        psk_identity: None,
        psk_key: None,
        templates: args.templates.clone(),
        shard: Slice::WHOLE,
    };
    let timing = TimingArgs {
        seed: args.seed,
        ..TimingArgs::default()
    };
    let loaded = load(&fleet_args, &timing)?;
    let fleet = &loaded.fleet;
    if loaded.credentials.is_some() {
        return Err(bad_input(format!(
            "{}: capacity needs a fleet without [security]: each step registers new endpoints, \
             which a server provisioned with the fleet's keys would not know",
            fleet.file
        )));
    }
    if fleet.bootstrap.is_some() {
        return Err(bad_input(format!(
            "{}: capacity measures the LWM2M server: give it a fleet without [bootstrap]",
            fleet.file
        )));
    }
    let mut thresholds = fleet.load.thresholds.clone();
    thresholds.extend(args.thresholds.iter().cloned());
    if thresholds.is_empty() {
        return Err(bad_input(
            "capacity needs a criterion to hold: give --threshold EXPR (e.g. \
             'register.p99<500ms'), or thresholds in the fleet's [load]",
        ));
    }
    Ok((loaded, thresholds))
}

fn search_config(args: &CapacityArgs) -> Result<SearchConfig, Failure> {
    let (start, max) = match args.by {
        By::Rate => (args.start.unwrap_or(10.0), args.max.unwrap_or(10_000.0)),
        By::Clients => (args.start.unwrap_or(100.0), args.max.unwrap_or(100_000.0)),
    };
    if max < start {
        return Err(bad_input(format!(
            "--max {} is below --start {}",
            format_load(max),
            format_load(start)
        )));
    }
    Ok(SearchConfig {
        start,
        factor: args.factor,
        max,
        refine: args.refine,
        precision: args.precision,
        whole: args.by == By::Clients,
    })
}

/// `search` with `max` lowered to the largest load whose step this host can run (enough source
/// addresses and ports, and open files, for its clients), saying so; `fits` says whether a
/// load's step does, and the start's does.
fn within_reach(search: SearchConfig, by: By, fits: impl Fn(f64) -> bool) -> SearchConfig {
    if fits(search.max) {
        return search;
    }
    let (mut low, mut high) = (search.start, search.max);
    for _ in 0..40 {
        let mid = low + (high - low) / 2.0;
        if fits(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    // Down to three significant digits, as the planner rounds loads.
    let max = if search.whole {
        low.floor()
    } else {
        let scale = 10f64.powi(2 - low.log10().floor() as i32);
        ((low * scale).floor() / scale).max(search.start)
    };
    eprintln!(
        "note: this host's client addresses and ports (or open files) hold steps up to {} \
         {} at most: the search stops there (give --bind more addresses, or more --ports, to go \
         further)",
        format_load(max),
        by.unit()
    );
    SearchConfig { max, ..search }
}

/// A step that ran: what the JSON records, and its verdicts for the last line.
struct Ran {
    record: StepRecord,
    verdicts: Vec<Verdict>,
}

enum Ending {
    Done(Outcome),
    Interrupted,
    Failed(Failure),
}

/// Runs steps until the planner is done, a step cannot run, or a signal comes.
fn search_steps(
    bench: &mut Bench,
    search: SearchConfig,
    interrupts: &Interrupts,
) -> (Vec<Ran>, Ending) {
    let mut planner = Planner::new(search);
    let mut records: Vec<Ran> = Vec::new();
    // The planner stops itself within max_steps; this bounds a planner bug too.
    for _ in 0..=search.max_steps() {
        let load = match planner.next() {
            Next::Done(outcome) => return (records, Ending::Done(outcome)),
            Next::Step(load) => load,
        };
        let number = records.len() + 1;
        let ran = match run_step(bench, number, load, interrupts) {
            Ok(ran) => ran,
            Err(failure) => return (records, Ending::Failed(failure)),
        };
        let Some((snapshot, ran)) = ran else {
            return (records, Ending::Interrupted);
        };
        if number == 1 && snapshot.server_tried() && !snapshot.server_answered() {
            let failure = Failure {
                code: exit::UNREACHABLE,
                message: format!(
                    "the server at {} never answered the first step: is it running, is the \
                     address right?",
                    bench.config.server
                ),
            };
            records.push(ran);
            return (records, Ending::Failed(failure));
        }
        planner.record(load, ran.record.passed);
        records.push(ran);
    }
    let failure = failed("the search took more steps than it may: a bug, please report it");
    (records, Ending::Failed(failure))
}

/// Runs one step at `load`; `None` when a signal stopped it.
fn run_step(
    bench: &mut Bench,
    number: usize,
    load: f64,
    interrupts: &Interrupts,
) -> Result<Option<(Snapshot, Ran)>, Failure> {
    let (plan, keep) = step_plan(
        &bench.base,
        bench.by,
        load,
        bench.step,
        bench.hold,
        bench.used,
    );
    let templates = keep
        .iter()
        .map(|g| Arc::clone(&bench.templates[*g]))
        .collect();
    let clients = plan.clients;
    let (first, last) = (plan.naming.endpoint(0), plan.naming.endpoint(clients - 1));
    bench.used += clients;
    // The engine ends on its own after the stop timeout; this is for a step that does not.
    let deadline = plan.total_duration() + Duration::from_secs(10);
    let seen = interrupts.count().load(Ordering::Acquire);
    let began = Instant::now();
    let mut config = bench.config.clone();
    config.addresses = fresh_addresses(&bench.config, bench.used - clients);
    let engine = start_engine(plan, templates, &config)?;
    let moved = engine.moved_ports();
    if let Some(news) = moved.filter(|m| Some(*m) != bench.moved_ports) {
        println!("{news}");
    }
    bench.moved_ports = moved;
    let mut stopped = false;
    while !engine.is_finished() {
        if interrupts.count().load(Ordering::Acquire) > seen && !stopped {
            engine.stop();
            stopped = true;
        }
        if began.elapsed() > deadline {
            engine.abort();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = began.elapsed();
    let (snapshot, ended) = engine.finish();
    ended.map_err(|e| failed(format!("step {number} stopped early: {e}")))?;
    if stopped {
        return Ok(None);
    }
    let verdicts = check_thresholds(&bench.thresholds, &snapshot);
    let passed = verdicts.iter().all(|v| v.passed);
    let register = snapshot.request(crate::client::RequestKind::Register);
    let p99 = if register.latency.is_empty() {
        String::new()
    } else {
        let ms = register.latency.value_at_quantile(0.99) as f64 / 1e3;
        format!(", p99 {ms:.1} ms")
    };
    let verdict = match verdicts.iter().find(|v| !v.passed) {
        None => "held".to_string(),
        Some(v) => format!("FAILED {}", Measured(v)),
    };
    let count = match bench.by {
        By::Rate => format!("{clients} clients, "),
        By::Clients => String::new(),
    };
    println!(
        "step {number}: {} ({count}{first} .. {last}): registered {} of {}{p99}: {verdict}",
        bench.by.short(load),
        register.ok,
        register.sent,
    );
    let record = StepRecord {
        step: number,
        load,
        clients,
        first_endpoint: first,
        last_endpoint: last,
        elapsed_s: elapsed.as_secs_f64(),
        passed,
        requests: StepRequest::all(&snapshot),
        thresholds: threshold_results(&verdicts),
    };
    Ok(Some((snapshot, Ran { record, verdicts })))
}

/// The plan of one step at `load`: the fleet's populations in their proportions, named from
/// client `used` on (fresh endpoints), started at the step's pace; and which of the fleet's
/// populations it keeps (one too small for a client drops out).
fn step_plan(
    base: &Plan,
    by: By,
    load: f64,
    step: Duration,
    hold: Duration,
    used: u64,
) -> (Plan, Vec<usize>) {
    let step_s = step.as_secs_f64();
    let (clients, rate, hold) = match by {
        By::Rate => ((load * step_s).round().max(1.0) as u64, load, hold),
        // Started over the first quarter of the step, held for the rest.
        By::Clients => {
            let clients = load.round().max(1.0) as u64;
            (
                clients,
                clients as f64 / (step_s / 4.0),
                step.mul_f64(0.75) + hold,
            )
        }
    };
    let counts = apportion(
        &base.groups.iter().map(|g| g.count).collect::<Vec<_>>(),
        clients,
    );
    let mut plan = base.clone();
    let mut first = 0;
    let mut keep = Vec::new();
    plan.groups = base
        .groups
        .iter()
        .zip(counts)
        .enumerate()
        .filter(|(_, (_, count))| *count > 0)
        .map(|(g, (group, count))| {
            keep.push(g);
            let mut group = group.clone();
            group.first = first;
            group.count = count;
            // New message IDs, tokens and timings for every step's clients.
            group.seed = group
                .seed
                .wrapping_add(used.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            first += count;
            group
        })
        .collect();
    plan.clients = clients;
    plan.naming.start = base.naming.start.saturating_add(used);
    plan.ramp = Ramp::Rate(rate);
    plan.hold = hold;
    plan.duration = None;
    plan.slice = Slice::WHOLE;
    plan.campaigns.clear();
    (plan, keep)
}

/// The source addresses of a step whose clients follow `used` others: past theirs when the
/// set is a range wide enough, so no step reuses an earlier step's address and port (a server
/// would take a new Register from them, with a message ID seen before, for a retransmission).
/// A list stays as it is: the steps' new seeds give their clients new message IDs and tokens.
fn fresh_addresses(config: &EngineConfig, used: u64) -> Option<AddressSet> {
    let loopback = config.server.ip().is_loopback() && config.server.is_ipv4();
    match &config.addresses {
        None if loopback => fresh_addresses(
            &EngineConfig {
                addresses: Some(AddressSet::loopback()),
                ..config.clone()
            },
            used,
        ),
        Some(AddressSet::V4Range { first, count }) if used < u64::from(*count) / 2 => {
            let shift = u32::try_from(used).ok()?;
            Some(AddressSet::V4Range {
                first: Ipv4Addr::from(u32::from(*first) + shift),
                count: count - shift,
            })
        }
        Some(AddressSet::V6Range { first, count }) if used < count / 2 => {
            Some(AddressSet::V6Range {
                first: Ipv6Addr::from(u128::from(*first) + u128::from(used)),
                count: count - used,
            })
        }
        other => other.clone(),
    }
}

/// `total` split in the proportions of `weights` (largest remainders), summing to `total`.
fn apportion(weights: &[u64], total: u64) -> Vec<u64> {
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| *w as f64 * total as f64 / sum as f64)
        .collect();
    let mut counts: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor()))
    });
    let short = total.saturating_sub(counts.iter().sum());
    for i in order.into_iter().cycle().take(short as usize) {
        counts[i] += 1;
    }
    counts
}

/// `capacity: 180 registrations/s (next step 200/s failed: register.p99 = 2.1 s)`.
fn capacity_line(by: By, outcome: &Outcome, records: &[Ran], max: f64) -> String {
    // The planner's failed load is the lowest of the steps that failed.
    let failure = records
        .iter()
        .filter(|r| !r.record.passed)
        .min_by(|a, b| a.record.load.total_cmp(&b.record.load))
        .and_then(|r| r.verdicts.iter().find(|v| !v.passed))
        .map_or_else(|| "a threshold".to_string(), |v| Measured(v).to_string());
    match *outcome {
        Outcome::Between { held, failed } => format!(
            "capacity: {} {} (next step {} failed: {})",
            format_load(held),
            by.unit(),
            by.short(failed),
            failure
        ),
        Outcome::HeldToMax { held } => format!(
            "capacity: at least {} {} (every step held, up to --max {})",
            format_load(held),
            by.unit(),
            by.short(max)
        ),
        Outcome::FailedAtStart { failed } => format!(
            "capacity: below {} {} (the first step, {}, failed: {}; try a lower --start)",
            format_load(failed),
            by.unit(),
            by.short(failed),
            failure
        ),
    }
}

#[cfg(test)]
// The options compared are parsed from exact decimal text.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<CapacityArgs, String> {
        let words = ["lwm2m-swarm", "capacity"]
            .into_iter()
            .chain(line.split_whitespace());
        match crate::cli::Cli::parse_args(words).map(|c| c.command) {
            Ok(crate::cli::Command::Capacity(args)) => Ok(args),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn options_parse_with_their_defaults_and_bad_values_are_told() {
        let a = parse("f.toml --threshold register.p99<1s").unwrap();
        assert_eq!((a.by, a.factor, a.refine), (By::Rate, 1.5, 3));
        assert_eq!(
            (a.step, a.hold),
            (Duration::from_secs(30), Duration::from_secs(5))
        );
        assert!((a.precision - 0.05).abs() < 1e-12);
        let search = search_config(&a).unwrap();
        assert_eq!(
            (search.start, search.max, search.whole),
            (10.0, 10_000.0, false)
        );
        let a = parse(
            "f.toml --by clients --start 50 --factor 2 --max 400 --step 1m --hold 2s --refine 5 \
             --precision 10% --threshold update.p99<2s --json out.json --max-registrations 300 \
             --ports 30000-30099 -s coap://192.0.2.1:5683",
        )
        .unwrap();
        let search = search_config(&a).unwrap();
        assert_eq!(
            (search.start, search.max, search.whole),
            (50.0, 400.0, true)
        );
        assert_eq!((a.factor, a.refine, a.limits.registrations), (2.0, 5, 300));
        assert_eq!(a.json, Some(PathBuf::from("out.json")));
        assert!(a.server.is_some() && a.engine.ports.is_some());
        for (line, says) in [
            ("f.toml --factor 0.5", "above 1"),
            ("f.toml --precision 5", "percentage"),
            ("f.toml --start 0", "more than 0"),
            ("f.toml --by speed", "speed"),
        ] {
            let e = parse(line).expect_err(line);
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn the_maximum_is_lowered_to_the_largest_step_this_host_can_run() {
        let rate = SearchConfig {
            start: 10.0,
            factor: 1.5,
            max: 10_000.0,
            refine: 3,
            precision: 0.05,
            whole: false,
        };
        assert_eq!(within_reach(rate, By::Rate, |l| l <= 425.7).max, 425.0);
        assert_eq!(within_reach(rate, By::Rate, |_| true), rate);
        let clients = SearchConfig {
            whole: true,
            ..rate
        };
        assert_eq!(within_reach(clients, By::Clients, |l| l <= 37.9).max, 37.0);
    }

    #[test]
    fn clients_are_apportioned_like_the_fleets_populations() {
        assert_eq!(apportion(&[600, 400], 10), [6, 4]);
        assert_eq!(apportion(&[600, 400], 1), [1, 0]);
        assert_eq!(apportion(&[1, 1, 1], 4).iter().sum::<u64>(), 4);
        assert_eq!(apportion(&[5], 37), [37]);
    }

    #[test]
    fn each_step_sends_from_addresses_no_earlier_step_used() {
        let mut config = EngineConfig::new("127.0.0.1:5683".parse().unwrap());
        let first = |a: Option<AddressSet>| a.and_then(|a| a.get(0)).unwrap().to_string();
        assert_eq!(first(fresh_addresses(&config, 0)), "127.0.0.1");
        assert_eq!(first(fresh_addresses(&config, 300)), "127.0.1.45");
        config.addresses = Some(AddressSet::parse("10.1.0.0/16").unwrap());
        assert_eq!(first(fresh_addresses(&config, 10)), "10.1.0.11");
        // Past half the range, or a list: the same addresses (new seeds still differ).
        assert_eq!(first(fresh_addresses(&config, 40_000)), "10.1.0.1");
        config.addresses = Some(AddressSet::parse("10.0.0.1,10.0.0.2").unwrap());
        assert_eq!(fresh_addresses(&config, 5), config.addresses);
        // A remote server without --bind: the engine finds the one address itself.
        let remote = EngineConfig::new("192.0.2.1:5683".parse().unwrap());
        assert_eq!(fresh_addresses(&remote, 5), None);
    }

    #[test]
    fn each_step_names_fresh_endpoints_at_its_pace() {
        let fleet = crate::fleet::Fleet::from_toml(
            "[client]\nendpoint_prefix = \"cap-\"\nwidth = 4\n\
             [[population]]\nname = \"a\"\nshare = 0.75\ntemplate = \"environment-sensor\"\n\
             [[population]]\nname = \"b\"\nshare = 0.25\ntemplate = \"smart-meter\"\n\
             [load]\nclients = 100\nrate = 10\nhold = \"1s\"\n",
            "f.toml",
        )
        .unwrap();
        let base = fleet.plan();
        let step = Duration::from_secs(2);
        let hold = Duration::from_secs(1);
        let (plan, keep) = step_plan(&base, By::Rate, 20.0, step, hold, 0);
        assert_eq!((plan.clients, keep.as_slice()), (40, &[0, 1][..]));
        assert_eq!((plan.groups[0].count, plan.groups[1].count), (30, 10));
        assert_eq!(plan.groups[1].first, 30);
        assert_eq!(plan.ramp_duration(), step);
        assert_eq!(plan.stop_at(), step + hold);
        assert_eq!(plan.naming.endpoint(0), "cap-0000");
        let (next, _) = step_plan(&base, By::Rate, 30.0, step, hold, 40);
        assert_eq!(next.naming.endpoint(0), "cap-0040");
        assert_eq!(next.clients, 60);
        assert_ne!(next.groups[0].seed, plan.groups[0].seed);
        // One client: the smaller population drops out, with its template.
        let (one, keep) = step_plan(&base, By::Rate, 0.5, step, hold, 100);
        assert_eq!((one.clients, keep.as_slice()), (1, &[0][..]));
        // Clients held: started over a quarter of the step, stopped after the step and hold.
        let (by_clients, _) = step_plan(&base, By::Clients, 8.0, step, hold, 0);
        assert_eq!(by_clients.clients, 8);
        assert_eq!(by_clients.ramp_duration(), step / 4);
        assert_eq!(by_clients.stop_at(), step + hold);
    }
}
